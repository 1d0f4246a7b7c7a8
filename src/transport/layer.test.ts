import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSocket } from 'node:dgram';
import { createTransportLayer, formatListenSpec, parseListenSpec, viaFor } from './layer.ts';
import type { ListenerInfo } from './transport.ts';

describe('parseListenSpec', () => {
  const good: [string, string, string, number][] = [
    ['udp:127.0.0.1:5060', 'udp', '127.0.0.1', 5060],
    ['TCP:[::1]:5070', 'tcp', '::1', 5070],
    ['tls:127.0.0.1', 'tls', '127.0.0.1', 5061],
    ['ws:0.0.0.0:8080', 'ws', '0.0.0.0', 8080],
    ['wss:[::]', 'wss', '::', 443],
    ['udp:[::1]', 'udp', '::1', 5060],
    ['tcp:127.0.0.1:0', 'tcp', '127.0.0.1', 0],
  ];
  for (const [spec, protocol, address, port] of good) {
    it(`${spec} → ${protocol} ${address} ${port}`, () => {
      assert.deepEqual({ ...parseListenSpec(spec) }, { protocol, address, port });
    });
  }

  const bad: [string, RegExp][] = [
    ['127.0.0.1:5060', /unknown protocol/],
    ['sctp:127.0.0.1:5060', /unknown protocol/],
    ['udp', /protocol:address/],
    ['udp:::1:5060', /brackets/],
    ['udp:[::1', /unterminated/],
    ['udp:[127.0.0.1]:5060', /not an IPv6/],
    ['udp:example.com:5060', /not an IP address/],
    ['udp:127.0.0.1:65536', /bad port/],
    ['udp:127.0.0.1:x', /bad port/],
    ['udp:[::1]5060', /expected :port/],
  ];
  for (const [spec, why] of bad) {
    it(`rejects ${JSON.stringify(spec)} with SB_ERR_INVALID_ARGUMENT`, () => {
      assert.throws(
        () => parseListenSpec(spec),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, 'SB_ERR_INVALID_ARGUMENT');
          assert.match(e.message, why);
          return true;
        },
      );
    });
  }

  it('formatListenSpec is its inverse', () => {
    for (const s of ['udp:127.0.0.1:5060', 'tcp:[::1]:5070', 'wss:0.0.0.0:443']) {
      assert.equal(formatListenSpec(parseListenSpec(s)), s);
    }
  });
});

describe('viaFor (RFC 3261 §18.1.1 sent-by, RFC 3581 rport)', () => {
  const l = (protocol: ListenerInfo['protocol'], host: string, port: number): ListenerInfo => ({
    id: 'x',
    protocol,
    local: { address: host, port },
    advertisedHost: host,
    advertisedPort: port,
  });
  it('writes transport, sent-by (IPv6 bracketed), branch and the rport flag', () => {
    assert.equal(
      viaFor(l('udp', '127.0.0.1', 5060), 'z9hG4bK1'),
      'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport',
    );
    assert.equal(
      viaFor(l('wss', '::1', 443), 'z9hG4bK2', { rport: false }),
      'SIP/2.0/WSS [::1]:443;branch=z9hG4bK2',
    );
  });
});

describe('createTransportLayer configuration errors', () => {
  it('refuses a TLS or WSS listener without a certificate before binding anything', async () => {
    await assert.rejects(createTransportLayer({ listen: ['udp:127.0.0.1:0', 'tls:127.0.0.1:0'] }), {
      code: 'SB_ERR_INVALID_ARGUMENT',
    });
    await assert.rejects(createTransportLayer({ listen: ['wss:127.0.0.1:0'] }), {
      code: 'SB_ERR_INVALID_ARGUMENT',
    });
  });

  it('accepts a client-only TLS listener without a certificate (outbound calls only)', async () => {
    const layer = await createTransportLayer({
      listen: [{ listen: 'tls:127.0.0.1:0', clientOnly: true }],
    });
    try {
      assert.equal(layer.listeners[0]!.protocol, 'tls');
      assert.ok(layer.listenerFor({ protocol: 'tls', address: '127.0.0.1', port: 5061 }));
    } finally {
      await layer.close();
    }
  });

  it('rejects with the bind error and releases what it had bound', async () => {
    const blocker = createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(0, '127.0.0.1', () => r()));
    const port = blocker.address().port;
    try {
      await assert.rejects(
        createTransportLayer({ listen: ['tcp:127.0.0.1:0', `udp:127.0.0.1:${port}`] }),
        { code: 'EADDRINUSE' },
      );
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  });

  it('reports bound ports for port 0, in configured order, with advertised overrides', async () => {
    const layer = await createTransportLayer({
      listen: [
        'udp:127.0.0.1:0',
        {
          listen: 'tcp:127.0.0.1:0',
          advertisedHost: 'sip.example.com',
          advertisedPort: 5060,
          id: 'tcp-main',
        },
      ],
    });
    try {
      const [udp, tcp] = layer.listeners;
      assert.equal(udp!.protocol, 'udp');
      assert.ok(udp!.local.port > 0);
      assert.equal(udp!.advertisedPort, udp!.local.port);
      assert.equal(udp!.id, `udp:127.0.0.1:${udp!.local.port}`);
      assert.equal(tcp!.id, 'tcp-main');
      assert.equal(tcp!.advertisedHost, 'sip.example.com');
      assert.equal(tcp!.advertisedPort, 5060);
      assert.ok(tcp!.local.port > 0);
    } finally {
      await layer.close();
    }
  });
});
