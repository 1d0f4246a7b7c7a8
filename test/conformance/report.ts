/**
 * Prints the per-message tables of docs/conformance.md from a real run of the parser
 * over the corpus (datagram framing):
 *
 *   node --import tsx test/conformance/report.ts > /tmp/tables.md
 *
 * Each row shows the RFC's expectation (index.tsv), what the parser does (accept, or
 * reject with code and status), whether that agrees with the index (`parse` column and
 * the first alternative of `net_udp`), and why, for the cases the RFC leaves open.
 * Not a test: the tests are rfc4475.test.ts and rfc5118.test.ts.
 */
import { parseMessage } from '../../src/sip/index.ts';
import {
  corpusAvailable,
  loadIndex,
  readBytes,
  setDir,
  udpFirstAlternative,
  udpStatusAllows,
  type CorpusRow,
  type CorpusSet,
} from './corpus.ts';

/** Why we do what we do, for the "either" and tolerated cases (and a few notable others). */
const WHY: Readonly<Record<string, string>> = {
  // RFC 4475 §3.1.1: valid messages.
  wsinv:
    'Folds unfolded to one SP; LWS around `:` `/` `;` `=` accepted; `0068` and `0009` read as 68 and 9.',
  intmeth: 'The method is any token; NUL, BEL and DEL inside a quoted display name are kept.',
  esc02: '`RE%47IST%45R` is a token, not REGISTER; `C%6Fntact` is an unknown header kept raw.',
  dblreq:
    'Datagram: the message ends after Content-Length octets; the trailing octets are ignored (RFC 3261 §18.3).',
  mpart01: 'Body framed by Content-Length; NUL and bare LF in the body are kept.',
  unreason: 'The Reason-Phrase is UTF-8 text.',
  noreason: 'Empty Reason-Phrase after the required SP.',
  // RFC 4475 §3.1.2: invalid messages.
  badinv01: 'Via `;;,;,,` has an empty parameter: the Via is critical, so 400.',
  clerr:
    'Datagram: Content-Length 9999 exceeds the octets received. Over a stream the framer waits for them.',
  ncl: 'Content-Length is `1*DIGIT`: `-999` is malformed, 400 (any 4xx is acceptable).',
  scalar02:
    'CSeq above 2**32-1 (RFC 3261 §8.1.1.5). Max-Forwards 300 and the huge Expires alone would be tolerated.',
  scalarlg:
    'CSeq above 2**32-1 fails the response; a response that fails is dropped, as the RFC asks.',
  quotbal:
    'Stricter option: the unterminated quoted display name in To (critical) fails with 400; no closing quote is inferred.',
  ltgtruri:
    'Stricter option: `<sip:...>` is not a Request-URI; 400 rather than stripping the brackets.',
  lwsruri:
    'Stricter option: the Request-Line must be exactly `Method SP Request-URI SP SIP-Version`; 400.',
  lwsstart: 'Stricter option: two SP between Request-Line elements; 400.',
  trws: 'Stricter option: SP after SIP-Version; 400.',
  escruri:
    'Stricter option: URI headers are not allowed in a Request-URI (RFC 3261 §19.1.1 table); 400 rather than ignoring them.',
  baddate:
    'Date is not a critical header and is decoded lazily, so the non-GMT zone does not fail the message (the RFC advises not to reject).',
  regbadct:
    'More liberal at parse time: Contact is not critical, so the message parses; its Contact does not decode (a URI with `?` must be in `<>`), and the registrar answers 400.',
  badaspec:
    'More liberal: the spaces inside `< >` are ignored (RFC 4475 §3.1.2.14 "may ignore the spaces").',
  baddn:
    'Datagram: the header section is accepted without its empty line, then the unquoted display name with a comma fails From (critical): 400. Over a stream the header section never completes.',
  badvers: '505 Version Not Supported, as the RFC asks (the index also tolerates 400).',
  mismatch01: 'CSeq method differs from the request method (RFC 3261 §8.1.1.5): 400.',
  mismatch02:
    'Diverges from the preferred 501: the CSeq check runs at parse time for every method, so 400 (which the RFC also accepts).',
  bigcode:
    'Status-Code must be 3 digits: the response fails (its status field is moot: responses are dropped).',
  // RFC 4475 §3.2-3.4: semantically odd but parseable.
  badbranch:
    'Parses; the bare magic cookie `z9hG4bK` is kept as the branch (transaction matching decides later).',
  insuf:
    'Rejected at parse time: Call-ID, From and To are missing (400). The partial result carries what was read, so a 400 can still be built.',
  unkscm: 'Parses with a Request-URI of kind `other`, so a server can answer 416.',
  novelsc: 'Parses with a Request-URI of kind `other` (`soap.beep`), so a server can answer 416.',
  unksm2: 'Parses; To, From and Contact hold URIs of kind `other`; the registrar rejects later.',
  bext01: 'Parses; Require / Proxy-Require are for the UAS / proxy (420).',
  invut: 'Parses; Content-Type is checked by the UAS (415).',
  regaut01: 'Parses; the unknown Authorization scheme is for the registrar.',
  multi01: 'Duplicate single-valued critical headers (Call-ID, To, From, Max-Forwards, CSeq): 400.',
  mcl01: 'Two Content-Length values: framing is impossible, 400.',
  zeromf: 'Parses; Max-Forwards 0 is for the proxy (483) to act on.',
  cparam01:
    '`unknownparam` after an unbracketed URI is a Contact header parameter (RFC 3261 §20.10).',
  cparam02: '`unknownparam` inside `<>` is a URI parameter.',
  regescrt: 'The Contact URI keeps its escaped `?Route=` header.',
  sdp01: 'Parses; Accept is for the UAS (406).',
  inv2543:
    'More liberal option taken: RFC 2543 syntax (no branch, no From tag, no Max-Forwards, no Content-Length) is accepted; the datagram body is the rest of the datagram.',
  // RFC 5118.
  'ipv6-bad': 'An IPv6 address without `[]` is not a host: 400.',
  'port-ambiguous': '`[2001:db8::10:5070]` is an address without port.',
  'via-received-param-with-delim': '`received=[...]` (outside RFC 3261 ABNF) is tolerated.',
  'ipv6-bug-abnf-3-colons':
    'Tolerated (robustness principle): three colons pass the lenient IPv6 reference check.',
};

