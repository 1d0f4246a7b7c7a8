/**
 * The stateful proxy core (RFC 3261 §16): the stack hands it every request that the
 * registrar does not take, and it answers or forwards each one.
 *
 * - §16.3 validation: URI scheme (416), Max-Forwards (483), loops (482), Proxy-Require (420);
 * - §16.4 route information: our Route values are removed, strict routers' Request-URIs
 *   fixed up;
 * - who may use the proxy: requests from local users (From in a served domain) are
 *   challenged with 407 (RFC 3261 §22.3, RFC 8760 SHA-256 and MD5) and From must be the
 *   authenticated user; anyone may reach a local user; a domain we do not serve is
 *   reached only by authenticated local users and only when relaying is enabled (no
 *   open relay, the default is to refuse);
 * - §16.5 targets from the location service, §16.6 forwarding with parallel forking of
 *   equal-q contacts and sequential forking across q groups, Record-Route (doubled when
 *   the request changes transport or address family, RFC 5658), Path (RFC 3327) and the
 *   registered flow;
 * - §16.7 responses: provisional and 2xx forwarded at once, 6xx and 2xx cancel the other
 *   branches, 3xx recursion, best-response choice with merged challenges, 408 when no
 *   branch answered, Timer C (§16.8);
 * - §16.10 CANCEL to every pending branch; ACKs for 2xx forwarded statelessly by Route;
 * - RFC 3428: a MESSAGE from a local user to a local user goes through `messages`
 *   (MessageHooks), which may answer it itself (413, 202 when it keeps it);
 * - RFC 3903: a PUBLISH to a local AOR is not forked to the user's contacts: the server is
 *   the event state compositor for its users, and `publish` answers it;
 * - RFC 6665 / RFC 3856: a SUBSCRIBE to a local AOR is answered by the server, the users'
 *   presence agent (`subscribe`), and so are the refreshes in the dialogs it created;
 * - RFC 4235: INVITEs to and from local users, the responses sent upstream for them and the
 *   in-dialog requests relayed on our Record-Route are told to `calls` (busy lamps).
 */
import {
  ContactHeader,
  ProxyRequireHeader,
  RouteHeader,
  ViaHeader,
  createResponse,
  formatUri,
  hasParam,
  parseUri,
  unescapeUri,
  uriParams,
  type NameAddr,
  type SipRequest,
  type SipResponse,
  type SipUri,
  type Uri,
} from '../../sip/index.ts';
import { silentLogger, type Clock, type Logger, type TimerHandle } from '../../base/index.ts';
import { carriesCredentials, type DigestServer } from '../../auth/index.ts';
import type { IncomingRequest, Stack, StatelessAnswer } from '../../stack/index.ts';
import type {
  ClientTransaction,
  InviteClientUser,
  ServerTransaction,
} from '../../transaction/index.ts';
import {
  formatHostPort,
  viaFor,
  type Destination,
  type ListenerInfo,
  type Source,
} from '../../transport/index.ts';
import type { DomainStore, LocationStore, UserStore } from '../../store/index.ts';
import { chooseBest, mergeChallenges } from './best-response.ts';
import { hashOfBranch, loopHash, mayCarryOurBranch, proxyBranch } from './loop.ts';
import { reachTarget, setRoutes, strictRouteFixed } from './reach.ts';
import { groupByQ, type Target } from './targets.ts';

/** Methods this server handles or forwards (Allow in answers to OPTIONS and 405). */
export const PROXY_ALLOW: readonly string[] = Object.freeze([
  'INVITE',
  'ACK',
  'CANCEL',
  'BYE',
  'OPTIONS',
  'REGISTER',
  'MESSAGE',
  'SUBSCRIBE',
  'NOTIFY',
  'REFER',
  'INFO',
  'UPDATE',
  'PRACK',
  'PUBLISH',
]);

/** §16.8: "The value of Timer C MUST be greater than 3 minutes." */
export const DEFAULT_TIMER_C = 181_000;

/** Methods whose initial requests create dialogs, and so get our Record-Route (§16.6 step 4). */
const DIALOG_CREATING = new Set(['INVITE', 'SUBSCRIBE', 'REFER', 'NOTIFY']);

export interface ProxyOptions {
  readonly stack: Stack;
  readonly users: UserStore;
  readonly domains: DomainStore;
  readonly location: LocationStore;
  /** The digest server of a realm (the realm is the domain). */
  readonly digest: (realm: string) => DigestServer;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Where REGISTER requests go (the registrar); without it they get 501. */
  readonly register?: (req: IncomingRequest) => unknown;
  /** The registrar's answer to a REGISTER before any transaction (`Registrar.screen`). */
  readonly registerScreen?: (m: SipRequest) => StatelessAnswer | undefined;
  /** Timer C in ms (§16.8); default 181 s. */
  readonly timerC?: number;
  /**
   * Forward requests for domains this server does not serve, for authenticated local
   * users only. Default false: such requests get 403 (no relaying at all).
   */
  readonly relay?: boolean;
  /** Recurse on the Contacts of 3xx responses (§16.7 step 4); default true. */
  readonly recurse?: boolean;
  /** Most branches of one request, forks and 3xx targets together; default 16. */
  readonly maxBranches?: number;
  /** Option tags listed in Supported of the answer to OPTIONS. */
  readonly supported?: readonly string[];
  /**
   * MESSAGE requests (RFC 3428) from authenticated local users to local users who exist
   * go through these (the messaging service: size limit, store-and-forward). Without
   * them such a MESSAGE is forwarded like any other request.
   */
  readonly messages?: MessageHooks;
  /**
   * PUBLISH requests (RFC 3903) to a local AOR go here instead of being forwarded (the
   * presence service, the users' event state compositor). Without it they are forwarded
   * like any other request.
   */
  readonly publish?: PublishHandler;
  /**
   * SUBSCRIBE requests (RFC 6665) to a local AOR, and in-dialog SUBSCRIBEs of the
   * subscriptions it holds, go here instead of being forwarded (the presence agent).
   * Without it they are forwarded like any other request.
   */
  readonly subscribe?: SubscribeHandler;
  /** Told about INVITE dialogs of local users (the dialog event package, RFC 4235). */
  readonly calls?: CallObserver;
}

