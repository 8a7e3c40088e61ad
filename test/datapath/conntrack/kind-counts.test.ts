/**
 * The connection table keeps its connections by kind (TCP state, UDP, ICMP) and its templates by
 * state as entries are made, change state and go (ConnTable.kindCounts / templateCounts: what
 * /metrics reports without a walk). After any sequence of creations, TCP transitions, synced
 * states, frees, expiries, sweeps, evictions, drop_entry, dest flushes and template
 * invalidations, the counts equal those of a walk over every used slot.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clock } from "../../../src/datapath/clock.js";
import {
  DIR_INPUT,
  DIR_OUTPUT,
  TCP_STATE_COUNT,
  TEMPLATE_STATE_ASSURED,
} from "../../../src/datapath/conntrack/states.js";
import {
  CONN_F_TEMPLATE,
  CONN_F_USED,
  ConnTable,
  type ConnTableOwner,
} from "../../../src/datapath/conntrack/table.js";
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { Dest, FwdMethod, Service } from "../../../src/tables/model.js";

function owner(): { o: ConnTableOwner; dests: Dest[] } {
  const s = new Service(IPPROTO_TCP, 0x0a000064, 80, "rr");
  s.id = 0;
  s.timeout = 60;
  const dests = [0xc0a80a01, 0xc0a80a02].map((a, k) => {
    const d = new Dest(a, 80, 1, FwdMethod.MASQ);
    d.id = k;
    return d;
  });
  return { o: { dests, services: [s], releaseDestIfUnused: () => {} }, dests };
}

/** The counts by a walk of every used slot, in kindCounts' then templateCounts' layout. */
function walk(t: ConnTable): number[] {
  const out = new Array<number>(TCP_STATE_COUNT + 4).fill(0);
  for (let i = 0; i < t.capacity; i++) {
    const f = t.flags[i]!;
    if ((f & CONN_F_USED) === 0) continue;
    if ((f & CONN_F_TEMPLATE) !== 0)
      out[TCP_STATE_COUNT + (t.state[i] === TEMPLATE_STATE_ASSURED ? 3 : 2)]!++;
    else if (t.proto[i] === IPPROTO_TCP) out[t.state[i]!]!++;
    else if (t.proto[i] === IPPROTO_UDP) out[TCP_STATE_COUNT]!++;
    else if (t.proto[i] === IPPROTO_ICMP) out[TCP_STATE_COUNT + 1]!++;
  }
  return out;
}

const pick = fc.nat();
const op = fc.oneof(
  fc.record({
    kind: fc.constant("conn" as const),
    p: fc.constantFrom(IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP),
    cport: fc.integer({ min: 1, max: 40 }),
    d: fc.integer({ min: 0, max: 1 }),
    tpl: fc.option(pick),
  }),
  fc.record({
    kind: fc.constant("tpl" as const),
    c: fc.integer({ min: 1, max: 6 }),
    d: fc.integer({ min: 0, max: 1 }),
  }),
  fc.record({
    kind: fc.constant("tcp" as const),
    pick,
    dir: fc.constantFrom(DIR_INPUT, DIR_OUTPUT),
    // FIN, SYN, RST, ACK and their mixes
    flags: fc.integer({ min: 0, max: 0x1f }),
  }),
  fc.record({
    kind: fc.constant("synced" as const),
    pick,
    state: fc.integer({ min: 0, max: TCP_STATE_COUNT - 1 }),
    inactive: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("free" as const), pick }),
  fc.record({ kind: fc.constant("time" as const), ms: fc.integer({ min: 0, max: 400_000 }) }),
  fc.record({ kind: fc.constant("sweep" as const), budget: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("lookup" as const), pick }),
  fc.record({
    kind: fc.constant("dropEntry" as const),
    seed: fc.double({ min: 0, max: 0.999, noNaN: true }),
  }),
  fc.record({ kind: fc.constant("flushDest" as const), d: fc.integer({ min: 0, max: 1 }) }),
  fc.constant({ kind: "evictEmbryonic" as const }),
  fc.record({ kind: fc.constant("invalidate" as const), pick }),
  fc.record({ kind: fc.constant("secure" as const), on: fc.boolean() }),
);

