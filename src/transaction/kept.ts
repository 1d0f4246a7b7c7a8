/**
 * Messages a finished transaction keeps as octets. A transaction that only waits to absorb or
 * answer retransmissions (RFC 3261 §17.1.2.2 Completed for T4, §17.2.2 Completed for 64*T1,
 * RFC 6026 §8.4 and §8.7 Accepted for 64*T1) keeps the few hundred octets of a message instead of its parsed objects, which would
 * otherwise be promoted to the old generation at every busy moment; it parses them again only
 * when someone reads them.
 */
import { SwitchboardError } from '../base/errors.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { OctetArena } from '../base/text.ts';
import { serializeMessage, serializeToArena } from '../sip/message/serialize.ts';
import { parseMessage } from '../sip/parser/parse-message.ts';

/** A kept message, parsed again. */
export function reparseKept(bytes: Uint8Array): SipRequest | SipResponse {
  const r = parseMessage(bytes, { framing: 'datagram' });
  if (!r.ok) {
    throw new SwitchboardError('SB_ERR_HEADER_UNDECODABLE', `a kept message: ${r.error.code}`);
  }
  return r.message as SipRequest | SipResponse;
}

/**
 * A kept message, parsed again from where its octets lie. A transaction keeps kept octets as
 * three fields (their ArrayBuffer, usually an arena chunk, offset and length) rather than as a
 * view: a Uint8Array is an object of about 100 bytes of its own, and a busy server keeps a few
 * of them per call for 64*T1.
 */
export function reparseKeptAt(
  chunk: ArrayBufferLike,
  offset: number,
  length: number,
): SipRequest | SipResponse {
  return reparseKept(new Uint8Array(chunk, offset, length));
}

/**
 * Serializes a message that is about to be sent and then kept, so that its octets are made
 * once (the message remembers them, and the transport sends them): carved from `arena` when
 * given, for octets kept for a bounded time like the others there (a final response, a
 * non-INVITE request), else in an array of their own (an INVITE request, kept while the call
 * rings). A message that cannot be serialized fails later, in the transport.
 */
export function serializeQuietly(m: SipRequest | SipResponse, arena?: OctetArena): void {
  try {
    if (arena === undefined) serializeMessage(m);
    else serializeToArena(m, arena);
  } catch {
    // the transport reports it
  }
}

/**
 * The octets of a request and its final response, for a transaction to keep; undefined when
 * either cannot be serialized (the transaction then keeps the parsed messages). A message
 * serialized before it was sent (`serializeQuietly`) gives the octets it was sent in.
 */
export function keptOctets(
  req: SipRequest,
  res: SipResponse,
  arena?: OctetArena,
): { readonly req: Uint8Array; readonly res: Uint8Array } | undefined {
  const reqOctets = keptMessageOctets(req, arena);
  if (reqOctets === undefined) return undefined;
  const resOctets = keptMessageOctets(res, arena);
  return resOctets === undefined ? undefined : { req: reqOctets, res: resOctets };
}

/**
 * The octets of one message for a transaction to keep (`keptOctets`, or a final response alone
 * when only retransmissions will need it); undefined when it cannot be serialized.
 */
export function keptMessageOctets(
  m: SipRequest | SipResponse,
  arena?: OctetArena,
): Uint8Array | undefined {
  try {
    return arena === undefined ? serializeMessage(m) : octetsIn(m, arena);
  } catch {
    return undefined;
  }
}

/**
 * A message's octets carved from `arena`. A received message that is unchanged sends its
 * datagram's octets, a view of a buffer of its own (one ArrayBuffer per datagram read): they
 * are copied into the arena, so that the buffer can go. So are the octets of a message
 * serialized into an array of its own before it was sent (an INVITE a client transaction
 * retransmits, `serializeQuietly` without an arena): each such array is an ArrayBuffer and a
 * native allocation of its own for the garbage collector, kept 64*T1 in Accepted. Octets
 * already carved from the arena are kept as they are.
 */
function octetsIn(m: SipRequest | SipResponse, arena: OctetArena): Uint8Array {
  if (m.wire !== undefined) return arena.copy(m.wire);
  const own = m.encoded;
  if (own !== undefined && own.byteOffset === 0 && own.byteLength === own.buffer.byteLength) {
    return arena.copy(own);
  }
  return serializeToArena(m, arena);
}
