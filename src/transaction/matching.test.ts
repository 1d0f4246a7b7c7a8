import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMessage } from '../sip/parser/parse-message.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import { crlf } from '../../test/support/messages.ts';
import {
  clientKeyOfRequest,
  clientKeyOfResponse,
  isRfc3261Branch,
  rfc2543AckKey,
  serverKey,
  serverKeyWithoutMethod,
  viaIdentity,
} from './matching.ts';

function msg(lines: string[]): SipRequest | SipResponse {
  const r = parseMessage(crlf([...lines, 'Content-Length: 0', '', '']));
  assert.ok(r.ok, r.ok ? '' : r.error.detail);
  return r.message;
}

function request(
  method: string,
  o: {
    via?: string;
    uri?: string;
    toTag?: string;
    fromTag?: string;
    callId?: string;
    seq?: number;
    cseqMethod?: string;
  } = {},
): SipRequest {
  const m = msg([
    `${method} ${o.uri ?? 'sip:bob@biloxi.example.com'} SIP/2.0`,
    `Via: ${o.via ?? 'SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds'}`,
    'Max-Forwards: 70',
    `To: Bob <sip:bob@biloxi.example.com>${o.toTag !== undefined ? `;tag=${o.toTag}` : ''}`,
    `From: Alice <sip:alice@atlanta.example.com>;tag=${o.fromTag ?? '1928301774'}`,
    `Call-ID: ${o.callId ?? 'a84b4c76e66710'}`,
    `CSeq: ${o.seq ?? 314159} ${o.cseqMethod ?? method}`,
  ]);
  assert.ok(m.isRequest(), 'a request');
  return m;
}

function response(status: number, cseqMethod: string, branch: string): SipResponse {
  const m = msg([
    `SIP/2.0 ${status} Whatever`,
    `Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=${branch};received=192.0.2.1`,
    'To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf',
    'From: Alice <sip:alice@atlanta.example.com>;tag=1928301774',
    'Call-ID: a84b4c76e66710',
    `CSeq: 314159 ${cseqMethod}`,
  ]);
  assert.ok(m.isResponse(), 'a response');
  return m;
}

test('§8.1.1.7: only a branch starting with z9hG4bK is an RFC 3261 branch', () => {
  assert.equal(isRfc3261Branch('z9hG4bK776asdhds'), true);
  assert.equal(isRfc3261Branch('z9hG4bK'), true);
  assert.equal(isRfc3261Branch('776asdhds'), false);
  assert.equal(isRfc3261Branch('Z9HG4BK776'), false);
  assert.equal(isRfc3261Branch(undefined), false);
});

test('§17.1.3: a response matches by top-Via branch and CSeq method (CANCEL is its own transaction)', () => {
  const invite = request('INVITE');
  const cancel = request('CANCEL');
  assert.equal(
    clientKeyOfResponse(response(180, 'INVITE', 'z9hG4bK776asdhds')),
    clientKeyOfRequest(invite),
  );
  assert.equal(
    clientKeyOfResponse(response(200, 'CANCEL', 'z9hG4bK776asdhds')),
    clientKeyOfRequest(cancel),
  );
  assert.notEqual(clientKeyOfRequest(invite), clientKeyOfRequest(cancel));
  assert.notEqual(
    clientKeyOfResponse(response(180, 'INVITE', 'z9hG4bKother')),
    clientKeyOfRequest(invite),
  );
  // An ACK never has a client transaction of its own (§17.1.1.3).
  assert.equal(clientKeyOfRequest(request('ACK')), undefined);
});

