/**
 * vrrp_script: each script runs every `interval` seconds (the first run at start), killed after
 * `timeout`, and its status follows keepalived 2.2's rise/fall counter (vrrp_track.c,
 * vrrp_script_child_thread; vrrp_scheduler.c, vrrp_init_script):
 *
 * - The counter starts at rise − 1 ("one success is enough"), or at 0 and DOWN with `init_fail`.
 *   Until the first result the status is INIT: no weight and no fault is applied.
 * - A success below rise − 1 counts up; at rise − 1 it is UP; the counter then sits at
 *   rise + fall − 1, so `fall` failures in a row bring it DOWN (any success refills it).
 * - The first failure of a script still in INIT is DOWN at once.
 * - A run still going when the next one is due: the next one is skipped (keepalived logs
 *   "already running").
 *
 * Pure apart from the injected clock, timers and runner (script.ts's execScript in lvsd).
 * A script used by several instances runs once; the manager applies its status to each.
 */

import type { VrrpScriptSpec } from "../config/types.js";
import type { ScriptExec, ScriptResult } from "./script.js";

export const ScriptStatus = { INIT: 0, UP: 1, DOWN: 2 } as const;
export type ScriptStatus = (typeof ScriptStatus)[keyof typeof ScriptStatus];
export const SCRIPT_STATUS_NAMES: readonly string[] = ["INIT", "UP", "DOWN"];

export interface TrackTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export interface ScriptTrackerDeps {
  /** Monotonic ms. */
  now(): number;
  timers: TrackTimers;
  exec: ScriptExec;
  /** A script's status changed (INIT → UP/DOWN, UP ↔ DOWN); `result` is the run that did it. */
  onChange(name: string, status: ScriptStatus, result: ScriptResult): void;
}

interface Tracked {
  readonly spec: VrrpScriptSpec;
  result: number;
  status: ScriptStatus;
  running: boolean;
  nextAt: number;
  runs: number;
  skipped: number;
  lastReason: string;
}

export class VrrpScriptTracker {
  private readonly scripts = new Map<string, Tracked>();
  private readonly deps: ScriptTrackerDeps;
  private timer: unknown;
  private started = false;
  /** Bumped by stop(): results of runs from before are ignored. */
  private generation = 0;

  constructor(specs: Iterable<VrrpScriptSpec>, deps: ScriptTrackerDeps) {
    this.deps = deps;
    for (const spec of specs) {
      if (this.scripts.has(spec.name)) continue;
      this.scripts.set(spec.name, {
        spec,
        result: spec.initFail ? 0 : spec.rise - 1,
        status: spec.initFail ? ScriptStatus.DOWN : ScriptStatus.INIT,
        running: false,
        nextAt: Number.POSITIVE_INFINITY,
        runs: 0,
        skipped: 0,
        lastReason: "",
      });
    }
  }

  get size(): number {
    return this.scripts.size;
  }

  status(name: string): ScriptStatus {
    return this.scripts.get(name)?.status ?? ScriptStatus.INIT;
  }

  /** For status output and tests. */
  info(name: string): { status: string; runs: number; skipped: number; lastReason: string } | undefined {
    const t = this.scripts.get(name);
    if (!t) return undefined;
    return {
      status: SCRIPT_STATUS_NAMES[t.status] ?? "?",
      runs: t.runs,
      skipped: t.skipped,
      lastReason: t.lastReason,
    };
  }

  /**
   * Reload: a script of the same name and the same `script`, interval, timeout, rise, fall and
   * init_fail keeps its status and counters from `old` (so an instance it holds in FAULT stays
   * there instead of flapping through INIT). Call before `start()`.
   */
  adoptFrom(old: VrrpScriptTracker): void {
    for (const [name, t] of this.scripts) {
      const o = old.scripts.get(name);
      if (o === undefined) continue;
      const a = o.spec;
      const b = t.spec;
      if (
        a.argv.join("\0") !== b.argv.join("\0") ||
        a.interval !== b.interval ||
        a.timeout !== b.timeout ||
        a.rise !== b.rise ||
        a.fall !== b.fall ||
        a.initFail !== b.initFail
      )
        continue;
      t.result = o.result;
      t.status = o.status;
      t.runs = o.runs;
      t.skipped = o.skipped;
      t.lastReason = o.lastReason;
    }
  }

  /** Run every script now, then every interval. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const now = this.deps.now();
    for (const t of this.scripts.values()) t.nextAt = now;
    this.run();
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.generation++;
    if (this.timer !== undefined) this.deps.timers.clear(this.timer);
    this.timer = undefined;
    for (const t of this.scripts.values()) {
      t.running = false;
      t.nextAt = Number.POSITIVE_INFINITY;
    }
  }

  private run(): void {
    this.timer = undefined;
    if (!this.started) return;
    const now = this.deps.now();
    for (const t of this.scripts.values()) {
      if (t.nextAt > now) continue;
      t.nextAt = now + t.spec.interval * 1000;
      if (t.running) {
        t.skipped++;
        continue;
      }
      this.launch(t);
    }
    this.schedule();
  }

  private launch(t: Tracked): void {
    t.running = true;
    t.runs++;
    const gen = this.generation;
    let p: Promise<ScriptResult>;
    try {
      p = this.deps.exec(t.spec.argv, t.spec.timeout * 1000);
    } catch (err) {
      p = Promise.resolve({ ok: false, reason: `cannot run: ${(err as Error).message}` });
    }
    p.then(
      (r) => {
        if (gen !== this.generation) return;
        t.running = false;
        this.result(t, r);
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        t.running = false;
        this.result(t, { ok: false, reason: `cannot run: ${String(err)}` });
      },
    );
  }

  /** keepalived's rise/fall counter. */
  private result(t: Tracked, r: ScriptResult): void {
    t.lastReason = r.reason;
    const { rise, fall } = t.spec;
    let changed = false;
    if (r.ok) {
      if (t.result < rise - 1) {
        t.result++;
      } else if (t.result !== rise + fall - 1) {
        if (t.result < rise) {
          changed = t.status !== ScriptStatus.UP;
          t.status = ScriptStatus.UP;
        }
        t.result = rise + fall - 1;
      }
    } else if (t.result > rise) {
      t.result--;
    } else {
      if (t.result === rise || t.status === ScriptStatus.INIT) {
        changed = t.status !== ScriptStatus.DOWN;
        t.status = ScriptStatus.DOWN;
      }
      t.result = 0;
    }
    if (changed) this.deps.onChange(t.spec.name, t.status, r);
  }

  private schedule(): void {
    if (!this.started) return;
    let at = Number.POSITIVE_INFINITY;
    for (const t of this.scripts.values()) if (t.nextAt < at) at = t.nextAt;
    if (this.timer !== undefined) this.deps.timers.clear(this.timer);
    this.timer = undefined;
    if (at === Number.POSITIVE_INFINITY) return;
    this.timer = this.deps.timers.set(() => this.run(), Math.max(0, Math.ceil(at - this.deps.now())));
  }
}
