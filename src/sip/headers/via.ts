/**
 * Via (RFC 3261 §20.42, §25.1):
 *   via-parm = sent-protocol LWS sent-by *( SEMI via-params )
 *   sent-protocol = protocol-name SLASH protocol-version SLASH transport
 *   sent-by = host [ COLON port ]
 * with received (RFC 3261 §18.2.1; IPv6 with or without brackets per RFC 5118
 * §4.5) and rport (RFC 3581).
 */
import { err, ok, type Result } from '../../base/result.ts';
import { CHAR_CLASS, HEX, HOSTCHAR } from '../grammar/chars.ts';
import { Cursor } from '../grammar/cursor.ts';
import { equalsIgnoreCase, unquote } from '../grammar/lex.ts';
import { formatParams, splitCheckedParams, type Param, type Params } from '../uri/params.ts';
import { defineCodec } from './codec.ts';
import { parseHeaderParams } from './header-params.ts';

const NO_PARAMS: Params = Object.freeze([]) as Params;

export interface Via {
  /** protocol-name, normally "SIP". */
  readonly protocol: string;
  /** protocol-version, normally "2.0". */
  readonly version: string;
  /** transport, upper-cased: UDP, TCP, TLS, SCTP, WS, WSS or an other-transport token. */
  readonly transport: string;
  /** sent-by host as written (IPv6 references keep their brackets). */
  readonly host: string;
  readonly port?: number;
  readonly params: Params;
  /** branch parameter (§8.1.1.7); "z9hG4bK..." for RFC 3261 elements. */
  readonly branch?: string;
  /** received parameter (§18.2.1). */
  readonly received?: string;
  /** rport (RFC 3581): a number, or null when present without a value. */
  readonly rport?: number | null;
}

function parseViaAt(c: Cursor): Via | string {
  c.ws();
  const protocol = c.token();
  if (protocol === '' || !c.sep(0x2f)) return 'malformed sent-protocol';
  const version = c.token();
  if (version === '' || !c.sep(0x2f)) return 'malformed sent-protocol';
  const transport = c.token();
  if (transport === '') return 'missing transport';
  const before = c.i;
  c.ws();
  if (c.i === before) return 'expected LWS before sent-by';
  let host: string;
  const s = c.s;
  if (c.peek() === 0x5b) {
    const close = s.indexOf(']', c.i);
    if (close < 0 || close >= c.end) return 'unterminated IPv6 reference';
    for (let i = c.i + 1; i < close; i++) {
      const x = s.charCodeAt(i);
      if (x !== 0x3a && x !== 0x2e && (x >= 128 || (CHAR_CLASS[x]! & HEX) === 0)) {
        return 'invalid IPv6 reference';
      }
    }
    host = s.slice(c.i, close + 1);
    c.i = close + 1;
  } else {
    host = c.take(HOSTCHAR);
    if (host === '') return 'missing sent-by host';
  }
  let port: number | undefined;
  if (c.sep(0x3a)) {
    const p = c.digits(65535);
    if (p < 0) return 'invalid sent-by port';
    port = p;
  }
  const params = parseHeaderParams(c);
  if (typeof params === 'string') return params;
  return buildVia(protocol, version, transport, host, port, params);
}

function buildVia(
  protocol: string,
  version: string,
  transport: string,
  host: string,
  port: number | undefined,
  params: Params,
): Via | string {
  let branch: string | undefined;
  let received: string | undefined;
  let rport: number | null | undefined;
  for (let k = 0; k < params.length; k++) {
    const p: Param = params[k]!;
    const n = p.name;
    if (n.length === 6 && equalsIgnoreCase(n, 'branch')) {
      if (p.value === null) return 'branch without a value';
      branch = p.value;
    } else if (n.length === 8 && equalsIgnoreCase(n, 'received')) {
      if (p.value === null) return 'received without a value';
      received = unquote(p.value);
    } else if (n.length === 5 && equalsIgnoreCase(n, 'rport')) {
      if (p.value === null) rport = null;
      else {
        const v = Number(p.value);
        if (!/^\d{1,5}$/.test(p.value) || v > 65535) return 'invalid rport';
        rport = v;
      }
    }
  }
  // One object shape for every Via (all properties present) keeps V8's property access monomorphic.
  return {
    protocol,
    version,
    transport: isUpper(transport) ? transport : transport.toUpperCase(),
    host,
    port,
    params,
    branch,
    received,
    rport,
  };
}

