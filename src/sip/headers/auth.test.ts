import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AuthenticationInfoHeader,
  AuthorizationHeader,
  ProxyAuthenticateHeader,
  ProxyAuthorizationHeader,
  WwwAuthenticateHeader,
  parseCredentials,
  type Challenge,
  type Credentials,
} from './auth.ts';
import type { HeaderCodec } from './codec.ts';
import { headerKey, knownHeaders } from './names.ts';
import { codecFor } from './registry.ts';

const CODECS = [
  WwwAuthenticateHeader,
  ProxyAuthenticateHeader,
  AuthorizationHeader,
  ProxyAuthorizationHeader,
  AuthenticationInfoHeader,
] as readonly HeaderCodec<unknown>[];

function parseOk<T>(codec: HeaderCodec<T>, input: string): T {
  const r = codec.parse(input);
  assert.ok(r.ok, `${codec.name}: ${JSON.stringify(input)} failed: ${r.ok ? '' : r.error}`);
  return r.value;
}

/** parse(format(parse(x))) deep-equals parse(x). */
function assertRoundTrip<T>(codec: HeaderCodec<T>, input: string): void {
  const v = parseOk(codec, input);
  const again = parseOk(codec, codec.format(v));
  assert.deepEqual(again, v);
}

/**
 * For input that format corrects (misquoted values): the decoded fields survive
 * the round trip and a second round trip changes nothing.
 */
function assertStable<T>(
  codec: HeaderCodec<T>,
  input: string,
  expected: Record<string, unknown>,
): void {
  const f1 = codec.format(parseOk(codec, input));
  const v1 = parseOk(codec, f1);
  const first = Array.isArray(v1) ? (v1[0] as object) : (v1 as object);
  assertFields(first, expected);
  assert.equal(codec.format(v1), f1);
}

/** Checks the listed fields only (the params are checked by the round trip). */
function assertFields(actual: object, expected: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(expected)) {
    assert.deepEqual((actual as Record<string, unknown>)[k], v, `field ${k}`);
  }
}

