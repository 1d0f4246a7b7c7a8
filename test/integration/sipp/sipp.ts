/**
 * sipp harness: run sipp 3.6.1 (Debian package sip-tester) as a UAC in the foreground, or as a
 * long-running UAS in the background, on loopback only, and read its results.
 *
 * How results are read (sipp 3.6.1 prints its screens to stdout only when it exits, and only
 * as a human-readable dump):
 * - the exit code: 0 = every call succeeded, 1 = at least one call failed, 255 (-1) = fatal
 *   error or `-timeout` reached with `-timeout_error`, 254 (-2) = could not bind, 97 = exit on
 *   internal command, 99 = normal exit without calls processed;
 * - `-trace_stat -stf stats.csv -fd 1`: the last row (written at exit) gives SuccessfulCall(C),
 *   FailedCall(C), Retransmissions(C), CurrentCall ...;
 * - `-trace_counts`: per-element counters (`<index>_<name>_<Sent|Recv|Retrans|Timeout|Unexp>`),
 *   e.g. how many ACKs a UAS scenario received;
 * - `-trace_err -error_file errors.log`: the unexpected messages and errors, quoted in failures;
 * - `-trace_screen -screen_file screen.log`: the final screens, quoted in failures.
 * All files live in a temporary directory (sipp's cwd) that is removed afterwards; set
 * SIPP_KEEP_TRACES=1 to keep it and to add -trace_msg (every message sent and received).
 *
 * Every sipp binds 127.0.0.1 only: SIP (-i/-p), media (-mi) and the UDP control socket
 * (-ci/-cp, which otherwise binds 0.0.0.0:8888).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  findOnPath,
  freePort,
  pollUntil,
  portInUse,
  startProcess,
  waitFor,
} from '../../support/tools.ts';
import type { ManagedProcess } from '../../support/tools.ts';

/** test/integration/sipp/scenarios/ */
export const SCENARIOS_DIR = fileURLToPath(new URL('./scenarios/', import.meta.url));

/** The only address sipp binds and talks to in these tests. */
export const LOOPBACK = '127.0.0.1';

/** sipp's built-in scenarios (-sn). Anything else is an XML file (-sf). */
const BUILT_IN = new Set([
  'uac',
  'uas',
  'regexp',
  'branchc',
  'branchs',
  'uac_pcap',
  '3pcc-C-A',
  '3pcc-C-B',
  '3pcc-A',
  '3pcc-B',
]);

/** sipp -t: UDP or TCP with one socket. Debian's sipp 3.6.1 has no TLS (`l1`). */
export type SippTransport = 'u1' | 't1';

export interface SippStats {
  /** SuccessfulCall(C) */
  successful: number;
  /** FailedCall(C) */
  failed: number;
  /** Retransmissions(C): messages sipp retransmitted (UDP). */
  retransmissions?: number;
  /** CurrentCall: calls still running when sipp wrote the row. */
  current?: number;
  /** TotalCallCreated */
  created?: number;
  /** OutOfCallMsgs(C), DeadCallMsgs(C): messages sipp could not match to a call. */
  outOfCallMessages?: number;
  deadCallMessages?: number;
  /** Every column of the last row, by its header name. */
  raw: Record<string, string>;
}

/** Counters of one scenario element, from -trace_counts. */
export interface SippMessageCounts {
  /** Element index in the scenario (labels do not count). */
  index: number;
  /** Method, status code or `Pause`. */
  name: string;
  /** `Sent`, `Recv`, `Retrans`, `Timeout`, `Unexp`, `Sessions` (pauses), `Lost` (with -lost). */
  counts: Record<string, number>;
}

export interface SippResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** True when the harness had to kill sipp (its own -timeout did not end it). */
  killed: boolean;
  stdout: string;
  stderr: string;
  /** Contents of sipp's error log (-trace_err): unexpected messages, timeouts. */
  errors: string;
  /** The final screens (-trace_screen). */
  screen: string;
  stats?: SippStats;
  messages?: SippMessageCounts[];
  durationMs: number;
  /** The command line, for failure messages. */
  command: string;
  /** Kept trace directory (SIPP_KEEP_TRACES=1), else undefined. */
  traceDir?: string;
}

