/**
 * Byte/string conversions on ECMAScript and WHATWG globals only, so base/ runs
 * unchanged in Node.js and in the browser softphone.
 *
 * SIP header text is UTF-8 (RFC 3261 §7.3.1, TEXT-UTF8), but a message off the
 * wire may carry octets that are not valid UTF-8 (RFC 4475 §3.1.1.2 puts NUL,
 * BEL and DEL in a quoted string). Such a header section is decoded one octet per
 * UTF-16 code unit ("binary"), and encoded back the same way, so a message that
 * is relayed keeps its exact bytes.
 */
interface TextDecoderLike {
  decode(input: Uint8Array): string;
}
interface TextEncoderLike {
  encode(input: string): Uint8Array;
  encodeInto(input: string, dest: Uint8Array): { read: number; written: number };
}
interface TextCodecGlobals {
  TextDecoder: new (label: string, options?: { fatal?: boolean }) => TextDecoderLike;
  TextEncoder: new () => TextEncoderLike;
}

const g = globalThis as unknown as TextCodecGlobals;
const strictUtf8 = new g.TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new g.TextDecoder('utf-8');
const encoder = new g.TextEncoder();

/** Decodes UTF-8, replacing invalid sequences with U+FFFD. */
export function utf8Decode(bytes: Uint8Array): string {
  return lenientUtf8.decode(bytes);
}

/** Encodes a string as UTF-8. */
export function utf8Encode(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Decodes UTF-8; returns undefined when the bytes are not valid UTF-8. */
export function utf8DecodeStrict(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * `key`, made to hold its own characters, for a string built by concatenation that outlives
 * the message its parts came from (a transaction key lives 64*T1 after the exchange, RFC 3261
 * §17.2.2 Timer J). V8 keeps a concatenation as the pair of its parts and a substring of 13
 * characters or more as a view of the string it was cut from, so a key built from header
 * values keeps the whole message text alive: about 600 bytes per completed MESSAGE
 * transaction. Reading a character of a pair makes V8 flatten it, in place, into one new
 * string; the parts and the text they viewed can then be collected. (A bare substring is not
 * a pair and is left as it is; on an engine without these representations this only reads a
 * character.) The result depends on the read, so that it is never optimised away: an empty
 * string reads NaN and gives '', itself.
 */
export function ownString(key: string): string {
  return key.charCodeAt(0) >= 0 ? key : '';
}

/**
 * A copy of `s` that views no other string: for a substring of a message's text (a tag, a
 * Call-ID, a header value) kept longer than the message, such as for the length of a call. A
 * substring of 13 characters or more is a view of the whole text it was cut from (see
 * `ownString`), so keeping one keeps the message, an INVITE with its SDP for the hours a call
 * may last. `' ' + s` is a new string or a pair; `ownString` makes the pair one new string of
 * its own; the slice views that copy (one character longer than `s`), never the message.
 */
export function ownCopy(s: string): string {
  return ownString(' ' + s).slice(1);
}

/** Decodes octets one to one into code units U+0000..U+00FF. */
export function binaryDecode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let out = '';
  // fromCharCode.apply on chunks: fast, and bounded in argument count.
  for (let i = start; i < end; i += 8192) {
    const stop = Math.min(end, i + 8192);
    out += String.fromCharCode.apply(null, bytes.subarray(i, stop) as unknown as number[]);
  }
  return out;
}

/** Encodes code units U+0000..U+00FF one to one into octets (the inverse of binaryDecode). */
export function binaryEncode(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 0xff;
  return out;
}

/** True when every code unit of `s` is below 0x80. */
export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Number of octets `s` takes in UTF-8. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Octets that live about as long as each other, carved one after another from shared chunks
 * instead of each getting an array of its own. An array of its own costs an ArrayBuffer: a
 * backing store allocated outside the heap, and work for the garbage collector when it is
 * promoted and when it dies (measured: 1.5 us for `TextEncoder.encode` of a 700-character
 * header, 0.3 us carved from a chunk). The price is that a chunk stays alive while any array
 * carved from it does, so an arena suits octets that are kept for a similar, bounded time (a
 * finished transaction's messages); at most one chunk is partly filled at a time, and a
 * message larger than a quarter of a chunk gets an array of its own.
 */
export class OctetArena {
  private chunk: Uint8Array | undefined;
  private used = 0;
  private readonly chunkSize: number;

  constructor(chunkSize = 64 * 1024) {
    this.chunkSize = chunkSize;
  }

  /** The UTF-8 of `text` followed by `tail`, in one array carved from a chunk. */
  encode(text: string, tail?: Uint8Array): Uint8Array {
    const tailLength = tail === undefined ? 0 : tail.length;
    // At least one octet per UTF-16 unit; larger messages get an array of their own.
    if (text.length + tailLength > this.chunkSize >> 2) {
      const head = encoder.encode(text);
      return tailLength === 0 ? head : concatBytes([head, tail!]);
    }
    let chunk = this.chunk;
    let r =
      chunk === undefined || this.used + text.length + tailLength > chunk.length
        ? undefined
        : encoder.encodeInto(text, chunk.subarray(this.used, chunk.length - tailLength));
    if (r === undefined || r.read < text.length) {
      // Full (or non-ASCII text that did not fit): a fresh chunk, which holds any text under a
      // quarter of its size (3 octets per UTF-16 unit at most).
      chunk = this.chunk = new Uint8Array(this.chunkSize);
      this.used = 0;
      r = encoder.encodeInto(text, chunk.subarray(0, chunk.length - tailLength));
    }
    const start = this.used;
    let end = start + r.written;
    if (tail !== undefined) {
      chunk!.set(tail, end);
      end += tailLength;
    }
    this.used = end;
    return chunk!.subarray(start, end);
  }

  /**
   * A copy of `bytes` carved from a chunk, as `encode('', bytes)` gives it, without the text
   * encoder's call and its views (a finished transaction copies each received request here).
   */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length;
    if (n > this.chunkSize >> 2) return bytes.slice();
    let chunk = this.chunk;
    if (chunk === undefined || this.used + n > chunk.length) {
      chunk = this.chunk = new Uint8Array(this.chunkSize);
      this.used = 0;
    }
    const start = this.used;
    chunk.set(bytes, start);
    this.used = start + n;
    return chunk.subarray(start, start + n);
  }
}
