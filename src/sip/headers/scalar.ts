/**
 * Headers whose value is one number or one opaque word: Call-ID, Max-Forwards,
 * Content-Length, Expires, Min-Expires, RSeq, SIP-ETag, SIP-If-Match.
 */
import { err, ok, type Result } from '../../base/result.ts';
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';
import { parseDigits } from '../grammar/lex.ts';
import { defineCodec } from './codec.ts';

/** delta-seconds = 1*DIGIT (RFC 3261 §25.1). */
export const MAX_DELTA_SECONDS = 0xffffffff;

function digitsOnly(value: string, max: number, what: string): Result<number, string> {
  const v = parseDigits(value, 0, value.length, max);
  if (v < 0) {
    return err(/^\d+$/.test(value) ? `${what} is too large` : `${what} must be digits`);
  }
  return ok(v);
}

/**
 * delta-seconds, with RFC 3261 §20.19's rule for Expires ("... larger than
 * 2**32-1 ... is equivalent to 2**32-1") applied to every delta-seconds value.
 */
export function parseDeltaSeconds(value: string): Result<number, string> {
  if (!/^\d+$/.test(value)) return err('delta-seconds must be digits');
  const v = value.length > 10 ? Infinity : Number(value);
  return ok(Math.min(v, MAX_DELTA_SECONDS));
}

/**
 * Call-ID (RFC 3261 §20.8): callid = word [ "@" word ]. Case-sensitive, compared
 * byte for byte.
 */
export function parseCallId(value: string): Result<string, string> {
  if (CALL_ID.test(value)) return ok(value);
  return err(value.length === 0 ? 'empty Call-ID' : 'malformed Call-ID');
}

/** callid = word [ "@" word ] with the word alphabet of chars.ts (WORD). */
const CALL_ID =
  /^[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}]+(?:@[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}]+)?$/;

export const CallIdHeader = defineCodec<string>({
  name: 'Call-ID',
  key: 'call-id',
  compact: 'i',
  list: false,
  parse: parseCallId,
  format: (v) => v,
});

/**
 * Max-Forwards (RFC 3261 §20.22): 1*DIGIT, normally 0..255. Larger values are
 * tolerated (RFC 4475 §3.1.2.4 "could be tolerated") up to 2**32-1.
 */
export const MaxForwardsHeader = defineCodec<number>({
  name: 'Max-Forwards',
  key: 'max-forwards',
  list: false,
  parse: (v) => digitsOnly(v, 0xffffffff, 'Max-Forwards'),
  format: String,
});

/** Content-Length (RFC 3261 §20.14): 1*DIGIT octets. */
export const ContentLengthHeader = defineCodec<number>({
  name: 'Content-Length',
  key: 'content-length',
  compact: 'l',
  list: false,
  parse: (v) => digitsOnly(v, 0x7fffffff, 'Content-Length'),
  format: String,
});

/** Expires (RFC 3261 §20.19): delta-seconds. */
export const ExpiresHeader = defineCodec<number>({
  name: 'Expires',
  key: 'expires',
  list: false,
  parse: parseDeltaSeconds,
  format: String,
});

/** Min-Expires (RFC 3261 §20.23): delta-seconds. */
export const MinExpiresHeader = defineCodec<number>({
  name: 'Min-Expires',
  key: 'min-expires',
  list: false,
  parse: parseDeltaSeconds,
  format: String,
});

/** RSeq (RFC 3262 §7.1): 1*DIGIT, 1 .. 2**31-1 on creation, up to 2**32-1 on the wire. */
export const RSeqHeader = defineCodec<number>({
  name: 'RSeq',
  key: 'rseq',
  list: false,
  parse: (v) => digitsOnly(v, 0xffffffff, 'RSeq'),
  format: String,
});

function parseTokenValue(value: string): Result<string, string> {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 128 || (CHAR_CLASS[c]! & TOKEN) === 0) return err('value must be a token');
  }
  return value.length === 0 ? err('empty value') : ok(value);
}

/** SIP-ETag (RFC 3903 §11.3.1): entity-tag = token. */
export const SipETagHeader = defineCodec<string>({
  name: 'SIP-ETag',
  key: 'sip-etag',
  list: false,
  parse: parseTokenValue,
  format: (v) => v,
});

/** SIP-If-Match (RFC 3903 §11.3.2): entity-tag = token. */
export const SipIfMatchHeader = defineCodec<string>({
  name: 'SIP-If-Match',
  key: 'sip-if-match',
  list: false,
  parse: parseTokenValue,
  format: (v) => v,
});
