/**
 * The cost of a Prometheus scrape of lvsd (src/control/observe/metrics.ts) with 1,000 services x
 * 10 dests (10,000 real servers, about 85,000 series) and a full connection table of lvsd's
 * default size (1M entries, all walked for the per-state counts), with tinybench:
 *
 * - render: what GET /metrics does (Exposition.acquire): the values collected on the main thread
 *   in slices that yield to the event loop every 2 ms, the text written by the render worker,
 *   in ms per scrape, prom-client's process metrics included; and the same rendered on the main
 *   thread in slices (no worker: what lvsd did before it had one); for both, the main thread's
 *   time per scrape in all (the slices' sum);
 * - render, at once: `registry.metrics()`, the same text as one string in one synchronous block
 *   (what GET /metrics did before the sliced render);
 * - over HTTP: GET /metrics from lvsd's HTTP server on loopback on a new connection, until the
 *   last byte (the client in the same process, reading without decoding);
 * - the event loop held: the longest stretch a scrape over HTTP kept the event loop from other
 *   work, seen by perf_hooks.monitorEventLoopDelay (1 ms resolution) over 20 scrapes, and the
 *   longest slice the renders themselves timed; the same for the route as it was (render at
 *   once, then send one buffer);
 * - reference: prom-client's usual path for the eight per-dest families alone (Gauge.set per
 *   series in a collect callback, the registry formatting every label of every series), which
 *   is what metrics.ts avoids.
 *
 * The scrape runs on the thread that forwards packets: the data path waits as long as the event
 * loop is held (a slice of the sliced render; the whole render at once).
 * Used by bench/run.ts (`--only metrics`); after `npm run build`, also
 * `node dist/bench/metrics.bench.js [timeMs]`.
 */

import { get } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { Gauge, Registry } from "prom-client";
import { Bench } from "tinybench";
import { EngineControl } from "../src/control/adapter.js";
import { RateEstimator } from "../src/control/estimator.js";
import { HealthManager } from "../src/control/health/manager.js";
import type { ObservedDaemon } from "../src/control/observe/daemon.js";
import { reply, startHttpServer } from "../src/control/observe/http.js";
import { Exposition, metricsRegistry, sendExposition } from "../src/control/observe/metrics.js";
import { clock } from "../src/datapath/clock.js";
import { Director } from "../src/datapath/director.js";
import { Engine } from "../src/datapath/engine.js";
import { MemoryLink } from "../src/datapath/io/memory.js";
import { ipToU32, macToBytes, u32ToIp } from "../src/lib/addr.js";
import { IPPROTO_TCP } from "../src/lib/proto.js";
import { FwdMethod } from "../src/tables/model.js";

export interface MetricsBenchResult {
  name: string;
  unit: string;
  value: number;
  samples: number;
}

export const SERVICES = 1000;
export const DESTS_PER_SERVICE = 10;
const MAX_CONNS = 1 << 20; // lvsd's default --max-conns

