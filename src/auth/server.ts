/**
 * The server side of SIP Digest authentication: challenges (RFC 3261 §22.2 for
 * a UAS, §22.3 for a proxy; RFC 8760 §2.3) and the verification of the
 * credentials that answer them (RFC 7616 §3.4; RFC 3261 §22.4).
 *
 * Passwords are never seen: the server asks `lookup` for the stored H(A1) =
 * H(username ":" realm ":" password) (RFC 7616 §5.2, Storing Passwords). An
 * unknown user is verified against a random dummy HA1, so that it costs the
 * same work and ends in the same result as a wrong password (no user
 * enumeration). Nothing here logs or returns an HA1, a password or a response
 * digest.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Clock } from '../base/clock.ts';
import { SwitchboardError } from '../base/errors.ts';
import { createIdGenerator, type RandomSource } from '../base/ids.ts';
import { silentLogger, type Logger } from '../base/logger.ts';
import {
  createResponse,
  formatChallenge,
  parseCredentials,
  parseUri,
  uriEquals,
  type Credentials,
  type SipRequest,
  type SipResponse,
} from '../sip/index.ts';
import {
  canonicalAlgorithm,
  digestResponse,
  hashOf,
  isDigestHex,
  type DigestAlgorithm,
  type DigestHash,
} from './digest.ts';
import { authHeaderSet, isDigest, quotedParam, tokenParam, type AuthHeaderSet } from './headers.ts';
import { createNonceManager } from './nonce.ts';

/**
 * Finds the stored H(A1) of a user: lowercase hex of H(username ":" realm ":"
 * password) under `algorithm`'s hash (RFC 7616 §3.4.2). For the -sess
 * algorithms it is asked for the plain hash ('MD5' for MD5-sess, 'SHA-256' for
 * SHA-256-sess): the session key is derived from it. Undefined when the user is
 * unknown. A rejection propagates out of `verify` (a store failure is not an
 * authentication failure).
 */
export type Ha1Lookup = (
  username: string,
  realm: string,
  algorithm: DigestHash,
) => Promise<string | undefined> | string | undefined;

export interface DigestServerOptions {
  /** The protection space (RFC 7616 §3.3, realm), compared exactly. */
  readonly realm: string;
  /** Secret for the nonce MAC; at least 16 octets. */
  readonly secret: Uint8Array;
  readonly clock: Clock;
  readonly random: RandomSource;
  /**
   * Algorithms offered, in order of preference: one challenge each (RFC 8760
   * §2.3). Default SHA-256 then MD5.
   */
  readonly algorithms?: readonly DigestAlgorithm[];
  /** How long a nonce is valid (default 300 000 ms); an older one is answered stale=true. */
  readonly nonceTtlMs?: number;
  /** How many nonces' highest nc is remembered (default 40 000: NonceManagerOptions.maxTracked). */
  readonly maxTrackedNonces?: number;
  /** Marks this server's nonces, when several share the secret (NonceManagerOptions.issuer). */
  readonly nonceIssuer?: number;
  /**
   * The issuer to mark a challenge's nonce for, from the request challenged: the worker that
   * will verify the answer (the owner of its Call-ID), when the one challenging may be another.
   * Without it, nonces are marked `nonceIssuer`.
   */
  readonly nonceIssuerOf?: (request: SipRequest) => number;
  readonly lookup: Ha1Lookup;
  /** Told about a stored HA1 that is not a hex digest (the HA1 itself is never logged). */
  readonly logger?: Logger;
}

/** Why verification failed; the reason decides the challenge (stale=true only for 'stale'). */
export type AuthFailureReason = 'missing' | 'stale' | 'invalid';

/**
 * The finer cause, for logs and metrics; never sent on the wire. A wrong
 * password and an unknown user are both 'response'.
 *
 * - no-credentials: no Digest credentials at all (reason 'missing')
 * - realm: Digest credentials only for other realms, RFC 3261 §22.3 (reason 'missing')
 * - malformed: unparseable field, or a directive missing or ill-formed
 * - userhash: userhash=true (RFC 7616 §3.4.4); this server does not offer it
 * - algorithm: an algorithm this server did not offer
 * - qop: qop absent or other than "auth"
 * - uri: digest-uri does not match the Request-URI (RFC 7616 §3.4.6)
 * - nonce: a nonce this server did not issue for this realm
 * - response: the request-digest does not verify
 * - expired: right digest, nonce older than the TTL (reason 'stale')
 * - replay: right digest, nc not above the highest seen with this nonce (reason 'stale')
 * - evicted: right digest, the nonce's nc history was evicted (reason 'stale')
 */
export type AuthFailureDetail =
  | 'no-credentials'
  | 'realm'
  | 'malformed'
  | 'userhash'
  | 'algorithm'
  | 'qop'
  | 'uri'
  | 'nonce'
  | 'response'
  | 'expired'
  | 'replay'
  | 'evicted';

