import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { HeaderCodec } from './codec.ts';
import { headerKey, knownHeaders } from './names.ts';
import { codecFor } from './registry.ts';
import {
  AcceptEncodingHeader,
  AcceptLanguageHeader,
  AllowEventsHeader,
  AllowHeader,
  ContentEncodingHeader,
  ContentLanguageHeader,
  InReplyToHeader,
  PrivacyHeader,
  ProxyRequireHeader,
  RequireHeader,
  SupportedHeader,
  UnsupportedHeader,
  parseQValue,
} from './token-list.ts';

const CODECS = [
  AllowHeader,
  SupportedHeader,
  RequireHeader,
  ProxyRequireHeader,
  UnsupportedHeader,
  AllowEventsHeader,
  ContentEncodingHeader,
  ContentLanguageHeader,
  AcceptLanguageHeader,
  AcceptEncodingHeader,
  InReplyToHeader,
  PrivacyHeader,
] as readonly HeaderCodec<unknown>[];

type Row = readonly [name: string, input: string, expected: unknown];

/** Golden rows: the decoded value, then parse(format(parse(x))) deep-equals parse(x). */
function golden(codec: HeaderCodec<unknown>, rows: readonly Row[]): void {
  for (const [name, input, expected] of rows) {
    it(name, () => {
      const r = codec.parse(input);
      assert.ok(r.ok, `${JSON.stringify(input)}: ${r.ok ? '' : r.error}`);
      assert.deepEqual(r.value, expected);
      const again = codec.parse(codec.format(r.value));
      assert.ok(again.ok);
      assert.deepEqual(again.value, r.value);
    });
  }
}

function malformed(codec: HeaderCodec<unknown>, inputs: readonly string[]): void {
  for (const input of inputs) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.equal(codec.parse(input).ok, false);
    });
  }
}

describe('Allow (RFC 3261 §20.5)', () => {
  golden(AllowHeader, [
    [
      'Asterisk',
      'OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER',
      [
        'OPTIONS',
        'REGISTER',
        'SUBSCRIBE',
        'NOTIFY',
        'PUBLISH',
        'INVITE',
        'ACK',
        'BYE',
        'CANCEL',
        'UPDATE',
        'PRACK',
        'MESSAGE',
        'REFER',
      ],
    ],
    [
      'Cisco (no spaces)',
      'ACK,BYE,CANCEL,INFO,INVITE,NOTIFY,OPTIONS,PRACK,REFER,REGISTER,UPDATE',
      [
        'ACK',
        'BYE',
        'CANCEL',
        'INFO',
        'INVITE',
        'NOTIFY',
        'OPTIONS',
        'PRACK',
        'REFER',
        'REGISTER',
        'UPDATE',
      ],
    ],
    ['methods keep their case (§7.1)', 'INVITE, foo', ['INVITE', 'foo']],
    ['empty value is an empty list', '', []],
  ]);
  malformed(AllowHeader, [',', 'INVITE,', 'INVITE,,ACK', 'INVITE ACK', 'INV"ITE', 'INVITE;x']);
});

describe('Supported (RFC 3261 §20.37)', () => {
  golden(SupportedHeader, [
    ['Asterisk', 'replaces, timer', ['replaces', 'timer']],
    [
      'linphone',
      'replaces, outbound, gruu, path, record-aware',
      ['replaces', 'outbound', 'gruu', 'path', 'record-aware'],
    ],
    ['Polycom', '100rel,timer,replaces,norefersub', ['100rel', 'timer', 'replaces', 'norefersub']],
    ['empty Supported (RFC 3261 §20.37 allows it)', '', []],
  ]);
  malformed(SupportedHeader, ['timer,', ', timer', 'timer path']);
});

describe('Require, Proxy-Require, Unsupported (RFC 3261 §20.32, §20.29, §20.40)', () => {
  for (const codec of [RequireHeader, ProxyRequireHeader, UnsupportedHeader]) {
    describe(codec.name, () => {
      golden(codec, [
        ['100rel', '100rel', ['100rel']],
        ['RFC 4475 §3.3.8 unknown option tags', 'foo, bar', ['foo', 'bar']],
        ['timer and precondition', 'timer,precondition', ['timer', 'precondition']],
      ]);
      malformed(codec, ['', '  ', '100rel,', 'a b']);
    });
  }
});

describe('Allow-Events (RFC 6665 §8.2.2)', () => {
  golden(AllowEventsHeader, [
    [
      'Asterisk',
      'presence, dialog, message-summary, refer',
      ['presence', 'dialog', 'message-summary', 'refer'],
    ],
    [
      'Polycom (templates)',
      'talk,hold,conference,presence.winfo,ua-profile',
      ['talk', 'hold', 'conference', 'presence.winfo', 'ua-profile'],
    ],
  ]);
  malformed(AllowEventsHeader, ['', 'presence,', 'presence dialog']);
});

describe('Content-Encoding (RFC 3261 §20.12)', () => {
  golden(ContentEncodingHeader, [
    ['gzip', 'gzip', ['gzip']],
    ['two codings', 'gzip, deflate', ['gzip', 'deflate']],
  ]);
  malformed(ContentEncodingHeader, ['', 'gzip;', 'gzip,']);
});

