import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { SwitchboardError } from '../base/errors.ts';
import {
  DEFAULT_TIMERS,
  TimerSet,
  backoffCapped,
  backoffUncapped,
  resolveTimers,
  timerValues,
  WaitQueue,
} from './timers.ts';

test('RFC 3261 Table 4 (+ RFC 6026 L, M) over an unreliable transport, default T1/T2/T4', () => {
  assert.deepEqual(DEFAULT_TIMERS, { T1: 500, T2: 4000, T4: 5000 });
  assert.deepEqual(timerValues(DEFAULT_TIMERS, false), {
    A: 500, // initially T1
    B: 32_000, // 64*T1
    D: 32_000, // > 32s for UDP
    E: 500, // initially T1
    F: 32_000, // 64*T1
    G: 500, // initially T1
    H: 32_000, // 64*T1
    I: 5000, // T4 for UDP
    J: 32_000, // 64*T1 for UDP
    K: 5000, // T4 for UDP
    L: 32_000, // RFC 6026: 64*T1
    M: 32_000, // RFC 6026: 64*T1
  });
});

test('Table 4 over a reliable transport: A, E, G not set; D, I, J, K zero', () => {
  const v = timerValues(DEFAULT_TIMERS, true);
  assert.deepEqual(
    { A: v.A, E: v.E, G: v.G, D: v.D, I: v.I, J: v.J, K: v.K },
    { A: 0, E: 0, G: 0, D: 0, I: 0, J: 0, K: 0 },
  );
  assert.deepEqual(
    { B: v.B, F: v.F, H: v.H, L: v.L, M: v.M },
    {
      B: 32_000,
      F: 32_000,
      H: 32_000,
      L: 32_000,
      M: 32_000,
    },
  );
});

test('the 64*T1 timers follow T1; Timer D stays at 32 s (§17.1.1.2 "at least 32 seconds")', () => {
  const t = resolveTimers({ T1: 100 });
  assert.deepEqual(t, { T1: 100, T2: 4000, T4: 5000 });
  const v = timerValues(t, false);
  assert.equal(v.B, 6400);
  assert.equal(v.J, 6400);
  assert.equal(v.D, 32_000);
});

test('backoff: E and G double up to T2; A doubles without a cap (§17.1.1.2)', () => {
  const e: number[] = [];
  for (let x = 500, i = 0; i < 6; i++, x = backoffCapped(x, 4000)) e.push(x);
  assert.deepEqual(e, [500, 1000, 2000, 4000, 4000, 4000]);
  const a: number[] = [];
  for (let x = 500, i = 0; i < 6; i++, x = backoffUncapped(x)) a.push(x);
  assert.deepEqual(a, [500, 1000, 2000, 4000, 8000, 16000]);
});

test('resolveTimers rejects intervals that make no sense', () => {
  assert.throws(() => resolveTimers({ T1: 0 }), SwitchboardError);
  assert.throws(() => resolveTimers({ T1: 500, T2: 100 }), SwitchboardError);
  assert.throws(() => resolveTimers({ T4: -1 }), SwitchboardError);
  assert.throws(() => resolveTimers({ T1: Number.NaN }), SwitchboardError);
});

test('TimerSet: restart replaces, stop cancels, stopAll clears the clock', () => {
  const clock = new ManualClock();
  const set = new TimerSet(clock);
  const fired: string[] = [];
  set.start('A', 100, () => fired.push(`A@${clock.now()}`));
  set.start('A', 300, () => fired.push(`A@${clock.now()}`));
  set.start('B', 200, () => fired.push(`B@${clock.now()}`));
  set.start('D', 50, () => fired.push(`D@${clock.now()}`));
  set.stop('D');
  assert.deepEqual(set.running().sort(), ['A', 'B']);
  clock.advance(1000);
  assert.deepEqual(fired, ['B@200', 'A@300']);
  assert.equal(set.isRunning('A'), false);
  set.start('H', 10, () => fired.push('H'));
  set.stopAll();
  assert.equal(clock.pending(), 0);
  clock.advance(100);
  assert.equal(fired.length, 2);
});

