/**
 * Media types (RFC 3261 §20.1, §20.15, §25.1):
 *
 *   media-type  = m-type SLASH m-subtype *(SEMI m-parameter)
 *   m-parameter = m-attribute EQUAL m-value; m-value = token / quoted-string
 *   Accept      = [ accept-range *(COMMA accept-range) ]
 *   accept-range = media-range *(SEMI accept-param)
 *   media-range = ( "*" "/" "*" / ( m-type SLASH "*" ) / ( m-type SLASH m-subtype ) )
 *                 *( SEMI m-parameter )
 *
 * Type and subtype are case-insensitive (RFC 2045 §5.1) and are decoded to lower
 * case; parameters are kept as written (a boundary or charset value keeps its
 * case and quotes; read them with `paramValue`).
 */
import { err, ok, type Result } from '../../base/result.ts';
import { Cursor } from '../grammar/cursor.ts';
import { formatParams, paramValue, type Params } from '../uri/params.ts';
import { defineCodec } from './codec.ts';
import { parseHeaderParams } from './header-params.ts';
import { parseCommaList, parseQValue } from './token-list.ts';

/** A Content-Type value: `type/subtype;params`. */
export interface MediaType {
  /** m-type, lower-cased ("application"). */
  readonly type: string;
  /** m-subtype, lower-cased ("sdp"). */
  readonly subtype: string;
  /** m-parameters as written. */
  readonly params: Params;
}

/** One Accept element: a media-range, possibly with "*" wildcards. */
export interface MediaRange extends MediaType {
  /** The q accept-param (qvalue, 0..1), when present. */
  readonly q?: number;
}

function lower(s: string): string {
  return /[A-Z]/.test(s) ? s.toLowerCase() : s;
}

function parseMediaAt(c: Cursor): MediaType | string {
  c.ws();
  const type = c.token();
  if (type === '') return 'missing media type';
  if (!c.sep(0x2f)) return 'expected "/" after the media type';
  const subtype = c.token();
  if (subtype === '') return 'missing media subtype';
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  return { type: lower(type), subtype: lower(subtype), params };
}

/** Parses a Content-Type value (one media-type; no wildcards). */
export function parseMediaType(value: string): Result<MediaType, string> {
  const c = new Cursor(value);
  const m = parseMediaAt(c);
  if (typeof m === 'string') return err(m);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text after media type: ${JSON.stringify(c.rest())}`);
  if (m.type === '*' || m.subtype === '*') return err('a wildcard is not a media type');
  return ok(m);
}

function mediaRangeItem(c: Cursor): MediaRange | string {
  const m = parseMediaAt(c);
  if (typeof m === 'string') return m;
  // media-range: "*/*" or type/"*"; never "*"/subtype.
  if (m.type === '*' && m.subtype !== '*') return 'invalid media-range "*/' + m.subtype + '"';
  const q = paramValue(m.params, 'q');
  if (q === undefined) return m;
  const v = parseQValue(q);
  if (v === undefined) return `invalid q-value ${JSON.stringify(q)}`;
  return { ...m, q: v };
}

export function formatMediaType(m: MediaType): string {
  return m.type + '/' + m.subtype + formatParams(m.params);
}

/** Content-Type (RFC 3261 §20.15), compact form c. */
export const ContentTypeHeader = defineCodec<MediaType>({
  name: 'Content-Type',
  key: 'content-type',
  compact: 'c',
  list: false,
  parse: parseMediaType,
  format: formatMediaType,
});

/** Accept (RFC 3261 §20.1): an empty value is an empty list (accepts no body). */
export const AcceptHeader = defineCodec<readonly MediaRange[]>({
  name: 'Accept',
  key: 'accept',
  list: true,
  parse: (value) => parseCommaList(value, mediaRangeItem, true),
  format: (l) => l.map(formatMediaType).join(', '),
});
