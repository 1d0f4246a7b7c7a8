/**
 * The interface every transport kind implements (STYLE §14: one kind per file,
 * listeners split from connections, after sofia-sip's tport vtable):
 * udp.ts is a DatagramListener; tcp.ts, tls.ts and ws.ts (WS and WSS) are
 * StreamListeners whose connections are StreamConnections. The layer
 * (layer.ts) owns the listeners and the ConnectionTable and is the
 * ListenerHost they report to. Internal: not exported from index.ts.
 */
import { networkInterfaces } from 'node:os';
import type { Clock } from '../base/index.ts';
import type { MessageLimits } from '../base/index.ts';
import type { TransportDiagnostics } from './diagnostics.ts';
import { formatHostPort } from './address.ts';
import type { Destination, Endpoint, ListenerInfo, TransportProtocol } from './transport.ts';

/** One open stream connection (TCP, TLS, WS or WSS), inbound or outbound. */
export interface StreamConnection {
  readonly id: string;
  readonly protocol: TransportProtocol;
  /** inbound: the peer connected to one of our listeners; outbound: we connected. */
  readonly direction: 'inbound' | 'outbound';
  readonly local: Endpoint;
  readonly remote: Endpoint;
  /** The listener that accepted it, or whose protocol/family it was opened for. */
  readonly listener: ListenerInfo;
  /**
   * 'stream': bytes that a StreamFramer cuts into messages (RFC 3261 §18.3);
   * 'message': one SIP message per transport message (RFC 7118 §5.1).
   */
  readonly framing: 'stream' | 'message';
  /** True once the connection is closing or closed: nothing more can be written. */
  readonly closed: boolean;
  /** Writes octets; rejects with TransportError SB_ERR_TRANSPORT_SEND or _CLOSED. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes gracefully after what was written (FIN, or a WebSocket close); destroyed if the peer lingers. */
  end(): void;
  /** Closes now. */
  destroy(): void;
}

/** What a listener reports to, and the settings it needs (all per layer instance). */
export interface ListenerHost {
  readonly clock: Clock;
  readonly limits: MessageLimits;
  readonly diagnostics: TransportDiagnostics;
  /** Bound on outbound connection establishment (TCP connect + TLS/WebSocket handshake). */
  readonly connectTimeoutMs: number;
  /** After a graceful end(), how long the peer may keep the connection before it is destroyed. */
  readonly lingerMs: number;
  /** A fresh connection id. */
  nextConnectionId(protocol: TransportProtocol): string;
  /** Whether one more inbound connection from this address is allowed (per-IP cap). */
  admit(remoteAddress: string): boolean;
  /**
   * Where a UDP socket's queue cannot be read, how long its reads may stay behind before
   * `datagram` is told so (backlog.ts); 0: never told.
   */
  readonly shedAfterMs: number;
  /**
   * Where a UDP socket's queue can be read (Linux), the share of its receive buffer in use from
   * which full read batches count as behind; 0: never read it (the time rule alone).
   */
  readonly shedAtFill: number;
  /**
   * A datagram arrived on a UDP listener; `backlogged`: its socket is behind (backlog.ts), so
   * new work may be shed.
   */
  datagram(listener: ListenerInfo, bytes: Uint8Array, remote: Endpoint, backlogged?: boolean): void;
  /** A connection is established (inbound after any handshake, or outbound). */
  opened(conn: StreamConnection): void;
  /** Octets ('stream' framing) or one whole message ('message' framing) arrived. */
  data(conn: StreamConnection, bytes: Uint8Array): void;
  /** The connection is gone (after `opened`). */
  closed(conn: StreamConnection, reason: string): void;
}

/** TLS material for a TLS or WSS listener, and for the connections opened from it. */
export interface TlsCredentials {
  /** PEM certificate chain of this endpoint. */
  readonly cert: string | Buffer;
  /** PEM private key. */
  readonly key: string | Buffer;
  /**
   * PEM trust anchors for verifying peers (outbound connections' servers); the
   * system's CA bundle when absent.
   */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
}

/** How a listener is created. */
export interface ListenerSettings {
  /** Default: `protocol:address:port` with the bound port. */
  readonly id?: string;
  readonly protocol: TransportProtocol;
  readonly address: string;
  readonly port: number;
  readonly advertisedHost?: string;
  readonly advertisedPort?: number;
  /** TLS and WSS: the certificate to serve and the trust for outbound connections. */
  readonly tls?: TlsCredentials;
  /** TLS and WSS outbound: verify the server certificate (default true). */
  readonly rejectUnauthorized: boolean;
  /** TLS: outbound connections only; no certificate needed (handshakes to it fail). */
  readonly clientOnly?: boolean;
}

export interface DatagramListener {
  readonly kind: 'datagram';
  readonly info: ListenerInfo;
  /** Sends one datagram; rejects with TransportError SB_ERR_TRANSPORT_SEND. */
  send(bytes: Uint8Array, to: Endpoint): Promise<void>;
  close(): Promise<void>;
}

export interface StreamListener {
  readonly kind: 'stream';
  readonly info: ListenerInfo;
  /**
   * Opens a connection to `dest` (reporting it to the host with `opened`);
   * rejects with TransportError SB_ERR_TRANSPORT_CONNECT.
   */
  connect(dest: Destination): Promise<StreamConnection>;
  /**
   * Closes the listening socket only: new connections are refused, the open ones stay
   * (a draining server still answers on them) until `close()`.
   */
  stopAccepting(): void;
  /** Stops accepting and destroys every socket it still holds. */
  close(): Promise<void>;
}

export type TransportListener = DatagramListener | StreamListener;

/** The ListenerInfo of a bound socket: advertised host/port default to the bound ones. */
export function listenerInfo(settings: ListenerSettings, bound: Endpoint): ListenerInfo {
  return Object.freeze({
    id: settings.id ?? `${settings.protocol}:${formatHostPort(bound.address, bound.port)}`,
    protocol: settings.protocol,
    local: Object.freeze({ address: bound.address, port: bound.port }),
    advertisedHost: settings.advertisedHost ?? reachableAddress(bound.address),
    advertisedPort: settings.advertisedPort ?? bound.port,
  });
}

/**
 * The address to put in Via and Record-Route for a socket bound to `address`. A
 * wildcard bind (0.0.0.0, ::) is no address a peer can send to (RFC 3261 §18.1.1:
 * sent-by is where responses and, in Record-Route, later requests go), so the first
 * non-internal interface address of the same family stands in, else loopback.
 */
export function reachableAddress(address: string): string {
  const v6 = address === '::';
  if (address !== '0.0.0.0' && !v6) return address;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal || (a.family === 'IPv6') !== v6) continue;
      if (v6 && a.address.toLowerCase().startsWith('fe80:')) continue;
      return a.address;
    }
  }
  return v6 ? '::1' : '127.0.0.1';
}
