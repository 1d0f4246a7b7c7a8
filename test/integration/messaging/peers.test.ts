/**
 * Instant messages (RFC 3428) between real phones THROUGH `switchboard serve`, with offline
 * store-and-forward, on loopback over UDP: linphonec 5.1 and baresip 1.0 register with the
 * server, and
 *
 * - linphonec (alice) sends a chat message to baresip (bob): bob prints it, alice gets the
 *   200 bob answered. baresip quits (un-registers); alice sends two messages and gets 202 for
 *   each (accepted for later delivery); the messages wait in the store; a new baresip bob
 *   starts and registers and prints both, in order, once; the store is empty afterwards;
 * - the same with linphonec as the offline user (carol), so that both phones receive kept
 *   messages;
 * - `switchboard message send` queues a message for a registered phone (bob): the server's
 *   next sweep delivers it, once.
 *
 * With one server process, and with two workers (`--workers 2`): then the REGISTER that
 * triggers a delivery, the MESSAGEs and the sweep may each be another worker's, and only the
 * store's leases keep a message from going out twice.
 *
 * baresip sends messages only to the entries of its contacts file, which its harness leaves
 * empty, so linphonec is the sender here. baresip 1.0 answers MD5 challenges only: the server
 * offers MD5 alone (MD5_ONLY_YAML). A missing baresip or linphonec fails under CI=true
 * (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { MD5_ONLY_YAML } from '../../support/serve-config.ts';
import { cli } from '../../support/server.ts';
import { freePortPair, pollUntil, requireTool } from '../../support/tools.ts';
import { linphoneHeader, startLinphone } from '../../support/linphone.ts';
import type { Linphone } from '../../support/linphone.ts';
import {
  describeBaresip,
  serverAccount,
  startBaresip,
  waitForRegistration,
} from '../baresip/baresip.ts';
import type { Baresip } from '../baresip/baresip.ts';
import {
  DOMAIN,
  LIFETIME_MS,
  STEP_MS,
  passwordOf,
  sleep,
  startPeersServer,
  step,
} from '../peers/support.ts';
import type { PeersServer } from '../peers/support.ts';

const TEST_TIMEOUT_MS = 90_000;
/** Kept messages are tried every 2 s (besides each REGISTER), so the CLI test is quick. */
const CONFIG = `${MD5_ONLY_YAML}messaging:\n  retryInterval: 2\n`;

/** The statuses of the final responses linphonec received to its MESSAGEs, in order. */
function messageStatuses(l: Linphone): number[] {
  return l
    .trace()
    .filter(
      (m) =>
        m.direction === 'received' &&
        /^SIP\/2\.0 [2-6]\d\d/.test(m.firstLine) &&
        /\bMESSAGE$/.test(linphoneHeader(m, 'CSeq') ?? '') &&
        !/^SIP\/2\.0 40[17]/.test(m.firstLine),
    )
    .map((m) => Number(m.firstLine.slice(8, 11)));
}

