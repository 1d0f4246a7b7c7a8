/**
 * The server as presence agent (RFC 3856) and watcher information notifier (RFC 3857): it
 * answers SUBSCRIBE to a local user's `presence` or `presence.winfo` and sends the NOTIFYs
 * of each subscription (RFC 6665 §4.2, the notifier side).
 *
 * - **Initial SUBSCRIBE** (§4.2.1.1), handed over by the proxy with the caller it
 *   authenticated (407): 489 with Allow-Events for another package; 403 for someone else's
 *   `presence.winfo`; 404 for no such user; 423 with Min-Expires; 406 when Accept names none
 *   of our formats; the user's policy (policy.ts): `block` 403, `confirm` a pending
 *   subscription, `allow` an active one. Answered 200 with Expires and Contact, pending or
 *   not (RFC 6665 §4.2.1.1; the 202 of RFC 3265 is no longer used), then at once a NOTIFY
 *   with the current state (§4.2.1.2). Expires 0 is a fetch: one NOTIFY, terminated.
 * - **Refresh and unsubscribe** (§4.2.1.2, §4.2.1.4): an in-dialog SUBSCRIBE sets a new
 *   expiry and is answered 200 and a NOTIFY with the full state; Expires 0 ends the
 *   subscription with a NOTIFY `terminated;reason=timeout`.
 * - **NOTIFY on change** (§4.2.2): a subscription is notified when its resource's change
 *   counter in the store moves (a PUBLISH, a registration, a rule, a watcher of a winfo
 *   subscriber) or when its state may have changed by itself (`recheckAt`: a publication or
 *   the last binding expiring), and ends with `terminated;reason=timeout` at its expiry,
 *   `noresource` when the user is removed, `rejected` when the user blocks the watcher. A
 *   state equal to the last one sent is not sent again.
 * - **Several processes**: every subscription lives in the store. The process that owns the
 *   subscription's Call-ID (`owns`: the same hash steers the SUBSCRIBE refreshes and the
 *   NOTIFY responses to it) sends its NOTIFYs, after a change made here at once, after a
 *   change made elsewhere at the next poll (`pollIntervalMs`, one query). Changes within
 *   one tick are sent as one NOTIFY; one NOTIFY per dialog is outstanding at a time
 *   (§4.2.2: "Notifiers MUST NOT send a new NOTIFY request to the same dialog unless they
 *   have received a final response from the previous one").
 * - A NOTIFY answered with an error, or not answered (Timer F: 408), ends the subscription
 *   (§4.2.2: 481 and 408 "MUST" remove it; other failures may, and here do).
 */
import {
  hash64,
  silentLogger,
  uint32ToString,
  type Clock,
  type Logger,
  type TimerHandle,
} from '../../base/index.ts';
import {
  AcceptHeader,
  ContactHeader,
  EventHeader,
  ExpiresHeader,
  formatUri,
  parseNameAddr,
  parseUri,
  unescapeUri,
  type MediaRange,
  type SipRequest,
  type SipResponse,
  type Uri,
} from '../../sip/index.ts';
import { Dialog, type IncomingRequest, type Stack } from '../../stack/index.ts';
import { formatHostPort, type Destination } from '../../transport/index.ts';
import type {
  DialogStateStore,
  PresenceRuleStore,
  PresenceStore,
  StoredSubscription,
  SubscriptionChange,
  SubscriptionDialogId,
  SubscriptionStore,
  UserStore,
} from '../../store/index.ts';
import { parseFlow } from '../proxy/index.ts';
import { composeDialogInfo, DIALOG_EVENT, DIALOG_INFO_CONTENT_TYPE } from './dialog-info.ts';
import { PIDF_CONTENT_TYPE } from './pidf.ts';
import { decideWatcher, type PresencePolicyDefaults } from './policy.ts';
import { PRESENCE_EVENT, type ComposedPresence, type Presence } from './presence.ts';
import { composeWatcherinfo, WATCHERINFO_CONTENT_TYPE, type WatcherEntry } from './winfo.ts';

/** RFC 3857 §3: the watcher information template package applied to presence. */
export const WINFO_EVENT = 'presence.winfo';
/** Allow-Events of a 489 (RFC 6665 §8.2.2). */
export const NOTIFIER_EVENTS: readonly string[] = Object.freeze([PRESENCE_EVENT, WINFO_EVENT]);

