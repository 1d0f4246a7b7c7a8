/**
 * Incremental framing of SIP messages on a byte stream (TCP, TLS; RFC 3261
 * §18.3: "In the case of stream-oriented transports such as TCP, the
 * Content-Length header field indicates the size of the body ... MUST be used").
 *
 * A state machine in the manner of ws' Receiver (STYLE §11): `idle` (between
 * messages; CRLF keep-alives of RFC 5626 §3.5.1 are reported), `head` (until the
 * empty line), `body` (until Content-Length octets). Every limit fails with its
 * own code. After an error the framer is `dead`: framing cannot be recovered on
 * a stream, so the connection is to be closed (after a 400/513 where one can be
 * sent).
 */
import { defaultLimits, type MessageLimits } from '../../base/limits.ts';
import { wireError, type SipParseError } from './errors.ts';

export type FramerEvent =
  | { readonly type: 'message'; readonly bytes: Uint8Array }
  /**
   * RFC 5626 §3.5.1: a "ping" is CRLFCRLF, answered with a "pong" CRLF. A lone
   * CRLF is reported as a pong; when it turns out to be the first half of a
   * ping split across reads, a ping follows.
   */
  | { readonly type: 'keepalive'; readonly kind: 'ping' | 'pong' }
  | {
      readonly type: 'error';
      readonly error: SipParseError;
      /** The header section read so far, when the error came after it (to answer 400). */
      readonly head?: Uint8Array;
    };

type State = 'idle' | 'head' | 'body' | 'dead';

const CR = 13;
const LF = 10;

export class StreamFramer {
  private readonly limits: MessageLimits;
  private buf = new Uint8Array(4096);
  private start = 0;
  private end = 0;
  private state: State = 'idle';
  /** In `head`: where the search for the empty line resumes. */
  private scanFrom = 0;
  /** In `body`: total message length (header section + body) from `start`. */
  private total = 0;
  /** A lone CRLF ended the previous read (a pong, or half a ping). */
  private halfPing = false;

  constructor(limits: MessageLimits = defaultLimits) {
    this.limits = limits;
  }

  /** True after an error: the stream cannot be framed any more. */
  get dead(): boolean {
    return this.state === 'dead';
  }

  /** Octets held that do not yet form a message. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Feeds octets; returns the events they complete, in order. */
  push(chunk: Uint8Array): FramerEvent[] {
    const out: FramerEvent[] = [];
    if (this.state === 'dead') return out;
    if (this.end - this.start + chunk.length > this.limits.maxBufferedBytes) {
      return this.die(out, wireError('SB_ERR_BUFFER_OVERFLOW'));
    }
    this.append(chunk);
    loop: for (;;) {
      switch (this.state as State) {
        case 'idle':
          if (!this.skipKeepalives(out)) break loop;
          this.state = 'head';
          this.scanFrom = this.start;
          continue;
        case 'head':
          if (!this.findHead(out)) break loop;
          continue;
        case 'body': {
          if (this.end - this.start < this.total) break loop;
          const bytes = this.buf.slice(this.start, this.start + this.total);
          this.start += this.total;
          this.state = 'idle';
          out.push({ type: 'message', bytes });
          continue;
        }
        case 'dead':
          break loop;
      }
    }
    if (this.start === this.end) {
      this.start = 0;
      this.end = 0;
    }
    return out;
  }

  private die(out: FramerEvent[], error: SipParseError, head?: Uint8Array): FramerEvent[] {
    this.state = 'dead';
    this.buf = new Uint8Array(0);
    this.start = 0;
    this.end = 0;
    out.push(head === undefined ? { type: 'error', error } : { type: 'error', error, head });
    return out;
  }

