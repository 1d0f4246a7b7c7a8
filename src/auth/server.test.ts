/**
 * The Digest server on its own: credentials as real phones write them,
 * malformed credentials, configuration, secret hygiene, and a property test
 * that verify never throws.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../base/clock.ts';
import { seededRandom } from '../base/ids.ts';
import type { Logger } from '../base/logger.ts';
import {
  createRequest,
  parseMessage,
  WwwAuthenticateHeader,
  type SipRequest,
  parseChallenges,
} from '../sip/index.ts';
import { ha1 } from './digest.ts';
import {
  createDigestServer,
  type AuthFailure,
  type AuthResult,
  type DigestServerOptions,
} from './server.ts';

const REALM = 'example.com';
const PASSWORD = 'wonderland';

function md5(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex');
}
function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

function server(over: Partial<DigestServerOptions> = {}) {
  return createDigestServer({
    realm: REALM,
    secret: new Uint8Array(32).fill(1),
    clock: new ManualClock(),
    random: seededRandom(42),
    lookup: (username, realm, algorithm) =>
      username === 'alice' ? ha1(algorithm, username, realm, PASSWORD) : undefined,
    ...over,
  });
}

function fail(r: AuthResult): AuthFailure {
  assert.equal(r.ok, false, 'expected a failure');
  return r as AuthFailure;
}

/** The nonce of the challenge for `algorithm` among a server's challenge values. */
function nonceOf(values: readonly string[], algorithm: string): string {
  const v = values.find((x) => x.includes(`algorithm=${algorithm},`));
  assert.ok(v, `a challenge for ${algorithm}`);
  return /nonce="([^"]+)"/.exec(v)![1]!;
}

/** A REGISTER as a phone puts it on the wire, parsed by the SIP parser. */
function wireRegister(authorization: string, uri = 'sip:example.com'): SipRequest {
  const text = [
    `REGISTER ${uri} SIP/2.0`,
    'Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK3c2e1a9b;rport',
    'Max-Forwards: 70',
    'From: <sip:alice@example.com>;tag=8a1b2c3d',
    'To: <sip:alice@example.com>',
    'Call-ID: 5f1d9c2e7b@192.0.2.10',
    'CSeq: 2 REGISTER',
    'Contact: <sip:alice@192.0.2.10:5060>;expires=3600',
    `Authorization: ${authorization}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  const r = parseMessage(text);
  assert.ok(r.ok && r.message.isRequest(), 'parses');
  return r.message as SipRequest;
}

/** The MD5 qop=auth response, computed here from RFC 7616 §3.4.1 without digest.ts. */
function md5Response(nonce: string, cnonce: string, nc: string, method: string, uri: string) {
  const a1 = md5(`alice:${REALM}:${PASSWORD}`);
  return md5(`${a1}:${nonce}:${nc}:${cnonce}:auth:${md5(`${method}:${uri}`)}`);
}

describe('credentials as baresip and linphone send them (MD5, qop=auth)', () => {
  it('baresip (libre sip/auth.c), without algorithm: absent means MD5', async () => {
    const s = server();
    const nonce = nonceOf(s.challengeHeaders(), 'MD5');
    const cnonce = '3e1f0a9c5d7b2468';
    const response = md5Response(nonce, cnonce, '00000001', 'REGISTER', 'sip:example.com');
    const req = wireRegister(
      `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${response}", cnonce="${cnonce}", qop=auth, nc=00000001`,
    );
    assert.deepEqual(await s.verify(req, { proxy: false }), {
      ok: true,
      username: 'alice',
      realm: REALM,
      algorithm: 'MD5',
    });
  });

  it('baresip (newer libre), with algorithm=MD5 last', async () => {
    const s = server();
    const nonce = nonceOf(s.challengeHeaders(), 'MD5');
    const cnonce = '00c0ffee12345678';
    const response = md5Response(nonce, cnonce, '00000001', 'REGISTER', 'sip:example.com');
    const req = wireRegister(
      `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${response}", cnonce="${cnonce}", qop=auth, nc=00000001, algorithm=MD5`,
    );
    assert.equal((await s.verify(req, { proxy: false })).ok, true);
  });

  it('linphone (belle-sip marshal order, two spaces before uri)', async () => {
    const s = server();
    const nonce = nonceOf(s.challengeHeaders(), 'MD5');
    const cnonce = 'nbWzt0CqjvVKyO4B';
    const response = md5Response(nonce, cnonce, '00000001', 'REGISTER', 'sip:example.com');
    const req = wireRegister(
      `Digest realm="example.com", nonce="${nonce}", algorithm=MD5, username="alice",  ` +
        `uri="sip:example.com", response="${response}", cnonce="${cnonce}", nc=00000001, qop=auth`,
    );
    assert.equal((await s.verify(req, { proxy: false })).ok, true);
  });

  it('an uppercase response digest is accepted (hex compared case-insensitively)', async () => {
    const s = server();
    const nonce = nonceOf(s.challengeHeaders(), 'MD5');
    const response = md5Response(nonce, 'abc', '00000001', 'REGISTER', 'sip:example.com');
    const req = wireRegister(
      `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${response.toUpperCase()}", cnonce="abc", qop=auth, nc=00000001`,
    );
    assert.equal((await s.verify(req, { proxy: false })).ok, true);
  });

  it('SHA-256 written by hand (RFC 8760) verifies', async () => {
    const s = server();
    const nonce = nonceOf(s.challengeHeaders(), 'SHA-256');
    const a1 = sha256(`alice:${REALM}:${PASSWORD}`);
    const response = sha256(
      `${a1}:${nonce}:00000001:xyz:auth:${sha256('REGISTER:sip:example.com')}`,
    );
    const req = wireRegister(
      `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${response}", algorithm=SHA-256, cnonce="xyz", qop=auth, nc=00000001`,
    );
    assert.deepEqual(await s.verify(req, { proxy: false }), {
      ok: true,
      username: 'alice',
      realm: REALM,
      algorithm: 'SHA-256',
    });
  });
});

