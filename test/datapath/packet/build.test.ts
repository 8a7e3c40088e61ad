import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eth, type FrameBuilder, ipv4, type TcpOpts } from "../../../src/datapath/packet/build.js";
import { checkL4Checksum, L4Csum } from "../../../src/datapath/packet/parse.js";
import { ParseStatus, TCP_ACK, TCP_PSH, TCP_RST, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { AddrError, bytesToMac, ipToU32, macToBytes, toMac, toU32, u32ToIp } from "../../../src/lib/addr.js";
import * as G from "./golden.js";
import { parsed, toHex } from "./helpers.js";

const MAC_A = "02:00:00:00:0a:01";
const MAC_R = "02:00:00:00:0a:02";

/** Build into a buffer pre-filled with 0xa5 at an offset; check nothing outside was written. */
function buildA5(b: FrameBuilder, want: Uint8Array): void {
  const lead = 13;
  const buf = new Uint8Array(want.length + lead + 17).fill(0xa5);
  const n = b.buildInto(buf, lead);
  expect(n).toBe(want.length);
  expect(toHex(buf.subarray(lead, lead + n))).toBe(toHex(want));
  expect(buf.subarray(0, lead).every((x) => x === 0xa5)).toBe(true);
  expect(buf.subarray(lead + n).every((x) => x === 0xa5)).toBe(true);
}

describe("builder reproduces captured frames byte for byte", () => {
  it("ARP request and reply", () => {
    buildA5(
      eth({ src: MAC_A, dst: "ff:ff:ff:ff:ff:ff" }).arp({
        op: 1,
        sha: MAC_A,
        spa: "10.1.0.1",
        tpa: "10.1.0.2",
      }),
      G.ARP_REQUEST,
    );
    buildA5(
      eth({ src: MAC_R, dst: MAC_A }).arp({
        op: 2,
        sha: MAC_R,
        spa: "10.1.0.2",
        tha: MAC_A,
        tpa: "10.1.0.1",
      }),
      G.ARP_REPLY,
    );
  });

  it("ICMP echo request and reply", () => {
    const data = G.ICMP_ECHO.subarray(42);
    buildA5(
      eth({ src: MAC_A, dst: MAC_R })
        .ipv4({ src: "10.1.0.1", dst: "10.1.0.2", id: 9903, df: true })
        .icmp({ type: 8, id: 4561, seq: 1 })
        .payload(data),
      G.ICMP_ECHO,
    );
    buildA5(
      eth({ src: MAC_R, dst: MAC_A })
        .ipv4({ src: ipToU32("10.1.0.2"), dst: ipToU32("10.1.0.1"), id: 28274 })
        .icmp({ type: 0, id: 4561, seq: 1 })
        .payload(data),
      G.ICMP_ECHO_REPLY,
    );
  });

  it("TCP SYN with MSS and other options", () => {
    // mss 1460, sackOK, TS val 2945119443 ecr 0, nop, wscale 10
    const rest = G.TCP_SYN.subarray(58, 74);
    buildA5(
      eth({ src: MAC_A, dst: MAC_R }).ipv4({ src: "10.1.0.1", dst: "10.1.0.2", id: 13136, df: true }).tcp({
        sport: 34020,
        dport: 8080,
        seq: 3336364689,
        flags: TCP_SYN,
        window: 64240,
        mss: 1460,
        options: rest,
      }),
      G.TCP_SYN,
    );
  });

  it("TCP data segment and RST", () => {
    buildA5(
      eth({ src: MAC_A, dst: MAC_R })
        .ipv4({ src: "10.1.0.1", dst: "10.1.0.2", id: 13138, df: true })
        .tcp({
          sport: 34020,
          dport: 8080,
          seq: 3336364690,
          ack: 4141428833,
          flags: TCP_PSH | TCP_ACK,
          window: 63,
          options: G.TCP_PSH.subarray(54, 66),
        })
        .payload("hello\n"),
      G.TCP_PSH,
    );
    buildA5(
      eth({ src: MAC_R, dst: MAC_A })
        .ipv4({ src: "10.1.0.2", dst: "10.1.0.1", df: true })
        .tcp({ sport: 81, dport: 40012, ack: 325786884, flags: TCP_RST | TCP_ACK, window: 0 }),
      G.TCP_RST,
    );
  });

  it("UDP, plain and 802.1Q-tagged", () => {
    buildA5(
      eth({ src: MAC_A, dst: MAC_R })
        .ipv4({ src: "10.1.0.1", dst: "10.1.0.2", id: 41453, df: true })
        .udp({ sport: 40630, dport: 5353 })
        .payload("hi\n"),
      G.UDP_DGRAM,
    );
    buildA5(
      eth({ src: MAC_A, dst: MAC_R })
        .vlan((3 << 13) | 100)
        .ipv4({ src: "10.100.0.1", dst: "10.100.0.2", id: 0x1234, df: true })
        .udp({ sport: 40000, dport: 9999 })
        .payload("vlan"),
      G.VLAN_UDP,
    );
  });

  it("ICMP errors: port unreachable, fragmentation needed, time exceeded", () => {
    buildA5(
      eth({ src: MAC_R, dst: MAC_A })
        .ipv4({ src: "10.1.0.2", dst: "10.1.0.1", id: 28411, tos: 0xc0 })
        .icmpError(3, 3, G.UDP_DGRAM.subarray(14)),
      G.ICMP_PORT_UNREACH,
    );
    buildA5(
      eth({ src: MAC_R, dst: MAC_A })
        .ipv4({ src: "10.1.0.2", dst: "10.1.0.1", id: 28472, tos: 0xc0 })
        .icmpError(3, 4, G.ICMP_ECHO_DF_100.subarray(14), { mtu: 68 }),
      G.ICMP_FRAG_NEEDED,
    );
    buildA5(
      eth({ src: MAC_R, dst: MAC_A })
        .ipv4({ src: "10.1.0.2", dst: "10.1.0.1", id: 28473, tos: 0xc0 })
        .icmpError(11, 0, G.ICMP_ECHO_TTL1.subarray(14)),
      G.ICMP_TIME_EXCEEDED,
    );
  });

  it("IP options (NOP + Record Route)", () => {
    buildA5(
      eth({ src: MAC_A, dst: MAC_R })
        .ipv4({
          src: "10.1.0.1",
          dst: "10.1.0.2",
          id: 10028,
          df: true,
          options: G.ICMP_ECHO_RR.subarray(34, 74),
        })
        .icmp({ type: 8, id: 4573, seq: 1 })
        .payload(G.ICMP_ECHO_RR.subarray(82)),
      G.ICMP_ECHO_RR,
    );
  });

  it("first and later fragment", () => {
    const mac = { src: "02:00:00:00:0b:02", dst: "02:00:00:00:0b:01" };
    // The ICMP checksum of a first fragment covers the whole datagram: given explicitly.
    buildA5(
      eth(mac)
        .ipv4({ src: "10.1.0.1", dst: "10.2.0.1", id: 53739, mf: true, ttl: 63 })
        .icmp({ type: 8, id: 4575, seq: 1, csum: 0xb1d4 })
        .payload(G.FRAG_FIRST.subarray(42)),
      G.FRAG_FIRST,
    );
    buildA5(
      eth(mac)
        .ipv4({ src: "10.1.0.1", dst: "10.2.0.1", id: 53739, fragOff: 6, ttl: 63, proto: 1 })
        .payload(G.FRAG_LATER.subarray(34)),
      G.FRAG_LATER,
    );
  });
});

describe("builder options for negative tests", () => {
  const base = () =>
    eth().ipv4({ src: "10.0.0.1", dst: "10.0.0.2" }).udp({ sport: 1, dport: 2 }).payload("x");

  it("badIpCsum / badL4Csum corrupt exactly one checksum", () => {
    const ok = parsed(base().build());
    expect(ok.st).toBe(ParseStatus.OK);
    expect(checkL4Checksum(ok.v)).toBe(L4Csum.OK);
    expect(parsed(base().build({ badIpCsum: true })).st).toBe(ParseStatus.IP_BAD_CSUM);
    const bad = parsed(base().build({ badL4Csum: true }));
    expect(bad.st).toBe(ParseStatus.OK);
    expect(checkL4Checksum(bad.v)).toBe(L4Csum.BAD);
  });

  it("explicit length and checksum fields", () => {
    const f = eth()
      .ipv4({ src: "10.0.0.1", dst: "10.0.0.2", totalLen: 100, csum: 0x1234 })
      .udp({ sport: 1, dport: 2, len: 3, csum: 0xbeef })
      .build();
    expect((f[16]! << 8) | f[17]!).toBe(100);
    expect((f[24]! << 8) | f[25]!).toBe(0x1234);
    expect((f[38]! << 8) | f[39]!).toBe(3);
    expect((f[40]! << 8) | f[41]!).toBe(0xbeef);
  });

  it("noCsum sends UDP with a zero checksum, which verifies", () => {
    const f = eth()
      .ipv4({ src: "10.0.0.1", dst: "10.0.0.2" })
      .udp({ sport: 1, dport: 2, noCsum: true })
      .build();
    expect((f[40]! << 8) | f[41]!).toBe(0);
    expect(checkL4Checksum(parsed(f).v)).toBe(L4Csum.OK);
  });

  it("padTo pads with zeros; a bare ipv4() builds no Ethernet header", () => {
    const f = base().build({ padTo: 60 });
    expect(f.length).toBe(60);
    expect(f.subarray(43).every((x) => x === 0)).toBe(true);
    const p = ipv4({ src: "1.2.3.4", dst: "5.6.7.8" }).udp({ sport: 1, dport: 2 }).build();
    expect(p.length).toBe(28);
    expect(p[0]).toBe(0x45);
  });
});

// --- round trip: random header fields -> build -> parse -> same fields ---------------------

const arbIp = fc.nat({ max: 0xffffffff });
const arbPort = fc.nat({ max: 0xffff });
const arbMac = fc.uint8Array({ minLength: 6, maxLength: 6 });
/** A well-formed IPv4 option list: NOPs and TLVs with correct lengths, at most 40 bytes padded. */
const arbIpOptions = fc
  .array(
    fc.oneof(
      fc.constant([1]),
      fc.uint8Array({ maxLength: 6 }).map((b) => [0x88, b.length + 2, ...b]),
      fc.constant([0x94, 4, 0, 0]),
    ),
    { maxLength: 4 },
  )
  .map((parts) => parts.flat());
const arbTci = fc.option(fc.nat({ max: 0xffff }), { nil: undefined });
const arbIpHdr = fc.record({
  src: arbIp,
  dst: arbIp,
  ttl: fc.nat(255),
  id: arbPort,
  tos: fc.nat(255),
  df: fc.boolean(),
  options: arbIpOptions,
});

function withVlan(tci: number | undefined) {
  const b = eth({ src: "02:00:00:00:00:01", dst: "02:00:00:00:00:02" });
  return tci === undefined ? b : b.vlan(tci);
}

describe("round trip: build -> parse", () => {
  it("TCP", () => {
    fc.assert(
      fc.property(
        arbTci,
        arbIpHdr,
        fc.record({
          sport: arbPort,
          dport: arbPort,
          seq: arbIp,
          ack: arbIp,
          flags: fc.nat(255),
          window: arbPort,
          mss: fc.option(arbPort, { nil: undefined }),
        }),
        fc.uint8Array({ maxLength: 64 }),
        (tci, iph, tcp, data) => {
          const { mss, ...rest } = tcp;
          const t: TcpOpts = mss === undefined ? rest : { ...rest, mss };
          const f = withVlan(tci).ipv4(iph).tcp(t).payload(data).build();
          const { st, v } = parsed(f);
          expect(st).toBe(ParseStatus.OK);
          expect(v.vlanTci).toBe(tci ?? -1);
          expect([v.saddr, v.daddr, v.ttl, v.ipId, v.df, v.mf, v.fragOff, v.proto]).toEqual([
            iph.src,
            iph.dst,
            iph.ttl,
            iph.id,
            iph.df ? 1 : 0,
            0,
            0,
            6,
          ]);
          expect(v.ipHdrLen).toBe(20 + Math.ceil(iph.options.length / 4) * 4);
          expect([v.sport, v.dport, v.tcpFlags]).toEqual([tcp.sport, tcp.dport, tcp.flags]);
          expect(v.mss).toBe(tcp.mss !== undefined && (tcp.flags & TCP_SYN) !== 0 ? tcp.mss : -1);
          expect(v.tcpHdrLen).toBe(tcp.mss !== undefined ? 24 : 20);
          expect(v.dv.getUint32(v.l4Off + 4)).toBe(tcp.seq);
          expect(v.dv.getUint32(v.l4Off + 8)).toBe(tcp.ack);
          expect(v.l4Len - v.tcpHdrLen).toBe(data.length);
          expect(Array.from(v.buf.subarray(v.payloadOff, v.payloadOff + data.length))).toEqual(
            Array.from(data),
          );
          expect(checkL4Checksum(v)).toBe(L4Csum.OK);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("UDP", () => {
    fc.assert(
      fc.property(
        arbTci,
        arbIpHdr,
        arbPort,
        arbPort,
        fc.boolean(),
        fc.uint8Array({ maxLength: 64 }),
        (tci, iph, sport, dport, noCsum, data) => {
          const f = withVlan(tci).ipv4(iph).udp({ sport, dport, noCsum }).payload(data).build();
          const { st, v } = parsed(f);
          expect(st).toBe(ParseStatus.OK);
          expect([v.saddr, v.daddr, v.proto, v.sport, v.dport, v.l4Len]).toEqual([
            iph.src,
            iph.dst,
            17,
            sport,
            dport,
            8 + data.length,
          ]);
          const c = v.dv.getUint16(v.l4Off + 6);
          expect(noCsum ? c === 0 : c !== 0).toBe(true);
          expect(checkL4Checksum(v)).toBe(L4Csum.OK);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("ICMP echo and ICMP errors quoting TCP/UDP", () => {
    fc.assert(
      fc.property(
        arbTci,
        arbIpHdr,
        arbIpHdr,
        fc.constantFrom(6, 17),
        arbPort,
        arbPort,
        fc.constantFrom(3, 4, 5, 11, 12),
        fc.nat(255),
        fc.nat(40),
        (tci, outer, inner, proto, sport, dport, type, code, cut) => {
          const emb = ipv4(inner);
          const embedded = (proto === 6 ? emb.tcp({ sport, dport }) : emb.udp({ sport, dport })).build();
          const quoted = embedded.subarray(0, Math.max(embedded.length - cut, 0));
          const f = withVlan(tci).ipv4(outer).icmpError(type, code, quoted).build();
          const { st, v } = parsed(f);
          const ihl = 20 + Math.ceil(inner.options.length / 4) * 4;
          if (quoted.length < ihl) {
            expect(st).toBe(ParseStatus.ICMP_INNER_SHORT);
            return;
          }
          expect(st).toBe(ParseStatus.OK);
          expect([v.icmpType, v.icmpCode, v.innerProto, v.innerSaddr, v.innerDaddr, v.innerHdrLen]).toEqual([
            type,
            code,
            proto,
            inner.src,
            inner.dst,
            ihl,
          ]);
          if (quoted.length >= ihl + 8) {
            expect([v.innerSport, v.innerDport]).toEqual([sport, dport]);
          } else {
            expect(v.innerL4Off).toBe(-1);
          }
          expect(checkL4Checksum(v)).toBe(L4Csum.OK);
        },
      ),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(arbIpHdr, fc.constantFrom(0, 8), arbPort, arbPort, (iph, type, id, seq) => {
        const { st, v } = parsed(eth().ipv4(iph).icmp({ type, id, seq }).payload("ping").build());
        expect(st).toBe(ParseStatus.OK);
        expect([v.icmpType, v.sport, v.dport, v.dv.getUint16(v.l4Off + 6)]).toEqual([type, id, id, seq]);
        expect(checkL4Checksum(v)).toBe(L4Csum.OK);
      }),
      { numRuns: 100 },
    );
  });

  it("fragments", () => {
    fc.assert(
      fc.property(arbIpHdr, fc.nat(0x1fff), fc.boolean(), (iph, fragOff, mf) => {
        const f = eth()
          .ipv4({ ...iph, fragOff, mf, proto: 6 })
          .payload(ipv4({ src: 0, dst: 0 }).tcp({ sport: 1, dport: 2 }).build().subarray(20))
          .build();
        const { st, v } = parsed(f);
        expect(st).toBe(ParseStatus.OK);
        expect([v.fragOff, v.mf, v.isFrag, v.laterFrag]).toEqual([
          fragOff,
          mf ? 1 : 0,
          mf || fragOff > 0 ? 1 : 0,
          fragOff > 0 ? 1 : 0,
        ]);
        expect(v.l4Off >= 0).toBe(fragOff === 0);
      }),
      { numRuns: 200 },
    );
  });

  it("ARP", () => {
    fc.assert(
      fc.property(
        arbTci,
        fc.constantFrom(1, 2),
        arbMac,
        arbIp,
        arbMac,
        arbIp,
        (tci, op, sha, spa, tha, tpa) => {
          const f = withVlan(tci).arp({ op, sha, spa, tha, tpa }).build();
          const { st, v } = parsed(f);
          expect(st).toBe(ParseStatus.OK);
          expect([v.etherType, v.arpOp, v.arpSpa, v.arpTpa]).toEqual([0x0806, op, spa, tpa]);
          expect(bytesToMac(v.buf, v.l3Off + 8)).toBe(bytesToMac(sha));
          expect(bytesToMac(v.buf, v.l3Off + 18)).toBe(bytesToMac(tha));
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("addr helpers", () => {
  it("converts dotted quads both ways", () => {
    expect(ipToU32("10.0.0.1")).toBe(0x0a000001);
    expect(ipToU32("255.255.255.255")).toBe(0xffffffff);
    expect(u32ToIp(0xc0a80001)).toBe("192.168.0.1");
    fc.assert(
      fc.property(arbIp, (n) => {
        expect(ipToU32(u32ToIp(n))).toBe(n);
      }),
    );
  });

  it.each(["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "a.b.c.d", " 1.2.3.4", "1.2.3.-4", "1..2.3"])(
    "rejects %j with a typed error",
    (s) => {
      expect(() => ipToU32(s)).toThrow(AddrError);
    },
  );

  it("accepts numbers within uint32 only", () => {
    expect(toU32(7)).toBe(7);
    expect(toU32("0.0.0.7")).toBe(7);
    expect(() => toU32(-1)).toThrow(AddrError);
    expect(() => toU32(2 ** 32)).toThrow(AddrError);
    expect(() => toU32(1.5)).toThrow(AddrError);
  });

  it("converts MACs both ways", () => {
    expect(Array.from(macToBytes("02:00:00:00:0a:FF"))).toEqual([2, 0, 0, 0, 10, 255]);
    expect(bytesToMac(G.TCP_SYN, 6)).toBe("02:00:00:00:0a:01");
    expect(Array.from(toMac(Uint8Array.of(1, 2, 3, 4, 5, 6)))).toEqual([1, 2, 3, 4, 5, 6]);
    fc.assert(
      fc.property(arbMac, (m) => {
        expect(Array.from(macToBytes(bytesToMac(m)))).toEqual(Array.from(m));
      }),
    );
    for (const bad of ["", "02:00:00:00:0a", "02:00:00:00:0a:01:02", "0g:00:00:00:00:00", "020000000a01"]) {
      expect(() => macToBytes(bad)).toThrow(AddrError);
    }
    expect(() => toMac(new Uint8Array(5))).toThrow(AddrError);
    expect(() => bytesToMac(new Uint8Array(5))).toThrow(AddrError);
  });
});
