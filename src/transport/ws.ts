/**
 * SIP over WebSocket, WS and WSS (RFC 7118), with the `ws` package: an HTTP(S)
 * server that upgrades connections offering the `sip` subprotocol, and
 * outbound WebSocket connections that ask for it.
 *
 * - RFC 7118 §4: "The WebSocket client MUST include the value 'sip' in the
 *   list of protocols for the Sec-WebSocket-Protocol header field" and the
 *   server's 101 names it; an upgrade that does not offer `sip` is refused
 *   (400), and `ws` fails a client handshake whose answer lacks it.
 * - RFC 7118 §5.1: "Each SIP message MUST be carried within a single WebSocket
 *   message, and a WebSocket message MUST NOT contain more than one SIP
 *   message": each message is parsed alone, with stream framing (its length
 *   is the WebSocket message's), and no StreamFramer is involved. The largest
 *   message accepted is the layer's header + body limit (`maxPayload`).
 * - RFC 7118 §5.1: text frames carry UTF-8; a message whose octets are not
 *   valid UTF-8 goes in a binary frame.
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { SwitchboardError, utf8DecodeStrict, type TimerHandle } from '../base/index.ts';
import { formatHostPort, normalizeAddress } from './address.ts';
import {
  listenerInfo,
  type ListenerHost,
  type ListenerSettings,
  type StreamConnection,
  type StreamListener,
} from './listener.ts';
import { SocketSet } from './stream-socket.ts';
import { localAddressFor } from './tcp.ts';
import { caOption, clientTlsOptions } from './tls.ts';
import {
  TransportError,
  type Destination,
  type Endpoint,
  type ListenerInfo,
  type TransportProtocol,
} from './transport.ts';

/** RFC 7118 §4: the WebSocket subprotocol name. */
export const SIP_SUBPROTOCOL = 'sip';

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

class WsConnection implements StreamConnection {
  readonly id: string;
  readonly protocol: TransportProtocol;
  readonly direction: 'inbound' | 'outbound';
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly listener: ListenerInfo;
  readonly framing = 'message' as const;
  private readonly ws: WebSocket;
  private readonly host: ListenerHost;
  private ending = false;
  private gone = false;
  private linger: TimerHandle | undefined;
  private lastError: string | undefined;

  constructor(
    ws: WebSocket,
    init: {
      id: string;
      protocol: TransportProtocol;
      direction: 'inbound' | 'outbound';
      listener: ListenerInfo;
      local: Endpoint;
      remote: Endpoint;
    },
    host: ListenerHost,
  ) {
    this.ws = ws;
    this.host = host;
    this.id = init.id;
    this.protocol = init.protocol;
    this.direction = init.direction;
    this.listener = init.listener;
    this.local = init.local;
    this.remote = init.remote;
  }

  get closed(): boolean {
    return this.gone || this.ending || this.ws.readyState !== WebSocket.OPEN;
  }

  attach(): void {
    this.ws.on('message', (data: RawData) => {
      if (!this.gone) this.host.data(this, toBytes(data));
    });
    this.ws.on('error', (err) => {
      this.lastError = errorText(err);
      this.host.diagnostics.error({
        type: 'socket',
        code: (err as { code?: string }).code,
        protocol: this.protocol,
        local: this.local,
        remote: this.remote,
        connectionId: this.id,
        detail: errorText(err),
      });
    });
    this.ws.on('close', (code: number) => {
      if (this.gone) return;
      this.gone = true;
      this.linger?.cancel();
      this.linger = undefined;
      this.host.closed(this, this.lastError ?? `websocket close ${code}`);
    });
  }

  write(bytes: Uint8Array): Promise<void> {
    if (this.closed) {
      return Promise.reject(
        new TransportError('SB_ERR_TRANSPORT_CLOSED', `connection ${this.id} is closed`),
      );
    }
    // RFC 7118 §5.1: text frames must be UTF-8; anything else travels in a binary frame.
    const binary = utf8DecodeStrict(bytes) === undefined;
    return new Promise((resolve, reject) => {
      this.ws.send(bytes, { binary }, (err) => {
        if (err)
          reject(new TransportError('SB_ERR_TRANSPORT_SEND', `${this.id}: ${errorText(err)}`));
        else resolve();
      });
    });
  }