/**
 * What the proxy tells about the INVITE dialogs of local users it forwards (RFC 4235 §3.7.1:
 * their state follows the INVITE, its responses and the BYE). Calls are synchronous and must
 * not throw: the proxy does not wait for them.
 */
export interface CallObserver {
  /**
   * An initial INVITE about to be forwarded: `callee` is the local AOR of the Request-URI,
   * `caller` the local AOR the caller authenticated as (RFC 3261 §22.3); at least one is set.
   */
  invite(request: SipRequest, parties: { callee?: string; caller?: string }): void;
  /** A response to such an INVITE as it goes upstream (provisional, each 2xx, the final one). */
  response(request: SipRequest, response: SipResponse): void;
  /** An in-dialog request about to be relayed on our Record-Route (BYE, re-INVITE, ...). */
  inDialog(request: SipRequest): void;
}

/** The server's notifier (RFC 6665 §4.2): what the proxy hands SUBSCRIBE requests to. */
export interface SubscribeHandler {
  /**
   * Answers an initial SUBSCRIBE to the local AOR `aor`; `subscriber` is the local AOR the
   * caller authenticated as (RFC 3261 §22.3), undefined for a caller that is not a local user.
   */
  initial(req: IncomingRequest, aor: string, subscriber: string | undefined): Promise<void>;
  /** Answers an in-dialog SUBSCRIBE when it belongs to one of its subscriptions (true). */
  inDialog(req: IncomingRequest): Promise<boolean>;
}

/**
 * Answers a PUBLISH to the local AOR `aor`. `publisher` is the local AOR the caller
 * authenticated as (RFC 3261 §22.3), undefined for a caller that is not a local user.
 */
export type PublishHandler = (
  req: IncomingRequest,
  aor: string,
  publisher: string | undefined,
) => Promise<void>;

/**
 * What the proxy asks about a MESSAGE from an authenticated local user to the local
 * AOR `aor`. Each hook either answers the request itself (with `req.reply`) and returns
 * true, or returns false and the proxy goes on as it would without it.
 */
export interface MessageHooks {
  /** Before the location lookup and forwarding (e.g. 413 for a body over the limit). */
  before(req: IncomingRequest, aor: string): Promise<boolean>;
  /**
   * The AOR has no binding (`best` undefined: the proxy would answer 480), or every
   * branch ended without a 2xx and `best` is the response the proxy would send upstream
   * (RFC 3261 §16.7 step 6).
   */
  undeliverable(req: IncomingRequest, aor: string, best: SipResponse | undefined): Promise<boolean>;
}

export interface ProxyStats {
  /** Requests forwarded statefully (response contexts created). */
  readonly forwarded: number;
  /** Branches (client transactions) started. */
  readonly branches: number;
  /** Response contexts still waiting for a final response. */
  readonly live: number;
  /** Requests answered by the proxy itself with a final response. */
  readonly answered: number;
}

export interface Proxy {
  /** Handles one request (installed as the stack's request handler by createProxy). */
  handle(req: IncomingRequest): Promise<void>;
  stats(): ProxyStats;
  /** Stops the timers of live contexts (the stack closes their transactions). */
  close(): void;
}

/** One forwarded copy of the request (a client transaction), §16.6. */
interface Branch {
  readonly target: Target;
  tx: ClientTransaction | undefined;
  /** Done: a final response (or its local stand-in) was taken into the context. */
  done: boolean;
  provisional: boolean;
  /** A CANCEL was asked for (Timer C, or the context was cancelled). */
  cancelled: boolean;
  timerC: TimerHandle | undefined;
}

/** The response context of one server transaction (§16.2, §16.7). */
interface Context {
  readonly server: ServerTransaction;
  /** The request as received. */
  readonly original: SipRequest;
  /** The request after route preprocessing (§16.4): what each branch copies. */
  readonly request: SipRequest;
  readonly source: Source;
  readonly hash: string;
  readonly recordRoute: boolean;
  /** Foreign targets (3xx) may be tried: the caller may relay. */
  readonly mayRelay: boolean;
  readonly groups: Target[][];
  next: number;
  readonly branches: Branch[];
  readonly responses: SipResponse[];
  /** Responses made here (transport failure, Timer C) rather than received. */
  readonly local: WeakSet<SipResponse>;
  /** Targets tried, by URI text (3xx recursion does not repeat them). */
  readonly tried: Set<string>;
  /** Async branch starts in progress (resolution). */
  starting: number;
  finalSent: boolean;
  cancelled: boolean;
  /** The To tag of the responses made here, chosen on first use. */
  localTag?: string;
  /** A MESSAGE for `options.messages`: the request as received and its local AOR. */
  readonly message?: { readonly req: IncomingRequest; readonly aor: string };
  /** An INVITE told to `options.calls`: its responses are told too. */
  readonly observed?: boolean;
}

/** What `release` drops from a settled context. */
type Released =
  'original' | 'request' | 'groups' | 'responses' | 'tried' | 'local' | 'message' | 'branches';

/** The result of checking who sends a request. */
type Caller =
  | { readonly kind: 'local'; readonly aor: string }
  | { readonly kind: 'external' }
  | { readonly kind: 'answered' };