export interface AuthSuccess {
  readonly ok: true;
  /** The username of the credentials (RFC 7616 §3.4, username). */
  readonly username: string;
  readonly realm: string;
  readonly algorithm: DigestAlgorithm;
}

export interface AuthFailure {
  readonly ok: false;
  readonly reason: AuthFailureReason;
  readonly detail: AuthFailureDetail;
  /** 401 (UAS) or 407 (proxy). */
  readonly status: 401 | 407;
  /** The header the challenge values go in. */
  readonly header: 'WWW-Authenticate' | 'Proxy-Authenticate';
  /** Fresh challenge values, one per offered algorithm, most preferred first. */
  readonly challenge: readonly string[];
}

export type AuthResult = AuthSuccess | AuthFailure;

export interface VerifyOptions {
  /** true: read Proxy-Authorization and answer 407 (RFC 3261 §22.3); false: Authorization and 401. */
  readonly proxy: boolean;
}

export interface ChallengeOptions {
  readonly proxy: boolean;
  /** stale=true (RFC 7616 §3.3), for a request whose digest was right but nonce old; ignored with `values`. */
  readonly stale?: boolean;
  /** The To tag to add (RFC 3261 §8.2.6.2); a random one by default. */
  readonly toTag?: string;
  /** Challenge values to send, e.g. a failed AuthResult's `challenge`; fresh ones by default. */
  readonly values?: readonly string[];
}

export interface DigestServer {
  readonly realm: string;
  /** The algorithms offered, most preferred first. */
  readonly algorithms: readonly DigestAlgorithm[];
  /**
   * One challenge value per offered algorithm, most preferred first (RFC 8760
   * §2.3), all with the same fresh nonce and qop="auth"; the nonce is marked for
   * `nonceIssuerOf(request)` when both are given.
   */
  challengeHeaders(stale?: boolean, request?: SipRequest): string[];
  /** A 401 (or 407 with `proxy`) response to `request` carrying the challenges (RFC 3261 §22.2, §22.3). */
  challenge(request: SipRequest, options: ChallengeOptions): SipResponse;
  /** Verifies the request's credentials for this realm. Never throws on wire input. */
  verify(request: SipRequest, options: VerifyOptions): Promise<AuthResult>;
  /**
   * What `verify` answers a request that carries no credentials at all (neither
   * Authorization nor Proxy-Authorization), found without waiting for anything, so that a
   * server can challenge it before it keeps any state (RFC 3261 §8.2.7); undefined for a
   * request with credentials of any realm, which only `verify` can judge.
   */
  challengeMissing(request: SipRequest, options: VerifyOptions): AuthFailure | undefined;
}

const DEFAULT_ALGORITHMS: readonly DigestAlgorithm[] = Object.freeze(['SHA-256', 'MD5']);

/**
 * The request carries credentials of some realm (Authorization or Proxy-Authorization): only
 * `verify` can judge it. Without any, its answer is a challenge (`challengeMissing`).
 */
export function carriesCredentials(request: SipRequest): boolean {
  return request.has('Authorization') || request.has('Proxy-Authorization');
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

/**
 * RFC 7616 §3.4.6: "The authenticating server MUST assure that the resource
 * designated by the "uri" parameter is the same as the resource specified in
 * the Request-Line"; in SIP the digest-uri is the Request-URI (RFC 3261 §22.4).
 * Equal text, or URIs equal by RFC 3261 §19.1.4.
 */
function uriMatches(digestUri: string, request: SipRequest): boolean {
  if (digestUri === request.uriText) return true;
  const a = parseUri(digestUri);
  if (!a.ok) return false;
  const b = parseUri(request.uriText);
  return b.ok && uriEquals(a.value, b.value);
}

function checkOptions(o: DigestServerOptions): readonly DigestAlgorithm[] {
  if (typeof o.realm !== 'string' || o.realm === '' || /[\r\n]/.test(o.realm)) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'realm must be a non-empty line');
  }
  if (typeof o.lookup !== 'function') {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'lookup must be a function');
  }
  const given = o.algorithms ?? DEFAULT_ALGORITHMS;
  const out: DigestAlgorithm[] = [];
  for (const name of given) {
    const a = canonicalAlgorithm(name);
    if (a === undefined) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `digest algorithm ${String(name)}`);
    }
    if (!out.includes(a)) out.push(a);
  }
  if (out.length === 0) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'at least one digest algorithm');
  }
  return Object.freeze(out);
}

