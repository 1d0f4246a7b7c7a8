/**
 * The transaction timers of RFC 3261 §17 (Table 4), with Timers L and M of
 * RFC 6026 §8, as values derived from the three base intervals T1, T2 and T4.
 *
 * Every machine in this folder takes its durations from `timerValues()` (one
 * shared object per transport kind, `ctx.values`) and arms them on the injected
 * Clock: through a `TimerSet`, or, for the waits that only end a transaction
 * whose job is done (D, I, J, K, L, M), through the context's `WaitQueue` of
 * that length (STYLE §3: no setTimeout here; tests drive the timers with a
 * ManualClock).
 */
import type { Clock, TimerHandle } from '../base/clock.ts';
import { SwitchboardError } from '../base/errors.ts';

/**
 * The base intervals (RFC 3261 §17.1.1.1, §17.1.2.2, Table 4), in milliseconds.
 * §17.1.1.1: "T1 is an estimate of the round-trip time (RTT), and it defaults
 * to 500 ms." T2: "the maximum retransmit interval for non-INVITE requests and
 * INVITE responses" (4 s). T4: "the maximum duration a message will remain in
 * the network" (5 s).
 */
export interface TransactionTimers {
  readonly T1: number;
  readonly T2: number;
  readonly T4: number;
}

export const DEFAULT_TIMERS: TransactionTimers = Object.freeze({ T1: 500, T2: 4000, T4: 5000 });

/** The named timers of Table 4 (A–K, without C, which is a proxy timer, §16.6) and RFC 6026 (L, M). */
export type TimerName = 'A' | 'B' | 'D' | 'E' | 'F' | 'G' | 'H' | 'I' | 'J' | 'K' | 'L' | 'M';

/**
 * Table 4 for one transport. A value of 0 means the timer is not started (A,
 * E, G over reliable transports) or fires at once (D, I, J, K: "zero seconds
 * for reliable transports").
 */
export type TimerValues = Readonly<Record<TimerName, number>>;

/** Fills in the defaults and checks the intervals (T1 > 0, T2 >= T1, T4 >= 0). */
export function resolveTimers(partial: Partial<TransactionTimers> = {}): TransactionTimers {
  const t = { ...DEFAULT_TIMERS, ...partial };
  for (const k of ['T1', 'T2', 'T4'] as const) {
    if (!Number.isFinite(t[k]) || t[k] < 0)
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `timer ${k} must be >= 0`);
  }
  if (t.T1 <= 0) throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'timer T1 must be > 0');
  if (t.T2 < t.T1) throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'timer T2 must be >= T1');
  return Object.freeze(t);
}

/** Timer D over unreliable transports: "at least 32 seconds" (RFC 3261 §17.1.1.2, Table 4). */
export const TIMER_D_UNRELIABLE = 32_000;

/**
 * Table 4 of RFC 3261 plus RFC 6026 §8.4 and §8.7, for a reliable or an
 * unreliable transport.
 */
export function timerValues(t: TransactionTimers, reliable: boolean): TimerValues {
  const sixtyFour = 64 * t.T1;
  return {
    // §17.1.1.2: "If an unreliable transport is being used, the client transaction MUST start
    // timer A with a value of T1. If a reliable transport is being used, the client transaction
    // SHOULD NOT start timer A".
    A: reliable ? 0 : t.T1,
    // §17.1.1.2: "For any transport, the client transaction MUST start timer B with a value of 64*T1".
    B: sixtyFour,
    // §17.1.1.2: "at least 32 seconds for unreliable transports, and ... zero seconds for reliable".
    D: reliable ? 0 : TIMER_D_UNRELIABLE,
    // §17.1.2.2: "If an unreliable transport is in use, the client transaction MUST set timer E to fire in T1 seconds."
    E: reliable ? 0 : t.T1,
    // §17.1.2.2: "the client transaction MUST set timer F to fire in 64*T1 seconds".
    F: sixtyFour,
    // §17.2.1: "If an unreliable transport is in use, the server transaction MUST set timer G to fire in T1 seconds".
    G: reliable ? 0 : t.T1,
    // §17.2.1: "Timer H MUST be set to fire in 64*T1 seconds for all transports."
    H: sixtyFour,
    // §17.2.1: "timer I is set to fire in T4 seconds for unreliable transports, and zero seconds for reliable".
    I: reliable ? 0 : t.T4,
    // §17.2.2: "set Timer J to fire in 64*T1 seconds for unreliable transports, and zero seconds for reliable".
    J: reliable ? 0 : sixtyFour,
    // §17.1.2.2: "Timer K to fire in T4 seconds for unreliable transports, and zero seconds for reliable".
    K: reliable ? 0 : t.T4,
    // RFC 6026 §8.7: Timer L, set to 64*T1 on entering Accepted (server).
    L: sixtyFour,
    // RFC 6026 §8.4: "... transition to the 'Accepted' state, pass the 2xx response to the TU,
    // and set Timer M to 64*T1" (client).
    M: sixtyFour,
  };
}

