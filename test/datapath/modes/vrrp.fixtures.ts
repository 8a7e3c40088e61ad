/**
 * VRRP at the data path (docs/ha.md): adverts handed to the engine's `vrrpSink`, and address
 * ownership (src/datapath/net/owner.ts) — a VIP whose VRRP instance is not MASTER gets no ARP
 * answer, no echo reply and no new connection (`not_owner`), while packets of connections that
 * already exist still pass. Owning the VIP again restores everything.
 *
 *   VIP:80/tcp NAT -> rs1:80
 */

import type { Engine } from "../../../src/datapath/engine.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { ICMP_ECHO, ICMP_ECHOREPLY, TCP_ACK, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { emitVrrp, VrrpAdvertSpec } from "../../../src/datapath/packet/vrrp.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import {
  CONSUMED,
  drop,
  type FixtureTable,
  fwd,
  GEN_ID,
  hop,
  IN,
  IP,
  MAC,
  OUT,
  on,
  out,
  type Seg,
  seg,
  standardTopology,
} from "./fixture.js";

const VIP = ipToU32(IP.vip);
/** The other director of the pair, on the outside link. */
const PEER = { ip: "10.0.0.2", mac: "02:00:00:00:00:02" };

/** What the sink saw: (link, VRID, priority) per advert. */
export const sunk: [number, number, number][] = [];

function advert(priority: number, daddr = "224.0.0.18"): Uint8Array {
  const s = new VrrpAdvertSpec();
  s.vrid = 51;
  s.priority = priority;
  s.count = 1;
  s.addrs[0] = VIP;
  s.saddr = ipToU32(PEER.ip);
  s.daddr = ipToU32(daddr);
  s.ipId = 1;
  const buf = new Uint8Array(128);
  const n = emitVrrp(buf, 0, s, macToBytes(PEER.mac), 0, macToBytes(MAC.dirOut), 0);
  return buf.slice(0, n);
}

const arpWho = (tpa: string) =>
  eth({ src: MAC.client, dst: MAC.bcast }).arp({ op: 1, sha: MAC.client, spa: IP.client, tpa }).build();
const arpIsAt = (spa: string) =>
  eth({ src: MAC.dirOut, dst: MAC.client })
    .arp({ op: 2, sha: MAC.dirOut, spa, tha: MAC.client, tpa: IP.client })
    .build();
const ping = (seq: number) =>
  eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip, id: 0x4900 + seq })
    .icmp({ type: ICMP_ECHO, id: 0x55, seq })
    .payload("vrrp")
    .build();
const pong = (seq: number) =>
  eth({ src: MAC.dirOut, dst: MAC.client })
    .ipv4({ src: IP.vip, dst: IP.client, id: GEN_ID })
    .icmp({ type: ICMP_ECHOREPLY, id: 0x55, seq })
    .payload("vrrp")
    .build();

const c = (x: Partial<Seg>): Seg => ({
  smac: MAC.client,
  dmac: MAC.dirOut,
  src: IP.client,
  dst: IP.vip,
  sport: 40500,
  dport: 80,
  seq: 1,
  flags: TCP_SYN,
  ...x,
});
const syn1 = c({ id: 0x4a01 });
const ack1 = c({ id: 0x4a02, seq: 2, ack: 2, flags: TCP_ACK });
const reply1: Seg = {
  smac: MAC.rs1,
  dmac: MAC.dirIn,
  src: IP.rs1,
  dst: IP.client,
  sport: 80,
  dport: 40500,
  seq: 1,
  ack: 2,
  flags: TCP_SYN | TCP_ACK,
};
const syn2 = c({ id: 0x4a03, sport: 40501 });
const syn3 = c({ id: 0x4a04, sport: 40502 });

