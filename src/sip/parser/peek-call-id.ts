/**
 * The Call-ID of a message read straight from its octets, without parsing it: what a server of
 * several workers needs to hand a datagram to the worker that owns it (Call-ID steering) before
 * anyone spends a parse on it, since only the owner will use the parse.
 *
 * It answers only when the answer is certainly what the parser would give (`message.callId`):
 * the first header line named Call-ID or its compact form `i` (RFC 3261 §7.3.3, §20.8; names
 * are case-insensitive, §7.3.1, and may be followed by white space before the colon, §25.1
 * HCOLON), with its value trimmed of white space, ASCII, not folded onto the next line (§7.3.1)
 * and not empty. Anything else (no such header before the empty line, a folded or non-ASCII
 * value, a start line that does not end) gives undefined, and the caller parses as usual; a
 * second Call-ID header is the parser's to refuse, wherever the message goes.
 */

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const COLON = 58;

/** Lower-cases an ASCII letter. */
const lower = (c: number): number => (c >= 65 && c <= 90 ? c | 0x20 : c);

/** "call-id" */
const NAME = [99, 97, 108, 108, 45, 105, 100];

/** Whether the header name at `at` is `call-id` or `i`; returns the offset after it or -1. */
function callIdName(b: Uint8Array, at: number, end: number): number {
  const c0 = lower(b[at]!);
  if (c0 !== 105 && c0 !== 99) return -1; // 'i' or 'c'
  let i = at;
  if (c0 === 99) {
    if (at + NAME.length > end) return -1;
    for (let k = 0; k < NAME.length; k++) if (lower(b[at + k]!) !== NAME[k]) return -1;
    i = at + NAME.length;
  } else i = at + 1;
  while (i < end && (b[i] === SP || b[i] === HT)) i++;
  return i < end && b[i] === COLON ? i + 1 : -1;
}

/**
 * The Call-ID of the message in `bytes`, when it can be told for sure without parsing (see
 * above), else undefined. Reads no further than the end of the header section nor than
 * `maxHeaderBytes` octets.
 */
export function peekCallId(bytes: Uint8Array, maxHeaderBytes = 65_536): string | undefined {
  const end = Math.min(bytes.length, maxHeaderBytes);
  // Skip the start line (and the CRLFs a sender may put before it, §7.5).
  let i = 0;
  while (i < end && (bytes[i] === CR || bytes[i] === LF)) i++;
  while (i < end && bytes[i] !== LF) i++;
  i++;
  while (i < end) {
    const c = bytes[i]!;
    // The empty line: the header section ended without a Call-ID.
    if (c === CR || c === LF) return undefined;
    const after = c === SP || c === HT ? -1 : callIdName(bytes, i, end);
    if (after >= 0) {
      let v = after;
      while (v < end && (bytes[v] === SP || bytes[v] === HT)) v++;
      let e = v;
      while (e < end && bytes[e] !== LF && bytes[e] !== CR) {
        if (bytes[e]! >= 0x80) return undefined;
        e++;
      }
      if (e >= end) return undefined;
      // A folded value continues on the next line: the parser's to read.
      const next = bytes[e] === CR && e + 1 < end && bytes[e + 1] === LF ? e + 2 : e + 1;
      if (next < end && (bytes[next] === SP || bytes[next] === HT)) return undefined;
      let t = e;
      while (t > v && (bytes[t - 1] === SP || bytes[t - 1] === HT)) t--;
      if (t === v) return undefined;
      let s = '';
      for (let k = v; k < t; k++) s += String.fromCharCode(bytes[k]!);
      return s;
    }
    while (i < end && bytes[i] !== LF) i++;
    i++;
  }
  return undefined;
}

/** "REGISTER " */
const REGISTER = [82, 69, 71, 73, 83, 84, 69, 82, 32];
/** "authorization" */
const AUTHORIZATION = [97, 117, 116, 104, 111, 114, 105, 122, 97, 116, 105, 111, 110];

/** Whether the header name at `at` is `name` (lower case letters; any case in `b`), then HCOLON. */
function isName(b: Uint8Array, at: number, end: number, name: readonly number[]): boolean {
  if (at + name.length > end) return false;
  for (let k = 0; k < name.length; k++) if (lower(b[at + k]!) !== name[k]) return false;
  let i = at + name.length;
  while (i < end && (b[i] === SP || b[i] === HT)) i++;
  return i < end && b[i] === COLON;
}

/**
 * Whether the datagram is certainly a REGISTER without credentials: its start line begins
 * with `REGISTER ` (methods are case-sensitive, RFC 3261 §7.1), its header section ends within
 * `maxHeaderBytes`, and no header line in it is named Authorization (§20.7; it has no compact
 * form). A registrar answers such a request with a challenge or an error and keeps no state
 * (§8.2.7, §10.3 step 3), so a server of several workers lets whichever worker read it answer
 * it instead of handing it to the Call-ID's owner. False whenever in doubt.
 */
