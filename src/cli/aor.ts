/**
 * Address-of-record parsing for the user commands: `alice@example.com` means
 * `sip:alice@example.com`; the canonical form is `sip:USER@DOMAIN` with the domain
 * lower-cased (RFC 3261 §19.1.4: the host compares case-insensitively, the user part
 * case-sensitively).
 */
import { parseUri, type SipUri } from '../sip/index.ts';
import { ha1 } from '../auth/index.ts';
import type { UserCredentials } from '../store/index.ts';

export type AorResult =
  { ok: true; aor: string; user: string; domain: string } | { ok: false; reason: string };

export function parseAor(text: string): AorResult {
  const t = text.trim();
  if (t === '') return { ok: false, reason: 'empty AOR' };
  const full = /^[a-z][a-z0-9+.-]*:/i.test(t) ? t : `sip:${t}`;
  const r = parseUri(full);
  if (!r.ok) return { ok: false, reason: `invalid AOR ${JSON.stringify(text)}: ${r.error}` };
  const u = r.value;
  if (u.kind !== 'sip' || u.scheme !== 'sip') {
    return { ok: false, reason: `invalid AOR ${JSON.stringify(text)}: not a sip: URI` };
  }
  const why = unsupported(u);
  if (why !== undefined)
    return { ok: false, reason: `invalid AOR ${JSON.stringify(text)}: ${why}` };
  const domain = u.host.toLowerCase();
  const user = u.user!;
  return { ok: true, aor: `sip:${user}@${domain}`, user, domain };
}

function unsupported(u: SipUri): string | undefined {
  if (u.user === undefined) return 'no user part (expected user@domain)';
  if (u.password !== undefined) return 'a password in the URI';
  if (u.port !== undefined) return 'a port';
  if (u.params.length > 0) return 'URI parameters';
  if (u.headers.length > 0) return 'URI headers';
  return undefined;
}

/** H(A1) for MD5 and SHA-256 with realm = the AOR's domain (RFC 7616 §3.4.2, RFC 8760). */
export function credentialsFor(user: string, domain: string, password: string): UserCredentials {
  return {
    ha1Md5: ha1('MD5', user, domain, password),
    ha1Sha256: ha1('SHA-256', user, domain, password),
  };
}
