/**
 * Workloads: the list of connection arrivals every scheduler is driven with. A workload is built
 * once per scenario and replayed unchanged for each scheduler, so differences in the results come
 * from the schedulers alone.
 *
 * Synthetic arrivals: a Poisson process whose rate is piecewise constant (the scenario's `rate`
 * and `at T rate R` events; the exponential's lack of memory lets the process restart at each
 * change). Each arrival draws a client population by share (changed by `at T share`), a client
 * address uniformly within it, a source port, a destination (the VIP, or one of the scenario's
 * `targets`), a request cost and a byte count. Every quantity has its own PRNG stream derived from
 * the seed, so changing e.g. the cost distribution leaves arrival times and clients unchanged.
 *
 * Capture replay: the arrivals of a pcap (see pcap.ts) with the scenario's cost and bytes.
 */

import { IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import type { PcapFlows, PcapStats } from "./pcap.js";
import { deriveSeed, Rng, sample } from "./rng.js";
import type { Scenario, ScenarioEvent } from "./scenario.js";

export interface Workload {
  readonly n: number;
  /** Arrival time, ms from the start. Non-decreasing. */
  readonly t: Float64Array;
  readonly saddr: Uint32Array;
  readonly sport: Uint16Array;
  readonly daddr: Uint32Array;
  readonly dport: Uint16Array;
  readonly proto: Uint8Array;
  /** Request cost in ms on a speed-1 server. */
  readonly cost: Float64Array;
  readonly bytes: Float64Array;
  /** End of the arrival period, ms (the scenario's duration, or just after the last arrival). */
  readonly endMs: number;
  readonly source: "synthetic" | "pcap";
  readonly pcapStats: PcapStats | null;
}

/** Streams of the run seed (fixed numbers: changing them changes every report). */
const STREAM_TIME = 1;
const STREAM_CLIENT = 2;
const STREAM_PORT = 3;
const STREAM_COST = 4;
const STREAM_BYTES = 5;

class Builder {
  n = 0;
  t = new Float64Array(1024);
  saddr = new Uint32Array(1024);
  sport = new Uint16Array(1024);
  daddr = new Uint32Array(1024);
  dport = new Uint16Array(1024);
  proto = new Uint8Array(1024);
  cost = new Float64Array(1024);
  bytes = new Float64Array(1024);

  push(t: number, saddr: number, sport: number, daddr: number, dport: number, proto: number): number {
    if (this.n === this.t.length) this.grow();
    const i = this.n++;
    this.t[i] = t;
    this.saddr[i] = saddr;
    this.sport[i] = sport;
    this.daddr[i] = daddr;
    this.dport[i] = dport;
    this.proto[i] = proto;
    return i;
  }

  private grow(): void {
    const size = this.t.length * 2;
    const g = <T extends Float64Array | Uint32Array | Uint16Array | Uint8Array>(
      a: T,
      make: (n: number) => T,
    ): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.t = g(this.t, (k) => new Float64Array(k));
    this.saddr = g(this.saddr, (k) => new Uint32Array(k));
    this.sport = g(this.sport, (k) => new Uint16Array(k));
    this.daddr = g(this.daddr, (k) => new Uint32Array(k));
    this.dport = g(this.dport, (k) => new Uint16Array(k));
    this.proto = g(this.proto, (k) => new Uint8Array(k));
    this.cost = g(this.cost, (k) => new Float64Array(k));
    this.bytes = g(this.bytes, (k) => new Float64Array(k));
  }

  finish(
    scn: Scenario,
    seed: number,
    endMs: number,
    source: "synthetic" | "pcap",
    pcapStats: PcapStats | null,
  ): Workload {
    const rc = new Rng(deriveSeed(seed, STREAM_COST));
    const rb = new Rng(deriveSeed(seed, STREAM_BYTES));
    const n = this.n;
    for (let i = 0; i < n; i++) {
      const c = sample(scn.cost, rc);
      this.cost[i] = c;
      this.bytes[i] =
        scn.bytes.kind === "per-ms"
          ? Math.round(c * scn.bytes.perMs)
          : Math.round(sample(scn.bytes.dist, rb));
    }
    return {
      n,
      t: this.t.subarray(0, n),
      saddr: this.saddr.subarray(0, n),
      sport: this.sport.subarray(0, n),
      daddr: this.daddr.subarray(0, n),
      dport: this.dport.subarray(0, n),
      proto: this.proto.subarray(0, n),
      cost: this.cost.subarray(0, n),
      bytes: this.bytes.subarray(0, n),
      endMs,
      source,
      pcapStats,
    };
  }
}

/**
 * Picks addresses of a set (clients of a population, or targets) with one uniform draw each:
 * uniformly, or with Zipf popularity (address k has weight 1 / (k + 1)^s, k = 0 the most
 * popular) through a CDF table and a binary search.
 */
export class AddrSampler {
  private readonly first: number;
  private readonly count: number;
  private readonly cdf: Float64Array | null;

  constructor(set: {
    readonly base: number;
    readonly prefixLen: number;
    readonly count: number;
    readonly zipf: number;
  }) {
    // Host addresses start after the network address (except in /31 and /32).
    this.first = set.prefixLen >= 31 ? set.base : (set.base + 1) >>> 0;
    this.count = set.count;
    if (set.zipf > 0) {
      const cdf = new Float64Array(set.count);
      let acc = 0;
      for (let k = 0; k < set.count; k++) {
        acc += 1 / (k + 1) ** set.zipf;
        cdf[k] = acc;
      }
      this.cdf = cdf;
    } else this.cdf = null;
  }

  pick(r: Rng): number {
    const cdf = this.cdf;
    if (cdf === null) return (this.first + r.int(this.count)) >>> 0;
    const u = r.float() * cdf[cdf.length - 1]!;
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return (this.first + lo) >>> 0;
  }
}

/** Index of the population a uniform draw `u` in [0, total) falls in (zero shares never chosen). */
export function pickPopulation(shares: readonly number[], u: number): number {
  let p = 0;
  while (p < shares.length - 1 && (u >= shares[p]! || shares[p] === 0)) {
    u -= shares[p]!;
    p++;
  }
  return p;
}

/** Generate the synthetic arrivals of a scenario (it must not name a capture). */
export function syntheticWorkload(scn: Scenario, seed = scn.seed): Workload {
  const rt = new Rng(deriveSeed(seed, STREAM_TIME));
  const rcl = new Rng(deriveSeed(seed, STREAM_CLIENT));
  const rp = new Rng(deriveSeed(seed, STREAM_PORT));
  const b = new Builder();
  const proto = scn.proto === "udp" ? IPPROTO_UDP : IPPROTO_TCP;
  const pops = scn.clients;
  const shares = pops.map((c) => c.share);
  const popIndex = new Map(pops.map((c, i) => [c.name, i]));
  const tgt = scn.targets ? new AddrSampler(scn.targets) : null;
  const samplers = pops.map((c) => new AddrSampler(c));
  const changes: ScenarioEvent[] = scn.events.filter((e) => e.kind === "rate" || e.kind === "share");
  let ev = 0;
  let rate = scn.rate;
  let total = shares.reduce((a, s) => a + s, 0);
  const end = scn.durationMs > 0 ? scn.durationMs : Number.POSITIVE_INFINITY;
  const cap = scn.maxConns > 0 ? scn.maxConns : Number.POSITIVE_INFINITY;
  let t = 0;
  while (b.n < cap) {
    const nextChange = ev < changes.length ? changes[ev]!.at : Number.POSITIVE_INFINITY;
    const cand = rate > 0 ? t + rt.exp(1000 / rate) : Number.POSITIVE_INFINITY;
    if (cand >= nextChange) {
      // The process is memoryless: restart it at the change with the new parameters.
      t = nextChange;
      while (ev < changes.length && changes[ev]!.at === nextChange) {
        const e = changes[ev++]!;
        if (e.kind === "rate") rate = e.rate;
        else if (e.kind === "share") shares[popIndex.get(e.pop)!] = e.share;
      }
      total = shares.reduce((a, s) => a + s, 0);
      continue;
    }
    if (cand >= end || cand === Number.POSITIVE_INFINITY) break;
    t = cand;
    // Population by share, then a client within it: always two draws.
    const p = pickPopulation(shares, rcl.float() * total);
    const saddr = samplers[p]!.pick(rcl);
    const sport = 1024 + rp.int(65536 - 1024);
    const daddr = tgt ? tgt.pick(rp) : scn.vipAddr;
    b.push(t, saddr, sport, daddr, scn.vipPort, proto);
  }
  const endMs = scn.durationMs > 0 ? scn.durationMs : b.n > 0 ? b.t[b.n - 1]! + 1 : 0;
  return b.finish(scn, seed, endMs, "synthetic", null);
}

/** The arrivals of a capture, with the scenario's request cost and bytes. */
export function pcapWorkload(scn: Scenario, flows: PcapFlows, seed = scn.seed): Workload {
  const b = new Builder();
  const cap = scn.maxConns > 0 ? scn.maxConns : Number.POSITIVE_INFINITY;
  for (const a of flows.arrivals) {
    if (b.n >= cap) break;
    b.push(a.tMs, a.saddr, a.sport, a.daddr, a.dport, a.proto);
  }
  const endMs = b.n > 0 ? b.t[b.n - 1]! + 1 : 0;
  return b.finish(scn, seed, endMs, "pcap", flows.stats);
}

/**
 * The scenario with its timeline scaled by `f` (duration, warmup, event times, detection delays):
 * `--quick` runs a shorter version of the same story. Properties of the system — request cost,
 * linger, persistence timeout, estimator interval — are not scaled.
 */
export function scaleScenario(scn: Scenario, f: number): Scenario {
  if (f === 1) return scn;
  const s = (ms: number): number => ms * f;
  const events = scn.events.map((e): ScenarioEvent => {
    switch (e.kind) {
      case "fail":
        return { ...e, at: s(e.at), detectMs: s(e.detectMs) };
      case "recover":
        return { ...e, at: s(e.at), detectMs: s(e.detectMs) };
      default:
        return { ...e, at: s(e.at) };
    }
  });
  return {
    ...scn,
    durationMs: s(scn.durationMs),
    warmupMs: s(scn.warmupMs),
    events,
  };
}
