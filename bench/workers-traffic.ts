/**
 * Traffic for the data-path workers (docs/workers.md), shared by the in-process worker benchmark
 * (bench/workers.bench.ts) and the worker tests (test/control/workers.test.ts): a master engine
 * with a NAT and a FULLNAT UDP service behind two links, the links and network each worker
 * builds, client datagrams of many flows, replies built from what the real servers received,
 * and the steering a fanout program does (client end for requests and NAT replies, local port
 * for FULLNAT replies).
 *
 * Every datagram's payload starts with its flow number (uint32), so a flow can be followed
 * through FULLNAT, which replaces the client's address and port.
 */

import { Engine } from "../src/datapath/engine.js";
import { packFrames } from "../src/datapath/io/replay.js";
import { eth } from "../src/datapath/packet/build.js";
import type { WorkerLinkSpec, WorkerNet } from "../src/datapath/workers/protocol.js";
import { steerWorker } from "../src/datapath/workers/protocol.js";
import { ipToU32, macToBytes, u32ToIp } from "../src/lib/addr.js";
import { IPPROTO_UDP } from "../src/lib/proto.js";
import { FwdMethod } from "../src/tables/model.js";

export const OUT_MAC = "02:00:00:00:00:01";
export const IN_MAC = "02:00:00:00:01:01";
export const GW = "10.0.0.254";
export const GW_MAC = "02:00:00:00:00:fe";
export const NAT_VIP = "10.0.0.100";
export const FNAT_VIP = "10.0.0.101";
export const LADDR = "192.168.10.200";
export const RIPS = 4;

export function ripIp(k: number): string {
  return `192.168.10.${k}`;
}
function ripMac(addr: number): string {
  return `02:00:00:00:01:${(0x10 + (addr & 0xff)).toString(16)}`;
}

/** The master engine: NAT (UDP VIP:53) and FULLNAT (UDP FNAT_VIP:53) services, scheduler `sched`. */
export function masterEngine(sched = "sh", maxConns = 1 << 12): Engine {
  const e = new Engine({ maxConns });
  for (const [vip, fwd] of [
    [NAT_VIP, FwdMethod.MASQ],
    [FNAT_VIP, FwdMethod.FULLNAT],
  ] as const) {
    const key = { proto: IPPROTO_UDP, addr: ipToU32(vip), port: 53 };
    e.table.addService(key, { sched, flags: 0, timeout: 0, netmask: 0xffffffff });
    if (fwd === FwdMethod.FULLNAT) e.table.addLaddr(key, ipToU32(LADDR));
    for (let k = 1; k <= RIPS; k++)
      e.table.addDest(key, {
        addr: ipToU32(ripIp(k)),
        port: 5353,
        weight: 1,
        fwd,
        uThreshold: 0,
        lThreshold: 0,
      });
  }
  return e;
}

/** Addresses, the default route and static neighbours (no ARP in memory runs). */
export function workerNet(): WorkerNet {
  const neighs = [{ addr: ipToU32(GW), mac: macToBytes(GW_MAC), link: 0 }];
  for (let k = 1; k <= RIPS; k++) {
    const a = ipToU32(ripIp(k));
    neighs.push({ addr: a, mac: macToBytes(ripMac(a)), link: 1 });
  }
  return {
    addrs: [[{ addr: ipToU32("10.0.0.1"), prefix: 24 }], [{ addr: ipToU32("192.168.10.254"), prefix: 24 }]],
    routes: [{ net: 0, prefix: 0, via: ipToU32(GW) }],
    neighs,
  };
}

/** Give engine `e` the links and network of a worker (to run the traffic through one engine). */
export function wire(e: Engine): Engine {
  const net = workerNet();
  e.net.addLink("out0", macToBytes(OUT_MAC), net.addrs[0]!, 1500);
  e.net.addLink("in0", macToBytes(IN_MAC), net.addrs[1]!, 1500);
  for (const r of net.routes) e.net.addRoute(r.net, r.prefix, r.via);
  for (const n of net.neighs) e.net.neigh.learn(n.addr, n.mac, 0, n.link, 0, true);
  return e;
}

