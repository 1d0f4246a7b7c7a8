import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ViaHeader, formatVia } from './via.ts';
import { parseCSeq } from './cseq.ts';
import { CallIdHeader, ExpiresHeader, MaxForwardsHeader, ContentLengthHeader } from './scalar.ts';
import { ContactHeader, FromHeader, RouteHeader } from './address.ts';
import { formatNameAddr, parseNameAddr } from './name-addr.ts';
import { allCodecs } from './registry.ts';
import { headerKey, canonicalHeaderName } from './names.ts';

test('Via: golden values', () => {
  const r = ViaHeader.parse(
    'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;received=10.0.0.1;rport=5061, SIP/2.0/tcp [2001:db8::9]:5070 ;branch=z9hG4bKx;rport',
  );
  assert.ok(r.ok);
  const [a, b] = r.value;
  assert.deepEqual(
    { t: a!.transport, h: a!.host, p: a!.port, br: a!.branch, rec: a!.received, rp: a!.rport },
    { t: 'UDP', h: '192.0.2.1', p: 5060, br: 'z9hG4bK74bf9', rec: '10.0.0.1', rp: 5061 },
  );
  assert.deepEqual(
    { t: b!.transport, h: b!.host, p: b!.port, rp: b!.rport },
    { t: 'TCP', h: '[2001:db8::9]', p: 5070, rp: null },
  );
  assert.equal(
    formatVia(a!),
    'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK74bf9;received=10.0.0.1;rport=5061',
  );
  const ws = ViaHeader.parse('SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw');
  assert.ok(ws.ok && ws.value[0]!.host === '192.0.2.2');
  const rec = ViaHeader.parse(
    'SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111',
  );
  assert.ok(rec.ok && rec.value[0]!.received === '[2001:db8::9:255]');
  for (const bad of [
    '',
    'SIP/2.0/UDP',
    'SIP/2.0 host',
    'SIP/2.0/UDP host;;',
    'SIP/2.0/UDP host,',
    'SIP/2.0/UDP host:x',
    'SIP/2.0/UDP host;rport=99999',
    'SIP/2.0/UDP host;branch',
  ]) {
    assert.equal(ViaHeader.parse(bad).ok, false, bad);
  }
});

test('CSeq, Call-ID and numbers', () => {
  assert.deepEqual(parseCSeq('4711 INVITE'), { ok: true, value: { seq: 4711, method: 'INVITE' } });
  assert.deepEqual(parseCSeq('4294967295 BYE'), {
    ok: true,
    value: { seq: 4294967295, method: 'BYE' },
  });
  for (const bad of ['4294967296 BYE', 'INVITE', '1', '1INVITE', '1 INV ITE', '-1 BYE'])
    assert.equal(parseCSeq(bad).ok, false, bad);
  assert.ok(CallIdHeader.parse('f81d4fae-7dec-11d0-a765-00a0c91e6bf6@foo.bar.com').ok);
  for (const bad of ['', 'a b', '@x', 'x@', 'a@b@c'])
    assert.equal(CallIdHeader.parse(bad).ok, false, bad);
  assert.deepEqual(MaxForwardsHeader.parse('0068'), { ok: true, value: 68 });
  assert.equal(ContentLengthHeader.parse('-1').ok, false);
  assert.deepEqual(ExpiresHeader.parse('1'.repeat(100)), { ok: true, value: 4294967295 });
});

test('name-addr forms (RFC 3261 §20.10)', () => {
  const rows: [string, string | undefined, string | undefined, number][] = [
    ['"A. G. Bell" <sip:agb@bell-telephone.com> ;tag=a48s', 'A. G. Bell', 'a48s', 1],
    ['Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8', 'Anonymous', 'hyh8', 1],
    ['sip:+12125551212@server.phone2net.com;tag=887s', undefined, '887s', 1],
    ['"caller"<sip:caller@example.com>;tag=323', 'caller', '323', 1],
    ['"Watson, Thomas" < sip:t.watson@example.org >', 'Watson, Thomas', undefined, 0],
    ['token1~` token2 <sip:x@y>;p="quoted;value"', 'token1~` token2', undefined, 1],
    ['"\\"esc\\"" <sip:x@y>', '"esc"', undefined, 0],
  ];
  for (const [text, dn, tag, nparams] of rows) {
    const r = parseNameAddr(text);
    assert.ok(r.ok, `${text}: ${r.ok ? '' : r.error}`);
    assert.equal(r.value.displayName, dn, text);
    assert.equal(r.value.tag, tag, text);
    assert.equal(r.value.params.length, nparams, text);
    const again = parseNameAddr(formatNameAddr(r.value));
    assert.ok(again.ok);
    assert.deepEqual(again.value, r.value, 'format round-trips');
  }
  // Without <>, parameters belong to the header, not the URI (§20.10).
  const c = ContactHeader.parse('sip:+19725552222@gw1.example.net;unknownparam');
  assert.ok(c.ok);
  const na = c.ok ? c.value[0] : undefined;
  assert.ok(na !== undefined && typeof na !== 'string');
  if (na !== undefined && typeof na !== 'string') {
    assert.equal(na.params[0]!.name, 'unknownparam');
    assert.ok(na.uri.kind === 'sip' && na.uri.params.length === 0);
  }
  for (const bad of [
    '"unterminated <sip:a@b>',
    '<sip:a@b',
    'Bell, Alexander <sip:a@b>',
    'sip:a@b?x=y',
    '<sip:a@b>;;',
    '<sip:a@b> junk',
    'no-scheme',
  ]) {
    assert.equal(FromHeader.parse(bad).ok, false, bad);
  }
});

test('Contact * and lists', () => {
  assert.deepEqual(ContactHeader.parse('*'), { ok: true, value: ['*'] });
  const r = ContactHeader.parse(
    '<sip:a@b>;q=0.7;expires=3600, "Mr X" <sip:x@y>;+sip.instance="<urn:uuid:1>";reg-id=1',
  );
  assert.ok(r.ok && r.value.length === 2);
  const routes = RouteHeader.parse('<sip:p1.example.com;lr>,<sip:p2.example.com;lr>');
  assert.ok(routes.ok && routes.value.length === 2);
});

test('names: compact forms and case map to one key; registry covers the critical headers', () => {
  assert.equal(headerKey('v'), 'via');
  assert.equal(headerKey('VIA'), 'via');
  assert.equal(headerKey('MaX-fOrWaRdS'), 'max-forwards');
  assert.equal(headerKey('X-Foo'), 'x-foo');
  assert.equal(canonicalHeaderName('call-id'), 'Call-ID');
  const keys = new Set(allCodecs().map((c) => c.key));
  for (const k of [
    'via',
    'from',
    'to',
    'call-id',
    'cseq',
    'max-forwards',
    'content-length',
    'contact',
    'route',
    'record-route',
  ])
    assert.ok(keys.has(k), k);
});

test('property: codecs never throw on arbitrary input', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      for (const c of allCodecs()) c.parse(s);
    }),
    { numRuns: 1000 },
  );
});
