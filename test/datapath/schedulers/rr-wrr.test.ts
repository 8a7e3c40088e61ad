import { describe, expect, it } from "vitest";
import { rrScheduler } from "../../../src/datapath/schedulers/rr.js";
import { type WrrScheduler, wrrScheduler } from "../../../src/datapath/schedulers/wrr.js";
import { DEST_F_OVERLOAD } from "../../../src/tables/model.js";
import { addDest, bound, delDest, emptyService, named, picks, seq, setWeight } from "./helpers.js";

describe("rr (ip_vs_rr.c)", () => {
  it("cycles through the list in order", () => {
    const { d, names } = named({ A: {}, B: {}, C: {} });
    const { svc, sched } = bound(rrScheduler, [d.A!, d.B!, d.C!]);
    expect(seq(svc, sched, 7, names)).toBe("ABCABCA");
  });

  it("skips quiescent and overloaded dests, and fails only when none is usable", () => {
    const { d, names } = named({ A: {}, B: { weight: 0 }, C: { overload: true }, D: {} });
    const { svc, sched } = bound(rrScheduler, [d.A!, d.B!, d.C!, d.D!]);
    expect(seq(svc, sched, 4, names)).toBe("ADAD");
    d.A!.weight = 0;
    d.D!.flags |= DEST_F_OVERLOAD;
    expect(seq(svc, sched, 2, names)).toBe("--");
    // The cursor did not move on failure: D was last, so A comes next once usable again.
    d.A!.weight = 1;
    d.D!.flags &= ~DEST_F_OVERLOAD;
    expect(seq(svc, sched, 2, names)).toBe("AD");
  });

  it("continues from the last pick when a dest is added at the head", () => {
    const { d, names } = named({ A: {}, B: {}, C: {}, N: {} });
    const { svc, sched } = bound(rrScheduler, [d.A!, d.B!, d.C!]);
    expect(seq(svc, sched, 2, names)).toBe("AB");
    addDest(svc, d.N!); // list: N A B C, cursor stays on B
    expect(seq(svc, sched, 5, names)).toBe("CNABC");
  });

  it("moves the cursor to the previous entry when its dest is deleted", () => {
    const { d, names } = named({ A: {}, B: {}, C: {}, D: {} });
    const { svc, sched } = bound(rrScheduler, [d.A!, d.B!, d.C!, d.D!]);
    expect(seq(svc, sched, 2, names)).toBe("AB");
    delDest(svc, d.B!); // cursor → A, so C is next (as if B were still there)
    expect(seq(svc, sched, 3, names)).toBe("CDA");
    delDest(svc, d.A!); // cursor on the first entry → head
    expect(seq(svc, sched, 3, names)).toBe("CDC");
  });

  it("a service built with ipvsadm -a starts at the head (the newest dest)", () => {
    const { d, names } = named({ A: {}, B: {}, C: {} });
    const { svc, sched } = emptyService(rrScheduler);
    addDest(svc, d.A!);
    addDest(svc, d.B!);
    addDest(svc, d.C!);
    expect(seq(svc, sched, 4, names)).toBe("CBAC");
  });
});

