/**
 * Store interfaces (STYLE.md layer `store`): users, domains, location bindings, kept
 * instant messages, published event state (presence), subscriptions and watcher rules.
 * Adapters live in subfolders (`sqlite/`); services depend on these interfaces only.
 */
export * from './users.ts';
export * from './domains.ts';
export * from './location.ts';
export * from './messages.ts';
export * from './presence.ts';
export * from './subscriptions.ts';

import type { DomainStore } from './domains.ts';
import type { LocationStore } from './location.ts';
import type { MessageStore } from './messages.ts';
import type { PresenceStore } from './presence.ts';
import type { PresenceRuleStore, SubscriptionStore } from './subscriptions.ts';
import type { UserStore } from './users.ts';

/** One opened store: its interfaces on one backend, closed together. */
export interface Store {
  readonly users: UserStore;
  readonly domains: DomainStore;
  readonly location: LocationStore;
  readonly messages: MessageStore;
  readonly presence: PresenceStore;
  /** Subscriptions the server notifies (RFC 6665, presence and presence.winfo). */
  readonly subscriptions: SubscriptionStore;
  /** Users' rules for their watchers (RFC 3856 §5.1). */
  readonly presenceRules: PresenceRuleStore;
  close(): Promise<void>;
}
