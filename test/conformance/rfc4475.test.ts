/**
 * RFC 4475 "SIP Torture Test Messages" against the parser, over datagram framing.
 *
 * Every message of the corpus index is parsed and checked against its `parse` column
 * (accept / reject / either), its `net_udp` status and, when accepted, the byte-exact
 * round trip (see corpus.ts). Then the specific outcomes the RFC names and the
 * semantic facts it describes that the parser can show (escapes, parameters, folds).
 * docs/conformance.md records the result per message and the divergences we chose.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ContactHeader,
  ViaHeader,
  findParam,
  serializeMessage,
  unescapeUri,
  uriEquals,
  type NameAddr,
  type SipMessage,
  type SipRequest,
  type SipUri,
  type Uri,
} from '../../src/sip/index.ts';
import {
  corpusTests,
  messageBytes,
  parseError,
  parsedMessage,
  readBytes,
  registerRowTests,
  setDir,
  summedFiles,
  verifySums,
  type CorpusRow,
} from './corpus.ts';

const SET = 'rfc4475';

/**
 * Rows whose check fails because of a parser bug, with the reason. Empty: every row
 * passes. A bug found here is reported, and marked here, never fixed in the test.
 */
const TODO: Record<string, string> = {};

function sip(uri: Uri): SipUri {
  assert.equal(uri.kind, 'sip', `expected a SIP URI, got ${uri.kind}`);
  return uri as SipUri;
}

function request(m: SipMessage): SipRequest {
  assert.ok(m.isRequest(), 'expected a request');
  return m;
}

function contacts(m: SipMessage): NameAddr[] {
  const r = m.decode(ContactHeader);
  assert.ok(r !== undefined, 'no Contact');
  assert.ok(r.ok, `Contact does not decode: ${r.ok ? '' : r.error.detail}`);
  return r.value.map((c) => {
    assert.notEqual(c, '*');
    return c as NameAddr;
  });
}

