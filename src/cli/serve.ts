/**
 * `switchboard serve [--config FILE] [--data-dir DIR] [--domain NAME]... [--listen SPEC]...
 * [--log-level LEVEL] [--tls-cert FILE --tls-key FILE]`: the server's composition root.
 *
 * 1. The configuration: the YAML file, the flags over it, the defaults (config.ts); a
 *    mistake is one line naming the key, exit 1, before anything is opened.
 * 2. Opens the SQLite store and adds the configured domains.
 * 3. Builds the transport layer on the listeners (with the certificate and the limits)
 *    and the stack on it, then the services on the stack (`buildServices`).
 * 4. Prints one `listening SPEC` line per bound listener (with the port the system chose
 *    for port 0), `domains ...`, and on a first run what to do next.
 * 5. Purges expired bindings every `registrar.purgeInterval` seconds, tries to deliver
 *    kept instant messages every `messaging.retryInterval` seconds (services/messaging),
 *    and looks for presence changes to notify every `presence.pollInterval` seconds.
 * 6. On SIGTERM or SIGINT, drains (`drain`): stops listening, lets the transactions in
 *    progress finish within `shutdownTimeout`, then closes the stack and the store (exit 0).
 *
 * Bindings are read from the store per request; users and domains are cached by the store,
 * which checks for other connections' commits before each read, so `switchboard user ...`
 * and `domain add` take effect at once.
 * The digest nonce secret is random per start: after a restart, nonces issued before it
 * fail verification and clients are challenged again (a fresh 401).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { createSecureContext } from 'node:tls';
import { parseArgs } from 'node:util';
import {
  createIdGenerator,
  cryptoRandom,
  defaultLimits,
  systemClock,
  type Clock,
  type Logger,
  type MessageLimits,
  type RandomSource,
  type TimerHandle,
} from '../base/index.ts';
import { createDigestServer, type DigestServer } from '../auth/index.ts';
import { createMessaging, type Messaging } from '../services/messaging/index.ts';
import {
  createDialogTracker,
  createNotifier,
  createPresence,
  type DialogTracker,
  type Notifier,
  type Presence,
} from '../services/presence/index.ts';
import { createProxy, type Proxy } from '../services/proxy/index.ts';
import { createRegistrar, type Registrar } from '../services/registrar/index.ts';
import { createStack, type Stack } from '../stack/index.ts';
import { peekUnauthenticatedRegister, type SipRequest } from '../sip/index.ts';
import type { LocationStore, PresenceStore, Store } from '../store/index.ts';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import {
  PeerMesh,
  createTransportLayer,
  ownedCallIds,
  ownerOfCallId,
  type SwitchboardTransportLayer,
  type TlsCredentials,
} from '../transport/index.ts';
import {
  ConfigError,
  loadConfig,
  normalizeDomain,
  type ConfigOverrides,
  type LogLevel,
  LOG_LEVELS,
  type ServerConfig,
} from './config.ts';
import {
  leaveCluster,
  reportReady,
  superviseWorkers,
  supervisorStop,
  workerRole,
} from './cluster.ts';
import { EXIT_OK, fail, readErrorReason, type CliIo } from './io.ts';

export { DEFAULT_LISTEN } from './config.ts';

/**
 * How long a worker of several gathers binding and subscription updates into one commit, ms;
 * a REGISTER's 200 or a NOTIFY waits at most this much longer.
 *
 * Against committing every turn, 5 ms took 8-13% off the CPU per registration of two workers
 * at 2,000 registrations/s (means of 4 and 3 alternating runs). But a busy registrar then
 * answered REGISTER in 10-70 ms instead of 1-2, and a sender keeps every unanswered request
 * open meanwhile: sipp, at 8,000 registrations/s, placed only 7,279-7,472 of them per second
 * (91-93%) against 7,922-7,937 with 1 ms, and 7,153-9,234 against 9,978-10,869 at 11,000/s.
 * 1 ms batches as well as 5 where it matters (at 4,000 per worker and second, a commit holds
 * four updates): the CPU per registration measured the same at 8,000/s (0.091-0.093 ms
 * against 0.082-0.101) and 11,000/s; at 2,000/s it was about 7% higher (0.154-0.190 against
 * 0.136-0.176), with most of the CPU idle.
 */
const WORKER_COMMIT_WINDOW_MS = 1;

