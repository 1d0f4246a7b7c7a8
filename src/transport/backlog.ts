/**
 * Whether the readers of a UDP socket are behind: datagrams wait in the kernel's receive buffer
 * longer than a moment. The sign is the size of the batches the event loop reads: libuv reads a
 * ready datagram socket at most READ_BATCH times per turn of the loop (uv__udp_recvmsg, to keep
 * one busy socket from starving the others), so a turn that read a full batch left datagrams
 * waiting, and a run of full batches that has lasted `afterMs` is a backlog that does not
 * clear. A pause of the loop (a garbage collection, a slow store call) makes a short run; a
 * server that takes in more than it can serve makes one that lasts until its receive buffer
 * overflows, after which the kernel drops datagrams of every kind: responses and the second
 * halves of challenges, whose work is then done again on retransmission, and the load grows
 * with the retransmissions until almost nothing completes. The transport layer sheds new work
 * while the run lasts (layer.ts), so that the kernel does not have to.
 *
 * Event-loop lag is not the signal: the event loop keeps turning under overload (each turn
 * reads its batch and serves it); the backlog is in the kernel's buffer.
 */
import type { Clock } from '../base/index.ts';

/** The most datagrams libuv reads from one socket in one turn of the event loop (libuv 1.x). */
export const READ_BATCH = 32;

export class ReadBacklog {
  /** Datagrams read in the current turn. */
  private inTurn = 0;
  /** When the current run of full batches began, undefined when the last batch was not full. */
  private fullSince: number | undefined;
  private readonly turnEnded = (): void => {
    if (this.inTurn >= this.batch) this.fullSince ??= this.clock.now();
    else this.fullSince = undefined;
    this.inTurn = 0;
  };

  /**
   * @param afterMs how long full batches must go on before the socket counts as behind
   * @param defer runs a function once the turn's reads are done (setImmediate: the check phase
   *   follows the poll phase in which the socket was read)
   */
  constructor(
    private readonly clock: Clock,
    private readonly afterMs: number,
    private readonly defer: (fn: () => void) => void = setImmediate,
    private readonly batch: number = READ_BATCH,
  ) {}

  /** One datagram was read; true while the socket has been behind for `afterMs` or more. */
  read(): boolean {
    if (this.inTurn++ === 0) this.defer(this.turnEnded);
    const since = this.fullSince;
    return since !== undefined && this.clock.now() - since >= this.afterMs;
  }
}
