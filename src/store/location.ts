/**
 * The location service (RFC 3261 §10.2, §10.3): the contact bindings registered for
 * each address-of-record. A binding is keyed by (aor, contact).
 */

/** One registered contact (RFC 3261 §10.3 step 7; RFC 3327 Path; RFC 5626 outbound). */
export interface Binding {
  /** Canonical AOR, `sip:user@domain`. */
  readonly aor: string;
  /** The Contact URI as registered (text). */
  readonly contact: string;
  /** When the binding expires, epoch milliseconds. */
  readonly expiresAt: number;
  /** The contact's `q` value, 0..1 (RFC 3261 §20.10); 1 when absent. */
  readonly q: number;
  /** Call-ID and CSeq of the REGISTER that last refreshed it (RFC 3261 §10.3 step 7). */
  readonly callId: string;
  readonly cseq: number;
  /** Path header values, in order (RFC 3327 §5.3). */
  readonly path: readonly string[];
  /** `+sip.instance` (RFC 5626 §4.1), when given. */
  readonly instance?: string;
  /** `reg-id` (RFC 5626 §4.2), when given. */
  readonly regId?: number;
  /** Where the REGISTER came from, e.g. `udp:192.0.2.1:5060` (the flow for RFC 5626). */
  readonly received?: string;
  /** The registering User-Agent header, when given. */
  readonly userAgent?: string;
}

/**
 * What one REGISTER does to the bindings of its AOR (RFC 3261 §10.3 steps 6 and 7),
 * applied by `LocationStore.apply` as one atomic change.
 */
export interface BindingUpdate {
  /** Canonical AOR, `sip:user@domain`. */
  readonly aor: string;
  /** Bindings with expiresAt <= nowMs are gone (neither checked nor returned). */
  readonly nowMs: number;
  /**
   * The REGISTER's Call-ID and CSeq. RFC 3261 §10.3 step 7: if a binding to change
   * has the same Call-ID and a CSeq not lower, "the update MUST be aborted and the
   * request fails"; step 6 checks every binding of the AOR in the same way for `*`.
   */
  readonly callId: string;
  readonly cseq: number;
  /** `Contact: *` with Expires 0: remove every binding (§10.3 step 6). */
  readonly removeAll?: boolean;
  /**
   * Per contact, in the request's order: a Binding to insert or replace, or a contact
   * text to remove (expires 0).
   */
  readonly changes?: readonly (Binding | string)[];
}

/** `apply`'s result: the AOR's bindings afterwards, or why nothing was changed. */
export type BindingUpdateResult =
  | { readonly ok: true; readonly bindings: Binding[] }
  | { readonly ok: false; readonly reason: 'out-of-order' };

export interface LocationStore {
  /**
   * Checks and applies one REGISTER's changes in one transaction, so that no other
   * writer (another server process) interleaves between the Call-ID/CSeq check and the
   * writes, and returns what `lookup(aor, nowMs)` returns afterwards (the 200's Contact
   * list, RFC 3261 §10.3 step 8). Out of order: nothing is changed.
   */
  apply(update: BindingUpdate): Promise<BindingUpdateResult>;
  /** Inserts the binding, or replaces the one with the same (aor, contact). */
  upsert(binding: Binding): Promise<void>;
  /** Removes one binding; false when there was none. */
  remove(aor: string, contact: string): Promise<boolean>;
  /** Removes every binding of the AOR (`Contact: *`); returns how many. */
  removeAll(aor: string): Promise<number>;
  /** The AOR's bindings with expiresAt > nowMs, highest q first. */
  lookup(aor: string, nowMs: number): Promise<Binding[]>;
  /**
   * Every live binding (expiresAt > nowMs) of every AOR, or of `aor` only: what an
   * operator lists (`switchboard registrations`). Ordered by AOR, then as `lookup`.
   */
  list(nowMs: number, aor?: string): Promise<Binding[]>;
  /** Deletes every binding with expiresAt <= nowMs; returns how many. */
  purgeExpired(nowMs: number): Promise<number>;
}
