/**
 * The Digest computations of RFC 7616 §3.4.1–§3.4.4 as pure functions, for the
 * algorithms SIP uses (RFC 8760 §2.1; RFC 3261 §22.4): MD5, MD5-sess, SHA-256
 * and SHA-256-sess. Every digest is written as lowercase hex, four bits per
 * character (RFC 7616 §3.2).
 *
 *   response  = KD(H(A1), unq(nonce) ":" nc ":" unq(cnonce) ":" unq(qop) ":" H(A2))   (§3.4.1)
 *   response  = KD(H(A1), unq(nonce) ":" H(A2))     no qop: the RFC 2069 form kept by
 *                                                    RFC 2617 §3.2.2.1 and RFC 3261 §22.4
 *   KD(s, d)  = H(s ":" d)
 *   A1        = unq(username) ":" unq(realm) ":" passwd                  (§3.4.2)
 *   A1 (-sess)= H(unq(username) ":" unq(realm) ":" passwd) ":" unq(nonce) ":" unq(cnonce)
 *   A2        = Method ":" request-uri                                   (§3.4.3, qop=auth)
 *   A2        = Method ":" request-uri ":" H(entity-body)                (qop=auth-int)
 *
 * Strings are hashed as UTF-8 (RFC 7616 §3.4.5 with charset=UTF-8; SIP header
 * text is UTF-8, RFC 3261 §7.3.1). Nothing here keeps state or logs; thrown
 * errors are programmer mistakes only and never carry a password or an HA1.
 */
import { hash } from 'node:crypto';
import { SwitchboardError } from '../base/errors.ts';

/**
 * The algorithms Switchboard implements, canonical spelling (IANA "HTTP Digest
 * Hash Algorithms" registry, RFC 7616 §6.1). Received names are matched
 * case-insensitively (RFC 7616 §3.3: algorithm is a token) and written back in
 * this form.
 */
export type DigestAlgorithm = 'MD5' | 'MD5-sess' | 'SHA-256' | 'SHA-256-sess';

/** The hash under an algorithm: what a stored HA1 is computed with. */
export type DigestHash = 'MD5' | 'SHA-256';

/** qop-value (RFC 7616 §3.3): "auth" or "auth-int". */
export type DigestQop = 'auth' | 'auth-int';

/** Every implemented algorithm, strongest hash first. */
export const DIGEST_ALGORITHMS: readonly DigestAlgorithm[] = Object.freeze([
  'SHA-256',
  'SHA-256-sess',
  'MD5',
  'MD5-sess',
]);

const NODE_HASH: Readonly<Record<DigestHash, string>> = Object.freeze({
  MD5: 'md5',
  'SHA-256': 'sha256',
});

const HEX_LENGTH: Readonly<Record<DigestHash, number>> = Object.freeze({
  MD5: 32,
  'SHA-256': 64,
});

/**
 * The canonical name of `name`, or undefined when it is not implemented
 * (SHA-512-256, AKAv1-MD5, tokens of the future). An absent algorithm means
 * MD5: RFC 7616 §3.3 "If this is not present, it is assumed to be "MD5"" (RFC
 * 3261 §25.1 has the same default).
 */
export function canonicalAlgorithm(name: string | undefined): DigestAlgorithm | undefined {
  if (name === undefined) return 'MD5';
  switch (name.toLowerCase()) {
    case 'md5':
      return 'MD5';
    case 'md5-sess':
      return 'MD5-sess';
    case 'sha-256':
      return 'SHA-256';
    case 'sha-256-sess':
      return 'SHA-256-sess';
    default:
      return undefined;
  }
}

/** The hash an algorithm is built on: MD5-sess → MD5, SHA-256-sess → SHA-256. */
export function hashOf(algorithm: DigestAlgorithm): DigestHash {
  return algorithm === 'MD5' || algorithm === 'MD5-sess' ? 'MD5' : 'SHA-256';
}

/** True for the session variants, whose A1 mixes in nonce and cnonce (RFC 7616 §3.4.2). */
export function isSessionAlgorithm(algorithm: DigestAlgorithm): boolean {
  return algorithm === 'MD5-sess' || algorithm === 'SHA-256-sess';
}

/** Length of a hex digest under `algorithm`: 32 for MD5, 64 for SHA-256. */
export function digestHexLength(algorithm: DigestAlgorithm): number {
  return HEX_LENGTH[hashOf(algorithm)];
}

/** True when `s` is lowercase hex of the algorithm's digest length. */
export function isDigestHex(algorithm: DigestAlgorithm, s: string): boolean {
  return s.length === digestHexLength(algorithm) && /^[0-9a-f]*$/.test(s);
}

