/**
 * RFC 5118 "SIP Torture Test Messages for IPv6" against the parser, over datagram
 * framing: every message per its index row (see corpus.ts), then the IPv6 facts
 * the RFC describes (references in brackets, the port-ambiguous form, received=
 * with and without brackets). The as-printed/ variants only have to not throw.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ContactHeader,
  parseMessage,
  type NameAddr,
  type SipMessage,
  type SipRequest,
  type SipUri,
  type Uri,
} from '../../src/sip/index.ts';
import {
  corpusTests,
  parseError,
  parsedMessage,
  readBytes,
  registerRowTests,
  setDir,
  summedFiles,
  verifySums,
  type CorpusRow,
} from './corpus.ts';

const SET = 'rfc5118';

/** Rows whose check fails because of a parser bug, with the reason (none now). */
const TODO: Record<string, string> = {};

function sip(uri: Uri): SipUri {
  assert.equal(uri.kind, 'sip', `expected a SIP URI, got ${uri.kind}`);
  return uri as SipUri;
}

function request(m: SipMessage): SipRequest {
  assert.ok(m.isRequest(), 'expected a request');
  return m;
}

function contact(m: SipMessage): NameAddr {
  const list = m.get(ContactHeader);
  assert.ok(list !== undefined && list.length === 1, 'one Contact');
  assert.notEqual(list[0], '*');
  return list[0] as NameAddr;
}

describe('RFC 5118 IPv6 torture messages', () => {
  corpusTests(SET, (rows: CorpusRow[]) => {
    it('the corpus arrived intact (SHA256SUMS)', () => {
      assert.deepEqual(verifySums(SET), []);
      const summed = summedFiles(SET);
      for (const row of rows) assert.ok(summed.has(`${row.name}.dat`), `${row.name}.dat summed`);
    });

    it('the index lists the 12 messages of the RFC', () => {
      assert.equal(rows.length, 12);
    });

    describe('every message: parse column, status, round trips', () => {
      registerRowTests(rows, TODO);
    });

    it('as-printed/ variants never throw', () => {
      const dir = join(setDir(SET), 'as-printed');
      for (const f of readdirSync(dir).filter((x) => x.endsWith('.dat'))) {
        const bytes = readBytes(join(dir, f));
        for (const framing of ['datagram', 'stream'] as const) {
          assert.doesNotThrow(() => parseMessage(bytes, { framing }), `${f} (${framing})`);
        }
      }
    });

    describe('IPv6 semantics', () => {
      it('ipv6-good (§4.1): [2001:db8::10] in the Request-URI, Via and Contact', () => {
        const m = request(parsedMessage(SET, 'ipv6-good'));
        const u = sip(m.uri);
        assert.equal(u.host, '[2001:db8::10]');
        assert.equal(u.port, undefined);
        assert.equal(m.topVia.host, '[2001:db8::9:1]');
        assert.equal(sip(contact(m).uri).host, '[2001:db8::1]');
      });

      it('ipv6-bad (§4.2): an IPv6 address without [] is rejected with 400', () => {
        const e = parseError(SET, 'ipv6-bad');
        assert.equal(e.status, 400);
        assert.equal(e.code, 'SB_ERR_PARSE_REQUEST_URI');
      });

      it('port-ambiguous (§4.3): [2001:db8::10:5070] is an address without port', () => {
        const u = sip(request(parsedMessage(SET, 'port-ambiguous')).uri);
        assert.equal(u.host, '[2001:db8::10:5070]');
        assert.equal(u.port, undefined);
      });

      it('port-unambiguous (§4.4): [2001:db8::10]:5070 is address plus port 5070', () => {
        const u = sip(request(parsedMessage(SET, 'port-unambiguous')).uri);
        assert.equal(u.host, '[2001:db8::10]');
        assert.equal(u.port, 5070);
      });

      it('via-received-param-with-delim (§4.5): received=[2001:db8::9:255]', () => {
        const v = parsedMessage(SET, 'via-received-param-with-delim').topVia;
        assert.equal(v.received, '[2001:db8::9:255]');
        assert.equal(v.host, '[2001:db8::9:1]');
        assert.equal(v.branch, 'z9hG4bKas3-111');
      });

      it('via-received-param-no-delim (§4.5): received=2001:db8::9:255', () => {
        const v = parsedMessage(SET, 'via-received-param-no-delim').topVia;
        assert.equal(v.received, '2001:db8::9:255');
        assert.equal(v.branch, 'z9hG4bKas3');
      });

      it('mult-ip-in-header (§4.7): IPv6 and IPv4 sent-by values, IPv4 received', () => {
        const via = parsedMessage(SET, 'mult-ip-in-header').via;
        assert.deepEqual(
          via.map((v) => [v.host, v.port, v.received]),
          [
            ['[2001:db8::9:1]', 6050, undefined],
            ['192.0.2.1', undefined, undefined],
            ['[2001:db8::9:255]', undefined, '192.0.2.200'],
          ],
        );
      });

      it('ipv4-mapped-ipv6 (§4.9): [::ffff:192.0.2.10]:19823 in Via, mapped Contact', () => {
        const m = parsedMessage(SET, 'ipv4-mapped-ipv6');
        assert.equal(m.topVia.host, '[::ffff:192.0.2.10]');
        assert.equal(m.topVia.port, 19823);
        assert.equal(sip(contact(m).uri).host, '[::ffff:192.0.2.2]');
        assert.equal(m.body.length, m.contentLength);
      });

      it('ipv6-bug-abnf-3-colons (§4.10): the three-colon form is tolerated', () => {
        const u = sip(request(parsedMessage(SET, 'ipv6-bug-abnf-3-colons')).uri);
        assert.equal(u.host, '[2001:db8:::192.0.2.1]');
      });

      it('ipv6-correct-abnf-2-colons (§4.10): [2001:db8::192.0.2.1]', () => {
        const u = sip(request(parsedMessage(SET, 'ipv6-correct-abnf-2-colons')).uri);
        assert.equal(u.host, '[2001:db8::192.0.2.1]');
      });

      it('ipv6-in-sdp and mult-ip-in-sdp (§4.6, §4.8): the body is Content-Length octets', () => {
        for (const name of ['ipv6-in-sdp', 'mult-ip-in-sdp']) {
          const m = parsedMessage(SET, name);
          assert.equal(m.body.length, m.contentLength, name);
          assert.ok(m.bodyText().includes('IN IP6'), `${name} body has IN IP6`);
        }
      });
    });
  });
});
