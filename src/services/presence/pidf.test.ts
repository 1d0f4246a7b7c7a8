import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  composePidf,
  escapeXmlAttribute,
  parsePidf,
  PIDF_DATA_MODEL_NS,
  PIDF_NS,
  RPID_NS,
  type PidfDocument,
} from './pidf.ts';

/** RFC 3863 §4.1 example shape, with an RPID prefix the tuple uses from its root. */
const RPID = RPID_NS;
const DM = PIDF_DATA_MODEL_NS;
const DOC = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="${PIDF_NS}" xmlns:rpid="${RPID}" entity="pres:alice@example.com">
  <!-- a comment -->
  <tuple id="t1"><status><basic>open</basic></status><rpid:activities><rpid:away/></rpid:activities>
    <note xml:lang="en">Out &amp; about <![CDATA[<soon>]]></note></tuple>
  <tuple id='t2'/>
  <note>not a tuple</note>
</presence>
`;

describe('parsePidf', () => {
  it('keeps each tuple as checked text, with the root namespace declarations', () => {
    const r = parsePidf(DOC);
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.equal(r.value.entity, 'pres:alice@example.com');
    assert.deepEqual(
      r.value.tuples.map((t) => t.id),
      ['t1', 't2'],
    );
    assert.ok(
      r.value.tuples[0]!.xml.startsWith(`<tuple xmlns="${PIDF_NS}" xmlns:rpid="${RPID}" id="t1">`),
    );
    assert.ok(r.value.tuples[0]!.xml.endsWith('</note></tuple>'));
    assert.equal(
      r.value.tuples[1]!.xml,
      `<tuple xmlns="${PIDF_NS}" xmlns:rpid="${RPID}" id='t2'/>`,
    );
    // Every composed tuple parses again inside a new document.
    const again = parsePidf(composePidf('sip:alice@example.com', r.value.tuples));
    assert.ok(again.ok);
    assert.deepEqual(
      again.value.tuples.map((t) => t.xml),
      r.value.tuples.map((t) => t.xml),
    );
  });

  it('takes a prefixed PIDF namespace', () => {
    const r = parsePidf(
      `<p:presence xmlns:p="${PIDF_NS}" entity="sip:a@b"><p:tuple id="x"><p:status/></p:tuple></p:presence>`,
    );
    assert.ok(r.ok);
    assert.equal(
      r.value.tuples[0]!.xml,
      `<p:tuple xmlns:p="${PIDF_NS}" id="x"><p:status/></p:tuple>`,
    );
  });

  it('keeps a root-level <note> (RFC 3863 §4.1.6), not a note inside a tuple', () => {
    const r = parsePidf(DOC);
    assert.ok(r.ok);
    assert.deepEqual(
      r.value.notes.map((n) => n.xml),
      [`<note xmlns="${PIDF_NS}" xmlns:rpid="${RPID}">not a tuple</note>`],
    );
    assert.deepEqual(r.value.persons, []);
    assert.deepEqual(r.value.devices, []);
  });

  it('keeps <dm:person> and <dm:device> (RFC 4479 §3.2, §3.4) as baresip publishes them', () => {
    // baresip's document: the person before the tuple, its activities empty.
    const r = parsePidf(`<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="${PIDF_NS}" xmlns:dm="${DM}" xmlns:rpid="${RPID}" entity="sip:alice@example.com">
  <dm:person id="p4159"><rpid:activities/></dm:person>
  <tuple id="t4109"><status><basic>closed</basic></status><contact>sip:alice@example.com</contact></tuple>
  <dm:device id="d1"><dm:deviceID>urn:x-mac:0003ba4811e3</dm:deviceID></dm:device>
