/**
 * Malformed SIP input for the live-server fuzz run (fuzz.test.ts), generated with fast-check:
 *
 * - `raw`: arbitrary octets;
 * - `template`: well-formed requests to the server (OPTIONS, REGISTER, INVITE with SDP,
 *   MESSAGE, BYE, CANCEL, ACK, SUBSCRIBE, an unknown method, a response) with byte-level
 *   mutations (flip, delete, insert, truncate, duplicate a range, insert a hostile snippet);
 * - `corpus`: the RFC 4475 / RFC 5118 torture messages (when the corpus is there), mutated
 *   the same way;
 * - `soup`: a start line and a random list of header fields from a dictionary of awkward
 *   values (overlarge numbers, bad escapes, folds, NUL, non-UTF-8, duplicates, compact forms).
 *
 * Every message input keeps its top Via out of the mutations: the Via is written at send time
 * and points back at the sender with `rport` (RFC 3581), so whatever the server answers comes
 * back to the fuzzing socket and never to some other port on loopback (a mutated Via port
 * would otherwise spray answers at whatever else runs on this machine). Request-URIs name the
 * server's domain, example.com, or hosts in 192.0.2.0/24 (TEST-NET-1), never loopback, so the
 * proxy has nothing on this machine to forward to; the send trace checks nothing left
 * loopback at all.
 */
import fc from 'fast-check';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { conformanceDir, readBytes } from '../../conformance/corpus.ts';

/** One input: raw octets, or a message whose top Via line is inserted at send time. */
export type FuzzInput =
  | { readonly kind: 'raw'; readonly bytes: Uint8Array }
  | {
      readonly kind: 'message';
      /** Start line without its line end (may be mutated). */
      readonly head: Uint8Array;
      /** Everything after the top Via line: header fields, empty line, body (mutated). */
      readonly tail: Uint8Array;
      /** False: no Via is inserted (the message has none, or only the ones in `tail`). */
      readonly withVia: boolean;
    };

/** The octets of an input, with `viaLine` (no line end) as its top Via. */
export function assemble(input: FuzzInput, viaLine: string): Uint8Array {
  if (input.kind === 'raw') return input.bytes;
  const via = input.withVia ? Buffer.from(`${viaLine}\r\n`, 'latin1') : Buffer.alloc(0);
  return Buffer.concat([input.head, Buffer.from('\r\n'), via, input.tail]);
}

const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');