export function peekUnauthenticatedRegister(bytes: Uint8Array, maxHeaderBytes = 65_536): boolean {
  const end = Math.min(bytes.length, maxHeaderBytes);
  let i = 0;
  while (i < end && (bytes[i] === CR || bytes[i] === LF)) i++;
  if (i + REGISTER.length > end) return false;
  for (let k = 0; k < REGISTER.length; k++) if (bytes[i + k] !== REGISTER[k]) return false;
  while (i < end && bytes[i] !== LF) i++;
  i++;
  while (i < end) {
    const c = bytes[i]!;
    // The empty line: the header section is over, and it named no Authorization.
    if (c === CR || c === LF) return true;
    if (c !== SP && c !== HT && isName(bytes, i, end, AUTHORIZATION)) return false;
    while (i < end && bytes[i] !== LF) i++;
    i++;
  }
  return false;
}

/** "proxy-authorization" */
const PROXY_AUTHORIZATION = [112, 114, 111, 120, 121, 45, ...AUTHORIZATION];

/** "to" */
const TO = [116, 111];
/** "t" (RFC 3261 §7.3.3: the compact form of To) */
const TO_COMPACT = [116];

/** Whether the line from `from` to `to` holds "tag" in any case. */
function mentionsTag(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i + 2 < to; i++) {
    if (lower(b[i]!) === 116 && lower(b[i + 1]!) === 97 && lower(b[i + 2]!) === 103) return true;
  }
  return false;
}

/** A token character of a method name (RFC 3261 §25.1 token). */
function isTokenChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    (c >= 48 && c <= 57) ||
    c === 45 || // -
    c === 46 || // .
    c === 33 || // !
    c === 37 || // %
    c === 42 || // *
    c === 95 || // _
    c === 43 || // +
    c === 96 || // `
    c === 39 || // '
    c === 126 // ~
  );
}

/**
 * Whether the datagram is certainly a request that starts new work and carries no credentials:
 * a request line (not a response) whose method is neither ACK nor CANCEL (they belong to a
 * transaction in progress, RFC 3261 §9.2, §17.1.1.3), one To header field (or its compact form
 * `t`, §20.39) whose line does not mention "tag" (no tag: outside any dialog, §12.2), and no
 * header line named Authorization or Proxy-Authorization (§22.2, §22.3: not the second half of
 * a challenge). What an overloaded server sheds first: dropping it wastes no work already done,
 * and a UDP sender retransmits it (§17.1.1.2, §17.1.2.2). False whenever in doubt: a folded To
 * line, a header section that does not end within `maxHeaderBytes`, a second To.
 */
export function peekNewWithoutCredentials(bytes: Uint8Array, maxHeaderBytes = 65_536): boolean {
  const end = Math.min(bytes.length, maxHeaderBytes);
  let i = 0;
  while (i < end && (bytes[i] === CR || bytes[i] === LF)) i++;
  // The method: a token and a space ("SIP/2.0 200" is a response: '/' is not a token char).
  const m = i;
  while (i < end && isTokenChar(bytes[i]!)) i++;
  if (i === m || i >= end || bytes[i] !== SP) return false;
  const len = i - m;
  // ACK (65 67 75) and CANCEL (67 65 78 67 69 76); methods are case-sensitive (§7.1).
  if (len === 3 && bytes[m] === 65 && bytes[m + 1] === 67 && bytes[m + 2] === 75) return false;
  if (
    len === 6 &&
    bytes[m] === 67 &&
    bytes[m + 1] === 65 &&
    bytes[m + 2] === 78 &&
    bytes[m + 3] === 67 &&
    bytes[m + 4] === 69 &&
    bytes[m + 5] === 76
  ) {
    return false;
  }
  while (i < end && bytes[i] !== LF) i++;
  i++;
  let to = false;
  let inTo = false;
  while (i < end) {
    const c = bytes[i]!;
    // The empty line: the header section is over.
    if (c === CR || c === LF) return to;
    let lineEnd = i;
    while (lineEnd < end && bytes[lineEnd] !== LF) lineEnd++;
    if (lineEnd >= end) return false;
    if (c === SP || c === HT) {
      // A folded line continues the header before it (§7.3.1): a To value read in part.
      if (inTo) return false;
    } else if (isName(bytes, i, end, AUTHORIZATION) || isName(bytes, i, end, PROXY_AUTHORIZATION)) {
      return false;
    } else if (isName(bytes, i, end, TO) || isName(bytes, i, end, TO_COMPACT)) {
      if (to || mentionsTag(bytes, i + 1, lineEnd)) return false;
      to = true;
      inTo = true;
    } else {
      inTo = false;
    }
    i = lineEnd + 1;
  }
  return false;
}
