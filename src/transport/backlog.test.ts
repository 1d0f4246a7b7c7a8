import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import diagnosticsChannel from 'node:diagnostics_channel';
import { describe, it } from 'node:test';
import { ManualClock } from '../base/index.ts';
import { ReadBacklog, READ_BATCH, type ReadBacklogOptions } from './backlog.ts';
import { TRANSPORT_CHANNELS, type TransportErrorEvent } from './diagnostics.ts';
import { createTransportLayer } from './layer.ts';
import type { InboundRequest } from './transport.ts';

/**
 * A ReadBacklog of batches of 4 whose turns end when the test says so; `turn` reads datagrams
 * `msEach` apart (default `msEachDefault`).
 */
function manual(options: Omit<ReadBacklogOptions, 'defer' | 'batch'>, msEachDefault = 0) {
  const clock = new ManualClock();
  const pending: (() => void)[] = [];
  const backlog = new ReadBacklog(clock, { ...options, defer: (fn) => pending.push(fn), batch: 4 });
  /** One turn that reads `n` datagrams `msEach` apart; what read() said for each. */
  const turn = (n: number, msEach = msEachDefault): boolean[] => {
    const said: boolean[] = [];
    for (let i = 0; i < n; i++) {
      said.push(backlog.read());
      clock.advance(msEach);
    }
    for (const fn of pending.splice(0)) fn();
    return said;
  };
  return { clock, backlog, turn };
}

describe('ReadBacklog', () => {
  it('says behind only once full batches have gone on for afterMs', () => {
    const { turn } = manual({ afterMs: 10 });
    assert.deepEqual(turn(4, 4), [false, false, false, false], 'first full batch: not yet');
    // The run began when the first full turn ended (t = 16); from t = 26 it counts.
    assert.deepEqual(turn(4, 4), [false, false, false, true]);
    assert.deepEqual(turn(4, 4), [true, true, true, true]);
  });

  it('a batch that is not full ends the run', () => {
    const { turn } = manual({ afterMs: 10 });
    turn(4, 5);
    assert.deepEqual(turn(4, 5), [false, false, true, true]);
    assert.deepEqual(turn(3, 5), [true, true, true], 'the short turn is known only at its end');
    assert.deepEqual(turn(4, 5), [false, false, false, false], 'a new run starts from zero');
  });

  it('a pause (one full batch, then the reads catch up) never counts', () => {
    const { clock, turn } = manual({ afterMs: 10 });
    for (let i = 0; i < 50; i++) {
      assert.deepEqual(turn(4), [false, false, false, false]);
      assert.deepEqual(turn(1), [false]);
      clock.advance(20);
    }
  });

  it('counts libuv batches of 32 by default', () => {
    assert.equal(READ_BATCH, 32);
  });
});

/** A ReadBacklog with a probe whose readings the test sets; counts the looks. */
function probed(readings: { fill: number; drops: number } | undefined, atFill = 0.5) {
  const state = { reading: readings, looks: 0 };
  const probe = (): { fill: number; drops: number } | undefined => {
    state.looks++;
    return state.reading;
  };
  const { backlog, turn } = manual({ afterMs: 10, atFill, probeEveryMs: 5, probe }, 1);
  return { backlog, state, turn };
}

