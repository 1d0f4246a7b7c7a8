/**
 * Instant messaging with offline store-and-forward (RFC 3428, page mode).
 *
 * The proxy forwards a MESSAGE from an authenticated local user to a local user's
 * registered contacts like any request (RFC 3261 §16: forked, the first 2xx wins). This
 * service adds, through the proxy's `MessageHooks`:
 *
 * - a size limit: a body over `maxBodyBytes` is answered 413 (RFC 3261 §21.4.11);
 * - store-and-forward: when the user has no binding, or no contact answered 2xx (a
 *   timeout, 408, 480, a 5xx, a transport error), the message is kept in the
 *   MessageStore (Content-Type, body, From, To) for `lifetimeMs` and answered
 *   **202 Accepted**: accepted for later delivery, not delivered (RFC 3261 §21.2.2 and
 *   RFC 3428 §7: a 202 "indicates that the request has been accepted for processing, but
 *   the processing has not been completed"). A user with `quota` messages waiting gets
 *   no more: the sender then gets the failure the proxy would have answered (480 when
 *   nobody is registered);
 * - order: while messages wait for a user, a new one is kept behind them (202) rather
 *   than forwarded ahead of them;
 * - delivery: after a REGISTER (`deliver`, the registrar's onRegistered) and every
 *   `retryIntervalMs` (`startSweeping`, over the store's pending AORs, which also picks
 *   up messages queued by `switchboard message send`), the user's messages are claimed
 *   (a lease: one deliverer at a time, whatever the process) and each is sent as a new
 *   MESSAGE to the user's contacts, reached as the proxy reaches them (Path, registered
 *   flow: proxy `reachTarget`), one at a time in order. A message is removed only after a
 *   2xx; at the first failure the rest are released and tried again at the next sweep.
 *
 * Everything that must survive a restart or be shared by a server's workers is in the
 * store; the only state here is which AORs this process is delivering to right now.
 */
import { silentLogger, type Clock, type Logger, type TimerHandle } from '../../base/index.ts';
import {
  createRequest,
  formatNameAddr,
  type NameAddr,
  type SipRequest,
  type SipResponse,
} from '../../sip/index.ts';
import type { IncomingRequest, Stack } from '../../stack/index.ts';
import type { Binding, LocationStore, MessageStore, StoredMessage } from '../../store/index.ts';
import { groupByQ, reachTarget, type MessageHooks, type Target } from '../proxy/index.ts';

/** One week, in ms: how long a kept message waits by default. */
export const DEFAULT_MESSAGE_LIFETIME_MS = 604_800_000;
export const DEFAULT_MESSAGE_QUOTA = 100;
export const DEFAULT_MESSAGE_RETRY_MS = 30_000;
/** Bodies above this get 413 by default (the transport's own limit is 64 KiB). */
export const DEFAULT_MESSAGE_MAX_BODY = 16_384;

/** Messages claimed per lease. */
const BATCH = 8;
/**
 * What one delivery attempt may take at most: a non-INVITE client transaction ends by
 * Timer F (64*T1 = 32 s, RFC 3261 §17.1.2.2), plus resolution and the store. A lease of
 * BATCH times this outlasts a whole batch, so that no other process claims a message
 * being delivered; a process that dies leaves its lease to run out.
 */
const ATTEMPT_BOUND_MS = 40_000;

export interface MessagingOptions {
  readonly stack: Stack;
  readonly location: LocationStore;
  readonly messages: MessageStore;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** How long a kept message waits for its user, ms (default one week). */
  readonly lifetimeMs?: number;
  /** Most messages kept per user (default 100; 0 keeps none). */
  readonly quota?: number;
  /** Between sweeps over the users with messages waiting, ms (default 30 s). */
  readonly retryIntervalMs?: number;
  /** Largest MESSAGE body accepted for local users, octets (default 16 KiB; larger: 413). */
  readonly maxBodyBytes?: number;
  /** Most contacts one kept message is sent to at once (default 16). */
  readonly maxBranches?: number;
}

export interface Messaging {
  /** For the proxy's `messages` option. */
  readonly hooks: MessageHooks;
  /**
   * Delivers what waits for `aor` to its current contacts (after a REGISTER); resolves
   * once done or stopped at a failure. Does nothing when nothing waits, when this
   * process already delivers to `aor`, or when another holds the lease.
   */
  deliver(aor: string): Promise<void>;
  /** Sweeps at once, then every `retryIntervalMs` on the clock (purge, then delivery). */
  startSweeping(): void;
  /**
   * Stops the sweeps (and new deliveries). A delivery in progress ends with its
   * transaction (the stack's close ends them): what it had not delivered is released.
   */
  close(): Promise<void>;
}

