/**
 * Helpers for the acceptance tests against a live `switchboard serve` (a child process on
 * loopback): the server started with a send trace (test/support/send-trace.mjs) so a test can
 * see where it sent every message and assert that nothing left loopback; raw UDP and TCP peers
 * that send exact bytes and collect the parsed responses; OPTIONS probes ("is it still
 * answering?"); and the server's resident memory from /proc.
 *
 * Every wait is bounded; every socket is closed by the test that opened it.
 */
import { randomUUID } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseMessage, StreamFramer, type SipResponse } from '../../../src/sip/index.ts';
import { startServer, type RunningServer, type StartServerOptions } from '../../support/server.ts';

export const LOOPBACK = '127.0.0.1';

/** test/support/send-trace.mjs */
export const SEND_TRACE_PRELOAD = fileURLToPath(
  new URL('../../support/send-trace.mjs', import.meta.url),
);

/** One line of the send trace (see test/support/send-trace.mjs). */
export interface SendRecord {
  readonly event: 'send' | 'connect' | 'send-failed' | 'connect-failed';
  readonly protocol?: string;
  readonly address?: string;
  readonly port?: number;
  readonly kind?: 'request' | 'response';
  readonly method?: string;
  readonly status?: number;
  readonly callId?: string;
  readonly cseq?: string;
  readonly branch?: string;
  readonly code?: string;
  readonly detail?: string;
}

/** 127.0.0.0/8, ::1 and IPv4-mapped 127/8: the only addresses a test server may send to. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/**
 * The environment for a server child that loads the send trace: `all` records every send,
 * `off-loopback` only the sends that leave loopback (for long runs).
 */
export function sendTraceEnv(mode: 'all' | 'off-loopback'): NodeJS.ProcessEnv {
  const preload = `--import ${JSON.stringify(pathToFileURL(SEND_TRACE_PRELOAD).href)}`;
  const inherited = process.env.NODE_OPTIONS ?? '';
  return {
    ...process.env,
    NODE_OPTIONS: inherited === '' ? preload : `${inherited} ${preload}`,
    SWITCHBOARD_TEST_SEND_TRACE: mode,
  };
}

/** startServer with the send trace loaded (the server's env otherwise inherited). */
export function startTracedServer(
  o: StartServerOptions,
  mode: 'all' | 'off-loopback' = 'all',
): Promise<RunningServer> {
  return startServer({ ...o, env: { ...sendTraceEnv(mode), ...o.env } });
}

const TRACE_LINE = /^sb-send-trace (\{.*\})$/gm;

/** Every send-trace record the server printed so far. */
export function sendRecords(server: RunningServer): SendRecord[] {
  return [...server.stderr().matchAll(TRACE_LINE)].map((m) => JSON.parse(m[1]!) as SendRecord);
}

/** The records of sends, connects or attempts that went (or tried to go) off loopback. */
export function offLoopbackRecords(server: RunningServer): SendRecord[] {
  return sendRecords(server).filter((r) => !isLoopback(r.address));
}

/** The server's stderr without the trace lines (its own log), for assertion messages. */
export function serverLog(server: RunningServer, max = 4000): string {
  const text = server
    .stderr()
    .replace(TRACE_LINE, '')
    .replace(/\n{2,}/g, '\n')
    .trim();
  return text.length > max ? `...${text.slice(-max)}` : text;
}

/** VmRSS of a process in KiB, from /proc/PID/status (Linux). */
export function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (m === null) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A fresh token for Call-IDs, branches and tags. */
export function token(): string {
  return randomUUID().replace(/-/g, '').slice(0, 16);
}

/* ------------------------------------------------------------------------------------------ */
/* Received responses                                                                          */
/* ------------------------------------------------------------------------------------------ */

/** A response received by a peer, read leniently: a response our parser rejects counts too. */
export interface Received {
  /** From the Status-Line. */
  readonly status: number;
  /** Raw Call-ID value (full or compact name), when present. */
  readonly callId: string | undefined;
  /** CSeq number and method, when the CSeq value starts with digits. */
  readonly cseq: { readonly seq: bigint; readonly method: string } | undefined;
  /** The top Via's branch parameter, read leniently. */
  readonly branch: string | undefined;
  /** The parsed response, when it parses. */
  readonly message: SipResponse | undefined;
  /** The octets as latin1 text. */
  readonly text: string;
  readonly from: { readonly address: string; readonly port: number };
}

const COMPACT: Readonly<Record<string, string>> = {
  i: 'call-id',
  v: 'via',
  f: 'from',
  t: 'to',
  m: 'contact',
  l: 'content-length',
  c: 'content-type',
  k: 'supported',
  s: 'subject',
};

/**
 * The header fields of a message's header section as raw text, by lower-cased full name
 * (compact forms mapped), folds unfolded. A lenient reader for assertions: it works on
 * messages the parser rejects.
 */
