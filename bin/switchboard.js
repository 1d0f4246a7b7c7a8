#!/usr/bin/env node
// The `switchboard` command (package.json "bin"). Plain JavaScript so it runs without a
// build step: it registers tsx, then loads the TypeScript entry and runs it.
import { register } from 'tsx/esm/api';

register();

const { main } = await import('../src/cli/main.ts');
await main(process.argv.slice(2));
