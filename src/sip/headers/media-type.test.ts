import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { HeaderCodec } from './codec.ts';
import { AcceptHeader, ContentTypeHeader } from './media-type.ts';
import { headerKey, knownHeaders } from './names.ts';
import { codecFor } from './registry.ts';
import { paramValue } from '../uri/params.ts';

const CODECS = [ContentTypeHeader, AcceptHeader] as readonly HeaderCodec<unknown>[];

type Row = readonly [name: string, input: string, expected: unknown];

function golden(codec: HeaderCodec<unknown>, rows: readonly Row[]): void {
  for (const [name, input, expected] of rows) {
    it(name, () => {
      const r = codec.parse(input);
      assert.ok(r.ok, `${JSON.stringify(input)}: ${r.ok ? '' : r.error}`);
      assert.deepEqual(r.value, expected);
      const again = codec.parse(codec.format(r.value));
      assert.ok(again.ok);
      assert.deepEqual(again.value, r.value);
    });
  }
}

function malformed(codec: HeaderCodec<unknown>, inputs: readonly string[]): void {
  for (const input of inputs) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.equal(codec.parse(input).ok, false);
    });
  }
}

describe('Content-Type (RFC 3261 §20.15)', () => {
  golden(ContentTypeHeader, [
    ['SDP', 'application/sdp', { type: 'application', subtype: 'sdp', params: [] }],
    [
      'case-insensitive type (RFC 2045 §5.1)',
      'Application/SDP',
      { type: 'application', subtype: 'sdp', params: [] },
    ],
    [
      'multipart with a quoted boundary (RFC 5621)',
      'multipart/mixed; boundary="----=_Part_0_1234.5678"',
      {
        type: 'multipart',
        subtype: 'mixed',
        params: [{ name: 'boundary', value: '"----=_Part_0_1234.5678"' }],
      },
    ],
    [
      'RFC 4475 §3.1.1.1 wsinv multipart/mixed boundary',
      'multipart/mixed;boundary=7a9cbec02ceef655',
      {
        type: 'multipart',
        subtype: 'mixed',
        params: [{ name: 'boundary', value: '7a9cbec02ceef655' }],
      },
    ],
    [
      'text/plain with charset (linphone MESSAGE)',
      'text/plain;charset=UTF-8',
      { type: 'text', subtype: 'plain', params: [{ name: 'charset', value: 'UTF-8' }] },
    ],
    ['PIDF', 'application/pidf+xml', { type: 'application', subtype: 'pidf+xml', params: [] }],
    [
      'sipfrag (RFC 3515 NOTIFY)',
      'message/sipfrag;version=2.0',
      { type: 'message', subtype: 'sipfrag', params: [{ name: 'version', value: '2.0' }] },
    ],
    [
      'MWI (Asterisk)',
      'application/simple-message-summary',
      { type: 'application', subtype: 'simple-message-summary', params: [] },
    ],
    [
      'Cisco/Polycom INFO DTMF',
      'application/dtmf-relay',
      { type: 'application', subtype: 'dtmf-relay', params: [] },
    ],
    [
      'spaces around "/" (SLASH = SWS "/" SWS)',
      'application / sdp',
      { type: 'application', subtype: 'sdp', params: [] },
    ],
  ]);
  malformed(ContentTypeHeader, [
    '',
    'application',
    'application/',
    '/sdp',
    '*/*',
    'application/*',
    'application/sdp;',
    'application/sdp;boundary="x',
    'application/sdp extra',
    'application/sdp, text/plain',
  ]);

  it('params are read with paramValue', () => {
    const r = ContentTypeHeader.parse('multipart/related;type="application/sdp";boundary=b1');
    assert.ok(r.ok);
    assert.equal(paramValue(r.value.params, 'type'), 'application/sdp');
    assert.equal(paramValue(r.value.params, 'BOUNDARY'), 'b1');
  });
});

describe('Accept (RFC 3261 §20.1)', () => {
  golden(AcceptHeader, [
    ['SDP', 'application/sdp', [{ type: 'application', subtype: 'sdp', params: [] }]],
    [
      'Asterisk OPTIONS reply',
      'application/sdp, application/dtmf-relay, text/plain',
      [
        { type: 'application', subtype: 'sdp', params: [] },
        { type: 'application', subtype: 'dtmf-relay', params: [] },
        { type: 'text', subtype: 'plain', params: [] },
      ],
    ],
    [
      'RFC 3261 §20.1 example',
      'application/sdp;level=1, application/x-private, text/html',
      [
        { type: 'application', subtype: 'sdp', params: [{ name: 'level', value: '1' }] },
        { type: 'application', subtype: 'x-private', params: [] },
        { type: 'text', subtype: 'html', params: [] },
      ],
    ],
    [
      'wildcards and q',
      'application/*;q=0.5, */*;q=0.1',
      [
        { type: 'application', subtype: '*', params: [{ name: 'q', value: '0.5' }], q: 0.5 },
        { type: '*', subtype: '*', params: [{ name: 'q', value: '0.1' }], q: 0.1 },
      ],
    ],
    ['empty Accept (no body accepted)', '', []],
  ]);
  malformed(AcceptHeader, [
    '*/sdp',
    'application/sdp;q=2',
    'application/sdp,',
    ',',
    'application',
    'text/plain;q=',
  ]);
});

describe('media-type codecs: registry and properties', () => {
  it('are registered under their names.ts keys', () => {
    const compact = new Map(knownHeaders().map(([n, c]) => [n, c]));
    for (const codec of CODECS) {
      assert.equal(codecFor(codec.key), codec);
      assert.equal(headerKey(codec.name), codec.key);
      assert.equal(codec.compact, compact.get(codec.name));
    }
    assert.equal(headerKey('c'), ContentTypeHeader.key);
  });

  it('parse never throws', () => {
    for (const codec of CODECS) {
      fc.assert(
        fc.property(fc.string(), (s) => {
          codec.parse(s);
        }),
        { numRuns: 500 },
      );
    }
  });

  const piece = fc.constantFrom(
    'text',
    'SDP',
    '/',
    '*',
    ';',
    ' ',
    ',',
    'q',
    '=',
    '0.5',
    '"a b"',
    'x',
  );
  it('whatever parses re-serializes to the same value', () => {
    for (const codec of CODECS) {
      fc.assert(
        fc.property(fc.array(piece, { maxLength: 10 }), (parts) => {
          const r = codec.parse(parts.join(''));
          if (!r.ok) return;
          const r2 = codec.parse(codec.format(r.value));
          assert.ok(r2.ok);
          assert.deepEqual(r2.value, r.value);
        }),
        { numRuns: 500 },
      );
    }
  });
});
