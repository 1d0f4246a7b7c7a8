/**
 * The SQLite adapter's SubscriptionStore and PresenceRuleStore (RFC 6665 subscriptions the
 * server notifies, RFC 3856 §5.1 watcher rules): create within the limits, get, update,
 * remove; the winfo counter moving with presence subscriptions; `dirty` (counter moved,
 * expired, recheck due); purging terminated rows; rules bumping the presence counter; two
 * connections on one database (workers).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { StoredSubscription } from '../../src/store/index.ts';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

const ALICE = 'sip:alice@example.com';
const LIMITS = { perWatcher: 2, perResource: 3 };
const NOW = 1_000_000;

function subscription(over: Partial<StoredSubscription> = {}): StoredSubscription {
  return {
    callId: 'c1',
    localTag: 'l1',
    remoteTag: 'r1',
    aor: ALICE,
    event: 'presence',
    watcher: 'sip:bob@example.com',
    localUri: `<${ALICE}>`,
    remoteUri: '<sip:bob@example.com>',
    remoteTarget: 'sip:bob@192.0.2.1:5060',
    routeSet: [],
    flow: 'udp:192.0.2.1:5060',
    contentType: 'application/pidf+xml',
    status: 'active',
    localSeq: 0,
    remoteSeq: 1,
    createdAt: NOW,
    expiresAt: NOW + 600_000,
    notifiedVersion: 0,
    notifiedHash: '',
    notifyCount: 0,
    recheckAt: Number.MAX_SAFE_INTEGER,
    ...over,
  };
}

describe('openSqliteStore subscriptions and presence rules', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-subscriptions-store-'));
    store = openSqliteStore(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const winfo = () => store.presence.version({ aor: ALICE, event: 'presence.winfo' });

  it('create, get, update, remove; the winfo counter moves with presence subscriptions', async () => {
    const s = subscription({ watcherName: 'Bob', routeSet: ['<sip:p1;lr>'], eventId: '7' });
    assert.deepEqual(await store.subscriptions.create(s, LIMITS, NOW), { ok: true });
    assert.deepEqual(await store.subscriptions.get(s), s);
    assert.equal(await winfo(), 1);
    assert.equal(
      await store.subscriptions.update(s, { localSeq: 1, notifyCount: 1, flow: null }),
      true,
    );
    const got = await store.subscriptions.get(s);
    assert.equal(got?.localSeq, 1);
    assert.equal(got?.flow, undefined);
    assert.equal(await winfo(), 1, 'no status change, no winfo change');
    await store.subscriptions.update(s, { status: 'terminated', reason: 'timeout' });
    assert.equal(await winfo(), 2);
    assert.equal((await store.subscriptions.get(s))?.reason, 'timeout');
    assert.equal(await store.subscriptions.remove(s), true);
    assert.equal(await store.subscriptions.remove(s), false);
    assert.equal(await store.subscriptions.update(s, { localSeq: 2 }), false);
    assert.equal(await winfo(), 2, 'a terminated one leaving changes no list');
    // A winfo subscription is not itself a watcher of presence.
    await store.subscriptions.create(
      subscription({ callId: 'w', event: 'presence.winfo', watcher: ALICE }),
      LIMITS,
      NOW,
    );
    assert.equal(await winfo(), 2);
  });

  it('limits per watcher and per resource count live subscriptions only', async () => {
    const mk = (i: number, over: Partial<StoredSubscription> = {}) =>
      store.subscriptions.create(subscription({ callId: `c${i}`, ...over }), LIMITS, NOW);
    assert.equal((await mk(1)).ok, true);
    assert.equal((await mk(2)).ok, true);
    assert.deepEqual(await mk(3), { ok: false, reason: 'watcher-limit' });
    assert.equal((await mk(4, { watcher: 'sip:carol@example.com' })).ok, true);
    assert.deepEqual(await mk(5, { watcher: 'sip:dave@example.com' }), {
      ok: false,
      reason: 'resource-limit',
    });
    await store.subscriptions.update(
      { callId: 'c1', localTag: 'l1', remoteTag: 'r1' },
      { status: 'terminated' },
    );
    assert.equal((await mk(6, { watcher: 'sip:dave@example.com' })).ok, true);
    // An expired one no longer counts either.
    assert.equal(
      (await mk(7, { watcher: 'sip:erin@example.com', aor: 'sip:x@example.com', expiresAt: NOW }))
        .ok,
      true,
    );
    assert.equal(
      (await mk(8, { watcher: 'sip:erin@example.com', aor: 'sip:x@example.com', expiresAt: NOW }))
        .ok,
      true,
    );
    assert.equal(
      (await mk(9, { watcher: 'sip:erin@example.com', aor: 'sip:x@example.com' })).ok,
      true,
    );
    assert.equal(await store.subscriptions.countFor(ALICE), 3, 'c1 is terminated');
    assert.deepEqual(
      (await store.subscriptions.listFor(ALICE, 'presence')).map((s) => s.callId),
      ['c1', 'c2', 'c4', 'c6'],
    );
  });

  it('dirty: a counter past notifiedVersion, an expiry, a recheck due; never terminated ones', async () => {
    const key = { aor: ALICE, event: 'presence' };
    await store.subscriptions.create(subscription({ callId: 'fresh' }), LIMITS, NOW);
    await store.subscriptions.create(
      subscription({ callId: 'exp', watcher: 'sip:c@example.com', expiresAt: NOW }),
      LIMITS,
      NOW - 1,
    );
    await store.subscriptions.create(
      subscription({ callId: 'rc', watcher: 'sip:d@example.com', recheckAt: NOW }),
      LIMITS,
      NOW,
    );
    await store.subscriptions.create(
      subscription({
        callId: 'done',
        watcher: 'sip:e@example.com',
        status: 'terminated',
        expiresAt: NOW - 1,
      }),
      { perWatcher: 9, perResource: 9 },
      NOW,
    );
    const ids = async (since = 0) => {
      const d = await store.subscriptions.dirty(NOW, since);
      return { ids: d.due.map((s) => s.callId).sort(), seq: d.seq };
    };
    const first = await ids();
    assert.deepEqual(first.ids, ['exp', 'rc']);
    await store.presence.touch(key);
    const second = await ids(first.seq);
    assert.deepEqual(second.ids, ['exp', 'fresh', 'rc']);
    assert.ok(second.seq > first.seq, 'the touch stamped the pair with the next sequence value');
    // A pair stamped before `since` is not asked about again.
    assert.deepEqual((await ids(second.seq)).ids, ['exp', 'rc']);
    // Another connection's bump is seen by the next poll (the sequence is in the database).
    const other = openSqliteStore(dir);
    try {
      await other.presence.touch(key);
      await other.presenceRules.set({ aor: ALICE, watcher: 'sip:z@x.test', action: 'block' });
    } finally {
      await other.close();
    }
    const third = await ids(second.seq);
    assert.deepEqual(third.ids, ['exp', 'fresh', 'rc']);
    assert.equal(third.seq, second.seq + 2);
    await store.subscriptions.update(
      { callId: 'fresh', localTag: 'l1', remoteTag: 'r1' },
      { notifiedVersion: await store.presence.version(key) },
    );
    assert.deepEqual((await ids()).ids, ['exp', 'rc'], 'notified: no longer due');
    assert.equal(await store.subscriptions.purgeTerminated(NOW), 1);
    assert.equal(
      await store.subscriptions.get({ callId: 'done', localTag: 'l1', remoteTag: 'r1' }),
      undefined,
    );
  });

  it('rules: set, replace, get, list, remove; each change bumps the user’s presence counter', async () => {
    const key = { aor: ALICE, event: 'presence' };
    const other = openSqliteStore(dir);
    try {
      await store.presenceRules.set({
        aor: ALICE,
        watcher: 'sip:zed@elsewhere.test',
        action: 'confirm',
      });
      assert.equal(await other.presence.version(key), 1);
      await store.presenceRules.set({
        aor: ALICE,
        watcher: 'sip:zed@elsewhere.test',
        action: 'allow',
      });
      await store.presenceRules.set({
        aor: ALICE,
        watcher: 'sip:bob@example.com',
        action: 'block',
      });
      assert.deepEqual(await other.presenceRules.get(ALICE, 'sip:zed@elsewhere.test'), {
        aor: ALICE,
        watcher: 'sip:zed@elsewhere.test',
        action: 'allow',
      });
      assert.deepEqual(
        (await other.presenceRules.list(ALICE)).map((r) => `${r.watcher} ${r.action}`),
        ['sip:bob@example.com block', 'sip:zed@elsewhere.test allow'],
      );
      assert.equal(await other.presence.version(key), 3);
      assert.equal(await store.presenceRules.remove(ALICE, 'sip:bob@example.com'), true);
      assert.equal(await store.presenceRules.remove(ALICE, 'sip:bob@example.com'), false);
      assert.equal(await other.presence.version(key), 4);
    } finally {
      await other.close();
    }
  });
});

describe('openSqliteStore nonBlocking: subscriptions.update commits a turn’s updates together', () => {
  it('gives each its own result, applies them in order, and one failing fails alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-subscriptions-batch-'));
    const store = openSqliteStore(dir, { nonBlocking: true });
    try {
      const ids = ['a', 'b', 'c'].map((k) => ({ callId: `c-${k}`, localTag: 'l', remoteTag: 'r' }));
      for (const [i, id] of ids.entries()) {
        const r = await store.subscriptions.create(
          subscription({ ...id, watcher: `sip:w${i}@example.com` }),
          { perWatcher: 10, perResource: 10 },
          NOW,
        );
        assert.deepEqual(r, { ok: true });
      }
      // Submitted in one turn: committed by one transaction on the next.
      const results = await Promise.allSettled([
        store.subscriptions.update(ids[0]!, { localSeq: 1, notifiedHash: 'h1' }),
        store.subscriptions.update(ids[1]!, { localSeq: 7 }),
        // A value the table refuses (status NOT NULL): this one fails, alone.
        store.subscriptions.update(ids[2]!, { status: null as never }),
        // The same row again, after the first: applied in order.
        store.subscriptions.update(ids[0]!, { localSeq: 2 }),
        // No such subscription.
        store.subscriptions.update(
          { callId: 'gone', localTag: 'l', remoteTag: 'r' },
          { localSeq: 1 },
        ),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
      );
      assert.deepEqual(
        results.map((r) => (r.status === 'fulfilled' ? r.value : 'error')),
        [true, true, 'error', true, false],
      );
      const a = await store.subscriptions.get(ids[0]!);
      assert.equal(a?.localSeq, 2);
      assert.equal(a?.notifiedHash, 'h1');
      assert.equal((await store.subscriptions.get(ids[1]!))?.localSeq, 7);
      assert.equal((await store.subscriptions.get(ids[2]!))?.status, 'active');
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openSqliteStore subscriptions.countFor: users with none are remembered', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-subscriptions-none-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('sees its own and another connection’s new or revived subscriptions at the next count', async () => {
    const a = openSqliteStore(dir);
    const b = openSqliteStore(dir);
    try {
      // None remembered, for the event and for any event.
      assert.equal(await a.subscriptions.countFor(ALICE, 'dialog'), 0);
      assert.equal(await a.subscriptions.countFor(ALICE), 0);
      // Another connection subscribes (a worker): seen by the next count.
      await b.subscriptions.create(subscription({ event: 'dialog' }), LIMITS, NOW);
      assert.equal(await a.subscriptions.countFor(ALICE, 'dialog'), 1);
      assert.equal(await a.subscriptions.countFor(ALICE), 1);
      assert.equal(await a.subscriptions.countFor(ALICE, 'presence'), 0);
      // This connection subscribes: seen at once (its own commits move no data_version).
      await a.subscriptions.create(subscription({ callId: 'c2' }), LIMITS, NOW);
      assert.equal(await a.subscriptions.countFor(ALICE, 'presence'), 1);
      // Terminated: none again; revived by the other connection: counted again.
      const id = { callId: 'c2', localTag: 'l1', remoteTag: 'r1' };
      await a.subscriptions.update(id, { status: 'terminated' });
      assert.equal(await a.subscriptions.countFor(ALICE, 'presence'), 0);
      await b.subscriptions.update(id, { status: 'active' });
      assert.equal(await a.subscriptions.countFor(ALICE, 'presence'), 1);
      // Revived by this connection.
      await a.subscriptions.update(id, { status: 'terminated' });
      assert.equal(await a.subscriptions.countFor(ALICE, 'presence'), 0);
      await a.subscriptions.update(id, { status: 'pending' });
      assert.equal(await a.subscriptions.countFor(ALICE, 'presence'), 1);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('unwatched answers at once (no promise, also in nonBlocking mode) what countFor says', async () => {
    const a = openSqliteStore(dir, { nonBlocking: true });
    const b = openSqliteStore(dir);
    try {
      const unwatched = a.subscriptions.unwatched!;
      assert.equal(unwatched(ALICE, 'dialog'), true);
      await b.subscriptions.create(subscription({ event: 'dialog' }), LIMITS, NOW);
      assert.equal(unwatched(ALICE, 'dialog'), false, 'another connection’s subscription');
      assert.equal(unwatched(ALICE, 'presence'), true);
      assert.equal(await a.subscriptions.countFor(ALICE, 'presence'), 0);
      await a.subscriptions.update(
        { callId: 'c1', localTag: 'l1', remoteTag: 'r1' },
        { status: 'terminated' },
      );
      assert.equal(unwatched(ALICE, 'dialog'), true, 'terminated counts as none');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('with changeCheckIntervalMs, another connection’s subscription is seen that much later', async () => {
    const a = openSqliteStore(dir, { changeCheckIntervalMs: 200 });
    const b = openSqliteStore(dir);
    try {
      assert.equal(await a.subscriptions.countFor(ALICE, 'dialog'), 0);
      await b.subscriptions.create(subscription({ event: 'dialog' }), LIMITS, NOW);
      // The remembered "none" stands within the interval (no question to the database)...
      assert.equal(await a.subscriptions.countFor(ALICE, 'dialog'), 0);
      await new Promise((r) => setTimeout(r, 250));
      // ...and is forgotten after it.
      assert.equal(await a.subscriptions.countFor(ALICE, 'dialog'), 1);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
