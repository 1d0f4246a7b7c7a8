/**
 * The server's configuration: a YAML file (`switchboard serve --config FILE`) checked
 * against a zod schema when the server starts, merged with the command-line flags (a
 * flag wins over the file), and completed with the defaults. `ServerConfig` is the
 * result every part of `serve` reads; docs/configuration.md documents each key (a test
 * checks that every key of the schema is there).
 *
 * Mistakes are reported as one line naming the key, `config: listen[1]: expected
 * PROTO:HOST:PORT ...`, before anything is opened or bound. Unknown keys are mistakes
 * too (strict objects): a misspelt key silently ignored is a setting silently lost.
 * Durations are in seconds, as SIP's Expires (RFC 3261 §20.19).
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { defaultLimits, type ErrorCode } from '../base/index.ts';
import { STACK_MAX_SERVER_TRANSACTIONS } from '../stack/index.ts';
import { parseListenSpec } from '../transport/index.ts';
import { parseAor } from './aor.ts';
import { readErrorReason } from './io.ts';
import { DEFAULT_DATA_DIR } from './store-options.ts';

/** UDP and TCP on every IPv4 address, port 5060. */
export const DEFAULT_LISTEN: readonly string[] = Object.freeze([
  'udp:0.0.0.0:5060',
  'tcp:0.0.0.0:5060',
]);

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What a listen spec must look like, for error messages. */
const LISTEN_FORMAT =
  'expected PROTO:HOST:PORT with PROTO udp, tcp, tls, ws or wss and HOST an IP address (IPv6 in brackets)';

/**
 * A problem with the configuration: `key` names it (`listen[1]`, `registrar.minExpires`,
 * or a flag such as `--listen`); the message is the one line `serve` prints.
 */
export class ConfigError extends Error {
  /** Stable, as every thrown error's (docs/errors.md); the message stays `serve`'s one line. */
  readonly code: ErrorCode = 'SB_ERR_CONFIG';
  readonly key: string;
  constructor(key: string, detail: string) {
    super(
      key === ''
        ? `config: ${detail}`
        : key.startsWith('--')
          ? `serve: ${key}: ${detail}`
          : `config: ${key}: ${detail}`,
    );
    this.name = 'ConfigError';
    this.key = key;
  }
}

/** The reason a listen spec is refused, or undefined when it is one. */
export function listenSpecProblem(spec: string): string | undefined {
  try {
    parseListenSpec(spec);
    return undefined;
  } catch (e) {
    // parseListenSpec's message repeats the spec; keep only the reason after it.
    const why = e instanceof Error ? e.message.replace(/^.*listen spec "[^"]*": /, '') : String(e);
    return `${LISTEN_FORMAT}, got ${JSON.stringify(spec)} (${why})`;
  }
}

/** The lower-cased domain name, or undefined when `name` is not one (a SIP URI host). */
export function normalizeDomain(name: string): string | undefined {
  const d = name.trim().toLowerCase();
  const check = parseAor(`x@${d}`);
  return d !== '' && check.ok && check.domain === d ? d : undefined;
}

const listenSpec = z.string().superRefine((s, ctx) => {
  const why = listenSpecProblem(s);
  if (why !== undefined) ctx.addIssue({ code: 'custom', message: why });
});

const domainName = z.string().superRefine((s, ctx) => {
  if (normalizeDomain(s) === undefined) {
    ctx.addIssue({ code: 'custom', message: `not a domain name: ${JSON.stringify(s)}` });
  }
});

const path = z.string().min(1, 'expected a file path');
const count = (min: number): z.ZodNumber =>
  z.number().int('expected a whole number').min(min, `must be at least ${min}`);
const seconds = z.number().positive('expected a number of seconds above 0');
const policyAction = z.enum(['allow', 'block', 'confirm'], 'expected allow, block or confirm');

/** Most worker processes (`workers`): far more than cores only adds switching. */
export const MAX_WORKERS = 64; // and at most 256: a worker's index marks its nonces (one octet)

