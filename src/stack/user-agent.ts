/**
 * UserAgent: the application-facing API on a Stack — register (with refresh,
 * RFC 3261 §10.2), place and answer calls (§13–§15; SDP bodies are opaque
 * strings here), send MESSAGE (RFC 3428), subscribe and receive NOTIFY
 * (RFC 6665).
 */
import { EventEmitter } from 'node:events';
import {
  ExpiresHeader,
  createRequest,
  parseUri,
  type SipRequest,
  type SipResponse,
  type Uri,
} from '../sip/index.ts';
import type { TimerHandle } from '../base/index.ts';
import type { Destination } from '../transport/index.ts';
import {
  Dialog,
  formatRAck,
  infoPackageOf,
  formatSessionExpires,
  parseMinSe,
  parseRAck,
  parseRSeq,
  parseSessionExpires,
  type SessionExpires,
  requiresOption,
  supportsOption,
} from '../dialog/index.ts';
import type { Stack } from './stack.ts';
import {
  destinationOf,
  type Credentials,
  type IncomingRequest,
  type OutgoingRequest,
} from './stack.ts';

export interface UserAgentOptions {
  /** Address of record, e.g. sip:alice@example.com. */
  readonly aor: string;
  readonly displayName?: string;
  readonly credentials?: Credentials;
  /** Send every out-of-dialog request here (an outbound proxy / registrar), e.g. sip:127.0.0.1:5060;transport=tcp. */
  readonly outboundProxy?: string;
  /**
   * Info Packages (RFC 6086) accepted in INFO requests: sent as Recv-Info in
   * INVITEs and their 2xx; an INFO naming another package gets 469. Default:
   * no list, every INFO is accepted.
   */
  readonly infoPackages?: readonly string[];
  /**
   * Session timers (RFC 4028): the Session-Expires (seconds) offered in the
   * INVITEs we send. Default: off (no Session-Expires offered; a peer's is
   * still honoured).
   */
  readonly sessionExpires?: number;
  /** RFC 4028 §5 Min-SE (seconds) we send and enforce (422); default and floor 90. */
  readonly minSE?: number;
  /**
   * Tests only: lifts RFC 4028's 90-second floor on Min-SE so that short
   * intervals (e.g. Session-Expires 2, Min-SE 1) can be exercised.
   */
  readonly allowShortSessionTimers?: boolean;
}

/** RFC 4028 §4: "the minimum value of the Min-SE ... is 90 seconds". */
const MIN_SE_FLOOR = 90;

export type CallState = 'calling' | 'ringing' | 'established' | 'ended';

/** Methods this user agent accepts (RFC 3261 §20.5 Allow). */
export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY, INFO, UPDATE, PRACK';
/** Option tags this user agent supports (RFC 3261 §20.37): RFC 3262 reliable provisionals, RFC 4028 session timers. */
export const SUPPORTED = '100rel, timer';

/** Options of a generic in-dialog request (Call.sendRequest). */
export interface InDialogRequestOptions {
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
}

/**
 * Answers an offer received in a re-INVITE or UPDATE: `answer` is the SDP
 * (default: the call's current local SDP), `status` a final status (default
 * 200; ≥ 300 rejects, e.g. 488, and leaves the session as it was).
 */
export type OfferResponder = (answer?: string, status?: number) => Promise<void>;

/** §13.3.1.4 / RFC 3262 §3 backoff: T1, doubling. */
interface PendingReliable {
  readonly rseq: number;
  timer: TimerHandle | undefined;
  readonly done: Promise<boolean>;
  settle(acked: boolean): void;
}

/** A call (INVITE dialog), either side. */
export class Call extends EventEmitter {
  state: CallState = 'calling';
  /** The peer's SDP (answer for calls we placed, offer for calls we answered; updated by re-INVITE/UPDATE). */
  remoteSdp: string | undefined;
  /** Our current SDP (the offer we placed the call with, or the answer we gave). */
  localSdp: string | undefined;
  dialog: Dialog | undefined;
  protected readonly ua: UserAgent;
  /** §14.1/§14.2: the INVITE transaction in progress in this dialog, if any. */
  private inviteInProgress: 'outgoing' | 'incoming' | undefined;
  /** RFC 3311 §5.1: an UPDATE offer of ours awaiting its answer. */
  private updateOfferPending = false;
  /** RFC 4028: the session interval (s) and whether we are the refresher. */
  private session: { interval: number; refresher: boolean; timer: TimerHandle } | undefined;
  /** The peer allows UPDATE (Allow of its INVITE or 2xx): refreshes use it (RFC 4028 §7.4). */
  peerAllowsUpdate = false;

  constructor(ua: UserAgent) {
    super();
    this.ua = ua;
  }

  /** Ends the call with BYE (§15.1.1); resolves with the BYE's final response. */
  async hangup(): Promise<SipResponse | undefined> {
    const dialog = this.dialog;
    if (dialog === undefined || this.state === 'ended') return undefined;
    this.end('local');
    const bye = dialog.createRequest('BYE');
    return this.ua.stack.send(bye, this.ua.sendOptions()).final;
  }

  /** The session-timer state (RFC 4028), when a session interval was negotiated. */
  get sessionTimer(): { readonly interval: number; readonly refresher: boolean } | undefined {
    const s = this.session;
    return s === undefined ? undefined : { interval: s.interval, refresher: s.refresher };
  }

