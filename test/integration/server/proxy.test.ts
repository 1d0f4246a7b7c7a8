/**
 * The stateful proxy (RFC 3261 §16) in one process: a server stack with the registrar
 * and the proxy on the SQLite store, and user agents on their own stacks, over UDP and
 * TCP on loopback. Callees register with digest auth, then calls go through the proxy:
 * forking, CANCEL, Timer C, 3xx recursion, 6xx, Record-Route, and the §16.3 checks.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cryptoRandom, systemClock } from '../../../src/base/index.ts';
import { createDigestServer, type DigestServer } from '../../../src/auth/index.ts';
import { createProxy, type Proxy } from '../../../src/services/proxy/index.ts';
import { createRegistrar } from '../../../src/services/registrar/index.ts';
import { createStack, UserAgent, type IncomingCall, type Stack } from '../../../src/stack/index.ts';
import {
  createRequest,
  createResponse,
  type SipRequest,
  type SipResponse,
} from '../../../src/sip/index.ts';
import { credentialsFor } from '../../../src/cli/aor.ts';
import {
  TRANSPORT_CHANNELS,
  type TransportMessageEvent,
} from '../../../src/transport/diagnostics.ts';
import { openSqliteStore, type SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { within } from '../../support/server.ts';

const SDP =
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';
const USERS = ['alice', 'bob', 'carol', 'dave'];

interface Server {
  readonly stack: Stack;
  readonly store: SqliteStore;
  readonly proxy: Proxy;
  readonly dir: string;
  readonly udp: number;
  readonly tcp: number;
  close(): Promise<void>;
}

async function startServer(o: { timerC?: number } = {}): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-proxy-'));
  const store = openSqliteStore(dir);
  await store.domains.add('example.com');
  for (const u of USERS) {
    await store.users.add(`sip:${u}@example.com`, credentialsFor(u, 'example.com', `${u}-pw`));
  }
  const clock = systemClock();
  const random = cryptoRandom();
  const stack = await createStack({
    listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
    clock,
    random,
  });
  const secret = new Uint8Array(32).fill(7);
  const digests = new Map<string, DigestServer>();
  const digest = (realm: string): DigestServer => {
    let d = digests.get(realm);
    if (d === undefined) {
      d = createDigestServer({
        realm,
        secret,
        clock,
        random,
        lookup: async (username, r, hash) => {
          const u = await store.users.get(`sip:${username}@${r}`);
          return u === undefined ? undefined : hash === 'MD5' ? u.ha1Md5 : u.ha1Sha256;
        },
      });
      digests.set(realm, d);
    }
    return d;
  };
  const common = {
    users: store.users,
    domains: store.domains,
    location: store.location,
    digest,
    clock,
  };
  const registrar = createRegistrar(common);
  const proxy = createProxy({
    stack,
    ...common,
    register: (req) => registrar.handle(req),
    ...(o.timerC !== undefined ? { timerC: o.timerC } : {}),
  });
  const port = (p: string): number =>
    stack.transport.listeners.find((l) => l.protocol === p)!.local.port;
  return {
    stack,
    store,
    proxy,
    dir,
    udp: port('udp'),
    tcp: port('tcp'),
    close: async () => {
      proxy.close();
      await stack.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Phone {
  readonly stack: Stack;
  readonly ua: UserAgent;
  close(): Promise<void>;
}

async function phone(
  server: Server,
  user: string,
  o: { transport?: 'udp' | 'tcp'; register?: boolean; q?: number; password?: string } = {},
): Promise<Phone> {
  const transport = o.transport ?? 'udp';
  const stack = await createStack({ listen: [`${transport}:127.0.0.1:0`] });
  const port = transport === 'udp' ? server.udp : server.tcp;
  const ua = new UserAgent(stack, {
    aor: `sip:${user}@example.com`,
    credentials: { username: user, password: o.password ?? `${user}-pw` },
    outboundProxy: `sip:127.0.0.1:${port}${transport === 'tcp' ? ';transport=tcp' : ''}`,
  });
  let registration: { unregister(): Promise<unknown> } | undefined;
  if (o.register !== false) {
    if (o.q !== undefined) {
      await registerWithQ(stack, server, user, o.q, transport);
    } else {
      registration = await within(ua.register({ expires: 600 }), 10_000, `${user} REGISTER`);
    }
  }
  let closed = false;
  return {
    stack,
    ua,
    // The UA refreshes its registration on a timer: unregistering stops it.
    close: async () => {
      if (closed) return;
      closed = true;
      await within(registration?.unregister() ?? Promise.resolve(), 5_000, 'un-REGISTER').catch(
        () => undefined,
      );
      await stack.close();
    },
  };
}

/** A REGISTER with a q value on the contact (UserAgent.register has no q option). */
async function registerWithQ(
  stack: Stack,
  server: Server,
  user: string,
  q: number,
  transport: 'udp' | 'tcp',
): Promise<void> {
  const dest = {
    protocol: transport,
    address: '127.0.0.1',
    port: transport === 'udp' ? server.udp : server.tcp,
  } as const;
  const contact = stack.contactFor(dest, user);
  const req = createRequest({
    method: 'REGISTER',
    uri: 'sip:example.com',
    from: `<sip:${user}@example.com>;tag=${stack.ids.tag()}`,
    to: `<sip:${user}@example.com>`,
    callId: stack.ids.callId(),
    cseq: 1,
    contact: `${contact};q=${q}`,
    headers: [['Expires', '600']],
  });
  const res = await within(
    stack.send(req, { destination: dest, credentials: { username: user, password: `${user}-pw` } })
      .final,
    10_000,
    'REGISTER with q',
  );
  assert.equal(res.status, 200);
}

