/**
 * LVS-TUN (IP tunnelling, -i): the client's packet, untouched, inside an IPIP header (RFC 2003)
 * from the director's address on the egress link to the real server: TOS, TTL and DF copied from
 * the inner header, a fresh IP id. Path MTU: a packet that would not fit the tunnel (link MTU or
 * the MTU learned from fragmentation-needed about our tunnel packets) is refused; with DF the
 * client gets fragmentation-needed from the VIP with the MTU reduced by the 20-byte tunnel header.
 *
 *   VIP 10.0.0.100:80/tcp -> rsT 172.16.5.10 (a remote network, via gw 192.168.10.253)
 *   VIP:53/udp -> rs2 192.168.10.2 (on the inside link)
 */

import type { Engine } from "../../../src/datapath/engine.js";
import { eth } from "../../../src/datapath/packet/build.js";
import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import {
  CONSUMED,
  drop,
  type FixtureTable,
  fwd,
  GEN_ID,
  IN,
  IP,
  icmpError,
  icmpFromDirector,
  ipOf,
  MAC,
  OUT,
  on,
  out,
  type Seg,
  seg,
  standardTopology,
} from "./fixture.js";

const CPORT = 40200;

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

/** `inner` as the director must send it: IPIP from its inside address, TOS/TTL/DF copied, id GEN_ID. */
function tunnel(inner: Seg, rip: string, dmac: string): Uint8Array {
  return eth({ src: MAC.dirIn, dst: dmac })
    .ipv4({
      src: IP.dirIn,
      dst: rip,
      tos: inner.tos ?? 0,
      ttl: inner.ttl ?? 64,
      id: GEN_ID,
      df: inner.df ?? false,
      proto: IPPROTO_IPIP,
    })
    .payload(ipOf(inner))
    .build();
}

/** The same for an inner packet given as bytes (an ICMP error), with DF/TTL/TOS as in `bytes`. */
function tunnelBytes(ip: Uint8Array, rip: string, dmac: string): Uint8Array {
  return eth({ src: MAC.dirIn, dst: dmac })
    .ipv4({
      src: IP.dirIn,
      dst: rip,
      tos: ip[1]!,
      ttl: ip[8]!,
      id: GEN_ID,
      df: (ip[6]! & 0x40) !== 0,
      proto: IPPROTO_IPIP,
    })
    .payload(ip)
    .build();
}

const syn = c({ id: 0x2101, tos: 0x10, seq: 200, flags: TCP_SYN, mss: 1460 });
const data = (id: number, seq: number, n: number, df = true) =>
  c({ id, seq, ack: 9001, flags: TCP_ACK | TCP_PSH, data: "d".repeat(n), df });
/** 1000 bytes of data: a 1040-byte IP packet, 1060 in the tunnel. */
const d1000 = data(0x2102, 201, 1000);
/** A 1481-byte IP packet: one byte too many for a 1500-byte link once tunnelled. */
const d1441 = data(0x2103, 1201, 1441);
/** A 1480-byte IP packet: exactly fits. */
const d1440 = data(0x2104, 1201, 1440);
const d1441NoDf = data(0x2105, 1201, 1441, false);
/** 900 bytes: a 940-byte IP packet, 960 tunnelled. */
const d900 = data(0x2106, 2641, 900);
const ttl1 = c({ id: 0x2107, sport: CPORT + 1, ttl: 1, seq: 55, flags: TCP_SYN });
const q: Seg = { ...c({ id: 0x2201, sport: 5301, dport: 53, udp: true, data: "query" }), df: false };

/** The tunnel packet of d1000 as it left (what a router quotes back). */
const d1000Tunnelled = tunnel(d1000, IP.rsT, MAC.gw).subarray(14);
const qTunnelled = tunnel(q, IP.rs2, MAC.rs2).subarray(14);

/** The client's port is closed: its port unreachable about rsT's direct answer (VIP:80 -> client). */
const clientErr = icmpError(
  MAC.client,
  MAC.dirOut,
  IP.client,
  IP.vip,
  ICMP_DEST_UNREACH,
  ICMP_PORT_UNREACH,
  ipOf({
    smac: MAC.rs2,
    dmac: MAC.client,
    src: IP.vip,
    dst: IP.client,
    ttl: 57,
    sport: 80,
    dport: CPORT,
    seq: 9001,
    flags: TCP_ACK,
  }),
  { id: 0x2301 },
);

function pmtuOf(e: Engine, port: number, rip: string): number {
  for (const s of e.table.list()) {
    if (s.port !== port) continue;
    for (const d of s.dests) if (d.addr === ipToU32(rip)) return d.pmtu;
  }
  throw new Error(`no dest ${rip} on port ${port}`);
}

function expectPmtu(port: number, rip: string, mtu: number) {
  return (e: Engine) => {
    const got = pmtuOf(e, port, rip);
    if (got !== mtu) throw new Error(`dest ${rip} pmtu: expected ${mtu}, got ${got}`);
  };
}