describe('malformed or unacceptable credentials', () => {
  const s = server();
  const nonce = nonceOf(s.challengeHeaders(), 'MD5');
  const good = md5Response(nonce, 'c', '00000001', 'REGISTER', 'sip:example.com');
  const base = `username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com"`;

  const rows: [string, string, AuthFailure['reason'], AuthFailure['detail']][] = [
    ['Basic scheme only', 'Basic YWxpY2U6d29uZGVybGFuZA==', 'missing', 'no-credentials'],
    ['unparseable', 'Digest username=', 'invalid', 'malformed'],
    ['no response', `Digest ${base}, cnonce="c", qop=auth, nc=00000001`, 'invalid', 'malformed'],
    [
      'no username',
      `Digest realm="example.com", nonce="${nonce}", uri="sip:example.com", response="${good}", cnonce="c", qop=auth, nc=00000001`,
      'invalid',
      'malformed',
    ],
    ['no qop (RFC 2069 form)', `Digest ${base}, response="${good}"`, 'invalid', 'qop'],
    [
      'qop=auth-int (not offered)',
      `Digest ${base}, response="${good}", cnonce="c", qop=auth-int, nc=00000001`,
      'invalid',
      'qop',
    ],
    ['no nc', `Digest ${base}, response="${good}", cnonce="c", qop=auth`, 'invalid', 'malformed'],
    [
      'nc=00000000',
      `Digest ${base}, response="${good}", cnonce="c", qop=auth, nc=00000000`,
      'invalid',
      'malformed',
    ],
    [
      'no cnonce',
      `Digest ${base}, response="${good}", qop=auth, nc=00000001`,
      'invalid',
      'malformed',
    ],
    [
      'response of the wrong length',
      `Digest ${base}, response="${good}00", cnonce="c", qop=auth, nc=00000001`,
      'invalid',
      'malformed',
    ],
    [
      'response not hex',
      `Digest ${base}, response="${'z'.repeat(32)}", cnonce="c", qop=auth, nc=00000001`,
      'invalid',
      'malformed',
    ],
    [
      'unknown algorithm',
      `Digest ${base}, response="${good}", algorithm=SHA-512-256, cnonce="c", qop=auth, nc=00000001`,
      'invalid',
      'algorithm',
    ],
    [
      'userhash=true (not offered)',
      `Digest ${base}, response="${good}", cnonce="c", qop=auth, nc=00000001, userhash=true`,
      'invalid',
      'userhash',
    ],
    [
      'nonce not issued here',
      `Digest username="alice", realm="example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="sip:example.com", response="${good}", cnonce="c", qop=auth, nc=00000001`,
      'invalid',
      'nonce',
    ],
    [
      'wrong cnonce (digest does not match)',
      `Digest ${base}, response="${good}", cnonce="d", qop=auth, nc=00000001`,
      'invalid',
      'response',
    ],
  ];
  for (const [name, value, reason, detail] of rows) {
    it(`${name} → ${reason} (${detail})`, async () => {
      const r = fail(await s.verify(wireRegister(value), { proxy: false }));
      assert.equal(r.reason, reason);
      assert.equal(r.detail, detail);
      assert.equal(r.status, 401);
      assert.equal(r.header, 'WWW-Authenticate');
      assert.equal(r.challenge.length, 2);
      assert.ok(r.challenge.every((v) => !v.includes('stale')));
    });
  }

  it('no Authorization at all → missing (no-credentials)', async () => {
    const req = createRequest({
      method: 'OPTIONS',
      uri: 'sip:example.com',
      from: '<sip:a@example.com>;tag=1',
      to: '<sip:example.com>',
      callId: 'o@x',
      cseq: 1,
    });
    const r = fail(await s.verify(req, { proxy: false }));
    assert.equal(r.reason, 'missing');
    assert.equal(r.detail, 'no-credentials');
  });

  it('picks the credentials for its realm among several fields (RFC 3261 §22.3)', async () => {
    const other = `Digest username="alice", realm="other.example", nonce="x", uri="sip:example.com", response="${good}", cnonce="c", qop=auth, nc=00000001`;
    const ours = `Digest ${base}, response="${good}", cnonce="c", qop=auth, nc=00000001`;
    const req = wireRegister(other).append('Authorization', ours);
    assert.equal((await s.verify(req, { proxy: false })).ok, true);
  });
});

