/**
 * The registrar (RFC 3261 §10.3), with Path (RFC 3327), `+sip.instance` and `reg-id`
 * (RFC 5626) and `q` values. It answers the requests a Stack hands it:
 *
 * - REGISTER: the §10.3 steps, in the RFC's order (see `register`);
 * - OPTIONS addressed to the server itself (no user part): 200 with Allow and Supported;
 * - anything else: 501 Not Implemented (in `serve`, only REGISTER reaches it: the
 *   proxy takes the rest).
 *
 * Bindings live in the LocationStore, users and domains in their stores, so a user or
 * domain added while the server runs takes effect at once.
 */
import type { Clock, Logger } from '../../base/index.ts';
import { silentLogger } from '../../base/index.ts';
import { carriesCredentials, type DigestServer } from '../../auth/index.ts';
import {
  ContactHeader,
  ExpiresHeader,
  RequireHeader,
  STAR,
  formatUri,
  paramValue,
  parseQValue,
  type NameAddr,
  type SipRequest,
} from '../../sip/index.ts';
import type { IncomingRequest, StatelessAnswer } from '../../stack/index.ts';
import { formatHostPort } from '../../transport/index.ts';
import type { Binding, DomainStore, LocationStore, UserStore } from '../../store/index.ts';

/** Option tags this registrar supports (sent in Supported; anything else in Require gets 420). */
export const REGISTRAR_SUPPORTED: readonly string[] = Object.freeze(['path', 'outbound']);
/** Methods answered by this server (Allow). */
export const REGISTRAR_ALLOW: readonly string[] = Object.freeze(['REGISTER', 'OPTIONS']);

export interface RegistrarOptions {
  readonly users: UserStore;
  readonly domains: DomainStore;
  readonly location: LocationStore;
  /** The digest server of a realm (the realm is the domain); the caller may cache them. */
  readonly digest: (realm: string) => DigestServer;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Min-Expires (RFC 3261 §10.3 step 7): shorter non-zero expiries get 423. Default 60. */
  readonly minExpires?: number;
  /** Longer expiries are shortened to this. Default 3600. */
  readonly maxExpires?: number;
  /** When neither the contact's expires nor the Expires header says. Default 3600. */
  readonly defaultExpires?: number;
  /**
   * Called after the 200 to a REGISTER that added or refreshed bindings, with the AOR's
   * bindings as stored (e.g. to deliver messages kept for it, RFC 3428). Not awaited; a
   * failure of it is logged, never seen by the UA.
   */
  readonly onRegistered?: (aor: string, bindings: readonly Binding[]) => unknown;
  /**
   * Called after the 200 to every REGISTER that wrote bindings (added, refreshed or
   * removed some), with the AOR: the presence agent derives a user's state from them.
   * Not awaited; a failure is logged.
   */
  readonly onBindingsChanged?: (aor: string) => unknown;
}

export interface Registrar {
  /** Handles one request; the caller routes REGISTER here (the proxy does, in `serve`). */
  handle(req: IncomingRequest): Promise<void>;
  /**
   * The challenge for a REGISTER without credentials, found at once, before any transaction
   * is made for it (`Stack.onScreen`): what `handle` would answer it. Undefined when only
   * `handle` can tell (credentials present, a Require header, a domain the store cannot
   * confirm at once).
   */
  screen(m: SipRequest): StatelessAnswer | undefined;
}

type Headers = [string, string][];

/** A registration done: the 200's headers, and the bindings when the REGISTER added some. */
interface Registered {
  readonly headers: Headers;
  /** The AOR whose bindings were written. */
  readonly changed?: string;
  readonly aor?: string;
  readonly bindings?: readonly Binding[];
}

/** A rejection: status, and extra headers. */
interface Reject {
  readonly status: number;
  readonly headers?: Headers;
  readonly reason?: string;
  /** Sent as a stateless UAS (a challenge, RFC 3261 §8.2.7): no transaction state is kept. */
  readonly stateless?: boolean;
}

interface ContactChange {
  readonly contact: string;
  readonly expires: number;
  readonly q: number;
  readonly instance: string | undefined;
  readonly regId: number | undefined;
}

