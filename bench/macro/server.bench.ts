/**
 * Server suite: `switchboard serve` (registrar + authenticating stateful proxy) under sipp over
 * UDP on loopback, and Kamailio with an equivalent configuration (bench/kamailio/kamailio.cfg)
 * in the same run when it is installed:
 *
 * 1. registrations/s: REGISTER -> 401 -> REGISTER with credentials -> 200 (server/uac-register.xml)
 *    over N imported users;
 * 2. calls/s through the proxy: INVITE -> 407 -> ACK -> INVITE with Proxy-Authorization ->
 *    100/180/200 -> ACK -> BYE -> 200 (server/uac-call.xml), from alice to bob, a sipp UAS
 *    (server/uas-call.xml) registered by a third-party REGISTER with its own address as Contact;
 * 3. MESSAGE/s through the proxy: MESSAGE -> 407 -> MESSAGE with credentials -> 200, to carol, a
 *    sipp UAS (server/uas-message.xml);
 * 4. memory per 10,000 bindings: memory before and after 10,000 users register once, each read
 *    once the transactions have ended (Switchboard: RSS after a forced full GC, plus the growth of
 *    its SQLite store; Kamailio: its shared memory in use, plus its usrloc SQLite file's growth
 *    when it keeps bindings there);
 * 5. peak resident memory (VmHWM; Kamailio: the highest summed PSS sampled).
 *
 * Each rate is the highest with < 1% failures, found by a ramp of fixed-length steps (doubling,
 * then bisection). Every step runs on a fresh server process (and fresh sipp UASes) started from
 * the same state (users imported, no bindings) and warmed up, so that an overloaded step does not
 * leave transactions, retransmissions or a grown heap to the next one. See bench/macro/README.md.
 *
 * Ends with machine-readable lines: server_register_per_s, server_calls_per_s,
 * server_message_per_s, server_peak_rss_mb, server_rss_per_10k_bindings_mb and more, the
 * kamailio_* equivalents and ratio_* = Switchboard / Kamailio.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TIMERS } from '../../src/transaction/index.ts';
import {
  describeRun,
  runSipp,
  startSippUas,
  type RunSippOptions,
  type SippResult,
  type SippUas,
} from '../../test/integration/sipp/sipp.ts';
import { findOnPath } from '../../test/support/tools.ts';
import { MAX_FAILED, nextRate, rampResult, roundRate, type Verdict } from '../lib/ramp.ts';
import { procSys, udpDrops, udpRcvbufErrors } from '../lib/proc.ts';
import type { Suite, SuiteOptions } from '../lib/suite.ts';
import {
  DOMAIN,
  describeKamailioBindings,
  kamailioSqlite,
  kamailioVersion,
  prepareKamailio,
  prepareFloor,
  prepareSwitchboard,
  type BenchUser,
  type KamailioBindings,
  type LogTally,
  type ServerFactory,
  type ServerKind,
  type ServerUnderTest,
} from './servers.ts';

interface Config {
  /** Length of one step: a step at rate R places R * stepMs / 1000 sipp calls (-r R -m N). */
  readonly stepMs: number;
  /** Most steps per ramp. */
  readonly maxSteps: number;
  /** sipp -recv_timeout: a call whose next message does not come within it fails. */
  readonly recvTimeoutMs: number;
  /** A ramp stops once the lowest failing rate is within this factor of the highest passing. */
  readonly resolution: number;
  /** The whole suite; a step that would not fit in its ramp's share is skipped, with a warning. */
  readonly budgetMs: number;
  /** Users registered by the registration ramp (sipp cycles through them). */
  readonly users: number;
  /** Users registered once by the memory phase. */
  readonly memoryUsers: number;
  /** Wait before each memory reading, so that the transactions of what came before have ended. */
  readonly settleMs: Readonly<Record<ServerKind, number>>;
  /** Before each step, this long at the workload's warm-up rate, not counted (JIT, caches). */
  readonly warmupMs: number;
  /**
   * Then this long at the step's own rate, not counted either (when above the warm-up rate):
   * the code that only a busy server runs is compiled before the step (README, "Warm-up").
   */
  readonly primeMs: number;
}

/**
 * Switchboard's `workers`: one per core, as Kamailio gets one UDP child per core (-n), unless
 * SB_BENCH_WORKERS says otherwise (1: the server as one process).
 */
function switchboardWorkers(): number {
  const env = process.env.SB_BENCH_WORKERS;
  if (env !== undefined && /^[1-9][0-9]?$/.test(env)) return Number(env);
  return Math.max(1, cpus().length);
}

/**
 * How the Kamailio compared keeps bindings: SB_BENCH_KAMAILIO_BINDINGS=memory (usrloc db_mode
 * 0), or sqlite (the default when Debian's kamailio-sqlite-modules is installed): written back
 * to an SQLite file every second (db_mode 2). Switchboard commits every binding before it
 * answers and keeps it across restarts; write-back is Kamailio's nearest setting that works
 * with several processes. Write-through (db_mode 1) was tried: db_sqlite 5.6 sets no busy
 * timeout, and with 2 UDP workers 61% of REGISTERs at 1,000/s got 500 ("database is locked").
 */
function kamailioBindings(): KamailioBindings {
  const env = process.env.SB_BENCH_KAMAILIO_BINDINGS;
  if (env !== undefined && env !== 'memory' && env !== 'sqlite') {
    throw new Error(`SB_BENCH_KAMAILIO_BINDINGS=${env}: memory or sqlite`);
  }
  if (env === 'memory') return { kind: 'memory' };
  const sqlite = kamailioSqlite();
  if (sqlite === undefined) {
    if (env === 'sqlite') {
      throw new Error(
        'SB_BENCH_KAMAILIO_BINDINGS=sqlite: db_sqlite.so or its usrloc schema is missing ' +
          '(Debian: apt-get install -y --no-install-recommends kamailio-sqlite-modules)',
      );
    }
    const bar = '!'.repeat(78);
    process.stderr.write(
      `${bar}\n!! server suite: Kamailio keeps bindings in memory only (kamailio-sqlite-modules ` +
        'is not installed), where Switchboard stores every one: its REGISTER figures do less ' +
        `work.\n${bar}\n`,
    );
    return { kind: 'memory' };
  }
  return { kind: 'sqlite-write-back', schemaDir: sqlite.schemaDir, timerS: 1 };
}

/** Timer J (UDP): how long a finished non-INVITE server transaction stays (RFC 3261 §17.2.2). */
const TIMER_J_MS = 64 * DEFAULT_TIMERS.T1;
/** Kamailio tm's wait timer (wt_timer, default 5 s): how long a finished transaction stays. */
const KAMAILIO_WT_MS = 5000;

const FULL: Config = {
  stepMs: 5000,
  // A ramp spends up to six steps doubling from its start rate (500/s to 16,000/s); six steps
  // left one bisection, so a limit was known only to within a factor of 1.4 (4,000 passed,
  // 5,700 failed, 4,000 reported). Eight reached the resolution from a factor of 2 only when
  // no step was repeated: a marginal failure repeated at the first bisection (11,000/s
  // between 8,000 and 16,000) used the last step, and the limit was again known to within a
  // factor of 1.4 (MESSAGE: 8,500/s in one run, 7,941/s in the next). Ten leave room for it.
  maxSteps: 10,
  recvTimeoutMs: 3000,
  resolution: 1.15,
  budgetMs: 1_250_000,
  users: 10_000,
  memoryUsers: 10_000,
  settleMs: { switchboard: TIMER_J_MS + 2000, kamailio: KAMAILIO_WT_MS + 2000 },
  // 15,000 REGISTER, 10,000 MESSAGE, 5,000 calls (the workloads' warm-up rates): a fresh
  // Node.js process is still compiling its hot paths long after 400, and a third as many left
  // 13-14% of a step's CPU time to the compiler (README, "Warm-up").
  warmupMs: 5000,
  // After that warm-up a calls step at 4,000/s still spent 608 ms of its ~5.4 s of CPU on
  // optimizing compiles (178 functions); after 2 s more at 4,000/s, 110 ms (38).
  primeMs: 2000,
};