export function createProxy(options: ProxyOptions): Proxy {
  const { stack, users, domains, location, digest, clock } = options;
  const logger = options.logger ?? silentLogger;
  const timerC = options.timerC ?? DEFAULT_TIMER_C;
  const relay = options.relay ?? false;
  const recurse = options.recurse ?? true;
  const maxBranches = options.maxBranches ?? 16;
  const supported = (options.supported ?? ['path', 'outbound']).join(', ');
  const contexts = new Set<Context>();
  let forwarded = 0;
  let branchCount = 0;
  let answered = 0;
  let uniq = 0;

  // ---- who we are -----------------------------------------------------------

  const bare = (host: string): string =>
    (host.startsWith('[') ? host.slice(1, -1) : host).toLowerCase();

  const defaultPort = (uri: SipUri): number => {
    if (uri.scheme === 'sips') return 5061;
    const t = uri.params.find((p) => p.name.toLowerCase() === 'transport')?.value?.toLowerCase();
    return t === 'tls' ? 5061 : t === 'ws' ? 80 : t === 'wss' ? 443 : 5060;
  };

  /** True when host:port names one of our listeners. */
  function isOurHostPort(host: string, port: number): boolean {
    const h = bare(host);
    return stack.transport.listeners.some(
      (l) =>
        (port === l.advertisedPort || port === l.local.port) &&
        (h === bare(l.advertisedHost) || h === bare(l.local.address)),
    );
  }

  /** A URI that addresses this proxy itself, as a host (no user part). */
  function isOurUri(uri: Uri): boolean {
    return (
      uri.kind === 'sip' &&
      uri.user === undefined &&
      isOurHostPort(uri.host, uri.port ?? defaultPort(uri))
    );
  }

  /**
   * The served domain a URI host stands for: the domain itself, or our own address
   * (then the first served domain), else undefined.
   */
  async function localDomain(uri: SipUri): Promise<string | undefined> {
    const host = uri.host.toLowerCase();
    if (await domains.has(host)) return host;
    if (isOurHostPort(uri.host, uri.port ?? defaultPort(uri))) {
      const list = await domains.list();
      return list[0];
    }
    return undefined;
  }

  const recordRouteFor = (l: ListenerInfo, r2: boolean): string => {
    const transport = l.protocol === 'udp' ? '' : `;transport=${l.protocol}`;
    return `<sip:${formatHostPort(l.advertisedHost, l.advertisedPort)}${transport}${r2 ? ';r2=on' : ''};lr>`;
  };

  const family = (address: string): number => (address.includes(':') ? 6 : 4);

  // ---- answering ------------------------------------------------------------

  const reply = (
    req: IncomingRequest,
    status: number,
    reason?: string,
    headers: [string, string][] = [],
    stateless = false,
  ): void => {
    answered++;
    void req
      .reply(status, { ...(reason !== undefined ? { reason } : {}), headers, stateless })
      .catch(() => undefined);
  };

  function answerOptions(req: IncomingRequest): void {
    reply(req, 200, undefined, [
      ['Allow', PROXY_ALLOW.join(', ')],
      ['Supported', supported],
      ['Accept', 'application/sdp'],
    ]);
  }

  // ---- §16.3 / §16.4 ----------------------------------------------------------

  /** §16.3 item 4: one of our Via values carries this request's own loop hash. */
  function looped(m: SipRequest, hashOf: () => string): boolean {
    if (!mayCarryOurBranch(m)) return false;
    const hash = hashOf();
    let vias;
    try {
      vias = m.via;
    } catch {
      return false;
    }
    for (const v of vias) {
      const h = hashOfBranch(v.branch);
      if (h === undefined) continue;
      if (h === hash && isOurHostPort(v.host, v.port ?? 5060)) return true;
    }
    return false;
  }

  /**
   * §16.4: "If the Request-URI contains a value this proxy previously placed into a
   * Record-Route header field ..., the proxy MUST replace the Request-URI in the request
   * with the last value from the Route header field, and remove that value from the
   * Route header field"; then "If the first value in the Route header field indicates
   * this proxy, the proxy MUST remove that value from the request" — both values of a
   * double Record-Route (RFC 5658 §3, r2=on).
   */
  function preprocessRoutes(m: SipRequest): { request: SipRequest; ours: boolean } | undefined {
    let r = m;
    let ours = false;
    let routes: readonly NameAddr[];
    const decoded = m.decode(RouteHeader);
    if (decoded !== undefined && !decoded.ok) return undefined;
    routes = decoded?.value ?? [];
    const ruri = m.uri;
    if (routes.length > 0 && isOurUri(ruri) && hasParam(uriParams(ruri), 'lr')) {
      const last = routes[routes.length - 1]!;
      r = setRoutes(r.withUri(last.uri), routes.slice(0, -1));
      routes = routes.slice(0, -1);
      ours = true;
    }
    if (routes.length > 0 && isOurUri(routes[0]!.uri)) {
      let drop = 1;
      if (
        hasParam(uriParams(routes[0]!.uri), 'r2') &&
        routes.length > 1 &&
        isOurUri(routes[1]!.uri)
      ) {
        drop = 2;
      }
      r = setRoutes(r, routes.slice(drop));
      ours = true;
    }
    return { request: r, ours };
  }

  /** §16.6 step 3: Max-Forwards decremented, or 70 when absent. */
  function decremented(r: SipRequest, received: SipRequest): SipRequest {
    const mf = received.maxForwards;
    return r.set('Max-Forwards', String(mf === undefined ? 70 : mf - 1));
  }

  // ---- who is calling -----------------------------------------------------------

  /**
   * RFC 3261 §22.3: a proxy challenges with 407. A request whose From is in a served
   * domain must authenticate as that user (so nobody calls as a local user without
   * the password); ACK and CANCEL are never challenged (§22.1).
   */
  async function identify(req: IncomingRequest): Promise<Caller> {
    const m = req.message;
    const from = m.from.uri;
    if (from.kind !== 'sip' || m.method === 'ACK' || m.method === 'CANCEL') {
      return { kind: 'external' };
    }
    const realm = from.host.toLowerCase();
    if (!(await domains.has(realm))) return { kind: 'external' };
    // A request spiralling back to us (we sent it: our socket, our Via on top) was
    // authenticated on its first pass, and its credentials were consumed then.
    if (spiralled(m, req.source) && from.user !== undefined) {
      return { kind: 'local', aor: `sip:${unescapeUri(from.user)}@${realm}` };
    }
    const result = await digest(realm).verify(m, { proxy: true });
    if (!result.ok) {
      // §8.2.7: challenges are answered as a stateless UAS, so that unauthenticated
      // requests (floods of them included, §26.1.5) leave no transaction state.
      reply(
        req,
        result.status,
        undefined,
        result.challenge.map((v) => [result.header, v]),
        true,
      );
      return { kind: 'answered' };
    }
    if (from.user === undefined || unescapeUri(from.user) !== result.username) {
      reply(req, 403, 'Forbidden (From is not the authenticated user)');
      return { kind: 'answered' };
    }
    return { kind: 'local', aor: `sip:${result.username}@${realm}` };
  }

  /** The request came from one of our own sockets with our Via on top. */
  function spiralled(m: SipRequest, src: Source): boolean {
    const fromOurSocket = stack.transport.listeners.some(
      (l) =>
        l.local.port === src.port &&
        (bare(l.local.address) === bare(src.address) ||
          bare(l.advertisedHost) === bare(src.address)),
    );
    if (!fromOurSocket) return false;
    let top;
    try {
      top = m.topVia;
    } catch {
      return false;
    }
    return hashOfBranch(top.branch) !== undefined && isOurHostPort(top.host, top.port ?? 5060);
  }

  /** Proxy-Authorization values for our realm are consumed here, not passed on. */
  function withoutOwnCredentials(m: SipRequest, realm: string): SipRequest {
    const values = m.getRawAll('Proxy-Authorization');
    if (values.length === 0) return m;
    // `realm` is lower case (the From host); names and hosts compare case-insensitively.
    const ours = `realm="${realm}"`;
    const keep = values.filter((v) => !v.toLowerCase().includes(ours));
    let r = m.remove('Proxy-Authorization');
    for (const v of keep) r = r.append('Proxy-Authorization', v);
    return r;
  }

  // ---- the request path --------------------------------------------------------

  async function handle(req: IncomingRequest): Promise<void> {
    const m = req.message;
    try {
      if (m.method === 'ACK') {
        await forwardAck(req);
        return;
      }
      const tx = req.transaction;
      if (tx === undefined) return;
      if (m.method === 'REGISTER' && m.to.tag === undefined) {
        if (options.register !== undefined) {
          await options.register(req);
          return;
        }
        reply(req, 501);
        return;
      }
      await route(req, tx);
    } catch (e) {
      logger.error({ err: e, method: m.method, callId: m.callId }, 'proxy failed');
      if (req.transaction !== undefined) reply(req, 500, 'Server Internal Error');
    }
  }

  async function route(req: IncomingRequest, tx: ServerTransaction): Promise<void> {
    const m = req.message;
    // §16.3 item 2: "If the Request-URI has a URI whose scheme is not understood by the
    // proxy, the proxy SHOULD reject the request with a 416 (Unsupported URI Scheme)".
    let ruri: Uri;
    try {
      ruri = m.uri;
    } catch {
      reply(req, 400, 'Bad Request-URI');
      return;
    }
    if (ruri.kind !== 'sip') {
      reply(req, 416);
      return;
    }
    // §16.3 item 3: "If the request does not contain a Max-Forwards header field, this
    // check is passed. If the request contains a Max-Forwards header field with a field
    // value greater than zero, the check is passed. If the request contains a
    // Max-Forwards header field with a field value of zero (0), the element MUST NOT
    // forward the request. If the request was for OPTIONS, the element MAY act as the
    // final recipient and respond per Section 11. Otherwise, the element MUST return a
    // 483 (Too many hops) response."
    if (m.maxForwards === 0) {
      if (m.method === 'OPTIONS') answerOptions(req);
      else reply(req, 483);
      return;
    }
    // §16.3 item 4.
    // The hash is made only when needed: for a branch of ours in a Via (a loop check) or for
    // forwarding. A request answered here (a challenge) needs neither.
    let hash: string | undefined;
    const hashOf = (): string => (hash ??= loopHash(m));
    if (looped(m, hashOf)) {
      reply(req, 482);
      return;
    }
    // §16.3 item 5: "If the request contains a Proxy-Require header field with one or
    // more option-tags this element does not understand, the element MUST return a 420
    // (Bad Extension) response. The response MUST include an Unsupported header field".
    const pr = m.decode(ProxyRequireHeader);
    if (pr !== undefined) {
      if (!pr.ok) {
        reply(req, 400, 'Bad Proxy-Require');
        return;
      }
      if (pr.value.length > 0) {
        reply(req, 420, undefined, [['Unsupported', pr.value.join(', ')]]);
        return;
      }
    }
    const pre = preprocessRoutes(m);
    if (pre === undefined) {
      reply(req, 400, 'Bad Route');
      return;
    }
    const inDialog = m.to.tag !== undefined;
    const routes = pre.request.get(RouteHeader) ?? [];
    const target = pre.request.uri;

    if (target.kind !== 'sip') {
      reply(req, 416);
      return;
    }
    if (inDialog) {
      // RFC 6665 §4.1.2.2: a refresh or unsubscribe of a subscription the server notifies
      // is for the server itself (its dialog, not one it relays).
      if (m.method === 'SUBSCRIBE' && options.subscribe !== undefined) {
        if (await options.subscribe.inDialog(req)) {
          answered++;
          return;
        }
      }
      // §16.12: an in-dialog request follows the route set; one that did not come
      // through our Record-Route is not ours to relay.
      if (!pre.ours) {
        reply(req, 481, 'Call/Transaction Does Not Exist');
        return;
      }
      options.calls?.inDialog(m);
      startContext(req, tx, pre.request, hashOf(), [[{ uri: formatUri(target), path: [], q: 1 }]], {
        recordRoute: false,
        mayRelay: false,
      });
      return;
    }

    if (routes.length === 0 && target.user === undefined) {
      const mine = isOurUri(target) || (await domains.has(target.host.toLowerCase()));
      if (mine) {
        // A request to the server itself (§11 for OPTIONS).
        if (m.method === 'OPTIONS') answerOptions(req);
        else reply(req, 405, undefined, [['Allow', 'OPTIONS, REGISTER']]);
        return;
      }
    }

    const domain = routes.length === 0 ? await localDomain(target) : undefined;
    const caller = await identify(req);
    if (caller.kind === 'answered') return;
    let request = pre.request;
    if (caller.kind === 'local') {
      request = withoutOwnCredentials(request, caller.aor.slice(caller.aor.indexOf('@') + 1));
    }
    const mayRelay = relay && caller.kind === 'local';
    const recordRoute = DIALOG_CREATING.has(m.method);
    const calls = m.method === 'INVITE' ? options.calls : undefined;

    if (domain === undefined) {
      // A preloaded route elsewhere, or a domain we do not serve: relaying.
      if (!mayRelay) {
        reply(req, 403, 'Relaying Denied');
        return;
      }
      // A local user calling out: their dialog is observed (the callee is not ours).
      if (caller.kind === 'local') calls?.invite(m, { caller: caller.aor });
      startContext(req, tx, request, hashOf(), [[{ uri: formatUri(target), path: [], q: 1 }]], {
        recordRoute,
        mayRelay,
        observed: calls !== undefined && caller.kind === 'local',
      });
      return;
    }

    // §16.5: the target set from the location service.
    const aor = `sip:${unescapeUri(target.user!)}@${domain}`;
    if (m.method === 'PUBLISH' && options.publish !== undefined) {
      // RFC 3903 §6: the server is the compositor of its users' event state; the PUBLISH
      // ends here whoever the user's contacts are.
      answered++;
      await options.publish(req, aor, caller.kind === 'local' ? caller.aor : undefined);
      return;
    }
    if (m.method === 'SUBSCRIBE' && options.subscribe !== undefined) {
      // RFC 3856 §5: the server is its users' presence agent; a SUBSCRIBE to a local user
      // is answered here, never forked to the user's phones.
      answered++;
      await options.subscribe.initial(req, aor, caller.kind === 'local' ? caller.aor : undefined);
      return;
    }
    // RFC 3428 store-and-forward applies to local users' messages for local users.
    const hooks =
      m.method === 'MESSAGE' && caller.kind === 'local' && options.messages !== undefined
        ? options.messages
        : undefined;
    let exists: boolean | undefined;
    if (hooks !== undefined) {
      exists = (await users.get(aor)) !== undefined;
      if (exists && (await hooks.before(req, aor))) {
        answered++;
        return;
      }
    }
    const bindings = await location.lookup(aor, clock.wallNow());
    if (bindings.length === 0) {
      // A local caller learns whether the user exists (404) or is not registered (480);
      // anyone else gets 480 either way, so that user names cannot be probed.
      exists ??= (await users.get(aor)) !== undefined;
      if (hooks !== undefined && exists && (await hooks.undeliverable(req, aor, undefined))) {
        answered++;
        return;
      }
      if (caller.kind === 'local' && !exists) reply(req, 404);
      else reply(req, 480);
      return;
    }
    // RFC 4235: the callee is the AOR of the Request-URI before the lookup.
    calls?.invite(m, { callee: aor, ...(caller.kind === 'local' ? { caller: caller.aor } : {}) });
    startContext(req, tx, request, hashOf(), groupByQ(bindings, maxBranches), {
      recordRoute,
      mayRelay,
      observed: calls !== undefined,
      ...(hooks !== undefined && exists === true ? { message: { req, aor } } : {}),
    });
  }

  // ---- forwarding (§16.6) ---------------------------------------------------------

  function startContext(
    req: IncomingRequest,
    tx: ServerTransaction,
    request: SipRequest,
    hash: string,
    groups: Target[][],
    o: {
      recordRoute: boolean;
      mayRelay: boolean;
      message?: { readonly req: IncomingRequest; readonly aor: string };
      observed?: boolean;
    },
  ): void {
    const ctx: Context = {
      server: tx,
      original: req.message,
      request,
      source: req.source,
      hash,
      recordRoute: o.recordRoute,
      mayRelay: o.mayRelay,
      groups,
      next: 0,
      branches: [],
      responses: [],
      local: new WeakSet(),
      tried: new Set(),
      starting: 0,
      finalSent: false,
      cancelled: false,
      ...(o.message !== undefined ? { message: o.message } : {}),
      ...(o.observed === true ? { observed: true } : {}),
    };
    contexts.add(ctx);
    forwarded++;
    if (tx.kind === 'invite') stack.onCancelOf(tx, () => cancelContext(ctx));
    startNextGroup(ctx);
  }

  function startNextGroup(ctx: Context): void {
    while (ctx.next < ctx.groups.length && !ctx.cancelled) {
      const group = ctx.groups[ctx.next++]!;
      let started = 0;
      for (const target of group) {
        if (ctx.tried.has(target.uri) || ctx.branches.length >= maxBranches) continue;
        ctx.tried.add(target.uri);
        startBranch(ctx, target);
        started++;
      }
      if (started > 0) return;
    }
    checkDone(ctx);
  }

  function startBranch(ctx: Context, target: Target): void {
    const branch: Branch = {
      target,
      tx: undefined,
      done: false,
      provisional: false,
      cancelled: false,
      timerC: undefined,
    };
    ctx.branches.push(branch);
    ctx.starting++;
    void prepare(ctx, target).then(
      (prepared) => {
        ctx.starting--;
        if (ctx.cancelled || ctx.finalSent) {
          branch.done = true;
          checkDone(ctx);
          return;
        }
        if (prepared === undefined || prepared.dests.length === 0) {
          finishBranch(ctx, branch, localResponse(ctx, 480, 'Destination Unreachable'));
          return;
        }
        send(ctx, branch, prepared.request, prepared.dests, 0);
      },
      (e: unknown) => {
        ctx.starting--;
        logger.warn({ err: e, target: target.uri }, 'proxy: target failed');
        finishBranch(ctx, branch, localResponse(ctx, 480, 'Destination Unreachable'));
      },
    );
  }

  /**
   * §16.6 steps 1–7 for one target: copy, new Request-URI, Max-Forwards, Path as
   * Route, strict-route handling; then the destinations (the registered flow first).
   */
  async function prepare(
    ctx: Context,
    target: Target,
  ): Promise<{ request: SipRequest; dests: readonly Destination[] } | undefined> {
    // §16.6 step 3: "If the copy contains a Max-Forwards header field, the proxy MUST
    // decrement its value by one (1). If the copy does not contain a Max-Forwards header
    // field, the proxy MUST add one with a field value, which SHOULD be 70."
    const r = decremented(ctx.request, ctx.original);
    return reachTarget(r, target, (uri) => stack.resolve(uri));
  }

  /** §16.6 steps 4, 8–10: Record-Route, Via, and the client transaction for dests[i]. */
  function send(
    ctx: Context,
    branch: Branch,
    base: SipRequest,
    dests: readonly Destination[],
    i: number,
  ): void {
    const dest = dests[i]!;
    const out = stack.transport.listenerFor(dest);
    if (out === undefined) {
      if (i + 1 < dests.length) send(ctx, branch, base, dests, i + 1);
      else finishBranch(ctx, branch, localResponse(ctx, 480, 'Destination Unreachable'));
      return;
    }
    let r = base;
    if (ctx.recordRoute) {
      // §16.6 step 4: "The URI placed in the Record-Route header field value MUST be a SIP
      // or SIPS URI ... the URI SHOULD include the lr parameter". RFC 5658 §3: a proxy that
      // receives and sends on different transports or address families records both.
      const inbound = ctx.source.listener;
      const double =
        inbound.protocol !== out.protocol ||
        family(inbound.local.address) !== family(out.local.address) ||
        inbound.advertisedHost !== out.advertisedHost;
      if (double) {
        r = r.prepend('Record-Route', recordRouteFor(inbound, true));
        r = r.prepend('Record-Route', recordRouteFor(out, true));
      } else {
        r = r.prepend('Record-Route', recordRouteFor(inbound, false));
      }
    }
    // §16.6 step 8: "The proxy MUST insert a Via header field value into the copy before
    // the existing Via header field values" with a branch unique to this copy.
    r = r.prepend(
      'Via',
      viaFor(out, proxyBranch(ctx.hash, `${(++uniq).toString(36)}${stack.ids.tag()}`)),
    );
    branchCount++;
    const isInvite = r.method === 'INVITE';
    branch.tx = stack.transactions.sendRequest(r, dest, {
      onResponse: (res) => receiveResponse(ctx, branch, res),
      onTimeout: () => finishBranch(ctx, branch, localResponse(ctx, 408)),
      onTransportError: () => {
        // §16.9: a transport error counts as a 503 from that branch; with another
        // destination left (the contact after a dead flow), that one is tried first.
        if (branch.done) return;
        if (!branch.provisional && i + 1 < dests.length && !ctx.cancelled) {
          send(ctx, branch, base, dests, i + 1);
          return;
        }
        finishBranch(ctx, branch, localResponse(ctx, 480, 'Destination Unreachable'));
      },
    });
    if (isInvite) armTimerC(ctx, branch);
  }

  function stopTimerC(branch: Branch): void {
    branch.timerC?.cancel();
    branch.timerC = undefined;
  }

  /** §16.8: Timer C, reset by each provisional response other than 100. */
  function armTimerC(ctx: Context, branch: Branch): void {
    stopTimerC(branch);
    branch.timerC = clock.setTimer(timerC, () => {
      branch.timerC = undefined;
      if (branch.done) return;
      // "If timer C should fire, the proxy MUST either reset the timer with any value it
      // chooses, or terminate the client transaction. If the client transaction has
      // received a provisional response, the proxy MUST generate a CANCEL request
      // matching that transaction. If the client transaction has not received a
      // provisional response, the proxy MUST behave as if the transaction received a 408."
      // A branch already CANCELled whose CANCEL brought nothing within another Timer C
      // is terminated here (the "terminate the client transaction" choice).
      if (branch.provisional && branch.tx?.kind === 'invite' && !branch.cancelled) {
        branch.cancelled = true;
        branch.tx.cancel();
        armTimerC(ctx, branch);
        return;
      }
      finishBranch(ctx, branch, localResponse(ctx, 408));
    });
  }

  // ---- responses (§16.7) ------------------------------------------------------------

  function receiveResponse(ctx: Context, branch: Branch, received: SipResponse): void {
    // §16.7 step 3: "The proxy removes the topmost Via header field value from the response."
    let res = received.removeFirst(ViaHeader);
    if (!res.has('Via')) {
      // A response with only our Via cannot go upstream (§16.7 step 3: it "was
      // addressed to" us); a final one still ends its branch: as its status, or as
      // 502 for a 2xx (a broken answer is no answer).
      if (res.status < 200) return;
      res = localResponse(ctx, res.status < 300 ? 502 : res.status);
    }
    const status = res.status;
    if (status < 200) {
      // §16.7 step 5: 100 is not forwarded; nor is anything of a branch already counted.
      if (status === 100 || branch.done) return;
      branch.provisional = true;
      if (branch.timerC !== undefined) armTimerC(ctx, branch);
      if (!ctx.finalSent) {
        if (ctx.observed === true) options.calls?.response(ctx.original, res);
        void ctx.server.respond(res).catch(() => undefined);
      }
      return;
    }
    if (status < 300) {
      const isInvite = ctx.original.method === 'INVITE';
      branch.done = true;
      stopTimerC(branch);
      // §16.7 step 5: "Any ... 2xx responses to INVITE ... MUST be forwarded", each of
      // them (forks), and retransmissions the client transaction passes up (RFC 6026).
      if (!ctx.finalSent || isInvite) forward2xx(ctx, res);
      else ctx.responses.push(res);
      // §16.7 step 10: with a 2xx "the proxy MUST ... CANCEL all the pending client
      // transactions".
      cancelPending(ctx);
      checkDone(ctx);
      return;
    }
    if (branch.done) return;
    // §16.7 step 4: recursion on the Contacts of a 3xx.
    if (status < 400 && recurse && !ctx.cancelled && !ctx.finalSent) {
      const contacts = (res.get(ContactHeader) ?? []).filter((c) => c !== '*') as NameAddr[];
      const fresh = contacts.map((c) => formatUri(c.uri)).filter((u) => !ctx.tried.has(u));
      if (fresh.length > 0) {
        branch.done = true;
        stopTimerC(branch);
        ctx.starting++;
        void recursionTargets(ctx, fresh).then(
          (targets) => {
            ctx.starting--;
            const kept = fresh.filter((u) => !targets.some((t) => t.uri === u || t.source === u));
            // "If the proxy recurses on all of the contacts in a 3xx response, the proxy
            // SHOULD NOT add the resulting contactless response to the response context."
            if (kept.length > 0 || targets.length === 0) ctx.responses.push(res);
            if (targets.length > 0) {
              ctx.groups.splice(
                ctx.next,
                0,
                targets.map((t) => t.target),
              );
            }
            startNextGroup(ctx);
          },
          () => {
            ctx.starting--;
            ctx.responses.push(res);
            checkDone(ctx);
          },
        );
        return;
      }
    }
    finishBranch(ctx, branch, res);
    // §16.7 step 5: "If a 6xx response is received, it is not immediately forwarded, but
    // the stateful proxy SHOULD cancel all client pending transactions".
    if (status >= 600) {
      cancelPending(ctx);
      checkDone(ctx);
    }
  }

  /** Targets for the Contacts of a 3xx: local AORs through the location service. */
  async function recursionTargets(
    ctx: Context,
    uris: readonly string[],
  ): Promise<{ uri: string; source: string; target: Target }[]> {
    const out: { uri: string; source: string; target: Target }[] = [];
    for (const text of uris) {
      ctx.tried.add(text);
      const parsed = parseUri(text);
      if (!parsed.ok || parsed.value.kind !== 'sip') continue;
      const u = parsed.value;
      const domain = await localDomain(u);
      if (domain !== undefined && u.user !== undefined) {
        const bindings = await location.lookup(
          `sip:${unescapeUri(u.user)}@${domain}`,
          clock.wallNow(),
        );
        for (const g of groupByQ(bindings, maxBranches)) {
          for (const t of g) out.push({ uri: t.uri, source: text, target: t });
        }
      } else if (domain === undefined && ctx.mayRelay) {
        out.push({ uri: text, source: text, target: { uri: text, path: [], q: 1 } });
      }
    }
    return out;
  }

  function forward2xx(ctx: Context, res: SipResponse): void {
    if (ctx.observed === true) options.calls?.response(ctx.original, res);
    if (!ctx.finalSent) {
      ctx.finalSent = true;
      void ctx.server.respond(res).catch(() => undefined);
      return;
    }
    passOnLater2xx(ctx, res);
    settle(ctx);
  }

  /**
   * A 2xx after the final response (another fork, or a retransmission): the server transaction
   * passes it on in Accepted (RFC 6026 §8.7); after a non-2xx final answer it cannot, and the
   * 2xx still "MUST be forwarded" (§16.7 step 10), so it goes out statelessly.
   */
  function passOnLater2xx(to: LaterTarget, res: SipResponse): void {
    const last = to.server.lastResponse;
    if (last !== undefined && last.status >= 200 && last.status < 300) {
      void to.server.respond(res).catch(() => undefined);
    } else {
      void stack.transport.sendResponse(res, to.source).catch(() => undefined);
    }
  }

  /** What every settled branch of this proxy shares (`SettledBranch`). */
  const settledShared: SettledShared = { calls: options.calls, pass: passOnLater2xx };

  /**
   * The TU of an INVITE branch once its context is settled. Such a branch waits out Accepted
   * (RFC 6026 §8.4, 64*T1) or Completed (Timer D) only so that a later 2xx, a retransmission or
   * another fork's, is still forwarded (§16.7 step 5); for that it needs the server transaction,
   * not the context. The context's own callbacks would keep all of it (the requests as received
   * and as forwarded, the responses, the targets) alive for those 32 s, and, promoted to the
   * old generation, cost the garbage collector on every call. The caller's request, for an
   * observed call, is read from the server transaction (which keeps it as octets meanwhile).
   */
  function settledBranchUser(ctx: Context): InviteClientUser {
    return new SettledBranch(settledShared, ctx.server, ctx.source, ctx.observed === true);
  }

  function finishBranch(ctx: Context, branch: Branch, res: SipResponse): void {
    if (branch.done) return;
    branch.done = true;
    stopTimerC(branch);
    ctx.responses.push(res);
    checkDone(ctx);
  }

  function localResponse(ctx: Context, status: number, reason?: string): SipResponse {
    // One To tag for every response this proxy makes in the context (§8.2.6.2).
    ctx.localTag ??= ctx.original.to.tag ?? stack.ids.tag();
    const r = createResponse(ctx.original, status, {
      toTag: ctx.localTag,
      ...(reason !== undefined ? { reason } : {}),
    });
    ctx.local.add(r);
    return r;
  }

  /** After each branch result: next q group, or the best response when all are done. */
  function checkDone(ctx: Context): void {
    if (ctx.finalSent) {
      settle(ctx);
      return;
    }
    if (ctx.starting > 0 || ctx.branches.some((b) => !b.done)) return;
    if (!ctx.cancelled && ctx.next < ctx.groups.length) {
      startNextGroup(ctx);
      return;
    }
    sendBest(ctx);
  }

  /** §16.7 step 6–8: the best response goes upstream. */
  function sendBest(ctx: Context): void {
    ctx.finalSent = true;
    let best = chooseBest(ctx.responses);
    if (best === undefined) {
      // "If no final response has been received, the proxy MUST send a 408".
      best = ctx.cancelled ? localResponse(ctx, 487) : localResponse(ctx, 408);
    } else if (best.status === 503 && !ctx.local.has(best)) {
      // §16.7 step 6: "A proxy which receives a 503 (Service Unavailable) response SHOULD
      // NOT forward it upstream unless it can determine that any subsequent requests it
      // might proxy will also generate a 503"; a 500 says the same without that meaning.
      best = localResponse(ctx, 500, 'Server Internal Error');
    }
    best = mergeChallenges(best, ctx.responses);
    const message = ctx.message;
    if (message !== undefined && options.messages !== undefined) {
      // RFC 3428 §7 leaves a proxy free to keep a MESSAGE it could not deliver: the
      // messaging service may answer 202 instead of the failure.
      const failure = best;
      void options.messages.undeliverable(message.req, message.aor, failure).then(
        (answered) => {
          if (!answered) void ctx.server.respond(failure).catch(() => undefined);
        },
        (e: unknown) => {
          logger.error({ err: e, callId: ctx.original.callId }, 'proxy: undeliverable hook failed');
          void ctx.server.respond(failure).catch(() => undefined);
        },
      );
    } else {
      if (ctx.observed === true) options.calls?.response(ctx.original, best);
      void ctx.server.respond(best).catch(() => undefined);
    }
    settle(ctx);
  }

  /** The context is finished once a final response went up and no branch is live. */
  function settle(ctx: Context): void {
    if (ctx.branches.some((b) => !b.done) || ctx.starting > 0) return;
    contexts.delete(ctx);
    stack.offCancelOf(ctx.server);
    let late: InviteClientUser | undefined;
    for (const b of ctx.branches) {
      stopTimerC(b);
      if (b.tx?.kind === 'invite' && b.tx.state !== 'terminated') {
        late ??= settledBranchUser(ctx);
        b.tx.setUser(late);
      }
    }
    release(ctx);
  }

  /**
   * A settled context lets go of its messages, targets and branches: nothing reads them once
   * the final response went up and no branch is live (a late 2xx goes through SettledBranch,
   * a CANCEL finds `finalSent`, the branches' callbacks were let go by their transactions).
   * Settled contexts stay reachable across young-generation collections for longer than their
   * work (what holds them was not found: not the transactions, whose lifetimes change nothing,
   * nor Timers E and F), and all they held was promoted with them: with this, 10,000 proxied
   * MESSAGE promoted 14.4-14.5 MB instead of 51 MB, and their scavenges took 59-67 ms
   * instead of 110-120 ms (`--trace-gc-nvp`, one worker, 2,000/s).
   */
  function release(ctx: Context): void {
    const c = ctx as {
      -readonly [K in keyof Context]: K extends Released ? Context[K] | undefined : Context[K];
    };
    c.original = undefined;
    c.request = undefined;
    c.groups = undefined;
    c.responses = undefined;
    c.tried = undefined;
    c.local = undefined;
    c.message = undefined;
    c.branches = [];
  }

  /** §16.10: a CANCEL for the server transaction cancels every pending branch. */
  function cancelContext(ctx: Context): void {
    if (ctx.finalSent) return;
    ctx.cancelled = true;
    cancelPending(ctx);
    checkDone(ctx);
  }

  /**
   * CANCEL every pending INVITE branch. A branch that has had no response yet cannot be
   * CANCELled (§9.1: the CANCEL waits for a provisional response, which the transaction
   * still sends if one comes); it is counted as a 487 at once, so that a dead contact
   * does not hold the caller until Timer B.
   */
  function cancelPending(ctx: Context): void {
    for (const b of ctx.branches) {
      if (b.done || b.tx === undefined) continue;
      if (b.tx.kind !== 'invite') continue;
      b.tx.cancel();
      b.cancelled = true;
      if (!b.provisional) {
        b.done = true;
        stopTimerC(b);
        ctx.responses.push(localResponse(ctx, 487));
      }
    }
  }

  // ---- ACK for 2xx -------------------------------------------------------------------

  /**
   * An ACK for a 2xx is its own transaction (§17.1.1.3, §13.2.2.4): it travels on the
   * route set, and a proxy forwards it statelessly by its Route (§16.11). ACKs not
   * routed through us (the ACK of a non-2xx is absorbed by the transaction layer) are
   * dropped.
   */
  async function forwardAck(req: IncomingRequest): Promise<void> {
    const m = req.message;
    if (m.maxForwards === 0) return;
    const pre = preprocessRoutes(m);
    if (pre === undefined || !pre.ours) return;
    const fixed = strictRouteFixed(decremented(pre.request, m));
    let r = fixed.request;
    const dests = await stack.resolve(fixed.next);
    const dest = dests[0];
    if (dest === undefined) return;
    const out = stack.transport.listenerFor(dest);
    if (out === undefined) return;
    r = r.prepend('Via', viaFor(out, proxyBranch(loopHash(m), `${(++uniq).toString(36)}a`)));
    await stack.transactions.sendAck(r, dest).catch(() => undefined);
  }

  /**
   * A new request's challenge, found before any transaction is made for it (`Stack.onScreen`,
   * RFC 3261 §8.2.7): only for a request that `route` would take straight to `identify`, and
   * that `identify` would challenge, each step answered at once (the store's `hasNow`).
   * Anything else (undefined) goes the whole way, in its transaction.
   */
  function screen(m: SipRequest, source: Source): StatelessAnswer | undefined {
    try {
      if (m.method === 'REGISTER') return options.registerScreen?.(m);
      // First what rules out most requests at once: credentials, which only `verify` judges.
      if (domains.hasNow === undefined || carriesCredentials(m)) return undefined;
      // `route`'s checks (§16.3 items 2-5, §16.4): a sip Request-URI with a user in a domain of
      // ours, hops left, no Route, no Proxy-Require, and no Via of ours that could make a loop.
      const target = m.uri;
      if (target.kind !== 'sip' || target.user === undefined) return undefined;
      if (m.maxForwards === 0 || m.has('Route') || m.has('Proxy-Require')) return undefined;
      if (mayCarryOurBranch(m)) return undefined;
      if (domains.hasNow(target.host.toLowerCase()) !== true) return undefined;
      // `identify`: a caller of a domain of ours, not spiralling back to us, no credentials.
      const from = m.from.uri;
      if (from.kind !== 'sip') return undefined;
      const realm = from.host.toLowerCase();
      if (domains.hasNow(realm) !== true || spiralled(m, source)) return undefined;
      const result = digest(realm).challengeMissing(m, { proxy: true });
      if (result === undefined) return undefined;
      answered++;
      return { status: result.status, headers: result.challenge.map((v) => [result.header, v]) };
    } catch {
      // A field the checks could not read: the whole way decides (and answers 400 if need be).
      return undefined;
    }
  }

  stack.onRequest((req) => void handle(req));
  stack.onScreen(screen);
  // In-dialog requests reach no dialog of the stack (the proxy keeps none): it takes them.
  stack.onOrphanRequest((req) => {
    void handle(req);
    return true;
  });

  return {
    handle,
    stats: () => ({ forwarded, branches: branchCount, live: contexts.size, answered }),
    close: () => {
      for (const ctx of contexts) for (const b of ctx.branches) stopTimerC(b);
      contexts.clear();
    },
  };
}

