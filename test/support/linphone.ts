/**
 * linphonec 5.1 harness (Debian package linphone-cli): one linphonec headless on loopback, with a
 * fresh linphonerc in a temporary HOME, driven through its stdin; its state is read from its
 * console output and from its log file (which also holds every SIP message, see `trace()`).
 *
 * How linphonec runs here (see ../shared/interop-notes.md; measured with linphonec 5.1.65,
 * belle-sip and liblinphone 5.1 on Debian 12):
 * - `linphonec -c HOME/linphonerc -d 6 -l HOME/linphone.log`, HOME (and XDG_DATA_HOME,
 *   XDG_CONFIG_HOME) inside the temporary directory. `HOME/.local/share/linphone` must exist
 *   before the start, or linphonec opens no SIP socket at all;
 * - stdin is a FIFO held open read-write by the test (no EOF while it runs). `--pipe` /
 *   linphonecsh are not used: that mode never exits on quit or SIGTERM;
 * - no sound card: `soundcard use files` is the first command (there is no config key for it);
 *   `PULSE_SERVER=unix:/nonexistent` makes PulseAudio fail at once, ALSA finds no card;
 * - it rewrites its linphonerc while running (the password becomes an `ha1=`, a nat_policy
 *   section appears): every start writes a fresh one;
 * - loopback only: `[sip] bind_address=127.0.0.1` binds the SIP sockets to 127.0.0.1 (without it
 *   belle-sip binds 0.0.0.0), `[rtp] bind_address=127.0.0.1` binds RTP there and puts 127.0.0.1 in
 *   the SDP; `sip_port=-1` / `sip_tcp_port=-1` let the kernel pick the ports (read back from the
 *   log: `Random port for listening point [..] is N`, `Random TCP port is N`), TLS is off
 *   (`sip_tls_port=0`), RTP ports are chosen by the system too (`audio_rtp_port=-1`);
 * - no name resolution and nothing beyond loopback: every hop is an IP literal (the proxy and
 *   its route), `dns_srv_enabled=0`, no STUN server (`firewall_policy=0`, empty `stun_server`);
 *   `guess_hostname=0` (else the contact's host becomes the address of the default route) and
 *   `auto_net_state_mon=0` (else a network monitor probes the default route at start). With
 *   both off, strace shows one remaining probe: when an OUTGOING call is created through an
 *   account, liblinphone `connect()`s a UDP socket to 87.98.157.38:5060 to learn the
 *   default-route address, then closes it. A UDP connect() sends nothing (it only selects a
 *   route) and the SDP still carries 127.0.0.1; no datagram leaves loopback (strace-checked);
 * - `use_ipv6=0` holds only with `ipv6_migration_done=1`; `im_notif_policy=none` (no IMDN);
 *   video off, and not offered (`automatically_initiate=0`);
 * - `quit` exits, but with `auto_net_state_mon=0` it does NOT un-register first (measured over
 *   UDP and TCP: the binding stays until it expires); `unregister` does (registration state
 *   `Cleared` within ~30 ms here). stop() un-registers, sends `quit`, then SIGTERM, then SIGKILL.
 *
 * Console output used (stdout; `linphonec> ` prompts may precede a line):
 *   `Establishing call id to URI, assigned id N`      outgoing call N started
 *   `Receiving new incoming call from URI, assigned id N`
 *   `Call N to URI ringing.`                          180 received
 *   `Call N with URI connected.`                      2xx sent or received (the dialog confirmed)
 *   `Media streams established with URI for call N (audio).`
 *   `Call N with URI ended (REASON).`                 BYE sent or received, or CANCEL
 *   `Call N with URI error.`                          the INVITE failed; the status is not
 *                                                     printed: failed events read it from the log
 * Registration is read from the log: `... moving from state [LinphoneRegistrationProgress] to
 * [LinphoneRegistrationOk]` (or `...Failed`).
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { pollUntil, startProcess, waitFor as waitForPromise } from './tools.ts';
import type { ManagedProcess, ProcessExit } from './tools.ts';

/** The only address linphonec binds and talks to. */
export const LINPHONE_HOST = '127.0.0.1';

