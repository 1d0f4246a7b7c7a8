/**
 * name-addr / addr-spec with parameters (RFC 3261 §20.10, §25.1), the shape of
 * From, To, Contact, Route, Record-Route, Reply-To and of the extensions Path
 * (RFC 3327), Service-Route (RFC 3608), P-Asserted-Identity (RFC 3325),
 * Refer-To (RFC 3515) and Referred-By (RFC 3892).
 *
 * §20.10: "If the URI is not enclosed in angle brackets, any semicolon-delimited
 * parameters are header-parameters, not URI parameters", and a URI holding a
 * comma, question mark or semicolon must be enclosed.
 */
import { err, ok, type Result } from '../../base/result.ts';
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';
import { Cursor } from '../grammar/cursor.ts';
import { quote, trimEndWs, trimWs, unescapeQuotedPairs, unquote } from '../grammar/lex.ts';
import { formatParams, paramValue, splitCheckedParams, type Params } from '../uri/params.ts';
import {
  formatUri,
  isSimpleSipUri,
  parseUri,
  SIMPLE_SIP_URI_SOURCE,
  SIP_URI_GROUPS_SOURCE,
  sipUriFromGroups,
  type Uri,
} from '../uri/uri.ts';
import { SwitchboardError } from '../../base/errors.ts';
import { parseHeaderParams, parseSimpleParams } from './header-params.ts';

export interface NameAddr {
  /** The display name, unquoted (quoted-pairs resolved); undefined when absent. */
  readonly displayName?: string;
  readonly uri: Uri;
  /** Header parameters (tag, q, expires, ...) as written. */
  readonly params: Params;
  /** The tag parameter (§19.3), when present. */
  readonly tag?: string;
}

/**
 * A parsed address. Its URI is decoded on first read when the parser's
 * conservative check (isSimpleSipUri) has vouched for it, and on parsing
 * otherwise; likewise its parameters, when a fast path has checked their text
 * and read the tag from it. The URI and parameter texts and caches are ES private
 * fields, so two addresses compare (deepEqual) by display name and tag; `toJSON`
 * gives every part.
 */
export class ParsedNameAddr implements NameAddr {
  readonly displayName: string | undefined;
  readonly tag: string | undefined;
  #params: Params | undefined;
  /** `*( ";" generic-param )` as written, checked; read when #params is undefined. */
  #paramText: string;
  #uriText: string;
  #uri: Uri | undefined;

  private constructor(
    displayName: string | undefined,
    uriText: string,
    uri: Uri | undefined,
    params: Params | undefined,
    paramText: string,
    tag: string | undefined,
  ) {
    this.displayName = displayName;
    this.tag = tag;
    this.#params = params;
    this.#paramText = paramText;
    this.#uriText = uriText;
    this.#uri = uri;
  }

  /** An address with its parameters decoded. */
  static of(
    displayName: string | undefined,
    uriText: string,
    uri: Uri | undefined,
    params: Params,
  ): ParsedNameAddr {
    const tag = params.length > 0 ? paramValue(params, 'tag') : undefined;
    return new ParsedNameAddr(displayName, uriText, uri, params, '', tag);
  }

  /**
   * An address whose parameter text was checked (SIMPLE_PARAMS: no quoted
   * value, no whitespace) and whose tag is known; the list is cut on first read.
   */
  static lazy(
    displayName: string | undefined,
    uriText: string,
    paramText: string,
    tag: string | undefined,
  ): ParsedNameAddr {
    return new ParsedNameAddr(displayName, uriText, undefined, undefined, paramText, tag);
  }

  get params(): Params {
    if (this.#params === undefined) {
      const t = this.#paramText;
      this.#params = t.length === 0 ? NO_PARAMS : splitCheckedParams(t, 0, t.length);
    }
    return this.#params;
  }

