import { describe, expect, it } from "vitest";
import { foScheduler } from "../../../src/datapath/schedulers/fo.js";
import { lcScheduler } from "../../../src/datapath/schedulers/lc.js";
import { ltScheduler } from "../../../src/datapath/schedulers/lt.js";
import { nqScheduler } from "../../../src/datapath/schedulers/nq.js";
import { ovfScheduler } from "../../../src/datapath/schedulers/ovf.js";
import { rrScheduler } from "../../../src/datapath/schedulers/rr.js";
import { sedScheduler } from "../../../src/datapath/schedulers/sed.js";
import { createTwosModule, twosScheduler } from "../../../src/datapath/schedulers/twos.js";
import { wlcScheduler } from "../../../src/datapath/schedulers/wlc.js";
import { wltScheduler } from "../../../src/datapath/schedulers/wlt.js";
import { wrtScheduler } from "../../../src/datapath/schedulers/wrt.js";
import { DEST_F_OVERLOAD, destOverloadOnBind, destOverloadOnUnbind } from "../../../src/tables/model.js";
import { bound, FLOW0, type mkDest, named, seq } from "./helpers.js";

/** A: w1 2/10 (oh 522), B: w2 3/5 (oh 773), C: w3 5/0 (oh 1280), D: w0 idle. */
function mixed() {
  return named({
    A: { weight: 1, active: 2, inact: 10 },
    B: { weight: 2, active: 3, inact: 5 },
    C: { weight: 3, active: 5, inact: 0 },
    D: { weight: 0, active: 0, inact: 0 },
  });
}

describe("lc / wlc / sed / nq with mixed active and inactive counts", () => {
  it("lc: least overhead (active*256 + inactive), weight 0 excluded", () => {
    const { d, names } = mixed();
    const { svc, sched } = bound(lcScheduler, [d.A!, d.B!, d.C!, d.D!]);
    // D has overhead 0 but weight 0; A (522) < B (773) < C (1280).
    expect(seq(svc, sched, 1, names)).toBe("A");
    d.A!.inactConns = 300; // 812 > 773
    expect(seq(svc, sched, 1, names)).toBe("B");
  });

  it("wlc: least overhead/weight via h1*w2 > h2*w1", () => {
    const { d, names } = mixed();
    const { svc, sched } = bound(wlcScheduler, [d.A!, d.B!, d.C!, d.D!]);
    // A 522/1 = 522, B 773/2 = 386.5, C 1280/3 = 426.7 → B.
    expect(seq(svc, sched, 1, names)).toBe("B");
    d.B!.flags |= DEST_F_OVERLOAD; // → C (426.7 < 522)
    expect(seq(svc, sched, 1, names)).toBe("C");
    d.C!.weight = 0;
    expect(seq(svc, sched, 1, names)).toBe("A");
    d.A!.weight = 0;
    expect(seq(svc, sched, 1, names)).toBe("-");
  });

  it("wlc: ties go to the first dest in list order", () => {
    const { d, names } = named({ A: { weight: 1, active: 1 }, B: { weight: 2, active: 2 } });
    const ab = bound(wlcScheduler, [d.A!, d.B!]);
    expect(seq(ab.svc, ab.sched, 1, names)).toBe("A");
    const ba = bound(wlcScheduler, [d.B!, d.A!]);
    expect(seq(ba.svc, ba.sched, 1, names)).toBe("B");
  });

  it("wlc: overloaded first dest does not seed, weight-0 later dest never wins", () => {
    const { d, names } = named({
      X: { weight: 5, overload: true },
      Z: { weight: 0 },
      A: { weight: 1, active: 4 },
      Q: { weight: 0, active: 0, inact: 0 },
    });
    const { svc, sched } = bound(wlcScheduler, [d.X!, d.Z!, d.A!, d.Q!]);
    expect(seq(svc, sched, 1, names)).toBe("A");
  });

  it("sed: least (active+1)/weight, inactive ignored, first wins ties", () => {
    const { d, names } = mixed();
    const { svc, sched } = bound(sedScheduler, [d.A!, d.B!, d.C!, d.D!]);
    // A 3/1, B 4/2 = 2, C 6/3 = 2 → tie B, C → B.
    expect(seq(svc, sched, 1, names)).toBe("B");
    d.B!.inactConns = 1_000_000; // inactive connections do not count
    expect(seq(svc, sched, 1, names)).toBe("B");
    d.B!.activeConns = 4; // 5/2 > 2 → C
    expect(seq(svc, sched, 1, names)).toBe("C");
  });

  it("nq: the first idle usable dest wins at once, otherwise sed", () => {
    const { d, names } = mixed();
    const { svc, sched } = bound(nqScheduler, [d.A!, d.B!, d.C!, d.D!]);
    expect(seq(svc, sched, 1, names)).toBe("B"); // none idle (D is quiescent) → sed → B
    d.C!.activeConns = 0;
    d.C!.inactConns = 99; // idle means no *active* connection
    expect(seq(svc, sched, 1, names)).toBe("C");
    d.A!.activeConns = 0; // A is idle and earlier in the list
    expect(seq(svc, sched, 1, names)).toBe("A");
    d.A!.flags |= DEST_F_OVERLOAD;
    expect(seq(svc, sched, 1, names)).toBe("C");
  });
});

