import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clock } from "../../../src/datapath/clock.js";
import { getScheduler, schedulerNames } from "../../../src/datapath/schedulers/index.js";
import type { ShScheduler } from "../../../src/datapath/schedulers/sh.js";
import type { Dest, Service } from "../../../src/tables/model.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, SVC_F_SCHED1 } from "../../../src/tables/model.js";
import { bound, flow, mkDest } from "./helpers.js";

const destArb = fc.record({
  weight: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 65535 })),
  lastWeight: fc.integer({ min: 0, max: 6 }),
  active: fc.integer({ min: 0, max: 12 }),
  inact: fc.integer({ min: 0, max: 40 }),
  overload: fc.boolean(),
  unavailable: fc.boolean(),
  rateBps: fc.integer({ min: 0, max: 1_000_000 }),
  respTimeUs: fc.integer({ min: 0, max: 100_000 }),
});

const caseArb = fc.record({
  dests: fc.array(destArb, { minLength: 0, maxLength: 12 }),
  flags: fc.integer({ min: 0, max: 3 }).map((x) => x << 3), // SVC_F_SCHED1 | SVC_F_SCHED2
  flows: fc.array(
    fc.record({
      saddr: fc.integer({ min: 0, max: 0xffffffff }),
      sport: fc.integer({ min: 0, max: 65535 }),
      daddr: fc.integer({ min: 0, max: 7 }), // few addresses: lblc/lblcr caches get hits
    }),
    { minLength: 1, maxLength: 8 },
  ),
  // After each decision: bind a connection to the pick, and maybe flip a dest's overload flag.
  churn: fc.array(fc.tuple(fc.boolean(), fc.nat()), { minLength: 8, maxLength: 8 }),
});

type DestCase = typeof destArb extends fc.Arbitrary<infer T> ? T : never;

function build(name: string, specs: DestCase[], flags: number) {
  const dests = specs.map((s, i) =>
    mkDest({ ...s, lastWeight: s.weight > 0 ? s.weight : s.lastWeight, addr: `192.168.7.${i + 1}` }),
  );
  return bound(getScheduler(name)!, dests, flags);
}

function usable(d: Dest): boolean {
  return (d.flags & (DEST_F_AVAILABLE | DEST_F_OVERLOAD)) === DEST_F_AVAILABLE && d.weight > 0;
}

/** When may `undefined` be returned although some dest is usable? (kernel behaviour) */
function mustFind(name: string, svc: Service): (d: Dest) => boolean {
  switch (name) {
    case "dh":
    case "mh": // mh-fallback probes M hashed slots and may miss a dest holding few of them
      return () => false;
    case "sh": {
      if ((svc.flags & SVC_F_SCHED1) === 0) return () => false;
      const sh = svc.sched as ShScheduler;
      const inTable = new Set(Array.from(sh.buckets, (i) => svc.dests[i]));
      return (d) => inTable.has(d);
    }
    case "ovf":
      return (d) => d.activeConns <= d.weight;
    default:
      return () => true;
  }
}

let saved = 0;
beforeAll(() => {
  saved = clock.nowMs;
});
afterAll(() => {
  clock.nowMs = saved;
});

describe("properties over random dest sets, weights and flags", () => {
  for (const name of schedulerNames()) {
    it(`${name}: never returns an unusable dest; undefined only when the kernel would give none`, () => {
      fc.assert(
        fc.property(caseArb, ({ dests, flags, flows, churn }) => {
          clock.nowMs = 5_000_000;
          const { svc, sched } = build(name, dests, flags);
          for (let k = 0; k < flows.length; k++) {
            const f = flows[k]!;
            clock.nowMs += 7 * 60_000; // let the lblc/lblcr timers run too
            const d = sched.select(svc, flow(f.saddr, f.sport, 0x0a000000 + f.daddr));
            if (d !== undefined) {
              expect(svc.dests).toContain(d);
              expect(d.flags & DEST_F_AVAILABLE).not.toBe(0);
              expect(d.weight).toBeGreaterThan(0);
              // lblc: a cache hit does not look at the threshold flag (kernel exception)
              if (name !== "lblc") expect(d.flags & DEST_F_OVERLOAD).toBe(0);
            } else {
              const eligible = mustFind(name, svc);
              expect(svc.dests.filter((x) => usable(x) && eligible(x))).toEqual([]);
            }
            const [bind, which] = churn[k]!;
            if (d !== undefined && bind) d.activeConns++;
            if (svc.dests.length > 0) svc.dests[which % svc.dests.length]!.flags ^= DEST_F_OVERLOAD;
          }
        }),
        { numRuns: 300 },
      );
    });
  }

  it("every scheduler gives the same answers when re-bound to the same state (no hidden inputs)", () => {
    const deterministic = schedulerNames().filter((n) => n !== "twos");
    fc.assert(
      fc.property(caseArb, ({ dests, flags, flows }) => {
        for (const name of deterministic) {
          clock.nowMs = 1_000;
          const a = build(name, dests, flags);
          const b = build(name, dests, flags);
          for (const f of flows) {
            const fl = flow(f.saddr, f.sport, 0x0a000000 + f.daddr);
            const x = a.sched.select(a.svc, fl);
            const y = b.sched.select(b.svc, fl);
            expect(x === undefined ? -1 : a.svc.dests.indexOf(x)).toBe(
              y === undefined ? -1 : b.svc.dests.indexOf(y),
            );
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});
