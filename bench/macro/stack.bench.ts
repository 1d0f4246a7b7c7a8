/**
 * Stack suite: a Switchboard UAS (examples/answer-calls.ts, its own process) answers a sipp UAC
 * over UDP on loopback: OPTIONS (test/integration/sipp/scenarios/uac-options.xml), then calls
 * (uac-call.xml: INVITE, 180, 200 with SDP, ACK, 200 ms, BYE, 200). For each, a short ramp of
 * fixed-length steps finds the highest rate with < 1% failed calls. The same two ramps against a
 * sipp UAS (bench/macro/uas-options.xml, scenarios/uas-call.xml) give sipp's own ceiling on the
 * same machine in the same run. See bench/macro/README.md for the method.
 *
 * Ends with the machine-readable lines `stack_options_per_s=N`, `stack_calls_per_s=N`,
 * `sipp_options_ceiling_per_s=N`, `sipp_calls_ceiling_per_s=N`, `stack_peak_rss_mb=N`.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TIMERS } from '../../src/transaction/index.ts';
import { STACK_MAX_SERVER_TRANSACTIONS } from '../../src/stack/index.ts';
import {
  LOOPBACK,
  runSipp,
  SCENARIOS_DIR,
  startSippUas,
  type SippResult,
} from '../../test/integration/sipp/sipp.ts';
import { findOnPath, freePort, pollUntil, waitFor } from '../../test/support/tools.ts';
import { MAX_FAILED, nextRate, rampResult, type Verdict } from '../lib/ramp.ts';
import type { Suite, SuiteOptions } from '../lib/suite.ts';

interface Config {
  /** Length of one step: a step at rate R places R * stepMs / 1000 calls (sipp -r R -m N). */
  readonly stepMs: number;
  /** Most steps per ramp (one ramp per scenario and UAS). */
  readonly maxSteps: number;
  /** sipp -recv_timeout: a call whose next message does not come within it fails. */
  readonly recvTimeoutMs: number;
  /** The ramp stops once the lowest failing rate is within this factor of the highest passing. */
  readonly resolution: number;
  /** Whole suite; a step that would not fit in its ramp's share is skipped, with a warning. */
  readonly budgetMs: number;
}

const FULL: Config = {
  stepMs: 3000,
  maxSteps: 8,
  recvTimeoutMs: 2000,
  resolution: 1.1,
  budgetMs: 165_000,
};

const QUICK: Config = {
  stepMs: 1000,
  maxSteps: 3,
  recvTimeoutMs: 1000,
  resolution: 1.1,
  budgetMs: 26_000,
};

/** A step passes (below MAX_FAILED failures, bench/lib/ramp.ts) when sipp also placed the calls at no less than this share of the target rate. */
const MIN_ACHIEVED = 0.9;

const THIS_DIR = dirname(fileURLToPath(import.meta.url));
const UAS_OPTIONS_XML = join(THIS_DIR, 'uas-options.xml');
const ANSWER_CALLS = 'examples/answer-calls.ts';

type Kind = 'options' | 'calls';
type Uas = 'switchboard' | 'sipp';

interface Ramp {
  readonly kind: Kind;
  readonly uas: Uas;
  /** sipp UAC scenario (file in test/integration/sipp/scenarios/). */
  readonly uac: string;
  /** sipp UAS scenario, for uas === 'sipp'. */
  readonly uasScenario?: string;
  /** First rate tried (calls/s): doubled while steps pass, halved while they fail. */
  readonly startRate: number;
  /** Server transactions one sipp call starts at the Switchboard UAS (INVITE + BYE for a call). */
  readonly serverTxPerCall: number;
}

const RAMPS: readonly Ramp[] = [
  {
    kind: 'options',
    uas: 'switchboard',
    uac: 'uac-options.xml',
    startRate: 1000,
    serverTxPerCall: 1,
  },
  {
    kind: 'options',
    uas: 'sipp',
    uac: 'uac-options.xml',
    uasScenario: UAS_OPTIONS_XML,
    startRate: 2000,
    serverTxPerCall: 1,
  },
  { kind: 'calls', uas: 'switchboard', uac: 'uac-call.xml', startRate: 250, serverTxPerCall: 2 },
  {
    kind: 'calls',
    uas: 'sipp',
    uac: 'uac-call.xml',
    uasScenario: 'uas-call.xml',
    startRate: 1000,
    serverTxPerCall: 2,
  },
];

