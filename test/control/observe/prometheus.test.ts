/**
 * lvsd's /metrics scraped by a real Prometheus server, end to end: the NAT lab (two real
 * servers, src/tools/lab/natlab.ts) with lvsd started with `--http 127.0.0.1:PORT` in the
 * director's namespace; a Prometheus server (Debian package prometheus) started by this test in
 * the same namespace, with its own configuration and storage in a temporary directory, a 1 s
 * scrape interval, listening on 127.0.0.1 there, and run under `timeout` so it never outlives
 * the test; HTTP requests from the client through the VIP; then Prometheus's HTTP API, asked
 * from inside the namespace with curl: lvsd is up, was scraped more than once, and the packet
 * rate node_exporter's dashboards plot is not zero.
 *
 * Needs root; skipped with a message otherwise. Everything lives in the test's own namespaces
 * (prefixed names); the namespaces, their processes and the temporary directory go in afterAll,
 * also when a test fails.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns, waitFor } from "../../../src/tools/lab/netns.js";
import { haveTools, onPath } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping the Prometheus namespace test: needs root, the ip tool and the built native addon");
const ok = privileged && haveTools("the Prometheus namespace test", "curl", "prometheus");

/** lvsd's --http port and Prometheus's, both on 127.0.0.1 inside the director's namespace. */
const LVSD_PORT = 9107;
const PROM_PORT = 9190;
/** The longest the Prometheus server may run (seconds), whatever happens to the test. */
const PROM_LIFETIME = 150;

interface Vector {
  metric: Record<string, string>;
  value: [number, string];
}

describe.skipIf(!ok)("Prometheus scraping lvsd --http", () => {
  const prefix = `pm${process.pid % 100000}`;
  const lab = new NatLab({ prefix, servers: 2, lvsdArgs: ["--http", `127.0.0.1:${LVSD_PORT}`] });
  let dir = "";

  /** Run curl in the director's namespace (where lvsd's and Prometheus's loopback are). */
  const curl = (...args: string[]) => lab.topo.exec("d", "curl", ["-s", "-m", "5", ...args]);
  const query = (q: string): Vector[] => {
    const r = curl("--get", "--data-urlencode", `query=${q}`, `http://127.0.0.1:${PROM_PORT}/api/v1/query`);
    if (r.code !== 0) throw new Error(`query ${q}: curl exit ${r.code} ${r.stderr}`);
    const doc = JSON.parse(r.stdout) as { status: string; error?: string; data?: { result: Vector[] } };
    if (doc.status !== "success") throw new Error(`query ${q}: ${doc.error ?? r.stdout}`);
    return doc.data?.result ?? [];
  };
  const value = (q: string): number | undefined => {
    const v = query(q)[0]?.value[1];
    return v === undefined ? undefined : Number(v);
  };

  beforeAll(async () => {
    await lab.up();
    for (const c of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(1)}:80`, "-m"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(2)}:80`, "-m"],
    ]) {
      const r = lab.lvsadm(...c);
      if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
    }
    dir = mkdtempSync(join(tmpdir(), `${prefix}-prom-`));
    const config = join(dir, "prometheus.yml");
    writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "scrape_configs:",
        "  - job_name: lvsd",
        "    scrape_interval: 1s",
        "    scrape_timeout: 1s",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${LVSD_PORT}"]`,
        "",
      ].join("\n"),
    );
    lab.topo.spawn("d", "timeout", [
      String(PROM_LIFETIME),
      "prometheus",
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${PROM_PORT}`,
      "--log.level=warn",
    ]);
    await waitFor(
      "Prometheus to be ready",
      () => curl(`http://127.0.0.1:${PROM_PORT}/-/ready`).code === 0,
      30_000,
    );
    await waitFor("Prometheus's first scrape of lvsd", () => value('up{job="lvsd"}') === 1, 30_000);
  }, 90_000);
  afterAll(() => {
    lab.down(); // kills lvsd, the real servers and Prometheus, and removes the namespaces
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("scrapes lvsd, and the packet rate through the VIP is not zero after traffic", async () => {
    // requests spread over about 3 s, so that several 1 s scrapes see the counters grow
    const answers: string[] = [];
    for (let k = 0; k < 12; k++) {
      answers.push(lab.get(`http://${VIP}/`).trim());
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(new Set(answers)).toEqual(new Set(["rs1", "rs2"]));
    // two more scrapes after the last request
    await new Promise((r) => setTimeout(r, 2500));

    expect(value('up{job="lvsd"}')).toBe(1);
    expect(value('count_over_time(up{job="lvsd"}[1m])')).toBeGreaterThanOrEqual(2);
    const rate = value('rate(node_ipvs_incoming_packets_total{job="lvsd"}[10s])');
    expect(rate).toBeGreaterThan(0);
    // every request is at least a SYN, an ACK and the request itself: 12 connections, 36 packets in
    expect(value('node_ipvs_connections_total{job="lvsd"}')).toBe(12);
    expect(value('node_ipvs_incoming_packets_total{job="lvsd"}')).toBeGreaterThanOrEqual(36);
    // per real server, with node_exporter's labels
    const active = query('node_ipvs_backend_weight{job="lvsd"}')
      .map(
        (v) =>
          `${v.metric.proto} ${v.metric.local_address}:${v.metric.local_port} -> ${v.metric.remote_address}:${v.metric.remote_port} ${v.value[1]}`,
      )
      .sort();
    expect(active).toEqual([`TCP ${VIP}:80 -> ${rsIp(1)}:80 1`, `TCP ${VIP}:80 -> ${rsIp(2)}:80 1`]);
    const perDest = query('sum by (remote_address) (increase(lvs_dest_connections_total{job="lvsd"}[1m]))');
    expect(perDest.length).toBe(2);
    // lvsd's own families and the process metrics are there too
    expect(value('lvs_drops_total{job="lvsd",reason="no_service"}')).toBe(0);
    expect(value('nodejs_eventloop_lag_seconds{job="lvsd"}')).toBeGreaterThanOrEqual(0);
  });

  it("serves a scrape promtool finds well-formed", (ctx) => {
    if (!onPath("promtool")) ctx.skip("needs promtool (Debian package prometheus)");
    const r = curl(`http://127.0.0.1:${LVSD_PORT}/metrics`);
    expect(r.code).toBe(0);
    const check = spawnSync("promtool", ["check", "metrics"], { input: r.stdout, encoding: "utf8" });
    const problems = `${check.stdout}${check.stderr}`
      .split("\n")
      .filter((l) => l !== "" && !/^nodejs_active_(handles|requests|resources)_total non-counter/.test(l));
    expect(problems).toEqual([]);
    expect([0, 3]).toContain(check.status);
  });
});
