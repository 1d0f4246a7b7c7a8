/**
 * The embedded store: users, domains, location bindings, kept messages, published event
 * state, subscriptions and watcher rules in one SQLite database, `DATADIR/switchboard.db` (better-sqlite3, WAL
 * journal so a running server and the `switchboard user ...` commands can share it).
 * Durable across a crash of the process (synchronous = NORMAL, see `openSqliteStore`),
 * not across a power loss.
 *
 * The schema is versioned: `schema_version` holds the applied version and
 * `MIGRATIONS[i]` takes the database from version i to i + 1, each in a transaction.
 * Passwords never reach this file: callers pass H(A1) values.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import {
  splitAor,
  type AddUserResult,
  type Binding,
  type BindingUpdate,
  type BindingUpdateResult,
  type DomainStore,
  type EnqueueResult,
  type ImportUsersResult,
  type LocationStore,
  type MessageStore,
  type NewMessage,
  type CreateSubscriptionResult,
  type DialogStateStore,
  type DialogStateValue,
  type PresenceKey,
  type PresenceRule,
  type PresenceRuleAction,
  type PresenceRuleStore,
  type PresenceStore,
  type StoredDialogState,
  type StoredSubscription,
  type SubscriptionChange,
  type SubscriptionDialogId,
  type SubscriptionLimits,
  type SubscriptionStatus,
  type SubscriptionStore,
  type Publication,
  type RemoveDomainResult,
  type StoredMessage,
  type Store,
  type UserCredentials,
  type UserImportRow,
  type UserRecord,
  type UserStore,
} from '../index.ts';

/** The database file's name inside the data dir. */
export const DATABASE_FILE = 'switchboard.db';

/** Schema migrations, in order; never edit a shipped one, append a new one. */
const MIGRATIONS: readonly string[] = Object.freeze([
  `CREATE TABLE domains (name TEXT PRIMARY KEY) WITHOUT ROWID;
   CREATE TABLE users (
     aor TEXT PRIMARY KEY,
     user TEXT NOT NULL,
     domain TEXT NOT NULL REFERENCES domains(name),
     ha1_md5 TEXT NOT NULL,
     ha1_sha256 TEXT NOT NULL
   ) WITHOUT ROWID;
   CREATE INDEX users_domain ON users(domain, aor);
   CREATE TABLE bindings (
     aor TEXT NOT NULL,
     contact TEXT NOT NULL,
     expires_at INTEGER NOT NULL,
     q REAL NOT NULL,
     call_id TEXT NOT NULL,
     cseq INTEGER NOT NULL,
     path TEXT NOT NULL,
     instance TEXT,
     reg_id INTEGER,
     received TEXT,
     user_agent TEXT,
     PRIMARY KEY (aor, contact)
   ) WITHOUT ROWID;
   CREATE INDEX bindings_expires ON bindings(expires_at);`,
  // 2: a counter that every change to users or domains bumps, by triggers (so that any
  // writer bumps it, in the same transaction): the caches of `userStore` and
  // `domainStore` compare it to tell whether another process changed them.
  `CREATE TABLE accounts_version (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
   INSERT INTO accounts_version (id, n) VALUES (1, 0);
   CREATE TRIGGER users_inserted AFTER INSERT ON users
     BEGIN UPDATE accounts_version SET n = n + 1; END;
   CREATE TRIGGER users_updated AFTER UPDATE ON users
     BEGIN UPDATE accounts_version SET n = n + 1; END;
   CREATE TRIGGER users_deleted AFTER DELETE ON users
     BEGIN UPDATE accounts_version SET n = n + 1; END;
   CREATE TRIGGER domains_inserted AFTER INSERT ON domains
     BEGIN UPDATE accounts_version SET n = n + 1; END;
   CREATE TRIGGER domains_updated AFTER UPDATE ON domains
     BEGIN UPDATE accounts_version SET n = n + 1; END;
   CREATE TRIGGER domains_deleted AFTER DELETE ON domains
     BEGIN UPDATE accounts_version SET n = n + 1; END;`,
  // 3: no index on bindings.expires_at. Every refresh moves its binding in that index,
  // which writes one or two more pages to the WAL per REGISTER and doubled the commit's
  // cost; without it `purgeExpired` scans the table instead (about 8 ms per 100 000
  // bindings, once per purge interval), and lookups go by the (aor, contact) key anyway.
  `DROP INDEX bindings_expires;`,
  // 4: instant messages kept for users who could not take them (messages.ts). `lease_until`
  // is when the running delivery's claim ends (0: none).
  `CREATE TABLE messages (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     aor TEXT NOT NULL,
     sender TEXT NOT NULL,
     recipient TEXT NOT NULL,
     content_type TEXT NOT NULL,
     body BLOB NOT NULL,
     received_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     lease_until INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX messages_aor ON messages(aor, id);`,
  // 5: event state published with PUBLISH (presence.ts, RFC 3903), one row per entity-tag,
  // and a change counter per (resource, event) pair for notifiers in any process.
  `CREATE TABLE publications (
     aor TEXT NOT NULL,
     event TEXT NOT NULL,
     etag TEXT NOT NULL,
     content_type TEXT NOT NULL,
     body BLOB NOT NULL,
     published_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     PRIMARY KEY (aor, event, etag)
   ) WITHOUT ROWID;
   CREATE TABLE publication_versions (
     aor TEXT NOT NULL,
     event TEXT NOT NULL,
     n INTEGER NOT NULL,
     PRIMARY KEY (aor, event)
   ) WITHOUT ROWID;`,
  // 6: subscriptions the server notifies (subscriptions.ts, RFC 6665: one dialog each) and
  // users' rules for their watchers (RFC 3856 §5.1). A user removed bumps the user's presence
  // counter, so that the workers notifying its watchers look again (RFC 6665 §4.1.3
  // noresource). `subscriptions_watcher` counts a watcher's subscriptions for the limit.
  `CREATE TABLE subscriptions (
     call_id TEXT NOT NULL,
     local_tag TEXT NOT NULL,
     remote_tag TEXT NOT NULL,
     aor TEXT NOT NULL,
     event TEXT NOT NULL,
     watcher TEXT NOT NULL,
     watcher_name TEXT,
     local_uri TEXT NOT NULL,
     remote_uri TEXT NOT NULL,
     remote_target TEXT NOT NULL,
     route_set TEXT NOT NULL,
     flow TEXT,
     content_type TEXT NOT NULL,
     status TEXT NOT NULL,
     reason TEXT,
     local_seq INTEGER NOT NULL,
     remote_seq INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     notified_version INTEGER NOT NULL,
     notified_hash TEXT NOT NULL,
     notify_count INTEGER NOT NULL,
     recheck_at INTEGER NOT NULL,
     PRIMARY KEY (call_id, local_tag, remote_tag)
   ) WITHOUT ROWID;
   CREATE INDEX subscriptions_aor ON subscriptions(aor, event);
   CREATE INDEX subscriptions_watcher ON subscriptions(watcher);
   CREATE TABLE presence_rules (
     aor TEXT NOT NULL,
     watcher TEXT NOT NULL,
     action TEXT NOT NULL,
     PRIMARY KEY (aor, watcher)
   ) WITHOUT ROWID;
   CREATE TRIGGER users_deleted_presence AFTER DELETE ON users
     BEGIN
       INSERT INTO publication_versions (aor, event, n) VALUES (old.aor, 'presence', 1)
         ON CONFLICT (aor, event) DO UPDATE SET n = n + 1;
     END;`,
  // 7: what a notifier's poll reads is indexed, so that it costs per change, not per
  // subscription: every bump of a counter also stamps the pair with the next value of one
  // sequence over all pairs (`seq`, by triggers: whoever bumps, in the same transaction), and
  // a poll asks for the pairs stamped after the last one it saw; expiries and rechecks are
  // found through their own indexes.
  `ALTER TABLE publication_versions ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
   CREATE INDEX publication_versions_seq ON publication_versions(seq);
   CREATE TRIGGER publication_versions_inserted AFTER INSERT ON publication_versions
     BEGIN
       UPDATE publication_versions
         SET seq = (SELECT coalesce(max(seq), 0) + 1 FROM publication_versions)
         WHERE aor = new.aor AND event = new.event;
     END;
   CREATE TRIGGER publication_versions_bumped AFTER UPDATE OF n ON publication_versions
     BEGIN
       UPDATE publication_versions
         SET seq = (SELECT coalesce(max(seq), 0) + 1 FROM publication_versions)
         WHERE aor = new.aor AND event = new.event;
     END;
   CREATE INDEX subscriptions_expires ON subscriptions(expires_at);
   CREATE INDEX subscriptions_recheck ON subscriptions(recheck_at);`,
  // 8: the Event header's id parameter of a subscription (RFC 6665 §8.2.1), which its
  // NOTIFYs repeat.
  `ALTER TABLE subscriptions ADD COLUMN event_id TEXT;`,
  // 9: the state of local users' INVITE dialogs as the proxy saw them (dialogs.ts, RFC 4235
  // dialog event package), one row per (user, dialog), read by the notifiers of any worker.
  `CREATE TABLE dialog_states (
     aor TEXT NOT NULL,
     id TEXT NOT NULL,
     call_id TEXT NOT NULL,
     local_tag TEXT,
     remote_tag TEXT,
     direction TEXT NOT NULL,
     state TEXT NOT NULL,
     event TEXT,
     code INTEGER,
     local_identity TEXT NOT NULL,
     local_display TEXT,
     remote_identity TEXT NOT NULL,
     remote_display TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     PRIMARY KEY (aor, id)
   ) WITHOUT ROWID;
   CREATE INDEX dialog_states_expires ON dialog_states(expires_at);`,
  // 10: counters that move whenever a user's count of kept messages or of live subscriptions
  // can go up (a row inserted, a terminated subscription made live again; a delete or an
  // expiry only lowers a count). A server remembers which users it counted none for, and
  // forgets that when another process moves a counter (`StoreCache`): most REGISTERs and call
  // state changes then ask no question of the database for users nobody watches or writes to.
  `CREATE TABLE change_counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
   INSERT INTO change_counters (name, n) VALUES ('messages', 0), ('subscriptions', 0);
   CREATE TRIGGER messages_counted AFTER INSERT ON messages
     BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'messages'; END;
   CREATE TRIGGER subscriptions_counted AFTER INSERT ON subscriptions
     BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'subscriptions'; END;
   CREATE TRIGGER subscriptions_revived AFTER UPDATE OF status ON subscriptions
     WHEN old.status = 'terminated' AND new.status != 'terminated'
     BEGIN UPDATE change_counters SET n = n + 1 WHERE name = 'subscriptions'; END;`,
]);

