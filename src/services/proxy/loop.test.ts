import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMessage, type SipRequest } from '../../sip/index.ts';
import { hashOfBranch, loopHash, mayCarryOurBranch, proxyBranch } from './loop.ts';

function request(over: { uri?: string; extra?: string[]; cseq?: number; via?: string[] } = {}) {
  const lines = [
    `INVITE ${over.uri ?? 'sip:bob@example.com'} SIP/2.0`,
    ...(over.via ?? ['Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ua1']),
    'Max-Forwards: 70',
    'From: <sip:alice@example.com>;tag=a1',
    'To: <sip:bob@example.com>',
    'Call-ID: loop-test',
    `CSeq: ${over.cseq ?? 1} INVITE`,
    ...(over.extra ?? []),
    'Content-Length: 0',
    '',
    '',
  ];
  const r = parseMessage(lines.join('\r\n'));
  assert.ok(r.ok);
  return r.message as SipRequest;
}

describe('proxy loop detection (RFC 3261 §16.3 item 4, §16.6 item 8)', () => {
  it('hashes the same request alike and a changed one otherwise', () => {
    const h = loopHash(request());
    assert.equal(loopHash(request()), h);
    // The topmost Via is left out (a looped request comes back under our own Via).
    assert.equal(loopHash(request({ via: ['Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-x'] })), h);
    const changed = [
      request({ uri: 'sip:bob@127.0.0.1:5060' }),
      request({ cseq: 2 }),
      request({ extra: ['Route: <sip:127.0.0.1;lr>'] }),
      request({ extra: ['Proxy-Require: foo'] }),
      request({ extra: ['Proxy-Authorization: Digest username="alice", realm="example.com"'] }),
    ].map(loopHash);
    for (const c of changed) assert.notEqual(c, h);
    assert.equal(new Set(changed).size, changed.length);
    // Field boundaries count: two Route fields are not one with their text run together.
    assert.notEqual(
      loopHash(request({ extra: ['Route: <sip:a;lr>', 'Route: <sip:b;lr>'] })),
      loopHash(request({ extra: ['Route: <sip:a;lr><sip:b;lr>'] })),
    );
  });

  it('finds our branch mark only where one of our Via values carries it', () => {
    assert.equal(mayCarryOurBranch(request()), false);
    const ours = proxyBranch(loopHash(request()), '1a');
    assert.equal(hashOfBranch(ours), loopHash(request()));
    const looped = request({
      via: [
        `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=${ours}`,
        'Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ua1',
      ],
    });
    assert.equal(mayCarryOurBranch(looped), true);
    const below = request({
      via: [
        `Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-ua1, SIP/2.0/UDP 127.0.0.1;branch=${ours}`,
      ],
    });
    assert.equal(mayCarryOurBranch(below), true);
  });
});
