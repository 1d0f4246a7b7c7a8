/**
 * Instant messaging with offline store-and-forward (RFC 3428) in one process: the services
 * of `switchboard serve` (buildServices: registrar, proxy, messaging) on a server stack and
 * the SQLite store, and user agents on their own stacks over UDP on loopback.
 *
 * - a MESSAGE to a registered user is forwarded and its 200 comes back; nothing is kept;
 * - to a user with no binding: 202 for each, kept in order; the user registers and gets
 *   them, in order, once, as new MESSAGEs (From the sender with a new tag, To as sent,
 *   body and Content-Type unchanged, Date of the original), and the store is empty after;
 * - a contact that answers 480: 202, kept, delivered at the next attempt;
 * - while messages wait, a new one is kept behind them; a contact that answers 415 to the
 *   original gets its 415 forwarded (not kept);
 * - message/cpim passes unchanged; a body over messaging.maxBodyBytes gets 413; an unknown
 *   user 404; a full quota the proxy's failure (480);
 * - a registered contact that never answers: 202 once Timer F fires (T1 = 50 ms here);
 * - the sweep delivers what `switchboard message send` queued (written to the store);
 * - kept messages survive closing the server and starting another on the same store.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cryptoRandom, silentLogger, systemClock } from '../../../src/base/index.ts';
import { createStack, UserAgent, type Stack } from '../../../src/stack/index.ts';
import type { IncomingRequest } from '../../../src/stack/index.ts';
import type { SipRequest } from '../../../src/sip/index.ts';
import { credentialsFor } from '../../../src/cli/aor.ts';
import { resolveConfig } from '../../../src/cli/config.ts';
import { buildServices, type Services } from '../../../src/cli/serve.ts';
import { openSqliteStore, type SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { pollUntil } from '../../support/tools.ts';
import { within } from '../../support/server.ts';

const DOMAIN = 'example.com';
const USERS = ['alice', 'bob', 'carol', 'dave'];

interface Server {
  readonly dir: string;
  readonly stack: Stack;
  readonly store: SqliteStore;
  readonly services: Services;
  readonly udp: number;
  close(): Promise<void>;
}

async function startServer(
  messaging: Record<string, number> = {},
  o: { dir?: string; keep?: boolean; T1?: number } = {},
): Promise<Server> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'sb-messaging-'));
  const store = openSqliteStore(dir);
  if (o.dir === undefined) {
    await store.domains.add(DOMAIN);
    for (const u of USERS) {
      await store.users.add(`sip:${u}@${DOMAIN}`, credentialsFor(u, DOMAIN, `${u}-pw`));
    }
  }
  const clock = systemClock();
  const random = cryptoRandom();
  const stack = await createStack({
    listen: ['udp:127.0.0.1:0'],
    clock,
    random,
    ...(o.T1 !== undefined ? { timers: { T1: o.T1 } } : {}),
  });
  const config = resolveConfig({ messaging: { retryInterval: 3600, ...messaging } });
  const services = buildServices({ stack, store, config, clock, random, logger: silentLogger });
  return {
    dir,
    stack,
    store,
    services,
    udp: stack.transport.listeners[0]!.local.port,
    close: async () => {
      services.close();
      await stack.close();
      await store.close();
      if (o.keep !== true) rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Phone {
  readonly ua: UserAgent;
  readonly stack: Stack;
  /** MESSAGEs received, in order. */
  readonly received: SipRequest[];
  /** The status to answer the next MESSAGEs with (default 200). */
  answer: number;
  register(): Promise<void>;
  close(): Promise<void>;
}

async function phone(server: Server, user: string): Promise<Phone> {
  const stack = await createStack({ listen: ['udp:127.0.0.1:0'] });
  const ua = new UserAgent(stack, {
    aor: `sip:${user}@${DOMAIN}`,
    credentials: { username: user, password: `${user}-pw` },
    outboundProxy: `sip:127.0.0.1:${server.udp}`,
  });
  let registration: { unregister(): Promise<unknown> } | undefined;
  const p: Phone = {
    ua,
    stack,
    received: [],
    answer: 200,
    register: async () => {
      registration = await within(ua.register({ expires: 600 }), 10_000, `${user} REGISTER`);
    },
    close: async () => {
      await within(registration?.unregister() ?? Promise.resolve(), 5_000, 'un-REGISTER').catch(
        () => undefined,
      );
      await stack.close();
    },
  };
  ua.on('request', (req: IncomingRequest) => {
    if (req.message.method !== 'MESSAGE') {
      void req.reply(405).catch(() => undefined);
      return;
    }
    if (p.answer < 300) p.received.push(req.message);
    void req.reply(p.answer).catch(() => undefined);
  });
  return p;
}

const text = (m: SipRequest): string => new TextDecoder().decode(m.body);

