/**
 * The servers the server suite (server.bench.ts) drives, each a child process on 127.0.0.1 UDP.
 * `prepare*` writes the users once; `start()` then starts a fresh process on a fresh copy of that
 * state, as many times as the suite needs (one per step):
 *
 * - Switchboard: `node bin/switchboard.js serve` on a copy of a data directory where `switchboard
 *   domain add` and `switchboard user import` put the users (no bindings yet), with a YAML
 *   configuration (MD5 challenges only: sipp 3.6.1 gives up on SHA-256 ones).
 * - Kamailio: `kamailio -DD -E` with bench/kamailio/kamailio.cfg, its users' H(A1) in a db_text
 *   table that the configuration loads into an htable, children = the machine's cores, runtime
 *   directory in a temporary directory.
 *
 * Both give the benchmark the same view: the target address, CPU time used and time spent waiting
 * for a CPU, resident memory now and at its peak, the log lines written since the last look, and
 * a bounded stop. Every process started here is SIGKILLed when the benchmark exits or is killed,
 * whatever happened.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { freePort, pollUntil, waitFor } from '../../test/support/tools.ts';
import {
  childPids,
  cpuMs,
  procStatusKb,
  pssKb,
  runQueueWaitMs,
  tryKill,
  udpBoundBy,
} from '../lib/proc.ts';

export const LOOPBACK = '127.0.0.1';
/** The one domain both servers serve. */
export const DOMAIN = 'example.com';

/** A user of the served domain. */
export interface BenchUser {
  readonly user: string;
  readonly password: string;
}

/** H(A1) for MD5 digest: MD5(username ":" realm ":" password), RFC 2617 §3.2.2.2. */
function ha1Md5(user: string, realm: string, password: string): string {
  return createHash('md5').update(`${user}:${realm}:${password}`).digest('hex');
}

export type ServerKind = 'switchboard' | 'kamailio';

/** Counts of the log lines a server wrote, by line with numbers blanked out. */
export interface LogTally {
  readonly lines: number;
  /** The most frequent kinds of line: a sample of each and how often it came. */
  readonly top: readonly { readonly sample: string; readonly count: number }[];
}

export interface ServerUnderTest {
  readonly kind: ServerKind;
  /** `127.0.0.1:PORT` */
  readonly target: string;
  /** Processes of the server (Kamailio: the main process and its children). */
  pids(): number[];
  /** User + system CPU time of all its processes so far, ms. */
  cpuMs(): number;
  /** Time its processes (Switchboard: its main thread) were runnable but waited for a CPU, ms. */
  waitMs(): number;
  /**
   * Resident memory now, kB. Switchboard: VmRSS. Kamailio: the sum of the PSS of its processes
   * (its shared memory counted once).
   */
  memoryKb(): number | undefined;
  /**
   * Peak resident memory so far, kB. Switchboard: VmHWM. Kamailio: the highest memoryKb()
   * sampled (every 250 ms and at each call).
   */
  peakKb(): number | undefined;
  /** Switchboard: bytes of data in its SQLite store (pages in use, WAL included); else undefined. */
  storeBytes(): number | undefined;
  /**
   * Memory in use by the server's allocator, and resident memory right after, kB:
   * - Switchboard started with `gcProbe`: two full garbage collections, then V8's heap in use,
   *   and VmRSS;
   * - Kamailio: its shared memory in use (`kamcmd core.shmmem` real_used: usrloc, tm, htable live
   *   there), and the summed PSS.
   * Undefined when it cannot be read.
   */
  collect(): Promise<{ usedKb: number; residentKb: number | undefined } | undefined>;
  /** Log lines written since the previous call. */
  takeLog(): LogTally;
  /** Undefined while it runs; else how it exited and its last log line. */
  exited(): string | undefined;
  /** SIGTERM, SIGKILL after a few seconds (Kamailio: its children too). */
  stop(): Promise<void>;
}

// ---- every process started here dies with the benchmark ----------------------------------

/** Pids to SIGKILL if the benchmark exits or is killed. */
const live = new Map<ChildProcess, () => number[]>();

function killLive(): void {
  for (const [child, pids] of live) {
    for (const pid of pids()) tryKill(pid, 'SIGKILL');
    if (child.pid !== undefined) tryKill(child.pid, 'SIGKILL');
  }
  live.clear();
}

