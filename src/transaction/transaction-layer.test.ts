/**
 * The TransactionLayer as a whole: matching and dispatch (§17.1.3, §17.2.3),
 * stray responses, RFC 2543 peers, CANCEL on the server side (§9.2), ACK for
 * 2xx, overload, close, and a lossy end-to-end run over the memory transport.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../base/clock.ts';
import { SwitchboardError } from '../base/errors.ts';
import { createIdGenerator, seededRandom } from '../base/ids.ts';
import { createResponse } from '../sip/message/builder.ts';
import { parseMessage } from '../sip/parser/parse-message.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { InboundRequest, InboundResponse, TransportDelegate } from '../transport/transport.ts';
import { createMemoryTransportPair, testRequest } from '../../test/support/memory-transport.ts';
import type { TransactionEvent } from './context.ts';
import { InviteServerTransaction } from './invite-server.ts';
import { buildAckForNon2xx, buildCancel } from './requests.ts';
import {
  TransactionLayer,
  type ClientTransactionUser,
  type ServerTransaction,
  type ServerTransactionUser,
  type TransactionLayerOptions,
} from './transaction-layer.ts';

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const quietUser: ClientTransactionUser = {
  onResponse: () => {},
  onTimeout: () => {},
  onTransportError: () => {},
};

/** B runs a TransactionLayer; A is a bare transport the test speaks through. */
function serverSide(options: Partial<TransactionLayerOptions> = {}) {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const events: TransactionEvent[] = [];
  const layer = new TransactionLayer({
    transport: net.b,
    clock,
    ids: createIdGenerator(seededRandom(11)),
    onEvent: (e) => events.push(e),
    ...options,
  });
  const atA: InboundResponse[] = [];
  net.a.setDelegate({ onRequest: () => {}, onResponse: (r) => atA.push(r) });
  return {
    clock,
    net,
    layer,
    events,
    atA,
    /** A sends a request to B and the network delivers it. */
    send(req: SipRequest): void {
      void net.a.sendRequest(req, net.b.destination);
      clock.advance(0);
    },
    /** Responses A received, as "status CSeq-method". */
    received(): string[] {
      return atA.map((r) => `${r.message.status} ${r.message.cseq.method}`);
    },
  };
}

/** MESSAGE requests from A to B by Call-ID, each kept to be sent again (a retransmission). */
function messagesFromA(h: ReturnType<typeof serverSide>): {
  req: (callId: string) => SipRequest;
  reqs: Map<string, SipRequest>;
} {
  const reqs = new Map<string, SipRequest>();
  const req = (callId: string): SipRequest => {
    const r = testRequest({ method: 'MESSAGE', from: h.net.a, to: h.net.b, callId });
    reqs.set(callId, r);
    return r;
  };
  return { req, reqs };
}

function rawRequest(lines: string[]): string {
  return [...lines, 'Content-Length: 0', '', ''].join('\r\n');
}

// ---- client side ------------------------------------------------------------

test('a response matching no client transaction goes to onStrayResponse, or is dropped (§17.1.3, §18.1.2)', () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const events: TransactionEvent[] = [];
  const layer = new TransactionLayer({ transport: net.a, clock, onEvent: (e) => events.push(e) });
  const atB: InboundRequest[] = [];
  net.b.setDelegate({ onRequest: (r) => atB.push(r), onResponse: () => {} });
  const seen: number[] = [];
  const tx = layer.sendRequest(
    testRequest({ method: 'OPTIONS', from: net.a, to: net.b }),
    net.b.destination,
    { ...quietUser, onResponse: (r) => void seen.push(r.status) },
  );
  clock.advance(0);
  const req = atB[0]!;
  // Same branch, other CSeq method: not this transaction (§17.1.3 rule 2).
  const other = createResponse(req.message, 200, { toTag: 'x' }).set('CSeq', '1 INFO');
  // No delegate yet: dropped silently.
  void net.b.sendResponse(other, req.source);
  clock.advance(0);
  const strays: InboundResponse[] = [];
  layer.setDelegate({ onRequest: () => {}, onStrayResponse: (r) => void strays.push(r) });
  void net.b.sendResponse(other, req.source);
  // Another branch altogether.
  const alien = createResponse(req.message, 200, { toTag: 'x' }).set(
    'Via',
    'SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKunknown',
  );
  void net.b.sendResponse(alien, req.source);
  clock.advance(0);
  assert.equal(strays.length, 2);
  assert.deepEqual(seen, []);
  assert.equal(events.filter((e) => e.type === 'stray-response').length, 3);
  // The real answer reaches the transaction; after Timer K its retransmission is stray.
  void net.b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
  clock.advance(5000);
  assert.equal(tx.state, 'terminated');
  void net.b.sendResponse(createResponse(req.message, 200, { toTag: 'x' }), req.source);
  clock.advance(0);
  assert.deepEqual(seen, [200]);
  assert.equal(strays.length, 3);
});

