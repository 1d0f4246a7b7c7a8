/**
 * Builders for requests (RFC 3261 §8.1.1) and for responses (§8.2.6). The
 * stack layer fills in what needs state (branch IDs, CSeq numbering, Contact);
 * these functions only assemble and validate.
 */
import { SwitchboardError } from '../../base/errors.ts';
import { utf8Encode } from '../../base/text.ts';
import { formatNameAddr, type NameAddr } from '../headers/name-addr.ts';
import { HeaderId } from '../headers/names.ts';
import { parseUri, type Uri } from '../uri/uri.ts';
import { makeField, SipRequest, SipResponse, type HeaderField } from './message.ts';
import { reasonPhrase } from './status.ts';
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';

export interface RequestOptions {
  readonly method: string;
  readonly uri: Uri | string;
  /** From, as a NameAddr or as header text (with its tag, §8.1.1.3). */
  readonly from: NameAddr | string;
  readonly to: NameAddr | string;
  readonly callId: string;
  readonly cseq: number;
  /** Via values, topmost first (the transport layer may add one instead). */
  readonly via?: readonly string[];
  /** §8.1.1.6: SHOULD be 70. */
  readonly maxForwards?: number;
  readonly contact?: string;
  /** Further fields in order: [name, value]. */
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0) return false;
  }
  return true;
}

/** Builds a request with the six mandatory header fields of §8.1.1. */
export function createRequest(o: RequestOptions): SipRequest {
  if (!isToken(o.method))
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `method ${o.method}`);
  let uri: Uri;
  if (typeof o.uri === 'string') {
    const r = parseUri(o.uri);
    if (!r.ok) throw new SwitchboardError('SB_ERR_INVALID_URI', `${o.uri}: ${r.error}`);
    uri = r.value;
  } else uri = o.uri;
  if (!Number.isInteger(o.cseq) || o.cseq < 0 || o.cseq > 0xffffffff) {
    throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', `CSeq ${o.cseq}`);
  }
  const fields: HeaderField[] = [];
  for (const v of o.via ?? []) fields.push(makeField('Via', v));
  fields.push(makeField('Max-Forwards', String(o.maxForwards ?? 70)));
  fields.push(makeField('To', typeof o.to === 'string' ? o.to : formatNameAddr(o.to)));
  fields.push(makeField('From', typeof o.from === 'string' ? o.from : formatNameAddr(o.from)));
  fields.push(makeField('Call-ID', o.callId));
  fields.push(makeField('CSeq', `${o.cseq} ${o.method}`));
  if (o.contact !== undefined) fields.push(makeField('Contact', o.contact));
  for (const [name, value] of o.headers ?? []) fields.push(makeField(name, value));
  const body =
    o.body === undefined ? undefined : typeof o.body === 'string' ? utf8Encode(o.body) : o.body;
  if (body !== undefined && body.length > 0 && o.contentType !== undefined) {
    fields.push(makeField('Content-Type', o.contentType));
  }
  fields.push(makeField('Content-Length', String(body?.length ?? 0)));
  return new SipRequest(
    body === undefined
      ? { fields, method: o.method, uri }
      : { fields, body, method: o.method, uri },
  );
}

export interface ResponseOptions {
  readonly reason?: string;
  /** The To tag to add when the request's To has none (§8.2.6.2). */
  readonly toTag?: string;
  readonly headers?: readonly (readonly [string, string])[];
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
  /** Copy Record-Route (§12.1.1, for dialog-creating requests); default: for 101..299. */
  readonly copyRecordRoute?: boolean;
}

/**
 * Builds a response to `request` per RFC 3261 §8.2.6: "The From field of the
 * response MUST equal the From header field of the request. The Call-ID ... MUST
 * equal ... The CSeq ... MUST equal ... The Via header field values in the
 * response MUST equal the Via header field values in the request and MUST
 * maintain the same ordering." The To tag is added unless the request had one
 * (or the response is 100 Trying, §8.2.6.1). The copied fields keep their raw
 * text, so they are byte-identical to the request's.
 */
export function createResponse(
  request: SipRequest,
  status: number,
  options: ResponseOptions = {},
): SipResponse {
  if (!Number.isInteger(status) || status < 100 || status > 699) {
    throw new SwitchboardError('SB_ERR_INVALID_STATUS', String(status));
  }
  const fields: HeaderField[] = [];
  // Where each copied field is in the request (-1: made here), for keepDecoded. The request's
  // fields are read by position, so that a received request makes objects only of the fields
  // copied, not of all of them.
  const positions: number[] = [];
  const copyRr = options.copyRecordRoute ?? (status > 100 && status < 300);
  const n = request.size;
  for (let k = 0; k < n; k++) {
    const id = request.fieldIdAt(k);
    if (
      id === HeaderId.To &&
      options.toTag !== undefined &&
      status !== 100 &&
      request.to.tag === undefined
    ) {
      // §8.2.6.2: the To tag is added unless the request had one (or this is 100 Trying).
      const f = request.fieldObjectAt(k);
      fields.push(makeField(f.name, `${f.value};tag=${options.toTag}`));
      positions.push(-1);
      continue;
    }
    const copied =
      id === HeaderId.Via ||
      id === HeaderId.From ||
      id === HeaderId.To ||
      id === HeaderId.CallId ||
      id === HeaderId.CSeq ||
      (id === HeaderId.RecordRoute && copyRr) ||
      // §8.2.6.1: a 100 Trying copies the request's Timestamp.
      (id === HeaderId.Timestamp && status === 100);
    if (copied) {
      fields.push(request.fieldObjectAt(k));
      positions.push(k);
    }
  }
  for (const [name, value] of options.headers ?? []) {
    fields.push(makeField(name, value));
    positions.push(-1);
  }
  const body =
    options.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? utf8Encode(options.body)
        : options.body;
  if (body !== undefined && body.length > 0 && options.contentType !== undefined) {
    fields.push(makeField('Content-Type', options.contentType));
    positions.push(-1);
  }
  fields.push(makeField('Content-Length', String(body?.length ?? 0)));
  positions.push(-1);
  const init = { fields, status, reason: options.reason ?? reasonPhrase(status) };
  // The copied fields are the request's own objects: what the request decoded of them (its
  // Vias above all, which the transport reads to send the response, §18.2.2) comes along.
  return request.keepDecoded(
    new SipResponse(body === undefined ? init : { ...init, body }),
    fields,
    positions,
  );
}

/**
 * A response to a request that failed to parse (RFC 3261 §8.2.6 as far as the
 * fields allow): copies Via, From, To, Call-ID and CSeq from whatever was read.
 * Undefined when no Via was read, since a response cannot be routed without one
 * (§18.2.2); the caller then drops the request.
 */
export function createErrorResponse(
  partial: { readonly fields: readonly HeaderField[] },
  status: number,
  reason?: string,
  toTag?: string,
): SipResponse | undefined {
  const fields: HeaderField[] = [];
  let sawVia = false;
  for (const f of partial.fields) {
    if (f.key === 'via') sawVia = true;
    if (f.key === 'to') {
      const tagged = /;\s*tag\s*=/i.test(f.value);
      fields.push(tagged || toTag === undefined ? f : makeField(f.name, `${f.value};tag=${toTag}`));
    } else if (f.key === 'via' || f.key === 'from' || f.key === 'call-id' || f.key === 'cseq')
      fields.push(f);
  }
  if (!sawVia) return undefined;
  fields.push(makeField('Content-Length', '0'));
  return new SipResponse({ fields, status, reason: reason ?? reasonPhrase(status) });
}
