/**
 * The server as event state compositor for its local users' presence (RFC 3903 PUBLISH,
 * RFC 3856 `presence` package, RFC 3863 PIDF).
 *
 * The proxy hands over every PUBLISH whose Request-URI is a local AOR, with the caller it
 * authenticated (RFC 3261 §22.3, 407), and `handlePublish` answers it as RFC 3903 §6 says:
 *
 * 1. §6 step 2: an Event other than `presence`, or none: 489 Bad Event with Allow-Events;
 * 2. §6 step 3, authorization: only the AOR's own user may publish its state: anyone else
 *    (another local user, an unauthenticated caller) gets 403;
 * 3. §6 step 4: SIP-If-Match names a live publication of this AOR (else 412); without
 *    SIP-If-Match the request must carry a body (else 400);
 * 4. §6 step 5: Expires shorter than `minExpires` (0 aside) gets 423 with Min-Expires;
 *    longer than `maxExpires` is shortened; none means `maxExpires`, at most an hour;
 * 5. §6 step 6: a body must be application/pidf+xml (else 415 with Accept) and a PIDF
 *    document `parsePidf` accepts (else 400);
 * 6. §6 step 7: the state is stored (PresenceStore: shared by every worker) under a new
 *    entity-tag, answered 200 with SIP-ETag and Expires. Expires 0 removes it.
 *
 * `compose` gives the current PIDF document of an AOR from all its live publications, and
 * the store's version says when it changed: what a SUBSCRIBE/NOTIFY service sends. How state
 * is composed is the compositor's policy (RFC 3903 does not define it); this one
 * (docs/presence.md):
 *
 * - tuples and `<dm:device>`s by id, the most recently published one winning an id;
 * - the `<dm:person>` element(s) of the most recent publication that has any (RFC 4479
 *   §3.2: a presentity is one person, so persons are not merged across devices);
 * - the root-level `<note>`s of the most recent publication that has any.
 */
import {
  fnv1a32,
  silentLogger,
  uint32ToString,
  type Clock,
  type Logger,
  type RandomSource,
} from '../../base/index.ts';
import { ContentTypeHeader, EventHeader, ExpiresHeader } from '../../sip/index.ts';
import type { IncomingRequest } from '../../stack/index.ts';
import type { LocationStore, PresenceKey, PresenceStore, Publication } from '../../store/index.ts';
import {
  composePidf,
  escapeXmlAttribute,
  parsePidf,
  PIDF_CONTENT_TYPE,
  type PidfElement,
  type PidfIdElement,
  type PidfTuple,
} from './pidf.ts';

/** The one event package this compositor takes (RFC 3856 §4). */
export const PRESENCE_EVENT = 'presence';
export const DEFAULT_PRESENCE_MIN_EXPIRES = 60;
export const DEFAULT_PRESENCE_MAX_EXPIRES = 3600;
/** RFC 3856 §6.4 suggests an hour for presence; used when Expires is absent. */
const DEFAULT_EXPIRES = 3600;

export interface PresenceOptions {
  readonly store: PresenceStore;
  readonly clock: Clock;
  /** Entity-tags are drawn from it (128 bits each: RFC 3903 §6 needs them unguessable). */
  readonly random: RandomSource;
  readonly logger?: Logger;
  /** Shorter non-zero Expires gets 423 (seconds, default 60). */
  readonly minExpires?: number;
  /** Longer Expires is shortened to this (seconds, default 3600). */
  readonly maxExpires?: number;
  /**
   * Registrations: a user with no live publication is `open` while registered and `closed`
   * otherwise (one generated tuple). Without it such a user's document has no tuple.
   */
  readonly location?: LocationStore;
}

/** The composed state of one AOR. */
export interface ComposedPresence {
  readonly aor: string;
  /** RFC 3863 application/pidf+xml: every tuple of every live publication. */
  readonly document: string;
  /** Live publications it was composed from. */
  readonly publications: number;
  /** The store's change counter read before composing (a later change has a higher one). */
  readonly version: number;
  /**
   * Epoch ms when the document may change with no write to the store: the first live
   * publication expiring, or the last binding of a user shown by registration (Infinity: never).
   */
  readonly changesAt: number;
}

export interface Presence {
  /**
   * Answers a PUBLISH to the local AOR `aor`; `publisher` is the AOR the caller
   * authenticated as (undefined: not authenticated as a local user).
   */
  handlePublish(req: IncomingRequest, aor: string, publisher: string | undefined): Promise<void>;
  /** The current PIDF document of `aor`, from all its live publications. */
  compose(aor: string): Promise<ComposedPresence>;
  /**
   * Calls `listener` after this process changed `aor`'s presence state (publication added,
   * modified, removed); other processes' changes show in the store's version. Returns a
   * function that removes the listener.
   */
  onChange(listener: (aor: string) => void): () => void;
}

