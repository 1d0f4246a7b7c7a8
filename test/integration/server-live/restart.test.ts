/**
 * Acceptance: registrations survive a crash. A contact is registered with digest auth
 * (RFC 3261 §10.2, §22), the server is killed with SIGKILL (no clean stop: whatever the
 * SQLite store in --data-dir has committed is all there is), started again on the same data
 * dir, and a REGISTER without Contact (a query, §10.2.3) must list the binding with an expires
 * that went down by the time that passed (§10.3 step 8: "the remaining expiration time").
 * The binding's Call-ID and CSeq survive too: a refresh with the same Call-ID and a lower
 * CSeq is refused with 500 (§10.3 step 7).
 *
 * A second test kills the server while 20 registrations are in flight: every REGISTER whose
 * 200 arrived before the kill must be there after the restart (the registrar answers after
 * the store has written the binding).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRequest, type SipResponse } from '../../../src/sip/index.ts';
import { createStack, type Stack } from '../../../src/stack/index.ts';
import { cli, startServer, stopServer, within, type RunningServer } from '../../support/server.ts';
import { LOOPBACK, sleep } from './support.ts';

/** Kills the server with SIGKILL and waits (bounded) for it to be gone. */
async function crash(server: RunningServer): Promise<void> {
  const gone = new Promise<NodeJS.Signals | null>((resolve) =>
    server.child.once('exit', (_code, signal) => resolve(signal)),
  );
  assert.ok(server.child.kill('SIGKILL'), 'SIGKILL sent');
  assert.equal(await within(gone, 10_000, 'the server to die of SIGKILL'), 'SIGKILL');
}

/** The `expires` of the Contact whose URI is `uri` in a 200 to REGISTER, or undefined. */
function expiresOf(r: SipResponse, uri: string): number | undefined {
  for (const c of r.getRawAll('Contact').flatMap((v) => v.split(/,(?=\s*<)/))) {
    if (!c.includes(`<${uri}>`)) continue;
    const m = /;\s*expires=(\d+)/i.exec(c);
    if (m !== null) return Number(m[1]);
  }
  return undefined;
}

