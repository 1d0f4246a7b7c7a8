/**
 * The stack's examples against sipp on loopback (real peers, no mocks).
 *
 * Contract with the examples (examples/answer-calls.ts, examples/place-call.ts):
 *
 * answer-calls — `node --import tsx examples/answer-calls.ts --listen udp:127.0.0.1:PORT
 *   [--listen tcp:127.0.0.1:PORT2] [--ring-ms N]`, run from the repository root:
 *   - prints `listening <transport>:<ip>:<port>` once per listener when it is ready
 *     (e.g. `listening udp:127.0.0.1:5080`); the tests wait for those lines;
 *   - answers OPTIONS and MESSAGE with 200; every INVITE with 180, then 200 with an SDP answer
 *     (Content-Type: application/sdp, an m=audio line); takes the ACK; answers BYE with 200;
 *   - `--ring-ms N` delays the 200 by N ms after the 180 (default 0), so a CANCEL can arrive
 *     while it rings: then 200 for the CANCEL and 487 for the INVITE (RFC 3261 §9.2);
 *   - prints one line per call; runs until SIGTERM, then exits with code 0 within 2 s.
 *
 * place-call — `node --import tsx examples/place-call.ts sip:USER@127.0.0.1:PORT
 *   [--transport udp|tcp|tls] [--hold-ms N] [--user U --password P]`:
 *   - places one call (INVITE with SDP), answers a 401/407 challenge with the credentials,
 *     ACKs the 200, holds N ms, sends BYE;
 *   - exits 0 only when the call was answered and the BYE got a 2xx; non-zero otherwise
 *     (e.g. 403 after a wrong password).
 *
 * This file is skipped while examples/answer-calls.ts does not exist (the examples are being
 * written); the place-call suite also waits for examples/place-call.ts. A missing sipp is NOT
 * a reason to skip under CI: requireTool() fails the test there.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { requireTool, startProcess } from '../../support/tools.ts';
import type { ManagedProcess } from '../../support/tools.ts';
import { count, describeRun, runSipp, startSippUas } from './sipp.ts';
import type { RunSippOptions, SippResult } from './sipp.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ANSWER_CALLS = 'examples/answer-calls.ts';
const PLACE_CALL = 'examples/place-call.ts';
const HAS_ANSWER_CALLS = existsSync(join(ROOT, ANSWER_CALLS));
const HAS_PLACE_CALL = existsSync(join(ROOT, PLACE_CALL));

const NOT_YET = (file: string): string =>
  `${file} does not exist yet (being written): the stack-vs-sipp tests start when it lands`;

/** How long an example may take to print its `listening` lines (tsx compiles on the fly). */
const STARTUP_MS = 20_000;
/** Hard limit on one sipp run, and node:test's limit on one test. */
const SIPP_TIMEOUT_MS = 30_000;
const TEST_TIMEOUT_MS = 45_000;

/** Starts an example with `node --import tsx` from the repo root, tracked and bounded. */
function startExample(script: string, args: string[], lifetimeMs: number): ManagedProcess {
  return startProcess(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    timeoutMs: lifetimeMs,
    label: script,
  });
}

function outputOf(proc: ManagedProcess): string {
  const exit = proc.exit();
  return [
    `${proc.label} (pid ${proc.pid}) ${exit === undefined ? 'running' : `exited code ${exit.code} signal ${exit.signal}`}`,
    `--- stdout ---\n${proc.stdout().slice(-4000)}`,
    `--- stderr ---\n${proc.stderr().slice(-4000)}`,
  ].join('\n');
}

function assertAllSucceeded(result: SippResult, calls: number, proc?: ManagedProcess): void {
  const details = `${describeRun(result)}${proc ? `\n${outputOf(proc)}` : ''}`;
  assert.equal(result.exitCode, 0, `sipp exit code (0 = every call succeeded)\n${details}`);
  assert.ok(result.stats, `no sipp statistics\n${details}`);
  assert.equal(result.stats.successful, calls, `successful calls\n${details}`);
  assert.equal(result.stats.failed, 0, `failed calls\n${details}`);
}