process.once('exit', killLive);
// Killed by a signal, the process runs no 'exit' listeners: kill the servers, then die of the same
// signal (test/support/tools.ts does the same for sipp; whichever runs last re-raises it with no
// listener left, so the default action applies).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killLive();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  });
}

// ---- log lines ---------------------------------------------------------------------------

/** Keeps counts of log lines by kind, bounded in kinds and in line length. */
class LogCounter {
  private counts = new Map<string, { sample: string; count: number }>();
  private lines = 0;
  private partial = '';
  last = '';
  /** V8 heap bytes in use reported by gc-probe.mjs lines (`sb-bench-heap {...}`), in order. */
  readonly probes: number[] = [];

  constructor(private readonly kindOf: (line: string) => string) {}

  feed(chunk: string): void {
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = (parts.pop() ?? '').slice(-4096);
    for (const raw of parts) {
      const line = raw.trim();
      if (line === '') continue;
      const probe = /^sb-bench-heap (\{.*\})$/.exec(line);
      if (probe !== null) {
        this.probes.push(Number((JSON.parse(probe[1]!) as { usedHeap?: unknown }).usedHeap));
        continue;
      }
      this.lines++;
      this.last = line.slice(0, 400);
      const kind = this.kindOf(line).slice(0, 200);
      const entry = this.counts.get(kind);
      if (entry !== undefined) entry.count++;
      else if (this.counts.size < 200)
        this.counts.set(kind, { sample: line.slice(0, 400), count: 1 });
    }
  }

  take(): LogTally {
    const top = [...this.counts.values()].sort((a, b) => b.count - a.count).slice(0, 5);
    const tally = { lines: this.lines, top };
    this.counts = new Map();
    this.lines = 0;
    return tally;
  }
}

/** Switchboard's JSON log lines by level and msg; anything else by its text without digits. */
function switchboardLogKind(line: string): string {
  try {
    const o = JSON.parse(line) as { level?: unknown; msg?: unknown; service?: unknown };
    return `${String(o.level)} ${String(o.service ?? '')} ${String(o.msg)}`;
  } catch {
    return line.replace(/\d+/g, '#');
  }
}

/** Kamailio's lines (` 0(1234) ERROR: <core> [file.c:12]: fn(): text`) without the numbers. */
function kamailioLogKind(line: string): string {
  return line.replace(/\d+/g, '#');
}

// ---- a child process ---------------------------------------------------------------------

interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly log: LogCounter;
  readonly stdout: () => string;
  exitInfo(): string | undefined;
  readonly exit: Promise<void>;
}

function spawnTracked(
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; lifetimeMs: number },
  kindOf: (line: string) => string,
  extraPids: () => number[],
): Spawned {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  live.set(child, extraPids);
  const log = new LogCounter(kindOf);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out = (out + chunk).slice(-16_384);
  });
  // Kamailio logs to stderr (-E); Switchboard's log is JSON lines on stderr too.
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => log.feed(chunk));
  let exitInfo: string | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('close', (code, signal) => {
      exitInfo = `code ${String(code)}, signal ${String(signal)}${log.last === '' ? '' : `: ${log.last}`}`;
      live.delete(child);
      resolve();
    });
  });
  // Whatever happens, the process does not outlive its share of the run.
  const hardKill = setTimeout(() => {
    for (const p of extraPids()) tryKill(p, 'SIGKILL');
    tryKill(pid, 'SIGKILL');
  }, options.lifetimeMs);
  hardKill.unref();
  void exit.then(() => clearTimeout(hardKill));
  return { child, pid, log, stdout: () => out, exitInfo: () => exitInfo, exit };
}

/** SIGTERM, then SIGKILL (and to `others` too) when it has not exited within `graceMs`. */
async function stopSpawned(s: Spawned, others: () => number[], graceMs: number): Promise<void> {
  const remembered = others();
  tryKill(s.pid, 'SIGTERM');
  if ((await waitFor(s.exit, graceMs)) === undefined) {
    tryKill(s.pid, 'SIGKILL');
    await waitFor(s.exit, 5000);
  }
  // Kamailio's main process ends its children on SIGTERM; make sure of it.
  for (const pid of remembered) tryKill(pid, 'SIGKILL');
}

