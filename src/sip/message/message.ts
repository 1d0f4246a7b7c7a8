/**
 * The SIP message model (RFC 3261 §7): a request or a response, its header
 * fields in order, and its body as octets.
 *
 * Immutable: every change returns a new message that shares the unchanged
 * fields. Lazy: a header is decoded when first read, through its codec, and the
 * result is kept. A parsed message keeps its wire bytes, so one that is not
 * changed serializes to exactly the bytes received, and each field keeps its raw
 * text, so unknown headers pass through byte for byte.
 *
 * Two representations of the fields, one interface: a parsed message holds its
 * header section as one string plus an index of offsets (no object per field
 * until someone asks for `fields`); a built or changed message holds HeaderField
 * objects. See docs/architecture.md ("the message core").
 */
import { SwitchboardError } from '../../base/errors.ts';
import { err, ok, type Result } from '../../base/result.ts';
import { utf8Decode, utf8Encode } from '../../base/text.ts';
import type { HeaderCodec } from '../headers/codec.ts';
import {
  HeaderId,
  headerIdOfKey,
  headerKey,
  headerKeyOfId,
  knownSpellingKey,
} from '../headers/names.ts';
import { wireError, type SipParseError, type WireErrorCode } from '../parser/errors.ts';
import { CallIdHeader, ContentLengthHeader, MaxForwardsHeader } from '../headers/scalar.ts';
import { CSeqHeader, type CSeq } from '../headers/cseq.ts';
import { FromHeader, ToHeader } from '../headers/address.ts';
import type { NameAddr } from '../headers/name-addr.ts';
import { ViaHeader, type Via } from '../headers/via.ts';
import { formatUri, parseUri, type Uri } from '../uri/uri.ts';
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';

/** One header field line, in message order. */
export interface HeaderField {
  /** The name as written (may be a compact form). */
  readonly name: string;
  /** The lower-case canonical long name (see names.ts). */
  readonly key: string;
  /** The value, folds replaced by SP and SP/HT trimmed (RFC 3261 §7.3.1). */
  readonly value: string;
  /** The field's original text without its line end, for byte-exact output; undefined on fields built in code. */
  readonly raw: string | undefined;
}

/** A decoded field: the codec used and its result. */
export interface DecodedSlot {
  readonly codec: HeaderCodec<unknown>;
  readonly result: Result<unknown, string>;
}

/**
 * @internal The parser's field index over the header text: STRIDE numbers per
 * field — id (known header id, 0 unknown; +FOLDED when the field spans lines)
 * and line start. The other offsets (name end, value start and end, line end)
 * are found again from the line start when a field's text is read: most fields
 * of a message are never read, and two numbers per field keep the index small.
 */
export const STRIDE = 2;
export const FOLDED = 0x10000;

const SP = 0x20;
const HT = 0x09;
const CR = 13;
const LF = 10;

/**
 * @internal End of the field whose line starts at `start` (before its CRLF or
 * LF), continuation lines included (RFC 3261 §7.3.1): the parser's own rule.
 */
export function fieldLineStop(text: string, start: number): number {
  const limit = text.length;
  let e = text.indexOf('\n', start);
  if (e < 0) e = limit;
  while (e + 1 < limit) {
    const nx = text.charCodeAt(e + 1);
    if (nx !== SP && nx !== HT) break;
    const e2 = text.indexOf('\n', e + 1);
    e = e2 < 0 ? limit : e2;
  }
  return e > start && text.charCodeAt(e - 1) === CR ? e - 1 : e;
}

/** @internal End of the name of the field at `start`: before the colon and any SP/HT. */
export function fieldNameEnd(text: string, start: number): number {
  let n = text.indexOf(':', start);
  let c = text.charCodeAt(n - 1);
  while (n > start && (c === SP || c === HT)) c = text.charCodeAt(--n - 1);
  return n;
}

/** @internal Start of the value of the field at `start` (after the colon and LWS). */
export function fieldValueStart(text: string, start: number, lineStop: number): number {
  let vs = text.indexOf(':', start) + 1;
  let c: number;
  while (vs < lineStop && ((c = text.charCodeAt(vs)) === SP || c === HT || c === CR || c === LF)) {
    vs++;
  }
  return vs;
}

/** @internal End of the value: the line end without trailing LWS. */
export function fieldValueEnd(text: string, vs: number, lineStop: number): number {
  let ve = lineStop;
  let c: number;
  while (ve > vs && ((c = text.charCodeAt(ve - 1)) === SP || c === HT || c === CR || c === LF)) {
    ve--;
  }
  return ve;
}

/** @internal The value of the field at `start` as written (folds kept). */
function fieldValueText(text: string, start: number): string {
  const lineStop = fieldLineStop(text, start);
  const vs = fieldValueStart(text, start, lineStop);
  return text.slice(vs, fieldValueEnd(text, vs, lineStop));
}

/** @internal What the parser hands the message besides fields. */
export interface ParsedHeaders {
  readonly text: string;
  readonly index: readonly number[];
  /**
   * Per field position, a decoded value: the parser fills it for the critical
   * headers, with PARSER_CODECS of the field's id; later reads add to it.
   */
  readonly results: (Result<unknown, string> | undefined)[];
  /**
   * Per field position, the codec of `results` when it is not the parser's
   * (created by the first decode after parsing). Parallel arrays rather than an
   * object per field.
   */
  codecs: (HeaderCodec<unknown> | undefined)[] | undefined;
  /**
   * Per CRITICAL_SLOT, the position of the header's first field (-1 when
   * absent), which the parser decoded: the getters read it without a search.
   */
  readonly firsts: readonly number[];
}