const QUICK: Config = {
  stepMs: 2000,
  maxSteps: 3,
  recvTimeoutMs: 2000,
  resolution: 1.3,
  budgetMs: 240_000,
  users: 10_000,
  memoryUsers: 10_000,
  // The same waits as the full run: a shorter one would count live transactions as bindings.
  settleMs: { switchboard: TIMER_J_MS + 2000, kamailio: KAMAILIO_WT_MS + 2000 },
  warmupMs: 1000,
  primeMs: 500,
};

/** A step passes (below MAX_FAILED failures, bench/lib/ramp.ts) when sipp also placed the calls at no less than this share of the target rate. */
const MIN_ACHIEVED = 0.9;
/** Server CPU below this share of one core over 250 ms counts as idle after the warm-up. */
const IDLE_CPU_SHARE = 0.15;
/** Kamailio -m: shared memory, MB (its default, 64, runs out when a step overloads it). */
const KAMAILIO_SHM_MB = 1024;
/**
 * sipp -buff_size, bytes: the send and receive buffer of the stepping sipps (the UAC and the
 * callee UAS). sipp's default, 64 KiB (128 KiB once Linux doubles it), holds about a hundred
 * datagrams of these scenarios; at 13,000 registrations/s sipp's own socket dropped 500-700 of
 * Kamailio's responses and 3,000-12,000 of Switchboard's per step (/proc/net/udp, measured by
 * hand), each dropped response a retransmission 500 ms later, and the step's limit became
 * sipp's socket rather than the server. With 4 MiB neither server's responses were dropped at
 * 14,000/s or 16,000/s. The kernel caps it at net.core.rmem_max / wmem_max (the output prints
 * what it is).
 */
const SIPP_BUFFER_BYTES = 4 * 1024 * 1024;

const THIS_DIR = dirname(fileURLToPath(import.meta.url));
const SCENARIOS = join(THIS_DIR, 'server');
const KAMAILIO_CFG = join(THIS_DIR, '..', 'kamailio', 'kamailio.cfg');

type Kind = 'register' | 'calls' | 'message';

interface Workload {
  readonly kind: Kind;
  /** What one sipp call is, for the report. */
  readonly unit: string;
  readonly scenario: string;
  /** First rate tried: doubled while steps pass, halved while they fail. */
  readonly startRate: number;
  /** Rate of the warm-up before each step. */
  readonly warmupRate: number;
}

const WORKLOADS: Readonly<Record<Kind, Workload>> = {
  register: {
    kind: 'register',
    unit: 'REGISTER, 401, REGISTER with credentials, 200',
    scenario: 'uac-register.xml',
    startRate: 500,
    // 15,000: every ramp user once and half of them twice, so that the step runs on code that
    // has seen both a first registration and a refresh (README, "Warm-up").
    warmupRate: 3000,
  },
  calls: {
    kind: 'calls',
    unit: 'INVITE, 407, ACK, INVITE with credentials, 100/180/200, ACK, BYE, 200',
    scenario: 'uac-call.xml',
    startRate: 250,
    warmupRate: 1000,
  },
  message: {
    kind: 'message',
    unit: 'MESSAGE, 407, MESSAGE with credentials, 200',
    scenario: 'uac-message.xml',
    startRate: 500,
    warmupRate: 2000,
  },
};

/** The caller of calls and messages, and the two callees (sipp UASes). */
const ALICE: BenchUser = { user: 'alice', password: 'alice-secret-1' };
const BOB: BenchUser = { user: 'bob', password: 'bob-secret-2' };
const CAROL: BenchUser = { user: 'carol', password: 'carol-secret-3' };

const rampUser = (i: number): BenchUser => ({ user: `r${i}`, password: `pw-r${i}-x` });
const memoryUser = (i: number): BenchUser => ({ user: `m${i}`, password: `pw-m${i}-x` });

// ---- sipp statistics ------------------------------------------------------------------------

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
 * Successful sipp calls per second over the window in which sipp placed them: at least
 * calls / rate, longer when sipp fell behind (StartTime..CurrentTime less the mean call length).
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