interface Step {
  /** sipp -r */
  readonly rate: number;
  /** sipp -m */
  readonly calls: number;
  readonly successful: number;
  /** Every call that did not succeed: failed, unfinished at sipp's exit, or never placed. */
  readonly failed: number;
  readonly retransmissions: number | undefined;
  /** Successful calls per second (see achievedRate). */
  readonly achieved: number | undefined;
  /** Mean time to the first response sipp times (rtd), ms. */
  readonly responseMs: number | undefined;
  /** Calls that failed on a 503 (the Switchboard transaction table was full). */
  readonly got503: number;
  /** Why calls failed, from sipp's counters and error log. */
  readonly causes: string;
  /** Switchboard UAS: VmRSS once listening, and VmHWM at the end of the step (kB). */
  readonly idleRssKb?: number;
  readonly peakRssKb?: number;
  /** Set when the Switchboard UAS exited during the step: how, and its last stderr line. */
  readonly uasExited?: string;
  readonly verdict: Verdict;
  /** A repeat of the step before at the same rate (see runRamp). */
  readonly repeat: boolean;
}

interface RampResult {
  readonly ramp: Ramp;
  readonly steps: Step[];
  /**
   * The step with the highest achieved rate among those with < 1% failed calls (a step that was
   * repeated counts through its repeat only).
   */
  readonly best: Step | undefined;
  /** The failing step at the lowest rate from the best one's up: what stopped the ramp. */
  readonly limit: Step | undefined;
}

// ---- the Switchboard UAS process ------------------------------------------------------------

/** Switchboard UAS processes not yet exited: SIGKILLed if the benchmark exits or is killed. */
const liveUas = new Set<ChildProcess>();

function killLiveUas(): void {
  for (const child of liveUas) if (child.pid !== undefined) tryKill(child.pid, 'SIGKILL');
  liveUas.clear();
}

process.once('exit', killLiveUas);
// Killed by a signal, the process runs no 'exit' listeners: kill the UAS processes, then die of
// the same signal (test/support/tools.ts does the same for sipp; whichever runs last re-raises
// it with no listener left, so the default action applies).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killLiveUas();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** A field of /proc/PID/status in kB (VmRSS, VmHWM), or undefined. */
function procStatusKb(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'latin1'),
    );
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}

/**
 * True when process `pid` holds a UDP socket bound to 127.0.0.1:port: /proc/net/udp gives the
 * socket's local address (hex; 0100007F on little-endian hosts) and inode, /proc/PID/fd the
 * process's sockets. Unlike a probing bind this leaves the port alone, and a socket another
 * process bound to the same port does not count.
 */
function udpBoundBy(pid: number, port: number): boolean {
  const want = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  try {
    const inodes = readFileSync('/proc/net/udp', 'latin1')
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(want) === true && /^(0100007F|7F000001):/.test(f[1]))
      .map((f) => `socket:[${f[9]}]`);
    if (inodes.length === 0) return false;
    const fds = readdirSync(`/proc/${pid}/fd`);
    return fds.some((fd) => {
      try {
        return inodes.includes(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false;
  }
}

/** TMPDIR as the benchmark found it: run() points it elsewhere for sipp's files. */
const ORIGINAL_TMPDIR = process.env.TMPDIR;

/** The UAS's environment: ours, with the original TMPDIR (tsx keeps its compile cache there). */
function uasEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (ORIGINAL_TMPDIR === undefined) delete env.TMPDIR;
  else env.TMPDIR = ORIGINAL_TMPDIR;
  return env;
}

interface SwitchboardUas {
  readonly pid: number;
  readonly target: string;
  readonly idleRssKb: number | undefined;
  /** VmHWM (peak resident set) so far, kB. */
  peakRssKb(): number | undefined;
  /** Undefined while it runs; else how it exited and its last stderr line. */
  exited(): string | undefined;
  /** SIGTERM (answer-calls closes its stack and exits), SIGKILL after 3 s. */
  stop(): Promise<void>;
}

/**
 * Starts `node --import tsx examples/answer-calls.ts --listen udp:127.0.0.1:PORT` with stdout to
 * /dev/null (it prints a line per call) and resolves once it has bound the port. `lifetimeMs`
 * bounds the process's life whatever happens. Another process can take the free port first:
 * then the UAS exits and the next attempt takes another port.
 */
async function startSwitchboardUas(repoRoot: string, lifetimeMs: number): Promise<SwitchboardUas> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startSwitchboardUasOnce(repoRoot, lifetimeMs);
    } catch (e) {
      lastError = e as Error;
    }
  }
  throw lastError!;
}

