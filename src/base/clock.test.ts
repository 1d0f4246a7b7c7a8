import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from './clock.ts';
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
