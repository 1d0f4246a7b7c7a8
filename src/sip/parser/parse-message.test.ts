import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMessage } from './parse-message.ts';
import { serializeMessage, messageToString } from '../message/serialize.ts';
import { RouteHeader, ContactHeader } from '../headers/address.ts';
import { crlf, INVITE, RESPONSE_200 } from '../../../test/support/messages.ts';
import { utf8Encode } from '../../base/text.ts';

function must(input: string | Uint8Array, framing?: 'datagram' | 'stream') {
  const r = parseMessage(input, framing ? { framing } : undefined);
  if (!r.ok) assert.fail(`expected a message, got ${r.error.code}: ${r.error.detail}`);
  return r.message;
}

function fails(input: string | Uint8Array, code: string, status: number) {
  const r = parseMessage(input);
  assert.equal(r.ok, false, 'expected a failure');
  if (!r.ok) {
    assert.equal(r.error.code, code, r.error.detail);
    assert.equal(r.error.status, status);
  }
  return r;
}

test('parses a request: start line, routing fields, body', () => {
  const m = must(INVITE);
  assert.ok(m.isRequest());
  if (!m.isRequest()) return;
  assert.equal(m.method, 'INVITE');
  assert.equal(m.uriText, 'sip:bob@biloxi.example.com');
  assert.equal(m.uri.kind, 'sip');
  assert.equal(m.topVia.branch, 'z9hG4bK776asdhds');
  assert.equal(m.topVia.host, 'pc33.atlanta.example.com');
  assert.equal(m.topVia.rport, null);
  assert.equal(m.from.tag, '1928301774');
  assert.equal(m.from.displayName, 'Alice A.');
  assert.equal(m.to.tag, undefined);
  assert.equal(m.callId, 'a84b4c76e66710@pc33.atlanta.example.com');
  assert.deepEqual(m.cseq, { seq: 314159, method: 'INVITE' });
  assert.equal(m.maxForwards, 70);
  assert.equal(m.body.length, 29);
  assert.equal(m.getRaw('x-custom'), 'kept   as  is');
  assert.equal(m.getRaw('Content-Type'), 'application/sdp');
  assert.equal(m.getRaw('c'), 'application/sdp', 'compact form finds the long header');
});

test('parses a response with several Vias and Record-Route', () => {
  const m = must(RESPONSE_200);
  assert.ok(m.isResponse());
  if (!m.isResponse()) return;
  assert.equal(m.status, 200);
  assert.equal(m.reason, 'OK');
  assert.equal(m.via.length, 2);
  assert.equal(m.via[0]!.received, '192.0.2.3');
  assert.equal(m.via[1]!.rport, 5060);
  assert.equal(m.get(RouteHeader), undefined);
  assert.equal(m.to.tag, 'a6c85cf');
});

test('an unchanged message serializes to the exact bytes, a changed one keeps raw fields', () => {
  const bytes = utf8Encode(INVITE);
  const m = must(bytes);
  assert.deepEqual(serializeMessage(m), bytes);
  const changed = m
    .set('Max-Forwards', '69')
    .prepend('Via', 'SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx');
  const text = messageToString(changed);
  assert.match(
    text,
    /^INVITE sip:bob@biloxi.example.com SIP\/2.0\r\nVia: SIP\/2.0\/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nVia: SIP/,
  );
  assert.match(
    text,
    /\r\nX-Custom: {3}kept {3}as {2}is {2}\r\n/,
    'unknown header passes byte for byte',
  );
  assert.match(text, /\r\nMax-Forwards: 69\r\n/);
  const again = must(serializeMessage(changed));
  assert.equal(again.via.length, 2);
  assert.equal(again.maxForwards, 69);
  assert.deepEqual(again.body, m.body);
});