/** A director with SERVICES x DESTS_PER_SERVICE real servers and a full connection table. */
export function bigDirector(): ObservedDaemon {
  const engine = new Engine({ maxConns: MAX_CONNS, sweepPerBatch: 0 });
  const director = new Director(engine);
  director.attach(new MemoryLink("lvs0", macToBytes("02:00:00:00:00:01")));
  director.attach(new MemoryLink("lvs1", macToBytes("02:00:00:00:01:01")));
  const t = engine.table;
  for (let s = 0; s < SERVICES; s++) {
    const key = { proto: IPPROTO_TCP, addr: (ipToU32("10.1.0.0") + s) >>> 0, port: 80 };
    t.addService(key, { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff });
    for (let k = 0; k < DESTS_PER_SERVICE; k++) {
      const addr = (ipToU32("172.16.0.0") + s * 16 + k) >>> 0;
      t.addDest(key, { addr, port: 8080, weight: 1 + k, fwd: FwdMethod.MASQ, uThreshold: 0, lThreshold: 0 });
    }
  }
  // Counters of a director that has run for a while (values of realistic length).
  let x = 12345;
  const next = (): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x;
  };
  for (const s of t.list()) {
    for (const d of s.dests) {
      d.conns = next() % 10_000_000;
      d.inPkts = d.conns * 12 + (next() % 1000);
      d.outPkts = d.conns * 10 + (next() % 1000);
      d.inBytes = d.inPkts * 700;
      d.outBytes = d.outPkts * 1200;
      s.conns += d.conns;
      s.inPkts += d.inPkts;
      s.outPkts += d.outPkts;
      s.inBytes += d.inBytes;
      s.outBytes += d.outBytes;
    }
  }
  // The connection table full, spread over every dest (the per-state counts walk all of it).
  clock.nowMs = 1;
  const services = t.list();
  for (let i = 0; i < MAX_CONNS; i++) {
    const s = services[i % SERVICES]!;
    const d = s.dests[(i >>> 10) % DESTS_PER_SERVICE]!;
    const caddr = (0x0b000000 + (i >>> 4)) | 0;
    const cport = 1024 + (i & 15);
    engine.ct.create(
      IPPROTO_TCP,
      caddr,
      cport,
      s.addr | 0,
      80,
      d.addr | 0,
      8080,
      caddr,
      cport,
      0,
      false,
      d,
      s.id,
      -1,
    );
  }
  if (engine.ct.count !== MAX_CONNS) throw new Error(`connection table holds ${engine.ct.count}`);
  const target = new EngineControl(engine);
  return {
    engine,
    director,
    target,
    health: new HealthManager(t, { log: () => {} }),
    estimator: new RateEstimator(t),
    linkNames: ["lvs0", "lvs1"],
    maxConns: MAX_CONNS,
    startedAtMs: Date.now(),
    version: "lvsd (lvs-ts) bench",
  };
}

/** prom-client's usual path for the per-dest families: Gauge.set per series in collect(). */
function stockRegistry(o: ObservedDaemon): Registry {
  const registry = new Registry();
  const labelNames = ["local_address", "local_mark", "local_port", "proto", "remote_address", "remote_port"];
  const fields = [
    "activeConns",
    "inactConns",
    "weight",
    "conns",
    "inPkts",
    "outPkts",
    "inBytes",
    "outBytes",
  ] as const;
  for (const f of fields) {
    new Gauge({
      name: `ref_${f}`,
      help: f,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const s of o.engine.table.list()) {
          for (const d of s.dests) {
            this.set(
              {
                local_address: u32ToIp(s.addr),
                local_mark: "",
                local_port: String(s.port),
                proto: "TCP",
                remote_address: u32ToIp(d.addr),
                remote_port: String(d.port),
              },
              d[f],
            );
          }
        }
      },
    });
  }
  return registry;
}

/**
 * GET /metrics on a new connection, as Prometheus scrapes (the body counted, not decoded: the
 * client shares the thread with the server and should cost it little). Resolves to the size.
 */
function scrape(port: number, path = "/metrics"): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      let n = 0;
      res.on("data", (b: Buffer) => {
        n += b.length;
      });
      res.on("end", () => resolve(n));
      res.on("error", reject);
    }).on("error", reject);
  });
}

function ms(task: { result: unknown } | undefined): { mean: number; p99: number; samples: number } {
  const r = task?.result as { latency?: { mean: number; p99: number; samplesCount: number } } | undefined;
  if (!r?.latency) return { mean: 0, p99: 0, samples: 0 };
  return { mean: r.latency.mean, p99: r.latency.p99, samples: r.latency.samplesCount };
}

