/**
 * Two Switchboard stacks in one process talking over real sockets on loopback:
 * the public API (createStack, Stack.send/onRequest, UserAgent) end to end, over
 * UDP, TCP, TLS and WSS (certificates made by the test with openssl).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createStack,
  UserAgent,
  type Stack,
  type IncomingRequest,
} from '../../../src/stack/index.ts';
import { createDigestServer, ha1 } from '../../../src/auth/index.ts';
import { createRequest, createResponse, type SipResponse } from '../../../src/sip/index.ts';
import { cryptoRandom, systemClock } from '../../../src/base/index.ts';
import { makeCerts, within, type TestCerts } from '../transport/support.ts';
import { createSipResolver, type DnsResolver } from '../../../src/transport/index.ts';
import { createServer } from 'node:net';

const OFFER =
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';
const ANSWER = OFFER.replace('40000', '40002');

function uriOf(stack: Stack, user: string): string {
  const l = stack.transport.listeners[0]!;
  const t = l.protocol === 'udp' ? '' : l.protocol === 'tls' ? '' : `;transport=${l.protocol}`;
  const scheme = l.protocol === 'tls' || l.protocol === 'wss' ? 'sips' : 'sip';
  return `${scheme}:${user}@${l.local.address}:${l.local.port}${t}`;
}

async function pair(
  protocol: 'udp' | 'tcp' | 'tls' | 'wss',
  certs?: TestCerts,
): Promise<[Stack, Stack]> {
  const tls = certs !== undefined ? { cert: certs.cert, key: certs.key, ca: certs.ca } : undefined;
  const a = await createStack({ listen: [`${protocol}:127.0.0.1:0`], ...(tls ? { tls } : {}) });
  const b = await createStack({ listen: [`${protocol}:127.0.0.1:0`], ...(tls ? { tls } : {}) });
  return [a, b];
}

describe('two stacks in one process', () => {
  let certs: TestCerts;
  before(() => {
    certs = makeCerts();
  });
  after(() => certs.cleanup());

  for (const protocol of ['udp', 'tcp', 'tls', 'wss'] as const) {
    it(`call over ${protocol}: INVITE, 180, 200 with SDP, ACK, BYE`, async () => {
      const [a, b] = await pair(
        protocol,
        protocol === 'tls' || protocol === 'wss' ? certs : undefined,
      );
      try {
        const alice = new UserAgent(a, { aor: 'sip:alice@127.0.0.1' });
        const bob = new UserAgent(b, { aor: 'sip:bob@127.0.0.1' });
        const events: string[] = [];
        let acked: () => void = () => undefined;
        const ackSeen = new Promise<void>((r) => (acked = r));
        bob.on('invite', (call) => {
          events.push(`offer:${call.remoteSdp?.includes('m=audio 40000') === true}`);
          void call.ring().then(() => call.answer(ANSWER));
          call.on('ended', (by: string) => {
            events.push(`bob-ended:${by}`);
            acked();
          });
        });
        const call = await within(alice.call(uriOf(b, 'bob'), { sdp: OFFER }), 5000, 'call');
        assert.equal(call.state, 'established');
        assert.match(call.remoteSdp ?? '', /m=audio 40002/);
        const bye = await within(call.hangup(), 5000, 'BYE');
        assert.equal(bye?.status, 200);
        await within(ackSeen, 5000, 'remote end');
        assert.deepEqual(events, ['offer:true', 'bob-ended:remote']);
      } finally {
        await a.close();
        await b.close();
      }
    });
  }

  it('OPTIONS and MESSAGE out of dialog; an unknown method gets 405 with Allow', async () => {
    const [a, b] = await pair('udp');
    try {
      const alice = new UserAgent(a, { aor: 'sip:alice@127.0.0.1' });
      const bob = new UserAgent(b, { aor: 'sip:bob@127.0.0.1' });
      const got: string[] = [];
      bob.on('message', (m: { bodyText(): string }) => got.push(m.bodyText()));
      assert.equal((await alice.options(uriOf(b, 'bob'))).status, 200);
      assert.equal((await alice.message(uriOf(b, 'bob'), 'hello bob')).status, 200);
      assert.deepEqual(got, ['hello bob']);
      const req = createRequest({
        method: 'FOO',
        uri: uriOf(b, 'bob'),
        from: '<sip:alice@127.0.0.1>;tag=1',
        to: `<${uriOf(b, 'bob')}>`,
        callId: a.ids.callId(),
        cseq: 1,
      });
      const res = await a.send(req).final;
      assert.equal(res.status, 405);
      assert.match(res.getRaw('Allow') ?? '', /INVITE/);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('CANCEL while ringing: 487 for the INVITE (§9)', async () => {
    const [a, b] = await pair('udp');
    try {
      const bob = new UserAgent(b, { aor: 'sip:bob@127.0.0.1' });
      let cancelled = false;
      bob.on('invite', (call) => {
        void call.ring();
        call.on('cancelled', () => (cancelled = true));
      });
      // Stack.send with onProvisional: CANCEL as soon as 180 arrives.
      const failure = await within(
        (async () => {
          const req = createRequest({
            method: 'INVITE',
            uri: uriOf(b, 'bob'),
            from: '<sip:alice@127.0.0.1>;tag=c1',
            to: `<${uriOf(b, 'bob')}>`,
            callId: a.ids.callId(),
            cseq: 1,
            contact: a.contactFor(
              a.nextHop(
                createRequest({
                  method: 'X',
                  uri: uriOf(b, 'bob'),
                  from: '<sip:a@b>;tag=1',
                  to: '<sip:a@b>',
                  callId: 'x',
                  cseq: 1,
                }),
              ),
            ),
            body: OFFER,
            contentType: 'application/sdp',
          });
          const holder: { out?: { cancel(): void } } = {};
          const o = a.send(req, {
            onProvisional: (r) => {
              if (r.status === 180) holder.out?.cancel();
            },
          });
          holder.out = o;
          return o.final;
        })(),
        5000,
        'cancelled INVITE',
      );
      assert.equal(failure.status, 487);
      assert.equal(cancelled, true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('digest challenge: 401 with SHA-256 and MD5, the UAC retries with credentials (§22.2)', async () => {
    const [a, b] = await pair('tcp');
    try {
      const server = createDigestServer({
        realm: 'example.com',
        secret: new Uint8Array(32).fill(7),
        clock: systemClock(),
        random: cryptoRandom(),
        lookup: (user, realm, hash) =>
          user === 'alice' ? ha1(hash, 'alice', realm, 'wonderland') : undefined,
      });
      const seen: number[] = [];
      b.onRequest((req: IncomingRequest) => {
        void (async () => {
          const r = await server.verify(req.message, { proxy: false });
          if (!r.ok) {
            seen.push(401);
            await req.transaction!.respond(
              server.challenge(req.message, { proxy: false, stale: r.reason === 'stale' }),
            );
            return;
          }
          seen.push(200);
          await req.reply(200);
        })();
      });
      const good = new UserAgent(a, {
        aor: 'sip:alice@127.0.0.1',
        credentials: { username: 'alice', password: 'wonderland' },
      });
      assert.equal(
        (await within(good.message(uriOf(b, 'x'), 'hi'), 5000, 'authorized MESSAGE')).status,
        200,
      );
      assert.deepEqual(seen, [401, 200]);
      const bad = new UserAgent(a, {
        aor: 'sip:alice@127.0.0.1',
        credentials: { username: 'alice', password: 'nope' },
      });
      const res = await within(bad.message(uriOf(b, 'x'), 'hi'), 5000, 'refused MESSAGE');
      assert.equal(res.status, 401, 'a refused password ends with the 401, no endless retries');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('in-dialog rules: unknown dialog gets 481, an out-of-order CSeq 500 (§12.2.2)', async () => {
    const [a, b] = await pair('udp');
    try {
      const alice = new UserAgent(a, { aor: 'sip:alice@127.0.0.1' });
      const bob = new UserAgent(b, { aor: 'sip:bob@127.0.0.1' });
      bob.on('invite', (call) => void call.answer(ANSWER));
      const call = await within(alice.call(uriOf(b, 'bob'), { sdp: OFFER }), 5000, 'call');
      const dialog = call.dialog!;
      const info1 = dialog.createRequest('INFO');
      const ok = await a.send(info1).final;
      assert.equal(ok.status, 200, 'INFO in the dialog is answered (RFC 6086)');
      const stale = dialog.createRequest('INFO', { seq: 1 });
      assert.equal((await a.send(stale).final).status, 500);
      const orphan = createRequest({
        method: 'BYE',
        uri: uriOf(b, 'bob'),
        from: '<sip:alice@127.0.0.1>;tag=zz',
        to: '<sip:bob@127.0.0.1>;tag=nope',
        callId: 'no-such-call',
        cseq: 5,
      });
      assert.equal((await a.send(orphan).final).status, 481);
      assert.equal((await call.hangup())?.status, 200);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('REGISTER with refresh, and SUBSCRIBE with NOTIFY', async () => {
    const [a, b] = await pair('udp');
    try {
      const registrations: number[] = [];
      b.onRequest((req) => {
        const m = req.message;
        if (m.method === 'REGISTER') {
          registrations.push(m.cseq.seq);
          void req.reply(200, {
            headers: [['Contact', `${m.getRaw('Contact') ?? ''};expires=2`]],
          });
          return;
        }
        if (m.method === 'SUBSCRIBE') {
          void (async () => {
            const res: SipResponse = await req.reply(200, {
              headers: [
                ['Expires', '60'],
                ['Contact', b.contactFor(b.nextHop(m))],
              ],
            });
            // RFC 6665 §4.2.1.2: an immediate NOTIFY in the new dialog.
            const notify = createRequest({
              method: 'NOTIFY',
              uri: m.getRaw('Contact')!.replace(/^<|>$/g, ''),
              from: `${m.getRaw('To')};tag=${res.to.tag}`,
              to: m.getRaw('From')!,
              callId: m.callId,
              cseq: 1,
              headers: [
                ['Event', 'presence'],
                ['Subscription-State', 'terminated;reason=timeout'],
              ],
              body: '<presence/>',
              contentType: 'application/pidf+xml',
            });
            await b.send(notify).final;
          })();
          return;
        }
        void req.reply(501);
      });
      const alice = new UserAgent(a, {
        aor: `sip:alice@127.0.0.1`,
        outboundProxy: uriOf(b, 'registrar').replace(/^sip:[^@]+@/, 'sip:'),
      });
      const reg = await within(
        alice.register({
          registrar: uriOf(b, 'registrar').replace(/^sip:[^@]+@/, 'sip:'),
          expires: 2,
        }),
        5000,
        'REGISTER',
      );
      assert.equal(reg.expires, 2);
      // The refresh runs at half the granted time.
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(registrations.length >= 2, `refreshed: CSeqs ${registrations.join(',')}`);
      assert.ok(registrations[1]! > registrations[0]!, 'CSeq increases across refreshes (§10.2.4)');
      const off = await reg.unregister();
      assert.equal(off.status, 200);

      let gotNotify: (m: { bodyText(): string }) => void = () => undefined;
      const notified = new Promise<{ bodyText(): string }>((r) => (gotNotify = r));
      const sub = await within(
        alice.subscribe(uriOf(b, 'bob'), 'presence', { onNotify: (m) => gotNotify(m) }),
        5000,
        'SUBSCRIBE',
      );
      assert.equal(sub.response?.status, 200);
      const notify = await within(notified, 5000, 'NOTIFY');
      assert.equal(notify.bodyText(), '<presence/>');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('the answer is retransmitted over UDP until the ACK (§13.3.1.4)', async () => {
    const [a, b] = await pair('udp');
    try {
      const bob = new UserAgent(b, { aor: 'sip:bob@127.0.0.1' });
      bob.on('invite', (call) => void call.answer(ANSWER));
      let twoHundreds = 0;
      // A raw INVITE that never ACKs: count the 2xx retransmissions for ~1.7 s (T1 = 500 ms: at 0.5 s and 1.5 s).
      const req = createRequest({
        method: 'INVITE',
        uri: uriOf(b, 'bob'),
        from: '<sip:alice@127.0.0.1>;tag=noack',
        to: `<${uriOf(b, 'bob')}>`,
        callId: a.ids.callId(),
        cseq: 1,
        contact: '<sip:alice@127.0.0.1:9>',
        body: OFFER,
        contentType: 'application/sdp',
      });
      a.transactions.setDelegate({
        onRequest: (tx) => void tx.respond(createResponse(tx.request, 501)),
        onAck: () => undefined,
        onCancel: () => undefined,
        onStrayResponse: (r) => {
          if (r.message.status === 200) twoHundreds++;
        },
      });
      const dest = a.nextHop(req);
      const via = `SIP/2.0/UDP 127.0.0.1:${a.transport.listeners[0]!.local.port};branch=${a.ids.branch()};rport`;
      a.transactions.sendRequest(req.prepend('Via', via), dest, {
        onResponse: (r) => {
          if (r.status === 200) twoHundreds++;
        },
        onTimeout: () => undefined,
        onTransportError: () => undefined,
      });
      await new Promise((r) => setTimeout(r, 1700));
      assert.ok(twoHundreds >= 3, `2xx seen ${twoHundreds} times (first + retransmissions)`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('RFC 3263: a name resolves through SRV; a refused target fails over to the next (§4.3)', async () => {
    // A TCP port that refuses: bind, read the port, close.
    const dead = await new Promise<number>((r) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const port = (srv.address() as { port: number }).port;
        srv.close(() => r(port));
      });
    });
    const b = await createStack({ listen: ['tcp:127.0.0.1:0'] });
    const live = b.transport.listeners[0]!.local.port;
    const dns: DnsResolver = {
      resolveNaptr: () => Promise.resolve([]),
      resolveSrv: (name) =>
        Promise.resolve(
          name === '_sip._tcp.bob.example'
            ? [
                { name: 'dead.bob.example', port: dead, priority: 10, weight: 0 },
                { name: 'live.bob.example', port: live, priority: 20, weight: 0 },
              ]
            : [],
        ),
      resolve4: (name) => Promise.resolve(name.endsWith('.bob.example') ? ['127.0.0.1'] : []),
      resolve6: () => Promise.resolve([]),
    };
    const a = await createStack({
      listen: ['tcp:127.0.0.1:0'],
      resolver: createSipResolver({ dns }),
    });
    try {
      const alice = new UserAgent(a, { aor: 'sip:alice@127.0.0.1' });
      new UserAgent(b, { aor: 'sip:bob@bob.example' });
      const res = await within(
        alice.options('sip:bob@bob.example;transport=tcp'),
        5000,
        'OPTIONS via SRV',
      );
      assert.equal(res.status, 200);
      // Nothing resolves: 503 without sending.
      const none = await within(
        alice.options('sip:bob@nowhere.example;transport=tcp'),
        5000,
        'no target',
      );
      assert.equal(none.status, 503);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('forked 2xx (§13.2.2.4): both are ACKed, the call keeps the first dialog and BYEs the other', async () => {
    const [a, b] = await pair('udp');
    try {
      const byes: string[] = [];
      const acks: string[] = [];
      b.onRequest((req) => {
        const m = req.message;
        if (m.method === 'INVITE' && req.transaction !== undefined) {
          // Downstream forking, as a proxy would pass it on: two 2xx with different To tags.
          const contact = b.contactFor(b.nextHop(m));
          for (const tag of ['fork-a', 'fork-b']) {
            void req.transaction
              .respond(
                createResponse(m, 200, {
                  toTag: tag,
                  headers: [['Contact', contact]],
                  body: ANSWER,
                  contentType: 'application/sdp',
                }),
              )
              .catch(() => undefined);
          }
          return;
        }
        if (m.method === 'ACK') {
          acks.push(m.to.tag ?? '');
          return;
        }
        void req.reply(200).catch(() => undefined);
      });
      // No dialogs exist on b (its 2xx were built by hand): in-dialog requests reach it as orphans.
      b.onOrphanRequest((req) => {
        if (req.message.method !== 'BYE') return false;
        byes.push(req.message.to.tag ?? '');
        void req.reply(200).catch(() => undefined);
        return true;
      });
      const alice = new UserAgent(a, { aor: 'sip:alice@127.0.0.1' });
      const call = await within(alice.call(uriOf(b, 'bob'), { sdp: OFFER }), 5000, 'forked call');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(call.dialog?.id.remoteTag, 'fork-a');
      assert.deepEqual([...acks].sort(), ['fork-a', 'fork-b']);
      assert.deepEqual(byes, ['fork-b']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