type Header = readonly [string, string];

export function createPresence(options: PresenceOptions): Presence {
  const { store, clock, random } = options;
  const logger = options.logger ?? silentLogger;
  const minExpires = options.minExpires ?? DEFAULT_PRESENCE_MIN_EXPIRES;
  const maxExpires = options.maxExpires ?? DEFAULT_PRESENCE_MAX_EXPIRES;
  const listeners = new Set<(aor: string) => void>();

  /** 128 random bits as 32 hex digits (an RFC 3261 token). */
  function newEtag(): string {
    const b = new Uint8Array(16);
    random.fill(b);
    let s = '';
    for (const x of b) s += x.toString(16).padStart(2, '0');
    return s;
  }

  function changed(aor: string): void {
    for (const l of listeners) {
      try {
        l(aor);
      } catch (e) {
        logger.warn({ err: e, aor }, 'presence: a change listener failed');
      }
    }
  }

  const answer = async (
    req: IncomingRequest,
    status: number,
    reason?: string,
    headers: Header[] = [],
  ): Promise<void> => {
    await req.reply(status, { ...(reason !== undefined ? { reason } : {}), headers });
  };

  async function handlePublish(
    req: IncomingRequest,
    aor: string,
    publisher: string | undefined,
  ): Promise<void> {
    const m = req.message;
    // RFC 3903 §6 step 2: "If the Event header field is missing or contains an event
    // package which the ESC does not support, the ESC MUST respond to the PUBLISH request
    // with a 489 (Bad Event) response."
    const ev = m.decode(EventHeader);
    if (ev === undefined || !ev.ok || ev.value.type !== PRESENCE_EVENT) {
      await answer(req, 489, 'Bad Event', [['Allow-Events', PRESENCE_EVENT]]);
      return;
    }
    // §6 step 3: "The ESC MUST authorize the EPA to publish ... event state": a user
    // publishes only their own presence.
    if (publisher !== aor) {
      await answer(req, 403, 'Forbidden (only the user may publish their presence)');
      return;
    }
    const key: PresenceKey = { aor, event: PRESENCE_EVENT };
    const ifMatch = m.getRaw('SIP-If-Match')?.trim();
    const hasBody = m.body.length > 0;
    if (ifMatch === undefined && !hasBody) {
      // §6 step 4: "If the request does not contain a SIP-If-Match header field, the ESC
      // MUST ... If the request does not contain a body, the ESC MUST reject it with a 400".
      await answer(req, 400, 'Bad Request (PUBLISH without body or SIP-If-Match)');
      return;
    }

    // §6 step 4: "If the ESC cannot locate an entity-tag matching the one in SIP-If-Match,
    // the ESC MUST reject the request with a 412 (Conditional Request Failed) response."
    // Checked again by the write below: another worker may change it in between.
    if (ifMatch !== undefined && (await store.get(key, ifMatch, clock.wallNow())) === undefined) {
      await answer(req, 412, 'Conditional Request Failed');
      return;
    }

    // §6 step 5: Expires.
    const ex = m.decode(ExpiresHeader);
    if (ex !== undefined && !ex.ok) {
      await answer(req, 400, 'Bad Expires');
      return;
    }
    const requested = ex?.value ?? Math.min(DEFAULT_EXPIRES, maxExpires);
    if (requested !== 0 && requested < minExpires) {
      // "If the requested expiration interval is too short, the ESC MUST reject the
      // request with a 423 (Interval Too Brief) response" carrying Min-Expires.
      await answer(req, 423, 'Interval Too Brief', [['Min-Expires', String(minExpires)]]);
      return;
    }
    const granted = Math.min(requested, maxExpires);
    const now = clock.wallNow();

    if (ifMatch !== undefined && granted === 0) {
      // RFC 3903 §4.5 removal (a body, if any, does not matter).
      if (!(await store.remove(key, ifMatch, now))) {
        await answer(req, 412, 'Conditional Request Failed');
        return;
      }
      logger.info({ aor }, 'presence: publication removed');
      changed(aor);
      await answer(req, 200, undefined, [['Expires', '0']]);
      return;
    }
    if (ifMatch === undefined && granted === 0) {
      await answer(req, 400, 'Bad Request (Expires 0 without SIP-If-Match)');
      return;
    }

    // §6 step 6: the body.
    let body: Uint8Array | undefined;
    if (hasBody) {
      const ct = m.decode(ContentTypeHeader);
      const type = ct?.ok === true ? `${ct.value.type}/${ct.value.subtype}` : undefined;
      if (type !== PIDF_CONTENT_TYPE) {
        // RFC 3261 §21.4.13 / §8.2.3: 415 lists what is accepted.
        await answer(req, 415, 'Unsupported Media Type', [['Accept', PIDF_CONTENT_TYPE]]);
        return;
      }
      const doc = parsePidf(new TextDecoder().decode(m.body));
      if (!doc.ok) {
        await answer(req, 400, `Bad Request (PIDF: ${doc.error})`);
        return;
      }
      body = m.body;
    }
    const expiresAt = now + granted * 1000;
    const etag = newEtag();
    if (ifMatch === undefined) {
      await store.insert({
        ...key,
        etag,
        contentType: PIDF_CONTENT_TYPE,
        body: body!,
        publishedAt: now,
        expiresAt,
      });
      logger.info({ aor, expires: granted }, 'presence: state published');
      changed(aor);
    } else if (body === undefined) {
      if ((await store.refresh(key, ifMatch, etag, expiresAt, now)) === undefined) {
        await answer(req, 412, 'Conditional Request Failed');
        return;
      }
    } else {
      const change = { contentType: PIDF_CONTENT_TYPE, body, expiresAt };
      if ((await store.modify(key, ifMatch, etag, change, now)) === undefined) {
        await answer(req, 412, 'Conditional Request Failed');
        return;
      }
      logger.info({ aor, expires: granted }, 'presence: state modified');
      changed(aor);
    }
    // §6 step 7: "the ESC MUST return a 200 (OK) response ... The response MUST contain
    // an Expires header field ... [and] a SIP-ETag header field".
    await answer(req, 200, undefined, [
      ['SIP-ETag', etag],
      ['Expires', String(granted)],
    ]);
  }

  async function compose(aor: string): Promise<ComposedPresence> {
    const key: PresenceKey = { aor, event: PRESENCE_EVENT };
    const version = await store.version(key);
    const live: Publication[] = await store.list(key, clock.wallNow());
    // RFC 3863 §4.1.2: tuple ids are unique in a document. Two publishers using one id
    // (the same device publishing twice, say) leave the most recent publication's tuple.
    // Devices (RFC 4479 §3.4) are kept by id the same way. `live` is oldest first, so the
    // last publication with persons or notes is the most recent one.
    const byId = new Map<string, PidfTuple>();
    const devices = new Map<string, PidfIdElement>();
    let persons: readonly PidfIdElement[] = [];
    let notes: readonly PidfElement[] = [];
    const put = <T extends PidfIdElement>(m: Map<string, T>, e: T): void => {
      m.delete(e.id);
      m.set(e.id, e);
    };
    for (const p of live) {
      const doc = parsePidf(new TextDecoder().decode(p.body));
      if (!doc.ok) continue; // checked when published; kept only if a later check is stricter
      for (const t of doc.value.tuples) put(byId, t);
      for (const d of doc.value.devices) put(devices, d);
      if (doc.value.persons.length > 0) persons = doc.value.persons;
      if (doc.value.notes.length > 0) notes = doc.value.notes;
    }
    let changesAt = Infinity;
    for (const p of live) changesAt = Math.min(changesAt, p.expiresAt);
    if (live.length === 0 && options.location !== undefined) {
      // RFC 3856 §6.4 leaves composition to the server: without published state, a user
      // is available while some device of theirs is registered (RFC 3863 §4.1.4 basic).
      const bindings = await options.location.lookup(aor, clock.wallNow());
      let last = 0;
      for (const b of bindings) last = Math.max(last, b.expiresAt);
      if (bindings.length > 0) changesAt = last;
      const id = registrationTupleId(aor);
      byId.set(id, { id, xml: registrationTuple(id, aor, bindings.length > 0) });
    }
    return {
      aor,
      document: composePidf(aor, [...byId.values()], {
        notes,
        persons,
        devices: [...devices.values()],
      }),
      publications: live.length,
      version,
      changesAt,
    };
  }

  return {
    handlePublish,
    compose,
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/**
 * The id of the tuple generated from registrations: fixed per AOR, so that a watcher sees one
 * tuple change between open and closed (RFC 3863 §4.1.2: an id "MUST be unique" in the
 * document and an XML ID, so it starts with a letter).
 */
export function registrationTupleId(aor: string): string {
  return `reg-${uint32ToString(fnv1a32(aor), 16).padStart(8, '0')}`;
}

function registrationTuple(id: string, aor: string, open: boolean): string {
  return (
    `  <tuple id="${id}"><status><basic>${open ? 'open' : 'closed'}</basic></status>` +
    `<contact>${escapeXmlAttribute(aor)}</contact></tuple>`
  );
}
