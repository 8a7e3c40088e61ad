/**
 * NAT engine tests as tables of input frame -> expected verdict and output bytes. Expected
 * frames are built from scratch with full checksums, so byte equality also proves that the
 * engine's incremental checksum updates equal a full recompute.
 */

import { beforeEach, describe, expect, it } from "vitest";
import { dropCounts, EngineControl } from "../../../src/control/adapter.js";
import { TcpState } from "../../../src/datapath/conntrack/states.js";
import { Drop } from "../../../src/datapath/drops.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import { parseFrame } from "../../../src/datapath/packet/parse.js";
import {
  FrameView,
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { SVC_F_ONEPACKET } from "../../../src/tables/model.js";
import { addNatDest, addService, hex, IN, IP, MAC, natEngine, OUT, run, tcpKey, udpKey } from "./helpers.js";

const CPORT = 40001;

/** A client -> VIP TCP frame as it arrives on the outside link. */
function cTcp(
  flags: number,
  seq: number,
  ack: number,
  data = "",
  ttl = 64,
  cport = CPORT,
  client = IP.client,
) {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: client, dst: IP.vip, ttl, id: 0x1000 + seq })
    .tcp({ sport: cport, dport: 80, seq, ack, flags, window: 64240 })
    .payload(data)
    .build();
}
/** The same segment as the real server must receive it. */
function cTcpAtRs(
  flags: number,
  seq: number,
  ack: number,
  data = "",
  rs = IP.rs1,
  rsMac = MAC.rs1,
  rport = 80,
  cport = CPORT,
) {
  return eth({ src: MAC.dirIn, dst: rsMac })
    .ipv4({ src: IP.client, dst: rs, ttl: 63, id: 0x1000 + seq })
    .tcp({ sport: cport, dport: rport, seq, ack, flags, window: 64240 })
    .payload(data)
    .build();
}
/** A real server -> client reply as it arrives on the inside link. */
function sTcp(flags: number, seq: number, ack: number, data = "", rs = IP.rs1, rsMac = MAC.rs1, rport = 80) {
  return eth({ src: rsMac, dst: MAC.dirIn })
    .ipv4({ src: rs, dst: IP.client, ttl: 64, id: 0x2000 + seq })
    .tcp({ sport: rport, dport: CPORT, seq, ack, flags, window: 65160 })
    .payload(data)
    .build();
}
/** The reply as the client must receive it. */
function sTcpAtClient(flags: number, seq: number, ack: number, data = "") {
  return eth({ src: MAC.dirOut, dst: MAC.client })
    .ipv4({ src: IP.vip, dst: IP.client, ttl: 63, id: 0x2000 + seq })
    .tcp({ sport: 80, dport: CPORT, seq, ack, flags, window: 65160 })
    .payload(data)
    .build();
}

function connState(e: Engine, cport = CPORT): string {
  const c = e.ct.lookupIn(6, ipToU32(IP.client), cport, ipToU32(IP.vip), 80);
  return c < 0 ? "none" : e.ct.stateName(c);
}
function connExpiresIn(e: Engine, now: number, cport = CPORT): number {
  const c = e.ct.lookupIn(6, ipToU32(IP.client), cport, ipToU32(IP.vip), 80);
  return e.ct.expiresAt(c) - now;
}

