import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OctetArena, ownCopy, ownString, utf8Decode, utf8Encode } from './text.ts';

describe('OctetArena', () => {
  it('gives the UTF-8 of the text, then the tail, carved one after another from one chunk', () => {
    const arena = new OctetArena(1024);
    const a = arena.encode('REGISTER sip:example.com SIP/2.0\r\n\r\n');
    const b = arena.encode('Subject: caf\u00e9 \u{1f600}\r\n\r\n', new Uint8Array([1, 2, 3]));
    assert.deepEqual(a, utf8Encode('REGISTER sip:example.com SIP/2.0\r\n\r\n'));
    assert.deepEqual(
      b.subarray(0, b.length - 3),
      utf8Encode('Subject: caf\u00e9 \u{1f600}\r\n\r\n'),
    );
    assert.deepEqual([...b.subarray(b.length - 3)], [1, 2, 3]);
    assert.equal(a.buffer, b.buffer, 'one chunk');
    assert.equal(b.byteOffset, a.byteOffset + a.length, 'back to back');
  });

  it('starts a fresh chunk when the text does not fit, and never overwrites what it gave', () => {
    const arena = new OctetArena(256);
    const given: [Uint8Array, string][] = [];
    for (let i = 0; i < 40; i++) {
      // Non-ASCII text takes more octets than characters: the fit is checked on what was written.
      const text = `${i}:` + '\u00e9x'.repeat(i % 20);
      given.push([arena.encode(text), text]);
    }
    for (const [bytes, text] of given) assert.equal(utf8Decode(bytes), text);
    assert.ok(new Set(given.map(([b]) => b.buffer)).size > 1, 'several chunks');
    for (const [b] of given) assert.equal(b.buffer.byteLength, 256);
  });

  it('a message over a quarter of a chunk gets an array of its own', () => {
    const arena = new OctetArena(256);
    const small = arena.encode('x'.repeat(10));
    const big = arena.encode('y'.repeat(60), new Uint8Array(10));
    assert.notEqual(big.buffer, small.buffer);
    assert.equal(big.length, 70);
    assert.equal(big.buffer.byteLength, 70);
    // The chunk carries on where it was.
    const next = arena.encode('z');
    assert.equal(next.buffer, small.buffer);
    assert.equal(next.byteOffset, 10);
  });

  it('copy: the same octets carved from the chunk, a copy independent of its source', () => {
    const arena = new OctetArena(256);
    const a = arena.encode('INVITE');
    const src = new Uint8Array([10, 20, 30, 40]);
    const c = arena.copy(src);
    assert.deepEqual([...c], [10, 20, 30, 40]);
    assert.equal(c.buffer, a.buffer, 'the same chunk');
    assert.equal(c.byteOffset, a.length, 'after what came before');
    src[0] = 99;
    assert.equal(c[0], 10, 'a copy, not a view of the source');
    assert.equal(arena.copy(new Uint8Array(0)).length, 0);
    // Over a quarter of a chunk: an array of its own; one that does not fit: a fresh chunk.
    const big = arena.copy(new Uint8Array(65).fill(7));
    assert.equal(big.buffer.byteLength, 65);
    const fill: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) fill.push(arena.copy(new Uint8Array(60).fill(i)));
    assert.notEqual(fill[4]!.buffer, a.buffer, 'a fresh chunk');
    for (let i = 0; i < 5; i++)
      assert.ok(
        fill[i]!.every((x) => x === i),
        'nothing overwritten',
      );
    assert.deepEqual([...c], [10, 20, 30, 40]);
  });
});

describe('ownString', () => {
  it('returns the same characters for concatenations, substrings, the empty string and non-Latin-1 text', () => {
    const text =
      'MESSAGE sip:carol@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1';
    const branch = text.slice(text.indexOf('branch=') + 7);
    const cases = [
      `3261\u0000${branch}\u0000127.0.0.1:5060\u0000MESSAGE`,
      branch,
      '',
      'a',
      '\u00e9t\u00e9 \u{1f4de} ' + branch,
    ];
    for (const k of cases) {
      const copy = k.split('').join('');
      assert.equal(ownString(k), copy);
      assert.equal(ownString(k).length, copy.length);
    }
  });
});

describe('ownCopy', () => {
  it('returns the same characters for substrings of every length, the empty string and non-Latin-1 text', () => {
    const text =
      'INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: 1-24181@127.0.0.1\r\nFrom: <sip:alice@example.com>;tag=24181SIPpTag001';
    const cases = ['', 'x', '\u00e9t\u00e9 \u{1f4de}'];
    for (let n = 1; n <= 40; n++) cases.push(text.slice(text.length - n));
    for (const k of cases) {
      const copy = k.split('').join('');
      assert.equal(ownCopy(k), copy);
      assert.equal(ownCopy(k).length, k.length);
    }
  });
});
