/**
 * What the transport layer reports, through node:diagnostics_channel rather
 * than a logger or the console (STYLE §14, after undici's
 * lib/core/diagnostics.js). Subscribers get plain objects; message bodies are
 * never included (they may carry SDP keys or user content), only the fields a
 * trace needs to correlate a message with its transaction.
 *
 * Several layers may run in one process, so every event names its layer.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { SipMessage } from '../sip/index.ts';
import type { Endpoint, TransportProtocol } from './transport.ts';

/** The channel names, one per kind of event. */
export const TRANSPORT_CHANNELS = Object.freeze({
  receive: 'switchboard:transport:receive',
  send: 'switchboard:transport:send',
  error: 'switchboard:transport:error',
  connection: 'switchboard:transport:connection',
} as const);

/** A SIP message received or sent (no body, no header values but the identifying ones). */
export interface TransportMessageEvent {
  readonly layer: string;
  readonly protocol: TransportProtocol;
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly connectionId?: string;
  readonly kind: 'request' | 'response';
  readonly method?: string;
  readonly status?: number;
  readonly callId?: string;
  readonly cseq?: string;
  readonly branch?: string;
  /** Octets on the wire. */
  readonly size: number;
}

/**
 * Why an error event was published:
 * - `parse`: a message that does not parse (answered 400/505/513 or dropped);
 * - `framing`: a stream whose framing broke (answered when possible, then closed);
 * - `dropped`: a message that parsed but is dropped (a response whose sent-by is not ours, §18.1.2);
 * - `limit`: a connection refused by the per-IP cap or the connection was idle too long;
 * - `socket`: a socket or TLS error;
 * - `send`, `connect`: a send or connect that failed (the promise rejects as well);
 * - `overload`: a new request dropped unparsed while its UDP socket was behind (shedAfterMs, shedAtFill).
 */
export type TransportErrorType =
  'parse' | 'framing' | 'dropped' | 'limit' | 'socket' | 'send' | 'connect' | 'overload';

export interface TransportErrorEvent {
  readonly layer: string;
  readonly type: TransportErrorType;
  /** A wire error code (SB_ERR_PARSE_...), a TransportError code, or a node error code (ECONNRESET). */
  readonly code?: string;
  readonly protocol?: TransportProtocol;
  readonly local?: Endpoint;
  readonly remote?: Endpoint;
  readonly connectionId?: string;
  /** The status answered, when an error response was sent. */
  readonly answered?: number;
  readonly detail: string;
}

export interface TransportConnectionEvent {
  readonly layer: string;
  readonly event: 'open' | 'close';
  readonly connectionId: string;
  readonly protocol: TransportProtocol;
  /** inbound: the peer connected to us; outbound: we connected. */
  readonly direction: 'inbound' | 'outbound';
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly reason?: string;
}

const receiveChannel = diagnosticsChannel.channel(TRANSPORT_CHANNELS.receive);
const sendChannel = diagnosticsChannel.channel(TRANSPORT_CHANNELS.send);
const errorChannel = diagnosticsChannel.channel(TRANSPORT_CHANNELS.error);
const connectionChannel = diagnosticsChannel.channel(TRANSPORT_CHANNELS.connection);

/** The identifying fields of a message, read defensively (a built message may lack any of them). */
export function describeMessage(
  m: SipMessage,
): Pick<TransportMessageEvent, 'kind' | 'method' | 'status' | 'callId' | 'cseq' | 'branch'> {
  let branch: string | undefined;
  try {
    branch = m.topVia.branch;
  } catch {
    branch = undefined;
  }
  const base = {
    callId: m.getRaw('Call-ID'),
    cseq: m.getRaw('CSeq'),
    branch,
  };
  return m.isRequest()
    ? { kind: 'request', method: m.method, ...base }
    : { kind: 'response', status: m.isResponse() ? m.status : undefined, ...base };
}

/** Publishes one layer's events; each method is a no-op when nobody subscribes. */
export class TransportDiagnostics {
  readonly layer: string;

  constructor(layer: string) {
    this.layer = layer;
  }

  receive(e: Omit<TransportMessageEvent, 'layer'>): void {
    if (receiveChannel.hasSubscribers) receiveChannel.publish({ layer: this.layer, ...e });
  }

  send(e: Omit<TransportMessageEvent, 'layer'>): void {
    if (sendChannel.hasSubscribers) sendChannel.publish({ layer: this.layer, ...e });
  }

  error(e: Omit<TransportErrorEvent, 'layer'>): void {
    if (errorChannel.hasSubscribers) errorChannel.publish({ layer: this.layer, ...e });
  }

  connection(e: Omit<TransportConnectionEvent, 'layer'>): void {
    if (connectionChannel.hasSubscribers) connectionChannel.publish({ layer: this.layer, ...e });
  }

  /** True when someone listens for message events (lets callers skip building them). */
  get tracing(): boolean {
    return receiveChannel.hasSubscribers || sendChannel.hasSubscribers;
  }
}
