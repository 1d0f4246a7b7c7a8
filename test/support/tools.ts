/**
 * External tools for integration tests (sipp, baresip, linphonec, kamailio, ...): find them,
 * give them free loopback ports, and run them as child processes that never outlive the test.
 *
 * Project rules (README "Tests with real peers"):
 * - under CI (`CI=true`) a test that needs a missing tool FAILS, naming the Debian package;
 *   locally it skips with a loud message;
 * - loopback only (127.0.0.1 / ::1), IP literals everywhere;
 * - every spawned process is killed by its pid at test end, and the test process must exit.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import type { Socket as DgramSocket } from 'node:dgram';
import { accessSync, constants, statSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { delimiter, isAbsolute, join } from 'node:path';
import type { TestContext } from 'node:test';

/** The Debian package that ships each tool (`apt-get install -y <package>`). */
export const DEBIAN_PACKAGE: Readonly<Record<string, string>> = {
  sipp: 'sip-tester',
  baresip: 'baresip',
  linphonec: 'linphone-cli',
  'linphone-daemon': 'linphone-cli',
  kamailio: 'kamailio',
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
};

/** The absolute path of an executable file named `name` on PATH, or undefined. */
export function findOnPath(name: string): string | undefined {
  const candidates = isAbsolute(name)
    ? [name]
    : (process.env.PATH ?? '')
        .split(delimiter)
        .filter((dir) => dir !== '')
        .map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there, or not executable: try the next PATH entry
    }
  }
  return undefined;
}

/**
 * The absolute path of the tool, for a test that cannot run without it.
 *
 * Missing tool: under `CI=true` this throws (the test fails, naming the package to install);
 * otherwise it marks the test skipped with `t.skip()`, prints a loud warning and returns
 * undefined. `t.skip()` does not stop the test function: the caller must return.
 *
 * ```ts
 * it('...', async (t) => {
 *   const sipp = requireTool('sipp', t);
 *   if (sipp === undefined) return;
 * ```
 */
export function requireTool(name: string, t: TestContext): string | undefined {
  const found = findOnPath(name);
  if (found !== undefined) return found;
  const pkg = DEBIAN_PACKAGE[name] ?? name;
  const how = `apt-get install -y --no-install-recommends ${pkg}`;
  if (process.env.CI === 'true') {
    throw new Error(
      `${name} is not on PATH and CI=true: tests that need it must fail, not skip. ` +
        `Install the Debian package ${pkg} (${how}; .ci/run installs APT_PACKAGES).`,
    );
  }
  const message = `MISSING TOOL ${name}: not on PATH, test skipped. Install it with: ${how}`;
  const bar = '!'.repeat(Math.min(100, message.length + 6));
  console.warn(`\n${bar}\n!! ${message} !!\n${bar}\n`);
  t.skip(message);
  return undefined;
}

function ipFamily(host: string): 4 | 6 {
  return host.includes(':') ? 6 : 4;
}

function bindUdp(port: number, host: string): Promise<DgramSocket> {
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: ipFamily(host) === 6 ? 'udp6' : 'udp4' });
    socket.once('error', (err) => {
      socket.close();
      reject(err);
    });
    socket.bind({ port, address: host, exclusive: true }, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

function listenTcp(port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.removeAllListeners('error');
      resolve(server);
    });
  });
}

type Held = { port: number; close(): Promise<void> };

async function hold(protocol: 'udp' | 'tcp', port: number, host: string): Promise<Held> {
  if (protocol === 'udp') {
    const socket = await bindUdp(port, host);
    return {
      port: socket.address().port,
      close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
    };
  }
  const server = await listenTcp(port, host);
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP port bound');
  return {
    port: address.port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * A port the kernel says is free on `host` for `protocol`: binds port 0, reads it, closes.
 * Another process may take it before the tool binds it; tools that fail to bind report it.
 */
export async function freePort(protocol: 'udp' | 'tcp', host = '127.0.0.1'): Promise<number> {
  const held = await hold(protocol, 0, host);
  await held.close();
  return held.port;
}

/** True when `port` on `host` cannot be bound for `protocol` right now (someone holds it). */
export async function portInUse(
  protocol: 'udp' | 'tcp',
  port: number,
  host = '127.0.0.1',
): Promise<boolean> {
  try {
    const held = await hold(protocol, port, host);
    await held.close();
    return false;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return true;
    throw err;
  }
}

/**
 * A port P such that P and P + 1 are both free for UDP and for TCP on `host`: for tools that
 * open more than the port they are given (baresip opens SIP/TLS on its SIP port + 1).
 */
export async function freePortPair(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await freePort('udp', host);
    if (base >= 65535) continue;
    const held: Held[] = [];
    try {
      for (const port of [base, base + 1]) {
        held.push(await hold('udp', port, host));
        held.push(await hold('tcp', port, host));
      }
      return base;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    } finally {
      await Promise.all(held.map((h) => h.close()));
    }
  }
  throw new Error(`freePortPair: no free port pair on ${host} after 50 attempts`);
}

/* ------------------------------------------------------------------------------------------ */
/* Child processes                                                                            */
/* ------------------------------------------------------------------------------------------ */

/** Every child started here and not yet exited: killed (SIGKILL) if the test process exits. */
const live = new Set<ChildProcess>();

function killAllLive(): void {
  for (const child of live) {
    if (child.pid === undefined) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

process.once('exit', killAllLive);
// A test file's process killed by a signal runs no 'exit' handlers: kill the children, then die
// of the same signal (the listener is gone by then, so the default action applies).
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    killAllLive();
    process.kill(process.pid, signal);
  });
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartProcessOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Hard limit on the process's life: SIGKILL after this many ms. Required: no unbounded runs. */
  timeoutMs: number;
  /** Keep at most this many characters of stdout and of stderr (the tail). Default 256 KiB. */
  maxOutput?: number;
  /** Prefix for errors and warnings (default: the command's name). */
  label?: string;
}

