import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { utf8Encode } from '../base/index.ts';
import { PING, PONG, classifyKeepalive, keepaliveReply } from './keepalive.ts';

describe('CRLF keep-alive (RFC 5626 §3.5.1)', () => {
  it('a ping is answered with a single CRLF; a pong needs no answer', () => {
    assert.deepEqual([...PING], [13, 10, 13, 10]);
    assert.deepEqual(keepaliveReply('ping'), PONG);
    assert.deepEqual([...PONG], [13, 10]);
    assert.equal(keepaliveReply('pong'), undefined);
  });

  const cases: [string, string, 'ping' | 'pong' | undefined][] = [
    ['CRLF CRLF is a ping', '\r\n\r\n', 'ping'],
    ['one CRLF is a pong', '\r\n', 'pong'],
    ['bare LF LF counts as a ping', '\n\n', 'ping'],
    ['a SIP message is no keep-alive', 'OPTIONS sip:a SIP/2.0\r\n\r\n', undefined],
    ['empty is no keep-alive', '', undefined],
    ['CR alone is nothing', '\r', undefined],
  ];
  for (const [name, text, want] of cases) {
    it(`classifies whole WebSocket messages: ${name}`, () => {
      assert.equal(classifyKeepalive(utf8Encode(text)), want);
    });
  }
});
