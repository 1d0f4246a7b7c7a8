/**
 * Client ↔ server round trips (RFC 3261 §22.2/§22.3 with RFC 7616 and RFC
 * 8760): every algorithm, stale nonces, nonce counts, replays, enumeration
 * safety and the checks on realm, uri and response.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { seededRandom } from '../base/ids.ts';
import {
  AuthorizationHeader,
  createRequest,
  parseUri,
  WwwAuthenticateHeader,
  type SipRequest,
  type SipResponse,
  type Uri,
} from '../sip/index.ts';
import { createDigestClient, type DigestClient } from './client.ts';
import { ha1, hashOf, type DigestAlgorithm, type DigestHash } from './digest.ts';
import {
  createDigestServer,
  type AuthFailure,
  type AuthResult,
  type DigestServer,
  type DigestServerOptions,
} from './server.ts';

const REALM = 'example.com';
const USERS: Record<string, string> = { alice: 'wonderland', bob: 'builder' };

function setup(over: Partial<DigestServerOptions> = {}) {
  const clock = (over.clock as ManualClock | undefined) ?? new ManualClock();
  const lookups: [string, string, DigestHash][] = [];
  const server = createDigestServer({
    realm: REALM,
    secret: new Uint8Array(32).fill(1),
    clock,
    random: seededRandom(42),
    lookup: async (username, realm, algorithm) => {
      lookups.push([username, realm, algorithm]);
      const pw = USERS[username];
      return pw === undefined ? undefined : ha1(algorithm, username, realm, pw);
    },
    ...over,
  });
  return { server, clock, lookups };
}

function client(username = 'alice', password = USERS[username] ?? 'x', seed = 7): DigestClient {
  return createDigestClient({ username, password, random: seededRandom(seed) });
}

function register(cseq = 1, requestUri = 'sip:example.com'): SipRequest {
  return createRequest({
    method: 'REGISTER',
    uri: requestUri,
    from: '<sip:alice@example.com>;tag=a1',
    to: '<sip:alice@example.com>',
    callId: 'reg-1@192.0.2.10',
    cseq,
    via: [`SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-${cseq}`],
    contact: '<sip:alice@192.0.2.10:5060>',
  });
}

function uri(text: string): Uri {
  const r = parseUri(text);
  assert.ok(r.ok);
  return r.value;
}

function fail(r: AuthResult): AuthFailure {
  assert.equal(r.ok, false, 'expected a failure');
  return r as AuthFailure;
}

/** The 401 the server would send for a failed verification. */
function reject(server: DigestServer, request: SipRequest, r: AuthResult): SipResponse {
  return server.challenge(request, { proxy: false, values: fail(r).challenge });
}

/** Runs REGISTER → 401 → REGISTER with credentials, returning the authorized request. */
async function login(server: DigestServer, c: DigestClient): Promise<SipRequest> {
  const first = register(1);
  const r1 = await server.verify(first, { proxy: false });
  assert.equal(fail(r1).reason, 'missing');
  const second = c.authorize(first, reject(server, first, r1));
  assert.ok(second, 'the client answers the challenge');
  return second;
}

function credentialsOf(request: SipRequest) {
  const c = request.get(AuthorizationHeader);
  assert.ok(c, 'Authorization present');
  return c;
}

