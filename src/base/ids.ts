/**
 * Identifiers with the randomness RFC 3261 asks for: branch IDs (§8.1.1.7, with
 * the magic cookie), tags (§19.3, at least 32 bits of randomness) and Call-IDs
 * (§8.1.1.4). Randomness comes from an injected source so tests are repeatable.
 */
import { uint32ToString } from './hash.ts';

export interface RandomSource {
  /** Fills `bytes` with random octets. */
  fill(bytes: Uint8Array): void;
}

export const MAGIC_COOKIE = 'z9hG4bK';

/** The most octets one getRandomValues call may fill (Web Crypto API §10.1.1, QuotaExceededError). */
const WEB_CRYPTO_MAX = 65536;

/**
 * Web Crypto randomness, available in Node.js 20 and browsers as globalThis.crypto,
 * drawn from a pool of `poolSize` octets: one getRandomValues call serves a few
 * hundred branches, tags and Call-IDs, where each call costs about as much as
 * generating a whole id. See `pooledRandom`.
 */
export function cryptoRandom(poolSize = 4096): RandomSource {
  const c = (globalThis as unknown as { crypto: { getRandomValues(b: Uint8Array): Uint8Array } })
    .crypto;
  return pooledRandom({ fill: (b) => void c.getRandomValues(b) }, poolSize);
}

/**
 * A source that fills a pool of `poolSize` octets from `source` and hands it out in
 * order. Every octet is handed out once and then zeroed in the pool, so nothing given
 * to one caller is seen by another or stays readable in memory; a request larger than
 * a quarter of the pool goes to `source` directly.
 */
export function pooledRandom(source: RandomSource, poolSize = 4096): RandomSource {
  const size = Math.min(Math.max(64, Math.floor(poolSize)), WEB_CRYPTO_MAX);
  const pool = new Uint8Array(size);
  let used = size;
  return {
    fill(b) {
      const n = b.length;
      if (n > size >> 2) {
        source.fill(b);
        return;
      }
      if (used + n > size) {
        source.fill(pool);
        used = 0;
      }
      const end = used + n;
      b.set(pool.subarray(used, end));
      pool.fill(0, used, end);
      used = end;
    },
  };
}

/** A deterministic source (xorshift32) for tests. */
export function seededRandom(seed: number): RandomSource {
  let s = seed >>> 0 || 1;
  return {
    fill(b) {
      for (let i = 0; i < b.length; i++) {
        s ^= s << 13;
        s >>>= 0;
        s ^= s >>> 17;
        s ^= s << 5;
        s >>>= 0;
        b[i] = s & 0xff;
      }
    },
  };
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

export interface IdGenerator {
  branch(): string;
  tag(): string;
  callId(): string;
}

/** The longest token made here (a Call-ID). */
const MAX_TOKEN = 22;

export function createIdGenerator(random: RandomSource): IdGenerator {
  // One scratch buffer per generator, filled and read before the function returns.
  const scratch = new Uint8Array(MAX_TOKEN);
  const randomToken = (length: number): string => {
    const bytes = scratch.subarray(0, length);
    random.fill(bytes);
    let out = '';
    for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! % 36];
    return out;
  };
  return {
    // RFC 3261 §8.1.1.7: the branch MUST begin with z9hG4bK and be unique in space and time.
    branch: () => MAGIC_COOKIE + randomToken(16),
    // RFC 3261 §19.3: tags need at least 32 bits of randomness; 10 chars of base36 ≈ 51 bits.
    tag: () => randomToken(10),
    // RFC 3261 §8.1.1.4: a Call-ID should be globally unique; 22 chars of base36 ≈ 113 bits.
    callId: () => randomToken(MAX_TOKEN),
  };
}

/**
 * A tag made from the request instead of drawn at random (RFC 3261 §8.2.7: a stateless UAS
 * makes To tags "in a manner that will generate the same tag for the same request
 * consistently"). `salt` is a random value of the stack, so the tags of one stack cannot be
 * foretold from outside and differ from another stack's; two 32-bit multiplicative hashes
 * over salt and parts give 64 bits, about as many as a random tag's 51.
 */
export function derivedTag(salt: string, parts: readonly string[]): string {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
    // A separator, so that ("ab", "c") and ("a", "bc") differ.
    a = Math.imul(a ^ 0xff, 0x01000193);
    b = Math.imul(b ^ 0xff, 0x5bd1e995);
  };
  mix(salt);
  for (const p of parts) mix(p);
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  b ^= b >>> 13;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 16;
  return uint32ToString(a >>> 0, 36) + uint32ToString(b >>> 0, 36);
}