describe("NAT engine: a TCP connection from handshake to close", () => {
  it("rewrites every segment both ways, tracks states and timeouts, counts bytes", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    type Row = [string, Uint8Array, number, number, Uint8Array, string, number];
    // [what, input, ingress link, expected egress, expected bytes, state after, timeout (s)]
    const rows: Row[] = [
      ["client SYN", cTcp(TCP_SYN, 100, 0), OUT, IN, cTcpAtRs(TCP_SYN, 100, 0), "SYN_RECV", 60],
      [
        "server SYN-ACK",
        sTcp(TCP_SYN | TCP_ACK, 500, 101),
        IN,
        OUT,
        sTcpAtClient(TCP_SYN | TCP_ACK, 500, 101),
        "SYN_RECV",
        60,
      ],
      ["client ACK", cTcp(TCP_ACK, 101, 501), OUT, IN, cTcpAtRs(TCP_ACK, 101, 501), "ESTABLISHED", 900],
      [
        "client data",
        cTcp(TCP_ACK | TCP_PSH, 101, 501, "GET / HTTP/1.0\r\n\r\n"),
        OUT,
        IN,
        cTcpAtRs(TCP_ACK | TCP_PSH, 101, 501, "GET / HTTP/1.0\r\n\r\n"),
        "ESTABLISHED",
        900,
      ],
      [
        "server data",
        sTcp(TCP_ACK | TCP_PSH, 501, 119, "HTTP/1.0 200 OK\r\n\r\nhello"),
        IN,
        OUT,
        sTcpAtClient(TCP_ACK | TCP_PSH, 501, 119, "HTTP/1.0 200 OK\r\n\r\nhello"),
        "ESTABLISHED",
        900,
      ],
      [
        "server FIN",
        sTcp(TCP_FIN | TCP_ACK, 525, 119),
        IN,
        OUT,
        sTcpAtClient(TCP_FIN | TCP_ACK, 525, 119),
        "FIN_WAIT",
        120,
      ],
      [
        "client FIN",
        cTcp(TCP_FIN | TCP_ACK, 119, 526),
        OUT,
        IN,
        cTcpAtRs(TCP_FIN | TCP_ACK, 119, 526),
        "TIME_WAIT",
        120,
      ],
      ["client last ACK", cTcp(TCP_ACK, 120, 526), OUT, IN, cTcpAtRs(TCP_ACK, 120, 526), "TIME_WAIT", 120],
    ];
    let now = 1000;
    for (const [what, input, link, egress, want, state, timeout] of rows) {
      now += 10;
      const r = run(e, input, link, now);
      expect(r.egress, what).toBe(egress);
      expect(hex(r.out), what).toBe(hex(want));
      expect(connState(e), what).toBe(state);
      expect(connExpiresIn(e, now), what).toBe(timeout * 1000);
    }
    const svc = e.table.list()[0]!;
    const d = svc.dests[0]!;
    expect(svc.conns).toBe(1);
    expect(d.conns).toBe(1);
    expect([svc.inPkts, svc.outPkts]).toEqual([5, 3]);
    const inBytes = rows.filter((r) => r[2] === OUT).reduce((a, r) => a + r[1].length - 14, 0);
    const outBytes = rows.filter((r) => r[2] === IN).reduce((a, r) => a + r[1].length - 14, 0);
    expect([svc.inBytes, svc.outBytes]).toEqual([inBytes, outBytes]);
    expect([d.activeConns, d.inactConns]).toEqual([0, 1]);
    // after TIME_WAIT's 120 s the entry is gone
    e.ct.sweep(1 << 21);
    expect(e.ct.count).toBe(1);
    const r = run(e, cTcp(TCP_ACK, 120, 526), OUT, now + 121_000);
    expect(r.egress).toBe(-1);
    expect(e.drops[Drop.NO_CONN]).toBe(1);
    expect(e.ct.count).toBe(0);
    expect([d.activeConns, d.inactConns]).toEqual([0, 0]);
  });

  it("maps the port (VIP:80 -> RIP:8080) and maps it back on replies", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs2, 8080);
    const r1 = run(e, cTcp(TCP_SYN, 1, 0), OUT);
    expect(r1.egress).toBe(IN);
    expect(hex(r1.out)).toBe(hex(cTcpAtRs(TCP_SYN, 1, 0, "", IP.rs2, MAC.rs2, 8080)));
    const r2 = run(e, sTcp(TCP_SYN | TCP_ACK, 9, 2, "", IP.rs2, MAC.rs2, 8080), IN);
    expect(r2.egress).toBe(OUT);
    expect(hex(r2.out)).toBe(hex(sTcpAtClient(TCP_SYN | TCP_ACK, 9, 2)));
  });

  it("spreads new connections over dests with rr and keeps each flow on its dest", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    addNatDest(e, tcpKey(), IP.rs2, 80);
    const seen: string[] = [];
    for (let k = 0; k < 4; k++) {
      const r = run(e, cTcp(TCP_SYN, 1, 0, "", 64, 50000 + k), OUT);
      seen.push(hex(r.out.subarray(0, 6)));
    }
    // rs2 was added last, so it is at the head of the list and gets the first connection
    const m = (s: string) => s.replaceAll(":", "");
    expect(seen).toEqual([m(MAC.rs2), m(MAC.rs1), m(MAC.rs2), m(MAC.rs1)]);
    const again = run(e, cTcp(TCP_ACK, 2, 1, "", 64, 50000), OUT);
    expect(hex(again.out.subarray(0, 6))).toBe(m(MAC.rs2));
  });
});

