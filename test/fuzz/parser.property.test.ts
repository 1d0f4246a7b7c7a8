/**
 * Properties of the message parser and serializer (STYLE §12), with fast-check:
 *
 *   (a) arbitrary octets never make parseMessage throw (datagram and stream framing);
 *   (b) mutated golden messages (flipped, inserted, deleted octets, truncation) never
 *       throw, and fail only with a status a server can answer (400/413/416/420/505/513);
 *       whatever parses re-serializes to a message that parses the same;
 *   (c) generated valid requests and responses parse, and parse(serialize(m)) equals m
 *       (start line, every field's name and value, body), unchanged and after a change.
 *
 * numRuns are bounded so the file runs in a few seconds; SWITCHBOARD_FUZZ_SCALE=20 (say)
 * multiplies them for a longer hunt. A failure prints the seed and the shrunk
 * counterexample; rerun with `{ seed, path }` in fc.assert to reproduce.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  makeField,
  parseMessage,
  parseUri,
  serializeFields,
  serializeHead,
  serializeMessage,
  SipRequest,
  SipResponse,
  type HeaderField,
  type ParseResult,
} from '../../src/sip/index.ts';
import { conformanceDir } from '../conformance/corpus.ts';

const here = import.meta.dirname ?? dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, '../fixtures/messages');

const FRAMINGS = ['datagram', 'stream'] as const;
const SCALE = Math.max(1, Number(process.env.SWITCHBOARD_FUZZ_SCALE ?? '1') || 1);
const runs = (n: number): number => Math.round(n * SCALE);
/** Statuses a parse failure may carry: the ones a server answers a bad request with. */
const ANSWERABLE = new Set([400, 413, 416, 420, 505, 513]);

function bytesOf(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Seeds for mutation: the golden good/ and bad/ messages, and the corpus when it is there. */
function seeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const dir of ['good', 'bad']) {
    const d = join(FIXTURES, dir);
    for (const f of readdirSync(d)
      .filter((x) => x.endsWith('.sip'))
      .sort()) {
      out.push(bytesOf(join(d, f)));
    }
  }
  for (const set of ['rfc4475', 'rfc5118']) {
    const d = join(conformanceDir(), set);
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)
      .filter((x) => x.endsWith('.dat'))
      .sort()) {
      out.push(bytesOf(join(d, f)));
    }
  }
  return out;
}

function parseNoThrow(bytes: Uint8Array, framing: 'datagram' | 'stream'): ParseResult {
  try {
    return parseMessage(bytes, { framing });
  } catch (e) {
    assert.fail(`parseMessage threw (${framing}): ${e instanceof Error ? e.stack : String(e)}`);
  }
}

interface Shape {
  readonly start: string;
  readonly fields: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
}

function shapeOf(r: ParseResult): Shape {
  assert.ok(r.ok, r.ok ? '' : `does not parse: ${r.error.code} ${r.error.detail}`);
  const m = r.message;
  return {
    start: m.startLine(),
    fields: m.fields.map((f) => [f.name, f.value] as const),
    body: m.body,
  };
}

/** Fields without the Content-Length the serializer adds when a message had none. */
function withoutAddedLength(s: Shape, hadLength: boolean): Shape {
  if (hadLength) return s;
  return { ...s, fields: s.fields.filter(([n]) => !/^(content-length|l)$/i.test(n)) };
}

// ---- (b) mutations ----------------------------------------------------------------------

type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly byte: number }
  | { readonly op: 'insert'; readonly at: number; readonly bytes: readonly number[] }
  | { readonly op: 'delete'; readonly at: number; readonly count: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'bare-lf'; readonly at: number };

/** Octets that matter to the grammar, plus any octet. */
const interestingByte = fc.oneof(
  fc.constantFrom(
    0x0d,
    0x0a,
    0x20,
    0x09,
    0x3a,
    0x3b,
    0x2c,
    0x3d,
    0x22,
    0x5c,
    0x3c,
    0x3e,
    0x25,
    0x40,
    0x5b,
    0x5d,
    0x2f,
    0x30,
    0x39,
    0x2d,
    0x00,
    0x7f,
    0x80,
    0xc3,
    0xff,
  ),
  fc.integer({ min: 0, max: 255 }),
);

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), byte: interestingByte }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.array(interestingByte, { minLength: 1, maxLength: 8 }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 16 }),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  // CRLF -> LF at one line end (RFC 3261 §7: senders use CRLF; some send LF).
  fc.record({ op: fc.constant('bare-lf' as const), at: fc.nat() }),
);