describe("fo / ovf", () => {
  it("fo: highest weight, first on ties, overloaded skipped", () => {
    const { d, names } = named({ A: { weight: 1 }, B: { weight: 3 }, C: { weight: 3 }, D: { weight: 0 } });
    const { svc, sched } = bound(foScheduler, [d.A!, d.B!, d.C!, d.D!]);
    expect(seq(svc, sched, 3, names)).toBe("BBB");
    d.B!.flags |= DEST_F_OVERLOAD;
    expect(seq(svc, sched, 1, names)).toBe("C");
    d.C!.weight = 0;
    expect(seq(svc, sched, 1, names)).toBe("A");
  });

  it("ovf: highest weight among dests with activeconns <= weight", () => {
    const { d, names } = named({
      A: { weight: 1, active: 0 },
      B: { weight: 3, active: 4 },
      C: { weight: 3, active: 3 },
      D: { weight: 2, active: 0 },
    });
    const { svc, sched } = bound(ovfScheduler, [d.A!, d.B!, d.C!, d.D!]);
    expect(seq(svc, sched, 1, names)).toBe("C"); // B is over its weight; C is exactly at it
    d.C!.activeConns = 4;
    expect(seq(svc, sched, 1, names)).toBe("D");
    d.B!.activeConns = 3; // back within its weight, and earlier than C
    expect(seq(svc, sched, 1, names)).toBe("B");
    for (const x of [d.A!, d.B!, d.C!, d.D!]) x.activeConns = 10;
    expect(seq(svc, sched, 1, names)).toBe("-");
  });
});

describe("twos (ip_vs_twos.c)", () => {
  const scripted = (values: number[]) => () => {
    let i = 0;
    return { next: () => values[i++ % values.length]! };
  };

  it("two weighted draws over [0, total], keep the lower overhead/weight", () => {
    const { d, names } = named({
      A: { weight: 2, active: 2 },
      B: { weight: 3, active: 0 },
      C: { weight: 5, active: 1 },
    });
    // total = 10, draws mod 11. r1 = 0 → A (0 - 2 <= 0); r2 = 7 → 5, 2, -3 → C.
    // C wins: w2 * oh1 = 5 * 512 > w1 * oh2 = 2 * 256.
    let m = createTwosModule({ rng: scripted([0, 7]) });
    let b = bound(m, [d.A!, d.B!, d.C!]);
    expect(seq(b.svc, b.sched, 1, names)).toBe("C");
    // r1 = 10 → C (the last dest absorbs r = total); r2 = 2 → A (2 - 2 = 0); A (oh 512/2 = 256) vs
    // C (256/5): keep C.
    m = createTwosModule({ rng: scripted([10, 2]) });
    b = bound(m, [d.A!, d.B!, d.C!]);
    expect(seq(b.svc, b.sched, 1, names)).toBe("C");
    // r1 = 5 → B (5-2=3, 3-3=0); r2 = 3 → B too: B.
    m = createTwosModule({ rng: scripted([5, 3]) });
    b = bound(m, [d.A!, d.B!, d.C!]);
    expect(seq(b.svc, b.sched, 1, names)).toBe("B");
    // Draws are taken modulo total + 1: 11 + 5 ≡ 5 → B.
    m = createTwosModule({ rng: scripted([16, 14]) });
    b = bound(m, [d.A!, d.B!, d.C!]);
    expect(seq(b.svc, b.sched, 1, names)).toBe("B");
  });

  it("skips overloaded and quiescent dests in both the total and the walk", () => {
    const { d, names } = named({ X: { weight: 9, overload: true }, Q: { weight: 0 }, A: { weight: 1 } });
    const b = bound(twosScheduler, [d.X!, d.Q!, d.A!]);
    expect(seq(b.svc, b.sched, 20, names)).toBe("A".repeat(20));
    d.A!.weight = 0;
    expect(seq(b.svc, b.sched, 2, names)).toBe("--");
  });

  it("with equal load, picks follow the weights (the first dest gets one extra chance)", () => {
    const { d, names } = named({ A: { weight: 1 }, B: { weight: 3 }, C: { weight: 6 } });
    const b = bound(createTwosModule({ seed: 42 }), [d.A!, d.B!, d.C!]);
    const s = seq(b.svc, b.sched, 11_000, names);
    const count = (c: string) => s.split(c).length - 1;
    // choice 1 always stays (no overhead difference): P(A) = 2/11, P(B) = 3/11, P(C) = 6/11.
    expect(count("A")).toBeGreaterThan(1700);
    expect(count("A")).toBeLessThan(2300);
    expect(count("B")).toBeGreaterThan(2700);
    expect(count("B")).toBeLessThan(3300);
    expect(count("C")).toBeGreaterThan(5600);
    // Same seed, same sequence.
    const b2 = bound(createTwosModule({ seed: 42 }), [d.A!, d.B!, d.C!]);
    expect(seq(b2.svc, b2.sched, 11_000, names)).toBe(s);
  });
});

