/**
 * sipp PUBLISHes to `switchboard serve` (RFC 3903, the server as its users' event state
 * compositor), on 127.0.0.1 only, with the server as one process and as two workers: the
 * scenario uac-publish.xml (beside this file) publishes alice's presence, refreshes it,
 * refreshes again with the stale entity-tag (412), publishes for the dialog package (489 with
 * Allow-Events) and removes it; every PUBLISH is first challenged with 407 (MD5 only: sipp
 * 3.6.1 answers nothing else). Ten such runs at once, each with its own Call-ID and state.
 *
 * A missing sipp fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { cli, startServer, stopServer } from '../../support/server.ts';
import type { RunningServer } from '../../support/server.ts';
import { md5OnlyConfig } from '../../support/serve-config.ts';
import type { ServeConfig } from '../../support/serve-config.ts';
import { requireTool } from '../../support/tools.ts';
import { LOOPBACK, describeRun, runSipp } from '../sipp/sipp.ts';

const DOMAIN = 'example.com';
const PASSWORD = 'pw-alice-sipp';
const SCENARIO = fileURLToPath(new URL('./uac-publish.xml', import.meta.url));
const CALLS = 10;

for (const workers of [1, 2]) {
  describe(`sipp PUBLISH to switchboard serve (RFC 3903), ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    let dataDir: string | undefined;
    let config: ServeConfig | undefined;
    let server: RunningServer | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-sipp-publish-'));
      config = md5OnlyConfig();
      cli(['domain', 'add', DOMAIN, '--data-dir', dataDir]);
      const csv = join(dataDir, 'users.csv');
      writeFileSync(csv, `aor,password\nalice@${DOMAIN},${PASSWORD}\n`);
      cli(['user', 'import', csv, '--data-dir', dataDir]);
      server = await startServer({
        dataDir,
        domains: [DOMAIN],
        extraArgs: [...config.args, '--workers', String(workers)],
      });
    });

    after(async () => {
      if (server !== undefined) await stopServer(server).catch(() => undefined);
      if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
      config?.remove();
    });

    it(
      'publish, refresh, 412 for the stale SIP-If-Match, 489 for another package, remove',
      { timeout: 45_000 },
      async (t) => {
        const bin = requireTool('sipp', t);
        if (bin === undefined) return;
        const run = await runSipp({
          bin,
          scenario: SCENARIO,
          transport: 'u1',
          target: `${LOOPBACK}:${server!.ports.udp}`,
          service: 'alice',
          calls: CALLS,
          rate: 10,
          limit: CALLS,
          timeoutMs: 30_000,
          extraArgs: ['-au', 'alice', '-ap', PASSWORD, '-auth_uri', `alice@${DOMAIN}`],
        });
        const details = `${describeRun(run)}\n--- serve stderr (tail) ---\n${server?.stderr().slice(-4000)}`;
        assert.equal(run.exitCode, 0, `sipp exit code (0 = every run succeeded)\n${details}`);
        assert.equal(run.stats?.successful, CALLS, `successful runs\n${details}`);
        assert.equal(run.stats?.failed, 0, `failed runs\n${details}`);
      },
    );
  });
}
