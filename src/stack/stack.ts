/**
 * The stack: one instance wires a transport layer, a transaction layer and
 * the UA core (RFC 3261 §8 and §12–§15) for an application. Two stacks run in
 * one process: everything hangs off the instance, built with its own clock,
 * randomness, logger and transports.
 *
 * What it owns:
 * - sending requests (§8.1): Via with a fresh branch from the listener that
 *   reaches the next hop, next hop from the first Route or the Request-URI,
 *   401/407 retries with the digest client (§22.2), 2xx-to-INVITE ACKs (§13.2.2.4),
 *   including re-ACKs of retransmitted 2xx;
 * - receiving requests (§8.2): dialog matching by Call-ID and tags (§12.2.2),
 *   CSeq order (500), 481 for unknown dialogs, out-of-dialog requests to the
 *   application;
 * - the UAS core's 2xx retransmission until the ACK arrives (§13.3.1.4).
 */
import {
  ContactHeader,
  RouteHeader,
  createResponse,
  formatUri,
  type SipRequest,
  type SipResponse,
  type Uri,
} from '../sip/index.ts';
import {
  cryptoRandom,
  createIdGenerator,
  derivedTag,
  silentLogger,
  systemClock,
  type Clock,
  type IdGenerator,
  type Logger,
  type RandomSource,
  type TimerHandle,
} from '../base/index.ts';
import {
  VIA_TRANSPORT,
  formatHostPort,
  viaFor,
  isReliable,
  type Destination,
  type InboundRequest,
  type InboundResponse,
  type ListenerInfo,
  type Source,
  type TransportLayer,
  type SipResolver,
  type TransportProtocol,
} from '../transport/index.ts';
import {
  TransactionLayer,
  type ClientTransaction,
  type ServerTransaction,
  type TransactionTimers,
} from '../transaction/index.ts';
import { createDigestClient } from '../auth/index.ts';
import { Dialog, dialogKey } from '../dialog/index.ts';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface StackOptions {
  /** A transport layer built by the caller (see createStack for listener specs). */
  readonly transport: TransportLayer;
  readonly clock?: Clock;
  readonly random?: RandomSource;
  readonly logger?: Logger;
  readonly timers?: Partial<TransactionTimers>;
  /** User-Agent header value for requests and Server for responses. */
  readonly userAgent?: string;
  /**
   * RFC 3263 resolution for next hops that are names. Without it, only IP
   * literals are reachable (createStack supplies one on the system's DNS).
   */
  readonly resolver?: SipResolver;
  /**
   * Live server transactions before new requests get 503 + Retry-After (bounded
   * memory under floods). Finished UDP transactions stay 32 s (Timers J and L) while
   * there is room; with the table full, those that have waited 2*T2 (8 s) are ended
   * early to make room, so the sustained rate is capped at about this / 8 requests
   * per second (12,500 at the default 100,000), not this / 32.
   */
  readonly maxServerTransactions?: number;
  /** Of those, most for requests from one source address (default: no per-source limit). */
  readonly maxServerTransactionsPerSource?: number;
  /** Branches, tags and Call-IDs (default: from `random`; a server's workers own their Call-IDs). */
  readonly ids?: IdGenerator;
  /**
   * The secret part of the To tags of stateless responses (default: random). Processes that
   * answer the same requests (a server's workers) share one, so that a retransmission gets the
   * same tag whichever answers it (RFC 3261 §8.2.7).
   */
  readonly tagSalt?: string;
}

/** A request received by the application, with what it needs to answer. */
export interface IncomingRequest {
  readonly message: SipRequest;
  readonly source: Source;
  /** The dialog the request belongs to, for in-dialog requests. */
  readonly dialog: Dialog | undefined;
  /** The server transaction (undefined for ACK, which has none). */
  readonly transaction: ServerTransaction | undefined;
  /** Sends a response; a To tag is added to responses that need one. */
  reply(status: number, options?: ReplyOptions): Promise<SipResponse>;
}

export interface ReplyOptions {
  readonly reason?: string;
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
  /** To tag to use (default: the stack's tag for this request). */
  readonly toTag?: string;
  /**
   * Answer as a stateless UAS (RFC 3261 §8.2.7): the transaction ends with this response, and
   * a retransmitted request comes to the handler again. For final responses that the same
   * request always gets — challenges above all (§8.2.7, §26.1.5) — so that unauthenticated
   * requests leave no state. The To tag is made from the request, the same for its
   * retransmissions, and the ACK of such a response to an INVITE is dropped by the stack.
   * Ignored for a provisional response and for a 2xx to an INVITE.
   */
  readonly stateless?: boolean;
}

