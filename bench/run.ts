/**
 * `npm run bench`: runs the in-process benchmarks, prints a table and writes
 * bench/results.json (an array of {name, unit, value, samples}).
 * Usage: node --expose-gc dist/bench/run.js [--quick] [--only datapath|schedulers|metrics|sync|trace|conntrack|workers]
 */
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, runDatapathBench } from "./datapath.bench.js";

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const onlyIdx = args.indexOf("--only");
const only = onlyIdx >= 0 ? args[onlyIdx + 1] : undefined;
const timeMs = quick ? 300 : 1500;

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(1);
}

async function main(): Promise<void> {
  const results: BenchResult[] = [];
  if (!only || only === "datapath") results.push(...(await runDatapathBench(timeMs)));
  if (!only || only === "schedulers") {
    const mod = (await import("./schedulers.bench.js")) as {
      runSchedulerBench(t?: number): Promise<BenchResult[]>;
    };
    results.push(...(await mod.runSchedulerBench(timeMs)));
  }
  if (!only || only === "metrics") {
    // the Prometheus scrape of 1,000 services x 10 dests (src/control/observe/metrics.ts)
    const mod = (await import("./metrics.bench.js")) as {
      runMetricsBench(t?: number): Promise<BenchResult[]>;
    };
    results.push(...(await mod.runMetricsBench(timeMs)));
  }
  if (!only || only === "sync") {
    // connection sync: the master's per-packet cost and the backup's apply rate (src/datapath/sync.ts)
    const mod = (await import("./sync.bench.js")) as {
      runSyncBench(t?: number): Promise<BenchResult[]>;
    };
    results.push(...(await mod.runSyncBench(timeMs)));
  }
  if (!only || only === "trace") {
    // lvsadm --trace: the director's batch with the tracer off and on (src/datapath/trace.ts)
    const mod = (await import("./trace.bench.js")) as {
      runTraceBench(t?: number): Promise<BenchResult[]>;
    };
    results.push(...(await mod.runTraceBench(timeMs)));
  }
  if (!only || only === "conntrack") {
    // conntrack lookup at 1M entries against the pre-issue-13-§6 layout (bench/ctref.ts), same run
    const mod = (await import("./conntrack.bench.js")) as {
      runConntrackBench(t?: number): Promise<BenchResult[]>;
    };
    results.push(...(await mod.runConntrackBench(timeMs)));
  }
  if (!only || only === "workers") {
    // data-path workers in process: 1 and 2 worker threads fed from memory links (docs/workers.md)
    const mod = (await import("./workers.bench.js")) as {
      runWorkersBench(ms?: number, repeat?: number): Promise<BenchResult[]>;
    };
    results.push(...(await mod.runWorkersBench(timeMs, quick ? 1 : 3)));
  }
  const w = Math.max(...results.map((r) => r.name.length));
  console.log(
    `lvs-ts benchmarks — node ${process.version}, ${cpus()[0]?.model ?? "?"} x${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
  );
  console.log(`${"benchmark".padEnd(w)}  ${"value".padStart(12)}  unit`);
  for (const r of results) {
    const v = r.unit === "ratio" ? r.value.toFixed(2) : fmt(r.value);
    console.log(`${r.name.padEnd(w)}  ${v.padStart(12)}  ${r.unit}`);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/bench/run.js -> bench/results.json at the repository root
  const out = join(here, "..", "..", "bench", "results.json");
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
