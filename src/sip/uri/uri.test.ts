import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  formatUri,
  isSimpleSipUri,
  parseUri,
  parseUriByGroups,
  parseUriGeneral,
  unescapeUri,
  uriEquals,
  type SipUri,
} from './uri.ts';
import { paramValue } from './params.ts';
import { ok } from '../../base/result.ts';

function sip(s: string): SipUri {
  const r = parseUri(s);
  assert.ok(r.ok, `${s}: ${r.ok ? '' : r.error}`);
  assert.equal(r.value.kind, 'sip');
  return r.value as SipUri;
}

test('SIP URI components (RFC 3261 §19.1.1): table', () => {
  const rows: [string, Partial<SipUri>][] = [
    ['sip:alice@atlanta.com', { scheme: 'sip', user: 'alice', host: 'atlanta.com' }],
    [
      'sip:alice:secretword@atlanta.com;transport=tcp',
      { user: 'alice', password: 'secretword', host: 'atlanta.com' },
    ],
    [
      'sips:alice@atlanta.com?subject=project%20x&priority=urgent',
      { scheme: 'sips', host: 'atlanta.com' },
    ],
    [
      'sip:+1-212-555-1212:1234@gateway.com;user=phone',
      { user: '+1-212-555-1212', password: '1234' },
    ],
    [
      'sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com',
      { user: undefined, host: 'atlanta.com' },
    ],
    ['sip:alice@192.0.2.4:5061', { host: '192.0.2.4', port: 5061 }],
    ['sip:[2001:db8::10]:5070', { host: '[2001:db8::10]', port: 5070 }],
    ['sip:[2001:db8::10:5070]', { host: '[2001:db8::10:5070]', port: undefined }],
    ['SIP:Bob@Example.COM', { scheme: 'sip', user: 'Bob', host: 'Example.COM' }],
    [
      'sip:user;par=u%40example.net@example.com',
      { user: 'user;par=u%40example.net', host: 'example.com' },
    ],
  ];
  for (const [text, expected] of rows) {
    const u = sip(text);
    for (const [k, v] of Object.entries(expected))
      assert.deepEqual(u[k as keyof SipUri], v, `${text} ${k}`);
  }
  assert.equal(paramValue(sip('sip:a@b;transport=TCP;lr').params, 'transport'), 'TCP');
  assert.equal(paramValue(sip('sip:a@b;transport=TCP;lr').params, 'lr'), '');
  assert.equal(sip('sips:alice@atlanta.com?subject=project%20x&priority=urgent').headers.length, 2);
});

test('tel and other schemes', () => {
  const t = parseUri('tel:+1-201-555-0123;ext=1234;phone-context=example.com');
  assert.ok(
    t.ok &&
      t.value.kind === 'tel' &&
      t.value.number === '+1-201-555-0123' &&
      t.value.params.length === 2,
  );
  const o = parseUri('soap.beep://192.0.2.103:3002');
  assert.ok(o.ok && o.value.kind === 'other' && o.value.scheme === 'soap.beep');
  assert.ok(parseUri('urn:uuid:00000000-0000-1000-8000-000A95A0E128').ok);
});

test('malformed URIs: table', () => {
  for (const bad of [
    '',
    'sip',
    ':x',
    '<sip:a@b>',
    'sip:',
    'sip:@host',
    'sip:a@',
    'sip:a@b:99999',
    'sip:2001:db8::10',
    'sip:a@b;',
    'sip:a@b;=x',
    'sip:a b@c',
    'sip:a@[::1',
    'sip:a@[zz::1]',
    'tel:',
    'tel:12+3',
    '1sip:a@b',
  ]) {
    assert.equal(parseUri(bad).ok, false, bad);
  }
});

test('format is the inverse of parse for parsed URIs', () => {
  for (const s of [
    'sip:alice:pw@atlanta.com:5060;transport=tcp;lr?h=v&x=y',
    'sips:[2001:db8::1]:5061',
    'tel:+1-201-555-0123;ext=1',
    'urn:service:sos',
  ]) {
    const r = parseUri(s);
    assert.ok(r.ok);
    assert.equal(formatUri(r.value), s);
  }
});