/**
 * A final response a screen gives a request before any transaction is made for it
 * (`Stack.onScreen`): sent as a stateless UAS would (RFC 3261 §8.2.7).
 */
export interface StatelessAnswer {
  readonly status: number;
  readonly reason?: string;
  readonly headers?: readonly (readonly [string, string])[];
}

export interface SendOptions {
  /** Override the next hop (default: first Route, else the Request-URI, §8.1.2). */
  readonly destination?: Destination;
  /** Answer 401/407 challenges with these credentials (§22.2). */
  readonly credentials?: Credentials;
  /** Called for each provisional response. */
  readonly onProvisional?: (response: SipResponse) => void;
  /** For INVITE: called for every 2xx (the first and forked ones) before the promise settles. */
  readonly onSuccess?: (response: SipResponse, request: SipRequest) => void;
}

/** An outgoing request in flight. */
export interface OutgoingRequest {
  /** The request as last sent (after authentication retries). */
  readonly request: SipRequest;
  /** The final response (a 408 is synthesized on timeout, 503 on transport failure, §8.1.3.1). */
  readonly final: Promise<SipResponse>;
  /** CANCEL an INVITE (§9.1); sent once a provisional response arrived. */
  cancel(): void;
}

/** §13.3.1.4: a UAS retransmits its 2xx to INVITE until the ACK comes. */
interface PendingAck {
  readonly response: SipResponse;
  readonly source: Source;
  interval: number;
  elapsed: number;
  timer: TimerHandle;
  readonly onGiveUp: () => void;
}

const DEFAULT_T1 = 500;
/** 100k live server transactions ≈ 3,000 new requests/s sustained over UDP (Timer J = 32 s). */
export const STACK_MAX_SERVER_TRANSACTIONS = 100_000;
const DEFAULT_T2 = 4000;

export class Stack {
  readonly transport: TransportLayer;
  readonly transactions: TransactionLayer;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly ids: IdGenerator;
  readonly logger: Logger;
  readonly userAgent: string;
  private readonly resolver: SipResolver | undefined;
  /** RFC 3261 §17.1.1.1 T1 and T2 of this stack (ms), for UA-core retransmissions (§13.3.1.4, RFC 3262 §3). */
  readonly t1: number;
  readonly t2: number;
  private handler: ((req: IncomingRequest) => void) | undefined;
  private screenHandler:
    ((request: SipRequest, source: Source) => StatelessAnswer | undefined) | undefined;
  private readonly dialogs = new Map<string, Dialog>();
  /** ACKs for 2xx we sent, by dialog key + CSeq, to re-send on 2xx retransmission. */
  private readonly acks = new Map<string, { ack: SipRequest; dest: Destination }>();
  private readonly pendingAcks = new Map<string, PendingAck>();
  /** To tags we chose for requests we answer, by transaction id. */
  private readonly tags = new Map<string, string>();
  /** Secret part of the To tags of stateless responses (see `statelessTag`). */
  private readonly tagSalt: string;
  private closed = false;

  constructor(options: StackOptions) {
    this.transport = options.transport;
    this.clock = options.clock ?? systemClock();
    this.random = options.random ?? cryptoRandom();
    this.ids = options.ids ?? createIdGenerator(this.random);
    this.tagSalt = options.tagSalt ?? this.ids.callId();
    this.logger = options.logger ?? silentLogger;
    this.userAgent = options.userAgent ?? 'Switchboard';
    this.resolver = options.resolver;
    this.t1 = options.timers?.T1 ?? DEFAULT_T1;
    this.t2 = options.timers?.T2 ?? DEFAULT_T2;
    this.transactions = new TransactionLayer({
      transport: this.transport,
      clock: this.clock,
      ...(options.timers !== undefined ? { timers: options.timers } : {}),
      logger: this.logger,
      maxServerTransactions: options.maxServerTransactions ?? STACK_MAX_SERVER_TRANSACTIONS,
      ...(options.maxServerTransactionsPerSource !== undefined
        ? { maxServerTransactionsPerSource: options.maxServerTransactionsPerSource }
        : {}),
    });
    this.transactions.setDelegate({
      onRequest: (tx) => this.receiveRequest(tx.request, tx.source, tx),
      screen: (inbound) => this.screen(inbound),
      onAck: (req) => this.receiveAck(req),
      onCancel: (tx) => this.receiveCancel(tx),
      onStrayResponse: (res) => this.receiveStrayResponse(res),
    });
  }