export function createDigestServer(options: DigestServerOptions): DigestServer {
  const algorithms = checkOptions(options);
  const { realm, lookup, random } = options;
  const logger = options.logger ?? silentLogger;
  const nonces = createNonceManager({
    secret: options.secret,
    clock: options.clock,
    random,
    ttlMs: options.nonceTtlMs ?? 300_000,
    ...(options.maxTrackedNonces !== undefined ? { maxTracked: options.maxTrackedNonces } : {}),
    ...(options.nonceIssuer !== undefined ? { issuer: options.nonceIssuer } : {}),
  });
  const ids = createIdGenerator(random);

  // Per-instance random HA1s for unknown users: the digest is computed against
  // them exactly as against a real one, and can only fail.
  const dummy: Record<DigestHash, string> = { MD5: '', 'SHA-256': '' };
  for (const [h, len] of [
    ['MD5', 16],
    ['SHA-256', 32],
  ] as const) {
    const b = new Uint8Array(len);
    random.fill(b);
    dummy[h] = hex(b);
  }

  /**
   * What a retransmission shares with its original and no other request does (RFC 3261
   * §17.2.3: the branch and sent-by; the Call-ID and CSeq as well, for RFC 2543 peers whose
   * branch is not unique), so that both are challenged with one nonce (`NonceManager.issue`).
   */
  function requestIdentity(request: SipRequest): string {
    let via = '';
    try {
      const top = request.topVia;
      via = `${top.branch ?? ''}\u0000${top.host}:${top.port ?? ''}`;
    } catch {
      // No usable Via: the other fields still tell requests apart.
    }
    return `${request.callId}\u0000${request.cseq.seq}\u0000${request.method}\u0000${via}\u0000${realm}`;
  }

  /** A challenge per algorithm with its nonce written by the general formatter. */
  function formatChallenges(nonce: string, stale: boolean): string[] {
    return algorithms.map((algorithm) => {
      const params = [
        quotedParam('realm', realm),
        quotedParam('nonce', nonce),
        tokenParam('algorithm', algorithm),
        // RFC 7616 §3.3: qop "MUST be used by all implementations compliant with this version".
        quotedParam('qop', 'auth'),
      ];
      if (stale) params.push(tokenParam('stale', 'true'));
      return formatChallenge({ scheme: 'Digest', params, stale, userhash: false });
    });
  }

  /**
   * The challenges around their nonce, formatted once: only the nonce differs from one
   * challenge to the next, and formatting the realm, algorithm and qop for each (quoting
   * them on the way) cost about 7 µs per challenge.
   */
  const splitAt =
    (nonce: string) =>
    (v: string): readonly [string, string] => {
      const at = v.indexOf(nonce);
      return [v.slice(0, at), v.slice(at + nonce.length)];
    };
  const PLACEHOLDER = 'NONCE-PLACEHOLDER-0123456789_abcdefghijklmnop';
  const freshAround = formatChallenges(PLACEHOLDER, false).map(splitAt(PLACEHOLDER));
  const staleAround = formatChallenges(PLACEHOLDER, true).map(splitAt(PLACEHOLDER));

  function challengeHeaders(stale = false, request?: SipRequest): string[] {
    const issuerOf = options.nonceIssuerOf;
    const nonce = nonces.issue(
      realm,
      request !== undefined && issuerOf !== undefined ? issuerOf(request) : undefined,
      // A request that carries credentials and still gets a challenge (a wrong response, a
      // stale nonce, a replayed count) gets a random nonce: one derived from the request could
      // be the nonce it already carries (a client that kept its CSeq and branch, a replay), and
      // the client would loop on it.
      request === undefined || carriesCredentials(request) ? undefined : requestIdentity(request),
    );
    // A nonce is base64url (nonce.ts), which a quoted-string holds as it is.
    const around = stale ? staleAround : freshAround;
    const out = new Array<string>(around.length);
    for (let i = 0; i < around.length; i++) out[i] = around[i]![0] + nonce + around[i]![1];
    return out;
  }

  function failure(
    request: SipRequest,
    hs: AuthHeaderSet,
    reason: AuthFailureReason,
    detail: AuthFailureDetail,
  ): AuthFailure {
    return {
      ok: false,
      reason,
      detail,
      status: hs.status,
      header: hs.challenge,
      challenge: challengeHeaders(reason === 'stale', request),
    };
  }

  /** The stored HA1 in lowercase, or undefined when absent or not a digest of `hash`. */
  function storedHa1(value: unknown, username: string, hash: DigestHash): string | undefined {
    if (value === undefined) return undefined;
    const v = typeof value === 'string' ? value.toLowerCase() : '';
    if (isDigestHex(hash, v)) return v;
    logger.warn({ realm, username, algorithm: hash }, 'stored HA1 is not a hex digest; ignored');
    return undefined;
  }

  /**
   * The Digest credentials for this realm among the request's fields (RFC 3261
   * §22.3: a request may carry one per realm), or why there are none.
   */
  function findCredentials(
    request: SipRequest,
    hs: AuthHeaderSet,
  ): Credentials | 'no-credentials' | 'realm' | 'malformed' {
    let sawDigest = false;
    let sawMalformed = false;
    for (const raw of request.getRawAll(hs.credentials)) {
      const r = parseCredentials(raw);
      if (!r.ok) {
        sawMalformed = true;
        continue;
      }
      if (!isDigest(r.value.scheme)) continue;
      if (r.value.realm === realm) return r.value;
      sawDigest = true;
    }
    return sawMalformed ? 'malformed' : sawDigest ? 'realm' : 'no-credentials';
  }

  function challengeMissing(request: SipRequest, options: VerifyOptions): AuthFailure | undefined {
    if (carriesCredentials(request)) return undefined;
    // As `verify` finds it: no field of this realm's credentials header at all.
    return failure(request, authHeaderSet(options.proxy), 'missing', 'no-credentials');
  }

  async function verify(request: SipRequest, options: VerifyOptions): Promise<AuthResult> {
    const hs = authHeaderSet(options.proxy);
    const found = findCredentials(request, hs);
    if (typeof found === 'string') {
      return failure(request, hs, found === 'malformed' ? 'invalid' : 'missing', found);
    }
    const { username, nonce, uri, cnonce, nc } = found;
    if (
      username === undefined ||
      nonce === undefined ||
      uri === undefined ||
      found.response === undefined
    ) {
      return failure(request, hs, 'invalid', 'malformed');
    }
    // RFC 7616 §3.4.4: a hashed username could only be resolved by hashing
    // every user of the realm; this server does not offer userhash.
    if (found.userhash) return failure(request, hs, 'invalid', 'userhash');
    // RFC 7616 §3.4: "The values of the opaque and algorithm fields must be
    // those supplied in the WWW-Authenticate response header field"; absent
    // means MD5 (§3.3).
    const algorithm = canonicalAlgorithm(found.algorithm);
    if (algorithm === undefined || !algorithms.includes(algorithm)) {
      return failure(request, hs, 'invalid', 'algorithm');
    }
    if (found.qop === undefined || found.qop.toLowerCase() !== 'auth') {
      return failure(request, hs, 'invalid', 'qop');
    }
    // RFC 7616 §3.4 (cnonce, nc): both accompany a qop; nc counts from 00000001.
    if (nc === undefined || nc < 1 || cnonce === undefined || cnonce === '') {
      return failure(request, hs, 'invalid', 'malformed');
    }
    const response = found.response.toLowerCase();
    if (!isDigestHex(algorithm, response)) return failure(request, hs, 'invalid', 'malformed');
    if (!uriMatches(uri, request)) return failure(request, hs, 'invalid', 'uri');
    const nonceStatus = nonces.check(nonce, realm);
    if (nonceStatus === 'invalid') return failure(request, hs, 'invalid', 'nonce');

    // From here the work is the same whether the user exists or not.
    const hash = hashOf(algorithm);
    const stored = storedHa1(await lookup(username, realm, hash), username, hash);
    const expected = digestResponse({
      algorithm,
      ha1: stored ?? dummy[hash],
      nonce,
      nc,
      cnonce,
      qop: 'auth',
      method: request.method,
      uri,
    });
    const same = timingSafeEqual(Buffer.from(expected, 'latin1'), Buffer.from(response, 'latin1'));
    if (!same || stored === undefined) return failure(request, hs, 'invalid', 'response');

    // RFC 2617 §3.2.1, stale: "The server should only set stale to TRUE if it
    // receives a request for which the nonce is invalid but with a valid digest
    // for that nonce (indicating that the client knows the correct
    // username/password)" (RFC 7616 §3.3 keeps the rule). A reused nc is
    // answered the same way: the digest
    // shows knowledge of the password, and a client whose requests crossed
    // recovers with a fresh nonce, while a replayer gains nothing from it.
    if (nonceStatus === 'stale') return failure(request, hs, 'stale', 'expired');
    const ncStatus = nonces.acceptNc(nonce, nc);
    if (ncStatus === 'replay') return failure(request, hs, 'stale', 'replay');
    if (ncStatus === 'stale') return failure(request, hs, 'stale', 'evicted');
    return { ok: true, username, realm, algorithm };
  }

  return {
    realm,
    algorithms,
    challengeHeaders,
    challenge(request, o) {
      const hs = authHeaderSet(o.proxy);
      const values = o.values ?? challengeHeaders(o.stale ?? false, request);
      return createResponse(request, hs.status, {
        toTag: o.toTag ?? ids.tag(),
        headers: values.map((v) => [hs.challenge, v] as const),
      });
    },
    verify,
    challengeMissing,
  };
}
