/**
 * Authentication headers (RFC 3261 §20.5 ff., §22, §25.1; RFC 7616 for the
 * SHA-256 / SHA-512-256 algorithms, `userhash`, `username*` and `charset`):
 *
 *   challenge   = ("Digest" LWS digest-cln *(COMMA digest-cln)) / other-challenge
 *   credentials = ("Digest" LWS digest-response) / other-response
 *   other-*     = auth-scheme LWS auth-param *(COMMA auth-param)
 *   auth-param  = auth-param-name EQUAL ( token / quoted-string )
 *   ainfo       = nextnonce / message-qop / response-auth / cnonce / nonce-count
 *
 * Auth params are separated by commas, not semicolons. Their values are kept as
 * written (a quoted-string keeps its quotes, see uri/params.ts) and the Digest
 * fields are decoded beside them for any scheme, so an unknown scheme such as
 * RFC 4475 §3.3.7's `NoOneKnowsThisScheme opaque-data=here` parses as well. A
 * bare `token68` (RFC 7235 §2.1, used by `Bearer`, RFC 8898 §6) is kept too.
 *
 * `format` writes `scheme` and `params` (the decoded fields are views of the
 * params) and fixes quoting: values §25.1 defines as quoted-string (realm, nonce,
 * uri, response, cnonce, opaque, username, domain, qop-options of a challenge,
 * nextnonce, rspauth) are quoted, and algorithm, stale, nc, userhash and the
 * message-qop of credentials are written bare. A parsed value that was quoted
 * the wrong way therefore comes back corrected (its decoded field is unchanged).
 */
import { err, ok, type Result } from '../../base/result.ts';
import { isToken } from '../grammar/chars.ts';
import { Cursor } from '../grammar/cursor.ts';
import { equalsIgnoreCase, quote, scanQuoted, unquote } from '../grammar/lex.ts';
import type { Param, Params } from '../uri/params.ts';
import { defineCodec } from './codec.ts';

/**
 * A challenge of WWW-Authenticate (RFC 3261 §20.44) or Proxy-Authenticate
 * (§20.27). The optional fields are the decoded Digest directives (RFC 3261
 * §25.1 digest-cln, RFC 7616 §3.3), quotes removed.
 */
export interface Challenge {
  /** auth-scheme as written ("Digest"); compared case-insensitively. */
  readonly scheme: string;
  /** auth-params as written, in order. */
  readonly params: Params;
  /** A token68 in place of auth-params (RFC 7235 §2.1), when there is one. */
  readonly token68?: string;
  /** realm = "realm" EQUAL quoted-string */
  readonly realm?: string;
  /** domain = "domain" EQUAL LDQUOT URI *( 1*SP URI ) RDQUOT — the URIs. */
  readonly domain?: readonly string[];
  /** nonce = "nonce" EQUAL quoted-string */
  readonly nonce?: string;
  /** opaque = "opaque" EQUAL quoted-string */
  readonly opaque?: string;
  /** algorithm = "MD5" / "MD5-sess" / "SHA-256" / "SHA-256-sess" / "SHA-512-256" / ... / token, as written. */
  readonly algorithm?: string;
  /** qop-options = "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT — the qop-values. */
  readonly qop?: readonly string[];
  /** stale = "stale" EQUAL ( "true" / "false" ), case-insensitive; false when absent. */
  readonly stale: boolean;
  /** charset = "charset" EQUAL "UTF-8" (RFC 7616 §3.3). */
  readonly charset?: string;
  /** userhash = "userhash" EQUAL ( "true" / "false" ) (RFC 7616 §3.3); false when absent. */
  readonly userhash: boolean;
}

/**
 * The credentials of Authorization (RFC 3261 §20.7) or Proxy-Authorization
 * (§20.28): one per field. The optional fields decode §25.1 dig-resp.
 */
