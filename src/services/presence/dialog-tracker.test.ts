/**
 * The call-state tracker (RFC 4235 §3.7.1) as the proxy feeds it, on a manual clock with an
 * in-memory store: each transition of the state machine named after its RFC case, what is
 * written for whom (callee and caller sides, a user nobody watches: no write), writes per call,
 * the cap on tracked calls, and the deadlines (no final response, no BYE, Session-Expires).
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { ManualClock } from '../../base/index.ts';
import { createRequest, createResponse, type SipRequest } from '../../sip/index.ts';
import type { DialogStateStore, StoredDialogState, SubscriptionStore } from '../../store/index.ts';
import { createDialogTracker, TERMINATED_KEPT_MS, type DialogTracker } from './dialog-tracker.ts';

const ALICE = 'sip:alice@example.com';
const BOB = 'sip:bob@example.com';

class FakeDialogs {
  readonly rows = new Map<string, StoredDialogState>();
  /** Every state written, in order, as `aor state[/event]`. */
  readonly log: string[] = [];
  watched = new Set<string>([ALICE, BOB]);

  store(): DialogStateStore {
    return {
      put: async (d) => {
        this.rows.set(`${d.aor}|${d.id}`, d);
        this.log.push(
          `${d.aor.slice(4, d.aor.indexOf('@'))} ${d.state}${d.event !== undefined ? `/${d.event}` : ''}${d.code !== undefined ? `/${d.code}` : ''}`,
        );
      },
      list: async (aor, now) =>
        [...this.rows.values()].filter((d) => d.aor === aor && d.expiresAt > now),
      purgeExpired: async (now) => {
        let n = 0;
        for (const [k, d] of this.rows) {
          if (d.expiresAt <= now) {
            this.rows.delete(k);
            n++;
          }
        }
        return n;
      },
    };
  }

  /** Also offer `unwatched`, the synchronous answer a store like SQLite's gives. */
  sync = false;

  subscriptions(): SubscriptionStore {
    const count = (aor: string, event?: string): number =>
      event === 'dialog' && this.watched.has(aor) ? 1 : 0;
    return {
      countFor: async (aor: string, event?: string) => count(aor, event),
      ...(this.sync ? { unwatched: (aor: string, event: string) => count(aor, event) === 0 } : {}),
    } as unknown as SubscriptionStore;
  }
}

let n = 0;
function invite(o: { session?: number } = {}): SipRequest {
  n++;
  return createRequest({
    method: 'INVITE',
    uri: BOB,
    from: `"Alice" <${ALICE}>;tag=at${n}`,
    to: `<${BOB}>`,
    callId: `call-${n}@example.com`,
    cseq: 1,
    contact: '<sip:alice@192.0.2.1>',
    headers: o.session !== undefined ? [['Session-Expires', String(o.session)]] : [],
  });
}

function inDialog(
  inv: SipRequest,
  method: string,
  by: 'caller' | 'callee',
  headers: [string, string][] = [],
): SipRequest {
  const a = `<${ALICE}>;tag=${inv.from.tag!}`;
  const b = `<${BOB}>;tag=bt`;
  return createRequest({
    method,
    uri: 'sip:peer@192.0.2.9',
    from: by === 'caller' ? a : b,
    to: by === 'caller' ? b : a,
    callId: inv.callId,
    cseq: 2,
    headers,
  });
}

