import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { seededRandom } from '../base/ids.ts';
import { createNonceManager, type NonceManagerOptions } from './nonce.ts';

const SECRET = new Uint8Array(32).fill(7);

function manager(over: Partial<NonceManagerOptions> = {}) {
  const clock = new ManualClock();
  const m = createNonceManager({
    secret: SECRET,
    clock,
    ttlMs: 1_000,
    random: seededRandom(1),
    ...over,
  });
  return { m, clock: (over.clock as ManualClock | undefined) ?? clock };
}

describe('issue / check', () => {
  it('a nonce issued here and one issued by another holder of the secret check the same', () => {
    const clock = new ManualClock();
    const opts = { secret: SECRET, clock, ttlMs: 1_000 } as const;
    // `few` remembers only its last two nonces: older ones are checked by their MAC.
    const few = createNonceManager({ ...opts, random: seededRandom(1), maxTracked: 2 });
    const other = createNonceManager({ ...opts, random: seededRandom(2) });
    const a = few.issue('example.com');
    const b = few.issue('example.com');
    const c = few.issue('example.com');
    const foreign = other.issue('example.com');
    for (const n of [a, b, c, foreign]) {
      assert.equal(few.check(n, 'example.com'), 'valid', n);
      assert.equal(few.check(n, 'example.org'), 'invalid', `${n} in another realm`);
    }
    const tampered = Buffer.from(c, 'base64url');
    tampered[0]! ^= 1;
    assert.equal(few.check(tampered.toString('base64url'), 'example.com'), 'invalid');
    clock.advance(1_001);
    for (const n of [a, b, c, foreign]) assert.equal(few.check(n, 'example.com'), 'stale', n);
  });

  it('a fresh nonce is valid for its realm, base64url, 48 characters', () => {
    const { m } = manager();
    const n = m.issue('example.com');
    assert.match(n, /^[A-Za-z0-9_-]{48}$/);
    assert.equal(m.check(n, 'example.com'), 'valid');
  });

  it('is ts | rand | first 16 octets of HMAC-SHA256(secret, ts | rand | realm)', () => {
    const clock = new ManualClock(0, 1_700_000_000_123);
    // Short and long secrets (RFC 2104 §2 hashes a key longer than the 64-octet block),
    // ASCII and non-ASCII realms, one longer than the MAC's first scratch buffer.
    for (const secret of [SECRET, new Uint8Array(100).fill(5)]) {
      const m = createNonceManager({ secret, clock, ttlMs: 1_000, random: seededRandom(3) });
      for (const realm of ['example.com', 'bücher.example', 'x'.repeat(300) + '.example', '']) {
        const raw = Buffer.from(m.issue(realm), 'base64url');
        assert.equal(raw.length, 36);
        assert.equal(raw.readUInt32BE(0) * 0x1_0000_0000 + raw.readUInt32BE(4), 1_700_000_000_123);
        const mac = createHmac('sha256', secret)
          .update(raw.subarray(0, 20))
          .update(realm, 'utf8')
          .digest()
          .subarray(0, 16);
        assert.deepEqual(raw.subarray(20), mac, realm);
        assert.equal(m.check(raw.toString('base64url'), realm), 'valid');
      }
    }
  });

  it('nonces differ from one another', () => {
    const { m } = manager();
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) seen.add(m.issue('r'));
    assert.equal(seen.size, 100);
  });

  it('is bound to the realm', () => {
    const { m } = manager();
    assert.equal(m.check(m.issue('a.example'), 'b.example'), 'invalid');
  });

  it('is bound to the secret', () => {
    const { m } = manager();
    const other = createNonceManager({
      secret: new Uint8Array(32).fill(8),
      clock: new ManualClock(),
      ttlMs: 1_000,
      random: seededRandom(1),
    });
    assert.equal(other.check(m.issue('r'), 'r'), 'invalid');
  });

  it('a server sharing the secret accepts it', () => {
    const clock = new ManualClock();
    const a = createNonceManager({ secret: SECRET, clock, ttlMs: 1_000, random: seededRandom(1) });
    const b = createNonceManager({ secret: SECRET, clock, ttlMs: 1_000, random: seededRandom(9) });
    assert.equal(b.check(a.issue('r'), 'r'), 'valid');
  });

  it('any changed character makes it invalid', () => {
    const { m } = manager();
    const n = m.issue('r');
    for (let i = 0; i < n.length; i++) {
      const c = n[i] === 'A' ? 'B' : 'A';
      const t = n.slice(0, i) + c + n.slice(i + 1);
      // The last character carries 2 padding bits in base64url; those may decode the same.
      if (Buffer.from(t, 'base64url').equals(Buffer.from(n, 'base64url'))) continue;
      assert.equal(m.check(t, 'r'), 'invalid', `position ${i}`);
    }
  });

  it('garbage is invalid and never throws', () => {
    const { m } = manager();
    for (const x of ['', 'x', '"', '!'.repeat(48), 'A'.repeat(10_000), '\u0000']) {
      assert.equal(m.check(x, 'r'), 'invalid');
      assert.equal(m.acceptNc(x, 1), 'replay');
    }
    // Decodable but not issued by this server: check() is what rejects it.
    assert.equal(m.check('A'.repeat(48), 'r'), 'invalid');
  });

  it('stale after the TTL (ManualClock), valid up to it', () => {
    const { m, clock } = manager();
    const n = m.issue('r');
    clock.advance(1_000);
    assert.equal(m.check(n, 'r'), 'valid');
    clock.advance(1);
    assert.equal(m.check(n, 'r'), 'stale');
  });

  it('a nonce dated more than a TTL ahead is stale', () => {
    const clock = new ManualClock(0, 1_700_000_100_000);
    const m = createNonceManager({ secret: SECRET, clock, ttlMs: 1_000, random: seededRandom(1) });
    const n = m.issue('r');
    const behind = createNonceManager({
      secret: SECRET,
      clock: new ManualClock(0, 1_700_000_000_000),
      ttlMs: 1_000,
      random: seededRandom(1),
    });
    assert.equal(behind.check(n, 'r'), 'stale');
  });

  it('rejects weak configuration', () => {
    assert.throws(() => manager({ secret: new Uint8Array(8) }), {
      code: 'SB_ERR_INVALID_ARGUMENT',
    });
    assert.throws(() => manager({ ttlMs: 0 }), { code: 'SB_ERR_INVALID_ARGUMENT' });
  });

  it('copies the secret', () => {
    const secret = new Uint8Array(32).fill(3);
    const clock = new ManualClock();
    const m = createNonceManager({ secret, clock, ttlMs: 1_000, random: seededRandom(1) });
    const n = m.issue('r');
    secret.fill(4);
    assert.equal(m.check(n, 'r'), 'valid');
  });
});

