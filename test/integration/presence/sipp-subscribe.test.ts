/**
 * sipp SUBSCRIBEs to `switchboard serve` (RFC 6665, RFC 3856: the server as presence agent), on
 * 127.0.0.1 only, with the server as one process and as two workers. The scenarios beside this
 * file, each SUBSCRIBE first challenged with 407 (MD5 only: sipp 3.6.1 answers nothing else):
 *
 * - uac-subscribe.xml, ten at once: 200 with Expires and Contact, the immediate NOTIFY (active,
 *   PIDF), a refresh in the dialog (200 and a NOTIFY), 489 with Allow-Events for the
 *   message-summary package, unsubscribe (200 Expires 0 and a NOTIFY terminated); over UDP, and over TCP, where
 *   every NOTIFY must come back on sipp's own connection (its Contact says UDP);
 * - uac-subscribe-expiry.xml, ten at once: Expires 2, the NOTIFY, then unasked a NOTIFY
 *   terminated;reason=timeout;
 * - uac-subscribe-publish.xml, one call: a NOTIFY for each PUBLISH that changes the watched state
 *   (open with the published note, closed again after its removal).
 *
 * The stale SIP-If-Match of a PUBLISH (412) is sipp.test.ts's uac-publish.xml.
 * A missing sipp fails under CI=true (requireTool), skips loudly otherwise.
 */
import { fileURLToPath } from 'node:url';
import { after, before, describe, it, type TestContext } from 'node:test';
import { MD5_ONLY_YAML } from '../../support/serve-config.ts';
import { AliceServer } from './sipp-alice.ts';

const scenario = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

for (const workers of [1, 2]) {
  describe(`sipp SUBSCRIBE to switchboard serve (RFC 6665), ${workers} worker${workers > 1 ? 's' : ''}`, () => {
    // Short subscriptions for the expiry scenario, and a quick look at the other worker's
    // changes.
    const server = new AliceServer(
      `${MD5_ONLY_YAML}presence:\n  subscribeMinExpires: 1\n  pollInterval: 0.2\n`,
      workers,
    );
    before(() => server.start());
    after(() => server.stop());

    const play = (
      t: TestContext,
      file: string,
      calls: number,
      transport: 'u1' | 't1' = 'u1',
    ): Promise<void> => server.play(t, scenario(file), calls, transport);

    it(
      'subscribe, immediate NOTIFY, refresh, 489 for another package, unsubscribe',
      { timeout: 45_000 },
      (t) => play(t, 'uac-subscribe.xml', 10),
    );
    it(
      'over TCP: the NOTIFYs come on the connection the SUBSCRIBE opened (its Contact names no transport)',
      { timeout: 45_000 },
      (t) => play(t, 'uac-subscribe.xml', 10, 't1'),
    );
    it('a subscription not refreshed: NOTIFY terminated;reason=timeout', { timeout: 45_000 }, (t) =>
      play(t, 'uac-subscribe-expiry.xml', 10),
    );
    it('a NOTIFY for each PUBLISH that changes the state', { timeout: 45_000 }, (t) =>
      play(t, 'uac-subscribe-publish.xml', 1),
    );
  });
}