function requireAlgorithm(algorithm: string): DigestAlgorithm {
  const a = canonicalAlgorithm(algorithm);
  if (a === undefined) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `unsupported digest algorithm`);
  }
  return a;
}

/**
 * H(data) as lowercase hex (RFC 7616 §3.4.1). Strings are hashed as UTF-8. One-shot
 * `crypto.hash`: a verification takes three of these, and a Hash object each costs
 * more than the hashing.
 */
export function digestHash(algorithm: string, data: string | Uint8Array): string {
  return hash(NODE_HASH[hashOf(requireAlgorithm(algorithm))], data, 'hex');
}

/**
 * H(A1) for the plain algorithms: H(unq(username) ":" unq(realm) ":" passwd)
 * (RFC 7616 §3.4.2). This is what a server stores instead of the password. For
 * a -sess algorithm it is the inner hash that `ha1Sess` and `digestResponse`
 * build on, computed with the algorithm's hash.
 */
export function ha1(algorithm: string, username: string, realm: string, password: string): string {
  return digestHash(algorithm, `${username}:${realm}:${password}`);
}

/**
 * H(A1) for a -sess algorithm (RFC 7616 §3.4.2): H(ha1 ":" unq(nonce) ":"
 * unq(cnonce)), where `ha1` is the plain H(username:realm:password).
 */
export function ha1Sess(
  algorithm: string,
  ha1Value: string,
  nonce: string,
  cnonce: string,
): string {
  return digestHash(algorithm, `${ha1Value}:${nonce}:${cnonce}`);
}

/**
 * The hashed username of RFC 7616 §3.4.4: H(unq(username) ":" unq(realm)),
 * sent with userhash=true when the challenge asked for it.
 */
export function userhash(algorithm: string, username: string, realm: string): string {
  return digestHash(algorithm, `${username}:${realm}`);
}

/** nc-value = 8LHEX (RFC 7616 §3.4): the nonce count as eight lowercase hex digits. */
export function formatNc(nc: number): string {
  if (!Number.isInteger(nc) || nc < 1 || nc > 0xffffffff) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `nonce count ${nc}`);
  }
  return nc.toString(16).padStart(8, '0');
}

export interface DigestResponseInput {
  /** Any spelling of MD5, MD5-sess, SHA-256, SHA-256-sess. */
  readonly algorithm: string;
  /**
   * The plain H(username:realm:password) (see `ha1`). For a -sess algorithm the
   * session key H(ha1:nonce:cnonce) is derived here from it.
   */
  readonly ha1: string;
  readonly nonce: string;
  /** Nonce count (1..2**32-1); needed with qop. */
  readonly nc?: number;
  /** Client nonce; needed with qop and with -sess. */
  readonly cnonce?: string;
  /** qop; absent for the RFC 2069 form `KD(HA1, nonce ":" HA2)`. */
  readonly qop?: DigestQop;
  /** Request method (RFC 3261 §22.4: the SIP method); '' gives the rspauth A2 of RFC 7616 §3.5. */
  readonly method: string;
  /** digest-uri: the Request-URI as the client wrote it in `uri=` (RFC 3261 §22.4). */
  readonly uri: string;
  /** H(entity-body) (`digestHash(algorithm, body)`), for qop=auth-int. */
  readonly bodyHash?: string;
}

/**
 * The request-digest (RFC 7616 §3.4.1), lowercase hex. Throws
 * SB_ERR_INVALID_ARGUMENT when the input is inconsistent (qop without nc or
 * cnonce, -sess without cnonce, auth-int without bodyHash, an unknown
 * algorithm); the message names the field, never a secret.
 */
export function digestResponse(input: DigestResponseInput): string {
  const algorithm = requireAlgorithm(input.algorithm);
  const { nonce, cnonce, qop } = input;
  let key = input.ha1;
  if (isSessionAlgorithm(algorithm)) {
    // RFC 7616 §3.4.2: for -sess, A1 includes the nonce and cnonce of this exchange.
    if (cnonce === undefined) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `${algorithm} needs a cnonce`);
    }
    key = ha1Sess(algorithm, key, nonce, cnonce);
  }
  let a2 = `${input.method}:${input.uri}`;
  if (qop === 'auth-int') {
    if (input.bodyHash === undefined) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'qop=auth-int needs bodyHash');
    }
    a2 += `:${input.bodyHash}`;
  }
  const ha2 = digestHash(algorithm, a2);
  if (qop === undefined) return digestHash(algorithm, `${key}:${nonce}:${ha2}`);
  if (input.nc === undefined || cnonce === undefined) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `qop=${qop} needs nc and cnonce`);
  }
  return digestHash(algorithm, `${key}:${nonce}:${formatNc(input.nc)}:${cnonce}:${qop}:${ha2}`);
}