describe("NAT engine: UDP", () => {
  it("forwards a request and its response and keeps a UDP entry for 300 s", () => {
    const e = natEngine();
    addService(e, udpKey(), "rr");
    addNatDest(e, udpKey(), IP.rs1, 5353);
    const q = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip, id: 7 })
      .udp({ sport: 33333, dport: 53 })
      .payload("query")
      .build();
    const r = run(e, q, OUT, 5000);
    expect(r.egress).toBe(IN);
    const qAtRs = eth({ src: MAC.dirIn, dst: MAC.rs1 })
      .ipv4({ src: IP.client, dst: IP.rs1, id: 7, ttl: 63 })
      .udp({ sport: 33333, dport: 5353 })
      .payload("query")
      .build();
    expect(hex(r.out)).toBe(hex(qAtRs));
    const c = e.ct.lookupIn(17, ipToU32(IP.client), 33333, ipToU32(IP.vip), 53);
    expect(e.ct.stateName(c)).toBe("UDP");
    expect(e.ct.expiresAt(c) - 5000).toBe(300_000);
    const ans = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client, id: 9 })
      .udp({ sport: 5353, dport: 33333 })
      .payload("answer")
      .build();
    const r2 = run(e, ans, IN, 6000);
    expect(r2.egress).toBe(OUT);
    const ansAtClient = eth({ src: MAC.dirOut, dst: MAC.client })
      .ipv4({ src: IP.vip, dst: IP.client, id: 9, ttl: 63 })
      .udp({ sport: 53, dport: 33333 })
      .payload("answer")
      .build();
    expect(hex(r2.out)).toBe(hex(ansAtClient));
    const d = e.table.list()[0]!.dests[0]!;
    expect([d.activeConns, d.inactConns]).toEqual([0, 1]); // UDP is always inactive
  });

  it("keeps a zero UDP checksum zero", () => {
    const e = natEngine();
    addService(e, udpKey(), "rr");
    addNatDest(e, udpKey(), IP.rs1, 53);
    const q = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .udp({ sport: 1, dport: 53, noCsum: true })
      .payload("x")
      .build();
    const r = run(e, q, OUT);
    expect(r.egress).toBe(IN);
    const v = new FrameView();
    parseFrame(r.out, new DataView(r.out.buffer), 0, r.out.length, v);
    expect(v.dv.getUint16(v.l4Off + 6)).toBe(0);
  });
});

