/**
 * The state of INVITE-initiated dialogs of local users, as the proxy saw them pass (RFC 4235
 * §3.7.1: trying, proceeding, early, confirmed, terminated): what a notifier of the `dialog`
 * event package reports to a user's watchers (busy lamps).
 *
 * The worker that forwards a call (the owner of its Call-ID) writes its dialog's state here;
 * the subscription to the user's `dialog` event may belong to another worker, which reads it.
 * Every write bumps the (aor, `dialog`) change counter of `PresenceStore.version` in the same
 * transaction, so notifiers in any process learn of it as they learn of presence changes.
 *
 * Each row carries an expiry: a row whose writer died (or never saw the end of the call) is
 * not reported after it, and a terminated row is kept only long enough to be notified.
 */

/** RFC 4235 §3.7.1 / §4.1.2: the state of one dialog (the `<state>` element). */
export type DialogStateValue = 'trying' | 'proceeding' | 'early' | 'confirmed' | 'terminated';

/** RFC 4235 §4.1.1 `direction`: whether the observed user sent the INVITE. */
export type DialogDirection = 'initiator' | 'recipient';

/** One dialog of one observed user (RFC 4235 §4.1.1 `<dialog>`). */
export interface StoredDialogState {
  /** The observed user: a local canonical AOR `sip:user@domain`. */
  readonly aor: string;
  /** §4.1.1 id: unique among the user's dialogs, the same in every document. */
  readonly id: string;
  readonly callId: string;
  /** The observed user's tag (From tag for the initiator, To tag for the recipient). */
  readonly localTag?: string;
  /** The peer's tag. */
  readonly remoteTag?: string;
  readonly direction: DialogDirection;
  readonly state: DialogStateValue;
  /** §4.1.2 event of a terminated dialog: cancelled, rejected, local-bye, remote-bye, timeout. */
  readonly event?: string;
  /** §4.1.2 code: the final response status that led to the state. */
  readonly code?: number;
  /** §4.1.6 `<local><identity>`: the observed user's URI in the dialog. */
  readonly localIdentity: string;
  readonly localDisplay?: string;
  /** §4.1.6 `<remote><identity>`: the peer's URI. */
  readonly remoteIdentity: string;
  readonly remoteDisplay?: string;
  /** Epoch ms when the dialog was first seen (the INVITE). */
  readonly createdAt: number;
  /** Epoch ms of the last change. */
  readonly updatedAt: number;
  /** Epoch ms after which the row is no longer reported, and may be deleted. */
  readonly expiresAt: number;
}

export interface DialogStateStore {
  /** Writes the dialog's state (a new row or its new state); bumps (aor, `dialog`). */
  put(d: StoredDialogState): Promise<void>;
  /** The user's dialogs not expired at `nowMs`, oldest first. */
  list(aor: string, nowMs: number): Promise<StoredDialogState[]>;
  /**
   * Deletes rows expired at `nowMs`; returns how many. No counter moves: a terminated row was
   * notified already, and a live one that expired is found by the notifier's own recheck.
   */
  purgeExpired(nowMs: number): Promise<number>;
}
