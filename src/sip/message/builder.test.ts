import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createErrorResponse, createRequest, createResponse } from './builder.ts';
import { parseMessage } from '../parser/parse-message.ts';
import {
  serializeFields,
  serializeHead,
  serializeMessage,
  messageToString,
  serializeToArena,
} from './serialize.ts';
import { reasonPhrase } from './status.ts';
import { SwitchboardError } from '../../base/errors.ts';
import { OctetArena } from '../../base/text.ts';
import { crlf, INVITE } from '../../../test/support/messages.ts';
import { makeField, type SipRequest } from './message.ts';
import { ViaHeader } from '../headers/via.ts';
import { RouteHeader } from '../headers/address.ts';
import fc from 'fast-check';

test('createRequest builds a parseable request with the §8.1.1 fields', () => {
  const req = createRequest({
    method: 'MESSAGE',
    uri: 'sip:bob@example.com',
    from: '<sip:alice@example.com>;tag=abc',
    to: '<sip:bob@example.com>',
    callId: 'c1',
    cseq: 1,
    via: ['SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1'],
    body: 'hi',
    contentType: 'text/plain',
  });
  const r = parseMessage(serializeMessage(req));
  assert.ok(r.ok && r.message.isRequest());
  assert.equal(r.message.maxForwards, 70);
  assert.equal(r.message.bodyText(), 'hi');
  assert.equal(r.message.getRaw('Content-Type'), 'text/plain');
  assert.throws(
    () =>
      createRequest({
        method: 'BAD METHOD',
        uri: 'sip:a@b',
        from: '<sip:a@b>',
        to: '<sip:a@b>',
        callId: 'x',
        cseq: 1,
      }),
    SwitchboardError,
  );
  assert.throws(
    () =>
      createRequest({
        method: 'X',
        uri: 'nope',
        from: '<sip:a@b>',
        to: '<sip:a@b>',
        callId: 'x',
        cseq: 1,
      }),
    /SB_ERR|URI/,
  );
});

test('createResponse copies Via/From/To/Call-ID/CSeq byte for byte and adds the To tag (§8.2.6)', () => {
  const r = parseMessage(INVITE);
  assert.ok(r.ok && r.message.isRequest());
  const req = r.message;
  if (!req.isRequest()) return;
  const resp = createResponse(req, 180, { toTag: 'xyz' });
  const text = messageToString(resp);
  assert.match(text, /^SIP\/2.0 180 Ringing\r\n/);
  assert.match(
    text,
    /\r\nVia: SIP\/2.0\/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n/,
  );
  assert.match(text, /\r\nTo: Bob <sip:bob@biloxi.example.com>;tag=xyz\r\n/);
  assert.doesNotMatch(text, /X-Custom/);
  const trying = messageToString(createResponse(req, 100, { toTag: 'xyz' }));
  assert.doesNotMatch(trying, /tag=xyz/);
  const parsed = parseMessage(serializeMessage(resp));
  assert.ok(parsed.ok && parsed.message.to.tag === 'xyz' && parsed.message.cseq.seq === 314159);
  assert.throws(() => createResponse(req, 99), SwitchboardError);
});

test('createErrorResponse answers a request that failed to parse, when it has a Via', () => {
  const bad = parseMessage(
    crlf([
      'OPTIONS sip:a@b SIP/2.0',
      'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
      'From: <sip:a@b>;tag=1',
      'To: <sip:a@b>',
      'Call-ID: x',
      'CSeq: 1 INVITE',
      '',
      '',
    ]),
  );
  assert.ok(!bad.ok && bad.partial);
  if (bad.ok || !bad.partial) return;
  const resp = createErrorResponse(bad.partial, bad.error.status, bad.error.reason, 't1')!;
  assert.match(
    messageToString(resp),
    /^SIP\/2.0 400 Bad Request\r\nVia: SIP\/2.0\/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=t1\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n/,
  );
  assert.equal(createErrorResponse({ fields: [] }, 400), undefined);
});

test('reason phrases', () => {
  assert.equal(reasonPhrase(486), 'Busy Here');
  assert.equal(reasonPhrase(489), 'Bad Event');
  assert.equal(reasonPhrase(499), 'Client Error');
});