describe('RFC 4475 torture messages', () => {
  corpusTests(SET, (rows: CorpusRow[]) => {
    it('the corpus arrived intact (SHA256SUMS)', () => {
      assert.deepEqual(verifySums(SET), []);
      const summed = summedFiles(SET);
      for (const row of rows) assert.ok(summed.has(`${row.name}.dat`), `${row.name}.dat summed`);
    });

    it('the index lists the 49 messages of the RFC', () => {
      assert.equal(rows.length, 49);
    });

    describe('every message: parse column, status, round trips', () => {
      registerRowTests(rows, TODO);
    });

    describe('outcomes the RFC names', () => {
      it('badvers (§3.1.2.16): 505 Version Not Supported', () => {
        const e = parseError(SET, 'badvers');
        assert.equal(e.status, 505);
        assert.equal(e.code, 'SB_ERR_PARSE_VERSION');
      });

      it('mismatch01 (§3.1.2.17): 400, CSeq method differs from the request method', () => {
        const e = parseError(SET, 'mismatch01');
        assert.equal(e.status, 400);
        assert.equal(e.code, 'SB_ERR_CSEQ_METHOD_MISMATCH');
      });

      it('scalar02 (§3.1.2.4): 400, CSeq above 2**32-1', () => {
        const e = parseError(SET, 'scalar02');
        assert.equal(e.status, 400);
        assert.equal(e.code, 'SB_ERR_PARSE_CSEQ');
        assert.equal(e.header, 'CSeq');
      });

      it('mcl01 (§3.3.9): 400, two Content-Length values', () => {
        const e = parseError(SET, 'mcl01');
        assert.equal(e.status, 400);
        assert.equal(e.header, 'Content-Length');
      });

      it('ncl (§3.1.2.3): 400, negative Content-Length', () => {
        const e = parseError(SET, 'ncl');
        assert.equal(e.status, 400);
        assert.equal(e.code, 'SB_ERR_PARSE_CONTENT_LENGTH');
      });

      it('clerr (§3.1.2.2): 400, Content-Length larger than the datagram', () => {
        const e = parseError(SET, 'clerr');
        assert.equal(e.status, 400);
        assert.equal(e.code, 'SB_ERR_BODY_TRUNCATED');
      });

      it('unkscm (§3.3.2): parses; the Request-URI is of kind other (a server answers 416)', () => {
        const m = request(parsedMessage(SET, 'unkscm'));
        assert.equal(m.uri.kind, 'other');
        assert.equal(m.uri.scheme, 'nobodyknowsthisscheme');
        assert.equal(m.uriText, 'nobodyKnowsThisScheme:totallyopaquecontent');
      });

      it('novelsc (§3.3.3): parses; soap.beep Request-URI is of kind other', () => {
        const m = request(parsedMessage(SET, 'novelsc'));
        assert.equal(m.uri.kind, 'other');
        assert.equal(m.uri.scheme, 'soap.beep');
      });

      it('bigcode (§3.1.2.19): the response is rejected (dropped)', () => {
        const e = parseError(SET, 'bigcode');
        assert.equal(e.code, 'SB_ERR_PARSE_STATUS_CODE');
      });

      it('scalarlg (§3.1.2.5): the response is rejected (dropped)', () => {
        parseError(SET, 'scalarlg');
      });

      it('multi01 (§3.3.8): 400, duplicate single-valued headers', () => {
        const e = parseError(SET, 'multi01');
        assert.equal(e.status, 400);
        assert.equal(e.code, 'SB_ERR_DUPLICATE_HEADER');
      });

      it('insuf (§3.3.1): 400, missing Call-ID, From and To', () => {
        const e = parseError(SET, 'insuf');
        assert.equal(e.status, 400);
        assert.equal(e.code, 'SB_ERR_MISSING_HEADER');
      });

      it('badinv01 (§3.1.2.1): 400 on the Via', () => {
        const e = parseError(SET, 'badinv01');
        assert.equal(e.status, 400);
        assert.equal(e.header, 'Via');
      });
    });

    describe('semantics the corpus describes', () => {
      it('esc01 (§3.1.1.3): %HH escapes decode once, never recursively', () => {
        const m = request(parsedMessage(SET, 'esc01'));
        const ruri = sip(m.uri);
        assert.equal(unescapeUri(ruri.user!), 'sips:user@example.com');
        assert.equal(ruri.host, 'example.net');
        const to = sip(m.to.uri);
        assert.equal(to.user, '%75se%72');
        assert.equal(unescapeUri(to.user!), 'user');
        assert.equal(unescapeUri(sip(m.from.uri).user!), 'I have spaces');
        const [contact, ...more] = contacts(m);
        assert.equal(more.length, 0);
        const curi = sip(contact!.uri);
        assert.equal(unescapeUri(curi.user!), 'caller');
        const nameParam = curi.params.find((p) => unescapeUri(p.name) === 'name');
        assert.ok(nameParam, 'Contact URI has a parameter that unescapes to "name"');
        assert.equal(nameParam.value, 'v%61lue%25%34%31');
        assert.equal(unescapeUri(nameParam.value!), 'value%41');
        assert.ok(curi.params.some((p) => unescapeUri(p.name) === 'lr' && p.value === null));
      });

      it('escnull (§3.1.1.4): %00 and %00%00 are two distinct contacts; no NUL truncation', () => {
        const m = parsedMessage(SET, 'escnull');
        const list = contacts(m);
        assert.equal(list.length, 2);
        const [a, b] = list.map((c) => sip(c.uri));
        assert.equal(unescapeUri(a!.user!), '\u0000');
        assert.equal(unescapeUri(b!.user!), '\u0000\u0000');
        assert.equal(uriEquals(a!, b!), false);
        assert.equal(unescapeUri(sip(m.to.uri).user!), 'null-\u0000-null');
      });

      it('esc02 (§3.1.1.5): RE%47IST%45R is not REGISTER; C%6Fntact is an unknown header', () => {
        const m = request(parsedMessage(SET, 'esc02'));
        assert.equal(m.method, 'RE%47IST%45R');
        assert.notEqual(m.method, 'REGISTER');
        assert.equal(m.count('Contact'), 2);
        const odd = m.fields.filter((f) => f.name === 'C%6Fntact');
        assert.equal(odd.length, 1);
        assert.notEqual(odd[0]!.key, 'contact');
        assert.deepEqual(
          contacts(m).map((c) => sip(c.uri).host),
          ['host1.example.com', 'host3.example.com'],
        );
        assert.equal(m.from.displayName, '%Z%45');
      });

      it('lwsdisp (§3.1.1.6): a display name directly followed by "<"', () => {
        const m = parsedMessage(SET, 'lwsdisp');
        assert.equal(m.from.displayName, 'caller');
      });

      it('longreq (§3.1.1.7): 34 Via values; long display name, tag and Call-ID', () => {
        const m = parsedMessage(SET, 'longreq');
        assert.equal(m.via.length, 34);
        assert.ok(m.to.displayName!.includes('extremeextreme'));
        assert.ok(m.from.tag!.length > 100);
        assert.ok(m.callId.length > 100);
      });

      it('dblreq (§3.1.1.8): the body is empty and the trailing octets are not part of it', () => {
        const m = request(parsedMessage(SET, 'dblreq'));
        assert.equal(m.method, 'REGISTER');
        assert.equal(m.body.length, 0);
        const bytes = readBytes(`${setDir(SET)}/dblreq.dat`);
        const wire = serializeMessage(m);
        assert.ok(wire.length < bytes.length);
        assert.deepEqual(wire, messageBytes({ name: 'dblreq' } as CorpusRow, bytes));
        assert.ok(!new TextDecoder().decode(wire).includes('INVITE'));
      });

      it('semiuri (§3.1.1.9): the Request-URI user holds ";par=u%40example.net"', () => {
        const m = request(parsedMessage(SET, 'semiuri'));
        const u = sip(m.uri);
        assert.equal(u.user, 'user;par=u%40example.net');
        assert.equal(unescapeUri(u.user!), 'user;par=u@example.net');
        assert.equal(u.host, 'example.com');
        assert.equal(u.params.length, 0);
      });

      it('transports (§3.1.1.10): Via transports UDP, SCTP, TLS, UNKNOWN, TCP', () => {
        const m = parsedMessage(SET, 'transports');
        assert.deepEqual(
          m.via.map((v) => v.transport),
          ['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP'],
        );
      });

      it('mpart01 (§3.1.1.11): the body is Content-Length octets, NUL and bare LF intact', () => {
        const m = parsedMessage(SET, 'mpart01');
        const bytes = readBytes(`${setDir(SET)}/mpart01.dat`);
        assert.equal(m.contentLength, 553);
        assert.equal(m.body.length, m.contentLength);
        assert.deepEqual(m.body, bytes.subarray(bytes.length - m.body.length));
        assert.ok(m.body.includes(0), 'body has a NUL');
      });

      it('noreason (§3.1.1.13): empty Reason-Phrase', () => {
        const m = parsedMessage(SET, 'noreason');
        assert.ok(m.isResponse());
        assert.equal(m.status, 100);
        assert.equal(m.reason, '');
      });

      it('unreason (§3.1.1.12): UTF-8 Reason-Phrase', () => {
        const m = parsedMessage(SET, 'unreason');
        assert.ok(m.isResponse());
        assert.equal(m.status, 200);
        assert.ok(
          [...m.reason].some((ch) => ch.charCodeAt(0) > 0x7f),
          'reason holds non-ASCII text',
        );
      });

      it('cparam01 (§3.3.12): unknownparam is a Contact header param, not a URI param', () => {
        const [c] = contacts(parsedMessage(SET, 'cparam01'));
        assert.ok(findParam(c!.params, 'unknownparam'), 'header param');
        assert.equal(findParam(sip(c!.uri).params, 'unknownparam'), undefined);
      });

      it('cparam02 (§3.3.13): unknownparam is a URI param inside <>', () => {
        const [c] = contacts(parsedMessage(SET, 'cparam02'));
        assert.ok(findParam(sip(c!.uri).params, 'unknownparam'), 'URI param');
        assert.equal(findParam(c!.params, 'unknownparam'), undefined);
      });

      it('regescrt (§3.3.14): the Contact URI keeps the escaped Route header', () => {
        const m = parsedMessage(SET, 'regescrt');
        assert.equal(m.fields.find((f) => f.key === 'contact')?.name, 'M');
        const [c] = contacts(m);
        const route = findParam(sip(c!.uri).headers, 'Route');
        assert.ok(route, 'URI header Route');
        assert.equal(route.value, '%3Csip:sip.example.com%3E');
        assert.equal(unescapeUri(route.value!), '<sip:sip.example.com>');
      });

      it('regbadct (§3.1.2.13): parses; the unbracketed Contact with a header does not decode', () => {
        const m = parsedMessage(SET, 'regbadct');
        const r = m.decode(ContactHeader);
        assert.ok(r !== undefined && !r.ok, 'Contact is malformed (the registrar answers 400)');
      });

      it('badaspec (§3.1.2.14): spaces inside <> are ignored', () => {
        const m = parsedMessage(SET, 'badaspec');
        assert.equal(m.to.displayName, 'Watson, Thomas');
        assert.equal(sip(m.to.uri).host, 'example.org');
        assert.equal(sip(m.to.uri).user, 't.watson');
      });

      it('inv2543 (§3.4.1): no Max-Forwards, no Content-Length, no branch', () => {
        const m = parsedMessage(SET, 'inv2543');
        assert.equal(m.maxForwards, undefined);
        assert.equal(m.contentLength, undefined);
        assert.equal(m.topVia.branch, undefined);
        assert.ok(m.body.length > 0, 'the body is the rest of the datagram');
      });

      it('wsinv (§3.1.1.1): folded values, LWS around separators, compact names', () => {
        const m = parsedMessage(SET, 'wsinv');
        assert.equal(m.to.tag, '1918181833n');
        assert.deepEqual(m.cseq, { seq: 9, method: 'INVITE' });
        assert.equal(m.maxForwards, 68);
        assert.equal(m.from.displayName, 'J Rosenberg \\"');
        assert.equal(m.from.tag, '98asjd8');
        const vField = m.fields.find((f) => f.name === 'v');
        assert.ok(vField, 'the v: field');
        const vr = ViaHeader.parse(vField.value);
        assert.ok(vr.ok, 'v: decodes');
        assert.equal(vr.value.length, 2);
        assert.deepEqual(
          vr.value.map((v) => [v.transport, v.host, v.branch]),
          [
            ['TCP', 'spindle.example.com', 'z9hG4bK9ikj8'],
            ['UDP', '192.168.255.111', 'z9hG4bK30239'],
          ],
        );
        assert.equal(m.via.length, 3);
        assert.equal(m.getRaw('NewFangledHeader'), 'newfangled value continued newfangled value');
        assert.equal(m.getRaw('UnknownHeaderWithUnusualValue'), ';;,,;;,;');
        assert.equal(m.getRaw('Subject'), '');
        const [c] = contacts(m);
        assert.equal(c!.displayName, 'Quoted string ""');
        assert.equal(findParam(c!.params, 'newparam')?.value, 'newvalue');
        assert.equal(findParam(c!.params, 'q')?.value, '0.33');
      });

      it("intmeth (§3.1.1.2): the method token with !*+`.%'~ is accepted", () => {
        const m = request(parsedMessage(SET, 'intmeth'));
        assert.equal(m.method, "!interesting-Method0123456789_*+`.%indeed'~");
        assert.equal(m.cseq.method, m.method);
        assert.equal(m.to.displayName, 'BEL:\u0007 NUL:\u0000 DEL:\u007f');
        assert.equal(m.maxForwards, 255);
        assert.equal(m.topVia.transport, 'TCP');
        assert.equal(sip(m.uri).host, 'example.com');
      });

      it('badbranch (§3.2.1): the bare magic cookie is kept as the branch', () => {
        const m = parsedMessage(SET, 'badbranch');
        assert.equal(m.topVia.branch, 'z9hG4bK');
      });

      it('zeromf (§3.3.11): Max-Forwards 0 parses', () => {
        assert.equal(parsedMessage(SET, 'zeromf').maxForwards, 0);
      });

      it('bcast (§3.3.10): the second Via sent-by is the broadcast address', () => {
        const m = parsedMessage(SET, 'bcast');
        assert.equal(m.via[1]!.host, '255.255.255.255');
      });

      it('unksm2 (§3.3.4): unknown schemes in To, From and Contact parse as kind other', () => {
        const m = parsedMessage(SET, 'unksm2');
        assert.equal(m.to.uri.kind, 'other');
        assert.equal(m.from.uri.kind, 'other');
        assert.equal(contacts(m)[0]!.uri.kind, 'other');
      });
    });
  });
});
