/**
 * The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8; transport
 * errors per RFC 6026 §8.8).
 *
 * ```
 *  trying      --request retransmission--> trying      discarded
 *  trying      --1xx from TU-->            proceeding  sent
 *  trying      --200-699 from TU-->        completed   sent; Timer J
 *  proceeding  --1xx from TU-->            proceeding  sent
 *  proceeding  --request retransmission--> proceeding  last provisional sent again
 *  proceeding  --200-699 from TU-->        completed   sent; Timer J
 *  proceeding  --transport error-->        proceeding  error to TU (RFC 6026 §8.8)
 *  completed   --request retransmission--> completed   final response sent again
 *  completed   --any response from TU-->   completed   discarded
 *  completed   --transport error-->        completed   error to TU (RFC 6026 §8.8)
 *  completed   --Timer J-->                terminated
 * ```
 */
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { InboundRequest, Source } from '../transport/transport.ts';
import { isReliable } from '../transport/transport.ts';
import { SwitchboardError } from '../base/errors.ts';
import { keptMessageOctets, reparseKeptAt, serializeQuietly } from './kept.ts';
import { sendSafely, toError, type MachineTimer, type TransactionContext } from './context.ts';
import type { TimerValues, Waiter } from './timers.ts';

/** Figure 8 states. */
export type NonInviteServerState = 'trying' | 'proceeding' | 'completed' | 'terminated';

const NO_USER: NonInviteServerUser = Object.freeze({});

const NEXT: Readonly<Record<NonInviteServerState, readonly NonInviteServerState[]>> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

/** Optional callbacks of the TU of a server transaction (set with `setUser`). */
export interface NonInviteServerUser {
  /**
   * The transport failed to send a response (§17.2.4; after the transport's own
   * failover). Reported once; the transaction stays in its state (RFC 6026 §8.8).
   */
  onTransportError?(tx: NonInviteServerTransaction, error: Error): void;
  onTerminated?(tx: NonInviteServerTransaction): void;
}

/** What the machine needs from the layer that owns it. */
export interface NonInviteServerHost {
  readonly ctx: TransactionContext;
  sendResponse(res: SipResponse, source: Source): Promise<void>;
  /** Called once, on entering Terminated: the layer forgets the transaction. */
  terminated(tx: NonInviteServerTransaction): void;
}

export interface NonInviteServerInit {
  readonly id: string;
  readonly request: SipRequest;
  readonly source: Source;
  readonly host: NonInviteServerHost;
}

export class NonInviteServerTransaction implements Waiter {
  // On the prototype: a completed transaction is kept 64*T1, and every field is 8 more bytes
  // of each (see `compact`).
  get kind(): 'non-invite' {
    return 'non-invite';
  }
  get side(): 'server' {
    return 'server';
  }
  readonly id: string;
  /** Where the request came from; responses go back through it (§18.2.2). */
  readonly source: Source;
  readonly reliable: boolean;
  private current: NonInviteServerState = 'trying';
  private readonly host: NonInviteServerHost;
  private readonly ctx: TransactionContext;
  /** The TU's callbacks; none until `setUser` (one shared empty object, not one per transaction). */
  private user: NonInviteServerUser = NO_USER;
  private readonly values: TimerValues;
  /**
   * Timer J runs (Completed over UDP). It is the machine's only timer, and it waits in the
   * layer's queue of waits of its length (`ctx.wait`), not on a timer of its own.
   */
  private waiting = false;
  private last: SipResponse | undefined;
  /** The request, until Completed over UDP lets it go (see `compact`). */
  private req: SipRequest | undefined;
  /**
   * Completed over UDP, the final response is kept as its octets (see `compact`), parsed again
   * only when read or retransmitted: where they lie in an arena chunk, rather than a view of
   * them (an object of about 100 bytes, per transaction kept).
   */
  private lastChunk: ArrayBufferLike | undefined;
  private lastOffset = 0;
  private lastLength = 0;
  /** A transport error has been reported to the TU (RFC 6026 §8.8). */
  private failed = false;
  /** @internal The TransactionLayer's matching keys, kept so that it never reads `request` again. */
  layerKeys: unknown;