test('sendRequest refuses what has no client transaction: ACK, a branch without magic cookie, a live branch', () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock });
  const layer = new TransactionLayer({ transport: net.a, clock });
  const dest = net.b.destination;
  assert.throws(
    () =>
      layer.sendRequest(testRequest({ method: 'ACK', from: net.a, to: net.b }), dest, quietUser),
    SwitchboardError,
  );
  assert.throws(
    () =>
      layer.sendRequest(
        testRequest({ method: 'OPTIONS', from: net.a, to: net.b, branch: 'old2543' }),
        dest,
        quietUser,
      ),
    SwitchboardError,
  );
  const req = testRequest({ method: 'OPTIONS', from: net.a, to: net.b });
  layer.sendRequest(req, dest, quietUser);
  assert.throws(() => layer.sendRequest(req, dest, quietUser), SwitchboardError);
  layer.close();
  assert.throws(
    () =>
      layer.sendRequest(testRequest({ method: 'INFO', from: net.a, to: net.b }), dest, quietUser),
    SwitchboardError,
  );
});

test('sendAck sends an ACK without a transaction, and refuses anything else', async () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const layer = new TransactionLayer({ transport: net.a, clock });
  await layer.sendAck(
    testRequest({ method: 'ACK', from: net.a, to: net.b, toTag: 'x' }),
    net.b.destination,
  );
  await assert.rejects(
    layer.sendAck(testRequest({ method: 'BYE', from: net.a, to: net.b }), net.b.destination),
    SwitchboardError,
  );
  assert.equal(net.requests('ACK', 'a').length, 1);
  assert.equal(layer.size.client, 0);
  assert.equal(layer.listenerFor(net.b.destination)?.id, 'memory-a');
});

// ---- server side: matching ----------------------------------------------------

test('§17.2.3: a retransmitted request reaches its transaction, not the TU; the same branch from another sent-by is new', () => {
  const h = serverSide();
  const txs: ServerTransaction[] = [];
  h.layer.setDelegate({ onRequest: (tx) => void txs.push(tx) });
  const req = testRequest({ method: 'OPTIONS', from: h.net.a, to: h.net.b });
  h.send(req);
  h.send(req);
  assert.equal(txs.length, 1);
  const elsewhere = req.set('Via', 'SIP/2.0/UDP 198.51.100.7:5060;branch=' + req.topVia.branch!);
  h.send(elsewhere);
  assert.equal(txs.length, 2);
  assert.equal(h.layer.size.server, 2);
});

test('§17.2.3 RFC 2543 peer: INVITE retransmission, 486, and the ACK matched by fields and the response To tag', () => {
  const h = serverSide();
  const txs: ServerTransaction[] = [];
  const acks: [SipRequest, ServerTransaction | undefined][] = [];
  h.layer.setDelegate({
    onRequest: (tx) => void txs.push(tx),
    onAck: (ack, tx) => void acks.push([ack.message, tx]),
  });
  const invite = rawRequest([
    'INVITE sip:bob@192.0.2.2 SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.1:5060',
    'To: <sip:bob@192.0.2.2>',
    'From: <sip:alice@192.0.2.1>;tag=2543a',
    'Call-ID: rfc2543-call',
    'CSeq: 7 INVITE',
  ]);
  const parsed = (text: string): SipRequest => {
    const r = parseMessage(text);
    assert.ok(r.ok && r.message.isRequest(), 'parses as a request');
    return r.message as SipRequest;
  };
  h.send(parsed(invite));
  h.send(parsed(invite));
  assert.equal(txs.length, 1, 'the retransmission matched');
  const tx = txs[0]!;
  assert.equal(h.received().length, 1, 'the retransmission got the 100 Trying');
  void tx.respond(createResponse(tx.request, 486, { toTag: 'busy' }));
  h.clock.advance(0);
  // An ACK whose To tag is not the response's: not this transaction (goes to the TU).
  const ack = (toTag: string): string =>
    rawRequest([
      'ACK sip:bob@192.0.2.2 SIP/2.0',
      'Via: SIP/2.0/UDP 192.0.2.1:5060',
      `To: <sip:bob@192.0.2.2>;tag=${toTag}`,
      'From: <sip:alice@192.0.2.1>;tag=2543a',
      'Call-ID: rfc2543-call',
      'CSeq: 7 ACK',
    ]);
  h.send(parsed(ack('someone-else')));
  assert.equal(acks.length, 1);
  assert.equal(acks[0]![1], undefined);
  assert.equal(tx.state, 'completed');
  h.send(parsed(ack('busy')));
  assert.equal(tx.state, 'confirmed');
  assert.equal(acks.length, 1);
  // A non-INVITE RFC 2543 retransmission matches as well.
  const bye = rawRequest([
    'BYE sip:bob@192.0.2.2 SIP/2.0',
    'Via: SIP/2.0/UDP 192.0.2.1:5060;branch=nocookie',
    'To: <sip:bob@192.0.2.2>;tag=x',
    'From: <sip:alice@192.0.2.1>;tag=2543a',
    'Call-ID: rfc2543-call',
    'CSeq: 8 BYE',
  ]);
  h.send(parsed(bye));
  h.send(parsed(bye));
  assert.equal(txs.length, 2);
});

