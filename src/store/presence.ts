/**
 * Event state published with PUBLISH (RFC 3903): what an event state compositor keeps for
 * each resource (a local AOR) and event package, one publication per entity-tag.
 *
 * Several server processes (workers) answer PUBLISH for the same users, so every
 * publication lives here, not in a process. A publication is addressed by its
 * entity-tag (RFC 3903 §4: the SIP-ETag the compositor handed out); refreshing or
 * modifying it replaces that entity-tag with a new one (RFC 3903 §6 step 7), so a stale
 * one no longer matches (412). Entity-tags are chosen by the caller, and must be
 * unguessable: whoever knows one may change or remove that state.
 *
 * Each change to the composed state of a (resource, event) pair (a publication added,
 * modified, removed or expired and purged) bumps that pair's `version`, in the same
 * transaction: a notifier in any process can tell that the state it last sent is stale.
 * A refresh changes no state (RFC 3903 §4.2) and leaves the version alone.
 */

/** The event state an event publication agent published for a resource. */
export interface Publication {
  /** The resource: the canonical AOR `sip:user@domain`. */
  readonly aor: string;
  /** The event package (RFC 6665 §8.2.1 event-type, e.g. `presence`). */
  readonly event: string;
  /** The entity-tag (RFC 3903 §11.1 SIP-ETag) that currently names this publication. */
  readonly etag: string;
  /** Content-Type of `body` without parameters (`application/pidf+xml`). */
  readonly contentType: string;
  /** The event state document as published. */
  readonly body: Uint8Array;
  /** Epoch ms of the last initial publication or modification (the state's age). */
  readonly publishedAt: number;
  /** Epoch ms; the publication is gone after this (RFC 3903 §4.1). */
  readonly expiresAt: number;
}

/** A (resource, event) pair: the unit state is composed and notified for. */
export interface PresenceKey {
  readonly aor: string;
  readonly event: string;
}

/** What a modification replaces (RFC 3903 §4.4). */
export interface PublicationChange {
  readonly contentType: string;
  readonly body: Uint8Array;
  readonly expiresAt: number;
}

export interface PresenceStore {
  /** Keeps an initial publication (RFC 3903 §4.1) under `p.etag`; bumps the version. */
  insert(p: Publication): Promise<void>;
  /**
   * RFC 3903 §4.2 refresh: the live publication named `etag` gets `expiresAt` and the new
   * entity-tag `newEtag`; undefined when there is no such live publication.
   */
  refresh(
    key: PresenceKey,
    etag: string,
    newEtag: string,
    expiresAt: number,
    nowMs: number,
  ): Promise<Publication | undefined>;
  /**
   * RFC 3903 §4.4 modification: the live publication named `etag` gets the new body,
   * expiry and entity-tag, and `publishedAt` = `nowMs`; bumps the version. Undefined
   * when there is no such live publication.
   */
  modify(
    key: PresenceKey,
    etag: string,
    newEtag: string,
    change: PublicationChange,
    nowMs: number,
  ): Promise<Publication | undefined>;
  /** RFC 3903 §4.5 removal; bumps the version. False when no live publication had `etag`. */
  remove(key: PresenceKey, etag: string, nowMs: number): Promise<boolean>;
  /** The live publication named `etag`, if any. */
  get(key: PresenceKey, etag: string, nowMs: number): Promise<Publication | undefined>;
  /** Every live publication of the pair, oldest `publishedAt` first. */
  list(key: PresenceKey, nowMs: number): Promise<Publication[]>;
  /**
   * The pair's change counter: 0 for a pair never published to, then increasing by at
   * least one with every change of its composed state.
   */
  version(key: PresenceKey): Promise<number>;
  /**
   * Bumps the pair's change counter without a publication (the state derived from something
   * else changed: the user's registrations, RFC 3856 §6.4 composition by the server).
   */
  touch(key: PresenceKey): Promise<void>;
  /** Deletes expired publications; returns the pairs whose state so changed (versions bumped). */
  purgeExpired(nowMs: number): Promise<PresenceKey[]>;
}
