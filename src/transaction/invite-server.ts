/**
 * The INVITE server transaction (RFC 3261 §17.2.1, Figure 7, as updated by
 * RFC 6026 §8.7 with the Accepted state and Timer L, and §8.8 on transport
 * errors).
 *
 * ```
 *  proceeding  --INVITE retransmission--> proceeding  last provisional sent again
 *  proceeding  --1xx from TU-->           proceeding  sent
 *  proceeding  --200 ms, TU silent-->     proceeding  100 Trying sent
 *  proceeding  --2xx from TU-->           accepted    sent once; Timer L
 *  proceeding  --300-699 from TU-->       completed   sent; Timers G (unreliable), H
 *  proceeding  --transport error-->       proceeding  error to TU (RFC 6026 §8.8)
 *  accepted    --INVITE retransmission--> accepted    absorbed
 *  accepted    --ACK-->                   accepted    ACK to TU
 *  accepted    --2xx from TU-->           accepted    sent (the TU's retransmissions)
 *  accepted    --transport error-->       accepted    error to TU (RFC 6026 §8.8)
 *  accepted    --Timer L-->               terminated
 *  completed   --INVITE retransmission--> completed   final response sent again
 *  completed   --Timer G-->               completed   final response sent again, G = min(2G, T2)
 *  completed   --ACK-->                   confirmed   Timer I
 *  completed   --transport error-->       completed   error to TU (RFC 6026 §8.8)
 *  completed   --Timer H-->               terminated  failure to TU
 *  confirmed   --ACK-->                   confirmed   absorbed
 *  confirmed   --Timer I-->               terminated
 * ```
 *
 * The TU sends responses with `respond()`; the 2xx is sent once by the
 * transaction, and its retransmissions until the ACK are the TU's job (§13.3.1.4;
 * RFC 6026 §8.7: "retransmissions of 2xx responses are handled by the TU").
 */
import { createResponse } from '../sip/message/builder.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { InboundRequest, Source } from '../transport/transport.ts';
import { isReliable } from '../transport/transport.ts';
import { SwitchboardError } from '../base/errors.ts';
import { keptOctets, reparseKeptAt, serializeQuietly } from './kept.ts';
import { sendSafely, toError, type MachineTimer, type TransactionContext } from './context.ts';
import { backoffCapped, TimerSet, type TimerValues, type Waiter } from './timers.ts';

/** Figure 7 states, with Accepted from RFC 6026 §8.7. */
export type InviteServerState =
  'proceeding' | 'accepted' | 'completed' | 'confirmed' | 'terminated';

const NO_USER: InviteServerUser = Object.freeze({});

const NEXT: Readonly<Record<InviteServerState, readonly InviteServerState[]>> = {
  proceeding: ['accepted', 'completed', 'terminated'],
  accepted: ['terminated'],
  completed: ['confirmed', 'terminated'],
  confirmed: ['terminated'],
  terminated: [],
};

/**
 * §17.2.1: "The server transaction MUST generate a 100 (Trying) response unless
 * it knows that the TU will generate a provisional or final response within 200
 * ms".
 */
export const TRYING_DELAY_MS = 200;

/** Optional callbacks of the TU of a server transaction (set with `setUser`). */
export interface InviteServerUser {
  /**
   * Timer H fired: no ACK came for the non-2xx final response (§17.2.1: the
   * transaction "MUST indicate to the TU that a transaction failure has occurred").
   */
  onTimeout?(tx: InviteServerTransaction): void;
  /**
   * The transport failed to send a response (§17.2.4; after the transport's own
   * failover). Reported once; the transaction stays in its state (RFC 6026 §8.8).
   */
  onTransportError?(tx: InviteServerTransaction, error: Error): void;
  onTerminated?(tx: InviteServerTransaction): void;
}

/** What the machine needs from the layer that owns it. */
export interface InviteServerHost {
  readonly ctx: TransactionContext;
  sendResponse(res: SipResponse, source: Source): Promise<void>;
  /** Called once, on entering Terminated: the layer forgets the transaction. */
  terminated(tx: InviteServerTransaction): void;
  /** RFC 6026 §8.7: an ACK matching this transaction in Accepted "must be passed up to the TU". */
  ackToUser(ack: InboundRequest, tx: InviteServerTransaction): void;
}

