/**
 * The INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §8.7, §8.8), driven
 * through a TransactionLayer on endpoint B of the memory transport; endpoint A
 * is a bare transport that sends the INVITE, its retransmissions and ACKs.
 * Latency is 0, so the times are the timers' own.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { createIdGenerator, seededRandom } from '../base/ids.ts';
import { createResponse } from '../sip/message/builder.ts';
import { serializeMessage } from '../sip/message/serialize.ts';
import type { InboundResponse, TransportError } from '../transport/transport.ts';
import { createMemoryTransportPair, testRequest } from '../../test/support/memory-transport.ts';
import type { InviteServerState, InviteServerTransaction } from './invite-server.ts';
import { buildAckForNon2xx } from './requests.ts';
import { TransactionLayer, type ServerTransaction } from './transaction-layer.ts';
import { serverTransactions } from '../../test/support/server-transactions.ts';

type Step =
  | readonly ['advance', number]
  /** The TU answers with this status. */
  | readonly ['tu', number]
  /** The TU answers with this status as a stateless UAS (`respondStateless`, §8.2.7). */
  | readonly ['stateless', number]
  /** A sends the INVITE again. */
  | readonly ['retransmit']
  /** A sends the ACK for the last final response it received (same branch, §17.1.1.3). */
  | readonly ['ack']
  | readonly ['fail-sends'];

