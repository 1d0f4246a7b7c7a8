/**
 * The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).
 *
 * ```
 *  trying              --1xx-->        proceeding  response to TU
 *  trying              --Timer E-->    trying      request retransmitted, E = min(2E, T2)
 *  proceeding          --1xx-->        proceeding  response to TU
 *  proceeding          --Timer E-->    proceeding  request retransmitted, E = T2
 *  trying, proceeding  --200-699-->    completed   response to TU; Timer K
 *  trying, proceeding  --Timer F-->    terminated  timeout to TU
 *  trying, proceeding  --transport error--> terminated  error to TU
 *  completed           --any response-->  completed  absorbed
 *  completed           --Timer K-->    terminated
 * ```
 *
 * Timer E (retransmissions) runs only over unreliable transports, doubling up
 * to T2; Timer F (64*T1) bounds the transaction; Timer K (T4, or 0 over
 * reliable transports) absorbs response retransmissions in Completed.
 */
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { Destination } from '../transport/transport.ts';
import { isReliable } from '../transport/transport.ts';
import { SwitchboardError } from '../base/errors.ts';
import { sendSafely, toError, type MachineTimer, type TransactionContext } from './context.ts';
import { keptOctets, reparseKeptAt, serializeQuietly } from './kept.ts';
import { backoffCapped, TimerSet, type TimerValues, type Waiter } from './timers.ts';

/** Figure 6 states. */
export type NonInviteClientState = 'trying' | 'proceeding' | 'completed' | 'terminated';

const NEXT: Readonly<Record<NonInviteClientState, readonly NonInviteClientState[]>> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

/** The TU of a non-INVITE client transaction (RFC 3261 §17.1.2.2). */
export interface NonInviteClientUser {
  /** §17.1.2.2: provisional and final responses "MUST be passed to the TU". */
  onResponse(res: SipResponse, tx: NonInviteClientTransaction): void;
  /** Timer F fired in Trying or Proceeding; the TU treats it as 408 (§8.1.3.1). */
  onTimeout(tx: NonInviteClientTransaction): void;
  /** The transport failed to send the request; the TU treats it as 503 (§8.1.3.1). */
  onTransportError(tx: NonInviteClientTransaction, error: Error): void;
  onTerminated?(tx: NonInviteClientTransaction): void;
}

/** What the machine needs from the layer that owns it. */
export interface NonInviteClientHost {
  readonly ctx: TransactionContext;
  sendRequest(req: SipRequest, dest: Destination): Promise<void>;
  /** Called once, on entering Terminated: the layer forgets the transaction. */
  terminated(tx: NonInviteClientTransaction): void;
}

export interface NonInviteClientInit {
  readonly id: string;
  readonly request: SipRequest;
  readonly destination: Destination;
  readonly host: NonInviteClientHost;
  readonly user: NonInviteClientUser;
}

/** The TU of a Completed transaction: no response or error reaches it any more (§17.1.2.2). */
const ABSORBING: NonInviteClientUser = {
  onResponse() {},
  onTimeout() {},
  onTransportError() {},
};

export class NonInviteClientTransaction implements Waiter {
  readonly kind = 'non-invite' as const;
  readonly side = 'client' as const;
  readonly id: string;
  readonly destination: Destination;
  readonly reliable: boolean;
  private current: NonInviteClientState = 'trying';
  private readonly host: NonInviteClientHost;
  /** Released in Completed (see `release`): nothing more reaches the TU but onTerminated. */
  private user: NonInviteClientUser;
  private readonly ctx: TransactionContext;
  private readonly values: TimerValues;
  private readonly timers: TimerSet<MachineTimer>;
  /** Timer K runs: it waits in the layer's queue (`ctx.wait`), not in `timers`. */
  private waitingK = false;
  private intervalE: number;
  private req: SipRequest | undefined;
  private last: SipResponse | undefined;
  /** Completed over UDP: the request and the final response as octets (see `enterCompleted`). */
  private reqChunk: ArrayBufferLike | undefined;
  private reqOffset = 0;
  private reqLength = 0;
  private lastChunk: ArrayBufferLike | undefined;
  private lastOffset = 0;
  private lastLength = 0;
  private started = false;

