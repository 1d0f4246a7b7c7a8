/**
 * The message parser (RFC 3261 §7, §18.3, §25): bytes to a SipRequest or
 * SipResponse, or a SipParseError with the status to answer.
 *
 * Lenient where the RFC allows and strict where it must be (STYLE §8): header
 * lines are split and named eagerly but decoded lazily, except the headers every
 * element needs to handle a message at all (Via, From, To, Call-ID, CSeq,
 * Max-Forwards, Content-Length), which are decoded here so that a bad one fails
 * the message with 400 (RFC 4475 §3.1.2). Unknown or malformed other headers are
 * kept raw and do not fail the message.
 */
import { defaultLimits, type MessageLimits } from '../../base/limits.ts';
import type { Result } from '../../base/result.ts';
import { binaryDecode, utf8Decode, utf8DecodeStrict, utf8Encode } from '../../base/text.ts';
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';
import type { CSeq } from '../headers/cseq.ts';
import {
  HeaderId,
  identifyHeaderName,
  matchHeaderName,
  matchHeaderPrefix,
} from '../headers/names.ts';
import { isSimpleValidVia } from '../headers/via.ts';
import {
  FOLDED,
  CRITICAL_SLOT,
  PARSER_CODECS,
  SipRequest,
  SipResponse,
  fieldsFromIndex,
  requestInit,
  responseInit,
  headerErrorCode,
  type HeaderField,
} from '../message/message.ts';
import { isSimpleSipUri, parseUri, type Uri } from '../uri/uri.ts';
import { wireError, type SipParseError } from './errors.ts';

export interface ParseOptions {
  /**
   * 'datagram' (default): RFC 3261 §18.3 — the body is Content-Length octets and
   * octets after it are ignored; without Content-Length the body is the rest of
   * the datagram. 'stream': the input is exactly one message as cut by the
   * stream framer; without Content-Length the body is empty.
   */
  readonly framing?: 'datagram' | 'stream';
  readonly limits?: MessageLimits;
}

/** What was read before a failure: enough for a server to build a 400 (§8.2.6). */
export interface PartialMessage {
  readonly isRequest: boolean;
  readonly method?: string;
  readonly fields: readonly HeaderField[];
}

export type ParseResult =
  | { readonly ok: true; readonly message: SipRequest | SipResponse }
  | { readonly ok: false; readonly error: SipParseError; readonly partial?: PartialMessage };

const CR = 13;
const LF = 10;

function fail(error: SipParseError, partial?: PartialMessage): ParseResult {
  return partial === undefined ? { ok: false, error } : { ok: false, error, partial };
}

