/**
 * How GET /metrics renders (src/control/observe/metrics.ts, Exposition): the values collected in
 * slices that give the event loop back, the text written by the render worker (or, without it,
 * on the main thread in the same slices), byte for byte the text registry.metrics() writes at
 * once; scrapes that arrive together share one render; the chunks go back (to the worker or the
 * pool) once every scrape that had them is done; a failing worker leaves the main thread to render.
 * No timing is asserted: `sliceMs: 0` makes a render yield at every step it can.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ObservedDaemon } from "../../../src/control/observe/daemon.js";
import { type HttpServer, startHttpServer } from "../../../src/control/observe/http.js";
import {
  Exposition,
  metricsRegistry,
  sendExposition,
  sliceBudgetMs,
} from "../../../src/control/observe/metrics.js";
import { clock } from "../../../src/datapath/clock.js";
import { Director } from "../../../src/datapath/director.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { natEngine } from "../../datapath/engine/helpers.js";
import { parseExposition, sampleValue } from "./exposition.js";
import { type Rig, trafficRig } from "./metrics-rig.js";

const SERVICES = 400;
const DESTS = 4;
/** More slots than one step of the per-state walk (65,536), so the walk yields too. */
const MAX_CONNS = 150_000;
const CONNS = 20_000;

/** The rig's daemon (health checks, links) over an engine with a bigger table and connections. */
function bigDaemon(r: Rig): { observed: ObservedDaemon; engine: Engine } {
  const engine = natEngine({ maxConns: MAX_CONNS });
  for (let s = 0; s < SERVICES; s++) {
    const key = { proto: s % 5 === 0 ? IPPROTO_UDP : IPPROTO_TCP, addr: ipToU32("10.9.0.0") + s, port: 80 };
    engine.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    for (let k = 0; k < DESTS; k++) {
      const d = engine.table.addDest(key, {
        addr: ipToU32("172.20.0.0") + s * 8 + k,
        port: 8080,
        weight: k + 1,
        fwd: FwdMethod.MASQ,
        uThreshold: 0,
        lThreshold: 0,
      });
      d.inBytes = (s + 1) * 1_000_000_007 * (k + 1);
      d.conns = s * k;
    }
  }
  clock.nowMs = 1;
  const services = engine.table.list();
  for (let i = 0; i < CONNS; i++) {
    const s = services[i % SERVICES]!;
    const d = s.dests[i % DESTS]!;
    const caddr = (0x0b000000 + i) | 0;
    engine.ct.create(
      s.proto,
      caddr,
      1024,
      s.addr | 0,
      80,
      d.addr | 0,
      8080,
      caddr,
      1024,
      0,
      false,
      d,
      s.id,
      -1,
    );
  }
  return { observed: { ...r.observed, engine, director: new Director(engine) }, engine };
}

