/**
 * URIs of RFC 3261 §19.1 (sip:, sips:), RFC 3966 (tel:) and, for any other scheme,
 * an opaque absolute URI (RFC 3986 §3), which parses so that a server can answer
 * 416 Unsupported URI Scheme rather than 400 (RFC 4475 §3.3.2).
 *
 * Components are kept as written (escaped), so formatting a parsed URI gives its
 * text back; comparison (§19.1.4) and `unescapeUri` work on decoded forms.
 */
import { err, ok, type Result } from '../../base/result.ts';
import { binaryDecode, utf8DecodeStrict, utf8Encode } from '../../base/text.ts';
import {
  ALPHA_ONLY,
  CHAR_CLASS,
  HEX,
  HNVCHAR,
  HOSTCHAR,
  PARAMCHAR,
  PASSWORD,
  SCHEMECHAR,
  URIC,
  USER,
} from '../grammar/chars.ts';
import { equalsIgnoreCase } from '../grammar/lex.ts';
import { findParam, formatParams, splitCheckedParams, type Param, type Params } from './params.ts';

/** SIP-URI / SIPS-URI (RFC 3261 §19.1.1). */
export interface SipUri {
  readonly kind: 'sip';
  readonly scheme: 'sip' | 'sips';
  /** userinfo user part as written (%-escapes kept); undefined when there is no "@". */
  readonly user?: string;
  /** password as written; undefined when absent. */
  readonly password?: string;
  /** hostname, IPv4address or IPv6reference (with its brackets), as written. */
  readonly host: string;
  readonly port?: number;
  readonly params: Params;
  /** `?hname=hvalue&...` as written. */
  readonly headers: Params;
}

/** tel URI (RFC 3966 §3): telephone-subscriber with its parameters. */
export interface TelUri {
  readonly kind: 'tel';
  readonly scheme: 'tel';
  /** global-number-digits ("+" ...) or local-number-digits, as written. */
  readonly number: string;
  readonly params: Params;
}

/** Any other absolute URI, opaque (RFC 3986 §3). */
export interface OtherUri {
  readonly kind: 'other';
  /** Lower-cased scheme. */
  readonly scheme: string;
  /** Everything after the first ":". */
  readonly rest: string;
}

export type Uri = SipUri | TelUri | OtherUri;

const COLON = 0x3a;
const SEMI = 0x3b;
const QMARK = 0x3f;
const PERCENT = 0x25;
const LBRACKET = 0x5b;

function scanClass(s: string, i: number, end: number, bit: number): number {
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c === PERCENT || (c < 128 && (CHAR_CLASS[c]! & bit) !== 0)) i++;
    else break;
  }
  return i;
}

/** Parses a URI of any scheme. The error is a human-readable reason. */
export function parseUri(s: string): Result<Uri, string> {
  // The lower-case "sip:" and "sips:" straight to the scanner: what parseUriGeneral
  // does after checking the scheme.
  if (s.charCodeAt(0) === 0x73 && s.charCodeAt(1) === 0x69 && s.charCodeAt(2) === 0x70) {
    const c = s.charCodeAt(3);
    if (c === COLON) return parseSipAfterScheme(s, 4, 'sip');
    if (c === 0x73 && s.charCodeAt(4) === COLON) return parseSipAfterScheme(s, 5, 'sips');
  }
  return parseUriGeneral(s);
}

/**
 * @internal The SIP URI of a match of SIP_URI_GROUPS_SOURCE whose six groups
 * start at `g`: what parseSipAfterScheme builds from the same text.
 */
export function sipUriFromGroups(m: RegExpExecArray, g: number): SipUri {
  const ps = m[g + 5]!;
  return {
    kind: 'sip',
    scheme: m[g] === 'sip' ? 'sip' : 'sips',
    user: m[g + 1],
    password: m[g + 2],
    host: m[g + 3]!,
    port: m[g + 4] === undefined ? undefined : Number(m[g + 4]),
    params: ps.length === 0 ? EMPTY : splitCheckedParams(ps, 0, ps.length),
    headers: EMPTY,
  };
}