test('ACK for a 2xx (its own branch) goes to onAck without a transaction (§17.1.1.3, §17.2.3)', () => {
  const h = serverSide();
  const acks: [InboundRequest, ServerTransaction | undefined][] = [];
  let tx: ServerTransaction | undefined;
  h.layer.setDelegate({
    onRequest: (t) => {
      tx = t;
      void t.respond(createResponse(t.request, 200, { toTag: 'ok' }));
    },
    onAck: (ack, t) => void acks.push([ack, t]),
  });
  h.send(testRequest({ method: 'INVITE', from: h.net.a, to: h.net.b }));
  assert.equal(tx?.state, 'accepted');
  h.send(
    testRequest({
      method: 'ACK',
      from: h.net.a,
      to: h.net.b,
      toTag: 'ok',
      branch: 'z9hG4bK-2xx-ack',
    }),
  );
  assert.equal(acks.length, 1);
  assert.equal(acks[0]![1], undefined);
  assert.equal(acks[0]![0].message.to.tag, 'ok');
  assert.ok(
    h.events.some((e) => e.type === 'ack-to-tu' && !e.matched),
    'an ack-to-tu event',
  );
});

// ---- server side: CANCEL ----------------------------------------------------------

test('§9.2: a CANCEL matching an INVITE in Proceeding gets 200 (same To tag) and reaches onCancel; the TU sends 487', () => {
  const h = serverSide();
  const requests: ServerTransaction[] = [];
  const cancels: [ServerTransaction, SipRequest][] = [];
  h.layer.setDelegate({
    onRequest: (tx) => {
      requests.push(tx);
      void tx.respond(createResponse(tx.request, 180, { toTag: 'ringing' }));
    },
    onCancel: (inviteTx, cancel) => {
      cancels.push([inviteTx, cancel]);
      void inviteTx.respond(createResponse(inviteTx.request, 487, { toTag: 'ringing' }));
    },
  });
  const invite = testRequest({ method: 'INVITE', from: h.net.a, to: h.net.b });
  h.send(invite);
  const cancel = buildCancel(invite);
  h.send(cancel);
  assert.equal(requests.length, 1, 'the CANCEL is not a new request for the TU');
  assert.equal(cancels.length, 1);
  assert.equal(cancels[0]![0], requests[0]);
  assert.equal(cancels[0]![1].method, 'CANCEL');
  assert.deepEqual(h.received(), ['180 INVITE', '200 CANCEL', '487 INVITE']);
  assert.equal(h.atA[1]!.message.to.tag, 'ringing');
  // The CANCEL's retransmission is absorbed by its own transaction: 200 again, no second onCancel.
  h.send(cancel);
  assert.deepEqual(h.received(), ['180 INVITE', '200 CANCEL', '487 INVITE', '200 CANCEL']);
  assert.equal(cancels.length, 1);
  // The ACK for the 487 confirms the INVITE transaction.
  h.send(buildAckForNon2xx(invite, h.atA[2]!.message));
  assert.equal(requests[0]!.state, 'confirmed');
});

