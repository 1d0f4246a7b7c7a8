/**
 * The SIP message model (RFC 3261 §7): a request or a response, its header
 * fields in order, and its body as octets.
 *
 * Immutable: every change returns a new message that shares the unchanged
 * fields. Lazy: a header is decoded when first read, through its codec, and the
 * result is cached on the field. A parsed message keeps its wire bytes, so one
 * that is not changed serializes to exactly the bytes received, and each field
 * keeps its raw text, so unknown headers pass through byte for byte.
 */
import { SwitchboardError } from '../../base/errors.ts';
import { err, ok, type Result } from '../../base/result.ts';
import { utf8Decode, utf8Encode } from '../../base/text.ts';
import type { HeaderCodec } from '../headers/codec.ts';
import { headerKey } from '../headers/names.ts';
import { wireError, type SipParseError, type WireErrorCode } from '../parser/errors.ts';
import { CallIdHeader, ContentLengthHeader, MaxForwardsHeader } from '../headers/scalar.ts';
import { CSeqHeader, type CSeq } from '../headers/cseq.ts';
import { FromHeader, ToHeader } from '../headers/address.ts';
import type { NameAddr } from '../headers/name-addr.ts';
import { ViaHeader, type Via } from '../headers/via.ts';
import { formatUri, type Uri } from '../uri/uri.ts';
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';

/** One header field line, in message order. */
export interface HeaderField {
  /** The name as written (may be a compact form). */
  readonly name: string;
  /** The lower-case canonical long name (see names.ts). */
  readonly key: string;
  /** The value, folds replaced by SP and SP/HT trimmed (RFC 3261 §7.3.1). */
  readonly value: string;
  /** The field's original text without its line end, for byte-exact output; absent on fields built in code. */
  readonly raw: string | undefined;
}

/** Per-field decode cache: a field's value never changes, so its decoding can be kept. */
interface DecodedSlot {
  codec: HeaderCodec<unknown>;
  result: Result<unknown, string>;
}

/**
 * @internal A field with its decode slot. Every field is created with `d` set
 * (parser and makeField), so all fields share one object shape.
 */
export interface FieldImpl extends HeaderField {
  d: DecodedSlot | undefined;
}

/** Decodes one field through a codec, caching the result on the field. */
function decodeField<T>(field: HeaderField, codec: HeaderCodec<T>): Result<T, string> {
  const f = field as FieldImpl;
  const slot = f.d;
  if (slot !== undefined && slot.codec === codec) return slot.result as Result<T, string>;
  const result = codec.parse(f.value);
  f.d = { codec: codec as HeaderCodec<unknown>, result };
  return result;
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
  readonly fields: readonly HeaderField[];
  readonly body?: Uint8Array;
  /** Original bytes (exactly this message: no trailing datagram octets). */
  readonly wire?: Uint8Array;
  /** True when the header section was not valid UTF-8 and was decoded octet by octet. */
  readonly binary?: boolean;
}

const EMPTY_BODY = new Uint8Array(0);

export abstract class SipMessage {
  readonly fields: readonly HeaderField[];
  readonly body: Uint8Array;
  /** @internal the received bytes, kept while the message is unchanged */
  readonly wire: Uint8Array | undefined;
  /** True when the header text holds one octet per code unit (not valid UTF-8 on the wire). */
  readonly binary: boolean;

  protected constructor(init: MessageInit) {
    this.fields = init.fields;
    this.body = init.body ?? EMPTY_BODY;
    this.wire = init.wire;
    this.binary = init.binary ?? false;
  }

  abstract isRequest(): this is SipRequest;
  abstract isResponse(): this is SipResponse;
  /** The start line without its line end. */
  abstract startLine(): string;
  /** @internal a copy with other fields/body (drops the wire bytes) */
  protected abstract copy(init: MessageInit): this;

  // ---- raw access -------------------------------------------------------

  /** The first field's value for a header name (any spelling, compact forms included). */
  getRaw(name: string): string | undefined {
    const key = headerKey(name);
    for (const f of this.fields) if (f.key === key) return f.value;
    return undefined;
  }

  /** Every field value for a header name, in order. */
  getRawAll(name: string): string[] {
    const key = headerKey(name);
    const out: string[] = [];
    for (const f of this.fields) if (f.key === key) out.push(f.value);
    return out;
  }

  has(name: string): boolean {
    const key = headerKey(name);
    for (const f of this.fields) if (f.key === key) return true;
    return false;
  }

  /** Number of fields with this name. */
  count(name: string): number {
    const key = headerKey(name);
    let n = 0;
    for (const f of this.fields) if (f.key === key) n++;
    return n;
  }

  // ---- typed access -----------------------------------------------------

