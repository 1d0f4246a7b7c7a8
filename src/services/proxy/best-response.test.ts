import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequest, createResponse, type SipResponse } from '../../sip/index.ts';
import { chooseBest, mergeChallenges } from './best-response.ts';

const req = createRequest({
  method: 'INVITE',
  uri: 'sip:bob@example.com',
  from: '<sip:alice@example.com>;tag=1',
  to: '<sip:bob@example.com>',
  callId: 'c1',
  cseq: 1,
});
const res = (status: number, headers: [string, string][] = []): SipResponse =>
  createResponse(req, status, { toTag: `t${status}`, headers });

describe('best response (RFC 3261 §16.7 step 6–7)', () => {
  it('6xx first, then the lowest class, preferring 401/407/415/420/484 among 4xx', () => {
    assert.equal(chooseBest([res(486), res(603), res(302)])?.status, 603);
    assert.equal(chooseBest([res(500), res(486), res(404)])?.status, 486);
    assert.equal(chooseBest([res(486), res(407), res(404)])?.status, 407);
    assert.equal(chooseBest([res(500), res(302)])?.status, 302);
    assert.equal(chooseBest([res(180)]), undefined);
    assert.equal(chooseBest([]), undefined);
  });

  it('merges the challenges of every 401 and 407', () => {
    const a = res(401, [['WWW-Authenticate', 'Digest realm="a", nonce="1"']]);
    const b = res(407, [['Proxy-Authenticate', 'Digest realm="b", nonce="2"']]);
    const merged = mergeChallenges(a, [a, b, res(486)]);
    assert.deepEqual(merged.getRawAll('WWW-Authenticate'), ['Digest realm="a", nonce="1"']);
    assert.deepEqual(merged.getRawAll('Proxy-Authenticate'), ['Digest realm="b", nonce="2"']);
    assert.equal(mergeChallenges(res(486), [a, b]).has('WWW-Authenticate'), false);
  });
});
