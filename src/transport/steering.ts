/**
 * Steering: several worker processes serve the same listeners (a UDP socket shared by all,
 * TCP/TLS/WS connections each accepted by one of them), and each SIP message must be
 * handled by the one worker that holds its transaction state.
 *
 * The rule is one hash: the worker that owns a message is FNV-1a(Call-ID) mod workers. A
 * request, its retransmissions, its CANCEL and its ACK (RFC 3261 §9.1: CANCEL carries the
 * request's Call-ID; §17.1.1.3: so does the ACK of a non-2xx), every response to it (§8.2.6.2,
 * the proxy keeps the Call-ID, §16.6) and every later request of the dialog (§12.2.1.1) share a
 * Call-ID, so they all meet in one worker whatever socket or connection brought them in. The
 * worker that read a message it does not own hands it over (`forward`; a datagram unparsed,
 * its Call-ID peeked from the octets, so that only the owner parses it); the owner answers
 * from the shared UDP socket, or asks the worker that holds a stream connection to write on it
 * (`write`), since a response must go back over the request's connection (§18.2.2) and a
 * request to a registered flow over that flow (RFC 5626 §5.3). Workers tell each other which
 * connections they hold (`announce`), so a request to a flow's remote endpoint finds it.
 *
 * This module is the contract between the transport layer and whatever carries messages
 * between workers (peer-mesh.ts: Unix sockets), so that the layer can be tested with either.
 */
import { fnv1a32, type IdGenerator } from '../base/index.ts';
import type { SipMessage } from '../sip/index.ts';
import type { TransportProtocol } from './transport.ts';

/** A well-formed message that one worker read and another owns. */
export interface ForwardedMessage {
  readonly framing: 'datagram' | 'stream';
  readonly bytes: Uint8Array;
  readonly protocol: TransportProtocol;
  /** The sender's address and port, as the reading worker's socket saw them. */
  readonly address: string;
  readonly port: number;
  /** The id of the listener that read it (the same in every worker). */
  readonly listenerId: string;
  /** Stream transports: the connection it came on, held by the reading worker. */
  readonly connectionId?: string;
}

/** A worker's stream connection opened or closed, for the others' directories. */
export interface ConnectionAnnouncement {
  readonly event: 'open' | 'close';
  readonly connectionId: string;
  readonly protocol: TransportProtocol;
  readonly address: string;
  readonly port: number;
}

/** What a layer does with what its peers send it. */
export interface SteeringHandler {
  /** A message this worker owns, read by another. */
  message(m: ForwardedMessage): void;
  /** Octets to write on one of this worker's connections. */
  write(connectionId: string, bytes: Uint8Array): void;
  /** Worker `from` opened or closed a connection. */
  announced(from: number, a: ConnectionAnnouncement): void;
  /** Worker `peer` went away: forget its connections. */
  peerDown(peer: number): void;
}

/**
 * The link from one worker to the others. Delivery is best effort, like a datagram: a message
 * to a worker that is restarting is dropped (a UDP sender retransmits; a stream sender's
 * transaction times out), never queued without bound.
 */
export interface SteeringLink {
  /** This worker's index, 0 ≤ self < workers. */
  readonly self: number;
  readonly workers: number;
  forward(to: number, m: ForwardedMessage): void;
  write(to: number, connectionId: string, bytes: Uint8Array): void;
  /** To every other worker. */
  announce(a: ConnectionAnnouncement): void;
  /** Called once by the layer that uses the link. */
  attach(handler: SteeringHandler): void;
}

/** FNV-1a, 32 bits, over the UTF-16 code units of `s` (Call-IDs are ASCII, RFC 3261 §25.1). */
export const fnv1a: (s: string) => number = fnv1a32;

/** The worker that owns a Call-ID. */
export function ownerOfCallId(callId: string, workers: number): number {
  return workers <= 1 ? 0 : fnv1a(callId) % workers;
}

/**
 * Ids whose Call-IDs belong to worker `self`: a request this worker starts (a new dialog or a
 * standalone transaction) must have its responses steered back to it, and they carry its
 * Call-ID. Drawn again until the hash falls on `self` (`workers` draws on average).
 */
export function ownedCallIds(ids: IdGenerator, self: number, workers: number): IdGenerator {
  if (workers <= 1) return ids;
  return {
    branch: () => ids.branch(),
    tag: () => ids.tag(),
    callId: () => {
      for (;;) {
        const id = ids.callId();
        if (ownerOfCallId(id, workers) === self) return id;
      }
    },
  };
}

/**
 * The worker that owns a message, or undefined when it has no readable Call-ID (it is then
 * handled where it was read; the parser rejects such a message anyway, §8.1.1).
 */
export function ownerOf(message: SipMessage, workers: number): number | undefined {
  if (workers <= 1) return 0;
  let callId: string;
  try {
    callId = message.callId;
  } catch {
    return undefined;
  }
  return ownerOfCallId(callId, workers);
}
