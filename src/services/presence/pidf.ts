/**
 * PIDF documents (RFC 3863, application/pidf+xml): checking a published one and composing
 * what several carry into one.
 *
 * A published document comes from a user agent and is untrusted. It is read here by a
 * small strict scanner for the subset of XML 1.0 that PIDF needs: elements, attributes,
 * character and the five predefined entity references, comments and CDATA. A DOCTYPE (and
 * so any entity definition), a processing instruction other than the XML declaration, a
 * declared encoding other than UTF-8, mismatched tags, stray text around the root, or a
 * prefix used without its declaration (Namespaces in XML 1.0 §5, "Prefix Declared") are
 * refused.
 *
 * Nothing is unescaped or rebuilt: the children of the root that a composed document
 * carries are kept as the exact text that was checked:
 *
 * - `<tuple>` (RFC 3863 §4.1.2) and root-level `<note>` (RFC 3863 §4.1.6), in the PIDF
 *   namespace;
 * - `<person>` and `<device>` of the data model (RFC 4479 §3.2, §3.4; namespace
 *   `urn:ietf:params:xml:ns:pidf:data-model`), where RPID (RFC 4480) puts activities such
 *   as `<rpid:away/>`.
 *
 * Each is made to stand alone inside another `<presence>`, whose prefixes may differ: the
 * namespace declarations in scope at the root (RFC 3863 §4.1 extensions may use prefixes
 * the root declared) are copied onto its start tag unless it declares the prefix itself,
 * with `xmlns=""` when it uses the default namespace the root left undeclared (else the
 * composed root's PIDF default would capture it), and the root's `xml:lang` (XML 1.0 §2.12:
 * inherited, it says the language of notes). The one value this file writes itself, the
 * composed document's `entity`, is escaped.
 */
import { err, ok, type Result } from '../../base/index.ts';

/** RFC 3863 §4.1: the PIDF namespace. */
export const PIDF_NS = 'urn:ietf:params:xml:ns:pidf';
export const PIDF_CONTENT_TYPE = 'application/pidf+xml';
/** RFC 4479's schema's target namespace (RFC 4479 §3.2, §3.4): `<person>`, `<device>`. */
export const PIDF_DATA_MODEL_NS = 'urn:ietf:params:xml:ns:pidf:data-model';
/** RFC 4480 (RPID): `<activities>` with `<away/>`, `<busy/>`, ... */
export const RPID_NS = 'urn:ietf:params:xml:ns:pidf:rpid';
/** Namespaces in XML 1.0 §3: the `xml` prefix is bound to this and to nothing else. */
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

/** A child of a published document's root, ready to be placed in another `<presence>`. */
export interface PidfElement {
  /** The element's text, with what it needs from the root added (see the file header). */
  readonly xml: string;
}

/** A child with an `id`: a tuple (RFC 3863 §4.1.2), a person or device (RFC 4479 §3.2, §3.4). */
export interface PidfIdElement extends PidfElement {
  /** The `id` attribute as written (an XML ID: unique within a document). */
  readonly id: string;
}

/** One `<tuple>` of a published document. */
export type PidfTuple = PidfIdElement;

/** A checked PIDF document: its root's `entity` and the children it carries, in document order. */
export interface PidfDocument {
  readonly entity: string;
  readonly tuples: readonly PidfTuple[];
  /** Root-level `<note>` elements (RFC 3863 §4.1.6). */
  readonly notes: readonly PidfElement[];
  /** `<dm:person>` elements with an `id` (RFC 4479 §3.2); one without is not carried. */
  readonly persons: readonly PidfIdElement[];
  /** `<dm:device>` elements with an `id` (RFC 4479 §3.4); one without is not carried. */
  readonly devices: readonly PidfIdElement[];
}

/** What a composed document carries besides its tuples. */
export interface PidfExtras {
  readonly notes?: readonly PidfElement[];
  readonly persons?: readonly PidfIdElement[];
  readonly devices?: readonly PidfIdElement[];
}

type Kind = 'tuple' | 'note' | 'person' | 'device';

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