/** The file's schema: every key optional (the defaults are in `resolveConfig`). */
export const serverConfigSchema = z.strictObject({
  dataDir: path.optional(),
  domains: z.array(domainName).optional(),
  listen: z.array(listenSpec).min(1, 'expected at least one listener').optional(),
  logLevel: z.enum(LOG_LEVELS, `expected one of ${LOG_LEVELS.join(', ')}`).optional(),
  shutdownTimeout: z.number().nonnegative('expected a number of seconds, 0 or more').optional(),
  workers: z
    .union([z.literal('auto'), count(1).max(MAX_WORKERS, `must be at most ${MAX_WORKERS}`)], {
      error: `expected a whole number from 1 to ${MAX_WORKERS}, or auto`,
    })
    .optional(),
  tls: z.strictObject({ cert: path, key: path }).optional(),
  registrar: z
    .strictObject({
      minExpires: count(1).optional(),
      maxExpires: count(1).optional(),
      defaultExpires: count(1).optional(),
      purgeInterval: seconds.optional(),
    })
    .optional(),
  auth: z
    .strictObject({
      algorithms: z
        .array(z.enum(['SHA-256', 'MD5'], 'expected SHA-256 or MD5'))
        .min(1, 'expected at least one algorithm')
        .refine((l) => new Set(l).size === l.length, 'an algorithm is listed twice')
        .optional(),
    })
    .optional(),
  proxy: z
    .strictObject({
      relay: z.boolean().optional(),
      timerC: z
        .number()
        .min(181, 'must be more than 3 minutes (RFC 3261 §16.8), in seconds')
        .optional(),
      recurse: z.boolean().optional(),
      maxBranches: count(1).optional(),
    })
    .optional(),
  messaging: z
    .strictObject({
      lifetime: seconds.optional(),
      quota: count(0).optional(),
      retryInterval: seconds.optional(),
      maxBodyBytes: count(0).optional(),
    })
    .optional(),
  presence: z
    .strictObject({
      minExpires: count(1).optional(),
      maxExpires: count(1).optional(),
      subscribeMinExpires: count(1).optional(),
      subscribeMaxExpires: count(1).optional(),
      subscribeDefaultExpires: count(1).optional(),
      maxSubscriptionsPerWatcher: count(1).optional(),
      maxWatchersPerUser: count(1).optional(),
      sameDomainPolicy: policyAction.optional(),
      defaultPolicy: policyAction.optional(),
      pollInterval: seconds.optional(),
      maxCallDuration: count(1).optional(),
      maxTrackedCalls: count(1).optional(),
    })
    .optional(),
  limits: z
    .strictObject({
      maxServerTransactions: count(1).optional(),
      maxServerTransactionsPerSource: count(0).optional(),
      shedAfter: z.number().min(0, 'expected a number of seconds, 0 or more').optional(),
      maxConnectionsPerIp: count(1).optional(),
      maxHeaderBytes: count(256).optional(),
      maxBodyBytes: count(0).optional(),
    })
    .optional(),
});

/** What the file may say (all optional), as parsed. */
export type ServerConfigFile = z.infer<typeof serverConfigSchema>;

