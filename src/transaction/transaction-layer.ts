/**
 * The transaction layer (RFC 3261 §17): it sits on a TransportLayer, files
 * every transaction under its matching key (§17.1.3, §17.2.3), feeds inbound
 * messages to the four state machines, and hands the TU what is left over:
 * new requests, ACKs for 2xx, CANCELs, and stray responses.
 *
 * One instance per stack (STYLE §3): its clock, timers, logger and id source
 * are injected, and its tables live in the instance. Terminated transactions
 * leave the tables at once (§17.1.1.2: "it MUST be destroyed immediately"), and
 * the number of live server transactions is capped.
 */
import type { Clock } from '../base/clock.ts';
import { SwitchboardError } from '../base/errors.ts';
import { createIdGenerator, cryptoRandom, type IdGenerator } from '../base/ids.ts';
import { ownString } from '../base/text.ts';
import type { Logger } from '../base/logger.ts';
import { createResponse } from '../sip/message/builder.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import {
  TransportError,
  type Destination,
  type InboundRequest,
  type InboundResponse,
  type ListenerInfo,
  type TransportLayer,
} from '../transport/transport.ts';
import {
  createTransactionContext,
  sendSafely,
  type TransactionContext,
  type TransactionEvent,
} from './context.ts';
import { InviteClientTransaction, type InviteClientHost } from './invite-client.ts';
import { InviteServerTransaction, type InviteServerHost } from './invite-server.ts';
import {
  clientKeyOfRequest,
  clientKeyOfResponse,
  isRfc3261Branch,
  keyOrUndefined,
  rfc2543AckKey,
  serverKey,
  serverKeyOf,
  serverKeyWithoutMethod,
} from './matching.ts';
import { NonInviteClientTransaction, type NonInviteClientHost } from './non-invite-client.ts';
import { NonInviteServerTransaction, type NonInviteServerHost } from './non-invite-server.ts';
import { WaitQueue, type TransactionTimers, type Waiter } from './timers.ts';

/** A client transaction (§17.1): `kind` tells the INVITE machine (with `cancel()`) from the other. */
export type ClientTransaction = InviteClientTransaction | NonInviteClientTransaction;

/** A server transaction (§17.2): `kind` tells the INVITE machine from the non-INVITE one. */
export type ServerTransaction = InviteServerTransaction | NonInviteServerTransaction;

/**
 * Non-INVITE methods whose server transactions are not indexed for CANCEL. A CANCEL of a
 * non-INVITE request has no effect beyond its 200 (RFC 3261 §9.2), and is rare, while every
 * MESSAGE, REGISTER or BYE would otherwise pay for a key and two map operations: such a CANCEL
 * is matched by trying these methods' keys instead (`cancelTarget`). Other methods (extensions)
 * stay indexed.
 */
const FOUND_BY_METHOD: ReadonlySet<string> = new Set([
  'BYE',
  'INFO',
  'MESSAGE',
  'NOTIFY',
  'OPTIONS',
  'PRACK',
  'PUBLISH',
  'REFER',
  'REGISTER',
  'SUBSCRIBE',
  'UPDATE',
]);

/** The TU of a client transaction (§17.1; SIP.js calls it ClientTransactionUser too). */
export interface ClientTransactionUser {
  /**
   * Provisional and final responses. For INVITE, every 2xx too: the first one,
   * its retransmissions and the 2xx of other forks while in Accepted (RFC 6026
   * §8.4); the TU sends the ACK for a 2xx itself (`sendAck`).
   */
  onResponse(res: SipResponse, tx: ClientTransaction): void;
  /** Timer B or F fired (or §9.1's 64*T1 after a CANCEL); the TU treats it as 408 (§8.1.3.1). */
  onTimeout(tx: ClientTransaction): void;
  /** The request (or the ACK) could not be sent; the TU treats it as 503 (§8.1.3.1). */
  onTransportError(tx: ClientTransaction, error: Error): void;
  /** The transaction entered Terminated and left the layer's tables. */
  onTerminated?(tx: ClientTransaction): void;
}

/** Optional callbacks of a server transaction's TU, installed with `tx.setUser(...)`. */
export interface ServerTransactionUser {
  /** INVITE only: Timer H fired, the ACK for a non-2xx final response never came (§17.2.1). */
  onTimeout?(tx: ServerTransaction): void;
  /** A response could not be sent (§17.2.4). */
  onTransportError?(tx: ServerTransaction, error: Error): void;
  onTerminated?(tx: ServerTransaction): void;
}