export interface Credentials {
  /** auth-scheme as written ("Digest"); compared case-insensitively. */
  readonly scheme: string;
  /** auth-params as written, in order. */
  readonly params: Params;
  /** A token68 in place of auth-params (RFC 7235 §2.1; `Bearer` of RFC 8898). */
  readonly token68?: string;
  /**
   * username = "username" EQUAL quoted-string; or, when only `username*` is
   * present (RFC 7616 §3.4.4, an RFC 8187 ext-value), its UTF-8 decoding.
   */
  readonly username?: string;
  readonly realm?: string;
  readonly nonce?: string;
  /** digest-uri = "uri" EQUAL LDQUOT Request-URI RDQUOT */
  readonly uri?: string;
  /** dresponse = "response" EQUAL LDQUOT *LHEX RDQUOT */
  readonly response?: string;
  readonly algorithm?: string;
  readonly cnonce?: string;
  readonly opaque?: string;
  /** message-qop = "qop" EQUAL qop-value (bare; quotes tolerated). */
  readonly qop?: string;
  /** nonce-count = "nc" EQUAL 8LHEX, decoded from hexadecimal. */
  readonly nc?: number;
  /** userhash (RFC 7616 §3.4.4); false when absent. */
  readonly userhash: boolean;
}

/** Authentication-Info (RFC 3261 §20.6): `ainfo *(COMMA ainfo)`; no scheme. */
export interface AuthenticationInfo {
  readonly params: Params;
  /** nextnonce = "nextnonce" EQUAL quoted-string */
  readonly nextnonce?: string;
  readonly qop?: string;
  /** response-auth = "rspauth" EQUAL LDQUOT *LHEX RDQUOT */
  readonly rspauth?: string;
  readonly cnonce?: string;
  readonly nc?: number;
}

interface Parsed {
  scheme: string;
  params: Param[];
  token68?: string;
}

/** token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
function isToken68Char(x: number): boolean {
  return (
    (x >= 0x30 && x <= 0x39) ||
    (x >= 0x41 && x <= 0x5a) ||
    (x >= 0x61 && x <= 0x7a) ||
    x === 0x2d ||
    x === 0x2e ||
    x === 0x5f ||
    x === 0x7e ||
    x === 0x2b ||
    x === 0x2f
  );
}

/** Index after a token68 at `i` when it ends the element (end of value or ","), else -1. */
function token68End(c: Cursor): number {
  const s = c.s;
  let i = c.i;
  while (i < c.end && isToken68Char(s.charCodeAt(i))) i++;
  if (i === c.i) return -1;
  while (i < c.end && s.charCodeAt(i) === 0x3d) i++;
  let j = i;
  while (j < c.end && (s.charCodeAt(j) === 0x20 || s.charCodeAt(j) === 0x09)) j++;
  return j >= c.end || s.charCodeAt(j) === 0x2c ? i : -1;
}

/** A bare auth-param value: runs to SP, HT, "," or DQUOTE (lenient beyond `token`). */
function bareValue(c: Cursor): string {
  const s = c.s;
  const start = c.i;
  let i = start;
  while (i < c.end) {
    const x = s.charCodeAt(i);
    if (x <= 0x20 || x === 0x2c || x === 0x22 || x === 0x7f) break;
    i++;
  }
  c.i = i;
  return s.slice(start, i);
}

/**
 * True when the cursor (just after a ",") starts a new challenge rather than an
 * auth-param: a token not followed by "=" (RFC 7235 §4.1 allows several
 * challenges in one field).
 */
function startsNewChallenge(c: Cursor): boolean {
  const save = c.i;
  c.ws();
  const t = c.token();
  const fresh = t !== '' && !c.sep(0x3d);
  c.i = save;
  return fresh;
}

/**
 * Parses `auth-param *(COMMA auth-param)` at the cursor into `params`. With
 * `several`, stops before a "," that starts another challenge. Returns an error
 * string or undefined.
 */
function parseAuthParams(c: Cursor, several: boolean, params: Param[]): string | undefined {
  for (;;) {
    const name = c.token();
    if (name === '') return 'expected an auth-param name';
    if (!c.sep(0x3d)) return `expected "=" after auth-param ${name}`;
    let value: string;
    if (c.peek() === 0x22) {
      const q = c.quoted();
      if (q === undefined) return `unterminated quoted-string in auth-param ${name}`;
      value = q;
    } else {
      value = bareValue(c);
      if (value === '') return `empty value for auth-param ${name}`;
    }
    params.push({ name, value });
    c.ws();
    if (c.atEnd()) return undefined;
    if (c.peek() !== 0x2c) return `unexpected text after auth-param ${name}`;
    const comma = c.i;
    c.i++;
    if (several && startsNewChallenge(c)) {
      c.i = comma;
      return undefined;
    }
    c.ws();
  }
}