/** Parses one SIP message from octets (or text, which is encoded as UTF-8 first). */
export function parseMessage(input: Uint8Array | string, options?: ParseOptions): ParseResult {
  const bytes = typeof input === 'string' ? utf8Encode(input) : input;
  const limits = options?.limits ?? defaultLimits;
  const stream = options?.framing === 'stream';
  const n = bytes.length;

  // RFC 3261 §7.5: ignore CRLFs before the start line.
  let start = 0;
  while (start < n && (bytes[start] === CR || bytes[start] === LF)) start++;
  if (start === n) return fail(wireError('SB_ERR_PARSE_EMPTY'));
  const data = start === 0 ? bytes : bytes.subarray(start);
  const len = data.length;

  let text: string;
  // Header lines are read from `text` up to `limit`; the empty line that ends them
  // is found by the line loop below (CRLF, bare LF and mixes alike).
  let limit: number;
  // On the byte path the header section was cut out already: the body's offset.
  let knownBodyStart = -1;
  let binary = false;

  // Fast path: decode once; when the text has as many code units as there are
  // octets and no U+FFFD, every octet was ASCII and offsets coincide.
  const all = utf8Decode(data);
  if (all.length === len && all.indexOf('\uFFFD') < 0) {
    text = all;
    limit = len;
  } else {
    const r = findHeadEndBytes(data);
    if (r.headEnd < 0) {
      if (r.headEnd === -2 && !stream) {
        r.headEnd = len;
        r.bodyStart = len;
      } else return fail(wireError('SB_ERR_PARSE_HEADERS_UNTERMINATED'));
    }
    if (r.bodyStart > limits.maxHeaderBytes) return fail(wireError('SB_ERR_HEADERS_TOO_LARGE'));
    const head = data.subarray(0, r.headEnd);
    const decoded = utf8DecodeStrict(head);
    if (decoded === undefined) binary = true;
    text = decoded ?? binaryDecode(head);
    limit = text.length;
    knownBodyStart = r.bodyStart;
  }

  // The line loop reads characters from `scan`, an octet per code unit of `text`
  // at the same offsets: the datagram itself when it is all ASCII, else a copy of
  // the header text with every code unit above 0x7f as 0x80 (no delimiter, no
  // token character), so that the loop reads a typed array, not string characters.
  const scan = knownBodyStart < 0 ? data : asciiShadow(text);

  // ---- start line (RFC 3261 §7.1, §7.2) ----
  let lineEnd = text.indexOf('\n');
  if (lineEnd < 0) {
    if (knownBodyStart < 0) {
      return fail(
        wireError(
          len > limits.maxHeaderBytes
            ? 'SB_ERR_HEADERS_TOO_LARGE'
            : 'SB_ERR_PARSE_HEADERS_UNTERMINATED',
        ),
      );
    }
    lineEnd = limit;
  }
  const startLine = text.slice(
    0,
    lineEnd > 0 && text.charCodeAt(lineEnd - 1) === CR ? lineEnd - 1 : lineEnd,
  );
  // "SIP/" (case-insensitive) opens a Status-Line; a method is a token and cannot hold "/".
  const isResponse =
    startLine.length > 4 &&
    (startLine.charCodeAt(0) | 0x20) === 0x73 &&
    (startLine.charCodeAt(1) | 0x20) === 0x69 &&
    (startLine.charCodeAt(2) | 0x20) === 0x70 &&
    startLine.charCodeAt(3) === 0x2f;
  let method = '';
  let uriText = '';
  let status = 0;
  let reason = '';
  let version: string;
  if (isResponse) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
    const sp = startLine.indexOf(' ');
    version = sp < 0 ? startLine : startLine.slice(0, sp);
    const ve = checkVersion(version);
    if (ve !== undefined) return fail(ve);
    const codeEnd = sp < 0 ? -1 : indexOfOrEnd(startLine, ' ', sp + 1);
    const code = sp < 0 ? '' : startLine.slice(sp + 1, codeEnd);
    if (!isStatusCode(code)) {
      return fail(
        wireError(
          'SB_ERR_PARSE_STATUS_CODE',
          `status code ${JSON.stringify(code)} is not 100..699`,
        ),
      );
    }
    status = Number(code);
    reason = codeEnd < startLine.length ? startLine.slice(codeEnd + 1) : '';
  } else {
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF: exactly two single SPs.
    const sp1 = startLine.indexOf(' ');
    const sp2 = sp1 < 0 ? -1 : startLine.indexOf(' ', sp1 + 1);
    if (sp1 <= 0 || sp2 < 0 || startLine.indexOf(' ', sp2 + 1) >= 0 || sp2 === sp1 + 1) {
      return fail(
        wireError('SB_ERR_PARSE_START_LINE', `malformed Request-Line ${JSON.stringify(startLine)}`),
      );
    }
    method = startLine.slice(0, sp1);
    if (!isTokenString(method)) return fail(wireError('SB_ERR_PARSE_METHOD'));
    version = startLine.slice(sp2 + 1);
    const ve = checkVersion(version);
    if (ve !== undefined) return fail(ve);
    uriText = startLine.slice(sp1 + 1, sp2);
  }

  // ---- header fields (RFC 3261 §7.3) ----
  // One pass records two numbers per field (see message.ts STRIDE); no string or object per field.
  const index: number[] = [];
  const results: (Result<unknown, string> | undefined)[] = [];
  const maxHeaderBytes = limits.maxHeaderBytes;
  const maxHeaderCount = limits.maxHeaderCount;
  let k = 0;
  let seen = 0;
  // Position of the first field of each critical header, by CRITICAL_SLOT.
  const firsts = [-1, -1, -1, -1, -1, -1, -1];
  let i = lineEnd + 1;
  let bodyStart: number;
  for (;;) {
    if (i >= limit) {
      if (knownBodyStart >= 0) {
        bodyStart = knownBodyStart;
        break;
      }
      // The datagram ends after a complete header line but without the empty
      // line: accept it as a message without body (never on a stream).
      if (i === limit && !stream) {
        bodyStart = len;
        break;
      }
      return fail(
        wireError(
          i > limits.maxHeaderBytes
            ? 'SB_ERR_HEADERS_TOO_LARGE'
            : 'SB_ERR_PARSE_HEADERS_UNTERMINATED',
        ),
      );
    }
    // The empty line: LF, or CR LF, at the start of a line.
    const first = scan[i]!;
    if (first === LF) {
      bodyStart = i + 1;
      break;
    }
    if (first === CR && scan[i + 1] === LF) {
      bodyStart = i + 2;
      break;
    }
    if (i > maxHeaderBytes) return fail(wireError('SB_ERR_HEADERS_TOO_LARGE'));
    let e = text.indexOf('\n', i);
    if (e < 0) e = limit;
    let folded = 0;
    // A line starting with SP or HT continues the previous line (§7.3.1).
    while (e + 1 < limit) {
      const nx = scan[e + 1]!;
      if (nx !== 0x20 && nx !== 0x09) break;
      folded = FOLDED;
      const e2 = text.indexOf('\n', e + 1);
      e = e2 < 0 ? limit : e2;
    }
    const lineStop = e > i && scan[e - 1] === CR ? e - 1 : e;
    // field-name = token, then HCOLON = *( SP / HTAB ) ":" SWS (RFC 3261 §7.3.1, §25.1).
    // A known name right before its colon is told from its first octets; else
    // the colon is searched for and the name looked up.
    const known = i + 3 < scan.length ? matchHeaderPrefix(scan, i) : 0;
    let id = known & 0xff;
    let colon = i + (known >> 8);
    let c: number;
    if (known === 0) {
      colon = text.indexOf(':', i);
      if (colon <= i || colon >= lineStop) {
        return fail(badHeaderLine(text, i, lineStop), partialOf(!isResponse, method, text, index));
      }
      let nameEnd = colon;
      c = scan[nameEnd - 1]!;
      while (c === 0x20 || c === 0x09) c = scan[--nameEnd - 1]!;
      // A known name is all token characters; any other is checked here.
      id =
        i + 3 < scan.length
          ? matchHeaderName(scan, i, nameEnd)
          : identifyHeaderName(text, i, nameEnd);
      if (id === 0 && !isTokenRange(scan, i, nameEnd)) {
        return fail(badHeaderLine(text, i, lineStop), partialOf(!isResponse, method, text, index));
      }
    }
    if (k >= maxHeaderCount) return fail(wireError('SB_ERR_TOO_MANY_HEADERS'));
    index.push(id | folded, i);
    const at = k++;
    i = e + 1;

    // Critical headers are decoded now: a bad one fails the message (RFC 4475 §3.1.2).
    const bit = CRITICAL_BITS[id]!;
    if (bit === 0) continue;
    // The value: after the colon and LWS, up to the line end without trailing LWS
    // (message.ts fieldValueStart/fieldValueEnd find the same offsets later).
    let vs = colon + 1;
    let ve = lineStop;
    if (scan[vs] === 0x20) vs++;
    while (vs < ve && ((c = scan[vs]!) === 0x20 || c === 0x09 || c === CR || c === LF)) vs++;
    while (ve > vs && ((c = scan[ve - 1]!) === 0x20 || c === 0x09 || c === CR || c === LF)) ve--;
    if (bit !== VIA_BIT && (seen & bit) !== 0) {
      const nm = PARSER_CODECS[id]!.name;
      return fail(
        wireError('SB_ERR_DUPLICATE_HEADER', `more than one ${nm} header`, nm),
        partialOf(!isResponse, method, text, index),
      );
    }
    if ((seen & bit) === 0) firsts[31 - Math.clz32(bit)] = at;
    seen |= bit;
    // Via fields below the first are checked here but decoded when first read
    // (a proxy reads them only when it routes a response back).
    if (
      bit === VIA_BIT &&
      (seen & VIA_SEEN_BIT) !== 0 &&
      folded === 0 &&
      isSimpleValidVia(text.slice(vs, ve))
    ) {
      continue;
    }
    if (bit === VIA_BIT) seen |= VIA_SEEN_BIT;
    const codec = PARSER_CODECS[id]!;
    const raw = text.slice(vs, ve);
    const r = codec.parse(folded !== 0 ? unfoldValue(raw) : raw);
    results[at] = r;
    if (!r.ok) {
      return fail(
        wireError(headerErrorCode(codec.key), `${codec.name}: ${r.error}`, codec.name),
        partialOf(!isResponse, method, text, index),
      );
    }
  }
  if (bodyStart > limits.maxHeaderBytes) return fail(wireError('SB_ERR_HEADERS_TOO_LARGE'));
  const required = VIA_BIT | FROM_BIT | TO_BIT | CALLID_BIT | CSEQ_BIT;
  if ((seen & required) !== required) {
    const missing: string[] = [];
    if ((seen & VIA_BIT) === 0) missing.push('Via');
    if ((seen & FROM_BIT) === 0) missing.push('From');
    if ((seen & TO_BIT) === 0) missing.push('To');
    if ((seen & CALLID_BIT) === 0) missing.push('Call-ID');
    if ((seen & CSEQ_BIT) === 0) missing.push('CSeq');
    return fail(
      wireError('SB_ERR_MISSING_HEADER', `missing ${missing.join(', ')}`, missing[0]),
      partialOf(!isResponse, method, text, index),
    );
  }

  // ---- body (RFC 3261 §18.3, §20.14) ----
  let bodyLength: number;
  const available = len - bodyStart;
  const clAt = firsts[CRITICAL_SLOT.ContentLength]!;
  if (clAt >= 0) {
    bodyLength = (results[clAt] as { value: number }).value;
    if (bodyLength > limits.maxBodyBytes)
      return fail(wireError('SB_ERR_BODY_TOO_LARGE'), partialOf(!isResponse, method, text, index));
    if (bodyLength > available) {
      return fail(
        wireError(
          'SB_ERR_BODY_TRUNCATED',
          `Content-Length ${bodyLength} but ${available} octets follow`,
        ),
        partialOf(!isResponse, method, text, index),
      );
    }
  } else {
    // §18.3: without Content-Length a datagram's body is the rest of it; on a
    // stream the framer has taken none (it assumes 0).
    bodyLength = stream ? 0 : available;
    if (bodyLength > limits.maxBodyBytes)
      return fail(wireError('SB_ERR_BODY_TOO_LARGE'), partialOf(!isResponse, method, text, index));
  }
  const end = bodyStart + bodyLength;
  const wire = end === data.length ? data : data.subarray(0, end);

  if (isResponse) {
    return {
      ok: true,
      message: new SipResponse(
        responseInit(
          status,
          reason,
          version,
          { text, index, results, codecs: undefined, firsts },
          undefined,
          undefined,
          bodyStart,
          wire,
          binary,
        ),
      ),
    };
  }
  // RFC 3261 §8.1.1.5 / RFC 4475 §3.1.2.17: the CSeq method matches the request method.
  const cseq = (results[firsts[CRITICAL_SLOT.CSeq]!] as { value: CSeq }).value;
  if (cseq.method !== method) {
    return fail(
      wireError(
        'SB_ERR_CSEQ_METHOD_MISMATCH',
        `CSeq method ${cseq.method} differs from ${method}`,
        'CSeq',
      ),
      partialOf(!isResponse, method, text, index),
    );
  }
  // The Request-URI is checked now and decoded on first use when it has the
  // common shape; otherwise it is parsed here, and a bad one fails the message.
  let uri: Uri | undefined;
  if (!isSimpleSipUri(uriText)) {
    const r = parseUri(uriText);
    if (!r.ok) {
      return fail(
        wireError('SB_ERR_PARSE_REQUEST_URI', `Request-URI: ${r.error}`),
        partialOf(!isResponse, method, text, index),
      );
    }
    // RFC 3261 §19.1.1 (table): the headers component is not allowed in a Request-URI.
    if (r.value.kind === 'sip' && r.value.headers.length > 0) {
      return fail(
        wireError('SB_ERR_PARSE_REQUEST_URI', 'Request-URI carries URI headers'),
        partialOf(!isResponse, method, text, index),
      );
    }
    uri = r.value;
  }
  return {
    ok: true,
    message: new SipRequest(
      requestInit(
        method,
        uri,
        uriText,
        version,
        { text, index, results, codecs: undefined, firsts },
        undefined,
        undefined,
        bodyStart,
        wire,
        binary,
      ),
    ),
  };
}

