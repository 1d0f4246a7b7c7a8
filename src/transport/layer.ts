/**
 * The transport layer (RFC 3261 §18): several listeners at once (UDP, TCP,
 * TLS, WS, WSS; IPv4 and IPv6), one ConnectionTable of stream connections, and
 * the rules that are the same whatever the transport:
 *
 * - receiving (§18.2.1, §18.1.2): parse; stamp `received`/`rport` on requests
 *   (RFC 3581 §4); answer a request that does not parse with the error's
 *   status (400/505/513) when a Via makes that possible, back to where it came
 *   from; drop a response that does not parse or whose sent-by is not ours;
 *   close a stream whose framing broke, after answering when possible;
 * - sending requests (§18.1.1): UDP unless the message is larger than the MTU
 *   threshold (then TCP to the same endpoint, the top Via rewritten); streams
 *   reuse an open connection to the endpoint (whoever opened it) or connect;
 * - sending responses (§18.2.2, RFC 3581 §4): over the request's connection
 *   while it is open, else to received / sent-by port; over UDP to received (or
 *   sent-by) and rport (or sent-by port), from the listener that received the
 *   request. An `maddr` in the Via is ignored (§18.2.2 sends multicast
 *   responses there; Switchboard does not do multicast).
 *
 * Everything is per instance (STYLE §3): two layers run side by side in one
 * process. Bad input never throws out of the layer: it is answered or dropped,
 * and reported on the `switchboard:transport:error` channel.
 */
import {
  SwitchboardError,
  createIdGenerator,
  cryptoRandom,
  defaultLimits,
  silentLogger,
  systemClock,
  type Clock,
  type IdGenerator,
  type Logger,
  type MessageLimits,
  type RandomSource,
} from '../base/index.ts';
import {
  ViaHeader,
  createErrorResponse,
  formatVia,
  parseMessage,
  peekCallId,
  peekNewWithoutCredentials,
  serializeMessage,
  type FramerEvent,
  type HeaderField,
  type ParseResult,
  type SipMessage,
  type SipRequest,
  type SipResponse,
  type Via,
} from '../sip/index.ts';
import {
  defaultPort,
  formatHostPort,
  ipFamily,
  isUnspecified,
  normalizeAddress,
  protocolOfViaTransport,
  sameAddress,
  endpointKey,
  uriHost,
} from './address.ts';
import { QUEUE_DEFAULTS } from './backlog.ts';
import { ConnectionTable } from './connection-table.ts';
import { TransportDiagnostics, describeMessage } from './diagnostics.ts';
import {
  failedRequestFields,
  headRequestFields,
  looksLikeResponse,
  stampVia,
  type ParseFailure,
} from './inbound.ts';
import { keepaliveReply } from './keepalive.ts';
import {
  ownerOf,
  ownerOfCallId,
  type ConnectionAnnouncement,
  type ForwardedMessage,
  type SteeringLink,
} from './steering.ts';
import type {
  DatagramListener,
  ListenerHost,
  ListenerSettings,
  StreamConnection,
  StreamListener,
  TlsCredentials,
  TransportListener,
} from './listener.ts';
import { createTcpListener } from './tcp.ts';
import { createTlsListener } from './tls.ts';
import {
  TransportError,
  VIA_TRANSPORT,
  isReliable,
  type Destination,
  type Endpoint,
  type ListenerInfo,
  type Source,
  type TransportDelegate,
  type TransportLayer,
  type TransportProtocol,
} from './transport.ts';
import { createUdpListener } from './udp.ts';
import { createWsListener } from './ws.ts';

export type { TlsCredentials } from './listener.ts';

// ---- listen specs ---------------------------------------------------------------------------

/** A listening address: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `wss:0.0.0.0:8443`. */
export interface ListenSpec {
  readonly protocol: TransportProtocol;
  /** An IP literal, IPv6 without brackets; 0.0.0.0 or :: for every address. */
  readonly address: string;
  /** 0 lets the system choose (the bound port then appears in `listeners`). */
  readonly port: number;
}

const PROTOCOLS: ReadonlySet<string> = new Set(['udp', 'tcp', 'tls', 'ws', 'wss']);

/** A sender of datagrams as the layer hands its messages on: where they came from, how to answer. */
interface UdpPeer {
  readonly source: Source;
  readonly reply: (out: Uint8Array) => Promise<void>;
}

/** Most senders whose `UdpPeer` is remembered (`peerOf`); a flood from more starts the memo over. */
const MAX_UDP_PEERS = 4096;

function badSpec(spec: string, why: string): SwitchboardError {
  return new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `listen spec "${spec}": ${why}`);
}

/**
 * Parses `protocol:address[:port]`: protocol one of udp, tcp, tls, ws, wss
 * (case-insensitive); address an IPv4 literal or a bracketed IPv6 literal (host
 * names are refused: a listener binds an address); port 0..65535, the
 * protocol's default (5060, 5061 for TLS, 80/443 for WS/WSS) when absent.
 * Throws SwitchboardError SB_ERR_INVALID_ARGUMENT (a configuration mistake).
 */
export function parseListenSpec(spec: string): ListenSpec {
  const colon = spec.indexOf(':');
  if (colon < 0) throw badSpec(spec, 'expected protocol:address[:port]');
  const protocol = spec.slice(0, colon).toLowerCase();
  if (!PROTOCOLS.has(protocol)) throw badSpec(spec, `unknown protocol "${protocol}"`);
  const rest = spec.slice(colon + 1);
  let address: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw badSpec(spec, 'unterminated [IPv6 address]');
    address = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) throw badSpec(spec, 'expected :port after ]');
      portText = after.slice(1);
    }
    if (ipFamily(address) !== 6) throw badSpec(spec, `"${address}" is not an IPv6 address`);
  } else {
    const parts = rest.split(':');
    if (parts.length > 2) throw badSpec(spec, 'IPv6 addresses go in brackets: tcp:[::1]:5060');
    address = parts[0]!;
    portText = parts[1];
    if (ipFamily(address) !== 4) {
      throw badSpec(spec, `"${address}" is not an IP address (listeners bind IP literals)`);
    }
  }
  const p = protocol as TransportProtocol;
  let port = defaultPort(p);
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
      throw badSpec(spec, `bad port "${portText}"`);
    }
    port = Number(portText);
  }
  return Object.freeze({ protocol: p, address, port });
}