/** The current schema version (the number of migrations). */
export const SCHEMA_VERSION = MIGRATIONS.length;

export interface SqliteStore extends Store {
  /** The database file's path. */
  readonly file: string;
}

interface MessageRow {
  id: number;
  aor: string;
  sender: string;
  recipient: string;
  content_type: string;
  body: Buffer;
  received_at: number;
  expires_at: number;
}

interface PublicationRow {
  aor: string;
  event: string;
  etag: string;
  content_type: string;
  body: Buffer;
  published_at: number;
  expires_at: number;
}

interface UserRow {
  aor: string;
  user: string;
  domain: string;
  ha1_md5: string;
  ha1_sha256: string;
}

/**
 * A row of `bindings` as the array `BINDING_COLUMNS` reads (statements in raw mode, which
 * better-sqlite3 hands over as one array). An object per row, a property per column, was 70
 * of about 3,500 samples in a registrar's profile, against 370 for the statements in all.
 */
type BindingRow = [
  aor: string,
  contact: string,
  expiresAt: number,
  q: number,
  callId: string,
  cseq: number,
  path: string,
  instance: string | null,
  regId: number | null,
  received: string | null,
  userAgent: string | null,
];

/** The columns of a `BindingRow`, in its order. */
const BINDING_COLUMNS =
  'aor, contact, expires_at, q, call_id, cseq, path, instance, reg_id, received, user_agent';

export interface SqliteStoreOptions {
  /**
   * When another process holds the write lock (a server's other workers, a `switchboard user`
   * command), wait for it without blocking the event loop: the connection gets busy_timeout 0
   * and an operation that finds the database busy is tried again on later turns of the event
   * loop, for up to `busyTimeoutMs`. Without it (commands), SQLite's own busy handler waits,
   * sleeping the whole thread 1 ms, 2 ms, 5 ms ... at a time: in a server that is every
   * message of every call stalled behind one registration.
   */
  readonly nonBlocking?: boolean;
  /** How long an operation waits for a lock held by another process (default 5000 ms). */
  readonly busyTimeoutMs?: number;
  /**
   * Cached users and domains, users remembered as having no kept messages or no live
   * subscriptions (`StoreCache`), and remembered bindings: look for other connections' changes
   * at most this often (default 0: before every read). A server reads them several times per
   * request; 1 ms saves most of those looks and still sees another process's change within a
   * millisecond of its commit. A lookup that finds no live binding looks at once.
   */
  readonly changeCheckIntervalMs?: number;
  /**
   * With `nonBlocking`: binding and subscription updates made within this many ms are
   * committed together (default 0: those of one turn of the event loop, on the next). Several
   * processes writing one database pay for each other's commits: every commit by one makes the
   * others' next transaction drop its whole page cache and read the pages again. Fewer, larger
   * commits cost less; each update's answer waits up to this long for its commit.
   */
  readonly commitWindowMs?: number;
}

/** Opens (creating when missing) the store in `dataDir` and brings its schema up to date. */
export function openSqliteStore(dataDir: string, options: SqliteStoreOptions = {}): SqliteStore {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, DATABASE_FILE);
  const db = new Database(file);
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    // The schema is brought up to date with SQLite's blocking wait: nothing runs yet.
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // In WAL mode NORMAL syncs the WAL only at checkpoints, not at every commit: a
    // committed write survives the process being killed (SIGKILL, a crash), since it is
    // in the OS's page cache, and may be lost only if the machine itself loses power or
    // panics before the next checkpoint (https://sqlite.org/pragma.html#pragma_synchronous).
    // Bindings are refreshed by their UAs (RFC 3261 §10.2.4) and users are re-added by
    // an operator, so that window is an acceptable price for not fsyncing every REGISTER.
    // Set explicitly: better-sqlite3 builds happen to default WAL connections to NORMAL,
    // SQLite itself to FULL.
    db.pragma('synchronous = NORMAL');
    migrate(db);
    if (options.nonBlocking === true) db.pragma('busy_timeout = 0');
  } catch (e) {
    db.close();
    throw e;
  }
  const cache = storeCache(db, options.changeCheckIntervalMs ?? 0);
  const window = options.commitWindowMs ?? 0;
  const wrap = <T extends object>(o: T): T =>
    options.nonBlocking === true ? retryingWhenBusy(o, busyTimeoutMs) : o;
  return {
    file,
    users: wrap(userStore(db, cache)),
    domains: wrap(domainStore(db, cache)),
    location: wrap(locationStore(db, options.nonBlocking === true, window, cache)),
    messages: wrap(messageStore(db, cache)),
    presence: wrap(presenceStore(db)),
    subscriptions: wrap(subscriptionStore(db, options.nonBlocking === true, cache, window)),
    presenceRules: wrap(presenceRuleStore(db)),
    dialogs: wrap(dialogStateStore(db)),
    close: async () => {
      if (db.open) db.close();
    },
  };
}