/**
 * Parses `auth-scheme [ LWS ( token68 / auth-param *(COMMA auth-param) ) ]` at
 * the cursor. With `several`, stops before a "," that starts another challenge.
 */
function parseAuthAt(c: Cursor, several: boolean): Parsed | string {
  c.ws();
  const scheme = c.token();
  if (scheme === '') return 'missing auth-scheme';
  const params: Param[] = [];
  const before = c.i;
  c.ws();
  if (c.atEnd() || (several && c.peek() === 0x2c)) {
    c.i = before;
    return { scheme, params };
  }
  if (c.i === before) return 'expected LWS after the auth-scheme';
  // Digest always carries auth-params (RFC 3261 §25.1), so `Digest realm` is an
  // error rather than a token68.
  const t68 = equalsIgnoreCase(scheme, 'digest') ? -1 : token68End(c);
  if (t68 >= 0) {
    const token68 = c.s.slice(c.i, t68);
    c.i = t68;
    return { scheme, params, token68 };
  }
  const e = parseAuthParams(c, several, params);
  return e ?? { scheme, params };
}

function get(params: Params, name: string): string | undefined {
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (equalsIgnoreCase(p.name, name)) return p.value === null ? '' : unquote(p.value);
  }
  return undefined;
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && equalsIgnoreCase(v, 'true');
}

/** nc-value = 8LHEX; 1 to 8 hex digits are accepted. */
function decodeNc(v: string | undefined): number | undefined | string {
  if (v === undefined) return undefined;
  if (!/^[0-9a-fA-F]{1,8}$/.test(v)) return `invalid nc ${JSON.stringify(v)}`;
  return parseInt(v, 16);
}

/**
 * ext-value (RFC 8187 §3.2): `charset "'" [ language ] "'" value-chars`. Only
 * UTF-8 is decoded (RFC 7616 §3.4.4 names it); undefined otherwise.
 */
