/**
 * Busy lamps in one process (RFC 4235 dialog event package): buildServices on a server stack
 * and the SQLite store; watchers (support.ts) subscribe to `Event: dialog` of local users;
 * alice and bob are UserAgents on their own stacks calling each other through the proxy over
 * UDP on loopback (INVITE, 180, 200, ACK, BYE on the Record-Route).
 *
 * The watcher of bob sees an empty dialog-info at once, then trying/early, confirmed and
 * terminated (remote-bye) of bob's side of the call; the watcher of alice sees the caller's
 * side (initiator, local-bye); a call CANCELled while ringing ends terminated (cancelled, 487);
 * a refused one ends rejected with its code; versions count up by one per NOTIFY; the
 * store is left with no live dialog; a user nobody watches gets no store write.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequest, type SipRequest } from '../../../src/sip/index.ts';
import { createStack, UserAgent, type IncomingCall, type Stack } from '../../../src/stack/index.ts';
import { within } from '../../support/server.ts';
import {
  DOMAIN,
  bodyOf,
  seed,
  sleep,
  startPresenceServer,
  stateOf,
  Watcher,
  type PresenceServer,
  type WatcherSubscription,
} from './support.ts';

const ALICE = `sip:alice@${DOMAIN}`;
const BOB = `sip:bob@${DOMAIN}`;
const SDP =
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';

interface Phone {
  readonly stack: Stack;
  readonly ua: UserAgent;
  close(): Promise<void>;
}

async function phone(server: PresenceServer, user: string): Promise<Phone> {
  const stack = await createStack({ listen: ['udp:127.0.0.1:0'] });
  const ua = new UserAgent(stack, {
    aor: `sip:${user}@${DOMAIN}`,
    credentials: { username: user, password: `${user}-pw` },
    outboundProxy: `sip:127.0.0.1:${server.udp}`,
  });
  const registration = await within(ua.register({ expires: 600 }), 10_000, `${user} REGISTER`);
  return {
    stack,
    ua,
    close: async () => {
      await within(registration.unregister(), 5_000, 'un-REGISTER').catch(() => undefined);
      await stack.close();
    },
  };
}

const nextInvite = (p: Phone): Promise<IncomingCall> =>
  within(
    new Promise<IncomingCall>((resolve) => p.ua.once('invite', resolve)),
    10_000,
    'an INVITE at the callee',
  );

/** One `<dialog>` of a dialog-info body, as a watcher reads it. */
interface SeenDialog {
  readonly state: string;
  readonly event?: string;
  readonly code?: string;
  readonly direction?: string;
  readonly callId?: string;
}

interface SeenDocument {
  readonly version: number;
  readonly entity: string;
  readonly dialogs: SeenDialog[];
}

function documentOf(n: SipRequest): SeenDocument {
  assert.equal(n.getRaw('Content-Type'), 'application/dialog-info+xml');
  const body = bodyOf(n);
  const root =
    /<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="(\d+)" state="full" entity="([^"]*)">/.exec(
      body,
    );
  assert.ok(root !== null, body);
  const dialogs = [...body.matchAll(/<dialog ([^>]*)>\s*<state([^>]*)>(\w+)<\/state>/g)].map(
    (m) => {
      const attr = (s: string, name: string): string | undefined =>
        new RegExp(`\\b${name}="([^"]*)"`).exec(s)?.[1];
      return {
        state: m[3]!,
        ...(attr(m[2]!, 'event') !== undefined ? { event: attr(m[2]!, 'event') } : {}),
        ...(attr(m[2]!, 'code') !== undefined ? { code: attr(m[2]!, 'code') } : {}),
        ...(attr(m[1]!, 'direction') !== undefined ? { direction: attr(m[1]!, 'direction') } : {}),
        ...(attr(m[1]!, 'call-id') !== undefined ? { callId: attr(m[1]!, 'call-id') } : {}),
      };
    },
  );
  return { version: Number(root[1]), entity: root[2]!, dialogs };
}

