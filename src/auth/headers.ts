/**
 * The header pairs of SIP authentication (RFC 3261 §22.2, §22.3): a UAS
 * challenges with 401 and WWW-Authenticate (§20.44) and reads Authorization
 * (§20.7); a proxy challenges with 407 and Proxy-Authenticate (§20.27) and
 * reads Proxy-Authorization (§20.28).
 */
import { equalsIgnoreCase, quote, type Param } from '../sip/index.ts';

export interface AuthHeaderSet {
  /** 401 for a UAS, 407 for a proxy. */
  readonly status: 401 | 407;
  /** The header a challenge goes in. */
  readonly challenge: 'WWW-Authenticate' | 'Proxy-Authenticate';
  /** The header the credentials come back in. */
  readonly credentials: 'Authorization' | 'Proxy-Authorization';
}

const UAS: AuthHeaderSet = Object.freeze({
  status: 401,
  challenge: 'WWW-Authenticate',
  credentials: 'Authorization',
});

const PROXY: AuthHeaderSet = Object.freeze({
  status: 407,
  challenge: 'Proxy-Authenticate',
  credentials: 'Proxy-Authorization',
});

export function authHeaderSet(proxy: boolean): AuthHeaderSet {
  return proxy ? PROXY : UAS;
}

/** auth-scheme "Digest", compared case-insensitively (RFC 3261 §25.1; RFC 7235 §2.1). */
export function isDigest(scheme: string): boolean {
  return equalsIgnoreCase(scheme, 'digest');
}

/** An auth-param whose value is a quoted-string (RFC 3261 §25.1: realm, nonce, uri, ...). */
export function quotedParam(name: string, value: string): Param {
  return { name, value: quote(value) };
}

/** An auth-param whose value is a bare token (algorithm, qop, nc, stale, userhash). */
export function tokenParam(name: string, value: string): Param {
  return { name, value };
}
