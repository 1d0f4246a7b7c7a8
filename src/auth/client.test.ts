/**
 * The Digest client on its own, against hand-written challenges: which
 * challenge it picks (RFC 8760 §2.4), what it writes (RFC 7616 §3.4), and
 * when it gives up.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { seededRandom } from '../base/ids.ts';
import {
  AuthorizationHeader,
  createRequest,
  createResponse,
  ProxyAuthorizationHeader,
  type Credentials,
  type SipRequest,
  type SipResponse,
} from '../sip/index.ts';
import { createDigestClient, type DigestClientOptions } from './client.ts';

const PASSWORD = 'open sesame';

function md5(s: string | Uint8Array): string {
  return createHash('md5').update(s).digest('hex');
}
function sha256(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex');
}

function client(over: Partial<DigestClientOptions> = {}) {
  return createDigestClient({
    username: 'alice',
    password: PASSWORD,
    random: seededRandom(11),
    ...over,
  });
}

function invite(): SipRequest {
  return createRequest({
    method: 'INVITE',
    uri: 'sip:bob@example.com',
    from: '<sip:alice@example.com>;tag=a1',
    to: '<sip:bob@example.com>',
    callId: 'call-1@192.0.2.10',
    cseq: 1,
    via: ['SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1'],
    body: 'v=0\r\n',
    contentType: 'application/sdp',
  });
}

function challenged(request: SipRequest, status: 401 | 407, ...values: string[]): SipResponse {
  const name = status === 401 ? 'WWW-Authenticate' : 'Proxy-Authenticate';
  return createResponse(request, status, {
    toTag: 't1',
    headers: values.map((v) => [name, v] as const),
  });
}

function cred(req: SipRequest | undefined): Credentials {
  assert.ok(req, 'credentials were added');
  const c = req.get(AuthorizationHeader);
  assert.ok(c, 'Authorization present');
  return c;
}

describe('choice of challenge (RFC 8760 §2.4)', () => {
  it('a challenge with an unknown algorithm only → undefined', () => {
    const req = invite();
    const resp = challenged(
      req,
      401,
      'Digest realm="example.com", nonce="n1", algorithm=SHA-512-256, qop="auth"',
    );
    assert.equal(client().authorize(req, resp), undefined);
  });

  it('skips the unknown algorithm and answers the next one', () => {
    const req = invite();
    const resp = challenged(
      req,
      401,
      'Digest realm="example.com", nonce="n1", algorithm=SHA-512-256, qop="auth"',
      'Digest realm="example.com", nonce="n1", algorithm=MD5, qop="auth"',
    );
    assert.equal(cred(client().authorize(req, resp)).algorithm, 'MD5');
  });

  it('prefers SHA-256 even when MD5 is on top (downgrade resistance)', () => {
    const req = invite();
    const resp = challenged(
      req,
      401,
      'Digest realm="example.com", nonce="n1", algorithm=MD5, qop="auth"',
      'Digest realm="example.com", nonce="n1", algorithm=SHA-256, qop="auth"',
    );
    assert.equal(cred(client().authorize(req, resp)).algorithm, 'SHA-256');
  });

  it('equal preference: the topmost wins', () => {
    const req = invite();
    const resp = challenged(
      req,
      401,
      'Digest realm="a.example", nonce="n1", algorithm=MD5, qop="auth"',
      'Digest realm="b.example", nonce="n2", algorithm=MD5, qop="auth"',
    );
    assert.equal(cred(client().authorize(req, resp)).realm, 'a.example');
  });

  it('several challenges in one field (RFC 7235 §4.1) are read too', () => {
    const req = invite();
    const resp = challenged(
      req,
      401,
      'Digest realm="r", nonce="n", algorithm=MD5, qop="auth", Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth"',
    );
    assert.equal(cred(client().authorize(req, resp)).algorithm, 'SHA-256');
  });

  it('a malformed field does not spoil the others', () => {
    const req = invite();
    const resp = challenged(
      req,
      401,
      'Digest realm="unterminated',
      'Digest realm="r", nonce="n", qop="auth"',
    );
    assert.equal(cred(client().authorize(req, resp)).realm, 'r');
  });

  it('respects a client restricted to some algorithms', () => {
    const req = invite();
    const resp = challenged(req, 401, 'Digest realm="r", nonce="n", algorithm=MD5, qop="auth"');
    assert.equal(client({ algorithms: ['SHA-256'] }).authorize(req, resp), undefined);
  });

  it('not Digest, not 401/407, or no realm/nonce → undefined', () => {
    const req = invite();
    const c = client();
    assert.equal(c.authorize(req, challenged(req, 401, 'Basic realm="r"')), undefined);
    assert.equal(c.authorize(req, challenged(req, 401, 'Digest nonce="n"')), undefined);
    assert.equal(c.authorize(req, challenged(req, 401, 'Digest realm="r"')), undefined);
    assert.equal(
      c.authorize(req, challenged(req, 401, 'Digest realm="r", nonce="n", qop="x"')),
      undefined,
    );
    assert.equal(c.authorize(req, createResponse(req, 403, { toTag: 't' })), undefined);
    assert.equal(c.authorize(req, createResponse(req, 401, { toTag: 't' })), undefined);
  });

  it('-sess without qop cannot be answered (no place for the cnonce)', () => {
    const req = invite();
    const resp = challenged(req, 401, 'Digest realm="r", nonce="n", algorithm=MD5-sess');
    assert.equal(client().authorize(req, resp), undefined);
  });
});

describe('what the client writes (RFC 7616 §3.4)', () => {
  it('qop=auth: cnonce from random, nc=00000001, the Request-URI as digest-uri', () => {
    const req = invite();
    const resp = challenged(
      req,
      401,
      'Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth,auth-int", opaque="op/1"',
    );
    const out = client().authorize(req, resp);
    const c = cred(out);
    assert.equal(c.username, 'alice');
    assert.equal(c.realm, 'example.com');
    assert.equal(c.nonce, 'abc');
    assert.equal(c.uri, 'sip:bob@example.com');
    assert.equal(c.qop, 'auth');
    assert.equal(c.nc, 1);
    assert.equal(c.opaque, 'op/1', 'opaque echoed');
    assert.match(c.cnonce!, /^[0-9a-f]{32}$/);
    const a1 = sha256(`alice:example.com:${PASSWORD}`);
    const a2 = sha256('INVITE:sip:bob@example.com');
    assert.equal(c.response, sha256(`${a1}:abc:00000001:${c.cnonce}:auth:${a2}`));
    assert.match(out!.getRaw('Authorization')!, /, qop=auth, nc=00000001/);
    assert.equal(req.has('Authorization'), false, 'the original request is unchanged');
  });

  it('algorithm echoed as written, and left out when the challenge had none', () => {
    const req = invite();
    const lower = cred(
      client().authorize(
        req,
        challenged(req, 401, 'Digest realm="r", nonce="n", algorithm=md5, qop="auth"'),
      ),
    );
    assert.equal(lower.algorithm, 'md5');
    const absent = client().authorize(
      req,
      challenged(req, 401, 'Digest realm="r", nonce="n", qop="auth"'),
    );
    assert.equal(cred(absent).algorithm, undefined);
    assert.doesNotMatch(absent!.getRaw('Authorization')!, /algorithm/);
  });

  it('no qop: the RFC 2069 form, without cnonce and nc', () => {
    const req = invite();
    const c = cred(client().authorize(req, challenged(req, 401, 'Digest realm="r", nonce="n"')));
    assert.equal(c.qop, undefined);
    assert.equal(c.nc, undefined);
    assert.equal(c.cnonce, undefined);
    const a1 = md5(`alice:r:${PASSWORD}`);
    assert.equal(c.response, md5(`${a1}:n:${md5('INVITE:sip:bob@example.com')}`));
  });

  it('qop="auth-int" only: the body is hashed into A2', () => {
    const req = invite();
    const c = cred(
      client().authorize(req, challenged(req, 401, 'Digest realm="r", nonce="n", qop="auth-int"')),
    );
    assert.equal(c.qop, 'auth-int');
    const a1 = md5(`alice:r:${PASSWORD}`);
    const a2 = md5(`INVITE:sip:bob@example.com:${md5('v=0\r\n')}`);
    assert.equal(c.response, md5(`${a1}:n:00000001:${c.cnonce}:auth-int:${a2}`));
  });

  it('MD5-sess: A1 = H(user:realm:pass):nonce:cnonce', () => {
    const req = invite();
    const c = cred(
      client().authorize(
        req,
        challenged(req, 401, 'Digest realm="r", nonce="n", algorithm=MD5-sess, qop="auth"'),
      ),
    );
    const a1 = md5(`${md5(`alice:r:${PASSWORD}`)}:n:${c.cnonce}`);
    assert.equal(
      c.response,
      md5(`${a1}:n:00000001:${c.cnonce}:auth:${md5('INVITE:sip:bob@example.com')}`),
    );
  });

  it('userhash=true: username = H(username:realm) and userhash=true (RFC 7616 §3.4.4)', () => {
    const req = invite();
    const out = client().authorize(
      req,
      challenged(
        req,
        401,
        'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth", userhash=true',
      ),
    );
    const c = cred(out);
    assert.equal(c.username, sha256('alice:r'));
    assert.equal(c.userhash, true);
  });

  it('quotes a username with a quote or backslash', () => {
    const req = invite();
    const c = cred(
      client({ username: 'a"b\\c' }).authorize(
        req,
        challenged(req, 401, 'Digest realm="r", nonce="n", qop="auth"'),
      ),
    );
    assert.equal(c.username, 'a"b\\c');
  });

  it('nc counts per nonce when a server repeats its nonce', () => {
    const c = client();
    const req = invite();
    const resp = challenged(req, 401, 'Digest realm="r", nonce="same", qop="auth"');
    assert.equal(cred(c.authorize(req, resp)).nc, 1);
    assert.equal(cred(c.authorize(invite(), resp)).nc, 2);
    const other = challenged(req, 401, 'Digest realm="r", nonce="other", qop="auth"');
    assert.equal(cred(c.authorize(invite(), other)).nc, 1);
  });
});

describe('credentials already in the request', () => {
  it('407: Proxy-Authorization for this realm replaced, other proxies’ kept (RFC 3261 §22.3)', () => {
    const c = client();
    const first = invite();
    const p1 = c.authorize(
      first,
      challenged(first, 407, 'Digest realm="p1", nonce="a", qop="auth"'),
    )!;
    const p2 = c.authorize(p1, challenged(p1, 407, 'Digest realm="p2", nonce="b", qop="auth"'))!;
    assert.deepEqual(
      p2.getRawAll('Proxy-Authorization').map((v) => /realm="([^"]+)"/.exec(v)![1]),
      ['p1', 'p2'],
    );
    // p1 says stale: only p1's credentials are replaced.
    const p3 = c.authorize(
      p2,
      challenged(p2, 407, 'Digest realm="p1", nonce="a2", qop="auth", stale=true'),
    )!;
    const values = p3.getRawAll('Proxy-Authorization');
    assert.equal(values.length, 2);
    const byRealm = new Map(
      values.map((v) => {
        const r = ProxyAuthorizationHeader.parse(v);
        assert.ok(r.ok);
        return [r.value.realm, r.value.nonce] as const;
      }),
    );
    assert.deepEqual(
      [...byRealm],
      [
        ['p2', 'b'],
        ['p1', 'a2'],
      ],
    );
  });

  it('refused credentials (no stale) → undefined, for every challenge of that realm', () => {
    const c = client();
    const first = invite();
    const second = c.authorize(
      first,
      challenged(first, 401, 'Digest realm="r", nonce="n1", algorithm=SHA-256, qop="auth"'),
    )!;
    const again = challenged(
      second,
      401,
      'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"',
      'Digest realm="r", nonce="n2", algorithm=MD5, qop="auth"',
    );
    assert.equal(c.authorize(second, again), undefined);
  });

  it('a nonce that already failed is not answered again (static-nonce servers)', () => {
    const c = client();
    const resp = (r: SipRequest) =>
      challenged(r, 401, 'Digest realm="r", nonce="static", qop="auth"');
    const first = invite();
    const second = c.authorize(first, resp(first))!;
    assert.equal(c.authorize(second, resp(second)), undefined);
    // A new request (without credentials) gets the same nonce: still no retry.
    const fresh = invite();
    assert.equal(c.authorize(fresh, resp(fresh)), undefined);
  });

  it('stale=true: one retry with the new nonce, then give up', () => {
    const c = client();
    const first = invite();
    const r1 = c.authorize(
      first,
      challenged(first, 401, 'Digest realm="r", nonce="n1", qop="auth"'),
    )!;
    const r2 = c.authorize(
      r1,
      challenged(r1, 401, 'Digest realm="r", nonce="n2", qop="auth", stale=true'),
    )!;
    assert.equal(cred(r2).nonce, 'n2');
    assert.equal(r2.count('Authorization'), 1);
    assert.equal(
      c.authorize(r2, challenged(r2, 401, 'Digest realm="r", nonce="n3", qop="auth", stale=true')),
      undefined,
    );
  });

  it('preauthorize adds cached credentials with the next nc, or leaves the request alone', () => {
    const c = client();
    const plain = invite();
    assert.equal(c.preauthorize(plain), plain);
    c.authorize(plain, challenged(plain, 401, 'Digest realm="r", nonce="n", qop="auth"'));
    const next = c.preauthorize(invite());
    assert.equal(cred(next).nc, 2);
    assert.equal(cred(next).nonce, 'n');
  });
});

describe('the password stays inside', () => {
  it('is not a property of the client and not in its inspection', () => {
    const c = client();
    assert.ok(!inspect(c, { depth: 10, showHidden: true }).includes(PASSWORD));
    assert.ok(!JSON.stringify(c).includes(PASSWORD));
  });

  it('is not in configuration errors', () => {
    for (const over of [
      { username: 'a\r\nb' },
      { algorithms: ['SHA-512-256' as never] },
      { algorithms: [] },
      { random: undefined as never },
    ] satisfies Partial<DigestClientOptions>[]) {
      assert.throws(
        () => client(over),
        (e: Error & { code?: string }) =>
          e.code === 'SB_ERR_INVALID_ARGUMENT' && !e.message.includes(PASSWORD),
      );
    }
  });

  it('is not in the headers it writes, nor is the HA1', () => {
    const req = invite();
    const out = client().authorize(
      req,
      challenged(req, 401, 'Digest realm="r", nonce="n", qop="auth"'),
    )!;
    const text = out.fields.map((f) => f.value).join('\n');
    assert.ok(!text.includes(PASSWORD));
    assert.ok(!text.includes(md5(`alice:r:${PASSWORD}`)));
  });
});
