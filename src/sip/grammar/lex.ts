/**
 * Small scanners shared by the header codecs. Header values reach them already
 * unfolded (RFC 3261 §7.3.1: a fold is equivalent to one SP), so LWS here is SP/HT.
 */

export const SP = 0x20;
export const HT = 0x09;
export const DQUOTE = 0x22;
export const BACKSLASH = 0x5c;

/** Skips SP and HT from `i`. */
export function skipWs(s: string, i: number): number {
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c !== SP && c !== HT) break;
    i++;
  }
  return i;
}

/** Index after trailing SP/HT are removed from s[start, end). */
export function trimEndWs(s: string, start: number, end: number): number {
  while (end > start) {
    const c = s.charCodeAt(end - 1);
    if (c !== SP && c !== HT) break;
    end--;
  }
  return end;
}

/** Trims SP and HT (only those: RFC 3261 LWS) from both ends. */
export function trimWs(s: string): string {
  const a = skipWs(s, 0);
  const b = trimEndWs(s, a, s.length);
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * Scans a quoted-string starting at the DQUOTE at `i` (RFC 3261 §25.1:
 * quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE). Returns the index
 * after the closing quote, or -1 when it is unterminated. quoted-pair excludes
 * CR and LF, which never reach here.
 */
export function scanQuoted(s: string, i: number): number {
  const n = s.length;
  i++;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === DQUOTE) return i + 1;
    if (c === BACKSLASH) {
      i += 2;
      continue;
    }
    i++;
  }
  return -1;
}

/** The content of a quoted-string (with its quotes), quoted-pairs resolved. */
export function unquote(q: string): string {
  if (q.length < 2 || q.charCodeAt(0) !== DQUOTE) return q;
  return unescapeQuotedPairs(q.slice(1, -1));
}

/** Resolves quoted-pairs in the content of a quoted-string (without its quotes). */
export function unescapeQuotedPairs(inner: string): string {
  if (inner.indexOf('\\') < 0) return inner;
  let out = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (c === '\\' && i + 1 < inner.length) {
      out += inner[i + 1];
      i++;
    } else out += c;
  }
  return out;
}

/** Makes a quoted-string of `s`, escaping DQUOTE and backslash (§25.1 quoted-pair). */
export function quote(s: string): string {
  return '"' + s.replace(/["\\]/g, (m) => '\\' + m) + '"';
}

/** Parses 1*DIGIT in s[start, end) as an integer, or returns -1 (also when above `max`). */
export function parseDigits(s: string, start: number, end: number, max: number): number {
  if (end <= start) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
    if (v > max) return -1;
  }
  return v;
}

/** Case-insensitive ASCII equality for tokens (§7.3.1: header and param names). */
export function equalsIgnoreCase(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  if (a === b) return true;
  for (let i = 0; i < a.length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 65 && x <= 90) x += 32;
    if (y >= 65 && y <= 90) y += 32;
    if (x !== y) return false;
  }
  return true;
}
