/**
 * baresip 1.0.0 and linphonec 5.1.65 call each other DIRECTLY (peer to peer on 127.0.0.1, no
 * server, UDP): the call-driving code of both harnesses (dial/accept/hangup, call/answer/
 * terminate, the events each reports) proven against real phones, independently of the proxy.
 *
 * 1. baresip dials linphonec's contact (`sip:carol@127.0.0.1:PORT;transport=udp`); linphonec
 *    reports the incoming call and answers; both report the call established (linphonec: the
 *    call connected and its media streams running); baresip hangs up; both report the end and
 *    linphonec's log shows the BYE it got and its 200.
 * 2. linphonec calls baresip (answermode=manual); baresip answers (/accept); both report the
 *    call established; linphonec hangs up (terminate); both report the end.
 * 3. A call declined by the callee: linphonec terminates the ringing call from baresip; baresip
 *    reports the failure with the status of the final response.
 * 4. The other way round: baresip rejects (/hangup) the ringing call from linphonec; linphonec
 *    reports the failure, with the status read from its log.
 *
 * A missing baresip or linphonec fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { freePortPair, requireTool } from '../../support/tools.ts';
import { linphoneHeader, startLinphone } from '../../support/linphone.ts';
import type { Linphone } from '../../support/linphone.ts';
import {
  LOOPBACK,
  accept,
  describeBaresip,
  dial,
  hangup,
  sipTrace,
  startBaresip,
  traceHeader,
  waitForCall,
} from '../baresip/baresip.ts';
import type { Baresip } from '../baresip/baresip.ts';
import { HOLD_MS, LIFETIME_MS, STEP_MS, sleep, step } from './support.ts';

const TEST_TIMEOUT_MS = 45_000;

/** A baresip account for direct calls: no REGISTER (regint=0). */
function directAccount(user: string, answermode: 'auto' | 'manual'): string {
  return `<sip:${user}@${LOOPBACK}>;regint=0;answermode=${answermode};mwi=no`;
}

interface Phones {
  baresip: Baresip;
  linphone: Linphone;
  context(): string;
}

/** Starts both phones (in parallel), runs `body`, and always stops both. */
async function withPhones(
  t: TestContext,
  baresipAnswermode: 'auto' | 'manual',
  body: (phones: Phones) => Promise<void>,
): Promise<void> {
  const baresipBin = requireTool('baresip', t);
  const linphoneBin = requireTool('linphonec', t);
  if (baresipBin === undefined || linphoneBin === undefined) return;
  const starting = [
    startBaresip({
      bin: baresipBin,
      port: await freePortPair(),
      account: directAccount('bob', baresipAnswermode),
      timeoutMs: LIFETIME_MS,
    }),
    startLinphone({ bin: linphoneBin, user: 'carol', timeoutMs: LIFETIME_MS }),
  ] as const;
  const [b, l] = await Promise.allSettled(starting);
  try {
    if (b.status === 'rejected') throw b.reason;
    if (l.status === 'rejected') throw l.reason;
    const baresip = b.value;
    const linphone = l.value;
    await body({
      baresip,
      linphone,
      context: () => [describeBaresip(baresip), linphone.describe()].join('\n\n'),
    });
  } finally {
    await Promise.all([
      b.status === 'fulfilled' ? b.value.stop() : undefined,
      l.status === 'fulfilled' ? l.value.stop() : undefined,
    ]);
  }
}

