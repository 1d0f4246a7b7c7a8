/**
 * The library's composition root: one call builds a transport layer on the
 * given listeners and a Stack on it, with the caller's clock, randomness and
 * logger (or the system's). Everything is per instance, so two stacks run in
 * one process.
 */
import { readFileSync } from 'node:fs';
import type { Clock, IdGenerator, Logger, RandomSource } from '../base/index.ts';
import {
  createSipResolver,
  createTransportLayer,
  systemDnsResolver,
  type ListenerConfig,
  type SipResolver,
  type TransportLayer,
} from '../transport/index.ts';
import type { TransactionTimers } from '../transaction/index.ts';
import { Stack } from './stack.ts';

export interface CreateStackOptions {
  /**
   * Listener specs such as `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `tls:127.0.0.1:5061`,
   * `ws:…`, `wss:…`, or listener configs (e.g. `{ listen: 'tls:127.0.0.1:0', clientOnly: true }`
   * for a TLS listener that only calls out and needs no certificate).
   */
  readonly listen?: readonly (string | ListenerConfig)[];
  /** A ready transport layer instead of listeners (e.g. an in-memory one in tests). */
  readonly transport?: TransportLayer;
  /** TLS/WSS: certificate and key (PEM text or file paths), trust anchors, and server verification. */
  readonly tls?: {
    readonly cert?: string;
    readonly key?: string;
    readonly certFile?: string;
    readonly keyFile?: string;
    readonly ca?: string;
    readonly rejectUnauthorized?: boolean;
  };
  readonly clock?: Clock;
  readonly random?: RandomSource;
  readonly logger?: Logger;
  readonly timers?: Partial<TransactionTimers>;
  readonly userAgent?: string;
  /** See StackOptions.maxServerTransactions (default 100,000). */
  readonly maxServerTransactions?: number;
  /** See StackOptions.maxServerTransactionsPerSource. */
  readonly maxServerTransactionsPerSource?: number;
  /** RFC 3263 resolver for names (default: on the system's DNS, created on first use of a name). */
  readonly resolver?: SipResolver;
  /** See StackOptions.ids. */
  readonly ids?: IdGenerator;
  /** See StackOptions.tagSalt. */
  readonly tagSalt?: string;
}

export async function createStack(options: CreateStackOptions = {}): Promise<Stack> {
  let transport = options.transport;
  if (transport === undefined) {
    const tls = options.tls;
    const cert =
      tls?.cert ?? (tls?.certFile !== undefined ? readFileSync(tls.certFile, 'utf8') : undefined);
    const key =
      tls?.key ?? (tls?.keyFile !== undefined ? readFileSync(tls.keyFile, 'utf8') : undefined);
    transport = await createTransportLayer({
      listen: options.listen ?? ['udp:127.0.0.1:5060'],
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      ...(options.random !== undefined ? { random: options.random } : {}),
      ...(cert !== undefined && key !== undefined
        ? { tls: { cert, key, ...(tls?.ca !== undefined ? { ca: tls.ca } : {}) } }
        : {}),
      ...(tls?.rejectUnauthorized !== undefined
        ? { rejectUnauthorized: tls.rejectUnauthorized }
        : {}),
    });
  }
  return new Stack({
    transport,
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    ...(options.random !== undefined ? { random: options.random } : {}),
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    ...(options.timers !== undefined ? { timers: options.timers } : {}),
    ...(options.userAgent !== undefined ? { userAgent: options.userAgent } : {}),
    ...(options.ids !== undefined ? { ids: options.ids } : {}),
    ...(options.tagSalt !== undefined ? { tagSalt: options.tagSalt } : {}),
    ...(options.maxServerTransactionsPerSource !== undefined
      ? { maxServerTransactionsPerSource: options.maxServerTransactionsPerSource }
      : {}),
    ...(options.maxServerTransactions !== undefined
      ? { maxServerTransactions: options.maxServerTransactions }
      : {}),
    resolver:
      options.resolver ??
      createSipResolver({
        dns: systemDnsResolver(),
        ...(options.random !== undefined ? { random: options.random } : {}),
      }),
  });
}
