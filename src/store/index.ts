/**
 * Store interfaces (STYLE.md layer `store`): users, domains, location bindings, kept
 * instant messages, published event state (presence), subscriptions and watcher rules, and the
 * state of users' calls (the dialog event package).
 * Adapters live in subfolders (`sqlite/`); services depend on these interfaces only.
 */
export * from './users.ts';
export * from './domains.ts';
export * from './location.ts';
export * from './messages.ts';
export * from './presence.ts';
export * from './subscriptions.ts';
export * from './dialogs.ts';

import type { DialogStateStore } from './dialogs.ts';
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
  /** INVITE dialogs of local users seen by the proxy (RFC 4235 dialog event package). */
  readonly dialogs: DialogStateStore;
  close(): Promise<void>;
}
