/**
 * ICMP through a NAT director and to the director itself:
 * - errors from the real-server side about a packet we forwarded reach the client about the
 *   packet the client sent (outer source and quoted destination become the VIP, quoted port the
 *   virtual port), and errors from the client side reach the real server the mirror way
 *   (ip_vs_nat_icmp); the embedded IP checksum and, when quoted, the embedded TCP/UDP checksum
 *   stay consistent; TTL - 1 as for any forwarded packet;
 * - echo requests to a VIP or an address of the director are answered (RFC 792, RFC 1122
 *   3.2.2.6), others are not ours;
 * - a service with no usable dest answers port unreachable from the VIP quoting the packet.
 *
 *   VIP 10.0.0.100:80/tcp -> rs1:8080   VIP:53/udp -> rs2:5353
 *   VIP:25/tcp -> rs2 with weight 0     VIP:123/udp: no dest
 */

import { eth } from "../../../src/datapath/packet/build.js";
import {
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
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
  GEN_ID,
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
  type Seg,
  seg,
  standardTopology,
} from "./fixture.js";

const CPORT = 40002;
const RPORT = 41002;

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
const atRs = (x: Seg) => hop(x, MAC.dirIn, MAC.rs1, { dst: IP.rs1, dport: 8080 });

const syn = c({ id: 0x4101, seq: 1, flags: TCP_SYN, mss: 1460 });
/** A 1240-byte segment the director forwards; rs1's side then reports it too big. */
const big = c({ id: 0x4102, seq: 2, ack: 1, flags: TCP_ACK | TCP_PSH, data: "b".repeat(1200) });
const bigAtRs = atRs(big);
/** The segment as the client sent it, after our hop (TTL 63): what the client must see quoted. */
const bigAsSent = { ...big, ttl: 63 };

/** A client beyond the router, and rs1's SYN-ACK to it that the router could not deliver. */
const rSyn = c({ smac: MAC.router, src: IP.remote, sport: RPORT, id: 0x4201, seq: 50, flags: TCP_SYN });
const rSynAck: Seg = {
  smac: MAC.rs1,
  dmac: MAC.dirIn,
  src: IP.rs1,
  dst: IP.remote,
  sport: 8080,
  dport: RPORT,
  id: 0x4301,
  seq: 900,
  ack: 51,
  flags: TCP_SYN | TCP_ACK,
};
const rSynAckAtRouter = hop(rSynAck, MAC.dirOut, MAC.router, { src: IP.vip, sport: 80 });
/** What the router quotes: our SYN-ACK after one more hop (its TTL ran out there). */
const timeExceeded = icmpError(
  MAC.router,
  MAC.dirOut,
  IP.router,
  IP.vip,
  ICMP_TIME_EXCEEDED,
  0,
  ipOf({ ...rSynAckAtRouter, ttl: 1 }),
  { id: 0x4401, ttl: 255 },
);

const q: Seg = {
  smac: MAC.client,
  dmac: MAC.dirOut,
  src: IP.client,
  dst: IP.vip,
  id: 0x4501,
  udp: true,
  sport: 4000,
  dport: 53,
  data: "q",
};
/** rs2's answer as the client got it (VIP:53 -> client:4000): the client's port has closed. */
const ansAtClient: Seg = {
  smac: MAC.dirOut,
  dmac: MAC.client,
  src: IP.vip,
  dst: IP.client,
  ttl: 63,
  id: 0x4601,
  udp: true,
  sport: 53,
  dport: 4000,
  data: "a",
};

const ping = (src: string, dst: string, smac: string, dmac: string, id: number, seq: number) =>
  eth({ src: smac, dst: dmac })
    .ipv4({ src, dst, id: 0x4700 + seq })
    .icmp({ type: ICMP_ECHO, id, seq })
    .payload("lvs-ts ping 0123456789")
    .build();