describe('nc replay protection (RFC 7616 §3.4, §5.5)', () => {
  it('accepts increasing counts, rejects a repeated or lower one', () => {
    const { m } = manager();
    const n = m.issue('r');
    assert.equal(m.acceptNc(n, 1), 'ok');
    assert.equal(m.acceptNc(n, 1), 'replay');
    assert.equal(m.acceptNc(n, 2), 'ok');
    assert.equal(m.acceptNc(n, 5), 'ok');
    assert.equal(m.acceptNc(n, 3), 'replay');
    assert.equal(m.acceptNc(n, 5), 'replay');
    assert.equal(m.acceptNc(n, 6), 'ok');
  });

  it('counts are per nonce', () => {
    const { m } = manager();
    const a = m.issue('r');
    const b = m.issue('r');
    assert.equal(m.acceptNc(a, 1), 'ok');
    assert.equal(m.acceptNc(b, 1), 'ok');
  });

  it('rejects counts outside 1..2**32-1', () => {
    const { m } = manager();
    const n = m.issue('r');
    assert.equal(m.acceptNc(n, 0), 'replay');
    assert.equal(m.acceptNc(n, -1), 'replay');
    assert.equal(m.acceptNc(n, 2 ** 32), 'replay');
    assert.equal(m.acceptNc(n, 1.5), 'replay');
    assert.equal(m.acceptNc(n, 0xffffffff), 'ok');
  });

  it('bounded: a nonce whose history was evicted is stale, not replayable', () => {
    const { m, clock } = manager({ maxTracked: 2 });
    const a = m.issue('r');
    clock.advance(1);
    const unused = m.issue('r');
    clock.advance(1);
    const b = m.issue('r');
    clock.advance(1);
    const c = m.issue('r');
    clock.advance(1);
    const later = m.issue('r');
    assert.equal(m.acceptNc(a, 1), 'ok');
    assert.equal(m.acceptNc(b, 1), 'ok');
    assert.equal(m.acceptNc(c, 1), 'ok'); // evicts a
    assert.equal(m.acceptNc(a, 1), 'stale', 'a replay of the evicted nonce does not get through');
    assert.equal(m.acceptNc(a, 2), 'stale');
    // A nonce issued after the newest evicted one is still fine...
    assert.equal(m.acceptNc(later, 1), 'ok'); // evicts b
    // ...and one issued no later than an evicted one is refreshed.
    assert.equal(m.acceptNc(unused, 1), 'stale');
    assert.equal(m.acceptNc(c, 2), 'ok');
  });

  it('nonces dated to the same second as an evicted one: only the evicted are stale', () => {
    // Challenges' nonces carry the second they were issued in, so thousands share one date.
    const { m, clock } = manager({ maxTracked: 2 });
    clock.advance(5_000);
    const older = m.issue('r', undefined, 'call-0');
    clock.advance(1_000);
    const [a, b, c, d] = ['call-1', 'call-2', 'call-3', 'call-4'].map((r) =>
      m.issue('r', undefined, r),
    );
    assert.equal(m.acceptNc(a!, 1), 'ok');
    assert.equal(m.acceptNc(b!, 1), 'ok');
    assert.equal(m.acceptNc(c!, 1), 'ok'); // evicts a
    assert.equal(m.acceptNc(a!, 1), 'stale', 'the evicted nonce is not replayable');
    assert.equal(m.acceptNc(d!, 1), 'ok', 'a nonce of the same second never seen is fine'); // evicts b
    assert.equal(m.acceptNc(b!, 2), 'stale');
    assert.equal(m.acceptNc(older!, 1), 'stale', 'issued before the newest evicted one');
    assert.equal(m.acceptNc(d!, 2), 'ok');
  });

  it('more evicted nonces of one second than it remembers: all of that second are stale', () => {
    const { m, clock } = manager({ maxTracked: 2 });
    clock.advance(5_000);
    const n = Array.from({ length: 7 }, (_, i) => m.issue('r', undefined, `call-${i}`));
    for (const x of n.slice(0, 5)) assert.equal(m.acceptNc(x, 1), 'ok'); // 3 evicted: 1 too many
    assert.equal(m.acceptNc(n[5]!, 1), 'stale');
    clock.advance(1_000);
    const next = m.issue('r', undefined, 'call-next');
    assert.equal(m.acceptNc(next, 1), 'ok', 'a later second is not affected');
    for (const x of n.slice(0, 3)) assert.equal(m.acceptNc(x, 2), 'stale');
  });

  it('tracked entries stay ordered by use (LRU)', () => {
    const { m } = manager({ maxTracked: 2 });
    const a = m.issue('r');
    const b = m.issue('r');
    const c = m.issue('r');
    assert.equal(m.acceptNc(a, 1), 'ok');
    assert.equal(m.acceptNc(b, 1), 'ok');
    assert.equal(m.acceptNc(a, 2), 'ok'); // a used last: b is now the oldest
    assert.equal(m.acceptNc(c, 1), 'ok'); // evicts b, not a
    assert.equal(m.acceptNc(a, 3), 'ok');
    assert.equal(m.acceptNc(b, 2), 'stale');
  });
});

