/**
 * The state of local users' INVITE dialogs, for the `dialog` event package (RFC 4235): the
 * proxy tells the tracker about each initial INVITE to or from a local user, the responses it
 * sends upstream and the in-dialog requests it relays on its Record-Route (`CallObserver`),
 * and the tracker runs one RFC 4235 §3.7.1 state machine per (call, observed user):
 *
 *   trying --1xx, no To tag--> proceeding --1xx with To tag--> early --2xx--> confirmed
 *     any state --final non-2xx (487 after CANCEL: cancelled; else rejected)--> terminated
 *     early, confirmed --BYE (local-bye or remote-bye, by who sent it)--> terminated
 *     any state --no end seen in time (timeout)--> terminated
 *
 * The callee is the local AOR of the Request-URI before the location lookup; the caller is
 * the authenticated local user of From. A call between two local users is two machines.
 *
 * State a watcher could see (trying, early, confirmed, terminated; not proceeding) is written
 * to the store (`DialogStateStore.put`, one statement and a counter bump), where the notifier
 * of whichever worker owns a watcher's subscription reads it. A user nobody watches costs one
 * indexed count per change and no write. The machine itself lives here, in the process that
 * forwards the call: Call-ID steering brings its INVITE, responses and BYE to the same worker.
 *
 * Bounded: at most `maxDialogs` calls tracked (more are forwarded, not tracked); an entry is
 * dropped as soon as its terminated state is written; an unanswered INVITE ends `maxEarlyMs`
 * after its last provisional response, and a confirmed dialog whose BYE never passes (a phone lost power, a BYE sent
 * around the proxy) after `maxCallMs`, or after its Session-Expires interval (RFC 4028 §10)
 * when the call uses session timers and no refresh passed.
 */
import {
  hash64,
  ownCopy,
  silentLogger,
  uint32ToString,
  type Clock,
  type Logger,
  type TimerHandle,
} from '../../base/index.ts';
import {
  formatUri,
  parseNameAddr,
  SessionExpiresHeader,
  type SipRequest,
  type SipResponse,
} from '../../sip/index.ts';
import type {
  DialogDirection,
  DialogStateStore,
  DialogStateValue,
  StoredDialogState,
  SubscriptionStore,
} from '../../store/index.ts';
import type { CallObserver } from '../proxy/index.ts';
import { DIALOG_EVENT } from './dialog-info.ts';

export const DEFAULT_MAX_DIALOGS = 10_000;
/** A confirmed call without Session-Expires is taken as ended after this, ms (4 hours). */
export const DEFAULT_MAX_CALL_MS = 4 * 3600_000;
/** An INVITE without a final response after this is taken as ended (Timer C is 181 s). */
export const DEFAULT_MAX_EARLY_MS = 300_000;
/** A terminated row stays this long in the store (for the notifiers of every worker). */
export const TERMINATED_KEPT_MS = 30_000;
/**
 * RFC 4028 §10: without a refresh the session ends "32 seconds or one third of the session
 * interval, whichever is less" before the interval runs out; a proxy learns of the refresh
 * only as it passes, so it waits the whole interval and this much more.
 */
const SESSION_GRACE_MS = 32_000;
/** How often `start` sweeps (timeouts and expired rows), ms. */
const SWEEP_MS = 10_000;

export interface DialogTrackerOptions {
  readonly dialogs: DialogStateStore;
  /** Who watches whom: a user without `dialog` watchers costs no write. */
  readonly subscriptions: SubscriptionStore;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Most calls tracked at once (default 10,000). */
  readonly maxDialogs?: number;
  /** A confirmed dialog without session timers ends after this, ms (default 4 h). */
  readonly maxCallMs?: number;
  /**
   * A dialog with no final response ends this long after its INVITE or its last provisional
   * response, ms (default 300 s; longer than the proxy's Timer C).
   */
  readonly maxEarlyMs?: number;
  /** Told after each write of a state, in this process (the notifier sends at once). */
  readonly onChange?: (aor: string) => void;
}

