/**
 * Server transactions to poke at directly: a TransactionLayer on endpoint B of a fresh memory
 * pair (manual clock, latency 0), and the server transactions it made for requests that
 * endpoint A sent, one per Call-ID, in order.
 */
import { ManualClock } from '../../src/base/clock.ts';
import {
  TransactionLayer,
  type ServerTransaction,
} from '../../src/transaction/transaction-layer.ts';
import { createMemoryTransportPair, testRequest, type MemoryNetwork } from './memory-transport.ts';

export function serverTransactions(
  method: string,
  callIds: readonly string[] = ['call-1@memory'],
  protocol: 'udp' | 'tcp' = 'udp',
): { readonly net: MemoryNetwork; readonly txs: ServerTransaction[] } {
  const clock = new ManualClock();
  const net = createMemoryTransportPair({ clock, latencyMs: 0, protocol });
  const layer = new TransactionLayer({ transport: net.b, clock });
  const txs: ServerTransaction[] = [];
  layer.setDelegate({ onRequest: (t) => void txs.push(t) });
  for (const callId of callIds) {
    void net.a.sendRequest(
      testRequest({ method, from: net.a, to: net.b, callId }),
      net.b.destination,
    );
  }
  clock.advance(0);
  return { net, txs };
}
