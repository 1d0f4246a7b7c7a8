/**
 * Header parameters: `*( SEMI generic-param )` with generic-param =
 * token [ EQUAL gen-value ] and gen-value = token / host / quoted-string
 * (RFC 3261 §25.1). Host values include IPv6 references, bracketed or not
 * (RFC 5118 §4.5), so an unquoted value runs to the next separator.
 */
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';
import type { Cursor } from '../grammar/cursor.ts';
import type { Param } from '../uri/params.ts';

const EMPTY: readonly Param[] = Object.freeze([]) as readonly Param[];

/**
 * Parses parameters at the cursor: each `SWS ";" SWS name [SWS "=" SWS value]`.
 * Stops before anything that is not ";" (such as "," or the end). Returns an error
 * string for an empty name or value, or an unterminated quoted-string.
 */
export function parseHeaderParams(c: Cursor): readonly Param[] | string {
  let out: Param[] | undefined;
  while (c.sep(0x3b)) {
    const name = c.token();
    if (name === '') return 'empty parameter';
    let value: string | null = null;
    if (c.sep(0x3d)) {
      if (c.peek() === 0x22) {
        const q = c.quoted();
        if (q === undefined) return 'unterminated quoted parameter value';
        value = q;
      } else {
        value = scanBareValue(c);
        if (value === '') return `empty value for parameter ${name}`;
      }
    }
    (out ??= []).push({ name, value });
  }
  return out ?? EMPTY;
}

function scanBareValue(c: Cursor): string {
  const s = c.s;
  const start = c.i;
  let i = start;
  while (i < c.end) {
    const ch = s.charCodeAt(i);
    // Stop at SP HT " ; , < > and controls.
    if (
      ch <= 0x20 ||
      ch === 0x22 ||
      ch === 0x3b ||
      ch === 0x2c ||
      ch === 0x3c ||
      ch === 0x3e ||
      ch === 0x7f
    ) {
      break;
    }
    i++;
  }
  c.i = i;
  return s.slice(start, i);
}

/**
 * Fast path for the common shape `;name=value;flag` with no whitespace, no
 * quoted value and nothing after the last parameter: returns the parameters of
 * s[i, end), or null when the text needs the general parser. Whatever it accepts,
 * parseHeaderParams accepts with the same result.
 */
export function parseSimpleParams(s: string, i: number, end: number): Param[] | null {
  const out: Param[] = [];
  while (i < end) {
    if (s.charCodeAt(i) !== 0x3b) return null;
    const ns = ++i;
    let c = 0;
    while (i < end) {
      c = s.charCodeAt(i);
      if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0) break;
      i++;
    }
    if (i === ns) return null;
    const name = s.slice(ns, i);
    if (i === end || c === 0x3b) {
      out.push({ name, value: null });
      continue;
    }
    if (c !== 0x3d) return null;
    const vs = ++i;
    while (i < end) {
      c = s.charCodeAt(i);
      if (c === 0x3b) break;
      // The general parser's bare value stops at SP HT " , < > and controls.
      if (c <= 0x20 || c === 0x22 || c === 0x2c || c === 0x3c || c === 0x3e || c === 0x7f)
        return null;
      i++;
    }
    if (i === vs) return null;
    out.push({ name, value: s.slice(vs, i) });
  }
  return out;
}
