import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import { ipv4HeaderChecksum } from "../../../src/datapath/packet/checksum.js";
import {
  ARP_FRAME_LEN,
  emitArpReply,
  emitArpRequest,
  emitGratuitousArp,
  emitIcmpEchoReply,
  emitIcmpError,
  ICMP_ERROR_MAX_IP_LEN,
  setIpIdCounter,
} from "../../../src/datapath/packet/emit.js";
import { checkL4Checksum, L4Csum, parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, ParseStatus } from "../../../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import * as G from "./golden.js";
import { parsed, toHex } from "./helpers.js";

const MAC_A = macToBytes("02:00:00:00:0a:01");
const MAC_R = macToBytes("02:00:00:00:0a:02");
const A = ipToU32("10.1.0.1");
const R = ipToU32("10.1.0.2");

/** An output buffer pre-filled with 0xa5 and an offset into it. */
function outBuf(size = 2048) {
  const backing = new ArrayBuffer(size + 8);
  const buf = new Uint8Array(backing, 8, size).fill(0xa5);
  return { buf, dv: new DataView(backing, 8, size), off: 64 };
}

/** Check the emitted frame is exactly `want` and nothing around it was written. */
function expectEmitted(o: ReturnType<typeof outBuf>, n: number, want: Uint8Array): void {
  expect(n).toBe(want.length);
  expect(toHex(o.buf.subarray(o.off, o.off + n))).toBe(toHex(want));
  expect(o.buf.subarray(0, o.off).every((x) => x === 0xa5)).toBe(true);
  expect(o.buf.subarray(o.off + n).every((x) => x === 0xa5)).toBe(true);
}

function parseOut(o: ReturnType<typeof outBuf>, n: number): FrameView {
  const v = new FrameView();
  expect(parseFrame(o.buf, o.dv, o.off, n, v)).toBe(ParseStatus.OK);
  return v;
}

describe("ARP emitters", () => {
  it("emitArpReply answers the captured request exactly as Linux did", () => {
    const req = parsed(G.ARP_REQUEST).v;
    const o = outBuf();
    const n = emitArpReply(o.buf, o.off, MAC_R, 0, req.arpTpa, req.buf, req.l3Off + 8, req.arpSpa);
    expectEmitted(o, n, G.ARP_REPLY);
  });

  it("emitArpRequest reproduces the captured request", () => {
    const o = outBuf();
    const macs = Uint8Array.of(0xff, ...MAC_A); // MAC at an offset
    const n = emitArpRequest(o.buf, o.off, macs, 1, A, R);
    expectEmitted(o, n, G.ARP_REQUEST);
  });

  it("emitGratuitousArp is a broadcast request for our own address", () => {
    const o = outBuf();
    const n = emitGratuitousArp(o.buf, o.off, MAC_R, 0, R);
    expect(n).toBe(ARP_FRAME_LEN);
    const v = parseOut(o, n);
    expect([v.arpOp, v.arpSpa, v.arpTpa]).toEqual([1, R, R]);
    expect(toHex(o.buf.subarray(o.off, o.off + 6))).toBe("ffffffffffff");
    expect(toHex(o.buf.subarray(v.l3Off + 18, v.l3Off + 24))).toBe("000000000000");
    expect(toHex(o.buf.subarray(v.l3Off + 8, v.l3Off + 14))).toBe(toHex(MAC_R));
  });

  it("returns 0 when the frame does not fit", () => {
    const b = new Uint8Array(ARP_FRAME_LEN + 3).fill(0xa5);
    expect(emitArpRequest(b, 4, MAC_A, 0, A, R)).toBe(0);
    expect(b.every((x) => x === 0xa5)).toBe(true);
    expect(emitArpRequest(b, 3, MAC_A, 0, A, R)).toBe(ARP_FRAME_LEN);
  });
});