describe("NAT engine: ICMP", () => {
  it("relays fragmentation-needed from a real server to the client with both headers rewritten", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 8080);
    run(e, cTcp(TCP_SYN, 100, 0), OUT);
    // The real server (or a router before it) reports that our 1500-byte segment to RS:8080 was too big.
    const sentToRs = ipv4({ src: IP.client, dst: IP.rs1, ttl: 63, id: 0x4242, df: true })
      .tcp({ sport: CPORT, dport: 8080, seq: 101, ack: 501, flags: TCP_ACK })
      .payload(new Uint8Array(64))
      .build();
    const fragNeeded = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client, ttl: 64, id: 77 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, sentToRs, { mtu: 1400 })
      .build();
    const r = run(e, fragNeeded, IN);
    expect(r.egress).toBe(OUT);
    const asClientSent = ipv4({ src: IP.client, dst: IP.vip, ttl: 63, id: 0x4242, df: true })
      .tcp({ sport: CPORT, dport: 80, seq: 101, ack: 501, flags: TCP_ACK })
      .payload(new Uint8Array(64))
      .build();
    // The quoted segment is complete here, so its TCP checksum is updated too: the client sees
    // exactly the segment it sent (the kernel leaves that checksum stale; we keep it consistent).

    const want = eth({ src: MAC.dirOut, dst: MAC.client })
      .ipv4({ src: IP.vip, dst: IP.client, ttl: 63, id: 77 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, asClientSent, { mtu: 1400 })
      .build();
    expect(hex(r.out)).toBe(hex(want));
  });

  it("relays an ICMP error from the client side to the real server", () => {
    const e = natEngine();
    addService(e, udpKey(), "rr");
    addNatDest(e, udpKey(), IP.rs1, 5353);
    const q = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .udp({ sport: 4000, dport: 53 })
      .build();
    run(e, q, OUT);
    // the client's port is closed: it answers our (VIP:53 -> client:4000) datagram with port unreachable
    const quoted = ipv4({ src: IP.vip, dst: IP.client, ttl: 63 })
      .udp({ sport: 53, dport: 4000 })
      .payload("a")
      .build();
    const err = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip, id: 5 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quoted)
      .build();
    const r = run(e, err, OUT);
    expect(r.egress).toBe(IN);
    const quotedAtRs = ipv4({ src: IP.rs1, dst: IP.client, ttl: 63 })
      .udp({ sport: 5353, dport: 4000 })
      .payload("a")
      .build();
    const want = eth({ src: MAC.dirIn, dst: MAC.rs1 })
      .ipv4({ src: IP.client, dst: IP.rs1, id: 5, ttl: 63 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, quotedAtRs)
      .build();
    expect(hex(r.out)).toBe(hex(want));
  });

  it("drops ICMP errors that relate to no connection", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    const quoted = ipv4({ src: IP.client, dst: IP.rs1 }).tcp({ sport: 1, dport: 80 }).build();
    const err = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client })
      .icmpError(3, 1, quoted)
      .build();
    expect(run(e, err, IN).egress).toBe(-1);
    expect(e.drops[Drop.ICMP_UNRELATED]).toBe(1);
  });

  it("answers a SYN to a service with no available dest with ICMP port unreachable from the VIP", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80, 0); // weight 0: quiescent
    const syn = cTcp(TCP_SYN, 1, 0);
    const r = run(e, syn, OUT);
    expect(r.egress).toBe(-1);
    expect(e.drops[Drop.NO_DEST]).toBe(1);
    expect(r.generated.length).toBe(1);
    const [link, frame] = r.generated[0]!;
    expect(link).toBe(OUT);
    const v = new FrameView();
    expect(parseFrame(frame, new DataView(frame.buffer), 0, frame.length, v)).toBe(0);
    expect([v.icmpType, v.icmpCode]).toEqual([ICMP_DEST_UNREACH, ICMP_PORT_UNREACH]);
    expect([v.saddr, v.daddr]).toEqual([ipToU32(IP.vip), ipToU32(IP.client)]);
    expect([v.innerSaddr, v.innerDaddr, v.innerSport, v.innerDport]).toEqual([
      ipToU32(IP.client),
      ipToU32(IP.vip),
      CPORT,
      80,
    ]);
    expect(hex(frame.subarray(0, 12))).toBe(MAC.client.replaceAll(":", "") + MAC.dirOut.replaceAll(":", ""));
  });

  it("answers an echo request to the VIP", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    const ping = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .icmp({ type: 8, id: 9, seq: 1 })
      .payload("abc")
      .build();
    const r = run(e, ping, OUT);
    expect(r.generated.length).toBe(1);
    const f = r.generated[0]![1];
    const v = new FrameView();
    expect(parseFrame(f, new DataView(f.buffer), 0, f.length, v)).toBe(0);
    expect([v.icmpType, v.saddr, v.daddr, v.sport]).toEqual([0, ipToU32(IP.vip), ipToU32(IP.client), 9]);
  });
});

