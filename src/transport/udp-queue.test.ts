import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { describe, it } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  findUdpQueueRow,
  MAX_TABLE_BYTES,
  procNetUdpKey,
  procTable,
  udpQueueProbe,
  type TableReader,
} from './udp-queue.ts';

describe('procNetUdpKey (the local_address column of /proc/net/udp)', () => {
  it('prints IPv4 as one word in host order and the port in hex', () => {
    assert.equal(procNetUdpKey('127.0.0.1', 5060, true), '0100007F:13C4');
    assert.equal(procNetUdpKey('127.0.0.1', 5060, false), '7F000001:13C4');
    assert.equal(procNetUdpKey('0.0.0.0', 0, true), '00000000:0000');
    assert.equal(procNetUdpKey('10.1.2.254', 65535, true), 'FE02010A:FFFF');
  });

  it('prints IPv6 as four words in host order', () => {
    assert.equal(procNetUdpKey('::1', 5060, true), '00000000000000000000000001000000:13C4');
    assert.equal(procNetUdpKey('::1', 5060, false), '00000000000000000000000000000001:13C4');
    assert.equal(procNetUdpKey('::', 1, true), `${'0'.repeat(32)}:0001`);
    assert.equal(
      procNetUdpKey('2001:db8::a:b', 5061, true),
      'B80D012000000000000000000B000A00:13C5',
    );
    assert.equal(
      procNetUdpKey('::ffff:127.0.0.1', 5060, true),
      '0000000000000000FFFF00000100007F:13C4',
    );
    assert.equal(
      procNetUdpKey('2001:DB8:0:0:1:0:0:1', 80, false),
      '20010DB8000000000001000000000001:0050',
    );
  });

  it('has no key for what is not an address literal', () => {
    for (const a of ['example.com', 'fe80::1%eth0', '1::2::3', '1:2:3:4:5:6:7', '12345::1', '']) {
      assert.equal(procNetUdpKey(a, 5060, true), undefined, a);
    }
    assert.equal(procNetUdpKey('127.0.0.1', 70000, true), undefined);
    assert.equal(procNetUdpKey('127.0.0.1', -1, true), undefined);
  });
});

const HEADER =
  '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n';
const row = (sl: number, local: string, rx: number, drops: number): string =>
  `  ${sl}: ${local} 00000000:0000 07 00000000:${rx.toString(16).toUpperCase().padStart(8, '0')} ` +
  `00:00000000 00000000     0        0 ${1000 + sl} 2 0000000000000000 ${drops}        \n`;

describe('findUdpQueueRow', () => {
  const table =
    HEADER +
    row(10, '0100007F:3CC3', 0x1200, 0) +
    row(11, '0100007F:13C4', 0x2a00, 17) +
    row(12, '00000000:13C4', 5, 3);

  it('reads rx_queue (hex octets) and drops of the socket bound to the address', () => {
    assert.deepEqual(findUdpQueueRow(table, '0100007F:13C4'), { rxBytes: 0x2a00, drops: 17 });
    assert.deepEqual(findUdpQueueRow(table, '00000000:13C4'), { rxBytes: 5, drops: 3 });
  });

  it('matches the local address only, never the remote one', () => {
    const remote =
      HEADER + '  1: 0100007F:9999 0100007F:13C4 01 00000000:00000040 ' + '0'.repeat(3);
    assert.equal(findUdpQueueRow(remote, '0100007F:13C4'), undefined);
    assert.equal(findUdpQueueRow(table, '0100007F:0001'), undefined);
  });

  it('takes the fullest queue and the most drops of sockets sharing the address', () => {
    const shared = table + row(13, '0100007F:13C4', 0x100, 40);
    assert.deepEqual(findUdpQueueRow(shared, '0100007F:13C4'), { rxBytes: 0x2a00, drops: 40 });
  });

  it('ignores rows it cannot read', () => {
    assert.equal(findUdpQueueRow(HEADER + '  1: 0100007F:13C4 x\n', '0100007F:13C4'), undefined);
    assert.equal(findUdpQueueRow('', '0100007F:13C4'), undefined);
  });
});

/** A TableReader over a string the test changes; counts closes. */
function fakeTable(initial: string | undefined) {
  const state = { text: initial, closed: 0 };
  const reader: TableReader = {
    read: () => state.text,
    close: () => {
      state.closed++;
    },
  };
  return { state, open: () => reader };
}

