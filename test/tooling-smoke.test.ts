// Tooling smoke test: proves that `npm test` finds test/**/*.test.ts, runs TypeScript through tsx
// and reports through node:test. Imports nothing from src/ on purpose.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

type Shape = 'datagram' | 'stream';

function framing(shape: Shape): string {
  switch (shape) {
    case 'datagram':
      return 'one message per datagram';
    case 'stream':
      return 'Content-Length framing';
  }
}

describe('tooling smoke', () => {
  it('runs TypeScript under node:test', () => {
    assert.equal(framing('stream'), 'Content-Length framing');
  });

  it('has web-platform globals shared with browsers', () => {
    const bytes = new TextEncoder().encode('INVITE sip:bob@127.0.0.1 SIP/2.0\r\n');
    assert.equal(new TextDecoder().decode(bytes).slice(0, 6), 'INVITE');
    assert.equal(crypto.getRandomValues(new Uint8Array(8)).length, 8);
  });
});