  /** Sets the application's handler for requests (out-of-dialog and in-dialog). */
  onRequest(handler: (req: IncomingRequest) => void): void {
    this.handler = handler;
  }

  private orphanHandler: ((req: IncomingRequest) => boolean) | undefined;

  /**
   * Offers every new request outside a dialog (no To tag; not ACK or CANCEL) to `handler`
   * before a server transaction is made for it. A final response it returns is sent as a
   * stateless UAS sends it (RFC 3261 §8.2.7: the To tag made from the request, so that a
   * retransmission, offered again, gets the same; the ACK of such a response to an INVITE is
   * dropped), and the request goes no further; undefined lets it go on to `onRequest` in its
   * transaction. For the answers a request gets before the server keeps anything for it:
   * §8.2.7 "The stateless UAS role is needed primarily to handle unauthenticated requests for
   * which a challenge response is issued". The handler must answer at once, and the same
   * for the same request.
   */
  onScreen(handler: (request: SipRequest, source: Source) => StatelessAnswer | undefined): void {
    this.screenHandler = handler;
  }

  /**
   * Offers in-dialog requests that match no dialog to `handler` before they are
   * answered 481; it returns true when it took the request.
   */
  onOrphanRequest(handler: (req: IncomingRequest) => boolean): void {
    this.orphanHandler = handler;
  }

  /** Registers a dialog so that in-dialog requests find it. */
  addDialog(dialog: Dialog): void {
    this.dialogs.set(dialog.key, dialog);
  }

  removeDialog(dialog: Dialog): void {
    dialog.state = 'terminated';
    this.dialogs.delete(dialog.key);
    for (const k of this.acks.keys()) if (k.startsWith(dialog.key + '\u0001')) this.acks.delete(k);
  }

  findDialog(callId: string, localTag: string, remoteTag: string): Dialog | undefined {
    return this.dialogs.get(dialogKey({ callId, localTag, remoteTag }));
  }

  // ---- sending --------------------------------------------------------------

  /** The next hop of a request (§8.1.2): the first Route's URI, else the Request-URI. */
  nextHop(request: SipRequest): Destination {
    const routes = request.get(RouteHeader);
    const uri = routes !== undefined && routes.length > 0 ? routes[0]!.uri : request.uri;
    return destinationOf(uri);
  }

  /** The listener for a destination, or a TransportError-like failure. */
  listenerFor(dest: Destination): ListenerInfo | undefined {
    return this.transport.listenerFor(dest);
  }

  /**
   * A Contact URI for this stack on the listener that reaches `dest`. The
   * scheme stays `sip` with a transport parameter (`;transport=tls` rather
   * than `sips:`): a `sips` Contact in a dialog that began with a `sip`
   * Request-URI would oblige the peer to TLS end to end (RFC 5630 §3), which
   * many clients refuse.
   */
  contactFor(dest: Destination, user?: string): string {
    const l = this.transport.listenerFor(dest) ?? this.transport.listeners[0];
    if (l === undefined) return '<sip:invalid>';
    const transport = l.protocol === 'udp' ? '' : `;transport=${l.protocol}`;
    const u = user !== undefined ? `${user}@` : '';
    return `<sip:${u}${formatHostPort(l.advertisedHost, l.advertisedPort)}${transport}>`;
  }

  /** Puts a fresh top Via for `dest` on a request (§8.1.1.7, RFC 3581 rport). */
  private withVia(request: SipRequest, dest: Destination): SipRequest {
    const l = this.transport.listenerFor(dest);
    const via =
      l !== undefined
        ? viaFor(l, this.ids.branch())
        : `SIP/2.0/${VIA_TRANSPORT[dest.protocol]} 0.0.0.0;branch=${this.ids.branch()};rport`;
    return request.remove('Via').prepend('Via', via);
  }

