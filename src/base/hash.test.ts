import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fnv1a32, hash64, uint32ToString } from './hash.ts';

test('fnv1a32: the FNV-1a 32-bit test vectors', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
});

test('hash64: stable values (stored dialog ids and NOTIFY digests depend on them)', () => {
  assert.deepEqual(hash64(''), [0x811c9dc5, 0x01000193]);
  // The first lane is FNV-1a; the second, one step of the multiplicative lane for "a".
  assert.deepEqual(hash64('a'), [0xe40c292c, Math.imul(0x01000193 ^ 0x61, 0x5bd1e995) >>> 0]);
  // Values the two-lane loop gave when dialog-tracker.ts and notifier.ts had it inline.
  assert.deepEqual(hash64('call-1@host\u0000tag\u0000initiator'), [0x89f54dce, 0x68f2e04c]);
  assert.notDeepEqual(hash64('call-1@host\u0000tag\u0000recipient'), [0x89f54dce, 0x68f2e04c]);
});

test('uint32ToString: the text toString gives, in every radix, across the 2**31 boundary', () => {
  const samples = [
    0, 1, 35, 36, 0x7fffffff, 0x80000000, 0x80000001, 0x9e3779b9, 0xfffffffe, 0xffffffff,
  ];
  let x = 0x811c9dc5;
  for (let i = 0; i < 200; i++) {
    x = Math.imul(x ^ i, 0x01000193) >>> 0;
    samples.push(x);
  }
  for (const radix of [2, 10, 16, 36]) {
    for (const v of samples)
      assert.equal(uint32ToString(v, radix), v.toString(radix), `${v} radix ${radix}`);
  }
});
