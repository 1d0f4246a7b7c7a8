/**
 * A cursor over one header value, for the hand-written codecs. Values reach the
 * codecs unfolded (RFC 3261 §7.3.1), so SWS and LWS here are runs of SP/HT.
 */
import { CHAR_CLASS, TOKEN } from './chars.ts';
import { scanQuoted } from './lex.ts';

export class Cursor {
  readonly s: string;
  i: number;
  readonly end: number;

  constructor(s: string, i = 0, end = s.length) {
    this.s = s;
    this.i = i;
    this.end = end;
  }

  atEnd(): boolean {
    return this.i >= this.end;
  }

  peek(): number {
    return this.i < this.end ? this.s.charCodeAt(this.i) : -1;
  }

  /** Skips SP/HT. */
  ws(): this {
    const s = this.s;
    let i = this.i;
    while (i < this.end) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x09) break;
      i++;
    }
    this.i = i;
    return this;
  }

  /** Consumes `SWS ch SWS` when the next non-space char is `ch`; else leaves the cursor and returns false. */
  sep(ch: number): boolean {
    const save = this.i;
    this.ws();
    if (this.peek() === ch) {
      this.i++;
      this.ws();
      return true;
    }
    this.i = save;
    return false;
  }

  /** Consumes a token and returns it ('' when none). */
  token(): string {
    const s = this.s;
    const start = this.i;
    let i = start;
    while (i < this.end) {
      const c = s.charCodeAt(i);
      if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0) break;
      i++;
    }
    this.i = i;
    return start === i ? '' : s.slice(start, i);
  }

  /** Consumes chars of class `bit` and returns them. */
  take(bit: number): string {
    const s = this.s;
    const start = this.i;
    let i = start;
    while (i < this.end) {
      const c = s.charCodeAt(i);
      if (c >= 128 || (CHAR_CLASS[c]! & bit) === 0) break;
      i++;
    }
    this.i = i;
    return s.slice(start, i);
  }

  /** Consumes a quoted-string (with quotes) or returns undefined when unterminated. */
  quoted(): string | undefined {
    const e = scanQuoted(this.s, this.i);
    if (e < 0 || e > this.end) return undefined;
    const out = this.s.slice(this.i, e);
    this.i = e;
    return out;
  }

  /** Consumes 1*DIGIT as a number; -1 when there is none or it exceeds `max`. */
  digits(max: number): number {
    const s = this.s;
    const start = this.i;
    let v = 0;
    let i = start;
    while (i < this.end) {
      const c = s.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      if (v <= max) v = v * 10 + c;
      i++;
    }
    this.i = i;
    if (i === start || v > max) return -1;
    return v;
  }

  rest(): string {
    return this.s.slice(this.i, this.end);
  }
}
