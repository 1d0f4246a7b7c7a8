/**
 * Proves the sipp harness and its scenarios with sipp against sipp on loopback, before they are
 * pointed at Switchboard: if these fail, the harness or a scenario is wrong, not the stack.
 *
 * Needs sipp (Debian package sip-tester): fails under CI=true without it, skips loudly locally.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { requireTool } from '../../support/tools.ts';
import { count, describeRun, runSipp, startSippUas } from './sipp.ts';
import type { SippResult, SippTransport } from './sipp.ts';

/** Per test: the UAC's hard limit, and the node:test timeout around everything. */
const UAC_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 40_000;

function assertAllSucceeded(result: SippResult, calls: number, who: string): void {
  const details = `${who}\n${describeRun(result)}`;
  assert.equal(result.exitCode, 0, `${who}: sipp exit code\n${details}`);
  assert.ok(result.stats, `${who}: no statistics\n${details}`);
  assert.equal(result.stats.successful, calls, `${who}: successful calls\n${details}`);
  assert.equal(result.stats.failed, 0, `${who}: failed calls\n${details}`);
}

async function callPair(
  t: TestContext,
  options: {
    uac: string;
    uas: string;
    transport: SippTransport;
    calls: number;
    lost?: number;
    timewaitMs?: number;
    /** Stop the UAS at once (SIGTERM) when the UAC is done, instead of waiting for its timewaits. */
    stopNow?: boolean;
    auth?: { username: string; password: string };
  },
): Promise<{ uac: SippResult; uas: SippResult } | undefined> {
  const bin = requireTool('sipp', t);
  if (bin === undefined) return undefined;
  const uas = await startSippUas({
    bin,
    scenario: options.uas,
    transport: options.transport,
    timeoutMs: TEST_TIMEOUT_MS - 5_000,
    timewaitMs: options.timewaitMs,
  });
  try {
    const uac = await runSipp({
      bin,
      scenario: options.uac,
      target: uas.target,
      transport: options.transport,
      calls: options.calls,
      rate: 10,
      lost: options.lost,
      auth: options.auth,
      timeoutMs: UAC_TIMEOUT_MS,
    });
    const uasResult = await uas.stop({ now: options.stopNow });
    t.diagnostic(
      `UAC ${uac.durationMs} ms, retransmissions ${uac.stats?.retransmissions ?? '?'}; ` +
        `UAS stopped ${uasResult.durationMs} ms after start`,
    );
    return { uac, uas: uasResult };
  } finally {
    await uas.stop();
  }
}

