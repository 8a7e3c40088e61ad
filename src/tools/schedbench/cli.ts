/**
 * lvs-schedbench: compare IPVS schedulers side by side in a deterministic simulation.
 *
 *   lvs-schedbench --all --out report/          the built-in scenarios, every registered scheduler
 *   lvs-schedbench -s my.scn --schedulers wlc,sed,mh+mh-fallback
 *   lvs-schedbench --pcap capture.pcap -s hetero-right
 *   lvs-schedbench --check my.scn
 *
 * Exit status: 0 done, 2 bad usage or an invalid scenario/capture, 1 anything else.
 */

import { realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { schedulerNames } from "../../datapath/schedulers/index.js";
import { builtinName, builtinScenarioFiles, resolveScenarioArg } from "./paths.js";
import { PcapError, type PcapFlows, readPcapFile } from "./pcap.js";
import { Progress } from "./progress.js";
import { formatReport, reportJson, writeOutputs } from "./report.js";
import { runReport } from "./run.js";
import { loadScenario, type Scenario, ScenarioError } from "./scenario.js";
import { parseVariants, VariantError } from "./variants.js";

export const USAGE = `Usage: lvs-schedbench [options]

Drive schedulers with the same simulated workload and report them side by side: load balance,
latency, errors, stickiness, flows moved by pool changes, and decision cost.

Workloads:
  --all                   every built-in scenario (scenarios/*.scn)
  -s, --scenario FILE     a scenario file or a built-in name (repeatable)
  --pcap FILE             replay the connections of a capture (classic pcap) with the
                          scenario's servers and request costs (default scenario: equal)
  --check                 only check the scenario files given and exit
  --list                  list the registered schedulers and the built-in scenarios

Schedulers and settings:
  --schedulers LIST       comma-separated (default: all registered); flags as sh+sh-port
  --seed N                override every scenario's seed
  --quick                 quarter-length timelines, fewer probe flows, shorter cost runs
  --no-disruption         skip the flows-moved probe
  --probe-flows N         flow keys for the flows-moved probe (default 20000)
  --no-cost               skip the decision cost measurement
  --cost-only             only measure decision cost
  --cost-sizes LIST       pool sizes for decision cost (default 2,16,256,1024)
  --cost-runs N           timed runs per size, the median is reported (default 7)

Output:
  --out DIR               write report.json, one SVG chart per metric and index.html
  --json FILE             write the JSON report to FILE (- for stdout)
  -q, --quiet             no tables on stdout
  -h, --help

Example: npm run schedbench -- --all --out report/
`;

export interface CliIo {
  readonly stdout: { write(s: string): boolean };
  readonly stderr: { write(s: string): boolean; readonly isTTY?: boolean; readonly columns?: number };
}

class UsageError extends Error {}

function positiveInt(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < 1)
    throw new UsageError(`${name} must be a positive integer, got \`${v}\``);
  return Number(v);
}

