/**
 * Target sets (RFC 3261 §16.5, §16.6): the registered bindings of an AOR turned into
 * forwarding targets, grouped by `q` for parallel and sequential forking.
 */
import type { Binding } from '../../store/index.ts';
import type { Destination, TransportProtocol } from '../../transport/index.ts';

/** One place to send a copy of the request. */
export interface Target {
  /** The new Request-URI (§16.6 step 2): a registered contact, or a 3xx Contact. */
  readonly uri: string;
  /** Path values to push as Route, in order (RFC 3327 §5.3). */
  readonly path: readonly string[];
  /**
   * The flow the contact registered over (the REGISTER's source): tried first, so that
   * a client behind NAT, or on a connection it opened (TCP, TLS, WebSocket), is reached
   * where it is (RFC 5626 §5.3 does the same for outbound flows).
   */
  readonly flow?: Destination;
  readonly q: number;
}

const PROTOCOLS: readonly TransportProtocol[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];

/** `udp:192.0.2.1:5060` or `tcp:[2001:db8::1]:5060` (Binding.received) as a Destination. */
export function parseFlow(text: string | undefined): Destination | undefined {
  if (text === undefined) return undefined;
  const m = /^([a-z]+):(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(text);
  if (m === null) return undefined;
  const protocol = PROTOCOLS.find((p) => p === m[1]);
  if (protocol === undefined) return undefined;
  return { protocol, address: m[2] ?? m[3]!, port: Number(m[4]) };
}

/**
 * §16.6: "If the target set for the request has been determined ... the proxy ...
 * MAY process the contacts in the target set in order of q-value": contacts with
 * equal q are tried in parallel, groups one after the other from the highest q
 * ("sequential search"). Bindings come highest q first from the location store.
 */
export function groupByQ(bindings: readonly Binding[], limit: number): Target[][] {
  const sorted = [...bindings].sort((a, b) => b.q - a.q).slice(0, limit);
  const groups: Target[][] = [];
  let current: Target[] = [];
  let q: number | undefined;
  for (const b of sorted) {
    if (q !== undefined && b.q !== q) {
      groups.push(current);
      current = [];
    }
    q = b.q;
    const flow = parseFlow(b.received);
    current.push({
      uri: b.contact,
      path: b.path,
      q: b.q,
      ...(flow !== undefined ? { flow } : {}),
    });
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