describe('Content-Language (RFC 3261 §20.13)', () => {
  golden(ContentLanguageHeader, [
    ['fr', 'fr', ['fr']],
    ['subtags', 'en-US, de-CH, es-419', ['en-US', 'de-CH', 'es-419']],
  ]);
  malformed(ContentLanguageHeader, ['', '*', 'abcdefghi-US', 'en_US', 'en-']);
});

describe('Accept-Language (RFC 3261 §20.3)', () => {
  golden(AcceptLanguageHeader, [
    ['Polycom', 'en', [{ range: 'en', params: [] }]],
    [
      'RFC 3261 §20.3 example',
      'da, en-gb;q=0.8, en;q=0.7',
      [
        { range: 'da', params: [] },
        { range: 'en-gb', params: [{ name: 'q', value: '0.8' }], q: 0.8 },
        { range: 'en', params: [{ name: 'q', value: '0.7' }], q: 0.7 },
      ],
    ],
    [
      'wildcard and spaces around ";"',
      'de ; q=1.0, * ;q=0',
      [
        { range: 'de', params: [{ name: 'q', value: '1.0' }], q: 1 },
        { range: '*', params: [{ name: 'q', value: '0' }], q: 0 },
      ],
    ],
    ['empty value', '', []],
  ]);
  malformed(AcceptLanguageHeader, [
    'en;q=1.5',
    'en;q=0.1234',
    'en;q=',
    'en;q=.5',
    'en,',
    'en_US',
    'en;',
  ]);
});

describe('Accept-Encoding (RFC 3261 §20.2)', () => {
  golden(AcceptEncodingHeader, [
    ['identity', 'identity', [{ coding: 'identity', params: [] }]],
    [
      'with q-values',
      'gzip;q=1.0, identity; q=0.5, *;q=0',
      [
        { coding: 'gzip', params: [{ name: 'q', value: '1.0' }], q: 1 },
        { coding: 'identity', params: [{ name: 'q', value: '0.5' }], q: 0.5 },
        { coding: '*', params: [{ name: 'q', value: '0' }], q: 0 },
      ],
    ],
    [
      'other accept-param',
      'gzip;level=9',
      [{ coding: 'gzip', params: [{ name: 'level', value: '9' }] }],
    ],
    ['empty value', '', []],
  ]);
  malformed(AcceptEncodingHeader, ['gzip;q=2', 'gzip;q=1.001', ',gzip', 'gzip;"x"']);
});

describe('In-Reply-To (RFC 3261 §20.21)', () => {
  golden(InReplyToHeader, [
    [
      'RFC 3261 §20.21 example',
      '70710@saturn.bell-tel.com, 17320@saturn.bell-tel.com',
      ['70710@saturn.bell-tel.com', '17320@saturn.bell-tel.com'],
    ],
    ['word chars', 'a84b4c76e66710@pc33.atlanta.com', ['a84b4c76e66710@pc33.atlanta.com']],
  ]);
  malformed(InReplyToHeader, ['', 'a@b@c', '@host', 'id@', 'a b', 'abc;x=1']);
});

describe('Privacy (RFC 3323 §4.2)', () => {
  golden(PrivacyHeader, [
    ['id (RFC 3325 §9.3)', 'id', ['id']],
    ['several, ";"-separated', 'header;session;user', ['header', 'session', 'user']],
    ['with spaces', 'id ; critical', ['id', 'critical']],
    ['none', 'none', ['none']],
  ]);
  malformed(PrivacyHeader, ['', 'id;', ';id', 'id,header', 'id header']);
  it('formats with ";"', () => {
    assert.equal(PrivacyHeader.format(['user', 'critical']), 'user;critical');
  });
});

describe('qvalue (RFC 3261 §25.1)', () => {
  const cases: [string, number | undefined][] = [
    ['0', 0],
    ['0.5', 0.5],
    ['0.123', 0.123],
    ['1', 1],
    ['1.000', 1],
    ['1.001', undefined],
    ['0.1234', undefined],
    ['2', undefined],
    ['.5', undefined],
    ['', undefined],
  ];
  for (const [s, v] of cases) it(JSON.stringify(s), () => assert.equal(parseQValue(s), v));
});

describe('token-list codecs: registry and properties', () => {
  it('are registered under their names.ts keys', () => {
    const compact = new Map(knownHeaders().map(([n, c]) => [n, c]));
    for (const codec of CODECS) {
      assert.equal(codecFor(codec.key), codec);
      assert.equal(headerKey(codec.name), codec.key);
      assert.equal(codec.compact, compact.get(codec.name));
    }
  });

  it('parse never throws', () => {
    for (const codec of CODECS) {
      fc.assert(
        fc.property(fc.string(), (s) => {
          codec.parse(s);
        }),
        { numRuns: 500 },
      );
    }
  });

  const piece = fc.constantFrom(
    'a',
    'en',
    '-',
    'US',
    '*',
    ',',
    ', ',
    ';',
    ' ',
    'q',
    '=',
    '0.5',
    '1',
    '@',
    'x.y',
    '"',
  );
  it('whatever parses re-serializes to the same value', () => {
    for (const codec of CODECS) {
      fc.assert(
        fc.property(fc.array(piece, { maxLength: 10 }), (parts) => {
          const r = codec.parse(parts.join(''));
          if (!r.ok) return;
          const r2 = codec.parse(codec.format(r.value));
          assert.ok(r2.ok);
          assert.deepEqual(r2.value, r.value);
        }),
        { numRuns: 500 },
      );
    }
  });
});
