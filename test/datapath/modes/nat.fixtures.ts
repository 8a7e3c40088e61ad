/**
 * LVS-NAT (masquerading, -m): DNAT towards the real server with port mapping, SNAT on the way
 * back, TTL - 1 both ways (the director is an IP hop), frames leave untagged.
 *
 *   VIP 10.0.0.100:80/tcp -> rs1 192.168.10.1:8080     VIP:53/udp -> rs2 192.168.10.2:5353
 *   The inside link's MTU is 1400 (the outside one 1500).
 */

import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import {
  drop,
  type FixtureTable,
  fwd,
  hop,
  IN,
  IP,
  icmpFromDirector,
  ipOf,
  MAC,
  OUT,
  on,
  out,
  type Seg,
  seg,
  standardTopology,
  type Topology,
} from "./fixture.js";

const CPORT = 40001;
const RPORT = 41000;

/** Client -> VIP:80 as it arrives on out0. */
const c = (x: Partial<Seg>): Seg => ({
  smac: MAC.client,
  dmac: MAC.dirOut,
  src: IP.client,
  dst: IP.vip,
  df: true,
  sport: CPORT,
  dport: 80,
  ...x,
});
/** rs1:8080 -> client as it arrives on in0. */
const s = (x: Partial<Seg>): Seg => ({
  smac: MAC.rs1,
  dmac: MAC.dirIn,
  src: IP.rs1,
  dst: IP.client,
  df: true,
  sport: 8080,
  dport: CPORT,
  win: 65160,
  ...x,
});
/** What rs1 must receive: daddr = RIP, dport = 8080, Ethernet to rs1, TTL - 1. */
const atRs = (x: Seg) => hop(x, MAC.dirIn, MAC.rs1, { dst: IP.rs1, dport: 8080 });
/** What the client must receive: saddr = VIP, sport = 80, Ethernet to the client, TTL - 1. */
const atClient = (x: Seg) => hop(x, MAC.dirOut, MAC.client, { src: IP.vip, sport: 80 });

const REQ = "GET / HTTP/1.1\r\nHost: vip\r\n\r\n";
const RESP = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

const syn = c({ id: 0x0101, seq: 1000, flags: TCP_SYN, mss: 1460 });
const synAck = s({ id: 0x0201, seq: 5000, ack: 1001, flags: TCP_SYN | TCP_ACK, mss: 1460 });
const ack = c({ id: 0x0102, seq: 1001, ack: 5001, flags: TCP_ACK });
const req = c({ id: 0x0103, seq: 1001, ack: 5001, flags: TCP_ACK | TCP_PSH, data: REQ });
const resp = s({ id: 0x0202, seq: 5001, ack: 1001 + REQ.length, flags: TCP_ACK | TCP_PSH, data: RESP });
const tagged = c({ id: 0x0104, vlan: 100, seq: 1001 + REQ.length, ack: 5001 + RESP.length, flags: TCP_ACK });
const padded = c({ id: 0x0105, seq: 1001 + REQ.length, ack: 5001 + RESP.length, flags: TCP_ACK, padTo: 60 });
/** 1410 bytes of data: a 1450-byte DF packet, too big for the 1400-byte inside link. */
const tooBig = c({
  id: 0x0107,
  seq: 1001 + REQ.length,
  ack: 5001 + RESP.length,
  flags: TCP_ACK,
  data: "z".repeat(1410),
});
const fin = c({ id: 0x0106, seq: 1001 + REQ.length, ack: 5001 + RESP.length, flags: TCP_FIN | TCP_ACK });

// A client beyond the router: its frames come from the router's MAC, replies go back to it.
const rSyn = c({ smac: MAC.router, src: IP.remote, sport: RPORT, id: 0x0301, seq: 77, flags: TCP_SYN });
const rSynAck = s({ dst: IP.remote, dport: RPORT, id: 0x0401, seq: 9000, ack: 78, flags: TCP_SYN | TCP_ACK });

const q: Seg = {
  smac: MAC.client,
  dmac: MAC.dirOut,
  src: IP.client,
  dst: IP.vip,
  id: 0x0501,
  udp: true,
  sport: 33333,
  dport: 53,
  data: "\x12\x34query",
};
const ans: Seg = {
  smac: MAC.rs2,
  dmac: MAC.dirIn,
  src: IP.rs2,
  dst: IP.client,
  id: 0x0601,
  udp: true,
  sport: 5353,
  dport: 33333,
  data: "\x12\x34answer",
};
const qNoCsum: Seg = { ...q, id: 0x0502, sport: 33334, noCsum: true, data: "x" };

