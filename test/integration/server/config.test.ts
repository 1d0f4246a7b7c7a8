/**
 * `switchboard serve --config FILE` as a separate process: listeners, domains, the
 * registrar's expiry bounds, the limits and the purge interval from a YAML file; flags
 * over the file; TLS with --tls-cert/--tls-key; start-up errors as one line naming the
 * key. Loopback and port 0 only; every wait is bounded.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createRequest, type SipResponse } from '../../../src/sip/index.ts';
import { createStack, type Stack } from '../../../src/stack/index.ts';
import type { TransportProtocol } from '../../../src/transport/index.ts';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { BIN, cli, stopServer, within, type RunningServer } from '../../support/server.ts';
import { makeCerts, type TestCerts } from '../transport/support.ts';

/**
 * Starts `switchboard ARGS` (no --listen or --domain added: they may come from a config
 * file) and resolves once it printed its `domains` line, which follows the listening lines.
 */
async function serve(args: readonly string[]): Promise<RunningServer> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  await within(
    new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => {
        if (/^domains /m.test(out)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    }),
    20_000,
    'serve to start',
  ).catch((e: unknown) => {
    child.kill('SIGKILL');
    throw e;
  });
  const ports: Record<string, number> = {};
  for (const m of out.matchAll(/^listening (\w+):(?:\[[^\]]*\]|[^:\s]+):(\d+)$/gm)) {
    ports[m[1]!] ??= Number(m[2]);
  }
  const port = ports.udp ?? Object.values(ports)[0]!;
  return { child, port, ports, stdout: () => out, stderr: () => err };
}

function request(
  client: Stack,
  method: string,
  o: { user?: string; expires?: number; contact?: string; body?: string } = {},
): ReturnType<typeof createRequest> {
  const user = o.user ?? 'alice';
  return createRequest({
    method,
    uri: method === 'REGISTER' || method === 'OPTIONS' ? 'sip:example.com' : `sip:bob@example.com`,
    from: `<sip:${user}@example.com>;tag=${client.ids.tag()}`,
    to: method === 'REGISTER' ? `<sip:${user}@example.com>` : '<sip:bob@example.com>',
    callId: client.ids.callId(),
    cseq: 1,
    ...(o.contact !== undefined ? { contact: o.contact } : {}),
    ...(o.body !== undefined ? { body: o.body, contentType: 'text/plain' } : {}),
    headers: o.expires !== undefined ? [['Expires', String(o.expires)]] : [],
  });
}

function send(
  client: Stack,
  req: ReturnType<typeof createRequest>,
  protocol: TransportProtocol,
  port: number,
  password?: string,
): Promise<SipResponse> {
  const out = client.send(req, {
    destination: { protocol, address: '127.0.0.1', port },
    ...(password !== undefined ? { credentials: { username: 'alice', password } } : {}),
  });
  return within(out.final, 15_000, `${req.method} final response`);
}