/**
 * Calls of `body` made in one turn of the event loop (or within `windowMs` of the first), run
 * together in one IMMEDIATE transaction on the next turn (or when the window closes): one
 * commit (WAL append, locks) for the lot, each call resolved
 * once it is committed. When the batch throws, it is rolled back as a whole and each call is
 * run again in a transaction of its own, so that only the one at fault fails (a savepoint per
 * call would cost two statements each on every batch, for what almost never happens). A busy database
 * rejects the batch with SQLITE_BUSY, which `retryingWhenBusy` retries call by call.
 */
function groupCommit<A extends unknown[], R>(
  db: Database.Database,
  body: (...args: A) => R,
  windowMs = 0,
): (...args: A) => Promise<R> {
  interface Call {
    readonly args: A;
    readonly resolve: (r: R) => void;
    readonly reject: (e: unknown) => void;
  }
  const one = db.transaction(body);
  const all = db.transaction((calls: readonly Call[]): R[] => calls.map((c) => body(...c.args)));
  let queue: Call[] = [];
  const flush = (): void => {
    const batch = queue;
    queue = [];
    let results: R[];
    try {
      results = all.immediate(batch);
    } catch (e) {
      for (const c of batch) {
        if (isBusy(e)) c.reject(e);
        else {
          try {
            c.resolve(one.immediate(...c.args));
          } catch (error) {
            c.reject(error);
          }
        }
      }
      return;
    }
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]!);
  };
  return (...args) =>
    new Promise<R>((resolve, reject) => {
      if (queue.length === 0) {
        if (windowMs > 0) setTimeout(flush, windowMs);
        else setImmediate(flush);
      }
      queue.push({ args, resolve, reject });
    });
}

/** SQLITE_BUSY and its extended codes (better-sqlite3's SqliteError.code). */
function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * `o` with each method tried again while it fails with SQLITE_BUSY: on the next turns of the
 * event loop at first, then every few ms, for up to `timeoutMs`. Safe because a busy error
 * comes before the operation changed anything: a write transaction starts with BEGIN
 * IMMEDIATE (busy there, or never), and in WAL mode readers do not wait for writers.
 */
function retryingWhenBusy<T extends object>(o: T, timeoutMs: number): T {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(o)) {
    if (typeof value !== 'function') {
      out[name] = value;
      continue;
    }
    const method = value as (...args: unknown[]) => unknown;
    const retry = async (args: unknown[], first: unknown): Promise<unknown> => {
      if (!isBusy(first) || timeoutMs <= 0) throw first;
      // The clock is read only once the database was found busy, not on every call.
      const deadline = Date.now() + timeoutMs;
      for (let attempt = 1; ; attempt++) {
        // The holder's transaction lasts tens of µs: the next turn usually finds it free.
        if (attempt < 8) await nextTurn();
        else await sleep(Math.min(attempt - 7, 10));
        try {
          return await method.apply(o, args);
        } catch (e) {
          if (!isBusy(e) || Date.now() >= deadline) throw e;
        }
      }
    };
    // The first try is the method's own promise with one handler attached: every store call
    // of a request passes here, and an async wrapper would add a promise and a turn to each.
    // A synchronous method's answer (`unwatched`) is passed on as it is: it handles busy itself.
    out[name] = (...args: unknown[]): unknown => {
      let first: unknown;
      try {
        first = method.apply(o, args);
      } catch (e) {
        return retry(args, e);
      }
      return first instanceof Promise
        ? first.then(undefined, (e: unknown) => retry(args, e))
        : first;
    };
  }
  return out as T;
}

function migrate(db: Database.Database): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
  const row = db.prepare('SELECT version FROM schema_version').get() as
    { version: number } | undefined;
  const current = row?.version ?? 0;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `${db.name}: schema version ${current} is newer than this Switchboard (${MIGRATIONS.length})`,
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.prepare('DELETE FROM schema_version').run();
      db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(v + 1);
    })();
  }
}

function toUser(r: UserRow): UserRecord {
  return { aor: r.aor, user: r.user, domain: r.domain, ha1Md5: r.ha1_md5, ha1Sha256: r.ha1_sha256 };
}

/** Most users remembered; beyond it the cache starts again (unknown AORs are cached too). */
const MAX_CACHED_USERS = 65_536;
/** Most users remembered as having no kept messages, and as having no live subscriptions. */
const MAX_CACHED_NONE = 65_536;
/** Most AORs whose bindings are remembered; beyond it the cache starts again. */
const MAX_CACHED_LOCATIONS = 65_536;

/**
 * What this connection last read of things that change rarely but are read on every
 * REGISTER or call: users and domains, and which users have no kept messages or no live
 * subscriptions (of an event, or of any). Another process (the `switchboard user` and
 * `domain` commands, other server workers) may change them at any time, so every read
 * first asks whether anything changed since the cache was filled:
 *
 * - `PRAGMA data_version` changes when another connection has committed anything
 *   (https://sqlite.org/pragma.html#pragma_data_version); unchanged, the cache holds;
 * - changed, `accounts_version` (bumped by triggers on users and domains, migration 2) and
 *   `change_counters` (messages and subscriptions that may raise a count, migration 10) say
 *   what it was: often only bindings (other workers registering), and then all stands;
 * - this connection's own changes clear what they touch directly.
 *
 * Only "none" is remembered of the counts: a count that is 0 stays 0 until a row is inserted
 * (or a subscription revived), which moves a counter, whereas expiry and deletion only lower
 * it. The counters are read after data_version, so a commit between the two reads is seen at
 * the latest at the next read. There is no timer: a change is seen by the first read after
 * its commit (or, with `checkIntervalMs`, at most that much later).
 */
interface StoreCache {
  /**
   * Makes the cache current; call before every cached read. `force` looks at SQLite even
   * within `checkIntervalMs` of the last look.
   */
  validate(force?: boolean): void;
  /** Moves whenever a look finds that another connection committed something. */
  readonly generation: number;
  /** Forgets users and domains (after this connection changed them). */
  clearAccounts(): void;
  readonly users: Map<string, UserRecord | null>;
  domains: Set<string> | undefined;
  /** AORs that had no live kept message when last counted, with the time counted at. */
  readonly noMessages: Map<string, number>;
  /**
   * Per event (or `*`: any event), the AORs that had no live subscription when last counted.
   * Keyed in two steps, so that a look-up joins no strings (the tracker asks on every state
   * change of every call, RFC 4235).
   */
  readonly noSubscriptions: Map<string, Set<string>>;
}

/** Remembers `key` in `map`, forgetting everything first when the map is full. */
function remember(map: Map<string, number>, key: string, value: number): void {
  if (map.size >= MAX_CACHED_NONE) map.clear();
  map.set(key, value);
}

/** Most events whose subscription-less AORs are remembered (event names come from requests). */
const MAX_CACHED_EVENTS = 64;

/** Remembers that `aor` has no subscription of `event`, within the same bounds. */
function rememberNone(map: Map<string, Set<string>>, event: string, aor: string): void {
  let set = map.get(event);
  if (set === undefined) {
    if (map.size >= MAX_CACHED_EVENTS) map.clear();
    set = new Set();
    map.set(event, set);
  }
  if (set.size >= MAX_CACHED_NONE) set.clear();
  set.add(aor);
}

