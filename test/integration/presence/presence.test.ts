/**
 * The presence event state compositor (RFC 3903 PUBLISH) in one process: the services of
 * `switchboard serve` (buildServices: registrar, proxy, presence) on a server stack and the
 * SQLite store, and publishers on their own stacks over UDP on loopback, authenticating
 * with digest (407) as local users.
 *
 * Every answer of RFC 3903 §6: 489 (another or no Event), 403 (another user's state, or a
 * caller that is not a local user), 400 (neither body nor SIP-If-Match), 415, 400 for a
 * document that is not PIDF, 423 with Min-Expires, a long Expires shortened, initial
 * publication, refresh, modification and removal each 200 with a new SIP-ETag, 412 for an
 * unknown or stale SIP-If-Match; the PUBLISH is not forked to the user's registered phone;
 * two publishers of one user composed into one PIDF document; and the state kept in the
 * store, seen by a second server on the same store (a worker).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cryptoRandom, silentLogger, systemClock } from '../../../src/base/index.ts';
import { createStack, UserAgent, type Stack } from '../../../src/stack/index.ts';
import { createRequest, type SipResponse } from '../../../src/sip/index.ts';
import { credentialsFor } from '../../../src/cli/aor.ts';
import { resolveConfig } from '../../../src/cli/config.ts';
import { buildServices, type Services } from '../../../src/cli/serve.ts';
import { parsePidf, PIDF_NS } from '../../../src/services/presence/index.ts';
import { openSqliteStore, type SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { within } from '../../support/server.ts';

const DOMAIN = 'example.com';
const USERS = ['alice', 'bob'];
const ALICE = `sip:alice@${DOMAIN}`;

interface Server {
  readonly stack: Stack;
  readonly store: SqliteStore;
  readonly services: Services;
  readonly udp: number;
  close(): Promise<void>;
}

async function startServer(dir: string): Promise<Server> {
  const store = openSqliteStore(dir, { nonBlocking: true });
  const clock = systemClock();
  const random = cryptoRandom();
  const stack = await createStack({ listen: ['udp:127.0.0.1:0'], clock, random });
  const config = resolveConfig({ presence: { minExpires: 60, maxExpires: 1800 } });
  const services = buildServices({ stack, store, config, clock, random, logger: silentLogger });
  return {
    stack,
    store,
    services,
    udp: stack.transport.listeners[0]!.local.port,
    close: async () => {
      services.close();
      await stack.close();
      await store.close();
    },
  };
}

const pidf = (entity: string, tupleId: string, basic: 'open' | 'closed', note = ''): string =>
  `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="${PIDF_NS}" entity="${entity}">
  <tuple id="${tupleId}"><status><basic>${basic}</basic></status>${note !== '' ? `<note>${note}</note>` : ''}</tuple>
</presence>
`;

interface PublishOptions {
  event?: string | undefined;
  ifMatch?: string;
  expires?: number;
  body?: string;
  contentType?: string;
  /** The AOR published to (default the publisher's own). */
  to?: string;
}

/** A publisher: a stack sending PUBLISH as `user` through the server. */
interface Publisher {
  readonly stack: Stack;
  publish(o: PublishOptions): Promise<SipResponse>;
  close(): Promise<void>;
}

async function publisher(server: Server, user: string, from = `sip:${user}@${DOMAIN}`) {
  const stack = await createStack({ listen: ['udp:127.0.0.1:0'] });
  const p: Publisher = {
    stack,
    publish: async (o) => {
      const to = o.to ?? `sip:${user}@${DOMAIN}`;
      const headers: [string, string][] = [];
      const event = 'event' in o ? o.event : 'presence';
      if (event !== undefined) headers.push(['Event', event]);
      if (o.ifMatch !== undefined) headers.push(['SIP-If-Match', o.ifMatch]);
      if (o.expires !== undefined) headers.push(['Expires', String(o.expires)]);
      const req = createRequest({
        method: 'PUBLISH',
        uri: to,
        from: `<${from}>;tag=${stack.ids.tag()}`,
        to: `<${to}>`,
        callId: stack.ids.callId(),
        cseq: 1,
        headers,
        ...(o.body !== undefined
          ? { body: o.body, contentType: o.contentType ?? 'application/pidf+xml' }
          : {}),
      });
      return within(
        stack.send(req, {
          credentials: { username: user, password: `${user}-pw` },
          destination: { protocol: 'udp', address: '127.0.0.1', port: server.udp },
        }).final,
        10_000,
        'PUBLISH',
      );
    },
    close: () => stack.close(),
  };
  return p;
}