export interface SippCommonOptions {
  /** Path to an XML scenario, a file name in SCENARIOS_DIR, or a built-in name ('uac'). */
  scenario: string;
  transport: SippTransport;
  /** Local SIP port (-p). Default: a free port. */
  localPort?: number;
  /** Hard limit: sipp gets `-timeout` a little below it, and is SIGKILLed when it is reached. */
  timeoutMs: number;
  /** -s: user part of the Request-URI ([service]). Default 'service'. */
  service?: string;
  /** -inf: injection CSV file. */
  injectFile?: string;
  /** Extra sipp arguments, appended last. */
  extraArgs?: string[];
  /** sipp binary (from requireTool). Default: `sipp` found on PATH. */
  bin?: string;
}

export interface RunSippOptions extends SippCommonOptions {
  /** Remote host:port, an IP literal: '127.0.0.1:5080'. */
  target?: string;
  /** -m: stop after this many calls. Required: every load loop is bounded. */
  calls: number;
  /** -r: calls per second (default sipp's 10). */
  rate?: number;
  /** -rp: rate period in ms (with rate: `rate` calls every `ratePeriodMs`). */
  ratePeriodMs?: number;
  /** -rate_increase and -rate_max: ramp the rate up by `rateIncrease` every -fd period (1 s). */
  rateIncrease?: number;
  rateMax?: number;
  /** -l: at most this many simultaneous calls. */
  limit?: number;
  /** -lost: percentage of messages sipp drops on purpose (sent and received), UDP only. */
  lost?: number;
  /** -au/-ap for [authentication]; -auth_uri is set to the Request-URI (see below). */
  auth?: { username: string; password: string };
}

export interface StartSippUasOptions extends SippCommonOptions {
  /** -m: exit by itself after this many calls. Default: run until stop(). */
  calls?: number;
  /**
   * Length of the scenario's final `<timewait />` (sipp -d), which keeps a finished call around to
   * answer retransmissions (a BYE whose 200 was lost). Default 0. With packet loss use ~10000
   * (covers BYE retransmissions at 0.5, 1.5, 3.5 and 7.5 s) and end with stop({ now: true }).
   */
  timewaitMs?: number;
  /** How long to wait for sipp to bind its SIP port. Default 5000 ms. */
  readyTimeoutMs?: number;
}

export interface SippUas {
  /** The UAS's SIP port on 127.0.0.1. */
  port: number;
  /** `127.0.0.1:port` */
  target: string;
  pid: number;
  /**
   * Ends the UAS and resolves with its result. Idempotent.
   *
   * Default: SIGUSR1, sipp's soft quit (no new calls; exit once the running ones end, so they
   * count as successful or failed), then SIGTERM after `graceMs` (default 5000), then SIGKILL.
   * `now: true`: SIGTERM at once (sipp exits at once and still writes its statistics); calls
   * still waiting in their final timewait stay in `stats.current`, not in `successful`.
   */
  stop(options?: { graceMs?: number; now?: boolean }): Promise<SippResult>;
  /** Resolves with the result whenever sipp exits (by itself with `calls`, or after stop()). */
  readonly result: Promise<SippResult>;
}

function resolveScenario(scenario: string): string[] {
  if (BUILT_IN.has(scenario)) return ['-sn', scenario];
  const path = isAbsolute(scenario)
    ? scenario
    : scenario.includes('/')
      ? resolve(scenario)
      : join(SCENARIOS_DIR, scenario);
  return ['-sf', path];
}

/** sipp -timeout in whole seconds, at least 1, ending before the harness's hard kill. */
function sippTimeoutSeconds(timeoutMs: number): number {
  return Math.max(1, Math.floor((timeoutMs - 1500) / 1000));
}

function parseCsv(text: string): { header: string[]; last: string[] } | undefined {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (lines.length < 2) return undefined;
  const split = (line: string): string[] => line.replace(/;$/, '').split(';');
  return { header: split(lines[0]!), last: split(lines[lines.length - 1]!) };
}

