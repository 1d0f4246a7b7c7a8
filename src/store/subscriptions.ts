/**
 * Subscriptions the server serves as a notifier (RFC 6665 §4.2: it is the UAS of each
 * SUBSCRIBE to a local user's `presence`, RFC 3856, or `presence.winfo`, RFC 3857), and the
 * per-user authorization rules for watchers (RFC 3856 §5.1).
 *
 * A subscription is a dialog (RFC 6665 §4.1.2.2; RFC 3261 §12), so everything needed to send
 * a NOTIFY in it after a restart, or from another process, is kept: the dialog identifiers
 * and sequence numbers, the route set, the remote target, and the flow the SUBSCRIBE came on.
 * Several processes (workers) serve the same users: the one whose Call-ID it is sends the
 * NOTIFYs of a subscription, and learns of changes made elsewhere from the store's change
 * counters (`PresenceStore.version`): each subscription remembers the counter value its last
 * NOTIFY reflected (`notifiedVersion`), and `dirty` lists those behind. Every bump of a counter
 * also stamps its pair with the next value of one change sequence, so that a poller asks only
 * about pairs changed since its last look.
 *
 * Every change to a `presence` subscription (created, its status changed, removed) bumps the
 * `presence.winfo` counter of its resource in the same transaction (RFC 3857: the watcher
 * list is the resource's winfo state); every change of a rule bumps the resource's `presence`
 * counter (the watchers' authorization may have changed).
 */

/** RFC 6665 §4.1.3 substate-value, as kept; a `terminated` row stays a while for winfo. */
export type SubscriptionStatus = 'pending' | 'active' | 'terminated';

/** The dialog a subscription lives in (RFC 3261 §12: Call-ID and the two tags). */
export interface SubscriptionDialogId {
  readonly callId: string;
  /** Our tag: the To tag of the 200 to the SUBSCRIBE, the From tag of our NOTIFYs. */
  readonly localTag: string;
  /** The subscriber's From tag. */
  readonly remoteTag: string;
}

export interface StoredSubscription extends SubscriptionDialogId {
  /** The resource: a local canonical AOR `sip:user@domain`. */
  readonly aor: string;
  /** RFC 6665 §8.2.1 event-type: `presence` or `presence.winfo`. */
  readonly event: string;
  /** The Event header's `id` parameter, when the SUBSCRIBE had one (its NOTIFYs repeat it). */
  readonly eventId?: string;
  /** The subscriber's canonical AOR (its From URI, authenticated when local). */
  readonly watcher: string;
  /** The subscriber's display name, when its From had one. */
  readonly watcherName?: string;
  /** Our From of NOTIFYs without tag (the SUBSCRIBE's To). */
  readonly localUri: string;
  /** The subscriber's address without tag (the SUBSCRIBE's From). */
  readonly remoteUri: string;
  /** The remote target: the Contact URI of the last SUBSCRIBE (RFC 6665 §4.1.2.2 refresh). */
  readonly remoteTarget: string;
  /** Record-Route values of the SUBSCRIBE, in order (RFC 3261 §12.1.1). */
  readonly routeSet: readonly string[];
  /**
   * `tcp:192.0.2.1:5060` (any protocol but udp, or udp behind NAT): the flow the SUBSCRIBE
   * came on, where NOTIFYs go while no route set says otherwise.
   */
  readonly flow?: string;
  /** The body type NOTIFYs carry (`application/pidf+xml`, `application/watcherinfo+xml`). */
  readonly contentType: string;
  readonly status: SubscriptionStatus;
  /** RFC 6665 §4.1.3 event-reason-value of a terminated one; for winfo, RFC 3858 event. */
  readonly reason?: string;
  /** Our CSeq of the last NOTIFY (0 before the first). */
  readonly localSeq: number;
  /** The subscriber's last CSeq. */
  readonly remoteSeq: number;
  /** Epoch ms when the subscription was created. */
  readonly createdAt: number;
  /** Epoch ms; the subscription ends (reason=timeout) then unless refreshed. */
  readonly expiresAt: number;
  /** The change counter value the last NOTIFY reflected. */
  readonly notifiedVersion: number;
  /** A digest of the last NOTIFY's state and body: an unchanged state is not sent again. */
  readonly notifiedHash: string;
  /** NOTIFYs sent so far (RFC 3858 §4.2.1 winfo `version` is the count, from 0). */
  readonly notifyCount: number;
  /** Epoch ms when the state may change by itself (a binding or publication expiring). */
  readonly recheckAt: number;
}

