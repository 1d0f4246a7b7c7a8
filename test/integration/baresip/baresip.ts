/**
 * baresip 1.0.0 harness (Debian package baresip): start one baresip headless on loopback with a
 * generated configuration in a temporary directory, drive it through its stdin, read its output
 * and its SIP trace, stop it by pid and remove the directory.
 *
 * How baresip runs here (see ../shared/interop-notes.md, measured with baresip 1.0.0 / libre
 * 1.1.0 on Debian 12):
 * - `baresip -s -f DIR`: DIR holds `config`, `accounts`, `contacts`; `-s` prints every SIP
 *   message sent and received (the trace parsed by `sipTrace`);
 * - stdin is a FIFO that the test holds open read-write (EOF on stdin makes baresip spin, and
 *   /dev/null fails); commands are written to it (`/dial URI`, `/hangup`). baresip echoes each
 *   keystroke of a command, so grep its output rather than parse lines;
 * - output: keystroke echo on stderr, the rest (trace, `Call established`, ...) on stdout. A
 *   call's end is printed as `Call with URI terminated (duration: ...)` only when the call
 *   lasted at least one second (zero-length calls print nothing); a BYE received shows as
 *   `session closed: Connection reset by peer` (libre reports a BYE as ECONNRESET);
 * - SIP on 127.0.0.1:port for UDP and TCP, and always SIP/TLS on port + 1 (use freePortPair());
 * - no sound card: player `aubridge,nil` (an unpaired device is a silent sink) and source
 *   `ausine,440`, which needs `ausrc_srate 48000` and `ausrc_channels 2` or the call is torn
 *   down right after the ACK; no stun/turn/ice modules; `net_interface 127.0.0.1`;
 *   `dns_server 127.0.0.1:53` (every hop is an IP literal: baresip never has to resolve a name);
 * - TLS: libre has TLS built in (no module). `sip_certificate` is one PEM file holding the
 *   certificate and its private key, used by baresip's TLS listener. `sip_cafile` is loaded, but
 *   baresip 1.0 does NOT verify the certificate of a TLS server it connects to: it only calls
 *   libre's tls_alloc() and tls_add_ca(), never tls_set_verify_server(), and a call to a server
 *   whose certificate a CA baresip was not given had signed went through the handshake just the
 *   same (measured). So the CA file is set for form's sake (and for a later baresip that
 *   verifies), not because the tests depend on it.
 * - a registrar: serverAccount() gives the account line (digest auth, outbound proxy by IP, UDP
 *   or TCP), waitForRegistration() waits for its 200; dial/accept/hangup and waitForCall()
 *   drive calls. baresip 1.0 only does MD5 digest (see serverAccount()); SIGTERM (stop())
 *   un-registers before it exits.
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { startProcess } from '../../support/tools.ts';
import type { ManagedProcess, ProcessExit } from '../../support/tools.ts';

/** The only address baresip binds and talks to in these tests. */
export const LOOPBACK = '127.0.0.1';

/** The user of the default account: `sip:bob@127.0.0.1`. */
export const BARESIP_USER = 'bob';

/**
 * An account for direct calls to and from IP literals: `regint=0` means no REGISTER at all
 * (without it baresip registers every 3600 s at the AOR's domain, port 5060); `answermode=auto`
 * answers every incoming INVITE with 180, then 200.
 */
export const DIRECT_ACCOUNT = `<sip:${BARESIP_USER}@${LOOPBACK}>;regint=0;answermode=auto;mwi=no`;

export interface BaresipOptions {
  /** The baresip binary (from requireTool). */
  bin: string;
  /** SIP port for UDP and TCP on 127.0.0.1; baresip opens SIP/TLS on port + 1. */
  port: number;
  /** The line of the `accounts` file. Default DIRECT_ACCOUNT. */
  account?: string;
  /** PEM text: the certificate and the private key of baresip's TLS listener (sip_certificate). */
  certificate?: string;
  /** PEM text: trust anchors (sip_cafile). baresip 1.0 loads them but verifies nothing. */
  ca?: string;
  /**
   * Lines of the `contacts` file (default: none), e.g. `"bob" <sip:bob@example.com>`. baresip's
   * `/message TEXT` sends to the first entry (contact.so makes it the current contact); an
   * entry with `;presence=p2p` is SUBSCRIBEd to when presence.so is loaded.
   */
  contacts?: readonly string[];
  /** More modules to load after the default set (`module_app`), e.g. `presence.so`. */
  extraModules?: readonly string[];
  /** Hard limit on baresip's life (SIGKILL by pid after it). */
  timeoutMs: number;
  /** How long to wait for `baresip is ready.` Default 5000 ms. */
  readyTimeoutMs?: number;
}

