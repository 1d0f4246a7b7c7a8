/**
 * Watcher information documents (RFC 3858 `application/watcherinfo+xml`) for the
 * `presence.winfo` event package (RFC 3857): the list of a user's presence watchers and the
 * state of each one's subscription.
 *
 * Every NOTIFY carries the full state (RFC 3858 §4.2.1 `state="full"`); `version` counts the
 * NOTIFYs of the winfo subscription from 0 (§4.2.1: "incremented by one for each new
 * document"), so a client that saw a gap knows it.
 */
import { escapeXmlAttribute } from './pidf.ts';

export const WATCHERINFO_CONTENT_TYPE = 'application/watcherinfo+xml';
export const WATCHERINFO_NS = 'urn:ietf:params:xml:ns:watcherinfo';

/** One watcher of the list (RFC 3858 §4.2.3 `<watcher>`). */
export interface WatcherEntry {
  /** Unique within the list and stable across documents (§4.2.3 id). */
  readonly id: string;
  /** The watcher's URI (the element's content). */
  readonly uri: string;
  readonly displayName?: string;
  /** §4.2.3 status: pending, active, waiting or terminated. */
  readonly status: 'pending' | 'active' | 'waiting' | 'terminated';
  /**
   * §4.2.3 event: what led to the status: subscribe, approved, deactivated, probation,
   * rejected, timeout, giveup, noresource.
   */
  readonly event: string;
  /** Seconds since the subscription was created (§4.2.3 duration-subscribed). */
  readonly durationSubscribed?: number;
  /** Seconds left until it expires (§4.2.3 expiration). */
  readonly expiration?: number;
}

/** Escapes element text (the same references as attribute values: both are safe). */
const escapeText = escapeXmlAttribute;

/** A full-state watcherinfo document for one resource's `package` watcher list. */
export function composeWatcherinfo(
  resource: string,
  pkg: string,
  version: number,
  watchers: readonly WatcherEntry[],
): string {
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<watcherinfo xmlns="${WATCHERINFO_NS}" version="${version}" state="full">`,
    `  <watcher-list resource="${escapeXmlAttribute(resource)}" package="${escapeXmlAttribute(pkg)}">`,
  ];
  for (const w of watchers) {
    let attrs = `id="${escapeXmlAttribute(w.id)}" status="${w.status}" event="${escapeXmlAttribute(w.event)}"`;
    if (w.displayName !== undefined) {
      attrs += ` display-name="${escapeXmlAttribute(w.displayName)}"`;
    }
    if (w.durationSubscribed !== undefined) {
      attrs += ` duration-subscribed="${Math.max(0, Math.floor(w.durationSubscribed))}"`;
    }
    if (w.expiration !== undefined)
      attrs += ` expiration="${Math.max(0, Math.floor(w.expiration))}"`;
    lines.push(`    <watcher ${attrs}>${escapeText(w.uri)}</watcher>`);
  }
  lines.push('  </watcher-list>', '</watcherinfo>');
  return `${lines.join('\n')}\n`;
}