/** Run the command line; returns the exit status. */
export async function main(
  argv: readonly string[] = process.argv.slice(2),
  io: CliIo = process,
): Promise<number> {
  try {
    return run(argv, io);
  } catch (e) {
    if (e instanceof UsageError || e instanceof VariantError) {
      io.stderr.write(`lvs-schedbench: ${e.message}\n(see --help)\n`);
      return 2;
    }
    if (e instanceof ScenarioError || e instanceof PcapError) {
      io.stderr.write(`${e.message}\n`);
      return 2;
    }
    if ((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true) {
      io.stderr.write(`lvs-schedbench: ${(e as Error).message}\n(see --help)\n`);
      return 2;
    }
    io.stderr.write(`lvs-schedbench: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

function run(argv: readonly string[], io: CliIo): number {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      all: { type: "boolean" },
      scenario: { type: "string", short: "s", multiple: true },
      pcap: { type: "string" },
      check: { type: "boolean" },
      list: { type: "boolean" },
      schedulers: { type: "string" },
      seed: { type: "string" },
      quick: { type: "boolean" },
      "no-disruption": { type: "boolean" },
      "probe-flows": { type: "string" },
      "no-cost": { type: "boolean" },
      "cost-only": { type: "boolean" },
      "cost-sizes": { type: "string" },
      "cost-runs": { type: "string" },
      out: { type: "string" },
      json: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  if (values.list) {
    io.stdout.write(`schedulers: ${schedulerNames().join(" ")}\n`);
    io.stdout.write(`built-in scenarios:\n`);
    for (const f of builtinScenarioFiles()) {
      const s = loadScenario(f);
      io.stdout.write(`  ${builtinName(f).padEnd(16)} ${s.title}\n`);
    }
    return 0;
  }

  // Scenario arguments: --scenario values, plus positionals (convenient with --check).
  const args = [...(values.scenario ?? []), ...positionals];
  const files: string[] = [];
  if (values.all) files.push(...builtinScenarioFiles());
  for (const a of args) {
    const f = resolveScenarioArg(a);
    if (f === undefined) throw new UsageError(`no scenario file or built-in scenario \`${a}\``);
    if (!files.includes(f)) files.push(f);
  }
  if (values.check) {
    if (files.length === 0) throw new UsageError("--check needs scenario files");
    const problems: string[] = [];
    for (const f of files) {
      try {
        const s = loadScenario(f);
        io.stdout.write(`${f}: ok (${s.name}: ${s.dests.length} dests, ${s.events.length} events)\n`);
      } catch (e) {
        if (!(e instanceof ScenarioError)) throw e;
        problems.push(e.message);
      }
    }
    if (problems.length > 0) {
      io.stderr.write(`${problems.join("\n")}\n`);
      return 2;
    }
    return 0;
  }

  let pcap: PcapFlows | undefined;
  if (values.pcap !== undefined) {
    pcap = readPcapFile(values.pcap);
    if (files.length === 0) files.push(resolveScenarioArg("equal")!);
    if (pcap.arrivals.length === 0) {
      throw new PcapError("PCAP_BAD_RECORD", values.pcap, "no TCP SYN or UDP flow found in the capture");
    }
  }
  const costOnly = values["cost-only"] === true;
  if (files.length === 0 && !costOnly) {
    io.stderr.write(USAGE);
    return 2;
  }
  const scenarios: Scenario[] = costOnly ? [] : files.map((f) => loadScenario(f));
  const variants = parseVariants(values.schedulers);
  const quick = values.quick === true;
  let seed: number | undefined;
  if (values.seed !== undefined) {
    if (!/^\d+$/.test(values.seed) || Number(values.seed) > 0xffffffff) {
      throw new UsageError(`--seed must be an integer 0..4294967295, got \`${values.seed}\``);
    }
    seed = Number(values.seed);
  }
  let sizes: number[] | undefined;
  if (values["cost-sizes"] !== undefined) {
    sizes = values["cost-sizes"].split(",").map((s) => positiveInt("--cost-sizes", s.trim(), 0));
    if (sizes.some((n) => n > 65536)) throw new UsageError("--cost-sizes: at most 65536 dests");
  }
  const costRuns = positiveInt("--cost-runs", values["cost-runs"], quick ? 3 : 7);
  const probeFlows = positiveInt("--probe-flows", values["probe-flows"], quick ? 5000 : 20000);
  const wantCost = costOnly || values["no-cost"] !== true;

  const progress = new Progress(io.stderr);
  const report = runReport({
    scenarios,
    variants,
    ...(seed !== undefined ? { seed } : {}),
    timeScale: quick ? 0.25 : 1,
    disruption: !costOnly && values["no-disruption"] !== true,
    probeFlows,
    cost: wantCost ? { ...(sizes ? { sizes } : {}), runs: costRuns, runMs: quick ? 4 : 8 } : false,
    ...(pcap ? { pcap } : {}),
    progress,
  });

  if (values.quiet !== true) io.stdout.write(formatReport(report));
  const command = `lvs-schedbench ${argv.join(" ")}`.trim();
  if (values.json !== undefined) {
    if (values.json === "-") io.stdout.write(reportJson(report));
    else {
      writeFileSync(values.json, reportJson(report));
      io.stderr.write(`wrote ${values.json}\n`);
    }
  }
  if (values.out !== undefined) {
    const written = writeOutputs(report, values.out, command);
    io.stderr.write(
      `wrote ${written.length} files to ${values.out} (open ${join(values.out, "index.html")})\n`,
    );
  }
  return 0;
}

// Run when executed directly (node dist/src/tools/schedbench/cli.js), not when imported by tests or the bin shim.
const self = fileURLToPath(import.meta.url);
const invoked = process.argv[1] !== undefined ? safeRealpath(process.argv[1]) : "";
if (invoked === safeRealpath(self)) {
  process.exitCode = await main();
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
