/**
 * The open stream connections of one transport layer (TCP, TLS, WS, WSS),
 * keyed by id and by remote endpoint + protocol, so that
 * - a response goes back over the connection its request came on (RFC 3261
 *   §18.2.2: "the server transport uses ... the same connection"), and
 * - a request to a peer that already has a connection with us, whether it
 *   connected to us or we to it, reuses that connection (§18.1.1: "the client
 *   transport ... SHOULD use ... an existing connection").
 *
 * The table also owns what protects the process from its peers:
 * - a StreamFramer per byte-stream connection built with the layer's
 *   MessageLimits (RFC 3261 §18.3 framing, each limit failing with its own code);
 * - an idle timeout on the injected Clock (no raw timers, STYLE §3): a
 *   connection that carries nothing for `idleTimeoutMs` is closed;
 * - a cap on inbound connections per source IP address.
 *
 * No I/O happens here except `destroy()` on idle connections: the layer reads
 * the events that `receive` returns and acts on them.
 */
import { defaultLimits, type Clock, type MessageLimits, type TimerHandle } from '../base/index.ts';
import { StreamFramer, type FramerEvent } from '../sip/index.ts';
import { endpointKey, normalizeAddress } from './address.ts';
import { classifyKeepalive } from './keepalive.ts';
import type { StreamConnection } from './listener.ts';
import type { Endpoint, TransportProtocol } from './transport.ts';

export interface ConnectionTableOptions {
  readonly clock: Clock;
  readonly limits?: MessageLimits;
  /** Close a connection after this long without traffic in either direction; 0 disables. */
  readonly idleTimeoutMs: number;
  /** Most inbound connections from one source IP address at a time. */
  readonly maxConnectionsPerIp: number;
  /** Told when a connection is closed for idleness (before it is destroyed). */
  readonly onIdle?: (conn: StreamConnection) => void;
}

interface Entry {
  readonly conn: StreamConnection;
  readonly key: string;
  readonly ip: string;
  /** Byte streams only: cuts the stream into messages. */
  readonly framer: StreamFramer | undefined;
  lastActivity: number;
  timer: TimerHandle | undefined;
}

export class ConnectionTable {
  private readonly clock: Clock;
  private readonly limits: MessageLimits;
  private readonly idleTimeoutMs: number;
  private readonly maxPerIp: number;
  private readonly onIdle: ((conn: StreamConnection) => void) | undefined;
  private readonly byId = new Map<string, Entry>();
  /** Endpoint key → ids, oldest first. */
  private readonly byEndpoint = new Map<string, string[]>();
  /** Inbound connections per normalized source address. */
  private readonly inboundPerIp = new Map<string, number>();

  constructor(options: ConnectionTableOptions) {
    this.clock = options.clock;
    this.limits = options.limits ?? defaultLimits;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.maxPerIp = options.maxConnectionsPerIp;
    this.onIdle = options.onIdle;
  }

  /** Number of connections held. */
  get size(): number {
    return this.byId.size;
  }

  /** Inbound connections currently held from this address. */
  inboundFrom(address: string): number {
    return this.inboundPerIp.get(normalizeAddress(address)) ?? 0;
  }

  /** Whether one more inbound connection from this address stays within the per-IP cap. */
  admits(address: string): boolean {
    return this.inboundFrom(address) < this.maxPerIp;
  }

  /** Adds a connection (inbound ones count against their source address's cap). */
  add(conn: StreamConnection): void {
    if (this.byId.has(conn.id)) return;
    const key = endpointKey(conn.protocol, conn.remote);
    const ip = normalizeAddress(conn.remote.address);
    const entry: Entry = {
      conn,
      key,
      ip,
      framer: conn.framing === 'stream' ? new StreamFramer(this.limits) : undefined,
      lastActivity: this.clock.now(),
      timer: undefined,
    };
    this.byId.set(conn.id, entry);
    const ids = this.byEndpoint.get(key);
    if (ids === undefined) this.byEndpoint.set(key, [conn.id]);
    else ids.push(conn.id);
    if (conn.direction === 'inbound')
      this.inboundPerIp.set(ip, (this.inboundPerIp.get(ip) ?? 0) + 1);
    this.arm(entry, this.idleTimeoutMs);
  }

  /** Removes a connection; false when it was not held. */
  remove(id: string): boolean {
    const entry = this.byId.get(id);
    if (entry === undefined) return false;
    this.byId.delete(id);
    entry.timer?.cancel();
    entry.timer = undefined;
    const ids = this.byEndpoint.get(entry.key);
    if (ids !== undefined) {
      const i = ids.indexOf(id);
      if (i >= 0) ids.splice(i, 1);
      if (ids.length === 0) this.byEndpoint.delete(entry.key);
    }
    if (entry.conn.direction === 'inbound') {
      const n = (this.inboundPerIp.get(entry.ip) ?? 1) - 1;
      if (n <= 0) this.inboundPerIp.delete(entry.ip);
      else this.inboundPerIp.set(entry.ip, n);
    }
    return true;
  }

  /** The connection with this id, when held and still open. */
  get(id: string): StreamConnection | undefined {
    const entry = this.byId.get(id);
    return entry === undefined || entry.conn.closed ? undefined : entry.conn;
  }

  /** The most recent open connection to this remote endpoint over this protocol. */
  find(protocol: TransportProtocol, remote: Endpoint): StreamConnection | undefined {
    const ids = this.byEndpoint.get(endpointKey(protocol, remote));
    if (ids === undefined) return undefined;
    for (let i = ids.length - 1; i >= 0; i--) {
      const conn = this.byId.get(ids[i]!)?.conn;
      if (conn !== undefined && !conn.closed) return conn;
    }
    return undefined;
  }

  /** Every connection held. */
  connections(): StreamConnection[] {
    return [...this.byId.values()].map((e) => e.conn);
  }

  /** Notes traffic on a connection (resets its idle timeout). */
  touch(id: string): void {
    const entry = this.byId.get(id);
    if (entry !== undefined) entry.lastActivity = this.clock.now();
  }

  /**
   * Octets (or one whole message, for message-framed connections) received on a
   * connection: the framing events they complete. After a framing error the
   * framer is dead and further input yields nothing.
   */
  receive(id: string, bytes: Uint8Array): FramerEvent[] {
    const entry = this.byId.get(id);
    if (entry === undefined) return [];
    entry.lastActivity = this.clock.now();
    if (entry.framer !== undefined) return entry.framer.push(bytes);
    const keepalive = classifyKeepalive(bytes);
    if (keepalive !== undefined) return [{ type: 'keepalive', kind: keepalive }];
    return [{ type: 'message', bytes }];
  }

  /** Forgets every connection (cancelling their timers) and returns them, to be destroyed. */
  clear(): StreamConnection[] {
    const all = this.connections();
    for (const conn of all) this.remove(conn.id);
    return all;
  }

  /**
   * The idle timer: one Clock timer per connection, re-armed for the remaining
   * time when it fires after traffic (cheaper than re-arming on every read).
   */
  private arm(entry: Entry, ms: number): void {
    if (this.idleTimeoutMs <= 0) return;
    entry.timer = this.clock.setTimer(ms, () => {
      entry.timer = undefined;
      if (this.byId.get(entry.conn.id) !== entry) return;
      const idle = this.clock.now() - entry.lastActivity;
      if (idle < this.idleTimeoutMs) {
        this.arm(entry, this.idleTimeoutMs - idle);
        return;
      }
      this.onIdle?.(entry.conn);
      this.remove(entry.conn.id);
      entry.conn.destroy();
    });
  }
}
