/**
 * The `switchboard` command.
 *
 *   switchboard parse FILE|-  [--stream]   one SIP message as JSON (exit 2 when a server
 *                                          would reject it, 1 on a usage error)
 *   switchboard serve [--config FILE] [--data-dir DIR] [--domain NAME]... [--listen SPEC]...
 *                     [--log-level L] [--tls-cert FILE --tls-key FILE]
 *                                          the SIP server: registrar and proxy (serve.ts)
 *   switchboard user add|passwd|remove|list|import ...   users in the store (user.ts)
 *   switchboard domain add|list|remove ...               domains in the store (user.ts)
 *   switchboard registrations [--json] [--aor AOR]       live bindings (registrations.ts)
 *   switchboard message send|list ...                    kept instant messages (message.ts)
 *   switchboard presence policy|watchers ...             watcher rules, watchers (presence.ts)
 *   switchboard help | --help
 *
 * `run(argv, io)` does the work with injected streams and returns the exit code, so
 * tests call it directly; the module runs it only when it is the entry point
 * (`node --import tsx src/cli/main.ts ...`), and bin/switchboard.js calls `main()` from
 * dist/ (compiled by `npm run build`, which `npm start` runs first) or, when that is older
 * than the sources, after registering tsx.
 */
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { utf8DecodeStrict } from '../base/index.ts';
import {
  codecFor,
  parseMessage,
  type HeaderField,
  type SipParseError,
  type SipRequest,
  type SipResponse,
} from '../sip/index.ts';
import { EXIT_OK, EXIT_REJECTED, EXIT_USAGE, readErrorReason, type CliIo } from './io.ts';
import { runMessage } from './message.ts';
import { runPresence } from './presence.ts';
import { runRegistrations } from './registrations.ts';
import { runServe } from './serve.ts';
import { runDomain, runUser } from './user.ts';

export { EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_NOT_FOUND, type CliIo } from './io.ts';

export const USAGE = `Usage: switchboard <command> [options]

Commands:
  parse FILE     Parse one SIP message from FILE ("-" for standard input) and print it
                 as JSON. Exits 2, with the status a server would answer on standard
                 error, when the message would be rejected.
  serve [--config FILE] [--data-dir DIR] [--domain NAME]... [--listen SPEC]...
        [--log-level LEVEL] [--tls-cert FILE --tls-key FILE]
                 Run the SIP server (registrar and proxy). FILE is a YAML config file
                 (docs/configuration.md); a flag overrides its key. SPEC is
                 udp|tcp|tls|ws|wss:ADDRESS:PORT (default udp and tcp on 0.0.0.0:5060;
                 port 0 picks a free port, printed as "listening SPEC"); tls and wss
                 need --tls-cert and --tls-key (PEM files). LEVEL is debug, info
                 (default), warn, error or silent. SIGTERM/SIGINT stop listening, let
                 the transactions in progress finish (shutdownTimeout), then exit.
  help           Show this help.

  user add AOR --password PW     Add a user (its domain must exist: "domain add").
  user passwd AOR --password PW  Change a user's password.
  user remove AOR                Remove a user.
  user list [--domain D] [--json]
                                 List users (one AOR a line, or JSON).
  user import FILE.csv           Add users from a CSV file with the header row
                                 "aor,password"; a bad row is reported as "line N:
                                 reason" and then nothing is imported.
  domain add|remove NAME         Add or remove a domain this server serves.
  domain list [--json]           List the domains.

  registrations [--aor AOR] [--json]
                                 The live registrations (bindings): AOR, contact,
                                 seconds to expiry, q, received (where the REGISTER
                                 came from), +sip.instance, reg-id, Path, User-Agent.
                                 One a line, or a JSON array.

  message send FROM TO TEXT [--config FILE]
                                 Queue a text/plain message from FROM to the user TO;
                                 the running server delivers it when TO registers or
                                 at its next attempt (messaging.retryInterval). FILE
                                 gives messaging.lifetime and messaging.quota.
  message list AOR [--json]      The messages waiting for a user (kept while the user
                                 could not take them), oldest first.

  presence policy AOR --watcher W --allow|--block|--confirm|--remove
                                 The user's rule for watcher W (RFC 3856 §5.1): allow
                                 (sees the presence), block (refused; a subscription
                                 ends with reason=rejected), confirm (pending until
                                 allowed), remove (back to the configured default).
                                 Takes effect on a running server within
                                 presence.pollInterval.
  presence policy AOR [--json]   The user's rules.
  presence watchers AOR [--json] Who watches the user's presence: watcher, status
                                 (active, pending, terminated), seconds to expiry, rule.

  An AOR is a sip: URI with a user part; "alice@example.com" means
  "sip:alice@example.com". Passwords are stored only as digest HA1 values
  (MD5 and SHA-256, realm = the AOR's domain).

Options:
  --stream       parse: frame the input as a stream transport does (RFC 3261 §18.3: the
                 body is Content-Length octets, 0 without one). The default is datagram
                 framing (the body is the rest of the input without Content-Length).
  --data-dir DIR serve, user, domain, registrations, message, presence: the data directory
                 holding switchboard.db (default ./data, created when missing).
  -h, --help     Show this help.

Exit status: 0 done; 1 usage or invalid input (nothing changed); 2 parse: the message
would be rejected, user/domain/message/presence: no such user or domain (or rule).
`;

