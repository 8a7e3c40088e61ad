import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Prng32 } from "../../../src/datapath/schedulers/common.js";
import { DestIndex, IndexKind } from "../../../src/datapath/schedulers/destindex.js";
import { FoScheduler, foPickLinear } from "../../../src/datapath/schedulers/fo.js";
import { LcScheduler, lcPickLinear } from "../../../src/datapath/schedulers/lc.js";
import { LtScheduler, ltPickLinear } from "../../../src/datapath/schedulers/lt.js";
import { NqScheduler, nqPickLinear } from "../../../src/datapath/schedulers/nq.js";
import { OvfScheduler, ovfPickLinear } from "../../../src/datapath/schedulers/ovf.js";
import { SedScheduler, sedPickLinear } from "../../../src/datapath/schedulers/sed.js";
import { TwosScheduler, twosPickLinear } from "../../../src/datapath/schedulers/twos.js";
import { WlcScheduler, wlcPickLinear } from "../../../src/datapath/schedulers/wlc.js";
import { WltScheduler, wltPickLinear } from "../../../src/datapath/schedulers/wlt.js";
import { WrtScheduler, wrtPickLinear } from "../../../src/datapath/schedulers/wrt.js";
import {
  DEST_F_AVAILABLE,
  DEST_F_OVERLOAD,
  type Dest,
  destChanged,
  destOverloadOnBind,
  destOverloadOnUnbind,
  type Scheduler,
  type Service,
} from "../../../src/tables/model.js";
import { GcWatch, settle } from "../../support/gc.js";
import { bound, flow, mkDest } from "./helpers.js";

/**
 * The indexed schedulers (destindex.ts) must pick exactly the dest the kernel's linear walk picks
 * (the `*PickLinear` reference) for every state: random dest lists (weight 0, overloaded,
 * unavailable, small counters so ties are common), then random sequences of the changes the
 * data path and the control plane make, comparing after every step.
 */

type Ctor = new (svc?: Service, minDests?: number) => Scheduler;
const LEAST: readonly [string, Ctor, (d: readonly Dest[]) => Dest | undefined][] = [
  ["lc", LcScheduler, lcPickLinear],
  ["wlc", WlcScheduler, wlcPickLinear],
  ["sed", SedScheduler, sedPickLinear],
  ["nq", NqScheduler, nqPickLinear],
  ["fo", FoScheduler, foPickLinear],
  ["ovf", OvfScheduler, ovfPickLinear],
  ["lt", LtScheduler, ltPickLinear],
  ["wlt", WltScheduler, wltPickLinear],
  ["wrt", WrtScheduler, wrtPickLinear],
];

// Mostly tiny values, so equal keys (ties) are common; sometimes large ones (products near 2^49).
const small = (max: number, big: number) =>
  fc.oneof(
    { arbitrary: fc.integer({ min: 0, max }), weight: 4 },
    { arbitrary: fc.integer({ min: 0, max: big }), weight: 1 },
  );
const destArb = fc.record({
  weight: small(3, 65535),
  active: small(2, 1 << 24),
  inact: small(2, 1 << 24),
  overload: fc.boolean(),
  unavailable: fc.boolean(),
  rateBps: small(3, 2 ** 36),
  respTimeUs: small(3, 10_000_000),
});
type Spec = { weight: number; active: number; inact: number; overload: boolean; unavailable: boolean };

const mk = (s: Spec & { rateBps: number; respTimeUs: number }) =>
  mkDest({
    weight: s.weight,
    active: s.active,
    inact: s.inact,
    overload: s.overload && s.active % 3 !== 0, // most usable, some not
    unavailable: s.unavailable && s.inact % 5 === 0,
    rateBps: s.rateBps,
    respTimeUs: s.respTimeUs,
  });

