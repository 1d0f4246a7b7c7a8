/**
 * sipp calls THROUGH `switchboard serve` (registrar + stateful proxy, RFC 3261 §16), on 127.0.0.1
 * only: one server (`--domain example.com`, UDP and TCP listeners on port 0, a configuration file
 * with `auth: { algorithms: [MD5] }`, since sipp 3.6.1 gives up on a challenge set that includes
 * SHA-256) with the users alice, bob, carol, dave and erin.
 *
 * Callees are sipp UAS processes. Each is registered from this process: a Stack sends a REGISTER
 * for the callee's AOR with digest credentials and the UAS's address as Contact (a third-party
 * registration, RFC 3261 §10.2; the proxy reaches a UDP registration at its Contact). Callers are
 * sipp UACs as alice@example.com: the proxy challenges the INVITE with 407 and sipp answers with
 * MD5 (-au alice -ap PASSWORD -auth_uri USER@example.com: the digest-uri is the Request-URI).
 *
 * 1. 20 calls over UDP to bob (scenarios/uac-proxy-call.xml -> scenarios/uas-call.xml): INVITE,
 *    407, ACK, INVITE with Proxy-Authorization, 180, 200 with the proxy's Record-Route, ACK and
 *    BYE on the route set through the proxy, 200. Every call succeeds on both sides and the UAS
 *    got the ACK and the BYE of each.
 * 2. CANCEL while ringing, to carol (uac-proxy-cancel.xml -> uas-ring-cancel.xml): the UAC gets 200
 *    for its CANCEL and 487 for the INVITE, and ACKs the 487 (RFC 3261 §9.1); the proxy CANCELs
 *    its branch (§16.10): the UAS gets the CANCEL and answers 487, and the proxy ACKs that.
 * 3. Forking to dave (two contacts, equal q, §16.6 parallel search): one UAS rings 300 ms then
 *    answers (uas-ring-answer.xml), the other rings until the proxy CANCELs it (§16.7 step 10)
 *    and answers 487 (uas-ring-cancel.xml). The UAC gets exactly one 200 per call and nothing it did
 *    not expect; the 487 is not forwarded.
 * 4. As 1, over TCP (sipp -t t1 on both sides) to erin, whose Contact has `;transport=tcp`: the
 *    proxy opens a connection to the UAS.
 *
 * The whole suite runs twice: the server as one process, and as two workers (`--workers 2`).
 *
 * A missing sipp fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { createRequest } from '../../../src/sip/index.ts';
import { createStack } from '../../../src/stack/index.ts';
import type { Stack } from '../../../src/stack/index.ts';
import { cli, startServer, stopServer, within } from '../../support/server.ts';
import type { RunningServer } from '../../support/server.ts';
import { md5OnlyConfig } from '../../support/serve-config.ts';
import type { ServeConfig } from '../../support/serve-config.ts';
import { requireTool } from '../../support/tools.ts';
import { LOOPBACK, count, describeRun, runSipp, startSippUas } from './sipp.ts';
import type { SippResult, SippTransport, SippUas } from './sipp.ts';

const DOMAIN = 'example.com';
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin'];
const passwordOf = (user: string): string => `pw-${user}-sipp`;

/** Hard limit on one sipp UAC run, and on a UAS's life. */
const SIPP_TIMEOUT_MS = 30_000;
const UAS_LIFETIME_MS = 40_000;
/** node:test's limit on one test. */
const TEST_TIMEOUT_MS = 45_000;

/** The sum of `counter` over every scenario element named `name` (e.g. both 487 receptions). */
function total(result: SippResult, name: string, counter: string): number {
  return (result.messages ?? [])
    .filter((m) => m.name === name)
    .reduce((sum, m) => sum + (m.counts[counter] ?? 0), 0);
}

/** Every `Unexp` counter of a run: messages that matched no element of the scenario. */
function unexpected(result: SippResult): number {
  return (result.messages ?? []).reduce((sum, m) => sum + (m.counts.Unexp ?? 0), 0);
}