describe('WWW-Authenticate / Proxy-Authenticate (RFC 3261 §20.44, §20.27)', () => {
  const table: [string, string, Record<string, unknown>, 'lenient'?][] = [
    [
      'RFC 3261 §20.44 example',
      'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5',
      {
        scheme: 'Digest',
        realm: 'atlanta.com',
        domain: ['sip:boxesbybob.com'],
        qop: ['auth'],
        nonce: 'f84f1cec41e6cbe5aea9c8e88d359',
        opaque: '',
        stale: false,
        algorithm: 'MD5',
      },
    ],
    [
      'Asterisk chan_pjsip (no spaces, lower-case md5, qop list)',
      'Digest realm="asterisk",nonce="1580403010/6a2d3cbd7ff1f3d3a7c4aa5d8e1c7a61",opaque="2e8f7c9d1a3b5c6e",algorithm=md5,qop="auth"',
      {
        realm: 'asterisk',
        nonce: '1580403010/6a2d3cbd7ff1f3d3a7c4aa5d8e1c7a61',
        opaque: '2e8f7c9d1a3b5c6e',
        algorithm: 'md5',
        qop: ['auth'],
      },
    ],
    [
      'Kamailio auth_db challenge, stale nonce',
      'Digest realm="sip.example.com", nonce="YcB4qmHAd8W3ZRZOVGg9zHZ7bz+Xcr+F", stale=true, qop="auth,auth-int"',
      { realm: 'sip.example.com', stale: true, qop: ['auth', 'auth-int'] },
    ],
    [
      'FreeSWITCH',
      'Digest realm="192.168.1.10", nonce="e3b8c1a2-5d4f-11ee-8c99-0242ac120002", algorithm=MD5, qop="auth"',
      { realm: '192.168.1.10', nonce: 'e3b8c1a2-5d4f-11ee-8c99-0242ac120002', algorithm: 'MD5' },
    ],
    [
      'RFC 8760 SHA-256 challenge (linphone flexisip)',
      'Digest realm="sip.linphone.org", nonce="2Fm8XgAAAABFdw4eAADZQ6c2gDMAAAAA", opaque="+GNywA==", algorithm=SHA-256, qop="auth"',
      { algorithm: 'SHA-256', opaque: '+GNywA==' },
    ],
    [
      'RFC 7616 §3.9.2 SHA-512-256 with charset and userhash',
      'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true',
      { algorithm: 'SHA-512-256', charset: 'UTF-8', userhash: true },
    ],
    [
      'RFC 3261 §22.4 domain with two URIs',
      'Digest realm="carrier.com", domain="sip:ss1.carrier.com  sip:ss2.carrier.com", nonce="x"',
      { domain: ['sip:ss1.carrier.com', 'sip:ss2.carrier.com'] },
    ],
    [
      'Basic (RFC 3261 §22.1 forbids it, still parses)',
      'Basic realm="WallyWorld"',
      { scheme: 'Basic', realm: 'WallyWorld', stale: false },
    ],
    [
      'quoted algorithm and stale (tolerated)',
      'Digest realm="x", nonce="y", algorithm="MD5", stale="TRUE"',
      { algorithm: 'MD5', stale: true },
      'lenient',
    ],
    ['scheme only', 'Negotiate', { scheme: 'Negotiate', params: [] }],
    [
      'token68',
      'Negotiate YIIFpgYGKwYBBQUCoIIFmjCCBZag==',
      { token68: 'YIIFpgYGKwYBBQUCoIIFmjCCBZag==' },
    ],
    [
      'quoted-pair in realm',
      'Digest realm="a \\"quoted\\" realm", nonce="n"',
      { realm: 'a "quoted" realm' },
    ],
  ];
  for (const [name, input, expected, lenient] of table) {
    it(name, () => {
      for (const codec of [WwwAuthenticateHeader, ProxyAuthenticateHeader]) {
        const v = parseOk(codec, input);
        assert.equal(v.length, 1);
        assertFields(v[0]!, expected);
        if (lenient) assertStable(codec, input, expected);
        else assertRoundTrip(codec, input);
      }
    });
  }

  it('keeps params as written, in order', () => {
    const [c] = parseOk(WwwAuthenticateHeader, 'Digest realm="a",nonce="b", algorithm=MD5');
    assert.deepEqual(c!.params, [
      { name: 'realm', value: '"a"' },
      { name: 'nonce', value: '"b"' },
      { name: 'algorithm', value: 'MD5' },
    ]);
  });

  it('splits several challenges in one field (RFC 7235 §4.1)', () => {
    const v = parseOk(
      WwwAuthenticateHeader,
      'Digest realm="a", nonce="n1", algorithm=SHA-256, Digest realm="a", nonce="n2", algorithm=MD5, Bearer realm="b"',
    );
    assert.deepEqual(
      v.map((c) => [c.scheme, c.algorithm ?? null, c.realm]),
      [
        ['Digest', 'SHA-256', 'a'],
        ['Digest', 'MD5', 'a'],
        ['Bearer', null, 'b'],
      ],
    );
    assertRoundTrip(WwwAuthenticateHeader, 'Negotiate abc==, Digest realm="x"');
  });

  it('formats with the quoting of RFC 3261 §25.1', () => {
    const c: Challenge = {
      scheme: 'Digest',
      params: [
        { name: 'realm', value: 'example.com' },
        { name: 'nonce', value: 'abc' },
        { name: 'qop', value: 'auth,auth-int' },
        { name: 'algorithm', value: '"SHA-256"' },
        { name: 'stale', value: 'true' },
        { name: 'opaque', value: '' },
      ],
      stale: true,
      userhash: false,
    };
    assert.equal(
      WwwAuthenticateHeader.format([c]),
      'Digest realm="example.com", nonce="abc", qop="auth,auth-int", algorithm=SHA-256, stale=true, opaque=""',
    );
  });

  const bad: [string, string][] = [
    ['empty', ''],
    ['unterminated realm', 'Digest realm="atlanta.com, nonce="x'],
    ['missing "="', 'Digest realm'],
    ['missing comma', 'Digest realm="a" nonce="b"'],
    ['leading comma', 'Digest , realm="a"'],
    ['trailing comma', 'Digest realm="a",'],
    ['double comma', 'Digest realm="a",, nonce="b"'],
    ['empty value', 'Digest realm=, nonce="b"'],
    ['quoted scheme', '"Digest" realm="a"'],
    ['no LWS after scheme', 'Digest,realm="a"'],
    ['empty param name', 'Digest ="a"'],
  ];
  for (const [name, input] of bad) {
    it(`rejects ${name}`, () => {
      assert.equal(WwwAuthenticateHeader.parse(input).ok, false);
    });
  }
});