test('§9.2: without onCancel the layer answers the INVITE with 487 itself', () => {
  const h = serverSide();
  let tx: ServerTransaction | undefined;
  h.layer.setDelegate({ onRequest: (t) => void (tx = t) });
  const invite = testRequest({ method: 'INVITE', from: h.net.a, to: h.net.b });
  h.send(invite);
  h.send(buildCancel(invite));
  assert.deepEqual(h.received(), ['200 CANCEL', '487 INVITE']);
  assert.equal(h.atA[0]!.message.to.tag, h.atA[1]!.message.to.tag, 'the same To tag (§9.2)');
  assert.equal(tx?.state, 'completed');
});

test('§9.2: a CANCEL after the final response still gets 200 and changes nothing', () => {
  const h = serverSide();
  const cancels: unknown[] = [];
  h.layer.setDelegate({
    onRequest: (t) => void t.respond(createResponse(t.request, 603, { toTag: 'no' })),
    onCancel: (t) => void cancels.push(t),
  });
  const invite = testRequest({ method: 'INVITE', from: h.net.a, to: h.net.b });
  h.send(invite);
  h.send(buildCancel(invite));
  assert.deepEqual(h.received(), ['603 INVITE', '200 CANCEL']);
  assert.equal(h.atA[1]!.message.to.tag, 'no');
  assert.equal(cancels.length, 0);
});

test('§9.2: a CANCEL for a non-INVITE transaction gets 200 too ("regardless of the method")', () => {
  const h = serverSide();
  h.layer.setDelegate({ onRequest: () => {} });
  const options = testRequest({ method: 'OPTIONS', from: h.net.a, to: h.net.b });
  h.send(options);
  h.send(buildCancel(options));
  assert.deepEqual(h.received(), ['200 CANCEL']);
});

test('§9.2: a CANCEL finds a MESSAGE, a BYE and an extension method alike (keyed two ways)', () => {
  for (const method of ['MESSAGE', 'BYE', 'FROBNICATE']) {
    const h = serverSide();
    h.layer.setDelegate({ onRequest: () => {} });
    const req = testRequest({ method, from: h.net.a, to: h.net.b });
    h.send(req);
    h.send(buildCancel(req));
    assert.deepEqual(h.received(), ['200 CANCEL'], method);
  }
});

test('§9.2: a CANCEL matching nothing gets 481 from the layer, not the TU; a proxy can ask for it instead', () => {
  const h = serverSide();
  const seen: string[] = [];
  h.layer.setDelegate({ onRequest: (t) => void seen.push(t.request.method) });
  const cancel = buildCancel(testRequest({ method: 'INVITE', from: h.net.a, to: h.net.b }));
  h.send(cancel);
  h.send(cancel);
  assert.deepEqual(seen, []);
  assert.deepEqual(h.received(), ['481 CANCEL', '481 CANCEL']);
  assert.ok(h.atA[0]!.message.to.tag !== undefined, '481 carries a To tag (§8.2.6.2)');

  const proxy = serverSide({ unmatchedCancel: 'deliver' });
  const forwarded: string[] = [];
  proxy.layer.setDelegate({ onRequest: (t) => void forwarded.push(t.request.method) });
  proxy.send(buildCancel(testRequest({ method: 'INVITE', from: proxy.net.a, to: proxy.net.b })));
  assert.deepEqual(forwarded, ['CANCEL']);
  assert.deepEqual(proxy.received(), []);
});

// ---- server side: limits, TU failures, close --------------------------------------

test('bounded memory: beyond maxServerTransactions a new request gets 503 with Retry-After, statelessly', () => {
  const h = serverSide({ maxServerTransactions: 2, overloadRetryAfter: 7 });
  const seen: string[] = [];
  const txs: ServerTransaction[] = [];
  h.layer.setDelegate({
    onRequest: (t) => {
      seen.push(t.request.callId);
      txs.push(t);
    },
  });
  const req = (callId: string): SipRequest =>
    testRequest({ method: 'MESSAGE', from: h.net.a, to: h.net.b, callId });
  h.send(req('one'));
  h.send(req('two'));
  h.send(req('three'));
  assert.deepEqual(seen, ['one', 'two']);
  assert.deepEqual(h.received(), ['503 MESSAGE']);
  assert.equal(h.atA[0]!.message.getRaw('Retry-After'), '7');
  assert.equal(h.layer.size.server, 2);
  assert.ok(
    h.events.some((e) => e.type === 'overload'),
    'an overload event',
  );
  // Once one terminates (Timer J after the final response), there is room again.
  void txs[0]!.respond(createResponse(txs[0]!.request, 200, { toTag: 't' }));
  h.clock.advance(32_000);
  h.send(req('four'));
  assert.deepEqual(seen, ['one', 'two', 'four']);
});