function mutate(input: Uint8Array, ops: readonly Mutation[]): Uint8Array {
  let b = Array.from(input);
  for (const m of ops) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.op) {
      case 'flip':
        if (at < b.length) b[at] = m.byte;
        break;
      case 'insert':
        b.splice(at, 0, ...m.bytes);
        break;
      case 'delete':
        b.splice(at, m.count);
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'bare-lf': {
        const crs: number[] = [];
        for (let k = 0; k + 1 < b.length; k++) if (b[k] === 0x0d && b[k + 1] === 0x0a) crs.push(k);
        if (crs.length > 0) b.splice(crs[m.at % crs.length]!, 1);
        break;
      }
    }
  }
  return Uint8Array.from(b);
}

// ---- (c) generated messages -------------------------------------------------------------

const ALPHANUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const chars = (set: string) => fc.constantFrom(...set.split(''));
const str = (set: string, minLength: number, maxLength: number) =>
  fc.string({ unit: chars(set), minLength, maxLength });

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
const token = str(ALPHANUM + "-.!%*_+`'~", 1, 12);
const hex = chars('0123456789ABCDEFabcdef');
const escaped = fc.tuple(hex, hex).map(([a, b]) => `%${a}${b}`);
/** user = 1*( unreserved / escaped / user-unreserved ) */
const user = fc
  .array(fc.oneof(chars(ALPHANUM + "-_.!~*'()&=+$,;?/"), escaped), { minLength: 1, maxLength: 12 })
  .map((a) => a.join(''));
const label = fc
  .tuple(chars(ALPHANUM), str(ALPHANUM + '-', 0, 8), chars(ALPHANUM))
  .map(([a, m, z]) => a + m + z);
const hostname = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), str('abcdefghijklmnopqrstuvwxyz', 2, 6))
  .map(([ls, tld]) => [...ls, tld].join('.'));
const ipv4 = fc.ipV4();
const ipv6ref = fc.ipV6().map((a) => `[${a}]`);
const host = fc.oneof({ weight: 3, arbitrary: hostname }, ipv4, ipv6ref);
const port = fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined });
const hostport = fc.tuple(host, port).map(([h, p]) => (p === undefined ? h : `${h}:${p}`));
/** paramchar = param-unreserved / unreserved / escaped */
const paramText = fc
  .array(fc.oneof(chars(ALPHANUM + "[]/:&+$-_.!~*'()"), escaped), { minLength: 1, maxLength: 10 })
  .map((a) => a.join(''));
const uriParam = fc.oneof(
  fc.constantFrom(';lr', ';transport=tcp', ';user=phone'),
  fc.tuple(paramText, paramText).map(([n, v]) => `;${n}=${v}`),
);
const sipUri = fc
  .record({
    scheme: fc.constantFrom('sip', 'sips', 'SIP'),
    user: fc.option(user, { nil: undefined }),
    hostport,
    params: fc.array(uriParam, { maxLength: 3 }),
  })
  .map(
    (u) =>
      `${u.scheme}:${u.user === undefined ? '' : u.user + '@'}${u.hostport}${u.params.join('')}`,
  );

