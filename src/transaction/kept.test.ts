import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OctetArena, utf8Encode } from '../base/text.ts';
import { createResponse } from '../sip/message/builder.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import { serializeMessage } from '../sip/message/serialize.ts';
import { parseMessage } from '../sip/parser/parse-message.ts';
import { keptOctets, reparseKept } from './kept.ts';

const REQUEST =
  'MESSAGE sip:carol@example.com SIP/2.0\r\n' +
  'Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-kept-1;rport\r\n' +
  'From: <sip:alice@example.com>;tag=a1\r\n' +
  'To: <sip:carol@example.com>\r\n' +
  'Call-ID: kept-1@127.0.0.1\r\n' +
  'CSeq: 2 MESSAGE\r\n' +
  'Max-Forwards: 70\r\n' +
  'Content-Type: text/plain\r\n' +
  'Content-Length: 5\r\n' +
  '\r\n' +
  'Hello';

function parsed(text: string): SipRequest {
  const r = parseMessage(utf8Encode(text), { framing: 'datagram' });
  assert.ok(r.ok);
  return r.message as SipRequest;
}

test('keptOctets with an arena: a received message is copied out of its datagram buffer, the same octets', () => {
  const arena = new OctetArena();
  const req = parsed(REQUEST);
  const res = createResponse(req, 200, { toTag: 'c1' });
  const wire = req.wire!;
  const kept = keptOctets(req, res, arena)!;
  assert.deepEqual(kept.req, wire);
  assert.notEqual(kept.req.buffer, wire.buffer, 'not a view of the datagram buffer');
  // Both carved from the one chunk of the arena.
  assert.equal(kept.req.buffer, kept.res.buffer);
  assert.deepEqual(kept.res, serializeMessage(createResponse(req, 200, { toTag: 'c1' })));
  const again = reparseKept(kept.req) as SipRequest;
  assert.equal(again.method, 'MESSAGE');
  assert.equal(again.callId, 'kept-1@127.0.0.1');
  assert.equal(new TextDecoder().decode(again.body), 'Hello');
  const back = reparseKept(kept.res) as SipResponse;
  assert.equal(back.status, 200);
  assert.equal(back.to.tag, 'c1');
});

test('keptOctets with an arena: a changed message is serialized into the arena', () => {
  const arena = new OctetArena();
  const req = parsed(REQUEST).set('Max-Forwards', '69');
  assert.equal(req.wire, undefined);
  const res = createResponse(req, 202, { toTag: 'c2' });
  const kept = keptOctets(req, res, arena)!;
  assert.equal(kept.req.buffer, kept.res.buffer);
  assert.equal((reparseKept(kept.req) as SipRequest).maxForwards, 69);
  // Without an arena, the same octets.
  const plain = keptOctets(parsed(REQUEST).set('Max-Forwards', '69'), res)!;
  assert.deepEqual(kept.req, plain.req);
});

test('keptOctets with an arena: octets serialized into an array of their own are copied into it', () => {
  const arena = new OctetArena();
  const req = parsed(REQUEST).set('Max-Forwards', '68');
  // As an INVITE client transaction serializes its request before sending it.
  const own = serializeMessage(req);
  assert.equal(own.byteLength, own.buffer.byteLength, 'an array of its own');
  const res = createResponse(req, 200, { toTag: 'c3' });
  const kept = keptOctets(req, res, arena)!;
  assert.deepEqual(kept.req, own);
  assert.notEqual(kept.req.buffer, own.buffer, 'not the array of its own');
  assert.equal(kept.req.buffer, kept.res.buffer, 'both from the arena chunk');
  // Octets already in the arena are kept as they are, not copied again.
  const again = keptOctets(req, res, arena)!;
  assert.equal(again.res.buffer, kept.res.buffer);
  assert.equal(again.res.byteOffset, kept.res.byteOffset);
});