describe("connection counts by kind", () => {
  it("equal a walk of the table after any sequence of table operations", () => {
    fc.assert(
      fc.property(fc.constantFrom(4, 16, 48), fc.array(op, { maxLength: 250 }), (capacity, ops) => {
        clock.nowMs = 1_000_000;
        const { o, dests } = owner();
        const t = new ConnTable(capacity, o);
        const used = (want: "conn" | "tpl" | "any", n: number): number => {
          const slots: number[] = [];
          for (let i = 0; i < t.capacity; i++) {
            const f = t.flags[i]!;
            if ((f & CONN_F_USED) === 0) continue;
            const tpl = (f & CONN_F_TEMPLATE) !== 0;
            if (want === "any" || (want === "tpl") === tpl) slots.push(i);
          }
          return slots.length === 0 ? -1 : slots[n % slots.length]!;
        };
        let seq = 0;
        for (const x of ops) {
          switch (x.kind) {
            case "conn": {
              const tpl = x.tpl === null ? -1 : used("tpl", x.tpl);
              // distinct keys: the engine looks up before it creates
              const c = 0x0b000000 + ++seq;
              t.create(
                x.p,
                c,
                x.cport,
                0x0a000064,
                80,
                0xc0a80a01 + x.d,
                80,
                c,
                x.cport,
                0,
                false,
                dests[x.d]!,
                0,
                tpl,
              );
              break;
            }
            case "tpl":
              if (t.lookupTemplate(IPPROTO_TCP, 0x0c000000 + x.c, 0x0a000064, 80) < 0)
                t.createTemplate(IPPROTO_TCP, 0x0c000000 + x.c, 0x0a000064, 80, dests[x.d]!, 80, 0, 60);
              break;
            case "tcp": {
              const i = used("conn", x.pick);
              if (i >= 0 && t.proto[i] === IPPROTO_TCP) t.tcpTransition(i, x.dir, x.flags);
              break;
            }
            case "synced": {
              const i = used("any", x.pick);
              if (i >= 0 && t.proto[i] === IPPROTO_TCP)
                t.setSynced(i, x.state, x.inactive, clock.nowMs + 5000);
              break;
            }
            case "free": {
              const i = used("any", x.pick);
              if (i >= 0) t.free(i);
              break;
            }
            case "time":
              clock.nowMs += x.ms;
              break;
            case "sweep":
              t.sweep(x.budget);
              break;
            case "lookup": {
              // a lookup that finds an expired entry frees it
              const i = used("conn", x.pick);
              if (i >= 0) t.lookupIn(t.proto[i]!, t.caddr[i]!, t.cport[i]!, t.vaddr[i]!, t.vport[i]!);
              break;
            }
            case "dropEntry":
              t.randomDropEntry(() => x.seed);
              break;
            case "flushDest":
              t.flushDest(x.d);
              break;
            case "evictEmbryonic":
              t.evictEmbryonic();
              break;
            case "invalidate": {
              const i = used("tpl", x.pick);
              if (i >= 0) t.invalidateTemplate(i);
              break;
            }
            case "secure":
              t.setSecureTcp(x.on);
              break;
          }
          const want = walk(t);
          expect([...t.kindCounts, ...t.templateCounts]).toEqual(want);
          expect(want.reduce((a, b) => a + b, 0)).toBe(t.count);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("count a connection's life: SYN_RECV, ESTABLISHED with its template ASSURED, then gone", () => {
    clock.nowMs = 1_000_000;
    const { o, dests } = owner();
    const t = new ConnTable(8, o);
    const tpl = t.createTemplate(IPPROTO_TCP, 0x0c000001, 0x0a000064, 80, dests[0]!, 80, 0, 60);
    const c = t.create(
      IPPROTO_TCP,
      0x0c000001,
      1234,
      0x0a000064,
      80,
      0xc0a80a01,
      80,
      0x0c000001,
      1234,
      0,
      false,
      dests[0]!,
      0,
      tpl,
    );
    const u = t.create(
      IPPROTO_UDP,
      0x0c000001,
      53,
      0x0a000064,
      53,
      0xc0a80a01,
      53,
      0x0c000001,
      53,
      0,
      false,
      dests[0]!,
      0,
      -1,
    );
    t.tcpTransition(c, DIR_INPUT, 0x02); // SYN
    expect(t.kindCounts[3]).toBe(1); // SYN_RECV
    expect(t.templateCounts[0]).toBe(1);
    t.tcpTransition(c, DIR_INPUT, 0x10); // ACK
    expect(t.kindCounts[1]).toBe(1); // ESTABLISHED
    expect(t.kindCounts[3]).toBe(0);
    expect([...t.templateCounts]).toEqual([0, 1]);
    expect(t.kindCounts[TCP_STATE_COUNT]).toBe(1);
    t.free(c);
    t.free(u);
    t.free(tpl);
    expect([...t.kindCounts, ...t.templateCounts].every((v) => v === 0)).toBe(true);
  });
});
