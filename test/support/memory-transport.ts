/**
 * An in-memory pair of TransportLayers (STYLE §13: the seam for deterministic
 * tests of the transaction and dialog layers). Endpoints A and B each implement
 * the TransportLayer contract of src/transport/transport.ts; every message sent
 * is serialized, delivered after a delay on the injected clock (a ManualClock
 * in tests), and parsed again on arrival with parseMessage, so what arrives is
 * what a socket would have carried.
 *
 * Over 'udp' a seeded random source (src/base/ids.ts seededRandom) drops a
 * share of the messages (`dropRate`); 'tcp' is reliable and never drops.
 * Every send is recorded, dropped or not, in `network.records`.
 */
import type { Clock } from '../../src/base/clock.ts';
import { MAGIC_COOKIE, seededRandom, type RandomSource } from '../../src/base/ids.ts';
import { createRequest } from '../../src/sip/message/builder.ts';
import type { SipMessage, SipRequest, SipResponse } from '../../src/sip/message/message.ts';
import { messageToString, serializeMessage } from '../../src/sip/message/serialize.ts';
import { parseMessage } from '../../src/sip/parser/parse-message.ts';
import {
  TransportError,
  VIA_TRANSPORT,
  isReliable,
  type Destination,
  type ListenerInfo,
  type Source,
  type TransportDelegate,
  type TransportErrorCode,
  type TransportLayer,
} from '../../src/transport/transport.ts';

export type EndpointName = 'a' | 'b';

export interface MemoryNetworkOptions {
  /** Drives delivery; a ManualClock makes runs deterministic. */
  readonly clock: Clock;
  /** 'udp' (unreliable, may drop) or 'tcp' (reliable, one connection). Default 'udp'. */
  readonly protocol?: 'udp' | 'tcp';
  /** One-way delay of every message, in ms. Default 5. */
  readonly latencyMs?: number;
  /** Share of messages lost, 0..1, over 'udp' only. Default 0. */
  readonly dropRate?: number;
  /** Seed of the drop decisions (xorshift32). Default 1. */
  readonly seed?: number;
  readonly a?: { readonly address?: string; readonly port?: number };
  readonly b?: { readonly address?: string; readonly port?: number };
}

/** One send, as recorded by the network. */
export interface MemoryRecord {
  /** Order of the send in the run. */
  readonly seq: number;
  /** Clock time of the send. */
  readonly at: number;
  readonly from: EndpointName;
  /** The endpoint addressed, or undefined when no endpoint has that address. */
  readonly to: EndpointName | undefined;
  readonly message: SipRequest | SipResponse;
  /** The octets put on the "wire". */
  readonly bytes: Uint8Array;
  /** Lost on the way (random drop, or nobody at the address). */
  readonly dropped: boolean;
}

interface PendingDelivery {
  readonly to: MemoryTransport;
  readonly from: MemoryTransport;
  readonly bytes: Uint8Array;
}

/** One endpoint: a TransportLayer with one listener. */
export class MemoryTransport implements TransportLayer {
  readonly name: EndpointName;
  readonly listeners: readonly ListenerInfo[];
  /** While set, every send rejects with a TransportError of this code (failure injection). */
  failSends: TransportErrorCode | undefined;
  private delegate: TransportDelegate | undefined;
  private closed = false;
  private readonly network: MemoryNetwork;

  constructor(network: MemoryNetwork, name: EndpointName, listener: ListenerInfo) {
    this.network = network;
    this.name = name;
    this.listeners = [listener];
  }

  get listener(): ListenerInfo {
    return this.listeners[0]!;
  }

  /** Where to send a message to reach this endpoint. */
  get destination(): Destination {
    const l = this.listener;
    return { protocol: l.protocol, address: l.local.address, port: l.local.port };
  }

  get isClosed(): boolean {
    return this.closed;
  }

  setDelegate(delegate: TransportDelegate): void {
    this.delegate = delegate;
  }

  listenerFor(dest: Destination): ListenerInfo | undefined {
    return dest.protocol === this.listener.protocol ? this.listener : undefined;
  }

  /** A Via value for a request leaving this endpoint (§18.1.1, §8.1.1.7). */
  via(branch: string): string {
    const l = this.listener;
    return `SIP/2.0/${VIA_TRANSPORT[l.protocol]} ${l.advertisedHost}:${l.advertisedPort};branch=${branch}`;
  }