describe('ReadBacklog with a look at the receive queue', () => {
  it('full batches with a queue below the mark never count, however long they last', () => {
    const { backlog, state, turn } = probed({ fill: 0.3, drops: 7 });
    assert.equal(backlog.probing, true);
    for (let i = 0; i < 100; i++) assert.deepEqual(turn(4), [false, false, false, false]);
    // One look at construction, then one per 5 ms of the run (400 ms of full batches).
    assert.ok(state.looks >= 70 && state.looks <= 82, `looks ${state.looks}`);
  });

  it('behind while a look finds the queue at the mark, until a look finds it below', () => {
    const { state, turn } = probed({ fill: 0.1, drops: 0 });
    turn(4);
    state.reading = { fill: 0.5, drops: 0 };
    assert.deepEqual(turn(4), [true, true, true, true], 'the run is on: the first read looks');
    assert.deepEqual(turn(4), [true, true, true, true]);
    state.reading = { fill: 0.49, drops: 0 };
    const said = turn(8);
    assert.equal(said[0], true, 'what the last look said holds until the next look');
    assert.equal(said.at(-1), false);
  });

  it('the kernel dropping datagrams since the last look counts, at any fill', () => {
    const { state, turn } = probed({ fill: 0, drops: 1000 });
    assert.deepEqual(turn(4), [false, false, false, false], 'drops before it was made do not');
    state.reading = { fill: 0.01, drops: 1001 };
    assert.deepEqual(turn(4), [true, true, true, true]);
    assert.deepEqual(turn(8).at(-1), false, 'no more drops, little queued: caught up');
  });

  it('a new run soon after a look waits for the gap before it looks again', () => {
    const { state, turn } = probed({ fill: 0.9, drops: 0 });
    turn(4);
    assert.deepEqual(turn(4), [true, true, true, true], 'looked at t = 4');
    turn(1);
    const looks = state.looks;
    turn(4);
    // The run starts at t = 13: the last look was 9 ms ago, more than probeEveryMs (5).
    assert.deepEqual(turn(4), [true, true, true, true]);
    assert.equal(state.looks, looks + 1);
    turn(1, 0);
    turn(4, 0);
    // The run starts at t = 17, 4 ms after that look (t = 13): not behind until the next
    // look, due at t = 18.
    assert.deepEqual(turn(4, 1), [false, true, true, true]);
    assert.equal(state.looks, looks + 2);
  });

  it('a turn that is not full ends it, and a later run looks again', () => {
    const { state, turn } = probed({ fill: 0.9, drops: 0 });
    turn(4);
    assert.deepEqual(turn(3), [true, true, true]);
    const looks = state.looks;
    assert.deepEqual(turn(4), [false, false, false, false], 'the turn before was not full');
    assert.deepEqual(turn(4), [true, true, true, true]);
    assert.equal(state.looks, looks + 1);
  });

  it('never reads the queue without full batches', () => {
    const { state, turn } = probed({ fill: 1, drops: 5 });
    for (let i = 0; i < 50; i++) assert.deepEqual(turn(3), [false, false, false]);
    assert.equal(state.looks, 1, 'the look at construction only');
  });

  it('falls back to the time rule when the queue cannot be read', () => {
    const none = probed(undefined);
    assert.equal(none.backlog.probing, false);
    none.turn(4, 4);
    assert.deepEqual(none.turn(4, 4), [false, false, false, true], 'afterMs 10, as without one');

    const { backlog, state, turn } = probed({ fill: 0, drops: 0 });
    turn(4, 4);
    state.reading = undefined;
    assert.deepEqual(turn(4, 4), [false, false, false, true]);
    assert.equal(backlog.probing, false, 'given up for good');
  });
});

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A request of kind `new` (no credentials, no To tag), `auth` (credentials) or `dialog` (To tag). */
function request(kind: 'new' | 'auth' | 'dialog', i: number): Uint8Array {
  const method = kind === 'dialog' ? 'BYE' : kind === 'auth' ? 'MESSAGE' : 'OPTIONS';
  return enc(
    `${method} sip:bob@127.0.0.1 SIP/2.0\r\n` +
      `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-${kind}-${i}\r\n` +
      'From: <sip:alice@example.com>;tag=a1\r\n' +
      `To: <sip:bob@example.com>${kind === 'dialog' ? ';tag=b1' : ''}\r\n` +
      `Call-ID: ${kind}-${i}@127.0.0.1\r\n` +
      `CSeq: 1 ${method}\r\n` +
      'Max-Forwards: 70\r\n' +
      (kind === 'auth'
        ? 'Proxy-Authorization: Digest username="alice", realm="example.com", nonce="n", ' +
          'uri="sip:bob@127.0.0.1", response="00000000000000000000000000000000"\r\n'
        : '') +
      'Content-Length: 0\r\n\r\n',
  );
}

/** Busy for `ms` (the server's work per request, so that reads fall behind). */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/**
 * `count` requests of each kind, interleaved, put in the layer's socket at once; the delegate
 * spends `workMs` on each. Resolves once every datagram was delivered or shed.
 */