export type LinphoneTransport = 'udp' | 'tcp';

/** A registering account (a `[proxy_0]` plus `[auth_info_0]`). */
export interface LinphoneAccount {
  /** The user part of the identity: `sip:USER@DOMAIN`; also the digest username. */
  user: string;
  domain: string;
  password: string;
  /** The registrar / outbound proxy: an IP literal (default 127.0.0.1) and its port. */
  server: { host?: string; port: number; transport: LinphoneTransport };
  /** Requested registration lifetime (Expires). Default 600 s. */
  expires?: number;
  /**
   * `publish=1`: PUBLISH the account's presence (RFC 3903, Event: presence, a PIDF body) to
   * the server once registered. Default false (`publish=0`).
   */
  publish?: boolean;
}

/**
 * A `[friend_N]` section: linphonec SUBSCRIBEs to the friend's presence (RFC 3856, through the
 * default account's proxy) and prints `Friend "NAME" <URI> is Online|Offline|Away|...` on each
 * NOTIFY it accepts.
 */
export interface LinphoneFriend {
  /** The display name, as printed. */
  name: string;
  /** The friend's AOR, e.g. `sip:bob@example.com`. */
  uri: string;
}

export interface LinphoneOptions {
  /** The linphonec binary (from requireTool). */
  bin: string;
  /**
   * Register this account (to its server, over its transport) and wait for the 200. Without one,
   * linphonec registers nowhere and is reachable directly at `contact(transport)`.
   */
  account?: LinphoneAccount;
  /** User part of the contact and of the identity in direct mode. Default: the account's user, else `linphone`. */
  user?: string;
  /** `-a`: answer every incoming call by itself. Default false (answer() does). */
  autoAnswer?: boolean;
  /** Hard limit on linphonec's life (SIGKILL by pid after it). */
  timeoutMs: number;
  /** Start-up bound: sockets open and `soundcard use files` acknowledged. Default 10 s. */
  readyTimeoutMs?: number;
  /** Registration bound (with an account). Default 10 s. */
  registerTimeoutMs?: number;
  /** Friends to watch (`[friend_N]` with `subscribe=1`, `pol=accept`). Default none. */
  friends?: readonly LinphoneFriend[];
}

export type LinphoneEventType =
  'outgoing' | 'incoming' | 'ringing' | 'connected' | 'streams' | 'ended' | 'failed';

/** A call event read from linphonec's console output. */
export interface LinphoneEvent {
  type: LinphoneEventType;
  /** linphonec's call id (1, 2, ... in the order calls were created, both directions). */
  id: number;
  /** The peer URI as printed. */
  uri: string;
  /** `ended`: the reason in parentheses (`No error`, `Call declined`, ...). */
  reason?: string;
  /**
   * `failed`: the status of the final response to the INVITE (e.g. 480), read from the log;
   * undefined when the log holds none (e.g. a timeout or a transport error).
   */
  status?: number;
  /** The console line. */
  line: string;
}

/** One SIP message from linphonec's log, in the order it was logged. */
export interface LinphoneSipMessage {
  direction: 'sent' | 'received';
  /** `UDP`, `TCP`. */
  protocol: string;
  /** The peer, `host:port`. */
  peer: string;
  /** Request-Line or Status-Line. */
  firstLine: string;
  /** Header lines as logged. */
  headers: string[];
  /** The body as logged (lines after the blank line; trailing blank lines dropped), or ''. */
  body: string;
}

