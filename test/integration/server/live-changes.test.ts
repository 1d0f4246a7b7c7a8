/**
 * Operators change users and domains with `switchboard user ...` / `domain add` in
 * another process while `switchboard serve` runs: each change takes effect at the next
 * request, without a restart (the registrar and the digest lookup read the store per
 * request; nothing is cached). Loopback and port 0 only; every wait is bounded.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRequest, type SipResponse } from '../../../src/sip/index.ts';
import { createStack, type Stack } from '../../../src/stack/index.ts';
import { cli, startServer, stopServer, within, type RunningServer } from '../../support/server.ts';

describe(
  'switchboard serve: user and domain changes take effect at once',
  { timeout: 120_000 },
  () => {
    let dir: string;
    let dataDir: string;
    let server: RunningServer;
    let client: Stack;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sb-live-'));
      dataDir = join(dir, 'data');
      server = await startServer({ dataDir, domains: ['example.com'] });
      client = await createStack({ listen: ['udp:127.0.0.1:0'] });
    });
    after(async () => {
      await client?.close();
      if (server !== undefined) assert.equal(await stopServer(server), 0);
      rmSync(dir, { recursive: true, force: true });
    });

    const admin = (...args: string[]): string => cli([...args, '--data-dir', dataDir]);

    /** A REGISTER for `user@domain` answering the challenge with `password`; the final status. */
    async function register(user: string, domain: string, password: string): Promise<SipResponse> {
      const port = client.transport.listeners[0]!.local.port;
      const req = createRequest({
        method: 'REGISTER',
        uri: `sip:${domain}`,
        from: `<sip:${user}@${domain}>;tag=${client.ids.tag()}`,
        to: `<sip:${user}@${domain}>`,
        callId: client.ids.callId(),
        cseq: 1,
        contact: `<sip:${user}@127.0.0.1:${port}>`,
        headers: [['Expires', '300']],
      });
      const out = client.send(req, {
        destination: { protocol: 'udp', address: '127.0.0.1', port: server.port },
        credentials: { username: user, password },
      });
      return within(out.final, 15_000, `REGISTER ${user}@${domain}`);
    }

    it('user add: a user added after start registers with digest auth', async () => {
      assert.equal((await register('carol', 'example.com', 'pw1')).status, 401);
      admin('user', 'add', 'carol@example.com', '--password', 'pw1');
      assert.equal((await register('carol', 'example.com', 'pw1')).status, 200);
    });

    it('user passwd: the old password is refused, the new one accepted', async () => {
      admin('user', 'passwd', 'carol@example.com', '--password', 'pw2');
      assert.equal((await register('carol', 'example.com', 'pw1')).status, 401);
      assert.equal((await register('carol', 'example.com', 'pw2')).status, 200);
    });

    it('user remove: the removed user is challenged again (401)', async () => {
      admin('user', 'remove', 'carol@example.com');
      const r = await register('carol', 'example.com', 'pw2');
      assert.equal(r.status, 401);
      assert.ok(r.getRawAll('WWW-Authenticate').length > 0);
    });

    it('domain add: a domain added after start is served', async () => {
      const before = await register('dave', 'example.org', 'pw');
      assert.notEqual(before.status, 200);
      assert.notEqual(before.status, 401, 'a domain not served is not challenged');
      admin('domain', 'add', 'example.org');
      admin('user', 'add', 'dave@example.org', '--password', 'pw');
      const r = await register('dave', 'example.org', 'pw');
      assert.equal(r.status, 200);
      // the 200 lists the new binding (RFC 3261 §10.3 step 8)
      assert.match(r.getRaw('Contact') ?? '', /<sip:dave@127\.0\.0\.1:\d+>;expires=/);
    });
  },
);