describe('Authorization / Proxy-Authorization (RFC 3261 §20.7, §20.28)', () => {
  const table: [string, string, Record<string, unknown>, 'lenient'?][] = [
    [
      'RFC 3261 §20.7 example',
      'Digest username="Alice", realm="atlanta.com", nonce="84a4cc6f3082121f32b42a2187831a9e", response="7587245234b3434cc3412213e5f113a5432"',
      {
        scheme: 'Digest',
        username: 'Alice',
        realm: 'atlanta.com',
        nonce: '84a4cc6f3082121f32b42a2187831a9e',
        response: '7587245234b3434cc3412213e5f113a5432',
        userhash: false,
      },
    ],
    [
      'RFC 4475 §3.3.7 regaut01: unknown scheme',
      'NoOneKnowsThisScheme opaque-data=here',
      { scheme: 'NoOneKnowsThisScheme', params: [{ name: 'opaque-data', value: 'here' }] },
    ],
    [
      'linphone SHA-256 with qop',
      'Digest realm="sip.linphone.org", nonce="2Fm8XgAAAABFdw4eAADZQ6c2gDMAAAAA", algorithm=SHA-256, opaque="+GNywA==", username="alice", uri="sip:sip.linphone.org", response="1bf2d9b5f8c3a1e0d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4", cnonce="CVZXmJp~s2", nc=00000001, qop=auth',
      {
        algorithm: 'SHA-256',
        username: 'alice',
        uri: 'sip:sip.linphone.org',
        cnonce: 'CVZXmJp~s2',
        nc: 1,
        qop: 'auth',
        opaque: '+GNywA==',
      },
    ],
    [
      'Polycom VVX',
      'Digest username="1001", realm="asterisk", nonce="1580403010/6a2d3cbd", uri="sip:192.168.1.10:5060", response="2f5d3c8a1b4e6f7a9c0d1e2f3a4b5c6d", algorithm=MD5',
      { username: '1001', uri: 'sip:192.168.1.10:5060', algorithm: 'MD5' },
    ],
    [
      'Cisco SPA (no spaces after commas)',
      'Digest username="100",realm="asterisk",nonce="4b3e8a1f",uri="sip:10.0.0.1",algorithm=MD5,response="0f1e2d3c4b5a69788796a5b4c3d2e1f0"',
      { username: '100', realm: 'asterisk', nonce: '4b3e8a1f' },
    ],
    [
      'baresip with qop and nc in hex',
      'Digest username="alice", realm="example.com", nonce="5f3a", uri="sip:example.com;transport=tcp", response="abcdef0123456789abcdef0123456789", cnonce="6b8b4567", qop=auth, nc=0000001a',
      { uri: 'sip:example.com;transport=tcp', nc: 26 },
    ],
    [
      'quoted qop (old clients, tolerated)',
      'Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", qop="auth", nc=00000002, cnonce="c"',
      { qop: 'auth', nc: 2 },
      'lenient',
    ],
    [
      'RFC 7616 §3.4.4 username* (ext-value) and userhash',
      'Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n%20Doe, realm="api@example.org", uri="/doe.json", userhash=false',
      { username: 'Jäsøn Doe', userhash: false },
    ],
    [
      'userhash=true',
      'Digest username="488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec", realm="api@example.org", userhash=true',
      { userhash: true },
    ],
    [
      'RFC 8898 Bearer token68',
      'Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln-_',
      { scheme: 'Bearer', token68: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln-_', params: [] },
    ],
  ];
  for (const [name, input, expected, lenient] of table) {
    it(name, () => {
      for (const codec of [AuthorizationHeader, ProxyAuthorizationHeader]) {
        assertFields(parseOk(codec, input), expected);
        if (lenient) assertStable(codec, input, expected);
        else assertRoundTrip(codec, input);
      }
    });
  }

  it('formats algorithm, nc and qop bare, the rest quoted', () => {
    const c: Credentials = {
      scheme: 'Digest',
      params: [
        { name: 'username', value: 'bob' },
        { name: 'realm', value: '"biloxi.com"' },
        { name: 'uri', value: 'sip:bob@biloxi.com' },
        { name: 'algorithm', value: '"MD5"' },
        { name: 'qop', value: '"auth"' },
        { name: 'nc', value: '00000001' },
        { name: 'cnonce', value: '0a4f113b' },
        { name: 'response', value: '6629fae49393a05397450978507c4ef1' },
      ],
      userhash: false,
    };
    assert.equal(
      AuthorizationHeader.format(c),
      'Digest username="bob", realm="biloxi.com", uri="sip:bob@biloxi.com", algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1"',
    );
  });

  it('corrects misquoted values once, then is stable', () => {
    const input = 'Digest username="u", algorithm="MD5", qop="auth", nc=00000001';
    const first = AuthorizationHeader.format(parseOk(AuthorizationHeader, input));
    assert.equal(first, 'Digest username="u", algorithm=MD5, qop=auth, nc=00000001');
    assert.equal(AuthorizationHeader.format(parseOk(AuthorizationHeader, first)), first);
  });

  const bad: [string, string][] = [
    ['empty', ''],
    ['unterminated quoted-string', 'Digest username="alice, realm="x"'],
    ['two credentials in one field', 'Digest username="a", Basic QWxhZGRpbjpvcGVu'],
    ['nc not hex', 'Digest username="a", nc=0000000g'],
    ['nc longer than 8 hex digits', 'Digest username="a", nc=000000001'],
    ['text after a quoted value', 'Digest username="a"b'],
    ['missing value', 'Digest username='],
  ];
  for (const [name, input] of bad) {
    it(`rejects ${name}`, () => {
      assert.equal(AuthorizationHeader.parse(input).ok, false);
    });
  }
});

describe('Authentication-Info (RFC 3261 §20.6)', () => {
  it('RFC 3261 §20.6 example', () => {
    const v = parseOk(AuthenticationInfoHeader, 'nextnonce="47364c23432d2e131a5fb210812c"');
    assert.deepEqual(v, {
      params: [{ name: 'nextnonce', value: '"47364c23432d2e131a5fb210812c"' }],
      nextnonce: '47364c23432d2e131a5fb210812c',
    });
  });

  it('full ainfo', () => {
    const input =
      'nextnonce="abc", qop=auth, rspauth="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", nc=00000001';
    assertFields(parseOk(AuthenticationInfoHeader, input), {
      nextnonce: 'abc',
      qop: 'auth',
      rspauth: '6629fae49393a05397450978507c4ef1',
      cnonce: '0a4f113b',
      nc: 1,
    });
    assertRoundTrip(AuthenticationInfoHeader, input);
    assert.equal(AuthenticationInfoHeader.format(parseOk(AuthenticationInfoHeader, input)), input);
  });

  for (const input of ['', 'nextnonce', 'nextnonce="x', 'Digest nextnonce="x"', 'nc=xyz']) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.equal(AuthenticationInfoHeader.parse(input).ok, false);
    });
  }
});

