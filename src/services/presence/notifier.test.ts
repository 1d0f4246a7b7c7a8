/**
 * The notifier (RFC 6665 §4.2) on a manual clock: a server stack and a watcher stack joined by
 * the in-memory transport pair, the store interfaces as in-memory fakes. What real time makes
 * slow or racy elsewhere: changes within one tick going out as one NOTIFY, one NOTIFY
 * outstanding per dialog (§4.2.2) with the latest state sent once it is answered, expiry at
 * the granted time (terminated;reason=timeout), a change made "by another process" (only in
 * the store) found by the poll, and a process that does not own the Call-ID sending nothing.
 * For the dialog package (RFC 4235): a call state written elsewhere found by the poll, a row
 * whose writer died leaving at its expiry (the recheck), a local change sent at once.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { ManualClock, seededRandom } from '../../base/index.ts';
import { createRequest, SubscriptionStateHeader, type SipRequest } from '../../sip/index.ts';
import { createStack, type IncomingRequest, type Stack } from '../../stack/index.ts';
import type {
  CreateSubscriptionResult,
  DialogStateStore,
  StoredDialogState,
  PresenceKey,
  PresenceRule,
  PresenceRuleStore,
  PresenceStore,
  StoredSubscription,
  SubscriptionChange,
  SubscriptionDialogId,
  SubscriptionStore,
  UserStore,
} from '../../store/index.ts';
import { createMemoryTransportPair } from '../../../test/support/memory-transport.ts';
import { createNotifier, type Notifier } from './notifier.ts';
import type { ComposedPresence, Presence } from './presence.ts';

const ALICE = 'sip:alice@example.com';
const BOB = 'sip:bob@example.com';

/** The store as the notifier sees it, in memory. */
class FakeStore {
  readonly subs = new Map<string, StoredSubscription>();
  readonly versions = new Map<string, { n: number; seq: number }>();
  readonly rules = new Map<string, PresenceRule>();
  seq = 0;
  /** The user's presence document, as a PUBLISH would have left it. */
  basic = 'closed';
  /** Call states (RFC 4235), as a tracker in any process would have written them. */
  readonly calls: StoredDialogState[] = [];

  private key = (id: SubscriptionDialogId): string => `${id.callId}|${id.localTag}|${id.remoteTag}`;

  bump(k: PresenceKey): void {
    const v = this.versions.get(`${k.aor}|${k.event}`) ?? { n: 0, seq: 0 };
    this.versions.set(`${k.aor}|${k.event}`, { n: v.n + 1, seq: ++this.seq });
  }

  version(k: PresenceKey): number {
    return this.versions.get(`${k.aor}|${k.event}`)?.n ?? 0;
  }

  subscriptions(): SubscriptionStore {
    return {
      create: async (s): Promise<CreateSubscriptionResult> => {
        this.subs.set(this.key(s), s);
        if (s.event === 'presence') this.bump({ aor: s.aor, event: 'presence.winfo' });
        return { ok: true };
      },
      get: async (id) => this.subs.get(this.key(id)),
      update: async (id, c: SubscriptionChange) => {
        const s = this.subs.get(this.key(id));
        if (s === undefined) return false;
        const next = { ...s } as Record<string, unknown>;
        for (const [k, v] of Object.entries(c)) {
          if (v === null) delete next[k];
          else if (v !== undefined) next[k] = v;
        }
        this.subs.set(this.key(id), next as unknown as StoredSubscription);
        return true;
      },
      remove: async (id) => this.subs.delete(this.key(id)),
      listFor: async (aor, event) =>
        [...this.subs.values()].filter((s) => s.aor === aor && s.event === event),
      countFor: async (aor) =>
        [...this.subs.values()].filter((s) => s.aor === aor && s.status !== 'terminated').length,
      dirty: async (nowMs, since) => ({
        due: [...this.subs.values()].filter((s) => {
          if (s.status === 'terminated') return false;
          const v = this.versions.get(`${s.aor}|${s.event}`);
          const moved = v !== undefined && v.seq > since && v.n !== s.notifiedVersion;
          return moved || s.expiresAt <= nowMs || s.recheckAt <= nowMs;
        }),
        seq: this.seq,
      }),
      purgeTerminated: async () => 0,
    };
  }

  ruleStore(): PresenceRuleStore {
    return {
      set: async (r) => {
        this.rules.set(`${r.aor}|${r.watcher}`, r);
        this.bump({ aor: r.aor, event: 'presence' });
      },
      remove: async () => false,
      get: async (aor, watcher) => this.rules.get(`${aor}|${watcher}`),
      list: async () => [],
    };
  }

  presenceStore(): PresenceStore {
    const unused = async (): Promise<never> => {
      throw new Error('not used by the notifier');
    };
    return {
      insert: unused,
      refresh: unused,
      modify: unused,
      remove: unused,
      get: unused,
      list: unused,
      purgeExpired: unused,
      version: async (k) => this.version(k),
      touch: async (k) => this.bump(k),
    };
  }

