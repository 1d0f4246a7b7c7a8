/**
 * The transport layer's contract (RFC 3261 §18): what the transaction layer and
 * the stack see of UDP, TCP, TLS, WS and WSS. One implementation per kind lives
 * beside this file; `TransportLayer` multiplexes them (several listeners at
 * once) and is what the layers above use. An in-memory implementation of the
 * same interface (memory.ts) serves deterministic tests.
 *
 * Everything here is an interface or a plain type: no node: import, so the
 * transaction layer depends on this file only (layer table: transaction may
 * import the transport interface).
 */
import type { SipMessage, SipRequest, SipResponse } from '../sip/index.ts';

/** RFC 3261 §18 transports, plus SIP over WebSocket (RFC 7118). */
export type TransportProtocol = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

/** The Via transport token for a protocol (RFC 3261 §20.42, RFC 7118 §5). */
export const VIA_TRANSPORT: Readonly<Record<TransportProtocol, string>> = {
  udp: 'UDP',
  tcp: 'TCP',
  tls: 'TLS',
  ws: 'WS',
  wss: 'WSS',
};

/** Reliable transports: no retransmission of requests (§17.1.1.2: Timer A not set) and T4-based timers are 0. */
export function isReliable(p: TransportProtocol): boolean {
  return p !== 'udp';
}

/** An endpoint: IP literal (IPv6 without brackets) and port. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** A listener: what we bound, and how we appear in Via and Contact. */
export interface ListenerInfo {
  readonly id: string;
  readonly protocol: TransportProtocol;
  readonly local: Endpoint;
  /** Host to put in Via sent-by and Contact (defaults to local.address; IPv6 bracketed by the caller). */
  readonly advertisedHost: string;
  readonly advertisedPort: number;
}

/** Where to send a message. */
export interface Destination {
  readonly protocol: TransportProtocol;
  readonly address: string;
  readonly port: number;
  /** Reuse this stream connection (responses, requests to a peer that connected to us). */
  readonly connectionId?: string;
  /** For TLS/WSS: the name to verify the peer certificate against (SNI). */
  readonly serverName?: string;
}

/** Where a received message came from. */
export interface Source {
  readonly protocol: TransportProtocol;
  /** Remote address and port as seen on the socket. */
  readonly address: string;
  readonly port: number;
  /** The listener (or outbound socket's listener) that received it. */
  readonly listener: ListenerInfo;
  /** Stream transports: the connection the message arrived on. */
  readonly connectionId?: string;
}

export interface InboundRequest {
  readonly message: SipRequest;
  readonly source: Source;
}

export interface InboundResponse {
  readonly message: SipResponse;
  readonly source: Source;
}

/**
 * Callbacks from the transport layer. Requests and responses arrive parsed; the
 * transport layer has already answered unparseable requests with 400/513 (when
 * a Via made that possible), dropped unparseable responses (§18.1.2), added
 * `received`/`rport` to the top Via of requests (§18.2.1, RFC 3581), and closed
 * streams whose framing broke.
 */
export interface TransportDelegate {
  onRequest(req: InboundRequest): void;
  onResponse(res: InboundResponse): void;
  /** A stream connection closed (the transaction layer fails transactions bound to it). */
  onConnectionClosed?(connectionId: string): void;
}

/** Stable codes of transport failures (thrown as TransportError, or rejected promises). */
export const TRANSPORT_ERROR_CODES = [
  'SB_ERR_TRANSPORT_NO_LISTENER', // no listener can reach that destination (protocol/family)
  'SB_ERR_TRANSPORT_CONNECT', // connection refused / timed out
  'SB_ERR_TRANSPORT_SEND', // socket error while sending
  'SB_ERR_TRANSPORT_CLOSED', // layer or connection closed
] as const;

export type TransportErrorCode = (typeof TRANSPORT_ERROR_CODES)[number];

export class TransportError extends Error {
  readonly code: TransportErrorCode;
  constructor(code: TransportErrorCode, message: string) {
    super(message);
    this.name = 'TransportError';
    this.code = code;
  }
}

export interface TransportLayer {
  /** Listening sockets, in the order they were configured. */
  readonly listeners: readonly ListenerInfo[];
  setDelegate(delegate: TransportDelegate): void;
  /**
   * The listener a message to `dest` would leave from (same protocol and
   * address family), for building Via sent-by and Contact before sending.
   */
  listenerFor(dest: Destination): ListenerInfo | undefined;
  /**
   * Sends a request (or an ACK/CANCEL) to `dest`. Stream transports reuse an
   * open connection to that endpoint or open one. Resolves when handed to the
   * socket; rejects with TransportError.
   */
  sendRequest(message: SipRequest, dest: Destination): Promise<void>;
  /**
   * Sends a response per RFC 3261 §18.2.2 (and RFC 3581 rport) using its top
   * Via and the source of the request it answers: over the same connection for
   * streams, to received/rport (or sent-by) for UDP.
   */
  sendResponse(message: SipResponse, requestSource: Source): Promise<void>;
  /** Serialized size check used by the MTU rule (§18.1.1); exposed for tests. */
  serializedSize?(message: SipMessage): number;
  close(): Promise<void>;
}