// Bit 1 << CRITICAL_SLOT.X of each critical header (message.ts).
const VIA_BIT = 1;
const FROM_BIT = 2;
const TO_BIT = 4;
const CALLID_BIT = 8;
const CSEQ_BIT = 16;
const MF_BIT = 32;
const CL_BIT = 64;
/** A first Via field was decoded. */
const VIA_SEEN_BIT = 128;

/** Bit of a critical header id, 0 for others (indexed by header id; ids are < 256). */
const CRITICAL_BITS: Readonly<Uint8Array> = (() => {
  const t = new Uint8Array(256);
  t[HeaderId.Via] = VIA_BIT;
  t[HeaderId.From] = FROM_BIT;
  t[HeaderId.To] = TO_BIT;
  t[HeaderId.CallId] = CALLID_BIT;
  t[HeaderId.CSeq] = CSEQ_BIT;
  t[HeaderId.MaxForwards] = MF_BIT;
  t[HeaderId.ContentLength] = CL_BIT;
  return t;
})();

function unfoldValue(v: string): string {
  return v.replace(/[ \t]*\r?\n[ \t]+/g, ' ');
}

function isTokenRange(s: Uint8Array, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const c = s[i]!;
    if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0) return false;
  }
  return true;
}

function asciiShadow(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    out[i] = c < 0x80 ? c : 0x80;
  }
  return out;
}