interface Outcome {
  readonly accepted: boolean;
  readonly code: string;
  readonly status: string;
  readonly agrees: boolean;
}

function outcome(row: CorpusRow): Outcome {
  let r: ReturnType<typeof parseMessage>;
  try {
    r = parseMessage(readBytes(row.file), { framing: 'datagram' });
  } catch (e) {
    return { accepted: false, code: `THROWS ${String(e)}`, status: '', agrees: false };
  }
  if (r.ok) {
    return { accepted: true, code: '', status: '', agrees: row.parse !== 'reject' };
  }
  const dropped = row.kind === 'response';
  return {
    accepted: false,
    code: r.error.code,
    status: dropped ? `dropped (${r.error.status})` : String(r.error.status),
    agrees: row.parse !== 'accept' && udpStatusAllows(row, r.error.status),
  };
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

function table(set: CorpusSet): string {
  if (!corpusAvailable(set)) return `_${set}: corpus not found at ${setDir(set)}_\n`;
  const lines = [
    '| Message | § | RFC expects | parse | net_udp (first) | Switchboard | Code | Status | Agrees | Why |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of loadIndex(set)) {
    const o = outcome(row);
    lines.push(
      '| ' +
        [
          `\`${row.name}\``,
          row.section,
          row.expected,
          row.parse,
          `\`${cell(udpFirstAlternative(row))}\``,
          o.accepted ? 'accept' : 'reject',
          o.code === '' ? '' : `\`${o.code}\``,
          o.status,
          o.agrees ? 'yes' : '**no**',
          cell(WHY[row.name] ?? ''),
        ].join(' | ') +
        ' |',
    );
  }
  return lines.join('\n') + '\n';
}

process.stdout.write(`### RFC 4475\n\n${table('rfc4475')}\n### RFC 5118\n\n${table('rfc5118')}`);
