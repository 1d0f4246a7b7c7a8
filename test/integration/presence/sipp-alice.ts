/**
 * What the sipp presence tests (sipp.test.ts, sipp-subscribe.test.ts) share: a `switchboard
 * serve` on 127.0.0.1 (UDP and TCP) with one user, alice, from a fresh data dir, and a sipp
 * scenario played as alice (digest as alice, MD5 only: sipp 3.6.1 answers nothing else) that
 * must succeed in every one of its runs.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { cli, startServer, stopServer } from '../../support/server.ts';
import type { RunningServer } from '../../support/server.ts';
import { writeServeConfig } from '../../support/serve-config.ts';
import type { ServeConfig } from '../../support/serve-config.ts';
import { requireTool } from '../../support/tools.ts';
import { LOOPBACK, describeRun, runSipp } from '../sipp/sipp.ts';

export const DOMAIN = 'example.com';
const PASSWORD = 'pw-alice-sipp';

/** A server for alice, started by `start` (in `before`) and removed by `stop` (in `after`). */
export class AliceServer {
  private dataDir: string | undefined;
  private config: ServeConfig | undefined;
  private server: RunningServer | undefined;

  /** `yaml`: the server's configuration file; `workers`: `--workers`. */
  constructor(
    private readonly yaml: string,
    private readonly workers: number,
  ) {}

  async start(): Promise<void> {
    this.dataDir = mkdtempSync(join(tmpdir(), 'sb-sipp-presence-'));
    this.config = writeServeConfig(this.yaml);
    cli(['domain', 'add', DOMAIN, '--data-dir', this.dataDir]);
    const csv = join(this.dataDir, 'users.csv');
    writeFileSync(csv, `aor,password\nalice@${DOMAIN},${PASSWORD}\n`);
    cli(['user', 'import', csv, '--data-dir', this.dataDir]);
    this.server = await startServer({
      dataDir: this.dataDir,
      domains: [DOMAIN],
      listen: [`udp:${LOOPBACK}:0`, `tcp:${LOOPBACK}:0`],
      extraArgs: [...this.config.args, '--workers', String(this.workers)],
    });
  }

  async stop(): Promise<void> {
    if (this.server !== undefined) await stopServer(this.server).catch(() => undefined);
    if (this.dataDir !== undefined) rmSync(this.dataDir, { recursive: true, force: true });
    this.config?.remove();
  }

  /** Plays `scenario` `calls` times (10 a second) as alice; every run must succeed. */
  async play(
    t: TestContext,
    scenario: string,
    calls: number,
    transport: 'u1' | 't1' = 'u1',
  ): Promise<void> {
    const bin = requireTool('sipp', t);
    if (bin === undefined) return;
    const server = this.server!;
    const run = await runSipp({
      bin,
      scenario,
      transport,
      target: `${LOOPBACK}:${transport === 'u1' ? server.ports.udp : server.ports.tcp}`,
      service: 'alice',
      calls,
      rate: 10,
      limit: calls,
      timeoutMs: 30_000,
      extraArgs: ['-au', 'alice', '-ap', PASSWORD, '-auth_uri', `alice@${DOMAIN}`],
    });
    const details = `${describeRun(run)}\n--- serve stderr (tail) ---\n${server.stderr().slice(-4000)}`;
    assert.equal(run.exitCode, 0, `sipp exit code (0 = every run succeeded)\n${details}`);
    assert.equal(run.stats?.successful, calls, `successful runs\n${details}`);
    assert.equal(run.stats?.failed, 0, `failed runs\n${details}`);
  }
}
