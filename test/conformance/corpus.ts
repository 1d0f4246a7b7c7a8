/**
 * The RFC 4475 / RFC 5118 torture corpus (see ../shared/conformance/README.md):
 * where it is, whether it arrived intact (SHA256SUMS), and its index.tsv rows.
 *
 * The corpus lives outside the repository, next to it: `<repo>/../shared/conformance`,
 * or wherever SWITCHBOARD_CONFORMANCE_DIR points. In CI a missing corpus fails the
 * conformance tests; elsewhere they skip with a loud warning (see `corpusTests`).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  parseMessage,
  serializeMessage,
  type ParseResult,
  type SipMessage,
  type SipParseError,
} from '../../src/sip/index.ts';

export type CorpusSet = 'rfc4475' | 'rfc5118';

/** What the RFC expects of a message, per index.tsv. */
export type Expected =
  'valid' | 'invalid-must-reject' | 'invalid-may-accept' | 'valid-but-semantic-error';

/** One row of index.tsv. */
export interface CorpusRow {
  /** File stem: `<name>.dat`. */
  readonly name: string;
  /** RFC section, e.g. 3.1.1.1. */
  readonly section: string;
  readonly kind: 'request' | 'response';
  readonly expected: Expected;
  /** The reaction the RFC describes, in words. */
  readonly reaction: string;
  /** What a parser may do: accept (must parse), reject (must fail), either. */
  readonly parse: 'accept' | 'reject' | 'either';
  /** Reaction over UDP: alternatives, best first, separated by `~`; each a `|` list. */
  readonly netUdp: string;
  readonly netTcp: string;
  readonly checks: string;
  readonly title: string;
  readonly notes: string;
  /** Absolute path of the .dat file. */
  readonly file: string;
}

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));

/** The corpus folder: $SWITCHBOARD_CONFORMANCE_DIR, else `<repo>/../shared/conformance`. */
export function conformanceDir(): string {
  const env = process.env.SWITCHBOARD_CONFORMANCE_DIR;
  if (env !== undefined && env !== '') return resolve(env);
  return resolve(here, '../../../shared/conformance');
}

/** The folder of one set (`<corpus>/rfc4475`), whether or not it exists. */
export function setDir(set: CorpusSet): string {
  return join(conformanceDir(), set);
}

/** True when the set's index.tsv is there. */
export function corpusAvailable(set: CorpusSet): boolean {
  return existsSync(join(setDir(set), 'index.tsv'));
}

const COLUMNS = [
  'name',
  'section',
  'kind',
  'expected',
  'reaction',
  'parse',
  'net_udp',
  'net_tcp',
  'checks',
  'title',
  'notes',
] as const;

/** Parses index.tsv text into rows; throws on a malformed index (a corpus problem, not a test). */
export function parseIndex(text: string, dir: string): CorpusRow[] {
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const header = lines.shift()?.split('\t') ?? [];
  const col = new Map(header.map((h, i) => [h, i]));
  for (const c of COLUMNS) {
    if (!col.has(c)) throw new Error(`index.tsv in ${dir} lacks the column ${c}`);
  }
  return lines.map((line, n) => {
    const cells = line.split('\t');
    const get = (c: (typeof COLUMNS)[number]): string => cells[col.get(c)!] ?? '';
    const kind = get('kind');
    const parse = get('parse');
    if (kind !== 'request' && kind !== 'response') {
      throw new Error(`index.tsv line ${n + 2}: kind ${JSON.stringify(kind)}`);
    }
    if (parse !== 'accept' && parse !== 'reject' && parse !== 'either') {
      throw new Error(`index.tsv line ${n + 2}: parse ${JSON.stringify(parse)}`);
    }
    return {
      name: get('name'),
      section: get('section'),
      kind,
      expected: get('expected') as Expected,
      reaction: get('reaction'),
      parse,
      netUdp: get('net_udp'),
      netTcp: get('net_tcp'),
      checks: get('checks'),
      title: get('title'),
      notes: get('notes'),
      file: join(dir, `${get('name')}.dat`),
    };
  });
}

/** The rows of a set's index.tsv. */
export function loadIndex(set: CorpusSet): CorpusRow[] {
  const dir = setDir(set);
  return parseIndex(readFileSync(join(dir, 'index.tsv'), 'utf8'), dir);
}

