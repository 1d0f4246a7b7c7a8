/**
 * Small non-cryptographic string hashes, for ids and steering that must be stable (the same
 * input gives the same value in every process and every release) but need not resist an
 * adversary: nothing here protects anything (nonces and tags that must not be foreseen mix in
 * a secret, auth/nonce.ts and ids.ts `derivedTag`).
 *
 * Both run over the UTF-16 code units of the string: the inputs are SIP tokens, Call-IDs and
 * URIs (ASCII, RFC 3261 §25.1) or XML text, and no caller needs UTF-8 octets.
 */

/** FNV-1a, 32 bits (http://www.isthe.com/chongo/tech/comp/fnv/), unsigned. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Two 32-bit lanes over `s`, unsigned: FNV-1a, and a multiplicative lane with murmur2's
 * constant seeded with FNV's prime. 64 bits in all, for ids that must not collide among a few
 * thousand (RFC 4235 dialog ids, digests of NOTIFY bodies).
 */
export function hash64(s: string): readonly [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
  }
  return [h1 >>> 0, h2 >>> 0];
}

/**
 * `x.toString(radix)` for an unsigned 32-bit integer (radix 2..36), the same text. V8 keeps a
 * number above 2**31 - 1 as a heap double, and formats a double in another radix than 10
 * digit by digit in C++ through fmod (half of all 32-bit hashes are that large: the derived
 * To tags took 18 of 3,973 samples of a registrar's profile there). Split off its last digit,
 * the rest fits a small integer, which V8 formats on its fast path.
 */
export function uint32ToString(x: number, radix: number): string {
  if (x <= 0x7fffffff) return x.toString(radix);
  const rest = Math.floor(x / radix);
  return rest.toString(radix) + (x - rest * radix).toString(radix);
}