const opArb = fc.oneof(
  // Data path: a connection bound (create), unbound (free), active <-> inactive (state change).
  fc.record({ op: fc.constant("bind" as const), k: fc.nat() }),
  fc.record({ op: fc.constant("unbind" as const), k: fc.nat() }),
  fc.record({ op: fc.constant("activate" as const), k: fc.nat() }),
  fc.record({ op: fc.constant("deactivate" as const), k: fc.nat() }),
  // Thresholds flip the overload flag (via destOverloadOnBind/Unbind in real life).
  fc.record({ op: fc.constant("overload" as const), k: fc.nat(), on: fc.boolean() }),
  // Estimator / response times.
  fc.record({ op: fc.constant("rate" as const), k: fc.nat(), v: fc.integer({ min: 0, max: 5 }) }),
  // Control plane: weight edit, add at head, delete.
  fc.record({ op: fc.constant("weight" as const), k: fc.nat(), v: fc.constantFrom(0, 1, 2, 3, 4, 65535) }),
  fc.record({ op: fc.constant("add" as const), d: destArb }),
  fc.record({ op: fc.constant("del" as const), k: fc.nat() }),
  fc.constant({ op: "pick" as const }),
);
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

/** Apply one change the way the real code does (conntrack hooks or onDestsChanged). */
function apply(svc: Service, sched: Scheduler, removed: Dest[], o: Op): void {
  const list = svc.dests;
  if (o.op === "pick") return;
  if (o.op === "add") {
    const d = mk(o.d);
    d.svc = svc;
    list.unshift(d);
    sched.onDestsChanged?.(list);
    return;
  }
  // Counter changes also hit removed dests (their connections drain): the index must ignore them.
  const pool = removed.length > 0 && o.k % 7 === 6 ? removed : list;
  if (pool.length === 0) return;
  const d = pool[o.k % pool.length]!;
  switch (o.op) {
    case "bind":
      d.inactConns++;
      destOverloadOnBind(d);
      break;
    case "unbind":
      if (d.inactConns > 0) d.inactConns--;
      else if (d.activeConns > 0) d.activeConns--;
      destOverloadOnUnbind(d);
      break;
    case "activate":
      if (d.inactConns > 0) {
        d.inactConns--;
        d.activeConns++;
        destChanged(d);
      }
      break;
    case "deactivate":
      if (d.activeConns > 0) {
        d.activeConns--;
        d.inactConns++;
        destChanged(d);
      }
      break;
    case "overload":
      if (o.on) d.flags |= DEST_F_OVERLOAD;
      else d.flags &= ~DEST_F_OVERLOAD;
      destChanged(d);
      break;
    case "rate":
      d.rateBps = o.v * 1000;
      d.respTimeUs = o.v * 10;
      destChanged(d);
      break;
    case "weight":
      d.weight = o.v;
      sched.onDestsChanged?.(list);
      break;
    case "del":
      if (pool === list) {
        list.splice(list.indexOf(d), 1);
        d.flags &= ~DEST_F_AVAILABLE;
        removed.push(d);
        sched.onDestsChanged?.(list);
      }
      break;
  }
}

const F = flow(0xc6336401, 40000, 0x0a000064);