test('a full table ends the oldest finished transactions early (after 2*T2), never one in progress', () => {
  const h = serverSide({ maxServerTransactions: 2 });
  const seen: string[] = [];
  const txs = new Map<string, ServerTransaction>();
  h.layer.setDelegate({
    onRequest: (t) => {
      seen.push(t.request.callId);
      txs.set(t.request.callId, t);
    },
  });
  const { req, reqs } = messagesFromA(h);
  const answer = (callId: string): void => {
    const t = txs.get(callId)!;
    void t.respond(createResponse(t.request, 200, { toTag: 't' }));
    h.clock.advance(0);
  };
  h.send(req('one'));
  answer('one');
  h.send(req('two'));
  answer('two');
  assert.deepEqual(h.received(), ['200 MESSAGE', '200 MESSAGE']);
  // Both finished, both in Timer J (32 s), neither has waited 2*T2 = 8 s: no room yet.
  h.clock.advance(7_000);
  h.send(req('three'));
  assert.deepEqual(seen, ['one', 'two']);
  assert.equal(h.received()[2], '503 MESSAGE');
  // At 8 s the oldest is ended early and the new request served.
  h.clock.advance(1_000);
  h.send(req('four'));
  assert.deepEqual(seen, ['one', 'two', 'four']);
  assert.equal(h.layer.size.server, 2);
  assert.deepEqual(
    h.events.filter((e) => e.type === 'ended-early'),
    [{ type: 'ended-early', count: 1 }],
  );
  // 'two' still answers its retransmission from Completed, without the TU.
  void h.net.a.sendRequest(reqs.get('two')!, h.net.b.destination);
  h.clock.advance(0);
  assert.deepEqual(h.received().slice(3), ['200 MESSAGE']);
  assert.deepEqual(seen, ['one', 'two', 'four']);
  // 'four' gets no answer: in progress, it is never ended to make room, 'two' is.
  h.clock.advance(10_000);
  h.send(req('five'));
  assert.deepEqual(seen, ['one', 'two', 'four', 'five']);
  h.send(req('six'));
  assert.deepEqual(seen, ['one', 'two', 'four', 'five']);
  assert.deepEqual(h.received().slice(4), ['503 MESSAGE']);
  assert.equal(txs.get('four')!.state, 'trying');
});

test('screen: a request the TU answers at once gets no transaction, even with the table full', () => {
  const h = serverSide({ maxServerTransactions: 1 });
  const seen: string[] = [];
  const screened: string[] = [];
  h.layer.setDelegate({
    onRequest: (t) => void seen.push(t.request.callId),
    screen: (inbound) => {
      const callId = inbound.message.callId;
      if (callId === 'boom') throw new Error('boom');
      if (!callId.startsWith('chal')) return false;
      screened.push(callId);
      return true;
    },
  });
  const req = (callId: string): SipRequest =>
    testRequest({ method: 'MESSAGE', from: h.net.a, to: h.net.b, callId });
  h.send(req('kept'));
  assert.deepEqual(seen, ['kept']);
  assert.equal(h.layer.size.server, 1, 'the table is full');
  h.send(req('chal-1'));
  h.send(req('chal-1'));
  assert.deepEqual(screened, ['chal-1', 'chal-1'], 'offered again: no transaction absorbed it');
  assert.equal(h.layer.size.server, 1);
  assert.deepEqual(h.received(), [], 'no 503: the screen is asked before the bound');
  // Not screened: the full table answers 503.
  h.send(req('other'));
  assert.deepEqual(h.received(), ['503 MESSAGE']);
  // A throwing screen is contained and the request goes on (here to the full table's 503).
  h.send(req('boom'));
  assert.deepEqual(h.received(), ['503 MESSAGE', '503 MESSAGE']);
  assert.ok(h.events.some((e) => e.type === 'user-error'));
});