function decodeExtValue(v: string): string | undefined {
  const m = /^([A-Za-z0-9!#$%&+^_`{}~-]+)'[^']*'(.*)$/.exec(v);
  if (m === null || !equalsIgnoreCase(m[1]!, 'utf-8')) return undefined;
  try {
    return decodeURIComponent(m[2]!);
  } catch {
    return undefined;
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function toChallenge(p: Parsed): Challenge {
  const ps = p.params;
  const out: Mutable<Challenge> = {
    scheme: p.scheme,
    params: ps,
    stale: isTrue(get(ps, 'stale')),
    userhash: isTrue(get(ps, 'userhash')),
  };
  if (p.token68 !== undefined) out.token68 = p.token68;
  const realm = get(ps, 'realm');
  if (realm !== undefined) out.realm = realm;
  const domain = get(ps, 'domain');
  if (domain !== undefined) out.domain = domain.split(/[ \t]+/).filter((x) => x !== '');
  const nonce = get(ps, 'nonce');
  if (nonce !== undefined) out.nonce = nonce;
  const opaque = get(ps, 'opaque');
  if (opaque !== undefined) out.opaque = opaque;
  const algorithm = get(ps, 'algorithm');
  if (algorithm !== undefined) out.algorithm = algorithm;
  const qop = get(ps, 'qop');
  if (qop !== undefined) {
    out.qop = qop
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '');
  }
  const charset = get(ps, 'charset');
  if (charset !== undefined) out.charset = charset;
  return out;
}

/** The credential fields read by name, in the order `toCredentials` sets them. */
const CREDENTIAL_FIELDS = [
  'realm',
  'nonce',
  'uri',
  'response',
  'algorithm',
  'cnonce',
  'opaque',
  'qop',
] as const;

function toCredentials(p: Parsed): Credentials | string {
  const ps = p.params;
  // One pass over the parameters, each name compared with the fields of its length: the
  // first of each wins, as `get` reads them (a credential carries about ten parameters, and
  // a lookup per field compared them all each time).
  let username: string | undefined;
  let usernameExt: string | undefined;
  let userhash: string | undefined;
  let nc: string | undefined;
  const found: (string | undefined)[] = [];
  for (let i = 0; i < ps.length; i++) {
    const q = ps[i]!;
    const n = q.name;
    const v = q.value === null ? '' : unquote(q.value);
    switch (n.length) {
      case 2:
        if (nc === undefined && equalsIgnoreCase(n, 'nc')) nc = v;
        break;
      case 8:
        if (username === undefined && equalsIgnoreCase(n, 'username')) username = v;
        else if (userhash === undefined && equalsIgnoreCase(n, 'userhash')) userhash = v;
        else if (equalsIgnoreCase(n, 'response')) found[3] ??= v;
        break;
      case 9:
        if (usernameExt === undefined && equalsIgnoreCase(n, 'username*')) usernameExt = v;
        else if (equalsIgnoreCase(n, 'algorithm')) found[4] ??= v;
        break;
      default:
        for (let f = 0; f < CREDENTIAL_FIELDS.length; f++) {
          const name = CREDENTIAL_FIELDS[f]!;
          if (name.length === n.length && equalsIgnoreCase(n, name)) {
            found[f] ??= v;
            break;
          }
        }
    }
  }
  const count = decodeNc(nc);
  if (typeof count === 'string') return count;
  const out: Mutable<Credentials> = {
    scheme: p.scheme,
    params: ps,
    userhash: isTrue(userhash),
  };
  if (p.token68 !== undefined) out.token68 = p.token68;
  if (username === undefined && usernameExt !== undefined) username = decodeExtValue(usernameExt);
  if (username !== undefined) out.username = username;
  for (let f = 0; f < CREDENTIAL_FIELDS.length; f++) {
    const v = found[f];
    if (v !== undefined) out[CREDENTIAL_FIELDS[f]!] = v;
  }
  if (count !== undefined) out.nc = count;
  return out;
}

/**
 * Parses one WWW-Authenticate / Proxy-Authenticate field value. RFC 3261 §20.44
 * puts one challenge in a field (a 401 repeats the header, §22.3); several
 * comma-separated challenges (RFC 7235 §4.1) are accepted too.
 */
export function parseChallenges(value: string): Result<readonly Challenge[], string> {
  const c = new Cursor(value);
  const out: Challenge[] = [];
  for (;;) {
    const p = parseAuthAt(c, true);
    if (typeof p === 'string') return err(p);
    out.push(toChallenge(p));
    c.ws();
    if (c.atEnd()) return ok(out);
    if (c.peek() !== 0x2c) return err(`unexpected text in challenge: ${JSON.stringify(c.rest())}`);
    c.i++;
  }
}

/** Parses one Authorization / Proxy-Authorization field value: exactly one credential. */
export function parseCredentials(value: string): Result<Credentials, string> {
  const c = new Cursor(value);
  const p = parseAuthAt(c, false);
  if (typeof p === 'string') return err(p);
  c.ws();
  if (!c.atEnd()) return err(`unexpected text in credentials: ${JSON.stringify(c.rest())}`);
  const cr = toCredentials(p);
  return typeof cr === 'string' ? err(cr) : ok(cr);
}

/** Parses an Authentication-Info value (RFC 3261 §20.6): `ainfo *(COMMA ainfo)`. */
export function parseAuthenticationInfo(value: string): Result<AuthenticationInfo, string> {
  const c = new Cursor(value);
  c.ws();
  const ps: Param[] = [];
  const e = parseAuthParams(c, false, ps);
  if (e !== undefined) return err(e);
  const nc = decodeNc(get(ps, 'nc'));
  if (typeof nc === 'string') return err(nc);
  const out: Mutable<AuthenticationInfo> = { params: ps };
  for (const k of ['nextnonce', 'qop', 'rspauth', 'cnonce'] as const) {
    const v = get(ps, k);
    if (v !== undefined) out[k] = v;
  }
  if (nc !== undefined) out.nc = nc;
  return ok(out);
}

function isQuoted(v: string): boolean {
  return v.length >= 2 && v.charCodeAt(0) === 0x22 && scanQuoted(v, 0) === v.length;
}

/** A bare value is safe when it stops where `bareValue` would stop: at its end. */
function isBareSafe(v: string): boolean {
  if (v === '') return false;
  for (let i = 0; i < v.length; i++) {
    const x = v.charCodeAt(i);
    if (x <= 0x20 || x === 0x2c || x === 0x22 || x === 0x7f) return false;
  }
  return true;
}

/** Names whose values §25.1 defines as quoted-string / bare, per header kind. */
interface Quoting {
  readonly quoted: ReadonlySet<string>;
  readonly bare: ReadonlySet<string>;
}

// RFC 3261 §25.1 digest-cln, RFC 7616 §3.3.
const CHALLENGE_QUOTING: Quoting = {
  quoted: new Set(['realm', 'domain', 'nonce', 'opaque', 'qop']),
  bare: new Set(['algorithm', 'stale', 'userhash', 'charset']),
};
// RFC 3261 §25.1 dig-resp, RFC 7616 §3.4.
const CREDENTIALS_QUOTING: Quoting = {
  quoted: new Set(['username', 'realm', 'nonce', 'uri', 'response', 'cnonce', 'opaque']),
  bare: new Set(['algorithm', 'qop', 'nc', 'userhash', 'username*']),
};
// RFC 3261 §25.1 ainfo.
const AINFO_QUOTING: Quoting = {
  quoted: new Set(['nextnonce', 'rspauth', 'cnonce']),
  bare: new Set(['qop', 'nc']),
};

function formatAuthParam(p: Param, q: Quoting): string {
  const name = p.name.toLowerCase();
  let v = p.value ?? '';
  if (q.quoted.has(name)) {
    if (!isQuoted(v)) v = quote(v);
  } else if (q.bare.has(name) && isQuoted(v) && isToken(unquote(v))) {
    v = unquote(v);
  } else if (!isQuoted(v) && !isBareSafe(v)) {
    v = quote(v);
  }
  return p.name + '=' + v;
}

function formatAuth(
  scheme: string,
  params: Params,
  token68: string | undefined,
  q: Quoting,
): string {
  if (token68 !== undefined) return scheme + ' ' + token68;
  if (params.length === 0) return scheme;
  return scheme + ' ' + params.map((p) => formatAuthParam(p, q)).join(', ');
}

export function formatChallenge(v: Challenge): string {
  return formatAuth(v.scheme, v.params, v.token68, CHALLENGE_QUOTING);
}

export function formatCredentials(v: Credentials): string {
  return formatAuth(v.scheme, v.params, v.token68, CREDENTIALS_QUOTING);
}

export function formatAuthenticationInfo(v: AuthenticationInfo): string {
  return v.params.map((p) => formatAuthParam(p, AINFO_QUOTING)).join(', ');
}

/**
 * WWW-Authenticate (RFC 3261 §20.44). A list codec so that a message's
 * challenges are gathered across fields; format writes one field, so emit one
 * field per challenge when there are several (§20.44 has one per field).
 */
export const WwwAuthenticateHeader = defineCodec<readonly Challenge[]>({
  name: 'WWW-Authenticate',
  key: 'www-authenticate',
  list: true,
  parse: parseChallenges,
  format: (l) => l.map(formatChallenge).join(', '),
});

/** Proxy-Authenticate (RFC 3261 §20.27): as WWW-Authenticate. */
export const ProxyAuthenticateHeader = defineCodec<readonly Challenge[]>({
  name: 'Proxy-Authenticate',
  key: 'proxy-authenticate',
  list: true,
  parse: parseChallenges,
  format: (l) => l.map(formatChallenge).join(', '),
});

/**
 * Authorization (RFC 3261 §20.7): one credential per field; a request may carry
 * several fields, one per realm (§22.3), read through `fields`.
 */
export const AuthorizationHeader = defineCodec<Credentials>({
  name: 'Authorization',
  key: 'authorization',
  list: false,
  parse: parseCredentials,
  format: formatCredentials,
});

/** Proxy-Authorization (RFC 3261 §20.28): as Authorization. */
export const ProxyAuthorizationHeader = defineCodec<Credentials>({
  name: 'Proxy-Authorization',
  key: 'proxy-authorization',
  list: false,
  parse: parseCredentials,
  format: formatCredentials,
});

/** Authentication-Info (RFC 3261 §20.6). */
export const AuthenticationInfoHeader = defineCodec<AuthenticationInfo>({
  name: 'Authentication-Info',
  key: 'authentication-info',
  list: false,
  parse: parseAuthenticationInfo,
  format: formatAuthenticationInfo,
});
