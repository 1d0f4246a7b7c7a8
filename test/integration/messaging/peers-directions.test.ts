/**
 * Instant messages (RFC 3428) between real phones THROUGH `switchboard serve`, in the
 * directions and over the transports that peers.test.ts (linphonec to baresip, UDP) does not
 * cover, each with an online and an offline delivery:
 *
 * - baresip (alice) to linphonec (bob), over UDP and over TCP: alice's `/message TEXT` goes to
 *   the first entry of her contacts file (`sip:bob@example.com`), through the server (her
 *   outbound proxy), which challenges it with 407; bob prints it and alice gets bob's 200. bob
 *   un-registers and quits; alice sends two messages and gets 202 for each; both wait in the
 *   store; a new linphonec bob registers and prints both, in order, once; the store is empty.
 * - linphonec (alice) to baresip (bob) over TCP, the same steps.
 *
 * Over TCP both phones register to the server's TCP listener (`;transport=tcp`) and every
 * MESSAGE the receiver gets (the live one and the kept ones) must have come over TCP: the
 * server reaches a TCP registration through the connection the phone opened.
 *
 * baresip 1.0 answers MD5 challenges only: the server offers MD5 alone (MD5_ONLY_YAML). A
 * missing baresip or linphonec fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { MD5_ONLY_YAML } from '../../support/serve-config.ts';
import { freePortPair, pollUntil, requireTool } from '../../support/tools.ts';
import { linphoneHeader, startLinphone } from '../../support/linphone.ts';
import {
  LOOPBACK,
  describeBaresip,
  serverAccount,
  sipTrace,
  startBaresip,
  traceHeader,
  waitForRegistration,
} from '../baresip/baresip.ts';
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

const TEST_TIMEOUT_MS = 60_000;
/** A second copy of a message would come within this after the last one arrived. */
const QUIET_MS = 1_500;
/** The sender as the receiver shows it: kept messages keep the original From (docs/messaging.md). */
const ALICE = `sip:alice@${DOMAIN}`;
const CONFIG = `${MD5_ONLY_YAML}messaging:\n  retryInterval: 2\n`;

type Kind = 'baresip' | 'linphonec';
type Transport = 'udp' | 'tcp';

/** One running phone, seen the same way whichever client it is. */
interface Phone {
  readonly label: string;
  /** Sends TEXT to `sip:bob@example.com` (baresip: its first contact; linphonec: `chat`). */
  send(text: string): void;
  /** Statuses of the final responses (not 401/407) to the MESSAGEs it sent, in order. */
  statuses(): number[];
  /** The MESSAGEs it printed as received, in order: `SENDER-URI TEXT`. */
  received(): string[];
  /**
   * The transport (`UDP`, `TCP`) of each 2xx it answered to a MESSAGE, in order. (Counted on
   * the responses, not the requests: linphonec logs one TCP read as one message, and the server
   * may write a kept MESSAGE right behind the 200 to the REGISTER.)
   */
  answeredOver(): string[];
  /** Un-registers and exits (bounded); afterwards the server has no binding of it. */
  quit(): Promise<void>;
  stop(): Promise<unknown>;
  describe(): string;
}

/** The final statuses of the responses to MESSAGE among `traced` (first line, CSeq). */
function finalMessageStatuses(traced: readonly { firstLine: string; cseq: string }[]): number[] {
  return traced
    .filter(
      (m) =>
        /^SIP\/2\.0 [2-6]\d\d/.test(m.firstLine) &&
        !/^SIP\/2\.0 40[17]/.test(m.firstLine) &&
        /\bMESSAGE$/.test(m.cseq),
    )
    .map((m) => Number(m.firstLine.slice(8, 11)));
}