async function startSwitchboardUasOnce(
  repoRoot: string,
  lifetimeMs: number,
): Promise<SwitchboardUas> {
  const port = await freePort('udp', LOOPBACK);
  const devNull = openSync('/dev/null', 'w');
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      ['--import', 'tsx', ANSWER_CALLS, '--listen', `udp:${LOOPBACK}:${port}`],
      { cwd: repoRoot, env: uasEnv(), stdio: ['ignore', devNull, 'pipe'] },
    );
  } finally {
    closeSync(devNull);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${ANSWER_CALLS}`);
  liveUas.add(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192);
  });
  let exitInfo: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('close', (code, signal) => {
      const last = stderr.trim().split('\n').pop() ?? '';
      exitInfo = `code ${String(code)}, signal ${String(signal)}${last === '' ? '' : `: ${last}`}`;
      liveUas.delete(child);
      resolve();
    });
  });
  const hardKill = setTimeout(() => tryKill(pid, 'SIGKILL'), lifetimeMs);
  hardKill.unref();

  const ready = await pollUntil(() => exitInfo !== undefined || udpBoundBy(pid, port), 15_000, 10);
  if (!ready || exitInfo !== undefined) {
    tryKill(pid, 'SIGKILL');
    await exit;
    clearTimeout(hardKill);
    throw new Error(
      `${ANSWER_CALLS} did not come up on ${LOOPBACK}:${port}/udp\n--- stderr ---\n${stderr}`,
    );
  }
  let stopping: Promise<void> | undefined;
  return {
    pid,
    target: `${LOOPBACK}:${port}`,
    idleRssKb: procStatusKb(pid, 'VmRSS'),
    peakRssKb: () => procStatusKb(pid, 'VmHWM'),
    exited: () => exitInfo,
    stop() {
      stopping ??= (async () => {
        tryKill(pid, 'SIGTERM');
        if ((await waitFor(exit, 3000)) === undefined) {
          tryKill(pid, 'SIGKILL');
          await waitFor(exit, 5000);
        }
        clearTimeout(hardKill);
      })();
      return stopping;
    },
  };
}

// ---- reading sipp's statistics --------------------------------------------------------------

/** A sipp timestamp column ("date\ttime\tepoch.micro") in ms since the epoch. */
function epochMs(value: string | undefined): number | undefined {
  const n = Number(value?.split('\t')[2]);
  return value !== undefined && Number.isFinite(n) ? n * 1000 : undefined;
}

/** A sipp duration column ("HH:MM:SS:micro") in ms. */
function durationMs(value: string | undefined): number | undefined {
  const parts = value?.split(':').map(Number);
  if (parts?.length !== 4 || parts.some((p) => !Number.isFinite(p))) return undefined;
  const [h, m, s, us] = parts as [number, number, number, number];
  return ((h * 60 + m) * 60 + s) * 1000 + us / 1000;
}

/**
 * Successful calls per second. sipp paces calls at the target rate and catches up when it falls
 * behind, so the calls are placed over at least `calls / rate` seconds, and over more when sipp
 * could not keep up: from its start (StartTime) to its last statistics row (CurrentTime, at exit)
 * less the mean call length (CallLength(C)), about how long the last call ran after it was placed.
 */
function achievedRate(r: SippResult, calls: number, rate: number): number | undefined {
  const raw = r.stats?.raw;
  if (raw === undefined || r.stats === undefined) return undefined;
  const start = epochMs(raw['StartTime']);
  const end = epochMs(raw['CurrentTime']);
  if (start === undefined || end === undefined) return undefined;
  const windowMs = end - start - (durationMs(raw['CallLength(C)']) ?? 0);
  return (r.stats.successful * 1000) / Math.max((calls * 1000) / rate, windowMs);
}

/** Calls that sipp aborted on a 503 response (its error log quotes each). */
function count503(r: SippResult): number {
  return (r.errors.match(/Aborting call on unexpected message[^\n]*received 'SIP\/2\.0 503/g) ?? [])
    .length;
}

/** Why calls failed: sipp's failure counters, with 503 responses told apart. */
function failureCauses(r: SippResult, placed: number, got503: number): string {
  const raw = r.stats?.raw ?? {};
  const n = (name: string): number => Number(raw[`${name}(C)`] ?? 0) || 0;
  const parts: string[] = [];
  const add = (label: string, count: number): void => {
    if (count > 0) parts.push(`${label} x${count}`);
  };
  add('503', got503);
  add('other unexpected', n('FailedUnexpectedMessage') - got503);
  add('recv timeout', n('FailedTimeoutOnRecv'));
  add('max UDP retrans', n('FailedMaxUDPRetrans'));
  add('regexp', n('FailedRegexpDoesntMatch') + n('FailedRegexpHdrNotFound'));
  add('cannot send', n('FailedCannotSendMessage'));
  add('congestion', n('FailedOutboundCongestion'));
  const counted = r.stats?.failed ?? 0;
  const known = [
    'FailedUnexpectedMessage',
    'FailedTimeoutOnRecv',
    'FailedMaxUDPRetrans',
    'FailedRegexpDoesntMatch',
    'FailedRegexpHdrNotFound',
    'FailedCannotSendMessage',
    'FailedOutboundCongestion',
  ].reduce((sum, name) => sum + n(name), 0);
  add('other', counted - known);
  add('unfinished', placed - (r.stats?.successful ?? 0) - counted);
  if (r.stats === undefined) parts.push('no statistics');
  if (r.killed) parts.push('sipp KILLED');
  return parts.join(', ');
}

// ---- one step, one ramp ---------------------------------------------------------------------

interface Context {
  readonly cfg: Config;
  readonly repoRoot: string;
  readonly sipp: string;
}

async function runStep(ctx: Context, ramp: Ramp, rate: number, repeat: boolean): Promise<Step> {
  const { cfg } = ctx;
  const calls = Math.max(1, Math.round((rate * cfg.stepMs) / 1000));
  // sipp gets -timeout a little below this; a step that falls far behind still ends.
  const timeoutMs = 2 * cfg.stepMs + cfg.recvTimeoutMs + 2500;
  const uac = {
    scenario: ramp.uac,
    transport: 'u1' as const,
    bin: ctx.sipp,
    calls,
    rate,
    timeoutMs,
    extraArgs: ['-recv_timeout', `${cfg.recvTimeoutMs}ms`],
  };

  let result: SippResult;
  let idleRssKb: number | undefined;
  let peakRssKb: number | undefined;
  let uasExited: string | undefined;
  if (ramp.uas === 'switchboard') {
    const uas = await startSwitchboardUas(ctx.repoRoot, timeoutMs + 30_000);
    try {
      idleRssKb = uas.idleRssKb;
      result = await runSipp({ ...uac, target: uas.target });
      // VmHWM before SIGTERM: the peak of the step, not of the shutdown.
      peakRssKb = uas.peakRssKb();
      uasExited = uas.exited();
    } finally {
      await uas.stop();
    }
  } else {
    const uas = await startSippUas({
      scenario: ramp.uasScenario!,
      transport: 'u1',
      bin: ctx.sipp,
      timeoutMs: timeoutMs + 15_000,
    });
    try {
      result = await runSipp({ ...uac, target: uas.target });
    } finally {
      await uas.stop({ graceMs: 1000 });
    }
  }

  const successful = result.stats?.successful ?? 0;
  const failed = Math.max(0, calls - successful);
  const achieved = achievedRate(result, calls, rate);
  const got503 = count503(result);
  const verdict: Verdict =
    failed >= MAX_FAILED * calls
      ? 'failed'
      : achieved === undefined || achieved < MIN_ACHIEVED * rate
        ? 'slow'
        : 'pass';
  return {
    rate,
    calls,
    successful,
    failed,
    retransmissions: result.stats?.retransmissions,
    achieved,
    responseMs: durationMs(result.stats?.raw['ResponseTime1(C)']),
    got503,
    causes: failureCauses(result, calls, got503),
    idleRssKb,
    peakRssKb,
    uasExited,
    verdict,
    repeat,
  };
}

/**
 * runStep, run again once when it throws (a harness error, not a measurement: e.g. another
 * process on the shared machine took the port or removed sipp's working directory).
 */
async function runStepRetrying(
  ctx: Context,
  ramp: Ramp,
  rate: number,
  repeat: boolean,
): Promise<Step> {
  try {
    return await runStep(ctx, ramp, rate, repeat);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    process.stderr.write(`bench stack: step at ${rate}/s failed to run (${why}); once more\n`);
    return runStep(ctx, ramp, rate, repeat);
  }
}

/**
 * A failing step worth repeating once: the machine is shared, and one noisy step would otherwise
 * cap the whole ramp. Not a step that 503s (the transaction table is deterministic), nor one far
 * over the limit (>= 10% failed, or placed at < half the rate).
 */
function marginal(s: Step): boolean {
  return (
    s.verdict !== 'pass' &&
    s.got503 === 0 &&
    s.uasExited === undefined &&
    s.failed < 0.1 * s.calls &&
    (s.achieved ?? 0) >= 0.5 * s.rate
  );
}

/** Rough length of a step, for the time budget: process start, the step, draining, stopping. */
function stepEstimateMs(cfg: Config, ramp: Ramp): number {
  return (ramp.uas === 'switchboard' ? 1500 : 300) + cfg.stepMs + 700;
}

/**
 * Doubles the rate from `startRate` while steps pass (halves it while they fail), then bisects
 * (geometric mean) between the highest passing and the lowest failing rate, until they are
 * within `resolution` of each other, `maxSteps` ran, or the ramp's share of the budget is spent.
 * A marginal failure (see `marginal`) is repeated once at the same rate; the repeat decides.
 */
async function runRamp(ctx: Context, ramp: Ramp, deadline: number): Promise<RampResult> {
  const { cfg } = ctx;
  const steps: Step[] = [];
  let pass: number | undefined;
  let fail: number | undefined;
  let rate = ramp.startRate;
  let repeat = false;
  const label = `${ramp.kind} -> ${ramp.uas === 'switchboard' ? 'Switchboard UAS' : 'sipp UAS'}`;
  console.log(`\n${label}:`);
  printStepHeader(ramp);
  for (let i = 0; i < cfg.maxSteps; i++) {
    if (Date.now() + stepEstimateMs(cfg, ramp) > deadline) {
      console.log(`  WARNING: time budget reached, ${cfg.maxSteps - i} step(s) skipped`);
      break;
    }
    const step = await runStepRetrying(ctx, ramp, rate, repeat);
    steps.push(step);
    const repeating = !repeat && marginal(step) && i + 1 < cfg.maxSteps;
    printStep(steps.length, step, ramp, repeating);
    if (step.uasExited !== undefined) {
      process.stderr.write(
        `bench stack: the Switchboard UAS exited during the step: ${step.uasExited}\n`,
      );
    }
    if (repeating) {
      repeat = true;
      continue;
    }
    repeat = false;
    if (step.verdict === 'pass') pass = Math.max(pass ?? 0, rate);
    else fail = Math.min(fail ?? Infinity, rate);

    const next = nextRate(rate, pass, fail, cfg.resolution);
    if (next === undefined) break;
    rate = next;
  }
  return { ramp, steps, ...rampResult(steps) };
}

/** What stopped a ramp, in words. */
function limitedBy(r: RampResult): string {
  const s = r.limit;
  if (s === undefined) return `not reached in ${r.steps.length} step(s)`;
  const at = `at ${fmtInt(s.rate)}/s`;
  if (s.uasExited !== undefined) return `UAS exited ${at}`;
  if (s.got503 > 0) return `503, table full ${at}`;
  if (s.verdict === 'failed') return `recv timeouts ${at}`;
  return `sipp placed < ${MIN_ACHIEVED * 100}% of the rate ${at}`;
}

// ---- output ---------------------------------------------------------------------------------

const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
const fmtInt = (n: number | undefined): string =>
  n === undefined ? 'n/a' : Math.round(n).toLocaleString('en-US');
const mb = (kb: number | undefined): string => (kb === undefined ? 'n/a' : (kb / 1024).toFixed(0));

function printStepHeader(ramp: Ramp): void {
  console.log(
    `  ${lpad('step', 4)} ${lpad('target/s', 8)} ${lpad('calls', 7)} ${lpad('ok', 7)}` +
      ` ${lpad('failed', 7)} ${lpad('fail%', 6)} ${lpad('ok/s', 7)} ${lpad('retrans', 7)}` +
      ` ${lpad('resp ms', 7)}` +
      (ramp.uas === 'switchboard' ? ` ${lpad('RSS MB', 7)} ${lpad('peak MB', 7)}` : '') +
      '  verdict (failure causes)',
  );
}

function printStep(n: number, s: Step, ramp: Ramp, repeating: boolean): void {
  const pct = ((100 * s.failed) / s.calls).toFixed(2);
  console.log(
    `  ${lpad(String(n), 4)} ${lpad(fmtInt(s.rate), 8)} ${lpad(fmtInt(s.calls), 7)}` +
      ` ${lpad(fmtInt(s.successful), 7)} ${lpad(fmtInt(s.failed), 7)} ${lpad(pct, 6)}` +
      ` ${lpad(fmtInt(s.achieved), 7)} ${lpad(fmtInt(s.retransmissions), 7)}` +
      ` ${lpad(s.responseMs === undefined ? 'n/a' : s.responseMs.toFixed(0), 7)}` +
      (ramp.uas === 'switchboard'
        ? ` ${lpad(mb(s.idleRssKb), 7)} ${lpad(mb(s.peakRssKb), 7)}`
        : '') +
      `  ${verdictText(s, repeating)}${s.causes === '' ? '' : ` (${s.causes})`}`,
  );
}

function verdictText(s: Step, repeating: boolean): string {
  const text =
    s.verdict === 'pass'
      ? 'pass'
      : s.verdict === 'failed'
        ? `>= ${MAX_FAILED * 100}% failed`
        : `placed at < ${MIN_ACHIEVED * 100}% of the rate`;
  return (
    (s.repeat ? 'repeat: ' : '') +
    text +
    (repeating ? '; marginal, repeated once' : '') +
    (s.uasExited === undefined ? '' : `; UAS EXITED (${s.uasExited})`)
  );
}

function busy(load: number, ncpu: number): string {
  return load > ncpu * 0.75
    ? ` (WARNING: other processes are busy on ${ncpu} CPU(s); expect noisy, lower numbers)`
    : '';
}

function sippVersion(bin: string): string {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 5000 });
  return (
    /SIPp (v[\w.-]+?)\.?(?:\s|$)/.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ??
    'version unknown'
  );
}

/**
 * The rate (calls/s) above which a Switchboard UAS with an empty transaction table fills it
 * within `horizonMs`, every transaction started still being live at the end.
 */
function tableBound(kind: Kind, horizonMs: number): number {
  const perCall = RAMPS.find((r) => r.kind === kind && r.uas === 'switchboard')!.serverTxPerCall;
  return STACK_MAX_SERVER_TRANSACTIONS / perCall / (horizonMs / 1000);
}

/** The ramps in order, each with its share of what is left of the budget. */
async function runRamps(ctx: Context, started: number, results: RampResult[]): Promise<void> {
  const { cfg } = ctx;
  for (let i = 0; i < RAMPS.length; i++) {
    // Each ramp gets a share of what is left of the budget in proportion to its step length
    // (a Switchboard step also starts a node process); what a ramp leaves goes to the next ones.
    const left = started + cfg.budgetMs - Date.now();
    const weights = RAMPS.slice(i).map((r) => stepEstimateMs(cfg, r));
    const share = (left * weights[0]!) / weights.reduce((a, b) => a + b, 0);
    results.push(await runRamp(ctx, RAMPS[i]!, Date.now() + share));
  }
}

async function run(opts: SuiteOptions): Promise<void> {
  const cfg = opts.quick ? QUICK : FULL;
  const started = Date.now();
  console.log(`# suite stack${opts.quick ? ' (--quick)' : ''}`);

  const sipp = findOnPath('sipp');
  if (sipp === undefined || process.platform !== 'linux') {
    const why =
      sipp === undefined
        ? 'sipp is not on PATH (Debian package sip-tester: ' +
          'apt-get install -y --no-install-recommends sip-tester)'
        : `it needs Linux /proc (VmHWM, /proc/net/udp); this is ${process.platform}`;
    if (process.env.CI === 'true') throw new Error(`stack suite: ${why}`);
    const bar = '!'.repeat(78);
    process.stderr.write(`${bar}\n!! stack suite SKIPPED: ${why}\n${bar}\n`);
    console.log(`SKIPPED: ${why}`);
    return;
  }

  const repoRoot = dirname(opts.benchDir);
  const ctx: Context = { cfg, repoRoot, sipp };
  const cpu = cpus();
  const timerJ = 64 * DEFAULT_TIMERS.T1;
  const minKeep = 2 * DEFAULT_TIMERS.T2;
  console.log(
    `node ${process.version} ${process.platform}/${process.arch}, ${cpu.length} CPU(s): ` +
      `${cpu[0]?.model.trim() ?? 'unknown'}; sipp ${sippVersion(sipp)} (${sipp})`,
  );
  const loadBefore = loadavg()[0]!;
  console.log(
    `load average (1 min) before: ${loadBefore.toFixed(2)}${busy(loadBefore, cpu.length)}`,
  );
  const rel = (p: string): string => relative(repoRoot, p);
  console.log(
    `\nSwitchboard UAS: node --import tsx ${ANSWER_CALLS} --listen udp:${LOOPBACK}:PORT ` +
      '(stdout to /dev/null), a fresh process for every step',
  );
  console.log(
    `sipp UAS: ${rel(UAS_OPTIONS_XML)} (OPTIONS), ${rel(join(SCENARIOS_DIR, 'uas-call.xml'))} ` +
      '(calls), a fresh sipp for every step',
  );
  console.log(
    `sipp UAC: ${rel(join(SCENARIOS_DIR, 'uac-options.xml'))}, ` +
      `${rel(join(SCENARIOS_DIR, 'uac-call.xml'))}; UDP, ${LOOPBACK} both ends`,
  );
  console.log(
    `step: sipp -r RATE -m RATE*${cfg.stepMs / 1000} -recv_timeout ${cfg.recvTimeoutMs}ms; ` +
      `pass = < ${MAX_FAILED * 100}% of the calls failed or unfinished and placed at >= ` +
      `${MIN_ACHIEVED * 100}% of the target rate; ramp: x2 from a start rate, then bisection to ` +
      `${Math.round((cfg.resolution - 1) * 100)}%, at most ${cfg.maxSteps} steps; a marginal ` +
      'failure (< 10% failed, no 503) is repeated once and the repeat decides',
  );
  console.log(
    '  ok/s: successful calls per second of the window in which sipp placed them (at least ' +
      'calls/target; longer when sipp fell behind: StartTime..CurrentTime less the mean call ' +
      'length). retrans: retransmissions by sipp. resp ms: mean time to the first ' +
      'answer (OPTIONS: the 200; calls: the 200 to INVITE). RSS MB: the UAS once listening; ' +
      'peak MB: its VmHWM at the end of the step.',
  );

  // sipp's working directories (the harness puts them in os.tmpdir()) go to a directory of
  // this run, out of the way of other processes that clean the shared /tmp.
  const savedTmpDir = process.env.TMPDIR;
  const runTmpDir = mkdtempSync(join(tmpdir(), 'sb-bench-stack-'));
  process.env.TMPDIR = runTmpDir;
  const results: RampResult[] = [];
  try {
    await runRamps(ctx, started, results);
  } finally {
    if (savedTmpDir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpDir;
    rmSync(runTmpDir, { recursive: true, force: true });
  }

  const find = (kind: Kind, uas: Uas): RampResult =>
    results.find((r) => r.ramp.kind === kind && r.ramp.uas === uas)!;
  const rateOf = (r: RampResult): number => r.best?.achieved ?? 0;
  const peakOf = (r: RampResult): number | undefined => {
    const peaks = r.steps.map((s) => s.peakRssKb).filter((k): k is number => k !== undefined);
    return peaks.length === 0 ? undefined : Math.max(...peaks);
  };

  console.log('\nhighest rate with < 1% failed calls (the ok/s of that step):');
  console.log(
    `  ${pad('scenario', 8)} ${pad('UAS', 11)} ${lpad('target/s', 8)} ${lpad('rate/s', 7)}` +
      ` ${lpad('completed', 9)} ${lpad('failed', 6)} ${lpad('retrans', 7)} ${lpad('peak MB', 7)}` +
      ` ${lpad('Switchboard/sipp', 16)}  limited by`,
  );
  for (const r of results) {
    const b = r.best;
    const sippRate = rateOf(find(r.ramp.kind, 'sipp'));
    const own = r.ramp.uas === 'switchboard';
    const sippReached = find(r.ramp.kind, 'sipp').limit !== undefined;
    const ownReached = r.limit !== undefined;
    // A ramp that never failed only shows a lower bound of its limit.
    const bound = ownReached ? (sippReached ? '' : '<=') : sippReached ? '>=' : '?';
    const ratio = own && sippRate > 0 ? `${bound}${(rateOf(r) / sippRate).toFixed(2)}x` : '';
    console.log(
      `  ${pad(r.ramp.kind, 8)} ${pad(r.ramp.uas, 11)}` +
        ` ${lpad(b === undefined ? 'none' : fmtInt(b.rate), 8)} ${lpad(fmtInt(rateOf(r)), 7)}` +
        ` ${lpad(fmtInt(b?.successful ?? 0), 9)} ${lpad(fmtInt(b?.failed ?? 0), 6)}` +
        ` ${lpad(fmtInt(b?.retransmissions), 7)} ${lpad(own ? mb(b?.peakRssKb) : '', 7)}` +
        ` ${lpad(ratio, 16)}  ${limitedBy(r)}`,
    );
  }
  const optionsPeak = peakOf(find('options', 'switchboard'));
  const callsPeak = peakOf(find('calls', 'switchboard'));
  const peakKb = Math.max(optionsPeak ?? 0, callsPeak ?? 0);
  console.log(
    `\nSwitchboard UAS peak RSS (VmHWM), highest over all its step processes, overloaded ` +
      `steps included: OPTIONS ${mb(optionsPeak)} MB, calls ${mb(callsPeak)} MB ` +
      '(the peak MB column above: the process of the best step)',
  );
  if (results.some((r) => r.limit === undefined)) {
    console.log(
      '  A ramp whose limit was "not reached" gives a lower bound of its rate; the ratio is then ' +
        'marked >= (Switchboard not reached), <= (sipp not reached) or ? (neither).',
    );
  }
  for (const r of results) {
    if (r.best === undefined) {
      console.log(`WARNING: ${r.ramp.kind} -> ${r.ramp.uas}: no step had < 1% failed calls`);
    }
  }

  console.log('\nnotes:');
  const notes = [
    'Open loop: sipp places calls at the target rate whatever the UAS does (up to its default ' +
      'limit on simultaneous calls). A call fails on an unexpected response (a 503), on ' +
      "-recv_timeout, or when it is unfinished at sipp's exit; retransmissions alone do not " +
      'fail it.',
    'Transaction table: the Switchboard stack keeps at most ' +
      `${fmtInt(STACK_MAX_SERVER_TRANSACTIONS)} live server transactions ` +
      '(createStack option maxServerTransactions) and refuses more ' +
      'with 503 + Retry-After. Over UDP a finished OPTIONS or BYE transaction stays live for ' +
      `Timer J and an answered INVITE for Timer L, both 64*T1 = ${timerJ / 1000} s. So a ` +
      `${cfg.stepMs / 1000} s step started on an empty table fails by 503 above ` +
      `${fmtInt(tableBound('options', cfg.stepMs))} OPTIONS/s or ` +
      `${fmtInt(tableBound('calls', cfg.stepMs))} calls/s whatever the CPU (hence a fresh UAS ` +
      'per step: left-over transactions of earlier steps would fail later ones). With the ' +
      `table full, finished transactions that have waited 2*T2 = ${minKeep / 1000} s are ` +
      'ended early to make room, so a longer load is capped at ' +
      `${fmtInt(tableBound('options', minKeep))} OPTIONS/s or ` +
      `${fmtInt(tableBound('calls', minKeep))} calls/s. The rates above are short-burst ` +
      'rates.',
    'The Switchboard UAS starts cold for each step (no warm-up): JIT compilation falls inside ' +
      'the step. It prints one line per call (to /dev/null). Its RSS includes tsx and the ' +
      'compiled sources (RSS MB column: the idle size).',
    'sipp UAC, the UAS and other processes share the machine; with 2 CPUs the UAC and the UAS ' +
      'take about one each. The sipp ceiling is sipp UAC against sipp UAS; at its top it is ' +
      "often the UAC's own sending limit (placed below " +
      `${MIN_ACHIEVED * 100}% of the target rate).`,
    'On a shared machine compare the ratio from one run, not absolute rates across runs.',
  ];
  for (const n of notes) console.log(`  - ${n}`);

  const loadAfter = loadavg()[0]!;
  console.log(
    `\nsuite took ${((Date.now() - started) / 1000).toFixed(1)} s; load average (1 min) after: ` +
      `${loadAfter.toFixed(2)}${busy(loadAfter, cpu.length)}`,
  );
  console.log(`stack_options_per_s=${Math.round(rateOf(find('options', 'switchboard')))}`);
  console.log(`stack_calls_per_s=${Math.round(rateOf(find('calls', 'switchboard')))}`);
  console.log(`sipp_options_ceiling_per_s=${Math.round(rateOf(find('options', 'sipp')))}`);
  console.log(`sipp_calls_ceiling_per_s=${Math.round(rateOf(find('calls', 'sipp')))}`);
  console.log(`stack_peak_rss_mb=${Math.round(peakKb / 1024)}`);
}

export const suite: Suite = {
  name: 'stack',
  description:
    'Switchboard UAS (examples/answer-calls.ts) under a sipp UAC over UDP: OPTIONS and ' +
    'calls/s at < 1% failures, peak RSS, vs sipp UAS',
  run,
};