/** @internal Slots of the critical headers in ParsedHeaders.firsts. */
export const CRITICAL_SLOT = {
  Via: 0,
  From: 1,
  To: 2,
  CallId: 3,
  CSeq: 4,
  MaxForwards: 5,
  ContentLength: 6,
} as const;

/** @internal The codec the parser decodes each critical header with, by header id. */
export const PARSER_CODECS: readonly (HeaderCodec<unknown> | undefined)[] = (() => {
  const t: (HeaderCodec<unknown> | undefined)[] = [];
  t[HeaderId.Via] = ViaHeader as HeaderCodec<unknown>;
  t[HeaderId.From] = FromHeader as HeaderCodec<unknown>;
  t[HeaderId.To] = ToHeader as HeaderCodec<unknown>;
  t[HeaderId.CallId] = CallIdHeader as HeaderCodec<unknown>;
  t[HeaderId.CSeq] = CSeqHeader as HeaderCodec<unknown>;
  t[HeaderId.MaxForwards] = MaxForwardsHeader as HeaderCodec<unknown>;
  t[HeaderId.ContentLength] = ContentLengthHeader as HeaderCodec<unknown>;
  return t;
})();

/** The header id of each CRITICAL_SLOT, in slot order. */
const CRITICAL_IDS: readonly number[] = [
  HeaderId.Via,
  HeaderId.From,
  HeaderId.To,
  HeaderId.CallId,
  HeaderId.CSeq,
  HeaderId.MaxForwards,
  HeaderId.ContentLength,
];

/**
 * Where the text a change copies ends: after the last field's line end. A received message's
 * text may run on through its body (the whole datagram, decoded once); a changed copy takes its
 * body from the octets, and its text need not carry the body along at every change.
 */
function headEnd(p: ParsedHeaders): number {
  const n = p.index.length;
  return n === 0 ? p.text.length : lineAfter(p.text, p.index[n - 1]!);
}

/** Where the line after the field at `start` begins: past its CRLF (or bare LF). */
function lineAfter(text: string, start: number): number {
  let end = fieldLineStop(text, start);
  if (text.charCodeAt(end) === CR) end++;
  if (text.charCodeAt(end) === LF) end++;
  return end;
}

/** The CRITICAL_SLOT of a header id, or -1. */
function criticalSlotOfId(id: number): number {
  return id === 0 ? -1 : CRITICAL_IDS.indexOf(id);
}

/** The codec that `p.results[k]` was decoded with (undefined when there is none). */
function resultCodec(p: ParsedHeaders, k: number): HeaderCodec<unknown> | undefined {
  if (p.results[k] === undefined) return undefined;
  return p.codecs?.[k] ?? PARSER_CODECS[p.index[k * STRIDE]! & 0xffff];
}

const CRITICAL_CODES: Readonly<Record<string, WireErrorCode>> = {
  via: 'SB_ERR_PARSE_VIA',
  from: 'SB_ERR_PARSE_FROM',
  to: 'SB_ERR_PARSE_TO',
  'call-id': 'SB_ERR_PARSE_CALL_ID',
  cseq: 'SB_ERR_PARSE_CSEQ',
  'max-forwards': 'SB_ERR_PARSE_MAX_FORWARDS',
  'content-length': 'SB_ERR_PARSE_CONTENT_LENGTH',
};

/** The error code for a malformed header of this key. */
export function headerErrorCode(key: string): WireErrorCode {
  return CRITICAL_CODES[key] ?? 'SB_ERR_PARSE_HEADER';
}

export interface MessageInit {
  /** Fields as objects (built or changed messages). */
  readonly fields?: readonly HeaderField[];
  /** @internal Fields as an index over the header text (parsed messages). */
  readonly parsed?: ParsedHeaders;
  readonly body?: Uint8Array;
  /** @internal The body as an offset into `wire` (parsed messages): sliced on first use. */
  readonly bodyStart?: number;
  /** Original bytes (exactly this message: no trailing datagram octets). */
  readonly wire?: Uint8Array;
  /** True when the header section was not valid UTF-8 and was decoded octet by octet. */
  readonly binary?: boolean;
}

const EMPTY_BODY = new Uint8Array(0);
const NO_FIELDS: readonly HeaderField[] = Object.freeze([]) as readonly HeaderField[];

function unfold(s: string): string {
  return s.replace(/[ \t]*\r?\n[ \t]+/g, ' ');
}

/**
 * @internal A field of a parsed message, materialized: it keeps the header text
 * and its offsets, and slices name, value and raw text only when read.
 */
class IndexedField implements HeaderField {
  private readonly text: string;
  private readonly ix: readonly number[];
  private readonly o: number;
  readonly key: string;

  constructor(text: string, ix: readonly number[], k: number) {
    this.text = text;
    this.ix = ix;
    this.o = k * STRIDE;
    const id = ix[this.o]! & 0xffff;
    this.key = id !== 0 ? headerKeyOfId(id) : this.name.toLowerCase();
  }

  get name(): string {
    const start = this.ix[this.o + 1]!;
    return this.text.slice(start, fieldNameEnd(this.text, start));
  }

  get value(): string {
    const v = fieldValueText(this.text, this.ix[this.o + 1]!);
    return (this.ix[this.o]! & FOLDED) !== 0 ? unfold(v) : v;
  }

  get raw(): string {
    const start = this.ix[this.o + 1]!;
    return this.text.slice(start, fieldLineStop(this.text, start));
  }

  toJSON(): HeaderField {
    return { name: this.name, key: this.key, value: this.value, raw: this.raw };
  }
}

