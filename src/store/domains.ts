/**
 * The domains this server is responsible for (RFC 3261 §10.3 step 1: a registrar
 * accepts REGISTER only for its own domains). Names are stored lower-cased.
 */

/** `removed`, or why not: no such domain, or users still belong to it. */
export type RemoveDomainResult = 'removed' | 'not-found' | 'in-use';

export interface DomainStore {
  /** Adds a domain; false when it is already configured. */
  add(name: string): Promise<boolean>;
  remove(name: string): Promise<RemoveDomainResult>;
  /** Every domain, sorted. */
  list(): Promise<string[]>;
  has(name: string): Promise<boolean>;
  /**
   * `has`, answered at once when the store can (a store that keeps the domains in memory);
   * undefined when it cannot tell without waiting. For the checks a server makes before it
   * keeps any state for a request (RFC 3261 §8.2.7).
   */
  hasNow?(name: string): boolean | undefined;
}
