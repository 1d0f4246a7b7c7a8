#!/usr/bin/env node
// Test runner: `node --import tsx --test` over every src/**/*.test.ts and test/**/*.test.ts.
// Node 20's --test does not expand globs, so the files are found here (sorted, no dependencies).
//
//   npm test                                   all unit + test/ files
//   npm test -- test/foo.test.ts src/sip       only these files / directories
//   npm test -- --test-name-pattern='Timer B'  extra node flags pass through
//
// Exits with the child's exit code.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const ROOTS = ['src', 'test'];
const SKIP_DIRS = new Set(['node_modules', 'dist', 'coverage', 'data', 'fixtures']);
const IS_TEST = /\.test\.ts$/;

// Node flags that take their value as the next argument (`--flag value`, not `--flag=value`).
const FLAGS_WITH_VALUE = new Set([
  '--test-name-pattern',
  '--test-skip-pattern',
  '--test-reporter',
  '--test-reporter-destination',
  '--test-concurrency',
  '--test-timeout',
  '--test-shard',
  '--import',
  '--require',
  '-r',
  '--conditions',
  '-C',
  '--env-file',
  '--inspect-port',
  '--stack-trace-limit',
  '--max-old-space-size',
]);

/** Recursively collect *.test.ts under dir (skipping node_modules, fixtures, dot-dirs). */
function findTests(dir, out = []) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return out;
    throw err;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!entry.name.startsWith('.') && !SKIP_DIRS.has(entry.name)) findTests(path, out);
    } else if (entry.isFile() && IS_TEST.test(entry.name)) {
      out.push(path);
    }
  }
  return out;
}

const toRelative = (path) => relative(root, path).split(sep).join('/');

const flags = [];
const targets = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  if (arg === '--') continue;
  if (arg.startsWith('-')) {
    flags.push(arg);
    if (FLAGS_WITH_VALUE.has(arg) && i + 1 < argv.length) flags.push(argv[++i]);
  } else {
    targets.push(arg);
  }
}

let files;
if (targets.length > 0) {
  files = [];
  for (const target of targets) {
    const path = resolve(process.cwd(), target);
    if (!existsSync(path)) {
      console.error(`run-tests: no such file or directory: ${target}`);
      process.exit(1);
    }
    if (statSync(path).isDirectory()) files.push(...findTests(path));
    else files.push(path);
  }
} else {
  files = ROOTS.flatMap((dir) => findTests(join(root, dir)));
}
files = [...new Set(files.map(toRelative))].sort();

if (files.length === 0) {
  console.log(
    `run-tests: no test files found (${targets.length > 0 ? targets.join(', ') : 'src/**/*.test.ts, test/**/*.test.ts'}); nothing to run.`,
  );
  process.exit(0);
}

const hasReporter = flags.some((f) => f === '--test-reporter' || f.startsWith('--test-reporter='));
const nodeArgs = [
  '--import',
  'tsx',
  // Property tests: a fixed fast-check seed under CI (see the file).
  '--import',
  './test/support/fast-check-seed.ts',
  '--test',
  ...(hasReporter ? [] : ['--test-reporter=spec']),
  ...flags,
  ...files,
];

const child = spawn(process.execPath, nodeArgs, { cwd: root, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => child.kill(signal));
}
child.on('error', (err) => {
  console.error(`run-tests: could not start node: ${err.message}`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    console.error(`run-tests: test run ended by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
