/**
 * Acceptance: the RFC 4475 and RFC 5118 torture messages, as exact bytes in one datagram each,
 * to a live `switchboard serve --domain example.com` on 127.0.0.1 (and the RFC 5118 set again
 * on ::1). Each message must get the reaction its corpus index row admits (`net_udp`): the
 * status it names (400, 505, 4xx, ...) for a message the RFC calls invalid, no answer where it
 * must be dropped (responses: unreason, noreason, scalarlg, bigcode, bcast), and a final
 * answer other than 400/500 for the valid ones. After each message an OPTIONS to the server
 * still gets 200. See torture.ts for where the answers go and how they are observed.
 *
 * UDP ports: most answers go to the port of the message's top Via (5060 when it names none;
 * 5050 quotbal, 6050 mult-ip-in-header, 19823 ipv4-mapped-ipv6), so the row's socket binds
 * that port on loopback. If another process holds it, the row reads the server's send trace
 * instead and prints a note. mpart01 has `rport` (answered to the source port); requests that
 * do not parse are answered to their source; responses are never answered.
 *
 * Transaction matching: ipv6-good, port-ambiguous and port-unambiguous (RFC 5118) carry the
 * same branch, sent-by and method, so for the server they are one transaction
 * (RFC 3261 §17.2.3) and the later two get the first one's answer again — as they should.
 *
 * Nothing may leave loopback: the corpus names hosts in 192.0.2.0/24, a broadcast Via
 * (bcast) and a `maddr` in a Record-Route (inv2543); a test at the end sends Vias with
 * `maddr` (RFC 3261 §18.2.2 would multicast there) and checks that the answer still comes to
 * the source address, and the send trace shows no destination off loopback.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  corpusAvailable,
  corpusTests,
  loadIndex,
  verifySums,
  type CorpusRow,
  type CorpusSet,
} from '../../conformance/corpus.ts';
import type { RunningServer } from '../../support/server.ts';
import {
  LOOPBACK,
  offLoopbackRecords,
  probeUdp,
  sendRecords,
  serverLog,
  token,
  UdpPeer,
} from './support.ts';
import { loudSkip } from '../transport/support.ts';
import { rowMessage, ServerPool, tortureRows } from './torture.ts';

function rowByName(set: CorpusSet, name: string): CorpusRow {
  const row = loadIndex(set).find((r) => r.name === name);
  if (row === undefined) throw new Error(`${set}/index.tsv has no row ${name}`);
  return row;
}

const SETS: readonly CorpusSet[] = ['rfc4475', 'rfc5118'];

describe(
  'live server: RFC 4475/5118 torture messages over UDP on 127.0.0.1',
  { timeout: 300_000 },
  () => {
    let dataDir: string;
    let pool: ServerPool | undefined;
    let server: RunningServer | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'sb-live-udp-'));
      pool = new ServerPool(dataDir, [`udp:${LOOPBACK}:0`]);
      server = await pool.server(0);
    });

    after(async () => {
      await pool?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    for (const set of SETS) {
      corpusTests(set, () => {
        it(`${set}: the corpus arrived intact (SHA256SUMS)`, () => {
          assert.deepEqual(verifySums(set), []);
        });
      });
    }

    tortureRows('udp', LOOPBACK, SETS, () => pool!);

    it('novelsc right after unkscm (same branch, sent-by, method) is matched to its transaction', async (t) => {
      if (!corpusAvailable('rfc4475')) {
        loudSkip(t, 'the corpus is missing (see the corpus tests above)');
        return;
      }
      // RFC 3261 §17.2.3: the request matches the transaction when branch, sent-by and method
      // match; a retransmission gets the transaction's answer again (§17.2.2), here unkscm's.
      const unkscm = rowMessage(rowByName('rfc4475', 'unkscm'));
      const novelsc = rowMessage(rowByName('rfc4475', 'novelsc'));
      assert.equal(unkscm.transactionKey, novelsc.transactionKey);
      const peer = await UdpPeer.bind(LOOPBACK, 5060, 3000);
      if (peer === undefined) {
        console.warn('# 127.0.0.1:5060 is held by another process: retransmission check skipped');
        return;
      }
      try {
        await peer.send(unkscm.bytes, server!.port);
        const first = await peer.waitFor(
          (r) => r.callId === unkscm.callId && r.status >= 200,
          5000,
        );
        assert.ok(first !== undefined, 'unkscm answered');
        await peer.send(novelsc.bytes, server!.port);
        const again = await peer.waitFor(
          (r) => r !== first && r.callId === unkscm.callId && r.status === first.status,
          5000,
        );
        assert.ok(again !== undefined, `novelsc got unkscm's ${first.status} again`);
        assert.equal(
          peer.responses.filter((r) => r.callId === novelsc.callId).length,
          0,
          'no separate answer for novelsc',
        );
      } finally {
        await peer.close();
      }
    });

    it('a Via maddr is not followed: the answer goes to the source address', async () => {
      const peer = (await UdpPeer.bind(LOOPBACK, 0))!;
      try {
        // RFC 3261 §18.2.2: with maddr the response would go to that address (multicast);
        // Switchboard ignores it (src/transport/layer.ts), and must never leave loopback here.
        const vias = [
          `SIP/2.0/UDP ${LOOPBACK}:${peer.port};maddr=192.0.2.1;ttl=1`,
          `SIP/2.0/UDP 192.0.2.33:${peer.port};maddr=198.51.100.7`,
          `SIP/2.0/UDP ${LOOPBACK}:${peer.port};maddr=239.255.255.250;ttl=16`,
          `SIP/2.0/UDP host.example.com:${peer.port};maddr=203.0.113.9;received=192.0.2.200`,
        ];
        for (const via of vias) {
          const callId = `maddr-${token()}`;
          const req = [
            'OPTIONS sip:example.com SIP/2.0',
            `Via: ${via};branch=z9hG4bK${token()}`,
            'Max-Forwards: 70',
            `From: <sip:probe@example.com>;tag=${token()}`,
            'To: <sip:example.com>',
            `Call-ID: ${callId}`,
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n');
          await peer.send(req, server!.port);
          const r = await peer.waitFor((x) => x.callId === callId && x.status >= 200, 5000);
          assert.equal(
            r?.status,
            200,
            `Via ${via}: ${r === undefined ? 'no answer on the source port' : r.status}`,
          );
          assert.equal(r.from.port, server!.port);
        }
      } finally {
        await peer.close();
      }
    });

    it('every server still answers OPTIONS, and nothing was sent off loopback', async () => {
      const peer = (await UdpPeer.bind(LOOPBACK, 0))!;
      try {
        for (const s of await pool!.started()) {
          assert.equal(s.child.exitCode, null, 'the server is still running');
          assert.equal(await probeUdp(peer, s.port), 200);
          assert.ok(sendRecords(s).length > 0, 'the send trace is working');
          assert.deepEqual(offLoopbackRecords(s), [], serverLog(s));
        }
      } finally {
        await peer.close();
      }
    });
  },
);

/** True when ::1 can be bound here. */
function ipv6Available(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp6');
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind({ address: '::1', port: 0 }, () => s.close(() => resolve(true)));
  });
}

describe('live server: RFC 5118 torture messages over UDP on ::1', { timeout: 120_000 }, () => {
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
    dataDir = mkdtempSync(join(tmpdir(), 'sb-live-udp6-'));
    // Servers of their own: the same messages within Timer J of the IPv4 run would be
    // retransmissions of the IPv4 transactions (RFC 3261 §17.2.3), answered to IPv4.
    pool = new ServerPool(dataDir, ['udp:[::1]:0']);
    await pool.server(0);
  });

  after(async () => {
    await pool?.stop();
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true });
  });

  tortureRows('udp', '::1', ['rfc5118'], () => skip ?? pool!);

  it('nothing was sent off loopback', async () => {
    for (const s of (await pool?.started()) ?? []) {
      assert.deepEqual(offLoopbackRecords(s), [], serverLog(s));
    }
  });
});
