import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clock } from "../../../src/datapath/clock.js";
import { getScheduler, schedulerNames } from "../../../src/datapath/schedulers/index.js";
import type { FlowInfo } from "../../../src/tables/model.js";
import { SVC_F_SCHED1, SVC_F_SCHED2 } from "../../../src/tables/model.js";
import { GcWatch, settle } from "../../support/gc.js";
import { bound, flow, mkDest } from "./helpers.js";

/**
 * `select` must not allocate. After warm-up, 1e5 decisions must neither grow the heap measurably
 * nor trigger a minor GC (a scavenge only happens when the young generation fills up, and nothing
 * else runs during the synchronous loop). A major GC may still finish during the loop — marking
 * started earlier completes through an interrupt — and can hide growth, so the growth check only
 * counts runs without one.
 */

const N = 100_000;
const flows: FlowInfo[] = Array.from({ length: 4096 }, (_, i) =>
  flow((0xc6336400 + i * 7919) >>> 0, 1024 + (i % 50000), (0x0a000000 + (i % 1500)) >>> 0),
);

const gc = new GcWatch();
let saved = 0;
beforeAll(() => {
  gc.start();
  saved = clock.nowMs;
});
afterAll(() => {
  gc.stop();
  clock.nowMs = saved;
});

describe("select() allocates nothing", () => {
  for (const name of schedulerNames()) {
    it(name, async () => {
      const dests = Array.from({ length: 16 }, (_, i) =>
        mkDest({
          addr: `172.16.0.${i + 1}`,
          weight: 1 + (i % 4),
          active: i % 5,
          inact: i % 7,
          rateBps: i * 100,
        }),
      );
      const flags = name === "sh" || name === "mh" ? SVC_F_SCHED1 | SVC_F_SCHED2 : 0;
      const { svc, sched } = bound(getScheduler(name)!, dests, flags);
      dests[3]!.weight = 0; // exercise the fallback paths without a table rebuild
      clock.nowMs = 1_000_000;
      let sink = 0;
      const run = (n: number) => {
        for (let i = 0; i < n; i++) {
          clock.nowMs += 30; // 50 min per 1e5 decisions: the lblc/lblcr timers and full checks run too
          const d = sched.select(svc, flows[i & 4095]!);
          if (d !== undefined) sink += d.port;
        }
      };
      run(N); // warm-up: optimise, fill caches, compile the timer paths
      const g = globalThis as { gc?: () => void };
      g.gc?.();
      await settle();
      // The least growth over the clean runs: per-decision allocation shows in every run, while a
      // one-off (the JIT optimising a rarely run path such as the lblc timer) shows in one.
      let least = Number.POSITIVE_INFINITY;
      let minor = 0;
      let clean = 0;
      for (let rep = 0; rep < 4; rep++) {
        await settle();
        const majorBefore = gc.majors;
        const { minors, value: grown } = await gc.during(() => {
          const before = process.memoryUsage().heapUsed;
          run(N);
          return process.memoryUsage().heapUsed - before;
        });
        minor += minors;
        if (gc.majors === majorBefore) {
          clean++;
          least = Math.min(least, grown);
        }
      }
      expect(sink).toBeGreaterThan(0);
      expect(minor).toBe(0);
      expect(clean).toBeGreaterThan(0);
      expect(least).toBeLessThan(32 * 1024); // < 0.33 byte per decision
    });
  }
});
