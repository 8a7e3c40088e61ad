/**
 * The service table's journal and replica (src/tables/journal.ts) and the FULLNAT local-port
 * slices (src/tables/laddr.ts) that data-path workers use (docs/workers.md).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { getScheduler } from "../../src/datapath/schedulers/index.js";
import { IPPROTO_TCP } from "../../src/lib/proto.js";
import { snapshotOps, type TableOp, TableReplica } from "../../src/tables/journal.js";
import { LocalAddrPool, LPORT_MAX, LPORT_MIN } from "../../src/tables/laddr.js";
import { FwdMethod } from "../../src/tables/model.js";
import { ServiceTable } from "../../src/tables/services.js";

/** What must match between master and replica: services, dests in list order, their settings. */
function shape(t: ServiceTable): unknown {
  return t
    .list()
    .map((s) => ({
      key: [s.proto, s.addr, s.port, s.fwmark],
      sched: s.schedName,
      flags: s.flags,
      timeout: s.timeout,
      laddrs: s.laddrs?.list() ?? [],
      dests: s.dests.map((d) => [d.addr, d.port, d.weight, d.lastWeight, d.fwd, d.uThreshold, d.lThreshold]),
      counters: [s.conns, s.inPkts],
    }))
    .sort((a, b) => (a.key.join() < b.key.join() ? -1 : 1));
}

const SCHEDS = ["rr", "wrr", "lc", "sh", "mh"];

/** One random control-plane step on `t` (errors, as the kernel's refusals, are ignored). */
function step(t: ServiceTable, r: number[]): void {
  const [op, a, b, c] = r as [number, number, number, number];
  const key = { proto: IPPROTO_TCP, addr: 0x0a000064 + (a % 3), port: 80 };
  const dest = {
    addr: 0xc0a80a01 + (b % 5),
    port: 80,
    weight: c % 4,
    fwd: c % 7 === 0 ? FwdMethod.FULLNAT : FwdMethod.MASQ,
    uThreshold: 0,
    lThreshold: 0,
  };
  try {
    switch (op % 9) {
      case 0:
        t.addService(key, { sched: SCHEDS[b % SCHEDS.length]!, flags: 0, timeout: 0, netmask: 0xffffffff });
        break;
      case 1:
        t.editService(key, { sched: SCHEDS[c % SCHEDS.length]!, flags: 0, timeout: 0, netmask: 0xffffffff });
        break;
      case 2:
        t.deleteService(key);
        break;
      case 3:
      case 4:
        t.addDest(key, dest);
        break;
      case 5:
        t.editDest(key, dest);
        break;
      case 6:
        t.deleteDest(key, dest.addr, dest.port);
        break;
      case 7:
        if (c % 2 === 0) t.addLaddr(key, 0xc0a80ac8 + (b % 2));
        else t.deleteLaddr(key, 0xc0a80ac8 + (b % 2));
        break;
      default:
        if (c % 5 === 0) t.clear();
        else t.zero();
    }
  } catch {
    // refused on the master: nothing journaled
  }
}

describe("table journal and replica", () => {
  it("a replica applying the journal, and one built from a snapshot, match the master", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.nat(1000), { minLength: 4, maxLength: 4 }), { maxLength: 80 }),
        (steps) => {
          const master = new ServiceTable(getScheduler);
          const log: TableOp[] = [];
          master.journal = (o) => log.push(structuredClone(o));
          const replica = new TableReplica(new ServiceTable(getScheduler));
          for (const s of steps) {
            step(master, s);
            for (const o of log.splice(0)) replica.apply(o);
            expect(shape(replica.table)).toEqual(shape(master));
          }
          expect(replica.failures).toBe(0);
          // the replica maps the master's ids to its own objects
          for (const s of master.list()) {
            expect(replica.svcs[s.id]?.addr).toBe(s.addr);
            for (const d of s.dests) expect(replica.dests[d.id]?.addr).toBe(d.addr);
          }
          const late = new TableReplica(new ServiceTable(getScheduler));
          for (const o of snapshotOps(master)) late.apply(structuredClone(o));
          expect(late.failures).toBe(0);
          expect(shape(late.table)).toEqual(shape(master));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("a replica does not throw on an op it refuses: it counts it", () => {
    const r = new TableReplica(new ServiceTable(getScheduler));
    r.apply({ op: "deleteService", key: { proto: IPPROTO_TCP, addr: 0x0a000001, port: 80 } });
    expect(r.failures).toBe(1);
    expect(r.lastError).toMatch(/deleteService/);
  });
});

describe("FULLNAT local-port slices", () => {
  it("slice i of n allocates only ports p with p % n === i, all of them, then refuses", () => {
    for (const n of [1, 2, 3, 4]) {
      for (let i = 0; i < n; i++) {
        const pool = new LocalAddrPool(i, n);
        pool.add(0xc0a80ac8);
        const seen = new Set<number>();
        let bad = 0;
        while (pool.alloc(0)) {
          const p = pool.allocPort;
          if (p % n !== i || p < LPORT_MIN || p > LPORT_MAX || seen.has(p)) bad++;
          seen.add(p);
        }
        expect(bad).toBe(0);
        let want = 0;
        for (let p = LPORT_MIN; p <= LPORT_MAX; p++) if (p % n === i) want++;
        expect(seen.size).toBe(want);
        expect(pool.portsPerAddr).toBe(want);
        expect(pool.exhausted).toBe(1);
        // a released port comes back
        pool.release(0xc0a80ac8, [...seen][5]!, 0);
        expect(pool.alloc(0)).toBe(true);
        expect(pool.allocPort).toBe([...seen][5]);
      }
    }
  });

  it("refuses a slice outside 0..count-1", () => {
    expect(() => new LocalAddrPool(2, 2)).toThrow(RangeError);
    expect(() => new LocalAddrPool(0, 0)).toThrow(RangeError);
  });

  it("a table's pools take its slice", () => {
    const t = new ServiceTable(getScheduler);
    t.laddrSlice = { index: 1, count: 2 };
    const key = { proto: IPPROTO_TCP, addr: 0x0a000064, port: 80 };
    t.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    t.addLaddr(key, 0xc0a80ac8);
    const pool = t.find(key)!.laddrs!;
    for (let k = 0; k < 100; k++) {
      expect(pool.alloc(1)).toBe(true);
      expect(pool.allocPort % 2).toBe(1);
    }
  });
});