export interface Linphone {
  readonly pid: number;
  /** The temporary HOME (removed by stop()): linphonerc, linphone.log, the FIFO. */
  readonly home: string;
  /** SIP ports on 127.0.0.1, chosen by the kernel. */
  readonly udpPort: number;
  readonly tcpPort: number;
  readonly process: ManagedProcess;
  /** `sip:USER@127.0.0.1:PORT;transport=T`: where a peer reaches this linphonec directly. */
  contact(transport?: LinphoneTransport): string;
  /** Writes one command line to linphonec's stdin. */
  command(line: string): void;
  /** `call URI`; resolves with the call id once linphonec printed `assigned id N`. */
  call(uri: string, timeoutMs?: number): Promise<number>;
  /** `answer [ID]`: accepts the (given) incoming call. */
  answer(id?: number): void;
  /** `terminate [ID]`: hangs up (BYE), cancels (CANCEL) or declines the (given) call. */
  terminate(id?: number): void;
  /**
   * The first `type` event (of call `id` when given), including events already printed. A
   * `failed` event carries the INVITE's final status from the log (waited for up to 3 s more).
   * Rejects after `timeoutMs`, or at once when linphonec exits, quoting the output.
   */
  waitFor(type: LinphoneEventType, timeoutMs: number, id?: number): Promise<LinphoneEvent>;
  /** Every call event printed so far, in order. */
  events(): LinphoneEvent[];
  /** Console output so far (stdout and stderr). */
  output(): string;
  /** The log file so far. */
  log(): string;
  /** The SIP messages in the log so far. */
  trace(): LinphoneSipMessage[];
  /** Console output, SIP trace and log tail, for assertion messages. */
  describe(): string;
  /**
   * `unregister` (a REGISTER with Expires: 0); resolves once linphonec reports the registration
   * cleared. The account then stays un-registered for the life of this linphonec.
   */
  unregister(timeoutMs: number): Promise<void>;
  /**
   * Un-registers a registered account (bounded: 3 s), then `quit` and up to 3 s for the exit,
   * then SIGTERM and SIGKILL after 2 s; closes the FIFO and removes HOME. Idempotent, never
   * throws.
   */
  stop(): Promise<ProcessExit & { forced: boolean }>;
}

/** Text of the linphonerc for one start (see the header for why each key is there). */
export function linphoneConfig(options: {
  user: string;
  account?: LinphoneAccount;
  friends?: readonly LinphoneFriend[];
}): string {
  const sections: string[] = [
    [
      '[sip]',
      `bind_address=${LINPHONE_HOST}`,
      'sip_port=-1',
      'sip_tcp_port=-1',
      'sip_tls_port=0',
      'use_ipv6=0',
      'ipv6_migration_done=1',
      'guess_hostname=0',
      'auto_net_state_mon=0',
      'register_only_when_network_is_up=0',
      'im_notif_policy=none',
      `contact=<sip:${options.user}@${LINPHONE_HOST}>`,
      'inc_timeout=60',
      ...(options.account !== undefined ? ['default_proxy=0'] : []),
    ].join('\n'),
    ['[net]', 'firewall_policy=0', 'stun_server=', 'dns_srv_enabled=0'].join('\n'),
    [
      '[rtp]',
      `bind_address=${LINPHONE_HOST}`,
      'audio_rtp_port=-1',
      'video_rtp_port=-1',
      'text_rtp_port=-1',
    ].join('\n'),
    ['[sound]', 'echocancellation=0'].join('\n'),
    [
      '[video]',
      'enabled=0',
      'capture=0',
      'display=0',
      'automatically_initiate=0',
      'automatically_accept=0',
    ].join('\n'),
  ];
  const a = options.account;
  if (a !== undefined) {
    const hop = `sip:${a.server.host ?? LINPHONE_HOST}:${a.server.port};transport=${a.server.transport}`;
    sections.push(
      [
        '[proxy_0]',
        `reg_proxy=<${hop}>`,
        `reg_route=<${hop};lr>`,
        `reg_identity=<sip:${a.user}@${a.domain}>`,
        `reg_expires=${a.expires ?? 600}`,
        'reg_sendregister=1',
        `publish=${a.publish === true ? 1 : 0}`,
        'dial_escape_plus=0',
      ].join('\n'),
      [
        '[auth_info_0]',
        `username=${a.user}`,
        `passwd=${a.password}`,
        `realm=${a.domain}`,
        `domain=${a.domain}`,
      ].join('\n'),
    );
  }
  (options.friends ?? []).forEach((f, i) => {
    sections.push(
      [`[friend_${i}]`, `url="${f.name}" <${f.uri}>`, 'pol=accept', 'subscribe=1'].join('\n'),
    );
  });
  return `# Generated by test/support/linphone.ts\n${sections.join('\n\n')}\n`;
}