async function burst(shedAfterMs: number, count: number, workMs: number, shedAtFill?: number) {
  const got = new Map<string, number>([
    ['new', 0],
    ['auth', 0],
    ['dialog', 0],
  ]);
  const layer = await createTransportLayer({
    listen: ['udp:127.0.0.1:0'],
    shedAfterMs,
    shedAtFill,
    delegate: {
      onRequest(req: InboundRequest) {
        const kind = req.message.callId.split('-')[0]!;
        got.set(kind, got.get(kind)! + 1);
        busy(workMs);
      },
      onResponse() {},
    },
  });
  const events: TransportErrorEvent[] = [];
  const onError = (e: unknown): void => {
    const ev = e as TransportErrorEvent;
    if (ev.layer === layer.id && ev.type === 'overload') events.push(ev);
  };
  diagnosticsChannel.subscribe(TRANSPORT_CHANNELS.error, onError);
  const client = createSocket('udp4');
  try {
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    const port = layer.listeners[0]!.local.port;
    // Sent before the layer reads any: they wait in its socket's receive buffer together (240
    // of them take about 300 KB of it, within what the kernel gives even at its default
    // net.core.rmem_max of 208 KB, doubled).
    for (let i = 0; i < count; i++) {
      for (const kind of ['new', 'auth', 'dialog'] as const) {
        client.send(request(kind, i), port, '127.0.0.1');
      }
    }
    const total = (): number => [...got.values()].reduce((a, b) => a + b, 0) + layer.shed;
    const until = Date.now() + 10_000;
    while (total() < 3 * count && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // Caught up: a new request is served again.
    const before = got.get('new')!;
    client.send(request('new', count), port, '127.0.0.1');
    while (got.get('new') === before && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return { got, shed: layer.shed, events };
  } finally {
    diagnosticsChannel.unsubscribe(TRANSPORT_CHANNELS.error, onError);
    client.close();
    await layer.close();
  }
}

describe('shedding new requests while a UDP socket is behind (shedAfterMs, shedAtFill)', () => {
  // Linux: the socket's queue decides (udp-queue.ts). 240 datagrams hold about 300 KB, 15% of
  // the 2 MiB the kernel gives a 1 MiB request (more where net.core.rmem_max is smaller).
  const linux = process.platform === 'linux';

  it('drops only new requests without credentials, and only while behind', async () => {
    const n = 80;
    const { got, shed, events } = await burst(20, n, 1, 0.02);
    assert.equal(got.get('auth'), n, 'every request with credentials is served');
    assert.equal(got.get('dialog'), n, 'every in-dialog request is served');
    assert.ok(shed > 0, `some new requests are shed (shed ${shed})`);
    assert.equal(got.get('new')! + shed, n + 1, 'each new request is served or shed');
    assert.equal(events.length, shed, 'each shed datagram is reported');
    assert.equal(events[0]!.protocol, 'udp');
    assert.equal(events[0]!.remote?.address, '127.0.0.1');
  });

  it('the time rule alone (shedAtFill 0) sheds the same burst', async () => {
    const n = 80;
    const { got, shed } = await burst(20, n, 1, 0);
    assert.ok(shed > 0, `shed ${shed}`);
    assert.equal(got.get('new')! + shed, n + 1);
    assert.equal(got.get('auth'), n);
  });

  it(
    'a queue below shedAtFill is served whole, however long the full batches last',
    {
      skip: linux ? false : 'the queue is read on Linux only',
    },
    async () => {
      const n = 80;
      const { got, shed } = await burst(1, n, 1, 0.95);
      assert.equal(shed, 0, 'the time rule (1 ms) would have shed most of them');
      assert.deepEqual([...got.values()], [n + 1, n, n]);
    },
  );

  it('with shedAfterMs 0, the same burst is served whole', async () => {
    const n = 80;
    const { got, shed } = await burst(0, n, 1);
    assert.equal(shed, 0);
    assert.deepEqual([...got.values()], [n + 1, n, n]);
  });

  it('refuses a negative shedAfterMs, and a shedAtFill outside 0..1', async () => {
    await assert.rejects(createTransportLayer({ listen: ['udp:127.0.0.1:0'], shedAfterMs: -1 }), {
      code: 'SB_ERR_INVALID_ARGUMENT',
    });
    for (const shedAtFill of [-0.1, 1.5, Number.NaN]) {
      await assert.rejects(createTransportLayer({ listen: ['udp:127.0.0.1:0'], shedAtFill }), {
        code: 'SB_ERR_INVALID_ARGUMENT',
      });
    }
  });
});
