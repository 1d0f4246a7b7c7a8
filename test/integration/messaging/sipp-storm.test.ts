/**
 * MESSAGE storms (RFC 3428) from sipp through `switchboard serve`, on 127.0.0.1 only, with a
 * configuration that offers MD5 alone (sipp 3.6.1 answers nothing else) and `messaging.quota: 50`.
 * Every MESSAGE is first challenged with 407 and sent again with credentials (alice's), as the
 * server benchmark's uac-message.xml does; the scenarios are beside this file (storm-*.xml).
 *
 * 1. Online: a sipp UAS (storm-uas-message.xml) is carol's only contact, bound by a third-party
 *    REGISTER (storm-register.xml). 2,000 MESSAGEs at 400/s (at most 200 at once): every one
 *    gets 200 (none 202 or 480, no sipp call fails), the UAS got exactly 2,000 (one sipp call per
 *    Call-ID, none unexpected), nothing is kept for carol, and the server still answers OPTIONS.
 * 2. Offline: 1,000 MESSAGEs at 400/s to dave, who has no binding: the first 50 the server takes
 *    are kept (202), the other 950 get 480 (docs/messaging.md, "Quota": the failure the server would
 *    have answered without storing) and each such refusal is logged (`messaging: quota full,
 *    message refused`). The store holds exactly 50 messages for dave (read through the store API
 *    and through `switchboard message list --json`), all distinct and all from the storm; the
 *    server still answers OPTIONS.
 *
 * Both with the server as one process and as two workers (`--workers 2`): then the MESSAGEs of
 * one storm are handled by both processes at once, and only the store keeps the count of kept
 * messages within the quota.
 *
 * A missing sipp fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { credentialsFor } from '../../../src/cli/aor.ts';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { cli, startServer, stopServer } from '../../support/server.ts';
import type { RunningServer } from '../../support/server.ts';
import { MD5_ONLY_YAML, writeServeConfig } from '../../support/serve-config.ts';
import type { ServeConfig } from '../../support/serve-config.ts';
import { pollUntil, requireTool } from '../../support/tools.ts';
import { LOOPBACK, count, describeRun, runSipp, startSippUas } from '../sipp/sipp.ts';
import type { SippResult } from '../sipp/sipp.ts';

const DOMAIN = 'example.com';
const USERS = ['alice', 'carol', 'dave'];
const passwordOf = (user: string): string => `pw-${user}-storm`;
const QUOTA = 50;

const scenario = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

/** The online storm: how many, how fast, how many at once. */
const ONLINE = { calls: 2_000, rate: 400, limit: 200 } as const;
/** The offline storm. */
const OFFLINE = { calls: 1_000, rate: 400, limit: 200 } as const;

/** Elements of storm-uac-message.xml whose Recv counts tell the final responses apart. */
const UAC_202 = 5;
const UAC_480 = 6;
const UAC_200 = 7;

const TEST_TIMEOUT_MS = 60_000;
/** Hard limit on one storm (sipp's own -timeout is a little below it). */
const STORM_TIMEOUT_MS = 40_000;

function assertAllSucceeded(run: SippResult, calls: number, details: string): void {
  assert.equal(run.exitCode, 0, `sipp exit code (0 = every call succeeded)\n${details}`);
  assert.ok(run.stats, `no sipp statistics\n${details}`);
  assert.equal(run.stats.successful, calls, `successful sipp calls\n${details}`);
  assert.equal(run.stats.failed, 0, `failed sipp calls\n${details}`);
}

/** Every `Unexp` counter of a run: messages that matched no element of the scenario. */
function unexpected(run: SippResult): number {
  return (run.messages ?? []).reduce((sum, m) => sum + (m.counts.Unexp ?? 0), 0);
}

