/**
 * Header names: canonical spelling, compact form (RFC 3261 §7.3.3 and the
 * extensions' own), and the lower-case key that fields are matched on. Header
 * names are case-insensitive (§7.3.1); a compact form and its long form are the
 * same header.
 *
 * Adding a header touches this table (one line), one codec file and one golden
 * test (STYLE §9).
 */

/** [canonical name, compact form] */
const TABLE: readonly (readonly [string, string?])[] = [
  ['Accept'],
  ['Accept-Contact', 'a'],
  ['Accept-Encoding'],
  ['Accept-Language'],
  ['Alert-Info'],
  ['Allow'],
  ['Allow-Events', 'u'],
  ['Authentication-Info'],
  ['Authorization'],
  ['Call-ID', 'i'],
  ['Call-Info'],
  ['Contact', 'm'],
  ['Content-Disposition'],
  ['Content-Encoding', 'e'],
  ['Content-Language'],
  ['Content-Length', 'l'],
  ['Content-Type', 'c'],
  ['CSeq'],
  ['Date'],
  ['Error-Info'],
  ['Event', 'o'],
  ['Expires'],
  ['From', 'f'],
  ['Identity', 'y'],
  ['Identity-Info', 'n'],
  ['In-Reply-To'],
  ['Max-Forwards'],
  ['MIME-Version'],
  ['Min-Expires'],
  ['Min-SE'],
  ['Organization'],
  ['P-Asserted-Identity'],
  ['P-Preferred-Identity'],
  ['Path'],
  ['Priority'],
  ['Privacy'],
  ['Proxy-Authenticate'],
  ['Proxy-Authorization'],
  ['Proxy-Require'],
  ['RAck'],
  ['Reason'],
  ['Record-Route'],
  ['Refer-To', 'r'],
  ['Referred-By', 'b'],
  ['Reject-Contact', 'j'],
  ['Replaces'],
  ['Reply-To'],
  ['Request-Disposition', 'd'],
  ['Require'],
  ['Retry-After'],
  ['Route'],
  ['RSeq'],
  ['Server'],
  ['Service-Route'],
  ['Session-Expires', 'x'],
  ['SIP-ETag'],
  ['SIP-If-Match'],
  ['Subject', 's'],
  ['Subscription-State'],
  ['Supported', 'k'],
  ['Timestamp'],
  ['To', 't'],
  ['Unsupported'],
  ['User-Agent'],
  ['Via', 'v'],
  ['Warning'],
  ['WWW-Authenticate'],
];

function buildIndex(): ReadonlyMap<string, string> {
  const m = new Map<string, string>();
  for (const [name, compact] of TABLE) {
    const key = name.toLowerCase();
    m.set(name, key);
    m.set(key, key);
    m.set(name.toUpperCase(), key);
    if (compact !== undefined) {
      m.set(compact, key);
      m.set(compact.toUpperCase(), key);
    }
  }
  return m;
}

function buildCanonical(): ReadonlyMap<string, string> {
  const m = new Map<string, string>();
  for (const [name] of TABLE) m.set(name.toLowerCase(), name);
  return m;
}

/** Any common spelling (canonical, lower, upper, compact) -> key. */
const INDEX = buildIndex();
/** key -> canonical name. */
const CANONICAL = buildCanonical();

/**
 * The key of a header name: the lower-case canonical long form for known
 * headers and compact forms, the lower-cased name for others.
 */
export function headerKey(name: string): string {
  const k = INDEX.get(name);
  if (k !== undefined) return k;
  const lower = name.toLowerCase();
  return INDEX.get(lower) ?? lower;
}

/** Canonical spelling for a key, or undefined for headers outside the table. */
export function canonicalHeaderName(key: string): string | undefined {
  return CANONICAL.get(key);
}

/** Every known header: canonical name and compact form. */
export function knownHeaders(): readonly (readonly [string, string?])[] {
  return TABLE;
}
