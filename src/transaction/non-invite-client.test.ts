/**
 * The non-INVITE client transaction (RFC 3261 §17.1.2), driven through a
 * TransactionLayer on endpoint A of the memory transport (latency 0, so the
 * times below are the timers' own).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { createIdGenerator, seededRandom } from '../base/ids.ts';
import { createResponse } from '../sip/message/builder.ts';
import type { SipResponse } from '../sip/message/message.ts';
import { serializeMessage } from '../sip/message/serialize.ts';
import type { InboundRequest, TransportError } from '../transport/transport.ts';
import { createMemoryTransportPair, testRequest } from '../../test/support/memory-transport.ts';
import type { NonInviteClientState, NonInviteClientTransaction } from './non-invite-client.ts';
import type { NonInviteServerTransaction } from './non-invite-server.ts';
import {
  TransactionLayer,
  type ClientTransaction,
  type ServerTransaction,
} from './transaction-layer.ts';

type Step =
  | readonly ['advance', number]
  | readonly ['answer', number]
  | readonly ['fail-sends']
  | readonly ['close-bound-connection'];

interface Row {
  readonly name: string;
  readonly protocol?: 'udp' | 'tcp';
  /** Send the request over the named stream connection (dest.connectionId). */
  readonly bound?: boolean;
  readonly steps: readonly Step[];
  readonly state: NonInviteClientState;
  readonly tu: readonly string[];
  /** Times at which A sent the request. */
  readonly sent?: readonly number[];
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const TABLE: readonly Row[] = [
  {
    name: 'Trying: Timer E retransmits at T1, then MIN(2*T1, T2)... capped at T2 (§17.1.2.2); Timer F at 64*T1: timeout to TU',
    steps: [['advance', 32_000]],
    state: 'terminated',
    tu: ['32000 timeout', '32000 terminated'],
    sent: [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500],
  },
  {
    name: 'Trying: Timer F has not fired at 64*T1 - 1 ms',
    steps: [['advance', 31_999]],
    state: 'trying',
    tu: [],
  },
  {
    name: 'Trying --1xx--> Proceeding; in Proceeding Timer E is reset with T2; Timer F still fires (§17.1.2.2)',
    steps: [
      ['advance', 600],
      ['answer', 100],
      ['advance', 31_400],
    ],
    state: 'terminated',
    tu: ['600 100', '32000 timeout', '32000 terminated'],
    sent: [0, 500, 1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500],
  },
  {
    name: 'Trying --200-699--> Completed: response to TU; Timer K fires at T4 (§17.1.2.2)',
    steps: [
      ['advance', 100],
      ['answer', 200],
      ['advance', 4999],
    ],
    state: 'completed',
    tu: ['100 200'],
    sent: [0],
  },
  {
    name: 'Completed --Timer K--> Terminated at T4 (§17.1.2.2)',
    steps: [
      ['advance', 100],
      ['answer', 200],
      ['advance', 5000],
    ],
    state: 'terminated',
    tu: ['100 200', '5100 terminated'],
  },
  {
    name: 'Proceeding --200-699--> Completed: no more retransmissions (§17.1.2.2)',
    steps: [
      ['answer', 180],
      ['advance', 1000],
      ['answer', 404],
      ['advance', 4000],
    ],
    state: 'completed',
    tu: ['0 180', '1000 404'],
    sent: [0, 500],
  },
  {
    name: 'Completed: retransmitted final responses are absorbed, not passed to the TU (§17.1.2.2)',
    steps: [
      ['answer', 200],
      ['answer', 200],
      ['answer', 500],
      ['answer', 180],
    ],
    state: 'completed',
    tu: ['0 200'],
  },
  {
    name: 'Reliable transport: no Timer E; Timer F at 64*T1 (§17.1.2.2)',
    protocol: 'tcp',
    steps: [['advance', 32_000]],
    state: 'terminated',
    tu: ['32000 timeout', '32000 terminated'],
    sent: [0],
  },
  {
    name: 'Reliable transport: Timer K is zero, Completed ends at once (§17.1.2.2)',
    protocol: 'tcp',
    steps: [['answer', 200]],
    state: 'terminated',
    tu: ['0 200', '0 terminated'],
    sent: [0],
  },
  {
    name: 'Trying --transport error--> Terminated: error to TU (§17.1.2.2, §8.1.3.1)',
    steps: [['fail-sends'], ['advance', 500]],
    state: 'terminated',
    tu: ['500 transport-error SB_ERR_TRANSPORT_SEND', '500 terminated'],
  },
  {
    name: 'Proceeding: the stream connection the request was sent on closes: transport error to TU',
    protocol: 'tcp',
    bound: true,
    steps: [['answer', 100], ['close-bound-connection']],
    state: 'terminated',
    tu: ['0 100', '0 transport-error SB_ERR_TRANSPORT_CLOSED', '0 terminated'],
  },
];

