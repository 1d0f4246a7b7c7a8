/**
 * PIDF documents (RFC 3863, application/pidf+xml): checking a published one and composing
 * the tuples of several into one.
 *
 * A published document comes from a user agent and is untrusted. It is read here by a
 * small strict scanner for the subset of XML 1.0 that PIDF needs: elements, attributes,
 * character and the five predefined entity references, comments and CDATA. A DOCTYPE (and
 * so any entity definition), a processing instruction other than the XML declaration, a
 * declared encoding other than UTF-8, mismatched tags or stray text around the root are
 * refused. Nothing is unescaped or rebuilt: each `<tuple>` child of the root is kept as the
 * exact text that was checked, with the root's namespace declarations copied onto its
 * start tag (a tuple may use prefixes its root declared, RFC 3863 §4.1 extensions), so it
 * stands alone inside another `<presence>`. The one value this file writes itself, the
 * composed document's `entity`, is escaped.
 */
import { err, ok, type Result } from '../../base/index.ts';

/** RFC 3863 §4.1: the PIDF namespace. */
export const PIDF_NS = 'urn:ietf:params:xml:ns:pidf';
export const PIDF_CONTENT_TYPE = 'application/pidf+xml';

/** One `<tuple>` of a published document, ready to be placed in another `<presence>`. */
export interface PidfTuple {
  /** The tuple's `id` attribute as written (RFC 3863 §4.1.2: unique within a document). */
  readonly id: string;
  /** The tuple element's text, namespace declarations of the root added. */
  readonly xml: string;
}

/** A checked PIDF document: its root's `entity` and its tuples, in document order. */
export interface PidfDocument {
  readonly entity: string;
  readonly tuples: readonly PidfTuple[];
}

