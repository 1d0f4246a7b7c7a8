/**
 * Whether the readers of a UDP socket are behind: datagrams wait in the kernel's receive buffer
 * longer than a moment. The first sign is the size of the batches the event loop reads: libuv
 * reads a ready datagram socket at most READ_BATCH times per turn of the loop (uv__udp_recvmsg,
 * to keep one busy socket from starving the others), so a turn that read a full batch left
 * datagrams waiting. A server that takes in more than it can serve fills its receive buffer,
 * after which the kernel drops datagrams of every kind: responses and the second halves of
 * challenges, whose work is then done again on retransmission, and the load grows with the
 * retransmissions until almost nothing completes. The transport layer sheds new work while the
 * socket is behind (layer.ts), so that the kernel does not have to.
 *
 * Full batches alone do not say how near the buffer is to overflowing: near its limit a server
 * reads full batches for seconds on end with a standing queue of a few hundred datagrams (a few
 * milliseconds of arrivals) and drops nothing, and shedding there only delays calls by a
 * retransmission interval. So where the queue can be read (a `QueueProbe`: the kernel's socket
 * table on Linux, udp-queue.ts), a run of full batches only starts looking at it, at most once
 * every `probeEveryMs`, and the socket is behind while its queue holds `atFill` of the receive
 * buffer or more, or the kernel dropped datagrams since the last look. Where it cannot be read,
 * the run's length decides: behind once full batches have gone on for `afterMs`.
 *
 * Event-loop lag is not the signal: the event loop keeps turning under overload (each turn
 * reads its batch and serves it); the backlog is in the kernel's buffer.
 */
import type { Clock } from '../base/index.ts';

/** The most datagrams libuv reads from one socket in one turn of the event loop (libuv 1.x). */
export const READ_BATCH = 32;

/** What a look at a socket's receive queue found. */
export interface QueueReading {
  /** Share of the receive buffer in use (the kernel drops datagrams above 1). */
  readonly fill: number;
  /** Datagrams the kernel has dropped on this socket since it was opened. */
  readonly drops: number;
}

/** Looks at the socket's receive queue; undefined when it no longer can. */
export type QueueProbe = () => QueueReading | undefined;

export interface ReadBacklogOptions {
  /** Without a probe (or once it fails): how long full batches go on before the socket is behind. */
  readonly afterMs: number;
  readonly probe?: QueueProbe | undefined;
  /** With a probe: the share of the receive buffer in use from which the socket is behind. */
  readonly atFill?: number;
  /**
   * With a probe: the least time between two looks. Each look also waits at least 20 times as
   * long as the last one took, so that looking costs at most 5% of a backlogged loop.
   */
  readonly probeEveryMs?: number;
  /**
   * Runs a function once the turn's reads are done (setImmediate: the check phase follows the
   * poll phase in which the socket was read).
   */
  readonly defer?: (fn: () => void) => void;
  readonly batch?: number;
}

/** Defaults of ReadBacklogOptions. */
export const QUEUE_DEFAULTS = { atFill: 0.5, probeEveryMs: 10 } as const;

export class ReadBacklog {
  /** Datagrams read in the current turn. */
  private inTurn = 0;
  /** When the current run of full batches began, undefined when the last batch was not full. */
  private fullSince: number | undefined;
  private probe: QueueProbe | undefined;
  private readonly afterMs: number;
  private readonly atFill: number;
  private readonly probeEveryMs: number;
  private readonly defer: (fn: () => void) => void;
  private readonly batch: number;
  /** With a probe: what the last look said (false once a run ends), when it was, and the gap to the next. */
  private behind = false;
  private probedAt = -Infinity;
  private probeGapMs = 0;
  private drops = 0;
  private readonly turnEnded = (): void => {
    if (this.inTurn >= this.batch) this.fullSince ??= this.clock.now();
    else {
      // Caught up. The next run looks once the gap since this run's last look has passed, not
      // at once: at a fraction of its capacity a busy server makes short runs every few
      // milliseconds, and a look at the start of each cost more than all the rest.
      this.fullSince = undefined;
      this.behind = false;
    }
    this.inTurn = 0;
  };

  constructor(
    private readonly clock: Clock,
    options: ReadBacklogOptions,
  ) {
    this.afterMs = options.afterMs;
    this.atFill = options.atFill ?? QUEUE_DEFAULTS.atFill;
    this.probeEveryMs = options.probeEveryMs ?? QUEUE_DEFAULTS.probeEveryMs;
    this.defer = options.defer ?? setImmediate;
    this.batch = options.batch ?? READ_BATCH;
    this.probe = options.probe;
    // The drops counted before now are not this run's.
    const first = this.probe?.();
    if (first === undefined) this.probe = undefined;
    else this.drops = first.drops;
  }

  /** Whether the queue is being read (false: the run's length decides). */
  get probing(): boolean {
    return this.probe !== undefined;
  }

  /** One datagram was read; true while the socket is behind. */
  read(): boolean {
    if (this.inTurn++ === 0) this.defer(this.turnEnded);
    const since = this.fullSince;
    if (since === undefined) return false;
    const now = this.clock.now();
    if (this.probe === undefined) return now - since >= this.afterMs;
    if (now - this.probedAt >= this.probeGapMs) {
      const started = performance.now();
      const r = this.probe();
      if (r === undefined) {
        this.probe = undefined;
        return now - since >= this.afterMs;
      }
      this.behind = r.fill >= this.atFill || r.drops > this.drops;
      this.drops = r.drops;
      this.probedAt = now;
      this.probeGapMs = Math.max(this.probeEveryMs, 20 * (performance.now() - started));
    }
    return this.behind;
  }
}
