import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clock } from "../../../src/datapath/clock.js";
import {
  createLblcModule,
  type LblcScheduler,
  lblcScheduler,
} from "../../../src/datapath/schedulers/lblc.js";
import {
  createLblcrModule,
  type LblcrScheduler,
  lblcrScheduler,
} from "../../../src/datapath/schedulers/lblcr.js";
import { DEST_F_OVERLOAD } from "../../../src/tables/model.js";
import { bound, delDest, flow, ip, named } from "./helpers.js";

const MIN = 60_000;
const HOUR = 60 * MIN;
const to = (daddr: string) => flow("198.51.100.9", 40000, daddr);

let saved = 0;
beforeEach(() => {
  saved = clock.nowMs;
  clock.nowMs = 1_000_000;
});
afterEach(() => {
  clock.nowMs = saved;
});

describe("lblc (ip_vs_lblc.c)", () => {
  it("a miss picks by wlc and caches the pick per destination address", () => {
    const { d, names } = named({
      A: { weight: 1, active: 3 },
      B: { weight: 1, active: 1 },
      C: { weight: 1, active: 2 },
    });
    const { svc, sched } = bound(lblcScheduler, [d.A!, d.B!, d.C!]);
    const l = sched as LblcScheduler;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    expect(l.cached(ip("10.9.0.1"))).toBe(d.B);
    // Load moves, but the cache keeps the locality: B stays (B is not over its weight... yet).
    d.B!.activeConns = 1;
    d.A!.activeConns = 0;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    // A different address is a new miss: wlc now says A.
    expect(names.get(sched.select(svc, to("10.9.0.2"))!)).toBe("A");
    expect(l.table.count).toBe(2);
  });

  it("overload rule: activeconns > weight while another dest has activeconns*2 < weight", () => {
    const { d, names } = named({ A: { weight: 4, active: 0 }, B: { weight: 4, active: 3 } });
    const { svc, sched } = bound(lblcScheduler, [d.A!, d.B!]);
    const l = sched as LblcScheduler;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
    d.A!.activeConns = 5; // over its weight, but nobody is below half: keep A
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
    d.B!.activeConns = 1; // 1*2 < 4: B is lightly loaded → A counts as overloaded → wlc → B
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    expect(l.cached(ip("10.9.0.1"))).toBe(d.B);
  });

  it("weight 0 or a removed dest invalidates the entry", () => {
    const { d, names } = named({ A: { weight: 1 }, B: { weight: 1, active: 1 } });
    const { svc, sched } = bound(lblcScheduler, [d.A!, d.B!]);
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
    d.A!.weight = 0;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    d.A!.weight = 1;
    d.A!.activeConns = 9;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B"); // cached B is fine
    delDest(svc, d.B!);
    expect((sched as LblcScheduler).cached(ip("10.9.0.1"))).toBeUndefined();
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
  });

  it("kernel exception: a cache hit ignores the threshold overload flag", () => {
    const { d, names } = named({ A: { weight: 1 }, B: { weight: 1, active: 1 } });
    const { svc, sched } = bound(lblcScheduler, [d.A!, d.B!]);
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
    d.A!.flags |= DEST_F_OVERLOAD; // upper threshold reached
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A"); // as ip_vs_lblc_schedule does
    expect(names.get(sched.select(svc, to("10.9.0.2"))!)).toBe("B"); // a miss uses wlc, which skips A
  });

  it("entries unused for 24 h are dropped by the 30-minute full check", () => {
    const { d } = named({ A: {}, B: {} });
    const { svc, sched } = bound(lblcScheduler, [d.A!, d.B!]);
    const l = sched as LblcScheduler;
    const t0 = clock.nowMs;
    sched.select(svc, to("10.9.0.1"));
    // Keep the timer ticking with traffic to another address every 10 minutes.
    for (let t = 10 * MIN; t < 24 * HOUR; t += 10 * MIN) {
      clock.nowMs = t0 + t;
      sched.select(svc, to("10.9.0.2"));
    }
    // Full checks run at t0 + 30 min, 60 min, ...; the one at t0 + 24 h drops the entry.
    clock.nowMs = t0 + 24 * HOUR - 1;
    sched.select(svc, to("10.9.0.2"));
    expect(l.cached(ip("10.9.0.1"))).toBe(d.A);
    clock.nowMs = t0 + 24 * HOUR;
    sched.select(svc, to("10.9.0.2"));
    expect(l.cached(ip("10.9.0.1"))).toBeUndefined();
    expect(l.cached(ip("10.9.0.2"))).toBeDefined();
  });

  it("the expiration is configurable (the lblc_expiration sysctl)", () => {
    const { d } = named({ A: {} });
    const { svc, sched } = bound(createLblcModule({ expirationMs: 10 * MIN }), [d.A!]);
    const l = sched as LblcScheduler;
    const t0 = clock.nowMs;
    sched.select(svc, to("10.9.0.1"));
    clock.nowMs = t0 + 29 * MIN; // no full check yet (the first is at +30 min)
    sched.select(svc, to("10.9.0.2"));
    expect(l.cached(ip("10.9.0.1"))).toBe(d.A);
    clock.nowMs = t0 + 30 * MIN;
    sched.select(svc, to("10.9.0.2"));
    expect(l.cached(ip("10.9.0.1"))).toBeUndefined();
  });

  it("a full table refuses new entries and sheds entries idle 6 min, (n - max) * 4/3 per run", () => {
    const { d } = named({ A: {} });
    const { svc, sched } = bound(createLblcModule({ tabBits: 0 }), [d.A!]); // max_size = 16
    const l = sched as LblcScheduler;
    const t0 = clock.nowMs;
    for (let i = 1; i <= 20; i++) expect(sched.select(svc, to(`10.9.1.${i}`))).toBe(d.A);
    expect(l.table.count).toBe(17); // created while entries <= 16
    clock.nowMs = t0 + 5 * MIN; // ticks at +1..+5 min: over max, nothing idle for 6 min yet
    sched.select(svc, to("10.9.1.1"));
    expect(l.table.count).toBe(17);
    expect(l.timer.counter).toBe(1);
    clock.nowMs = t0 + 6 * MIN + 1; // tick at +6 min: goal = (17 - 16) * 4/3 = 1
    sched.select(svc, to("10.9.1.1"));
    expect(l.table.count).toBe(16);
    expect(l.cached(ip("10.9.1.1"))).toBe(d.A); // used at +5 min: not idle
    clock.nowMs = t0 + 7 * MIN;
    sched.select(svc, to("10.9.1.1"));
    expect(l.timer.counter).toBe(2); // back under max: the counter moves again
  });
});

