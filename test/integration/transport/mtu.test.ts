/**
 * RFC 3261 §18.1.1: "If a request is within 200 bytes of the path MTU, or if it
 * is larger than 1300 bytes and the path MTU is unknown, the request MUST be sent
 * using an RFC 2914 congestion controlled transport protocol, such as TCP."
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createServer, type AddressInfo } from 'node:net';
import {
  createTransportLayer,
  type SwitchboardTransportLayer,
} from '../../../src/transport/index.ts';
import { Recorder, createResponse, makeRequest } from './support.ts';

const BIG = 'x'.repeat(2048);

/** A layer with UDP and TCP listeners on the same port number (retried if another test takes it). */
async function layerOnOnePort(id: string): Promise<SwitchboardTransportLayer> {
  for (let attempt = 0; ; attempt++) {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    try {
      return await createTransportLayer({
        id,
        listen: [`udp:127.0.0.1:${port}`, `tcp:127.0.0.1:${port}`],
      });
    } catch (err) {
      if (attempt >= 5 || (err as { code?: string }).code !== 'EADDRINUSE') throw err;
    }
  }
}

describe('the MTU rule (RFC 3261 §18.1.1)', () => {
  it(
    'a 2 KB request for UDP goes over TCP, its top Via rewritten to the TCP listener',
    { timeout: 5000 },
    async () => {
      const a = await createTransportLayer({
        id: 'A',
        listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      });
      // B listens for UDP and TCP on one port number, as RFC 3263 resolution would give one port.
      const b = await layerOnOnePort('B');
      const ra = new Recorder();
      const rb = new Recorder();
      a.setDelegate(ra);
      b.setDelegate(rb);
      try {
        const [udpA, tcpA] = a.listeners;
        const port = b.listeners[0]!.local.port;
        const req = makeRequest(udpA!, { method: 'MESSAGE', body: BIG });
        assert.ok(a.serializedSize(req) > 1300);
        await a.sendRequest(req, { protocol: 'udp', address: '127.0.0.1', port });
        const got = await rb.nextRequest();
        assert.equal(got.source.protocol, 'tcp');
        assert.equal(got.source.listener.id, b.listeners[1]!.id);
        assert.equal(got.message.bodyText(), BIG);
        const via = got.message.topVia;
        assert.equal(via.transport, 'TCP');
        assert.equal(via.host, tcpA!.advertisedHost);
        assert.equal(via.port, tcpA!.advertisedPort, 'sent-by is the TCP listener');
        assert.equal(via.branch, req.topVia.branch, 'same branch: same transaction');
        await b.sendResponse(createResponse(got.message, 200, { toTag: 't' }), got.source);
        const res = await ra.nextResponse();
        assert.equal(res.source.protocol, 'tcp', 'the response came back over the TCP connection');
      } finally {
        await a.close();
        await b.close();
      }
    },
  );

  it('a small request stays on UDP', { timeout: 5000 }, async () => {
    const a = await createTransportLayer({
      id: 'A',
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
    });
    const b = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
    const rb = new Recorder();
    b.setDelegate(rb);
    try {
      const req = makeRequest(a.listeners[0]!, { body: 'small' });
      await a.sendRequest(req, {
        protocol: 'udp',
        address: '127.0.0.1',
        port: b.listeners[0]!.local.port,
      });
      const got = await rb.nextRequest();
      assert.equal(got.source.protocol, 'udp');
      assert.equal(got.message.topVia.transport, 'UDP');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it(
    'without a TCP listener the large request goes over UDP anyway',
    { timeout: 5000 },
    async () => {
      const a = await createTransportLayer({ id: 'A', listen: ['udp:127.0.0.1:0'] });
      const b = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      try {
        await a.sendRequest(makeRequest(a.listeners[0]!, { body: BIG }), {
          protocol: 'udp',
          address: '127.0.0.1',
          port: b.listeners[0]!.local.port,
        });
        const got = await rb.nextRequest();
        assert.equal(got.source.protocol, 'udp');
        assert.equal(got.message.bodyText(), BIG);
      } finally {
        await a.close();
        await b.close();
      }
    },
  );

  it(
    'when the TCP connection is refused it retries over UDP (§18.1.1 SHOULD)',
    { timeout: 5000 },
    async () => {
      const a = await createTransportLayer({
        id: 'A',
        listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      });
      const b = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      try {
        // Nothing listens for TCP on B's UDP port number: the connect is refused.
        await a.sendRequest(makeRequest(a.listeners[0]!, { body: BIG }), {
          protocol: 'udp',
          address: '127.0.0.1',
          port: b.listeners[0]!.local.port,
        });
        const got = await rb.nextRequest();
        assert.equal(got.source.protocol, 'udp');
        assert.equal(got.message.topVia.transport, 'UDP', 'the original Via');
      } finally {
        await a.close();
        await b.close();
      }
    },
  );

  it('the threshold is configurable (mtu option)', { timeout: 5000 }, async () => {
    const a = await createTransportLayer({
      id: 'A',
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      mtu: 100,
    });
    const b = await createTransportLayer({ id: 'B', listen: ['tcp:127.0.0.1:0'] });
    const rb = new Recorder();
    b.setDelegate(rb);
    try {
      await a.sendRequest(makeRequest(a.listeners[0]!), {
        protocol: 'udp',
        address: '127.0.0.1',
        port: b.listeners[0]!.local.port,
      });
      assert.equal((await rb.nextRequest()).source.protocol, 'tcp');
    } finally {
      await a.close();
      await b.close();
    }
  });
});
