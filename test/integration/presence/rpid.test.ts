/**
 * "Away" reaches watchers: what the server composes besides tuples (RFC 4479 data model,
 * RFC 4480 RPID, RFC 3863 root-level notes), through buildServices on the SQLite store, with
 * the watcher and the user's devices on their own stacks over UDP on loopback (support.ts).
 *
 * - alice publishes as baresip does (an empty `<rpid:activities/>` in a `<dm:person>`), then
 *   changes it to `<rpid:away/>`: bob's NOTIFY carries the person with `<rpid:away/>` and the
 *   open tuple (what linphonec shows as Away); back to empty activities, and it is gone;
 * - two devices of alice's, with other prefixes for the same namespaces: the person and the
 *   notes of the most recent publication that has any, devices by id from both, every
 *   element readable by namespace in the composed document.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  parsePidf,
  PIDF_DATA_MODEL_NS,
  PIDF_NS,
  RPID_NS,
  type PidfDocument,
} from '../../../src/services/presence/pidf.ts';
import {
  DOMAIN,
  basics,
  bodyOf,
  seed,
  startPresenceServer,
  Watcher,
  type PresenceServer,
} from './support.ts';

const ALICE = `sip:alice@${DOMAIN}`;

/** baresip's PUBLISH body, with `activities` inside its `<rpid:activities>`. */
const baresip = (basic: 'open' | 'closed', activities: string): string =>
  `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="${PIDF_NS}" xmlns:dm="${PIDF_DATA_MODEL_NS}" xmlns:rpid="${RPID_NS}" entity="${ALICE}">
  <dm:person id="p4159"><rpid:activities>${activities}</rpid:activities></dm:person>
  <tuple id="t4109"><status><basic>${basic}</basic></status><contact>${ALICE}</contact></tuple>
</presence>
`;

const parsed = (text: string): PidfDocument => {
  const r = parsePidf(text);
  assert.ok(r.ok, r.ok ? text : `${r.error}\n${text}`);
  return r.value;
};