describe("lblcr (ip_vs_lblcr.c)", () => {
  it("a miss caches a one-dest set; an overloaded pick adds the wlc choice to the set", () => {
    const { d, names } = named({ A: { weight: 4, active: 0 }, B: { weight: 4, active: 3 } });
    const { svc, sched } = bound(lblcrScheduler, [d.A!, d.B!]);
    const r = sched as LblcrScheduler;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
    expect(r.cachedSet(ip("10.9.0.1"))).toEqual([d.A]);
    d.A!.activeConns = 5;
    d.B!.activeConns = 1; // A is over its weight while B is below half → replicate to B
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    expect(r.cachedSet(ip("10.9.0.1"))).toEqual([d.B, d.A]); // newest first
    // The set's least loaded member is used while not overloaded.
    d.B!.activeConns = 2;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B"); // B 512/4 < A 1280/4
    d.A!.activeConns = 0;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
    expect(r.cachedSet(ip("10.9.0.1"))).toHaveLength(2);
  });

  it("set_min skips overloaded, quiescent and removed members", () => {
    const { d, names } = named({
      A: { weight: 1 },
      B: { weight: 1, active: 1 },
      C: { weight: 1, active: 2 },
    });
    const { svc, sched } = bound(lblcrScheduler, [d.A!, d.B!, d.C!]);
    const r = sched as LblcrScheduler;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
    d.A!.flags |= DEST_F_OVERLOAD; // set {A}: no usable member → wlc → B, added
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    expect(r.cachedSet(ip("10.9.0.1"))).toEqual([d.B, d.A]);
    d.A!.flags &= ~DEST_F_OVERLOAD;
    d.A!.weight = 0;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    delDest(svc, d.B!);
    expect(r.cachedSet(ip("10.9.0.1"))).toEqual([d.A]);
    d.A!.weight = 1;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("A");
  });

  it("a set unchanged for the expiration time loses its most loaded member", () => {
    const { d, names } = named({ A: { weight: 4, active: 0 }, B: { weight: 4, active: 3 } });
    const { svc, sched } = bound(createLblcrModule({ expirationMs: 2 * HOUR }), [d.A!, d.B!]);
    const r = sched as LblcrScheduler;
    const t0 = clock.nowMs;
    sched.select(svc, to("10.9.0.1")); // {A}
    d.A!.activeConns = 5;
    d.B!.activeConns = 1;
    sched.select(svc, to("10.9.0.1")); // {B, A}, lastmod t0
    d.A!.activeConns = 4; // A: 4*256/4 = 256 per weight; B: 1*256/4 = 64
    // Hits keep the entry alive (lastuse) but do not modify the set (lastmod stays t0).
    for (let t = 10 * MIN; t <= 2 * HOUR; t += 10 * MIN) {
      clock.nowMs = t0 + t; // at t0 + 2 h: not yet *after* lastmod + expiration
      expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    }
    expect(r.cachedSet(ip("10.9.0.1"))).toHaveLength(2);
    clock.nowMs = t0 + 2 * HOUR + 1;
    expect(names.get(sched.select(svc, to("10.9.0.1"))!)).toBe("B");
    expect(r.cachedSet(ip("10.9.0.1"))).toEqual([d.B]); // A (most loaded) removed
  });

  it("entries unused for the expiration are dropped with their sets", () => {
    const { d } = named({ A: {}, B: {} });
    const { svc, sched } = bound(createLblcrModule({ expirationMs: 40 * MIN }), [d.A!, d.B!]);
    const r = sched as LblcrScheduler;
    const t0 = clock.nowMs;
    sched.select(svc, to("10.9.0.1"));
    clock.nowMs = t0 + 59 * MIN; // full check at +30 min: 30 < 40, kept
    sched.select(svc, to("10.9.0.2"));
    expect(r.cachedSet(ip("10.9.0.1"))).toHaveLength(1);
    clock.nowMs = t0 + 60 * MIN; // full check at +60 min: dropped
    sched.select(svc, to("10.9.0.2"));
    expect(r.cachedSet(ip("10.9.0.1"))).toHaveLength(0);
    expect(r.table.count).toBe(1);
  });

  it("survives many entries and expiries without leaking set elements", () => {
    const { d } = named({ A: {}, B: {} });
    const { svc, sched } = bound(createLblcrModule({ tabBits: 2, expirationMs: 5 * MIN }), [d.A!, d.B!]); // max 64
    const r = sched as LblcrScheduler;
    const t0 = clock.nowMs;
    for (let round = 0; round < 50; round++) {
      clock.nowMs = t0 + round * 31 * MIN;
      for (let i = 0; i < 100; i++) {
        d.A!.activeConns = (i * 7 + round) % 5;
        d.B!.activeConns = (i * 3 + round) % 5;
        const x = sched.select(svc, to(`10.8.${round & 3}.${i}`));
        expect(x === d.A || x === d.B).toBe(true);
      }
      expect(r.table.count).toBeLessThanOrEqual(65);
    }
  });
});
