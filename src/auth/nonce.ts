/**
 * Server nonces bound to a secret, a realm and a time, and nonce-count replay
 * protection.
 *
 * RFC 7616 §3.3 (nonce) suggests a nonce of the form
 * `time-stamp H(time-stamp ":" ETag ":" secret-data)`, so that the server can
 * recompute it instead of remembering it and "reject the request if ... the
 * time-stamp value is not recent enough". Here:
 *
 *   nonce = base64url( ts(8, big-endian wall-clock ms) | rand(12) | mac(16) )
 *   mac   = first 16 octets of HMAC-SHA256(secret, ts | rand | UTF-8(realm))
 *
 * `rand` is random, or for a challenge to a given request 12 octets mixed from the request's
 * identity (`mix96`) with `ts` rounded down to the second (see `issue`).
 *
 * The timestamp and random part have fixed lengths, so the MAC input is
 * unambiguous; truncating HMAC-SHA256 to half its length is allowed by RFC
 * 2104 §5. The HMAC is computed as RFC 2104 §2 defines it, from the two padded
 * key blocks prepared once (see `createHmacSha256`). A nonce is 48 characters of base64url, which never needs quoting
 * inside the quoted-string (RFC 7616 §3.3: "the double-quote character is not
 * allowed"). Issuing needs no state; several servers sharing the secret accept
 * each other's nonces.
 *
 * Nonce counts (RFC 7616 §3.4, nc): "The purpose of this parameter is to allow
 * the server to detect request replays by maintaining its own copy of this
 * count -- if the same nc parameter value is seen twice, then the request is a
 * replay." The manager remembers, per nonce, the highest nc seen and rejects
 * any count not above it (RFC 7616 §5.5, Replay Attacks).
 * The table is a bounded LRU. A nonce whose history was evicted cannot be
 * checked any more, so every nonce not in the table that was issued before the
 * newest evicted one, or was evicted itself, is answered as stale: the client
 * fetches a fresh nonce (RFC 7616 §3.3, stale) instead of a replay getting through.
 */
