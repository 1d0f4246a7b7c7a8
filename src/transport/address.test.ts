import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, it } from 'node:test';
import {
  defaultPort,
  endpointKey,
  formatHostPort,
  ipFamily,
  isUnspecified,
  normalizeAddress,
  protocolOfViaTransport,
  sameAddress,
  stripBrackets,
  uriHost,
} from './address.ts';

describe('address helpers', () => {
  const normal: [string, string][] = [
    ['127.0.0.1', '127.0.0.1'],
    ['[::1]', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['[::FFFF:c000:201]', '192.0.2.1'],
    ['fe80::1%eth0', 'fe80::1%eth0'],
    ['Example.COM', 'example.com'],
  ];
  for (const [input, want] of normal) {
    it(`normalizeAddress(${input}) = ${want}`, () => assert.equal(normalizeAddress(input), want));
  }

  it('sameAddress compares canonical forms (RFC 5118 §4.5: received with or without brackets)', () => {
    assert.ok(sameAddress('[2001:db8::1]', '2001:DB8:0::1'));
    assert.ok(sameAddress('::ffff:127.0.0.1', '127.0.0.1'));
    assert.ok(!sameAddress('127.0.0.1', '127.0.0.2'));
    assert.ok(!sameAddress('pc33.example.com', '192.0.2.1'));
  });

  it('ipFamily agrees with node:net isIP on dotted quads and near misses', () => {
    const fixed = [
      '0.0.0.0',
      '255.255.255.255',
      '256.1.1.1',
      '1.2.3',
      '1.2.3.4.5',
      '01.2.3.4',
      '1.02.3.4',
      '1.2.3.04',
      '1..2.3',
      '.1.2.3',
      '1.2.3.',
      '1.2.3.4 ',
      '1.2.3.4a',
      '1000.1.1.1',
      '10.0.0.10',
      '100.200.250.199',
      '1.2.3.-4',
      '',
      '::ffff:1.2.3.4',
      '[127.0.0.1]',
    ];
    let seed = 7;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const alphabet = '0123456789.0123456789.x:';
    const random: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      let t = '';
      for (let k = 4 + rnd(14); k > 0; k--) t += alphabet[rnd(alphabet.length)];
      random.push(t);
    }
    for (const t of [...fixed, ...random]) {
      const bare = t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
      assert.equal(ipFamily(t), isIP(bare), t);
      if (isIP(bare) === 4) assert.equal(normalizeAddress(t), bare, t);
    }
  });

  it('families, brackets and host:port', () => {
    assert.equal(ipFamily('127.0.0.1'), 4);
    assert.equal(ipFamily('[::1]'), 6);
    assert.equal(ipFamily('example.com'), 0);
    assert.equal(stripBrackets('[::1]'), '::1');
    assert.equal(stripBrackets('host'), 'host');
    assert.equal(uriHost('::1'), '[::1]');
    assert.equal(uriHost('[::1]'), '[::1]');
    assert.equal(uriHost('127.0.0.1'), '127.0.0.1');
    assert.equal(formatHostPort('::1', 5060), '[::1]:5060');
    assert.ok(isUnspecified('0.0.0.0'));
    assert.ok(isUnspecified('[::]'));
    assert.ok(!isUnspecified('127.0.0.1'));
  });

  it('default ports (RFC 3261 §19.1.2, RFC 7118) and Via transport tokens', () => {
    assert.deepEqual(
      (['udp', 'tcp', 'tls', 'ws', 'wss'] as const).map(defaultPort),
      [5060, 5060, 5061, 80, 443],
    );
    assert.equal(protocolOfViaTransport('tls'), 'tls');
    assert.equal(protocolOfViaTransport('WSS'), 'wss');
    assert.equal(protocolOfViaTransport('SCTP'), undefined);
  });

  it('endpoint keys include the protocol and the canonical address', () => {
    assert.equal(
      endpointKey('tcp', { address: '0::1', port: 5 }),
      endpointKey('tcp', { address: '[::1]', port: 5 }),
    );
    assert.notEqual(
      endpointKey('tcp', { address: '::1', port: 5 }),
      endpointKey('tls', { address: '::1', port: 5 }),
    );
  });
});