test('maxServerTransactionsPerSource: one source beyond its share gets 503, others are still served', () => {
  const h = serverSide({ maxServerTransactionsPerSource: 2, overloadRetryAfter: 3 });
  const seen: string[] = [];
  const txs: ServerTransaction[] = [];
  h.layer.setDelegate({
    onRequest: (t) => {
      seen.push(t.request.callId);
      txs.push(t);
    },
  });
  const req = (callId: string): SipRequest =>
    testRequest({ method: 'MESSAGE', from: h.net.a, to: h.net.b, callId });
  h.send(req('a1'));
  h.send(req('a2'));
  h.send(req('a3'));
  assert.deepEqual(seen, ['a1', 'a2']);
  assert.deepEqual(h.received(), ['503 MESSAGE']);
  assert.equal(h.atA[0]!.message.getRaw('Retry-After'), '3');
  // Another host (its request handed to the layer as B's transport would).
  const viaB = (h.net.b as unknown as { delegate: TransportDelegate }).delegate;
  const source = { ...h.net.b.destination, address: '192.0.2.77', port: 5060 };
  viaB.onRequest({
    message: testRequest({ method: 'MESSAGE', from: h.net.a, to: h.net.b, callId: 'c1' }),
    source: { ...source, listener: h.net.b.listeners[0]! },
  });
  h.clock.advance(0);
  assert.deepEqual(seen, ['a1', 'a2', 'c1']);
  // A's share frees up as its transactions end (Timer J after the final response).
  void txs[0]!.respond(createResponse(txs[0]!.request, 200, { toTag: 't' }));
  h.clock.advance(32_000);
  h.send(req('a4'));
  assert.deepEqual(seen, ['a1', 'a2', 'c1', 'a4']);
  assert.throws(() => serverSide({ maxServerTransactionsPerSource: 0 }), {
    code: 'SB_ERR_INVALID_ARGUMENT',
  });
});

test('maxServerTransactionsPerSource: a finished transaction counts for 2*T2, not its whole 64*T1', () => {
  const h = serverSide({ maxServerTransactionsPerSource: 2 });
  const seen: string[] = [];
  h.layer.setDelegate({
    onRequest: (t) => {
      seen.push(t.request.callId);
      void t.respond(createResponse(t.request, 200, { toTag: `t-${t.request.callId}` }));
    },
  });
  const { req, reqs } = messagesFromA(h);
  h.send(req('a1'));
  h.send(req('a2'));
  h.send(req('a3'));
  assert.deepEqual(seen, ['a1', 'a2'], 'both answered, still counted: a3 refused');
  assert.deepEqual(h.received(), ['200 MESSAGE', '200 MESSAGE', '503 MESSAGE']);
  h.clock.advance(7_900);
  h.send(req('a4'));
  assert.deepEqual(seen, ['a1', 'a2'], 'not yet 8 s');
  h.clock.advance(200);
  h.send(req('a5'));
  h.send(req('a6'));
  assert.deepEqual(seen, ['a1', 'a2', 'a5', 'a6'], 'a1 and a2 no longer count');
  assert.equal(h.layer.size.server, 4, 'a1 and a2 are still kept (Timer J)');
  // A retransmission of a1 is still answered from its transaction, not handed to the TU.
  void h.net.a.sendRequest(reqs.get('a1')!, h.net.b.destination);
  h.clock.advance(0);
  assert.deepEqual(seen, ['a1', 'a2', 'a5', 'a6']);
  assert.equal(h.atA.at(-1)!.message.to.tag, 't-a1');
  // a5 and a6 count now: a7 is refused.
  h.send(req('a7'));
  assert.deepEqual(h.received().slice(-1), ['503 MESSAGE']);
  // Timer J ends a1 and a2 at 32 s; uncounted already, they are not taken off the share again.
  h.clock.advance(23_800);
  h.send(req('a8'));
  h.send(req('a9'));
  assert.deepEqual(seen, ['a1', 'a2', 'a5', 'a6', 'a8', 'a9']);
  assert.equal(h.layer.size.server, 6);
  h.clock.advance(200);
  assert.equal(h.layer.size.server, 4, 'a1 and a2 ended by Timer J');
  h.send(req('a10'));
  assert.deepEqual(seen, ['a1', 'a2', 'a5', 'a6', 'a8', 'a9'], 'a8 and a9 still count');
  assert.deepEqual(h.received().slice(-1), ['503 MESSAGE']);
});

test('maxServerTransactionsPerSource: an accepted INVITE counts for 2*T2 of its Timer L', () => {
  const h = serverSide({ maxServerTransactionsPerSource: 1 });
  const seen: string[] = [];
  h.layer.setDelegate({
    onRequest: (t) => {
      seen.push(t.request.callId);
      void t.respond(createResponse(t.request, 200, { toTag: 'callee' }));
    },
  });
  const invite = (callId: string): SipRequest =>
    testRequest({ method: 'INVITE', from: h.net.a, to: h.net.b, callId });
  h.send(invite('i1'));
  h.send(invite('i2'));
  assert.deepEqual(seen, ['i1']);
  assert.deepEqual(h.received(), ['200 INVITE', '503 INVITE']);
  h.clock.advance(8_100);
  h.send(invite('i3'));
  assert.deepEqual(seen, ['i1', 'i3']);
  assert.equal(h.layer.size.server, 2, 'i1 is still kept (RFC 6026 Timer L)');
});

