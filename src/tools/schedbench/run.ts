/**
 * Orchestration: for each scenario build the workload once, simulate every scheduler on it,
 * probe disruption, then (once per report) measure decision cost. The Report is plain data: the
 * JSON file is this object, and the table, charts and HTML page are drawn from it.
 *
 * Everything in a report except `cost` is a function of the scenarios, the scheduler list and the
 * seeds: the same inputs give byte-identical JSON (cost is measured time and varies).
 */

import { formatIPv4, maskPrefix } from "./addr.js";
import { type CostResult, DEFAULT_COST_SIZES, measureCost } from "./cost.js";
import { DEFAULT_PROBE_FLOWS, type DisruptionResult, probeDisruption, probeFlows } from "./disruption.js";
import { type PcapFlows, type PcapStats, readPcapFile } from "./pcap.js";
import type { Progress } from "./progress.js";
import { describeDist } from "./rng.js";
import type { Scenario } from "./scenario.js";
import { type RunResult, simulate } from "./sim.js";
import { type SchedVariant, variantFlagBits } from "./variants.js";
import { pcapWorkload, scaleScenario, syntheticWorkload, type Workload } from "./workload.js";

export const REPORT_FORMAT = 1;

export interface ScenarioReport {
  readonly name: string;
  readonly title: string;
  readonly file: string;
  readonly seed: number;
  readonly setup: {
    readonly dests: readonly { name: string; addr: string; weight: number; slots: number; speed: number }[];
    readonly cost: string;
    readonly rate: number;
    readonly lingerMs: number;
    readonly persistence: string | null;
    readonly cache: string | null;
    /** Destination addresses clients connect to (0 = the VIP only). */
    readonly targets: number;
    readonly events: readonly string[];
  };
  readonly workload: {
    readonly source: "synthetic" | "pcap";
    readonly connections: number;
    readonly endMs: number;
    readonly warmupMs: number;
    readonly pcap: PcapStats | null;
  };
  readonly runs: readonly RunResult[];
  readonly disruption: readonly DisruptionResult[] | null;
}

export interface Report {
  readonly tool: "lvs-schedbench";
  readonly format: number;
  readonly schedulers: readonly string[];
  readonly options: { readonly timeScale: number; readonly seed: number | null; readonly probeFlows: number };
  readonly scenarios: readonly ScenarioReport[];
  readonly cost: {
    readonly sizes: readonly number[];
    readonly runs: number;
    readonly results: readonly CostResult[];
  } | null;
}

export interface RunOptions {
  readonly scenarios: readonly Scenario[];
  readonly variants: readonly SchedVariant[];
  /** Override every scenario's seed. */
  readonly seed?: number;
  /** Scale scenario timelines (--quick uses 0.25). */
  readonly timeScale?: number;
  readonly disruption?: boolean;
  readonly probeFlows?: number;
  /** Measure decision cost (with these options); false/undefined = skip. */
  readonly cost?:
    | false
    | { readonly sizes?: readonly number[]; readonly runs?: number; readonly runMs?: number };
  /** Replay this capture in every scenario instead of its own arrivals (--pcap). */
  readonly pcap?: PcapFlows;
  readonly progress?: Progress;
}

/** Rough work estimates (units ≈ microseconds) so the progress bar moves evenly. */
const SIM_UNITS_PER_CONN = 2;
const PROBE_UNITS_PER_FLOW = 1.2;

function describeEvent(e: Scenario["events"][number]): string {
  const at = `${e.at / 1000}s`;
  switch (e.kind) {
    case "rate":
      return `${at} rate ${e.rate}/s`;
    case "share":
      return `${at} share ${e.pop} ${e.share}`;
    case "fail":
      return `${at} ${e.dest} fails (detected after ${e.detectMs / 1000}s${e.inhibit ? ", weight 0" : ", removed"})`;
    case "recover":
      return `${at} ${e.dest} recovers (re-enabled after ${e.detectMs / 1000}s)`;
    case "remove":
      return `${at} ${e.dest} removed`;
    case "weight":
      return `${at} ${e.dest} weight ${e.weight}`;
    case "add":
      return `${at} ${e.spec.name} added (weight ${e.spec.weight})`;
    default: {
      const never: never = e;
      return String(never);
    }
  }
}