describe('procTable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-proc-table-'));
  it('reads the whole file from its start on every call, until closed', () => {
    const path = join(dir, 'table');
    const big = 'x'.repeat(40_000) + 'end';
    writeFileSync(path, big);
    const t = procTable(path)!;
    assert.equal(t.read(), big, 'more than its first buffer');
    writeFileSync(path, 'short');
    assert.equal(t.read(), 'short');
    t.close();
    assert.equal(t.read(), undefined);
    t.close();
  });

  it('gives up on a table larger than MAX_TABLE_BYTES, and on one it cannot open', () => {
    const path = join(dir, 'large');
    writeFileSync(path, 'y'.repeat(MAX_TABLE_BYTES + 1));
    const t = procTable(path)!;
    assert.equal(t.read(), undefined);
    t.close();
    assert.equal(procTable(join(dir, 'missing')), undefined);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('udpQueueProbe', () => {
  it('answers from the table it reads, as a share of the receive buffer', () => {
    if (procNetUdpKey('127.0.0.1', 5060) !== '0100007F:13C4') return; // a big-endian host
    const { state, open } = fakeTable(HEADER + row(1, '0100007F:13C4', 0x1000, 2));
    const probe = udpQueueProbe({ address: '127.0.0.1', port: 5060 }, 0x4000, open);
    assert.ok(probe);
    assert.deepEqual(probe(), { fill: 0.25, drops: 2 });
    state.text = HEADER;
    assert.equal(probe(), undefined, 'the socket is gone');
    state.text = undefined;
    assert.equal(probe(), undefined, 'the table cannot be read');
    probe.close();
    assert.equal(state.closed, 1);
  });

  it('is undefined where the table cannot be read or has no such socket', () => {
    const local = { address: '127.0.0.1', port: 5060 };
    assert.equal(
      udpQueueProbe(local, 1000, () => undefined),
      undefined,
    );
    const empty = fakeTable(HEADER);
    assert.equal(udpQueueProbe(local, 1000, empty.open), undefined);
    assert.equal(empty.state.closed, 1, 'closed again');
    assert.equal(
      udpQueueProbe({ address: 'example.com', port: 5060 }, 1000, empty.open),
      undefined,
    );
    assert.equal(udpQueueProbe(local, 0, empty.open), undefined);
  });

  const linux = process.platform === 'linux';
  const bound = async (family: 'udp4' | 'udp6', address: string): Promise<Socket> => {
    const s = createSocket(family);
    await new Promise<void>((resolve) => s.bind(0, address, resolve));
    return s;
  };
  /** Sends `count` datagrams of `size` octets to the port while this process's loop is blocked. */
  const flood = (address: string, port: number, count: number, size: number): void => {
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `const s = require('node:dgram').createSocket('${address.includes(':') ? 'udp6' : 'udp4'}');
         let left = ${count};
         const next = () => left-- > 0 ? s.send(Buffer.alloc(${size}), ${port}, '${address}', next) : s.close();
         next();`,
      ],
      { timeout: 10_000 },
    );
    assert.equal(child.status, 0, String(child.stderr));
  };

  for (const [family, address] of [
    ['udp4', '127.0.0.1'],
    ['udp6', '::1'],
  ] as const) {
    it(
      `reads the queue and the drops of a real ${family} socket`,
      {
        skip: linux ? false : 'the kernel table is read on Linux only',
      },
      async () => {
        const socket = await bound(family, address);
        try {
          const got: number[] = [];
          socket.on('message', (m) => got.push(m.length));
          socket.setRecvBufferSize(64 * 1024);
          const size = socket.getRecvBufferSize();
          const port = socket.address().port;
          const probe = udpQueueProbe({ address, port }, size);
          assert.ok(probe, 'the socket is in the table');
          const before = probe();
          assert.deepEqual(before, { fill: 0, drops: 0 });

          flood(address, port, 10, 200);
          const queued = probe()!;
          assert.ok(queued.fill > 0 && queued.fill < 1, `10 datagrams wait: fill ${queued.fill}`);
          assert.equal(queued.drops, 0);

          // More than the buffer holds: the kernel drops the rest, and counts them.
          flood(address, port, 400, 1000);
          const full = probe()!;
          assert.ok(full.fill > 0.5, `fill ${full.fill}`);
          assert.ok(full.drops > 0, 'drops counted');

          const until = Date.now() + 5000;
          while (probe()!.fill > 0 && Date.now() < until) {
            await new Promise((r) => setTimeout(r, 5));
          }
          assert.equal(probe()!.fill, 0, 'read: the queue is empty again');
          assert.equal(got.length + probe()!.drops, 410);
        } finally {
          socket.close();
        }
      },
    );
  }
});
