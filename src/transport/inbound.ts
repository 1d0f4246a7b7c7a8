/**
 * What the server transport does to a message it received, before the
 * transaction layer sees it (RFC 3261 §18.2.1), as pure functions over the
 * message core so that every transport kind shares them:
 * - stamp the top Via with `received` and `rport` (§18.2.1, RFC 3581 §4);
 * - find the header fields of a request that failed to parse, so that it can
 *   be answered 400/505/513 (§8.2.6 via createErrorResponse) instead of being
 *   dropped, including a stream whose framing broke (the framer hands over the
 *   header section it read).
 */
import { utf8Encode } from '../base/index.ts';
import {
  ViaHeader,
  formatVia,
  makeField,
  parseMessage,
  viaWithParams,
  withParam,
  type HeaderField,
  type ParseResult,
  type SipRequest,
  type Via,
} from '../sip/index.ts';
import type { MessageLimits } from '../base/index.ts';
import { normalizeAddress, sameAddress } from './address.ts';
import type { Endpoint } from './transport.ts';

/**
 * Adds `received` and fills `rport` in the top Via of a request received from
 * `remote`:
 * - RFC 3261 §18.2.1: "If the host portion of the "sent-by" parameter contains
 *   a domain name, or if it contains an IP address that differs from the packet
 *   source address, the server MUST add a "received" parameter to that Via
 *   header field value. This parameter MUST contain the source address from
 *   which the packet was received."
 * - RFC 3581 §4: "When a server compliant to this specification ... receives a
 *   request, it examines the topmost Via header field value. If this Via header
 *   field value contains an "rport" parameter with no value, it MUST set the
 *   value of the parameter to the source port of the request. ... the server
 *   MUST insert a "received" parameter containing the source IP address ...
 *   even if it is identical to the value of the "sent-by" component."
 *
 * The request is returned unchanged (same object, wire bytes kept) when neither
 * applies. The received address is written without brackets (the IPv6address
 * form of §25.1; RFC 5118 §4.5 allows both).
 */
export function stampVia(req: SipRequest, remote: Endpoint): SipRequest {
  const via = req.topVia;
  const wantsRport = via.rport === null;
  const differs = !sameAddress(via.host, remote.address);
  if (!differs && !wantsRport) return req;
  let params = withParam(via.params, 'received', normalizeAddress(remote.address));
  if (wantsRport) params = withParam(params, 'rport', String(remote.port));
  const built = viaWithParams(via, params);
  // The parameters come from a parsed Via and values written here, so `built` is an error
  // only in theory; the stamp is then written but not kept decoded.
  const stamped: Via = typeof built === 'string' ? { ...via, params } : built;
  // Usually the top Via is a field of its own: only that field changes, what the others
  // decoded to is kept, and so is the stamped Via itself (no one parses it again).
  // Otherwise it is split off its field.
  const k = req.firstAt(ViaHeader.key);
  const first = req.decodeField(k, ViaHeader);
  if (first !== undefined && first.length === 1) {
    const decoded: readonly Via[] | undefined = typeof built === 'string' ? undefined : [built];
    return req.replaceAt(k, formatVia(stamped), ViaHeader, decoded);
  }
  return req.removeFirst(ViaHeader).prepend('Via', formatVia(stamped));
}

/** A failed parse, as parseMessage returns it. */
export type ParseFailure = Extract<ParseResult, { ok: false }>;

const START_LINE_ERRORS = new Set<string>([
  'SB_ERR_PARSE_START_LINE',
  'SB_ERR_PARSE_METHOD',
  'SB_ERR_PARSE_REQUEST_URI',
  'SB_ERR_PARSE_VERSION',
]);

/** A start line that the header fields can be read under when the real one does not parse. */
const STAND_IN_START_LINE = 'OPTIONS sip:invalid SIP/2.0\r\n';

/** True when the octets open with a Status-Line ("SIP/", after any leading CRLFs, §7.5). */
export function looksLikeResponse(bytes: Uint8Array): boolean {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 13 || bytes[i] === 10)) i++;
  return (
    bytes.length - i > 4 &&
    (bytes[i]! | 0x20) === 0x73 &&
    (bytes[i + 1]! | 0x20) === 0x69 &&
    (bytes[i + 2]! | 0x20) === 0x70 &&
    bytes[i + 3] === 0x2f
  );
}