/** What stops a running server: resolves on SIGTERM/SIGINT by default. */
export interface ServeHooks {
  readonly stopSignal?: Promise<void>;
}

/** A logger writing one JSON line per entry at or above `level` to `out`. */
function lineLogger(out: CliIo['stderr'], level: LogLevel, bindings: object = {}): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const at =
    (l: LogLevel) =>
    (obj: object, msg?: string): void => {
      if (LOG_LEVELS.indexOf(l) < min) return;
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

/** The flags of `serve`, parsed; a string is a usage error. */
function parseServeArgs(
  argv: readonly string[],
): { file?: string; flags: ConfigOverrides } | string {
  let values: {
    config?: string;
    'data-dir'?: string;
    domain?: string[];
    listen?: string[];
    'log-level'?: string;
    'tls-cert'?: string;
    'tls-key'?: string;
    workers?: string;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string' },
        'data-dir': { type: 'string' },
        domain: { type: 'string', multiple: true },
        listen: { type: 'string', multiple: true },
        'log-level': { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        workers: { type: 'string' },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (e) {
    return `serve: ${e instanceof Error ? e.message : String(e)} (see "switchboard --help")`;
  }
  const flags: ConfigOverrides = {
    ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
    ...(values.domain !== undefined ? { domains: values.domain } : {}),
    ...(values.listen !== undefined ? { listen: values.listen } : {}),
    ...(values['log-level'] !== undefined ? { logLevel: values['log-level'] } : {}),
    ...(values['tls-cert'] !== undefined ? { tlsCert: values['tls-cert'] } : {}),
    ...(values['tls-key'] !== undefined ? { tlsKey: values['tls-key'] } : {}),
    ...(values.workers !== undefined ? { workers: values.workers } : {}),
  };
  return { ...(values.config !== undefined ? { file: values.config } : {}), flags };
}

/**
 * The certificate chain and key of `config.tls`, read and checked to belong together
 * (a TLS listener would otherwise fail on the first handshake, not at start).
 */
async function readTls(
  config: ServerConfig,
  flags: ConfigOverrides,
): Promise<TlsCredentials | undefined> {
  if (config.tls === undefined) return undefined;
  const read = async (file: string, key: string): Promise<string> => {
    try {
      return await readFile(file, 'utf8');
    } catch (e) {
      throw new ConfigError(key, `cannot read ${file}: ${readErrorReason(e)}`);
    }
  };
  const certKey = flags.tlsCert !== undefined ? '--tls-cert' : 'tls.cert';
  const cert = await read(config.tls.cert, certKey);
  const key = await read(config.tls.key, flags.tlsKey !== undefined ? '--tls-key' : 'tls.key');
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ConfigError(certKey, `not a usable PEM certificate chain and private key: ${why}`);
  }
  return { cert, key };
}

/** The message limits of `config.limits` (the rest of MessageLimits at their defaults). */
function messageLimits(config: ServerConfig): MessageLimits {
  const { maxHeaderBytes, maxBodyBytes } = config.limits;
  return {
    ...defaultLimits,
    maxHeaderBytes,
    maxBodyBytes,
    // A stream framer holds at most this much (RFC 3261 §18.3): one whole message plus a
    // read's worth of the next one must fit, or a legal message would overflow it.
    maxBufferedBytes: Math.max(
      defaultLimits.maxBufferedBytes,
      maxHeaderBytes + maxBodyBytes + 65_536,
    ),
  };
}

/** What the services are built from: one stack, the store and the configuration. */
export interface ServiceContext {
  readonly stack: Stack;
  readonly store: Store;
  readonly config: ServerConfig;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly logger: Logger;
  /** The digest nonce secret (default: random); the workers of one server share theirs. */
  readonly secret?: Uint8Array;
  /** A worker's index: it marks the nonces it issues (nonce.ts `issuer`). */
  readonly nonceIssuer?: number;
  /**
   * Which worker will verify the answer to a challenge of this request (the owner of its
   * Call-ID): a worker answers a REGISTER without credentials itself, for any Call-ID.
   */
  readonly nonceIssuerOf?: (request: SipRequest) => number;
  /**
   * Whether this process owns a Call-ID (workers: the steering hash); it sends the NOTIFYs
   * of the subscriptions whose Call-ID it owns. Default: every one.
   */
  readonly ownsCallId?: (callId: string) => boolean;
}

/** The running services; `close` stops their timers (the stack then ends their transactions). */
export interface Services {
  readonly registrar: Registrar;
  readonly proxy: Proxy;
  /** Store-and-forward of instant messages; `startSweeping` is the caller's (one process). */
  readonly messaging: Messaging;
  /** The event state compositor of local users' presence (RFC 3903 PUBLISH). */
  readonly presence: Presence;
  /**
   * The presence agent (RFC 6665 SUBSCRIBE/NOTIFY for presence and presence.winfo);
   * `start` (polling the store for other processes' changes) is the caller's.
   */
  readonly notifier: Notifier;
  /**
   * Local users' call states for the dialog package (RFC 4235), fed by the proxy; `start`
   * (its sweep for calls whose end was never seen) is the caller's, in every worker.
   */
  readonly dialogs: DialogTracker;
  close(): void;
}

/**
 * The SIP services of this server on `ctx.stack`: the registrar (RFC 3261 §10.3) and
 * the proxy (§16), which takes every request and hands REGISTER to the registrar. A new
 * service is created here, from `ctx.config`.
 */
export function buildServices(ctx: ServiceContext): Services {
  const { stack, store, config, clock, random, logger } = ctx;
  const secret = ctx.secret ?? new Uint8Array(randomBytes(32));
  const digests = new Map<string, DigestServer>();
  const users = store.users;
  // One digest server per realm (= domain), made on first use: a domain added while the
  // server runs gets one then. The H(A1) lookup reads the store on every request.
  const digest = (realm: string): DigestServer => {
    let d = digests.get(realm);
    if (d === undefined) {
      d = createDigestServer({
        realm,
        secret,
        clock,
        random,
        logger,
        algorithms: config.auth.algorithms,
        ...(ctx.nonceIssuer !== undefined ? { nonceIssuer: ctx.nonceIssuer } : {}),
        ...(ctx.nonceIssuerOf !== undefined ? { nonceIssuerOf: ctx.nonceIssuerOf } : {}),
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
  const messaging = createMessaging({
    stack,
    location: store.location,
    messages: store.messages,
    clock,
    logger: logger.child({ service: 'messaging' }),
    lifetimeMs: config.messaging.lifetime * 1000,
    quota: config.messaging.quota,
    retryIntervalMs: config.messaging.retryInterval * 1000,
    maxBodyBytes: config.messaging.maxBodyBytes,
    maxBranches: config.proxy.maxBranches,
  });
  const presence = createPresence({
    store: store.presence,
    clock,
    random,
    logger: logger.child({ service: 'presence' }),
    minExpires: config.presence.minExpires,
    maxExpires: config.presence.maxExpires,
    // A user without published state is shown open while registered (RFC 3856 §6.4).
    location: store.location,
  });
  const notifier = createNotifier({
    stack,
    presence,
    subscriptions: store.subscriptions,
    rules: store.presenceRules,
    versions: store.presence,
    users: store.users,
    clock,
    logger: logger.child({ service: 'presence' }),
    minExpires: config.presence.subscribeMinExpires,
    maxExpires: config.presence.subscribeMaxExpires,
    defaultExpires: config.presence.subscribeDefaultExpires,
    maxPerWatcher: config.presence.maxSubscriptionsPerWatcher,
    maxPerUser: config.presence.maxWatchersPerUser,
    policy: {
      sameDomain: config.presence.sameDomainPolicy,
      otherDomains: config.presence.defaultPolicy,
    },
    pollIntervalMs: config.presence.pollInterval * 1000,
    ...(ctx.ownsCallId !== undefined ? { owns: ctx.ownsCallId } : {}),
    dialogs: store.dialogs,
  });
  const dialogs = createDialogTracker({
    dialogs: store.dialogs,
    subscriptions: store.subscriptions,
    clock,
    logger: logger.child({ service: 'presence' }),
    maxDialogs: config.presence.maxTrackedCalls,
    maxCallMs: config.presence.maxCallDuration * 1000,
    // The proxy answers every INVITE by Timer C after its last provisional response at most.
    maxEarlyMs: config.proxy.timerC * 1000 + 60_000,
    // A state written here is notified at once to the watchers this process owns.
    onChange: () => notifier.changed(),
  });
  const registrar = createRegistrar({
    users: store.users,
    domains: store.domains,
    location: store.location,
    digest,
    clock,
    logger: logger.child({ service: 'registrar' }),
    minExpires: config.registrar.minExpires,
    maxExpires: config.registrar.maxExpires,
    defaultExpires: config.registrar.defaultExpires,
    // A user who registers gets what was kept for them (RFC 3428 store-and-forward).
    onRegistered: (aor) => messaging.deliver(aor),
    // Watchers of a user see registrations come and go (presence derived from them).
    onBindingsChanged: (aor) => notifier.bindingsChanged(aor),
  });
  // The proxy takes every request from the stack and hands REGISTER to the registrar.
  const proxy = createProxy({
    stack,
    users: store.users,
    domains: store.domains,
    location: store.location,
    digest,
    clock,
    logger: logger.child({ service: 'proxy' }),
    register: (req) => registrar.handle(req),
    // A REGISTER without credentials is challenged before any transaction is made for it.
    registerScreen: (m) => registrar.screen(m),
    relay: config.proxy.relay,
    timerC: config.proxy.timerC * 1000,
    recurse: config.proxy.recurse,
    maxBranches: config.proxy.maxBranches,
    messages: messaging.hooks,
    // PUBLISH to a local user ends at the server, the user's event state compositor.
    publish: (req, aor, publisher) => presence.handlePublish(req, aor, publisher),
    // SUBSCRIBE to a local user ends at the server, the users' presence agent.
    subscribe: {
      initial: (req, aor, subscriber) => notifier.handleSubscribe(req, aor, subscriber),
      inDialog: (req) => notifier.handleInDialog(req),
    },
    // Busy lamps: the state of local users' calls, for the dialog package.
    calls: dialogs,
  });
  return {
    registrar,
    proxy,
    messaging,
    presence,
    notifier,
    dialogs,
    close: () => {
      void dialogs.close();
      void notifier.close();
      void messaging.close();
      proxy.close();
    },
  };
}

/**
 * Deletes expired bindings, and expired presence publications when given, every
 * `intervalMs` on the clock's timer (reads already hide them; this keeps the tables from
 * growing). The next run is armed only when the previous one has finished, and `stop()`
 * cancels it: nothing keeps the process alive.
 */
export function startPurging(
  location: LocationStore,
  clock: Clock,
  intervalMs: number,
  logger: Logger,
  presence?: PresenceStore,
): { stop(): Promise<void> } {
  let timer: TimerHandle | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  const run = (): void => {
    timer = undefined;
    const now = clock.wallNow();
    running = Promise.all([
      location.purgeExpired(now).then(
        (n) => {
          if (n > 0) logger.debug({ purged: n }, 'expired bindings purged');
        },
        (err: unknown) => logger.warn({ err }, 'purging expired bindings failed'),
      ),
      presence?.purgeExpired(now).then(
        (keys) => {
          if (keys.length > 0) logger.debug({ purged: keys.length }, 'expired publications purged');
        },
        (err: unknown) => logger.warn({ err }, 'purging expired publications failed'),
      ),
    ])
      .then(() => undefined)
      .finally(() => {
        if (!stopped) timer = clock.setTimer(intervalMs, run);
      });
  };
  run(); // bindings that expired while the server was down go at once
  return {
    stop: async () => {
      stopped = true;
      timer?.cancel();
      await running;
    },
  };
}

/** How a drain ended: every pending transaction finished, or the timeout came first. */
export interface DrainResult {
  readonly drained: boolean;
  /** Pending transactions left when it ended (0 and 0 when drained). */
  readonly left: { readonly client: number; readonly server: number };
  readonly elapsedMs: number;
}

/** How often a drain looks at the transaction table. */
const DRAIN_POLL_MS = 50;

/**
 * Drains a server before it stops: stops listening (new connections are refused),
 * refuses new requests (they are dropped unanswered), and waits until no transaction
 * has work left (`TransactionLayer.pending`: requests without a final response,
 * forwarded requests waiting for one, INVITE responses waiting for their ACK), at most
 * `timeoutMs` on the clock's timer. The caller closes the stack afterwards.
 */
export async function drain(
  stack: Stack,
  transport: SwitchboardTransportLayer,
  clock: Clock,
  timeoutMs: number,
): Promise<DrainResult> {
  transport.stopListening();
  stack.transactions.stopAccepting();
  const start = clock.now();
  for (;;) {
    const left = stack.transactions.pending;
    const elapsedMs = clock.now() - start;
    if (left.client === 0 && left.server === 0) return { drained: true, left, elapsedMs };
    if (elapsedMs >= timeoutMs) return { drained: false, left, elapsedMs };
    await new Promise<void>((resolve) => {
      clock.setTimer(Math.min(DRAIN_POLL_MS, timeoutMs - elapsedMs), resolve);
    });
  }
}

/** `switchboard serve ...` (argv after "serve"). */
export async function runServe(
  argv: readonly string[],
  io: CliIo,
  hooks: ServeHooks = {},
): Promise<number> {
  const args = parseServeArgs(argv);
  if (typeof args === 'string') return fail(io, args);
  let config: ServerConfig;
  let tls: TlsCredentials | undefined;
  try {
    config = await loadConfig(args.file, args.flags);
    tls = await readTls(config, args.flags);
  } catch (e) {
    if (e instanceof ConfigError) return fail(io, e.message);
    throw e;
  }
  const { dataDir, listen } = config;
  const role = workerRole();
  const logger = lineLogger(
    io.stderr,
    config.logLevel,
    role === undefined ? {} : { worker: role.index },
  );
  if (role === undefined && config.workers > 1) return supervise(argv, config, io, logger, hooks);
  // Worker 0 speaks for the server on standard output; the others only log.
  const out: CliIo['stdout'] =
    role === undefined || role.index === 0 ? io.stdout : { write: () => true };

  let store: Store;
  try {
    // Several writers share the file (workers, commands): wait for their locks off the loop.
    // Workers commit their updates every few ms rather than every turn: each commit makes
    // the other workers read their pages again (SqliteStoreOptions.commitWindowMs).
    store = openSqliteStore(dataDir, {
      nonBlocking: true,
      changeCheckIntervalMs: 1,
      commitWindowMs: role !== undefined && role.workers > 1 ? WORKER_COMMIT_WINDOW_MS : 0,
    });
  } catch (e) {
    return fail(
      io,
      `serve: cannot open the store in ${dataDir}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }

  // Installed before anything is bound or printed, so a SIGTERM right after the
  // "listening" line is never the default (kill without cleanup).
  const signals = hooks.stopSignal === undefined ? signalPromise() : undefined;
  const stop =
    role === undefined
      ? (hooks.stopSignal ?? signals!.promise)
      : Promise.race([supervisorStop(), signals!.promise]);
  let stack: Stack | undefined;
  let mesh: PeerMesh | undefined;
  let transport: SwitchboardTransportLayer | undefined;
  let services: Services | undefined;
  let purging: { stop(): Promise<void> } | undefined;
  try {
    // With workers, the supervisor has added them before starting any worker.
    if (role === undefined) await addDomains(store, config, io);

    const clock = systemClock();
    const random = cryptoRandom();
    try {
      if (role !== undefined) {
        mesh = await PeerMesh.start({
          self: role.index,
          workers: role.workers,
          dir: role.meshDir,
          logger,
        });
      }
      transport = await createTransportLayer({
        ...(role !== undefined ? { id: `w${role.index}` } : {}),
        // A REGISTER without credentials is answered by the worker that reads it, whoever
        // owns its Call-ID: the registrar challenges it statelessly (RFC 3261 §8.2.7, §10.3
        // step 3) and marks the nonce for the owner, which sees the answer. Half of all first
        // REGISTERs skip a hand-over.
        ...(mesh !== undefined
          ? { steering: mesh, answeredByReader: peekUnauthenticatedRegister }
          : {}),
        listen,
        clock,
        random,
        logger,
        limits: messageLimits(config),
        maxConnectionsPerIp: config.limits.maxConnectionsPerIp,
        shedAfterMs: Math.round(config.limits.shedAfter * 1000),
        ...(tls !== undefined ? { tls } : {}),
      });
    } catch (e) {
      return fail(io, `serve: cannot listen on ${listen.join(', ')}: ${listenError(e)}`);
    }
    stack = await createStack({
      transport,
      clock,
      random,
      logger,
      // A request a worker starts (new Call-ID) must have its responses steered back to it.
      // Workers answer one another's stateless requests (a REGISTER without credentials, read
      // by any): their To tags come from one salt, derived from the secret they share.
      ...(role !== undefined
        ? {
            ids: ownedCallIds(createIdGenerator(random), role.index, role.workers),
            tagSalt: createHash('sha256')
              .update('switchboard stateless To tag\0')
              .update(role.secret)
              .digest('hex')
              .slice(0, 16),
          }
        : {}),
      maxServerTransactions: config.limits.maxServerTransactions,
      ...(config.limits.maxServerTransactionsPerSource > 0
        ? { maxServerTransactionsPerSource: config.limits.maxServerTransactionsPerSource }
        : {}),
    });
    services = buildServices({
      stack,
      store,
      config,
      clock,
      random,
      logger,
      ...(role !== undefined
        ? {
            secret: role.secret,
            nonceIssuer: role.index,
            nonceIssuerOf: (m: SipRequest) => ownerOfCallId(m.callId, role.workers),
            ownsCallId: (id: string) => ownerOfCallId(id, role.workers) === role.index,
          }
        : {}),
    });
    // Every worker notifies the subscriptions it owns (their Call-IDs hash to it).
    services.notifier.start();
    // Every worker ends the calls it forwarded whose end it never saw.
    services.dialogs.start();
    // One purger is enough for the one store.
    if (role === undefined || role.index === 0) {
      purging = startPurging(
        store.location,
        clock,
        config.registrar.purgeInterval * 1000,
        logger,
        store.presence,
      );
      // Likewise one sweep over kept messages (each REGISTER still triggers its own
      // user's delivery on the worker that takes it; leases keep them from overlapping).
      services.messaging.startSweeping();
    }

    for (const l of stack.transport.listeners) {
      const host = l.local.address.includes(':') ? `[${l.local.address}]` : l.local.address;
      out.write(`listening ${l.protocol}:${host}:${l.local.port}\n`);
    }
    const domains = await store.domains.list();
    out.write(`domains ${domains.join(', ')}\n`);
    if ((await store.users.list()).length === 0) {
      const d = domains[0] ?? 'example.com';
      // Started by `npm start` in a clone (the README's first line): the command is not on
      // the PATH there, but npx finds the project's own bin from the same directory.
      const command =
        process.env.npm_lifecycle_event === 'start' ? 'npx switchboard' : 'switchboard';
      const first = stack.transport.listeners[0];
      const where = first === undefined ? '' : `${first.local.address}:${first.local.port}`;
      out.write(
        [
          '',
          'No users yet. Next steps:',
          `  ${command} user add alice@${d} --password SECRET --data-dir ${dataDir}`,
          `  then point a softphone at it: user "alice", domain "${d}", password SECRET,`,
          `  registrar/outbound proxy ${where} (this host's address instead of 0.0.0.0).`,
          '',
        ].join('\n') + '\n',
      );
    }

    if (role !== undefined) reportReady();

    await stop;
    // A second SIGTERM/SIGINT while draining gets the default action: stop at once.
    signals?.dispose();
    out.write('stopping\n');
    const r = await drain(stack, transport, clock, config.shutdownTimeout * 1000);
    if (r.drained) {
      logger.info({ ms: Math.round(r.elapsedMs) }, 'drained: no transaction in progress');
    } else {
      logger.warn(
        { clientTransactions: r.left.client, serverTransactions: r.left.server },
        'shutdownTimeout reached: closing the transactions still in progress',
      );
    }
    return EXIT_OK;
  } finally {
    signals?.dispose();
    await purging?.stop();
    services?.close();
    await stack?.close();
    await mesh?.close();
    await store.close();
    if (role !== undefined) leaveCluster();
  }
}

/** The configured domains into the store; the host name when there are none at all. */
async function addDomains(store: Store, config: ServerConfig, io: CliIo): Promise<void> {
  for (const d of config.domains) await store.domains.add(d);
  if ((await store.domains.list()).length === 0) {
    // Issue #5: "domain from the config or the host name".
    const host = normalizeDomain(hostname());
    if (host !== undefined) {
      await store.domains.add(host);
      io.stdout.write(`no domain configured: serving the host name ${host}\n`);
    }
  }
}

/** `workers` > 1: the store is prepared here, then the workers serve (cluster.ts). */
async function supervise(
  argv: readonly string[],
  config: ServerConfig,
  io: CliIo,
  logger: Logger,
  hooks: ServeHooks,
): Promise<number> {
  let store: Store;
  try {
    store = openSqliteStore(config.dataDir);
  } catch (e) {
    return fail(
      io,
      `serve: cannot open the store in ${config.dataDir}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  try {
    await addDomains(store, config, io);
  } finally {
    await store.close();
  }
  const signals = hooks.stopSignal === undefined ? signalPromise() : undefined;
  try {
    return await superviseWorkers(argv, config, io, logger, hooks.stopSignal ?? signals!.promise);
  } finally {
    signals?.dispose();
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
