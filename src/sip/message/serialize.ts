/**
 * Serialization (RFC 3261 §7). A message that was parsed and not changed is
 * returned as the exact bytes received; otherwise each field is written from its
 * raw text when it has one (unknown headers pass through byte for byte) and
 * Content-Length is made to match the body (§20.14; required on streams, §18.3).
 */
import { binaryEncode, concatBytes, utf8Decode, utf8Encode } from '../../base/text.ts';
import type { SipMessage } from './message.ts';

/** The header section (start line, fields, empty line) as text. */
export function serializeHead(m: SipMessage): string {
  const bodyLength = String(m.body.length);
  let out = m.startLine() + '\r\n';
  let sawLength = false;
  const fields = m.fields;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.key === 'content-length') {
      if (sawLength) continue;
      sawLength = true;
      if (f.value !== bodyLength) {
        out += f.name + ': ' + bodyLength + '\r\n';
        continue;
      }
    }
    out += (f.raw ?? f.name + ': ' + f.value) + '\r\n';
  }
  if (!sawLength) out += 'Content-Length: ' + bodyLength + '\r\n';
  return out + '\r\n';
}

/** The message as octets, ready for a transport. */
export function serializeMessage(m: SipMessage): Uint8Array {
  if (m.wire !== undefined) return m.wire;
  const head = serializeHead(m);
  const headBytes = m.binary ? binaryEncode(head) : utf8Encode(head);
  return m.body.length === 0 ? headBytes : concatBytes([headBytes, m.body]);
}

/** The message as text (body decoded as UTF-8), for logs and tests. */
export function messageToString(m: SipMessage): string {
  if (m.wire !== undefined) return utf8Decode(m.wire);
  return serializeHead(m) + utf8Decode(m.body);
}
