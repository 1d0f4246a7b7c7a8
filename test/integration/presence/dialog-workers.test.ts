/**
 * Busy lamps with `switchboard serve --workers 2` (RFC 4235 dialog package): the call is
 * forwarded by the worker that owns its Call-ID, the watcher's subscription is owned by the
 * other one. The forwarding worker writes the call's states to the shared store; the owner of
 * the subscription finds them at its next poll (`presence.pollInterval`, 0.2 s here) and
 * notifies early, confirmed and terminated, in order, from the one dialog.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequest } from '../../../src/sip/index.ts';
import { createStack, UserAgent, type IncomingCall, type Stack } from '../../../src/stack/index.ts';
import { ownerOfCallId } from '../../../src/transport/index.ts';
import { startServer, stopServer, within, type RunningServer } from '../../support/server.ts';
import { writeServeConfig, type ServeConfig } from '../../support/serve-config.ts';
import { bodyOf, DOMAIN, seed, Watcher } from './support.ts';

const ALICE = `sip:alice@${DOMAIN}`;
const BOB = `sip:bob@${DOMAIN}`;
const SDP =
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n';

/** The state of `callId` in a dialog-info body, with its event when terminated. */
function stateIn(body: string, callId: string): string | undefined {
  const m = new RegExp(
    `<dialog [^>]*call-id="${callId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"[^>]*>\\s*<state( event="([^"]*)")?[^>]*>(\\w+)</state>`,
  ).exec(body);
  if (m === null) return undefined;
  return m[2] !== undefined ? `${m[3]}/${m[2]}` : m[3];
}

describe('busy lamps with two server workers (switchboard serve --workers 2)', () => {
  let dir: string;
  let config: ServeConfig;
  let server: RunningServer;
  let carol: Watcher;
  let aliceStack: Stack;
  let bobStack: Stack;
  let bob: UserAgent;
  let registration: { unregister(): Promise<unknown> } | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-dialog-workers2-'));
    await seed(join(dir, 'data'), ['alice', 'bob', 'carol']);
    config = writeServeConfig('presence:\n  pollInterval: 0.2\n');
    server = await startServer({
      dataDir: join(dir, 'data'),
      domains: [DOMAIN],
      extraArgs: [...config.args, '--workers', '2'],
    });
    carol = await Watcher.create(() => server.port, 'carol');
    aliceStack = await createStack({ listen: ['udp:127.0.0.1:0'] });
    bobStack = await createStack({ listen: ['udp:127.0.0.1:0'] });
    bob = new UserAgent(bobStack, {
      aor: BOB,
      credentials: { username: 'bob', password: 'bob-pw' },
      outboundProxy: `sip:127.0.0.1:${server.port}`,
    });
    registration = await within(bob.register({ expires: 600 }), 10_000, 'bob REGISTER');
  });
  after(async () => {
    // The UA refreshes its registration on a timer: unregistering stops it.
    await within(registration?.unregister() ?? Promise.resolve(), 5_000, 'un-REGISTER').catch(
      () => undefined,
    );
    await carol.close();
    await aliceStack.close();
    await bobStack.close();
    await stopServer(server).catch(() => undefined);
    config.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a call forwarded by one worker is notified by the other, in order', async () => {
    const sub = await carol.subscribe({ to: BOB, event: 'dialog', expires: 600 });
    assert.equal(sub.response.status, 200);
    await carol.waitNotify(sub, 1);
    const owner = ownerOfCallId(sub.callId, 2);
    let callId = '';
    for (let k = 0; callId === '' || ownerOfCallId(callId, 2) === owner; k++) {
      callId = `call-${k}@127.0.0.1`;
    }
    const invited = within(
      new Promise<IncomingCall>((resolve) => bob.once('invite', resolve)),
      10_000,
      'the INVITE at bob',
    );
    const invite = createRequest({
      method: 'INVITE',
      uri: BOB,
      from: `<${ALICE}>;tag=${aliceStack.ids.tag()}`,
      to: `<${BOB}>`,
      callId,
      cseq: 1,
      contact: `<sip:alice@127.0.0.1:${aliceStack.transport.listeners[0]!.local.port}>`,
      body: SDP,
      contentType: 'application/sdp',
    });
    const out = aliceStack.send(invite, {
      destination: { protocol: 'udp', address: '127.0.0.1', port: server.port },
      credentials: { username: 'alice', password: 'alice-pw' },
    });
    const incoming = await invited;
    const seen = (): (string | undefined)[] => carol.of(sub).map((n) => stateIn(bodyOf(n), callId));
    const waitFor = async (state: string): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!seen().includes(state)) {
        const left = deadline - Date.now();
        if (left <= 0) assert.fail(`no ${state}; saw ${seen().join(', ')}`);
        await carol.waitNotify(sub, carol.of(sub).length + 1, left).catch(() => undefined);
      }
    };
    await incoming.ring();
    await waitFor('early');
    await incoming.answer(SDP);
    assert.equal((await within(out.final, 10_000, 'the 200')).status, 200);
    await waitFor('confirmed');
    // bob hangs up: his BYE passes the proxy on its Record-Route.
    await within(incoming.hangup(), 10_000, 'BYE');
    await waitFor('terminated/local-bye');
    const states = seen().filter((s) => s !== undefined);
    const order = ['trying', 'early', 'confirmed', 'terminated/local-bye'];
    assert.deepEqual(
      [...new Set(states)],
      order.filter((s) => states.includes(s)),
      states.join(', '),
    );
    const seqs = carol.of(sub).map((n) => n.cseq.seq);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => seqs[0]! + i),
      'one dialog, CSeq up by one',
    );
    assert.equal((await carol.refresh(sub, 0)).status, 200);
  });
});