describe('sipp harness self-check (sipp against sipp on 127.0.0.1)', { timeout: 180_000 }, () => {
  for (const transport of ['u1', 't1'] as const) {
    it(
      `uac-call.xml against uas-call.xml over ${transport === 'u1' ? 'UDP' : 'TCP'}, 5 calls`,
      {
        timeout: TEST_TIMEOUT_MS,
      },
      async (t) => {
        const run = await callPair(t, {
          uac: 'uac-call.xml',
          uas: 'uas-call.xml',
          transport,
          calls: 5,
        });
        if (run === undefined) return;
        assertAllSucceeded(run.uac, 5, 'UAC');
        assertAllSucceeded(run.uas, 5, 'UAS');
        // Element 4 of uas-call.xml is the (optional) ACK: without loss every call has one.
        assert.equal(count(run.uas, 'ACK', 'Recv'), 5, `ACKs received\n${describeRun(run.uas)}`);
        assert.equal(count(run.uas, 'BYE', 'Recv'), 5, `BYEs received\n${describeRun(run.uas)}`);
      },
    );
  }

  it(
    'uac-cancel.xml against uas-cancel.xml over UDP, 5 calls',
    {
      timeout: TEST_TIMEOUT_MS,
    },
    async (t) => {
      const run = await callPair(t, {
        uac: 'uac-cancel.xml',
        uas: 'uas-cancel.xml',
        transport: 'u1',
        calls: 5,
      });
      if (run === undefined) return;
      assertAllSucceeded(run.uac, 5, 'UAC');
      assertAllSucceeded(run.uas, 5, 'UAS');
      assert.equal(count(run.uac, 'CANCEL', 'Sent'), 5, describeRun(run.uac));
    },
  );

  it(
    'uac-call-auth.xml against uas-call-auth.xml (digest, qop=auth), 3 calls',
    {
      timeout: TEST_TIMEOUT_MS,
    },
    async (t) => {
      const run = await callPair(t, {
        uac: 'uac-call-auth.xml',
        uas: 'uas-call-auth.xml',
        transport: 'u1',
        calls: 3,
        auth: { username: 'alice', password: 'secret' },
      });
      if (run === undefined) return;
      assertAllSucceeded(run.uac, 3, 'UAC');
      assertAllSucceeded(run.uas, 3, 'UAS (verifyauth alice/secret)');
    },
  );

  it(
    'uas-call-auth.xml rejects a wrong password (the UAS check is real)',
    {
      timeout: TEST_TIMEOUT_MS,
    },
    async (t) => {
      const run = await callPair(t, {
        uac: 'uac-call-auth.xml',
        uas: 'uas-call-auth.xml',
        transport: 'u1',
        calls: 1,
        auth: { username: 'alice', password: 'wrong' },
      });
      if (run === undefined) return;
      assert.equal(run.uac.exitCode, 1, describeRun(run.uac));
      assert.equal(run.uac.stats?.failed, 1, describeRun(run.uac));
      assert.match(run.uac.errors, /403 Forbidden/, describeRun(run.uac));
      assert.equal(run.uas.stats?.failed, 1, describeRun(run.uas));
    },
  );

  it(
    'uac-call.xml with -lost 10 over UDP completes thanks to retransmissions, 5 calls',
    {
      timeout: TEST_TIMEOUT_MS,
    },
    async (t) => {
      const attempt = () =>
        callPair(t, {
          uac: 'uac-call.xml',
          uas: 'uas-call.xml',
          transport: 'u1',
          calls: 5,
          lost: 10,
          // Keep finished calls 10 s so that a BYE retransmitted at 0.5/1.5/3.5/7.5 s (its 200
          // lost) is still answered; the UAS is stopped at once when the UAC is done.
          timewaitMs: 10_000,
          stopNow: true,
        });
      let run = await attempt();
      if (run === undefined) return;
      // sipp's -lost draws from an unseeded random source: now and then a loss pattern leaves
      // one call unfinished at the global timeout (seen once in many CI runs, sipp against
      // sipp, no Switchboard involved). One new draw decides; two failures in a row fail.
      if (run.uac.exitCode !== 0) {
        t.diagnostic(`first run failed, repeated once: ${describeRun(run.uac)}`);
        run = await attempt();
        if (run === undefined) return;
      }
      assertAllSucceeded(run.uac, 5, 'UAC with 10 % loss');
      // sipp's own accounting under -lost is loose (a call can end as "current" in its timewait,
      // and a lost-then-retransmitted message is counted oddly): the UAS must just not fail one.
      assert.equal(run.uas.stats?.failed, 0, `UAS failed calls\n${describeRun(run.uas)}`);
      // Not asserted: with 5 calls, no loss at all has a few per cent chance.
      const lost = (run.uac.messages ?? []).reduce((sum, m) => sum + (m.counts.Lost ?? 0), 0);
      t.diagnostic(`messages dropped by -lost: ${lost}`);
    },
  );

  it(
    'reports failures: exit code 255 and the timeout in the error log when nobody answers',
    {
      timeout: TEST_TIMEOUT_MS,
    },
    async (t) => {
      const bin = requireTool('sipp', t);
      if (bin === undefined) return;
      // A peer that never answers: a bound UDP socket (so no ICMP port unreachable) that drops all.
      const silent = createSocket('udp4');
      await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
      let received = 0;
      silent.on('message', () => received++);
      try {
        const result = await runSipp({
          bin,
          scenario: 'uac-options.xml',
          target: `127.0.0.1:${silent.address().port}`,
          transport: 'u1',
          calls: 1,
          timeoutMs: 3_500,
        });
        assert.equal(result.exitCode, 255, describeRun(result));
        assert.equal(result.killed, false, describeRun(result));
        assert.match(result.errors, /timed out/, describeRun(result));
        assert.ok(received >= 2, `OPTIONS sent and retransmitted (${received} datagrams)`);
      } finally {
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    },
  );
});
