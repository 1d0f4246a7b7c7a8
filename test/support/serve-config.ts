/**
 * Configuration files for `switchboard serve` in tests: written to a fresh temporary directory,
 * passed with `--config FILE` (startServer's `extraArgs`), removed by `remove()`.
 *
 * MD5_ONLY: the server challenges with MD5 alone (`auth.algorithms: [MD5]`, docs/configuration.md).
 * baresip 1.0.0 (libre 1.1.0) and sipp 3.6.1 give up on a 401/407 that holds any SHA-256
 * challenge (RFC 8760 §2.3 lets a server offer several), so every test with them needs it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A YAML configuration that only restricts the digest algorithms to MD5. */
export const MD5_ONLY_YAML = 'auth:\n  algorithms: [MD5]\n';

export interface ServeConfig {
  /** The configuration file. */
  readonly path: string;
  /** `['--config', path]`, for startServer's `extraArgs`. */
  readonly args: readonly string[];
  /** Removes the file and its directory. Idempotent, never throws. */
  remove(): void;
}

/** Writes `yaml` to `switchboard.yaml` in a new temporary directory. */
export function writeServeConfig(yaml: string): ServeConfig {
  const dir = mkdtempSync(join(tmpdir(), 'switchboard-config-'));
  const path = join(dir, 'switchboard.yaml');
  writeFileSync(path, yaml);
  return {
    path,
    args: ['--config', path],
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A configuration file with `auth: { algorithms: [MD5] }`. */
export function md5OnlyConfig(): ServeConfig {
  return writeServeConfig(MD5_ONLY_YAML);
}