/** @internal The general URI parser (the fast path's reference in tests). */
export function parseUriGeneral(s: string): Result<Uri, string> {
  const colon = s.indexOf(':');
  if (colon <= 0) return err('no scheme');
  const c0 = s.charCodeAt(0);
  if (c0 >= 128 || (CHAR_CLASS[c0]! & ALPHA_ONLY) === 0)
    return err('scheme must start with a letter');
  for (let i = 1; i < colon; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (CHAR_CLASS[c]! & SCHEMECHAR) === 0) return err('invalid scheme');
  }
  // Fast path on the common lower-case spellings; schemes are case-insensitive (RFC 3986 §3.1).
  if (colon === 3 && (s.startsWith('sip') || equalsIgnoreCase(s.slice(0, 3), 'sip'))) {
    return parseSipAfterScheme(s, 4, 'sip');
  }
  const scheme = s.slice(0, colon).toLowerCase();
  if (scheme === 'sips') return parseSipAfterScheme(s, 5, 'sips');
  if (scheme === 'tel') return parseTelAfterScheme(s, 4);
  const rest = s.slice(colon + 1);
  if (rest.length === 0) return err('empty URI after scheme');
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c < 128 && (CHAR_CLASS[c]! & URIC) === 0) return err('invalid character in URI');
  }
  return ok({ kind: 'other', scheme, rest });
}

function parseSipAfterScheme(
  s: string,
  start: number,
  scheme: 'sip' | 'sips',
): Result<SipUri, string> {
  const end = s.length;
  let i = start;
  let user: string | undefined;
  let password: string | undefined;
  // RFC 3261 §19.1.1: the user part may hold ";", "?" and "/" (user-unreserved) but
  // never an unescaped "@", so the first "@" ends the userinfo.
  const at = s.indexOf('@', start);
  if (at >= 0) {
    const ue = scanClass(s, i, at, USER);
    if (ue === i) return err('empty user part');
    user = s.slice(i, ue);
    i = ue;
    if (i < at && s.charCodeAt(i) === COLON) {
      const pe = scanClass(s, i + 1, at, PASSWORD);
      password = s.slice(i + 1, pe);
      i = pe;
    }
    if (i !== at) return err('invalid character in userinfo');
    i = at + 1;
  }
  // hostport = host [ ":" port ]
  let host: string;
  if (s.charCodeAt(i) === LBRACKET) {
    const close = s.indexOf(']', i);
    if (close < 0) return err('unterminated IPv6 reference');
    if (!isIpv6Text(s, i + 1, close)) return err('invalid IPv6 reference');
    host = s.slice(i, close + 1);
    i = close + 1;
  } else {
    const he = scanPlainHost(s, i, end);
    if (he === i) return err('empty host');
    host = s.slice(i, he);
    i = he;
  }
  let port: number | undefined;
  if (i < end && s.charCodeAt(i) === COLON) {
    let pe = i + 1;
    let v = 0;
    while (pe < end) {
      const c = s.charCodeAt(pe) - 48;
      if (c < 0 || c > 9) break;
      v = v * 10 + c;
      pe++;
    }
    if (pe === i + 1 || pe - i > 6 || v > 65535) return err('invalid port');
    port = v;
    i = pe;
  }
  let params: Param[] | undefined;
  while (i < end && s.charCodeAt(i) === SEMI) {
    const ns = i + 1;
    const ne = scanClass(s, ns, end, PARAMCHAR);
    if (ne === ns) return err('empty URI parameter name');
    let value: string | null = null;
    i = ne;
    if (i < end && s.charCodeAt(i) === 0x3d) {
      const ve = scanClass(s, i + 1, end, PARAMCHAR);
      if (ve === i + 1) return err('empty URI parameter value');
      value = s.slice(i + 1, ve);
      i = ve;
    }
    (params ??= []).push({ name: s.slice(ns, ne), value });
  }
  let headers: Param[] | undefined;
  if (i < end && s.charCodeAt(i) === QMARK) {
    for (;;) {
      const ns = i + 1;
      const ne = scanClass(s, ns, end, HNVCHAR);
      if (ne === ns || s.charCodeAt(ne) !== 0x3d) return err('invalid URI header');
      const ve = scanClass(s, ne + 1, end, HNVCHAR);
      (headers ??= []).push({ name: s.slice(ns, ne), value: s.slice(ne + 1, ve) });
      i = ve;
      if (i < end && s.charCodeAt(i) === 0x26) continue;
      break;
    }
  }
  if (i !== end) return err(`unexpected character ${JSON.stringify(s[i])} in URI`);
  // One object shape for every SIP URI (all properties present).
  return ok({
    kind: 'sip',
    scheme,
    user,
    password,
    host,
    port,
    params: params ?? EMPTY,
    headers: headers ?? EMPTY,
  });
}

