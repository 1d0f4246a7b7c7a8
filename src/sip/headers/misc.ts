/**
 * The remaining RFC 3261 §20 headers and the caller-preferences headers:
 *
 *   Warning = "Warning" HCOLON warning-value *(COMMA warning-value)      (§20.43)
 *   warning-value = warn-code SP warn-agent SP warn-text; warn-code = 3DIGIT
 *   Date = "Date" HCOLON SIP-date; SIP-date = rfc1123-date                (§20.17)
 *   Timestamp = "Timestamp" HCOLON 1*(DIGIT) [ "." *(DIGIT) ] [ LWS delay ] (§20.38)
 *   MIME-Version = "MIME-Version" HCOLON 1*DIGIT "." 1*DIGIT              (§20.24)
 *   Priority = "Priority" HCOLON priority-value                           (§20.26)
 *   Subject, User-Agent, Server, Organization: free text                  (§20.36, §20.41, §20.35, §20.25)
 *   Content-Disposition = "Content-Disposition" HCOLON disp-type *( SEMI disp-param ) (§20.11)
 *   Alert-Info / Call-Info / Error-Info = LAQUOT absoluteURI RAQUOT *( SEMI param )
 *                                                                         (§20.4, §20.9, §20.18)
 *   Accept-Contact / Reject-Contact = "*" *(SEMI params) *(COMMA ...)     (RFC 3841 §10)
 *   Request-Disposition = directive *(COMMA directive)                   (RFC 3841 §10)
 *
 * Identity / Identity-Info (RFC 8224 / RFC 4474) have no codec: their fields stay raw.
 */
import { err, ok, type Result } from '../../base/result.ts';
import { ALPHA_ONLY, CHAR_CLASS, SCHEMECHAR, TOKEN } from '../grammar/chars.ts';
import { Cursor } from '../grammar/cursor.ts';
import { equalsIgnoreCase, parseDigits, quote, unquote } from '../grammar/lex.ts';
import { formatParams, hasParam, paramValue, type Params } from '../uri/params.ts';
import { formatUri, parseUri, type OtherUri, type Uri } from '../uri/uri.ts';
import { defineCodec } from './codec.ts';
import { parseHeaderParams } from './header-params.ts';
import { parseCommaList } from './token-list.ts';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

// ---- Warning ----------------------------------------------------------------

/** One warning-value (RFC 3261 §20.43). */
export interface Warning {
  /** warn-code, exactly 3 digits (300..399 for SIP warnings, §20.43). */
  readonly code: number;
  /** warn-agent = hostport / pseudonym, as written. */
  readonly agent: string;
  /** warn-text, unquoted. */
  readonly text: string;
}

function isAgentChar(x: number): boolean {
  // hostport (incl. "[" IPv6 "]" and ":" port) or a token pseudonym.
  return x === 0x3a || x === 0x5b || x === 0x5d || (x < 128 && (CHAR_CLASS[x]! & TOKEN) !== 0);
}

function warningItem(c: Cursor): Warning | string {
  const s = c.s;
  const start = c.i;
  while (c.i < c.end && s.charCodeAt(c.i) >= 0x30 && s.charCodeAt(c.i) <= 0x39) c.i++;
  // RFC 4475 §3.1.2.5: "1812" is not a warn-code.
  if (c.i - start !== 3) return 'warn-code must be exactly 3 digits';
  const code = parseDigits(s, start, c.i, 999);
  let before = c.i;
  c.ws();
  if (c.i === before) return 'expected SP after warn-code';
  const agentStart = c.i;
  while (c.i < c.end && isAgentChar(s.charCodeAt(c.i))) c.i++;
  if (c.i === agentStart) return 'missing warn-agent';
  const agent = s.slice(agentStart, c.i);
  before = c.i;
  c.ws();
  if (c.i === before) return 'expected SP after warn-agent';
  if (c.peek() !== 0x22) return 'warn-text must be a quoted-string';
  const q = c.quoted();
  if (q === undefined) return 'unterminated warn-text';
  return { code, agent, text: unquote(q) };
}

export function formatWarning(w: Warning): string {
  return `${String(w.code).padStart(3, '0')} ${w.agent} ${quote(w.text)}`;
}

/** Warning (RFC 3261 §20.43). */
export const WarningHeader = defineCodec<readonly Warning[]>({
  name: 'Warning',
  key: 'warning',
  list: true,
  parse: (value) => parseCommaList(value, warningItem, false),
  format: (l) => l.map(formatWarning).join(', '),
});