describe('switchboard serve --config FILE', { timeout: 120_000 }, () => {
  let dir: string;
  let dataDir: string;
  let client: Stack;
  let server: RunningServer | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
    dataDir = join(dir, 'data');
    cli(['domain', 'add', 'example.com', '--data-dir', dataDir]);
    cli(['user', 'add', 'alice@example.com', '--password', 'secret', '--data-dir', dataDir]);
    client = await createStack({ listen: ['udp:127.0.0.1:0'] });
  });
  after(async () => {
    await client?.close();
    if (server !== undefined) await stopServer(server).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('listeners, registrar bounds and limits come from the file (dataDir relative to it)', async () => {
    const file = join(dir, 'switchboard.yaml');
    writeFileSync(
      file,
      [
        '# a test configuration',
        'dataDir: data',
        'domains: [example.com]',
        'listen:',
        '  - udp:127.0.0.1:0',
        '  - tcp:127.0.0.1:0',
        'logLevel: warn',
        'registrar:',
        '  minExpires: 120',
        '  defaultExpires: 300',
        '  maxExpires: 600',
        'limits:',
        '  maxBodyBytes: 1000',
        '',
      ].join('\n'),
    );
    server = await serve(['--config', file]);
    assert.ok(server.ports.udp! > 0 && server.ports.tcp! > 0, server.stdout());
    const udp = server.ports.udp!;

    const short = await send(
      client,
      request(client, 'REGISTER', { contact: '<sip:alice@127.0.0.1:7001>', expires: 60 }),
      'udp',
      udp,
      'secret',
    );
    assert.equal(short.status, 423);
    assert.equal(short.getRaw('Min-Expires'), '120');

    const dflt = await send(
      client,
      request(client, 'REGISTER', { contact: '<sip:alice@127.0.0.1:7001>' }),
      'udp',
      udp,
      'secret',
    );
    assert.equal(dflt.status, 200);
    assert.match(dflt.getRaw('Contact') ?? '', /;expires=(29\d|300)\b/);

    const long = await send(
      client,
      request(client, 'REGISTER', { contact: '<sip:alice@127.0.0.1:7001>', expires: 7200 }),
      'udp',
      udp,
      'secret',
    );
    assert.equal(long.status, 200);
    assert.match(long.getRaw('Contact') ?? '', /;expires=(59\d|600)\b/);

    // limits.maxBodyBytes: a larger body is refused by the transport (RFC 3261 §21.4.11).
    const big = await send(
      client,
      request(client, 'MESSAGE', { body: 'x'.repeat(1200) }),
      'udp',
      udp,
    );
    assert.equal(big.status, 513);
    const fits = await send(
      client,
      request(client, 'OPTIONS', { body: 'x'.repeat(900) }),
      'udp',
      udp,
    );
    assert.equal(fits.status, 200);

    assert.equal(await stopServer(server), 0);
    server = undefined;
  });

  it('a flag replaces the file key; limits.maxServerTransactions takes effect', async () => {
    const file = join(dir, 'flags.yaml');
    writeFileSync(
      file,
      [
        `dataDir: ${JSON.stringify(dataDir)}`,
        'listen: [tcp:127.0.0.1:0]',
        'logLevel: debug',
        'limits: {maxServerTransactions: 1}',
        '',
      ].join('\n'),
    );
    server = await serve([
      '--config',
      file,
      '--listen',
      'udp:127.0.0.1:0',
      '--log-level',
      'silent',
    ]);
    assert.deepEqual(Object.keys(server.ports), ['udp']);
    const first = await send(client, request(client, 'OPTIONS'), 'udp', server.port);
    assert.equal(first.status, 200);
    // The first transaction lingers in Completed (Timer J, RFC 3261 §17.2.2): the table is
    // full, so the next request is refused with 503 and Retry-After (§21.5.4).
    const second = await send(client, request(client, 'OPTIONS'), 'udp', server.port);
    assert.equal(second.status, 503);
    assert.ok(second.getRaw('Retry-After') !== undefined);
    assert.equal(server.stderr(), '', 'log level silent (the flag) over debug (the file)');
    assert.equal(await stopServer(server), 0);
    server = undefined;
  });

  it('limits.maxHeaderBytes and limits.maxConnectionsPerIp take effect', async () => {
    const file = join(dir, 'limits.yaml');
    writeFileSync(
      file,
      [
        'listen: [udp:127.0.0.1:0, tcp:127.0.0.1:0]',
        'limits: {maxHeaderBytes: 1024, maxConnectionsPerIp: 1}',
        '',
      ].join('\n'),
    );
    server = await serve(['--config', file, '--data-dir', dataDir]);
    // A header section over 1024 octets is dropped (the parser keeps none of it to answer).
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    const answers: string[] = [];
    sock.on('message', (m) => answers.push(m.toString('latin1')));
    const raw = (branch: string, pad: number): string =>
      [
        'OPTIONS sip:example.com SIP/2.0',
        `Via: SIP/2.0/UDP 127.0.0.1:${sock.address().port};branch=z9hG4bK${branch};rport`,
        'From: <sip:x@example.com>;tag=1',
        'To: <sip:example.com>',
        `Call-ID: ${branch}`,
        'CSeq: 1 OPTIONS',
        'Max-Forwards: 70',
        `X-Padding: ${'p'.repeat(pad)}`,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
    sock.send(raw('long', 1100), server.ports.udp!, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(answers, []);
    sock.send(raw('short', 100), server.ports.udp!, '127.0.0.1');
    await within(
      (async () => {
        while (answers.length === 0) await new Promise((r) => setTimeout(r, 20));
      })(),
      5_000,
      'the answer to a request under the limit',
    );
    assert.match(answers[0]!, /^SIP\/2\.0 200 /);
    sock.close();

    // One connection from 127.0.0.1 is allowed; the second is closed at once.
    const first = netConnect({ host: '127.0.0.1', port: server.ports.tcp! });
    await within(new Promise((r) => first.once('connect', r)), 5_000, 'first connection');
    const second = netConnect({ host: '127.0.0.1', port: server.ports.tcp! });
    second.on('error', () => {});
    await within(
      new Promise((r) => second.once('close', r)),
      5_000,
      'the second connection closed',
    );
    assert.equal(first.destroyed, false);
    first.destroy();
    assert.equal(await stopServer(server), 0);
    server = undefined;
  });

  it('registrar.purgeInterval: expired bindings are deleted from the store', async () => {
    const file = join(dir, 'purge.yaml');
    writeFileSync(
      file,
      [
        'listen: [udp:127.0.0.1:0]',
        'registrar: {minExpires: 1, defaultExpires: 1, purgeInterval: 0.2}',
        '',
      ].join('\n'),
    );
    server = await serve(['--config', file, '--data-dir', dataDir]);
    const r = await send(
      client,
      request(client, 'REGISTER', { contact: '<sip:alice@127.0.0.1:7002>', expires: 1 }),
      'udp',
      server.port,
      'secret',
    );
    assert.equal(r.status, 200);
    const rows = async (): Promise<number> => {
      const store = openSqliteStore(dataDir);
      try {
        // every row, expired or not (list at time 0); test 1's bindings are still live
        const all = await store.location.list(0);
        return all.filter((b) => b.contact === 'sip:alice@127.0.0.1:7002').length;
      } finally {
        await store.close();
      }
    };
    assert.ok((await rows()) >= 1);
    await within(
      (async () => {
        while ((await rows()) > 0) await new Promise((res) => setTimeout(res, 100));
      })(),
      10_000,
      'the expired binding to be purged',
    );
    assert.equal(await stopServer(server), 0);
    server = undefined;
  });
});

describe('switchboard serve: TLS from --tls-cert/--tls-key', { timeout: 60_000 }, () => {
  let certs: TestCerts;
  let dir: string;
  before(() => {
    certs = makeCerts();
    dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
    writeFileSync(join(dir, 'cert.pem'), certs.cert);
    writeFileSync(join(dir, 'key.pem'), certs.key);
  });
  after(() => {
    certs?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a tls: listener serves the certificate; OPTIONS over TLS gets 200', async () => {
    const server = await serve([
      '--data-dir',
      join(dir, 'data'),
      '--domain',
      'example.com',
      '--listen',
      'tls:127.0.0.1:0',
      '--tls-cert',
      join(dir, 'cert.pem'),
      '--tls-key',
      join(dir, 'key.pem'),
      '--log-level',
      'warn',
    ]);
    const client = await createStack({
      listen: [{ listen: 'tls:127.0.0.1:0', clientOnly: true }],
      // createStack passes the trust anchors on only with a certificate of its own.
      tls: { cert: certs.cert, key: certs.key, ca: certs.ca },
    });
    try {
      const r = await send(client, request(client, 'OPTIONS'), 'tls', server.ports.tls!);
      assert.equal(r.status, 200);
    } finally {
      await client.close();
      assert.equal(await stopServer(server), 0);
    }
  });

  it('certificate problems: one line naming the key or flag, exit 1', () => {
    const run = (args: string[]): { status: number | null; stderr: string } => {
      const r = spawnSync(
        process.execPath,
        [BIN, 'serve', '--data-dir', join(dir, 'data'), ...args],
        {
          encoding: 'utf8',
          timeout: 20_000,
        },
      );
      return { status: r.status, stderr: r.stderr };
    };
    const cases: [string[], RegExp][] = [
      [
        ['--listen', 'tls:127.0.0.1:0'],
        /^switchboard: serve: --listen: tls:127\.0\.0\.1:0 needs a certificate/,
      ],
      [
        [
          '--listen',
          'tls:127.0.0.1:0',
          '--tls-cert',
          join(dir, 'nope.pem'),
          '--tls-key',
          join(dir, 'key.pem'),
        ],
        /^switchboard: serve: --tls-cert: cannot read .*nope\.pem: no such file\n$/,
      ],
      [
        // the key given as the certificate
        [
          '--listen',
          'tls:127.0.0.1:0',
          '--tls-cert',
          join(dir, 'key.pem'),
          '--tls-key',
          join(dir, 'key.pem'),
        ],
        /^switchboard: serve: --tls-cert: not a usable PEM certificate chain and private key/,
      ],
    ];
    for (const [args, expected] of cases) {
      const r = run(args);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, expected);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    writeFileSync(
      join(dir, 'tls.yaml'),
      'listen: [wss:127.0.0.1:0]\ntls: {cert: missing.pem, key: key.pem}\n',
    );
    const r = run(['--config', join(dir, 'tls.yaml')]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^switchboard: config: tls\.cert: cannot read .*missing\.pem: no such file\n$/,
    );
  });
});

describe('switchboard serve --config: start-up errors', { timeout: 60_000 }, () => {
  it('a bad key: one line naming it, exit 1, nothing bound or created', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-config-err-'));
    try {
      const cases: [string, RegExp][] = [
        [
          'listen:\n  - udp:127.0.0.1:0\n  - sctp:127.0.0.1:0\n',
          /^switchboard: config: listen\[1\]: expected PROTO:HOST:PORT .*"sctp:127\.0\.0\.1:0"/,
        ],
        [
          'registrar:\n  minExpire: 30\n',
          /^switchboard: config: registrar\.minExpire: unknown key/,
        ],
        ['logLevel: [info]\n', /^switchboard: config: logLevel: expected one of/],
        ['listen: udp:127.0.0.1:0\n', /^switchboard: config: listen: expected a list, got string/],
        ['listen: [\n', /^switchboard: config: .*bad\.yaml line \d+, column \d+: /],
      ];
      for (const [text, expected] of cases) {
        const file = join(dir, 'bad.yaml');
        writeFileSync(file, `dataDir: data\n${text}`);
        const r = spawnSync(process.execPath, [BIN, 'serve', '--config', file], {
          encoding: 'utf8',
          timeout: 20_000,
        });
        assert.equal(r.status, 1, text + r.stderr);
        assert.equal(r.stdout, '');
        assert.match(r.stderr, expected);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      }
      const missing = spawnSync(
        process.execPath,
        [BIN, 'serve', '--config', join(dir, 'no.yaml')],
        {
          encoding: 'utf8',
          timeout: 20_000,
        },
      );
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /^switchboard: config: cannot read .*no\.yaml: no such file\n$/);
      // The store was never opened: no data dir next to the file.
      assert.equal(existsSync(join(dir, 'data')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
