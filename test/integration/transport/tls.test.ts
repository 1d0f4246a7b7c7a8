/**
 * Certificate checks on outbound TLS and WSS (RFC 3261 §26.2.1, RFC 5922), the
 * connect timeout on the injected Clock, and the failures sendRequest reports
 * as TransportError codes.
 */
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../../src/base/index.ts';
import type { TransportError } from '../../../src/transport/index.ts';
import { createTransportLayer, type TransportProtocol } from '../../../src/transport/index.ts';
import {
  Recorder,
  ipv6Available,
  makeCerts,
  makeRequest,
  sleep,
  type TestCerts,
} from './support.ts';

let certs: TestCerts;
before(() => {
  certs = makeCerts();
});
after(() => certs?.cleanup());

for (const protocol of ['tls', 'wss'] as TransportProtocol[]) {
  describe(`${protocol.toUpperCase()} server certificate verification`, () => {
    async function attempt(
      clientTrust: { ca?: string; rejectUnauthorized?: boolean },
      serverName?: string,
    ): Promise<void> {
      const server = await createTransportLayer({
        id: 'S',
        listen: [`${protocol}:127.0.0.1:0`],
        tls: { cert: certs.cert, key: certs.key },
      });
      const rs = new Recorder();
      server.setDelegate(rs);
      const client = await createTransportLayer({
        id: 'C',
        listen: [`${protocol}:127.0.0.1:0`],
        tls: { cert: certs.cert, key: certs.key, ca: clientTrust.ca },
        rejectUnauthorized: clientTrust.rejectUnauthorized,
      });
      try {
        await client.sendRequest(makeRequest(client.listeners[0]!), {
          protocol,
          address: '127.0.0.1',
          port: server.listeners[0]!.local.port,
          serverName,
        });
        await rs.nextRequest();
      } finally {
        await client.close();
        await server.close();
      }
    }

    it(
      'accepts a certificate from the trusted CA whose iPAddress SAN is the destination',
      { timeout: 5000 },
      async () => {
        await attempt({ ca: certs.ca });
      },
    );

    it(
      'accepts it for a serverName the certificate names (DNS:localhost)',
      { timeout: 5000 },
      async () => {
        await attempt({ ca: certs.ca }, 'localhost');
      },
    );

    it(
      'refuses a certificate from a CA it does not trust: SB_ERR_TRANSPORT_CONNECT',
      { timeout: 5000 },
      async () => {
        await assert.rejects(attempt({ ca: certs.otherCa }), (e: TransportError) => {
          assert.equal(e.code, 'SB_ERR_TRANSPORT_CONNECT');
          return true;
        });
      },
    );

    it('refuses a certificate that does not name the serverName', { timeout: 5000 }, async () => {
      await assert.rejects(attempt({ ca: certs.ca }, 'sip.example.com'), {
        code: 'SB_ERR_TRANSPORT_CONNECT',
      });
    });

    it('connects anyway with rejectUnauthorized: false', { timeout: 5000 }, async () => {
      await attempt({ ca: certs.otherCa, rejectUnauthorized: false });
    });
  });
}

describe('connect failures and the connect timeout', () => {
  /** A TCP server that accepts and then says nothing (no TLS handshake, no HTTP upgrade). */
  async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return {
      port: (server.address() as AddressInfo).port,
      close: () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    };
  }

  for (const protocol of ['tls', 'ws', 'wss'] as TransportProtocol[]) {
    it(
      `${protocol.toUpperCase()}: a peer that never completes the handshake times out on the Clock`,
      { timeout: 5000 },
      async () => {
        const clock = new ManualClock();
        const silent = await silentServer();
        const client = await createTransportLayer({
          id: 'C',
          clock,
          connectTimeoutMs: 3000,
          listen: [`${protocol}:127.0.0.1:0`],
          tls: { cert: certs.cert, key: certs.key, ca: certs.ca },
        });
        try {
          const sent = client.sendRequest(makeRequest(client.listeners[0]!), {
            protocol,
            address: '127.0.0.1',
            port: silent.port,
          });
          let settled = false;
          sent.then(
            () => (settled = true),
            () => (settled = true),
          );
          await sleep(50);
          clock.advance(2999);
          await sleep(10);
          assert.equal(settled, false, 'still waiting before the timeout');
          clock.advance(1);
          await assert.rejects(sent, (e: TransportError) => {
            assert.equal(e.code, 'SB_ERR_TRANSPORT_CONNECT');
            assert.match(e.message, /timed out after 3000 ms/);
            return true;
          });
        } finally {
          await client.close();
          await silent.close();
        }
      },
    );
  }

  it(
    'TCP: a refused connection rejects with SB_ERR_TRANSPORT_CONNECT',
    { timeout: 5000 },
    async () => {
      const silent = await silentServer();
      const port = silent.port;
      await silent.close(); // now nothing listens there
      const client = await createTransportLayer({ id: 'C', listen: ['tcp:127.0.0.1:0'] });
      try {
        await assert.rejects(
          client.sendRequest(makeRequest(client.listeners[0]!), {
            protocol: 'tcp',
            address: '127.0.0.1',
            port,
          }),
          { code: 'SB_ERR_TRANSPORT_CONNECT' },
        );
      } finally {
        await client.close();
      }
    },
  );

  it(
    'no listener for the protocol or the family: SB_ERR_TRANSPORT_NO_LISTENER; after close: SB_ERR_TRANSPORT_CLOSED',
    { timeout: 5000 },
    async () => {
      const layer = await createTransportLayer({ id: 'L', listen: ['udp:127.0.0.1:0'] });
      const req = makeRequest(layer.listeners[0]!);
      await assert.rejects(
        layer.sendRequest(req, { protocol: 'tcp', address: '127.0.0.1', port: 5060 }),
        {
          code: 'SB_ERR_TRANSPORT_NO_LISTENER',
        },
      );
      if (await ipv6Available()) {
        assert.equal(layer.listenerFor({ protocol: 'udp', address: '::1', port: 5060 }), undefined);
        await assert.rejects(
          layer.sendRequest(req, { protocol: 'udp', address: '::1', port: 5060 }),
          {
            code: 'SB_ERR_TRANSPORT_NO_LISTENER',
          },
        );
      }
      await assert.rejects(
        layer.sendRequest(req, { protocol: 'udp', address: 'example.com', port: 5060 }),
        {
          code: 'SB_ERR_TRANSPORT_NO_LISTENER',
        },
      );
      await layer.close();
      await layer.close(); // idempotent
      await assert.rejects(
        layer.sendRequest(req, { protocol: 'udp', address: '127.0.0.1', port: 5060 }),
        {
          code: 'SB_ERR_TRANSPORT_CLOSED',
        },
      );
    },
  );
});
