import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StreamFramer, type FramerEvent } from './stream-framer.ts';
import { parseMessage } from './parse-message.ts';
import { binaryDecode, concatBytes, utf8Encode } from '../../base/text.ts';
import { crlf, INVITE, RESPONSE_200 } from '../../../test/support/messages.ts';

const OPTIONS = crlf([
  'OPTIONS sip:a@b SIP/2.0',
  'Via: SIP/2.0/TCP h;branch=z9hG4bK1',
  'From: <sip:a@b>;tag=1',
  'To: <sip:a@b>',
  'Call-ID: x',
  'CSeq: 1 OPTIONS',
  'l: 0',
  '',
  '',
]);
const STREAM = utf8Encode(INVITE + '\r\n\r\n' + RESPONSE_200 + OPTIONS);

function messages(events: FramerEvent[]): string[] {
  return events
    .filter((e) => e.type === 'message')
    .map((e) => binaryDecode((e as { bytes: Uint8Array }).bytes));
}

function feed(chunks: Uint8Array[]): FramerEvent[] {
  const f = new StreamFramer();
  const out: FramerEvent[] = [];
  for (const c of chunks) out.push(...f.push(c));
  return out;
}

test('frames back-to-back messages and reports the CRLFCRLF ping between them', () => {
  const ev = feed([STREAM]);
  assert.deepEqual(messages(ev), [INVITE, RESPONSE_200, OPTIONS]);
  assert.deepEqual(
    ev.filter((e) => e.type === 'keepalive').map((e) => (e as { kind: string }).kind),
    ['ping'],
  );
  for (const m of messages(ev)) assert.ok(parseMessage(m, { framing: 'stream' }).ok);
});

test('every split point of the stream yields the same messages (STYLE §11)', () => {
  const whole = messages(feed([STREAM]));
  for (let i = 0; i <= STREAM.length; i++) {
    assert.deepEqual(
      messages(feed([STREAM.subarray(0, i), STREAM.subarray(i)])),
      whole,
      `split at ${i}`,
    );
  }
});

test('property: any chunking yields the same messages', () => {
  const whole = messages(feed([STREAM]));
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: STREAM.length }), { maxLength: 20 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const chunks: Uint8Array[] = [];
      let prev = 0;
      for (const p of points) {
        chunks.push(STREAM.subarray(prev, p));
        prev = p;
      }
      chunks.push(STREAM.subarray(prev));
      assert.deepEqual(messages(feed(chunks)), whole);
    }),
    { numRuns: 300 },
  );
});

test('one byte at a time', () => {
  const chunks = Array.from(STREAM, (b) => Uint8Array.of(b));
  assert.deepEqual(messages(feed(chunks)), [INVITE, RESPONSE_200, OPTIONS]);
});

test('RFC 5626 §3.5.1 keep-alives: ping split across reads, and a pong', () => {
  const f = new StreamFramer();
  assert.deepEqual(f.push(utf8Encode('\r\n')), [{ type: 'keepalive', kind: 'pong' }]);
  assert.deepEqual(f.push(utf8Encode('\r\n')), [{ type: 'keepalive', kind: 'ping' }]);
  assert.deepEqual(f.push(utf8Encode('\r\n\r\n')), [{ type: 'keepalive', kind: 'ping' }]);
  assert.deepEqual(messages(f.push(utf8Encode(OPTIONS))), [OPTIONS]);
});

test('missing Content-Length on a stream means an empty body', () => {
  const noCl = OPTIONS.replace('l: 0\r\n', '');
  assert.deepEqual(messages(feed([utf8Encode(noCl + OPTIONS)])), [noCl, OPTIONS]);
});

test('framing errors: each limit and malformed Content-Length has its own code; the framer dies', () => {
  const limits = {
    maxHeaderBytes: 100,
    maxBodyBytes: 10,
    maxHeaderCount: 10,
    maxBufferedBytes: 400,
  };
  const rows: [string, string, string][] = [
    [
      'header too large',
      'OPTIONS sip:a@b SIP/2.0\r\nX: ' + 'a'.repeat(200),
      'SB_ERR_HEADERS_TOO_LARGE',
    ],
    ['body too large', 'OPTIONS sip:a@b SIP/2.0\r\nl: 11\r\n\r\n', 'SB_ERR_BODY_TOO_LARGE'],
    ['buffer overflow', 'x'.repeat(401), 'SB_ERR_BUFFER_OVERFLOW'],
    [
      'negative length',
      'OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n',
      'SB_ERR_PARSE_CONTENT_LENGTH',
    ],
    [
      'two lengths',
      'OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n',
      'SB_ERR_DUPLICATE_HEADER',
    ],
  ];
  for (const [name, input, code] of rows) {
    const f = new StreamFramer(limits);
    const ev = f.push(utf8Encode(input));
    const e = ev.find((x) => x.type === 'error');
    assert.ok(e && e.type === 'error', name);
    assert.equal(e.error.code, code, name);
    assert.equal(f.dead, true);
    assert.deepEqual(f.push(utf8Encode(OPTIONS)), [], `${name}: dead framer yields nothing`);
  }
});

test('a 1 MB flood without an empty line stops at the header limit', () => {
  const f = new StreamFramer();
  const chunk = new Uint8Array(1024).fill(0x61);
  let error: FramerEvent | undefined;
  for (let i = 0; i < 1024 && !error; i++) error = f.push(chunk).find((e) => e.type === 'error');
  assert.ok(error && error.type === 'error' && error.error.code === 'SB_ERR_HEADERS_TOO_LARGE');
  assert.equal(f.buffered, 0);
});

test('large body across many reads', () => {
  const body = 'x'.repeat(30000);
  const msg = OPTIONS.replace('l: 0', `l: ${body.length}`) + body;
  const bytes = utf8Encode(msg);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 1000) chunks.push(bytes.subarray(i, i + 1000));
  assert.deepEqual(messages(feed(chunks)), [msg]);
  assert.equal(concatBytes(chunks).length, bytes.length);
});