/** Why a header line that is not `token *WSP ":"` fails. */
function badHeaderLine(text: string, i: number, lineStop: number): SipParseError {
  const colon = text.indexOf(':', i);
  if (colon <= i || colon >= lineStop) {
    return wireError(
      'SB_ERR_PARSE_HEADER_LINE',
      `header line without a colon: ${JSON.stringify(text.slice(i, Math.min(lineStop, i + 40)))}`,
    );
  }
  let nameEnd = colon;
  let c = text.charCodeAt(nameEnd - 1);
  while (nameEnd > i && (c === 0x20 || c === 0x09)) c = text.charCodeAt(--nameEnd - 1);
  return wireError(
    'SB_ERR_PARSE_HEADER_LINE',
    `invalid header name ${JSON.stringify(text.slice(i, nameEnd))}`,
  );
}

function partialOf(
  isRequest: boolean,
  method: string,
  text: string,
  index: number[],
): PartialMessage {
  const fields = fieldsFromIndex(text, index);
  return isRequest ? { isRequest, method, fields } : { isRequest, fields };
}

/** SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT; only 2.0 is supported (§8.2.6 would not apply: 505). */
function checkVersion(v: string): SipParseError | undefined {
  if (v === 'SIP/2.0') return undefined;
  if (/^SIP\/2\.0$/i.test(v)) return undefined;
  if (/^SIP\/\d+\.\d+$/i.test(v))
    return wireError('SB_ERR_PARSE_VERSION', `version ${v} is not supported`);
  return wireError('SB_ERR_PARSE_START_LINE', `malformed SIP-Version ${JSON.stringify(v)}`);
}

