/**
 * SIP over TCP (RFC 3261 §18): a node:net server accepts connections, and
 * connect() opens them to peers. Both kinds of connection go into the layer's
 * ConnectionTable and carry requests and responses in either direction
 * (§18.1.1, §18.2.2). Framing is the table's StreamFramer (§18.3).
 */
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { formatHostPort, isUnspecified, normalizeAddress } from './address.ts';
import {
  listenerInfo,
  type ListenerHost,
  type ListenerSettings,
  type StreamConnection,
  type StreamListener,
} from './listener.ts';
import { SocketSet, adoptSocket, whenConnected } from './stream-socket.ts';
import type { Destination, ListenerInfo } from './transport.ts';

/** Accepts one inbound socket of a stream listener: the per-IP cap, then the connection. */
export function acceptSocket(
  socket: Socket,
  info: ListenerInfo,
  host: ListenerHost,
  sockets: SocketSet,
): void {
  sockets.add(socket);
  const remote = {
    address: normalizeAddress(socket.remoteAddress ?? ''),
    port: socket.remotePort ?? 0,
  };
  socket.on('error', () => {}); // reported by the connection once adopted; ignored before
  if (!host.admit(remote.address)) {
    host.diagnostics.error({
      type: 'limit',
      protocol: info.protocol,
      local: info.local,
      remote,
      detail: `connection refused: too many connections from ${remote.address}`,
    });
    socket.destroy();
    return;
  }
  socket.setNoDelay(true);
  adoptSocket(
    socket,
    {
      id: host.nextConnectionId(info.protocol),
      protocol: info.protocol,
      direction: 'inbound',
      listener: info,
      remote,
    },
    host,
  );
}

/** Binds a stream server (net or tls) and resolves with the bound endpoint. */
export function listen(server: Server, settings: ListenerSettings): Promise<ListenerInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.close();
      reject(err);
    };
    server.once('error', onError);
    server.listen({ port: settings.port, host: settings.address, ipv6Only: true }, () => {
      server.off('error', onError);
      const bound = server.address();
      const address =
        bound !== null && typeof bound === 'object'
          ? normalizeAddress(bound.address)
          : settings.address;
      const port = bound !== null && typeof bound === 'object' ? bound.port : settings.port;
      resolve(listenerInfo(settings, { address, port }));
    });
  });
}

/** Closes a server after destroying its sockets. */
export function closeServer(server: Server, sockets: SocketSet): Promise<void> {
  sockets.destroyAll();
  return new Promise((resolve) => {
    server.close(() => resolve());
  });
}

/**
 * The local address an outbound connection binds to: the listener's, unless it
 * listens on every address (then the system chooses).
 */
export function localAddressFor(info: ListenerInfo): string | undefined {
  return isUnspecified(info.local.address) ? undefined : info.local.address;
}

class TcpListener implements StreamListener {
  readonly kind = 'stream' as const;
  readonly info: ListenerInfo;
  private readonly server: Server;
  private readonly host: ListenerHost;
  private readonly sockets: SocketSet;
  private closing: Promise<void> | undefined;

  constructor(server: Server, info: ListenerInfo, host: ListenerHost, sockets: SocketSet) {
    this.server = server;
    this.info = info;
    this.host = host;
    this.sockets = sockets;
  }

  async connect(dest: Destination): Promise<StreamConnection> {
    const what = `tcp to ${formatHostPort(dest.address, dest.port)}`;
    const socket = this.sockets.add(
      netConnect({ host: dest.address, port: dest.port, localAddress: localAddressFor(this.info) }),
    );
    await whenConnected(socket, 'connect', this.host, what);
    socket.setNoDelay(true);
    return adoptSocket(
      socket,
      {
        id: this.host.nextConnectionId('tcp'),
        protocol: 'tcp',
        direction: 'outbound',
        listener: this.info,
        remote: { address: dest.address, port: dest.port },
      },
      this.host,
    );
  }

  stopAccepting(): void {
    // net.Server.close() stops listening at once; its callback would wait for every
    // connection to end, which close() brings about.
    if (this.server.listening) this.server.close();
  }

  close(): Promise<void> {
    this.closing ??= closeServer(this.server, this.sockets);
    return this.closing;
  }
}

/** Binds a TCP listener; rejects with the server's error (EADDRINUSE, ...). */
export async function createTcpListener(
  settings: ListenerSettings,
  host: ListenerHost,
): Promise<StreamListener> {
  const sockets = new SocketSet();
  const server = createServer();
  const info = await listen(server, settings);
  server.on('connection', (socket) => acceptSocket(socket, info, host, sockets));
  server.on('error', (err) => {
    host.diagnostics.error({
      type: 'socket',
      code: (err as { code?: string }).code,
      protocol: 'tcp',
      local: info.local,
      detail: err.message,
    });
  });
  return new TcpListener(server, info, host, sockets);
}