  /**
   * @internal (Re)starts the session timer (RFC 4028 §10) after a 2xx that
   * carried Session-Expires; `undefined` stops it ("If the 2xx response did
   * not contain a Session-Expires header field, there is no session
   * expiration", §7.2). The refresher refreshes at half the interval (§10:
   * "half the session expiration"); the other side sends BYE when no refresh
   * came "slightly before the session expiration. The minimum of 32 seconds
   * and one third of the session interval is RECOMMENDED."
   */
  startSessionTimer(se: SessionExpires | undefined, weAreUac: boolean): void {
    this.session?.timer.cancel();
    this.session = undefined;
    if (se === undefined || this.state === 'ended') return;
    const refresher = (se.refresher ?? 'uac') === (weAreUac ? 'uac' : 'uas');
    const clock = this.ua.stack.clock;
    const timer = refresher
      ? clock.setTimer((se.interval * 1000) / 2, () => void this.refreshSession())
      : clock.setTimer((se.interval - Math.min(32, se.interval / 3)) * 1000, () => {
          if (this.state === 'ended' || this.dialog === undefined) return;
          const bye = this.dialog.createRequest('BYE');
          this.end('timeout');
          void this.ua.stack.send(bye, this.ua.sendOptions()).final.catch(() => undefined);
        });
    this.session = { interval: se.interval, refresher, timer };
  }

  /** RFC 4028 §7.4: a session refresh, UPDATE without a body when the peer allows it, else re-INVITE. */
  private async refreshSession(): Promise<void> {
    const s = this.session;
    if (s === undefined || this.state === 'ended' || this.dialog === undefined) return;
    const headers: [string, string][] = [
      ['Session-Expires', formatSessionExpires({ interval: s.interval, refresher: 'uac' })],
      ['Min-SE', String(this.ua.minSE)],
    ];
    let res: SipResponse;
    try {
      if (this.peerAllowsUpdate && this.inviteInProgress === undefined) {
        res = await this.sendRequest('UPDATE', { headers: [['Supported', SUPPORTED], ...headers] });
      } else if (this.inviteInProgress === undefined && this.localSdp !== undefined) {
        this.inviteInProgress = 'outgoing';
        try {
          res = await this.sendRequest('INVITE', {
            headers: [['Allow', ALLOW], ['Supported', SUPPORTED], ...headers],
            body: this.localSdp,
            contentType: 'application/sdp',
          });
        } finally {
          this.inviteInProgress = undefined;
        }
      } else {
        // An INVITE transaction is in progress: try again shortly.
        this.startSessionTimer({ interval: Math.max(1, s.interval / 4), refresher: 'uac' }, true);
        return;
      }
    } catch {
      return;
    }
    if (this.isEnded()) return;
    if (res.status >= 200 && res.status < 300) {
      this.dialog.refreshTarget(res);
      this.startSessionTimer(parseSessionExpires(res), true);
    } else if (res.status === 491 || res.status === 422) {
      this.startSessionTimer({ interval: s.interval, refresher: 'uac' }, true);
    } else {
      // §10: a refresh that fails ends the session.
      void this.hangup().catch(() => undefined);
    }
  }

  /** @internal */
  end(by: 'local' | 'remote' | 'timeout'): void {
    if (this.state === 'ended') return;
    this.session?.timer.cancel();
    this.session = undefined;
    this.state = 'ended';
    if (this.dialog !== undefined) this.ua.stack.removeDialog(this.dialog);
    this.emit('ended', by);
  }

  /** True once the call ended (a method, so that it is re-read after an await). */
  isEnded(): boolean {
    return this.state === 'ended';
  }

  private requireDialog(): Dialog {
    const d = this.dialog;
    if (d === undefined || this.state === 'ended' || d.state === 'terminated') {
      throw new Error('the call has no usable dialog');
    }
    return d;
  }

  /** Adds our Contact (reachable from the request's next hop) to a target-refresh request. */
  private withContact(req: SipRequest): SipRequest {
    return req.append('Contact', this.ua.stack.contactFor(this.ua.stack.nextHop(req)));
  }