/** Unexpected responses and requests that aborted calls, by status code or method. */
function unexpected(r: SippResult): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of r.errors.matchAll(
    /Aborting call on unexpected message[^\n]*?received '([^']*)/g,
  )) {
    const first = m[1]!;
    const key = /^SIP\/2\.0 (\d{3})/.exec(first)?.[1] ?? /^([A-Z]+) /.exec(first)?.[1] ?? '?';
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

/** Why sipp calls failed: sipp's failure counters, unexpected messages by status or method. */
function failureCauses(r: SippResult, placed: number): string {
  const raw = r.stats?.raw ?? {};
  const n = (name: string): number => Number(raw[`${name}(C)`] ?? 0) || 0;
  const parts: string[] = [];
  const add = (label: string, count: number): void => {
    if (count > 0) parts.push(`${label} x${count}`);
  };
  const unexp = unexpected(r);
  const quoted = [...unexp.values()].reduce((a, b) => a + b, 0);
  for (const [what, count] of [...unexp].sort((a, b) => b[1] - a[1])) {
    add(`unexpected ${what}`, count);
  }
  add('other unexpected', n('FailedUnexpectedMessage') - quoted);
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

// ---- steps ------------------------------------------------------------------------------------

interface Step {
  readonly rate: number;
  readonly calls: number;
  readonly successful: number;
  /** Every sipp call that did not succeed: failed, unfinished at sipp's exit, or never placed. */
  readonly failed: number;
  readonly retransmissions: number | undefined;
  readonly achieved: number | undefined;
  /** Mean response time sipp measured (rtd: the final 200), ms. */
  readonly responseMs: number | undefined;
  readonly causes: string;
  /** Failures of the warm-up before the step (not counted), if any. */
  readonly warmup: string;
  /** Server CPU time over sipp's run: share of one core, and per successful sipp call. */
  readonly cpuShare: number | undefined;
  readonly cpuMsPerOp: number | undefined;
  /** Time the server was runnable but waited for a CPU, as a share of the step's wall time. */
  readonly waitShare: number | undefined;
  /** Datagrams dropped on the server's socket (its receive buffer was full). */
  readonly drops: number | undefined;
  /** Datagrams dropped machine-wide (every UDP socket: sipp's too, and other processes'). */
  readonly allDrops: number | undefined;
  /** Server log lines during the step. */
  readonly log: LogTally;
  /** Resident memory once listening, and the peak at the end of the step (kB). */
  readonly idleKb: number | undefined;
  readonly peakKb: number | undefined;
  readonly serverExited: string | undefined;
  readonly verdict: Verdict;
  /** A repeat of the step before at the same rate (see runRamp). */
  readonly repeat: boolean;
}

interface RampResult {
  readonly workload: Workload;
  readonly steps: Step[];
  /** The passing step with the highest achieved rate (a repeated step counts through its repeat). */
  readonly best: Step | undefined;
  /** The lowest failing rate at or above the best: what stopped the ramp. */
  readonly limit: Step | undefined;
}

interface Context {
  readonly cfg: Config;
  readonly sipp: string;
  /** Files of this run (injection files). */
  readonly dir: string;
  /** End of the whole suite's budget (ms since the epoch). */
  readonly deadline: number;
  readonly registerInf: string;
  readonly memoryInf: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the server's CPU use over 250 ms falls below IDLE_CPU_SHARE of a core (the
 * retransmissions and timers of the warm-up have died down), at most `maxMs`.
 */
async function quiet(srv: ServerUnderTest, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  let before = srv.cpuMs();
  for (;;) {
    await sleep(250);
    const now = srv.cpuMs();
    if (now - before < 250 * IDLE_CPU_SHARE || Date.now() >= until || srv.exited() !== undefined) {
      return;
    }
    before = now;
  }
}

function authKeyword(u: BenchUser): string {
  return `[authentication username=${u.user} password=${u.password}]`;
}

/** The sipp UAC options of a workload against `target`. */
function uacOptions(
  ctx: Context,
  w: Workload,
  target: string,
  calls: number,
  rate: number,
): RunSippOptions {
  const timeoutMs = 2 * ((calls * 1000) / rate) + ctx.cfg.recvTimeoutMs + 4000;
  const common = {
    scenario: join(SCENARIOS, w.scenario),
    transport: 'u1' as const,
    bin: ctx.sipp,
    target,
    calls,
    rate,
    timeoutMs,
  };
  // -l: sipp's cap on calls in progress, far above what the step needs (open loop: sipp must not
  // slow down because the server does); -recv_timeout: a call that stalls fails.
  const open = Math.ceil((rate * (ctx.cfg.stepMs + ctx.cfg.recvTimeoutMs)) / 1000) + 100;
  const limits = [
    '-l',
    String(open),
    '-recv_timeout',
    `${ctx.cfg.recvTimeoutMs}ms`,
    '-buff_size',
    String(SIPP_BUFFER_BYTES),
  ];
  switch (w.kind) {
    case 'register':
      return {
        ...common,
        injectFile: ctx.registerInf,
        // The digest-uri is the Request-URI, sip:DOMAIN (RFC 3261 §22.4).
        extraArgs: ['-key', 'domain', DOMAIN, '-auth_uri', DOMAIN, ...limits],
      };
    case 'calls':
    case 'message': {
      const callee = w.kind === 'calls' ? BOB : CAROL;
      return {
        ...common,
        service: callee.user,
        extraArgs: [
          ...['-key', 'caller', ALICE.user, '-key', 'domain', DOMAIN],
          ...['-au', ALICE.user, '-ap', ALICE.password],
          ...['-auth_uri', `${callee.user}@${DOMAIN}`],
          ...limits,
        ],
      };
    }
  }
}

/**
 * The callee of a workload: a sipp UAS (uas-call.xml for bob, uas-message.xml for carol),
 * registered at the server by a third-party REGISTER (from another sipp, Contact = the UAS's
 * address), which a proxy reaches at its Contact.
 */
async function startCallee(ctx: Context, srv: ServerUnderTest, w: Workload): Promise<SippUas> {
  const callee = w.kind === 'calls' ? BOB : CAROL;
  const uas = await startSippUas({
    scenario: join(SCENARIOS, w.kind === 'calls' ? 'uas-call.xml' : 'uas-message.xml'),
    transport: 'u1',
    bin: ctx.sipp,
    service: callee.user,
    timeoutMs: 2 * ctx.cfg.stepMs + ctx.cfg.warmupMs + ctx.cfg.primeMs + 60_000,
    timewaitMs: 2000,
    // A call the caller gave up on does not wait for ever.
    extraArgs: ['-recv_timeout', '10000ms', '-buff_size', String(SIPP_BUFFER_BYTES)],
  });
  try {
    const inf = join(ctx.dir, `callee-${srv.kind}.csv`);
    writeFileSync(inf, `SEQUENTIAL\n${callee.user};${authKeyword(callee)};127.0.0.1:${uas.port}\n`);
    const reg = await runSipp({
      scenario: join(SCENARIOS, 'uac-register.xml'),
      transport: 'u1',
      bin: ctx.sipp,
      target: srv.target,
      calls: 1,
      rate: 10,
      timeoutMs: 20_000,
      injectFile: inf,
      extraArgs: ['-key', 'domain', DOMAIN, '-auth_uri', DOMAIN],
    });
    if (reg.stats?.successful !== 1) {
      throw new Error(`registering ${callee.user} failed\n${describeRun(reg)}`);
    }
    return uas;
  } catch (e) {
    await uas.stop({ now: true });
    throw e;
  }
}

/**
 * One step: a fresh server (and callee), a warm-up at the workload's warm-up rate and `primeMs`
 * at `rate` (neither counted), a wait for the server to idle, then sipp at `rate` for stepMs;
 * the server is stopped after.
 */
async function runStep(
  ctx: Context,
  factory: ServerFactory,
  w: Workload,
  rate: number,
  repeat: boolean,
  lastTry = false,
): Promise<Step> {
  const { cfg } = ctx;
  const srv = await factory.start();
  let callee: SippUas | undefined;
  try {
    const idleKb = srv.memoryKb();
    if (w.kind !== 'register') callee = await startCallee(ctx, srv, w);
    const warmCalls = Math.max(1, Math.round((w.warmupRate * cfg.warmupMs) / 1000));
    const warm = await runSipp(uacOptions(ctx, w, srv.target, warmCalls, w.warmupRate));
    // A fresh server that answers none of a slow warm-up did not start right (seen once with
    // Kamailio: every datagram of the step dropped, 0% CPU); that is not overload, and the
    // step runs again on another start (the ramp's retry) rather than capping the ramp.
    if (!lastTry && (warm.stats?.successful ?? 0) === 0) {
      throw new Error(`the fresh ${factory.kind} answered none of its ${warmCalls} warm-up calls`);
    }
    // The step's own rate for a moment: what a fresh process compiles only under that load
    // (fuller batches, tables and caches that turn over, timers firing in numbers) is compiled
    // before the step rather than in it. Not counted; its failures are reported with the
    // warm-up's.
    let primed = '';
    if (rate > w.warmupRate) {
      const primeCalls = Math.max(1, Math.round((rate * cfg.primeMs) / 1000));
      const prime = await runSipp(uacOptions(ctx, w, srv.target, primeCalls, rate));
      primed = failureCauses(prime, primeCalls);
    }
    await quiet(srv, 4000);
    srv.takeLog();

    const calls = Math.max(1, Math.round((rate * cfg.stepMs) / 1000));
    const port = Number(srv.target.split(':')[1]);
    const drops0 = udpDrops(port);
    const all0 = udpRcvbufErrors();
    const cpu0 = srv.cpuMs();
    const wait0 = srv.waitMs();
    const t0 = Date.now();
    const result = await runSipp(uacOptions(ctx, w, srv.target, calls, rate));
    const cpu1 = srv.cpuMs();
    const wait1 = srv.waitMs();
    const t1 = Date.now();
    const drops1 = udpDrops(port);
    const all1 = udpRcvbufErrors();
    const successful = result.stats?.successful ?? 0;
    const failed = Math.max(0, calls - successful);
    const achieved = achievedRate(result, calls, rate);
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
      causes: failureCauses(result, calls),
      warmup: [failureCauses(warm, warmCalls), primed === '' ? '' : `at the step's rate: ${primed}`]
        .filter((x) => x !== '')
        .join('; '),
      cpuShare: t1 > t0 ? (cpu1 - cpu0) / (t1 - t0) : undefined,
      cpuMsPerOp: successful > 0 ? (cpu1 - cpu0) / successful : undefined,
      waitShare: t1 > t0 ? (wait1 - wait0) / (t1 - t0) : undefined,
      drops: drops0 === undefined || drops1 === undefined ? undefined : drops1 - drops0,
      allDrops: all0 === undefined || all1 === undefined ? undefined : all1 - all0,
      log: srv.takeLog(),
      idleKb,
      peakKb: srv.peakKb(),
      serverExited: srv.exited(),
      verdict,
      repeat,
    };
  } finally {
    await callee?.stop({ now: true });
    await srv.stop();
  }
}

// ---- ramps ------------------------------------------------------------------------------------

/**
 * A failing step worth repeating once: the machine is shared, and one noisy step would otherwise
 * cap the whole ramp. Not one far over the limit (>= 10% failed, or placed at < half the rate).
 */
function marginal(s: Step): boolean {
  return (
    s.verdict !== 'pass' &&
    s.serverExited === undefined &&
    s.failed < 0.1 * s.calls &&
    (s.achieved ?? 0) >= 0.5 * s.rate
  );
}

/** Rough length of a step: server and sipp start, warm-up, the step, draining, stopping. */
function stepEstimateMs(cfg: Config): number {
  return cfg.stepMs + cfg.warmupMs + cfg.primeMs + 4500;
}

/**
 * Doubles the rate from the workload's start rate while steps pass (halves it while they fail),
 * then bisects (geometric mean) between the highest passing and the lowest failing rate, until
 * they are within `resolution` of each other, `maxSteps` ran, or `deadline` is near. A marginal
 * failure (see `marginal`) is repeated once at the same rate; the repeat decides.
 */
async function runRamp(
  ctx: Context,
  factory: ServerFactory,
  w: Workload,
  deadline: number,
): Promise<RampResult> {
  const { cfg } = ctx;
  const steps: Step[] = [];
  let pass: number | undefined;
  let fail: number | undefined;
  let rate = w.startRate;
  let repeat = false;
  console.log(`\n${w.kind} -> ${factory.kind} (one sipp call = ${w.unit}):`);
  printStepHeader();
  for (let i = 0; i < cfg.maxSteps; i++) {
    if (Date.now() + stepEstimateMs(cfg) > deadline) {
      console.log(`  WARNING: time budget reached, ${cfg.maxSteps - i} step(s) skipped`);
      break;
    }
    let step: Step;
    try {
      step = await runStep(ctx, factory, w, rate, repeat);
    } catch (e) {
      // A harness error, not a measurement (a port taken meanwhile, a removed directory).
      const why = e instanceof Error ? e.message : String(e);
      process.stderr.write(`bench server: step at ${rate}/s failed to run (${why}); once more\n`);
      step = await runStep(ctx, factory, w, rate, repeat, true);
    }
    steps.push(step);
    const repeating = !repeat && marginal(step) && i + 1 < cfg.maxSteps;
    printStep(steps.length, step, repeating);
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
  return { workload: w, steps, ...rampResult(steps) };
}

// ---- memory per binding -----------------------------------------------------------------------

interface MemoryReading {
  /** Switchboard: VmRSS after two forced full GCs; Kamailio: summed PSS (kB). */
  readonly residentKb: number | undefined;
  /** Switchboard: V8 heap in use after the GCs; Kamailio: shared memory in use (kB). */
  readonly usedKb: number | undefined;
  /** Switchboard: bytes of data in the SQLite store. */
  readonly storeBytes: number | undefined;
}

interface MemoryResult {
  readonly rate: number;
  readonly registered: number;
  readonly placed: number;
  readonly causes: string;
  readonly before: MemoryReading;
  readonly after: MemoryReading;
  readonly peakKb: number | undefined;
}

async function readMemory(srv: ServerUnderTest): Promise<MemoryReading> {
  const probe = await srv.collect();
  return {
    residentKb: probe?.residentKb ?? srv.memoryKb(),
    usedKb: probe?.usedKb,
    storeBytes: srv.storeBytes(),
  };
}

type MemoryPart = 'resident' | 'used' | 'store';

/** Growth per 10,000 registered users, MB; undefined when not measured. */
function per10k(m: MemoryResult | undefined, part: MemoryPart): number | undefined {
  if (m === undefined || m.registered === 0) return undefined;
  const bytes = (r: MemoryReading): number | undefined =>
    part === 'store'
      ? r.storeBytes
      : part === 'used'
        ? r.usedKb === undefined
          ? undefined
          : r.usedKb * 1024
        : r.residentKb === undefined
          ? undefined
          : r.residentKb * 1024;
  const a = bytes(m.before);
  const b = bytes(m.after);
  if (a === undefined || b === undefined) return undefined;
  return ((b - a) / 1024 / 1024) * (10_000 / m.registered);
}

/**
 * Memory per 10k bindings, plus the store's growth where there is a store. 'resident': RSS after
 * forced GCs (Switchboard) or summed PSS (Kamailio), what the OS sees; 'used': what the
 * allocator holds, V8 heap in use or Kamailio's shared memory in use.
 */
function perBindingMb(m: MemoryResult | undefined, part: 'resident' | 'used'): number | undefined {
  const mem = per10k(m, part);
  if (mem === undefined) return undefined;
  return mem + (per10k(m, 'store') ?? 0);
}

/**
 * A fresh server, warmed up with registrations of the ramp users; after `settleMs`, a reading;
 * 10,000 new users register once at `rate`; after `settleMs`, another reading.
 */
async function memoryPhase(
  ctx: Context,
  factory: ServerFactory,
  rate: number,
): Promise<MemoryResult> {
  const { cfg } = ctx;
  const settleMs = cfg.settleMs[factory.kind];
  const calls = cfg.memoryUsers;
  const w = WORKLOADS.register;
  console.log(
    `\nmemory -> ${factory.kind}: a fresh server, warm-up, wait ${(settleMs / 1000).toFixed(0)} s, ` +
      `read memory, register ${calls.toLocaleString('en-US')} new users once at ${rate}/s, wait ` +
      `${(settleMs / 1000).toFixed(0)} s, read memory`,
  );
  const srv = await factory.start({ gcProbe: true });
  try {
    const warmCalls = Math.max(1, Math.round((w.warmupRate * cfg.warmupMs) / 1000));
    await runSipp(uacOptions(ctx, w, srv.target, warmCalls, w.warmupRate));
    await sleep(settleMs);
    const before = await readMemory(srv);
    const result = await runSipp({
      ...uacOptions(ctx, w, srv.target, calls, rate),
      injectFile: ctx.memoryInf,
    });
    await sleep(settleMs);
    const after = await readMemory(srv);
    const registered = result.stats?.successful ?? 0;
    const m: MemoryResult = {
      rate,
      registered,
      placed: calls,
      causes: failureCauses(result, calls),
      before,
      after,
      peakKb: srv.peakKb(),
    };
    const arrow = (a: number | undefined, b: number | undefined): string =>
      `${mb(a)} -> ${mb(b)} MB`;
    const parts = [
      `${factory.kind === 'switchboard' ? 'RSS after full GC' : 'summed PSS'} ` +
        arrow(before.residentKb, after.residentKb),
    ];
    if (before.usedKb !== undefined || after.usedKb !== undefined) {
      const what = factory.kind === 'switchboard' ? 'V8 heap in use' : 'shared memory in use';
      parts.push(`${what} ${arrow(before.usedKb, after.usedKb)}`);
    }
    if (before.storeBytes !== undefined && after.storeBytes !== undefined) {
      parts.push(`store ${arrow(before.storeBytes / 1024, after.storeBytes / 1024)}`);
    }
    console.log(
      `  registered ${fmtInt(registered)} of ${fmtInt(calls)}` +
        `${m.causes === '' ? '' : ` (${m.causes})`}; ${parts.join('; ')}`,
    );
    if (registered < 0.99 * calls) {
      console.log(
        `  WARNING: fewer than 99% registered; the figures are scaled to 10,000 from ${registered}`,
      );
    }
    return m;
  } finally {
    await srv.stop();
  }
}

// ---- one server -------------------------------------------------------------------------------

interface ServerResult {
  readonly kind: ServerKind;
  readonly ramps: Partial<Record<Kind, RampResult>>;
  readonly memory: MemoryResult | undefined;
  readonly error: string | undefined;
}

/** The highest peak over every process of the server (every step and the memory phase), kB. */
function peakOf(r: ServerResult): number | undefined {
  const peaks = [
    ...Object.values(r.ramps).flatMap((ramp) => ramp.steps.map((s) => s.peakKb)),
    r.memory?.peakKb,
  ].filter((k): k is number => k !== undefined);
  return peaks.length === 0 ? undefined : Math.max(...peaks);
}

/** The highest peak over the processes of the reported (best) steps, kB. */
function peakAtBest(r: ServerResult): number | undefined {
  const peaks = Object.values(r.ramps)
    .map((ramp) => ramp.best?.peakKb)
    .filter((k): k is number => k !== undefined);
  return peaks.length === 0 ? undefined : Math.max(...peaks);
}

/** A deadline for the next part: what is left of the budget shared by weight. */
function share(ctx: Context, weight: number, weightsLeft: number): number {
  const left = ctx.deadline - Date.now();
  return Date.now() + Math.max(0, (left * weight) / Math.max(weight, weightsLeft));
}

/** Budget weights: a ramp's full length, and a memory phase's (mostly its two waits). */
function rampWeight(cfg: Config): number {
  return cfg.maxSteps * stepEstimateMs(cfg);
}
function memoryWeight(cfg: Config, kind: ServerKind): number {
  return 2 * cfg.settleMs[kind] + cfg.memoryUsers / 300 + 5000;
}

async function runServer(
  ctx: Context,
  prepare: () => ServerFactory,
  kind: ServerKind,
  after: readonly ServerKind[],
): Promise<ServerResult> {
  const { cfg } = ctx;
  const ramps: Partial<Record<Kind, RampResult>> = {};
  let memory: MemoryResult | undefined;
  let error: string | undefined;
  const laterWeight = after.reduce((w, k) => w + 3 * rampWeight(cfg) + memoryWeight(cfg, k), 0);
  const ramp = rampWeight(cfg);
  const mem = memoryWeight(cfg, kind);
  try {
    const factory = prepare();
    console.log(`\n## ${kind}: ${factory.description}`);
    ramps.register = await runRamp(
      ctx,
      factory,
      WORKLOADS.register,
      share(ctx, ramp, 3 * ramp + mem + laterWeight),
    );
    ramps.calls = await runRamp(
      ctx,
      factory,
      WORKLOADS.calls,
      share(ctx, ramp, 2 * ramp + mem + laterWeight),
    );
    ramps.message = await runRamp(
      ctx,
      factory,
      WORKLOADS.message,
      share(ctx, ramp, ramp + mem + laterWeight),
    );
    // Half the registration rate found, within 250..1000/s: 10,000 users in 10 to 40 s.
    const found = ramps.register.best?.achieved ?? 500;
    memory = await memoryPhase(ctx, factory, roundRate(Math.min(1000, Math.max(250, found / 2))));
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    console.log(`\nERROR (${kind}): ${error}`);
    process.stderr.write(`bench server: ${kind}: ${error}\n`);
  }
  return { kind, ramps, memory, error };
}

// ---- output -----------------------------------------------------------------------------------

const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);
const fmtInt = (n: number | undefined): string =>
  n === undefined ? 'n/a' : Math.round(n).toLocaleString('en-US');
const mb = (kb: number | undefined): string => (kb === undefined ? 'n/a' : (kb / 1024).toFixed(1));
const pct = (share: number | undefined): string =>
  share === undefined ? 'n/a' : (100 * share).toFixed(0);

function printStepHeader(): void {
  console.log(
    `  ${lpad('step', 4)} ${lpad('target/s', 8)} ${lpad('calls', 6)} ${lpad('failed', 6)}` +
      ` ${lpad('fail%', 6)} ${lpad('ok/s', 6)} ${lpad('retrans', 7)} ${lpad('resp ms', 7)}` +
      ` ${lpad('CPU%', 4)} ${lpad('wait%', 5)} ${lpad('CPUms/op', 8)} ${lpad('drops', 13)}` +
      ` ${lpad('peak MB', 7)} ${lpad('log', 5)}  verdict (failure causes)`,
  );
}

function printStep(n: number, s: Step, repeating: boolean): void {
  console.log(
    `  ${lpad(String(n), 4)} ${lpad(fmtInt(s.rate), 8)} ${lpad(fmtInt(s.calls), 6)}` +
      ` ${lpad(fmtInt(s.failed), 6)} ${lpad(((100 * s.failed) / s.calls).toFixed(2), 6)}` +
      ` ${lpad(fmtInt(s.achieved), 6)} ${lpad(fmtInt(s.retransmissions), 7)}` +
      ` ${lpad(s.responseMs === undefined ? 'n/a' : s.responseMs.toFixed(0), 7)}` +
      ` ${lpad(pct(s.cpuShare), 4)} ${lpad(pct(s.waitShare), 5)}` +
      ` ${lpad(s.cpuMsPerOp === undefined ? 'n/a' : s.cpuMsPerOp.toFixed(2), 8)}` +
      ` ${lpad(`${fmtInt(s.drops)}/${fmtInt(s.allDrops)}`, 13)}` +
      ` ${lpad(mb(s.peakKb), 7)} ${lpad(fmtInt(s.log.lines), 5)}` +
      `  ${verdictText(s, repeating)}${s.causes === '' ? '' : ` (${s.causes})`}` +
      `${s.warmup === '' ? '' : `; warm-up: ${s.warmup}`}`,
  );
  for (const t of s.log.top) console.log(`         log x${t.count}: ${t.sample}`);
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
    (s.serverExited === undefined ? '' : `; SERVER EXITED (${s.serverExited})`)
  );
}