/** A display name: token words, or a quoted-string with quoted-pairs for `"` and `\`. */
const displayName = fc.oneof(
  fc.array(token, { minLength: 1, maxLength: 3 }).map((ws) => ws.join(' ')),
  fc
    .string({
      unit: fc.oneof(
        { weight: 8, arbitrary: chars(ALPHANUM + ' ,;:<>@!#$&()*+-./=?[]^_`{|}~') },
        { weight: 2, arbitrary: fc.constantFrom('"', '\\') },
        { weight: 1, arbitrary: fc.constantFrom('é', 'ß', '中', '😀') },
      ),
      maxLength: 16,
    })
    .map((s) => '"' + s.replace(/["\\]/g, (c) => '\\' + c) + '"'),
);
const tagParam = token.map((t) => `;tag=${t}`);
const nameAddr = (tag: fc.Arbitrary<string>) =>
  fc
    .tuple(fc.option(displayName, { nil: undefined }), sipUri, tag)
    .map(([dn, uri, t]) => `${dn === undefined ? '' : dn + ' '}<${uri}>${t}`);
const via = fc
  .record({
    transport: fc.constantFrom('UDP', 'TCP', 'TLS', 'SCTP', 'WS', 'WSS', 'udp'),
    sentBy: hostport,
    branch: token,
    extra: fc.array(fc.constantFrom(';rport', ';received=192.0.2.1', ';rport=5060', ';x=y'), {
      maxLength: 2,
    }),
  })
  .map((v) => `SIP/2.0/${v.transport} ${v.sentBy};branch=z9hG4bK${v.branch}${v.extra.join('')}`);
/** callid = word [ "@" word ] */
const word = str(ALPHANUM + '-.!%*_+`\'~()<>:\\"/[]?{}', 1, 16);
const callId = fc
  .tuple(word, fc.option(word, { nil: undefined }))
  .map(([a, b]) => (b === undefined ? a : `${a}@${b}`));
/** Values of unknown headers: visible text without leading or trailing whitespace. */
const headerValue = fc
  .string({
    unit: fc.oneof(
      { weight: 10, arbitrary: chars(ALPHANUM + ' \t!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~') },
      { weight: 1, arbitrary: fc.constantFrom('é', 'ü', '中', '😀') },
    ),
    minLength: 1,
    maxLength: 40,
  })
  .map((s) => s.replace(/^[ \t]+|[ \t]+$/g, ''))
  .filter((s) => s.length > 0);
/** Unknown header names: "X-" keeps them clear of the known names and compact forms. */
const unknownHeader = fc.tuple(
  token.map((t) => `X-${t}`),
  headerValue,
);
const body = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.uint8Array({ maxLength: 200 }),
  fc.string({ maxLength: 80 }).map((s) => new TextEncoder().encode(s)),
);

/** `name` in one of its spellings: canonical, compact, or another letter case. */
const spell = (long: string, compact?: string) =>
  fc.constantFrom(long, long.toLowerCase(), long.toUpperCase(), ...(compact ? [compact] : []));

interface Generated {
  readonly isRequest: boolean;
  readonly method: string;
  readonly uri: string;
  readonly status: number;
  readonly reason: string;
  readonly fields: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
}

const generated: fc.Arbitrary<Generated> = fc
  .record({
    isRequest: fc.boolean(),
    method: fc.oneof(
      fc.constantFrom('INVITE', 'ACK', 'BYE', 'CANCEL', 'OPTIONS', 'REGISTER', 'MESSAGE'),
      token,
    ),
    uri: sipUri,
    status: fc.integer({ min: 100, max: 699 }),
    reason: fc.string({
      unit: fc.oneof(chars(ALPHANUM + ' -.,!'), fc.constantFrom('é', '中')),
      maxLength: 20,
    }),
    vias: fc.array(fc.tuple(spell('Via', 'v'), via), { minLength: 1, maxLength: 3 }),
    from: fc.tuple(spell('From', 'f'), nameAddr(tagParam)),
    to: fc.tuple(spell('To', 't'), nameAddr(fc.oneof(fc.constant(''), tagParam))),
    callId: fc.tuple(spell('Call-ID', 'i'), callId),
    cseq: fc.tuple(spell('CSeq'), fc.integer({ min: 0, max: 0xffffffff })),
    maxForwards: fc.option(
      fc.tuple(spell('Max-Forwards'), fc.integer({ min: 0, max: 255 }).map(String)),
      { nil: undefined },
    ),
    unknown: fc.array(unknownHeader, { maxLength: 4 }),
    lengthName: spell('Content-Length', 'l'),
    body,
    order: fc.nat(),
  })
  .chain((g) => {
    const fields: (readonly [string, string])[] = [
      ...g.vias,
      g.from,
      g.to,
      g.callId,
      [g.cseq[0], `${g.cseq[1]} ${g.method}`],
      ...(g.maxForwards === undefined ? [] : [g.maxForwards]),
      ...g.unknown,
    ];
    // Any order of the fields; Content-Length last or first, as senders do.
    return fc
      .tuple(
        fc.shuffledSubarray(fields, { minLength: fields.length, maxLength: fields.length }),
        fc.boolean(),
      )
      .map(([shuffled, lengthFirst]): Generated => {
        const length: readonly [string, string] = [g.lengthName, String(g.body.length)];
        return {
          isRequest: g.isRequest,
          method: g.method,
          uri: g.uri,
          status: g.status,
          reason: g.reason,
          fields: lengthFirst ? [length, ...shuffled] : [...shuffled, length],
          body: g.body,
        };
      });
  });

function startLineOf(g: Generated): string {
  return g.isRequest ? `${g.method} ${g.uri} SIP/2.0` : `SIP/2.0 ${g.status} ${g.reason}`;
}

function wireOf(g: Generated): Uint8Array {
  const head =
    startLineOf(g) + '\r\n' + g.fields.map(([n, v]) => `${n}: ${v}\r\n`).join('') + '\r\n';
  const h = new TextEncoder().encode(head);
  const out = new Uint8Array(h.length + g.body.length);
  out.set(h);
  out.set(g.body, h.length);
  return out;
}

/** The same message built in code (no wire bytes): the serializer writes it. */
function build(g: Generated): SipRequest | SipResponse {
  const fields: HeaderField[] = g.fields.map(([n, v]) => makeField(n, v));
  if (g.isRequest) {
    const uri = parseUri(g.uri);
    assert.ok(uri.ok, `generated URI ${g.uri} parses`);
    return new SipRequest({
      method: g.method,
      uri: uri.value,
      uriText: g.uri,
      fields,
      body: g.body,
    });
  }
  return new SipResponse({ status: g.status, reason: g.reason, fields, body: g.body });
}

const expectedShape = (g: Generated): Shape => ({
  start: startLineOf(g),
  fields: g.fields,
  body: g.body,
});

// ---- the properties ---------------------------------------------------------------------

describe('parser properties (fast-check)', () => {
  it('(a) arbitrary octets never throw, in both framings', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048, size: 'max' }), (bytes) => {
        for (const framing of FRAMINGS) parseNoThrow(bytes, framing);
      }),
      { numRuns: runs(400) },
    );
  });

  it('(a) arbitrary SIP-looking text never throws', () => {
    const line = fc.oneof(
      fc.constantFrom(
        'INVITE sip:a@b SIP/2.0',
        'SIP/2.0 200 OK',
        'Via: SIP/2.0/UDP h;branch=z9hG4bK1',
        'From: <sip:a@b>;tag=1',
        'To: <sip:a@b>',
        'Call-ID: x',
        'CSeq: 1 INVITE',
        'Content-Length: 3',
        'l: 99',
        ' folded',
        '',
      ),
      fc.string({ maxLength: 40 }),
    );
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 12 }),
        fc.constantFrom('\r\n', '\n', '\r'),
        (lines, eol) => {
          const bytes = new TextEncoder().encode(lines.join(eol));
          for (const framing of FRAMINGS) parseNoThrow(bytes, framing);
        },
      ),
      { numRuns: runs(400) },
    );
  });

  const corpus = seeds();
  it(`(b) mutated golden messages (${corpus.length} seeds) never throw; failures are answerable; what parses round-trips`, () => {
    fc.assert(
      fc.property(
        fc.nat({ max: corpus.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 5 }),
        fc.constantFrom(...FRAMINGS),
        (which, ops, framing) => {
          const bytes = mutate(corpus[which]!, ops);
          const r = parseNoThrow(bytes, framing);
          if (!r.ok) {
            assert.ok(
              ANSWERABLE.has(r.error.status),
              `status ${r.error.status} (${r.error.code}) is not answerable`,
            );
            return;
          }
          const m = r.message;
          // Whatever parsed re-serializes to a message that parses the same.
          const again = parseNoThrow(serializeMessage(m), framing);
          assert.deepEqual(shapeOf(again), shapeOf(r));
          // And after a change, every field but Subject is unchanged.
          const changed = parseNoThrow(serializeMessage(m.set('Subject', 'x')), framing);
          const s = withoutAddedLength(shapeOf(changed), m.has('Content-Length'));
          const before = shapeOf(r);
          assert.equal(s.start, before.start);
          assert.deepEqual(s.body, before.body);
          assert.deepEqual(
            s.fields.filter(([n]) => !/^(subject|s)$/i.test(n)),
            before.fields.filter(([n]) => !/^(subject|s)$/i.test(n)),
          );
          assert.equal(changed.ok && changed.message.getRaw('Subject'), 'x');
        },
      ),
      { numRuns: runs(600) },
    );
  });

  it(`(b) a parsed message's header section is the same written as one slice of its text or field by field, stamped or not`, () => {
    fc.assert(
      fc.property(
        fc.nat({ max: corpus.length - 1 }),
        fc.array(mutation, { minLength: 0, maxLength: 5 }),
        fc.constantFrom(...FRAMINGS),
        (which, ops, framing) => {
          const r = parseNoThrow(mutate(corpus[which]!, ops), framing);
          if (!r.ok) return;
          const m = r.message;
          assert.equal(serializeHead(m), serializeFields(m));
          // The transport's stamp (RFC 3261 §18.2.1) keeps the text form: the top Via changed.
          const k = m.firstAt('via');
          if (k < 0) return;
          const stamped = m.replaceAt(k, `${m.getRaw('Via')};received=192.0.2.7;rport=5062`);
          assert.equal(serializeHead(stamped), serializeFields(stamped));
        },
      ),
      { numRuns: runs(600) },
    );
  });

  it('(c) generated messages parse to exactly their parts', () => {
    fc.assert(
      fc.property(generated, (g) => {
        for (const framing of FRAMINGS) {
          assert.deepEqual(shapeOf(parseNoThrow(wireOf(g), framing)), expectedShape(g));
        }
      }),
      { numRuns: runs(300) },
    );
  });

  it('(c) parse(serialize(m)) equals m, unchanged and after set(Subject)', () => {
    fc.assert(
      fc.property(generated, (g) => {
        // A message built in code, serialized by the serializer.
        const built = build(g);
        assert.deepEqual(
          shapeOf(parseNoThrow(serializeMessage(built), 'stream')),
          expectedShape(g),
        );
        // A parsed message: unchanged (wire bytes) and changed (re-serialized).
        const r = parseNoThrow(wireOf(g), 'datagram');
        const m = (r.ok ? r.message : assert.fail('generated message does not parse')) as
          SipRequest | SipResponse;
        assert.deepEqual(shapeOf(parseNoThrow(serializeMessage(m), 'datagram')), expectedShape(g));
        for (const changed of [m.set('Subject', 'x'), built.set('Subject', 'x')]) {
          const want = expectedShape(g);
          assert.deepEqual(shapeOf(parseNoThrow(serializeMessage(changed), 'stream')), {
            ...want,
            fields: [...want.fields, ['Subject', 'x']],
          });
        }
      }),
      { numRuns: runs(300) },
    );
  });

  it('(d) a message parses the same whether its header section is ASCII or holds UTF-8', () => {
    const head =
      'OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n' +
      'From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\n' +
      'CSeq: 1 OPTIONS\r\n';
    for (const end of ['\r\n\r\n', '\r\n\n', '\n\n', '\n\r\n']) {
      const ascii = `${head}Subject: cafe\r\nContent-Length: 2${end}hi`;
      const utf8 = `${head}Subject: caf\u00e9\r\nContent-Length: 2${end}hi`;
      for (const framing of FRAMINGS) {
        const a = parseNoThrow(new TextEncoder().encode(ascii), framing);
        const u = parseNoThrow(new TextEncoder().encode(utf8), framing);
        assert.equal(
          a.ok,
          u.ok,
          `${JSON.stringify(end)} (${framing}): ascii ${a.ok}, utf8 ${u.ok}`,
        );
      }
    }
    // The same over mutated golden messages: adding a UTF-8 header after the start line
    // does not change whether a message parses.
    const extra = new TextEncoder().encode('X-Utf8: \u00e9\r\n');
    fc.assert(
      fc.property(
        fc.nat({ max: corpus.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (which, ops) => {
          const bytes = mutate(corpus[which]!, ops);
          const lf = bytes.indexOf(0x0a);
          if (lf < 0) return;
          const withUtf8 = new Uint8Array([
            ...bytes.subarray(0, lf + 1),
            ...extra,
            ...bytes.subarray(lf + 1),
          ]);
          const a = parseNoThrow(bytes, 'datagram');
          const u = parseNoThrow(withUtf8, 'datagram');
          assert.equal(a.ok, u.ok, a.ok ? (u.ok ? '' : u.error.code) : a.error.code);
        },
      ),
      { numRuns: runs(300) },
    );
  });
});
