/**
 * Header parameters: `*( SEMI generic-param )` with generic-param =
 * token [ EQUAL gen-value ] and gen-value = token / host / quoted-string
 * (RFC 3261 §25.1). Host values include IPv6 references, bracketed or not
 * (RFC 5118 §4.5), so an unquoted value runs to the next separator.
 */
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
