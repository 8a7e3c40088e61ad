/**
 * The XDP SYN-cookie responder's program (src/datapath/io/bpf/synack.ts, its maps made and kept
 * by SynAckMaps in src/datapath/synresponder.ts) makes the engine's cookie SYN-ACK byte for byte:
 * the kernel runs it (BPF_PROG_TEST_RUN) on SYNs from random clients, and its frame must be what
 * SynProxy.make + writeSynAck write for the same SYN, secret and time counter (IP id 0, to the
 * route's next hop: the SYN's source MAC on a connected route, the gateway's MAC on a route via
 * one); everything it must leave to lvsd goes on (XDP_PASS) untouched, including SYNs whose
 * source routes out of another link or not at all. Needs root and the built addon.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HELD_SLOTS, heldIndex } from "../../../src/datapath/conntrack/held.js";
import {
  BPF_F_MMAPABLE,
  BPF_MAP_TYPE_ARRAY,
  XDP_DROP,
  XDP_PASS,
  XDP_TX,
} from "../../../src/datapath/io/bpf/asm.js";
import { ROUTE_ELSEWHERE, ROUTE_VIA_MAC, ROUTE_VIA_SENDER } from "../../../src/datapath/io/bpf/synack.js";
import { loadNative, nativeAvailable } from "../../../src/datapath/io/native.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { ipv4HeaderChecksum } from "../../../src/datapath/packet/checksum.js";
import { parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, TCP_ACK, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { COOKIE_PERIOD_MS, mssIndex, SynProxy } from "../../../src/datapath/synproxy.js";
import { SynAckMaps } from "../../../src/datapath/synresponder.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";

const root = process.getuid?.() === 0;
const OUR = macToBytes("02:00:00:00:00:01");
const CLIENT = macToBytes("02:00:00:00:00:fe");
const VIP = "10.0.0.100";
const K0 = 0x01234567;
const K1 = 0x89abcdef | 0;
const COUNT = 42;
const MSS = 1460;
const GW = macToBytes("02:00:00:00:00:99");
/** The routes the program sees: default through this link, one via a gateway, one elsewhere. */
const ROUTES: [number, number, number, Uint8Array | undefined][] = [
  [ipToU32("198.18.0.0"), 15, ROUTE_VIA_MAC, GW],
  [ipToU32("198.51.100.0"), 24, ROUTE_ELSEWHERE, undefined],
  [0, 0, ROUTE_VIA_SENDER, undefined],
];

interface Syn {
  src: string;
  sport: number;
  dport: number;
  seq: number;
  mss: number;
  flags?: number;
  dstMac?: Uint8Array;
  extra?: number[];
}

function synFrame(s: Syn): Uint8Array {
  return eth({ src: CLIENT, dst: s.dstMac ?? OUR })
    .ipv4({ src: s.src, dst: VIP })
    .tcp({
      sport: s.sport,
      dport: s.dport,
      flags: s.flags ?? TCP_SYN,
      seq: s.seq,
      mss: s.mss,
      options: s.extra ?? [4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7],
    })
    .build();
}

/** What the engine sends for this SYN: SynProxy.make + writeSynAck, IP id 0, to `to` (default: the SYN's source). */
function expected(frame: Uint8Array, to: Uint8Array = CLIENT): Uint8Array {
  const v = new FrameView();
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  expect(parseFrame(frame, dv, 0, frame.length, v)).toBe(0);
  const sp = new SynProxy(K0, K1);
  const isn = dv.getUint32(v.l4Off + 4);
  const cookie = sp.make(
    v.saddr | 0,
    v.daddr | 0,
    v.sport,
    v.dport,
    isn | 0,
    mssIndex(v.mss > 0 ? v.mss : 536),
    COUNT * COOKIE_PERIOD_MS + 5,
  );
  const out = new Uint8Array(58);
  expect(sp.writeSynAck(out, 0, v, cookie, MSS)).toBe(58);
  out.set(to, 0);
  out.set(OUR, 6);
  out[18] = 0;
  out[19] = 0;
  return refreshIpChecksum(out);
}

