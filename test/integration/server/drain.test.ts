/**
 * Draining on SIGTERM, layer by layer and end to end:
 *
 * - the transaction layer in-process (memory transport, manual clock): `pending` counts
 *   the transactions with work left, `stopAccepting()` drops new requests while
 *   retransmissions, CANCEL and ACK of live transactions still reach them;
 * - the transport layer on loopback sockets: `stopListening()` refuses new TCP and
 *   WebSocket connections while open connections and UDP keep working;
 * - `switchboard serve` as a process: a call ringing through the proxy when SIGTERM
 *   comes still completes (486, or 200 whose ACK still passes), a new request gets no
 *   answer (the TCP port is closed), and the process exits 0 long before
 *   shutdownTimeout; with nothing answering, it exits 0 after shutdownTimeout.
 *
 * Loopback and port 0 only; every wait is bounded.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ManualClock } from '../../../src/base/index.ts';
import { createRequest, createResponse, type SipRequest } from '../../../src/sip/index.ts';
import { createStack, type IncomingRequest, type Stack } from '../../../src/stack/index.ts';
import { TransactionLayer, type ServerTransaction } from '../../../src/transaction/index.ts';
import { createTransportLayer, type InboundRequest } from '../../../src/transport/index.ts';
import { createMemoryTransportPair, testRequest } from '../../support/memory-transport.ts';
import { cli, startServer, stopServer, within, type RunningServer } from '../../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('TransactionLayer: pending and stopAccepting', () => {
  function setup() {
    const clock = new ManualClock();
    const net = createMemoryTransportPair({ clock, latencyMs: 0 });
    const layer = new TransactionLayer({ transport: net.b, clock });
    const got: ServerTransaction[] = [];
    const acks: SipRequest[] = [];
    layer.setDelegate({ onRequest: (tx) => got.push(tx), onAck: (a) => acks.push(a.message) });
    const atA: string[] = [];
    const requestsAtA: InboundRequest[] = [];
    net.a.setDelegate({
      onRequest: (r) => requestsAtA.push(r),
      onResponse: (r) => atA.push(`${r.message.status} ${r.message.cseq.method}`),
    });
    const send = (req: SipRequest): void => {
      void net.a.sendRequest(req, net.b.destination);
      clock.advance(0);
    };
    return { clock, net, layer, got, acks, atA, requestsAtA, send };
  }

  it('server side: Proceeding and an INVITE awaiting its ACK are pending; new requests are dropped', async () => {
    const t = setup();
    const invite = testRequest({ method: 'INVITE', from: t.net.a, to: t.net.b, callId: 'i@x' });
    t.send(invite);
    assert.equal(t.got.length, 1);
    assert.deepEqual(t.layer.pending, { client: 0, server: 1 });

    const options = testRequest({ method: 'OPTIONS', from: t.net.a, to: t.net.b, callId: 'o@x' });
    t.send(options);
    assert.deepEqual(t.layer.pending, { client: 0, server: 2 });
    await t.got[1]!.respond(createResponse(options, 200, { toTag: 'b1' }));
    t.clock.advance(0);
    // Completed (Timer J) only absorbs retransmissions: not pending.
    assert.deepEqual(t.layer.pending, { client: 0, server: 1 });
    assert.equal(t.layer.size.server, 2);

    assert.equal(t.layer.isAccepting, true);
    t.layer.stopAccepting();
    assert.equal(t.layer.isAccepting, false);
    const late = testRequest({ method: 'OPTIONS', from: t.net.a, to: t.net.b, callId: 'late@x' });
    t.send(late);
    const strayCancel = testRequest({
      method: 'CANCEL',
      from: t.net.a,
      to: t.net.b,
      callId: 'nothing@x',
    });
    t.send(strayCancel);
    t.clock.advance(1000);
    assert.equal(t.got.length, 2, 'a new request is not delivered');
    assert.ok(!t.atA.some((r) => r.endsWith('CANCEL')), 'an unmatched CANCEL gets no 481 now');

    // The live INVITE still works: a retransmission is absorbed, CANCEL gets 200 and 487 (§9.2).
    t.send(invite);
    assert.equal(t.got.length, 2);
    t.send(
      testRequest({
        method: 'CANCEL',
        from: t.net.a,
        to: t.net.b,
        callId: 'i@x',
        branch: invite.topVia.branch!, // §9.1: the CANCEL's branch is the INVITE's
      }),
    );
    t.clock.advance(0);
    assert.ok(t.atA.includes('200 CANCEL'), t.atA.join());
    assert.ok(t.atA.includes('487 INVITE'), t.atA.join());
    // Completed, awaiting the ACK (§17.2.1): still pending.
    assert.deepEqual(t.layer.pending, { client: 0, server: 1 });
    const response = t.got[0]!.lastResponse!;
    t.send(
      testRequest({
        method: 'ACK',
        from: t.net.a,
        to: t.net.b,
        callId: 'i@x',
        branch: invite.topVia.branch!,
        toTag: response.to.tag!,
      }),
    );
    assert.deepEqual(t.layer.pending, { client: 0, server: 0 });
  });

  it('an INVITE answered 2xx is pending until the ACK for the 2xx passes (RFC 6026 §8.7)', async () => {
    const t = setup();
    const invite = testRequest({ method: 'INVITE', from: t.net.a, to: t.net.b, callId: 'ok@x' });
    t.send(invite);
    await t.got[0]!.respond(createResponse(invite, 200, { toTag: 'b2' }));
    t.clock.advance(0);
    assert.equal(t.got[0]!.state, 'accepted');
    t.layer.stopAccepting();
    assert.deepEqual(t.layer.pending, { client: 0, server: 1 });
    // The ACK for a 2xx has a branch of its own (§17.1.1.3) and goes to the TU.
    t.send(
      testRequest({
        method: 'ACK',
        from: t.net.a,
        to: t.net.b,
        callId: 'ok@x',
        branch: 'z9hG4bK-ack-for-2xx',
        toTag: 'b2',
      }),
    );
    assert.equal(t.acks.length, 1);
    assert.deepEqual(t.layer.pending, { client: 0, server: 0 });
  });

  it('client side: pending until a final response', async () => {
    const t = setup();
    const req = testRequest({ method: 'OPTIONS', from: t.net.b, to: t.net.a, callId: 'c@x' });
    t.layer.sendRequest(req, t.net.a.destination, {
      onResponse: () => {},
      onTimeout: () => {},
      onTransportError: () => {},
    });
    t.clock.advance(0);
    t.layer.stopAccepting(); // a draining proxy still forwards on its live transactions
    assert.deepEqual(t.layer.pending, { client: 1, server: 0 });
    const inbound = t.requestsAtA[0]!;
    await t.net.a.sendResponse(
      createResponse(inbound.message, 200, { toTag: 'a1' }),
      inbound.source,
    );
    t.clock.advance(0);
    assert.deepEqual(t.layer.pending, { client: 0, server: 0 });
  });
});

describe('transport layer: stopListening', { timeout: 30_000 }, () => {
  it('new TCP and WS connections are refused; an open connection and UDP keep working', async () => {
    const received: InboundRequest[] = [];
    const layer = await createTransportLayer({
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0', 'ws:127.0.0.1:0'],
      delegate: { onRequest: (r) => received.push(r), onResponse: () => {} },
    });
    try {
      const [udp, tcp, ws] = layer.listeners.map((l) => l.local.port);
      const open = netConnect({ host: '127.0.0.1', port: tcp! });
      await within(new Promise((r) => open.once('connect', r)), 5_000, 'TCP connect');
      let fromServer = '';
      open.setEncoding('utf8').on('data', (d: string) => (fromServer += d));

      layer.stopListening();
      layer.stopListening(); // idempotent

      const refused = await within(
        new Promise<string>((resolve) => {
          const s = netConnect({ host: '127.0.0.1', port: tcp! });
          s.once('connect', () => resolve('connected'));
          s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        }),
        5_000,
        'a new TCP connection',
      );
      assert.equal(refused, 'ECONNREFUSED');
      const wsRefused = await within(
        new Promise<string>((resolve) => {
          const c = new WebSocket(`ws://127.0.0.1:${ws!}/`, 'sip');
          c.once('open', () => resolve('open'));
          c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        }),
        5_000,
        'a new WebSocket',
      );
      assert.equal(wsRefused, 'ECONNREFUSED');

      // The open TCP connection still carries requests, and responses go back on it.
      const options = (branch: string, transport: string, port: number): string =>
        [
          'OPTIONS sip:127.0.0.1 SIP/2.0',
          `Via: SIP/2.0/${transport} 127.0.0.1:${port};branch=z9hG4bK${branch}`,
          'From: <sip:a@127.0.0.1>;tag=1',
          'To: <sip:b@127.0.0.1>',
          `Call-ID: ${branch}`,
          'CSeq: 1 OPTIONS',
          'Max-Forwards: 70',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n');
      open.write(options('tcp1', 'TCP', open.localPort!));
      await within(
        (async () => {
          while (received.length < 1) await sleep(10);
        })(),
        5_000,
        'the request on the open connection',
      );
      const r0 = received[0]!;
      await layer.sendResponse(createResponse(r0.message, 200, { toTag: 'x' }), r0.source);
      await within(
        (async () => {
          while (!fromServer.includes('SIP/2.0 200')) await sleep(10);
        })(),
        5_000,
        'the response on the open connection',
      );

      // UDP still receives (the transaction layer decides what is new).
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      sock.send(options('udp1', 'UDP', sock.address().port), udp!, '127.0.0.1');
      await within(
        (async () => {
          while (received.length < 2) await sleep(10);
        })(),
        5_000,
        'the UDP request',
      );
      sock.close();
      open.destroy();
    } finally {
      await within(layer.close(), 5_000, 'close');
    }
  });
});

describe('switchboard serve: SIGTERM drains', { timeout: 120_000 }, () => {
  let dir: string;
  let alice: Stack;
  let bob: Stack;
  const invites: IncomingRequest[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-drain-'));
    const data = join(dir, 'data');
    cli(['domain', 'add', 'example.com', '--data-dir', data]);
    cli(['user', 'add', 'alice@example.com', '--password', 'a-secret', '--data-dir', data]);
    cli(['user', 'add', 'bob@example.com', '--password', 'b-secret', '--data-dir', data]);
    alice = await createStack({ listen: ['udp:127.0.0.1:0'] });
    bob = await createStack({ listen: ['udp:127.0.0.1:0'] });
    bob.onRequest((req) => {
      if (req.message.method === 'INVITE') {
        invites.push(req);
        void req.reply(180);
      } else if (req.message.method !== 'ACK') {
        void req.reply(200);
      }
    });
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A server with udp and tcp listeners and `shutdownTimeout` (seconds) from a config file. */
  async function start(shutdownTimeout: number): Promise<RunningServer> {
    const file = join(dir, `drain-${shutdownTimeout}.yaml`);
    writeFileSync(file, `shutdownTimeout: ${shutdownTimeout}\nlogLevel: info\n`);
    const s = await startServer({
      dataDir: join(dir, 'data'),
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      logLevel: 'info',
      extraArgs: ['--config', file],
    });
    // bob registers his UDP contact, so that calls to him are forwarded there.
    const port = bob.transport.listeners[0]!.local.port;
    const reg = createRequest({
      method: 'REGISTER',
      uri: 'sip:example.com',
      from: `<sip:bob@example.com>;tag=${bob.ids.tag()}`,
      to: '<sip:bob@example.com>',
      callId: bob.ids.callId(),
      cseq: 1,
      contact: `<sip:bob@127.0.0.1:${port}>`,
      headers: [['Expires', '600']],
    });
    const r = await within(
      bob.send(reg, {
        destination: { protocol: 'udp', address: '127.0.0.1', port: s.ports.udp! },
        credentials: { username: 'bob', password: 'b-secret' },
      }).final,
      15_000,
      'REGISTER',
    );
    assert.equal(r.status, 200);
    return s;
  }

  /** alice calls bob through the server; resolves once bob's phone rings (180 at alice). */
  async function call(s: RunningServer): Promise<{ final: Promise<number> }> {
    const before = invites.length;
    let ringing!: () => void;
    const rang = new Promise<void>((r) => (ringing = r));
    const port = alice.transport.listeners[0]!.local.port;
    const invite = createRequest({
      method: 'INVITE',
      uri: 'sip:bob@example.com',
      from: `<sip:alice@example.com>;tag=${alice.ids.tag()}`,
      to: '<sip:bob@example.com>',
      callId: alice.ids.callId(),
      cseq: 1,
      contact: `<sip:alice@127.0.0.1:${port}>`,
    });
    const out = alice.send(invite, {
      destination: { protocol: 'udp', address: '127.0.0.1', port: s.ports.udp! },
      credentials: { username: 'alice', password: 'a-secret' },
      onProvisional: (res) => {
        if (res.status === 180) ringing();
      },
    });
    await within(rang, 15_000, 'bob ringing');
    assert.equal(invites.length, before + 1);
    // Wrapped: an async function returning a promise would wait for it.
    return { final: out.final.then((r) => r.status) };
  }

  function exited(s: RunningServer): Promise<number | null> {
    if (s.child.exitCode !== null) return Promise.resolve(s.child.exitCode);
    return new Promise((r) => s.child.once('exit', (code) => r(code)));
  }

  async function stopping(s: RunningServer): Promise<void> {
    await within(
      (async () => {
        while (!/^stopping$/m.test(s.stdout())) await sleep(20);
      })(),
      10_000,
      '"stopping"',
    );
  }

  it('a ringing call still completes (486); new requests get no answer; exit 0 at once', async () => {
    const s = await start(30);
    try {
      const { final } = await call(s);
      const exit = exited(s);
      s.child.kill('SIGTERM');
      await stopping(s);

      // A new TCP connection is refused: the listening socket is closed.
      const tcp = await within(
        new Promise<string>((resolve) => {
          const c = netConnect({ host: '127.0.0.1', port: s.ports.tcp! });
          c.once('connect', () => {
            c.destroy();
            resolve('connected');
          });
          c.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        }),
        5_000,
        'a TCP connection after SIGTERM',
      );
      assert.equal(tcp, 'ECONNREFUSED');

      // A new request over UDP gets no answer.
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      let answers = 0;
      sock.on('message', () => answers++);
      const me = sock.address().port;
      sock.send(
        [
          'OPTIONS sip:example.com SIP/2.0',
          `Via: SIP/2.0/UDP 127.0.0.1:${me};branch=z9hG4bKafter-sigterm;rport`,
          'From: <sip:x@example.com>;tag=1',
          'To: <sip:example.com>',
          'Call-ID: after-sigterm',
          'CSeq: 1 OPTIONS',
          'Max-Forwards: 70',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
        s.ports.udp!,
        '127.0.0.1',
      );
      await sleep(1500);
      sock.close();
      assert.equal(answers, 0, 'no answer to a request sent after SIGTERM');
      assert.equal(s.child.exitCode, null, 'still draining: the call is in progress');

      // bob answers: the proxy forwards the 486 to alice, whose ACK ends the INVITE
      // transaction (§17.2.1); nothing is left and the server exits.
      const answeredAt = Date.now();
      await invites.at(-1)!.reply(486);
      assert.equal(await within(final, 10_000, 'the 486 at alice'), 486);
      assert.equal(await within(exit, 10_000, 'serve to exit'), 0);
      assert.ok(Date.now() - answeredAt < 10_000, 'exited on completion, not at shutdownTimeout');
      assert.match(s.stderr(), /"msg":"drained: no transaction in progress"/);
    } finally {
      await stopServer(s).catch(() => undefined);
    }
  });

  it('a call answered 200 while draining: its ACK still passes, then exit 0', async () => {
    const s = await start(30);
    try {
      const { final } = await call(s);
      const exit = exited(s);
      s.child.kill('SIGTERM');
      await stopping(s);
      const port = bob.transport.listeners[0]!.local.port;
      await invites.at(-1)!.reply(200, {
        headers: [['Contact', `<sip:bob@127.0.0.1:${port}>`]],
      });
      assert.equal(await within(final, 10_000, 'the 200 at alice'), 200);
      assert.equal(await within(exit, 10_000, 'serve to exit'), 0);
      assert.match(s.stderr(), /"msg":"drained: no transaction in progress"/);
    } finally {
      await stopServer(s).catch(() => undefined);
    }
  });

  it('a call nobody answers: closed after shutdownTimeout, exit 0', async () => {
    const s = await start(1);
    try {
      await call(s);
      const exit = exited(s);
      const t0 = Date.now();
      s.child.kill('SIGTERM');
      assert.equal(await within(exit, 10_000, 'serve to exit'), 0);
      const took = Date.now() - t0;
      assert.ok(took >= 900, `waited for the timeout (${took} ms)`);
      assert.match(s.stderr(), /shutdownTimeout reached/);
      await invites
        .at(-1)!
        .reply(486)
        .catch(() => undefined);
    } finally {
      await stopServer(s).catch(() => undefined);
    }
  });
});