/** The exact bytes of a corpus file. */
export function readBytes(file: string): Uint8Array {
  const b = readFileSync(file);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Checks every file listed in the set's SHA256SUMS. Returns one line per problem
 * (missing or altered file); empty when the corpus arrived intact.
 */
export function verifySums(set: CorpusSet): string[] {
  const dir = setDir(set);
  const problems: string[] = [];
  const sums = readFileSync(join(dir, 'SHA256SUMS'), 'utf8');
  for (const line of sums.split(/\r?\n/)) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m === null) {
      if (line.trim() !== '') problems.push(`unreadable SHA256SUMS line ${JSON.stringify(line)}`);
      continue;
    }
    const [, want, rel] = m;
    const path = join(dir, rel!);
    if (!existsSync(path)) {
      problems.push(`${rel}: missing`);
      continue;
    }
    const got = createHash('sha256').update(readFileSync(path)).digest('hex');
    if (got !== want) problems.push(`${rel}: sha256 ${got}, expected ${want}`);
  }
  return problems;
}

/** The names listed in SHA256SUMS (relative paths). */
export function summedFiles(set: CorpusSet): Set<string> {
  const text = readFileSync(join(setDir(set), 'SHA256SUMS'), 'utf8');
  const out = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^[0-9a-f]{64} [ *](.+)$/.exec(line);
    if (m !== null) out.add(m[1]!);
  }
  return out;
}

/**
 * What a rejection must answer over UDP: the first alternative of `net_udp`
 * (before `~`), read as a `|` list. Plain statuses (`400`, `505`) and classes
 * (`4xx`) constrain the status; `drop` means any rejection will do (a response
 * is never answered); `final` admits any final status except the `!NNN` ones.
 */
export function udpStatusAllows(row: CorpusRow, status: number): boolean {
  const first = row.netUdp.split('~')[0]!.trim();
  const parts = first
    .split('|')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const excluded = new Set(parts.filter((p) => p.startsWith('!')).map((p) => Number(p.slice(1))));
  if (excluded.has(status)) return false;
  for (const p of parts) {
    if (/^\d{3}$/.test(p) && Number(p) === status) return true;
    if (/^\dxx$/.test(p) && Math.floor(status / 100) === Number(p[0])) return true;
    if (p === 'drop') return true;
    if (p === 'final' && status >= 200 && status <= 699) return true;
  }
  return false;
}

/** The human-readable first alternative of net_udp, for messages. */
export function udpFirstAlternative(row: CorpusRow): string {
  return row.netUdp.split('~')[0]!.trim();
}

/**
 * Registers the tests for one set when its corpus is there. When it is not: in CI
 * (CI=true) one failing test says where it was expected; elsewhere a loud warning
 * and one skipped test.
 */
export function corpusTests(set: CorpusSet, register: (rows: CorpusRow[]) => void): void {
  if (corpusAvailable(set)) {
    register(loadIndex(set));
    return;
  }
  const where = setDir(set);
  const msg =
    `conformance corpus not found: ${where}/index.tsv ` +
    `(check out the shared corpus next to the repository, or set SWITCHBOARD_CONFORMANCE_DIR)`;
  if (process.env.CI === 'true') {
    it(`${set} corpus is present`, () => {
      assert.fail(msg);
    });
  } else {
    console.warn(`\n!!! ${msg}\n!!! the ${set} conformance tests are SKIPPED\n`);
    it(`${set} corpus is present`, { skip: msg }, () => {});
  }
}

// ---- checks shared by rfc4475.test.ts and rfc5118.test.ts ---------------------------------

/** Parses a corpus file the way a UDP server would (one datagram). Never throws past here. */
export function parseDatagram(bytes: Uint8Array): ParseResult {
  return parseMessage(bytes, { framing: 'datagram' });
}

/**
 * The bytes of the message itself: the whole file, except for dblreq, whose datagram
 * carries trailing octets after a complete message (RFC 3261 §18.3: ignored).
 */
export function messageBytes(row: CorpusRow, bytes: Uint8Array): Uint8Array {
  if (row.name !== 'dblreq') return bytes;
  const text = new TextDecoder('latin1').decode(bytes);
  const end = text.indexOf('\r\n\r\n');
  assert.ok(end > 0, 'dblreq has an empty line');
  return bytes.subarray(0, end + 4); // Content-Length: 0
}