  get uri(): Uri {
    if (this.#uri === undefined) {
      const r = parseUri(this.#uriText);
      // Unreachable for a value the parser accepted: isSimpleSipUri implies parseUri succeeds.
      if (!r.ok) throw new SwitchboardError('SB_ERR_INVALID_URI', `${this.#uriText}: ${r.error}`);
      this.#uri = r.value;
    }
    return this.#uri;
  }

  toJSON(): NameAddr {
    return { displayName: this.displayName, uri: this.uri, params: this.params, tag: this.tag };
  }
}

const NO_PARAMS: Params = Object.freeze([]) as Params;

/** Contact: * (RFC 3261 §10.2.2: remove all bindings). */
export const STAR = '*' as const;
export type ContactValue = NameAddr | typeof STAR;

/** Parses one name-addr or addr-spec with parameters at the cursor. */
export function parseNameAddrAt(c: Cursor): NameAddr | string {
  c.ws();
  const s = c.s;
  let displayName: string | undefined;
  let uriText: string;
  const ch = c.peek();
  if (ch === 0x22) {
    const q = c.quoted();
    if (q === undefined) return 'unterminated quoted display name';
    displayName = unquote(q);
    c.ws();
    if (c.peek() !== 0x3c) return 'expected "<" after display name';
  }
  if (c.peek() !== 0x3c && displayName === undefined) {
    // Either `*(token LWS) "<"` (a token display name) or an addr-spec.
    const start = c.i;
    let i = start;
    let tokensOnly = true;
    while (i < c.end) {
      const x = s.charCodeAt(i);
      if (x === 0x3c) break;
      if (x === 0x20 || x === 0x09) {
        i++;
        continue;
      }
      if (x >= 128 || (CHAR_CLASS[x]! & TOKEN) === 0) {
        tokensOnly = false;
        break;
      }
      i++;
    }
    if (tokensOnly && i < c.end && s.charCodeAt(i) === 0x3c) {
      displayName = s.slice(start, trimEndWs(s, start, i));
      c.i = i;
    } else {
      // addr-spec: runs to ";", "," or whitespace.
      let j = start;
      while (j < c.end) {
        const x = s.charCodeAt(j);
        if (x === 0x3b || x === 0x2c || x === 0x20 || x === 0x09) break;
        j++;
      }
      uriText = s.slice(start, j);
      if (uriText.indexOf('?') >= 0) return 'a URI with headers must be enclosed in "<>"';
      c.i = j;
      const u = parseUri(uriText);
      if (!u.ok) return u.error;
      return finish(c, undefined, uriText, u.value);
    }
  }
  // "<" addr-spec ">"
  const close = s.indexOf('>', c.i + 1);
  if (close < 0 || close >= c.end) return 'missing ">"';
  // RFC 4475 §3.1.2.14: spaces inside the brackets may be ignored.
  uriText = trimWs(s.slice(c.i + 1, close));
  c.i = close + 1;
  const u = parseUri(uriText);
  if (!u.ok) return u.error;
  return finish(c, displayName === '' ? undefined : displayName, uriText, u.value);
}

function finish(
  c: Cursor,
  displayName: string | undefined,
  uriText: string,
  uri: Uri,
): NameAddr | string {
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  return ParsedNameAddr.of(displayName, uriText, uri, params);
}

/**
 * The common shapes `"Display" <uri>;params`, `Display Name <uri>;params` and
 * `<uri>;params` (no space inside the brackets, simple parameters), matched in
 * one step; anything else takes the general parser.
 */
const SIMPLE_NAME_ADDR =
  /^(?:"((?:[^"\\]|\\[^\r\n])*)"[ \t]*|([A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*)[ \t]*)?<([^<>\s"]+)>/;

/**
 * `lazyUri`: defer decoding a URI that the conservative check vouches for (From,
 * To: mostly their tags are read); lists (Route, Contact, Path) decode now, as
 * their URIs are what gets read.
 */
function parseSimpleNameAddr(value: string, lazyUri: boolean): NameAddr | string | null {
  const m = SIMPLE_NAME_ADDR.exec(value);
  if (m === null) return null;
  const params = parseSimpleParams(value, m[0].length, value.length);
  if (params === null) return null;
  const uriText = m[3]!;
  let uri: Uri | undefined;
  if (!lazyUri || !isSimpleSipUri(uriText)) {
    const u = parseUri(uriText);
    if (!u.ok) return u.error;
    uri = u.value;
  }
  const dn = m[1] !== undefined ? unescapeQuotedPairs(m[1]) : m[2];
  return ParsedNameAddr.of(dn === '' ? undefined : dn, uriText, uri, params);
}

const TOKEN_CHARS = "[A-Za-z0-9\\-.!%*_+`'~]";
/**
 * `*( ";" token [ "=" value ] )` exactly as parseSimpleParams accepts it: a value
 * runs to the next ";" and holds no SP, HT, DQUOTE, ",", "<", ">" or control.
 */