/** Status-Code = 3DIGIT, 100..699 (RFC 3261 §7.2; RFC 4475 §3.1.2.19 bigcode). */
function isStatusCode(code: string): boolean {
  if (code.length !== 3) return false;
  const a = code.charCodeAt(0);
  const b = code.charCodeAt(1);
  const c = code.charCodeAt(2);
  return a >= 0x31 && a <= 0x36 && b >= 0x30 && b <= 0x39 && c >= 0x30 && c <= 0x39;
}

function indexOfOrEnd(s: string, ch: string, from: number): number {
  const i = s.indexOf(ch, from);
  return i < 0 ? s.length : i;
}

function isTokenString(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0) return false;
  }
  return true;
}

function findHeadEndBytes(b: Uint8Array): { headEnd: number; bodyStart: number } {
  const n = b.length;
  for (let i = 0; i < n; i++) {
    if (b[i] !== LF) continue;
    if (b[i + 1] === LF) return { headEnd: i > 0 && b[i - 1] === CR ? i - 1 : i, bodyStart: i + 2 };
    if (b[i + 1] === CR && b[i + 2] === LF) {
      return { headEnd: i > 0 && b[i - 1] === CR ? i - 1 : i, bodyStart: i + 3 };
    }
  }
  return { headEnd: n > 0 && b[n - 1] === LF ? -2 : -1, bodyStart: n };
}
