/**
 * How full a UDP socket's receive queue is, read from the kernel's socket table
 * (/proc/self/net/udp and udp6, Linux). Node gives no way to ask a socket for its queue
 * length (the FIONREAD / SIOCINQ ioctl) or its drop count, but the table has both for every
 * socket of the network namespace: `rx_queue`, the octets its queued datagrams hold
 * (`sk_rmem_alloc`, what the kernel compares with the receive buffer's size before it drops a
 * datagram), and `drops`. The overload check (backlog.ts) reads it only while the socket's
 * reads are behind, so a server at rest never pays for it.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import type { QueueProbe, QueueReading } from './backlog.ts';
import { ipFamily } from './address.ts';
import type { Endpoint } from './transport.ts';

/** Column 2 of the table: the local address and port as the kernel prints them. */
export function procNetUdpKey(
  address: string,
  port: number,
  littleEndian = endianness() === 'LE',
): string | undefined {
  const bytes = addressBytes(address);
  if (bytes === undefined || !Number.isInteger(port) || port < 0 || port > 0xffff) {
    return undefined;
  }
  // The kernel prints the address as 32-bit words in host order (%08X of each __be32, net/ipv4/
  // udp.c udp4_format_sock, net/ipv6/datagram.c __ip6_dgram_sock_seq_show), and the port as a
  // number (%04X of ntohs).
  let hex = '';
  for (let w = 0; w < bytes.length; w += 4) {
    const word = littleEndian ? bytes.slice(w, w + 4).reverse() : bytes.slice(w, w + 4);
    for (const b of word) hex += b.toString(16).toUpperCase().padStart(2, '0');
  }
  return `${hex}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** The octets of an IPv4 or IPv6 literal (no zone, no brackets); undefined otherwise. */
function addressBytes(address: string): number[] | undefined {
  const family = ipFamily(address);
  if (family === 4) return address.split('.').map(Number);
  if (family !== 6 || address.includes('%')) return undefined;
  let text = address.toLowerCase();
  let tail: number[] = [];
  // An IPv4 tail (::ffff:1.2.3.4) is two groups.
  const dot = text.lastIndexOf(':');
  if (text.includes('.', dot)) {
    const v4 = text.slice(dot + 1);
    if (ipFamily(v4) !== 4) return undefined;
    tail = v4.split('.').map(Number);
    text = `${text.slice(0, dot + 1)}0:0`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const zeros = 8 - head.length - rest.length;
  if (zeros < 0 || (halves.length === 1 && zeros !== 0)) return undefined;
  const all = [...head, ...Array<string>(zeros).fill('0'), ...rest];
  const out: number[] = [];
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
    const v = parseInt(g, 16);
    out.push(v >> 8, v & 0xff);
  }
  if (tail.length === 4) out.splice(12, 4, ...tail);
  return out;
}

/** A socket's row of the table: octets queued and datagrams dropped. */
export interface UdpQueueRow {
  readonly rxBytes: number;
  readonly drops: number;
}

/**
 * The row of `table` (the text of /proc/net/udp or udp6) whose local address is `key`. Where
 * several sockets share the address (SO_REUSEPORT), the fullest queue and the most drops.
 */
export function findUdpQueueRow(table: string, key: string): UdpQueueRow | undefined {
  let found: { rxBytes: number; drops: number } | undefined;
  let at = table.indexOf(` ${key} `);
  while (at >= 0) {
    const lineEnd = table.indexOf('\n', at);
    const line = table.slice(table.lastIndexOf('\n', at) + 1, lineEnd < 0 ? undefined : lineEnd);
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    // ref pointer drops
    const cols = line.trim().split(/\s+/);
    if (cols[1] === key && cols.length >= 13) {
      const rx = parseInt(cols[4]!.split(':')[1] ?? '', 16);
      const drops = Number(cols[12]);
      if (Number.isFinite(rx) && Number.isFinite(drops)) {
        found = {
          rxBytes: Math.max(rx, found?.rxBytes ?? 0),
          drops: Math.max(drops, found?.drops ?? 0),
        };
      }
    }
    at = table.indexOf(` ${key} `, at + key.length);
  }
  return found;
}

/** The table is read only while it is small: every look reads all of it. */
export const MAX_TABLE_BYTES = 256 * 1024;

/** Reads the whole table on each call; undefined when it cannot (or it is too large). */
export interface TableReader {
  read(): string | undefined;
  close(): void;
}

/**
 * The table at `path`, opened once and read from its start on each call (procfs generates it
 * afresh for each read from offset 0): a look costs the reads and no open, stat or close
 * (about 21 µs against 40 for readFileSync, with a few sockets).
 */
export function procTable(path: string): TableReader | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  let buf = Buffer.allocUnsafe(16 * 1024);
  return {
    read() {
      if (fd < 0) return undefined;
      let used = 0;
      try {
        for (;;) {
          if (used === buf.length) {
            if (buf.length >= MAX_TABLE_BYTES) return undefined;
            const bigger = Buffer.allocUnsafe(buf.length * 2);
            buf.copy(bigger, 0, 0, used);
            buf = bigger;
          }
          const n = readSync(fd, buf, used, buf.length - used, used);
          if (n === 0) break;
          used += n;
        }
      } catch {
        return undefined;
      }
      return buf.toString('latin1', 0, used);
    },
    close() {
      if (fd < 0) return;
      closeSync(fd);
      fd = -1;
    },
  };
}

/** A QueueProbe that holds the table open until closed. */
export interface UdpQueueProbe extends QueueProbe {
  close(): void;
}

/**
 * A probe of the receive queue of the UDP socket bound to `local`, whose receive buffer holds
 * `receiveBufferBytes` (what getsockopt SO_RCVBUF reports: the kernel's doubled figure, the one
 * it compares with). Undefined where the table cannot be read (not Linux, no procfs, too many
 * sockets) or lists no such socket; the probe itself answers undefined once the table stops
 * being readable.
 */
export function udpQueueProbe(
  local: Endpoint,
  receiveBufferBytes: number,
  open: (path: string) => TableReader | undefined = procTable,
): UdpQueueProbe | undefined {
  const key = procNetUdpKey(local.address, local.port);
  if (key === undefined || !(receiveBufferBytes > 0)) return undefined;
  const table = open(ipFamily(local.address) === 6 ? '/proc/self/net/udp6' : '/proc/self/net/udp');
  if (table === undefined) return undefined;
  const look = (): UdpQueueRow | undefined => {
    const text = table.read();
    return text === undefined ? undefined : findUdpQueueRow(text, key);
  };
  if (look() === undefined) {
    table.close();
    return undefined;
  }
  const probe = (): QueueReading | undefined => {
    const row = look();
    return row === undefined
      ? undefined
      : { fill: row.rxBytes / receiveBufferBytes, drops: row.drops };
  };
  return Object.assign(probe, { close: () => table.close() });
}
