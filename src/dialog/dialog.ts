/**
 * Dialog state (RFC 3261 §12): the peer-to-peer relationship created by a
 * dialog-creating request (INVITE, SUBSCRIBE, REFER) and its 1xx-with-tag or
 * 2xx response. Holds the identifiers, the sequence numbers, the route set and
 * the remote target, and builds in-dialog requests (§12.2.1.1). No I/O: the
 * stack sends what this builds.
 */
import {
  ContactHeader,
  RecordRouteHeader,
  createRequest,
  formatNameAddr,
  formatUri,
  hasParam,
  parseNameAddr,
  type NameAddr,
  type SipRequest,
  type SipResponse,
  type Uri,
} from '../sip/index.ts';

export type DialogState = 'early' | 'confirmed' | 'terminated';

/** §12: Call-ID, local tag and remote tag identify a dialog. */
export interface DialogId {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
}

export function dialogKey(id: DialogId): string {
  return `${id.callId}\u0000${id.localTag}\u0000${id.remoteTag}`;
}

export interface DialogInit {
  readonly id: DialogId;
  readonly state: DialogState;
  /** Local sequence number; undefined until the first request we send (UAS side). */
  readonly localSeq: number | undefined;
  readonly remoteSeq: number | undefined;
  /** Our address (From of our requests), without tag. */
  readonly localUri: string;
  /** The peer's address (To of our requests), without tag. */
  readonly remoteUri: string;
  readonly remoteTarget: Uri;
  /** Route set as name-addr texts, in the order of Route headers of our requests. */
  readonly routeSet: readonly string[];
  readonly secure: boolean;
}

/** Strips the tag parameter from a From/To address (the dialog keeps tags apart). */
function withoutTag(na: NameAddr): string {
  return formatNameAddr({
    ...na,
    uri: na.uri,
    params: na.params.filter((p) => p.name.toLowerCase() !== 'tag'),
  });
}

function contactTarget(m: SipRequest | SipResponse): Uri | undefined {
  const c = m.get(ContactHeader);
  const first = c?.[0];
  return first === undefined || first === '*' ? undefined : first.uri;
}

/** The Record-Route values of a message as texts, in header order. */
function recordRoutes(m: SipRequest | SipResponse): string[] {
  return (m.get(RecordRouteHeader) ?? []).map(formatNameAddr);
}

export class Dialog {
  readonly id: DialogId;
  state: DialogState;
  localSeq: number | undefined;
  remoteSeq: number | undefined;
  readonly localUri: string;
  readonly remoteUri: string;
  remoteTarget: Uri;
  routeSet: readonly string[];
  readonly secure: boolean;

  constructor(init: DialogInit) {
    this.id = init.id;
    this.state = init.state;
    this.localSeq = init.localSeq;
    this.remoteSeq = init.remoteSeq;
    this.localUri = init.localUri;
    this.remoteUri = init.remoteUri;
    this.remoteTarget = init.remoteTarget;
    this.routeSet = init.routeSet;
    this.secure = init.secure;
  }

  get key(): string {
    return dialogKey(this.id);
  }

  /**
   * UAC side (§12.1.2): from a response with a To tag to our request. "The
   * route set MUST be set to the list of URIs in the Record-Route header field
   * from the response, taken in reverse order".
   */
  static fromUacResponse(request: SipRequest, response: SipResponse): Dialog | undefined {
    const remoteTag = response.to.tag;
    const localTag = request.from.tag;
    const target = contactTarget(response);
    if (remoteTag === undefined || localTag === undefined || target === undefined) return undefined;
    return new Dialog({
      id: { callId: request.callId, localTag, remoteTag },
      state: response.status < 200 ? 'early' : 'confirmed',
      localSeq: request.cseq.seq,
      remoteSeq: undefined,
      localUri: withoutTag(request.from),
      remoteUri: withoutTag(response.to),
      remoteTarget: target,
      routeSet: recordRoutes(response).reverse(),
      secure: request.uri.kind === 'sip' && request.uri.scheme === 'sips',
    });
  }