describe('challenges', () => {
  it('challenge() builds a 401 with a To tag and one WWW-Authenticate per algorithm', () => {
    const s = server();
    const req = wireRegister('Basic x');
    const resp = s.challenge(req, { proxy: false, toTag: 'srv1' });
    assert.equal(resp.status, 401);
    assert.equal(resp.to.tag, 'srv1');
    assert.equal(resp.callId, req.callId);
    const values = resp.getRawAll('WWW-Authenticate');
    assert.equal(values.length, 2);
    const parsed = resp.get(WwwAuthenticateHeader)!;
    assert.deepEqual(
      parsed.map((c) => [c.scheme, c.realm, c.algorithm, c.qop, c.stale]),
      [
        ['Digest', REALM, 'SHA-256', ['auth'], false],
        ['Digest', REALM, 'MD5', ['auth'], false],
      ],
    );
    assert.equal(parsed[0]!.nonce, parsed[1]!.nonce, 'one fresh nonce for the set');
  });

  it('challenge({proxy, stale}) builds a 407 with stale=true', () => {
    const s = server();
    const resp = s.challenge(wireRegister('Basic x'), { proxy: true, stale: true });
    assert.equal(resp.status, 407);
    assert.equal(resp.getRawAll('Proxy-Authenticate').length, 2);
    assert.ok(resp.getRawAll('Proxy-Authenticate').every((v) => v.endsWith(', stale=true')));
    assert.ok(resp.to.tag !== undefined && resp.to.tag.length > 0);
  });

  it('each challenge has a fresh nonce', () => {
    const s = server();
    const a = nonceOf(s.challengeHeaders(), 'MD5');
    const b = nonceOf(s.challengeHeaders(), 'MD5');
    assert.notEqual(a, b);
  });

  it('a request without credentials is challenged alike when retransmitted within the second', async () => {
    const clock = new ManualClock(0, 1_700_000_000_250);
    const s = server({ clock });
    const first = wireRegister('Basic x').remove('Authorization');
    const again = wireRegister('Basic x').remove('Authorization');
    const a = s.challenge(first, { proxy: false, toTag: 't' });
    clock.advance(700);
    const b = s.challenge(again, { proxy: false, toTag: 't' });
    assert.deepEqual(b.getRawAll('WWW-Authenticate'), a.getRawAll('WWW-Authenticate'));
    // The next second, another request, or one with credentials: another nonce.
    clock.advance(100);
    const c = s.challenge(first, { proxy: false, toTag: 't' });
    const other = s.challenge(first.set('CSeq', '3 REGISTER'), { proxy: false, toTag: 't' });
    const nonces = [a, c, other].map((r) => r.get(WwwAuthenticateHeader)![0]!.nonce);
    assert.equal(new Set(nonces).size, 3);
    const withCredentials = wireRegister('Basic x');
    assert.notEqual(
      nonceOf(s.challengeHeaders(false, withCredentials), 'MD5'),
      nonceOf(s.challengeHeaders(false, withCredentials), 'MD5'),
    );
    // Each is a valid nonce all the same.
    for (const nonce of nonces) {
      const response = md5Response(nonce!, 'c0ffee', '00000001', 'REGISTER', 'sip:example.com');
      const req = wireRegister(
        `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
          `response="${response}", cnonce="c0ffee", qop=auth, nc=00000001, algorithm=MD5`,
      );
      assert.equal((await s.verify(req, { proxy: false })).ok, true);
    }
  });

  it('challenges read exactly as the general formatter writes them, fresh and stale', () => {
    const s = server({ algorithms: ['SHA-256', 'MD5'] });
    for (const stale of [false, true]) {
      const values = s.challengeHeaders(stale);
      const nonce = nonceOf(values, 'MD5');
      assert.match(nonce, /^[A-Za-z0-9_-]{48}$/);
      assert.deepEqual(
        values,
        ['SHA-256', 'MD5'].map(
          (a) =>
            `Digest realm="example.com", nonce="${nonce}", algorithm=${a}, qop="auth"` +
            (stale ? ', stale=true' : ''),
        ),
      );
      const parsed = values.map((v) => parseChallenges(v));
      for (const p of parsed)
        assert.ok(p.ok && p.value[0]!.nonce === nonce && p.value[0]!.stale === stale);
    }
  });

  it('the configured order is the offer order (RFC 8760 §2.3)', () => {
    const s = server({ algorithms: ['MD5', 'SHA-256-sess'] });
    assert.deepEqual(s.algorithms, ['MD5', 'SHA-256-sess']);
    const v = s.challengeHeaders();
    assert.match(v[0]!, /algorithm=MD5,/);
    assert.match(v[1]!, /algorithm=SHA-256-sess,/);
  });
});

describe('configuration', () => {
  it('rejects bad options with SB_ERR_INVALID_ARGUMENT', () => {
    for (const over of [
      { realm: '' },
      { realm: 'a\r\nb' },
      { algorithms: [] },
      { algorithms: ['SHA-512-256' as never] },
      { secret: new Uint8Array(4) },
      { nonceTtlMs: -1 },
      { lookup: undefined as never },
    ] satisfies Partial<DigestServerOptions>[]) {
      assert.throws(() => server(over), { code: 'SB_ERR_INVALID_ARGUMENT' }, JSON.stringify(over));
    }
  });

  it('accepts algorithm names in any case and stores them canonically', () => {
    assert.deepEqual(server({ algorithms: ['sha-256' as never, 'md5' as never] }).algorithms, [
      'SHA-256',
      'MD5',
    ]);
  });
});

describe('secrets stay inside', () => {
  it('results carry no HA1; a malformed stored HA1 is logged without its value', async () => {
    const stored = ha1('MD5', 'alice', REALM, PASSWORD);
    const logged: unknown[] = [];
    const logger: Logger = {
      debug: (o) => logged.push(o),
      info: (o) => logged.push(o),
      warn: (o, m) => logged.push(o, m),
      error: (o) => logged.push(o),
      child: () => logger,
    };
    const broken = `${stored}zz`;
    const s = server({ logger, lookup: () => broken });
    const nonce = nonceOf(s.challengeHeaders(), 'MD5');
    const response = md5Response(nonce, 'c', '00000001', 'REGISTER', 'sip:example.com');
    const req = wireRegister(
      `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${response}", algorithm=MD5, cnonce="c", qop=auth, nc=00000001`,
    );
    const r = fail(await s.verify(req, { proxy: false }));
    assert.equal(r.detail, 'response');
    assert.equal(logged.length, 2, 'one warning');
    const text = JSON.stringify({ r, logged });
    assert.ok(!text.includes(stored));
    assert.ok(!text.includes(PASSWORD));
    assert.ok(!text.includes(response));
  });

  it('a stored HA1 in uppercase hex is accepted', async () => {
    const s = server({ lookup: (u, r, a) => ha1(a, u, r, PASSWORD).toUpperCase() });
    const nonce = nonceOf(s.challengeHeaders(), 'MD5');
    const response = md5Response(nonce, 'c', '00000001', 'REGISTER', 'sip:example.com');
    const req = wireRegister(
      `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${response}", cnonce="c", qop=auth, nc=00000001`,
    );
    assert.equal((await s.verify(req, { proxy: false })).ok, true);
  });

  it('a failing lookup rejects verify (a store failure is not an auth failure)', async () => {
    const s = server({
      lookup: () => Promise.reject(new Error('store down')),
    });
    const nonce = nonceOf(s.challengeHeaders(), 'MD5');
    const req = wireRegister(
      `Digest username="alice", realm="example.com", nonce="${nonce}", uri="sip:example.com", ` +
        `response="${'0'.repeat(32)}", cnonce="c", qop=auth, nc=00000001`,
    );
    await assert.rejects(s.verify(req, { proxy: false }), /store down/);
  });
});

describe('property: verify never throws on arbitrary Authorization values', () => {
  const s = server();
  const nonce = nonceOf(s.challengeHeaders(), 'MD5');
  const names = [
    'username',
    'username*',
    'realm',
    'nonce',
    'uri',
    'response',
    'algorithm',
    'cnonce',
    'qop',
    'nc',
    'opaque',
    'userhash',
    'stale',
    'x-ext',
  ];
  const value = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.stringMatching(/^[0-9a-fA-F]{0,70}$/),
    fc.constantFrom(nonce, REALM, 'alice', 'sip:example.com', 'MD5', 'SHA-256', 'auth', 'true'),
    fc.constantFrom('00000001', 'ffffffff', '0', '123456789', "UTF-8''%C3%A4", '%ZZ'),
  );
  const param = fc
    .tuple(fc.constantFrom(...names), value, fc.boolean())
    .map(([n, v, q]) => `${n}=${q ? `"${v.replace(/["\\]/g, '\\$&')}"` : v}`);
  const structured = fc
    .tuple(
      fc.constantFrom('Digest', 'digest', 'DIGEST', 'Basic', 'Bearer', ''),
      fc.array(param, { maxLength: 14 }),
      fc.constantFrom(', ', ',', ' , ', ',  '),
    )
    .map(([scheme, ps, sep]) => `${scheme} ${ps.join(sep)}`);
  const header = fc
    .oneof(structured, fc.string(), fc.string({ unit: 'binary', maxLength: 200 }))
    .map((v) => v.replace(/[\r\n]/g, ' '));

  it('resolves to an AuthResult for any value (and any number of fields)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(header, { minLength: 1, maxLength: 3 }), async (values) => {
        let req = wireRegister('Basic x').remove('Authorization');
        for (const v of values) req = req.append('Authorization', v);
        const r = await s.verify(req, { proxy: false });
        assert.equal(typeof r.ok, 'boolean');
        if (!r.ok) {
          assert.ok(['missing', 'stale', 'invalid'].includes(r.reason));
          assert.equal(r.challenge.length, 2);
        }
      }),
      { numRuns: 500 },
    );
  });
});