function masked(f: AuthFailure) {
  return { ...f, challenge: f.challenge.map((v) => v.replace(/nonce="[^"]*"/, 'nonce="…"')) };
}

describe('round trip per algorithm', () => {
  const all: DigestAlgorithm[] = ['SHA-256', 'MD5', 'SHA-256-sess', 'MD5-sess'];
  for (const algorithm of all) {
    it(`${algorithm}: 401, then credentials the server accepts`, async () => {
      const { server, lookups } = setup({ algorithms: [algorithm] });
      const req = await login(server, client());
      const cred = credentialsOf(req);
      assert.equal(cred.algorithm, algorithm);
      assert.equal(cred.qop, 'auth');
      assert.equal(cred.nc, 1);
      assert.equal(cred.uri, 'sip:example.com');
      const r = await server.verify(req, { proxy: false });
      assert.deepEqual(r, { ok: true, username: 'alice', realm: REALM, algorithm });
      assert.deepEqual(lookups, [['alice', REALM, hashOf(algorithm)]]);
    });
  }

  it('the default server offers SHA-256 first, then MD5; the client takes SHA-256', async () => {
    const { server } = setup();
    const values = server.challengeHeaders();
    assert.equal(values.length, 2);
    assert.match(
      values[0]!,
      /^Digest realm="example\.com", nonce="[^"]+", algorithm=SHA-256, qop="auth"$/,
    );
    assert.match(values[1]!, /algorithm=MD5, qop="auth"$/);
    const req = await login(server, client());
    assert.equal(credentialsOf(req).algorithm, 'SHA-256');
    assert.equal((await server.verify(req, { proxy: false })).ok, true);
  });

  it('MD5-only server with a client preferring SHA-256: MD5 is used', async () => {
    const { server } = setup({ algorithms: ['MD5'] });
    const req = await login(server, client());
    assert.equal(credentialsOf(req).algorithm, 'MD5');
    assert.deepEqual(await server.verify(req, { proxy: false }), {
      ok: true,
      username: 'alice',
      realm: REALM,
      algorithm: 'MD5',
    });
  });

  it('a client that only does MD5 against the default server', async () => {
    const { server } = setup();
    const c = createDigestClient({
      username: 'alice',
      password: 'wonderland',
      random: seededRandom(3),
      algorithms: ['MD5'],
    });
    const req = await login(server, c);
    assert.equal(credentialsOf(req).algorithm, 'MD5');
    assert.equal((await server.verify(req, { proxy: false })).ok, true);
  });

  it('proxy: 407, Proxy-Authorization, verify({proxy: true})', async () => {
    const { server } = setup();
    const c = client();
    const first = register(1);
    const r1 = fail(await server.verify(first, { proxy: true }));
    assert.equal(r1.status, 407);
    assert.equal(r1.header, 'Proxy-Authenticate');
    const resp = server.challenge(first, { proxy: true, values: r1.challenge });
    assert.equal(resp.status, 407);
    assert.equal(resp.getRawAll('Proxy-Authenticate').length, 2);
    const second = c.authorize(first, resp)!;
    assert.equal(second.has('Proxy-Authorization'), true);
    assert.equal(second.has('Authorization'), false);
    assert.equal((await server.verify(second, { proxy: true })).ok, true);
    // The same credentials do not satisfy a UAS check (they are in the other header).
    assert.equal(fail(await server.verify(second, { proxy: false })).reason, 'missing');
  });
});

describe('nonce counts and replays', () => {
  it('nc increments when the nonce is reused (preauthorize)', async () => {
    const { server } = setup();
    const c = client();
    const req1 = await login(server, c);
    assert.equal((await server.verify(req1, { proxy: false })).ok, true);
    const req2 = c.preauthorize(register(3));
    assert.equal(credentialsOf(req2).nc, 2);
    assert.equal(credentialsOf(req2).nonce, credentialsOf(req1).nonce);
    assert.match(req2.getRaw('Authorization')!, /nc=00000002/);
    assert.equal((await server.verify(req2, { proxy: false })).ok, true);
    const req3 = c.preauthorize(register(4));
    assert.equal(credentialsOf(req3).nc, 3);
    assert.equal((await server.verify(req3, { proxy: false })).ok, true);
  });

  it('a replayed request (same nc) is rejected', async () => {
    const { server } = setup();
    const req = await login(server, client());
    assert.equal((await server.verify(req, { proxy: false })).ok, true);
    const again = fail(await server.verify(req, { proxy: false }));
    assert.equal(again.detail, 'replay');
    // The digest was right, so the answer is stale=true: a client whose requests
    // crossed recovers with a fresh nonce, and a replayer learns nothing.
    assert.equal(again.reason, 'stale');
    assert.match(again.challenge[0]!, /stale=true/);
  });

  it('a lower nc than one already seen is rejected', async () => {
    const { server } = setup();
    const c = client();
    const req1 = await login(server, c); // nc=1, not yet verified
    const req2 = c.preauthorize(register(3)); // nc=2
    assert.equal((await server.verify(req2, { proxy: false })).ok, true);
    assert.equal(fail(await server.verify(req1, { proxy: false })).detail, 'replay');
  });

  it('a client whose request was refused as a replay recovers through stale=true', async () => {
    const { server } = setup();
    const c = client();
    const req = await login(server, c);
    await server.verify(req, { proxy: false });
    const r = await server.verify(req, { proxy: false });
    const retry = c.authorize(req, reject(server, req, r));
    assert.ok(retry);
    assert.notEqual(credentialsOf(retry).nonce, credentialsOf(req).nonce);
    assert.equal((await server.verify(retry, { proxy: false })).ok, true);
  });
});

describe('stale nonces (ManualClock)', () => {
  it('an expired nonce with the right digest → stale=true; the client retries with the new nonce', async () => {
    const { server, clock } = setup({ nonceTtlMs: 60_000 });
    const c = client();
    const req1 = await login(server, c);
    assert.equal((await server.verify(req1, { proxy: false })).ok, true);

    clock.advance(60_001);
    const req2 = c.preauthorize(register(3));
    const r2 = fail(await server.verify(req2, { proxy: false }));
    assert.equal(r2.reason, 'stale');
    assert.equal(r2.detail, 'expired');
    assert.ok(r2.challenge.every((v) => /, stale=true$/.test(v)));
    const resp = reject(server, req2, r2);
    assert.equal(resp.get(WwwAuthenticateHeader)![0]!.stale, true);

    const req3 = c.authorize(req2, resp);
    assert.ok(req3, 'stale=true: retry without asking for the password again');
    assert.equal(req3.count('Authorization'), 1, 'the stale credentials are replaced');
    assert.notEqual(credentialsOf(req3).nonce, credentialsOf(req2).nonce);
    assert.equal(credentialsOf(req3).nc, 1);
    assert.equal((await server.verify(req3, { proxy: false })).ok, true);
  });

  it('an expired nonce with a wrong password is invalid, not stale', async () => {
    const { server, clock } = setup({ nonceTtlMs: 60_000 });
    const first = register(1);
    const r1 = await server.verify(first, { proxy: false });
    clock.advance(60_001);
    const req = client('alice', 'wrong').authorize(first, reject(server, first, r1))!;
    const r = fail(await server.verify(req, { proxy: false }));
    assert.equal(r.reason, 'invalid');
    assert.equal(r.detail, 'response');
    assert.ok(r.challenge.every((v) => !v.includes('stale')));
  });

  it('the client does not loop when every answer is called stale', async () => {
    const { server, clock } = setup({ nonceTtlMs: 1_000 });
    const c = client();
    const first = register(1);
    const r1 = await server.verify(first, { proxy: false });
    clock.advance(5_000);
    const req2 = c.authorize(first, reject(server, first, r1))!;
    const r2 = fail(await server.verify(req2, { proxy: false }));
    assert.equal(r2.reason, 'stale');
    clock.advance(5_000);
    const req3 = c.authorize(req2, reject(server, req2, r2));
    assert.ok(req3, 'one retry after stale=true');
    const r3 = fail(await server.verify(req3, { proxy: false }));
    assert.equal(r3.reason, 'stale');
    assert.equal(c.authorize(req3, reject(server, req3, r3)), undefined, 'then it gives up');
  });
});

describe('rejections', () => {
  it('wrong password and unknown user are indistinguishable (same outcome, same work)', async () => {
    const { server, lookups } = setup();
    const first = register(1);
    const wrong = client('alice', 'not-wonderland', 5).authorize(
      first,
      reject(server, first, await server.verify(first, { proxy: false })),
    )!;
    const unknown = client('mallory', 'wonderland', 5).authorize(
      first,
      reject(server, first, await server.verify(first, { proxy: false })),
    )!;
    const a = fail(await server.verify(wrong, { proxy: false }));
    const b = fail(await server.verify(unknown, { proxy: false }));
    assert.equal(a.reason, 'invalid');
    assert.equal(a.detail, 'response');
    assert.deepEqual(masked(a), masked(b));
    // Both looked the user up and computed a digest.
    assert.deepEqual(
      lookups.map((l) => l[0]),
      ['alice', 'mallory'],
    );
  });

  it('the client gives up when its credentials are refused (no stale): no endless loop', async () => {
    const { server } = setup();
    const c = client('alice', 'not-wonderland');
    const first = register(1);
    const req = c.authorize(
      first,
      reject(server, first, await server.verify(first, { proxy: false })),
    )!;
    const r = await server.verify(req, { proxy: false });
    assert.equal(c.authorize(req, reject(server, req, r)), undefined);
  });

  it('credentials for another realm only: missing, with a fresh challenge', async () => {
    const { server } = setup();
    const other = setup({ realm: 'other.example' }).server;
    const first = register(1);
    const resp = other.challenge(first, { proxy: false });
    const req = client().authorize(first, resp)!;
    assert.equal(credentialsOf(req).realm, 'other.example');
    const r = fail(await server.verify(req, { proxy: false }));
    assert.equal(r.reason, 'missing');
    assert.equal(r.detail, 'realm');
  });

  it('realm param rewritten after hashing: the digest no longer verifies', async () => {
    const { server } = setup({ algorithms: ['MD5'] });
    const other = setup({ realm: 'example.org', algorithms: ['MD5'] }).server;
    const first = register(1);
    // Answer a challenge for example.org, then claim realm example.com with the
    // nonce example.com's server issued.
    const good = await login(server, client());
    const forged = client().authorize(first, other.challenge(first, { proxy: false }))!;
    const value = forged
      .getRaw('Authorization')!
      .replace('realm="example.org"', 'realm="example.com"')
      .replace(/nonce="[^"]*"/, `nonce="${credentialsOf(good).nonce}"`);
    const r = fail(await server.verify(first.set('Authorization', value), { proxy: false }));
    assert.equal(r.reason, 'invalid');
    assert.equal(r.detail, 'response');
  });

  it('a nonce from a server with another realm is invalid', async () => {
    const { server } = setup();
    const other = setup({ realm: 'other.example' }).server;
    const good = await login(server, client());
    const foreignNonce = /nonce="([^"]+)"/.exec(other.challengeHeaders()[0]!)![1]!;
    const value = good.getRaw('Authorization')!.replace(/nonce="[^"]*"/, `nonce="${foreignNonce}"`);
    const r = fail(await server.verify(good.set('Authorization', value), { proxy: false }));
    assert.equal(r.detail, 'nonce');
  });

  it('wrong uri: credentials moved to another Request-URI are refused', async () => {
    const { server } = setup();
    const req = await login(server, client());
    const moved = req.withUri(uri('sip:elsewhere.example.com'));
    const r = fail(await server.verify(moved, { proxy: false }));
    assert.equal(r.reason, 'invalid');
    assert.equal(r.detail, 'uri');
  });

  it('a digest-uri equal to the Request-URI by RFC 3261 §19.1.4 is accepted', async () => {
    const { server } = setup();
    const c = client();
    const first = register(1, 'sip:EXAMPLE.com');
    const req = c.authorize(
      first,
      reject(server, first, await server.verify(first, { proxy: false })),
    )!;
    assert.equal(credentialsOf(req).uri, 'sip:EXAMPLE.com');
    const relabelled = req.withUri(uri('sip:example.com'));
    assert.equal((await server.verify(relabelled, { proxy: false })).ok, true);
  });

  it('a tampered response is refused', async () => {
    const { server } = setup();
    const req = await login(server, client());
    const raw = req.getRaw('Authorization')!;
    const response = credentialsOf(req).response!;
    const flipped = (response[0] === 'a' ? 'b' : 'a') + response.slice(1);
    const r = fail(
      await server.verify(req.set('Authorization', raw.replace(response, flipped)), {
        proxy: false,
      }),
    );
    assert.equal(r.detail, 'response');
  });

  it('a tampered method (credentials replayed on another request) is refused', async () => {
    const { server } = setup();
    const req = await login(server, client());
    const invite = createRequest({
      method: 'INVITE',
      uri: 'sip:example.com',
      from: '<sip:alice@example.com>;tag=a1',
      to: '<sip:bob@example.com>',
      callId: 'c@x',
      cseq: 1,
      headers: [['Authorization', req.getRaw('Authorization')!]],
    });
    assert.equal(fail(await server.verify(invite, { proxy: false })).detail, 'response');
  });

  it('an algorithm the server did not offer is refused', async () => {
    const { server } = setup({ algorithms: ['SHA-256'] });
    const md5Server = setup({ algorithms: ['MD5'] }).server;
    const first = register(1);
    const req = client().authorize(first, md5Server.challenge(first, { proxy: false }))!;
    assert.equal(fail(await server.verify(req, { proxy: false })).detail, 'algorithm');
  });
});

describe('two servers in one process', () => {
  it('keep separate state', async () => {
    const a = setup().server;
    const b = setup({ secret: new Uint8Array(32).fill(2) }).server;
    const req = await login(a, client());
    assert.equal((await a.verify(req, { proxy: false })).ok, true);
    assert.equal(fail(await b.verify(req, { proxy: false })).detail, 'nonce');
  });
});
