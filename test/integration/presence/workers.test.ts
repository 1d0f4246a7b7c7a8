/**
 * `switchboard serve --workers 2` as presence agent: watchers and a publisher on their own
 * stacks over UDP on loopback (support.ts), the server as two processes sharing one store.
 *
 * Each PUBLISH has a Call-ID of its own, chosen so that every other one is handled by the
 * worker that does not own the watcher's subscription; every change must still reach the
 * watcher exactly once, in order, from the owner (within `presence.pollInterval`, 0.2 s here). Then the server
 * is stopped and started again on the same data directory: the subscription is still there,
 * and the next change is notified in the same dialog, with the next CSeq.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerOfCallId } from '../../../src/transport/index.ts';
import { startServer, stopServer, type RunningServer } from '../../support/server.ts';
import { writeServeConfig, type ServeConfig } from '../../support/serve-config.ts';
import { bodyOf, DOMAIN, pidf, seed, sleep, stateOf, Watcher } from './support.ts';

const ALICE = `sip:alice@${DOMAIN}`;
const CHANGES = 8;

describe('presence with two server workers (switchboard serve --workers 2)', () => {
  let dir: string;
  let config: ServeConfig;
  let server: RunningServer | undefined;
  let alice: Watcher;
  let bob: Watcher;

  const start = async (): Promise<RunningServer> =>
    startServer({
      dataDir: join(dir, 'data'),
      domains: [DOMAIN],
      extraArgs: [...config.args, '--workers', '2'],
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-presence-workers2-'));
    await seed(join(dir, 'data'), ['alice', 'bob']);
    config = writeServeConfig('presence:\n  pollInterval: 0.2\n');
    server = await start();
    alice = await Watcher.create(() => server!.port, 'alice');
    bob = await Watcher.create(() => server!.port, 'bob');
  });
  after(async () => {
    await alice.close();
    await bob.close();
    if (server !== undefined) await stopServer(server).catch(() => undefined);
    config.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every PUBLISH, whichever worker takes it, is notified once, in order', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    assert.equal(sub.response.status, 200);
    await bob.waitNotify(sub, 1);
    const owner = ownerOfCallId(sub.callId, 2);
    let etag: string | undefined;
    for (let i = 1; i <= CHANGES; i++) {
      // Odd changes go to the other worker, even ones to the subscription's owner.
      const worker = i % 2 === 1 ? 1 - owner : owner;
      let callId = '';
      for (let k = 0; callId === '' || ownerOfCallId(callId, 2) !== worker; k++) {
        callId = `publish-${i}-${k}@127.0.0.1`;
      }
      const r = await alice.publish(
        pidf(ALICE, 'desk', i % 2 === 0 ? 'open' : 'closed', `change ${i}`),
        { callId, ...(etag !== undefined ? { ifMatch: etag } : {}) },
      );
      assert.equal(r.status, 200, `PUBLISH ${i}`);
      etag = r.getRaw('SIP-ETag')!;
      const n = await bob.waitNotify(sub, 1 + i, 3000);
      assert.match(bodyOf(n), new RegExp(`change ${i}<`), `NOTIFY ${1 + i}`);
    }
    await sleep(600);
    const all = bob.of(sub);
    assert.equal(all.length, 1 + CHANGES, 'one NOTIFY per change, none twice');
    const seqs = all.map((n) => n.cseq.seq);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => seqs[0]! + i),
      'CSeq goes up by one',
    );
    // Left for the restart below.
    assert.equal((await alice.publish('', { ifMatch: etag!, expires: 0 })).status, 200);
    await bob.waitNotify(sub, 2 + CHANGES, 3000);
  });

  it('after a restart of the server, the subscription is notified in the same dialog', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    const first = await bob.waitNotify(sub, 1);
    await stopServer(server!);
    server = await start();
    const r = await alice.publish(pidf(ALICE, 'after', 'open', 'after the restart'));
    assert.equal(r.status, 200);
    const n = await bob.waitNotify(sub, 2, 5000);
    assert.match(bodyOf(n), /after the restart/);
    assert.equal(n.cseq.seq, first.cseq.seq + 1);
    assert.equal(stateOf(n).state, 'active');
    assert.equal((await bob.refresh(sub, 0)).status, 200);
    assert.equal(stateOf(await bob.waitNotify(sub, 3)).state, 'terminated');
  });
});
