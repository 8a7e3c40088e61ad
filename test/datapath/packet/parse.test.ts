import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import { ipv4HeaderChecksum } from "../../../src/datapath/packet/checksum.js";
import {
  checkL4Checksum,
  clampTcpMss,
  icmpId,
  icmpSeq,
  L4Csum,
  l4CsumOff,
  parseFrame,
  setTcpAck,
  setTcpSeq,
  setTcpWindow,
  tcpAck,
  tcpPayloadLen,
  tcpSeq,
  tcpWindow,
} from "../../../src/datapath/packet/parse.js";
import {
  FrameView,
  PARSE_STATUS_COUNT,
  ParseStatus,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import * as G from "./golden.js";
import { bytesOf, parsed, place } from "./helpers.js";

const A = ipToU32("10.1.0.1");
const R = ipToU32("10.1.0.2");
const B = ipToU32("10.2.0.1");

/** Every FrameView field, offsets relative to the frame start (-1 stays -1). */
function fields(v: FrameView) {
  const rel = (o: number) => (o < 0 ? o : o - v.base);
  return {
    len: v.len,
    vlanTci: v.vlanTci,
    etherType: v.etherType,
    l3Off: rel(v.l3Off),
    arpOp: v.arpOp,
    arpSpa: v.arpSpa,
    arpTpa: v.arpTpa,
    ipHdrLen: v.ipHdrLen,
    ipTotalLen: v.ipTotalLen,
    proto: v.proto,
    saddr: v.saddr,
    daddr: v.daddr,
    ttl: v.ttl,
    ipId: v.ipId,
    df: v.df,
    mf: v.mf,
    fragOff: v.fragOff,
    laterFrag: v.laterFrag,
    isFrag: v.isFrag,
    l4Off: rel(v.l4Off),
    l4Len: v.l4Len,
    sport: v.sport,
    dport: v.dport,
    tcpFlags: v.tcpFlags,
    tcpHdrLen: v.tcpHdrLen,
    mss: v.mss,
    // 0 is the reset value (no L4 payload: ARP, L2_OTHER), not an offset.
    payloadOff: v.payloadOff === 0 ? 0 : rel(v.payloadOff),
    icmpType: v.icmpType,
    icmpCode: v.icmpCode,
    innerL3Off: rel(v.innerL3Off),
    innerHdrLen: v.innerHdrLen,
    innerProto: v.innerProto,
    innerSaddr: v.innerSaddr,
    innerDaddr: v.innerDaddr,
    innerSport: v.innerSport,
    innerDport: v.innerDport,
    innerL4Off: rel(v.innerL4Off),
  };
}
type Fields = ReturnType<typeof fields>;

/** Reset values: what a field holds when its layer does not apply. */
const NONE: Omit<Fields, "len" | "etherType" | "l3Off"> = {
  vlanTci: -1,
  arpOp: 0,
  arpSpa: 0,
  arpTpa: 0,
  ipHdrLen: 0,
  ipTotalLen: 0,
  proto: 0,
  saddr: 0,
  daddr: 0,
  ttl: 0,
  ipId: 0,
  df: 0,
  mf: 0,
  fragOff: 0,
  laterFrag: 0,
  isFrag: 0,
  l4Off: -1,
  l4Len: 0,
  sport: 0,
  dport: 0,
  tcpFlags: 0,
  tcpHdrLen: 0,
  mss: -1,
  payloadOff: 0,
  icmpType: -1,
  icmpCode: -1,
  innerL3Off: -1,
  innerHdrLen: 0,
  innerProto: 0,
  innerSaddr: 0,
  innerDaddr: 0,
  innerSport: 0,
  innerDport: 0,
  innerL4Off: -1,
};

/** IPv4 fields shared by most captured frames. */
function ip(f: Partial<Fields>): Fields {
  return { ...NONE, etherType: 0x0800, l3Off: 14, ipHdrLen: 20, ttl: 64, ...f } as Fields;
}

const GOLDEN: [string, Uint8Array, Fields][] = [
  [
    "ARP request",
    G.ARP_REQUEST,
    { ...NONE, len: 42, etherType: 0x0806, l3Off: 14, arpOp: 1, arpSpa: A, arpTpa: R },
  ],
  [
    "ARP reply",
    G.ARP_REPLY,
    { ...NONE, len: 42, etherType: 0x0806, l3Off: 14, arpOp: 2, arpSpa: R, arpTpa: A },
  ],
  [
    "ICMP echo request",
    G.ICMP_ECHO,
    ip({
      len: 98,
      ipTotalLen: 84,
      proto: 1,
      saddr: A,
      daddr: R,
      ipId: 9903,
      df: 1,
      l4Off: 34,
      l4Len: 64,
      sport: 4561,
      dport: 4561,
      payloadOff: 42,
      icmpType: 8,
      icmpCode: 0,
    }),
  ],
  [
    "ICMP echo reply",
    G.ICMP_ECHO_REPLY,
    ip({
      len: 98,
      ipTotalLen: 84,
      proto: 1,
      saddr: R,
      daddr: A,
      ipId: 28274,
      l4Off: 34,
      l4Len: 64,
      sport: 4561,
      dport: 4561,
      payloadOff: 42,
      icmpType: 0,
      icmpCode: 0,
    }),
  ],
  [
    "TCP SYN with options",
    G.TCP_SYN,
    ip({
      len: 74,
      ipTotalLen: 60,
      proto: 6,
      saddr: A,
      daddr: R,
      ipId: 13136,
      df: 1,
      l4Off: 34,
      l4Len: 40,
      sport: 34020,
      dport: 8080,
      tcpFlags: TCP_SYN,
      tcpHdrLen: 40,
      mss: 1460,
      payloadOff: 74,
    }),
  ],
  [
    "TCP SYN-ACK",
    G.TCP_SYN_ACK,
    ip({
      len: 74,
      ipTotalLen: 60,
      proto: 6,
      saddr: R,
      daddr: A,
      ipId: 0,
      df: 1,
      l4Off: 34,
      l4Len: 40,
      sport: 8080,
      dport: 34020,
      tcpFlags: TCP_SYN | TCP_ACK,
      tcpHdrLen: 40,
      mss: 1460,
      payloadOff: 74,
    }),
  ],
  [
    "TCP data segment",
    G.TCP_PSH,
    ip({
      len: 72,
      ipTotalLen: 58,
      proto: 6,
      saddr: A,
      daddr: R,
      ipId: 13138,
      df: 1,
      l4Off: 34,
      l4Len: 38,
      sport: 34020,
      dport: 8080,
      tcpFlags: TCP_PSH | TCP_ACK,
      tcpHdrLen: 32,
      payloadOff: 66,
    }),
  ],
  [
    "TCP RST",
    G.TCP_RST,
    ip({
      len: 54,
      ipTotalLen: 40,
      proto: 6,
      saddr: R,
      daddr: A,
      ipId: 0,
      df: 1,
      l4Off: 34,
      l4Len: 20,
      sport: 81,
      dport: 40012,
      tcpFlags: 0x14,
      tcpHdrLen: 20,
      payloadOff: 54,
    }),
  ],
  [
    "UDP",
    G.UDP_DGRAM,
    ip({
      len: 45,
      ipTotalLen: 31,
      proto: 17,
      saddr: A,
      daddr: R,
      ipId: 41453,
      df: 1,
      l4Off: 34,
      l4Len: 11,
      sport: 40630,
      dport: 5353,
      payloadOff: 42,
    }),
  ],
  [
    "ICMP port unreachable quoting UDP",
    G.ICMP_PORT_UNREACH,
    ip({
      len: 73,
      ipTotalLen: 59,
      proto: 1,
      saddr: R,
      daddr: A,
      ipId: 28411,
      l4Off: 34,
      l4Len: 39,
      payloadOff: 42,
      icmpType: 3,
      icmpCode: 3,
      innerL3Off: 42,
      innerHdrLen: 20,
      innerProto: 17,
      innerSaddr: A,
      innerDaddr: R,
      innerSport: 40630,
      innerDport: 5353,
      innerL4Off: 62,
    }),
  ],
  [
    "ICMP fragmentation needed quoting ICMP echo",
    G.ICMP_FRAG_NEEDED,
    ip({
      len: 142,
      ipTotalLen: 128,
      proto: 1,
      saddr: R,
      daddr: A,
      ipId: 28472,
      l4Off: 34,
      l4Len: 108,
      payloadOff: 42,
      icmpType: 3,
      icmpCode: 4,
      innerL3Off: 42,
      innerHdrLen: 20,
      innerProto: 1,
      innerSaddr: A,
      innerDaddr: B,
      innerL4Off: 62,
    }),
  ],
  [
    "ICMP time exceeded",
    G.ICMP_TIME_EXCEEDED,
    ip({
      len: 78,
      ipTotalLen: 64,
      proto: 1,
      saddr: R,
      daddr: A,
      ipId: 28473,
      l4Off: 34,
      l4Len: 44,
      payloadOff: 42,
      icmpType: 11,
      icmpCode: 0,
      innerL3Off: 42,
      innerHdrLen: 20,
      innerProto: 1,
      innerSaddr: A,
      innerDaddr: B,
      innerL4Off: 62,
    }),
  ],
  [
    "IP options (NOP, Record Route)",
    G.ICMP_ECHO_RR,
    ip({
      len: 90,
      ipHdrLen: 60,
      ipTotalLen: 76,
      proto: 1,
      saddr: A,
      daddr: R,
      ipId: 10028,
      df: 1,
      l4Off: 74,
      l4Len: 16,
      sport: 4573,
      dport: 4573,
      payloadOff: 82,
      icmpType: 8,
      icmpCode: 0,
    }),
  ],
  [
    "IP options (Record Route, EOL)",
    G.ICMP_ECHO_REPLY_RR,
    ip({
      len: 90,
      ipHdrLen: 60,
      ipTotalLen: 76,
      proto: 1,
      saddr: R,
      daddr: A,
      ipId: 28474,
      l4Off: 74,
      l4Len: 16,
      sport: 4573,
      dport: 4573,
      payloadOff: 82,
      icmpType: 0,
      icmpCode: 0,
    }),
  ],
  [
    "first fragment",
    G.FRAG_FIRST,
    ip({
      len: 82,
      ipTotalLen: 68,
      ttl: 63,
      proto: 1,
      saddr: A,
      daddr: B,
      ipId: 53739,
      mf: 1,
      isFrag: 1,
      l4Off: 34,
      l4Len: 48,
      sport: 4575,
      dport: 4575,
      payloadOff: 42,
      icmpType: 8,
      icmpCode: 0,
    }),
  ],
  [
    "later fragment",
    G.FRAG_LATER,
    ip({
      len: 54,
      ipTotalLen: 40,
      ttl: 63,
      proto: 1,
      saddr: A,
      daddr: B,
      ipId: 53739,
      fragOff: 6,
      laterFrag: 1,
      isFrag: 1,
      l4Len: 20,
      payloadOff: 34,
    }),
  ],
  [
    "802.1Q-tagged UDP",
    G.VLAN_UDP,
    ip({
      len: 50,
      vlanTci: (3 << 13) | 100,
      l3Off: 18,
      ipTotalLen: 32,
      proto: 17,
      saddr: ipToU32("10.100.0.1"),
      daddr: ipToU32("10.100.0.2"),
      ipId: 0x1234,
      df: 1,
      l4Off: 38,
      l4Len: 12,
      sport: 40000,
      dport: 9999,
      payloadOff: 46,
    }),
  ],
];

describe("parseFrame: golden frames from tcpdump", () => {
  it.each(GOLDEN)("%s", (_name, frame, want) => {
    const { st, v } = parsed(frame);
    expect(st).toBe(ParseStatus.OK);
    expect(fields(v)).toEqual(want);
  });

  it.each(GOLDEN)("%s: L4 checksum as captured", (_name, frame) => {
    const { v } = parsed(frame);
    const want = v.l4Off < 0 || v.isFrag ? L4Csum.NA : L4Csum.OK;
    expect(checkL4Checksum(v)).toBe(want);
  });

  it("parses at offset 0 of a buffer that starts its ArrayBuffer", () => {
    const buf = G.TCP_SYN.slice();
    const v = new FrameView();
    expect(parseFrame(buf, new DataView(buf.buffer), 0, buf.length, v)).toBe(ParseStatus.OK);
    expect(v.l4Off).toBe(34);
    expect(v.mss).toBe(1460);
  });

  it("resets every field between frames (reused view)", () => {
    const v = new FrameView();
    parsed(G.ICMP_PORT_UNREACH, v);
    parsed(G.TCP_SYN, v);
    expect(fields(v)).toEqual(GOLDEN.find((g) => g[1] === G.TCP_SYN)![2]);
    parsed(G.FRAG_LATER, v);
    expect(fields(v)).toEqual(GOLDEN.find((g) => g[1] === G.FRAG_LATER)![2]);
    parsed(G.ARP_REQUEST, v);
    expect(fields(v)).toEqual(GOLDEN[0]![2]);
  });

  it("accepts Ethernet padding beyond the IP total length", () => {
    const padded = new Uint8Array(60);
    padded.set(G.UDP_DGRAM);
    const { st, v } = parsed(padded);
    expect(st).toBe(ParseStatus.OK);
    expect(v.len).toBe(60);
    expect(v.ipTotalLen).toBe(31);
    expect(v.l4Len).toBe(11);
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
  });

  it("ICMP frag-needed carries the next-hop MTU in bytes 6-7", () => {
    const { v } = parsed(G.ICMP_FRAG_NEEDED);
    expect(v.dv.getUint16(v.l4Off + 6)).toBe(68);
  });
});

describe("parseFrame: accessors", () => {
  it("reads TCP sequence, ack, window and payload length", () => {
    const { v } = parsed(G.TCP_SYN_ACK);
    expect(tcpSeq(v)).toBe(4141428832);
    expect(tcpAck(v)).toBe(3336364690);
    expect(tcpWindow(v)).toBe(65160);
    expect(tcpPayloadLen(v)).toBe(0);
    const psh = parsed(G.TCP_PSH).v;
    expect(tcpPayloadLen(psh)).toBe(6);
    expect(new TextDecoder().decode(psh.buf.subarray(psh.payloadOff, psh.payloadOff + 6))).toBe("hello\n");
  });

  it("reads the ICMP echo identifier and sequence", () => {
    const { v } = parsed(G.ICMP_ECHO);
    expect(icmpId(v)).toBe(4561);
    expect(icmpSeq(v)).toBe(1);
  });

  it("locates the L4 checksum field per protocol", () => {
    expect(l4CsumOff(parsed(G.TCP_SYN).v) - parsed(G.TCP_SYN).v.base).toBe(50);
    const u = parsed(G.UDP_DGRAM).v;
    expect(l4CsumOff(u) - u.base).toBe(40);
    const i = parsed(G.ICMP_ECHO).v;
    expect(l4CsumOff(i) - i.base).toBe(36);
    expect(l4CsumOff(parsed(G.FRAG_LATER).v)).toBe(-1);
  });

  it("setTcpSeq / setTcpAck / setTcpWindow keep the checksum valid", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffffffff }),
        fc.nat({ max: 0xffff }),
        (s, a, w) => {
          const { v } = parsed(G.TCP_PSH);
          setTcpSeq(v, s);
          setTcpAck(v, a);
          setTcpWindow(v, w);
          expect(tcpSeq(v)).toBe(s);
          expect(tcpAck(v)).toBe(a);
          expect(tcpWindow(v)).toBe(w);
          expect(checkL4Checksum(v)).toBe(L4Csum.OK);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("clampTcpMss lowers MSS at even and odd option offsets, checksum kept valid", () => {
    for (const lead of [[], [1], [1, 1], [1, 1, 1]]) {
      const f = eth()
        .ipv4({ src: A, dst: R })
        .tcp({ sport: 1, dport: 2, flags: TCP_SYN, options: [...lead, 2, 4, 0x05, 0xb4, 4, 2] })
        .build();
      const { v } = parsed(f);
      expect(v.mss).toBe(1460);
      expect(clampTcpMss(v, 1400)).toBe(1400);
      expect(v.mss).toBe(1400);
      expect(checkL4Checksum(v)).toBe(L4Csum.OK);
      expect(parsed(bytesOf({ ...parsed(f).p, buf: v.buf, off: v.base, len: v.len })).v.mss).toBe(1400);
      // Already below: unchanged.
      expect(clampTcpMss(v, 1452)).toBe(1400);
      expect(checkL4Checksum(v)).toBe(L4Csum.OK);
    }
    const noMss = parsed(
      eth().ipv4({ src: A, dst: R }).tcp({ sport: 1, dport: 2, flags: TCP_SYN }).build(),
    ).v;
    expect(clampTcpMss(noMss, 1000)).toBe(-1);
  });
});

describe("parseFrame: TCP MSS option walk", () => {
  function mssOf(options: number[], flags = TCP_SYN): { st: number; mss: number } {
    const f = eth().ipv4({ src: A, dst: R }).tcp({ sport: 1, dport: 2, flags, options }).build();
    const { st, v } = parsed(f);
    return { st, mss: v.mss };
  }

  it.each<[string, number[], number]>([
    ["MSS first", [2, 4, 0x05, 0xb4], 1460],
    ["after NOPs and SACK-permitted", [1, 1, 4, 2, 2, 4, 0x02, 0x18], 536],
    ["after timestamps", [8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 0x23, 0x28], 9000],
    ["EOL before MSS ends the list", [0, 0, 0, 0, 2, 4, 0x05, 0xb4], -1],
    ["length 0 stops the walk", [3, 0, 2, 4, 0x05, 0xb4], -1],
    ["length 1 stops the walk", [3, 1, 2, 4, 0x05, 0xb4], -1],
    ["option running past the header stops the walk", [1, 1, 1, 8, 40, 2, 4, 0x05], -1],
    ["MSS with wrong length is skipped", [2, 6, 0x05, 0xb4, 0, 0, 2, 4, 0x04, 0x00], 1024],
    ["MSS cut by the end of the header", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 4], -1],
    ["kind byte alone at the very end", [1, 1, 1, 2], -1],
  ])("%s", (_n, options, want) => {
    const r = mssOf(options);
    expect(r.st).toBe(ParseStatus.OK);
    expect(r.mss).toBe(want);
  });

  it("is not read on segments without SYN", () => {
    expect(mssOf([2, 4, 0x05, 0xb4], TCP_ACK)).toEqual({ st: ParseStatus.OK, mss: -1 });
  });

  it("never crashes on random option bytes", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(255), { maxLength: 40 }), (opts) => {
        const r = mssOf(opts);
        expect(r.st).toBe(ParseStatus.OK);
        expect(r.mss === -1 || (r.mss >= 0 && r.mss <= 0xffff)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

/** Set a 16-bit field and recompute the IPv4 header checksum, so only the intended check fails. */
function withIpField(frame: Uint8Array, l3: number, rel: number, val: number): Uint8Array {
  const f = frame.slice();
  f[l3 + rel] = val >>> 8;
  f[l3 + rel + 1] = val & 0xff;
  const hl = (f[l3]! & 0x0f) * 4;
  const c = ipv4HeaderChecksum(f, l3, hl);
  f[l3 + 10] = c >>> 8;
  f[l3 + 11] = c & 0xff;
  return f;
}

describe("parseFrame: malformed frames", () => {
  const st = (f: Uint8Array) => parsed(f).st;

  it("Ethernet and VLAN", () => {
    expect(st(new Uint8Array(0))).toBe(ParseStatus.ETH_SHORT);
    expect(st(G.TCP_SYN.subarray(0, 13))).toBe(ParseStatus.ETH_SHORT);
    expect(st(G.VLAN_UDP.subarray(0, 17))).toBe(ParseStatus.VLAN_SHORT);
    const v6 = G.TCP_SYN.slice();
    v6[12] = 0x86;
    v6[13] = 0xdd;
    const r = parsed(v6);
    expect(r.st).toBe(ParseStatus.L2_OTHER);
    expect(r.v.etherType).toBe(0x86dd);
    expect(r.v.l3Off - r.v.base).toBe(14);
  });

  it("rejects a frame extending past its buffer", () => {
    const buf = G.TCP_SYN.slice();
    const v = new FrameView();
    expect(parseFrame(buf, new DataView(buf.buffer), 10, buf.length, v)).toBe(ParseStatus.ETH_SHORT);
  });

  it("ARP: short and unsupported", () => {
    expect(st(G.ARP_REQUEST.subarray(0, 41))).toBe(ParseStatus.ARP_SHORT);
    const base = { op: 1, sha: "02:00:00:00:00:01", spa: A, tpa: R };
    expect(
      st(
        eth()
          .arp({ ...base, htype: 6 })
          .build(),
      ),
    ).toBe(ParseStatus.ARP_UNSUPPORTED);
    expect(
      st(
        eth()
          .arp({ ...base, ptype: 0x86dd })
          .build(),
      ),
    ).toBe(ParseStatus.ARP_UNSUPPORTED);
    expect(
      st(
        eth()
          .arp({ ...base, hlen: 8 })
          .build(),
      ),
    ).toBe(ParseStatus.ARP_UNSUPPORTED);
    expect(
      st(
        eth()
          .arp({ ...base, plen: 16 })
          .build(),
      ),
    ).toBe(ParseStatus.ARP_UNSUPPORTED);
    expect(st(eth().arp(base).build())).toBe(ParseStatus.OK);
  });

  it("IPv4 header checks", () => {
    const f = G.TCP_SYN;
    const v6 = f.slice();
    v6[14] = 0x65;
    expect(st(v6)).toBe(ParseStatus.IP_BAD_VERSION);
    const ihl4 = f.slice();
    ihl4[14] = 0x44;
    expect(st(ihl4)).toBe(ParseStatus.IP_BAD_IHL);
    const ihl15 = f.slice();
    ihl15[14] = 0x4f; // 60-byte header in a 60-byte packet: header fits, checksum does not
    expect(st(ihl15)).toBe(ParseStatus.IP_BAD_CSUM);
    expect(st(withIpField(f, 14, 2, 61))).toBe(ParseStatus.IP_BAD_TOTLEN); // > frame
    expect(st(withIpField(f, 14, 2, 19))).toBe(ParseStatus.IP_BAD_TOTLEN); // < header
    expect(st(withIpField(f, 14, 2, 20))).toBe(ParseStatus.TCP_SHORT); // header only
    const bad = f.slice();
    bad[22]! ^= 1; // TTL changed, checksum not
    expect(st(bad)).toBe(ParseStatus.IP_BAD_CSUM);
    expect(st(eth().ipv4({ src: A, dst: R }).tcp({ sport: 1, dport: 2 }).build({ badIpCsum: true }))).toBe(
      ParseStatus.IP_BAD_CSUM,
    );
  });

  it.each<[string, number[], number]>([
    ["NOP padding", [1, 1, 1, 1], ParseStatus.OK],
    ["EOL then garbage", [0, 0xff, 0xff, 0xff], ParseStatus.OK],
    ["router alert", [0x94, 4, 0, 0], ParseStatus.OK],
    ["option length 0", [0x94, 0, 0, 0], ParseStatus.IP_BAD_OPTIONS],
    ["option length 1", [0x94, 1, 0, 0], ParseStatus.IP_BAD_OPTIONS],
    ["option past the header", [1, 0x07, 8, 4], ParseStatus.IP_BAD_OPTIONS],
    ["kind without length byte at the end", [1, 1, 1, 0x44], ParseStatus.IP_BAD_OPTIONS],
  ])("IP options: %s", (_n, options, want) => {
    expect(st(eth().ipv4({ src: A, dst: R, options }).udp({ sport: 1, dport: 2 }).build())).toBe(want);
  });

  it("TCP header checks", () => {
    const mk = (doff: number, extra = 0) =>
      eth().ipv4({ src: A, dst: R }).tcp({ sport: 1, dport: 2, doff }).payload(new Uint8Array(extra)).build();
    expect(st(mk(4))).toBe(ParseStatus.TCP_BAD_DOFF);
    expect(st(mk(6))).toBe(ParseStatus.TCP_BAD_DOFF); // 24 > 20 bytes present
    expect(st(mk(6, 4))).toBe(ParseStatus.OK);
    expect(st(mk(15, 39))).toBe(ParseStatus.TCP_BAD_DOFF);
    expect(st(mk(15, 40))).toBe(ParseStatus.OK);
    const short = eth().ipv4({ src: A, dst: R, proto: 6 }).payload(new Uint8Array(19)).build();
    expect(st(short)).toBe(ParseStatus.TCP_SHORT);
  });

  it("UDP header checks", () => {
    const mk = (len: number, data = 4, mf = false) =>
      eth()
        .ipv4({ src: A, dst: R, mf })
        .udp({ sport: 1, dport: 2, len })
        .payload(new Uint8Array(data))
        .build();
    expect(st(mk(7))).toBe(ParseStatus.UDP_BAD_LEN);
    expect(st(mk(13))).toBe(ParseStatus.UDP_BAD_LEN);
    expect(st(mk(12))).toBe(ParseStatus.OK);
    expect(st(mk(10))).toBe(ParseStatus.OK); // shorter than the IP payload: allowed
    expect(st(mk(1000, 4, true))).toBe(ParseStatus.OK); // first fragment: length is the datagram's
    expect(st(mk(7, 4, true))).toBe(ParseStatus.UDP_BAD_LEN);
    const short = eth().ipv4({ src: A, dst: R, proto: 17 }).payload(new Uint8Array(7)).build();
    expect(st(short)).toBe(ParseStatus.UDP_SHORT);
  });

  it("ICMP header checks", () => {
    const short = eth().ipv4({ src: A, dst: R, proto: 1 }).payload(new Uint8Array(7)).build();
    expect(st(short)).toBe(ParseStatus.ICMP_SHORT);
    const other = parsed(eth().ipv4({ src: A, dst: R }).icmp({ type: 13 }).build());
    expect(other.st).toBe(ParseStatus.OK);
    expect(other.v.icmpType).toBe(13);
    expect(other.v.innerL3Off).toBe(-1);
    expect(other.v.sport).toBe(0);
  });

  it("other IP protocols parse to L3 with no L4 header", () => {
    const gre = parsed(eth().ipv4({ src: A, dst: R, proto: 47 }).payload(new Uint8Array(8)).build());
    expect(gre.st).toBe(ParseStatus.OK);
    expect(gre.v.proto).toBe(47);
    expect(gre.v.l4Off).toBe(-1);
    expect(gre.v.l4Len).toBe(8);
    expect(gre.v.payloadOff - gre.v.base).toBe(34);
    expect(checkL4Checksum(gre.v)).toBe(L4Csum.NA);
  });
});

describe("parseFrame: ICMP errors with short or odd embedded data", () => {
  const udp = ipv4({ src: A, dst: R, id: 7 }).udp({ sport: 1111, dport: 53 }).payload("query").build();
  const err = (embedded: Uint8Array) =>
    parsed(eth().ipv4({ src: R, dst: A }).icmpError(3, 3, embedded).build());

  it("embedded header plus 8 bytes: ports present", () => {
    const { st, v } = err(udp.subarray(0, 28));
    expect(st).toBe(ParseStatus.OK);
    expect(v.innerL4Off - v.base).toBe(62);
    expect([v.innerSport, v.innerDport]).toEqual([1111, 53]);
  });

  it.each([20, 21, 24, 27])("embedded header plus %i-20 bytes: header only, no ports", (n) => {
    const { st, v } = err(udp.subarray(0, n));
    expect(st).toBe(ParseStatus.OK);
    expect(v.innerL3Off - v.base).toBe(42);
    expect(v.innerProto).toBe(17);
    expect(v.innerSaddr).toBe(A);
    expect(v.innerL4Off).toBe(-1);
    expect([v.innerSport, v.innerDport]).toEqual([0, 0]);
  });

  it.each([0, 1, 19])("%i bytes embedded: ICMP_INNER_SHORT", (n) => {
    expect(err(udp.subarray(0, n)).st).toBe(ParseStatus.ICMP_INNER_SHORT);
  });

  it("embedded header that is not IPv4 or claims more than present: ICMP_INNER_SHORT", () => {
    const v6 = udp.slice();
    v6[0] = 0x65;
    expect(err(v6).st).toBe(ParseStatus.ICMP_INNER_SHORT);
    const ihl3 = udp.slice();
    ihl3[0] = 0x43;
    expect(err(ihl3).st).toBe(ParseStatus.ICMP_INNER_SHORT);
    const ihl8 = udp.slice(0, 28);
    ihl8[0] = 0x48; // 32-byte header, 28 bytes present
    expect(err(ihl8).st).toBe(ParseStatus.ICMP_INNER_SHORT);
  });

  it("embedded later fragment: no inner L4 header", () => {
    const frag = ipv4({ src: A, dst: R, fragOff: 100, proto: 17 }).payload(new Uint8Array(16)).build();
    const { st, v } = err(frag);
    expect(st).toBe(ParseStatus.OK);
    expect(v.innerL3Off).toBeGreaterThan(0);
    expect(v.innerL4Off).toBe(-1);
    expect(v.innerSport).toBe(0);
  });

  it("embedded ICMP echo: L4 offset but no ports", () => {
    const { v } = parsed(G.ICMP_TIME_EXCEEDED);
    expect(v.innerProto).toBe(1);
    expect(v.innerL4Off).toBeGreaterThan(0);
    expect([v.innerSport, v.innerDport]).toEqual([0, 0]);
  });
});

/** The status a frame cut to `n` bytes must get (frame has a valid IPv4 or ARP packet). */
function truncStatus(frame: Uint8Array, n: number): number {
  if (n < 14) return ParseStatus.ETH_SHORT;
  let l3 = 14;
  let et = (frame[12]! << 8) | frame[13]!;
  if (et === 0x8100) {
    if (n < 18) return ParseStatus.VLAN_SHORT;
    l3 = 18;
    et = (frame[16]! << 8) | frame[17]!;
  }
  if (et === 0x0806) return n - l3 < 28 ? ParseStatus.ARP_SHORT : ParseStatus.OK;
  const hl = (frame[l3]! & 0x0f) * 4;
  const tot = (frame[l3 + 2]! << 8) | frame[l3 + 3]!;
  if (n - l3 < 20 || n - l3 < hl) return ParseStatus.IP_SHORT;
  if (n - l3 < tot) return ParseStatus.IP_BAD_TOTLEN;
  return ParseStatus.OK;
}

describe("parseFrame: truncation at every length", () => {
  it.each(GOLDEN)("%s: frame cut at every length", (_name, frame, want) => {
    for (let n = 0; n <= frame.length; n++) {
      const { st, v } = parsed(frame.subarray(0, n));
      expect([n, st]).toEqual([n, truncStatus(frame, n)]);
      if (st === ParseStatus.OK) expect(fields(v)).toEqual({ ...want, len: n });
    }
  });

  /** Shorten the IP packet itself (total length and checksum fixed) to `k` bytes of L4. */
  function cutL4(frame: Uint8Array, k: number): Uint8Array {
    const hl = (frame[14]! & 0x0f) * 4;
    return withIpField(frame.subarray(0, 14 + hl + k), 14, 2, hl + k);
  }

  it("TCP segment cut at every length inside a consistent IP packet", () => {
    for (let k = 0; k <= 40; k++) {
      const want = k < 20 ? ParseStatus.TCP_SHORT : k < 40 ? ParseStatus.TCP_BAD_DOFF : ParseStatus.OK;
      expect([k, parsed(cutL4(G.TCP_SYN, k)).st]).toEqual([k, want]);
    }
  });

  it("UDP datagram cut at every length inside a consistent IP packet", () => {
    for (let k = 0; k <= 11; k++) {
      const want = k < 8 ? ParseStatus.UDP_SHORT : k < 11 ? ParseStatus.UDP_BAD_LEN : ParseStatus.OK;
      expect([k, parsed(cutL4(G.UDP_DGRAM, k)).st]).toEqual([k, want]);
    }
  });

  it("ICMP error cut at every length inside a consistent IP packet", () => {
    for (let k = 0; k <= 39; k++) {
      const { st, v } = parsed(cutL4(G.ICMP_PORT_UNREACH, k));
      const want = k < 8 ? ParseStatus.ICMP_SHORT : k < 28 ? ParseStatus.ICMP_INNER_SHORT : ParseStatus.OK;
      expect([k, st]).toEqual([k, want]);
      if (st === ParseStatus.OK) expect(v.innerL4Off >= 0).toBe(k >= 36);
    }
  });
});

describe("parseFrame: random input", () => {
  const CODES = new Set(Object.values(ParseStatus) as number[]);

  /** Invariants of a view after PARSE_OK: everything lies inside the frame. */
  function checkInvariants(v: FrameView): void {
    const end = v.base + v.len;
    expect(v.l3Off).toBeLessThanOrEqual(end);
    if (v.etherType === 0x0800) {
      expect(v.l3Off + v.ipTotalLen).toBeLessThanOrEqual(end);
      expect(v.ipHdrLen).toBeGreaterThanOrEqual(20);
      expect(v.l4Len).toBe(v.ipTotalLen - v.ipHdrLen);
      if (v.l4Off >= 0) {
        expect(v.l4Off).toBe(v.l3Off + v.ipHdrLen);
        expect(v.payloadOff).toBeLessThanOrEqual(v.l4Off + v.l4Len);
        if (v.proto === 6) expect(v.l4Off + v.tcpHdrLen).toBeLessThanOrEqual(v.l4Off + v.l4Len);
      }
      if (v.innerL3Off >= 0) expect(v.innerL3Off + v.innerHdrLen).toBeLessThanOrEqual(v.l4Off + v.l4Len);
      if (v.innerL4Off >= 0) expect(v.innerL4Off + 8).toBeLessThanOrEqual(v.l4Off + v.l4Len);
    }
  }

  it("random bytes never throw and return a known status", () => {
    const v = new FrameView();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(40), (bytes, lead) => {
        const p = place(bytes, lead);
        const st = parseFrame(p.buf, p.dv, p.off, p.len, v);
        expect(CODES.has(st)).toBe(true);
        expect(st).toBeLessThan(PARSE_STATUS_COUNT);
        if (st === ParseStatus.OK) checkInvariants(v);
      }),
      { numRuns: 2000 },
    );
  });

  it("mutated golden frames (IP checksum fixed up) never throw and keep the invariants", () => {
    const frames = GOLDEN.map((g) => g[1]);
    const v = new FrameView();
    fc.assert(
      fc.property(
        fc.constantFrom(...frames),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        fc.nat(200),
        (frame, muts, fixCsum, cut) => {
          let f = frame.slice();
          for (const [at, val] of muts) f[at % f.length] = val;
          const l3 = f[12] === 0x81 && f[13] === 0 ? 18 : 14;
          if (fixCsum && f.length >= l3 + 20) {
            const hl = Math.max(20, (f[l3]! & 0x0f) * 4);
            if (f.length >= l3 + hl) {
              const c = ipv4HeaderChecksum(f, l3, hl);
              f[l3 + 10] = c >>> 8;
              f[l3 + 11] = c & 0xff;
            }
          }
          f = f.subarray(0, Math.max(0, f.length - (cut % 8)));
          const p = place(f);
          const st = parseFrame(p.buf, p.dv, p.off, p.len, v);
          expect(CODES.has(st)).toBe(true);
          if (st === ParseStatus.OK) {
            checkInvariants(v);
            expect([L4Csum.OK, L4Csum.BAD, L4Csum.NA]).toContain(checkL4Checksum(v));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
