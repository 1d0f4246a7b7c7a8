/** RFC 3858 watcherinfo documents: full state, versions, escaping, optional attributes. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { composeWatcherinfo, WATCHERINFO_NS } from './winfo.ts';

describe('composeWatcherinfo', () => {
  it('an empty list is a well-formed full-state document', () => {
    assert.equal(
      composeWatcherinfo('sip:alice@example.com', 'presence', 0, []),
      `<?xml version="1.0" encoding="UTF-8"?>
<watcherinfo xmlns="${WATCHERINFO_NS}" version="0" state="full">
  <watcher-list resource="sip:alice@example.com" package="presence">
  </watcher-list>
</watcherinfo>
`,
    );
  });

  it('each watcher with id, status, event and the optional attributes; text escaped', () => {
    const doc = composeWatcherinfo('sip:alice@example.com', 'presence', 7, [
      {
        id: 'w1',
        uri: 'sip:bob@example.com',
        displayName: 'Bob "B" & co <x>',
        status: 'active',
        event: 'subscribe',
        durationSubscribed: 12.7,
        expiration: 3587.2,
      },
      { id: 'w2', uri: 'sip:a&b@example.com', status: 'terminated', event: 'timeout' },
    ]);
    assert.match(doc, /version="7" state="full"/);
    assert.match(
      doc,
      /<watcher id="w1" status="active" event="subscribe" display-name="Bob &#34;B&#34; &#38; co &#60;x&#62;" duration-subscribed="12" expiration="3587">sip:bob@example.com<\/watcher>/,
    );
    assert.match(
      doc,
      /<watcher id="w2" status="terminated" event="timeout">sip:a&#38;b@example.com<\/watcher>/,
    );
  });
});
