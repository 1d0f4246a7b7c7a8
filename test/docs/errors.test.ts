/**
 * The thrown-error catalogue and docs/errors.md (STYLE §7): the page lists every code of
 * both catalogues, thrown (ErrorCodes) and wire (WireErrorCodes), each wire code with its
 * status, and nothing else. The catalogues are imported, not scraped; this test lives in test/docs/
 * because a test beside src/base may not import src/sip (layer rule).
 * scripts/check-errors-doc.mjs makes the same check from the sources in `npm run lint`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WireErrorCodes } from '../../src/sip/parser/errors.ts';
import { TRANSPORT_ERROR_CODES } from '../../src/transport/transport.ts';
import { ErrorCodes, SwitchboardError, type ErrorCode } from '../../src/base/errors.ts';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const DOC = resolve(here, '../../docs/errors.md');
const doc = readFileSync(DOC, 'utf8');
/** Whole codes: SB_ERR_PARSE must not count as documented because SB_ERR_PARSE_CSEQ is. */
const documented = new Set(doc.match(/\bSB_ERR_[A-Z0-9_]+/g) ?? []);

const thrown = Object.keys(ErrorCodes) as ErrorCode[];
const wire = Object.keys(WireErrorCodes) as (keyof typeof WireErrorCodes)[];

/**
 * The cells of the table row that documents `code` (first cell \`CODE\`) in the section
 * under `heading`; prettier pads cells, so they are trimmed.
 */
function rowOf(code: string, heading: string): string[] | undefined {
  const start = doc.indexOf(heading);
  assert.ok(start >= 0, `docs/errors.md has a "${heading}" section`);
  const next = doc.indexOf('\n## ', start + heading.length);
  const section = doc.slice(start, next < 0 ? undefined : next);
  for (const line of section.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    if (cells[0] === `\`${code}\``) return cells;
  }
  return undefined;
}

describe('error catalogues and docs/errors.md', () => {
  it('every code is SB_ERR_ + upper-case words', () => {
    for (const code of [...thrown, ...wire]) assert.match(code, /^SB_ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
  });

  it('docs/errors.md mentions every thrown code (ErrorCodes)', () => {
    const missing = thrown.filter((c) => !documented.has(c));
    assert.deepEqual(missing, [], `docs/errors.md lacks ${missing.join(', ')}`);
  });

  it('docs/errors.md mentions every wire code (WireErrorCodes)', () => {
    const missing = wire.filter((c) => !documented.has(c));
    assert.deepEqual(missing, [], `docs/errors.md lacks ${missing.join(', ')}`);
  });

  it('each thrown code has a row in the thrown table with its text', () => {
    for (const code of thrown) {
      const row = rowOf(code, '## Thrown errors');
      assert.ok(row, `no row for ${code}`);
      assert.equal(row[1], ErrorCodes[code], `${code}: meaning`);
    }
  });

  it('each wire code has a row in the wire table with its status and reason', () => {
    for (const code of wire) {
      const row = rowOf(code, '## Wire errors');
      assert.ok(row, `no row for ${code}`);
      const { status, reason } = WireErrorCodes[code];
      assert.equal(row[1], String(status), `${code}: status`);
      assert.equal(row[2], reason, `${code}: reason`);
      assert.equal(row[3], WireErrorCodes[code].text, `${code}: meaning`);
    }
  });

  it('docs/errors.md mentions no code that is in neither catalogue', () => {
    const known = new Set<string>([...thrown, ...wire, ...TRANSPORT_ERROR_CODES]);
    const stale = [...documented].filter((c) => !known.has(c));
    assert.deepEqual(stale, [], `docs/errors.md lists unknown codes ${stale.join(', ')}`);
  });

  it('no code is in both catalogues (STYLE §7: codes are never reused)', () => {
    const both = thrown.filter((c) => Object.hasOwn(WireErrorCodes, c));
    assert.deepEqual(both, []);
  });

  it('SwitchboardError carries its code and the catalogue text', () => {
    const e = new SwitchboardError('SB_ERR_INVALID_STATUS', '700');
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'SwitchboardError');
    assert.equal(e.code, 'SB_ERR_INVALID_STATUS');
    assert.equal(e.message, `${ErrorCodes.SB_ERR_INVALID_STATUS}: 700`);
    assert.equal(
      new SwitchboardError('SB_ERR_HEADER_ABSENT').message,
      ErrorCodes.SB_ERR_HEADER_ABSENT,
    );
  });
});
