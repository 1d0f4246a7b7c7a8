/**
 * Who may watch (RFC 3856 §5.1), who watches (RFC 3857/3858 presence.winfo), and several
 * processes on one store, in one process: buildServices servers on the SQLite store, the
 * `switchboard presence` command run in-process on the same data directory, watchers on their
 * own stacks (support.ts).
 *
 * - a watcher from another domain is pending (NOTIFY without body) until the user allows it
 *   with `presence policy --allow`; `--block` then ends it with reason=rejected; a blocked
 *   watcher's SUBSCRIBE gets 403; a `confirm` rule makes a colleague pending;
 * - `presence watchers` lists watchers with their status;
 * - the user's presence.winfo subscription gets the full watcher list, then a NOTIFY for each
 *   change (a new watcher, one leaving), with version counting up from 0;
 * - two servers on one store (two workers): a change made on the one that does not own the
 *   subscription's Call-ID is notified once, by the owner, at its next poll.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { run } from '../../../src/cli/main.ts';
import type { WatcherJson } from '../../../src/cli/presence.ts';
import {
  DOMAIN,
  basics,
  bodyOf,
  pidf,
  seed,
  sleep,
  startPresenceServer,
  stateOf,
  Watcher,
  type PresenceServer,
} from './support.ts';

const ALICE = `sip:alice@${DOMAIN}`;

async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(args, {
    stdout: { write: (s: string) => ((out += s), true) },
    stderr: { write: (s: string) => ((err += s), true) },
    stdin: Readable.from([]),
  });
  return { code, out, err };
}

describe('presence: watcher policy and presence.winfo (RFC 3856 §5.1, RFC 3857)', () => {
  let dir: string;
  let server: PresenceServer;
  let alice: Watcher;
  let bob: Watcher;
  let zed: Watcher;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-presence-policy-'));
    await seed(dir, ['alice', 'bob', 'carol']);
    server = await startPresenceServer(dir);
    alice = await Watcher.create(() => server.udp, 'alice');
    bob = await Watcher.create(() => server.udp, 'bob');
    zed = await Watcher.create(() => server.udp, 'zed');
  });
  after(async () => {
    await alice.close();
    await bob.close();
    await zed.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const policy = (watcher: string, action: string) =>
    cli([
      'presence',
      'policy',
      'alice@example.com',
      '--watcher',
      watcher,
      `--${action}`,
      '--data-dir',
      dir,
    ]);

  it('another domain: pending (no body) until allowed; then active with the state; blocked: rejected', async () => {
    const sub = await zed.subscribe({
      to: ALICE,
      expires: 600,
      from: '"Zed" <sip:zed@elsewhere.test>',
    });
    assert.equal(sub.response.status, 200, 'a pending subscription is answered 200 too');
    const first = await zed.waitNotify(sub, 1);
    assert.equal(stateOf(first).state, 'pending');
    assert.equal(first.body.length, 0);
    const listed = await cli([
      'presence',
      'watchers',
      'alice@example.com',
      '--json',
      '--data-dir',
      dir,
    ]);
    assert.equal(listed.code, 0, listed.err);
    const rows = JSON.parse(listed.out) as WatcherJson[];
    assert.deepEqual(
      rows.map((r) => [r.watcher, r.status, r.displayName]),
      [['sip:zed@elsewhere.test', 'pending', 'Zed']],
    );

    const allowed = await policy('zed@elsewhere.test', 'allow');
    assert.equal(allowed.code, 0, allowed.err);
    const active = await zed.waitNotify(sub, 2);
    assert.equal(stateOf(active).state, 'active');
    assert.deepEqual(basics(active), ['closed']);

    const blocked = await policy('zed@elsewhere.test', 'block');
    assert.equal(blocked.code, 0, blocked.err);
    const last = await zed.waitNotify(sub, 3);
    assert.deepEqual(stateOf(last), { state: 'terminated', reason: 'rejected' });
    const again = await zed.subscribe({
      to: ALICE,
      expires: 600,
      from: '<sip:zed@elsewhere.test>',
    });
    assert.equal(again.response.status, 403);

    const rules = await cli(['presence', 'policy', 'alice@example.com', '--data-dir', dir]);
    assert.equal(rules.out, 'sip:zed@elsewhere.test\tblock\n');
    assert.equal((await policy('zed@elsewhere.test', 'remove')).code, 0);
  });

  it('a confirm rule makes a colleague pending until allowed', async () => {
    assert.equal((await policy('bob@example.com', 'confirm')).code, 0);
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    assert.equal(stateOf(await bob.waitNotify(sub, 1)).state, 'pending');
    const text = await cli(['presence', 'watchers', 'alice@example.com', '--data-dir', dir]);
    assert.match(text.out, /^sip:bob@example\.com\tpending\t\d+s\tconfirm$/m);
    assert.equal((await policy('bob@example.com', 'allow')).code, 0);
    const n = await bob.waitNotify(sub, 2);
    assert.equal(stateOf(n).state, 'active');
    assert.match(bodyOf(n), /<presence /);
    await bob.refresh(sub, 0);
    await policy('bob@example.com', 'remove');
  });

  it('the command: one error line and a non-zero status for mistakes', async () => {
    const none = await cli([
      'presence',
      'policy',
      'nobody@example.com',
      '--watcher',
      'bob@example.com',
      '--allow',
      '--data-dir',
      dir,
    ]);
    assert.equal(none.code, 2);
    assert.equal(none.err, 'switchboard: presence policy: no user sip:nobody@example.com\n');
    const two = await cli([
      'presence',
      'policy',
      'alice@example.com',
      '--watcher',
      'bob@example.com',
      '--allow',
      '--block',
      '--data-dir',
      dir,
    ]);
    assert.equal(two.code, 1);
    assert.match(two.err, /^switchboard: presence policy: give one of/);
    assert.equal((await cli(['presence', 'frob', 'alice@example.com', '--data-dir', dir])).code, 1);
    const bad = await cli(['presence', 'watchers', 'not a uri', '--data-dir', dir]);
    assert.equal(bad.code, 1);
    assert.equal(bad.err.split('\n').length, 2);
  });

  it('presence.winfo: the full watcher list, then a NOTIFY per change (RFC 3858)', async () => {
    const winfo = await alice.subscribe({ to: ALICE, event: 'presence.winfo', expires: 600 });
    assert.equal(winfo.response.status, 200);
    const first = await alice.waitNotify(winfo, 1);
    assert.equal(first.getRaw('Event'), 'presence.winfo');
    assert.equal(first.getRaw('Content-Type'), 'application/watcherinfo+xml');
    assert.match(
      bodyOf(first),
      /<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full">/,
    );
    assert.match(
      bodyOf(first),
      /<watcher-list resource="sip:alice@example.com" package="presence">/,
    );
    assert.doesNotMatch(bodyOf(first), /status="(active|pending)"/);

    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    await bob.waitNotify(sub, 1);
    const second = await alice.waitNotify(winfo, 2);
    assert.match(bodyOf(second), /version="1"/);
    assert.match(
      bodyOf(second),
      /status="active" event="subscribe"[^>]*>sip:bob@example\.com<\/watcher>/,
    );

    await bob.refresh(sub, 0);
    const third = await alice.waitNotify(winfo, 3);
    assert.match(bodyOf(third), /version="2"/);
    assert.match(
      bodyOf(third),
      /status="terminated" event="timeout"[^>]*>sip:bob@example\.com<\/watcher>/,
    );
    await sleep(300);
    assert.equal(alice.of(winfo).length, 3);
    await alice.refresh(winfo, 0);
  });

  it('presence.winfo: a pending watcher, then approved when the user allows it', async () => {
    const winfo = await alice.subscribe({ to: ALICE, event: 'presence.winfo', expires: 600 });
    await alice.waitNotify(winfo, 1);
    assert.equal((await policy('bob@example.com', 'confirm')).code, 0);
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    await bob.waitNotify(sub, 1);
    const pending = await alice.waitNotify(winfo, 2);
    assert.match(bodyOf(pending), /status="pending" event="subscribe"[^>]*>sip:bob@example\.com</);
    assert.equal((await policy('bob@example.com', 'allow')).code, 0);
    const approved = await alice.waitNotify(winfo, 3);
    assert.match(bodyOf(approved), /status="active" event="approved"[^>]*>sip:bob@example\.com</);
    await bob.refresh(sub, 0);
    await alice.refresh(winfo, 0);
    await policy('bob@example.com', 'remove');
  });
});

describe('presence: two servers on one store (workers), NOTIFYs sent once by the owner', () => {
  let dir: string;
  let owner: PresenceServer;
  let other: PresenceServer;
  let alice: Watcher;
  let bob: Watcher;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-presence-workers-'));
    await seed(dir, ['alice', 'bob']);
    owner = await startPresenceServer(dir, { pollInterval: 0.1 }, { ownsCallId: () => true });
    other = await startPresenceServer(dir, { pollInterval: 0.1 }, { ownsCallId: () => false });
    alice = await Watcher.create(() => other.udp, 'alice');
    bob = await Watcher.create(() => owner.udp, 'bob');
  });
  after(async () => {
    await alice.close();
    await bob.close();
    await owner.close();
    await other.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('PUBLISH and REGISTER on the other worker: one NOTIFY each, from the owner', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    await bob.waitNotify(sub, 1);
    const pub = await alice.publish(pidf(ALICE, 'desk', 'open', 'from worker 2'));
    assert.equal(pub.status, 200);
    const n = await bob.waitNotify(sub, 2, 3000);
    assert.match(bodyOf(n), /from worker 2/);
    assert.equal(n.topVia.port ?? 5060, owner.udp, 'sent by the owner');
    await sleep(500);
    assert.equal(bob.of(sub).length, 2, 'exactly one NOTIFY for the change');
    await alice.publish('', { ifMatch: pub.getRaw('SIP-ETag')!, expires: 0 });
    await bob.waitNotify(sub, 3, 3000);
    assert.equal((await alice.register(600)).status, 200);
    const open = await bob.waitNotify(sub, 4, 3000);
    assert.deepEqual(basics(open), ['open']);
    await sleep(500);
    assert.equal(bob.of(sub).length, 4);
    await alice.register(0);
    await bob.refresh(sub, 0);
  });
});