/** The complete configuration `serve` runs with: the file, then the flags, then defaults. */
export interface ServerConfig {
  /** The store's directory (absolute when it came from the file: relative to the file). */
  readonly dataDir: string;
  /** Domains to add to the store at start (lower-cased). */
  readonly domains: readonly string[];
  readonly listen: readonly string[];
  readonly logLevel: LogLevel;
  /** SIGTERM: how long live transactions may take to finish, seconds. */
  readonly shutdownTimeout: number;
  /** Worker processes sharing the listeners (1: the server is one process). */
  readonly workers: number;
  /** Certificate chain and private key files (PEM) for tls: and wss: listeners. */
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
  readonly registrar: {
    /** RFC 3261 §10.3 step 7: shorter non-zero expiries get 423 with Min-Expires. */
    readonly minExpires: number;
    /** Longer expiries are shortened to this. */
    readonly maxExpires: number;
    /** When neither the contact's expires parameter nor Expires says. */
    readonly defaultExpires: number;
    /** Seconds between deletions of expired bindings from the store. */
    readonly purgeInterval: number;
  };
  readonly auth: {
    /** Digest algorithms offered in challenges, one challenge each, in order (RFC 8760 §2.3). */
    readonly algorithms: readonly ('SHA-256' | 'MD5')[];
  };
  readonly proxy: {
    /** Forward requests for domains not served here, for authenticated local users. */
    readonly relay: boolean;
    /** RFC 3261 §16.8 Timer C, seconds. */
    readonly timerC: number;
    /** Try the Contacts of 3xx responses (§16.7 step 4). */
    readonly recurse: boolean;
    /** Most forks and 3xx targets of one request. */
    readonly maxBranches: number;
  };
  /** Instant messages (RFC 3428) between local users, and keeping them for offline users. */
  readonly messaging: {
    /** Seconds a kept message waits for its user before it is deleted. */
    readonly lifetime: number;
    /** Most messages kept per user (0: none kept; the sender gets the failure). */
    readonly quota: number;
    /** Seconds between delivery attempts of kept messages (besides each REGISTER). */
    readonly retryInterval: number;
    /** Largest MESSAGE body to a local user, octets (larger: 413). */
    readonly maxBodyBytes: number;
  };
  /** Presence: state published by local users (RFC 3903) and watched (RFC 6665, RFC 3856). */
  readonly presence: {
    /** RFC 3903 §6 step 5: shorter non-zero expiries get 423 with Min-Expires, seconds. */
    readonly minExpires: number;
    /** Longer expiries are shortened to this, seconds. */
    readonly maxExpires: number;
    /** RFC 6665 §4.2.1.1: a SUBSCRIBE with a shorter non-zero Expires gets 423, seconds. */
    readonly subscribeMinExpires: number;
    /** A longer SUBSCRIBE Expires is shortened to this, seconds. */
    readonly subscribeMaxExpires: number;
    /** A SUBSCRIBE without Expires gets this (RFC 3856 §6.4: an hour), seconds. */
    readonly subscribeDefaultExpires: number;
    /** Most live subscriptions one watcher holds. */
    readonly maxSubscriptionsPerWatcher: number;
    /** Most live watchers of one user's presence. */
    readonly maxWatchersPerUser: number;
    /** Watchers in the user's own domain without a rule of the user. */
    readonly sameDomainPolicy: 'allow' | 'block' | 'confirm';
    /** Every other watcher without a rule. */
    readonly defaultPolicy: 'allow' | 'block' | 'confirm';
    /** Seconds between looks for changes made by other workers or commands. */
    readonly pollInterval: number;
    /**
     * Seconds after which a confirmed call whose BYE was not seen is shown ended to `dialog`
     * watchers (calls with session timers end at their interval instead, RFC 4028).
     */
    readonly maxCallDuration: number;
    /** Most calls one worker tracks for the dialog package at once. */
    readonly maxTrackedCalls: number;
  };
  readonly limits: {
    /** Live server transactions before new requests get 503 (Stack option). */
    readonly maxServerTransactions: number;
    /** Of those, most for requests from one IP address (0: no limit but the total). */
    readonly maxServerTransactionsPerSource: number;
    /**
     * Seconds a UDP socket's reads may stay behind before new requests without credentials
     * read from it are dropped until it catches up (0: never).
     */
    readonly shedAfter: number;
    /** Inbound TCP/TLS/WS/WSS connections from one IP address. */
    readonly maxConnectionsPerIp: number;
    /** A message's start line and header fields, octets (a larger message is dropped). */
    readonly maxHeaderBytes: number;
    /** A message's body (Content-Length), octets (larger: 513). */
    readonly maxBodyBytes: number;
  };
}

/** `auto`: one worker per CPU the process may use. */
function resolveWorkers(w: number | 'auto'): number {
  return w === 'auto' ? Math.max(1, Math.min(MAX_WORKERS, availableParallelism())) : w;
}