export interface InviteServerInit {
  readonly id: string;
  readonly request: SipRequest;
  readonly source: Source;
  readonly host: InviteServerHost;
}

export class InviteServerTransaction implements Waiter {
  readonly kind = 'invite' as const;
  readonly side = 'server' as const;
  readonly id: string;
  /** @internal The TransactionLayer's matching keys (see forgetServer). */
  layerKeys: unknown;
  /** Where the INVITE came from; responses go back through it (§18.2.2). */
  readonly source: Source;
  readonly reliable: boolean;
  private current: InviteServerState = 'proceeding';
  private readonly host: InviteServerHost;
  private readonly ctx: TransactionContext;
  /** The TU's callbacks; none until `setUser` (one shared empty object, not one per transaction). */
  private user: InviteServerUser = NO_USER;
  private readonly values: TimerValues;
  private readonly timers: TimerSet<MachineTimer>;
  /**
   * Timer I (Confirmed) or L (Accepted) runs: each only ends the transaction, and waits in the
   * layer's queue of waits of its length (`ctx.wait`), not in `timers`.
   */
  private waitingFor: 'I' | 'L' | undefined = undefined;
  private intervalG: number;
  private provisional: SipResponse | undefined;
  private req: SipRequest | undefined;
  private last: SipResponse | undefined;
  /** Accepted: the INVITE and the 2xx as octets (see `keepAsOctets`). */
  private reqChunk: ArrayBufferLike | undefined;
  private reqOffset = 0;
  private reqLength = 0;
  private lastChunk: ArrayBufferLike | undefined;
  private lastOffset = 0;
  private lastLength = 0;
  /** A transport error has been reported to the TU (RFC 6026 §8.8). */
  private failed = false;

