import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  csumAdd,
  csumFold,
  csumFold16,
  csumReplace16,
  csumReplace32,
  icmpChecksum,
  ipv4HeaderChecksum,
  l4ChecksumFull,
  pseudoHeaderSum,
  tcpUdpChecksum,
} from "../../../src/datapath/packet/checksum.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import * as G from "./golden.js";
import { parsed } from "./helpers.js";

/** Reference: RFC 1071 checksum by the book, word by word with immediate end-around carry. */
function refChecksum(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    s += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
    if (s > 0xffff) s = (s & 0xffff) + 1;
  }
  return ~s & 0xffff;
}

describe("csumAdd / csumFold", () => {
  it("matches the RFC 1071 section 3 numerical example", () => {
    // Bytes 00 01 f2 03 f4 f5 f6 f7: sum ddf2 (after end-around carry), checksum 220d.
    const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
    const sum = csumAdd(b, 0, b.length, 0);
    expect(sum).toBe(0x2ddf0);
    expect(csumFold16(sum)).toBe(0xddf2);
    expect(csumFold(sum)).toBe(0x220d);
  });

  it("pads an odd trailing byte with zero on the right", () => {
    expect(csumAdd(Uint8Array.of(0xab), 0, 1, 0)).toBe(0xab00);
    expect(csumAdd(Uint8Array.of(1, 2, 3), 0, 3, 0)).toBe(0x0102 + 0x0300);
  });

  it("respects the offset and ignores bytes outside the range", () => {
    const b = Uint8Array.of(0xff, 0x12, 0x34, 0xff);
    expect(csumAdd(b, 1, 2, 0)).toBe(0x1234);
  });

  it("equals the word-by-word reference on random data, chained or not", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(150), (b, cut) => {
        const c = Math.min(cut * 2, b.length & ~1);
        const chained = csumAdd(b, c, b.length - c, csumAdd(b, 0, c, 0));
        expect(csumFold(chained)).toBe(refChecksum(b));
        expect(csumFold(csumAdd(b, 0, b.length, 0))).toBe(refChecksum(b));
      }),
      { numRuns: 300 },
    );
  });

  it("folds accumulators far above 2^32", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }), (words) => {
        const big = words.reduce((a, w) => a + w * 0x10000 * 0x10000, 0) + words.reduce((a, w) => a + w, 0);
        // Reference: fold repeatedly with exact integer arithmetic.
        let r = big;
        while (r > 0xffff) r = (r % 0x10000) + Math.floor(r / 0x10000);
        expect(csumFold16(big)).toBe(r);
      }),
    );
  });
});

describe("ipv4HeaderChecksum", () => {
  const frames: [string, Uint8Array, number][] = [
    ["ICMP_ECHO", G.ICMP_ECHO, 14],
    ["TCP_SYN", G.TCP_SYN, 14],
    ["ICMP_PORT_UNREACH", G.ICMP_PORT_UNREACH, 14],
    ["ICMP_ECHO_RR (options)", G.ICMP_ECHO_RR, 14],
    ["FRAG_LATER", G.FRAG_LATER, 14],
    ["VLAN_UDP", G.VLAN_UDP, 18],
  ];
  it.each(frames)("reproduces the captured header checksum of %s", (_n, f, l3) => {
    const hl = (f[l3]! & 0x0f) * 4;
    const stored = (f[l3 + 10]! << 8) | f[l3 + 11]!;
    expect(ipv4HeaderChecksum(f, l3, hl)).toBe(stored);
  });
});

describe("tcpUdpChecksum / icmpChecksum", () => {
  const field = (f: Uint8Array, o: number) => (f[o]! << 8) | f[o + 1]!;
  const addr = (f: Uint8Array, o: number) =>
    ((f[o]! << 24) | (f[o + 1]! << 16) | (f[o + 2]! << 8) | f[o + 3]!) >>> 0;

  it.each([
    ["TCP_SYN", G.TCP_SYN],
    ["TCP_PSH", G.TCP_PSH],
    ["TCP_RST", G.TCP_RST],
  ])("reproduces the captured TCP checksum of %s", (_n, f) => {
    const tot = field(f, 16);
    expect(tcpUdpChecksum(f, addr(f, 26), addr(f, 30), IPPROTO_TCP, 34, tot - 20, 50)).toBe(field(f, 50));
  });

  it("reproduces the captured UDP checksums (plain and VLAN-tagged)", () => {
    expect(
      tcpUdpChecksum(G.UDP_DGRAM, addr(G.UDP_DGRAM, 26), addr(G.UDP_DGRAM, 30), IPPROTO_UDP, 34, 11, 40),
    ).toBe(field(G.UDP_DGRAM, 40));
    const v = G.VLAN_UDP;
    expect(tcpUdpChecksum(v, addr(v, 30), addr(v, 34), IPPROTO_UDP, 38, 12, 44)).toBe(field(v, 44));
  });

  it("reproduces the captured ICMP checksums (echo, port unreachable, frag needed)", () => {
    expect(icmpChecksum(G.ICMP_ECHO, 34, 64)).toBe(field(G.ICMP_ECHO, 36));
    expect(icmpChecksum(G.ICMP_PORT_UNREACH, 34, 39)).toBe(field(G.ICMP_PORT_UNREACH, 36));
    expect(icmpChecksum(G.ICMP_FRAG_NEEDED, 34, 108)).toBe(field(G.ICMP_FRAG_NEEDED, 36));
  });

  it("sends a computed UDP checksum of 0 as 0xffff, and a TCP one as 0", () => {
    // Choose the last payload word so that the checksum comes out 0: with the word 0 the
    // checksum is c0 = ~S; setting the word to c0 makes the sum 0xffff, i.e. a checksum of 0.
    const seg = new Uint8Array(12);
    seg.set([0x12, 0x34, 0x56, 0x78, 0, 12, 0, 0, 0xab, 0xcd, 0, 0]);
    for (const proto of [IPPROTO_UDP, IPPROTO_TCP]) {
      const s = seg.slice();
      const sum = pseudoHeaderSum(0x0a000001, 0x0a000002, proto, 12) + csumAdd(s, 0, 12, 0);
      const c0 = csumFold(sum);
      s[10] = c0 >>> 8;
      s[11] = c0 & 0xff;
      const c = tcpUdpChecksum(s, 0x0a000001, 0x0a000002, proto, 0, 12, 6);
      expect(c).toBe(proto === IPPROTO_UDP ? 0xffff : 0);
    }
  });
});

