/**
 * Transaction matching (RFC 3261 §17.1.3 for responses to client transactions,
 * §17.2.3 for requests to server transactions, §9.2 for CANCEL). Each rule is
 * reduced to a string key, so the layer's tables are plain Maps: two messages
 * match exactly when their keys are equal.
 *
 * Keys are built from the typed getters, which throw on messages built in code
 * without the headers; parsed messages always have them (the parser rejects a
 * request without Via, From, To, Call-ID or CSeq). The `*OrUndefined` wrappers
 * turn such a failure into "no key" for the layer.
 *
 * A key built by concatenation is flattened (`ownString`) before it is returned: its parts are
 * cut from the message text, and a key that outlives the message (a transaction's, for up to
 * 64*T1) would otherwise keep that whole text alive. Keys joined from an array are flat already.
 */
import { MAGIC_COOKIE } from '../base/ids.ts';
import { ownString } from '../base/text.ts';
import { formatParams } from '../sip/uri/params.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { Via } from '../sip/headers/via.ts';

/**
 * RFC 3261 §8.1.1.7: "The branch ID inserted by an element compliant with this
 * specification MUST always begin with the characters 'z9hG4bK'." A branch
 * without it comes from an RFC 2543 element and needs the §17.2.3 fallback.
 */
export function isRfc3261Branch(branch: string | undefined): branch is string {
  return branch !== undefined && branch.startsWith(MAGIC_COOKIE);
}

/**
 * The key of a client transaction (RFC 3261 §17.1.3): "1. If the response has
 * the same value of the branch parameter in the top Via header field as the
 * branch parameter in the top Via header field of the request that created the
 * transaction. 2. If the method parameter in the CSeq header field matches the
 * method of the request that created the transaction. The method is needed
 * since a CANCEL request constitutes a different transaction, but shares the
 * same value of the branch parameter."
 */
export function clientKey(branch: string, method: string): string {
  return ownString(`${branch}\u0000${method}`);
}

/**
 * The key under which a request's client transaction is filed: its top-Via
 * branch and its method. Undefined for ACK, which never has a client
 * transaction of its own (the ACK for a non-2xx belongs to the INVITE's, the
 * ACK for a 2xx to no transaction, §17.1.1.3), and for a request without a
 * branch (§8.1.1.7: the branch MUST be present).
 */
export function clientKeyOfRequest(req: SipRequest): string | undefined {
  if (req.method === 'ACK') return undefined;
  const branch = req.topVia.branch;
  return branch === undefined || branch === '' ? undefined : clientKey(branch, req.method);
}

/** The key of the client transaction a response belongs to (§17.1.3): top-Via branch + CSeq method. */
export function clientKeyOfResponse(res: SipResponse): string | undefined {
  const branch = res.topVia.branch;
  return branch === undefined || branch === '' ? undefined : clientKey(branch, res.cseq.method);
}

/** sent-by (host and port of the Via, §20.42) as compared by §17.2.3: host case-insensitive. */
export function sentBy(via: Via): string {
  return via.port === undefined ? via.host.toLowerCase() : `${via.host.toLowerCase()}:${via.port}`;
}

/**
 * The top Via as compared by the RFC 2543 fallback of §17.2.3 ("top Via header
 * field match"). The transport layer adds `received` and `rport` to a request's
 * top Via on arrival (§18.2.1, RFC 3581), so those two parameters are left out.
 */
export function viaIdentity(via: Via): string {
  const params = via.params.filter((p) => {
    const n = p.name.toLowerCase();
    return n !== 'received' && n !== 'rport';
  });
  return `${via.protocol}/${via.version}/${via.transport} ${sentBy(via)}${formatParams(params)}`;
}

function tagOf(tag: string | undefined): string {
  return tag ?? '';
}

/**
 * The method of the server transaction a request is matched against: an ACK
 * matches its INVITE (§17.2.3: "the method of the request matches the one on
 * the request that created the transaction, except for ACK, where the method of
 * the request that created the transaction is INVITE").
 */
function transactionMethod(method: string): string {
  return method === 'ACK' ? 'INVITE' : method;
}

/**
 * The §17.2.3 key without the method: branch + sent-by for RFC 3261 requests;
 * Request-URI, To tag, From tag, Call-ID, CSeq number and top Via for RFC 2543
 * ones. CANCEL uses it to find the request it cancels whatever its method (§9.2:
 * "Regardless of the method of the original request, as long as the CANCEL
 * matched an existing transaction, the UAS answers the CANCEL request itself
 * with a 200 (OK) response").
 */
export function serverKeyWithoutMethod(req: SipRequest): string {
  const via = req.topVia;
  if (isRfc3261Branch(via.branch)) {
    // §17.2.3: "the branch parameter in the request is equal to the one in the top Via header
    // field of the request that created the transaction [and] the sent-by value in the top Via
    // of the request is equal to the one in the request that created the transaction".
    return ownString(`3261\u0000${via.branch}\u0000${sentBy(via)}`);
  }
  // §17.2.3: "The INVITE request matches a transaction if the Request-URI, To tag, From tag,
  // Call-ID, CSeq, and top Via header field match those of the INVITE request which created the
  // transaction." (The CSeq method is added by serverKey.)
  return [
    '2543',
    req.uriText,
    tagOf(req.to.tag),
    tagOf(req.from.tag),
    req.callId,
    String(req.cseq.seq),
    viaIdentity(via),
  ].join('\u0000');
}

/**
 * The key of the server transaction a request matches (§17.2.3). `method`
 * overrides the request's own method, e.g. 'INVITE' to find what a CANCEL
 * cancels (§9.2: "the method of the request that created the transaction" is
 * taken as INVITE). An ACK maps to its INVITE. For an RFC 2543 ACK use
 * `rfc2543AckKey` instead: its To tag is compared with the response, not with
 * the INVITE.
 */
export function serverKey(req: SipRequest, method: string = req.method): string {
  return serverKeyOf(serverKeyWithoutMethod(req), method);
}

/** `serverKey` from the key without the method (`serverKeyWithoutMethod`) and a method. */
export function serverKeyOf(withoutMethod: string, method: string): string {
  return ownString(`${withoutMethod}\u0000${transactionMethod(method)}`);
}

/**
 * RFC 2543 fallback for ACK (§17.2.3): "the ACK request matches a transaction if
 * the Request-URI, From tag, Call-ID, CSeq number (not the method), and top Via
 * header field match those of the INVITE request which created the transaction,
 * and the To tag of the ACK matches the To tag of the response sent by the
 * server transaction." This key holds the fields shared with the INVITE; the
 * caller then compares the To tag with the transaction's last response.
 * Undefined for requests with an RFC 3261 branch (they match by branch).
 */
export function rfc2543AckKey(req: SipRequest): string | undefined {
  const via = req.topVia;
  if (isRfc3261Branch(via.branch)) return undefined;
  return [
    '2543-ack',
    req.uriText,
    tagOf(req.from.tag),
    req.callId,
    String(req.cseq.seq),
    viaIdentity(via),
  ].join('\u0000');
}

/** Runs a key function, turning a missing or malformed header (a thrown SwitchboardError) into undefined. */
export function keyOrUndefined<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