test('no delegate: a request is answered 503; a throwing TU is contained (user-error event)', () => {
  const h = serverSide();
  h.send(testRequest({ method: 'OPTIONS', from: h.net.a, to: h.net.b, callId: 'a' }));
  assert.deepEqual(h.received(), ['503 OPTIONS']);
  h.layer.setDelegate({
    onRequest: () => {
      throw new Error('TU bug');
    },
  });
  h.send(testRequest({ method: 'OPTIONS', from: h.net.a, to: h.net.b, callId: 'b' }));
  assert.ok(
    h.events.some((e) => e.type === 'user-error'),
    'a user-error event',
  );
  assert.equal(h.layer.size.server, 2);
});

test('public types: one ServerTransactionUser serves either server machine (Timer H, Timer J)', () => {
  const h = serverSide();
  const log: string[] = [];
  const user: ServerTransactionUser = {
    onTimeout: (tx) => void log.push(`${h.clock.now()} timeout ${tx.kind}`),
    onTerminated: (tx) => void log.push(`${h.clock.now()} terminated ${tx.kind}`),
  };
  h.layer.setDelegate({
    onRequest: (tx) => {
      tx.setUser(user);
      void tx.respond(createResponse(tx.request, 404, { toTag: 'x' }));
    },
  });
  h.send(testRequest({ method: 'INVITE', from: h.net.a, to: h.net.b }));
  h.send(testRequest({ method: 'OPTIONS', from: h.net.a, to: h.net.b }));
  h.clock.advance(32_000);
  assert.deepEqual(log, [
    '32000 timeout invite',
    '32000 terminated invite',
    '32000 terminated non-invite',
  ]);
  assert.deepEqual(h.layer.size, { client: 0, server: 0 });
});

test('close() cancels every timer, forgets every transaction and ignores later traffic', () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0 });
  const a = new TransactionLayer({ transport: net.a, clock });
  const b = new TransactionLayer({ transport: net.b, clock });
  const seen: string[] = [];
  b.setDelegate({
    onRequest: (t) => {
      seen.push(t.request.method);
      if (t.request.method === 'MESSAGE')
        void t.respond(createResponse(t.request, 200, { toTag: 'x' }));
    },
  });
  a.sendRequest(
    testRequest({ method: 'INVITE', from: net.a, to: net.b }),
    net.b.destination,
    quietUser,
  );
  a.sendRequest(
    testRequest({ method: 'MESSAGE', from: net.a, to: net.b, callId: 'm' }),
    net.b.destination,
    quietUser,
  );
  clock.advance(0);
  assert.deepEqual(seen, ['INVITE', 'MESSAGE']);
  assert.ok(clock.pending() > 0, 'timers are running');
  a.close();
  b.close();
  assert.equal(clock.pending(), 0);
  assert.deepEqual(a.size, { client: 0, server: 0 });
  assert.deepEqual(b.size, { client: 0, server: 0 });
  void net.a.sendRequest(
    testRequest({ method: 'OPTIONS', from: net.a, to: net.b }),
    net.b.destination,
  );
  clock.advance(0);
  assert.deepEqual(seen, ['INVITE', 'MESSAGE']);
  assert.equal(net.responses(undefined, 'b').length, 1, 'only the 200 to MESSAGE');
});

test('events: a non-INVITE exchange reports creation, each state change and termination', () => {
  const h = serverSide();
  h.layer.setDelegate({
    onRequest: (t) => void t.respond(createResponse(t.request, 200, { toTag: 'x' })),
  });
  h.send(testRequest({ method: 'OPTIONS', from: h.net.a, to: h.net.b }));
  h.clock.advance(32_000);
  assert.deepEqual(
    h.events.map((e) =>
      e.type === 'state' ? `${e.from}->${e.to}` : e.type === 'timer' ? `timer ${e.timer}` : e.type,
    ),
    ['created', 'trying->completed', 'timer J', 'completed->terminated'],
  );
});

// ---- end to end over a lossy network ---------------------------------------------

