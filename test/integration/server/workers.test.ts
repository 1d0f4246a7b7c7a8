/**
 * `switchboard serve --workers 2` as processes: the supervisor and its two workers (cluster.ts).
 *
 * - Both workers run and share the listeners: OPTIONS with 40 different Call-IDs over UDP and
 *   over one TCP connection all get 200, whichever worker read them (about half are handed to
 *   the other worker, transport/steering.ts).
 * - Digest registrations go through either worker (8 REGISTERs with their own Call-IDs, spread
 *   over both), and land in the one shared store.
 * - A nonce is good in every worker, but its counts are kept by the worker that issued it:
 *   credentials with another worker's nonce get 401 stale=true (RFC 7616 §3.4 replay
 *   protection), the same credentials to the issuing worker 200, and once more 401 (replay).
 * - A REGISTER without credentials is answered by whichever worker reads it: copies read by
 *   either get the same To tag (one shared salt), and the nonce is marked for the owner of the
 *   Call-ID, which accepts the authenticated REGISTER.
 * - A worker killed with SIGKILL is replaced, and the server keeps answering meanwhile.
 * - SIGTERM drains every worker and exits 0 with no process left; SIGKILL of the supervisor
 *   takes its workers with it (they leave when their IPC channel closes).
 * - `workers` is checked like every key: 0 is a one-line error naming it.
 *
 * Loopback and port 0 only; every wait is bounded.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { digestResponse, ha1 } from '../../../src/auth/index.ts';
import { createRequest } from '../../../src/sip/index.ts';
import { ownerOfCallId } from '../../../src/transport/index.ts';
import { createStack } from '../../../src/stack/index.ts';
import {
  BIN,
  cli,
  startServer,
  stopServer,
  within,
  type RunningServer,
} from '../../support/server.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Pids of the direct children of `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  try {
    const tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return tasks === '' ? [] : tasks.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

/** Worker processes: children running the switchboard CLI (tsx also starts an esbuild child). */
function workersOf(pid: number): number[] {
  return childrenOf(pid).filter((c) => {
    try {
      return readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('switchboard.js');
    } catch {
      return false;
    }
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function options(callId: string, via: string): string {
  return [
    'OPTIONS sip:example.com SIP/2.0',
    `Via: ${via};branch=z9hG4bK${callId.replace(/[^a-z0-9]/gi, '')}`,
    'Max-Forwards: 70',
    'From: <sip:probe@example.net>;tag=p1',
    'To: <sip:example.com>',
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Sends OPTIONS with `n` Call-IDs over UDP; the Call-IDs answered 200. */
async function probeUdp(port: number, n: number, tag: string): Promise<Set<string>> {
  const sock = createSocket('udp4');
  const answered = new Set<string>();
  sock.on('message', (b) => {
    const t = b.toString();
    const m = /^Call-ID: (.*)$/m.exec(t);
    if (t.startsWith('SIP/2.0 200') && m !== null) answered.add(m[1]!.trim());
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const local = sock.address().port;
  try {
    for (let round = 0; round < 3 && answered.size < n; round++) {
      for (let i = 0; i < n; i++) {
        const id = `${tag}-${i}@127.0.0.1`;
        if (!answered.has(id)) {
          sock.send(options(id, `SIP/2.0/UDP 127.0.0.1:${local}`), port, '127.0.0.1');
        }
      }
      const until = Date.now() + 1500;
      while (answered.size < n && Date.now() < until) await sleep(10);
    }
  } finally {
    sock.close();
  }
  return answered;
}

describe('switchboard serve --workers 2', () => {
  let dataDir: string;
  let server: RunningServer | undefined;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'sb-workers-'));
    cli(['domain', 'add', 'example.com', '--data-dir', dataDir]);
    cli(['user', 'add', 'alice@example.com', '--password', 'pw-alice', '--data-dir', dataDir]);
    server = await startServer({
      dataDir,
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      extraArgs: ['--workers', '2'],
      logLevel: 'info',
    });
  });

  after(async () => {
    if (server !== undefined) await stopServer(server).catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('runs two workers that answer every Call-ID over UDP and over one TCP connection', async () => {
    const s = server!;
    await within(
      (async () => {
        while (workersOf(s.child.pid!).length < 2) await sleep(50);
      })(),
      10_000,
      'two worker processes',
    );
    const udp = await probeUdp(s.ports.udp!, 40, 'u');
    assert.equal(udp.size, 40, `UDP: ${udp.size}/40 answered\n${s.stderr().slice(-2000)}`);

    const sock = connect(s.ports.tcp!, '127.0.0.1');
    await within(new Promise<void>((r) => sock.once('connect', () => r())), 5000, 'TCP connect');
    let text = '';
    sock.on('data', (b) => (text += b.toString()));
    try {
      for (let i = 0; i < 40; i++) {
        sock.write(options(`t-${i}@127.0.0.1`, `SIP/2.0/TCP 127.0.0.1:${sock.localPort}`));
      }
      const count = (): number => (text.match(/^SIP\/2\.0 200 /gm) ?? []).length;
      await within(
        (async () => {
          while (count() < 40) await sleep(10);
        })(),
        10_000,
        `40 answers on the TCP connection (got ${count()})`,
      );
      for (let i = 0; i < 40; i++) assert.ok(text.includes(`Call-ID: t-${i}@127.0.0.1`));
    } finally {
      sock.destroy();
    }
  });

  it('registers with digest through either worker, into the one store', async () => {
    const stack = await createStack({ listen: ['udp:127.0.0.1:0'] });
    try {
      // Each REGISTER has its own Call-ID: the 401 and the authenticated retry of one
      // registration meet in one worker, the next registration maybe in the other.
      for (let i = 0; i < 8; i++) {
        const req = createRequest({
          method: 'REGISTER',
          uri: 'sip:example.com',
          from: `<sip:alice@example.com>;tag=${stack.ids.tag()}`,
          to: '<sip:alice@example.com>',
          callId: stack.ids.callId(),
          cseq: 1,
          contact: `<sip:alice@127.0.0.1:${5000 + i}>`,
          headers: [['Expires', '300']],
        });
        const res = await within(
          stack.send(req, {
            destination: { protocol: 'udp', address: '127.0.0.1', port: server!.ports.udp! },
            credentials: { username: 'alice', password: 'pw-alice' },
          }).final,
          10_000,
          `REGISTER ${i}`,
        );
        assert.equal(res.status, 200, `REGISTER ${i}: ${res.status}`);
      }
      const listed = cli(['registrations', '--data-dir', dataDir, '--json']);
      assert.equal((JSON.parse(listed) as unknown[]).length, 8);
    } finally {
      await stack.close();
    }
  });

  it('keeps nonce counts with the worker that issued the nonce', async () => {
    const port = server!.ports.udp!;
    const sock = createSocket('udp4');
    const got: string[] = [];
    sock.on('message', (b) => got.push(b.toString()));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const local = sock.address().port;
    /** A Call-ID owned by worker `w` of 2. */
    const callIdFor = (w: number, salt: string): string => {
      for (let i = 0; ; i++) {
        const id = `${salt}-${i}@127.0.0.1`;
        if (ownerOfCallId(id, 2) === w) return id;
      }
    };
    let seq = 0;
    const register = async (callId: string, auth?: string): Promise<string> => {
      const branch = `z9hG4bKnc${++seq}`;
      const before = got.length;
      const text = [
        'REGISTER sip:example.com SIP/2.0',
        `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=${branch};rport`,
        'Max-Forwards: 70',
        `From: <sip:alice@example.com>;tag=nc${seq}`,
        'To: <sip:alice@example.com>',
        `Call-ID: ${callId}`,
        `CSeq: ${seq} REGISTER`,
        `Contact: <sip:alice@127.0.0.1:${local}>`,
        ...(auth !== undefined ? [`Authorization: ${auth}`] : []),
        'Expires: 60',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
      sock.send(text, port, '127.0.0.1');
      await within(
        (async () => {
          while (!got.slice(before).some((t) => t.includes(branch))) await sleep(5);
        })(),
        5000,
        `the answer to REGISTER ${seq}`,
      );
      return got.slice(before).find((t) => t.includes(branch))!;
    };
    const credentials = (nonce: string, nc: number): string => {
      const cnonce = `c${nc}x${seq}`;
      const response = digestResponse({
        algorithm: 'MD5',
        ha1: ha1('MD5', 'alice', 'example.com', 'pw-alice'),
        nonce,
        nc,
        cnonce,
        qop: 'auth',
        method: 'REGISTER',
        uri: 'sip:example.com',
      });
      return (
        `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${response}", algorithm=MD5, qop=auth, nc=${nc.toString(16).padStart(8, '0')}, cnonce="${cnonce}"`
      );
    };
    try {
      const challenge = await register(callIdFor(0, 'n'));
      assert.match(challenge, /^SIP\/2\.0 401 /);
      const md5 =
        /WWW-Authenticate: Digest[^\r\n]*algorithm=MD5[^\r\n]*/i.exec(challenge)?.[0] ??
        /WWW-Authenticate: Digest[^\r\n]*/i.exec(challenge)![0];
      const nonce = /nonce="([^"]+)"/.exec(md5)![1]!;
      // Worker 1 verifies worker 0's nonce but never saw its counts: stale, with a fresh nonce.
      const elsewhere = await register(callIdFor(1, 'n'), credentials(nonce, 1));
      assert.match(elsewhere, /^SIP\/2\.0 401 /);
      assert.match(elsewhere, /stale=true/i);
      // Worker 0 accepts it, once.
      const home = await register(callIdFor(0, 'm'), credentials(nonce, 1));
      assert.match(home, /^SIP\/2\.0 200 /);
      const replay = await register(callIdFor(0, 'k'), credentials(nonce, 1));
      assert.match(replay, /^SIP\/2\.0 401 /);
    } finally {
      sock.close();
    }
  });

  it('answers a REGISTER without credentials in whichever worker reads it, for the owner of its Call-ID', async () => {
    const port = server!.ports.udp!;
    const sock = createSocket('udp4');
    const got: string[] = [];
    sock.on('message', (b) => got.push(b.toString()));
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const local = sock.address().port;
    const text = (callId: string, branch: string, cseq: number, auth?: string): string =>
      [
        'REGISTER sip:example.com SIP/2.0',
        `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=${branch};rport`,
        'Max-Forwards: 70',
        `From: <sip:alice@example.com>;tag=f-${callId.slice(0, 8)}`,
        'To: <sip:alice@example.com>',
        `Call-ID: ${callId}`,
        `CSeq: ${cseq} REGISTER`,
        `Contact: <sip:alice@127.0.0.1:${local}>`,
        ...(auth !== undefined ? [`Authorization: ${auth}`] : []),
        'Expires: 60',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
    const answers = async (branch: string, n: number): Promise<string[]> => {
      await within(
        (async () => {
          while (got.filter((t) => t.includes(branch)).length < n) await sleep(5);
        })(),
        5000,
        `${n} answers to ${branch}`,
      );
      return got.filter((t) => t.includes(branch));
    };
    try {
      for (let i = 0; i < 12; i++) {
        const callId = `reader-${i}-${Date.now()}@127.0.0.1`;
        const owner = ownerOfCallId(callId, 2);
        // Sent five times: each copy is read by either worker, and all get the same answer tag
        // (RFC 3261 §8.2.7), since the workers share the salt of stateless To tags.
        const branch = `z9hG4bKreader${i}`;
        for (let k = 0; k < 5; k++) sock.send(text(callId, branch, 1), port, '127.0.0.1');
        const challenges = await answers(branch, 5);
        const tags = new Set(challenges.map((t) => /^To:.*;tag=([^;\r\n]+)/m.exec(t)?.[1]));
        assert.equal(
          tags.size,
          1,
          `one To tag for the retransmissions:\n${challenges.join('\n----\n')}`,
        );
        // And the same nonce, derived from the request and the second (nonce.ts): copies read in
        // one second get one challenge; five copies sent at once may straddle a second, never two.
        const stamps = new Map<string, number>();
        for (const c of challenges) {
          const n = /nonce="([^"]+)"/.exec(c)![1]!;
          stamps.set(n, Buffer.from(n, 'base64url').readUInt32BE(4));
        }
        const seconds = [...stamps.values()].sort((a, b) => a - b);
        assert.ok(
          stamps.size === 1 || (stamps.size === 2 && seconds[1]! - seconds[0]! === 1000),
          `one nonce per second for the retransmissions:\n${challenges.join('\n----\n')}`,
        );
        for (const c of challenges) {
          assert.match(c, /^SIP\/2\.0 401 /);
          // The nonce is marked for the worker that will see the answer (nonce.ts issuer).
          const nonce = /nonce="([^"]+)"/.exec(c)![1]!;
          assert.equal(Buffer.from(nonce, 'base64url')[8], owner, `nonce issuer of ${callId}`);
        }
        const nonce = /nonce="([^"]+)"/.exec(challenges[0]!)![1]!;
        const cnonce = `rc${i}`;
        const response = digestResponse({
          algorithm: 'MD5',
          ha1: ha1('MD5', 'alice', 'example.com', 'pw-alice'),
          nonce,
          nc: 1,
          cnonce,
          qop: 'auth',
          method: 'REGISTER',
          uri: 'sip:example.com',
        });
        const auth =
          `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
          `response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="${cnonce}"`;
        const branch2 = `z9hG4bKreaderauth${i}`;
        sock.send(text(callId, branch2, 2, auth), port, '127.0.0.1');
        const [ok] = await answers(branch2, 1);
        assert.match(ok!, /^SIP\/2\.0 200 /, `the authenticated REGISTER of ${callId}`);
      }
    } finally {
      sock.close();
    }
  });

  it('replaces a worker that dies, and keeps answering', async () => {
    const s = server!;
    const before = workersOf(s.child.pid!);
    assert.equal(before.length, 2);
    process.kill(before[0]!, 'SIGKILL');
    await within(
      (async () => {
        for (;;) {
          const now = workersOf(s.child.pid!);
          if (now.length === 2 && !now.includes(before[0]!)) return;
          await sleep(50);
        }
      })(),
      15_000,
      'a replacement worker',
    );
    assert.match(s.stderr(), /worker died; restarting it/);
    const udp = await within(
      (async () => {
        for (;;) {
          const answered = await probeUdp(s.ports.udp!, 20, `after-${Date.now()}`);
          if (answered.size === 20) return answered;
        }
      })(),
      15_000,
      'every Call-ID answered after the restart',
    );
    assert.equal(udp.size, 20);
  });

  it('drains every worker on SIGTERM and exits 0 with no process left', async () => {
    const s = server!;
    const workers = workersOf(s.child.pid!);
    assert.equal(workers.length, 2);
    const code = await stopServer(s, 15_000);
    assert.equal(code, 0, s.stderr().slice(-2000));
    await within(
      (async () => {
        while (workers.some(alive)) await sleep(50);
      })(),
      5000,
      'the workers to exit',
    );
    assert.match(s.stdout(), /^stopping$/m);
    server = undefined;
  });

  it('takes its workers along when the supervisor is killed', async () => {
    const s = await startServer({ dataDir, extraArgs: ['--workers', '2'] });
    try {
      let workers: number[] = [];
      await within(
        (async () => {
          while ((workers = workersOf(s.child.pid!)).length < 2) await sleep(50);
        })(),
        10_000,
        'two worker processes',
      );
      s.child.kill('SIGKILL');
      await within(
        (async () => {
          while (workers.some(alive)) await sleep(50);
        })(),
        10_000,
        'the orphaned workers to exit',
      );
    } finally {
      s.child.kill('SIGKILL');
    }
  });

  it('drains every worker on a SIGTERM that comes while they are still starting', async () => {
    // A stop the supervisor sends before a worker listens for it must not be lost: such a
    // worker would serve on until killed after shutdownTimeout and its margin (10 s).
    const dir = mkdtempSync(join(tmpdir(), 'sb-workers-early-'));
    const config = join(dir, 'switchboard.yaml');
    writeFileSync(config, 'shutdownTimeout: 1\nlogLevel: info\n');
    const child = spawn(
      process.execPath,
      [BIN, 'serve', '--config', config, '--data-dir', dataDir, '--workers', '2'].concat([
        '--listen',
        'udp:127.0.0.1:0',
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.resume();
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await within(
        (async () => {
          while (workersOf(child.pid!).length < 2) await sleep(5);
        })(),
        10_000,
        'two worker processes',
      );
      child.kill('SIGTERM');
      const code = await within(exited, 20_000, 'the server to exit');
      assert.equal(code, 0, stderr.slice(-2000));
      // Both workers drained: a worker killed for not stopping never says so.
      assert.equal(stderr.match(/drained: no transaction in progress/g)?.length, 2, stderr);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses workers: 0 with a line naming the key', () => {
    const r = spawnSync(
      process.execPath,
      [BIN, 'serve', '--data-dir', dataDir, '--workers', '0', '--listen', 'udp:127.0.0.1:0'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--workers: expected a whole number from 1 to 64, or auto/);
  });
});
