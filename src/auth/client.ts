/**
 * The client side of SIP Digest authentication (RFC 3261 §22.2, §22.3; RFC
 * 7616 §3.4; RFC 8760 §2.4): answers a 401/407 by adding credentials to a copy
 * of the request. The caller re-sends the copy as a new transaction, with a new
 * Via branch and the CSeq incremented (RFC 3261 §22.2, §8.1.3.5).
 *
 * Choice of challenge (RFC 8760 §2.4): the UAC "SHOULD use the topmost header
 * field that it supports, unless a local policy dictates otherwise", and
 * ignores challenges it does not understand. The local policy here ranks the
 * supported algorithms by the client's preference (SHA-256 before MD5 by
 * default) and only breaks ties by position, because challenges are not
 * integrity-protected and an on-path attacker could move MD5 to the top
 * (RFC 8760 §3, downgrade).
 *
 * No endless loops: credentials that come back with a challenge for the same
 * realm without stale=true were refused (RFC 7616 §3.3, stale: "If stale is
 * false ... the username and/or password are invalid"), so the client gives up;
 * after stale=true it retries once with the new nonce, and gives up if that
 * nonce is called stale as well.
 *
 * The password stays inside the closure: it is not a property of the client,
 * and no error, log or header carries it or an HA1.
 */
import { SwitchboardError } from '../base/errors.ts';
import type { RandomSource } from '../base/ids.ts';
import {
  formatCredentials,
  parseChallenges,
  parseCredentials,
  type Challenge,
  type Credentials,
  type Param,
  type SipRequest,
  type SipResponse,
} from '../sip/index.ts';
import {
  canonicalAlgorithm,
  digestHash,
  digestResponse,
  DIGEST_ALGORITHMS,
  ha1,
  isSessionAlgorithm,
  userhash,
  formatNc,
  type DigestAlgorithm,
  type DigestQop,
} from './digest.ts';
import { authHeaderSet, isDigest, quotedParam, tokenParam, type AuthHeaderSet } from './headers.ts';
import { BoundedLru } from './lru.ts';

export interface DigestClientOptions {
  readonly username: string;
  readonly password: string;
  /** Source of the cnonce (RFC 7616 §3.4: an opaque quoted string chosen by the client). */
  readonly random: RandomSource;
  /**
   * The algorithms this client answers, most preferred first. Default:
   * SHA-256, SHA-256-sess, MD5, MD5-sess.
   */
  readonly algorithms?: readonly DigestAlgorithm[];
  /** How many nonces the client keeps counts and marks for (default 256). */
  readonly maxTrackedNonces?: number;
}

export interface DigestClient {
  /**
   * For a 401 (WWW-Authenticate → Authorization) or a 407 (Proxy-Authenticate
   * → Proxy-Authorization): a copy of `request` with credentials for the best
   * usable challenge, replacing earlier credentials for that realm. Undefined
   * when no challenge is usable (unknown algorithms only, not Digest, ...) or
   * when the credentials `request` carried for that realm were refused.
   */
  authorize(request: SipRequest, response: SipResponse): SipRequest | undefined;
  /**
   * Adds credentials for the challenges answered before, with the next nonce
   * count (RFC 3261 §22.2: UAs "SHOULD cache the credentials for a given value
   * of the To header field and "realm" and attempt to re-use these values on
   * the next request for that destination"); `request` unchanged when there
   * are none.
   */
  preauthorize(request: SipRequest): SipRequest;
}

/** A challenge the client can answer. */
interface Usable {
  readonly proxy: boolean;
  readonly realm: string;
  readonly nonce: string;
  readonly opaque: string | undefined;
  readonly algorithm: DigestAlgorithm;
  /** The algorithm as the server wrote it, echoed back (RFC 7616 §3.4); undefined when absent. */
  readonly algorithmParam: string | undefined;
  readonly qop: DigestQop | undefined;
  readonly userhash: boolean;
  readonly stale: boolean;
  readonly rank: number;
  readonly index: number;
}

