/**
 * Comma-separated token lists (RFC 3261 §7.3.1: a list header may be split over
 * several fields, each holding `element *(COMMA element)`), and the two lists of
 * §20.2/§20.3 whose elements carry `;q=` accept-params:
 *
 *   Allow, Supported (k), Require, Proxy-Require, Unsupported, Allow-Events (u),
 *   Content-Encoding (e), Content-Language, Accept-Language, Accept-Encoding,
 *   In-Reply-To, and Privacy (RFC 3323, which separates with ";" instead).
 *
 * Tokens are kept as written: method names are case-sensitive (RFC 3261 §7.1),
 * and callers compare option-tags, codings and language tags with the rule of
 * their RFC. The helpers `parseCommaList` and `parseQValue` are shared with the
 * other list codecs (media-type.ts, session.ts, misc.ts).
 */
import { err, ok, type Result } from '../../base/result.ts';
import { CHAR_CLASS, WORD } from '../grammar/chars.ts';
import { Cursor } from '../grammar/cursor.ts';
import { formatParams, paramValue, type Params } from '../uri/params.ts';
import { defineCodec } from './codec.ts';
import { parseHeaderParams } from './header-params.ts';
import { parseCallId } from './scalar.ts';

/**
 * Parses `[ element *(COMMA element) ]` (or, with `allowEmpty` false,
 * `element *(COMMA element)`). `item` reads one element at the cursor, which
 * stands on its first non-blank char, and returns it or an error string.
 * COMMA = SWS "," SWS (RFC 3261 §25.1); empty elements are errors.
 */
export function parseCommaList<T>(
  value: string,
  item: (c: Cursor) => T | string,
  allowEmpty: boolean,
): Result<readonly T[], string> {
  const c = new Cursor(value);
  c.ws();
  if (c.atEnd()) return allowEmpty ? ok([]) : err('empty value');
  const out: T[] = [];
  for (;;) {
    if (c.peek() === 0x2c) return err('empty list element');
    const v = item(c);
    if (typeof v === 'string') return err(v);
    out.push(v);
    c.ws();
    if (c.atEnd()) return ok(out);
    if (c.peek() !== 0x2c) return err(`unexpected text in list: ${JSON.stringify(c.rest())}`);
    c.i++;
    c.ws();
    if (c.atEnd()) return err('empty list element');
  }
}

/**
 * qvalue (RFC 3261 §25.1): `( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
 * Returns the number, or undefined when the text is not a qvalue.
 */
export function parseQValue(s: string): number | undefined {
  if (!/^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(s)) return undefined;
  return Number(s);
}

/** Reads the `q` accept-param of `params`: undefined when absent, an error string when malformed. */
function qOf(params: Params): number | undefined | string {
  const q = paramValue(params, 'q');
  if (q === undefined) return undefined;
  const v = parseQValue(q);
  return v === undefined ? `invalid q-value ${JSON.stringify(q)}` : v;
}

function tokenItem(what: string): (c: Cursor) => string | { v: string } {
  return (c) => {
    const t = c.token();
    return t === '' ? `expected ${what}` : { v: t };
  };
}

function tokenList(what: string, allowEmpty: boolean) {
  const item = tokenItem(what);
  return (value: string): Result<readonly string[], string> => {
    const r = parseCommaList(value, item, allowEmpty);
    return r.ok ? ok(r.value.map((x) => x.v)) : r;
  };
}

const joinList = (l: readonly string[]): string => l.join(', ');

/** Allow (RFC 3261 §20.5): `[Method *(COMMA Method)]`; an empty value is an empty list. */
export const AllowHeader = defineCodec<readonly string[]>({
  name: 'Allow',
  key: 'allow',
  list: true,
  parse: tokenList('a method', true),
  format: joinList,
});

/** Supported (RFC 3261 §20.37): `[option-tag *(COMMA option-tag)]`; may be empty. */
export const SupportedHeader = defineCodec<readonly string[]>({
  name: 'Supported',
  key: 'supported',
  compact: 'k',
  list: true,
  parse: tokenList('an option-tag', true),
  format: joinList,
});

/** Require (RFC 3261 §20.32): `option-tag *(COMMA option-tag)`. */
export const RequireHeader = defineCodec<readonly string[]>({
  name: 'Require',
  key: 'require',
  list: true,
  parse: tokenList('an option-tag', false),
  format: joinList,
});

/** Proxy-Require (RFC 3261 §20.29): `option-tag *(COMMA option-tag)`. */
export const ProxyRequireHeader = defineCodec<readonly string[]>({
  name: 'Proxy-Require',
  key: 'proxy-require',
  list: true,
  parse: tokenList('an option-tag', false),
  format: joinList,
});

/** Unsupported (RFC 3261 §20.40): `option-tag *(COMMA option-tag)`. */
export const UnsupportedHeader = defineCodec<readonly string[]>({
  name: 'Unsupported',
  key: 'unsupported',
  list: true,
  parse: tokenList('an option-tag', false),
  format: joinList,
});

/**
 * Allow-Events (RFC 6665 §8.2.2): `event-type *(COMMA event-type)`, each
 * `event-package *( "." event-template )` (a token with dots; see event.ts).
 */
export const AllowEventsHeader = defineCodec<readonly string[]>({
  name: 'Allow-Events',
  key: 'allow-events',
  compact: 'u',
  list: true,
  parse: tokenList('an event-type', false),
  format: joinList,
});

/**
 * Content-Encoding (RFC 3261 §20.12): `content-coding *(COMMA content-coding)`;
 * content-coding = token, compared case-insensitively.
 */
