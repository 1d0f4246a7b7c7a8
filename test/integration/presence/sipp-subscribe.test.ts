/**
 * sipp SUBSCRIBEs to `switchboard serve` (RFC 6665, RFC 3856: the server as presence agent), on
 * 127.0.0.1 only, with the server as one process and as two workers. The scenarios beside this
 * file, each SUBSCRIBE first challenged with 407 (MD5 only: sipp 3.6.1 answers nothing else):
 *
 * - uac-subscribe.xml, ten at once: 200 with Expires and Contact, the immediate NOTIFY (active,
 *   PIDF), a refresh in the dialog (200 and a NOTIFY), 489 with Allow-Events for the
 *   message-summary package, unsubscribe (200 Expires 0 and a NOTIFY terminated); over UDP, and over TCP, where
 *   every NOTIFY must come back on sipp's own connection (its Contact says UDP);
 * - uac-subscribe-expiry.xml, ten at once: Expires 2, the NOTIFY, then unasked a NOTIFY
 *   terminated;reason=timeout;
 * - uac-subscribe-publish.xml, one call: a NOTIFY for each PUBLISH that changes the watched state
 *   (open with the published note, closed again after its removal).
 *
 * The stale SIP-If-Match of a PUBLISH (412) is sipp.test.ts's uac-publish.xml.
 * A missing sipp fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { cli, startServer, stopServer } from '../../support/server.ts';
import type { RunningServer } from '../../support/server.ts';
import { MD5_ONLY_YAML, writeServeConfig } from '../../support/serve-config.ts';
import type { ServeConfig } from '../../support/serve-config.ts';
import { requireTool } from '../../support/tools.ts';
import { LOOPBACK, describeRun, runSipp } from '../sipp/sipp.ts';

const DOMAIN = 'example.com';
const PASSWORD = 'pw-alice-sipp';
const scenario = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

for (const workers of [1, 2]) {
  describe(`sipp SUBSCRIBE to switchboard serve (RFC 6665), ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    let dataDir: string | undefined;
    let config: ServeConfig | undefined;
    let server: RunningServer | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-sipp-subscribe-'));
      // Short subscriptions for the expiry scenario, and a quick look at the other worker's
      // changes.
      config = writeServeConfig(
        `${MD5_ONLY_YAML}presence:\n  subscribeMinExpires: 1\n  pollInterval: 0.2\n`,
      );
      cli(['domain', 'add', DOMAIN, '--data-dir', dataDir]);
      const csv = join(dataDir, 'users.csv');
      writeFileSync(csv, `aor,password\nalice@${DOMAIN},${PASSWORD}\n`);
      cli(['user', 'import', csv, '--data-dir', dataDir]);
      server = await startServer({
        dataDir,
        domains: [DOMAIN],
        listen: [`udp:${LOOPBACK}:0`, `tcp:${LOOPBACK}:0`],
        extraArgs: [...config.args, '--workers', String(workers)],
      });
    });

    after(async () => {
      if (server !== undefined) await stopServer(server).catch(() => undefined);
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
      config?.remove();
    });

    async function play(
      t: TestContext,
      file: string,
      calls: number,
      transport: 'u1' | 't1' = 'u1',
    ): Promise<void> {
      const bin = requireTool('sipp', t);
      if (bin === undefined) return;
      const run = await runSipp({
        bin,
        scenario: scenario(file),
        transport,
        target: `${LOOPBACK}:${transport === 'u1' ? server!.ports.udp : server!.ports.tcp}`,
        service: 'alice',
        calls,
        rate: 10,
        limit: calls,
        timeoutMs: 30_000,
        extraArgs: ['-au', 'alice', '-ap', PASSWORD, '-auth_uri', `alice@${DOMAIN}`],
      });
      const details = `${describeRun(run)}\n--- serve stderr (tail) ---\n${server?.stderr().slice(-4000)}`;
      assert.equal(run.exitCode, 0, `sipp exit code (0 = every run succeeded)\n${details}`);
      assert.equal(run.stats?.successful, calls, `successful runs\n${details}`);
      assert.equal(run.stats?.failed, 0, `failed runs\n${details}`);
    }

    it(
      'subscribe, immediate NOTIFY, refresh, 489 for another package, unsubscribe',
      { timeout: 45_000 },
      (t) => play(t, 'uac-subscribe.xml', 10),
    );
    it(
      'over TCP: the NOTIFYs come on the connection the SUBSCRIBE opened (its Contact names no transport)',
      { timeout: 45_000 },
      (t) => play(t, 'uac-subscribe.xml', 10, 't1'),
    );
    it('a subscription not refreshed: NOTIFY terminated;reason=timeout', { timeout: 45_000 }, (t) =>
      play(t, 'uac-subscribe-expiry.xml', 10),
    );
    it('a NOTIFY for each PUBLISH that changes the state', { timeout: 45_000 }, (t) =>
      play(t, 'uac-subscribe-publish.xml', 1),
    );
  });
}