/** The defaults of every key; docs/configuration.md lists the same values. */
export const CONFIG_DEFAULTS: ServerConfig = Object.freeze({
  dataDir: DEFAULT_DATA_DIR,
  domains: Object.freeze([]) as readonly string[],
  listen: DEFAULT_LISTEN,
  logLevel: 'info',
  shutdownTimeout: 5,
  workers: 1,
  tls: undefined,
  registrar: Object.freeze({
    minExpires: 60,
    maxExpires: 3600,
    defaultExpires: 3600,
    purgeInterval: 60,
  }),
  auth: Object.freeze({
    algorithms: Object.freeze(['SHA-256', 'MD5']) as readonly ('SHA-256' | 'MD5')[],
  }),
  proxy: Object.freeze({ relay: false, timerC: 181, recurse: true, maxBranches: 16 }),
  messaging: Object.freeze({
    lifetime: 604_800,
    quota: 100,
    retryInterval: 30,
    maxBodyBytes: 16_384,
  }),
  presence: Object.freeze({
    minExpires: 60,
    maxExpires: 3600,
    subscribeMinExpires: 60,
    subscribeMaxExpires: 3600,
    subscribeDefaultExpires: 3600,
    maxSubscriptionsPerWatcher: 100,
    maxWatchersPerUser: 100,
    sameDomainPolicy: 'allow',
    defaultPolicy: 'confirm',
    pollInterval: 0.1,
    maxCallDuration: 14_400,
    maxTrackedCalls: 10_000,
  }),
  limits: Object.freeze({
    maxServerTransactions: STACK_MAX_SERVER_TRANSACTIONS,
    maxServerTransactionsPerSource: 0,
    shedAfter: 0.1,
    // The transport layer's own default (TransportLayerOptions.maxConnectionsPerIp).
    maxConnectionsPerIp: 100,
    maxHeaderBytes: defaultLimits.maxHeaderBytes,
    maxBodyBytes: defaultLimits.maxBodyBytes,
  }),
} as const);

/** What the command line says; each flag, when given, replaces the file's value. */
export interface ConfigOverrides {
  readonly dataDir?: string;
  readonly domains?: readonly string[];
  readonly listen?: readonly string[];
  readonly logLevel?: string;
  /** `--workers N|auto`, checked like the file's key. */
  readonly workers?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
}

/** Every key path of the schema, dotted (`registrar.minExpires`), in schema order. */
export function configKeys(): string[] {
  const out: string[] = [];
  const walk = (shape: Record<string, z.ZodType>, prefix: string): void => {
    for (const [k, v] of Object.entries(shape)) {
      const inner = unwrap(v);
      out.push(prefix + k);
      if (inner instanceof z.ZodObject)
        walk(inner.shape as Record<string, z.ZodType>, `${prefix}${k}.`);
    }
  };
  walk(serverConfigSchema.shape, '');
  return out;
}

function unwrap(t: z.ZodType): z.ZodType {
  return t instanceof z.ZodOptional ? unwrap(t.unwrap() as z.ZodType) : t;
}

/** The keys an object at `path` may have (for "unknown key" messages). */
function keysAt(path: readonly PropertyKey[]): string[] {
  let t: z.ZodType = serverConfigSchema;
  for (const p of path) {
    const inner = unwrap(t);
    if (!(inner instanceof z.ZodObject)) return [];
    const next = (inner.shape as Record<string, z.ZodType>)[String(p)];
    if (next === undefined) return [];
    t = next;
  }
  const inner = unwrap(t);
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}

/** `listen[1]`, `registrar.minExpires` */
export function formatKey(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else s += s === '' ? String(p) : `.${String(p)}`;
  }
  return s;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null (an empty value)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p as string];
  }
  return v;
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  object: 'a mapping of keys',
  array: 'a list',
  boolean: 'true or false',
  int: 'a whole number',
};