export interface ManagedProcess {
  readonly pid: number;
  readonly label: string;
  /** Everything kept from stdout/stderr so far. */
  stdout(): string;
  stderr(): string;
  /** True when the hard timeout killed the process. */
  timedOut(): boolean;
  /** Resolves when the process has exited and its streams are closed. */
  readonly exited: Promise<ProcessExit>;
  /** The exit, once known; undefined while running. */
  exit(): ProcessExit | undefined;
  /**
   * Resolves with the first stdout/stderr line that contains `match` (a string) or matches it (a
   * RegExp), including lines already printed. Rejects after `timeoutMs` or when the process exits
   * first, quoting the output.
   */
  waitForLine(match: string | RegExp, timeoutMs: number): Promise<string>;
  /** Sends a signal to the pid (no-op once exited). */
  signal(signal: NodeJS.Signals): void;
  /**
   * Sends `signal` (default SIGTERM), waits up to `graceMs` (default 2000) for the exit, then
   * SIGKILLs. `forced` tells whether SIGKILL was needed.
   */
  stop(options?: {
    signal?: NodeJS.Signals;
    graceMs?: number;
  }): Promise<ProcessExit & { forced: boolean }>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with the exit, or undefined when `ms` pass first. */
export async function waitFor<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Spawns `command` (no shell) with stdin ignored and stdout/stderr captured, tracked so that it
 * is killed by pid at the latest when `timeoutMs` passes or the test process exits.
 */
export function startProcess(
  command: string,
  args: readonly string[],
  options: StartProcessOptions,
): ManagedProcess {
  const label = options.label ?? command;
  const maxOutput = options.maxOutput ?? 256 * 1024;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  // 'error': the spawn failed (then there is no pid) or a signal could not be sent.
  child.on('error', (error) => {
    err = (err + `\n${label}: ${error.message}`).slice(-maxOutput);
  });
  if (child.pid === undefined) {
    throw new Error(`${label}: could not start ${command} (not found or not executable?)`);
  }
  const pid = child.pid;
  live.add(child);

  let killedByTimeout = false;
  let exitInfo: ProcessExit | undefined;
  const lineWaiters = new Set<() => void>();
  const notify = (): void => {
    for (const waiter of lineWaiters) waiter();
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out = (out + chunk).slice(-maxOutput);
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err = (err + chunk).slice(-maxOutput);
    notify();
  });

  const hardKill = setTimeout(() => {
    killedByTimeout = true;
    console.warn(`${label}: still running after ${options.timeoutMs} ms; SIGKILL pid ${pid}`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }, options.timeoutMs);

  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(hardKill);
      live.delete(child);
      exitInfo = { code, signal };
      notify();
      resolve(exitInfo);
    });
  });

  const sendSignal = (signal: NodeJS.Signals): void => {
    if (exitInfo !== undefined) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  };

  return {
    pid,
    label,
    stdout: () => out,
    stderr: () => err,
    timedOut: () => killedByTimeout,
    exited,
    exit: () => exitInfo,
    signal: sendSignal,
    waitForLine(match, timeoutMs) {
      const find = (): string | undefined =>
        `${out}\n${err}`
          .split(/\r?\n/)
          .find((line) => (typeof match === 'string' ? line.includes(match) : match.test(line)));
      return new Promise<string>((resolve, reject) => {
        const check = (): void => {
          const line = find();
          if (line !== undefined) {
            done();
            resolve(line);
          } else if (exitInfo !== undefined) {
            done();
            reject(
              new Error(
                `${label} exited (code ${exitInfo.code}, signal ${exitInfo.signal}) before printing ${String(match)}\n` +
                  `--- stdout ---\n${out}\n--- stderr ---\n${err}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `${label}: no line matching ${String(match)} within ${timeoutMs} ms\n` +
                `--- stdout ---\n${out}\n--- stderr ---\n${err}`,
            ),
          );
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          lineWaiters.delete(check);
        };
        lineWaiters.add(check);
        check();
      });
    },
    async stop(stopOptions = {}) {
      if (exitInfo !== undefined) return { ...exitInfo, forced: false };
      sendSignal(stopOptions.signal ?? 'SIGTERM');
      const graceful = await waitFor(exited, stopOptions.graceMs ?? 2000);
      if (graceful !== undefined) return { ...graceful, forced: false };
      sendSignal('SIGKILL');
      const killed = await waitFor(exited, 5000);
      // SIGKILL cannot be ignored; the 5 s bound only guards against a stuck pipe.
      return { ...(killed ?? { code: null, signal: 'SIGKILL' }), forced: true };
    },
  };
}

/** Polls `check` every `intervalMs` until it returns true; false when `timeoutMs` passes. */
export async function pollUntil(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  intervalMs = 20,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}