/** What the layer hands up to the TU (the UA core, the proxy core, the dialog layer). */
export interface TransactionLayerDelegate {
  /**
   * A new request, in its new server transaction: every method except ACK, and
   * except a CANCEL that matched a transaction (the layer answers that one
   * itself, see `onCancel`). Answer with `tx.respond(...)`; an INVITE gets 100
   * Trying from the transaction if nothing is sent within 200 ms (§17.2.1).
   */
  onRequest(tx: ServerTransaction): void;
  /**
   * A new request (no transaction matched it; not ACK, not CANCEL), offered before a server
   * transaction is made for it. True when the TU answered it as a stateless UAS (RFC 3261
   * §8.2.7: "The stateless UAS role is needed primarily to handle unauthenticated requests
   * for which a challenge response is issued") and the layer makes none: its retransmissions
   * are offered again and must get the same answer. Called before the table's bound is
   * checked, since such an answer takes no room in it.
   */
  screen?(inbound: InboundRequest): boolean;
  /**
   * An ACK that is not part of a non-2xx INVITE transaction: the ACK for a 2xx
   * (its own transaction, §17.1.1.3), which goes to the dialog layer. `tx` is
   * the INVITE server transaction when the ACK matched one in Accepted (RFC 6026
   * §8.7: "the ACK must be passed up to the TU").
   */
  onAck?(ack: InboundRequest, tx?: InviteServerTransaction): void;
  /**
   * A CANCEL matched an INVITE server transaction in Proceeding (§9.2). The
   * layer has already answered the CANCEL with 200; "the UAS SHOULD immediately
   * respond to the INVITE with a 487 (Request Terminated)":
   * `inviteTx.respond(createResponse(inviteTx.request, 487, { toTag }))`.
   * Without this callback the layer sends that 487 itself.
   */
  onCancel?(inviteTx: InviteServerTransaction, cancel: SipRequest): void;
  /**
   * A response that matched no client transaction (a "stray" response). Without
   * this callback it is dropped, as §17.1.3 and §18.1.2 (as tightened by RFC
   * 6026) have every element but a stateless proxy do. The hook lets the core
   * decide: a UAC may re-ACK a 2xx retransmitted after Timer M (§13.2.2.4).
   */
  onStrayResponse?(res: InboundResponse): void;
}

export interface TransactionLayerOptions {
  readonly transport: TransportLayer;
  readonly clock: Clock;
  /** T1, T2, T4 (RFC 3261 Table 4); defaults 500, 4000, 5000 ms. */
  readonly timers?: Partial<TransactionTimers>;
  readonly logger?: Logger;
  /** Diagnostic events (state changes, timers, retransmissions, strays, overload). */
  readonly onEvent?: (event: TransactionEvent) => void;
  /**
   * Most live server transactions. When the table is full, the oldest ones that only wait to
   * absorb retransmissions (64*T1) and have waited 2*T2 are ended early to make room; when
   * there are none, a new request is refused statelessly with 503 and Retry-After (§21.5.4)
   * instead of growing the table. Default 10000.
   */
  readonly maxServerTransactions?: number;
  /**
   * Most server transactions for requests from one source address (the IP a request came
   * from): beyond it, that source's new requests get the same 503 while others are still
   * served, so one flooding host cannot take the whole table. Counted: the transactions in
   * progress, and the finished ones for their first 2*T2 (8 s) only, after which the table
   * may end them to make room (`maxServerTransactions`); so a share of N serves N / 8 s
   * requests a second from one address, not N / 32 s. Default: no limit besides
   * maxServerTransactions.
   */
  readonly maxServerTransactionsPerSource?: number;
  /** Retry-After seconds of that 503; default 5. */
  readonly overloadRetryAfter?: number;
  /** To tags of the responses the layer makes (200/481 to CANCEL, 503); default Web Crypto. */
  readonly ids?: IdGenerator;
  /**
   * A CANCEL that matches no transaction: 'respond-481' (a UAS, §9.2: it
   * "SHOULD respond to the CANCEL with a 481") or 'deliver' to onRequest (a
   * proxy forwards it statelessly, §16.10). Default 'respond-481'.
   */
  readonly unmatchedCancel?: 'respond-481' | 'deliver';
}

export const DEFAULT_MAX_SERVER_TRANSACTIONS = 10_000;

const noop = (): void => {};

