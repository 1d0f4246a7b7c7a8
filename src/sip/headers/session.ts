/**
 * Session and dialog extension headers:
 *
 *   Session-Expires = ("Session-Expires" / "x") HCOLON delta-seconds *(SEMI se-params)
 *   se-params = refresher-param / generic-param
 *   refresher-param = "refresher" EQUAL ("uas" / "uac")            (RFC 4028 §4)
 *   Min-SE = "Min-SE" HCOLON delta-seconds *(SEMI generic-param)  (RFC 4028 §5)
 *   RAck = "RAck" HCOLON response-num LWS CSeq-num LWS Method     (RFC 3262 §7.2)
 *   Replaces = "Replaces" HCOLON callid *(SEMI replaces-param)   (RFC 3891 §6.1)
 *   replaces-param = to-tag / from-tag / early-flag / generic-param
 *   Reason = "Reason" HCOLON reason-value *(COMMA reason-value)  (RFC 3326 §2)
 *   reason-value = protocol *(SEMI reason-params)
 *   protocol = "SIP" / "Q.850" / token
 *   reason-params = protocol-cause / reason-text / reason-extension
 *   Retry-After = "Retry-After" HCOLON delta-seconds [ comment ] *( SEMI retry-param )
 *   retry-param = ("duration" EQUAL delta-seconds) / generic-param  (RFC 3261 §20.33)
 */
import { err, ok, type Result } from '../../base/result.ts';
import { Cursor } from '../grammar/cursor.ts';
import { equalsIgnoreCase, quote, scanQuoted, trimWs } from '../grammar/lex.ts';
import { formatParams, paramValue, type Param, type Params } from '../uri/params.ts';
import { defineCodec } from './codec.ts';
import { MAX_CSEQ } from './cseq.ts';
import { parseHeaderParams } from './header-params.ts';
import { parseCallId, parseDeltaSeconds } from './scalar.ts';
import { parseCommaList } from './token-list.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Reads `delta-seconds *(SEMI params)`; the number clamps to 2**32-1 (scalar.ts). */
function parseSecondsAndParams(c: Cursor): { seconds: number; params: Params } | string {
  c.ws();
  const s = c.s;
  const start = c.i;
  while (c.i < c.end && s.charCodeAt(c.i) >= 0x30 && s.charCodeAt(c.i) <= 0x39) c.i++;
  const d = parseDeltaSeconds(s.slice(start, c.i));
  if (!d.ok) return 'missing delta-seconds';
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  c.ws();
  if (!c.atEnd()) return `unexpected text: ${JSON.stringify(c.rest())}`;
  return { seconds: d.value, params };
}

/** A Session-Expires value (RFC 4028 §4). */
export interface SessionExpires {
  /** The session interval, delta-seconds. */
  readonly seconds: number;
  /** se-params as written. */
  readonly params: Params;
  /** refresher, lower-cased, when it is "uac" or "uas" (other values are left in params). */
  readonly refresher?: 'uac' | 'uas';
}

export function parseSessionExpires(value: string): Result<SessionExpires, string> {
  const r = parseSecondsAndParams(new Cursor(value));
  if (typeof r === 'string') return err(r);
  const out: Mutable<SessionExpires> = { seconds: r.seconds, params: r.params };
  const refresher = paramValue(r.params, 'refresher')?.toLowerCase();
  if (refresher === 'uac' || refresher === 'uas') out.refresher = refresher;
  return ok(out);
}

/** Session-Expires (RFC 4028 §4), compact form x. */
export const SessionExpiresHeader = defineCodec<SessionExpires>({
  name: 'Session-Expires',
  key: 'session-expires',
  compact: 'x',
  list: false,
  parse: parseSessionExpires,
  format: (v) => v.seconds + formatParams(v.params),
});

/** A Min-SE value (RFC 4028 §5). */
export interface MinSE {
  /** The minimum session interval, delta-seconds. */
  readonly seconds: number;
  readonly params: Params;
}

/** Min-SE (RFC 4028 §5). */
export const MinSeHeader = defineCodec<MinSE>({
  name: 'Min-SE',
  key: 'min-se',
  list: false,
  parse: (value) => {
    const r = parseSecondsAndParams(new Cursor(value));
    return typeof r === 'string' ? err(r) : ok(r);
  },
  format: (v) => v.seconds + formatParams(v.params),
});