export interface Baresip {
  readonly pid: number;
  /** The SIP/UDP and SIP/TCP port on 127.0.0.1. */
  readonly port: number;
  /** The SIP/TLS port on 127.0.0.1 (port + 1). */
  readonly tlsPort: number;
  /** The configuration directory (removed by stop()). */
  readonly dir: string;
  readonly process: ManagedProcess;
  /** Writes one command line to baresip's stdin: `/dial sip:...`, `/hangup`. */
  command(line: string): void;
  /** The first output line containing / matching `match`, including lines already printed. */
  waitFor(match: string | RegExp, timeoutMs: number): Promise<string>;
  /** stdout and stderr so far. */
  output(): string;
  /** SIGTERM, SIGKILL after 2 s, then closes the FIFO and removes the directory. Idempotent. */
  stop(): Promise<ProcessExit & { forced: boolean }>;
}

/** Where Debian keeps the modules: <prefix>/lib/baresip/modules next to <prefix>/bin/baresip. */
function modulePath(bin: string): string | undefined {
  const candidate = resolve(dirname(bin), '..', 'lib', 'baresip', 'modules');
  return existsSync(join(candidate, 'stdio.so')) ? candidate : undefined;
}

/** The `config` file for one baresip on 127.0.0.1:port (TLS on port + 1). */
export function baresipConfig(options: {
  port: number;
  certificateFile?: string;
  caFile?: string;
  modulePath?: string;
  extraModules?: readonly string[];
}): string {
  const lines = [
    '# Generated by test/integration/baresip/baresip.ts',
    'poll_method\t\tepoll',
    `sip_listen\t\t${LOOPBACK}:${options.port}`,
    ...(options.certificateFile !== undefined
      ? [`sip_certificate\t\t${options.certificateFile}`]
      : []),
    ...(options.caFile !== undefined ? [`sip_cafile\t\t${options.caFile}`] : []),
    'call_local_timeout\t20',
    'call_max_calls\t\t4',
    'audio_player\t\taubridge,nil',
    'audio_source\t\tausine,440',
    'audio_alert\t\taubridge,nil',
    'ausrc_srate\t\t48000',
    'ausrc_channels\t\t2',
    'audio_level\t\tno',
    'rtp_stats\t\tno',
    `net_interface\t\t${LOOPBACK}`,
    `dns_server\t\t${LOOPBACK}:53`,
    ...(options.modulePath !== undefined ? [`module_path\t\t${options.modulePath}`] : []),
    'module\t\t\tstdio.so',
    'module\t\t\tg711.so',
    'module\t\t\taubridge.so',
    'module\t\t\tausine.so',
    'module_tmp\t\tuuid.so',
    'module_tmp\t\taccount.so',
    'module_app\t\tcontact.so',
    'module_app\t\tmenu.so',
    ...(options.extraModules ?? []).map((m) => `module_app\t\t${m}`),
    '',
  ];
  return lines.join('\n');
}

/**
 * Starts baresip and resolves once it prints `baresip is ready.` On any failure the process is
 * stopped and the directory removed before the error propagates.
 */
