/**
 * The parser's header-name matcher (names.ts matchHeaderName, on octets, four at
 * a time) and its colon-first variant (matchHeaderPrefix) must name exactly what
 * identifyHeaderName names from the text: every known spelling in any letter
 * case (RFC 3261 §7.3.1), and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { identifyHeaderName, knownHeaders, matchHeaderName, matchHeaderPrefix } from './names.ts';

const spellings = knownHeaders().flatMap(([name, compact]) =>
  compact === undefined ? [name] : [name, compact],
);

function octets(name: string, after = ': x'): Uint8Array {
  // Room after the name, as the parser guarantees (a line end follows).
  const line = name + after;
  const out = new Uint8Array(line.length);
  for (let i = 0; i < line.length; i++) out[i] = line.charCodeAt(i);
  return out;
}

test('matchHeaderName agrees with identifyHeaderName', () => {
  const known = fc
    .tuple(fc.constantFrom(...spellings), fc.array(fc.boolean(), { maxLength: 32 }))
    .map(([s, flips]) =>
      [...s].map((c, i) => (flips[i] === true ? c.toUpperCase() : c.toLowerCase())).join(''),
    );
  const mutated = fc
    .tuple(known, fc.nat(), fc.constantFrom('-', 'x', '_', '@', '`', '{', 'A', '0'))
    .map(([s, at, c]) => {
      const i = at % s.length;
      return s.slice(0, i) + c + s.slice(i + 1);
    });
  const other = fc.stringMatching(/^[A-Za-z0-9\-._]{1,34}$/);
  fc.assert(
    fc.property(fc.oneof(known, mutated, other), (name) => {
      const want = identifyHeaderName(name, 0, name.length);
      assert.equal(matchHeaderName(octets(name), 0, name.length), want, name);
      // Right before its colon a known name is found from its first octets, with its length.
      assert.equal(matchHeaderPrefix(octets(name), 0), want === 0 ? 0 : (name.length << 8) | want);
      // Before whitespace, or as the start of a longer name, it is left to the colon search.
      assert.equal(matchHeaderPrefix(octets(name, ' : x'), 0), 0, name);
      assert.equal(matchHeaderPrefix(octets(name, '-x: x'), 0), 0, name);
    }),
    { numRuns: 5000 },
  );
  for (const s of spellings) {
    assert.notEqual(matchHeaderName(octets(s), 0, s.length), 0, s);
    assert.notEqual(matchHeaderName(octets(s.toUpperCase()), 0, s.length), 0, s);
  }
});
