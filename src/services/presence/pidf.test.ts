import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { composePidf, escapeXmlAttribute, parsePidf, PIDF_NS } from './pidf.ts';

/** RFC 3863 §4.1 example shape, with an RPID prefix the tuple uses from its root. */
const RPID = 'urn:ietf:params:xml:ns:pidf:rpid';
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
});