  /**
   * Sends a request in a client transaction. The request needs no Via: one is
   * added. INVITE 2xx responses are ACKed here (§13.2.2.4), and their
   * retransmissions re-ACKed.
   */
  send(request: SipRequest, options: SendOptions = {}): OutgoingRequest {
    const base = this.decorate(request);
    let tx: ClientTransaction | undefined;
    let cancelWanted = false;
    let settled = false;
    const digest =
      options.credentials !== undefined
        ? createDigestClient({
            username: options.credentials.username,
            password: options.credentials.password,
            random: this.random,
          })
        : undefined;
    const outgoing: { request: SipRequest; final: Promise<SipResponse>; cancel(): void } = {
      request: base,
      final: undefined as unknown as Promise<SipResponse>,
      cancel: () => {
        cancelWanted = true;
        tx?.cancel?.();
      },
    };
    outgoing.final = new Promise<SipResponse>((resolve) => {
      const settle = (r: SipResponse): void => {
        if (settled) return;
        settled = true;
        resolve(r);
      };
      let targets: readonly Destination[] = [];
      /**
       * Sends `req` to targets[i]. RFC 3263 §4.3: on a transport error or a 503
       * the next target is tried, in a new transaction (new branch); when none is
       * left the last outcome stands.
       */
      const start = (req: SipRequest, i: number): void => {
        const dest = targets[i]!;
        const withVia = this.withVia(req, dest);
        outgoing.request = withVia;
        const failover = (): boolean => {
          if (i + 1 >= targets.length || cancelWanted || settled) return false;
          start(req, i + 1);
          return true;
        };
        tx = this.transactions.sendRequest(withVia, dest, {
          onResponse: (res) => {
            if (res.status < 200) {
              options.onProvisional?.(res);
              if (cancelWanted) tx?.cancel?.();
              return;
            }
            if (withVia.method === 'INVITE' && res.status < 300) {
              this.ackSuccess(withVia, res, dest);
              options.onSuccess?.(res, withVia);
              settle(res);
              return;
            }
            if ((res.status === 401 || res.status === 407) && digest !== undefined && !settled) {
              const authorized = digest.authorize(withVia, res);
              if (authorized !== undefined && !cancelWanted) {
                // §22.2: a new request with the credentials, a new branch and CSeq + 1.
                start(authorized.set('CSeq', `${withVia.cseq.seq + 1} ${withVia.method}`), i);
                return;
              }
            }
            if (res.status === 503 && failover()) return;
            settle(res);
          },
          onTimeout: () => settle(createResponse(withVia, 408, { reason: 'Request Timeout' })),
          onTransportError: () => {
            if (failover()) return;
            settle(createResponse(withVia, 503, { reason: 'Service Unavailable' }));
          },
        });
      };
      const unreachable = (why: string): void =>
        settle(
          createResponse(
            this.withVia(base, { protocol: 'udp', address: '0.0.0.0', port: 0 }),
            503,
            {
              reason: why,
            },
          ),
        );
      if (this.closed) {
        unreachable('Stack Closed');
        return;
      }
      void this.targetsFor(base, options.destination).then(
        (list) => {
          targets = list;
          if (list.length === 0) unreachable('No Route to Target');
          else {
            try {
              start(base, 0);
            } catch {
              // The transport closed meanwhile (a timer of an application outliving close()).
              unreachable('Stack Closed');
            }
          }
        },
        () => unreachable('No Route to Target'),
      );
    });
    return outgoing;
  }

  /**
   * The ordered destinations for a URI (RFC 3263): an IP literal directly, a name
   * through the resolver (none without one). Used by cores that forward requests.
   */
  async resolve(uri: Uri): Promise<readonly Destination[]> {
    if (uri.kind !== 'sip') return [];
    if (isIpLiteral(uri.host)) return [destinationOf(uri)];
    if (this.resolver === undefined) return [];
    return this.resolver.resolve(uri);
  }

  /**
   * The ordered destinations of a request: the given one; else the next hop
   * (first Route, else the Request-URI, §8.1.2) — directly when its host is an
   * IP literal, through RFC 3263 resolution when it is a name.
   */
  private async targetsFor(
    request: SipRequest,
    given: Destination | undefined,
  ): Promise<readonly Destination[]> {
    if (given !== undefined) return [given];
    const routes = request.get(RouteHeader);
    return this.resolve(routes !== undefined && routes.length > 0 ? routes[0]!.uri : request.uri);
  }

  /** Adds User-Agent and Max-Forwards defaults. */
  private decorate(request: SipRequest): SipRequest {
    return request.has('User-Agent') ? request : request.append('User-Agent', this.userAgent);
  }