function storeCache(db: Database.Database, checkIntervalMs: number): StoreCache {
  // Two statements rather than one with pragma_data_version(): the table-valued form costs
  // more than both (16 against 12 us after another connection's commit, measured).
  const dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
  const counters = db.prepare<[], { a: number; m: number; s: number }>(
    `SELECT (SELECT n FROM accounts_version) AS a,
            (SELECT n FROM change_counters WHERE name = 'messages') AS m,
            (SELECT n FROM change_counters WHERE name = 'subscriptions') AS s`,
  );
  let seenDataVersion: number | undefined;
  let seen: { a: number; m: number; s: number } | undefined;
  let checkedAt = -Infinity;
  const cache: StoreCache = {
    users: new Map(),
    domains: undefined,
    noMessages: new Map(),
    noSubscriptions: new Map(),
    generation: 0,
    validate(force = false) {
      // A server looks at most once per `checkIntervalMs`: it reads these several times per
      // request, and sees another process's change that much later.
      const now = checkIntervalMs > 0 ? performance.now() : 0;
      if (!force && checkIntervalMs > 0 && now - checkedAt < checkIntervalMs) return;
      checkedAt = now;
      const dv = dataVersion.get();
      if (dv === seenDataVersion) return;
      seenDataVersion = dv;
      (cache as { generation: number }).generation++;
      const c = counters.get()!;
      if (seen === undefined || c.a !== seen.a) {
        cache.users.clear();
        cache.domains = undefined;
      }
      if (seen === undefined || c.m !== seen.m) cache.noMessages.clear();
      if (seen === undefined || c.s !== seen.s) cache.noSubscriptions.clear();
      seen = c;
    },
    clearAccounts() {
      // This connection's own commit moves no data_version and needs no look: what it
      // changed is simply read again. (Its bump of the counter makes the next look after
      // another process's commit forget users once more, which is harmless.)
      cache.users.clear();
      cache.domains = undefined;
    },
  };
  return cache;
}

function userStore(db: Database.Database, cache: StoreCache): UserStore {
  const hasDomain = db.prepare<[string], { one: number }>(
    'SELECT 1 AS one FROM domains WHERE name = ?',
  );
  const getUser = db.prepare<[string], UserRow>('SELECT * FROM users WHERE aor = ?');
  const insert = db.prepare(
    'INSERT INTO users (aor, user, domain, ha1_md5, ha1_sha256) VALUES (?, ?, ?, ?, ?)',
  );
  const update = db.prepare('UPDATE users SET ha1_md5 = ?, ha1_sha256 = ? WHERE aor = ?');
  const del = db.prepare('DELETE FROM users WHERE aor = ?');
  const listAll = db.prepare<[], UserRow>('SELECT * FROM users ORDER BY aor');
  const listDomain = db.prepare<[string], UserRow>(
    'SELECT * FROM users WHERE domain = ? ORDER BY aor',
  );

  /** Inserts one user after the checks; the caller owns the transaction. */
  const addOne = (aor: string, c: UserCredentials): AddUserResult => {
    const parts = splitAor(aor);
    if (parts === undefined) throw new TypeError(`not a canonical sip: AOR: ${aor}`);
    if (hasDomain.get(parts.domain) === undefined) return 'unknown-domain';
    if (getUser.get(aor) !== undefined) return 'exists';
    insert.run(aor, parts.user, parts.domain, c.ha1Md5, c.ha1Sha256);
    return 'added';
  };

  /** Thrown inside the import transaction to roll it back. */
  class Refused {
    constructor(readonly result: ImportUsersResult) {}
  }
  const importTx = db.transaction((rows: readonly UserImportRow[]): number => {
    const seen = new Set<string>();
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      if (seen.has(row.aor)) throw new Refused({ ok: false, index: i, reason: 'duplicate' });
      seen.add(row.aor);
      const r = addOne(row.aor, row.credentials);
      if (r !== 'added') throw new Refused({ ok: false, index: i, reason: r });
    }
    return rows.length;
  });

  const addTx = db.transaction(addOne);
  /** Runs a change to users, then forgets the cache (also when it threw: it may have been half done). */
  const changing = <T>(f: () => T): T => {
    try {
      return f();
    } finally {
      cache.clearAccounts();
    }
  };
  return {
    // async: a synchronous throw becomes a rejected promise, as the interface promises.
    add: async (aor, c) => changing(() => addTx(aor, c)),
    setPassword: async (aor, c) =>
      changing(() => update.run(c.ha1Md5, c.ha1Sha256, aor).changes > 0),
    remove: async (aor) => changing(() => del.run(aor).changes > 0),
    get: async (aor) => {
      cache.validate();
      const hit = cache.users.get(aor);
      if (hit !== undefined) return hit ?? undefined;
      const r = getUser.get(aor);
      const u = r === undefined ? null : Object.freeze(toUser(r));
      if (cache.users.size >= MAX_CACHED_USERS) cache.users.clear();
      cache.users.set(aor, u);
      return u ?? undefined;
    },
    list: async (domain) =>
      (domain === undefined ? listAll.all() : listDomain.all(domain.toLowerCase())).map(toUser),
    importMany: async (rows) => {
      try {
        return { ok: true, count: changing(() => importTx(rows)) };
      } catch (e) {
        if (e instanceof Refused) return e.result;
        throw e;
      }
    },
  };
}

function domainStore(db: Database.Database, cache: StoreCache): DomainStore {
  const insert = db.prepare('INSERT OR IGNORE INTO domains (name) VALUES (?)');
  const has = db.prepare<[string], { one: number }>('SELECT 1 AS one FROM domains WHERE name = ?');
  const used = db.prepare<[string], { one: number }>(
    'SELECT 1 AS one FROM users WHERE domain = ? LIMIT 1',
  );
  const del = db.prepare('DELETE FROM domains WHERE name = ?');
  const list = db.prepare<[], { name: string }>('SELECT name FROM domains ORDER BY name');
  const removeTx = db.transaction((name: string): RemoveDomainResult => {
    if (has.get(name) === undefined) return 'not-found';
    if (used.get(name) !== undefined) return 'in-use';
    del.run(name);
    return 'removed';
  });
  const changing = <T>(f: () => T): T => {
    try {
      return f();
    } finally {
      cache.clearAccounts();
    }
  };
  const known = (name: string): boolean => {
    cache.validate();
    cache.domains ??= new Set(list.all().map((r) => r.name));
    return cache.domains.has(name.toLowerCase());
  };
  return {
    add: async (name) => changing(() => insert.run(name.toLowerCase()).changes > 0),
    remove: async (name) => changing(() => removeTx(name.toLowerCase())),
    list: async () => list.all().map((r) => r.name),
    has: async (name) => known(name),
    // SQLite answers at once (busy: cannot tell now).
    hasNow: (name) => {
      try {
        return known(name);
      } catch (e) {
        if (isBusy(e)) return undefined;
        throw e;
      }
    },
  };
}

function toBinding(r: BindingRow): Binding {
  const b: { -readonly [K in keyof Binding]: Binding[K] } = {
    aor: r[0],
    contact: r[1],
    expiresAt: r[2],
    q: r[3],
    callId: r[4],
    cseq: r[5],
    path: JSON.parse(r[6]) as string[],
  };
  // Absent stays absent (no key), as the Binding interface has it.
  if (r[7] !== null) b.instance = r[7];
  if (r[8] !== null) b.regId = r[8];
  if (r[9] !== null) b.received = r[9];
  if (r[10] !== null) b.userAgent = r[10];
  return b;
}

/**
 * `grouped` set (a server): `apply` calls made in the same turn of the event loop are
 * committed together (`groupCommit`), each resolving once that transaction has committed: a
 * REGISTER is still answered only after its bindings are stored, but a busy registrar pays
 * one commit (WAL append, locks) per batch instead of one per REGISTER, and holds the write
 * lock that other workers wait for less often. A batch that finds the lock taken is tried
 * again by `retryingWhenBusy`, each update for up to the store's busy timeout.
 */