/** A RAck value (RFC 3262 §7.2). */
export interface RAck {
  /** response-num: the RSeq of the acknowledged provisional response. */
  readonly rseq: number;
  /** CSeq-num of the request the response belongs to. */
  readonly cseq: number;
  /** Method of that request. */
  readonly method: string;
}

/**
 * Parses RAck. Both numbers are 32-bit like CSeq (RFC 3262 §7.1: RSeq "MUST be
 * ... less than 2**31", but is incremented and so may reach 2**32-1).
 */
export function parseRAck(value: string): Result<RAck, string> {
  const c = new Cursor(value);
  c.ws();
  let start = c.i;
  const rseq = c.digits(MAX_CSEQ);
  if (rseq < 0) return err(c.i === start ? 'missing response-num' : 'response-num above 2**32-1');
  let before = c.i;
  c.ws();
  if (c.i === before) return err('expected LWS after response-num');
  start = c.i;
  const cseq = c.digits(MAX_CSEQ);
  if (cseq < 0) return err(c.i === start ? 'missing CSeq-num' : 'CSeq-num above 2**32-1');
  before = c.i;
  c.ws();
  if (c.i === before) return err('expected LWS after CSeq-num');
  const method = c.token();
  if (method === '') return err('missing method');
  c.ws();
  if (!c.atEnd()) return err('unexpected text after the method');
  return ok({ rseq, cseq, method });
}

/** RAck (RFC 3262 §7.2). */
export const RAckHeader = defineCodec<RAck>({
  name: 'RAck',
  key: 'rack',
  list: false,
  parse: parseRAck,
  format: (v) => `${v.rseq} ${v.cseq} ${v.method}`,
});

/** A Replaces value (RFC 3891 §6.1): the dialog to replace. */
export interface Replaces {
  /** The Call-ID of the dialog, compared byte for byte. */
  readonly callId: string;
  /** replaces-params as written. */
  readonly params: Params;
  /** to-tag = "to-tag" EQUAL token */
  readonly toTag: string;
  /** from-tag = "from-tag" EQUAL token */
  readonly fromTag: string;
  /** early-flag = "early-only" */
  readonly earlyOnly: boolean;
}

/**
 * Parses Replaces. RFC 3891 §6.1: "A Replaces header field MUST contain exactly
 * one to-tag and exactly one from-tag, as they are required for unique dialog
 * matching" — a value missing either is an error.
 */
