/**
 * In-process presence servers and watchers for the SUBSCRIBE/NOTIFY tests: the services of
 * `switchboard serve` (buildServices) on a server stack and the SQLite store, and watchers,
 * publishers and registering phones on their own stacks over UDP on loopback, authenticating
 * with digest (407/401) as local users.
 */
import assert from 'node:assert/strict';
import { cryptoRandom, silentLogger, systemClock, type Logger } from '../../../src/base/index.ts';
import { createStack, type Stack } from '../../../src/stack/index.ts';
import {
  createRequest,
  SubscriptionStateHeader,
  type SipRequest,
  type SipResponse,
} from '../../../src/sip/index.ts';
import { credentialsFor } from '../../../src/cli/aor.ts';
import { resolveConfig, type ServerConfigFile } from '../../../src/cli/config.ts';
import { buildServices, type Services } from '../../../src/cli/serve.ts';
import { PIDF_NS } from '../../../src/services/presence/index.ts';
import { openSqliteStore, type SqliteStore } from '../../../src/store/sqlite/sqlite-store.ts';
import { within } from '../../support/server.ts';

export const DOMAIN = 'example.com';

export interface PresenceServer {
  readonly stack: Stack;
  readonly store: SqliteStore;
  readonly services: Services;
  readonly udp: number;
  close(): Promise<void>;
}

/** Adds the domain and `users` (password `USER-pw`) to a new store in `dir`. */
export async function seed(dir: string, users: readonly string[]): Promise<void> {
  const setup = openSqliteStore(dir);
  await setup.domains.add(DOMAIN);
  for (const u of users) {
    await setup.users.add(`sip:${u}@${DOMAIN}`, credentialsFor(u, DOMAIN, `${u}-pw`));
  }
  await setup.close();
}

export async function startPresenceServer(
  dir: string,
  presence: NonNullable<ServerConfigFile['presence']> = {},
  o: {
    ownsCallId?: (id: string) => boolean;
    start?: boolean;
    port?: number;
    /** RFC 3261 T1 of the server's stack, ms (Timer F = 64·T1). */
    t1?: number;
  } = {},
): Promise<PresenceServer> {
  const store = openSqliteStore(dir, { nonBlocking: true });
  const clock = systemClock();
  const random = cryptoRandom();
  const stack = await createStack({
    listen: [`udp:127.0.0.1:${o.port ?? 0}`],
    clock,
    random,
    ...(o.t1 !== undefined ? { timers: { T1: o.t1, T2: Math.max(o.t1, 40), T4: o.t1 * 10 } } : {}),
  });
  const config = resolveConfig({
    presence: { subscribeMinExpires: 1, pollInterval: 0.2, ...presence },
  });
  const services = buildServices({
    stack,
    store,
    config,
    clock,
    random,
    logger: process.env.SB_TEST_LOG === '1' ? consoleLogger() : silentLogger,
    ...(o.ownsCallId !== undefined ? { ownsCallId: o.ownsCallId } : {}),
  });
  if (o.start !== false) services.notifier.start();
  return {
    stack,
    store,
    services,
    udp: stack.transport.listeners[0]!.local.port,
    close: async () => {
      services.close();
      await services.notifier.close();
      await stack.close();
      await store.close();
    },
  };
}

export const pidf = (
  entity: string,
  tupleId: string,
  basic: 'open' | 'closed',
  note = '',
): string =>
  `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="${PIDF_NS}" entity="${entity}">
  <tuple id="${tupleId}"><status><basic>${basic}</basic></status>${note !== '' ? `<note>${note}</note>` : ''}</tuple>
</presence>
`;

/** A subscription as the watcher sees it. */
export interface WatcherSubscription {
  readonly response: SipResponse;
  readonly callId: string;
  readonly fromTag: string;
  readonly toTag: string | undefined;
  /** The server's Contact (the dialog's remote target). */
  readonly target: string | undefined;
  cseq: number;
  readonly event: string;
  /** The subscribed AOR (To). */
  readonly to: string;
}