test('lossy UDP (30% drop, seeded): INVITE/180/200/ACK and 20 non-INVITE transactions complete within 64*T1', async () => {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, dropRate: 0.3, seed: 2024, latencyMs: 20 });
  const events: TransactionEvent[] = [];
  const onEvent = (e: TransactionEvent): void => void events.push(e);
  const uac = new TransactionLayer({
    transport: net.a,
    clock,
    onEvent,
    ids: createIdGenerator(seededRandom(1)),
  });
  const uas = new TransactionLayer({
    transport: net.b,
    clock,
    onEvent,
    ids: createIdGenerator(seededRandom(2)),
  });
  const T1 = 500;
  const T2 = 4000;

  // UAS core: 180, then 200 after 100 ms, retransmitted until the ACK (§13.3.1.4).
  let acked = false;
  let inviteSeen = 0;
  const messagesSeen = new Set<string>();
  uas.setDelegate({
    onRequest: (tx) => {
      if (tx instanceof InviteServerTransaction) {
        inviteSeen++;
        void tx.respond(createResponse(tx.request, 180, { toTag: 'uas' })).catch(() => {});
        clock.setTimer(100, () => {
          const ok = createResponse(tx.request, 200, { toTag: 'uas' });
          let interval = T1;
          const again = (): void => {
            if (acked || tx.state !== 'accepted') return;
            void tx.respond(ok).catch(() => {});
            interval = Math.min(2 * interval, T2);
            clock.setTimer(interval, again);
          };
          void tx.respond(ok).catch(() => {});
          clock.setTimer(interval, again);
        });
        return;
      }
      messagesSeen.add(tx.request.callId);
      void tx.respond(createResponse(tx.request, 200, { toTag: 'uas' })).catch(() => {});
    },
    onAck: (ack) => {
      if (ack.message.callId === 'call-1@memory') acked = true;
    },
  });

  // UAC core: ACK every 2xx, including retransmissions after the transaction is gone.
  let got2xx = 0;
  const ack = testRequest({
    method: 'ACK',
    from: net.a,
    to: net.b,
    toTag: 'uas',
    branch: 'z9hG4bK-ack-for-2xx',
  });
  const ackIt = (res: SipResponse): void => {
    if (res.cseq.method !== 'INVITE' || res.status < 200 || res.status >= 300) return;
    got2xx++;
    void uac.sendAck(ack, net.b.destination).catch(() => {});
  };
  uac.setDelegate({ onRequest: () => {}, onStrayResponse: (r) => ackIt(r.message) });
  const provisional: number[] = [];
  const invite = uac.sendRequest(
    testRequest({ method: 'INVITE', from: net.a, to: net.b }),
    net.b.destination,
    {
      onResponse: (res) => (res.status < 200 ? void provisional.push(res.status) : ackIt(res)),
      onTimeout: () => assert.fail('INVITE timed out'),
      onTransportError: () => assert.fail('transport error'),
    },
  );
  const finals = new Map<number, number>();
  let timeouts = 0;
  for (let i = 0; i < 20; i++) {
    uac.sendRequest(
      testRequest({ method: 'MESSAGE', from: net.a, to: net.b, callId: `msg-${i}`, body: `#${i}` }),
      net.b.destination,
      {
        onResponse: (res) => {
          if (res.status >= 200) finals.set(i, res.status);
        },
        onTimeout: () => void timeouts++,
        onTransportError: () => assert.fail('transport error'),
      },
    );
  }

  const done = (): boolean => acked && got2xx > 0 && finals.size === 20;
  while (!done() && clock.now() < 64 * T1) {
    clock.advance(50);
    await flush();
  }
  assert.ok(done(), `not done at ${clock.now()} ms:\n${net.transcript()}`);
  assert.equal(timeouts, 0);
  assert.equal(inviteSeen, 1, 'one INVITE transaction at the UAS despite retransmissions');
  assert.equal(messagesSeen.size, 20);
  assert.ok(
    [...finals.values()].every((s) => s === 200),
    'every MESSAGE got its 200',
  );
  assert.ok(['accepted', 'terminated'].includes(invite.state), invite.state);
  // The network lost messages and the transactions made up for them.
  const lost = net.records.filter((r) => r.dropped).length;
  const retransmitted = events.filter((e) => e.type === 'retransmit').length;
  assert.ok(lost > 0, `lost ${lost}`);
  assert.ok(retransmitted > 0, `retransmitted ${retransmitted}`);
  // And everything is cleaned up once the timers run out.
  clock.advance(64 * T1 + 5000);
  await flush();
  assert.deepEqual(uac.size, { client: 0, server: 0 });
  assert.deepEqual(uas.size, { client: 0, server: 0 });
});
