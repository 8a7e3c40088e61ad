/**
 * Data-path workers in process (issue 13 §4; docs/workers.md): N worker threads, each an Engine
 * with its own connection table, fed from memory links (ReplayLink) with pre-built frames of its
 * own flows, as a fanout group would split them; packets/s of 1 and of 2 workers in the same
 * run, and their ratio.
 *
 * Traffic: UDP NAT, established both ways (the sh scheduler, so every worker picks the same real
 * server for a client and the replies can be built in advance): each flow's first datagram opens
 * its connection during the warm-up (not timed), then requests and replies alternate. Frames are
 * 64-byte-payload datagrams. The timed loop restores each batch of pristine frames with one copy
 * (the replay link) and runs the director on it: receive, engine, per-link send accounting.
 *
 * This measures the data path's scaling only: no sockets, no kernel. On this 2-vCPU machine an
 * end-to-end run cannot show it honestly (the generator, the forwarder and the receiver share the
 * two CPUs). The machine is shared: the load average before and after each setup is reported.
 *
 * Usage: node dist/bench/workers.bench.js [--ms 2000] [--repeat 3] [--flows 4096] [--workers 1,2]
 */
import { loadavg } from "node:os";
import { WorkerPool } from "../src/control/workers.js";
import { FrameBatch } from "../src/datapath/io/batch.js";
import type { BenchResult } from "./datapath.bench.js";
import {
  type Flow,
  flows,
  masterEngine,
  replayLinks,
  reply,
  request,
  steerRequest,
  wire,
  workerNet,
} from "./workers-traffic.js";

const PAYLOAD = 64;

/** Requests of every flow through one engine, to learn each flow's real server; then its reply. */
function replies(fl: Flow[]): Map<number, Uint8Array> {
  const e = wire(masterEngine("sh", fl.length * 2));
  const out = new Map<number, Uint8Array>();
  const b = new FrameBatch(256);
  for (let i = 0; i < fl.length; i += 256) {
    b.reset();
    for (const f of fl.slice(i, i + 256)) b.push(request(f, 0, PAYLOAD), 0);
    e.process(b, 1);
    for (let k = 0; k < b.count; k++) {
      if (b.egress[k] !== 1) continue;
      const got = b.frame(k);
      out.set(new DataView(got.buffer).getUint32(42), reply(got, PAYLOAD));
    }
  }
  return out;
}

export interface WorkersRun {
  workers: number;
  pps: number;
  perWorker: number[];
  /** Frames per second of the workers' own CPU time (thread utime + stime, summed over workers). */
  perCpuS: number;
  /** CPU time over wall time, summed over workers (1.0 = one CPU all the run). */
  cpuShare: number;
  load: [number, number];
}

