/**
 * Calls between real phones THROUGH `switchboard serve` (registrar + stateful proxy, RFC 3261
 * §16), on loopback only: linphonec 5.1.65 registered as alice, baresip 1.0.0 as bob, both to
 * the same server, over UDP and over TCP.
 *
 * What each test needs from the server:
 * - baresip calls linphonec, and linphonec calls baresip (per transport): the callee gets the
 *   INVITE from the server (the trace shows the server's address as the sender), answers; both
 *   report the call established (2xx forwarded, ACK relayed); the caller hangs up; both report
 *   the end (BYE relayed, its 200 back), and the callee got the BYE from the server.
 *   - INVITEs from local users are challenged (407): both phones answer it (the caller's trace
 *     holds an INVITE with Proxy-Authorization).
 *   - TCP: linphonec registers the Contact belle-sip rewrote to its connection's source port
 *     (nobody listens there), so requests to it must go down the registered flow (the
 *     REGISTER's connection, `received`), and in-dialog requests (ACK, BYE) must reach it the
 *     same way: the proxy has to Record-Route, or the other phone sends the BYE straight to
 *     that dead port. Over UDP both Contacts are reachable directly; Record-Route is what keeps
 *     the BYE on the server there, and the tests require it over both transports.
 *   - 180 Ringing is forwarded (linphonec prints `ringing`; not required by the asserts).
 * - From an authenticated local caller, a call to a user who exists but is not registered gets
 *   480, a call to a user who does not exist 404; both phones report the final status.
 *
 * baresip 1.0.0 (libre 1.1.0) answers MD5 challenges only and abandons a 401/407 in which any
 * challenge names another algorithm (see serverAccount() in ../baresip/baresip.ts): the server
 * runs with a configuration file that offers MD5 alone (`auth: { algorithms: [MD5] }`).
 *
 * A missing baresip or linphonec fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { freePortPair, requireTool } from '../../support/tools.ts';
import { linphoneHeader, startLinphone } from '../../support/linphone.ts';
import type { Linphone, LinphoneEvent, LinphoneTransport } from '../../support/linphone.ts';
import { MD5_ONLY_YAML } from '../../support/serve-config.ts';
import {
  accept,
  describeBaresip,
  dial,
  hangup,
  serverAccount,
  sipTrace,
  startBaresip,
  traceHeader,
  waitForCall,
  waitForRegistration,
} from '../baresip/baresip.ts';
import type { Baresip } from '../baresip/baresip.ts';
import {
  DOMAIN,
  HOLD_MS,
  LIFETIME_MS,
  STEP_MS,
  passwordOf,
  sleep,
  startPeersServer,
  step,
} from './support.ts';
import type { PeersServer } from './support.ts';

const TEST_TIMEOUT_MS = 60_000;

/**
 * Extra `switchboard serve` arguments: the suite runs with the server as one process, and as
 * two worker processes (`--workers 2`, cluster.ts): then a phone's REGISTER, its calls and the
 * other phone's requests to its flow are handled by whichever worker owns each Call-ID, and over
 * TCP the other worker writes through the one holding the phone's connection.
 */
const SERVE_ARGS = (workers: number): readonly string[] => ['--workers', String(workers)];
/** The configuration file: MD5 challenges only (baresip 1.0 refuses a set with SHA-256). */
const SERVE_CONFIG = MD5_ONLY_YAML;

/** linphonec registers as alice, baresip as bob; carol exists and never registers. */
const ALICE = 'alice';
const BOB = 'bob';
const CAROL = 'carol';
const NOBODY = 'nobody';

/**
 * The final status of a call from an authenticated local user to a user with no binding: 480
 * (Temporarily Unavailable, RFC 3261 §21.4.18) when the user exists, 404 (Not Found, §21.4.5)
 * when it does not. (A caller that is no local user gets 480 either way: user names cannot be
 * probed.)
 */
const EXPECTED_STATUS: Readonly<Record<string, number>> = { [CAROL]: 480, [NOBODY]: 404 };

interface Phones {
  linphone: Linphone;
  baresip: Baresip;
  context(): string;
}