/** @internal The k-th field of a parser index as an object. */
export function fieldFromIndex(text: string, ix: readonly number[], k: number): HeaderField {
  return new IndexedField(text, ix, k);
}

/** @internal Every field of a parser index as objects. */
export function fieldsFromIndex(text: string, ix: readonly number[]): HeaderField[] {
  const out: HeaderField[] = [];
  for (let k = 0; k < ix.length / STRIDE; k++) out.push(fieldFromIndex(text, ix, k));
  return out;
}

export abstract class SipMessage {
  private bodyBytes: Uint8Array | undefined;
  private readonly bodyStart: number;
  /** @internal the received bytes, kept while the message is unchanged */
  readonly wire: Uint8Array | undefined;
  /** True when the header text holds one octet per code unit (not valid UTF-8 on the wire). */
  readonly binary: boolean;
  private objs: readonly HeaderField[] | undefined;
  protected readonly parsed: ParsedHeaders | undefined;
  /** Decode cache per field position (object mode; parsed mode uses parsed.codecs/results). */
  private slots: (DecodedSlot | undefined)[] | undefined;
  /**
   * Object mode: each field's header id, worked out on the first look. Every header read
   * (`decode`, `positions`) compares ids field by field, and a message built in code (a
   * response, a forwarded request) is read several times: with a map lookup per field per
   * read, those lookups were 2.0% of a registration's CPU in a profile, 1.0% with this.
   */
  private objIds: Uint16Array | undefined;
  /**
   * @internal serializeMessage's octets of a message without `wire`, once made in an array of
   * their own (the message never changes, so they stay right). A transaction that keeps a final
   * response serializes it before it is sent, and the transport then sends these octets
   * instead of serializing the message a second time.
   */
  encoded: Uint8Array | undefined;

  protected constructor(init: MessageInit) {
    this.parsed = init.parsed;
    this.objs = init.parsed === undefined ? (init.fields ?? NO_FIELDS) : undefined;
    this.slots = undefined;
    this.objIds = undefined;
    this.encoded = undefined;
    this.bodyBytes = init.body;
    this.bodyStart = init.bodyStart ?? -1;
    this.wire = init.wire;
    this.binary = init.binary ?? false;
  }

  abstract isRequest(): this is SipRequest;
  abstract isResponse(): this is SipResponse;
  /** The start line without its line end. */
  abstract startLine(): string;
  /** @internal a copy with other fields/body (drops the wire bytes) */
  protected abstract copy(
    fields: readonly HeaderField[] | undefined,
    body: Uint8Array,
    parsed?: ParsedHeaders,
  ): this;

  // ---- field access (both representations) -----------------------------

  /** Number of header fields. */
  get size(): number {
    return this.parsed !== undefined ? this.parsed.index.length / STRIDE : this.objs!.length;
  }

  /** The header fields in order (materialized on first use for parsed messages). */
  get fields(): readonly HeaderField[] {
    if (this.objs === undefined) {
      const n = this.size;
      const out: HeaderField[] = new Array<HeaderField>(n);
      for (let k = 0; k < n; k++) out[k] = this.fieldAt(k);
      this.objs = out;
    }
    return this.objs;
  }

  /**
   * @internal serializeHead's field lines for a message still in the parser's text form (a
   * received message, maybe with its top Via stamped, RFC 3261 §18.2.1), without making an
   * object per field: one slice of the text from the first field to the last one's CRLF, and a
   * Content-Length line after it when there was none. Only when that gives the octets that
   * writing each field's raw line and a CRLF would: the lines follow one another, each ends in
   * CRLF, and the one Content-Length, unfolded, reads `bodyLength`. Undefined otherwise (and for
   * a message built in code), and serializeHead writes field by field.
   */
  headerLinesText(bodyLength: string): string | undefined {
    const p = this.parsed;
    if (p === undefined) return undefined;
    const { text, index } = p;
    const n = index.length / STRIDE;
    if (n === 0) return undefined;
    let hasLength = false;
    let next = index[1]!;
    for (let o = 0; o < index.length; o += STRIDE) {
      const start = index[o + 1]!;
      if (start !== next) return undefined;
      const stop = fieldLineStop(text, start);
      if (text.charCodeAt(stop) !== CR || text.charCodeAt(stop + 1) !== LF) return undefined;
      if ((index[o]! & 0xffff) === HeaderId.ContentLength) {
        if (hasLength || (index[o]! & FOLDED) !== 0) return undefined;
        hasLength = true;
        const vs = fieldValueStart(text, start, stop);
        const ve = fieldValueEnd(text, vs, stop);
        if (ve - vs !== bodyLength.length || !text.startsWith(bodyLength, vs)) return undefined;
      }
      next = stop + 2;
    }
    const lines = text.slice(index[1]!, next);
    return hasLength ? lines : lines + 'Content-Length: ' + bodyLength + '\r\n';
  }

  /** @internal The header id of field `k` (0 for a header without one). */
  fieldIdAt(k: number): number {
    return this.idAt(k);
  }

  /**
   * @internal Field `k` as an object, without making one for every field of a parsed message
   * (`fields` does): the fields' own object when they were made, else one for this field.
   */
  fieldObjectAt(k: number): HeaderField {
    return this.objs !== undefined ? this.objs[k]! : this.fieldAt(k);
  }

  private fieldAt(k: number): HeaderField {
    const p = this.parsed;
    return p === undefined ? this.objs![k]! : fieldFromIndex(p.text, p.index, k);
  }

