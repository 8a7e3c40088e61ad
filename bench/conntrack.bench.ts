/**
 * Conntrack lookup at 1M entries against the layout it had before issue 13 §6, in one process
 * (`npm run bench -- --only conntrack`): the table (bench/datapath.bench.ts builds it the same
 * way) and bench/ctref.ts (the old lookup path: bucket, 16-byte key record, then separate
 * protocol, flags and expiry arrays) hold the same 1M TCP connections and answer the same
 * random sequence of hits. Rounds alternate which of the two runs first; each round gives a
 * ratio (table rate / reference rate, each from the median iteration time), reported as the
 * median over the rounds with the lowest and highest. Where the native addon and THP are there, a
 * third task looks up in a second table whose arrays were advised for huge pages first, as lvsd
 * does at start (the reference and the first table stay on 4 KiB pages: the layout's ratio is
 * the first, the deployed table's the second).
 */

import { Bench } from "tinybench";
import { clock } from "../src/datapath/clock.js";
import { adviseHugePages } from "../src/datapath/io/native.js";
import { ipToU32 } from "../src/lib/addr.js";
import { IPPROTO_TCP } from "../src/lib/proto.js";
import { RefConnLookup } from "./ctref.js";
import { type BenchResult, setup } from "./datapath.bench.js";

const VIP = "10.0.0.100";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Lookups per second from a task's median time per iteration: the machine is shared, and the
 * median shrugs off the iterations that were descheduled (the mean does not).
 */
function rate(task: { result: unknown } | undefined, perIter: number): number {
  const r = task?.result as { latency?: { p50?: number } } | undefined;
  const p50 = r?.latency?.p50;
  return p50 ? (perIter * 1000) / p50 : 0;
}

export async function runConntrackBench(timeMs = 1500, rounds = 11): Promise<BenchResult[]> {
  const N = 1 << 20;
  const e = setup(N);
  const d = e.table.list()[0]!.dests[0]!;
  // a second table as lvsd makes it: its arrays advised for huge pages before first use
  const eh = setup(N);
  const hugeBytes = adviseHugePages(eh.ct.buffers());
  const dh = eh.table.list()[0]!.dests[0]!;
  const vip = ipToU32(VIP);
  clock.nowMs = 1;
  const ref = new RefConnLookup(N);
  ref.nowMs = 1;
  const keysA = new Uint32Array(N);
  const keysP = new Uint16Array(N);
  for (let i = 0; i < N; i++) {
    const a = (0x0b000000 + (i >>> 4)) >>> 0;
    const p = 1024 + (i & 15);
    keysA[i] = a;
    keysP[i] = p;
    e.ct.create(IPPROTO_TCP, a, p, vip, 80, d.addr, 80, a, p, 0, false, d, 0, -1);
    eh.ct.create(IPPROTO_TCP, a, p, vip, 80, dh.addr, 80, a, p, 0, false, dh, 0, -1);
    ref.insert(IPPROTO_TCP, a, p, vip, 80, 1 + 60_000);
  }
  if (e.ct.count !== N || eh.ct.count !== N) throw new Error(`table holds ${e.ct.count} of ${N}`);
  let idxT = 0;
  let idxR = 0;
  let foundT = 0;
  let foundR = 0;
  let idxH = 0;
  let foundH = 0;
  // two closures of the same shape, each calling one class (monomorphic call sites)
  const table = () => {
    const ct = e.ct;
    for (let k = 0; k < 1024; k++) {
      idxT = (idxT + 7919) & (N - 1);
      if (ct.lookupIn(IPPROTO_TCP, keysA[idxT]!, keysP[idxT]!, vip, 80) >= 0) foundT++;
    }
  };
  const reference = () => {
    const r = ref;
    for (let k = 0; k < 1024; k++) {
      idxR = (idxR + 7919) & (N - 1);
      if (r.lookupIn(IPPROTO_TCP, keysA[idxR]!, keysP[idxR]!, vip, 80) >= 0) foundR++;
    }
  };
  const huge = () => {
    const ct = eh.ct;
    for (let k = 0; k < 1024; k++) {
      idxH = (idxH + 7919) & (N - 1);
      if (ct.lookupIn(IPPROTO_TCP, keysA[idxH]!, keysP[idxH]!, vip, 80) >= 0) foundH++;
    }
  };
  const rates: number[] = [];
  const hugeRates: number[] = [];
  const hugeRatios: number[] = [];
  const refRates: number[] = [];
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const b = new Bench({ time: Math.max(100, timeMs / 4), warmupTime: 100 });
    if (r % 2 === 0) b.add("table", table).add("reference", reference);
    else b.add("reference", reference).add("table", table);
    if (hugeBytes > 0) b.add("huge", huge);
    await b.run();
    const t = rate(b.getTask("table"), 1024);
    const o = rate(b.getTask("reference"), 1024);
    rates.push(t);
    refRates.push(o);
    ratios.push(t / o);
    if (hugeBytes > 0) {
      const h = rate(b.getTask("huge"), 1024);
      hugeRates.push(h);
      hugeRatios.push(h / o);
    }
  }
  // every lookup is a hit in both (no entry expires: the clock stands still)
  if (foundT === 0 || foundR === 0 || (hugeBytes > 0 && foundH === 0))
    throw new Error("lookups found nothing");
  const out: BenchResult[] = [
    {
      name: "conntrack lookup at 1M entries (median of rounds)",
      unit: "lookups/s",
      value: median(rates),
      samples: rounds,
    },
    {
      name: "conntrack lookup at 1M entries, pre-§6 layout (bench/ctref.ts)",
      unit: "lookups/s",
      value: median(refRates),
      samples: rounds,
    },
    {
      name: "conntrack lookup ratio table / pre-§6 layout (median)",
      unit: "ratio",
      value: median(ratios),
      samples: rounds,
    },
    {
      name: "conntrack lookup ratio, lowest round",
      unit: "ratio",
      value: Math.min(...ratios),
      samples: rounds,
    },
    {
      name: "conntrack lookup ratio, highest round",
      unit: "ratio",
      value: Math.max(...ratios),
      samples: rounds,
    },
    ...(hugeBytes > 0
      ? [
          {
            name: "conntrack lookup at 1M entries, huge pages advised (as lvsd)",
            unit: "lookups/s",
            value: median(hugeRates),
            samples: rounds,
          },
          {
            name: "conntrack lookup ratio huge pages / pre-§6 layout (median)",
            unit: "ratio",
            value: median(hugeRatios),
            samples: rounds,
          },
          {
            name: "conntrack lookup ratio, huge pages, lowest round",
            unit: "ratio",
            value: Math.min(...hugeRatios),
            samples: rounds,
          },
          {
            name: "conntrack lookup ratio, huge pages, highest round",
            unit: "ratio",
            value: Math.max(...hugeRatios),
            samples: rounds,
          },
        ]
      : []),
    {
      name: "connection table arrays per slot (computed)",
      unit: "bytes",
      value: e.ct.byteSize() / N,
      samples: 1,
    },
  ];
  return out;
}
