/**
 * How a request reaches one target (RFC 3261 §16.6 steps 2, 6 and 7, RFC 3327 §5.3,
 * RFC 5626 §5.3): the target's URI as Request-URI, its Path pushed as Route, a strict
 * router's Route fixed up, and the destinations in the order to try them (the flow the
 * contact registered over first). The proxy forwards through it, and so does any service
 * that sends its own requests to registered contacts (stored messages), so that both reach
 * a phone behind NAT or through an edge proxy the same way.
 */
import {
  RouteHeader,
  formatNameAddr,
  hasParam,
  parseUri,
  uriParams,
  type NameAddr,
  type SipRequest,
  type Uri,
} from '../../sip/index.ts';
import type { Destination } from '../../transport/index.ts';
import type { Target } from './targets.ts';

/** RFC 3263 resolution of a next hop (Stack.resolve). */
export type ResolveNextHop = (uri: Uri) => Promise<readonly Destination[]>;

/** The request with its Route header fields replaced by `routes` (or none). */
export function setRoutes(m: SipRequest, routes: readonly NameAddr[]): SipRequest {
  const without = m.remove('Route');
  if (routes.length === 0) return without;
  return without.append('Route', routes.map(formatNameAddr).join(', '));
}

/**
 * §16.6 step 7: "If the copy contains a Route header field, the proxy MUST inspect the
 * URI in its first value. If that URI does not contain an lr parameter, the proxy MUST
 * modify the copy as follows: The proxy MUST place the Request-URI into the Route
 * header field as the last value. The proxy MUST then place the first Route header
 * field value into the Request-URI and remove that value from the Route header field."
 * Returns the request and its next hop: the first Route's URI, else the Request-URI.
 */
export function strictRouteFixed(r: SipRequest): {
  request: SipRequest;
  next: Uri;
  routed: boolean;
} {
  const routes = r.get(RouteHeader) ?? [];
  if (routes.length === 0) return { request: r, next: r.uri, routed: false };
  const first = routes[0]!;
  if (hasParam(uriParams(first.uri), 'lr')) return { request: r, next: first.uri, routed: true };
  const rest = [...routes.slice(1), { uri: r.uri, params: [] } as NameAddr];
  return { request: setRoutes(r.withUri(first.uri), rest), next: first.uri, routed: true };
}

/**
 * `request` made for `target` (new Request-URI, Path as Route, strict-route fix-up) and
 * where to send it, in order; undefined when the target's URI does not parse.
 */
export async function reachTarget(
  request: SipRequest,
  target: Target,
  resolve: ResolveNextHop,
): Promise<{ request: SipRequest; dests: readonly Destination[] } | undefined> {
  let r = request;
  const uri = parseUri(target.uri);
  if (!uri.ok) return undefined;
  if (target.uri !== r.uriText) r = r.withUri(uri.value);
  // §16.6 step 6 / RFC 3327 §5.3: the Path of the binding becomes the route.
  if (target.path.length > 0) {
    const existing = r.getRawAll('Route');
    r = r.remove('Route').append('Route', [...target.path, ...existing].join(', '));
  }
  const fixed = strictRouteFixed(r);
  if (fixed.routed) return { request: fixed.request, dests: await resolve(fixed.next) };
  const byUri = await resolve(r.uri);
  if (target.flow === undefined) return { request: r, dests: byUri };
  // RFC 5626 §5.3: the registered flow first, then the Contact as resolved.
  const flow = target.flow;
  const same = (d: Destination): boolean =>
    d.protocol === flow.protocol && d.address === flow.address && d.port === flow.port;
  return { request: r, dests: [flow, ...byUri.filter((d) => !same(d))] };
}
