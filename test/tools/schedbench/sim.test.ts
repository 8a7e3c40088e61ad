import { describe, expect, it } from "vitest";
import { getScheduler } from "../../../src/datapath/schedulers/index.js";
import {
  DEST_F_OVERLOAD,
  type Dest,
  type FlowInfo,
  type SchedulerModule,
  type Service,
} from "../../../src/tables/model.js";
import { type RunResult, simulate } from "../../../src/tools/schedbench/sim.js";
import { syntheticWorkload } from "../../../src/tools/schedbench/workload.js";
import { dests, moduleVariant, scenario, variant } from "./helpers.js";

function run(sched: string, lines: string[]): RunResult {
  const scn = scenario(...lines);
  return simulate(scn, syntheticWorkload(scn), variant(sched));
}

const conns = (r: RunResult) => r.servers.map((s) => s.conns);

function factorial(n: number): number {
  return n <= 1 ? 1 : n * factorial(n - 1);
}

describe("load balance on workloads with a known answer", () => {
  const equal = (n: number, extra: string[] = []) => [
    "connections 1000",
    "rate 400",
    "cost exp 10ms",
    "clients all 10.1.0.0/16 count 5000",
    ...dests(n),
    ...extra,
  ];

  it("rr on equal servers gives exactly equal shares when the count divides", () => {
    const r = run("rr", equal(4));
    expect(r.arrivals).toBe(1000);
    expect(conns(r)).toEqual([250, 250, 250, 250]);
    expect(r.servers.map((s) => s.connShare)).toEqual([0.25, 0.25, 0.25, 0.25]);
    expect(r.imbalance.conns).toBeCloseTo(1, 9);
    expect(r.errors.total).toBe(0);
    expect(r.completed).toBe(1000);
    // Round robin alternates: a client's next connection lands on the same server only by chance.
    expect(r.affinity!).toBeLessThan(0.5);
  });

  it("wrr with weights 3:1 gives 75/25", () => {
    const r = run("wrr", [
      "connections 1000",
      "rate 400",
      "clients all 10.1.0.0/16 count 5000",
      "dest a 192.168.10.1 weight 3",
      "dest b 192.168.10.2 weight 1",
    ]);
    expect(conns(r)).toEqual([750, 250]);
    expect(r.servers.map((s) => s.connShare)).toEqual([0.75, 0.25]);
  });

  it("lc on equal servers with equal request cost balances within 1%", () => {
    const r = run("lc", [
      "duration 20s",
      "rate 1000",
      "cost const 20ms",
      "linger 2s",
      "clients all 10.1.0.0/16 count 5000",
      ...dests(4),
    ]);
    for (const s of r.servers) expect(Math.abs(s.connShare - 0.25)).toBeLessThan(0.01);
    expect(r.imbalance.util).toBeLessThan(1.02);
    // Constant cost, no queueing at 62% load: every latency is the cost.
    expect(r.latencyMs!.p50).toBeCloseTo(20, 9);
    expect(r.latencyMs!.p99).toBeCloseTo(20, 9);
  });

  it("wlc follows weights where capacity follows weights; utilization is even", () => {
    const r = run("wlc", [
      "duration 20s",
      "warmup 2s",
      "rate 1200",
      "cost exp 10ms",
      "clients all 10.1.0.0/16 count 5000",
      "dest slow 192.168.10.1 weight 1 slots 4 speed 1",
      "dest fast 192.168.10.2 weight 3 slots 4 speed 3",
    ]);
    expect(r.servers[1]!.connShare).toBeGreaterThan(0.65);
    expect(r.imbalance.util).toBeLessThan(1.15);
  });

  it("sh keeps every client on one server (affinity 1) and mh too", () => {
    for (const s of ["sh", "mh"]) {
      const r = run(s, equal(4));
      expect(r.affinity).toBe(1);
    }
  });

  it("one server is an M/M/c queue: mean latency and P(wait) match Erlang C", () => {
    // c = 8 slots, service 20 ms (mu = 50/s per slot), lambda = 300/s: offered load a = 6, rho = 0.75.
    const c = 8;
    const a = 6;
    let sum = 0;
    for (let k = 0; k < c; k++) sum += a ** k / factorial(k);
    const tail = ((a ** c / factorial(c)) * c) / (c - a);
    const erlangC = tail / (sum + tail); // P(wait) = 0.357
    const wq = erlangC / (c * 50 - 300); // mean wait, s = 3.57 ms
    const r = run("rr", [
      "duration 600s",
      "warmup 10s",
      "rate 300",
      "cost exp 20ms",
      "clients all 10.1.0.0/16 count 5000",
      "dest a 192.168.10.1 slots 8 backlog 100000",
    ]);
    expect(r.latencyMs!.mean).toBeGreaterThan((20 + wq * 1000) * 0.97);
    expect(r.latencyMs!.mean).toBeLessThan((20 + wq * 1000) * 1.03);
    expect(r.servers[0]!.util).toBeGreaterThan(0.74);
    expect(r.servers[0]!.util).toBeLessThan(0.76);
    // Median of (wait + exp service): without waiting, the exponential's median 20 ln 2 = 13.9 ms.
    expect(r.latencyMs!.p50).toBeGreaterThan(13.9);
  });

  it("busy time, utilization and latency add up with constant cost and no queueing", () => {
    // One server, 4 slots, 10 ms per request, 100 requests/s: utilization 1000 ms/s / 4 = 25%.
    const r = run("rr", [
      "duration 50s",
      "rate 100",
      "cost const 10ms",
      "clients all 10.1.0.0/16 count 100",
      "dest a 192.168.10.1 slots 4",
    ]);
    const s = r.servers[0]!;
    expect(s.busyMs / 1000).toBeCloseTo((r.arrivals * 10) / 1000, 0);
    expect(s.util).toBeGreaterThan(0.23);
    expect(s.util).toBeLessThan(0.27);
    expect(s.busyShare).toBe(1);
    expect(r.latencyMs!.max).toBeGreaterThanOrEqual(10);
  });
});

