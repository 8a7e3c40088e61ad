/**
 * FULLNAT (--fullnat, after DPVS): the client's address and port become a local address of the
 * service's pool and a port from it (ports are handed out from 1025 up, per local address and
 * protocol), VIP:vport becomes RIP:rport; replies the other way. With PROXY protocol (v1 text or
 * v2 binary, haproxy's proxy-protocol.txt) the header is inserted in front of the client's first
 * data segment, and from then on the client's sequence numbers are shifted up by its length and
 * the server's acknowledgements and SACK edges down; the server's SYN-ACK MSS is lowered by the
 * largest header (56 bytes for v1 TCP4, 28 for v2).
 *
 *   VIP:80/tcp -> rs1:8080 via laddr .200     VIP:81/tcp PROXY v1 -> rs1:8081 via .201
 *   VIP:82/tcp PROXY v2 -> rs1:8082 via .202  VIP:53/udp -> rs2:53 via .203
 */

import { eth } from "../../../src/datapath/packet/build.js";
import {
  ICMP_DEST_UNREACH,
  ICMP_PORT_UNREACH,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import type { ServiceKey } from "../../../src/tables/services.js";
import {
  CONSUMED,
  type FixtureTable,
  fwd,
  hop,
  IN,
  IP,
  icmpError,
  ipOf,
  MAC,
  OUT,
  on,
  out,
  type Seg,
  seg,
  standardTopology,
  u32,
} from "./fixture.js";

const LPORT = 1025;

const c = (x: Partial<Seg>): Seg => ({
  smac: MAC.client,
  dmac: MAC.dirOut,
  src: IP.client,
  dst: IP.vip,
  df: true,
  sport: 40010,
  dport: 80,
  ...x,
});
/** rs1 answering a local address. */
const s = (x: Partial<Seg>): Seg => ({
  smac: MAC.rs1,
  dmac: MAC.dirIn,
  src: IP.rs1,
  dst: IP.laddr,
  df: true,
  sport: 8080,
  dport: LPORT,
  win: 65160,
  ...x,
});
/** Client -> server after FULLNAT: laddr:lport -> RIP:rport, TTL - 1. */
const toRs = (x: Seg, laddr: string, lport: number, rport: number, more: Partial<Seg> = {}) =>
  hop(x, MAC.dirIn, MAC.rs1, { src: laddr, sport: lport, dst: IP.rs1, dport: rport, ...more });
/** Server -> client after FULLNAT: VIP:vport -> caddr:cport, TTL - 1. */
const toClient = (x: Seg, vport: number, cport: number, more: Partial<Seg> = {}) =>
  hop(x, MAC.dirOut, MAC.client, { src: IP.vip, sport: vport, dst: IP.client, dport: cport, ...more });

// ---- plain FULLNAT, VIP:80
const syn = c({ id: 0x3101, seq: 10, flags: TCP_SYN, mss: 1460 });
const synAck = s({ id: 0x3201, seq: 700, ack: 11, flags: TCP_SYN | TCP_ACK, mss: 1460 });
const ack = c({ id: 0x3102, seq: 11, ack: 701, flags: TCP_ACK });
const syn2 = c({ id: 0x3103, sport: 40011, seq: 20, flags: TCP_SYN });

// ---- UDP, VIP:53 via .203
const q: Seg = c({ id: 0x3301, sport: 5353, dport: 53, udp: true, df: false, data: "lookup" });
const qAtRs = hop(q, MAC.dirIn, MAC.rs2, { src: IP.laddr4, sport: LPORT, dst: IP.rs2 });
const ansAtClient: Seg = {
  smac: MAC.dirOut,
  dmac: MAC.client,
  src: IP.vip,
  dst: IP.client,
  ttl: 63,
  id: 0x3302,
  udp: true,
  sport: 53,
  dport: 5353,
  data: "answer",
};

// ---- PROXY v1, VIP:81 via .201; PROXY v2, VIP:82 via .202
const REQ = "GET / HTTP/1.0\r\n\r\n";
const V1 = `PROXY TCP4 ${IP.client} ${IP.vip} 40020 81\r\n`;
const V2 = Uint8Array.from([
  ...[0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a], // signature
  0x21, // version 2, PROXY
  0x11, // AF_INET, STREAM
  0x00,
  12, // address block length
  ...[10, 0, 0, 7], // client
  ...[10, 0, 0, 100], // VIP
  ...[40030 >> 8, 40030 & 0xff, 0, 82],
]);
const cat = (a: Uint8Array | string, b: string) => {
  const x = typeof a === "string" ? new TextEncoder().encode(a) : a;
  const y = new TextEncoder().encode(b);
  const r = new Uint8Array(x.length + y.length);
  r.set(x);
  r.set(y, x.length);
  return r;
};
const H1 = V1.length;

const p1 = (x: Partial<Seg>) => c({ sport: 40020, dport: 81, ...x });
const s1 = (x: Partial<Seg>) => s({ sport: 8081, dst: IP.laddr2, ...x });
const p1Syn = p1({ id: 0x3401, seq: 1000, flags: TCP_SYN, mss: 1460 });
const s1SynAck = s1({ id: 0x3501, seq: 5000, ack: 1001, flags: TCP_SYN | TCP_ACK, mss: 1460 });
const p1Ack = p1({ id: 0x3402, seq: 1001, ack: 5001, flags: TCP_ACK });
const p1Req = p1({ id: 0x3403, seq: 1001, ack: 5001, flags: TCP_ACK | TCP_PSH, data: REQ });
const p1Retx = p1({ ...p1Req, id: 0x3404 });
const s1Ack = s1({
  id: 0x3502,
  seq: 5001,
  ack: 1001 + H1 + REQ.length,
  flags: TCP_ACK | TCP_PSH,
  data: "OK",
});
const p1Fin = p1({ id: 0x3405, seq: 1001 + REQ.length, ack: 5003, flags: TCP_FIN | TCP_ACK });
const sackL = 1001 + H1 + 100;
const s1Sack = s1({
  id: 0x3503,
  seq: 5003,
  ack: 1001 + H1,
  flags: TCP_ACK,
  opts: [1, 1, 5, 10, ...u32(sackL), ...u32(sackL + 50)],
});

const p2 = (x: Partial<Seg>) => c({ sport: 40030, dport: 82, ...x });
const p2Syn = p2({ id: 0x3601, seq: 0xfffffff0, flags: TCP_SYN });
const p2Req = p2({ id: 0x3602, seq: 0xfffffff1, ack: 1, flags: TCP_ACK | TCP_PSH, data: REQ });
const p2Next = p2({ id: 0x3603, seq: (0xfffffff1 + REQ.length) >>> 0, ack: 1, flags: TCP_ACK, data: "more" });

export const fullnatTable: FixtureTable = {
  name: "fullnat",
  description: "FULLNAT: local-address pool both ways, ICMP relay, PROXY protocol v1 and v2",
  topology: standardTopology(),
  setup(e) {
    const none = { flags: 0, timeout: 0, netmask: 0xffffffff };
    const add = (proto: number, port: number, laddr: string, rip: string, rport: number, proxy = 0) => {
      const key: ServiceKey = { proto, addr: ipToU32(IP.vip), port };
      e.table.addService(key, { sched: "rr", ...none, proxyProtocol: proxy });
      e.table.addLaddr(key, ipToU32(laddr));
      e.table.addDest(key, {
        addr: ipToU32(rip),
        port: rport,
        weight: 1,
        fwd: FwdMethod.FULLNAT,
        uThreshold: 0,
        lThreshold: 0,
      });
    };
    add(IPPROTO_TCP, 80, IP.laddr, IP.rs1, 8080);
    add(IPPROTO_TCP, 81, IP.laddr2, IP.rs1, 8081, 1);
    add(IPPROTO_TCP, 82, IP.laddr3, IP.rs1, 8082, 2);
    add(IPPROTO_UDP, 53, IP.laddr4, IP.rs2, 53);
  },
  rows: [
    {
      description: "client SYN: saddr:sport = laddr:1025 (first port of the pool), daddr:dport = rs1:8080",
      input: on(OUT, seg(syn)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(syn, IP.laddr, LPORT, 8080)))],
    },
    {
      description: "rs1's SYN-ACK to laddr:1025 goes to the client from VIP:80",
      input: on(IN, seg(synAck)),
      expected: fwd(OUT),
      output: [out(OUT, seg(toClient(synAck, 80, 40010)))],
    },
    {
      description: "client ACK keeps its local address and port",
      input: on(OUT, seg(ack)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(ack, IP.laddr, LPORT, 8080)))],
    },
    {
      description: "a second connection gets the next local port, 1026",
      input: on(OUT, seg(syn2)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(syn2, IP.laddr, LPORT + 1, 8080)))],
    },
    {
      description: "the director answers ARP for its local address on the inside link",
      input: on(
        IN,
        eth({ src: MAC.rs1, dst: MAC.bcast })
          .arp({ op: 1, sha: MAC.rs1, spa: IP.rs1, tpa: IP.laddr })
          .build(),
      ),
      expected: CONSUMED,
      output: [
        out(
          IN,
          eth({ src: MAC.dirIn, dst: MAC.rs1 })
            .arp({ op: 2, sha: MAC.dirIn, spa: IP.laddr, tha: MAC.rs1, tpa: IP.rs1 })
            .build(),
        ),
      ],
    },
    {
      description: "UDP query: laddr .203:1025 -> rs2:53",
      input: on(OUT, seg(q)),
      expected: fwd(IN),
      output: [out(IN, seg(qAtRs))],
    },
    {
      description:
        "rs2's port unreachable about our query reaches the client about the client's own datagram",
      input: on(
        IN,
        icmpError(MAC.rs2, MAC.dirIn, IP.rs2, IP.laddr4, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, ipOf(qAtRs), {
          id: 0x3701,
        }),
      ),
      expected: fwd(OUT),
      output: [
        out(
          OUT,
          icmpError(
            MAC.dirOut,
            MAC.client,
            IP.vip,
            IP.client,
            ICMP_DEST_UNREACH,
            ICMP_PORT_UNREACH,
            ipOf({ ...q, ttl: 63 }),
            { id: 0x3701, ttl: 63 },
          ),
        ),
      ],
    },
    {
      description: "the client's port unreachable about our answer reaches rs2 about rs2's own datagram",
      input: on(
        OUT,
        icmpError(
          MAC.client,
          MAC.dirOut,
          IP.client,
          IP.vip,
          ICMP_DEST_UNREACH,
          ICMP_PORT_UNREACH,
          ipOf(ansAtClient),
          {
            id: 0x3702,
          },
        ),
      ),
      expected: fwd(IN),
      output: [
        out(
          IN,
          icmpError(
            MAC.dirIn,
            MAC.rs2,
            IP.laddr4,
            IP.rs2,
            ICMP_DEST_UNREACH,
            ICMP_PORT_UNREACH,
            ipOf({ ...ansAtClient, src: IP.rs2, dst: IP.laddr4, dport: LPORT }),
            { id: 0x3702, ttl: 63 },
          ),
        ),
      ],
    },
    {
      description: "PROXY v1: the SYN passes unchanged but for FULLNAT (sequence number kept)",
      input: on(OUT, seg(p1Syn)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(p1Syn, IP.laddr2, LPORT, 8081)))],
    },
    {
      description: "PROXY v1: the server's SYN-ACK MSS 1460 reaches the client as 1404 (1460 - 56)",
      input: on(IN, seg(s1SynAck)),
      expected: fwd(OUT),
      output: [out(OUT, seg(toClient(s1SynAck, 81, 40020, { mss: 1404 })))],
    },
    {
      description: "PROXY v1: the handshake's ACK carries no data, nothing inserted",
      input: on(OUT, seg(p1Ack)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(p1Ack, IP.laddr2, LPORT, 8081)))],
    },
    {
      description: "PROXY v1: the first data segment carries the text header in front of the request",
      input: on(OUT, seg(p1Req)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(p1Req, IP.laddr2, LPORT, 8081, { data: cat(V1, REQ) })))],
    },
    {
      description: "PROXY v1: a retransmission of the first segment carries the header again",
      input: on(OUT, seg(p1Retx)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(p1Retx, IP.laddr2, LPORT, 8081, { data: cat(V1, REQ) })))],
    },
    {
      description:
        "PROXY v1: the server's ACK of header + request reaches the client as an ACK of the request",
      input: on(IN, seg(s1Ack)),
      expected: fwd(OUT),
      output: [out(OUT, seg(toClient(s1Ack, 81, 40020, { ack: 1001 + REQ.length })))],
    },
    {
      description: "PROXY v1: later client segments are shifted up by the header length",
      input: on(OUT, seg(p1Fin)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(p1Fin, IP.laddr2, LPORT, 8081, { seq: 1001 + REQ.length + H1 })))],
    },
    {
      description: "PROXY v1: the server's ACK and SACK edges are shifted down by the header length",
      input: on(IN, seg(s1Sack)),
      expected: fwd(OUT),
      output: [
        out(
          OUT,
          seg(toClient(s1Sack, 81, 40020, { ack: 1001, opts: [1, 1, 5, 10, ...u32(1101), ...u32(1151)] })),
        ),
      ],
    },
    {
      description: "PROXY v2: SYN with a sequence number about to wrap",
      input: on(OUT, seg(p2Syn)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(p2Syn, IP.laddr3, LPORT, 8082)))],
    },
    {
      description: "PROXY v2: the first data segment carries the 28-byte binary header",
      input: on(OUT, seg(p2Req)),
      expected: fwd(IN),
      output: [out(IN, seg(toRs(p2Req, IP.laddr3, LPORT, 8082, { data: cat(V2, REQ) })))],
    },
    {
      description: "PROXY v2: the next segment's sequence number is shifted by 28 across the wrap",
      input: on(OUT, seg(p2Next)),
      expected: fwd(IN),
      output: [
        out(IN, seg(toRs(p2Next, IP.laddr3, LPORT, 8082, { seq: (0xfffffff1 + REQ.length + 28) >>> 0 }))),
      ],
    },
  ],
};
