import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseMessage } from './parse-message.ts';
import {
  peekCallId,
  peekNewWithoutCredentials,
  peekUnauthenticatedRegister,
} from './peek-call-id.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function request(callIdLines: string, extra = ''): Uint8Array {
  return enc(
    'OPTIONS sip:bob@example.com SIP/2.0\r\n' +
      'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n' +
      'From: <sip:alice@example.com>;tag=a\r\n' +
      'To: <sip:bob@example.com>\r\n' +
      callIdLines +
      'CSeq: 1 OPTIONS\r\n' +
      'Max-Forwards: 70\r\n' +
      extra +
      'Content-Length: 0\r\n\r\n',
  );
}

/** What the parser makes of the same bytes (the value peekCallId must match). */
function parsedCallId(b: Uint8Array): string | undefined {
  const r = parseMessage(b);
  if (!r.ok) return undefined;
  try {
    return r.message.callId;
  } catch {
    return undefined;
  }
}

describe('peekCallId', () => {
  for (const [name, lines, want] of [
    ['the long name', 'Call-ID: abc@192.0.2.1\r\n', 'abc@192.0.2.1'],
    ['any case', 'cAlL-iD: abc\r\n', 'abc'],
    ['the compact form i', 'i: xyz@h\r\n', 'xyz@h'],
    ['the compact form in capitals', 'I:xyz\r\n', 'xyz'],
    ['white space around the colon and after the value', 'Call-ID \t:  abc \t\r\n', 'abc'],
  ] as const) {
    it(`reads ${name}, as the parser does`, () => {
      const b = request(lines);
      assert.equal(peekCallId(b), want);
      assert.equal(parsedCallId(b), want);
    });
  }

  it('reads bare LF line ends and CRLFs before the start line (RFC 3261 §7.5)', () => {
    const b = enc('\r\n\r\nOPTIONS sip:b@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\ni: q\n\n');
    assert.equal(peekCallId(b), 'q');
  });

  it('reads a response', () => {
    const b = enc('SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: r1\r\n\r\n');
    assert.equal(peekCallId(b), 'r1');
  });

  for (const [name, b] of [
    ['no Call-ID', request('')],
    ['a folded value (RFC 3261 §7.3.1)', request('Call-ID: abc\r\n def\r\n')],
    ['a non-ASCII value', request('Call-ID: caf\u00e9\r\n')],
    ['an empty value', request('Call-ID:   \r\n')],
    ['a header that only starts like Call-ID', request('Call-IDs: abc\r\n')],
    ['a header named i-something', request('ix: abc\r\n')],
    ['a start line alone', enc('OPTIONS sip:b@h SIP/2.0')],
    ['a value cut off', enc('OPTIONS sip:b@h SIP/2.0\r\nCall-ID: abc')],
    ['nothing', new Uint8Array(0)],
  ] as const) {
    it(`gives undefined for ${name}`, () => {
      assert.equal(peekCallId(b), undefined);
    });
  }

  it('does not read past the empty line', () => {
    const b = enc(
      'MESSAGE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 14\r\n\r\nCall-ID: body\r\n',
    );
    assert.equal(peekCallId(b), undefined);
  });

  it('takes the first of two Call-ID headers (the parser refuses the message)', () => {
    const b = request('Call-ID: one\r\ni: two\r\n');
    assert.equal(peekCallId(b), 'one');
    assert.equal(parsedCallId(b), undefined);
  });

  it('reads no further than maxHeaderBytes', () => {
    const b = request('Call-ID: abc\r\n');
    assert.equal(peekCallId(b, 40), undefined);
  });
});