  private idAt(k: number): number {
    const p = this.parsed;
    if (p !== undefined) return p.index[k * STRIDE]! & 0xffff;
    let ids = this.objIds;
    if (ids === undefined) {
      const objs = this.objs!;
      ids = new Uint16Array(objs.length);
      for (let i = 0; i < objs.length; i++) ids[i] = headerIdOfKey(objs[i]!.key);
      this.objIds = ids;
    }
    return ids[k]!;
  }

  private keyAt(k: number): string {
    const p = this.parsed;
    if (p === undefined) return this.objs![k]!.key;
    const id = p.index[k * STRIDE]! & 0xffff;
    if (id !== 0) return headerKeyOfId(id);
    const start = p.index[k * STRIDE + 1]!;
    return p.text.slice(start, fieldNameEnd(p.text, start)).toLowerCase();
  }

  private valueAt(k: number): string {
    const p = this.parsed;
    if (p === undefined) return this.objs![k]!.value;
    const ix = p.index;
    const o = k * STRIDE;
    const v = fieldValueText(p.text, ix[o + 1]!);
    return (ix[o]! & FOLDED) !== 0 ? unfold(v) : v;
  }

  private decodeAt<T>(k: number, codec: HeaderCodec<T>): Result<T, string> {
    const p = this.parsed;
    if (p !== undefined) {
      if (resultCodec(p, k) === codec) return p.results[k] as Result<T, string>;
      const result = codec.parse(this.valueAt(k));
      (p.codecs ??= [])[k] = codec as HeaderCodec<unknown>;
      p.results[k] = result;
      return result;
    }
    const cache = (this.slots ??= []);
    const slot = cache[k];
    if (slot !== undefined && slot.codec === codec) return slot.result as Result<T, string>;
    const result = codec.parse(this.valueAt(k));
    cache[k] = { codec: codec as HeaderCodec<unknown>, result };
    return result;
  }

  // ---- raw access -------------------------------------------------------

  /** The first field's value for a header name (any spelling, compact forms included). */
  getRaw(name: string): string | undefined {
    const key = headerKey(name);
    const k = this.nextAt(key, headerIdOfKey(key), 0);
    return k < 0 ? undefined : this.valueAt(k);
  }

  /** Every field value for a header name, in order. */
  getRawAll(name: string): string[] {
    const key = headerKey(name);
    const id = headerIdOfKey(key);
    const out: string[] = [];
    for (let k = this.nextAt(key, id, 0); k >= 0; k = this.nextAt(key, id, k + 1)) {
      out.push(this.valueAt(k));
    }
    return out;
  }

  has(name: string): boolean {
    const key = headerKey(name);
    return this.nextAt(key, headerIdOfKey(key), 0) >= 0;
  }

  /**
   * The position of the first field with this key (and its header id) at or after `from`, or
   * -1 (no array made).
   */
  private nextAt(key: string, id: number, from: number): number {
    const n = this.size;
    const p = this.parsed;
    if (p !== undefined && id !== 0) {
      const ix = p.index;
      for (let k = from; k < n; k++) if ((ix[k * STRIDE]! & 0xffff) === id) return k;
      return -1;
    }
    if (id !== 0) {
      for (let k = from; k < n; k++) if (this.idAt(k) === id) return k;
    } else {
      for (let k = from; k < n; k++) if (this.keyAt(k) === key) return k;
    }
    return -1;
  }

  /** Number of fields with this name. */
  count(name: string): number {
    const key = headerKey(name);
    const id = headerIdOfKey(key);
    let n = 0;
    for (let k = this.nextAt(key, id, 0); k >= 0; k = this.nextAt(key, id, k + 1)) n++;
    return n;
  }

  // ---- typed access -----------------------------------------------------

  /**
   * Decodes a header through its codec. For a list codec the elements of every
   * field are joined in order. Undefined when the header is absent; an error
   * when a field is malformed.
   */
  decode<T>(codec: HeaderCodec<T>): Result<T, SipParseError> | undefined {
    const id = codec.id ?? headerIdOfKey(codec.key);
    const n = this.size;
    // A parsed message's index is scanned directly for a known header.
    const ix = id !== 0 ? this.parsed?.index : undefined;
    let first: T | undefined;
    let joined: unknown[] | undefined;
    for (let k = 0; k < n; k++) {
      if (ix !== undefined) {
        if ((ix[k * STRIDE]! & 0xffff) !== id) continue;
      } else if (id !== 0 ? this.idAt(k) !== id : this.keyAt(k) !== codec.key) continue;
      const r = this.decodeAt(k, codec);
      if (!r.ok) {
        return err(wireError(headerErrorCode(codec.key), `${codec.name}: ${r.error}`, codec.name));
      }
      if (!codec.list) return r;
      if (first === undefined) first = r.value;
      else {
        joined ??= [...(first as unknown as unknown[])];
        for (const e of r.value as unknown as unknown[]) joined.push(e);
      }
    }
    if (first === undefined) return undefined;
    return ok((joined ?? first) as T);
  }

  /** The decoded header, or undefined when absent or malformed (see `decode` for the error). */
  get<T>(codec: HeaderCodec<T>): T | undefined {
    const r = this.decode(codec);
    return r !== undefined && r.ok ? r.value : undefined;
  }

  private required<T>(codec: HeaderCodec<T>): T {
    const r = this.decode(codec);
    if (r === undefined) throw new SwitchboardError('SB_ERR_HEADER_ABSENT', codec.name);
    if (!r.ok) throw new SwitchboardError('SB_ERR_HEADER_UNDECODABLE', r.error.detail);
    return r.value;
  }