export interface SubscribeOptions {
  readonly to?: string;
  readonly event?: string;
  readonly expires?: number;
  readonly accept?: string;
  /** From as written (default the watcher's own AOR). */
  readonly from?: string;
}

/**
 * A watcher: a stack that subscribes as `user` through the server and answers every
 * NOTIFY (200 unless `notifyStatus` says otherwise), keeping them in order.
 */
export class Watcher {
  readonly notifies: SipRequest[] = [];
  /** The status NOTIFYs are answered with; 0: none (the watcher is gone). */
  notifyStatus = 200;
  /** When set, NOTIFYs are answered only once it resolves (a slow watcher). */
  notifyGate: Promise<void> | undefined;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly stack: Stack,
    readonly user: string,
    private readonly server: () => number,
    readonly password: string,
  ) {
    const take = (req: {
      message: SipRequest;
      reply: (s: number) => Promise<unknown>;
    }): boolean => {
      if (req.message.method !== 'NOTIFY') return false;
      this.notifies.push(req.message);
      const status = this.notifyStatus;
      if (status !== 0) {
        const gate = this.notifyGate;
        if (gate === undefined) void req.reply(status).catch(() => undefined);
        else void gate.then(() => req.reply(status)).catch(() => undefined);
      }
      for (const w of this.waiters.splice(0)) w();
      return true;
    };
    stack.onRequest((req) => {
      if (!take(req)) void req.reply(405).catch(() => undefined);
    });
    stack.onOrphanRequest((req) => take(req));
  }

  static async create(
    server: () => number,
    user: string,
    password = `${user}-pw`,
  ): Promise<Watcher> {
    const stack = await createStack({ listen: ['udp:127.0.0.1:0'] });
    return new Watcher(stack, user, server, password);
  }

  get aor(): string {
    return `sip:${this.user}@${DOMAIN}`;
  }

  private get destination() {
    return { protocol: 'udp' as const, address: '127.0.0.1', port: this.server() };
  }

  private get contact(): string {
    return `<sip:${this.user}@127.0.0.1:${this.stack.transport.listeners[0]!.local.port}>`;
  }

  /** NOTIFYs of one subscription (by Call-ID). */
  of(sub: WatcherSubscription): SipRequest[] {
    return this.notifies.filter((n) => n.callId === sub.callId);
  }

  /** Waits until the subscription has at least `count` NOTIFYs; returns the last. */
  async waitNotify(sub: WatcherSubscription, count: number, ms = 5000): Promise<SipRequest> {
    const deadline = Date.now() + ms;
    while (this.of(sub).length < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        assert.fail(
          `waited ${ms} ms for NOTIFY #${count} of ${sub.callId}; got ${this.of(sub).length}`,
        );
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.of(sub)[count - 1]!;
  }

  async subscribe(o: SubscribeOptions = {}): Promise<WatcherSubscription> {
    const to = o.to ?? this.aor;
    const callId = this.stack.ids.callId();
    const fromTag = this.stack.ids.tag();
    const headers: [string, string][] = [['Event', o.event ?? 'presence']];
    if (o.expires !== undefined) headers.push(['Expires', String(o.expires)]);
    if (o.accept !== undefined) headers.push(['Accept', o.accept]);
    const req = createRequest({
      method: 'SUBSCRIBE',
      uri: to,
      from: `${o.from ?? `<${this.aor}>`};tag=${fromTag}`,
      to: `<${to}>`,
      callId,
      cseq: 1,
      contact: this.contact,
      headers,
    });
    const out = this.stack.send(req, {
      credentials: { username: this.user, password: this.password },
      destination: this.destination,
    });
    const response = await within(out.final, 10_000, 'SUBSCRIBE');
    const c = response.getRaw('Contact');
    return {
      response,
      callId,
      fromTag,
      toTag: response.to.tag,
      target: c === undefined ? undefined : /<([^>]+)>/.exec(c)?.[1],
      cseq: out.request.cseq.seq,
      event: o.event ?? 'presence',
      to,
    };
  }

  /** An in-dialog SUBSCRIBE (refresh; Expires 0 unsubscribes). */
  async refresh(
    sub: WatcherSubscription,
    expires: number,
    event = sub.event,
  ): Promise<SipResponse> {
    sub.cseq++;
    const req = createRequest({
      method: 'SUBSCRIBE',
      uri: sub.target ?? `sip:127.0.0.1:${this.server()}`,
      from: `<${this.aor}>;tag=${sub.fromTag}`,
      to: `<${sub.to}>;tag=${sub.toTag}`,
      callId: sub.callId,
      cseq: sub.cseq,
      contact: this.contact,
      headers: [
        ['Event', event],
        ['Expires', String(expires)],
      ],
    });
    return within(
      this.stack.send(req, { destination: this.destination }).final,
      10_000,
      'SUBSCRIBE refresh',
    );
  }

  /** PUBLISH of the watcher's own presence (it is a user too). */
  async publish(
    body: string,
    o: { ifMatch?: string; expires?: number; callId?: string } = {},
  ): Promise<SipResponse> {
    const headers: [string, string][] = [['Event', 'presence']];
    if (o.ifMatch !== undefined) headers.push(['SIP-If-Match', o.ifMatch]);
    if (o.expires !== undefined) headers.push(['Expires', String(o.expires)]);
    const req = createRequest({
      method: 'PUBLISH',
      uri: this.aor,
      from: `<${this.aor}>;tag=${this.stack.ids.tag()}`,
      to: `<${this.aor}>`,
      callId: o.callId ?? this.stack.ids.callId(),
      cseq: 1,
      headers,
      ...(body !== '' ? { body, contentType: 'application/pidf+xml' } : {}),
    });
    return within(
      this.stack.send(req, {
        credentials: { username: this.user, password: this.password },
        destination: this.destination,
      }).final,
      10_000,
      'PUBLISH',
    );
  }

  /** REGISTER of the watcher's own contact (Expires 0 removes it). */
  async register(expires: number): Promise<SipResponse> {
    const req = createRequest({
      method: 'REGISTER',
      uri: `sip:${DOMAIN}`,
      from: `<${this.aor}>;tag=${this.stack.ids.tag()}`,
      to: `<${this.aor}>`,
      callId: `reg-${this.user}-${this.stack.transport.listeners[0]!.local.port}`,
      cseq: ++this.regSeq,
      contact: this.contact,
      headers: [['Expires', String(expires)]],
    });
    const out = this.stack.send(req, {
      credentials: { username: this.user, password: this.password },
      destination: this.destination,
    });
    const r = await within(out.final, 10_000, 'REGISTER');
    this.regSeq = out.request.cseq.seq;
    return r;
  }

  private regSeq = 0;

  close(): Promise<void> {
    return this.stack.close();
  }
}

/** The Subscription-State of a NOTIFY: state, reason and expires. */
export function stateOf(n: SipRequest): { state: string; reason?: string; expires?: number } {
  const s = n.decode(SubscriptionStateHeader);
  assert.ok(s !== undefined && s.ok, `Subscription-State of ${n.getRaw('Subscription-State')}`);
  return {
    state: s.value.state,
    ...(s.value.reason !== undefined ? { reason: s.value.reason } : {}),
    ...(s.value.expires !== undefined ? { expires: s.value.expires } : {}),
  };
}

export const bodyOf = (n: SipRequest): string => new TextDecoder().decode(n.body);

/** The `<basic>` values of a PIDF body, in order. */
export const basics = (n: SipRequest): string[] =>
  [...bodyOf(n).matchAll(/<basic>(\w+)<\/basic>/g)].map((m) => m[1]!);

/** SB_TEST_LOG=1: the server's log on standard error. */
function consoleLogger(bindings: object = {}): Logger {
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      const o: Record<string, unknown> = { level, ...bindings, ...obj };
      if (o.err instanceof Error) o.err = o.err.stack;
      process.stderr.write(`${JSON.stringify(o)} ${msg ?? ''}\n`);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (b) => consoleLogger({ ...bindings, ...b }),
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