export async function startBaresip(options: BaresipOptions): Promise<Baresip> {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-baresip-'));
  const file = (name: string): string => join(dir, name);
  let fd: number | undefined;
  let proc: ManagedProcess | undefined;
  let stopped: Promise<ProcessExit & { forced: boolean }> | undefined;

  const stop = (): Promise<ProcessExit & { forced: boolean }> => {
    stopped ??= (async () => {
      const exit =
        proc === undefined
          ? { code: null, signal: null, forced: false }
          : await proc.stop({ signal: 'SIGTERM', graceMs: 2000 });
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
      rmSync(dir, { recursive: true, force: true });
      return exit;
    })();
    return stopped;
  };

  try {
    let certificateFile: string | undefined;
    let caFile: string | undefined;
    if (options.certificate !== undefined) {
      certificateFile = file('sip-certificate.pem');
      writeFileSync(certificateFile, options.certificate, { mode: 0o600 });
    }
    if (options.ca !== undefined) {
      caFile = file('ca.pem');
      writeFileSync(caFile, options.ca);
    }
    writeFileSync(
      file('config'),
      baresipConfig({
        port: options.port,
        ...(certificateFile !== undefined ? { certificateFile } : {}),
        ...(caFile !== undefined ? { caFile } : {}),
        ...(modulePath(options.bin) !== undefined ? { modulePath: modulePath(options.bin) } : {}),
        ...(options.extraModules !== undefined ? { extraModules: options.extraModules } : {}),
      }),
    );
    writeFileSync(file('accounts'), `${options.account ?? DIRECT_ACCOUNT}\n`);
    writeFileSync(file('contacts'), (options.contacts ?? []).map((line) => `${line}\n`).join(''));

    // stdin: a FIFO opened read-write here first, so baresip's open for reading does not block
    // and it never sees EOF while the test runs.
    const fifo = file('stdin');
    execFileSync('mkfifo', ['-m', '600', fifo], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 5000,
    });
    fd = openSync(fifo, 'r+');

    // `exec` replaces the shell: the pid tracked (and killed) is baresip's own.
    proc = startProcess('/bin/sh', ['-c', 'exec "$0" -s -f "$1" < "$2"', options.bin, dir, fifo], {
      timeoutMs: options.timeoutMs,
      label: 'baresip',
    });
    await proc.waitForLine('baresip is ready', options.readyTimeoutMs ?? 5000);
  } catch (err) {
    await stop();
    throw err;
  }

  const running = proc;
  return {
    pid: running.pid,
    port: options.port,
    tlsPort: options.port + 1,
    dir,
    process: running,
    command(line) {
      if (fd === undefined) throw new Error('baresip: stopped, cannot send a command');
      writeSync(fd, `${line}\n`);
    },
    waitFor: (match, timeoutMs) => running.waitForLine(match, timeoutMs),
    output: () => `${running.stdout()}\n${running.stderr()}`,
    stop,
  };
}

/* ------------------------------------------------------------------------------------------ */
/* An account on a registrar, and call control                                                */
/* ------------------------------------------------------------------------------------------ */

export type BaresipTransport = 'udp' | 'tcp';

export interface ServerAccountOptions {
  /** The AOR is `sip:USER@DOMAIN`; USER is also the digest username. */
  user: string;
  domain: string;
  /** Digest password (`auth_pass`). */
  password: string;
  /**
   * The registrar, also used as the outbound proxy for every request (`outbound=`): an IP
   * literal (default 127.0.0.1), so baresip never resolves DOMAIN.
   */
  server: { host?: string; port: number; transport: BaresipTransport };
  /** `auto`: 180 then 200 to every INVITE; `manual` (default): /accept answers. */
  answermode?: 'auto' | 'manual';
  /** Registration interval (REGISTER Expires) in seconds. Default 600. */
  regint?: number;
}

/**
 * The `accounts` line for an account that registers with digest auth at `server` over UDP or TCP
 * and sends every request there: `<sip:USER@DOMAIN[;transport=tcp]>;auth_pass=...;
 * outbound="sip:HOST:PORT;transport=T";answermode=...;regint=...;mwi=no`. For TCP the AOR carries
 * `;transport=tcp` as well (baresip picks the transport of its own Contact from it).
 *
 * Digest: baresip 1.0.0 with libre 1.1.0 answers MD5 challenges only, and it gives up on the
 * whole 401/407 as soon as ANY of its WWW-/Proxy-Authenticate headers names another algorithm
 * (libre's auth_handler returns ENOSYS and stops at that header, whatever the order): a
 * registrar that offers SHA-256 and MD5 (RFC 8760) gets no second REGISTER, and baresip prints
 * `reg: sip:USER@DOMAIN: Register: Function not implemented`. Measured: MD5-only challenges
 * work over UDP and TCP; `SHA-256, MD5` and `MD5, SHA-256` both fail.
 */
export function serverAccount(o: ServerAccountOptions): string {
  const tcp = o.server.transport === 'tcp';
  const hop = `sip:${o.server.host ?? LOOPBACK}:${o.server.port};transport=${o.server.transport}`;
  return [
    `<sip:${o.user}@${o.domain}${tcp ? ';transport=tcp' : ''}>`,
    `auth_pass=${o.password}`,
    `outbound="${hop}"`,
    `answermode=${o.answermode ?? 'manual'}`,
    `regint=${o.regint ?? 600}`,
    'mwi=no',
  ].join(';');
}

