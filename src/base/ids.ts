/**
 * Identifiers with the randomness RFC 3261 asks for: branch IDs (§8.1.1.7, with
 * the magic cookie), tags (§19.3, at least 32 bits of randomness) and Call-IDs
 * (§8.1.1.4). Randomness comes from an injected source so tests are repeatable.
 */
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