export const tunTable: FixtureTable = {
  name: "tun",
  description: "LVS-TUN: IPIP encapsulation, path MTU and fragmentation-needed",
  topology: standardTopology(),
  setup(e) {
    const tcp = { proto: IPPROTO_TCP, addr: ipToU32(IP.vip), port: 80 };
    const udp = { proto: IPPROTO_UDP, addr: ipToU32(IP.vip), port: 53 };
    const none = { flags: 0, timeout: 0, netmask: 0xffffffff };
    e.table.addService(tcp, { sched: "rr", ...none });
    e.table.addDest(tcp, dest(IP.rsT));
    e.table.addService(udp, { sched: "rr", ...none });
    e.table.addDest(udp, dest(IP.rs2));
  },
  rows: [
    {
      description: "client SYN is tunnelled to rsT via gw: outer 192.168.10.254 > rsT, TOS/TTL/DF copied",
      input: on(OUT, seg(syn)),
      expected: fwd(IN),
      output: [out(IN, tunnel(syn, IP.rsT, MAC.gw))],
    },
    {
      description: "a 1040-byte packet fits the 1500-byte link once tunnelled",
      input: on(OUT, seg(d1000)),
      expected: fwd(IN),
      output: [out(IN, tunnel(d1000, IP.rsT, MAC.gw))],
    },
    {
      description: "a DF packet of exactly 1480 bytes fits (1500 with the tunnel header)",
      input: on(OUT, seg(d1440)),
      expected: fwd(IN),
      output: [out(IN, tunnel(d1440, IP.rsT, MAC.gw))],
    },
    {
      description: "a 1481-byte DF packet: too_big, client gets frag-needed from the VIP with MTU 1480",
      input: on(OUT, seg(d1441)),
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
            ipOf(d1441),
            1480,
          ),
        ),
      ],
    },
    {
      description: "the same packet without DF is dropped (too_big) without a message",
      input: on(OUT, seg(d1441NoDf)),
      expected: drop("too_big"),
      output: [],
    },
    {
      description:
        "gw's frag-needed (MTU 1200) quoting 548 bytes of our tunnel packet: pmtu learned, client told MTU 1180",
      input: on(
        IN,
        icmpError(
          MAC.gw,
          MAC.dirIn,
          IP.gw,
          IP.dirIn,
          ICMP_DEST_UNREACH,
          ICMP_FRAG_NEEDED,
          d1000Tunnelled.subarray(0, 548),
          { mtu: 1200, id: 0x2401 },
        ),
      ),
      expected: CONSUMED,
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
            ipOf(d1000).subarray(0, 528),
            1180,
          ),
        ),
      ],
      check: expectPmtu(80, IP.rsT, 1200),
    },
    {
      description: "gw's frag-needed (MTU 1000) quoting the whole tunnel packet: pmtu 1000, client told 980",
      input: on(
        IN,
        icmpError(MAC.gw, MAC.dirIn, IP.gw, IP.dirIn, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, d1000Tunnelled, {
          mtu: 1000,
          id: 0x2402,
        }),
      ),
      expected: CONSUMED,
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
            ipOf(d1000),
            980,
          ),
        ),
      ],
      check: expectPmtu(80, IP.rsT, 1000),
    },
    {
      description: "with pmtu 1000 learned, the 1040-byte packet is refused locally with MTU 980",
      input: on(OUT, seg(d1000)),
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
            ipOf(d1000),
            980,
          ),
        ),
      ],
    },
    {
      description: "a 940-byte packet still fits the learned path MTU",
      input: on(OUT, seg(d900)),
      expected: fwd(IN),
      output: [out(IN, tunnel(d900, IP.rsT, MAC.gw))],
    },
    {
      description: "a TTL-1 packet is tunnelled unchanged (TUN is not an IP hop), outer TTL copied",
      input: on(OUT, seg(ttl1)),
      expected: fwd(IN),
      output: [out(IN, tunnel(ttl1, IP.rsT, MAC.gw))],
    },
    {
      description: "a UDP query without DF is tunnelled to on-link rs2, outer DF clear",
      input: on(OUT, seg(q)),
      expected: fwd(IN),
      output: [out(IN, tunnel(q, IP.rs2, MAC.rs2))],
    },
    {
      description: "frag-needed about a non-DF tunnel packet: pmtu learned, nothing sent to the client",
      input: on(
        IN,
        icmpError(MAC.rs2, MAC.dirIn, IP.rs2, IP.dirIn, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, qTunnelled, {
          mtu: 1300,
          id: 0x2403,
        }),
      ),
      expected: CONSUMED,
      output: [],
      check: expectPmtu(53, IP.rs2, 1300),
    },
    {
      description: "the client's port unreachable about rsT's direct answer is tunnelled to rsT",
      input: on(OUT, clientErr),
      expected: fwd(IN),
      output: [out(IN, tunnelBytes(clientErr.subarray(14), IP.rsT, MAC.gw))],
    },
  ],
};

function dest(rip: string) {
  return { addr: ipToU32(rip), port: 0, weight: 1, fwd: FwdMethod.TUNNEL, uThreshold: 0, lThreshold: 0 };
}