function assertAllSucceeded(result: SippResult, calls: number, what: string): void {
  const details = `${what}\n${describeRun(result)}`;
  assert.equal(result.exitCode, 0, `sipp exit code (0 = every call succeeded)\n${details}`);
  assert.ok(result.stats, `no sipp statistics\n${details}`);
  assert.equal(result.stats.successful, calls, `successful calls\n${details}`);
  assert.equal(result.stats.failed, 0, `failed calls\n${details}`);
}

// Once with the server as one process, once with two worker processes (`--workers 2`): then
// about half the Call-IDs belong to the worker that did not read them, and over TCP half the
// responses and requests go out through the other worker's connection (transport/steering.ts).
for (const workers of [1, 2]) {
  describe(`sipp calls through switchboard serve (stateful proxy, RFC 3261 §16), ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    let dataDir: string | undefined;
    let config: ServeConfig | undefined;
    let server: RunningServer | undefined;
    /** Sends the third-party REGISTERs. */
    let registrar: Stack | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-sipp-proxy-'));
      config = md5OnlyConfig();
      cli(['domain', 'add', DOMAIN, '--data-dir', dataDir]);
      const csv = join(dataDir, 'users.csv');
      writeFileSync(
        csv,
        ['aor,password', ...USERS.map((u) => `${u}@${DOMAIN},${passwordOf(u)}`)].join('\n') + '\n',
      );
      cli(['user', 'import', csv, '--data-dir', dataDir]);
      server = await startServer({
        dataDir,
        domains: [DOMAIN],
        listen: [`udp:${LOOPBACK}:0`, `tcp:${LOOPBACK}:0`],
        extraArgs: [...config.args, '--workers', String(workers)],
      });
      registrar = await createStack({ listen: [`udp:${LOOPBACK}:0`] });
    });

    after(async () => {
      await registrar?.close().catch(() => undefined);
      if (server !== undefined) await stopServer(server).catch(() => undefined);
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
      config?.remove();
    });

    const serverLog = (): string => `--- serve stderr (tail) ---\n${server?.stderr().slice(-4000)}`;

    /**
     * REGISTERs `contact` for `sip:USER@example.com` (Expires 600) with digest credentials, sent
     * over UDP from the registrar stack: a third-party registration (the Contact is not the
     * sender's address).
     */
    async function register(user: string, contact: string): Promise<void> {
      const stack = registrar!;
      const req = createRequest({
        method: 'REGISTER',
        uri: `sip:${DOMAIN}`,
        from: `<sip:${user}@${DOMAIN}>;tag=${stack.ids.tag()}`,
        to: `<sip:${user}@${DOMAIN}>`,
        callId: stack.ids.callId(),
        cseq: 1,
        contact: `<${contact}>`,
        headers: [['Expires', '600']],
      });
      const res = await within(
        stack.send(req, {
          destination: { protocol: 'udp', address: LOOPBACK, port: server!.ports.udp! },
          credentials: { username: user, password: passwordOf(user) },
        }).final,
        10_000,
        `REGISTER of ${contact} for ${user}`,
      );
      assert.equal(res.status, 200, `REGISTER of ${contact} for ${user}\n${serverLog()}`);
    }

    /** The UAC's arguments: alice's credentials, digest-uri = the Request-URI. */
    const aliceAuth = (callee: string): string[] => [
      '-au',
      'alice',
      '-ap',
      passwordOf('alice'),
      '-auth_uri',
      `${callee}@${DOMAIN}`,
    ];

    /** Starts the UAS processes, runs `body`, and always stops them. */
    async function withUas(
      t: TestContext,
      scenarios: readonly string[],
      transport: SippTransport,
      body: (bin: string, uas: SippUas[]) => Promise<void>,
    ): Promise<void> {
      const bin = requireTool('sipp', t);
      if (bin === undefined) return;
      const started = await Promise.allSettled(
        scenarios.map((scenario) =>
          startSippUas({ bin, scenario, transport, timeoutMs: UAS_LIFETIME_MS }),
        ),
      );
      try {
        for (const s of started) if (s.status === 'rejected') throw s.reason;
        await body(
          bin,
          started.map((s) => (s as PromiseFulfilledResult<SippUas>).value),
        );
      } finally {
        await Promise.all(
          started.map((s) =>
            s.status === 'fulfilled'
              ? s.value.stop({ now: true }).catch(() => undefined)
              : undefined,
          ),
        );
      }
    }

    /** N calls from alice to `callee` through the proxy, then the UAS results (soft stop). */
    async function callsThroughProxy(
      t: TestContext,
      o: {
        transport: SippTransport;
        callee: string;
        calls: number;
        rate: number;
        uasScenario: string;
      },
    ): Promise<void> {
      await withUas(t, [o.uasScenario], o.transport, async (bin, [uas]) => {
        const tcp = o.transport === 't1';
        await register(o.callee, `sip:${o.callee}@${uas!.target}${tcp ? ';transport=tcp' : ''}`);
        const target = `${LOOPBACK}:${tcp ? server!.ports.tcp : server!.ports.udp}`;
        const run = await runSipp({
          bin,
          scenario: 'uac-proxy-call.xml',
          transport: o.transport,
          target,
          service: o.callee,
          calls: o.calls,
          rate: o.rate,
          limit: 10,
          timeoutMs: SIPP_TIMEOUT_MS,
          extraArgs: aliceAuth(o.callee),
        });
        const served = await uas!.stop();
        const context = `--- UAS ---\n${describeRun(served)}\n${serverLog()}`;
        assertAllSucceeded(run, o.calls, `UAC (alice -> ${o.callee})\n${context}`);
        assert.equal(total(run, '407', 'Recv'), o.calls, `407 per call\n${describeRun(run)}`);
        assert.equal(total(run, '200', 'Recv'), 2 * o.calls, `200 for INVITE and BYE\n${context}`);
        assert.equal(count(served, 'INVITE', 'Recv'), o.calls, `INVITEs at the UAS\n${context}`);
        assert.equal(count(served, 'ACK', 'Recv'), o.calls, `ACKs at the UAS\n${context}`);
        assert.equal(count(served, 'BYE', 'Recv'), o.calls, `BYEs at the UAS\n${context}`);
        assert.equal(served.stats?.successful, o.calls, `calls the UAS completed\n${context}`);
        assert.equal(served.stats?.failed, 0, `calls the UAS failed\n${context}`);
        t.diagnostic(
          `${o.calls} calls over ${tcp ? 'TCP' : 'UDP'} at ${o.rate}/s: ${run.durationMs} ms, ` +
            `UAC retransmissions ${run.stats?.retransmissions ?? '?'}, ` +
            `UAS retransmissions ${served.stats?.retransmissions ?? '?'}`,
        );
      });
    }

    it(
      '20 calls over UDP from alice to a registered sipp UAS: 407 answered, ACK and BYE on the Record-Route',
      { timeout: TEST_TIMEOUT_MS },
      (t) =>
        callsThroughProxy(t, {
          transport: 'u1',
          callee: 'bob',
          calls: 20,
          rate: 10,
          uasScenario: 'uas-call.xml',
        }),
    );

    it(
      'CANCEL while ringing: 200 for the CANCEL, 487 for the INVITE; the UAS gets the CANCEL and answers 487',
      { timeout: TEST_TIMEOUT_MS },
      (t) =>
        withUas(t, ['uas-ring-cancel.xml'], 'u1', async (bin, [uas]) => {
          const calls = 5;
          await register('carol', `sip:carol@${uas!.target}`);
          const run = await runSipp({
            bin,
            scenario: 'uac-proxy-cancel.xml',
            transport: 'u1',
            target: `${LOOPBACK}:${server!.ports.udp}`,
            service: 'carol',
            calls,
            rate: 5,
            limit: 5,
            timeoutMs: SIPP_TIMEOUT_MS,
            extraArgs: aliceAuth('carol'),
          });
          const served = await uas!.stop();
          const context = `--- UAS ---\n${describeRun(served)}\n${serverLog()}`;
          assertAllSucceeded(run, calls, `UAC (alice -> carol, CANCEL)\n${context}`);
          assert.equal(total(run, 'CANCEL', 'Sent'), calls, `CANCELs sent\n${context}`);
          assert.equal(total(run, '487', 'Recv'), calls, `487 per call at the UAC\n${context}`);
          assert.equal(total(run, '200', 'Recv'), calls, `200 for each CANCEL\n${context}`);
          assert.equal(
            total(run, 'ACK', 'Sent'),
            2 * calls,
            `ACK of the 407 and the 487\n${context}`,
          );
          assert.equal(count(served, 'CANCEL', 'Recv'), calls, `CANCELs at the UAS\n${context}`);
          assert.equal(count(served, '487', 'Sent'), calls, `487s from the UAS\n${context}`);
          assert.equal(
            count(served, 'ACK', 'Recv'),
            calls,
            `ACKs of the 487 at the UAS\n${context}`,
          );
          assert.equal(served.stats?.successful, calls, `calls the UAS completed\n${context}`);
          t.diagnostic(`${calls} cancelled calls: ${run.durationMs} ms`);
        }),
    );

    it(
      'forking to two contacts of one AOR: one answers, the other is CANCELled and answers 487; the UAC gets one 200',
      { timeout: TEST_TIMEOUT_MS },
      (t) =>
        withUas(
          t,
          ['uas-ring-answer.xml', 'uas-ring-cancel.xml'],
          'u1',
          async (bin, [answering, ringing]) => {
            const calls = 5;
            await register('dave', `sip:dave@${answering!.target}`);
            await register('dave', `sip:dave@${ringing!.target}`);
            const run = await runSipp({
              bin,
              scenario: 'uac-proxy-call.xml',
              transport: 'u1',
              target: `${LOOPBACK}:${server!.ports.udp}`,
              service: 'dave',
              calls,
              rate: 5,
              limit: 5,
              timeoutMs: SIPP_TIMEOUT_MS,
              extraArgs: aliceAuth('dave'),
            });
            const [a, r] = await Promise.all([answering!.stop(), ringing!.stop()]);
            const context =
              `--- answering UAS ---\n${describeRun(a)}\n--- ringing UAS ---\n${describeRun(r)}\n` +
              serverLog();
            assertAllSucceeded(run, calls, `UAC (alice -> dave, forked)\n${context}`);
            // Element 8 is the 200 for the INVITE (12 the BYE's): exactly one per call, and nothing
            // unexpected (a second 200 from the other fork would be).
            assert.equal(count(run, 8, 'Recv'), calls, `one 200 for each INVITE\n${context}`);
            assert.equal(unexpected(run), 0, `unexpected messages at the UAC\n${context}`);
            assert.equal(
              count(a, 'INVITE', 'Recv'),
              calls,
              `INVITEs at the answering UAS\n${context}`,
            );
            assert.equal(count(a, 'ACK', 'Recv'), calls, `ACKs at the answering UAS\n${context}`);
            assert.equal(count(a, 'BYE', 'Recv'), calls, `BYEs at the answering UAS\n${context}`);
            assert.equal(
              count(r, 'INVITE', 'Recv'),
              calls,
              `INVITEs at the ringing UAS\n${context}`,
            );
            assert.equal(
              count(r, 'CANCEL', 'Recv'),
              calls,
              `CANCELs at the ringing UAS\n${context}`,
            );
            assert.equal(count(r, '487', 'Sent'), calls, `487s from the ringing UAS\n${context}`);
            assert.equal(
              count(r, 'ACK', 'Recv'),
              calls,
              `ACKs of the 487 at the ringing UAS\n${context}`,
            );
            assert.equal(
              a.stats?.successful,
              calls,
              `calls the answering UAS completed\n${context}`,
            );
            assert.equal(r.stats?.successful, calls, `calls the ringing UAS completed\n${context}`);
            t.diagnostic(
              `${calls} forked calls: ${run.durationMs} ms, 180s at the UAC ${total(run, '180', 'Recv')}`,
            );
          },
        ),
    );

    it(
      '20 calls over TCP from alice to a registered sipp UAS (Contact ;transport=tcp)',
      { timeout: TEST_TIMEOUT_MS },
      (t) =>
        callsThroughProxy(t, {
          transport: 't1',
          callee: 'erin',
          calls: 20,
          rate: 10,
          uasScenario: 'uas-call.xml',
        }),
    );
  });
}
