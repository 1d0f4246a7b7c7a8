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

/**
 * Numeric ids for known headers (1-based position in TABLE; 0 = unknown), so
 * the parser can name a field without slicing or lower-casing its text.
 */
const KEY_TO_ID: ReadonlyMap<string, number> = new Map(
  TABLE.map(([n], i) => [n.toLowerCase(), i + 1]),
);
const ID_TO_KEY: readonly string[] = ['', ...TABLE.map(([n]) => n.toLowerCase())];

/**
 * Candidates by (length, first letter): a flat array indexed by
 * `length << 5 | (first char & 31)` holding [id, lower-case spelling, usual
 * spelling] triples. Every known name is shorter than 32 characters, and the
 * usual spelling (canonical, or the compact letter) is tried first with one
 * native comparison.
 */
type Candidate = readonly [number, string, string];
const MAX_NAME = 32;

function buildBuckets(): readonly (readonly Candidate[] | undefined)[] {
  const t: Candidate[][] = [];
  const add = (spelling: string, usual: string, id: number): void => {
    const k = (spelling.length << 5) | (spelling.charCodeAt(0) & 31);
    (t[k] ??= []).push([id, spelling, usual]);
  };
  TABLE.forEach(([name, compact], i) => {
    if (name.length >= MAX_NAME) throw new Error(`header name too long for the index: ${name}`);
    add(name.toLowerCase(), name, i + 1);
    if (compact !== undefined) add(compact, compact, i + 1);
  });
  return Array.from({ length: MAX_NAME << 5 }, (_, k) => t[k]);
}
const BUCKETS = buildBuckets();

/** The id of a header key (0 for headers outside the table). */
export function headerIdOfKey(key: string): number {
  return KEY_TO_ID.get(key) ?? 0;
}

/** The key of a known header id. */
export function headerKeyOfId(id: number): string {
  return ID_TO_KEY[id]!;
}

/**
 * Identifies the header name text[start, end) case-insensitively, compact forms
 * included. Returns its id, or 0 when it is not a known header.
 */
export function identifyHeaderName(text: string, start: number, end: number): number {
  const len = end - start;
  if (len >= MAX_NAME) return 0;
  const cands = BUCKETS[(len << 5) | (text.charCodeAt(start) & 31)];
  if (cands === undefined) return 0;
  for (let c = 0; c < cands.length; c++) {
    const cand = cands[c]!;
    if (text.startsWith(cand[2], start)) return cand[0];
  }
  outer: for (let c = 0; c < cands.length; c++) {
    const cand = cands[c]!;
    const spelling = cand[1];
    for (let i = 0; i < len; i++) {
      // Known names hold only letters and "-": OR-ing 0x20 lower-cases letters
      // and leaves "-" alone; CR/LF, the only other octets that would map onto
      // them, never occur inside a header line.
      if ((text.charCodeAt(start + i) | 0x20) !== spelling.charCodeAt(i)) continue outer;
    }
    return cand[0];
  }
  return 0;
}

/** Header ids the parser and message model use directly. */
export const HeaderId = {
  Via: KEY_TO_ID.get('via')!,
  From: KEY_TO_ID.get('from')!,
  To: KEY_TO_ID.get('to')!,
  CallId: KEY_TO_ID.get('call-id')!,
  CSeq: KEY_TO_ID.get('cseq')!,
  MaxForwards: KEY_TO_ID.get('max-forwards')!,
  ContentLength: KEY_TO_ID.get('content-length')!,
} as const;
