/**
 * Bad input over real sockets (RFC 3261 §18.2.1, §18.3; RFC 4475 §3.1.2): the
 * layer answers 400/513 where a Via makes that possible, closes a stream whose
 * framing broke, leaves every other connection alone, and never throws.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ManualClock, defaultLimits } from '../../../src/base/index.ts';
import {
  TRANSPORT_CHANNELS,
  createTransportLayer,
  type TransportErrorEvent,
} from '../../../src/transport/index.ts';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { RawTcp, RawUdp, Recorder, rawRequest, sleep, statusOf, within } from './support.ts';

const LIMITS = {
  ...defaultLimits,
  maxHeaderBytes: 2048,
  maxBodyBytes: 4096,
  maxBufferedBytes: 8192,
};

function request(
  opts: {
    method?: string;
    via?: string | null;
    cseq?: string;
    contentLength?: string;
    body?: string;
  } = {},
): string {
  const method = opts.method ?? 'OPTIONS';
  const lines = [`${method} sip:bob@127.0.0.1 SIP/2.0`];
  if (opts.via !== null)
    lines.push(`Via: ${opts.via ?? 'SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKbad'}`);
  lines.push(
    'Max-Forwards: 70',
    'From: <sip:alice@example.com>;tag=f',
    'To: <sip:bob@example.com>',
    `Call-ID: bad-${Math.random()}`,
    `CSeq: ${opts.cseq ?? `1 ${method}`}`,
  );
  if (opts.contentLength !== undefined) lines.push(`Content-Length: ${opts.contentLength}`);
  return rawRequest(lines, opts.body ?? '');
}

async function tcpLayer(
  extra: Parameters<typeof createTransportLayer>[0] extends infer O ? Partial<O> : never = {},
) {
  const b = await createTransportLayer({
    id: 'B',
    listen: ['tcp:127.0.0.1:0'],
    limits: LIMITS,
    ...extra,
  });
  const rb = new Recorder();
  b.setDelegate(rb);
  return { b, rb, port: b.listeners[0]!.local.port };
}

/** Checks that `conn` still carries a valid request to the delegate. */
async function stillWorks(conn: RawTcp, rb: Recorder): Promise<void> {
  const before = rb.requests.length;
  conn.write(request({ contentLength: '0' }));
  const start = Date.now();
  while (rb.requests.length === before) {
    assert.ok(Date.now() - start < 2000, 'the other connection still delivers requests');
    await sleep(5);
  }
}

