import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMessage } from '../sip/parser/parse-message.ts';
import { messageToString } from '../sip/message/serialize.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import { crlf } from '../../test/support/messages.ts';
import { buildAckForNon2xx, buildCancel, topViaValue } from './requests.ts';

function parse<T extends SipRequest | SipResponse>(text: string): T {
  const r = parseMessage(text);
  assert.ok(r.ok, r.ok ? '' : r.error.detail);
  return r.message as T;
}

const INVITE = crlf([
  'INVITE sip:bob@biloxi.example.com;transport=udp SIP/2.0',
  'Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds8;rport, SIP/2.0/UDP relay.example.com;branch=z9hG4bKbelow',
  'Via: SIP/2.0/UDP first.example.com;branch=z9hG4bKfirst',
  'Max-Forwards: 69',
  'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>',
  'Route: <sip:p3.example.com;lr>',
  'To: Bob <sip:bob@biloxi.example.com>',
  'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
  'i: a84b4c76e66710@pc33.atlanta.example.com',
  'CSeq: 314159 INVITE',
  'Contact: <sip:alice@pc33.atlanta.example.com>',
  'Content-Type: application/sdp',
  'Content-Length: 4',
  '',
  'v=0\n',
]);

const RESPONSE_486 = crlf([
  'SIP/2.0 486 Busy Here',
  'Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds8;rport=5060;received=192.0.2.1',
  'Via: SIP/2.0/UDP relay.example.com;branch=z9hG4bKbelow',
  'Via: SIP/2.0/UDP first.example.com;branch=z9hG4bKfirst',
  'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
  'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
  'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
  'CSeq: 314159 INVITE',
  'Content-Length: 0',
  '',
  '',
]);

test('§17.1.1.3: the ACK for a non-2xx is built field by field from the INVITE and the response', () => {
  const invite = parse<SipRequest>(INVITE);
  const res = parse<SipResponse>(RESPONSE_486);
  const ack = buildAckForNon2xx(invite, res);
  assert.equal(
    messageToString(ack),
    crlf([
      // "Request-URI ... equal to the values of those header fields in the request"
      'ACK sip:bob@biloxi.example.com;transport=udp SIP/2.0',
      // "a single Via header field, and this MUST be equal to the top Via header field of the
      // original request"
      'Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds8;rport',
      'Max-Forwards: 69',
      // "If the INVITE request whose response is being acknowledged had Route header fields,
      // those header fields MUST appear in the ACK."
      'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>',
      'Route: <sip:p3.example.com;lr>',
      // "The To header field in the ACK MUST equal the To header field in the response"
      'To: Bob <sip:bob@biloxi.example.com>;tag=8321234356',
      // "Call-ID, From ... equal to the values of those header fields in the request"
      'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
      'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
      // "the same value for the sequence number ... the method parameter MUST be equal to 'ACK'"
      'CSeq: 314159 ACK',
      'Content-Length: 0',
      '',
      '',
    ]),
  );
  // It re-parses, and it carries no body.
  const again = parse<SipRequest>(messageToString(ack));
  assert.equal(again.via.length, 1);
  assert.equal(again.body.length, 0);
  assert.equal(again.to.tag, '8321234356');
});

test('§9.1: the CANCEL copies Request-URI, Call-ID, To, From, CSeq number, top Via, Route', () => {
  const invite = parse<SipRequest>(INVITE);
  const cancel = buildCancel(invite, [['Reason', 'SIP;cause=487;text="cancelled"']]);
  assert.equal(
    messageToString(cancel),
    crlf([
      'CANCEL sip:bob@biloxi.example.com;transport=udp SIP/2.0',
      'Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds8;rport',
      'Max-Forwards: 69',
      'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>',
      'Route: <sip:p3.example.com;lr>',
      // The To of the request, without a tag: "identical to those in the request being
      // cancelled, including tags".
      'To: Bob <sip:bob@biloxi.example.com>',
      'From: "Alice A." <sip:alice@atlanta.example.com>;tag=1928301774',
      'Call-ID: a84b4c76e66710@pc33.atlanta.example.com',
      'CSeq: 314159 CANCEL',
      'Reason: SIP;cause=487;text="cancelled"',
      'Content-Length: 0',
      '',
      '',
    ]),
  );
});

test('topViaValue keeps a single-valued first Via field byte for byte', () => {
  const req = parse<SipRequest>(
    crlf([
      'OPTIONS sip:x@example.com SIP/2.0',
      'Via:   SIP/2.0/TCP   host.example.com;branch=z9hG4bK1  ',
      'Via: SIP/2.0/UDP other;branch=z9hG4bK2',
      'To: <sip:x@example.com>',
      'From: <sip:y@example.com>;tag=1',
      'Call-ID: c',
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ]),
  );
  assert.equal(topViaValue(req), 'SIP/2.0/TCP   host.example.com;branch=z9hG4bK1');
});