/** A scheduler that picks like wlc and records what it sees of the dests. */
function spyModule(seen: (svc: Service, flow: FlowInfo) => void, inner = "wlc"): SchedulerModule {
  const base = getScheduler(inner)!;
  return {
    name: inner,
    create(svc) {
      const s = base.create(svc);
      return {
        onDestsChanged: (d: readonly Dest[]) => s.onDestsChanged?.(d),
        select(sv: Service, f: FlowInfo) {
          seen(sv, f);
          return s.select(sv, f);
        },
      };
    },
  };
}

describe("the Dest fields schedulers read are kept as the engine keeps them", () => {
  it("active = in service or waiting, inactive = lingering (Little's law)", () => {
    // 200/s, 10 ms each, no queueing (64 slots): mean active 2; linger 100 ms: mean inactive 20.
    let n = 0;
    let active = 0;
    let inactive = 0;
    const mod = spyModule((svc) => {
      for (const d of svc.dests) {
        active += d.activeConns;
        inactive += d.inactConns;
      }
      n++;
    });
    const scn = scenario(
      "duration 60s",
      "rate 200",
      "cost const 10ms",
      "linger 100ms",
      "clients all 10.1.0.0/16 count 5000",
      ...dests(2, "slots 32"),
    );
    simulate(scn, syntheticWorkload(scn), moduleVariant(mod));
    expect(active / n).toBeGreaterThan(1.8);
    expect(active / n).toBeLessThan(2.2);
    expect(inactive / n).toBeGreaterThan(18);
    expect(inactive / n).toBeLessThan(22);
  });

  it("UDP connections are never active", () => {
    let maxActive = 0;
    let sawInactive = false;
    const mod = spyModule((svc) => {
      for (const d of svc.dests) {
        maxActive = Math.max(maxActive, d.activeConns);
        if (d.inactConns > 0) sawInactive = true;
      }
    });
    const scn = scenario(
      "proto udp",
      "duration 5s",
      "rate 200",
      "clients all 10.1.0.0/16 count 500",
      ...dests(2),
    );
    simulate(scn, syntheticWorkload(scn), moduleVariant(mod));
    expect(maxActive).toBe(0);
    expect(sawInactive).toBe(true);
  });

  it("the upper threshold marks a dest overloaded; schedulers then skip it", () => {
    let maxTotal = 0;
    let sawOverload = false;
    const mod = spyModule((svc) => {
      for (const d of svc.dests) {
        maxTotal = Math.max(maxTotal, d.activeConns + d.inactConns);
        if ((d.flags & DEST_F_OVERLOAD) !== 0) sawOverload = true;
      }
    });
    const scn = scenario(
      "duration 10s",
      "rate 500",
      "linger 1s",
      "clients all 10.1.0.0/16 count 500",
      ...dests(2, "uthreshold 50 lthreshold 40"),
    );
    const r = simulate(scn, syntheticWorkload(scn), moduleVariant(mod));
    expect(sawOverload).toBe(true);
    expect(maxTotal).toBeLessThanOrEqual(50);
    expect(r.errors.noDest).toBeGreaterThan(0);
  });

  it("rateBps (lt, wlt) and respTimeUs (wrt) come from the simulation", () => {
    let maxRate = 0;
    let maxResp = 0;
    const mod = spyModule((svc) => {
      for (const d of svc.dests) {
        maxRate = Math.max(maxRate, d.rateBps);
        maxResp = Math.max(maxResp, d.respTimeUs);
      }
    });
    const scn = scenario(
      "duration 30s",
      "rate 200",
      "cost const 10ms",
      "bytes per-ms 1000", // 10 kB per request
      "clients all 10.1.0.0/16 count 500",
      ...dests(1),
    );
    simulate(scn, syntheticWorkload(scn), moduleVariant(mod));
    // 200 requests/s × 10 kB = 2 MB/s; the estimator's EWMA (gain 1/4 per 2 s) gets there in ~20 s.
    expect(maxRate).toBeGreaterThan(1.5e6);
    expect(maxRate).toBeLessThanOrEqual(2.3e6);
    expect(maxResp).toBeGreaterThanOrEqual(10_000);
    expect(maxResp).toBeLessThan(12_000);
  });
});