  end(): void {
    if (this.gone || this.ending) return;
    this.ending = true;
    this.ws.close(1000);
    this.linger = this.host.clock.setTimer(this.host.lingerMs, () => {
      this.linger = undefined;
      this.ws.terminate();
    });
  }

  destroy(): void {
    this.linger?.cancel();
    this.linger = undefined;
    this.ws.terminate();
  }
}

class WsListener implements StreamListener {
  readonly kind = 'stream' as const;
  readonly info: ListenerInfo;
  private readonly server: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly host: ListenerHost;
  private readonly settings: ListenerSettings;
  private readonly sockets: SocketSet;
  private readonly clients = new Set<WebSocket>();
  private closing: Promise<void> | undefined;

  constructor(
    server: HttpServer,
    wss: WebSocketServer,
    info: ListenerInfo,
    host: ListenerHost,
    settings: ListenerSettings,
    sockets: SocketSet,
  ) {
    this.server = server;
    this.wss = wss;
    this.info = info;
    this.host = host;
    this.settings = settings;
    this.sockets = sockets;
  }

  private get secure(): boolean {
    return this.info.protocol === 'wss';
  }

  /** Tracks a WebSocket until it closes, so that close() can terminate it. */
  track(ws: WebSocket): void {
    this.clients.add(ws);
    ws.once('close', () => this.clients.delete(ws));
  }

  /** An upgrade request on the listener's HTTP server. */
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    this.sockets.add(socket);
    socket.on('error', () => {});
    const remote = {
      address: normalizeAddress(socket.remoteAddress ?? ''),
      port: socket.remotePort ?? 0,
    };
    const offered = (req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim().toLowerCase());
    if (!offered.includes(SIP_SUBPROTOCOL)) {
      this.host.diagnostics.error({
        type: 'connect',
        protocol: this.info.protocol,
        local: this.info.local,
        remote,
        detail: 'WebSocket upgrade without the sip subprotocol (RFC 7118 §4)',
      });
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (!this.host.admit(remote.address)) {
      this.host.diagnostics.error({
        type: 'limit',
        protocol: this.info.protocol,
        local: this.info.local,
        remote,
        detail: `connection refused: too many connections from ${remote.address}`,
      });
      socket.end(
        'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.track(ws);
      const conn = new WsConnection(
        ws,
        {
          id: this.host.nextConnectionId(this.info.protocol),
          protocol: this.info.protocol,
          direction: 'inbound',
          listener: this.info,
          local: {
            address: normalizeAddress(socket.localAddress ?? this.info.local.address),
            port: socket.localPort ?? this.info.local.port,
          },
          remote,
        },
        this.host,
      );
      conn.attach();
      this.host.opened(conn);
    });
  }