export const DEFAULT_SUBSCRIBE_MIN_EXPIRES = 60;
export const DEFAULT_SUBSCRIBE_MAX_EXPIRES = 3600;
/** RFC 3856 §6.4: "The default value of the Expires header field is 3600 seconds". */
export const DEFAULT_SUBSCRIBE_EXPIRES = 3600;
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_WATCHER = 100;
export const DEFAULT_MAX_WATCHERS_PER_USER = 100;
export const DEFAULT_POLL_INTERVAL_MS = 1000;
/** A terminated subscription stays this long, for winfo documents to show it. */
const TERMINATED_KEPT_MS = 60_000;
/** `recheckAt` for "never" (SQLite INTEGER has no Infinity). */
const NEVER = Number.MAX_SAFE_INTEGER;
/** When a NOTIFY could not be built or sent, a poll tries again after this, ms. */
const RETRY_MS = 5000;
/** How often a poll also deletes terminated rows, in polls. */
const PURGE_EVERY = 30;

export interface NotifierOptions {
  readonly stack: Stack;
  /** The composed presence of a user (PUBLISH state, else registrations) and its changes. */
  readonly presence: Presence;
  readonly subscriptions: SubscriptionStore;
  readonly rules: PresenceRuleStore;
  /** Change counters (`version`, `touch`). */
  readonly versions: PresenceStore;
  readonly users: UserStore;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Seconds; a shorter non-zero Expires gets 423 with Min-Expires (default 60). */
  readonly minExpires?: number;
  /** Seconds; a longer Expires is shortened to this (default 3600). */
  readonly maxExpires?: number;
  /** Seconds, when SUBSCRIBE has no Expires (default 3600, at most maxExpires). */
  readonly defaultExpires?: number;
  /** Most live subscriptions one watcher holds (default 100). */
  readonly maxPerWatcher?: number;
  /** Most live subscriptions to one user's presence (default 100). */
  readonly maxPerUser?: number;
  readonly policy?: PresencePolicyDefaults;
  /** Between looks at the store for changes made by other processes, ms (default 1000). */
  readonly pollIntervalMs?: number;
  /** Whether this process sends the NOTIFYs of a Call-ID (workers); default: all. */
  readonly owns?: (callId: string) => boolean;
  /**
   * Users' call states (RFC 4235): with it the `dialog` package is served too, to the
   * watchers the presence policy allows.
   */
  readonly dialogs?: DialogStateStore;
}

export interface Notifier {
  /**
   * Answers an initial SUBSCRIBE to the local AOR `aor`; `subscriber` is the local AOR the
   * caller authenticated as (undefined: not a local user).
   */
  handleSubscribe(req: IncomingRequest, aor: string, subscriber: string | undefined): Promise<void>;
  /** Answers an in-dialog SUBSCRIBE of one of our subscriptions; false when it is none. */
  handleInDialog(req: IncomingRequest): Promise<boolean>;
  /** The user's bindings changed (a REGISTER): their derived presence may have. */
  bindingsChanged(aor: string): Promise<void>;
  /** A change counter was bumped in this process (a call's state): looks soon. */
  changed(): void;
  /** Starts polling the store for changes (every `pollIntervalMs`). */
  start(): void;
  /** Starts the NOTIFYs due now; resolves once the store was read (not when they are answered). */
  tick(): Promise<void>;
  /** Stops polling; NOTIFYs in flight end with the stack. */
  close(): Promise<void>;
}

type Header = readonly [string, string];

/** Compositions made during one tick, by AOR. */
type ComposeCache = Map<string, Promise<ComposedPresence>>;

/** What one NOTIFY says (RFC 6665 §4.1.3 Subscription-State and the body). */
interface NotifyState {
  readonly status: 'active' | 'pending' | 'terminated';
  readonly reason?: string;
  readonly body?: string;
  /** The counter value this state reflects. */
  readonly version: number;
  readonly recheckAt: number;
}

const dialogKeyOf = (s: SubscriptionDialogId): string =>
  `${s.callId}\u0000${s.localTag}\u0000${s.remoteTag}`;

/** True when `range` (an Accept element) admits `type/subtype`. */
function admits(range: MediaRange, type: string): boolean {
  if (range.q === 0) return false;
  const [t, sub] = type.split('/') as [string, string];
  return (
    (range.type === '*' || range.type === t) && (range.subtype === '*' || range.subtype === sub)
  );
}

