/**
 * AF_XDP worker steering and handoff (src/datapath/workers/handoff.ts): the JavaScript steering
 * rule picks what the fanout program's reference picks, for random frames and tables (VLAN tag
 * or not); the address table answers like a Map; a ring between two threads' views of the
 * same shared memory carries frames and their links in order, refuses when full and wakes a
 * sleeping consumer; a SteeredLink hands exactly the other worker's frames over and the engine
 * skips them; HandoffLink presents them as arrived on their own links.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Director } from "../../../src/datapath/director.js";
import { Engine } from "../../../src/datapath/engine.js";
import { FrameBatch, LINK_HANDED_OFF } from "../../../src/datapath/io/batch.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import { eth } from "../../../src/datapath/packet/build.js";
import {
  HandoffLink,
  HandoffRing,
  newHandoffRing,
  SteeredLink,
  SteerRoles,
  steerOwner,
} from "../../../src/datapath/workers/handoff.js";
import { steerReference } from "../../../src/datapath/workers/steer.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";

const addr = fc.integer({ min: 0x01000000, max: 0xdfffffff });
const MAC = "02:00:00:00:00:01";

function frame(f: {
  proto: number;
  fragment: boolean;
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  vlan: boolean;
}): Uint8Array {
  let b = eth({ src: "02:00:00:00:00:02", dst: MAC });
  if (f.vlan) b = b.vlan(5);
  const ip = b.ipv4({ src: f.saddr >>> 0, dst: f.daddr >>> 0, ...(f.fragment ? { fragOff: 8 } : {}) });
  const l4 =
    f.proto === 6
      ? ip.tcp({ sport: f.sport, dport: f.dport })
      : f.proto === 17
        ? ip.udp({ sport: f.sport, dport: f.dport })
        : ip.icmp({ type: 8, id: f.sport });
  return l4.payload("data").build();
}

describe("steerOwner", () => {
  it("picks the worker the fanout program's reference picks", () => {
    fc.assert(
      fc.property(
        fc.record({
          laddrs: fc.array(addr, { maxLength: 4 }),
          vips: fc.array(addr, { maxLength: 6 }),
          natDests: fc.array(addr, { maxLength: 6 }),
        }),
        fc.integer({ min: 1, max: 8 }),
        fc.record({
          proto: fc.constantFrom(6, 17, 1),
          fragment: fc.boolean(),
          sport: fc.integer({ min: 0, max: 65535 }),
          dport: fc.integer({ min: 0, max: 65535 }),
          vlan: fc.boolean(),
          which: fc.integer({ min: 0, max: 3 }),
          saddr: addr,
          daddr: addr,
        }),
        (t, n, r) => {
          // make the frame hit a table entry often
          const pick = (a: number[], x: number) => (a.length > 0 ? a[x % a.length]! : x);
          const daddr =
            r.which === 0 ? pick(t.laddrs, r.daddr) : r.which === 1 ? pick(t.vips, r.daddr) : r.daddr;
          const saddr = r.which === 2 ? pick(t.natDests, r.saddr) : r.saddr;
          const f = { ...r, saddr, daddr };
          const roles = new SteerRoles();
          roles.set(t.laddrs, t.vips, t.natDests);
          const b = frame(f);
          const want = steerReference(t, n, { ...f, ipv4: true });
          expect(steerOwner(b, 0, b.length, roles, n)).toBe(want);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("keeps a NAT request and its reply, and a FULLNAT reply by local port, on one worker", () => {
    const vip = ipToU32("10.0.0.100");
    const rs = ipToU32("192.168.10.11");
    const laddr = ipToU32("192.168.10.200");
    const roles = new SteerRoles();
    roles.set([laddr], [vip], [rs]);
    const seen = new Set<number>();
    for (let p = 1024; p < 1088; p++) {
      const c = ipToU32("10.0.0.5");
      const req = frame({
        proto: 6,
        fragment: false,
        saddr: c,
        daddr: vip,
        sport: p,
        dport: 80,
        vlan: false,
      });
      const rep = frame({ proto: 6, fragment: false, saddr: rs, daddr: c, sport: 80, dport: p, vlan: false });
      const w = steerOwner(req, 0, req.length, roles, 2);
      seen.add(w);
      expect(steerOwner(rep, 0, rep.length, roles, 2)).toBe(w);
      const fn = frame({
        proto: 6,
        fragment: false,
        saddr: rs,
        daddr: laddr,
        sport: 80,
        dport: p,
        vlan: false,
      });
      expect(steerOwner(fn, 0, fn.length, roles, 2)).toBe(p % 2);
    }
    expect([...seen].sort()).toEqual([0, 1]); // 64 client ports spread over both workers
  });

  it("sends ARP, runts and non-IPv4 to worker 0", () => {
    const roles = new SteerRoles();
    const arp = eth({ dst: MAC })
      .arp({ op: 1, sha: "02:00:00:00:00:02", spa: "10.0.0.1", tpa: "10.0.0.2" })
      .build();
    expect(steerOwner(arp, 0, arp.length, roles, 4)).toBe(0);
    expect(steerOwner(new Uint8Array(20), 0, 20, roles, 4)).toBe(0);
  });
});

describe("SteerRoles", () => {
  it("answers like a Map of role bits", () => {
    fc.assert(
      fc.property(
        fc.array(addr, { maxLength: 40 }),
        fc.array(addr, { maxLength: 40 }),
        fc.array(addr),
        (l, v, d) => {
          const roles = new SteerRoles();
          roles.set(l, v, d);
          const m = new Map<number, number>();
          for (const [a, bit] of [
            [l, 1],
            [v, 2],
            [d, 4],
          ] as const)
            for (const x of a) m.set(x, (m.get(x) ?? 0) | bit);
          for (const x of [...l, ...v, ...d]) expect(roles.get(x)).toBe(m.get(x));
          for (const x of [0x7f000001, 0xe0000001, 0x01010101]) expect(roles.get(x)).toBe(m.get(x) ?? 0);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("HandoffRing", () => {
  it("carries frames and their links in order through two views of the memory, and refuses when full", () => {
    const spec = newHandoffRing(8, 2048);
    const prod = new HandoffRing(spec);
    const cons = new HandoffRing(spec);
    const frames = Array.from({ length: 8 }, (_, i) => new Uint8Array(60 + i).fill(i + 1));
    for (const [i, f] of frames.entries()) expect(prod.put(f, 0, f.length, i % 3)).toBe(1);
    expect(prod.put(frames[0]!, 0, 60, 0)).toBe(0); // full
    expect(cons.pending()).toBe(0); // nothing published yet
    prod.publish();
    expect(cons.pending()).toBe(8);
    const b = new FrameBatch(5);
    expect(cons.take(b)).toBe(5);
    expect(cons.take(b)).toBe(0); // batch full
    for (let i = 0; i < 5; i++) {
      expect(b.frame(i)).toEqual(frames[i]);
      expect(b.link[i]).toBe(i % 3);
    }
    expect(prod.put(frames[0]!, 0, 60, 2)).toBe(1); // room again
    prod.publish();
    const b2 = new FrameBatch(16);
    expect(cons.take(b2)).toBe(4);
    expect(b2.frame(3)).toEqual(frames[0]);
    expect(b2.link[3]).toBe(2);
    // no longer than a batch slot of the ring's size holds behind its headroom (2048 - 64)
    expect(prod.put(new Uint8Array(1985), 0, 1985, 0)).toBe(0);
    expect(prod.put(new Uint8Array(1984).fill(9), 0, 1984, 0)).toBe(1);
    prod.publish();
    // a consumer batch with smaller slots drops it and counts it
    const small = new FrameBatch(4, 256);
    expect(cons.take(small)).toBe(0);
    expect(cons.tooLong).toBe(1);
    expect(cons.pending()).toBe(0);
  });

  it("wakes a consumer that sleeps on the sequence number, only when the ring was empty", async () => {
    const spec = newHandoffRing(16, 2048);
    const prod = new HandoffRing(spec);
    const cons = new HandoffRing(spec);
    const s0 = cons.seq();
    prod.put(new Uint8Array(64), 0, 64, 0);
    prod.publish();
    expect(cons.seq()).toBe(s0 + 1); // was empty: bumped
    prod.put(new Uint8Array(64), 0, 64, 0);
    prod.publish();
    expect(cons.seq()).toBe(s0 + 1); // not drained yet: no wake-up needed
    cons.take(new FrameBatch(16));
    const link = new HandoffLink([cons]);
    let calls = 0;
    const b = new FrameBatch(16);
    link.onReadable(() => {
      calls++;
      b.reset();
      link.recv(b, 9);
    });
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toBe(0);
    prod.put(new Uint8Array(70).fill(7), 0, 70, 1);
    prod.publish();
    for (let i = 0; i < 100 && calls === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(calls).toBe(1);
    expect(b.count).toBe(1);
    expect(b.link[0]).toBe(1);
    expect(link.wakeups).toBe(1);
    link.close();
  });
});

describe("SteeredLink and HandoffLink", () => {
  it("hand the other worker's frames over; the engine skips them; the owner processes them as its link's", () => {
    const vip = ipToU32("10.0.0.100");
    const roles = new SteerRoles();
    roles.set([], [vip], []);
    const spec01 = newHandoffRing(64, 2048);
    const mem = new MemoryLink("eth0", macToBytes(MAC));
    const steered = new SteeredLink(mem, 0, [null, new HandoffRing(spec01)], roles);
    const e = new Engine({ maxConns: 1024 });
    e.net.addLink("eth0", mem.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], 1500);
    const d = new Director(e);
    d.attach(steered);
    const owners: number[] = [];
    for (let p = 2000; p < 2040; p++) {
      const f = frame({
        proto: 17,
        fragment: false,
        saddr: ipToU32("10.0.0.5"),
        daddr: vip,
        sport: p,
        dport: 53,
        vlan: false,
      });
      owners.push(steerOwner(f, 0, f.length, roles, 2));
      mem.inject(f);
    }
    const mine = owners.filter((w) => w === 0).length;
    expect(mine).toBeGreaterThan(0);
    expect(mine).toBeLessThan(40);
    const dropsBefore = e.drops.reduce((a, b) => a + b, 0);
    expect(d.pump(0)).toBe(40);
    expect(steered.handedOff).toBe(40 - mine);
    // no service on the VIP: worker 0's frames are dropped (counted); the handed-off ones are not seen
    expect(e.drops.reduce((a, b) => a + b, 0) - dropsBefore).toBe(mine);
    // worker 1's side
    const h = new HandoffLink([new HandoffRing(spec01)]);
    const b = new FrameBatch(256);
    expect(h.recv(b, 1)).toBe(40 - mine);
    for (let i = 0; i < b.count; i++) {
      expect(b.link[i]).toBe(0); // arrived on link 0
      expect(steerOwner(b.buf, b.off[i]!, b.len[i]!, roles, 2)).toBe(1);
    }
    expect(LINK_HANDED_OFF).toBe(-1);
  });
});