/**
 * A server of several processes (Kamailio, Switchboard with workers), measured as one: CPU
 * and run-queue time summed, memory as the summed PSS (pages they share counted once), the
 * peak the highest sum sampled every 250 ms and at each reading, until the process exits.
 */
function processGroup(
  s: Spawned,
  all: () => number[],
): {
  meters: Pick<ServerUnderTest, 'pids' | 'cpuMs' | 'waitMs' | 'memoryKb' | 'peakKb'>;
  stopSampling: () => void;
} {
  let peak = 0;
  const memoryKb = (): number | undefined => {
    let sum = 0;
    for (const pid of all()) {
      const p = pssKb(pid);
      if (p === undefined) return undefined;
      sum += p;
    }
    peak = Math.max(peak, sum);
    return sum;
  };
  const sampler = setInterval(memoryKb, 250);
  sampler.unref();
  void s.exit.then(() => clearInterval(sampler));
  memoryKb();
  return {
    meters: {
      pids: all,
      cpuMs: () => all().reduce((sum, pid) => sum + (cpuMs(pid) ?? 0), 0),
      waitMs: () => all().reduce((sum, pid) => sum + (runQueueWaitMs(pid) ?? 0), 0),
      memoryKb,
      peakKb: () => {
        memoryKb();
        return peak === 0 ? undefined : peak;
      },
    },
    stopSampling: () => clearInterval(sampler),
  };
}

// ---- Switchboard -------------------------------------------------------------------------

export interface SwitchboardOptions {
  readonly repoRoot: string;
  /** A fresh directory of this run: template data directory, configuration, one dir per start. */
  readonly dir: string;
  readonly users: readonly BenchUser[];
  /** The server's environment (TMPDIR as the benchmark found it: tsx caches there). */
  readonly env: NodeJS.ProcessEnv;
  /** Bound on the life of each process started. */
  readonly lifetimeMs: number;
  /** `workers` of the configuration: processes sharing the listener (default 1). */
  readonly workers?: number;
  /** More lines of YAML for the configuration (e.g. a `presence:` section); default none. */
  readonly config?: readonly string[];
}

export interface StartOptions {
  /**
   * Switchboard: load bench/macro/server/gc-probe.mjs (with --expose-gc), so that `collect()`
   * works. Used for the memory phase only.
   */
  readonly gcProbe?: boolean;
}

/** Starts fresh server processes on the prepared state. */
export interface ServerFactory {
  readonly kind: ServerKind;
  /** How a process is started, for the report. */
  readonly description: string;
  start(options?: StartOptions): Promise<ServerUnderTest>;
}

const BIN = 'bin/switchboard.js';
const GC_PROBE = fileURLToPath(new URL('./server/gc-probe.mjs', import.meta.url));

function cli(repoRoot: string, env: NodeJS.ProcessEnv, args: readonly string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  if (r.status !== 0) {
    throw new Error(`switchboard ${args.join(' ')} failed (${String(r.status)}): ${r.stderr}`);
  }
  return r.stdout;
}

/**
 * Bytes of data in the SQLite store: (page_count - freelist_count) * page_size, read through a
 * read-only connection (WAL mode: it sees the pages still in the WAL too). Undefined on error.
 */
