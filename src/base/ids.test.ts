import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import {
  MAGIC_COOKIE,
  createIdGenerator,
  derivedTag,
  cryptoRandom,
  pooledRandom,
  seededRandom,
  type RandomSource,
} from './ids.ts';

/** A source that hands out 0, 1, 2, ... (mod 256) and counts its calls. */
function counting(): RandomSource & { calls: number[] } {
  let next = 0;
  const calls: number[] = [];
  return {
    calls,
    fill(b) {
      calls.push(b.length);
      for (let i = 0; i < b.length; i++) b[i] = next++ & 0xff;
    },
  };
}

describe('pooledRandom', () => {
  it('hands out the source octets in order, each once, with one source call per pool', () => {
    const src = counting();
    const r = pooledRandom(src, 64);
    const got: number[] = [];
    for (let i = 0; i < 10; i++) {
      const b = new Uint8Array(10);
      r.fill(b);
      got.push(...b);
    }
    // 64-octet pools: 6 requests of 10 from the first, the 7th does not fit in what is left.
    assert.deepEqual(src.calls, [64, 64]);
    assert.deepEqual(
      got.slice(0, 60),
      Array.from({ length: 60 }, (_, i) => i),
    );
    assert.deepEqual(
      got.slice(60),
      Array.from({ length: 40 }, (_, i) => 64 + i),
    );
  });

  it('a request above a quarter of the pool goes to the source directly', () => {
    const src = counting();
    const r = pooledRandom(src, 64);
    r.fill(new Uint8Array(17));
    assert.deepEqual(src.calls, [17]);
    r.fill(new Uint8Array(16));
    assert.deepEqual(src.calls, [17, 64]);
  });

  it('an empty request takes nothing', () => {
    const src = counting();
    const r = pooledRandom(src, 64);
    r.fill(new Uint8Array(0));
    const b = new Uint8Array(2);
    r.fill(b);
    assert.deepEqual([...b], [0, 1]);
  });
});

describe('cryptoRandom', () => {
  it('fills small and large requests (beyond the pool)', () => {
    const r = cryptoRandom();
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const b = new Uint8Array(16);
      r.fill(b);
      seen.add(b.join(','));
    }
    assert.equal(seen.size, 2000); // 128-bit values: a repeat means octets were reused
    const big = new Uint8Array(60_000);
    r.fill(big);
    assert.ok(big.some((x) => x !== 0));
  });

  it('two sources are independent', () => {
    const a = new Uint8Array(16);
    const b = new Uint8Array(16);
    cryptoRandom().fill(a);
    cryptoRandom().fill(b);
    assert.notDeepEqual(a, b);
  });
});

describe('createIdGenerator', () => {
  it('branch (RFC 3261 §8.1.1.7), tag and Call-ID: lengths, alphabet, repeatable when seeded', () => {
    const ids = createIdGenerator(seededRandom(42));
    const branch = ids.branch();
    assert.ok(branch.startsWith(MAGIC_COOKIE));
    assert.match(branch.slice(MAGIC_COOKIE.length), /^[a-z0-9]{16}$/);
    assert.match(ids.tag(), /^[a-z0-9]{10}$/);
    assert.match(ids.callId(), /^[a-z0-9]{22}$/);
    const again = createIdGenerator(seededRandom(42));
    assert.equal(again.branch(), branch);
  });

  it('ids from a crypto source do not repeat', () => {
    const ids = createIdGenerator(cryptoRandom());
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      seen.add(ids.branch());
      seen.add(ids.tag());
      seen.add(ids.callId());
    }
    assert.equal(seen.size, 3000);
  });
});

test('derivedTag: the same for the same salt and parts; another salt, part or split gives another', () => {
  const t = derivedTag('salt', ['call-1', 'from-tag', 'z9hG4bK1']);
  assert.equal(derivedTag('salt', ['call-1', 'from-tag', 'z9hG4bK1']), t);
  assert.match(t, /^[0-9a-z]{8,14}$/);
  const others = [
    derivedTag('salt2', ['call-1', 'from-tag', 'z9hG4bK1']),
    derivedTag('salt', ['call-2', 'from-tag', 'z9hG4bK1']),
    derivedTag('salt', ['call-1', 'from-tag', 'z9hG4bK2']),
    derivedTag('salt', ['call-1from-tag', '', 'z9hG4bK1']),
  ];
  for (const o of others) assert.notEqual(o, t);
  assert.equal(new Set(others).size, others.length);
});
