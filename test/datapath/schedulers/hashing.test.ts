import { describe, expect, it } from "vitest";
import { hash32 } from "../../../src/datapath/schedulers/common.js";
import { createDhModule, type DhScheduler, dhScheduler } from "../../../src/datapath/schedulers/dh.js";
import {
  createMhModule,
  type MhScheduler,
  mhScheduler,
  mhTabBits,
} from "../../../src/datapath/schedulers/mh.js";
import { createShModule, type ShScheduler, shScheduler } from "../../../src/datapath/schedulers/sh.js";
import {
  hsiphash1u32,
  hsiphashBytes,
  SipKey,
  sipHashBytes,
} from "../../../src/datapath/schedulers/siphash.js";
import { IPPROTO_ICMP } from "../../../src/lib/proto.js";
import { DEST_F_OVERLOAD, SVC_F_SCHED1, SVC_F_SCHED2 } from "../../../src/tables/model.js";
import { addDest, bound, delDest, flow, ip, mkDest, named, setWeight } from "./helpers.js";

// hash_32(v, 8) = top 8 bits of v * 0x61C88647 (mod 2^32); the old formula (v * 2654435761) & 255.
// Values below worked out by hand (bignum arithmetic), not with the code under test:
//   203.0.113.7  = 0xcb007107: hash_32 124, old 215; +1000 (sh-port): hash_32 116, old 63
//   203.0.113.8  = 0xcb007108: hash_32 222, old 136; +1000: hash_32 213
//   198.51.100.1 = 0xc6336401: hash_32  96, old 177
//   10.1.2.3     = 0x0a010203: hash_32   2, old  19
//   192.168.1.1  = 0xc0a80101: hash_32 136, old 177; +1000: hash_32 128

describe("hash_32", () => {
  it("matches hand-computed values", () => {
    expect(hash32(ip("203.0.113.7"), 8)).toBe(124);
    expect(hash32(ip("198.51.100.1"), 8)).toBe(96);
    expect(hash32(ip("10.1.2.3"), 8)).toBe(2);
  });
});

describe("dh (ip_vs_dh.c)", () => {
  it("256 buckets, one per dest in list order, weights ignored", () => {
    const { d } = named({ A: { weight: 5 }, B: { weight: 1 }, C: { weight: 1 } });
    const { sched } = bound(dhScheduler, [d.A!, d.B!, d.C!]);
    const dh = sched as DhScheduler;
    expect(dh.buckets.length).toBe(256);
    for (let i = 0; i < 256; i++) expect(dh.buckets[i]).toBe(i % 3);
  });

  it("hashes the destination address to a bucket", () => {
    const { d, names } = named({ A: {}, B: {}, C: {} });
    const { svc, sched } = bound(dhScheduler, [d.A!, d.B!, d.C!]);
    const to = (daddr: string) => names.get(sched.select(svc, flow("1.2.3.4", 1, daddr))!);
    expect(to("203.0.113.7")).toBe("B"); // bucket 124 → 124 % 3 = 1
    expect(to("198.51.100.1")).toBe("A"); // 96 % 3 = 0
    expect(to("10.1.2.3")).toBe("C"); // 2
    expect(to("192.168.1.1")).toBe("B"); // 136 % 3 = 1
    // The source does not matter.
    expect(names.get(sched.select(svc, flow("9.9.9.9", 7, "10.1.2.3"))!)).toBe("C");
    const old = bound(createDhModule({ legacyHash: true }), [d.A!, d.B!, d.C!]);
    expect(names.get(old.sched.select(old.svc, flow("1.2.3.4", 1, "203.0.113.7"))!)).toBe("C"); // 215 % 3
  });

  it("no fallback: an unusable bucket dest gives no dest", () => {
    const { d } = named({ A: {}, B: {}, C: {} });
    const { svc, sched } = bound(dhScheduler, [d.A!, d.B!, d.C!]);
    d.B!.flags |= DEST_F_OVERLOAD;
    expect(sched.select(svc, flow("1.2.3.4", 1, "203.0.113.7"))).toBeUndefined();
    expect(sched.select(svc, flow("1.2.3.4", 1, "198.51.100.1"))).toBe(d.A);
    d.A!.weight = 0;
    expect(sched.select(svc, flow("1.2.3.4", 1, "198.51.100.1"))).toBeUndefined();
    expect(bound(dhScheduler, []).sched.select(svc, flow("1.2.3.4"))).toBeUndefined();
  });
});