describe('issuers sharing one secret (worker processes)', () => {
  it('marks its nonces; counts for another issuer’s nonce are stale, its own are tracked', () => {
    const clock = new ManualClock();
    const opts = { secret: SECRET, clock, ttlMs: 1_000 } as const;
    const w0 = createNonceManager({ ...opts, random: seededRandom(1), issuer: 0 });
    const w1 = createNonceManager({ ...opts, random: seededRandom(2), issuer: 1 });
    const n0 = w0.issue('example.com');
    const n1 = w1.issue('example.com');
    assert.equal(Buffer.from(n0, 'base64url')[8], 0);
    assert.equal(Buffer.from(n1, 'base64url')[8], 1);
    // The MAC holds for both in both: a nonce from the other worker is genuine...
    assert.equal(w1.check(n0, 'example.com'), 'valid');
    assert.equal(w0.check(n1, 'example.com'), 'valid');
    // ...but only its issuer keeps its counts: elsewhere the client is sent for a fresh one.
    assert.equal(w1.acceptNc(n0, 1), 'stale');
    assert.equal(w0.acceptNc(n0, 1), 'ok');
    assert.equal(w0.acceptNc(n0, 1), 'replay');
    assert.equal(w1.acceptNc(n1, 1), 'ok');
  });

  it('a nonce issued for another worker is counted by that worker', () => {
    const clock = new ManualClock();
    const opts = { secret: SECRET, clock, ttlMs: 1_000 } as const;
    const w0 = createNonceManager({ ...opts, random: seededRandom(1), issuer: 0 });
    const w1 = createNonceManager({ ...opts, random: seededRandom(2), issuer: 1 });
    // w0 challenges a request whose answer w1 will see (the owner of its Call-ID).
    const n = w0.issue('example.com', 1);
    assert.equal(Buffer.from(n, 'base64url')[8], 1);
    assert.equal(w1.check(n, 'example.com'), 'valid');
    assert.equal(w1.acceptNc(n, 1), 'ok');
    assert.equal(w0.acceptNc(n, 2), 'stale');
    assert.throws(() => w0.issue('example.com', 256), { code: 'SB_ERR_INVALID_ARGUMENT' });
  });

  it('the issuer octet is covered by the MAC', () => {
    const { m } = manager({ issuer: 3 });
    const raw = Buffer.from(m.issue('example.com'), 'base64url');
    raw[8] = 4;
    assert.equal(m.check(raw.toString('base64url'), 'example.com'), 'invalid');
  });

  it('refuses an issuer outside 0..255', () => {
    assert.throws(() => manager({ issuer: 256 }), { code: 'SB_ERR_INVALID_ARGUMENT' });
    assert.throws(() => manager({ issuer: -1 }), { code: 'SB_ERR_INVALID_ARGUMENT' });
  });
});