/** The two replay links of a worker: out0 (clients) and in0 (real servers). */
export function replayLinks(
  out: readonly Uint8Array[],
  inn: readonly Uint8Array[],
  capture: boolean,
  warmupOut = 0,
): WorkerLinkSpec[] {
  return [
    {
      kind: "replay",
      name: "out0",
      mac: macToBytes(OUT_MAC),
      mtu: 1500,
      ...packFrames(out),
      warmup: warmupOut,
      capture,
    },
    {
      kind: "replay",
      name: "in0",
      mac: macToBytes(IN_MAC),
      mtu: 1500,
      ...packFrames(inn),
      warmup: 0,
      capture,
    },
  ];
}

export interface Flow {
  id: number;
  client: number;
  cport: number;
  vip: string;
}

/** `n` flows from clients beyond the gateway, alternating NAT and FULLNAT (unless `only`). */
export function flows(n: number, only?: "nat" | "fullnat"): Flow[] {
  const out: Flow[] = [];
  for (let i = 0; i < n; i++) {
    const vip = only === "nat" ? NAT_VIP : only === "fullnat" ? FNAT_VIP : i % 2 === 0 ? NAT_VIP : FNAT_VIP;
    out.push({
      id: i,
      client: (ipToU32("10.1.0.1") + i) >>> 0,
      cport: 1024 + (i % 60000),
      vip,
    });
  }
  return out;
}

function payload(id: number, seq: number, size: number): Uint8Array {
  const p = new Uint8Array(Math.max(8, size));
  const dv = new DataView(p.buffer);
  dv.setUint32(0, id);
  dv.setUint32(4, seq);
  for (let k = 8; k < p.length; k++) p[k] = (id * 7 + seq + k) & 0xff;
  return p;
}

/** Datagram `seq` of flow f, client → VIP, of `size` payload bytes (at least 8). */
export function request(f: Flow, seq: number, size: number): Uint8Array {
  return eth({ src: GW_MAC, dst: OUT_MAC })
    .ipv4({ src: f.client, dst: f.vip })
    .udp({ sport: f.cport, dport: 53 })
    .payload(payload(f.id, seq, size))
    .build();
}

/** The fields of a forwarded UDP frame (untagged, no IP options). */
export function udpFields(fr: Uint8Array): {
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  id: number;
  bytes: number;
} {
  const dv = new DataView(fr.buffer, fr.byteOffset, fr.byteLength);
  return {
    saddr: dv.getUint32(26),
    daddr: dv.getUint32(30),
    sport: dv.getUint16(34),
    dport: dv.getUint16(36),
    id: dv.getUint32(42),
    bytes: fr.length,
  };
}

/** The real server's answer to a frame it received (`got`, as the director sent it). */
export function reply(got: Uint8Array, size: number): Uint8Array {
  const f = udpFields(got);
  const seq = new DataView(got.buffer, got.byteOffset).getUint32(46);
  return eth({ src: ripMac(f.daddr), dst: IN_MAC })
    .ipv4({ src: f.daddr, dst: f.saddr })
    .udp({ sport: f.dport, dport: f.sport })
    .payload(payload(f.id, seq + 1_000_000, size))
    .build();
}

/** The worker a request of flow f goes to. */
export function steerRequest(f: Flow, count: number): number {
  return steerWorker(f.client, f.cport, count);
}

/** The worker a reply (real server → director) goes to: local port (FULLNAT) or client end (NAT). */
export function steerReply(fr: Uint8Array, count: number): number {
  const f = udpFields(fr);
  if (f.daddr === ipToU32(LADDR) >>> 0) return f.dport % count;
  return steerWorker(f.daddr, f.dport, count);
}

export { u32ToIp };
