/**
 * `switchboard user ...` and `switchboard domain ...` end to end: the real command
 * (node bin/switchboard.js) on a temporary --data-dir.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const BIN = join(root, 'bin/switchboard.js');

interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: root, stdio: 'pipe' });
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
    child.stdin.end();
  });
}

function ok(r: CliResult): string {
  assert.equal(r.code, 0, `exit 0 expected; stderr: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return r.stdout;
}

/** One line on stderr, starting "switchboard: ", and the exit code. */
function failed(r: CliResult, code: number, pattern: RegExp): void {
  assert.equal(r.code, code, `exit ${code} expected; stderr: ${r.stderr}`);
  assert.match(r.stderr, /^switchboard: [^\n]*\n$/);
  assert.match(r.stderr, pattern);
  assert.equal(r.stdout, '');
}

// Each test has its own data dir and files; each run starts node and tsx, so run them at once.
describe(
  'switchboard user / domain (the real command)',
  { concurrency: availableParallelism() },
  () => {
    let tmp: string;
    before(() => {
      tmp = mkdtempSync(join(tmpdir(), 'sb-cli-'));
    });
    after(() => rmSync(tmp, { recursive: true, force: true }));

    const fresh = (name: string): string => join(tmp, name, 'data');

    it('domain add / list / remove', async () => {
      const d = fresh('domains');
      assert.equal(
        ok(await cli(['domain', 'add', 'Example.COM', '--data-dir', d])),
        'added domain example.com\n',
      );
      ok(await cli(['domain', 'add', 'b.example', '--data-dir', d]));
      failed(await cli(['domain', 'add', 'example.com', '--data-dir', d]), 1, /already exists/);
      failed(await cli(['domain', 'add', 'bad domain', '--data-dir', d]), 1, /invalid domain name/);
      assert.equal(ok(await cli(['domain', 'list', '--data-dir', d])), 'b.example\nexample.com\n');
      assert.deepEqual(JSON.parse(ok(await cli(['domain', 'list', '--json', '--data-dir', d]))), [
        'b.example',
        'example.com',
      ]);
      ok(await cli(['domain', 'remove', 'b.example', '--data-dir', d]));
      failed(
        await cli(['domain', 'remove', 'b.example', '--data-dir', d]),
        2,
        /no domain b\.example/,
      );
      assert.equal(ok(await cli(['domain', 'list', '--data-dir', d])), 'example.com\n');
      assert.ok(readdirSync(d).includes('switchboard.db')); // the data dir was created
    });

    it('user add / list / passwd / remove', async () => {
      const d = fresh('users');
      failed(
        await cli(['user', 'add', 'alice@example.com', '--password', 'pw1', '--data-dir', d]),
        1,
        /domain example\.com is not configured.*switchboard domain add example\.com/,
      );
      ok(await cli(['domain', 'add', 'example.com', '--data-dir', d]));
      assert.equal(
        ok(await cli(['user', 'add', 'alice@example.com', '--password', 'pw1', '--data-dir', d])),
        'added sip:alice@example.com\n',
      );
      ok(await cli(['user', 'add', 'sip:bob@EXAMPLE.com', '--password', 'pw2', '--data-dir', d]));
      failed(
        await cli(['user', 'add', 'sip:alice@example.com', '--password', 'x', '--data-dir', d]),
        1,
        /already exists/,
      );
      failed(
        await cli(['user', 'add', 'carol@example.com', '--data-dir', d]),
        1,
        /missing --password/,
      );
      failed(
        await cli(['user', 'add', 'example.com', '--password', 'x', '--data-dir', d]),
        1,
        /invalid AOR "example\.com": no user part/,
      );
      assert.equal(
        ok(await cli(['user', 'list', '--data-dir', d])),
        'sip:alice@example.com\nsip:bob@example.com\n',
      );
      assert.deepEqual(JSON.parse(ok(await cli(['user', 'list', '--json', '--data-dir', d]))), [
        { aor: 'sip:alice@example.com', user: 'alice', domain: 'example.com' },
        { aor: 'sip:bob@example.com', user: 'bob', domain: 'example.com' },
      ]);
      assert.equal(
        ok(await cli(['user', 'list', '--domain', 'other.example', '--data-dir', d])),
        '',
      );
      assert.equal(
        ok(
          await cli(['user', 'passwd', 'alice@example.com', '--password', 'pw3', '--data-dir', d]),
        ),
        'password changed for sip:alice@example.com\n',
      );
      failed(
        await cli(['user', 'passwd', 'carol@example.com', '--password', 'x', '--data-dir', d]),
        2,
        /no user sip:carol@example\.com/,
      );
      failed(await cli(['domain', 'remove', 'example.com', '--data-dir', d]), 1, /still has users/);
      ok(await cli(['user', 'remove', 'bob@example.com', '--data-dir', d]));
      failed(await cli(['user', 'remove', 'bob@example.com', '--data-dir', d]), 2, /no user/);
      assert.equal(ok(await cli(['user', 'list', '--data-dir', d])), 'sip:alice@example.com\n');
      for (const f of readdirSync(d)) {
        const bytes = readFileSync(join(d, f));
        for (const pw of ['pw1', 'pw2', 'pw3']) assert.equal(bytes.includes(`:${pw}`), false);
      }
    });

    it('usage errors: unknown subcommand, stray option', async () => {
      const d = fresh('usage');
      failed(await cli(['user', 'frob', '--data-dir', d]), 1, /unknown subcommand "frob"/);
      failed(await cli(['user', '--data-dir', d]), 1, /missing subcommand/);
      failed(await cli(['user', 'list', '--password', 'x', '--data-dir', d]), 1, /--password/);
      failed(await cli(['domain', 'list', '--frob', '--data-dir', d]), 1, /--frob/);
      assert.match(ok(await cli(['user', '--help'])), /user import FILE\.csv/);
    });

    it('user import: 10,000 users from a CSV', async (t) => {
      const d = fresh('import');
      ok(await cli(['domain', 'add', 'example.com', '--data-dir', d]));
      const lines = ['aor,password'];
      for (let i = 0; i < 10_000; i++) lines.push(`user${i}@example.com,secret-${i}`);
      const file = join(tmp, 'users.csv');
      writeFileSync(file, lines.join('\n') + '\n');
      const start = performance.now();
      const out = ok(await cli(['user', 'import', file, '--data-dir', d]));
      const ms = performance.now() - start;
      t.diagnostic(`imported 10,000 users in ${ms.toFixed(0)} ms (including node + tsx start-up)`);
      assert.equal(out, 'imported 10000 users\n');
      const users = JSON.parse(ok(await cli(['user', 'list', '--json', '--data-dir', d])));
      assert.equal(users.length, 10_000);
    });

    it('user import: a bad row at line 7 imports nothing', async () => {
      const d = fresh('bad-import');
      ok(await cli(['domain', 'add', 'example.com', '--data-dir', d]));
      const rows = ['aor,password'];
      for (let i = 0; i < 5; i++) rows.push(`user${i}@example.com,pw${i}`);
      rows.push('not a valid aor,pw'); // line 7
      rows.push('user9@example.com,pw9');
      const file = join(tmp, 'bad.csv');
      writeFileSync(file, rows.join('\r\n') + '\r\n');
      const r = await cli(['user', 'import', file, '--data-dir', d]);
      failed(r, 1, /line 7: invalid AOR.*nothing imported/);
      assert.equal(ok(await cli(['user', 'list', '--data-dir', d])), '');

      const cases: [string, RegExp][] = [
        ['user7@example.com', /line 7: expected 2 fields/],
        ['user7@example.com,', /line 7: missing password/],
        [',pw', /line 7: missing aor/],
        ['user7@other.example,pw', /line 7: domain other\.example is not configured/],
        ['user0@example.com,again', /line 7: user sip:user0@example\.com appears twice/],
      ];
      for (const [row, pattern] of cases) {
        const lines = [...rows.slice(0, 6), row, rows[7]!];
        writeFileSync(file, lines.join('\n'));
        failed(await cli(['user', 'import', file, '--data-dir', d]), 1, pattern);
        assert.equal(ok(await cli(['user', 'list', '--data-dir', d])), '');
      }
      // A row that clashes with an existing user also refuses the whole file.
      ok(await cli(['user', 'add', 'user3@example.com', '--password', 'x', '--data-dir', d]));
      writeFileSync(file, rows.filter((_, i) => i !== 6).join('\n'));
      failed(
        await cli(['user', 'import', file, '--data-dir', d]),
        1,
        /line 5: user sip:user3@example\.com already exists/,
      );
      assert.equal(ok(await cli(['user', 'list', '--data-dir', d])), 'sip:user3@example.com\n');
      failed(
        await cli(['user', 'import', join(tmp, 'missing.csv'), '--data-dir', d]),
        1,
        /no such file/,
      );
    });
  },
);
