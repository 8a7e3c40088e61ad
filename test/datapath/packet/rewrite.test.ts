import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import {
  csumAdd,
  csumFold16,
  icmpChecksum,
  ipv4HeaderChecksum,
  tcpUdpChecksum,
} from "../../../src/datapath/packet/checksum.js";
import { checkL4Checksum, L4Csum, parseFrame } from "../../../src/datapath/packet/parse.js";
import {
  decTtl,
  fixIcmpChecksum,
  fixInnerIpChecksum,
  fixIpChecksum,
  fixL4Checksum,
  setDaddr,
  setDport,
  setEthAddrs,
  setIcmpId,
  setInnerDaddr,
  setInnerDport,
  setInnerSaddr,
  setInnerSport,
  setSaddr,
  setSport,
} from "../../../src/datapath/packet/rewrite.js";
import { FrameView, ParseStatus, TCP_ACK } from "../../../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import * as G from "./golden.js";
import { bytesOf, parsed, toHex } from "./helpers.js";

const u16 = (v: FrameView, o: number) => v.dv.getUint16(o);

/** The IP header checksum equals a full recompute. */
function ipCsumOk(v: FrameView): void {
  expect(u16(v, v.l3Off + 10)).toBe(ipv4HeaderChecksum(v.buf, v.l3Off, v.ipHdrLen));
}

/** The L4 checksum field equals a full recompute (TCP/UDP with pseudo-header, ICMP without). */
function l4CsumMatchesFull(v: FrameView): void {
  const o = v.l4Off;
  if (v.proto === IPPROTO_TCP) {
    expect(u16(v, o + 16)).toBe(tcpUdpChecksum(v.buf, v.saddr, v.daddr, IPPROTO_TCP, o, v.l4Len, o + 16));
  } else if (v.proto === IPPROTO_UDP) {
    const c = u16(v, o + 6);
    if (c !== 0) expect(c).toBe(tcpUdpChecksum(v.buf, v.saddr, v.daddr, IPPROTO_UDP, o, v.l4Len, o + 6));
  } else {
    expect(u16(v, o + 2)).toBe(icmpChecksum(v.buf, o, v.l4Len));
  }
  expect(checkL4Checksum(v)).toBe(L4Csum.OK);
}

/** Re-parse the frame bytes: the view the setters maintained must equal a fresh parse. */
function reparseEquals(v: FrameView): void {
  const w = new FrameView();
  expect(parseFrame(v.buf, v.dv, v.base, v.len, w)).toBe(ParseStatus.OK);
  for (const k of [
    "saddr",
    "daddr",
    "sport",
    "dport",
    "ttl",
    "innerSaddr",
    "innerDaddr",
    "innerSport",
    "innerDport",
  ]) {
    expect([k, w[k as keyof FrameView]]).toEqual([k, v[k as keyof FrameView]]);
  }
}

const arbIp = fc.nat({ max: 0xffffffff });
const arbPort = fc.nat({ max: 0xffff });
/** A sequence of outer rewrites. */
const arbOps = fc.array(
  fc.oneof(
    fc.tuple(fc.constant("saddr" as const), arbIp),
    fc.tuple(fc.constant("daddr" as const), arbIp),
    fc.tuple(fc.constant("sport" as const), arbPort),
    fc.tuple(fc.constant("dport" as const), arbPort),
    fc.tuple(fc.constant("ttl" as const), fc.constant(0)),
  ),
  { minLength: 1, maxLength: 8 },
);

function apply(v: FrameView, ops: readonly (readonly [string, number])[]): void {
  for (const [op, val] of ops) {
    if (op === "saddr") setSaddr(v, val);
    else if (op === "daddr") setDaddr(v, val);
    else if (op === "sport") setSport(v, val);
    else if (op === "dport") setDport(v, val);
    else decTtl(v);
  }
}