describe("sh (ip_vs_sh.c)", () => {
  // A(3) B(1) C(2): buckets A A A B C C, repeating: bucket b → "AAABCC"[b % 6].
  function abc() {
    return named({ A: { weight: 3 }, B: { weight: 1 }, C: { weight: 2 } });
  }

  it("each dest fills `weight` consecutive buckets, wrapping round the list", () => {
    const { d } = abc();
    const sh = bound(shScheduler, [d.A!, d.B!, d.C!]).sched as ShScheduler;
    const letters = "ABC";
    let s = "";
    for (let i = 0; i < 256; i++) s += letters[sh.buckets[i]!];
    expect(s).toBe("AAABCC".repeat(43).slice(0, 256));
    // A weight-0 dest still takes one bucket.
    const z = named({ A: { weight: 0 }, B: { weight: 2 } });
    const sz = bound(shScheduler, [z.d.A!, z.d.B!]).sched as ShScheduler;
    expect(Array.from(sz.buckets.slice(0, 6))).toEqual([0, 1, 1, 0, 1, 1]);
    // Weights summing past 256: the last dests get nothing.
    const big = named({ A: { weight: 200 }, B: { weight: 100 }, C: { weight: 5 } });
    const sb = bound(shScheduler, [big.d.A!, big.d.B!, big.d.C!]).sched as ShScheduler;
    expect(sb.buckets.filter((x) => x === 0).length).toBe(200);
    expect(sb.buckets.filter((x) => x === 1).length).toBe(56);
    expect(sb.buckets.filter((x) => x === 2).length).toBe(0);
  });

  it("hashes the source address (hash_32), and the source port with sh-port", () => {
    const { d, names } = abc();
    const { svc, sched } = bound(shScheduler, [d.A!, d.B!, d.C!]);
    const from = (saddr: string, sport = 1000) => names.get(sched.select(svc, flow(saddr, sport))!);
    expect(from("203.0.113.7")).toBe("C"); // 124 % 6 = 4
    expect(from("203.0.113.8")).toBe("A"); // 222 % 6 = 0
    expect(from("198.51.100.1")).toBe("A"); // 96 % 6 = 0
    expect(from("203.0.113.7", 5)).toBe("C"); // port ignored without sh-port
    svc.flags = SVC_F_SCHED2; // sh-port
    expect(from("203.0.113.7")).toBe("A"); // 116 % 6 = 2
    expect(from("203.0.113.8")).toBe("B"); // 213 % 6 = 3
    expect(from("192.168.1.1")).toBe("A"); // 128 % 6 = 2
    // Only TCP, UDP and SCTP have ports.
    const icmp = { ...flow("203.0.113.7", 1000), proto: IPPROTO_ICMP };
    expect(names.get(sched.select(svc, icmp)!)).toBe("C");
  });

  it("legacy hash ((v * 2654435761) & 255) as older kernels", () => {
    const { d, names } = abc();
    const { svc, sched } = bound(createShModule({ legacyHash: true }), [d.A!, d.B!, d.C!]);
    expect(names.get(sched.select(svc, flow("203.0.113.8"))!)).toBe("C"); // 136 % 6 = 4
    expect(names.get(sched.select(svc, flow("198.51.100.1"))!)).toBe("B"); // 177 % 6 = 3
    svc.flags = SVC_F_SCHED2;
    expect(names.get(sched.select(svc, flow("203.0.113.7", 1000))!)).toBe("B"); // 63 % 6 = 3
  });

  it("unusable dest: dropped without sh-fallback, the kernel's probe order with it", () => {
    const { d, names } = abc();
    const { svc, sched } = bound(shScheduler, [d.A!, d.B!, d.C!]);
    d.A!.flags |= DEST_F_OVERLOAD;
    const f = flow("203.0.113.8"); // bucket 222 → A
    expect(sched.select(svc, f)).toBeUndefined();
    svc.flags = SVC_F_SCHED1; // sh-fallback
    // offset 0: roffset 222, bucket (222 + 222) & 255 = 188 → A (188 % 6 = 2), unusable;
    // offset 1: roffset 223, bucket 189 → 189 % 6 = 3 → B.
    expect(names.get(sched.select(svc, f)!)).toBe("B");
    d.B!.weight = 0; // set without the update hook, so the table stays; the probe checks it live
    // offset 2: bucket 190 → C.
    expect(names.get(sched.select(svc, f)!)).toBe("C");
    d.C!.flags |= DEST_F_OVERLOAD;
    expect(sched.select(svc, f)).toBeUndefined();
  });

  it("weight changes rebuild the table (a quiesced dest keeps one bucket)", () => {
    const { d } = abc();
    const { svc, sched } = bound(shScheduler, [d.A!, d.B!, d.C!]);
    setWeight(svc, d.A!, 0); // A(0) B(1) C(2): A B C C repeating
    const sh = sched as ShScheduler;
    expect(Array.from(sh.buckets.slice(0, 8))).toEqual([0, 1, 2, 2, 0, 1, 2, 2]);
    expect(sched.select(svc, flow("203.0.113.8"))).toBe(d.C); // 222 % 4 = 2
  });
});