  constructor(o: NonInviteClientInit) {
    if (o.request.method === 'INVITE' || o.request.method === 'ACK') {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `a non-INVITE client transaction cannot carry ${o.request.method}`,
      );
    }
    this.id = o.id;
    this.req = o.request;
    // Serialized once, carved from the short-lived arena: the transport sends (and Timer E
    // resends) these octets, and Completed keeps them (at most Timer F plus T4).
    if (!isReliable(o.destination.protocol)) serializeQuietly(o.request, o.host.ctx.shortArena);
    this.destination = o.destination;
    this.host = o.host;
    this.user = o.user;
    this.ctx = o.host.ctx;
    this.reliable = isReliable(o.destination.protocol);
    this.values = this.ctx.values(this.reliable);
    this.timers = new TimerSet(this.ctx.clock);
    this.intervalE = this.values.E;
  }

  get state(): NonInviteClientState {
    return this.current;
  }

  /** The request (parsed again from its octets once the transaction is Completed). */
  get request(): SipRequest {
    this.req ??= reparseKeptAt(this.reqChunk!, this.reqOffset, this.reqLength) as SipRequest;
    return this.req;
  }

  /** The last response received (provisional or final). */
  get lastResponse(): SipResponse | undefined {
    if (this.last === undefined && this.lastChunk !== undefined) {
      this.last = reparseKeptAt(this.lastChunk, this.lastOffset, this.lastLength) as SipResponse;
    }
    return this.last;
  }

  /** Names of the running timers (tests, diagnostics). */
  runningTimers(): MachineTimer[] {
    const running: MachineTimer[] = this.timers.running();
    if (this.waitingK) running.push('K');
    return running;
  }

  /**
   * RFC 3261 §17.1.2.2: "The 'Trying' state is entered when the TU initiates a
   * new client transaction with a request. When entering this state, the client
   * transaction SHOULD set timer F to fire in 64*T1 seconds. The request MUST be
   * passed to the transport layer for transmission. If an unreliable transport
   * is in use, the client transaction MUST set timer E to fire in T1 seconds."
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.send(false);
    if (this.current !== 'trying') return;
    this.timers.start('F', this.values.F, () => this.onTimerF());
    if (this.intervalE > 0) this.timers.start('E', this.intervalE, () => this.onTimerE());
  }

  /**
   * A response matched to this transaction by §17.1.3.
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  receiveResponse(res: SipResponse): void {
    const status = res.status;
    switch (this.current) {
      case 'trying':
      case 'proceeding':
        this.last = res;
        if (status < 200) {
          // §17.1.2.2: "If a provisional response is received while in the 'Trying' state, the
          // response MUST be passed to the TU, and then the client transaction SHOULD move to the
          // 'Proceeding' state."
          if (this.current === 'trying') this.transition('proceeding');
          this.deliver(res);
          return;
        }
        // §17.1.2.2: "If a final response (status codes 200-699) is received while in the
        // 'Trying' [or 'Proceeding'] state, the response MUST be passed to the TU, and the client
        // transaction MUST transition to the 'Completed' state."
        this.timers.stop('E');
        this.timers.stop('F');
        this.transition('completed');
        this.deliver(res);
        this.release();
        this.enterCompleted();
        return;
      case 'completed':
        // §17.1.2.2: "The 'Completed' state exists to buffer any additional response
        // retransmissions that may be received".
        this.ctx.emit({ type: 'absorbed', side: 'client', id: this.id, what: 'response' });
        return;
      case 'terminated':
        return;
    }
  }

  /**
   * Always undefined: only INVITE is cancelled (RFC 3261 §9.1: "a CANCEL request
   * SHOULD NOT be sent to cancel a request other than INVITE"). Present so
   * that `tx.cancel()` type-checks on any ClientTransaction.
   */
  cancel(_options?: unknown): undefined {
    return undefined;
  }

  /**
   * The layer learned that the transport cannot deliver for this transaction
   * (its connection closed): handled as a transport error.
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  transportFailed(error: Error): void {
    this.onTransportError(error);
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
   * Completed only absorbs response retransmissions for T4 (§17.1.2.2): the TU has had its final
   * response and hears nothing more but the end. Held for those 5 s, its callbacks would keep
   * whatever they close over (a proxy's whole request context, several parsed messages) alive
   * into the old generation at every busy moment; letting go of them here is most of what a
   * completed transaction would otherwise cost the garbage collector. The final response
   * stays readable as `lastResponse`.
   */
  private release(): void {
    const onTerminated = this.user.onTerminated;
    this.user =
      onTerminated === undefined
        ? ABSORBING
        : { ...ABSORBING, onTerminated: onTerminated.bind(this.user) };
  }

  private enterCompleted(): void {
    if (this.current !== 'completed') return;
    // §17.1.2.2: "Once the client transaction enters the 'Completed' state, it MUST set Timer K to
    // fire in T4 seconds for unreliable transports, and zero seconds for reliable transports."
    if (this.values.K === 0) {
      this.transition('terminated');
      return;
    }
    // Timer K waits in the layer's queue of T4 waits (`ctx.wait`, timers.ts WaitQueue).
    this.waitingK = true;
    this.ctx.wait(this.values.K, this);
    // For those T4 the request and the final response are kept as octets, not as parsed
    // header objects (kept.ts): the octets the request was sent in and the response came in.
    if (this.req === undefined || this.last === undefined) return;
    const kept = keptOctets(this.req, this.last, this.ctx.shortArena);
    if (kept === undefined) return;
    this.reqChunk = kept.req.buffer;
    this.reqOffset = kept.req.byteOffset;
    this.reqLength = kept.req.byteLength;
    this.lastChunk = kept.res.buffer;
    this.lastOffset = kept.res.byteOffset;
    this.lastLength = kept.res.byteLength;
    this.req = undefined;
    this.last = undefined;
  }

  private onTimerE(): void {
    if (this.current !== 'trying' && this.current !== 'proceeding') return;
    this.firedEvent('E');
    // §17.1.2.2: "If timer E fires while still in this state [Trying], the timer is reset, but
    // this time with a value of MIN(2*T1, T2)." In Proceeding: "If Timer E fires while in the
    // 'Proceeding' state, the request MUST be passed to the transport layer for retransmission,
    // and Timer E MUST be reset with a value of T2 seconds."
    this.intervalE =
      this.current === 'trying'
        ? backoffCapped(this.intervalE, this.ctx.timers.T2)
        : this.ctx.timers.T2;
    this.send(true);
    if (this.current === 'trying' || this.current === 'proceeding') {
      this.timers.start('E', this.intervalE, () => this.onTimerE());
    }
  }

  private onTimerF(): void {
    if (this.current !== 'trying' && this.current !== 'proceeding') return;
    this.firedEvent('F');
    // §17.1.2.2: "If Timer F fires while the client transaction is still in the 'Trying' [or
    // 'Proceeding'] state, the client transaction SHOULD inform the TU about the timeout, and
    // then it SHOULD enter the 'Terminated' state."
    this.ctx.callUser(this.id, () => this.user.onTimeout(this));
    this.transition('terminated');
  }

  /**
   * Timer K fired.
   * @internal Called by the layer's wait queue (`ctx.wait`).
   */
  waitOver(): void {
    if (!this.waitingK) return;
    this.waitingK = false;
    if (this.current !== 'completed') return;
    this.firedEvent('K');
    // §17.1.2.2: "If Timer K fires while in this state, the client transaction MUST transition to
    // the 'Terminated' state."
    this.transition('terminated');
  }

  private send(retransmission: boolean): void {
    if (retransmission) {
      this.ctx.emit({ type: 'retransmit', side: 'client', id: this.id, what: 'request' });
    }
    sendSafely(() => this.host.sendRequest(this.request, this.destination)).then(undefined, (e) =>
      this.onTransportError(toError(e)),
    );
  }

  private onTransportError(error: Error): void {
    // §17.1.2.2 and Figure 6: a transport error in Trying or Proceeding informs the TU and
    // terminates the transaction (§8.1.3.1: the TU treats it as a 503).
    if (this.current !== 'trying' && this.current !== 'proceeding') return;
    this.ctx.emit({ type: 'transport-error', side: 'client', id: this.id, error });
    this.ctx.callUser(this.id, () => this.user.onTransportError(this, error));
    if (this.current === 'trying' || this.current === 'proceeding') this.transition('terminated');
  }

  private deliver(res: SipResponse): void {
    this.ctx.callUser(this.id, () => this.user.onResponse(res, this));
  }

  private firedEvent(timer: MachineTimer): void {
    this.ctx.emit({ type: 'timer', side: 'client', kind: this.kind, id: this.id, timer });
  }

  /** The one guarded state change of this machine (Figure 6). */
  private transition(to: NonInviteClientState, notify = true): void {
    const from = this.current;
    if (!NEXT[from].includes(to)) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `non-INVITE client transaction ${this.id}: ${from} -> ${to} is not a transition of RFC 3261 Figure 6`,
      );
    }
    this.current = to;
    this.ctx.emit({ type: 'state', side: 'client', kind: this.kind, id: this.id, from, to });
    if (to === 'terminated') {
      // §17.1.2.2: "Once the transaction is in the terminated state, it MUST be destroyed
      // immediately."
      this.timers.stopAll();
      this.waitingK = false;
      this.host.terminated(this);
      if (notify && this.user.onTerminated !== undefined) {
        const onTerminated = this.user.onTerminated.bind(this.user);
        this.ctx.callUser(this.id, () => onTerminated(this));
      }
    }
  }
}
