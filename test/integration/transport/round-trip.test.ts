/**
 * Two transport layers in one process (STYLE §3: no global state), talking over
 * real loopback sockets: a request from A to B and B's response back, for UDP,
 * TCP, TLS, WS and WSS, over IPv4 and IPv6.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createTransportLayer,
  type SwitchboardTransportLayer,
  type TransportProtocol,
} from '../../../src/transport/index.ts';
import {
  Recorder,
  createResponse,
  ipv6Available,
  loudSkip,
  makeCerts,
  makeRequest,
  type TestCerts,
} from './support.ts';

const PROTOCOLS: TransportProtocol[] = ['udp', 'tcp', 'tls', 'ws', 'wss'];
const FAMILIES = [
  { name: 'IPv4', host: '127.0.0.1', uriHost: '127.0.0.1' },
  { name: 'IPv6', host: '::1', uriHost: '[::1]' },
];

let certs: TestCerts;
let hasIpv6 = false;

before(async () => {
  certs = makeCerts();
  hasIpv6 = await ipv6Available();
});
after(() => certs?.cleanup());

async function pair(spec: string): Promise<{
  a: SwitchboardTransportLayer;
  b: SwitchboardTransportLayer;
  ra: Recorder;
  rb: Recorder;
}> {
  const tls = { cert: certs.cert, key: certs.key, ca: certs.ca };
  const a = await createTransportLayer({ id: 'A', listen: [spec], tls });
  const b = await createTransportLayer({ id: 'B', listen: [spec], tls });
  const ra = new Recorder();
  const rb = new Recorder();
  a.setDelegate(ra);
  b.setDelegate(rb);
  return { a, b, ra, rb };
}

describe('request and response between two layers in one process', () => {
  for (const family of FAMILIES) {
    for (const protocol of PROTOCOLS) {
      it(`${protocol.toUpperCase()} over ${family.name}`, { timeout: 8000 }, async (t) => {
        if (family.name === 'IPv6' && !hasIpv6) {
          loudSkip(t, `::1 is not available on this machine: ${protocol} over IPv6 not tested`);
          return;
        }
        const { a, b, ra, rb } = await pair(`${protocol}:${family.uriHost}:0`);
        try {
          const la = a.listeners[0]!;
          const lb = b.listeners[0]!;
          assert.equal(la.local.address, family.host);
          assert.ok(la.local.port > 0, 'port 0 became a real port');
          const dest = { protocol, address: family.host, port: lb.local.port };
          assert.equal(a.listenerFor(dest), la, 'listenerFor: same protocol and family');

          const req = makeRequest(la, { method: 'MESSAGE', body: 'hello, world' });
          await a.sendRequest(req, dest);
          const inbound = await rb.nextRequest();
          const got = inbound.message;
          assert.equal(got.method, 'MESSAGE');
          assert.equal(got.bodyText(), 'hello, world');
          assert.equal(got.callId, req.callId);
          assert.equal(inbound.source.protocol, protocol);
          assert.equal(inbound.source.address, family.host);
          assert.equal(inbound.source.listener.id, lb.id);
          // RFC 3581 §4: rport filled with the source port, received added.
          assert.equal(got.topVia.transport, protocol.toUpperCase());
          assert.equal(got.topVia.rport, inbound.source.port);
          assert.equal(got.topVia.received, family.host);

          if (protocol === 'udp') {
            assert.equal(inbound.source.connectionId, undefined);
            assert.equal(
              inbound.source.port,
              la.local.port,
              'UDP requests leave from the listener',
            );
          } else {
            assert.ok(inbound.source.connectionId, 'stream requests name their connection');
          }

          await b.sendResponse(createResponse(got, 200, { toTag: 'b1' }), inbound.source);
          const res = await ra.nextResponse();
          assert.equal(res.message.status, 200);
          assert.equal(res.message.topVia.branch, req.topVia.branch);
          assert.equal(res.source.protocol, protocol);

          if (protocol !== 'udp') {
            // RFC 3261 §18.2.2: the response came back over the request's connection.
            assert.equal(a.connections().length, 1);
            assert.equal(b.connections().length, 1);
            assert.equal(res.source.connectionId, a.connections()[0]!.id);
            assert.equal(a.connections()[0]!.direction, 'outbound');
            assert.equal(b.connections()[0]!.direction, 'inbound');
            // A second request reuses the connection (§18.1.1).
            await a.sendRequest(makeRequest(la), dest);
            const second = await rb.nextRequest();
            assert.equal(second.source.connectionId, inbound.source.connectionId);
            assert.equal(b.connections().length, 1);
          }
        } finally {
          await a.close();
          await b.close();
        }
      });
    }
  }

  it(
    'one layer with every kind of listener at once, IPv4 and IPv6',
    { timeout: 8000 },
    async () => {
      const tls = { cert: certs.cert, key: certs.key, ca: certs.ca };
      const specs = PROTOCOLS.map((p) => `${p}:127.0.0.1:0`);
      if (hasIpv6) specs.push(...PROTOCOLS.map((p) => `${p}:[::1]:0`));
      const a = await createTransportLayer({ id: 'multi-A', listen: specs, tls });
      const b = await createTransportLayer({ id: 'multi-B', listen: specs, tls });
      const rb = new Recorder();
      const ra = new Recorder();
      a.setDelegate(ra);
      b.setDelegate(rb);
      try {
        assert.equal(a.listeners.length, specs.length);
        for (const lb of b.listeners) {
          const dest = { protocol: lb.protocol, address: lb.local.address, port: lb.local.port };
          const la = a.listenerFor(dest)!;
          assert.equal(la.protocol, lb.protocol);
          assert.equal(la.local.address, lb.local.address);
          await a.sendRequest(makeRequest(la), dest);
          const got = await rb.nextRequest();
          assert.equal(got.source.listener.id, lb.id, `${lb.id} received it`);
          await b.sendResponse(createResponse(got.message, 200, { toTag: 'm' }), got.source);
          const res = await ra.nextResponse();
          assert.equal(res.source.listener.id, la.id);
        }
      } finally {
        await a.close();
        await b.close();
      }
    },
  );
});
