/**
 * The SQLite adapter's PresenceStore (RFC 3903 event state): insert, get, list, refresh
 * and modify (each under a new entity-tag, the old one gone), remove, expiry and purge,
 * the per-(AOR, event) change counter, and two connections on one database (workers).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Publication } from '../../src/store/index.ts';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

const ALICE = { aor: 'sip:alice@example.com', event: 'presence' };
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (p: Publication | undefined): string => new TextDecoder().decode(p?.body);

function publication(over: Partial<Publication> = {}): Publication {
  return {
    ...ALICE,
    etag: 'e1',
    contentType: 'application/pidf+xml',
    body: text('<presence/>'),
    publishedAt: 1000,
    expiresAt: 61_000,
    ...over,
  };
}

describe('openSqliteStore presence (published event state, RFC 3903)', () => {
  let dir: string;
  let store: SqliteStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-presence-store-'));
    store = openSqliteStore(dir);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('insert, get and list: per AOR and event, oldest first, live only', async () => {
    await store.presence.insert(publication());
    await store.presence.insert(publication({ etag: 'e2', publishedAt: 2000, body: text('2') }));
    await store.presence.insert(publication({ etag: 'e3', event: 'dialog' }));
    await store.presence.insert(publication({ etag: 'e4', aor: 'sip:bob@example.com' }));
    assert.deepEqual(await store.presence.get(ALICE, 'e1', 1500), publication());
    assert.equal(await store.presence.get(ALICE, 'e3', 1500), undefined); // another event
    assert.equal(await store.presence.get(ALICE, 'e1', 61_000), undefined); // expired
    assert.deepEqual(
      (await store.presence.list(ALICE, 3000)).map((p) => p.etag),
      ['e1', 'e2'],
    );
    assert.deepEqual(await store.presence.list(ALICE, 61_000), []);
  });

  it('refresh: new expiry and entity-tag, same state, version unchanged', async () => {
    await store.presence.insert(publication());
    const v = await store.presence.version(ALICE);
    const r = await store.presence.refresh(ALICE, 'e1', 'e1b', 90_000, 5000);
    assert.deepEqual(r, publication({ etag: 'e1b', expiresAt: 90_000 }));
    assert.equal(await store.presence.get(ALICE, 'e1', 5000), undefined);
    assert.deepEqual(await store.presence.get(ALICE, 'e1b', 5000), r);
    assert.equal(await store.presence.version(ALICE), v);
    // An unknown or expired entity-tag is not refreshed (the PUBLISH gets 412).
    assert.equal(await store.presence.refresh(ALICE, 'e1', 'x', 99_000, 5000), undefined);
    assert.equal(await store.presence.refresh(ALICE, 'e1b', 'x', 99_000, 90_000), undefined);
  });

  it('modify: new body, expiry and entity-tag; version bumped', async () => {
    await store.presence.insert(publication());
    const v = await store.presence.version(ALICE);
    const change = { contentType: 'application/pidf+xml', body: text('away'), expiresAt: 70_000 };
    const m = await store.presence.modify(ALICE, 'e1', 'e1c', change, 7000);
    assert.equal(m?.etag, 'e1c');
    assert.equal(m?.publishedAt, 7000);
    assert.equal(decode(await store.presence.get(ALICE, 'e1c', 7000)), 'away');
    assert.equal(await store.presence.get(ALICE, 'e1', 7000), undefined);
    assert.equal(await store.presence.version(ALICE), v + 1);
    assert.equal(await store.presence.modify(ALICE, 'e1', 'y', change, 7000), undefined);
  });

  it('remove and purgeExpired bump the version; the counter starts at 0', async () => {
    assert.equal(await store.presence.version(ALICE), 0);
    await store.presence.insert(publication());
    await store.presence.insert(publication({ etag: 'e2', expiresAt: 3000 }));
    assert.equal(await store.presence.version(ALICE), 2);
    assert.equal(await store.presence.remove(ALICE, 'e1', 2000), true);
    assert.equal(await store.presence.remove(ALICE, 'e1', 2000), false);
    assert.equal(await store.presence.version(ALICE), 3);
    assert.deepEqual(await store.presence.purgeExpired(2000), []);
    assert.deepEqual(await store.presence.purgeExpired(3000), [ALICE]);
    assert.equal(await store.presence.version(ALICE), 4);
    assert.deepEqual(await store.presence.list(ALICE, 0), []);
  });

  it('is shared by two connections (workers) and kept across reopening', async () => {
    const other = openSqliteStore(dir, { nonBlocking: true });
    try {
      await store.presence.insert(publication());
      const r = await other.presence.refresh(ALICE, 'e1', 'e1b', 80_000, 2000);
      assert.equal(r?.etag, 'e1b');
      // The first connection's entity-tag is stale now.
      assert.equal(await store.presence.refresh(ALICE, 'e1', 'z', 80_000, 2000), undefined);
      assert.equal(await store.presence.version(ALICE), await other.presence.version(ALICE));
    } finally {
      await other.close();
    }
    await store.close();
    store = openSqliteStore(dir);
    assert.equal((await store.presence.get(ALICE, 'e1b', 2000))?.expiresAt, 80_000);
  });
});