/** A registration reported: `USER@DOMAIN: {0/UDP/v4} 200 OK (Server) [1 binding]`. */
const REGISTERED = /\{\d+\/(?:UDP|TCP|TLS)\/v[46]\} 200 OK/;
/** A registration that failed: `reg: sip:USER@DOMAIN: 403 Forbidden`, `...: Register: <errno text>`. */
const REGISTER_FAILED = /reg: sip:\S+: /;

/**
 * Resolves with baresip's `200 OK` registration line; rejects at once when baresip reports the
 * registration failed (quoting the line), after `timeoutMs`, or when baresip exits.
 */
export async function waitForRegistration(b: Baresip, timeoutMs: number): Promise<string> {
  const ok = b.waitFor(REGISTERED, timeoutMs);
  const failed = b.waitFor(REGISTER_FAILED, timeoutMs);
  // The loser settles too (timeout, or stop()): keep its rejection handled.
  ok.catch(() => undefined);
  failed.catch(() => undefined);
  const first = await Promise.race([
    ok.then((line) => ({ ok: true, line })),
    failed.then(
      (line) => ({ ok: false, line }),
      // No failure line before the bound: the outcome is whatever `ok` says.
      () => ok.then((line) => ({ ok: true, line })),
    ),
  ]);
  if (!first.ok) {
    throw new Error(`baresip: registration failed: ${first.line.trim()}\n${describeBaresip(b)}`);
  }
  return first.line;
}

/** Dials `uri` (through the account's outbound proxy when it has one). */
export function dial(b: Baresip, uri: string): void {
  b.command(`/dial ${uri}`);
}

/** Answers the incoming call (answermode=manual). */
export function accept(b: Baresip): void {
  b.command('/accept');
}

/** Hangs up the current call: BYE once established, CANCEL before. */
export function hangup(b: Baresip): void {
  b.command('/hangup');
}

export type BaresipCallEvent = 'incoming' | 'established' | 'ended' | 'failed';

/**
 * What baresip 1.0 prints for each call event:
 * - incoming: `sip:ME: Incoming call from:  sip:PEER - (press 'a' to accept)`;
 * - established: `ME: Call established: sip:PEER` (200 sent, or 200 received and ACKed);
 * - ended: `Call with sip:PEER terminated (duration: ...)` for calls of one second or more
 *   (shorter ones print nothing: hold a call 1 s before the hang-up), or `session closed:
 *   Connection reset by peer` (how libre reports a BYE received);
 * - failed: `session closed: 480 Temporarily Unavailable` (any other reason but the BYE).
 */