const LOG_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} /;
const SENT = /message sent to \[(\w+):\/\/([^\]]+)\], size: \[\d+\] bytes$/;
const RECEIVED = /received \[\d+\] new bytes from \[(\w+):\/\/([^\]]+)\]:$/;

/** The SIP messages of a linphonec `-d 6` log: each follows a `message sent to` / `received` line. */
export function linphoneTrace(log: string): LinphoneSipMessage[] {
  const lines = log.split(/\r?\n/);
  const messages: LinphoneSipMessage[] = [];
  for (let i = 0; i < lines.length; i++) {
    const sent = SENT.exec(lines[i]!);
    const received = sent === null ? RECEIVED.exec(lines[i]!) : null;
    const m = sent ?? received;
    if (m === null) continue;
    const firstLine = lines[i + 1] ?? '';
    if (!/^(SIP\/2\.0 \d{3}|[A-Z]+ \S+ SIP\/2\.0)/.test(firstLine)) continue;
    const headers: string[] = [];
    let j = i + 2;
    for (; j < lines.length; j++) {
      const line = lines[j]!;
      if (line === '' || LOG_LINE.test(line)) break;
      headers.push(line);
    }
    const body: string[] = [];
    if (lines[j] === '') {
      for (j++; j < lines.length && !LOG_LINE.test(lines[j]!); j++) body.push(lines[j]!);
    }
    while (body.length > 0 && body.at(-1) === '') body.pop();
    messages.push({
      direction: sent !== null ? 'sent' : 'received',
      protocol: m[1]!,
      peer: m[2]!,
      firstLine,
      headers,
      body: body.join('\n'),
    });
  }
  return messages;
}

/** The value of the first header `name` (case-insensitive, long form) of a logged message. */
export function linphoneHeader(message: LinphoneSipMessage, name: string): string | undefined {
  const prefix = `${name.toLowerCase()}:`;
  const line = message.headers.find((h) => h.toLowerCase().startsWith(prefix));
  return line?.slice(prefix.length).trim();
}

/** A presence state linphonec printed for a friend on a NOTIFY: `Friend "NAME" <URI> is STATUS`. */
export interface LinphoneFriendStatus {
  name: string;
  uri: string;
  /** `Online`, `Offline`, `Away`, `Busy`, ... as printed. */
  status: string;
}

const FRIEND_STATUS = /Friend "([^"]*)" <([^>]+)> is (\w[\w ]*?)\s*$/;

/** The friend presence states in linphonec's console output, in order (one per NOTIFY taken). */
export function linphoneFriendStatuses(output: string): LinphoneFriendStatus[] {
  const statuses: LinphoneFriendStatus[] = [];
  for (const line of output.split(/\r?\n/)) {
    const m = FRIEND_STATUS.exec(line);
    if (m !== null) statuses.push({ name: m[1]!, uri: m[2]!, status: m[3]! });
  }
  return statuses;
}

const EVENT_PATTERNS: readonly [LinphoneEventType, RegExp][] = [
  ['outgoing', /Establishing call id to (\S+), assigned id (\d+)/],
  ['incoming', /Receiving new incoming call from (\S+), assigned id (\d+)/],
  ['ringing', /Call (\d+) to (\S+) ringing\./],
  ['connected', /Call (\d+) with (\S+) connected\./],
  ['streams', /Media streams established with (\S+) for call (\d+)/],
  ['ended', /Call (\d+) with (\S+) ended \(([^)]*)\)/],
  ['failed', /Call (\d+) with (\S+) error\./],
];

