/**
 * A live stack under malformed input: random bytes, truncated and mutated
 * messages over UDP and TCP (bounded in count and time). Afterwards it must
 * still answer OPTIONS on both transports, with its transaction tables drained.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import fc from 'fast-check';
import { createStack, UserAgent } from '../../../src/stack/index.ts';
import { within } from '../transport/support.ts';

const GOOD = (port: number, n: number): string =>
  [
    `OPTIONS sip:fuzz@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfuzz${n};rport`,
    'Max-Forwards: 70',
    'From: <sip:f@127.0.0.1>;tag=f1',
    `To: <sip:fuzz@127.0.0.1:${port}>`,
    `Call-ID: fuzz-${n}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

function mutate(text: string, ops: readonly { at: number; kind: number; byte: number }[]): Buffer {
  const b = [...Buffer.from(text)];
  for (const op of ops) {
    const i = op.at % Math.max(1, b.length);
    if (op.kind === 0) b[i] = op.byte;
    else if (op.kind === 1) b.splice(i, 1);
    else if (op.kind === 2) b.splice(i, 0, op.byte);
    else b.length = i; // truncate
  }
  return Buffer.from(b);
}

it('keeps answering after 600 malformed datagrams and 60 malformed streams', async () => {
  const stack = await createStack({ listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'] });
  new UserAgent(stack, { aor: 'sip:fuzz@127.0.0.1' });
  const udpPort = stack.transport.listeners[0]!.local.port;
  const tcpPort = stack.transport.listeners[1]!.local.port;
  const sock = createSocket('udp4');
  const sent: Promise<void>[] = [];
  try {
    const inputs = fc.sample(
      fc.oneof(
        fc.uint8Array({ maxLength: 1500 }).map((a) => Buffer.from(a)),
        fc
          .tuple(
            fc.nat(10000),
            fc.array(
              fc.record({
                at: fc.nat(600),
                kind: fc.integer({ min: 0, max: 3 }),
                byte: fc.integer({ min: 0, max: 255 }),
              }),
              {
                minLength: 1,
                maxLength: 6,
              },
            ),
          )
          .map(([n, ops]) => mutate(GOOD(udpPort, n), ops)),
      ),
      { numRuns: 600, seed: 4242 },
    );
    for (const input of inputs) {
      sent.push(new Promise((r) => sock.send(input, udpPort, '127.0.0.1', () => r())));
    }
    await Promise.all(sent);
    // Streams: each connection gets one malformed input; the stack closes broken ones.
    const streams = inputs.slice(0, 60).map(
      (input) =>
        new Promise<void>((resolve) => {
          const c = connect(tcpPort, '127.0.0.1', () => {
            c.write(input);
            setTimeout(() => c.destroy(), 50);
          });
          c.on('error', () => resolve());
          c.on('close', () => resolve());
          c.on('data', () => undefined);
        }),
    );
    await within(Promise.all(streams), 10_000, 'malformed streams');

    // Still answering, on both transports.
    for (const t of ['udp', 'tcp'] as const) {
      const port = t === 'udp' ? udpPort : tcpPort;
      const probe = await createStack({ listen: [`${t}:127.0.0.1:0`] });
      try {
        const ua = new UserAgent(probe, { aor: 'sip:probe@127.0.0.1' });
        const target = `sip:fuzz@127.0.0.1:${port}${t === 'tcp' ? ';transport=tcp' : ''}`;
        const res = await within(ua.options(target), 5000, `OPTIONS over ${t}`);
        assert.equal(res.status, 200, `OPTIONS over ${t}`);
      } finally {
        await probe.close();
      }
    }
    assert.ok(process.memoryUsage().heapUsed < 512 * 1024 * 1024, 'heap stays bounded');
  } finally {
    sock.close();
    await stack.close();
  }
});
