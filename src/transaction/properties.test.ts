/**
 * Properties of the four state machines (STYLE §12), with fast-check. Each run
 * feeds a machine a random sequence of events — responses with random status
 * codes, request retransmissions, ACKs, CANCEL, transport failures and clock
 * advances, over a reliable or an unreliable transport — and checks:
 *
 *   (a) nothing throws;
 *   (b) no state change leaves Terminated, and every change is one of the
 *       machine's (the guarded transition() would throw otherwise);
 *   (c) nothing is sent once the machine is terminated;
 *   (d) a terminated machine has no running timer and was removed exactly once.
 *
 * The machines are built directly on a fake host that records what they send
 * and the state they were in at that moment. SWITCHBOARD_FUZZ_SCALE multiplies
 * the number of runs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../base/clock.ts';
import { createResponse } from '../sip/message/builder.ts';
import type { SipRequest, SipResponse } from '../sip/message/message.ts';
import type { Destination, InboundRequest, Source } from '../transport/transport.ts';
import { TransportError } from '../transport/transport.ts';
import { testRequest, createMemoryTransportPair } from '../../test/support/memory-transport.ts';
import { createTransactionContext, type TransactionEvent } from './context.ts';
import { InviteClientTransaction } from './invite-client.ts';
import { InviteServerTransaction } from './invite-server.ts';
import { NonInviteClientTransaction, type NonInviteClientUser } from './non-invite-client.ts';
import { NonInviteServerTransaction } from './non-invite-server.ts';
import { buildAckForNon2xx } from './requests.ts';

const SCALE = Math.max(1, Number(process.env.SWITCHBOARD_FUZZ_SCALE ?? '1') || 1);
const RUNS = Math.round(150 * SCALE);

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Representative codes plus any code of 100..699. */
const statusArb = fc.oneof(
  fc.constantFrom(100, 180, 183, 200, 202, 300, 302, 401, 404, 481, 486, 487, 500, 503, 603),
  fc.integer({ min: 100, max: 699 }),
);
/** Short steps around the timer values and long jumps past them. */
const advanceArb = fc.oneof(
  fc.integer({ min: 0, max: 700 }),
  fc.constantFrom(199, 200, 500, 4000, 5000, 31_999, 32_000),
  fc.integer({ min: 0, max: 40_000 }),
);

type Ev =
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'response'; readonly status: number; readonly tag: string }
  | { readonly kind: 'retransmit' }
  | { readonly kind: 'ack' }
  | { readonly kind: 'cancel' }
  | { readonly kind: 'transport-error' }
  | { readonly kind: 'fail-next-send' };

const common = [
  advanceArb.map((ms): Ev => ({ kind: 'advance', ms })),
  fc
    .record({ status: statusArb, tag: fc.constantFrom('t1', 't2') })
    .map((r): Ev => ({ kind: 'response', ...r })),
  fc.constant<Ev>({ kind: 'fail-next-send' }),
];

/** Shared checks on the recorded state events and sends. */
class Observer {
  readonly events: TransactionEvent[] = [];
  readonly sends: { who: string; state: string }[] = [];
  terminatedCalls = 0;
  failNext = false;

  send(who: string, state: string): Promise<void> {
    this.sends.push({ who, state });
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new TransportError('SB_ERR_TRANSPORT_SEND', 'fuzz'));
    }
    return Promise.resolve();
  }

  check(machine: { state: string; runningTimers(): string[] }): void {
    const done = new Set<string>();
    for (const e of this.events) {
      if (e.type !== 'state') continue;
      assert.ok(!done.has(e.id), `${e.id} left terminated: ${e.from} -> ${e.to}`);
      if (e.to === 'terminated') done.add(e.id);
    }
    for (const s of this.sends) {
      assert.notEqual(s.state, 'terminated', `${s.who} sent after termination`);
    }
    if (machine.state === 'terminated') {
      assert.deepEqual(machine.runningTimers(), []);
      assert.equal(this.terminatedCalls, 1, 'removed exactly once');
    } else {
      assert.equal(this.terminatedCalls, 0);
    }
  }
}

