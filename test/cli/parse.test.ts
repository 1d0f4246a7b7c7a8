/**
 * `switchboard parse` end to end: the real command (node bin/switchboard.js) on the
 * golden messages of test/fixtures/messages/{good,bad}, on standard input, and on a
 * corpus message; plus `run()` in-process for the usage paths.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { conformanceDir } from '../conformance/corpus.ts';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const BIN = join(root, 'bin/switchboard.js');
const GOOD = join(root, 'test/fixtures/messages/good');
const BAD = join(root, 'test/fixtures/messages/bad');

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node <args>` from the repository root, feeding `input` to standard input. */
function node(args: readonly string[], input?: Uint8Array): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: 'pipe' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) =>
      resolvePromise({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.end(input === undefined ? undefined : Buffer.from(input));
  });
}

function cli(args: readonly string[], input?: Uint8Array): Promise<CliResult> {
  return node([BIN, ...args], input);
}

interface HeaderJson {
  name: string;
  key: string;
  value: string;
  decoded?: any;
}

function json(r: CliResult): any {
  assert.equal(r.code, 0, `exit 0 expected; stderr: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return JSON.parse(r.stdout);
}

function header(j: any, key: string): HeaderJson {
  const h = (j.headers as HeaderJson[]).find((x) => x.key === key);
  assert.ok(h, `header ${key}`);
  return h;
}

// Each run starts node and tsx (~0.5 s of CPU): run as many at once as there are CPUs.
describe('switchboard parse (the real command)', { concurrency: availableParallelism() }, () => {
  it('good/invite.sip: request JSON with decoded headers and a UTF-8 body', async () => {
    const j = json(await cli(['parse', join(GOOD, 'invite.sip')]));
    assert.equal(j.kind, 'request');
    assert.equal(j.method, 'INVITE');
    assert.equal(j.uri, 'sip:bob@example.com');
    assert.equal(j.version, 'SIP/2.0');
    assert.equal(j.status, undefined);
    assert.deepEqual(
      (j.headers as HeaderJson[]).map((h) => h.name),
      [
        'Via',
        'Max-Forwards',
        'To',
        'From',
        'Call-ID',
        'CSeq',
        'Contact',
        'Content-Type',
        'Content-Length',
      ],
    );
    const via = header(j, 'via');
    assert.equal(via.value, 'SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport');
    assert.equal(via.decoded[0].branch, 'z9hG4bK776asdhds');
    assert.equal(via.decoded[0].port, 5060);
    assert.equal(via.decoded[0].rport, null);
    assert.equal(header(j, 'from').decoded.displayName, 'Alice "A" Liddell');
    assert.equal(header(j, 'from').decoded.tag, '1928301774');
    assert.deepEqual(header(j, 'cseq').decoded, { seq: 314159, method: 'INVITE' });
    assert.equal(header(j, 'max-forwards').decoded, 70);
    assert.equal(header(j, 'contact').decoded[0].uri.host, '192.0.2.10');
    const bytes = readFileSync(join(GOOD, 'invite.sip'));
    const bodyText = bytes.toString('utf8').split('\r\n\r\n').slice(1).join('\r\n\r\n');
    assert.equal(j.body.text, bodyText);
    assert.equal(j.body.length, Buffer.byteLength(bodyText));
    assert.equal(j.body.base64, undefined);
  });

  it('good/register.sip: compact names map to keys; Contact list and Expires decode', async () => {
    const j = json(await cli(['parse', join(GOOD, 'register.sip')]));
    assert.equal(j.method, 'REGISTER');
    assert.deepEqual(
      (j.headers as HeaderJson[]).map((h) => [h.name, h.key]),
      [
        ['v', 'via'],
        ['Max-Forwards', 'max-forwards'],
        ['t', 'to'],
        ['f', 'from'],
        ['i', 'call-id'],
        ['CSeq', 'cseq'],
        ['m', 'contact'],
        ['Expires', 'expires'],
        ['l', 'content-length'],
      ],
    );
    assert.equal(header(j, 'via').decoded[0].host, '[2001:db8::5]');
    assert.equal(header(j, 'via').decoded[0].transport, 'TCP');
    const contacts = header(j, 'contact').decoded;
    assert.equal(contacts.length, 2);
    assert.equal(contacts[0].uri.host, '[2001:db8::5]');
    assert.equal(contacts[0].uri.port, 5060);
    assert.deepEqual(contacts[0].params, [
      { name: 'expires', value: '3600' },
      { name: 'q', value: '0.7' },
    ]);
    assert.equal(header(j, 'expires').decoded, 7200);
    assert.deepEqual(j.body, { length: 0, text: '' });
  });

  it('good/response-200.sip: response JSON', async () => {
    const j = json(await cli(['parse', join(GOOD, 'response-200.sip')]));
    assert.equal(j.kind, 'response');
    assert.equal(j.status, 200);
    assert.equal(j.reason, 'OK');
    assert.equal(j.version, 'SIP/2.0');
    assert.equal(j.method, undefined);
    assert.equal(j.uri, undefined);
    assert.equal(header(j, 'to').decoded.tag, 'a6c85cf');
    assert.equal(header(j, 'via').decoded[0].received, '192.0.2.3');
  });

  it('good/options-folded.sip: folded values unfolded; unknown headers have no decoded', async () => {
    const j = json(await cli(['parse', join(GOOD, 'options-folded.sip')]));
    assert.equal(header(j, 'cseq').value, '63104 OPTIONS');
    assert.deepEqual(header(j, 'cseq').decoded, { seq: 63104, method: 'OPTIONS' });
    assert.equal(header(j, 'subject').value, 'lunch at noon');
    const custom = header(j, 'x-custom-header');
    assert.equal(custom.name, 'X-Custom-Header');
    assert.equal(custom.value, 'some   value ;with=params');
    assert.equal('decoded' in custom, false);
  });

  it('good/malformed-contact.sip: a malformed non-critical header decodes to {error}', async () => {
    const j = json(await cli(['parse', join(GOOD, 'malformed-contact.sip')]));
    const contact = header(j, 'contact');
    assert.equal(typeof contact.decoded.error, 'string');
    assert.ok(contact.decoded.error.length > 0);
  });

  it('good/message-binary-body.sip: a body that is not UTF-8 is printed as base64', async () => {
    const j = json(await cli(['parse', join(GOOD, 'message-binary-body.sip')]));
    assert.equal(j.body.text, undefined);
    assert.deepEqual(
      [...Buffer.from(j.body.base64, 'base64')],
      [0x00, 0xff, 0xfe, 0x0a, 0x41, 0x0d, 0x0a, 0x80, 0x7f, 0x42],
    );
    assert.equal(j.body.length, 10);
  });

  it('good/no-content-length.sip: datagram framing, the body is the rest of the input', async () => {
    const j = json(await cli(['parse', join(GOOD, 'no-content-length.sip')]));
    assert.deepEqual(j.body, { length: 13, text: 'Hello, Bob.\r\n' });
  });

  const rejected: [string, RegExp][] = [
    [
      'cseq-overflow.sip',
      /^400 Bad Request: CSeq: sequence number above 2\*\*32-1 \(SB_ERR_PARSE_CSEQ\)\n$/,
    ],
    ['version.sip', /^505 Version Not Supported: .*SIP\/3\.0.* \(SB_ERR_PARSE_VERSION\)\n$/],
    ['missing-call-id.sip', /^400 Bad Request: missing Call-ID \(SB_ERR_MISSING_HEADER\)\n$/],
    ['body-truncated.sip', /^400 Bad Request: Content-Length 100 .* \(SB_ERR_BODY_TRUNCATED\)\n$/],
    ['status-code.sip', /^400 Bad Request: .*1000.* \(SB_ERR_PARSE_STATUS_CODE\)\n$/],
  ];
  for (const [file, line] of rejected) {
    it(`bad/${file}: exit 2, one line "status reason: detail (code)" on stderr`, async () => {
      const r = await cli(['parse', join(BAD, file)]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, line);
    });
  }

  it('parse - reads standard input (same JSON as from the file)', async () => {
    const file = join(GOOD, 'invite.sip');
    const [fromFile, fromStdin] = await Promise.all([
      cli(['parse', file]),
      cli(['parse', '-'], readFileSync(file)),
    ]);
    assert.deepEqual(json(fromStdin), json(fromFile));
  });

  it('a missing file: exit 1, one clear line on stderr', async () => {
    const r = await cli(['parse', join(GOOD, 'no-such-file.sip')]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^switchboard: cannot read .*no-such-file\.sip: no such file\n$/);
  });

  it('--help prints the usage on stdout, exit 0', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: switchboard <command>/);
    assert.match(r.stdout, /parse FILE/);
    assert.equal(r.stderr, '');
  });

  it('serve --help: the usage, exit 0 (the server itself is tested in test/integration/server)', async () => {
    const r = await cli(['serve', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /Usage: switchboard/);
    assert.match(r.stdout, /serve \[--config FILE\] \[--data-dir DIR\]/);
  });

  it('serve from the sources (node --import tsx src/cli/main.ts serve) serves until SIGTERM, then exits 0', async () => {
    // Loopback and port 0 instead of the defaults (0.0.0.0:5060), and a temporary data dir.
    const dir = mkdtempSync(join(tmpdir(), 'sb-start-'));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/main.ts',
        'serve',
        '--data-dir',
        dir,
        '--domain',
        'example.com',
      ].concat(['--listen', 'udp:127.0.0.1:0']),
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      await new Promise<void>((r) => {
        const check = (): void => {
          if (/listening udp:127\.0\.0\.1:\d+/.test(out)) r();
        };
        child.stdout.on('data', check);
        void exited.then(() => r());
      });
      assert.match(out, /listening udp:127\.0\.0\.1:\d+/);
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unknown command: usage on stderr, exit 1', async () => {
    const r = await cli(['frobnicate']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.match(r.stderr, /Usage: switchboard/);
  });

  const badvers = join(conformanceDir(), 'rfc4475', 'badvers.dat');
  it(
    'corpus badvers.dat (RFC 4475 §3.1.2.16): exit 2 with 505',
    { skip: existsSync(badvers) ? false : `corpus not found: ${badvers}` },
    async () => {
      const r = await cli(['parse', badvers]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^505 Version Not Supported: .* \(SB_ERR_PARSE_VERSION\)\n$/);
    },
  );
});

describe('run() in-process', () => {
  function fakeIo(stdin: string[] = []) {
    let out = '';
    let err = '';
    return {
      io: {
        stdout: { write: (s: string) => (out += s) },
        stderr: { write: (s: string) => (err += s) },
        stdin: Readable.from(stdin.map((s) => Buffer.from(s))),
      },
      out: () => out,
      err: () => err,
    };
  }

  it('importing src/cli/main.ts has no side effect', async () => {
    const before = process.exitCode;
    await import('../../src/cli/main.ts');
    assert.equal(process.exitCode, before);
  });

  it('parses standard input given as chunks', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const text = readFileSync(join(GOOD, 'response-200.sip'), 'latin1');
    const f = fakeIo([text.slice(0, 17), text.slice(17)]);
    assert.equal(await run(['parse', '-'], f.io), 0);
    assert.equal(JSON.parse(f.out()).status, 200);
    assert.equal(f.err(), '');
  });

  it('no command: usage on stderr, exit 1', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const f = fakeIo();
    assert.equal(await run([], f.io), 1);
    assert.match(f.err(), /^Usage: switchboard/);
    assert.equal(f.out(), '');
  });

  it('--stream with another command: exit 1', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const f = fakeIo();
    assert.equal(await run(['serve', '--stream'], f.io), 1);
    assert.match(f.err(), /--stream applies to "parse" only/);
  });

  it('a read error other than ENOENT is one line, exit 1', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const f = fakeIo();
    const io = {
      ...f.io,
      readFile: () => Promise.reject(Object.assign(new Error('boom'), { code: 'EIO' })),
    };
    assert.equal(await run(['parse', 'x.sip'], io), 1);
    assert.equal(f.err(), 'switchboard: cannot read x.sip: boom\n');
  });

  it('help, -h and --help print the usage on stdout, exit 0', async () => {
    const { run } = await import('../../src/cli/main.ts');
    for (const argv of [['help'], ['-h'], ['parse', '--help']]) {
      const f = fakeIo();
      assert.equal(await run(argv, f.io), 0, argv.join(' '));
      assert.match(f.out(), /^Usage: switchboard <command>/);
      assert.equal(f.err(), '');
    }
  });

  it('parse without FILE, or with two: exit 1', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const none = fakeIo();
    assert.equal(await run(['parse'], none.io), 1);
    assert.match(none.err(), /missing FILE/);
    const two = fakeIo();
    assert.equal(await run(['parse', 'a.sip', 'b.sip'], two.io), 1);
    assert.match(two.err(), /one FILE only/);
  });

  it('an unknown option: exit 1, naming it', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const f = fakeIo();
    assert.equal(await run(['parse', '--frob', 'x.sip'], f.io), 1);
    assert.match(f.err(), /--frob/);
    assert.equal(f.out(), '');
  });

  it('parse - with a message a server rejects: exit 2, nothing on stdout', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const f = fakeIo([readFileSync(join(BAD, 'cseq-overflow.sip'), 'latin1')]);
    assert.equal(await run(['parse', '-'], f.io), 2);
    assert.match(f.err(), /^400 Bad Request: .*\(SB_ERR_PARSE_CSEQ\)\n$/);
    assert.equal(f.out(), '');
  });

  it('parse - with empty standard input: exit 2 (empty message)', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const f = fakeIo([]);
    assert.equal(await run(['parse', '-'], f.io), 2);
    assert.match(f.err(), /SB_ERR_PARSE_EMPTY/);
  });

  it('--stream selects stream framing: a header section without its empty line is incomplete', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const text = readFileSync(join(GOOD, 'register.sip'), 'latin1');
    assert.ok(text.endsWith('\r\n\r\n'));
    const cut = text.slice(0, -2); // ends after "l: 0\r\n"
    const dgram = fakeIo([cut]);
    assert.equal(await run(['parse', '-'], dgram.io), 0, dgram.err());
    const stream = fakeIo([cut]);
    assert.equal(await run(['parse', '--stream', '-'], stream.io), 2);
    assert.match(stream.err(), /SB_ERR_PARSE_HEADERS_UNTERMINATED/);
  });

  it('--stream without Content-Length: the body is empty (ParseOptions doc, RFC 3261 §18.3)', async () => {
    const { run } = await import('../../src/cli/main.ts');
    const f = fakeIo([readFileSync(join(GOOD, 'no-content-length.sip'), 'latin1')]);
    assert.equal(await run(['parse', '--stream', '-'], f.io), 0);
    assert.deepEqual(JSON.parse(f.out()).body, { length: 0, text: '' });
  });
});