/** Raw text of every field but Max-Forwards, for the change round trip. */
function rawsWithoutMaxForwards(m: SipMessage): (string | undefined)[] {
  return m.fields.filter((f) => f.key !== 'max-forwards').map((f) => f.raw);
}

/**
 * One test per row: the `parse` column (accept → ok, reject → error, either → no
 * exception), the status of a rejection against the first alternative of `net_udp`,
 * the byte-exact round trip of an accepted message and the round trip after a change.
 * `todo` marks rows whose failure is a known parser bug (reported, not fixed here).
 */
export function registerRowTests(rows: readonly CorpusRow[], todo: Record<string, string>): void {
  for (const row of rows) {
    const reason = todo[row.name];
    it(
      `${row.name} (§${row.section}, ${row.expected}, parse=${row.parse}): ${row.title}`,
      reason === undefined ? {} : { todo: reason },
      () => {
        const bytes = readBytes(row.file);
        let r: ParseResult | undefined;
        assert.doesNotThrow(() => {
          r = parseDatagram(bytes);
        }, `${row.name}: parseMessage threw`);
        r = r!;
        if (row.parse === 'accept') {
          assert.ok(r.ok, `${row.name} must parse, got ${r.ok ? '' : describeError(r.error)}`);
        } else if (row.parse === 'reject') {
          assert.ok(!r.ok, `${row.name} must be rejected, but it parsed`);
        }
        if (!r.ok) {
          assert.ok(
            udpStatusAllows(row, r.error.status),
            `${row.name}: rejected with ${r.error.status} (${r.error.code}); ` +
              `net_udp allows ${udpFirstAlternative(row)}`,
          );
          return;
        }
        const m = r.message;
        assert.equal(m.isRequest(), row.kind === 'request', `${row.name} is a ${row.kind}`);

        // Byte-exact round trip of the unchanged message.
        const wire = messageBytes(row, bytes);
        assert.deepEqual(serializeMessage(m), wire, `${row.name}: serialize(parse(x)) !== x`);

        // After a change every other field keeps its raw text.
        const changed = m.set('Max-Forwards', '10');
        const again = parseDatagram(serializeMessage(changed));
        assert.ok(again.ok, `${row.name}: the changed message does not parse`);
        const m2 = again.message;
        assert.equal(m2.maxForwards, 10);
        assert.equal(m2.startLine(), m.startLine());
        assert.deepEqual(m2.body, m.body);
        let after = rawsWithoutMaxForwards(m2);
        if (!m.has('Content-Length')) {
          // The serializer adds Content-Length where it was missing (RFC 3261 §20.14).
          assert.equal(m2.contentLength, m.body.length);
          after = m2.fields
            .filter((f) => f.key !== 'max-forwards' && f.key !== 'content-length')
            .map((f) => f.raw);
        }
        assert.deepEqual(after, rawsWithoutMaxForwards(m));
      },
    );
  }
}

/** `400 Bad Request: detail (CODE)`, the one-line form the CLI prints. */
export function describeError(e: SipParseError): string {
  return `${e.status} ${e.reason}: ${e.detail} (${e.code})`;
}

/**
 * Parses a corpus message by name and returns it (asserting that it parses), for the
 * semantic checks.
 */
export function parsedMessage(set: CorpusSet, name: string): SipMessage {
  const r = parseDatagram(readBytes(join(setDir(set), `${name}.dat`)));
  assert.ok(r.ok, `${name} must parse, got ${r.ok ? '' : describeError(r.error)}`);
  return r.message;
}

/** Parses a corpus message by name and returns the error (asserting that it is rejected). */
export function parseError(set: CorpusSet, name: string): SipParseError {
  const r = parseDatagram(readBytes(join(setDir(set), `${name}.dat`)));
  assert.ok(!r.ok, `${name} must be rejected, but it parsed`);
  return r.error;
}

/**
 * The wire-error catalogue, for src/base/errors.test.ts: a unit test under src/base obeys
 * the base layer's import rule (dependency-cruiser `layer-base`), so it reaches the sip
 * layer's catalogue through this test helper.
 */