export async function runMetricsBench(timeMs = 1500): Promise<MetricsBenchResult[]> {
  const o = bigDirector();
  const registry = metricsRegistry(o);
  const text = await registry.metrics();
  const weights = text.split("\n").filter((l) => l.startsWith("node_ipvs_backend_weight{")).length;
  if (weights !== SERVICES * DESTS_PER_SERVICE) throw new Error(`scrape has ${weights} backend series`);
  const series = text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length;
  const exposition = new Exposition(registry);
  const here = new Exposition(registry, { worker: false });
  if (!exposition.offThread) throw new Error("the render worker is not available (npm run build)");
  const http = await startHttpServer(
    "127.0.0.1",
    0,
    {
      "/metrics": (req, res) => sendExposition(exposition, req, res),
      // the route as it was: the text rendered at once, then sent as one buffer
      "/metrics-at-once": async (req, res) => {
        reply(req, res, registry.contentType, Buffer.from(await registry.metrics()));
      },
    },
    () => {},
  );
  const port = http.port;
  const stock = stockRegistry(o);
  const size = `${SERVICES} services x ${DESTS_PER_SERVICE} dests, 1M connections`;

  const bench = new Bench({ time: timeMs, warmupTime: Math.min(500, timeMs) });
  // the main thread's share of each scrape: the slices' total (collect only, with the worker)
  const busy = { worker: [] as number[], here: [] as number[] };
  bench.add(`metrics scrape render, values sliced, text in the worker (${size})`, async () => {
    const r = await exposition.acquire();
    busy.worker.push(r.busyMs);
    exposition.release(r);
  });
  bench.add(`metrics scrape render, sliced on the main thread (${size})`, async () => {
    const r = await here.acquire();
    busy.here.push(r.busyMs);
    here.release(r);
  });
  bench.add(`metrics scrape render, at once (${size})`, async () => {
    await registry.metrics();
  });
  bench.add(`metrics scrape over HTTP (${size})`, async () => {
    if ((await scrape(port)) < text.length) throw new Error("short scrape");
  });
  bench.add(`metrics scrape over HTTP, rendered at once (${size})`, async () => {
    if ((await scrape(port, "/metrics-at-once")) < text.length) throw new Error("short scrape");
  });
  bench.add("(reference) prom-client Gauge.set path, 8 per-dest families", async () => {
    await stock.metrics();
  });
  await bench.run();

  // The event loop held by a scrape: 20 scrapes over HTTP one after the other, each way.
  const held = async (path: string): Promise<{ max: number; p99: number; slice: number }> => {
    const h = monitorEventLoopDelay({ resolution: 1 });
    let slice = 0;
    h.enable();
    for (let k = 0; k < 20; k++) {
      await scrape(port, path);
      if (path === "/metrics") slice = Math.max(slice, exposition.last?.maxSliceMs ?? 0);
    }
    h.disable();
    return { max: h.max / 1e6, p99: h.percentile(99) / 1e6, slice };
  };
  const sliced = await held("/metrics");
  const atOnce = await held("/metrics-at-once");
  await http.close();

  const out: MetricsBenchResult[] = [];
  const median = (v: number[]): number => [...v].sort((a, b) => a - b)[v.length >> 1] ?? 0;
  out.push(
    {
      name: "main thread held per scrape, in all (values sliced, text in the worker), median",
      unit: "ms",
      value: median(busy.worker),
      samples: busy.worker.length,
    },
    {
      name: "main thread held per scrape, in all (sliced on the main thread), median",
      unit: "ms",
      value: median(busy.here),
      samples: busy.here.length,
    },
  );
  for (const task of bench.tasks) {
    const r = ms(task);
    out.push({ name: `${task.name}, mean`, unit: "ms", value: r.mean, samples: r.samples });
    out.push({ name: `${task.name}, p99`, unit: "ms", value: r.p99, samples: r.samples });
  }
  out.push(
    { name: "event loop held during scrapes over HTTP, max", unit: "ms", value: sliced.max, samples: 20 },
    { name: "event loop held during scrapes over HTTP, p99", unit: "ms", value: sliced.p99, samples: 20 },
    { name: "longest slice of a sliced render", unit: "ms", value: sliced.slice, samples: 20 },
    {
      name: "event loop held during scrapes over HTTP, rendered at once, max",
      unit: "ms",
      value: atOnce.max,
      samples: 20,
    },
  );
  out.push({
    name: `metrics scrape size (${size})`,
    unit: "bytes",
    value: Buffer.byteLength(text),
    samples: 1,
  });
  out.push({ name: `metrics scrape series (${size})`, unit: "series", value: series, samples: 1 });
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const timeMs = Number(process.argv[2] ?? 1500);
  for (const r of await runMetricsBench(timeMs)) console.log(`${r.name}: ${r.value.toFixed(1)} ${r.unit}`);
}
