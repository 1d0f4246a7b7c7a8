/**
 * sipp PUBLISHes to `switchboard serve` (RFC 3903, the server as its users' event state
 * compositor), on 127.0.0.1 only, with the server as one process and as two workers: the
 * scenario uac-publish.xml (beside this file) publishes alice's presence, refreshes it,
 * refreshes again with the stale entity-tag (412), publishes for the dialog package (489 with
 * Allow-Events) and removes it; every PUBLISH is first challenged with 407 (MD5 only: sipp
 * 3.6.1 answers nothing else). Ten such runs at once, each with its own Call-ID and state.
 *
 * A missing sipp fails under CI=true (requireTool), skips loudly otherwise.
 */
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { MD5_ONLY_YAML } from '../../support/serve-config.ts';
import { AliceServer } from './sipp-alice.ts';

const SCENARIO = fileURLToPath(new URL('./uac-publish.xml', import.meta.url));
const CALLS = 10;

for (const workers of [1, 2]) {
  describe(`sipp PUBLISH to switchboard serve (RFC 3903), ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    const server = new AliceServer(MD5_ONLY_YAML, workers);
    before(() => server.start());
    after(() => server.stop());

    it(
      'publish, refresh, 412 for the stale SIP-If-Match, 489 for another package, remove',
      { timeout: 45_000 },
      (t) => server.play(t, SCENARIO, CALLS),
    );
  });
}