describe('peekUnauthenticatedRegister', () => {
  const register = (extra: string, method = 'REGISTER', end = '\r\n'): Uint8Array =>
    enc(
      `${method} sip:example.com SIP/2.0\r\n` +
        'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n' +
        'From: <sip:alice@example.com>;tag=a\r\n' +
        'To: <sip:alice@example.com>\r\n' +
        'Call-ID: r1@192.0.2.1\r\n' +
        `CSeq: 1 ${method}\r\n` +
        extra +
        'Content-Length: 0\r\n' +
        end,
    );
  const auth =
    'Digest username="alice", realm="example.com", nonce="n", uri="sip:example.com", response="0"';
  for (const [name, bytes, want] of [
    ['a REGISTER without credentials', register(''), true],
    [
      'Proxy-Authorization is not what a registrar reads',
      register(`Proxy-Authorization: ${auth}\r\n`),
      true,
    ],
    [
      'Authorization-Info is another header',
      register('Authorization-Info: nextnonce="x"\r\n'),
      true,
    ],
    ['with Authorization', register(`Authorization: ${auth}\r\n`), false],
    [
      'Authorization in any case, white space before the colon',
      register(`aUTHORIZATION \t: ${auth}\r\n`),
      false,
    ],
    ['another method', register('', 'OPTIONS'), false],
    ['a method in the wrong case', register('', 'register'), false],
    ['a header section that does not end', register('', 'REGISTER', ''), false],
    ['a response', enc('SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n'), false],
    ['nothing', enc(''), false],
  ] as const) {
    it(`${name}: ${want}`, () => assert.equal(peekUnauthenticatedRegister(bytes), want));
  }

  it('never says yes to a message the parser reads as anything but a REGISTER without Authorization', () => {
    let seed = 11;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const pieces = [
      `Authorization: ${auth}\r\n`,
      'authorization:x\r\n',
      ' Authorization: folded\r\n',
      'Authorization : x\r\n',
      'X-Authorization: y\r\n',
      'Subject: Authorization: no\r\n',
      '\tcontinued\r\n',
      'Contact: <sip:alice@192.0.2.1>\r\n',
      '\n',
      '\r\n',
    ];
    for (let i = 0; i < 3000; i++) {
      let extra = '';
      for (let k = rnd(4); k > 0; k--) extra += pieces[rnd(pieces.length)];
      const b = register(extra, rnd(5) === 0 ? 'OPTIONS' : 'REGISTER');
      if (!peekUnauthenticatedRegister(b)) continue;
      const r = parseMessage(b);
      if (!r.ok) continue; // the reader answers 400 itself: no state either
      assert.ok(r.message.isRequest() && r.message.method === 'REGISTER', JSON.stringify(extra));
      assert.equal(r.message.getRaw('Authorization'), undefined, JSON.stringify(extra));
    }
  });
});

