/**
 * CRLF keep-alives on connection-oriented transports (RFC 5626 §3.5.1): "the
 * client periodically sends a double-CRLF (the "ping") then waits to receive a
 * single CRLF (the "pong")". A server that receives a ping answers with a pong;
 * that is all a server-side transport has to do.
 *
 * On TCP and TLS the StreamFramer recognises pings between messages; on
 * WebSocket (RFC 7118) a message made only of CRLFs is treated the same way, as
 * SIP-over-WebSocket clients (JsSIP, SIP.js) send them in that form.
 */

/** RFC 5626 §3.5.1 ping: CRLF CRLF. */
export const PING: Uint8Array = Uint8Array.of(13, 10, 13, 10);

/** RFC 5626 §3.5.1 pong: one CRLF. */
export const PONG: Uint8Array = Uint8Array.of(13, 10);

export type KeepaliveKind = 'ping' | 'pong';

/**
 * What to write back for a keep-alive received on a stream: the pong for a ping
 * ("it MUST respond with a single CRLF", RFC 5626 §3.5.1), nothing for a pong.
 */
export function keepaliveReply(kind: KeepaliveKind): Uint8Array | undefined {
  return kind === 'ping' ? PONG : undefined;
}

/**
 * Classifies one whole message of a message-framed transport (WebSocket): a
 * message of only CR/LF is a keep-alive, a ping when it holds two or more line
 * ends, a pong when it holds one. Undefined for anything else (a SIP message).
 */
export function classifyKeepalive(bytes: Uint8Array): KeepaliveKind | undefined {
  if (bytes.length === 0) return undefined;
  let lineEnds = 0;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 10) lineEnds++;
    else if (c !== 13) return undefined;
  }
  if (lineEnds === 0) return undefined;
  return lineEnds >= 2 ? 'ping' : 'pong';
}
