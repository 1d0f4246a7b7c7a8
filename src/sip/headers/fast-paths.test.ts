/**
 * The fast paths (one regex step for the common shapes) must agree with the
 * general parsers on everything they accept, and defer to them on the rest.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isSimpleValidVia, parseViaList, parseViaListGeneral } from './via.ts';
import {
  parseNameAddr,
  parseNameAddrGeneral,
  parseNameAddrList,
  parseNameAddrListGeneral,
  type NameAddr,
} from './name-addr.ts';

const token = fc.stringMatching(/^[A-Za-z0-9\-.!%*_+`'~]{1,8}$/);
const host = fc.oneof(
  fc.stringMatching(/^[a-z0-9]{1,6}(\.[a-z0-9]{1,6}){0,2}$/),
  fc.constant('[2001:db8::1]'),
  fc.constant('[::'),
  fc.constant('192.0.2.1'),
);
const value = fc.oneof(
  token,
  fc.constant('"quoted;v"'),
  fc.constant(''),
  fc.constant('a b'),
  fc.constant('[2001:db8::9]'),
  fc.constant('x,y'),
);
const param = fc
  .tuple(
    fc.oneof(
      token,
      fc.constant('branch'),
      fc.constant('rport'),
      fc.constant('received'),
      fc.constant(''),
    ),
    fc.option(value),
  )
  .map(([n, v]) => (v === null ? `;${n}` : `;${n}=${v}`));
const params = fc.array(param, { maxLength: 4 }).map((a) => a.join(''));
const port = fc.option(fc.oneof(fc.integer({ min: 0, max: 70000 }).map(String), fc.constant('')));

test('Via fast path agrees with the general parser', () => {
  const via = fc
    .tuple(
      fc.constantFrom('SIP/2.0/UDP', 'SIP/2.0/tcp', 'SIP/3.0/UDP', 'SIP / 2.0 / TLS'),
      fc.constantFrom(' ', '  ', ''),
      host,
      port,
      params,
      fc.constantFrom('', ' ', ', SIP/2.0/UDP h'),
    )
    .map(([p, sp, h, pt, ps, tail]) => `${p}${sp}${h}${pt === null ? '' : ':' + pt}${ps}${tail}`);
  fc.assert(
    fc.property(via, (v) => {
      assert.deepEqual(parseViaList(v), parseViaListGeneral(v), v);
      if (isSimpleValidVia(v)) assert.ok(parseViaList(v).ok, `validator accepted ${v}`);
    }),
    { numRuns: 3000 },
  );
});

/** Every part of an address, own property or decoded on demand. */
function plain(na: NameAddr): object {
  return { displayName: na.displayName, uri: na.uri, params: na.params, tag: na.tag };
}

test('name-addr fast path agrees with the general parser', () => {
  const display = fc.oneof(
    fc.constant(''),
    fc.constant('"Alice A."'),
    fc.constant('"q\\"uote"'),
    fc.constant('"unterminated'),
    token,
    fc.tuple(token, token).map(([a, b]) => `${a} ${b}`),
    fc.constant('Bell, Alex'),
  );
  const uri = fc.oneof(
    fc.tuple(token, host, port).map(([u, h, p]) => `sip:${u}@${h}${p === null ? '' : ':' + p}`),
    fc.constant('tel:+1-201-555-0123'),
    fc.constant('sip:a@b;lr'),
    fc.constant('nope'),
    fc.constant(' sip:x@y '),
  );
  const na = fc
    .tuple(display, fc.constantFrom('', ' '), uri, params, fc.constantFrom('', ' ', ' ;tag=1'))
    .map(([d, sp, u, ps, tail]) => `${d}${sp}<${u}>${ps}${tail}`);
  fc.assert(
    fc.property(na, (v) => {
      const a = parseNameAddr(v);
      const b = parseNameAddrGeneral(v);
      assert.deepEqual(a, b, v);
      // The URI and parameters are not own properties (decoded on demand): compare them explicitly.
      if (a.ok && b.ok) assert.deepEqual(plain(a.value), plain(b.value), v);
    }),
    { numRuns: 3000 },
  );
  const list = fc
    .array(fc.oneof(na, fc.constant('<sip:a,b@h>'), fc.constant(''), fc.constant('sip:x@y')), {
      minLength: 1,
      maxLength: 4,
    })
    .chain((items) => fc.constantFrom(', ', ',', ' , ').map((sep) => items.join(sep)));
  fc.assert(
    fc.property(list, (v) => {
      const a = parseNameAddrList(v);
      const b = parseNameAddrListGeneral(v);
      assert.deepEqual(a, b, v);
      if (a.ok && b.ok) assert.deepEqual(a.value.map(plain), b.value.map(plain), v);
    }),
    { numRuns: 3000 },
  );
});