export const natTable: FixtureTable = {
  name: "nat",
  description: "LVS-NAT: both directions, port mapping, remote clients, UDP, VLAN and padding",
  topology: insideMtu(standardTopology(), 1400),
  setup(e) {
    const tcp = { proto: IPPROTO_TCP, addr: ipToU32(IP.vip), port: 80 };
    const udp = { proto: IPPROTO_UDP, addr: ipToU32(IP.vip), port: 53 };
    const none = { flags: 0, timeout: 0, netmask: 0xffffffff };
    e.table.addService(tcp, { sched: "rr", ...none });
    e.table.addDest(tcp, dest(IP.rs1, 8080));
    e.table.addService(udp, { sched: "rr", ...none });
    e.table.addDest(udp, dest(IP.rs2, 5353));
  },
  rows: [
    {
      description: "client SYN to VIP:80 goes to rs1 with daddr = RIP, dport = 8080, TTL - 1",
      input: on(OUT, seg(syn)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(syn)))],
    },
    {
      description: "rs1's SYN-ACK from port 8080 goes to the client from VIP:80",
      input: on(IN, seg(synAck)),
      expected: fwd(OUT),
      output: [out(OUT, seg(atClient(synAck)))],
    },
    {
      description: "client ACK follows the connection to rs1:8080",
      input: on(OUT, seg(ack)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(ack)))],
    },
    {
      description: "client request: payload untouched, TCP checksum follows the address and port change",
      input: on(OUT, seg(req)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(req)))],
    },
    {
      description: "rs1's response goes back from VIP:80",
      input: on(IN, seg(resp)),
      expected: fwd(OUT),
      output: [out(OUT, seg(atClient(resp)))],
    },
    {
      description: "a segment with an 802.1Q tag leaves untagged",
      input: on(OUT, seg(tagged)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(tagged)))],
    },
    {
      description: "a 60-byte padded frame is rewritten and keeps its Ethernet padding",
      input: on(OUT, seg(padded)),
      expected: fwd(IN),
      output: [out(IN, seg({ ...atRs(padded), padTo: 60 }))],
    },
    {
      description:
        "a 1450-byte DF segment for the 1400-byte inside link: too_big, frag-needed MTU 1400 from the VIP",
      input: on(OUT, seg(tooBig)),
      expected: drop("too_big"),
      output: [
        out(
          OUT,
          icmpFromDirector(
            MAC.dirOut,
            MAC.client,
            IP.vip,
            IP.client,
            ICMP_DEST_UNREACH,
            ICMP_FRAG_NEEDED,
            ipOf(tooBig),
            1400,
          ),
        ),
      ],
    },
    {
      description: "client FIN follows the connection",
      input: on(OUT, seg(fin)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(fin)))],
    },
    {
      description: "a remote client's SYN (via the router) is mapped to rs1:8080",
      input: on(OUT, seg(rSyn)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(rSyn)))],
    },
    {
      description: "the reply to the remote client leaves through the default route's router",
      input: on(IN, seg(rSynAck)),
      expected: fwd(OUT),
      output: [out(OUT, seg(hop(rSynAck, MAC.dirOut, MAC.router, { src: IP.vip, sport: 80 })))],
    },
    {
      description: "UDP query to VIP:53 goes to rs2:5353",
      input: on(OUT, seg(q)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(q, MAC.dirIn, MAC.rs2, { dst: IP.rs2, dport: 5353 })))],
    },
    {
      description: "rs2's UDP answer goes back from VIP:53",
      input: on(IN, seg(ans)),
      expected: fwd(OUT),
      output: [out(OUT, seg(hop(ans, MAC.dirOut, MAC.client, { src: IP.vip, sport: 53 })))],
    },
    {
      description: "a UDP datagram without a checksum keeps checksum 0",
      input: on(OUT, seg(qNoCsum)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(qNoCsum, MAC.dirIn, MAC.rs2, { dst: IP.rs2, dport: 5353 })))],
    },
  ],
};

function insideMtu(t: Topology, mtu: number): Topology {
  t.links[IN]!.mtu = mtu;
  return t;
}

function dest(rip: string, port: number) {
  return { addr: ipToU32(rip), port, weight: 1, fwd: FwdMethod.MASQ, uThreshold: 0, lThreshold: 0 };
}