/** What a refresh, a NOTIFY or a policy decision changes. */
export interface SubscriptionChange {
  readonly expiresAt?: number;
  readonly remoteSeq?: number;
  readonly remoteTarget?: string;
  readonly flow?: string | null;
  readonly status?: SubscriptionStatus;
  readonly reason?: string | null;
  readonly localSeq?: number;
  readonly notifiedVersion?: number;
  readonly notifiedHash?: string;
  readonly notifyCount?: number;
  readonly recheckAt?: number;
}

export interface SubscriptionLimits {
  /** Most live subscriptions of one watcher, all resources together. */
  readonly perWatcher: number;
  /** Most live subscriptions to one resource and event. */
  readonly perResource: number;
}

export type CreateSubscriptionResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'watcher-limit' | 'resource-limit' };

export interface DirtySubscriptions {
  readonly due: StoredSubscription[];
  /** The change sequence value read with them. */
  readonly seq: number;
}

export interface SubscriptionStore {
  /** Keeps a new subscription unless a limit is reached (counted over live ones). */
  create(
    s: StoredSubscription,
    limits: SubscriptionLimits,
    nowMs: number,
  ): Promise<CreateSubscriptionResult>;
  /** The subscription of a dialog, live or terminated. */
  get(id: SubscriptionDialogId): Promise<StoredSubscription | undefined>;
  /** Changes a subscription; false when it is gone. */
  update(id: SubscriptionDialogId, change: SubscriptionChange): Promise<boolean>;
  /** Deletes a subscription; false when it was gone. */
  remove(id: SubscriptionDialogId): Promise<boolean>;
  /** The subscriptions to a resource and event, terminated ones included, oldest first. */
  listFor(aor: string, event: string): Promise<StoredSubscription[]>;
  /** How many live (not terminated) subscriptions `aor` has, of `event` or of any event. */
  countFor(aor: string, event?: string): Promise<number>;
  /**
   * True when `aor` has no live subscription of `event` (what `countFor(aor, event)` would
   * resolve to 0 for) and the store can tell at once; false when it has one or would have
   * to wait to know. Optional: a hot path (the dialog tracker, several times per call) uses
   * it to skip the asynchronous count, and falls back to `countFor` without it.
   */
  unwatched?(aor: string, event: string): boolean;
  /**
   * Live subscriptions whose NOTIFY is due: their resource's change counter moved (after
   * the change sequence value `since`) and differs from `notifiedVersion`, they expired
   * (`expiresAt` ≤ now), or `recheckAt` ≤ now. `seq` is the change sequence value the
   * answer covers: the next call passes it as `since` (0 the first time: every pair).
   */
  dirty(nowMs: number, since: number): Promise<DirtySubscriptions>;
  /** Deletes terminated rows older than `beforeMs` (their `expiresAt`); returns how many. */
  purgeTerminated(beforeMs: number): Promise<number>;
}

/** RFC 3856 §5.1 / RFC 5025 sub-handling: what a user decided about one watcher. */
export type PresenceRuleAction = 'allow' | 'block' | 'confirm';

export interface PresenceRule {
  readonly aor: string;
  /** The watcher's canonical AOR. */
  readonly watcher: string;
  readonly action: PresenceRuleAction;
}

export interface PresenceRuleStore {
  /** Sets the rule for (aor, watcher); bumps `aor`'s presence counter. */
  set(rule: PresenceRule): Promise<void>;
  /** Deletes it; bumps the counter; false when there was none. */
  remove(aor: string, watcher: string): Promise<boolean>;
  get(aor: string, watcher: string): Promise<PresenceRule | undefined>;
  /** Every rule of a user, by watcher. */
  list(aor: string): Promise<PresenceRule[]>;
}
