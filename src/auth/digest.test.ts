import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  canonicalAlgorithm,
  digestHash,
  digestResponse,
  formatNc,
  ha1,
  ha1Sess,
  hashOf,
  isDigestHex,
  userhash,
} from './digest.ts';

/** H() written out with node:crypto directly, so the expectations do not reuse digest.ts. */
function md5(s: string): string {
  return createHash('md5').update(s, 'utf8').digest('hex');
}
function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

// RFC 7616 §3.9.1: user "Mufasa", password "Circle of Life", GET /dir/index.html.
const RFC7616 = {
  username: 'Mufasa',
  password: 'Circle of Life',
  realm: 'http-auth@example.org',
  nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
  cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
  nc: 1,
  method: 'GET',
  uri: '/dir/index.html',
} as const;

// RFC 2617 §3.5: password "Circle Of Life" (capital O, unlike RFC 7616).
const RFC2617 = {
  username: 'Mufasa',
  password: 'Circle Of Life',
  realm: 'testrealm@host.com',
  nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093',
  cnonce: '0a4f113b',
  nc: 1,
  method: 'GET',
  uri: '/dir/index.html',
} as const;

describe('RFC test vectors', () => {
  it('RFC 7616 §3.9.1, MD5: response="8ca523f5e9506fed4657c9700eebdbec"', () => {
    const v = RFC7616;
    const r = digestResponse({
      algorithm: 'MD5',
      ha1: ha1('MD5', v.username, v.realm, v.password),
      nonce: v.nonce,
      nc: v.nc,
      cnonce: v.cnonce,
      qop: 'auth',
      method: v.method,
      uri: v.uri,
    });
    assert.equal(r, '8ca523f5e9506fed4657c9700eebdbec');
  });

  it('RFC 7616 §3.9.1, SHA-256: response="753927fa...56cb6c1"', () => {
    const v = RFC7616;
    const r = digestResponse({
      algorithm: 'SHA-256',
      ha1: ha1('SHA-256', v.username, v.realm, v.password),
      nonce: v.nonce,
      nc: v.nc,
      cnonce: v.cnonce,
      qop: 'auth',
      method: v.method,
      uri: v.uri,
    });
    assert.equal(r, '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  });

  it('RFC 2617 §3.5: response="6629fae49393a05397450978507c4ef1"', () => {
    const v = RFC2617;
    const r = digestResponse({
      algorithm: 'MD5',
      ha1: ha1('MD5', v.username, v.realm, v.password),
      nonce: v.nonce,
      nc: v.nc,
      cnonce: v.cnonce,
      qop: 'auth',
      method: v.method,
      uri: v.uri,
    });
    assert.equal(r, '6629fae49393a05397450978507c4ef1');
  });
});

describe('-sess variants (RFC 7616 §3.4.2), computed from the formulas', () => {
  const v = RFC7616;
  for (const [algorithm, H] of [
    ['MD5-sess', md5],
    ['SHA-256-sess', sha256],
  ] as const) {
    it(`${algorithm}: A1 = H(user:realm:pass):nonce:cnonce`, () => {
      const inner = H(`${v.username}:${v.realm}:${v.password}`);
      const sessHa1 = H(`${inner}:${v.nonce}:${v.cnonce}`);
      const ha2 = H(`${v.method}:${v.uri}`);
      const expected = H(`${sessHa1}:${v.nonce}:00000001:${v.cnonce}:auth:${ha2}`);

      assert.equal(ha1(algorithm, v.username, v.realm, v.password), inner);
      assert.equal(ha1Sess(algorithm, inner, v.nonce, v.cnonce), sessHa1);
      const got = digestResponse({
        algorithm,
        ha1: inner,
        nonce: v.nonce,
        nc: 1,
        cnonce: v.cnonce,
        qop: 'auth',
        method: v.method,
        uri: v.uri,
      });
      assert.equal(got, expected);
      // Not the same as the plain algorithm's response.
      const plain = digestResponse({
        algorithm: hashOf(canonicalAlgorithm(algorithm)!),
        ha1: inner,
        nonce: v.nonce,
        nc: 1,
        cnonce: v.cnonce,
        qop: 'auth',
        method: v.method,
        uri: v.uri,
      });
      assert.notEqual(got, plain);
    });
  }
});

describe('other forms', () => {
  const v = RFC2617;
  const inner = md5(`${v.username}:${v.realm}:${v.password}`);

  it('qop=auth-int puts H(entity-body) into A2 (RFC 7616 §3.4.3)', () => {
    const body = 'v=0\r\n';
    const ha2 = md5(`INVITE:sip:bob@example.com:${md5(body)}`);
    const expected = md5(`${inner}:${v.nonce}:0000000a:${v.cnonce}:auth-int:${ha2}`);
    const got = digestResponse({
      algorithm: 'MD5',
      ha1: inner,
      nonce: v.nonce,
      nc: 10,
      cnonce: v.cnonce,
      qop: 'auth-int',
      method: 'INVITE',
      uri: 'sip:bob@example.com',
      bodyHash: digestHash('MD5', new TextEncoder().encode(body)),
    });
    assert.equal(got, expected);
  });

  it('no qop: the RFC 2069 form KD(HA1, nonce:HA2) (RFC 2617 §3.2.2.1, RFC 3261 §22.4)', () => {
    const expected = md5(`${inner}:${v.nonce}:${md5('REGISTER:sip:example.com')}`);
    const got = digestResponse({
      algorithm: 'MD5',
      ha1: inner,
      nonce: v.nonce,
      method: 'REGISTER',
      uri: 'sip:example.com',
    });
    assert.equal(got, expected);
  });

  it('userhash = H(username:realm) (RFC 7616 §3.4.4)', () => {
    assert.equal(userhash('SHA-256', 'Mufasa', 'r'), sha256('Mufasa:r'));
  });

  it('hashes text as UTF-8', () => {
    assert.equal(ha1('MD5', 'jörg', 'r', 'pässword'), md5('jörg:r:pässword'));
  });

  it('nc is eight lowercase hex digits', () => {
    assert.equal(formatNc(1), '00000001');
    assert.equal(formatNc(0xabc), '00000abc');
    assert.equal(formatNc(0xffffffff), 'ffffffff');
    assert.throws(() => formatNc(0), { code: 'SB_ERR_INVALID_ARGUMENT' });
    assert.throws(() => formatNc(2 ** 32), { code: 'SB_ERR_INVALID_ARGUMENT' });
  });
});

describe('algorithm names', () => {
  it('are case-insensitive on input and canonical on output', () => {
    assert.equal(canonicalAlgorithm('md5'), 'MD5');
    assert.equal(canonicalAlgorithm('Md5-SeSs'), 'MD5-sess');
    assert.equal(canonicalAlgorithm('sha-256'), 'SHA-256');
    assert.equal(canonicalAlgorithm('SHA-256-SESS'), 'SHA-256-sess');
  });

  it('absent means MD5 (RFC 7616 §3.3); unimplemented ones are undefined', () => {
    assert.equal(canonicalAlgorithm(undefined), 'MD5');
    assert.equal(canonicalAlgorithm('SHA-512-256'), undefined);
    assert.equal(canonicalAlgorithm('AKAv1-MD5'), undefined);
    assert.equal(canonicalAlgorithm(''), undefined);
  });

  it('any spelling gives the same digest', () => {
    const v = RFC7616;
    const input = {
      ha1: ha1('sha-256', v.username, v.realm, v.password),
      nonce: v.nonce,
      nc: 1,
      cnonce: v.cnonce,
      qop: 'auth' as const,
      method: v.method,
      uri: v.uri,
    };
    assert.equal(
      digestResponse({ ...input, algorithm: 'sha-256' }),
      digestResponse({ ...input, algorithm: 'SHA-256' }),
    );
  });

  it('digest lengths: 32 hex for MD5, 64 for SHA-256, lowercase only', () => {
    assert.equal(isDigestHex('MD5', md5('x')), true);
    assert.equal(isDigestHex('SHA-256-sess', sha256('x')), true);
    assert.equal(isDigestHex('MD5', sha256('x')), false);
    assert.equal(isDigestHex('MD5', md5('x').toUpperCase()), false);
  });
});

describe('programmer mistakes', () => {
  it('throw SB_ERR_INVALID_ARGUMENT without secrets in the message', () => {
    const secret = 'Circle of Life';
    const h = ha1('MD5', 'Mufasa', 'r', secret);
    const cases = [
      () => digestResponse({ algorithm: 'SHA-512-256', ha1: h, nonce: 'n', method: 'M', uri: 'u' }),
      () =>
        digestResponse({
          algorithm: 'MD5',
          ha1: h,
          nonce: 'n',
          qop: 'auth',
          method: 'M',
          uri: 'u',
        }),
      () => digestResponse({ algorithm: 'MD5-sess', ha1: h, nonce: 'n', method: 'M', uri: 'u' }),
      () =>
        digestResponse({
          algorithm: 'MD5',
          ha1: h,
          nonce: 'n',
          nc: 1,
          cnonce: 'c',
          qop: 'auth-int',
          method: 'M',
          uri: 'u',
        }),
      () => ha1('SHA-1', 'Mufasa', 'r', secret),
    ];
    for (const f of cases) {
      assert.throws(f, (e: Error & { code?: string }) => {
        assert.equal(e.code, 'SB_ERR_INVALID_ARGUMENT');
        assert.ok(!e.message.includes(secret));
        assert.ok(!e.message.includes(h));
        return true;
      });
    }
  });
});