/**
 * The header fields of a request that failed to parse, to build its error
 * response from; undefined for a response (§18.1.2: dropped) or when nothing
 * was read.
 *
 * The parser gives no partial message when the start line itself is at fault
 * (a bad version, RFC 4475 §3.1.2.16 badvers, must still be answered 505), so
 * the header section is then read again under a stand-in request line: only
 * Via, From, To, Call-ID and CSeq are copied into the answer.
 */
export function failedRequestFields(
  bytes: Uint8Array,
  failure: ParseFailure,
  options: { readonly framing: 'datagram' | 'stream'; readonly limits: MessageLimits },
): readonly HeaderField[] | undefined {
  if (failure.partial !== undefined) {
    return failure.partial.isRequest ? withRawCriticals(bytes, failure.partial.fields) : undefined;
  }
  if (!START_LINE_ERRORS.has(failure.error.code) || looksLikeResponse(bytes)) return undefined;
  let i = 0;
  while (i < bytes.length && (bytes[i] === 13 || bytes[i] === 10)) i++;
  const lf = bytes.indexOf(10, i);
  if (lf < 0) return undefined;
  const standIn = utf8Encode(STAND_IN_START_LINE);
  const rest = bytes.subarray(lf + 1);
  const joined = new Uint8Array(standIn.length + rest.length);
  joined.set(standIn, 0);
  joined.set(rest, standIn.length);
  const again = parseMessage(joined, options);
  if (again.ok) return again.message.fields;
  return again.partial === undefined ? undefined : withRawCriticals(bytes, again.partial.fields);
}

/** The fields §8.2.6.2 copies into a response, by key. */
const COPIED = ['via', 'from', 'to', 'call-id', 'cseq'];

/**
 * The parser stops at the first bad header field, so fields after it are missing from
 * a failed parse; §8.2.6.2 wants the response's Via, From, To, Call-ID and CSeq to be
 * the request's (RFC 4475 §3.1.2.6 quotbal has a bad To before its Via). Those missing
 * are read here from the raw header lines, as they are; the response then carries
 * them unchanged, and a Via that does not parse leaves the request unanswerable as
 * before.
 */
function withRawCriticals(
  bytes: Uint8Array,
  fields: readonly HeaderField[],
): readonly HeaderField[] {
  const have = new Set(fields.map((f) => f.key));
  if (COPIED.every((k) => have.has(k))) return fields;
  const end = Math.min(bytes.length, 65_536);
  let text = '';
  for (let i = 0; i < end; i++) text += String.fromCharCode(bytes[i]!);
  const stop = text.search(/\r?\n\r?\n/);
  const lines = (stop < 0 ? text : text.slice(0, stop)).split(/\r?\n/);
  const out = [...fields];
  // Line 0 is the start line; a line starting with whitespace continues the previous one.
  let current: string | undefined;
  const take = (line: string | undefined): void => {
    if (line === undefined) return;
    const m = /^([!#-'*+.0-9A-Z^_`a-z|~-]+)[ \t]*:(.*)$/s.exec(line);
    if (m === null) return;
    let field: HeaderField;
    try {
      field = makeField(m[1]!, m[2]!.replace(/[\r\n]+/g, ' '));
    } catch {
      return;
    }
    if (COPIED.includes(field.key) && !have.has(field.key)) out.push(field);
  };
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^[ \t]/.test(line) && current !== undefined) {
      current += ' ' + line.trim();
      continue;
    }
    take(current);
    current = line;
  }
  take(current);
  return out;
}

/**
 * The header fields of a request whose stream framing broke after its header
 * section was read (the StreamFramer's `head`: a bad or oversized
 * Content-Length, RFC 4475 §3.1.2.3 ncl, §3.3.9 mcl01), or undefined.
 */
export function headRequestFields(
  head: Uint8Array,
  limits: MessageLimits,
): readonly HeaderField[] | undefined {
  const r = parseMessage(head, { framing: 'stream', limits });
  if (r.ok) return r.message.isRequest() ? r.message.fields : undefined;
  return failedRequestFields(head, r, { framing: 'stream', limits });
}
