/** What every `switchboard` command reads and writes through (injectable for tests). */

/** Where the command reads and writes: process streams in production, fakes in tests. */
export interface CliIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown };
  /** Standard input, read to the end by `parse -`. */
  readonly stdin: AsyncIterable<Uint8Array | string>;
  /** Reads a file's bytes; node:fs/promises readFile by default. */
  readonly readFile?: (path: string) => Promise<Uint8Array>;
}

/** Exit codes: 0 done, 1 usage or input error, 2 rejected (parse) / not found (user, domain). */
export const EXIT_OK = 0;
export const EXIT_USAGE = 1;
export const EXIT_REJECTED = 2;
export const EXIT_NOT_FOUND = 2;

/** Writes `switchboard: MESSAGE` on stderr and returns `code`. */
export function fail(io: CliIo, message: string, code: number = EXIT_USAGE): number {
  io.stderr.write(`switchboard: ${message}\n`);
  return code;
}

/** The reason text of a file read error. */
export function readErrorReason(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  return code === 'ENOENT'
    ? 'no such file'
    : code === 'EISDIR'
      ? 'is a directory'
      : code === 'EACCES'
        ? 'permission denied'
        : e instanceof Error
          ? e.message
          : String(e);
}