export function rawHeaders(text: string): Map<string, string[]> {
  const end = text.search(/\r?\n\r?\n/);
  const head = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  const out = new Map<string, string[]>();
  for (const line of head.split(/\r?\n/).slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const raw = line.slice(0, colon).trim().toLowerCase();
    const name = COMPACT[raw] ?? raw;
    const list = out.get(name) ?? [];
    list.push(line.slice(colon + 1).trim());
    out.set(name, list);
  }
  return out;
}

/** CSeq number and method of a raw CSeq value (undefined when it does not start with digits). */
export function rawCSeq(value: string | undefined): Received['cseq'] {
  const m = value === undefined ? null : /^(\d+)\s*(\S*)/.exec(value);
  return m === null ? undefined : { seq: BigInt(m[1]!), method: m[2]! };
}

/** The branch parameter of a raw Via value (its first entry). */
export function rawBranch(via: string | undefined): string | undefined {
  const m = via === undefined ? null : /;\s*branch\s*=\s*([^;,\s]+)/i.exec(via);
  return m === null ? undefined : m[1];
}

/** A Received from the octets of one message, or undefined when it is no SIP response. */
export function readResponse(
  bytes: Uint8Array,
  framing: 'datagram' | 'stream',
  from: Received['from'],
): Received | undefined {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  const status = /^SIP\/2\.0 (\d{3}) /.exec(text);
  if (status === null) return undefined;
  const headers = rawHeaders(text);
  const r = parseMessage(bytes, { framing });
  return {
    status: Number(status[1]),
    callId: headers.get('call-id')?.[0],
    cseq: rawCSeq(headers.get('cseq')?.[0]),
    branch: rawBranch(headers.get('via')?.[0]),
    message: r.ok && r.message.isResponse() ? r.message : undefined,
    text,
    from,
  };
}

/** Waiters woken on every new response; resolves with the first match or undefined after `ms`. */
class ResponseLog {
  readonly responses: Received[] = [];
  /** Octets that were no parseable response (requests, garbage): counted, not kept. */
  other = 0;
  private readonly waiters = new Set<() => void>();

  add(r: Received): void {
    this.responses.push(r);
    for (const w of [...this.waiters]) w();
  }

  wake(): void {
    for (const w of [...this.waiters]) w();
  }

  waitFor(
    pred: (r: Received) => boolean,
    ms: number,
    stop: () => boolean = () => false,
  ): Promise<Received | undefined> {
    return new Promise((resolve) => {
      const check = (): void => {
        const hit = this.responses.find(pred);
        if (hit !== undefined || stop()) {
          done();
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        done();
        resolve(this.responses.find(pred));
      }, ms);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }
}

/* ------------------------------------------------------------------------------------------ */
/* UDP                                                                                         */
/* ------------------------------------------------------------------------------------------ */

/** A UDP socket on loopback that sends exact bytes and keeps every SIP response it receives. */
export class UdpPeer {
  private readonly log = new ResponseLog();

  private constructor(
    private readonly socket: UdpSocket,
    readonly host: string,
    readonly port: number,
  ) {
    socket.on('message', (bytes, rinfo) => {
      const r = readResponse(
        new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        'datagram',
        { address: rinfo.address, port: rinfo.port },
      );
      if (r !== undefined) this.log.add(r);
      else this.log.other++;
    });
    socket.on('error', () => undefined);
  }

  get responses(): readonly Received[] {
    return this.log.responses;
  }

  /** Datagrams received that were no SIP response. */
  get unparsed(): number {
    return this.log.other;
  }

  /**
   * Binds `host:port` exclusively (port 0: any). When the port is taken, retries every 200 ms
   * for `retryMs`; undefined when it stays taken (another process holds it).
   */
  static async bind(host: string, port = 0, retryMs = 0): Promise<UdpPeer | undefined> {
    const deadline = Date.now() + retryMs;
    for (;;) {
      try {
        return await UdpPeer.bindOnce(host, port);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
        if (Date.now() >= deadline) return undefined;
        await sleep(200);
      }
    }
  }

  private static bindOnce(host: string, port: number): Promise<UdpPeer> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
      socket.once('error', (err) => {
        socket.close();
        reject(err);
      });
      socket.bind({ address: host, port, exclusive: true }, () => {
        socket.removeAllListeners('error');
        resolve(new UdpPeer(socket, host, socket.address().port));
      });
    });
  }

  send(bytes: Uint8Array | string, port: number, host = this.host): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(typeof bytes === 'string' ? Buffer.from(bytes) : bytes, port, host, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
  }

  waitFor(pred: (r: Received) => boolean, ms: number): Promise<Received | undefined> {
    return this.log.waitFor(pred, ms);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}