test('TimerSet: stopping or firing one of several leaves the others as they were', () => {
  const clock = new ManualClock();
  const set = new TimerSet(clock);
  const fired: string[] = [];
  for (const [name, ms] of [
    ['A', 100],
    ['B', 200],
    ['D', 300],
    ['E', 400],
  ] as const) {
    set.start(name, ms, () => fired.push(`${name}@${clock.now()}`));
  }
  set.stop('B'); // from the middle
  assert.deepEqual(set.running().sort(), ['A', 'D', 'E']);
  clock.advance(100); // A fires: the first
  assert.deepEqual(set.running().sort(), ['D', 'E']);
  set.start('D', 50, () => fired.push(`D'@${clock.now()}`)); // restarted
  set.stop('E'); // the last
  assert.deepEqual(set.running(), ['D']);
  clock.advance(1000);
  assert.deepEqual(fired, ['A@100', "D'@150"]);
  assert.deepEqual(set.running(), []);
});

test('TimerSet: random start/stop/stopAll/advance match a model of named deadlines', () => {
  // Six names, so that the three inline slots and the overflow are both in play, in any order.
  const NAMES = ['A', 'B', 'D', 'E', 'G', 'J'] as const;
  for (let seed = 1; seed <= 200; seed++) {
    let x = seed;
    const pick = (n: number): number => {
      // xorshift32: the same sequence on every run
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const clock = new ManualClock();
    const set = new TimerSet<(typeof NAMES)[number]>(clock);
    const model = new Map<string, { at: number; gen: number }>();
    const fired: string[] = [];
    const expected: string[] = [];
    let gen = 0;
    for (let step = 0; step < 60; step++) {
      const op = pick(10);
      const name = NAMES[pick(NAMES.length)]!;
      if (op < 5) {
        const g = ++gen;
        const ms = 1 + pick(50);
        set.start(name, ms, () => fired.push(`${name}#${g}`));
        model.set(name, { at: clock.now() + ms, gen: g });
      } else if (op < 7) {
        set.stop(name);
        model.delete(name);
      } else if (op < 8) {
        set.stopAll();
        model.clear();
      } else {
        const until = clock.now() + pick(40);
        const due = [...model]
          .filter(([, v]) => v.at <= until)
          .sort((x, y) => x[1].at - y[1].at || x[1].gen - y[1].gen);
        for (const [n, v] of due) {
          expected.push(`${n}#${v.gen}`);
          model.delete(n);
        }
        clock.advance(until - clock.now());
      }
      assert.deepEqual(set.running().sort(), [...model.keys()].sort(), `seed ${seed} step ${step}`);
      for (const n of NAMES) assert.equal(set.isRunning(n), model.has(n));
      assert.deepEqual(fired, expected, `seed ${seed} step ${step}`);
      assert.equal(clock.pending(), model.size);
    }
  }
});

/** A ManualClock that counts the host timers set on it. */
class CountingClock extends ManualClock {
  set = 0;
  override setTimer(ms: number, fn: () => void) {
    this.set++;
    return super.setTimer(ms, fn);
  }
}

test('WaitQueue: each wait ends after its length, never early, in the order the waits began', () => {
  const clock = new CountingClock();
  const q = new WaitQueue(clock, 1000);
  const ended: [string, number][] = [];
  const waiter = (name: string) => ({ waitOver: () => ended.push([name, clock.now()]) });
  q.add(waiter('a'));
  clock.advance(10);
  q.add(waiter('b'));
  clock.advance(500);
  q.add(waiter('c'));
  assert.equal(q.size, 3);
  clock.advance(489); // t = 999
  assert.equal(ended.length, 0);
  clock.advance(1); // t = 1000: a is due
  assert.deepEqual(ended, [['a', 1000]]);
  clock.advance(2000);
  assert.deepEqual(
    ended.map(([n]) => n),
    ['a', 'b', 'c'],
  );
  // b began at 10 and c at 510: neither ended before its 1000 ms, nor more than 1000/1024 late.
  assert.ok(
    ended[1]![1] >= 1010 && ended[1]![1] <= 1010 + 1000 / 1024 + 1e-9,
    `b at ${ended[1]![1]}`,
  );
  assert.ok(
    ended[2]![1] >= 1510 && ended[2]![1] <= 1510 + 1000 / 1024 + 1e-9,
    `c at ${ended[2]![1]}`,
  );
  assert.equal(q.size, 0);
});

test('WaitQueue: many waits share one host timer at a time, and the queue is emptied', () => {
  const clock = new CountingClock();
  const q = new WaitQueue(clock, 32_000);
  let ended = 0;
  const w = { waitOver: () => ended++ };
  // 8 waits per ms for 5 s: 40,000 waits, as a registrar at 8,000/s keeps for Timer J.
  for (let t = 0; t < 5000; t++) {
    for (let i = 0; i < 8; i++) q.add(w);
    clock.advance(1);
  }
  assert.equal(clock.set, 1);
  assert.equal(q.size, 40_000);
  clock.advance(40_000);
  assert.equal(ended, 40_000);
  assert.equal(q.size, 0);
  // One firing per slack (32000/1024 ≈ 31 ms) at most: about 5000/31 over the 5 s of waits.
  assert.ok(clock.set <= 2 + Math.ceil(5000 / (32_000 / 1024)), `${clock.set} host timers`);
  // Nothing pending: a new wait sets a timer again.
  q.add(w);
  clock.advance(32_000);
  assert.equal(ended, 40_001);
});

test('WaitQueue: endOldest ends the oldest wait early only once it is old enough, then the timer goes on', () => {
  const clock = new ManualClock();
  const q = new WaitQueue(clock, 1000);
  const ended: [string, number][] = [];
  const waiter = (name: string) => ({ waitOver: () => ended.push([name, clock.now()]) });
  assert.equal(q.endOldest(0), false, 'nothing to end');
  q.add(waiter('a'));
  clock.advance(100);
  q.add(waiter('b'));
  clock.advance(100);
  q.add(waiter('c'));
  // t = 200: a began 200 ms ago, b 100 ms ago.
  assert.equal(q.endOldest(300), false);
  assert.equal(q.endOldest(150), true);
  assert.deepEqual(ended, [['a', 200]]);
  assert.equal(q.endOldest(150), false, 'b is 100 ms old');
  assert.equal(q.size, 2);
  // The others end in their time; a is not told twice.
  clock.advance(2000);
  assert.deepEqual(
    ended.map(([n]) => n),
    ['a', 'b', 'c'],
  );
  assert.ok(ended[1]![1] >= 1100, `b at ${ended[1]![1]}`);
  assert.equal(q.size, 0);
  assert.equal(q.endOldest(0), false);
});

test('WaitQueue: close drops every wait untold; a throwing waiter does not stop the others', () => {
  const clock = new ManualClock();
  const q = new WaitQueue(clock, 100);
  let told = 0;
  q.add({ waitOver: () => told++ });
  q.close();
  clock.advance(1000);
  assert.equal(told, 0);
  assert.equal(q.size, 0);

  q.add({
    waitOver: () => {
      throw new Error('boom');
    },
  });
  q.add({ waitOver: () => told++ });
  clock.advance(50);
  q.add({ waitOver: () => told++ });
  assert.throws(() => clock.advance(50), /boom/);
  assert.equal(told, 1);
  clock.advance(100);
  assert.equal(told, 2, 'the timer was set again after the throw');
  assert.throws(() => new WaitQueue(clock, 0), SwitchboardError);
});
