import { describe, expect, it } from "vitest";
import { type ShScheduler, shScheduler } from "../../../src/datapath/schedulers/sh.js";
import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import { Dest, FwdMethod, Service } from "../../../src/tables/model.js";
import { probeDisruption, probeFlows } from "../../../src/tools/schedbench/disruption.js";
import { dests, scenario, variant } from "./helpers.js";

/**
 * The kernel's sh table for dests in list order (ip_vs_sh_reassign): walk the list giving each
 * dest `weight` consecutive buckets (at least one), wrapping until all 256 are filled.
 */
function shTable(weights: readonly number[]): number[] {
  const t: number[] = [];
  let p = 0;
  let count = 0;
  for (let i = 0; i < 256; i++) {
    t.push(p);
    if (++count >= weights[p]!) {
      p = (p + 1) % weights.length;
      count = 0;
    }
  }
  return t;
}

/** hash_32(v, 8): the top 8 bits of v * GOLDEN_RATIO_32. */
const bucket = (v: number) => Math.imul(v, 0x61c88647) >>> 24;

describe("flows moved by pool changes", () => {
  // Eight dests with mixed weights; list order in the service is the reverse of the file order
  // (ipvsadm -a inserts at the head), so s1 is last in the list.
  const weights = [1, 2, 1, 3, 1, 1, 2, 1];
  const lines = [
    "duration 10s",
    "rate 100",
    "clients all 10.1.0.0/16 count 60000",
    ...weights.map((w, i) => `dest s${i + 1} 192.168.10.${i + 1}:80 weight ${w}`),
  ];
  const scn = scenario(...lines);
  const flows = probeFlows(scn, 20_000);

  it("sh: removing 1 of N moves exactly the flows on it plus those the table rebuild moves", () => {
    const names = weights.map((_, i) => `s${i + 1}`);
    const listBefore = [...names].reverse();
    const listAfter = listBefore.filter((n) => n !== "s1");
    const wOf = (n: string) => weights[Number(n.slice(1)) - 1]!;
    const before = shTable(listBefore.map(wOf)).map((i) => listBefore[i]!);
    const after = shTable(listAfter.map(wOf)).map((i) => listAfter[i]!);
    // Cross-check the hand-built table against the scheduler's own.
    const svc = new Service(IPPROTO_TCP, 0x0a000064, 80, "sh");
    svc.dests = listBefore.map(
      (nm) => new Dest(0xc0a80a00 + Number(nm.slice(1)), 80, wOf(nm), FwdMethod.MASQ),
    );
    const sched = shScheduler.create(svc) as ShScheduler;
    expect(Array.from(sched.buckets, (i) => listBefore[i])).toEqual(before);
    let moved = 0;
    let onRemoved = 0;
    let collateral = 0;
    const n = flows.saddr.length;
    for (let k = 0; k < n; k++) {
      const b = bucket(flows.saddr[k]!);
      const was = before[b]!;
      const now = after[b]!;
      if (was === "s1") onRemoved++;
      if (was !== now) {
        moved++;
        if (was !== "s1") collateral++;
      }
    }
    const r = probeDisruption(scn, variant("sh"), flows);
    const rm = r.changes.find((c) => c.change === "remove")!;
    expect(rm.target).toBe("s1");
    expect(rm.flows).toBe(n);
    expect(rm.moved).toBe(moved / n);
    expect(rm.necessary).toBe(onRemoved / n);
    expect(rm.collateral).toBe(collateral / n);
    expect(rm.dropped).toBe(0);
    // The rebuild shifts most buckets: far more collateral than necessary movement.
    expect(rm.collateral!).toBeGreaterThan(rm.necessary!);
    // With persistence every client keeps its template unless its dest went away.
    expect(rm.persistMoved).toBe(onRemoved / n);
  });

  it("sh: weight 0 keeps the table (a weight-0 dest still holds one bucket per round)", () => {
    // All weights 1: a weight-0 dest takes one bucket, like weight 1, so nothing else moves.
    const s1 = scenario("duration 10s", "rate 100", "clients all 10.1.0.0/16 count 60000", ...dests(5));
    const w0 = probeDisruption(s1, variant("sh")).changes.find((c) => c.change === "weight0")!;
    expect(w0.collateral).toBe(0);
    expect(w0.dropped).toBe(w0.necessary); // no sh-fallback: its flows get no dest
    const fb = probeDisruption(s1, variant("sh+sh-fallback")).changes.find((c) => c.change === "weight0")!;
    expect(fb.dropped).toBe(0);
    expect(fb.moved).toBe(w0.moved);
  });

  it("mh: removing or adding 1 of 10 moves about 1/10, with collateral under a few percent", () => {
    const s10 = scenario("duration 10s", "rate 100", "clients all 10.0.0.0/8 count 1000000", ...dests(10));
    const r = probeDisruption(s10, variant("mh"));
    const rm = r.changes.find((c) => c.change === "remove")!;
    expect(rm.necessary!).toBeGreaterThan(0.07);
    expect(rm.necessary!).toBeLessThan(0.13);
    expect(rm.collateral!).toBeLessThan(0.03);
    expect(rm.moved).toBeCloseTo(rm.necessary! + rm.collateral!, 12);
    const add = r.changes.find((c) => c.change === "add")!;
    expect(add.necessary!).toBeGreaterThan(0.06);
    expect(add.necessary!).toBeLessThan(0.12);
    expect(add.collateral!).toBeLessThan(0.03);
    // Weight 0 does not rebuild mh's table (it uses the last non-zero weight): no collateral.
    const w0 = r.changes.find((c) => c.change === "weight0")!;
    expect(w0.collateral).toBe(0);
    expect(w0.moved).toBe(w0.necessary);
  });

  it("persistence: adding a dest or quiescing one moves no client; expire-quiescent does", () => {
    const p = scenario(...lines, "persistence 300s");
    for (const s of ["rr", "wlc", "sh"]) {
      const r = probeDisruption(p, variant(s), flows);
      expect(r.changes.find((c) => c.change === "add")!.persistMoved).toBe(0);
      expect(r.changes.find((c) => c.change === "weight0")!.persistMoved).toBe(0);
    }
    const q = scenario(...lines, "persistence 300s expire-quiescent");
    const w0 = probeDisruption(q, variant("sh"), flows).changes.find((c) => c.change === "weight0")!;
    expect(w0.persistMoved).toBe(w0.necessary);
  });

  it("schedulers that are not key-based report no key figures", () => {
    const r = probeDisruption(scn, variant("rr"), flows);
    expect(r.keyBased).toBe(false);
    for (const c of r.changes) {
      expect(c.moved).toBeNull();
      expect(c.collateral).toBeNull();
      expect(c.persistMoved).toBeGreaterThanOrEqual(0);
    }
  });

  it("lblc keeps destinations on their cache server when a server is added", () => {
    const t = scenario(
      "duration 10s",
      "rate 100",
      "clients all 10.1.0.0/16 count 1000",
      "targets 198.18.0.0/16 count 5000",
      ...dests(4),
    );
    const r = probeDisruption(t, variant("lblc"));
    const add = r.changes.find((c) => c.change === "add")!;
    expect(add.moved!).toBeLessThan(0.01);
    const rm = r.changes.find((c) => c.change === "remove")!;
    expect(rm.collateral).toBe(0);
    expect(rm.moved).toBe(rm.necessary);
  });
});