describe('bad input on TCP', () => {
  const framing: [string, string, number][] = [
    ['a negative Content-Length', request({ contentLength: '-5' }), 400],
    ['a non-numeric Content-Length', request({ contentLength: 'ten' }), 400],
    ['two Content-Length headers', request({ contentLength: '0\r\nContent-Length: 4' }), 400],
    [
      'a Content-Length over the body limit',
      request({ method: 'MESSAGE', contentLength: '99999' }),
      513,
    ],
  ];
  for (const [name, text, status] of framing) {
    it(
      `${name}: ${status}, then the connection closes; another connection keeps working`,
      { timeout: 5000 },
      async () => {
        const { b, rb, port } = await tcpLayer();
        const good = await RawTcp.open(port);
        const bad = await RawTcp.open(port);
        try {
          bad.write(text);
          await bad.until((c) => c.ended, 2000, 'the bad connection to close');
          assert.equal(statusOf(bad.text), status, `answered ${status} before closing`);
          assert.match(bad.text, /\r\nTo: <sip:bob@example\.com>;tag=/i, 'with a To tag');
          assert.match(bad.text, /\r\nVia: SIP\/2\.0\/TCP 192\.0\.2\.1:5060;branch=z9hG4bKbad/);
          assert.equal(rb.requests.length, 0, 'nothing reached the delegate');
          await stillWorks(good, rb);
          assert.equal(b.connections().length, 1);
        } finally {
          good.destroy();
          bad.destroy();
          await b.close();
        }
      },
    );
  }

  it('garbage that is not SIP: closed without an answer', { timeout: 5000 }, async () => {
    const { b, rb, port } = await tcpLayer();
    const good = await RawTcp.open(port);
    const bad = await RawTcp.open(port);
    try {
      bad.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await bad.until((c) => c.ended, 2000, 'close');
      assert.equal(bad.text, '');
      await stillWorks(good, rb);
    } finally {
      good.destroy();
      bad.destroy();
      await b.close();
    }
  });

  it(
    'a header section over the limit: closed (no Via read, nothing to answer)',
    { timeout: 5000 },
    async () => {
      const { b, rb, port } = await tcpLayer();
      const good = await RawTcp.open(port);
      const bad = await RawTcp.open(port);
      try {
        bad.write(
          `OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nX-Long: ${'a'.repeat(3000)}\r\n`,
        );
        await bad.until((c) => c.ended, 2000, 'close');
        await stillWorks(good, rb);
      } finally {
        good.destroy();
        bad.destroy();
        await b.close();
      }
    },
  );

  it(
    'a well-framed request with a bad CSeq: 400, and the connection stays open',
    { timeout: 5000 },
    async () => {
      const { b, rb, port } = await tcpLayer();
      const conn = await RawTcp.open(port);
      try {
        conn.write(request({ cseq: 'one OPTIONS', contentLength: '0' }));
        await conn.until((c) => statusOf(c.text) === 400, 2000, '400');
        assert.equal(conn.ended, false);
        await stillWorks(conn, rb);
      } finally {
        conn.destroy();
        await b.close();
      }
    },
  );

  it('caps inbound connections per source IP', { timeout: 5000 }, async () => {
    const { b, rb, port } = await tcpLayer({ maxConnectionsPerIp: 2 });
    const errors: TransportErrorEvent[] = [];
    const onError = (e: unknown): void => void errors.push(e as TransportErrorEvent);
    subscribe(TRANSPORT_CHANNELS.error, onError);
    const c1 = await RawTcp.open(port);
    const c2 = await RawTcp.open(port);
    const c3 = await RawTcp.open(port);
    try {
      await c3.until((c) => c.ended, 2000, 'the third connection to be refused');
      assert.ok(errors.some((e) => e.layer === 'B' && e.type === 'limit'));
      await stillWorks(c1, rb);
      await stillWorks(c2, rb);
      c1.destroy();
      await within(
        (async () => {
          while (b.connections().length > 1) await sleep(5);
        })(),
        2000,
        'close',
      );
      const c4 = await RawTcp.open(port);
      await stillWorks(c4, rb);
      c4.destroy();
    } finally {
      unsubscribe(TRANSPORT_CHANNELS.error, onError);
      for (const c of [c1, c2, c3]) c.destroy();
      await b.close();
    }
  });

  it('closes idle connections on the injected clock', { timeout: 5000 }, async () => {
    const clock = new ManualClock();
    const { b, rb, port } = await tcpLayer({ clock, idleTimeoutMs: 30_000 });
    const conn = await RawTcp.open(port);
    try {
      await stillWorks(conn, rb);
      clock.advance(29_999);
      await sleep(20);
      assert.equal(conn.ended, false);
      clock.advance(1);
      await conn.until((c) => c.ended, 2000, 'the idle connection to close');
      assert.equal(b.connections().length, 0);
    } finally {
      conn.destroy();
      await b.close();
    }
  });
});

