/**
 * Presence between real phones THROUGH `switchboard serve` (RFC 6665 SUBSCRIBE/NOTIFY, RFC 3856
 * presence, RFC 3903 PUBLISH, PIDF RFC 3863), on loopback over UDP: alice watches bob, and sees
 * each change of bob's presence both on her phone's console and in the PIDF of the NOTIFYs her
 * phone received and answered 200 (one subscription dialog for all of them).
 *
 * - linphonec watches linphonec: bob not registered, nothing published: `Offline` (basic
 *   closed, the server's tuple derived from registrations); bob's linphonec registers and
 *   PUBLISHes (`publish=1`): `Online` (basic open, bob's own tuple); bob un-registers and quits
 *   (its quit removes the publication, PUBLISH Expires: 0): `Offline` (closed).
 * - linphonec watches bob, whose linphonec only registers; sipp PUBLISHes for bob (as bob, with
 *   bob's credentials): bob registered: `Online`; "away" published, the RPID way (basic open,
 *   and `<rpid:away/>` in the activities of a `<dm:person>`, RFC 4480 and RFC 4479): `Away`,
 *   the NOTIFY carrying that person; the publication removed: `Online`; a published `closed`
 *   wins over the registration: `Offline` while bob's binding is still there; removed: `Online`
 *   again; bob un-registers: `Offline`. (linphonec shows `Away` only from a person's
 *   activities: an `<rpid:activities>` inside a tuple shows as `Online`.)
 * - baresip watches baresip (presence.so), bob's baresip only registers and sipp PUBLISHes for
 *   him: bob registers: `Offline` to `Online`; a published `closed`: `Offline`; removed:
 *   `Online`; bob's `/quit` (un-REGISTER): `Offline`; alice's `/quit` un-SUBSCRIBEs (Expires:
 *   0) and gets 200 and a final NOTIFY `terminated`. (bob's baresip does not PUBLISH itself:
 *   baresip 1.0 with `pubint` sometimes sends two initial PUBLISHes at once, right after its
 *   REGISTER, and on `/quit` removes only the one it kept the entity-tag of; the other keeps
 *   bob open until it expires. A client race; the server keeps both as RFC 3903 says.)
 *
 * baresip prints a line only when the state it shows changes; linphonec prints one line per
 * NOTIFY it takes, so its lines are also counted against the NOTIFYs.
 *
 * baresip 1.0 and sipp 3.6.1 answer MD5 challenges only: the server offers MD5 alone
 * (MD5_ONLY_YAML). A missing linphonec, baresip or sipp fails under CI=true (requireTool),
 * skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { registrationTupleId } from '../../../src/services/presence/index.ts';
import { MD5_ONLY_YAML } from '../../support/serve-config.ts';
import { freePortPair, pollUntil, requireTool } from '../../support/tools.ts';
import { startLinphone } from '../../support/linphone.ts';
import type { Linphone, LinphoneSipMessage } from '../../support/linphone.ts';
import {
  describeBaresip,
  presenceChanges,
  serverAccount,
  sipTrace,
  startBaresip,
  traceHeader,
  waitForRegistration,
} from '../baresip/baresip.ts';
import type { Baresip } from '../baresip/baresip.ts';
import {
  DOMAIN,
  LIFETIME_MS,
  STEP_MS,
  passwordOf,
  startPeersServer,
  step,
} from '../peers/support.ts';
import type { PeersServer } from '../peers/support.ts';
import {
  assertOneActiveDialog,
  baresipNotifies,
  collapse,
  describeNotifies,
  linphoneSees,
  linphoneView,
  pidfTupleIds,
  same,
  sippPublish,
  sippUnpublish,
} from './phones.ts';
import type { SeenNotify } from './phones.ts';

const TEST_TIMEOUT_MS = 45_000;
const BOB = `sip:bob@${DOMAIN}`;
/** The tuple the server derives from bob's registrations when he published nothing. */
const BOB_REG_TUPLE = registrationTupleId(BOB);
/** bob's "away": an RFC 4479 person whose RFC 4480 activities say away. */
const AWAY_PERSON =
  '<dm:person id="p-away"><rpid:activities><rpid:away/></rpid:activities></dm:person>';