// ---- Date -------------------------------------------------------------------

/** A Date value (RFC 3261 §20.17). */
export interface SipDate {
  /**
   * The instant, in ms since the epoch (UTC). For a zone that is not known the
   * clock time is read as GMT (and `offset` is undefined).
   */
  readonly time: number;
  /** The zone as written, upper-cased: "GMT" (§20.17: "always ... GMT"), or e.g. "EST". */
  readonly zone: string;
  /** True when the zone is GMT, as §20.17 requires. */
  readonly gmt: boolean;
  /** The zone's offset from UTC in minutes (EST = -300) when known. */
  readonly offset?: number;
}

const WKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = [
  'Jan',
  'Feb',
  'Mar',
  'Apr',
  'May',
  'Jun',
  'Jul',
  'Aug',
  'Sep',
  'Oct',
  'Nov',
  'Dec',
] as const;

/** Zones of RFC 822 §5.1 (RFC 2822 §4.3 obs-zone), minutes east of UTC. */
const ZONES: ReadonlyMap<string, number> = new Map([
  ['GMT', 0],
  ['UT', 0],
  ['UTC', 0],
  ['Z', 0],
  ['EST', -300],
  ['EDT', -240],
  ['CST', -360],
  ['CDT', -300],
  ['MST', -420],
  ['MDT', -360],
  ['PST', -480],
  ['PDT', -420],
]);

/**
 * rfc1123-date = wkday "," SP date1 SP time SP "GMT"; date1 = 2DIGIT SP month SP
 * 4DIGIT; time = 2DIGIT ":" 2DIGIT ":" 2DIGIT. Runs of SP/HT are tolerated and
 * the day may have one digit; names are case-insensitive.
 */
const RFC1123 =
  /^([A-Za-z]{3})[ \t]*,[ \t]*(\d{1,2})[ \t]+([A-Za-z]{3})[ \t]+(\d{4})[ \t]+(\d{2}):(\d{2}):(\d{2})[ \t]+([A-Za-z]{1,5}|[+-]\d{4})$/;

function monthIndex(m: string): number {
  for (let i = 0; i < 12; i++) if (equalsIgnoreCase(MONTHS[i]!, m)) return i;
  return -1;
}

/**
 * Parses a Date value. RFC 4475 §3.1.2.12 ("baddate", zone EST): "the
 * element receiving the request MAY ignore the Date or convert it"; known
 * zones are converted, and `gmt` reports whether the sender used GMT.
 */
export function parseDate(value: string): Result<SipDate, string> {
  const m = RFC1123.exec(value);
  if (m === null) return err('not an rfc1123-date');
  if (!WKDAYS.some((d) => equalsIgnoreCase(d, m[1]!))) return err('invalid weekday');
  const month = monthIndex(m[3]!);
  if (month < 0) return err('invalid month');
  const day = Number(m[2]);
  const year = Number(m[4]);
  const hh = Number(m[5]);
  const mm = Number(m[6]);
  const ss = Number(m[7]);
  if (hh > 23 || mm > 59 || ss > 60) return err('invalid time of day');
  const raw = m[8]!;
  const zone = raw.toUpperCase();
  let offset: number | undefined;
  if (raw.charCodeAt(0) === 0x2b || raw.charCodeAt(0) === 0x2d) {
    const h = Number(raw.slice(1, 3));
    const mi = Number(raw.slice(3, 5));
    if (mi > 59) return err('invalid zone offset');
    offset = (raw.charCodeAt(0) === 0x2d ? -1 : 1) * (h * 60 + mi);
  } else offset = ZONES.get(zone);
  // Date.UTC takes years 0..99 as 1900+; setUTCFullYear does not.
  const base = new Date(0);
  base.setUTCFullYear(year, month, day);
  if (day < 1 || base.getUTCMonth() !== month) return err('invalid day of month');
  base.setUTCHours(hh, mm, ss, 0);
  const time = base.getTime() - (offset ?? 0) * 60000;
  const out: Mutable<SipDate> = { time, zone, gmt: zone === 'GMT' };
  if (offset !== undefined) out.offset = offset;
  return ok(out);
}

const pad2 = (n: number): string => (n < 10 ? '0' + n : String(n));