describe('messaging: store-and-forward through buildServices (in-process user agents)', () => {
  let server: Server;
  const phones: Phone[] = [];
  const track = (p: Phone): Phone => {
    phones.push(p);
    return p;
  };

  before(async () => {
    server = await startServer({ maxBodyBytes: 1000, quota: 3 });
  });
  after(async () => {
    await server.close();
  });
  afterEach(async () => {
    for (const p of phones.splice(0)) await p.close();
    // Nothing left over for the next test.
    for (const u of USERS) {
      for (const m of await server.store.messages.list(`sip:${u}@${DOMAIN}`, Date.now())) {
        await server.store.messages.remove(m.id);
      }
    }
  });

  it('to a registered user: forwarded, the 200 comes back, nothing kept', async () => {
    const alice = track(await phone(server, 'alice'));
    const bob = track(await phone(server, 'bob'));
    await bob.register();
    const r = await within(alice.ua.message(`sip:bob@${DOMAIN}`, 'hello'), 10_000, 'MESSAGE');
    assert.equal(r.status, 200);
    assert.deepEqual(bob.received.map(text), ['hello']);
    assert.equal(await server.store.messages.count(`sip:bob@${DOMAIN}`, Date.now()), 0);
  });

  it('to a user with no binding: 202 for each, then delivered in order, once, on REGISTER', async () => {
    const alice = track(await phone(server, 'alice'));
    const r1 = await within(alice.ua.message(`sip:bob@${DOMAIN}`, 'first'), 10_000, 'MESSAGE 1');
    const r2 = await within(alice.ua.message(`sip:bob@${DOMAIN}`, 'second'), 10_000, 'MESSAGE 2');
    assert.equal(r1.status, 202);
    assert.equal(r2.status, 202);
    const kept = await server.store.messages.list(`sip:bob@${DOMAIN}`, Date.now());
    assert.deepEqual(
      kept.map((m) => new TextDecoder().decode(m.body)),
      ['first', 'second'],
    );
    assert.equal(kept[0]!.from, `<sip:alice@${DOMAIN}>`, 'From kept without its tag');
    assert.equal(kept[0]!.contentType, 'text/plain');

    const bob = track(await phone(server, 'bob'));
    await bob.register();
    assert.ok(await pollUntil(() => bob.received.length >= 2, 10_000), 'both delivered');
    await new Promise((r) => setTimeout(r, 300)); // and nothing more comes
    assert.deepEqual(bob.received.map(text), ['first', 'second']);
    const first = bob.received[0]!;
    assert.equal(first.from.uri.kind === 'sip' && first.from.uri.user, 'alice');
    assert.ok(first.from.tag !== undefined, 'a new From tag');
    assert.equal(first.getRaw('To'), `<sip:bob@${DOMAIN}>`);
    assert.equal(first.getRaw('Content-Type'), 'text/plain');
    assert.ok(first.getRaw('Date') !== undefined, 'Date of the original');
    assert.notEqual(first.callId, bob.received[1]!.callId);
    assert.equal(await server.store.messages.count(`sip:bob@${DOMAIN}`, Date.now()), 0);
  });

  it('a contact that answers 480: 202 and kept; delivered at the next attempt', async () => {
    const alice = track(await phone(server, 'alice'));
    const bob = track(await phone(server, 'bob'));
    await bob.register();
    bob.answer = 480;
    const r = await within(alice.ua.message(`sip:bob@${DOMAIN}`, 'later'), 10_000, 'MESSAGE');
    assert.equal(r.status, 202);
    assert.equal(await server.store.messages.count(`sip:bob@${DOMAIN}`, Date.now()), 1);
    // While it waits, a new one is kept behind it (not forwarded ahead of it).
    const r2 = await within(alice.ua.message(`sip:bob@${DOMAIN}`, 'after'), 10_000, 'MESSAGE');
    assert.equal(r2.status, 202);
    bob.answer = 200;
    // The attempt the second MESSAGE triggered may still be running (and failing): retry.
    assert.ok(
      await pollUntil(async () => {
        await server.services.messaging.deliver(`sip:bob@${DOMAIN}`);
        return bob.received.length >= 2;
      }, 10_000),
    );
    assert.deepEqual(bob.received.map(text), ['later', 'after']);
    assert.equal(await server.store.messages.count(`sip:bob@${DOMAIN}`, Date.now()), 0);
  });

  it('a contact that answers 415: the 415 is forwarded, nothing kept', async () => {
    const alice = track(await phone(server, 'alice'));
    const bob = track(await phone(server, 'bob'));
    await bob.register();
    bob.answer = 415;
    const r = await within(
      alice.ua.message(`sip:bob@${DOMAIN}`, '<b>x</b>', 'text/html'),
      10_000,
      'MESSAGE',
    );
    assert.equal(r.status, 415);
    assert.equal(await server.store.messages.count(`sip:bob@${DOMAIN}`, Date.now()), 0);
  });

  it('message/cpim passes unchanged, stored and forwarded', async () => {
    const alice = track(await phone(server, 'alice'));
    const cpim =
      'From: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n\r\n' +
      'Content-Type: text/plain\r\n\r\nhi in CPIM';
    const r = await within(
      alice.ua.message(`sip:bob@${DOMAIN}`, cpim, 'message/cpim'),
      10_000,
      'MESSAGE',
    );
    assert.equal(r.status, 202);
    const bob = track(await phone(server, 'bob'));
    await bob.register();
    assert.ok(await pollUntil(() => bob.received.length >= 1, 10_000));
    assert.equal(bob.received[0]!.getRaw('Content-Type'), 'message/cpim');
    assert.equal(text(bob.received[0]!), cpim);
    const direct = await within(
      alice.ua.message(`sip:bob@${DOMAIN}`, cpim, 'message/cpim'),
      10_000,
      'MESSAGE',
    );
    assert.equal(direct.status, 200);
    assert.equal(text(bob.received[1]!), cpim);
  });

  it('413 over messaging.maxBodyBytes; 404 for an unknown user; 480 once the quota is full', async () => {
    const alice = track(await phone(server, 'alice'));
    const big = await within(
      alice.ua.message(`sip:bob@${DOMAIN}`, 'x'.repeat(1001)),
      10_000,
      'big MESSAGE',
    );
    assert.equal(big.status, 413);
    const unknown = await within(
      alice.ua.message(`sip:nobody@${DOMAIN}`, 'hi'),
      10_000,
      'MESSAGE to nobody',
    );
    assert.equal(unknown.status, 404);
    for (const s of ['1', '2', '3']) {
      const r = await within(alice.ua.message(`sip:carol@${DOMAIN}`, s), 10_000, `MESSAGE ${s}`);
      assert.equal(r.status, 202);
    }
    const full = await within(alice.ua.message(`sip:carol@${DOMAIN}`, '4'), 10_000, 'MESSAGE 4');
    assert.equal(full.status, 480);
    assert.equal(await server.store.messages.count(`sip:carol@${DOMAIN}`, Date.now()), 3);
  });
});