  /**
   * UAS side (§12.1.1): from the request we answer with `localTag`. "The route
   * set MUST be set to the list of URIs in the Record-Route header field from
   * the request, taken in order".
   */
  static fromUasRequest(
    request: SipRequest,
    localTag: string,
    state: DialogState,
  ): Dialog | undefined {
    const remoteTag = request.from.tag;
    const target = contactTarget(request);
    if (remoteTag === undefined || target === undefined) return undefined;
    return new Dialog({
      id: { callId: request.callId, localTag, remoteTag },
      state,
      localSeq: undefined,
      remoteSeq: request.cseq.seq,
      localUri: withoutTag(request.to),
      remoteUri: withoutTag(request.from),
      remoteTarget: target,
      routeSet: recordRoutes(request),
      secure: request.uri.kind === 'sip' && request.uri.scheme === 'sips',
    });
  }

  /** The next local CSeq (§12.2.1.1: "MUST be incremented by one"); starts at a random-ish 1 on the UAS side. */
  nextSeq(): number {
    this.localSeq = (this.localSeq ?? 0) + 1;
    return this.localSeq;
  }

  /**
   * Checks an in-dialog request's CSeq (§12.2.2): "If the remote sequence number
   * was not empty, but the sequence number of the request is lower than the
   * remote sequence number, the request is out of order and MUST be rejected
   * with a 500". Returns false for out-of-order requests; updates remoteSeq.
   * ACK and CANCEL carry the INVITE's number and are not checked.
   */
  acceptRemoteSeq(request: SipRequest): boolean {
    if (request.method === 'ACK' || request.method === 'CANCEL') return true;
    const seq = request.cseq.seq;
    if (this.remoteSeq !== undefined && seq <= this.remoteSeq) {
      // An equal number is a retransmission the transaction layer absorbs; a
      // new request with an equal number is out of order too.
      return false;
    }
    this.remoteSeq = seq;
    return true;
  }

  /** Target refresh (§12.2.1.2, §12.2.2): a re-INVITE or UPDATE and its 2xx replace the remote target. */
  refreshTarget(m: SipRequest | SipResponse): void {
    const t = contactTarget(m);
    if (t !== undefined) this.remoteTarget = t;
  }

  /**
   * Builds an in-dialog request (§12.2.1.1). The caller adds the Via. For ACK
   * and CANCEL pass `seq` (the INVITE's number).
   */
  createRequest(
    method: string,
    options: {
      seq?: number;
      contact?: string;
      headers?: readonly (readonly [string, string])[];
      body?: Uint8Array | string;
      contentType?: string;
    } = {},
  ): SipRequest {
    const seq = options.seq ?? this.nextSeq();
    let requestUri: Uri = this.remoteTarget;
    let routes = [...this.routeSet];
    if (routes.length > 0) {
      const first = parseNameAddr(routes[0]!);
      if (first.ok && !(first.value.uri.kind === 'sip' && hasParam(first.value.uri.params, 'lr'))) {
        // Strict routing (§12.2.1.1): the first route becomes the Request-URI and
        // the remote target goes last in the Route set.
        requestUri = first.value.uri;
        routes = [...routes.slice(1), `<${formatUri(this.remoteTarget)}>`];
      }
    }
    const headers: [string, string][] = routes.map((r) => ['Route', r] as [string, string]);
    if (options.contact !== undefined) headers.push(['Contact', options.contact]);
    for (const h of options.headers ?? []) headers.push([h[0], h[1]]);
    const req: Parameters<typeof createRequest>[0] = {
      method,
      uri: requestUri,
      from: `${this.localUri};tag=${this.id.localTag}`,
      to: `${this.remoteUri};tag=${this.id.remoteTag}`,
      callId: this.id.callId,
      cseq: seq,
      headers,
      ...(options.body !== undefined ? { body: options.body } : {}),
      ...(options.contentType !== undefined ? { contentType: options.contentType } : {}),
    };
    return createRequest(req);
  }
}