/** Formats an instant as rfc1123-date in GMT (RFC 3261 §20.17), whatever zone it was read in. */
export function formatDate(d: SipDate): string {
  const t = new Date(d.time);
  return (
    `${WKDAYS[t.getUTCDay()]}, ${pad2(t.getUTCDate())} ${MONTHS[t.getUTCMonth()]} ` +
    `${String(t.getUTCFullYear()).padStart(4, '0')} ` +
    `${pad2(t.getUTCHours())}:${pad2(t.getUTCMinutes())}:${pad2(t.getUTCSeconds())} GMT`
  );
}

/** Date (RFC 3261 §20.17). format always writes GMT: a non-GMT date comes back converted. */
export const DateHeader = defineCodec<SipDate>({
  name: 'Date',
  key: 'date',
  list: false,
  parse: parseDate,
  format: formatDate,
});

// ---- Timestamp --------------------------------------------------------------

/** A Timestamp value (RFC 3261 §20.38). Kept as text: a UAS echoes it (§8.2.6.1). */
export interface Timestamp {
  /** `1*(DIGIT) [ "." *(DIGIT) ]` as written. */
  readonly value: string;
  /** The value as a number of seconds. */
  readonly seconds: number;
  /** delay = `*(DIGIT) [ "." *(DIGIT) ]` as written, when present. */
  readonly delay?: string;
  /** The delay as a number of seconds. */
  readonly delaySeconds?: number;
}

export function parseTimestamp(value: string): Result<Timestamp, string> {
  const m = /^(\d+(?:\.\d*)?)(?:[ \t]+(\d+(?:\.\d*)?|\.\d+))?$/.exec(value);
  if (m === null) return err('malformed Timestamp');
  const out: Mutable<Timestamp> = { value: m[1]!, seconds: Number(m[1]) };
  if (m[2] !== undefined) {
    out.delay = m[2];
    out.delaySeconds = Number(m[2]);
  }
  return ok(out);
}

/** Timestamp (RFC 3261 §20.38). */
export const TimestampHeader = defineCodec<Timestamp>({
  name: 'Timestamp',
  key: 'timestamp',
  list: false,
  parse: parseTimestamp,
  format: (v) => (v.delay !== undefined ? `${v.value} ${v.delay}` : v.value),
});

// ---- MIME-Version -----------------------------------------------------------

/** A MIME-Version value (RFC 3261 §20.24): `1*DIGIT "." 1*DIGIT`. */
export interface MimeVersion {
  readonly major: number;
  readonly minor: number;
}

export function parseMimeVersion(value: string): Result<MimeVersion, string> {
  const dot = value.indexOf('.');
  if (dot < 0) return err('expected "." in MIME-Version');
  const major = parseDigits(value, 0, dot, 0xffffffff);
  const minor = parseDigits(value, dot + 1, value.length, 0xffffffff);
  if (major < 0 || minor < 0) return err('malformed MIME-Version');
  return ok({ major, minor });
}

/** MIME-Version (RFC 3261 §20.24). */
export const MimeVersionHeader = defineCodec<MimeVersion>({
  name: 'MIME-Version',
  key: 'mime-version',
  list: false,
  parse: parseMimeVersion,
  format: (v) => `${v.major}.${v.minor}`,
});

// ---- Priority ---------------------------------------------------------------

function parseLowerToken(value: string, what: string): Result<string, string> {
  const c = new Cursor(value);
  const t = c.token();
  if (t === '') return err(`expected ${what}`);
  if (!c.atEnd()) return err(`${what} must be one token`);
  return ok(t.toLowerCase());
}

/**
 * Priority (RFC 3261 §20.26): priority-value = "emergency" / "urgent" /
 * "normal" / "non-urgent" / other-priority (a token). Decoded lower-cased.
 */
export const PriorityHeader = defineCodec<string>({
  name: 'Priority',
  key: 'priority',
  list: false,
  parse: (v) => parseLowerToken(v, 'a priority-value'),
  format: (v) => v,
});

// ---- Free text --------------------------------------------------------------

/** Free text is written on one line: CR and LF would end the header field. */
const oneLine = (v: string): string => v.replace(/[\r\n]+/g, ' ');

/** Subject (RFC 3261 §20.36): `[TEXT-UTF8-TRIM]`, kept as-is; may be empty. Compact form s. */
export const SubjectHeader = defineCodec<string>({
  name: 'Subject',
  key: 'subject',
  compact: 's',
  list: false,
  parse: (v) => ok(v),
  format: oneLine,
});