/** Waits until the watcher's latest NOTIFY shows the call in `state`; returns that dialog. */
async function waitState(
  w: Watcher,
  sub: WatcherSubscription,
  callId: string,
  state: string,
): Promise<SeenDialog> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const seen = w.of(sub);
    const d =
      seen.length > 0
        ? documentOf(seen.at(-1)!).dialogs.find((x) => x.callId === callId)
        : undefined;
    if (d?.state === state) return d;
    const left = deadline - Date.now();
    if (left <= 0) {
      assert.fail(
        `no NOTIFY with ${callId} ${state}; saw ${seen.map((n) => JSON.stringify(documentOf(n).dialogs)).join(' | ')}`,
      );
    }
    await w.waitNotify(sub, seen.length + 1, left).catch(() => undefined);
  }
}

/** The states of one call across a watcher's NOTIFYs, repeats collapsed. */
function statesOf(w: Watcher, sub: WatcherSubscription, callId: string): string[] {
  const out: string[] = [];
  for (const n of w.of(sub)) {
    const d = documentOf(n).dialogs.find((x) => x.callId === callId);
    if (d !== undefined && out.at(-1) !== d.state) out.push(d.state);
  }
  return out;
}

describe('busy lamps: SUBSCRIBE Event: dialog and calls through the proxy (RFC 4235)', () => {
  let dir: string;
  let server: PresenceServer;
  let carol: Watcher;
  let dave: Watcher;
  let alice: Phone;
  let bob: Phone;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-dialog-'));
    await seed(dir, ['alice', 'bob', 'carol', 'dave', 'erin']);
    server = await startPresenceServer(dir);
    carol = await Watcher.create(() => server.udp, 'carol');
    dave = await Watcher.create(() => server.udp, 'dave');
    alice = await phone(server, 'alice');
    bob = await phone(server, 'bob');
  });
  after(async () => {
    await alice.close();
    await bob.close();
    await carol.close();
    await dave.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an idle user: 200, then a NOTIFY with an empty full dialog-info (version 0)', async () => {
    const sub = await carol.subscribe({
      to: BOB,
      event: 'dialog',
      expires: 600,
      accept: 'application/dialog-info+xml',
    });
    assert.equal(sub.response.status, 200);
    const n = await carol.waitNotify(sub, 1);
    assert.equal(n.getRaw('Event'), 'dialog');
    assert.equal(stateOf(n).state, 'active');
    assert.deepEqual(documentOf(n), { version: 0, entity: BOB, dialogs: [] });
    // Another format only: 406 naming ours.
    const na = await carol.subscribe({ to: BOB, event: 'dialog', accept: 'application/pidf+xml' });
    assert.equal(na.response.status, 406);
    assert.equal(na.response.getRaw('Accept'), 'application/dialog-info+xml');
    await carol.refresh(sub, 0);
  });

  it('alice calls bob: the watchers see trying/early, confirmed, terminated (BYE)', async () => {
    const bobs = await carol.subscribe({ to: BOB, event: 'dialog', expires: 600 });
    const alices = await dave.subscribe({ to: ALICE, event: 'dialog', expires: 600 });
    await carol.waitNotify(bobs, 1);
    await dave.waitNotify(alices, 1);
    const writes = server.services.dialogs.stats().writes;
    const invited = nextInvite(bob);
    const calling = alice.ua.call(BOB, { sdp: SDP });
    const incoming = await invited;
    const callId = incoming.request.message.callId;
    await incoming.ring();
    const early = await waitState(carol, bobs, callId, 'early');
    assert.equal(early.direction, 'recipient');
    await incoming.answer(SDP);
    const call = await within(calling, 10_000, 'the call to be answered');
    await waitState(carol, bobs, callId, 'confirmed');
    const aliceConfirmed = await waitState(dave, alices, callId, 'confirmed');
    assert.equal(aliceConfirmed.direction, 'initiator');
    const last = documentOf(carol.of(bobs).at(-1)!);
    assert.equal(last.entity, BOB);
    assert.match(
      bodyOf(carol.of(bobs).at(-1)!),
      /<remote><identity[^>]*>sip:alice@example\.com<\/identity><\/remote>/,
    );
    assert.equal((await within(call.hangup(), 10_000, 'BYE'))?.status, 200);
    const ended = await waitState(carol, bobs, callId, 'terminated');
    assert.equal(ended.event, 'remote-bye');
    const aliceEnded = await waitState(dave, alices, callId, 'terminated');
    assert.equal(aliceEnded.event, 'local-bye');
    // Store writes: trying, early, confirmed, terminated, for each of the two watched users.
    await server.services.dialogs.settled();
    assert.equal(server.services.dialogs.stats().writes - writes, 8);
    const states = statesOf(carol, bobs, callId);
    assert.deepEqual(states.slice(-3), ['early', 'confirmed', 'terminated'], states.join(' '));
    assert.ok(['trying', 'early'].includes(states[0]!), states.join(' '));
    // RFC 4235 §4.1: versions 0, 1, 2, ... one per NOTIFY of the subscription.
    assert.deepEqual(
      carol.of(bobs).map((n) => documentOf(n).version),
      carol.of(bobs).map((_, i) => i),
    );
    await carol.refresh(bobs, 0);
    await dave.refresh(alices, 0);
  });

  it('a call CANCELled while ringing ends terminated, cancelled, 487; a refused one rejected', async () => {
    const bobs = await carol.subscribe({ to: BOB, event: 'dialog', expires: 600 });
    await carol.waitNotify(bobs, 1);
    const invited = nextInvite(bob);
    const invite = createRequest({
      method: 'INVITE',
      uri: BOB,
      from: `<${ALICE}>;tag=${alice.stack.ids.tag()}`,
      to: `<${BOB}>`,
      callId: alice.stack.ids.callId(),
      cseq: 1,
      contact: `<sip:alice@127.0.0.1:${alice.stack.transport.listeners[0]!.local.port}>`,
      body: SDP,
      contentType: 'application/sdp',
    });
    const out = alice.stack.send(invite, {
      destination: { protocol: 'udp', address: '127.0.0.1', port: server.udp },
      credentials: { username: 'alice', password: 'alice-pw' },
      onProvisional: (r) => {
        if (r.status === 180) out.cancel();
      },
    });
    const incoming = await invited;
    await incoming.ring();
    assert.equal((await within(out.final, 10_000, 'the final response')).status, 487);
    const cancelled = await waitState(carol, bobs, invite.callId, 'terminated');
    assert.deepEqual(
      { event: cancelled.event, code: cancelled.code },
      { event: 'cancelled', code: '487' },
    );

    const invited2 = nextInvite(bob);
    const calling = alice.ua.call(BOB, { sdp: SDP }).catch((e: unknown) => e);
    const busy = await invited2;
    await busy.reject(486);
    await calling;
    const rejected = await waitState(carol, bobs, busy.request.message.callId, 'terminated');
    assert.deepEqual(
      { event: rejected.event, code: rejected.code },
      { event: 'rejected', code: '486' },
    );
    await carol.refresh(bobs, 0);
  });

  it('nothing is stored for a user nobody watches; nothing stays live after the calls', async () => {
    const before = server.services.dialogs.stats();
    const invited = nextInvite(alice);
    const calling = bob.ua.call(ALICE, { sdp: SDP });
    const incoming = await invited;
    await incoming.answer(SDP);
    const call = await within(calling, 10_000, 'the call to be answered');
    await within(call.hangup(), 10_000, 'BYE');
    await sleep(100);
    await server.services.dialogs.settled();
    const after = server.services.dialogs.stats();
    assert.equal(after.writes, before.writes, 'no write: nobody watches alice or bob now');
    assert.ok(after.skipped > before.skipped);
    assert.equal(after.tracked, 0);
    const now = Date.now();
    for (const aor of [ALICE, BOB]) {
      const live = (await server.store.dialogs.list(aor, now)).filter(
        (d) => d.state !== 'terminated',
      );
      assert.deepEqual(live, []);
    }
  });
});