describe('presence: RPID away, persons, devices and notes reach watchers (RFC 4479, RFC 4480)', () => {
  let dir: string;
  let server: PresenceServer;
  let alice: Watcher;
  let aliceMobile: Watcher;
  let bob: Watcher;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-rpid-'));
    await seed(dir, ['alice', 'bob']);
    server = await startPresenceServer(dir);
    alice = await Watcher.create(() => server.udp, 'alice');
    aliceMobile = await Watcher.create(() => server.udp, 'alice');
    bob = await Watcher.create(() => server.udp, 'bob');
  });
  after(async () => {
    await alice.close();
    await aliceMobile.close();
    await bob.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a NOTIFY carries <rpid:away/> in the person after alice publishes away, and not after she is back', async () => {
    const sub = await bob.subscribe({ to: ALICE, expires: 600 });
    assert.equal(sub.response.status, 200);
    await bob.waitNotify(sub, 1);
    const first = await alice.publish(baresip('open', ''));
    assert.equal(first.status, 200);
    const here = await bob.waitNotify(sub, 2);
    assert.deepEqual(basics(here), ['open']);
    assert.match(bodyOf(here), /<dm:person [^>]*id="p4159"><rpid:activities><\/rpid:activities>/);

    const away = await alice.publish(baresip('open', '<rpid:away/>'), {
      ifMatch: first.getRaw('SIP-ETag')!,
    });
    assert.equal(away.status, 200);
    const n = await bob.waitNotify(sub, 3);
    const body = bodyOf(n);
    assert.match(body, /<rpid:activities><rpid:away\/><\/rpid:activities><\/dm:person>/, body);
    assert.deepEqual(basics(n), ['open']);
    // Namespace-correct: the composed document reads back with the person in the data model
    // namespace and its prefixes declared on it.
    const doc = parsed(body);
    assert.deepEqual(
      doc.persons.map((p) => p.id),
      ['p4159'],
    );
    assert.match(doc.persons[0]!.xml, new RegExp(`xmlns:rpid="${RPID_NS}"`));
    assert.match(doc.persons[0]!.xml, new RegExp(`xmlns:dm="${PIDF_DATA_MODEL_NS}"`));

    const back = await alice.publish(baresip('open', ''), { ifMatch: away.getRaw('SIP-ETag')! });
    assert.equal(back.status, 200);
    const n4 = await bob.waitNotify(sub, 4);
    assert.doesNotMatch(bodyOf(n4), /away/);
    assert.equal(
      (await alice.publish('', { ifMatch: back.getRaw('SIP-ETag')!, expires: 0 })).status,
      200,
    );
    await bob.waitNotify(sub, 5);
    await bob.refresh(sub, 0);
  });

  it('two devices: the newest person and notes, devices by id from both, prefixes of each kept declared', async () => {
    const desk = await alice.publish(
      `<presence xmlns="${PIDF_NS}" xmlns:dm="${PIDF_DATA_MODEL_NS}" xmlns:rpid="${RPID_NS}" entity="${ALICE}" xml:lang="en">
  <tuple id="desk"><status><basic>open</basic></status></tuple>
  <note>at the desk</note>
  <dm:person id="p-desk"><rpid:activities><rpid:away/></rpid:activities></dm:person>
  <dm:device id="d-desk"><dm:deviceID>urn:uuid:desk</dm:deviceID></dm:device>
</presence>`,
    );
    assert.equal(desk.status, 200);
    // The mobile uses other prefixes, PIDF's included.
    const mobileBody = (withPerson: boolean): string =>
      `<p:presence xmlns:p="${PIDF_NS}" xmlns:d="${PIDF_DATA_MODEL_NS}" xmlns:r="${RPID_NS}" entity="${ALICE}">
  <p:tuple id="mobile"><p:status><p:basic>open</p:basic></p:status></p:tuple>
  ${withPerson ? '<p:note>on the road</p:note><d:person id="p-mobile"><r:activities><r:on-the-phone/></r:activities></d:person>' : ''}
  <d:device id="d-mobile"><d:deviceID>urn:uuid:mobile</d:deviceID></d:device>
</p:presence>`;
    const mobile = await aliceMobile.publish(mobileBody(true));
    assert.equal(mobile.status, 200);

    const both = parsed((await server.services.presence.compose(ALICE)).document);
    assert.deepEqual(
      both.tuples.map((t) => t.id),
      ['desk', 'mobile'],
    );
    // RFC 4479 §3.2: one person, the most recent publication's.
    assert.deepEqual(
      both.persons.map((p) => p.id),
      ['p-mobile'],
    );
    assert.match(both.persons[0]!.xml, /<r:on-the-phone\/>/);
    assert.match(both.persons[0]!.xml, new RegExp(`xmlns:r="${RPID_NS}"`));
    assert.deepEqual(
      both.notes.map((n) => n.xml.replace(/^<[^>]*>|<\/[^>]*>$/g, '')),
      ['on the road'],
    );
    assert.deepEqual(
      both.devices.map((d) => d.id),
      ['d-desk', 'd-mobile'],
    );

    // The mobile now publishes neither person nor note: the desk's come back (the most
    // recent publication that has any), with the desk's xml:lang on its note.
    const changed = await aliceMobile.publish(mobileBody(false), {
      ifMatch: mobile.getRaw('SIP-ETag')!,
    });
    assert.equal(changed.status, 200);
    const later = parsed((await server.services.presence.compose(ALICE)).document);
    assert.deepEqual(
      later.persons.map((p) => p.id),
      ['p-desk'],
    );
    assert.deepEqual(
      later.notes.map((n) => n.xml),
      [
        `<note xmlns="${PIDF_NS}" xmlns:dm="${PIDF_DATA_MODEL_NS}" xmlns:rpid="${RPID_NS}" xml:lang="en">at the desk</note>`,
      ],
    );

    assert.equal(
      (await alice.publish('', { ifMatch: desk.getRaw('SIP-ETag')!, expires: 0 })).status,
      200,
    );
    assert.equal(
      (await aliceMobile.publish('', { ifMatch: changed.getRaw('SIP-ETag')!, expires: 0 })).status,
      200,
    );
  });

  it('400 for a document using a prefix it does not declare (it could not be composed correctly)', async () => {
    const r = await alice.publish(
      `<presence xmlns="${PIDF_NS}" entity="${ALICE}"><tuple id="t"><status><basic>open</basic></status><rpid:away/></tuple></presence>`,
    );
    assert.equal(r.status, 400);
    assert.match(r.reason, /prefix rpid not declared/);
  });
});