/** The director's echo reply: from the address pinged, TTL 64, id GEN_ID, same id, seq, data. */
const pong = (src: string, dst: string, smac: string, dmac: string, id: number, seq: number) =>
  eth({ src: smac, dst: dmac })
    .ipv4({ src, dst, id: GEN_ID })
    .icmp({ type: ICMP_ECHOREPLY, id, seq })
    .payload("lvs-ts ping 0123456789")
    .build();

const smtpSyn = c({ id: 0x4801, dport: 25, seq: 9, flags: TCP_SYN });
const ntp: Seg = { ...q, id: 0x4802, sport: 123, dport: 123, data: "ntp" };

export const icmpTable: FixtureTable = {
  name: "icmp",
  description: "ICMP: errors relayed both ways for NAT, echo to VIPs and own addresses, port unreachable",
  topology: standardTopology(),
  setup(e) {
    const none = { flags: 0, timeout: 0, netmask: 0xffffffff };
    const svc = (proto: number, port: number, dests: [string, number, number][]) => {
      const key: ServiceKey = { proto, addr: ipToU32(IP.vip), port };
      e.table.addService(key, { sched: "rr", ...none });
      for (const [rip, rport, weight] of dests) {
        e.table.addDest(key, {
          addr: ipToU32(rip),
          port: rport,
          weight,
          fwd: FwdMethod.MASQ,
          uThreshold: 0,
          lThreshold: 0,
        });
      }
    };
    svc(IPPROTO_TCP, 80, [[IP.rs1, 8080, 1]]);
    svc(IPPROTO_UDP, 53, [[IP.rs2, 5353, 1]]);
    svc(IPPROTO_TCP, 25, [[IP.rs2, 25, 0]]);
    svc(IPPROTO_UDP, 123, []);
  },
  rows: [
    {
      description: "client SYN to VIP:80 opens a connection to rs1:8080",
      input: on(OUT, seg(syn)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(syn)))],
    },
    {
      description: "a 1240-byte segment of the connection is forwarded",
      input: on(OUT, seg(big)),
      expected: fwd(IN),
      output: [out(IN, seg(bigAtRs))],
    },
    {
      description:
        "rs1's frag-needed (548-byte quote) reaches the client about the client's segment, TTL - 1",
      input: on(
        IN,
        icmpError(
          MAC.rs1,
          MAC.dirIn,
          IP.rs1,
          IP.client,
          ICMP_DEST_UNREACH,
          ICMP_FRAG_NEEDED,
          ipOf(bigAtRs).subarray(0, 548),
          {
            mtu: 1200,
            id: 0x4901,
          },
        ),
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
            ICMP_FRAG_NEEDED,
            ipOf(bigAsSent).subarray(0, 548),
            { mtu: 1200, id: 0x4901, ttl: 63 },
          ),
        ),
      ],
    },
    {
      description:
        "the same error quoting only 8 bytes of TCP (RFC 792): quoted IP header and ports rewritten",
      input: on(
        IN,
        icmpError(
          MAC.rs1,
          MAC.dirIn,
          IP.rs1,
          IP.client,
          ICMP_DEST_UNREACH,
          ICMP_FRAG_NEEDED,
          ipOf(bigAtRs).subarray(0, 28),
          {
            mtu: 1200,
            id: 0x4902,
          },
        ),
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
            ICMP_FRAG_NEEDED,
            ipOf(bigAsSent).subarray(0, 28),
            { mtu: 1200, id: 0x4902, ttl: 63 },
          ),
        ),
      ],
    },
    {
      description: "a remote client's SYN opens a second connection",
      input: on(OUT, seg(rSyn)),
      expected: fwd(IN),
      output: [out(IN, seg(atRs(rSyn)))],
    },
    {
      description: "rs1's SYN-ACK to the remote client leaves through the router",
      input: on(IN, seg(rSynAck)),
      expected: fwd(OUT),
      output: [out(OUT, seg(rSynAckAtRouter))],
    },
    {
      description: "the router's time exceeded about that SYN-ACK reaches rs1 about rs1's own SYN-ACK",
      input: on(OUT, timeExceeded),
      expected: fwd(IN),
      output: [
        out(
          IN,
          icmpError(
            MAC.dirIn,
            MAC.rs1,
            IP.router,
            IP.rs1,
            ICMP_TIME_EXCEEDED,
            0,
            ipOf({ ...rSynAckAtRouter, ttl: 1, src: IP.rs1, sport: 8080 }),
            { id: 0x4401, ttl: 254 },
          ),
        ),
      ],
    },
    {
      description: "a UDP query to VIP:53 opens a connection to rs2:5353",
      input: on(OUT, seg(q)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(q, MAC.dirIn, MAC.rs2, { dst: IP.rs2, dport: 5353 })))],
    },
    {
      description: "the client's port unreachable about the answer reaches rs2 about rs2's datagram",
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
            id: 0x4903,
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
            IP.client,
            IP.rs2,
            ICMP_DEST_UNREACH,
            ICMP_PORT_UNREACH,
            ipOf({ ...ansAtClient, src: IP.rs2, sport: 5353 }),
            { id: 0x4903, ttl: 63 },
          ),
        ),
      ],
    },
    {
      description: "an ICMP error about a flow the director does not know is not relayed",
      input: on(
        IN,
        icmpError(
          MAC.rs1,
          MAC.dirIn,
          IP.rs1,
          IP.client,
          ICMP_DEST_UNREACH,
          ICMP_PORT_UNREACH,
          ipOf({ ...bigAtRs, sport: 1234 }).subarray(0, 28),
        ),
      ),
      expected: drop("icmp_unrelated"),
      output: [],
    },
    {
      description: "echo request to the VIP: echo reply from the VIP",
      input: on(OUT, ping(IP.client, IP.vip, MAC.client, MAC.dirOut, 0x77, 1)),
      expected: CONSUMED,
      output: [out(OUT, pong(IP.vip, IP.client, MAC.dirOut, MAC.client, 0x77, 1))],
    },
    {
      description: "echo request to the director's outside address: echo reply from it",
      input: on(OUT, ping(IP.client, IP.dirOut, MAC.client, MAC.dirOut, 0x77, 2)),
      expected: CONSUMED,
      output: [out(OUT, pong(IP.dirOut, IP.client, MAC.dirOut, MAC.client, 0x77, 2))],
    },
    {
      description: "echo request from rs1 to the inside address: echo reply on the inside link",
      input: on(IN, ping(IP.rs1, IP.dirIn, MAC.rs1, MAC.dirIn, 0x99, 3)),
      expected: CONSUMED,
      output: [out(IN, pong(IP.dirIn, IP.rs1, MAC.dirIn, MAC.rs1, 0x99, 3))],
    },
    {
      description: "echo request with a bad ICMP checksum is not answered",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip, id: 0x4704 })
          .icmp({ type: ICMP_ECHO, id: 0x77, seq: 4 })
          .payload("corrupt")
          .build({ badL4Csum: true }),
      ),
      expected: CONSUMED,
      output: [],
    },
    {
      description: "echo request to an address that is neither ours nor a VIP is not ours",
      input: on(OUT, ping(IP.client, "10.0.0.99", MAC.client, MAC.dirOut, 0x77, 5)),
      expected: drop("icmp_unrelated"),
      output: [],
    },
    {
      description: "timestamp request to the director's address: not served (local)",
      input: on(
        OUT,
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.dirOut })
          .icmp({ type: 13, id: 1, seq: 1 })
          .payload(new Uint8Array(12))
          .build(),
      ),
      expected: drop("local"),
      output: [],
    },
    {
      description:
        "SYN to VIP:25 whose only dest has weight 0: port unreachable from the VIP quoting the SYN",
      input: on(OUT, seg(smtpSyn)),
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
            ipOf(smtpSyn),
          ),
        ),
      ],
    },
    {
      description: "UDP to VIP:123 with no dest at all: port unreachable from the VIP",
      input: on(OUT, seg(ntp)),
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
            ipOf(ntp),
          ),
        ),
      ],
    },
  ],
};