for (const row of TABLE) {
  test(`non-INVITE client: ${row.name}`, async () => {
    const clock = new ManualClock();
    const net = createMemoryTransportPair({ clock, protocol: row.protocol ?? 'udp', latencyMs: 0 });
    const layer = new TransactionLayer({
      transport: net.a,
      clock,
      ids: createIdGenerator(seededRandom(3)),
    });
    layer.setDelegate({ onRequest: () => {} });
    const atB: InboundRequest[] = [];
    net.b.setDelegate({ onRequest: (r) => atB.push(r), onResponse: () => {} });
    const tu: string[] = [];
    const dest = row.bound
      ? { ...net.b.destination, connectionId: net.connectionId! }
      : net.b.destination;
    const tx = layer.sendRequest(
      testRequest({ method: 'REGISTER', from: net.a, to: net.b }),
      dest,
      {
        onResponse: (res) => tu.push(`${clock.now()} ${res.status}`),
        onTimeout: () => tu.push(`${clock.now()} timeout`),
        onTransportError: (_tx: ClientTransaction, e: Error) =>
          tu.push(`${clock.now()} transport-error ${(e as TransportError).code}`),
        onTerminated: () => tu.push(`${clock.now()} terminated`),
      },
    ) as NonInviteClientTransaction;
    assert.equal(tx.kind, 'non-invite');
    clock.advance(0);
    for (const step of row.steps) {
      switch (step[0]) {
        case 'advance':
          clock.advance(step[1]);
          break;
        case 'answer': {
          const first = atB[0]!;
          void net.b.sendResponse(
            createResponse(first.message, step[1], { toTag: 'uas' }),
            first.source,
          );
          clock.advance(0);
          break;
        }
        case 'fail-sends':
          net.a.failSends = 'SB_ERR_TRANSPORT_SEND';
          break;
        case 'close-bound-connection':
          net.closeConnection();
          break;
      }
      await flush();
    }
    assert.equal(tx.state, row.state, net.transcript());
    assert.deepEqual(tu, row.tu);
    if (row.sent !== undefined) {
      assert.deepEqual(
        net.requests('REGISTER', 'a').map((r) => r.at),
        row.sent,
      );
    }
    assert.equal(layer.clientTransaction(tx.id), row.state === 'terminated' ? undefined : tx);
  });
}

test('non-INVITE client: cancel() is a no-op for non-INVITE requests (§9.1)', () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const layer = new TransactionLayer({ transport: net.a, clock });
  const tx = layer.sendRequest(
    testRequest({ method: 'OPTIONS', from: net.a, to: net.b }),
    net.b.destination,
    {
      onResponse: () => {},
      onTimeout: () => {},
      onTransportError: () => {},
    },
  );
  assert.equal(tx.cancel(), undefined);
  assert.equal(net.requests('CANCEL').length, 0);
  clock.advance(0);
  layer.close();
  assert.equal(clock.pending(), 0);
});

