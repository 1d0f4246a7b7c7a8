/**
 * The stack's examples against baresip 1.0.0 (a real SIP user agent, libre's SIP/TLS), on
 * loopback only: UDP as the baseline, then TLS in both directions.
 *
 * 1. baresip calls examples/answer-calls.ts (`/dial`), waits for `Call established`, hangs up
 *    (`/hangup`); answer-calls must print `call 1 answered` and `call 1 ended by remote`.
 * 2. examples/place-call.ts calls baresip over TLS (baresip answers by itself:
 *    `answermode=auto` on an account with `regint=0`, i.e. direct calls and no registrar); it
 *    must exit 0 (answered, BYE got a 2xx) and baresip must report the call and its end.
 *
 * Certificates: makeCerts() (a throwaway CA and a certificate for IP 127.0.0.1 it signed) for
 * both TLS servers. answer-calls serves it with --cert/--key; baresip serves it as its
 * sip_certificate. baresip 1.0 never verifies a TLS server's certificate (see baresip.ts), so
 * its sip_cafile is not what makes test 1 pass. place-call.ts does verify: it is given the test
 * CA through NODE_EXTRA_CA_CERTS instead of --insecure, so the stack checks baresip's
 * certificate against 127.0.0.1 for real.
 *
 *
 * baresip missing: fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  freePortPair,
  pollUntil,
  requireTool,
  startProcess,
  waitFor,
} from '../../support/tools.ts';
import type { ManagedProcess } from '../../support/tools.ts';
import { makeCerts } from '../transport/support.ts';
import type { TestCerts } from '../transport/support.ts';
import {
  BARESIP_USER,
  LOOPBACK,
  describeBaresip,
  sipTrace,
  startBaresip,
  traceHeader,
} from './baresip.ts';
import type { Baresip } from './baresip.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ANSWER_CALLS = 'examples/answer-calls.ts';
const PLACE_CALL = 'examples/place-call.ts';

/** node:test's limit on one test: each test is bounded by 20 s. */
const TEST_TIMEOUT_MS = 20_000;
/** answer-calls under tsx may take a few seconds to compile and print `listening ...`. */
const STARTUP_MS = 10_000;
/** place-call.ts from start to exit (tsx compile, call, HOLD_MS, BYE). */
const PLACE_CALL_MS = 12_000;
/** One call step: established, answered, ended. */
const STEP_MS = 4_000;
/**
 * How long a call is held before the hang-up. baresip prints `Call with X terminated` only for a
 * call of at least one second; place-call.ts's --hold-ms gets the same value.
 */
const HOLD_MS = 1_200;
/** Hard limit on every child's life (they are stopped by pid long before, in `finally`). */
const LIFETIME_MS = 30_000;

interface CertFiles {
  certs: TestCerts;
  dir: string;
  ca: string;
  cert: string;
  key: string;
  cleanup(): void;
}

/** makeCerts() written to files (answer-calls takes paths; NODE_EXTRA_CA_CERTS takes a path). */
function certFiles(): CertFiles {
  const certs = makeCerts();
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-baresip-certs-'));
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  writeFileSync(files.ca, certs.ca);
  writeFileSync(files.cert, certs.cert);
  writeFileSync(files.key, certs.key, { mode: 0o600 });
  return {
    certs,
    dir,
    ...files,
    cleanup: () => {
      rmSync(dir, { recursive: true, force: true });
      certs.cleanup();
    },
  };
}

/** Starts an example with `node --import tsx` from the repo root, tracked and bounded. */
function startExample(script: string, args: string[], env?: NodeJS.ProcessEnv): ManagedProcess {
  return startProcess(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    timeoutMs: LIFETIME_MS,
    label: script,
    ...(env !== undefined ? { env } : {}),
  });
}

function describeProcess(proc: ManagedProcess): string {
  const exit = proc.exit();
  return [
    `${proc.label} (pid ${proc.pid}) ${exit === undefined ? 'running' : `exited code ${exit.code} signal ${exit.signal}`}`,
    `--- stdout ---\n${proc.stdout().slice(-3000)}`,
    `--- stderr ---\n${proc.stderr().slice(-3000)}`,
  ].join('\n');
}

/** Both sides' output, for assertion messages. */
function both(baresip: Baresip | undefined, example: ManagedProcess | undefined): string {
  return [
    ...(baresip !== undefined ? [describeBaresip(baresip)] : []),
    ...(example !== undefined ? [describeProcess(example)] : []),
  ].join('\n\n');
}

/** Awaits `p`; on failure rethrows with both sides' output appended. */
async function step<T>(p: Promise<T>, what: string, context: () => string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw new Error(
      `${what}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n${context()}`,
      { cause: err },
    );
  }
}