const EMPTY: Params = Object.freeze([]) as Params;

function scanPlainHost(s: string, i: number, end: number): number {
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c < 128 && (CHAR_CLASS[c]! & HOSTCHAR) !== 0) i++;
    else break;
  }
  return i;
}

/**
 * IPv6address text between brackets. Lenient by design: RFC 5118 §4.10 notes that
 * RFC 3261's ABNF admits "2001:db8:::192.0.2.1" and asks receivers to tolerate it.
 */
function isIpv6Text(s: string, start: number, end: number): boolean {
  if (end - start < 2) return false;
  let colons = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === COLON) colons++;
    else if (c === 0x2e) continue;
    else if (c >= 128 || (CHAR_CLASS[c]! & HEX) === 0) return false;
  }
  return colons >= 2;
}

function parseTelAfterScheme(s: string, start: number): Result<TelUri, string> {
  const end = s.length;
  let i = start;
  // RFC 3966 §3: global-number-digits = "+" *phonedigit DIGIT *phonedigit;
  // local-number-digits = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
  while (i < end) {
    const c = s.charCodeAt(i);
    if (c === SEMI) break;
    const ok =
      (c >= 0x30 && c <= 0x39) ||
      (c >= 0x41 && c <= 0x46) ||
      (c >= 0x61 && c <= 0x66) ||
      c === 0x2b ||
      c === 0x2a ||
      c === 0x23 ||
      c === 0x2d ||
      c === 0x2e ||
      c === 0x28 ||
      c === 0x29;
    if (!ok) return err('invalid character in telephone number');
    i++;
  }
  if (i === start) return err('empty telephone number');
  const number = s.slice(start, i);
  if (number.indexOf('+', 1) >= 0) return err('misplaced "+" in telephone number');
  const params: Param[] = [];
  while (i < end && s.charCodeAt(i) === SEMI) {
    const ns = i + 1;
    const ne = scanClass(s, ns, end, PARAMCHAR);
    if (ne === ns) return err('empty tel parameter name');
    let value: string | null = null;
    i = ne;
    if (i < end && s.charCodeAt(i) === 0x3d) {
      const ve = scanClass(s, i + 1, end, PARAMCHAR);
      value = s.slice(i + 1, ve);
      i = ve;
    }
    params.push({ name: s.slice(ns, ne), value });
  }
  if (i !== end) return err('unexpected character in tel URI');
  return ok({ kind: 'tel', scheme: 'tel', number, params });
}