describe("csumReplace16 / csumReplace32 (RFC 1624 eqn. 3)", () => {
  it("equals a full recompute after changing one random word", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 80 }),
        fc.nat(),
        fc.integer({ min: 0, max: 0xffff }),
        (b, at, nw) => {
          const data = b.length % 2 === 0 ? b : b.subarray(0, b.length - 1);
          const i = (at % (data.length / 2)) * 2;
          const before = csumFold(csumAdd(data, 0, data.length, 0));
          const old = (data[i]! << 8) | data[i + 1]!;
          data[i] = nw >>> 8;
          data[i + 1] = nw & 0xff;
          // All-zero data is the one case where eqn. 3 gives -0 (see the edge test below).
          fc.pre(data.some((x) => x !== 0));
          expect(csumReplace16(before, old, nw)).toBe(csumFold(csumAdd(data, 0, data.length, 0)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("equals a full recompute after changing one random aligned 32-bit field", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 80 }),
        fc.nat(),
        fc.nat({ max: 0xffffffff }),
        (b, at, nv) => {
          const data = b.subarray(0, b.length & ~1);
          const i = (at % Math.max(1, (data.length - 2) / 2)) * 2;
          if (i + 4 > data.length) return;
          const before = csumFold(csumAdd(data, 0, data.length, 0));
          const old = ((data[i]! << 24) | (data[i + 1]! << 16) | (data[i + 2]! << 8) | data[i + 3]!) >>> 0;
          data[i] = nv >>> 24;
          data[i + 1] = (nv >>> 16) & 0xff;
          data[i + 2] = (nv >>> 8) & 0xff;
          data[i + 3] = nv & 0xff;
          fc.pre(data.some((x) => x !== 0));
          expect(csumReplace32(before, old, nv)).toBe(csumFold(csumAdd(data, 0, data.length, 0)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("handles the all-ones / all-zeros edges", () => {
    // Data of one word 0x0000 -> 0xffff: the full checksum goes from 0xffff to 0x0000.
    expect(csumReplace16(0xffff, 0x0000, 0xffff)).toBe(0x0000);
    // Data 0xffff -> 0x0000: a full recompute over all-zero data gives 0xffff, eqn. 3 gives
    // 0x0000, the other zero. Only all-zero data shows this; an IPv4 header (version nibble) and
    // the pseudo-header (protocol) always have a nonzero word, so packets never hit it.
    expect(csumReplace16(0x0000, 0xffff, 0x0000)).toBe(0x0000);
    expect(csumFold(0)).toBe(0xffff);
    // No change, no change.
    expect(csumReplace32(0x1234, 0xdeadbeef, 0xdeadbeef)).toBe(0x1234);
  });
});

describe("l4ChecksumFull", () => {
  it.each([
    ["TCP", G.TCP_SYN, 16],
    ["UDP", G.UDP_DGRAM, 6],
    ["UDP in 802.1Q", G.VLAN_UDP, 6],
    ["ICMP echo", G.ICMP_ECHO, 2],
    ["ICMP error", G.ICMP_FRAG_NEEDED, 2],
  ])("equals the captured %s checksum", (_n, f, rel) => {
    const { v } = parsed(f);
    expect(l4ChecksumFull(v)).toBe(v.dv.getUint16(v.l4Off + rel));
  });

  it("is -1 where there is nothing to compute", () => {
    expect(l4ChecksumFull(parsed(G.FRAG_FIRST).v)).toBe(-1);
    expect(l4ChecksumFull(parsed(G.FRAG_LATER).v)).toBe(-1);
    expect(l4ChecksumFull(parsed(G.ARP_REQUEST).v)).toBe(-1);
  });
});