/** The call events in linphonec's console output, in order. */
export function linphoneEvents(output: string): LinphoneEvent[] {
  const events: LinphoneEvent[] = [];
  for (const line of output.split(/\r?\n/)) {
    for (const [type, pattern] of EVENT_PATTERNS) {
      const m = pattern.exec(line);
      if (m === null) continue;
      // The URI comes first in three of the patterns and the id in the others.
      const uriFirst = type === 'outgoing' || type === 'incoming' || type === 'streams';
      events.push({
        type,
        id: Number(uriFirst ? m[2] : m[1]),
        uri: uriFirst ? m[1]! : m[2]!,
        ...(type === 'ended' ? { reason: m[3]! } : {}),
        line: line.replace(/^(linphonec> )+/, ''),
      });
      break;
    }
  }
  return events;
}

/**
 * The Call-IDs of the calls in the log, in the order the calls were created (outgoing: the first
 * INVITE sent; incoming: the first INVITE received, both without a To tag). linphonec numbers its
 * calls 1, 2, ... in the same order, so call N is the N-th Call-ID.
 */
export function linphoneCallIds(trace: readonly LinphoneSipMessage[]): string[] {
  const ids: string[] = [];
  for (const m of trace) {
    if (!m.firstLine.startsWith('INVITE ')) continue;
    if (/;\s*tag=/i.test(linphoneHeader(m, 'To') ?? '')) continue;
    const callId = linphoneHeader(m, 'Call-ID');
    if (callId !== undefined && !ids.includes(callId)) ids.push(callId);
  }
  return ids;
}

/**
 * The status of the final error response (>= 300) to the INVITE of Call-ID `callId` (received
 * for an outgoing call, sent for an incoming one): the last one, so that a 401/407 answered with
 * a new INVITE gives way to that INVITE's response. `settled` is false while the last one is a
 * 401/407 (the retry may just not be logged yet).
 */
export function inviteFailure(
  trace: readonly LinphoneSipMessage[],
  callId: string,
): { status: number; settled: boolean } | undefined {
  for (let i = trace.length - 1; i >= 0; i--) {
    const m = trace[i]!;
    const status = /^SIP\/2\.0 (\d{3})/.exec(m.firstLine);
    if (status === null || Number(status[1]) < 300) continue;
    if (linphoneHeader(m, 'Call-ID') !== callId) continue;
    if (!/\bINVITE$/.test(linphoneHeader(m, 'CSeq') ?? '')) continue;
    const code = Number(status[1]);
    return { status: code, settled: code !== 401 && code !== 407 };
  }
  return undefined;
}

/**
 * Reads a file another process appends to (linphonec's log): `read()` returns everything so far,
 * reading only what was added since the last call; `close()` reads the rest and closes the fd
 * (later reads return the text kept).
 */
function fileTail(path: string): { read(): string; close(): void } {
  let fd: number | undefined;
  let closed = false;
  let text = '';
  let offset = 0;
  const decoder = new StringDecoder('utf8');
  const buffer = Buffer.alloc(64 * 1024);
  const read = (): string => {
    if (closed) return text;
    try {
      fd ??= openSync(path, 'r');
      while (offset < fstatSync(fd).size) {
        const n = readSync(fd, buffer, 0, buffer.length, offset);
        if (n <= 0) break;
        offset += n;
        text += decoder.write(buffer.subarray(0, n));
      }
    } catch {
      // not created yet
    }
    return text;
  };
  return {
    read,
    close() {
      read();
      closed = true;
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/** Environment for linphonec: HOME and XDG dirs in the temp dir, no PulseAudio, no X display. */
function linphoneEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith('XDG_') || key === 'DISPLAY' || key === 'WAYLAND_DISPLAY') delete env[key];
  }
  return {
    ...env,
    HOME: home,
    XDG_DATA_HOME: join(home, '.local', 'share'),
    XDG_CONFIG_HOME: join(home, '.config'),
    PULSE_SERVER: 'unix:/nonexistent',
  };
}

const POLL_MS = 25;

/**
 * Starts linphonec, waits until its SIP sockets are open and it uses files instead of a sound
 * card, then (with an account) until it is registered. On any failure the process is stopped
 * and HOME removed before the error propagates.
 */
