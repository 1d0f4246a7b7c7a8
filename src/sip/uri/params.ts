/**
 * Generic parameters (RFC 3261 §25.1): `*( SEMI generic-param )` on headers, and
 * `uri-parameters` on SIP URIs. Names compare case-insensitively; values are kept
 * as written (a quoted-string keeps its quotes) so a re-serialized parameter is
 * byte-identical, and `paramValue` returns the decoded form.
 */
import { equalsIgnoreCase, unquote } from '../grammar/lex.ts';

export interface Param {
  /** The name as written. */
  readonly name: string;
  /** The value as written; null for a flag parameter without "=" (e.g. `;lr`). */
  readonly value: string | null;
}

export type Params = readonly Param[];

/** The first parameter named `name` (case-insensitive), or undefined. */
export function findParam(params: Params, name: string): Param | undefined {
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (equalsIgnoreCase(p.name, name)) return p;
  }
  return undefined;
}

/** True when a parameter named `name` is present (with or without a value). */
export function hasParam(params: Params, name: string): boolean {
  return findParam(params, name) !== undefined;
}

/**
 * The value of parameter `name`: undefined when absent, '' for a flag without a
 * value, else the value with its quotes removed.
 */
export function paramValue(params: Params, name: string): string | undefined {
  const p = findParam(params, name);
  if (p === undefined) return undefined;
  return p.value === null ? '' : unquote(p.value);
}

/** A copy with `name` set to `value` (replacing an existing one in place), or removed when value is undefined. */
export function withParam(params: Params, name: string, value: string | null | undefined): Param[] {
  const out: Param[] = [];
  let done = false;
  for (const p of params) {
    if (equalsIgnoreCase(p.name, name)) {
      if (!done && value !== undefined) out.push({ name: p.name, value });
      done = true;
    } else out.push(p);
  }
  if (!done && value !== undefined) out.push({ name, value });
  return out;
}

/** `;name=value;flag` */
export function formatParams(params: Params): string {
  let out = '';
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    out += p.value === null ? ';' + p.name : ';' + p.name + '=' + p.value;
  }
  return out;
}

/**
 * The parameters `;name[=value]...` of s[start, end), which the caller has
 * already checked (names and values hold no ";" and values no "="): cut at the
 * separators, with native searches.
 */
export function splitCheckedParams(s: string, start: number, end: number): Param[] {
  const out: Param[] = [];
  let i = start;
  while (i < end) {
    let next = s.indexOf(';', i + 1);
    if (next < 0 || next > end) next = end;
    const eq = s.indexOf('=', i + 1);
    if (eq >= 0 && eq < next) out.push({ name: s.slice(i + 1, eq), value: s.slice(eq + 1, next) });
    else out.push({ name: s.slice(i + 1, next), value: null });
    i = next;
  }
  return out;
}
