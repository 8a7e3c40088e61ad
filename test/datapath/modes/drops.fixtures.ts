/**
 * Drops by reason (src/datapath/drops.ts): malformed frames by parse status, frames with no
 * service or connection, TTL exceeded, fragments with no first fragment, modes that refuse,
 * next hops that do not resolve. Each row checks the counter that moves (and that no other
 * does) and any frame the director sends about it.
 *
 * This table's topology has no default route (for no_route) and its engine parks at most one
 * frame waiting for ARP (for neigh_miss).
 *
 *   VIP:80/tcp NAT -> rs1:80     VIP:53/udp NAT -> rs1:53    VIP:54/udp NAT -> rs2:54
 *   VIP:25/tcp: no dest          VIP:8443/tcp FULLNAT, no local address
 *   VIP:9000/tcp -> a dest with the "local" method (no mode for it)
 *   VIP:81/tcp DR -> rs1         VIP:82/tcp NAT -> rs9 (MAC unknown)
 *   VIP:8080/tcp FULLNAT PROXY v1 -> rs2:8080 via .200
 */

import type { Engine } from "../../../src/datapath/engine.js";
import { eth } from "../../../src/datapath/packet/build.js";
import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  ICMP_TIME_EXCEEDED,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import type { ServiceKey } from "../../../src/tables/services.js";
import {
  CONSUMED,
  drop,
  type FixtureTable,
  fwd,
  hop,
  IN,
  IP,
  icmpError,
  icmpFromDirector,
  ipOf,
  MAC,
  OUT,
  on,
  out,
  QUEUED,
  type Seg,
  seg,
  standardTopology,
  type Topology,
} from "./fixture.js";

const c = (x: Partial<Seg>): Seg => ({
  smac: MAC.client,
  dmac: MAC.dirOut,
  src: IP.client,
  dst: IP.vip,
  sport: 40300,
  dport: 80,
  seq: 1,
  flags: TCP_SYN,
  ...x,
});

/** A well-formed client SYN to VIP:80, whose bytes the malformed rows start from. */
const good = seg(c({ id: 0x5001 }));
const bytes = (...parts: (number[] | Uint8Array)[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const ethHdr = (type: number) => [
  ...[0x02, 0, 0, 0, 0, 0x01],
  ...[0x02, 0, 0, 0, 0, 0x07],
  type >> 8,
  type & 0xff,
];
/** An IPv4 frame from the client with the given builder options and raw payload. */
const ipFrame = (o: { proto?: number; dst?: string }, payload: Uint8Array, opts = {}) =>
  eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: o.dst ?? IP.vip, proto: o.proto ?? 253, id: 0x5002 })
    .payload(payload)
    .build(opts);

const withIp = (f: (ip: Uint8Array) => void) => {
  const x = good.slice();
  f(x.subarray(14));
  return x;
};

const ttl1 = c({ id: 0x5003, sport: 40301, ttl: 1 });
const smtp = c({ id: 0x5004, sport: 40302, dport: 25 });
const fnat = c({ id: 0x5005, sport: 40303, dport: 8443 });
const q = c({ id: 0x5006, sport: 5000, dport: 53, udp: true, data: "q" });
const qAtRs = hop(q, MAC.dirIn, MAC.rs1, { dst: IP.rs1 });
const u54 = c({ id: 0x5007, sport: 5001, dport: 54, udp: true, data: "a" });
const drSyn = c({ id: 0x5008, sport: 40304, dport: 81 });
const rSyn = c({ id: 0x5009, smac: MAC.router, src: IP.remote, sport: 40305 });
const rReply: Seg = {
  smac: MAC.rs1,
  dmac: MAC.dirIn,
  src: IP.rs1,
  dst: IP.remote,
  sport: 80,
  dport: 40305,
  seq: 1,
  ack: 2,
  flags: TCP_SYN | TCP_ACK,
};
const n1 = c({ id: 0x500a, sport: 40306, dport: 82 });
const n2 = c({ id: 0x500b, sport: 40307, dport: 82 });
const pSyn = c({ id: 0x500c, sport: 40308, dport: 8080, seq: 100 });
/** A jumbo first data segment: no room left in its 2048-byte slot for the PROXY header. */
const pJumbo = c({
  id: 0x500d,
  sport: 40308,
  dport: 8080,
  seq: 101,
  ack: 1,
  flags: TCP_ACK | TCP_PSH,
  data: "j".repeat(1896),
});