/**
 * The next retransmission interval of Timers E and G: doubled, at most T2
 * (RFC 3261 §17.1.2.2: "MIN(2*T1, T2) ... MIN(4*T1, T2)"; §17.2.1 for G).
 */
export function backoffCapped(previous: number, T2: number): number {
  return Math.min(2 * previous, T2);
}

/**
 * The next interval of Timer A: doubled with no cap (RFC 3261 §17.1.1.2: "the
 * request is retransmitted with intervals that double after each
 * transmission"; Table 4 caps only non-INVITE requests and INVITE responses at
 * T2). Timer B (64*T1) bounds it: seven transmissions in all with the defaults.
 */
export function backoffUncapped(previous: number): number {
  return 2 * previous;
}

/**
 * Clock-scheduled named timers of one transaction, all cancelled together at termination. A
 * transaction runs at most three at a time, so they are kept in three pairs of fields (name,
 * handle), with an array only for a fourth and later: every live transaction has a TimerSet,
 * a completed one for up to 64*T1 (Timer J), and two arrays and their backing stores cost
 * about 400 bytes of heap each time (a Map is a hash table of its own).
 */
export class TimerSet<N extends string = TimerName> {
  private readonly clock: Clock;
  private n0: N | undefined = undefined;
  private h0: TimerHandle | undefined = undefined;
  private n1: N | undefined = undefined;
  private h1: TimerHandle | undefined = undefined;
  private n2: N | undefined = undefined;
  private h2: TimerHandle | undefined = undefined;
  private more: { name: N; handle: TimerHandle }[] | undefined = undefined;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  /** (Re)starts `name`: a running timer of that name is cancelled first. */
  start(name: N, ms: number, fire: () => void): void {
    this.stop(name);
    const handle = this.clock.setTimer(ms, () => {
      // Stopped (or restarted) after the clock had already picked it: not ours to run.
      if (!this.forgetHandle(handle)) return;
      fire();
    });
    if (this.n0 === undefined) {
      this.n0 = name;
      this.h0 = handle;
    } else if (this.n1 === undefined) {
      this.n1 = name;
      this.h1 = handle;
    } else if (this.n2 === undefined) {
      this.n2 = name;
      this.h2 = handle;
    } else {
      (this.more ??= []).push({ name, handle });
    }
  }

  stop(name: N): void {
    if (this.n0 === name) {
      this.h0!.cancel();
      this.n0 = this.h0 = undefined;
    } else if (this.n1 === name) {
      this.h1!.cancel();
      this.n1 = this.h1 = undefined;
    } else if (this.n2 === name) {
      this.h2!.cancel();
      this.n2 = this.h2 = undefined;
    } else if (this.more !== undefined) {
      const i = this.more.findIndex((e) => e.name === name);
      if (i >= 0) {
        this.more[i]!.handle.cancel();
        this.more.splice(i, 1);
      }
    }
  }

  isRunning(name: N): boolean {
    return (
      this.n0 === name ||
      this.n1 === name ||
      this.n2 === name ||
      (this.more?.some((e) => e.name === name) ?? false)
    );
  }

  /** Names of the running timers, in no particular order (tests, diagnostics). */
  running(): N[] {
    const out: N[] = [];
    if (this.n0 !== undefined) out.push(this.n0);
    if (this.n1 !== undefined) out.push(this.n1);
    if (this.n2 !== undefined) out.push(this.n2);
    if (this.more !== undefined) for (const e of this.more) out.push(e.name);
    return out;
  }

  stopAll(): void {
    this.h0?.cancel();
    this.h1?.cancel();
    this.h2?.cancel();
    this.n0 = this.h0 = this.n1 = this.h1 = this.n2 = this.h2 = undefined;
    if (this.more !== undefined) {
      for (const e of this.more) e.handle.cancel();
      this.more = undefined;
    }
  }

