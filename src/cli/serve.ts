/**
 * `switchboard serve [--data-dir DIR] [--domain NAME]... [--listen SPEC]... [--log-level LEVEL]`:
 * the server's composition root. Opens the SQLite store, adds the `--domain` values,
 * creates the stack on the listeners and the registrar on it, prints one
 * `listening SPEC` line per bound listener (with the port the system chose for port 0),
 * and runs until SIGTERM or SIGINT, which close the stack and the store (exit 0).
 *
 * The digest nonce secret is random per start: after a restart, nonces issued before it
 * fail verification and clients are challenged again (a fresh 401).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { cryptoRandom, systemClock, type Logger } from '../base/index.ts';
import { createDigestServer, type DigestServer } from '../auth/index.ts';
import { createProxy } from '../services/proxy/index.ts';
import { createRegistrar } from '../services/registrar/index.ts';
import { createStack, type Stack } from '../stack/index.ts';
import type { Store } from '../store/index.ts';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import { parseAor } from './aor.ts';
import { EXIT_OK, fail, type CliIo } from './io.ts';
import { DEFAULT_DATA_DIR } from './store-options.ts';

/** UDP and TCP on every IPv4 address, port 5060 (issue #5, Command line). */
export const DEFAULT_LISTEN: readonly string[] = Object.freeze([
  'udp:0.0.0.0:5060',
  'tcp:0.0.0.0:5060',
]);

const LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
type Level = (typeof LEVELS)[number];

/** What stops a running server: resolves on SIGTERM/SIGINT by default. */
export interface ServeHooks {
  readonly stopSignal?: Promise<void>;
}

/** A logger writing one JSON line per entry at or above `level` to `out`. */
function lineLogger(out: CliIo['stderr'], level: Level, bindings: object = {}): Logger {
  const min = LEVELS.indexOf(level);
  const at =
    (l: Level) =>
    (obj: object, msg?: string): void => {
      if (LEVELS.indexOf(l) < min) return;
      const o: Record<string, unknown> = { level: l, ...bindings, ...obj };
      if (o.err instanceof Error) o.err = o.err.message;
      if (msg !== undefined) o.msg = msg;
      out.write(JSON.stringify(o) + '\n');
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b) => lineLogger(out, level, { ...bindings, ...b }),
  };
}

function signalPromise(): { promise: Promise<void>; dispose: () => void } {
  let dispose = (): void => {};
  const promise = new Promise<void>((resolve) => {
    const on = (): void => resolve();
    process.once('SIGTERM', on);
    process.once('SIGINT', on);
    dispose = () => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
    };
  });
  return { promise, dispose };
}

/** `switchboard serve ...` (argv after "serve"). */
export async function runServe(
  argv: readonly string[],
  io: CliIo,
  hooks: ServeHooks = {},
): Promise<number> {
  let values: { 'data-dir'?: string; domain?: string[]; listen?: string[]; 'log-level'?: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'data-dir': { type: 'string' },
        domain: { type: 'string', multiple: true },
        listen: { type: 'string', multiple: true },
        'log-level': { type: 'string' },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (e) {
    return fail(
      io,
      `serve: ${e instanceof Error ? e.message : String(e)} (see "switchboard --help")`,
    );
  }
  const level = (values['log-level'] ?? 'info') as Level;
  if (!LEVELS.includes(level)) {
    return fail(io, `serve: --log-level must be one of ${LEVELS.join(', ')}`);
  }
  const domainsGiven: string[] = [];
  for (const d of values.domain ?? []) {
    const name = d.trim().toLowerCase();
    const check = parseAor(`x@${name}`);
    if (name === '' || !check.ok || check.domain !== name) {
      return fail(io, `serve: invalid domain name ${JSON.stringify(d)}`);
    }
    domainsGiven.push(name);
  }
  const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR;
  const listen = values.listen ?? DEFAULT_LISTEN;
  const logger = lineLogger(io.stderr, level);

  let store: Store;
  try {
    store = openSqliteStore(dataDir);
  } catch (e) {
    return fail(
      io,
      `serve: cannot open the store in ${dataDir}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }

  // Installed before anything is bound or printed, so a SIGTERM right after the
  // "listening" line is never the default (kill without cleanup).
  const signals = hooks.stopSignal === undefined ? signalPromise() : undefined;
  const stop = hooks.stopSignal ?? signals!.promise;
  let stack: Stack | undefined;
  try {
    for (const d of domainsGiven) await store.domains.add(d);
    if ((await store.domains.list()).length === 0) {
      // Issue #5: "domain from the config or the host name".
      const host = hostname().toLowerCase();
      const check = parseAor(`x@${host}`);
      if (check.ok && check.domain === host) {
        await store.domains.add(host);
        io.stdout.write(`no domain configured: serving the host name ${host}\n`);
      }
    }

    const clock = systemClock();
    const random = cryptoRandom();
    try {
      stack = await createStack({ listen, clock, random, logger });
    } catch (e) {
      return fail(io, `serve: cannot listen on ${listen.join(', ')}: ${listenError(e)}`);
    }
    const secret = new Uint8Array(randomBytes(32));
    const digests = new Map<string, DigestServer>();
    const users = store.users;
    const digest = (realm: string): DigestServer => {
      let d = digests.get(realm);
      if (d === undefined) {
        d = createDigestServer({
          realm,
          secret,
          clock,
          random,
          logger,
          lookup: async (username, r, hash) => {
            const u = await users.get(`sip:${username}@${r}`);
            if (u === undefined) return undefined;
            return hash === 'MD5' ? u.ha1Md5 : u.ha1Sha256;
          },
        });
        digests.set(realm, d);
      }
      return d;
    };
    const registrar = createRegistrar({
      users: store.users,
      domains: store.domains,
      location: store.location,
      digest,
      clock,
      logger: logger.child({ service: 'registrar' }),
    });
    // The proxy takes every request from the stack and hands REGISTER to the registrar.
    createProxy({
      stack,
      users: store.users,
      domains: store.domains,
      location: store.location,
      digest,
      clock,
      logger: logger.child({ service: 'proxy' }),
      register: (req) => registrar.handle(req),
    });

    for (const l of stack.transport.listeners) {
      const host = l.local.address.includes(':') ? `[${l.local.address}]` : l.local.address;
      io.stdout.write(`listening ${l.protocol}:${host}:${l.local.port}\n`);
    }
    const domains = await store.domains.list();
    io.stdout.write(`domains ${domains.join(', ')}\n`);
    if ((await store.users.list()).length === 0) {
      const d = domains[0] ?? 'example.com';
      const first = stack.transport.listeners[0];
      const where = first === undefined ? '' : `${first.local.address}:${first.local.port}`;
      io.stdout.write(
        [
          '',
          'No users yet. Next steps:',
          `  switchboard user add alice@${d} --password SECRET --data-dir ${dataDir}`,
          `  then point a softphone at it: user "alice", domain "${d}", password SECRET,`,
          `  registrar/outbound proxy ${where} (this host's address instead of 0.0.0.0).`,
          '',
        ].join('\n') + '\n',
      );
    }

    await stop;
    io.stdout.write('stopping\n');
    return EXIT_OK;
  } finally {
    signals?.dispose();
    await stack?.close();
    await store.close();
  }
}

function listenError(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  if (code === 'EADDRINUSE') return 'the address is in use (another SIP server?); use --listen';
  if (code === 'EACCES')
    return 'permission denied (a port below 1024 needs privileges); use --listen';
  if (code === 'EADDRNOTAVAIL') return 'the address is not available on this host';
  return e instanceof Error ? e.message : String(e);
}
