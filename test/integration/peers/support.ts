/**
 * Shared set-up for the real-peer tests (baresip 1.0, linphonec 5.1) against `switchboard serve`:
 * a data directory with the domain and the users, the server on UDP and TCP listeners on
 * 127.0.0.1 port 0, the location store read back, and failure context from every party.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Binding } from '../../../src/store/index.ts';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { cli, startServer, stopServer } from '../../support/server.ts';
import type { RunningServer } from '../../support/server.ts';

export const DOMAIN = 'example.com';

/** Hard limit on every child's life (all are stopped by pid long before, in `finally`/`after`). */
export const LIFETIME_MS = 60_000;
/** One step of a call or a registration; generous for a loaded 2-core machine. */
export const STEP_MS = 10_000;
/**
 * How long an established call is held before the hang-up: baresip prints `Call with X
 * terminated` only for calls of at least one second.
 */
export const HOLD_MS = 1_200;

export interface PeersServer {
  readonly dataDir: string;
  readonly server: RunningServer;
  /** The server's port for `transport` on 127.0.0.1. */
  port(transport: 'udp' | 'tcp'): number;
  /** The live bindings of `sip:USER@example.com`, read from the server's store. */
  bindings(user: string): Promise<Binding[]>;
  /** The server's stdout and stderr, for failure messages. */
  describe(): string;
  /** Stops the server and removes the data directory. Idempotent, never throws. */
  close(): Promise<void>;
}

/**
 * `switchboard serve --domain example.com --listen udp:127.0.0.1:0 --listen tcp:127.0.0.1:0
 * [--config FILE] [serveArgs...]` with users `USER@example.com` (password `pw-USER` each).
 * `config` is the YAML text of a configuration file, written next to the store (e.g.
 * MD5_ONLY_YAML, for phones that answer MD5 challenges only).
 */
export async function startPeersServer(
  users: readonly string[],
  serveArgs: readonly string[] = [],
  config?: string,
): Promise<PeersServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'switchboard-peers-'));
  let server: RunningServer | undefined;
  try {
    const configArgs: string[] = [];
    if (config !== undefined) {
      const file = join(dataDir, 'switchboard.yaml');
      writeFileSync(file, config);
      configArgs.push('--config', file);
    }
    cli(['domain', 'add', DOMAIN, '--data-dir', dataDir]);
    // One `user import` for all users: each CLI start costs about a second (tsx).
    const csv = join(dataDir, 'users.csv');
    writeFileSync(
      csv,
      ['aor,password', ...users.map((u) => `${u}@${DOMAIN},${passwordOf(u)}`)].join('\n') + '\n',
    );
    cli(['user', 'import', csv, '--data-dir', dataDir]);
    server = await startServer({
      dataDir,
      domains: [DOMAIN],
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      logLevel: 'info',
      extraArgs: [...configArgs, ...serveArgs],
    });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const running = server;
  let closed: Promise<void> | undefined;
  return {
    dataDir,
    server: running,
    port: (transport) => {
      const port = running.ports[transport];
      if (port === undefined) throw new Error(`serve printed no ${transport} listener`);
      return port;
    },
    async bindings(user) {
      const store = openSqliteStore(dataDir);
      try {
        return await store.location.lookup(`sip:${user}@${DOMAIN}`, Date.now());
      } finally {
        await store.close();
      }
    },
    describe: () =>
      [
        `--- serve stdout ---\n${running.stdout().slice(-3000)}`,
        `--- serve stderr (tail) ---\n${running.stderr().slice(-6000)}`,
      ].join('\n'),
    close() {
      closed ??= (async () => {
        await stopServer(running).catch(() => undefined);
        rmSync(dataDir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}

/** The password `startPeersServer` gives USER. */
export function passwordOf(user: string): string {
  return `pw-${user}`;
}

/** Awaits `p`; on failure rethrows with `context()` (every party's output) appended. */
export async function step<T>(p: Promise<T>, what: string, context: () => string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new Error(
      `${what}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n${context()}`,
      { cause: err },
    );
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