export const ContentEncodingHeader = defineCodec<readonly string[]>({
  name: 'Content-Encoding',
  key: 'content-encoding',
  compact: 'e',
  list: true,
  parse: tokenList('a content-coding', false),
  format: joinList,
});

/**
 * language-tag (RFC 3261 §20.13): `primary-tag *( "-" subtag )`, 1*8ALPHA each;
 * subtags may hold digits (RFC 5646 §2.1: "es-419"). `*` is the wildcard range
 * of Accept-Language only.
 */
const LANGUAGE_TAG = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;

function languageTagItem(c: Cursor): { v: string } | string {
  const t = c.token();
  if (t === '') return 'expected a language-tag';
  if (!LANGUAGE_TAG.test(t)) return `invalid language-tag ${JSON.stringify(t)}`;
  return { v: t };
}

/** Content-Language (RFC 3261 §20.13): `language-tag *(COMMA language-tag)`. */
export const ContentLanguageHeader = defineCodec<readonly string[]>({
  name: 'Content-Language',
  key: 'content-language',
  list: true,
  parse: (value) => {
    const r = parseCommaList(value, languageTagItem, false);
    return r.ok ? ok(r.value.map((x) => x.v)) : r;
  },
  format: joinList,
});

/**
 * One Accept-Language element (RFC 3261 §20.3):
 *   language = language-range *(SEMI accept-param)
 *   language-range = ( ( 1*8ALPHA *( "-" 1*8ALPHA ) ) / "*" )
 */
export interface LanguageRange {
  /** The range as written ("en", "de-CH", "*"); compared case-insensitively. */
  readonly range: string;
  /** accept-params as written. */
  readonly params: Params;
  /** The q parameter (qvalue, 0..1), when present. */
  readonly q?: number;
}

function languageRangeItem(c: Cursor): LanguageRange | string {
  const range = c.token();
  if (range === '') return 'expected a language-range';
  if (range !== '*' && !LANGUAGE_TAG.test(range)) {
    return `invalid language-range ${JSON.stringify(range)}`;
  }
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  const q = qOf(params);
  if (typeof q === 'string') return q;
  return q === undefined ? { range, params } : { range, params, q };
}

/** Accept-Language (RFC 3261 §20.3): `[ language *(COMMA language) ]`; may be empty. */
export const AcceptLanguageHeader = defineCodec<readonly LanguageRange[]>({
  name: 'Accept-Language',
  key: 'accept-language',
  list: true,
  parse: (value) => parseCommaList(value, languageRangeItem, true),
  format: (l) => l.map((x) => x.range + formatParams(x.params)).join(', '),
});

/**
 * One Accept-Encoding element (RFC 3261 §20.2):
 *   encoding = codings *(SEMI accept-param); codings = content-coding / "*"
 */
export interface CodingRange {
  /** The content-coding as written ("gzip", "identity", "*"); compared case-insensitively. */
  readonly coding: string;
  /** accept-params as written. */
  readonly params: Params;
  /** The q parameter (qvalue, 0..1), when present. */
  readonly q?: number;
}

function codingItem(c: Cursor): CodingRange | string {
  const coding = c.token();
  if (coding === '') return 'expected a content-coding';
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  const q = qOf(params);
  if (typeof q === 'string') return q;
  return q === undefined ? { coding, params } : { coding, params, q };
}

/** Accept-Encoding (RFC 3261 §20.2): `[ encoding *(COMMA encoding) ]`; may be empty. */
export const AcceptEncodingHeader = defineCodec<readonly CodingRange[]>({
  name: 'Accept-Encoding',
  key: 'accept-encoding',
  list: true,
  parse: (value) => parseCommaList(value, codingItem, true),
  format: (l) => l.map((x) => x.coding + formatParams(x.params)).join(', '),
});

function callIdItem(c: Cursor): { v: string } | string {
  // callid = word [ "@" word ] (RFC 3261 §25.1): runs over word chars and "@".
  const s = c.s;
  const start = c.i;
  let i = start;
  while (i < c.end) {
    const x = s.charCodeAt(i);
    if (x !== 0x40 && (x >= 128 || (CHAR_CLASS[x]! & WORD) === 0)) break;
    i++;
  }
  c.i = i;
  const r = parseCallId(s.slice(start, i));
  return r.ok ? { v: r.value } : r.error;
}

/** In-Reply-To (RFC 3261 §20.21): `callid *(COMMA callid)`, each compared byte for byte. */
export const InReplyToHeader = defineCodec<readonly string[]>({
  name: 'In-Reply-To',
  key: 'in-reply-to',
  list: true,
  parse: (value) => {
    const r = parseCommaList(value, callIdItem, false);
    return r.ok ? ok(r.value.map((x) => x.v)) : r;
  },
  format: joinList,
});

/**
 * Privacy (RFC 3323 §4.2): `priv-value *(";" priv-value)` with priv-value =
 * "header" / "session" / "user" / "none" / "critical" / token ("id" is RFC 3325
 * §9.3). The separator is ";", not ",", so one field holds the whole list.
 */
export function parsePrivacy(value: string): Result<readonly string[], string> {
  const c = new Cursor(value);
  c.ws();
  const out: string[] = [];
  for (;;) {
    const t = c.token();
    if (t === '') return err('expected a priv-value');
    out.push(t);
    c.ws();
    if (c.atEnd()) return ok(out);
    if (!c.sep(0x3b)) return err(`unexpected text in Privacy: ${JSON.stringify(c.rest())}`);
  }
}

export const PrivacyHeader = defineCodec<readonly string[]>({
  name: 'Privacy',
  key: 'privacy',
  list: false,
  parse: parsePrivacy,
  format: (l) => l.join(';'),
});
