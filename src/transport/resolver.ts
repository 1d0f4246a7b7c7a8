/**
 * Locating SIP servers (RFC 3263 §4): a SIP or SIPS URI to an ordered list of
 * Destinations (transport, IP address, port) to try in turn.
 *
 * - §4.1 transport: the URI's `transport` parameter; else, for a numeric host
 *   or an explicit port, UDP for sip: and TLS for sips:; else NAPTR records
 *   (services SIP+D2U, SIP+D2T, SIPS+D2T, and SIP(S)+D2W of RFC 7118 §8.2),
 *   ordered by order then preference; without usable NAPTR records, SRV
 *   queries for each supported transport; without those, UDP (sip:) or TLS
 *   (sips:).
 * - §4.2 address and port: a numeric host directly (the URI's port or the
 *   transport's default); a host name with a port through A/AAAA; otherwise
 *   SRV (RFC 2782 ordering: priority, then weighted random selection within
 *   a priority) and A/AAAA of each target; without SRV records, A/AAAA of the
 *   host at the default port.
 * - §4 "TARGET": the `maddr` parameter when present, else the host.
 *
 * DNS goes through the DnsResolver interface; systemDnsResolver() wraps
 * node:dns/promises' Resolver. Tests inject a fake one (and a fixed random
 * source for the SRV weights), never the machine's resolver.
 */
import { Resolver } from 'node:dns/promises';
import { SwitchboardError, cryptoRandom, type RandomSource } from '../base/index.ts';
import { paramValue, parseUri, type SipUri } from '../sip/index.ts';
import { defaultPort, ipFamily, normalizeAddress, stripBrackets } from './address.ts';
import type { Destination, TransportProtocol } from './transport.ts';

/** A NAPTR record (RFC 3403 §4.1), as node:dns reports it. */
export interface NaptrRecord {
  readonly flags: string;
  readonly service: string;
  readonly regexp: string;
  readonly replacement: string;
  readonly order: number;
  readonly preference: number;
}

/** An SRV record (RFC 2782), as node:dns reports it. */
export interface SrvRecord {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  /** Target host name; "." means the service is not available there. */
  readonly name: string;
}

/** The DNS queries RFC 3263 needs. A failed or empty lookup may resolve to [] or reject. */
export interface DnsResolver {
  resolveNaptr(name: string): Promise<readonly NaptrRecord[]>;
  resolveSrv(name: string): Promise<readonly SrvRecord[]>;
  resolve4(name: string): Promise<readonly string[]>;
  resolve6(name: string): Promise<readonly string[]>;
}

export interface SystemDnsOptions {
  /** DNS servers (`8.8.8.8`, `[2001:db8::1]:53`); default: the system's. */
  readonly servers?: readonly string[];
  /** Per-query timeout in ms (node default: about 5 s, doubling per try). */
  readonly timeout?: number;
  readonly tries?: number;
}

/** A DnsResolver on node:dns/promises (its own Resolver instance: no global settings change). */
export function systemDnsResolver(options: SystemDnsOptions = {}): DnsResolver {
  const r = new Resolver({
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.tries === undefined ? {} : { tries: options.tries }),
  });
  if (options.servers !== undefined) r.setServers([...options.servers]);
  return {
    resolveNaptr: (name) => r.resolveNaptr(name),
    resolveSrv: (name) => r.resolveSrv(name),
    resolve4: (name) => r.resolve4(name),
    resolve6: (name) => r.resolve6(name),
  };
}

export interface SipResolverOptions {
  /** Default: systemDnsResolver(). */
  readonly dns?: DnsResolver;
  /** For the RFC 2782 weighted selection. Default: Web Crypto. */
  readonly random?: RandomSource;
  /**
   * Transports this client can use, in the order SRV queries are made when
   * there are no NAPTR records (default: udp, tcp, tls). A transport not listed
   * is never returned, except when the URI names it in `transport`.
   */
  readonly transports?: readonly TransportProtocol[];
  /** Address families to look up, in order (default: IPv4 then IPv6). */
  readonly families?: readonly (4 | 6)[];
}

export interface SipResolver {
  /**
   * The destinations for a sip: or sips: URI, best first; [] when nothing
   * resolves. A string that is not a SIP or SIPS URI throws SwitchboardError
   * SB_ERR_INVALID_URI.
   */
  resolve(uri: SipUri | string): Promise<Destination[]>;
}

/** NAPTR service field → transport (RFC 3263 §4.1, RFC 7118 §8.2; IANA "SIP NAPTR services"). */
const NAPTR_SERVICES: Readonly<Record<string, { transport: TransportProtocol; secure: boolean }>> =
  Object.freeze({
    'SIP+D2U': { transport: 'udp', secure: false },
    'SIP+D2T': { transport: 'tcp', secure: false },
    'SIPS+D2T': { transport: 'tls', secure: true },
    'SIP+D2W': { transport: 'ws', secure: false },
    'SIPS+D2W': { transport: 'wss', secure: true },
  });