describe("wrr (ip_vs_wrr.c)", () => {
  it("weights 4,3,2 bound to an existing list: the exact first 9 picks", () => {
    // init_svc: di = 1, mw = 4, cw = 4, cursor at the head.
    // cw=4: A | cw=3: A B | cw=2: A B C | cw=1: A B C
    const { d, names } = named({ A: { weight: 4 }, B: { weight: 3 }, C: { weight: 2 } });
    const { svc, sched } = bound(wrrScheduler, [d.A!, d.B!, d.C!]);
    expect(seq(svc, sched, 9, names)).toBe("AABABCABC");
    // ... and the cycle repeats with the same 9.
    expect(seq(svc, sched, 9, names)).toBe("AABABCABC");
  });

  it("weights 4,3,2 added one by one (-A, -a x3): cw is carried over, so the first picks differ", () => {
    // Empty service: mw = 0, cw = 0. +A(4): di = 4, mw = 1, cw = 0 → 1. +B(3): di = 1, mw = 4, cw = 1
    // kept. +C(2): cw = 1 kept. List is C B A (head insertion).
    // cw=1: C B A | wrap → cw=0 → mw=4: A | cw=3: B A | cw=2: C B A | cw=1: C B A | ...
    const { d, names } = named({ A: { weight: 4 }, B: { weight: 3 }, C: { weight: 2 } });
    const { svc, sched } = emptyService(wrrScheduler);
    addDest(svc, d.A!);
    expect((sched as WrrScheduler).cw).toBe(1);
    addDest(svc, d.B!);
    addDest(svc, d.C!);
    const w = sched as WrrScheduler;
    expect([w.di, w.mw, w.cw]).toEqual([1, 4, 1]);
    expect(seq(svc, sched, 12, names)).toBe("CBAABACBACBA");
  });

  it("uses the gcd as step and mw = max - (gcd - 1)", () => {
    const { d, names } = named({ A: { weight: 4 }, B: { weight: 2 } });
    const { svc, sched } = bound(wrrScheduler, [d.A!, d.B!]);
    const w = sched as WrrScheduler;
    expect([w.di, w.mw, w.cw]).toEqual([2, 3, 3]);
    expect(seq(svc, sched, 6, names)).toBe("AABAAB");
  });

  it("dest change resets the cursor and rescales cw to the new step: (cw / di) * di + 1", () => {
    const { d, names } = named({ A: { weight: 6 }, B: { weight: 3 } });
    const { svc, sched } = bound(wrrScheduler, [d.A!, d.B!]);
    const w = sched as WrrScheduler;
    expect([w.di, w.mw, w.cw]).toEqual([3, 4, 4]);
    setWeight(svc, d.B!, 2); // di = 2, mw = 5, cw = 4 → (4/2)*2 + 1 = 5
    expect([w.di, w.mw, w.cw, w.cl]).toEqual([2, 5, 5, -1]);
    expect(seq(svc, sched, 4, names)).toBe("AAAB");
    // After those picks cw = 1. Weights 1,2: di = 1, mw = 2, and cw = 1 is within range: kept.
    setWeight(svc, d.A!, 1);
    expect([w.di, w.mw, w.cw]).toEqual([1, 2, 1]);
    // Weights 8,2: di = 2, mw = 7; cw = 1 → (1/2)*2 + 1 = 1.
    setWeight(svc, d.A!, 8);
    expect([w.di, w.mw, w.cw]).toEqual([2, 7, 1]);
    // Only B left with weight 2, cw 1 kept; A quiesced: max weight 2 → mw = 1.
    setWeight(svc, d.A!, 0);
    expect([w.di, w.mw, w.cw]).toEqual([2, 1, 1]);
    expect(seq(svc, sched, 3, names)).toBe("BBB");
  });

  it("skips overloaded dests and fails when all are overloaded or quiescent", () => {
    const { d, names } = named({ A: { weight: 4 }, B: { weight: 3, overload: true }, C: { weight: 2 } });
    const { svc, sched } = bound(wrrScheduler, [d.A!, d.B!, d.C!]);
    expect(seq(svc, sched, 6, names)).toBe("AAACAC");
    d.A!.flags |= DEST_F_OVERLOAD;
    d.C!.flags |= DEST_F_OVERLOAD;
    expect(seq(svc, sched, 3, names)).toBe("---");
    const z = named({ A: { weight: 0 }, B: { weight: 0 } });
    const s2 = bound(wrrScheduler, [z.d.A!, z.d.B!]);
    expect((s2.sched as WrrScheduler).mw).toBe(0);
    expect(seq(s2.svc, s2.sched, 2, z.names)).toBe("--");
  });

  it("a weight-0 dest is never picked while the others keep their shares", () => {
    const { d, names } = named({ A: { weight: 2 }, Q: { weight: 0 }, B: { weight: 1 } });
    const { svc, sched } = bound(wrrScheduler, [d.A!, d.Q!, d.B!]);
    const got = picks(svc, sched, 30, names);
    expect(got.filter((x) => x === "Q")).toHaveLength(0);
    expect(got.filter((x) => x === "A")).toHaveLength(20);
    expect(got.filter((x) => x === "B")).toHaveLength(10);
  });
});