/** The text of a URI. */
export function formatUri(uri: Uri): string {
  switch (uri.kind) {
    case 'sip': {
      let out = uri.scheme + ':';
      if (uri.user !== undefined) {
        out += uri.user;
        if (uri.password !== undefined) out += ':' + uri.password;
        out += '@';
      }
      out += uri.host;
      if (uri.port !== undefined) out += ':' + uri.port;
      if (uri.params.length > 0) out += formatParams(uri.params);
      if (uri.headers.length > 0) {
        out += '?' + uri.headers.map((h) => h.name + '=' + (h.value ?? '')).join('&');
      }
      return out;
    }
    case 'tel':
      return 'tel:' + uri.number + formatParams(uri.params);
    case 'other':
      return uri.scheme + ':' + uri.rest;
  }
}

/**
 * Decodes %HH escapes (RFC 3261 §19.1.2; once, never recursively: RFC 4475
 * §3.1.1.3 expects "v%61lue%25%34%31" to decode to "value%41"). The octets are
 * read as UTF-8, or one to one when they are not valid UTF-8. A "%" not followed
 * by two hex digits stays as it is.
 */
export function unescapeUri(s: string): string {
  if (s.indexOf('%') < 0) return s;
  const bytes: number[] = [];
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (
      c === PERCENT &&
      i + 2 < s.length &&
      isHex(s.charCodeAt(i + 1)) &&
      isHex(s.charCodeAt(i + 2))
    ) {
      const b = parseInt(s.slice(i + 1, i + 3), 16);
      if (b >= 0x80) ascii = false;
      bytes.push(b);
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else {
      // Non-ASCII text (already decoded from the wire as UTF-8) is re-encoded below.
      ascii = false;
      for (const b of utf8Encode(String.fromCodePoint(s.codePointAt(i)!))) bytes.push(b);
      if (c >= 0xd800 && c <= 0xdbff) i++;
    }
  }
  const arr = Uint8Array.from(bytes);
  if (ascii) return binaryDecode(arr);
  return utf8DecodeStrict(arr) ?? binaryDecode(arr);
}

function isHex(c: number): boolean {
  return c < 128 && (CHAR_CLASS[c]! & HEX) !== 0;
}

/** URI parameters whose presence in one URI alone makes two SIP URIs differ (RFC 3261 §19.1.4). */
const SIGNIFICANT_PARAMS = ['user', 'ttl', 'method', 'maddr', 'transport'] as const;

/**
 * URI equivalence per RFC 3261 §19.1.4 for SIP/SIPS (user and password
 * case-sensitive after unescaping, host case-insensitive, no default port, the
 * user/ttl/method/maddr/transport parameters significant when in either URI,
 * other parameters compared only when in both, headers all significant). tel
 * URIs compare per RFC 3966 §4 (digits without visual separators, parameters
 * as a set); other schemes compare as case-insensitive scheme plus exact text.
 */
export function uriEquals(a: Uri, b: Uri): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'other' || b.kind === 'other') {
    return a.scheme === b.scheme && (a as OtherUri).rest === (b as OtherUri).rest;
  }
  if (a.kind === 'tel' || b.kind === 'tel') {
    const x = a as TelUri;
    const y = b as TelUri;
    if (stripVisual(x.number) !== stripVisual(y.number)) return false;
    if (x.params.length !== y.params.length) return false;
    for (const p of x.params) {
      const q = findParam(y.params, p.name);
      if (
        !q ||
        unescapeUri(p.value ?? '').toLowerCase() !== unescapeUri(q.value ?? '').toLowerCase()
      ) {
        return false;
      }
    }
    return true;
  }
  if (a.scheme !== b.scheme) return false;
  if ((a.user === undefined) !== (b.user === undefined)) return false;
  if (a.user !== undefined && unescapeUri(a.user) !== unescapeUri(b.user!)) return false;
  if ((a.password ?? null) !== (b.password ?? null)) {
    if (a.password === undefined || b.password === undefined) return false;
    if (unescapeUri(a.password) !== unescapeUri(b.password)) return false;
  }
  if (!equalsIgnoreCase(unescapeUri(a.host), unescapeUri(b.host))) return false;
  if (a.port !== b.port) return false;
  for (const name of SIGNIFICANT_PARAMS) {
    const p = findParam(a.params, name);
    const q = findParam(b.params, name);
    if ((p === undefined) !== (q === undefined)) return false;
    if (p && q && !paramValuesEqual(p, q)) return false;
  }
  for (const p of a.params) {
    const q = findParam(b.params, p.name);
    if (q && !paramValuesEqual(p, q)) return false;
  }
  if (a.headers.length !== b.headers.length) return false;
  for (const h of a.headers) {
    const k = findParam(b.headers, h.name);
    if (!k || unescapeUri(h.value ?? '') !== unescapeUri(k.value ?? '')) return false;
  }
  return true;
}

