/**
 * Places one call, waits, hangs up. Exits 0 only when the call was answered
 * and the BYE got a 2xx.
 *
 *   npx tsx examples/place-call.ts sip:USER@HOST:PORT [--transport udp|tcp|tls] [--hold-ms N] [--user U --password P]
 */
import { parseArgs } from 'node:util';
import { createStack, UserAgent } from '../src/stack/index.ts';
import { parseUri } from '../src/sip/index.ts';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    transport: { type: 'string' },
    'hold-ms': { type: 'string' },
    user: { type: 'string' },
    password: { type: 'string' },
    insecure: { type: 'boolean' },
  },
});
const target = positionals[0];
if (target === undefined) {
  console.error(
    'usage: place-call.ts sip:USER@HOST:PORT [--transport udp|tcp|tls] [--hold-ms N] [--user U --password P]',
  );
  process.exit(1);
}
const transport = values.transport ?? 'udp';
if (!['udp', 'tcp', 'tls'].includes(transport)) {
  console.error(`unknown transport ${transport}`);
  process.exit(1);
}
const holdMs = Number(values['hold-ms'] ?? 1000);
const uri =
  transport === 'udp' || /;transport=/i.test(target) ? target : `${target};transport=${transport}`;
const parsed = parseUri(target);
if (!parsed.ok || parsed.value.kind !== 'sip') {
  console.error(`not a SIP URI: ${target}`);
  process.exit(1);
}
const host = parsed.value.host;
// Listen on loopback in the target's address family.
const localHost = host.startsWith('[') ? '[::1]' : '127.0.0.1';

const stack = await createStack({
  // A TLS caller needs no certificate of its own: its listener only calls out.
  listen: [
    transport === 'tls'
      ? { listen: `tls:${localHost}:0`, clientOnly: true }
      : `${transport}:${localHost}:0`,
  ],
  ...(values.insecure === true ? { tls: { rejectUnauthorized: false } } : {}),
});
const user = values.user ?? 'caller';
const ua = new UserAgent(stack, {
  aor: `sip:${user}@${host}`,
  ...(values.user !== undefined && values.password !== undefined
    ? { credentials: { username: values.user, password: values.password } }
    : {}),
});

const offer = [
  'v=0',
  `o=switchboard 1 1 IN IP4 127.0.0.1`,
  's=-',
  'c=IN IP4 127.0.0.1',
  't=0 0',
  'm=audio 40002 RTP/AVP 0 8',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  '',
].join('\r\n');

let code = 1;
try {
  const call = await ua.call(uri, { sdp: offer });
  console.log(`call answered by ${target}`);
  await new Promise((r) => setTimeout(r, holdMs));
  const bye = await call.hangup();
  if (bye !== undefined && bye.status >= 200 && bye.status < 300) {
    console.log(`call ended: BYE ${bye.status}`);
    code = 0;
  } else console.error(`BYE failed: ${bye?.status ?? 'no response'}`);
} catch (e) {
  console.error(String(e instanceof Error ? e.message : e));
}
await stack.close();
process.exit(code);
