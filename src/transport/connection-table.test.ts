import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, defaultLimits, utf8Encode } from '../base/index.ts';
import { ConnectionTable } from './connection-table.ts';
import type { StreamConnection } from './listener.ts';
import type { ListenerInfo, TransportProtocol } from './transport.ts';

const LISTENER: ListenerInfo = {
  id: 'tcp:127.0.0.1:5060',
  protocol: 'tcp',
  local: { address: '127.0.0.1', port: 5060 },
  advertisedHost: '127.0.0.1',
  advertisedPort: 5060,
};

/** An in-memory connection: records writes and whether it was destroyed. */
class FakeConnection implements StreamConnection {
  readonly listener = LISTENER;
  readonly local = LISTENER.local;
  destroyed = false;
  ended = false;
  readonly written: Uint8Array[] = [];
  constructor(
    readonly id: string,
    readonly remote: { address: string; port: number },
    readonly direction: 'inbound' | 'outbound' = 'inbound',
    readonly protocol: TransportProtocol = 'tcp',
    readonly framing: 'stream' | 'message' = 'stream',
  ) {}
  get closed(): boolean {
    return this.destroyed || this.ended;
  }
  write(bytes: Uint8Array): Promise<void> {
    this.written.push(bytes);
    return Promise.resolve();
  }
  end(): void {
    this.ended = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

function table(
  clock = new ManualClock(),
  over: Partial<ConstructorParameters<typeof ConnectionTable>[0]> = {},
) {
  return new ConnectionTable({ clock, idleTimeoutMs: 1000, maxConnectionsPerIp: 2, ...over });
}

const OPTIONS = utf8Encode(
  'OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n' +
    'To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n',
);

describe('ConnectionTable', () => {
  it('finds a connection by id and by protocol + remote endpoint (RFC 3261 §18.1.1 reuse)', () => {
    const t = table();
    const c = new FakeConnection('c1', { address: '127.0.0.1', port: 40000 });
    t.add(c);
    assert.equal(t.get('c1'), c);
    assert.equal(t.find('tcp', { address: '127.0.0.1', port: 40000 }), c);
    assert.equal(
      t.find('tls', { address: '127.0.0.1', port: 40000 }),
      undefined,
      'protocol is part of the key',
    );
    assert.equal(t.find('tcp', { address: '127.0.0.1', port: 40001 }), undefined);
    assert.equal(t.size, 1);
  });

  it('matches IPv6 endpoints whatever their spelling, and IPv4-mapped addresses as IPv4', () => {
    const t = table();
    const c6 = new FakeConnection('c6', { address: '::1', port: 5060 });
    const c4 = new FakeConnection('c4', { address: '::ffff:127.0.0.1', port: 5070 });
    t.add(c6);
    t.add(c4);
    assert.equal(t.find('tcp', { address: '0:0:0:0:0:0:0:1', port: 5060 }), c6);
    assert.equal(t.find('tcp', { address: '[::1]', port: 5060 }), c6);
    assert.equal(t.find('tcp', { address: '127.0.0.1', port: 5070 }), c4);
  });

  it('prefers the most recent open connection to an endpoint and skips closed ones', () => {
    const t = table();
    const a = new FakeConnection('a', { address: '127.0.0.1', port: 1 }, 'outbound');
    const b = new FakeConnection('b', { address: '127.0.0.1', port: 1 }, 'outbound');
    t.add(a);
    t.add(b);
    assert.equal(t.find('tcp', b.remote), b);
    b.ended = true;
    assert.equal(t.find('tcp', b.remote), a);
    assert.equal(t.get('b'), undefined, 'a closing connection is not handed out');
  });

  it('remove() forgets a connection in every index', () => {
    const t = table();
    const c = new FakeConnection('c1', { address: '127.0.0.1', port: 40000 });
    t.add(c);
    assert.equal(t.remove('c1'), true);
    assert.equal(t.remove('c1'), false);
    assert.equal(t.get('c1'), undefined);
    assert.equal(t.find('tcp', c.remote), undefined);
    assert.equal(t.inboundFrom('127.0.0.1'), 0);
  });

  it('caps inbound connections per source IP; outbound ones do not count', () => {
    const t = table();
    t.add(new FakeConnection('o1', { address: '10.0.0.1', port: 5060 }, 'outbound'));
    assert.equal(t.admits('10.0.0.1'), true);
    t.add(new FakeConnection('i1', { address: '10.0.0.1', port: 1001 }));
    t.add(new FakeConnection('i2', { address: '10.0.0.1', port: 1002 }));
    assert.equal(t.admits('10.0.0.1'), false);
    assert.equal(t.admits('10.0.0.2'), true, 'another address has its own budget');
    t.remove('i1');
    assert.equal(t.admits('10.0.0.1'), true);
  });

  it('closes a connection idle for idleTimeoutMs, on the injected clock', () => {
    const clock = new ManualClock();
    const idle: string[] = [];
    const t = table(clock, { onIdle: (c) => idle.push(c.id) });
    const c = new FakeConnection('c1', { address: '127.0.0.1', port: 40000 });
    t.add(c);
    clock.advance(999);
    assert.equal(c.destroyed, false);
    clock.advance(1);
    assert.equal(c.destroyed, true);
    assert.deepEqual(idle, ['c1']);
    assert.equal(t.size, 0);
  });

  it('traffic defers the idle timeout', () => {
    const clock = new ManualClock();
    const t = table(clock);
    const c = new FakeConnection('c1', { address: '127.0.0.1', port: 40000 });
    t.add(c);
    clock.advance(800);
    t.touch('c1');
    clock.advance(800);
    assert.equal(c.destroyed, false, '800 ms after the last traffic');
    t.receive('c1', Uint8Array.of(13, 10));
    clock.advance(999);
    assert.equal(c.destroyed, false);
    clock.advance(1);
    assert.equal(c.destroyed, true);
  });

  it('idleTimeoutMs 0 never times out; clear() cancels every timer', () => {
    const clock = new ManualClock();
    const t0 = table(clock, { idleTimeoutMs: 0 });
    t0.add(new FakeConnection('c0', { address: '127.0.0.1', port: 1 }));
    assert.equal(clock.pending(), 0);
    const t = table(clock);
    t.add(new FakeConnection('c1', { address: '127.0.0.1', port: 2 }));
    t.add(new FakeConnection('c2', { address: '127.0.0.1', port: 3 }));
    assert.equal(clock.pending(), 2);
    const all = t.clear();
    assert.deepEqual(all.map((c) => c.id).sort(), ['c1', 'c2']);
    assert.equal(clock.pending(), 0);
    assert.equal(t.size, 0);
  });

  it('frames byte streams with a StreamFramer built from the limits (RFC 3261 §18.3)', () => {
    const t = table(new ManualClock(), { limits: { ...defaultLimits, maxBodyBytes: 10 } });
    const c = new FakeConnection('c1', { address: '127.0.0.1', port: 1 });
    t.add(c);
    const half = OPTIONS.length >> 1;
    assert.deepEqual(t.receive('c1', OPTIONS.subarray(0, half)), []);
    const ev = t.receive('c1', OPTIONS.subarray(half));
    assert.equal(ev.length, 1);
    assert.equal(ev[0]!.type, 'message');
    assert.deepEqual(t.receive('c1', utf8Encode('\r\n\r\n')), [
      { type: 'keepalive', kind: 'ping' },
    ]);
    const big = utf8Encode('MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 11\r\n\r\n');
    const err = t.receive('c1', big);
    assert.equal(err[0]!.type, 'error');
    assert.equal(err[0]!.type === 'error' && err[0]!.error.code, 'SB_ERR_BODY_TOO_LARGE');
    assert.deepEqual(t.receive('c1', OPTIONS), [], 'a dead framer yields nothing more');
  });

  it('message-framed connections (WebSocket) yield one message per receive, CRLF-only ones as keep-alives', () => {
    const t = table();
    t.add(new FakeConnection('w1', { address: '127.0.0.1', port: 1 }, 'inbound', 'ws', 'message'));
    assert.deepEqual(t.receive('w1', OPTIONS), [{ type: 'message', bytes: OPTIONS }]);
    assert.deepEqual(t.receive('w1', utf8Encode('\r\n\r\n')), [
      { type: 'keepalive', kind: 'ping' },
    ]);
    assert.deepEqual(t.receive('w1', utf8Encode('\r\n')), [{ type: 'keepalive', kind: 'pong' }]);
    assert.deepEqual(t.receive('nope', OPTIONS), [], 'unknown ids are ignored');
  });
});