describe("failures, persistence, caches", () => {
  const base = [
    "duration 30s",
    "rate 400",
    "cost exp 10ms",
    "clients all 10.1.0.0/16 count 2000",
    ...dests(4),
  ];

  it("a failed server black-holes connections until the health check removes it", () => {
    const slow = run("rr", [...base, "at 10s fail s2 detect 2s", "at 20s recover s2 detect 1s"]);
    // rr sends a quarter of 2 s × 400/s to the dead server.
    expect(slow.errors.deadDest).toBeGreaterThan(150);
    expect(slow.errors.deadDest).toBeLessThan(250);
    const s2 = slow.servers[1]!;
    expect(s2.errors).toBe(slow.errors.deadDest + slow.errors.aborted);
    // Out of service from 12 s to 21 s of 30 s.
    expect(s2.inServiceMs).toBeCloseTo(21_000, -2);
    const instant = run("rr", [...base, "at 10s fail s2", "at 20s recover s2"]);
    expect(instant.errors.deadDest).toBe(0);
    expect(instant.servers[1]!.conns).toBeLessThan(instant.servers[0]!.conns);
  });

  it("inhibit sets weight 0 instead of removing; sh without fallback then drops that server's clients", () => {
    const r = run("sh", [...base, "at 10s fail s2 inhibit", "at 20s recover s2"]);
    expect(r.errors.noDest).toBeGreaterThan(0);
    const withFallback = run("sh", [
      ...base,
      "schedflags sh-fallback",
      "at 10s fail s2 inhibit",
      "at 20s recover s2",
    ]);
    expect(withFallback.errors.noDest).toBe(0);
  });

  it("persistence keeps each client on its server: rr becomes sticky", () => {
    const plain = run("rr", base);
    const sticky = run("rr", [...base, "persistence 300s"]);
    expect(plain.affinity!).toBeLessThan(0.4);
    expect(sticky.affinity).toBe(1);
    // A /16 mask puts every client on one template, hence one server.
    const masked = run("rr", [...base, "persistence 300s mask /16"]);
    expect(masked.servers.filter((s) => s.conns > 0)).toHaveLength(1);
  });

  it("templates of a removed dest are dropped and their clients rescheduled", () => {
    const r = run("rr", [...base, "persistence 300s", "at 10s remove s1"]);
    expect(r.errors.total).toBe(0);
    expect(r.servers[0]!.inServiceMs).toBeCloseTo(10_000, -2);
    // Clients of s1 moved once: affinity just below 1.
    expect(r.affinity!).toBeLessThan(1);
    expect(r.affinity!).toBeGreaterThan(0.9);
  });

  it("the cache model rewards locality: dh gets more hits than rr", () => {
    const lines = [
      "duration 20s",
      "warmup 5s",
      "rate 500",
      "cost exp 5ms",
      "cache 500 miss 4",
      "clients all 10.1.0.0/16 count 5000",
      "targets 198.18.0.0/16 count 4000 zipf 0.8",
      ...dests(4),
    ];
    const rr = run("rr", lines);
    const dh = run("dh", lines);
    expect(dh.cacheHitRatio!).toBeGreaterThan(rr.cacheHitRatio! + 0.1);
    expect(dh.latencyMs!.mean).toBeLessThan(rr.latencyMs!.mean);
    expect(run("rr", base).cacheHitRatio).toBeNull();
  });

  it("an overloaded pool refuses connections beyond the backlog and reports unfinished ones", () => {
    const r = run("rr", [
      "duration 5s",
      "drain 1s",
      "rate 1000",
      "cost const 10ms",
      "clients all 10.1.0.0/16 count 500",
      "dest a 192.168.10.1 slots 1 backlog 100",
    ]);
    // Capacity 100/s against 1000/s: almost everything is refused.
    expect(r.errors.refused).toBeGreaterThan(4000);
    expect(r.latencyMs!.max).toBeLessThanOrEqual(1010 + 1e-6);
    expect(r.errors.total).toBe(r.arrivals - r.completed);
  });
});

