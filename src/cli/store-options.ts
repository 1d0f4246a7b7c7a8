/** The `--data-dir` option shared by the commands that open the store. */
import { parseArgs } from 'node:util';

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