describe("emitIcmpEchoReply", () => {
  it("answers the captured echo request exactly as Linux did (same IP id)", () => {
    const req = parsed(G.ICMP_ECHO).v;
    const o = outBuf();
    setIpIdCounter(28274);
    const n = emitIcmpEchoReply(o.buf, o.off, req, MAC_R, 0);
    expectEmitted(o, n, G.ICMP_ECHO_REPLY);
  });

  it("drops IP options of the request and keeps the data", () => {
    const req = parsed(G.ICMP_ECHO_RR).v;
    const o = outBuf();
    const n = emitIcmpEchoReply(o.buf, o.off, req, MAC_R, 0);
    const v = parseOut(o, n);
    expect([v.ipHdrLen, v.icmpType, v.saddr, v.daddr, v.sport, v.l4Len]).toEqual([20, 0, R, A, 4573, 16]);
    expect(toHex(o.buf.subarray(v.l4Off + 4, v.l4Off + 16))).toBe(toHex(G.ICMP_ECHO_RR.subarray(78, 90)));
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
  });

  it("works in place, over the request itself", () => {
    const req = parsed(G.ICMP_ECHO_RR);
    const n = emitIcmpEchoReply(req.p.buf, req.p.off, req.v, MAC_R, 0);
    const v = new FrameView();
    expect(parseFrame(req.p.buf, req.p.dv, req.p.off, n, v)).toBe(ParseStatus.OK);
    expect([v.icmpType, v.saddr, v.daddr, v.l4Len]).toEqual([0, R, A, 16]);
    expect(toHex(v.buf.subarray(v.base, v.base + 6))).toBe(toHex(MAC_A));
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
  });

  it("answers random echo requests with valid checksums", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0x01000000, max: 0xdfffffff }),
        fc.nat(0xffff),
        fc.nat(0xffff),
        fc.uint8Array({ maxLength: 100 }),
        fc.option(fc.nat(0xffff), { nil: undefined }),
        (src, id, seq, data, tci) => {
          fc.pre(src >>> 24 !== 127);
          const b = eth({ src: MAC_A, dst: MAC_R });
          if (tci !== undefined) b.vlan(tci);
          const req = parsed(b.ipv4({ src, dst: R }).icmp({ type: 8, id, seq }).payload(data).build()).v;
          const o = outBuf();
          const n = emitIcmpEchoReply(o.buf, o.off, req, MAC_R, 0);
          const v = parseOut(o, n);
          expect([v.vlanTci, v.icmpType, v.icmpCode, v.saddr, v.daddr, v.sport]).toEqual([
            -1,
            0,
            0,
            R,
            src,
            id,
          ]);
          expect(v.dv.getUint16(v.l4Off + 6)).toBe(seq);
          expect(toHex(o.buf.subarray(v.payloadOff, v.payloadOff + data.length))).toBe(toHex(data));
          expect(checkL4Checksum(v)).toBe(L4Csum.OK);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("answers an all-zero echo request (id 0, seq 0, no data) with checksum 0xffff, not 0x0000", () => {
    // Found by the property above: patching the type word by RFC 1624 gave 0x0000 here.
    const req = parsed(
      eth({ src: MAC_A, dst: MAC_R })
        .ipv4({ src: "1.0.0.0", dst: R })
        .icmp({ type: 8, id: 0, seq: 0 })
        .build(),
    ).v;
    const o = outBuf();
    const n = emitIcmpEchoReply(o.buf, o.off, req, MAC_R, 0);
    const v = parseOut(o, n);
    expect(v.dv.getUint16(v.l4Off + 2)).toBe(0xffff);
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
  });

  it("returns 0 for what must not be answered", () => {
    const o = outBuf();
    const req = (f: Uint8Array) => parsed(f).v;
    const echo = (src: string | number, dst: string | number, dstMac = "02:00:00:00:0a:02") =>
      eth({ src: MAC_A, dst: dstMac }).ipv4({ src, dst }).icmp({ type: 8, id: 1 }).payload("x").build();
    expect(emitIcmpEchoReply(o.buf, o.off, req(G.ICMP_ECHO_REPLY), MAC_R, 0)).toBe(0); // not a request
    expect(emitIcmpEchoReply(o.buf, o.off, req(G.FRAG_FIRST), MAC_R, 0)).toBe(0); // fragment
    expect(emitIcmpEchoReply(o.buf, o.off, req(G.TCP_SYN), MAC_R, 0)).toBe(0);
    expect(emitIcmpEchoReply(o.buf, o.off, req(echo("10.1.0.1", "255.255.255.255")), MAC_R, 0)).toBe(0);
    expect(emitIcmpEchoReply(o.buf, o.off, req(echo("10.1.0.1", "224.0.0.1")), MAC_R, 0)).toBe(0);
    expect(emitIcmpEchoReply(o.buf, o.off, req(echo("0.0.0.0", "10.1.0.2")), MAC_R, 0)).toBe(0);
    expect(
      emitIcmpEchoReply(o.buf, o.off, req(echo("10.1.0.1", "10.1.0.2", "ff:ff:ff:ff:ff:ff")), MAC_R, 0),
    ).toBe(0);
    const badCsum = eth({ src: MAC_A, dst: MAC_R })
      .ipv4({ src: A, dst: R })
      .icmp({ type: 8, id: 1 })
      .build({ badL4Csum: true });
    expect(emitIcmpEchoReply(o.buf, o.off, req(badCsum), MAC_R, 0)).toBe(0);
    expect(emitIcmpEchoReply(new Uint8Array(97), 0, req(G.ICMP_ECHO), MAC_R, 0)).toBe(0); // 98 needed
    expect(o.buf.every((x) => x === 0xa5)).toBe(true);
  });
});