  /**
   * Sends any request in the call's dialog (§12.2.1.1); resolves with its final
   * response. §12.2.1.2: "If the response for a request within a dialog is a
   * 481 (Call/Transaction Does Not Exist) or a 408 (Request Timeout), the UAC
   * SHOULD terminate the dialog."
   */
  async sendRequest(method: string, options: InDialogRequestOptions = {}): Promise<SipResponse> {
    const dialog = this.requireDialog();
    let req = dialog.createRequest(method, {
      ...(options.headers !== undefined ? { headers: options.headers } : {}),
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.contentType !== undefined ? { contentType: options.contentType } : {}),
    });
    if (method === 'INVITE' || method === 'UPDATE') req = this.withContact(req);
    const res = await this.ua.stack.send(req, this.ua.sendOptions()).final;
    if ((res.status === 481 || res.status === 408) && method !== 'BYE') this.end('remote');
    return res;
  }

  /** Sends INFO (RFC 6086 §4.2.1) in the dialog; `infoPackage` sets Info-Package. */
  async info(
    body: Uint8Array | string,
    contentType: string,
    infoPackage?: string,
  ): Promise<SipResponse> {
    return this.sendRequest('INFO', {
      headers: infoPackage !== undefined ? [['Info-Package', infoPackage]] : [],
      body,
      contentType,
    });
  }

  /**
   * Sends a re-INVITE with a new offer (§14.1), a target refresh (§12.2.1.2);
   * the stack ACKs its 2xx. Resolves with the final response (491 on glare:
   * the application may retry after a random delay, §14.1).
   */
  async reinvite(sdp: string): Promise<SipResponse> {
    this.requireDialog();
    // §14.1: "a UAC MUST NOT initiate a re-INVITE while another INVITE
    // transaction is in progress in either direction."
    if (this.inviteInProgress !== undefined) {
      throw new Error('an INVITE transaction is in progress in this dialog (RFC 3261 §14.1)');
    }
    this.inviteInProgress = 'outgoing';
    try {
      const res = await this.sendRequest('INVITE', {
        headers: [
          ['Allow', ALLOW],
          ['Supported', SUPPORTED],
        ],
        body: sdp,
        contentType: 'application/sdp',
      });
      if (res.status >= 200 && res.status < 300) {
        this.localSdp = sdp;
        if (res.body.length > 0) this.remoteSdp = res.bodyText();
      }
      return res;
    } finally {
      this.inviteInProgress = undefined;
    }
  }

  /**
   * Sends UPDATE (RFC 3311 §5.1), with an offer when `sdp` is given; allowed in
   * early and confirmed dialogs; a target refresh (the 2xx's Contact replaces
   * the remote target).
   */
  async update(sdp?: string): Promise<SipResponse> {
    const dialog = this.requireDialog();
    if (sdp !== undefined && (this.updateOfferPending || this.inviteInProgress === 'outgoing')) {
      // RFC 3311 §5.1: "a UAC MUST NOT send an UPDATE with an offer ... while
      // it has an outstanding offer".
      throw new Error('an offer of ours is outstanding (RFC 3311 §5.1)');
    }
    this.updateOfferPending = sdp !== undefined;
    try {
      const res = await this.sendRequest('UPDATE', {
        headers: [['Supported', SUPPORTED]],
        ...(sdp !== undefined ? { body: sdp, contentType: 'application/sdp' } : {}),
      });
      if (res.status >= 200 && res.status < 300) {
        dialog.refreshTarget(res);
        if (sdp !== undefined) {
          this.localSdp = sdp;
          if (res.body.length > 0) this.remoteSdp = res.bodyText();
        }
      }
      return res;
    } finally {
      this.updateOfferPending = false;
    }
  }

  /** @internal an in-dialog request for this call, from the user agent. */
  receiveInDialog(req: IncomingRequest): void {
    switch (req.message.method) {
      case 'INFO':
        this.receiveInfo(req);
        return;
      case 'INVITE':
        this.receiveOffer(req, 'reinvite');
        return;
      case 'UPDATE':
        this.receiveOffer(req, 'update');
        return;
      case 'ACK':
        // An offer-less re-INVITE carries the answer in the ACK (§14.2, RFC 3264).
        if (req.message.body.length > 0) this.remoteSdp = req.message.bodyText();
        return;
      default:
        void req.reply(481).catch(() => undefined);
    }
  }

  /**
   * RFC 6086 §4.2.2: "If a UAS receives an INFO request with an Info Package
   * that it has not indicated willingness to receive, it MUST send a 469 (Bad
   * Info Package) response", listing the packages it accepts in Recv-Info. A
   * legacy INFO (no Info-Package) is accepted.
   */
  private receiveInfo(req: IncomingRequest): void {
    const accepted = this.ua.infoPackages;
    const pkg = infoPackageOf(req.message);
    if (
      pkg !== undefined &&
      accepted !== undefined &&
      !accepted.some((a) => a.toLowerCase() === pkg.toLowerCase())
    ) {
      void req
        .reply(469, { reason: 'Bad Info Package', headers: [['Recv-Info', accepted.join(', ')]] })
        .catch(() => undefined);
      return;
    }
    void req.reply(200).catch(() => undefined);
    this.emit('info', req.message);
  }

  /**
   * A re-INVITE (§14.2) or UPDATE (RFC 3311 §5.2): a target refresh with an
   * offer (or none). The application answers through `respond` on the
   * 'reinvite'/'update' event; without a listener the current local SDP is
   * the answer.
   */
  private receiveOffer(req: IncomingRequest, kind: 'reinvite' | 'update'): void {
    const m = req.message;
    const dialog = this.dialog;
    if (dialog === undefined) {
      void req.reply(481).catch(() => undefined);
      return;
    }
    const offer = m.body.length > 0 ? m.bodyText() : undefined;
    // §14.2: "A UAS that receives a second INVITE before it sends the final
    // response to a first INVITE with a lower CSeq sequence number on the same
    // dialog MUST return a 500 ... A UAS that receives an INVITE on a dialog
    // while an INVITE it had sent on that dialog is in progress MUST return a
    // 491". RFC 3311 §5.2: an UPDATE offer while ours is outstanding gets 491.
    if (kind === 'reinvite' && this.inviteInProgress === 'incoming') {
      void req.reply(500, { headers: [['Retry-After', '1']] }).catch(() => undefined);
      return;
    }
    if (
      (kind === 'reinvite' && this.inviteInProgress === 'outgoing') ||
      (offer !== undefined && this.updateOfferPending)
    ) {
      void req.reply(491).catch(() => undefined);
      return;
    }
    const se = parseSessionExpires(m);
    if (se !== undefined && se.interval < this.ua.minSE) {
      // RFC 4028 §8.1/§9: a Session-Expires below our Min-SE gets 422 with Min-SE.
      void req
        .reply(422, {
          reason: 'Session Interval Too Small',
          headers: [['Min-SE', String(this.ua.minSE)]],
        })
        .catch(() => undefined);
      return;
    }
    if (kind === 'reinvite') this.inviteInProgress = 'incoming';
    dialog.refreshTarget(m);
    let answered = false;
    const respond: OfferResponder = async (answer, status = 200) => {
      if (answered) return;
      answered = true;
      try {
        if (status >= 300) {
          await req.reply(status);
          return;
        }
        const body =
          offer !== undefined || kind === 'reinvite' ? (answer ?? this.localSdp) : answer;
        const response = await req.reply(status, {
          headers: [
            ['Contact', this.ua.stack.contactFor(sourceDestination(req))],
            ['Allow', ALLOW],
            ['Supported', SUPPORTED],
            ...this.extraOfferResponseHeaders(m),
          ],
          ...(body !== undefined ? { body, contentType: 'application/sdp' } : {}),
        });
        if (offer !== undefined) this.remoteSdp = offer;
        if (body !== undefined) this.localSdp = body;
        if (kind === 'reinvite' && status < 300) {
          // §13.3.1.4 applies to the 2xx of a re-INVITE too (§14.2).
          this.ua.stack.retransmitUntilAck(response, req.source, () => {
            void this.hangup().catch(() => undefined);
          });
        }
        this.afterOfferAnswered(m, response);
      } finally {
        if (kind === 'reinvite') this.inviteInProgress = undefined;
      }
    };
    if (this.listenerCount(kind) > 0) this.emit(kind, offer, respond);
    else void respond().catch(() => undefined);
  }

  /**
   * RFC 4028 §9: the Session-Expires of a 2xx to a request that carried one,
   * with the refresher chosen ("If the request did not contain a refresher
   * parameter, the UAS ... MUST set it", uac when the UAC supports timer) and
   * Require: timer when the refresher is the UAC.
   */
  protected extraOfferResponseHeaders(req: SipRequest): [string, string][] {
    const se = parseSessionExpires(req);
    if (se === undefined) return [];
    const uacSupports = supportsOption(req, 'timer');
    const refresher = se.refresher ?? (uacSupports ? 'uac' : 'uas');
    const out: [string, string][] = [
      ['Session-Expires', formatSessionExpires({ interval: se.interval, refresher })],
    ];
    if (refresher === 'uac') out.push(['Require', 'timer']);
    return out;
  }

  /** After a re-INVITE/UPDATE or INVITE was answered 2xx: the session timer from our response (we are its UAS). */
  protected afterOfferAnswered(req: SipRequest, res: SipResponse): void {
    if (/\bUPDATE\b/i.test(req.getRaw('Allow') ?? '')) this.peerAllowsUpdate = true;
    if (res.status >= 200 && res.status < 300)
      this.startSessionTimer(parseSessionExpires(res), false);
  }
}