  sendRequest(message: SipRequest, dest: Destination): Promise<void> {
    const failure = this.failure();
    if (failure !== undefined) return Promise.reject(failure);
    if (dest.protocol !== this.listener.protocol) {
      return Promise.reject(
        new TransportError('SB_ERR_TRANSPORT_NO_LISTENER', `no ${dest.protocol} listener`),
      );
    }
    const to = this.network.endpointAt(dest.address, dest.port);
    if (to === undefined && isReliable(dest.protocol)) {
      return Promise.reject(
        new TransportError('SB_ERR_TRANSPORT_CONNECT', `${dest.address}:${dest.port} refused`),
      );
    }
    this.network.transmit(this, to, message);
    return Promise.resolve();
  }

  /** §18.2.2: back to where the request came from (the memory network has no NAT, so no rport). */
  sendResponse(message: SipResponse, requestSource: Source): Promise<void> {
    const failure = this.failure();
    if (failure !== undefined) return Promise.reject(failure);
    const to = this.network.endpointAt(requestSource.address, requestSource.port);
    this.network.transmit(this, to, message);
    return Promise.resolve();
  }

  serializedSize(message: SipMessage): number {
    return serializeMessage(message).length;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (isReliable(this.listener.protocol)) this.network.closeConnection();
    }
    return Promise.resolve();
  }

  /** @internal the network delivers a datagram or a framed stream message. */
  receive(from: MemoryTransport, bytes: Uint8Array, connectionId: string | undefined): void {
    if (this.closed) return;
    const parsed = parseMessage(bytes, {
      framing: isReliable(this.listener.protocol) ? 'stream' : 'datagram',
    });
    // §18.1.2 / §18.2.1: what does not parse is dropped (the real transport may answer 400).
    if (!parsed.ok) return;
    const source: Source = {
      protocol: this.listener.protocol,
      address: from.listener.local.address,
      port: from.listener.local.port,
      listener: this.listener,
      ...(connectionId !== undefined ? { connectionId } : {}),
    };
    const m = parsed.message;
    if (m.isRequest()) this.delegate?.onRequest({ message: m, source });
    else if (m.isResponse()) this.delegate?.onResponse({ message: m, source });
  }

  /** @internal */
  connectionClosed(connectionId: string): void {
    this.delegate?.onConnectionClosed?.(connectionId);
  }

  private failure(): TransportError | undefined {
    if (this.closed) return new TransportError('SB_ERR_TRANSPORT_CLOSED', `${this.name} closed`);
    if (this.failSends !== undefined) {
      return new TransportError(this.failSends, `${this.name}: injected failure`);
    }
    return undefined;
  }
}

/** The two endpoints, the link between them, and the record of everything sent. */
export class MemoryNetwork {
  readonly a: MemoryTransport;
  readonly b: MemoryTransport;
  readonly clock: Clock;
  readonly protocol: 'udp' | 'tcp';
  readonly latencyMs: number;
  readonly dropRate: number;
  /** Every send in order, including the dropped ones. */
  readonly records: MemoryRecord[] = [];
  private readonly random: RandomSource;
  private seq = 0;
  private connectionSeq = 1;
  private inFlight = 0;

  constructor(o: MemoryNetworkOptions) {
    this.clock = o.clock;
    this.protocol = o.protocol ?? 'udp';
    this.latencyMs = o.latencyMs ?? 5;
    this.dropRate = o.dropRate ?? 0;
    if (!(this.dropRate >= 0 && this.dropRate <= 1)) throw new RangeError('dropRate must be 0..1');
    this.random = seededRandom(o.seed ?? 1);
    this.a = new MemoryTransport(
      this,
      'a',
      this.listener('a', o.a?.address ?? '192.0.2.1', o.a?.port ?? 5060),
    );
    this.b = new MemoryTransport(
      this,
      'b',
      this.listener('b', o.b?.address ?? '192.0.2.2', o.b?.port ?? 5060),
    );
  }

  /** The id of the current stream connection between A and B (tcp only). */
  get connectionId(): string | undefined {
    return this.protocol === 'tcp' ? `mem-conn-${this.connectionSeq}` : undefined;
  }

  /** Messages sent but not yet delivered (or dropped at delivery). */
  get pending(): number {
    return this.inFlight;
  }

  /** The endpoint listening at address:port, if any. */
  endpointAt(address: string, port: number): MemoryTransport | undefined {
    for (const e of [this.a, this.b]) {
      if (e.listener.local.address === address && e.listener.local.port === port) return e;
    }
    return undefined;
  }

  /** Records sent by `from` (or both), optionally only requests of a method. */
  requests(method?: string, from?: EndpointName): MemoryRecord[] {
    return this.records.filter(
      (r) =>
        r.message.isRequest() &&
        (method === undefined || r.message.method === method) &&
        (from === undefined || r.from === from),
    );
  }