describe("indexed selection equals the kernel's linear walk", () => {
  for (const [name, Sched, linear] of LEAST) {
    for (const minDests of [0, 8]) {
      it(`${name} (index from ${minDests} dests): every step of random change sequences`, () => {
        fc.assert(
          fc.property(
            fc.array(destArb, { maxLength: 40 }),
            fc.array(opArb, { maxLength: 120 }),
            (specs, ops) => {
              const dests = specs.map(mk);
              const { svc, sched } = bound({ name, create: (s) => new Sched(s, minDests) }, dests);
              const removed: Dest[] = [];
              expect(sched.select(svc, F)).toBe(linear(svc.dests));
              for (const o of ops) {
                apply(svc, sched, removed, o);
                expect(sched.select(svc, F)).toBe(linear(svc.dests));
              }
            },
          ),
          { numRuns: 200 },
        );
      });
    }
  }

  it("twos: the same two draws pick the same dest, every step", () => {
    fc.assert(
      fc.property(
        fc.array(destArb, { maxLength: 40 }),
        fc.array(opArb, { maxLength: 120 }),
        fc.integer(),
        (specs, ops, seed) => {
          const dests = specs.map(mk);
          const { svc, sched } = bound({ name: "twos", create: (s) => new TwosScheduler(seed, s, 0) }, dests);
          const ref = new Prng32(seed);
          const removed: Dest[] = [];
          expect(sched.select(svc, F)).toBe(twosPickLinear(svc.dests, ref));
          for (const o of ops) {
            apply(svc, sched, removed, o);
            expect(sched.select(svc, F)).toBe(twosPickLinear(svc.dests, ref));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("ties resolve by list order across a large list (first of many equal dests)", () => {
    const dests = Array.from({ length: 1000 }, () => mkDest({ weight: 2, active: 1, inact: 3 }));
    const { svc, sched } = bound({ name: "wlc", create: (s) => new WlcScheduler(s, 0) }, dests);
    expect(sched.select(svc, F)).toBe(dests[0]);
    dests[0]!.inactConns++;
    destChanged(dests[0]!);
    expect(sched.select(svc, F)).toBe(dests[1]);
    dests[777]!.inactConns = 0;
    destChanged(dests[777]!);
    expect(sched.select(svc, F)).toBe(dests[777]);
  });

  it("the default modules switch to the index at DEFAULT_INDEX_MIN_DESTS and agree on both sides", () => {
    const idx = new DestIndex(IndexKind.WLC);
    expect(idx.minDests).toBeGreaterThan(0);
    for (const n of [idx.minDests - 1, idx.minDests, idx.minDests + 1]) {
      const dests = Array.from({ length: n }, (_, i) =>
        mkDest({ weight: 1 + (i % 3), active: i % 4, inact: i % 5 }),
      );
      const { svc, sched } = bound({ name: "wlc", create: (s) => new WlcScheduler(s) }, dests);
      expect(sched.select(svc, F)).toBe(wlcPickLinear(dests));
    }
  });
});

describe("the indexed path allocates nothing", () => {
  it("1e5 decisions with counter updates at 1,024 dests: no minor GC", async () => {
    const gc = new GcWatch();
    const scheds: [string, (svc: Service) => Scheduler][] = [
      ...LEAST.map(([n, C]) => [n, (s: Service) => new C(s, 0)] as [string, (svc: Service) => Scheduler]),
      ["twos", (s) => new TwosScheduler(7, s, 0)],
    ];
    gc.start();
    try {
      for (const [name, make] of scheds) {
        const dests = Array.from({ length: 1024 }, (_, i) => mkDest({ weight: 1 + (i % 4), active: i % 5 }));
        const { svc } = bound({ name, create: make }, dests);
        const run = (n: number) => {
          for (let i = 0; i < n; i++) {
            const d = svc.sched!.select(svc, F);
            if (d !== undefined) {
              d.inactConns++;
              destOverloadOnBind(d);
              if ((i & 1) === 0) {
                d.inactConns--;
                destOverloadOnUnbind(d);
              }
            }
          }
        };
        run(100_000);
        // As alloc.test.ts: the least over a few runs, since a one-off (the JIT re-optimising
        // the shared index code for another kind) may allocate once.
        let leastMinor = Number.POSITIVE_INFINITY;
        let leastGrowth = Number.POSITIVE_INFINITY;
        for (let rep = 0; rep < 3; rep++) {
          await settle();
          const { minors, value: grown } = await gc.during(() => {
            const heap = process.memoryUsage().heapUsed;
            run(100_000);
            return process.memoryUsage().heapUsed - heap;
          });
          leastMinor = Math.min(leastMinor, minors);
          if (minors === 0) leastGrowth = Math.min(leastGrowth, grown);
        }
        expect(leastMinor, name).toBe(0);
        expect(leastGrowth, name).toBeLessThan(32 * 1024);
      }
    } finally {
      gc.stop();
    }
  });
});