describe('auth codecs: registry and properties', () => {
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
    'Digest',
    'Bearer',
    ' ',
    ', ',
    ',',
    'realm',
    'nonce',
    'qop',
    'nc',
    'algorithm',
    'stale',
    'username',
    '=',
    '"x y"',
    '"a\\"b"',
    '"',
    'abc',
    '00000001',
    '==',
    'MD5',
  );
  it('whatever parses re-serializes stably', () => {
    for (const codec of CODECS) {
      fc.assert(
        fc.property(fc.array(piece, { maxLength: 12 }), (parts) => {
          const r = codec.parse(parts.join(''));
          if (!r.ok) return;
          const f1 = codec.format(r.value);
          const r2 = codec.parse(f1);
          assert.ok(r2.ok, `${f1}: ${r2.ok ? '' : r2.error}`);
          assert.equal(codec.format(r2.value), f1);
        }),
        { numRuns: 500 },
      );
    }
  });
});

describe('parseCredentials reads each field from its first parameter, any case', () => {
  it('property: agrees with a reading of the parameter list one name at a time', () => {
    const names = [
      'username',
      'realm',
      'nonce',
      'uri',
      'response',
      'algorithm',
      'cnonce',
      'opaque',
      'qop',
      'nc',
      'userhash',
      'username*',
      'other',
      'resp',
    ];
    const param = fc.record({
      name: fc.constantFrom(...names),
      upper: fc.boolean(),
      value: fc.stringMatching(/^[a-f0-9]{1,8}$/),
      quoted: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(param, { minLength: 1, maxLength: 14 }), (ps) => {
        const text =
          'Digest ' +
          ps
            .map((p) => {
              const n = p.upper ? p.name.toUpperCase() : p.name;
              const v =
                p.name === 'username*' ? `UTF-8''${p.value}` : p.quoted ? `"${p.value}"` : p.value;
              return `${n}=${v}`;
            })
            .join(', ');
        const r = parseCredentials(text);
        const first = (name: string): string | undefined => {
          const p = ps.find((x) => x.name === name);
          return p === undefined ? undefined : p.value;
        };
        const nc = first('nc');
        if (!r.ok) {
          assert.ok(nc !== undefined && !/^[0-9a-fA-F]{1,8}$/.test(nc), r.error);
          return;
        }
        const c = r.value;
        for (const f of [
          'realm',
          'nonce',
          'uri',
          'response',
          'algorithm',
          'cnonce',
          'opaque',
          'qop',
        ] as const) {
          assert.equal(c[f], first(f), f);
        }
        assert.equal(c.username, first('username') ?? first('username*'));
        assert.equal(c.nc, nc === undefined ? undefined : parseInt(nc, 16));
        assert.equal(c.userhash, false);
        assert.equal(c.params.length, ps.length);
      }),
      { numRuns: 500 },
    );
  });
});