function key(proto: number, port: number): ServiceKey {
  return { proto, addr: ipToU32(IP.vip), port };
}

export const dropsTable: FixtureTable = {
  name: "drops",
  description: "drops by reason: malformed frames, no service/connection, TTL, fragments, refusals",
  // Jumbo links (MTU 9000): the 1950-byte PROXY row must reach the mode, past the engine's MTU check.
  topology: jumboLinks(standardTopology({ defaultRoute: false })),
  engine: { pendingMax: 1 },
  setup(e: Engine) {
    const none = { flags: 0, timeout: 0, netmask: 0xffffffff };
    const svc = (proto: number, port: number, dest?: [string, number, number], proxy = 0) => {
      e.table.addService(key(proto, port), { sched: "rr", ...none, proxyProtocol: proxy });
      if (dest) {
        const [rip, rport, fwdm] = dest;
        e.table.addDest(key(proto, port), {
          addr: ipToU32(rip),
          port: rport,
          weight: 1,
          fwd: fwdm as FwdMethod,
          uThreshold: 0,
          lThreshold: 0,
        });
      }
    };
    svc(IPPROTO_TCP, 80, [IP.rs1, 80, FwdMethod.MASQ]);
    svc(IPPROTO_UDP, 53, [IP.rs1, 53, FwdMethod.MASQ]);
    svc(IPPROTO_UDP, 54, [IP.rs2, 54, FwdMethod.MASQ]);
    svc(IPPROTO_TCP, 25);
    svc(IPPROTO_TCP, 8443, [IP.rs1, 443, FwdMethod.FULLNAT]);
    svc(IPPROTO_TCP, 9000, [IP.rs1, 9000, FwdMethod.LOCAL]);
    svc(IPPROTO_TCP, 81, [IP.rs1, 81, FwdMethod.ROUTE]);
    svc(IPPROTO_TCP, 82, [IP.rs9, 82, FwdMethod.MASQ]);
    svc(IPPROTO_TCP, 8080, [IP.rs2, 8080, FwdMethod.FULLNAT], 1);
    e.table.addLaddr(key(IPPROTO_TCP, 8080), ipToU32(IP.laddr));
  },
  rows: [
    // ---- malformed frames: one parse status each
    {
      description: "10 bytes: eth_short",
      input: on(OUT, good.slice(0, 10)),
      expected: drop("eth_short"),
      output: [],
    },
    {
      description: "802.1Q type with the tag cut off: vlan_short",
      input: on(OUT, bytes(ethHdr(0x8100), [0, 5])),
      expected: drop("vlan_short"),
      output: [],
    },
    {
      description: "ARP with 20 of 28 bytes: arp_short",
      input: on(OUT, bytes(ethHdr(0x0806), new Uint8Array(20))),
      expected: drop("arp_short"),
      output: [],
    },
    {
      description: "ARP for a hardware type other than Ethernet: arp_unsupported",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.bcast })
          .arp({ op: 1, sha: MAC.client, spa: IP.client, tpa: IP.vip, htype: 6 })
          .build(),
      ),
      expected: drop("arp_unsupported"),
      output: [],
    },
    {
      description: "IPv6 ethertype: l2_other",
      input: on(OUT, bytes(ethHdr(0x86dd), [0x60], new Uint8Array(39))),
      expected: drop("l2_other"),
      output: [],
    },
    {
      description: "IPv4 header cut at 10 bytes: ip_short",
      input: on(OUT, good.slice(0, 24)),
      expected: drop("ip_short"),
      output: [],
    },
    {
      description: "version 6 in an IPv4 frame: ip_bad_version",
      input: on(
        OUT,
        withIp((ip) => (ip[0] = 0x65)),
      ),
      expected: drop("ip_bad_version"),
      output: [],
    },
    {
      description: "IHL 4: ip_bad_ihl",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip, ihl: 4 })
          .tcp({ sport: 1, dport: 80, flags: TCP_SYN })
          .build(),
      ),
      expected: drop("ip_bad_ihl"),
      output: [],
    },
    {
      description: "total length beyond the frame: ip_bad_totlen",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip, totalLen: 1000 })
          .tcp({ sport: 1, dport: 80, flags: TCP_SYN })
          .build(),
      ),
      expected: drop("ip_bad_totlen"),
      output: [],
    },
    {
      description: "IP header checksum wrong: ip_bad_csum",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip })
          .tcp({ sport: 1, dport: 80, flags: TCP_SYN })
          .build({ badIpCsum: true }),
      ),
      expected: drop("ip_bad_csum"),
      output: [],
    },
    {
      description: "an IP option with length 1: ip_bad_options",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip, options: [0x44, 1, 0, 0] })
          .tcp({ sport: 1, dport: 80, flags: TCP_SYN })
          .build(),
      ),
      expected: drop("ip_bad_options"),
      output: [],
    },
    {
      description: "TCP with 10 bytes of header: tcp_short",
      input: on(OUT, ipFrame({ proto: 6 }, new Uint8Array(10))),
      expected: drop("tcp_short"),
      output: [],
    },
    {
      description: "TCP data offset 4: tcp_bad_doff",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip })
          .tcp({ sport: 1, dport: 80, flags: TCP_SYN, doff: 4 })
          .build(),
      ),
      expected: drop("tcp_bad_doff"),
      output: [],
    },
    {
      description: "UDP with 4 bytes: udp_short",
      input: on(OUT, ipFrame({ proto: 17 }, new Uint8Array(4))),
      expected: drop("udp_short"),
      output: [],
    },
    {
      description: "UDP length 200 with 9 bytes present: udp_bad_len",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip })
          .udp({ sport: 1, dport: 53, len: 200 })
          .payload("x")
          .build(),
      ),
      expected: drop("udp_bad_len"),
      output: [],
    },
    {
      description: "ICMP with 4 bytes: icmp_short",
      input: on(OUT, ipFrame({ proto: 1 }, new Uint8Array(4))),
      expected: drop("icmp_short"),
      output: [],
    },
    {
      description: "ICMP error quoting 10 bytes: icmp_inner_short",
      input: on(
        OUT,
        icmpError(
          MAC.client,
          MAC.dirOut,
          IP.client,
          IP.vip,
          ICMP_DEST_UNREACH,
          ICMP_PORT_UNREACH,
          new Uint8Array(10),
        ),
      ),
      expected: drop("icmp_inner_short"),
      output: [],
    },
    // ---- well-formed frames the director does not forward
    {
      description: "a later fragment whose first fragment never came: fragment",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip, id: 0x6666, fragOff: 185, proto: 17 })
          .payload(new Uint8Array(16))
          .build(),
      ),
      expected: drop("fragment"),
      output: [],
    },
    {
      description: "GRE to the VIP: proto",
      input: on(OUT, ipFrame({ proto: 47 }, new Uint8Array(8))),
      expected: drop("proto"),
      output: [],
    },
    {
      description: "SYN to a VIP port with no service: no_service",
      input: on(OUT, seg(c({ id: 0x5101, dport: 8081 }))),
      expected: drop("no_service"),
      output: [],
    },
    {
      description: "UDP to an address with no service: no_service",
      input: on(OUT, seg(c({ id: 0x5102, dst: "10.0.0.99", udp: true, dport: 53 }))),
      expected: drop("no_service"),
      output: [],
    },
    {
      description: "TCP to the director's own address: local",
      input: on(OUT, seg(c({ id: 0x5103, dst: IP.dirOut, dport: 22 }))),
      expected: drop("local"),
      output: [],
    },
    {
      description: "an ACK with no connection: no_conn",
      input: on(OUT, seg(c({ id: 0x5104, flags: TCP_ACK, ack: 77 }))),
      expected: drop("no_conn"),
      output: [],
    },
    {
      description: "SYN to a service with no dest: no_dest and port unreachable from the VIP",
      input: on(OUT, seg(smtp)),
      expected: drop("no_dest"),
      output: [
        out(
          OUT,
          icmpFromDirector(
            MAC.dirOut,
            MAC.client,
            IP.vip,
            IP.client,
            ICMP_DEST_UNREACH,
            ICMP_PORT_UNREACH,
            ipOf(smtp),
          ),
        ),
      ],
    },
    {
      description: "FULLNAT service without a local address: laddr_exhausted and port unreachable",
      input: on(OUT, seg(fnat)),
      expected: drop("laddr_exhausted"),
      output: [
        out(
          OUT,
          icmpFromDirector(
            MAC.dirOut,
            MAC.client,
            IP.vip,
            IP.client,
            ICMP_DEST_UNREACH,
            ICMP_PORT_UNREACH,
            ipOf(fnat),
          ),
        ),
      ],
    },
    {
      description: "a dest whose method has no mode: mode_unsupported",
      input: on(OUT, seg(c({ id: 0x5105, sport: 40309, dport: 9000 }))),
      expected: drop("mode_unsupported"),
      output: [],
    },
    {
      description: "NAT SYN with TTL 1: ttl_exceeded and time exceeded from the outside address",
      input: on(OUT, seg(ttl1)),
      expected: drop("ttl_exceeded"),
      output: [
        out(
          OUT,
          icmpFromDirector(MAC.dirOut, MAC.client, IP.dirOut, IP.client, ICMP_TIME_EXCEEDED, 0, ipOf(ttl1)),
        ),
      ],
    },
    {
      description: "a UDP query opens a NAT connection to rs1:53",
      input: on(OUT, seg(q)),
      expected: fwd(IN),
      output: [out(IN, seg(qAtRs))],
    },
    {
      description: "an ICMP error to relay with TTL 1: ttl_exceeded, no error about an error",
      input: on(
        IN,
        icmpError(MAC.rs1, MAC.dirIn, IP.rs1, IP.client, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, ipOf(qAtRs), {
          ttl: 1,
        }),
      ),
      expected: drop("ttl_exceeded"),
      output: [],
    },
    {
      description: "frag-needed about a flow the director does not know: icmp_unrelated",
      input: on(
        IN,
        icmpError(
          MAC.rs1,
          MAC.dirIn,
          IP.rs1,
          IP.client,
          ICMP_DEST_UNREACH,
          ICMP_FRAG_NEEDED,
          ipOf({ ...qAtRs, sport: 9 }),
          {
            mtu: 1000,
          },
        ),
      ),
      expected: drop("icmp_unrelated"),
      output: [],
    },
    {
      description: "ARP request for an address that is not ours: arp_not_ours",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.bcast })
          .arp({ op: 1, sha: MAC.client, spa: IP.client, tpa: "10.0.0.55" })
          .build(),
      ),
      expected: drop("arp_not_ours"),
      output: [],
    },
    // ---- refusals by modes and by the neighbour layer
    {
      description: "DR SYN to VIP:81 is forwarded to rs1",
      input: on(OUT, seg(drSyn)),
      expected: fwd(IN),
      output: [out(IN, seg({ ...drSyn, smac: MAC.dirIn, dmac: MAC.rs1 }))],
    },
    {
      description: "DR: rs1 answering from RIP through the director is refused by the mode (icmp_unrelated)",
      input: on(
        IN,
        seg({
          smac: MAC.rs1,
          dmac: MAC.dirIn,
          src: IP.rs1,
          dst: IP.client,
          sport: 81,
          dport: 40304,
          flags: TCP_SYN | TCP_ACK,
        }),
      ),
      expected: drop("icmp_unrelated"),
      output: [],
    },
    {
      description: "FULLNAT PROXY v1 SYN to VIP:8080 is forwarded",
      input: on(OUT, seg(pSyn)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(pSyn, MAC.dirIn, MAC.rs2, { src: IP.laddr, sport: 1025, dst: IP.rs2 })))],
    },
    {
      description: "a 1950-byte first data segment leaves no room for the PROXY header: mode_failed",
      input: on(OUT, seg(pJumbo)),
      expected: drop("mode_failed"),
      output: [],
    },
    {
      description: "a remote client's SYN with no route back to it: rp_filter (strict, the default)",
      input: on(OUT, seg(rSyn)),
      expected: drop("rp_filter"),
      output: [],
    },
    {
      description: "the same SYN with rp_filter 0 is forwarded (routes in, but no route back)",
      before: (e) => {
        e.sysctl.rpFilter = 0;
      },
      input: on(OUT, seg(rSyn)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(rSyn, MAC.dirIn, MAC.rs1, { dst: IP.rs1 })))],
    },
    {
      description: "rs1's reply to the remote client: no_route (this topology has no default route)",
      input: on(IN, seg(rReply)),
      expected: drop("no_route"),
      output: [],
    },
    {
      description: "(rp_filter back to 1) a SYN to another host's MAC: not_our_mac, before any lookup",
      before: (e) => {
        e.sysctl.rpFilter = 1;
      },
      input: on(OUT, seg(hop(rSyn, MAC.client, "02:00:00:00:00:99", {}))),
      expected: drop("not_our_mac"),
      output: [],
    },
    {
      description: "SYN to VIP:82 whose dest's MAC is unknown: queued, ARP request on the inside link",
      input: on(OUT, seg(n1)),
      expected: QUEUED,
      output: [
        out(
          IN,
          eth({ src: MAC.dirIn, dst: MAC.bcast })
            .arp({ op: 1, sha: MAC.dirIn, spa: IP.dirIn, tpa: IP.rs9 })
            .build(),
        ),
      ],
    },
    {
      description: "another SYN for the same unresolved hop with the queue full: neigh_miss, no second ARP",
      input: on(OUT, seg(n2)),
      expected: drop("neigh_miss"),
      output: [],
    },
    {
      description: "rs9's ARP reply releases the queued SYN, NATed to rs9",
      input: on(
        IN,
        eth({ src: MAC.rs9, dst: MAC.dirIn })
          .arp({ op: 2, sha: MAC.rs9, spa: IP.rs9, tha: MAC.dirIn, tpa: IP.dirIn })
          .build(),
      ),
      expected: CONSUMED,
      output: [out(IN, seg(hop(n1, MAC.dirIn, MAC.rs9, { dst: IP.rs9 })))],
    },
    {
      description: "a UDP datagram opens a connection to rs2:54",
      input: on(OUT, seg(u54)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(u54, MAC.dirIn, MAC.rs2, { dst: IP.rs2 })))],
    },
    {
      description: "after its dest is deleted (connection kept), the next datagram: nodest_conn",
      before: (e) => {
        e.sysctl.expireNodestConn = 0;
        e.table.deleteDest(key(IPPROTO_UDP, 54), ipToU32(IP.rs2), 54);
        e.sysctl.expireNodestConn = 1;
      },
      input: on(OUT, seg({ ...u54, id: 0x5106 })),
      expected: drop("nodest_conn"),
      output: [],
    },
  ],
};

function jumboLinks(t: Topology): Topology {
  for (const l of t.links) l.mtu = 9000;
  return t;
}
