/**
 * Store interfaces (STYLE.md layer `store`): users, domains, location bindings and kept
 * instant messages.
 * Adapters live in subfolders (`sqlite/`); services depend on these interfaces only.
 */
export * from './users.ts';
export * from './domains.ts';
export * from './location.ts';
export * from './messages.ts';

import type { DomainStore } from './domains.ts';
import type { LocationStore } from './location.ts';
import type { MessageStore } from './messages.ts';
import type { UserStore } from './users.ts';

/** One opened store: its interfaces on one backend, closed together. */
export interface Store {
  readonly users: UserStore;
  readonly domains: DomainStore;
  readonly location: LocationStore;
  readonly messages: MessageStore;
  close(): Promise<void>;
}