/** A call offered to us: ring, answer or reject it. */
export class IncomingCall extends Call {
  readonly request: IncomingRequest;
  readonly from: string;
  private answered = false;
  private lastRseq: number | undefined;
  private pendingReliable: PendingReliable | undefined;

  constructor(ua: UserAgent, request: IncomingRequest) {
    super(ua);
    this.request = request;
    this.from = request.message.getRaw('From') ?? '';
    const body = request.message.body;
    this.remoteSdp = body.length > 0 ? request.message.bodyText() : undefined;
  }

  /**
   * Sends 180 Ringing (with a To tag: an early dialog, §12.1.1). With
   * `reliable` and an INVITE that supports or requires 100rel, the 180 is sent
   * reliably (RFC 3262 §3): Require: 100rel, RSeq, retransmitted until its PRACK.
   */
  async ring(options: { reliable?: boolean } = {}): Promise<void> {
    if (this.answered || this.state === 'ended') return;
    this.state = 'ringing';
    const msg = this.request.message;
    if (options.reliable !== true || !supportsOption(msg, '100rel')) {
      await this.request.reply(180);
      return;
    }
    // RFC 3262 §3: "the UAS MUST NOT send a second reliable provisional
    // response until the first is acknowledged".
    if (this.pendingReliable !== undefined && !(await this.pendingReliable.done)) return;
    if (this.answered || this.isEnded()) return;
    const ua = this.ua;
    const tag = ua.stack.tagFor(msg, this.request.transaction);
    if (this.dialog === undefined) {
      const early = Dialog.fromUasRequest(msg, tag, 'early');
      if (early !== undefined) {
        this.dialog = early;
        ua.stack.addDialog(early);
      }
    }
    // RFC 3262 §3: the first RSeq "MUST be between 1 and 2**31 - 1", then +1 each.
    const rseq = this.lastRseq === undefined ? randomRSeq(ua) : this.lastRseq + 1;
    this.lastRseq = rseq;
    const options180 = {
      toTag: tag,
      headers: [
        ['Contact', ua.stack.contactFor(sourceDestination(this.request))],
        ...recordRouteHeaders(msg),
        ['Require', '100rel'],
        ['RSeq', String(rseq)],
        ['Allow', ALLOW],
      ] as [string, string][],
    };
    let settle: (acked: boolean) => void = () => undefined;
    const done = new Promise<boolean>((r) => (settle = r));
    const pending: PendingReliable = {
      rseq,
      timer: undefined,
      done,
      settle: (acked) => {
        pending.timer?.cancel();
        if (this.pendingReliable === pending) this.pendingReliable = undefined;
        settle(acked);
      },
    };
    this.pendingReliable = pending;
    await this.request.reply(180, options180);
    // RFC 3262 §3: retransmitted "with an interval that starts at T1 seconds and
    // doubles for each retransmission"; after 64*T1 without PRACK "the UAS
    // SHOULD reject the original request with a 5xx response".
    const t1 = ua.stack.t1;
    let interval = t1;
    let elapsed = 0;
    const tick = (): void => {
      if (this.pendingReliable !== pending) return;
      elapsed += interval;
      if (elapsed >= 64 * t1) {
        pending.settle(false);
        this.answered = true;
        void this.request.reply(504, { reason: 'PRACK Timeout' }).catch(() => undefined);
        this.end('timeout');
        return;
      }
      void this.request.reply(180, options180).catch(() => undefined);
      interval *= 2;
      pending.timer = ua.stack.clock.setTimer(interval, tick);
    };
    pending.timer = ua.stack.clock.setTimer(interval, tick);
  }

