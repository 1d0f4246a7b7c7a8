/**
 * RFC 5626 §3.5.1 CRLF keep-alives on streams: a CRLFCRLF "ping" is answered
 * with a CRLF "pong", and the connection goes on carrying SIP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { createTransportLayer } from '../../../src/transport/index.ts';
import {
  RawTcp,
  Recorder,
  makeCerts,
  rawRequest,
  sleep,
  within,
  type TestCerts,
} from './support.ts';

let certs: TestCerts;
before(() => {
  certs = makeCerts();
});
after(() => certs?.cleanup());

const OPTIONS = rawRequest([
  'OPTIONS sip:bob@127.0.0.1 SIP/2.0',
  'Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKka',
  'Max-Forwards: 70',
  'From: <sip:alice@example.com>;tag=f',
  'To: <sip:bob@example.com>',
  'Call-ID: ka-1',
  'CSeq: 1 OPTIONS',
  'Content-Length: 0',
]);

describe('CRLF keep-alive (RFC 5626 §3.5.1)', () => {
  it(
    'TCP: a ping is answered with one CRLF, and SIP goes on on that connection',
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({ id: 'B', listen: ['tcp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      const conn = await RawTcp.open(b.listeners[0]!.local.port);
      try {
        conn.write('\r\n\r\n');
        await conn.until((c) => c.data.length >= 2, 2000, 'the pong');
        await sleep(20);
        assert.equal(conn.text, '\r\n', 'exactly one CRLF');
        // A ping split across two writes is still a ping.
        conn.write('\r\n');
        await sleep(20);
        conn.write('\r\n');
        await conn.until((c) => c.data.length >= 4, 2000, 'the second pong');
        // A pong from the peer (one CRLF) is not answered.
        conn.write(OPTIONS);
        const req = await rb.nextRequest();
        assert.equal(req.message.callId, 'ka-1');
        assert.equal(conn.ended, false);
        assert.equal(conn.text, '\r\n\r\n');
      } finally {
        conn.destroy();
        await b.close();
      }
    },
  );

  it('TLS: the same over an encrypted stream', { timeout: 5000 }, async () => {
    const b = await createTransportLayer({
      id: 'B',
      listen: ['tls:127.0.0.1:0'],
      tls: { cert: certs.cert, key: certs.key },
    });
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: b.listeners[0]!.local.port,
      ca: certs.ca,
    });
    try {
      await within(
        new Promise((r, j) => socket.once('secureConnect', r).once('error', j)),
        2000,
        'tls',
      );
      const pong = new Promise<string>((r) =>
        socket.once('data', (d: Buffer) => r(d.toString('latin1'))),
      );
      socket.write('\r\n\r\n');
      assert.equal(await within(pong, 2000, 'pong'), '\r\n');
    } finally {
      socket.destroy();
      await b.close();
    }
  });
});