/** Header fields after the Via, and body, of well-formed requests to the server. */
const TEMPLATES: readonly { readonly start: string; readonly rest: string }[] = [
  {
    start: 'OPTIONS sip:example.com SIP/2.0',
    rest: 'Max-Forwards: 70\r\nFrom: <sip:fuzz@example.com>;tag=f1\r\nTo: <sip:example.com>\r\nCall-ID: fz-opt\r\nCSeq: 1 OPTIONS\r\nAccept: application/sdp\r\nContent-Length: 0\r\n\r\n',
  },
  {
    start: 'REGISTER sip:example.com SIP/2.0',
    rest: 'Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=r1\r\nTo: <sip:alice@example.com>\r\nCall-ID: fz-reg\r\nCSeq: 7 REGISTER\r\nContact: <sip:alice@192.0.2.10:5060;transport=udp>;expires=600;q=0.5;+sip.instance="<urn:uuid:00000000-0000-1000-8000-000000000001>";reg-id=1\r\nExpires: 600\r\nSupported: path, outbound\r\nAuthorization: Digest username="alice", realm="example.com", nonce="abc", uri="sip:example.com", response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="x"\r\nContent-Length: 0\r\n\r\n',
  },
  {
    start: 'INVITE sip:bob@example.com SIP/2.0',
    rest: 'Max-Forwards: 70\r\nFrom: "Alice" <sip:alice@example.com>;tag=i1\r\nTo: <sip:bob@example.com>\r\nCall-ID: fz-inv\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.10>\r\nRecord-Route: <sip:192.0.2.99;lr>\r\nRoute: <sip:example.com;lr>\r\nContent-Type: application/sdp\r\nContent-Length: 129\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n',
  },
  {
    start: 'MESSAGE sip:bob@example.com SIP/2.0',
    rest: 'Max-Forwards: 70\r\nf: <sip:alice@example.com>;tag=m1\r\nt: <sip:bob@example.com>\r\ni: fz-msg\r\nCSeq: 1 MESSAGE\r\nc: text/plain;charset=utf-8\r\nl: 11\r\n\r\nhello, bob!',
  },
  {
    start: 'BYE sip:bob@192.0.2.20 SIP/2.0',
    rest: 'Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=b1\r\nTo: <sip:bob@example.com>;tag=b2\r\nCall-ID: fz-bye\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n',
  },
  {
    start: 'CANCEL sip:bob@example.com SIP/2.0',
    rest: 'Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=i1\r\nTo: <sip:bob@example.com>\r\nCall-ID: fz-inv\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n',
  },
  {
    start: 'ACK sip:bob@example.com SIP/2.0',
    rest: 'Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=i1\r\nTo: <sip:bob@example.com>;tag=zz\r\nCall-ID: fz-inv\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n',
  },
  {
    start: 'SUBSCRIBE sip:bob@example.com SIP/2.0',
    rest: 'Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=s1\r\nTo: <sip:bob@example.com>\r\nCall-ID: fz-sub\r\nCSeq: 1 SUBSCRIBE\r\nEvent: presence;id=1\r\nExpires: 3600\r\nAccept: application/pidf+xml\r\nContact: <sip:alice@192.0.2.10>\r\nContent-Length: 0\r\n\r\n',
  },
  {
    start: 'FROB sip:example.com SIP/2.0',
    rest: 'Max-Forwards: 1\r\nFrom: <sip:x@example.com>;tag=x1\r\nTo: <sip:example.com>\r\nCall-ID: fz-frob\r\nCSeq: 99 FROB\r\nRequire: 100rel, timer\r\nProxy-Require: foo\r\nContent-Length: 0\r\n\r\n',
  },
  {
    start: 'SIP/2.0 200 OK',
    rest: 'From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>;tag=b\r\nCall-ID: fz-resp\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n',
  },
];

/** The corpus messages split around their top Via (dropped: ours replaces it). */
function corpusSeeds(): { start: Uint8Array; rest: Uint8Array }[] {
  const out: { start: Uint8Array; rest: Uint8Array }[] = [];
  for (const set of ['rfc4475', 'rfc5118']) {
    const dir = join(conformanceDir(), set);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)
      .filter((x) => x.endsWith('.dat'))
      .sort()) {
      const bytes = readBytes(join(dir, f));
      const text = Buffer.from(bytes).toString('latin1');
      const firstEnd = text.indexOf('\r\n');
      if (firstEnd < 0) continue;
      // The first Via line and its folded continuation lines.
      const via = /\r\n(?:via|v)[ \t]*:[^\r\n]*(?:\r\n[ \t][^\r\n]*)*/i.exec(text);
      const rest =
        via === null
          ? text.slice(firstEnd + 2)
          : text.slice(firstEnd + 2, via.index + 2) + text.slice(via.index + via[0].length + 2);
      out.push({ start: enc(text.slice(0, firstEnd)), rest: enc(rest) });
    }
  }
  return out;
}

const SNIPPETS: readonly string[] = [
  '\r\n',
  '\r\n\r\n',
  '\n',
  '\r',
  '\0',
  ' ',
  '\t',
  '\r\n ',
  ':',
  ';',
  ',',
  '<',
  '>',
  '"',
  '\\',
  '%',
  '%00',
  '%zz',
  '=',
  '\u00ff\u00fe',
  'Content-Length: 99999\r\n',
  'Content-Length: -1\r\n',
  'Content-Length: 0\r\n',
  'l: 4294967296\r\n',
  'Via: \r\n',
  'Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKdup\r\n',
  'CSeq: 4294967296 INVITE\r\n',
  'CSeq: 1 OPTIONS\r\n',
  'Call-ID: \r\n',
  'i: dup\r\n',
  'Max-Forwards: -1\r\n',
  'Max-Forwards: 0\r\n',
  'Contact: *\r\n',
  'Contact: <sip:a@192.0.2.1>;expires=abc\r\n',
  'Expires: 99999999999999999999\r\n',
  'Expires: 0\r\n',
  'Require: foo\r\n',
  'Proxy-Require: bar\r\n',
  'To: <sip:example.com>;tag=x\r\n',
  'From: "unterminated <sip:a@example.com>\r\n',
  'Authorization: Digest username="alice", realm="example.com", nonce=""\r\n',
  'Proxy-Authorization: Basic Zm9vOmJhcg==\r\n',
  'Record-Route: <sip:192.0.2.3;lr>\r\n',
  'Path: <sip:192.0.2.4;lr>\r\n',
  'Supported: outbound, path, gruu\r\n',
  'X-Long: ' + 'a'.repeat(2000) + '\r\n',
  ';'.repeat(300),
  'SIP/2.0',
];