describe('baresip and linphonec call each other directly (no server, UDP on loopback)', () => {
  it(
    'baresip calls linphonec: answered, established on both sides, baresip hangs up, both see the end',
    { timeout: TEST_TIMEOUT_MS },
    (t) =>
      withPhones(t, 'auto', async ({ baresip, linphone, context }) => {
        const target = linphone.contact('udp');
        dial(baresip, target);
        const incoming = await step(
          linphone.waitFor('incoming', STEP_MS),
          'linphonec: incoming call',
          context,
        );
        assert.match(incoming.uri, /^sip:bob@127\.0\.0\.1/);
        linphone.answer(incoming.id);
        await step(
          Promise.all([
            waitForCall(baresip, 'established', STEP_MS),
            linphone.waitFor('connected', STEP_MS, incoming.id),
            linphone.waitFor('streams', STEP_MS, incoming.id),
          ]),
          'call established on both sides',
          context,
        );
        await sleep(HOLD_MS);
        hangup(baresip);
        const [, ended] = await step(
          Promise.all([
            waitForCall(baresip, 'ended', STEP_MS),
            linphone.waitFor('ended', STEP_MS, incoming.id),
          ]),
          'the end seen on both sides',
          context,
        );
        assert.equal(ended.reason, 'No error', context());
        const trace = linphone.trace();
        const bye = trace.find((m) => m.direction === 'received' && m.firstLine.startsWith('BYE '));
        assert.ok(bye !== undefined, `linphonec got no BYE\n${context()}`);
        const byeOk = trace.some(
          (m) =>
            m.direction === 'sent' &&
            m.firstLine.startsWith('SIP/2.0 200') &&
            /\bBYE$/.test(linphoneHeader(m, 'CSeq') ?? ''),
        );
        assert.ok(byeOk, `linphonec sent no 200 to the BYE\n${context()}`);
      }),
  );

  it(
    'linphonec calls baresip: accepted, established on both sides, linphonec hangs up, both see the end',
    { timeout: TEST_TIMEOUT_MS },
    (t) =>
      withPhones(t, 'manual', async ({ baresip, linphone, context }) => {
        const id = await step(
          linphone.call(`sip:bob@${LOOPBACK}:${baresip.port}`, STEP_MS),
          'linphonec: call',
          context,
        );
        const incoming = await step(
          waitForCall(baresip, 'incoming', STEP_MS),
          'baresip: incoming call',
          context,
        );
        assert.match(incoming.line, /sip:carol@127\.0\.0\.1/);
        accept(baresip);
        await step(
          Promise.all([
            waitForCall(baresip, 'established', STEP_MS),
            linphone.waitFor('connected', STEP_MS, id),
            linphone.waitFor('streams', STEP_MS, id),
          ]),
          'call established on both sides',
          context,
        );
        await sleep(HOLD_MS);
        linphone.terminate(id);
        await step(
          Promise.all([
            waitForCall(baresip, 'ended', STEP_MS),
            linphone.waitFor('ended', STEP_MS, id),
          ]),
          'the end seen on both sides',
          context,
        );
        const sentBye = linphone
          .trace()
          .some((m) => m.direction === 'sent' && m.firstLine.startsWith('BYE '));
        assert.ok(sentBye, `linphonec sent no BYE\n${context()}`);
      }),
  );

  it(
    'linphonec declines the call from baresip: baresip reports the failure with its status',
    { timeout: TEST_TIMEOUT_MS },
    (t) =>
      withPhones(t, 'auto', async ({ baresip, linphone, context }) => {
        dial(baresip, linphone.contact('udp'));
        const incoming = await step(
          linphone.waitFor('incoming', STEP_MS),
          'linphonec: incoming call',
          context,
        );
        linphone.terminate(incoming.id);
        const failed = await step(
          waitForCall(baresip, 'failed', STEP_MS),
          'baresip: call failed',
          context,
        );
        const final = linphone
          .trace()
          .find(
            (m) =>
              m.direction === 'sent' &&
              /^SIP\/2\.0 [3-6]\d\d/.test(m.firstLine) &&
              /\bINVITE$/.test(linphoneHeader(m, 'CSeq') ?? ''),
          );
        assert.ok(final !== undefined, `linphonec sent no final error response\n${context()}`);
        assert.equal(failed.status, Number(final.firstLine.slice(8, 11)), context());
        await step(linphone.waitFor('ended', STEP_MS, incoming.id), 'linphonec: end', context);
        t.diagnostic(`linphonec declined with ${final.firstLine}`);
      }),
  );
  it(
    'baresip rejects the call from linphonec: linphonec reports the failure with its status',
    { timeout: TEST_TIMEOUT_MS },
    (t) =>
      withPhones(t, 'manual', async ({ baresip, linphone, context }) => {
        const id = await step(
          linphone.call(`sip:bob@${LOOPBACK}:${baresip.port}`, STEP_MS),
          'linphonec: call',
          context,
        );
        await step(waitForCall(baresip, 'incoming', STEP_MS), 'baresip: incoming call', context);
        hangup(baresip);
        const failed = await step(
          linphone.waitFor('failed', STEP_MS, id),
          'linphonec: call failed',
          context,
        );
        const final = sipTrace(baresip.output()).find(
          (m) =>
            /^SIP\/2\.0 [3-6]\d\d/.test(m.firstLine) &&
            /\bINVITE$/.test(traceHeader(m, 'CSeq') ?? ''),
        );
        assert.ok(final !== undefined, `baresip sent no final error response\n${context()}`);
        assert.equal(failed.status, Number(final.firstLine.slice(8, 11)), context());
        t.diagnostic(`baresip rejected with ${final.firstLine}`);
      }),
  );
});
