#!/usr/bin/env node
// The `switchboard` command (package.json "bin"). Plain JavaScript so that it runs without a
// build step: it runs the compiled server in dist/ (`npm run build`) when that is at least as
// new as every file in src/, and otherwise registers tsx and runs the TypeScript sources.
// Compiled code starts faster and costs less CPU per message than tsx's on-the-fly output
// (docs/architecture.md, "Running compiled"). SWITCHBOARD_RUN=source always runs the sources;
// SWITCHBOARD_RUN=compiled exits with an error unless dist/ is current.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The newest modification time of a file under `dir`, in ms. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** dist/ when it was built from the sources as they are now, else undefined. */
function compiled() {
  if (process.env.SWITCHBOARD_RUN === 'source') return undefined;
  try {
    const built = statSync(join(root, 'dist', '.tsbuildinfo')).mtimeMs;
    return built >= newest(join(root, 'src')) ? join(root, 'dist', 'cli', 'main.js') : undefined;
  } catch {
    return undefined;
  }
}

const entry = compiled();
if (entry === undefined && process.env.SWITCHBOARD_RUN === 'compiled') {
  process.stderr.write(
    'switchboard: SWITCHBOARD_RUN=compiled, but dist/ is missing or older than src/ (npm run build)\n',
  );
  process.exit(1);
}
let main;
if (entry !== undefined) {
  ({ main } = await import(entry));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
await main(process.argv.slice(2));
