/**
 * Health-check work in bounded slices of the event loop.
 *
 * lvsd forwards packets, answers lvsadm and runs every health check on one event loop. With tens
 * of thousands of checkers, many timers fall due, and many probes finish, in the same turn of
 * that loop; run as they come, a burst of them (the first round after a load, a switch that
 * takes a rack of real servers down at once) would hold the loop for seconds while each one
 * changes the table and logs its transition. So checkers queue that work here: launching a probe
 * and handling its result are jobs, run in order, at most `budgetMs` of them per turn (always at
 * least one); what is left waits for the next turn (setImmediate), after the I/O, timers and
 * control requests that came in meanwhile. A listing streamed by the control socket gets its
 * next piece every turn however many checks are waiting.
 *
 * Without a `defer` function (tests with a manual clock) jobs run at once.
 */

import { performance } from "node:perf_hooks";

/** Milliseconds of queued health-check work one event-loop turn may run. */
export const PACE_BUDGET_MS = 2;

export class Pacer {
  private queue: ((() => void) | undefined)[] = [];
  private head = 0;
  private scheduled = false;
  /** Turns that ran jobs, and the most jobs one turn ran (for benchmarks and tests). */
  turns = 0;
  maxJobsPerTurn = 0;

  constructor(
    private readonly defer: ((fn: () => void) => void) | undefined,
    private readonly budgetMs = PACE_BUDGET_MS,
    /** A job that threw (the others still run); default: thrown again outside the slice. */
    private readonly onError: (err: unknown) => void = (err) => {
      queueMicrotask(() => {
        throw err;
      });
    },
  ) {}

  /** Jobs waiting for a turn. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Run `job` in a later slice (at once without `defer`). */
  run(job: () => void): void {
    if (this.defer === undefined) {
      job();
      return;
    }
    this.queue.push(job);
    if (!this.scheduled) {
      this.scheduled = true;
      this.defer(this.drain);
    }
  }

  private readonly drain = (): void => {
    const start = performance.now();
    let n = 0;
    while (this.head < this.queue.length) {
      const job = this.queue[this.head];
      this.queue[this.head++] = undefined;
      n++;
      try {
        job?.();
      } catch (err) {
        this.onError(err);
      }
      if (performance.now() - start >= this.budgetMs) break;
    }
    this.turns++;
    if (n > this.maxJobsPerTurn) this.maxJobsPerTurn = n;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
      this.scheduled = false;
    } else {
      if (this.head >= 4096) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.defer?.(this.drain); // still scheduled
    }
  };
}