const CALL_EVENTS: Readonly<Record<BaresipCallEvent, RegExp>> = {
  incoming: /Incoming call from:\s+(\S+)/,
  established: /Call established: (\S+)/,
  ended: /Call with \S+ terminated \(duration|session closed: Connection reset by peer/,
  failed: /session closed: (?!Connection reset by peer)(.*)$/,
};

export interface BaresipCallOutcome {
  /** The output line. */
  line: string;
  /** `failed`: the status of the final response, when the reason starts with one. */
  status?: number;
}

/**
 * The first line of `event` in baresip's output (lines already printed included: one call per
 * baresip keeps this unambiguous). Rejects after `timeoutMs` or when baresip exits.
 */
export async function waitForCall(
  b: Baresip,
  event: BaresipCallEvent,
  timeoutMs: number,
): Promise<BaresipCallOutcome> {
  const line = await b.waitFor(CALL_EVENTS[event], timeoutMs);
  if (event !== 'failed') return { line };
  const status = /session closed: (\d{3})\b/.exec(line)?.[1];
  return status === undefined ? { line } : { line, status: Number(status) };
}

/* ------------------------------------------------------------------------------------------ */
/* Presence (presence.so)                                                                      */
/* ------------------------------------------------------------------------------------------ */

/** A change of a contact's presence that baresip printed: `<URI> changed status from A to B`. */
export interface BaresipPresenceChange {
  uri: string;
  from: string;
  to: string;
}

const PRESENCE_CHANGE = /<([^>]+)> changed status from (\w+) to (\w+)/;

/**
 * The presence changes of contacts (`;presence=p2p` entries, presence.so) in baresip's output,
 * in order. baresip prints one only when the status it shows changes (`Online`, `Offline`, ...;
 * a contact starts as `Offline`), not one per NOTIFY; `/contacts` lists the current ones.
 */
export function presenceChanges(output: string): BaresipPresenceChange[] {
  const changes: BaresipPresenceChange[] = [];
  for (const line of output.split(ESC).join('').split(/\r?\n/)) {
    const m = PRESENCE_CHANGE.exec(line.replace(/\[[\d;]*m/g, ''));
    if (m !== null) changes.push({ uri: m[1]!, from: m[2]!, to: m[3]! });
  }
  return changes;
}

/* ------------------------------------------------------------------------------------------ */
/* The SIP trace (-s)                                                                          */
/* ------------------------------------------------------------------------------------------ */

export interface TracedMessage {
  /** UDP, TCP, TLS ... */
  protocol: string;
  from: string;
  to: string;
  /** Request-Line or Status-Line. */
  firstLine: string;
  /** Header lines as printed. */
  headers: string[];
  /** The body as printed (lines after the blank line; trailing blank lines dropped), or ''. */
  body: string;
}

const ESC = String.fromCharCode(27);
const TRACE_ADDRESSES = /^(UDP|TCP|TLS|WSS?) (\S+) -> (\S+)$/;

/**
 * The messages of baresip's `-s` trace, in order. Each one is printed as an ANSI-coloured block:
 * `ESC[36;1m#`, `PROTO from -> to`, the message, `ESC[;m`.
 */
export function sipTrace(output: string): TracedMessage[] {
  const messages: TracedMessage[] = [];
  for (const segment of output.split(ESC)) {
    if (!segment.startsWith('[36;1m')) continue;
    const lines = segment.split(/\r?\n/);
    const at = lines.findIndex((line) => TRACE_ADDRESSES.test(line));
    if (at < 0 || at + 1 >= lines.length) continue;
    const [, protocol, from, to] = TRACE_ADDRESSES.exec(lines[at]!)!;
    const rest = lines.slice(at + 2);
    const blank = rest.indexOf('');
    const headers = blank < 0 ? rest : rest.slice(0, blank);
    const body = blank < 0 ? [] : rest.slice(blank + 1);
    while (body.length > 0 && body.at(-1) === '') body.pop();
    messages.push({
      protocol: protocol!,
      from: from!,
      to: to!,
      firstLine: lines[at + 1]!,
      headers,
      body: body.join('\n'),
    });
  }
  return messages;
}

/** The value of the first header `name` (case-insensitive, long form) of a traced message. */
export function traceHeader(message: TracedMessage, name: string): string | undefined {
  const prefix = `${name.toLowerCase()}:`;
  const line = message.headers.find((h) => h.toLowerCase().startsWith(prefix));
  return line?.slice(prefix.length).trim();
}

/** One line per traced message: `TLS a -> b | first line | CSeq | Contact`, for failure text. */
export function describeTrace(messages: readonly TracedMessage[]): string {
  return messages
    .map((m) => {
      const cseq = traceHeader(m, 'CSeq');
      const contact = traceHeader(m, 'Contact');
      return [
        `${m.protocol} ${m.from} -> ${m.to}`,
        m.firstLine,
        ...(cseq !== undefined ? [`CSeq: ${cseq}`] : []),
        ...(contact !== undefined ? [`Contact: ${contact}`] : []),
      ].join(' | ');
    })
    .join('\n');
}

/** baresip's output for a failure message: the trace summary, then the tail of the text. */
export function describeBaresip(b: Baresip, tailChars = 6000): string {
  const exit = b.process.exit();
  // Drop the status line baresip rewrites with \r every few ms while a call runs.
  const text = b
    .output()
    .replace(/\[\d+:\d\d:\d\d\] audio=[^\r\n]*?\(bit\/s\)\s*/g, '')
    .split(ESC)
    .join('');
  return [
    `baresip (pid ${b.pid}) ${exit === undefined ? 'running' : `exited code ${exit.code} signal ${exit.signal}`}`,
    `--- SIP trace ---\n${describeTrace(sipTrace(b.output()))}`,
    `--- output (tail) ---\n${text.slice(-tailChars)}`,
  ].join('\n');
}
