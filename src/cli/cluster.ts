/**
 * `serve` with `workers` above 1: this process supervises that many worker processes
 * (node:cluster), each a whole server (stack, proxy, registrar) on the same listeners. The
 * operating system shares the sockets: every worker reads the one UDP socket, and each TCP,
 * TLS or WebSocket connection is accepted by one of them. Transaction state stays consistent
 * because each message is handled by the worker that owns its Call-ID (transport/steering.ts),
 * whichever worker read it; the workers reach each other over Unix sockets in a directory of
 * this run that only its user can open. They share the SQLite store (WAL: readers and one
 * writer at a time) and the digest nonce secret, so a nonce one worker issued verifies in
 * another (RFC 7616 §3.3).
 *
 * The supervisor:
 * - adds the configured domains (once, before any worker starts) and forks the workers with
 *   their index, the count, the socket directory and the secret in their environment;
 * - waits until each says it listens; a worker that exits before that (a listener that cannot
 *   bind, say) stops the others and the start fails, exit 1;
 * - restarts a worker that dies later (the others keep serving; its UDP share is read by them
 *   meanwhile and handed to it when it is back), unless workers die too often
 *   (RESTART_LIMIT within RESTART_WINDOW_MS): then it stops everything, exit 1;
 * - on SIGTERM or SIGINT tells every worker to drain (the single-process drain, in each) and
 *   exits 0 once all have; a worker that outlives its shutdownTimeout by far is killed.
 * Workers exit when the supervisor is gone (their IPC channel closes).
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../base/index.ts';
import type { ServerConfig } from './config.ts';
import { EXIT_OK, type CliIo } from './io.ts';

/** The environment a worker is started with. */
export const WORKER_ENV = Object.freeze({
  index: 'SWITCHBOARD_WORKER',
  workers: 'SWITCHBOARD_WORKERS',
  meshDir: 'SWITCHBOARD_MESH_DIR',
  secret: 'SWITCHBOARD_NONCE_SECRET',
});

/** A worker process's place in the cluster. */
export interface WorkerRole {
  readonly index: number;
  readonly workers: number;
  readonly meshDir: string;
  /** The digest nonce secret shared by all workers. */
  readonly secret: Uint8Array;
}

/** Messages between a worker and the supervisor. */
type ToSupervisor = { readonly type: 'ready' };
type ToWorker = { readonly type: 'stop' };

/** This process's role when the supervisor started it as a worker, else undefined. */
export function workerRole(env: NodeJS.ProcessEnv = process.env): WorkerRole | undefined {
  if (!cluster.isWorker) return undefined;
  const index = Number(env[WORKER_ENV.index]);
  const workers = Number(env[WORKER_ENV.workers]);
  const meshDir = env[WORKER_ENV.meshDir];
  const secret = env[WORKER_ENV.secret];
  if (!Number.isInteger(index) || !Number.isInteger(workers) || !meshDir || !secret) {
    return undefined;
  }
  return { index, workers, meshDir, secret: new Uint8Array(Buffer.from(secret, 'hex')) };
}

/** A worker tells the supervisor it is listening. */
export function reportReady(): void {
  const msg: ToSupervisor = { type: 'ready' };
  process.send?.(msg);
}

/**
 * Resolves when the supervisor asks this worker to stop, or is gone (the IPC channel closed:
 * a worker never outlives its supervisor).
 */
export function supervisorStop(): Promise<void> {
  return new Promise((resolve) => {
    process.on('message', (m: ToWorker) => {
      if (m?.type === 'stop') resolve();
    });
    process.once('disconnect', () => resolve());
  });
}

/** A worker that has stopped closes its IPC channel, the last thing keeping it alive. */
export function leaveCluster(): void {
  if (process.connected) process.disconnect();
}

/** More restarts than this within RESTART_WINDOW_MS: the supervisor gives up. */
const RESTART_LIMIT = 5;
const RESTART_WINDOW_MS = 60_000;
const RESTART_DELAY_MS = 250;

