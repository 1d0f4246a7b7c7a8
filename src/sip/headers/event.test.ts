import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { HeaderCodec } from './codec.ts';
import { EventHeader, SubscriptionStateHeader } from './event.ts';
import { headerKey, knownHeaders } from './names.ts';
import { codecFor } from './registry.ts';

const CODECS = [EventHeader, SubscriptionStateHeader] as readonly HeaderCodec<unknown>[];

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

describe('Event (RFC 6665 §8.2.1)', () => {
  golden(EventHeader, [
    ['presence', 'presence', { type: 'presence', package: 'presence', templates: [], params: [] }],
    [
      'template package (RFC 3857 watcher info)',
      'presence.winfo',
      { type: 'presence.winfo', package: 'presence', templates: ['winfo'], params: [] },
    ],
    [
      'dialog with id',
      'dialog;id=12345',
      {
        type: 'dialog',
        package: 'dialog',
        templates: [],
        params: [{ name: 'id', value: '12345' }],
        id: '12345',
      },
    ],
    [
      'REFER implicit subscription (RFC 3515 §2.4.6)',
      'refer;id=93809824',
      {
        type: 'refer',
        package: 'refer',
        templates: [],
        params: [{ name: 'id', value: '93809824' }],
        id: '93809824',
      },
    ],
    [
      'Asterisk MWI',
      'message-summary',
      { type: 'message-summary', package: 'message-summary', templates: [], params: [] },
    ],
    [
      'Polycom provisioning (quoted params)',
      'ua-profile;profile-type=device;vendor="Polycom";model="VVX411";version="6.4.3"',
      {
        type: 'ua-profile',
        package: 'ua-profile',
        templates: [],
        params: [
          { name: 'profile-type', value: 'device' },
          { name: 'vendor', value: '"Polycom"' },
          { name: 'model', value: '"VVX411"' },
          { name: 'version', value: '"6.4.3"' },
        ],
      },
    ],
    [
      'two templates',
      'presence.winfo.winfo',
      {
        type: 'presence.winfo.winfo',
        package: 'presence',
        templates: ['winfo', 'winfo'],
        params: [],
      },
    ],
    [
      'case kept (compared byte by byte)',
      'Presence',
      { type: 'Presence', package: 'Presence', templates: [], params: [] },
    ],
  ]);
  malformed(EventHeader, [
    '',
    'presence..winfo',
    '.winfo',
    'presence.',
    'presence;',
    'presence;id="x',
    '"presence"',
    'presence, dialog',
  ]);
});

describe('Subscription-State (RFC 6665 §8.2.3)', () => {
  golden(SubscriptionStateHeader, [
    [
      'active with expires',
      'active;expires=3600',
      { state: 'active', params: [{ name: 'expires', value: '3600' }], expires: 3600 },
    ],
    [
      'pending',
      'pending;expires=600',
      { state: 'pending', params: [{ name: 'expires', value: '600' }], expires: 600 },
    ],
    [
      'terminated by timeout',
      'terminated;reason=timeout',
      { state: 'terminated', params: [{ name: 'reason', value: 'timeout' }], reason: 'timeout' },
    ],
    [
      'terminated with retry-after',
      'terminated;reason=noresource;retry-after=30',
      {
        state: 'terminated',
        params: [
          { name: 'reason', value: 'noresource' },
          { name: 'retry-after', value: '30' },
        ],
        reason: 'noresource',
        retryAfter: 30,
      },
    ],
    [
      'case-insensitive state and reason',
      'Terminated;Reason=Deactivated',
      {
        state: 'terminated',
        params: [{ name: 'Reason', value: 'Deactivated' }],
        reason: 'deactivated',
      },
    ],
    [
      'expires beyond 2**32-1 clamps',
      'active;expires=99999999999',
      { state: 'active', params: [{ name: 'expires', value: '99999999999' }], expires: 4294967295 },
    ],
    ['extension-substate', 'waiting', { state: 'waiting', params: [] }],
  ]);
  malformed(SubscriptionStateHeader, [
    '',
    ';expires=3600',
    'active;expires=abc',
    'active;expires=',
    'active;retry-after=-1',
    'active expires=3600',
    'active;reason="x',
  ]);
});

describe('event codecs: registry and properties', () => {
  it('are registered under their names.ts keys', () => {
    const compact = new Map(knownHeaders().map(([n, c]) => [n, c]));
    for (const codec of CODECS) {
      assert.equal(codecFor(codec.key), codec);
      assert.equal(headerKey(codec.name), codec.key);
      assert.equal(codec.compact, compact.get(codec.name));
    }
    assert.equal(headerKey('o'), EventHeader.key);
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
    'active',
    'presence',
    '.',
    'winfo',
    ';',
    ' ',
    'id',
    'expires',
    'reason',
    '=',
    '12',
    '"x"',
    'A',
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
