/**
 * Who may watch a user's presence (RFC 3856 §5.1: "the presence agent ... MUST authorize
 * the subscription"; the decisions are RFC 5025 §3.2.1 sub-handling's allow, block and
 * confirm, without the polite-block variant).
 *
 * A user's own rule for a watcher wins; without one, a watcher in the user's domain gets
 * `sameDomain` (allow by default: colleagues see each other) and anyone else `otherDomains`.
 * A user may always watch themselves (a phone showing its own state).
 */
import type { PresenceRuleAction } from '../../store/index.ts';

export interface PresencePolicyDefaults {
  /** Watchers whose AOR is in the user's domain, without a rule of the user. */
  readonly sameDomain: PresenceRuleAction;
  /** Every other watcher without a rule (including unauthenticated foreign callers). */
  readonly otherDomains: PresenceRuleAction;
}

/** The domain of a canonical `sip:user@domain` AOR (or of `sip:domain`). */
export function aorDomain(aor: string): string {
  const at = aor.lastIndexOf('@');
  return (at >= 0 ? aor.slice(at + 1) : aor.replace(/^sips?:/, '')).toLowerCase();
}

/** What happens to a subscription of `watcher` to `aor`'s presence. */
export function decideWatcher(
  aor: string,
  watcher: string,
  rule: PresenceRuleAction | undefined,
  defaults: PresencePolicyDefaults,
): PresenceRuleAction {
  if (watcher === aor) return 'allow';
  if (rule !== undefined) return rule;
  return aorDomain(watcher) === aorDomain(aor) ? defaults.sameDomain : defaults.otherDomains;
}