describe(
  'examples/answer-calls.ts answers sipp',
  {
    skip: HAS_ANSWER_CALLS ? false : NOT_YET(ANSWER_CALLS),
    timeout: 300_000,
  },
  () => {
    let answer: ManagedProcess | undefined;
    let ringing: ManagedProcess | undefined;
    let udpPort = 0;
    let tcpPort = 0;
    let ringPort = 0;

    before(async () => {
      // Port 0: the example binds a free port and prints it, so no other test process can take
      // the port between choosing and binding it (tests run in parallel).
      answer = startExample(
        ANSWER_CALLS,
        ['--listen', 'udp:127.0.0.1:0', '--listen', 'tcp:127.0.0.1:0'],
        280_000,
      );
      // For CANCEL: the 200 waits 2 s after the 180, so the CANCEL always arrives while it rings.
      ringing = startExample(
        ANSWER_CALLS,
        ['--listen', 'udp:127.0.0.1:0', '--ring-ms', '2000'],
        280_000,
      );
      const portOf = (line: string): number => Number(/:(\d+)\s*$/.exec(line)?.[1] ?? 0);
      const [u, t, r] = await Promise.all([
        answer.waitForLine(/listening udp:127\.0\.0\.1:\d+/, STARTUP_MS),
        answer.waitForLine(/listening tcp:127\.0\.0\.1:\d+/, STARTUP_MS),
        ringing.waitForLine(/listening udp:127\.0\.0\.1:\d+/, STARTUP_MS),
      ]);
      udpPort = portOf(u);
      tcpPort = portOf(t);
      ringPort = portOf(r);
      assert.ok(udpPort > 0 && tcpPort > 0 && ringPort > 0, 'answer-calls printed its ports');
    });

    after(async () => {
      // Normally stopped by the last test; this is the safety net (SIGTERM, then SIGKILL).
      await Promise.all([answer?.stop({ graceMs: 2000 }), ringing?.stop({ graceMs: 2000 })]);
    });

    async function load(
      t: TestContext,
      proc: ManagedProcess | undefined,
      options: Omit<RunSippOptions, 'bin' | 'timeoutMs'>,
    ): Promise<SippResult | undefined> {
      const bin = requireTool('sipp', t);
      if (bin === undefined) return undefined;
      assert.ok(proc, 'answer-calls was not started');
      assert.equal(proc.exit(), undefined, `answer-calls is not running\n${outputOf(proc)}`);
      const result = await runSipp({ ...options, bin, timeoutMs: SIPP_TIMEOUT_MS });
      t.diagnostic(
        `${options.scenario} x${options.calls} over ${options.transport}: ${result.durationMs} ms, ` +
          `retransmissions ${result.stats?.retransmissions ?? '?'}`,
      );
      return result;
    }

    it('uac-call.xml over UDP: 10 calls at 10/s', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const result = await load(t, answer, {
        scenario: 'uac-call.xml',
        target: `127.0.0.1:${udpPort}`,
        transport: 'u1',
        calls: 10,
        rate: 10,
      });
      if (result) assertAllSucceeded(result, 10, answer);
    });

    it('uac-call.xml over TCP: 10 calls at 10/s', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const result = await load(t, answer, {
        scenario: 'uac-call.xml',
        target: `127.0.0.1:${tcpPort}`,
        transport: 't1',
        calls: 10,
        rate: 10,
      });
      if (result) assertAllSucceeded(result, 10, answer);
    });

    it(
      'uac-call.xml over UDP with 10 % loss (-lost 10): retransmissions save every call',
      {
        timeout: TEST_TIMEOUT_MS,
      },
      async (t) => {
        const result = await load(t, answer, {
          scenario: 'uac-call.xml',
          target: `127.0.0.1:${udpPort}`,
          transport: 'u1',
          calls: 10,
          rate: 10,
          lost: 10,
        });
        if (result) assertAllSucceeded(result, 10, answer);
      },
    );

    it(
      'uac-cancel.xml over UDP against --ring-ms 2000: 200 for CANCEL and 487, 5 calls',
      {
        timeout: TEST_TIMEOUT_MS,
      },
      async (t) => {
        const result = await load(t, ringing, {
          scenario: 'uac-cancel.xml',
          target: `127.0.0.1:${ringPort}`,
          transport: 'u1',
          calls: 5,
          rate: 10,
        });
        if (result === undefined) return;
        assertAllSucceeded(result, 5, ringing);
        assert.equal(count(result, 'CANCEL', 'Sent'), 5, describeRun(result));
        // Each call took the 487 in one of the scenario's two branches.
        const got487 = (result.messages ?? [])
          .filter((m) => m.name === '487')
          .reduce((sum, m) => sum + (m.counts.Recv ?? 0), 0);
        assert.equal(got487, 5, `487 responses\n${describeRun(result)}`);
      },
    );

    it('uac-options.xml over UDP: 50 OPTIONS get 200', { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const result = await load(t, answer, {
        scenario: 'uac-options.xml',
        target: `127.0.0.1:${udpPort}`,
        transport: 'u1',
        calls: 50,
        rate: 50,
      });
      if (result) assertAllSucceeded(result, 50, answer);
    });

    it(
      'uac-message.xml over UDP: 10 MESSAGE get 200/202',
      { timeout: TEST_TIMEOUT_MS },
      async (t) => {
        const result = await load(t, answer, {
          scenario: 'uac-message.xml',
          target: `127.0.0.1:${udpPort}`,
          transport: 'u1',
          calls: 10,
          rate: 10,
        });
        if (result) assertAllSucceeded(result, 10, answer);
      },
    );

    it('exits with code 0 within 2 s of SIGTERM', { timeout: TEST_TIMEOUT_MS }, async () => {
      for (const proc of [answer, ringing]) {
        assert.ok(proc, 'answer-calls was not started');
        assert.equal(proc.exit(), undefined, `exited before SIGTERM\n${outputOf(proc)}`);
        const started = Date.now();
        const exit = await proc.stop({ signal: 'SIGTERM', graceMs: 2000 });
        const details = `after ${Date.now() - started} ms\n${outputOf(proc)}`;
        assert.equal(exit.forced, false, `still running 2 s after SIGTERM (SIGKILLed) ${details}`);
        assert.equal(exit.signal, null, `died of a signal ${details}`);
        assert.equal(exit.code, 0, `exit code ${details}`);
      }
    });
  },
);