async function baresipCallsAnswerCalls(t: TestContext, transport: 'udp' | 'tls'): Promise<void> {
  const bin = requireTool('baresip', t);
  if (bin === undefined) return;
  const started = Date.now();
  const certs = transport === 'tls' ? certFiles() : undefined;
  let example: ManagedProcess | undefined;
  let baresip: Baresip | undefined;
  let baresipStarting: Promise<Baresip> | undefined;
  const context = (): string => both(baresip, example);
  try {
    // Port 0: the example binds a free port and prints it (no race with parallel tests).
    example = startExample(ANSWER_CALLS, [
      '--listen',
      `${transport}:${LOOPBACK}:0`,
      ...(certs !== undefined ? ['--cert', certs.cert, '--key', certs.key] : []),
    ]);
    // baresip starts while answer-calls compiles; `finally` stops it even if the other failed.
    baresipStarting = startBaresip({
      bin,
      port: await freePortPair(),
      ...(certs !== undefined ? { certificate: certs.certs.cert + certs.certs.key } : {}),
      ...(certs !== undefined ? { ca: certs.certs.ca } : {}),
      timeoutMs: LIFETIME_MS,
    });
    const [bs, listening] = await Promise.all([
      baresipStarting,
      step(
        example.waitForLine(new RegExp(`listening ${transport}:127\\.0\\.0\\.1:\\d+`), STARTUP_MS),
        'answer-calls start',
        context,
      ),
    ]);
    baresip = bs;
    const port = Number(/:(\d+)\s*$/.exec(listening)?.[1] ?? 0);

    const target =
      transport === 'udp'
        ? `sip:answer@${LOOPBACK}:${port}`
        : `sip:answer@${LOOPBACK}:${port};transport=tls`;
    baresip.command(`/dial ${target}`);

    const outcome = await step(
      baresip.waitFor(/Call established|session closed|terminated/, STEP_MS),
      `baresip dialling ${target}`,
      context,
    );
    if (!outcome.includes('Call established')) {
      assert.fail(
        `baresip did not establish the call to ${target}: ${outcome.trim()}\n${context()}`,
      );
    }
    await step(example.waitForLine('call 1 answered', STEP_MS), 'answer-calls answering', context);

    // Hold the call 1.2 s: baresip prints `Call with ... terminated (duration: ...)` only for
    // calls that lasted at least one second (print_summary() returns on a zero duration).
    await new Promise((r) => setTimeout(r, HOLD_MS));
    baresip.command('/hangup');
    await step(
      Promise.all([
        baresip.waitFor(/Call with sip:answer@.* terminated/, STEP_MS),
        example.waitForLine('call 1 ended by remote', STEP_MS),
      ]),
      'hang-up reported on both sides',
      context,
    );
    // The BYE got its 200 (baresip prints `terminated` when it sends the BYE, not on the 200).
    const byeOk = await pollUntil(
      () =>
        sipTrace(baresip!.output()).some(
          (m) =>
            m.firstLine.startsWith('SIP/2.0 200') && /\bBYE$/.test(traceHeader(m, 'CSeq') ?? ''),
        ),
      STEP_MS,
    );
    assert.equal(byeOk, true, `no 200 OK for baresip's BYE in its SIP trace\n${context()}`);
    t.diagnostic(`baresip -> answer-calls over ${transport}: ${Date.now() - started} ms`);
  } finally {
    const running = baresip ?? (await baresipStarting?.catch(() => undefined));
    await Promise.all([running?.stop(), example?.stop({ graceMs: 2000 })]);
    certs?.cleanup();
  }
}

describe('baresip calls examples/answer-calls.ts', () => {
  it(
    'over UDP (baseline): established, hung up by baresip, both sides see the end',
    { timeout: TEST_TIMEOUT_MS },
    (t) => baresipCallsAnswerCalls(t, 'udp'),
  );

  it(
    'over TLS (/dial ...;transport=tls): established, hung up by baresip, both sides see the end',
    { timeout: TEST_TIMEOUT_MS },
    (t) => baresipCallsAnswerCalls(t, 'tls'),
  );
});

describe('examples/place-call.ts calls baresip', () => {
  it(
    'over TLS: baresip answers by itself, place-call exits 0 (answered, BYE 2xx)',
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const bin = requireTool('baresip', t);
      if (bin === undefined) return;
      const started = Date.now();
      const certs = certFiles();
      let baresip: Baresip | undefined;
      let caller: ManagedProcess | undefined;
      const context = (): string => both(baresip, caller);
      try {
        baresip = await startBaresip({
          bin,
          port: await freePortPair(),
          certificate: certs.certs.cert + certs.certs.key,
          ca: certs.certs.ca,
          timeoutMs: LIFETIME_MS,
        });
        const target = `sip:${BARESIP_USER}@${LOOPBACK}:${baresip.tlsPort}`;
        // The test CA through NODE_EXTRA_CA_CERTS rather than --insecure: baresip's certificate is
        // signed by it (not self-signed), so the stack verifies it, IP 127.0.0.1 included.
        caller = startExample(
          PLACE_CALL,
          [target, '--transport', 'tls', '--hold-ms', String(HOLD_MS)],
          {
            ...process.env,
            NODE_EXTRA_CA_CERTS: certs.ca,
          },
        );
        const exit = await waitFor(caller.exited, PLACE_CALL_MS);
        if (exit === undefined) assert.fail(`place-call.ts did not exit in time\n${context()}`);
        assert.equal(exit.code, 0, `place-call.ts exit code (0 = answered, BYE 2xx)\n${context()}`);
        assert.match(caller.stdout(), /call ended: BYE 200/, context());
        await step(
          Promise.all([
            baresip.waitFor('Call established', STEP_MS),
            baresip.waitFor(/Call with sip:caller@.* terminated/, STEP_MS),
          ]),
          'baresip reporting the call and its end',
          context,
        );
        t.diagnostic(`place-call -> baresip over tls: ${Date.now() - started} ms`);
      } finally {
        await Promise.all([baresip?.stop(), caller?.stop({ graceMs: 2000 })]);
        certs.cleanup();
      }
    },
  );
});
