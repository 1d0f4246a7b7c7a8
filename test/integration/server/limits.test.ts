/**
 * `limits.maxServerTransactionsPerSource` on a running `switchboard serve`: with a share of 2,
 * a third OPTIONS from one address (its first two answered transactions still live: Timer J
 * keeps a finished UDP transaction 32 s, RFC 3261 §17.2.2) gets 503 with Retry-After, while
 * another address (127.0.0.2, loopback) is still answered 200.
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

/** Sends one OPTIONS from `host` and returns the status line of the answer. */
async function ask(serverPort: number, host: string, n: number): Promise<string> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, host, r));
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

describe('limits.maxServerTransactionsPerSource', () => {
  let dir: string;
  let config: ServeConfig;
  let server: RunningServer | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-limits-'));
    config = writeServeConfig('limits:\n  maxServerTransactionsPerSource: 2\n');
    server = await startServer({ dataDir: dir, extraArgs: config.args });
  });

  after(async () => {
    if (server !== undefined) await stopServer(server).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    config.remove();
  });

  it('refuses one address past its share with 503, and still serves another', async () => {
    const port = server!.ports.udp!;
    const first = await ask(port, '127.0.0.1', 1);
    const second = await ask(port, '127.0.0.1', 2);
    const third = await ask(port, '127.0.0.1', 3);
    assert.match(first, /^SIP\/2\.0 200 /);
    assert.match(second, /^SIP\/2\.0 200 /);
    assert.match(third, /^SIP\/2\.0 503 /);
    assert.match(third, /^Retry-After: \d+/m);
    assert.match(await ask(port, '127.0.0.2', 4), /^SIP\/2\.0 200 /);
  });
});
