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
   * The flow the contact registered over (the REGISTER's source), when `useFlow` says
   * so: tried first, then the Contact.
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

/** RFC 1918, loopback-free private IPv4, IPv6 unique-local and link-local addresses. */
function isPrivate(host: string): boolean {
  const h = host.startsWith('[') ? host.slice(1, -1).toLowerCase() : host.toLowerCase();
  if (/^10\./.test(h) || /^192\.168\./.test(h) || /^172\.(1[6-9]|2\d|3[01])\./.test(h)) return true;
  if (/^169\.254\./.test(h) || /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./.test(h)) return true;
  return /^f[cd][0-9a-f]{2}:/.test(h) || /^fe[89ab][0-9a-f]:/.test(h);
}

function hostOf(contact: string): string | undefined {
  const m = /^sips?:(?:[^@;?]*@)?(\[[^\]]+\]|[^:;?]+)/i.exec(contact);
  return m === null ? undefined : m[1]!.toLowerCase();
}

/**
 * Whether to send to the flow the REGISTER came over rather than to the Contact:
 * - an RFC 5626 outbound registration (+sip.instance and reg-id): always (§5.3);
 * - a Contact the UA cannot be reached at by itself: a `.invalid` host (SIP over
 *   WebSocket, RFC 7118 §5.2), or a private address while the REGISTER came from
 *   another one (the UA is behind NAT);
 * - a connection the UA opened (TCP, TLS, WS) from the Contact's own host: reusing it
 *   works through NAT and firewalls, where a new connection to the UA would not.
 * Otherwise (UDP from the Contact's host, or a third-party registration) the Contact
 * is used as registered (RFC 3261 §16.5).
 */
export function useFlow(b: Binding): boolean {
  const flow = parseFlow(b.received);
  if (flow === undefined) return false;
  if (b.instance !== undefined && b.regId !== undefined) return true;
  const host = hostOf(b.contact);
  if (host === undefined) return true;
  if (host.endsWith('.invalid')) return true;
  const source = flow.address.toLowerCase();
  const bareHost = host.startsWith('[') ? host.slice(1, -1) : host;
  if (isPrivate(host) && bareHost !== source) return true;
  return flow.protocol !== 'udp' && bareHost === source;
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
    const flow = useFlow(b) ? parseFlow(b.received) : undefined;
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