describe("the sliced render of /metrics", () => {
  let r: Rig;
  let observed: ObservedDaemon;
  let engine: Engine;
  beforeAll(async () => {
    r = await trafficRig();
    ({ observed, engine } = bigDaemon(r));
  });
  afterAll(() => r?.observed.health.stop());

  it("writes byte for byte what registry.metrics() writes at once, in the worker or on the main thread", async () => {
    for (const o of [r.observed, observed]) {
      for (const worker of [true, false]) {
        const registry = metricsRegistry(o, { processMetrics: false });
        const exposition = new Exposition(registry, { sliceMs: 0, worker });
        expect(exposition.offThread).toBe(worker);
        const whole = await registry.metrics();
        expect(await exposition.text()).toBe(whole);
        expect(exposition.last?.offThread).toBe(worker);
        // again, into chunks that come back from the pool (the worker's or the main thread's)
        expect(await exposition.text()).toBe(whole);
        expect(exposition.workerFailures).toBe(0);
      }
    }
    const m = parseExposition(await new Exposition(metricsRegistry(observed), { sliceMs: 0 }).text());
    expect(m.get("node_ipvs_backend_weight")!.samples.length).toBe(SERVICES * DESTS);
    expect(m.get("lvs_service_connections_total")!.samples.length).toBe(SERVICES);
    expect(sampleValue(m, "lvs_conntrack_entries")).toBe(CONNS);
    const states = m.get("lvs_conntrack_connections")!.samples;
    expect(states.reduce((n, s) => n + s.value, 0)).toBe(CONNS);
    expect(m.has("process_cpu_seconds_total")).toBe(true);
  });

  it("gives the event loop back while it renders: timers and I/O run before the scrape ends", async () => {
    const exposition = new Exposition(metricsRegistry(observed, { processMetrics: false }), { sliceMs: 0 });
    let turns = 0;
    let ended = false;
    let firedBeforeEnd = false;
    const tick = (): void => {
      turns++;
      if (!ended) setImmediate(tick);
    };
    setImmediate(tick);
    setTimeout(() => {
      firedBeforeEnd = !ended;
    }, 0);
    const rendering = exposition.acquire().then((x) => {
      ended = true;
      return x;
    });
    const done = await rendering;
    expect(firedBeforeEnd).toBe(true);
    // 8 per-dest families of 1,600 series in steps of 256, the walk in steps of 65,536 slots
    expect(done.slices).toBeGreaterThan(8 * Math.floor((SERVICES * DESTS) / 256));
    expect(turns).toBeGreaterThanOrEqual(done.slices - 1);
    exposition.release(done);
  });

  it("renders once for scrapes that arrive together, and anew after", async () => {
    const exposition = new Exposition(metricsRegistry(observed, { processMetrics: false }), { sliceMs: 0 });
    const [a, b] = await Promise.all([exposition.acquire(), exposition.acquire()]);
    expect(a).toBe(b);
    expect(exposition.renders).toBe(1);
    expect(a.users).toBe(2);
    const text = Buffer.concat(a.chunks).toString();
    // a scrape arriving during a render joins it too
    const first = exposition.acquire();
    await new Promise((resolve) => setImmediate(resolve));
    const second = exposition.acquire();
    expect(await first).toBe(await second);
    expect(exposition.renders).toBe(2);
    // the chunks stay until the last scrape that has them releases them, then go back to the pool
    exposition.release(a);
    expect(a.chunks.length).toBeGreaterThan(0);
    expect(Buffer.concat(a.chunks).toString()).toBe(text);
    exposition.release(b);
    expect(a.chunks.length).toBe(0);
    const c = await first;
    expect(c.offThread).toBe(true);
    expect(c.spare?.length).toBeGreaterThan(0);
    exposition.release(c);
    expect(c.spare).toBeDefined(); // the second scrape still sends them
    exposition.release(c);
    expect(c.owned.length).toBe(0);
    expect(c.spare).toBeUndefined(); // back to the worker
  });

  it("keeps the worker's label sets in step with a table whose dests come and go", async () => {
    // the small rig: the 200 services x 4 dests that each round replaces are most of the table,
    // so the label sets sent pile up beyond twice those in use and epochs start anew on the way
    const t = r.observed.engine.table;
    const registry = metricsRegistry(r.observed, { processMetrics: false });
    const exposition = new Exposition(registry, { sliceMs: 0 });
    const epoch = exposition.workerEpoch;
    for (let round = 0; round < 6; round++) {
      const keys = [];
      for (let k = 0; k < 200; k++) {
        const key = { proto: IPPROTO_TCP, addr: ipToU32("10.77.0.0") + round * 256 + k, port: 8000 + round };
        t.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
        for (let d = 0; d < 4; d++) {
          t.addDest(key, {
            addr: ipToU32("172.30.0.0") + round * 4096 + k * 8 + d,
            port: 80,
            weight: 1,
            fwd: FwdMethod.MASQ,
            uThreshold: 0,
            lThreshold: 0,
          });
        }
        keys.push(key);
      }
      expect(await exposition.text()).toBe(await registry.metrics());
      expect(exposition.last?.offThread).toBe(true);
      for (const s of t.list()) if (s.port === 8000 + round) t.deleteService(s);
    }
    expect(await exposition.text()).toBe(await registry.metrics());
    expect(exposition.workerFailures).toBe(0);
    expect(exposition.workerEpoch - epoch).toBeGreaterThanOrEqual(2);
  });

  it("renders on the main thread when the worker fails, and stops starting it after three failures", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lvs-render-"));
    try {
      const broken = join(dir, "broken-worker.mjs");
      writeFileSync(broken, "process.exit(3);\n");
      const registry = metricsRegistry(observed, { processMetrics: false });
      const told: string[] = [];
      const exposition = new Exposition(registry, {
        sliceMs: 0,
        workerUrl: pathToFileURL(broken),
        log: (msg) => told.push(msg),
      });
      const whole = await registry.metrics();
      for (let k = 1; k <= 4; k++) {
        expect(await exposition.text()).toBe(whole);
        expect(exposition.last?.offThread).toBe(false);
        expect(exposition.workerFailures).toBe(Math.min(k, 3));
      }
      expect(exposition.offThread).toBe(false);
      expect(told).toHaveLength(3);
      expect(told[0]).toMatch(
        /render worker failed \(render worker exited with code 3\); this scrape rendered/,
      );
      expect(told[2]).toMatch(/scrapes from now on rendered on the main thread/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("stays well-formed when the table changes between its slices", async () => {
    const exposition = new Exposition(metricsRegistry(observed, { processMetrics: false }), { sliceMs: 0 });
    const t = engine.table;
    const key = { proto: IPPROTO_TCP, addr: ipToU32("10.9.200.1"), port: 443 };
    let changes = 0;
    const change = (): void => {
      if (changes === 3) return;
      changes++;
      if (changes === 1) t.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
      if (changes === 2) {
        t.addDest(key, {
          addr: ipToU32("172.21.0.1"),
          port: 443,
          weight: 1,
          fwd: FwdMethod.MASQ,
          uThreshold: 0,
          lThreshold: 0,
        });
      }
      if (changes === 3) t.deleteService(t.list()[0]!);
      setImmediate(change);
    };
    setImmediate(change);
    const text = await exposition.text();
    expect(changes).toBe(3);
    const m = parseExposition(text);
    for (const f of m.values()) {
      const lines = f.samples.map((s) => JSON.stringify(s.labels));
      expect(new Set(lines).size, f.name).toBe(lines.length); // no series twice
    }
    // the next scrape sees the table as it is now
    const after = parseExposition(await exposition.text());
    expect(after.get("node_ipvs_backend_weight")!.samples.length).toBe(SERVICES * DESTS - DESTS + 1);
  });
});

describe("GET /metrics, sliced", () => {
  let r: Rig;
  let http: HttpServer;
  let exposition: Exposition;
  let registryText: string;
  beforeAll(async () => {
    r = await trafficRig();
    const { observed } = bigDaemon(r);
    const registry = metricsRegistry(observed, { processMetrics: false });
    registryText = await registry.metrics();
    exposition = new Exposition(registry, { sliceMs: 0 });
    http = await startHttpServer(
      "127.0.0.1",
      0,
      { "/metrics": (req, res) => sendExposition(exposition, req, res) },
      () => {},
    );
  });
  afterAll(async () => {
    await http?.close();
    r?.observed.health.stop();
  });

  it("answers concurrent scrapes from one render, with the whole text and its length", async () => {
    const before = exposition.renders;
    const url = `http://127.0.0.1:${http.port}/metrics`;
    const answers = await Promise.all([fetch(url), fetch(url), fetch(url)]);
    const bodies = await Promise.all(answers.map((a) => a.text()));
    for (const [k, a] of answers.entries()) {
      expect(a.status).toBe(200);
      expect(a.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      // sent while the worker writes it: chunked, no length known when the headers went
      expect(a.headers.get("content-length")).toBeNull();
      expect(a.headers.get("transfer-encoding")).toBe("chunked");
      expect(bodies[k]).toBe(registryText);
    }
    // the three requests arrive while the first render runs (it yields between its slices)
    expect(exposition.renders - before).toBeLessThan(3);
    const head = await fetch(url, { method: "HEAD" });
    expect(Number(head.headers.get("content-length"))).toBe(Buffer.byteLength(registryText));
    expect(await head.text()).toBe("");
    // every response finished: the chunks went back to the worker
    await new Promise((resolve) => setImmediate(resolve));
    expect(exposition.last?.users).toBe(0);
    expect(exposition.last?.offThread).toBe(true);
    expect(exposition.last?.spare).toBeUndefined();
  });

  it("closes the connection when the worker dies after part of the text went out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lvs-render-"));
    const told: string[] = [];
    // a worker that sends a first chunk, then exits
    const half = join(dir, "half-worker.mjs");
    writeFileSync(
      half,
      [
        'import { parentPort } from "node:worker_threads";',
        'parentPort.on("message", () => {',
        '  const chunk = new TextEncoder().encode("# HELP x\\n").buffer;',
        '  parentPort.postMessage({ kind: "chunk", chunk, length: chunk.byteLength }, [chunk]);',
        "  setTimeout(() => process.exit(5), 20);",
        "});",
        "",
      ].join("\n"),
    );
    const registry = metricsRegistry(bigDaemon(r).observed, { processMetrics: false });
    const broken = new Exposition(registry, {
      sliceMs: 0,
      workerUrl: pathToFileURL(half),
      log: (m) => told.push(m),
    });
    const server = await startHttpServer(
      "127.0.0.1",
      0,
      { "/metrics": (req, res) => sendExposition(broken, req, res) },
      () => {},
    );
    try {
      const url = `http://127.0.0.1:${server.port}/metrics`;
      for (let k = 0; k < 3; k++) {
        let failed = "whole";
        try {
          await (await fetch(url)).text();
        } catch (err) {
          failed = (err as Error).message;
        }
        expect(failed).toMatch(/terminated|other side closed|socket/i);
      }
      expect(told).toHaveLength(3);
      expect(told[0]).toMatch(/exited with code 5/);
      // after three failures the main thread renders, whole
      const a = await fetch(url);
      expect(await a.text()).toBe(registryText);
      expect(broken.offThread).toBe(false);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("sends a text rendered on the main thread whole, with its length", async () => {
    const here = new Exposition(metricsRegistry(bigDaemon(r).observed, { processMetrics: false }), {
      sliceMs: 0,
      worker: false,
    });
    const server = await startHttpServer(
      "127.0.0.1",
      0,
      { "/metrics": (req, res) => sendExposition(here, req, res) },
      () => {},
    );
    try {
      const a = await fetch(`http://127.0.0.1:${server.port}/metrics`);
      const body = await a.text();
      expect(Number(a.headers.get("content-length"))).toBe(Buffer.byteLength(body));
      expect(body).toBe(registryText);
      expect(here.last?.offThread).toBe(false);
    } finally {
      await server.close();
    }
  });

  it("lets a client go away during the render, and answers the next one", async () => {
    const gone = await new Promise<string>((resolve) => {
      const req = get({ host: "127.0.0.1", port: http.port, path: "/metrics" });
      req.on("error", (err) => resolve(err.message));
      setImmediate(() => req.destroy()); // sent, then gone before the render ends
    });
    expect(gone).toMatch(/socket hang up|aborted/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const again = await fetch(`http://127.0.0.1:${http.port}/metrics`);
    expect(await again.text()).toBe(registryText);
    await new Promise((resolve) => setImmediate(resolve));
    expect(exposition.last?.users).toBe(0);
  });
});

describe("the slice budget (a render keeps a share of a busy thread)", () => {
  it("starts at sliceMs, then grows to half the render's age, capped at 20 ms", () => {
    expect(sliceBudgetMs(6, 0)).toBe(6);
    expect(sliceBudgetMs(6, 10)).toBe(6); // half of 10 ms is less than 6
    expect(sliceBudgetMs(6, 24)).toBe(12);
    expect(sliceBudgetMs(6, 40)).toBe(20);
    expect(sliceBudgetMs(6, 10_000)).toBe(20);
    expect(sliceBudgetMs(0, 10_000)).toBe(0); // tests: yield at every step
    expect(sliceBudgetMs(50, 0)).toBe(50); // a configured slice above the cap stays
  });
});