test('§17.2.3: branch + sent-by + method; an ACK matches its INVITE; CANCEL does not', () => {
  const invite = request('INVITE');
  assert.equal(serverKey(request('INVITE')), serverKey(invite), 'a retransmission');
  assert.equal(serverKey(request('ACK')), serverKey(invite), 'ACK -> INVITE');
  assert.notEqual(serverKey(request('CANCEL')), serverKey(invite));
  assert.equal(serverKey(request('CANCEL'), 'INVITE'), serverKey(invite), '§9.2 lookup');
  // sent-by must be equal too: same branch from another host is another transaction.
  assert.notEqual(
    serverKey(
      request('INVITE', { via: 'SIP/2.0/UDP other.example.com:5060;branch=z9hG4bK776asdhds' }),
    ),
    serverKey(invite),
  );
  assert.notEqual(
    serverKey(
      request('INVITE', {
        via: 'SIP/2.0/UDP pc33.atlanta.example.com:5070;branch=z9hG4bK776asdhds',
      }),
    ),
    serverKey(invite),
  );
  // The host compares case-insensitively; received/rport added on arrival do not matter.
  assert.equal(
    serverKey(
      request('INVITE', {
        via: 'SIP/2.0/UDP PC33.Atlanta.example.com:5060;branch=z9hG4bK776asdhds;received=192.0.2.9',
      }),
    ),
    serverKey(invite),
  );
  // Other fields do not take part for RFC 3261 requests.
  assert.equal(serverKey(request('INVITE', { callId: 'different' })), serverKey(invite));
});

test('§17.2.3 RFC 2543 fallback: Request-URI, To tag, From tag, Call-ID, CSeq and top Via', () => {
  const via = 'SIP/2.0/UDP old.example.com:5060;branch=776asdhds';
  const base = request('INVITE', { via });
  const same = request('INVITE', { via });
  assert.equal(serverKey(same), serverKey(base));
  const variants: [string, SipRequest][] = [
    ['Request-URI', request('INVITE', { via, uri: 'sip:carol@biloxi.example.com' })],
    ['To tag', request('INVITE', { via, toTag: 'x' })],
    ['From tag', request('INVITE', { via, fromTag: 'y' })],
    ['Call-ID', request('INVITE', { via, callId: 'z' })],
    ['CSeq number', request('INVITE', { via, seq: 1 })],
    ['top Via', request('INVITE', { via: 'SIP/2.0/UDP old.example.com:5061;branch=776asdhds' })],
    ['no branch at all', request('INVITE', { via: 'SIP/2.0/UDP old.example.com:5060' })],
  ];
  for (const [field, other] of variants) {
    assert.notEqual(serverKey(other), serverKey(base), `${field} differs`);
  }
  // received/rport added by the transport on arrival are not part of the identity.
  assert.equal(
    serverKey(request('INVITE', { via: `${via};received=192.0.2.7;rport=5060` })),
    serverKey(base),
  );
  // A CANCEL for it (§9.2): the method taken as INVITE.
  assert.equal(serverKey(request('CANCEL', { via }), 'INVITE'), serverKey(base));
  assert.equal(serverKeyWithoutMethod(request('CANCEL', { via })), serverKeyWithoutMethod(base));
});

test('§17.2.3 RFC 2543 ACK: same fields except the To tag (compared with the response) and the method', () => {
  const via = 'SIP/2.0/UDP old.example.com:5060;branch=776asdhds';
  const invite = request('INVITE', { via });
  const ack = request('ACK', { via, toTag: 'tag-of-the-response' });
  assert.equal(rfc2543AckKey(ack), rfc2543AckKey(invite));
  assert.notEqual(rfc2543AckKey(request('ACK', { via, seq: 2 })), rfc2543AckKey(invite));
  assert.notEqual(rfc2543AckKey(request('ACK', { via, fromTag: 'q' })), rfc2543AckKey(invite));
  assert.equal(rfc2543AckKey(request('ACK')), undefined, 'RFC 3261 ACKs match by branch');
});

test('viaIdentity drops received and rport but keeps the other parameters', () => {
  const a = request('INVITE', {
    via: 'SIP/2.0/UDP h.example.com;branch=1;rport=9;received=1.2.3.4;x=y',
  });
  assert.equal(viaIdentity(a.topVia), 'SIP/2.0/UDP h.example.com;branch=1;x=y');
});
