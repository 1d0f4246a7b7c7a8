/**
 * SIP Digest authentication (RFC 3261 §22 with RFC 7616 and RFC 8760): the
 * digest computations, server nonces, a server that challenges and verifies,
 * and a client that answers challenges. Imports only src/sip, src/base and
 * node:crypto; every stateful part is an instance built from options.
 */
export {
  canonicalAlgorithm,
  digestHash,
  digestHexLength,
  digestResponse,
  DIGEST_ALGORITHMS,
  formatNc,
  ha1,
  ha1Sess,
  hashOf,
  isDigestHex,
  isSessionAlgorithm,
  userhash,
  type DigestAlgorithm,
  type DigestHash,
  type DigestQop,
  type DigestResponseInput,
} from './digest.ts';
export {
  createNonceManager,
  type NcStatus,
  type NonceManager,
  type NonceManagerOptions,
  type NonceStatus,
} from './nonce.ts';
export {
  carriesCredentials,
  createDigestServer,
  type AuthFailure,
  type AuthFailureDetail,
  type AuthFailureReason,
  type AuthResult,
  type AuthSuccess,
  type ChallengeOptions,
  type DigestServer,
  type DigestServerOptions,
  type Ha1Lookup,
  type VerifyOptions,
} from './server.ts';
export { createDigestClient, type DigestClient, type DigestClientOptions } from './client.ts';
export { authHeaderSet, type AuthHeaderSet } from './headers.ts';