/** A child of the root that is carried, while and after it is scanned. */
interface Kept {
  readonly kind: Kind;
  readonly open: OpenElement;
  /** Index just past its end tag; -1 while open. */
  end: number;
  /** It or a descendant has an unprefixed name (is in the default namespace in scope). */
  usesDefault: boolean;
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

/** The children of the root carried, by local name and namespace. */
function kindOf(name: string, ns: string | undefined): Kind | undefined {
  const local = localOf(name);
  if (ns === PIDF_NS) return local === 'tuple' || local === 'note' ? local : undefined;
  if (ns === PIDF_DATA_MODEL_NS)
    return local === 'person' || local === 'device' ? local : undefined;
  return undefined;
}

/**
 * Namespaces in XML 1.0: what is wrong with the names of a start tag whose own attributes
 * are `own` inside elements `open` (outermost first), or undefined when nothing is.
 */
function namespaceError(
  name: string,
  own: readonly Attribute[],
  open: readonly OpenElement[],
): string | undefined {
  for (const a of own) {
    const p = prefixOf(a.name);
    if (p !== 'xmlns') continue;
    const declared = localOf(a.name);
    // §3: the prefix xmlns "MUST NOT be declared", xml may be declared only to its own
    // name, and "No Prefix Undeclaring": for a prefix "the attribute value MUST NOT be empty".
    if (declared === 'xmlns') return 'the xmlns prefix declared';
    if (declared === 'xml' && a.value !== XML_NS) return 'the xml prefix bound elsewhere';
    if (a.value === '') return `prefix ${declared} declared empty`;
  }
  const declared = (p: string): boolean => {
    if (p === 'xml') return true;
    const decl = `xmlns:${p}`;
    if (own.some((a) => a.name === decl)) return true;
    for (let i = open.length - 1; i >= 0; i--) {
      if (open[i]!.attributes.some((a) => a.name === decl)) return true;
    }
    return false;
  };
  // §5 "Prefix Declared": a prefix other than xml and xmlns must be declared in scope, on
  // elements and on attributes; `xmlns` is no element prefix (§3 "Reserved Prefixes").
  const p = prefixOf(name);
  if (p !== undefined && (p === 'xmlns' || !declared(p))) return `prefix ${p} not declared`;
  for (const a of own) {
    const q = prefixOf(a.name);
    if (q !== undefined && q !== 'xmlns' && !declared(q)) return `prefix ${q} not declared`;
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
  const kept: Kept[] = [];
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
      else if (stack.length === 1 && kept.at(-1)?.open === open) kept.at(-1)!.end = i;
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
    const nsError = namespaceError(name, attributes, stack);
    if (nsError !== undefined) return err(`${nsError} (Namespaces in XML 1.0)`);
    const open: OpenElement = { name, attributes, start, startTagEnd: i };
    const unprefixed = prefixOf(name) === undefined;
    if (root === undefined) {
      root = open;
      if (localOf(name) !== 'presence' || namespaceOf(name, [attributes]) !== PIDF_NS) {
        return err(`the root is not <presence> in ${PIDF_NS} (RFC 3863 §4.1)`);
      }
    } else if (stack.length === 1) {
      const kind = kindOf(name, namespaceOf(name, [attributes, root.attributes]));
      const id = attr(attributes, 'id');
      if (kind === 'tuple' && id === undefined) {
        return err('a <tuple> without id (RFC 3863 §4.1.2)');
      }
      // RFC 4479 §3.2/§3.4: person and device have a required id (their schema's xs:ID);
      // one without is accepted but not carried, as it could not be told from another.
      if (kind === 'note' || (kind !== undefined && id !== undefined)) {
        kept.push({ kind, open, end: close[1] === '/' ? i : -1, usesDefault: unprefixed });
      }
    } else if (unprefixed && kept.at(-1)?.open === stack[1]) {
      kept.at(-1)!.usesDefault = true;
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
  // What each carried element takes from the root (see the file header).
  const inherited = root.attributes.filter(
    (a) => a.name === 'xmlns' || a.name.startsWith('xmlns:') || a.name === 'xml:lang',
  );
  const rootHasDefault = inherited.some((a) => a.name === 'xmlns');
  const standalone = ({ open, end, usesDefault }: Kept): string => {
    const own = new Set(open.attributes.map((a) => a.name));
    const added = inherited.filter((a) => !own.has(a.name)).map((a) => a.raw.trimStart());
    if (usesDefault && !rootHasDefault && !own.has('xmlns')) added.push('xmlns=""');
    const tagNameEnd = open.start + 1 + open.name.length;
    return added.length === 0
      ? x.slice(open.start, end)
      : `${x.slice(open.start, tagNameEnd)} ${added.join(' ')}${x.slice(tagNameEnd, end)}`;
  };
  const withId = (kind: Kind): PidfIdElement[] =>
    kept
      .filter((k) => k.kind === kind)
      .map((k) => ({ id: attr(k.open.attributes, 'id')!, xml: standalone(k) }));
  return ok({
    entity,
    tuples: withId('tuple'),
    notes: kept.filter((k) => k.kind === 'note').map((k) => ({ xml: standalone(k) })),
    persons: withId('person'),
    devices: withId('device'),
  });
}

/** XML 1.0 §2.4/§3.3.3: text safe inside a double-quoted attribute value. */
export function escapeXmlAttribute(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * One PIDF document for `entity` with `tuples` and `extras` (RFC 3863 §4.1; a document
 * without tuples is valid and says nothing is known). Everything comes from `parsePidf`, so
 * each element is checked text that stands alone.
 *
 * The order is that of the PIDF schema in RFC 3863 (`tuple*`, `note*`, then elements of
 * other namespaces), persons before devices. Ids are XML IDs, unique within the whole document
 * (RFC 3863 §4.1.2, RFC 4479 §3): an element whose id an earlier one has is left out.
 */
export function composePidf(
  entity: string,
  tuples: readonly PidfTuple[],
  extras: PidfExtras = {},
): string {
  const ids = new Set<string>();
  const unique = (es: readonly PidfIdElement[]): string[] => {
    const out: string[] = [];
    for (const e of es) {
      if (ids.has(e.id)) continue;
      ids.add(e.id);
      out.push(e.xml);
    }
    return out;
  };
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<presence xmlns="${PIDF_NS}" entity="${escapeXmlAttribute(entity)}">`,
    ...unique(tuples),
    ...(extras.notes ?? []).map((n) => n.xml),
    ...unique(extras.persons ?? []),
    ...unique(extras.devices ?? []),
    '</presence>',
  ];
  return `${lines.join('\n')}\n`;
}
