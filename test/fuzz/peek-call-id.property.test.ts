/**
 * peekCallId (src/sip/parser/peek-call-id.ts) against the parser, with fast-check: on the
 * golden messages, the RFC 4475/5118 corpus and mutations of them (octets flipped, inserted
 * or deleted where they matter to a header line: colons, white space, line ends, the letters
 * of "Call-ID"), whenever the parser reads a Call-ID the peek gives the same one or none.
 * A worker that steers by the peek and the worker that owns the parse must never disagree.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parseMessage, peekCallId } from '../../src/sip/index.ts';
import { conformanceDir } from '../conformance/corpus.ts';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const SCALE = Math.max(1, Number(process.env.SWITCHBOARD_FUZZ_SCALE ?? '1') || 1);

const folders = [
  resolve(here, '../fixtures/messages/good'),
  resolve(here, '../fixtures/messages/bad'),
  join(conformanceDir(), 'rfc4475'),
  join(conformanceDir(), 'rfc5118'),
];
const inputs: Uint8Array[] = folders
  .filter((d) => existsSync(d))
  .flatMap((d) =>
    readdirSync(d)
      .filter((f) => f.endsWith('.sip') || f.endsWith('.dat'))
      .sort()
      .map((f) => new Uint8Array(readFileSync(join(d, f)))),
  );

function agrees(b: Uint8Array): void {
  const peeked = peekCallId(b);
  for (const framing of ['datagram', 'stream'] as const) {
    const r = parseMessage(b, { framing });
    if (!r.ok) continue;
    let parsed: string | undefined;
    try {
      parsed = r.message.callId;
    } catch {
      continue; // no readable Call-ID: refused wherever it goes
    }
    if (peeked !== undefined) assert.equal(peeked, parsed, new TextDecoder().decode(b));
  }
}

const GRAMMAR = [0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x49, 0x69, 0x43, 0x63, 0x2d, 0x44, 0x80, 0x40];
const edit = fc.record({
  at: fc.nat(),
  op: fc.constantFrom('flip', 'insert', 'delete'),
  byte: fc.oneof(fc.constantFrom(...GRAMMAR), fc.integer({ min: 0, max: 255 })),
});

/** Where the Call-ID header line starts (or 0): edits are aimed at it half of the time. */
function callIdLine(b: Uint8Array): number {
  const text = new TextDecoder('latin1').decode(b).toLowerCase();
  const at = text.search(/\n(call-id|i)[ \t]*:/);
  return at < 0 ? 0 : at;
}

function mutate(
  b: Uint8Array,
  edits: readonly { at: number; op: string; byte: number }[],
  near: boolean,
) {
  const out = [...b];
  const base = near ? callIdLine(b) : 0;
  for (const e of edits) {
    if (out.length === 0) break;
    const at = near ? Math.min(out.length - 1, base + (e.at % 48)) : e.at % out.length;
    if (e.op === 'flip') out[at] = e.byte;
    else if (e.op === 'insert') out.splice(at, 0, e.byte);
    else out.splice(at, 1);
  }
  return new Uint8Array(out);
}

describe('peekCallId agrees with the parser', () => {
  it(`on ${inputs.length} golden and corpus messages`, () => {
    assert.ok(inputs.length > 10);
    let read = 0;
    for (const b of inputs) {
      agrees(b);
      if (peekCallId(b) !== undefined) read++;
    }
    // Most messages have a plain Call-ID: the peek is not giving up everywhere.
    assert.ok(read > inputs.length / 2, `${read} of ${inputs.length}`);
  });

  it('on mutated messages', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: inputs.length - 1 }),
        fc.array(edit, { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        (k, edits, near) => agrees(mutate(inputs[k]!, edits, near)),
      ),
      { numRuns: 3000 * SCALE },
    );
  });
});