export function createRegistrar(options: RegistrarOptions): Registrar {
  const { users, domains, location, digest, clock } = options;
  const logger = options.logger ?? silentLogger;
  const minExpires = options.minExpires ?? 60;
  const maxExpires = options.maxExpires ?? 3600;
  const defaultExpires = options.defaultExpires ?? 3600;
  const supported = REGISTRAR_SUPPORTED.join(', ');

  const reply = (req: IncomingRequest, r: Reject): Promise<unknown> =>
    req.reply(r.status, {
      ...(r.reason !== undefined ? { reason: r.reason } : {}),
      headers: r.headers ?? [],
      stateless: r.stateless === true,
    });

  /** The lower-cased host of a sip/sips Request-URI, or undefined. */
  function uriDomain(m: SipRequest): { domain: string; user: string | undefined } | undefined {
    const u = m.uri;
    if (u.kind !== 'sip') return undefined;
    return { domain: u.host.toLowerCase(), user: u.user };
  }

  async function register(req: IncomingRequest): Promise<Reject | Registered> {
    const m = req.message;
    // §10.3 step 1: "The registrar inspects the Request-URI to determine whether it has
    // access to bindings for the domain identified in the Request-URI. If not, ... the
    // server SHOULD proxy the request" — forwarding another domain's REGISTER would be
    // relaying, so a foreign domain is answered 404 (the domain is not found here).
    const target = uriDomain(m);
    if (target === undefined || !(await domains.has(target.domain))) {
      return { status: 404, reason: 'Domain Not Served' };
    }
    const domain = target.domain;

    // §10.3 step 2: "the registrar MUST process the Require header field values as
    // described for UASs in Section 8.2.2" (420 with Unsupported, §8.2.2.3).
    const require = m.decode(RequireHeader);
    if (require !== undefined) {
      if (!require.ok) return { status: 400, reason: 'Bad Require' };
      const unknown = require.value.filter((t) => !REGISTRAR_SUPPORTED.includes(t.toLowerCase()));
      if (unknown.length > 0) {
        return { status: 420, headers: [['Unsupported', unknown.join(', ')]] };
      }
    }

    // §10.3 step 3: "A registrar SHOULD authenticate the UAC." The realm is the domain.
    // An unknown user and a wrong password get the same challenge (auth/server.ts).
    const server = digest(domain);
    const auth = await server.verify(m, { proxy: false });
    if (!auth.ok) {
      // A challenge is the stateless UAS's case (§8.2.7): unauthenticated REGISTERs, floods
      // of them included, leave no transaction behind.
      return {
        status: auth.status,
        headers: auth.challenge.map((v) => [auth.header, v]),
        stateless: true,
      };
    }

    // §10.3 step 4/5: "The registrar extracts the address-of-record from the To header
    // field ... If the address-of-record is not valid for the domain in the Request-URI,
    // the registrar MUST send a 404"; and step 3: the authenticated user must be
    // authorized to modify the bindings — here only its own AOR. Both are 403, so that
    // nothing is revealed about which AORs exist.
    const to = m.to.uri;
    if (to.kind !== 'sip' || to.user === undefined) return { status: 403 };
    const aor = `sip:${to.user}@${to.host.toLowerCase()}`;
    if (
      to.host.toLowerCase() !== domain ||
      aor !== `sip:${auth.username}@${domain}` ||
      (await users.get(aor)) === undefined
    ) {
      return { status: 403, reason: 'Forbidden (AOR)' };
    }

    const contactsR = m.decode(ContactHeader);
    if (contactsR !== undefined && !contactsR.ok) return { status: 400, reason: 'Bad Contact' };
    const contacts = contactsR?.value ?? [];
    const expiresR = m.decode(ExpiresHeader);
    if (expiresR !== undefined && !expiresR.ok) return { status: 400, reason: 'Bad Expires' };
    const headerExpires = expiresR?.value;
    const now = clock.wallNow();
    const callId = m.callId;
    const cseq = m.cseq.seq;

    // §10.3 step 6: "If the request has additional Contact fields or an expiration time
    // other than zero, the request is invalid, and the server MUST return a 400".
    if (contacts.includes(STAR)) {
      if (contacts.length !== 1 || m.count('Contact') !== 1 || headerExpires !== 0) {
        return { status: 400, reason: 'Invalid Contact *' };
      }
      // §10.3 step 6: "the registrar checks whether the Call-ID agrees with the value
      // stored for each binding. If not, it MUST remove the binding. If it does agree, it
      // MUST remove the binding only if the CSeq in the request is higher" — the store
      // checks and removes in one transaction.
      const r = await location.apply({ aor, nowMs: now, callId, cseq, removeAll: true });
      if (!r.ok) return { status: 500, reason: 'Out of Order' };
      return { headers: okHeaders(r.bindings, now), changed: aor };
    }

    // §10.3 step 7, per contact: the expires parameter, else the Expires header, else
    // the default; shortened to the maximum; below Min-Expires (not 0) → 423.
    const changes: ContactChange[] = [];
    for (const c of contacts as readonly NameAddr[]) {
      const change = contactChange(c, headerExpires);
      if ('status' in change) return change;
      changes.push(change);
    }

    // A query (no Contact, §10.3 step 8 alone) changes nothing.
    if (changes.length === 0) return { headers: okHeaders(await location.lookup(aor, now), now) };

    const path = m.getRawAll('Path').flatMap((v) => splitList(v));
    const received = `${req.source.protocol}:${formatHostPort(req.source.address, req.source.port)}`;
    const userAgent = m.getRaw('User-Agent');
    // "If the binding does exist, the registrar checks the Call-ID value. If the
    // Call-ID value in the existing binding differs from the Call-ID value in the
    // request, the binding MUST be removed if the expiration time is zero and updated
    // otherwise. If they are the same, the registrar compares the CSeq value. If the
    // value is higher than that of the existing binding, it MUST update or remove the
    // binding as above. If not, the update MUST be aborted and the request fails."
    // The store does the check and the writes in one transaction, and returns the
    // bindings as they are afterwards for the 200 (step 8).
    const r = await location.apply({
      aor,
      nowMs: now,
      callId,
      cseq,
      changes: changes.map((c): Binding | string => {
        if (c.expires === 0) return c.contact;
        const b: { -readonly [K in keyof Binding]: Binding[K] } = {
          aor,
          contact: c.contact,
          expiresAt: now + c.expires * 1000,
          q: c.q,
          callId,
          cseq,
          path,
        };
        // Absent stays absent (no key); in the store's order, so both make objects of one shape.
        if (c.instance !== undefined) b.instance = c.instance;
        if (c.regId !== undefined) b.regId = c.regId;
        b.received = received;
        if (userAgent !== undefined) b.userAgent = userAgent;
        return b;
      }),
    });
    if (!r.ok) return { status: 500, reason: 'Out of Order' };
    const headers = okHeaders(r.bindings, now);
    // RFC 3327 §5.3: the registrar returns the stored Path in the 200 when the UA supports it.
    if (path.length > 0) for (const p of path) headers.push(['Path', p]);
    // RFC 5626 §6: a registration with reg-id and +sip.instance is answered with Require: outbound.
    if (changes.some((c) => c.regId !== undefined && c.instance !== undefined && c.expires > 0)) {
      headers.push(['Require', 'outbound']);
    }
    const added = changes.some((c) => c.expires > 0);
    return added && r.bindings.length > 0
      ? { headers, aor, bindings: r.bindings, changed: aor }
      : { headers, changed: aor };
  }

  function contactChange(c: NameAddr, headerExpires: number | undefined): ContactChange | Reject {
    let expires = headerExpires ?? defaultExpires;
    const param = paramValue(c.params, 'expires');
    if (param !== undefined) {
      if (!/^\d{1,10}$/.test(param)) return { status: 400, reason: 'Bad Contact expires' };
      expires = Number(param);
    }
    if (expires > maxExpires) expires = maxExpires;
    if (expires !== 0 && expires < minExpires) {
      // §10.3 step 7: "the registrar MAY reject the registration with a response of 423
      // (Interval Too Brief). This response MUST contain a Min-Expires header field".
      return { status: 423, headers: [['Min-Expires', String(minExpires)]] };
    }
    const qText = paramValue(c.params, 'q');
    const q = qText === undefined ? 1 : parseQValue(qText);
    if (q === undefined) return { status: 400, reason: 'Bad Contact q' };
    const regIdText = paramValue(c.params, 'reg-id');
    let regId: number | undefined;
    if (regIdText !== undefined) {
      if (!/^[1-9]\d{0,9}$/.test(regIdText)) return { status: 400, reason: 'Bad reg-id' };
      regId = Number(regIdText);
    }
    return {
      contact: formatUri(c.uri),
      expires,
      q,
      instance: paramValue(c.params, '+sip.instance'),
      regId,
    };
  }

  // RFC 3261 §20.17: Date carries whole seconds, so one text serves every 200 of a second,
  // formatted (by V8, through the C library) once a second rather than per REGISTER.
  let dateSecond = NaN;
  let dateText = '';
  const dateOf = (now: number): string => {
    const second = Math.floor(now / 1000);
    if (second !== dateSecond) {
      dateSecond = second;
      dateText = new Date(second * 1000).toUTCString();
    }
    return dateText;
  };

  /** §10.3 step 8: every current binding with its remaining expiry, and Date. */
  function okHeaders(bindings: readonly Binding[], now: number): Headers {
    const headers: Headers = [];
    for (const b of bindings) {
      const remaining = Math.max(1, Math.round((b.expiresAt - now) / 1000));
      let v = `<${b.contact}>;expires=${remaining}`;
      if (b.q !== 1) v += `;q=${b.q}`;
      if (b.instance !== undefined) v += `;+sip.instance="${b.instance}"`;
      if (b.regId !== undefined) v += `;reg-id=${b.regId}`;
      headers.push(['Contact', v]);
    }
    headers.push(['Date', dateOf(now)]);
    headers.push(['Supported', supported]);
    return headers;
  }

  /** `onRegistered`, after the 200 went out; its failures are logged only. */
  function registered(aor: string, bindings: readonly Binding[]): void {
    const hook = options.onRegistered;
    if (hook === undefined) return;
    try {
      void Promise.resolve(hook(aor, bindings)).catch((err: unknown) =>
        logger.warn({ err, aor }, 'registrar: onRegistered failed'),
      );
    } catch (err) {
      logger.warn({ err, aor }, 'registrar: onRegistered failed');
    }
  }

  /** `onBindingsChanged`, after the 200; its failures are logged only. */
  function bindingsChanged(aor: string): void {
    const hook = options.onBindingsChanged;
    if (hook === undefined) return;
    try {
      void Promise.resolve(hook(aor)).catch((err: unknown) =>
        logger.warn({ err, aor }, 'registrar: onBindingsChanged failed'),
      );
    } catch (err) {
      logger.warn({ err, aor }, 'registrar: onBindingsChanged failed');
    }
  }

  function screen(m: SipRequest): StatelessAnswer | undefined {
    if (m.method !== 'REGISTER' || carriesCredentials(m)) return undefined;
    // The steps of `register` before its challenge, where they pass at once: §10.3 step 1
    // (a domain of ours), step 2 (no Require to look at), then step 3's challenge.
    let target: { domain: string } | undefined;
    try {
      target = uriDomain(m);
    } catch {
      return undefined; // an unreadable Request-URI: `handle` answers it
    }
    if (target === undefined || domains.hasNow?.(target.domain) !== true) return undefined;
    if (m.has('Require')) return undefined;
    const auth = digest(target.domain).challengeMissing(m, { proxy: false });
    if (auth === undefined) return undefined;
    return { status: auth.status, headers: auth.challenge.map((v) => [auth.header, v]) };
  }

  async function handle(req: IncomingRequest): Promise<void> {
    const m = req.message;
    try {
      switch (m.method) {
        case 'ACK':
          return; // never answered
        case 'REGISTER': {
          const r = await register(req);
          if ('status' in r) {
            await reply(req, r);
            return;
          }
          await req.reply(200, { headers: r.headers });
          if (r.aor !== undefined && r.bindings !== undefined) registered(r.aor, r.bindings);
          if (r.changed !== undefined) bindingsChanged(r.changed);
          return;
        }
        case 'OPTIONS': {
          const target = uriDomain(m);
          if (target !== undefined && target.user === undefined) {
            await req.reply(200, {
              headers: [
                ['Allow', REGISTRAR_ALLOW.join(', ')],
                ['Supported', supported],
                ['Accept', 'application/sdp'],
              ],
            });
            return;
          }
          break;
        }
        default:
          break;
      }
      // No proxy yet: everything else is 501 (RFC 3261 §21.5.2), with Allow.
      await req.reply(501, { headers: [['Allow', REGISTRAR_ALLOW.join(', ')]] });
    } catch (e) {
      logger.error({ err: e, method: m.method, callId: m.callId }, 'registrar failed');
      try {
        await req.reply(500, { reason: 'Server Internal Error' });
      } catch {
        // the transaction may be gone; nothing more to do
      }
    }
  }

  return { handle, screen };
}

/** Splits a header value on top-level commas (outside <> and quotes). */
function splitList(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '<') depth++;
    else if (ch === '>') depth--;
    else if (ch === ',' && depth === 0) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = value.slice(start).trim();
  if (last !== '') out.push(last);
  return out;
}
