/**
 * Branch parameters that let the proxy detect loops (RFC 3261 §16.3 item 4 and
 * §16.6 item 8). A forwarded request's branch is `z9hG4bK` + `-sb` + a hash of the
 * fields that identify the request as received + `.` + a unique part. When a request
 * comes back carrying one of our Via values, the hash is computed again: equal means
 * the request is the same one, unchanged, a loop (482); different means a spiral
 * (the Request-URI or route changed), which is allowed.
 */
import type { SipRequest } from '../../sip/index.ts';

/** Marks branches this proxy made (after the RFC 3261 magic cookie). */
export const BRANCH_MARK = 'z9hG4bK-sb';

/** FNV-1a, 32 bits: cheap and stable; collisions only cost a missed loop (Max-Forwards still ends it). */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

/**
 * §16.6 item 8: the hash covers "the To tag, From tag, Call-ID header field, the
 * Request-URI of the request received (before translation), the topmost Via header,
 * and the sequence number from the CSeq header field, in addition to any
 * Proxy-Require and Proxy-Authorization header fields". The topmost Via is left out:
 * a looped request arrives with our own Via on top of it, so the Via that was
 * topmost when we forwarded it is no longer topmost; the other fields identify the
 * request as well, and a changed Request-URI or Route still marks a spiral.
 */
export function loopHash(request: SipRequest): string {
  return fnv1a(
    [
      request.uriText,
      request.to.tag ?? '',
      request.from.tag ?? '',
      request.callId,
      String(request.cseq.seq),
      request.getRawAll('Proxy-Require').join(','),
      request.getRawAll('Proxy-Authorization').join(','),
      request.getRawAll('Route').join(','),
    ].join('\u0001'),
  );
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
