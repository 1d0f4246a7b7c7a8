/**
 * CSeq (RFC 3261 §20.16): `CSeq = "CSeq" HCOLON 1*DIGIT LWS Method`.
 * §8.1.1.5: "The sequence number value MUST be expressible as a 32-bit unsigned
 * integer" — larger values are rejected (RFC 4475 §3.1.2.4).
 */
import { err, ok, type Result } from '../../base/result.ts';
import { Cursor } from '../grammar/cursor.ts';
import { CHAR_CLASS, TOKEN } from '../grammar/chars.ts';
import { defineCodec } from './codec.ts';

export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

export const MAX_CSEQ = 0xffffffff;

/** The common shape: digits, one SP, a method token (no Cursor needed). */
function parseSimpleCSeq(value: string): CSeq | null {
  const sp = value.indexOf(' ');
  if (sp <= 0 || sp > 10) return null;
  let seq = 0;
  for (let i = 0; i < sp; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return null;
    seq = seq * 10 + d;
  }
  if (seq > MAX_CSEQ) return null;
  const method = value.slice(sp + 1);
  for (let i = 0; i < method.length; i++) {
    const ch = method.charCodeAt(i);
    if (ch >= 128 || (CHAR_CLASS[ch]! & TOKEN) === 0) return null;
  }
  return method.length === 0 ? null : { seq, method };
}

export function parseCSeq(value: string): Result<CSeq, string> {
  const fast = parseSimpleCSeq(value);
  if (fast !== null) return ok(fast);
  const c = new Cursor(value);
  const start = c.i;
  const seq = c.digits(MAX_CSEQ);
  if (seq < 0)
    return err(c.i === start ? 'missing sequence number' : 'sequence number above 2**32-1');
  const before = c.i;
  c.ws();
  if (c.i === before) return err('expected LWS after the sequence number');
  const method = c.token();
  if (method === '') return err('missing method');
  c.ws();
  if (!c.atEnd()) return err('unexpected text after the method');
  return ok({ seq, method });
}

export const CSeqHeader = defineCodec<CSeq>({
  name: 'CSeq',
  key: 'cseq',
  list: false,
  parse: parseCSeq,
  format: (v) => `${v.seq} ${v.method}`,
});
