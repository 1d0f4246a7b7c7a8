/**
 * `switchboard message send|list` through run() (the command's code, streams injected) on a
 * temporary --data-dir, and once through the real command (bin/switchboard.js).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { run, type CliIo } from '../../../src/cli/main.ts';
import { credentialsFor } from '../../../src/cli/aor.ts';
import { openSqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { BIN } from '../../support/server.ts';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: readonly string[]): Promise<Result> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (t: string) => (stdout += t) },
    stderr: { write: (t: string) => (stderr += t) },
    stdin: (async function* () {})(),
  };
  const code = await run(args, io);
  return { code, stdout, stderr };
}

function failed(r: Result, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit ${code} expected; stderr: ${r.stderr}`);
  assert.match(r.stderr, /^switchboard: [^\n]*\n$/);
  assert.match(r.stderr, pattern);
  assert.equal(r.stdout, '');
}

describe('switchboard message', () => {
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-message-cli-'));
    const store = openSqliteStore(dir);
    await store.domains.add('example.com');
    await store.users.add('sip:bob@example.com', credentialsFor('bob', 'example.com', 'pw'));
    await store.close();
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('send queues a text/plain message; list shows what waits, oldest first (text and JSON)', async () => {
    const r1 = await cli([
      'message',
      'send',
      'ops@example.com',
      'bob@example.com',
      'first',
      '--data-dir',
      dir,
    ]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.match(r1.stdout, /^queued message \d+ for sip:bob@example\.com\n$/);
    const r2 = await cli([
      'message',
      'send',
      'sip:ops@example.com',
      'bob@example.com',
      'ünïcode',
      '--data-dir',
      dir,
    ]);
    assert.equal(r2.code, 0, r2.stderr);
    const list = await cli(['message', 'list', 'bob@example.com', '--data-dir', dir]);
    assert.equal(list.code, 0);
    const lines = list.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /\t<sip:ops@example\.com>\ttext\/plain;charset=UTF-8\t"first"$/);
    assert.match(lines[1]!, /"ünïcode"$/);
    const json = await cli(['message', 'list', 'sip:bob@example.com', '--json', '--data-dir', dir]);
    const rows = JSON.parse(json.stdout) as { text: string; to: string; aor: string }[];
    assert.deepEqual(
      rows.map((r) => r.text),
      ['first', 'ünïcode'],
    );
    assert.equal(rows[0]!.to, '<sip:bob@example.com>');
    const empty = await cli(['message', 'list', 'carol@example.com', '--data-dir', dir]);
    assert.equal(empty.code, 0);
    assert.equal(empty.stdout, '');
  });

  it('a bad AOR, an unknown recipient, a missing TEXT: one error line, non-zero exit', async () => {
    failed(
      await cli([
        'message',
        'send',
        'ops@example.com',
        'nobody@example.com',
        'hi',
        '--data-dir',
        dir,
      ]),
      2,
      /no user sip:nobody@example\.com/,
    );
    failed(
      await cli(['message', 'send', 'not a uri', 'bob@example.com', 'hi', '--data-dir', dir]),
      1,
      /FROM: invalid AOR/,
    );
    failed(
      await cli(['message', 'send', 'ops@example.com', 'tel:+1555', 'hi', '--data-dir', dir]),
      1,
      /TO: invalid AOR/,
    );
    failed(
      await cli(['message', 'send', 'ops@example.com', 'bob@example.com', '--data-dir', dir]),
      1,
      /expected FROM TO TEXT/,
    );
    failed(await cli(['message', 'list', '--data-dir', dir]), 1, /missing AOR/);
    failed(await cli(['message', 'frob', '--data-dir', dir]), 1, /unknown subcommand/);
  });

  it('--config gives the quota and lifetime', async () => {
    const file = join(dir, 'switchboard.yaml');
    writeFileSync(file, `dataDir: ${dir}\nmessaging:\n  quota: 1\n  lifetime: 60\n`);
    const store = openSqliteStore(dir);
    await store.users.add('sip:dave@example.com', credentialsFor('dave', 'example.com', 'pw'));
    await store.close();
    const ok = await cli([
      'message',
      'send',
      'ops@example.com',
      'dave@example.com',
      'one',
      '--config',
      file,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const json = await cli(['message', 'list', 'dave@example.com', '--json', '--data-dir', dir]);
    const [row] = JSON.parse(json.stdout) as { receivedAt: string; expiresAt: string }[];
    assert.equal(Date.parse(row!.expiresAt) - Date.parse(row!.receivedAt), 60_000);
    failed(
      await cli([
        'message',
        'send',
        'ops@example.com',
        'dave@example.com',
        'two',
        '--config',
        file,
      ]),
      1,
      /messaging\.quota/,
    );
  });

  it('the real command', () => {
    const r = spawnSync(
      process.execPath,
      [BIN, 'message', 'send', 'ops@example.com', 'bob@example.com', 'via bin', '--data-dir', dir],
      { encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^queued message \d+ for sip:bob@example\.com\n$/);
  });
});
