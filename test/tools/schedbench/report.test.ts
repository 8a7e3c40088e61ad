import { describe, expect, it } from "vitest";
import { measureCost } from "../../../src/tools/schedbench/cost.js";
import { Progress } from "../../../src/tools/schedbench/progress.js";
import { buildCharts, formatReport, reportJson } from "../../../src/tools/schedbench/report.js";
import { type Report, runReport } from "../../../src/tools/schedbench/run.js";
import { escapeXml, renderChart } from "../../../src/tools/schedbench/svg.js";
import { dests, scenario, variants } from "./helpers.js";
import { checkXml } from "./xml.js";

const scenarios = () => [
  scenario(
    "name small-equal",
    "title Small & <equal>",
    "duration 5s",
    "warmup 1s",
    "rate 300",
    "clients all 10.1.0.0/16 count 2000",
    ...dests(3),
  ),
  scenario(
    "name small-fail",
    "duration 5s",
    "rate 300",
    "persistence 30s",
    "clients all 10.1.0.0/16 count 500",
    ...dests(3),
    "at 2s fail s2 detect 1s",
  ),
];

function report(seed?: number): Report {
  return runReport({
    scenarios: scenarios(),
    variants: variants("rr,wlc,sh,mh+mh-fallback"),
    ...(seed !== undefined ? { seed } : {}),
    disruption: true,
    probeFlows: 2000,
  });
}

describe("report", () => {
  it("the same seed gives byte-identical JSON; another seed does not", () => {
    const a = reportJson(report());
    const b = reportJson(report());
    expect(b).toBe(a);
    expect(reportJson(report(99))).not.toBe(a);
    const parsed = JSON.parse(a) as Report;
    expect(parsed.tool).toBe("lvs-schedbench");
    expect(parsed.schedulers).toEqual(["rr", "wlc", "sh", "mh+mh-fallback"]);
    expect(parsed.scenarios.map((s) => s.runs.length)).toEqual([4, 4]);
    expect(parsed.cost).toBeNull();
  });

  it("the terminal report has a row per scheduler and the headline facts", () => {
    const text = formatReport(report());
    expect(text).toContain("small-equal — Small & <equal>");
    expect(text).toContain("events: 2s s2 fails (detected after 1s, removed)");
    expect(text).toContain("persistence 30s /32");
    for (const s of ["rr ", "wlc ", "sh ", "mh+mh-fallback "])
      expect(text.split("\n").filter((l) => l.startsWith(s)).length).toBe(4);
    expect(text).toMatch(/flows moved \(2,000 flow keys; `s1` removed/);
  });

  it("every chart is well-formed SVG with one bar per scheduler in each panel", () => {
    const r = report();
    const charts = buildCharts(r);
    const files = charts.map((c) => c.file);
    expect(files).toEqual(
      expect.arrayContaining([
        "latency-p99.svg",
        "util-imbalance.svg",
        "conn-shares.svg",
        "errors.svg",
        "disruption-remove.svg",
      ]),
    );
    for (const c of charts) {
      expect(checkXml(c.svg).root, c.file).toBe("svg");
      expect(c.svg).not.toMatch(/NaN|undefined|Infinity/);
    }
    const p99 = charts.find((c) => c.file === "latency-p99.svg")!.svg;
    const panels = p99.split('<g class="panel"').slice(1);
    expect(panels).toHaveLength(2);
    for (const panel of panels) {
      const labels = [...panel.matchAll(/<rect class="bar" data-label="([^"]*)" data-value="([^"]*)"/g)];
      expect(labels.map((m) => m[1])).toEqual(r.schedulers);
      for (const m of labels) expect(Number(m[2])).toBeGreaterThan(0);
    }
    expect(p99).toContain("Small &amp; &lt;equal&gt;");
    // Stacked share bars: one group per scheduler, one segment per server.
    const shares = charts.find((c) => c.file === "conn-shares.svg")!.svg;
    const first = shares.split('<g class="panel"')[1]!;
    expect(first.match(/<g class="bar"/g)).toHaveLength(4);
    expect(first.match(/<rect class="segment"/g)!.length).toBeLessThanOrEqual(4 * 3);
    // Disruption charts show only the key-based schedulers.
    const rm = charts.find((c) => c.file === "disruption-remove.svg")!.svg;
    const rmBars = [...rm.split('<g class="panel"')[1]!.matchAll(/<g class="bar" data-label="([^"]*)"/g)].map(
      (m) => m[1],
    );
    expect(rmBars).toEqual(["sh", "mh+mh-fallback"]);
  });

  it("renderChart escapes labels, marks the best bar, and shows n/a for missing values", () => {
    const svg = renderChart({
      title: 'a "quoted" & <title>',
      subtitle: "s",
      format: (v) => `${v}`,
      panels: [
        {
          title: "p",
          better: "lower",
          bars: [
            { label: "x<y", value: 2, color: "#000" },
            { label: "z", value: 1, color: "#111", note: "5% failed" },
            { label: "w", value: null, color: "#222" },
          ],
        },
      ],
    });
    expect(checkXml(svg).root).toBe("svg");
    expect(svg).toContain('data-label="x&lt;y"');
    expect(svg).toContain("1 ◀ best");
    expect(svg).toContain("n/a");
    expect(svg).toContain("· 5% failed");
    expect(svg.match(/<rect class="bar"/g)).toHaveLength(2);
    expect(escapeXml(`<&>"'`)).toBe("&lt;&amp;&gt;&quot;&apos;");
  });

  it("the XML check rejects what it should", () => {
    expect(() => checkXml("<a><b></a></b>")).toThrow(/closes/);
    expect(() => checkXml("<a x=1/>")).toThrow(/malformed/);
    expect(() => checkXml("<a>&nbsp;</a>")).toThrow(/stray &/);
    expect(() => checkXml("<a/><b/>")).toThrow(/more than one root/);
    expect(() => checkXml("<a>")).toThrow(/unclosed/);
    expect(checkXml('<a x="1"><b/>t &amp; u</a>')).toEqual({ root: "a", elements: 2 });
  });
});

