/**
 * `switchboard registrations`: bindings put in a temporary store, listed in-process
 * through `run()` (with a fixed "now") as a table and as JSON, and once through the
 * real command.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli/main.ts';
import { runRegistrations, type RegistrationJson } from '../../src/cli/registrations.ts';
import type { Binding } from '../../src/store/index.ts';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.ts';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const BIN = join(root, 'bin/switchboard.js');

const NOW = Date.UTC(2025, 0, 1, 12, 0, 0);

function fakeIo() {
  let out = '';
  let err = '';
  return {
    io: {
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
      stdin: Readable.from([]),
    },
    out: () => out,
    err: () => err,
  };
}

const alice1: Binding = {
  aor: 'sip:alice@example.com',
  contact: 'sip:alice@192.0.2.10:5060',
  expiresAt: NOW + 3_600_000,
  q: 1,
  callId: 'c1@192.0.2.10',
  cseq: 7,
  path: [],
  received: 'udp:192.0.2.10:5060',
  userAgent: 'baresip 3.0',
};
const alice2: Binding = {
  aor: 'sip:alice@example.com',
  contact: 'sip:alice@192.0.2.11;transport=tcp',
  expiresAt: NOW + 119_600,
  q: 0.5,
  callId: 'c2@192.0.2.11',
  cseq: 1,
  path: ['<sip:edge.example.com;lr>', '<sip:p2.example.com;lr>'],
  instance: '<urn:uuid:00000000-0000-1000-8000-000A95A0E128>',
  regId: 1,
  received: 'tcp:192.0.2.11:40000',
  userAgent: 'evil\u001b[31m UA',
};
const bob: Binding = {
  aor: 'sip:bob@example.com',
  contact: 'sip:bob@192.0.2.20',
  expiresAt: NOW + 60_000,
  q: 1,
  callId: 'c3@192.0.2.20',
  cseq: 1,
  path: [],
};
const expired: Binding = { ...bob, contact: 'sip:bob@192.0.2.21', expiresAt: NOW };

describe('switchboard registrations', () => {
  let dir: string;
  let dataDir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-regs-'));
    dataDir = join(dir, 'data');
    const store = openSqliteStore(dataDir);
    for (const b of [bob, alice2, expired, alice1]) await store.location.upsert(b);
    await store.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const list = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
    const f = fakeIo();
    const code = await runRegistrations(args, f.io, { now: () => NOW });
    return { code, out: f.out(), err: f.err() };
  };

  it('a table: a header line, then one live binding a line (by AOR, then q)', async () => {
    const r = await list(['--data-dir', dataDir]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err, '');
    const lines = r.out.trimEnd().split('\n');
    assert.equal(lines.length, 4, r.out); // header + 3 live; the expired one is not shown
    assert.match(
      lines[0]!,
      /^AOR +CONTACT +EXPIRES +Q +RECEIVED +INSTANCE +REG-ID +PATH +USER-AGENT$/,
    );
    assert.match(
      lines[1]!,
      /^sip:alice@example\.com +sip:alice@192\.0\.2\.10:5060 +3600s +1 +udp:192\.0\.2\.10:5060 +- +- +- +baresip 3\.0$/,
    );
    assert.match(lines[2]!, /^sip:alice@example\.com +sip:alice@192\.0\.2\.11;transport=tcp +120s/);
    assert.match(
      lines[2]!,
      / 0\.5 +tcp:192\.0\.2\.11:40000 +<urn:uuid:0+-0000-1000-8000-000A95A0E128>/,
    );
    assert.match(lines[2]!, / 1 +<sip:edge\.example\.com;lr>,<sip:p2\.example\.com;lr> /);
    // A control character from the network is shown escaped, never sent to the terminal.
    assert.match(lines[2]!, /evil\\x1b\[31m UA$/);
    assert.equal(r.out.includes('\u001b'), false);
    assert.match(lines[3]!, /^sip:bob@example\.com +sip:bob@192\.0\.2\.20 +60s +1 +- +- +- +- +-$/);
    // columns line up
    const col = lines[0]!.indexOf('CONTACT');
    for (const l of lines.slice(1)) assert.equal(l.indexOf('sip:', 4), col, l);
  });

  it('--json: an array with every field (null when absent)', async () => {
    const r = await list(['--json', '--data-dir', dataDir]);
    assert.equal(r.code, 0, r.err);
    const rows = JSON.parse(r.out) as RegistrationJson[];
    assert.equal(rows.length, 3);
    assert.deepEqual(rows[1], {
      aor: 'sip:alice@example.com',
      contact: 'sip:alice@192.0.2.11;transport=tcp',
      expires: 120,
      expiresAt: new Date(NOW + 119_600).toISOString(),
      q: 0.5,
      received: 'tcp:192.0.2.11:40000',
      userAgent: 'evil\u001b[31m UA',
      path: ['<sip:edge.example.com;lr>', '<sip:p2.example.com;lr>'],
      instance: '<urn:uuid:00000000-0000-1000-8000-000A95A0E128>',
      regId: 1,
      callId: 'c2@192.0.2.11',
      cseq: 1,
    });
    assert.deepEqual(
      { received: rows[2]!.received, userAgent: rows[2]!.userAgent, instance: rows[2]!.instance },
      { received: null, userAgent: null, instance: null },
    );
    assert.equal(rows[2]!.regId, null);
  });

  it('--aor (user@domain or a sip: URI, domain case-insensitive) filters', async () => {
    const a = await list(['--aor', 'alice@EXAMPLE.com', '--json', '--data-dir', dataDir]);
    assert.deepEqual(
      (JSON.parse(a.out) as RegistrationJson[]).map((b) => b.contact),
      [alice1.contact, alice2.contact],
    );
    const b = await list(['--aor', 'sip:bob@example.com', '--data-dir', dataDir]);
    assert.equal(b.out.trimEnd().split('\n').length, 2);
    const none = await list(['--aor', 'carol@example.com', '--data-dir', dataDir]);
    assert.equal(none.out, 'no registrations for sip:carol@example.com\n');
    const noneJson = await list(['--aor', 'carol@example.com', '--json', '--data-dir', dataDir]);
    assert.deepEqual(JSON.parse(noneJson.out), []);
  });

  it('an empty store: "no registrations"', async () => {
    const r = await list(['--data-dir', join(dir, 'empty')]);
    assert.equal(r.code, 0);
    assert.equal(r.out, 'no registrations\n');
  });

  it('usage errors: one line on stderr, exit 1', async () => {
    for (const args of [
      ['--aor', 'not a uri', '--data-dir', dataDir],
      ['--aor', 'sip:example.com', '--data-dir', dataDir],
      ['--bogus'],
      ['stray'],
    ]) {
      const r = await list(args);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.out, '');
      assert.match(r.err, /^switchboard: registrations: [^\n]+\n$/, args.join(' '));
    }
  });

  it('through run() and the real command', async () => {
    const f = fakeIo();
    assert.equal(await run(['registrations', '--json', '--data-dir', dataDir], f.io), 0);
    assert.ok(Array.isArray(JSON.parse(f.out())));
    const h = fakeIo();
    assert.equal(await run(['registrations', '--help'], h.io), 0);
    assert.match(h.out(), /registrations \[--aor AOR\] \[--json\]/);
    const live = join(dir, 'live');
    const store = openSqliteStore(live);
    await store.location.upsert({ ...bob, expiresAt: Date.now() + 600_000 });
    await store.close();
    const r = spawnSync(
      process.execPath,
      [BIN, 'registrations', '--aor', 'bob@example.com', '--data-dir', live],
      { cwd: root, encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^AOR /);
    assert.match(r.stdout, /\nsip:bob@example\.com +sip:bob@192\.0\.2\.20 +(5\d\d|600)s /);
  });
});
