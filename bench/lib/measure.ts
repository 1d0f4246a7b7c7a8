/**
 * The measuring loop shared by the suites: warm-up, interleaved rounds, median;
 * and heap bytes allocated per operation. Hand-written rather than mitata so that
 * every case runs in the same process and the same rounds, each round and the
 * whole run are bounded in count and in time, and the allocation figure counts
 * what the garbage collector freed during the batch (see `measureAllocation`).
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

/** One thing to measure: `run` does `ops` operations and returns a value that depends on them. */
export interface Case {
  readonly name: string;
  /** Operations done by one call of `run` (e.g. messages in the mix). */
  readonly ops: number;
  readonly run: () => number;
}

export interface ThroughputOptions {
  /** Warm-up time per case before any round, in ms. */
  readonly warmupMs: number;
  /** Number of measured rounds; every case runs once per round, in rotating order. */
  readonly rounds: number;
  /** Duration of one case in one round, in ms of `cpuClock` time. */
  readonly roundMs: number;
  /** Wall-clock time after which the remaining rounds are skipped (the run stays bounded). */
  readonly deadline: number;
}

export interface Throughput {
  readonly name: string;
  /**
   * Operations per second of CPU time as measured by `cpuClock` (the main thread's
   * own CPU time where the OS tells it), median over the rounds. Time the thread
   * spends descheduled while other processes run does not count, so this stays
   * usable on a shared machine where wall-clock rates swing several-fold.
   */
  readonly opsPerSec: number;
  /** Slowest and fastest round, same unit. */
  readonly min: number;
  readonly max: number;
  /** Operations per second of wall-clock time, median over the rounds. */
  readonly wallOpsPerSec: number;
  /** Rounds actually run (fewer than asked when the deadline was reached). */
  readonly rounds: number;
  /** Calls of `run` in the last round. */
  readonly callsPerRound: number;
}

/** A CPU-time clock in nanoseconds. */
export interface CpuClock {
  /** 'thread': the main thread's own CPU time; 'process': all threads of the process. */
  readonly kind: 'thread' | 'process';
  readonly label: string;
  now(): number;
}

/**
 * The main thread's on-CPU time (Linux: first field of /proc/thread-self/schedstat,
 * in ns). It leaves out other processes and also V8's helper threads, which would
 * otherwise charge one case's concurrent GC work to whichever case runs next.
 */
function threadClock(): CpuClock | undefined {
  if (process.platform !== 'linux') return undefined;
  const now = (): number =>
    Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]);
  try {
    // Spin until the clock advances (it moves at scheduler ticks, every 1-10 ms).
    const a = now();
    const until = Date.now() + 100;
    let b = a;
    while (b === a && Date.now() < until) b = now();
    if (!Number.isFinite(a) || !(b > a)) return undefined;
  } catch {
    return undefined;
  }
  return { kind: 'thread', label: 'main-thread CPU time (/proc/thread-self/schedstat)', now };
}

/** Fallback: CPU time of the whole process (all threads, GC helpers included). */
const processClock: CpuClock = {
  kind: 'process',
  label: 'process CPU time (process.cpuUsage, all threads)',
  now: () => {
    const u = process.cpuUsage();
    return (u.user + u.system) * 1000;
  },
};

export const cpuClock: CpuClock = threadClock() ?? processClock;

/** Upper bound on calls of `run` in one timed batch, whatever the calibration says. */
const MAX_CALLS_PER_BATCH = 200_000;

/** Keeps results observable so that the compiler cannot drop the measured work. */
export interface Sink {
  value: number;
}
export const sink: Sink = { value: 0 };

export type Gc = () => void;

/**
 * `gc()`: the one given by --expose-gc, or the same function obtained at run time
 * (`v8.setFlagsFromString('--expose-gc')` then a fresh context exposes it).
 * Undefined when neither works; the suites then say so and measure without it.
 */
export function getGc(): Gc | undefined {
  const exposed = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return exposed as Gc;
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn = vm.runInNewContext('gc') as unknown;
    return typeof fn === 'function' ? (fn as Gc) : undefined;
  } catch {
    return undefined;
  }
}