test('non-INVITE client: in Completed over UDP the final response is kept as its octets and read back whole', async () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const layer = new TransactionLayer({ transport: net.a, clock });
  layer.setDelegate({ onRequest: () => {} });
  const atB: InboundRequest[] = [];
  net.b.setDelegate({ onRequest: (r) => atB.push(r), onResponse: () => {} });
  let delivered: SipResponse | undefined;
  const tx = layer.sendRequest(
    testRequest({ method: 'MESSAGE', from: net.a, to: net.b }),
    net.b.destination,
    { onResponse: (res) => (delivered = res), onTimeout: () => {}, onTransportError: () => {} },
  ) as NonInviteClientTransaction;
  clock.advance(0);
  await flush();
  void net.b.sendResponse(
    createResponse(atB[0]!.message, 202, { toTag: 'kept', headers: [['X-Kept', 'yes']] }),
    atB[0]!.source,
  );
  clock.advance(0);
  await flush();
  assert.equal(tx.state, 'completed');
  assert.ok(delivered !== undefined);
  const kept = tx.lastResponse;
  assert.ok(kept !== undefined);
  // Parsed again from the octets, not the object the TU got: same bytes, same fields.
  assert.notEqual(kept, delivered);
  assert.deepEqual(serializeMessage(kept), serializeMessage(delivered));
  assert.equal(kept.status, 202);
  assert.equal(kept.to.tag, 'kept');
  assert.equal(kept.getRaw('X-Kept'), 'yes');
  assert.equal(tx.lastResponse, kept);
  layer.close();
});

test('non-INVITE client: its kept octets share no arena chunk with a server transaction’s 64*T1 ones', async () => {
  // An arena chunk lives as long as the longest-kept octets carved from it: the request a
  // client transaction sent and the response it got are kept T4 (Timer K), a server
  // transaction's final response 64*T1 (Timer J).
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const layer = new TransactionLayer({ transport: net.a, clock });
  const servers: ServerTransaction[] = [];
  layer.setDelegate({
    onRequest: (tx) => {
      servers.push(tx);
      void tx.respond(createResponse(tx.request, 200, { toTag: 'uas' })).catch(() => {});
    },
  });
  const atB: InboundRequest[] = [];
  net.b.setDelegate({ onRequest: (r) => atB.push(r), onResponse: () => {} });
  // B asks A (a server transaction at A), A asks B (a client transaction at A).
  void net.b.sendRequest(
    testRequest({ method: 'MESSAGE', from: net.b, to: net.a, callId: 'to-a' }),
    net.a.destination,
  );
  const client = layer.sendRequest(
    testRequest({ method: 'MESSAGE', from: net.a, to: net.b, callId: 'to-b' }),
    net.b.destination,
    { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} },
  ) as NonInviteClientTransaction;
  clock.advance(0);
  await flush();
  void net.b.sendResponse(createResponse(atB[0]!.message, 200, { toTag: 'b' }), atB[0]!.source);
  clock.advance(0);
  await flush();
  const server = servers[0] as NonInviteServerTransaction;
  assert.equal(server.state, 'completed');
  assert.equal(client.state, 'completed');
  type Chunks = { lastChunk?: ArrayBufferLike; reqChunk?: ArrayBufferLike };
  const long = (server as unknown as Chunks).lastChunk;
  const { reqChunk, lastChunk } = client as unknown as Chunks;
  assert.ok(long !== undefined && reqChunk !== undefined && lastChunk !== undefined);
  assert.notEqual(reqChunk, long);
  assert.notEqual(lastChunk, long);
  assert.equal(reqChunk, lastChunk, 'the client transaction’s two share the short-lived arena');
  // Both still read back whole.
  assert.equal(client.lastResponse?.status, 200);
  assert.equal(server.lastResponse?.status, 200);
  layer.close();
});
