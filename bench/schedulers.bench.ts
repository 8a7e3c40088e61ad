/**
 * Scheduler benchmark: nanoseconds per decision (`select`) for every registered scheduler at
 * 2, 16, 256 and 1024 dests, with tinybench. Each measured iteration makes 256 decisions over a
 * rotating set of flows, so the timer's own cost is spread thin; the reported value is the median
 * iteration time divided by 256.
 *
 * Used by bench/run.ts (`runSchedulerBench`), and runnable on its own:
 *   npx vite-node bench/schedulers.bench.ts
 * or, after `npm run build`, `node dist/bench/schedulers.bench.js [timeMs]`.
 */

import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { clock } from "../src/datapath/clock.js";
import { getScheduler, schedulerNames } from "../src/datapath/schedulers/index.js";
import { createMhModule } from "../src/datapath/schedulers/mh.js";
import { IPPROTO_TCP } from "../src/lib/proto.js";
import type { FlowInfo, SchedulerModule } from "../src/tables/model.js";
import { Dest, FwdMethod, Service } from "../src/tables/model.js";

export interface SchedulerBenchResult {
  name: string;
  unit: string;
  value: number;
  samples: number;
}

export const BENCH_SIZES: readonly number[] = [2, 16, 256, 1024];
const PER_ITERATION = 256;
let calls = 0;
const FLOWS = 4096;

function makeFlows(): FlowInfo[] {
  const out: FlowInfo[] = [];
  for (let i = 0; i < FLOWS; i++) {
    out.push({
      saddr: (0xc6336400 + Math.imul(i, 7919)) >>> 0,
      daddr: (0x0a000000 + (i % 2048)) >>> 0,
      sport: 1024 + ((i * 31) % 60000),
      dport: 80,
      proto: IPPROTO_TCP,
    });
  }
  return out;
}

function makeService(mod: SchedulerModule, n: number): Service {
  const svc = new Service(IPPROTO_TCP, 0x0a000064, 80, mod.name);
  for (let i = 0; i < n; i++) {
    const d = new Dest((0xac100000 + i + 1) >>> 0, 80, 1 + (i % 4), FwdMethod.MASQ);
    d.activeConns = (i * 7) % 13;
    d.inactConns = (i * 11) % 17;
    d.rateBps = ((i * 7919) % 1000) * 1000;
    d.respTimeUs = 100 + ((i * 31) % 900);
    d.svc = svc;
    svc.dests.push(d);
  }
  const sched = mod.create(svc);
  svc.sched = sched;
  sched.onDestsChanged?.(svc.dests);
  return svc;
}

/** Run the benchmark; `timeMs` is tinybench's time budget per task. */
export async function runSchedulerBench(timeMs = 500): Promise<SchedulerBenchResult[]> {
  calls++;
  const flows = makeFlows();
  const savedNow = clock.nowMs;
  clock.nowMs = 1_000_000;
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(200, timeMs) });
  let sink = 0;
  // Every registered scheduler, plus mh without its key → slot memo (the raw kernel hash cost).
  const variants: [string, SchedulerModule][] = schedulerNames().map((n) => [n, getScheduler(n)!]);
  variants.push(["mh-nomemo", createMhModule({ memoBits: 0 })]);
  for (const [name, mod] of variants) {
    for (const n of BENCH_SIZES) {
      const svc = makeService(mod, n);
      const sched = svc.sched!;
      let k = 0;
      bench.add(`sched/${name}/${n}`, () => {
        for (let i = 0; i < PER_ITERATION; i++) {
          const d = sched.select(svc, flows[k]!);
          k = (k + 1) & (FLOWS - 1);
          if (d !== undefined) sink += d.port;
        }
      });
    }
  }
  await bench.run();
  clock.nowMs = savedNow;
  if (sink === 0) throw new Error("no scheduler picked anything");
  const results: SchedulerBenchResult[] = [];
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== "completed") throw new Error(`${task.name}: ${r.state}`);
    results.push({
      name: task.name,
      unit: "ns/decision",
      // The median resists interference from other processes better than the mean.
      value: (r.latency.p50 * 1e6) / PER_ITERATION,
      samples: r.latency.samplesCount,
    });
  }
  return results;
}

/** Print results as a table: one row per scheduler, one column per size. */
export function formatSchedulerBench(results: readonly SchedulerBenchResult[]): string {
  const by = new Map<string, Map<number, number>>();
  for (const r of results) {
    const [, name, n] = r.name.split("/");
    if (name === undefined || n === undefined) continue;
    if (!by.has(name)) by.set(name, new Map());
    by.get(name)!.set(Number(n), r.value);
  }
  const head = `${"scheduler".padEnd(11)}${BENCH_SIZES.map((n) => `${n} dests`.padStart(12)).join("")}   (ns/decision)`;
  const rows = [...by].map(
    ([name, m]) =>
      `${name.padEnd(11)}${BENCH_SIZES.map((n) => (m.get(n)?.toFixed(1) ?? "-").padStart(12)).join("")}`,
  );
  return [head, ...rows].join("\n");
}

function standalone(): void {
  const arg = process.argv.slice(2).find((a) => /^\d+$/.test(a));
  const t = Number(arg ?? 500);
  runSchedulerBench(t > 0 ? t : 500).then(
    (results) => console.log(formatSchedulerBench(results)),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

// Standalone: `node dist/bench/schedulers.bench.js` names this file in argv[1]. vite-node keeps
// its own path there, so under vite-node run only if nobody (bench/run.ts) called us meanwhile.
const argv1 = process.argv[1] ?? "";
if (/schedulers\.bench\.[jt]s$/.test(argv1) && pathToFileURL(argv1).href === import.meta.url) standalone();
else if (/vite-node$/.test(argv1)) setTimeout(() => calls === 0 && standalone(), 0);