  /** Drops the entry of `handle` (it fired); false when it is no longer running. */
  private forgetHandle(handle: TimerHandle): boolean {
    if (this.h0 === handle) this.n0 = this.h0 = undefined;
    else if (this.h1 === handle) this.n1 = this.h1 = undefined;
    else if (this.h2 === handle) this.n2 = this.h2 = undefined;
    else {
      const i = this.more?.findIndex((e) => e.handle === handle) ?? -1;
      if (i < 0) return false;
      this.more!.splice(i, 1);
    }
    return true;
  }
}

/** What a `WaitQueue` tells when its wait is over. */
export interface Waiter {
  waitOver(): void;
}

/**
 * One length of wait shared by many transactions: Timer J of every non-INVITE server
 * transaction that completed over UDP (RFC 3261 §17.2.2, 64*T1), and the other waits of a
 * transaction whose job is done (§17.1.2.2 Timer K, RFC 6026 §8.4 Timer M and §8.7 Timer L).
 * Such a wait is never stopped early, only ignored by a transaction that ended meanwhile, and
 * all waits of one length end in the order they began: so they form a FIFO, with one clock
 * timer for the whole queue instead of a timer (a host timer object, a handle, two closures
 * and their contexts: 370 bytes of heap in a snapshot) for each of the tens of thousands of
 * transactions a busy server keeps waiting. The queue's timer is set for the oldest wait and, after a firing, at
 * least `ms / 1024` later (31 ms of 32 s), so that it fires at most about a thousand times per
 * wait length whatever the rate; a wait then ends up to that much late, never early.
 */
export class WaitQueue {
  readonly ms: number;
  private readonly clock: Clock;
  private readonly slack: number;
  private dues: number[] = [];
  private waiters: (Waiter | undefined)[] = [];
  private head = 0;
  private timer: TimerHandle | undefined = undefined;

  constructor(clock: Clock, ms: number) {
    if (!Number.isFinite(ms) || ms <= 0) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `wait of ${ms} ms`);
    }
    this.clock = clock;
    this.ms = ms;
    this.slack = ms / 1024;
  }

  /** Waits not yet over (ended transactions included until their time comes). */
  get size(): number {
    return this.dues.length - this.head;
  }

  /** `w.waitOver()` is called `ms` (to `ms + ms/1024`) from now. */
  add(w: Waiter): void {
    this.dues.push(this.clock.now() + this.ms);
    this.waiters.push(w);
    if (this.timer === undefined) this.timer = this.clock.setTimer(this.ms, this.fire);
  }

  /**
   * Ends the oldest wait ahead of its time, when it began at least `minAgeMs` ago: its waiter
   * is told now, as if the wait were over. False when there is no wait that old. The waiter
   * may have ended meanwhile (it then does nothing); the caller tells by what it looks at.
   */
  endOldest(minAgeMs: number): boolean {
    if (this.head >= this.dues.length) return false;
    if (this.dues[this.head]! - this.ms > this.clock.now() - minAgeMs) return false;
    const w = this.waiters[this.head]!;
    this.waiters[this.head] = undefined;
    this.head++;
    // The queue's timer stays set for the wait that was oldest: it fires, finds it gone and is
    // set again for the new oldest.
    w.waitOver();
    return true;
  }

  /** Drops every wait without telling its waiter, and the clock timer. */
  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.dues = [];
    this.waiters = [];
    this.head = 0;
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = this.clock.now();
    let failure: unknown = undefined;
    while (this.head < this.dues.length && this.dues[this.head]! <= now) {
      const w = this.waiters[this.head]!;
      this.waiters[this.head] = undefined;
      this.head++;
      try {
        w.waitOver();
      } catch (e) {
        failure ??= e;
      }
    }
    if (this.head === this.dues.length) {
      this.dues.length = 0;
      this.waiters.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && 2 * this.head >= this.dues.length) {
      // The arrays are only ever appended to: drop the ended half now and then.
      this.dues.splice(0, this.head);
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
    if (this.head < this.dues.length && this.timer === undefined) {
      this.timer = this.clock.setTimer(
        Math.max(this.dues[this.head]! - now, this.slack),
        this.fire,
      );
    }
    if (failure !== undefined) throw failure;
  };
}