/** Name = a prefix (optional) and a local part; ASCII only, as PIDF's schemas use. */
const NAME = /[A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?/;
const ATTRIBUTE =
  /\s+([A-Za-z_][A-Za-z0-9._-]*(?::[A-Za-z_][A-Za-z0-9._-]*)?)\s*=\s*("[^"<]*"|'[^'<]*')/;
/** XML 1.0 §4.1 references: the five predefined entities and character references. */
const REFERENCE = /&(?!(?:lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)/;
/** XML 1.0 §2.2 Char, less what the decoder made of invalid UTF-8 (U+FFFD is allowed text). */
// eslint-disable-next-line no-control-regex
const NOT_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
/** Deepest nesting accepted (PIDF with RPID extensions is about 6 deep). */
const MAX_DEPTH = 32;

interface Attribute {
  readonly name: string;
  readonly value: string;
  /** The attribute as written (` name="value"`), to copy. */
  readonly raw: string;
}

interface OpenElement {
  readonly name: string;
  readonly attributes: readonly Attribute[];
  readonly start: number;
  readonly startTagEnd: number;
}

const prefixOf = (name: string): string | undefined =>
  name.includes(':') ? name.slice(0, name.indexOf(':')) : undefined;
const localOf = (name: string): string => name.slice(name.indexOf(':') + 1);
const attr = (attributes: readonly Attribute[], name: string): string | undefined =>
  attributes.find((a) => a.name === name)?.value;

/** The namespace `name`'s prefix stands for, looking at `scopes` innermost first. */
function namespaceOf(name: string, scopes: readonly (readonly Attribute[])[]): string | undefined {
  const p = prefixOf(name);
  const decl = p === undefined ? 'xmlns' : `xmlns:${p}`;
  for (const s of scopes) {
    const v = attr(s, decl);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Parses a published PIDF document; the error says why it is not one accepted here. */
export function parsePidf(text: string): Result<PidfDocument, string> {
  let x = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (NOT_CHAR.test(x)) return err('a character XML does not allow');
  // XML 1.0 §2.8: the XML declaration, only at the very start.
  const decl = /^<\?xml\s[^?]*\?>/.exec(x);
  if (decl !== null) {
    const enc = /encoding\s*=\s*["']([^"']*)["']/.exec(decl[0]);
    if (enc !== null && !/^utf-?8$/i.test(enc[1]!)) return err(`encoding ${enc[1]} (UTF-8 only)`);
    x = x.slice(decl[0].length);
  }
  // Sticky copies made per call (their lastIndex is state): each matches at one position of
  // `x` without slicing it.
  const nameAt = new RegExp(NAME.source, 'y');
  const attribute = new RegExp(ATTRIBUTE.source, 'y');
  const endClose = /\s*>/y;
  const startClose = /\s*(\/?)>/y;
  const at = (re: RegExp, pos: number): RegExpExecArray | null => {
    re.lastIndex = pos;
    return re.exec(x);
  };
  const stack: OpenElement[] = [];
  let root: OpenElement | undefined;
  let rootClosed = false;
  const tuples: { open: OpenElement; end: number }[] = [];
  let i = 0;
  while (i < x.length) {
    const lt = x.indexOf('<', i);
    const textEnd = lt === -1 ? x.length : lt;
    const chars = x.slice(i, textEnd);
    if (chars !== '') {
      if (stack.length === 0 && chars.trim() !== '') return err('text outside the root element');
      if (REFERENCE.test(chars)) return err('an entity reference other than the predefined ones');
      if (chars.includes(']]>')) return err(']]> in text');
    }
    if (lt === -1) break;
    i = lt;
    if (x.startsWith('<!--', i)) {
      const end = x.indexOf('-->', i + 4);
      if (end === -1) return err('unterminated comment');
      i = end + 3;
      continue;
    }
    if (x.startsWith('<![CDATA[', i)) {
      if (stack.length === 0) return err('CDATA outside the root element');
      const end = x.indexOf(']]>', i + 9);
      if (end === -1) return err('unterminated CDATA section');
      i = end + 3;
      continue;
    }
    // No DOCTYPE: its entity definitions are how XML documents expand without bound.
    if (x.startsWith('<!', i)) return err('a DOCTYPE or other declaration');
    if (x.startsWith('<?', i)) return err('a processing instruction');
    if (x.startsWith('</', i)) {
      const m = at(nameAt, i + 2);
      const open = stack.pop();
      if (m === null || open === undefined || m[0] !== open.name) return err('mismatched end tag');
      const close = at(endClose, i + 2 + m[0].length);
      if (close === null) return err('malformed end tag');
      i += 2 + m[0].length + close[0].length;
      if (stack.length === 0) rootClosed = true;
      else if (stack.length === 1 && tuples.at(-1)?.open === open) tuples.at(-1)!.end = i;
      continue;
    }
    // A start tag.
    const m = at(nameAt, i + 1);
    if (m === null) return err('malformed start tag');
    const start = i;
    const name = m[0];
    i += 1 + name.length;
    const attributes: Attribute[] = [];
    for (;;) {
      const a = at(attribute, i);
      if (a === null) break;
      const value = a[2]!.slice(1, -1);
      if (REFERENCE.test(value)) return err('an entity reference other than the predefined ones');
      if (attributes.some((b) => b.name === a[1])) return err(`attribute ${a[1]} twice`);
      attributes.push({ name: a[1]!, value, raw: a[0] });
      i += a[0].length;
    }
    const close = at(startClose, i);
    if (close === null) return err(`malformed start tag <${name}>`);
    i += close[0].length;
    if (rootClosed) return err('a second root element');
    const open: OpenElement = { name, attributes, start, startTagEnd: i };
    if (root === undefined) {
      root = open;
      if (localOf(name) !== 'presence' || namespaceOf(name, [attributes]) !== PIDF_NS) {
        return err(`the root is not <presence> in ${PIDF_NS} (RFC 3863 §4.1)`);
      }
    } else if (
      stack.length === 1 &&
      localOf(name) === 'tuple' &&
      namespaceOf(name, [attributes, root.attributes]) === PIDF_NS
    ) {
      const id = attr(attributes, 'id');
      if (id === undefined) return err('a <tuple> without id (RFC 3863 §4.1.2)');
      tuples.push({ open, end: close[1] === '/' ? i : -1 });
    }
    if (close[1] === '/') {
      if (stack.length === 0) rootClosed = true;
      continue;
    }
    if (stack.length >= MAX_DEPTH) return err('nested too deep');
    stack.push(open);
  }
  if (root === undefined || !rootClosed) return err('no complete root element');
  const entity = attr(root.attributes, 'entity');
  if (entity === undefined) return err('<presence> without entity (RFC 3863 §4.1.1)');
  const inherited = root.attributes.filter(
    (a) => a.name === 'xmlns' || a.name.startsWith('xmlns:'),
  );
  return ok({
    entity,
    tuples: tuples.map(({ open, end }) => {
      const own = new Set(open.attributes.map((a) => a.name));
      const added = inherited
        .filter((a) => !own.has(a.name))
        .map((a) => a.raw.trimStart())
        .join(' ');
      const tagNameEnd = open.start + 1 + open.name.length;
      const xml =
        added === ''
          ? x.slice(open.start, end)
          : `${x.slice(open.start, tagNameEnd)} ${added}${x.slice(tagNameEnd, end)}`;
      return { id: attr(open.attributes, 'id')!, xml };
    }),
  });
}

/** XML 1.0 §2.4/§3.3.3: text safe inside a double-quoted attribute value. */
export function escapeXmlAttribute(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * One PIDF document for `entity` with `tuples` (RFC 3863 §4.1; a document without tuples is
 * valid and says nothing is known). Tuples come from `parsePidf`, so each is checked text.
 */
export function composePidf(entity: string, tuples: readonly PidfTuple[]): string {
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<presence xmlns="${PIDF_NS}" entity="${escapeXmlAttribute(entity)}">`,
    ...tuples.map((t) => t.xml),
    '</presence>',
  ];
  return `${lines.join('\n')}\n`;
}