  /**
   * A header that the parser decoded (critical, single-valued) and that may be
   * absent: the parser's result without a search by key, else `get`.
   */
  private decodedOrAbsent<T>(slot: number, codec: HeaderCodec<T>): T | undefined {
    const p = this.parsed;
    if (p !== undefined) {
      const k = p.firsts[slot]!;
      if (k < 0) return undefined;
      const r = p.results[k];
      if (r !== undefined && r.ok && resultCodec(p, k) === codec) return r.value as T;
    }
    return this.get(codec);
  }

  /** The first field of a single-valued critical header, by slot (fast path of the getters). */
  private single<T>(slot: number, codec: HeaderCodec<T>): T {
    const p = this.parsed;
    if (p !== undefined) {
      const k = p.firsts[slot]!;
      const r = k >= 0 ? p.results[k] : undefined;
      if (r !== undefined && r.ok && resultCodec(p, k) === codec) return r.value as T;
    }
    return this.required(codec);
  }

  /** All Via values, topmost first. A parsed message always has one. */
  get via(): readonly Via[] {
    return this.required(ViaHeader);
  }

  /** The topmost Via (RFC 3261 §8.1.1.7, §18.2.2). */
  get topVia(): Via {
    return this.single(CRITICAL_SLOT.Via, ViaHeader)[0]!;
  }

  get from(): NameAddr {
    return this.single(CRITICAL_SLOT.From, FromHeader);
  }

  get to(): NameAddr {
    return this.single(CRITICAL_SLOT.To, ToHeader);
  }

  get callId(): string {
    return this.single(CRITICAL_SLOT.CallId, CallIdHeader);
  }

  get cseq(): CSeq {
    return this.single(CRITICAL_SLOT.CSeq, CSeqHeader);
  }

  /** Max-Forwards, or undefined when absent (RFC 2543 senders omit it). */
  get maxForwards(): number | undefined {
    return this.decodedOrAbsent(CRITICAL_SLOT.MaxForwards, MaxForwardsHeader);
  }

  /** Content-Length as declared, or undefined when absent. */
  get contentLength(): number | undefined {
    return this.decodedOrAbsent(CRITICAL_SLOT.ContentLength, ContentLengthHeader);
  }

  /** The body octets (empty when there is none). */
  get body(): Uint8Array {
    if (this.bodyBytes === undefined) {
      this.bodyBytes =
        this.bodyStart >= 0 && this.wire !== undefined
          ? this.wire.subarray(this.bodyStart)
          : EMPTY_BODY;
    }
    return this.bodyBytes;
  }

  /** The body as text (UTF-8). */
  bodyText(): string {
    return utf8Decode(this.body);
  }

  // ---- changes (each returns a new message) ------------------------------

  /**
   * A copy with these fields. What this message decoded of the fields the copy keeps (the
   * same field objects) is carried over: a proxy changes a request in a few fields
   * (Max-Forwards, Route, Via, Record-Route, RFC 3261 §16.6) and the transport stamps the
   * top Via (§18.2.1), and each change used to decode From, To, CSeq, the Vias ... again in
   * the copy (15 header parses per proxied call).
   */
  private with(fields: readonly HeaderField[], body: Uint8Array = this.body): this {
    return this.keepDecoded(this.copy(fields, body), fields);
  }