  constructor(o: NonInviteServerInit) {
    if (o.request.method === 'INVITE' || o.request.method === 'ACK') {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `a non-INVITE server transaction cannot carry ${o.request.method}`,
      );
    }
    this.id = o.id;
    this.req = o.request;
    this.source = o.source;
    this.host = o.host;
    this.ctx = o.host.ctx;
    this.reliable = isReliable(o.source.protocol);
    this.values = this.ctx.values(this.reliable);
  }

  get state(): NonInviteServerState {
    return this.current;
  }

  /**
   * The request that created the transaction, until its final response has gone out over an
   * unreliable transport: Completed keeps only that response (see `compact`), and reading the
   * request then throws SB_ERR_NOT_KEPT. A TU that needs the request later keeps it from
   * `onRequest`.
   */
  get request(): SipRequest {
    if (this.req === undefined) {
      throw new SwitchboardError('SB_ERR_NOT_KEPT', `the request of ${this.id} (${this.current})`);
    }
    return this.req;
  }

  /** The last response passed to the transport (provisional or final). */
  get lastResponse(): SipResponse | undefined {
    if (this.last === undefined && this.lastChunk !== undefined) {
      this.last = reparseKeptAt(this.lastChunk, this.lastOffset, this.lastLength) as SipResponse;
    }
    return this.last;
  }

  /** Names of the running timers (tests, diagnostics). */
  runningTimers(): MachineTimer[] {
    return this.waiting ? ['J'] : [];
  }

  setUser(user: NonInviteServerUser): void {
    this.user = user;
  }

  /**
   * Sends a response from the TU. Resolves when the transport has taken it;
   * rejects with the transport's error, which also reaches `onTransportError`
   * (the first one; the machine keeps its state, RFC 6026 §8.8). In Completed every further response is
   * discarded (§17.2.2) with an `ignored-response` event and a resolved promise.
   */
  respond(res: SipResponse): Promise<void> {
    const status = res.status;
    switch (this.current) {
      case 'trying':
      case 'proceeding': {
        this.last = res;
        // A final response that Completed will keep (see `compact`) is serialized here, carved
        // from the arena: the transport then sends those octets instead of serializing it
        // again (the message remembers them).
        if (status >= 200 && this.values.J > 0) serializeQuietly(res, this.ctx.arena);
        const sent = this.send(res, false);
        if (status < 200) {
          // §17.2.2: "While in the 'Trying' state, if the TU passes a provisional response to
          // the server transaction, the server transaction MUST enter the 'Proceeding' state."
          if (this.current === 'trying') this.transition('proceeding');
          return sent;
        }
        // §17.2.2: "If the TU passes a final response (status codes 200-699) to the server while
        // in the 'Proceeding' state, the transaction MUST enter the 'Completed' state, and the
        // response MUST be passed to the transport layer for transmission." (Likewise from
        // Trying, Figure 8.) "When the server transaction enters the 'Completed' state, it MUST
        // set Timer J to fire in 64*T1 seconds for unreliable transports, and zero seconds for
        // reliable transports."
        if (this.current === 'trying' || this.current === 'proceeding') {
          this.transition('completed');
          if (this.values.J === 0) this.transition('terminated');
          else {
            this.waiting = true;
            this.ctx.wait(this.values.J, this);
            this.compact();
          }
        }
        return sent;
      }
      case 'completed':
      case 'terminated':
        // §17.2.2: "Any other final responses passed by the TU to the server transaction MUST be
        // discarded while in the 'Completed' state."
        return this.ignore(res);
    }
  }

  /**
   * Sends a final response as a stateless UAS would (RFC 3261 §8.2.7) and ends the
   * transaction at once: no Completed state, no Timer J, nothing kept. A retransmission of the
   * request is then a new request, answered anew, so the TU must give it the same response
   * (its To tag made from the request). §8.2.7: "The stateless UAS role is needed primarily to
   * handle unauthenticated requests for which a challenge response is issued. If
   * unauthenticated requests were handled statefully, then malicious floods of unauthenticated
   * requests could create massive amounts of transaction state" (also §26.1.5).
   * After a final response, like `respond`, it is discarded.
   */
  respondStateless(res: SipResponse): Promise<void> {
    if (res.status < 200) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'a stateless response is a final one');
    }
    if (this.current !== 'trying' && this.current !== 'proceeding') return this.ignore(res);
    this.last = res;
    const sent = this.send(res, false);
    if (this.current === 'trying' || this.current === 'proceeding') this.transition('terminated');
    return sent;
  }

  /**
   * A retransmission of the request (matched by §17.2.3).
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  receiveRequest(_retransmission: InboundRequest): void {
    switch (this.current) {
      case 'trying':
        // §17.2.2: "Once in the 'Trying' state, any further request retransmissions are
        // discarded."
        this.ctx.emit({ type: 'absorbed', side: 'server', id: this.id, what: 'request' });
        return;
      case 'proceeding':
      case 'completed':
        // §17.2.2: "If a retransmission of the request is received while in the 'Proceeding'
        // state, the most recently sent provisional response MUST be passed to the transport
        // layer for retransmission." "While in the 'Completed' state, the server transaction MUST
        // pass the final response to the transport layer for retransmission whenever a
        // retransmission of the request is received."
        {
          let last: SipResponse | undefined;
          try {
            last = this.lastResponse;
          } catch (e) {
            this.ctx.logger.error({ id: this.id, err: e }, 'kept final response unusable');
            return;
          }
          if (last !== undefined) void this.send(last, true).catch(() => {});
        }
        return;
      case 'terminated':
        return;
    }
  }

  /**
   * Stops every timer and ends the transaction without telling the TU (layer close).
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  abort(): void {
    if (this.current === 'terminated') return;
    this.transition('terminated', false);
  }

  /**
   * Timer J fired.
   * @internal Called by the layer's wait queue (`ctx.wait`).
   */
  waitOver(): void {
    if (!this.waiting) return;
    this.waiting = false;
    if (this.current !== 'completed') return;
    this.ctx.emit({ type: 'timer', side: 'server', kind: this.kind, id: this.id, timer: 'J' });
    // §17.2.2: "The server transaction remains in this state until Timer J fires, at which point
    // it MUST transition to the 'Terminated' state."
    this.transition('terminated');
  }

  private ignore(res: SipResponse): Promise<void> {
    this.ctx.logger.warn(
      { id: this.id, status: res.status, state: this.current },
      'response discarded by the non-INVITE server transaction',
    );
    this.ctx.emit({
      type: 'ignored-response',
      id: this.id,
      status: res.status,
      state: this.current,
    });
    return Promise.resolve();
  }

  /**
   * Completed waits 64*T1 (Timer J, 32 s) only to answer retransmissions (§17.2.2): "the server
   * transaction MUST pass the final response to the transport layer for retransmission whenever
   * a retransmission of the request is received". That needs the final response and nothing of
   * the request (the layer keeps its own matching keys, §17.2.3), so the request goes, and the
   * response is kept as its octets (a few hundred bytes, parsed again only if read). Held as
   * parsed objects, both would be most of the memory of a busy registrar; the request's octets
   * alone were about 0.8 kB per REGISTER held for those 32 s (a worker's peak resident memory
   * after 75,000 REGISTERs at 6,000/s: 251-253 MB with them, 186-191 MB without).
   */
  private compact(): void {
    if (this.last === undefined) return;
    const kept = keptMessageOctets(this.last, this.ctx.arena);
    if (kept === undefined) return;
    this.lastChunk = kept.buffer;
    this.lastOffset = kept.byteOffset;
    this.lastLength = kept.byteLength;
    this.req = undefined;
    this.last = undefined;
  }

  private send(res: SipResponse, retransmission: boolean): Promise<void> {
    if (retransmission) {
      this.ctx.emit({ type: 'retransmit', side: 'server', id: this.id, what: 'response' });
    }
    const sent = sendSafely(() => this.host.sendResponse(res, this.source));
    sent.then(undefined, (e) => this.onTransportError(toError(e)));
    return sent;
  }

  private onTransportError(error: Error): void {
    if (this.current === 'terminated') return;
    this.ctx.emit({ type: 'transport-error', side: 'server', id: this.id, error });
    // RFC 6026 §8.8 rewrote the end of RFC 3261 §17.2.4 for every server transaction: "the
    // server transaction SHOULD inform the TU that a failure has occurred, and MUST remain in
    // the current state." (Figure 8 still draws "Trnsprt Err." to Terminated; the updated text
    // wins, and it keeps a retransmitted request from reaching the TU a second time.) Timer J,
    // or the TU's final response, still ends the transaction. The TU hears of the first
    // failure only.
    if (this.failed) return;
    this.failed = true;
    const onError = this.user.onTransportError;
    if (onError !== undefined)
      this.ctx.callUser(this.id, () => onError.call(this.user, this, error));
  }

  /**
   * The one guarded state change of this machine (Figure 8).
   */
  private transition(to: NonInviteServerState, notify = true): void {
    const from = this.current;
    if (!NEXT[from].includes(to)) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `non-INVITE server transaction ${this.id}: ${from} -> ${to} is not a transition of RFC 3261 Figure 8`,
      );
    }
    this.current = to;
    this.ctx.emit({ type: 'state', side: 'server', kind: this.kind, id: this.id, from, to });
    if (to === 'terminated') {
      // §17.2.2: "Once the transaction is in the 'Terminated' state, it MUST be destroyed
      // immediately."
      // A wait in the queue is not stopped: it finds the transaction ended and does nothing.
      this.waiting = false;
      this.host.terminated(this);
      if (notify) {
        const onTerminated = this.user.onTerminated;
        if (onTerminated !== undefined) {
          this.ctx.callUser(this.id, () => onTerminated.call(this.user, this));
        }
      }
    }
  }
}
