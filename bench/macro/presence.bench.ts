/**
 * Presence suite: NOTIFY fan-out of `switchboard serve` (RFC 3856 presence, RFC 6665 NOTIFY).
 * 1,000 watchers subscribe to one user, bob; then bob PUBLISHes a change, and the figure is the
 * time from sending that PUBLISH to receiving the last of the 1,000 NOTIFYs it causes, and
 * NOTIFYs per second = 1,000 / that time.
 *
 * 1. `switchboard serve` runs compiled (dist/, SWITCHBOARD_RUN=compiled) on a copy of a data
 *    directory where `switchboard user import` put bob and the watchers (servers.ts), with
 *    `presence.maxWatchersPerUser` raised to let 1,000 watch one user;
 * 2. bob publishes (PUBLISH -> 407 -> PUBLISH with credentials -> 200);
 * 3. the watchers SUBSCRIBE (-> 407 -> SUBSCRIBE with credentials -> 200), a bounded number at a
 *    time, and each answers its initial NOTIFY 200; all of them over a few UDP sockets of this
 *    process (presence/uac.ts), so that one socket's receive buffer is not the limit;
 * 4. rounds: bob modifies his publication (SIP-If-Match, credentials sent with it), alternately
 *    away (RPID `<rpid:away/>` in his person) and not, with a root `<note>` naming the round; a
 *    watcher's NOTIFY counts for the round when it carries that note (a retransmission of it
 *    does not count again). Each NOTIFY is answered 200 as soon as it is read. One warm-up
 *    round, then the measured ones;
 * 5. the same on a server with `workers` = cores when the machine has more than one: then a
 *    subscription's NOTIFYs are sent by the worker that owns its Call-ID, and those of the
 *    workers that did not take the PUBLISH wait for their next look at the store
 *    (`presence.pollInterval`, 1 s; docs/presence.md, "Several workers").
 *
 * Server CPU time per NOTIFY comes from /proc/PID/stat (all its processes), over the round and
 * a short settling time after it: it includes the PUBLISH and reading the 200s.
 *
 * Ends with machine-readable lines: presence_fanout_ms, presence_notify_per_s,
 * presence_cpu_ms_per_notify and the same with _workers for the second server.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PIDF_DATA_MODEL_NS, PIDF_NS, RPID_NS } from '../../src/services/presence/pidf.ts';
import { createRequest } from '../../src/sip/index.ts';
import { udpDrops } from '../lib/proc.ts';
import type { Suite, SuiteOptions } from '../lib/suite.ts';
import { digestFor, newCallId, newTag, UdpAgent, type Account } from './presence/uac.ts';
import {
  DOMAIN,
  LOOPBACK,
  prepareSwitchboard,
  type LogTally,
  type ServerUnderTest,
} from './servers.ts';

interface Config {
  readonly watchers: number;
  /** Measured rounds (after one warm-up round). */
  readonly rounds: number;
  /** UDP sockets the watchers are spread over. */
  readonly sockets: number;
  /** SUBSCRIBEs outstanding at once while subscribing. */
  readonly concurrency: number;
  /** Most time for all watchers to subscribe and get their first NOTIFY. */
  readonly subscribeTimeoutMs: number;
  /** Most time for one round's NOTIFYs. */
  readonly roundTimeoutMs: number;
  /** Wait after a round before reading the server's CPU time (its last 200s to be read). */
  readonly settleMs: number;
  /** The whole suite; a server that would start past it is skipped, with a warning. */
  readonly budgetMs: number;
}

const FULL: Config = {
  watchers: 1000,
  rounds: 5,
  sockets: 10,
  concurrency: 50,
  subscribeTimeoutMs: 90_000,
  roundTimeoutMs: 30_000,
  settleMs: 300,
  budgetMs: 300_000,
};

const QUICK: Config = { ...FULL, rounds: 2, budgetMs: 180_000 };

const BOB: Account = { user: 'bob', password: 'bob-bench-pw', domain: DOMAIN };
const watcherAccount = (i: number): Account => ({
  user: `w${String(i).padStart(4, '0')}`,
  password: `w${i}-bench-pw`,
  domain: DOMAIN,
});
const aor = (a: Account): string => `sip:${a.user}@${a.domain}`;

