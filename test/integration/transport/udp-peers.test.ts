/**
 * The layer's memo of datagram senders (`peerOf` in src/transport/layer.ts): the messages of one
 * sender share one Source, so that the transactions kept 64*T1 (RFC 3261 §17.2.2) do not keep
 * one each, and the way back still reaches each sender (§18.2.2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTransportLayer } from '../../../src/transport/index.ts';
import { Recorder, createResponse, makeRequest } from './support.ts';

describe('UDP senders: one Source per sender', () => {
  it('two datagrams of one sender share their Source; another sender gets its own, and answers reach each', async () => {
    const server = await createTransportLayer({ id: 'S', listen: ['udp:127.0.0.1:0'] });
    const one = await createTransportLayer({ id: 'A', listen: ['udp:127.0.0.1:0'] });
    const two = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
    const rs = new Recorder();
    const r1 = new Recorder();
    const r2 = new Recorder();
    server.setDelegate(rs);
    one.setDelegate(r1);
    two.setDelegate(r2);
    try {
      const ls = server.listeners[0]!;
      const dest = { protocol: 'udp' as const, address: '127.0.0.1', port: ls.local.port };
      const a1 = makeRequest(one.listeners[0]!, { method: 'MESSAGE', body: 'a1' });
      await one.sendRequest(a1, dest);
      const in1 = await rs.nextRequest();
      const a2 = makeRequest(one.listeners[0]!, { method: 'MESSAGE', body: 'a2' });
      await one.sendRequest(a2, dest);
      const in2 = await rs.nextRequest();
      const b1 = makeRequest(two.listeners[0]!, { method: 'MESSAGE', body: 'b1' });
      await two.sendRequest(b1, dest);
      const in3 = await rs.nextRequest();

      assert.equal(in1.source, in2.source, 'one sender, one Source');
      assert.notEqual(in1.source, in3.source, 'another port, another Source');
      assert.equal(in1.source.port, one.listeners[0]!.local.port);
      assert.equal(in3.source.port, two.listeners[0]!.local.port);
      assert.equal(in3.source.listener.id, ls.id);

      // Each answer goes back to the sender of its request.
      await server.sendResponse(createResponse(in3.message, 200), in3.source);
      await server.sendResponse(createResponse(in2.message, 200), in2.source);
      assert.equal((await r2.nextResponse()).message.callId, b1.callId);
      assert.equal((await r1.nextResponse()).message.callId, a2.callId);
    } finally {
      await Promise.all([server.close(), one.close(), two.close()]);
    }
  });
});