describe("kernel hsiphash (lib/siphash.c, 64-bit)", () => {
  const key = new SipKey(0x07060504, 0x03020100, 0x0f0e0d0c, 0x0b0a0908);
  const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);

  it("SipHash-2-4 reference vectors (key 00..0f)", () => {
    expect(sipHashBytes(key, bytes(0), 2, 4)).toEqual([0x726fdb47, 0xdd0e0e31]);
    expect(sipHashBytes(key, bytes(15), 2, 4)).toEqual([0xa129ca61, 0x49be45e5]);
  });

  it("lib/test_siphash.c 64-bit hsiphash vectors", () => {
    // test_vectors_hsiphash[0..11] for BITS_PER_LONG == 64
    const want = [
      0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7, 0x9bb11140,
      0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352,
    ];
    for (const [n, w] of want.entries()) expect(hsiphashBytes(key, bytes(n))).toBe(w);
    expect(hsiphashBytes(key, bytes(63))).toBe(0xb7bbb3a8);
    // The data-path variant on one u32 equals the 4-byte vector.
    expect(hsiphash1u32(key, 0x03020100)).toBe(0x88d38328);
  });

  it("hsiphash1u32 equals the general form on 4 little-endian bytes", () => {
    const b = new Uint8Array(4);
    for (let i = 0; i < 2000; i++) {
      const v = (Math.imul(i, 0x9e3779b1) ^ (i << 7)) >>> 0;
      b[0] = v & 255;
      b[1] = (v >>> 8) & 255;
      b[2] = (v >>> 16) & 255;
      b[3] = v >>> 24;
      expect(hsiphash1u32(key, v)).toBe(hsiphashBytes(key, b));
    }
  });
});

