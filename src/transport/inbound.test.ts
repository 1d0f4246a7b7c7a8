import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { defaultLimits, utf8Encode } from '../base/index.ts';
import {
  formatUri,
  messageToString,
  parseMessage,
  serializeMessage,
  ViaHeader,
  type SipRequest,
} from '../sip/index.ts';
import { failedRequestFields, headRequestFields, looksLikeResponse, stampVia } from './inbound.ts';

function request(via: string): SipRequest {
  const r = parseMessage(
    [
      'OPTIONS sip:bob@example.com SIP/2.0',
      `Via: ${via}`,
      'Via: SIP/2.0/UDP second.example.com;branch=z9hG4bK2',
      'From: <sip:alice@example.com>;tag=1',
      'To: <sip:bob@example.com>',
      'Call-ID: abc',
      'CSeq: 1 OPTIONS',
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  assert.ok(r.ok && r.message.isRequest());
  return r.message as SipRequest;
}

describe('stampVia (RFC 3261 §18.2.1, RFC 3581 §4)', () => {
  it('leaves a request alone when sent-by is the source address and there is no rport', () => {
    const req = request('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1');
    const out = stampVia(req, { address: '192.0.2.1', port: 5060 });
    assert.equal(out, req, 'same object: wire bytes kept');
  });

  it('adds received when sent-by differs from the source address', () => {
    const out = stampVia(request('SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1'), {
      address: '198.51.100.7',
      port: 40000,
    });
    assert.equal(out.topVia.received, '198.51.100.7');
    assert.equal(out.topVia.rport, undefined, 'no rport requested, none added');
    assert.equal(out.topVia.branch, 'z9hG4bK1');
    assert.equal(out.via.length, 2, 'the second Via is kept');
    assert.equal(out.via[1]!.host, 'second.example.com');
  });

  it('adds received when sent-by is a host name', () => {
    const out = stampVia(request('SIP/2.0/UDP pc33.example.com;branch=z9hG4bK1'), {
      address: '192.0.2.1',
      port: 5060,
    });
    assert.equal(out.topVia.received, '192.0.2.1');
  });

  it('fills an empty rport, and adds received even when it equals sent-by (RFC 3581 §4)', () => {
    const out = stampVia(request('SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1'), {
      address: '192.0.2.1',
      port: 61000,
    });
    assert.equal(out.topVia.rport, 61000);
    assert.equal(out.topVia.received, '192.0.2.1');
    assert.match(messageToString(out), /;rport=61000;branch=z9hG4bK1;received=192\.0\.2\.1\r\n/);
  });

  it('keeps an rport that already has a value', () => {
    const out = stampVia(request('SIP/2.0/UDP 192.0.2.1:5060;rport=5062;branch=z9hG4bK1'), {
      address: '192.0.2.9',
      port: 61000,
    });
    assert.equal(out.topVia.rport, 5062);
    assert.equal(out.topVia.received, '192.0.2.9');
  });

  it('writes an IPv6 received without brackets and compares IPv6 canonically', () => {
    const same = request('SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1');
    assert.equal(stampVia(same, { address: '2001:DB8:0:0:0:0:0:1', port: 5060 }), same);
    const out = stampVia(request('SIP/2.0/UDP [2001:db8::1];rport;branch=z9hG4bK1'), {
      address: '2001:db8::2',
      port: 5070,
    });
    assert.equal(out.topVia.received, '2001:db8::2');
    assert.equal(out.topVia.rport, 5070);
    const again = parseMessage(serializeMessage(out));
    assert.ok(again.ok, 'the stamped request still parses');
  });
});

describe('stampVia: where the stamped Via goes', () => {
  it('rewrites a top Via field of its own in place; the other fields keep their values', () => {
    const out = stampVia(request('SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1'), {
      address: '192.0.2.9',
      port: 5080,
    });
    assert.deepEqual(
      out.fields.map((f) => f.name),
      ['Via', 'Via', 'From', 'To', 'Call-ID', 'CSeq', 'Max-Forwards', 'Content-Length'],
    );
    assert.equal(
      out.fields[0]!.value,
      'SIP/2.0/UDP 192.0.2.1:5060;rport=5080;branch=z9hG4bK1;received=192.0.2.9',
    );
    assert.equal(out.fields[1]!.value, 'SIP/2.0/UDP second.example.com;branch=z9hG4bK2');
    assert.equal(out.from.tag, '1');
    assert.equal(formatUri(out.to.uri), 'sip:bob@example.com');
    assert.equal(out.callId, 'abc');
    assert.deepEqual(out.cseq, { seq: 1, method: 'OPTIONS' });
    assert.deepEqual(
      out.via.map((v) => v.branch),
      ['z9hG4bK1', 'z9hG4bK2'],
    );
  });

  it('splits the top Via off a field holding several (RFC 3261 §7.3.1)', () => {
    const out = stampVia(
      request(
        'SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1, SIP/2.0/UDP mid.example.com;branch=z9hG4bK3',
      ),
      { address: '192.0.2.9', port: 5080 },
    );
    assert.deepEqual(
      out.via.map((v) => [v.branch, v.received]),
      [
        ['z9hG4bK1', '192.0.2.9'],
        ['z9hG4bK3', undefined],
        ['z9hG4bK2', undefined],
      ],
    );
    assert.equal(out.fields[0]!.value.includes(','), false);
    assert.equal(out.fields[1]!.value, 'SIP/2.0/UDP mid.example.com;branch=z9hG4bK3');
  });
});

describe('stampVia: the stamped Via is kept decoded', () => {
  it('is what its text parses to, for any sent-by, parameters and source', () => {
    const host = fc.oneof(
      fc.constantFrom('192.0.2.1', 'pc33.example.com', '[2001:db8::1]', '127.0.0.1'),
      fc.ipV4(),
    );
    const param = fc.oneof(
      fc.constantFrom(';rport', ';rport=5062', ';received=10.0.0.1', ';lr', ';maddr=10.1.1.1'),
      fc.stringMatching(/^;[a-z]{1,5}(=[a-z0-9]{1,5})?$/),
    );
    const source = fc.record({
      address: fc.oneof(fc.ipV4(), fc.constantFrom('::1', '2001:db8::9')),
      port: fc.integer({ min: 1, max: 65535 }),
    });
    fc.assert(
      fc.property(
        host,
        fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
        fc.array(param, { maxLength: 4 }),
        source,
        (h, port, params, remote) => {
          const via = `SIP/2.0/UDP ${h}${port === undefined ? '' : `:${port}`}${params.join('')};branch=z9hG4bK1`;
          const parsed = parseMessage(
            [
              'OPTIONS sip:bob@example.com SIP/2.0',
              `Via: ${via}`,
              'From: <sip:alice@example.com>;tag=1',
              'To: <sip:bob@example.com>',
              'Call-ID: abc',
              'CSeq: 1 OPTIONS',
              'Content-Length: 0',
              '',
              '',
            ].join('\r\n'),
          );
          if (!parsed.ok) return; // a parameter combination the parser refuses
          const out = stampVia(parsed.message as SipRequest, remote);
          const again = ViaHeader.parse(out.getRaw('Via')!);
          assert.ok(again.ok);
          assert.deepEqual(out.topVia, again.value[0]);
          // The whole message reads as its own octets parsed afresh.
          const fresh = parseMessage(serializeMessage(out));
          assert.ok(fresh.ok);
          assert.deepEqual(
            fresh.message.fields.map((f) => [f.name, f.value]),
            out.fields.map((f) => [f.name, f.value]),
          );
          assert.deepEqual(fresh.message.via, out.via);
          assert.deepEqual(fresh.message.from, out.from);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('parses no field again: the copy holds the objects decoded before', () => {
    const req = request('SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1');
    const from = req.from;
    const cseq = req.cseq;
    const out = stampVia(req, { address: '192.0.2.9', port: 5080 });
    assert.equal(out.from, from);
    assert.equal(out.cseq, cseq);
    const top = out.topVia;
    assert.equal(top.received, '192.0.2.9');
    assert.equal(top.rport, 5080);
    // Further changes keep them too, the stamped Via included.
    const changed = out.set('Max-Forwards', '69').prepend('Record-Route', '<sip:p.example.com;lr>');
    assert.equal(changed.from, from);
    assert.equal(changed.topVia, top);
    assert.equal(changed.maxForwards, 69);
  });
});

describe('stampVia: unusual layouts', () => {
  it('a folded top Via becomes one line; the fields after it read right', () => {
    const r = parseMessage(
      [
        'OPTIONS sip:bob@example.com SIP/2.0',
        'v: SIP/2.0/UDP 192.0.2.1:5060',
        ' ;rport;branch=z9hG4bK1',
        'From: <sip:alice@example.com>;tag=1',
        'To: <sip:bob@example.com>',
        'Call-ID: folded',
        'CSeq: 1 OPTIONS',
        'Subject: after',
        'Content-Length: 4',
        '',
        'body',
      ].join('\r\n'),
    );
    assert.ok(r.ok);
    const out = stampVia(r.message as SipRequest, { address: '192.0.2.9', port: 5080 });
    assert.equal(
      out.fields[0]!.raw,
      'v: SIP/2.0/UDP 192.0.2.1:5060;rport=5080;branch=z9hG4bK1;received=192.0.2.9',
    );
    assert.equal(out.getRaw('Subject'), 'after');
    assert.equal(out.callId, 'folded');
    assert.equal(out.bodyText(), 'body');
    const text = messageToString(out);
    assert.match(text, /\r\nSubject: after\r\nContent-Length: 4\r\n\r\nbody$/);
    assert.equal(out.wire, undefined);
  });
});

describe('fields of requests that fail to parse', () => {
  const limits = defaultLimits;
  const options = { framing: 'datagram' as const, limits };

  it('uses the partial message the parser returns', () => {
    const bytes = utf8Encode(
      'INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n' +
        'To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
    );
    const r = parseMessage(bytes, options);
    assert.ok(!r.ok);
    const fields = failedRequestFields(bytes, r, options);
    assert.ok(fields?.some((f) => f.key === 'via'));
  });

  it('reads the header fields under a stand-in start line when the version is bad (RFC 4475 badvers → 505)', () => {
    const bytes = utf8Encode(
      'OPTIONS sip:t.watson@example.org SIP/7.0\r\nVia: SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw\r\n' +
        'Max-Forwards: 70\r\nFrom: A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\r\n' +
        'To: T. Watson <sip:t.watson@example.org>\r\nCall-ID: 1@c.example.com\r\nCSeq: 1 OPTIONS\r\n\r\n',
    );
    const r = parseMessage(bytes, options);
    assert.ok(!r.ok);
    assert.equal(r.error.status, 505);
    const fields = failedRequestFields(bytes, r, options);
    assert.deepEqual(
      fields?.map((f) => f.key).filter((k) => ['via', 'from', 'to', 'call-id', 'cseq'].includes(k)),
      ['via', 'from', 'to', 'call-id', 'cseq'],
    );
  });

  it('gives nothing for a response, nor for bytes without a line', () => {
    const resp = utf8Encode('SIP/2.0 99999 Huge\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n');
    const r = parseMessage(resp, options);
    assert.ok(!r.ok);
    assert.equal(failedRequestFields(resp, r, options), undefined);
    assert.ok(looksLikeResponse(resp));
    assert.ok(looksLikeResponse(utf8Encode('\r\nsip/2.0 200 OK\r\n')));
    assert.ok(!looksLikeResponse(utf8Encode('OPTIONS sip:a SIP/2.0\r\n')));
    const junk = utf8Encode('garbage');
    const j = parseMessage(junk, options);
    assert.ok(!j.ok);
    assert.equal(failedRequestFields(junk, j, options), undefined);
  });

  it('reads the header section a StreamFramer hands over on a bad Content-Length', () => {
    const head = utf8Encode(
      'MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n' +
        'To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: -5\r\n\r\n',
    );
    assert.ok(headRequestFields(head, limits)?.some((f) => f.key === 'via'));
    const tooBig = utf8Encode(
      'MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n' +
        'To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 99999999\r\n\r\n',
    );
    assert.ok(headRequestFields(tooBig, limits)?.some((f) => f.key === 'call-id'));
    const respHead = utf8Encode(
      'SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: x\r\n\r\n',
    );
    assert.equal(headRequestFields(respHead, limits), undefined);
  });
});
