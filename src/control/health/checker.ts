/**
 * One checker on its own timer, with keepalived's scheduling:
 *
 * - The first probe runs after a random delay of up to `warmup` seconds (0 = at once).
 * - A checker starts up, or down with `alpha` (down until its first success).
 * - A success puts it up and the next probe follows `delay_loop` seconds after this one
 *   started. A failure of an up checker is retried `retry` times, `delay_before_retry` apart;
 *   when the last retry fails too, it goes down. A down checker is probed every delay_loop.
 *
 * Probes run on the event loop, never overlapping; results reach the owner through `onResult`,
 * which changes the service table between two batches of the data path. With a Pacer (pace.ts;
 * lvsd's HealthManager has one), launching a probe and handling its result are queued there and
 * run a bounded slice per event-loop turn, so thousands of checkers falling due together never
 * hold the loop.
 */

import type { CheckerConfig } from "../config/types.js";
import type { ProbeFn } from "./index.js";
import type { Pacer } from "./pace.js";
import type { ProbeResult } from "./probe.js";

export interface CheckerClock {
  now(): number;
  random(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /**
   * Run `fn` in the event loop's next turn (setImmediate): lets a Pacer spread queued work over
   * turns. A clock without it (a test's manual clock) has the work done at once.
   */
  defer?(fn: () => void): void;
}

export const SYSTEM_CLOCK: CheckerClock = {
  now: () => Date.now(),
  random: () => Math.random(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  defer: (fn) => {
    setImmediate(fn);
  },
};

export interface ResultEvent {
  result: ProbeResult;
  /** The checker's state changed with this result. */
  changed: boolean;
  /** This was the checker's first result. */
  first: boolean;
  /** A failure that will be retried (the state is unchanged for now). */
  retrying: boolean;
}

export class Checker {
  readonly cfg: CheckerConfig;
  private fp: string | undefined;
  up: boolean;
  hasRun = false;
  retryIt = 0;
  lastResult: ProbeResult | undefined;
  lastResultAt: number | undefined;
  lastChangeAt: number | undefined;
  probes = 0;
  failures = 0;
  private timer: unknown;
  private abort: AbortController | undefined;
  private stopped = true;
  /** Bumped by stop(): a launch still queued in the pacer from before is dropped. */
  private runs = 0;

  constructor(
    cfg: CheckerConfig,
    private readonly probeFn: ProbeFn,
    private readonly clock: CheckerClock,
    private readonly onResult: (c: Checker, e: ResultEvent) => void,
    private readonly pacer?: Pacer,
  ) {
    this.cfg = cfg;
    this.up = !cfg.timing.alpha;
  }

  /** Identity across reloads: the configuration without its place in the file (made when a reload asks). */
  get fingerprint(): string {
    if (this.fp === undefined) this.fp = fingerprint(this.cfg);
    return this.fp;
  }

  get active(): boolean {
    return !this.stopped;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const warm = this.cfg.timing.warmup * 1000 * this.clock.random();
    this.schedule(warm);
  }

  stop(): void {
    this.stopped = true;
    this.runs++;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.abort?.abort();
    this.abort = undefined;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(
      () => {
        this.timer = undefined;
        if (!this.pacer) {
          void this.fire();
          return;
        }
        const run = this.runs;
        this.pacer.run(() => {
          if (run === this.runs) void this.fire();
        });
      },
      Math.max(0, ms),
    );
  }

  private async fire(): Promise<void> {
    if (this.stopped) return;
    const started = this.clock.now();
    const abort = new AbortController();
    this.abort = abort;
    let result: ProbeResult;
    try {
      result = await this.probeFn(this.cfg, abort.signal);
    } catch (err) {
      result = { ok: false, reason: `${this.cfg.type} internal error: ${(err as Error).message}` };
    }
    const finish = (): void => {
      // stopped (or stopped and started again) meanwhile: this probe's result is not wanted
      if (this.stopped || abort.signal.aborted) return;
      this.abort = undefined;
      const delay = this.handle(result);
      const elapsed = this.clock.now() - started;
      this.schedule(Math.min(delay, Math.max(0, delay - elapsed)));
    };
    if (this.pacer) this.pacer.run(finish);
    else finish();
  }

  /** Apply a result; returns the delay (ms) before the next probe, counted from this one's start. */
  private handle(result: ProbeResult): number {
    const t = this.cfg.timing;
    const first = !this.hasRun;
    this.hasRun = true;
    this.probes++;
    this.lastResult = result;
    this.lastResultAt = this.clock.now();
    let changed = false;
    let retrying = false;
    let delay = t.delayLoop;
    if (result.ok) {
      this.retryIt = 0;
      changed = !this.up;
      this.up = true;
    } else {
      this.failures++;
      if (this.up && this.retryIt < t.retry) {
        this.retryIt++;
        retrying = true;
        delay = t.delayBeforeRetry;
      } else {
        this.retryIt = 0;
        changed = this.up;
        this.up = false;
      }
    }
    if (changed) this.lastChangeAt = this.lastResultAt;
    this.onResult(this, { result, changed, first, retrying });
    return delay * 1000;
  }
}

/** A checker's configuration as a string, without where it was written. */
export function fingerprint(cfg: CheckerConfig): string {
  // `where` is only at the top; byte strings are only UDP_CHECK's (a replacer function, called
  // for every key, costs several times a plain stringify: a reload compares 50k checkers)
  const { where: _where, ...rest } = cfg;
  if (cfg.type !== "UDP_CHECK") return JSON.stringify(rest);
  return JSON.stringify(rest, (_k, v: unknown) =>
    v instanceof Uint8Array ? Buffer.from(v).toString("hex") : v,
  );
}