async function once(
  count: number,
  fl: Flow[],
  rep: Map<number, Uint8Array>,
  ms: number,
): Promise<WorkersRun> {
  const warm: Uint8Array[][] = Array.from({ length: count }, () => []);
  const reqs: Uint8Array[][] = Array.from({ length: count }, () => []);
  const reps: Uint8Array[][] = Array.from({ length: count }, () => []);
  for (const f of fl) {
    const w = steerRequest(f, count);
    warm[w]!.push(request(f, 0, PAYLOAD));
    reqs[w]!.push(request(f, 1, PAYLOAD));
    reps[w]!.push(rep.get(f.id)!);
  }
  const load0 = loadavg()[0]!;
  const pool = await WorkerPool.start({
    count,
    engine: masterEngine("sh"),
    // requests from the clients on out0 (the warm-up opens the connections), replies on in0
    links: (i) => replayLinks([...warm[i]!, ...reqs[i]!], reps[i]!, false, warm[i]!.length),
    net: workerNet(),
    maxConns: Math.max(1 << 12, fl.length * 2),
    mode: "run",
    runMs: ms,
  });
  const res = await pool.run();
  await pool.stop();
  const perWorker = res.map((r) => (r.frames * 1000) / r.ms);
  const bad = res.reduce((k, r) => k + r.frames - r.forwarded, 0);
  if (bad !== 0)
    throw new Error(
      `workers bench: ${bad} frames not forwarded (drops ${res.map((r) => r.drops.join(",")).join(" | ")})`,
    );
  const cpu = res.reduce((k, r) => k + r.cpuMs, 0);
  const frames = res.reduce((k, r) => k + r.frames, 0);
  return {
    workers: count,
    pps: perWorker.reduce((a, b) => a + b, 0),
    perWorker,
    perCpuS: (frames * 1000) / cpu,
    cpuShare: res.reduce((k, r) => k + r.cpuMs / r.ms, 0),
    load: [load0, loadavg()[0]!],
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function runWorkersBench(
  ms = 2000,
  repeat = 3,
  nflows = 4096,
  counts: number[] = [1, 2],
  log: (line: string) => void = () => {},
): Promise<BenchResult[]> {
  const fl = flows(nflows, "nat");
  const rep = replies(fl);
  const runs = new Map<number, WorkersRun[]>();
  for (let r = 0; r < repeat; r++) {
    // alternate the order so a change in the machine's load does not favour one setup
    const order = r % 2 === 0 ? counts : [...counts].reverse();
    for (const c of order) {
      const x = await once(c, fl, rep, ms);
      (runs.get(c) ?? runs.set(c, []).get(c)!).push(x);
      log(
        `run ${r + 1}/${repeat}: ${c} worker(s) ${(x.pps / 1e6).toFixed(3)} Mpps (per worker ${x.perWorker.map((p) => (p / 1e6).toFixed(3)).join(", ")}), ${(x.perCpuS / 1e6).toFixed(3)} M frames per CPU-second, CPU share ${x.cpuShare.toFixed(2)}, load ${x.load[0].toFixed(2)} -> ${x.load[1].toFixed(2)}`,
      );
    }
  }
  const out: BenchResult[] = [];
  for (const c of counts) {
    const xs = runs.get(c)!.map((x) => x.pps);
    out.push({
      name: `workers: ${c} worker(s), NAT UDP established both ways`,
      unit: "pps",
      value: median(xs),
      samples: xs.length,
    });
  }
  if (counts.includes(1)) {
    const base = runs.get(1)!;
    for (const c of counts) {
      if (c === 1) continue;
      // ratio per repeat (the two setups measured back to back), then the median
      const ratios = runs.get(c)!.map((x, i) => x.pps / base[i]!.pps);
      out.push({
        name: `workers: ${c} workers / 1 worker`,
        unit: "ratio",
        value: median(ratios),
        samples: ratios.length,
      });
      log(
        `${c} workers / 1: ${ratios.map((q) => q.toFixed(2)).join(", ")} (median ${median(ratios).toFixed(2)})`,
      );
      // Per CPU-second: frames per second of the workers' own CPU time, c workers over 1. Near
      // 1.0 means a worker does as much per CPU-second beside others as alone (nothing shared,
      // no locks): c workers would do c times one worker's rate given c idle CPUs. It does not
      // replace the wall-clock ratio; it says why that ratio falls short on a loaded machine.
      const eff = runs.get(c)!.map((x, i) => x.perCpuS / base[i]!.perCpuS);
      out.push({
        name: `workers: ${c} workers / 1 worker, frames per CPU-second`,
        unit: "ratio",
        value: median(eff),
        samples: eff.length,
      });
      log(
        `${c} workers / 1 per CPU-second: ${eff.map((q) => q.toFixed(2)).join(", ")} (median ${median(eff).toFixed(2)})`,
      );
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
  };
  const ms = Number(opt("--ms", "2000"));
  const repeat = Number(opt("--repeat", "3"));
  const nflows = Number(opt("--flows", "4096"));
  const counts = opt("--workers", "1,2").split(",").map(Number);
  console.log(
    `workers bench: ${nflows} flows, ${ms} ms per run, ${repeat} repeats; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}`,
  );
  const res = await runWorkersBench(ms, repeat, nflows, counts, (l) => console.log(l));
  for (const r of res)
    console.log(
      `${r.name}: ${r.unit === "ratio" ? r.value.toFixed(2) : `${(r.value / 1e6).toFixed(3)} M`} ${r.unit}`,
    );
}

if (process.argv[1]?.endsWith("workers.bench.js")) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