describe("lt / wlt / wrt (not in the kernel)", () => {
  it("lt: lowest byte rate, first on ties, weight 0 excluded", () => {
    const { d, names } = named({
      A: { rateBps: 500 },
      B: { rateBps: 100 },
      C: { rateBps: 100 },
      Z: { rateBps: 0, weight: 0 },
    });
    const { svc, sched } = bound(ltScheduler, [d.A!, d.B!, d.C!, d.Z!]);
    expect(seq(svc, sched, 1, names)).toBe("B");
  });

  it("wlt: lowest rate/weight, first on ties", () => {
    const { d, names } = named({
      A: { rateBps: 300, weight: 3 },
      B: { rateBps: 150, weight: 1 },
      C: { rateBps: 200, weight: 2 },
    });
    const { svc, sched } = bound(wltScheduler, [d.A!, d.B!, d.C!]);
    expect(seq(svc, sched, 1, names)).toBe("A"); // A 100, B 150, C 100
    d.A!.rateBps = 301;
    expect(seq(svc, sched, 1, names)).toBe("C");
  });

  it("wrt: lowest response time/weight; an unmeasured dest (0) is preferred", () => {
    const { d, names } = named({
      A: { respTimeUs: 1000, weight: 2 },
      C: { respTimeUs: 600, weight: 1 },
      N: { respTimeUs: 0, weight: 1 },
    });
    const { svc, sched } = bound(wrtScheduler, [d.A!, d.C!, d.N!]);
    expect(seq(svc, sched, 1, names)).toBe("N");
    d.N!.respTimeUs = 700;
    expect(seq(svc, sched, 1, names)).toBe("A"); // 500 < 600 < 700
  });
});

describe("thresholds: hysteresis via destOverloadOnBind / destOverloadOnUnbind", () => {
  function connect(dest: ReturnType<typeof mkDest>) {
    dest.activeConns++;
    destOverloadOnBind(dest);
  }
  function disconnect(dest: ReturnType<typeof mkDest>) {
    dest.activeConns--;
    destOverloadOnUnbind(dest);
  }

  it("upper threshold overloads; below the lower threshold the dest comes back (wlc)", () => {
    const { d, names } = named({ A: { weight: 10 }, B: { weight: 1, active: 10 } });
    d.A!.uThreshold = 4;
    d.A!.lThreshold = 2;
    const { svc, sched } = bound(wlcScheduler, [d.A!, d.B!]);
    const picked: string[] = [];
    for (let i = 0; i < 4; i++) {
      const x = sched.select(svc, FLOW0)!;
      picked.push(names.get(x)!);
      connect(x);
    }
    expect(picked.join("")).toBe("AAAA");
    expect(d.A!.flags & DEST_F_OVERLOAD).not.toBe(0); // 4 >= uthreshold
    expect(seq(svc, sched, 1, names)).toBe("B");
    disconnect(d.A!); // 3: not below lthreshold 2
    expect(seq(svc, sched, 1, names)).toBe("B");
    disconnect(d.A!); // 2: still not below 2
    expect(seq(svc, sched, 1, names)).toBe("B");
    disconnect(d.A!); // 1 < 2: cleared
    expect(d.A!.flags & DEST_F_OVERLOAD).toBe(0);
    expect(seq(svc, sched, 1, names)).toBe("A");
  });

  it("without a lower threshold the flag clears below 3/4 of the upper one (rr)", () => {
    const { d, names } = named({ A: { weight: 1 }, B: { weight: 1 } });
    d.A!.uThreshold = 8;
    const { svc, sched } = bound(rrScheduler, [d.A!, d.B!]);
    for (let i = 0; i < 8; i++) connect(d.A!);
    expect(seq(svc, sched, 3, names)).toBe("BBB");
    disconnect(d.A!); // 7: 28 < 24? no
    disconnect(d.A!); // 6: 24 < 24? no
    expect(seq(svc, sched, 2, names)).toBe("BB");
    disconnect(d.A!); // 5: 20 < 24 → cleared
    expect(seq(svc, sched, 2, names)).toBe("AB");
  });
});
