/**
 * The connection table's two hash indexes (open addressing, backward-shift deletion, issue 13
 * §6) answer like a Map after any sequence of creations, frees, evictions, clock jumps,
 * expiries found by lookups and sweeps: every live entry is found by its "in" key (and
 * connections by their "out" key), templates and connections sharing a key stay apart, expired
 * entries are gone, and keys never created are not found. Small tables and a small key domain,
 * so entries collide in the index and probe runs form, grow and shrink.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clock } from "../../../src/datapath/clock.js";
import {
  ALLOC_FAIL,
  CONN_F_USED,
  ConnTable,
  type ConnTableOwner,
} from "../../../src/datapath/conntrack/table.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { Dest, FwdMethod, Service } from "../../../src/tables/model.js";

interface Entry {
  tpl: boolean;
  p: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
  laddr: number;
  lport: number;
  exp: number;
}

const CADDR = [0xcb007101, 0xcb007102, 0x0a000001, 0xffffffff];
const VADDR = [0x0a000064, 0x0a000065];
const DADDR = [0xc0a80a01, 0xc0a80a02];
const LADDR = [0xc0a80ac8, 0xc0a80ac9];
const TPL_TIMEOUT_S = 100;

const inKey = (e: { p: number; caddr: number; cport: number; vaddr: number; vport: number }, tpl: boolean) =>
  `${tpl ? "T" : "C"}${e.p}/${e.caddr}/${e.cport}/${e.vaddr}/${e.vport}`;
const outKey = (e: Entry) => `${e.p}/${e.daddr}/${e.dport}/${e.laddr}/${e.lport}`;

const op = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("conn" as const),
      p: fc.constantFrom(IPPROTO_TCP, IPPROTO_UDP),
      c: fc.integer({ min: 0, max: CADDR.length - 1 }),
      cport: fc.integer({ min: 0, max: 3 }),
      v: fc.integer({ min: 0, max: 1 }),
      vport: fc.constantFrom(0, 80),
      d: fc.integer({ min: 0, max: 1 }),
      dport: fc.constantFrom(80, 8080),
      fullnat: fc.option(
        fc.record({ l: fc.integer({ min: 0, max: 1 }), lport: fc.integer({ min: 1, max: 4 }) }),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("tpl" as const),
      p: fc.constantFrom(IPPROTO_TCP, IPPROTO_UDP),
      c: fc.integer({ min: 0, max: CADDR.length - 1 }),
      v: fc.integer({ min: 0, max: 1 }),
      vport: fc.constantFrom(0, 80),
      d: fc.integer({ min: 0, max: 1 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("time" as const), ms: fc.integer({ min: 0, max: 400_000 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("sweep" as const), budget: fc.integer({ min: 1, max: 40 }) }),
  },
);

function owner(): { o: ConnTableOwner; dests: Dest[] } {
  const s = new Service(IPPROTO_TCP, VADDR[0]!, 80, "rr");
  s.id = 0;
  s.timeout = TPL_TIMEOUT_S;
  const dests = DADDR.map((a, k) => {
    const d = new Dest(a, 80, 1, FwdMethod.MASQ);
    d.id = k;
    return d;
  });
  return { o: { dests, services: [s], releaseDestIfUnused: () => {} }, dests };
}

describe("conntrack hash indexes", () => {
  it("answer like a Map after any sequence of creations, frees, evictions and expiries", () => {
    fc.assert(
      fc.property(fc.constantFrom(1, 5, 16, 24, 64), fc.array(op, { maxLength: 300 }), (capacity, ops) => {
        clock.nowMs = 1_000_000;
        const { o, dests } = owner();
        const t = new ConnTable(capacity, o);
        const model = new Map<number, Entry>();
        const byIn = new Map<string, number>();
        const byOut = new Map<string, number>();
        const drop = (slot: number) => {
          const e = model.get(slot)!;
          model.delete(slot);
          byIn.delete(inKey(e, e.tpl));
          if (!e.tpl) byOut.delete(outKey(e));
        };
        const add = (slot: number, e: Entry) => {
          // an eviction frees a slot and hands it straight to the new entry
          if (model.has(slot)) drop(slot);
          model.set(slot, e);
          byIn.set(inKey(e, e.tpl), slot);
          if (!e.tpl) byOut.set(outKey(e), slot);
        };
        for (const x of ops) {
          const now = clock.nowMs;
          if (x.kind === "conn") {
            const fn = x.fullnat;
            const e: Entry = {
              tpl: false,
              p: x.p,
              caddr: CADDR[x.c]!,
              cport: x.cport,
              vaddr: VADDR[x.v]!,
              vport: x.vport,
              daddr: DADDR[x.d]!,
              dport: x.dport,
              laddr: fn ? LADDR[fn.l]! : CADDR[x.c]!,
              lport: fn ? fn.lport : x.cport,
              exp: now + (x.p === IPPROTO_TCP ? t.tcpTimeoutMs[0]! : t.udpTimeoutMs),
            };
            // the engine looks up before it creates: one entry per key in either direction (the
            // model holds live entries only: expired ones were dropped by the lookups below)
            if (byIn.has(inKey(e, false)) || byOut.has(outKey(e))) continue;
            const s = t.create(
              x.p,
              e.caddr,
              e.cport,
              e.vaddr,
              e.vport,
              e.daddr,
              e.dport,
              e.laddr,
              e.lport,
              0,
              false,
              dests[x.d]!,
              0,
              -1,
            );
            expect(s).not.toBe(ALLOC_FAIL); // nothing here is unevictable
            add(s, e);
          } else if (x.kind === "tpl") {
            const e: Entry = {
              tpl: true,
              p: x.p,
              caddr: CADDR[x.c]!,
              cport: 0,
              vaddr: VADDR[x.v]!,
              vport: x.vport,
              daddr: DADDR[x.d]!,
              dport: 80,
              laddr: CADDR[x.c]!,
              lport: 0,
              exp: now + TPL_TIMEOUT_S * 1000,
            };
            if (byIn.has(inKey(e, true))) continue;
            const s = t.createTemplate(x.p, e.caddr, e.vaddr, e.vport, dests[x.d]!, 80, 0, TPL_TIMEOUT_S);
            expect(s).not.toBe(ALLOC_FAIL);
            add(s, e);
          } else if (x.kind === "free") {
            if (model.size === 0) continue;
            const slots = [...model.keys()];
            const s = slots[x.pick % slots.length]!;
            t.free(s);
            drop(s);
          } else if (x.kind === "time") {
            clock.nowMs += x.ms;
          } else {
            t.sweep(x.budget);
            for (const [s, e] of [...model]) {
              if ((t.flags[s]! & CONN_F_USED) !== 0) continue;
              expect(e.exp).toBeLessThanOrEqual(clock.nowMs); // only expired entries are swept
              drop(s);
            }
          }
          expect(t.count).toBe(model.size);
          // every entry of the model is found where it should be, unless expired (then the
          // lookup frees it, as the model does)
          for (const [s, e] of [...model]) {
            const expired = e.exp <= clock.nowMs;
            if (e.tpl) {
              expect(t.lookupTemplate(e.p, e.caddr, e.vaddr, e.vport)).toBe(expired ? -1 : s);
            } else {
              expect(t.lookupOut(e.p, e.daddr, e.dport, e.laddr, e.lport)).toBe(expired ? -1 : s);
              if (!expired) expect(t.lookupIn(e.p, e.caddr, e.cport, e.vaddr, e.vport)).toBe(s);
            }
            if (expired) drop(s);
          }
          expect(t.count).toBe(model.size);
          // keys nobody holds are not found, in either direction
          for (const p of [IPPROTO_TCP, IPPROTO_UDP])
            for (const c of CADDR)
              for (const v of VADDR)
                for (const vport of [0, 80]) {
                  for (let cport = 0; cport <= 3; cport++) {
                    const want = byIn.get(inKey({ p, caddr: c, cport, vaddr: v, vport }, false)) ?? -1;
                    expect(t.lookupIn(p, c, cport, v, vport)).toBe(want);
                  }
                  const wantT = byIn.get(inKey({ p, caddr: c, cport: 0, vaddr: v, vport }, true)) ?? -1;
                  expect(t.lookupTemplate(p, c, v, vport)).toBe(wantT);
                }
          for (const p of [IPPROTO_TCP, IPPROTO_UDP])
            for (const d of DADDR)
              for (const l of [...CADDR, ...LADDR])
                for (let lport = 0; lport <= 4; lport++) {
                  const want = byOut.get(`${p}/${d}/80/${l}/${lport}`) ?? -1;
                  expect(t.lookupOut(p, d, 80, l, lport)).toBe(want);
                }
        }
      }),
      { numRuns: 150 },
    );
  });
});
