/**
 * The INVITE client transaction (RFC 3261 §17.1.1, Figure 5, as updated by
 * RFC 6026 §8.4 with the Accepted state and Timer M).
 *
 * ```
 *  calling             --1xx-->        proceeding  1xx to TU; Timers A, B stopped
 *  calling             --Timer A-->    calling     INVITE retransmitted, A doubled
 *  calling             --Timer B-->    terminated  timeout to TU
 *  calling, proceeding --2xx-->        accepted    2xx to TU; Timer M started
 *  calling, proceeding --300-699-->    completed   ACK sent; response to TU; Timer D
 *  proceeding          --1xx-->        proceeding  1xx to TU
 *  accepted            --2xx-->        accepted    2xx to TU (retransmission or fork)
 *  accepted            --Timer M-->    terminated
 *  completed           --300-699-->    completed   ACK sent again; not to TU
 *  completed           --Timer D-->    terminated
 *  calling, proceeding,
 *  completed           --transport error--> terminated  error to TU
 * ```
 *
 * The ACK for a non-2xx final response is built and sent here (§17.1.1.3).
 * 2xx responses, and in Accepted their retransmissions and the 2xx of other
 * forks, go to the TU, which sends its own ACK (§13.2.2.4; under RFC 6026 §8.4
 * the transaction never ACKs a 2xx itself).
 *
 * CANCEL (§9.1) is started from here because it depends on this machine's
 * state: it waits for a provisional response and is never sent after a final
 * one. It runs in its own non-INVITE client transaction.
 */
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { Destination } from '../transport/transport.ts';
import { isReliable } from '../transport/transport.ts';
import { SwitchboardError } from '../base/errors.ts';
import { sendSafely, toError, type MachineTimer, type TransactionContext } from './context.ts';
import type { NonInviteClientTransaction, NonInviteClientUser } from './non-invite-client.ts';
import { buildAckForNon2xx, buildCancel } from './requests.ts';
import { keptMessageOctets, reparseKeptAt, serializeQuietly } from './kept.ts';
import { backoffUncapped, TimerSet, type TimerValues, type Waiter } from './timers.ts';

/** Figure 5 states, with Accepted from RFC 6026 §8.4. */
export type InviteClientState = 'calling' | 'proceeding' | 'accepted' | 'completed' | 'terminated';

const NEXT: Readonly<Record<InviteClientState, readonly InviteClientState[]>> = {
  calling: ['proceeding', 'accepted', 'completed', 'terminated'],
  proceeding: ['accepted', 'completed', 'terminated'],
  accepted: ['terminated'],
  completed: ['terminated'],
  terminated: [],
};

/** The TU of an INVITE client transaction. */
export interface InviteClientUser {
  /**
   * Provisional and final responses (§17.1.1.2: "MUST be passed up to the
   * TU"), and in Accepted every further 2xx (RFC 6026 §8.4). Retransmissions of
   * a non-2xx final response are absorbed.
   */
  onResponse(res: SipResponse, tx: InviteClientTransaction): void;
  /**
   * Timer B fired in Calling (§17.1.1.2: "the client transaction SHOULD inform
   * the TU that a timeout has occurred"), or no final response arrived within
   * 64*T1 after a CANCEL (§9.1). The TU treats it as 408 (§8.1.3.1).
   */
  onTimeout(tx: InviteClientTransaction): void;
  /** The transport failed; the TU treats it as 503 (§8.1.3.1). */
  onTransportError(tx: InviteClientTransaction, error: Error): void;
  onTerminated?(tx: InviteClientTransaction): void;
}

/** What the machine needs from the layer that owns it. */
export interface InviteClientHost {
  readonly ctx: TransactionContext;
  sendRequest(req: SipRequest, dest: Destination): Promise<void>;
  /** Called once, on entering Terminated: the layer forgets the transaction. */
  terminated(tx: InviteClientTransaction): void;
  /**
   * Starts the CANCEL's own non-INVITE client transaction (§17.1.3: "a CANCEL
   * request constitutes a different transaction") to the INVITE's destination.
   */
  startCancel(
    cancel: SipRequest,
    dest: Destination,
    user: NonInviteClientUser,
  ): NonInviteClientTransaction | undefined;
}