/** Where a 2xx after the final response goes: the caller's server transaction, or its source. */
interface LaterTarget {
  readonly server: ServerTransaction;
  readonly source: Source;
}

/** What the settled branches of one proxy share. */
interface SettledShared {
  readonly calls: ProxyOptions['calls'];
  readonly pass: (to: LaterTarget, res: SipResponse) => void;
}

/**
 * The TU of a settled INVITE branch (`settledBranchUser`): one object whose methods live on the
 * prototype (56 bytes), held by the client transaction for 64*T1 per call. An object literal
 * of three arrow functions cost three closures (168 bytes), their context and the object it
 * captured: about 290 bytes of heap per call kept for those 32 s (heap snapshots, 3,000 calls).
 */
class SettledBranch implements InviteClientUser, LaterTarget {
  constructor(
    private readonly shared: SettledShared,
    readonly server: ServerTransaction,
    readonly source: Source,
    private readonly observed: boolean,
  ) {}

  onResponse(received: SipResponse): void {
    // As receiveResponse does for a branch that is done: only a 2xx that can go upstream.
    if (received.status < 200 || received.status >= 300) return;
    const res = received.removeFirst(ViaHeader);
    if (!res.has('Via')) return;
    if (this.observed) this.shared.calls?.response(this.server.request, res);
    this.shared.pass(this, res);
  }

  onTimeout(): void {}

  onTransportError(): void {}
}