describe('presence between real phones through switchboard serve (UDP)', () => {
  let peers: PeersServer | undefined;

  before(async () => {
    peers = await startPeersServer(['alice', 'bob'], [], MD5_ONLY_YAML);
  });
  after(async () => {
    await peers?.close();
  });

  const linphone = (
    bin: string,
    user: string,
    o: { publish?: boolean; watch?: string } = {},
  ): Promise<Linphone> =>
    startLinphone({
      bin,
      account: {
        user,
        domain: DOMAIN,
        password: passwordOf(user),
        server: { port: peers!.port('udp'), transport: 'udp' },
        publish: o.publish === true,
      },
      ...(o.watch !== undefined ? { friends: [{ name: 'bob', uri: o.watch }] } : {}),
      timeoutMs: LIFETIME_MS,
      registerTimeoutMs: STEP_MS,
    });

  /** A registered baresip with presence.so, watching `watch` (a `;presence=p2p` contact). */
  async function baresip(bin: string, user: string, watch?: string): Promise<Baresip> {
    const b = await startBaresip({
      bin,
      port: await freePortPair(),
      account: serverAccount({
        user,
        domain: DOMAIN,
        password: passwordOf(user),
        server: { port: peers!.port('udp'), transport: 'udp' },
      }),
      extraModules: ['presence.so'],
      ...(watch !== undefined ? { contacts: [`"bob" <${watch}>;presence=p2p`] } : {}),
      timeoutMs: LIFETIME_MS,
    });
    try {
      await waitForRegistration(b, STEP_MS);
    } catch (e) {
      await b.stop();
      throw e;
    }
    return b;
  }

  function tools(
    t: TestContext,
    names: readonly ('linphonec' | 'baresip' | 'sipp')[],
  ): Record<string, string> | undefined {
    const found: Record<string, string> = {};
    for (const name of names) {
      const bin = requireTool(name, t);
      if (bin === undefined) return undefined;
      found[name] = bin;
    }
    return found;
  }

  /** A linphonec watcher of bob and its waits: `sees(status, basic, tuples, what)`. */
  function linphoneWatcher(
    alice: Linphone,
    context: () => string,
  ): (
    status: string,
    basic: 'open' | 'closed',
    tuples: readonly string[],
    what: string,
  ) => Promise<SeenNotify> {
    let seen = 0;
    return async (status, basic, tuples, what) => {
      const at = await linphoneSees(
        alice,
        BOB,
        { seen, status, basic, tuples },
        what,
        STEP_MS,
        context,
      );
      seen = at.count;
      return at.notify;
    };
  }

  it(
    'linphonec watches linphonec: Offline, Online when bob registers and publishes, Offline when bob un-registers and quits',
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const bins = tools(t, ['linphonec']);
      if (bins === undefined) return;
      const alice = await linphone(bins.linphonec!, 'alice', { watch: BOB });
      let bob: Linphone | undefined;
      const context = (): string =>
        [
          bob !== undefined ? bob.describe() : '(bob not started)',
          alice.describe(),
          peers!.describe(),
        ].join('\n\n');
      const sees = linphoneWatcher(alice, context);
      try {
        assert.equal((await peers!.bindings('bob')).length, 0, context());
        await sees('Offline', 'closed', [BOB_REG_TUPLE], 'bob neither registered nor published');

        bob = await step(
          linphone(bins.linphonec!, 'bob', { publish: true }),
          'linphonec (bob) registering',
          context,
        );
        // bob's own document (his PUBLISH, answered 200) is what alice gets: its one tuple.
        const publish = (): LinphoneSipMessage | undefined =>
          bob!.trace().find((m) => m.direction === 'sent' && m.firstLine.startsWith('PUBLISH '));
        assert.ok(
          await pollUntil(() => publish() !== undefined, STEP_MS),
          `bob sent no PUBLISH\n${context()}`,
        );
        const bobTuples = pidfTupleIds(publish()!.body);
        assert.equal(bobTuples.length, 1, context());
        // (A NOTIFY for the registration alone, with the server's tuple, may come first.)
        await sees('Online', 'open', bobTuples, 'bob registered and published');

        // stop(): `unregister` (the publication still says open: nothing changes), then
        // `quit`, which removes the publication (Expires: 0): nothing left, closed.
        await bob.stop();
        await sees('Offline', 'closed', [BOB_REG_TUPLE], 'bob un-registered and quit');
        assert.equal((await peers!.bindings('bob')).length, 0, context());

        const view = linphoneView(alice, BOB);
        assertOneActiveDialog(view.notifies, BOB, context);
        assert.deepEqual(collapse(view.statuses), ['Offline', 'Online', 'Offline'], context());
        assert.deepEqual(
          collapse(view.notifies.map((n) => n.basics.join(','))),
          ['closed', 'open', 'closed'],
          context(),
        );
        // linphonec prints one state per NOTIFY it took.
        assert.equal(view.statuses.length, view.notifies.length, context());
        t.diagnostic(
          `linphonec watcher: ${view.notifies.length} NOTIFYs, ${view.statuses.join(' ')}`,
        );
      } finally {
        await Promise.all([alice.stop(), bob?.stop()]);
      }
    },
  );

  it(
    'linphonec watches bob, sipp publishes for him: Online (registered), Away (RPID away published), Online (removed), Offline (closed published), Online (removed), Offline (un-registered)',
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const bins = tools(t, ['linphonec', 'sipp']);
      if (bins === undefined) return;
      const publisher = {
        bin: bins.sipp!,
        port: peers!.port('udp'),
        user: 'bob',
        domain: DOMAIN,
        password: passwordOf('bob'),
      };
      const alice = await linphone(bins.linphonec!, 'alice', { watch: BOB });
      let bob: Linphone | undefined;
      const context = (): string =>
        [
          bob !== undefined ? bob.describe() : '(bob not started)',
          alice.describe(),
          peers!.describe(),
        ].join('\n\n');
      const sees = linphoneWatcher(alice, context);
      try {
        await sees('Offline', 'closed', [BOB_REG_TUPLE], 'bob neither registered nor published');

        bob = await step(linphone(bins.linphonec!, 'bob'), 'linphonec (bob) registering', context);
        await sees('Online', 'open', [BOB_REG_TUPLE], 'bob registered');

        // Away: open, with <rpid:away/> in the activities of a person (RFC 4480, RFC 4479).
        const away = await step(
          sippPublish(
            publisher,
            { tuple: 'sipp-away', basic: 'open', extra: AWAY_PERSON },
            STEP_MS,
          ),
          'sipp PUBLISH away',
          context,
        );
        const awayNotify = await sees('Away', 'open', ['sipp-away'], 'away published');
        assert.match(awayNotify.body, /<(?:\w+:)?person\b[^>]*\sid="p-away"/, context());
        assert.match(awayNotify.body, /<(?:\w+:)?activities>\s*<(?:\w+:)?away\s*\/>/, context());

        await step(sippUnpublish(publisher, away.etag, STEP_MS), 'sipp un-PUBLISH', context);
        const back = await sees('Online', 'open', [BOB_REG_TUPLE], 'away removed');
        assert.doesNotMatch(back.body, /person|away/, context());

        // A published closed wins over the registration (docs/presence.md).
        const closed = await step(
          sippPublish(publisher, { tuple: 'sipp-closed', basic: 'closed' }, STEP_MS),
          'sipp PUBLISH closed',
          context,
        );
        await sees('Offline', 'closed', ['sipp-closed'], 'closed published');
        assert.equal((await peers!.bindings('bob')).length, 1, `bob registered\n${context()}`);

        await step(sippUnpublish(publisher, closed.etag, STEP_MS), 'sipp un-PUBLISH', context);
        await sees('Online', 'open', [BOB_REG_TUPLE], 'closed removed');

        await step(bob.unregister(STEP_MS), 'linphonec (bob) un-registering', context);
        await sees('Offline', 'closed', [BOB_REG_TUPLE], 'bob un-registered');

        const view = linphoneView(alice, BOB);
        assertOneActiveDialog(view.notifies, BOB, context);
        assert.deepEqual(
          collapse(view.statuses),
          ['Offline', 'Online', 'Away', 'Online', 'Offline', 'Online', 'Offline'],
          context(),
        );
        assert.deepEqual(
          collapse(view.notifies.map((n) => n.basics.join(','))),
          ['closed', 'open', 'closed', 'open', 'closed'],
          context(),
        );
        assert.equal(view.statuses.length, view.notifies.length, context());
        t.diagnostic(`linphonec watcher, sipp publisher: ${view.notifies.length} NOTIFYs`);
      } finally {
        await Promise.all([alice.stop(), bob?.stop()]);
      }
    },
  );

  it(
    'baresip watches baresip, sipp publishes for bob: Online (registered), Offline (closed published), Online (removed), Offline (/quit); alice un-SUBSCRIBEs: 200, NOTIFY terminated',
    { timeout: TEST_TIMEOUT_MS },
    async (t) => {
      const bins = tools(t, ['baresip', 'sipp']);
      if (bins === undefined) return;
      const publisher = {
        bin: bins.sipp!,
        port: peers!.port('udp'),
        user: 'bob',
        domain: DOMAIN,
        password: passwordOf('bob'),
      };
      const alice = await baresip(bins.baresip!, 'alice', BOB);
      let bob: Baresip | undefined;
      const notifies = (): SeenNotify[] =>
        baresipNotifies(sipTrace(alice.output()), BOB, alice.port);
      const changes = (): string[] =>
        presenceChanges(alice.output())
          .filter((c) => c.uri === BOB)
          .map((c) => `${c.from}>${c.to}`);
      const context = (): string =>
        [
          bob !== undefined ? describeBaresip(bob) : '(bob not started)',
          describeBaresip(alice),
          `--- alice's NOTIFYs ---\n${describeNotifies(notifies())}`,
          peers!.describe(),
        ].join('\n\n');
      /**
       * Waits until alice's changes are `changesSoFar` and her last NOTIFY (answered 200) says
       * `basic` with `tuples` (baresip prints a line only when what it shows changes).
       */
      const sees = async (
        changesSoFar: readonly string[],
        basic: 'open' | 'closed',
        tuples: readonly string[],
        what: string,
      ): Promise<void> => {
        const ok = await pollUntil(() => {
          const last = notifies().at(-1);
          return (
            same(changes(), changesSoFar) &&
            last?.answered === 200 &&
            last.basics.at(-1) === basic &&
            same(last.tupleIds, tuples)
          );
        }, STEP_MS);
        assert.ok(
          ok,
          `${what}: alice should have printed [${changesSoFar.join(', ')}] and got a NOTIFY with ` +
            `basic ${basic}, tuples [${tuples.join(', ')}]; printed [${changes().join(', ')}]\n${context()}`,
        );
      };
      try {
        // bob neither registered nor published: closed; a contact starts Offline (no line).
        await sees([], 'closed', [BOB_REG_TUPLE], 'bob neither registered nor published');

        bob = await step(baresip(bins.baresip!, 'bob'), 'baresip (bob) registering', context);
        const path = ['Offline>Online'];
        await sees(path, 'open', [BOB_REG_TUPLE], 'bob registered');

        // A published document wins over the registration (docs/presence.md).
        const closed = await step(
          sippPublish(publisher, { tuple: 'sipp-closed', basic: 'closed' }, STEP_MS),
          'sipp PUBLISH closed',
          context,
        );
        path.push('Online>Offline');
        await sees(path, 'closed', ['sipp-closed'], 'closed published');

        await step(sippUnpublish(publisher, closed.etag, STEP_MS), 'sipp un-PUBLISH', context);
        path.push('Offline>Online');
        await sees(path, 'open', [BOB_REG_TUPLE], 'publication removed');

        // /quit: REGISTER Expires: 0, then exit.
        bob.command('/quit');
        await step(bob.process.exited, 'baresip (bob) quitting', context);
        path.push('Online>Offline');
        await sees(path, 'closed', [BOB_REG_TUPLE], 'bob quit');
        assert.equal((await peers!.bindings('bob')).length, 0, context());
        assertOneActiveDialog(notifies(), BOB, context);
        assert.deepEqual(
          collapse(notifies().map((x) => x.basics.join(','))),
          ['closed', 'open', 'closed', 'open', 'closed'],
          context(),
        );

        // alice's /quit un-SUBSCRIBEs within the dialog: 200, then a final NOTIFY.
        const active = notifies().length;
        alice.command('/quit');
        await step(alice.process.exited, 'baresip (alice) quitting', context);
        const trace = sipTrace(alice.output());
        const unsubscribe = trace
          .filter(
            (m) =>
              m.firstLine.startsWith('SUBSCRIBE ') && /^0$/.test(traceHeader(m, 'Expires') ?? ''),
          )
          .at(-1);
        assert.ok(unsubscribe !== undefined, `no SUBSCRIBE with Expires: 0\n${context()}`);
        const answer = trace.find(
          (m) =>
            m.firstLine.startsWith('SIP/2.0 ') &&
            traceHeader(m, 'Call-ID') === traceHeader(unsubscribe, 'Call-ID') &&
            traceHeader(m, 'CSeq') === traceHeader(unsubscribe, 'CSeq'),
        );
        assert.equal(answer?.firstLine.slice(8, 11), '200', `un-SUBSCRIBE answer\n${context()}`);
        const final = notifies().slice(active);
        assert.equal(final.length, 1, `one final NOTIFY\n${context()}`);
        assert.match(final[0]!.subscriptionState, /^terminated\b/, context());
        assert.equal(final[0]!.callId, notifies()[0]!.callId, context());
        assert.equal(final[0]!.answered, 200, context());
        t.diagnostic(`baresip watcher: ${notifies().length} NOTIFYs, ${changes().join(' ')}`);
      } finally {
        await Promise.all([alice.stop(), bob?.stop()]);
      }
    },
  );
});