interface Row {
  readonly name: string;
  readonly protocol?: 'udp' | 'tcp';
  readonly steps: readonly Step[];
  readonly state: InviteServerState;
  /** Responses B sent, as "time status". */
  readonly sent: readonly string[];
  /** What the TU saw besides the request (timeouts, errors, ACKs, termination). */
  readonly tu?: readonly string[];
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const TABLE: readonly Row[] = [
  {
    name: 'Proceeding: the transaction sends 100 Trying itself when the TU is silent for 200 ms (§17.2.1)',
    steps: [['advance', 199]],
    state: 'proceeding',
    sent: [],
  },
  {
    name: 'Proceeding: 100 Trying at 200 ms, once',
    steps: [
      ['advance', 200],
      ['advance', 5000],
    ],
    state: 'proceeding',
    sent: ['200 100'],
  },
  {
    name: 'Proceeding --1xx from TU--> Proceeding: sent; no 100 Trying from the transaction (§17.2.1)',
    steps: [
      ['advance', 50],
      ['tu', 180],
      ['advance', 1000],
    ],
    state: 'proceeding',
    sent: ['50 180'],
  },
  {
    name: 'Proceeding --INVITE--> Proceeding: the last provisional is sent again (§17.2.1)',
    steps: [['tu', 180], ['tu', 183], ['advance', 500], ['retransmit']],
    state: 'proceeding',
    sent: ['0 180', '0 183', '500 183'],
  },
  {
    name: 'Proceeding --INVITE--> Proceeding before any provisional: 100 Trying at once',
    steps: [['advance', 100], ['retransmit'], ['advance', 1000], ['retransmit']],
    state: 'proceeding',
    sent: ['100 100', '1100 100'],
  },
  {
    name: 'Proceeding --2xx from TU--> Accepted: sent once, not retransmitted; Timer L (RFC 6026 §8.7)',
    steps: [
      ['advance', 10],
      ['tu', 200],
      ['advance', 31_999],
    ],
    state: 'accepted',
    sent: ['10 200'],
  },
  {
    name: 'Accepted --Timer L--> Terminated at 64*T1 (RFC 6026 §8.7)',
    steps: [
      ['advance', 10],
      ['tu', 200],
      ['advance', 32_000],
    ],
    state: 'terminated',
    sent: ['10 200'],
    tu: ['32010 terminated'],
  },
  {
    name: 'Accepted --INVITE--> Accepted: the retransmission is absorbed (RFC 6026 §8.7)',
    steps: [['tu', 180], ['tu', 200], ['advance', 500], ['retransmit']],
    state: 'accepted',
    sent: ['0 180', '0 200'],
  },
  {
    name: 'Accepted --ACK--> Accepted: the ACK goes to the TU (RFC 6026 §8.7)',
    steps: [['tu', 200], ['advance', 20], ['ack']],
    state: 'accepted',
    sent: ['0 200'],
    tu: ['20 ack (matched)'],
  },
  {
    name: 'Accepted --2xx from TU--> Accepted: sent (the TU retransmits its 2xx); a non-2xx is discarded',
    steps: [
      ['tu', 200],
      ['advance', 500],
      ['tu', 200],
      ['tu', 486],
    ],
    state: 'accepted',
    sent: ['0 200', '500 200'],
  },
  {
    name: 'Proceeding --300-699 from TU--> Completed: Timer G at T1, doubling to T2; Timer H at 64*T1: failure to TU (§17.2.1)',
    steps: [
      ['tu', 486],
      ['advance', 32_000],
    ],
    state: 'terminated',
    sent: [
      '0 486',
      '500 486',
      '1500 486',
      '3500 486',
      '7500 486',
      '11500 486',
      '15500 486',
      '19500 486',
      '23500 486',
      '27500 486',
      '31500 486',
    ],
    tu: ['32000 timeout', '32000 terminated'],
  },
  {
    name: 'Completed: Timer H has not fired at 64*T1 - 1 ms',
    steps: [
      ['tu', 486],
      ['advance', 31_999],
    ],
    state: 'completed',
    sent: [
      '0 486',
      '500 486',
      '1500 486',
      '3500 486',
      '7500 486',
      '11500 486',
      '15500 486',
      '19500 486',
      '23500 486',
      '27500 486',
      '31500 486',
    ],
  },
  {
    name: 'Completed --INVITE--> Completed: the final response is sent again (§17.2.1)',
    steps: [['tu', 486], ['advance', 200], ['retransmit']],
    state: 'completed',
    sent: ['0 486', '200 486'],
  },
  {
    name: 'Completed --ACK--> Confirmed: Timer G stops; Timer I at T4 (§17.2.1)',
    steps: [['tu', 486], ['advance', 600], ['ack'], ['advance', 4999]],
    state: 'confirmed',
    sent: ['0 486', '500 486'],
  },
  {
    name: 'Confirmed --Timer I--> Terminated; ACK retransmissions are absorbed meanwhile (§17.2.1)',
    steps: [['tu', 486], ['ack'], ['advance', 100], ['ack'], ['retransmit'], ['advance', 4900]],
    state: 'terminated',
    sent: ['0 486'],
    tu: ['5000 terminated'],
  },
  {
    name: 'Proceeding --300-699 sent statelessly--> Terminated at once: no Timer G, no Timer H; the ACK matches nothing (§8.2.7)',
    steps: [['advance', 50], ['stateless', 407], ['advance', 5000], ['ack'], ['advance', 40_000]],
    state: 'terminated',
    sent: ['50 407'],
    tu: ['50 terminated', '5050 ack (unmatched)'],
  },
  {
    name: 'After a stateless response the retransmitted INVITE is a new one: it reaches the TU again (§8.2.7)',
    steps: [['stateless', 407], ['advance', 500], ['retransmit'], ['advance', 100]],
    state: 'proceeding',
    sent: ['0 407'],
    tu: ['0 terminated'],
  },
  {
    name: 'Completed: any further response from the TU is discarded',
    steps: [
      ['tu', 486],
      ['tu', 200],
      ['tu', 180],
    ],
    state: 'completed',
    sent: ['0 486'],
  },
  {
    name: 'Reliable transport: no Timer G; Timer H still fires at 64*T1 (§17.2.1)',
    protocol: 'tcp',
    steps: [
      ['tu', 486],
      ['advance', 32_000],
    ],
    state: 'terminated',
    sent: ['0 486'],
    tu: ['32000 timeout', '32000 terminated'],
  },
  {
    name: 'Reliable transport: Timer I is zero, the ACK ends the transaction at once (§17.2.1)',
    protocol: 'tcp',
    steps: [['tu', 603], ['advance', 10], ['ack']],
    state: 'terminated',
    sent: ['0 603'],
    tu: ['10 terminated'],
  },
  {
    name: 'Proceeding --transport error--> Proceeding: error to TU, the transaction stays (RFC 6026 §8.8)',
    steps: [['fail-sends'], ['tu', 180], ['advance', 1000], ['tu', 183]],
    state: 'proceeding',
    sent: [],
    tu: ['0 transport-error SB_ERR_TRANSPORT_SEND'],
  },
  {
    name: 'Proceeding, after a transport error: an INVITE retransmission still does not reach the TU (RFC 6026 §7.1)',
    steps: [['fail-sends'], ['tu', 180], ['retransmit']],
    state: 'proceeding',
    sent: [],
    tu: ['0 transport-error SB_ERR_TRANSPORT_SEND'],
  },
  {
    name: 'Accepted --transport error--> Accepted: error to TU, the transaction stays (RFC 6026 §8.8)',
    steps: [['fail-sends'], ['tu', 200], ['retransmit'], ['advance', 32_000]],
    state: 'terminated',
    sent: [],
    tu: ['0 transport-error SB_ERR_TRANSPORT_SEND', '32000 terminated'],
  },
  {
    name: 'Completed --transport error--> Completed: error to TU once; Timer H still ends it (RFC 6026 §8.8)',
    // (A failure is reported asynchronously, so the clock stops at 500 ms to let it arrive.)
    steps: [['tu', 486], ['fail-sends'], ['advance', 500], ['advance', 1000], ['advance', 30_500]],
    state: 'terminated',
    sent: ['0 486'],
    tu: ['500 transport-error SB_ERR_TRANSPORT_SEND', '32000 timeout', '32000 terminated'],
  },
];

for (const row of TABLE) {
  test(`INVITE server: ${row.name}`, async () => {
    const clock = new ManualClock();
    const net = createMemoryTransportPair({ clock, protocol: row.protocol ?? 'udp', latencyMs: 0 });
    const layer = new TransactionLayer({
      transport: net.b,
      clock,
      ids: createIdGenerator(seededRandom(5)),
    });
    const tu: string[] = [];
    let tx: InviteServerTransaction | undefined;
    layer.setDelegate({
      onRequest: (t) => {
        assert.equal(t.kind, 'invite');
        tx = t as InviteServerTransaction;
        tx.setUser({
          onTimeout: () => tu.push(`${clock.now()} timeout`),
          onTransportError: (_t: ServerTransaction, e: Error) =>
            tu.push(`${clock.now()} transport-error ${(e as TransportError).code}`),
          onTerminated: () => tu.push(`${clock.now()} terminated`),
        });
      },
      onAck: (_ack, matched) =>
        tu.push(`${clock.now()} ack (${matched ? 'matched' : 'unmatched'})`),
    });
    const atA: InboundResponse[] = [];
    net.a.setDelegate({ onRequest: () => {}, onResponse: (r) => atA.push(r) });
    const invite = testRequest({ method: 'INVITE', from: net.a, to: net.b });
    void net.a.sendRequest(invite, net.b.destination);
    clock.advance(0);
    assert.ok(tx !== undefined, 'the TU got the INVITE');
    for (const step of row.steps) {
      switch (step[0]) {
        case 'advance':
          clock.advance(step[1]);
          break;
        case 'tu':
          void tx.respond(createResponse(tx.request, step[1], { toTag: 'uas' })).catch(() => {});
          clock.advance(0);
          break;
        case 'stateless':
          void tx
            .respondStateless(createResponse(tx.request, step[1], { toTag: 'uas' }))
            .catch(() => {});
          clock.advance(0);
          break;
        case 'retransmit':
          void net.a.sendRequest(invite, net.b.destination);
          clock.advance(0);
          break;
        case 'ack': {
          const final = [...atA].reverse().find((r) => r.message.status >= 200);
          assert.ok(final !== undefined, 'A has a final response to acknowledge');
          void net.a.sendRequest(buildAckForNon2xx(invite, final.message), net.b.destination);
          clock.advance(0);
          break;
        }
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
    if (row.state === 'terminated') assert.deepEqual(tx.runningTimers(), []);
  });
}

test('INVITE server: the 100 Trying carries no To tag and copies Timestamp (§17.2.1, §8.2.6.1)', () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const layer = new TransactionLayer({ transport: net.b, clock });
  layer.setDelegate({ onRequest: () => {} });
  const atA: InboundResponse[] = [];
  net.a.setDelegate({ onRequest: () => {}, onResponse: (r) => atA.push(r) });
  void net.a.sendRequest(
    testRequest({ method: 'INVITE', from: net.a, to: net.b, headers: [['Timestamp', '54']] }),
    net.b.destination,
  );
  clock.advance(200);
  assert.equal(atA.length, 1);
  const trying = atA[0]!.message;
  assert.equal(trying.status, 100);
  assert.equal(trying.to.tag, undefined);
  assert.equal(trying.getRaw('Timestamp'), '54');
});

test('INVITE server: respondStateless refuses 1xx and 2xx (a 2xx is retransmitted by the TU, §13.3.1.4)', () => {
  const tx = serverTransactions('INVITE').txs[0] as InviteServerTransaction;
  for (const status of [180, 200]) {
    assert.throws(() => tx.respondStateless(createResponse(tx.request, status, { toTag: 't' })), {
      code: 'SB_ERR_INVALID_ARGUMENT',
    });
  }
  assert.equal(tx.state, 'proceeding');
});

test('INVITE server: in Accepted the INVITE and the 2xx are kept as octets and read back whole (RFC 6026 §8.7)', async () => {
  const tx = serverTransactions('INVITE').txs[0] as InviteServerTransaction;
  const invite = tx.request;
  const ok = createResponse(invite, 200, { toTag: 'acc', headers: [['X-Kept', 'yes']] });
  await tx.respond(ok);
  assert.equal(tx.state, 'accepted');
  const req = tx.request;
  assert.notEqual(req, invite, 'parsed again from the octets');
  assert.deepEqual(serializeMessage(req), serializeMessage(invite));
  assert.equal(req.callId, invite.callId);
  assert.equal(tx.request, req, 'parsed once, then the same object');
  const last = tx.lastResponse;
  assert.ok(last !== undefined);
  assert.notEqual(last, ok);
  assert.deepEqual(serializeMessage(last), serializeMessage(ok));
  assert.equal(last.to.tag, 'acc');
  assert.equal(last.getRaw('X-Kept'), 'yes');
});