  /**
   * §13.2.2.4: "The UAC core MUST generate an ACK request for each 2xx received
   * from the transaction layer", built like an in-dialog request with the
   * INVITE's CSeq number, sent directly to the transport (no transaction).
   */
  private ackSuccess(invite: SipRequest, response: SipResponse, dest: Destination): void {
    const remoteTag = response.to.tag ?? '';
    const key = `${dialogKey({ callId: invite.callId, localTag: invite.from.tag ?? '', remoteTag })}\u0001${invite.cseq.seq}`;
    const known = this.acks.get(key);
    if (known !== undefined) {
      void this.transport.sendRequest(known.ack, known.dest).catch(() => undefined);
      return;
    }
    const existing = this.findDialog(invite.callId, invite.from.tag ?? '', remoteTag);
    // §12.2.1.2: "When a UAC receives a 2xx response to a target refresh request,
    // it MUST replace the dialog's remote target URI with the URI from the
    // Contact header field in that response" — before the ACK is built. The
    // same holds for the 2xx that confirms an early dialog (§12.1.2).
    existing?.refreshTarget(response);
    if (existing !== undefined && existing.state === 'early') existing.state = 'confirmed';
    const dialog = existing ?? Dialog.fromUacResponse(invite, response);
    if (dialog === undefined) return;
    const extra: [string, string][] = [];
    for (const name of ['Proxy-Authorization', 'Authorization']) {
      const v = invite.getRaw(name);
      if (v !== undefined) extra.push([name, v]);
    }
    const ackBase = dialog.createRequest('ACK', { seq: invite.cseq.seq, headers: extra });
    const ackDest = this.nextHop(ackBase);
    const ack = this.withVia(this.decorate(ackBase), ackDest);
    this.acks.set(key, { ack, dest: ackDest });
    void this.transport.sendRequest(ack, ackDest).catch(() => undefined);
    void dest;
  }

  // ---- receiving ------------------------------------------------------------

  /** `onScreen`'s handler for a new request; true when it was answered here. */
  private screen(inbound: InboundRequest): boolean {
    const handler = this.screenHandler;
    if (handler === undefined || this.closed) return false;
    const request = inbound.message;
    if (request.to.tag !== undefined) return false;
    const answer = handler(request, inbound.source);
    // Only a final response, and for an INVITE only a non-2xx one (a 2xx needs its ACK).
    if (answer === undefined || answer.status < (request.method === 'INVITE' ? 300 : 200)) {
      return false;
    }
    const response = this.responseTo(request, answer.status, this.statelessTag(request), answer);
    void this.transport.sendResponse(response, inbound.source).catch(() => undefined);
    return true;
  }

  private receiveRequest(
    request: SipRequest,
    source: Source,
    tx: ServerTransaction | undefined,
  ): void {
    if (this.closed) return;
    const toTag = request.to.tag;
    let dialog: Dialog | undefined;
    if (toTag !== undefined) {
      dialog = this.findDialog(request.callId, toTag, request.from.tag ?? '');
      if (dialog === undefined) {
        // A NOTIFY may create its subscription's dialog before the SUBSCRIBE's
        // 2xx arrives (RFC 6665 §4.1.2.4): the application may claim it.
        if (this.orphanHandler?.(this.incoming(request, source, undefined, tx)) === true) return;
        // §12.2.2: "If the UAS wishes to reject the request because it does not
        // wish to recreate the dialog, it MUST respond ... with a 481".
        if (tx !== undefined) void tx.respond(createResponse(request, 481)).catch(() => undefined);
        return;
      }
      if (!dialog.acceptRemoteSeq(request)) {
        if (tx !== undefined)
          void tx
            .respond(createResponse(request, 500, { reason: 'Out of Order' }))
            .catch(() => undefined);
        return;
      }
    }
    const handler = this.handler;
    if (handler === undefined) {
      if (tx !== undefined) void tx.respond(createResponse(request, 501)).catch(() => undefined);
      return;
    }
    handler(this.incoming(request, source, dialog, tx));
  }

