/**
 * In-dialog features of the UA core between two stacks on loopback UDP (real
 * sockets): INFO (RFC 6086), re-INVITE (RFC 3261 §14), UPDATE (RFC 3311) and
 * reliable provisional responses with PRACK (RFC 3262). Requests on the wire
 * are captured by wrapping transport.sendRequest; every message is counted
 * through the `switchboard:transport:send` diagnostics channel.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import {
  createStack,
  UserAgent,
  type Call,
  type IncomingCall,
  type OfferResponder,
  type Stack,
  type UserAgentOptions,
} from '../../../src/stack/index.ts';
import type { SipRequest, SipResponse } from '../../../src/sip/index.ts';
import type { TransportMessageEvent } from '../../../src/transport/index.ts';
import { sleep, within } from '../transport/support.ts';

const OFFER =
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';
const ANSWER = OFFER.replace('40000', '40002');
const OFFER2 = OFFER.replace('o=- 1 1', 'o=- 1 2').replace('40000', '40010');
const ANSWER2 = ANSWER.replace('o=- 1 1', 'o=- 1 2').replace('40002', '40012');

function uriOf(stack: Stack, user: string): string {
  const l = stack.transport.listeners[0]!;
  return `sip:${user}@${l.local.address}:${l.local.port}`;
}

/** Requests a stack puts on the wire (wrapping transport.sendRequest). */
function captureRequests(stack: Stack): SipRequest[] {
  const sent: SipRequest[] = [];
  const t = stack.transport as { sendRequest: Stack['transport']['sendRequest'] };
  const orig = t.sendRequest.bind(stack.transport);
  t.sendRequest = (m, d) => {
    sent.push(m);
    return orig(m, d);
  };
  return sent;
}

/** Every message sent from `port`, as `METHOD cseq` or `status cseq`, from the diagnostics channel. */
function traceSent(port: number): { lines: string[]; stop(): void } {
  const lines: string[] = [];
  const ch = diagnosticsChannel.channel('switchboard:transport:send');
  const listener = (msg: unknown): void => {
    const e = msg as TransportMessageEvent;
    if (e.local.port !== port) return;
    lines.push(`${e.kind === 'request' ? e.method : e.status} ${e.cseq}`);
  };
  ch.subscribe(listener);
  return { lines, stop: () => ch.unsubscribe(listener) };
}

interface Pair {
  a: Stack;
  b: Stack;
  alice: UserAgent;
  bob: UserAgent;
  close(): Promise<void>;
}

type UaExtras = Omit<UserAgentOptions, 'aor'>;

async function pair(bobOptions: UaExtras = {}, aliceOptions: UaExtras = {}): Promise<Pair> {
  const a = await createStack({ listen: ['udp:127.0.0.1:0'] });
  const b = await createStack({ listen: ['udp:127.0.0.1:0'] });
  const alice = new UserAgent(a, { aor: 'sip:alice@127.0.0.1', ...aliceOptions });
  const bob = new UserAgent(b, { aor: 'sip:bob@127.0.0.1', ...bobOptions });
  return {
    a,
    b,
    alice,
    bob,
    close: async () => {
      await a.close();
      await b.close();
    },
  };
}

/** Alice calls Bob, who answers at once; resolves with both ends. */
async function establish(
  p: Pair,
  onInvite?: (c: IncomingCall) => Promise<void>,
  onProgress?: (r: SipResponse) => void,
): Promise<[Call, IncomingCall]> {
  let bobCall: IncomingCall | undefined;
  p.bob.on('invite', (c: IncomingCall) => {
    bobCall = c;
    void (onInvite ?? ((x: IncomingCall) => x.answer(ANSWER)))(c);
  });
  const call = await within(
    p.alice.call(uriOf(p.b, 'bob'), {
      sdp: OFFER,
      ...(onProgress !== undefined ? { onProgress } : {}),
    }),
    4000,
    'call',
  );
  assert.ok(bobCall !== undefined);
  return [call, bobCall];
}