/** bob's document in round `round`: away in odd rounds, and a note naming the round. */
function bobPidf(round: number): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="${PIDF_NS}" xmlns:dm="${PIDF_DATA_MODEL_NS}" xmlns:rpid="${RPID_NS}" entity="${aor(BOB)}">
  <tuple id="bob-desk"><status><basic>open</basic></status><contact>${aor(BOB)}</contact></tuple>
  <note>${marker(round)}</note>
  <dm:person id="p-bob"><rpid:activities>${round % 2 === 1 ? '<rpid:away/>' : ''}</rpid:activities></dm:person>
</presence>
`;
}
const marker = (round: number): string => `bench-round-${round}`;

interface Watcher {
  readonly account: Account;
  readonly agent: UdpAgent;
  readonly callId: string;
  /** The last round whose NOTIFY it got (-1: none yet). */
  round: number;
  /** CSeq numbers of the NOTIFYs it got, to tell retransmissions. */
  readonly cseqs: Set<number>;
}

interface Round {
  readonly round: number;
  /** PUBLISH sent -> its 200, ms. */
  readonly publishMs: number;
  /** PUBLISH sent -> first NOTIFY of the round, ms. */
  readonly firstMs: number;
  /** PUBLISH sent -> last NOTIFY of the round, ms (undefined: not all came in time). */
  readonly lastMs: number | undefined;
  readonly notified: number;
  /** Server CPU time over the round and the settling time, ms. */
  readonly cpuMs: number;
  /** NOTIFYs received again (the same CSeq): the server retransmitted. */
  readonly retransmitted: number;
}

interface RunResult {
  readonly label: string;
  readonly description: string;
  readonly subscribeMs?: number;
  readonly rounds: readonly Round[];
  readonly drops?: number;
  readonly recvBuffer?: number;
  readonly error?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `tasks` with at most `limit` at once. */
async function pool(
  count: number,
  limit: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

/** Resolves when `done()` holds (checked on every call of the returned `poke`), or at `ms`. */
function waiter(done: () => boolean, ms: number): { poke: () => void; until: Promise<boolean> } {
  let resolve: (v: boolean) => void = () => undefined;
  const until = new Promise<boolean>((r) => (resolve = r));
  const timer = setTimeout(() => resolve(done()), ms);
  const poke = (): void => {
    if (done()) {
      clearTimeout(timer);
      resolve(true);
    }
  };
  poke();
  return { poke, until };
}

async function measure(
  cfg: Config,
  server: ServerUnderTest,
  label: string,
  description: string,
): Promise<RunResult> {
  const [address, portText] = server.target.split(':');
  const target = { address: address!, port: Number(portText) };
  const agents: UdpAgent[] = [];
  try {
    for (let i = 0; i < cfg.sockets; i++) agents.push(await UdpAgent.open(target, 4 << 20));
    const watchers: Watcher[] = Array.from({ length: cfg.watchers }, (_, i) => ({
      account: watcherAccount(i),
      agent: agents[i % agents.length]!,
      callId: newCallId(),
      round: -1,
      cseqs: new Set<number>(),
    }));
    const byCallId = new Map(watchers.map((w) => [w.callId, w]));
    let current = 0;
    let notified = 0;
    let retransmitted = 0;
    let firstAt = Infinity;
    let lastAt = 0;
    let poke: () => void = () => undefined;
    for (const a of agents) {
      a.handleRequests(({ request, raw, at }) => {
        if (request.method !== 'NOTIFY') return;
        const w = byCallId.get(request.callId);
        if (w === undefined) return;
        const seq = request.cseq.seq;
        if (w.cseqs.has(seq)) {
          retransmitted++;
          return;
        }
        w.cseqs.add(seq);
        if (w.round < current && raw.includes(`${marker(current)}</note>`)) {
          w.round = current;
          notified++;
          firstAt = Math.min(firstAt, at);
          lastAt = Math.max(lastAt, at);
          poke();
        }
      });
    }

    // bob publishes first (round 0), so that the watchers' first NOTIFYs carry round 0.
    const bobAgent = agents[0]!;
    const bobDigest = digestFor(BOB);
    const bobCallId = newCallId();
    let bobCseq = 1;
    let etag: string | undefined;
    const publish = async (
      round: number,
    ): Promise<{ status: number; sentAt: number; at: number }> => {
      const r = await bobAgent.request(
        bobDigest,
        (cseq, via) =>
          createRequest({
            method: 'PUBLISH',
            uri: aor(BOB),
            via: [via],
            from: `<${aor(BOB)}>;tag=${newTag()}`,
            to: `<${aor(BOB)}>`,
            callId: bobCallId,
            cseq,
            headers: [
              ['Event', 'presence'],
              ['Expires', '3600'],
              ...(etag !== undefined ? ([['SIP-If-Match', etag]] as [string, string][]) : []),
            ],
            body: bobPidf(round),
            contentType: 'application/pidf+xml',
          }),
        bobCseq,
      );
      bobCseq = r.cseq + 1;
      etag = r.response.getRaw('SIP-ETag') ?? etag;
      return { status: r.response.status, sentAt: r.sentAt, at: performance.now() };
    };
    const initial = await publish(0);
    if (initial.status !== 200) throw new Error(`bob's first PUBLISH: ${initial.status}`);

    // Subscribe every watcher; the round-0 NOTIFYs are the initial ones.
    const subscribeStart = performance.now();
    const all = waiter(() => notified >= cfg.watchers, cfg.subscribeTimeoutMs);
    poke = all.poke;
    const refused: string[] = [];
    await pool(cfg.watchers, cfg.concurrency, async (i) => {
      const w = watchers[i]!;
      const fromTag = newTag();
      const r = await w.agent.request(
        digestFor(w.account),
        (cseq, via) =>
          createRequest({
            method: 'SUBSCRIBE',
            uri: aor(BOB),
            via: [via],
            from: `<${aor(w.account)}>;tag=${fromTag}`,
            to: `<${aor(BOB)}>`,
            callId: w.callId,
            cseq,
            contact: w.agent.contact(w.account.user),
            headers: [
              ['Event', 'presence'],
              ['Expires', '3600'],
              ['Accept', 'application/pidf+xml'],
            ],
          }),
        1,
      );
      if (r.response.status !== 200 && refused.length < 5) {
        refused.push(`${w.account.user}: ${r.response.status} ${r.response.reason}`);
      }
    });
    if (refused.length > 0) throw new Error(`SUBSCRIBE refused: ${refused.join('; ')}`);
    if (!(await all.until)) {
      throw new Error(
        `initial NOTIFYs: ${notified} of ${cfg.watchers} in ${cfg.subscribeTimeoutMs / 1000} s`,
      );
    }
    const subscribeMs = performance.now() - subscribeStart;
    await sleep(cfg.settleMs);

    const rounds: Round[] = [];
    for (let round = 1; round <= cfg.rounds + 1; round++) {
      current = round;
      notified = 0;
      retransmitted = 0;
      firstAt = Infinity;
      lastAt = 0;
      const done = waiter(() => notified >= cfg.watchers, cfg.roundTimeoutMs);
      poke = done.poke;
      const cpu0 = server.cpuMs();
      const p = await publish(round);
      if (p.status !== 200) throw new Error(`bob's PUBLISH of round ${round}: ${p.status}`);
      const complete = await done.until;
      await sleep(cfg.settleMs);
      const cpu = server.cpuMs() - cpu0;
      rounds.push({
        round,
        publishMs: p.at - p.sentAt,
        firstMs: firstAt - p.sentAt,
        lastMs: complete ? lastAt - p.sentAt : undefined,
        notified,
        cpuMs: cpu,
        retransmitted,
      });
      if (!complete) break;
    }
    const drops = agents.reduce((sum, a) => sum + (udpDrops(a.port) ?? 0), 0);
    return {
      label,
      description,
      subscribeMs,
      rounds,
      drops,
      recvBuffer: agents[0]!.recvBufferSize,
    };
  } catch (e) {
    return { label, description, rounds: [], error: e instanceof Error ? e.message : String(e) };
  } finally {
    for (const a of agents) a.close();
  }
}