import { hash, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../base/clock.ts';
import { SwitchboardError } from '../base/errors.ts';
import type { RandomSource } from '../base/ids.ts';
import { BoundedLru } from './lru.ts';

/** What `check` makes of a nonce. */
export type NonceStatus = 'valid' | 'stale' | 'invalid';

/** What `acceptNc` makes of a nonce count. */
export type NcStatus = 'ok' | 'replay' | 'stale';

export interface NonceManagerOptions {
  /** Server secret for the MAC; at least 16 octets. Copied, so later changes do not apply. */
  readonly secret: Uint8Array;
  /** Source of the timestamp (`wallNow`, so that servers sharing the secret agree). */
  readonly clock: Clock;
  /** How long a nonce stays valid, in ms; older ones are stale. */
  readonly ttlMs: number;
  readonly random: RandomSource;
  /**
   * Most nonces whose highest nc is remembered (default 40 000). A nonce that fell out is
   * answered stale, so the table should hold the nonces answered within the time a client
   * may take to answer a challenge, retransmissions included (RFC 3261 §17.1.2.2: 0.5, 1.5,
   * 3.5 s ...): about 4 s at 10,000 answered challenges per second and process.
   */
  readonly maxTracked?: number;
  /**
   * Several servers (the worker processes of one server) share the secret, so each accepts the
   * others' nonces, but each remembers only the nonce counts it saw itself. With `issuer`
   * (0..255) set, this one marks the nonces it issues (the first octet of the random part,
   * covered by the MAC) and answers a count for another issuer's nonce as 'stale': the client
   * fetches a nonce from here, whose counts are kept here (RFC 7616 §3.4, §5.5), instead of a
   * replay passing in a process that never saw the original.
   */
  readonly issuer?: number;
}

export interface NonceManager {
  /**
   * A fresh nonce for `realm`, marked for `issuer` when given (the worker that will see the
   * request that answers it), else for this manager's own `issuer`.
   *
   * With `request` (a string that identifies the request being challenged: its Call-ID, CSeq
   * and branch), the nonce is derived from it and from the current second instead of random
   * octets, so that a retransmission challenged again within the second gets the very same
   * challenge, whichever process reads it. A stateless UAS must answer a retransmission as it
   * answered the original (RFC 3261 §8.2.7 asks it of the To tag); a client that already
   * moved on takes an identical response for a retransmission (§17.1.2.2) where a second,
   * different challenge would look like a new answer. The MAC still binds the nonce to the
   * secret, the realm and the time.
   */
  issue(realm: string, issuer?: number, request?: string): string;
  /**
   * 'valid' when the MAC matches this realm and the nonce is younger than the
   * TTL; 'stale' when the MAC matches but it is too old (or dated more than a
   * TTL into the future); 'invalid' otherwise. Never throws.
   */
  check(nonce: string, realm: string): NonceStatus;
  /**
   * Records `nc` for a nonce that `check` found valid, once the request's
   * digest has been verified (it does not check the MAC again: calling it
   * first would let anyone burn a client's counts). 'ok' when nc is above every count seen with this
   * nonce; 'replay' when it is not (or is outside 1..2**32-1); 'stale' when the
   * nonce's history may have been evicted. Never throws.
   */
  acceptNc(nonce: string, nc: number): NcStatus;
}

const TS_LEN = 8;
const RAND_LEN = 12;
const MAC_LEN = 16;
const RAW_LEN = TS_LEN + RAND_LEN + MAC_LEN;
/** base64url without padding of RAW_LEN (36) octets. */
const NONCE_CHARS = (RAW_LEN / 3) * 4;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const MIN_SECRET = 16;
/**
 * The default of `maxTracked`. Measured with sipp over two workers at 21,000 registrations/s
 * (overloaded: 100,000-135,000 retransmissions per 105,000 registrations): with 10,000, 6,117-10,002
 * registrations failed on a stale 401; with 40,000, 81-186. Each entry costs about 170 bytes.
 */
const DEFAULT_MAX_TRACKED = 40_000;
/**
 * How many nonces issued here `check` remembers, to skip their MAC: a cache, whose misses
 * only cost the MAC (the answer to a challenge comes within milliseconds, or to another worker).
 */
const ISSUED_CACHE = 10_000;

interface Decoded {
  readonly ts: number;
  readonly body: Buffer;
  readonly mac: Buffer;
}

function decode(nonce: string): Decoded | undefined {
  if (nonce.length !== NONCE_CHARS || !BASE64URL.test(nonce)) return undefined;
  const raw = Buffer.from(nonce, 'base64url');
  if (raw.length !== RAW_LEN) return undefined;
  const ts = raw.readUInt32BE(0) * 0x1_0000_0000 + raw.readUInt32BE(4);
  return {
    ts,
    body: raw.subarray(0, TS_LEN + RAND_LEN),
    mac: raw.subarray(TS_LEN + RAND_LEN),
  };
}

/** SHA-256's block size B (RFC 2104 §2), in octets. */
const SHA256_BLOCK = 64;

/**
 * HMAC-SHA256 of `prefix | UTF-8(text)`, truncated to MAC_LEN octets and written to
 * `out` at `offset`. RFC 2104 §2: H(K XOR opad, H(K XOR ipad, text)), with both padded
 * keys computed once here and each H one `crypto.hash` call: an Hmac object per nonce
 * (createHmac) costs twice as much. Digests are taken as 'binary' (latin1) strings, which map
 * octet for octet to the buffers they are written into.
 */
function createHmacSha256(
  secret: Buffer,
): (prefix: Uint8Array, text: string, out: Buffer, offset: number) => void {
  // RFC 2104 §2: "Applications that use keys longer than B bytes will first hash the key".
  const key =
    secret.length > SHA256_BLOCK ? Buffer.from(hash('sha256', secret, 'binary'), 'latin1') : secret;
  const outer = Buffer.alloc(SHA256_BLOCK + 32, 0x5c);
  let inner = Buffer.alloc(SHA256_BLOCK + 128);
  for (let i = 0; i < key.length; i++) outer[i]! ^= key[i]!;
  const ipad = Buffer.alloc(SHA256_BLOCK, 0x36);
  for (let i = 0; i < key.length; i++) ipad[i]! ^= key[i]!;
  ipad.copy(inner);
  return (prefix, text, out, offset) => {
    // Room for the worst case of 3 UTF-8 octets per UTF-16 unit.
    const need = SHA256_BLOCK + prefix.length + text.length * 3;
    if (inner.length < need) {
      inner = Buffer.alloc(need);
      ipad.copy(inner);
    }
    inner.set(prefix, SHA256_BLOCK);
    const n = inner.write(text, SHA256_BLOCK + prefix.length, 'utf8');
    const end = SHA256_BLOCK + prefix.length + n;
    outer.write(hash('sha256', inner.subarray(0, end), 'binary'), SHA256_BLOCK, 'latin1');
    out.write(hash('sha256', outer, 'binary').slice(0, MAC_LEN), offset, 'latin1');
  };
}

/**
 * Twelve octets from a string, written to `out` at `offset`: three 32-bit FNV-1a-style lanes
 * with different primes and seeds, each finished by a murmur3 mix. Not a cryptographic hash:
 * it only has to tell one request's identity from another's (the MAC protects the nonce), and
 * a `crypto.hash` call cost 4.5 µs per challenge against about 1 µs here.
 */
function mix96(s: string, out: Buffer, offset: number): void {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  let c = 0x85ebca6b;
  for (let i = 0; i < s.length; i++) {
    const x = s.charCodeAt(i);
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ x, 0x5bd1e995);
    c = Math.imul(c ^ x, 0x27d4eb2f);
  }
  out.writeUInt32BE(fmix(a) >>> 0, offset);
  out.writeUInt32BE(fmix(b ^ a) >>> 0, offset + 4);
  out.writeUInt32BE(fmix(c ^ b) >>> 0, offset + 8);
}

