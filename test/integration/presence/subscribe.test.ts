/**
 * The server as presence agent (RFC 6665 SUBSCRIBE/NOTIFY, RFC 3856 presence) in one
 * process: buildServices on a server stack and the SQLite store, watchers on their own
 * stacks over UDP on loopback authenticating with digest as local users (support.ts).
 *
 * What the notifier answers (489 with Allow-Events, 423 with Min-Expires, 406, 404, 200 with
 * Expires and Contact), the immediate NOTIFY, NOTIFYs on PUBLISH and on registration changes
 * (presence derived from bindings), refresh and unsubscribe, expiry (terminated;reason=timeout),
 * a NOTIFY refused with 481 ending the subscription, a removed user (noresource), the limits,
 * and a server restarted on the same store resuming its NOTIFYs.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registrationTupleId } from '../../../src/services/presence/index.ts';
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

describe('presence: SUBSCRIBE/NOTIFY through buildServices (RFC 6665, RFC 3856)', () => {
  let dir: string;
  let server: PresenceServer;
  let alice: Watcher;
  let bob: Watcher;
  let carol: Watcher;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-subscribe-'));
    await seed(dir, ['alice', 'bob', 'carol', 'dave', 'erin']);
    server = await startPresenceServer(dir, { maxSubscriptionsPerWatcher: 3 });
    alice = await Watcher.create(() => server.udp, 'alice');
    bob = await Watcher.create(() => server.udp, 'bob');
    carol = await Watcher.create(() => server.udp, 'carol');
  });
  after(async () => {
    await alice.close();
    await bob.close();
    await carol.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('489 Bad Event with Allow-Events for another package', async () => {
    const r = await bob.subscribe({ to: ALICE, event: 'message-summary' });
    assert.equal(r.response.status, 489);
    assert.match(r.response.getRaw('Allow-Events') ?? '', /\bpresence\b/);
    assert.match(r.response.getRaw('Allow-Events') ?? '', /presence\.winfo/);
    assert.match(r.response.getRaw('Allow-Events') ?? '', /\bdialog\b/);
  });

  it('423 with Min-Expires; 406 with Accept; 404 (480 to a stranger) for no such user; 403 for another user’s winfo', async () => {
    const local = await startPresenceServer(dir, { subscribeMinExpires: 60 }, { start: false });
    const w = await Watcher.create(() => local.udp, 'bob');
    try {
      const short = await w.subscribe({ to: ALICE, expires: 10 });
      assert.equal(short.response.status, 423);
      assert.equal(short.response.getRaw('Min-Expires'), '60');
    } finally {
      await w.close();
      await local.close();
    }
    const na = await bob.subscribe({ to: ALICE, accept: 'text/plain, application/cpim-pidf+xml' });
    assert.equal(na.response.status, 406);
    assert.equal(na.response.getRaw('Accept'), 'application/pidf+xml');
    const nobody = await bob.subscribe({ to: `sip:nobody@${DOMAIN}` });
    assert.equal(nobody.response.status, 404);
    // Someone who is not a local user cannot tell a missing user from an absent one.
    const probe = await bob.subscribe({
      to: `sip:nobody@${DOMAIN}`,
      from: '<sip:probe@elsewhere.test>',
    });
    assert.equal(probe.response.status, 480);
    const winfo = await bob.subscribe({ to: ALICE, event: 'presence.winfo' });
    assert.equal(winfo.response.status, 403);
  });

  it('200 with Expires and Contact, then at once a NOTIFY with the state (closed: not registered)', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 600, accept: 'application/pidf+xml' });
    assert.equal(sub.response.status, 200);
    assert.equal(sub.response.getRaw('Expires'), '600');
    assert.ok(sub.target !== undefined, 'Contact in the 200');
    const n = await bob.waitNotify(sub, 1);
    assert.equal(n.getRaw('Event'), 'presence');
    const st = stateOf(n);
    assert.equal(st.state, 'active');
    assert.ok(st.expires !== undefined && st.expires <= 600 && st.expires >= 598, `${st.expires}`);
    assert.equal(n.getRaw('Content-Type'), 'application/pidf+xml');
    assert.match(bodyOf(n), new RegExp(`entity="${ALICE}"`));
    assert.match(bodyOf(n), new RegExp(`id="${registrationTupleId(ALICE)}"`));
    assert.deepEqual(basics(n), ['closed']);
    assert.equal(n.to.tag, sub.fromTag);
    assert.equal(n.from.tag, sub.toTag);
    assert.equal(n.callId, sub.callId);
    await bob.refresh(sub, 0);
  });

  it('NOTIFYs follow registrations (open, closed) and PUBLISH (published state wins)', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    await bob.waitNotify(sub, 1);
    assert.equal((await alice.register(600)).status, 200);
    const open = await bob.waitNotify(sub, 2);
    assert.deepEqual(basics(open), ['open']);
    // A refresh of the registration changes nothing the watcher sees: no NOTIFY.
    assert.equal((await alice.register(600)).status, 200);
    const pub = await alice.publish(pidf(ALICE, 'desk', 'closed', 'in a meeting'));
    assert.equal(pub.status, 200);
    const published = await bob.waitNotify(sub, 3);
    assert.deepEqual(basics(published), ['closed']);
    assert.match(bodyOf(published), /id="desk"/);
    assert.match(bodyOf(published), /in a meeting/);
    assert.doesNotMatch(bodyOf(published), new RegExp(registrationTupleId(ALICE)));
    const etag = pub.getRaw('SIP-ETag')!;
    assert.equal((await alice.publish('', { ifMatch: etag, expires: 0 })).status, 200);
    const back = await bob.waitNotify(sub, 4);
    assert.deepEqual(basics(back), ['open']);
    assert.equal((await alice.register(0)).status, 200);
    const gone = await bob.waitNotify(sub, 5);
    assert.deepEqual(basics(gone), ['closed']);
    await sleep(400);
    assert.equal(bob.of(sub).length, 5, 'one NOTIFY per change');
    await bob.refresh(sub, 0);
  });

  it('an Event id parameter is repeated in every NOTIFY (RFC 6665 §8.2.1)', async () => {
    const sub = await bob.subscribe({ to: ALICE, event: 'presence;id=7', expires: 600 });
    assert.equal(sub.response.status, 200);
    assert.equal((await bob.waitNotify(sub, 1)).getRaw('Event'), 'presence;id=7');
    assert.equal((await bob.refresh(sub, 300)).status, 200);
    assert.equal((await bob.waitNotify(sub, 2)).getRaw('Event'), 'presence;id=7');
    assert.equal((await bob.refresh(sub, 300, 'presence')).status, 489, 'another subscription');
    assert.equal((await bob.refresh(sub, 0)).status, 200);
    const last = await bob.waitNotify(sub, 3);
    assert.equal(last.getRaw('Event'), 'presence;id=7');
    assert.equal(stateOf(last).state, 'terminated');
  });

  it('refresh: 200 and a NOTIFY with the full state; unsubscribe: terminated', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    await bob.waitNotify(sub, 1);
    const r = await bob.refresh(sub, 300);
    assert.equal(r.status, 200);
    assert.equal(r.getRaw('Expires'), '300');
    const n = await bob.waitNotify(sub, 2);
    assert.equal(stateOf(n).state, 'active');
    assert.ok(stateOf(n).expires! <= 300);
    assert.equal(n.cseq.seq, bob.of(sub)[0]!.cseq.seq + 1, 'NOTIFY CSeq goes up by one');
    const bad = await bob.refresh(sub, 300, 'dialog');
    assert.equal(bad.status, 489);
    const u = await bob.refresh(sub, 0);
    assert.equal(u.status, 200);
    assert.equal(u.getRaw('Expires'), '0');
    const last = await bob.waitNotify(sub, 3);
    assert.deepEqual(stateOf(last), { state: 'terminated', reason: 'timeout' });
    const again = await bob.refresh(sub, 300);
    assert.equal(again.status, 481, 'the subscription is gone');
  });

  it('a refresh while a NOTIFY is outstanding still gets its own NOTIFY after it (RFC 6665 §4.2.1.2)', async () => {
    let release!: () => void;
    bob.notifyGate = new Promise<void>((r) => (release = r));
    try {
      const sub = await bob.subscribe({ to: ALICE, expires: 600 });
      await bob.waitNotify(sub, 1);
      // The first NOTIFY is not answered yet: the refresh finds it outstanding.
      const r = await bob.refresh(sub, 300);
      assert.equal(r.status, 200);
      release();
      const n = await bob.waitNotify(sub, 2, 3000);
      assert.equal(stateOf(n).state, 'active');
      assert.ok(stateOf(n).expires! <= 300, 'the refreshed expiry');
      assert.equal((await bob.refresh(sub, 0)).status, 200);
      await bob.waitNotify(sub, 3, 3000);
    } finally {
      bob.notifyGate = undefined;
      release();
    }
  });

  it('a subscription that is not refreshed ends with terminated;reason=timeout', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 1 });
    assert.equal(sub.response.getRaw('Expires'), '1');
    await bob.waitNotify(sub, 1);
    const last = await bob.waitNotify(sub, 2, 4000);
    assert.deepEqual(stateOf(last), { state: 'terminated', reason: 'timeout' });
    assert.deepEqual(basics(last), ['closed'], 'the last NOTIFY carries the state');
  });

  it('Expires 0 on an initial SUBSCRIBE is a fetch: 200, one NOTIFY, terminated', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 0 });
    assert.equal(sub.response.status, 200);
    assert.equal(sub.response.getRaw('Expires'), '0');
    const n = await bob.waitNotify(sub, 1);
    assert.deepEqual(stateOf(n), { state: 'terminated', reason: 'timeout' });
    assert.deepEqual(basics(n), ['closed']);
  });

  it('a NOTIFY answered 481 ends the subscription (RFC 6665 §4.2.2)', async () => {
    const w = await Watcher.create(() => server.udp, 'dave');
    try {
      const sub = await w.subscribe({ to: ALICE, expires: 600 });
      await w.waitNotify(sub, 1);
      w.notifyStatus = 481;
      assert.equal((await alice.publish(pidf(ALICE, 'x', 'open'))).status, 200);
      await w.waitNotify(sub, 2);
      await sleep(200);
      const stored = await server.store.subscriptions.get({
        callId: sub.callId,
        localTag: sub.toTag!,
        remoteTag: sub.fromTag,
      });
      assert.equal(stored?.status, 'terminated');
      assert.equal((await w.refresh(sub, 600)).status, 481);
    } finally {
      await w.close();
    }
  });

  it('a NOTIFY never answered (Timer F, 408) ends the subscription', async () => {
    // A store of its own: the suite's server would notify the subscription too.
    const own = mkdtempSync(join(tmpdir(), 'sb-subscribe-timer-f-'));
    await seed(own, ['alice', 'dave']);
    const quick = await startPresenceServer(own, {}, { t1: 10 });
    const w = await Watcher.create(() => quick.udp, 'dave');
    const publisher = await Watcher.create(() => quick.udp, 'alice');
    try {
      const sub = await w.subscribe({ to: ALICE, expires: 600 });
      await w.waitNotify(sub, 1);
      w.notifyStatus = 0;
      assert.equal((await publisher.publish(pidf(ALICE, 'gone', 'open'))).status, 200);
      // The NOTIFY goes unanswered until Timer F (64·T1 = 640 ms), which ends the transaction.
      await w.waitNotify(sub, 2, 3000);
      const id = { callId: sub.callId, localTag: sub.toTag!, remoteTag: sub.fromTag };
      const deadline = Date.now() + 5000;
      while ((await quick.store.subscriptions.get(id))?.status !== 'terminated') {
        assert.ok(Date.now() < deadline, 'the subscription still lives after Timer F');
        await sleep(100);
      }
    } finally {
      await w.close();
      await publisher.close();
      await quick.close();
      rmSync(own, { recursive: true, force: true });
    }
  });

  it('a watcher that does not answer holds back nobody else’s NOTIFYs', async () => {
    const mute = await Watcher.create(() => server.udp, 'dave');
    try {
      const silent = await mute.subscribe({ to: ALICE, expires: 600 });
      await mute.waitNotify(silent, 1);
      mute.notifyStatus = 0; // its next NOTIFY waits for Timer F (32 s)
      const sub = await bob.subscribe({ to: ALICE, expires: 600 });
      await bob.waitNotify(sub, 1);
      const p1 = await alice.publish(pidf(ALICE, 'one', 'open'));
      await bob.waitNotify(sub, 2, 2000);
      await mute.waitNotify(silent, 2, 2000);
      const p2 = await alice.publish('', { ifMatch: p1.getRaw('SIP-ETag')!, expires: 0 });
      assert.equal(p2.status, 200);
      const n = await bob.waitNotify(sub, 3, 2000);
      assert.doesNotMatch(bodyOf(n), /id="one"/);
      assert.equal((await bob.refresh(sub, 0)).status, 200);
    } finally {
      await mute.close();
    }
  });

  it('limits: a watcher past presence.maxSubscriptionsPerWatcher gets 403', async () => {
    const subs = [];
    for (let i = 0; i < 3; i++) {
      const s = await carol.subscribe({ to: ALICE, expires: 600 });
      assert.equal(s.response.status, 200);
      subs.push(s);
    }
    const fourth = await carol.subscribe({ to: ALICE, expires: 600 });
    assert.equal(fourth.response.status, 403);
    for (const s of subs) assert.equal((await carol.refresh(s, 0)).status, 200);
  });

  it('a removed user: terminated;reason=noresource', async () => {
    const sub = await bob.subscribe({ to: `sip:erin@${DOMAIN}`, expires: 600 });
    await bob.waitNotify(sub, 1);
    assert.ok(await server.store.users.remove(`sip:erin@${DOMAIN}`));
    const last = await bob.waitNotify(sub, 2);
    assert.deepEqual(stateOf(last), { state: 'terminated', reason: 'noresource' });
    assert.equal(last.body.length, 0);
  });

  it('after a restart on the same store, NOTIFYs resume', async () => {
    const port = server.udp;
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    await bob.waitNotify(sub, 1);
    await server.close();
    server = await startPresenceServer(dir, { maxSubscriptionsPerWatcher: 3 }, { port });
    const pub = await alice.publish(pidf(ALICE, 'after', 'open', 'back'));
    assert.equal(pub.status, 200);
    const n = await bob.waitNotify(sub, 2);
    assert.match(bodyOf(n), /id="after"/);
    assert.equal(n.cseq.seq, bob.of(sub)[0]!.cseq.seq + 1);
    assert.equal((await bob.refresh(sub, 0)).status, 200);
    await alice.publish('', { ifMatch: pub.getRaw('SIP-ETag')!, expires: 0 });
  });
});