/** A small stable digest of what a NOTIFY said (not security relevant). */
function digest(s: string): string {
  const [h1, h2] = hash64(s);
  return `${uint32ToString(h1, 16)}${uint32ToString(h2, 16)}:${s.length}`;
}

export function createNotifier(options: NotifierOptions): Notifier {
  const { stack, presence, subscriptions, rules, versions, users, clock } = options;
  const logger = options.logger ?? silentLogger;
  const minExpires = options.minExpires ?? DEFAULT_SUBSCRIBE_MIN_EXPIRES;
  const maxExpires = options.maxExpires ?? DEFAULT_SUBSCRIBE_MAX_EXPIRES;
  const defaultExpires = Math.min(options.defaultExpires ?? DEFAULT_SUBSCRIBE_EXPIRES, maxExpires);
  const limits = {
    perWatcher: options.maxPerWatcher ?? DEFAULT_MAX_SUBSCRIPTIONS_PER_WATCHER,
    perResource: options.maxPerUser ?? DEFAULT_MAX_WATCHERS_PER_USER,
  };
  const policy: PresencePolicyDefaults = options.policy ?? {
    sameDomain: 'allow',
    otherDomains: 'confirm',
  };
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  const owns = options.owns ?? (() => true);
  const dialogs = options.dialogs;
  const events = dialogs !== undefined ? [...NOTIFIER_EVENTS, DIALOG_EVENT] : NOTIFIER_EVENTS;
  /** Packages whose watchers the user's presence rules authorize (RFC 4235 §3.6 like RFC 3856 §5.1). */
  const byPolicy = (event: string): boolean => event === PRESENCE_EVENT || event === DIALOG_EVENT;
  /**
   * Dialogs with a NOTIFY outstanding, whether another is wanted after it, and whether that
   * one must go even with the state unchanged (a refresh's, RFC 6665 §4.2.1.2).
   */
  const inFlight = new Map<string, { again: boolean; force: boolean }>();
  let pollTimer: TimerHandle | undefined;
  let soonTimer: TimerHandle | undefined;
  let running: Promise<void> | undefined;
  let rerun = false;
  let polls = 0;
  let stopped = false;
  /** The store's change sequence value covered by the last poll. */
  let seenSeq = 0;

  // ---- answering -------------------------------------------------------------

  const answer = (
    req: IncomingRequest,
    status: number,
    reason?: string,
    headers: Header[] = [],
    toTag?: string,
  ): Promise<unknown> =>
    req
      .reply(status, {
        ...(reason !== undefined ? { reason } : {}),
        headers,
        ...(toTag !== undefined ? { toTag } : {}),
      })
      .catch(() => undefined);

  /** Our Contact for the dialog: the listener the SUBSCRIBE came in on. */
  function ourContact(req: IncomingRequest): string {
    const s = req.source;
    return stack.contactFor({ protocol: s.protocol, address: s.address, port: s.port });
  }

  /** The flow a request came on, as stored (`tcp:192.0.2.1:5060`). */
  const flowOf = (req: IncomingRequest): string =>
    `${req.source.protocol}:${formatHostPort(req.source.address, req.source.port)}`;

  /**
   * RFC 6665 §4.2.1.1 / RFC 3261 §8.2.3: the body type to send, from Accept (absent: the
   * package's default, RFC 3856 §6.6 PIDF, RFC 3857 §5.4 watcherinfo); undefined: 406.
   */
  function negotiate(m: SipRequest, type: string): string | undefined | 'bad' {
    const accept = m.decode(AcceptHeader);
    if (accept === undefined) return type;
    if (!accept.ok) return 'bad';
    return accept.value.some((r) => admits(r, type)) ? type : undefined;
  }

  /** Expires of a SUBSCRIBE as granted, or the rejection. */
  function expiresOf(m: SipRequest): number | { status: number; headers?: Header[] } {
    const ex = m.decode(ExpiresHeader);
    if (ex !== undefined && !ex.ok) return { status: 400 };
    const requested = ex?.value ?? defaultExpires;
    if (requested !== 0 && requested < minExpires) {
      // RFC 6665 §4.2.1.1: "If the notifier ... determines that the expiration interval is
      // too short, it MUST return a 423 (Interval Too Brief) response", with Min-Expires.
      return { status: 423, headers: [['Min-Expires', String(minExpires)]] };
    }
    // §4.2.1.1: the notifier "MAY shorten" the interval; the 200's Expires says what it is.
    return Math.min(requested, maxExpires);
  }

  async function handleSubscribe(
    req: IncomingRequest,
    aor: string,
    subscriber: string | undefined,
  ): Promise<void> {
    const m = req.message;
    // RFC 6665 §4.2.1.1 / §8.2.2: "If the notifier does not support the event package ...
    // it responds with 489 (Bad Event)", listing the packages it has in Allow-Events.
    const ev = m.decode(EventHeader);
    const event = ev?.ok === true ? ev.value.type : undefined;
    const eventId = ev?.ok === true ? ev.value.id : undefined;
    if (event === undefined || !events.includes(event)) {
      await answer(req, 489, 'Bad Event', [['Allow-Events', events.join(', ')]]);
      return;
    }
    const from = m.from.uri;
    const watcher =
      subscriber ??
      (from.kind === 'sip'
        ? `sip:${from.user !== undefined ? `${unescapeUri(from.user)}@` : ''}${from.host.toLowerCase()}`
        : formatUri(from));
    // RFC 3857 §5.1: winfo of a resource is for its owner ("only the presentity itself"
    // may see who watches it, by default); that takes an authenticated local user.
    if (event === WINFO_EVENT && subscriber !== aor) {
      await answer(req, 403, 'Forbidden (only the user may watch their watchers)');
      return;
    }
    if ((await users.get(aor)) === undefined) {
      // As the proxy does: a local user learns that nobody has this name (404), anyone else
      // gets 480 either way, so that user names cannot be probed.
      if (subscriber !== undefined) await answer(req, 404, 'Not Found');
      else await answer(req, 480, 'Temporarily Unavailable');
      return;
    }
    const granted = expiresOf(m);
    if (typeof granted !== 'number') {
      await answer(req, granted.status, undefined, granted.headers);
      return;
    }
    // RFC 4235 §3.5: dialog NOTIFYs carry application/dialog-info+xml.
    const type =
      event === PRESENCE_EVENT
        ? PIDF_CONTENT_TYPE
        : event === DIALOG_EVENT
          ? DIALOG_INFO_CONTENT_TYPE
          : WATCHERINFO_CONTENT_TYPE;
    const contentType = negotiate(m, type);
    if (contentType === 'bad') {
      await answer(req, 400, 'Bad Accept');
      return;
    }
    if (contentType === undefined) {
      // RFC 3261 §21.4.7 406 with Accept naming what we can send (§8.2.3 for requests).
      await answer(req, 406, 'Not Acceptable', [['Accept', type]]);
      return;
    }
    const contact = m.decode(ContactHeader);
    if (
      contact === undefined ||
      !contact.ok ||
      contact.value.length !== 1 ||
      contact.value[0] === '*'
    ) {
      // RFC 6665 §3.1.1: SUBSCRIBE creates a dialog, and "MUST contain a Contact header".
      await answer(req, 400, 'Bad Request (one Contact URI needed)');
      return;
    }
    let status: 'active' | 'pending' = 'active';
    if (byPolicy(event)) {
      const rule = (await rules.get(aor, watcher))?.action;
      const decision = decideWatcher(aor, watcher, rule, policy);
      if (decision === 'block') {
        // RFC 3856 §5.1 / RFC 6665 §4.2.1.1: an unauthorized subscriber gets 403.
        await answer(req, 403, 'Forbidden');
        return;
      }
      if (decision === 'confirm') status = 'pending';
    }
    const localTag = stack.ids.tag();
    const dialog = Dialog.fromUasRequest(m, localTag, 'confirmed');
    if (dialog === undefined) {
      await answer(req, 400, 'Bad Request (From tag and Contact needed)');
      return;
    }
    const now = clock.wallNow();
    const sub: StoredSubscription = {
      callId: m.callId,
      localTag,
      remoteTag: dialog.id.remoteTag,
      aor,
      event,
      ...(eventId !== undefined ? { eventId } : {}),
      watcher,
      ...(m.from.displayName !== undefined ? { watcherName: m.from.displayName } : {}),
      localUri: dialog.localUri,
      remoteUri: dialog.remoteUri,
      remoteTarget: formatUri(dialog.remoteTarget),
      routeSet: dialog.routeSet,
      flow: flowOf(req),
      contentType,
      status,
      localSeq: 0,
      remoteSeq: m.cseq.seq,
      createdAt: now,
      expiresAt: now + granted * 1000,
      notifiedVersion: -1,
      notifiedHash: '',
      notifyCount: 0,
      // Looked at again by a poll should the first NOTIFY below never happen (a crash).
      recheckAt: now + RETRY_MS,
    };
    const created = await subscriptions.create(sub, limits, now);
    if (!created.ok) {
      logger.warn({ aor, watcher, limit: created.reason }, 'presence: subscription limit reached');
      await answer(req, 403, 'Forbidden (too many subscriptions)', [], localTag);
      return;
    }
    logger.info({ aor, watcher, event, status, expires: granted }, 'presence: subscribed');
    // RFC 6665 §4.2.1.1: the 200 "MUST contain an Expires header field"; §4.1.2.2 / RFC 3261
    // §12.1.1: a dialog-creating 2xx carries our Contact.
    await answer(
      req,
      200,
      undefined,
      [
        ['Expires', String(granted)],
        ['Contact', ourContact(req)],
      ],
      localTag,
    );
    // §4.2.1.2: "Upon successfully accepting or refreshing a subscription, notifiers MUST
    // send a NOTIFY request immediately". A fetch (Expires 0) gets that one, terminated.
    void notify(sub, true);
    if (event === PRESENCE_EVENT) soon(); // the user's winfo watchers
  }

  async function handleInDialog(req: IncomingRequest): Promise<boolean> {
    const m = req.message;
    const id: SubscriptionDialogId = {
      callId: m.callId,
      localTag: m.to.tag ?? '',
      remoteTag: m.from.tag ?? '',
    };
    const sub = await subscriptions.get(id);
    if (sub === undefined || sub.status === 'terminated') return false;
    // RFC 3261 §12.2.2: a lower CSeq than the last one is out of order (500).
    if (m.cseq.seq <= sub.remoteSeq) {
      await answer(req, 500, 'Out of Order');
      return true;
    }
    // RFC 6665 §4.1.2.2: a refresh is for the subscription's own event package (and id,
    // §8.2.1: "the same subscription" has the same Event type and id).
    const ev = m.decode(EventHeader);
    if (ev === undefined || !ev.ok || ev.value.type !== sub.event || ev.value.id !== sub.eventId) {
      await answer(req, 489, 'Bad Event', [['Allow-Events', sub.event]]);
      return true;
    }
    const granted = expiresOf(m);
    if (typeof granted !== 'number') {
      await answer(req, granted.status, undefined, granted.headers);
      return true;
    }
    const now = clock.wallNow();
    // §4.1.2.2: the refresh's Contact replaces the remote target (RFC 3261 §12.2.2).
    const contact = m.decode(ContactHeader);
    const first = contact?.ok === true ? contact.value[0] : undefined;
    const change: SubscriptionChange = {
      remoteSeq: m.cseq.seq,
      expiresAt: now + granted * 1000,
      flow: flowOf(req),
      ...(first !== undefined && first !== '*' ? { remoteTarget: formatUri(first.uri) } : {}),
    };
    if (!(await subscriptions.update(id, change))) return false;
    await answer(req, 200, undefined, [
      ['Expires', String(granted)],
      ['Contact', ourContact(req)],
    ]);
    const fields = { aor: sub.aor, watcher: sub.watcher, event: sub.event, expires: granted };
    if (granted === 0) logger.info(fields, 'presence: unsubscribed');
    else logger.debug(fields, 'presence: subscription refreshed');
    const updated = await subscriptions.get(id);
    // §4.2.1.2 (refresh) and §4.2.1.4 (unsubscribe: Expires 0, a final NOTIFY "terminated").
    if (updated !== undefined) void notify(updated, true);
    return true;
  }

  // ---- notifying -------------------------------------------------------------------

  /**
   * `aor`'s composed presence as of counter value `version` or later: from `cache` when it
   * holds one that recent (composed for another watcher in the same tick), else composed now.
   */
  async function composeFor(
    aor: string,
    version: number,
    cache: ComposeCache | undefined,
  ): Promise<ComposedPresence> {
    const cached = cache?.get(aor);
    if (cached !== undefined) {
      const c = await cached;
      if (c.version >= version) return c;
    }
    const fresh = presence.compose(aor);
    cache?.set(aor, fresh);
    return fresh;
  }

  /** The state a NOTIFY of `sub` carries now. */
  async function stateOf(
    sub: StoredSubscription,
    now: number,
    composed: ComposeCache | undefined,
  ): Promise<NotifyState> {
    // The counter is read before anything it covers (the user, the rules, the state): a
    // change committed meanwhile leaves the subscription behind, and it is looked at again.
    const version = await versions.version({ aor: sub.aor, event: sub.event });
    if ((await users.get(sub.aor)) === undefined) {
      // RFC 6665 §4.1.3 noresource: "the resource state which was being monitored no
      // longer exists".
      return { status: 'terminated', reason: 'noresource', version, recheckAt: NEVER };
    }
    let status: 'active' | 'pending' = sub.status === 'terminated' ? 'active' : sub.status;
    if (byPolicy(sub.event)) {
      const rule = (await rules.get(sub.aor, sub.watcher))?.action;
      const decision = decideWatcher(sub.aor, sub.watcher, rule, policy);
      if (decision === 'block') {
        // §4.1.3 rejected: "The subscription has been terminated due to change in
        // authorization policy".
        return { status: 'terminated', reason: 'rejected', version, recheckAt: NEVER };
      }
      status = decision === 'confirm' ? 'pending' : 'active';
    }
    const expired = sub.expiresAt <= now;
    if (status === 'pending') {
      // RFC 3856 §6.6.1 / RFC 6665 §4.2.2: a pending subscription learns nothing of the
      // state: its NOTIFYs carry no body.
      return expired
        ? { status: 'terminated', reason: 'timeout', version, recheckAt: NEVER }
        : { status, version, recheckAt: NEVER };
    }
    let body: string;
    let recheckAt = NEVER;
    if (sub.event === PRESENCE_EVENT) {
      const doc = await composeFor(sub.aor, version, composed);
      body = doc.document;
      if (Number.isFinite(doc.changesAt)) recheckAt = Math.min(NEVER, doc.changesAt);
    } else if (sub.event === DIALOG_EVENT && dialogs !== undefined) {
      // RFC 4235 §4.1: the full state, version counting this subscription's documents.
      const list = await dialogs.list(sub.aor, now);
      body = composeDialogInfo(sub.aor, sub.notifyCount, list);
      // A call whose end was never stored (its worker died) leaves at its row's expiry.
      for (const d of list) {
        if (d.state !== 'terminated') recheckAt = Math.min(recheckAt, d.expiresAt);
      }
    } else {
      const list = await subscriptions.listFor(sub.aor, PRESENCE_EVENT);
      const watchers: WatcherEntry[] = list.map((w) => ({
        id: digest(dialogKeyOf(w)).replace(/[^0-9a-z]/g, ''),
        uri: w.watcher,
        ...(w.watcherName !== undefined ? { displayName: w.watcherName } : {}),
        status: w.status,
        event:
          w.status === 'terminated'
            ? (w.reason ?? 'timeout')
            : w.status === 'active' && w.reason === 'approved'
              ? 'approved'
              : 'subscribe',
        durationSubscribed: (now - w.createdAt) / 1000,
        ...(w.status !== 'terminated' ? { expiration: (w.expiresAt - now) / 1000 } : {}),
      }));
      body = composeWatcherinfo(sub.aor, PRESENCE_EVENT, sub.notifyCount, watchers);
    }
    // §4.2.2: at the expiry the last NOTIFY says terminated;reason=timeout, with the state.
    if (expired) return { status: 'terminated', reason: 'timeout', body, version, recheckAt };
    return { status: 'active', body, version, recheckAt };
  }

  /**
   * Sends `sub` a NOTIFY with its current state, unless the state is the one last sent
   * (`force`: always, after a SUBSCRIBE). One NOTIFY per dialog at a time: a change while
   * one is outstanding is sent after it.
   */
  async function notify(
    sub: StoredSubscription,
    force: boolean,
    composed?: ComposeCache,
  ): Promise<void> {
    const key = dialogKeyOf(sub);
    const flying = inFlight.get(key);
    if (flying !== undefined) {
      flying.again = true;
      // A refresh that came while a NOTIFY was outstanding is still owed its own NOTIFY
      // (RFC 6665 §4.2.1.2: "Upon successfully accepting or refreshing a subscription,
      // notifiers MUST send a NOTIFY request immediately"), whatever the state.
      if (force) flying.force = true;
      return;
    }
    const entry = { again: false, force: false };
    inFlight.set(key, entry);
    try {
      await notifyNow(sub, force, composed);
    } catch (err) {
      logger.warn({ err, aor: sub.aor, watcher: sub.watcher }, 'presence: NOTIFY failed');
      // A poll tries again (the change that led here is behind the poll's sequence).
      await subscriptions
        .update(sub, { recheckAt: clock.wallNow() + RETRY_MS })
        .catch(() => undefined);
    } finally {
      inFlight.delete(key);
    }
    // A change while this one was outstanding: the state now (polls have seen its stamp).
    if (entry.again && !stopped) await notify(sub, entry.force);
  }

  async function notifyNow(
    seen: StoredSubscription,
    force: boolean,
    composed: ComposeCache | undefined,
  ): Promise<void> {
    // Read again: the copy may predate a NOTIFY that finished meanwhile (its CSeq, its hash).
    const sub = await subscriptions.get(seen);
    if (sub === undefined || sub.status === 'terminated') return;
    const now = clock.wallNow();
    const st = await stateOf(sub, now, composed);
    // The hash leaves out the winfo version (it changes with every document).
    const said = `${st.status};${st.reason ?? ''}\n${(st.body ?? '').replace(/ version="\d+"/, '')}`;
    const hash = digest(said);
    if (
      !force &&
      st.status !== 'terminated' &&
      hash === sub.notifiedHash &&
      st.status === sub.status
    ) {
      // Nothing a watcher would see changed (a registration refresh, say).
      await subscriptions.update(sub, { notifiedVersion: st.version, recheckAt: st.recheckAt });
      return;
    }
    const seq = sub.localSeq + 1;
    const terminated = st.status === 'terminated';
    // The CSeq is stored before the NOTIFY goes: a later one (any process) uses the next.
    const stored = await subscriptions.update(sub, {
      localSeq: seq,
      notifiedVersion: st.version,
      notifiedHash: hash,
      notifyCount: sub.notifyCount + 1,
      recheckAt: st.recheckAt,
      status: st.status,
      ...(terminated
        ? { reason: st.reason ?? 'timeout', expiresAt: now + TERMINATED_KEPT_MS }
        : {}),
      // RFC 3858 §4.2.3 event "approved": the user allowed a pending watcher.
      ...(sub.status === 'pending' && st.status === 'active' ? { reason: 'approved' } : {}),
    });
    if (!stored) return;
    if (terminated) {
      logger.info(
        { aor: sub.aor, watcher: sub.watcher, event: sub.event, reason: st.reason },
        'presence: subscription terminated',
      );
    }
    const remaining = Math.max(0, Math.round((sub.expiresAt - now) / 1000));
    // RFC 6665 §4.1.3 / §8.2.3: active and pending carry expires, terminated a reason.
    const state = terminated
      ? `terminated;reason=${st.reason ?? 'timeout'}`
      : `${st.status};expires=${remaining}`;
    const dialog = new Dialog({
      id: { callId: sub.callId, localTag: sub.localTag, remoteTag: sub.remoteTag },
      state: 'confirmed',
      localSeq: sub.localSeq,
      remoteSeq: sub.remoteSeq,
      localUri: sub.localUri,
      remoteUri: sub.remoteUri,
      remoteTarget: parseUriOrThrow(sub.remoteTarget),
      routeSet: sub.routeSet,
      secure: false,
    });
    const dest = await destinationOf(sub);
    if (dest === undefined) {
      await ended(sub, terminated, 'unreachable');
      return;
    }
    const headers: [string, string][] = [
      // RFC 6665 §8.2.1: "If the "id" parameter was present in the SUBSCRIBE ..., the NOTIFY
      // ... MUST contain [the] same "id" parameter".
      ['Event', sub.eventId !== undefined ? `${sub.event};id=${sub.eventId}` : sub.event],
      ['Subscription-State', state],
    ];
    const request = dialog.createRequest('NOTIFY', {
      seq,
      contact: stack.contactFor(dest),
      headers,
      ...(st.body !== undefined ? { body: st.body, contentType: sub.contentType } : {}),
    });
    const res: SipResponse = await stack.send(request, { destination: dest }).final;
    if (res.status >= 300) {
      // §4.2.2: "If the NOTIFY request fails due to a timeout (Timer F) or a 481 ... the
      // notifier MUST remove the subscription"; other failures "MAY" do so, and do here.
      logger.info(
        { aor: sub.aor, watcher: sub.watcher, status: res.status },
        'presence: NOTIFY refused; subscription removed',
      );
      await ended(sub, terminated, 'timeout');
    }
  }

  /** The subscription ends without a NOTIFY (it failed, or nowhere to send one). */
  async function ended(sub: StoredSubscription, already: boolean, reason: string): Promise<void> {
    if (already) return;
    await subscriptions.update(sub, {
      status: 'terminated',
      reason,
      expiresAt: clock.wallNow() + TERMINATED_KEPT_MS,
    });
    soon();
  }

  /**
   * Where a NOTIFY goes (RFC 3261 §12.2.1.1, §8.1.2): the first route of the route set
   * when there is one; else the flow the SUBSCRIBE (or its last refresh) came on, which
   * is the watcher itself (no proxy recorded a route) and reaches it behind NAT and over
   * its own TCP, TLS or WebSocket connection (RFC 5626 §5.3 and RFC 7118 §5 likewise).
   */
  async function destinationOf(sub: StoredSubscription): Promise<Destination | undefined> {
    if (sub.routeSet.length === 0 && sub.flow !== undefined) {
      const flow = parseFlow(sub.flow);
      if (flow !== undefined) return flow;
    }
    const first = sub.routeSet[0];
    const target =
      first !== undefined ? parseNameAddrUri(first) : parseUriOrThrow(sub.remoteTarget);
    if (target === undefined) return undefined;
    const dests = await stack.resolve(target);
    return dests[0];
  }

  // ---- changes ---------------------------------------------------------------------

  /** Runs a tick soon (after this turn's other changes: they go out together). */
  function soon(): void {
    if (stopped || soonTimer !== undefined) return;
    soonTimer = clock.setTimer(5, () => {
      soonTimer = undefined;
      void tick();
    });
  }

  async function runTick(): Promise<void> {
    const now = clock.wallNow();
    const { due, seq } = await subscriptions.dirty(now, seenSeq);
    // The watchers of one user notified in this tick share one composition of their state.
    const composed: ComposeCache = new Map();
    seenSeq = seq;
    for (const s of due) {
      // Not awaited: a watcher that never answers holds its own subscription for Timer F
      // (32 s), not the next tick and everyone else's NOTIFYs.
      if (owns(s.callId)) void notify(s, false, composed);
    }
    if (++polls % PURGE_EVERY === 0) await subscriptions.purgeTerminated(now);
  }

  /** One tick at a time; a tick asked for meanwhile runs after it. */
  function tick(): Promise<void> {
    if (running !== undefined) {
      rerun = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          rerun = false;
          await runTick().catch((err: unknown) =>
            logger.warn({ err }, 'presence: looking for changes failed'),
          );
        } while (rerun && !stopped);
      } finally {
        running = undefined;
      }
    })();
    return running;
  }

  const offChange = presence.onChange(() => soon());

  return {
    handleSubscribe,
    handleInDialog,
    bindingsChanged: async (aor) => {
      // Only a watched user's registrations are counted as changes: most REGISTERs are
      // refreshes of users nobody watches, and cost one read here.
      if ((await subscriptions.countFor(aor)) === 0) return;
      await versions.touch({ aor, event: PRESENCE_EVENT });
      soon();
    },
    changed: () => soon(),
    start: () => {
      const poll = (): void => {
        pollTimer = undefined;
        void tick().finally(() => {
          if (!stopped) pollTimer = clock.setTimer(pollIntervalMs, poll);
        });
      };
      poll();
    },
    tick,
    close: async () => {
      stopped = true;
      offChange();
      pollTimer?.cancel();
      soonTimer?.cancel();
      await running;
    },
  };
}

function parseUriOrThrow(text: string): Uri {
  const r = parseUri(text);
  if (!r.ok) throw new Error(`stored URI does not parse: ${text}`);
  return r.value;
}

function parseNameAddrUri(text: string): Uri | undefined {
  const r = parseNameAddr(text);
  return r.ok ? r.value.uri : undefined;
}
