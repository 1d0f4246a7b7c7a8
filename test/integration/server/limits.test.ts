/**
 * `limits.maxServerTransactionsPerSource` on a running `switchboard serve`: with a share of 2,
 * a third OPTIONS from one address (its first two answered transactions still count: Timer J
 * keeps a finished UDP transaction 32 s, RFC 3261 §17.2.2, and its address's share counts it
 * for the first 8 s of them) gets 503 with Retry-After, while another address (127.0.0.2,
 * loopback) is still answered 200; 8 s later the same address is served again (two more), while
 * the first two are still kept.
 *
 * `limits.maxServerTransactions` with a table of 5: a request beyond it gets 503 while the
 * finished transactions are younger than 2*T2 (8 s); after that the oldest are ended early to
 * make room (instead of every new request being refused until their 32 s of Timer J are over),
 * and a retransmission to a finished transaction that is still kept is answered from it.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startServer, stopServer, within, type RunningServer } from '../../support/server.ts';
import { writeServeConfig, type ServeConfig } from '../../support/serve-config.ts';

function options(n: number, port: number, host: string): string {
  return [
    'OPTIONS sip:example.com SIP/2.0',
    `Via: SIP/2.0/UDP ${host}:${port};branch=z9hG4bKlim${n}x${port};rport`,
    'Max-Forwards: 70',
    'From: <sip:probe@example.net>;tag=l1',
    'To: <sip:example.com>',
    `Call-ID: limits-${n}-${port}@${host}`,
    `CSeq: ${n} OPTIONS`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** Sends one OPTIONS from `host` (from `localPort`, else any) and returns the answer. */
async function ask(serverPort: number, host: string, n: number, localPort = 0): Promise<string> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(localPort, host, r));
  try {
    const answer = new Promise<string>((resolve) =>
      sock.once('message', (b) => resolve(b.toString())),
    );
    sock.send(options(n, sock.address().port, host), serverPort, '127.0.0.1');
    return await within(answer, 5000, `an answer to OPTIONS ${n} from ${host}`);
  } finally {
    sock.close();
  }
}

/** A server with `yaml` as its configuration for the tests of the enclosing describe. */
function serverWith(yaml: string): { server(): RunningServer } {
  let dir: string;
  let config: ServeConfig;
  let server: RunningServer | undefined;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-limits-'));
    config = writeServeConfig(yaml);
    server = await startServer({ dataDir: dir, extraArgs: config.args });
  });
  after(async () => {
    if (server !== undefined) await stopServer(server).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    config.remove();
  });
  return { server: () => server! };
}

describe('limits.maxServerTransactionsPerSource', () => {
  const running = serverWith('limits:\n  maxServerTransactionsPerSource: 2\n');

  it('refuses one address past its share with 503, and still serves another', async () => {
    const port = running.server().ports.udp!;
    const first = await ask(port, '127.0.0.1', 1);
    const second = await ask(port, '127.0.0.1', 2);
    const third = await ask(port, '127.0.0.1', 3);
    assert.match(first, /^SIP\/2\.0 200 /);
    assert.match(second, /^SIP\/2\.0 200 /);
    assert.match(third, /^SIP\/2\.0 503 /);
    assert.match(third, /^Retry-After: \d+/m);
    assert.match(await ask(port, '127.0.0.2', 4), /^SIP\/2\.0 200 /);
  });

  it('counts an answered transaction for 8 s (2*T2), not its whole 32 s of Timer J', async () => {
    const port = running.server().ports.udp!;
    // The first two OPTIONS of the test before were answered at least 8 s ago after this wait:
    // they are still kept (Timer J), but no longer count against 127.0.0.1.
    await new Promise((r) => setTimeout(r, 8_300));
    assert.match(await ask(port, '127.0.0.1', 5), /^SIP\/2\.0 200 /);
    assert.match(await ask(port, '127.0.0.1', 6), /^SIP\/2\.0 200 /);
    assert.match(await ask(port, '127.0.0.1', 7), /^SIP\/2\.0 503 /, '5 and 6 count now');
  });
});

describe('limits.maxServerTransactions', () => {
  const running = serverWith('limits:\n  maxServerTransactions: 5\n');

  it('refuses while the finished transactions are young, then ends the oldest early to make room', async () => {
    const port = running.server().ports.udp!;
    // Five finished OPTIONS transactions, each from a port of its own (so that one can be
    // sent again from the same place: a retransmission is matched by branch and sent-by).
    const localPorts: number[] = [];
    const answers: string[] = [];
    for (let n = 1; n <= 5; n++) {
      const probe = createSocket('udp4');
      await new Promise<void>((r) => probe.bind(0, '127.0.0.1', r));
      localPorts.push(probe.address().port);
      probe.close();
      answers.push(await ask(port, '127.0.0.1', n, localPorts[n - 1]));
      assert.match(answers[n - 1]!, /^SIP\/2\.0 200 /);
    }
    const full = await ask(port, '127.0.0.1', 6);
    assert.match(full, /^SIP\/2\.0 503 /, 'none of the five has waited 8 s');
    await new Promise((r) => setTimeout(r, 8_300));
    assert.match(await ask(port, '127.0.0.1', 7), /^SIP\/2\.0 200 /, 'room made');
    // The fifth is still kept: its retransmission is answered from its transaction, with the
    // same To tag as the first answer.
    const again = await ask(port, '127.0.0.1', 5, localPorts[4]);
    const toTag = (m: string): string | undefined => /^To:.*;tag=([^;\s]+)/m.exec(m)?.[1];
    assert.match(again, /^SIP\/2\.0 200 /);
    assert.ok(toTag(again) !== undefined && toTag(again) === toTag(answers[4]!), again);
  });
});