/**
 * Node.js flags for the workers: the supervisor's own (`--max-old-space-size`, `--cpu-prof`
 * ... apply to every worker), less a TypeScript loader, which the workers' entry registers.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const loader = /^--(import|loader|experimental-loader|require|r)$/;
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if (loader.test(a) && /\btsx\b/.test(execArgv[i + 1] ?? '')) {
      i++;
      continue;
    }
    if (/^--(import|loader|experimental-loader|require)=.*\btsx\b/.test(a)) continue;
    out.push(a);
  }
  return out;
}

/** The CLI entry that workers run (it registers tsx, then runs `main`). */
const BIN = fileURLToPath(new URL('../../bin/switchboard.js', import.meta.url));

/**
 * Runs the supervisor until `stop` resolves (then drains the workers) or the workers fail.
 * `argv` is `serve`'s own argv, passed on to every worker.
 */
export async function superviseWorkers(
  argv: readonly string[],
  config: ServerConfig,
  io: CliIo,
  logger: Logger,
  stop: Promise<void>,
): Promise<number> {
  const n = config.workers;
  const meshDir = mkdtempSync(join(tmpdir(), 'switchboard-'));
  const secret = randomBytes(32).toString('hex');
  cluster.setupPrimary({
    exec: BIN,
    args: ['serve', ...argv],
    execArgv: workerExecArgv(process.execArgv),
  });

  const workers: (Worker | undefined)[] = new Array<Worker | undefined>(n).fill(undefined);
  const ready = new Set<number>();
  const restarts: number[] = [];
  let stopping = false;
  let failed: string | undefined;
  let wake: () => void = () => {};
  const changed = (): Promise<void> =>
    new Promise((resolve) => {
      wake = resolve;
    });

  const fork = (index: number): void => {
    const w = cluster.fork({
      [WORKER_ENV.index]: String(index),
      [WORKER_ENV.workers]: String(n),
      [WORKER_ENV.meshDir]: meshDir,
      [WORKER_ENV.secret]: secret,
    });
    workers[index] = w;
    w.on('message', (m: ToSupervisor) => {
      if (m?.type === 'ready') {
        ready.add(index);
        // A stop sent while this worker was still loading found no listener and was lost
        // (an IPC message without a 'message' listener is dropped): send it again now.
        if (stopping) w.send({ type: 'stop' } satisfies ToWorker);
        wake();
      }
    });
    w.once('exit', (code, signal) => {
      if (workers[index] === w) workers[index] = undefined;
      const wasReady = ready.delete(index);
      if (!stopping) {
        if (!wasReady) {
          failed ??= `worker ${index} exited while starting (code ${String(code)}, signal ${String(signal)})`;
        } else {
          const now = Date.now();
          restarts.push(now);
          while (restarts.length > 0 && restarts[0]! < now - RESTART_WINDOW_MS) restarts.shift();
          logger.error({ worker: index, code, signal }, 'worker died; restarting it');
          if (restarts.length > RESTART_LIMIT) {
            failed ??= `workers died ${restarts.length} times within ${RESTART_WINDOW_MS / 1000} s`;
          } else {
            setTimeout(() => {
              if (!stopping && failed === undefined) fork(index);
            }, RESTART_DELAY_MS).unref();
          }
        }
      }
      wake();
    });
  };

  const live = (): Worker[] => workers.filter((w): w is Worker => w !== undefined);
  let stopped = false;
  void stop.then(() => {
    stopped = true;
    wake();
  });

  try {
    for (let i = 0; i < n; i++) fork(i);
    // Started: every worker listening, or a failure, or a stop request.
    while (ready.size < n && failed === undefined && !stopped) await changed();
    if (failed === undefined && !stopped) {
      logger.info({ workers: n }, 'all workers listening');
      while (failed === undefined && !stopped) await changed();
    }
    stopping = true;
    const msg: ToWorker = { type: 'stop' };
    for (const w of live()) w.send(msg);
    // Each worker drains within shutdownTimeout; past that and a margin, it is killed.
    const killAt = Date.now() + config.shutdownTimeout * 1000 + 10_000;
    while (live().length > 0) {
      const left = killAt - Date.now();
      if (left <= 0) {
        for (const w of live()) w.process.kill('SIGKILL');
        break;
      }
      await Promise.race([changed(), new Promise((r) => setTimeout(r, Math.min(left, 1000)))]);
    }
    if (failed !== undefined) {
      io.stderr.write(`serve: ${failed}\n`);
      return 1;
    }
    return EXIT_OK;
  } finally {
    for (const w of live()) w.process.kill('SIGKILL');
    rmSync(meshDir, { recursive: true, force: true });
  }
}
