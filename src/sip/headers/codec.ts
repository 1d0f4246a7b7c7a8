/**
 * A header codec: one per header (STYLE §9). `parse` decodes one field value
 * (already unfolded and trimmed); for headers that may hold a comma-separated list
 * (RFC 3261 §7.3.1) it returns the elements of that one field, and the message
 * flattens them across fields.
 */
import type { Result } from '../../base/result.ts';
import { headerIdOfKey } from './names.ts';

export interface HeaderCodec<T> {
  /** Canonical name, e.g. 'Call-ID'. */
  readonly name: string;
  /** Lower-case canonical name: the key fields are matched on. */
  readonly key: string;
  /** Compact form (RFC 3261 §7.3.3), lower case, when the header has one. */
  readonly compact?: string;
  /** True when one field may hold several comma-separated values. */
  readonly list: boolean;
  parse(value: string): Result<T, string>;
  format(value: T): string;
  /**
   * The id `names.ts` gives `key` (0 for a header it does not list), set by `defineCodec` so
   * that reading a header does not look its name up again; absent, it is looked up.
   */
  readonly id?: number;
}

/** The element type of a list codec. */
export type ListElement<C> = C extends HeaderCodec<readonly (infer E)[]> ? E : never;

export function defineCodec<T>(def: HeaderCodec<T>): HeaderCodec<T> {
  return Object.freeze({ ...def, id: headerIdOfKey(def.key) });
}