test('unescape once, never recursively (RFC 4475 §3.1.1.3)', () => {
  assert.equal(unescapeUri('v%61lue%25%34%31'), 'value%41');
  assert.equal(unescapeUri('null-%00-null'), 'null-\u0000-null');
  assert.equal(unescapeUri('%C3%A9t%C3%A9'), 'été');
  assert.equal(unescapeUri('100%'), '100%');
});

test('URI comparison (RFC 3261 §19.1.4 examples)', () => {
  const eq = (a: string, b: string) => {
    const x = parseUri(a);
    const y = parseUri(b);
    assert.ok(x.ok && y.ok);
    return uriEquals(x.value, y.value);
  };
  assert.ok(eq('sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'));
  assert.ok(eq('sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5'));
  assert.ok(eq('sip:carol@chicago.com;security=on', 'sip:carol@chicago.com;newparam=5'));
  assert.ok(
    eq(
      'sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com',
      'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com',
    ),
  );
  assert.ok(
    eq(
      'sip:alice@atlanta.com?subject=project%20x&priority=urgent',
      'sip:alice@atlanta.com?priority=urgent&subject=project%20x',
    ),
  );
  assert.ok(!eq('SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP'));
  assert.ok(!eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060'));
  assert.ok(!eq('sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp'));
  assert.ok(!eq('sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;newparam=6'));
  assert.ok(!eq('sip:alice@atlanta.com?subject=project%20x', 'sip:alice@atlanta.com'));
  assert.ok(eq('tel:+1-201-555-0123', 'tel:+12015550123'));
  assert.ok(!eq('sip:a@b', 'sips:a@b'));
});

test('property: parseUri never throws and what parses formats back to itself', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 60 }), (s) => {
      const r = parseUri(s);
      if (r.ok && r.value.kind !== 'other') {
        const again = parseUri(formatUri(r.value));
        assert.ok(again.ok);
        assert.deepEqual(again.value, r.value);
      }
    }),
    { numRuns: 2000 },
  );
  const part = fc.stringMatching(/^[a-z0-9]{1,8}$/);
  fc.assert(
    fc.property(
      part,
      part,
      fc.option(fc.integer({ min: 1, max: 65535 })),
      fc.array(part, { maxLength: 3 }),
      (user, host, port, params) => {
        const text = `sip:${user}@${host}${port === null ? '' : ':' + port}${params.map((p) => ';' + p).join('')}`;
        const r = parseUri(text);
        assert.ok(r.ok);
        assert.equal(formatUri(r.value), text);
      },
    ),
    { numRuns: 500 },
  );
});

test('property: isSimpleSipUri accepts only URIs that parseUri accepts, without headers', () => {
  const piece = fc.constantFrom(
    'sip:',
    'sips:',
    'SIP:',
    'a',
    'b.c',
    '@',
    ':',
    '5060',
    '65536',
    '99999',
    ';',
    'lr',
    '=',
    '?',
    '&',
    '%41',
    '[',
    ']',
    '::',
    '2001:db8::1',
    ' ',
    ',',
    '<',
    '"',
    '-',
    '_',
    '+',
    '$',
    '/',
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 10 }), (parts) => {
      const s = parts.join('');
      assert.deepEqual(parseUri(s), parseUriGeneral(s), s);
      // The one-match groups (address-list elements) build exactly what the general parser builds.
      const byGroups = parseUriByGroups(s);
      if (byGroups !== undefined) assert.deepEqual(ok(byGroups), parseUriGeneral(s), s);
      if (!isSimpleSipUri(s)) return;
      const r = parseUri(s);
      assert.ok(r.ok, s);
      assert.ok(r.value.kind === 'sip' && r.value.headers.length === 0, s);
    }),
    { numRuns: 5000 },
  );
  for (const s of [
    'sip:bob@biloxi.example.com',
    'sip:alice:pw@h:5060;transport=tcp;lr',
    'sips:[2001:db8::1]:5061',
  ]) {
    assert.ok(isSimpleSipUri(s), s);
  }
});