/** A mutation; positions are reduced modulo the current length. */
interface Op {
  readonly kind: number;
  readonly at: number;
  readonly byte: number;
  readonly len: number;
  readonly snippet: number;
}

const opArb: fc.Arbitrary<Op> = fc.record({
  kind: fc.integer({ min: 0, max: 5 }),
  at: fc.nat(1 << 16),
  byte: fc.integer({ min: 0, max: 255 }),
  len: fc.integer({ min: 1, max: 64 }),
  snippet: fc.nat(SNIPPETS.length - 1),
});

/** Applies the ops in order. */
function mutate(bytes: Uint8Array, ops: readonly Op[]): Uint8Array {
  const b = [...bytes];
  for (const op of ops) {
    const i = b.length === 0 ? 0 : op.at % b.length;
    switch (op.kind) {
      case 0:
        if (b.length > 0) b[i] = op.byte;
        break;
      case 1:
        b.splice(i, Math.min(op.len % 4 || 1, b.length - i));
        break;
      case 2:
        b.splice(i, 0, op.byte);
        break;
      case 3:
        b.length = i;
        break;
      case 4:
        b.splice(i, 0, ...b.slice(i, i + op.len));
        break;
      default:
        b.splice(i, 0, ...enc(SNIPPETS[op.snippet]!));
        break;
    }
  }
  return Uint8Array.from(b);
}

const opsArb = fc.array(opArb, { minLength: 1, maxLength: 6 });

/** Start-line mutations stay inside the line (no CR or LF is inserted there). */
function mutateLine(line: Uint8Array, ops: readonly Op[]): Uint8Array {
  return mutate(line, ops).filter((c) => c !== 13 && c !== 10);
}

function seedMessages(
  seeds: readonly { start: Uint8Array; rest: Uint8Array }[],
): fc.Arbitrary<FuzzInput> {
  return fc
    .record({
      seed: fc.nat(seeds.length - 1),
      headOps: fc.option(opsArb, { freq: 4 }),
      tailOps: opsArb,
      noVia: fc.integer({ min: 0, max: 19 }),
    })
    .map((r) => {
      const s = seeds[r.seed]!;
      return {
        kind: 'message' as const,
        head: r.headOps === null ? s.start : mutateLine(s.start, r.headOps),
        tail: mutate(s.rest, r.tailOps),
        // One in twenty has no Via of ours: the answer to a request without a usable Via.
        withVia: r.noVia !== 0,
      };
    });
}

const METHODS = ['OPTIONS', 'REGISTER', 'INVITE', 'BYE', 'MESSAGE', 'NOTIFY', 'ACK', 'x!y%z'];
const URIS = [
  'sip:example.com',
  'sip:alice@example.com',
  'sips:bob@example.com;transport=tcp',
  'sip:user;par=u%40x@example.com',
  'tel:+1-201-555-0123',
  'sip:[2001:db8::10]:5070',
  'sip:192.0.2.77:5060;maddr=192.0.2.78',
  'urn:service:sos',
  'sip:%00@example.com',
];

const headerArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...SNIPPETS.filter((s) => s.endsWith('\r\n'))).map((s) => s.slice(0, -2)),
  fc
    .tuple(
      fc.constantFrom('From', 'f', 'To', 't', 'Contact', 'm', 'Route', 'Record-Route'),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom('', ';tag=a', ';expires=0', ';q=2', ';lr'),
    )
    .map(([n, display, p]) => `${n}: "${display}" <sip:u@example.com>${p}`),
  fc
    .tuple(
      fc.constantFrom('CSeq', 'Max-Forwards', 'Expires', 'Content-Length', 'Min-Expires'),
      fc.oneof(fc.bigInt({ min: -5n, max: 1n << 70n }).map(String), fc.constant('')),
    )
    .map(([n, v]) => `${n}: ${v}${n === 'CSeq' ? ' REGISTER' : ''}`),
  fc
    .tuple(fc.constantFrom('Call-ID', 'i', 'Subject', 'X-Fuzz'), fc.string({ maxLength: 60 }))
    .map(([n, v]) => `${n}: ${v}`),
  fc
    .string({ unit: 'grapheme', maxLength: 80 })
    .map((v) => `${'X-Unicode'}: ${Buffer.from(v, 'utf8').toString('latin1')}`),
);

const soupArb: fc.Arbitrary<FuzzInput> = fc
  .record({
    method: fc.constantFrom(...METHODS),
    uri: fc.constantFrom(...URIS),
    version: fc.constantFrom('SIP/2.0', 'SIP/2.0', 'SIP/2.0', 'SIP/3.0', 'sip/2.0', 'SIP/2.0 '),
    headers: fc.array(headerArb, { maxLength: 14 }),
    core: fc.boolean(),
    fold: fc.boolean(),
    body: fc.uint8Array({ maxLength: 300 }),
    withVia: fc.integer({ min: 0, max: 19 }),
  })
  .map((r) => {
    const core = r.core
      ? [
          'Max-Forwards: 70',
          'From: <sip:soup@example.com>;tag=s',
          'To: <sip:example.com>',
          'Call-ID: fz-soup',
          `CSeq: 1 ${r.method}`,
        ]
      : [];
    let head = [...core, ...r.headers].join('\r\n');
    if (r.fold) head = head.replace(/; ?/g, '\r\n  ;');
    return {
      kind: 'message' as const,
      head: enc(`${r.method} ${r.uri} ${r.version}`),
      tail: Buffer.concat([enc(`${head}${head === '' ? '' : '\r\n'}\r\n`), r.body]),
      withVia: r.withVia !== 0,
    };
  });

/** The datagram mix (at most a few kB each). */
export function datagramArb(): fc.Arbitrary<FuzzInput> {
  const corpus = corpusSeeds();
  const templates = TEMPLATES.map((t) => ({ start: enc(t.start), rest: enc(t.rest) }));
  return fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 1500 }).map(raw) },
    { weight: 9, arbitrary: seedMessages(templates) },
    ...(corpus.length > 0 ? [{ weight: 4, arbitrary: seedMessages(corpus) }] : []),
    { weight: 4, arbitrary: soupArb },
  );
}

function raw(bytes: Uint8Array): FuzzInput {
  return { kind: 'raw', bytes };
}

/** Stream-only inputs: framing attacks (endless header section, body that never comes). */
const streamOnlyArb: fc.Arbitrary<FuzzInput> = fc.oneof(
  fc
    .integer({ min: 1000, max: 120_000 })
    .map((n) => raw(enc(`OPTIONS sip:example.com SIP/2.0\r\nX-Endless: ${'a'.repeat(n)}`))),
  fc
    .integer({ min: 1, max: 2000 })
    .map((n) => raw(enc(`OPTIONS sip:example.com SIP/2.0\r\n${'X: y\r\n'.repeat(n)}`))),
  fc.constantFrom('\r\n\r\n', '\r\n', '\r\n\r\n\r\n\r\n', '\n\n').map((s) => raw(enc(s))),
);

/** One TCP stream: 1–4 inputs back to back, written in chunks of the given sizes. */
export interface StreamInput {
  readonly inputs: readonly FuzzInput[];
  readonly chunks: readonly number[];
}

export function streamArb(): fc.Arbitrary<StreamInput> {
  return fc.record({
    inputs: fc.array(fc.oneof({ weight: 8, arbitrary: datagramArb() }, streamOnlyArb), {
      minLength: 1,
      maxLength: 4,
    }),
    chunks: fc.array(fc.integer({ min: 1, max: 4096 }), { minLength: 1, maxLength: 8 }),
  });
}
