/**
 * Branch parameters that let the proxy detect loops (RFC 3261 §16.3 item 4 and
 * §16.6 item 8). A forwarded request's branch is `z9hG4bK` + `-sb` + a hash of the
 * fields that identify the request as received + `.` + a unique part. When a request
 * comes back carrying one of our Via values, the hash is computed again: equal means
 * the request is the same one, unchanged, a loop (482); different means a spiral
 * (the Request-URI or route changed), which is allowed.
 */
import { uint32ToString } from '../../base/index.ts';
import type { SipRequest } from '../../sip/index.ts';

/** Marks branches this proxy made (after the RFC 3261 magic cookie). */
export const BRANCH_MARK = 'z9hG4bK-sb';

/** FNV-1a, 32 bits, of one more string: cheap and stable; a collision only costs a missed loop (Max-Forwards still ends it). */
function mix(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  // A separator, so that ("ab", "c") and ("a", "bc") differ.
  return Math.imul(h ^ 1, 0x01000193);
}

/** Every field of one header, in order, as if joined with commas (RFC 3261 §7.3.1). */
function mixAll(h: number, request: SipRequest, name: string): number {
  for (const v of request.getRawAll(name)) h = mix(h, v);
  return h;
}

/**
 * §16.6 item 8: the hash covers "the To tag, From tag, Call-ID header field, the
 * Request-URI of the request received (before translation), the topmost Via header,
 * and the sequence number from the CSeq header field, in addition to any
 * Proxy-Require and Proxy-Authorization header fields". The topmost Via is left out:
 * a looped request arrives with our own Via on top of it, so the Via that was
 * topmost when we forwarded it is no longer topmost; the other fields identify the
 * request as well, and a changed Request-URI or Route still marks a spiral.
 *
 * The fields are hashed one after the other, not joined first: a joined string of a
 * request with credentials is several hundred characters built only to be hashed.
 */
export function loopHash(request: SipRequest): string {
  let h = 0x811c9dc5;
  h = mix(h, request.uriText);
  h = mix(h, request.to.tag ?? '');
  h = mix(h, request.from.tag ?? '');
  h = mix(h, request.callId);
  h = Math.imul(h ^ request.cseq.seq, 0x01000193);
  h = mixAll(h, request, 'Proxy-Require');
  h = mixAll(h, request, 'Proxy-Authorization');
  h = mixAll(h, request, 'Route');
  return uint32ToString(h >>> 0, 36);
}

/**
 * Whether any Via value of the request may carry a branch of ours: when none does, as
 * for every request straight from a user agent, no Via needs decoding to rule out a loop.
 */
export function mayCarryOurBranch(request: SipRequest): boolean {
  for (const v of request.getRawAll('Via')) if (v.includes(BRANCH_MARK)) return true;
  return false;
}

/** A branch for a request forwarded by this proxy: the loop hash and a unique suffix. */
export function proxyBranch(hash: string, unique: string): string {
  return `${BRANCH_MARK}${hash}.${unique}`;
}

/** The loop hash carried by one of our branches, or undefined. */
export function hashOfBranch(branch: string | undefined): string | undefined {
  if (branch === undefined || !branch.startsWith(BRANCH_MARK)) return undefined;
  const dot = branch.indexOf('.', BRANCH_MARK.length);
  return dot < 0 ? undefined : branch.slice(BRANCH_MARK.length, dot);
}
