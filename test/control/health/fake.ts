/**
 * A manual clock and scripted probes for health-check tests: timers fire only when the test
 * advances the clock, and each probe answers what the test set for its target.
 */

import type { CheckerConfig } from "../../../src/control/config/types.js";
import type { CheckerClock } from "../../../src/control/health/checker.js";
import type { ProbeFn } from "../../../src/control/health/index.js";
import type { ProbeResult } from "../../../src/control/health/probe.js";
import { u32ToIp } from "../../../src/lib/addr.js";

/** Let promise chains (a probe's result, the next timer) settle. */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

export class FakeClock implements CheckerClock {
  t = 0;
  rnd = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }
  random(): number {
    return this.rnd;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimeout(h: unknown): void {
    this.timers.delete(h as number);
  }
  get pending(): number {
    return this.timers.size;
  }

  /** Advance by `ms`, firing due timers in order and letting their probes finish. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
    await settle();
  }
}

/** What a probe of `c` is keyed by: "addr:port" (PING: "addr"), MISC: the program. */
export function probeKey(c: CheckerConfig): string {
  if (c.type === "MISC_CHECK") return c.argv[0] ?? "";
  if (c.type === "PING_CHECK") return u32ToIp(c.target.addr);
  if (c.type === "FILE_CHECK") return c.path;
  if (c.type === "UNRUNNABLE") return c.keyword;
  return `${u32ToIp(c.target.addr)}:${c.target.port}`;
}

/** Probes that answer from a table the test changes; unknown targets are up. */
export class ScriptedProbes {
  readonly answers = new Map<string, ProbeResult>();
  readonly calls: { key: string; at: number }[] = [];
  constructor(private readonly clock: FakeClock) {}

  set(key: string, ok: boolean, reason?: string, weight?: number): void {
    const r: ProbeResult = { ok, reason: reason ?? `${key} ${ok ? "ok" : "failed"}` };
    if (weight !== undefined) r.weight = weight;
    this.answers.set(key, r);
  }

  readonly probe: ProbeFn = (c) => {
    const key = probeKey(c);
    this.calls.push({ key, at: this.clock.now() });
    return Promise.resolve(this.answers.get(key) ?? { ok: true, reason: `${key} ok` });
  };
}