/** The first problem zod found, as one ConfigError (unknown keys first: the likeliest typo). */
function toConfigError(error: z.ZodError, input: unknown): ConfigError {
  const issues = [...error.issues].sort(
    (a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'),
  );
  const issue = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  if (issue.code === 'unrecognized_keys') {
    const key = formatKey([...issue.path, issue.keys[0]!]);
    const known = keysAt(issue.path);
    return new ConfigError(key, `unknown key (expected one of ${known.join(', ')})${more}`);
  }
  if (issue.code === 'invalid_type') {
    const got = valueAt(input, issue.path);
    const expected = TYPE_NAMES[issue.expected] ?? issue.expected;
    return new ConfigError(
      formatKey(issue.path),
      got === undefined
        ? `missing (expected ${expected})${more}`
        : `expected ${expected}, got ${describeValue(got)}${more}`,
    );
  }
  // Every other check carries the message written in the schema.
  return new ConfigError(formatKey(issue.path), issue.message + more);
}

/** Validates parsed YAML against the schema; throws ConfigError. */
export function parseConfig(input: unknown): ServerConfigFile {
  // An empty file is a file that sets nothing.
  const r = serverConfigSchema.safeParse(input ?? {});
  if (!r.success) throw toConfigError(r.error, input);
  return r.data;
}

/**
 * Reads and validates a YAML config file; throws ConfigError. Paths in it (`dataDir`,
 * `tls.cert`, `tls.key`) are made absolute relative to the file's directory, so that
 * the file means the same whatever the working directory.
 */
export async function loadConfigFile(file: string): Promise<ServerConfigFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError('', `cannot read ${file}: ${readErrorReason(e)}`);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const bad = doc.errors[0];
  if (bad !== undefined) {
    const at = bad.linePos?.[0];
    const where = at === undefined ? '' : ` line ${at.line}, column ${at.col}`;
    // The first line of the message, without the position and the source excerpt.
    const why = bad.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError('', `${file}${where}: ${why}`);
  }
  const parsed = parseConfig(doc.toJS());
  const base = dirname(resolve(file));
  return {
    ...parsed,
    ...(parsed.dataDir !== undefined ? { dataDir: resolve(base, parsed.dataDir) } : {}),
    ...(parsed.tls !== undefined
      ? { tls: { cert: resolve(base, parsed.tls.cert), key: resolve(base, parsed.tls.key) } }
      : {}),
  };
}

/**
 * The complete configuration: `file` (or nothing), then `flags` over it, then the
 * defaults; checks what involves several keys. Throws ConfigError (flags are named as
 * flags: `--listen`).
 */