/** SRV owner-name prefix per transport (RFC 3263 §4.2: "_sips" for TLS; RFC 7118 for WS). */
const SRV_PREFIX: Readonly<Record<TransportProtocol, string>> = Object.freeze({
  udp: '_sip._udp.',
  tcp: '_sip._tcp.',
  tls: '_sips._tcp.',
  ws: '_sip._ws.',
  wss: '_sips._ws.',
});

const SECURE: ReadonlySet<TransportProtocol> = new Set<TransportProtocol>(['tls', 'wss']);

/**
 * The transport a `transport` URI parameter names, given the scheme: for sips:
 * TCP means TLS and WS means WSS (RFC 3261 §26.2.2, RFC 7118 §5.2); sips: over
 * UDP is not possible (undefined).
 */
function transportFromParam(value: string, sips: boolean): TransportProtocol | undefined {
  switch (value.toLowerCase()) {
    case 'udp':
      return sips ? undefined : 'udp';
    case 'tcp':
      return sips ? 'tls' : 'tcp';
    case 'tls':
      return 'tls';
    case 'ws':
      return sips ? 'wss' : 'ws';
    case 'wss':
      return 'wss';
    default:
      return undefined;
  }
}

/** A number in [0, 1) from a RandomSource. */
function uniform(random: RandomSource): number {
  const b = new Uint8Array(4);
  random.fill(b);
  return (((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0) / 0x1_0000_0000;
}

/**
 * RFC 2782 ordering: ascending priority; within one priority, repeatedly pick a
 * record with probability proportional to its weight ("arrange all SRV RRs
 * (that have not been ordered yet) in any order, except that all those with
 * weight 0 are placed at the beginning of the list. Compute the sum of the
 * weights ... choose a uniform random number between 0 and the sum computed
 * (inclusive), and select the RR whose running sum value is the first in the
 * selected order which is greater than or equal to the random number").
 */
export function orderSrv(records: readonly SrvRecord[], random: RandomSource): SrvRecord[] {
  const usable = records.filter((r) => r.name !== '' && r.name !== '.');
  const priorities = [...new Set(usable.map((r) => r.priority))].sort((a, b) => a - b);
  const out: SrvRecord[] = [];
  for (const p of priorities) {
    const group = usable
      .filter((r) => r.priority === p)
      .sort((a, b) => (a.weight === 0 ? 0 : 1) - (b.weight === 0 ? 0 : 1));
    while (group.length > 0) {
      const sum = group.reduce((s, r) => s + r.weight, 0);
      const target = Math.floor(uniform(random) * (sum + 1));
      let running = 0;
      let pick = group.length - 1;
      for (let i = 0; i < group.length; i++) {
        running += group[i]!.weight;
        if (running >= target) {
          pick = i;
          break;
        }
      }
      out.push(group[pick]!);
      group.splice(pick, 1);
    }
  }
  return out;
}

async function settle<T>(p: Promise<readonly T[]>): Promise<readonly T[]> {
  try {
    return await p;
  } catch {
    return []; // NXDOMAIN, NODATA, SERVFAIL, timeouts: nothing usable from this query
  }
}

class Rfc3263Resolver implements SipResolver {
  private readonly dns: DnsResolver;
  private readonly random: RandomSource;
  private readonly transports: readonly TransportProtocol[];
  private readonly families: readonly (4 | 6)[];

  constructor(options: SipResolverOptions) {
    this.dns = options.dns ?? systemDnsResolver();
    this.random = options.random ?? cryptoRandom();
    this.transports = options.transports ?? ['udp', 'tcp', 'tls'];
    this.families = options.families ?? [4, 6];
  }

  async resolve(input: SipUri | string): Promise<Destination[]> {
    const uri = typeof input === 'string' ? parseSipUri(input) : input;
    const sips = uri.scheme === 'sips';
    const maddr = paramValue(uri.params, 'maddr');
    // DNS names compare case-insensitively (RFC 4343); query them in lower case.
    const target = stripBrackets(
      maddr !== undefined && maddr !== '' ? maddr : uri.host,
    ).toLowerCase();
    const numeric = ipFamily(target) !== 0;
    // RFC 5922 §4: a TLS peer is verified against the SIP domain, the host of the URI.
    const serverName = ipFamily(uri.host) === 0 ? uri.host.toLowerCase() : undefined;

    const param = paramValue(uri.params, 'transport');
    let transport: TransportProtocol | undefined;
    if (param !== undefined) {
      transport = transportFromParam(param, sips);
      if (transport === undefined) return []; // unknown transport, or sips: over UDP
    }

    // §4.1/§4.2: a numeric TARGET, or a port in the URI, fixes the transport without DNS.
    if (numeric || uri.port !== undefined) {
      const t = transport ?? (sips ? 'tls' : 'udp');
      const port = uri.port ?? defaultPort(t);
      if (numeric) return [this.destination(t, normalizeAddress(target), port, serverName)];
      return this.addresses(target, t, port, serverName);
    }

    // §4.2: a transport was given: SRV for it, then A/AAAA at the default port.
    if (transport !== undefined) {
      const viaSrv = await this.srv(SRV_PREFIX[transport] + target, transport, serverName);
      if (viaSrv.length > 0) return viaSrv;
      return this.addresses(target, transport, defaultPort(transport), serverName);
    }

    // §4.1: NAPTR.
    const naptr = await this.naptr(target, sips, serverName);
    if (naptr.length > 0) return naptr;

    // "If no NAPTR records are found, the client constructs SRV queries for those transport
    // protocols it supports, and does a query for each."
    const out: Destination[] = [];
    for (const t of this.transports) {
      if (sips && !SECURE.has(t)) continue;
      out.push(...(await this.srv(SRV_PREFIX[t] + target, t, serverName)));
    }
    if (out.length > 0) return dedupe(out);

    // "If no SRV records were found, the client SHOULD use TCP for a SIPS URI, and UDP for a
    // SIP URI" (TCP for sips: is TLS), at the default port (§4.2).
    const fallback: TransportProtocol = sips ? 'tls' : 'udp';
    return this.addresses(target, fallback, defaultPort(fallback), serverName);
  }

  private destination(
    protocol: TransportProtocol,
    address: string,
    port: number,
    serverName: string | undefined,
  ): Destination {
    return SECURE.has(protocol) && serverName !== undefined
      ? { protocol, address, port, serverName }
      : { protocol, address, port };
  }

  /** NAPTR → SRV → A/AAAA (§4.1), records with services we do not run discarded. */
  private async naptr(
    domain: string,
    sips: boolean,
    serverName: string | undefined,
  ): Promise<Destination[]> {
    const records = [...(await settle(this.dns.resolveNaptr(domain)))]
      .filter((r) => r.flags.toLowerCase() === 's')
      .map((r) => ({ r, service: NAPTR_SERVICES[r.service.toUpperCase()] }))
      .filter(
        (x): x is { r: NaptrRecord; service: { transport: TransportProtocol; secure: boolean } } =>
          x.service !== undefined &&
          this.transports.includes(x.service.transport) &&
          // "If a SIPS URI was used, the client MUST discard any services that do not contain "SIPS""
          (!sips || x.service.secure),
      )
      .sort((a, b) => a.r.order - b.r.order || a.r.preference - b.r.preference);
    const out: Destination[] = [];
    for (const { r, service } of records) {
      out.push(...(await this.srv(r.replacement, service.transport, serverName)));
    }
    return dedupe(out);
  }

  private async srv(
    name: string,
    transport: TransportProtocol,
    serverName: string | undefined,
  ): Promise<Destination[]> {
    const ordered = orderSrv(await settle(this.dns.resolveSrv(name)), this.random);
    const out: Destination[] = [];
    for (const rec of ordered) {
      out.push(...(await this.addresses(rec.name, transport, rec.port, serverName)));
    }
    return out;
  }

  private async addresses(
    host: string,
    transport: TransportProtocol,
    port: number,
    serverName: string | undefined,
  ): Promise<Destination[]> {
    const name = host.endsWith('.') ? host.slice(0, -1) : host;
    if (ipFamily(name) !== 0)
      return [this.destination(transport, normalizeAddress(name), port, serverName)];
    const out: Destination[] = [];
    for (const family of this.families) {
      const found = await settle(family === 4 ? this.dns.resolve4(name) : this.dns.resolve6(name));
      for (const a of found)
        out.push(this.destination(transport, normalizeAddress(a), port, serverName));
    }
    return out;
  }
}

function parseSipUri(text: string): SipUri {
  const r = parseUri(text);
  if (!r.ok) throw new SwitchboardError('SB_ERR_INVALID_URI', `${text}: ${r.error}`);
  if (r.value.kind !== 'sip') {
    throw new SwitchboardError('SB_ERR_INVALID_URI', `${text}: not a sip: or sips: URI`);
  }
  return r.value;
}

function dedupe(list: readonly Destination[]): Destination[] {
  const seen = new Set<string>();
  const out: Destination[] = [];
  for (const d of list) {
    const key = `${d.protocol} ${d.address} ${d.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(d);
  }
  return out;
}

/** An RFC 3263 resolver over the given (or the system's) DNS. */
export function createSipResolver(options: SipResolverOptions = {}): SipResolver {
  return new Rfc3263Resolver(options);
}
