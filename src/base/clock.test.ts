import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, systemClock } from './clock.ts';
import { createIdGenerator, seededRandom, MAGIC_COOKIE } from './ids.ts';

test('ManualClock fires due timers in order and honours cancel', () => {
  const c = new ManualClock();
  const fired: string[] = [];
  c.setTimer(500, () => fired.push('A@500'));
  const b = c.setTimer(200, () => fired.push('B@200'));
  c.setTimer(200, () => {
    fired.push('C@200');
    c.setTimer(100, () => fired.push('D@300'));
  });
  b.cancel();
  c.advance(250);
  assert.deepEqual(fired, ['C@200']);
  assert.equal(c.now(), 250);
  c.advance(1000);
  assert.deepEqual(fired, ['C@200', 'D@300', 'A@500']);
  assert.equal(c.pending(), 0);
});

test('ids: branch carries the magic cookie, generators are independent and repeatable', () => {
  const a = createIdGenerator(seededRandom(7));
  const b = createIdGenerator(seededRandom(7));
  const br = a.branch();
  assert.ok(br.startsWith(MAGIC_COOKIE));
  assert.equal(br, b.branch());
  assert.notEqual(a.tag(), a.tag());
  assert.match(a.callId(), /^[a-z0-9]{22}$/);
});

test('systemClock: a timer fires once, a cancelled one never, and cancel is idempotent', async () => {
  const c = systemClock();
  const fired: string[] = [];
  const a = c.setTimer(5, () => fired.push('a'));
  const b = c.setTimer(5, () => fired.push('b'));
  const d = c.setTimer(1, () => fired.push('d'));
  b.cancel();
  b.cancel();
  await new Promise((r) => setTimeout(r, 40));
  a.cancel(); // after it fired: no effect, no throw
  d.cancel();
  assert.deepEqual(fired.sort(), ['a', 'd']);
  const t0 = c.now();
  await new Promise((r) => setTimeout(r, 10));
  assert.ok(c.now() > t0, 'now() is monotonic and moves');
  assert.ok(Math.abs(c.wallNow() - Date.now()) < 1000);
});
