/**
 * `switchboard serve` as a child process for integration tests: the CLI helper, a
 * server started on loopback listeners with port 0 (the bound ports are read from its
 * `listening PROTO:HOST:PORT` lines), and a bounded stop. Every wait is bounded and the
 * child is SIGKILLed when it does not exit.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

export const BIN = 'bin/switchboard.js';

export interface RunningServer {
  readonly child: ChildProcess;
  /** The first UDP port, else the first port printed. */
  readonly port: number;
  /** Bound port of each listener, by protocol (`udp`, `tcp`, `tls`, `ws`, `wss`). */
  readonly ports: Readonly<Record<string, number>>;
  stdout(): string;
  stderr(): string;
}

/** Runs `switchboard ARGS` and asserts exit 0; returns stdout. */
export function cli(args: readonly string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Rejects after `ms` with a message naming `what`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface StartServerOptions {
  readonly dataDir: string;
  /** Default: `udp:127.0.0.1:0`. */
  readonly listen?: readonly string[];
  /** Default: `example.com`. */
  readonly domains?: readonly string[];
  /** Default: `warn`. */
  readonly logLevel?: string;
  readonly extraArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

/** Starts `switchboard serve` and resolves once every listener printed its line. */
export async function startServer(o: StartServerOptions): Promise<RunningServer> {
  const listen = o.listen ?? ['udp:127.0.0.1:0'];
  const args = [BIN, 'serve', '--data-dir', o.dataDir];
  for (const d of o.domains ?? ['example.com']) args.push('--domain', d);
  for (const l of listen) args.push('--listen', l);
  args.push('--log-level', o.logLevel ?? 'warn', ...(o.extraArgs ?? []));
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(o.env !== undefined ? { env: o.env } : {}),
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const ports: Record<string, number> = {};
  await within(
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        const lines = [...out.matchAll(/^listening (\w+):(?:\[[^\]]*\]|[^:\s]+):(\d+)$/gm)];
        if (lines.length >= listen.length) {
          for (const m of lines) ports[m[1]!] ??= Number(m[2]);
          resolve();
        }
      };
      child.stdout.on('data', check);
      child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    }),
    20_000,
    'serve to print its listening lines',
  ).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  const port = ports.udp ?? Object.values(ports)[0]!;
  return { child, port, ports, stdout: () => out, stderr: () => err };
}

/** SIGTERM, then SIGKILL after `ms`; resolves with the exit code (null when killed). */
export async function stopServer(s: RunningServer, ms = 10_000): Promise<number | null> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return s.child.exitCode;
  const exited = new Promise<number | null>((r) => s.child.once('exit', (code) => r(code)));
  s.child.kill('SIGTERM');
  try {
    return await within(exited, ms, 'serve to exit on SIGTERM');
  } catch (e) {
    s.child.kill('SIGKILL');
    throw e;
  }
}
