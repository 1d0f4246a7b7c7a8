/**
 * The first run of `switchboard serve` (README: `npm install && npm start`): no data
 * dir yet, no domain, no user. The server creates the store, serves the host name, and
 * prints what to do next, with a command that works as printed (`npx switchboard` under
 * `npm start`, whose npm sets npm_lifecycle_event=start). Loopback and port 0 instead of
 * the defaults; every wait is bounded.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, startServer, stopServer, within, type RunningServer } from '../../support/server.ts';

async function hint(s: RunningServer): Promise<string> {
  await within(
    (async () => {
      while (!/point a softphone/.test(s.stdout())) await new Promise((r) => setTimeout(r, 20));
    })(),
    10_000,
    'the first-run hint',
  );
  return s.stdout();
}

describe('switchboard serve: the first run', { timeout: 60_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sb-first-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('under npm start: a fresh data dir, the host name served, an npx command that works', async () => {
    const dataDir = join(dir, 'fresh', 'data');
    assert.equal(existsSync(dataDir), false);
    const s = await startServer({
      dataDir,
      domains: [],
      env: { ...process.env, npm_lifecycle_event: 'start' },
    });
    try {
      const out = await hint(s);
      assert.ok(existsSync(join(dataDir, 'switchboard.db')));
      const host = /^no domain configured: serving the host name (\S+)$/m.exec(out)?.[1];
      assert.ok(host !== undefined, out);
      assert.match(out, new RegExp(`^domains ${host.replace(/\./g, '\\.')}$`, 'm'));
      assert.match(out, /^No users yet\. Next steps:$/m);
      const line = /^ {2}npx switchboard (user add \S+ --password SECRET --data-dir \S+)$/m.exec(
        out,
      );
      assert.ok(line !== null, out);
      // The printed command, as printed (npx runs bin/switchboard.js in the project).
      const args = line[1]!.split(' ');
      assert.deepEqual(args.slice(0, 3), ['user', 'add', `alice@${host}`]);
      assert.equal(args.at(-1), dataDir);
      assert.match(cli(args), /^added sip:alice@/);
    } finally {
      assert.equal(await stopServer(s), 0);
    }
    // The next start has a user: no hint.
    const again = await startServer({ dataDir, domains: [] });
    try {
      assert.doesNotMatch(again.stdout(), /No users yet/);
    } finally {
      assert.equal(await stopServer(again), 0);
    }
  });

  it('run directly: the plain command name', async () => {
    const env = { ...process.env };
    delete env.npm_lifecycle_event; // `npm test` sets it to "test"
    const s = await startServer({ dataDir: join(dir, 'direct'), env });
    try {
      assert.match(
        await hint(s),
        /^ {2}switchboard user add alice@example\.com --password SECRET --data-dir /m,
      );
    } finally {
      assert.equal(await stopServer(s), 0);
    }
  });

  it('npm start is `switchboard serve` (the README first lines)', () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
      scripts: Record<string, string>;
    };
    // Compiled first (dist/, which bin/switchboard.js then runs), then `switchboard serve`.
    assert.equal(pkg.scripts.start, 'npm run build --silent && node bin/switchboard.js serve');
    assert.equal(pkg.scripts.build, 'tsc -p tsconfig.build.json');
    assert.match(readFileSync('README.md', 'utf8'), /^npm install && npm start +# /m);
  });
});