describe("emitIcmpError", () => {
  const send = (orig: Uint8Array, type: number, code: number, mtu: number, id: number) => {
    const v = parsed(orig).v;
    const o = outBuf();
    setIpIdCounter(id);
    const n = emitIcmpError(o.buf, o.off, MAC_R, 0, v.buf, v.base + 6, R, v.saddr, type, code, mtu, v);
    return { o, n };
  };

  it("reproduces Linux's port unreachable for the captured UDP datagram", () => {
    const { o, n } = send(G.UDP_DGRAM, 3, 3, 0, 28411);
    expectEmitted(o, n, G.ICMP_PORT_UNREACH);
  });

  it("reproduces Linux's fragmentation needed (next-hop MTU 68)", () => {
    const { o, n } = send(G.ICMP_ECHO_DF_100, 3, 4, 68, 28472);
    expectEmitted(o, n, G.ICMP_FRAG_NEEDED);
  });

  it("reproduces Linux's time exceeded", () => {
    const { o, n } = send(G.ICMP_ECHO_TTL1, 11, 0, 0, 28473);
    expectEmitted(o, n, G.ICMP_TIME_EXCEEDED);
  });

  it("ignores the MTU argument for other types", () => {
    const { o, n } = send(G.UDP_DGRAM, 3, 3, 1400, 28411);
    expectEmitted(o, n, G.ICMP_PORT_UNREACH);
  });

  it("works in place, over the original frame", () => {
    const orig = parsed(G.UDP_DGRAM);
    const big = new Uint8Array(200).fill(0xa5);
    big.set(G.UDP_DGRAM, 10);
    const v = new FrameView();
    parseFrame(big, new DataView(big.buffer), 10, G.UDP_DGRAM.length, v);
    setIpIdCounter(28411);
    const n = emitIcmpError(big, 10, MAC_R, 0, big, 16, R, v.saddr, 3, 3, 0, v);
    expect(toHex(big.subarray(10, 10 + n))).toBe(toHex(G.ICMP_PORT_UNREACH));
    expect(orig.st).toBe(ParseStatus.OK);
  });

  it("quotes as much as fits in 576 bytes of IP", () => {
    const data = new Uint8Array(1400).map((_, i) => i & 0xff);
    const f = eth({ src: MAC_A, dst: MAC_R })
      .ipv4({ src: A, dst: R })
      .udp({ sport: 9, dport: 10 })
      .payload(data)
      .build();
    const { o, n } = send(f, 3, 3, 0, 1);
    const v = parseOut(o, n);
    expect(v.ipTotalLen).toBe(ICMP_ERROR_MAX_IP_LEN);
    expect(n).toBe(14 + 576);
    expect(toHex(o.buf.subarray(v.innerL3Off, v.base + n))).toBe(toHex(f.subarray(14, 14 + 548)));
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
  });

  it("emitted errors about random TCP/UDP packets parse back with the right inner fields", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(6, 17),
        fc.integer({ min: 0x01000000, max: 0xdfffffff }),
        fc.integer({ min: 0, max: 0xdfffffff }),
        fc.nat(0xffff),
        fc.nat(0xffff),
        fc.nat(700),
        fc.constantFrom<[number, number]>([3, 0], [3, 1], [3, 3], [3, 4], [11, 0], [12, 0]),
        fc.nat(0xffff),
        (proto, src, dst, sp, dp, size, [type, code], mtu) => {
          fc.pre(src >>> 24 !== 127);
          const b = eth({ src: MAC_A, dst: MAC_R }).ipv4({ src, dst, ttl: 1 });
          const data = new Uint8Array(size);
          const f = (proto === 6 ? b.tcp({ sport: sp, dport: dp }) : b.udp({ sport: sp, dport: dp }))
            .payload(data)
            .build();
          const { o, n } = send(f, type, code, mtu, 77);
          const v = parseOut(o, n);
          expect([v.saddr, v.daddr, v.ttl, v.icmpType, v.icmpCode]).toEqual([R, src, 64, type, code]);
          expect([v.innerProto, v.innerSaddr, v.innerDaddr, v.innerSport, v.innerDport]).toEqual([
            proto,
            src,
            dst,
            sp,
            dp,
          ]);
          expect(v.ipTotalLen).toBe(Math.min(576, 28 + f.length - 14));
          expect(v.dv.getUint16(v.l3Off + 10)).toBe(ipv4HeaderChecksum(v.buf, v.l3Off, 20));
          expect(v.dv.getUint16(v.l4Off + 6)).toBe(type === 3 && code === 4 ? mtu : 0);
          expect(checkL4Checksum(v)).toBe(L4Csum.OK);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("is never sent about ICMP errors, later fragments, broadcasts, multicasts or non-host sources", () => {
    const cases: [string, Uint8Array][] = [
      ["ICMP error", G.ICMP_PORT_UNREACH],
      ["ICMP error (time exceeded)", G.ICMP_TIME_EXCEEDED],
      ["later fragment", G.FRAG_LATER],
      ["unknown ICMP type", eth().ipv4({ src: A, dst: R }).icmp({ type: 42 }).build()],
      ["ARP", G.ARP_REQUEST],
      [
        "limited broadcast",
        eth().ipv4({ src: A, dst: "255.255.255.255" }).udp({ sport: 1, dport: 2 }).build(),
      ],
      ["multicast destination", eth().ipv4({ src: A, dst: "239.1.1.1" }).udp({ sport: 1, dport: 2 }).build()],
      [
        "link-layer broadcast",
        eth({ dst: "ff:ff:ff:ff:ff:ff" }).ipv4({ src: A, dst: R }).udp({ sport: 1, dport: 2 }).build(),
      ],
      ["source 0.0.0.0", eth().ipv4({ src: "0.0.0.0", dst: R }).udp({ sport: 1, dport: 2 }).build()],
      ["loopback source", eth().ipv4({ src: "127.0.0.1", dst: R }).udp({ sport: 1, dport: 2 }).build()],
      ["multicast source", eth().ipv4({ src: "224.0.0.5", dst: R }).udp({ sport: 1, dport: 2 }).build()],
    ];
    for (const [name, f] of cases) {
      const { o, n } = send(f, 3, 1, 0, 1);
      expect([name, n]).toEqual([name, 0]);
      expect(o.buf.every((x) => x === 0xa5)).toBe(true);
    }
    // Errors about ICMP queries and first fragments are allowed.
    expect(send(G.ICMP_ECHO, 3, 1, 0, 1).n).toBeGreaterThan(0);
    expect(send(G.FRAG_FIRST, 11, 1, 0, 1).n).toBeGreaterThan(0);
  });

  it("returns 0 when the frame does not fit", () => {
    const v = parsed(G.UDP_DGRAM).v;
    const small = new Uint8Array(72).fill(0xa5); // 73 needed
    expect(emitIcmpError(small, 0, MAC_R, 0, MAC_A, 0, R, A, 3, 3, 0, v)).toBe(0);
    expect(small.every((x) => x === 0xa5)).toBe(true);
  });

  it("quotes an embedded packet with IP options whole", () => {
    const f = eth({ src: MAC_A, dst: MAC_R })
      .ipv4({ src: A, dst: R, options: [0x94, 4, 0, 0] })
      .udp({ sport: 5, dport: 6 })
      .build();
    const { o, n } = send(f, 3, 3, 0, 1);
    const v = parseOut(o, n);
    expect(v.innerHdrLen).toBe(24);
    expect([v.innerSport, v.innerDport]).toEqual([5, 6]);
    expect(toHex(o.buf.subarray(v.innerL3Off, v.base + n))).toBe(toHex(f.subarray(14)));
  });

  it("bare ipv4() packets quoted by the builder match what the emitter quotes", () => {
    const pkt = ipv4({ src: A, dst: R, id: 5 }).udp({ sport: 1, dport: 2 }).payload("abc").build();
    const f = eth({ src: MAC_A, dst: MAC_R })
      .ipv4({ src: A, dst: R, id: 5 })
      .udp({ sport: 1, dport: 2 })
      .payload("abc")
      .build();
    const { o, n } = send(f, 3, 3, 0, 9);
    const built = eth({ src: MAC_R, dst: MAC_A })
      .ipv4({ src: R, dst: A, id: 9, tos: 0xc0 })
      .icmpError(3, 3, pkt)
      .build();
    expectEmitted(o, n, built);
  });
});