/** What stopped a ramp, in words. */
function limitedBy(r: RampResult | undefined): string {
  if (r === undefined) return 'not run';
  const s = r.limit;
  if (s === undefined) return `not reached in ${r.steps.length} step(s)`;
  const at = `at ${fmtInt(s.rate)}/s`;
  if (s.serverExited !== undefined) return `server exited ${at}`;
  if (s.verdict === 'failed') return `failures ${at}`;
  return `sipp placed < ${MIN_ACHIEVED * 100}% of the rate ${at}`;
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

const rateOf = (r: ServerResult | undefined, k: Kind): number | undefined =>
  r === undefined || r.ramps[k] === undefined ? undefined : (r.ramps[k].best?.achieved ?? 0);

function ratio(a: number | undefined, b: number | undefined): string {
  // A growth that came out negative (resident memory: V8 gave pages back to the OS between
  // the readings) has no ratio worth printing.
  return a === undefined || b === undefined || b <= 0 || a < 0 ? 'n/a' : (a / b).toFixed(2);
}

/**
 * The two servers' steps compared at one rate: the highest target rate at which both passed
 * (the ramps share their doubling rates), else each server's best step. CPU per call falls as
 * the rate rises (more work per wake-up) and memory grows with it (more live transactions), so
 * comparing each server at its own best rate would not compare like with like.
 */
interface Compared {
  readonly rate: number | undefined;
  readonly sb: Step | undefined;
  readonly kam: Step | undefined;
}

function passedSteps(r: RampResult | undefined): Step[] {
  if (r === undefined) return [];
  return r.steps.filter((s, k) => r.steps[k + 1]?.repeat !== true && s.verdict === 'pass');
}

function compare(sb: ServerResult, kam: ServerResult | undefined, k: Kind): Compared {
  const own = { rate: undefined, sb: sb.ramps[k]?.best };
  if (kam === undefined) return { ...own, kam: undefined };
  const a = passedSteps(sb.ramps[k]);
  const b = passedSteps(kam.ramps[k]);
  const common = a
    .filter((s) => b.some((t) => t.rate === s.rate))
    .sort((x, y) => y.rate - x.rate)[0];
  if (common === undefined) return { ...own, kam: kam.ramps[k]?.best };
  return { rate: common.rate, sb: common, kam: b.find((t) => t.rate === common.rate) };
}

/** The highest peak memory over the three workloads' compared steps (kB). */
function peakCompared(
  sb: ServerResult,
  kam: ServerResult | undefined,
  side: 'sb' | 'kam',
): number | undefined {
  const peaks = KINDS.map(([k]) => compare(sb, kam, k)[side]?.peakKb).filter(
    (p): p is number => p !== undefined,
  );
  return peaks.length === 0 ? undefined : Math.max(...peaks);
}

/**
 * A rate whose ramp never failed is only a lower bound: the ratio is then marked >= (Switchboard
 * not reached), <= (Kamailio not reached) or ? (neither).
 */
function bound(sb: RampResult | undefined, kam: RampResult | undefined): string {
  const a = sb?.limit !== undefined;
  const b = kam?.limit !== undefined;
  return a ? (b ? '' : '<=') : b ? '>=' : '?';
}

const KINDS: readonly [Kind, string, string][] = [
  ['register', 'registrations/s (digest)', 'register'],
  ['calls', 'calls/s through the proxy', 'call'],
  ['message', 'MESSAGE/s through the proxy', 'message'],
];

function printSummary(sb: ServerResult, kam: ServerResult | undefined): void {
  console.log('\nsummary (rates: highest with < 1% failed sipp calls, the ok/s of that step):');
  console.log(
    `  ${pad('', 36)} ${lpad('Switchboard', 11)} ${lpad('Kamailio', 9)} ${lpad('ratio', 7)}  notes`,
  );
  const fmtMb = (n: number | undefined): string => (n === undefined ? 'n/a' : n.toFixed(1));
  const mbOf = (kb: number | undefined): number | undefined =>
    kb === undefined ? undefined : kb / 1024;
  const row = (label: string, a: string, b: string, r: string, note = ''): void => {
    console.log(
      `  ${pad(label, 36)} ${lpad(a, 11)} ${lpad(kam === undefined ? '-' : b, 9)}` +
        ` ${lpad(kam === undefined ? '-' : r, 7)}${note === '' ? '' : `  ${note}`}`,
    );
  };
  for (const [k, label] of KINDS) {
    const a = rateOf(sb, k);
    const b = rateOf(kam, k);
    const r = ratio(a, b);
    row(
      label,
      fmtInt(a),
      fmtInt(b),
      r === 'n/a' ? r : `${bound(sb.ramps[k], kam?.ramps[k])}${r}`,
      `limit: ${limitedBy(sb.ramps[k])}` +
        (kam === undefined ? '' : ` / ${limitedBy(kam.ramps[k])}`),
    );
  }
  const at = (c: Compared): string =>
    c.rate === undefined
      ? 'each at its best step'
      : `at ${fmtInt(c.rate)}/s, the highest rate both passed`;
  const f3 = (n: number | undefined): string => (n === undefined ? 'n/a' : n.toFixed(3));
  for (const [k, , unit] of KINDS) {
    const c = compare(sb, kam, k);
    row(
      `  server CPU ms per ${unit}`,
      f3(c.sb?.cpuMsPerOp),
      f3(c.kam?.cpuMsPerOp),
      ratio(c.sb?.cpuMsPerOp, c.kam?.cpuMsPerOp),
      at(c),
    );
  }
  for (const [k, , unit] of KINDS) {
    const c = compare(sb, kam, k);
    row(
      `  peak memory, ${unit} step, MB`,
      fmtMb(mbOf(c.sb?.peakKb)),
      fmtMb(mbOf(c.kam?.peakKb)),
      ratio(c.sb?.peakKb, c.kam?.peakKb),
      at(c),
    );
  }
  row(
    'peak resident memory, MB',
    fmtMb(mbOf(peakOf(sb))),
    fmtMb(mbOf(kam === undefined ? undefined : peakOf(kam))),
    ratio(peakOf(sb), kam === undefined ? undefined : peakOf(kam)),
    'every step, overloaded ones included (Kamailio: summed PSS)',
  );
  row(
    '  at the reported rates, MB',
    fmtMb(mbOf(peakAtBest(sb))),
    fmtMb(mbOf(kam === undefined ? undefined : peakAtBest(kam))),
    ratio(peakAtBest(sb), kam === undefined ? undefined : peakAtBest(kam)),
    'the highest over the best steps of the three ramps',
  );
  row(
    'memory per 10k bindings, MB',
    fmtMb(perBindingMb(sb.memory, 'used')),
    fmtMb(perBindingMb(kam?.memory, 'used')),
    ratio(perBindingMb(sb.memory, 'used'), perBindingMb(kam?.memory, 'used')),
    'held by the allocator: V8 heap in use after full GC + SQLite store / shared memory in use',
  );
  const kamStore = kam?.memory?.before.storeBytes === undefined ? undefined : kam.memory;
  row(
    '  of which SQLite store, MB',
    fmtMb(per10k(sb.memory, 'store')),
    kamStore === undefined ? '-' : fmtMb(per10k(kamStore, 'store')),
    '-',
    `data pages in use, WAL included (Kamailio: ${kamStore === undefined ? 'usrloc in shared memory only' : 'its usrloc database'})`,
  );
  row(
    'resident per 10k bindings, MB',
    fmtMb(perBindingMb(sb.memory, 'resident')),
    fmtMb(perBindingMb(kam?.memory, 'resident')),
    ratio(perBindingMb(sb.memory, 'resident'), perBindingMb(kam?.memory, 'resident')),
    'what the OS sees: RSS after full GC + SQLite store / summed PSS (reused pages do not count; below 0: pages went back to the OS)',
  );
  console.log('\nfailures at the reported rates (failed or unfinished sipp calls / placed):');
  for (const r of [sb, kam]) {
    if (r === undefined) continue;
    const parts = KINDS.map(([k]) => {
      const b = r.ramps[k]?.best;
      return b === undefined
        ? `${k} n/a`
        : `${k} ${fmtInt(b.failed)}/${fmtInt(b.calls)} ` +
            `(${((100 * b.failed) / b.calls).toFixed(2)}%, ${fmtInt(b.retransmissions)} retrans.)`;
    });
    console.log(`  ${r.kind}: ${parts.join('; ')}`);
    if (r.memory !== undefined) {
      console.log(
        `  ${r.kind} memory phase: ${fmtInt(r.memory.registered)}/${fmtInt(r.memory.placed)} ` +
          `registered at ${r.memory.rate}/s${r.memory.causes === '' ? '' : ` (${r.memory.causes})`}`,
      );
    }
    if (r.error !== undefined) console.log(`  ${r.kind} ERROR: ${r.error}`);
  }
}

function printMachineLines(sb: ServerResult, kam: ServerResult | undefined): void {
  const int = (n: number | undefined): string => (n === undefined ? 'n/a' : String(Math.round(n)));
  const dec = (n: number | undefined, digits = 1): string =>
    n === undefined ? 'n/a' : n.toFixed(digits);
  const mbOf = (kb: number | undefined): number | undefined =>
    kb === undefined ? undefined : kb / 1024;
  const lines: string[] = [];
  const emit = (prefix: string, r: ServerResult, cpu: (k: Kind) => number | undefined): void => {
    lines.push(`${prefix}_register_per_s=${int(rateOf(r, 'register'))}`);
    lines.push(`${prefix}_calls_per_s=${int(rateOf(r, 'calls'))}`);
    lines.push(`${prefix}_message_per_s=${int(rateOf(r, 'message'))}`);
    lines.push(`${prefix}_peak_rss_mb=${int(mbOf(peakOf(r)))}`);
    lines.push(`${prefix}_peak_rss_at_reported_rates_mb=${int(mbOf(peakAtBest(r)))}`);
    lines.push(`${prefix}_rss_per_10k_bindings_mb=${dec(perBindingMb(r.memory, 'resident'))}`);
    lines.push(`${prefix}_mem_per_10k_bindings_mb=${dec(perBindingMb(r.memory, 'used'))}`);
    for (const [k, , unit] of KINDS) lines.push(`${prefix}_cpu_ms_per_${unit}=${dec(cpu(k), 3)}`);
  };
  emit('server', sb, (k) => compare(sb, kam, k).sb?.cpuMsPerOp);
  lines.push(`server_peak_rss_at_common_rates_mb=${int(mbOf(peakCompared(sb, kam, 'sb')))}`);
  lines.push(`server_store_per_10k_bindings_mb=${dec(per10k(sb.memory, 'store'))}`);
  if (kam !== undefined) {
    emit('kamailio', kam, (k) => compare(sb, kam, k).kam?.cpuMsPerOp);
    lines.push(`kamailio_peak_rss_at_common_rates_mb=${int(mbOf(peakCompared(sb, kam, 'kam')))}`);
    for (const [k] of KINDS) {
      lines.push(`ratio_${k}_per_s=${ratio(rateOf(sb, k), rateOf(kam, k))}`);
    }
    lines.push(`ratio_peak_rss=${ratio(peakOf(sb), peakOf(kam))}`);
    lines.push(`ratio_peak_rss_at_reported_rates=${ratio(peakAtBest(sb), peakAtBest(kam))}`);
    lines.push(
      `ratio_peak_rss_at_common_rates=${ratio(peakCompared(sb, kam, 'sb'), peakCompared(sb, kam, 'kam'))}`,
    );
    const per = (r: ServerResult, part: 'resident' | 'used'): number | undefined =>
      perBindingMb(r.memory, part);
    lines.push(`ratio_rss_per_10k_bindings=${ratio(per(sb, 'resident'), per(kam, 'resident'))}`);
    lines.push(`ratio_mem_per_10k_bindings=${ratio(per(sb, 'used'), per(kam, 'used'))}`);
    for (const [k, , unit] of KINDS) {
      const c = compare(sb, kam, k);
      lines.push(`ratio_cpu_per_${unit}=${ratio(c.sb?.cpuMsPerOp, c.kam?.cpuMsPerOp)}`);
    }
  }
  for (const l of lines) console.log(l);
}

// ---- the suite --------------------------------------------------------------------------------

/** `npm run build`: the server runs compiled (dist/), not through tsx. */
function buildCompiled(repoRoot: string): void {
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 },
  );
  if (r.status !== 0) {
    throw new Error(`npm run build failed (${String(r.status)}): ${r.stdout}${r.stderr}`);
  }
}