  constructor(o: InviteServerInit) {
    if (o.request.method !== 'INVITE') {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `an INVITE server transaction cannot carry ${o.request.method}`,
      );
    }
    this.id = o.id;
    this.req = o.request;
    this.source = o.source;
    this.host = o.host;
    this.ctx = o.host.ctx;
    this.reliable = isReliable(o.source.protocol);
    this.values = this.ctx.values(this.reliable);
    this.timers = new TimerSet(this.ctx.clock);
    this.intervalG = this.values.G;
    // §17.2.1: "When a server transaction is constructed for a request, it enters the
    // 'Proceeding' state. The server transaction MUST generate a 100 (Trying) response unless it
    // knows that the TU will generate a provisional or final response within 200 ms". The TU
    // gets those 200 ms; if it has sent nothing by then, the transaction sends the 100 itself.
    this.timers.start('trying', TRYING_DELAY_MS, () => this.onTryingTimer());
  }

  get state(): InviteServerState {
    return this.current;
  }

  /** The INVITE (parsed again from its octets once the transaction is Accepted). */
  get request(): SipRequest {
    this.req ??= reparseKeptAt(this.reqChunk!, this.reqOffset, this.reqLength) as SipRequest;
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
    const running: MachineTimer[] = this.timers.running();
    if (this.waitingFor !== undefined) running.push(this.waitingFor);
    return running;
  }

  setUser(user: InviteServerUser): void {
    this.user = user;
  }

  /**
   * Sends a response from the TU. Resolves when the transport has taken it;
   * rejects with the transport's error, which also reaches `onTransportError`
   * (the first one; the machine keeps its state, RFC 6026 §8.8). A response the state
   * does not allow (anything after a non-2xx final, a non-2xx after a 2xx) is
   * discarded with an `ignored-response` event and a resolved promise.
   */
  respond(res: SipResponse): Promise<void> {
    const status = res.status;
    switch (this.current) {
      case 'proceeding':
        this.timers.stop('trying');
        this.last = res;
        if (status < 200) {
          // §17.2.1: "The TU passes any number of provisional responses to the server
          // transaction. So long as the server transaction is in the 'Proceeding' state, each of
          // these MUST be passed to the transport layer for transmission."
          this.provisional = res;
          return this.send(res, false);
        }
        if (status < 300) {
          // RFC 6026 §8.7: "If, while in the 'Proceeding' state, the TU passes a 2xx response to
          // the server transaction, the server transaction MUST pass this response to the
          // transport layer for transmission. It is not retransmitted by the server transaction;
          // retransmissions of 2xx responses are handled by the TU. The server transaction MUST
          // then transition to the 'Accepted' state." RFC 6026 §8.7: Timer L is set to 64*T1.
          // Serialized first, carved from the arena: the transport sends these octets and
          // Accepted keeps them for Timer L (the message remembers them).
          serializeQuietly(res, this.ctx.arena);
          const sent = this.send(res, false);
          if (this.current === 'proceeding') {
            this.transition('accepted');
            this.waitFor('L', this.values.L);
            this.keepAsOctets();
          }
          return sent;
        }
        {
          // §17.2.1: "While in the 'Proceeding' state, if the TU passes a response with status
          // code from 300 to 699 to the server transaction, the response MUST be passed to the
          // transport layer for transmission, and the state machine MUST enter the 'Completed'
          // state. For unreliable transports, timer G is set to fire in T1 seconds, and is not
          // set to fire for reliable transports." "When the 'Completed' state is entered, timer
          // H MUST be set to fire in 64*T1 seconds for all transports."
          const sent = this.send(res, false);
          if (this.current === 'proceeding') {
            this.transition('completed');
            if (this.intervalG > 0) this.timers.start('G', this.intervalG, () => this.onTimerG());
            this.timers.start('H', this.values.H, () => this.onTimerH());
          }
          return sent;
        }
      case 'accepted':
        // RFC 6026 §8.7: "While in the 'Accepted' state, if the TU passes a 2xx response, the
        // server transaction MUST pass the response to the transport layer for transmission."
        if (status >= 200 && status < 300) {
          this.last = res;
          return this.send(res, false);
        }
        return this.ignore(res);
      case 'completed':
      case 'confirmed':
      case 'terminated':
        return this.ignore(res);
    }
  }

  /**
   * Sends a 300-699 response as a stateless UAS would (RFC 3261 §8.2.7) and ends the
   * transaction at once: no Completed state, so neither Timer G retransmissions nor Timer H,
   * and nothing kept. The ACK for it then matches no transaction; §8.2.7: "A stateless UAS MUST
   * ignore ACK requests", which the TU does by its To tag. A retransmitted INVITE is a new
   * request, answered anew. Meant for challenges to unauthenticated requests (§8.2.7, §26.1.5).
   * A 2xx cannot go this way: its retransmissions are the TU's (§13.3.1.4).
   */
  respondStateless(res: SipResponse): Promise<void> {
    if (res.status < 300) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        'a stateless response to INVITE is a 300-699 one',
      );
    }
    if (this.current !== 'proceeding') return this.ignore(res);
    this.timers.stop('trying');
    this.last = res;
    const sent = this.send(res, false);
    if (this.current === 'proceeding') this.transition('terminated');
    return sent;
  }

  /**
   * A retransmission of the INVITE (matched by §17.2.3).
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  receiveRequest(_retransmission: InboundRequest): void {
    switch (this.current) {
      case 'proceeding':
        // §17.2.1: "If a request retransmission is received while in the 'Proceeding' state, the
        // most recent provisional response that was received from the TU MUST be passed to the
        // transport layer for retransmission." Before any provisional, the 100 Trying is sent
        // now rather than at the 200 ms mark: the peer is already retransmitting.
        if (this.provisional === undefined) this.sendTrying();
        else void this.send(this.provisional, true).catch(() => {});
        return;
      case 'completed':
        // §17.2.1: "while in the 'Completed' state, if a request retransmission is received,
        // the server SHOULD pass the response to the transport for retransmission."
        if (this.last !== undefined) void this.send(this.last, true).catch(() => {});
        return;
      case 'accepted':
        // RFC 6026 §8.7: "The purpose of the 'Accepted' state is to absorb retransmissions of an
        // accepted INVITE request. Any such retransmissions are absorbed entirely within the
        // server transaction."
        this.ctx.emit({ type: 'absorbed', side: 'server', id: this.id, what: 'request' });
        return;
      case 'confirmed':
        this.ctx.emit({ type: 'absorbed', side: 'server', id: this.id, what: 'request' });
        return;
      case 'terminated':
        return;
    }
  }

  /**
   * An ACK matched to this transaction (§17.2.3: "except for ACK, where the method ... is INVITE").
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  receiveAck(ack: InboundRequest): void {
    switch (this.current) {
      case 'completed':
        // §17.2.1: "If an ACK is received while the server transaction is in the 'Completed'
        // state, the server transaction MUST transition to the 'Confirmed' state. As Timer G is
        // ignored in this state, any retransmissions of the response will cease."
        this.timers.stop('G');
        this.timers.stop('H');
        this.transition('confirmed');
        // "When this state is entered, timer I is set to fire in T4 seconds for unreliable
        // transports, and zero seconds for reliable transports."
        if (this.values.I === 0) this.transition('terminated');
        else this.waitFor('I', this.values.I);
        return;
      case 'accepted':
        // RFC 6026 §8.7: "If an ACK is received while the INVITE server transaction is in the
        // 'Accepted' state, then the ACK must be passed up to the TU."
        this.host.ackToUser(ack, this);
        return;
      case 'confirmed':
        // §17.2.1: "The purpose of the 'Confirmed' state is to absorb any additional ACK messages
        // that arrive, triggered from retransmissions of the final response."
        this.ctx.emit({ type: 'absorbed', side: 'server', id: this.id, what: 'ack' });
        return;
      case 'proceeding':
        // An ACK before any final response acknowledges nothing.
        this.ctx.emit({ type: 'absorbed', side: 'server', id: this.id, what: 'ack' });
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

  private onTryingTimer(): void {
    if (this.current !== 'proceeding' || this.last !== undefined) return;
    this.firedEvent('trying');
    this.sendTrying();
  }

  private sendTrying(): void {
    this.timers.stop('trying');
    // §17.2.1: "The 100 (Trying) response is constructed according to the procedures in Section
    // 8.2.6, except that the insertion of tags in the To header field of the response (when none
    // was present in the request) is downgraded from MAY to SHOULD NOT." createResponse adds no
    // tag to a 100 and copies Timestamp (§8.2.6.1).
    const trying = createResponse(this.request, 100);
    this.provisional = trying;
    this.last = trying;
    void this.send(trying, false).catch(() => {});
  }

  private onTimerG(): void {
    if (this.current !== 'completed' || this.last === undefined) return;
    this.firedEvent('G');
    // §17.2.1: "If timer G fires, the response is passed to the transport layer once more for
    // retransmission, and timer G is set to fire in MIN(2*T1, T2) seconds. From then on, when
    // timer G fires, the response is passed to the transport again for transmission, and timer
    // G is reset with a value that doubles, unless that value exceeds T2, in which case it is
    // reset with the value of T2."
    this.intervalG = backoffCapped(this.intervalG, this.ctx.timers.T2);
    void this.send(this.last, true).catch(() => {});
    if (this.current === 'completed') {
      this.timers.start('G', this.intervalG, () => this.onTimerG());
    }
  }

  private onTimerH(): void {
    if (this.current !== 'completed') return;
    this.firedEvent('H');
    // §17.2.1: "If timer H fires while in the 'Completed' state, it implies that the ACK was
    // never received. In this case, the server transaction MUST transition to the 'Terminated'
    // state, and MUST indicate to the TU that a transaction failure has occurred."
    this.transition('terminated', true, () => {
      const onTimeout = this.user.onTimeout;
      if (onTimeout !== undefined)
        this.ctx.callUser(this.id, () => onTimeout.call(this.user, this));
    });
  }

  private waitFor(timer: 'I' | 'L', ms: number): void {
    this.waitingFor = timer;
    this.ctx.wait(ms, this);
  }

  /**
   * Timer I or L fired.
   * @internal Called by the layer's wait queue (`ctx.wait`).
   */
  waitOver(): void {
    const timer = this.waitingFor;
    this.waitingFor = undefined;
    if (timer === 'I') this.onTimerI();
    else if (timer === 'L') this.onTimerL();
  }

  private onTimerI(): void {
    if (this.current !== 'confirmed') return;
    this.firedEvent('I');
    // §17.2.1: "Once timer I fires, the server MUST transition to the 'Terminated' state."
    this.transition('terminated');
  }

  private onTimerL(): void {
    if (this.current !== 'accepted') return;
    this.firedEvent('L');
    // RFC 6026 §8.7: "If Timer L fires while the INVITE server transaction is in the 'Accepted'
    // state, the transaction MUST transition to the 'Terminated' state."
    this.transition('terminated');
  }

  private ignore(res: SipResponse): Promise<void> {
    this.ctx.logger.warn(
      { id: this.id, status: res.status, state: this.current },
      'response discarded by the INVITE server transaction',
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
   * Accepted lasts 64*T1 (RFC 6026 §8.7) only to absorb retransmitted INVITEs and pass on
   * ACKs and later 2xx: the INVITE and the 2xx are kept as octets, not as parsed header
   * objects (kept.ts), and parsed again if read.
   */
  private keepAsOctets(): void {
    if (this.req === undefined || this.last === undefined) return;
    const kept = keptOctets(this.req, this.last, this.ctx.arena);
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

  private send(res: SipResponse, retransmission: boolean): Promise<void> {
    if (retransmission) {
      this.ctx.emit({ type: 'retransmit', side: 'server', id: this.id, what: 'response' });
    }
    const sent = sendSafely(() => this.host.sendResponse(res, this.source));
    sent.then(undefined, (e) => this.onTransportError(toError(e)));
    return sent;
  }

  private onTransportError(error: Error): void {
    if (this.current === 'confirmed' || this.current === 'terminated') return;
    this.ctx.emit({ type: 'transport-error', side: 'server', id: this.id, error });
    // RFC 6026 §8.8, replacing the end of RFC 3261 §17.2.4: "If those should all fail, based on
    // the definition of failure in [4], the server transaction SHOULD inform the TU that a
    // failure has occurred, and MUST remain in the current state." (RFC 6026 §7.1: the state is
    // needed to absorb retransmissions of the INVITE.) Timers H and L still end the
    // transaction. The TU hears of the first failure only, not of every Timer G retransmission.
    if (this.failed) return;
    this.failed = true;
    const onError = this.user.onTransportError;
    if (onError !== undefined)
      this.ctx.callUser(this.id, () => onError.call(this.user, this, error));
  }

  private firedEvent(timer: MachineTimer): void {
    this.ctx.emit({ type: 'timer', side: 'server', kind: this.kind, id: this.id, timer });
  }

  /**
   * The one guarded state change of this machine (Figure 7, RFC 6026 Figure 5).
   * `before` runs after the state has changed and before onTerminated.
   */
  private transition(to: InviteServerState, notify = true, before?: () => void): void {
    const from = this.current;
    if (!NEXT[from].includes(to)) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `INVITE server transaction ${this.id}: ${from} -> ${to} is not a transition of RFC 3261 Figure 7 / RFC 6026`,
      );
    }
    this.current = to;
    // The provisional response is re-sent only in Proceeding (§17.2.1); Accepted and Completed
    // last 32 s, too long to hold a parsed message no one will send again.
    this.provisional = undefined;
    this.ctx.emit({ type: 'state', side: 'server', kind: this.kind, id: this.id, from, to });
    if (to === 'terminated') {
      // §17.2.1: "Once the transaction is in the 'Terminated' state, it MUST be destroyed
      // immediately."
      this.timers.stopAll();
      this.waitingFor = undefined;
      this.host.terminated(this);
      if (notify) {
        before?.();
        const onTerminated = this.user.onTerminated;
        if (onTerminated !== undefined) {
          this.ctx.callUser(this.id, () => onTerminated.call(this.user, this));
        }
      }
    }
  }
}
