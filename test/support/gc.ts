/**
 * Counting the garbage collections a piece of synchronous work causes, for the allocation tests
 * (a per-packet path that allocates fills the young generation and shows minor GCs).
 *
 * GC entries arrive asynchronously, so a test settles (yields to the event loop) before it
 * counts; but the test runner works in that settle too (it reports results, receives messages)
 * and can cause a minor GC there that the code under test did not. So the watch keeps the start
 * time of each minor GC, and a test counts only those that started while its work ran
 * (performance.now() before and after it: the same clock as the entries' startTime).
 */
import { constants, PerformanceObserver, performance } from "node:perf_hooks";

/** A tick for the gc entries recorded so far to be delivered. */
export const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

export class GcWatch {
  private readonly minorAt: number[] = [];
  /** Major (and other non-minor) collections seen so far. */
  majors = 0;
  private readonly obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR)
        this.minorAt.push(e.startTime);
      else this.majors++;
    }
  });

  start(): this {
    this.obs.observe({ entryTypes: ["gc"] });
    return this;
  }

  stop(): void {
    this.obs.disconnect();
  }

  /** Minor GCs that started between t0 and t1 (performance.now() values). */
  minorsBetween(t0: number, t1: number): number {
    let n = 0;
    for (const t of this.minorAt) if (t >= t0 && t <= t1) n++;
    return n;
  }

  /**
   * Run `work` (synchronous), settle, and return the minor GCs that started while it ran, with
   * its return value.
   */
  async during<T>(work: () => T): Promise<{ minors: number; value: T }> {
    const t0 = performance.now();
    const value = work();
    const t1 = performance.now();
    await settle();
    return { minors: this.minorsBetween(t0, t1), value };
  }
}
