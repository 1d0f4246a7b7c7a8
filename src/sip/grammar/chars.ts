/**
 * Character classes of RFC 3261 §25.1 as lookup tables over ASCII (STYLE §10).
 * Each class is a bit in one Uint16Array indexed by char code; code units >= 0x80
 * belong to no class (callers treat UTF-8 explicitly where the ABNF allows it).
 *
 * SIP's token is not HTTP's tchar: it excludes # $ & ^ | and includes % ` ' ~.
 */

const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const DIGIT = '0123456789';
const ALPHANUM_CHARS = ALPHA + DIGIT;

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
export const TOKEN = 1;
/**
 * word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" /
 *        "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
 * (the Call-ID alphabet, §25.1 callid = word [ "@" word ])
 */
export const WORD = 2;
/** unreserved = alphanum / mark; mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")" */
export const UNRESERVED = 4;
/** user = 1*( unreserved / escaped / user-unreserved );
 *  user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"   ("%" handled as escaped) */
export const USER = 8;
/** password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ) */
export const PASSWORD = 16;
/** paramchar = param-unreserved / unreserved / escaped;
 *  param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$" */
export const PARAMCHAR = 32;
/** hname / hvalue chars = hnv-unreserved / unreserved / escaped;
 *  hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$" */
export const HNVCHAR = 64;
/** alphanum = ALPHA / DIGIT */
export const ALPHANUM = 128;
/** HEXDIG = DIGIT / "A".."F" (ABNF strings are case-insensitive: a..f too) */
export const HEX = 256;
/** hostname characters: alphanum / "-" / "." (and "_", tolerated as deployed DNS uses it) */
export const HOSTCHAR = 512;
/** scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 §3.1), after the first char */
export const SCHEMECHAR = 1024;
/** WSP = SP / HTAB */
export const WSP = 2048;
/** ALPHA = %x41-5A / %x61-7A */
export const ALPHA_ONLY = 8192;
/** uric of RFC 2396 for absolute URIs of other schemes: reserved / unreserved / escaped, plus [ ] # */
export const URIC = 4096;

function build(): Uint16Array {
  const t = new Uint16Array(128);
  const add = (chars: string, bit: number): void => {
    for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)]! |= bit;
  };
  const mark = "-_.!~*'()";
  const unreserved = ALPHANUM_CHARS + mark;
  add(ALPHANUM_CHARS + "-.!%*_+`'~", TOKEN);
  add(ALPHANUM_CHARS + '-.!%*_+`\'~()<>:\\"/[]?{}', WORD);
  add(unreserved, UNRESERVED);
  add(unreserved + '&=+$,;?/', USER);
  add(unreserved + '&=+$,', PASSWORD);
  add(unreserved + '[]/:&+$', PARAMCHAR);
  add(unreserved + '[]/?:+$', HNVCHAR);
  add(ALPHANUM_CHARS, ALPHANUM);
  add(DIGIT + 'ABCDEFabcdef', HEX);
  add(ALPHANUM_CHARS + '-._', HOSTCHAR);
  add(ALPHANUM_CHARS + '+-.', SCHEMECHAR);
  add(' \t', WSP);
  add(ALPHA, ALPHA_ONLY);
  add(unreserved + ';/?:@&=+$,%[]#', URIC);
  return t;
}

/** The table: `CHAR_CLASS[code] & TOKEN` tests membership (code < 128). */
export const CHAR_CLASS: Readonly<Uint16Array> = build();

/** True when char code `c` is in class `bit`. */
export function is(c: number, bit: number): boolean {
  return c < 128 && (CHAR_CLASS[c]! & bit) !== 0;
}

/** Index of the first char at or after `i` that is not in class `bit`. */
export function scan(s: string, i: number, bit: number): number {
  const n = s.length;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (CHAR_CLASS[c]! & bit) === 0) break;
    i++;
  }
  return i;
}

/** True when all of `s` is in class `bit` and `s` is not empty. */
export function isAll(s: string, bit: number): boolean {
  return s.length > 0 && scan(s, 0, bit) === s.length;
}

/** True when `s` is a SIP token (RFC 3261 §25.1). */
export function isToken(s: string): boolean {
  return isAll(s, TOKEN);
}