const SIMPLE_PARAMS = `(?:;${TOKEN_CHARS}+(?:=[^;\\x00-\\x20",<>\\x7f]+)?)*`;

/**
 * The commonest From/To shape in one native match: SIMPLE_NAME_ADDR with a URI
 * that isSimpleSipUri accepts and parameters that parseSimpleParams accepts.
 * Groups: quoted display name, token display name, URI, parameters.
 */
const CHECKED_NAME_ADDR = new RegExp(
  // quoted-string content, unrolled: runs of plain characters between quoted-pairs.
  '^(?:"([^"\\\\]*(?:\\\\[^\\r\\n][^"\\\\]*)*)"[ \\t]*|' +
    `(${TOKEN_CHARS}+(?:[ \\t]+${TOKEN_CHARS}+)*)[ \\t]*)?` +
    `<(${SIMPLE_SIP_URI_SOURCE})>(${SIMPLE_PARAMS})$`,
);

/**
 * An element of an address list (Route, Record-Route, Contact, Path ...) of the
 * same shape, its URI taken apart by the same match, since a list's URIs are
 * what gets read. Groups: quoted display name, token display name, URI, the six
 * URI groups (uri.ts SIP_URI_GROUPS_SOURCE), parameters.
 */
const CHECKED_LIST_ELEMENT = new RegExp(
  // quoted-string content, unrolled: runs of plain characters between quoted-pairs.
  '^(?:"([^"\\\\]*(?:\\\\[^\\r\\n][^"\\\\]*)*)"[ \\t]*|' +
    `(${TOKEN_CHARS}+(?:[ \\t]+${TOKEN_CHARS}+)*)[ \\t]*)?` +
    `<(${SIP_URI_GROUPS_SOURCE})>(${SIMPLE_PARAMS})$`,
);

function parseCheckedListElement(value: string): NameAddr | undefined {
  const m = CHECKED_LIST_ELEMENT.exec(value);
  if (m === null) return undefined;
  const ps = m[10]!;
  const dn = m[1] !== undefined ? unescapeQuotedPairs(m[1]) : m[2];
  return ParsedNameAddr.of(
    dn === '' ? undefined : dn,
    m[3]!,
    sipUriFromGroups(m, 4),
    ps.length === 0 ? NO_PARAMS : splitCheckedParams(ps, 0, ps.length),
  );
}

/**
 * From/To as read by every element (RFC 3261 §8.1.1.2, §8.1.1.3): the value is
 * checked and its tag read now; the URI and the parameter list are built when
 * first read. Undefined when the value needs the other paths.
 */
function parseCheckedNameAddr(value: string): NameAddr | undefined {
  const m = CHECKED_NAME_ADDR.exec(value);
  if (m === null) return undefined;
  const paramText = m[4]!;
  let tag: string | undefined;
  if (paramText.length > 0) {
    // §19.3 tag: usually the first parameter; otherwise look through them all.
    if (paramText.startsWith(';tag=')) {
      const e = paramText.indexOf(';', 5);
      tag = paramText.slice(5, e < 0 ? paramText.length : e);
    } else {
      const params = splitCheckedParams(paramText, 0, paramText.length);
      const dn = m[1] !== undefined ? unescapeQuotedPairs(m[1]) : m[2];
      return ParsedNameAddr.of(dn === '' ? undefined : dn, m[3]!, undefined, params);
    }
  }
  const dn = m[1] !== undefined ? unescapeQuotedPairs(m[1]) : m[2];
  return ParsedNameAddr.lazy(dn === '' ? undefined : dn, m[3]!, paramText, tag);
}

/** Parses a value holding exactly one name-addr/addr-spec (From, To, Refer-To ...). */
export function parseNameAddr(value: string): Result<NameAddr, string> {
  const checked = parseCheckedNameAddr(value);
  if (checked !== undefined) return ok(checked);
  const fast = parseSimpleNameAddr(value, true);
  if (fast !== null) return typeof fast === 'string' ? err(fast) : ok(fast);
  return parseNameAddrGeneral(value);
}

