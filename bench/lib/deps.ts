/**
 * The comparison-only dependencies of the benchmarks live in bench/package.json
 * (STYLE.md §15) with their own package-lock, installed into bench/node_modules.
 * A fresh clone has none of them: `ensureBenchDeps` installs them (loudly) before a
 * suite loads any, so `npm run bench` works on a fresh clone.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Install time limit: a hung registry must not hang the benchmark. */
const INSTALL_TIMEOUT_MS = 5 * 60_000;

interface PackageJson {
  readonly version?: string;
  readonly dependencies?: Readonly<Record<string, string>>;
}

function readJson(path: string): PackageJson | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

/** The installed version of `name` under benchDir, or undefined when it is not installed. */
export function installedVersion(benchDir: string, name: string): string | undefined {
  return readJson(join(benchDir, 'node_modules', ...name.split('/'), 'package.json'))?.version;
}

/** Dependencies that are missing, or installed at another version than the exact one pinned. */
function outdated(benchDir: string): string[] {
  const deps = readJson(join(benchDir, 'package.json'))?.dependencies ?? {};
  const out: string[] = [];
  for (const [name, spec] of Object.entries(deps)) {
    const have = installedVersion(benchDir, name);
    const exact = /^\d+\.\d+\.\d+$/.test(spec);
    if (have === undefined || (exact && have !== spec)) out.push(`${name}@${spec}`);
  }
  return out;
}

/**
 * Installs bench/ dependencies when any is missing or at another version:
 * `npm ci --prefix bench` (reproducible, from bench/package-lock.json), or
 * `npm install --prefix bench` when there is no lock file yet. Throws when the
 * install fails or leaves a dependency missing.
 */
export function ensureBenchDeps(benchDir: string): void {
  const missing = outdated(benchDir);
  if (missing.length === 0) return;
  const ci = existsSync(join(benchDir, 'package-lock.json'));
  const args = [ci ? 'ci' : 'install', '--prefix', benchDir, '--no-audit', '--no-fund'];
  const bar = '='.repeat(78);
  process.stderr.write(
    `${bar}\n` +
      `bench: comparison dependencies missing or out of date in bench/node_modules:\n` +
      `bench:   ${missing.join(', ')}\n` +
      `bench: running \`npm ${args.join(' ')}\` (one time; needs the npm registry)\n` +
      `${bar}\n`,
  );
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, args, {
    stdio: ['ignore', 2, 2], // npm's output to stderr: stdout stays the report
    timeout: INSTALL_TIMEOUT_MS,
    shell: process.platform === 'win32',
  });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error?.message ?? `exit code ${String(r.status)}`;
    throw new Error(`bench: \`npm ${args.join(' ')}\` failed (${why})`);
  }
  const still = outdated(benchDir);
  if (still.length > 0) {
    throw new Error(`bench: still missing after install: ${still.join(', ')}`);
  }
  process.stderr.write(`bench: installed ${missing.join(', ')}\n${bar}\n`);
}
