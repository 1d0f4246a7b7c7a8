/**
 * Instant messages kept for users who could not take them (RFC 3428 page mode,
 * store-and-forward): a MESSAGE to a local user with no reachable contact is answered
 * 202 Accepted and kept here until the user registers again, the message expires, or an
 * operator removes it.
 *
 * Delivery may be attempted by several server processes at once (workers, cluster
 * nodes), and must keep each user's messages in order and deliver each once. So a
 * deliverer `claim`s all of a user's pending messages for a lease: nobody else gets any
 * of that user's messages until the lease ends. It `remove`s each message once a contact
 * answered it with a 2xx, and `release`s the rest when a delivery fails; a deliverer that
 * dies leaves its lease to expire.
 */

/** A message as received, to keep. */
export interface NewMessage {
  /** The recipient's canonical AOR, `sip:user@domain`. */
  readonly aor: string;
  /** The sender's From header value (its tag is not kept: a new request gets a new one). */
  readonly from: string;
  /** The To header value the sender used. */
  readonly to: string;
  /** Content-Type of the body (RFC 3428 §7: text/plain, message/cpim, ...). */
  readonly contentType: string;
  readonly body: Uint8Array;
  /** Epoch milliseconds. */
  readonly receivedAt: number;
  /** Epoch milliseconds; not delivered after this. */
  readonly expiresAt: number;
}

/** A kept message. `id`s increase in the order messages were kept. */
export interface StoredMessage extends NewMessage {
  readonly id: number;
}

export type EnqueueResult =
  | { readonly ok: true; readonly id: number }
  /** The recipient already has `quota` live messages waiting. */
  | { readonly ok: false; readonly reason: 'quota' };

export interface MessageStore {
  /** Keeps a message unless its recipient has `quota` live messages waiting already. */
  enqueue(message: NewMessage, quota: number): Promise<EnqueueResult>;
  /**
   * How many live messages wait for `aor` (claimed ones included): a read only, for the
   * questions asked on every REGISTER and MESSAGE ("anything waiting?").
   */
  count(aor: string, nowMs: number): Promise<number>;
  /** The live messages waiting for `aor`, oldest first (claimed ones included). */
  list(aor: string, nowMs: number): Promise<StoredMessage[]>;
  /**
   * All of `aor`'s live waiting messages, oldest first (at most `limit`), leased to the
   * caller for `leaseMs`; none when another lease on `aor`'s messages is still running.
   */
  claim(aor: string, nowMs: number, leaseMs: number, limit: number): Promise<StoredMessage[]>;
  /** Ends the lease on a message that was not delivered: it waits again. */
  release(id: number): Promise<void>;
  /** Deletes a message (delivered, or removed by an operator); false when it was gone. */
  remove(id: number): Promise<boolean>;
  /** AORs with live messages waiting and no running lease. */
  pendingAors(nowMs: number): Promise<string[]>;
  /** Deletes expired messages; returns how many. */
  purgeExpired(nowMs: number): Promise<number>;
}