describe("mh (ip_vs_mh.c)", () => {
  it("table sizes: kernel default 4093 with TAB_BITS 6; other primes allowed", () => {
    const m = bound(mhScheduler, [mkDest()]).sched as MhScheduler;
    expect(m.size).toBe(4093);
    expect(mhTabBits(4093)).toBe(6);
    expect(mhTabBits(65521)).toBe(8);
    expect(mhTabBits(65537)).toBe(8);
    expect(() => bound(createMhModule({ tableSize: 4096 }), [])).toThrow(RangeError);
  });

  it("fills every slot; shares are exactly proportional to the weights (turns per round)", () => {
    const { d } = named({ A: { weight: 1 }, B: { weight: 2 }, C: { weight: 3 } });
    const m = bound(mhScheduler, [d.A!, d.B!, d.C!]).sched as MhScheduler;
    const counts = [0, 0, 0];
    for (const x of m.lookup) counts[x]!++;
    // 4093 = 682 rounds of 1+2+3 slots, plus one slot for the first dest.
    expect(counts).toEqual([683, 1364, 2046]);
    expect(m.lookup.includes(-1)).toBe(false);
  });

  it("large weights are shifted: turns = (w / gcd) >> (fls(max / gcd) - TAB_BITS)", () => {
    // gcd 1, max 1000: fls(1000) = 10, rshift = 4; turns 1000>>4 = 62, 101>>4 = 6, 10>>4 = 0 → 1.
    const { d } = named({ A: { weight: 1000 }, B: { weight: 101 }, C: { weight: 10 } });
    const m = bound(mhScheduler, [d.A!, d.B!, d.C!]).sched as MhScheduler;
    const counts = [0, 0, 0];
    for (const x of m.lookup) counts[x]!++;
    // 4093 = 59 rounds of 69 slots (4071) + 22 more for A.
    expect(counts).toEqual([59 * 62 + 22, 59 * 6, 59]);
    // With a common divisor: 1000, 100, 10 → gcd 10, max 100, fls 7, rshift 1: turns 50, 5, 1.
    const g = named({ A: { weight: 1000 }, B: { weight: 100 }, C: { weight: 10 } });
    const mg = bound(mhScheduler, [g.d.A!, g.d.B!, g.d.C!]).sched as MhScheduler;
    const cg = [0, 0, 0];
    for (const x of mg.lookup) cg[x]!++;
    expect(cg).toEqual([73 * 50 + 5, 73 * 5, 73]); // 4093 = 73 * 56 + 5
  });

  it("decisions: hsiphash(saddr [+ sport with mh-port]) mod M", () => {
    const { d } = named({ A: {}, B: {}, C: {}, D: {} });
    const { svc, sched } = bound(mhScheduler, [d.A!, d.B!, d.C!, d.D!]);
    const m = sched as MhScheduler;
    const seen = new Set<unknown>();
    for (let p = 1000; p < 1100; p++) {
      const f = flow("203.0.113.7", p);
      expect(sched.select(svc, f)).toBe(svc.dests[m.lookup[m.slotOf(f.saddr)]!]);
      seen.add(sched.select(svc, f));
    }
    expect(seen.size).toBe(1); // the port is ignored without mh-port
    svc.flags = SVC_F_SCHED2;
    seen.clear();
    for (let p = 1000; p < 1100; p++) {
      const f = flow("203.0.113.7", p);
      expect(sched.select(svc, f)).toBe(svc.dests[m.lookup[m.slotOf(f.saddr, p)]!]);
      seen.add(sched.select(svc, f));
    }
    expect(seen.size).toBe(4);
  });

  it("weight 0 keeps the table (last weight); a dest added with weight 0 gets no slot", () => {
    const { d } = named({ A: { weight: 2 }, B: { weight: 1 }, C: { weight: 1 } });
    const { svc, sched } = bound(mhScheduler, [d.A!, d.B!, d.C!]);
    const m = sched as MhScheduler;
    const before = Int32Array.from(m.lookup);
    setWeight(svc, d.A!, 0);
    expect(d.A!.lastWeight).toBe(2);
    expect(m.lookup).toEqual(before);
    // Slots of A now give no dest (no fallback) ...
    const slotA = before.indexOf(svc.dests.indexOf(d.A!));
    let f = flow(0);
    for (let a = 1; ; a++) {
      f = flow(a);
      if (m.slotOf(a) === slotA) break;
    }
    expect(sched.select(svc, f)).toBeUndefined();
    // ... or another dest with mh-fallback.
    svc.flags = SVC_F_SCHED1;
    const alt = sched.select(svc, f);
    expect(alt === d.B || alt === d.C).toBe(true);
    setWeight(svc, d.A!, 2);
    expect(m.lookup).toEqual(before);
    // New dest with weight 0: not in the table; the others keep their slots' relative order.
    const z = mkDest({ weight: 0, lastWeight: 0 });
    addDest(svc, z);
    expect(m.lookup.includes(0)).toBe(false); // z is at index 0
  });

  it("removing 1 of 100 dests (M = 65537) moves its ~1% of slots plus < 1% collateral", () => {
    const dests = Array.from({ length: 100 }, (_, i) => mkDest({ addr: `10.2.${i >> 8}.${(i & 255) + 1}` }));
    const { svc, sched } = bound(createMhModule({ tableSize: 65537 }), dests.slice());
    const m = sched as MhScheduler;
    const owner = (i: number) => svc.dests[m.lookup[i]!]!;
    const before = Array.from({ length: m.size }, (_, i) => owner(i));
    const victim = dests[37]!;
    delDest(svc, victim);
    let own = 0;
    let collateral = 0;
    for (let i = 0; i < m.size; i++) {
      const now = owner(i);
      if (before[i] === victim) own++;
      else if (now !== before[i]) collateral++;
      expect(now).not.toBe(victim);
    }
    expect(own).toBeGreaterThan(600); // about 1/100 of 65537
    expect(own).toBeLessThan(720);
    expect(collateral / m.size).toBeLessThan(0.01);
  });

  it("the key → slot memo never changes a decision (including colliding keys)", () => {
    const dests = Array.from({ length: 7 }, (_, i) =>
      mkDest({ addr: `10.3.0.${i + 1}`, weight: 1 + (i % 3) }),
    );
    const plain = bound(createMhModule({ memoBits: 0 }), dests);
    const tiny = bound(createMhModule({ memoBits: 2 }), dests);
    const dflt = bound(mhScheduler, dests);
    for (const s of [plain, tiny, dflt]) s.svc.flags = SVC_F_SCHED2;
    for (let i = 0; i < 5000; i++) {
      const f = flow((0xcb007100 + (i % 300) * 13) >>> 0, 1000 + (i % 17));
      const want = plain.sched.select(plain.svc, f);
      expect(tiny.sched.select(tiny.svc, f)).toBe(want);
      expect(dflt.sched.select(dflt.svc, f)).toBe(want);
    }
    expect(() => bound(createMhModule({ memoBits: 30 }), [])).toThrow(RangeError);
  });

  it("more dests than slots: the kernel refuses the rebuild and keeps the old table", () => {
    const small = bound(createMhModule({ tableSize: 5 }), [mkDest(), mkDest()]);
    const m = small.sched as MhScheduler;
    const before = Int32Array.from(m.lookup);
    small.svc.dests.push(mkDest(), mkDest(), mkDest(), mkDest());
    m.onDestsChanged(small.svc.dests);
    expect(m.lookup).toEqual(before);
  });

  it("no dest with a non-zero last weight: empty table", () => {
    const z = named({ A: { weight: 0, lastWeight: 0 } });
    const { svc, sched } = bound(mhScheduler, [z.d.A!]);
    svc.flags = SVC_F_SCHED1;
    expect((sched as MhScheduler).lookup.every((x) => x === -1)).toBe(true);
    expect(sched.select(svc, flow("1.2.3.4"))).toBeUndefined();
  });
});