/** Organization (RFC 3261 §20.25): `[TEXT-UTF8-TRIM]`, kept as-is; may be empty. */
export const OrganizationHeader = defineCodec<string>({
  name: 'Organization',
  key: 'organization',
  list: false,
  parse: (v) => ok(v),
  format: oneLine,
});

function nonEmptyText(v: string): Result<string, string> {
  return v === '' ? err('empty value') : ok(v);
}

/** User-Agent (RFC 3261 §20.41): `server-val *(LWS server-val)`, kept as text. */
export const UserAgentHeader = defineCodec<string>({
  name: 'User-Agent',
  key: 'user-agent',
  list: false,
  parse: nonEmptyText,
  format: oneLine,
});

/** Server (RFC 3261 §20.35): `server-val *(LWS server-val)`, kept as text. */
export const ServerHeader = defineCodec<string>({
  name: 'Server',
  key: 'server',
  list: false,
  parse: nonEmptyText,
  format: oneLine,
});

// ---- Content-Disposition ----------------------------------------------------

/** A Content-Disposition value (RFC 3261 §20.11). */
export interface ContentDisposition {
  /**
   * disp-type, lower-cased: "render", "session", "icon", "alert", or an
   * extension ("early-session", RFC 3959; "by-reference", RFC 5621).
   */
  readonly type: string;
  /** disp-params as written. */
  readonly params: Params;
  /** handling = "optional" / "required" / other-handling, lower-cased. */
  readonly handling?: string;
}