export const vrrpTable: FixtureTable = {
  name: "vrrp",
  description: "VRRP: adverts to the sink, a disowned VIP gets no ARP, echo or new connection",
  topology: standardTopology(),
  setup(e: Engine) {
    const key = { proto: IPPROTO_TCP, addr: VIP, port: 80 };
    e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addDest(key, {
      addr: ipToU32(IP.rs1),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
  },
  rows: [
    {
      description: "without a sink, a VRRP advert is dropped as proto",
      input: on(OUT, advert(100)),
      expected: drop("proto"),
      output: [],
    },
    {
      description: "with a sink, a VRRP advert to 224.0.0.18 is handed to it",
      before: (e) => {
        e.vrrpSink = {
          advert: (v, link) => {
            sunk.push([link, v.buf[v.payloadOff + 1]!, v.buf[v.payloadOff + 2]!]);
          },
        };
      },
      input: on(OUT, advert(100)),
      expected: CONSUMED,
      output: [],
      check: () => {
        if (JSON.stringify(sunk) !== JSON.stringify([[OUT, 51, 100]]))
          throw new Error(`sink saw ${JSON.stringify(sunk)}`);
      },
    },
    {
      description: "a unicast advert to the director's own address is handed to the sink",
      input: on(OUT, advert(0, IP.dirOut)),
      expected: CONSUMED,
      output: [],
      check: () => {
        if (sunk.length !== 2 || sunk[1]![2] !== 0) throw new Error(`sink saw ${JSON.stringify(sunk)}`);
      },
    },
    {
      description: "a VRRP packet to an address that is not ours is dropped as proto",
      input: on(OUT, advert(100, "10.0.0.55")),
      expected: drop("proto"),
      output: [],
    },
    {
      description: "owned VIP: ARP for it is answered",
      input: on(OUT, arpWho(IP.vip)),
      expected: CONSUMED,
      output: [out(OUT, arpIsAt(IP.vip))],
    },
    {
      description: "owned VIP: a SYN opens a connection to rs1",
      input: on(OUT, seg(syn1)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(syn1, MAC.dirIn, MAC.rs1, { dst: IP.rs1 })))],
    },
    {
      description: "disowned VIP: ARP for it is not answered (not_owner)",
      before: (e) => e.owner.disown(VIP),
      input: on(OUT, arpWho(IP.vip)),
      expected: drop("not_owner"),
      output: [],
    },
    {
      description: "disowned VIP: ARP for the director's own address is still answered",
      input: on(OUT, arpWho(IP.dirOut)),
      expected: CONSUMED,
      output: [out(OUT, arpIsAt(IP.dirOut))],
    },
    {
      description: "disowned VIP: a new SYN is dropped (not_owner)",
      input: on(OUT, seg(syn2)),
      expected: drop("not_owner"),
      output: [],
    },
    {
      description: "disowned VIP: an echo request gets no reply (not_owner)",
      input: on(OUT, ping(1)),
      expected: drop("not_owner"),
      output: [],
    },
    {
      description: "disowned VIP: the reply of an existing connection is still forwarded",
      input: on(IN, seg(reply1)),
      expected: fwd(OUT),
      output: [out(OUT, seg(hop(reply1, MAC.dirOut, MAC.client, { src: IP.vip })))],
    },
    {
      description: "disowned VIP: the client's next segment of that connection still passes",
      input: on(OUT, seg(ack1)),
      expected: fwd(IN),
      output: [out(IN, seg(hop(ack1, MAC.dirIn, MAC.rs1, { dst: IP.rs1 })))],
    },
    {
      description: "owned again: ARP, echo and new connections work",
      before: (e) => e.owner.own(VIP),
      input: [on(OUT, arpWho(IP.vip)), on(OUT, ping(2)), on(OUT, seg(syn3))],
      expected: [CONSUMED, CONSUMED, fwd(IN)],
      output: [
        out(OUT, arpIsAt(IP.vip)),
        out(OUT, pong(2)),
        out(IN, seg(hop(syn3, MAC.dirIn, MAC.rs1, { dst: IP.rs1 }))),
      ],
    },
  ],
};
