/**
 * The non-INVITE server transaction (RFC 3261 §17.2.2), driven through a
 * TransactionLayer on endpoint B of the memory transport; endpoint A is a bare
 * transport sending the request and its retransmissions (latency 0).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { createIdGenerator, seededRandom } from '../base/ids.ts';
import { createResponse } from '../sip/message/builder.ts';
import type { SipRequest } from '../sip/message/message.ts';
import type { TransportError } from '../transport/transport.ts';
import { createMemoryTransportPair, testRequest } from '../../test/support/memory-transport.ts';
import type { NonInviteServerState, NonInviteServerTransaction } from './non-invite-server.ts';
import { TransactionLayer, type ServerTransaction } from './transaction-layer.ts';
import { serverTransactions } from '../../test/support/server-transactions.ts';

type Step =
  | readonly ['advance', number]
  | readonly ['tu', number]
  /** The TU answers with this status as a stateless UAS (`respondStateless`, §8.2.7). */
  | readonly ['stateless', number]
  | readonly ['retransmit']
  | readonly ['fail-sends'];

interface Row {
  readonly name: string;
  readonly protocol?: 'udp' | 'tcp';
  readonly steps: readonly Step[];
  readonly state: NonInviteServerState;
  readonly sent: readonly string[];
  readonly tu?: readonly string[];
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const TABLE: readonly Row[] = [
  {
    name: 'Trying --request--> Trying: retransmissions are discarded, nothing is sent by itself (§17.2.2)',
    steps: [['advance', 500], ['retransmit'], ['advance', 5000]],
    state: 'trying',
    sent: [],
  },
  {
    name: 'Trying --1xx from TU--> Proceeding: sent (§17.2.2)',
    steps: [['tu', 100]],
    state: 'proceeding',
    sent: ['0 100'],
  },
  {
    name: 'Proceeding --request--> Proceeding: the last provisional is sent again (§17.2.2)',
    steps: [['tu', 100], ['tu', 183], ['advance', 500], ['retransmit']],
    state: 'proceeding',
    sent: ['0 100', '0 183', '500 183'],
  },
  {
    name: 'Trying --200-699 from TU--> Completed: sent; Timer J at 64*T1 (§17.2.2)',
    steps: [
      ['advance', 30],
      ['tu', 200],
      ['advance', 31_999],
    ],
    state: 'completed',
    sent: ['30 200'],
  },
  {
    name: 'Completed --Timer J--> Terminated at 64*T1 (§17.2.2)',
    steps: [
      ['advance', 30],
      ['tu', 200],
      ['advance', 32_000],
    ],
    state: 'terminated',
    sent: ['30 200'],
    tu: ['32030 terminated'],
  },
  {
    name: 'Proceeding --200-699 from TU--> Completed (§17.2.2)',
    steps: [
      ['tu', 100],
      ['advance', 100],
      ['tu', 404],
    ],
    state: 'completed',
    sent: ['0 100', '100 404'],
  },
  {
    name: 'Completed --request--> Completed: the final response is sent again (§17.2.2)',
    steps: [['tu', 200], ['advance', 500], ['retransmit'], ['advance', 1000], ['retransmit']],
    state: 'completed',
    sent: ['0 200', '500 200', '1500 200'],
  },
  {
    name: 'Completed: other final responses from the TU are discarded (§17.2.2)',
    steps: [
      ['tu', 200],
      ['tu', 500],
      ['tu', 180],
    ],
    state: 'completed',
    sent: ['0 200'],
  },
  {
    name: 'Reliable transport: Timer J is zero, Completed ends at once (§17.2.2)',
    protocol: 'tcp',
    steps: [['tu', 200]],
    state: 'terminated',
    sent: ['0 200'],
    tu: ['0 terminated'],
  },
  {
    name: 'Proceeding --transport error--> Proceeding: error to TU, the transaction stays (RFC 6026 §8.8)',
    steps: [['fail-sends'], ['tu', 100], ['retransmit']],
    state: 'proceeding',
    sent: [],
    tu: ['0 transport-error SB_ERR_TRANSPORT_SEND'],
  },
  {
    name: 'Trying --final response sent statelessly--> Terminated at once: no Completed, no Timer J (§8.2.7)',
    steps: [
      ['advance', 30],
      ['stateless', 407],
      ['advance', 40_000],
    ],
    state: 'terminated',
    sent: ['30 407'],
    tu: ['30 terminated'],
  },
  {
    name: 'After a stateless response the retransmitted request is a new one: it reaches the TU again (§8.2.7)',
    steps: [['stateless', 401], ['advance', 500], ['retransmit'], ['stateless', 401]],
    state: 'terminated',
    sent: ['0 401', '500 401'],
    tu: ['0 terminated', '500 terminated'],
  },
  {
    name: 'Proceeding --final response sent statelessly--> Terminated; a later response is discarded',
    steps: [
      ['tu', 100],
      ['stateless', 403],
      ['tu', 200],
    ],
    state: 'terminated',
    sent: ['0 100', '0 403'],
    tu: ['0 terminated'],
  },
  {
    name: 'Completed --transport error--> Completed: error to TU once; Timer J still ends it (RFC 6026 §8.8)',
    steps: [['tu', 200], ['fail-sends'], ['retransmit'], ['retransmit'], ['advance', 32_000]],
    state: 'terminated',
    sent: ['0 200'],
    tu: ['0 transport-error SB_ERR_TRANSPORT_SEND', '32000 terminated'],
  },
];

for (const row of TABLE) {
  test(`non-INVITE server: ${row.name}`, async () => {
    const clock = new ManualClock();
    const net = createMemoryTransportPair({ clock, protocol: row.protocol ?? 'udp', latencyMs: 0 });
    const layer = new TransactionLayer({
      transport: net.b,
      clock,
      ids: createIdGenerator(seededRandom(5)),
    });
    const tu: string[] = [];
    let tx: NonInviteServerTransaction | undefined;
    // As a TU does: the request is kept from onRequest (Completed over UDP lets it go).
    let received: SipRequest | undefined;
    layer.setDelegate({
      onRequest: (t) => {
        assert.equal(t.kind, 'non-invite');
        tx = t as NonInviteServerTransaction;
        received = tx.request;
        tx.setUser({
          onTransportError: (_t: ServerTransaction, e: Error) =>
            tu.push(`${clock.now()} transport-error ${(e as TransportError).code}`),
          onTerminated: () => tu.push(`${clock.now()} terminated`),
        });
      },
    });
    net.a.setDelegate({ onRequest: () => {}, onResponse: () => {} });
    const request = testRequest({ method: 'MESSAGE', from: net.a, to: net.b, body: 'hi' });
    void net.a.sendRequest(request, net.b.destination);
    clock.advance(0);
    assert.ok(tx !== undefined, 'the TU got the request');
    for (const step of row.steps) {
      switch (step[0]) {
        case 'advance':
          clock.advance(step[1]);
          break;
        case 'tu':
          void tx.respond(createResponse(received!, step[1], { toTag: 'uas' })).catch(() => {});
          clock.advance(0);
          break;
        case 'stateless':
          void tx
            .respondStateless(createResponse(received!, step[1], { toTag: 'uas' }))
            .catch(() => {});
          clock.advance(0);
          break;
        case 'retransmit':
          void net.a.sendRequest(request, net.b.destination);
          clock.advance(0);
          break;
        case 'fail-sends':
          net.b.failSends = 'SB_ERR_TRANSPORT_SEND';
          break;
      }
      await flush();
    }
    assert.equal(tx.state, row.state, net.transcript());
    assert.deepEqual(
      net
        .responses(undefined, 'b')
        .map((r) => `${r.at} ${(r.message as { status: number }).status}`),
      row.sent,
    );
    assert.deepEqual(tu, row.tu ?? []);
    assert.equal(layer.serverTransaction(tx.id), row.state === 'terminated' ? undefined : tx);
  });
}

test('non-INVITE server: respond() rejects with the transport error, and resolves once sent', async () => {
  const { net, txs } = serverTransactions('OPTIONS', ['one', 'two']);
  assert.equal(txs.length, 2);
  await txs[0]!.respond(createResponse(txs[0]!.request, 200, { toTag: 't' }));
  net.b.failSends = 'SB_ERR_TRANSPORT_SEND';
  await assert.rejects(txs[1]!.respond(createResponse(txs[1]!.request, 200, { toTag: 't' })), {
    code: 'SB_ERR_TRANSPORT_SEND',
  });
});

test('non-INVITE server: respondStateless refuses a provisional response', () => {
  const tx = serverTransactions('OPTIONS').txs[0] as NonInviteServerTransaction;
  assert.throws(() => tx.respondStateless(createResponse(tx.request, 100)), {
    code: 'SB_ERR_INVALID_ARGUMENT',
  });
  assert.equal(tx.state, 'trying');
});

test('non-INVITE server: Completed over UDP keeps the final response, not the request (§17.2.2)', async () => {
  const { net, txs } = serverTransactions('MESSAGE');
  const tx = txs[0] as NonInviteServerTransaction;
  const request = tx.request;
  await tx.respond(createResponse(request, 200, { toTag: 't' }));
  assert.equal(tx.state, 'completed');
  assert.throws(() => tx.request, { code: 'SB_ERR_NOT_KEPT' });
  // What Completed is there for still works: the response, parsed again from its octets.
  assert.equal(tx.lastResponse?.status, 200);
  assert.equal(tx.lastResponse?.callId, request.callId);
  assert.equal(net.responses(undefined, 'b').length, 1);
});

test('non-INVITE server: over a reliable transport the request stays readable until Terminated', async () => {
  const { txs } = serverTransactions('MESSAGE', ['one'], 'tcp');
  const tx = txs[0] as NonInviteServerTransaction;
  await tx.respond(createResponse(tx.request, 200, { toTag: 't' }));
  assert.equal(tx.state, 'terminated');
  assert.equal(tx.request.method, 'MESSAGE');
});