/** murmur3's 32-bit finalizer: every input bit reaches every output bit. */
function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** An issuer is one octet of the nonce (0..255), or absent. */
function checkIssuer(issuer: number | undefined): void {
  if (issuer !== undefined && !(Number.isInteger(issuer) && issuer >= 0 && issuer <= 255)) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `nonce issuer ${issuer} not in 0..255`);
  }
}

export function createNonceManager(options: NonceManagerOptions): NonceManager {
  const { clock, random, ttlMs } = options;
  if (!(options.secret instanceof Uint8Array) || options.secret.length < MIN_SECRET) {
    throw new SwitchboardError(
      'SB_ERR_INVALID_ARGUMENT',
      `nonce secret must be at least ${MIN_SECRET} octets`,
    );
  }
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'nonce ttlMs must be positive');
  }
  const issuer = options.issuer;
  checkIssuer(issuer);
  const mac = createHmacSha256(Buffer.from(options.secret));
  /** Where `check` puts the MAC it expects. */
  const expected = Buffer.alloc(MAC_LEN);
  const maxTracked = options.maxTracked ?? DEFAULT_MAX_TRACKED;
  /** The newest issue time among nonces evicted from `seen`. */
  let evictedThrough = -Infinity;
  /**
   * The evicted nonces issued at `evictedThrough` exactly, or undefined when there were more
   * than `maxTracked` of them. A challenge's nonce is dated to the second (see `issue`), so
   * thousands share one time at a busy registrar; were every nonce of the newest evicted one's
   * second stale, then once the table turned over within about a second (a table of 10,000 at
   * 10,000 registrations/s), the answers to the last few milliseconds' challenges would all be
   * refused as stale, and each client would start over. Measured with sipp at 18,000 and
   * 19,000 registrations/s over two workers: 7,534 and 8,117 of 95,000 registrations failed on
   * such a 401 (and the retransmissions that followed took the server over its limit) when
   * the whole second was stale; none since. Nonces of that second that were never evicted are
   * fine; older ones are stale as before.
   */
  let evictedAtBoundary: Set<string> | undefined = new Set();
  const seen = new BoundedLru<string, { nc: number; ts: number }>(maxTracked, (nonce, entry) => {
    if (entry.ts > evictedThrough) {
      evictedThrough = entry.ts;
      evictedAtBoundary = new Set();
    }
    if (entry.ts === evictedThrough && evictedAtBoundary !== undefined) {
      if (evictedAtBoundary.size < maxTracked) evictedAtBoundary.add(nonce);
      else evictedAtBoundary = undefined;
    }
  });
  /**
   * Nonces issued here lately, with their time and realm: `check` finds most nonces here (the
   * answer to a challenge comes back to the process that sent it) and skips recomputing their
   * MAC, two SHA-256 compressions of the four a challenge and its answer cost. Least recently
   * used first out; a nonce no longer here is checked by its MAC as before.
   */
  const issued = new BoundedLru<string, { ts: number; realm: string }>(
    Math.min(maxTracked, ISSUED_CACHE),
  );

  return {
    issue(realm, forIssuer, request) {
      checkIssuer(forIssuer);
      const now = Math.max(0, Math.floor(clock.wallNow()));
      const ts = request === undefined ? now : now - (now % 1000);
      const raw = Buffer.allocUnsafe(RAW_LEN);
      raw.writeUInt32BE(Math.floor(ts / 0x1_0000_0000), 0);
      raw.writeUInt32BE(ts % 0x1_0000_0000, 4);
      const body = raw.subarray(0, TS_LEN + RAND_LEN);
      if (request === undefined) random.fill(body.subarray(TS_LEN));
      else mix96(request, raw, TS_LEN);
      const mark = forIssuer ?? issuer;
      if (mark !== undefined) raw[TS_LEN] = mark;
      mac(body, realm, raw, TS_LEN + RAND_LEN);
      const nonce = raw.toString('base64url');
      issued.set(nonce, { ts, realm });
      return nonce;
    },

    check(nonce, realm) {
      let ts: number;
      const mine = issued.get(nonce);
      if (mine !== undefined && mine.realm === realm) ts = mine.ts;
      else {
        const d = decode(nonce);
        if (d === undefined) return 'invalid';
        mac(d.body, realm, expected, 0);
        if (!timingSafeEqual(d.mac, expected)) return 'invalid';
        ts = d.ts;
      }
      const age = clock.wallNow() - ts;
      // A nonce from the future comes from a peer with a skewed clock or from a
      // clock step back; it is refreshed rather than honoured indefinitely.
      return age > ttlMs || age < -ttlMs ? 'stale' : 'valid';
    },

    acceptNc(nonce, nc) {
      // RFC 7616 §3.4: nc-value = 8LHEX, starting at 00000001.
      if (!Number.isInteger(nc) || nc < 1 || nc > 0xffffffff) return 'replay';
      const entry = seen.get(nonce);
      if (entry !== undefined) {
        if (nc <= entry.nc) return 'replay';
        entry.nc = nc;
        return 'ok';
      }
      const d = decode(nonce);
      if (d === undefined) return 'replay';
      if (issuer !== undefined && d.body[TS_LEN] !== issuer) return 'stale';
      // A nonce whose history may have been evicted cannot be checked for replays: the client
      // is sent a fresh one (RFC 7616 §3.3, stale).
      if (
        d.ts < evictedThrough ||
        (d.ts === evictedThrough &&
          (evictedAtBoundary === undefined || evictedAtBoundary.has(nonce)))
      ) {
        return 'stale';
      }
      // A copy as the key: `nonce` is a slice of the received message's text, and V8 keeps a
      // whole string alive for as long as a slice of it is (here up to maxTracked nonces,
      // each holding a request of several hundred octets, an INVITE with its SDP more).
      seen.set(Buffer.from(nonce, 'latin1').toString('latin1'), { nc, ts: d.ts });
      return 'ok';
    },
  };
}