export function parseReplaces(value: string): Result<Replaces, string> {
  const c = new Cursor(value);
  c.ws();
  const s = c.s;
  const start = c.i;
  while (c.i < c.end) {
    const x = s.charCodeAt(c.i);
    if (x === 0x3b || x === 0x20 || x === 0x09) break;
    c.i++;
  }
  const id = parseCallId(s.slice(start, c.i));
  if (!id.ok) return err(id.error);
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return err(params);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text in Replaces: ${JSON.stringify(c.rest())}`);
  let toTag: string | undefined;
  let fromTag: string | undefined;
  let earlyOnly = false;
  for (const p of params) {
    if (equalsIgnoreCase(p.name, 'to-tag')) {
      if (toTag !== undefined) return err('more than one to-tag');
      if (p.value === null) return err('to-tag without a value');
      toTag = p.value;
    } else if (equalsIgnoreCase(p.name, 'from-tag')) {
      if (fromTag !== undefined) return err('more than one from-tag');
      if (p.value === null) return err('from-tag without a value');
      fromTag = p.value;
    } else if (equalsIgnoreCase(p.name, 'early-only')) {
      earlyOnly = true;
    }
  }
  if (toTag === undefined) return err('missing to-tag');
  if (fromTag === undefined) return err('missing from-tag');
  return ok({ callId: id.value, params, toTag, fromTag, earlyOnly });
}

/** Replaces (RFC 3891 §6.1). */
export const ReplacesHeader = defineCodec<Replaces>({
  name: 'Replaces',
  key: 'replaces',
  list: false,
  parse: parseReplaces,
  format: (v) => v.callId + formatParams(v.params),
});

/** One Reason value (RFC 3326 §2). */
export interface Reason {
  /** protocol as written: "SIP", "Q.850" or a token (e.g. "RELEASE_CAUSE"). */
  readonly protocol: string;
  /** reason-params as written. */
  readonly params: Params;
  /** protocol-cause = "cause" EQUAL cause; cause = 1*DIGIT. */
  readonly cause?: number;
  /** reason-text = "text" EQUAL quoted-string, unquoted. */
  readonly text?: string;
}

function reasonItem(c: Cursor): Reason | string {
  const protocol = c.token();
  if (protocol === '') return 'missing protocol';
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  const out: Mutable<Reason> = { protocol, params };
  const cause = paramValue(params, 'cause');
  if (cause !== undefined) {
    if (!/^\d{1,9}$/.test(cause)) return `invalid cause ${JSON.stringify(cause)}`;
    out.cause = Number(cause);
  }
  const text = paramValue(params, 'text');
  if (text !== undefined) out.text = text;
  return out;
}

/** reason-text is a quoted-string (RFC 3326 §2): quote a value given bare. */
function formatReasonParam(p: Param): string {
  if (p.value !== null && equalsIgnoreCase(p.name, 'text')) {
    const v = p.value;
    const quoted = v.length >= 2 && v.charCodeAt(0) === 0x22 && scanQuoted(v, 0) === v.length;
    if (!quoted) return ';' + p.name + '=' + quote(v);
  }
  return formatParams([p]);
}

export function formatReason(r: Reason): string {
  return r.protocol + r.params.map(formatReasonParam).join('');
}

/** Reason (RFC 3326 §2): a list, one value per protocol. */
export const ReasonHeader = defineCodec<readonly Reason[]>({
  name: 'Reason',
  key: 'reason',
  list: true,
  parse: (value) => parseCommaList(value, reasonItem, false),
  format: (l) => l.map(formatReason).join(', '),
});

/** A Retry-After value (RFC 3261 §20.33). */
export interface RetryAfter {
  /** delta-seconds, clamped to 2**32-1. */
  readonly seconds: number;
  /** The comment's text without its outer parentheses (quoted-pairs and inner comments as written). */
  readonly comment?: string;
  /** retry-params as written. */
  readonly params: Params;
  /** duration = "duration" EQUAL delta-seconds */
  readonly duration?: number;
}

/**
 * comment = LPAREN *(ctext / quoted-pair / comment) RPAREN (RFC 3261 §25.1).
 * Returns the index after the matching ")" or -1.
 */
function scanComment(s: string, i: number, end: number): number {
  let depth = 0;
  while (i < end) {
    const x = s.charCodeAt(i);
    if (x === 0x5c) {
      i += 2;
      continue;
    }
    if (x === 0x28) depth++;
    else if (x === 0x29) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return -1;
}

export function parseRetryAfter(value: string): Result<RetryAfter, string> {
  const c = new Cursor(value);
  c.ws();
  const s = c.s;
  const start = c.i;
  while (c.i < c.end && s.charCodeAt(c.i) >= 0x30 && s.charCodeAt(c.i) <= 0x39) c.i++;
  const d = parseDeltaSeconds(s.slice(start, c.i));
  if (!d.ok) return err('missing delta-seconds');
  const out: Mutable<RetryAfter> = { seconds: d.value, params: [] };
  const save = c.i;
  c.ws();
  if (c.peek() === 0x28) {
    const e = scanComment(s, c.i, c.end);
    if (e < 0) return err('unterminated comment');
    out.comment = trimWs(s.slice(c.i + 1, e - 1));
    c.i = e;
  } else c.i = save;
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return err(params);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text in Retry-After: ${JSON.stringify(c.rest())}`);
  out.params = params;
  const duration = paramValue(params, 'duration');
  if (duration !== undefined) {
    const v = parseDeltaSeconds(duration);
    if (!v.ok) return err('invalid duration parameter');
    out.duration = v.value;
  }
  return ok(out);
}

/** Retry-After (RFC 3261 §20.33). */
export const RetryAfterHeader = defineCodec<RetryAfter>({
  name: 'Retry-After',
  key: 'retry-after',
  list: false,
  parse: parseRetryAfter,
  format: (v) =>
    v.seconds + (v.comment !== undefined ? ` (${v.comment})` : '') + formatParams(v.params),
});