describe("incremental rewrites equal a full recompute", () => {
  it("TCP (random frames, random rewrite sequences)", () => {
    fc.assert(
      fc.property(
        arbIp,
        arbIp,
        arbPort,
        arbPort,
        fc.uint8Array({ maxLength: 41 }),
        fc.option(fc.nat({ max: 0xffff }), { nil: undefined }),
        arbOps,
        (s, d, sp, dp, data, tci, ops) => {
          const b = eth();
          if (tci !== undefined) b.vlan(tci);
          const f = b
            .ipv4({ src: s, dst: d, ttl: 200 })
            .tcp({ sport: sp, dport: dp, flags: TCP_ACK })
            .payload(data);
          const { v } = parsed(f.build());
          apply(v, ops);
          ipCsumOk(v);
          l4CsumMatchesFull(v);
          reparseEquals(v);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("UDP with a checksum (a result of 0 is sent as 0xffff)", () => {
    fc.assert(
      fc.property(
        arbIp,
        arbIp,
        arbPort,
        arbPort,
        fc.uint8Array({ maxLength: 33 }),
        arbOps,
        (s, d, sp, dp, data, ops) => {
          const { v } = parsed(
            eth().ipv4({ src: s, dst: d }).udp({ sport: sp, dport: dp }).payload(data).build(),
          );
          apply(v, ops);
          ipCsumOk(v);
          expect(u16(v, v.l4Off + 6)).not.toBe(0);
          l4CsumMatchesFull(v);
          reparseEquals(v);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("UDP whose checksum lands on a computed 0 after a rewrite gets 0xffff, never 0", () => {
    // Search the port / address values whose full recompute is 0xffff (a computed 0), then
    // check that the incremental path writes 0xffff too, for 16-bit and 32-bit rewrites.
    const frame = eth()
      .ipv4({ src: "10.0.0.1", dst: "10.0.0.2" })
      .udp({ sport: 1, dport: 7 })
      .payload("q")
      .build();
    const base = parsed(frame).v;
    const scratch = base.buf.slice();
    const l4 = base.l4Off;
    let portHit = -1;
    let addrHit = -1;
    for (let x = 0; x < 0x10000 && (portHit < 0 || addrHit < 0); x++) {
      scratch.set(base.buf);
      scratch[l4 + 2] = x >>> 8;
      scratch[l4 + 3] = x & 0xff;
      const cPort = tcpUdpChecksum(scratch, base.saddr, base.daddr, IPPROTO_UDP, l4, base.l4Len, l4 + 6);
      if (portHit < 0 && cPort === 0xffff) portHit = x;
      const a = (0x0a000000 | x) >>> 0;
      scratch.set(base.buf);
      const cAddr = tcpUdpChecksum(scratch, a, base.daddr, IPPROTO_UDP, l4, base.l4Len, l4 + 6);
      if (addrHit < 0 && cAddr === 0xffff) addrHit = a;
    }
    expect(portHit).toBeGreaterThanOrEqual(0);
    expect(addrHit).toBeGreaterThanOrEqual(0);
    const p = parsed(frame).v;
    setDport(p, portHit);
    expect(u16(p, p.l4Off + 6)).toBe(0xffff);
    expect(checkL4Checksum(p)).toBe(L4Csum.OK);
    const a = parsed(frame).v;
    setSaddr(a, addrHit);
    expect(u16(a, a.l4Off + 6)).toBe(0xffff);
    expect(checkL4Checksum(a)).toBe(L4Csum.OK);
    // The same inside an ICMP error: the embedded UDP checksum.
    const err = parsed(
      eth().ipv4({ src: "10.0.0.2", dst: "10.0.0.1" }).icmpError(3, 3, frame.subarray(14)).build(),
    ).v;
    const i4 = err.innerL4Off;
    expect(i4).toBeGreaterThan(0);
    setInnerDport(err, portHit);
    expect(u16(err, i4 + 6)).toBe(0xffff);
    l4CsumMatchesFull(err);
  });

  it("UDP without a checksum: stays 0", () => {
    fc.assert(
      fc.property(arbIp, arbIp, arbPort, arbPort, arbOps, (s, d, sp, dp, ops) => {
        const { v } = parsed(
          eth().ipv4({ src: s, dst: d }).udp({ sport: sp, dport: dp, noCsum: true }).payload("x").build(),
        );
        apply(v, ops);
        ipCsumOk(v);
        expect(u16(v, v.l4Off + 6)).toBe(0);
        reparseEquals(v);
      }),
      { numRuns: 200 },
    );
  });

  it("later fragments: only the IP header changes, ports are not touched", () => {
    fc.assert(
      fc.property(arbIp, arbIp, fc.uint8Array({ minLength: 8, maxLength: 40 }), arbOps, (s, d, data, ops) => {
        const f = eth().ipv4({ src: s, dst: d, fragOff: 3, proto: 6 }).payload(data).build();
        const { v } = parsed(f);
        expect(setSport(v, 1)).toBe(0);
        expect(setDport(v, 1)).toBe(0);
        apply(v, ops);
        ipCsumOk(v);
        expect(toHex(v.buf.subarray(v.l3Off + 20, v.base + v.len))).toBe(toHex(f.subarray(34)));
        reparseEquals(v);
      }),
      { numRuns: 200 },
    );
  });

  it("first fragment: the update is right for the reassembled datagram", () => {
    fc.assert(
      fc.property(
        arbIp,
        arbIp,
        arbPort,
        arbPort,
        fc.uint8Array({ minLength: 16, maxLength: 64 }),
        arbOps,
        (s, d, sp, dp, data, ops) => {
          // A whole UDP datagram, then split after 8 bytes of payload into two fragments.
          const whole = ipv4({ src: s, dst: d, id: 99 }).udp({ sport: sp, dport: dp }).payload(data).build();
          const l4 = whole.subarray(20);
          const first = eth()
            .ipv4({ src: s, dst: d, id: 99, mf: true, proto: 17 })
            .payload(l4.subarray(0, 16))
            .build();
          const later = eth()
            .ipv4({ src: s, dst: d, id: 99, fragOff: 2, proto: 17 })
            .payload(l4.subarray(16))
            .build();
          const a = parsed(first).v;
          const b = parsed(later).v;
          expect(a.l4Off).toBeGreaterThan(0);
          expect(b.laterFrag).toBe(1);
          apply(a, ops);
          // The later fragment gets the same address rewrites (its ports live in the first one).
          setSaddr(b, a.saddr);
          setDaddr(b, a.daddr);
          ipCsumOk(a);
          ipCsumOk(b);
          const re = new Uint8Array(l4.length);
          re.set(a.buf.subarray(a.l4Off, a.l4Off + 16));
          re.set(b.buf.subarray(b.l3Off + 20, b.l3Off + 20 + l4.length - 16), 16);
          const c = (re[6]! << 8) | re[7]!;
          expect(c).toBe(tcpUdpChecksum(re, a.saddr, a.daddr, IPPROTO_UDP, 0, re.length, 6));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("ICMP packets: address rewrites leave the ICMP checksum alone; echo id rewrite updates it", () => {
    fc.assert(
      fc.property(arbIp, arbIp, arbPort, arbOps, (s, d, id, ops) => {
        const { v } = parsed(
          eth().ipv4({ src: s, dst: d }).icmp({ type: 8, id: 1, seq: 2 }).payload("abc").build(),
        );
        const before = u16(v, v.l4Off + 2);
        expect(setSport(v, 5)).toBe(0);
        apply(v, ops);
        ipCsumOk(v);
        expect(u16(v, v.l4Off + 2)).toBe(before);
        expect(setIcmpId(v, id)).toBe(1);
        expect([v.sport, v.dport]).toEqual([id, id]);
        l4CsumMatchesFull(v);
        reparseEquals(v);
      }),
      { numRuns: 200 },
    );
    expect(setIcmpId(parsed(G.ICMP_PORT_UNREACH).v, 1)).toBe(0);
  });

  it("an echo reply rewritten to id 0 with seq 0 and no data gets checksum 0xffff, the only valid one", () => {
    const { v } = parsed(
      eth().ipv4({ src: "10.0.0.1", dst: "10.0.0.2" }).icmp({ type: 0, id: 7, seq: 0 }).build(),
    );
    expect(setIcmpId(v, 0)).toBe(1);
    expect(u16(v, v.l4Off + 2)).toBe(0xffff);
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
  });
});

describe("ICMP error: embedded header rewrites", () => {
  const arbInnerOps = fc.array(
    fc.oneof(
      fc.tuple(fc.constant("isaddr" as const), arbIp),
      fc.tuple(fc.constant("idaddr" as const), arbIp),
      fc.tuple(fc.constant("isport" as const), arbPort),
      fc.tuple(fc.constant("idport" as const), arbPort),
      fc.tuple(fc.constant("saddr" as const), arbIp),
      fc.tuple(fc.constant("daddr" as const), arbIp),
    ),
    { minLength: 1, maxLength: 8 },
  );

  function applyInner(v: FrameView, ops: readonly (readonly [string, number])[]): void {
    for (const [op, val] of ops) {
      if (op === "isaddr") expect(setInnerSaddr(v, val)).toBe(1);
      else if (op === "idaddr") expect(setInnerDaddr(v, val)).toBe(1);
      else if (op === "isport") setInnerSport(v, val);
      else if (op === "idport") setInnerDport(v, val);
      else if (op === "saddr") setSaddr(v, val);
      else setDaddr(v, val);
    }
  }

  /** Embedded packet as the ICMP error holds it. */
  function inner(v: FrameView): { ip: Uint8Array; l4: Uint8Array } {
    const ip = v.buf.subarray(v.innerL3Off, v.l4Off + v.l4Len);
    return { ip, l4: ip.subarray(v.innerHdrLen) };
  }

  it("quoting a whole UDP/TCP packet: outer ICMP, inner IP and inner L4 checksums all equal recomputes", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(6, 17),
        arbIp,
        arbIp,
        arbPort,
        arbPort,
        fc.uint8Array({ maxLength: 21 }),
        arbInnerOps,
        (proto, s, d, sp, dp, data, ops) => {
          const b = ipv4({ src: s, dst: d, options: proto === 6 ? [1, 1, 1, 1] : [] });
          const emb = (proto === 6 ? b.tcp({ sport: sp, dport: dp }) : b.udp({ sport: sp, dport: dp }))
            .payload(data)
            .build();
          const { v } = parsed(eth().ipv4({ src: d, dst: s }).icmpError(3, 3, emb).build());
          applyInner(v, ops);
          ipCsumOk(v);
          l4CsumMatchesFull(v); // outer ICMP checksum
          const { ip, l4 } = inner(v);
          expect(ip.length).toBe(emb.length);
          expect((ip[10]! << 8) | ip[11]!).toBe(ipv4HeaderChecksum(ip, 0, v.innerHdrLen));
          const co = proto === 6 ? 16 : 6;
          expect((l4[co]! << 8) | l4[co + 1]!).toBe(
            tcpUdpChecksum(l4, v.innerSaddr, v.innerDaddr, proto, 0, l4.length, co),
          );
          reparseEquals(v);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("quoting only 8 bytes of TCP (checksum not quoted) or UDP with checksum 0", () => {
    fc.assert(
      fc.property(arbIp, arbIp, arbPort, arbPort, arbInnerOps, fc.boolean(), (s, d, sp, dp, ops, tcp) => {
        const emb = tcp
          ? ipv4({ src: s, dst: d }).tcp({ sport: sp, dport: dp }).build().subarray(0, 28)
          : ipv4({ src: s, dst: d }).udp({ sport: sp, dport: dp, noCsum: true }).payload("zz").build();
        const { v } = parsed(eth().ipv4({ src: d, dst: s }).icmpError(11, 0, emb).build());
        const l4Before = inner(v).l4.slice(4);
        applyInner(v, ops);
        ipCsumOk(v);
        l4CsumMatchesFull(v);
        const { ip, l4 } = inner(v);
        expect((ip[10]! << 8) | ip[11]!).toBe(ipv4HeaderChecksum(ip, 0, v.innerHdrLen));
        // Bytes past the ports are untouched (TCP seq; UDP length and zero checksum).
        expect(toHex(l4.slice(4))).toBe(toHex(l4Before));
        reparseEquals(v);
      }),
      { numRuns: 300 },
    );
  });

  it("a quote cut anywhere rewrites like the same prefix of a whole quote, within the message", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(6, 17),
        arbIp,
        arbIp,
        arbPort,
        arbPort,
        fc.nat(60),
        arbInnerOps,
        (proto, s, d, sp, dp, cut, ops) => {
          const b = ipv4({ src: s, dst: d });
          const emb = (proto === 6 ? b.tcp({ sport: sp, dport: dp }) : b.udp({ sport: sp, dport: dp }))
            .payload("0123456789abcdef")
            .build();
          const k = 28 + (cut % (emb.length - 27)); // header + at least 8 bytes
          const whole = parsed(eth().ipv4({ src: d, dst: s }).icmpError(3, 3, emb).build());
          const part = parsed(eth().ipv4({ src: d, dst: s }).icmpError(3, 3, emb.subarray(0, k)).build());
          applyInner(whole.v, ops);
          applyInner(part.v, ops);
          const got = inner(part.v).ip.slice();
          const want = inner(whole.v).ip.slice(0, k);
          // A TCP quote ending inside the checksum (17 bytes) holds half of it: no 16-bit
          // incremental update is possible, so that byte is left as it was.
          if (proto === 6 && k === 20 + 17) want[36] = got[36]!;
          expect(toHex(got)).toBe(toHex(want));
          l4CsumMatchesFull(part.v);
          // Nothing written past the frame (the test buffer's tail is 0xa5).
          const p = part.p;
          expect(p.buf.subarray(p.off + p.len).every((x) => x === 0xa5)).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("embedded header without ports: addresses rewrite, ports refuse", () => {
    const emb = ipv4({ src: "1.1.1.1", dst: "2.2.2.2" }).udp({ sport: 1, dport: 2 }).build().subarray(0, 24);
    const { v } = parsed(eth().ipv4({ src: "3.3.3.3", dst: "1.1.1.1" }).icmpError(3, 1, emb).build());
    expect(v.innerL4Off).toBe(-1);
    expect(setInnerSport(v, 9)).toBe(0);
    expect(setInnerDport(v, 9)).toBe(0);
    expect(setInnerDaddr(v, ipToU32("9.9.9.9"))).toBe(1);
    expect(v.innerDaddr).toBe(ipToU32("9.9.9.9"));
    l4CsumMatchesFull(v);
    reparseEquals(v);
  });

  it("non-error frames refuse inner rewrites", () => {
    const { v } = parsed(G.ICMP_ECHO);
    const before = toHex(bytesOf({ buf: v.buf, dv: v.dv, off: v.base, len: v.len }));
    expect(setInnerSaddr(v, 1)).toBe(0);
    expect(setInnerDaddr(v, 1)).toBe(0);
    expect(setInnerSport(v, 1)).toBe(0);
    expect(setInnerDport(v, 1)).toBe(0);
    expect(toHex(bytesOf({ buf: v.buf, dv: v.dv, off: v.base, len: v.len }))).toBe(before);
  });

  it("captured port unreachable: LVS-NAT style rewrite towards the client and back", () => {
    // As ip_vs_nat_icmp: outer source and embedded destination become the VIP.
    const { v } = parsed(G.ICMP_PORT_UNREACH);
    const vip = ipToU32("192.0.2.10");
    setSaddr(v, vip);
    setInnerDaddr(v, vip);
    setInnerDport(v, 53);
    ipCsumOk(v);
    l4CsumMatchesFull(v);
    const { ip, l4 } = inner(v);
    expect((ip[10]! << 8) | ip[11]!).toBe(ipv4HeaderChecksum(ip, 0, 20));
    expect((l4[6]! << 8) | l4[7]!).toBe(tcpUdpChecksum(l4, v.innerSaddr, vip, IPPROTO_UDP, 0, l4.length, 6));
    // And back: the original bytes return exactly.
    setSaddr(v, ipToU32("10.1.0.2"));
    setInnerDaddr(v, ipToU32("10.1.0.2"));
    setInnerDport(v, 5353);
    expect(toHex(v.buf.subarray(v.base, v.base + v.len))).toBe(toHex(G.ICMP_PORT_UNREACH));
  });
});

describe("decTtl", () => {
  it("reproduces a router's forwarding of a captured fragment (TTL 64 -> 63, new MACs)", () => {
    // FRAG_REPLY_AT_B is what B sent; R decremented the TTL and rewrote L2: FRAG_REPLY_AT_A.
    const { v } = parsed(G.FRAG_REPLY_AT_B);
    expect(decTtl(v)).toBe(63);
    expect(v.ttl).toBe(63);
    setEthAddrs(v.buf, v.base, macToBytes("02:00:00:00:0a:01"), 0, macToBytes("02:00:00:00:0a:02"), 0);
    expect(toHex(v.buf.subarray(v.base, v.base + v.len))).toBe(toHex(G.FRAG_REPLY_AT_A));
  });

  it("keeps the IP checksum right down to 0, then stops", () => {
    const { v } = parsed(G.ICMP_ECHO_RR); // with options
    for (let t = 63; t >= 0; t--) {
      expect(decTtl(v)).toBe(t);
      ipCsumOk(v);
    }
    const before = toHex(v.buf.subarray(v.base, v.base + v.len));
    expect(decTtl(v)).toBe(0);
    expect(toHex(v.buf.subarray(v.base, v.base + v.len))).toBe(before);
  });
});

describe("setEthAddrs", () => {
  it("copies 6 + 6 bytes from other buffers or the frame itself, nothing else", () => {
    const buf = new Uint8Array(40).fill(0xa5);
    const macs = Uint8Array.of(9, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    setEthAddrs(buf, 5, macs, 2, macs, 8);
    expect(Array.from(buf.subarray(0, 20))).toEqual([
      0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xa5, 0xa5, 0xa5,
    ]);
    // Swap source and destination within the frame (reply in place), via a saved copy.
    const f = G.TCP_SYN.slice();
    const saved = f.slice(0, 12);
    setEthAddrs(f, 0, saved, 6, saved, 0);
    expect(toHex(f.subarray(0, 12))).toBe(toHex(G.TCP_SYN_ACK.subarray(0, 12)));
  });
});

describe("full recompute fallbacks", () => {
  it("fixIpChecksum / fixL4Checksum / fixIcmpChecksum / fixInnerIpChecksum repair damage", () => {
    for (const g of [G.TCP_PSH, G.UDP_DGRAM, G.ICMP_ECHO, G.ICMP_PORT_UNREACH]) {
      const { v } = parsed(g);
      const c = v.l4Off + (v.proto === 6 ? 16 : v.proto === 17 ? 6 : 2);
      v.buf[v.l3Off + 10]! ^= 0xff;
      v.buf[c]! ^= 0x0f;
      fixIpChecksum(v);
      expect(fixL4Checksum(v)).toBe(1);
      expect(toHex(v.buf.subarray(v.base, v.base + v.len))).toBe(toHex(g));
    }
    const e = parsed(G.ICMP_PORT_UNREACH).v;
    e.buf[e.innerL3Off + 10]! ^= 0x33;
    expect(fixInnerIpChecksum(e)).toBe(1);
    expect(toHex(e.buf.subarray(e.base, e.base + e.len))).toBe(toHex(G.ICMP_PORT_UNREACH));
    expect(fixIcmpChecksum(parsed(G.TCP_SYN).v)).toBe(0);
    expect(fixIcmpChecksum(parsed(G.FRAG_FIRST).v)).toBe(0);
    expect(fixL4Checksum(parsed(G.FRAG_LATER).v)).toBe(0);
    expect(fixInnerIpChecksum(parsed(G.ICMP_ECHO).v)).toBe(0);
  });

  it("a full L4 sum of a valid segment folds to 0xffff", () => {
    const { v } = parsed(G.ICMP_ECHO);
    expect(csumFold16(csumAdd(v.buf, v.l4Off, v.l4Len, 0))).toBe(0xffff);
  });
});
