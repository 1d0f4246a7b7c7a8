/**
 * A lean SIP user agent over one UDP socket for the presence suite: it places non-INVITE client
 * transactions (RFC 3261 §17.1.2: retransmitted at T1 doubling to T2 until a final response, given
 * up after 64*T1) answered by digest authentication on 407 (RFC 3261 §22.3, the client of
 * src/auth), and answers every request it gets (NOTIFY) with 200 at once, statelessly (a
 * retransmitted NOTIFY gets the same 200 again).
 *
 * Leaner than a Switchboard stack per watcher on purpose: the benchmark shares the machine with
 * the server it measures, so the thousand watchers should cost it as little CPU as possible.
 * Responses are matched to transactions by the top Via branch (§17.1.3).
 */
import { createSocket, type Socket } from 'node:dgram';
import { cryptoRandom } from '../../../src/base/index.ts';
import { createDigestClient, type DigestClient } from '../../../src/auth/index.ts';
import {
  createResponse,
  parseMessage,
  serializeMessage,
  SipRequest,
  type SipResponse,
} from '../../../src/sip/index.ts';

/** RFC 3261 §17.1.2.2 timers for UDP, ms. */
const T1 = 500;
const T2 = 4000;
const TIMER_F = 64 * T1;

const random = cryptoRandom();
const hex = (bytes: number): string => {
  const b = new Uint8Array(bytes);
  random.fill(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
};

export interface Account {
  readonly user: string;
  readonly password: string;
  readonly domain: string;
}

/** What a request handler is told about a request received (after it was answered 200). */
export interface Received {
  readonly request: SipRequest;
  /** The datagram as received (to look for text without decoding the body). */
  readonly raw: Buffer;
  /** performance.now() when it was read. */
  readonly at: number;
}

interface Pending {
  readonly resolve: (r: SipResponse) => void;
  readonly reject: (e: Error) => void;
  retransmit: NodeJS.Timeout;
  readonly giveUp: NodeJS.Timeout;
}

/** One UDP socket on 127.0.0.1 shared by several accounts. */
export class UdpAgent {
  private readonly pending = new Map<string, Pending>();
  private onRequest: (r: Received) => void = () => undefined;
  /** Requests received, and retransmitted ones among them (same Call-ID and CSeq as before). */
  received = 0;
  /** Datagrams that did not parse. */
  unparsable = 0;

  private constructor(
    private readonly socket: Socket,
    readonly port: number,
    private readonly server: { address: string; port: number },
  ) {
    socket.on('message', (msg, rinfo) => this.take(msg, rinfo.address, rinfo.port));
  }

  static async open(
    server: { address: string; port: number },
    recvBufferSize: number,
  ): Promise<UdpAgent> {
    const socket = createSocket({ type: 'udp4', recvBufferSize });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpAgent(socket, socket.address().port, server);
  }

  /** The receive buffer the kernel granted (it caps the request at net.core.rmem_max). */
  get recvBufferSize(): number {
    return this.socket.getRecvBufferSize();
  }

  handleRequests(handler: (r: Received) => void): void {
    this.onRequest = handler;
  }

  private take(msg: Buffer, address: string, port: number): void {
    const at = performance.now();
    const r = parseMessage(msg);
    if (!r.ok) {
      this.unparsable++;
      return;
    }
    const m = r.message;
    if (m instanceof SipRequest) {
      this.received++;
      // Answered before anything else: the server holds the next NOTIFY of the dialog until
      // this one is answered (RFC 6665 §4.2.2).
      this.socket.send(serializeMessage(createResponse(m, 200)), port, address);
      this.onRequest({ request: m, raw: msg, at });
      return;
    }
    const branch = m.topVia.branch;
    const p = branch === undefined ? undefined : this.pending.get(branch);
    if (p === undefined || m.status < 200) return;
    this.pending.delete(branch!);
    clearTimeout(p.retransmit);
    clearTimeout(p.giveUp);
    p.resolve(m);
  }

  /** Sends `request` as a client transaction; resolves with its final response. */
  private transaction(request: SipRequest): Promise<SipResponse> {
    const bytes = serializeMessage(request);
    const branch = request.topVia.branch!;
    const send = (): void => this.socket.send(bytes, this.server.port, this.server.address);
    return new Promise<SipResponse>((resolve, reject) => {
      let interval = T1;
      const again = (): NodeJS.Timeout =>
        setTimeout(() => {
          send();
          interval = Math.min(interval * 2, T2);
          p.retransmit = again();
        }, interval);
      const p: Pending = {
        resolve,
        reject,
        retransmit: again(),
        giveUp: setTimeout(() => {
          this.pending.delete(branch);
          clearTimeout(p.retransmit);
          reject(new Error(`${request.method} ${request.callId}: no final response (Timer F)`));
        }, TIMER_F),
      };
      this.pending.set(branch, p);
      send();
    });
  }

  /**
   * A request answered 407 (or 401) once with credentials from `digest`, which adds those of
   * the last challenge it answered beforehand; `build(cseq, via)` makes each attempt (a new
   * Via branch, and the CSeq one up for the second: RFC 3261 §22.2, §8.1.3.5).
   */
  async request(
    digest: DigestClient,
    build: (cseq: number, via: string) => SipRequest,
    cseq: number,
  ): Promise<{ response: SipResponse; cseq: number; sentAt: number }> {
    const via = (): string => `SIP/2.0/UDP 127.0.0.1:${this.port};branch=z9hG4bK${hex(8)};rport`;
    const first = digest.preauthorize(build(cseq, via()));
    const sentAt = performance.now();
    let response = await this.transaction(first);
    if (response.status === 407 || response.status === 401) {
      cseq++;
      const retry = digest.authorize(build(cseq, via()), response);
      if (retry !== undefined) response = await this.transaction(retry);
    }
    return { response, cseq, sentAt };
  }

  /** `sip:user@127.0.0.1:port` in angle brackets, for Contact. */
  contact(user: string): string {
    return `<sip:${user}@127.0.0.1:${this.port}>`;
  }

  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.retransmit);
      clearTimeout(p.giveUp);
      p.reject(new Error('closed'));
    }
    this.pending.clear();
    this.socket.close();
  }
}

/** A digest client for `account` answering MD5 challenges only (what the server is set to). */
export function digestFor(account: Account): DigestClient {
  return createDigestClient({
    username: account.user,
    password: account.password,
    random,
    algorithms: ['MD5'],
  });
}

export const newCallId = (): string => `${hex(12)}@bench`;
export const newTag = (): string => hex(6);
