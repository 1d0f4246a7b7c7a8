/**
 * SIP over TLS (RFC 3261 §18, §26.2.1; RFC 5922 for certificate names): a
 * node:tls server with the listener's certificate, and outbound connections
 * that verify the server's certificate against `Destination.serverName` (the
 * SIP domain RFC 3263 resolution started from) or, without one, against the
 * address connected to. Verification is on unless the layer was created with
 * `rejectUnauthorized: false`. Framing and connection handling are TCP's.
 */
import { isIP } from 'node:net';
import { SwitchboardError } from '../base/index.ts';
import {
  checkServerIdentity,
  connect as tlsConnect,
  createServer,
  type ConnectionOptions,
  type PeerCertificate,
  type Server,
} from 'node:tls';
import { formatHostPort } from './address.ts';
import type {
  ListenerHost,
  ListenerSettings,
  StreamConnection,
  StreamListener,
  TlsCredentials,
} from './listener.ts';
import { SocketSet, adoptSocket, whenConnected } from './stream-socket.ts';
import { acceptSocket, closeServer, listen, localAddressFor } from './tcp.ts';
import type { Destination, ListenerInfo } from './transport.ts';

/** The `ca` option of node:tls from our credentials (a readonly array is copied). */
export function caOption(
  tls: TlsCredentials | undefined,
): string | Buffer | (string | Buffer)[] | undefined {
  const ca = tls?.ca;
  if (ca === undefined) return undefined;
  return typeof ca === 'string' || Buffer.isBuffer(ca) ? ca : [...ca];
}

/**
 * Client-side TLS options for a connection to `dest`: SNI only for a host name
 * (RFC 6066 §3 forbids IP literals there), and the certificate checked against
 * the expected name, which may be an IP literal matched by an iPAddress SAN.
 */
export function clientTlsOptions(
  dest: Destination,
  tls: TlsCredentials | undefined,
  rejectUnauthorized: boolean,
): {
  servername?: string;
  ca?: string | Buffer | (string | Buffer)[];
  rejectUnauthorized: boolean;
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined;
} {
  const expected = dest.serverName ?? dest.address;
  const out: ReturnType<typeof clientTlsOptions> = {
    rejectUnauthorized,
    checkServerIdentity: (_host, cert) => checkServerIdentity(expected, cert),
  };
  if (isIP(expected) === 0) out.servername = expected;
  const ca = caOption(tls);
  if (ca !== undefined) out.ca = ca;
  return out;
}

class TlsListener implements StreamListener {
  readonly kind = 'stream' as const;
  readonly info: ListenerInfo;
  private readonly server: Server;
  private readonly host: ListenerHost;
  private readonly settings: ListenerSettings;
  private readonly sockets: SocketSet;
  private closing: Promise<void> | undefined;

  constructor(
    server: Server,
    info: ListenerInfo,
    host: ListenerHost,
    settings: ListenerSettings,
    sockets: SocketSet,
  ) {
    this.server = server;
    this.info = info;
    this.host = host;
    this.settings = settings;
    this.sockets = sockets;
  }

  async connect(dest: Destination): Promise<StreamConnection> {
    const what = `tls to ${formatHostPort(dest.address, dest.port)}`;
    // tls.connect passes net.connect options such as localAddress through (not in its types).
    const options: ConnectionOptions & { localAddress?: string } = {
      host: dest.address,
      port: dest.port,
      localAddress: localAddressFor(this.info),
      // RFC 3261 §26.3.1: present our certificate when the server asks (mutual TLS between proxies).
      cert: this.settings.tls?.cert,
      key: this.settings.tls?.key,
      ...clientTlsOptions(dest, this.settings.tls, this.settings.rejectUnauthorized),
    };
    const socket = this.sockets.add(tlsConnect(options));
    await whenConnected(socket, 'secureConnect', this.host, what);
    socket.setNoDelay(true);
    return adoptSocket(
      socket,
      {
        id: this.host.nextConnectionId('tls'),
        protocol: 'tls',
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

/** Binds a TLS listener; rejects with the server's error, or SB_ERR_INVALID_ARGUMENT without a certificate. */
export async function createTlsListener(
  settings: ListenerSettings,
  host: ListenerHost,
): Promise<StreamListener> {
  const creds = settings.tls;
  if (creds === undefined && settings.clientOnly !== true) {
    throw new SwitchboardError(
      'SB_ERR_INVALID_ARGUMENT',
      `tls:${settings.address}:${settings.port}: a TLS listener needs a certificate and key`,
    );
  }
  const sockets = new SocketSet();
  const server = createServer({
    ...(creds !== undefined ? { cert: creds.cert, key: creds.key, ca: caOption(creds) } : {}),
    handshakeTimeout: host.connectTimeoutMs,
  });
  const info = await listen(server, settings);
  // Raw sockets too, so that close() also ends handshakes in progress.
  server.on('connection', (raw) => sockets.add(raw));
  server.on('secureConnection', (socket) => acceptSocket(socket, info, host, sockets));
  server.on('tlsClientError', (err, socket) => {
    host.diagnostics.error({
      type: 'socket',
      code: (err as { code?: string }).code,
      protocol: 'tls',
      local: info.local,
      remote: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
      detail: `TLS handshake failed: ${err.message}`,
    });
  });
  server.on('error', (err) => {
    host.diagnostics.error({
      type: 'socket',
      code: (err as { code?: string }).code,
      protocol: 'tls',
      local: info.local,
      detail: err.message,
    });
  });
  return new TlsListener(server, info, host, settings, sockets);
}