export interface InviteClientInit {
  readonly id: string;
  readonly request: SipRequest;
  readonly destination: Destination;
  readonly host: InviteClientHost;
  readonly user: InviteClientUser;
}

/** Options of `InviteClientTransaction.cancel`. */
export interface CancelOptions {
  /** Extra header fields for the CANCEL, e.g. `['Reason', 'SIP;cause=200;text="Call completed elsewhere"']` (RFC 3326). */
  readonly headers?: readonly (readonly [string, string])[];
  /** Receives the CANCEL transaction's responses (200, 481) and failures; they need no action by default. */
  readonly user?: Partial<NonInviteClientUser>;
}

const NO_CANCEL_USER: NonInviteClientUser = {
  onResponse: () => {},
  onTimeout: () => {},
  onTransportError: () => {},
};

export class InviteClientTransaction implements Waiter {
  readonly kind = 'invite' as const;
  readonly side = 'client' as const;
  readonly id: string;
  readonly destination: Destination;
  readonly reliable: boolean;
  private current: InviteClientState = 'calling';
  private readonly host: InviteClientHost;
  private user: InviteClientUser;
  private readonly ctx: TransactionContext;
  private readonly values: TimerValues;
  private readonly timers: TimerSet<MachineTimer>;
  /**
   * Timer D (Completed) or M (Accepted) runs: each only ends the transaction, and waits in the
   * layer's queue of waits of its length (`ctx.wait`), not in `timers`.
   */
  private waitingFor: 'D' | 'M' | undefined = undefined;
  private intervalA: number;
  /** The INVITE, until Accepted lets it go (see `keepAsOctets`). */
  private req: SipRequest | undefined;
  private last: SipResponse | undefined;
  /** Accepted: the 2xx as the octets it came in (see `keepAsOctets`). */
  private lastChunk: ArrayBufferLike | undefined;
  private lastOffset = 0;
  private lastLength = 0;
  private ackRequest: SipRequest | undefined;
  private cancelReq: SipRequest | undefined;
  private cancelUser: NonInviteClientUser = NO_CANCEL_USER;
  private cancelTx: NonInviteClientTransaction | undefined;
  private started = false;

