import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../src/base/clock.ts';
import { createResponse } from '../../src/sip/message/builder.ts';
import type {
  InboundRequest,
  InboundResponse,
  TransportLayer,
} from '../../src/transport/transport.ts';
import { TransportError } from '../../src/transport/transport.ts';
import {
  createMemoryTransportPair,
  testRequest,
  type MemoryTransport,
} from './memory-transport.ts';

function collect(t: MemoryTransport) {
  const requests: InboundRequest[] = [];
  const responses: InboundResponse[] = [];
  const closed: string[] = [];
  t.setDelegate({
    onRequest: (r) => requests.push(r),
    onResponse: (r) => responses.push(r),
    onConnectionClosed: (id) => closed.push(id),
  });
  return { requests, responses, closed };
}

test('memory transport: a request arrives re-parsed after the latency, with its source', async () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 10 });
  const transport: TransportLayer = net.a; // the contract type-checks
  const atB = collect(net.b);
  const req = testRequest({ method: 'OPTIONS', from: net.a, to: net.b });
  await transport.sendRequest(req, net.b.destination);
  clock.advance(9);
  assert.equal(atB.requests.length, 0);
  clock.advance(1);
  assert.equal(atB.requests.length, 1);
  const got = atB.requests[0]!;
  assert.notEqual(got.message, req, 'a new message, parsed from the octets');
  assert.ok(got.message.wire !== undefined, 'parsed from octets');
  assert.equal(got.message.method, 'OPTIONS');
  assert.equal(got.message.topVia.branch, req.topVia.branch);
  assert.equal(got.source.address, '192.0.2.1');
  assert.equal(got.source.port, 5060);
  assert.equal(got.source.protocol, 'udp');
  assert.equal(got.source.listener.id, 'memory-b');
  assert.equal(got.source.connectionId, undefined);
  assert.equal(net.records.length, 1);
  assert.equal(net.records[0]!.from, 'a');
  assert.equal(net.records[0]!.to, 'b');
  assert.equal(net.records[0]!.at, 0);
});

test('memory transport: a response goes back to the request source', async () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 1 });
  const atA = collect(net.a);
  const atB = collect(net.b);
  await net.a.sendRequest(
    testRequest({ method: 'OPTIONS', from: net.a, to: net.b }),
    net.b.destination,
  );
  clock.advance(1);
  const req = atB.requests[0]!;
  await net.b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
  clock.advance(1);
  assert.equal(atA.responses.length, 1);
  assert.equal(atA.responses[0]!.message.status, 200);
  assert.equal(net.responses(2, 'b').length, 1);
  assert.equal(net.requests('OPTIONS', 'a').length, 1);
  assert.match(net.transcript(), /a->b OPTIONS sip:bob@192\.0\.2\.2:5060 SIP\/2\.0/);
});

test('memory transport: the drop rate is seeded, so two runs lose the same messages', async () => {
  const run = async (seed: number): Promise<boolean[]> => {
    const clock = new ManualClock();
    const net = createMemoryTransportPair({ clock, dropRate: 0.3, seed });
    collect(net.b);
    for (let i = 0; i < 200; i++) {
      await net.a.sendRequest(
        testRequest({ method: 'MESSAGE', from: net.a, to: net.b, cseq: i + 1 }),
        net.b.destination,
      );
    }
    clock.advance(10);
    return net.records.map((r) => r.dropped);
  };
  const one = await run(42);
  assert.deepEqual(await run(42), one);
  assert.notDeepEqual(await run(43), one);
  const lost = one.filter(Boolean).length;
  assert.ok(lost > 40 && lost < 80, `about 30% of 200 lost, got ${lost}`);
});

test('memory transport: tcp never drops, carries a connection id, and reports its closing', async () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, protocol: 'tcp', dropRate: 1 });
  const atA = collect(net.a);
  const atB = collect(net.b);
  await net.a.sendRequest(
    testRequest({ method: 'OPTIONS', from: net.a, to: net.b }),
    net.b.destination,
  );
  clock.advance(5);
  assert.equal(atB.requests.length, 1);
  assert.equal(atB.requests[0]!.source.connectionId, 'mem-conn-1');
  assert.match(atB.requests[0]!.message.topVia.transport, /^TCP$/);
  net.closeConnection();
  assert.deepEqual(atA.closed, ['mem-conn-1']);
  assert.deepEqual(atB.closed, ['mem-conn-1']);
  assert.equal(net.connectionId, 'mem-conn-2');
  await assert.rejects(
    net.a.sendRequest(testRequest({ method: 'OPTIONS', from: net.a, to: net.b }), {
      protocol: 'tcp',
      address: '203.0.113.9',
      port: 5060,
    }),
    (e: unknown) => e instanceof TransportError && e.code === 'SB_ERR_TRANSPORT_CONNECT',
  );
});

test('memory transport: injected failures and close reject sends with TransportError', async () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock });
  const req = testRequest({ method: 'OPTIONS', from: net.a, to: net.b });
  net.a.failSends = 'SB_ERR_TRANSPORT_SEND';
  await assert.rejects(
    net.a.sendRequest(req, net.b.destination),
    (e: unknown) => e instanceof TransportError && e.code === 'SB_ERR_TRANSPORT_SEND',
  );
  net.a.failSends = undefined;
  await net.a.close();
  await assert.rejects(
    net.a.sendRequest(req, net.b.destination),
    (e: unknown) => e instanceof TransportError && e.code === 'SB_ERR_TRANSPORT_CLOSED',
  );
  assert.equal(net.records.length, 0);
  // A datagram to an address nobody listens on is lost, not an error (UDP).
  await net.b.sendRequest(req, { protocol: 'udp', address: '203.0.113.9', port: 5060 });
  assert.equal(net.records.length, 1);
  assert.equal(net.records[0]!.dropped, true);
  assert.equal(net.records[0]!.to, undefined);
});
