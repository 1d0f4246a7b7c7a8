/**
 * Events on node:diagnostics_channel `switchboard:transport:*` (STYLE §14):
 * plain objects naming their layer, never carrying a message body.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import {
  TRANSPORT_CHANNELS,
  createTransportLayer,
  type TransportConnectionEvent,
  type TransportErrorEvent,
  type TransportMessageEvent,
} from '../../../src/transport/index.ts';
import { RawUdp, Recorder, createResponse, makeRequest, sleep } from './support.ts';

describe('diagnostics channels', () => {
  it('report receive, send, connection and error events per layer', { timeout: 5000 }, async () => {
    const seen = {
      receive: [] as TransportMessageEvent[],
      send: [] as TransportMessageEvent[],
      connection: [] as TransportConnectionEvent[],
      error: [] as TransportErrorEvent[],
    };
    const handlers = {
      receive: (e: unknown) => void seen.receive.push(e as TransportMessageEvent),
      send: (e: unknown) => void seen.send.push(e as TransportMessageEvent),
      connection: (e: unknown) => void seen.connection.push(e as TransportConnectionEvent),
      error: (e: unknown) => void seen.error.push(e as TransportErrorEvent),
    };
    for (const k of Object.keys(handlers) as (keyof typeof handlers)[]) {
      subscribe(TRANSPORT_CHANNELS[k], handlers[k]);
    }
    const a = await createTransportLayer({
      id: 'diag-A',
      listen: ['tcp:127.0.0.1:0', 'udp:127.0.0.1:0'],
    });
    const b = await createTransportLayer({
      id: 'diag-B',
      listen: ['tcp:127.0.0.1:0', 'udp:127.0.0.1:0'],
    });
    const ra = new Recorder();
    const rb = new Recorder();
    a.setDelegate(ra);
    b.setDelegate(rb);
    const raw = await RawUdp.open();
    try {
      const req = makeRequest(a.listeners[0]!, { method: 'MESSAGE', body: 'secret body' });
      await a.sendRequest(req, {
        protocol: 'tcp',
        address: '127.0.0.1',
        port: b.listeners[0]!.local.port,
      });
      const got = await rb.nextRequest();
      await b.sendResponse(createResponse(got.message, 202, { toTag: 'd' }), got.source);
      await ra.nextResponse();
      await raw.send(
        'OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKd\r\nCSeq: nope\r\n\r\n',
        b.listeners[1]!.local.port,
      );
      await raw.nth(1);
      await a.close();
      await b.close();
      await sleep(20);

      const sendA = seen.send.find((e) => e.layer === 'diag-A' && e.kind === 'request');
      assert.ok(sendA);
      assert.equal(sendA.method, 'MESSAGE');
      assert.equal(sendA.protocol, 'tcp');
      assert.equal(sendA.callId, req.callId);
      assert.equal(sendA.branch, req.topVia.branch);
      assert.equal(sendA.remote.port, b.listeners[0]!.local.port);
      assert.ok(sendA.connectionId);
      const recvB = seen.receive.find((e) => e.layer === 'diag-B' && e.kind === 'request');
      assert.ok(recvB && recvB.method === 'MESSAGE' && recvB.size > 0);
      const recvA = seen.receive.find((e) => e.layer === 'diag-A' && e.kind === 'response');
      assert.equal(recvA?.status, 202);

      const opens = seen.connection.filter(
        (e) => e.event === 'open' && e.layer.startsWith('diag-'),
      );
      assert.deepEqual(opens.map((e) => `${e.layer} ${e.direction}`).sort(), [
        'diag-A outbound',
        'diag-B inbound',
      ]);
      const closes = seen.connection.filter(
        (e) => e.event === 'close' && e.layer.startsWith('diag-'),
      );
      assert.equal(closes.length, 2, 'both ends reported the close');

      const parse = seen.error.find((e) => e.layer === 'diag-B' && e.type === 'parse');
      assert.ok(parse);
      assert.equal(parse.code, 'SB_ERR_PARSE_CSEQ');
      assert.equal(parse.answered, 400);

      // Plain data, no bodies.
      for (const e of [...seen.receive, ...seen.send, ...seen.connection, ...seen.error]) {
        assert.equal(Object.getPrototypeOf(e), Object.prototype);
        assert.ok(!JSON.stringify(e).includes('secret body'));
        assert.ok(!('body' in e));
      }
    } finally {
      for (const k of Object.keys(handlers) as (keyof typeof handlers)[]) {
        unsubscribe(TRANSPORT_CHANNELS[k], handlers[k]);
      }
      await raw.close();
      await a.close();
      await b.close();
    }
  });
});