export interface DialogTrackerStats {
  /** Calls tracked now. */
  readonly tracked: number;
  /** INVITEs not tracked because `maxDialogs` were. */
  readonly dropped: number;
  /** Store writes made. */
  readonly writes: number;
  /** State changes not written because nobody watched the user. */
  readonly skipped: number;
}

export interface DialogTracker extends CallObserver {
  /** Ends the dialogs past their deadline and deletes expired rows. */
  sweep(): Promise<void>;
  /** Sweeps every 10 s. */
  start(): void;
  /** Resolves once the writes started so far are done. */
  settled(): Promise<void>;
  stats(): DialogTrackerStats;
  close(): Promise<void>;
}

/**
 * One observed user's side of one call: its RFC 4235 §3.7.1 machine. What only a stored row
 * shows (its id, the identities) is worked out when a row is written (`rowOf`): most users are
 * watched by nobody, and their calls never need it.
 */
interface Party {
  readonly aor: string;
  readonly direction: DialogDirection;
  state: DialogStateValue;
  localTag: string | undefined;
  remoteTag: string | undefined;
  /** A row was written (its end must be written too, watched or not). */
  stored: boolean;
  /** The expiry of the row last written. */
  storedExpiresAt: number;
}

/**
 * One call: the INVITE's Call-ID and From tag, and its one or two observed parties. Its strings
 * are copies (`ownCopy`): a substring of a message keeps the whole message text, and an entry
 * lasts as long as the call.
 */
interface Entry {
  readonly callId: string;
  readonly fromTag: string;
  /** The INVITE's From and To field values, parsed again for the identities of a written row. */
  readonly fromValue: string;
  readonly toValue: string;
  readonly createdAt: number;
  readonly parties: Party[];
  /** When the call is taken as ended if nothing else ends it (epoch ms). */
  deadline: number;
  /** RFC 4028 session interval, ms, when the call uses session timers. */
  sessionMs: number | undefined;
  /** Writes of this call, in order. */
  writes: Promise<void>;
  /** Writes queued and not settled yet. */
  queued: number;
}

/** §3.7.1: the order of the states; a machine never goes back. */
const RANK: Readonly<Record<DialogStateValue, number>> = Object.freeze({
  trying: 0,
  proceeding: 1,
  early: 2,
  confirmed: 3,
  terminated: 4,
});

/** The states a watcher is told about (proceeding is no news to a busy lamp). */
const VISIBLE: ReadonlySet<DialogStateValue> = new Set([
  'trying',
  'early',
  'confirmed',
  'terminated',
]);

/** A short stable id for a dialog (RFC 4235 §4.1.1 id; not security relevant). */
function dialogId(callId: string, fromTag: string, direction: DialogDirection): string {
  const [h1, h2] = hash64(`${callId}\u0000${fromTag}\u0000${direction}`);
  return `d${uint32ToString(h1, 16).padStart(8, '0')}${uint32ToString(h2, 16).padStart(8, '0')}`;
}

/** The identity (URI) and display name of a From or To value (RFC 4235 §4.1.1). */
function identityOf(value: string): { uri: string; displayName: string | undefined } {
  const r = parseNameAddr(value);
  // The value parsed when the INVITE was read, so it parses again; the raw text otherwise.
  return r.ok
    ? { uri: formatUri(r.value.uri), displayName: r.value.displayName }
    : { uri: value, displayName: undefined };
}