/** Runs the command line `argv` (without node and script) and returns the exit code. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const storeCommand =
    argv[0] === 'user'
      ? runUser
      : argv[0] === 'domain'
        ? runDomain
        : argv[0] === 'serve'
          ? runServe
          : argv[0] === 'registrations'
            ? runRegistrations
            : argv[0] === 'message'
              ? runMessage
              : argv[0] === 'presence'
                ? runPresence
                : undefined;
  if (storeCommand !== undefined) {
    if (
      (argv[0] === 'serve' ||
        argv[0] === 'registrations' ||
        argv[0] === 'message' ||
        argv[0] === 'presence') &&
      argv.includes('--stream')
    ) {
      return usageError(io, `--stream applies to "parse" only`);
    }
    if (argv.includes('-h') || argv.includes('--help')) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    return storeCommand(argv.slice(1), io);
  }
  let values: { help?: boolean; stream?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: {
        help: { type: 'boolean', short: 'h' },
        stream: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (e) {
    return usageError(io, e instanceof Error ? e.message : String(e));
  }

  const [command, ...rest] = positionals;
  if (values.help === true || command === 'help') {
    io.stdout.write(USAGE);
    return EXIT_OK;
  }
  if (command === undefined) {
    io.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  if (values.stream === true && command !== 'parse') {
    return usageError(io, `--stream applies to "parse" only`);
  }
  switch (command) {
    case 'parse':
      return parseCommand(rest, values.stream === true, io);
    default:
      io.stderr.write(`switchboard: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return EXIT_USAGE;
  }
}

function usageError(io: CliIo, message: string): number {
  io.stderr.write(`switchboard: ${message} (see "switchboard --help")\n`);
  return EXIT_USAGE;
}

async function parseCommand(args: readonly string[], stream: boolean, io: CliIo): Promise<number> {
  if (args.length === 0) return usageError(io, 'parse: missing FILE ("-" reads standard input)');
  if (args.length > 1) return usageError(io, `parse: one FILE only, got ${args.length}`);
  const file = args[0]!;
  let bytes: Uint8Array;
  try {
    bytes = file === '-' ? await readAll(io.stdin) : await (io.readFile ?? readBytes)(file);
  } catch (e) {
    const why = readErrorReason(e);
    io.stderr.write(`switchboard: cannot read ${file}: ${why}\n`);
    return EXIT_USAGE;
  }
  const r = parseMessage(bytes, { framing: stream ? 'stream' : 'datagram' });
  if (!r.ok) {
    io.stderr.write(formatError(r.error) + '\n');
    return EXIT_REJECTED;
  }
  io.stdout.write(JSON.stringify(messageToJson(r.message), null, 2) + '\n');
  return EXIT_OK;
}

/** `400 Bad Request: CSeq: sequence number above 2**32-1 (SB_ERR_PARSE_CSEQ)` */
export function formatError(e: SipParseError): string {
  return `${e.status} ${e.reason}: ${e.detail} (${e.code})`;
}

interface HeaderJson {
  name: string;
  key: string;
  value: string;
  decoded?: unknown;
}

/** The JSON shape `switchboard parse` prints. */
export interface MessageJson {
  kind: 'request' | 'response';
  method?: string;
  uri?: string;
  status?: number;
  reason?: string;
  version: string;
  headers: HeaderJson[];
  body: { length: number; text?: string; base64?: string };
}

/**
 * A message as plain JSON: start line, every field in order (decoded through its
 * registered codec when there is one: the value, or `{error}` when malformed), body.
 */
export function messageToJson(m: SipRequest | SipResponse): MessageJson {
  const headers = m.fields.map(fieldToJson);
  const text = utf8DecodeStrict(m.body);
  const body =
    text !== undefined
      ? { length: m.body.length, text }
      : { length: m.body.length, base64: Buffer.from(m.body).toString('base64') };
  if (m.isRequest()) {
    return {
      kind: 'request',
      method: m.method,
      uri: m.uriText,
      version: m.version,
      headers,
      body,
    };
  }
  return {
    kind: 'response',
    status: m.status,
    reason: m.reason,
    version: m.version,
    headers,
    body,
  };
}

function fieldToJson(f: HeaderField): HeaderJson {
  const out: HeaderJson = { name: f.name, key: f.key, value: f.value };
  const codec = codecFor(f.key);
  if (codec !== undefined) {
    const r = codec.parse(f.value);
    out.decoded = r.ok ? r.value : { error: r.error };
  }
  return out;
}

async function readBytes(path: string): Promise<Uint8Array> {
  const b = await readFile(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

async function readAll(input: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of input) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk));
  }
  const all = Buffer.concat(chunks);
  return new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
}

/** The process's streams. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

/** Runs the command for this process and sets its exit code. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  process.exitCode = await run(argv, processIo());
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) await main();
