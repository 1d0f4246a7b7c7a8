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

/**
 * The key of a known header written in one of its common spellings (canonical, lower, upper,
 * compact), else undefined. Such a name is a token: a field built with it needs no check.
 */
export function knownSpellingKey(name: string): string | undefined {
  return INDEX.get(name);
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

/** The id of a header key (0 for headers outside the table). */
export function headerIdOfKey(key: string): number {
  return KEY_TO_ID.get(key) ?? 0;
}

/** The key of a known header id. */
export function headerKeyOfId(id: number): string {
  return ID_TO_KEY[id]!;
}

/**
 * Header-name matching for the parser, four octets at a time (RFC 3261 §7.3.1:
 * names are case-insensitive). Candidates are found by (length, first letter);
 * each known spelling is kept lower-case as little-endian 32-bit words, one per
 * four octets with the last word ending at the name's end (it may overlap the
 * one before), and a word of the name matches when (word | fold) equals it:
 * `fold` sets 0x20 on the octets that hold letters, which maps exactly the
 * upper-case letters onto the lower-case ones, and leaves "-" to match itself
 * only. Names shorter than four octets are one word read from their start,
 * masked to their length.
 */
const MAX_NAME = 32;

/**
 * The spellings in one flat table, so that a lookup reads typed arrays only: the
 * spelling at offset `at` is `id, nextByLength, length, nextByPrefix, want[0],
 * fold[0], want[1], fold[1], ...` with (length + 3) >> 2 word pairs (one, masked,
 * for names shorter than four octets). Spellings are chained two ways, 0 ending
 * a chain: by (length, first letter), whose chain heads are in `heads`, and by
 * their first two octets folded to five bits (PREFIX_KEY), heads in `prefixes`.
 */
interface SpellingTable {
  readonly heads: Int32Array;
  readonly prefixes: Int32Array;
  readonly flat: Int32Array;
}

const ID = 0;
const NEXT_BY_LENGTH = 1;
const LENGTH = 2;
const NEXT_BY_PREFIX = 3;
const WORDS = 4;

/** Two octets folded to ten bits: letters keep their case-insensitive identity. */
function prefixKey(a: number, b: number): number {
  return (((a | 0x20) & 31) << 5) | ((b | 0x20) & 31);
}

function buildSpellings(): SpellingTable {
  const heads = new Int32Array(MAX_NAME << 5);
  const prefixes = new Int32Array(1 << 10);
  const flat: number[] = [0]; // offset 0 is "none"
  const tails = new Map<number, number>();
  const prefixTails = new Map<number, number>();
  const chain = (
    k: number,
    at: number,
    first: Int32Array,
    last: Map<number, number>,
    link: number,
  ): void => {
    const tail = last.get(k);
    if (tail === undefined) first[k] = at;
    else flat[tail + link] = at;
    last.set(k, at);
  };
  const add = (spelling: string, id: number): void => {
    const len = spelling.length;
    if (len >= MAX_NAME) throw new Error(`header name too long: ${spelling}`);
    const n = (len + 3) >> 2;
    const at = flat.length;
    flat.push(id, 0, len, 0);
    for (let w = 0; w < n; w++) {
      // The last word ends at the name's end (short names: starts at 0).
      const from = len < 4 ? 0 : Math.min(4 * w, len - 4);
      let want = 0;
      let fold = 0;
      for (let b = 0; b < 4 && from + b < len; b++) {
        const c = spelling.charCodeAt(from + b);
        want |= c << (8 * b);
        if (c >= 0x61 && c <= 0x7a) fold |= 0x20 << (8 * b);
      }
      flat.push(want, fold);
    }
    chain((len << 5) | (spelling.charCodeAt(0) & 31), at, heads, tails, NEXT_BY_LENGTH);
    // A one-letter name is followed by the colon in the names matchHeaderPrefix takes.
    const second = len > 1 ? spelling.charCodeAt(1) : 0x3a;
    chain(prefixKey(spelling.charCodeAt(0), second), at, prefixes, prefixTails, NEXT_BY_PREFIX);
  };
  TABLE.forEach(([name, compact], i) => {
    add(name.toLowerCase(), i + 1);
    if (compact !== undefined) add(compact, i + 1);
  });
  return { heads, prefixes, flat: Int32Array.from(flat) };
}
const SPELLINGS = buildSpellings();
const HEADS = SPELLINGS.heads;
const PREFIXES = SPELLINGS.prefixes;
const FLAT = SPELLINGS.flat;

/**
 * Whether octets[start, start + len) spell the spelling at `at` (len its
 * length). A name shorter than four octets is read as one word, masked.
 */
function spells(octets: Uint8Array, start: number, len: number, at: number): boolean {
  if (len < 4) {
    const mask = (1 << (len * 8)) - 1;
    return ((word(octets, start) | FLAT[at + WORDS + 1]!) & mask) === FLAT[at + WORDS];
  }
  const n = (len + 3) >> 2;
  // The last word first: it tells most names of one length and first letter apart.
  const last = at + WORDS + 2 * (n - 1);
  if ((word(octets, start + len - 4) | FLAT[last + 1]!) !== FLAT[last]) return false;
  for (let w = 0; w < n - 1; w++) {
    if (
      (word(octets, start + 4 * w) | FLAT[at + WORDS + 2 * w + 1]!) !==
      FLAT[at + WORDS + 2 * w]
    ) {
      return false;
    }
  }
  return true;
}

/**
 * The id of the header name at octets [start, end), or 0 when it is not a known
 * header. The caller guarantees 3 octets from `start`.
 */
export function matchHeaderName(octets: Uint8Array, start: number, end: number): number {
  const len = end - start;
  if (len >= MAX_NAME || len <= 0) return 0;
  let at = HEADS[(len << 5) | (octets[start]! & 31)]!;
  while (at !== 0) {
    if (spells(octets, start, len, at)) return FLAT[at + ID]!;
    at = FLAT[at + NEXT_BY_LENGTH]!;
  }
  return 0;
}

/**
 * A known header name at `start` followed at once by ":" (the common spelling
 * of a header line, RFC 3261 §7.3.1), found from its first two octets without
 * searching for the colon: (length << 8) | id, or 0 when there is none (another
 * name, or whitespace before the colon), and the caller searches. The caller
 * guarantees 3 octets from `start`.
 */
export function matchHeaderPrefix(octets: Uint8Array, start: number): number {
  let at = PREFIXES[prefixKey(octets[start]!, octets[start + 1]!)]!;
  while (at !== 0) {
    const len = FLAT[at + LENGTH]!;
    if (octets[start + len] === 0x3a && spells(octets, start, len, at)) {
      return (len << 8) | FLAT[at + ID]!;
    }
    at = FLAT[at + NEXT_BY_PREFIX]!;
  }
  return 0;
}

/**
 * The little-endian 32-bit word at octets[at, at + 4). Four loads: cheaper than a
 * DataView over each message's bytes, which costs an object per message.
 */
function word(octets: Uint8Array, at: number): number {
  return octets[at]! | (octets[at + 1]! << 8) | (octets[at + 2]! << 16) | (octets[at + 3]! << 24);
}

/**
 * Identifies the header name text[start, end) case-insensitively, compact forms
 * included: its id, or 0 when it is not a known header.
 */
export function identifyHeaderName(text: string, start: number, end: number): number {
  const len = end - start;
  if (len >= MAX_NAME || len === 0) return 0;
  const cands = LOWER_SPELLINGS[(len << 5) | (text.charCodeAt(start) & 31)];
  if (cands === undefined) return 0;
  outer: for (let c = 0; c < cands.length; c++) {
    const [id, spelling] = cands[c]!;
    for (let i = 0; i < len; i++) {
      const want = spelling.charCodeAt(i);
      const got = text.charCodeAt(start + i);
      if (got !== want && (want < 0x61 || want > 0x7a || got !== want - 0x20)) continue outer;
    }
    return id;
  }
  return 0;
}

/** [id, lower-case spelling] by (length, first letter), as SPELLINGS. */
const LOWER_SPELLINGS: readonly (readonly (readonly [number, string])[] | undefined)[] = (() => {
  const t: [number, string][][] = [];
  const add = (spelling: string, id: number): void => {
    (t[(spelling.length << 5) | (spelling.charCodeAt(0) & 31)] ??= []).push([id, spelling]);
  };
  TABLE.forEach(([name, compact], i) => {
    add(name.toLowerCase(), i + 1);
    if (compact !== undefined) add(compact, i + 1);
  });
  return Array.from({ length: MAX_NAME << 5 }, (_, k) => t[k]);
})();

/** Header ids the parser and message model use directly. */
export const HeaderId = {
  Via: KEY_TO_ID.get('via')!,
  From: KEY_TO_ID.get('from')!,
  To: KEY_TO_ID.get('to')!,
  CallId: KEY_TO_ID.get('call-id')!,
  CSeq: KEY_TO_ID.get('cseq')!,
  MaxForwards: KEY_TO_ID.get('max-forwards')!,
  ContentLength: KEY_TO_ID.get('content-length')!,
  RecordRoute: KEY_TO_ID.get('record-route')!,
  Timestamp: KEY_TO_ID.get('timestamp')!,
} as const;
