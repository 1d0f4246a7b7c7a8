/**
 * RFC 3263 resolution against a fake DNS (never the machine's resolver) and a
 * scripted random source for the RFC 2782 weighted selection.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RandomSource } from '../base/index.ts';
import {
  createSipResolver,
  orderSrv,
  type DnsResolver,
  type NaptrRecord,
  type SrvRecord,
} from './resolver.ts';
import type { Destination } from './transport.ts';

interface Zone {
  naptr?: Record<string, NaptrRecord[]>;
  srv?: Record<string, SrvRecord[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
}

/** A fake DNS over a zone; records every query. Missing names reject like NXDOMAIN. */
class FakeDns implements DnsResolver {
  readonly queries: string[] = [];
  constructor(private readonly zone: Zone) {}
  private answer<T>(
    type: string,
    table: Record<string, T[]> | undefined,
    name: string,
  ): Promise<T[]> {
    this.queries.push(`${type} ${name}`);
    const found = table?.[name];
    if (found === undefined) {
      return Promise.reject(
        Object.assign(new Error(`queryX ENOTFOUND ${name}`), { code: 'ENOTFOUND' }),
      );
    }
    return Promise.resolve(found);
  }
  resolveNaptr(name: string) {
    return this.answer('NAPTR', this.zone.naptr, name);
  }
  resolveSrv(name: string) {
    return this.answer('SRV', this.zone.srv, name);
  }
  resolve4(name: string) {
    return this.answer('A', this.zone.a, name);
  }
  resolve6(name: string) {
    return this.answer('AAAA', this.zone.aaaa, name);
  }
}

/** A RandomSource whose successive uniform draws are `values` (each in [0, 1)), then 0. */
function scripted(values: number[]): RandomSource {
  const queue = [...values];
  return {
    fill(bytes) {
      const v = Math.floor((queue.shift() ?? 0) * 0x1_0000_0000) >>> 0;
      bytes[0] = v >>> 24;
      bytes[1] = (v >>> 16) & 0xff;
      bytes[2] = (v >>> 8) & 0xff;
      bytes[3] = v & 0xff;
    },
  };
}

const naptr = (
  order: number,
  preference: number,
  service: string,
  replacement: string,
  flags = 's',
): NaptrRecord => ({
  order,
  preference,
  service,
  replacement,
  flags,
  regexp: '',
});
const srv = (priority: number, weight: number, port: number, name: string): SrvRecord => ({
  priority,
  weight,
  port,
  name,
});

const short = (ds: Destination[]): string[] =>
  ds.map((d) => `${d.protocol} ${d.address} ${d.port}${d.serverName ? ` ${d.serverName}` : ''}`);

describe('RFC 3263 resolver: numeric hosts need no DNS (§4.1, §4.2)', () => {
  const cases: [string, string[]][] = [
    ['sip:bob@192.0.2.1', ['udp 192.0.2.1 5060']],
    ['sip:bob@192.0.2.1:5070', ['udp 192.0.2.1 5070']],
    ['sip:bob@[2001:db8::1]', ['udp 2001:db8::1 5060']],
    ['sip:bob@[2001:DB8:0::1]:5080;transport=tcp', ['tcp 2001:db8::1 5080']],
    ['sip:192.0.2.1;transport=TLS', ['tls 192.0.2.1 5061']],
    ['sip:192.0.2.1;transport=ws', ['ws 192.0.2.1 80']],
    ['sip:192.0.2.1;transport=wss', ['wss 192.0.2.1 443']],
    ['sips:bob@192.0.2.1', ['tls 192.0.2.1 5061']],
    ['sips:bob@192.0.2.1;transport=tcp', ['tls 192.0.2.1 5061']],
    ['sips:bob@192.0.2.1:5999;transport=ws', ['wss 192.0.2.1 5999']],
    ['sips:bob@192.0.2.1;transport=udp', []],
    ['sip:bob@192.0.2.1;transport=sctp', []],
    ['sip:bob@example.com;maddr=192.0.2.9', ['udp 192.0.2.9 5060']],
  ];
  for (const [uri, want] of cases) {
    it(`${uri} → ${want.join(', ') || 'nothing'}`, async () => {
      const dns = new FakeDns({});
      const r = createSipResolver({ dns, random: scripted([]) });
      assert.deepEqual(short(await r.resolve(uri)), want);
      assert.deepEqual(dns.queries, [], 'no DNS query for a numeric target');
    });
  }

  it('throws SB_ERR_INVALID_URI for anything but sip:/sips:', async () => {
    const r = createSipResolver({ dns: new FakeDns({}) });
    await assert.rejects(r.resolve('tel:+15551234'), { code: 'SB_ERR_INVALID_URI' });
    await assert.rejects(r.resolve('not a uri'), { code: 'SB_ERR_INVALID_URI' });
  });
});

