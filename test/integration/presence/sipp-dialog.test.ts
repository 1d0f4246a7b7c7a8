/**
 * Busy lamps with sipp phones through `switchboard serve` (RFC 4235 dialog package), on
 * 127.0.0.1 only, with the server as one process and as two workers. The calls are the sipp
 * proxy scenarios (test/integration/sipp/scenarios): a sipp UAC as alice calls a sipp UAS
 * registered for bob (uac-proxy-call.xml -> uas-call.xml: INVITE, 407, INVITE with credentials,
 * 180, 200, ACK, 500 ms, BYE from alice) and for carol (uac-proxy-cancel.xml ->
 * uas-ring-cancel.xml: 180, then alice CANCELs, 487). Watchers (support.ts) subscribe to
 * `Event: dialog` of bob, alice and carol before the calls, overlapping calls included.
 *
 * Every call shows on bob's lamp as confirmed then terminated (remote-bye), never going back,
 * on alice's as initiator ending local-bye, and every CANCELled call on carol's as terminated,
 * cancelled, 487. After the calls no dialog of theirs is live. A missing sipp fails under
 * CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { createRequest, type SipRequest } from '../../../src/sip/index.ts';
import { createStack, type Stack } from '../../../src/stack/index.ts';
import { startServer, stopServer, within, type RunningServer } from '../../support/server.ts';
import { MD5_ONLY_YAML, writeServeConfig, type ServeConfig } from '../../support/serve-config.ts';
import { requireTool } from '../../support/tools.ts';
import { LOOPBACK, describeRun, runSipp, startSippUas } from '../sipp/sipp.ts';
import { bodyOf, DOMAIN, seed, sleep, Watcher, type WatcherSubscription } from './support.ts';

const SIPP_TIMEOUT_MS = 30_000;
const UAS_LIFETIME_MS = 40_000;

/** Each dialog of a dialog-info body: call-id, direction and state (with event and code). */
function dialogsOf(n: SipRequest): { callId: string; direction: string; state: string }[] {
  const body = bodyOf(n);
  assert.match(
    body,
    /<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="\d+" state="full"/,
  );
  return [...body.matchAll(/<dialog ([^>]*)>\s*<state([^>]*)>(\w+)<\/state>/g)].map((m) => {
    const attr = (s: string, name: string): string =>
      new RegExp(`\\b${name}="([^"]*)"`).exec(s)?.[1] ?? '';
    const event = attr(m[2]!, 'event');
    const code = attr(m[2]!, 'code');
    return {
      callId: attr(m[1]!, 'call-id'),
      direction: attr(m[1]!, 'direction'),
      state: [m[3]!, event, code].filter((x) => x !== '').join('/'),
    };
  });
}

/** Per Call-ID, the states one watcher saw, repeats collapsed, in NOTIFY order. */
function historyOf(w: Watcher, sub: WatcherSubscription): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const n of w.of(sub)) {
    for (const d of dialogsOf(n)) {
      const h = out.get(d.callId) ?? [];
      if (h.at(-1) !== d.state) h.push(d.state);
      out.set(d.callId, h);
    }
  }
  return out;
}

const RANK = ['trying', 'early', 'confirmed', 'terminated'];
const rank = (s: string): number => RANK.indexOf(s.split('/')[0]!);