/** TMPDIR as the benchmark found it: run() points it elsewhere for sipp's files. */
const ORIGINAL_TMPDIR = process.env.TMPDIR;

/**
 * The environment of `switchboard` processes: ours, with the original TMPDIR, and
 * SWITCHBOARD_RUN=compiled: bin/switchboard.js runs dist/ (built by `buildCompiled`), as a
 * deployed server would, or refuses to start.
 */
function switchboardEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SWITCHBOARD_RUN: 'compiled' };
  if (ORIGINAL_TMPDIR === undefined) delete env.TMPDIR;
  else env.TMPDIR = ORIGINAL_TMPDIR;
  return env;
}

/** A sipp injection file: user, [authentication] keyword, Contact host:port (nobody calls it). */
function writeInf(path: string, users: readonly BenchUser[]): void {
  writeFileSync(
    path,
    ['SEQUENTIAL', ...users.map((u) => `${u.user};${authKeyword(u)};127.0.0.1:5999`)].join('\n') +
      '\n',
  );
}

async function run(opts: SuiteOptions): Promise<void> {
  const cfg = opts.quick ? QUICK : FULL;
  const started = Date.now();
  console.log(`# suite server${opts.quick ? ' (--quick)' : ''}`);

  const sipp = findOnPath('sipp');
  if (sipp === undefined || process.platform !== 'linux') {
    const why =
      sipp === undefined
        ? 'sipp is not on PATH (Debian package sip-tester: ' +
          'apt-get install -y --no-install-recommends sip-tester)'
        : `it needs Linux /proc (VmHWM, PSS, CPU times, /proc/net/udp); this is ${process.platform}`;
    const bar = '!'.repeat(78);
    process.stderr.write(`${bar}\n!! server suite SKIPPED: ${why}\n${bar}\n`);
    console.log(`SKIPPED: ${why}`);
    return;
  }
  const kamailio = findOnPath('kamailio') ?? findOnPath('/usr/sbin/kamailio');
  const repoRoot = dirname(opts.benchDir);
  const cpu = cpus();
  console.log(
    `node ${process.version} ${process.platform}/${process.arch}, ${cpu.length} CPU(s): ` +
      `${cpu[0]?.model.trim() ?? 'unknown'}; sipp ${sippVersion(sipp)} (${sipp}); ` +
      (kamailio === undefined
        ? 'kamailio not installed'
        : `${kamailioVersion(kamailio)} (${kamailio})`),
  );
  console.log(
    `sipp -buff_size ${SIPP_BUFFER_BYTES} (the kernel caps it: net.core.rmem_max ` +
      `${procSys('net/core/rmem_max') ?? 'unknown'}, wmem_max ${procSys('net/core/wmem_max') ?? 'unknown'})`,
  );
  const loadBefore = loadavg()[0]!;
  console.log(
    `load average (1 min) before: ${loadBefore.toFixed(2)}${busy(loadBefore, cpu.length)}`,
  );
  // SB_BENCH_SUBJECT=floor: bench/macro/server/floor.mjs in Switchboard's place (servers.ts).
  const floor = process.env.SB_BENCH_SUBJECT === 'floor';
  if (floor) {
    const bar = '!'.repeat(78);
    const line =
      'SB_BENCH_SUBJECT=floor: the "switchboard" figures below are those of ' +
      'bench/macro/server/floor.mjs, the least work a Node.js process can do and pass the ' +
      'scenarios. Not a SIP server.';
    process.stderr.write(`${bar}\n!! ${line}\n${bar}\n`);
    console.log(line);
  }
  const kamBindings: KamailioBindings =
    kamailio === undefined ? { kind: 'memory' } : kamailioBindings();
  if (kamailio !== undefined) console.log(`kamailio: ${describeKamailioBindings(kamBindings)}`);
  if (kamailio === undefined) {
    const bar = '!'.repeat(78);
    process.stderr.write(
      `${bar}\n!! server suite: kamailio is not installed, Switchboard only (no ratios). ` +
        'Debian: apt-get install -y --no-install-recommends kamailio\n' +
        `${bar}\n`,
    );
  }
  const rel = (p: string): string => relative(repoRoot, p);
  console.log(
    `sipp scenarios in ${rel(SCENARIOS)}/ (UDP, 127.0.0.1 both ends); users: ` +
      `${cfg.users.toLocaleString('en-US')} for the registration ramp, ` +
      `${cfg.memoryUsers.toLocaleString('en-US')} more for the memory phase, alice -> bob ` +
      '(calls), alice -> carol (MESSAGE)',
  );
  console.log(
    `step: a fresh server process (and callee UAS), ${cfg.warmupMs / 1000} s of warm-up at a low ` +
      `rate and ${cfg.primeMs / 1000} s at the step's rate (neither counted), then sipp -r RATE -m RATE*${cfg.stepMs / 1000} -recv_timeout ` +
      `${cfg.recvTimeoutMs}ms; pass = < ${MAX_FAILED * 100}% of the sipp calls failed or ` +
      `unfinished and placed at >= ${MIN_ACHIEVED * 100}% of the target rate; ramp: x2 from a ` +
      `start rate, then bisection to ${Math.round((cfg.resolution - 1) * 100)}%, at most ` +
      `${cfg.maxSteps} steps; a marginal failure (< 10% failed) is repeated once`,
  );
  console.log(
    '  ok/s: successful sipp calls per second of the window sipp placed them in. retrans: ' +
      'retransmissions by sipp. resp ms: mean time to the final 200. CPU%: server CPU time / ' +
      'wall time (all its processes; 100 = one core). wait%: time the server was runnable but ' +
      'waited for a CPU / wall time. CPUms/op: server CPU time per successful sipp call. drops: ' +
      "datagrams the kernel dropped on the server's socket (receive buffer full) / on every UDP " +
      "socket of the machine. peak MB: the step's server, VmHWM of its one process (with " +
      'workers, and for Kamailio: the highest summed PSS of its processes). log: server log ' +
      'lines (Switchboard at warn, Kamailio at debug=1).',
  );

  buildCompiled(repoRoot);
  const savedTmpDir = process.env.TMPDIR;
  const runDir = mkdtempSync(join(tmpdir(), 'sb-bench-server-'));
  process.env.TMPDIR = join(runDir, 'tmp');
  mkdirSync(process.env.TMPDIR);
  const ctx: Context = {
    cfg,
    sipp,
    dir: runDir,
    deadline: started + cfg.budgetMs,
    registerInf: join(runDir, 'register.csv'),
    memoryInf: join(runDir, 'memory.csv'),
  };
  const rampUsers = Array.from({ length: cfg.users }, (_, i) => rampUser(i));
  const memUsers = Array.from({ length: cfg.memoryUsers }, (_, i) => memoryUser(i));
  const allUsers = [ALICE, BOB, CAROL, ...rampUsers, ...memUsers];
  writeInf(ctx.registerInf, rampUsers);
  writeInf(ctx.memoryInf, memUsers);
  const lifetimeMs = 4 * (cfg.stepMs + cfg.warmupMs + cfg.primeMs) + 2 * TIMER_J_MS + 120_000;

  let sb: ServerResult;
  let kam: ServerResult | undefined;
  try {
    sb = await runServer(
      ctx,
      () =>
        floor
          ? prepareFloor({ repoRoot, lifetimeMs, workers: switchboardWorkers() })
          : prepareSwitchboard({
              repoRoot,
              dir: join(runDir, 'switchboard'),
              users: allUsers,
              env: switchboardEnv(),
              lifetimeMs,
              workers: switchboardWorkers(),
            }),
      'switchboard',
      kamailio === undefined ? [] : ['kamailio'],
    );
    if (kamailio !== undefined) {
      kam = await runServer(
        ctx,
        () =>
          prepareKamailio({
            bin: kamailio,
            kamcmd: findOnPath('kamcmd') ?? findOnPath('/usr/sbin/kamcmd'),
            cfg: KAMAILIO_CFG,
            dir: join(runDir, 'kamailio'),
            users: allUsers,
            lifetimeMs,
            shmMb: KAMAILIO_SHM_MB,
            bindings: kamBindings,
          }),
        'kamailio',
        [],
      );
    }
  } finally {
    if (savedTmpDir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpDir;
    rmSync(runDir, { recursive: true, force: true });
  }

  printSummary(sb, kam);
  console.log('\nnotes:');
  const notes = [
    'Figures are noisy: sipp (UAC and UAS) and the server share the machine ' +
      `(${cpu.length} CPU(s)) with whatever else runs (wait% shows how much). Compare the ratios ` +
      'of one run, not absolute rates across runs. CPU ms per sipp call is the steadier figure.',
    (switchboardWorkers() === 1
      ? 'Switchboard is one Node.js process (one core for JavaScript); '
      : `Switchboard is a supervisor and ${switchboardWorkers()} worker processes (workers:, ` +
        'each message handled by the worker that owns its Call-ID; the memory phase runs one ' +
        'process); ') +
      `Kamailio runs ${cpu.length} UDP worker processes (-n = cores) plus its timer processes. ` +
      'sipp is one ' +
      "process per side: at Kamailio's rates the load generator may be the limit (then the " +
      'rate ratio overstates Switchboard; the CPU ratio does not).',
    'Open loop: sipp places calls at the target rate whatever the server does; a call fails on ' +
      'an unexpected message, on -recv_timeout, or when unfinished at the end of the step. ' +
      'Retransmissions alone do not fail it, but they count: ok/s is over the time until the ' +
      'last call ended (less the mean call length), so calls that completed late on a ' +
      'retransmission lower it.',
    'Overload: Switchboard drops new requests without credentials while its UDP reads stay ' +
      'behind (limits.shedAfter, 100 ms of full read batches); sipp retransmits them. Kamailio ' +
      'as configured here does not shed; its kernel drops what its buffer cannot hold.',
    `Switchboard keeps a finished UDP transaction for Timer J / L (64*T1 = ${TIMER_J_MS / 1000} ` +
      's, RFC 3261 §17.2.2, RFC 6026) and sends its 401/407 as a stateless UAS (§8.2.7); Kamailio ' +
      'sends 401/407 and the REGISTER 200 statelessly (sl) and keeps a finished transaction for ' +
      `tm's wait timer (${KAMAILIO_WT_MS / 1000} s). Both at their defaults but Kamailio's shared ` +
      `memory: -m ${KAMAILIO_SHM_MB} MB (its default of 64 runs out in overloaded steps).`,
    `Bindings: Switchboard commits each REGISTER's bindings to SQLite before its 200 (they ` +
      `survive a restart); Kamailio: ${describeKamailioBindings(kamBindings)}` +
      ' (SB_BENCH_KAMAILIO_BINDINGS=memory|sqlite). Write-back answers before writing and loses ' +
      "the last interval's changes in a crash; Kamailio's write-through (db_mode 1) fails on " +
      'SQLite with several processes (no busy timeout in db_sqlite 5.6).',
    'Memory per 10k bindings, on a fresh server after a warm-up: a reading, 10,000 new users ' +
      'register once, another reading; each reading follows a wait for the transactions before ' +
      `it to end (${cfg.settleMs.switchboard / 1000} s Switchboard: Timer J; ` +
      `${cfg.settleMs.kamailio / 1000} s Kamailio). "memory" is what the allocator holds: ` +
      'Switchboard the V8 heap in use after two forced full GCs (bench/macro/server/' +
      'gc-probe.mjs, loaded in that process only) plus the data pages of its SQLite store, where ' +
      'the bindings live; Kamailio its shared memory in use (kamcmd core.shmmem real_used; ' +
      'usrloc keeps bindings there). "resident" is what the OS sees: RSS after the GCs + store ' +
      'vs. summed PSS (Kamailio reuses pages it touched at start, so its PSS hardly moves).',
  ];
  for (const n of notes) console.log(`  - ${n}`);
  const loadAfter = loadavg()[0]!;
  console.log(
    `\nsuite took ${((Date.now() - started) / 1000).toFixed(1)} s; load average (1 min) after: ` +
      `${loadAfter.toFixed(2)}${busy(loadAfter, cpu.length)}`,
  );
  printMachineLines(sb, kam);
}

export const suite: Suite = {
  name: 'server',
  description:
    'switchboard serve (registrar + proxy) under sipp over UDP: registrations/s, calls/s and ' +
    'MESSAGE/s at < 1% failures, peak RSS, memory per 10k bindings; vs Kamailio when installed',
  run,
};