interface Elapsed {
  readonly calls: number;
  /** Wall-clock nanoseconds. */
  readonly wallNs: number;
  /** CPU nanoseconds by `cpuClock`. */
  readonly cpuNs: number;
}

/** Runs `c.run` `calls` times, untimed. */
function runCalls(c: Case, calls: number): void {
  let acc = 0;
  const run = c.run;
  for (let i = 0; i < calls; i++) acc += run();
  sink.value += acc;
}

/**
 * Runs `c.run` in chunks of `chunk` calls until `cpuClock` shows `targetNs` of CPU
 * time (the thread clock only advances at scheduler ticks, so the batch must span
 * many of them), or `5 * targetNs` of wall-clock time passed (a starved process
 * must still finish), or MAX_CALLS_PER_BATCH calls ran.
 */
function timeBatch(c: Case, chunk: number, targetNs: number): Elapsed {
  let acc = 0;
  let calls = 0;
  const run = c.run;
  const wallLimit = 5 * targetNs;
  const c0 = cpuClock.now();
  const t0 = process.hrtime.bigint();
  let c1: number;
  let t1: bigint;
  do {
    for (let i = 0; i < chunk; i++) acc += run();
    calls += chunk;
    c1 = cpuClock.now();
    t1 = process.hrtime.bigint();
  } while (
    c1 - c0 < targetNs &&
    Number(t1 - t0) < wallLimit &&
    calls + chunk <= MAX_CALLS_PER_BATCH
  );
  sink.value += acc;
  return { calls, wallNs: Number(t1 - t0), cpuNs: c1 - c0 };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Wall-clock nanoseconds per call of `c.run` after `warmupMs` of warm-up (from its last half). */
function warmUp(c: Case, warmupMs: number): number {
  const budgetNs = warmupMs * 1e6;
  const start = process.hrtime.bigint();
  let batch = 1;
  let lastNs = 0;
  let lastCalls = 0;
  let total = 0;
  for (;;) {
    const t0 = process.hrtime.bigint();
    runCalls(c, batch);
    const ns = Number(process.hrtime.bigint() - t0);
    total += batch;
    // Calibrate on the batches of the second half: the first calls run cold.
    const elapsed = Number(process.hrtime.bigint() - start);
    if (elapsed > budgetNs / 2) {
      lastNs += ns;
      lastCalls += batch;
    }
    if (elapsed >= budgetNs || total >= MAX_CALLS_PER_BATCH * 4) break;
    const perCall = lastCalls > 0 ? lastNs / lastCalls : ns / batch;
    const left = Math.max(1, Math.floor((budgetNs - elapsed) / perCall));
    batch = Math.min(batch * 2, left, MAX_CALLS_PER_BATCH);
  }
  return lastCalls > 0 ? lastNs / lastCalls : Number(process.hrtime.bigint() - start) / total;
}

/**
 * Throughput of each case. Every case is warmed up first (which also calibrates
 * its chunk size); then the rounds run case after case, each round starting with
 * the next case so that no case always runs first. Each timed batch lasts
 * `roundMs` of CPU time and follows an untimed re-warm of the same case (a third
 * of that): after the full collections that another case's garbage caused, the
 * first scavenges run several times slower for tens of ms (measured), and that is
 * not this case's cost. No `gc()` is forced here for the same reason. The
 * collections a case's own allocations cause during its batch are part of its time.
 */
export function measureThroughput(cases: readonly Case[], opts: ThroughputOptions): Throughput[] {
  const targetNs = opts.roundMs * 1e6;
  // About 8 clock reads per batch: negligible next to the work, fine-grained enough.
  const chunks = cases.map((c) => {
    const ns = warmUp(c, opts.warmupMs);
    return Math.max(1, Math.min(MAX_CALLS_PER_BATCH, Math.round(targetNs / 8 / ns)));
  });
  const cpuRates: number[][] = cases.map(() => []);
  const wallRates: number[][] = cases.map(() => []);
  const calls: number[] = cases.map(() => 0);
  for (let r = 0; r < opts.rounds; r++) {
    if (r > 0 && Date.now() > opts.deadline) break;
    for (let k = 0; k < cases.length; k++) {
      const idx = (r + k) % cases.length;
      const c = cases[idx]!;
      const chunk = chunks[idx]!;
      runCalls(c, Math.min(MAX_CALLS_PER_BATCH, chunk * 3));
      const t = timeBatch(c, chunk, targetNs);
      const ops = t.calls * c.ops;
      calls[idx] = t.calls;
      cpuRates[idx]!.push((ops * 1e9) / Math.max(1, t.cpuNs));
      wallRates[idx]!.push((ops * 1e9) / Math.max(1, t.wallNs));
    }
  }
  return cases.map((c, i) => {
    const s = cpuRates[i]!;
    return {
      name: c.name,
      opsPerSec: median(s),
      min: Math.min(...s),
      max: Math.max(...s),
      wallOpsPerSec: median(wallRates[i]!),
      rounds: s.length,
      callsPerRound: calls[i]!,
    };
  });
}

export interface Allocation {
  /** V8 heap bytes allocated per operation (JS objects, strings, typed-array headers). */
  readonly heapPerOp: number;
  /** ArrayBuffer backing-store bytes (off the V8 heap) per operation; undefined when not measurable. */
  readonly arrayBufferPerOp: number | undefined;
  /** Operations in each heap batch. */
  readonly opsPerBatch: number;
}

interface GcStat {
  beforeGC: { heapStatistics: { usedHeapSize: number } };
  afterGC: { heapStatistics: { usedHeapSize: number } };
}

/** Bytes the collections recorded by a GCProfiler freed (before - after, summed). */
function freedBytes(stats: readonly GcStat[]): number {
  let freed = 0;
  for (const s of stats) {
    freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize;
  }
  return freed;
}

function settle(gc: Gc | undefined): Promise<void> {
  gc?.();
  gc?.();
  // Let the ArrayBuffer sweeper finish freeing what the collection found dead,
  // so that it does not lower process.memoryUsage().arrayBuffers during a batch.
  return new Promise((resolve) => setTimeout(resolve, 5));
}

/**
 * Allocation per operation.
 *
 * Heap: allocated = (used_heap_size after - before) + the bytes each collection
 * during the batch freed, as reported by v8.GCProfiler; this stays exact when
 * scavenges happen inside the batch, so the batch can be long. Median of
 * `batches` batches of `calls` calls.
 *
 * ArrayBuffer backing stores live outside the V8 heap and are freed by a sweeper
 * after a collection, so they are measured separately: the delta of
 * process.memoryUsage().arrayBuffers over a batch during which no collection ran
 * (checked with GCProfiler; the batch is halved and retried otherwise).
 */
export async function measureAllocation(
  c: Case,
  calls: number,
  batches: number,
  gc: Gc | undefined,
): Promise<Allocation> {
  const heap: number[] = [];
  for (let b = 0; b < batches; b++) {
    await settle(gc);
    const profiler = new v8.GCProfiler();
    profiler.start();
    const before = v8.getHeapStatistics().used_heap_size;
    let acc = 0;
    for (let i = 0; i < calls; i++) acc += c.run();
    const after = v8.getHeapStatistics().used_heap_size;
    const stats = (profiler.stop() as unknown as { statistics: GcStat[] }).statistics;
    sink.value += acc;
    heap.push((after - before + freedBytes(stats)) / (calls * c.ops));
  }

  let arrayBufferPerOp: number | undefined;
  let abCalls = Math.max(1, Math.min(calls, 16));
  for (let attempt = 0; attempt < 6 && arrayBufferPerOp === undefined; attempt++) {
    await settle(gc);
    const profiler = new v8.GCProfiler();
    profiler.start();
    const before = process.memoryUsage().arrayBuffers;
    let acc = 0;
    for (let i = 0; i < abCalls; i++) acc += c.run();
    const after = process.memoryUsage().arrayBuffers;
    const stats = (profiler.stop() as unknown as { statistics: GcStat[] }).statistics;
    sink.value += acc;
    if (stats.length === 0) arrayBufferPerOp = Math.max(0, after - before) / (abCalls * c.ops);
    else if (abCalls === 1) break;
    else abCalls = Math.max(1, abCalls >> 1);
  }
  return { heapPerOp: median(heap), arrayBufferPerOp, opsPerBatch: calls * c.ops };
}
