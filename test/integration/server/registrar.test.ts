/**
 * `switchboard serve` as a separate process with the registrar (RFC 3261 §10.3): a
 * UserAgent and raw REGISTERs from a stack in this process, over UDP on loopback. The
 * server is always started with an explicit loopback listener on port 0 (it prints the
 * bound port) and killed at the end; every wait is bounded.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStack, UserAgent, type Stack } from '../../../src/stack/index.ts';
import { createRequest, type SipResponse } from '../../../src/sip/index.ts';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { spawnSync } from 'node:child_process';
import {
  BIN,
  cli,
  startServer,
  stopServer,
  within,
  type RunningServer,
} from '../../support/server.ts';

const AOR = 'sip:alice@example.com';

describe('switchboard serve: registrar (RFC 3261 §10.3)', { timeout: 120_000 }, () => {
  let dataDir: string;
  let server: RunningServer | undefined;
  let client: Stack;
  let callSeq = 0;

  const proxy = (): string => `sip:127.0.0.1:${server!.port}`;
  const dest = (): { protocol: 'udp'; address: string; port: number } => ({
    protocol: 'udp',
    address: '127.0.0.1',
    port: server!.port,
  });

  /** One REGISTER (answering a 401 when credentials are given); resolves with the final response. */
  function register(o: {
    user?: string;
    password?: string;
    contact?: string;
    expires?: number;
    callId?: string;
    cseq?: number;
    headers?: [string, string][];
  }): Promise<SipResponse> {
    const user = o.user ?? 'alice';
    const req = createRequest({
      method: 'REGISTER',
      uri: 'sip:example.com',
      from: `<sip:${user}@example.com>;tag=t${++callSeq}`,
      to: `<sip:${user}@example.com>`,
      callId: o.callId ?? client.ids.callId(),
      cseq: o.cseq ?? 1,
      ...(o.contact !== undefined ? { contact: o.contact } : {}),
      headers: [
        ...(o.expires !== undefined ? [['Expires', String(o.expires)] as [string, string]] : []),
        ...(o.headers ?? []),
      ],
    });
    const out = client.send(req, {
      destination: dest(),
      ...(o.password !== undefined
        ? { credentials: { username: user, password: o.password } }
        : {}),
    });
    return within(out.final, 15_000, 'REGISTER final response');
  }

  const contactsOf = (r: SipResponse): string[] => r.getRawAll('Contact');

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'sb-registrar-'));
    cli(['domain', 'add', 'example.com', '--data-dir', dataDir]);
    cli(['user', 'add', 'alice@example.com', '--password', 'secret', '--data-dir', dataDir]);
    server = await startServer({ dataDir: dataDir });
    client = await createStack({ listen: ['udp:127.0.0.1:0'] });
  });

  after(async () => {
    await client?.close();
    if (server !== undefined) await stopServer(server).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('prints a listening line and, with users present, no first-run hint', () => {
    assert.match(server!.stdout(), /listening udp:127\.0\.0\.1:\d+/);
    assert.doesNotMatch(server!.stdout(), /No users yet/);
  });

  it('a UserAgent registers with digest auth: 200 with the granted expires', async () => {
    const ua = new UserAgent(client, {
      aor: AOR,
      credentials: { username: 'alice', password: 'secret' },
      outboundProxy: proxy(),
    });
    const reg = await within(
      ua.register({ registrar: 'sip:example.com', expires: 120 }),
      15_000,
      'register',
    );
    assert.ok(reg.expires > 100 && reg.expires <= 120, String(reg.expires));
    const q = await register({ password: 'secret' });
    assert.equal(q.status, 200);
    assert.equal(contactsOf(q).length, 1);
    assert.match(contactsOf(q)[0]!, /;expires=(1[01]\d|120)\b/);
    assert.ok(q.getRaw('Date') !== undefined);
    const un = await within(reg.unregister(), 15_000, 'unregister');
    assert.equal(un.status, 200);
    assert.equal(contactsOf(un).length, 0, 'un-register (Expires: 0) removed the binding');
  });

  it('wrong password and unknown user get the same 401 challenge', async () => {
    const wrong = await register({ password: 'nope', contact: '<sip:alice@127.0.0.1:5999>' });
    const unknown = await register({
      user: 'mallory',
      password: 'secret',
      contact: '<sip:mallory@127.0.0.1:5999>',
    });
    assert.equal(wrong.status, 401);
    assert.equal(unknown.status, 401);
    const shape = (r: SipResponse): string[] =>
      r.getRawAll('WWW-Authenticate').map((v) => v.replace(/nonce="[^"]*"/, 'nonce=N'));
    assert.deepEqual(shape(wrong), shape(unknown));
    assert.equal(wrong.reason, unknown.reason);
    assert.match(shape(wrong).join('|'), /algorithm=SHA-256/);
    assert.match(shape(wrong).join('|'), /algorithm=MD5/);
    assert.equal(wrong.count('WWW-Authenticate'), 2);
  });

  it('Expires 10 → 423 with Min-Expires', async () => {
    const r = await register({
      password: 'secret',
      contact: '<sip:alice@127.0.0.1:5998>',
      expires: 10,
    });
    assert.equal(r.status, 423);
    assert.equal(r.getRaw('Min-Expires'), '60');
  });

  it('Require with an unknown option tag → 420 with Unsupported', async () => {
    const r = await register({
      password: 'secret',
      contact: '<sip:alice@127.0.0.1:5998>',
      headers: [['Require', 'path, foo']],
    });
    assert.equal(r.status, 420);
    assert.equal(r.getRaw('Unsupported'), 'foo');
  });

  it('a REGISTER for a domain we do not serve → 404', async () => {
    const req = createRequest({
      method: 'REGISTER',
      uri: 'sip:elsewhere.test',
      from: '<sip:alice@elsewhere.test>;tag=x1',
      to: '<sip:alice@elsewhere.test>',
      callId: client.ids.callId(),
      cseq: 1,
    });
    const r = await within(client.send(req, { destination: dest() }).final, 15_000, 'REGISTER');
    assert.equal(r.status, 404);
  });

  it('OPTIONS to the server: 200 with Allow and Supported; MESSAGE from a local user: 407, then 404 for an unknown user', async () => {
    const opt = createRequest({
      method: 'OPTIONS',
      uri: 'sip:example.com',
      from: '<sip:alice@example.com>;tag=o1',
      to: '<sip:example.com>',
      callId: client.ids.callId(),
      cseq: 1,
    });
    const r = await within(client.send(opt, { destination: dest() }).final, 15_000, 'OPTIONS');
    assert.equal(r.status, 200);
    assert.match(r.getRaw('Allow') ?? '', /REGISTER/);
    assert.match(r.getRaw('Supported') ?? '', /path/);
    const msg = createRequest({
      method: 'MESSAGE',
      uri: 'sip:bob@example.com',
      from: '<sip:alice@example.com>;tag=o2',
      to: '<sip:bob@example.com>',
      callId: client.ids.callId(),
      cseq: 1,
      body: 'hi',
      contentType: 'text/plain',
    });
    const m = await within(client.send(msg, { destination: dest() }).final, 15_000, 'MESSAGE');
    assert.equal(m.status, 407);
    assert.match(m.getRaw('Proxy-Authenticate') ?? '', /^Digest /);
    const authed = await within(
      client.send(msg.set('CSeq', '2 MESSAGE'), {
        destination: dest(),
        credentials: { username: 'alice', password: 'secret' },
      }).final,
      15_000,
      'MESSAGE with credentials',
    );
    assert.equal(authed.status, 404);
  });

  it('two contacts with q and expires params; Call-ID/CSeq ordering; Contact * rules', async () => {
    const callId = client.ids.callId();
    const two = await register({
      password: 'secret',
      callId,
      cseq: 10,
      contact: '<sip:alice@127.0.0.1:6001>;q=0.5, <sip:alice@127.0.0.1:6002>;expires=300',
      expires: 200,
    });
    assert.equal(two.status, 200);
    const cs = contactsOf(two).join('\n');
    assert.match(cs, /<sip:alice@127\.0\.0\.1:6001>;expires=(199|200);q=0\.5/);
    assert.match(cs, /<sip:alice@127\.0\.0\.1:6002>;expires=(299|300)/);

    // §10.3 step 7: same Call-ID, CSeq not higher → 500, nothing changed.
    const old = await register({
      password: 'secret',
      callId,
      cseq: 9,
      contact: '<sip:alice@127.0.0.1:6001>',
      expires: 0,
    });
    assert.equal(old.status, 500);

    // Contact * needs Expires: 0 and no other Contact.
    const noZero = await register({ password: 'secret', contact: '*', expires: 60 });
    assert.equal(noZero.status, 400);
    const mixed = await register({
      password: 'secret',
      contact: '*',
      expires: 0,
      headers: [['Contact', '<sip:alice@127.0.0.1:6003>']],
    });
    assert.equal(mixed.status, 400);
    const still = await register({ password: 'secret' });
    assert.equal(contactsOf(still).length, 2);

    // Contact * with the same Call-ID and a lower CSeq → 500; with a higher one, all removed.
    const lowStar = await register({
      password: 'secret',
      callId,
      cseq: 5,
      contact: '*',
      expires: 0,
    });
    assert.equal(lowStar.status, 500);
    const star = await register({ password: 'secret', callId, cseq: 20, contact: '*', expires: 0 });
    assert.equal(star.status, 200);
    assert.equal(contactsOf(star).length, 0);
  });

  it('stores Path, +sip.instance, reg-id and received (the request source)', async () => {
    const r = await register({
      password: 'secret',
      contact:
        '<sip:alice@127.0.0.1:6010>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000000000001>";reg-id=1',
      expires: 120,
      headers: [
        ['Supported', 'path, outbound'],
        ['Path', '<sip:edge.example.com;lr>'],
      ],
    });
    assert.equal(r.status, 200);
    assert.equal(r.getRaw('Require'), 'outbound');
    assert.equal(r.getRaw('Path'), '<sip:edge.example.com;lr>');
    const store = openSqliteStore(dataDir);
    try {
      const [b] = await store.location.lookup(AOR, Date.now());
      assert.ok(b !== undefined);
      assert.equal(b.contact, 'sip:alice@127.0.0.1:6010');
      assert.equal(b.instance, '<urn:uuid:00000000-0000-1000-8000-000000000001>');
      assert.equal(b.regId, 1);
      assert.deepEqual(b.path, ['<sip:edge.example.com;lr>']);
      const port = client.transport.listeners[0]!.local.port;
      assert.equal(b.received, `udp:127.0.0.1:${port}`);
    } finally {
      await store.close();
    }
    const gone = await register({
      password: 'secret',
      contact: '<sip:alice@127.0.0.1:6010>',
      expires: 0,
    });
    assert.equal(contactsOf(gone).length, 0);
  });

  it('a restart keeps the bindings; SIGTERM exits 0', async () => {
    const set = await register({
      password: 'secret',
      contact: '<sip:alice@127.0.0.1:6020>',
      expires: 600,
    });
    assert.equal(set.status, 200);
    assert.equal(await stopServer(server!), 0);
    server = await startServer({ dataDir: dataDir });
    const q = await register({ password: 'secret' });
    assert.equal(q.status, 200);
    assert.equal(contactsOf(q).length, 1);
    assert.match(contactsOf(q)[0]!, /<sip:alice@127\.0\.0\.1:6020>;expires=(59\d|600)/);
  });
});

describe('switchboard serve: start-up errors', { timeout: 60_000 }, () => {
  it('a port in use: one clear error line, exit 1', async () => {
    const blocker = await createStack({ listen: ['udp:127.0.0.1:0'] });
    const dir = mkdtempSync(join(tmpdir(), 'sb-serve-'));
    try {
      const port = blocker.transport.listeners[0]!.local.port;
      const r = spawnSync(
        process.execPath,
        [BIN, 'serve', '--data-dir', dir, '--domain', 'example.com', '--listen'].concat([
          `udp:127.0.0.1:${port}`,
        ]),
        { encoding: 'utf8', timeout: 20_000 },
      );
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /^switchboard: serve: cannot listen on .*in use/m);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    } finally {
      await blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('first run: prints what to do next', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-serve-'));
    try {
      const s = await startServer({ dataDir: dir });
      try {
        await within(
          new Promise<void>((resolve) => {
            const check = (): void => {
              if (/point a softphone/.test(s.stdout())) resolve();
            };
            check();
            s.child.stdout!.on('data', check);
          }),
          10_000,
          'first-run hint',
        );
        assert.match(s.stdout(), /switchboard user add alice@example\.com --password/);
      } finally {
        assert.equal(await stopServer(s), 0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