  /** Wraps a received request for the application. */
  private incoming(
    request: SipRequest,
    source: Source,
    dialog: Dialog | undefined,
    tx: ServerTransaction | undefined,
  ): IncomingRequest {
    return {
      message: request,
      source,
      dialog,
      transaction: tx,
      reply: async (status, options = {}) => {
        const stateless =
          options.stateless === true &&
          tx !== undefined &&
          status >= (tx.kind === 'invite' ? 300 : 200) &&
          !this.tags.has(tx.id);
        const tag =
          options.toTag ?? (stateless ? this.statelessTag(request) : this.tagFor(request, tx));
        const response = this.responseTo(request, status, tag, options);
        if (tx === undefined) throw new Error('no transaction to answer (ACK)');
        if (stateless) {
          await tx.respondStateless(response);
          return response;
        }
        await tx.respond(response);
        if (status >= 200) this.tags.delete(tx.id);
        return response;
      },
    };
  }

  /** A response of the application's: Server, then its headers, body and reason. */
  private responseTo(
    request: SipRequest,
    status: number,
    toTag: string,
    options: ReplyOptions | StatelessAnswer,
  ): SipResponse {
    const headers: [string, string][] = [['Server', this.userAgent]];
    for (const h of options.headers ?? []) headers.push([h[0], h[1]]);
    const o = options as ReplyOptions;
    return createResponse(request, status, {
      ...(o.reason !== undefined ? { reason: o.reason } : {}),
      toTag,
      headers,
      ...(o.body !== undefined ? { body: o.body } : {}),
      ...(o.contentType !== undefined ? { contentType: o.contentType } : {}),
    });
  }

  /**
   * The To tag of a stateless response (RFC 3261 §8.2.7: "in a manner that will generate the
   * same tag for the same request consistently"): the request's own, else one derived from
   * what its retransmissions and the ACK of a non-2xx response share — Call-ID, From tag and
   * the top Via's branch (§17.1.1.3: that ACK's Via "MUST be equal to the top Via header field
   * of the original request").
   */
  private statelessTag(request: SipRequest): string {
    return request.to.tag ?? this.derivedTagOf(request);
  }

  private derivedTagOf(request: SipRequest): string {
    let branch = '';
    try {
      branch = request.topVia.branch ?? '';
    } catch {
      // no usable Via: Call-ID and From tag alone
    }
    return derivedTag(this.tagSalt, [request.callId, request.from.tag ?? '', branch]);
  }

  /** The To tag for responses to this request: the request's, or one per transaction. */
  tagFor(request: SipRequest, tx: ServerTransaction | undefined): string {
    const existing = request.to.tag;
    if (existing !== undefined) return existing;
    const key = tx?.id ?? `${request.callId}/${request.cseq.seq}`;
    let tag = this.tags.get(key);
    if (tag === undefined) {
      tag = this.ids.tag();
      this.tags.set(key, tag);
    }
    return tag;
  }

  /**
   * §13.3.1.4: retransmit a 2xx to INVITE "starting at T1 and doubling ... until
   * it reaches T2", until the ACK arrives; after 64*T1 give up (the caller then
   * ends the session with BYE).
   */
  retransmitUntilAck(response: SipResponse, source: Source, onGiveUp: () => void): void {
    const key = `${response.callId}\u0001${response.cseq.seq}\u0001${response.to.tag ?? ''}`;
    if (isReliable(source.protocol)) {
      // Over a reliable transport the 2xx is not retransmitted, but the ACK is
      // still awaited for 64*T1.
      const timer = this.clock.setTimer(64 * this.t1, () => {
        this.pendingAcks.delete(key);
        onGiveUp();
      });
      this.pendingAcks.set(key, { response, source, interval: 0, elapsed: 0, timer, onGiveUp });
      return;
    }
    const tick = (): void => {
      const p = this.pendingAcks.get(key);
      if (p === undefined) return;
      p.elapsed += p.interval;
      if (p.elapsed >= 64 * this.t1) {
        this.pendingAcks.delete(key);
        p.onGiveUp();
        return;
      }
      void this.transport.sendResponse(p.response, p.source).catch(() => undefined);
      p.interval = Math.min(p.interval * 2, this.t2);
      p.timer = this.clock.setTimer(p.interval, tick);
    };
    const pending: PendingAck = {
      response,
      source,
      interval: this.t1,
      elapsed: 0,
      timer: this.clock.setTimer(this.t1, tick),
      onGiveUp,
    };
    this.pendingAcks.set(key, pending);
  }