// ---- report ---------------------------------------------------------------------------------

const median = (xs: readonly number[]): number | undefined => {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The measured rounds (the first is the warm-up) that got all their NOTIFYs. */
const measured = (r: RunResult): Round[] =>
  r.rounds.slice(1).filter((x): x is Round & { lastMs: number } => x.lastMs !== undefined);

function printRun(r: RunResult, watchers: number): void {
  console.log(`\n## ${r.label}: ${r.description}`);
  if (r.error !== undefined) {
    console.log(`ERROR: ${r.error}`);
    return;
  }
  console.log(
    `  ${watchers} watchers subscribed and got their first NOTIFY in ` +
      `${((r.subscribeMs ?? 0) / 1000).toFixed(1)} s; watcher sockets' receive buffer ` +
      `${Math.round((r.recvBuffer ?? 0) / 1024)} KiB, datagrams dropped on them: ${r.drops ?? 'n/a'}`,
  );
  console.log(
    '  round        PUBLISH->200 ms  first NOTIFY ms  last NOTIFY ms  NOTIFY/s  CPU ms/NOTIFY  notified  retrans',
  );
  r.rounds.forEach((x, i) => {
    const name = i === 0 ? `${x.round} (warm-up)` : String(x.round);
    console.log(
      `  ${name.padEnd(12)} ${x.publishMs.toFixed(1).padStart(15)}  ${x.firstMs.toFixed(1).padStart(15)}  ` +
        `${(x.lastMs === undefined ? 'timeout' : x.lastMs.toFixed(1)).padStart(14)}  ` +
        `${(x.lastMs === undefined ? 'n/a' : String(Math.round((watchers * 1000) / x.lastMs))).padStart(8)}  ` +
        `${(x.cpuMs / watchers).toFixed(3).padStart(13)}  ${String(x.notified).padStart(8)}  ` +
        `${String(x.retransmitted).padStart(7)}`,
    );
  });
  const ok = measured(r);
  if (ok.length === 0) {
    console.log('  no measured round completed');
    return;
  }
  const last = ok.map((x) => x.lastMs!);
  const rate = (ms: number): number => Math.round((watchers * 1000) / ms);
  const cpu = ok.map((x) => x.cpuMs / watchers);
  console.log(
    `  median of ${ok.length} rounds: last NOTIFY ${median(last)!.toFixed(1)} ms ` +
      `(min ${Math.min(...last).toFixed(1)}, max ${Math.max(...last).toFixed(1)}); ` +
      `${rate(median(last)!)} NOTIFY/s (${rate(Math.max(...last))}..${rate(Math.min(...last))}); ` +
      `server CPU ${median(cpu)!.toFixed(3)} ms per NOTIFY ` +
      `(${Math.min(...cpu).toFixed(3)}..${Math.max(...cpu).toFixed(3)})`,
  );
}

function machineLines(prefix: string, r: RunResult | undefined, watchers: number): string[] {
  const ok = r === undefined ? [] : measured(r);
  const last = median(ok.map((x) => x.lastMs!));
  const cpu = median(ok.map((x) => x.cpuMs / watchers));
  return [
    `${prefix}_fanout_ms=${last === undefined ? 'n/a' : last.toFixed(1)}`,
    `${prefix}_notify_per_s=${last === undefined ? 'n/a' : Math.round((watchers * 1000) / last)}`,
    `${prefix}_cpu_ms_per_notify=${cpu === undefined ? 'n/a' : cpu.toFixed(3)}`,
  ];
}

// ---- the suite ------------------------------------------------------------------------------

/** `npm run build`: the server runs compiled (dist/), as in the server suite. */
function buildCompiled(repoRoot: string): void {
  const r = spawnSync(
    process.execPath,
    [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 },
  );
  if (r.status !== 0) {
    throw new Error(`npm run build failed (${String(r.status)}): ${r.stdout}${r.stderr}`);
  }
}

function busy(load: number, ncpu: number): string {
  return load > ncpu * 0.75
    ? ` (WARNING: other processes are busy on ${ncpu} CPU(s); expect noisy, lower numbers)`
    : '';
}

async function run(opts: SuiteOptions): Promise<void> {
  const cfg = opts.quick ? QUICK : FULL;
  const started = Date.now();
  console.log(`# suite presence${opts.quick ? ' (--quick)' : ''}`);
  if (process.platform !== 'linux') {
    const why = `it needs Linux /proc (CPU times, /proc/net/udp); this is ${process.platform}`;
    process.stderr.write(
      `${'!'.repeat(78)}\n!! presence suite SKIPPED: ${why}\n${'!'.repeat(78)}\n`,
    );
    console.log(`SKIPPED: ${why}`);
    return;
  }
  const cpu = cpus();
  console.log(
    `node ${process.version} ${process.platform}/${process.arch}, ${cpu.length} CPU(s): ` +
      `${cpu[0]?.model.trim() ?? 'unknown'}`,
  );
  const loadBefore = loadavg()[0]!;
  console.log(
    `load average (1 min) before: ${loadBefore.toFixed(2)}${busy(loadBefore, cpu.length)}`,
  );
  console.log(
    `${cfg.watchers} watchers of bob over ${cfg.sockets} UDP sockets of this process on ` +
      `${LOOPBACK} (digest MD5 on 407, ${cfg.concurrency} SUBSCRIBEs at a time, each NOTIFY ` +
      `answered 200 at once); ${cfg.rounds} measured rounds after one warm-up: bob's PUBLISH ` +
      '(modification, credentials sent with it) -> the last of the NOTIFYs carrying it',
  );
  console.log(
    '  PUBLISH->200: until bob got the 200. first/last NOTIFY: from sending the PUBLISH to ' +
      'reading the first/last NOTIFY of the round in this process. NOTIFY/s: watchers / last. ' +
      'CPU ms/NOTIFY: server CPU time (all its processes) over the round and ' +
      `${cfg.settleMs} ms after it / watchers. retrans: NOTIFYs received again.`,
  );

  const repoRoot = dirname(opts.benchDir);
  buildCompiled(repoRoot);
  const runDir = mkdtempSync(join(tmpdir(), 'sb-bench-presence-'));
  const users = [BOB, ...Array.from({ length: cfg.watchers }, (_, i) => watcherAccount(i))];
  const env: NodeJS.ProcessEnv = { ...process.env, SWITCHBOARD_RUN: 'compiled' };
  const lifetimeMs =
    cfg.subscribeTimeoutMs + (cfg.rounds + 1) * (cfg.roundTimeoutMs + 1000) + 60_000;
  const presenceConfig = ['presence:', `  maxWatchersPerUser: ${cfg.watchers + 10}`];
  const workerCounts = cpu.length > 1 ? [1, cpu.length] : [1];
  const results: RunResult[] = [];
  try {
    for (const workers of workerCounts) {
      const label = workers === 1 ? 'switchboard, 1 process' : `switchboard, ${workers} workers`;
      const description =
        'node bin/switchboard.js serve (compiled: dist/ from npm run build) --listen ' +
        `udp:${LOOPBACK}:0, ` +
        (workers === 1 ? 'one process' : `a supervisor and ${workers} worker processes`) +
        `; config: MD5 challenges only, logLevel warn, presence.maxWatchersPerUser ` +
        `${cfg.watchers + 10}, the rest at the defaults; a fresh data directory with the users ` +
        'imported';
      if (Date.now() - started > cfg.budgetMs) {
        console.log(`\nWARNING: time budget reached, ${label} skipped`);
        continue;
      }
      const factory = prepareSwitchboard({
        repoRoot,
        dir: join(runDir, `workers-${workers}`),
        users,
        env,
        lifetimeMs,
        workers,
        config: presenceConfig,
      });
      const server = await factory.start();
      let r: RunResult;
      let log: LogTally;
      try {
        r = await measure(cfg, server, label, description);
      } finally {
        log = server.takeLog();
        await server.stop();
      }
      printRun(r, cfg.watchers);
      // Logged at warn or above: nothing is expected.
      for (const t of log.top) console.log(`  server log x${t.count}: ${t.sample}`);
      results.push(r);
    }
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }

  console.log('\nnotes:');
  const notes = [
    `The watchers run in this process and share the machine (${cpu.length} CPU(s)) with the ` +
      'server: reading and answering 1,000 NOTIFYs costs this process CPU too, so the figures are ' +
      'a lower bound of what the server alone would do. CPU ms per NOTIFY is the steadier figure.',
    'With workers, a subscription is notified by the worker that owns its Call-ID; a PUBLISH ' +
      'taken by one worker reaches the subscriptions of the others at their next look at the ' +
      'store (presence.pollInterval, 0.1 s by default), so the last NOTIFY comes up to that much later.',
    'Each round changes what the watchers see (a new note, away or not), so every subscription ' +
      'gets exactly one NOTIFY per round; retransmissions would mean a 200 lost or late.',
  ];
  for (const n of notes) console.log(`  - ${n}`);
  const loadAfter = loadavg()[0]!;
  console.log(
    `\nsuite took ${((Date.now() - started) / 1000).toFixed(1)} s; load average (1 min) after: ` +
      `${loadAfter.toFixed(2)}${busy(loadAfter, cpu.length)}`,
  );
  const lines = [
    ...machineLines(
      'presence',
      results.find((r) => r.label.endsWith('1 process')),
      cfg.watchers,
    ),
    ...machineLines(
      'presence_workers',
      results.find((r) => r.label.endsWith('workers')),
      cfg.watchers,
    ),
  ];
  for (const l of lines) console.log(l);
}

export const suite: Suite = {
  name: 'presence',
  description:
    'switchboard serve: presence NOTIFY fan-out, 1,000 watchers of one user, PUBLISH to last NOTIFY',
  run,
};