describe(
  'registrations survive SIGKILL and a restart on the same data dir',
  { timeout: 120_000 },
  () => {
    let dataDir: string;
    let server: RunningServer | undefined;
    let client: Stack;
    let tag = 0;
    const timers = new Set<NodeJS.Timeout>();

    /** One REGISTER (answering the 401 with the password); resolves with the final response. */
    function register(o: {
      user: string;
      contact?: string;
      expires?: number;
      callId?: string;
      cseq?: number;
    }): Promise<SipResponse> {
      const req = createRequest({
        method: 'REGISTER',
        uri: 'sip:example.com',
        from: `<sip:${o.user}@example.com>;tag=rs${++tag}`,
        to: `<sip:${o.user}@example.com>`,
        callId: o.callId ?? client.ids.callId(),
        cseq: o.cseq ?? 1,
        ...(o.contact !== undefined ? { contact: o.contact } : {}),
        headers: o.expires !== undefined ? [['Expires', String(o.expires)]] : [],
      });
      const out = client.send(req, {
        destination: { protocol: 'udp', address: LOOPBACK, port: server!.port },
        credentials: { username: o.user, password: `pw-${o.user}` },
      });
      // Bounded like `within`, but the timer is also cleared in after(): requests still in
      // flight to the killed server never settle, and their timers must not hold the process.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no final response to REGISTER for ${o.user}`)),
          15_000,
        );
        timers.add(timer);
      });
      return Promise.race([out.final, timeout]).finally(() => {
        clearTimeout(timer);
        timers.delete(timer!);
      });
    }

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-live-restart-'));
      cli(['domain', 'add', 'example.com', '--data-dir', dataDir]);
      const csv = join(dataDir, 'users.csv');
      const users = ['alice', 'bob', ...Array.from({ length: 20 }, (_, i) => `crash${i}`)];
      writeFileSync(
        csv,
        ['aor,password', ...users.map((u) => `${u}@example.com,pw-${u}`)].join('\n'),
      );
      cli(['user', 'import', csv, '--data-dir', dataDir]);
      server = await startServer({ dataDir });
      client = await createStack({ listen: [`udp:${LOOPBACK}:0`] });
    });

    after(async () => {
      for (const t of timers) clearTimeout(t);
      await client?.close();
      if (server !== undefined) await stopServer(server).catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('a registered contact is listed after the restart, with a decreasing expires', async () => {
      const contact = 'sip:alice@127.0.0.1:6030';
      const callId = client.ids.callId();
      const reg = await register({
        user: 'alice',
        contact: `<${contact}>`,
        expires: 600,
        callId,
        cseq: 10,
      });
      assert.equal(reg.status, 200, `REGISTER: ${reg.status} ${reg.reason}`);
      const granted = expiresOf(reg, contact);
      assert.ok(granted !== undefined && granted > 590 && granted <= 600, `granted ${granted}`);
      const t0 = Date.now();

      await crash(server!);
      // Long enough for the remaining time, rounded to seconds, to go down by at least one.
      await sleep(Math.max(0, t0 + 1600 - Date.now()));
      server = await startServer({ dataDir });

      // §10.2.3: a REGISTER without Contact queries the bindings.
      const q1 = await register({ user: 'alice' });
      const elapsed1 = (Date.now() - t0) / 1000;
      assert.equal(q1.status, 200, `query after the restart: ${q1.status} ${q1.reason}`);
      const e1 = expiresOf(q1, contact);
      assert.ok(e1 !== undefined, `the binding is listed: ${q1.getRawAll('Contact').join(' | ')}`);
      assert.ok(
        e1 < granted && e1 >= granted - Math.ceil(elapsed1) - 1,
        `expires ${granted} at registration, ${e1} after ${elapsed1.toFixed(1)} s`,
      );

      await sleep(1100);
      const q2 = await register({ user: 'alice' });
      const e2 = expiresOf(q2, contact);
      assert.ok(e2 !== undefined && e2 < e1, `expires keeps going down: ${e1} then ${e2}`);

      // §10.3 step 7: same Call-ID, CSeq not higher than the stored one -> 500, nothing changed.
      const stale = await register({
        user: 'alice',
        contact: `<${contact}>`,
        expires: 0,
        callId,
        cseq: 5,
      });
      assert.equal(stale.status, 500, 'the stored CSeq survived the crash');
      const refresh = await register({
        user: 'alice',
        contact: `<${contact}>`,
        expires: 300,
        callId,
        cseq: 20,
      });
      assert.equal(refresh.status, 200);
      const e3 = expiresOf(refresh, contact);
      assert.ok(e3 !== undefined && e3 > 290 && e3 <= 300, `refreshed to ${e3}`);
    });

    it('a phone registered before a SIGKILL is reached through the restarted server', async () => {
      const port = client.transport.listeners[0]!.local.port;
      const contact = `sip:bob@127.0.0.1:${port}`;
      const reg = await register({ user: 'bob', contact: `<${contact}>`, expires: 600 });
      assert.equal(reg.status, 200);
      await crash(server!);
      server = await startServer({ dataDir });
      const got: string[] = [];
      client.onRequest((req) => {
        got.push(`${req.message.method} ${req.message.uriText}`);
        void req.reply(200).catch(() => undefined);
      });
      // A MESSAGE from another domain (no credentials needed to reach a local user).
      const msg = createRequest({
        method: 'MESSAGE',
        uri: 'sip:bob@example.com',
        from: `<sip:eve@elsewhere.test>;tag=rs${++tag}`,
        to: '<sip:bob@example.com>',
        callId: client.ids.callId(),
        cseq: 1,
        body: 'still there?',
        contentType: 'text/plain',
      });
      const out = client.send(msg, {
        destination: { protocol: 'udp', address: LOOPBACK, port: server.port },
      });
      const res = await within(out.final, 15_000, 'MESSAGE through the restarted server');
      assert.equal(res.status, 200);
      assert.deepEqual(got, [`MESSAGE ${contact}`]);
    });

    it('SIGKILL with registrations in flight: every REGISTER answered 200 before it is kept', async () => {
      const users = Array.from({ length: 20 }, (_, i) => `crash${i}`);
      const answered = new Set<string>();
      let killAfter: () => void = () => undefined;
      const enough = new Promise<void>((resolve) => (killAfter = resolve));
      const pending = users.map((u) =>
        register({ user: u, contact: `<sip:${u}@127.0.0.1:6040>`, expires: 900 }).then(
          (r) => {
            if (r.status === 200) answered.add(u);
            if (answered.size >= 10) killAfter();
            return r;
          },
          () => undefined,
        ),
      );
      await within(
        Promise.race([enough, Promise.all(pending).then(() => undefined)]),
        30_000,
        'ten registrations',
      );
      const before = new Set(answered);
      await crash(server!);
      // The rest time out or fail; their outcome does not matter (408 synthesized after 32 s
      // would outlast the test: the client stack is closed at the end instead).
      assert.ok(before.size >= 10, `${before.size} registrations answered before the kill`);

      server = await startServer({ dataDir });
      for (const u of before) {
        const q = await register({ user: u });
        assert.equal(q.status, 200, `query for ${u}`);
        assert.ok(
          expiresOf(q, `sip:${u}@127.0.0.1:6040`) !== undefined,
          `${u} was answered 200 before the SIGKILL but its binding is gone: ${q.getRawAll('Contact').join(' | ')}`,
        );
      }
    });
  },
);