  /**
   * RFC 3262 §3: a PRACK matching the unacknowledged reliable provisional
   * response is answered 200; "If the PRACK does not match any unacknowledged
   * reliable provisional response, the UAS MUST respond to the PRACK with a 481".
   */
  private receivePrack(req: IncomingRequest): void {
    const rack = parseRAck(req.message);
    const p = this.pendingReliable;
    const inv = this.request.message;
    if (
      rack === undefined ||
      p === undefined ||
      rack.rseq !== p.rseq ||
      rack.cseq !== inv.cseq.seq ||
      rack.method.toUpperCase() !== 'INVITE'
    ) {
      void req.reply(481).catch(() => undefined);
      return;
    }
    void req.reply(200).catch(() => undefined);
    p.settle(true);
    this.emit('prack', req.message);
  }

  /** @internal */
  override receiveInDialog(req: IncomingRequest): void {
    if (req.message.method === 'PRACK') this.receivePrack(req);
    else super.receiveInDialog(req);
  }

  /**
   * Answers with 200 and an SDP body; the 2xx is retransmitted until the ACK
   * (§13.3.1.4). A reliable 1xx not yet PRACKed delays the 2xx until its PRACK
   * arrives (RFC 3262 §3).
   */
  async answer(sdp: string): Promise<void> {
    if (this.answered || this.state === 'ended') return;
    this.answered = true;
    if (this.pendingReliable !== undefined && !(await this.pendingReliable.done)) return;
    if (this.isEnded()) return;
    const ua = this.ua;
    const msg = this.request.message;
    const tag = ua.stack.tagFor(msg, this.request.transaction);
    const dialog = this.dialog ?? Dialog.fromUasRequest(msg, tag, 'confirmed');
    const contact = ua.stack.contactFor(sourceDestination(this.request));
    const response = await this.request.reply(200, {
      toTag: tag,
      headers: [
        ['Contact', contact],
        ...recordRouteHeaders(msg),
        ['Allow', ALLOW],
        ['Supported', SUPPORTED],
        ...ua.recvInfoHeaders(),
        ...this.extraOfferResponseHeaders(msg),
      ],
      body: sdp,
      contentType: 'application/sdp',
    });
    this.localSdp = sdp;
    if (dialog !== undefined) {
      dialog.state = 'confirmed';
      this.dialog = dialog;
      ua.stack.addDialog(dialog);
    }
    this.state = 'established';
    ua.stack.retransmitUntilAck(response, this.request.source, () => {
      // §13.3.1.4: no ACK within 64*T1: "the UAS core SHOULD ... terminate the dialog" with BYE.
      void this.hangup().catch(() => undefined);
    });
    this.afterOfferAnswered(msg, response);
    this.emit('established');
  }

  /** Rejects with a final status (486 Busy Here by default). */
  async reject(status = 486): Promise<void> {
    if (this.answered || this.state === 'ended') return;
    this.answered = true;
    this.pendingReliable?.settle(false);
    await this.request.reply(status);
    this.end('local');
  }

  /** @internal */
  override end(by: 'local' | 'remote' | 'timeout'): void {
    this.pendingReliable?.settle(false);
    super.end(by);
  }
}

/** RFC 3262 §3: a random first RSeq in 1 .. 2**31 - 1 (kept well below the top so +1 never overflows). */
function randomRSeq(ua: UserAgent): number {
  const b = new Uint8Array(4);
  ua.stack.random.fill(b);
  const n = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  return (n % 0x3fffffff) + 1;
}

function recordRouteHeaders(m: SipRequest): [string, string][] {
  // §12.1.1: "the UAS MUST copy all Record-Route header field values from the request into the response"
  return m.getRawAll('Record-Route').map((v) => ['Record-Route', v]);
}

function sourceDestination(req: IncomingRequest): Destination {
  return { protocol: req.source.protocol, address: req.source.address, port: req.source.port };
}

export interface Registration {
  /** The expiry the registrar granted. */
  readonly expires: number;
  /** Stops refreshing and removes the binding (Expires: 0). */
  unregister(): Promise<SipResponse>;
}

export class UserAgent extends EventEmitter {
  readonly stack: Stack;
  readonly aor: Uri;
  private readonly config: UserAgentOptions;
  private readonly calls = new Set<Call>();

  constructor(stack: Stack, options: UserAgentOptions) {
    super();
    this.stack = stack;
    this.config = options;
    const u = parseUri(options.aor);
    if (!u.ok) throw new Error(`invalid AOR ${options.aor}: ${u.error}`);
    this.aor = u.value;
    stack.onRequest((req) => this.receive(req));
    stack.onOrphanRequest((req) => this.claimNotify(req));
  }

  /**
   * A NOTIFY for one of our subscriptions that matches no dialog yet (it may
   * overtake the SUBSCRIBE's 2xx, RFC 6665 §4.1.2.4): create the subscription's
   * dialog from it (§12.1.1 rules, our From tag as local tag) and handle it.
   */
  private claimNotify(req: IncomingRequest): boolean {
    const m = req.message;
    if (m.method !== 'NOTIFY') return false;
    const sub = this.subscriptions.get(`${m.callId}\u0000${m.to.tag ?? ''}`);
    if (sub === undefined) return false;
    const dialog = Dialog.fromUasRequest(m, sub.fromTag, 'confirmed');
    if (dialog !== undefined) {
      this.stack.addDialog(dialog);
      sub.dialog = dialog;
    }
    this.receive(req);
    return true;
  }

  /** RFC 4028 §5: the Min-SE we send and enforce (seconds). */
  get minSE(): number {
    const wanted = this.config.minSE ?? MIN_SE_FLOOR;
    return this.config.allowShortSessionTimers === true ? wanted : Math.max(MIN_SE_FLOOR, wanted);
  }