for (const workers of [1, 2]) {
  describe(`calls between real phones through switchboard serve, ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    let peers: PeersServer | undefined;

    before(async () => {
      peers = await startPeersServer([ALICE, BOB, CAROL], SERVE_ARGS(workers), SERVE_CONFIG);
    });

    after(async () => {
      await peers?.close();
    });

    /** Both phones registered over `transport` (started in parallel), `body`, both stopped. */
    async function withRegisteredPhones(
      t: TestContext,
      transport: LinphoneTransport,
      body: (phones: Phones) => Promise<void>,
    ): Promise<void> {
      const baresipBin = requireTool('baresip', t);
      const linphoneBin = requireTool('linphonec', t);
      if (baresipBin === undefined || linphoneBin === undefined) return;
      const server = peers!;
      const port = server.port(transport);
      const starting = [
        startLinphone({
          bin: linphoneBin,
          account: {
            user: ALICE,
            domain: DOMAIN,
            password: passwordOf(ALICE),
            server: { port, transport },
          },
          timeoutMs: LIFETIME_MS,
          registerTimeoutMs: STEP_MS,
        }),
        (async () =>
          startBaresip({
            bin: baresipBin,
            port: await freePortPair(),
            account: serverAccount({
              user: BOB,
              domain: DOMAIN,
              password: passwordOf(BOB),
              server: { port, transport },
              answermode: 'manual',
            }),
            timeoutMs: LIFETIME_MS,
          }))(),
      ] as const;
      const [l, b] = await Promise.allSettled(starting);
      const context = (): string =>
        [
          b.status === 'fulfilled' ? describeBaresip(b.value) : '(baresip not started)',
          l.status === 'fulfilled' ? l.value.describe() : '(linphonec not started)',
          server.describe(),
        ].join('\n\n');
      try {
        if (l.status === 'rejected') throw l.reason;
        if (b.status === 'rejected') throw b.reason;
        await step(
          waitForRegistration(b.value, STEP_MS),
          `baresip registering (${transport})`,
          context,
        );
        await body({ linphone: l.value, baresip: b.value, context });
      } finally {
        await Promise.all([
          l.status === 'fulfilled' ? l.value.stop() : undefined,
          b.status === 'fulfilled' ? b.value.stop() : undefined,
        ]);
      }
    }

    /** `host:port` of the server's listener for `transport`, as the phones' traces print it. */
    const serverAddress = (transport: LinphoneTransport): string =>
      `127.0.0.1:${peers!.port(transport)}`;

    for (const transport of ['udp', 'tcp'] as const) {
      const T = transport.toUpperCase();

      it(
        `baresip calls linphonec through the server over ${T}: answered, established, baresip hangs up, both see the end`,
        { timeout: TEST_TIMEOUT_MS },
        (t) =>
          withRegisteredPhones(t, transport, async ({ linphone, baresip, context }) => {
            dial(baresip, `sip:${ALICE}@${DOMAIN}`);
            const incoming = await step(
              linphone.waitFor('incoming', STEP_MS),
              'linphonec: incoming call',
              context,
            );
            assert.match(incoming.uri, new RegExp(`^sip:${BOB}@${DOMAIN.replace('.', '\\.')}`));
            const invite = linphone
              .trace()
              .find((m) => m.direction === 'received' && m.firstLine.startsWith('INVITE '));
            assert.ok(invite !== undefined, `linphonec logged no INVITE\n${context()}`);
            assert.equal(invite.protocol, T, context());
            assert.equal(
              invite.peer,
              serverAddress(transport),
              `INVITE not from the server\n${context()}`,
            );
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
            // baresip answered the 407 (its From is a local user): the INVITE that got through
            // carried Proxy-Authorization (RFC 3261 §22.3).
            const authorized = sipTrace(baresip.output()).some(
              (m) =>
                m.firstLine.startsWith('INVITE ') &&
                traceHeader(m, 'Proxy-Authorization') !== undefined,
            );
            assert.ok(authorized, `baresip sent no INVITE with Proxy-Authorization\n${context()}`);
            // The proxy record-routed (RFC 3261 §16.6 step 4): the BYE reached linphonec from it.
            const bye = linphone
              .trace()
              .find((m) => m.direction === 'received' && m.firstLine.startsWith('BYE '));
            assert.ok(bye !== undefined, `linphonec logged no BYE\n${context()}`);
            assert.equal(
              bye.peer,
              serverAddress(transport),
              `BYE not from the server\n${context()}`,
            );
            t.diagnostic(`baresip -> linphonec via serve over ${T}: ok`);
          }),
      );

      it(
        `linphonec calls baresip through the server over ${T}: answered, established, linphonec hangs up, both see the end`,
        { timeout: TEST_TIMEOUT_MS },
        (t) =>
          withRegisteredPhones(t, transport, async ({ linphone, baresip, context }) => {
            const id = await step(
              linphone.call(`sip:${BOB}@${DOMAIN}`, STEP_MS),
              'linphonec: call',
              context,
            );
            const incoming = await step(
              waitForCall(baresip, 'incoming', STEP_MS),
              'baresip: incoming call',
              context,
            );
            assert.match(incoming.line, new RegExp(`sip:${ALICE}@${DOMAIN.replace('.', '\\.')}`));
            const invite = sipTrace(baresip.output()).find((m) =>
              m.firstLine.startsWith('INVITE '),
            );
            assert.ok(invite !== undefined, `baresip traced no INVITE\n${context()}`);
            assert.equal(invite.protocol, T, context());
            assert.equal(
              invite.from,
              serverAddress(transport),
              `INVITE not from the server\n${context()}`,
            );
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
            const [, ended] = await step(
              Promise.all([
                waitForCall(baresip, 'ended', STEP_MS),
                linphone.waitFor('ended', STEP_MS, id),
              ]),
              'the end seen on both sides',
              context,
            );
            assert.equal(ended.reason, 'No error', context());
            const authorized = linphone
              .trace()
              .some(
                (m) =>
                  m.direction === 'sent' &&
                  m.firstLine.startsWith('INVITE ') &&
                  linphoneHeader(m, 'Proxy-Authorization') !== undefined,
              );
            assert.ok(
              authorized,
              `linphonec sent no INVITE with Proxy-Authorization\n${context()}`,
            );
            const bye = sipTrace(baresip.output()).find(
              // linphonec hangs up: the only BYE in baresip's trace is the one it received.
              (m) => m.firstLine.startsWith('BYE '),
            );
            assert.ok(bye !== undefined, `baresip traced no BYE received\n${context()}`);
            assert.equal(
              bye.from,
              serverAddress(transport),
              `BYE not from the server\n${context()}`,
            );
            t.diagnostic(`linphonec -> baresip via serve over ${T}: ok`);
          }),
      );
    }

    it(
      'linphonec calls a user who is not registered (480), and one who does not exist (404)',
      { timeout: TEST_TIMEOUT_MS },
      async (t) => {
        const bin = requireTool('linphonec', t);
        if (bin === undefined) return;
        const server = peers!;
        let linphone: Linphone | undefined;
        const context = (): string =>
          [linphone?.describe() ?? '(linphonec not started)', server.describe()].join('\n\n');
        try {
          linphone = await step(
            startLinphone({
              bin,
              account: {
                user: ALICE,
                domain: DOMAIN,
                password: passwordOf(ALICE),
                server: { port: server.port('udp'), transport: 'udp' },
              },
              timeoutMs: LIFETIME_MS,
              registerTimeoutMs: STEP_MS,
            }),
            'linphonec registering (udp)',
            context,
          );
          for (const user of [CAROL, NOBODY]) {
            const id = await step(
              linphone.call(`sip:${user}@${DOMAIN}`, STEP_MS),
              `linphonec: call ${user}`,
              context,
            );
            const failed: LinphoneEvent = await step(
              linphone.waitFor('failed', STEP_MS, id),
              `linphonec: call to ${user} failing`,
              context,
            );
            assert.equal(failed.status, EXPECTED_STATUS[user], `call to ${user}\n${context()}`);
            t.diagnostic(`linphonec -> ${user}: ${failed.status}`);
          }
        } finally {
          await linphone?.stop();
        }
      },
    );

    for (const user of [CAROL, NOBODY]) {
      const what = user === CAROL ? 'is not registered' : 'does not exist';
      it(
        `baresip calls a user who ${what}: ${EXPECTED_STATUS[user]}`,
        { timeout: TEST_TIMEOUT_MS },
        async (t) => {
          const bin = requireTool('baresip', t);
          if (bin === undefined) return;
          const server = peers!;
          let baresip: Baresip | undefined;
          const context = (): string =>
            [
              baresip !== undefined ? describeBaresip(baresip) : '(baresip not started)',
              server.describe(),
            ].join('\n\n');
          try {
            baresip = await startBaresip({
              bin,
              port: await freePortPair(),
              account: serverAccount({
                user: BOB,
                domain: DOMAIN,
                password: passwordOf(BOB),
                server: { port: server.port('udp'), transport: 'udp' },
              }),
              timeoutMs: LIFETIME_MS,
            });
            await step(waitForRegistration(baresip, STEP_MS), 'baresip registering (udp)', context);
            dial(baresip, `sip:${user}@${DOMAIN}`);
            const failed = await step(
              waitForCall(baresip, 'failed', STEP_MS),
              `baresip: call to ${user} failing`,
              context,
            );
            assert.equal(
              failed.status,
              EXPECTED_STATUS[user],
              `call to ${user}: ${failed.line.trim()}\n${context()}`,
            );
            t.diagnostic(`baresip -> ${user}: ${failed.status}`);
          } finally {
            await baresip?.stop();
          }
        },
      );
    }
  });
}