function hex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function checkOptions(o: DigestClientOptions): readonly DigestAlgorithm[] {
  if (typeof o.username !== 'string' || /[\r\n]/.test(o.username)) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'username must be a single line');
  }
  if (typeof o.password !== 'string') {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'password must be a string');
  }
  if (typeof o.random?.fill !== 'function') {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'random must be a RandomSource');
  }
  const out: DigestAlgorithm[] = [];
  for (const name of o.algorithms ?? DIGEST_ALGORITHMS) {
    const a = canonicalAlgorithm(name);
    if (a === undefined) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `digest algorithm ${String(name)}`);
    }
    if (!out.includes(a)) out.push(a);
  }
  if (out.length === 0) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'at least one digest algorithm');
  }
  return out;
}

/** The Digest credentials already in the request, in its header of this kind. */
function priorCredentials(request: SipRequest, hs: AuthHeaderSet): Credentials[] {
  const out: Credentials[] = [];
  for (const raw of request.getRawAll(hs.credentials)) {
    const r = parseCredentials(raw);
    if (r.ok && isDigest(r.value.scheme)) out.push(r.value);
  }
  return out;
}

export function createDigestClient(options: DigestClientOptions): DigestClient {
  const preferences = checkOptions(options);
  const { username, password, random } = options;
  const cap = options.maxTrackedNonces ?? 256;
  /** Last nonce count used per nonce (RFC 7616 §3.4, nc). */
  const counts = new BoundedLru<string, number>(cap);
  /** Nonces whose credentials were refused without stale=true. */
  const failed = new BoundedLru<string, true>(cap);
  /** Nonces received with stale=true and answered once. */
  const staleAnswered = new BoundedLru<string, true>(cap);
  /** The challenge last answered per kind and realm, for `preauthorize`. */
  const answered = new BoundedLru<string, Usable>(16);

  /** The challenge as something to answer, or undefined when it cannot be answered. */
  function usable(ch: Challenge, proxy: boolean, index: number): Usable | undefined {
    if (!isDigest(ch.scheme) || ch.realm === undefined || ch.nonce === undefined) return undefined;
    const algorithm = canonicalAlgorithm(ch.algorithm);
    if (algorithm === undefined) return undefined; // RFC 8760 §2.4: skip what is not understood
    const rank = preferences.indexOf(algorithm);
    if (rank < 0) return undefined;
    let qop: DigestQop | undefined;
    if (ch.qop !== undefined) {
      const offered = ch.qop.map((q) => q.toLowerCase());
      // RFC 7616 §3.4: the client picks one of the qop-values offered.
      if (offered.includes('auth')) qop = 'auth';
      else if (offered.includes('auth-int')) qop = 'auth-int';
      else return undefined;
    } else if (isSessionAlgorithm(algorithm)) {
      // Without a qop there is no place for the cnonce that -sess hashes in
      // (RFC 7616 §3.4.2), so the server could not check the answer.
      return undefined;
    }
    return {
      proxy,
      realm: ch.realm,
      nonce: ch.nonce,
      opaque: ch.opaque,
      algorithm,
      algorithmParam: ch.algorithm,
      qop,
      userhash: ch.userhash,
      stale: ch.stale,
      rank,
      index,
    };
  }

  /** The credentials value answering `ch` for `request`, with the next nc for its nonce. */
  function credentials(request: SipRequest, ch: Usable): string | undefined {
    const nc = (counts.get(ch.nonce) ?? 0) + 1;
    if (nc > 0xffffffff) return undefined;
    counts.set(ch.nonce, nc);
    const cnonceBytes = new Uint8Array(16);
    random.fill(cnonceBytes);
    const cnonce = hex(cnonceBytes);
    const uri = request.uriText; // RFC 3261 §22.4: the digest-uri is the Request-URI
    const response = digestResponse({
      algorithm: ch.algorithm,
      ha1: ha1(ch.algorithm, username, ch.realm, password),
      nonce: ch.nonce,
      nc,
      cnonce,
      ...(ch.qop !== undefined ? { qop: ch.qop } : {}),
      method: request.method,
      uri,
      ...(ch.qop === 'auth-int' ? { bodyHash: digestHash(ch.algorithm, request.body) } : {}),
    });
    const params: Param[] = [
      // RFC 7616 §3.4.4: with userhash=true the username is H(username ":" realm).
      quotedParam('username', ch.userhash ? userhash(ch.algorithm, username, ch.realm) : username),
      quotedParam('realm', ch.realm),
      quotedParam('nonce', ch.nonce),
      quotedParam('uri', uri),
      quotedParam('response', response),
    ];
    // RFC 7616 §3.4: "The values of the opaque and algorithm fields must be
    // those supplied in the WWW-Authenticate response header field".
    if (ch.algorithmParam !== undefined) params.push(tokenParam('algorithm', ch.algorithmParam));
    if (ch.qop !== undefined) {
      params.push(quotedParam('cnonce', cnonce));
      params.push(tokenParam('qop', ch.qop));
      params.push(tokenParam('nc', formatNc(nc)));
    }
    if (ch.opaque !== undefined) params.push(quotedParam('opaque', ch.opaque));
    if (ch.userhash) params.push(tokenParam('userhash', 'true'));
    return formatCredentials({ scheme: 'Digest', params, userhash: ch.userhash });
  }

  /** `request` with its credentials for ch.realm (of ch's kind) replaced by `value`. */
  function withCredentials(request: SipRequest, ch: Usable, value: string): SipRequest {
    const hs = authHeaderSet(ch.proxy);
    const raws = request.getRawAll(hs.credentials);
    let out = raws.length === 0 ? request : request.remove(hs.credentials);
    for (const raw of raws) {
      const r = parseCredentials(raw);
      // RFC 3261 §22.3: credentials for other realms (other proxies) stay.
      if (r.ok && isDigest(r.value.scheme) && r.value.realm === ch.realm) continue;
      out = out.append(hs.credentials, raw);
    }
    return out.append(hs.credentials, value);
  }

  function answer(request: SipRequest, ch: Usable): SipRequest | undefined {
    const value = credentials(request, ch);
    if (value === undefined) return undefined;
    answered.set(`${ch.proxy ? 'proxy' : 'www'} ${ch.realm}`, ch);
    return withCredentials(request, ch, value);
  }

  return {
    authorize(request, response) {
      if (response.status !== 401 && response.status !== 407) return undefined;
      const proxy = response.status === 407;
      const hs = authHeaderSet(proxy);
      const prior = priorCredentials(request, hs);
      let best: Usable | undefined;
      let index = 0;
      for (const raw of response.getRawAll(hs.challenge)) {
        const parsed = parseChallenges(raw);
        if (!parsed.ok) continue; // a malformed field does not spoil the others
        for (const challenge of parsed.value) {
          const ch = usable(challenge, proxy, index++);
          if (ch === undefined || failed.has(ch.nonce)) continue;
          const sent = prior.find((c) => c.realm === ch.realm);
          if (sent !== undefined) {
            if (!ch.stale) {
              // Refused: the password is wrong for this realm. Never retry it.
              if (sent.nonce !== undefined) failed.set(sent.nonce, true);
              continue;
            }
            // stale=true a second time in a row: give up rather than loop.
            if (sent.nonce !== undefined && staleAnswered.has(sent.nonce)) continue;
          }
          if (best === undefined || ch.rank < best.rank) best = ch;
        }
      }
      if (best === undefined) return undefined;
      if (best.stale) staleAnswered.set(best.nonce, true);
      return answer(request, best);
    },

    preauthorize(request) {
      let out = request;
      for (const [, ch] of [...answered.entries()]) {
        if (failed.has(ch.nonce)) continue;
        out = answer(out, ch) ?? out;
      }
      return out;
    },
  };
}