export class TransactionLayer {
  private readonly transport: TransportLayer;
  private readonly ctx: TransactionContext;
  private readonly ids: IdGenerator;
  private readonly maxServer: number;
  private readonly maxPerSource: number;
  /** Counted server transactions per source address (only with maxPerSource). */
  private readonly perSource = new Map<string, number>();
  /**
   * Finished server transactions no longer counted against their source: those that have
   * waited out `minKeepMs` of their 64*T1 (`uncountLater`).
   */
  private readonly uncounted = new WeakSet<ServerTransaction>();
  /** Ends the count of each finished server transaction `minKeepMs` after it finished. */
  private uncountQueue: WaitQueue | undefined;
  private readonly retryAfter: number;
  /** Requests refused with 503 since the last log line of it, and when that was. */
  private refused = 0;
  private refusedLoggedAt = -Infinity;
  /** How long a finished transaction is kept at least when the table is full (`makeRoom`). */
  private readonly minKeepMs: number;
  private readonly unmatchedCancel: 'respond-481' | 'deliver';
  private delegate: TransactionLayerDelegate | undefined;
  private readonly clients = new Map<string, ClientTransaction>();
  private readonly servers = new Map<string, ServerTransaction>();
  /** §9.2: the transaction a CANCEL cancels, by the §17.2.3 key without method. */
  private readonly byCancelKey = new Map<string, ServerTransaction>();
  /** §17.2.3: RFC 2543 INVITE transactions, by the fields an ACK shares with its INVITE. */
  private readonly byRfc2543Ack = new Map<string, InviteServerTransaction>();
  private closed = false;
  /** False once `stopAccepting()` was called: new requests are dropped. */
  private accepting = true;
  /**
   * INVITE server transactions by Call-ID, CSeq number and From tag, which the ACK for
   * a 2xx shares with its INVITE (§13.2.2.4, §17.1.1.3): that ACK is a transaction of
   * its own, so this is how `pending` learns that an accepted INVITE got its ACK.
   */
  private readonly invitesByDialogKey = new Map<string, InviteServerTransaction>();
  private readonly ackedAccepted = new WeakSet<InviteServerTransaction>();
  private readonly inviteClientHost: InviteClientHost;
  private readonly nonInviteClientHost: NonInviteClientHost;
  private readonly inviteServerHost: InviteServerHost;
  private readonly nonInviteServerHost: NonInviteServerHost;