function fixture(reliable: boolean) {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, protocol: reliable ? 'tcp' : 'udp' });
  const observer = new Observer();
  const ctx = createTransactionContext({ clock, onEvent: (e) => observer.events.push(e) });
  const dest: Destination = net.b.destination;
  const source: Source = {
    protocol: dest.protocol,
    address: dest.address,
    port: dest.port,
    listener: net.a.listener,
  };
  return { clock, net, observer, ctx, dest, source };
}

const silent: NonInviteClientUser = {
  onResponse: () => {},
  onTimeout: () => {},
  onTransportError: () => {},
};

function respondTo(req: SipRequest, status: number, tag: string): SipResponse {
  return createResponse(req, status, { toTag: tag });
}

describe('transaction state machines under random events (fast-check)', () => {
  it('INVITE client (§17.1.1, RFC 6026): never throws, never leaves Terminated, never sends after it', async () => {
    const events = fc.array(
      fc.oneof(
        ...common,
        fc.constant<Ev>({ kind: 'cancel' }),
        fc.constant<Ev>({ kind: 'transport-error' }),
      ),
      { maxLength: 30 },
    );
    await fc.assert(
      fc.asyncProperty(fc.boolean(), events, async (reliable, evs) => {
        const { clock, net, observer, ctx, dest } = fixture(reliable);
        const invite = testRequest({ method: 'INVITE', from: net.a, to: net.b });
        const cancels: NonInviteClientTransaction[] = [];
        const tx: InviteClientTransaction = new InviteClientTransaction({
          id: 'ict',
          request: invite,
          destination: dest,
          user: { onResponse: () => {}, onTimeout: () => {}, onTransportError: () => {} },
          host: {
            ctx,
            sendRequest: () => observer.send('INVITE tx', tx.state),
            terminated: () => void observer.terminatedCalls++,
            startCancel: (cancel, d, user) => {
              const c: NonInviteClientTransaction = new NonInviteClientTransaction({
                id: 'cancel',
                request: cancel,
                destination: d,
                user,
                host: {
                  ctx,
                  sendRequest: () => observer.send('CANCEL tx', c.state),
                  terminated: () => {},
                },
              });
              cancels.push(c);
              c.start();
              return c;
            },
          },
        });
        tx.start();
        for (const ev of evs) {
          switch (ev.kind) {
            case 'advance':
              clock.advance(ev.ms);
              break;
            case 'response':
              tx.receiveResponse(respondTo(invite, ev.status, ev.tag));
              break;
            case 'cancel': {
              const c = tx.cancel();
              if (tx.state !== 'calling' && tx.state !== 'proceeding') assert.equal(c, undefined);
              break;
            }
            case 'transport-error':
              tx.transportFailed(new TransportError('SB_ERR_TRANSPORT_CLOSED', 'fuzz'));
              break;
            case 'fail-next-send':
              observer.failNext = true;
              break;
            case 'ack':
            case 'retransmit':
              break; // not an event of this machine
          }
          await flush();
        }
        observer.check(tx);
        assert.ok(cancels.length <= 1, 'at most one CANCEL transaction');
      }),
      { numRuns: RUNS },
    );
  });

  it('non-INVITE client (§17.1.2): never throws, never leaves Terminated, never sends after it', async () => {
    const events = fc.array(fc.oneof(...common, fc.constant<Ev>({ kind: 'transport-error' })), {
      maxLength: 30,
    });
    await fc.assert(
      fc.asyncProperty(fc.boolean(), events, async (reliable, evs) => {
        const { clock, net, observer, ctx, dest } = fixture(reliable);
        const req = testRequest({ method: 'BYE', from: net.a, to: net.b, toTag: 'x' });
        const tx: NonInviteClientTransaction = new NonInviteClientTransaction({
          id: 'nict',
          request: req,
          destination: dest,
          user: silent,
          host: {
            ctx,
            sendRequest: () => observer.send('tx', tx.state),
            terminated: () => void observer.terminatedCalls++,
          },
        });
        tx.start();
        for (const ev of evs) {
          switch (ev.kind) {
            case 'advance':
              clock.advance(ev.ms);
              break;
            case 'response':
              tx.receiveResponse(respondTo(req, ev.status, ev.tag));
              break;
            case 'transport-error':
              tx.transportFailed(new TransportError('SB_ERR_TRANSPORT_CLOSED', 'fuzz'));
              break;
            case 'fail-next-send':
              observer.failNext = true;
              break;
            case 'ack':
            case 'cancel':
            case 'retransmit':
              break; // not an event of this machine
          }
          await flush();
        }
        observer.check(tx);
        // Timer F bounds every non-INVITE client transaction (§17.1.2.2).
        clock.advance(64 * 500 + 5000);
        await flush();
        assert.equal(tx.state, 'terminated');
        observer.check(tx);
      }),
      { numRuns: RUNS },
    );
  });

  it('INVITE server (§17.2.1, RFC 6026): never throws, never leaves Terminated, never sends after it', async () => {
    const events = fc.array(
      fc.oneof(
        ...common,
        fc.constant<Ev>({ kind: 'retransmit' }),
        fc.constant<Ev>({ kind: 'ack' }),
      ),
      { maxLength: 30 },
    );
    await fc.assert(
      fc.asyncProperty(fc.boolean(), events, async (reliable, evs) => {
        const { clock, net, observer, ctx, source } = fixture(reliable);
        const invite = testRequest({ method: 'INVITE', from: net.a, to: net.b });
        const inbound: InboundRequest = { message: invite, source };
        const acksToTu: number[] = [];
        const tx: InviteServerTransaction = new InviteServerTransaction({
          id: 'ist',
          request: invite,
          source,
          host: {
            ctx,
            sendResponse: () => observer.send('tx', tx.state),
            terminated: () => void observer.terminatedCalls++,
            ackToUser: () => void acksToTu.push(clock.now()),
          },
        });
        for (const ev of evs) {
          switch (ev.kind) {
            case 'advance':
              clock.advance(ev.ms);
              break;
            case 'response':
              await tx.respond(respondTo(invite, ev.status, ev.tag)).catch(() => {});
              break;
            case 'retransmit':
              tx.receiveRequest(inbound);
              break;
            case 'ack': {
              const final = tx.lastResponse ?? respondTo(invite, 486, 't1');
              const stateBefore = tx.state;
              const toTuBefore = acksToTu.length;
              tx.receiveAck({ message: buildAckForNon2xx(invite, final), source });
              // ACKs reach the TU only in Accepted (RFC 6026 §8.7).
              const expected = stateBefore === 'accepted' ? toTuBefore + 1 : toTuBefore;
              assert.equal(acksToTu.length, expected);
              break;
            }
            case 'fail-next-send':
              observer.failNext = true;
              break;
            case 'cancel':
            case 'transport-error':
              break; // not an event of this machine
          }
          await flush();
        }
        observer.check(tx);
      }),
      { numRuns: RUNS },
    );
  });

  it('non-INVITE server (§17.2.2): never throws, never leaves Terminated, never sends after it', async () => {
    const events = fc.array(fc.oneof(...common, fc.constant<Ev>({ kind: 'retransmit' })), {
      maxLength: 30,
    });
    await fc.assert(
      fc.asyncProperty(fc.boolean(), events, async (reliable, evs) => {
        const { clock, net, observer, ctx, source } = fixture(reliable);
        const req = testRequest({ method: 'MESSAGE', from: net.a, to: net.b });
        const inbound: InboundRequest = { message: req, source };
        const tx: NonInviteServerTransaction = new NonInviteServerTransaction({
          id: 'nist',
          request: req,
          source,
          host: {
            ctx,
            sendResponse: () => observer.send('tx', tx.state),
            terminated: () => void observer.terminatedCalls++,
          },
        });
        let finals = 0;
        for (const ev of evs) {
          switch (ev.kind) {
            case 'advance':
              clock.advance(ev.ms);
              break;
            case 'response': {
              const before = observer.sends.length;
              await tx.respond(respondTo(req, ev.status, ev.tag)).catch(() => {});
              if (ev.status >= 200 && observer.sends.length > before) finals++;
              break;
            }
            case 'retransmit':
              tx.receiveRequest(inbound);
              break;
            case 'fail-next-send':
              observer.failNext = true;
              break;
            case 'ack':
            case 'cancel':
            case 'transport-error':
              break; // not an event of this machine
          }
          await flush();
        }
        observer.check(tx);
        // §17.2.2: one final response at most is ever passed on by the TU.
        assert.ok(finals <= 1, `${finals} final responses sent`);
      }),
      { numRuns: RUNS },
    );
  });
});
