/**
 * Store interfaces (STYLE.md layer `store`): users, domains, location bindings, kept
 * instant messages and published event state (presence).
 * Adapters live in subfolders (`sqlite/`); services depend on these interfaces only.
 */
export * from './users.ts';
export * from './domains.ts';
export * from './location.ts';
export * from './messages.ts';
export * from './presence.ts';

import type { DomainStore } from './domains.ts';
import type { LocationStore } from './location.ts';
import type { MessageStore } from './messages.ts';
import type { PresenceStore } from './presence.ts';
import type { UserStore } from './users.ts';

/** One opened store: its interfaces on one backend, closed together. */
export interface Store {
  readonly users: UserStore;
  readonly domains: DomainStore;
  readonly location: LocationStore;
  readonly messages: MessageStore;
  readonly presence: PresenceStore;
  close(): Promise<void>;
}
