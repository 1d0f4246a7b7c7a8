/**
 * A StreamConnection over a node:net Socket, shared by tcp.ts and tls.ts (a
 * TLSSocket is a Socket): bytes in go to the host (which frames them, RFC 3261
 * §18.3), bytes out are written in order, and the host hears of the close
 * exactly once. Also the connect step both kinds share: a timeout on the
 * injected Clock and the mapping of failures to TransportError.
 */
import type { Socket } from 'node:net';
import type { TimerHandle } from '../base/index.ts';
import { normalizeAddress } from './address.ts';
import type { ListenerHost, StreamConnection } from './listener.ts';
import {
  TransportError,
  type Endpoint,
  type ListenerInfo,
  type TransportProtocol,
} from './transport.ts';

export interface SocketConnectionInit {
  readonly id: string;
  readonly protocol: TransportProtocol;
  readonly direction: 'inbound' | 'outbound';
  readonly listener: ListenerInfo;
  /** Used when the socket no longer knows its peer (it can forget it once closed). */
  readonly remote?: Endpoint;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class SocketConnection implements StreamConnection {
  readonly id: string;
  readonly protocol: TransportProtocol;
  readonly direction: 'inbound' | 'outbound';
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly listener: ListenerInfo;
  readonly framing = 'stream' as const;
  private readonly socket: Socket;
  private readonly host: ListenerHost;
  private ending = false;
  private gone = false;
  private linger: TimerHandle | undefined;
  private lastError: string | undefined;

  constructor(socket: Socket, init: SocketConnectionInit, host: ListenerHost) {
    this.socket = socket;
    this.host = host;
    this.id = init.id;
    this.protocol = init.protocol;
    this.direction = init.direction;
    this.listener = init.listener;
    this.local = {
      address: normalizeAddress(socket.localAddress ?? init.listener.local.address),
      port: socket.localPort ?? 0,
    };
    this.remote = {
      address: normalizeAddress(socket.remoteAddress ?? init.remote?.address ?? ''),
      port: socket.remotePort ?? init.remote?.port ?? 0,
    };
  }

  get closed(): boolean {
    return this.gone || this.ending || this.socket.destroyed || !this.socket.writable;
  }

  /** Wires the socket's events to the host; called once, right after construction. */
  attach(): void {
    const s = this.socket;
    s.on('data', (chunk: Buffer) => {
      if (!this.gone) this.host.data(this, chunk);
    });
    s.on('error', (err) => {
      this.lastError = errorCode(err) ?? errorText(err);
      this.host.diagnostics.error({
        type: 'socket',
        code: errorCode(err),
        protocol: this.protocol,
        local: this.local,
        remote: this.remote,
        connectionId: this.id,
        detail: errorText(err),
      });
    });
    s.on('close', () => {
      if (this.gone) return;
      this.gone = true;
      this.linger?.cancel();
      this.linger = undefined;
      this.host.closed(this, this.lastError ?? (this.ending ? 'closed by us' : 'closed'));
    });
    // The peer closed its side: close ours too (SIP has no use for half-open streams).
    s.on('end', () => {
      if (!s.destroyed) s.end();
    });
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        new TransportError('SB_ERR_TRANSPORT_CLOSED', `connection ${this.id} is closed`),
      );
    }
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (err) => {
        if (err)
          reject(new TransportError('SB_ERR_TRANSPORT_SEND', `${this.id}: ${errorText(err)}`));
        else resolve();
      });
    });
  }

  end(): void {
    if (this.gone || this.ending) return;
    this.ending = true;
    this.socket.end();
    // A peer that keeps its side open after our FIN does not get to hold the socket.
    this.linger = this.host.clock.setTimer(this.host.lingerMs, () => {
      this.linger = undefined;
      this.socket.destroy();
    });
  }

  destroy(): void {
    this.linger?.cancel();
    this.linger = undefined;
    this.socket.destroy();
  }
}

/** Wraps a connected socket and reports it to the host as opened. */
export function adoptSocket(
  socket: Socket,
  init: SocketConnectionInit,
  host: ListenerHost,
): StreamConnection {
  const conn = new SocketConnection(socket, init, host);
  conn.attach();
  host.opened(conn);
  return conn;
}

/**
 * Waits for an outbound socket to be ready (`event`: 'connect' for TCP,
 * 'secureConnect' for TLS) within the host's connect timeout, on its Clock.
 * On failure the socket is destroyed and the promise rejects with
 * TransportError SB_ERR_TRANSPORT_CONNECT.
 */
export function whenConnected(
  socket: Socket,
  event: 'connect' | 'secureConnect',
  host: ListenerHost,
  what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      timer.cancel();
      socket.off('error', onError);
      socket.off(event, onReady);
      socket.off('close', onClose);
      if (err === undefined) resolve();
      else {
        socket.on('error', () => {}); // a late second error must not go unhandled
        socket.destroy();
        reject(err);
      }
    };
    const onReady = (): void => finish();
    const onError = (err: Error): void =>
      finish(new TransportError('SB_ERR_TRANSPORT_CONNECT', `${what}: ${errorText(err)}`));
    const onClose = (): void =>
      finish(new TransportError('SB_ERR_TRANSPORT_CONNECT', `${what}: closed while connecting`));
    const timer = host.clock.setTimer(host.connectTimeoutMs, () =>
      finish(
        new TransportError(
          'SB_ERR_TRANSPORT_CONNECT',
          `${what}: timed out after ${host.connectTimeoutMs} ms`,
        ),
      ),
    );
    socket.once(event, onReady);
    socket.on('error', onError);
    socket.once('close', onClose);
  });
}

/** Tracks live sockets of a listener so that close() can destroy them all. */
export class SocketSet {
  private readonly sockets = new Set<Socket>();

  add<S extends Socket>(s: S): S {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    return s;
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
