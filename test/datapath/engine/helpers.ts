/** A small NAT topology for engine tests: client side on link 0, real servers on link 1. */

import { Engine, type EngineOptions } from "../../../src/datapath/engine.js";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod, SVC_F_PERSISTENT } from "../../../src/tables/model.js";
import type { ServiceKey } from "../../../src/tables/services.js";

export const MAC = {
  dirOut: "02:00:00:00:00:01",
  dirIn: "02:00:00:00:01:01",
  client: "02:00:00:00:00:07",
  router: "02:00:00:00:00:fe",
  rs1: "02:00:00:00:01:11",
  rs2: "02:00:00:00:01:12",
};
export const IP = {
  dirOut: "10.0.0.1",
  dirIn: "192.168.10.254",
  vip: "10.0.0.100",
  client: "10.0.0.7",
  remote: "198.51.100.9",
  router: "10.0.0.254",
  rs1: "192.168.10.1",
  rs2: "192.168.10.2",
};
export const OUT = 0;
export const IN = 1;

export function natEngine(opts: EngineOptions = {}): Engine {
  const e = new Engine({ sweepPerBatch: 0, ...opts });
  e.net.addLink("out0", macToBytes(MAC.dirOut), [{ addr: ipToU32(IP.dirOut), prefix: 24 }]);
  e.net.addLink("in0", macToBytes(MAC.dirIn), [{ addr: ipToU32(IP.dirIn), prefix: 24 }]);
  e.net.addRoute(0, 0, ipToU32(IP.router));
  const now = 0;
  e.net.neigh.learn(ipToU32(IP.client), macToBytes(MAC.client), 0, OUT, now, true);
  e.net.neigh.learn(ipToU32(IP.router), macToBytes(MAC.router), 0, OUT, now, true);
  e.net.neigh.learn(ipToU32(IP.rs1), macToBytes(MAC.rs1), 0, IN, now, true);
  e.net.neigh.learn(ipToU32(IP.rs2), macToBytes(MAC.rs2), 0, IN, now, true);
  return e;
}

export function tcpKey(vip = IP.vip, port = 80): ServiceKey {
  return { proto: IPPROTO_TCP, addr: ipToU32(vip), port };
}
export function udpKey(vip = IP.vip, port = 53): ServiceKey {
  return { proto: IPPROTO_UDP, addr: ipToU32(vip), port };
}

export function addService(
  e: Engine,
  key: ServiceKey,
  sched = "rr",
  persist = 0,
  netmask = 0xffffffff,
): void {
  e.table.addService(key, {
    sched,
    flags: persist > 0 ? SVC_F_PERSISTENT : 0,
    timeout: persist,
    netmask,
  });
}

export function addNatDest(e: Engine, key: ServiceKey, rip: string, port: number, weight = 1): void {
  e.table.addDest(key, {
    addr: ipToU32(rip),
    port,
    weight,
    fwd: FwdMethod.MASQ,
    uThreshold: 0,
    lThreshold: 0,
  });
}

export interface Result {
  /** Egress link of the input frame, or -1 when dropped. */
  egress: number;
  /** The frame after processing (bytes as forwarded). */
  out: Uint8Array;
  /** Frames the director generated: [link, bytes]. */
  generated: [number, Uint8Array][];
}

/** Run one frame through the engine at time `now` (ms). */
export function run(e: Engine, frame: Uint8Array, link: number, now = 1000): Result {
  const b = new FrameBatch(4);
  b.push(frame, link);
  e.process(b, now);
  const generated: [number, Uint8Array][] = [];
  for (let j = 0; j < e.tx.count; j++) generated.push([e.tx.egress[j]!, e.tx.frame(j)]);
  return { egress: b.egress[0]!, out: b.frame(0), generated };
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** The TCP service VIP:80 behind the SYN proxy, one real server rs1:`port` (`fwd`; FULLNAT gets `laddr`). */
export function addSynProxyService(
  e: Engine,
  fwd: FwdMethod = FwdMethod.MASQ,
  laddr = "192.168.10.200",
  port = 8080,
): void {
  e.table.addService(tcpKey(), { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, synProxy: true });
  if (fwd === FwdMethod.FULLNAT) e.table.addLaddr(tcpKey(), ipToU32(laddr));
  e.table.addDest(tcpKey(), { addr: ipToU32(IP.rs1), port, weight: 1, fwd, uThreshold: 0, lThreshold: 0 });
}

/** natEngine with addSynProxyService. */
export function synProxyEngine(fwd: FwdMethod = FwdMethod.MASQ, laddr = "192.168.10.200"): Engine {
  const e = natEngine();
  addSynProxyService(e, fwd, laddr);
  return e;
}