describe('dialog tracker (RFC 4235 §3.7.1)', () => {
  let clock: ManualClock;
  let fake: FakeDialogs;
  let tracker: DialogTracker;
  let changes: string[];
  const make = (o: { maxDialogs?: number; maxCallMs?: number } = {}): DialogTracker =>
    createDialogTracker({
      dialogs: fake.store(),
      subscriptions: fake.subscriptions(),
      clock,
      onChange: (aor) => changes.push(aor),
      ...o,
    });

  beforeEach(() => {
    clock = new ManualClock();
    fake = new FakeDialogs();
    changes = [];
    tracker = make();
  });

  it('INVITE → 100 → 180 → 200 → BYE: trying, early, confirmed, terminated (remote-bye); four writes', async () => {
    const inv = invite();
    tracker.invite(inv, { callee: BOB });
    tracker.response(inv, createResponse(inv, 100));
    tracker.response(inv, createResponse(inv, 180, { toTag: 'bt' }));
    tracker.response(inv, createResponse(inv, 183, { toTag: 'bt' }));
    tracker.response(inv, createResponse(inv, 200, { toTag: 'bt' }));
    tracker.response(inv, createResponse(inv, 200, { toTag: 'bt' })); // a retransmission
    await tracker.settled();
    const confirmed = [...fake.rows.values()][0]!;
    assert.equal(confirmed.direction, 'recipient');
    assert.equal(confirmed.localTag, 'bt');
    assert.equal(confirmed.remoteTag, inv.from.tag);
    assert.equal(confirmed.remoteIdentity, ALICE);
    assert.equal(confirmed.remoteDisplay, 'Alice');
    tracker.inDialog(inDialog(inv, 'BYE', 'caller'));
    await tracker.settled();
    assert.deepEqual(fake.log, [
      'bob trying',
      'bob early',
      'bob confirmed',
      'bob terminated/remote-bye',
    ]);
    assert.equal(tracker.stats().writes, 4);
    assert.equal(tracker.stats().tracked, 0, 'dropped once terminated was written');
    assert.deepEqual(changes, [BOB, BOB, BOB, BOB]);
    const end = [...fake.rows.values()][0]!;
    assert.equal(end.expiresAt, clock.wallNow() + TERMINATED_KEPT_MS);
  });

  it('a call between two local users: the caller is initiator (local-bye when it hangs up)', async () => {
    const inv = invite();
    tracker.invite(inv, { callee: BOB, caller: ALICE });
    tracker.response(inv, createResponse(inv, 180, { toTag: 'bt' }));
    tracker.response(inv, createResponse(inv, 200, { toTag: 'bt' }));
    await tracker.settled();
    const alice = [...fake.rows.values()].find((d) => d.aor === ALICE)!;
    assert.equal(alice.direction, 'initiator');
    assert.equal(alice.localTag, inv.from.tag);
    assert.equal(alice.remoteTag, 'bt');
    assert.equal(alice.remoteIdentity, BOB);
    tracker.inDialog(inDialog(inv, 'BYE', 'caller'));
    await tracker.settled();
    assert.deepEqual(fake.log.slice(-2), [
      'alice terminated/local-bye',
      'bob terminated/remote-bye',
    ]);
  });

  it('a 1xx without To tag is proceeding: not written (a busy lamp shows nothing new)', async () => {
    const inv = invite();
    tracker.invite(inv, { callee: BOB });
    tracker.response(inv, createResponse(inv, 180));
    tracker.response(inv, createResponse(inv, 180, { toTag: 'bt' }));
    await tracker.settled();
    assert.deepEqual(fake.log, ['bob trying', 'bob early']);
  });

  it('final non-2xx: 487 after CANCEL is cancelled, 486 is rejected, each with its code', async () => {
    const a = invite();
    tracker.invite(a, { callee: BOB });
    tracker.response(a, createResponse(a, 180, { toTag: 'bt' }));
    tracker.response(a, createResponse(a, 487, { toTag: 'bt' }));
    await tracker.settled();
    const b = invite();
    tracker.invite(b, { callee: BOB });
    tracker.response(b, createResponse(b, 486, { toTag: 'x' }));
    await tracker.settled();
    assert.deepEqual(fake.log, [
      'bob trying',
      'bob early',
      'bob terminated/cancelled/487',
      'bob trying',
      'bob terminated/rejected/486',
    ]);
    assert.equal(tracker.stats().tracked, 0);
  });

  it('no going back: a 180 after the 200, a second INVITE pass (spiral) change nothing', async () => {
    const inv = invite();
    tracker.invite(inv, { callee: BOB });
    tracker.response(inv, createResponse(inv, 200, { toTag: 'bt' }));
    tracker.invite(inv, { callee: BOB });
    tracker.response(inv, createResponse(inv, 180, { toTag: 'other' }));
    await tracker.settled();
    assert.deepEqual(fake.log, ['bob trying', 'bob confirmed']);
  });

  it('a user nobody watches costs no write; a watcher who comes mid-call gets the next state', async () => {
    fake.watched.clear();
    const inv = invite();
    tracker.invite(inv, { callee: BOB });
    tracker.response(inv, createResponse(inv, 180, { toTag: 'bt' }));
    await tracker.settled();
    assert.equal(fake.log.length, 0);
    assert.equal(tracker.stats().skipped, 2);
    fake.watched.add(BOB);
    tracker.response(inv, createResponse(inv, 200, { toTag: 'bt' }));
    await tracker.settled();
    fake.watched.clear();
    // Once written, its end is written too, watched or not (no stale busy row).
    tracker.inDialog(inDialog(inv, 'BYE', 'callee'));
    await tracker.settled();
    assert.deepEqual(fake.log, ['bob confirmed', 'bob terminated/local-bye']);
  });

  it('a store that answers at once: an unwatched user is skipped there and then, the writes are the same', async () => {
    fake.sync = true;
    tracker = make();
    fake.watched.clear();
    const inv = invite();
    tracker.invite(inv, { callee: BOB, caller: ALICE });
    tracker.response(inv, createResponse(inv, 180, { toTag: 'bt' }));
    // Nothing awaited: both parties' trying and early were decided synchronously.
    assert.equal(tracker.stats().skipped, 4);
    fake.watched.add(BOB);
    tracker.response(inv, createResponse(inv, 200, { toTag: 'bt' }));
    assert.equal(tracker.stats().skipped, 5, 'alice still unwatched; bob now queued');
    await tracker.settled();
    fake.watched.clear();
    tracker.inDialog(inDialog(inv, 'BYE', 'callee'));
    await tracker.settled();
    assert.deepEqual(fake.log, ['bob confirmed', 'bob terminated/local-bye']);
    assert.equal(tracker.stats().skipped, 6);
  });

  it('at most maxDialogs calls are tracked; the others are forwarded untracked', async () => {
    tracker = make({ maxDialogs: 2 });
    for (let i = 0; i < 3; i++) tracker.invite(invite(), { callee: BOB });
    await tracker.settled();
    assert.deepEqual(tracker.stats(), { tracked: 2, dropped: 1, writes: 2, skipped: 0 });
  });

  it('a confirmed call whose BYE never passes ends (timeout) after maxCallMs; rows purged', async () => {
    tracker = make({ maxCallMs: 60_000 });
    const inv = invite();
    tracker.invite(inv, { callee: BOB });
    tracker.response(inv, createResponse(inv, 200, { toTag: 'bt' }));
    await tracker.settled();
    assert.equal([...fake.rows.values()][0]!.expiresAt, clock.wallNow() + 60_000);
    clock.advance(59_000);
    await tracker.sweep();
    assert.equal(fake.log.at(-1), 'bob confirmed');
    clock.advance(1_000);
    await tracker.sweep();
    await tracker.settled();
    assert.equal(fake.log.at(-1), 'bob terminated/timeout');
    assert.equal(tracker.stats().tracked, 0);
    clock.advance(TERMINATED_KEPT_MS);
    await tracker.sweep();
    assert.equal(fake.rows.size, 0);
  });

  it('with Session-Expires the call lasts while refreshes (re-INVITE, UPDATE) pass (RFC 4028)', async () => {
    tracker = make({ maxCallMs: 10_000 });
    const inv = invite({ session: 90 });
    tracker.invite(inv, { callee: BOB });
    const ok = createResponse(inv, 200, {
      toTag: 'bt',
      headers: [['Session-Expires', '90;refresher=uac']],
    });
    tracker.response(inv, ok);
    await tracker.settled();
    const writes = tracker.stats().writes;
    for (let i = 0; i < 6; i++) {
      clock.advance(45_000);
      tracker.inDialog(
        inDialog(inv, i % 2 === 0 ? 'UPDATE' : 'INVITE', 'caller', [['Session-Expires', '90']]),
      );
      await tracker.sweep();
      await tracker.settled();
    }
    assert.equal(fake.log.at(-1), 'bob confirmed', 'still up after 270 s (maxCallMs 10 s)');
    const rows = [...fake.rows.values()].filter((d) => d.state === 'confirmed');
    assert.equal(rows.length, 1, 'the row was extended, not left to expire');
    assert.ok(tracker.stats().writes - writes <= 3, 'a refresh writes at most every other time');
    // No refresh: the interval and 32 s later it is over.
    clock.advance(90_000 + 32_000);
    await tracker.sweep();
    await tracker.settled();
    assert.equal(fake.log.at(-1), 'bob terminated/timeout');
  });

  it('an INVITE with no final response ends maxEarlyMs after its last provisional response', async () => {
    const inv = invite();
    tracker.invite(inv, { callee: BOB });
    clock.advance(200_000);
    tracker.response(inv, createResponse(inv, 180));
    clock.advance(299_000);
    await tracker.sweep();
    assert.equal(tracker.stats().tracked, 1, 'still ringing');
    clock.advance(1_000);
    await tracker.sweep();
    await tracker.settled();
    assert.deepEqual(fake.log, ['bob trying', 'bob terminated/timeout']);
  });
});
