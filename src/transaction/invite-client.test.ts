/**
 * The INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4), driven
 * through a TransactionLayer on endpoint A of the memory transport; endpoint B
 * is a bare transport whose answers the test writes by hand. Latency is 0, so
 * the times in the tables are the ManualClock times of the timers themselves.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { createIdGenerator, seededRandom } from '../base/ids.ts';
import { createResponse } from '../sip/message/builder.ts';
import type { InboundRequest, TransportError } from '../transport/transport.ts';
import { createMemoryTransportPair, testRequest } from '../../test/support/memory-transport.ts';
import type { InviteClientState, InviteClientTransaction } from './invite-client.ts';
import { TransactionLayer, type ClientTransaction } from './transaction-layer.ts';

type Step =
  | readonly ['advance', number]
  /** B answers the INVITE with this status (and To tag). */
  | readonly ['answer', number, string?]
  | readonly ['cancel']
  | readonly ['fail-sends']
  | readonly ['close-connection'];

interface Row {
  readonly name: string;
  readonly protocol?: 'udp' | 'tcp';
  readonly steps: readonly Step[];
  readonly state: InviteClientState;
  /** What the TU saw, as "time event". */
  readonly tu: readonly string[];
  /** Times at which A sent the INVITE / ACK / CANCEL. */
  readonly invites?: readonly number[];
  readonly acks?: readonly number[];
  readonly cancels?: readonly number[];
  /** Stray responses handed to the core. */
  readonly strays?: number;
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function harness(protocol: 'udp' | 'tcp' = 'udp') {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, protocol, latencyMs: 0 });
  const layer = new TransactionLayer({
    transport: net.a,
    clock,
    ids: createIdGenerator(seededRandom(9)),
  });
  const tu: string[] = [];
  let strays = 0;
  layer.setDelegate({ onRequest: () => {}, onStrayResponse: () => void strays++ });
  const atB: InboundRequest[] = [];
  net.b.setDelegate({ onRequest: (r) => atB.push(r), onResponse: () => {} });
  const user = {
    onResponse: (res: { status: number }) => tu.push(`${clock.now()} ${res.status}`),
    onTimeout: () => tu.push(`${clock.now()} timeout`),
    onTransportError: (_tx: ClientTransaction, e: Error) =>
      tu.push(`${clock.now()} transport-error ${(e as TransportError).code}`),
    onTerminated: () => tu.push(`${clock.now()} terminated`),
  };
  return {
    clock,
    net,
    layer,
    tu,
    atB,
    user,
    strays: () => strays,
    start(): InviteClientTransaction {
      const invite = testRequest({ method: 'INVITE', from: net.a, to: net.b });
      const tx = layer.sendRequest(invite, net.b.destination, user);
      assert.equal(tx.kind, 'invite');
      clock.advance(0);
      return tx as InviteClientTransaction;
    },
    answer(status: number, toTag = 'uas-tag'): void {
      const first = atB.find((r) => r.message.method === 'INVITE');
      assert.ok(first, 'B has the INVITE');
      void net.b.sendResponse(createResponse(first.message, status, { toTag }), first.source);
      clock.advance(0);
    },
    sentAt(method: string): number[] {
      return net.requests(method, 'a').map((r) => r.at);
    },
  };
}

