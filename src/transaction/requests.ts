/**
 * The two requests the transaction layer builds itself: the ACK for a non-2xx
 * final response to an INVITE (RFC 3261 §17.1.1.3) and the CANCEL of an INVITE
 * (§9.1). Both copy fields from the INVITE as their raw text, so the copies are
 * byte-identical (a proxy or UAS compares them).
 */
import { makeField, SipRequest, type HeaderField } from '../sip/message/message.ts';
import type { SipResponse } from '../sip/message/message.ts';
import { formatVia, parseViaList } from '../sip/headers/via.ts';
import { SwitchboardError } from '../base/errors.ts';

/**
 * The top Via of a request as one Via value: the first Via field's text when it
 * holds one value (byte-identical), else the first value re-formatted.
 */
export function topViaValue(req: SipRequest): string {
  const first = req.getRaw('Via');
  if (first === undefined) throw new SwitchboardError('SB_ERR_HEADER_ABSENT', 'Via');
  const r = parseViaList(first);
  if (r.ok && r.value.length === 1) return first;
  return formatVia(req.topVia);
}

function required(req: SipRequest | SipResponse, name: string): string {
  const v = req.getRaw(name);
  if (v === undefined) throw new SwitchboardError('SB_ERR_HEADER_ABSENT', name);
  return v;
}

/**
 * Fields common to ACK and CANCEL: one Via (the request's top Via), the
 * request's Route fields, Max-Forwards, To, From, Call-ID, CSeq number with the
 * new method.
 */
function derivedFields(
  invite: SipRequest,
  method: 'ACK' | 'CANCEL',
  to: string,
  extra: readonly (readonly [string, string])[],
): HeaderField[] {
  const fields: HeaderField[] = [makeField('Via', topViaValue(invite))];
  fields.push(makeField('Max-Forwards', String(invite.maxForwards ?? 70)));
  for (const route of invite.getRawAll('Route')) fields.push(makeField('Route', route));
  fields.push(makeField('To', to));
  fields.push(makeField('From', required(invite, 'From')));
  fields.push(makeField('Call-ID', required(invite, 'Call-ID')));
  fields.push(makeField('CSeq', `${invite.cseq.seq} ${method}`));
  for (const [name, value] of extra) fields.push(makeField(name, value));
  fields.push(makeField('Content-Length', '0'));
  return fields;
}

/**
 * The ACK for a non-2xx final response, built inside the INVITE client
 * transaction (RFC 3261 §17.1.1.3): "The ACK request constructed by the client
 * transaction MUST contain values for the Call-ID, From, and Request-URI that
 * are equal to the values of those header fields in the request passed to the
 * transport by the client transaction (call this the 'original request'). The
 * To header field in the ACK MUST equal the To header field in the response
 * being acknowledged ... The ACK MUST contain a single Via header field, and
 * this MUST be equal to the top Via header field of the original request. The
 * CSeq header field in the ACK MUST contain the same value for the sequence
 * number as was present in the original request, but the method parameter MUST
 * be equal to 'ACK'. If the INVITE request whose response is being acknowledged
 * had Route header fields, those header fields MUST appear in the ACK."
 * Max-Forwards (mandatory in every request, §8.1.1) is the INVITE's.
 */
export function buildAckForNon2xx(invite: SipRequest, response: SipResponse): SipRequest {
  return new SipRequest({
    method: 'ACK',
    uriText: invite.uriText,
    fields: derivedFields(invite, 'ACK', required(response, 'To'), []),
  });
}

/**
 * The CANCEL of a request (RFC 3261 §9.1): "The Request-URI, Call-ID, To, the
 * numeric part of CSeq, and From header fields in the CANCEL request MUST be
 * identical to those in the request being cancelled, including tags. A CANCEL
 * constructed by a client MUST have only a single Via header field value
 * matching the top Via value in the request being cancelled. ... If the request
 * being cancelled contains a Route header field, the CANCEL request MUST include
 * that Route header field's values." `headers` adds fields such as Reason
 * (RFC 3326).
 */
export function buildCancel(
  request: SipRequest,
  headers: readonly (readonly [string, string])[] = [],
): SipRequest {
  return new SipRequest({
    method: 'CANCEL',
    uriText: request.uriText,
    fields: derivedFields(request, 'CANCEL', required(request, 'To'), headers),
  });
}
