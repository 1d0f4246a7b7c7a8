/**
 * Running compiled: `npm run build` (tsconfig.build.json) turns src/ into dist/, and
 * bin/switchboard.js runs dist/ when it is at least as new as src/, the sources through tsx
 * otherwise. Two parts:
 * - the choice, on a copy of bin/switchboard.js in a scratch tree with stub entries;
 * - the real build, into a temporary directory, serving a request (an OPTIONS, RFC 3261
 *   §11) from the compiled code.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runNode(args: readonly string[], env: NodeJS.ProcessEnv = {}): Run {
  const r = spawnSync(process.execPath, args, {
    encoding: 'utf8',
    env: { ...process.env, SWITCHBOARD_RUN: '', ...env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bin/switchboard.js: compiled dist/ or the sources', () => {
  it('runs dist/ while it is as new as src/, the sources once src/ is newer; SWITCHBOARD_RUN decides when set', () => {
    const tree = mkdtempSync(join(tmpdir(), 'sb-bin-'));
    try {
      mkdirSync(join(tree, 'bin'));
      copyFileSync(join(root, 'bin/switchboard.js'), join(tree, 'bin/switchboard.js'));
      // tsx, for the sources' side.
      symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'), 'dir');
      writeFileSync(join(tree, 'package.json'), '{"type":"module"}\n');
      mkdirSync(join(tree, 'src/cli'), { recursive: true });
      writeFileSync(
        join(tree, 'src/cli/main.ts'),
        "export async function main(argv: string[]): Promise<void> { console.log('source', argv.join(' ')); }\n",
      );
      mkdirSync(join(tree, 'dist/cli'), { recursive: true });
      writeFileSync(
        join(tree, 'dist/cli/main.js'),
        "export async function main(argv) { console.log('compiled', argv.join(' ')); }\n",
      );
      const bin = join(tree, 'bin/switchboard.js');
      const stamp = join(tree, 'dist/.tsbuildinfo');
      const at = (path: string, seconds: number): void => utimesSync(path, seconds, seconds);

      // No build stamp: the sources.
      assert.equal(runNode([bin, 'serve']).stdout, 'source serve\n');
      writeFileSync(stamp, '{}');
      at(join(tree, 'src/cli/main.ts'), 1_000_000);
      at(stamp, 2_000_000);
      assert.equal(runNode([bin, 'serve', '-x']).stdout, 'compiled serve -x\n');
      assert.equal(runNode([bin], { SWITCHBOARD_RUN: 'source' }).stdout, 'source \n');
      // A source edited after the build: dist/ is stale.
      at(join(tree, 'src/cli/main.ts'), 3_000_000);
      assert.equal(runNode([bin]).stdout, 'source \n');
      const strict = runNode([bin], { SWITCHBOARD_RUN: 'compiled' });
      assert.equal(strict.code, 1);
      assert.match(strict.stderr, /dist\/ is missing or older than src\/ \(npm run build\)/);
      assert.equal(strict.stdout, '');
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });
});

describe('npm run build: the compiled server', () => {
  it('builds src/ to JavaScript that serves: OPTIONS to the server gets 200', async () => {
    // The output sits where dist/ sits in the repository: beside a package.json and the
    // node_modules its imports resolve from, whatever the temporary directory's parents hold.
    const tree = mkdtempSync(join(tmpdir(), 'sb-dist-'));
    symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'), 'dir');
    writeFileSync(join(tree, 'package.json'), '{"type":"module"}\n');
    const out = join(tree, 'dist');
    const data = mkdtempSync(join(tmpdir(), 'sb-dist-data-'));
    try {
      const tsc = join(root, 'node_modules/typescript/bin/tsc');
      const build = runNode([
        tsc,
        '-p',
        join(root, 'tsconfig.build.json'),
        '--outDir',
        out,
        '--tsBuildInfoFile',
        join(out, '.tsbuildinfo'),
      ]);
      assert.equal(build.code, 0, build.stdout + build.stderr);
      const child = spawn(
        process.execPath,
        [
          join(out, 'cli/main.js'),
          'serve',
          '--data-dir',
          data,
          '--domain',
          'example.com',
          '--listen',
          'udp:127.0.0.1:0',
          '--log-level',
          'warn',
        ],
        // No --import tsx: a .ts import left in the output would fail here.
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
      try {
        const port = await new Promise<number>((res, rej) => {
          const check = (): void => {
            const m = /^listening udp:127\.0\.0\.1:(\d+)$/m.exec(stdout);
            if (m !== null) res(Number(m[1]));
            else if (child.exitCode !== null) rej(new Error(`exited: ${stderr}`));
            else setTimeout(check, 50);
          };
          check();
        });
        const sock = createSocket('udp4');
        try {
          await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
          const local = sock.address().port;
          const options = [
            'OPTIONS sip:example.com SIP/2.0',
            `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK-compiled-1;rport`,
            'Max-Forwards: 70',
            'From: <sip:probe@example.net>;tag=c1',
            'To: <sip:example.com>',
            'Call-ID: compiled-build-1@127.0.0.1',
            'CSeq: 1 OPTIONS',
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n');
          const reply = new Promise<string>((r) =>
            sock.once('message', (b: Buffer) => r(b.toString('utf8'))),
          );
          sock.send(options, port, '127.0.0.1');
          const timeout = new Promise<string>((r) =>
            setTimeout(() => r('(no answer in 5 s)'), 5000),
          );
          const answer = await Promise.race([reply, timeout]);
          assert.match(answer, /^SIP\/2\.0 200 /);
          assert.match(answer, /^Allow: .*INVITE/m);
        } finally {
          sock.close();
        }
        child.kill('SIGTERM');
        assert.equal(await exited, 0, stderr);
      } finally {
        clearTimeout(kill);
        child.kill('SIGKILL');
      }
    } finally {
      rmSync(tree, { recursive: true, force: true });
      rmSync(data, { recursive: true, force: true });
    }
  });
});