  constructor(o: TransactionLayerOptions) {
    const max = o.maxServerTransactions ?? DEFAULT_MAX_SERVER_TRANSACTIONS;
    if (!Number.isInteger(max) || max < 1) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `maxServerTransactions ${max}`);
    }
    const perSource = o.maxServerTransactionsPerSource ?? Infinity;
    if (!(perSource === Infinity || (Number.isInteger(perSource) && perSource >= 1))) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `maxServerTransactionsPerSource ${perSource}`,
      );
    }
    this.transport = o.transport;
    // Only a per-source share needs to hear of the waits begun (`uncountLater`).
    this.ctx = createTransactionContext(
      perSource === Infinity ? o : { ...o, onWait: (ms, w) => this.uncountLater(ms, w) },
    );
    this.ids = o.ids ?? createIdGenerator(cryptoRandom());
    this.maxServer = max;
    this.maxPerSource = perSource;
    this.retryAfter = o.overloadRetryAfter ?? 5;
    this.minKeepMs = 2 * this.ctx.timers.T2;
    this.unmatchedCancel = o.unmatchedCancel ?? 'respond-481';

    const ctx = this.ctx;
    const sendRequest = (req: SipRequest, dest: Destination): Promise<void> =>
      this.transport.sendRequest(req, dest);
    const sendResponse = this.transport.sendResponse.bind(this.transport);
    this.nonInviteClientHost = {
      ctx,
      sendRequest,
      terminated: (tx) => this.forgetClient(tx),
    };
    this.inviteClientHost = {
      ctx,
      sendRequest,
      terminated: (tx) => this.forgetClient(tx),
      startCancel: (cancel, dest, user) => {
        if (this.closed) return undefined;
        const tx = this.startClient(cancel, dest, user);
        return tx instanceof NonInviteClientTransaction ? tx : undefined;
      },
    };
    this.inviteServerHost = {
      ctx,
      sendResponse,
      terminated: (tx) => this.forgetServer(tx),
      ackToUser: (ack, tx) => this.ackToUser(ack, tx),
    };
    this.nonInviteServerHost = {
      ctx,
      sendResponse,
      terminated: (tx) => this.forgetServer(tx),
    };

    this.transport.setDelegate({
      onRequest: (req) => this.receiveRequest(req),
      onResponse: (res) => this.receiveResponse(res),
      onConnectionClosed: (id) => this.connectionClosed(id),
    });
  }

  setDelegate(delegate: TransactionLayerDelegate): void {
    this.delegate = delegate;
  }

  /** The listener a request to `dest` leaves from, for its Via sent-by and Contact (§18.1.1). */
  listenerFor(dest: Destination): ListenerInfo | undefined {
    return this.transport.listenerFor(dest);
  }

  /**
   * Starts a client transaction (§17.1) for `req`, which already carries its
   * top Via with a fresh RFC 3261 branch (§8.1.1.7). INVITE gets the machine of
   * §17.1.1, every other method but ACK the one of §17.1.2. Throws (a
   * programming error) for ACK (see `sendAck`), for a request without a
   * magic-cookie branch, for a branch already in use, and after `close()`.
   */
  sendRequest(req: SipRequest, dest: Destination, user: ClientTransactionUser): ClientTransaction {
    if (this.closed) throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'layer closed');
    if (req.method === 'ACK') {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        'an ACK has no client transaction (§17.1.1.3): use sendAck',
      );
    }
    if (!isRfc3261Branch(req.topVia.branch)) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        'the top Via needs a branch starting with z9hG4bK (RFC 3261 §8.1.1.7)',
      );
    }
    return this.startClient(req, dest, user);
  }

  /**
   * Sends an ACK for a 2xx, which is its own transaction and has no machine
   * (§17.1.1.3, §13.2.2.4): the TU sends it, and sends it again for each 2xx
   * retransmission.
   */
  sendAck(ack: SipRequest, dest: Destination): Promise<void> {
    if (ack.method !== 'ACK') {
      return Promise.reject(new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'not an ACK'));
    }
    return sendSafely(() => this.transport.sendRequest(ack, dest));
  }

  /** A live client transaction by id (its §17.1.3 key). */
  clientTransaction(id: string): ClientTransaction | undefined {
    return this.clients.get(id);
  }

  /** A live server transaction by id (its §17.2.3 key). */
  serverTransaction(id: string): ServerTransaction | undefined {
    return this.servers.get(id);
  }

  /** Live transactions in the tables. */
  get size(): { readonly client: number; readonly server: number } {
    return { client: this.clients.size, server: this.servers.size };
  }

  /**
   * Live transactions that still have protocol work to do, what a server that shuts
   * down waits for (RFC 3261 has no shutdown procedure; this is the state a
   * transaction must leave to have done its job):
   *
   * - client: no final response yet (INVITE Calling/Proceeding, non-INVITE
   *   Trying/Proceeding);
   * - server: no final response sent yet (INVITE Proceeding, non-INVITE
   *   Trying/Proceeding); an INVITE whose non-2xx final response awaits its ACK
   *   (Completed: the response may still need retransmitting, §17.2.1); an INVITE
   *   answered with a 2xx whose ACK has not passed yet (Accepted, RFC 6026 §8.7: the
   *   ACK is a transaction of its own that may still need forwarding).
   *
   * Not counted: transactions that only absorb retransmissions after their job is done
   * (client Completed/Accepted, server non-INVITE Completed, INVITE Confirmed; Timers
   * D, K, M, J, I), which can last 32 s over UDP.
   */
  get pending(): { readonly client: number; readonly server: number } {
    let client = 0;
    for (const tx of this.clients.values()) {
      const st = tx.state;
      if (st === 'calling' || st === 'trying' || st === 'proceeding') client++;
    }
    let server = 0;
    for (const tx of this.servers.values()) {
      if (tx.kind === 'invite') {
        const st = tx.state;
        if (
          st === 'proceeding' ||
          st === 'completed' ||
          (st === 'accepted' && !this.ackedAccepted.has(tx))
        ) {
          server++;
        }
      } else if (tx.state === 'trying' || tx.state === 'proceeding') {
        server++;
      }
    }
    return { client, server };
  }

  /** False after `stopAccepting()`. */
  get isAccepting(): boolean {
    return this.accepting;
  }

  /**
   * Takes no new work, for a server that drains before it stops: from now on a
   * request that matches no live transaction (§17.2.3) is dropped unanswered, as if
   * the server were already gone, while retransmissions, ACKs and CANCELs that match
   * live transactions still reach them so that they can finish (see `pending`). ACKs
   * for 2xx still go to the TU (a proxy forwards them). Client transactions can still
   * be started (a proxy's branches, CANCELs). Idempotent.
   */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * Ends every transaction without notifying their users, cancels all their
   * timers, and ignores whatever arrives afterwards. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const tx of [...this.clients.values()]) tx.abort();
    for (const tx of [...this.servers.values()]) tx.abort();
    this.ctx.closeWaits();
    this.uncountQueue?.close();
    this.clients.clear();
    this.servers.clear();
    this.byCancelKey.clear();
    this.byRfc2543Ack.clear();
    this.invitesByDialogKey.clear();
  }

  // ---- client side ---------------------------------------------------------

  private startClient(
    req: SipRequest,
    dest: Destination,
    user: ClientTransactionUser,
  ): ClientTransaction {
    const id = clientKeyOfRequest(req);
    if (id === undefined) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'the top Via needs a branch');
    }
    if (this.clients.has(id)) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `a client transaction with branch ${req.topVia.branch} and method ${req.method} is live`,
      );
    }
    const tx: ClientTransaction =
      req.method === 'INVITE'
        ? new InviteClientTransaction({
            id,
            request: req,
            destination: dest,
            host: this.inviteClientHost,
            user,
          })
        : new NonInviteClientTransaction({
            id,
            request: req,
            destination: dest,
            host: this.nonInviteClientHost,
            user,
          });
    this.clients.set(id, tx);
    this.ctx.emit({ type: 'created', side: 'client', kind: tx.kind, id, method: req.method });
    tx.start();
    return tx;
  }

  private forgetClient(tx: ClientTransaction): void {
    if (this.clients.get(tx.id) === tx) this.clients.delete(tx.id);
  }

  /** RFC 3261 §18.1.2: a response goes to its client transaction (§17.1.3), else to onStrayResponse. */
  private receiveResponse(inbound: InboundResponse): void {
    if (this.closed) return;
    const res = inbound.message;
    const id = keyOrUndefined(() => clientKeyOfResponse(res));
    const tx = id === undefined ? undefined : this.clients.get(id);
    if (tx !== undefined) {
      tx.receiveResponse(res);
      return;
    }
    const method = keyOrUndefined(() => res.cseq.method) ?? '';
    this.ctx.emit({ type: 'stray-response', status: res.status, method });
    const onStray = this.delegate?.onStrayResponse;
    if (onStray !== undefined) {
      const d = this.delegate;
      this.ctx.callUser('stray', () => onStray.call(d, inbound));
    }
  }

  /**
   * A stream connection closed. Client transactions whose destination named
   * that connection cannot get their response any more (it would come back on
   * it): they fail as on a transport error. Server transactions stay: the
   * transport reopens a connection to send responses (§18.2.2).
   */
  private connectionClosed(connectionId: string): void {
    if (this.closed) return;
    for (const tx of [...this.clients.values()]) {
      if (tx.destination.connectionId !== connectionId) continue;
      tx.transportFailed(
        new TransportError('SB_ERR_TRANSPORT_CLOSED', `connection ${connectionId} closed`),
      );
    }
  }

  // ---- server side ---------------------------------------------------------

  private receiveRequest(inbound: InboundRequest): void {
    if (this.closed) return;
    try {
      this.dispatchRequest(inbound);
    } catch (error) {
      // A request built without the headers matching needs (the parser never lets one through).
      this.ctx.logger.warn({ error }, 'request dropped: cannot be matched');
      this.ctx.emit({ type: 'unmatchable', what: 'request' });
    }
  }

  private dispatchRequest(inbound: InboundRequest): void {
    const req = inbound.message;
    if (req.method === 'ACK') {
      this.receiveAck(inbound);
      return;
    }
    const id = serverKey(req);
    const existing = this.servers.get(id);
    if (existing !== undefined) {
      // §17.2.3: a retransmission goes to the transaction it matches.
      existing.receiveRequest(inbound);
      return;
    }
    if (!this.accepting) {
      // Draining: only a CANCEL of a live transaction is still work of ours (§9.2).
      const cancelsLive = req.method === 'CANCEL' && this.cancelTarget(req) !== undefined;
      if (!cancelsLive || !this.receiveCancel(inbound, id)) {
        this.ctx.logger.debug({ method: req.method, id }, 'not accepting: request dropped');
      }
      return;
    }
    if (req.method === 'CANCEL' && this.receiveCancel(inbound, id)) return;
    if (req.method !== 'CANCEL' && this.screened(inbound)) return;
    if (this.servers.size >= this.maxServer) this.makeRoom();
    if (this.full(inbound)) {
      this.refuseOverload(inbound);
      return;
    }
    const tx = this.createServer(inbound, id);
    const delegate = this.delegate;
    if (delegate === undefined) {
      this.ctx.logger.warn({ id }, 'no transaction layer delegate: 503');
      void tx.respond(createResponse(req, 503, { toTag: this.ids.tag() })).catch(noop);
      return;
    }
    this.ctx.callUser(id, () => delegate.onRequest(tx));
  }

  /** The delegate's `screen`; one that throws is contained, and the request goes on. */
  private screened(inbound: InboundRequest): boolean {
    const d = this.delegate;
    if (d?.screen === undefined) return false;
    try {
      return d.screen(inbound);
    } catch (error) {
      this.ctx.logger.error({ error }, 'transaction user threw in screen');
      this.ctx.emit({ type: 'user-error', id: '', error });
      return false;
    }
  }

  /**
   * The table is full: ends early the oldest transactions whose work is done and which only
   * wait out 64*T1 to absorb retransmissions (§17.2.2 Timer J of a non-INVITE server
   * transaction over UDP; RFC 6026 §8.7 Timer L and §8.4 Timer M of an accepted INVITE),
   * provided they have waited `minKeepMs` (2*T2). Kept the full 64*T1 at any rate, they would
   * cap a process at maxServerTransactions / 32 s (3,125 REGISTERs a second at the default
   * 100,000), however fast it serves, and refuse the rest with 503. A UAC retransmits a
   * non-INVITE request at most T2 apart (§17.1.2.2), so a final response lost once is asked
   * for again within T2 and still found; what an early end gives up is the answer to a request
   * whose responses were lost for 8 s and more, which is then served as a new one.
   */
  private makeRoom(): void {
    const n = this.ctx.endWaitsEarly(
      this.ctx.values(false).J,
      this.minKeepMs,
      () => this.servers.size < this.maxServer,
    );
    if (n > 0) this.ctx.emit({ type: 'ended-early', count: n });
  }

  /**
   * A server transaction began its 64*T1 wait (Timer J of a non-INVITE over UDP, RFC 3261
   * §17.2.2; Timer L of an accepted INVITE, RFC 6026 §8.7): its source's share counts it for
   * `minKeepMs` more, the time during which `makeRoom` may not end it either. Counted for the
   * whole 64*T1, a share of N would serve one address only N / 32 s requests a second.
   */
  private uncountLater(ms: number, w: Waiter): void {
    if (ms !== this.ctx.values(false).J) return;
    if (!(w instanceof NonInviteServerTransaction || w instanceof InviteServerTransaction)) return;
    const tx: ServerTransaction = w;
    this.uncountQueue ??= new WaitQueue(this.ctx.clock, this.minKeepMs);
    this.uncountQueue.add({ waitOver: () => this.uncount(tx) });
  }

  /** `tx`, still in the table, no longer counts against its source. */
  private uncount(tx: ServerTransaction): void {
    if (this.servers.get(tx.id) !== tx || this.uncounted.has(tx)) return;
    this.uncounted.add(tx);
    this.decrementSource(tx.source.address);
  }

  private decrementSource(a: string): void {
    const n = (this.perSource.get(a) ?? 1) - 1;
    if (n <= 0) this.perSource.delete(a);
    else this.perSource.set(a, n);
  }

  /** No room for another server transaction: the table, or this source's share of it. */
  private full(inbound: InboundRequest): boolean {
    if (this.servers.size >= this.maxServer) return true;
    return (
      this.maxPerSource !== Infinity &&
      (this.perSource.get(inbound.source.address) ?? 0) >= this.maxPerSource
    );
  }

  private createServer(inbound: InboundRequest, id: string): ServerTransaction {
    const req = inbound.message;
    const tx: ServerTransaction =
      req.method === 'INVITE'
        ? new InviteServerTransaction({
            id,
            request: req,
            source: inbound.source,
            host: this.inviteServerHost,
          })
        : new NonInviteServerTransaction({
            id,
            request: req,
            source: inbound.source,
            host: this.nonInviteServerHost,
          });
    this.servers.set(id, tx);
    // The keys are kept with the transaction, so that forgetting it never reads the request
    // again (a completed transaction keeps it as octets, non-invite-server.ts).
    // Most transactions (MESSAGE, REGISTER, BYE, ...) have no key besides their id: they share
    // one empty set of keys rather than each keeping an object of its own for 64*T1.
    const indexed = req.method !== 'CANCEL' && !FOUND_BY_METHOD.has(req.method);
    const invite = tx instanceof InviteServerTransaction;
    const keys: ServerKeys = indexed || invite ? {} : NO_KEYS;
    if (indexed) {
      const cancelKey = serverKeyWithoutMethod(req);
      keys.cancel = cancelKey;
      if (!this.byCancelKey.has(cancelKey)) this.byCancelKey.set(cancelKey, tx);
    }
    if (invite) {
      const ackKey = rfc2543AckKey(req);
      keys.ack = ackKey;
      if (ackKey !== undefined) this.byRfc2543Ack.set(ackKey, tx);
      const dialogKey = ackDialogKey(req);
      keys.dialog = dialogKey;
      if (dialogKey !== undefined) this.invitesByDialogKey.set(dialogKey, tx);
    }
    if (this.maxPerSource !== Infinity) {
      const a = inbound.source.address;
      this.perSource.set(a, (this.perSource.get(a) ?? 0) + 1);
    }
    tx.layerKeys = keys;
    this.ctx.emit({ type: 'created', side: 'server', kind: tx.kind, id, method: req.method });
    return tx;
  }

  private forgetServer(tx: ServerTransaction): void {
    const live = this.servers.get(tx.id) === tx;
    if (live) this.servers.delete(tx.id);
    if (live && this.maxPerSource !== Infinity && !this.uncounted.has(tx)) {
      this.decrementSource(tx.source.address);
    }
    const keys = (tx.layerKeys ?? {}) as ServerKeys;
    if (keys.cancel !== undefined && this.byCancelKey.get(keys.cancel) === tx) {
      this.byCancelKey.delete(keys.cancel);
    }
    if (keys.ack !== undefined && this.byRfc2543Ack.get(keys.ack) === tx) {
      this.byRfc2543Ack.delete(keys.ack);
    }
    if (keys.dialog !== undefined && this.invitesByDialogKey.get(keys.dialog) === tx) {
      this.invitesByDialogKey.delete(keys.dialog);
    }
  }

  /**
   * §17.2.3: an ACK matches the INVITE server transaction it acknowledges (by
   * branch and sent-by, or for RFC 2543 by the shared fields and the To tag of
   * the response sent). In Completed it confirms a non-2xx; otherwise (a 2xx's
   * ACK, RFC 6026) it goes up to the TU.
   */
  private receiveAck(inbound: InboundRequest): void {
    const ack = inbound.message;
    let tx: InviteServerTransaction | undefined;
    if (isRfc3261Branch(ack.topVia.branch)) {
      const found = this.servers.get(serverKey(ack));
      if (found instanceof InviteServerTransaction) tx = found;
    } else {
      const ackKey = rfc2543AckKey(ack);
      const found = ackKey === undefined ? undefined : this.byRfc2543Ack.get(ackKey);
      // "... and the To tag of the ACK matches the To tag of the response sent by the server
      // transaction."
      if (found !== undefined && found.lastResponse?.to.tag === ack.to.tag) tx = found;
    }
    if (tx !== undefined) {
      tx.receiveAck(inbound);
      return;
    }
    this.ackToUser(inbound, undefined);
  }

  private ackToUser(ack: InboundRequest, tx: InviteServerTransaction | undefined): void {
    const accepted = tx ?? this.acceptedInviteOf(ack.message);
    if (accepted !== undefined) this.ackedAccepted.add(accepted);
    this.ctx.emit({ type: 'ack-to-tu', matched: tx !== undefined });
    const onAck = this.delegate?.onAck;
    if (onAck === undefined) return;
    const d = this.delegate;
    this.ctx.callUser(tx?.id ?? 'ack', () => onAck.call(d, ack, tx));
  }

  /** The INVITE server transaction in Accepted that an ACK for a 2xx acknowledges. */
  private acceptedInviteOf(ack: SipRequest): InviteServerTransaction | undefined {
    const key = ackDialogKey(ack);
    const tx = key === undefined ? undefined : this.invitesByDialogKey.get(key);
    return tx?.state === 'accepted' ? tx : undefined;
  }

  /**
   * The live server transaction a CANCEL cancels (§9.2): an INVITE's, or another method's,
   * through the index by key without method; the methods of FOUND_BY_METHOD are not in that
   * index and are looked for by their full keys instead.
   */
  private cancelTarget(cancel: SipRequest): ServerTransaction | undefined {
    const base = serverKeyWithoutMethod(cancel);
    const indexed = this.byCancelKey.get(base);
    if (indexed !== undefined) return indexed;
    for (const method of FOUND_BY_METHOD) {
      const tx = this.servers.get(serverKeyOf(base, method));
      if (tx !== undefined) return tx;
    }
    return undefined;
  }

  /**
   * RFC 3261 §9.2. Returns false when the CANCEL should be handled as an
   * ordinary new request (no match, and the layer delivers unmatched CANCELs).
   */
  private receiveCancel(inbound: InboundRequest, id: string): boolean {
    const cancel = inbound.message;
    // §9.2: "The TU determines the transaction to be cancelled by taking the CANCEL request, and
    // then assuming that the request method is anything but CANCEL or ACK and applying the
    // transaction matching procedures of Section 17.2.3."
    const target = this.cancelTarget(cancel);
    this.ctx.emit({ type: 'cancel', target: target?.id });
    if (target === undefined) {
      if (this.unmatchedCancel === 'deliver') return false;
      if (this.full(inbound)) {
        this.refuseOverload(inbound);
        return true;
      }
      // §9.2: "If the UAS did not find a matching transaction for the CANCEL according to the
      // procedure above, it SHOULD respond to the CANCEL with a 481 (Call Leg/Transaction Does
      // Not Exist)."
      const tx = this.createServer(inbound, id);
      void tx.respond(createResponse(cancel, 481, { toTag: this.ids.tag() })).catch(noop);
      return true;
    }
    // §9.2: "Regardless of the method of the original request, as long as the CANCEL matched an
    // existing transaction, the UAS answers the CANCEL request itself with a 200 (OK) response."
    // "The To tag of the response to the CANCEL and the To tag in the response to the original
    // request SHOULD be the same."
    const toTag = target.lastResponse?.to.tag ?? this.ids.tag();
    const tx = this.createServer(inbound, id);
    void tx.respond(createResponse(cancel, 200, { toTag })).catch(noop);
    if (target instanceof InviteServerTransaction && target.state === 'proceeding') {
      const onCancel = this.delegate?.onCancel;
      if (onCancel !== undefined) {
        const d = this.delegate;
        this.ctx.callUser(target.id, () => onCancel.call(d, target, cancel));
      } else {
        // §9.2: "If the original request was an INVITE, the UAS SHOULD immediately respond to the
        // INVITE with a 487 (Request Terminated)."
        const res = createResponse(target.request, 487, { toTag });
        void target.respond(res).catch(noop);
      }
    }
    return true;
  }

  /** Refuses a request statelessly: the server transaction table is full. */
  private refuseOverload(inbound: InboundRequest): void {
    const req = inbound.message;
    this.ctx.emit({ type: 'overload', method: req.method, live: this.servers.size });
    // Logged at most once a second, with the count since: under overload a line per refusal
    // would add work where there is too much already.
    this.refused++;
    const now = this.ctx.clock.now();
    if (now - this.refusedLoggedAt >= 1000) {
      this.ctx.logger.warn(
        { method: req.method, live: this.servers.size, refused: this.refused },
        'overload: 503',
      );
      this.refused = 0;
      this.refusedLoggedAt = now;
    }
    // §21.5.4: "The server MAY indicate when the client should retry the request in a
    // Retry-After header field."
    const res = createResponse(req, 503, {
      toTag: this.ids.tag(),
      headers: [['Retry-After', String(this.retryAfter)]],
    });
    sendSafely(() => this.transport.sendResponse(res, inbound.source)).catch(noop);
  }
}

/** The keys under which the layer filed a server transaction besides its id. */
interface ServerKeys {
  cancel?: string;
  ack?: string;
  dialog?: string;
}

const NO_KEYS: Readonly<ServerKeys> = Object.freeze({});

/**
 * What an INVITE and the ACK for its 2xx share: Call-ID, CSeq number and From tag
 * (§13.2.2.4: "The Call-ID, From, ... and CSeq number of the ACK ... MUST be the same
 * as those of the INVITE"; its branch is new, §17.1.1.3). Undefined when a field does
 * not decode.
 */
function ackDialogKey(req: SipRequest): string | undefined {
  // Flattened, as matching.ts flattens its keys: the INVITE's key outlives its text.
  return keyOrUndefined(() =>
    ownString(`${req.callId}\u0001${req.cseq.seq}\u0001${req.from.tag ?? ''}`),
  );
}