  connect(dest: Destination): Promise<StreamConnection> {
    const scheme = this.secure ? 'wss' : 'ws';
    const url = `${scheme}://${formatHostPort(dest.address, dest.port)}/`;
    const what = `${scheme} to ${formatHostPort(dest.address, dest.port)}`;
    const ws = new WebSocket(url, SIP_SUBPROTOCOL, {
      maxPayload: this.host.limits.maxHeaderBytes + this.host.limits.maxBodyBytes,
      perMessageDeflate: false,
      localAddress: localAddressFor(this.info),
      ...(this.secure
        ? {
            cert: this.settings.tls?.cert,
            key: this.settings.tls?.key,
            ...clientTlsOptions(dest, this.settings.tls, this.settings.rejectUnauthorized),
          }
        : {}),
    });
    this.track(ws);
    let local: Endpoint = { address: this.info.local.address, port: 0 };
    ws.once('upgrade', (res) => {
      local = {
        address: normalizeAddress(res.socket.localAddress ?? this.info.local.address),
        port: res.socket.localPort ?? 0,
      };
    });
    return new Promise((resolve, reject) => {
      let done = false;
      const fail = (detail: string): void => {
        if (done) return;
        done = true;
        timer.cancel();
        ws.on('error', () => {}); // terminate() while connecting reports an error of its own
        ws.terminate();
        reject(new TransportError('SB_ERR_TRANSPORT_CONNECT', `${what}: ${detail}`));
      };
      const timer = this.host.clock.setTimer(this.host.connectTimeoutMs, () =>
        fail(`timed out after ${this.host.connectTimeoutMs} ms`),
      );
      ws.once('error', (err) => fail(errorText(err)));
      ws.once('close', () => fail('closed while connecting'));
      ws.once('open', () => {
        if (done) return;
        if (ws.protocol !== SIP_SUBPROTOCOL) {
          // RFC 7118 §4: without "sip" in the answer the client MUST close the connection.
          fail('the server did not accept the sip subprotocol');
          return;
        }
        done = true;
        timer.cancel();
        ws.removeAllListeners('error');
        ws.removeAllListeners('close');
        ws.once('close', () => this.clients.delete(ws));
        const conn = new WsConnection(
          ws,
          {
            id: this.host.nextConnectionId(this.info.protocol),
            protocol: this.info.protocol,
            direction: 'outbound',
            listener: this.info,
            local,
            remote: { address: normalizeAddress(dest.address), port: dest.port },
          },
          this.host,
        );
        conn.attach();
        this.host.opened(conn);
        resolve(conn);
      });
    });
  }

  stopAccepting(): void {
    // Stops listening at once; upgraded WebSocket connections are not HTTP connections
    // the server would close, so they stay until close().
    if (this.server.listening) this.server.close();
  }

  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      for (const ws of this.clients) ws.terminate();
      this.clients.clear();
      this.sockets.destroyAll();
      this.wss.close();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }
}

/** Binds a WS or WSS listener; rejects with the server's error (EADDRINUSE, ...). */
export function createWsListener(
  settings: ListenerSettings,
  host: ListenerHost,
): Promise<StreamListener> {
  const secure = settings.protocol === 'wss';
  if (secure && settings.tls === undefined) {
    throw new SwitchboardError(
      'SB_ERR_INVALID_ARGUMENT',
      `wss:${settings.address}:${settings.port}: a WSS listener needs a certificate and key`,
    );
  }
  const server: HttpServer = secure
    ? createHttpsServer({
        cert: settings.tls!.cert,
        key: settings.tls!.key,
        ca: caOption(settings.tls),
        handshakeTimeout: host.connectTimeoutMs,
      })
    : createHttpServer();
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: host.limits.maxHeaderBytes + host.limits.maxBodyBytes,
    handleProtocols: (protocols) => (protocols.has(SIP_SUBPROTOCOL) ? SIP_SUBPROTOCOL : false),
  });
  const sockets = new SocketSet();
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.close();
      reject(err);
    };
    server.once('error', onError);
    server.listen({ port: settings.port, host: settings.address, ipv6Only: true }, () => {
      server.off('error', onError);
      const bound = server.address();
      const info = listenerInfo(settings, {
        address:
          bound !== null && typeof bound === 'object'
            ? normalizeAddress(bound.address)
            : settings.address,
        port: bound !== null && typeof bound === 'object' ? bound.port : settings.port,
      });
      const listener = new WsListener(server, wss, info, host, settings, sockets);
      server.on('connection', (raw: Socket) => sockets.add(raw));
      server.on('upgrade', (req, socket: Socket, head: Buffer) =>
        listener.upgrade(req, socket, head),
      );
      // A plain HTTP request: this endpoint speaks SIP over WebSocket only.
      server.on('request', (_req, res) => {
        res.writeHead(426, { Upgrade: 'websocket', Connection: 'close', 'Content-Length': '0' });
        res.end();
      });
      server.on('error', (err) => {
        host.diagnostics.error({
          type: 'socket',
          code: (err as { code?: string }).code,
          protocol: settings.protocol,
          local: info.local,
          detail: err.message,
        });
      });
      resolve(listener);
    });
  });
}