  private receiveAck(req: InboundRequest): void {
    const ack = req.message;
    // §8.2.7: "A stateless UAS MUST ignore ACK requests": the ACK of a non-2xx response sent
    // with `stateless` finds no transaction; its To tag is the one derived from it.
    const ackTag = ack.to.tag;
    if (ackTag !== undefined && ackTag === this.derivedTagOf(ack)) return;
    const key = `${ack.callId}\u0001${ack.cseq.seq}\u0001${ack.to.tag ?? ''}`;
    const pending = this.pendingAcks.get(key);
    if (pending !== undefined) {
      pending.timer.cancel();
      this.pendingAcks.delete(key);
    }
    const toTag = ack.to.tag;
    const dialog =
      toTag !== undefined ? this.findDialog(ack.callId, toTag, ack.from.tag ?? '') : undefined;
    if (dialog !== undefined && dialog.state === 'early') dialog.state = 'confirmed';
    this.handler?.(this.incoming(ack, req.source, dialog, undefined));
  }

  private cancelListeners = new Map<string, () => void>();

  /** Lets the application learn that an INVITE it is answering was CANCELled (§9.2). */
  onCancelOf(tx: ServerTransaction, listener: () => void): void {
    this.cancelListeners.set(tx.id, listener);
  }

  /** Forgets the CANCEL listener of a transaction that no longer needs it. */
  offCancelOf(tx: ServerTransaction): void {
    this.cancelListeners.delete(tx.id);
  }

  private receiveCancel(tx: ServerTransaction): void {
    const listener = this.cancelListeners.get(tx.id);
    this.cancelListeners.delete(tx.id);
    if (listener !== undefined) listener();
    else {
      // §9.2: the UAS "SHOULD respond to the INVITE with a 487".
      const tag = this.tagFor(tx.request, tx);
      void tx.respond(createResponse(tx.request, 487, { toTag: tag })).catch(() => undefined);
    }
  }

  private receiveStrayResponse(res: InboundResponse): void {
    const r = res.message;
    // A retransmitted 2xx to an INVITE whose transaction is gone: re-ACK it (§13.2.2.4).
    if (r.cseq.method === 'INVITE' && r.status >= 200 && r.status < 300) {
      const key = `${dialogKey({ callId: r.callId, localTag: r.from.tag ?? '', remoteTag: r.to.tag ?? '' })}\u0001${r.cseq.seq}`;
      const known = this.acks.get(key);
      if (known !== undefined)
        void this.transport.sendRequest(known.ack, known.dest).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pendingAcks.values()) p.timer.cancel();
    this.pendingAcks.clear();
    this.transactions.close();
    await this.transport.close();
  }
}

/**
 * A destination for a SIP/SIPS URI with a numeric host (RFC 3263 §4: "If the
 * TARGET was a numeric IP address, the client uses that address"); names need
 * the resolver. maddr (§19.1.1) and the transport parameter are honoured.
 */
export function destinationOf(uri: Uri): Destination {
  if (uri.kind !== 'sip') throw new Error(`cannot route to ${formatUri(uri)}`);
  let transport = 'udp';
  let host = uri.host;
  for (const p of uri.params) {
    const n = p.name.toLowerCase();
    if (n === 'transport' && p.value !== null) transport = p.value.toLowerCase();
    if (n === 'maddr' && p.value !== null) host = p.value;
  }
  let protocol: TransportProtocol =
    transport === 'tcp'
      ? 'tcp'
      : transport === 'tls'
        ? 'tls'
        : transport === 'ws'
          ? 'ws'
          : transport === 'wss'
            ? 'wss'
            : 'udp';
  if (uri.scheme === 'sips') protocol = protocol === 'ws' || protocol === 'wss' ? 'wss' : 'tls';
  const address = host.startsWith('[') ? host.slice(1, -1) : host;
  const port =
    uri.port ??
    (protocol === 'tls' ? 5061 : protocol === 'ws' ? 80 : protocol === 'wss' ? 443 : 5060);
  return { protocol, address, port };
}

/** The Contact URI of a message, when it has one (not `*`). */
export function contactUri(m: SipRequest | SipResponse): Uri | undefined {
  const c = m.get(ContactHeader)?.[0];
  return c === undefined || c === '*' ? undefined : c.uri;
}

/** True for an IPv4 literal or a bracketed (or bare) IPv6 literal. */
export function isIpLiteral(host: string): boolean {
  if (host.startsWith('[')) return true;
  if (host.includes(':')) return true;
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host);
}
