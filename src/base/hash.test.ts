import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fnv1a32, hash64 } from './hash.ts';

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