/** The IPv4 header checksum of `f` made again after an edit of its header. */
function refreshIpChecksum(f: Uint8Array): Uint8Array {
  f[24] = 0;
  f[25] = 0;
  const sum = ipv4HeaderChecksum(f, 14, 20);
  f[24] = sum >>> 8;
  f[25] = sum & 0xff;
  return f;
}

describe.skipIf(!root || !nativeAvailable())("the XDP SYN-cookie responder's program", () => {
  const native = nativeAvailable() ? loadNative() : undefined;
  let maps: SynAckMaps | undefined;
  beforeAll(() => {
    maps = new SynAckMaps(native!);
    maps.setConfig(K0, K1, COUNT, MSS, OUR);
    maps.setServices([[ipToU32(VIP), 80]]);
    maps.setRoutes(ROUTES);
  });
  afterAll(() => maps?.close());

  const run = (frame: Uint8Array): { retval: number; out: Uint8Array } => {
    const out = new Uint8Array(256);
    const r = native!.bpfTestRun(maps!.prog, frame, out);
    return { retval: r.retval, out: out.subarray(0, r.size) };
  };

  it("answers a SYN to a SYN-proxy service with the engine's cookie SYN-ACK, byte for byte", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 223 }).filter((x) => x !== 127 && x !== 198),
        fc.integer({ min: 0, max: 0xffffff }),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 65535 }),
        fc.constantFrom("options", "mss only", "none"),
        (a, rest, sport, seq, mss, opts) => {
          const src = `${a}.${(rest >>> 16) & 0xff}.${(rest >>> 8) & 0xff}.${rest & 0xff}`;
          const frame = synFrame({
            src,
            sport,
            dport: 80,
            seq,
            // "none": a bare 20-byte TCP header (hping3's SYNs), a 54-byte frame the program grows
            mss: opts === "none" ? (undefined as unknown as number) : mss,
            ...(opts !== "options" ? { extra: [] } : {}),
          });
          if (opts === "none") expect(frame.length).toBe(54);
          const r = run(frame);
          expect(r.retval).toBe(XDP_TX);
          expect(Buffer.from(r.out).toString("hex")).toBe(Buffer.from(expected(frame)).toString("hex"));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("passes what the engine must see, untouched", () => {
    const base: Syn = { src: "203.0.113.7", sport: 40000, dport: 80, seq: 1, mss: 1460 };
    const cases: Array<[string, Uint8Array]> = [
      ["another port (no SYN proxy there)", synFrame({ ...base, dport: 81 })],
      ["an ACK", synFrame({ ...base, flags: TCP_ACK })],
      ["a SYN-ACK", synFrame({ ...base, flags: TCP_SYN | TCP_ACK })],
      ["another MAC", synFrame({ ...base, dstMac: macToBytes("02:00:00:00:00:99") })],
      ["a source routed out of another link", synFrame({ ...base, src: "198.51.100.7" })],
      [
        "options without the MSS first",
        synFrame({ ...base, mss: undefined as unknown as number, extra: [1, 1, 1, 1] }),
      ],
    ];
    const bad = synFrame(base);
    bad[24] = (bad[24]! ^ 0xff) & 0xff; // the header checksum
    cases.push(["a bad header checksum", bad]);
    const frag = synFrame(base);
    frag[20] = 0x20; // more fragments
    cases.push(["a fragment", frag]);
    for (const [what, f] of cases) {
      const r = run(f);
      expect(r.retval, what).toBe(XDP_PASS);
      expect(Buffer.from(r.out).toString("hex"), what).toBe(Buffer.from(f).toString("hex"));
    }
  });

  it("answers a source routed via a gateway to the gateway's MAC, and counts what it sent", () => {
    const before = maps!.sent();
    const f = synFrame({ src: "198.19.4.5", sport: 1234, dport: 80, seq: 7, mss: 1460 });
    const r = run(f);
    expect(r.retval).toBe(XDP_TX);
    expect(Buffer.from(r.out).toString("hex")).toBe(Buffer.from(expected(f, GW)).toString("hex"));
    run(synFrame({ src: "203.0.113.9", sport: 1, dport: 80, seq: 1, mss: 1460 }));
    run(synFrame({ src: "203.0.113.9", sport: 1, dport: 81, seq: 1, mss: 1460 })); // passed: not counted
    expect(maps!.sent() - before).toBe(2);
  });

  it("follows its maps: a service or route taken out, a new secret", () => {
    const f = synFrame({ src: "203.0.113.9", sport: 5, dport: 80, seq: 99, mss: 1400 });
    try {
      maps!.setRoutes(ROUTES.filter(([, prefix]) => prefix !== 0)); // no route back: lvsd decides
      expect(run(f).retval).toBe(XDP_PASS);
      maps!.setRoutes(ROUTES);
      maps!.setServices([]);
      expect(run(f).retval).toBe(XDP_PASS);
      maps!.setServices([[ipToU32(VIP), 80]]);
      maps!.setConfig(K0 ^ 1, K1, COUNT, MSS, OUR);
      const r = run(f);
      expect(r.retval).toBe(XDP_TX);
      expect(Buffer.from(r.out).toString("hex")).not.toBe(Buffer.from(expected(f)).toString("hex"));
    } finally {
      maps!.setConfig(K0, K1, COUNT, MSS, OUR);
      maps!.setRoutes(ROUTES);
      maps!.setServices([[ipToU32(VIP), 80]]);
    }
    expect(Buffer.from(run(f).out).toString("hex")).toBe(Buffer.from(expected(f)).toString("hex"));
  });

  it("drops a martian source and counts it (the engine would drop it as martian_src)", () => {
    const before = maps!.martians();
    for (const src of ["127.0.0.1", "0.1.2.3", "224.0.0.5", "240.1.1.1", "255.255.255.255"]) {
      // to a SYN-proxy service or not: the engine drops a martian source before any lookup
      for (const dport of [80, 81]) {
        const r = run(synFrame({ src, sport: 40000, dport, seq: 1, mss: 1460 }));
        expect(r.retval, `${src}:${dport}`).toBe(XDP_DROP);
      }
    }
    expect(maps!.martians() - before).toBe(10);
    // a martian destination is left to lvsd
    const f = synFrame({ src: "203.0.113.7", sport: 40000, dport: 80, seq: 1, mss: 1460 });
    f[30] = 127;
    expect(run(refreshIpChecksum(f)).retval).toBe(XDP_PASS);
  });
});