describe("NAT engine: TTL", () => {
  it("drops a TTL-1 packet and sends time exceeded", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    const r = run(e, cTcp(TCP_SYN, 1, 0, "", 1), OUT);
    expect(r.egress).toBe(-1);
    expect(e.drops[Drop.TTL_EXCEEDED]).toBe(1);
    const f = r.generated[0]![1];
    const v = new FrameView();
    parseFrame(f, new DataView(f.buffer), 0, f.length, v);
    expect([v.icmpType, v.saddr]).toEqual([11, ipToU32(IP.dirOut)]);
  });
});

describe("NAT engine: persistence", () => {
  let e: Engine;
  beforeEach(() => {
    e = natEngine();
    addService(e, tcpKey(), "rr", 300, ipToU32("255.255.255.0"));
    addNatDest(e, tcpKey(), IP.rs1, 80);
    addNatDest(e, tcpKey(), IP.rs2, 80);
  });
  const dst = (r: { out: Uint8Array }) => hex(r.out.subarray(0, 6));

  it("sends the same client (and its /24) to the same dest within the timeout", () => {
    const first = dst(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 1000), OUT, 1000));
    for (let k = 1; k < 6; k++)
      expect(dst(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 1000 + k), OUT, 1000 + k))).toBe(first);
    // another host of the same /24
    expect(dst(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 2000, "10.0.0.8"), OUT, 2000))).toBe(first);
    const tpl = e.ct.lookupTemplate(6, ipToU32("10.0.0.0"), ipToU32(IP.vip), 80);
    expect(tpl).toBeGreaterThanOrEqual(0);
    expect(e.ct.nControl[tpl]).toBe(7);
    expect(new EngineControl(e).conns().filter((c) => c.template)).toHaveLength(1);
  });

  it("reschedules once the template has expired", () => {
    const first = dst(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 1000), OUT, 1000));
    // the connection itself expires after SYN_RECV's 60 s; the template after 300 s
    const later = 1000 + 301_000;
    e.ct.sweep(1 << 21);
    const second = dst(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 1001), OUT, later));
    expect(second).not.toBe(first);
  });

  it("reschedules when the template's dest is removed", () => {
    const first = dst(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 1000), OUT, 1000));
    const firstIp = first === MAC.rs1.replaceAll(":", "") ? IP.rs1 : IP.rs2;
    e.table.deleteDest(tcpKey(), ipToU32(firstIp), 80);
    const next = dst(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 1001), OUT, 2000));
    expect(next).not.toBe(first);
  });
});

describe("NAT engine: weight 0 and dest deletion", () => {
  it("sends no new connections to a weight-0 dest but keeps its existing ones flowing", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    expect(run(e, cTcp(TCP_SYN, 1, 0), OUT).egress).toBe(IN);
    e.table.editDest(tcpKey(), {
      addr: ipToU32(IP.rs1),
      port: 80,
      weight: 0,
      fwd: 0,
      uThreshold: 0,
      lThreshold: 0,
    });
    addNatDest(e, tcpKey(), IP.rs2, 80);
    // existing flow still goes to rs1
    const r = run(e, cTcp(TCP_ACK, 2, 1), OUT);
    expect(hex(r.out)).toBe(hex(cTcpAtRs(TCP_ACK, 2, 1)));
    // new flows all go to rs2
    for (let k = 0; k < 3; k++) {
      const n = run(e, cTcp(TCP_SYN, 1, 0, "", 64, 60000 + k), OUT);
      expect(hex(n.out.subarray(0, 6))).toBe(MAC.rs2.replaceAll(":", ""));
    }
  });

  it("drops a deleted dest's connections (expire_nodest_conn=1, our default)", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    run(e, cTcp(TCP_SYN, 1, 0), OUT);
    run(e, cTcp(TCP_ACK, 2, 1), OUT);
    expect(e.ct.count).toBe(1);
    e.table.deleteDest(tcpKey(), ipToU32(IP.rs1), 80);
    expect(e.ct.count).toBe(0);
    const r = run(e, cTcp(TCP_ACK, 2, 1), OUT);
    expect(r.egress).toBe(-1);
    expect(e.drops[Drop.NO_CONN]).toBe(1);
    expect(e.table.dests.filter((d) => d !== null)).toHaveLength(0);
  });

  it("keeps a deleted dest's connections with expire_nodest_conn=0 (the kernel's default)", () => {
    const e = natEngine();
    e.sysctl.expireNodestConn = 0;
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    run(e, cTcp(TCP_SYN, 1, 0), OUT);
    e.table.deleteDest(tcpKey(), ipToU32(IP.rs1), 80);
    const r = run(e, cTcp(TCP_ACK, 2, 1), OUT);
    expect(hex(r.out)).toBe(hex(cTcpAtRs(TCP_ACK, 2, 1)));
    // once the connection goes, the removed dest's slot is released
    e.ct.flushAll();
    expect(e.table.dests.filter((d) => d !== null)).toHaveLength(0);
  });
});

