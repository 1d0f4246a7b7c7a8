/**
 * The SQLite adapter against the store interfaces: every method, persistence across
 * reopening the same data dir, binding expiry, all-or-nothing imports, and no clear-text
 * password in the database file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ha1 } from '../../src/auth/index.ts';
import type { Binding, UserCredentials } from '../../src/store/index.ts';
import { splitAor } from '../../src/store/index.ts';
import {
  DATABASE_FILE,
  SCHEMA_VERSION,
  openSqliteStore,
  type SqliteStore,
} from '../../src/store/sqlite/sqlite-store.ts';

function creds(user: string, domain: string, password: string): UserCredentials {
  return {
    ha1Md5: ha1('MD5', user, domain, password),
    ha1Sha256: ha1('SHA-256', user, domain, password),
  };
}

function binding(over: Partial<Binding> = {}): Binding {
  return {
    aor: 'sip:alice@example.com',
    contact: 'sip:alice@192.0.2.10:5060',
    expiresAt: 10_000,
    q: 1,
    callId: 'c1@192.0.2.10',
    cseq: 1,
    path: [],
    ...over,
  };
}

describe('openSqliteStore', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-store-'));
    store = openSqliteStore(join(dir, 'data')); // a missing data dir is created
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const reopen = async (): Promise<void> => {
    await store.close();
    store = openSqliteStore(join(dir, 'data'));
  };

  it('creates DATADIR/switchboard.db in WAL mode at the current schema version', async () => {
    assert.equal(store.file, join(dir, 'data', DATABASE_FILE));
    assert.ok(readdirSync(join(dir, 'data')).includes(DATABASE_FILE));
    assert.equal(SCHEMA_VERSION, 10);
    await reopen(); // migrations are not re-run on an up-to-date database
    assert.deepEqual(await store.domains.list(), []);
  });

  it('domains: add (lower-cased), has, list, remove, in-use', async () => {
    assert.equal(await store.domains.add('Example.COM'), true);
    assert.equal(await store.domains.add('example.com'), false);
    assert.equal(await store.domains.add('b.example'), true);
    assert.equal(await store.domains.has('EXAMPLE.com'), true);
    assert.equal(await store.domains.has('other.example'), false);
    assert.deepEqual(await store.domains.list(), ['b.example', 'example.com']);
    await store.users.add('sip:alice@example.com', creds('alice', 'example.com', 'pw'));
    assert.equal(await store.domains.remove('example.com'), 'in-use');
    assert.equal(await store.domains.remove('nope.example'), 'not-found');
    assert.equal(await store.domains.remove('B.example'), 'removed');
    assert.deepEqual(await store.domains.list(), ['example.com']);
  });

  it('users: add, get, list, setPassword, remove', async () => {
    const c = creds('alice', 'example.com', 'pw');
    assert.equal(await store.users.add('sip:alice@example.com', c), 'unknown-domain');
    await store.domains.add('example.com');
    await store.domains.add('b.example');
    assert.equal(await store.users.add('sip:alice@example.com', c), 'added');
    assert.equal(await store.users.add('sip:alice@example.com', c), 'exists');
    assert.equal(
      await store.users.add('sip:bob@b.example', creds('bob', 'b.example', 'x')),
      'added',
    );
    assert.deepEqual(await store.users.get('sip:alice@example.com'), {
      aor: 'sip:alice@example.com',
      user: 'alice',
      domain: 'example.com',
      ...c,
    });
    assert.equal(await store.users.get('sip:carol@example.com'), undefined);
    assert.deepEqual(
      (await store.users.list()).map((u) => u.aor),
      ['sip:alice@example.com', 'sip:bob@b.example'],
    );
    assert.deepEqual(
      (await store.users.list('B.EXAMPLE')).map((u) => u.aor),
      ['sip:bob@b.example'],
    );
    const c2 = creds('alice', 'example.com', 'new');
    assert.equal(await store.users.setPassword('sip:alice@example.com', c2), true);
    assert.equal(await store.users.setPassword('sip:carol@example.com', c2), false);
    assert.equal((await store.users.get('sip:alice@example.com'))?.ha1Sha256, c2.ha1Sha256);
    assert.equal(await store.users.remove('sip:alice@example.com'), true);
    assert.equal(await store.users.remove('sip:alice@example.com'), false);
    assert.equal(await store.users.get('sip:alice@example.com'), undefined);
  });

  it('users.add rejects an AOR that is not canonical sip:user@domain', async () => {
    await assert.rejects(store.users.add('alice', creds('a', 'b', 'c')), TypeError);
  });

  it('importMany: all rows, or none (duplicate, existing user, unknown domain)', async () => {
    await store.domains.add('example.com');
    const rows = Array.from({ length: 5 }, (_, i) => ({
      aor: `sip:u${i}@example.com`,
      credentials: creds(`u${i}`, 'example.com', `p${i}`),
    }));
    const dup = [...rows, rows[1]!];
    assert.deepEqual(await store.users.importMany(dup), {
      ok: false,
      index: 5,
      reason: 'duplicate',
    });
    const unknown = [...rows.slice(0, 3), { ...rows[3]!, aor: 'sip:x@nope.example' }];
    assert.deepEqual(await store.users.importMany(unknown), {
      ok: false,
      index: 3,
      reason: 'unknown-domain',
    });
    assert.deepEqual(await store.users.list(), []);
    assert.deepEqual(await store.users.importMany(rows), { ok: true, count: 5 });
    assert.equal((await store.users.list()).length, 5);
    const more = [
      { aor: 'sip:v@example.com', credentials: creds('v', 'example.com', 'p') },
      rows[2]!,
    ];
    assert.deepEqual(await store.users.importMany(more), { ok: false, index: 1, reason: 'exists' });
    assert.equal(await store.users.get('sip:v@example.com'), undefined);
  });

  it('location: upsert (replace by aor+contact), lookup by q, remove, removeAll', async () => {
    const full = binding({
      contact: 'sip:alice@192.0.2.11;transport=tcp',
      q: 0.5,
      path: ['<sip:edge.example.com;lr>', '<sip:p2.example.com;lr>'],
      instance: '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"',
      regId: 1,
      received: 'tcp:192.0.2.11:40000',
      userAgent: 'baresip 3.0',
    });
    await store.location.upsert(binding());
    await store.location.upsert(full);
    await store.location.upsert(binding({ aor: 'sip:bob@example.com' }));
    assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), [binding(), full]);
    const refreshed = binding({ cseq: 2, expiresAt: 20_000, q: 0.1 });
    await store.location.upsert(refreshed);
    assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), [full, refreshed]);
    assert.equal(await store.location.remove('sip:alice@example.com', full.contact), true);
    assert.equal(await store.location.remove('sip:alice@example.com', full.contact), false);
    assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), [refreshed]);
    assert.equal(await store.location.removeAll('sip:alice@example.com'), 1);
    assert.equal(await store.location.removeAll('sip:alice@example.com'), 0);
    assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), []);
    assert.equal((await store.location.lookup('sip:bob@example.com', 0)).length, 1);
  });

  it('location.apply: upserts and removes in order, returns the bindings afterwards', async () => {
    const other = binding({ contact: 'sip:alice@192.0.2.20', q: 0.5, callId: 'c0', cseq: 9 });
    await store.location.upsert(other);
    await store.location.upsert(binding({ contact: 'sip:alice@192.0.2.30' }));
    const fresh = binding({ callId: 'c2', cseq: 1, q: 0.7 });
    const r = await store.location.apply({
      aor: 'sip:alice@example.com',
      nowMs: 0,
      callId: 'c2',
      cseq: 1,
      changes: [fresh, 'sip:alice@192.0.2.30', 'sip:alice@192.0.2.99'],
    });
    assert.deepEqual(r, { ok: true, bindings: [fresh, other] });
    assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), [fresh, other]);
    // The same contact twice: the later one wins, as when applied one by one.
    const twice = binding({ callId: 'c2', cseq: 2, q: 0.1 });
    const r2 = await store.location.apply({
      aor: 'sip:alice@example.com',
      nowMs: 0,
      callId: 'c2',
      cseq: 2,
      changes: [binding({ callId: 'c2', cseq: 2 }), twice],
    });
    assert.deepEqual(r2, { ok: true, bindings: [other, twice] });
  });

  it('location.apply: same Call-ID, CSeq not higher on a changed binding (RFC 3261 §10.3 step 7): nothing changes', async () => {
    const a = binding({ contact: 'sip:alice@192.0.2.1', callId: 'c1', cseq: 5 });
    const b = binding({ contact: 'sip:alice@192.0.2.2', callId: 'c1', cseq: 7 });
    await store.location.upsert(a);
    await store.location.upsert(b);
    const update = (cseq: number, changes: (Binding | string)[]) =>
      store.location.apply({ aor: a.aor, nowMs: 0, callId: 'c1', cseq, changes });
    const newA = binding({ contact: a.contact, callId: 'c1', cseq: 6 });
    // b (CSeq 7) is not touched, so CSeq 6 may change a.
    assert.deepEqual(await update(6, [newA]), { ok: true, bindings: [newA, b] });
    const out = await update(7, [binding({ contact: a.contact, cseq: 7 }), b.contact]);
    assert.deepEqual(out, { ok: false, reason: 'out-of-order' });
    assert.deepEqual(await store.location.lookup(a.aor, 0), [newA, b]);
    // Another Call-ID is never out of order; an expired binding is not checked.
    const c = binding({ contact: b.contact, callId: 'c9', cseq: 1 });
    const r = await store.location.apply({
      aor: a.aor,
      nowMs: 0,
      callId: 'c9',
      cseq: 1,
      changes: [c],
    });
    assert.deepEqual(r, { ok: true, bindings: [newA, c] });
    const late = await store.location.apply({
      aor: a.aor,
      nowMs: 10_000,
      callId: 'c1',
      cseq: 1,
      changes: [binding({ contact: a.contact, callId: 'c1', cseq: 1, expiresAt: 20_000 })],
    });
    assert.equal(late.ok, true);
  });

  it('location.apply removeAll (Contact: *, RFC 3261 §10.3 step 6): checks every live binding', async () => {
    const a = binding({ contact: 'sip:alice@192.0.2.1', callId: 'c1', cseq: 5 });
    const expired = binding({
      contact: 'sip:alice@192.0.2.2',
      callId: 'c1',
      cseq: 9,
      expiresAt: 1,
    });
    await store.location.upsert(a);
    await store.location.upsert(expired);
    const star = (cseq: number) =>
      store.location.apply({ aor: a.aor, nowMs: 5, callId: 'c1', cseq, removeAll: true });
    assert.deepEqual(await star(5), { ok: false, reason: 'out-of-order' });
    assert.deepEqual(await store.location.lookup(a.aor, 5), [a]);
    assert.deepEqual(await star(6), { ok: true, bindings: [] });
    assert.deepEqual(await store.location.lookup(a.aor, 0), []); // the expired one went too
  });

  it('location: lookup hides expired bindings; purgeExpired deletes them', async () => {
    await store.location.upsert(binding({ contact: 'sip:a@192.0.2.1', expiresAt: 1000 }));
    await store.location.upsert(binding({ contact: 'sip:b@192.0.2.2', expiresAt: 2000 }));
    const at = async (now: number): Promise<string[]> =>
      (await store.location.lookup('sip:alice@example.com', now)).map((b) => b.contact);
    assert.deepEqual(await at(999), ['sip:a@192.0.2.1', 'sip:b@192.0.2.2']);
    assert.deepEqual(await at(1000), ['sip:b@192.0.2.2']); // expired at expiresAt
    assert.deepEqual(await at(2000), []);
    assert.equal(await store.location.purgeExpired(1000), 1);
    assert.deepEqual(await at(0), ['sip:b@192.0.2.2']);
    assert.equal(await store.location.purgeExpired(5000), 1);
    assert.equal(await store.location.purgeExpired(5000), 0);
  });

  it('location: list gives the live bindings of every AOR (or one), by AOR then q', async () => {
    const a1 = binding({ contact: 'sip:alice@192.0.2.1', q: 0.5, expiresAt: 3000 });
    const a2 = binding({ contact: 'sip:alice@192.0.2.2', q: 0.9, expiresAt: 1000 });
    const b1 = binding({ aor: 'sip:bob@example.com', contact: 'sip:bob@192.0.2.3' });
    const c1 = binding({ aor: 'sip:carol@example.com', contact: 'sip:carol@192.0.2.4' });
    for (const b of [c1, a1, b1, a2]) await store.location.upsert(b);
    assert.deepEqual(await store.location.list(0), [a2, a1, b1, c1]);
    // expired at expiresAt, as lookup
    assert.deepEqual(await store.location.list(1000), [a1, b1, c1]);
    assert.deepEqual(await store.location.list(0, 'sip:alice@example.com'), [a2, a1]);
    assert.deepEqual(await store.location.list(0, 'sip:nobody@example.com'), []);
    assert.deepEqual(await store.location.list(10_000), []);
    // list only reads: the expired rows are still there for purgeExpired
    assert.equal(await store.location.purgeExpired(10_000), 4);
  });

  it('users, domains and bindings survive closing and reopening the data dir', async () => {
    await store.domains.add('example.com');
    const c = creds('alice', 'example.com', 'pw');
    await store.users.add('sip:alice@example.com', c);
    const b = binding({ path: ['<sip:edge;lr>'], regId: 2, instance: '"<urn:x>"' });
    await store.location.upsert(b);
    await reopen();
    assert.deepEqual(await store.domains.list(), ['example.com']);
    assert.deepEqual(await store.users.get('sip:alice@example.com'), {
      aor: 'sip:alice@example.com',
      user: 'alice',
      domain: 'example.com',
      ...c,
    });
    assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), [b]);
  });

  it('a committed binding survives the process being killed (synchronous = NORMAL)', async () => {
    await store.close();
    // Another process writes and dies by SIGKILL without closing the database: the
    // WAL is neither checkpointed nor synced, as after a crash.
    const storeUrl = new URL('../../src/store/sqlite/sqlite-store.ts', import.meta.url).href;
    const child = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { openSqliteStore } = await import(${JSON.stringify(storeUrl)});
         const s = openSqliteStore(${JSON.stringify(join(dir, 'data'))});
         await s.domains.add('example.com');
         await s.location.upsert(${JSON.stringify(binding())});
         process.kill(process.pid, 'SIGKILL');`,
      ],
      { encoding: 'utf8' },
    );
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    store = openSqliteStore(join(dir, 'data'));
    assert.deepEqual(await store.domains.list(), ['example.com']);
    assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), [binding()]);
  });

  it('users and domains changed through another connection are seen by the next read', async () => {
    // The server reads through `store`; `other` stands for the `switchboard user` and
    // `domain` commands or another server worker, each with its own connection.
    const other = openSqliteStore(join(dir, 'data'));
    try {
      const alice = 'sip:alice@example.com';
      assert.equal(await store.domains.has('example.com'), false);
      assert.equal(await store.users.get(alice), undefined);
      await other.domains.add('example.com');
      assert.equal(await store.domains.has('example.com'), true);
      assert.equal(await store.users.get(alice), undefined);
      const c1 = creds('alice', 'example.com', 'one');
      await other.users.add(alice, c1);
      assert.equal((await store.users.get(alice))?.ha1Md5, c1.ha1Md5);
      // Bindings written elsewhere (other workers registering) leave users as they are.
      await other.location.upsert(binding());
      assert.equal((await store.users.get(alice))?.ha1Md5, c1.ha1Md5);
      const c2 = creds('alice', 'example.com', 'two');
      await other.users.setPassword(alice, c2);
      assert.equal((await store.users.get(alice))?.ha1Md5, c2.ha1Md5);
      await other.users.importMany([
        { aor: 'sip:bob@example.com', credentials: creds('bob', 'example.com', 'b') },
      ]);
      assert.notEqual(await store.users.get('sip:bob@example.com'), undefined);
      await other.users.remove(alice);
      assert.equal(await store.users.get(alice), undefined);
      await other.users.remove('sip:bob@example.com');
      assert.equal(await other.domains.remove('example.com'), 'removed');
      assert.equal(await store.domains.has('example.com'), false);
      // And the other way round: this connection's own changes are seen by its reads.
      await store.domains.add('b.example');
      assert.equal(await store.domains.has('B.example'), true);
      assert.equal(await other.domains.has('b.example'), true);
      await store.users.add('sip:carol@b.example', creds('carol', 'b.example', 'c'));
      assert.notEqual(await store.users.get('sip:carol@b.example'), undefined);
      await store.users.remove('sip:carol@b.example');
      assert.equal(await store.users.get('sip:carol@b.example'), undefined);
      assert.equal(await other.users.get('sip:carol@b.example'), undefined);
    } finally {
      await other.close();
    }
  });

  it('a database at schema version 1 is migrated (2, 3, 4, 5, 6, 7, 8, 9, 10) with its users and bindings', async () => {
    await store.domains.add('example.com');
    await store.users.add('sip:alice@example.com', creds('alice', 'example.com', 'pw'));
    await store.location.upsert(binding());
    await store.close();
    // Back to version 1 as an older Switchboard left it: no counter, no triggers, no messages,
    // no publications.
    const db = new Database(join(dir, 'data', DATABASE_FILE));
    db.exec(`DROP TABLE accounts_version; DROP TABLE messages;
      DROP TABLE publications; DROP TABLE publication_versions;
      DROP TABLE subscriptions; DROP TABLE presence_rules; DROP TRIGGER users_deleted_presence;
      DROP TABLE dialog_states; DROP TABLE change_counters;
      DROP TRIGGER users_inserted; DROP TRIGGER users_updated; DROP TRIGGER users_deleted;
      DROP TRIGGER domains_inserted; DROP TRIGGER domains_updated; DROP TRIGGER domains_deleted;
      CREATE INDEX bindings_expires ON bindings(expires_at);
      UPDATE schema_version SET version = 1;`);
    db.close();
    store = openSqliteStore(join(dir, 'data'));
    const other = openSqliteStore(join(dir, 'data'));
    const look = new Database(join(dir, 'data', DATABASE_FILE), { readonly: true });
    const indexes = look
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'index'")
      .all()
      .map((r) => r.name);
    look.close();
    assert.equal(indexes.includes('bindings_expires'), false); // migration 3
    assert.equal(indexes.includes('messages_aor'), true); // migration 4
    try {
      assert.equal(await store.presence.version({ aor: 'sip:a@b', event: 'presence' }), 0); // 5
      assert.deepEqual(await store.subscriptions.listFor('sip:a@b', 'presence'), []); // 6
      assert.deepEqual(await store.presenceRules.list('sip:a@b'), []); // 6
      assert.deepEqual(await store.dialogs.list('sip:a@b', 0), []); // 9
      assert.equal(await store.messages.count('sip:alice@example.com', 0), 0); // 10
      await other.messages.enqueue(
        {
          aor: 'sip:alice@example.com',
          from: '<sip:bob@example.com>',
          to: '<sip:alice@example.com>',
          contentType: 'text/plain',
          body: new Uint8Array([104, 105]),
          receivedAt: 0,
          expiresAt: 60_000,
        },
        10,
      );
      assert.equal(await store.messages.count('sip:alice@example.com', 0), 1); // 10: counted
      assert.notEqual(await store.users.get('sip:alice@example.com'), undefined);
      assert.deepEqual(await store.location.lookup('sip:alice@example.com', 0), [binding()]);
      await other.users.remove('sip:alice@example.com');
      assert.equal(await store.users.get('sip:alice@example.com'), undefined);
      // 6: removing a user moves its presence counter (its watchers are told).
      assert.equal(
        await store.presence.version({ aor: 'sip:alice@example.com', event: 'presence' }),
        1,
      );
      // 7: and stamps it with the first value of the change sequence.
      assert.equal((await store.subscriptions.dirty(0, 0)).seq, 1);
    } finally {
      await other.close();
    }
  });

  it('no clear-text password in the database files', async () => {
    const password = 'Sup3r-Secret-Passw0rd';
    await store.domains.add('example.com');
    await store.users.add('sip:alice@example.com', creds('alice', 'example.com', password));
    await store.users.importMany([
      { aor: 'sip:bob@example.com', credentials: creds('bob', 'example.com', password) },
    ]);
    await store.close();
    const files = readdirSync(join(dir, 'data'));
    assert.ok(files.includes(DATABASE_FILE));
    for (const f of files) {
      const bytes = readFileSync(join(dir, 'data', f));
      assert.equal(bytes.includes(password), false, f);
      assert.equal(bytes.includes(Buffer.from(password, 'utf16le')), false, f);
    }
    // The HA1 is there instead.
    const db = readFileSync(join(dir, 'data', DATABASE_FILE));
    assert.ok(db.includes(ha1('SHA-256', 'alice', 'example.com', password)));
    store = openSqliteStore(join(dir, 'data'));
  });

  it('splitAor: the parts of a canonical AOR', () => {
    assert.deepEqual(splitAor('sip:alice@example.com'), { user: 'alice', domain: 'example.com' });
    assert.equal(splitAor('alice@example.com'), undefined);
    assert.equal(splitAor('sip:example.com'), undefined);
    assert.equal(splitAor('sip:alice@'), undefined);
  });
});

describe('openSqliteStore nonBlocking: waiting for another process’s write lock', () => {
  it('retries off the event loop until the lock is released, and gives up after busyTimeoutMs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-busy-'));
    const store = openSqliteStore(dir, { nonBlocking: true, busyTimeoutMs: 400 });
    // Another connection (as another worker or a command would) holds the write lock.
    const other = new Database(join(dir, DATABASE_FILE));
    try {
      other.exec('BEGIN IMMEDIATE');
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 5);
      const started = Date.now();
      const applied = store.location.upsert(binding());
      await new Promise((r) => setTimeout(r, 100));
      // The event loop ran meanwhile (SQLite's own busy handler would have slept in the thread).
      assert.ok(ticks >= 5, `timer ticks while waiting: ${ticks}`);
      other.exec('COMMIT');
      await applied;
      clearInterval(ticker);
      assert.ok(Date.now() - started >= 100);
      assert.equal((await store.location.lookup('sip:alice@example.com', 0)).length, 1);

      // A batched apply waits the same way.
      other.exec('BEGIN IMMEDIATE');
      const batched = store.location.apply({
        aor: 'sip:alice@example.com',
        nowMs: 0,
        callId: 'c9',
        cseq: 1,
        changes: [binding({ contact: 'sip:alice@192.0.2.99', callId: 'c9' })],
      });
      await new Promise((r) => setTimeout(r, 50));
      other.exec('COMMIT');
      assert.equal(((await batched) as { ok: boolean }).ok, true);

      other.exec('BEGIN IMMEDIATE');
      await assert.rejects(store.location.upsert(binding({ contact: 'sip:b@192.0.2.1' })), {
        code: 'SQLITE_BUSY',
      });
      other.exec('ROLLBACK');
    } finally {
      other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openSqliteStore nonBlocking: location.apply commits a turn’s updates together', () => {
  it('gives each update its own result, and one failing update fails alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-batch-'));
    const store = openSqliteStore(dir, { nonBlocking: true });
    try {
      const a = binding({ aor: 'sip:a@example.com', contact: 'sip:a@192.0.2.1', callId: 'ca' });
      const b = binding({ aor: 'sip:b@example.com', contact: 'sip:b@192.0.2.2', callId: 'cb' });
      const update = (x: Binding, cseq = 1): Parameters<typeof store.location.apply>[0] => ({
        aor: x.aor,
        nowMs: 0,
        callId: x.callId,
        cseq,
        changes: [{ ...x, cseq }],
      });
      // Submitted in one turn: committed by one transaction on the next.
      const results = await Promise.allSettled([
        store.location.apply(update(a)),
        store.location.apply(update(b)),
        // A binding the table refuses (expires_at NOT NULL): this one fails, alone.
        store.location.apply({
          ...update(binding({ aor: 'sip:c@example.com', callId: 'cc' })),
          changes: [{ ...binding({ aor: 'sip:c@example.com' }), expiresAt: null as never }],
        }),
        // Same Call-ID, CSeq not higher than the update before it in the batch (§10.3 step 7).
        store.location.apply(update(a)),
      ]);
      assert.deepEqual(results[0], {
        status: 'fulfilled',
        value: { ok: true, bindings: [{ ...a, cseq: 1 }] },
      });
      assert.deepEqual(results[1], {
        status: 'fulfilled',
        value: { ok: true, bindings: [{ ...b, cseq: 1 }] },
      });
      assert.equal(results[2]!.status, 'rejected');
      assert.deepEqual(results[3], {
        status: 'fulfilled',
        value: { ok: false, reason: 'out-of-order' },
      });
      assert.equal((await store.location.lookup('sip:a@example.com', 0)).length, 1);
      assert.equal((await store.location.lookup('sip:b@example.com', 0)).length, 1);
      assert.equal((await store.location.lookup('sip:c@example.com', 0)).length, 0);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openSqliteStore commitWindowMs: updates of several turns committed together', () => {
  it('holds updates made within the window, then commits and answers them together', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-window-'));
    const store = openSqliteStore(dir, { nonBlocking: true, commitWindowMs: 60 });
    const other = new Database(join(dir, DATABASE_FILE), { readonly: true });
    const rows = other.prepare<[], number>('SELECT count(*) FROM bindings').pluck();
    try {
      const update = (n: number): Parameters<typeof store.location.apply>[0] => {
        const b = binding({ aor: `sip:u${n}@example.com`, contact: `sip:u${n}@192.0.2.1` });
        return { aor: b.aor, nowMs: 0, callId: b.callId, cseq: 1, changes: [b] };
      };
      const t0 = performance.now();
      const answered: number[] = [];
      const first = store.location.apply(update(1)).then(() => answered.push(1));
      // A later turn, within the window.
      await new Promise((r) => setTimeout(r, 10));
      const second = store.location.apply(update(2)).then(() => answered.push(2));
      // Nothing committed yet: another connection sees no row.
      assert.equal(rows.get(), 0);
      assert.deepEqual(answered, []);
      await Promise.all([first, second]);
      assert.ok(performance.now() - t0 >= 55, 'answered before the window closed');
      assert.deepEqual(answered, [1, 2]);
      assert.equal(rows.get(), 2);
    } finally {
      other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openSqliteStore location.apply: the bindings it returns', () => {
  it('are what lookup reads afterwards, in its order (q descending, then contact as UTF-8)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-apply-'));
    const store = openSqliteStore(dir, { nonBlocking: true });
    try {
      const aor = 'sip:multi@example.com';
      // Contacts whose UTF-16 and UTF-8 orders differ (U+FF5E sorts before U+1F600 in
      // UTF-16, after it in UTF-8) besides plain ones; q values tie and differ.
      const contacts = [
        'sip:b@192.0.2.1',
        'sip:a@192.0.2.1',
        'sip:A@192.0.2.1',
        'sip:\u{1F600}@192.0.2.1',
        'sip:\uFF5E@192.0.2.1',
        'sip:c@192.0.2.1;transport=tcp',
      ];
      const qs = [1, 0.5, 1, 0.5, 0.7, 0];
      let cseq = 0;
      // Deterministic steps: add, refresh with another q, remove (expires 0), remove all.
      for (let step = 0; step < 40; step++) {
        const pick = (k: number): string => contacts[(step * 7 + k * 3) % contacts.length]!;
        const changes: (Binding | string)[] = [];
        for (let k = 0; k < 1 + (step % 3); k++) {
          const contact = pick(k);
          if (changes.some((c) => (typeof c === 'string' ? c : c.contact) === contact)) continue;
          changes.push(
            (step + k) % 5 === 4
              ? contact
              : binding({
                  aor,
                  contact,
                  q: qs[(step + k) % qs.length]!,
                  callId: 'cm',
                  cseq: cseq + 1,
                }),
          );
        }
        cseq++;
        const r = await store.location.apply(
          step % 13 === 12
            ? { aor, nowMs: 0, callId: 'cm', cseq, removeAll: true }
            : { aor, nowMs: 0, callId: 'cm', cseq, changes },
        );
        assert.equal(r.ok, true, `step ${step}`);
        assert.deepEqual(r.ok && r.bindings, await store.location.lookup(aor, 0), `step ${step}`);
      }
      // The two whose orders differ, at the same q: SQLite's order, not JavaScript's.
      const both = await store.location.apply({
        aor,
        nowMs: 0,
        callId: 'cm',
        cseq: ++cseq,
        removeAll: false,
        changes: [
          binding({ aor, contact: contacts[3]!, q: 0.9, callId: 'cm', cseq }),
          binding({ aor, contact: contacts[4]!, q: 0.9, callId: 'cm', cseq }),
        ],
      });
      const order = (await store.location.lookup(aor, 0)).map((b) => b.contact);
      assert.ok(order.indexOf(contacts[4]!) < order.indexOf(contacts[3]!));
      assert.deepEqual(both.ok && both.bindings.map((b) => b.contact), order);
      // An expired binding is neither returned nor checked.
      const gone = await store.location.apply({
        aor,
        nowMs: 20_000,
        callId: 'cm',
        cseq: 1,
        changes: [binding({ aor, contact: 'sip:late@192.0.2.1', expiresAt: 30_000, callId: 'cm' })],
      });
      assert.deepEqual(gone.ok && gone.bindings.map((b) => b.contact), ['sip:late@192.0.2.1']);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openSqliteStore changeCheckIntervalMs', () => {
  it('looks for other connections’ changes at most that often', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-interval-'));
    const store = openSqliteStore(dir, { changeCheckIntervalMs: 200 });
    const other = openSqliteStore(dir);
    try {
      assert.equal(await store.domains.has('example.com'), false);
      await other.domains.add('example.com');
      // Within the interval the cached answer stands...
      assert.equal(await store.domains.has('example.com'), false);
      await new Promise((r) => setTimeout(r, 250));
      // ...after it, the change is seen.
      assert.equal(await store.domains.has('example.com'), true);
    } finally {
      await other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openSqliteStore location.lookup: remembered bindings', () => {
  it('sees its own changes and another connection’s new bindings at the next lookup, whatever the check interval', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-location-'));
    // A long interval for users and domains: bindings must not wait for it.
    const store = openSqliteStore(dir, { changeCheckIntervalMs: 60_000 });
    const other = openSqliteStore(dir);
    const alice = 'sip:alice@example.com';
    const contacts = async (s: SqliteStore, now: number): Promise<string[]> =>
      (await s.location.lookup(alice, now)).map((b) => b.contact);
    try {
      assert.deepEqual(await contacts(store, 0), []);
      // Another worker registers alice: the next lookup here finds the binding.
      await other.location.upsert(binding({ contact: 'sip:a@192.0.2.1', expiresAt: 1000 }));
      assert.deepEqual(await contacts(store, 0), ['sip:a@192.0.2.1']);
      // This connection's own writes, each way in.
      await store.location.upsert(binding({ contact: 'sip:b@192.0.2.2', q: 0.5, expiresAt: 2000 }));
      assert.deepEqual(await contacts(store, 0), ['sip:a@192.0.2.1', 'sip:b@192.0.2.2']);
      const applied = await store.location.apply({
        aor: alice,
        callId: 'c2',
        cseq: 1,
        nowMs: 0,
        changes: [binding({ contact: 'sip:c@192.0.2.3', q: 0.7, expiresAt: 3000, callId: 'c2' })],
      });
      assert.equal(applied.ok, true);
      assert.deepEqual(await contacts(store, 0), [
        'sip:a@192.0.2.1',
        'sip:c@192.0.2.3',
        'sip:b@192.0.2.2',
      ]);
      // The remembered rows are filtered by each lookup's own time.
      assert.deepEqual(await contacts(store, 1000), ['sip:c@192.0.2.3', 'sip:b@192.0.2.2']);
      assert.deepEqual(await contacts(store, 2500), ['sip:c@192.0.2.3']);
      assert.equal(await store.location.remove(alice, 'sip:c@192.0.2.3'), true);
      assert.deepEqual(await contacts(store, 0), ['sip:a@192.0.2.1', 'sip:b@192.0.2.2']);
      assert.equal(await store.location.removeAll(alice), 2);
      assert.deepEqual(await contacts(store, 0), []);
      assert.deepEqual(await contacts(other, 0), []);
    } finally {
      await other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('another connection’s removal or replacement is seen within the check interval', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-location-'));
    const store = openSqliteStore(dir, { changeCheckIntervalMs: 200 });
    const other = openSqliteStore(dir);
    const alice = 'sip:alice@example.com';
    const contacts = async (s: SqliteStore, now: number): Promise<string[]> =>
      (await s.location.lookup(alice, now)).map((b) => b.contact);
    try {
      await other.location.upsert(binding({ contact: 'sip:a@192.0.2.1', expiresAt: 1000 }));
      assert.deepEqual(await contacts(store, 0), ['sip:a@192.0.2.1']);
      await other.location.removeAll(alice);
      await other.location.upsert(binding({ contact: 'sip:d@192.0.2.4', expiresAt: 1000 }));
      // Within the interval the remembered binding may stand (a call a moment earlier would
      // have gone there too)...
      assert.deepEqual(await contacts(store, 0), ['sip:a@192.0.2.1']);
      await new Promise((r) => setTimeout(r, 250));
      // ...after it, the change is seen.
      assert.deepEqual(await contacts(store, 0), ['sip:d@192.0.2.4']);
      // A remembered binding that has expired since is no answer: the store looks at once.
      await other.location.upsert(binding({ contact: 'sip:e@192.0.2.5', expiresAt: 5000 }));
      assert.deepEqual(await contacts(store, 2000), ['sip:e@192.0.2.5']);
    } finally {
      await other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openSqliteStore messages (kept instant messages, RFC 3428 store-and-forward)', () => {
  const text = (s: string): Uint8Array => new TextEncoder().encode(s);
  const message = (aor: string, body: string, receivedAt = 1000, ttl = 60_000) => ({
    aor,
    from: '<sip:alice@example.com>',
    to: `<${aor}>`,
    contentType: 'text/plain;charset=UTF-8',
    body: text(body),
    receivedAt,
    expiresAt: receivedAt + ttl,
  });

  it('keeps messages in order, within a quota, across reopening, until removed or expired', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-msg-'));
    let store = openSqliteStore(dir);
    try {
      const bob = 'sip:bob@example.com';
      const r1 = await store.messages.enqueue(message(bob, 'one'), 2);
      const r2 = await store.messages.enqueue(message(bob, 'two'), 2);
      assert.ok(r1.ok && r2.ok && r2.id > r1.id);
      assert.deepEqual(await store.messages.enqueue(message(bob, 'three'), 2), {
        ok: false,
        reason: 'quota',
      });
      await store.messages.enqueue(message('sip:carol@example.com', 'short', 1000, 10), 5);
      await store.close();
      store = openSqliteStore(dir);
      const kept = await store.messages.list(bob, 2000);
      assert.deepEqual(
        kept.map((m) => new TextDecoder().decode(m.body)),
        ['one', 'two'],
      );
      assert.equal(kept[0]!.contentType, 'text/plain;charset=UTF-8');
      assert.equal(kept[0]!.from, '<sip:alice@example.com>');
      assert.equal(await store.messages.count(bob, 2000), 2);
      // carol's expired at 1010: not listed, not counted, not pending, purged.
      assert.equal(await store.messages.count('sip:carol@example.com', 1005), 1);
      assert.equal(await store.messages.count('sip:carol@example.com', 2000), 0);
      assert.deepEqual(await store.messages.list('sip:carol@example.com', 2000), []);
      assert.deepEqual(await store.messages.pendingAors(2000), [bob]);
      assert.equal(await store.messages.purgeExpired(2000), 1);
      assert.equal(await store.messages.remove(kept[0]!.id), true);
      assert.equal(await store.messages.remove(kept[0]!.id), false);
      assert.equal((await store.messages.list(bob, 2000)).length, 1);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('count: a user with none is remembered until a message is kept for it, by this or another connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-msg-none-'));
    const a = openSqliteStore(dir);
    const b = openSqliteStore(dir);
    try {
      const bob = 'sip:bob@example.com';
      assert.equal(await a.messages.count(bob, 1000), 0);
      await b.messages.enqueue(message(bob, 'one', 1000, 60_000), 10);
      assert.equal(await a.messages.count(bob, 1000), 1);
      // Expired: none at 61 s; an earlier time is not answered from that.
      assert.equal(await a.messages.count(bob, 61_000), 0);
      assert.equal(await a.messages.count(bob, 2000), 1);
      // Kept through this connection: seen at once.
      const carol = 'sip:carol@example.com';
      assert.equal(await a.messages.count(carol, 1000), 0);
      await a.messages.enqueue(message(carol, 'hi', 1000, 60_000), 10);
      assert.equal(await a.messages.count(carol, 1000), 1);
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leases all of a user’s messages to one deliverer at a time, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-store-claim-'));
    const a = openSqliteStore(dir);
    const b = openSqliteStore(dir); // another process delivering too
    try {
      const bob = 'sip:bob@example.com';
      for (const s of ['1', '2', '3']) await a.messages.enqueue(message(bob, s), 10);
      const claimed = await a.messages.claim(bob, 2000, 5000, 10);
      assert.deepEqual(
        claimed.map((m) => new TextDecoder().decode(m.body)),
        ['1', '2', '3'],
      );
      // While the lease runs nobody else gets any of bob's messages, nor sees bob pending.
      assert.deepEqual(await b.messages.claim(bob, 2500, 5000, 10), []);
      assert.deepEqual(await b.messages.pendingAors(2500), []);
      // The first is delivered, the rest released: the next claim starts with '2'.
      await a.messages.remove(claimed[0]!.id);
      await a.messages.release(claimed[1]!.id);
      await a.messages.release(claimed[2]!.id);
      const again = await b.messages.claim(bob, 3000, 5000, 1);
      assert.deepEqual(
        again.map((m) => new TextDecoder().decode(m.body)),
        ['2'],
      );
      // A deliverer that died: its lease runs out and the messages wait again.
      assert.deepEqual(await a.messages.claim(bob, 4000, 5000, 10), []);
      const after = await a.messages.claim(bob, 8001, 5000, 10);
      assert.deepEqual(
        after.map((m) => new TextDecoder().decode(m.body)),
        ['2', '3'],
      );
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