describe('RFC 3263 resolver: host names', () => {
  it('a port in the URI: A/AAAA only, UDP for sip: (§4.2), IPv4 before IPv6 by default', async () => {
    const dns = new FakeDns({
      a: { 'example.com': ['192.0.2.1'] },
      aaaa: { 'example.com': ['2001:db8::1'] },
    });
    const r = createSipResolver({ dns, random: scripted([]) });
    assert.deepEqual(short(await r.resolve('sip:bob@example.com:5070')), [
      'udp 192.0.2.1 5070',
      'udp 2001:db8::1 5070',
    ]);
    assert.deepEqual(dns.queries, ['A example.com', 'AAAA example.com']);
    const v6first = createSipResolver({ dns, families: [6, 4] });
    assert.deepEqual(short(await v6first.resolve('sip:example.com:5070')), [
      'udp 2001:db8::1 5070',
      'udp 192.0.2.1 5070',
    ]);
  });

  it('NAPTR records in order then preference, each through SRV and A (§4.1)', async () => {
    const dns = new FakeDns({
      naptr: {
        'example.com': [
          naptr(50, 50, 'SIP+D2U', '_sip._udp.example.com'),
          naptr(10, 60, 'SIP+D2T', '_sip._tcp.example.com'),
          naptr(10, 50, 'SIPS+D2T', '_sips._tcp.example.com'),
          naptr(5, 1, 'SIP+D2S', '_sip._sctp.example.com'), // SCTP: not supported, discarded
          naptr(1, 1, 'E2U+sip', '!^.*$!sip:x@y!', 'u'), // not an "s" record
        ],
      },
      srv: {
        '_sip._udp.example.com': [srv(0, 0, 5060, 'udp.example.com')],
        '_sip._tcp.example.com': [srv(0, 0, 5060, 'tcp.example.com')],
        '_sips._tcp.example.com': [srv(0, 0, 5061, 'tls.example.com')],
      },
      a: {
        'udp.example.com': ['192.0.2.10'],
        'tcp.example.com': ['192.0.2.20'],
        'tls.example.com': ['192.0.2.30'],
      },
    });
    const r = createSipResolver({ dns, random: scripted([]) });
    assert.deepEqual(short(await r.resolve('sip:bob@example.com')), [
      'tls 192.0.2.30 5061 example.com',
      'tcp 192.0.2.20 5060',
      'udp 192.0.2.10 5060',
    ]);
    assert.equal(dns.queries[0], 'NAPTR example.com');
    assert.ok(!dns.queries.includes('SRV _sip._sctp.example.com'));
  });

  it('a sips: URI keeps only SIPS services (§4.1) and names the domain for certificate checks', async () => {
    const dns = new FakeDns({
      naptr: {
        'example.com': [
          naptr(10, 10, 'SIP+D2U', '_sip._udp.example.com'),
          naptr(20, 10, 'SIPS+D2T', '_sips._tcp.example.com'),
        ],
      },
      srv: { '_sips._tcp.example.com': [srv(0, 0, 5061, 'tls.example.com.')] },
      a: { 'tls.example.com': ['192.0.2.30'] },
    });
    const r = createSipResolver({ dns, random: scripted([]) });
    assert.deepEqual(short(await r.resolve('sips:bob@Example.COM')), [
      'tls 192.0.2.30 5061 example.com',
    ]);
    assert.ok(!dns.queries.includes('SRV _sip._udp.example.com'));
  });

  it('NAPTR services for WebSocket (RFC 7118 D2W) when the client supports them', async () => {
    const zone: Zone = {
      naptr: { 'example.com': [naptr(10, 10, 'SIPS+D2W', '_sips._ws.example.com')] },
      srv: { '_sips._ws.example.com': [srv(0, 0, 443, 'ws.example.com')] },
      a: { 'ws.example.com': ['192.0.2.40'] },
    };
    const withWs = createSipResolver({
      dns: new FakeDns(zone),
      transports: ['udp', 'tcp', 'tls', 'wss'],
    });
    assert.deepEqual(short(await withWs.resolve('sip:example.com')), [
      'wss 192.0.2.40 443 example.com',
    ]);
    // Without WSS support the NAPTR set is unusable: SRV for what we support, then A.
    const dns = new FakeDns({ ...zone, a: { 'example.com': ['192.0.2.1'] } });
    const without = createSipResolver({ dns });
    assert.deepEqual(short(await without.resolve('sip:example.com')), ['udp 192.0.2.1 5060']);
    assert.deepEqual(dns.queries, [
      'NAPTR example.com',
      'SRV _sip._udp.example.com',
      'SRV _sip._tcp.example.com',
      'SRV _sips._tcp.example.com',
      'A example.com',
      'AAAA example.com',
    ]);
  });

  it('no NAPTR: SRV for each supported transport in order (§4.1)', async () => {
    const dns = new FakeDns({
      srv: {
        '_sip._tcp.example.com': [srv(0, 0, 5062, 'sip.example.com')],
        '_sip._udp.example.com': [srv(0, 0, 5060, 'sip.example.com')],
      },
      a: { 'sip.example.com': ['192.0.2.5'] },
    });
    const r = createSipResolver({ dns, transports: ['tcp', 'udp'] });
    assert.deepEqual(short(await r.resolve('sip:example.com')), [
      'tcp 192.0.2.5 5062',
      'udp 192.0.2.5 5060',
    ]);
  });

  it('no NAPTR, no SRV: A/AAAA at the default port, UDP for sip: and TLS for sips: (§4.1, §4.2)', async () => {
    const zone: Zone = {
      a: { 'example.com': ['192.0.2.1'] },
      aaaa: { 'example.com': ['2001:db8::5'] },
    };
    const r = createSipResolver({ dns: new FakeDns(zone) });
    assert.deepEqual(short(await r.resolve('sip:example.com')), [
      'udp 192.0.2.1 5060',
      'udp 2001:db8::5 5060',
    ]);
    assert.deepEqual(short(await r.resolve('sips:example.com')), [
      'tls 192.0.2.1 5061 example.com',
      'tls 2001:db8::5 5061 example.com',
    ]);
  });

  it('a transport parameter: SRV for that transport only, then A at its default port (§4.2)', async () => {
    const dns = new FakeDns({
      srv: { '_sip._tcp.example.com': [srv(1, 0, 5090, 'tcp.example.com')] },
      a: { 'tcp.example.com': ['192.0.2.7'], 'other.example.com': ['192.0.2.8'] },
    });
    const r = createSipResolver({ dns });
    assert.deepEqual(short(await r.resolve('sip:example.com;transport=tcp')), [
      'tcp 192.0.2.7 5090',
    ]);
    assert.ok(
      !dns.queries.some((q) => q.startsWith('NAPTR')),
      'no NAPTR when the transport is given',
    );
    assert.deepEqual(short(await r.resolve('sips:other.example.com;transport=tcp')), [
      'tls 192.0.2.8 5061 other.example.com',
    ]);
    assert.ok(dns.queries.includes('SRV _sips._tcp.other.example.com'));
  });

  it('an SRV target of "." means no service there', async () => {
    const dns = new FakeDns({
      srv: { '_sip._udp.example.com': [srv(0, 0, 0, '.')] },
      a: { 'example.com': ['192.0.2.1'] },
    });
    const r = createSipResolver({ dns, transports: ['udp'] });
    assert.deepEqual(short(await r.resolve('sip:example.com')), ['udp 192.0.2.1 5060']);
  });

  it('DNS failures give an empty list, not an exception', async () => {
    const r = createSipResolver({ dns: new FakeDns({}) });
    assert.deepEqual(await r.resolve('sip:nowhere.invalid'), []);
  });
});