  private append(chunk: Uint8Array): void {
    const need = this.end + chunk.length;
    if (need > this.buf.length) {
      const live = this.end - this.start;
      if (live + chunk.length <= this.buf.length && this.start > 0) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let cap = this.buf.length;
        while (cap < live + chunk.length) cap *= 2;
        const next = new Uint8Array(cap);
        next.set(this.buf.subarray(this.start, this.end), 0);
        this.buf = next;
      }
      this.end = live;
      if (this.state === 'head') this.scanFrom -= this.start;
      this.start = 0;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** Consumes CR/LF between messages (RFC 3261 §7.5, RFC 5626 §3.5.1). True when a message starts. */
  private skipKeepalives(out: FramerEvent[]): boolean {
    const b = this.buf;
    while (this.start < this.end) {
      const c = b[this.start]!;
      if (c !== CR && c !== LF) {
        this.halfPing = false;
        return true;
      }
      // CRLF CRLF: a ping.
      if (
        c === CR &&
        this.end - this.start >= 4 &&
        b[this.start + 1] === LF &&
        b[this.start + 2] === CR &&
        b[this.start + 3] === LF
      ) {
        out.push({ type: 'keepalive', kind: 'ping' });
        this.start += 4;
        this.halfPing = false;
        continue;
      }
      if (c === CR && this.end - this.start >= 2 && b[this.start + 1] === LF) {
        if (this.end - this.start === 2) {
          // A CRLF alone at the end of what we have: a pong, or half of a ping.
          out.push(
            this.halfPing
              ? { type: 'keepalive', kind: 'ping' }
              : { type: 'keepalive', kind: 'pong' },
          );
          this.halfPing = !this.halfPing;
          this.start += 2;
          return false;
        }
        if (this.halfPing) out.push({ type: 'keepalive', kind: 'ping' });
        this.halfPing = false;
        this.start += 2;
        continue;
      }
      if (c === CR && this.end - this.start < 2) return false; // wait for the LF
      this.start += 1; // a stray LF or CR
    }
    return false;
  }

  /** Looks for the end of the header section; on success moves to `body`. */
  private findHead(out: FramerEvent[]): boolean {
    const b = this.buf;
    let i = Math.max(this.scanFrom, this.start);
    const stop = this.end;
    let headEnd = -1;
    for (; i < stop; i++) {
      if (b[i] !== LF) continue;
      if (i + 1 < stop && b[i + 1] === LF) {
        headEnd = i + 2;
        break;
      }
      if (i + 2 < stop && b[i + 1] === CR && b[i + 2] === LF) {
        headEnd = i + 3;
        break;
      }
      if (i + 2 >= stop) break; // cannot decide yet
    }
    if (headEnd < 0) {
      this.scanFrom = Math.max(this.start, i - 1);
      if (this.end - this.start > this.limits.maxHeaderBytes) {
        this.die(out, wireError('SB_ERR_HEADERS_TOO_LARGE'));
      }
      return false;
    }
    const headLen = headEnd - this.start;
    if (headLen > this.limits.maxHeaderBytes) {
      this.die(out, wireError('SB_ERR_HEADERS_TOO_LARGE'));
      return false;
    }
    const cl = readContentLength(b, this.start, headEnd);
    if (typeof cl !== 'number') {
      this.die(out, cl, b.slice(this.start, headEnd));
      return false;
    }
    if (cl > this.limits.maxBodyBytes) {
      this.die(out, wireError('SB_ERR_BODY_TOO_LARGE'), b.slice(this.start, headEnd));
      return false;
    }
    this.total = headLen + cl;
    this.state = 'body';
    return true;
  }
}

/**
 * The Content-Length of a header section, 0 when absent. Two fields, or a value
 * that is not 1*DIGIT, make the stream unframeable (RFC 4475 §3.1.2.3 ncl,
 * §3.3.9 mcl01: "the connection ... should be closed").
 */
function readContentLength(b: Uint8Array, start: number, end: number): number | SipParseError {
  let value = -1;
  let i = start;
  while (i < end) {
    let e = i;
    while (e < end && b[e] !== LF) e++;
    // Header name: "Content-Length" or "l", case-insensitive, optional WS before ":".
    const c0 = b[i]! | 0x20;
    if (c0 === 0x63 /* c */ || c0 === 0x6c /* l */) {
      let j = i;
      while (j < e && b[j] !== 0x3a && b[j] !== 0x20 && b[j] !== 0x09) j++;
      const nameLen = j - i;
      let isCl = false;
      if (nameLen === 1 && c0 === 0x6c) isCl = true;
      else if (nameLen === 14 && c0 === 0x63) {
        isCl = true;
        const lit = 'content-length';
        for (let k = 1; k < 14; k++) {
          if ((b[i + k]! | 0x20) !== lit.charCodeAt(k)) {
            isCl = false;
            break;
          }
        }
      }
      if (isCl) {
        while (j < e && (b[j] === 0x20 || b[j] === 0x09)) j++;
        if (b[j] === 0x3a) {
          j++;
          while (j < e && (b[j] === 0x20 || b[j] === 0x09)) j++;
          let v = 0;
          let digits = 0;
          while (j < e && b[j]! >= 0x30 && b[j]! <= 0x39) {
            v = v * 10 + (b[j]! - 0x30);
            digits++;
            j++;
          }
          while (j < e && (b[j] === 0x20 || b[j] === 0x09 || b[j] === CR)) j++;
          if (digits === 0 || j !== e || digits > 10) {
            return wireError(
              'SB_ERR_PARSE_CONTENT_LENGTH',
              'Content-Length is not 1*DIGIT',
              'Content-Length',
            );
          }
          if (value >= 0) {
            return wireError(
              'SB_ERR_DUPLICATE_HEADER',
              'more than one Content-Length header',
              'Content-Length',
            );
          }
          value = v;
        }
      }
    }
    i = e + 1;
  }
  return value < 0 ? 0 : value;
}