/** Waits for the first 'invite' on a phone. */
function nextInvite(p: Phone): Promise<IncomingCall> {
  return within(
    new Promise<IncomingCall>((resolve) => p.ua.once('invite', resolve)),
    10_000,
    'an INVITE at the callee',
  );
}

async function callFails(p: Phone, uri: string): Promise<SipResponse> {
  try {
    await within(p.ua.call(uri, { sdp: SDP }), 20_000, `call to ${uri}`);
  } catch (e) {
    const r = (e as { response?: SipResponse }).response;
    if (r !== undefined) return r;
    throw e;
  }
  throw new Error(`call to ${uri} was answered`);
}

describe('stateful proxy (RFC 3261 §16)', { timeout: 180_000 }, () => {
  let server: Server;
  const phones: Phone[] = [];
  const track = (p: Phone): Phone => {
    phones.push(p);
    return p;
  };

  before(async () => {
    server = await startServer();
  });
  after(async () => {
    for (const p of phones) await p.close().catch(() => undefined);
    await server.close();
  });

  it('a call between registered users: 180 and 200 through the proxy, ACK and BYE on the Record-Route', async () => {
    const bob = track(await phone(server, 'bob'));
    const alice = track(await phone(server, 'alice'));
    const invited = nextInvite(bob);
    const progress: number[] = [];
    const calling = alice.ua.call('sip:bob@example.com', {
      sdp: SDP,
      onProgress: (r) => progress.push(r.status),
    });
    const incoming = await invited;
    const inv = incoming.request.message;
    assert.equal(
      inv.uri.kind === 'sip' && inv.uri.port,
      bob.stack.transport.listeners[0]!.local.port,
    );
    assert.equal(inv.count('Via'), 2, 'the proxy added its Via');
    assert.match(
      inv.getRaw('Record-Route') ?? '',
      new RegExp(`<sip:127\\.0\\.0\\.1:${server.udp};lr>`),
    );
    assert.equal(inv.maxForwards, 69);
    assert.equal(inv.has('Proxy-Authorization'), false, 'our credentials are consumed');
    await incoming.ring();
    await incoming.answer(SDP);
    const call = await within(calling, 10_000, 'the call to be answered');
    assert.ok(progress.includes(180));
    const ended = within(
      new Promise<void>((r) => incoming.once('ended', () => r())),
      10_000,
      'BYE at bob',
    );
    const bye = await within(call.hangup(), 10_000, 'BYE response');
    assert.equal(bye?.status, 200);
    await ended;
    await bob.close();
    await server.store.location.removeAll('sip:bob@example.com');
  });

  it('§16.3: 483 for Max-Forwards 0, 416 for a tel: URI, 420 for Proxy-Require, 200 for OPTIONS to the server', async () => {
    const alice = track(await phone(server, 'alice', { register: false }));
    const send = (m: SipRequest): Promise<SipResponse> =>
      within(
        alice.stack.send(m, {
          destination: { protocol: 'udp', address: '127.0.0.1', port: server.udp },
          credentials: { username: 'alice', password: 'alice-pw' },
        }).final,
        10_000,
        m.method,
      );
    const base = (uri: string, headers: [string, string][] = []): SipRequest =>
      createRequest({
        method: 'MESSAGE',
        uri,
        from: `<sip:alice@example.com>;tag=${alice.stack.ids.tag()}`,
        to: `<${uri}>`,
        callId: alice.stack.ids.callId(),
        cseq: 1,
        headers,
        body: 'hi',
        contentType: 'text/plain',
      });
    assert.equal((await send(base('sip:bob@example.com').set('Max-Forwards', '0'))).status, 483);
    assert.equal((await send(base('tel:+15551234'))).status, 416);
    const pr = await send(base('sip:bob@example.com', [['Proxy-Require', 'foo, bar']]));
    assert.equal(pr.status, 420);
    assert.equal(pr.getRaw('Unsupported'), 'foo, bar');
    const opt = createRequest({
      method: 'OPTIONS',
      uri: `sip:127.0.0.1:${server.udp}`,
      from: `<sip:alice@example.com>;tag=${alice.stack.ids.tag()}`,
      to: `<sip:127.0.0.1:${server.udp}>`,
      callId: alice.stack.ids.callId(),
      cseq: 1,
    });
    const o = await send(opt.set('Max-Forwards', '0'));
    assert.equal(o.status, 200);
    assert.match(o.getRaw('Allow') ?? '', /INVITE/);
  });

  it('§8.2.7: challenges are stateless: no transaction is kept, a retransmission gets the same 407, the ACK of the 407 goes nowhere', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const me = sock.address().port;
    // The Request-URI names a socket by address, so a forwarded ACK would have somewhere to go.
    const target = createSocket('udp4');
    await new Promise<void>((r) => target.bind(0, '127.0.0.1', () => r()));
    const atTarget: string[] = [];
    target.on('message', (b) => atTarget.push(b.toString('latin1')));
    const ruri = `sip:bob@127.0.0.1:${target.address().port}`;
    const got: string[] = [];
    sock.on('message', (b) => got.push(b.toString('latin1')));
    const sentByServer: TransportMessageEvent[] = [];
    const onSend = (e: unknown): void => void sentByServer.push(e as TransportMessageEvent);
    diagnosticsChannel.subscribe(TRANSPORT_CHANNELS.send, onSend);
    const send = (text: string): void => sock.send(text, server.udp, '127.0.0.1');
    const nextReply = async (n: number): Promise<string> => {
      for (let i = 0; i < 100 && got.length < n; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(got.length >= n, `response ${n} arrived`);
      return got[n - 1]!;
    };
    const toTag = (m: string): string | undefined => /^To:.*;tag=([^;\r]+)/m.exec(m)?.[1];
    const nonce = (m: string): string | undefined => /nonce="([^"]+)"/.exec(m)?.[1];
    try {
      const callId = 'stateless-407@127.0.0.1';
      const branch = 'z9hG4bK-stateless-1';
      const head = (method: string, to: string): string =>
        `${method} ${ruri} SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=${branch};rport\r\n` +
        `Route: <sip:127.0.0.1:${server.udp};lr>\r\n` +
        'Max-Forwards: 70\r\n' +
        'From: <sip:alice@example.com>;tag=a1\r\n' +
        `To: ${to}\r\n` +
        `Call-ID: ${callId}\r\n` +
        `CSeq: 1 ${method}\r\n`;
      const invite =
        head('INVITE', '<sip:bob@example.com>') +
        `Contact: <sip:alice@127.0.0.1:${me}>\r\n` +
        `Content-Type: application/sdp\r\nContent-Length: ${SDP.length}\r\n\r\n${SDP}`;
      const before = server.stack.transactions.size.server;
      send(invite);
      const first = await nextReply(1);
      assert.match(first, /^SIP\/2\.0 407 /);
      const tag = toTag(first);
      assert.ok(tag !== undefined, 'the 407 has a To tag');
      assert.equal(server.stack.transactions.size.server, before, 'no server transaction kept');
      // The 407 is lost: the INVITE comes again and is challenged again, with the same To tag.
      send(invite);
      const second = await nextReply(2);
      assert.match(second, /^SIP\/2\.0 407 /);
      assert.equal(toTag(second), tag, 'the same To tag for the same request (§8.2.7)');
      // And the same nonce, derived from the request and the second (auth/nonce.ts): the whole
      // 407 is the same, as for a retransmission, unless the two straddle a second.
      const stamp = (m: string): number => Buffer.from(nonce(m)!, 'base64url').readUInt32BE(4);
      if (nonce(second) === nonce(first)) assert.equal(second, first, 'the same 407');
      else assert.equal(stamp(second) - stamp(first), 1000, 'a nonce of the next second');
      // §17.1.1.3: the ACK of the 407, same branch; it has a Route to us, so only its To tag
      // tells the proxy that it is the ACK of its own stateless response.
      send(`${head('ACK', `<sip:bob@example.com>;tag=${tag}`)}Content-Length: 0\r\n\r\n`);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(
        sentByServer.filter((e) => e.callId === callId && e.kind === 'request'),
        [],
        'nothing forwarded',
      );
      assert.deepEqual(atTarget, [], 'nothing reached the Request-URI');
      assert.equal(got.length, 2, 'no 100 Trying nor 407 retransmission (no Timer G)');
      // The same for a REGISTER: its 401 leaves nothing behind.
      send(
        'REGISTER sip:example.com SIP/2.0\r\n' +
          `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bK-stateless-2;rport\r\n` +
          'Max-Forwards: 70\r\nFrom: <sip:carol@example.com>;tag=c1\r\n' +
          'To: <sip:carol@example.com>\r\nCall-ID: stateless-401@127.0.0.1\r\nCSeq: 1 REGISTER\r\n' +
          `Contact: <sip:carol@127.0.0.1:${me}>\r\nContent-Length: 0\r\n\r\n`,
      );
      assert.match(await nextReply(3), /^SIP\/2\.0 401 /);
      assert.equal(server.stack.transactions.size.server, before, 'no server transaction kept');
      // An INVITE without Route (answered before any transaction is made, Stack.onScreen):
      // the same 407 again for its retransmission, its ACK dropped, nothing kept or forwarded.
      const plain = (method: string, to: string): string =>
        `${method} sip:bob@example.com SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bK-stateless-3;rport\r\n` +
        'Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a3\r\n' +
        `To: ${to}\r\nCall-ID: stateless-407b@127.0.0.1\r\nCSeq: 1 ${method}\r\n`;
      const invite2 =
        plain('INVITE', '<sip:bob@example.com>') +
        `Contact: <sip:alice@127.0.0.1:${me}>\r\n` +
        `Content-Type: application/sdp\r\nContent-Length: ${SDP.length}\r\n\r\n${SDP}`;
      send(invite2);
      const third = await nextReply(4);
      assert.match(third, /^SIP\/2\.0 407 /);
      assert.match(third, /^Proxy-Authenticate: Digest /m);
      assert.equal(server.stack.transactions.size.server, before, 'no server transaction kept');
      send(invite2);
      const fourth = await nextReply(5);
      assert.match(fourth, /^SIP\/2\.0 407 /);
      assert.equal(toTag(fourth), toTag(third), 'the same To tag for its retransmission');
      send(
        `${plain('ACK', `<sip:bob@example.com>;tag=${toTag(third)!}`)}Content-Length: 0\r\n\r\n`,
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(got.length, 5, 'no 100 Trying, no 407 retransmission, nothing for the ACK');
      assert.deepEqual(
        sentByServer.filter((e) => e.callId === 'stateless-407b@127.0.0.1' && e.kind === 'request'),
        [],
        'nothing forwarded',
      );
    } finally {
      diagnosticsChannel.unsubscribe(TRANSPORT_CHANNELS.send, onSend);
      sock.close();
      target.close();
    }
  });

  it('§22.3: our realm’s Proxy-Authorization is consumed, another realm’s passes on', async () => {
    const bob = track(await phone(server, 'bob'));
    const alice = track(await phone(server, 'alice', { register: false }));
    const got = within(
      new Promise<SipRequest>((resolve) => bob.ua.once('message', resolve)),
      10_000,
      'MESSAGE at bob',
    );
    const other =
      'Digest username="a", realm="Other.Example", nonce="n", uri="sip:x", response="r"';
    const m = createRequest({
      method: 'MESSAGE',
      uri: 'sip:bob@example.com',
      from: `<sip:alice@example.com>;tag=${alice.stack.ids.tag()}`,
      to: '<sip:bob@example.com>',
      callId: alice.stack.ids.callId(),
      cseq: 1,
      headers: [['Proxy-Authorization', other]],
      body: 'hi',
      contentType: 'text/plain',
    });
    const res = await within(
      alice.stack.send(m, {
        destination: { protocol: 'udp', address: '127.0.0.1', port: server.udp },
        credentials: { username: 'alice', password: 'alice-pw' },
      }).final,
      10_000,
      'MESSAGE',
    );
    assert.equal(res.status, 200);
    const at = await got;
    assert.deepEqual(at.getRawAll('Proxy-Authorization'), [other]);
    await bob.close();
    await server.store.location.removeAll('sip:bob@example.com');
  });

  it('who may call: 407 first, 403 when From is not the authenticated user, 404/480 for local callers, 480 for strangers, 403 for relaying', async () => {
    const alice = track(await phone(server, 'alice', { register: false }));
    const dest = { protocol: 'udp', address: '127.0.0.1', port: server.udp } as const;
    const msg = (from: string, uri: string): SipRequest =>
      createRequest({
        method: 'MESSAGE',
        uri,
        from: `<${from}>;tag=${alice.stack.ids.tag()}`,
        to: `<${uri}>`,
        callId: alice.stack.ids.callId(),
        cseq: 1,
        body: 'hi',
        contentType: 'text/plain',
      });
    const noCreds = await within(
      alice.stack.send(msg('sip:alice@example.com', 'sip:bob@example.com'), { destination: dest })
        .final,
      10_000,
      'MESSAGE',
    );
    assert.equal(noCreds.status, 407);
    assert.equal(noCreds.getRawAll('Proxy-Authenticate').length, 2, 'SHA-256 and MD5 (RFC 8760)');
    const creds = { username: 'alice', password: 'alice-pw' };
    const spoof = await within(
      alice.stack.send(msg('sip:carol@example.com', 'sip:bob@example.com'), {
        destination: dest,
        credentials: creds,
      }).final,
      10_000,
      'spoof',
    );
    assert.equal(spoof.status, 403);
    const wrongPw = await within(
      alice.stack.send(msg('sip:alice@example.com', 'sip:bob@example.com'), {
        destination: dest,
        credentials: { username: 'alice', password: 'nope' },
      }).final,
      10_000,
      'wrong password',
    );
    assert.equal(wrongPw.status, 407);
    const unknown = await within(
      alice.stack.send(msg('sip:alice@example.com', 'sip:nobody@example.com'), {
        destination: dest,
        credentials: creds,
      }).final,
      10_000,
      'unknown user',
    );
    assert.equal(unknown.status, 404);
    const offline = await within(
      alice.stack.send(msg('sip:alice@example.com', 'sip:dave@example.com'), {
        destination: dest,
        credentials: creds,
      }).final,
      10_000,
      'offline user',
    );
    assert.equal(offline.status, 480);
    const strangerUnknown = await within(
      alice.stack.send(msg('sip:eve@elsewhere.test', 'sip:nobody@example.com'), {
        destination: dest,
      }).final,
      10_000,
      'stranger',
    );
    const strangerOffline = await within(
      alice.stack.send(msg('sip:eve@elsewhere.test', 'sip:dave@example.com'), { destination: dest })
        .final,
      10_000,
      'stranger',
    );
    assert.equal(strangerUnknown.status, 480);
    assert.equal(strangerOffline.status, 480, 'the same answer: users cannot be probed');
    const relay = await within(
      alice.stack.send(msg('sip:alice@example.com', 'sip:someone@127.0.0.2'), {
        destination: dest,
        credentials: creds,
      }).final,
      10_000,
      'relay',
    );
    assert.equal(relay.status, 403);
    assert.match(relay.reason, /Relaying/);
    const relayStranger = await within(
      alice.stack.send(msg('sip:eve@elsewhere.test', 'sip:someone@127.0.0.2'), {
        destination: dest,
      }).final,
      10_000,
      'relay',
    );
    assert.equal(relayStranger.status, 403);
  });

  it('parallel forking: two contacts of one AOR ring, one answers, the other is CANCELled', async () => {
    const c1 = track(await phone(server, 'carol', { q: 0.5 }));
    const c2 = track(await phone(server, 'carol', { q: 0.5 }));
    const alice = track(await phone(server, 'alice', { register: false }));
    const i1 = nextInvite(c1);
    const i2 = nextInvite(c2);
    const calling = alice.ua.call('sip:carol@example.com', { sdp: SDP });
    const [a, b] = await Promise.all([i1, i2]);
    await a.ring();
    await b.ring();
    const cancelled = within(
      new Promise<void>((r) => b.once('cancelled', () => r())),
      10_000,
      'CANCEL at the other fork',
    );
    await a.answer(SDP);
    const call = await within(calling, 10_000, 'answer');
    await cancelled;
    await call.hangup();
    await c1.close();
    await c2.close();
    await server.store.location.removeAll('sip:carol@example.com');
  });

  it('sequential forking by q: the q=1.0 contact rejects, the q=0.3 contact answers', async () => {
    const high = track(await phone(server, 'carol', { q: 1 }));
    const low = track(await phone(server, 'carol', { q: 0.3 }));
    const alice = track(await phone(server, 'alice', { register: false }));
    let lowInvitedAt = 0;
    let highRejectedAt = 0;
    high.ua.once('invite', (c: IncomingCall) => {
      highRejectedAt = Date.now();
      void c.reject(486);
    });
    low.ua.once('invite', (c: IncomingCall) => {
      lowInvitedAt = Date.now();
      void c.answer(SDP);
    });
    const call = await within(
      alice.ua.call('sip:carol@example.com', { sdp: SDP }),
      15_000,
      'answer',
    );
    assert.ok(
      highRejectedAt > 0 && lowInvitedAt >= highRejectedAt,
      'the lower q is tried after the higher one failed',
    );
    await call.hangup();
    await high.close();
    await low.close();
    await server.store.location.removeAll('sip:carol@example.com');
  });

  it('best response: 486 and 603 from two forks: 603 wins and cancels; 486 alone is forwarded', async () => {
    const c1 = track(await phone(server, 'carol'));
    const c2 = track(await phone(server, 'carol', { transport: 'tcp' }));
    const alice = track(await phone(server, 'alice', { register: false }));
    c1.ua.once('invite', (c: IncomingCall) => void c.ring());
    c2.ua.once('invite', (c: IncomingCall) => void c.reject(603));
    const r = await callFails(alice, 'sip:carol@example.com');
    assert.equal(r.status, 603);
    await c1.close();
    c2.ua.once('invite', (c: IncomingCall) => void c.reject(486));
    await server.store.location.removeAll('sip:carol@example.com');
    const c3 = track(await phone(server, 'carol', { transport: 'tcp' }));
    c3.ua.once('invite', (c: IncomingCall) => void c.reject(486));
    const r2 = await callFails(alice, 'sip:carol@example.com');
    assert.equal(r2.status, 486);
    await c2.close();
    await c3.close();
    await server.store.location.removeAll('sip:carol@example.com');
  });

  it('CANCEL during ringing: the callee gets CANCEL, the caller 487', async () => {
    const bob = track(await phone(server, 'bob'));
    const alice = track(await phone(server, 'alice', { register: false }));
    const invited = nextInvite(bob);
    const invite = createRequest({
      method: 'INVITE',
      uri: 'sip:bob@example.com',
      from: `<sip:alice@example.com>;tag=${alice.stack.ids.tag()}`,
      to: '<sip:bob@example.com>',
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
    const cancelled = within(
      new Promise<void>((r) => incoming.once('cancelled', () => r())),
      10_000,
      'CANCEL at bob',
    );
    await incoming.ring();
    await cancelled;
    const final = await within(out.final, 10_000, 'the final response');
    assert.equal(final.status, 487);
    await bob.close();
    await server.store.location.removeAll('sip:bob@example.com');
  });

  it('double Record-Route when the call crosses from TCP to UDP (RFC 5658)', async () => {
    const bob = track(await phone(server, 'bob'));
    const alice = track(await phone(server, 'alice', { register: false, transport: 'tcp' }));
    const invited = nextInvite(bob);
    const calling = alice.ua.call('sip:bob@example.com', { sdp: SDP });
    const incoming = await invited;
    const rr = incoming.request.message.getRawAll('Record-Route').join(', ');
    assert.match(
      rr,
      new RegExp(
        `^<sip:127\\.0\\.0\\.1:${server.udp};r2=on;lr>, <sip:127\\.0\\.0\\.1:${server.tcp};transport=tcp;r2=on;lr>`,
      ),
    );
    await incoming.answer(SDP);
    const call = await within(calling, 10_000, 'answer');
    const ended = within(
      new Promise<void>((r) => incoming.once('ended', () => r())),
      10_000,
      'BYE at bob',
    );
    assert.equal((await within(call.hangup(), 10_000, 'BYE'))?.status, 200);
    await ended;
    await bob.close();
    await server.store.location.removeAll('sip:bob@example.com');
  });

  it('3xx recursion: bob redirects to carol, who answers', async () => {
    const bob = track(await phone(server, 'bob'));
    // bob's stack answers the INVITE itself with a 302 naming carol.
    bob.stack.onRequest((req) => {
      if (req.message.method === 'INVITE') {
        void req
          .reply(302, { headers: [['Contact', '<sip:carol@example.com>']] })
          .catch(() => undefined);
      }
    });
    const carol = track(await phone(server, 'carol'));
    carol.ua.once('invite', (c: IncomingCall) => void c.answer(SDP));
    const alice = track(await phone(server, 'alice', { register: false }));
    const call = await within(
      alice.ua.call('sip:bob@example.com', { sdp: SDP }),
      15_000,
      'answer by carol',
    );
    await call.hangup();
    await bob.close();
    await carol.close();
    await server.store.location.removeAll('sip:bob@example.com');
    await server.store.location.removeAll('sip:carol@example.com');
  });

  it('a final response carrying only the proxy Via still ends its branch (as its status)', async () => {
    const bob = track(await phone(server, 'bob'));
    bob.stack.onRequest((req) => {
      const m = req.message;
      if (m.method !== 'INVITE') return;
      // A broken UAS: its 486 keeps only the topmost Via (the proxy's).
      const top = m.getRawAll('Via')[0]!.split(/,(?![^<]*>)/)[0]!;
      const bad = createResponse(m.remove('Via').append('Via', top), 486, { toTag: 'broken' });
      void bob.stack.transport.sendResponse(bad, req.source).catch(() => undefined);
    });
    const alice = track(await phone(server, 'alice', { register: false }));
    const r = await callFails(alice, 'sip:bob@example.com');
    assert.equal(r.status, 486);
    await bob.close();
    await server.store.location.removeAll('sip:bob@example.com');
  });

  it('§16.7 step 5: 2xx responses after the final one still reach the caller: a second fork’s 200 and a retransmitted 200', async () => {
    // Two contacts of carol that answer by hand: c1 at once, and again 300 ms later (a
    // retransmission); c2 after 150 ms, once the proxy has sent c1's 200 upstream and its
    // response context is over (RFC 6026 §8.4: the branches wait in Accepted).
    const c1 = await createStack({ listen: ['udp:127.0.0.1:0'] });
    const c2 = await createStack({ listen: ['udp:127.0.0.1:0'] });
    const answer = (stack: Stack, tag: string, delays: readonly number[]): void =>
      stack.onRequest((req) => {
        const m = req.message;
        if (m.method !== 'INVITE') return;
        const port = stack.transport.listeners[0]!.local.port;
        const ok = createResponse(m, 200, {
          toTag: tag,
          headers: [['Contact', `<sip:carol@127.0.0.1:${port}>`]],
        });
        for (const d of delays) {
          setTimeout(
            () => void stack.transport.sendResponse(ok, req.source).catch(() => undefined),
            d,
          );
        }
      });
    answer(c1, 'one', [0, 300]);
    answer(c2, 'two', [150]);
    for (const [i, c] of [c1, c2].entries()) {
      await server.store.location.upsert({
        aor: 'sip:carol@example.com',
        contact: `sip:carol@127.0.0.1:${c.transport.listeners[0]!.local.port}`,
        expiresAt: Date.now() + 600_000,
        q: 1,
        callId: `late-2xx-${i}`,
        cseq: 1,
        path: [],
      });
    }
    const alice = track(await phone(server, 'alice', { register: false }));
    const alicePort = alice.stack.transport.listeners[0]!.local.port;
    const oks: TransportMessageEvent[] = [];
    const onSend = (e: unknown): void => {
      const m = e as TransportMessageEvent;
      if (m.kind === 'response' && m.status === 200 && m.remote.port === alicePort) {
        if (m.cseq?.endsWith('INVITE') === true) oks.push(m);
      }
    };
    diagnosticsChannel.subscribe(TRANSPORT_CHANNELS.send, onSend);
    try {
      const call = await within(
        alice.ua.call('sip:carol@example.com', { sdp: SDP }),
        10_000,
        'answer',
      );
      for (let i = 0; i < 100 && oks.length < 3; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(oks.length, 3, 'the first 200, the other fork’s 200 and the retransmission');
      assert.equal(new Set(oks.map((o) => o.callId)).size, 1);
      await call.hangup().catch(() => undefined);
    } finally {
      diagnosticsChannel.unsubscribe(TRANSPORT_CHANNELS.send, onSend);
      await c1.close();
      await c2.close();
      await server.store.location.removeAll('sip:carol@example.com');
    }
  });

  it('a loop through the proxy is detected by its branch (482), long before Max-Forwards (483)', async () => {
    // dave's binding points at the proxy itself: each pass spirals back.
    await server.store.location.upsert({
      aor: 'sip:dave@example.com',
      contact: `sip:dave@127.0.0.1:${server.udp}`,
      expiresAt: Date.now() + 600_000,
      q: 1,
      callId: 'loop',
      cseq: 1,
      path: [],
    });
    const alice = track(await phone(server, 'alice', { register: false }));
    const r = await callFails(alice, 'sip:dave@example.com');
    assert.equal(r.status, 482);
    await server.store.location.removeAll('sip:dave@example.com');
  });
});

describe('stateful proxy: Timer C (§16.8)', { timeout: 60_000 }, () => {
  it('a branch that rings past Timer C is CANCELled and the caller gets 487', async () => {
    const server = await startServer({ timerC: 1500 });
    const bob = await phone(server, 'bob');
    const alice = await phone(server, 'alice', { register: false });
    try {
      let cancelledAt = 0;
      const ringStart = Date.now();
      bob.ua.once('invite', (c: IncomingCall) => {
        void c.ring();
        c.once('cancelled', () => (cancelledAt = Date.now()));
      });
      const r = await callFails(alice, 'sip:bob@example.com');
      assert.equal(r.status, 487);
      assert.ok(
        cancelledAt - ringStart >= 1400,
        `CANCEL after Timer C (${cancelledAt - ringStart} ms)`,
      );
    } finally {
      await alice.close();
      await bob.close();
      await server.close();
    }
  });
});
