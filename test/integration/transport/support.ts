/**
 * Helpers for the transport integration tests: throwaway certificates made with
 * openssl, a recording TransportDelegate, request builders, raw UDP/TCP peers
 * for bad input, and bounded waits. Everything runs on loopback (127.0.0.1, ::1).
 */
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequest, type SipRequest, type SipResponse } from '../../../src/sip/index.ts';
import {
  viaFor,
  type InboundRequest,
  type InboundResponse,
  type ListenerInfo,
  type TransportDelegate,
} from '../../../src/transport/index.ts';

/** Fails after `ms` unless `p` settles first. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- certificates ---------------------------------------------------------------------------

export interface TestCerts {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  /** A CA nobody trusts (for the negative test). */
  readonly otherCa: string;
  cleanup(): void;
}

const OPENSSL = '/usr/bin/openssl';

/**
 * A throwaway CA and a server certificate for IP 127.0.0.1, IP ::1 and
 * DNS localhost, signed by it (EC P-256: fast), in a temp dir removed by cleanup().
 */
export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-tls-'));
  const f = (name: string): string => join(dir, name);
  const run = (args: string[]): void => {
    execFileSync(OPENSSL, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = (name: string): void =>
    run([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.crt`),
      '-days',
      '2',
      '-subj',
      `/CN=Switchboard ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  ca('test-ca');
  ca('other-ca');
  run([
    'req',
    ...ec,
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  writeFileSync(
    f('ext.cnf'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid,issuer',
      '',
    ].join('\n'),
  );
  run([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('test-ca.crt'),
    '-CAkey',
    f('test-ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.crt'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  ]);
  const certs = {
    ca: readFileSync(f('test-ca.crt'), 'utf8'),
    otherCa: readFileSync(f('other-ca.crt'), 'utf8'),
    cert: readFileSync(f('server.crt'), 'utf8'),
    key: readFileSync(f('server.key'), 'utf8'),
  };
  rmSync(dir, { recursive: true, force: true });
  return { ...certs, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---- IPv6 ---------------------------------------------------------------------------------------

/** True when ::1 can be bound (some containers have no IPv6 loopback). */
export async function ipv6Available(): Promise<boolean> {
  const s = createSocket({ type: 'udp6', ipv6Only: true });
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(0, '::1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    await new Promise<void>((r) => s.close(() => r()));
  }
}

/**
 * Skips loudly: the reason goes to stderr as well as to the test report. Under
 * CI=true nothing is skipped: the condition is an error there.
 */
export function loudSkip(t: { skip(msg?: string): void }, reason: string): void {
  if (process.env.CI === 'true') throw new Error(`required in CI: ${reason}`);
  process.stderr.write(`\n!!! SKIPPED: ${reason}\n\n`);
  t.skip(reason);
}

// ---- messages -------------------------------------------------------------------------------

let seq = 0; // test-only counter

/** A request whose top Via is `from`'s, with an rport flag (RFC 3581) unless told otherwise. */
export function makeRequest(
  from: ListenerInfo,
  options: {
    method?: string;
    uri?: string;
    body?: string;
    rport?: boolean;
    via?: string;
    headers?: [string, string][];
  } = {},
): SipRequest {
  seq += 1;
  const method = options.method ?? 'OPTIONS';
  return createRequest({
    method,
    uri: options.uri ?? 'sip:bob@127.0.0.1',
    from: `<sip:alice@example.com>;tag=t${seq}`,
    to: '<sip:bob@example.com>',
    callId: `call-${seq}-${Math.random().toString(36).slice(2)}@test`,
    cseq: seq,
    via: [
      options.via ??
        viaFor(from, `z9hG4bKtest${seq}x${Math.random().toString(36).slice(2)}`, {
          rport: options.rport ?? true,
        }),
    ],
    headers: options.headers,
    body: options.body,
    contentType: options.body === undefined ? undefined : 'text/plain',
  });
}

// ---- a recording delegate ------------------------------------------------------------------------

type Waiter<T> = { pred: (x: T) => boolean; resolve: (x: T) => void };

/** Collects what a layer delivers; `nextRequest()` / `nextResponse()` wait for the next one. */
export class Recorder implements TransportDelegate {
  readonly requests: InboundRequest[] = [];
  readonly responses: InboundResponse[] = [];
  readonly closed: string[] = [];
  private reqWaiters: Waiter<InboundRequest>[] = [];
  private resWaiters: Waiter<InboundResponse>[] = [];
  private reqSeen = 0;
  private resSeen = 0;

  onRequest(req: InboundRequest): void {
    this.requests.push(req);
    this.reqWaiters = this.reqWaiters.filter((w) => (w.pred(req) ? (w.resolve(req), false) : true));
  }

  onResponse(res: InboundResponse): void {
    this.responses.push(res);
    this.resWaiters = this.resWaiters.filter((w) => (w.pred(res) ? (w.resolve(res), false) : true));
  }

  onConnectionClosed(id: string): void {
    this.closed.push(id);
  }

  /** The next request not yet returned by nextRequest (waits up to `ms`). */
  nextRequest(ms = 2000): Promise<InboundRequest> {
    const i = this.reqSeen++;
    if (i < this.requests.length) return Promise.resolve(this.requests[i]!);
    return within(
      new Promise((resolve) =>
        this.reqWaiters.push({
          pred: () => this.requests.length > i,
          resolve: () => resolve(this.requests[i]!),
        }),
      ),
      ms,
      'a request',
    );
  }

  nextResponse(ms = 2000): Promise<InboundResponse> {
    const i = this.resSeen++;
    if (i < this.responses.length) return Promise.resolve(this.responses[i]!);
    return within(
      new Promise((resolve) =>
        this.resWaiters.push({
          pred: () => this.responses.length > i,
          resolve: () => resolve(this.responses[i]!),
        }),
      ),
      ms,
      'a response',
    );
  }
}

/** A response to `req` as a UAS would build it (same Via/From/To/Call-ID/CSeq). */
export { createResponse } from '../../../src/sip/index.ts';
export type { SipResponse };

// ---- raw peers ------------------------------------------------------------------------------------

/** A bare UDP socket on loopback that records what it receives. */
export class RawUdp {
  readonly received: { bytes: Buffer; from: { address: string; port: number } }[] = [];
  private constructor(readonly socket: UdpSocket) {
    socket.on('message', (bytes, rinfo) =>
      this.received.push({ bytes, from: { address: rinfo.address, port: rinfo.port } }),
    );
  }

  static async open(address = '127.0.0.1'): Promise<RawUdp> {
    const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((resolve) => s.bind(0, address, () => resolve()));
    return new RawUdp(s);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(bytes: Uint8Array | string, port: number, address = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(
        typeof bytes === 'string' ? Buffer.from(bytes) : bytes,
        port,
        address,
        (e) => (e ? reject(e) : resolve()),
      ),
    );
  }

  /** Waits for the n-th datagram (1-based). */
  async nth(n: number, ms = 2000): Promise<Buffer> {
    const start = Date.now();
    while (this.received.length < n) {
      if (Date.now() - start > ms) throw new Error(`timed out waiting for datagram #${n}`);
      await sleep(5);
    }
    return this.received[n - 1]!.bytes;
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

/** A bare TCP client on loopback that buffers what it receives and notes the close. */
export class RawTcp {
  data = Buffer.alloc(0);
  ended = false;
  private constructor(readonly socket: Socket) {
    socket.on('data', (d) => {
      this.data = Buffer.concat([this.data, d]);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
    });
  }

  static async open(port: number, host = '127.0.0.1'): Promise<RawTcp> {
    const s = connect({ port, host });
    await within(
      new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('error', reject);
      }),
      2000,
      'tcp connect',
    );
    return new RawTcp(s);
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  get text(): string {
    return this.data.toString('latin1');
  }

  async until(pred: (self: RawTcp) => boolean, ms = 2000, what = 'tcp data'): Promise<void> {
    const start = Date.now();
    while (!pred(this)) {
      if (Date.now() - start > ms)
        throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.text)}`);
      await sleep(5);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The status code of the first Status-Line in `text`, if any. */
export function statusOf(text: string): number | undefined {
  const m = /^SIP\/2\.0 (\d{3}) /m.exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** A request text with CRLF line ends. */
export function rawRequest(lines: string[], body = ''): string {
  return lines.join('\r\n') + '\r\n\r\n' + body;
}
