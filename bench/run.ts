/**
 * Benchmark entry point: a dispatcher over named suites.
 *
 *   npm run bench                      every suite
 *   npm run bench -- parser            only the parser suite
 *   npm run bench -- parser --quick    smoke run (~10 s)
 *   npm run bench -- stack             only the stack suite (sipp against a Switchboard UAS, ~3 min)
 *   npm run bench -- server            switchboard serve (and Kamailio) under sipp (~10 min)
 *   npm run bench -- presence          NOTIFY fan-out of switchboard serve: 1,000 watchers (~20 s)
 *   npm run bench -- --help
 *
 * Comparison-only dependencies live in bench/package.json (STYLE.md §15); they are
 * installed into bench/node_modules on first use (`npm ci --prefix bench`).
 * Suites are imported only once they are selected and the dependencies are there.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBenchDeps } from './lib/deps.ts';
import { getGc } from './lib/measure.ts';
import type { Suite } from './lib/suite.ts';

interface SuiteEntry {
  readonly description: string;
  load(): Promise<Suite>;
}

/** Named suites, in the order `npm run bench` runs them. */
const SUITES: Readonly<Record<string, SuiteEntry>> = {
  parser: {
    description:
      'parse + read routing fields + serialize: Switchboard vs the npm packages sip, sip.js, jssip',
    load: async () => (await import('./micro/sip/parse.bench.ts')).suite,
  },
  stack: {
    description:
      'Switchboard UAS vs a sipp UAC over UDP: OPTIONS/s and calls/s at < 1% failures, peak RSS; sipp UAS as ceiling',
    load: async () => (await import('./macro/stack.bench.ts')).suite,
  },
  server: {
    description:
      'switchboard serve under sipp over UDP: REGISTER/s (digest), calls/s and MESSAGE/s through ' +
      'the proxy at < 1% failures, peak RSS, memory per 10k bindings; vs Kamailio when installed',
    load: async () => (await import('./macro/server.bench.ts')).suite,
  },
  presence: {
    description:
      'switchboard serve: presence NOTIFY fan-out to 1,000 watchers of one user over UDP, ' +
      'PUBLISH to last NOTIFY, NOTIFYs/s, server CPU per NOTIFY; 1 process and workers = cores',
    load: async () => (await import('./macro/presence.bench.ts')).suite,
  },
};

function usage(): string {
  const names = Object.entries(SUITES)
    .map(([name, s]) => `  ${name.padEnd(10)} ${s.description}`)
    .join('\n');
  return (
    'usage: npm run bench [-- [suite ...] [--quick]]\n\n' +
    `suites (default: all):\n${names}\n\n` +
    'options:\n' +
    '  --quick    fewer and shorter rounds (smoke run: 10-25 s per suite, server ~3 min)\n' +
    '  --help     this text\n'
  );
}

async function main(argv: readonly string[]): Promise<number> {
  let quick = false;
  const selected: string[] = [];
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage());
      return 0;
    } else if (arg.startsWith('-')) {
      process.stderr.write(`bench: unknown option ${arg}\n\n${usage()}`);
      return 2;
    } else if (!Object.hasOwn(SUITES, arg)) {
      process.stderr.write(`bench: unknown suite ${JSON.stringify(arg)}\n\n${usage()}`);
      return 2;
    } else if (!selected.includes(arg)) selected.push(arg);
  }
  const names = selected.length > 0 ? selected : Object.keys(SUITES);

  const benchDir = dirname(fileURLToPath(import.meta.url));
  ensureBenchDeps(benchDir);
  const gc = getGc();

  for (const name of names) {
    const suite = await SUITES[name]!.load();
    await suite.run({ quick, benchDir, gc });
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
