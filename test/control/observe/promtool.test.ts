/**
 * Prometheus's own checker on a real scrape: `promtool check metrics` (Debian package
 * prometheus) reads GET /metrics as served over HTTP by the engine of metrics-rig.ts, and must
 * find it well-formed and lint-clean. prom-client's default Node.js metrics include three gauges
 * whose names end in _total (nodejs_active_{handles,requests,resources}_total), which promtool's
 * linter flags; those lines, and only those, are allowed.
 */

import { spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HttpServer, startHttpServer } from "../../../src/control/observe/http.js";
import { metricsRegistry, metricsRoutes } from "../../../src/control/observe/metrics.js";
import { skipWithout } from "../../support/tools.js";
import { type Rig, trafficRig } from "./metrics-rig.js";

/** prom-client's default metrics that promtool's linter flags (gauges named *_total). */
const PROM_CLIENT_LINT =
  /^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/;

function promtool(text: string): { code: number; out: string } {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", timeout: 30_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}`.trim() };
}

describe("promtool check metrics", () => {
  let r: Rig;
  let http: HttpServer;
  beforeAll(async () => {
    r = await trafficRig();
    http = await startHttpServer("127.0.0.1", 0, metricsRoutes(r.observed), () => {});
  });
  afterAll(async () => {
    await http?.close();
    r?.observed.health.stop();
  });

  it("finds the scrape well-formed and lint-clean", async (ctx) => {
    skipWithout(ctx, "promtool");
    const text = await fetch(`http://127.0.0.1:${http.port}/metrics`).then((x) => x.text());
    const { code, out } = promtool(text);
    const problems = out.split("\n").filter((l) => l !== "" && !PROM_CLIENT_LINT.test(l));
    expect(problems).toEqual([]);
    // 0: clean; 3: lint problems only (the prom-client lines above); 1 would be a parse error
    expect([0, 3]).toContain(code);
  });

  it("finds lvsd's own families clean with no exception (no process metrics)", async (ctx) => {
    skipWithout(ctx, "promtool");
    const text = await metricsRegistry(r.observed, { processMetrics: false }).metrics();
    expect(promtool(text)).toEqual({ code: 0, out: "" });
  });
});
