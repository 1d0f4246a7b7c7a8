/**
 * Serialization (RFC 3261 §7). A message that was parsed and not changed is
 * returned as the exact bytes received; otherwise each field is written from its
 * raw text when it has one (unknown headers pass through byte for byte) and
 * Content-Length is made to match the body (§20.14; required on streams, §18.3).
 */
import {
  binaryEncode,
  concatBytes,
  utf8Decode,
  utf8Encode,
  type OctetArena,
} from '../../base/text.ts';
import type { SipMessage } from './message.ts';

/**
 * True when a Content-Length value written with leading zeros ("0136", which §20.14's
 * 1*DIGIT allows) gives the body's length: the field then passes through as received.
 */
function sameLength(value: string, length: string): boolean {
  if (value.length <= length.length) return false;
  const lead = value.length - length.length;
  for (let i = 0; i < lead; i++) if (value.charCodeAt(i) !== 0x30) return false;
  return value.endsWith(length);
}

/** The header section (start line, fields, empty line) as text. */
export function serializeHead(m: SipMessage): string {
  const bodyLength = String(m.body.length);
  // A message in the parser's text form: its field lines as one slice (the same octets).
  const lines = m.headerLinesText(bodyLength);
  if (lines !== undefined) return m.startLine() + '\r\n' + lines + '\r\n';
  return serializeFields(m, bodyLength);
}

/** @internal serializeHead field by field (the reference for the text form's slice). */
export function serializeFields(m: SipMessage, bodyLength = String(m.body.length)): string {
  let out = m.startLine() + '\r\n';
  let sawLength = false;
  const fields = m.fields;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.key === 'content-length') {
      if (sawLength) continue;
      sawLength = true;
      if (f.value !== bodyLength && !sameLength(f.value, bodyLength)) {
        out += f.name + ': ' + bodyLength + '\r\n';
        continue;
      }
    }
    out += (f.raw ?? f.name + ': ' + f.value) + '\r\n';
  }
  if (!sawLength) out += 'Content-Length: ' + bodyLength + '\r\n';
  return out + '\r\n';
}

/**
 * The message as octets, ready for a transport. `encode` turns the header text into UTF-8: by
 * default a fresh array of its own (what a transaction may keep for 32 s); a transport that
 * hands the octets straight to a socket may pass a faster one that allocates from a shared pool
 * (node's Buffer.from), since nothing keeps them. Octets in an array of their own are
 * remembered on the message (`encoded`) and given again by later calls, whatever `encode`.
 */
export function serializeMessage(
  m: SipMessage,
  encode: (text: string) => Uint8Array = utf8Encode,
): Uint8Array {
  if (m.wire !== undefined) return m.wire;
  if (m.encoded !== undefined) return m.encoded;
  const head = serializeHead(m);
  const own = m.binary || encode === utf8Encode || m.body.length > 0;
  const headBytes = m.binary ? binaryEncode(head) : encode(head);
  const bytes = m.body.length === 0 ? headBytes : concatBytes([headBytes, m.body]);
  // Octets in an array of their own are kept on the message; pooled ones (the transport's
  // encoder) never are, since keeping a slice would pin its whole pool.
  if (own) m.encoded = bytes;
  return bytes;
}

/**
 * `serializeMessage` for octets that will be kept (a finished transaction's messages): header
 * and body are carved from `arena`, one array for both, and remembered on the message. A
 * message received keeps its wire octets; one that is not valid UTF-8 gets an array of its own.
 */
export function serializeToArena(m: SipMessage, arena: OctetArena): Uint8Array {
  if (m.wire !== undefined) return m.wire;
  if (m.encoded !== undefined) return m.encoded;
  if (m.binary) return serializeMessage(m);
  const bytes = arena.encode(serializeHead(m), m.body.length > 0 ? m.body : undefined);
  m.encoded = bytes;
  return bytes;
}

/** The message as text (body decoded as UTF-8), for logs and tests. */
export function messageToString(m: SipMessage): string {
  if (m.wire !== undefined) return utf8Decode(m.wire);
  return serializeHead(m) + utf8Decode(m.body);
}