for (const workers of [1, 2]) {
  describe(`busy lamps with sipp phones through switchboard serve, ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    let dir: string;
    let config: ServeConfig;
    let server: RunningServer;
    let registrar: Stack;
    let dave: Watcher;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sb-sipp-dialog-'));
      await seed(join(dir, 'data'), ['alice', 'bob', 'carol', 'dave']);
      config = writeServeConfig(`${MD5_ONLY_YAML}presence:\n  pollInterval: 0.2\n`);
      server = await startServer({
        dataDir: join(dir, 'data'),
        domains: [DOMAIN],
        listen: [`udp:${LOOPBACK}:0`],
        extraArgs: [...config.args, '--workers', String(workers)],
      });
      registrar = await createStack({ listen: [`udp:${LOOPBACK}:0`] });
      dave = await Watcher.create(() => server.port, 'dave');
    });
    after(async () => {
      await dave.close();
      await registrar.close();
      await stopServer(server).catch(() => undefined);
      config.remove();
      rmSync(dir, { recursive: true, force: true });
    });

    /** A third-party REGISTER of the sipp UAS's address for `user` (RFC 3261 §10.2). */
    async function register(user: string, contact: string): Promise<void> {
      const req = createRequest({
        method: 'REGISTER',
        uri: `sip:${DOMAIN}`,
        from: `<sip:${user}@${DOMAIN}>;tag=${registrar.ids.tag()}`,
        to: `<sip:${user}@${DOMAIN}>`,
        callId: registrar.ids.callId(),
        cseq: 1,
        contact: `<${contact}>`,
        headers: [['Expires', '600']],
      });
      const res = await within(
        registrar.send(req, {
          destination: { protocol: 'udp', address: LOOPBACK, port: server.port },
          credentials: { username: user, password: `${user}-pw` },
        }).final,
        10_000,
        `REGISTER for ${user}`,
      );
      assert.equal(res.status, 200);
    }

    async function calls(
      t: TestContext,
      o: { callee: string; uac: string; uas: string; calls: number },
    ): Promise<boolean> {
      const bin = requireTool('sipp', t);
      if (bin === undefined) return false;
      const uas = await startSippUas({
        bin,
        scenario: o.uas,
        transport: 'u1',
        timeoutMs: UAS_LIFETIME_MS,
      });
      try {
        await register(o.callee, `sip:${o.callee}@${uas.target}`);
        const run = await runSipp({
          bin,
          scenario: o.uac,
          transport: 'u1',
          target: `${LOOPBACK}:${server.port}`,
          service: o.callee,
          calls: o.calls,
          rate: 5,
          limit: o.calls,
          timeoutMs: SIPP_TIMEOUT_MS,
          extraArgs: ['-au', 'alice', '-ap', 'alice-pw', '-auth_uri', `${o.callee}@${DOMAIN}`],
        });
        const served = await uas.stop();
        const details = `${describeRun(run)}\n--- UAS ---\n${describeRun(served)}\n--- serve stderr ---\n${server.stderr().slice(-3000)}`;
        assert.equal(run.stats?.successful, o.calls, `UAC calls\n${details}`);
        assert.equal(run.stats?.failed, 0, `UAC failures\n${details}`);
      } finally {
        await uas.stop({ now: true }).catch(() => undefined);
      }
      return true;
    }

    /** Waits until `count` calls show terminated in the watcher's latest NOTIFY history. */
    async function waitEnded(
      w: Watcher,
      sub: WatcherSubscription,
      count: number,
    ): Promise<Map<string, string[]>> {
      const deadline = Date.now() + 5000;
      for (;;) {
        const h = historyOf(w, sub);
        const ended = [...h.values()].filter((s) => s.at(-1)!.startsWith('terminated'));
        if (ended.length >= count) return h;
        if (Date.now() > deadline) {
          assert.fail(`${ended.length} of ${count} calls ended: ${JSON.stringify([...h])}`);
        }
        await sleep(50);
      }
    }

    it(
      '5 calls alice -> bob: confirmed then terminated on both lamps, never going back',
      { timeout: 45_000 },
      async (t) => {
        const bobs = await dave.subscribe({
          to: `sip:bob@${DOMAIN}`,
          event: 'dialog',
          expires: 600,
        });
        const alices = await dave.subscribe({
          to: `sip:alice@${DOMAIN}`,
          event: 'dialog',
          expires: 600,
        });
        assert.equal(bobs.response.status, 200);
        assert.deepEqual(dialogsOf(await dave.waitNotify(bobs, 1)), []);
        await dave.waitNotify(alices, 1);
        const ran = await calls(t, {
          callee: 'bob',
          uac: 'uac-proxy-call.xml',
          uas: 'uas-call.xml',
          calls: 5,
        });
        if (!ran) return;
        const bob = await waitEnded(dave, bobs, 5);
        const alice = await waitEnded(dave, alices, 5);
        assert.equal(bob.size, 5, 'one <dialog> per call');
        for (const [callId, states] of bob) {
          assert.ok(states.includes('confirmed'), `${callId}: ${states.join(' ')}`);
          assert.equal(states.at(-1), 'terminated/remote-bye', `${callId}: ${states.join(' ')}`);
          const ranks = states.map(rank);
          assert.deepEqual(
            ranks,
            [...ranks].sort((a, b) => a - b),
            `${callId}: ${states.join(' ')}`,
          );
          assert.equal(alice.get(callId)?.at(-1), 'terminated/local-bye', callId);
        }
        assert.ok(
          dave.of(alices).every((n) => dialogsOf(n).every((d) => d.direction === 'initiator')),
        );
        await dave.refresh(bobs, 0);
        await dave.refresh(alices, 0);
      },
    );

    it(
      '3 calls alice -> carol CANCELled while ringing: terminated, cancelled, 487',
      { timeout: 45_000 },
      async (t) => {
        const carols = await dave.subscribe({
          to: `sip:carol@${DOMAIN}`,
          event: 'dialog',
          expires: 600,
        });
        await dave.waitNotify(carols, 1);
        const ran = await calls(t, {
          callee: 'carol',
          uac: 'uac-proxy-cancel.xml',
          uas: 'uas-ring-cancel.xml',
          calls: 3,
        });
        if (!ran) return;
        const carol = await waitEnded(dave, carols, 3);
        assert.equal(carol.size, 3, 'one <dialog> per call');
        for (const [callId, states] of carol) {
          assert.equal(states.at(-1), 'terminated/cancelled/487', `${callId}: ${states.join(' ')}`);
          assert.ok(!states.includes('confirmed'), `${callId}: ${states.join(' ')}`);
        }
        await dave.refresh(carols, 0);
      },
    );
  });
}
