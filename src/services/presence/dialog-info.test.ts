/**
 * RFC 4235 §4 dialog-info documents: an idle user (no `<dialog>`), each dialog with its
 * attributes, state, event and code and the participants; hostile values escaped, so the
 * document parses back (a small well-formedness scanner) to the values that went in.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StoredDialogState } from '../../store/index.ts';
import { composeDialogInfo, DIALOG_INFO_NS, escapeXml } from './dialog-info.ts';

interface Element {
  readonly name: string;
  readonly attrs: Record<string, string>;
  readonly children: Element[];
  text: string;
}

const unescape = (s: string): string =>
  s.replace(/&(#\d+|#x[0-9a-f]+|lt|gt|amp|quot|apos);/gi, (_, r: string) => {
    if (r[0] === '#') {
      return String.fromCodePoint(r[1] === 'x' ? parseInt(r.slice(2), 16) : parseInt(r.slice(1)));
    }
    return { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" }[r]!;
  });

/**
 * A strict scanner for what composeDialogInfo writes: the XML declaration, then elements with
 * double-quoted attributes and text; a raw `<` or `&` that is not a reference, an attribute
 * written twice, a mismatched end tag or anything after the root fails.
 */
function parseXml(doc: string): Element {
  let x = doc;
  const decl = /^<\?xml version="1\.0" encoding="UTF-8"\?>\n/.exec(x);
  assert.ok(decl !== null, 'XML declaration');
  x = x.slice(decl[0].length);
  const stack: Element[] = [];
  let root: Element | undefined;
  let i = 0;
  const badText = /<|&(?!(?:#\d+|#x[0-9a-fA-F]+|lt|gt|amp|quot|apos);)/;
  while (i < x.length) {
    const lt = x.indexOf('<', i);
    const text = x.slice(i, lt === -1 ? x.length : lt);
    assert.ok(!badText.test(text), `text ${JSON.stringify(text)}`);
    if (stack.length > 0) stack.at(-1)!.text += unescape(text);
    else assert.equal(text.trim(), '', 'text outside the root');
    if (lt === -1) break;
    if (x.startsWith('</', lt)) {
      const m = /^<\/([A-Za-z][\w.-]*)>/.exec(x.slice(lt));
      assert.ok(m !== null, 'end tag');
      assert.equal(stack.pop()?.name, m[1], 'matching end tag');
      i = lt + m[0].length;
      continue;
    }
    const m = /^<([A-Za-z][\w.-]*)((?:\s+[A-Za-z][\w.:-]*="[^"<]*")*)\s*(\/?)>/.exec(x.slice(lt));
    assert.ok(m !== null, `start tag at ${x.slice(lt, lt + 40)}`);
    const attrs: Record<string, string> = {};
    for (const a of m[2]!.matchAll(/([A-Za-z][\w.:-]*)="([^"]*)"/g)) {
      assert.ok(!(a[1]! in attrs), `attribute ${a[1]} twice`);
      assert.ok(!badText.test(a[2]!), `attribute value ${a[2]}`);
      attrs[a[1]!] = unescape(a[2]!);
    }
    const el: Element = { name: m[1]!, attrs, children: [], text: '' };
    if (stack.length > 0) stack.at(-1)!.children.push(el);
    else {
      assert.equal(root, undefined, 'one root');
      root = el;
    }
    if (m[3] !== '/') stack.push(el);
    i = lt + m[0].length;
  }
  assert.equal(stack.length, 0, 'every element closed');
  assert.ok(root !== undefined);
  return root;
}

const child = (e: Element, name: string): Element => {
  const c = e.children.find((k) => k.name === name);
  assert.ok(c !== undefined, `<${name}> in <${e.name}>`);
  return c;
};

const BOB = 'sip:bob@example.com';

const dialog = (over: Partial<StoredDialogState> = {}): StoredDialogState => ({
  aor: BOB,
  id: 'd1',
  callId: 'call-1@host',
  localTag: 'bt',
  remoteTag: 'at',
  direction: 'recipient',
  state: 'confirmed',
  localIdentity: BOB,
  remoteIdentity: 'sip:alice@example.com',
  remoteDisplay: 'Alice',
  createdAt: 0,
  updatedAt: 0,
  expiresAt: 1,
  ...over,
});

describe('composeDialogInfo (RFC 4235 §4)', () => {
  it('an idle user: full state, the version, the entity, no <dialog>', () => {
    const doc = composeDialogInfo(BOB, 0, []);
    const root = parseXml(doc);
    assert.equal(root.name, 'dialog-info');
    assert.deepEqual(root.attrs, {
      xmlns: DIALOG_INFO_NS,
      version: '0',
      state: 'full',
      entity: BOB,
    });
    assert.equal(root.children.length, 0);
  });

  it('each dialog with id, call-id, tags, direction, state and participants', () => {
    const doc = composeDialogInfo(BOB, 3, [
      dialog(),
      dialog({
        id: 'd2',
        callId: 'call-2',
        localTag: undefined,
        remoteTag: 'ct',
        state: 'terminated',
        event: 'cancelled',
        code: 487,
        remoteIdentity: 'sip:carol@example.com',
        remoteDisplay: undefined,
      }),
    ]);
    const root = parseXml(doc);
    assert.equal(root.attrs.version, '3');
    const [d1, d2] = root.children;
    assert.deepEqual(d1!.attrs, {
      id: 'd1',
      'call-id': 'call-1@host',
      'local-tag': 'bt',
      'remote-tag': 'at',
      direction: 'recipient',
    });
    assert.equal(child(d1!, 'state').text, 'confirmed');
    assert.deepEqual(child(d1!, 'state').attrs, {});
    assert.equal(child(child(d1!, 'local'), 'identity').text, BOB);
    const remote = child(child(d1!, 'remote'), 'identity');
    assert.equal(remote.text, 'sip:alice@example.com');
    assert.equal(remote.attrs.display, 'Alice');
    assert.equal(d2!.attrs['local-tag'], undefined);
    assert.deepEqual(child(d2!, 'state').attrs, { event: 'cancelled', code: '487' });
    assert.equal(child(d2!, 'state').text, 'terminated');
    assert.equal(child(child(d2!, 'remote'), 'identity').attrs.display, undefined);
  });

  it('hostile display names, URIs, tags and Call-IDs come back as they went in (escaped)', () => {
    const evil = `"/><dialog id="x">&amp; <!-- ' </dialog-info>`;
    const doc = composeDialogInfo(`sip:a&b@example.com`, 1, [
      dialog({
        id: evil,
        callId: evil,
        localTag: evil,
        remoteTag: evil,
        remoteDisplay: evil,
        remoteIdentity: `sip:x@example.com;p="<&>"`,
      }),
    ]);
    const root = parseXml(doc);
    assert.equal(root.attrs.entity, 'sip:a&b@example.com');
    assert.equal(root.children.length, 1);
    const d = root.children[0]!;
    assert.equal(d.attrs.id, evil);
    assert.equal(d.attrs['call-id'], evil);
    assert.equal(d.attrs['local-tag'], evil);
    assert.equal(d.attrs['remote-tag'], evil);
    const remote = child(child(d, 'remote'), 'identity');
    assert.equal(remote.attrs.display, evil);
    assert.equal(remote.text, `sip:x@example.com;p="<&>"`);
  });

  it('characters XML does not allow are dropped (a quoted-pair may carry C0 controls)', () => {
    assert.equal(escapeXml('a\u0001b\u0000c\tz\n'), 'abc\tz\n');
    assert.equal(escapeXml('x\ud800y'), 'xy');
    assert.equal(escapeXml('\u{1F600}'), '\u{1F600}');
    const root = parseXml(
      composeDialogInfo(BOB, 0, [dialog({ remoteDisplay: 'Al\u0007ice\u0008' })]),
    );
    assert.equal(child(child(root.children[0]!, 'remote'), 'identity').attrs.display, 'Alice');
  });
});