describe('nonces derived from a request (a challenge answered alike when retransmitted)', () => {
  it('one request, one second: one nonce; another request or second: another', () => {
    const clock = new ManualClock(0, 1_700_000_000_100);
    const { m } = manager({ clock });
    const a = m.issue('example.com', 3, 'call-1\u00001\u0000MESSAGE\u0000z9hG4bK1');
    clock.advance(850);
    assert.equal(m.issue('example.com', 3, 'call-1\u00001\u0000MESSAGE\u0000z9hG4bK1'), a);
    assert.equal(m.check(a, 'example.com'), 'valid');
    assert.equal(Buffer.from(a, 'base64url')[8], 3, 'the issuer octet');
    // Rounded down to the second.
    assert.equal(Buffer.from(a, 'base64url').readUInt32BE(4), 1_700_000_000_000 % 2 ** 32);
    clock.advance(100);
    assert.notEqual(m.issue('example.com', 3, 'call-1\u00001\u0000MESSAGE\u0000z9hG4bK1'), a);
  });

  it('20,000 request identities a character apart give 20,000 nonces', () => {
    const { m } = manager();
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++)
      seen.add(m.issue('example.com', undefined, `call-${i}@h\u00001`));
    for (let i = 0; i < 64; i++)
      seen.add(m.issue('example.com', undefined, `call-0@h\u0000${i + 2}`));
    assert.equal(seen.size, 20_064);
  });
});