  /**
   * Decodes a header through its codec. For a list codec the elements of every
   * field are joined in order. Undefined when the header is absent; an error
   * when a field is malformed.
   */
  decode<T>(codec: HeaderCodec<T>): Result<T, SipParseError> | undefined {
    const key = codec.key;
    const fields = this.fields;
    if (!codec.list) {
      for (let i = 0; i < fields.length; i++) {
        const f = fields[i]!;
        if (f.key !== key) continue;
        const r = decodeField(f, codec);
        return r.ok
          ? r
          : err(wireError(headerErrorCode(key), `${codec.name}: ${r.error}`, codec.name));
      }
      return undefined;
    }
    let first: T | undefined;
    let joined: unknown[] | undefined;
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i]!;
      if (f.key !== key) continue;
      const r = decodeField(f, codec);
      if (!r.ok)
        return err(wireError(headerErrorCode(key), `${codec.name}: ${r.error}`, codec.name));
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
    if (r === undefined) throw new SwitchboardError('SB_ERR_MISSING_HEADER', codec.name);
    if (!r.ok) throw new SwitchboardError('SB_ERR_INVALID_HEADER_VALUE', r.error.detail);
    return r.value;
  }

  /** All Via values, topmost first. A parsed message always has one. */
  get via(): readonly Via[] {
    return this.required(ViaHeader);
  }

  /** The topmost Via (RFC 3261 §8.1.1.7, §18.2.2). */
  get topVia(): Via {
    return this.required(ViaHeader)[0]!;
  }

  get from(): NameAddr {
    return this.required(FromHeader);
  }

  get to(): NameAddr {
    return this.required(ToHeader);
  }

  get callId(): string {
    return this.required(CallIdHeader);
  }

  get cseq(): CSeq {
    return this.required(CSeqHeader);
  }

  /** Max-Forwards, or undefined when absent (RFC 2543 senders omit it). */
  get maxForwards(): number | undefined {
    return this.get(MaxForwardsHeader);
  }

  /** Content-Length as declared, or undefined when absent. */
  get contentLength(): number | undefined {
    return this.get(ContentLengthHeader);
  }

  /** The body as text (UTF-8). */
  bodyText(): string {
    return utf8Decode(this.body);
  }

  // ---- changes (each returns a new message) ------------------------------

  /** Appends a field. */
  append(name: string, value: string): this {
    return this.copy({
      fields: [...this.fields, makeField(name, value)],
      body: this.body,
      binary: this.binary,
    });
  }

  /** Inserts a field before the first field of the same header (or first of all). */
  prepend(name: string, value: string): this {
    const f = makeField(name, value);
    const idx = this.fields.findIndex((x) => x.key === f.key);
    const fields = [...this.fields];
    fields.splice(idx < 0 ? 0 : idx, 0, f);
    return this.copy({ fields, body: this.body, binary: this.binary });
  }

  /** Replaces every field of this header with one field (at the first one's place), or appends it. */
  set(name: string, value: string): this {
    const f = makeField(name, value);
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
    return this.copy({ fields, body: this.body, binary: this.binary });
  }

  /** Removes every field of this header. */
  remove(name: string): this {
    const key = headerKey(name);
    return this.copy({
      fields: this.fields.filter((x) => x.key !== key),
      body: this.body,
      binary: this.binary,
    });
  }

  /**
   * Removes the first element of a list header: the topmost Via (§16.7 step 3)
   * or the first Route (§16.4). The rest of that field is re-formatted.
   */
  removeFirst<E>(codec: HeaderCodec<readonly E[]>): this {
    const idx = this.fields.findIndex((x) => x.key === codec.key);
    if (idx < 0) return this;
    const f = this.fields[idx]!;
    const r = decodeField(f, codec);
    const fields = [...this.fields];
    if (!r.ok || r.value.length <= 1) fields.splice(idx, 1);
    else fields[idx] = makeField(f.name, codec.format(r.value.slice(1)));
    return this.copy({ fields, body: this.body, binary: this.binary });
  }

  /** Replaces the body; sets Content-Type when given, and Content-Length always. */
  withBody(body: Uint8Array | string, contentType?: string): this {
    const bytes = typeof body === 'string' ? utf8Encode(body) : body;
    let m = this.copy({ fields: this.fields, body: bytes, binary: this.binary });
    if (contentType !== undefined) m = m.set('Content-Type', contentType);
    else if (bytes.length === 0) m = m.remove('Content-Type');
    return m.set('Content-Length', String(bytes.length));
  }
}

/** A header field built in code; validates the name and that the value holds no line break. */
export function makeField(name: string, value: string): HeaderField {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0)
      throw new SwitchboardError('SB_ERR_INVALID_HEADER_NAME', name);
  }
  if (name.length === 0) throw new SwitchboardError('SB_ERR_INVALID_HEADER_NAME', '(empty)');
  if (/[\r\n]/.test(value)) throw new SwitchboardError('SB_ERR_INVALID_HEADER_VALUE', name);
  const f: FieldImpl = {
    name,
    key: headerKey(name),
    value: value.trim(),
    raw: undefined,
    d: undefined,
  };
  return f;
}

export interface RequestInit extends MessageInit {
  readonly method: string;
  readonly uri: Uri;
  /** The Request-URI as written; formatted from `uri` when absent. */
  readonly uriText?: string;
  readonly version?: string;
}

export class SipRequest extends SipMessage {
  /** Method token, case-sensitive (RFC 3261 §7.1). */
  readonly method: string;
  readonly uri: Uri;
  readonly uriText: string;
  readonly version: string;

  constructor(init: RequestInit) {
    super(init);
    this.method = init.method;
    this.uri = init.uri;
    this.uriText = init.uriText ?? formatUri(init.uri);
    this.version = init.version ?? 'SIP/2.0';
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

  protected copy(init: MessageInit): this {
    return new SipRequest({
      ...init,
      method: this.method,
      uri: this.uri,
      uriText: this.uriText,
      version: this.version,
    }) as this;
  }

  /** A copy with another Request-URI (§16.6 step 2, §16.12 strict-route fix-up). */
  withUri(uri: Uri): SipRequest {
    return new SipRequest({
      fields: this.fields,
      body: this.body,
      binary: this.binary,
      method: this.method,
      uri,
      version: this.version,
    });
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

  protected copy(init: MessageInit): this {
    return new SipResponse({
      ...init,
      status: this.status,
      reason: this.reason,
      version: this.version,
    }) as this;
  }
}