  /**
   * @internal `m`, a copy of this message with `fields` (or a message built from some of its
   * fields: a response, `createResponse`), given what this message knows of the fields
   * they share (the same objects): what they decoded to, and their header ids (which every
   * header read compares, and which cost a map lookup per field to work out again).
   * `positions`, when given, says where each of `fields` is in this message (-1: a new field)
   * instead of a search by object, so that a caller need not make every field an object.
   */
  keepDecoded<M extends SipMessage>(
    m: M,
    fields: readonly HeaderField[],
    positions?: readonly number[],
  ): M {
    const old = this.objs;
    if (old === undefined && positions === undefined) return m;
    const p = this.parsed;
    const mine = this.slots;
    const oldIds = this.objIds;
    const ids = new Uint16Array(fields.length);
    let slots: (DecodedSlot | undefined)[] | undefined;
    // Changes keep the order of the fields they keep, so the search goes on from the last
    // match; a field not found (a new one) leaves it where it was.
    let from = 0;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      let at = -1;
      if (positions !== undefined) at = positions[i]!;
      else {
        for (let s = from; s < old!.length; s++) {
          if (old![s] === f) {
            at = s;
            break;
          }
        }
      }
      if (at < 0) {
        ids[i] = headerIdOfKey(f.key);
        continue;
      }
      from = at + 1;
      let slot: DecodedSlot | undefined;
      if (p !== undefined) {
        ids[i] = p.index[at * STRIDE]! & 0xffff;
        const codec = resultCodec(p, at);
        if (codec !== undefined) slot = { codec, result: p.results[at]! };
      } else {
        ids[i] = oldIds !== undefined ? oldIds[at]! : headerIdOfKey(f.key);
        slot = mine?.[at];
      }
      if (slot !== undefined)
        (slots ??= new Array<DecodedSlot | undefined>(fields.length))[i] = slot;
    }
    m.objIds = ids;
    m.slots = slots;
    return m;
  }

  /** Appends a field. */
  append(name: string, value: string): this {
    return this.with([...this.fields, makeField(name, value)]);
  }

  /** Inserts a field before the first field of the same header (or first of all). */
  prepend(name: string, value: string): this {
    const f = makeField(name, value);
    const p = this.parsed;
    if (p !== undefined && p.index.length > 0) {
      const id = headerIdOfKey(f.key);
      const at = this.nextAt(f.key, id, 0);
      return this.insertedInText(p, at < 0 ? 0 : at, `${f.name}: ${f.value}`, id);
    }
    const fields = [...this.fields];
    let idx = 0;
    while (idx < fields.length && fields[idx]!.key !== f.key) idx++;
    fields.splice(idx === fields.length ? 0 : idx, 0, f);
    return this.with(fields);
  }

  /** Replaces every field of this header with one field (at the first one's place), or appends it. */
  set(name: string, value: string): this {
    const f = makeField(name, value);
    const p = this.parsed;
    if (p !== undefined) {
      // One field of the header (Max-Forwards, §16.6 step 3): its line is written anew in place.
      const id = headerIdOfKey(f.key);
      const k = this.nextAt(f.key, id, 0);
      if (k >= 0 && this.nextAt(f.key, id, k + 1) < 0) {
        return this.lineReplacedInText(p, k, `${f.name}: ${f.value}`);
      }
    }
    const fields: HeaderField[] = [];
    let placed = false;
    for (const x of this.fields) {
      if (x.key !== f.key) fields.push(x);
      else if (!placed) {
        fields.push(f);
        placed = true;
      }
    }
    if (!placed) fields.push(f);
    return this.with(fields);
  }

  /** Removes every field of this header. */
  remove(name: string): this {
    const key = headerKey(name);
    const p = this.parsed;
    if (p !== undefined) {
      const id = headerIdOfKey(key);
      return this.removedInText(p, (k) => (id !== 0 ? this.idAt(k) === id : this.keyAt(k) === key));
    }
    return this.with(this.fields.filter((x) => x.key !== key));
  }

  /**
   * @internal A copy with the value of field `k` replaced (same name, same place); what the
   * other fields decoded to is carried over (see `with`). `decoded`, when given, is what the
   * new value decodes to with `codec`: the caller built the value from it (the top Via a
   * transport stamps, RFC 3261 §18.2.1), and it need not be parsed again.
   */
  replaceAt<T>(k: number, value: string, codec?: HeaderCodec<T>, decoded?: T): this {
    const p = this.parsed;
    if (p !== undefined) return this.replacedInText(p, k, value, codec, decoded);
    const fields = [...this.fields];
    fields[k] = makeField(fields[k]!.name, value);
    const m = this.with(fields);
    if (codec !== undefined && decoded !== undefined) {
      (m.slots ??= new Array<DecodedSlot | undefined>(fields.length))[k] = {
        codec: codec as HeaderCodec<unknown>,
        result: ok(decoded),
      };
    }
    return m;
  }

  /**
   * The text form's other changes (RFC 3261 §16.6: a proxy prepends Via and Record-Route,
   * rewrites Max-Forwards, drops its own credentials; §16.7 step 3: it drops the top Via of a
   * response), like `replacedInText`: a copy of the header text with the lines changed, the
   * index shifted, and what the other fields decoded kept. A forwarded message then makes no
   * object per field, and serializeHead writes it as one slice of its text.
   */
  private insertedInText(p: ParsedHeaders, at: number, line: string, id: number): this {
    const o = at * STRIDE;
    const lineStart = p.index[o + 1]!;
    const add = line + '\r\n';
    const text = p.text.slice(0, lineStart) + add + p.text.slice(lineStart, headEnd(p));
    const n = p.index.length;
    const index = new Array<number>(n + STRIDE);
    for (let j = 0; j < o; j++) index[j] = p.index[j]!;
    index[o] = id;
    index[o + 1] = lineStart;
    for (let j = o; j < n; j += STRIDE) {
      index[j + STRIDE] = p.index[j]!;
      index[j + STRIDE + 1] = p.index[j + 1]! + add.length;
    }
    const results = p.results.slice();
    results.splice(at, 0, undefined);
    let codecs: (HeaderCodec<unknown> | undefined)[] | undefined;
    if (p.codecs !== undefined) {
      codecs = p.codecs.slice();
      if (codecs.length > at) codecs.splice(at, 0, undefined);
    }
    const firsts = p.firsts.map((k) => (k >= at ? k + 1 : k));
    // The new field is its header's first (it went before the others): read when asked.
    const slot = criticalSlotOfId(id);
    if (slot >= 0) firsts[slot] = at;
    return this.copy(undefined, this.body, { text, index, results, codecs, firsts });
  }

  /** Field `k`'s line (continuation lines included) replaced by `line`. */
  private lineReplacedInText(p: ParsedHeaders, k: number, line: string): this {
    const start = p.index[k * STRIDE + 1]!;
    return this.splicedInText(
      p,
      k,
      start,
      fieldLineStop(p.text, start),
      line,
      undefined,
      undefined,
    );
  }

  /** The fields for which `drop` holds removed, with their lines. */
  private removedInText(p: ParsedHeaders, drop: (k: number) => boolean): this {
    const src = p.text;
    const n = p.index.length / STRIDE;
    const index: number[] = [];
    const results: (Result<unknown, string> | undefined)[] = [];
    const codecs: (HeaderCodec<unknown> | undefined)[] | undefined =
      p.codecs !== undefined ? [] : undefined;
    /** Old position to new (-1: removed). */
    const moved = new Array<number>(n);
    let text = '';
    let copied = 0;
    let shift = 0;
    for (let k = 0; k < n; k++) {
      const o = k * STRIDE;
      const start = p.index[o + 1]!;
      if (drop(k)) {
        const end = lineAfter(src, start);
        text += src.slice(copied, start);
        copied = end;
        shift += end - start;
        moved[k] = -1;
        continue;
      }
      moved[k] = index.length / STRIDE;
      index.push(p.index[o]!, start - shift);
      results.push(p.results[k]);
      codecs?.push(p.codecs![k]);
    }
    if (copied === 0 && shift === 0) return this.copy(undefined, this.body, p);
    text += src.slice(copied, Math.max(copied, headEnd(p)));
    const firsts = p.firsts.map((k, slot) => {
      if (k < 0) return -1;
      if (moved[k]! >= 0) return moved[k]!;
      // That first field went: the header's next field is its first now (or none is left).
      const id = CRITICAL_IDS[slot]!;
      for (let j = 0; j < index.length; j += STRIDE) {
        if ((index[j]! & 0xffff) === id) return j / STRIDE;
      }
      return -1;
    });
    return this.copy(undefined, this.body, { text, index, results, codecs, firsts });
  }

  /**
   * `replaceAt` for a parsed message, which stays one: the new value is written into a copy
   * of the header text, and the index is shifted past it. Nothing is materialized, and what
   * the parser and later reads decoded is kept (the results of the other fields are the same
   * objects). A received request is changed this way in one field on every arrival (the top
   * Via, RFC 3261 §18.2.1), where a copy in object form cost 8 µs.
   */
  private replacedInText<T>(
    p: ParsedHeaders,
    k: number,
    value: string,
    codec: HeaderCodec<T> | undefined,
    decoded: T | undefined,
  ): this {
    const v = fieldValue(this.keyAt(k), value);
    const o = k * STRIDE;
    const start = p.index[o + 1]!;
    const lineStop = fieldLineStop(p.text, start);
    const vs = fieldValueStart(p.text, start, lineStop);
    const ve = fieldValueEnd(p.text, vs, lineStop);
    // A folded field becomes one line: its value is replaced up to the end of its last line.
    const end = (p.index[o]! & FOLDED) !== 0 ? lineStop : ve;
    return this.splicedInText(p, k, vs, end, v, codec, decoded);
  }

  /**
   * Field `k`'s text from `from` to `to` replaced by `insert` (no line break in it), the later
   * fields' offsets shifted; what field `k` decodes to is `decoded` with `codec` when given,
   * else read again when asked.
   */
  private splicedInText<T>(
    p: ParsedHeaders,
    k: number,
    from: number,
    to: number,
    insert: string,
    codec: HeaderCodec<T> | undefined,
    decoded: T | undefined,
  ): this {
    const o = k * STRIDE;
    const text = p.text.slice(0, from) + insert + p.text.slice(to, headEnd(p));
    const delta = insert.length - (to - from);
    const index = p.index.slice();
    index[o] = index[o]! & ~FOLDED;
    for (let j = o + STRIDE + 1; j < index.length; j += STRIDE) index[j]! += delta;
    const results = p.results.slice();
    let codecs = p.codecs?.slice();
    if (codec !== undefined && decoded !== undefined) {
      results[k] = ok(decoded);
      if (codec !== PARSER_CODECS[index[o]! & 0xffff]) {
        (codecs ??= [])[k] = codec as HeaderCodec<unknown>;
      } else if (codecs !== undefined) codecs[k] = undefined;
    } else {
      results[k] = undefined;
      if (codecs !== undefined) codecs[k] = undefined;
    }
    return this.copy(undefined, this.body, { text, index, results, codecs, firsts: p.firsts });
  }

  /** @internal Field `k` decoded with `codec`; undefined when there is none or it is malformed. */
  decodeField<T>(k: number, codec: HeaderCodec<T>): T | undefined {
    if (k < 0 || k >= this.size) return undefined;
    const r = this.decodeAt(k, codec);
    return r.ok ? r.value : undefined;
  }

  /** @internal The position of the first field with this key, or -1. */
  firstAt(key: string): number {
    return this.nextAt(key, headerIdOfKey(key), 0);
  }

  /**
   * Removes the first element of a list header: the topmost Via (§16.7 step 3)
   * or the first Route (§16.4). The rest of that field is re-formatted.
   */
  removeFirst<E>(codec: HeaderCodec<readonly E[]>): this {
    const p = this.parsed;
    if (p !== undefined) {
      const idx = this.nextAt(codec.key, codec.id ?? headerIdOfKey(codec.key), 0);
      if (idx < 0) return this;
      const r = this.decodeAt(idx, codec);
      if (!r.ok || r.value.length <= 1) return this.removedInText(p, (k) => k === idx);
      const rest = r.value.slice(1);
      return this.replacedInText(p, idx, codec.format(rest), codec, rest);
    }
    const fields = [...this.fields];
    let idx = 0;
    while (idx < fields.length && fields[idx]!.key !== codec.key) idx++;
    if (idx === fields.length) return this;
    const r = this.decodeAt(idx, codec);
    if (!r.ok || r.value.length <= 1) fields.splice(idx, 1);
    else fields[idx] = makeField(fields[idx]!.name, codec.format(r.value.slice(1)));
    return this.with(fields);
  }

  /** Replaces the body; sets Content-Type when given, and Content-Length always. */
  withBody(body: Uint8Array | string, contentType?: string): this {
    const bytes = typeof body === 'string' ? utf8Encode(body) : body;
    let m = this.with(this.fields, bytes);
    if (contentType !== undefined) m = m.set('Content-Type', contentType);
    else if (bytes.length === 0) m = m.remove('Content-Type');
    return m.set('Content-Length', String(bytes.length));
  }
}