describe.skipIf(!root || !nativeAvailable())("the responder's held tuples (conntrack/held.ts)", () => {
  const native = nativeAvailable() ? loadNative() : undefined;
  let maps: SynAckMaps | undefined;
  let heldFd = -1;
  let held: Uint8Array;
  beforeAll(() => {
    heldFd = native!.bpfMapCreate(BPF_MAP_TYPE_ARRAY, 4, 8, HELD_SLOTS / 8, "t_held", BPF_F_MMAPABLE);
    held = new Uint8Array(native!.bpfMapMmap(heldFd, HELD_SLOTS));
    maps = new SynAckMaps(native!, undefined, heldFd);
    maps.setConfig(K0, K1, COUNT, MSS, OUR);
    maps.setServices([[ipToU32(VIP), 80]]);
    maps.setRoutes(ROUTES);
  });
  afterAll(() => {
    maps?.close();
    if (heldFd >= 0) native!.bpfClose(heldFd);
  });

  it("passes a SYN whose slot lvsd counts (the slot the program computes is heldIndex's), answers it when 0 (property)", () => {
    const retval = (f: Uint8Array) => native!.bpfTestRun(maps!.prog, f, new Uint8Array(256)).retval;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 223 }).filter((a) => a !== 127),
        fc.integer({ min: 0, max: 0xffffff }),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 255 }),
        (a, rest, sport, count) => {
          const src = `${a}.${rest >>> 16}.${(rest >>> 8) & 0xff}.${rest & 0xff}`;
          const f = synFrame({ src, sport, dport: 80, seq: 7, mss: 1460 });
          const k = heldIndex(ipToU32(src) | 0, ipToU32(VIP) | 0, sport, 80);
          held[k] = count;
          const heldRet = retval(f);
          held[k] = 0;
          expect(heldRet).toBe(XDP_PASS);
          expect(retval(f)).toBe(XDP_TX);
        },
      ),
      { numRuns: 200 },
    );
  });
});