/** The text form of a listen spec (the inverse of parseListenSpec). */
export function formatListenSpec(spec: ListenSpec): string {
  return `${spec.protocol}:${formatHostPort(spec.address, spec.port)}`;
}

/**
 * A Via value for a request leaving from `listener` (RFC 3261 §18.1.1: "the
 * client transport MUST insert a value of the "sent-by" field ... containing
 * its IP address or FQDN and port"), with the `rport` flag of RFC 3581 §3 by
 * default.
 */
export function viaFor(
  listener: ListenerInfo,
  branch: string,
  options: { readonly rport?: boolean } = {},
): string {
  const rport = options.rport ?? true;
  return `SIP/2.0/${VIA_TRANSPORT[listener.protocol]} ${formatHostPort(
    listener.advertisedHost,
    listener.advertisedPort,
  )};branch=${branch}${rport ? ';rport' : ''}`;
}

// ---- options ----------------------------------------------------------------------------------

/** One listener, with what a bare spec cannot say. */
export interface ListenerConfig {
  readonly listen: string | ListenSpec;
  /** Listener id (default: `protocol:address:port` with the bound port). */
  readonly id?: string;
  /** TLS and WSS: the certificate (default: the layer's `tls`). */
  readonly tls?: TlsCredentials;
  /** Host for Via sent-by and Contact, e.g. a public name or the NAT's address. */
  readonly advertisedHost?: string;
  readonly advertisedPort?: number;
  /**
   * TLS only: the listener serves outbound connections and needs no
   * certificate; incoming TLS handshakes to it fail.
   */
  readonly clientOnly?: boolean;
}

export interface TransportLayerOptions {
  /** Listeners, in order (that order is `listeners`' and decides listenerFor() ties). */
  readonly listen: readonly (string | ListenSpec | ListenerConfig)[];
  /** Name of this layer in diagnostics events (default: random). */
  readonly id?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** For the layer id and the To tags of error responses. */
  readonly random?: RandomSource;
  /** Parser and framer limits (header bytes, body bytes, buffered bytes). */
  readonly limits?: MessageLimits;
  /** Default certificate of TLS and WSS listeners, and trust (`ca`) for outbound TLS/WSS. */
  readonly tls?: TlsCredentials;
  /** Verify servers' certificates on outbound TLS/WSS (default true). */
  readonly rejectUnauthorized?: boolean;
  /** Outbound connection establishment bound, handshakes included (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Idle stream connections are closed after this long (default 10 min; 0: never). */
  readonly idleTimeoutMs?: number;
  /** After we close a stream gracefully, how long the peer may keep it (default 2 s). */
  readonly lingerMs?: number;
  /** Inbound stream connections allowed per source IP address (default 100). */
  readonly maxConnectionsPerIp?: number;
  /**
   * RFC 3261 §18.1.1: a request larger than this many octets bound for UDP goes
   * over TCP when a TCP listener exists (default 1300: "larger than 1300 bytes
   * and the path MTU is unknown").
   */
  readonly mtu?: number;
  /**
   * RFC 3261 §18.1.2: drop a response whose top Via sent-by is not one of our
   * listeners' (default true).
   */
  readonly checkResponseSentBy?: boolean;
  readonly delegate?: TransportDelegate;
  /**
   * Several worker processes serve these listeners (steering.ts): a message whose Call-ID
   * another worker owns goes to it, and writes on another worker's connections go through it.
   * Give each worker's layer a distinct `id`: connection ids start with it.
   */
  readonly steering?: SteeringLink;
  /**
   * With `steering`: datagrams that whichever worker reads them may answer, because the answer
   * keeps no state another message of the Call-ID needs (a stateless challenge, RFC 3261
   * §8.2.7). Asked with the octets before any parse; true keeps the datagram here. A server
   * passes `peekUnauthenticatedRegister`.
   */
  readonly answeredByReader?: (bytes: Uint8Array, maxHeaderBytes: number) => boolean;
  /**
   * Overload: while a UDP socket's reads are behind (backlog.ts), new requests without
   * credentials read from it are dropped unparsed until it catches up
   * (`peekNewWithoutCredentials`), so that the time goes to work in progress instead of the
   * kernel dropping datagrams of every kind. Their senders retransmit them (RFC 3261
   * §17.1.1.2, §17.1.2.2). Behind: full read batches, one after another, while the socket's
   * receive queue holds `shedAtFill` of its buffer or the kernel drops datagrams (where the
   * queue can be read: Linux), else for `shedAfterMs`. Default 100 ms; 0: never shed.
   */
  readonly shedAfterMs?: number;
  /**
   * The share of a UDP socket's receive buffer in use from which its reads count as behind
   * (see `shedAfterMs`), where the queue can be read; default 0.5. 0: never read the queue
   * (the time rule alone).
   */
  readonly shedAtFill?: number;
}

/** A live stream connection, as `connections()` reports it. */
export interface ConnectionInfo {
  readonly id: string;
  readonly protocol: TransportProtocol;
  readonly direction: 'inbound' | 'outbound';
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly listenerId: string;
}

/** The TransportLayer contract plus what this implementation can tell about itself. */
export interface SwitchboardTransportLayer extends TransportLayer {
  /** This layer's name in diagnostics events. */
  readonly id: string;
  serializedSize(message: SipMessage): number;
  /** Open stream connections. */
  connections(): ConnectionInfo[];
  /**
   * Stops taking new connections, for a server that drains before it stops: the
   * TCP, TLS, WS and WSS listening sockets close (connections are refused). Open
   * connections and the UDP sockets stay, because the transactions in progress need
   * them (RFC 3261 §18.2.2: a response goes back over the request's connection, or
   * from the UDP socket that received the request); `close()` ends them. Refusing
   * new requests on them is the transaction layer's part (it knows which requests
   * are new). Idempotent.
   */
  stopListening(): void;
  /** Datagrams dropped unparsed as new work while their socket was behind (`shedAfterMs`, `shedAtFill`). */
  readonly shed: number;
}

/** How often the layer logs that it sheds (at most once in this many ms). */
const SHED_LOG_INTERVAL_MS = 10_000;

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 600_000,
  lingerMs: 2_000,
  maxConnectionsPerIp: 100,
  mtu: 1300,
  shedAfterMs: 100,
  shedAtFill: QUEUE_DEFAULTS.atFill,
} as const;

