/**
 * Decision cost: nanoseconds per select() at several pool sizes, measured with a tight loop over
 * precomputed flows (no allocation, no conntrack, nothing but the scheduler), reported as the
 * median of several timed runs so that interference from other processes on a shared machine
 * mostly drops out. Dests carry mixed weights and load so least-connection scans do real work.
 *
 * The loop reaches select() through one call site for every scheduler (as the engine does), so a
 * decision includes a megamorphic call (~10 ns). Numbers from different machines, or from a
 * machine under load, are not comparable; compare schedulers within one report.
 */

import { clock } from "../../datapath/clock.js";
import { IPPROTO_TCP } from "../../lib/proto.js";
import { Dest, type FlowInfo, FwdMethod, Service } from "../../tables/model.js";
import { median } from "./stats.js";
import type { SchedVariant } from "./variants.js";

export const DEFAULT_COST_SIZES: readonly number[] = [2, 16, 256, 1024];

export interface CostOptions {
  readonly sizes?: readonly number[];
  /** Timed runs per (scheduler, size); the median is reported. */
  readonly runs?: number;
  /** Target duration of one timed run, ms. */
  readonly runMs?: number;
  readonly onStep?: (label: string) => void;
}

export interface CostResult {
  readonly scheduler: string;
  /** Pool size → median ns per decision. */
  readonly ns: Readonly<Record<string, number>>;
  /** Pool size → every run's ns per decision. */
  readonly runs: Readonly<Record<string, readonly number[]>>;
}

const FLOWS = 4096;

function makeFlows(): FlowInfo[] {
  const out: FlowInfo[] = [];
  for (let i = 0; i < FLOWS; i++) {
    out.push({
      saddr: (0xc6336400 + Math.imul(i, 7919)) >>> 0,
      daddr: (0x0a000000 + (i % 2048)) >>> 0,
      sport: 1024 + ((i * 31) % 60000),
      dport: 80,
      proto: IPPROTO_TCP,
    });
  }
  return out;
}

function makeService(v: SchedVariant, n: number, flags: number): Service {
  const svc = new Service(IPPROTO_TCP, 0x0a000064, 80, v.module.name);
  svc.flags = flags;
  for (let i = 0; i < n; i++) {
    const d = new Dest((0xac100000 + i + 1) >>> 0, 80, 1 + (i % 4), FwdMethod.MASQ);
    d.activeConns = (i * 7) % 13;
    d.inactConns = (i * 11) % 17;
    d.rateBps = ((i * 7919) % 1000) * 1000;
    d.respTimeUs = 100 + ((i * 31) % 900);
    d.svc = svc;
    svc.dests.push(d);
  }
  const sched = v.module.create(svc);
  svc.sched = sched;
  sched.onDestsChanged?.(svc.dests);
  return svc;
}

let sink = 0;

/** `count` decisions; returns elapsed ns. One call site for all schedulers, like the engine's. */
function loop(svc: Service, flows: readonly FlowInfo[], count: number): number {
  const sched = svc.sched!;
  let k = 0;
  let acc = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const d = sched.select(svc, flows[k]!);
    k = (k + 1) & (FLOWS - 1);
    if (d !== undefined) acc += d.port;
  }
  const ns = Number(process.hrtime.bigint() - t0);
  sink += acc;
  return ns;
}

/** Measure every variant at every size. `flagBits(v)` gives the service flags for a variant. */
export function measureCost(
  variants: readonly SchedVariant[],
  flagBits: (v: SchedVariant) => number,
  opts: CostOptions = {},
): CostResult[] {
  const sizes = opts.sizes ?? DEFAULT_COST_SIZES;
  const runs = Math.max(1, opts.runs ?? 7);
  const runMs = opts.runMs ?? 8;
  const flows = makeFlows();
  const saved = clock.nowMs;
  clock.nowMs = 1_000_000;
  try {
    const out: CostResult[] = [];
    for (const v of variants) {
      const ns: Record<string, number> = {};
      const all: Record<string, number[]> = {};
      for (const n of sizes) {
        opts.onStep?.(`${v.label} @${n}`);
        const svc = makeService(v, n, flagBits(v));
        // Warm up (lets the JIT optimise) and calibrate the count for one run.
        let count = 256;
        let el = loop(svc, flows, count);
        while (el < runMs * 1e6 * 0.25 && count < 1 << 26) {
          count *= 2;
          el = loop(svc, flows, count);
        }
        count = Math.max(256, Math.round((count * runMs * 1e6) / Math.max(el, 1)));
        const per: number[] = [];
        for (let r = 0; r < runs; r++) per.push(loop(svc, flows, count) / count);
        ns[String(n)] = median(per);
        all[String(n)] = per;
      }
      out.push({ scheduler: v.label, ns, runs: all });
    }
    if (sink === -1) console.log(sink); // keep the work observable
    return out;
  } finally {
    clock.nowMs = saved;
  }
}
