/**
 * The user store: one row per address-of-record (RFC 3261 §10.3) with its digest
 * credentials. Passwords are never stored, only H(A1) (RFC 7616 §3.4.2) for MD5 and
 * SHA-256 (RFC 8760), computed with realm = the AOR's domain by the caller.
 *
 * Asynchronous so that a networked adapter (Redis) can implement it too.
 */

/** The H(A1) values a server stores instead of a password (lowercase hex). */
export interface UserCredentials {
  /** MD5(user ":" realm ":" password), 32 hex digits. */
  readonly ha1Md5: string;
  /** SHA-256(user ":" realm ":" password), 64 hex digits. */
  readonly ha1Sha256: string;
}

/** A stored user. */
export interface UserRecord extends UserCredentials {
  /** Canonical AOR, `sip:user@domain` (domain lower-cased). */
  readonly aor: string;
  /** The AOR's user part, as written. */
  readonly user: string;
  /** The AOR's domain, lower-cased; also the digest realm. */
  readonly domain: string;
}

/** One row of `UserStore.importMany`. */
export interface UserImportRow {
  readonly aor: string;
  readonly credentials: UserCredentials;
}

/** `added`, or why not: the AOR is taken, or its domain is not configured. */
export type AddUserResult = 'added' | 'exists' | 'unknown-domain';

/** Why a whole import was refused; `index` is the offending row's index in the input. */
export type ImportUsersResult =
  | { readonly ok: true; readonly count: number }
  | {
      readonly ok: false;
      readonly index: number;
      readonly reason: 'exists' | 'duplicate' | 'unknown-domain';
    };

export interface UserStore {
  /** Adds a user; its domain must already be configured (DomainStore). */
  add(aor: string, credentials: UserCredentials): Promise<AddUserResult>;
  /** Replaces a user's credentials; false when there is no such user. */
  setPassword(aor: string, credentials: UserCredentials): Promise<boolean>;
  /** Removes a user; false when there is no such user. */
  remove(aor: string): Promise<boolean>;
  get(aor: string): Promise<UserRecord | undefined>;
  /** Every user, or the users of one domain, ordered by AOR. */
  list(domain?: string): Promise<UserRecord[]>;
  /** Adds every row or none: the first conflicting row refuses the whole import. */
  importMany(rows: readonly UserImportRow[]): Promise<ImportUsersResult>;
}

/** The parts of a canonical `sip:user@domain` AOR; undefined when it is not one. */
export function splitAor(aor: string): { user: string; domain: string } | undefined {
  if (!aor.startsWith('sip:')) return undefined;
  const at = aor.lastIndexOf('@');
  if (at <= 4 || at === aor.length - 1) return undefined;
  return { user: aor.slice(4, at), domain: aor.slice(at + 1) };
}
