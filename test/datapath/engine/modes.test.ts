/**
 * DR, TUN and FULLNAT in the engine: input frame -> expected output bytes (expected frames are
 * built from scratch with full checksums).
 */

import { describe, expect, it } from "vitest";
import { TcpState } from "../../../src/datapath/conntrack/states.js";
import { Drop } from "../../../src/datapath/drops.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { PROXY_V1_MAX } from "../../../src/datapath/modes/proxyproto.js";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import { checkL4Checksum, L4Csum, parseFrame, tcpAck, tcpSeq } from "../../../src/datapath/packet/parse.js";
import {
  FrameView,
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { addService, hex, IN, IP, MAC, natEngine, OUT, run, tcpKey, udpKey } from "./helpers.js";

function addDest(
  e: Engine,
  key = tcpKey(),
  rip = IP.rs1,
  port = 80,
  fwd: FwdMethod = FwdMethod.ROUTE,
  weight = 1,
) {
  return e.table.addDest(key, { addr: ipToU32(rip), port, weight, fwd, uThreshold: 0, lThreshold: 0 });
}

function parse(f: Uint8Array): FrameView {
  const v = new FrameView();
  expect(parseFrame(f, new DataView(f.buffer, f.byteOffset, f.byteLength), 0, f.length, v)).toBe(0);
  return v;
}

const fromClient = (flags: number, seq = 1, ack = 0, data = "", ttl = 64, df = false) =>
  eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip, ttl, id: 99, df })
    .tcp({ sport: 40000, dport: 80, seq, ack, flags })
    .payload(data)
    .build();

describe("DR (-g)", () => {
  it("rewrites only the destination MAC and uses input-only states", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    const d = addDest(e, tcpKey(), IP.rs1, 8080, FwdMethod.ROUTE);
    expect(d.port).toBe(80); // the real-server port is forced to the service port
    const syn = fromClient(TCP_SYN);
    const r = run(e, syn, OUT);
    expect(r.egress).toBe(IN);
    const want = syn.slice();
    want.set([0x02, 0, 0, 0, 0x01, 0x11, 0x02, 0, 0, 0, 0x01, 0x01], 0); // dst rs1, src director inside
    expect(hex(r.out)).toBe(hex(want));
    run(e, fromClient(TCP_ACK, 2, 1), OUT);
    const c = e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 40000, ipToU32(IP.vip), 80);
    expect(e.ct.state[c]).toBe(TcpState.ESTABLISHED);
    run(e, fromClient(TCP_FIN | TCP_ACK, 2, 1), OUT);
    expect(e.ct.stateName(c)).toBe("FIN_WAIT"); // input-only table
  });

  it("forwards a TTL-1 packet untouched (DR is not an IP hop)", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addDest(e);
    expect(run(e, fromClient(TCP_SYN, 1, 0, "", 1), OUT).egress).toBe(IN);
  });
});

