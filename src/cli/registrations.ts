/**
 * `switchboard registrations [--json] [--data-dir DIR] [--aor AOR]`: the live bindings of
 * the location service (RFC 3261 §10.3) in the store, read while the server runs (the
 * SQLite store is shared, WAL). Expired bindings that the server has not purged yet are
 * not shown: a binding is live while its expiry is in the future, as for the registrar.
 */
import { parseArgs } from 'node:util';
import type { Binding } from '../store/index.ts';
import { parseAor } from './aor.ts';
import { EXIT_OK, fail, type CliIo } from './io.ts';
import { DEFAULT_DATA_DIR, withStore } from './store-options.ts';

/** One binding as `registrations --json` prints it; absent values are null (a stable shape). */
export interface RegistrationJson {
  readonly aor: string;
  readonly contact: string;
  /** Seconds until the binding expires, as a 200 to REGISTER would say (at least 1). */
  readonly expires: number;
  /** The expiry as an ISO 8601 UTC time. */
  readonly expiresAt: string;
  readonly q: number;
  /** Where the REGISTER came from: `udp:192.0.2.1:5060`. */
  readonly received: string | null;
  readonly userAgent: string | null;
  /** Path header values (RFC 3327), in order. */
  readonly path: readonly string[];
  /** `+sip.instance` (RFC 5626 §4.1). */
  readonly instance: string | null;
  /** `reg-id` (RFC 5626 §4.2). */
  readonly regId: number | null;
  readonly callId: string;
  readonly cseq: number;
}

/** Seconds left, rounded as the registrar's Contact `expires` (RFC 3261 §10.3 step 8). */
function remaining(b: Binding, nowMs: number): number {
  return Math.max(1, Math.round((b.expiresAt - nowMs) / 1000));
}

export function registrationJson(b: Binding, nowMs: number): RegistrationJson {
  return {
    aor: b.aor,
    contact: b.contact,
    expires: remaining(b, nowMs),
    expiresAt: new Date(b.expiresAt).toISOString(),
    q: b.q,
    received: b.received ?? null,
    userAgent: b.userAgent ?? null,
    path: b.path,
    instance: b.instance ?? null,
    regId: b.regId ?? null,
    callId: b.callId,
    cseq: b.cseq,
  };
}

/**
 * Control characters as `\xNN`: a User-Agent or Contact comes from the network, and a
 * terminal must not interpret escape sequences hidden in it.
 */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

const COLUMNS = [
  'AOR',
  'CONTACT',
  'EXPIRES',
  'Q',
  'RECEIVED',
  'INSTANCE',
  'REG-ID',
  'PATH',
  'USER-AGENT',
] as const;

/** A table, one binding a line, columns aligned; `-` for an absent value. */
export function formatRegistrations(bindings: readonly Binding[], nowMs: number): string {
  const rows = bindings.map((b) =>
    [
      b.aor,
      b.contact,
      `${remaining(b, nowMs)}s`,
      String(b.q),
      b.received ?? '-',
      b.instance ?? '-',
      b.regId === undefined ? '-' : String(b.regId),
      b.path.length === 0 ? '-' : b.path.join(','),
      b.userAgent ?? '-',
    ].map(printable),
  );
  const all = [[...COLUMNS], ...rows];
  const widths = COLUMNS.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all
    .map(
      (r) =>
        r
          .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!)))
          .join('  ')
          .trimEnd() + '\n',
    )
    .join('');
}

export interface RegistrationsOptions {
  /** Wall-clock milliseconds (tests); Date.now by default. */
  readonly now?: () => number;
}

/** `switchboard registrations ...` (argv after "registrations"). */
export async function runRegistrations(
  argv: readonly string[],
  io: CliIo,
  options: RegistrationsOptions = {},
): Promise<number> {
  let values: { 'data-dir'?: string; json?: boolean; aor?: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'data-dir': { type: 'string' },
        json: { type: 'boolean' },
        aor: { type: 'string' },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (e) {
    return fail(
      io,
      `registrations: ${e instanceof Error ? e.message : String(e)} (see "switchboard --help")`,
    );
  }
  let aor: string | undefined;
  if (values.aor !== undefined) {
    const r = parseAor(values.aor);
    if (!r.ok) return fail(io, `registrations: ${r.reason}`);
    aor = r.aor;
  }
  const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR;
  return withStore(
    io,
    dataDir,
    async (store) => {
      const now = (options.now ?? Date.now)();
      const bindings = await store.location.list(now, aor);
      if (values.json === true) {
        const rows = bindings.map((b) => registrationJson(b, now));
        io.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      } else if (bindings.length === 0) {
        io.stdout.write(aor === undefined ? 'no registrations\n' : `no registrations for ${aor}\n`);
      } else {
        io.stdout.write(formatRegistrations(bindings, now));
      }
      return EXIT_OK;
    },
    'registrations: ',
  );
}