describe('bad input on UDP', () => {
  it(
    'a malformed request gets 400 and the listener keeps answering',
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({ id: 'B', listen: ['udp:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      const raw = await RawUdp.open();
      const port = b.listeners[0]!.local.port;
      try {
        await raw.send(
          request({ via: 'SIP/2.0/UDP 192.0.2.1;rport;branch=z9hG4bKu1', cseq: 'x' }),
          port,
        );
        const reply = (await raw.nth(1)).toString('latin1');
        assert.equal(statusOf(reply), 400);
        assert.match(reply, /Via: SIP\/2\.0\/UDP 192\.0\.2\.1;rport;branch=z9hG4bKu1/);
        // Garbage without a Via: nothing can be answered.
        await raw.send('\x00\x01garbage\r\n\r\n', port);
        await raw.send('OPTIONS sip:x SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n', port);
        // A malformed response and one whose sent-by is not ours: dropped (§18.1.2).
        await raw.send(
          'SIP/2.0 2000 Bad\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n\r\n',
          port,
        );
        await raw.send(
          'SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n' +
            'To: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
          port,
        );
        await raw.send(
          request({ via: 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKu2', contentLength: '0' }),
          port,
        );
        const ok = await rb.nextRequest();
        assert.equal(ok.message.topVia.branch, 'z9hG4bKu2');
        assert.equal(rb.responses.length, 0);
        assert.equal(raw.received.length, 1, 'only the first request was answered');
      } finally {
        await raw.close();
        await b.close();
      }
    },
  );

  it('random octets never throw out of the layer', { timeout: 8000 }, async () => {
    const b = await createTransportLayer({
      id: 'B',
      listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      limits: LIMITS,
    });
    const rb = new Recorder();
    b.setDelegate(rb);
    const raw = await RawUdp.open();
    let s = 0x2545f491;
    const rnd = (n: number): number => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) % n;
    };
    const prefixes = [
      '',
      'INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK',
      'SIP/2.0 200 OK\r\n',
      '\r\n\r\n',
    ];
    try {
      for (let i = 0; i < 300; i++) {
        const junk = Buffer.alloc(rnd(600));
        for (let j = 0; j < junk.length; j++)
          junk[j] = rnd(4) === 0 ? [13, 10, 58, 59][rnd(4)]! : rnd(256);
        const bytes = Buffer.concat([Buffer.from(prefixes[rnd(prefixes.length)]!, 'latin1'), junk]);
        await raw.send(bytes, b.listeners[0]!.local.port);
        if (i % 30 === 0) {
          const tcp = await RawTcp.open(b.listeners[1]!.local.port);
          tcp.write(bytes);
          tcp.write(bytes);
          await sleep(2);
          tcp.destroy();
        }
      }
      await raw.send(
        request({ via: 'SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKafter', contentLength: '0' }),
        b.listeners[0]!.local.port,
      );
      const start = Date.now();
      while (!rb.requests.some((r) => r.message.topVia.branch === 'z9hG4bKafter')) {
        assert.ok(Date.now() - start < 3000, 'still serving after the junk');
        await sleep(5);
      }
    } finally {
      await raw.close();
      await b.close();
    }
  });
});

describe('bad input on WebSocket (RFC 7118)', () => {
  it(
    'a malformed request gets 400 in a WebSocket message; an upgrade without "sip" is refused',
    { timeout: 5000 },
    async () => {
      const b = await createTransportLayer({ id: 'B', listen: ['ws:127.0.0.1:0'] });
      const rb = new Recorder();
      b.setDelegate(rb);
      const url = `ws://127.0.0.1:${b.listeners[0]!.local.port}/`;
      const ws = new WebSocket(url, 'sip');
      try {
        await within(new Promise((r, j) => ws.once('open', r).once('error', j)), 2000, 'ws open');
        assert.equal(ws.protocol, 'sip');
        const got = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
        ws.send(request({ via: 'SIP/2.0/WS abc.invalid;branch=z9hG4bKw1', cseq: 'bad' }));
        assert.equal(statusOf(await within(got, 2000, '400')), 400);
        const pong = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
        ws.send('\r\n\r\n');
        assert.equal(
          await within(pong, 2000, 'pong'),
          '\r\n',
          'RFC 5626 keep-alive over WebSocket',
        );
        ws.send(request({ via: 'SIP/2.0/WS abc.invalid;branch=z9hG4bKw2', contentLength: '0' }));
        const req = await rb.nextRequest();
        assert.equal(req.source.protocol, 'ws');
        assert.equal(req.message.topVia.received, '127.0.0.1');

        const plain = new WebSocket(url);
        const refused = await within(
          new Promise<string>((r) => plain.once('error', (e) => r(e.message))),
          2000,
          'refusal',
        );
        assert.match(refused, /400/);
      } finally {
        ws.terminate();
        await b.close();
      }
    },
  );
});