test('serializeMessage remembers octets in an array of their own, never pooled ones', () => {
  const make = (body?: string) =>
    createRequest({
      method: 'MESSAGE',
      uri: 'sip:bob@example.com',
      from: '<sip:alice@example.com>;tag=a',
      to: '<sip:bob@example.com>',
      callId: 'memo@example.com',
      cseq: 1,
      ...(body !== undefined ? { body, contentType: 'text/plain' } : {}),
    });
  const text = new TextEncoder();
  let pooledCalls = 0;
  // Stands in for a pooled encoder: another array each time.
  const pooled = (s: string): Uint8Array => (pooledCalls++, text.encode(s));
  const a = make();
  const p1 = serializeMessage(a, pooled);
  const p2 = serializeMessage(a, pooled);
  assert.notEqual(p1, p2, 'pooled octets are not kept');
  assert.equal(pooledCalls, 2);
  const own = serializeMessage(a);
  assert.deepEqual(own, p1);
  assert.equal(serializeMessage(a), own, 'the same array again');
  assert.equal(serializeMessage(a, pooled), own, 'whatever the encoder');
  assert.equal(pooledCalls, 2);
  // A copy is another message: serialized anew, with what changed.
  const b = a.append('Subject', 'hi');
  assert.notEqual(serializeMessage(b), own);
  assert.match(messageToString(b), /\r\nSubject: hi\r\n/);
  // With a body the octets are concatenated into an array of their own: kept at once.
  const c = make('hello');
  const c1 = serializeMessage(c, pooled);
  assert.equal(serializeMessage(c), c1);
});

test('serializeToArena carves header and body from the arena, and the message remembers them', () => {
  const arena = new OctetArena(4096);
  const make = (callId: string, body?: string) =>
    createRequest({
      method: 'MESSAGE',
      uri: 'sip:bob@example.com',
      from: '<sip:alice@example.com>;tag=a',
      to: '<sip:bob@example.com>',
      callId,
      cseq: 1,
      ...(body !== undefined ? { body, contentType: 'text/plain' } : {}),
    });
  const a = make('arena-1@example.com', 'hello');
  const b = make('arena-2@example.com');
  const ka = serializeToArena(a, arena);
  const kb = serializeToArena(b, arena);
  assert.equal(ka.buffer, kb.buffer, 'one chunk for both');
  assert.equal(ka.buffer.byteLength, 4096);
  assert.equal(serializeMessage(a), ka, 'the transport sends the same octets');
  assert.equal(serializeToArena(a, arena), ka);
  assert.deepEqual(
    ka,
    serializeMessage(make('arena-1@example.com', 'hello').append('X', 'y').remove('X')),
  );
  assert.match(messageToString(a), /\r\n\r\nhello$/);
  // A message received keeps the octets it came in.
  const parsed = parseMessage(INVITE);
  assert.ok(parsed.ok);
  assert.equal(serializeToArena(parsed.message, arena), parsed.message.wire);
});

test('makeField: known spellings take their key; other names must be tokens; no line breaks', () => {
  assert.deepEqual(makeField('Via', ' SIP/2.0/UDP h '), {
    name: 'Via',
    key: 'via',
    value: 'SIP/2.0/UDP h',
    raw: undefined,
  });
  assert.equal(makeField('v', 'x').key, 'via');
  assert.equal(makeField('CALL-ID', 'x').key, 'call-id');
  assert.equal(makeField('X-Custom-Thing', 'x').key, 'x-custom-thing');
  for (const bad of ['', 'Bad Name', 'Via:', 'Ünïcode', 'a\r\nb']) {
    assert.throws(
      () => makeField(bad, 'x'),
      (e: unknown) => e instanceof SwitchboardError && e.code === 'SB_ERR_INVALID_HEADER_NAME',
      JSON.stringify(bad),
    );
  }
  for (const bad of ['a\r\nInjected: 1', 'a\nb', 'a\rb']) {
    assert.throws(
      () => makeField('Subject', bad),
      (e: unknown) => e instanceof SwitchboardError && e.code === 'SB_ERR_INVALID_HEADER_VALUE',
    );
  }
});

test('a changed message keeps a Content-Length written with leading zeros when it still holds', () => {
  const text = [
    'MESSAGE sip:bob@example.com SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-lz',
    'From: <sip:alice@example.com>;tag=1',
    'To: <sip:bob@example.com>',
    'Call-ID: lz',
    'CSeq: 1 MESSAGE',
    'Content-Length: 0004',
    '',
    'abcd',
  ].join('\r\n');
  const r = parseMessage(text);
  assert.ok(r.ok);
  const out = messageToString(r.message.set('Subject', 'x'));
  assert.match(out, /\r\nContent-Length: 0004\r\n/);
  // A body of another length gets the right value.
  const other = messageToString(r.message.withBody('abcdef', 'text/plain'));
  assert.match(other, /\r\nContent-Length: 6\r\n/);
  assert.doesNotMatch(other, /0004/);
});