/** A header field built in code; validates the name and that the value holds no line break. */
export function makeField(name: string, value: string): HeaderField {
  // A known spelling (nearly every field built in code) is a token already.
  let key = knownSpellingKey(name);
  if (key === undefined) {
    if (name.length === 0) throw new SwitchboardError('SB_ERR_INVALID_HEADER_NAME', '(empty)');
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0) {
        throw new SwitchboardError('SB_ERR_INVALID_HEADER_NAME', name);
      }
    }
    key = headerKey(name);
  }
  return { name, key, value: fieldValue(name, value), raw: undefined };
}

/** A field value built in code, trimmed: one that holds a line break would forge header fields. */
function fieldValue(name: string, value: string): string {
  if (value.indexOf('\n') >= 0 || value.indexOf('\r') >= 0) {
    throw new SwitchboardError('SB_ERR_INVALID_HEADER_VALUE', name);
  }
  return value.trim();
}

/**
 * @internal The init objects of the hot paths (parser, changes) all have one
 * shape, so the constructors' property loads stay monomorphic.
 */
export function requestInit(
  method: string,
  uri: Uri | undefined,
  uriText: string,
  version: string,
  parsed: ParsedHeaders | undefined,
  fields: readonly HeaderField[] | undefined,
  body: Uint8Array | undefined,
  bodyStart: number,
  wire: Uint8Array | undefined,
  binary: boolean,
): RequestInit {
  return { method, uri, uriText, version, parsed, fields, body, bodyStart, wire, binary };
}