function locationStore(
  db: Database.Database,
  grouped: boolean,
  windowMs: number,
  cache: StoreCache,
): LocationStore {
  // Positional parameters: binding named ones looks each name up on an object (70 samples
  // against 37 positional, in the profile `BindingRow` cites).
  const upsertStatement = db.prepare(
    `INSERT INTO bindings (${BINDING_COLUMNS})
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (aor, contact) DO UPDATE SET expires_at = excluded.expires_at, q = excluded.q,
       call_id = excluded.call_id, cseq = excluded.cseq, path = excluded.path,
       instance = excluded.instance, reg_id = excluded.reg_id, received = excluded.received,
       user_agent = excluded.user_agent`,
  );
  const upsert = (b: Binding): void => {
    upsertStatement.run(
      b.aor,
      b.contact,
      b.expiresAt,
      b.q,
      b.callId,
      b.cseq,
      JSON.stringify(b.path),
      b.instance ?? null,
      b.regId ?? null,
      b.received ?? null,
      b.userAgent ?? null,
    );
  };
  const del = db.prepare('DELETE FROM bindings WHERE aor = ? AND contact = ?');
  const delAll = db.prepare('DELETE FROM bindings WHERE aor = ?');
  const lookup = db
    .prepare<[string, number], BindingRow>(
      `SELECT ${BINDING_COLUMNS} FROM bindings WHERE aor = ? AND expires_at > ?
       ORDER BY q DESC, contact`,
    )
    .raw();
  const lookupAll = db
    .prepare<[string], BindingRow>(
      `SELECT ${BINDING_COLUMNS} FROM bindings WHERE aor = ? ORDER BY q DESC, contact`,
    )
    .raw();
  const listAll = db
    .prepare<[number], BindingRow>(
      `SELECT ${BINDING_COLUMNS} FROM bindings WHERE expires_at > ?
       ORDER BY aor, q DESC, contact`,
    )
    .raw();
  const purge = db.prepare('DELETE FROM bindings WHERE expires_at <= ?');

  /**
   * Every binding row of recently looked-up AORs, expired ones too (a lookup filters by its
   * own time), in `lookup`'s order. Every INVITE and MESSAGE for a local user asks for its
   * bindings, which change only when that user registers: the query cost 45-70 µs per call
   * in a running server (measured: the statement's pages and code are cold by then), a map
   * read costs next to nothing. Another connection's commit (`PRAGMA data_version`,
   * https://sqlite.org/pragma.html#pragma_data_version) is looked for through the shared
   * `StoreCache`, at most once per `changeCheckIntervalMs` like users, and then everything
   * is read again; this connection's own writes drop the AORs they touch. A lookup that
   * finds no live binding always looks at once: a phone's REGISTER is answered once
   * committed, by whichever worker took it, and a call to it may come through another worker
   * right after. What such a window can leave stale is a binding replaced or removed within
   * it. Each look costs a statement and two lock calls (fcntl), about 20 µs on the machines
   * measured, and every routed request used to make one.
   */
  const cached = new Map<string, readonly Binding[]>();
  let cachedGeneration = -1;
  const current = (): void => {
    if (cache.generation !== cachedGeneration) {
      cached.clear();
      cachedGeneration = cache.generation;
    }
  };
  const cachedLookup = (aor: string, nowMs: number): Binding[] => {
    cache.validate();
    current();
    const known = cached.get(aor);
    if (known !== undefined) {
      const live = known.filter((b) => b.expiresAt > nowMs);
      if (live.length > 0) return live;
      cache.validate(true);
      current();
      if (cached.has(aor)) return live;
    }
    const all = lookupAll.all(aor).map(toBinding);
    if (cached.size >= MAX_CACHED_LOCATIONS) cached.clear();
    cached.set(aor, all);
    return all.filter((b) => b.expiresAt > nowMs);
  };

  /**
   * One update, inside a transaction the caller holds. Two statements on the usual path (the
   * live bindings, then the upsert): the bindings the 200 lists are the ones read, with this
   * request's changes applied in memory, not read again.
   */
  const applyIn = (u: BindingUpdate): BindingUpdateResult => {
    // Dropped before the writes: a rolled-back batch then costs one more read, never a stale one.
    cached.delete(u.aor);
    const changes = u.changes ?? [];
    const live = lookup.all(u.aor, u.nowMs);
    for (const r of live) {
      // RFC 3261 §10.3 steps 6 and 7: the same Call-ID with a CSeq not higher aborts.
      if (
        r[4] === u.callId &&
        u.cseq <= r[5] &&
        (u.removeAll === true || changes.some((c) => contactOf(c) === r[1]))
      ) {
        return { ok: false, reason: 'out-of-order' };
      }
    }
    if (u.removeAll === true) {
      delAll.run(u.aor);
      live.length = 0;
    }
    const after: Binding[] = live.map(toBinding);
    for (const c of changes) {
      const contact = contactOf(c);
      const at = after.findIndex((b) => b.contact === contact);
      if (at >= 0) after.splice(at, 1);
      if (typeof c === 'string') del.run(u.aor, c);
      else {
        upsert(c);
        if (c.expiresAt > u.nowMs) after.push(c);
      }
    }
    if (changes.length === 0) return { ok: true, bindings: after };
    // The order `lookup` gives (q descending, then contact): SQLite compares TEXT as UTF-8
    // octets, which is code point order; UTF-16 order is the same below U+D800, so a contact
    // with anything above that is left to SQLite.
    if (after.some((b) => !BELOW_SURROGATES.test(b.contact))) {
      return { ok: true, bindings: lookup.all(u.aor, u.nowMs).map(toBinding) };
    }
    after.sort((a, b) => b.q - a.q || (a.contact < b.contact ? -1 : a.contact > b.contact ? 1 : 0));
    return { ok: true, bindings: after };
  };
  const applyTx = db.transaction(applyIn);

  return {
    // IMMEDIATE: the write lock is taken before the check, so another process cannot
    // commit between the check and the writes (nor make this read-then-write
    // transaction fail with SQLITE_BUSY when it upgrades to writing).
    apply: grouped ? groupCommit(db, applyIn, windowMs) : async (u) => applyTx.immediate(u),
    upsert: async (b) => {
      cached.delete(b.aor);
      upsert(b);
    },
    remove: async (aor, contact) => {
      cached.delete(aor);
      return del.run(aor, contact).changes > 0;
    },
    removeAll: async (aor) => {
      cached.delete(aor);
      return delAll.run(aor).changes;
    },
    lookup: async (aor, nowMs) => cachedLookup(aor, nowMs),
    list: async (nowMs, aor) =>
      (aor === undefined ? listAll.all(nowMs) : lookup.all(aor, nowMs)).map(toBinding),
    purgeExpired: async (nowMs) => {
      // Lookups hide the expired rows already; dropping them here only frees the memory.
      cached.clear();
      return purge.run(nowMs).changes;
    },
  };
}

function toMessage(r: MessageRow): StoredMessage {
  return {
    id: r.id,
    aor: r.aor,
    from: r.sender,
    to: r.recipient,
    contentType: r.content_type,
    body: new Uint8Array(r.body),
    receivedAt: r.received_at,
    expiresAt: r.expires_at,
  };
}