describe("TUN (-i)", () => {
  it("encapsulates in IPIP from the director's inside address to the real server, DF copied", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addDest(e, tcpKey(), IP.rs2, 80, FwdMethod.TUNNEL);
    const syn = fromClient(TCP_SYN, 1, 0, "", 64, true);
    const r = run(e, syn, OUT);
    expect(r.egress).toBe(IN);
    const inner = syn.subarray(14);
    const v = parse(r.out);
    expect([v.proto, v.saddr, v.daddr, v.df, v.ttl]).toEqual([4, ipToU32(IP.dirIn), ipToU32(IP.rs2), 1, 64]);
    expect(v.ipTotalLen).toBe(inner.length + 20);
    expect(hex(r.out.subarray(0, 12))).toBe("020000000112020000000101");
    expect(hex(r.out.subarray(34))).toBe(hex(inner)); // the client's packet, untouched
  });

  it("answers an oversized DF packet with fragmentation-needed carrying MTU - 20, from the VIP", () => {
    const e = natEngine();
    e.net.setLinkMtu(IN, 1400);
    addService(e, tcpKey(), "rr");
    addDest(e, tcpKey(), IP.rs2, 80, FwdMethod.TUNNEL);
    const big = fromClient(TCP_ACK | TCP_PSH, 1, 1, "x".repeat(1400 - 40 - 10), 64, true); // 1390-byte IP packet
    run(e, fromClient(TCP_SYN), OUT);
    const r = run(e, big, OUT);
    expect(r.egress).toBe(-1);
    expect(e.drops[Drop.TOO_BIG]).toBe(1);
    const v = parse(r.generated[0]![1]);
    expect([v.icmpType, v.icmpCode, v.saddr, v.daddr]).toEqual([3, 4, ipToU32(IP.vip), ipToU32(IP.client)]);
    expect(v.dv.getUint16(v.l4Off + 6)).toBe(1380);
    // 1380 bytes fit
    const ok = fromClient(TCP_ACK | TCP_PSH, 1, 1, "x".repeat(1380 - 40), 64, true);
    expect(run(e, ok, OUT).egress).toBe(IN);
  });

  it("checks NAT packets against a link MTU changed after start (Net.setLinkMtu keeps minMtu true)", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addDest(e, tcpKey(), IP.rs2, 80, FwdMethod.MASQ);
    run(e, fromClient(TCP_SYN), OUT);
    const seg = fromClient(TCP_ACK | TCP_PSH, 1, 1, "z".repeat(1400 - 40), 64, true); // 1400-byte IP packet
    expect(run(e, seg, OUT).egress).toBe(IN);
    e.net.setLinkMtu(IN, 1300);
    expect(e.net.minMtu).toBe(1300);
    const r = run(e, seg, OUT);
    expect(r.egress).toBe(-1);
    expect(e.drops[Drop.TOO_BIG]).toBe(1);
    const v = parse(r.generated[0]![1]);
    expect([v.icmpType, v.icmpCode, v.saddr]).toEqual([3, 4, ipToU32(IP.vip)]);
    expect(v.dv.getUint16(v.l4Off + 6)).toBe(1300);
  });

  it("learns the path MTU from fragmentation-needed about its tunnel packets and tells the client", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    const d = addDest(e, tcpKey(), IP.rs2, 80, FwdMethod.TUNNEL);
    const seg = fromClient(TCP_ACK | TCP_PSH, 1, 1, "y".repeat(1000), 64, true);
    run(e, fromClient(TCP_SYN), OUT);
    const sent = run(e, seg, OUT);
    expect(sent.egress).toBe(IN);
    // a router on the way to rs2 cannot pass 1060 bytes: MTU 1000
    const fn = eth({ src: MAC.rs2, dst: MAC.dirIn })
      .ipv4({ src: IP.rs2, dst: IP.dirIn })
      .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, sent.out.subarray(14), { mtu: 1000 })
      .build();
    const r = run(e, fn, IN);
    expect(r.egress).toBe(-1);
    expect(d.pmtu).toBe(1000);
    const v = parse(r.generated[0]![1]);
    expect([v.icmpType, v.icmpCode, v.saddr, v.daddr]).toEqual([3, 4, ipToU32(IP.vip), ipToU32(IP.client)]);
    expect(v.dv.getUint16(v.l4Off + 6)).toBe(980);
    expect([v.innerSaddr, v.innerDaddr, v.innerSport, v.innerDport]).toEqual([
      ipToU32(IP.client),
      ipToU32(IP.vip),
      40000,
      80,
    ]);
    // and the next big segment is refused locally with the learned MTU
    const r2 = run(e, seg, OUT);
    expect(r2.egress).toBe(-1);
    expect(parse(r2.generated[0]![1]).dv.getUint16(34 + 6)).toBe(980);
  });
});