describe('peekNewWithoutCredentials', () => {
  const msg = (method: string, to: string, extra = '', end = '\r\n'): Uint8Array =>
    enc(
      `${method} sip:bob@example.com SIP/2.0\r\n` +
        'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n' +
        'From: <sip:alice@example.com>;tag=a\r\n' +
        to +
        'Call-ID: n1@192.0.2.1\r\n' +
        `CSeq: 1 ${method}\r\n` +
        extra +
        'Content-Length: 0\r\n' +
        end,
    );
  const to = 'To: <sip:bob@example.com>\r\n';
  const auth =
    'Digest username="alice", realm="example.com", nonce="n", uri="sip:bob@example.com", response="0"';
  for (const [name, bytes, want] of [
    ['an INVITE outside any dialog', msg('INVITE', to), true],
    ['a MESSAGE', msg('MESSAGE', to), true],
    ['an extension method', msg('FOO.BAR', to), true],
    ['the compact form t', msg('OPTIONS', 't:<sip:bob@example.com>\r\n'), true],
    ['a To tag: in a dialog', msg('INVITE', 'To: <sip:bob@example.com>;tag=b\r\n'), false],
    ['a To tag in any case, spaced', msg('BYE', 'to : <sip:bob@x> ; TAG = b\r\n'), false],
    ['a compact To with a tag', msg('BYE', 't: sip:bob@x;tag=b\r\n'), false],
    ['"tag" anywhere in To (in doubt)', msg('INVITE', 'To: "Stage" <sip:bob@x>\r\n'), false],
    ['Proxy-Authorization', msg('INVITE', to, `Proxy-Authorization: ${auth}\r\n`), false],
    ['Authorization, any case', msg('REGISTER', to, `aUTHORIZATION : ${auth}\r\n`), false],
    ['Authorization-Info is another header', msg('OPTIONS', to, 'Authorization-Info: x\r\n'), true],
    ['an ACK', msg('ACK', to), false],
    ['a CANCEL', msg('CANCEL', to), false],
    ['a method in another case is another method', msg('ack', to), true],
    ['no To', msg('OPTIONS', ''), false],
    ['two To headers', msg('OPTIONS', to + to), false],
    ['a folded To', msg('OPTIONS', 'To: <sip:bob@example.com>\r\n ;x=1\r\n'), false],
    ['a header section that does not end', msg('OPTIONS', to, '', ''), false],
    ['a response', enc('SIP/2.0 200 OK\r\nTo: <sip:b@x>\r\nCall-ID: x\r\n\r\n'), false],
    ['nothing', enc(''), false],
    ['no space after the method', enc('OPTIONS\r\nTo: <sip:b@x>\r\n\r\n'), false],
  ] as const) {
    it(`${name}: ${want}`, () => assert.equal(peekNewWithoutCredentials(bytes), want));
  }

  it('reads no further than maxHeaderBytes', () => {
    const b = msg('OPTIONS', to, 'Subject: ' + 'x'.repeat(500) + '\r\n');
    assert.equal(peekNewWithoutCredentials(b), true);
    assert.equal(peekNewWithoutCredentials(b, 300), false);
  });

  it('never says yes to a message the parser reads as a response, an ACK or CANCEL, in a dialog or with credentials', () => {
    let seed = 29;
    const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const methods = ['INVITE', 'MESSAGE', 'OPTIONS', 'ACK', 'CANCEL', 'BYE', 'REGISTER'];
    const tos = [
      to,
      'To: <sip:bob@example.com>;tag=b\r\n',
      't: sip:bob@example.com\r\n',
      'To: sip:bob@example.com;Tag=b\r\n',
      'To: <sip:bob@example.com>\r\n\t;tag=folded\r\n',
      '',
    ];
    const pieces = [
      `Authorization: ${auth}\r\n`,
      `Proxy-Authorization: ${auth}\r\n`,
      'proxy-authorization:x\r\n',
      ' Proxy-Authorization: folded\r\n',
      'X-Proxy-Authorization: y\r\n',
      'Subject: To: tag\r\n',
      to,
      '\tcontinued\r\n',
      '\n',
      '\r\n',
    ];
    let yes = 0;
    for (let i = 0; i < 4000; i++) {
      let extra = '';
      for (let k = rnd(4); k > 0; k--) extra += pieces[rnd(pieces.length)];
      const b = msg(methods[rnd(methods.length)]!, tos[rnd(tos.length)]!, extra);
      if (!peekNewWithoutCredentials(b)) continue;
      yes++;
      const r = parseMessage(b);
      if (!r.ok) continue; // dropped unparsed, or answered 400: no work in progress lost
      const m = r.message;
      const why = JSON.stringify(new TextDecoder().decode(b));
      assert.ok(m.isRequest(), why);
      if (!m.isRequest()) continue;
      assert.ok(m.method !== 'ACK' && m.method !== 'CANCEL', why);
      assert.equal(m.to.tag, undefined, why);
      assert.equal(m.getRaw('Authorization'), undefined, why);
      assert.equal(m.getRaw('Proxy-Authorization'), undefined, why);
    }
    assert.ok(yes > 100, `the generator makes sheddable requests too (${yes})`);
  });
});
