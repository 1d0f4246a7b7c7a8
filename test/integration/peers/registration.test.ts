/**
 * Real SIP phones register with digest auth to `switchboard serve` (RFC 3261 §10.3), on loopback
 * only: baresip 1.0.0 and linphonec 5.1.65, each over UDP and over TCP. Each test starts the
 * phone with a fresh configuration, waits for the phone to report the 200 OK, then reads the
 * server's location store: the AOR has the phone's binding (contact on 127.0.0.1 with the right
 * transport, `received` = the flow it came from, the phone's User-Agent). Stopping the phone
 * un-registers it (Expires: 0): the binding is then gone.
 *
 * Two servers (UDP and TCP on 127.0.0.1 port 0) for the file, one user per test: linphonec
 * registers to one with the default challenges (SHA-256 and MD5, RFC 8760), baresip to one
 * configured with `auth: { algorithms: [MD5] }`. baresip 1.0.0 (libre 1.1.0) answers MD5
 * challenges only and abandons the whole 401 when any challenge in it names another algorithm
 * (see serverAccount() in ../baresip/baresip.ts).
 *
 * A missing baresip or linphonec fails under CI=true (requireTool), skips loudly otherwise.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import { freePortPair, requireTool } from '../../support/tools.ts';
import { startLinphone } from '../../support/linphone.ts';
import type { Linphone } from '../../support/linphone.ts';
import {
  describeBaresip,
  serverAccount,
  sipTrace,
  startBaresip,
  traceHeader,
  waitForRegistration,
} from '../baresip/baresip.ts';
import type { Baresip } from '../baresip/baresip.ts';
import { MD5_ONLY_YAML } from '../../support/serve-config.ts';
import { DOMAIN, LIFETIME_MS, STEP_MS, passwordOf, startPeersServer, step } from './support.ts';
import type { PeersServer } from './support.ts';

type Transport = 'udp' | 'tcp';

const TEST_TIMEOUT_MS = 45_000;

const USERS = ['baresip-udp', 'baresip-tcp', 'linphone-udp', 'linphone-tcp'];

describe('real phones register with digest auth to switchboard serve', () => {
  /** Default challenges (SHA-256, MD5): linphonec. */
  let peers: PeersServer | undefined;
  /** MD5 challenges only: baresip. */
  let md5Peers: PeersServer | undefined;

  before(async () => {
    [peers, md5Peers] = await Promise.all([
      startPeersServer(USERS),
      startPeersServer(USERS, [], MD5_ONLY_YAML),
    ]);
  });

  after(async () => {
    await Promise.all([peers?.close(), md5Peers?.close()]);
  });

  async function linphoneRegisters(t: TestContext, transport: Transport): Promise<void> {
    const bin = requireTool('linphonec', t);
    if (bin === undefined) return;
    const server = peers!;
    const user = `linphone-${transport}`;
    let linphone: Linphone | undefined;
    const context = (): string =>
      [linphone?.describe() ?? '(linphonec not started)', server.describe()].join('\n\n');
    try {
      linphone = await step(
        startLinphone({
          bin,
          account: {
            user,
            domain: DOMAIN,
            password: passwordOf(user),
            server: { port: server.port(transport), transport },
            expires: 600,
          },
          timeoutMs: LIFETIME_MS,
          registerTimeoutMs: STEP_MS,
        }),
        `linphonec registering over ${transport}`,
        () => server.describe(),
      );
      const [binding, ...more] = await server.bindings(user);
      assert.ok(binding !== undefined, `no binding for ${user} in the store\n${context()}`);
      assert.equal(more.length, 0, `one binding expected\n${context()}`);
      assert.match(
        binding.contact,
        new RegExp(`^sip:${user}@127\\.0\\.0\\.1:\\d+;transport=${transport}$`),
      );
      assert.match(binding.received ?? '', new RegExp(`^${transport}:127\\.0\\.0\\.1:\\d+$`));
      assert.match(binding.userAgent ?? '', /^Linphonec\//);
      assert.match(binding.instance ?? '', /^<urn:uuid:[0-9a-f-]+>$/);
      if (transport === 'udp') {
        // Over UDP the contact is linphonec's own socket, the one the REGISTER came from.
        assert.equal(binding.contact, linphone.contact('udp'));
        assert.equal(binding.received, `udp:127.0.0.1:${linphone.udpPort}`);
      } else {
        // Over TCP belle-sip rewrites its Contact with the rport/received of the 401 (its
        // connection's source port), so contact and flow name the same connection.
        assert.equal(binding.received, `tcp:${/@([^;]+);/.exec(binding.contact)?.[1]}`);
      }
      const expiresIn = (binding.expiresAt - Date.now()) / 1000;
      assert.ok(expiresIn > 500 && expiresIn <= 600, `expires in ${expiresIn} s`);
      // The 200 was for an authenticated REGISTER: linphonec sent Authorization after a 401.
      const sentAuth = linphone
        .trace()
        .some(
          (m) =>
            m.direction === 'sent' &&
            m.firstLine.startsWith('REGISTER ') &&
            m.headers.some((h) => /^Authorization:\s*Digest /i.test(h)),
        );
      assert.ok(sentAuth, `linphonec sent no REGISTER with Authorization\n${context()}`);
      // stop() un-registers (Expires: 0) before `quit`: the binding is gone.
      await linphone.stop();
      assert.deepEqual(
        await server.bindings(user),
        [],
        `binding left after un-REGISTER\n${context()}`,
      );
    } finally {
      await linphone?.stop();
    }
  }

  async function baresipRegisters(t: TestContext, transport: Transport): Promise<void> {
    const bin = requireTool('baresip', t);
    if (bin === undefined) return;
    const server = md5Peers!;
    const user = `baresip-${transport}`;
    let baresip: Baresip | undefined;
    const context = (): string =>
      [
        baresip !== undefined ? describeBaresip(baresip) : '(baresip not started)',
        server.describe(),
      ].join('\n\n');
    try {
      baresip = await startBaresip({
        bin,
        port: await freePortPair(),
        account: serverAccount({
          user,
          domain: DOMAIN,
          password: passwordOf(user),
          server: { port: server.port(transport), transport },
          regint: 600,
        }),
        timeoutMs: LIFETIME_MS,
      });
      await step(
        waitForRegistration(baresip, STEP_MS),
        `baresip registering over ${transport}`,
        context,
      );
      const [binding, ...more] = await server.bindings(user);
      assert.ok(binding !== undefined, `no binding for ${user} in the store\n${context()}`);
      assert.equal(more.length, 0, `one binding expected\n${context()}`);
      assert.match(binding.contact, /^sip:[^@]+@127\.0\.0\.1:\d+/);
      if (transport === 'tcp') assert.match(binding.contact, /;transport=tcp\b/);
      assert.match(binding.received ?? '', new RegExp(`^${transport}:127\\.0\\.0\\.1:\\d+$`));
      assert.match(binding.userAgent ?? '', /baresip/);
      const registers = sipTrace(baresip.output()).filter((m) =>
        m.firstLine.startsWith('REGISTER '),
      );
      assert.ok(
        registers.some((m) => traceHeader(m, 'Authorization') !== undefined),
        `baresip sent no REGISTER with Authorization\n${context()}`,
      );
      // baresip un-registers on SIGTERM (stop()): the binding is gone.
      await baresip.stop();
      assert.deepEqual(
        await server.bindings(user),
        [],
        `binding left after un-REGISTER\n${context()}`,
      );
    } finally {
      await baresip?.stop();
    }
  }

  it('linphonec over UDP: 200, binding in the store', { timeout: TEST_TIMEOUT_MS }, (t) =>
    linphoneRegisters(t, 'udp'),
  );

  it('linphonec over TCP: 200, binding in the store', { timeout: TEST_TIMEOUT_MS }, (t) =>
    linphoneRegisters(t, 'tcp'),
  );

  it(
    'baresip over UDP: 200, binding in the store (MD5-only server)',
    { timeout: TEST_TIMEOUT_MS },
    (t) => baresipRegisters(t, 'udp'),
  );

  it(
    'baresip over TCP: 200, binding in the store (MD5-only server)',
    { timeout: TEST_TIMEOUT_MS },
    (t) => baresipRegisters(t, 'tcp'),
  );
});