describe('RFC 2782 SRV ordering (priority, then weighted random)', () => {
  const records = [
    srv(20, 0, 1, 'backup.example.com'),
    srv(10, 60, 1, 'a.example.com'),
    srv(10, 30, 1, 'b.example.com'),
    srv(10, 0, 1, 'zero.example.com'),
    srv(10, 10, 1, 'c.example.com'),
  ];
  const names = (rs: SrvRecord[]): string[] => rs.map((r) => r.name.split('.')[0]!);

  it('lower priority first; within a priority the draw picks by running weight sums', () => {
    // Priority 10, order after weight-0 first: zero(0) a(60) b(30) c(10), sum 100.
    // Draw 0 → target 0 → zero (running 0 >= 0). Then a b c, sum 100: draw 0.95 → target 95 →
    // a 60, b 90, c 100 → c. Then a b, sum 90: draw 0.5 → target 45 → a. Then b.
    const out = orderSrv(records, scripted([0, 0.95, 0.5, 0]));
    assert.deepEqual(names(out), ['zero', 'c', 'a', 'b', 'backup']);
  });

  it('other draws, other orders: a heavy record wins a high share of first places', () => {
    const out = orderSrv(records, scripted([0.9999, 0.1, 0]));
    assert.equal(out[out.length - 1]!.name, 'backup.example.com', 'priority 20 always last');
    let firstA = 0;
    const n = 2000;
    let s = 12345;
    const lcg: RandomSource = {
      fill(b) {
        for (let i = 0; i < b.length; i++) {
          s = (s * 1103515245 + 12345) >>> 0;
          b[i] = s >>> 24;
        }
      },
    };
    for (let i = 0; i < n; i++) {
      const o = orderSrv([srv(0, 90, 1, 'a.example.com'), srv(0, 10, 1, 'b.example.com')], lcg);
      if (o[0]!.name === 'a.example.com') firstA++;
    }
    assert.ok(firstA / n > 0.8 && firstA / n < 0.97, `a first in ${firstA} of ${n}`);
  });

  it('drops "." targets and keeps every other record exactly once', () => {
    const out = orderSrv([...records, srv(0, 5, 0, '.')], scripted([]));
    assert.equal(out.length, records.length);
    assert.deepEqual(new Set(out.map((r) => r.name)), new Set(records.map((r) => r.name)));
  });
});
