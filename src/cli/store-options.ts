/** The `--data-dir` option shared by the commands that open the store, and opening it. */
import { parseArgs } from 'node:util';
import type { Store } from '../store/index.ts';
import { openSqliteStore } from '../store/sqlite/sqlite-store.ts';
import { fail, type CliIo } from './io.ts';

/** Where the store lives unless `--data-dir` says otherwise (relative to the working dir). */
export const DEFAULT_DATA_DIR = './data';

export interface ParsedStoreArgs {
  readonly dataDir: string;
  readonly password?: string;
  readonly domain?: string;
  readonly json: boolean;
  readonly positionals: string[];
}

/** Parses a store command's arguments; throws (a usage error) on an unknown option. */
export function parseStoreArgs(argv: readonly string[]): ParsedStoreArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      'data-dir': { type: 'string' },
      password: { type: 'string' },
      domain: { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  return {
    dataDir: values['data-dir'] ?? DEFAULT_DATA_DIR,
    ...(values.password !== undefined && { password: values.password }),
    ...(values.domain !== undefined && { domain: values.domain }),
    json: values.json === true,
    positionals,
  };
}

/**
 * Runs `fn` on the store opened in the data dir, closing it afterwards. `prefix` starts the
 * error line when the store cannot be opened (e.g. `registrations: `).
 */
export async function withStore(
  io: CliIo,
  dataDir: string,
  fn: (store: Store) => Promise<number>,
  prefix = '',
): Promise<number> {
  let store: Store;
  try {
    store = openSqliteStore(dataDir);
  } catch (e) {
    return fail(
      io,
      `${prefix}cannot open the store in ${dataDir}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