type Outcome = 'delivered' | 'refused' | 'failed';

/**
 * Answers that refuse the message itself rather than say the user cannot take it now:
 * retrying would get the same, and would hold back every later message of the user for
 * the whole lifetime. A kept message that every contact refuses so is deleted (logged):
 * 400, 413 (too large, RFC 3261 §21.4.11), 415 (a Content-Type the phone does not take,
 * §21.4.13; RFC 3428 §7), 488 and 606 (not acceptable), 603 (declined).
 */
const REFUSED: ReadonlySet<number> = new Set([400, 413, 415, 488, 603, 606]);

/** Failures after which a message is kept: nobody there, or not able to take it now. */
function keepAfter(status: number): boolean {
  return status === 408 || status === 480 || (status >= 500 && status < 600);
}

export function createMessaging(options: MessagingOptions): Messaging {
  const { stack, location, messages, clock } = options;
  const logger = options.logger ?? silentLogger;
  const lifetimeMs = options.lifetimeMs ?? DEFAULT_MESSAGE_LIFETIME_MS;
  const quota = options.quota ?? DEFAULT_MESSAGE_QUOTA;
  const retryIntervalMs = options.retryIntervalMs ?? DEFAULT_MESSAGE_RETRY_MS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MESSAGE_MAX_BODY;
  const maxBranches = options.maxBranches ?? 16;
  /** AORs this process is delivering to, with the run. */
  const delivering = new Map<string, Promise<void>>();
  let timer: TimerHandle | undefined;
  let sweeping: Promise<void> = Promise.resolve();
  let stopped = false;

  // ---- keeping ----------------------------------------------------------------

  /** The From value without its tag: the delivery is a new request with a new tag. */
  function fromWithoutTag(m: SipRequest): string {
    const f = m.from;
    const kept: NameAddr = {
      ...(f.displayName !== undefined ? { displayName: f.displayName } : {}),
      uri: f.uri,
      params: f.params.filter((p) => p.name.toLowerCase() !== 'tag'),
    };
    return formatNameAddr(kept);
  }

  /** Keeps the MESSAGE for `aor` and answers 202; false (nothing answered) over quota. */
  async function keep(req: IncomingRequest, aor: string): Promise<boolean> {
    const m = req.message;
    const now = clock.wallNow();
    const r = await messages.enqueue(
      {
        aor,
        from: fromWithoutTag(m),
        to: m.getRaw('To') ?? `<${aor}>`,
        contentType: m.getRaw('Content-Type') ?? '',
        body: m.body,
        receivedAt: now,
        expiresAt: now + lifetimeMs,
      },
      quota,
    );
    if (!r.ok) {
      logger.warn({ aor, callId: m.callId, quota }, 'messaging: quota full, message refused');
      return false;
    }
    logger.info({ aor, id: r.id, callId: m.callId }, 'messaging: message kept for later delivery');
    // RFC 3428 §7 / RFC 3261 §21.2.2: accepted for later delivery, not delivered.
    await req.reply(202, { reason: 'Accepted (stored for later delivery)' });
    return true;
  }

  const hooks: MessageHooks = {
    async before(req, aor) {
      const m = req.message;
      if (m.body.length > maxBodyBytes) {
        // RFC 3261 §21.4.11: "The server is refusing to process a request because the
        // request entity-body is larger than the server is willing or able to process."
        await req.reply(413, { reason: 'Message Body Too Large' });
        return true;
      }
      if ((await messages.count(aor, clock.wallNow())) === 0) return false;
      // Messages wait already: this one goes behind them, or it would arrive first.
      if (!(await keep(req, aor))) {
        await req.reply(480, { reason: 'Temporarily Unavailable (message store full)' });
        return true;
      }
      void deliver(aor);
      return true;
    },
    async undeliverable(req, aor, best) {
      if (best !== undefined && !keepAfter(best.status)) return false;
      return keep(req, aor);
    },
  };

  // ---- delivering -----------------------------------------------------------------

  /**
   * Sends one kept message to every contact at once (as the proxy forks): `delivered` at
   * the first 2xx; `refused` when every contact refused the message itself (REFUSED);
   * else `failed`. Each contact's destinations are tried in order while the answer is a
   * transport failure or a 503 (RFC 3263 §4.3).
   */
  async function send(message: StoredMessage, bindings: readonly Binding[]): Promise<Outcome> {
    const targets = groupByQ(bindings, maxBranches).flat();
    const base = createRequest({
      method: 'MESSAGE',
      uri: targets[0]!.uri,
      from: `${message.from};tag=${stack.ids.tag()}`,
      to: message.to,
      callId: stack.ids.callId(),
      cseq: 1,
      // RFC 3428 §7 allows Date: it tells the user when the message was sent, not delivered.
      headers: [['Date', new Date(message.receivedAt).toUTCString()]],
      body: message.body,
      ...(message.contentType !== '' ? { contentType: message.contentType } : {}),
    });
    /** The final status from one contact (0: unreachable). */
    const one = async (target: Target): Promise<number> => {
      const reached = await reachTarget(base, target, (uri) => stack.resolve(uri));
      if (reached === undefined) return 0;
      let status = 0;
      for (const dest of reached.dests) {
        const res: SipResponse = await stack.send(reached.request, { destination: dest }).final;
        status = res.status;
        if (status !== 503) break;
      }
      if (status >= 300) {
        logger.info(
          { aor: message.aor, id: message.id, contact: target.uri, status },
          'messaging: a contact did not take a kept message',
        );
      }
      return status;
    };
    return new Promise<Outcome>((resolve) => {
      let left = targets.length;
      let refusals = 0;
      const done = (status: number): void => {
        left--;
        if (status >= 200 && status < 300) resolve('delivered');
        if (REFUSED.has(status)) refusals++;
        if (left === 0) resolve(refusals === targets.length ? 'refused' : 'failed');
      };
      for (const t of targets) {
        one(t).then(done, (err: unknown) => {
          logger.warn({ err, contact: t.uri }, 'messaging: sending a kept message failed');
          done(0);
        });
      }
    });
  }

  /** Delivers the claimed `batch` in order; false at the first message not delivered. */
  async function deliverBatch(aor: string, batch: readonly StoredMessage[]): Promise<boolean> {
    for (let i = 0; i < batch.length; i++) {
      const m = batch[i]!;
      const bindings = stopped ? [] : await location.lookup(aor, clock.wallNow());
      const outcome = bindings.length > 0 ? await send(m, bindings) : 'failed';
      if (outcome === 'failed') {
        for (const rest of batch.slice(i)) await messages.release(rest.id);
        return false;
      }
      await messages.remove(m.id);
      if (outcome === 'delivered')
        logger.info({ aor, id: m.id }, 'messaging: kept message delivered');
      else {
        logger.warn(
          { aor, id: m.id, from: m.from, contentType: m.contentType },
          'messaging: every contact refused a kept message; deleted',
        );
      }
    }
    return true;
  }

  async function run(aor: string): Promise<void> {
    for (;;) {
      const now = clock.wallNow();
      // A read first: most REGISTERs find nothing waiting, and a claim is a write.
      if ((await messages.count(aor, now)) === 0) return;
      if ((await location.lookup(aor, now)).length === 0) return;
      const batch = await messages.claim(aor, now, BATCH * ATTEMPT_BOUND_MS, BATCH);
      if (batch.length === 0) return; // another deliverer holds the lease
      if (!(await deliverBatch(aor, batch))) return;
    }
  }

  function deliver(aor: string): Promise<void> {
    if (stopped) return Promise.resolve();
    const running = delivering.get(aor);
    if (running !== undefined) return running;
    const p = run(aor)
      .catch((err: unknown) => logger.warn({ err, aor }, 'messaging: delivery failed'))
      .finally(() => delivering.delete(aor));
    delivering.set(aor, p);
    return p;
  }

  async function sweep(): Promise<void> {
    const now = clock.wallNow();
    const purged = await messages.purgeExpired(now);
    if (purged > 0) logger.info({ purged }, 'messaging: expired messages deleted');
    for (const aor of await messages.pendingAors(now)) {
      if (stopped) return;
      // Not awaited: one user's slow contact does not hold the others back.
      void deliver(aor);
    }
  }

  function startSweeping(): void {
    const tick = (): void => {
      timer = undefined;
      sweeping = sweep()
        .catch((err: unknown) => logger.warn({ err }, 'messaging: sweep failed'))
        .finally(() => {
          if (!stopped) timer = clock.setTimer(retryIntervalMs, tick);
        });
    };
    tick();
  }

  return {
    hooks,
    deliver,
    startSweeping,
    close: async () => {
      stopped = true;
      timer?.cancel();
      await sweeping;
    },
  };
}
