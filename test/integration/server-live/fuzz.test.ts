/**
 * Acceptance: a live `switchboard serve` under malformed input (fuzz-inputs.ts): 2,000 UDP
 * datagrams and 100 TCP streams generated with fast-check, bounded in count and time. The
 * seed is the fixed CI seed under CI=true (test/support/fast-check-seed.ts), FC_SEED when set,
 * else a fresh one printed as a diagnostic (rerun with FC_SEED=<seed> to reproduce).
 *
 * Afterwards the server must still be running and answer OPTIONS with 200 over UDP and TCP,
 * nothing may have been sent off loopback (send trace), and its resident memory (VmRSS from
 * /proc/PID/status) may have grown by at most RSS_GROWTH_LIMIT_KIB (see there for why).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { stopServer, type RunningServer } from '../../support/server.ts';
import { assemble, datagramArb, streamArb, type StreamInput } from './fuzz-inputs.ts';
import {
  LOOPBACK,
  offLoopbackRecords,
  probeTcp,
  probeUdp,
  rssKiB,
  sendRecords,
  serverLog,
  sleep,
  startTracedServer,
  TcpPeer,
  UdpPeer,
} from './support.ts';

const DATAGRAMS = 2000;
const STREAMS = 100;
/** Datagrams sent back to back before waiting for the server to catch up (one OPTIONS). */
const BURST = 50;
/** TCP streams open at once. */
const STREAM_CONCURRENCY = 10;

/**
 * The bound on VmRSS growth across the run: 64 MiB.
 *
 * What the server may legitimately still hold when the run ends: every input that parses as
 * a request opens a server transaction, and over UDP a finished one lives on for 32 s
 * (Timer J; Timers H and I for INVITE, RFC 3261 §17.2), longer than the run. That is at most
 * ~2,100 requests of a few kB with their parsed form and transaction state: at a generous
 * 10 kB each, ~21 MiB. On top, V8 grows its heap lazily (a new space of up to 32 MiB, old-space
 * pages kept until a major GC) and compiles code for paths the fuzz reaches first. Measured
 * here: 12–22 MiB of growth (about 105–110 MiB before, 120–130 MiB after). 64 MiB is three
 * times the measured growth and above the legitimate worst case, so a loaded machine does not
 * make it flaky; it catches gross retention (a stream buffer without bound, or tens of kB kept
 * per input), not a small leak: the framer's and transaction table's limits have their own
 * unit tests.
 */
const RSS_GROWTH_LIMIT_KIB = 64 * 1024;

/** The seed of this run: FC_SEED / the CI seed (fast-check-seed.ts), else a fresh one. */
function runSeed(): number {
  const configured = fc.readConfigureGlobal().seed;
  return configured ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
}