/** @internal See requestInit. */
export function responseInit(
  status: number,
  reason: string,
  version: string,
  parsed: ParsedHeaders | undefined,
  fields: readonly HeaderField[] | undefined,
  body: Uint8Array | undefined,
  bodyStart: number,
  wire: Uint8Array | undefined,
  binary: boolean,
): ResponseInit {
  return { status, reason, version, parsed, fields, body, bodyStart, wire, binary };
}

export interface RequestInit extends MessageInit {
  readonly method: string;
  /** The Request-URI; may be left out when `uriText` is given (it is then parsed on first use). */
  readonly uri?: Uri | undefined;
  /** The Request-URI as written; formatted from `uri` when absent. */
  readonly uriText?: string;
  readonly version?: string;
}

export class SipRequest extends SipMessage {
  /** Method token, case-sensitive (RFC 3261 §7.1). */
  readonly method: string;
  private parsedUri: Uri | undefined;
  readonly uriText: string;
  readonly version: string;

  constructor(init: RequestInit) {
    super(init);
    this.method = init.method;
    if (init.uri === undefined && init.uriText === undefined) {
      throw new SwitchboardError('SB_ERR_INVALID_ARGUMENT', 'a request needs uri or uriText');
    }
    this.parsedUri = init.uri;
    this.uriText = init.uriText ?? formatUri(init.uri!);
    this.version = init.version ?? 'SIP/2.0';
  }

  /**
   * The Request-URI. A parsed request whose Request-URI passed the parser's
   * check decodes it here, on first use.
   */
  get uri(): Uri {
    if (this.parsedUri === undefined) {
      const r = parseUri(this.uriText);
      if (!r.ok) throw new SwitchboardError('SB_ERR_INVALID_URI', `${this.uriText}: ${r.error}`);
      this.parsedUri = r.value;
    }
    return this.parsedUri;
  }

  isRequest(): this is SipRequest {
    return true;
  }

  isResponse(): this is SipResponse {
    return false;
  }

  startLine(): string {
    return `${this.method} ${this.uriText} ${this.version}`;
  }

  protected copy(
    fields: readonly HeaderField[] | undefined,
    body: Uint8Array,
    parsed?: ParsedHeaders,
  ): this {
    return new SipRequest(
      requestInit(
        this.method,
        // Decoded or not, as it is: a copy reads the Request-URI no sooner than its original.
        this.parsedUri,
        this.uriText,
        this.version,
        parsed,
        parsed === undefined ? fields : undefined,
        body,
        -1,
        undefined,
        this.binary,
      ),
    ) as this;
  }

  /** A copy with another Request-URI (§16.6 step 2, §16.12 strict-route fix-up). */
  withUri(uri: Uri): SipRequest {
    // A parsed request's copy shares its header text and what was decoded of it (the start line
    // is written from method, Request-URI and version, never read from the text); one in object
    // form shares its field objects.
    const p = this.parsed;
    const fields = p === undefined ? this.fields : undefined;
    const m = new SipRequest(
      requestInit(
        this.method,
        uri,
        formatUri(uri),
        this.version,
        p,
        fields,
        this.body,
        -1,
        undefined,
        this.binary,
      ),
    );
    return fields === undefined ? m : this.keepDecoded(m, fields);
  }
}

export interface ResponseInit extends MessageInit {
  readonly status: number;
  readonly reason: string;
  readonly version?: string;
}

export class SipResponse extends SipMessage {
  readonly status: number;
  /** Reason-Phrase, possibly empty (RFC 4475 §3.1.1.13). */
  readonly reason: string;
  readonly version: string;

  constructor(init: ResponseInit) {
    super(init);
    this.status = init.status;
    this.reason = init.reason;
    this.version = init.version ?? 'SIP/2.0';
  }

  isRequest(): this is SipRequest {
    return false;
  }

  isResponse(): this is SipResponse {
    return true;
  }

  startLine(): string {
    return `${this.version} ${this.status} ${this.reason}`;
  }

  protected copy(
    fields: readonly HeaderField[] | undefined,
    body: Uint8Array,
    parsed?: ParsedHeaders,
  ): this {
    return new SipResponse(
      responseInit(
        this.status,
        this.reason,
        this.version,
        parsed,
        parsed === undefined ? fields : undefined,
        body,
        -1,
        undefined,
        this.binary,
      ),
    ) as this;
  }
}