export function parseContentDisposition(value: string): Result<ContentDisposition, string> {
  const c = new Cursor(value);
  const type = c.token();
  if (type === '') return err('missing disp-type');
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return err(params);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text in Content-Disposition: ${JSON.stringify(c.rest())}`);
  const out: Mutable<ContentDisposition> = { type: type.toLowerCase(), params };
  const handling = paramValue(params, 'handling');
  if (handling !== undefined) out.handling = handling.toLowerCase();
  return ok(out);
}

/** Content-Disposition (RFC 3261 §20.11). */
export const ContentDispositionHeader = defineCodec<ContentDisposition>({
  name: 'Content-Disposition',
  key: 'content-disposition',
  list: false,
  parse: parseContentDisposition,
  format: (v) => v.type + formatParams(v.params),
});

// ---- Alert-Info, Call-Info, Error-Info ---------------------------------------

/** `LAQUOT absoluteURI RAQUOT *( SEMI generic-param )` (RFC 3261 §20.4, §20.18). */
export interface InfoValue {
  /**
   * The URI between the brackets: a SipUri/TelUri for sip:, sips: and tel:,
   * else an OtherUri holding the text after the scheme as written (http:,
   * https:, file:, cid:, urn: ...).
   */
  readonly uri: Uri;
  readonly params: Params;
}

/** A Call-Info value (RFC 3261 §20.9). */
export interface CallInfo extends InfoValue {
  /** purpose = "icon" / "info" / "card" / token, lower-cased, when present. */
  readonly purpose?: string;
}

/**
 * Reads `<absoluteURI>`. sip/sips/tel URIs must parse; any other scheme is kept
 * opaque even where it strays from RFC 3986 (phones put spaces in file names).
 */
function bracketedUri(c: Cursor): Uri | string {
  if (c.peek() !== 0x3c) return 'expected "<" absoluteURI ">"';
  const s = c.s;
  const close = s.indexOf('>', c.i + 1);
  if (close < 0 || close >= c.end) return 'missing ">"';
  const text = s.slice(c.i + 1, close).trim();
  c.i = close + 1;
  const u = parseUri(text);
  if (u.ok) return u.value;
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) return u.error;
  const scheme = text.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips' || scheme === 'tel') return u.error;
  if (!/^[a-z]/.test(scheme)) return u.error;
  for (let i = 1; i < colon; i++) {
    const x = text.charCodeAt(i);
    if (x >= 128 || (CHAR_CLASS[x]! & (SCHEMECHAR | ALPHA_ONLY)) === 0) return u.error;
  }
  const other: OtherUri = { kind: 'other', scheme, rest: text.slice(colon + 1) };
  return other;
}

function infoItem(c: Cursor): InfoValue | string {
  const uri = bracketedUri(c);
  if (typeof uri === 'string') return uri;
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  return { uri, params };
}

function callInfoItem(c: Cursor): CallInfo | string {
  const v = infoItem(c);
  if (typeof v === 'string') return v;
  // A bare `;purpose` is a generic-param, not an info-param: no purpose.
  const purpose = paramValue(v.params, 'purpose');
  return purpose === undefined || purpose === '' ? v : { ...v, purpose: purpose.toLowerCase() };
}

export function formatInfo(v: InfoValue): string {
  return '<' + formatUri(v.uri) + '>' + formatParams(v.params);
}

/** Alert-Info (RFC 3261 §20.4). */
export const AlertInfoHeader = defineCodec<readonly InfoValue[]>({
  name: 'Alert-Info',
  key: 'alert-info',
  list: true,
  parse: (value) => parseCommaList(value, infoItem, false),
  format: (l) => l.map(formatInfo).join(', '),
});

/** Call-Info (RFC 3261 §20.9). */
export const CallInfoHeader = defineCodec<readonly CallInfo[]>({
  name: 'Call-Info',
  key: 'call-info',
  list: true,
  parse: (value) => parseCommaList(value, callInfoItem, false),
  format: (l) => l.map(formatInfo).join(', '),
});

/** Error-Info (RFC 3261 §20.18). */
export const ErrorInfoHeader = defineCodec<readonly InfoValue[]>({
  name: 'Error-Info',
  key: 'error-info',
  list: true,
  parse: (value) => parseCommaList(value, infoItem, false),
  format: (l) => l.map(formatInfo).join(', '),
});

// ---- Caller preferences (RFC 3841) --------------------------------------------

/**
 * An Accept-Contact / Reject-Contact value (RFC 3841 §10):
 *   ac-value = "*" *(SEMI ac-params); ac-params = feature-param / req-param
 *              / explicit-param / generic-param
 * Feature parameters (`audio`, `+sip.methods="INVITE"`, ...) are kept as written.
 */
export interface CallerPreference {
  readonly params: Params;
  /** req-param = "require" (RFC 3841 §10; Accept-Contact only). */
  readonly require: boolean;
  /** explicit-param = "explicit" (RFC 3841 §10; Accept-Contact only). */
  readonly explicit: boolean;
}

function preferenceItem(c: Cursor): CallerPreference | string {
  if (c.peek() !== 0x2a) return 'expected "*"';
  c.i++;
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  return { params, require: hasParam(params, 'require'), explicit: hasParam(params, 'explicit') };
}

const formatPreferences = (l: readonly CallerPreference[]): string =>
  l.map((v) => '*' + formatParams(v.params)).join(', ');

/** Accept-Contact (RFC 3841 §10), compact form a. */
export const AcceptContactHeader = defineCodec<readonly CallerPreference[]>({
  name: 'Accept-Contact',
  key: 'accept-contact',
  compact: 'a',
  list: true,
  parse: (value) => parseCommaList(value, preferenceItem, false),
  format: formatPreferences,
});

/** Reject-Contact (RFC 3841 §10), compact form j. */
export const RejectContactHeader = defineCodec<readonly CallerPreference[]>({
  name: 'Reject-Contact',
  key: 'reject-contact',
  compact: 'j',
  list: true,
  parse: (value) => parseCommaList(value, preferenceItem, false),
  format: formatPreferences,
});

/**
 * Request-Disposition (RFC 3841 §10): directive = proxy-directive /
 * cancel-directive / fork-directive / recurse-directive / parallel-directive /
 * queue-directive ("proxy", "redirect", "cancel", "no-cancel", "fork",
 * "no-fork", "recurse", "no-recurse", "parallel", "sequential", "queue",
 * "no-queue"). Tokens lower-cased (the ABNF literals are case-insensitive).
 */
export const RequestDispositionHeader = defineCodec<readonly string[]>({
  name: 'Request-Disposition',
  key: 'request-disposition',
  compact: 'd',
  list: true,
  parse: (value) => {
    const r = parseCommaList(
      value,
      (c): { v: string } | string => {
        const t = c.token();
        return t === '' ? 'expected a directive' : { v: t.toLowerCase() };
      },
      false,
    );
    return r.ok ? ok(r.value.map((x) => x.v)) : r;
  },
  format: (l) => l.join(', '),
});