</presence>`);
    assert.ok(r.ok, r.ok ? '' : r.error);
    const decls = `xmlns="${PIDF_NS}" xmlns:dm="${DM}" xmlns:rpid="${RPID}"`;
    assert.deepEqual(r.value.persons, [
      { id: 'p4159', xml: `<dm:person ${decls} id="p4159"><rpid:activities/></dm:person>` },
    ]);
    assert.deepEqual(r.value.devices, [
      {
        id: 'd1',
        xml: `<dm:device ${decls} id="d1"><dm:deviceID>urn:x-mac:0003ba4811e3</dm:deviceID></dm:device>`,
      },
    ]);
    assert.deepEqual(
      r.value.tuples.map((t) => t.id),
      ['t4109'],
    );
  });

  it('knows person, device and note by namespace, not by prefix', () => {
    const r = parsePidf(
      `<presence xmlns="${PIDF_NS}" xmlns:x="${DM}" xmlns:dm="urn:other" xmlns:p="${PIDF_NS}" entity="e">` +
        `<x:person id="a"/><dm:person id="b"/><p:note>n</p:note><x:device id="c"/>` +
        `<x:note>data-model note at the root: not carried</x:note><dm:device id="d"/></presence>`,
    );
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual(
      r.value.persons.map((p) => p.id),
      ['a'],
    );
    assert.deepEqual(
      r.value.devices.map((d) => d.id),
      ['c'],
    );
    assert.equal(r.value.notes.length, 1);
    assert.match(r.value.notes[0]!.xml, /^<p:note xmlns=/);
  });

  it('accepts a person or device without id and does not carry it', () => {
    const r = parsePidf(
      `<presence xmlns="${PIDF_NS}" xmlns:dm="${DM}" entity="e"><dm:person/><dm:device><dm:note>x</dm:note></dm:device></presence>`,
    );
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.deepEqual(r.value.persons, []);
    assert.deepEqual(r.value.devices, []);
  });

  it('declares on a carried element what it needs from the root: xml:lang, and xmlns="" for an undeclared default', () => {
    // Without xmlns="", <foo/> (in no namespace here) would fall into the PIDF default
    // namespace of the composed root.
    const r = parsePidf(
      `<p:presence xmlns:p="${PIDF_NS}" xml:lang="fr" entity="e"><p:tuple id="t"><p:status/><foo/></p:tuple>` +
        `<p:note>absent</p:note><p:note xml:lang="en" xmlns="urn:mine">away</p:note></p:presence>`,
    );
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.equal(
      r.value.tuples[0]!.xml,
      `<p:tuple xmlns:p="${PIDF_NS}" xml:lang="fr" xmlns="" id="t"><p:status/><foo/></p:tuple>`,
    );
    assert.deepEqual(
      r.value.notes.map((n) => n.xml),
      [
        `<p:note xmlns:p="${PIDF_NS}" xml:lang="fr">absent</p:note>`,
        `<p:note xmlns:p="${PIDF_NS}" xml:lang="en" xmlns="urn:mine">away</p:note>`,
      ],
    );
  });

  it('keeps a prefix the element declares itself over the root’s', () => {
    const r = parsePidf(
      `<presence xmlns="${PIDF_NS}" xmlns:r="urn:old" entity="e"><tuple id="t" xmlns:r="${RPID}"><r:away/></tuple></presence>`,
    );
    assert.ok(r.ok, r.ok ? '' : r.error);
    assert.equal(
      r.value.tuples[0]!.xml,
      `<tuple xmlns="${PIDF_NS}" id="t" xmlns:r="${RPID}"><r:away/></tuple>`,
    );
  });

  const bad: [string, string][] = [
    [
      'a DOCTYPE (entity expansion)',
      `<!DOCTYPE x [<!ENTITY a "b">]><presence xmlns="${PIDF_NS}" entity="e"/>`,
    ],
    ['an undefined entity', `<presence xmlns="${PIDF_NS}" entity="e">&a;</presence>`],
    ['a processing instruction', `<presence xmlns="${PIDF_NS}" entity="e"><?x y?></presence>`],
    ['another namespace', '<presence xmlns="urn:x" entity="e"/>'],
    ['no namespace', '<presence entity="e"/>'],
    ['no entity', `<presence xmlns="${PIDF_NS}"/>`],
    ['a tuple without id', `<presence xmlns="${PIDF_NS}" entity="e"><tuple/></presence>`],
    [
      'mismatched tags',
      `<presence xmlns="${PIDF_NS}" entity="e"><tuple id="a"></status></presence>`,
    ],
    ['unclosed root', `<presence xmlns="${PIDF_NS}" entity="e"><tuple id="a"/>`],
    ['two roots', `<presence xmlns="${PIDF_NS}" entity="e"/><presence/>`],
    ['text outside the root', `x<presence xmlns="${PIDF_NS}" entity="e"/>`],
    ['an attribute twice', `<presence xmlns="${PIDF_NS}" entity="e" entity="f"/>`],
    ['a < in an attribute', `<presence xmlns="${PIDF_NS}" entity="<"/>`],
    [
      'UTF-16 declared',
      `<?xml version="1.0" encoding="UTF-16"?><presence xmlns="${PIDF_NS}" entity="e"/>`,
    ],
    ['a control character', `<presence xmlns="${PIDF_NS}" entity="e">\u0001</presence>`],
    [
      'nesting beyond the limit',
      `<presence xmlns="${PIDF_NS}" entity="e">${'<a>'.repeat(40)}${'</a>'.repeat(40)}</presence>`,
    ],
    ['empty', ''],
    // Namespaces in XML 1.0: a composed document could not declare what the publisher did not.
    [
      'an undeclared element prefix (§5)',
      `<presence xmlns="${PIDF_NS}" entity="e"><tuple id="a"><rpid:away/></tuple></presence>`,
    ],
    [
      'an undeclared attribute prefix (§5)',
      `<presence xmlns="${PIDF_NS}" entity="e"><tuple id="a" q:x="1"/></presence>`,
    ],
    [
      'a prefix used outside its declaration’s scope (§6.1)',
      `<presence xmlns="${PIDF_NS}" entity="e"><tuple id="a" xmlns:r="${RPID}"/><note><r:x/></note></presence>`,
    ],
    [
      'a prefix declared empty (§3 No Prefix Undeclaring)',
      `<presence xmlns="${PIDF_NS}" xmlns:r="" entity="e"/>`,
    ],
    [
      'the xmlns prefix declared (§3)',
      `<presence xmlns="${PIDF_NS}" xmlns:xmlns="urn:x" entity="e"/>`,
    ],
    [
      'the xml prefix bound elsewhere (§3)',
      `<presence xmlns="${PIDF_NS}" xmlns:xml="urn:x" entity="e"/>`,
    ],
    [
      'an element with the xmlns prefix (§3)',
      `<presence xmlns="${PIDF_NS}" entity="e"><xmlns:a/></presence>`,
    ],
  ];
  for (const [name, text] of bad) {
    it(`refuses ${name}`, () => {
      assert.equal(parsePidf(text).ok, false);
    });
  }
});

describe('composePidf', () => {
  it('escapes the entity and writes a document without tuples', () => {
    assert.equal(escapeXmlAttribute(`a"<&>'`), 'a&#34;&#60;&#38;&#62;&#39;');
    const doc = composePidf('sip:"x"@example.com', []);
    const r = parsePidf(doc);
    assert.ok(r.ok);
    assert.equal(r.value.entity, 'sip:&#34;x&#34;@example.com'); // kept as written
    assert.deepEqual(r.value.tuples, []);
  });

  const parsed = (text: string): PidfDocument => {
    const r = parsePidf(text);
    assert.ok(r.ok, r.ok ? '' : r.error);
    return r.value;
  };

  // Two publishers with different prefixes for the same namespaces (and one for PIDF).
  const desk =
    parsed(`<presence xmlns="${PIDF_NS}" xmlns:dm="${DM}" xmlns:rpid="${RPID}" entity="sip:alice@example.com">
  <dm:person id="p1"><rpid:activities><rpid:away/></rpid:activities></dm:person>
  <tuple id="t1"><status><basic>open</basic></status></tuple>
  <note xml:lang="en">back soon</note>
</presence>`);
  const mobile =
    parsed(`<pidf:presence xmlns:pidf="${PIDF_NS}" xmlns:d="${DM}" xmlns:r="${RPID}" entity="sip:alice@example.com">
  <pidf:tuple id="t2"><pidf:status><pidf:basic>closed</pidf:basic></pidf:status></pidf:tuple>
  <d:device id="d2"><d:deviceID>urn:uuid:1</d:deviceID></d:device>
  <d:person id="t1"><r:activities><r:busy/></r:activities></d:person>
</pidf:presence>`);

  it('puts tuples, notes, persons, devices in that order, each standing alone under the new root (RFC 3863, RFC 4479)', () => {
    const doc = composePidf('sip:alice@example.com', [...desk.tuples, ...mobile.tuples], {
      notes: desk.notes,
      persons: desk.persons,
      devices: mobile.devices,
    });
    const lines = doc.split('\n');
    assert.equal(lines[1], `<presence xmlns="${PIDF_NS}" entity="sip:alice@example.com">`);
    assert.match(lines[2]!, /^<tuple xmlns="[^"]+" xmlns:dm="[^"]+" xmlns:rpid="[^"]+" id="t1">/);
    assert.match(
      lines[3]!,
      /^<pidf:tuple xmlns:pidf="[^"]+" xmlns:d="[^"]+" xmlns:r="[^"]+" id="t2">/,
    );
    assert.match(lines[4]!, /^<note [^>]*xml:lang="en">back soon<\/note>$/);
    assert.equal(
      lines[5],
      `<dm:person xmlns="${PIDF_NS}" xmlns:dm="${DM}" xmlns:rpid="${RPID}" id="p1"><rpid:activities><rpid:away/></rpid:activities></dm:person>`,
    );
    assert.match(
      lines[6]!,
      /^<d:device xmlns:pidf="[^"]+" xmlns:d="[^"]+" xmlns:r="[^"]+" id="d2">/,
    );
    // Read back by namespace: each element is where the publisher put it.
    const again = parsed(doc);
    assert.deepEqual(
      again.tuples.map((t) => t.id),
      ['t1', 't2'],
    );
    assert.deepEqual(again.persons, desk.persons);
    // The device gains the composed root's default namespace, which it does not use.
    assert.deepEqual(
      again.devices.map((d) => d.xml),
      [mobile.devices[0]!.xml.replace('<d:device ', `<d:device xmlns="${PIDF_NS}" `)],
    );
    assert.equal(again.notes.length, 1);
  });

  it('leaves out an element whose id an earlier one has (XML IDs are unique in a document)', () => {
    // mobile's person has id "t1", the id of desk's tuple.
    const doc = parsed(
      composePidf('sip:alice@example.com', desk.tuples, {
        persons: mobile.persons,
        devices: [...mobile.devices, ...mobile.devices],
      }),
    );
    assert.deepEqual(
      doc.tuples.map((t) => t.id),
      ['t1'],
    );
    assert.deepEqual(doc.persons, []);
    assert.deepEqual(
      doc.devices.map((d) => d.id),
      ['d2'],
    );
  });
});
