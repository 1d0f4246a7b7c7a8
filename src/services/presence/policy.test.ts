/** Watcher authorization (RFC 3856 §5.1): the user's rule, else the domain defaults. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aorDomain, decideWatcher } from './policy.ts';

const ALICE = 'sip:alice@example.com';
const defaults = { sameDomain: 'allow', otherDomains: 'confirm' } as const;

describe('decideWatcher', () => {
  const table: [string, string, 'allow' | 'block' | 'confirm' | undefined, string][] = [
    ['the user watching themselves, even with a block rule', ALICE, 'block', 'allow'],
    ['a colleague without a rule: sameDomain', 'sip:bob@example.com', undefined, 'allow'],
    ['a colleague the user blocks', 'sip:bob@example.com', 'block', 'block'],
    ['a colleague the user wants to confirm', 'sip:bob@example.com', 'confirm', 'confirm'],
    ['another domain without a rule: otherDomains', 'sip:zed@elsewhere.test', undefined, 'confirm'],
    ['another domain the user allows', 'sip:zed@elsewhere.test', 'allow', 'allow'],
    ['a domain that only ends like ours', 'sip:eve@notexample.com', undefined, 'confirm'],
  ];
  for (const [name, watcher, rule, want] of table) {
    it(name, () => assert.equal(decideWatcher(ALICE, watcher, rule, defaults), want));
  }
  it('the defaults are the configuration’s', () => {
    const strict = { sameDomain: 'confirm', otherDomains: 'block' } as const;
    assert.equal(decideWatcher(ALICE, 'sip:bob@example.com', undefined, strict), 'confirm');
    assert.equal(decideWatcher(ALICE, 'sip:zed@elsewhere.test', undefined, strict), 'block');
  });
});

describe('aorDomain', () => {
  it('the host of user@host and of a bare host, lower-cased', () => {
    assert.equal(aorDomain('sip:alice@Example.COM'), 'example.com');
    assert.equal(aorDomain('sip:example.com'), 'example.com');
  });
});
