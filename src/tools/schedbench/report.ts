/**
 * Presentation of a Report: terminal tables, one SVG chart per metric, an HTML page that embeds
 * them, and the JSON file.
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Report, ScenarioReport } from "./run.js";
import type { RunResult } from "./sim.js";
import { type Bar, type Chart, colorFor, escapeXml, type Panel, renderChart } from "./svg.js";

// ---------------------------------------------------------------- number formatting

function fixed(v: number | null | undefined, digits: number): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "—" : v.toFixed(digits);
}

function pct(v: number | null | undefined, digits = 1): string {
  return v === null || v === undefined || !Number.isFinite(v) ? "—" : `${(v * 100).toFixed(digits)}%`;
}

/** Milliseconds with about three significant digits. */
export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  if (v >= 10_000) return `${(v / 1000).toFixed(1)}s`;
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function ns(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return "—";
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function thousands(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Lay out rows as a fixed-width table; the first column left-aligned, the rest right-aligned. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(head), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------- terminal

export function scenarioHeadline(s: ScenarioReport): string {
  const w = s.workload;
  const src = w.source === "pcap" ? "replayed from a capture" : `seed ${s.seed}`;
  return `${s.name} — ${s.title}\n  ${thousands(w.connections)} connections over ${(w.endMs / 1000).toFixed(1)} s (${src}; measured after ${(w.warmupMs / 1000).toFixed(1)} s); dests ${s.setup.dests
    .map((d) => `${d.name} w${d.weight}×${d.speed}`)
    .join(", ")}; cost ${s.setup.cost}${s.setup.persistence ? `; persistence ${s.setup.persistence}` : ""}${
    s.setup.cache ? `; cache ${s.setup.cache}` : ""
  }${s.setup.targets > 0 ? `; ${thousands(s.setup.targets)} destination addresses` : ""}${
    s.setup.events.length > 0 ? `\n  events: ${s.setup.events.join("; ")}` : ""
  }`;
}

function loadRows(runs: readonly RunResult[], cache: boolean): string[][] {
  return runs.map((r) => [
    r.scheduler,
    fixed(r.imbalance.conns, 2),
    fixed(r.imbalance.util, 2),
    ms(r.latencyMs?.p50),
    ms(r.latencyMs?.p99),
    ms(r.latencyMs?.p999),
    pct(r.errorRate, 2),
    pct(r.affinity, 0),
    ...(cache ? [pct(r.cacheHitRatio, 1)] : []),
    r.servers.map((s) => Math.round(s.connShare * 100)).join("/"),
  ]);
}

/** The load and latency table of a scenario. */
export function formatLoadTable(s: ScenarioReport): string {
  const cache = s.setup.cache !== null;
  return table(
    [
      "scheduler",
      "conn max/mean",
      "util max/mean",
      "p50 ms",
      "p99 ms",
      "p99.9 ms",
      "errors",
      "affinity",
      ...(cache ? ["cache hits"] : []),
      "conn share % by dest",
    ],
    loadRows(s.runs, cache),
  );
}

/** The disruption table of a scenario (null when not measured). */
export function formatDisruptionTable(s: ScenarioReport): string | null {
  if (s.disruption === null || s.disruption.length === 0) return null;
  const first = s.disruption[0]!;
  const get = (kind: string) => (d: (typeof s.disruption)[number]) =>
    d.changes.find((c) => c.change === kind);
  const rm = get("remove");
  const add = get("add");
  const w0 = get("weight0");
  const rows = s.disruption.map((d) => [
    d.scheduler,
    pct(rm(d)?.moved),
    pct(rm(d)?.collateral, 2),
    pct(add(d)?.moved),
    pct(add(d)?.collateral, 2),
    pct(w0(d)?.moved),
    pct(w0(d)?.dropped),
    pct(rm(d)?.persistMoved),
    pct(add(d)?.persistMoved),
    pct(w0(d)?.persistMoved),
  ]);
  const target = first.changes.find((c) => c.change !== "add")?.target ?? "?";
  const flows = first.changes[0]?.flows ?? 0;
  return `flows moved (${thousands(flows)} flow keys; \`${target}\` removed or set to weight 0, a dest added; — = not key-based)\n${table(
    [
      "scheduler",
      "rm moved",
      "rm collat",
      "add moved",
      "add collat",
      "w0 moved",
      "w0 dropped",
      "persist rm",
      "persist add",
      "persist w0",
    ],
    rows,
  )}`;
}

/**
 * The scheduler(s) with the best value of `f`. Latency and balance are only compared among runs
 * that served (nearly) everything: a scheduler that refuses most connections has short queues.
 */
function best(runs: readonly RunResult[], f: (r: RunResult) => number | undefined, lower = true): string {
  const minErr = Math.min(...runs.map((r) => r.errorRate));
  const pool = runs.filter((r) => r.errorRate <= minErr + 0.005);
  let bv = Number.NaN;
  for (const r of pool) {
    const v = f(r);
    if (v === undefined || !Number.isFinite(v)) continue;
    if (Number.isNaN(bv) || (lower ? v < bv : v > bv)) bv = v;
  }
  if (Number.isNaN(bv)) return "—";
  const tied = pool.filter((r) => {
    const v = f(r);
    return v !== undefined && Math.abs(v - bv) <= Math.abs(bv) * BEST_TOLERANCE;
  });
  return tied.map((r) => r.scheduler).join(", ");
}

export function formatCostTable(r: Report): string | null {
  if (r.cost === null) return null;
  const sizes = r.cost.sizes;
  return `decision cost, ns per select() (median of ${r.cost.runs} runs)\n${table(
    ["scheduler", ...sizes.map((n) => `${n} dests`)],
    r.cost.results.map((c) => [c.scheduler, ...sizes.map((n) => ns(c.ns[String(n)]))]),
  )}`;
}

/** The whole report as terminal text. */
export function formatReport(r: Report): string {
  const parts: string[] = [];
  for (const s of r.scenarios) {
    parts.push(scenarioHeadline(s));
    parts.push(formatLoadTable(s));
    parts.push(
      `  among the schedulers with the fewest errors: lowest p99 ${best(s.runs, (x) => x.latencyMs?.p99)}; most even utilization ${best(s.runs, (x) => x.imbalance.util)}`,
    );
    const d = formatDisruptionTable(s);
    if (d !== null) parts.push(d);
    parts.push("");
  }
  const c = formatCostTable(r);
  if (c !== null) parts.push(c);
  return `${parts.join("\n")}\n`;
}

// ---------------------------------------------------------------- charts

export interface ChartFile {
  readonly file: string;
  readonly title: string;
  readonly svg: string;
}

/** Runs whose errors are within 0.5 percentage points of the fewest: eligible to be called "best". */
function eligibleRuns(runs: readonly RunResult[]): boolean[] {
  const minErr = Math.min(...runs.map((r) => r.errorRate));
  return runs.map((r) => r.errorRate <= minErr + 0.005);
}

function failedNote(r: RunResult): string | undefined {
  return r.errorRate >= 0.01 ? `${pct(r.errorRate, 0)} failed` : undefined;
}

function scenarioPanels(
  r: Report,
  value: (run: RunResult) => number | null | undefined,
  opts: { better?: "lower" | "higher"; ref?: number; max?: number; log?: boolean; notes?: boolean } = {},
): Panel[] {
  return r.scenarios.map((s) => {
    const bars: Bar[] = s.runs.map((run, i) => {
      const v = value(run);
      const note = opts.notes ? failedNote(run) : undefined;
      const bar: Bar = { label: run.scheduler, value: v ?? null, color: colorFor(i) };
      return note !== undefined ? { ...bar, note } : bar;
    });
    const p: Panel = { title: s.name, subtitle: s.title, bars, eligible: eligibleRuns(s.runs) };
    return {
      ...p,
      ...(opts.better ? { better: opts.better } : {}),
      ...(opts.ref !== undefined ? { ref: opts.ref } : {}),
      ...(opts.max !== undefined ? { max: opts.max } : {}),
      ...(opts.log ? { log: true } : {}),
    };
  });
}

/** Schedulers keyed on the destination address. */
const DADDR_KEYED = new Set(["dh", "lblc", "lblcr"]);

/** Values within this relative distance of the best count as tied for best. */
export const BEST_TOLERANCE = 0.01;

const MS = (v: number): string => `${ms(v)} ms`;
const PCT = (v: number): string => pct(v, 1);
const PCT_TICK = (v: number): string => `${+(v * 100).toPrecision(3)}%`;
const RATIO = (v: number): string => `${v.toFixed(2)}×`;

/** Every chart of a report. */
export function buildCharts(r: Report): ChartFile[] {
  const charts: { file: string; chart: Chart }[] = [];
  const add = (file: string, chart: Chart) => charts.push({ file, chart });
  if (r.scenarios.length > 0) {
    add("latency-p99.svg", {
      title: "p99 request latency",
      subtitle:
        "99th percentile of waiting + service time, ms, log scale — lower is better; best among those with the fewest failures",
      panels: scenarioPanels(r, (x) => x.latencyMs?.p99, { better: "lower", log: true, notes: true }),
      format: MS,
    });
    add("latency-p50.svg", {
      title: "Median request latency",
      subtitle:
        "50th percentile of waiting + service time, ms, log scale — lower is better; best among those with the fewest failures",
      panels: scenarioPanels(r, (x) => x.latencyMs?.p50, { better: "lower", log: true, notes: true }),
      format: MS,
    });
    add("util-imbalance.svg", {
      title: "Utilization imbalance",
      subtitle: "max / mean of per-server utilization (busy slot time / capacity) — 1.00 is perfectly even",
      panels: scenarioPanels(r, (x) => x.imbalance.util, { better: "lower", ref: 1, notes: true }),
      format: RATIO,
    });
    add("conn-imbalance.svg", {
      title: "Connection imbalance",
      subtitle:
        "max / mean of connections per server (per time in service) — 1.00 is equal counts; capacity-weighted pools should not be 1",
      panels: scenarioPanels(r, (x) => x.imbalance.conns, { ref: 1 }),
      format: RATIO,
    });
    add("errors.svg", {
      title: "Failed connections",
      subtitle:
        "no dest, black-holed to a dead server, refused (backlog full), aborted or unfinished — % of connections",
      panels: scenarioPanels(r, (x) => x.errorRate, {}),
      format: (v) => pct(v, 2),
      tickFormat: PCT_TICK,
    });
    add("affinity.svg", {
      title: "Client affinity",
      subtitle:
        "connections sent to the same server as the client's previous connection — % (higher = stickier)",
      panels: scenarioPanels(r, (x) => x.affinity, { max: 1 }),
      format: PCT,
      tickFormat: PCT_TICK,
    });
    const cached = r.scenarios.filter((s) => s.setup.cache !== null);
    if (cached.length > 0) {
      add("cache-hits.svg", {
        title: "Cache hit ratio",
        subtitle:
          "requests whose destination address was in the server's cache — higher is better (locality)",
        panels: scenarioPanels({ ...r, scenarios: cached }, (x) => x.cacheHitRatio, {
          better: "higher",
          max: 1,
        }),
        format: PCT,
        tickFormat: PCT_TICK,
      });
    }
    // Connection shares per server: one stacked bar per scheduler.
    const shares: Panel[] = r.scenarios.map((s) => ({
      title: s.name,
      subtitle: `${s.setup.dests.map((d) => `${d.name} w${d.weight} ×${d.speed}`).join(", ")}`,
      max: 1,
      bars: s.runs.map((run, i) => ({
        label: run.scheduler,
        value: run.servers.reduce((a, x) => a + x.connShare, 0),
        color: colorFor(i),
        text: run.servers.map((x) => Math.round(x.connShare * 100)).join("/"),
        segments: run.servers.map((x, k) => ({ name: x.name, value: x.connShare, color: serverColor(k) })),
      })),
    }));
    const maxServers = Math.max(...r.scenarios.map((s) => s.runs[0]?.servers.length ?? 0));
    add("conn-shares.svg", {
      title: "Share of connections per server",
      subtitle:
        "each bar is 100% of a scheduler's connections, split by server in the scenario's dest order (labels: % per server)",
      panels: shares,
      format: PCT,
      tickFormat: PCT_TICK,
      legend: Array.from({ length: maxServers }, (_, k) => ({
        name: `server ${k + 1}`,
        color: serverColor(k),
      })),
    });
    const busy: Panel[] = r.scenarios.map((s) => ({
      title: s.name,
      subtitle: `${s.setup.dests.map((d) => `${d.name} ×${d.speed}`).join(", ")}`,
      max: 1,
      bars: s.runs.map((run, i) => ({
        label: run.scheduler,
        value: run.servers.reduce((a, x) => a + x.busyShare, 0),
        color: colorFor(i),
        text: run.servers.map((x) => Math.round(x.busyShare * 100)).join("/"),
        segments: run.servers.map((x, k) => ({ name: x.name, value: x.busyShare, color: serverColor(k) })),
      })),
    }));
    add("busy-shares.svg", {
      title: "Share of busy time per server",
      subtitle: "each bar is 100% of the slot time spent serving, split by server (labels: % per server)",
      panels: busy,
      format: PCT,
      tickFormat: PCT_TICK,
      legend: Array.from({ length: maxServers }, (_, k) => ({
        name: `server ${k + 1}`,
        color: serverColor(k),
      })),
    });
    const withDisruption = r.scenarios.filter((s) => s.disruption?.some((d) => d.keyBased) === true);
    for (const change of ["remove", "add", "weight0"] as const) {
      if (withDisruption.length === 0) break;
      const panels: Panel[] = withDisruption.map((s) => {
        const target = s.disruption![0]?.changes.find((c) => c.change === change)?.target ?? "";
        const what =
          change === "add"
            ? "a new dest added"
            : `${target} ${change === "remove" ? "removed" : "set to weight 0"}`;
        // With one VIP, the schedulers keyed on the destination address see a single key: not shown.
        const oneKey = s.setup.targets === 0;
        return {
          title: s.name,
          subtitle: `${what}${oneKey ? "; one VIP, so dh/lblc/lblcr (keyed on it) are left out" : ""}`,
          max: 1,
          bars: s.disruption!.flatMap((d, i): Bar[] => {
            if (!d.keyBased || (oneKey && DADDR_KEYED.has(d.scheduler.split("+")[0]!))) return [];
            const c = d.changes.find((x) => x.change === change);
            if (!c || c.moved === null || !Number.isFinite(c.moved)) {
              return [{ label: d.scheduler, value: null, color: colorFor(i) }];
            }
            const nec = Math.min(c.necessary ?? 0, c.moved);
            const coll = c.collateral ?? 0;
            return [
              {
                label: d.scheduler,
                value: c.moved,
                color: colorFor(i),
                text: `${pct(c.moved)} · ${pct(coll)} collateral`,
                ...(c.dropped !== null && c.dropped > 0 ? { note: `${pct(c.dropped)} get no dest` } : {}),
                segments: [
                  { name: "forced by the change", value: nec, color: "#8c959f" },
                  { name: "collateral", value: coll, color: "#d62728" },
                  { name: "other", value: Math.max(0, c.moved - nec - coll), color: "#e3b341" },
                ],
              },
            ];
          }),
        };
      });
      const what =
        change === "add"
          ? "a dest is added"
          : change === "remove"
            ? "a dest is removed"
            : "a dest is set to weight 0";
      add(`disruption-${change}.svg`, {
        title: `Flows moved when ${what}`,
        subtitle:
          "key-based schedulers: share of flow keys whose dest changed — grey: forced by the change, red: collateral (moved between untouched dests)",
        panels,
        format: PCT,
        tickFormat: PCT_TICK,
        legend: [
          { name: "forced by the change", color: "#8c959f" },
          { name: "collateral", color: "#d62728" },
          { name: "other", color: "#e3b341" },
        ],
      });
    }
  }
  if (r.cost !== null) {
    const cost = r.cost;
    add("cost.svg", {
      title: "Decision cost",
      subtitle: `ns per select() (median of ${cost.runs} runs) by pool size, log scale — lower is better; compare within one machine`,
      panels: cost.sizes.map((n) => ({
        title: `${n} dests`,
        better: "lower",
        log: true,
        bars: cost.results.map((c, i) => ({
          label: c.scheduler,
          value: c.ns[String(n)] ?? null,
          color: colorFor(i),
        })),
      })),
      format: (v) => `${ns(v)} ns`,
      columns: 2,
    });
  }
  return charts.map(({ file, chart }) => ({ file, title: chart.title, svg: renderChart(chart) }));
}

const SERVER_COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

function serverColor(k: number): string {
  return SERVER_COLORS[k % SERVER_COLORS.length]!;
}

// ---------------------------------------------------------------- HTML and files

export function renderHtml(r: Report, charts: readonly ChartFile[], command: string): string {
  const text = formatReport(r);
  const figures = charts
    .map(
      (c) =>
        `<section><h2>${escapeXml(c.title)}</h2>\n${c.svg.replace(/^<svg /, '<svg style="max-width:100%;height:auto" ')}</section>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lvs-schedbench report</title>
<style>
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 24px; background: #f6f8fa; color: #1f2328; }
h1 { font-size: 22px; } h2 { font-size: 16px; margin-top: 28px; }
pre { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 12px; overflow-x: auto; font-size: 12px; }
code { background: #eaeef2; padding: 1px 4px; border-radius: 3px; }
</style></head><body>
<h1>lvs-schedbench report</h1>
<p>Command: <code>${escapeXml(command)}</code> — schedulers: ${escapeXml(r.schedulers.join(", "))}.
Everything except decision cost is deterministic for the given scenarios and seeds (see docs/schedbench.md for the model).</p>
${figures}
<h2>Tables</h2>
<pre>${escapeXml(text)}</pre>
</body></html>
`;
}

/** Write report.json, one SVG per chart and index.html into `dir`; returns the files written. */
export function writeOutputs(r: Report, dir: string, command: string): string[] {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, data: string) => {
    writeFileSync(join(dir, name), data);
    files.push(join(dir, name));
  };
  put("report.json", reportJson(r));
  const charts = buildCharts(r);
  for (const c of charts) put(c.file, c.svg);
  put("index.html", renderHtml(r, charts, command));
  return files;
}

/** The report as JSON text (stable key order; NaN/Infinity become null). */
export function reportJson(r: Report): string {
  return `${JSON.stringify(r, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`;
}