describe(
  'examples/place-call.ts calls sipp',
  {
    skip: !HAS_ANSWER_CALLS ? NOT_YET(ANSWER_CALLS) : !HAS_PLACE_CALL ? NOT_YET(PLACE_CALL) : false,
    timeout: 300_000,
  },
  () => {
    /** Runs place-call to its exit (bounded), against a sipp UAS; returns both. */
    async function placeCall(
      t: TestContext,
      options: {
        uas: string;
        transport: 'udp' | 'tcp';
        credentials?: { user: string; password: string };
      },
    ): Promise<{ exitCode: number | null; proc: ManagedProcess; uas: SippResult } | undefined> {
      const bin = requireTool('sipp', t);
      if (bin === undefined) return undefined;
      const uas = await startSippUas({
        bin,
        scenario: options.uas,
        transport: options.transport === 'tcp' ? 't1' : 'u1',
        timeoutMs: TEST_TIMEOUT_MS - 5_000,
      });
      let proc: ManagedProcess | undefined;
      try {
        const args = [
          `sip:bob@${uas.target}`,
          '--transport',
          options.transport,
          '--hold-ms',
          '200',
          ...(options.credentials
            ? ['--user', options.credentials.user, '--password', options.credentials.password]
            : []),
        ];
        proc = startExample(PLACE_CALL, args, 25_000);
        const exit = await proc.exited;
        const uasResult = await uas.stop({ graceMs: 3000 });
        t.diagnostic(`place-call exit ${exit.code} (${exit.signal ?? 'no signal'})`);
        assert.equal(
          proc.timedOut(),
          false,
          `place-call did not exit within 25 s\n${outputOf(proc)}`,
        );
        return { exitCode: exit.code, proc, uas: uasResult };
      } finally {
        await proc?.stop({ graceMs: 1000 });
        await uas.stop();
      }
    }

    function assertCallCompleted(run: {
      exitCode: number | null;
      proc: ManagedProcess;
      uas: SippResult;
    }): void {
      const details = `${outputOf(run.proc)}\n--- sipp UAS ---\n${describeRun(run.uas)}`;
      assert.equal(run.exitCode, 0, `place-call exit code\n${details}`);
      assert.equal(run.uas.stats?.successful, 1, `sipp UAS: successful calls\n${details}`);
      assert.equal(run.uas.stats?.failed, 0, `sipp UAS: failed calls\n${details}`);
      // The UAS scenario's ACK is optional (packet-loss tolerance); here it must have come.
      assert.equal(count(run.uas, 'ACK', 'Recv'), 1, `sipp UAS: ACK for the 200\n${details}`);
      assert.equal(count(run.uas, 'BYE', 'Recv'), 1, `sipp UAS: BYE\n${details}`);
    }

    for (const transport of ['udp', 'tcp'] as const) {
      it(
        `places a call to sipp uas-call.xml over ${transport.toUpperCase()}`,
        {
          timeout: TEST_TIMEOUT_MS,
        },
        async (t) => {
          const run = await placeCall(t, { uas: 'uas-call.xml', transport });
          if (run) assertCallCompleted(run);
        },
      );
    }

    it(
      'answers sipp uas-call-auth.xml 401 (Digest MD5, qop=auth) with --user alice --password secret',
      {
        timeout: TEST_TIMEOUT_MS,
      },
      async (t) => {
        const run = await placeCall(t, {
          uas: 'uas-call-auth.xml',
          transport: 'udp',
          credentials: { user: 'alice', password: 'secret' },
        });
        if (run === undefined) return;
        const details = `${outputOf(run.proc)}\n--- sipp UAS ---\n${describeRun(run.uas)}`;
        assert.equal(run.exitCode, 0, `place-call exit code\n${details}`);
        assert.equal(run.uas.stats?.successful, 1, `sipp UAS (verifyauth): successful\n${details}`);
        assert.equal(run.uas.stats?.failed, 0, `sipp UAS: failed\n${details}`);
      },
    );

    it(
      'exits non-zero when the credentials are refused (403)',
      { timeout: TEST_TIMEOUT_MS },
      async (t) => {
        const run = await placeCall(t, {
          uas: 'uas-call-auth.xml',
          transport: 'udp',
          credentials: { user: 'alice', password: 'not-the-password' },
        });
        if (run === undefined) return;
        const details = `${outputOf(run.proc)}\n--- sipp UAS ---\n${describeRun(run.uas)}`;
        // It got as far as answering the 401 (element 3 is the INVITE with credentials)...
        assert.equal(
          count(run.uas, 3, 'Recv'),
          1,
          `INVITE with Authorization received\n${details}`,
        );
        // ...and then took the 403 as the failure it is.
        assert.notEqual(run.exitCode, 0, `place-call must fail on 403\n${details}`);
        assert.equal(run.uas.stats?.successful, 0, details);
      },
    );
  },
);