export function resolveConfig(file: ServerConfigFile, flags: ConfigOverrides = {}): ServerConfig {
  for (const spec of flags.listen ?? []) {
    const why = listenSpecProblem(spec);
    if (why !== undefined) throw new ConfigError('--listen', why);
  }
  for (const d of flags.domains ?? []) {
    if (normalizeDomain(d) === undefined) {
      throw new ConfigError('--domain', `not a domain name: ${JSON.stringify(d)}`);
    }
  }
  let flagWorkers: number | 'auto' | undefined;
  if (flags.workers !== undefined) {
    flagWorkers = flags.workers === 'auto' ? 'auto' : Number(flags.workers);
    if (
      flagWorkers !== 'auto' &&
      (!/^[0-9]+$/.test(flags.workers) || flagWorkers < 1 || flagWorkers > MAX_WORKERS)
    ) {
      throw new ConfigError(
        '--workers',
        `expected a whole number from 1 to ${MAX_WORKERS}, or auto`,
      );
    }
  }
  if (flags.logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(flags.logLevel)) {
    throw new ConfigError('--log-level', `expected one of ${LOG_LEVELS.join(', ')}`);
  }
  const certFile = flags.tlsCert ?? file.tls?.cert;
  const keyFile = flags.tlsKey ?? file.tls?.key;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(
      certFile === undefined ? '--tls-cert' : '--tls-key',
      'a TLS certificate needs its key and the key its certificate (--tls-cert and --tls-key)',
    );
  }
  const D = CONFIG_DEFAULTS;
  const registrar = { ...D.registrar, ...file.registrar };
  const presence = { ...D.presence, ...file.presence };
  if (file.presence?.subscribeDefaultExpires === undefined) {
    // Unset: an hour (RFC 3856 §6.4) within whatever bounds the file set.
    presence.subscribeDefaultExpires = Math.max(
      presence.subscribeMinExpires,
      Math.min(D.presence.subscribeDefaultExpires, presence.subscribeMaxExpires),
    );
  }
  const config: ServerConfig = {
    dataDir: flags.dataDir ?? file.dataDir ?? D.dataDir,
    domains: (flags.domains ?? file.domains ?? D.domains).map((d) => normalizeDomain(d)!),
    listen: flags.listen ?? file.listen ?? D.listen,
    logLevel: (flags.logLevel as LogLevel | undefined) ?? file.logLevel ?? D.logLevel,
    shutdownTimeout: file.shutdownTimeout ?? D.shutdownTimeout,
    workers: resolveWorkers(flagWorkers ?? file.workers ?? D.workers),
    tls:
      certFile !== undefined && keyFile !== undefined
        ? { cert: certFile, key: keyFile }
        : undefined,
    registrar,
    auth: { ...D.auth, ...file.auth },
    proxy: { ...D.proxy, ...file.proxy },
    messaging: { ...D.messaging, ...file.messaging },
    presence,
    limits: { ...D.limits, ...file.limits },
  };
  // RFC 3261 §10.3 step 7: the registrar shortens to maxExpires and refuses below minExpires
  // (423), so the three must be ordered or every REGISTER without an expiry would get 423.
  if (registrar.minExpires > registrar.maxExpires) {
    throw new ConfigError(
      'registrar.minExpires',
      `${registrar.minExpires} is above registrar.maxExpires (${registrar.maxExpires})`,
    );
  }
  if (
    registrar.defaultExpires < registrar.minExpires ||
    registrar.defaultExpires > registrar.maxExpires
  ) {
    throw new ConfigError(
      'registrar.defaultExpires',
      `${registrar.defaultExpires} is outside registrar.minExpires..maxExpires (${registrar.minExpires}..${registrar.maxExpires})`,
    );
  }
  // RFC 3903 §6 step 5 likewise: a PUBLISH without Expires asks for the shorter of an hour
  // and maxExpires, which must not be below minExpires.
  if (presence.minExpires > presence.maxExpires) {
    throw new ConfigError(
      'presence.minExpires',
      `${presence.minExpires} is above presence.maxExpires (${presence.maxExpires})`,
    );
  }
  if (presence.subscribeMinExpires > presence.subscribeMaxExpires) {
    throw new ConfigError(
      'presence.subscribeMinExpires',
      `${presence.subscribeMinExpires} is above presence.subscribeMaxExpires (${presence.subscribeMaxExpires})`,
    );
  }
  if (
    presence.subscribeDefaultExpires < presence.subscribeMinExpires ||
    presence.subscribeDefaultExpires > presence.subscribeMaxExpires
  ) {
    throw new ConfigError(
      'presence.subscribeDefaultExpires',
      `${presence.subscribeDefaultExpires} is outside presence.subscribeMinExpires..subscribeMaxExpires (${presence.subscribeMinExpires}..${presence.subscribeMaxExpires})`,
    );
  }
  // tls: and wss: listeners serve a certificate (RFC 3261 §26.3.1; RFC 7118 §5).
  if (config.tls === undefined) {
    const i = config.listen.findIndex((l) => /^(tls|wss):/i.test(l));
    if (i >= 0) {
      const key = flags.listen !== undefined ? '--listen' : `listen[${i}]`;
      throw new ConfigError(
        key,
        `${config.listen[i]} needs a certificate: set tls.cert and tls.key in the config file, or --tls-cert FILE --tls-key FILE`,
      );
    }
  }
  return config;
}

/** Reads `file` (when given), applies `flags` and the defaults; throws ConfigError. */
export async function loadConfig(
  file: string | undefined,
  flags: ConfigOverrides = {},
): Promise<ServerConfig> {
  const fromFile = file === undefined ? {} : await loadConfigFile(file);
  return resolveConfig(fromFile, flags);
}