export function createDialogTracker(options: DialogTrackerOptions): DialogTracker {
  const { dialogs, subscriptions, clock } = options;
  const logger = options.logger ?? silentLogger;
  const maxDialogs = options.maxDialogs ?? DEFAULT_MAX_DIALOGS;
  const maxCallMs = options.maxCallMs ?? DEFAULT_MAX_CALL_MS;
  const maxEarlyMs = options.maxEarlyMs ?? DEFAULT_MAX_EARLY_MS;
  const entries = new Map<string, Entry>();
  const pending = new Set<Promise<void>>();
  let dropped = 0;
  let writes = 0;
  let skipped = 0;
  let timer: TimerHandle | undefined;
  let stopped = false;

  const keyOf = (callId: string, fromTag: string): string => `${callId}\u0000${fromTag}`;

  /** The session interval of a message's Session-Expires, ms (RFC 4028 §4). */
  function sessionOf(m: SipRequest | SipResponse): number | undefined {
    const se = m.decode(SessionExpiresHeader);
    return se?.ok === true && se.value.seconds > 0 ? se.value.seconds * 1000 : undefined;
  }

  /** The store row's expiry for a party now in `state`. */
  function rowExpiry(e: Entry, state: DialogStateValue, now: number): number {
    if (state === 'terminated') return now + TERMINATED_KEPT_MS;
    // With session timers the row outlives one more refresh, so that a refresh writes only
    // every other time; without, it is the entry's own deadline.
    if (state === 'confirmed' && e.sessionMs !== undefined) return e.deadline + e.sessionMs;
    return e.deadline;
  }

  /** The store row of `p` in `at.state`, with the identities of §4.1.1 (local: the observed user). */
  function rowOf(
    e: Entry,
    p: Party,
    at: {
      state: DialogStateValue;
      localTag: string | undefined;
      remoteTag: string | undefined;
      now: number;
      expiresAt: number;
      event?: string;
      code?: number;
    },
  ): StoredDialogState {
    const initiator = p.direction === 'initiator';
    // §4.1.1: the caller's identity is its From; the callee's is its own AOR (the Request-URI
    // before the location lookup), shown with the To display name.
    const from = identityOf(e.fromValue);
    const to = identityOf(e.toValue);
    const localIdentity = initiator ? from.uri : p.aor;
    const localDisplay = initiator ? from.displayName : to.displayName;
    const remoteIdentity = initiator ? to.uri : from.uri;
    const remoteDisplay = initiator ? to.displayName : from.displayName;
    return {
      aor: p.aor,
      id: dialogId(e.callId, e.fromTag, p.direction),
      callId: e.callId,
      ...(at.localTag !== undefined ? { localTag: at.localTag } : {}),
      ...(at.remoteTag !== undefined ? { remoteTag: at.remoteTag } : {}),
      direction: p.direction,
      state: at.state,
      ...(at.event !== undefined ? { event: at.event } : {}),
      ...(at.code !== undefined ? { code: at.code } : {}),
      localIdentity,
      ...(localDisplay !== undefined ? { localDisplay } : {}),
      remoteIdentity,
      ...(remoteDisplay !== undefined ? { remoteDisplay } : {}),
      createdAt: e.createdAt,
      updatedAt: at.now,
      expiresAt: at.expiresAt,
    };
  }

  /** Queues the write of `p`'s state (in the call's order), when someone may look at it. */
  function write(e: Entry, p: Party, extra: { event?: string; code?: number } = {}): void {
    // The common case, decided at once: nothing written for this party yet, nothing queued
    // for the call, and the store knows nobody watches the user — no promise, no row.
    if (!p.stored && e.queued === 0 && subscriptions.unwatched?.(p.aor, DIALOG_EVENT) === true) {
      skipped++;
      return;
    }
    // What changes with the call is taken now; the row is built only for a watched user.
    const now = clock.wallNow();
    const state = p.state;
    const localTag = p.localTag;
    const remoteTag = p.remoteTag;
    const expiresAt = rowExpiry(e, state, now);
    e.queued++;
    const job = e.writes.then(async () => {
      // A user nobody watches: no write (a watcher who comes later sees the next change).
      if (!p.stored && (await subscriptions.countFor(p.aor, DIALOG_EVENT)) === 0) {
        skipped++;
        return;
      }
      const row = rowOf(e, p, { state, localTag, remoteTag, now, expiresAt, ...extra });
      await dialogs.put(row);
      p.stored = true;
      p.storedExpiresAt = row.expiresAt;
      writes++;
      options.onChange?.(p.aor);
    });
    const settledJob = job.catch((err: unknown) => {
      logger.warn({ err, aor: p.aor, callId: e.callId }, 'dialog: state not stored');
    });
    e.writes = settledJob;
    pending.add(settledJob);
    void settledJob.finally(() => {
      e.queued--;
      pending.delete(settledJob);
    });
  }

  /**
   * RFC 4235 §3.7.1: the one way a party's state changes. Backward moves (a 180 after the
   * 200) and moves out of terminated are refused; a state a watcher sees is written.
   */
  function transition(
    e: Entry,
    p: Party,
    to: DialogStateValue,
    extra: { event?: string; code?: number } = {},
  ): void {
    if (p.state === 'terminated' || RANK[to] <= RANK[p.state]) return;
    p.state = to;
    if (VISIBLE.has(to)) write(e, p, extra);
    if (e.parties.every((q) => q.state === 'terminated'))
      entries.delete(keyOf(e.callId, e.fromTag));
  }

  const party = (
    aor: string,
    direction: DialogDirection,
    localTag: string | undefined,
    remoteTag: string | undefined,
  ): Party => ({
    aor,
    direction,
    state: 'trying',
    localTag,
    remoteTag,
    stored: false,
    storedExpiresAt: 0,
  });

  function invite(m: SipRequest, parties: { callee?: string; caller?: string }): void {
    if (stopped) return;
    const fromTag = m.from.tag;
    if (fromTag === undefined || (parties.callee === undefined && parties.caller === undefined)) {
      return;
    }
    // A spiral or a retransmission passed before: the call is tracked already.
    if (entries.has(keyOf(m.callId, fromTag))) return;
    if (entries.size >= maxDialogs) {
      if (dropped++ === 0) logger.warn({ maxDialogs }, 'dialog: too many calls to track');
      return;
    }
    const now = clock.wallNow();
    const e: Entry = {
      callId: ownCopy(m.callId),
      fromTag: ownCopy(fromTag),
      fromValue: ownCopy(m.getRaw('From') ?? ''),
      toValue: ownCopy(m.getRaw('To') ?? ''),
      createdAt: now,
      parties: [],
      deadline: now + maxEarlyMs,
      sessionMs: undefined,
      writes: Promise.resolve(),
      queued: 0,
    };
    if (parties.caller !== undefined) {
      // §4.1.1: the observed user's tag is the local one; the caller's is the From tag.
      e.parties.push(party(parties.caller, 'initiator', e.fromTag, undefined));
    }
    if (parties.callee !== undefined && parties.callee !== parties.caller) {
      e.parties.push(party(parties.callee, 'recipient', undefined, e.fromTag));
    }
    entries.set(keyOf(e.callId, e.fromTag), e);
    // §3.7.1: "trying" from the INVITE on.
    for (const p of e.parties) write(e, p);
  }

  function response(m: SipRequest, res: SipResponse): void {
    const fromTag = m.from.tag;
    if (fromTag === undefined) return;
    const e = entries.get(keyOf(m.callId, fromTag));
    if (e === undefined || stopped) return;
    const status = res.status;
    // RFC 3261 §16.8: each provisional response restarts the proxy's Timer C; a call that
    // keeps ringing is alive that much longer here too.
    if (status < 200) e.deadline = Math.max(e.deadline, clock.wallNow() + maxEarlyMs);
    const toTag = res.to.tag;
    let ownToTag: string | undefined;
    const setTags = (p: Party): void => {
      if (toTag === undefined) return;
      // A copy, made once: the tag is a substring of the response (see Entry).
      const tag = (ownToTag ??= ownCopy(toTag));
      if (p.direction === 'initiator') p.remoteTag = tag;
      else p.localTag = tag;
    };
    for (const p of e.parties) {
      if (status < 200) {
        // §3.7.1: a provisional response without a To tag is proceeding; with one it
        // creates an early dialog (RFC 3261 §12.1). Several forks are one entry here: the
        // tags of the latest one are shown.
        if (toTag === undefined) transition(e, p, 'proceeding');
        else if (p.state !== 'early' && p.state !== 'confirmed') {
          setTags(p);
          transition(e, p, 'early');
        }
      } else if (status < 300) {
        if (p.state === 'confirmed') continue; // another fork's 2xx, or a retransmission
        setTags(p);
        const now = clock.wallNow();
        e.sessionMs = sessionOf(res);
        e.deadline = now + (e.sessionMs !== undefined ? e.sessionMs + SESSION_GRACE_MS : maxCallMs);
        transition(e, p, 'confirmed');
      } else {
        // §3.7.1: a 487 after CANCEL ends it "cancelled"; any other non-2xx "rejected".
        transition(e, p, 'terminated', {
          event: status === 487 ? 'cancelled' : 'rejected',
          code: status,
        });
      }
    }
  }

  function inDialog(m: SipRequest): void {
    const method = m.method;
    if (stopped || (method !== 'BYE' && method !== 'INVITE' && method !== 'UPDATE')) return;
    // The dialog's tags: the INVITE's From tag is whichever side's tag the INVITE had.
    const a = m.from.tag;
    const b = m.to.tag;
    const e =
      (a !== undefined ? entries.get(keyOf(m.callId, a)) : undefined) ??
      (b !== undefined ? entries.get(keyOf(m.callId, b)) : undefined);
    if (e === undefined) return;
    if (method === 'BYE') {
      for (const p of e.parties) {
        // §3.7.1 / errata 1495: a BYE ends an early or confirmed dialog; local-bye when the
        // observed user sent it (its tag is the BYE's From tag).
        const event = p.localTag !== undefined && p.localTag === a ? 'local-bye' : 'remote-bye';
        transition(e, p, 'terminated', { event });
      }
      return;
    }
    // RFC 4028 §10: a re-INVITE or UPDATE refreshes the session; its interval may change.
    const se = sessionOf(m) ?? e.sessionMs;
    if (se === undefined || !e.parties.every((p) => p.state === 'confirmed')) return;
    e.sessionMs = se;
    e.deadline = clock.wallNow() + se + SESSION_GRACE_MS;
    for (const p of e.parties) {
      // The row would expire before the next refresh is due: written again, later expiry.
      if (p.stored && p.storedExpiresAt < e.deadline) write(e, p);
    }
  }

  async function sweep(): Promise<void> {
    const now = clock.wallNow();
    for (const e of [...entries.values()]) {
      if (e.deadline > now) continue;
      // §4.1.2 event "timeout": the end was not seen, the time it could last ran out.
      for (const p of e.parties) transition(e, p, 'terminated', { event: 'timeout' });
      entries.delete(keyOf(e.callId, e.fromTag));
    }
    try {
      await dialogs.purgeExpired(now);
    } catch (err) {
      logger.warn({ err }, 'dialog: purging expired states failed');
    }
  }

  return {
    invite,
    response,
    inDialog,
    sweep,
    start: () => {
      const run = (): void => {
        timer = undefined;
        void sweep().finally(() => {
          if (!stopped) timer = clock.setTimer(SWEEP_MS, run);
        });
      };
      timer = clock.setTimer(SWEEP_MS, run);
    },
    settled: async () => {
      while (pending.size > 0) await Promise.all([...pending]);
    },
    stats: () => ({ tracked: entries.size, dropped, writes, skipped }),
    close: async () => {
      stopped = true;
      timer?.cancel();
      await Promise.all([...pending]);
    },
  };
}
