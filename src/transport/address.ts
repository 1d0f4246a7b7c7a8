/**
 * IP address and endpoint helpers shared by the transport kinds: the text forms
 * SIP uses (RFC 3261 §19.1.1 IPv6reference with brackets, RFC 5118 §4.5 received
 * with or without them), address comparison, default ports, endpoint keys.
 */
import { isIP } from 'node:net';
import type { Endpoint, ListenerInfo, TransportProtocol } from './transport.ts';

/** An IP family as node:net reports it; 0 when the text is not an IP literal. */
export type IpFamily = 0 | 4 | 6;

/** `[::1]` → `::1`; anything else unchanged. */
export function stripBrackets(host: string): string {
  return host.length > 1 && host.charCodeAt(0) === 0x5b && host.endsWith(']')
    ? host.slice(1, -1)
    : host;
}

/**
 * True when `s` is a dotted-quad IPv4 address as node:net's isIPv4 accepts it: four decimal
 * octets up to 255, without leading zeros. A scan of at most 15 characters, where isIP runs a
 * regular expression; every datagram sent asks (the UDP lookup), so this answers first.
 */
function isDottedQuad(s: string): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || value > 255 || ++parts > 4) return false;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && value === 0) return false; // a leading zero
      value = value * 10 + (c - 0x30);
      if (++digits > 3) return false;
    } else return false;
  }
  return parts === 4;
}

/** The family of an IP literal (brackets allowed), 0 for a host name. */
export function ipFamily(host: string): IpFamily {
  if (isDottedQuad(host)) return 4;
  return isIP(stripBrackets(host)) as IpFamily;
}

/**
 * The canonical text of an IP literal: brackets removed, IPv6 lower-cased and
 * compressed (RFC 5952 §4, via the WHATWG URL host serializer), an IPv4-mapped
 * IPv6 address (`::ffff:192.0.2.1`, as a dual-stack socket reports IPv4 peers)
 * reduced to its IPv4 address. Host names are returned lower-cased.
 */
export function normalizeAddress(host: string): string {
  if (isDottedQuad(host)) return host;
  const bare = stripBrackets(host);
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family !== 6) return bare.toLowerCase();
  const zone = bare.indexOf('%');
  const addr = zone < 0 ? bare : bare.slice(0, zone);
  let canonical: string;
  try {
    canonical = new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  } catch {
    canonical = addr.toLowerCase();
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(canonical);
  if (mapped !== null) return mapped[1]!;
  // The URL serializer writes a mapped address in hex (::ffff:c000:201).
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (hexMapped !== null) {
    const hi = parseInt(hexMapped[1]!, 16);
    const lo = parseInt(hexMapped[2]!, 16);
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return zone < 0 ? canonical : canonical + bare.slice(zone);
}

/** True when two host texts name the same IP address (or the same host name, case-insensitively). */
export function sameAddress(a: string, b: string): boolean {
  return normalizeAddress(a) === normalizeAddress(b);
}

/** True for 0.0.0.0 and :: (a listener bound to every address). */
export function isUnspecified(address: string): boolean {
  const n = normalizeAddress(address);
  return n === '0.0.0.0' || n === '::';
}

/** A host for a URI or Via sent-by: IPv6 in brackets (RFC 3261 §19.1.1 IPv6reference). */
export function uriHost(host: string): string {
  const bare = stripBrackets(host);
  return isIP(bare) === 6 ? `[${bare}]` : bare;
}

/** `host:port` with IPv6 bracketed. */
export function formatHostPort(host: string, port: number): string {
  return `${uriHost(host)}:${port}`;
}

/**
 * The default port of a transport: 5060 for UDP and TCP, 5061 for TLS (RFC 3261
 * §19.1.2), 80 and 443 for WS and WSS (RFC 7118 §5.2 uses the WebSocket defaults).
 */
export function defaultPort(protocol: TransportProtocol): number {
  switch (protocol) {
    case 'udp':
    case 'tcp':
      return 5060;
    case 'tls':
      return 5061;
    case 'ws':
      return 80;
    case 'wss':
      return 443;
  }
}

/** The transport protocol named by a Via transport token (RFC 3261 §20.42), if it is one we run. */
export function protocolOfViaTransport(transport: string): TransportProtocol | undefined {
  switch (transport.toUpperCase()) {
    case 'UDP':
      return 'udp';
    case 'TCP':
      return 'tcp';
    case 'TLS':
      return 'tls';
    case 'WS':
      return 'ws';
    case 'WSS':
      return 'wss';
    default:
      return undefined;
  }
}

/** The key of a remote endpoint for one protocol (connection reuse, RFC 3261 §18.1.1). */
export function endpointKey(protocol: TransportProtocol, endpoint: Endpoint): string {
  return `${protocol} ${normalizeAddress(endpoint.address)} ${endpoint.port}`;
}

/** The sent-by of a listener for a Via (RFC 3261 §18.1.1): advertised host and port. */
export function sentBy(listener: ListenerInfo): string {
  return formatHostPort(listener.advertisedHost, listener.advertisedPort);
}