test('property: a message changed step by step reads as the same message parsed afresh', () => {
  const base = parseMessage(
    crlf([
      'INVITE sip:bob@example.com SIP/2.0',
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a;rport',
      'Via: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK-b, SIP/2.0/TCP 192.0.2.3;branch=z9hG4bK-c',
      'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>',
      'Max-Forwards: 70',
      'From: "Alice" <sip:alice@example.com>;tag=a1',
      'To: <sip:bob@example.com>',
      'Call-ID: carry@192.0.2.1',
      'CSeq: 7 INVITE',
      'X-Custom: one',
      'Content-Length: 0',
      '',
      '',
    ]),
  );
  assert.ok(base.ok && base.message.isRequest());
  const edit = fc.oneof(
    fc.record({
      op: fc.constant('set' as const),
      name: fc.constantFrom('Max-Forwards', 'Subject', 'X-Custom', 'To', 'Contact'),
      n: fc.nat(99),
    }),
    fc.record({
      op: fc.constant('prepend' as const),
      name: fc.constantFrom('Via', 'Record-Route', 'Route', 'X-Other'),
      n: fc.nat(99),
    }),
    fc.record({
      op: fc.constantFrom(
        'remove' as const,
        'removeFirstVia' as const,
        'removeFirstRoute' as const,
      ),
      name: fc.constantFrom('Route', 'X-Custom', 'Subject', 'Via'),
      n: fc.constant(0),
    }),
  );
  const value = (name: string, n: number): string =>
    name === 'Max-Forwards'
      ? String(n)
      : name === 'Via'
        ? `SIP/2.0/UDP 198.51.100.${n};branch=z9hG4bK-${n}`
        : name === 'To'
          ? `<sip:bob@example.com>;tag=t${n}`
          : name === 'Contact' || name.endsWith('Route')
            ? `<sip:h${n}.example.com;lr>`
            : `v${n}`;
  fc.assert(
    fc.property(fc.array(edit, { maxLength: 8 }), (edits) => {
      let m = base.message as SipRequest;
      // Read first, so that what is carried over is decoded.
      void m.via;
      void m.from;
      for (const e of edits) {
        if (e.op === 'set') m = m.set(e.name, value(e.name, e.n));
        else if (e.op === 'prepend') m = m.prepend(e.name, value(e.name, e.n));
        else if (e.op === 'remove') m = m.remove(e.name);
        else if (e.op === 'removeFirstVia') m = m.removeFirst(ViaHeader);
        else m = m.removeFirst(RouteHeader);
        // A received message changed in its text form writes as one slice of that text: the
        // same octets as field by field.
        assert.equal(serializeHead(m), serializeFields(m));
        const fresh = parseMessage(serializeMessage(m));
        if (!fresh.ok) {
          // Every Via removed: the copy is unparseable, and says so too.
          assert.equal(m.has('Via'), false);
          continue;
        }
        const f = fresh.message as SipRequest;
        for (const name of ['Via', 'Route', 'Record-Route', 'Max-Forwards', 'To', 'X-Custom']) {
          assert.deepEqual(m.getRawAll(name), f.getRawAll(name), name);
        }
        assert.deepEqual(m.via, f.via);
        assert.deepEqual(m.get(RouteHeader), f.get(RouteHeader));
        assert.deepEqual(m.to, f.to);
        assert.deepEqual(m.from, f.from);
        assert.equal(m.maxForwards, f.maxForwards);
        assert.deepEqual(m.cseq, f.cseq);
      }
    }),
    { numRuns: 300 },
  );
});

test('createResponse keeps what the request decoded of the fields it copies', () => {
  const r = parseMessage(INVITE);
  assert.ok(r.ok && r.message.isRequest());
  const req = r.message as SipRequest;
  const res = createResponse(req, 180, { toTag: 'x1' });
  assert.equal(res.topVia, req.topVia);
  assert.equal(res.from, req.from);
  assert.equal(res.cseq, req.cseq);
  assert.equal(res.to.tag, 'x1');
  assert.deepEqual(res.via, req.via);
  // And reads as its own text parsed afresh.
  const again = parseMessage(serializeMessage(res));
  assert.ok(again.ok);
  assert.deepEqual(again.message.via, res.via);
  assert.deepEqual(again.message.to, res.to);
});
