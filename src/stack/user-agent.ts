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
import { Dialog } from '../dialog/index.ts';
import type { Stack } from './stack.ts';
import { destinationOf, type Credentials, type IncomingRequest } from './stack.ts';

export interface UserAgentOptions {
  /** Address of record, e.g. sip:alice@example.com. */
  readonly aor: string;
  readonly displayName?: string;
  readonly credentials?: Credentials;
  /** Send every out-of-dialog request here (an outbound proxy / registrar), e.g. sip:127.0.0.1:5060;transport=tcp. */
  readonly outboundProxy?: string;
}

export type CallState = 'calling' | 'ringing' | 'established' | 'ended';

/** A call (INVITE dialog), either side. */
export class Call extends EventEmitter {
  state: CallState = 'calling';
  /** The peer's SDP (answer for calls we placed, offer for calls we answered). */
  remoteSdp: string | undefined;
  dialog: Dialog | undefined;
  protected readonly ua: UserAgent;

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

  /** @internal */
  end(by: 'local' | 'remote' | 'timeout'): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    if (this.dialog !== undefined) this.ua.stack.removeDialog(this.dialog);
    this.emit('ended', by);
  }
}

/** A call offered to us: ring, answer or reject it. */
export class IncomingCall extends Call {
  readonly request: IncomingRequest;
  readonly from: string;
  private answered = false;

  constructor(ua: UserAgent, request: IncomingRequest) {
    super(ua);
    this.request = request;
    this.from = request.message.getRaw('From') ?? '';
    const body = request.message.body;
    this.remoteSdp = body.length > 0 ? request.message.bodyText() : undefined;
  }

  /** Sends 180 Ringing (with a To tag: an early dialog, §12.1.1). */
  async ring(): Promise<void> {
    if (this.answered || this.state === 'ended') return;
    this.state = 'ringing';
    await this.request.reply(180);
  }

  /** Answers with 200 and an SDP body; the 2xx is retransmitted until the ACK (§13.3.1.4). */
  async answer(sdp: string): Promise<void> {
    if (this.answered || this.state === 'ended') return;
    this.answered = true;
    const ua = this.ua;
    const msg = this.request.message;
    const tag = ua.stack.tagFor(msg, this.request.transaction);
    const dialog = Dialog.fromUasRequest(msg, tag, 'confirmed');
    const contact = ua.stack.contactFor(sourceDestination(this.request));
    const response = await this.request.reply(200, {
      toTag: tag,
      headers: [['Contact', contact], ...recordRouteHeaders(msg)],
      body: sdp,
      contentType: 'application/sdp',
    });
    if (dialog !== undefined) {
      this.dialog = dialog;
      ua.stack.addDialog(dialog);
    }
    this.state = 'established';
    ua.stack.retransmitUntilAck(response, this.request.source, () => {
      // §13.3.1.4: no ACK within 64*T1: "the UAS core SHOULD ... terminate the dialog" with BYE.
      void this.hangup().catch(() => undefined);
    });
    this.emit('established');
  }

  /** Rejects with a final status (486 Busy Here by default). */
  async reject(status = 486): Promise<void> {
    if (this.answered || this.state === 'ended') return;
    this.answered = true;
    await this.request.reply(status);
    this.end('local');
  }
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
    options: { sdp: string; headers?: readonly (readonly [string, string])[] },
  ): Promise<Call> {
    const target = this.target(uri);
    const dest = this.nextHopFor(target);
    const call = new Call(this);
    this.calls.add(call);
    const invite = createRequest({
      method: 'INVITE',
      uri: target,
      from: this.fromHeader(),
      to: `<${formatTarget(uri)}>`,
      callId: this.stack.ids.callId(),
      cseq: 1,
      contact: this.stack.contactFor(dest, this.userPart()),
      headers: [
        ['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY'],
        ...(options.headers ?? []),
      ],
      body: options.sdp,
      contentType: 'application/sdp',
    });
    const out = this.stack.send(invite, {
      ...this.outOfDialogOptions(),
      onProvisional: (r) => {
        if (r.status >= 180) call.state = 'ringing';
        call.emit('progress', r);
      },
      onSuccess: (res, req) => {
        if (call.dialog !== undefined) return;
        const dialog = Dialog.fromUacResponse(req, res);
        if (dialog === undefined) return;
        call.dialog = dialog;
        this.stack.addDialog(dialog);
      },
    });
    call.on('cancel', () => out.cancel());
    const res = await out.final;
    if (res.status >= 300) {
      call.end('remote');
      const err = new Error(`call failed: ${res.status} ${res.reason}`) as Error & {
        response: SipResponse;
      };
      err.response = res;
      throw err;
    }
    call.state = 'established';
    call.remoteSdp = res.body.length > 0 ? res.bodyText() : undefined;
    call.once('ended', () => this.calls.delete(call));
    return call;
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

  private receive(req: IncomingRequest): void {
    const m = req.message;
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
        const call = new IncomingCall(this, req);
        this.calls.add(call);
        call.once('ended', () => this.calls.delete(call));
        if (req.transaction !== undefined) {
          this.stack.onCancelOf(req.transaction, () => {
            void req.reply(487).catch(() => undefined);
            call.end('remote');
            call.emit('cancelled');
          });
        }
        if (this.listenerCount('invite') === 0) {
          void call.reject(480).catch(() => undefined);
          return;
        }
        this.emit('invite', call);
        return;
      }
      case 'ACK':
        return;
      case 'BYE': {
        const call = [...this.calls].find((c) => c.dialog !== undefined && c.dialog === req.dialog);
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
              headers: [['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY']],
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
            headers: [['Allow', 'INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, NOTIFY']],
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