/** @internal The general parser (the fast path's reference in tests). */
export function parseNameAddrGeneral(value: string): Result<NameAddr, string> {
  const c = new Cursor(value);
  const na = parseNameAddrAt(c);
  if (typeof na === 'string') return err(na);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text after address: ${JSON.stringify(c.rest())}`);
  return ok(na);
}

/**
 * Fast path for lists without quotes: split at commas and take each piece by
 * the single-address fast path. A comma inside a URI makes a piece fail to
 * match (it cannot both open and close its brackets), which sends the whole
 * value to the general parser.
 */
function parseSimpleNameAddrList(value: string): readonly NameAddr[] | string | null {
  if (value.indexOf('"') >= 0) return null;
  const out: NameAddr[] = [];
  let start = 0;
  for (;;) {
    let end = value.indexOf(',', start);
    if (end < 0) end = value.length;
    let a = start;
    let b = end;
    while (a < b && (value.charCodeAt(a) === 0x20 || value.charCodeAt(a) === 0x09)) a++;
    while (b > a && (value.charCodeAt(b - 1) === 0x20 || value.charCodeAt(b - 1) === 0x09)) b--;
    let na: NameAddr | string | null;
    if (value.charCodeAt(a) === 0x3c) na = parseBracketedElement(value, a, b);
    else {
      const piece = a === 0 && b === value.length ? value : value.slice(a, b);
      na = parseCheckedListElement(piece) ?? parseSimpleNameAddr(piece, false);
    }
    if (na === null || typeof na === 'string') return na;
    out.push(na);
    if (end === value.length) return out;
    start = end + 1;
  }
}

/**
 * The commonest list element, `<uri>` with simple parameters and no display name
 * (Route, Record-Route, Path), in value[a, b): what parseNameAddrAt reads there,
 * found with one search for ">" and the URI scanner; null when the element needs
 * the general parser (spaces inside the brackets, which it trims, or parameters
 * that parseSimpleParams does not take).
 */
function parseBracketedElement(value: string, a: number, b: number): NameAddr | string | null {
  const close = value.indexOf('>', a + 1);
  if (close < 0 || close >= b) return null;
  const first = value.charCodeAt(a + 1);
  const last = value.charCodeAt(close - 1);
  if (close === a + 1 || first === 0x20 || first === 0x09 || last === 0x20 || last === 0x09) {
    return null;
  }
  const params = close + 1 === b ? NO_PARAMS : parseSimpleParams(value, close + 1, b);
  if (params === null) return null;
  const uriText = value.slice(a + 1, close);
  const u = parseUri(uriText);
  if (!u.ok) return u.error;
  return ParsedNameAddr.of(undefined, uriText, u.value, params);
}

/** Parses a comma-separated list of name-addr/addr-spec (Contact, Route, Path ...). */
export function parseNameAddrList(value: string): Result<readonly NameAddr[], string> {
  const fast = parseSimpleNameAddrList(value);
  if (fast !== null) return typeof fast === 'string' ? err(fast) : ok(fast);
  return parseNameAddrListGeneral(value);
}

/** @internal The general list parser (the fast path's reference in tests). */
export function parseNameAddrListGeneral(value: string): Result<readonly NameAddr[], string> {
  const c = new Cursor(value);
  const out: NameAddr[] = [];
  for (;;) {
    const na = parseNameAddrAt(c);
    if (typeof na === 'string') return err(na);
    out.push(na);
    c.ws();
    if (c.atEnd()) return ok(out);
    if (c.peek() !== 0x2c) return err(`unexpected text in list: ${JSON.stringify(c.rest())}`);
    c.i++;
  }
}

/** Parses a Contact value: `*` or a list of addresses (RFC 3261 §20.10). */
export function parseContactList(value: string): Result<readonly ContactValue[], string> {
  if (value === '*') return ok([STAR]);
  return parseNameAddrList(value);
}

function isTokenText(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const x = s.charCodeAt(i);
    if (x === 0x20) continue;
    if (x >= 128 || (CHAR_CLASS[x]! & TOKEN) === 0) return false;
  }
  return true;
}

/** Formats an address in name-addr form (always bracketed, which is always valid). */
export function formatNameAddr(na: NameAddr): string {
  let out = '';
  if (na.displayName !== undefined && na.displayName !== '') {
    out += isTokenText(na.displayName) ? na.displayName : quote(na.displayName);
    out += ' ';
  }
  out += '<' + formatUri(na.uri) + '>';
  if (na.params.length > 0) out += formatParams(na.params);
  return out;
}

export function formatContact(v: ContactValue): string {
  return v === STAR ? '*' : formatNameAddr(v);
}
