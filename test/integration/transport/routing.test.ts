/**
 * Where messages go: received/rport stamping (RFC 3261 §18.2.1, RFC 3581 §4),
 * response routing (§18.2.2), and connection reuse (§18.1.1), checked with raw
 * sockets that play a peer whose Via lies about its address.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMessage, type SipResponse } from '../../../src/sip/index.ts';
import { createTransportLayer, type TransportProtocol } from '../../../src/transport/index.ts';
import {
  RawTcp,
  RawUdp,
  Recorder,
  createResponse,
  makeRequest,
  rawRequest,
  sleep,
  statusOf,
} from './support.ts';

function options(via: string, callId = `c-${Math.random()}`): string {
  return rawRequest([
    'OPTIONS sip:bob@127.0.0.1 SIP/2.0',
    `Via: ${via}`,
    'Max-Forwards: 70',
    'From: <sip:alice@example.com>;tag=f1',
    'To: <sip:bob@example.com>',
    `Call-ID: ${callId}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
  ]);
}

function parseResponse(bytes: Uint8Array): SipResponse {
  const r = parseMessage(bytes);
  assert.ok(r.ok && r.message.isResponse(), 'a response came back');
  return r.message as SipResponse;
}

describe('UDP response routing (RFC 3261 §18.2.2, RFC 3581 §4)', () => {
  it(
    'rport: the response goes to received:rport, not to the sent-by it claimed',
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      const raw = await RawUdp.open();
      try {
        await raw.send(
          options('SIP/2.0/UDP 192.0.2.1:5099;rport;branch=z9hG4bKnat1'),
          b.listeners[0]!.local.port,
        );
        const req = await rb.nextRequest();
        assert.equal(req.message.topVia.received, '127.0.0.1');
        assert.equal(req.message.topVia.rport, raw.port);
        assert.equal(req.message.topVia.host, '192.0.2.1', 'sent-by itself is not changed');
        await b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
        const res = parseResponse(await raw.nth(1));
        assert.equal(res.status, 200);
        assert.equal(res.topVia.rport, raw.port);
        assert.equal(res.topVia.received, '127.0.0.1');
      } finally {
        await raw.close();
        await b.close();
      }
    },
  );

  it(
    'no rport, sent-by is the source: no received, response to the sent-by port',
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      const raw = await RawUdp.open();
      try {
        await raw.send(
          options(`SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKplain`),
          b.listeners[0]!.local.port,
        );
        const req = await rb.nextRequest();
        assert.equal(req.message.topVia.received, undefined);
        assert.equal(req.message.topVia.rport, undefined);
        assert.equal(
          req.message.getRaw('Via'),
          `SIP/2.0/UDP 127.0.0.1:${raw.port};branch=z9hG4bKplain`,
        );
        await b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
        assert.equal(parseResponse(await raw.nth(1)).status, 200);
      } finally {
        await raw.close();
        await b.close();
      }
    },
  );

  it(
    'no rport, sent-by names another host: received added, response to received:sent-by port',
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      const raw = await RawUdp.open();
      try {
        await raw.send(
          options(`SIP/2.0/UDP pc33.example.com:${raw.port};branch=z9hG4bKname`),
          b.listeners[0]!.local.port,
        );
        const req = await rb.nextRequest();
        assert.equal(req.message.topVia.received, '127.0.0.1');
        await b.sendResponse(createResponse(req.message, 180, { toTag: 'x' }), req.source);
        assert.equal(parseResponse(await raw.nth(1)).status, 180);
      } finally {
        await raw.close();
        await b.close();
      }
    },
  );

  it(
    'the response leaves from the listener that received the request',
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({
        id: 'B',
        listen: ['udp:127.0.0.1:0', 'udp:127.0.0.1:0'],
      });
      const rb = new Recorder();
      b.setDelegate(rb);
      const raw = await RawUdp.open();
      try {
        const second = b.listeners[1]!;
        await raw.send(
          options('SIP/2.0/UDP 127.0.0.1:1;rport;branch=z9hG4bKtwo'),
          second.local.port,
        );
        const req = await rb.nextRequest();
        assert.equal(req.source.listener.id, second.id);
        await b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
        await raw.nth(1);
        assert.equal(raw.received[0]!.from.port, second.local.port);
      } finally {
        await raw.close();
        await b.close();
      }
    },
  );

  it(
    'rejects a response whose Via has neither an address nor received',
    { timeout: 5000 },
    async () => {
      const a = await createTransportLayer({ id: 'A', listen: ['udp:127.0.0.1:0'] });
      try {
        const req = makeRequest(a.listeners[0]!, {
          via: 'SIP/2.0/UDP pc33.example.com;branch=z9hG4bKx',
        });
        const source = {
          protocol: 'udp' as const,
          address: '127.0.0.1',
          port: 9,
          listener: a.listeners[0]!,
        };
        await assert.rejects(a.sendResponse(createResponse(req, 200), source), {
          code: 'SB_ERR_TRANSPORT_SEND',
        });
      } finally {
        await a.close();
      }
    },
  );
});

describe('stream response routing and connection reuse (RFC 3261 §18.2.2, §18.1.1)', () => {
  it(
    "TCP: the response goes back on the request's connection whatever Via says",
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({ id: 'B', listen: ['tcp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      const raw = await RawTcp.open(b.listeners[0]!.local.port);
      try {
        raw.write(options('SIP/2.0/TCP 192.0.2.1:5099;branch=z9hG4bKtcp1'));
        const req = await rb.nextRequest();
        assert.ok(req.source.connectionId);
        assert.equal(req.message.topVia.received, '127.0.0.1');
        await b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
        await raw.until((r) => statusOf(r.text) === 200, 2000, '200 on the same connection');
      } finally {
        raw.destroy();
        await b.close();
      }
    },
  );

  it(
    'TCP: once that connection is gone, a new one to received and the sent-by port',
    { timeout: 5000 },
    async () => {
      const a = await createTransportLayer({ id: 'A', listen: ['tcp:127.0.0.1:0'] });
      const b = await createTransportLayer({ id: 'B', listen: ['tcp:127.0.0.1:0'] });
      const ra = new Recorder();
      const rb = new Recorder();
      a.setDelegate(ra);
      b.setDelegate(rb);
      const aPort = a.listeners[0]!.local.port;
      const raw = await RawTcp.open(b.listeners[0]!.local.port);
      try {
        // A raw peer sends a request whose Via names A's listener, then hangs up.
        raw.write(options(`SIP/2.0/TCP 127.0.0.1:${aPort};branch=z9hG4bKgone`));
        const req = await rb.nextRequest();
        raw.destroy();
        const start = Date.now();
        while (!rb.closed.includes(req.source.connectionId!)) {
          assert.ok(Date.now() - start < 2000, 'B noticed the close (onConnectionClosed)');
          await sleep(5);
        }
        await b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
        const res = await ra.nextResponse();
        assert.equal(res.message.status, 200);
        assert.equal(res.source.listener.id, a.listeners[0]!.id, 'A received it on its listener');
        assert.equal(b.connections()[0]!.direction, 'outbound');
      } finally {
        raw.destroy();
        await a.close();
        await b.close();
      }
    },
  );

  for (const protocol of ['tcp', 'ws'] as TransportProtocol[]) {
    it(
      `${protocol.toUpperCase()}: a request to a peer that connected to us reuses its connection`,
      { timeout: 5000 },
      async () => {
        const a = await createTransportLayer({ id: 'A', listen: [`${protocol}:127.0.0.1:0`] });
        const b = await createTransportLayer({ id: 'B', listen: [`${protocol}:127.0.0.1:0`] });
        const ra = new Recorder();
        const rb = new Recorder();
        a.setDelegate(ra);
        b.setDelegate(rb);
        try {
          const la = a.listeners[0]!;
          await a.sendRequest(makeRequest(la, { method: 'REGISTER' }), {
            protocol,
            address: '127.0.0.1',
            port: b.listeners[0]!.local.port,
          });
          const reg = await rb.nextRequest();
          const aConn = a.connections()[0]!;
          assert.equal(aConn.direction, 'outbound');

          // By remote endpoint: the source address and port of the connection.
          const lb = b.listenerFor({ protocol, address: '127.0.0.1', port: 0 })!;
          await b.sendRequest(makeRequest(lb, { method: 'NOTIFY' }), {
            protocol,
            address: reg.source.address,
            port: reg.source.port,
          });
          const notify = await ra.nextRequest();
          assert.equal(notify.message.method, 'NOTIFY');
          assert.equal(
            notify.source.connectionId,
            aConn.id,
            "arrived on A's own outbound connection",
          );

          // By connection id, even when the endpoint given is not the connection's.
          await b.sendRequest(makeRequest(lb, { method: 'INFO' }), {
            protocol,
            address: '127.0.0.1',
            port: 1,
            connectionId: reg.source.connectionId,
          });
          const info = await ra.nextRequest();
          assert.equal(info.source.connectionId, aConn.id);
          assert.equal(a.connections().length, 1, 'A accepted no new connection');
          assert.equal(b.connections().length, 1, 'B opened none');
        } finally {
          await a.close();
          await b.close();
        }
      },
    );
  }

  it(
    'concurrent sends to one endpoint share one connection attempt',
    { timeout: 5000 },
    async () => {
      const a = await createTransportLayer({ id: 'A', listen: ['tcp:127.0.0.1:0'] });
      const b = await createTransportLayer({ id: 'B', listen: ['tcp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      try {
        const dest = {
          protocol: 'tcp' as const,
          address: '127.0.0.1',
          port: b.listeners[0]!.local.port,
        };
        await Promise.all([1, 2, 3].map(() => a.sendRequest(makeRequest(a.listeners[0]!), dest)));
        for (let i = 0; i < 3; i++) await rb.nextRequest();
        assert.equal(a.connections().length, 1);
        assert.equal(b.connections().length, 1);
      } finally {
        await a.close();
        await b.close();
      }
    },
  );
});