  dialogStore(): DialogStateStore {
    return {
      put: async (d) => {
        this.calls.push(d);
        this.bump({ aor: d.aor, event: 'dialog' });
      },
      list: async (aor, now) => this.calls.filter((d) => d.aor === aor && d.expiresAt > now),
      purgeExpired: async () => 0,
    };
  }

  users(): UserStore {
    return {
      get: async (aor: string) => (aor === ALICE || aor === BOB ? ({ aor } as never) : undefined),
    } as unknown as UserStore;
  }
}

interface Rig {
  clock: ManualClock;
  store: FakeStore;
  notifier: Notifier;
  /** Fires the compositor's change listeners (a PUBLISH in this process). */
  changed(): void;
  watcher: Stack;
  notifies: SipRequest[];
  /** NOTIFYs not answered yet, when `hold` is set. */
  held: IncomingRequest[];
  hold: boolean;
  subscribe(expires: number, event?: string): Promise<{ status: number; callId: string }>;
  /** Lets timers and the promises they start run. */
  run(ms: number): Promise<void>;
}

async function rig(owns: (callId: string) => boolean = () => true): Promise<Rig> {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 1 });
  const random = seededRandom(7);
  const server = await createStack({ transport: net.a, clock, random });
  const watcher = await createStack({ transport: net.b, clock, random: seededRandom(9) });
  const store = new FakeStore();
  const listeners = new Set<(aor: string) => void>();
  const presence: Presence = {
    handlePublish: async () => undefined,
    compose: async (aor): Promise<ComposedPresence> => ({
      aor,
      version: store.version({ aor, event: 'presence' }),
      document: `<presence entity="${aor}"><tuple id="t"><status><basic>${store.basic}</basic></status></tuple></presence>`,
      publications: 1,
      changesAt: Infinity,
    }),
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  const notifier = createNotifier({
    stack: server,
    presence,
    subscriptions: store.subscriptions(),
    rules: store.ruleStore(),
    versions: store.presenceStore(),
    users: store.users(),
    clock,
    minExpires: 60,
    pollIntervalMs: 1000,
    owns,
    dialogs: store.dialogStore(),
  });
  server.onRequest((req) => void notifier.handleSubscribe(req, ALICE, BOB));
  server.onOrphanRequest((req) => {
    void notifier.handleInDialog(req);
    return true;
  });
  const r: Rig = {
    clock,
    store,
    notifier,
    changed: () => {
      for (const l of listeners) l(ALICE);
    },
    watcher,
    notifies: [],
    held: [],
    hold: false,
    subscribe: async (expires, event = 'presence') => {
      const callId = watcher.ids.callId();
      const req = createRequest({
        method: 'SUBSCRIBE',
        uri: ALICE,
        from: `<${BOB}>;tag=${watcher.ids.tag()}`,
        to: `<${ALICE}>`,
        callId,
        cseq: 1,
        contact: '<sip:bob@192.0.2.2:5060>',
        headers: [
          ['Event', event],
          ['Expires', String(expires)],
        ],
      });
      const out = watcher.send(req, {
        destination: { protocol: 'udp', address: '192.0.2.1', port: 5060 },
      });
      await r.run(50);
      return { status: (await out.final).status, callId };
    },
    run: async (ms) => {
      for (let t = 0; t < ms; t += 5) {
        clock.advance(5);
        for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
  };
  const take = (req: IncomingRequest): boolean => {
    if (req.message.method !== 'NOTIFY') return false;
    r.notifies.push(req.message);
    if (r.hold) r.held.push(req);
    else void req.reply(200).catch(() => undefined);
    return true;
  };
  watcher.onRequest((req) => void take(req));
  watcher.onOrphanRequest(take);
  return r;
}

const state = (n: SipRequest): string => {
  const s = n.decode(SubscriptionStateHeader);
  assert.ok(s?.ok === true);
  return s.value.reason !== undefined ? `${s.value.state};${s.value.reason}` : s.value.state;
};
const basic = (n: SipRequest): string | undefined =>
  /<basic>(\w+)<\/basic>/.exec(new TextDecoder().decode(n.body))?.[1];

describe('createNotifier on a manual clock', () => {
  let r: Rig;
  beforeEach(async () => {
    r = await rig();
    r.notifier.start();
  });

  it('changes within one tick go out as one NOTIFY', async () => {
    const sub = await r.subscribe(600);
    assert.equal(sub.status, 200);
    await r.run(20);
    assert.equal(r.notifies.length, 1);
    for (const b of ['open', 'closed', 'open']) {
      r.store.basic = b;
      r.store.bump({ aor: ALICE, event: 'presence' });
      r.changed();
    }
    await r.run(100);
    assert.equal(r.notifies.length, 2);
    assert.equal(basic(r.notifies[1]!), 'open');
    await r.run(3000); // polls find nothing more
    assert.equal(r.notifies.length, 2);
    await r.notifier.close();
  });

  it('one NOTIFY outstanding per dialog; the latest state follows once it is answered', async () => {
    await r.subscribe(600);
    await r.run(20);
    r.hold = true;
    r.store.basic = 'open';
    r.store.bump({ aor: ALICE, event: 'presence' });
    r.changed();
    await r.run(50);
    assert.equal(r.notifies.length, 2);
    r.store.basic = 'closed';
    r.store.bump({ aor: ALICE, event: 'presence' });
    r.changed();
    await r.run(2000); // retransmissions of the held NOTIFY only (same CSeq)
    assert.deepEqual(
      [...new Set(r.notifies.slice(1).map((n) => n.cseq.seq))],
      [r.notifies[1]!.cseq.seq],
    );
    r.hold = false;
    await r.held[0]!.reply(200);
    await r.run(100);
    const last = r.notifies.at(-1)!;
    assert.equal(last.cseq.seq, r.notifies[1]!.cseq.seq + 1);
    assert.equal(basic(last), 'closed');
    await r.notifier.close();
  });

  it('at the granted expiry: terminated;reason=timeout, found by the poll', async () => {
    await r.subscribe(60);
    await r.run(20);
    assert.equal(state(r.notifies[0]!), 'active');
    await r.run(58_000);
    assert.equal(r.notifies.length, 1);
    await r.run(3000);
    assert.equal(r.notifies.length, 2);
    assert.equal(state(r.notifies[1]!), 'terminated;timeout');
    await r.notifier.close();
  });

  it('a change only in the store (another process) is found by the next poll', async () => {
    await r.subscribe(600);
    await r.run(20);
    r.store.basic = 'open';
    r.store.bump({ aor: ALICE, event: 'presence' }); // no onChange: another worker's PUBLISH
    await r.run(1100);
    assert.equal(r.notifies.length, 2);
    assert.equal(basic(r.notifies[1]!), 'open');
    await r.notifier.close();
  });
});

describe('createNotifier in a process that does not own the Call-ID', () => {
  it('sends nothing for changes (the owner does)', async () => {
    const r = await rig(() => false);
    r.notifier.start();
    await r.subscribe(600);
    await r.run(20);
    // The SUBSCRIBE itself is answered where it arrives, with its first NOTIFY.
    assert.equal(r.notifies.length, 1);
    r.store.bump({ aor: ALICE, event: 'presence' });
    r.changed();
    await r.run(3000);
    assert.equal(r.notifies.length, 1);
    await r.notifier.close();
  });
});

describe('createNotifier: the dialog package (RFC 4235)', () => {
  const call = (over: Partial<StoredDialogState>): StoredDialogState => ({
    aor: ALICE,
    id: 'd1',
    callId: 'call-1',
    direction: 'recipient',
    state: 'confirmed',
    localIdentity: ALICE,
    remoteIdentity: 'sip:carol@example.com',
    createdAt: 0,
    updatedAt: 0,
    expiresAt: Number.MAX_SAFE_INTEGER,
    ...over,
  });
  const dialogs = (n: SipRequest): string[] =>
    [...new TextDecoder().decode(n.body).matchAll(/<state[^>]*>(\w+)<\/state>/g)].map((m) => m[1]!);
  const version = (n: SipRequest): string | undefined =>
    /<dialog-info [^>]*version="(\d+)"/.exec(new TextDecoder().decode(n.body))?.[1];

  it('a call written by another process is found by the poll; a row that expires leaves at its recheck', async () => {
    const r = await rig();
    r.notifier.start();
    const sub = await r.subscribe(600, 'dialog');
    assert.equal(sub.status, 200);
    await r.run(20);
    assert.equal(r.notifies[0]!.getRaw('Content-Type'), 'application/dialog-info+xml');
    assert.deepEqual(dialogs(r.notifies[0]!), []);
    // Another worker forwarded the call and wrote its state (no local change signal).
    const now = r.clock.wallNow();
    await r.store.dialogStore().put(call({ expiresAt: now + 5000 }));
    await r.run(1100);
    assert.equal(r.notifies.length, 2);
    assert.deepEqual(dialogs(r.notifies[1]!), ['confirmed']);
    assert.equal(version(r.notifies[1]!), '1');
    // Its worker died: nothing ends the call but the row's expiry, found by the recheck.
    await r.run(5000);
    assert.equal(r.notifies.length, 3);
    assert.deepEqual(dialogs(r.notifies[2]!), []);
    assert.equal(version(r.notifies[2]!), '2');
    await r.notifier.close();
  });

  it('a change signalled in this process goes out at once', async () => {
    const r = await rig();
    r.notifier.start();
    await r.subscribe(600, 'dialog');
    await r.run(20);
    await r.store.dialogStore().put(call({ state: 'early' }));
    r.notifier.changed();
    await r.run(20);
    assert.equal(r.notifies.length, 2);
    assert.deepEqual(dialogs(r.notifies[1]!), ['early']);
    await r.notifier.close();
  });
});