describe('in-dialog features between two stacks (UDP)', () => {
  it('INFO (RFC 6086): both directions, 200 and the info event; Info-Package on the wire', async () => {
    const p = await pair();
    try {
      const wireA = captureRequests(p.a);
      const [call, bobCall] = await establish(p);
      const got: string[] = [];
      bobCall.on('info', (m: SipRequest) =>
        got.push(`${m.getRaw('Info-Package')}:${m.bodyText()}`),
      );
      const res = await within(
        call.info('Signal=1\r\n', 'application/dtmf-relay', 'dtmf'),
        3000,
        'INFO',
      );
      assert.equal(res.status, 200);
      assert.deepEqual(got, ['dtmf:Signal=1\r\n']);
      const info = wireA.find((m) => m.method === 'INFO')!;
      assert.equal(info.getRaw('Info-Package'), 'dtmf');
      assert.equal(info.getRaw('Content-Type'), 'application/dtmf-relay');
      assert.equal(info.cseq.seq, 2);
      assert.equal(info.to.tag, bobCall.dialog!.id.localTag);
      // The callee sends INFO in the same dialog; a legacy INFO (no package).
      const back: string[] = [];
      call.on('info', (m: SipRequest) => back.push(m.bodyText()));
      const res2 = await within(bobCall.info('hello', 'text/plain'), 3000, 'INFO back');
      assert.equal(res2.status, 200);
      assert.deepEqual(back, ['hello']);
      assert.equal((await call.hangup())?.status, 200);
    } finally {
      await p.close();
    }
  });

  it('INFO with a package not accepted is answered 469 with Recv-Info (RFC 6086 §4.2.2)', async () => {
    const p = await pair({ infoPackages: ['dtmf'] });
    try {
      const [call] = await establish(p);
      const bad = await within(call.info('x', 'text/plain', 'foo'), 3000, 'INFO foo');
      assert.equal(bad.status, 469);
      assert.equal(bad.getRaw('Recv-Info'), 'dtmf');
      assert.equal((await call.info('Signal=5', 'application/dtmf-relay', 'dtmf')).status, 200);
      assert.equal((await call.info('legacy', 'text/plain')).status, 200);
      // Generic in-dialog request: an unknown method reaches the UA's 405.
      assert.equal((await call.sendRequest('FOO')).status, 405);
      assert.equal(call.state, 'established');
      await call.hangup();
    } finally {
      await p.close();
    }
  });

  it('re-INVITE (§14): new offer answered by the listener, 2xx ACKed, SDPs and target updated', async () => {
    const p = await pair();
    try {
      const wireA = captureRequests(p.a);
      const trace = traceSent(p.b.transport.listeners[0]!.local.port);
      const [call, bobCall] = await establish(p);
      const offers: (string | undefined)[] = [];
      bobCall.on('reinvite', (offer: string | undefined, respond: OfferResponder) => {
        offers.push(offer);
        void respond(ANSWER2);
      });
      const res = await within(call.reinvite(OFFER2), 3000, 're-INVITE');
      assert.equal(res.status, 200);
      assert.equal(call.remoteSdp, ANSWER2);
      assert.equal(call.localSdp, OFFER2);
      assert.deepEqual(offers, [OFFER2]);
      assert.equal(bobCall.remoteSdp, OFFER2);
      assert.equal(bobCall.localSdp, ANSWER2);
      const reinvite = wireA.find((m) => m.method === 'INVITE' && m.to.tag !== undefined)!;
      assert.equal(reinvite.cseq.seq, 2);
      assert.match(reinvite.getRaw('Contact') ?? '', /^<sip:/);
      assert.match(reinvite.getRaw('Allow') ?? '', /UPDATE/);
      await sleep(100);
      const acks = wireA.filter((m) => m.method === 'ACK').map((m) => m.cseq.seq);
      assert.deepEqual(acks, [1, 2]);
      // The ACK stopped Bob's 2xx retransmissions: one 200 for CSeq 2 INVITE.
      await sleep(700);
      trace.stop();
      assert.equal(trace.lines.filter((l) => l === '200 2 INVITE').length, 1);
      // Without a listener, a re-INVITE from Bob is answered with Alice's current SDP.
      const back = await within(bobCall.reinvite(ANSWER), 3000, 're-INVITE back');
      assert.equal(back.status, 200);
      assert.equal(back.bodyText(), OFFER2);
      assert.equal(call.remoteSdp, ANSWER);
      assert.equal(call.state, 'established');
      assert.equal((await call.hangup())?.status, 200);
    } finally {
      await p.close();
    }
  });

  it('re-INVITE glare: an INVITE arriving while ours is pending gets 491 (§14.2)', async () => {
    const p = await pair();
    try {
      const [call, bobCall] = await establish(p);
      let release: () => void = () => undefined;
      bobCall.on('reinvite', (_offer: string | undefined, respond: OfferResponder) => {
        release = () => void respond();
      });
      const pending = call.reinvite(OFFER2);
      await sleep(150);
      // Bob's INVITE overtakes: sent as a generic in-dialog request.
      const glare = await within(
        bobCall.sendRequest('INVITE', { body: ANSWER2, contentType: 'application/sdp' }),
        3000,
        'glare INVITE',
      );
      assert.equal(glare.status, 491);
      await assert.rejects(call.reinvite(OFFER), /in progress/);
      release();
      assert.equal((await within(pending, 3000, 're-INVITE')).status, 200);
      assert.equal(call.state, 'established');
      await call.hangup();
    } finally {
      await p.close();
    }
  });

  it('reliable 180 (RFC 3262): Require 100rel + RSeq, PRACK with RAck, 2xx only after the PRACK', async () => {
    const p = await pair();
    try {
      const wireA = captureRequests(p.a);
      const trace = traceSent(p.b.transport.listeners[0]!.local.port);
      let prackSeen = false;
      const progress: SipResponse[] = [];
      const [call, bobCall] = await establish(
        p,
        async (c) => {
          c.on('prack', () => (prackSeen = true));
          await c.ring({ reliable: true });
          await c.answer(ANSWER);
        },
        (r) => progress.push(r),
      );
      const ringing = progress.find((r) => r.status === 180)!;
      assert.equal(ringing.getRaw('Require'), '100rel');
      assert.match(ringing.getRaw('RSeq') ?? '', /^\d+$/);
      assert.match(ringing.getRaw('Contact') ?? '', /^<sip:/);
      assert.ok(prackSeen);
      const invite = wireA.find((m) => m.method === 'INVITE')!;
      assert.match(invite.getRaw('Supported') ?? '', /100rel/);
      assert.match(invite.getRaw('Allow') ?? '', /PRACK/);
      const pracks = wireA.filter((m) => m.method === 'PRACK');
      assert.equal(pracks.length, 1);
      assert.equal(pracks[0]!.getRaw('RAck'), `${ringing.getRaw('RSeq')} 1 INVITE`);
      assert.equal(pracks[0]!.cseq.seq, 2);
      assert.equal(pracks[0]!.to.tag, bobCall.dialog!.id.localTag);
      trace.stop();
      const order = trace.lines.filter((l) => /^(180|200) /.test(l));
      assert.deepEqual(order.slice(0, 3), ['180 1 INVITE', '200 2 PRACK', '200 1 INVITE']);
      // The next in-dialog request continues the CSeq after the PRACK.
      assert.equal((await call.hangup())?.status, 200);
      assert.equal(wireA.find((m) => m.method === 'BYE')!.cseq.seq, 3);
    } finally {
      await p.close();
    }
  });

  it('a lost PRACK: the 180 is retransmitted (T1 doubling), its retransmission is not PRACKed again', async () => {
    const p = await pair();
    try {
      // Drop Alice's first PRACK transmission; the PRACK transaction retransmits it.
      const t = p.a.transport as { sendRequest: Stack['transport']['sendRequest'] };
      const orig = t.sendRequest.bind(p.a.transport);
      const pracks: SipRequest[] = [];
      t.sendRequest = (m, d) => {
        if (m.method === 'PRACK') {
          pracks.push(m);
          if (pracks.length === 1) return Promise.resolve();
        }
        return orig(m, d);
      };
      const trace = traceSent(p.b.transport.listeners[0]!.local.port);
      const [call] = await establish(p, async (c) => {
        await c.ring({ reliable: true });
        await c.answer(ANSWER);
      });
      trace.stop();
      assert.ok(trace.lines.filter((l) => l === '180 1 INVITE').length >= 2, trace.lines.join());
      // One PRACK transaction (same CSeq and branch), retransmitted by its transaction.
      assert.ok(pracks.length >= 2);
      assert.equal(new Set(pracks.map((m) => m.topVia.branch)).size, 1);
      assert.equal(new Set(pracks.map((m) => m.cseq.seq)).size, 1);
      await call.hangup();
    } finally {
      await p.close();
    }
  });

  it('UPDATE (RFC 3311): in the early dialog from the callee, then confirmed from the caller', async () => {
    const p = await pair();
    try {
      const wireA = captureRequests(p.a);
      const wireB = captureRequests(p.b);
      const early: number[] = [];
      const [call, bobCall] = await establish(p, async (c) => {
        await c.ring({ reliable: true });
        await sleep(50);
        const r = await c.update(ANSWER2);
        early.push(r.status);
        await c.answer(ANSWER2);
      });
      assert.deepEqual(early, [200]);
      const earlyUpdate = wireB.find((m) => m.method === 'UPDATE')!;
      assert.match(earlyUpdate.getRaw('Contact') ?? '', /^<sip:/);
      assert.equal(earlyUpdate.bodyText(), ANSWER2);
      // Alice answered with her offer (no 'update' listener): her local SDP.
      assert.equal(bobCall.remoteSdp, OFFER);
      const seen: (string | undefined)[] = [];
      bobCall.on('update', (offer: string | undefined, respond: OfferResponder) => {
        seen.push(offer);
        void respond(ANSWER);
      });
      const res = await within(call.update(OFFER2), 3000, 'UPDATE');
      assert.equal(res.status, 200);
      assert.equal(res.bodyText(), ANSWER);
      assert.deepEqual(seen, [OFFER2]);
      assert.equal(call.remoteSdp, ANSWER);
      const upd = wireA.find((m) => m.method === 'UPDATE')!;
      assert.match(upd.getRaw('Contact') ?? '', /^<sip:/);
      assert.equal(upd.getRaw('Content-Type'), 'application/sdp');
      // UPDATE without an offer: a plain target refresh.
      assert.equal((await call.update()).status, 200);
      assert.equal((await call.hangup())?.status, 200);
    } finally {
      await p.close();
    }
  });

  // RFC 4028 with short intervals: allowShortSessionTimers lifts the 90 s floor (tests only).
  const SHORT = { allowShortSessionTimers: true, minSE: 1 } as const;

  it('session timers (RFC 4028): Session-Expires offered, refresher uac refreshes with UPDATE at half the interval', async () => {
    const p = await pair(SHORT, { ...SHORT, sessionExpires: 2 });
    try {
      const wireA = captureRequests(p.a);
      let ended = '';
      const [call, bobCall] = await establish(p, async (c) => {
        c.on('ended', (by: string) => (ended = by));
        await c.answer(ANSWER);
      });
      const invite = wireA.find((m) => m.method === 'INVITE')!;
      assert.equal(invite.getRaw('Session-Expires'), '2');
      assert.equal(invite.getRaw('Min-SE'), '1');
      assert.equal(invite.getRaw('Supported'), '100rel, timer');
      assert.deepEqual(call.sessionTimer, { interval: 2, refresher: true });
      assert.deepEqual(bobCall.sessionTimer, { interval: 2, refresher: false });
      await sleep(2300);
      // Two refreshes (at ~1 s and ~2 s), each carrying Session-Expires;refresher=uac.
      const updates = wireA.filter((m) => m.method === 'UPDATE');
      assert.ok(updates.length >= 2, `${updates.length} refreshes`);
      assert.equal(updates[0]!.getRaw('Session-Expires'), '2;refresher=uac');
      assert.equal(call.state, 'established');
      assert.equal(bobCall.state, 'established');
      assert.equal(ended, '');
      assert.equal((await call.hangup())?.status, 200);
    } finally {
      await p.close();
    }
  });

  it('session timers: 422 Session Interval Too Small, retried with the Min-SE (RFC 4028 §7.4)', async () => {
    const p = await pair({ ...SHORT, minSE: 3 }, { ...SHORT, sessionExpires: 2 });
    try {
      const wireA = captureRequests(p.a);
      const [call, bobCall] = await establish(p);
      const invites = wireA.filter((m) => m.method === 'INVITE');
      assert.deepEqual(
        invites.map((m) => [m.cseq.seq, m.getRaw('Session-Expires'), m.getRaw('Min-SE')]),
        [
          [1, '2', '1'],
          [2, '3', '3'],
        ],
      );
      assert.equal(invites[0]!.callId, invites[1]!.callId);
      assert.deepEqual(call.sessionTimer, { interval: 3, refresher: true });
      assert.deepEqual(bobCall.sessionTimer, { interval: 3, refresher: false });
      assert.equal((await call.hangup())?.status, 200);
    } finally {
      await p.close();
    }
  });

  it('session timers: no refresh before the interval ends, BYE and ended by timeout', async () => {
    const p = await pair(SHORT, { ...SHORT, sessionExpires: 2 });
    try {
      // Alice's refreshes are lost on the way.
      const t = p.a.transport as { sendRequest: Stack['transport']['sendRequest'] };
      const orig = t.sendRequest.bind(p.a.transport);
      t.sendRequest = (m, d) => (m.method === 'UPDATE' ? Promise.resolve() : orig(m, d));
      const wireB = captureRequests(p.b);
      const [call, bobCall] = await establish(p);
      const endings = Promise.all([
        new Promise<string>((r) => bobCall.once('ended', r)),
        new Promise<string>((r) => call.once('ended', r)),
      ]);
      const [byBob, byAlice] = await within(endings, 4000, 'session expiry');
      assert.equal(byBob, 'timeout');
      assert.ok(byAlice === 'remote' || byAlice === 'local', byAlice);
      assert.equal(wireB.filter((m) => m.method === 'BYE').length, 1);
    } finally {
      await p.close();
    }
  });
});
