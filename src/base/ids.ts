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

/** Web Crypto randomness, available in Node.js 20 and browsers as globalThis.crypto. */
export function cryptoRandom(): RandomSource {
  const c = (globalThis as unknown as { crypto: { getRandomValues(b: Uint8Array): Uint8Array } })
    .crypto;
  return { fill: (b) => void c.getRandomValues(b) };
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

function randomToken(random: RandomSource, length: number): string {
  const bytes = new Uint8Array(length);
  random.fill(bytes);
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! % 36];
  return out;
}

export interface IdGenerator {
  branch(): string;
  tag(): string;
  callId(): string;
}

export function createIdGenerator(random: RandomSource): IdGenerator {
  return {
    // RFC 3261 §8.1.1.7: the branch MUST begin with z9hG4bK and be unique in space and time.
    branch: () => MAGIC_COOKIE + randomToken(random, 16),
    // RFC 3261 §19.3: tags need at least 32 bits of randomness; 10 chars of base36 ≈ 51 bits.
    tag: () => randomToken(random, 10),
    // RFC 3261 §8.1.1.4: a Call-ID should be globally unique; 22 chars of base36 ≈ 113 bits.
    callId: () => randomToken(random, 22),
  };
}