  /** The Info Packages accepted in INFO (RFC 6086); undefined accepts every INFO. */
  get infoPackages(): readonly string[] | undefined {
    return this.config.infoPackages;
  }

  /** @internal RFC 6086 §5.2.2 Recv-Info for INVITEs and their 2xx, when packages are configured. */
  recvInfoHeaders(): [string, string][] {
    const p = this.config.infoPackages;
    return p === undefined ? [] : [['Recv-Info', p.join(', ')]];
  }

  /** @internal send options for this UA (credentials, outbound proxy). */
  sendOptions(): { credentials?: Credentials; destination?: Destination } {
    const out: { credentials?: Credentials; destination?: Destination } = {};
    if (this.config.credentials !== undefined) out.credentials = this.config.credentials;
    return out;
  }

  private outOfDialogOptions(): { credentials?: Credentials; destination?: Destination } {
    const out = this.sendOptions();
    if (this.config.outboundProxy !== undefined) {
      const u = parseUri(this.config.outboundProxy);
      if (u.ok) out.destination = destinationOf(u.value);
    }
    return out;
  }

  private fromHeader(): string {
    const dn = this.config.displayName;
    return `${dn !== undefined ? `"${dn.replace(/["\\]/g, '\\$&')}" ` : ''}<${this.config.aor}>;tag=${this.stack.ids.tag()}`;
  }

  private userPart(): string | undefined {
    return this.aor.kind === 'sip' ? this.aor.user : undefined;
  }

  private target(uri: string): Uri {
    const u = parseUri(uri);
    if (!u.ok) throw new Error(`invalid URI ${uri}: ${u.error}`);
    return u.value;
  }

  private nextHopFor(requestUri: Uri): Destination {
    const o = this.outOfDialogOptions();
    return o.destination ?? destinationOf(requestUri);
  }

  /**
   * Registers a Contact for the AOR (§10.2) and refreshes it before it expires
   * (at half the granted time), reusing the Call-ID with increasing CSeq (§10.2.4).
   */
  async register(options: { registrar?: string; expires?: number } = {}): Promise<Registration> {
    const registrar = this.target(
      options.registrar ?? (this.aor.kind === 'sip' ? `sip:${this.aor.host}` : this.config.aor),
    );
    const callId = this.stack.ids.callId();
    const from = this.fromHeader();
    let seq = 0;
    let timer: TimerHandle | undefined;
    let stopped = false;
    const dest = this.nextHopFor(registrar);
    const contact = this.stack.contactFor(dest, this.userPart());
    const send = async (expires: number): Promise<SipResponse> => {
      seq += 2; // leaves room for the CSeq + 1 of an authenticated retry
      const req = createRequest({
        method: 'REGISTER',
        uri: registrar,
        from,
        to: `<${this.config.aor}>`,
        callId,
        cseq: seq,
        contact,
        headers: [['Expires', String(expires)]],
      });
      const out = this.stack.send(req, this.outOfDialogOptions());
      const res = await out.final;
      seq = Math.max(seq, out.request.cseq.seq);
      return res;
    };
    const wanted = options.expires ?? 3600;
    const first = await send(wanted);
    if (first.status < 200 || first.status >= 300) {
      throw new Error(`REGISTER failed: ${first.status} ${first.reason}`);
    }
    const granted = grantedExpires(first, wanted);
    const schedule = (secs: number): void => {
      if (stopped || secs <= 0) return;
      timer = this.stack.clock.setTimer(Math.max(1, secs / 2) * 1000, () => {
        void send(wanted).then(
          (r) => {
            if (r.status >= 200 && r.status < 300) schedule(grantedExpires(r, wanted));
            else this.emit('registrationFailed', r);
          },
          () => undefined,
        );
      });
    };
    schedule(granted);
    return {
      expires: granted,
      unregister: async () => {
        stopped = true;
        timer?.cancel();
        return send(0);
      },
    };
  }

  /** Places a call (§13.2.1) with an SDP offer; resolves once answered (after the ACK is sent). */
  async call(
    uri: string,
    options: {
      sdp: string;
      headers?: readonly (readonly [string, string])[];
      /** Each provisional response (the Call's 'progress' event fires too, once it is reachable). */
      onProgress?: (response: SipResponse) => void;
    },
  ): Promise<Call> {
    const target = this.target(uri);
    const dest = this.nextHopFor(target);
    const call = new Call(this);
    call.localSdp = options.sdp;
    this.calls.add(call);
    // RFC 4028 §7.1: the UAC offers a session interval with Session-Expires
    // (no refresher parameter: the UAS chooses, §9) and its Min-SE.
    let sessionExpires =
      this.config.sessionExpires === undefined
        ? undefined
        : Math.max(this.config.sessionExpires, this.minSE);
    const timerHeaders = (): [string, string][] =>
      sessionExpires === undefined
        ? []
        : [
            ['Session-Expires', String(sessionExpires)],
            ['Min-SE', String(this.minSE)],
          ];
    let invite = createRequest({
      method: 'INVITE',
      uri: target,
      from: this.fromHeader(),
      to: `<${formatTarget(uri)}>`,
      callId: this.stack.ids.callId(),
      cseq: 1,
      contact: this.stack.contactFor(dest, this.userPart()),
      headers: [
        ['Allow', ALLOW],
        ['Supported', SUPPORTED],
        ...this.recvInfoHeaders(),
        ...timerHeaders(),
        ...(options.headers ?? []),
      ],
      body: options.sdp,
      contentType: 'application/sdp',
    });
    /** RFC 3262 §4: the last RSeq PRACKed, per early dialog (remote tag). */
    const rseqs = new Map<string, number>();
    const send = (req: SipRequest): Promise<SipResponse> => {
      const out: OutgoingRequest = this.stack.send(req, {
        ...this.outOfDialogOptions(),
        onProvisional: (r) => {
          if (r.status >= 180) call.state = 'ringing';
          if (requiresOption(r, '100rel')) this.prack(call, out.request, r, rseqs);
          options.onProgress?.(r);
          call.emit('progress', r);
        },
        onSuccess: (res, sent) => {
          const existing = this.stack.findDialog(
            sent.callId,
            sent.from.tag ?? '',
            res.to.tag ?? '',
          );
          if (call.dialog !== undefined && call.dialog.state === 'confirmed') {
            if (existing === call.dialog) return;
            // A 2xx from another fork (§13.2.2.4): the stack has ACKed it; this
            // call keeps its first dialog, so the extra one is ended with BYE.
            const extra = Dialog.fromUacResponse(sent, res);
            if (extra !== undefined && extra.key !== call.dialog.key) {
              void this.stack
                .send(extra.createRequest('BYE'), this.sendOptions())
                .final.catch(() => undefined);
              call.emit('forkEnded', res);
            }
            return;
          }
          const dialog = existing ?? Dialog.fromUacResponse(sent, res);
          if (dialog === undefined) return;
          dialog.state = 'confirmed';
          if (call.dialog !== undefined && call.dialog !== dialog)
            this.stack.removeDialog(call.dialog);
          call.dialog = dialog;
          this.stack.addDialog(dialog);
        },
      });
      call.removeAllListeners('cancel');
      call.on('cancel', () => out.cancel());
      return out.final.then((r) => {
        invite = out.request;
        return r;
      });
    };
    let res = await send(invite);
    const minSe = parseMinSe(res);
    if (res.status === 422 && sessionExpires !== undefined && minSe !== undefined) {
      // RFC 4028 §7.4: on 422 the UAC "MAY retry the request ... the
      // Session-Expires ... MUST be ... at least the Min-SE from the 422" and
      // the new request carries that Min-SE; same Call-ID, CSeq + 1.
      sessionExpires = Math.max(sessionExpires, minSe);
      const retry = invite
        .remove('Via')
        .set('CSeq', `${invite.cseq.seq + 1} INVITE`)
        .set('Session-Expires', String(sessionExpires))
        .set('Min-SE', String(minSe));
      res = await send(retry);
    }
    if (res.status >= 300) {
      call.end('remote');
      const err = new Error(`call failed: ${res.status} ${res.reason}`) as Error & {
        response: SipResponse;
      };
      err.response = res;
      throw err;
    }
    if (/\bUPDATE\b/i.test(res.getRaw('Allow') ?? '')) call.peerAllowsUpdate = true;
    call.state = 'established';
    call.remoteSdp = res.body.length > 0 ? res.bodyText() : undefined;
    call.once('ended', () => this.calls.delete(call));
    // RFC 4028 §7.2: the 2xx's Session-Expires (if any) sets the interval and refresher.
    call.startSessionTimer(parseSessionExpires(res), true);
    return call;
  }

  /**
   * RFC 3262 §4: a reliable provisional response (Require: 100rel, RSeq) is
   * acknowledged with PRACK in its early dialog, `RAck: rseq cseq INVITE`.
   * "If the UAC receives another reliable provisional response to the same
   * request, and its RSeq value is not one higher than the value of the
   * sequence number, that response MUST NOT be acknowledged with a PRACK"
   * (retransmissions carry the same RSeq).
   */
  private prack(call: Call, invite: SipRequest, r: SipResponse, rseqs: Map<string, number>): void {
    const rseq = parseRSeq(r);
    const remoteTag = r.to.tag;
    if (rseq === undefined || remoteTag === undefined || call.state === 'ended') return;
    const last = rseqs.get(remoteTag);
    if (last !== undefined && rseq !== last + 1) return;
    let dialog = this.stack.findDialog(invite.callId, invite.from.tag ?? '', remoteTag);
    if (dialog === undefined) {
      // §12.1.2: a provisional response with a To tag creates an early dialog.
      dialog = Dialog.fromUacResponse(invite, r);
      if (dialog === undefined) return;
      this.stack.addDialog(dialog);
    } else dialog.refreshTarget(r);
    rseqs.set(remoteTag, rseq);
    call.dialog ??= dialog;
    const prack = dialog.createRequest('PRACK', {
      headers: [['RAck', formatRAck({ rseq, cseq: invite.cseq.seq, method: 'INVITE' })]],
    });
    void this.stack.send(prack, this.sendOptions()).final.catch(() => undefined);
  }

  /** Sends a MESSAGE (RFC 3428); resolves with the final response. */
  async message(uri: string, text: string, contentType = 'text/plain'): Promise<SipResponse> {
    const target = this.target(uri);
    const req = createRequest({
      method: 'MESSAGE',
      uri: target,
      from: this.fromHeader(),
      to: `<${formatTarget(uri)}>`,
      callId: this.stack.ids.callId(),
      cseq: 1,
      body: text,
      contentType,
    });
    return this.stack.send(req, this.outOfDialogOptions()).final;
  }

  /** Sends OPTIONS (§11); resolves with the final response. */
  async options(uri: string): Promise<SipResponse> {
    const target = this.target(uri);
    const req = createRequest({
      method: 'OPTIONS',
      uri: target,
      from: this.fromHeader(),
      to: `<${formatTarget(uri)}>`,
      callId: this.stack.ids.callId(),
      cseq: 1,
      headers: [['Accept', 'application/sdp']],
    });
    return this.stack.send(req, this.outOfDialogOptions()).final;
  }

  /**
   * Subscribes to an event package (RFC 6665 §4.1.2); NOTIFYs arrive as
   * 'notify' events on the returned subscription (and are answered 200).
   */
  async subscribe(
    uri: string,
    event: string,
    options: { expires?: number; accept?: string; onNotify?: (notify: SipRequest) => void } = {},
  ): Promise<Subscription> {
    const target = this.target(uri);
    const fromTag = this.stack.ids.tag();
    const callId = this.stack.ids.callId();
    const sub = new Subscription(callId, fromTag, event);
    if (options.onNotify !== undefined) sub.on('notify', options.onNotify);
    this.subscriptions.set(`${callId}\u0000${fromTag}`, sub);
    const dest = this.nextHopFor(target);
    const req = createRequest({
      method: 'SUBSCRIBE',
      uri: target,
      from: `<${this.config.aor}>;tag=${fromTag}`,
      to: `<${formatTarget(uri)}>`,
      callId,
      cseq: 1,
      contact: this.stack.contactFor(dest, this.userPart()),
      headers: [
        ['Event', event],
        ['Expires', String(options.expires ?? 3600)],
        ...(options.accept !== undefined
          ? ([['Accept', options.accept]] as [string, string][])
          : []),
      ],
    });
    const res = await this.stack.send(req, this.outOfDialogOptions()).final;
    sub.response = res;
    if (res.status >= 300) this.subscriptions.delete(`${callId}\u0000${fromTag}`);
    return sub;
  }

  private readonly subscriptions = new Map<string, Subscription>();

  /** The call whose dialog an in-dialog request belongs to. */
  private callOf(req: IncomingRequest): Call | undefined {
    if (req.dialog === undefined) return undefined;
    for (const c of this.calls) if (c.dialog === req.dialog) return c;
    return undefined;
  }

  private receive(req: IncomingRequest): void {
    const m = req.message;
    const call = this.callOf(req);
    if (
      call !== undefined &&
      ['INVITE', 'ACK', 'INFO', 'UPDATE', 'PRACK'].includes(m.method) &&
      !(
        m.method === 'INFO' &&
        this.listenerCount('request') > 0 &&
        call.listenerCount('info') === 0
      )
    ) {
      call.receiveInDialog(req);
      return;
    }
    switch (m.method) {
      case 'INVITE': {
        if (req.dialog !== undefined) {
          // A re-INVITE (§14.2): accept with the same session for now.
          req.dialog.refreshTarget(m);
          void req
            .reply(200, {
              headers: [
                ['Contact', this.stack.contactFor(sourceDestination(req), this.userPart())],
              ],
            })
            .catch(() => undefined);
          return;
        }
        const se = parseSessionExpires(m);
        if (se !== undefined && se.interval < this.minSE) {
          // RFC 4028 §8.1: "If the Session-Expires value is less than the
          // Min-SE ... the UAS MUST reject with 422", with our Min-SE.
          void req
            .reply(422, {
              reason: 'Session Interval Too Small',
              headers: [['Min-SE', String(this.minSE)]],
            })
            .catch(() => undefined);
          return;
        }
        const incoming = new IncomingCall(this, req);
        this.calls.add(incoming);
        incoming.once('ended', () => this.calls.delete(incoming));
        if (req.transaction !== undefined) {
          this.stack.onCancelOf(req.transaction, () => {
            void req.reply(487).catch(() => undefined);
            incoming.end('remote');
            incoming.emit('cancelled');
          });
        }
        if (this.listenerCount('invite') === 0) {
          void incoming.reject(480).catch(() => undefined);
          return;
        }
        this.emit('invite', incoming);
        return;
      }
      case 'ACK':
        return;
      case 'BYE': {
        void req.reply(200).catch(() => undefined);
        call?.end('remote');
        return;
      }
      case 'NOTIFY': {
        const fromTag = m.to.tag ?? '';
        const sub = this.subscriptions.get(`${m.callId}\u0000${fromTag}`);
        if (sub === undefined) {
          void req.reply(481).catch(() => undefined);
          return;
        }
        void req.reply(200).catch(() => undefined);
        sub.emit('notify', m);
        const state = m.getRaw('Subscription-State') ?? '';
        if (/^\s*terminated/i.test(state)) {
          this.subscriptions.delete(`${m.callId}\u0000${fromTag}`);
          if (sub.dialog !== undefined) this.stack.removeDialog(sub.dialog);
          sub.emit('terminated', m);
        }
        return;
      }
      default: {
        if (this.listenerCount('request') > 0) {
          this.emit('request', req);
          return;
        }
        if (m.method === 'OPTIONS') {
          void req
            .reply(200, {
              headers: [
                ['Allow', ALLOW],
                ['Supported', SUPPORTED],
              ],
            })
            .catch(() => undefined);
          return;
        }
        if (m.method === 'MESSAGE') {
          this.emit('message', m);
          void req.reply(200).catch(() => undefined);
          return;
        }
        void req
          .reply(405, {
            headers: [['Allow', ALLOW]],
          })
          .catch(() => undefined);
      }
    }
  }
}

/** A subscription we created (RFC 6665). */
export class Subscription extends EventEmitter {
  readonly callId: string;
  readonly fromTag: string;
  readonly event: string;
  response: SipResponse | undefined;
  dialog: Dialog | undefined;

  constructor(callId: string, fromTag: string, event: string) {
    super();
    this.callId = callId;
    this.fromTag = fromTag;
    this.event = event;
  }
}

function grantedExpires(res: SipResponse, wanted: number): number {
  // §10.2.4: the Contact's expires parameter in the 200, else the Expires header.
  const contacts = res.getRawAll('Contact').join(',');
  const m = /expires\s*=\s*(\d+)/i.exec(contacts);
  if (m !== null) return Number(m[1]);
  return res.get(ExpiresHeader) ?? wanted;
}

function formatTarget(uri: string): string {
  return uri.replace(/[<>]/g, '');
}