describe('messaging: the sweep, and a contact that never answers', () => {
  it('delivers what was queued in the store (switchboard message send) to a registered user', async () => {
    const server = await startServer({ retryInterval: 0.2 });
    const bob = await phone(server, 'bob');
    try {
      await bob.register();
      const now = Date.now();
      await server.store.messages.enqueue(
        {
          aor: `sip:bob@${DOMAIN}`,
          from: `<sip:announce@${DOMAIN}>`,
          to: `<sip:bob@${DOMAIN}>`,
          contentType: 'text/plain',
          body: new TextEncoder().encode('maintenance at 6'),
          receivedAt: now,
          expiresAt: now + 60_000,
        },
        100,
      );
      server.services.messaging.startSweeping();
      assert.ok(await pollUntil(() => bob.received.length >= 1, 10_000), 'delivered by a sweep');
      assert.equal(text(bob.received[0]!), 'maintenance at 6');
      assert.ok(
        await pollUntil(
          async () => (await server.store.messages.count(`sip:bob@${DOMAIN}`, Date.now())) === 0,
          5_000,
        ),
      );
    } finally {
      await bob.close();
      await server.close();
    }
  });

  it('a registered contact that never answers: 202 once the transaction times out (Timer F)', async () => {
    // T1 = 50 ms: Timer F (64*T1, RFC 3261 §17.1.2.2) is 3.2 s on the server's stack.
    const server = await startServer({}, { T1: 50 });
    const alice = await phone(server, 'alice');
    const bob = await phone(server, 'bob');
    try {
      await bob.register();
      await bob.stack.close(); // gone without un-registering: its binding stays
      const r = await within(
        alice.ua.message(`sip:bob@${DOMAIN}`, 'into the void'),
        15_000,
        'MESSAGE',
      );
      assert.equal(r.status, 202);
      assert.equal(await server.store.messages.count(`sip:bob@${DOMAIN}`, Date.now()), 1);
    } finally {
      await bob.close(); // stops its registration's refresh timer (the stack is closed already)
      await alice.close();
      await server.close();
    }
  });
});

describe('messaging: a restart', () => {
  it('kept messages survive the server being closed and started again on the same store', async () => {
    const first = await startServer({}, { keep: true });
    const alice = await phone(first, 'alice');
    const r = await within(
      alice.ua.message(`sip:bob@${DOMAIN}`, 'before restart'),
      10_000,
      'MESSAGE',
    );
    assert.equal(r.status, 202);
    await alice.close();
    await first.close();
    const second = await startServer({}, { dir: first.dir });
    const bob = await phone(second, 'bob');
    try {
      await bob.register();
      assert.ok(
        await pollUntil(() => bob.received.length >= 1, 10_000),
        'delivered after the restart',
      );
      assert.deepEqual(bob.received.map(text), ['before restart']);
    } finally {
      await bob.close();
      await second.close();
    }
  });
});