test('Content-Length follows the body after withBody and is added when absent', () => {
  const m = must(INVITE).withBody('hello', 'text/plain');
  assert.match(
    messageToString(m),
    /Content-Type: text\/plain\r\n.*Content-Length: 5\r\n\r\nhello$/s,
  );
  const noCl = must(
    crlf([
      'OPTIONS sip:a@b SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'From: <sip:a@b>;tag=1',
      'To: <sip:a@b>',
      'Call-ID: x',
      'CSeq: 1 OPTIONS',
      '',
      '',
    ]),
  );
  assert.equal(noCl.contentLength, undefined);
  assert.match(messageToString(noCl.set('Subject', 'x')), /Content-Length: 0\r\n\r\n$/);
});

test('RFC 3261 §18.3: datagram without Content-Length takes the rest; trailing octets after Content-Length are ignored', () => {
  const base = [
    'MESSAGE sip:a@b SIP/2.0',
    'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
    'From: <sip:a@b>;tag=1',
    'To: <sip:a@b>',
    'Call-ID: x',
    'CSeq: 1 MESSAGE',
  ];
  assert.equal(must(crlf([...base, '', 'hello'])).bodyText(), 'hello');
  const m = must(crlf([...base, 'Content-Length: 2', '', 'hello']));
  assert.equal(m.bodyText(), 'he');
  assert.equal(messageToString(m).endsWith('\r\n\r\nhe'), true);
  assert.equal(must(crlf([...base, '', 'hello']), 'stream').bodyText(), '');
});

test('folded header values are unfolded; names before colon may have whitespace', () => {
  const m = must(
    crlf([
      'OPTIONS sip:a@b SIP/2.0',
      'Via  : SIP/2.0/UDP h;',
      '  branch=z9hG4bK1',
      'From: <sip:a@b>;tag=1',
      'To: <sip:a@b>',
      'Call-ID: x',
      'CSeq: 1',
      ' OPTIONS',
      'Subject: one',
      '\ttwo',
      '',
      '',
    ]),
  );
  assert.equal(m.topVia.branch, 'z9hG4bK1');
  assert.equal(m.getRaw('Subject'), 'one two');
  assert.deepEqual(m.cseq, { seq: 1, method: 'OPTIONS' });
});

test('bare LF line ends are tolerated', () => {
  const m = must(INVITE.replace(/\r\n/g, '\n').replace('Content-Length: 29', 'Content-Length: 27'));
  assert.equal(m.callId, 'a84b4c76e66710@pc33.atlanta.example.com');
});

test('non-UTF-8 header octets are kept exactly (binary header section)', () => {
  const head = utf8Encode(
    crlf([
      'OPTIONS sip:a@b SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'From: <sip:a@b>;tag=1',
      'To: <sip:a@b>',
      'Call-ID: x',
      'CSeq: 1 OPTIONS',
      'X-Bin: \u00ff',
      'Content-Length: 0',
      '',
      '',
    ]),
  );
  const bytes = new Uint8Array(head.length - 1);
  // Replace the two-octet UTF-8 ÿ by a lone 0xFF octet (invalid UTF-8).
  const idx = head.indexOf(0xc3);
  bytes.set(head.subarray(0, idx), 0);
  bytes[idx] = 0xff;
  bytes.set(head.subarray(idx + 2), idx + 1);
  const m = must(bytes);
  assert.equal(m.binary, true);
  const out = serializeMessage(m.set('Subject', 'x'));
  assert.ok(out.includes(0xff));
  const again = must(out);
  assert.equal(again.getRaw('X-Bin'), '\u00ff');
});

test('UTF-8 in header values decodes as text', () => {
  const m = must(
    crlf([
      'OPTIONS sip:a@b SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'From: "Zoë" <sip:a@b>;tag=1',
      'To: <sip:a@b>',
      'Call-ID: x',
      'CSeq: 1 OPTIONS',
      'Content-Length: 2',
      '',
      'é',
    ]),
  );
  assert.equal(m.from.displayName, 'Zoë');
  assert.equal(m.bodyText(), 'é');
});