const etagOf = (r: SipResponse): string => {
  const e = r.getRaw('SIP-ETag');
  assert.ok(e !== undefined && /^[0-9a-f]{32}$/.test(e), `SIP-ETag ${e}`);
  return e;
};

describe('presence configuration', () => {
  it('presence.minExpires above presence.maxExpires is refused, naming the key', () => {
    assert.throws(
      () => resolveConfig({ presence: { minExpires: 600, maxExpires: 300 } }),
      /presence\.minExpires/,
    );
    const p = resolveConfig({}).presence;
    assert.deepEqual([p.minExpires, p.maxExpires], [60, 3600]);
  });
});

describe('presence: PUBLISH through buildServices (RFC 3903, in-process publishers)', () => {
  let dir: string;
  let server: Server;
  let alice: Publisher;
  let bob: Publisher;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-presence-'));
    const setup = openSqliteStore(dir);
    await setup.domains.add(DOMAIN);
    for (const u of USERS) {
      await setup.users.add(`sip:${u}@${DOMAIN}`, credentialsFor(u, DOMAIN, `${u}-pw`));
    }
    await setup.close();
    server = await startServer(dir);
    alice = await publisher(server, 'alice');
    bob = await publisher(server, 'bob');
  });
  after(async () => {
    await alice.close();
    await bob.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('489 Bad Event with Allow-Events for another package or none', async () => {
    for (const event of ['dialog', 'presence.winfo', undefined]) {
      const r = await alice.publish({ event, body: pidf(ALICE, 'a', 'open') });
      assert.equal(r.status, 489, `Event ${event}`);
      assert.equal(r.getRaw('Allow-Events'), 'presence');
    }
  });

  it('403 for another user’s presence, and for a caller that is not a local user', async () => {
    const r = await bob.publish({ to: ALICE, body: pidf(ALICE, 'b', 'open') });
    assert.equal(r.status, 403);
    const stranger = await publisher(server, 'mallory', 'sip:mallory@elsewhere.test');
    try {
      const s = await stranger.publish({ to: ALICE, body: pidf(ALICE, 'm', 'open') });
      assert.equal(s.status, 403);
    } finally {
      await stranger.close();
    }
    assert.equal((await server.services.presence.compose(ALICE)).publications, 0);
  });

  it('400 without body or SIP-If-Match; 415 with Accept; 400 for a body that is not PIDF', async () => {
    assert.equal((await alice.publish({})).status, 400);
    const r = await alice.publish({ body: 'open', contentType: 'text/plain' });
    assert.equal(r.status, 415);
    assert.equal(r.getRaw('Accept'), 'application/pidf+xml');
    const x = await alice.publish({ body: '<!DOCTYPE x><presence/>' });
    assert.equal(x.status, 400);
  });

  it('423 with Min-Expires below presence.minExpires; a long Expires is shortened', async () => {
    const r = await alice.publish({ expires: 10, body: pidf(ALICE, 'a', 'open') });
    assert.equal(r.status, 423);
    assert.equal(r.getRaw('Min-Expires'), '60');
    const long = await alice.publish({ expires: 86_400, body: pidf(ALICE, 'long', 'open') });
    assert.equal(long.status, 200);
    assert.equal(long.getRaw('Expires'), '1800');
    const gone = await alice.publish({ ifMatch: etagOf(long), expires: 0 });
    assert.equal(gone.status, 200);
  });

  it('publish, refresh, modify, remove: each 200 with a new SIP-ETag; 412 for stale ones', async () => {
    const v0 = (await server.services.presence.compose(ALICE)).version;
    const initial = await alice.publish({ expires: 120, body: pidf(ALICE, 'desk', 'open') });
    assert.equal(initial.status, 200);
    assert.equal(initial.getRaw('Expires'), '120');
    const e1 = etagOf(initial);

    const refreshed = await alice.publish({ ifMatch: e1, expires: 300 });
    assert.equal(refreshed.status, 200);
    assert.equal(refreshed.getRaw('Expires'), '300');
    const e2 = etagOf(refreshed);
    assert.notEqual(e2, e1);
    // RFC 3903 §4.2: the old entity-tag is no longer valid.
    assert.equal((await alice.publish({ ifMatch: e1 })).status, 412);

    const modified = await alice.publish({ ifMatch: e2, body: pidf(ALICE, 'desk', 'closed') });
    assert.equal(modified.status, 200);
    const e3 = etagOf(modified);
    assert.notEqual(e3, e2);
    const doc = await server.services.presence.compose(ALICE);
    assert.match(doc.document, /<basic>closed<\/basic>/);
    assert.ok(doc.version > v0);

    assert.equal((await alice.publish({ ifMatch: 'no-such-etag' })).status, 412);
    assert.equal(
      (await alice.publish({ ifMatch: e2, body: pidf(ALICE, 'desk', 'open') })).status,
      412,
    );
    const removed = await alice.publish({ ifMatch: e3, expires: 0 });
    assert.equal(removed.status, 200);
    assert.equal(removed.getRaw('Expires'), '0');
    assert.equal((await alice.publish({ ifMatch: e3, expires: 0 })).status, 412);
    assert.equal((await server.services.presence.compose(ALICE)).publications, 0);
  });

  it('two publishers of one user: one PIDF document with both tuples', async () => {
    const desk = await alice.publish({ body: pidf(ALICE, 'desk', 'open', 'at my desk') });
    const mobile = await publisher(server, 'alice');
    const changes: string[] = [];
    const off = server.services.presence.onChange((aor) => changes.push(aor));
    try {
      const m = await mobile.publish({
        body: pidf(ALICE, 'mobile', 'closed', 'a &lt;b&gt; &amp; c'),
      });
      assert.equal(m.status, 200);
      assert.deepEqual(changes, [ALICE]);
      const composed = await server.services.presence.compose(ALICE);
      assert.equal(composed.publications, 2);
      const parsed = parsePidf(composed.document);
      assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
      assert.equal(parsed.value.entity, ALICE);
      assert.deepEqual(
        parsed.value.tuples.map((t) => t.id),
        ['desk', 'mobile'],
      );
      // A second server on the same store (another worker) composes the same document.
      const worker = await startServer(dir);
      try {
        assert.equal((await worker.services.presence.compose(ALICE)).document, composed.document);
      } finally {
        await worker.close();
      }
      await mobile.publish({ ifMatch: etagOf(m), expires: 0 });
      await alice.publish({ ifMatch: etagOf(desk), expires: 0 });
    } finally {
      off();
      await mobile.close();
    }
  });

  it('a PUBLISH to a registered user ends at the server (not forked to the phone)', async () => {
    const phoneStack = await createStack({ listen: ['udp:127.0.0.1:0'] });
    const phone = new UserAgent(phoneStack, {
      aor: ALICE,
      credentials: { username: 'alice', password: 'alice-pw' },
      outboundProxy: `sip:127.0.0.1:${server.udp}`,
    });
    const seen: string[] = [];
    phone.on('request', (req) => {
      seen.push(req.message.method);
      void req.reply(500).catch(() => undefined);
    });
    try {
      const reg = await within(phone.register({ expires: 600 }), 10_000, 'REGISTER');
      const r = await alice.publish({ body: pidf(ALICE, 'x', 'open') });
      assert.equal(r.status, 200);
      assert.deepEqual(seen, []);
      await alice.publish({ ifMatch: etagOf(r), expires: 0 });
      await reg.unregister();
    } finally {
      await phoneStack.close();
    }
  });
});