  /** Records of responses, optionally of one status (or class: 1..6) and sender. */
  responses(status?: number, from?: EndpointName): MemoryRecord[] {
    return this.records.filter((r) => {
      if (!r.message.isResponse()) return false;
      if (from !== undefined && r.from !== from) return false;
      if (status === undefined) return true;
      return status < 10
        ? Math.floor(r.message.status / 100) === status
        : r.message.status === status;
    });
  }

  /** A transcript of the run (time, direction, start line), for failure messages. */
  transcript(): string {
    return this.records
      .map((r) => {
        const line = messageToString(r.message).split('\r\n', 1)[0];
        return `${String(r.at).padStart(6)} ${r.from}->${r.to ?? '?'}${r.dropped ? ' (dropped)' : ''} ${line}`;
      })
      .join('\n');
  }

  clearRecords(): void {
    this.records.length = 0;
  }

  /**
   * Closes the stream connection between A and B (tcp): both endpoints report
   * onConnectionClosed, and later sends use a new connection.
   */
  closeConnection(): void {
    const id = this.connectionId;
    if (id === undefined) return;
    this.connectionSeq++;
    this.a.connectionClosed(id);
    this.b.connectionClosed(id);
  }

  /** @internal */
  transmit(
    from: MemoryTransport,
    to: MemoryTransport | undefined,
    message: SipRequest | SipResponse,
  ): void {
    const bytes = serializeMessage(message);
    const lost = to === undefined || (this.protocol === 'udp' && this.drop());
    this.records.push({
      seq: this.seq++,
      at: this.clock.now(),
      from: from.name,
      to: to?.name,
      message,
      bytes,
      dropped: lost,
    });
    if (lost || to === undefined) return;
    const delivery: PendingDelivery = { from, to, bytes };
    const connectionId = this.connectionId;
    this.inFlight++;
    this.clock.setTimer(this.latencyMs, () => {
      this.inFlight--;
      delivery.to.receive(delivery.from, delivery.bytes, connectionId);
    });
  }

  private drop(): boolean {
    if (this.dropRate === 0) return false;
    const b = new Uint8Array(4);
    this.random.fill(b);
    const u = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
    return u / 0x1_0000_0000 < this.dropRate;
  }

  private listener(name: EndpointName, address: string, port: number): ListenerInfo {
    return {
      id: `memory-${name}`,
      protocol: this.protocol,
      local: { address, port },
      advertisedHost: address,
      advertisedPort: port,
    };
  }
}

/** Builds a network of two endpoints. */
export function createMemoryTransportPair(o: MemoryNetworkOptions): MemoryNetwork {
  return new MemoryNetwork(o);
}

export interface TestRequestOptions {
  readonly method: string;
  /** The endpoint sending the request (its listener goes into the Via). */
  readonly from: MemoryTransport;
  /** The endpoint addressed (its address goes into the Request-URI and To). */
  readonly to: MemoryTransport;
  /** Via branch; default a fixed magic-cookie branch built from `callId` and `cseq`. */
  readonly branch?: string;
  readonly callId?: string;
  readonly cseq?: number;
  readonly fromTag?: string;
  readonly toTag?: string;
  /** Further fields in order, e.g. Route. */
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: string;
  readonly contentType?: string;
}

/**
 * A request from one endpoint to the other with the six mandatory fields
 * (§8.1.1) and a Via for the sender's listener. Deterministic by default.
 */
export function testRequest(o: TestRequestOptions): SipRequest {
  const callId = o.callId ?? 'call-1@memory';
  const cseq = o.cseq ?? 1;
  const branch =
    o.branch ??
    `${MAGIC_COOKIE}-${o.method.toLowerCase()}-${cseq}-${callId.replace(/[^A-Za-z0-9]/g, '.')}`;
  const target = o.to.listener;
  const toTag = o.toTag !== undefined ? `;tag=${o.toTag}` : '';
  return createRequest({
    method: o.method,
    uri: `sip:bob@${target.advertisedHost}:${target.advertisedPort}`,
    from: `"Alice" <sip:alice@${o.from.listener.advertisedHost}>;tag=${o.fromTag ?? 'from-tag-1'}`,
    to: `<sip:bob@${target.advertisedHost}>${toTag}`,
    callId,
    cseq,
    via: [o.from.via(branch)],
    contact: `<sip:alice@${o.from.listener.advertisedHost}:${o.from.listener.advertisedPort}>`,
    ...(o.headers !== undefined ? { headers: o.headers } : {}),
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(o.contentType !== undefined ? { contentType: o.contentType } : {}),
  });
}
