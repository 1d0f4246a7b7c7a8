/**
 * `switchboard message send FROM TO TEXT` and `switchboard message list AOR [--json]`:
 * instant messages kept in the store for users (RFC 3428 store-and-forward,
 * services/messaging).
 *
 * `send` queues a text/plain message for TO in the store, as the server keeps one for a
 * user who could not take it; a running server delivers it at its next sweep
 * (`messaging.retryInterval`) or when TO registers. It is for operators and scripts
 * (announcements): FROM may be any AOR, it is not authenticated; TO must be a user of
 * this server. The lifetime and quota are the configuration's defaults unless
 * `--config FILE` names the server's file.
 */
import { parseArgs } from 'node:util';
import { utf8DecodeStrict } from '../base/index.ts';
import type { StoredMessage } from '../store/index.ts';
import { parseAor } from './aor.ts';
import { ConfigError, CONFIG_DEFAULTS, loadConfig, type ServerConfig } from './config.ts';
import { EXIT_NOT_FOUND, EXIT_OK, fail, type CliIo } from './io.ts';
import { DEFAULT_DATA_DIR, withStore } from './store-options.ts';

const SUBCOMMANDS = 'send, list';

interface MessageArgs {
  readonly dataDir?: string;
  readonly config?: string;
  readonly json: boolean;
  readonly positionals: string[];
}

function parse(io: CliIo, argv: readonly string[]): MessageArgs | number {
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: {
        'data-dir': { type: 'string' },
        config: { type: 'string' },
        json: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
    return {
      ...(values['data-dir'] !== undefined ? { dataDir: values['data-dir'] } : {}),
      ...(values.config !== undefined ? { config: values.config } : {}),
      json: values.json === true,
      positionals,
    };
  } catch (e) {
    return fail(
      io,
      `message: ${e instanceof Error ? e.message : String(e)} (see "switchboard --help")`,
    );
  }
}

/** The configuration for `--config` (or the defaults), and the data dir `--data-dir` overrides. */
async function settings(io: CliIo, a: MessageArgs): Promise<ServerConfig | number> {
  try {
    const config = a.config === undefined ? CONFIG_DEFAULTS : await loadConfig(a.config);
    return { ...config, dataDir: a.dataDir ?? config.dataDir };
  } catch (e) {
    if (e instanceof ConfigError) return fail(io, e.message);
    throw e;
  }
}

/** `switchboard message ...` (argv after "message"). */
export async function runMessage(argv: readonly string[], io: CliIo): Promise<number> {
  const a = parse(io, argv);
  if (typeof a === 'number') return a;
  const [sub, ...rest] = a.positionals;
  switch (sub) {
    case 'send': {
      if (a.json) return fail(io, 'message send: --json does not apply here');
      if (rest.length < 3) return fail(io, 'message send: expected FROM TO TEXT');
      if (rest.length > 3) {
        return fail(
          io,
          `message send: unexpected argument ${JSON.stringify(rest[3])} (quote TEXT as one argument)`,
        );
      }
      const [fromText, toText, body] = rest as [string, string, string];
      const from = parseAor(fromText);
      if (!from.ok) return fail(io, `message send: FROM: ${from.reason}`);
      const to = parseAor(toText);
      if (!to.ok) return fail(io, `message send: TO: ${to.reason}`);
      if (body === '') return fail(io, 'message send: the text must not be empty');
      const config = await settings(io, a);
      if (typeof config === 'number') return config;
      const bytes = new TextEncoder().encode(body);
      if (bytes.length > config.messaging.maxBodyBytes) {
        return fail(
          io,
          `message send: the text is ${bytes.length} octets, above messaging.maxBodyBytes (${config.messaging.maxBodyBytes})`,
        );
      }
      return withStore(io, config.dataDir, async (store) => {
        if ((await store.users.get(to.aor)) === undefined) {
          return fail(io, `message send: no user ${to.aor}`, EXIT_NOT_FOUND);
        }
        const now = Date.now();
        const r = await store.messages.enqueue(
          {
            aor: to.aor,
            from: `<${from.aor}>`,
            to: `<${to.aor}>`,
            contentType: 'text/plain;charset=UTF-8',
            body: bytes,
            receivedAt: now,
            expiresAt: now + config.messaging.lifetime * 1000,
          },
          config.messaging.quota,
        );
        if (!r.ok) {
          return fail(
            io,
            `message send: ${to.aor} has ${config.messaging.quota} messages waiting already (messaging.quota)`,
          );
        }
        io.stdout.write(`queued message ${r.id} for ${to.aor}\n`);
        return EXIT_OK;
      });
    }
    case 'list': {
      if (a.config !== undefined) return fail(io, 'message list: --config does not apply here');
      if (rest.length === 0) return fail(io, 'message list: missing AOR');
      if (rest.length > 1) {
        return fail(io, `message list: unexpected argument ${JSON.stringify(rest[1])}`);
      }
      const aor = parseAor(rest[0]!);
      if (!aor.ok) return fail(io, `message list: ${aor.reason}`);
      return withStore(io, a.dataDir ?? DEFAULT_DATA_DIR, async (store) => {
        const list = await store.messages.list(aor.aor, Date.now());
        if (a.json) io.stdout.write(JSON.stringify(list.map(toJson), null, 2) + '\n');
        else io.stdout.write(list.map((m) => formatLine(m) + '\n').join(''));
        return EXIT_OK;
      });
    }
    case undefined:
      return fail(io, `message: missing subcommand (${SUBCOMMANDS})`);
    default:
      return fail(io, `message: unknown subcommand ${JSON.stringify(sub)} (${SUBCOMMANDS})`);
  }
}

/** What `message list --json` prints for one message. */
export interface MessageJson {
  id: number;
  aor: string;
  from: string;
  to: string;
  contentType: string;
  receivedAt: string;
  expiresAt: string;
  size: number;
  /** The body as text when it is UTF-8, else `base64`. */
  text?: string;
  base64?: string;
}

function toJson(m: StoredMessage): MessageJson {
  const text = utf8DecodeStrict(m.body);
  return {
    id: m.id,
    aor: m.aor,
    from: m.from,
    to: m.to,
    contentType: m.contentType,
    receivedAt: new Date(m.receivedAt).toISOString(),
    expiresAt: new Date(m.expiresAt).toISOString(),
    size: m.body.length,
    ...(text !== undefined ? { text } : { base64: Buffer.from(m.body).toString('base64') }),
  };
}

/** `ID RECEIVED FROM CONTENT-TYPE "TEXT"` (or `N octets` for a body that is not text). */
function formatLine(m: StoredMessage): string {
  const text = utf8DecodeStrict(m.body);
  const shown = text !== undefined ? JSON.stringify(text) : `${m.body.length} octets`;
  return `${m.id}\t${new Date(m.receivedAt).toISOString()}\t${m.from}\t${m.contentType || '-'}\t${shown}`;
}