test('list headers join across fields', () => {
  const m = must(
    crlf([
      'OPTIONS sip:a@b SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'Route: <sip:p1;lr>, <sip:p2;lr>',
      'From: <sip:a@b>;tag=1',
      'To: <sip:a@b>',
      'Call-ID: x',
      'Route: <sip:p3;lr>',
      'CSeq: 1 OPTIONS',
      'Contact: *',
      '',
      '',
    ]),
  );
  const routes = m.get(RouteHeader)!;
  assert.deepEqual(
    routes.map((r) => (r.uri.kind === 'sip' ? r.uri.host : '')),
    ['p1', 'p2', 'p3'],
  );
  assert.deepEqual(m.get(ContactHeader), ['*']);
  const popped = m.removeFirst(RouteHeader);
  assert.equal(popped.get(RouteHeader)!.length, 2);
  assert.equal(popped.getRawAll('Route')[0], '<sip:p2;lr>');
});

test('a malformed non-critical header does not fail the message', () => {
  const m = must(
    crlf([
      'OPTIONS sip:a@b SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'From: <sip:a@b>;tag=1',
      'To: <sip:a@b>',
      'Call-ID: x',
      'CSeq: 1 OPTIONS',
      'Contact: <sip:broken',
      '',
      '',
    ]),
  );
  const r = m.decode(ContactHeader);
  assert.ok(r && !r.ok);
  if (r && !r.ok) assert.equal(r.error.code, 'SB_ERR_PARSE_HEADER');
  assert.equal(m.get(ContactHeader), undefined);
});

const REQ = [
  'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
  'From: <sip:a@b>;tag=1',
  'To: <sip:a@b>',
  'Call-ID: x',
];

test('critical header failures: table', () => {
  const rows: [string, string[], string, number][] = [
    ['empty', [''], 'SB_ERR_PARSE_EMPTY', 400],
    [
      'version 3.0',
      ['OPTIONS sip:a@b SIP/3.0', ...REQ, 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_VERSION',
      505,
    ],
    [
      'garbage version',
      ['OPTIONS sip:a@b HTTP/1.1', ...REQ, 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_START_LINE',
      400,
    ],
    [
      'method not a token',
      ['OPT@IONS sip:a@b SIP/2.0', ...REQ, 'CSeq: 1 OPT@IONS', '', ''],
      'SB_ERR_PARSE_METHOD',
      400,
    ],
    [
      'bad Request-URI',
      ['OPTIONS sip: SIP/2.0', ...REQ, 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_REQUEST_URI',
      400,
    ],
    [
      'no colon',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'CSeq 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_HEADER_LINE',
      400,
    ],
    [
      'bad CSeq',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'CSeq: x OPTIONS', '', ''],
      'SB_ERR_PARSE_CSEQ',
      400,
    ],
    [
      'CSeq overflow',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'CSeq: 4294967296 OPTIONS', '', ''],
      'SB_ERR_PARSE_CSEQ',
      400,
    ],
    [
      'CSeq mismatch',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'CSeq: 1 INVITE', '', ''],
      'SB_ERR_CSEQ_METHOD_MISMATCH',
      400,
    ],
    [
      'no Call-ID',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ.slice(0, 3), 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_MISSING_HEADER',
      400,
    ],
    [
      'two To',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'To: <sip:c@d>', 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_DUPLICATE_HEADER',
      400,
    ],
    [
      'bad Max-Forwards',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'Max-Forwards: ten', 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_MAX_FORWARDS',
      400,
    ],
    [
      'negative Content-Length',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'CSeq: 1 OPTIONS', 'Content-Length: -1', '', ''],
      'SB_ERR_PARSE_CONTENT_LENGTH',
      400,
    ],
    [
      'short body',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ, 'CSeq: 1 OPTIONS', 'Content-Length: 10', '', 'abc'],
      'SB_ERR_BODY_TRUNCATED',
      400,
    ],
    [
      'bad Via',
      ['OPTIONS sip:a@b SIP/2.0', 'Via: SIP/2.0/UDP', ...REQ.slice(1), 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_VIA',
      400,
    ],
    [
      'bad From',
      [
        'OPTIONS sip:a@b SIP/2.0',
        REQ[0]!,
        'From: <sip:a@b',
        ...REQ.slice(2),
        'CSeq: 1 OPTIONS',
        '',
        '',
      ],
      'SB_ERR_PARSE_FROM',
      400,
    ],
    [
      'bad To',
      [
        'OPTIONS sip:a@b SIP/2.0',
        ...REQ.slice(0, 2),
        'To: "x <sip:a@b>',
        REQ[3]!,
        'CSeq: 1 OPTIONS',
        '',
        '',
      ],
      'SB_ERR_PARSE_TO',
      400,
    ],
    [
      'bad Call-ID',
      ['OPTIONS sip:a@b SIP/2.0', ...REQ.slice(0, 3), 'Call-ID: a b', 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_CALL_ID',
      400,
    ],
    [
      'status 700',
      ['SIP/2.0 700 Odd', ...REQ, 'CSeq: 1 OPTIONS', '', ''],
      'SB_ERR_PARSE_STATUS_CODE',
      400,
    ],
    [
      'unterminated',
      ['OPTIONS sip:a@b SIP/2.0', 'Via: SIP/2.0/UDP h;bra'],
      'SB_ERR_PARSE_HEADERS_UNTERMINATED',
      400,
    ],
  ];
  for (const [name, lines, code, status] of rows) {
    const r = parseMessage(crlf(lines));
    assert.equal(r.ok, false, name);
    if (!r.ok) {
      assert.equal(r.error.code, code, `${name}: ${r.error.detail}`);
      assert.equal(r.error.status, status, name);
    }
  }
});