function toConfig(entry: string | ListenSpec | ListenerConfig): ListenerConfig {
  if (typeof entry === 'string') return { listen: entry };
  return 'listen' in entry ? entry : { listen: entry };
}

/**
 * UTF-8 for octets that go straight to a socket. Buffer.from takes short ones from node's
 * shared pool instead of allocating an ArrayBuffer for each (about 4× faster for a 600-octet
 * header). Nothing keeps them once written: a transaction that keeps octets for 32 s serializes
 * its own with serializeMessage's default, so no long-lived slice pins a pool.
 */
function pooledUtf8(text: string): Uint8Array {
  return Buffer.from(text, 'utf8');
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const ID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomId(random: RandomSource): string {
  const b = new Uint8Array(6);
  random.fill(b);
  let out = 'tl-';
  for (const x of b) out += ID_CHARS[x % ID_CHARS.length];
  return out;
}

/**
 * Binds every listener and returns the layer. Rejects with the first bind error
 * (EADDRINUSE, ...) after closing what was bound, or SwitchboardError
 * SB_ERR_INVALID_ARGUMENT for a bad spec or a TLS/WSS listener without a
 * certificate.
 */
export async function createTransportLayer(
  options: TransportLayerOptions,
): Promise<SwitchboardTransportLayer> {
  const layer = new Layer(options);
  await layer.start(options);
  return layer;
}

// ---- the layer ------------------------------------------------------------------------------

class Layer implements SwitchboardTransportLayer, ListenerHost {
  readonly id: string;
  readonly clock: Clock;
  readonly limits: MessageLimits;
  readonly diagnostics: TransportDiagnostics;
  readonly connectTimeoutMs: number;
  readonly lingerMs: number;
  readonly shedAfterMs: number;
  readonly shedAtFill: number;
  shed = 0;
  /** `shed` when the layer last logged it, and when. */
  private shedLogged = 0;
  private shedLoggedAt = -Infinity;
  private readonly logger: Logger;
  private readonly ids: IdGenerator;
  private readonly mtu: number;
  private readonly checkSentBy: boolean;
  private readonly table: ConnectionTable;
  private readonly active: TransportListener[] = [];
  private readonly connecting = new Map<string, Promise<StreamConnection>>();
  private delegate: TransportDelegate | undefined;
  private connectionSeq = 0;
  private closing: Promise<void> | undefined;
  private readonly steering: SteeringLink | undefined;
  private readonly answeredByReader:
    ((bytes: Uint8Array, maxHeaderBytes: number) => boolean) | undefined;
  /** `peerOf`: senders of datagrams by address, then port. */
  private readonly udpPeers = new Map<string, Map<number, UdpPeer>>();
  private udpPeerCount = 0;
  /** Other workers' connections (steering): by id, and by remote endpoint key. */
  private readonly peerConnById = new Map<string, { owner: number; key: string }>();
  private readonly peerConnByEndpoint = new Map<string, { owner: number; id: string }>();
  listeners: readonly ListenerInfo[] = [];

  constructor(options: TransportLayerOptions) {
    const random = options.random ?? cryptoRandom();
    this.id = options.id ?? randomId(random);
    this.clock = options.clock ?? systemClock();
    this.limits = options.limits ?? defaultLimits;
    this.logger = (options.logger ?? silentLogger).child({ layer: this.id });
    this.ids = createIdGenerator(random);
    this.diagnostics = new TransportDiagnostics(this.id);
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    this.lingerMs = options.lingerMs ?? DEFAULTS.lingerMs;
    const shedAfterMs = options.shedAfterMs ?? DEFAULTS.shedAfterMs;
    if (!(shedAfterMs >= 0)) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `shedAfterMs ${shedAfterMs}`);
    }
    this.shedAfterMs = shedAfterMs;
    const shedAtFill = options.shedAtFill ?? DEFAULTS.shedAtFill;
    if (!(shedAtFill >= 0 && shedAtFill <= 1)) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `shedAtFill ${shedAtFill}`);
    }
    this.shedAtFill = shedAtFill;
    this.mtu = options.mtu ?? DEFAULTS.mtu;
    this.checkSentBy = options.checkResponseSentBy ?? true;
    this.delegate = options.delegate;
    this.steering = options.steering;
    this.answeredByReader = options.answeredByReader;
    this.steering?.attach({
      message: (m) => this.receiveForwarded(m),
      write: (id, bytes) => this.writeForPeer(id, bytes),
      announced: (from, a) => this.peerAnnounced(from, a),
      peerDown: (peer) => this.forgetPeer(peer),
    });
    this.table = new ConnectionTable({
      clock: this.clock,
      limits: this.limits,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? DEFAULTS.maxConnectionsPerIp,
      onIdle: (conn) =>
        this.diagnostics.error({
          type: 'limit',
          protocol: conn.protocol,
          local: conn.local,
          remote: conn.remote,
          connectionId: conn.id,
          detail: 'idle timeout',
        }),
    });
  }

  async start(options: TransportLayerOptions): Promise<void> {
    // Validate everything before binding anything.
    const settings: ListenerSettings[] = options.listen.map((entry) => {
      const config = toConfig(entry);
      const spec =
        typeof config.listen === 'string' ? parseListenSpec(config.listen) : config.listen;
      const tls = config.tls ?? options.tls;
      // A TLS listener may go without a certificate when it is only for
      // outbound connections (a user agent that calls TLS peers); WSS may not.
      const clientOnlyTls = spec.protocol === 'tls' && config.clientOnly === true;
      if (
        (spec.protocol === 'tls' || spec.protocol === 'wss') &&
        tls === undefined &&
        !clientOnlyTls
      ) {
        throw new SwitchboardError(
          'SB_ERR_INVALID_ARGUMENT',
          `${formatListenSpec(spec)}: a ${spec.protocol.toUpperCase()} listener needs tls: {cert, key}`,
        );
      }
      return {
        id: config.id,
        protocol: spec.protocol,
        address: spec.address,
        port: spec.port,
        advertisedHost: config.advertisedHost,
        advertisedPort: config.advertisedPort,
        tls: tls === undefined ? undefined : { ...options.tls, ...tls },
        rejectUnauthorized: options.rejectUnauthorized ?? true,
        clientOnly: clientOnlyTls,
      };
    });
    const ids = settings.map((s) => s.id).filter((id) => id !== undefined);
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup !== undefined) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `two listeners have the id ${dup}`);
    }
    try {
      for (const s of settings) this.active.push(await this.bind(s));
    } catch (err) {
      await this.close();
      throw err;
    }
    this.listeners = Object.freeze(this.active.map((l) => l.info));
  }

  private bind(s: ListenerSettings): Promise<TransportListener> {
    switch (s.protocol) {
      case 'udp':
        return createUdpListener(s, this);
      case 'tcp':
        return createTcpListener(s, this);
      case 'tls':
        return createTlsListener(s, this);
      case 'ws':
      case 'wss':
        return createWsListener(s, this);
    }
  }

  setDelegate(delegate: TransportDelegate): void {
    this.delegate = delegate;
  }

  get isClosed(): boolean {
    return this.closing !== undefined;
  }

  serializedSize(message: SipMessage): number {
    return serializeMessage(message).length;
  }

  connections(): ConnectionInfo[] {
    return this.table.connections().map((c) => ({
      id: c.id,
      protocol: c.protocol,
      direction: c.direction,
      local: c.local,
      remote: c.remote,
      listenerId: c.listener.id,
    }));
  }

  // ---- listener selection ----

  /** Same protocol and address family as the destination (first configured wins). */
  listenerFor(dest: Destination): ListenerInfo | undefined {
    return this.activeFor(dest.protocol, dest.address)?.info;
  }

  private activeFor(protocol: TransportProtocol, address: string): TransportListener | undefined {
    const family = ipFamily(address);
    return this.active.find(
      (l) =>
        l.info.protocol === protocol && (family === 0 || ipFamily(l.info.local.address) === family),
    );
  }

  private datagramListenerFor(address: string): DatagramListener | undefined {
    const l = this.activeFor('udp', address);
    return l?.kind === 'datagram' ? l : undefined;
  }

  private streamListenerFor(
    protocol: TransportProtocol,
    address: string,
  ): StreamListener | undefined {
    const l = this.activeFor(protocol, address);
    return l?.kind === 'stream' ? l : undefined;
  }

  // ---- ListenerHost: what the listeners report ----

  nextConnectionId(protocol: TransportProtocol): string {
    this.connectionSeq += 1;
    return `${this.id}/${protocol}-${this.connectionSeq}`;
  }

  admit(remoteAddress: string): boolean {
    return !this.isClosed && this.table.admits(remoteAddress);
  }

  opened(conn: StreamConnection): void {
    if (this.isClosed) {
      conn.destroy();
      return;
    }
    this.table.add(conn);
    this.steering?.announce({
      event: 'open',
      connectionId: conn.id,
      protocol: conn.protocol,
      address: conn.remote.address,
      port: conn.remote.port,
    });
    this.diagnostics.connection({
      event: 'open',
      connectionId: conn.id,
      protocol: conn.protocol,
      direction: conn.direction,
      local: conn.local,
      remote: conn.remote,
    });
  }

  closed(conn: StreamConnection, reason: string): void {
    this.table.remove(conn.id);
    this.steering?.announce({
      event: 'close',
      connectionId: conn.id,
      protocol: conn.protocol,
      address: conn.remote.address,
      port: conn.remote.port,
    });
    this.diagnostics.connection({
      event: 'close',
      connectionId: conn.id,
      protocol: conn.protocol,
      direction: conn.direction,
      local: conn.local,
      remote: conn.remote,
      reason,
    });
    if (!this.isClosed) this.deliver(() => this.delegate?.onConnectionClosed?.(conn.id));
  }

  datagram(listener: ListenerInfo, bytes: Uint8Array, remote: Endpoint, backlogged = false): void {
    if (this.isClosed) return;
    if (backlogged && peekNewWithoutCredentials(bytes, this.limits.maxHeaderBytes)) {
      this.shedOne(listener, remote);
      return;
    }
    const peer = this.peerOf(listener, remote);
    this.inbound(bytes, 'datagram', peer.source, peer.reply, undefined);
  }

  /**
   * A new request without credentials, read while its socket is behind, is dropped before any
   * parse (`shedAfterMs`, `shedAtFill`). Not answered 503 (RFC 3261 §21.5.4): an answer costs a parse and a
   * response, about what a challenge costs, while a drop costs a peek at the octets now and
   * another at the sender's retransmission, which comes T1 and more later (§17.1.1.2,
   * §17.1.2.2) and finds the server caught up or is dropped again. Stream transports are not
   * read in batches and their senders do not retransmit; the transaction table's limit answers
   * them 503.
   */
  private shedOne(listener: ListenerInfo, remote: Endpoint): void {
    this.shed++;
    this.diagnostics.error({
      type: 'overload',
      protocol: 'udp',
      local: listener.local,
      remote,
      detail: 'new request without credentials dropped: the socket is behind',
    });
    const now = this.clock.now();
    if (now - this.shedLoggedAt < SHED_LOG_INTERVAL_MS) return;
    this.logger.warn(
      { listenerId: listener.id, shed: this.shed - this.shedLogged, total: this.shed },
      'overloaded: dropping new requests without credentials until the UDP socket catches up',
    );
    this.shedLogged = this.shed;
    this.shedLoggedAt = now;
  }

  /**
   * The Source of a datagram and the way back to its sender (§18.2.2), one pair per sender
   * (listener, address, port) rather than one per datagram. A server keeps every completed
   * non-INVITE server transaction 64*T1 with its Source (§17.2.2), a few hundred thousand of
   * them at a busy registrar; most of its traffic comes from the same senders again (a phone's
   * every request, a trunk's or an edge proxy's all of them), so they share one object and one
   * address string instead of keeping about 90 bytes each. Bounded: past `MAX_UDP_PEERS` senders
   * it starts over.
   */
  private peerOf(listener: ListenerInfo, remote: Endpoint): UdpPeer {
    let byPort = this.udpPeers.get(remote.address);
    let peer = byPort?.get(remote.port);
    if (peer !== undefined && peer.source.listener === listener) return peer;
    const udp = this.active.find((l) => l.info === listener);
    // `remote` is the caller's own object, made for this datagram: the peer keeps it.
    const to = remote;
    peer = {
      source: { protocol: 'udp', address: to.address, port: to.port, listener },
      reply: (out: Uint8Array): Promise<void> =>
        udp?.kind === 'datagram'
          ? udp.send(out, to)
          : Promise.reject(new TransportError('SB_ERR_TRANSPORT_CLOSED', 'listener gone')),
    };
    if (this.udpPeerCount >= MAX_UDP_PEERS) {
      this.udpPeers.clear();
      this.udpPeerCount = 0;
      byPort = undefined;
    }
    if (byPort === undefined) {
      byPort = new Map();
      this.udpPeers.set(to.address, byPort);
    }
    if (!byPort.has(to.port)) this.udpPeerCount++;
    byPort.set(to.port, peer);
    return peer;
  }

  data(conn: StreamConnection, bytes: Uint8Array): void {
    if (this.isClosed) return;
    let events: FramerEvent[];
    try {
      events = this.table.receive(conn.id, bytes);
    } catch (err) {
      this.internalError(err, conn);
      conn.destroy();
      return;
    }
    const source: Source = {
      protocol: conn.protocol,
      address: conn.remote.address,
      port: conn.remote.port,
      listener: conn.listener,
      connectionId: conn.id,
    };
    const reply = (out: Uint8Array): Promise<void> => conn.write(out);
    for (const e of events) {
      switch (e.type) {
        case 'message':
          this.inbound(e.bytes, 'stream', source, reply, conn);
          break;
        case 'keepalive': {
          // RFC 5626 §3.5.1: answer a CRLFCRLF ping with a CRLF pong.
          const pong = keepaliveReply(e.kind);
          if (pong !== undefined) conn.write(pong).catch(() => {});
          break;
        }
        case 'error':
          this.framingError(conn, e);
          break;
      }
    }
  }

  // ---- receiving ----

  private inbound(
    bytes: Uint8Array,
    framing: 'datagram' | 'stream',
    source: Source,
    reply: (bytes: Uint8Array) => Promise<void>,
    conn: StreamConnection | undefined,
    steer = true,
  ): void {
    // A datagram another worker owns goes there unparsed: only the owner uses the parse.
    // (A stream message is parsed here first, since a connection that never delivered a
    // well-formed message is closed on garbage, and the worker holding it must know.)
    if (steer && framing === 'datagram' && this.steering !== undefined) {
      const workers = this.steering.workers;
      const callId = workers > 1 ? peekCallId(bytes, this.limits.maxHeaderBytes) : undefined;
      if (callId !== undefined) {
        const owner = ownerOfCallId(callId, workers);
        if (
          owner !== this.steering.self &&
          this.answeredByReader?.(bytes, this.limits.maxHeaderBytes) !== true
        ) {
          this.forwardTo(owner, bytes, framing, source);
          return;
        }
        steer = false;
      }
    }
    let r: ParseResult;
    try {
      r = parseMessage(bytes, { framing, limits: this.limits });
    } catch (err) {
      this.internalError(err, conn);
      return;
    }
    if (!r.ok) {
      this.unparseable(bytes, r, framing, source, reply, conn);
      return;
    }
    const m = r.message;
    if (conn !== undefined) this.spokeSip.add(conn);
    if (steer && this.steering !== undefined) {
      const owner = ownerOf(m, this.steering.workers);
      if (owner !== undefined && owner !== this.steering.self) {
        this.forwardTo(owner, bytes, framing, source);
        return;
      }
    }
    if (m.isRequest()) {
      let req: SipRequest;
      try {
        req = stampVia(m, source);
      } catch (err) {
        this.diagnostics.error({
          type: 'parse',
          protocol: source.protocol,
          local: source.listener.local,
          remote: source,
          connectionId: source.connectionId,
          detail: `top Via unusable: ${errorText(err)}`,
        });
        return;
      }
      this.traceReceive(req, bytes.length, source);
      this.deliver(() => this.delegate?.onRequest({ message: req, source }));
      return;
    }
    const res = m as SipResponse;
    if (!this.sentByIsOurs(res)) {
      // RFC 3261 §18.1.2: "If the value does not correspond, the message MUST be silently discarded."
      this.diagnostics.error({
        type: 'dropped',
        protocol: source.protocol,
        local: source.listener.local,
        remote: source,
        connectionId: source.connectionId,
        detail: 'response whose top Via sent-by is not ours (RFC 3261 §18.1.2)',
      });
      return;
    }
    this.traceReceive(res, bytes.length, source);
    this.deliver(() => this.delegate?.onResponse({ message: res, source }));
  }

  /** Hands a message read here to the worker that owns its Call-ID (steering.ts). */
  private forwardTo(
    owner: number,
    bytes: Uint8Array,
    framing: 'datagram' | 'stream',
    source: Source,
  ): void {
    this.steering!.forward(owner, {
      framing,
      bytes,
      protocol: source.protocol,
      address: source.address,
      port: source.port,
      listenerId: source.listener.id,
      ...(source.connectionId !== undefined ? { connectionId: source.connectionId } : {}),
    });
  }

  /**
   * RFC 3261 §18.2.1 + §8.2.6: a request that does not parse is answered with
   * the status its error carries, to where it came from; a response that does
   * not parse is dropped (§18.1.2). On a stream, a request that cannot even be
   * answered (no Via: not SIP we can talk to) closes the connection.
   */
  /** Stream connections that delivered at least one well-formed message. */
  private readonly spokeSip = new WeakSet<StreamConnection>();

  private unparseable(
    bytes: Uint8Array,
    failure: ParseFailure,
    framing: 'datagram' | 'stream',
    source: Source,
    reply: (bytes: Uint8Array) => Promise<void>,
    conn: StreamConnection | undefined,
  ): void {
    const fields = failedRequestFields(bytes, failure, { framing, limits: this.limits });
    const response = this.errorResponse(fields, failure.error.status, failure.error.reason);
    this.diagnostics.error({
      type: 'parse',
      code: failure.error.code,
      protocol: source.protocol,
      local: source.listener.local,
      remote: source,
      connectionId: source.connectionId,
      answered: response?.status,
      detail: failure.error.detail,
    });
    if (response !== undefined) {
      this.replyWith(response, source, reply);
    } else if (conn !== undefined && !looksLikeResponse(bytes) && !this.spokeSip.has(conn)) {
      // A connection that never carried a SIP message is not a SIP peer: close it. One
      // that did keeps going with the junk dropped, so that the answers to its requests
      // in progress still go out on it (RFC 3261 §18.2.2; RFC 4475 §3.1.1.8 dblreq ends
      // in stray octets after two good requests).
      conn.end();
    }
  }

  /**
   * A StreamFramer error: the stream cannot be framed any more (RFC 4475
   * §3.1.2.3: "the connection ... should be closed"). Answer 400/513 when the
   * header section was read and is a request with a Via, then close.
   */
  private framingError(conn: StreamConnection, e: Extract<FramerEvent, { type: 'error' }>): void {
    let fields: readonly HeaderField[] | undefined;
    try {
      fields = e.head === undefined ? undefined : headRequestFields(e.head, this.limits);
    } catch {
      fields = undefined;
    }
    const response = this.errorResponse(fields, e.error.status, e.error.reason);
    this.diagnostics.error({
      type: 'framing',
      code: e.error.code,
      protocol: conn.protocol,
      local: conn.local,
      remote: conn.remote,
      connectionId: conn.id,
      answered: response?.status,
      detail: e.error.detail,
    });
    if (response !== undefined) {
      const source: Source = {
        protocol: conn.protocol,
        address: conn.remote.address,
        port: conn.remote.port,
        listener: conn.listener,
        connectionId: conn.id,
      };
      this.replyWith(response, source, (out) => conn.write(out));
    }
    conn.end();
  }

  private errorResponse(
    fields: readonly HeaderField[] | undefined,
    status: number,
    reason: string,
  ): SipResponse | undefined {
    if (fields === undefined) return undefined;
    try {
      // §8.2.6.2: a UAS adds a To tag to its responses; this one answers statelessly.
      return createErrorResponse({ fields }, status, reason, this.ids.tag());
    } catch {
      return undefined;
    }
  }

  private replyWith(
    response: SipResponse,
    source: Source,
    reply: (bytes: Uint8Array) => Promise<void>,
  ): void {
    let out: Uint8Array;
    try {
      out = serializeMessage(response, pooledUtf8);
    } catch (err) {
      this.internalError(err, undefined);
      return;
    }
    reply(out).then(
      () =>
        this.traceSend(
          response,
          out.length,
          source.protocol,
          source.listener.local,
          source,
          source.connectionId,
        ),
      (err: unknown) => this.sendFailed(err, source.protocol, source, source.connectionId),
    );
  }

  /** RFC 3261 §18.1.2: the top Via's sent-by must be one this layer inserts. */
  private sentByIsOurs(res: SipResponse): boolean {
    if (!this.checkSentBy) return true;
    let via: Via;
    try {
      via = res.topVia;
    } catch {
      return false;
    }
    const port = via.port ?? defaultPort(protocolOfViaTransport(via.transport) ?? 'udp');
    return this.active.some(
      ({ info: l }) =>
        (port === l.advertisedPort || port === l.local.port) &&
        (sameAddress(via.host, l.advertisedHost) ||
          sameAddress(via.host, l.local.address) ||
          isUnspecified(l.local.address)),
    );
  }

  // ---- sending ----

  async sendRequest(message: SipRequest, dest: Destination): Promise<void> {
    this.assertOpen();
    if (ipFamily(dest.address) === 0) {
      throw new TransportError(
        'SB_ERR_TRANSPORT_NO_LISTENER',
        `destination ${dest.address} is not an IP address (resolve it first, RFC 3263)`,
      );
    }
    const target: Destination = { ...dest, address: normalizeAddress(dest.address) };
    const bytes = this.serialize(message);
    if (target.protocol !== 'udp') {
      await this.sendOnStream(bytes, message, target);
      return;
    }
    // RFC 3261 §18.1.1: "If a request is within 200 bytes of the path MTU, or if it is larger
    // than 1300 bytes and the path MTU is unknown, the request MUST be sent using an RFC 2914
    // congestion controlled transport protocol, such as TCP."
    if (bytes.length > this.mtu) {
      const tcp = this.streamListenerFor('tcp', target.address);
      const moved = tcp === undefined ? undefined : withTopViaFrom(message, tcp.info);
      if (moved !== undefined) {
        try {
          await this.sendOnStream(this.serialize(moved), moved, {
            protocol: 'tcp',
            address: target.address,
            port: target.port,
          });
          return;
        } catch (err) {
          // §18.1.1: "if the attempt to establish the connection generates either an ICMP
          // Protocol Not Supported, or results in a TCP reset, the element SHOULD retry the
          // request, using UDP."
          if (!(err instanceof TransportError) || err.code !== 'SB_ERR_TRANSPORT_CONNECT')
            throw err;
        }
      }
    }
    const udp = this.datagramListenerFor(target.address);
    if (udp === undefined) throw this.noListener(target);
    await this.sendDatagram(udp, bytes, message, target);
  }

  async sendResponse(message: SipResponse, requestSource: Source): Promise<void> {
    this.assertOpen();
    let via: Via;
    try {
      via = message.topVia;
    } catch (err) {
      throw new TransportError(
        'SB_ERR_TRANSPORT_SEND',
        `response has no usable Via: ${errorText(err)}`,
      );
    }
    const bytes = this.serialize(message);
    const protocol = requestSource.protocol;
    if (isReliable(protocol)) {
      // RFC 3261 §18.2.2: "If the "sent-protocol" is a reliable transport protocol such as TCP
      // or SCTP, or TLS over those, the response MUST be sent using the existing connection to
      // the source of the original request that created the transaction, if that connection is
      // still open."
      const conn =
        requestSource.connectionId === undefined
          ? undefined
          : this.table.get(requestSource.connectionId);
      if (conn !== undefined) {
        await this.writeOn(conn, bytes, message);
        return;
      }
      const peer =
        requestSource.connectionId === undefined
          ? undefined
          : this.peerConnById.get(requestSource.connectionId);
      if (peer !== undefined) {
        this.writeViaPeer(peer.owner, requestSource.connectionId!, bytes, message, requestSource);
        return;
      }
      // "If the connection is no longer open, the server SHOULD open a connection to the IP
      // address in the "received" parameter, if present, using the port in the "sent-by" value,
      // or the default port for that transport, if no port is specified."
      const address = via.received ?? via.host;
      if (ipFamily(address) === 0) throw this.unroutable(via);
      await this.sendOnStream(bytes, message, {
        protocol,
        address: normalizeAddress(address),
        port: via.port ?? defaultPort(protocol),
      });
      return;
    }
    // RFC 3581 §4: "the response MUST be sent to the IP address from which the request was
    // received [the received parameter], and the port in the rport parameter"; RFC 3261
    // §18.2.2 otherwise: received (or sent-by) and the sent-by port, 5060 by default.
    const address = via.received ?? via.host;
    if (ipFamily(address) === 0) throw this.unroutable(via);
    const to: Destination = {
      protocol: 'udp',
      address: normalizeAddress(address),
      port: typeof via.rport === 'number' ? via.rport : (via.port ?? defaultPort('udp')),
    };
    // "... sent from the same address and port the request was received on" (RFC 3581 §4).
    const same =
      this.active.find((l) => l.info === requestSource.listener) ??
      this.active.find((l) => l.info.id === requestSource.listener.id);
    const udp =
      same?.kind === 'datagram' && ipFamily(same.info.local.address) === ipFamily(to.address)
        ? same
        : this.datagramListenerFor(to.address);
    if (udp === undefined) throw this.noListener(to);
    await this.sendDatagram(udp, bytes, message, to);
  }

  private serialize(message: SipMessage): Uint8Array {
    try {
      return serializeMessage(message, pooledUtf8);
    } catch (err) {
      throw new TransportError('SB_ERR_TRANSPORT_SEND', `cannot serialize: ${errorText(err)}`);
    }
  }

  private async sendDatagram(
    udp: DatagramListener,
    bytes: Uint8Array,
    message: SipMessage,
    to: Endpoint,
  ): Promise<void> {
    try {
      await udp.send(bytes, to);
    } catch (err) {
      this.sendFailed(err, 'udp', to, undefined);
      throw err;
    }
    this.traceSend(message, bytes.length, 'udp', udp.info.local, to, undefined);
  }

  private async sendOnStream(
    bytes: Uint8Array,
    message: SipMessage,
    dest: Destination,
  ): Promise<void> {
    const peer = this.peerConnectionFor(dest);
    if (peer !== undefined) {
      this.writeViaPeer(peer.owner, peer.id, bytes, message, dest);
      return;
    }
    const conn = await this.connectionFor(dest);
    await this.writeOn(conn, bytes, message);
  }

  private async writeOn(
    conn: StreamConnection,
    bytes: Uint8Array,
    message: SipMessage,
  ): Promise<void> {
    try {
      await conn.write(bytes);
    } catch (err) {
      this.sendFailed(err, conn.protocol, conn.remote, conn.id);
      throw err;
    }
    this.traceSend(message, bytes.length, conn.protocol, conn.local, conn.remote, conn.id);
  }

  /**
   * RFC 3261 §18.1.1 / §18.2.2: the connection named by the destination, else
   * an open one to that endpoint (whoever opened it), else a new one (one
   * connect at a time per endpoint).
   */
  private connectionFor(dest: Destination): Promise<StreamConnection> {
    if (dest.connectionId !== undefined) {
      const named = this.table.get(dest.connectionId);
      if (named !== undefined && named.protocol === dest.protocol) return Promise.resolve(named);
    }
    const open = this.table.find(dest.protocol, dest);
    if (open !== undefined) return Promise.resolve(open);
    const key = endpointKey(dest.protocol, dest);
    const pending = this.connecting.get(key);
    if (pending !== undefined) return pending;
    const listener = this.streamListenerFor(dest.protocol, dest.address);
    if (listener === undefined) return Promise.reject(this.noListener(dest));
    const attempt = listener.connect(dest).then(
      (conn) => {
        this.connecting.delete(key);
        return conn;
      },
      (err: unknown) => {
        this.connecting.delete(key);
        this.diagnostics.error({
          type: 'connect',
          code: err instanceof TransportError ? err.code : undefined,
          protocol: dest.protocol,
          local: listener.info.local,
          remote: { address: dest.address, port: dest.port },
          detail: errorText(err),
        });
        throw err instanceof TransportError
          ? err
          : new TransportError('SB_ERR_TRANSPORT_CONNECT', errorText(err));
      },
    );
    this.connecting.set(key, attempt);
    return attempt;
  }

  // ---- steering: the other workers' side ----

  /**
   * Another worker's connection to use for `dest`, when this worker has none of its own: the
   * one the destination names, else one to the same remote endpoint (RFC 3261 §18.1.1 reuse,
   * across workers).
   */
  private peerConnectionFor(dest: Destination): { owner: number; id: string } | undefined {
    if (this.steering === undefined) return undefined;
    if (dest.connectionId !== undefined && this.table.get(dest.connectionId) === undefined) {
      const named = this.peerConnById.get(dest.connectionId);
      if (named !== undefined) return { owner: named.owner, id: dest.connectionId };
    }
    if (this.table.find(dest.protocol, dest) !== undefined) return undefined;
    return this.peerConnByEndpoint.get(endpointKey(dest.protocol, dest));
  }

  private writeViaPeer(
    owner: number,
    connectionId: string,
    bytes: Uint8Array,
    message: SipMessage,
    remote: Endpoint & { protocol: TransportProtocol },
  ): void {
    this.steering!.write(owner, connectionId, bytes);
    const listener = this.streamListenerFor(remote.protocol, remote.address);
    this.traceSend(
      message,
      bytes.length,
      remote.protocol,
      listener?.info.local ?? { address: '', port: 0 },
      remote,
      connectionId,
    );
  }

  /** A message another worker read, owned here: handled as if read here, not steered again. */
  private receiveForwarded(f: ForwardedMessage): void {
    if (this.isClosed) return;
    const listener = this.active.find((l) => l.info.id === f.listenerId);
    if (listener === undefined) {
      this.logger.warn({ listenerId: f.listenerId }, 'forwarded message for an unknown listener');
      return;
    }
    if (f.connectionId === undefined && f.protocol === 'udp' && listener.kind === 'datagram') {
      // A datagram another worker read: the same sender as one read here (`peerOf`).
      const peer = this.peerOf(listener.info, { address: f.address, port: f.port });
      this.inbound(f.bytes, f.framing, peer.source, peer.reply, undefined, false);
      return;
    }
    const remote: Endpoint = { address: f.address, port: f.port };
    const source: Source = {
      protocol: f.protocol,
      address: f.address,
      port: f.port,
      listener: listener.info,
      ...(f.connectionId !== undefined ? { connectionId: f.connectionId } : {}),
    };
    const id = f.connectionId;
    const reply = (out: Uint8Array): Promise<void> => {
      if (id !== undefined) {
        const owner = this.peerConnById.get(id)?.owner ?? this.ownerOfConnectionId(id);
        if (owner === undefined) {
          return Promise.reject(new TransportError('SB_ERR_TRANSPORT_CLOSED', 'connection gone'));
        }
        this.steering!.write(owner, id, out);
        return Promise.resolve();
      }
      return listener.kind === 'datagram'
        ? listener.send(out, remote)
        : Promise.reject(new TransportError('SB_ERR_TRANSPORT_CLOSED', 'listener gone'));
    };
    if (id !== undefined && !this.peerConnById.has(id)) {
      // The announcement of its connection may still be on its way: the message names it.
      const owner = this.ownerOfConnectionId(id);
      if (owner !== undefined) {
        this.peerAnnounced(owner, {
          event: 'open',
          connectionId: id,
          protocol: f.protocol,
          address: f.address,
          port: f.port,
        });
      }
    }
    this.inbound(f.bytes, f.framing, source, reply, undefined, false);
  }

  /** The worker whose layer made a connection id (`w<index>/...`, the layer ids serve gives). */
  private ownerOfConnectionId(id: string): number | undefined {
    const m = /^w(\d+)\//.exec(id);
    if (m === null) return undefined;
    const n = Number(m[1]);
    return this.steering !== undefined && n < this.steering.workers ? n : undefined;
  }

  /** Another worker asks to write on a connection of ours. */
  private writeForPeer(connectionId: string, bytes: Uint8Array): void {
    const conn = this.table.get(connectionId);
    if (conn === undefined || conn.closed) {
      this.diagnostics.error({
        type: 'send',
        code: 'SB_ERR_TRANSPORT_CLOSED',
        protocol: conn?.protocol ?? 'tcp',
        remote: conn?.remote ?? { address: '', port: 0 },
        connectionId,
        detail: 'write from another worker on a connection that is gone',
      });
      return;
    }
    conn
      .write(bytes)
      .catch((err: unknown) => this.sendFailed(err, conn.protocol, conn.remote, conn.id));
  }

  private peerAnnounced(from: number, a: ConnectionAnnouncement): void {
    const key = endpointKey(a.protocol, a);
    if (a.event === 'open') {
      this.peerConnById.set(a.connectionId, { owner: from, key });
      this.peerConnByEndpoint.set(key, { owner: from, id: a.connectionId });
      return;
    }
    this.peerConnById.delete(a.connectionId);
    if (this.peerConnByEndpoint.get(key)?.id === a.connectionId)
      this.peerConnByEndpoint.delete(key);
  }

  private forgetPeer(peer: number): void {
    for (const [id, c] of this.peerConnById) {
      if (c.owner !== peer) continue;
      this.peerConnById.delete(id);
      if (this.peerConnByEndpoint.get(c.key)?.id === id) this.peerConnByEndpoint.delete(c.key);
    }
  }

  private assertOpen(): void {
    if (this.isClosed)
      throw new TransportError('SB_ERR_TRANSPORT_CLOSED', `layer ${this.id} is closed`);
  }

  private noListener(dest: Destination): TransportError {
    return new TransportError(
      'SB_ERR_TRANSPORT_NO_LISTENER',
      `no ${dest.protocol} listener for IPv${ipFamily(dest.address) || '?'} destination ${formatHostPort(dest.address, dest.port)}`,
    );
  }

  private unroutable(via: Via): TransportError {
    // RFC 3261 §18.2.2 would resolve a sent-by host name (RFC 3263 §5); this layer does no DNS,
    // and every request it receives gets a received parameter when sent-by is a name.
    return new TransportError(
      'SB_ERR_TRANSPORT_SEND',
      `response Via sent-by ${via.host} is not an address and has no received parameter`,
    );
  }

  // ---- diagnostics and delegate ----

  private deliver(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // A delegate that throws is a bug above us; it must not take the socket down with it.
      this.logger.error({ err }, 'transport delegate threw');
    }
  }

  private internalError(err: unknown, conn: StreamConnection | undefined): void {
    this.logger.error({ err, connectionId: conn?.id }, 'transport internal error');
  }

  private sendFailed(
    err: unknown,
    protocol: TransportProtocol,
    remote: Endpoint,
    connectionId: string | undefined,
  ): void {
    this.diagnostics.error({
      type: 'send',
      code: err instanceof TransportError ? err.code : undefined,
      protocol,
      remote: { address: remote.address, port: remote.port },
      connectionId,
      detail: errorText(err),
    });
  }

  private traceReceive(m: SipMessage, size: number, source: Source): void {
    if (!this.diagnostics.tracing) return;
    this.diagnostics.receive({
      protocol: source.protocol,
      local: source.listener.local,
      remote: { address: source.address, port: source.port },
      connectionId: source.connectionId,
      size,
      ...describeMessage(m),
    });
  }

  private traceSend(
    m: SipMessage,
    size: number,
    protocol: TransportProtocol,
    local: Endpoint,
    remote: Endpoint,
    connectionId: string | undefined,
  ): void {
    if (!this.diagnostics.tracing) return;
    this.diagnostics.send({
      protocol,
      local,
      remote: { address: remote.address, port: remote.port },
      connectionId,
      size,
      ...describeMessage(m),
    });
  }

  // ---- closing ----

  stopListening(): void {
    for (const l of this.active) if (l.kind === 'stream') l.stopAccepting();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const conn of this.table.clear()) conn.destroy();
      await Promise.all(this.active.map((l) => l.close()));
    })();
    return this.closing;
  }
}

/**
 * The request with its top Via moved to `listener` (transport and sent-by),
 * for the §18.1.1 switch from UDP to TCP: "the client transport MUST insert a
 * value of the "sent-by" field ... [and] the transport protocol". Undefined
 * when the request has no usable Via.
 */
function withTopViaFrom(req: SipRequest, listener: ListenerInfo): SipRequest | undefined {
  let via: Via;
  try {
    via = req.topVia;
  } catch {
    return undefined;
  }
  const moved: Via = {
    ...via,
    transport: VIA_TRANSPORT[listener.protocol],
    host: uriHost(listener.advertisedHost),
    port: listener.advertisedPort,
  };
  return req.removeFirst(ViaHeader).prepend('Via', formatVia(moved));
}