describe("NAT engine: the table at its maximum size", () => {
  it("evicts embryonic connections first, then refuses when nothing can go", () => {
    const e = natEngine({ maxConns: 4 });
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    // three established connections and one half-open
    for (let k = 0; k < 3; k++) {
      run(e, cTcp(TCP_SYN, 1, 0, "", 64, 100 + k), OUT);
      run(e, sTcpFor(100 + k), IN);
      run(e, cTcp(TCP_ACK, 2, 1, "", 64, 100 + k), OUT);
    }
    run(e, cTcp(TCP_SYN, 1, 0, "", 64, 200), OUT);
    expect(e.ct.count).toBe(4);
    expect(run(e, cTcp(TCP_SYN, 1, 0, "", 64, 300), OUT).egress).toBe(IN);
    expect(e.ct.evictions).toBe(1);
    expect(connState(e, 200)).toBe("none");
    for (let k = 0; k < 3; k++) expect(connState(e, 100 + k)).toBe("ESTABLISHED");
  });
  function sTcpFor(cport: number) {
    return eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client })
      .tcp({ sport: 80, dport: cport, seq: 0, ack: 2, flags: TCP_SYN | TCP_ACK })
      .build();
  }
});

describe("NAT engine: bad input", () => {
  it("counts malformed frames by reason and never throws", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    const good = cTcp(TCP_SYN, 1, 0);
    const badCsum = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .tcp({ sport: 1, dport: 80, flags: TCP_SYN })
      .build({ badIpCsum: true });
    expect(run(e, good.subarray(0, 10), OUT).egress).toBe(-1);
    expect(run(e, good.subarray(0, 30), OUT).egress).toBe(-1);
    expect(run(e, badCsum, OUT).egress).toBe(-1);
    expect(dropCounts(e.drops)).toEqual({ eth_short: 1, ip_short: 1, ip_bad_csum: 1 });
    // non-SYN without a connection, packet to an address with no service
    expect(run(e, cTcp(TCP_ACK, 1, 1), OUT).egress).toBe(-1);
    const other = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: "10.0.0.99" })
      .tcp({ sport: 1, dport: 80, flags: TCP_SYN })
      .build();
    expect(run(e, other, OUT).egress).toBe(-1);
    expect(dropCounts(e.drops)).toMatchObject({ no_conn: 1, no_service: 1 });
  });

  it("survives a batch of random bytes", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), IP.rs1, 80);
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
    for (let k = 0; k < 2000; k++) {
      const f = new Uint8Array(1 + (rnd() % 120));
      for (let j = 0; j < f.length; j++) f[j] = rnd();
      if (k % 2 === 0 && f.length > 14) {
        f[12] = 0x08;
        f[13] = 0x00;
        f[14] = 0x45;
      }
      expect(() => run(e, f, OUT)).not.toThrow();
    }
    expect(Object.values(dropCounts(e.drops)).reduce((a, b) => a + b, 0)).toBeGreaterThan(1900);
  });
});