test('limits: header bytes, header count and body bytes answer 513', () => {
  const limits = {
    maxHeaderBytes: 200,
    maxBodyBytes: 4,
    maxHeaderCount: 8,
    maxBufferedBytes: 1000,
  };
  const big = crlf([
    'OPTIONS sip:a@b SIP/2.0',
    ...REQ,
    'CSeq: 1 OPTIONS',
    'X: ' + 'a'.repeat(300),
    '',
    '',
  ]);
  let r = parseMessage(big, { limits });
  assert.ok(!r.ok && r.error.code === 'SB_ERR_HEADERS_TOO_LARGE' && r.error.status === 513);
  const many = crlf([
    'OPTIONS sip:a@b SIP/2.0',
    ...REQ,
    'CSeq: 1 OPTIONS',
    'X: 1',
    'X: 2',
    'X: 3',
    'X: 4',
    '',
    '',
  ]);
  r = parseMessage(many, { limits });
  assert.ok(!r.ok && r.error.code === 'SB_ERR_TOO_MANY_HEADERS');
  const body = crlf([
    'OPTIONS sip:a@b SIP/2.0',
    ...REQ,
    'CSeq: 1 OPTIONS',
    'Content-Length: 5',
    '',
    '12345',
  ]);
  r = parseMessage(body, { limits });
  assert.ok(!r.ok && r.error.code === 'SB_ERR_BODY_TOO_LARGE' && r.error.status === 513);
});

test('a failed request carries the fields read so far (for a 400)', () => {
  const r = fails(
    crlf(['OPTIONS sip:a@b SIP/2.0', ...REQ, 'CSeq: 1 INVITE', '', '']),
    'SB_ERR_CSEQ_METHOD_MISMATCH',
    400,
  );
  assert.ok(
    !r.ok && r.partial && r.partial.isRequest && r.partial.fields.some((f) => f.key === 'via'),
  );
});

test('leading CRLFs before the start line are ignored (RFC 3261 §7.5)', () => {
  const m = must('\r\n\r\n' + INVITE);
  assert.equal(m.callId, 'a84b4c76e66710@pc33.atlanta.example.com');
  assert.equal(messageToString(m).startsWith('INVITE'), true);
});