export async function startLinphone(options: LinphoneOptions): Promise<Linphone> {
  const home = mkdtempSync(join(tmpdir(), 'switchboard-linphone-'));
  const user = options.user ?? options.account?.user ?? 'linphone';
  const logPath = join(home, 'linphone.log');
  const logFile = fileTail(logPath);
  const readLog = logFile.read;
  let fd: number | undefined;
  let proc: ManagedProcess | undefined;
  let stopped: Promise<ProcessExit & { forced: boolean }> | undefined;

  const output = (): string =>
    proc === undefined ? '' : `${proc.stdout()}${proc.stderr() === '' ? '' : `\n${proc.stderr()}`}`;
  const describe = (): string => {
    const exit = proc?.exit();
    const trace = linphoneTrace(readLog())
      .map(
        (m) =>
          `${m.direction === 'sent' ? '->' : '<-'} ${m.protocol} ${m.peer} | ${m.firstLine} | CSeq: ${linphoneHeader(m, 'CSeq') ?? '-'}`,
      )
      .join('\n');
    return [
      `linphonec (pid ${proc?.pid ?? '-'}) ${exit === undefined ? 'running' : `exited code ${exit.code} signal ${exit.signal}`}`,
      `--- console ---\n${output().slice(-4000)}`,
      `--- SIP trace (log) ---\n${trace}`,
      `--- log (tail) ---\n${readLog().slice(-4000)}`,
    ].join('\n');
  };
  const command = (line: string): void => {
    if (fd === undefined) throw new Error('linphonec: stopped, cannot send a command');
    writeSync(fd, `${line}\n`);
  };

  /** Polls `probe` (console and log) until it returns a value; bounded, fails fast on exit. */
  const until = async <T>(
    what: string,
    timeoutMs: number,
    probe: () => T | undefined,
  ): Promise<T> => {
    let found: T | undefined;
    let exited = false;
    await pollUntil(
      () => {
        found = probe();
        exited = proc?.exit() !== undefined;
        return found !== undefined || exited;
      },
      timeoutMs,
      POLL_MS,
    );
    if (found !== undefined) return found;
    throw new Error(
      `linphonec: ${exited ? `exited before ${what}` : `no ${what} within ${timeoutMs} ms`}\n${describe()}`,
    );
  };

  /** The account's latest registration state in the log: `Ok`, `Failed`, `Cleared`, ... */
  const registrationState = (): string | undefined => {
    if (options.account === undefined) return undefined;
    const identity = `identity [sip:${options.account.user}@${options.account.domain}]`;
    const states = [
      ...readLog().matchAll(
        /for (identity \[[^\]]*\]) moving from state \[\w+\] to \[LinphoneRegistration(\w+)\]/g,
      ),
    ].filter((m) => m[1] === identity);
    return states.at(-1)?.[2];
  };
  const unregister = async (timeoutMs: number): Promise<void> => {
    command('unregister');
    await until('registration cleared', timeoutMs, () =>
      registrationState() === 'Cleared' ? true : undefined,
    );
  };

  const stop = (): Promise<ProcessExit & { forced: boolean }> => {
    stopped ??= (async () => {
      let exit: ProcessExit & { forced: boolean } = { code: null, signal: null, forced: false };
      if (proc !== undefined) {
        const running = proc;
        if (running.exit() === undefined && fd !== undefined) {
          try {
            // `quit` alone leaves the binding at the registrar (with auto_net_state_mon=0).
            if (registrationState() === 'Ok') await unregister(3000).catch(() => undefined);
            command('quit');
          } catch {
            // the FIFO is gone: the signals below still stop it
          }
          await waitForPromise(running.exited, 3000);
        }
        exit = await running.stop({ signal: 'SIGTERM', graceMs: 2000 });
      }
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      logFile.close();
      rmSync(home, { recursive: true, force: true });
      return exit;
    })();
    return stopped;
  };

  let udpPort = 0;
  let tcpPort = 0;
  try {
    mkdirSync(join(home, '.local', 'share', 'linphone'), { recursive: true });
    mkdirSync(join(home, '.config'), { recursive: true });
    const rc = join(home, 'linphonerc');
    writeFileSync(
      rc,
      linphoneConfig({
        user,
        ...(options.account !== undefined ? { account: options.account } : {}),
        ...(options.friends !== undefined ? { friends: options.friends } : {}),
      }),
    );
    // stdin: a FIFO opened read-write here first, so linphonec's open for reading does not block
    // and it never sees EOF while the test runs.
    const fifo = join(home, 'stdin');
    execFileSync('mkfifo', ['-m', '600', fifo], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 5000,
    });
    fd = openSync(fifo, 'r+');
    // `exec` replaces the shell: the pid tracked (and killed) is linphonec's own.
    proc = startProcess(
      '/bin/sh',
      [
        '-c',
        'bin="$1"; shift; exec "$bin" "$@" < "$0"',
        fifo,
        options.bin,
        ...(options.autoAnswer === true ? ['-a'] : []),
        '-c',
        rc,
        '-d',
        '6',
        '-l',
        logPath,
      ],
      { timeoutMs: options.timeoutMs, label: 'linphonec', env: linphoneEnv(home) },
    );
    command('soundcard use files');
    const readyMs = options.readyTimeoutMs ?? 10_000;
    [udpPort, tcpPort] = await until('SIP sockets and `Using wav files`', readyMs, () => {
      const log = readLog();
      const udp = /Random port for listening point \[[^\]]*\] is (\d+)/.exec(log);
      const tcp = /Random TCP port is (\d+)/.exec(log);
      const files = output().includes('Using wav files instead of soundcard');
      return udp !== null && tcp !== null && files ? [Number(udp[1]), Number(tcp[1])] : undefined;
    });
    if (options.account !== undefined) {
      const identity = `sip:${options.account.user}@${options.account.domain}`;
      const outcome = await until(
        `registration of ${identity}`,
        options.registerTimeoutMs ?? 10_000,
        () => {
          const state = registrationState();
          return state === 'Ok' || state === 'Failed' ? state : undefined;
        },
      );
      if (outcome !== 'Ok') throw new Error(`linphonec: registration failed\n${describe()}`);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const running = proc;
  return {
    pid: running.pid,
    home,
    udpPort,
    tcpPort,
    process: running,
    contact: (transport = 'udp') =>
      `sip:${user}@${LINPHONE_HOST}:${transport === 'udp' ? udpPort : tcpPort};transport=${transport}`,
    command,
    async call(uri, timeoutMs = 5000) {
      const before = linphoneEvents(output()).filter((e) => e.type === 'outgoing').length;
      command(`call ${uri}`);
      const event = await until(`\`assigned id\` for call ${uri}`, timeoutMs, () =>
        linphoneEvents(output())
          .filter((e) => e.type === 'outgoing')
          .at(before),
      );
      return event.id;
    },
    answer: (id) => command(id === undefined ? 'answer' : `answer ${id}`),
    unregister,
    terminate: (id) => command(id === undefined ? 'terminate' : `terminate ${id}`),
    async waitFor(type, timeoutMs, id) {
      const event = await until(
        `${type} event${id !== undefined ? ` for call ${id}` : ''}`,
        timeoutMs,
        () =>
          linphoneEvents(output()).find(
            (e) => e.type === type && (id === undefined || e.id === id),
          ),
      );
      if (type !== 'failed') return event;
      // The console says only `error.`: the status is in the log (call N's INVITE has the N-th
      // Call-ID), which may lag a little behind the console.
      let failure: { status: number; settled: boolean } | undefined;
      await pollUntil(
        () => {
          const trace = linphoneTrace(readLog());
          const callId = linphoneCallIds(trace)[event.id - 1];
          failure = callId === undefined ? undefined : inviteFailure(trace, callId);
          return failure?.settled === true;
        },
        3000,
        POLL_MS,
      );
      return failure === undefined ? event : { ...event, status: failure.status };
    },
    events: () => linphoneEvents(output()),
    output,
    log: readLog,
    trace: () => linphoneTrace(readLog()),
    describe,
    stop,
  };
}
