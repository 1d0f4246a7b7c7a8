/**
 * Acceptance: the RFC 4475 and RFC 5118 torture messages, as exact bytes on a new TCP
 * connection each, to a live `switchboard serve --domain example.com` on 127.0.0.1 (and the
 * RFC 5118 set again on ::1). Each message must get the reaction its corpus index row admits
 * over a stream (`net_tcp`). Over TCP the framing differs from UDP (RFC 3261 §18.3, see
 * docs/conformance.md): dblreq's trailing octets are a second message (which may be answered;
 * only the REGISTER's answer is judged), clerr waits for 9999 octets that never come, baddn
 * (no empty line) never completes, and inv2543 (no Content-Length) cannot be framed. After a
 * 400 the server may close the connection; each message gets its own connection, and after
 * each one an OPTIONS on a new connection must get 200.
 *
 * The answer comes back on the connection (RFC 3261 §18.2.2), so no port needs to match the
 * Via; the send trace still must show nothing sent off loopback (a server that lost the
 * connection would connect to the Via's received address and port instead).
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CorpusSet } from '../../conformance/corpus.ts';
import { LOOPBACK, offLoopbackRecords, probeTcp, sendRecords, serverLog } from './support.ts';
import { ServerPool, tortureRows } from './torture.ts';

const SETS: readonly CorpusSet[] = ['rfc4475', 'rfc5118'];

describe(
  'live server: RFC 4475/5118 torture messages over TCP on 127.0.0.1',
  { timeout: 300_000 },
  () => {
    let dataDir: string;
    let pool: ServerPool | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-live-tcp-'));
      pool = new ServerPool(dataDir, [`tcp:${LOOPBACK}:0`]);
      await pool.server(0);
    });

    after(async () => {
      await pool?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    tortureRows('tcp', LOOPBACK, SETS, () => pool!);

    it('every server still answers OPTIONS, and nothing was sent off loopback', async () => {
      for (const s of await pool!.started()) {
        assert.equal(s.child.exitCode, null, 'the server is still running');
        assert.equal(await probeTcp(LOOPBACK, s.ports.tcp!), 200);
        assert.ok(sendRecords(s).length > 0, 'the send trace is working');
        assert.deepEqual(offLoopbackRecords(s), [], serverLog(s));
      }
    });
  },
);

/** True when ::1 can be bound here. */
function ipv6Available(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host: '::1', port: 0 }, () => s.close(() => resolve(true)));
  });
}

describe('live server: RFC 5118 torture messages over TCP on ::1', { timeout: 120_000 }, () => {
  let dataDir: string | undefined;
  let pool: ServerPool | undefined;
  let skip: string | undefined;

  before(async () => {
    if (!(await ipv6Available())) {
      skip = '::1 cannot be bound on this host';
      if (process.env.CI === 'true')
        throw new Error(`${skip}; CI=true: failing instead of skipping`);
      console.warn(`\n!!! ${skip}: the IPv6 torture rows are SKIPPED\n`);
      return;
    }
    dataDir = mkdtempSync(join(tmpdir(), 'sb-live-tcp6-'));
    pool = new ServerPool(dataDir, ['tcp:[::1]:0']);
    await pool.server(0);
  });

  after(async () => {
    await pool?.stop();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  tortureRows('tcp', '::1', ['rfc5118'], () => skip ?? pool!);

  it('nothing was sent off loopback', async () => {
    for (const s of (await pool?.started()) ?? []) {
      assert.deepEqual(offLoopbackRecords(s), [], serverLog(s));
    }
  });
});