const TABLE: readonly Row[] = [
  {
    name: 'Calling: Timer A retransmits at T1, 2*T1, 4*T1... (§17.1.1.2) until Timer B fires at 64*T1: timeout to TU',
    steps: [['advance', 32_000]],
    state: 'terminated',
    tu: ['32000 timeout', '32000 terminated'],
    invites: [0, 500, 1500, 3500, 7500, 15500, 31500],
  },
  {
    name: 'Calling: Timer B has not fired at 64*T1 - 1 ms',
    steps: [['advance', 31_999]],
    state: 'calling',
    tu: [],
    invites: [0, 500, 1500, 3500, 7500, 15500, 31500],
  },
  {
    name: 'Calling --1xx--> Proceeding: response to TU, no more retransmissions, no Timer B (§17.1.1.2)',
    steps: [
      ['advance', 600],
      ['answer', 180],
      ['advance', 60_000],
    ],
    state: 'proceeding',
    tu: ['600 180'],
    invites: [0, 500],
  },
  {
    name: 'Proceeding --1xx--> Proceeding: every provisional to TU',
    steps: [
      ['answer', 100],
      ['answer', 180],
      ['answer', 183],
    ],
    state: 'proceeding',
    tu: ['0 100', '0 180', '0 183'],
    invites: [0],
  },
  {
    name: 'Calling --2xx--> Accepted: 2xx to TU, no ACK from the transaction, Timer M at 64*T1 (RFC 6026 §8.4)',
    steps: [
      ['advance', 100],
      ['answer', 200],
      ['advance', 31_999],
    ],
    state: 'accepted',
    tu: ['100 200'],
    invites: [0],
    acks: [],
  },
  {
    name: 'Accepted --Timer M--> Terminated (RFC 6026 §8.4); a later 2xx is stray (§17.1.3, §18.1.2)',
    steps: [
      ['advance', 100],
      ['answer', 200],
      ['advance', 32_000],
      ['answer', 200],
    ],
    state: 'terminated',
    tu: ['100 200', '32100 terminated'],
    strays: 1,
  },
  {
    name: 'Accepted --2xx--> Accepted: retransmissions and 2xx of other forks go to the TU (RFC 6026 §8.4)',
    steps: [
      ['answer', 180],
      ['answer', 200, 'fork-1'],
      ['advance', 500],
      ['answer', 200, 'fork-1'],
      ['answer', 200, 'fork-2'],
    ],
    state: 'accepted',
    tu: ['0 180', '0 200', '500 200', '500 200'],
    acks: [],
  },
  {
    name: 'Accepted: a non-2xx final response is absorbed',
    steps: [
      ['answer', 200],
      ['answer', 486],
      ['answer', 180],
    ],
    state: 'accepted',
    tu: ['0 200'],
    acks: [],
  },
  {
    name: 'Calling --300-699--> Completed: ACK sent, response to TU, Timer D (§17.1.1.2, §17.1.1.3)',
    steps: [
      ['advance', 700],
      ['answer', 486],
      ['advance', 31_999],
    ],
    state: 'completed',
    tu: ['700 486'],
    invites: [0, 500],
    acks: [700],
  },
  {
    name: 'Proceeding --300-699--> Completed; Completed --Timer D--> Terminated at +32 s (§17.1.1.2)',
    steps: [
      ['answer', 180],
      ['advance', 1000],
      ['answer', 603],
      ['advance', 32_000],
    ],
    state: 'terminated',
    tu: ['0 180', '1000 603', '33000 terminated'],
    acks: [1000],
  },
  {
    name: 'Completed --300-699--> Completed: ACK re-sent, the retransmission is not passed to the TU (§17.1.1.2)',
    steps: [
      ['answer', 486],
      ['advance', 400],
      ['answer', 486],
      ['advance', 800],
      ['answer', 486],
      ['answer', 200],
    ],
    state: 'completed',
    tu: ['0 486'],
    acks: [0, 400, 1200],
  },
  {
    name: 'Reliable transport: no Timer A; Timer B still fires at 64*T1 (§17.1.1.2)',
    protocol: 'tcp',
    steps: [['advance', 32_000]],
    state: 'terminated',
    tu: ['32000 timeout', '32000 terminated'],
    invites: [0],
  },
  {
    name: 'Reliable transport: Timer D is zero, Completed ends at once after the ACK (§17.1.1.2)',
    protocol: 'tcp',
    steps: [['answer', 404]],
    state: 'terminated',
    tu: ['0 404', '0 terminated'],
    acks: [0],
  },
  {
    name: 'Calling --transport error--> Terminated: error to TU (§17.1.1.2, §8.1.3.1)',
    steps: [['fail-sends'], ['advance', 500]],
    state: 'terminated',
    tu: ['500 transport-error SB_ERR_TRANSPORT_SEND', '500 terminated'],
  },
  {
    name: 'CANCEL in Calling is deferred until a provisional response arrives (§9.1)',
    steps: [['cancel'], ['advance', 700], ['answer', 180]],
    state: 'proceeding',
    tu: ['700 180'],
    invites: [0, 500],
    cancels: [700],
  },
  {
    name: 'CANCEL in Proceeding is sent at once (§9.1)',
    steps: [['answer', 180], ['advance', 10], ['cancel']],
    state: 'proceeding',
    tu: ['0 180'],
    cancels: [10],
  },
  {
    name: 'CANCEL requested in Calling is never sent if a final response comes first (§9.1)',
    steps: [['cancel'], ['answer', 486], ['cancel']],
    state: 'completed',
    tu: ['0 486'],
    cancels: [],
    acks: [0],
  },
  {
    name: 'CANCEL requested in Calling is never sent if Timer B fires first (§9.1)',
    steps: [['cancel'], ['advance', 32_000]],
    state: 'terminated',
    tu: ['32000 timeout', '32000 terminated'],
    cancels: [],
  },
  {
    name: 'No final response 64*T1 after the CANCEL: the INVITE transaction is destroyed (§9.1)',
    steps: [['answer', 180], ['cancel'], ['advance', 32_000]],
    state: 'terminated',
    tu: ['0 180', '32000 timeout', '32000 terminated'],
    cancels: [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500],
  },
];