describe("NAT engine: ARP", () => {
  it("answers ARP for the VIP on its link and learns the asker", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    const req = eth({ src: "02:00:00:00:00:33", dst: "ff:ff:ff:ff:ff:ff" })
      .arp({ op: 1, sha: "02:00:00:00:00:33", spa: "10.0.0.33", tpa: IP.vip })
      .build();
    const r = run(e, req, OUT);
    expect(r.generated).toHaveLength(1);
    const want = eth({ src: MAC.dirOut, dst: "02:00:00:00:00:33" })
      .arp({ op: 2, sha: MAC.dirOut, spa: IP.vip, tha: "02:00:00:00:00:33", tpa: "10.0.0.33" })
      .build();
    expect(hex(r.generated[0]![1])).toBe(hex(want));
    expect(e.net.neigh.find(ipToU32("10.0.0.33"))).toBeGreaterThanOrEqual(0);
    // not on the inside link, and not for addresses that are not ours
    const req2 = eth({ src: MAC.rs1, dst: "ff:ff:ff:ff:ff:ff" })
      .arp({ op: 1, sha: MAC.rs1, spa: IP.rs1, tpa: IP.vip })
      .build();
    expect(run(e, req2, IN).generated).toHaveLength(0);
    const req3 = eth({ src: MAC.client, dst: "ff:ff:ff:ff:ff:ff" })
      .arp({ op: 1, sha: MAC.client, spa: IP.client, tpa: "10.0.0.55" })
      .build();
    expect(run(e, req3, OUT).generated).toHaveLength(0);
  });

  it("queues a frame for an unknown next hop, asks for it, and sends the frame when ARP answers", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), "192.168.10.3", 80);
    const r = run(e, cTcp(TCP_SYN, 1, 0), OUT, 1000);
    expect(r.egress).toBe(-1);
    expect(e.queued).toBe(1);
    expect(e.resolver.pending.count).toBe(1);
    const f = r.generated[0]![1];
    const v = new FrameView();
    parseFrame(f, new DataView(f.buffer), 0, f.length, v);
    expect([v.arpOp, v.arpSpa, v.arpTpa]).toEqual([1, ipToU32(IP.dirIn), ipToU32("192.168.10.3")]);
    expect(r.generated[0]![0]).toBe(IN);
    const rs3 = "02:00:00:00:01:13";
    const reply = eth({ src: rs3, dst: MAC.dirIn })
      .arp({ op: 2, sha: rs3, spa: "192.168.10.3", tha: MAC.dirIn, tpa: IP.dirIn })
      .build();
    const r2 = run(e, reply, IN, 1100);
    expect(e.resolver.pending.count).toBe(0);
    expect(r2.generated).toHaveLength(1);
    const [link, sent] = r2.generated[0]!;
    expect(link).toBe(IN);
    expect(hex(sent)).toBe(hex(cTcpAtRs(TCP_SYN, 1, 0, "", "192.168.10.3", rs3)));
  });

  it("retries ARP, then drops the waiting frames when nobody answers", () => {
    const e = natEngine();
    addService(e, tcpKey(), "rr");
    addNatDest(e, tcpKey(), "192.168.10.9", 80);
    run(e, cTcp(TCP_SYN, 1, 0), OUT, 1000);
    let asks = 1;
    for (let t = 1200; t <= 2900; t += 200) {
      e.maintain(t);
      asks += e.tx.count;
    }
    expect(asks).toBe(2); // one retry a second
    e.maintain(3100);
    asks += e.tx.count;
    expect(asks).toBe(3);
    expect(e.resolver.pending.count).toBe(1);
    e.maintain(4000); // 3 s after it was queued
    expect(e.tx.count).toBe(0); // no fourth request
    expect(e.resolver.pending.count).toBe(0);
    expect(e.drops[Drop.NEIGH_MISS]).toBe(1);
  });

  it("announces a VIP with gratuitous ARP on the link whose subnet holds it", () => {
    const e = natEngine();
    e.tx.reset();
    expect(e.announce(ipToU32(IP.vip))).toBe(1);
    const f = e.tx.frame(0);
    expect(e.tx.egress[0]).toBe(OUT);
    const v = new FrameView();
    parseFrame(f, new DataView(f.buffer), 0, f.length, v);
    expect([v.arpOp, v.arpSpa, v.arpTpa]).toEqual([1, ipToU32(IP.vip), ipToU32(IP.vip)]);
    expect(e.announce(ipToU32("172.16.0.1"))).toBe(0);
  });
});