/* ------------------------------------------------------------------------------------------ */
/* TCP                                                                                         */
/* ------------------------------------------------------------------------------------------ */

/** A TCP connection that sends exact bytes and frames (RFC 3261 §18.3) what comes back. */
export class TcpPeer {
  private readonly log = new ResponseLog();
  private readonly framer = new StreamFramer();
  private isClosed = false;
  readonly closed: Promise<void>;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.isClosed = true;
        this.log.wake();
        resolve();
      });
    });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      for (const e of this.framer.push(
        new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength),
      )) {
        if (e.type !== 'message') continue;
        const r = readResponse(e.bytes, 'stream', {
          address: socket.remoteAddress ?? '',
          port: socket.remotePort ?? 0,
        });
        if (r !== undefined) this.log.add(r);
        else this.log.other++;
      }
    });
  }

  /** Connects within `ms`. */
  static connect(host: string, port: number, ms = 5000): Promise<TcpPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`TCP connect to ${host}:${port} timed out after ${ms} ms`));
      }, ms);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new TcpPeer(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  get responses(): readonly Received[] {
    return this.log.responses;
  }

  /** True once the server (or we) closed the connection. */
  get isOpen(): boolean {
    return !this.isClosed;
  }

  /** Writes the bytes; resolves false when the connection is gone. */
  write(bytes: Uint8Array | string): Promise<boolean> {
    if (this.isClosed || this.socket.destroyed) return Promise.resolve(false);
    return new Promise((resolve) => this.socket.write(bytes, (e) => resolve(e == null)));
  }

  /** The first response matching `pred`, or undefined after `ms` or once the connection closed. */
  waitFor(pred: (r: Received) => boolean, ms: number): Promise<Received | undefined> {
    return this.log.waitFor(pred, ms, () => this.isClosed);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/* ------------------------------------------------------------------------------------------ */
/* OPTIONS probes                                                                              */
/* ------------------------------------------------------------------------------------------ */

/**
 * An OPTIONS to the server itself (no user part: the registrar answers 200, RFC 3261 §11),
 * with a fresh Call-ID and branch. `rport` (RFC 3581) brings the UDP answer back to the port
 * it came from.
 */
export function optionsRequest(o: {
  readonly transport: 'UDP' | 'TCP';
  readonly host: string;
  readonly localPort: number;
  readonly callId: string;
}): string {
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return [
    'OPTIONS sip:example.com SIP/2.0',
    `Via: SIP/2.0/${o.transport} ${host}:${o.localPort};branch=z9hG4bK${token()};rport`,
    'Max-Forwards: 70',
    `From: <sip:probe@example.com>;tag=${token()}`,
    'To: <sip:example.com>',
    `Call-ID: ${o.callId}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

const isFinalFor =
  (callId: string) =>
  (r: Received): boolean =>
    r.status >= 200 && r.callId === callId;

/**
 * OPTIONS from `peer` to the server over UDP, retransmitted as a client transaction would
 * (RFC 3261 §17.1.2.2: T1 = 500 ms, doubling) until a final response or `timeoutMs`.
 * Resolves with the final status, or undefined when none came.
 */
export async function probeUdp(
  peer: UdpPeer,
  serverPort: number,
  serverHost = peer.host,
  timeoutMs = 8000,
): Promise<number | undefined> {
  const callId = `probe-${token()}`;
  const bytes = optionsRequest({
    transport: 'UDP',
    host: peer.host,
    localPort: peer.port,
    callId,
  });
  const deadline = Date.now() + timeoutMs;
  let interval = 500;
  for (;;) {
    await peer.send(bytes, serverPort, serverHost);
    const left = deadline - Date.now();
    const got = await peer.waitFor(isFinalFor(callId), Math.max(0, Math.min(interval, left)));
    if (got !== undefined) return got.status;
    if (Date.now() >= deadline) return undefined;
    interval = Math.min(interval * 2, 4000);
  }
}

/** OPTIONS on an open TCP connection; the final status, or undefined (closed or timeout). */
export async function probeTcpOn(
  peer: TcpPeer,
  host: string,
  timeoutMs = 8000,
): Promise<number | undefined> {
  const callId = `probe-${token()}`;
  const ok = await peer.write(
    optionsRequest({ transport: 'TCP', host, localPort: peer.localPort, callId }),
  );
  if (!ok) return undefined;
  return (await peer.waitFor(isFinalFor(callId), timeoutMs))?.status;
}

/** OPTIONS over a new TCP connection (closed afterwards). */
export async function probeTcp(
  host: string,
  port: number,
  timeoutMs = 8000,
): Promise<number | undefined> {
  const peer = await TcpPeer.connect(host, port, timeoutMs);
  try {
    return await probeTcpOn(peer, host, timeoutMs);
  } finally {
    peer.destroy();
  }
}