describe("workload", () => {
  it("Poisson arrivals follow rate changes; shares switch populations", () => {
    const scn = scenario(
      "duration 20s",
      "rate 100",
      "clients a 10.1.0.0/16 count 100",
      "clients b 10.2.0.0/16 count 100 share 0",
      "at 10s rate 1000",
      "at 10s share a 0",
      "at 10s share b 1",
      ...dests(1),
    );
    const wl = syntheticWorkload(scn);
    let early = 0;
    let lateB = 0;
    for (let i = 0; i < wl.n; i++) {
      if (wl.t[i]! < 10_000) {
        early++;
        expect(wl.saddr[i]! >>> 16).toBe(0x0a01);
      } else if (wl.saddr[i]! >>> 16 === 0x0a02) lateB++;
    }
    expect(early).toBeGreaterThan(900);
    expect(early).toBeLessThan(1100);
    expect(lateB).toBe(wl.n - early);
    expect(wl.n - early).toBeGreaterThan(9500);
    expect(wl.n - early).toBeLessThan(10500);
    for (let i = 1; i < wl.n; i++) expect(wl.t[i]!).toBeGreaterThanOrEqual(wl.t[i - 1]!);
  });

  it("changing the cost distribution leaves arrival times and clients unchanged", () => {
    const a = syntheticWorkload(
      scenario("duration 5s", "rate 100", "cost exp 5ms", "clients c 10.1.0.0/16 count 50", ...dests(1)),
    );
    const b = syntheticWorkload(
      scenario("duration 5s", "rate 100", "cost const 9ms", "clients c 10.1.0.0/16 count 50", ...dests(1)),
    );
    expect(Array.from(b.t)).toEqual(Array.from(a.t));
    expect(Array.from(b.saddr)).toEqual(Array.from(a.saddr));
    expect(Array.from(b.cost).every((c) => c === 9)).toBe(true);
  });
});
