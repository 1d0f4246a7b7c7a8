/**
 * `switchboard presence policy AOR [--watcher W (--allow|--block|--confirm|--remove)]` and
 * `switchboard presence watchers AOR [--json]`: who may watch a user's presence (RFC 3856
 * §5.1 authorization, kept in the store's presence rules) and who does (the subscriptions the
 * server notifies, services/presence/notifier.ts).
 *
 * A rule takes effect on the running server within `presence.pollInterval`: the store bumps the
 * user's presence counter with it, and the worker notifying each watcher looks again (a pending
 * watcher allowed becomes active and gets the state, a blocked one is terminated with
 * reason=rejected). Without `--watcher`, `policy` lists the user's rules.
 */
import { parseArgs } from 'node:util';
import type { PresenceRuleAction, StoredSubscription } from '../store/index.ts';
import { parseAor } from './aor.ts';
import { EXIT_NOT_FOUND, EXIT_OK, fail, type CliIo } from './io.ts';
import { DEFAULT_DATA_DIR, withStore } from './store-options.ts';

const SUBCOMMANDS = 'policy, watchers';

interface PresenceArgs {
  readonly dataDir: string;
  readonly watcher?: string;
  readonly actions: readonly (PresenceRuleAction | 'remove')[];
  readonly json: boolean;
  readonly positionals: string[];
}

function parse(io: CliIo, argv: readonly string[]): PresenceArgs | number {
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      options: {
        'data-dir': { type: 'string' },
        watcher: { type: 'string' },
        allow: { type: 'boolean' },
        block: { type: 'boolean' },
        confirm: { type: 'boolean' },
        remove: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    });
    const actions = (['allow', 'block', 'confirm', 'remove'] as const).filter(
      (a) => values[a] === true,
    );
    return {
      dataDir: values['data-dir'] ?? DEFAULT_DATA_DIR,
      ...(values.watcher !== undefined ? { watcher: values.watcher } : {}),
      actions,
      json: values.json === true,
      positionals,
    };
  } catch (e) {
    return fail(
      io,
      `presence: ${e instanceof Error ? e.message : String(e)} (see "switchboard --help")`,
    );
  }
}

/** `switchboard presence ...` (argv after "presence"). */
export async function runPresence(argv: readonly string[], io: CliIo): Promise<number> {
  const a = parse(io, argv);
  if (typeof a === 'number') return a;
  const [sub, ...rest] = a.positionals;
  if (sub === undefined) return fail(io, `presence: missing subcommand (${SUBCOMMANDS})`);
  if (sub !== 'policy' && sub !== 'watchers') {
    return fail(io, `presence: unknown subcommand ${JSON.stringify(sub)} (${SUBCOMMANDS})`);
  }
  if (rest.length === 0) return fail(io, `presence ${sub}: missing AOR`);
  if (rest.length > 1) {
    return fail(io, `presence ${sub}: unexpected argument ${JSON.stringify(rest[1])}`);
  }
  const aor = parseAor(rest[0]!);
  if (!aor.ok) return fail(io, `presence ${sub}: ${aor.reason}`);
  if (sub === 'watchers') {
    if (a.watcher !== undefined || a.actions.length > 0) {
      return fail(
        io,
        'presence watchers: --watcher, --allow, --block, --confirm, --remove apply to "policy"',
      );
    }
    return withStore(io, a.dataDir, async (store) => {
      if ((await store.users.get(aor.aor)) === undefined) {
        return fail(io, `presence watchers: no user ${aor.aor}`, EXIT_NOT_FOUND);
      }
      const now = Date.now();
      const list = await store.subscriptions.listFor(aor.aor, 'presence');
      const rules = new Map((await store.presenceRules.list(aor.aor)).map((r) => [r.watcher, r]));
      const rows = list.map((s) => watcherJson(s, rules.get(s.watcher)?.action, now));
      if (a.json) io.stdout.write(JSON.stringify(rows, null, 2) + '\n');
      else {
        io.stdout.write(
          rows
            .map(
              (r) =>
                `${r.watcher}\t${r.status}${r.reason !== undefined ? `;reason=${r.reason}` : ''}\t${r.expiresIn}s\t${r.rule ?? '-'}\n`,
            )
            .join(''),
        );
      }
      return EXIT_OK;
    });
  }
  // policy
  if (a.json && a.watcher !== undefined) {
    return fail(io, 'presence policy: --json lists rules; it does not apply with --watcher');
  }
  if (a.watcher === undefined) {
    if (a.actions.length > 0) return fail(io, 'presence policy: --watcher AOR is needed');
    return withStore(io, a.dataDir, async (store) => {
      if ((await store.users.get(aor.aor)) === undefined) {
        return fail(io, `presence policy: no user ${aor.aor}`, EXIT_NOT_FOUND);
      }
      const rules = await store.presenceRules.list(aor.aor);
      if (a.json) {
        io.stdout.write(
          JSON.stringify(
            rules.map((r) => ({ watcher: r.watcher, action: r.action })),
            null,
            2,
          ) + '\n',
        );
      } else io.stdout.write(rules.map((r) => `${r.watcher}\t${r.action}\n`).join(''));
      return EXIT_OK;
    });
  }
  const watcher = parseAor(a.watcher);
  if (!watcher.ok) return fail(io, `presence policy: --watcher: ${watcher.reason}`);
  if (a.actions.length !== 1) {
    return fail(io, 'presence policy: give one of --allow, --block, --confirm, --remove');
  }
  const action = a.actions[0]!;
  return withStore(io, a.dataDir, async (store) => {
    if ((await store.users.get(aor.aor)) === undefined) {
      return fail(io, `presence policy: no user ${aor.aor}`, EXIT_NOT_FOUND);
    }
    if (action === 'remove') {
      if (!(await store.presenceRules.remove(aor.aor, watcher.aor))) {
        return fail(
          io,
          `presence policy: ${aor.aor} has no rule for ${watcher.aor}`,
          EXIT_NOT_FOUND,
        );
      }
      io.stdout.write(`removed the rule of ${aor.aor} for ${watcher.aor}\n`);
      return EXIT_OK;
    }
    await store.presenceRules.set({ aor: aor.aor, watcher: watcher.aor, action });
    io.stdout.write(`${aor.aor}: ${action} ${watcher.aor}\n`);
    return EXIT_OK;
  });
}

/** What `presence watchers --json` prints for one watcher. */
export interface WatcherJson {
  watcher: string;
  displayName?: string;
  status: string;
  reason?: string;
  /** Seconds until the subscription expires (0 once terminated). */
  expiresIn: number;
  since: string;
  /** The user's rule for this watcher, if any. */
  rule?: PresenceRuleAction;
  callId: string;
}

function watcherJson(
  s: StoredSubscription,
  rule: PresenceRuleAction | undefined,
  now: number,
): WatcherJson {
  return {
    watcher: s.watcher,
    ...(s.watcherName !== undefined ? { displayName: s.watcherName } : {}),
    status: s.status,
    ...(s.reason !== undefined ? { reason: s.reason } : {}),
    expiresIn: s.status === 'terminated' ? 0 : Math.max(0, Math.round((s.expiresAt - now) / 1000)),
    since: new Date(s.createdAt).toISOString(),
    ...(rule !== undefined ? { rule } : {}),
    callId: s.callId,
  };
}