function sqliteDataBytes(file: string): number | undefined {
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      const n = (pragma: string): number => Number(db.pragma(pragma, { simple: true }));
      return (n('page_count') - n('freelist_count')) * n('page_size');
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/**
 * Imports the users into a template data directory (`switchboard domain add`, `switchboard user
 * import`) and writes the configuration. Each start copies the template: no bindings.
 */
export function prepareSwitchboard(o: SwitchboardOptions): ServerFactory {
  const workers = o.workers ?? 1;
  const template = join(o.dir, 'template');
  mkdirSync(template, { recursive: true });
  const csv = join(o.dir, 'users.csv');
  writeFileSync(
    csv,
    ['aor,password', ...o.users.map((u) => `${u.user}@${DOMAIN},${u.password}`)].join('\n') + '\n',
  );
  cli(o.repoRoot, o.env, ['domain', 'add', DOMAIN, '--data-dir', template]);
  const imported = cli(o.repoRoot, o.env, ['user', 'import', csv, '--data-dir', template]);
  if (!new RegExp(`imported ${o.users.length} users`).test(imported)) {
    throw new Error(`switchboard user import: unexpected output ${JSON.stringify(imported)}`);
  }
  const config = join(o.dir, 'switchboard.yaml');
  writeFileSync(
    config,
    [
      '# npm run bench -- server (bench/macro/servers.ts). Everything else at its default.',
      `domains: [${DOMAIN}]`,
      'logLevel: warn',
      'auth:',
      '  algorithms: [MD5]',
      `workers: ${workers}`,
      ...(o.config ?? []),
      '',
    ].join('\n'),
  );
  let starts = 0;
  const args = (dataDir: string): string[] => [
    BIN,
    'serve',
    '--config',
    config,
    '--data-dir',
    dataDir,
    '--listen',
    `udp:${LOOPBACK}:0`,
  ];
  return {
    kind: 'switchboard',
    description:
      `node ${args('DATADIR').join(' ')} (compiled: dist/ from npm run build): ` +
      (workers === 1
        ? 'one process'
        : `a supervisor and ${workers} worker processes sharing the socket (the memory phase: ` +
          'one process, --workers 1, for its heap probe)') +
      '; config: MD5 challenges only, logLevel warn, the rest at the defaults; DATADIR a fresh ' +
      'copy of the imported users for each start',
    start: async (so = {}) => {
      const dataDir = join(o.dir, `run-${++starts}`);
      cpSync(template, dataDir, { recursive: true });
      // The heap probe is loaded into one process; worker processes do not get it.
      const single = so.gcProbe === true || workers === 1;
      try {
        return await startSwitchboard(
          o,
          dataDir,
          [...args(dataDir), ...(single ? ['--workers', '1'] : [])],
          so.gcProbe === true,
          !single,
        );
      } catch (e) {
        rmSync(dataDir, { recursive: true, force: true });
        throw e;
      }
    },
  };
}

async function startSwitchboard(
  o: SwitchboardOptions,
  dataDir: string,
  args: readonly string[],
  gcProbe: boolean,
  cluster: boolean,
): Promise<ServerUnderTest> {
  const node = gcProbe ? ['--expose-gc', '--import', pathToFileURL(GC_PROBE).href] : [];
  const s = spawnTracked(
    process.execPath,
    [...node, ...args],
    { cwd: o.repoRoot, env: o.env, lifetimeMs: o.lifetimeMs },
    switchboardLogKind,
    () => [],
  );
  const port = await new Promise<number | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(undefined), 30_000);
    const check = (): void => {
      const m = /^listening udp:127\.0\.0\.1:(\d+)$/m.exec(s.stdout());
      if (m !== null || s.exitInfo() !== undefined) {
        clearTimeout(timer);
        resolve(m === null ? undefined : Number(m[1]));
      }
    };
    s.child.stdout!.on('data', check);
    void s.exit.then(check);
    check();
  });
  if (port === undefined) {
    await stopSpawned(s, () => [], 1000);
    throw new Error(
      `switchboard serve did not come up: ${s.exitInfo() ?? 'no "listening udp:..." line in 30 s'}\n${s.stdout()}`,
    );
  }
  const dbFile = join(dataDir, 'switchboard.db');
  let stopping: Promise<void> | undefined;
  if (cluster) return clusterUnderTest(s, port, 2, { dataDir, dbFile });
  return {
    kind: 'switchboard',
    target: `${LOOPBACK}:${port}`,
    pids: () => [s.pid],
    cpuMs: () => cpuMs(s.pid) ?? 0,
    // The JavaScript thread (the thread group leader): the one that handles every message.
    waitMs: () => runQueueWaitMs(s.pid) ?? 0,
    memoryKb: () => procStatusKb(s.pid, 'VmRSS'),
    peakKb: () => procStatusKb(s.pid, 'VmHWM'),
    storeBytes: () => sqliteDataBytes(dbFile),
    async collect() {
      if (!gcProbe) return undefined;
      const seen = s.log.probes.length;
      tryKill(s.pid, 'SIGUSR2');
      const ok = await pollUntil(() => s.log.probes.length > seen, 10_000, 20);
      if (!ok) return undefined;
      const heap = s.log.probes[s.log.probes.length - 1]!;
      return { usedKb: heap / 1024, residentKb: procStatusKb(s.pid, 'VmRSS') };
    },
    takeLog: () => s.log.take(),
    exited: () => s.exitInfo(),
    stop() {
      // Nothing of the process is kept: no drain (SIGTERM would wait up to shutdownTimeout).
      stopping ??= (async () => {
        await stopSpawned(s, () => [], 1500);
        rmSync(dataDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/**
 * `serve` with workers (or the floor): the supervisor and its children (the workers, and the
 * esbuild service tsx starts), measured as Kamailio's processes are: CPU summed, memory as the
 * summed PSS (pages shared between them counted once), the peak the highest sum sampled every
 * 250 ms. `store`: Switchboard's data directory, removed at stop, and its SQLite file.
 */
async function clusterUnderTest(
  s: Spawned,
  port: number,
  minChildren: number,
  store?: { readonly dataDir: string; readonly dbFile: string },
): Promise<ServerUnderTest> {
  // The workers are forked before the first one prints; wait until they all have started.
  await pollUntil(() => childPids(s.pid).length >= minChildren, 10_000, 50);
  const group = processGroup(s, () => [s.pid, ...childPids(s.pid)]);
  let stopping: Promise<void> | undefined;
  return {
    kind: 'switchboard',
    target: `${LOOPBACK}:${port}`,
    ...group.meters,
    storeBytes: () => (store === undefined ? undefined : sqliteDataBytes(store.dbFile)),
    collect: () => Promise.resolve(undefined),
    takeLog: () => s.log.take(),
    exited: () => s.exitInfo(),
    stop() {
      stopping ??= (async () => {
        group.stopSampling();
        const kids = childPids(s.pid);
        await stopSpawned(s, () => kids, 1500);
        if (store !== undefined) rmSync(store.dataDir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

// ---- the floor ---------------------------------------------------------------------------

const FLOOR = fileURLToPath(new URL('./server/floor.mjs', import.meta.url));

/**
 * `SB_BENCH_SUBJECT=floor`: bench/macro/server/floor.mjs in Switchboard's place, a cluster of
 * `workers` Node.js processes on one shared UDP socket that answers the benchmark's sipp
 * scenarios with the least work that passes them (no digest check, no store, stateless
 * forwarding). Not a SIP server: what it reaches bounds what any Node.js server could reach
 * here with the same socket arrangement.
 */
export function prepareFloor(o: {
  readonly repoRoot: string;
  readonly lifetimeMs: number;
  readonly workers: number;
}): ServerFactory {
  return {
    kind: 'switchboard',
    description:
      `FLOOR, not Switchboard: node bench/macro/server/floor.mjs PORT ${o.workers} (a primary ` +
      `and ${o.workers} worker processes sharing the socket; no digest check, no store, ` +
      'stateless forwarding; see the file)',
    start: async () => {
      const port = await freePort('udp');
      const s = spawnTracked(
        process.execPath,
        [FLOOR, String(port), String(o.workers)],
        { cwd: o.repoRoot, env: process.env, lifetimeMs: o.lifetimeMs },
        switchboardLogKind,
        () => childPids(s.pid),
      );
      const up = await pollUntil(
        () => s.stdout().includes('listening udp:') || s.exitInfo() !== undefined,
        30_000,
        20,
      );
      if (!up || s.exitInfo() !== undefined) {
        await stopSpawned(s, () => childPids(s.pid), 1000);
        throw new Error(`floor.mjs did not come up: ${s.exitInfo() ?? 'no line in 30 s'}`);
      }
      return clusterUnderTest(s, port, o.workers);
    },
  };
}

// ---- Kamailio ----------------------------------------------------------------------------

export interface KamailioOptions {
  readonly bin: string;
  /** kamcmd (same package), to read shared memory use over the ctl module's socket. */
  readonly kamcmd: string | undefined;
  /** bench/kamailio/kamailio.cfg */
  readonly cfg: string;
  readonly dir: string;
  readonly users: readonly BenchUser[];
  readonly lifetimeMs: number;
  /** -m: shared memory, MB. */
  readonly shmMb: number;
  /**
   * Where usrloc keeps the bindings: in memory only (db_mode 0), or also in an SQLite file
   * (db_sqlite) written back by usrloc's timer every `timerS` seconds (db_mode 2).
   */
  readonly bindings: KamailioBindings;
}

export type KamailioBindings =
  | { readonly kind: 'memory' }
  | { readonly kind: 'sqlite-write-back'; readonly schemaDir: string; readonly timerS: number };

/**
 * The db_sqlite module and the SQL that creates usrloc's tables (both in Debian's
 * kamailio-sqlite-modules), or undefined when either is missing.
 */
export function kamailioSqlite(): { readonly schemaDir: string } | undefined {
  const schemaDir = '/usr/share/kamailio/db_sqlite';
  const modules = [
    '/usr/lib/x86_64-linux-gnu/kamailio/modules',
    '/usr/lib/aarch64-linux-gnu/kamailio/modules',
    '/usr/lib/kamailio/modules',
    '/usr/local/lib64/kamailio/modules',
    '/usr/local/lib/kamailio/modules',
  ];
  const module = modules.some((d) => existsSync(join(d, 'db_sqlite.so')));
  const sql = ['standard-create.sql', 'usrloc-create.sql'].every((f) =>
    existsSync(join(schemaDir, f)),
  );
  return module && sql ? { schemaDir } : undefined;
}

/** What the summary says of the bindings' keeping. */
export function describeKamailioBindings(b: KamailioBindings): string {
  return b.kind === 'memory'
    ? 'bindings in memory only (usrloc db_mode 0)'
    : `bindings in memory and in SQLite, written back every ${b.timerS} s (usrloc db_mode 2, ` +
        'db_sqlite, WAL)';
}

/** `kamailio -v`'s first line, e.g. "version: kamailio 5.6.3 (x86_64/linux)". */
export function kamailioVersion(bin: string): string {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8', timeout: 5000 });
  return (
    /kamailio [\d.]+/.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[0] ??
    'kamailio (version unknown)'
  );
}

/** db_text escapes ':' and the like in strings; the benchmark's values have none of them. */
function dbText(value: string): string {
  if (/[:\n\r\t\\]/.test(value))
    throw new Error(`db_text value with a special character: ${value}`);
  return value;
}

/** Writes the users' H(A1) table for the configuration's htable (db_text, loaded at start). */
export function prepareKamailio(o: KamailioOptions): ServerFactory {
  const dbDir = join(o.dir, 'db');
  mkdirSync(dbDir, { recursive: true });
  writeFileSync(
    join(dbDir, 'ha1'),
    'aor(str) ha1(str)\n' +
      o.users
        .map((u) => `${dbText(`${u.user}@${DOMAIN}`)}:${ha1Md5(u.user, DOMAIN, u.password)}`)
        .join('\n') +
      '\n',
  );
  // "all databases in Kamailio need the version table" (README.db_text).
  writeFileSync(join(dbDir, 'version'), 'table_name(str) table_version(int)\nha1:1\n');
  const children = Math.max(1, cpus().length);
  let starts = 0;
  const bindingArgs = (runDir: string): string[] => {
    const b = o.bindings;
    if (b.kind === 'memory') return [];
    const file = join(runDir, LOCATION_DB);
    // db_url: Kamailio takes what follows "sqlite:///" as the path, so an absolute one needs
    // a fourth slash.
    return [
      '-A',
      `SB_USRLOC_DB_URL="sqlite:///${file}"`,
      '-A',
      `SB_USRLOC_DB_JOURNAL="${file}=WAL;"`,
      '-A',
      'SB_USRLOC_DB_MODE=2',
      '-A',
      `SB_USRLOC_TIMER=${b.timerS}`,
    ];
  };
  const args = (port: number | string, runDir: string): string[] => [
    '-f',
    o.cfg,
    '-DD',
    '-E',
    '-n',
    String(children),
    '-m',
    String(o.shmMb),
    '-Y',
    runDir,
    '-P',
    join(runDir, 'kamailio.pid'),
    '-w',
    runDir,
    `--alias=${DOMAIN}`,
    '-A',
    `SB_PORT=${port}`,
    '-A',
    `SB_DOMAIN="${DOMAIN}"`,
    '-A',
    `SB_DB_URL="text://${dbDir}"`,
    '-A',
    `SB_CTL="unix:${join(runDir, 'ctl')}"`,
    ...bindingArgs(runDir),
  ];
  return {
    kind: 'kamailio',
    description:
      `${o.bin} ${args('PORT', 'RUNDIR').join(' ')}: ${children} UDP worker processes ` +
      '(-n = cores) besides the main and timer processes; RUNDIR fresh for each start; ' +
      describeKamailioBindings(o.bindings),
    start: async () => {
      const runDir = join(o.dir, `run-${++starts}`);
      mkdirSync(runDir, { recursive: true });
      try {
        if (o.bindings.kind !== 'memory') createLocationDb(runDir, o.bindings.schemaDir);
        return await startKamailio(o, runDir, (port) => args(port, runDir));
      } catch (e) {
        rmSync(runDir, { recursive: true, force: true });
        throw e;
      }
    },
  };
}

/** usrloc's SQLite file in a start's RUNDIR. */
const LOCATION_DB = 'location.sqlite';

/** A fresh usrloc database for one start, as Switchboard gets a fresh data dir. */
function createLocationDb(runDir: string, schemaDir: string): void {
  const db = new Database(join(runDir, LOCATION_DB));
  try {
    db.exec(readFileSync(join(schemaDir, 'standard-create.sql'), 'utf8'));
    db.exec(readFileSync(join(schemaDir, 'usrloc-create.sql'), 'utf8'));
  } finally {
    db.close();
  }
}

/** `kamcmd core.shmmem` real_used: shared memory in use, allocator overhead included (bytes). */
function shmUsedBytes(kamcmd: string | undefined, ctl: string): number | undefined {
  if (kamcmd === undefined) return undefined;
  const r = spawnSync(kamcmd, ['-s', ctl, 'core.shmmem'], { encoding: 'utf8', timeout: 5000 });
  const m = /real_used:\s*(\d+)/.exec(r.stdout ?? '');
  return m === null ? undefined : Number(m[1]);
}

async function startKamailio(
  o: KamailioOptions,
  runDir: string,
  args: (port: number) => string[],
): Promise<ServerUnderTest> {
  const ctl = `unix:${join(runDir, 'ctl')}`;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort('udp', LOOPBACK);
    let kids: number[] = [];
    const s = spawnTracked(
      o.bin,
      args(port),
      { cwd: runDir, env: process.env, lifetimeMs: o.lifetimeMs },
      kamailioLogKind,
      () => kids,
    );
    const ready = await pollUntil(
      () => s.exitInfo() !== undefined || udpBoundBy(s.pid, port),
      15_000,
      20,
    );
    if (!ready || s.exitInfo() !== undefined) {
      await stopSpawned(s, () => kids, 2000);
      if (attempt < 3 && /bind|in use/i.test(s.exitInfo() ?? '')) continue;
      throw new Error(
        `kamailio did not come up on ${LOOPBACK}:${port}/udp: ${s.exitInfo() ?? 'port not bound in 15 s'}`,
      );
    }
    // The children are forked once it has bound; let them settle, then remember them.
    const stable = await pollUntil(
      () => {
        const now = childPids(s.pid);
        const same = now.length > 0 && now.length === kids.length;
        kids = now;
        return same;
      },
      5000,
      250,
    );
    if (!stable) kids = childPids(s.pid);
    const group = processGroup(s, () => [s.pid, ...kids]);
    const memoryKb = group.meters.memoryKb;
    let stopping: Promise<void> | undefined;
    return {
      kind: 'kamailio',
      target: `${LOOPBACK}:${port}`,
      ...group.meters,
      // With usrloc on SQLite, its file grows with the bindings as Switchboard's store does.
      storeBytes: () =>
        o.bindings.kind === 'memory' ? undefined : sqliteDataBytes(join(runDir, LOCATION_DB)),
      collect: () => {
        const used = shmUsedBytes(o.kamcmd, ctl);
        return Promise.resolve(
          used === undefined ? undefined : { usedKb: used / 1024, residentKb: memoryKb() },
        );
      },
      takeLog: () => s.log.take(),
      exited: () => s.exitInfo(),
      stop() {
        stopping ??= (async () => {
          group.stopSampling();
          await stopSpawned(s, () => kids, 5000);
          rmSync(runDir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  }
}
