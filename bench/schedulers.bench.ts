/**
 * Scheduler benchmark: nanoseconds per decision (`select`) for every registered scheduler at
 * 2, 16, 256 and 1024 dests, with tinybench. Each measured iteration makes 256 decisions over a
 * rotating set of flows, so the timer's own cost is spread thin; the reported value is the median
 * iteration time divided by 256.
 *
 * `runIndexBench` compares, in the same run, the kernel-style linear walk with the dest index
 * (destindex.ts) for lc, wlc, sed, nq, fo, ovf, lt, wlt, wrt and twos at 8, 64, 1,024 and
 * 10,000 dests, per decision including the index upkeep of a bind and an unbind.
 *
 * Used by bench/run.ts (`runSchedulerBench`), and runnable on its own (`--index`: only the
 * comparison; `--sizes a,b`: other dest counts for it):
 *   npx vite-node bench/schedulers.bench.ts
 * or, after `npm run build`, `node dist/bench/schedulers.bench.js [timeMs]`.
 */

import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { clock } from "../src/datapath/clock.js";
import { FoScheduler } from "../src/datapath/schedulers/fo.js";
import { getScheduler, schedulerNames } from "../src/datapath/schedulers/index.js";
import { LcScheduler } from "../src/datapath/schedulers/lc.js";
import { LtScheduler } from "../src/datapath/schedulers/lt.js";
import { createMhModule } from "../src/datapath/schedulers/mh.js";
import { NqScheduler } from "../src/datapath/schedulers/nq.js";
import { OvfScheduler } from "../src/datapath/schedulers/ovf.js";
import { SedScheduler } from "../src/datapath/schedulers/sed.js";
import { TwosScheduler } from "../src/datapath/schedulers/twos.js";
import { WlcScheduler } from "../src/datapath/schedulers/wlc.js";
import { WltScheduler } from "../src/datapath/schedulers/wlt.js";
import { WrtScheduler } from "../src/datapath/schedulers/wrt.js";
import { IPPROTO_TCP } from "../src/lib/proto.js";
import type { FlowInfo, Scheduler, SchedulerModule } from "../src/tables/model.js";
import { Dest, destOverloadOnBind, destOverloadOnUnbind, FwdMethod, Service } from "../src/tables/model.js";

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

/** Dest counts for the linear-vs-indexed comparison (issue 13 §5). */
export const INDEX_SIZES: readonly number[] = sizesArg() ?? [8, 64, 1024, 10_000];

/** `--sizes 16,32`: other dest counts for the comparison (to place the threshold). */
function sizesArg(): number[] | undefined {
  const i = process.argv.indexOf("--sizes");
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  return v === undefined ? undefined : v.split(",").map(Number);
}

type IndexedCtor = new (svc?: Service, minDests?: number) => Scheduler;
const INDEXED: readonly [string, IndexedCtor | "twos"][] = [
  ["lc", LcScheduler],
  ["wlc", WlcScheduler],
  ["sed", SedScheduler],
  ["nq", NqScheduler],
  ["fo", FoScheduler],
  ["ovf", OvfScheduler],
  ["lt", LtScheduler],
  ["wlt", WltScheduler],
  ["wrt", WrtScheduler],
  ["twos", "twos"],
];

/**
 * Linear walk against the index, same run: ns per decision where a decision is what a new
 * connection costs the scheduler — `select`, binding the connection to the pick (inactConns++,
 * destOverloadOnBind, which re-ranks the dest in the index) and, once 1,024 connections are open,
 * freeing the oldest (inactConns--, destOverloadOnUnbind). "linear" is the same scheduler with the
 * index off (minDests = Infinity: no watch pointers, so the hooks cost a null test), "indexed"
 * with it always on (minDests = 0). Tasks are named `index/<sched>/<linear|indexed>/<n>`.
 */
export async function runIndexBench(timeMs = 500): Promise<SchedulerBenchResult[]> {
  calls++;
  const flows = makeFlows();
  const bench = new Bench({ time: timeMs, warmupTime: Math.min(200, timeMs) });
  let sink = 0;
  for (const [name, ctor] of INDEXED) {
    for (const n of INDEX_SIZES) {
      for (const variant of ["linear", "indexed"] as const) {
        const minDests = variant === "linear" ? Number.POSITIVE_INFINITY : 0;
        const mod: SchedulerModule = {
          name,
          create: (svc) =>
            ctor === "twos" ? new TwosScheduler(12345, svc, minDests) : new ctor(svc, minDests),
        };
        const svc = makeService(mod, n);
        const sched = svc.sched!;
        const ring: (Dest | undefined)[] = new Array<Dest | undefined>(1024).fill(undefined);
        let head = 0;
        let k = 0;
        bench.add(`index/${name}/${variant}/${n}`, () => {
          for (let i = 0; i < PER_ITERATION; i++) {
            const d = sched.select(svc, flows[k]!);
            k = (k + 1) & (FLOWS - 1);
            const old = ring[head];
            if (old !== undefined) {
              old.inactConns--;
              destOverloadOnUnbind(old);
            }
            ring[head] = d;
            head = (head + 1) & 1023;
            if (d !== undefined) {
              d.inactConns++;
              destOverloadOnBind(d);
              sink += d.port;
            }
          }
        });
      }
    }
  }
  await bench.run();
  if (sink === 0) throw new Error("no scheduler picked anything");
  const results: SchedulerBenchResult[] = [];
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== "completed") throw new Error(`${task.name}: ${r.state}`);
    results.push({
      name: task.name,
      unit: "ns/decision",
      value: (r.latency.p50 * 1e6) / PER_ITERATION,
      samples: r.latency.samplesCount,
    });
  }
  return results;
}

/** The comparison as a table: linear / indexed ns per decision and their ratio per size. */
export function formatIndexBench(results: readonly SchedulerBenchResult[]): string {
  const v = new Map(results.map((r) => [r.name, r.value]));
  const head = `${"scheduler".padEnd(10)}${INDEX_SIZES.map((n) => `${n} dests: linear / indexed (ratio)`.padStart(36)).join("")}`;
  const rows = INDEXED.map(([name]) => {
    const cells = INDEX_SIZES.map((n) => {
      const l = v.get(`index/${name}/linear/${n}`) ?? Number.NaN;
      const x = v.get(`index/${name}/indexed/${n}`) ?? Number.NaN;
      return `${l.toFixed(1)} / ${x.toFixed(1)} (${(l / x).toFixed(2)}x)`.padStart(36);
    });
    return `${name.padEnd(10)}${cells.join("")}`;
  });
  return [`ns per decision (select + bind + unbind), linear / indexed`, head, ...rows].join("\n");
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
  const args = process.argv.slice(2);
  const arg = args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== "--sizes");
  const t = Number(arg ?? 500);
  const time = t > 0 ? t : 500;
  // `--index`: only the linear-vs-indexed comparison.
  const indexOnly = process.argv.includes("--index");
  (indexOnly
    ? runIndexBench(time).then(formatIndexBench)
    : runSchedulerBench(time).then(
        async (r) => `${formatSchedulerBench(r)}\n\n${formatIndexBench(await runIndexBench(time))}`,
      )
  ).then(
    (text) => console.log(text),
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