function workloadFor(scn: Scenario, seed: number, pcap: PcapFlows | undefined): Workload {
  if (pcap) return pcapWorkload(scn, pcap, seed);
  if (scn.pcap !== null) return pcapWorkload(scn, readPcapFile(scn.pcap), seed);
  return syntheticWorkload(scn, seed);
}

/** Run everything and return the report. */
export function runReport(opts: RunOptions): Report {
  const scale = opts.timeScale ?? 1;
  const nProbe = opts.probeFlows ?? DEFAULT_PROBE_FLOWS;
  const progress = opts.progress;
  const variants = opts.variants;
  const scenarios = opts.scenarios.map((s) => scaleScenario(s, scale));
  // Workloads first (cheap), so the progress bar knows the total.
  const workloads = scenarios.map((s) => workloadFor(s, opts.seed ?? s.seed, opts.pcap));
  const cost = opts.cost ? opts.cost : null;
  const sizes = cost?.sizes ?? DEFAULT_COST_SIZES;
  const costRuns = cost?.runs ?? 7;
  const costRunMs = cost?.runMs ?? 8;
  if (progress) {
    for (const wl of workloads) progress.addTotal(variants.length * wl.n * SIM_UNITS_PER_CONN);
    if (opts.disruption)
      progress.addTotal(scenarios.length * variants.length * nProbe * PROBE_UNITS_PER_FLOW);
    if (cost) progress.addTotal(variants.length * sizes.length * (costRuns + 4) * costRunMs * 1000);
  }

  const reports: ScenarioReport[] = scenarios.map((scn, si) => {
    const wl = workloads[si]!;
    const seed = opts.seed ?? scn.seed;
    const runs: RunResult[] = [];
    for (const v of variants) {
      progress?.step(`${scn.name} ${v.label}`, wl.n * SIM_UNITS_PER_CONN);
      runs.push(simulate(scn, wl, v, progress ? { onProgress: (f) => progress.within(f) } : {}));
    }
    let disruption: DisruptionResult[] | null = null;
    if (opts.disruption) {
      const flows = probeFlows(scn, nProbe, seed);
      disruption = variants.map((v) => {
        progress?.step(`${scn.name} disruption ${v.label}`, nProbe * PROBE_UNITS_PER_FLOW);
        return probeDisruption(scn, v, flows);
      });
    }
    const p = scn.persistence;
    return {
      name: scn.name,
      title: scn.title,
      file: scn.file,
      seed,
      setup: {
        dests: scn.dests.map((d) => ({
          name: d.name,
          addr: `${formatIPv4(d.addr)}:${d.port}`,
          weight: d.weight,
          slots: d.slots,
          speed: d.speed,
        })),
        cost: describeDist(scn.cost, "ms"),
        rate: scn.rate,
        lingerMs: scn.lingerMs,
        persistence: p
          ? `${p.timeoutMs / 1000}s /${maskPrefix(p.mask)}${p.expireQuiescent ? " expire-quiescent" : ""}`
          : null,
        cache: scn.cache
          ? `${scn.cache.size} addresses per server, miss costs ×${scn.cache.missFactor}`
          : null,
        targets: scn.targets?.count ?? 0,
        events: scn.events.map(describeEvent),
      },
      workload: {
        source: wl.source,
        connections: wl.n,
        endMs: wl.endMs,
        warmupMs: scn.warmupMs,
        pcap: wl.pcapStats,
      },
      runs,
      disruption,
    };
  });

  let costReport: Report["cost"] = null;
  if (cost) {
    const flagBits = (v: SchedVariant): number => variantFlagBits(v, []);
    const results = measureCost(variants, flagBits, {
      sizes,
      runs: costRuns,
      runMs: costRunMs,
      onStep: (label) => progress?.step(`cost ${label}`, (costRuns + 4) * costRunMs * 1000),
    });
    costReport = { sizes, runs: costRuns, results };
  }
  progress?.done();
  return {
    tool: "lvs-schedbench",
    format: REPORT_FORMAT,
    schedulers: variants.map((v) => v.label),
    options: { timeScale: scale, seed: opts.seed ?? null, probeFlows: opts.disruption ? nProbe : 0 },
    scenarios: reports,
    cost: costReport,
  };
}