describe('live server under malformed input (UDP and TCP)', { timeout: 180_000 }, () => {
  let dataDir: string;
  let server: RunningServer | undefined;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'sb-live-fuzz-'));
    server = await startTracedServer(
      { dataDir, listen: [`udp:${LOOPBACK}:0`, `tcp:${LOOPBACK}:0`] },
      'off-loopback',
    );
  });

  after(async () => {
    if (server !== undefined) await stopServer(server).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(`keeps answering after ${DATAGRAMS} datagrams and ${STREAMS} streams, memory bounded`, async (t) => {
    const s = server!;
    const udpPort = s.ports.udp!;
    const tcpPort = s.ports.tcp!;
    const seed = runSeed();
    t.diagnostic(`fast-check seed ${seed} (rerun with FC_SEED=${seed})`);

    const peer = (await UdpPeer.bind(LOOPBACK, 0))!;
    try {
      // Warm-up: the server's OPTIONS path, so the baseline is not taken before any JIT.
      for (let i = 0; i < 20; i++) assert.equal(await probeUdp(peer, udpPort), 200);
      assert.equal(await probeTcp(LOOPBACK, tcpPort), 200);
      const rssBefore = rssKiB(s.child.pid!);

      // ---- UDP: bursts of BURST datagrams, each burst followed by an OPTIONS that must come
      // back (the server reads datagrams in order, so it has dealt with the burst).
      const via = `Via: SIP/2.0/UDP ${LOOPBACK}:${peer.port};branch=z9hG4bKfz;rport`;
      const datagrams = fc.sample(datagramArb(), { numRuns: DATAGRAMS, seed });
      let bytesSent = 0;
      for (let i = 0; i < datagrams.length; i++) {
        // A fresh branch per datagram: each is a new transaction, not a retransmission.
        const bytes = assemble(datagrams[i]!, via.replace('z9hG4bKfz', `z9hG4bKfz${i}x`));
        bytesSent += bytes.length;
        await peer.send(bytes, udpPort);
        if ((i + 1) % BURST === 0) {
          const status = await probeUdp(peer, udpPort);
          assert.equal(status, 200, `OPTIONS after datagram ${i + 1}\n${serverLog(s)}`);
        }
      }

      // ---- TCP: STREAMS connections, STREAM_CONCURRENCY at a time; each writes its inputs in
      // the generated chunk sizes, then waits up to 300 ms for answers or a close.
      const streams = fc.sample(streamArb(), { numRuns: STREAMS, seed: seed + 1 });
      let closedByServer = 0;
      const runStream = async (input: StreamInput, n: number): Promise<void> => {
        const conn = await TcpPeer.connect(LOOPBACK, tcpPort);
        try {
          const viaTcp = `Via: SIP/2.0/TCP ${LOOPBACK}:${conn.localPort};branch=z9hG4bKfzt${n}x;rport`;
          const bytes = Buffer.concat(input.inputs.map((x) => assemble(x, viaTcp)));
          let at = 0;
          for (let c = 0; at < bytes.length && conn.isOpen; c++) {
            const size = input.chunks[c % input.chunks.length]!;
            if (!(await conn.write(bytes.subarray(at, at + size)))) break;
            at += size;
          }
          await Promise.race([conn.closed, sleep(300)]);
          if (!conn.isOpen) closedByServer++;
        } finally {
          conn.destroy();
        }
      };
      for (let i = 0; i < streams.length; i += STREAM_CONCURRENCY) {
        await Promise.all(
          streams.slice(i, i + STREAM_CONCURRENCY).map((x, k) => runStream(x, i + k)),
        );
      }

      // ---- Still answering, on both transports, and nothing left loopback.
      assert.equal(s.child.exitCode, null, `the server exited\n${serverLog(s)}`);
      assert.equal(await probeUdp(peer, udpPort), 200, 'OPTIONS over UDP after the fuzz run');
      assert.equal(await probeTcp(LOOPBACK, tcpPort), 200, 'OPTIONS over TCP after the fuzz run');
      assert.deepEqual(offLoopbackRecords(s), [], 'sends off loopback');

      const rssAfter = rssKiB(s.child.pid!);
      const growth = rssAfter - rssBefore;
      const statuses = new Map<number, number>();
      for (const r of peer.responses) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      t.diagnostic(
        `VmRSS before ${rssBefore} KiB, after ${rssAfter} KiB, growth ${growth} KiB ` +
          `(limit ${RSS_GROWTH_LIMIT_KIB} KiB); ${DATAGRAMS} datagrams (${bytesSent} octets), ` +
          `${STREAMS} streams (${closedByServer} closed by the server); UDP answers by status: ` +
          [...statuses.entries()]
            .sort((a, b) => a[0] - b[0])
            .map(([k, v]) => `${k}×${v}`)
            .join(' ') +
          `; unparseable datagrams received: ${peer.unparsed}; trace records: ${sendRecords(s).length}`,
      );
      const errors = s
        .stderr()
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes('"level":"error"'));
      t.diagnostic(
        `server log: ${errors.length} error lines${errors.length > 0 ? `, e.g. ${[...new Set(errors.map((l) => l.slice(0, 300)))].slice(0, 5).join(' | ')}` : ''}`,
      );
      assert.ok(
        growth < RSS_GROWTH_LIMIT_KIB,
        `VmRSS grew by ${growth} KiB (${rssBefore} -> ${rssAfter}), limit ${RSS_GROWTH_LIMIT_KIB}`,
      );
    } finally {
      await peer.close();
    }
  });
});
