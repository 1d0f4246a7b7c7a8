/**
 * A user agent that answers everything: OPTIONS and MESSAGE with 200, every
 * INVITE with 180 then 200 carrying an SDP answer; takes the ACK; answers BYE
 * with 200. One line per call on stdout; runs until SIGTERM.
 *
 *   npx tsx examples/answer-calls.ts --listen udp:127.0.0.1:5080 [--listen tcp:127.0.0.1:5080] [--ring-ms N]
 */
import { parseArgs } from 'node:util';
import { createStack, UserAgent } from '../src/stack/index.ts';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', multiple: true },
    'ring-ms': { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});
const listen = values.listen ?? ['udp:127.0.0.1:5080'];
const ringMs = Number(values['ring-ms'] ?? 0);

const stack = await createStack({
  listen,
  ...(values.cert !== undefined && values.key !== undefined
    ? { tls: { certFile: values.cert, keyFile: values.key } }
    : {}),
});
const ua = new UserAgent(stack, { aor: 'sip:answer@127.0.0.1' });

function answerSdp(offer: string | undefined): string {
  const l = stack.transport.listeners[0]!;
  const ip = l.local.address.includes(':') ? 'IP6' : 'IP4';
  // An answer that accepts the first audio format offered (PCMU when nothing is offered).
  const pt = /m=audio \d+ RTP\/AVP (\d+)/.exec(offer ?? '')?.[1] ?? '0';
  return [
    'v=0',
    `o=switchboard 1 1 IN ${ip} ${l.local.address}`,
    's=-',
    `c=IN ${ip} ${l.local.address}`,
    't=0 0',
    `m=audio 40000 RTP/AVP ${pt}`,
    '',
  ].join('\r\n');
}

let calls = 0;
ua.on('invite', (call) => {
  const n = ++calls;
  void (async () => {
    await call.ring();
    if (ringMs > 0) await new Promise((r) => setTimeout(r, ringMs));
    if (call.state === 'ended') return;
    await call.answer(answerSdp(call.remoteSdp));
    console.log(`call ${n} answered from ${call.from}`);
  })().catch((e: unknown) => console.error(`call ${n} failed: ${String(e)}`));
  call.on('cancelled', () => console.log(`call ${n} cancelled`));
  call.on('ended', (by: string) => console.log(`call ${n} ended by ${by}`));
});
ua.on('message', () => undefined);

for (const l of stack.transport.listeners) {
  console.log(
    `listening ${l.protocol}:${l.local.address.includes(':') ? `[${l.local.address}]` : l.local.address}:${l.local.port}`,
  );
}

process.on('SIGTERM', () => {
  void stack.close().then(() => process.exit(0));
});
process.on('SIGINT', () => {
  void stack.close().then(() => process.exit(0));
});