for (const workers of [1, 2]) {
  describe(`sipp MESSAGE storms through switchboard serve (RFC 3428, 407 first, quota ${QUOTA}), ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    let dataDir: string | undefined;
    let config: ServeConfig | undefined;
    let server: RunningServer | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-sipp-storm-'));
      // A long retry interval: no sweep runs during a test (dave has no contact anyway).
      config = writeServeConfig(
        `${MD5_ONLY_YAML}messaging:\n  quota: ${QUOTA}\n  retryInterval: 600\n`,
      );
      // Straight into the store: two CLI runs would cost about two seconds.
      const store = openSqliteStore(dataDir);
      try {
        await store.domains.add(DOMAIN);
        for (const u of USERS) {
          await store.users.add(`sip:${u}@${DOMAIN}`, credentialsFor(u, DOMAIN, passwordOf(u)));
        }
      } finally {
        await store.close();
      }
      server = await startServer({
        dataDir,
        domains: [DOMAIN],
        listen: [`udp:${LOOPBACK}:0`],
        extraArgs: [...config.args, '--workers', String(workers)],
      });
    });

    after(async () => {
      if (server !== undefined) await stopServer(server).catch(() => undefined);
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
      config?.remove();
    });

    const target = (): string => `${LOOPBACK}:${server!.ports.udp}`;
    const serverLog = (): string => `--- serve stderr (tail) ---\n${server?.stderr().slice(-4000)}`;

    /** A storm of `calls` MESSAGEs from alice to `to`. */
    function storm(
      bin: string,
      to: string,
      o: { calls: number; rate: number; limit: number },
    ): Promise<SippResult> {
      return runSipp({
        bin,
        scenario: scenario('storm-uac-message.xml'),
        transport: 'u1',
        target: target(),
        service: to,
        calls: o.calls,
        rate: o.rate,
        limit: o.limit,
        timeoutMs: STORM_TIMEOUT_MS,
        extraArgs: ['-au', 'alice', '-ap', passwordOf('alice'), '-auth_uri', `${to}@${DOMAIN}`],
      });
    }

    /** Five OPTIONS to the server, each answered 200. */
    async function assertServerAnswers(bin: string): Promise<void> {
      const run = await runSipp({
        bin,
        scenario: scenario('storm-options.xml'),
        transport: 'u1',
        target: target(),
        calls: 5,
        rate: 50,
        timeoutMs: 15_000,
      });
      assertAllSucceeded(run, 5, `OPTIONS after the storm\n${describeRun(run)}\n${serverLog()}`);
    }

    async function kept(user: string): Promise<string[]> {
      const store = openSqliteStore(dataDir!);
      try {
        const list = await store.messages.list(`sip:${user}@${DOMAIN}`, Date.now());
        return list.map((m) => new TextDecoder().decode(m.body));
      } finally {
        await store.close();
      }
    }

    it(
      `${ONLINE.calls} MESSAGEs at ${ONLINE.rate}/s to a user registered by a sipp UAS: each answered 200, each received once; OPTIONS still answered`,
      { timeout: TEST_TIMEOUT_MS },
      async (t: TestContext) => {
        const bin = requireTool('sipp', t);
        if (bin === undefined) return;
        const uas = await startSippUas({
          bin,
          scenario: scenario('storm-uas-message.xml'),
          transport: 'u1',
          service: 'carol',
          timeoutMs: STORM_TIMEOUT_MS + 15_000,
          // Covers the server's first retransmissions of a MESSAGE answered late (Timer E: 0.5 s, 1.5 s).
          timewaitMs: 2_000,
          // A MESSAGE the UAS is not answering in time is not held for ever.
          extraArgs: ['-recv_timeout', '10000ms'],
        });
        let uasResult: SippResult | undefined;
        try {
          const dir = mkdtempSync(join(tmpdir(), 'sb-sipp-storm-reg-'));
          try {
            const inf = join(dir, 'carol.csv');
            writeFileSync(
              inf,
              `SEQUENTIAL\ncarol;[authentication username=carol password=${passwordOf('carol')}];${uas.target}\n`,
            );
            const reg = await runSipp({
              bin,
              scenario: scenario('storm-register.xml'),
              transport: 'u1',
              target: target(),
              calls: 1,
              timeoutMs: 15_000,
              injectFile: inf,
              extraArgs: ['-auth_uri', DOMAIN],
            });
            assertAllSucceeded(reg, 1, `REGISTER of the UAS for carol\n${describeRun(reg)}`);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }

          const started = Date.now();
          const run = await storm(bin, 'carol', ONLINE);
          const stormMs = Date.now() - started;
          uasResult = await uas.stop({ graceMs: 8_000 });
          const details = (): string =>
            `--- storm (UAC) ---\n${describeRun(run)}\n--- UAS ---\n${describeRun(uasResult!)}\n${serverLog()}`;

          assertAllSucceeded(run, ONLINE.calls, details());
          assert.equal(count(run, UAC_200, 'Recv'), ONLINE.calls, `200s\n${details()}`);
          assert.equal(count(run, UAC_202, 'Recv') ?? 0, 0, `202s (kept)\n${details()}`);
          assert.equal(count(run, UAC_480, 'Recv') ?? 0, 0, `480s\n${details()}`);
          assert.equal(unexpected(run), 0, `unexpected messages at the UAC\n${details()}`);

          // The UAS: one sipp call per Call-ID, so exactly one per MESSAGE sent.
          assert.equal(uasResult.stats?.successful, ONLINE.calls, `UAS calls\n${details()}`);
          assert.equal(uasResult.stats?.failed, 0, `UAS failed calls\n${details()}`);
          assert.equal(
            count(uasResult, 0, 'Recv'),
            ONLINE.calls,
            `MESSAGEs received\n${details()}`,
          );
          assert.equal(unexpected(uasResult), 0, `unexpected messages at the UAS\n${details()}`);

          assert.deepEqual(await kept('carol'), [], `nothing kept for carol\n${details()}`);
          await assertServerAnswers(bin);
          t.diagnostic(
            `online storm: ${ONLINE.calls} MESSAGEs in ${stormMs} ms, ` +
              `UAC retransmissions ${run.stats?.retransmissions ?? '?'}, ` +
              `UAS retransmissions ${uasResult.stats?.retransmissions ?? '?'}`,
          );
        } finally {
          await uas.stop({ now: true });
        }
      },
    );

    it(
      `${OFFLINE.calls} MESSAGEs to a user with no binding: ${QUOTA} kept (202), the rest 480; the store holds ${QUOTA}; OPTIONS still answered`,
      { timeout: TEST_TIMEOUT_MS },
      async (t: TestContext) => {
        const bin = requireTool('sipp', t);
        if (bin === undefined) return;
        assert.deepEqual(await kept('dave'), []);
        const refusalsBefore = server!.stderr().split('messaging: quota full').length - 1;

        const run = await storm(bin, 'dave', OFFLINE);
        const details = (): string => `--- storm (UAC) ---\n${describeRun(run)}\n${serverLog()}`;
        assertAllSucceeded(run, OFFLINE.calls, details());
        assert.equal(count(run, UAC_202, 'Recv'), QUOTA, `202s (kept)\n${details()}`);
        assert.equal(count(run, UAC_480, 'Recv'), OFFLINE.calls - QUOTA, `480s\n${details()}`);
        assert.equal(count(run, UAC_200, 'Recv') ?? 0, 0, `200s\n${details()}`);
        assert.equal(unexpected(run), 0, `unexpected messages at the UAC\n${details()}`);

        // The store: exactly the quota, each a distinct message of this storm.
        const texts = await kept('dave');
        assert.equal(texts.length, QUOTA, `messages kept for dave\n${details()}`);
        assert.equal(new Set(texts).size, QUOTA, `distinct messages\n${texts.join('\n')}`);
        for (const text of texts) {
          const n = /^storm (\d+)\r?\n?$/.exec(text);
          assert.ok(n !== null && Number(n[1]) >= 1 && Number(n[1]) <= OFFLINE.calls, text);
        }
        const listed = JSON.parse(
          cli(['message', 'list', `dave@${DOMAIN}`, '--json', '--data-dir', dataDir!]),
        ) as { from: string; text?: string }[];
        assert.equal(listed.length, QUOTA, 'switchboard message list --json');
        assert.deepEqual(
          listed.map((m) => m.text),
          texts,
          'the CLI lists what the store holds, oldest first',
        );
        assert.ok(listed.every((m) => /^<sip:alice@example\.com>$/.test(m.from)));

        // Each refusal is logged (the log may trail the last answer a little).
        const refusals = (): number =>
          server!.stderr().split('messaging: quota full').length - 1 - refusalsBefore;
        await pollUntil(() => refusals() >= OFFLINE.calls - QUOTA, 5_000);
        assert.equal(
          refusals(),
          OFFLINE.calls - QUOTA,
          `one "quota full" log line per refused MESSAGE\n${serverLog()}`,
        );

        await assertServerAnswers(bin);
        t.diagnostic(
          `offline storm: ${OFFLINE.calls} MESSAGEs, ${QUOTA} kept, ${OFFLINE.calls - QUOTA} refused`,
        );
      },
    );
  });
}