/** The last row of a -trace_stat file. Exported for tests of the harness. */
export function parseStats(text: string): SippStats | undefined {
  const csv = parseCsv(text);
  if (csv === undefined) return undefined;
  const raw: Record<string, string> = {};
  csv.header.forEach((name, i) => {
    raw[name] = csv.last[i] ?? '';
  });
  const num = (name: string): number | undefined => {
    const value = raw[name];
    if (value === undefined || value === '') return undefined;
    const n = Number(value);
    return Number.isFinite(n) ? n : undefined;
  };
  const successful = num('SuccessfulCall(C)');
  const failed = num('FailedCall(C)');
  if (successful === undefined || failed === undefined) return undefined;
  return {
    successful,
    failed,
    retransmissions: num('Retransmissions(C)'),
    current: num('CurrentCall'),
    created: num('TotalCallCreated'),
    outOfCallMessages: num('OutOfCallMsgs(C)'),
    deadCallMessages: num('DeadCallMsgs(C)'),
    raw,
  };
}

/** The last row of a -trace_counts file, grouped by scenario element. */
export function parseCounts(text: string): SippMessageCounts[] | undefined {
  const csv = parseCsv(text);
  if (csv === undefined) return undefined;
  const byIndex = new Map<number, SippMessageCounts>();
  csv.header.forEach((column, i) => {
    const m = /^(\d+)_(.+)_([A-Za-z]+)$/.exec(column);
    if (m === null) return; // CurrentTime, ElapsedTime
    const index = Number(m[1]);
    let entry = byIndex.get(index);
    if (entry === undefined) {
      entry = { index, name: m[2]!, counts: {} };
      byIndex.set(index, entry);
    }
    entry.counts[m[3]!] = Number(csv.last[i] ?? 'NaN');
  });
  return [...byIndex.values()].sort((a, b) => a.index - b.index);
}

/**
 * A counter of one scenario element: `count(result, 4, 'Recv')`, or by name (the first element
 * with that name from `fromIndex` on): `count(result, 'ACK', 'Recv')`. Undefined if absent.
 */
export function count(
  result: SippResult,
  element: number | string,
  counter: string,
  fromIndex = 0,
): number | undefined {
  const entry = result.messages?.find((m) =>
    typeof element === 'number' ? m.index === element : m.index >= fromIndex && m.name === element,
  );
  return entry?.counts[counter];
}

/** A multi-line description of a sipp run, for assertion messages. */
export function describeRun(result: SippResult): string {
  const stats =
    result.stats === undefined
      ? 'no statistics'
      : `successful ${result.stats.successful}, failed ${result.stats.failed}, retransmissions ${result.stats.retransmissions ?? '?'}, current ${result.stats.current ?? '?'}`;
  const tail = (text: string, n: number): string =>
    text.length > n ? `...${text.slice(-n)}` : text;
  return [
    `sipp exit code ${result.exitCode}${result.signal ? ` (signal ${result.signal})` : ''}${result.killed ? ' KILLED by the harness' : ''}, ${stats}, ${result.durationMs} ms`,
    `command: ${result.command}`,
    result.errors.trim()
      ? `--- sipp error log ---\n${tail(result.errors, 6000)}`
      : '(empty sipp error log)',
    result.stderr.trim() ? `--- stderr ---\n${tail(result.stderr, 3000)}` : '',
    result.screen.trim() ? `--- final screen ---\n${tail(result.screen, 4000)}` : '',
    result.traceDir ? `traces kept in ${result.traceDir}` : '',
  ]
    .filter((part) => part !== '')
    .join('\n');
}

interface Launched {
  proc: ManagedProcess;
  dir: string;
  args: string[];
  started: number;
  bin: string;
}

