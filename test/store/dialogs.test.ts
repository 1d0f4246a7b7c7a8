/**
 * The SQLite adapter's DialogStateStore (users' call states for the RFC 4235 dialog package):
 * a write inserts or updates the (user, dialog) row and bumps the user's `dialog` counter,
 * stamped with the change sequence, so that a `dirty` poll on another connection (a worker
 * owning the watcher's subscription) finds the subscription; expired rows are not listed and
 * are purged without moving the counter; countFor by event (who watches a user's calls).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { StoredDialogState, StoredSubscription } from '../../src/store/index.ts';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

const BOB = 'sip:bob@example.com';
const NOW = 1_000_000;

const row = (over: Partial<StoredDialogState> = {}): StoredDialogState => ({
  aor: BOB,
  id: 'd1',
  callId: 'call-1',
  remoteTag: 'at',
  direction: 'recipient',
  state: 'trying',
  localIdentity: BOB,
  remoteIdentity: 'sip:alice@example.com',
  remoteDisplay: 'Alice',
  createdAt: NOW,
  updatedAt: NOW,
  expiresAt: NOW + 60_000,
  ...over,
});

const subscription = (): StoredSubscription => ({
  callId: 'sub-1',
  localTag: 'l1',
  remoteTag: 'r1',
  aor: BOB,
  event: 'dialog',
  watcher: 'sip:carol@example.com',
  localUri: `<${BOB}>`,
  remoteUri: '<sip:carol@example.com>',
  remoteTarget: 'sip:carol@192.0.2.1:5060',
  routeSet: [],
  contentType: 'application/dialog-info+xml',
  status: 'active',
  localSeq: 1,
  remoteSeq: 1,
  createdAt: NOW,
  expiresAt: NOW + 600_000,
  notifiedVersion: 0,
  notifiedHash: '',
  notifyCount: 1,
  recheckAt: Number.MAX_SAFE_INTEGER,
});

describe('openSqliteStore dialog states (RFC 4235)', () => {
  let dir: string;
  let store: SqliteStore;
  let other: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-dialogs-store-'));
    store = openSqliteStore(dir);
    other = openSqliteStore(dir);
  });
  afterEach(async () => {
    await store.close();
    await other.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const version = () => store.presence.version({ aor: BOB, event: 'dialog' });

  it('put inserts, then updates the same (user, id); each bumps the dialog counter', async () => {
    await store.dialogs.put(row());
    assert.equal(await version(), 1);
    await store.dialogs.put(
      row({ state: 'confirmed', localTag: 'bt', updatedAt: NOW + 5, expiresAt: NOW + 9_000 }),
    );
    assert.equal(await version(), 2);
    const list = await other.dialogs.list(BOB, NOW);
    assert.deepEqual(list, [
      row({ state: 'confirmed', localTag: 'bt', updatedAt: NOW + 5, expiresAt: NOW + 9_000 }),
    ]);
    await store.dialogs.put(
      row({
        id: 'd2',
        callId: 'call-2',
        state: 'terminated',
        event: 'rejected',
        code: 486,
        createdAt: NOW + 1,
      }),
    );
    const both = await store.dialogs.list(BOB, NOW);
    assert.deepEqual(
      both.map((d) => [d.id, d.state, d.event, d.code]),
      [
        ['d1', 'confirmed', undefined, undefined],
        ['d2', 'terminated', 'rejected', 486],
      ],
    );
  });

  it('a write by one connection makes the watcher’s subscription dirty for the other', async () => {
    const sub = subscription();
    await other.subscriptions.create(sub, { perWatcher: 10, perResource: 10 }, NOW);
    const before = await other.subscriptions.dirty(NOW, 0);
    assert.deepEqual(before.due, []);
    await store.dialogs.put(row());
    const after = await other.subscriptions.dirty(NOW, before.seq);
    assert.deepEqual(
      after.due.map((s) => s.callId),
      ['sub-1'],
    );
    assert.ok(after.seq > before.seq);
  });

  it('expired rows are not listed and are purged without moving the counter', async () => {
    await store.dialogs.put(row({ expiresAt: NOW + 10 }));
    await store.dialogs.put(row({ id: 'd2', expiresAt: NOW + 1_000 }));
    const v = await version();
    assert.deepEqual(
      (await store.dialogs.list(BOB, NOW + 10)).map((d) => d.id),
      ['d2'],
    );
    assert.equal(await store.dialogs.purgeExpired(NOW + 10), 1);
    assert.equal(await version(), v);
    assert.equal(await store.dialogs.purgeExpired(NOW + 1_000), 1);
    assert.deepEqual(await store.dialogs.list(BOB, 0), []);
  });

  it('countFor by event: who watches a user’s calls', async () => {
    await store.subscriptions.create(subscription(), { perWatcher: 10, perResource: 10 }, NOW);
    assert.equal(await store.subscriptions.countFor(BOB, 'dialog'), 1);
    assert.equal(await store.subscriptions.countFor(BOB, 'presence'), 0);
    assert.equal(await store.subscriptions.countFor(BOB), 1);
  });
});