/**
 * The common shape, `SIP/2.0/UDP host[:port];params` with single spaces and
 * parameters that parseSimpleParams accepts (a value runs to the next ";" and
 * holds no SP, HT, DQUOTE, ",", "<", ">" or control), matched whole in one step;
 * anything else takes the general parser. Groups: transport, host, port, parameters.
 */
const SIMPLE_VIA = new RegExp(
  '^SIP\\/2\\.0\\/([A-Za-z]+) ([A-Za-z0-9._-]+|\\[[0-9A-Fa-f:.]+\\])(?::(\\d{1,5}))?' +
    '((?:;[A-Za-z0-9\\-.!%*_+`\'~]+(?:=[^;\\x00-\\x20",<>\\x7f]+)?)*)$',
);

/**
 * Accepts only Via values that parseViaList accepts (a conservative subset of
 * the fast path's shape, including its checks on branch, received and rport),
 * without building anything: the parser uses it for the Via fields below the
 * first, which are then decoded when first read.
 */
const PORT = '(?:6553[0-5]|655[0-2]\\d|65[0-4]\\d{2}|6[0-4]\\d{3}|[1-5]\\d{4}|\\d{1,4})';
const VALUE = '[^;,\\s"<>\\x00-\\x1f\\x7f]+';
const VIA_PARAM =
  `;(?:branch=${VALUE}|received=${VALUE}|rport(?:=${PORT})?(?=;|$)|` +
  `(?!(?:branch|received|rport)(?:[=;]|$))[A-Za-z0-9\\-.!%*_+\`'~]+(?:=${VALUE})?)`;
const VALID_VIA = new RegExp(
  `^SIP\\/2\\.0\\/[A-Za-z]+ (?:[A-Za-z0-9._-]+|\\[[0-9A-Fa-f:.]+\\])(?::${PORT})?(?:${VIA_PARAM})*$`,
  'i',
);

/** True only for a single Via value that parseViaList accepts (see VALID_VIA). */
export function isSimpleValidVia(value: string): boolean {
  return VALID_VIA.test(value);
}

function parseSimpleVia(value: string): Via | string | null {
  const m = SIMPLE_VIA.exec(value);
  if (m === null) return null;
  const ps = m[4]!;
  const params = ps.length === 0 ? NO_PARAMS : splitCheckedParams(ps, 0, ps.length);
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && port > 65535) return null;
  return buildVia('SIP', '2.0', m[1]!, m[2]!, port, params);
}

function isUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const x = s.charCodeAt(i);
    if (x >= 97 && x <= 122) return false;
  }
  return true;
}

/** Parses one Via field value (one or more comma-separated via-parms). */
export function parseViaList(value: string): Result<readonly Via[], string> {
  const fast = parseSimpleVia(value);
  if (fast !== null) return typeof fast === 'string' ? err(fast) : ok([fast]);
  return parseViaListGeneral(value);
}

/** @internal The general Via parser (the fast path's reference in tests). */
export function parseViaListGeneral(value: string): Result<readonly Via[], string> {
  const c = new Cursor(value);
  const out: Via[] = [];
  for (;;) {
    const v = parseViaAt(c);
    if (typeof v === 'string') return err(v);
    out.push(v);
    c.ws();
    if (c.atEnd()) return ok(out);
    if (c.peek() !== 0x2c) return err(`unexpected text in Via: ${JSON.stringify(c.rest())}`);
    c.i++;
  }
}

/**
 * `via` with other parameters, its branch, received and rport read from them as the parser
 * reads them: what `formatVia` of the result parses back to. An error when a parameter
 * breaks a rule the parser checks (a branch or received without a value, a bad rport).
 */
export function viaWithParams(via: Via, params: Params): Via | string {
  return buildVia(via.protocol, via.version, via.transport, via.host, via.port, params);
}

export function formatVia(v: Via): string {
  let out = `${v.protocol}/${v.version}/${v.transport} ${v.host}`;
  if (v.port !== undefined) out += ':' + v.port;
  return out + formatParams(v.params);
}

export const ViaHeader = defineCodec<readonly Via[]>({
  name: 'Via',
  key: 'via',
  compact: 'v',
  list: true,
  parse: parseViaList,
  format: (list) => list.map(formatVia).join(', '),
});