  constructor(o: InviteClientInit) {
    if (o.request.method !== 'INVITE') {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `an INVITE client transaction cannot carry ${o.request.method}`,
      );
    }
    this.id = o.id;
    this.req = o.request;
    // Serialized once, in an array of its own: the transport sends (and Timer A resends) these
    // octets, and Accepted keeps them.
    serializeQuietly(o.request);
    this.destination = o.destination;
    this.host = o.host;
    this.user = o.user;
    this.ctx = o.host.ctx;
    this.reliable = isReliable(o.destination.protocol);
    this.values = this.ctx.values(this.reliable);
    this.timers = new TimerSet(this.ctx.clock);
    this.intervalA = this.values.A;
  }

  get state(): InviteClientState {
    return this.current;
  }

  /**
   * The INVITE, until the transaction is Accepted: Accepted keeps only the 2xx (see
   * `keepAsOctets`), and reading the INVITE then throws SB_ERR_NOT_KEPT. A TU that needs it
   * later keeps the one it sent.
   */
  get request(): SipRequest {
    if (this.req === undefined) {
      throw new SwitchboardError('SB_ERR_NOT_KEPT', `the INVITE of ${this.id} (${this.current})`);
    }
    return this.req;
  }

  /** The last response received. */
  get lastResponse(): SipResponse | undefined {
    if (this.last === undefined && this.lastChunk !== undefined) {
      this.last = reparseKeptAt(this.lastChunk, this.lastOffset, this.lastLength) as SipResponse;
    }
    return this.last;
  }

  /**
   * Gives the transaction another TU. A proxy whose response context is over hands an Accepted
   * branch a smaller one that only passes on later 2xx responses (RFC 6026 §8.4), so that the
   * 64*T1 of Accepted do not keep the whole context alive.
   */
  setUser(user: InviteClientUser): void {
    this.user = user;
  }

  /** The ACK this transaction sent for a non-2xx final response (§17.1.1.3), once sent. */
  get ack(): SipRequest | undefined {
    return this.ackRequest;
  }

  /** The CANCEL built by `cancel()`, sent or still waiting for a provisional response. */
  get cancelRequest(): SipRequest | undefined {
    return this.cancelReq;
  }

  /** The CANCEL's own client transaction, once the CANCEL has been sent. */
  get cancelTransaction(): NonInviteClientTransaction | undefined {
    return this.cancelTx;
  }

  /** Names of the running timers (tests, diagnostics). */
  runningTimers(): MachineTimer[] {
    const running: MachineTimer[] = this.timers.running();
    if (this.waitingFor !== undefined) running.push(this.waitingFor);
    return running;
  }

  /**
   * RFC 3261 §17.1.1.2: "The initial state, 'calling', MUST be entered when the
   * TU initiates a new client transaction with an INVITE request. The client
   * transaction MUST pass the request to the transport layer for transmission.
   * If an unreliable transport is being used, the client transaction MUST start
   * timer A with a value of T1. ... For any transport, the client transaction
   * MUST start timer B with a value of 64*T1 seconds".
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.send(this.request, 'request', false);
    if (this.current !== 'calling') return;
    if (this.intervalA > 0) this.timers.start('A', this.intervalA, () => this.onTimerA());
    this.timers.start('B', this.values.B, () => this.onTimerB());
  }

  /**
   * A response matched to this transaction by §17.1.3.
   * @internal Called by the TransactionLayer (and the machine tests), not by the TU.
   */
  receiveResponse(res: SipResponse): void {
    const status = res.status;
    switch (this.current) {
      case 'calling':
      case 'proceeding':
        this.last = res;
        // §17.1.1.2: "If the client transaction receives a provisional response while in the
        // 'Calling' state, it transitions to the 'Proceeding' state. In the 'Proceeding' state,
        // the client transaction SHOULD NOT retransmit the request any longer."
        this.timers.stop('A');
        this.timers.stop('B');
        if (status >= 200) this.timers.stop('cancel');
        if (status < 200) {
          if (this.current === 'calling') {
            this.transition('proceeding');
            // §9.1: a CANCEL requested before any provisional response is sent now.
            if (this.cancelReq !== undefined) this.sendCancel();
          }
          // "Furthermore, the provisional response MUST be passed to the TU."
          this.deliver(res);
          return;
        }
        if (status < 300) {
          // RFC 6026 §8.4: "If a 2xx response is received while the client INVITE state machine
          // is in the 'Calling' or 'Proceeding' states, it MUST transition to the 'Accepted'
          // state, pass the 2xx response to the TU, and set Timer M to 64*T1."
          this.transition('accepted');
          this.waitFor('M', this.values.M);
          this.deliver(res);
          this.keepAsOctets();
          return;
        }
        // §17.1.1.2: "When in either the 'Calling' or 'Proceeding' states, reception of a
        // response with status code from 300-699 MUST cause the client transaction to transition
        // to 'Completed'. The client transaction MUST pass the received response up to the TU,
        // and the client transaction MUST generate an ACK request, even if the transport is
        // reliable".
        this.transition('completed');
        this.ackRequest = buildAckForNon2xx(this.request, res);
        // §17.1.1.3: "The ACK MUST be sent to the same address, port, and transport to which
        // the original request was sent."
        this.send(this.ackRequest, 'ack', false);
        this.deliver(res);
        // §17.1.1.2: "The client transaction SHOULD start timer D when it enters the
        // 'Completed' state, with a value of at least 32 seconds for unreliable transports,
        // and a value of zero seconds for reliable transports."
        // (The TU may have closed the layer from its callback.)
        if (this.stateNow() !== 'completed') return;
        if (this.values.D === 0) this.transition('terminated');
        else this.waitFor('D', this.values.D);
        return;
      case 'accepted':
        // RFC 6026 §8.4: in Accepted every 2xx (a retransmission, or the 2xx of another fork) is
        // passed up to the TU; anything else is absorbed. (`lastResponse` stays the first 2xx.)
        if (status >= 200 && status < 300) this.deliver(res);
        else this.ctx.emit({ type: 'absorbed', side: 'client', id: this.id, what: 'response' });
        return;
      case 'completed':
        // §17.1.1.2: "Any retransmissions of the final response that are received while in the
        // 'Completed' state MUST cause the ACK to be re-passed to the transport layer for
        // retransmission, but the newly received response MUST NOT be passed up to the TU."
        if (status >= 300 && this.ackRequest !== undefined) {
          this.send(this.ackRequest, 'ack', true);
        } else {
          this.ctx.emit({ type: 'absorbed', side: 'client', id: this.id, what: 'response' });
        }
        return;
      case 'terminated':
        return;
    }
  }

  /**
   * Cancels the INVITE (RFC 3261 §9.1) and returns the CANCEL; undefined once a
   * final response has arrived (§9.1: "If the original request has generated a
   * final response, the CANCEL SHOULD NOT be sent, as it is an effective no-op")
   * or after termination. Calling it again returns the same CANCEL.
   *
   * §9.1: "If no provisional response has been received, the CANCEL request
   * MUST NOT be sent; rather, the client MUST wait for the arrival of a
   * provisional response before sending the request." So in Calling the CANCEL
   * is kept and sent when the first provisional response arrives (never, if a
   * final response or Timer B comes first).
   */
  cancel(options: CancelOptions = {}): SipRequest | undefined {
    if (this.current !== 'calling' && this.current !== 'proceeding') return undefined;
    if (this.cancelReq !== undefined) return this.cancelReq;
    this.cancelReq = buildCancel(this.request, options.headers);
    this.cancelUser = { ...NO_CANCEL_USER, ...options.user };
    if (this.current === 'proceeding') this.sendCancel();
    return this.cancelReq;
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

  private sendCancel(): void {
    const cancel = this.cancelReq;
    if (cancel === undefined || this.cancelTx !== undefined) return;
    // §9.1: "the destination address, port, and transport of the CANCEL MUST be identical to
    // those used to send the original request."
    this.cancelTx = this.host.startCancel(cancel, this.destination, this.cancelUser);
    // §9.1: "If there is no final response for the original request in 64*T1 seconds ..., the
    // client SHOULD then consider the original transaction cancelled and SHOULD destroy the
    // client transaction handling the original request."
    this.timers.start('cancel', 64 * this.ctx.timers.T1, () => this.onCancelTimeout());
  }

  private onTimerA(): void {
    if (this.current !== 'calling') return;
    this.firedEvent('A');
    // §17.1.1.2: "When timer A fires, the client transaction MUST retransmit the request by
    // passing it to the transport layer, and MUST reset the timer with a value of 2*T1. ...
    // This process MUST continue so that the request is retransmitted with intervals that
    // double after each transmission."
    this.intervalA = backoffUncapped(this.intervalA);
    this.send(this.request, 'request', true);
    if (this.current === 'calling') {
      this.timers.start('A', this.intervalA, () => this.onTimerA());
    }
  }

  private onTimerB(): void {
    if (this.current !== 'calling') return;
    this.firedEvent('B');
    // §17.1.1.2: "If the client transaction is still in the 'Calling' state when timer B fires,
    // the client transaction SHOULD inform the TU that a timeout has occurred. The client
    // transaction MUST NOT generate an ACK."
    this.ctx.callUser(this.id, () => this.user.onTimeout(this));
    if (this.current === 'calling') this.transition('terminated');
  }

  private waitFor(timer: 'D' | 'M', ms: number): void {
    this.waitingFor = timer;
    this.ctx.wait(ms, this);
  }

  /**
   * Timer D or M fired.
   * @internal Called by the layer's wait queue (`ctx.wait`).
   */
  waitOver(): void {
    const timer = this.waitingFor;
    this.waitingFor = undefined;
    if (timer === 'D') this.onTimerD();
    else if (timer === 'M') this.onTimerM();
  }

  private onTimerD(): void {
    if (this.current !== 'completed') return;
    this.firedEvent('D');
    // §17.1.1.2: "If timer D fires while the client transaction is in the 'Completed' state, the
    // client transaction MUST move to the terminated state."
    this.transition('terminated');
  }

  private onTimerM(): void {
    if (this.current !== 'accepted') return;
    this.firedEvent('M');
    // RFC 6026 §8.4: when Timer M fires in Accepted, the transaction moves to Terminated.
    this.transition('terminated');
  }

  private onCancelTimeout(): void {
    if (this.current !== 'proceeding') return;
    this.firedEvent('cancel');
    this.ctx.callUser(this.id, () => this.user.onTimeout(this));
    if (this.current === 'proceeding') this.transition('terminated');
  }

  private send(req: SipRequest, what: 'request' | 'ack', retransmission: boolean): void {
    if (retransmission) this.ctx.emit({ type: 'retransmit', side: 'client', id: this.id, what });
    sendSafely(() => this.host.sendRequest(req, this.destination)).then(undefined, (e) =>
      this.onTransportError(toError(e)),
    );
  }

  private onTransportError(error: Error): void {
    // Figure 5: "Transport Err. / Inform TU" leads from Calling and from Completed (the ACK) to
    // Terminated; Proceeding sends nothing of its own but a late failure of the INVITE ends it
    // too. Accepted sends nothing (RFC 6026).
    if (this.current === 'accepted' || this.current === 'terminated') return;
    this.ctx.emit({ type: 'transport-error', side: 'client', id: this.id, error });
    this.ctx.callUser(this.id, () => this.user.onTransportError(this, error));
    const now = this.stateNow();
    if (now !== 'accepted' && now !== 'terminated') this.transition('terminated');
  }

  /** The state, read afresh after a TU callback (which may have changed it). */
  private stateNow(): InviteClientState {
    return this.current;
  }

  /**
   * Accepted lasts 64*T1 whatever the transport and needs neither message, only to pass later
   * 2xx up (RFC 6026 §8.4): the INVITE goes (no CANCEL and no ACK is built from it any more,
   * §9.1, §17.1.1.3), and the 2xx is kept as the octets it was received in, not as parsed header
   * objects (kept.ts), parsed again if read.
   */
  private keepAsOctets(): void {
    if (this.current !== 'accepted' || this.last === undefined) return;
    const kept = keptMessageOctets(this.last, this.ctx.arena);
    if (kept === undefined) return;
    this.lastChunk = kept.buffer;
    this.lastOffset = kept.byteOffset;
    this.lastLength = kept.byteLength;
    this.req = undefined;
    this.last = undefined;
  }

  private deliver(res: SipResponse): void {
    this.ctx.callUser(this.id, () => this.user.onResponse(res, this));
  }

  private firedEvent(timer: MachineTimer): void {
    this.ctx.emit({ type: 'timer', side: 'client', kind: this.kind, id: this.id, timer });
  }

  /** The one guarded state change of this machine (Figure 5, RFC 6026 Figure 3). */
  private transition(to: InviteClientState, notify = true): void {
    const from = this.current;
    if (!NEXT[from].includes(to)) {
      throw new SwitchboardError(
        'SB_ERR_INVALID_ARGUMENT',
        `INVITE client transaction ${this.id}: ${from} -> ${to} is not a transition of RFC 3261 Figure 5 / RFC 6026`,
      );
    }
    this.current = to;
    this.ctx.emit({ type: 'state', side: 'client', kind: this.kind, id: this.id, from, to });
    if (to === 'terminated') {
      // §17.1.1.2: "Once the transaction is in the 'Terminated' state, it MUST be destroyed
      // immediately."
      this.timers.stopAll();
      this.waitingFor = undefined;
      this.host.terminated(this);
      if (notify && this.user.onTerminated !== undefined) {
        const onTerminated = this.user.onTerminated.bind(this.user);
        this.ctx.callUser(this.id, () => onTerminated(this));
      }
    }
  }
}