/** How often `needle` occurs in `haystack`. */
function occurrences(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

for (const workers of [1, 2]) {
  describe(`instant messages between real phones through switchboard serve (UDP), ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    let peers: PeersServer | undefined;

    before(async () => {
      peers = await startPeersServer(
        ['alice', 'bob', 'carol'],
        ['--workers', String(workers)],
        CONFIG,
      );
    });
    after(async () => {
      await peers?.close();
    });

    async function waiting(user: string): Promise<string[]> {
      const store = openSqliteStore(peers!.dataDir);
      try {
        const list = await store.messages.list(`sip:${user}@${DOMAIN}`, Date.now());
        return list.map((m) => new TextDecoder().decode(m.body));
      } finally {
        await store.close();
      }
    }

    const linphone = (bin: string, user: string): Promise<Linphone> =>
      startLinphone({
        bin,
        account: {
          user,
          domain: DOMAIN,
          password: passwordOf(user),
          server: { port: peers!.port('udp'), transport: 'udp' },
        },
        timeoutMs: LIFETIME_MS + 30_000,
        registerTimeoutMs: STEP_MS,
      });

    async function baresip(bin: string, user: string): Promise<Baresip> {
      const b = await startBaresip({
        bin,
        port: await freePortPair(),
        account: serverAccount({
          user,
          domain: DOMAIN,
          password: passwordOf(user),
          server: { port: peers!.port('udp'), transport: 'udp' },
        }),
        timeoutMs: LIFETIME_MS + 30_000,
      });
      try {
        await waitForRegistration(b, STEP_MS);
      } catch (e) {
        await b.stop();
        throw e;
      }
      return b;
    }

    /** The tools, or undefined (skipped) when one is missing outside CI. */
    function tools(t: TestContext): { baresip: string; linphonec: string } | undefined {
      const b = requireTool('baresip', t);
      const l = requireTool('linphonec', t);
      return b === undefined || l === undefined ? undefined : { baresip: b, linphonec: l };
    }

    it(
      'linphonec to baresip: delivered at once; baresip offline: 202 twice; baresip back: both, in order, once',
      { timeout: TEST_TIMEOUT_MS },
      async (t) => {
        const bins = tools(t);
        if (bins === undefined) return;
        const alice = await linphone(bins.linphonec, 'alice');
        let bob: Baresip | undefined;
        let bob2: Baresip | undefined;
        const context = (): string =>
          [
            bob !== undefined ? describeBaresip(bob) : '(first baresip not started)',
            bob2 !== undefined ? describeBaresip(bob2) : '(second baresip not started)',
            alice.describe(),
            peers!.describe(),
          ].join('\n\n');
        try {
          bob = await step(baresip(bins.baresip, 'bob'), 'baresip (bob) registering', context);
          alice.command(`chat sip:bob@${DOMAIN} hello-online`);
          await step(bob.waitFor('"hello-online"', STEP_MS), 'bob receives the message', context);
          assert.ok(
            await pollUntil(() => messageStatuses(alice).length >= 1, STEP_MS),
            `no final response to the MESSAGE\n${context()}`,
          );
          assert.deepEqual(messageStatuses(alice), [200], context());

          // bob goes away: /quit un-registers, then baresip exits.
          bob.command('/quit');
          await step(bob.process.exited, 'baresip (bob) quitting', context);
          assert.ok(
            await pollUntil(async () => (await peers!.bindings('bob')).length === 0, STEP_MS),
            `bob's binding is still there\n${context()}`,
          );
          alice.command(`chat sip:bob@${DOMAIN} offline-one`);
          assert.ok(
            await pollUntil(() => messageStatuses(alice).length >= 2, STEP_MS),
            `no final response to the first offline MESSAGE\n${context()}`,
          );
          alice.command(`chat sip:bob@${DOMAIN} offline-two`);
          assert.ok(
            await pollUntil(() => messageStatuses(alice).length >= 3, STEP_MS),
            `no final response to the second offline MESSAGE\n${context()}`,
          );
          assert.deepEqual(messageStatuses(alice), [200, 202, 202], context());
          assert.deepEqual(await waiting('bob'), ['offline-one', 'offline-two'], context());

          // bob comes back: both messages, in order, once.
          bob2 = await step(
            baresip(bins.baresip, 'bob'),
            'baresip (bob) registering again',
            context,
          );
          await step(
            bob2.waitFor('"offline-two"', STEP_MS),
            'bob receives the kept messages',
            context,
          );
          await sleep(1_500); // a duplicate would come within this
          const out = bob2.output();
          assert.equal(occurrences(out, '"offline-one"'), 1, context());
          assert.equal(occurrences(out, '"offline-two"'), 1, context());
          assert.ok(out.indexOf('"offline-one"') < out.indexOf('"offline-two"'), context());
          assert.equal(occurrences(out, '"hello-online"'), 0, context());
          assert.deepEqual(await waiting('bob'), [], context());
          t.diagnostic('linphonec -> baresip, online and kept while offline: ok');
        } finally {
          await Promise.all([alice.stop(), bob?.stop(), bob2?.stop()]);
        }
      },
    );

    it(
      'linphonec to linphonec: carol offline, 202 twice; carol back: both, in order, once',
      { timeout: TEST_TIMEOUT_MS },
      async (t) => {
        const bins = tools(t);
        if (bins === undefined) return;
        const alice = await linphone(bins.linphonec, 'alice');
        let carol: Linphone | undefined;
        const context = (): string =>
          [
            carol !== undefined ? carol.describe() : '(carol not started)',
            alice.describe(),
            peers!.describe(),
          ].join('\n\n');
        try {
          assert.equal((await peers!.bindings('carol')).length, 0);
          alice.command(`chat sip:carol@${DOMAIN} kept-one`);
          assert.ok(
            await pollUntil(() => messageStatuses(alice).length >= 1, STEP_MS),
            `no final response to the first MESSAGE\n${context()}`,
          );
          alice.command(`chat sip:carol@${DOMAIN} kept-two`);
          assert.ok(
            await pollUntil(() => messageStatuses(alice).length >= 2, STEP_MS),
            `no final response to the second MESSAGE\n${context()}`,
          );
          assert.deepEqual(messageStatuses(alice), [202, 202], context());
          carol = await step(
            linphone(bins.linphonec, 'carol'),
            'linphonec (carol) registering',
            context,
          );
          const received = (): string[] =>
            [...carol!.output().matchAll(/Message received from \S+: (kept-\w+)/g)].map(
              (m) => m[1]!,
            );
          assert.ok(
            await pollUntil(() => received().length >= 2, STEP_MS),
            `carol did not get both messages\n${context()}`,
          );
          await sleep(1_500);
          assert.deepEqual(received(), ['kept-one', 'kept-two'], context());
          assert.match(carol.output(), /Message received from sip:alice@example\.com/, context());
          assert.deepEqual(await waiting('carol'), [], context());
          t.diagnostic('linphonec -> linphonec kept while offline: ok');
        } finally {
          await Promise.all([alice.stop(), carol?.stop()]);
        }
      },
    );

    it(
      'switchboard message send to a registered phone: delivered by the next sweep, once',
      { timeout: TEST_TIMEOUT_MS },
      async (t) => {
        const bins = tools(t);
        if (bins === undefined) return;
        let bob: Baresip | undefined;
        const context = (): string =>
          [
            bob !== undefined ? describeBaresip(bob) : '(baresip not started)',
            peers!.describe(),
          ].join('\n\n');
        try {
          bob = await step(baresip(bins.baresip, 'bob'), 'baresip (bob) registering', context);
          const out = cli([
            'message',
            'send',
            `ops@${DOMAIN}`,
            `bob@${DOMAIN}`,
            'announcement-1',
            '--data-dir',
            peers!.dataDir,
          ]);
          assert.match(out, /^queued message \d+ for sip:bob@example\.com\n$/);
          await step(
            bob.waitFor('"announcement-1"', STEP_MS),
            'bob receives the announcement',
            context,
          );
          await sleep(2_500); // past the next sweep: no second copy
          assert.equal(occurrences(bob.output(), '"announcement-1"'), 1, context());
          assert.match(bob.output(), /sip:ops@example\.com/, context());
          assert.deepEqual(await waiting('bob'), [], context());
          t.diagnostic('switchboard message send -> baresip: ok');
        } finally {
          await bob?.stop();
        }
      },
    );
  });
}