async function launch(
  common: SippCommonOptions,
  specific: string[],
  localPort: number,
  positional: string[],
): Promise<Launched> {
  const bin = common.bin ?? findOnPath('sipp') ?? 'sipp';
  const dir = mkdtempSync(join(tmpdir(), 'sb-sipp-'));
  try {
    const controlPort = await freePort('udp', LOOPBACK);
    const keep = process.env.SIPP_KEEP_TRACES === '1';
    const args = [
      ...positional,
      ...resolveScenario(common.scenario),
      '-t',
      common.transport,
      '-i',
      LOOPBACK,
      '-p',
      String(localPort),
      '-mi',
      LOOPBACK,
      '-ci',
      LOOPBACK,
      '-cp',
      String(controlPort),
      // Foreground (no -bg): we own the process. No keyboard: stdin is not a terminal.
      '-nostdin',
      // One socket per transport (u1/t1); a small cap in case a test passes un/tn.
      '-max_socket',
      '16',
      '-timeout',
      `${sippTimeoutSeconds(common.timeoutMs)}s`,
      '-timeout_error',
      '-trace_err',
      '-error_file',
      join(dir, 'errors.log'),
      '-trace_stat',
      '-stf',
      join(dir, 'stats.csv'),
      '-fd',
      '1',
      '-trace_counts',
      '-trace_screen',
      '-screen_file',
      join(dir, 'screen.log'),
      ...(keep ? ['-trace_msg', '-message_file', join(dir, 'messages.log')] : []),
      ...(common.service !== undefined ? ['-s', common.service] : []),
      ...(common.injectFile !== undefined ? ['-inf', resolve(common.injectFile)] : []),
      ...specific,
      ...(common.extraArgs ?? []),
    ];
    const proc = startProcess(bin, args, {
      cwd: dir,
      timeoutMs: common.timeoutMs,
      label: `sipp ${common.scenario}`,
    });
    return { proc, dir, args, started: Date.now(), bin };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

function readOptional(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

async function collect(launched: Launched): Promise<SippResult> {
  const { proc, dir, args, started, bin } = launched;
  const exit = await proc.exited;
  const countsFile = readdirSync(dir).find((name) => name.endsWith('_counts.csv'));
  const keep = process.env.SIPP_KEEP_TRACES === '1';
  const result: SippResult = {
    exitCode: exit.code,
    signal: exit.signal,
    killed: proc.timedOut(),
    stdout: proc.stdout(),
    stderr: proc.stderr(),
    errors: readOptional(join(dir, 'errors.log')),
    screen: readOptional(join(dir, 'screen.log')),
    stats: parseStats(readOptional(join(dir, 'stats.csv'))),
    messages:
      countsFile === undefined ? undefined : parseCounts(readOptional(join(dir, countsFile))),
    durationMs: Date.now() - started,
    command: [bin, ...args].join(' '),
    traceDir: keep ? dir : undefined,
  };
  if (!keep) rmSync(dir, { recursive: true, force: true });
  return result;
}

/**
 * Runs sipp in the foreground until it has processed `calls` calls (-m), its own -timeout passes
 * (exit code 255), or `timeoutMs` passes (SIGKILL, `killed: true`). Never rejects for a failed
 * run: assert on the result, and put describeRun(result) in the message.
 */
export async function runSipp(opts: RunSippOptions): Promise<SippResult> {
  // A port chosen by freePort() can be taken by a parallel test before sipp binds it: retry
  // with another one (only when the harness chose the port).
  for (let attempt = 1; ; attempt++) {
    const result = await runSippOnce(opts);
    if (opts.localPort !== undefined || attempt >= 3 || !addressInUse(result)) return result;
  }
}

/** True when sipp could not bind its port (errno 98). */
function addressInUse(result: SippResult): boolean {
  return /Address already in use|errno = 98/.test(`${result.errors}\n${result.stderr}`);
}

async function runSippOnce(opts: RunSippOptions): Promise<SippResult> {
  if (!Number.isInteger(opts.calls) || opts.calls < 1) {
    throw new Error(`runSipp: calls must be a positive integer (got ${opts.calls})`);
  }
  const localPort = opts.localPort ?? (await freePort(opts.transport === 't1' ? 'tcp' : 'udp'));
  const specific = ['-m', String(opts.calls)];
  if (opts.rate !== undefined) specific.push('-r', String(opts.rate));
  if (opts.ratePeriodMs !== undefined) specific.push('-rp', `${opts.ratePeriodMs}ms`);
  if (opts.rateIncrease !== undefined) specific.push('-rate_increase', String(opts.rateIncrease));
  if (opts.rateMax !== undefined) specific.push('-rate_max', String(opts.rateMax));
  if (opts.limit !== undefined) specific.push('-l', String(opts.limit));
  if (opts.lost !== undefined) specific.push('-lost', String(opts.lost));
  if (opts.auth !== undefined) {
    specific.push('-au', opts.auth.username, '-ap', opts.auth.password);
    // sipp 3.6.1 puts uri="sip:<remote_ip>:<remote_port>" in Authorization unless told; a server
    // that checks the digest-uri against the Request-URI (RFC 3261 §22.4) needs it to match.
    if (opts.target !== undefined) {
      specific.push('-auth_uri', `${opts.service ?? 'service'}@${opts.target}`);
    }
  }
  const launched = await launch(
    opts,
    specific,
    localPort,
    opts.target === undefined ? [] : [opts.target],
  );
  return collect(launched);
}

/**
 * Starts a sipp UAS scenario in the background on 127.0.0.1 and resolves once its SIP port is
 * bound (probed by trying to bind it: EADDRINUSE means sipp has it). Stop it with stop().
 */
export async function startSippUas(opts: StartSippUasOptions): Promise<SippUas> {
  // As runSipp: a port chosen here can be taken by a parallel test before sipp binds it.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSippUasOnce(opts);
    } catch (e) {
      const inUse = /Address already in use|errno = 98/.test(String(e));
      if (opts.localPort !== undefined || attempt >= 3 || !inUse) throw e;
    }
  }
}

async function startSippUasOnce(opts: StartSippUasOptions): Promise<SippUas> {
  const protocol = opts.transport === 't1' ? 'tcp' : 'udp';
  const port = opts.localPort ?? (await freePort(protocol));
  const specific = ['-d', `${opts.timewaitMs ?? 0}ms`];
  if (opts.calls !== undefined) specific.push('-m', String(opts.calls));
  // sipp fails every call on a TCP connection the peer closes (FailedTcpClosed), even a call
  // that only waits out its final timewait: a UAC that exits right after its last 200 for BYE
  // would fail the UAS's last call. Keep the calls; a call that still needs the connection
  // fails on its own timeouts.
  if (opts.transport === 't1') specific.push('-reconnect_close', 'false');
  const launched = await launch(opts, specific, port, []);
  const result = collect(launched);
  const { proc } = launched;

  const ready = await pollUntil(
    async () => proc.exit() !== undefined || (await portInUse(protocol, port, LOOPBACK)),
    opts.readyTimeoutMs ?? 5000,
  );
  if (!ready || proc.exit() !== undefined) {
    proc.signal('SIGKILL');
    const failed = await result;
    throw new Error(
      `sipp UAS ${opts.scenario} did not come up on ${LOOPBACK}:${port}/${protocol}\n${describeRun(failed)}`,
    );
  }

  let stopping: Promise<SippResult> | undefined;
  return {
    port,
    target: `${LOOPBACK}:${port}`,
    pid: proc.pid,
    result,
    stop(stopOptions = {}) {
      stopping ??= (async () => {
        if (proc.exit() === undefined && stopOptions.now === true) {
          await proc.stop({ signal: 'SIGTERM', graceMs: 2000 });
        } else if (proc.exit() === undefined) {
          // SIGUSR1: sipp's soft quit ("do not place any new calls and exit").
          proc.signal('SIGUSR1');
          if ((await waitFor(proc.exited, stopOptions.graceMs ?? 5000)) === undefined) {
            console.warn(`sipp UAS ${opts.scenario}: calls still running; SIGTERM`);
            await proc.stop({ signal: 'SIGTERM', graceMs: 2000 });
          }
        }
        return result;
      })();
      return stopping;
    },
  };
}