for (const row of TABLE) {
  test(`INVITE client: ${row.name}`, async () => {
    const h = harness(row.protocol);
    const tx = h.start();
    for (const step of row.steps) {
      switch (step[0]) {
        case 'advance':
          h.clock.advance(step[1]);
          break;
        case 'answer':
          h.answer(step[1], step[2]);
          break;
        case 'cancel':
          tx.cancel();
          break;
        case 'fail-sends':
          h.net.a.failSends = 'SB_ERR_TRANSPORT_SEND';
          break;
        case 'close-connection':
          h.net.closeConnection();
          break;
      }
      await flush();
    }
    assert.equal(tx.state, row.state, h.net.transcript());
    assert.deepEqual(h.tu, row.tu);
    if (row.invites !== undefined) assert.deepEqual(h.sentAt('INVITE'), row.invites);
    if (row.acks !== undefined) assert.deepEqual(h.sentAt('ACK'), row.acks);
    if (row.cancels !== undefined) assert.deepEqual(h.sentAt('CANCEL'), row.cancels);
    assert.equal(h.strays(), row.strays ?? 0);
    if (row.state === 'terminated') {
      assert.equal(h.layer.clientTransaction(tx.id), undefined, 'destroyed immediately');
      assert.deepEqual(tx.runningTimers(), []);
    } else {
      assert.equal(h.layer.clientTransaction(tx.id), tx);
    }
  });
}

test('INVITE client: the ACK for a non-2xx goes to the INVITE destination with the INVITE branch (§17.1.1.3)', () => {
  const h = harness();
  const tx = h.start();
  h.answer(486, 'busy-tag');
  const ack = h.atB.find((r) => r.message.method === 'ACK');
  assert.ok(ack, 'B got the ACK');
  assert.equal(ack.message.topVia.branch, tx.request.topVia.branch);
  assert.equal(ack.message.via.length, 1);
  assert.equal(ack.message.to.tag, 'busy-tag');
  assert.equal(ack.message.cseq.seq, tx.request.cseq.seq);
  assert.equal(ack.message.cseq.method, 'ACK');
  assert.equal(ack.message.uriText, tx.request.uriText);
  assert.equal(tx.ack?.method, 'ACK');
});

test('INVITE client: cancel() returns the same CANCEL, undefined after a final; CANCEL gets its own transaction', () => {
  const h = harness();
  const tx = h.start();
  h.answer(180);
  const responses: number[] = [];
  const cancel = tx.cancel({ user: { onResponse: (res) => void responses.push(res.status) } });
  assert.ok(cancel, 'a CANCEL');
  assert.equal(tx.cancel(), cancel);
  assert.equal(cancel.method, 'CANCEL');
  assert.equal(cancel.topVia.branch, tx.request.topVia.branch);
  const cancelTx = tx.cancelTransaction;
  assert.ok(cancelTx, 'the CANCEL transaction');
  assert.equal(cancelTx.kind, 'non-invite');
  assert.notEqual(cancelTx.id, tx.id);
  // B answers the CANCEL 200 and the INVITE 487: each goes to its own transaction (§17.1.3).
  h.clock.advance(0);
  const atB = h.atB.find((r) => r.message.method === 'CANCEL');
  assert.ok(atB, 'B got the CANCEL');
  void h.net.b.sendResponse(createResponse(atB.message, 200, { toTag: 'uas-tag' }), atB.source);
  h.clock.advance(0);
  assert.deepEqual(responses, [200]);
  h.answer(487);
  assert.deepEqual(h.tu, ['0 180', '0 487']);
  assert.equal(tx.state, 'completed');
  assert.equal(tx.cancel(), undefined);
});

test('INVITE client: the 2xx is handed to the TU each time; the TU ACKs it through sendAck', async () => {
  const h = harness();
  const tx = h.start();
  h.answer(200);
  const ack = testRequest({
    method: 'ACK',
    from: h.net.a,
    to: h.net.b,
    toTag: 'uas-tag',
    branch: 'z9hG4bK-ack-for-2xx',
  });
  await h.layer.sendAck(ack, h.net.b.destination);
  h.clock.advance(0);
  assert.equal(h.sentAt('ACK').length, 1);
  assert.equal(tx.state, 'accepted');
  assert.equal(h.layer.size.client, 1);
});

test('INVITE client: in Accepted only the 2xx is kept, as octets; setUser hands later 2xx to another TU (RFC 6026 §8.4)', async () => {
  const h = harness();
  const tx = h.start();
  assert.equal(tx.request.method, 'INVITE', 'readable until Accepted');
  h.answer(200, 'first');
  await flush();
  assert.equal(tx.state, 'accepted');
  const kept = tx.lastResponse;
  assert.ok(kept !== undefined);
  assert.equal(kept.status, 200);
  assert.equal(kept.to.tag, 'first');
  assert.equal(tx.lastResponse, kept, 'parsed once, then the same object');
  // Nothing in Accepted is built from the INVITE any more (no CANCEL, no ACK): it is let go.
  assert.throws(() => tx.request, { code: 'SB_ERR_NOT_KEPT' });
  assert.equal(tx.cancel(), undefined, 'no CANCEL in Accepted (§9.1)');
  const later: string[] = [];
  tx.setUser({
    onResponse: (res) => later.push(`${res.status} ${res.to.tag}`),
    onTimeout: () => later.push('timeout'),
    onTransportError: () => later.push('transport-error'),
  });
  h.answer(200, 'first');
  await flush();
  assert.deepEqual(later, ['200 first']);
  assert.deepEqual(h.tu, ['0 200'], 'the first TU hears nothing more');
  assert.equal(tx.lastResponse?.to.tag, 'first', 'lastResponse stays the first 2xx');
});