function messageStore(db: Database.Database, cache: StoreCache): MessageStore {
  const count = db
    .prepare<[string, number], number>(
      'SELECT count(*) FROM messages WHERE aor = ? AND expires_at > ?',
    )
    .pluck();
  const insert = db.prepare(
    `INSERT INTO messages (aor, sender, recipient, content_type, body, received_at, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const live = db.prepare<[string, number], MessageRow>(
    'SELECT * FROM messages WHERE aor = ? AND expires_at > ? ORDER BY id',
  );
  const leased = db
    .prepare<[string, number], number>(
      'SELECT count(*) FROM messages WHERE aor = ? AND lease_until > ?',
    )
    .pluck();
  const firstLive = db.prepare<[string, number, number], MessageRow>(
    'SELECT * FROM messages WHERE aor = ? AND expires_at > ? ORDER BY id LIMIT ?',
  );
  const lease = db.prepare('UPDATE messages SET lease_until = ? WHERE id = ?');
  const unlease = db.prepare('UPDATE messages SET lease_until = 0 WHERE id = ?');
  const del = db.prepare('DELETE FROM messages WHERE id = ?');
  const aors = db
    .prepare<[number, number], string>(
      `SELECT DISTINCT aor FROM messages m WHERE expires_at > ?
         AND NOT EXISTS (SELECT 1 FROM messages l WHERE l.aor = m.aor AND l.lease_until > ?)
       ORDER BY aor`,
    )
    .pluck();
  const purge = db.prepare('DELETE FROM messages WHERE expires_at <= ?');
  // IMMEDIATE: the count and the insert (the lease check and the leases) are one step, so
  // two processes cannot both pass the quota (both claim the same messages).
  const enqueueTx = db.transaction((m: NewMessage, quota: number): EnqueueResult => {
    if (count.get(m.aor, m.receivedAt)! >= quota) return { ok: false, reason: 'quota' };
    const r = insert.run(
      m.aor,
      m.from,
      m.to,
      m.contentType,
      Buffer.from(m.body),
      m.receivedAt,
      m.expiresAt,
    );
    return { ok: true, id: Number(r.lastInsertRowid) };
  });
  const claimTx = db.transaction(
    (aor: string, nowMs: number, leaseMs: number, limit: number): StoredMessage[] => {
      if (leased.get(aor, nowMs)! > 0) return [];
      const rows = firstLive.all(aor, nowMs, limit);
      for (const r of rows) lease.run(nowMs + leaseMs, r.id);
      return rows.map(toMessage);
    },
  );
  return {
    enqueue: async (m, quota) => {
      cache.noMessages.delete(m.aor);
      return enqueueTx.immediate(m, quota);
    },
    count: async (aor, nowMs) => {
      cache.validate();
      // None at an earlier time is none now: messages only expire as time goes on.
      const noneAt = cache.noMessages.get(aor);
      if (noneAt !== undefined && noneAt <= nowMs) return 0;
      const n = count.get(aor, nowMs)!;
      if (n === 0) remember(cache.noMessages, aor, nowMs);
      return n;
    },
    list: async (aor, nowMs) => live.all(aor, nowMs).map(toMessage),
    claim: async (aor, nowMs, leaseMs, limit) => claimTx.immediate(aor, nowMs, leaseMs, limit),
    release: async (id) => {
      unlease.run(id);
    },
    remove: async (id) => del.run(id).changes > 0,
    pendingAors: async (nowMs) => aors.all(nowMs, nowMs),
    purgeExpired: async (nowMs) => purge.run(nowMs).changes,
  };
}

function toPublication(r: PublicationRow): Publication {
  return {
    aor: r.aor,
    event: r.event,
    etag: r.etag,
    contentType: r.content_type,
    body: new Uint8Array(r.body),
    publishedAt: r.published_at,
    expiresAt: r.expires_at,
  };
}

/**
 * Published event state (RFC 3903). Every write runs in one IMMEDIATE transaction with
 * its check and its version bump, so two processes acting on the same entity-tag cannot
 * both succeed: the second finds the entity-tag gone (412 for its PUBLISH).
 */
function presenceStore(db: Database.Database): PresenceStore {
  const insert = db.prepare(
    `INSERT INTO publications (aor, event, etag, content_type, body, published_at, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const get = db.prepare<[string, string, string, number], PublicationRow>(
    'SELECT * FROM publications WHERE aor = ? AND event = ? AND etag = ? AND expires_at > ?',
  );
  const live = db.prepare<[string, string, number], PublicationRow>(
    `SELECT * FROM publications WHERE aor = ? AND event = ? AND expires_at > ?
     ORDER BY published_at, etag`,
  );
  const refresh = db.prepare(
    'UPDATE publications SET etag = ?, expires_at = ? WHERE aor = ? AND event = ? AND etag = ?',
  );
  const modify = db.prepare(
    `UPDATE publications SET etag = ?, content_type = ?, body = ?, published_at = ?,
       expires_at = ? WHERE aor = ? AND event = ? AND etag = ?`,
  );
  const del = db.prepare('DELETE FROM publications WHERE aor = ? AND event = ? AND etag = ?');
  const delExpiredOf = db.prepare(
    'DELETE FROM publications WHERE aor = ? AND event = ? AND expires_at <= ?',
  );
  const expiredKeys = db.prepare<[number], PresenceKey>(
    'SELECT DISTINCT aor, event FROM publications WHERE expires_at <= ? ORDER BY aor, event',
  );
  const purge = db.prepare('DELETE FROM publications WHERE expires_at <= ?');
  const version = db
    .prepare<[string, string], number>(
      'SELECT n FROM publication_versions WHERE aor = ? AND event = ?',
    )
    .pluck();
  const bump = db.prepare(
    `INSERT INTO publication_versions (aor, event, n) VALUES (?, ?, 1)
     ON CONFLICT (aor, event) DO UPDATE SET n = n + 1`,
  );

  const insertTx = db.transaction((p: Publication): void => {
    // The pair's expired publications go first: their state left the composition already.
    delExpiredOf.run(p.aor, p.event, p.publishedAt);
    insert.run(
      p.aor,
      p.event,
      p.etag,
      p.contentType,
      Buffer.from(p.body),
      p.publishedAt,
      p.expiresAt,
    );
    bump.run(p.aor, p.event);
  });
  const refreshTx = db.transaction(
    (k: PresenceKey, etag: string, newEtag: string, expiresAt: number, nowMs: number) => {
      const r = get.get(k.aor, k.event, etag, nowMs);
      if (r === undefined) return undefined;
      refresh.run(newEtag, expiresAt, k.aor, k.event, etag);
      return toPublication({ ...r, etag: newEtag, expires_at: expiresAt });
    },
  );
  const modifyTx = db.transaction(
    (
      k: PresenceKey,
      etag: string,
      newEtag: string,
      c: { contentType: string; body: Uint8Array; expiresAt: number },
      nowMs: number,
    ) => {
      if (get.get(k.aor, k.event, etag, nowMs) === undefined) return undefined;
      const body = Buffer.from(c.body);
      modify.run(newEtag, c.contentType, body, nowMs, c.expiresAt, k.aor, k.event, etag);
      bump.run(k.aor, k.event);
      return toPublication({
        aor: k.aor,
        event: k.event,
        etag: newEtag,
        content_type: c.contentType,
        body,
        published_at: nowMs,
        expires_at: c.expiresAt,
      });
    },
  );
  const removeTx = db.transaction((k: PresenceKey, etag: string, nowMs: number): boolean => {
    if (get.get(k.aor, k.event, etag, nowMs) === undefined) return false;
    del.run(k.aor, k.event, etag);
    bump.run(k.aor, k.event);
    return true;
  });
  const purgeTx = db.transaction((nowMs: number): PresenceKey[] => {
    const keys = expiredKeys.all(nowMs).map((r) => ({ aor: r.aor, event: r.event }));
    purge.run(nowMs);
    for (const k of keys) bump.run(k.aor, k.event);
    return keys;
  });
  return {
    insert: async (p) => insertTx.immediate(p),
    refresh: async (k, etag, newEtag, expiresAt, nowMs) =>
      refreshTx.immediate(k, etag, newEtag, expiresAt, nowMs),
    modify: async (k, etag, newEtag, c, nowMs) => modifyTx.immediate(k, etag, newEtag, c, nowMs),
    remove: async (k, etag, nowMs) => removeTx.immediate(k, etag, nowMs),
    get: async (k, etag, nowMs) => {
      const r = get.get(k.aor, k.event, etag, nowMs);
      return r === undefined ? undefined : toPublication(r);
    },
    list: async (k, nowMs) => live.all(k.aor, k.event, nowMs).map(toPublication),
    version: async (k) => version.get(k.aor, k.event) ?? 0,
    touch: async (k) => {
      bump.run(k.aor, k.event);
    },
    purgeExpired: async (nowMs) => purgeTx.immediate(nowMs),
  };
}

interface SubscriptionRow {
  call_id: string;
  local_tag: string;
  remote_tag: string;
  aor: string;
  event: string;
  event_id: string | null;
  watcher: string;
  watcher_name: string | null;
  local_uri: string;
  remote_uri: string;
  remote_target: string;
  route_set: string;
  flow: string | null;
  content_type: string;
  status: string;
  reason: string | null;
  local_seq: number;
  remote_seq: number;
  created_at: number;
  expires_at: number;
  notified_version: number;
  notified_hash: string;
  notify_count: number;
  recheck_at: number;
}

function toSubscription(r: SubscriptionRow): StoredSubscription {
  return {
    callId: r.call_id,
    localTag: r.local_tag,
    remoteTag: r.remote_tag,
    aor: r.aor,
    event: r.event,
    ...(r.event_id !== null && { eventId: r.event_id }),
    watcher: r.watcher,
    ...(r.watcher_name !== null && { watcherName: r.watcher_name }),
    localUri: r.local_uri,
    remoteUri: r.remote_uri,
    remoteTarget: r.remote_target,
    routeSet: JSON.parse(r.route_set) as string[],
    ...(r.flow !== null && { flow: r.flow }),
    contentType: r.content_type,
    status: r.status as SubscriptionStatus,
    ...(r.reason !== null && { reason: r.reason }),
    localSeq: r.local_seq,
    remoteSeq: r.remote_seq,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    notifiedVersion: r.notified_version,
    notifiedHash: r.notified_hash,
    notifyCount: r.notify_count,
    recheckAt: r.recheck_at,
  };
}

/** The `presence.winfo` counter of a resource moves with its presence subscriptions. */
const WINFO_EVENT = 'presence.winfo';

/**
 * Subscriptions (RFC 6665). Writes that change what a resource's watcher list shows bump
 * its winfo counter in the same transaction, so winfo NOTIFYs follow from any process.
 */
/**
 * `grouped` set (a server): `update` calls made in the same turn of the event loop are run in
 * one transaction on the next turn (see `groupCommit`): a change that notifies 1,000 watchers
 * stores their 1,000 NOTIFY CSeqs with one commit instead of 1,000.
 */
function subscriptionStore(
  db: Database.Database,
  grouped: boolean,
  cache: StoreCache,
  windowMs: number,
): SubscriptionStore {
  /** This connection may have raised `aor`'s counts: forget that it had none. */
  const counted = (aor: string, event: string): void => {
    cache.noSubscriptions.get(event)?.delete(aor);
    cache.noSubscriptions.get('*')?.delete(aor);
  };
  const insert = db.prepare(
    `INSERT INTO subscriptions (call_id, local_tag, remote_tag, aor, event, event_id, watcher,
       watcher_name, local_uri, remote_uri, remote_target, route_set, flow, content_type, status,
       reason, local_seq, remote_seq, created_at, expires_at, notified_version, notified_hash,
       notify_count, recheck_at)
     VALUES (@callId, @localTag, @remoteTag, @aor, @event, @eventId, @watcher, @watcherName, @localUri,
       @remoteUri, @remoteTarget, @routeSet, @flow, @contentType, @status, @reason, @localSeq,
       @remoteSeq, @createdAt, @expiresAt, @notifiedVersion, @notifiedHash, @notifyCount,
       @recheckAt)`,
  );
  const get = db.prepare<[string, string, string], SubscriptionRow>(
    'SELECT * FROM subscriptions WHERE call_id = ? AND local_tag = ? AND remote_tag = ?',
  );
  const del = db.prepare(
    'DELETE FROM subscriptions WHERE call_id = ? AND local_tag = ? AND remote_tag = ?',
  );
  const listFor = db.prepare<[string, string], SubscriptionRow>(
    'SELECT * FROM subscriptions WHERE aor = ? AND event = ? ORDER BY created_at, call_id',
  );
  const countFor = db
    .prepare<[string], number>(
      "SELECT count(*) FROM subscriptions WHERE aor = ? AND status != 'terminated'",
    )
    .pluck();
  const countForEvent = db
    .prepare<[string, string], number>(
      "SELECT count(*) FROM subscriptions WHERE aor = ? AND event = ? AND status != 'terminated'",
    )
    .pluck();
  const countResource = db
    .prepare<[string, string, number], number>(
      `SELECT count(*) FROM subscriptions WHERE aor = ? AND event = ? AND status != 'terminated'
         AND expires_at > ?`,
    )
    .pluck();
  const countWatcher = db
    .prepare<[string, number], number>(
      `SELECT count(*) FROM subscriptions WHERE watcher = ? AND status != 'terminated'
         AND expires_at > ?`,
    )
    .pluck();
  // Through the indexes of migration 7: the pairs stamped since the last poll, then their
  // subscriptions (by resource); the expired ones; those whose recheck is due.
  const lastSeq = db
    .prepare<[], number>('SELECT coalesce(max(seq), 0) FROM publication_versions')
    .pluck();
  // Three statements, not one UNION: SQLite would merge a UNION by scanning every table in
  // key order rather than search the indexes.
  const changed = db.prepare<[number], SubscriptionRow>(
    `SELECT s.* FROM publication_versions v
       JOIN subscriptions s ON s.aor = v.aor AND s.event = v.event
     WHERE v.seq > ? AND s.status != 'terminated' AND s.notified_version != v.n`,
  );
  const expired = db.prepare<[number], SubscriptionRow>(
    "SELECT * FROM subscriptions WHERE expires_at <= ? AND status != 'terminated'",
  );
  const recheck = db.prepare<[number], SubscriptionRow>(
    "SELECT * FROM subscriptions WHERE recheck_at <= ? AND status != 'terminated'",
  );
  // One snapshot for all reads: the sequence value returned covers every row returned.
  const dirtyTx = db.transaction((nowMs: number, since: number) => {
    const seq = lastSeq.get()!;
    const rows = new Map<string, SubscriptionRow>();
    const add = (r: SubscriptionRow): void => {
      rows.set(`${r.call_id}\u0000${r.local_tag}\u0000${r.remote_tag}`, r);
    };
    for (const r of changed.iterate(since)) add(r);
    for (const r of expired.iterate(nowMs)) add(r);
    for (const r of recheck.iterate(nowMs)) add(r);
    return { due: [...rows.values()].map(toSubscription), seq };
  });
  const purge = db.prepare(
    "DELETE FROM subscriptions WHERE status = 'terminated' AND expires_at <= ?",
  );
  const bump = db.prepare(
    `INSERT INTO publication_versions (aor, event, n) VALUES (?, ?, 1)
     ON CONFLICT (aor, event) DO UPDATE SET n = n + 1`,
  );
  const winfoChanged = (s: { aor: string; event: string }): void => {
    if (s.event === 'presence') bump.run(s.aor, WINFO_EVENT);
  };

  const createTx = db.transaction(
    (
      s: StoredSubscription,
      limits: SubscriptionLimits,
      nowMs: number,
    ): CreateSubscriptionResult => {
      if (countWatcher.get(s.watcher, nowMs)! >= limits.perWatcher) {
        return { ok: false, reason: 'watcher-limit' };
      }
      if (countResource.get(s.aor, s.event, nowMs)! >= limits.perResource) {
        return { ok: false, reason: 'resource-limit' };
      }
      counted(s.aor, s.event);
      insert.run({
        ...s,
        eventId: s.eventId ?? null,
        watcherName: s.watcherName ?? null,
        routeSet: JSON.stringify(s.routeSet),
        flow: s.flow ?? null,
        reason: s.reason ?? null,
      });
      winfoChanged(s);
      return { ok: true };
    },
  );
  const COLUMNS: Record<keyof SubscriptionChange, string> = {
    expiresAt: 'expires_at',
    remoteSeq: 'remote_seq',
    remoteTarget: 'remote_target',
    flow: 'flow',
    status: 'status',
    reason: 'reason',
    localSeq: 'local_seq',
    notifiedVersion: 'notified_version',
    notifiedHash: 'notified_hash',
    notifyCount: 'notify_count',
    recheckAt: 'recheck_at',
  };
  /** One statement per set of changed columns, made on first use. */
  const updates = new Map<string, Database.Statement>();
  const updateBody = (id: SubscriptionDialogId, c: SubscriptionChange): boolean => {
    const row = get.get(id.callId, id.localTag, id.remoteTag);
    if (row === undefined) return false;
    const keys = (Object.keys(c) as (keyof SubscriptionChange)[]).filter((k) => c[k] !== undefined);
    if (keys.length === 0) return true;
    const sql = keys.map((k) => `${COLUMNS[k]} = ?`).join(', ');
    let stmt = updates.get(sql);
    if (stmt === undefined) {
      stmt = db.prepare(
        `UPDATE subscriptions SET ${sql} WHERE call_id = ? AND local_tag = ? AND remote_tag = ?`,
      );
      updates.set(sql, stmt);
    }
    if (row.status === 'terminated' && c.status !== undefined && c.status !== 'terminated') {
      counted(row.aor, row.event);
    }
    stmt.run(...keys.map((k) => c[k]), id.callId, id.localTag, id.remoteTag);
    if (c.status !== undefined && c.status !== row.status) winfoChanged(row);
    return true;
  };
  const updateTx = db.transaction(updateBody);
  const removeTx = db.transaction((id: SubscriptionDialogId): boolean => {
    const row = get.get(id.callId, id.localTag, id.remoteTag);
    if (row === undefined) return false;
    del.run(id.callId, id.localTag, id.remoteTag);
    if (row.status !== 'terminated') winfoChanged(row);
    return true;
  });
  function count(aor: string, event: string | undefined): number {
    cache.validate();
    const key = event ?? '*';
    if (cache.noSubscriptions.get(key)?.has(aor) === true) return 0;
    const n = event === undefined ? countFor.get(aor)! : countForEvent.get(aor, event)!;
    if (n === 0) rememberNone(cache.noSubscriptions, key, aor);
    return n;
  }

  return {
    create: async (s, limits, nowMs) => createTx.immediate(s, limits, nowMs),
    get: async (id) => {
      const r = get.get(id.callId, id.localTag, id.remoteTag);
      return r === undefined ? undefined : toSubscription(r);
    },
    update: grouped
      ? groupCommit(db, updateBody, windowMs)
      : async (id, c) => updateTx.immediate(id, c),
    remove: async (id) => removeTx.immediate(id),
    listFor: async (aor, event) => listFor.all(aor, event).map(toSubscription),
    countFor: async (aor, event) => count(aor, event),
    // SQLite answers at once: the same count, without a promise (busy: cannot tell now).
    unwatched: (aor, event) => {
      try {
        return count(aor, event) === 0;
      } catch (e) {
        if (isBusy(e)) return false;
        throw e;
      }
    },
    dirty: async (nowMs, since) => dirtyTx(nowMs, since),
    purgeTerminated: async (beforeMs) => purge.run(beforeMs).changes,
  };
}

interface DialogStateRow {
  aor: string;
  id: string;
  call_id: string;
  local_tag: string | null;
  remote_tag: string | null;
  direction: string;
  state: string;
  event: string | null;
  code: number | null;
  local_identity: string;
  local_display: string | null;
  remote_identity: string;
  remote_display: string | null;
  created_at: number;
  updated_at: number;
  expires_at: number;
}

function toDialogState(r: DialogStateRow): StoredDialogState {
  return {
    aor: r.aor,
    id: r.id,
    callId: r.call_id,
    ...(r.local_tag !== null && { localTag: r.local_tag }),
    ...(r.remote_tag !== null && { remoteTag: r.remote_tag }),
    direction: r.direction === 'initiator' ? 'initiator' : 'recipient',
    state: r.state as DialogStateValue,
    ...(r.event !== null && { event: r.event }),
    ...(r.code !== null && { code: r.code }),
    localIdentity: r.local_identity,
    ...(r.local_display !== null && { localDisplay: r.local_display }),
    remoteIdentity: r.remote_identity,
    ...(r.remote_display !== null && { remoteDisplay: r.remote_display }),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    expiresAt: r.expires_at,
  };
}

/**
 * Users' call states (dialogs.ts, RFC 4235); a write bumps the user's `dialog` counter in the
 * same transaction, so that the notifier owning a watcher's subscription looks again.
 */
function dialogStateStore(db: Database.Database): DialogStateStore {
  const upsert = db.prepare(
    `INSERT INTO dialog_states (aor, id, call_id, local_tag, remote_tag, direction, state, event,
       code, local_identity, local_display, remote_identity, remote_display, created_at,
       updated_at, expires_at)
     VALUES (@aor, @id, @callId, @localTag, @remoteTag, @direction, @state, @event, @code,
       @localIdentity, @localDisplay, @remoteIdentity, @remoteDisplay, @createdAt, @updatedAt,
       @expiresAt)
     ON CONFLICT (aor, id) DO UPDATE SET local_tag = excluded.local_tag,
       remote_tag = excluded.remote_tag, state = excluded.state, event = excluded.event,
       code = excluded.code, updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
  );
  const list = db.prepare<[string, number], DialogStateRow>(
    'SELECT * FROM dialog_states WHERE aor = ? AND expires_at > ? ORDER BY created_at, id',
  );
  const purge = db.prepare('DELETE FROM dialog_states WHERE expires_at <= ?');
  const bump = db.prepare(
    `INSERT INTO publication_versions (aor, event, n) VALUES (?, 'dialog', 1)
     ON CONFLICT (aor, event) DO UPDATE SET n = n + 1`,
  );
  const putTx = db.transaction((d: StoredDialogState) => {
    upsert.run({
      ...d,
      localTag: d.localTag ?? null,
      remoteTag: d.remoteTag ?? null,
      event: d.event ?? null,
      code: d.code ?? null,
      localDisplay: d.localDisplay ?? null,
      remoteDisplay: d.remoteDisplay ?? null,
    });
    bump.run(d.aor);
  });
  return {
    put: async (d) => putTx.immediate(d),
    list: async (aor, nowMs) => list.all(aor, nowMs).map(toDialogState),
    purgeExpired: async (nowMs) => purge.run(nowMs).changes,
  };
}

/** Watcher rules (RFC 3856 §5.1); a change bumps the user's presence counter. */
function presenceRuleStore(db: Database.Database): PresenceRuleStore {
  const upsert = db.prepare(
    `INSERT INTO presence_rules (aor, watcher, action) VALUES (?, ?, ?)
     ON CONFLICT (aor, watcher) DO UPDATE SET action = excluded.action`,
  );
  const del = db.prepare('DELETE FROM presence_rules WHERE aor = ? AND watcher = ?');
  const get = db.prepare<[string, string], PresenceRule>(
    'SELECT aor, watcher, action FROM presence_rules WHERE aor = ? AND watcher = ?',
  );
  const list = db.prepare<[string], PresenceRule>(
    'SELECT aor, watcher, action FROM presence_rules WHERE aor = ? ORDER BY watcher',
  );
  const bump = db.prepare(
    `INSERT INTO publication_versions (aor, event, n) VALUES (?, 'presence', 1)
     ON CONFLICT (aor, event) DO UPDATE SET n = n + 1`,
  );
  const setTx = db.transaction((r: PresenceRule) => {
    upsert.run(r.aor, r.watcher, r.action);
    bump.run(r.aor);
  });
  const removeTx = db.transaction((aor: string, watcher: string): boolean => {
    if (del.run(aor, watcher).changes === 0) return false;
    bump.run(aor);
    return true;
  });
  const toRule = (r: PresenceRule): PresenceRule => ({
    aor: r.aor,
    watcher: r.watcher,
    action: r.action as PresenceRuleAction,
  });
  return {
    set: async (r) => setTx.immediate(r),
    remove: async (aor, watcher) => removeTx.immediate(aor, watcher),
    get: async (aor, watcher) => {
      const r = get.get(aor, watcher);
      return r === undefined ? undefined : toRule(r);
    },
    list: async (aor) => list.all(aor).map(toRule),
  };
}

/** Strings whose UTF-16 order is their code point order (see `applyIn`). */
const BELOW_SURROGATES = /^[^\ud800-\uffff]*$/;

function contactOf(c: Binding | string): string {
  return typeof c === 'string' ? c : c.contact;
}