it("state names for the ESTABLISHED constant match", () => {
  expect(TcpState.ESTABLISHED).toBe(1);
});

describe("NAT engine: fragments", () => {
  it("sends later fragments after their first fragment's connection, both ways", () => {
    const e = natEngine();
    addService(e, udpKey(), "rr");
    addNatDest(e, udpKey(), IP.rs1, 53);
    // a 2-fragment UDP datagram: first fragment with the UDP header, then 16 more bytes
    const first = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip, id: 0x7777, mf: true })
      .udp({ sport: 3000, dport: 53, len: 8 + 24, csum: 0x1234 })
      .payload(new Uint8Array(16))
      .build();
    const later = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip, id: 0x7777, fragOff: 3, proto: 17 })
      .payload(new Uint8Array(8).fill(7))
      .build();
    // before its first fragment, a later fragment has nowhere to go
    expect(run(e, later, OUT).egress).toBe(-1);
    expect(e.drops[Drop.FRAGMENT]).toBe(1);
    expect(run(e, first, OUT).egress).toBe(IN);
    const r = run(e, later, OUT);
    expect(r.egress).toBe(IN);
    const want = eth({ src: MAC.dirIn, dst: MAC.rs1 })
      .ipv4({ src: IP.client, dst: IP.rs1, id: 0x7777, fragOff: 3, proto: 17, ttl: 63 })
      .payload(new Uint8Array(8).fill(7))
      .build();
    expect(hex(r.out)).toBe(hex(want));
    // a fragmented reply from the real server follows the connection back
    const rFirst = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client, id: 0x8888, mf: true })
      .udp({ sport: 53, dport: 3000, len: 40, csum: 0x4321 })
      .payload(new Uint8Array(24))
      .build();
    const rLater = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client, id: 0x8888, fragOff: 4, proto: 17 })
      .payload(new Uint8Array(8))
      .build();
    expect(run(e, rFirst, IN).egress).toBe(OUT);
    const r2 = run(e, rLater, IN);
    expect(r2.egress).toBe(OUT);
    const v = new FrameView();
    parseFrame(r2.out, new DataView(r2.out.buffer), 0, r2.out.length, v);
    expect([v.saddr, v.daddr, v.laterFrag]).toEqual([ipToU32(IP.vip), ipToU32(IP.client), 1]);
  });
});

describe("NAT engine: one-packet scheduling (-o)", () => {
  it("schedules every UDP datagram on its own and still carries its reply", () => {
    const e = natEngine();
    e.table.addService(udpKey(), { sched: "rr", flags: SVC_F_ONEPACKET, timeout: 0, netmask: 0xffffffff });
    addNatDest(e, udpKey(), IP.rs1, 53);
    addNatDest(e, udpKey(), IP.rs2, 53);
    const q = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .udp({ sport: 5000, dport: 53 })
      .payload("q")
      .build();
    const macs = [1000, 1100, 1200, 1300].map((t) => hex(run(e, q, OUT, t).out.subarray(0, 6)));
    const m = (s: string) => s.replaceAll(":", "");
    // the same client port, yet each datagram goes to the next dest
    expect(macs).toEqual([m(MAC.rs2), m(MAC.rs1), m(MAC.rs2), m(MAC.rs1)]);
    // the last datagram went to rs1: its answer within a second is translated back
    const ans = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client })
      .udp({ sport: 53, dport: 5000 })
      .payload("a")
      .build();
    expect(run(e, ans, IN, 1500).egress).toBe(OUT);
    expect(e.ct.count).toBe(1);
    expect(run(e, ans, IN, 2600).egress).toBe(-1); // its entry lived one second
  });
});
