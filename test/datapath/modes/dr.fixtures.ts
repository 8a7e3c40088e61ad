/**
 * LVS-DR (direct routing, -g): only the Ethernet addresses change. The IP packet, its TTL and
 * every checksum stay as the client sent them; the real server (VIP on a non-ARPing interface)
 * answers the client directly. ICMP errors from the client side about those answers go to the
 * real server the same way.
 *
 *   VIP 10.0.0.100:80/tcp -> rs1, rs2 (rr; rs2 was added last, so it is first)
 *   VIP:53/udp -> rs1
 */

import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import {
  type FixtureTable,
  fwd,
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
  withMacs,
} from "./fixture.js";

const A = 40100;
const B = 40101;

const c = (x: Partial<Seg>): Seg => ({
  smac: MAC.client,
  dmac: MAC.dirOut,
  src: IP.client,
  dst: IP.vip,
  sport: A,
  dport: 80,
  ...x,
});

const synA = c({ id: 0x1101, seq: 100, flags: TCP_SYN, mss: 1460, df: true });
const ackA = c({ id: 0x1102, seq: 101, ack: 7001, flags: TCP_ACK, df: true });
const synB = c({ id: 0x1201, sport: B, seq: 300, flags: TCP_SYN });
const ttl1A = c({ id: 0x1103, seq: 101, ack: 7001, flags: TCP_ACK | TCP_PSH, ttl: 1, data: "last hop" });
const taggedA = c({ id: 0x1104, vlan: 7, seq: 109, ack: 7001, flags: TCP_ACK, tos: 0x28 });
const { vlan: _tag, ...untaggedA } = taggedA;
const q = c({ id: 0x1301, sport: 5300, dport: 53, udp: true, data: "dns?" });

/** rs2's answer to flow A, sent straight to the client (it never crossed the director). */
const rs2Answer: Seg = {
  smac: MAC.rs2,
  dmac: MAC.client,
  src: IP.vip,
  dst: IP.client,
  df: true,
  sport: 80,
  dport: A,
  seq: 7001,
  ack: 109,
  flags: TCP_ACK | TCP_PSH,
  data: "x".repeat(1400),
};
/** A router on the client's side cannot pass it: it tells the VIP (the answer's source). */
const fragNeeded = icmpError(
  MAC.router,
  MAC.dirOut,
  IP.router,
  IP.vip,
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ipOf({ ...rs2Answer, ttl: 60 }).subarray(0, 548),
  { mtu: 1280, id: 0x1401, ttl: 61 },
);

export const drTable: FixtureTable = {
  name: "dr",
  description: "LVS-DR: MAC rewrite only, rr over two real servers, ICMP to the real server",
  topology: standardTopology(),
  setup(e) {
    const tcp = { proto: IPPROTO_TCP, addr: ipToU32(IP.vip), port: 80 };
    const udp = { proto: IPPROTO_UDP, addr: ipToU32(IP.vip), port: 53 };
    const none = { flags: 0, timeout: 0, netmask: 0xffffffff };
    e.table.addService(tcp, { sched: "rr", ...none });
    // DR cannot map ports: the dest's 8080 is stored as the service port.
    e.table.addDest(tcp, dest(IP.rs1, 8080));
    e.table.addDest(tcp, dest(IP.rs2, 80));
    e.table.addService(udp, { sched: "rr", ...none });
    e.table.addDest(udp, dest(IP.rs1, 53));
  },
  rows: [
    {
      description: "client SYN goes to rs2 (head of the list) with only the MACs rewritten",
      input: on(OUT, seg(synA)),
      expected: fwd(IN),
      output: [out(IN, withMacs(seg(synA), MAC.dirIn, MAC.rs2))],
    },
    {
      description: "the flow's ACK follows it to rs2, IP packet byte-identical",
      input: on(OUT, seg(ackA)),
      expected: fwd(IN),
      output: [out(IN, withMacs(seg(ackA), MAC.dirIn, MAC.rs2))],
    },
    {
      description: "a second client port goes to rs1, still to port 80 (no port mapping in DR)",
      input: on(OUT, seg(synB)),
      expected: fwd(IN),
      output: [out(IN, withMacs(seg(synB), MAC.dirIn, MAC.rs1))],
    },
    {
      description: "a TTL-1 segment is forwarded untouched: DR is not an IP hop",
      input: on(OUT, seg(ttl1A)),
      expected: fwd(IN),
      output: [out(IN, withMacs(seg(ttl1A), MAC.dirIn, MAC.rs2))],
    },
    {
      description: "an 802.1Q-tagged segment leaves untagged, TOS and TTL as sent",
      input: on(OUT, seg(taggedA)),
      expected: fwd(IN),
      output: [out(IN, seg({ ...untaggedA, smac: MAC.dirIn, dmac: MAC.rs2 }))],
    },
    {
      description: "a UDP query goes to rs1:53 with only the MACs rewritten",
      input: on(OUT, seg(q)),
      expected: fwd(IN),
      output: [out(IN, withMacs(seg(q), MAC.dirIn, MAC.rs1))],
    },
    {
      description: "frag-needed about rs2's direct answer reaches rs2 unchanged but for the MACs",
      input: on(OUT, fragNeeded),
      expected: fwd(IN),
      output: [out(IN, withMacs(fragNeeded, MAC.dirIn, MAC.rs2))],
    },
  ],
};

function dest(rip: string, port: number) {
  return { addr: ipToU32(rip), port, weight: 1, fwd: FwdMethod.ROUTE, uThreshold: 0, lThreshold: 0 };
}