describe('instant messages between real phones through switchboard serve: baresip as sender, and TCP', () => {
  let peers: PeersServer | undefined;

  before(async () => {
    peers = await startPeersServer(['alice', 'bob'], [], CONFIG);
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

  async function baresipPhone(bin: string, user: string, transport: Transport): Promise<Phone> {
    const serverPort = peers!.port(transport);
    const b = await startBaresip({
      bin,
      port: await freePortPair(),
      account: serverAccount({
        user,
        domain: DOMAIN,
        password: passwordOf(user),
        server: { port: serverPort, transport },
      }),
      // `/message` sends to the first contact.
      contacts: [`"bob" <sip:bob@${DOMAIN}>`],
      timeoutMs: LIFETIME_MS + 30_000,
    });
    try {
      await waitForRegistration(b, STEP_MS);
    } catch (e) {
      await b.stop();
      throw e;
    }
    const server = `${LOOPBACK}:${serverPort}`;
    const trace = (): ReturnType<typeof sipTrace> => sipTrace(b.output());
    return {
      label: `baresip (${user}, ${transport})`,
      send: (text) => b.command(`/message ${text}`),
      statuses: () =>
        finalMessageStatuses(
          trace()
            .filter((m) => m.from === server)
            .map((m) => ({ firstLine: m.firstLine, cseq: traceHeader(m, 'CSeq') ?? '' })),
        ),
      // baresip 1.0 prints an incoming MESSAGE as `sip:FROM: "TEXT"`.
      received: () =>
        [...b.output().matchAll(/(sip:\S+): "([^"\r\n]*)"/g)].map((m) => `${m[1]} ${m[2]}`),
      answeredOver: () =>
        trace()
          .filter(
            (m) =>
              m.to === server &&
              /^SIP\/2\.0 2\d\d/.test(m.firstLine) &&
              /\bMESSAGE$/.test(traceHeader(m, 'CSeq') ?? ''),
          )
          .map((m) => m.protocol),
      async quit() {
        // /quit un-registers, then baresip exits.
        b.command('/quit');
        await step(b.process.exited, `${user} quitting`, () => describeBaresip(b));
      },
      stop: () => b.stop(),
      describe: () => describeBaresip(b),
    };
  }

  async function linphonePhone(bin: string, user: string, transport: Transport): Promise<Phone> {
    const l = await startLinphone({
      bin,
      account: {
        user,
        domain: DOMAIN,
        password: passwordOf(user),
        server: { port: peers!.port(transport), transport },
      },
      timeoutMs: LIFETIME_MS + 30_000,
      registerTimeoutMs: STEP_MS,
    });
    return {
      label: `linphonec (${user}, ${transport})`,
      send: (text) => l.command(`chat sip:bob@${DOMAIN} ${text}`),
      statuses: () =>
        finalMessageStatuses(
          l
            .trace()
            .filter((m) => m.direction === 'received')
            .map((m) => ({ firstLine: m.firstLine, cseq: linphoneHeader(m, 'CSeq') ?? '' })),
        ),
      received: () =>
        [...l.output().matchAll(/Message received from (\S+): ([^\r\n]*)/g)].map(
          (m) => `${m[1]} ${m[2]!.trimEnd()}`,
        ),
      answeredOver: () =>
        l
          .trace()
          .filter(
            (m) =>
              m.direction === 'sent' &&
              /^SIP\/2\.0 2\d\d/.test(m.firstLine) &&
              /\bMESSAGE$/.test(linphoneHeader(m, 'CSeq') ?? ''),
          )
          .map((m) => m.protocol.toUpperCase()),
      async quit() {
        // stop() un-registers first (linphonec's `quit` alone leaves the binding).
        await l.stop();
      },
      stop: () => l.stop(),
      describe: () => l.describe(),
    };
  }

  const CASES: readonly { sender: Kind; receiver: Kind; transport: Transport }[] = [
    { sender: 'baresip', receiver: 'linphonec', transport: 'udp' },
    { sender: 'baresip', receiver: 'linphonec', transport: 'tcp' },
    { sender: 'linphonec', receiver: 'baresip', transport: 'tcp' },
  ];

  for (const { sender, receiver, transport } of CASES) {
    it(
      `${sender} to ${receiver} over ${transport.toUpperCase()}: delivered at once; receiver offline: 202 twice; back: both, in order, once`,
      { timeout: TEST_TIMEOUT_MS },
      async (t: TestContext) => {
        const bins: Partial<Record<Kind, string>> = {};
        for (const kind of [sender, receiver]) {
          const bin = requireTool(kind, t);
          if (bin === undefined) return;
          bins[kind] = bin;
        }
        const start = (kind: Kind, user: string): Promise<Phone> =>
          kind === 'baresip'
            ? baresipPhone(bins.baresip!, user, transport)
            : linphonePhone(bins.linphonec!, user, transport);
        const tag = `${transport}-${sender}`;
        let alice: Phone | undefined;
        let bob: Phone | undefined;
        let bob2: Phone | undefined;
        const context = (): string =>
          [
            alice?.describe() ?? '(sender not started)',
            bob?.describe() ?? '(receiver not started)',
            bob2?.describe() ?? '(second receiver not started)',
            peers!.describe(),
          ].join('\n\n');
        const finals = async (n: number, what: string): Promise<void> => {
          assert.ok(
            await pollUntil(() => alice!.statuses().length >= n, STEP_MS),
            `no final response to ${what}\n${context()}`,
          );
        };
        try {
          alice = await step(start(sender, 'alice'), `${sender} (alice) registering`, context);
          bob = await step(start(receiver, 'bob'), `${receiver} (bob) registering`, context);

          // Online: forwarded at once, bob's 200 goes back to alice.
          alice.send(`${tag}-online`);
          await finals(1, 'the MESSAGE to the registered bob');
          assert.ok(
            await pollUntil(() => bob!.received().length >= 1, STEP_MS),
            `bob did not print the message\n${context()}`,
          );
          assert.deepEqual(alice.statuses(), [200], context());
          assert.deepEqual(bob.received(), [`${ALICE} ${tag}-online`], context());

          // Offline: bob un-registers and exits; two messages are kept (202 each).
          await bob.quit();
          assert.ok(
            await pollUntil(async () => (await peers!.bindings('bob')).length === 0, STEP_MS),
            `bob's binding is still there\n${context()}`,
          );
          alice.send(`${tag}-offline-one`);
          await finals(2, 'the first MESSAGE to the offline bob');
          alice.send(`${tag}-offline-two`);
          await finals(3, 'the second MESSAGE to the offline bob');
          assert.deepEqual(alice.statuses(), [200, 202, 202], context());
          assert.deepEqual(
            await waiting('bob'),
            [`${tag}-offline-one`, `${tag}-offline-two`],
            context(),
          );

          // bob registers again: both kept messages, in order, once.
          bob2 = await step(start(receiver, 'bob'), `${receiver} (bob) registering again`, context);
          assert.ok(
            await pollUntil(() => bob2!.received().length >= 2, STEP_MS),
            `bob did not print both kept messages\n${context()}`,
          );
          await sleep(QUIET_MS);
          assert.deepEqual(
            bob2.received(),
            [`${ALICE} ${tag}-offline-one`, `${ALICE} ${tag}-offline-two`],
            context(),
          );
          assert.deepEqual(await waiting('bob'), [], context());
          const expected = transport.toUpperCase();
          for (const [phone, n] of [
            [bob, 1],
            [bob2, 2],
          ] as const) {
            assert.deepEqual(phone.answeredOver(), Array<string>(n).fill(expected), context());
          }
          t.diagnostic(`${sender} -> ${receiver} over ${expected}, online and kept: ok`);
        } finally {
          await Promise.all([alice?.stop(), bob?.stop(), bob2?.stop()]);
        }
      },
    );
  }
});