describe("decision cost", () => {
  it("measures a median ns per decision for every scheduler and size", () => {
    const res = measureCost(variants("rr,wlc,mh"), () => 0, { sizes: [2, 64], runs: 3, runMs: 1 });
    expect(res.map((r) => r.scheduler)).toEqual(["rr", "wlc", "mh"]);
    for (const r of res) {
      for (const n of ["2", "64"]) {
        expect(r.runs[n]).toHaveLength(3);
        expect(r.ns[n]!).toBeGreaterThan(0);
        expect(r.ns[n]!).toBeLessThan(100_000);
        const sorted = [...r.runs[n]!].sort((a, b) => a - b);
        expect(r.ns[n]).toBe(sorted[1]);
      }
    }
  });
});

describe("progress bar", () => {
  const sink = (tty: boolean) => {
    const out: string[] = [];
    return {
      out,
      stream: {
        isTTY: tty,
        columns: 80,
        write: (s: string) => {
          out.push(s);
          return true;
        },
      },
    };
  };

  it("writes nothing when stderr is not a terminal", () => {
    const { out, stream } = sink(false);
    const p = new Progress(stream, undefined, 0);
    p.addTotal(10);
    p.step("a", 5);
    p.within(0.5);
    p.done();
    expect(out).toEqual([]);
  });

  it("draws a bar on a terminal once the delay has passed, and erases it at the end", () => {
    const { out, stream } = sink(true);
    const p = new Progress(stream, undefined, 0);
    p.addTotal(10);
    p.step("equal rr", 5);
    expect(out).toHaveLength(1);
    const ERASE = "\r\u001b[2K";
    expect(out[0]!.startsWith(ERASE)).toBe(true);
    expect(out[0]!.slice(ERASE.length)).toMatch(/^schedbench \[-+\]\s+0% 0s equal rr$/);
    p.step("equal wlc", 5); // half done, but drawn at most every 100 ms
    expect(p.render(80)).toMatch(/\[#+-+\]\s+50% /);
    p.done();
    expect(out.at(-1)).toBe(ERASE);
  });

  it("a delayed bar stays silent for short runs", () => {
    const { out, stream } = sink(true);
    const p = new Progress(stream, undefined, 60_000);
    p.addTotal(1);
    p.step("x", 1);
    p.done();
    expect(out).toEqual([]);
  });
});