describe("FULLNAT", () => {
  function fnEngine(proxy = 0): Engine {
    const e = natEngine();
    e.table.addService(tcpKey(), {
      sched: "rr",
      flags: 0,
      timeout: 0,
      netmask: 0xffffffff,
      proxyProtocol: proxy,
    });
    e.table.addLaddr(tcpKey(), ipToU32("192.168.10.200"));
    addDest(e, tcpKey(), IP.rs1, 8080, FwdMethod.FULLNAT);
    return e;
  }
  const LADDR = "192.168.10.200";
  const fromRs = (flags: number, dport: number, seq: number, ack: number, data = "", opts?: number[]) =>
    eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: LADDR, id: 5 })
      .tcp({ sport: 8080, dport, seq, ack, flags, ...(opts ? { options: opts } : {}) })
      .payload(data)
      .build();

  it("rewrites both addresses with a local address and port, and back", () => {
    const e = fnEngine();
    const r = run(e, fromClient(TCP_SYN), OUT);
    expect(r.egress).toBe(IN);
    const v = parse(r.out);
    expect([v.saddr, v.daddr, v.dport, v.ttl]).toEqual([ipToU32(LADDR), ipToU32(IP.rs1), 8080, 63]);
    expect(v.sport).toBeGreaterThanOrEqual(1025);
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
    const lport = v.sport;
    const back = run(e, fromRs(TCP_SYN | TCP_ACK, lport, 100, 2), IN);
    expect(back.egress).toBe(OUT);
    const want = eth({ src: MAC.dirOut, dst: MAC.client })
      .ipv4({ src: IP.vip, dst: IP.client, id: 5, ttl: 63 })
      .tcp({ sport: 80, dport: 40000, seq: 100, ack: 2, flags: TCP_SYN | TCP_ACK })
      .build();
    expect(hex(back.out)).toBe(hex(want));
    // the director answers ARP for its local address on the inside link
    const arp = eth({ src: MAC.rs1, dst: "ff:ff:ff:ff:ff:ff" })
      .arp({ op: 1, sha: MAC.rs1, spa: IP.rs1, tpa: LADDR })
      .build();
    expect(run(e, arp, IN).generated).toHaveLength(1);
  });

  it("allocates distinct ports, releases them on expiry, and counts exhaustion", () => {
    const e = fnEngine();
    const svc = e.table.list()[0]!;
    const ports = new Set<number>();
    for (let k = 0; k < 2000; k++) {
      const f = eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .tcp({ sport: 10000 + k, dport: 80, flags: TCP_SYN })
        .build();
      ports.add(parse(run(e, f, OUT, 1000).out).sport);
    }
    expect(ports.size).toBe(2000);
    expect(svc.laddrs!.inUse(ipToU32(LADDR), 0)).toBe(2000);
    e.ct.flushAll();
    expect(svc.laddrs!.inUse(ipToU32(LADDR), 0)).toBe(0);
    // a pool with no address: clean refusal with port unreachable
    e.table.deleteLaddr(tcpKey(), ipToU32(LADDR));
    const r = run(e, fromClient(TCP_SYN), OUT);
    expect(r.egress).toBe(-1);
    expect(e.drops[Drop.LADDR_EXHAUSTED]).toBe(1);
    expect(parse(r.generated[0]![1]).icmpType).toBe(3);
  });

  it("never gives two services' connections to one real server the same local address and port", () => {
    // two services, each with its own port bitmaps over the same local address and the same
    // real server: their first connections would both take the first port
    const e = fnEngine();
    const key2 = { ...tcpKey(), port: 81 };
    e.table.addService(key2, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addLaddr(key2, ipToU32(LADDR));
    addDest(e, key2, IP.rs1, 8080, FwdMethod.FULLNAT);
    const syn = (dport: number) =>
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .tcp({ sport: 40000, dport, flags: TCP_SYN })
        .build();
    const a = parse(run(e, syn(80), OUT).out);
    const b = parse(run(e, syn(81), OUT).out);
    expect([a.saddr, b.saddr]).toEqual([ipToU32(LADDR), ipToU32(LADDR)]);
    expect(b.sport).not.toBe(a.sport);
    // each real-server reply reaches its own client-side connection
    const back = (lport: number) => parse(run(e, fromRs(TCP_SYN | TCP_ACK, lport, 100, 2), IN).out).sport;
    expect([back(a.sport), back(b.sport)]).toEqual([80, 81]);
  });

  it.each([1, 2])("inserts a PROXY v%i header and shifts sequence numbers both ways", (ver) => {
    const e = fnEngine(ver);
    const syn = run(e, fromClient(TCP_SYN, 1000, 0), OUT);
    const lport = parse(syn.out).sport;
    // the server's SYN-ACK MSS is lowered so a full client segment still fits after insertion
    const sa = run(e, fromRs(TCP_SYN | TCP_ACK, lport, 5000, 1001, "", [2, 4, 0x05, 0xb4]), IN);
    expect(parse(sa.out).mss).toBe(1460 - (ver === 2 ? 28 : PROXY_V1_MAX));
    run(e, fromClient(TCP_ACK, 1001, 5001), OUT);
    const req = "GET / HTTP/1.0\r\n\r\n";
    const d1 = run(e, fromClient(TCP_ACK | TCP_PSH, 1001, 5001, req), OUT);
    const v = parse(d1.out);
    expect(tcpSeq(v)).toBe(1001);
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
    const payload = Buffer.from(d1.out.subarray(v.payloadOff, v.l3Off + v.ipTotalLen));
    const hdr =
      ver === 1
        ? Buffer.from(`PROXY TCP4 ${IP.client} ${IP.vip} 40000 80\r\n`)
        : Buffer.concat([
            Buffer.from([
              0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0, 12,
            ]),
            Buffer.from([10, 0, 0, 7, 10, 0, 0, 100, 40000 >> 8, 40000 & 0xff, 0, 80]),
          ]);
    expect(payload.toString("hex")).toBe(Buffer.concat([hdr, Buffer.from(req)]).toString("hex"));
    const h = hdr.length;
    // a retransmission of the first segment carries the header again
    const again = parse(run(e, fromClient(TCP_ACK | TCP_PSH, 1001, 5001, req), OUT).out);
    expect(again.ipTotalLen).toBe(v.ipTotalLen);
    // the server acknowledges header + request; the client sees only its request acknowledged
    const ack = run(
      e,
      fromRs(TCP_ACK | TCP_PSH, lport, 5001, 1001 + h + req.length, "HTTP/1.0 200 OK\r\n\r\n"),
      IN,
    );
    const av = parse(ack.out);
    expect(tcpAck(av)).toBe(1001 + req.length);
    expect(checkL4Checksum(av)).toBe(L4Csum.OK);
    // later client segments are shifted up
    const fin = parse(run(e, fromClient(TCP_ACK | TCP_FIN, 1001 + req.length, 5020), OUT).out);
    expect(tcpSeq(fin)).toBe(1001 + req.length + h);
    expect(checkL4Checksum(fin)).toBe(L4Csum.OK);
    // SACK blocks from the server are shifted down too (NOP NOP SACK 1 block)
    const sackEdge = 1001 + h + 100;
    const opts = [1, 1, 5, 10, ...u32(sackEdge), ...u32(sackEdge + 50)];
    const sk = parse(run(e, fromRs(TCP_ACK, lport, 5020, 1001 + h, "", opts), IN).out);
    expect(sk.dv.getUint32(sk.l4Off + 24)).toBe(1001 + 100);
    expect(sk.dv.getUint32(sk.l4Off + 28)).toBe(1001 + 150);
    expect(checkL4Checksum(sk)).toBe(L4Csum.OK);
  });

  it.each([1, 2])("PROXY v%i: ICMP errors quote the sequence space of the side they go to", (ver) => {
    const e = fnEngine(ver);
    const lport = parse(run(e, fromClient(TCP_SYN, 1000, 0), OUT).out).sport;
    run(e, fromRs(TCP_SYN | TCP_ACK, lport, 5000, 1001), IN);
    run(e, fromClient(TCP_ACK, 1001, 5001), OUT);
    const req = "GET / HTTP/1.0\r\n\r\n";
    const d1 = parse(run(e, fromClient(TCP_ACK | TCP_PSH, 1001, 5001, req), OUT).out);
    const h = d1.ipTotalLen - 20 - 20 - req.length; // the header's length
    expect(h).toBeGreaterThan(0);
    /** The quoted packet of an ICMP error frame, re-parsed: its IP and TCP checksums must hold. */
    const quotedOk = (v: ReturnType<typeof parse>) => {
      expect(checkL4Checksum(v)).toBe(L4Csum.OK); // the ICMP checksum
      const q = new Uint8Array(14 + v.l3Off + v.ipTotalLen - v.innerL3Off);
      q[12] = 0x08;
      q.set(v.buf.subarray(v.innerL3Off, v.l3Off + v.ipTotalLen), 14);
      const qv = parse(q);
      expect(checkL4Checksum(qv)).toBe(L4Csum.OK);
      return qv;
    };
    // from the server's side, about our later client -> server segment (seq counts the header)
    const serverGot = ipv4({ src: LADDR, dst: IP.rs1, ttl: 63, df: true })
      .tcp({ sport: lport, dport: 8080, seq: 1001 + h + req.length, ack: 5020, flags: TCP_ACK | TCP_PSH })
      .payload("more")
      .build();
    const e1 = run(
      e,
      eth({ src: MAC.rs1, dst: MAC.dirIn })
        .ipv4({ src: IP.rs1, dst: LADDR })
        .icmpError(3, 4, serverGot, { mtu: 1400 })
        .build(),
      IN,
    );
    expect(e1.egress).toBe(OUT);
    const q1 = quotedOk(parse(e1.out));
    expect([q1.sport, q1.dport, tcpSeq(q1), tcpAck(q1)]).toEqual([40000, 80, 1001 + req.length, 5020]);
    // from the client's side, about our server -> client segment (ack counts the request only)
    const clientGot = ipv4({ src: IP.vip, dst: IP.client, ttl: 63 })
      .tcp({ sport: 80, dport: 40000, seq: 5001, ack: 1001 + req.length, flags: TCP_ACK | TCP_PSH })
      .payload("HTTP/1.0 200 OK")
      .build();
    const e2 = run(
      e,
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .icmpError(3, 3, clientGot)
        .build(),
      OUT,
    );
    expect(e2.egress).toBe(IN);
    const q2 = quotedOk(parse(e2.out));
    expect([q2.sport, q2.dport, tcpSeq(q2), tcpAck(q2)]).toEqual([8080, lport, 5001, 1001 + h + req.length]);
  });

  it("relays ICMP errors with both headers rewritten", () => {
    const e = natEngine();
    e.table.addService(udpKey(), { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addLaddr(udpKey(), ipToU32(LADDR));
    addDest(e, udpKey(), IP.rs1, 53, FwdMethod.FULLNAT);
    const q = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .udp({ sport: 7000, dport: 53 })
      .payload("q")
      .build();
    const sent = run(e, q, OUT);
    const lport = parse(sent.out).sport;
    const quoted = ipv4({ src: LADDR, dst: IP.rs1, ttl: 63 })
      .udp({ sport: lport, dport: 53 })
      .payload("q")
      .build();
    const err = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: LADDR })
      .icmpError(3, 3, quoted)
      .build();
    const r = run(e, err, IN);
    expect(r.egress).toBe(OUT);
    const v = parse(r.out);
    expect([v.saddr, v.daddr, v.innerSaddr, v.innerSport, v.innerDaddr, v.innerDport]).toEqual([
      ipToU32(IP.vip),
      ipToU32(IP.client),
      ipToU32(IP.client),
      7000,
      ipToU32(IP.vip),
      53,
    ]);
  });
});

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