function paramValuesEqual(p: Param, q: Param): boolean {
  if (p.value === null || q.value === null) return p.value === q.value;
  return equalsIgnoreCase(unescapeUri(p.value), unescapeUri(q.value));
}

function stripVisual(n: string): string {
  return n.replace(/[-.()]/g, '').toLowerCase();
}

/** Parameters of a SIP URI, or an empty list for other kinds. */
export function uriParams(uri: Uri): Params {
  return uri.kind === 'other' ? EMPTY : uri.params;
}

/**
 * True only for a SIP URI that parseUri accepts, with no headers component: a
 * conservative check (lower-case "sip:"/"sips:", common characters) that builds
 * nothing. The parser uses it to defer decoding a Request-URI to first use.
 */
export function isSimpleSipUri(s: string): boolean {
  return SIMPLE_SIP_URI.test(s);
}

const U_PORT = '(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d{2}|6[0-4]\\d{3}|[1-5]\\d{4}|\\d{1,4})';
const U_PARAM = "[A-Za-z0-9\\-_.!~*'()\\[\\]/:&+$%]+";
const U_USER = "[A-Za-z0-9\\-_.!~*'()&=+$,;?/%]+";
const U_PASSWORD = "[A-Za-z0-9\\-_.!~*'()&=+$,%]*";
const U_HOST = '[A-Za-z0-9._-]+|\\[(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]+\\]';
/**
 * @internal The conservative SIP URI shape (no anchors, no groups) that
 * isSimpleSipUri accepts; name-addr.ts embeds it.
 */
// The userinfo is tried only when an "@" follows (as parseSipAfterScheme decides):
// without the lookahead, a host:port would be retried as user:password.
const U_IF_AT = '(?=[^@>]*@)';
export const SIMPLE_SIP_URI_SOURCE =
  `sips?:(?:${U_IF_AT}${U_USER}(?::${U_PASSWORD})?@)?(?:${U_HOST})` +
  `(?::${U_PORT})?(?:;${U_PARAM}(?:=${U_PARAM})?)*`;
const SIMPLE_SIP_URI = new RegExp(`^${SIMPLE_SIP_URI_SOURCE}$`);
/**
 * @internal The same shape with six groups: scheme, user, password, host, port,
 * parameters (name-addr.ts embeds it too).
 * Every part is what parseSipAfterScheme would read there (user up to the
 * first "@", USER/PASSWORD/HOSTCHAR/PARAMCHAR characters, port <= 65535).
 */
export const SIP_URI_GROUPS_SOURCE =
  `(sips?):(?:${U_IF_AT}(${U_USER})(?::(${U_PASSWORD}))?@)?(${U_HOST})` +
  `(?::(${U_PORT}))?((?:;${U_PARAM}(?:=${U_PARAM})?)*)`;
const FAST_SIP_URI = new RegExp(`^${SIP_URI_GROUPS_SOURCE}$`);

/**
 * @internal The SIP URI that one match of SIP_URI_GROUPS_SOURCE reads from `s`,
 * or undefined when it does not match: the tests hold it to parseUriGeneral, for
 * the list elements that name-addr.ts matches with the same groups.
 */
export function parseUriByGroups(s: string): SipUri | undefined {
  const m = FAST_SIP_URI.exec(s);
  return m === null ? undefined : sipUriFromGroups(m, 1);
}
