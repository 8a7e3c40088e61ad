/**
 * An engine in process for the metrics tests: services made with lvsadm (TCP with a mapped port,
 * UDP, a persistent one, a fwmark one) and from a keepalived.conf (health checks with scripted
 * probes and a manual clock), and a known set of frames through the director's in-memory links.
 */

import { EngineControl } from "../../../src/control/adapter.js";
import { run as lvsadm } from "../../../src/control/commands.js";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { RateEstimator } from "../../../src/control/estimator.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import { parseServices } from "../../../src/control/netdb.js";
import type { ObservedDaemon } from "../../../src/control/observe/daemon.js";
import { Director } from "../../../src/datapath/director.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { TCP_ACK, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { macToBytes } from "../../../src/lib/addr.js";
import { IP, MAC, natEngine } from "../../datapath/engine/helpers.js";
import { FakeClock, ScriptedProbes } from "../health/fake.js";

export { IP, MAC };

const NO_NAMES = parseServices("");
/** The keepalived.conf's virtual server. */
export const VIP2 = "10.0.0.101";
/** fwmark 0x1A2B: /proc/net/ip_vs prints it "%08X", "00001A2B", and node_exporter passes that on. */
export const MARK = 0x1a2b;

/** Health-checked: rs1 answers, rs2 does not (retry 0: down on its first failure, and removed). */
const CONF = `
virtual_server ${VIP2} 80 {
  delay_loop 5
  warmup 0
  lb_algo rr
  lb_kind NAT
  real_server ${IP.rs1} 80 {
    weight 4
    TCP_CHECK { connect_timeout 1
      retry 0 }
  }
  real_server ${IP.rs2} 80 {
    weight 4
    TCP_CHECK { connect_timeout 1
      retry 0 }
  }
  protocol TCP
}
`;

export interface Rig {
  engine: Engine;
  observed: ObservedDaemon;
  links: MemoryLink[];
  clock: FakeClock;
  /** The real server the scheduler gave the first :80 connection (the one that completed its handshake). */
  firstRs: { addr: string; mac: string; port: number };
}

/** A client TCP segment to VIP:dport: 40 bytes of IP (20 + 20, no options). */
export function clientTcp(dport: number, cport: number, flags: number, seq = 1000, ack = 0): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip, ttl: 64 })
    .tcp({ sport: cport, dport, seq, ack, flags, window: 64240 })
    .build();
}

/** The real server's SYN-ACK (40 bytes of IP). */
function serverSynAck(rs: string, rsMac: string, sport: number, cport: number): Uint8Array {
  return eth({ src: rsMac, dst: MAC.dirIn })
    .ipv4({ src: rs, dst: IP.client, ttl: 64 })
    .tcp({ sport, dport: cport, seq: 5000, ack: 1001, flags: TCP_SYN | TCP_ACK, window: 65160 })
    .build();
}

/** A client datagram to VIP:53: 20 + 8 + 5 = 33 bytes of IP. */
function clientUdp(cport: number): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip, ttl: 64 })
    .udp({ sport: cport, dport: 53 })
    .payload("hello")
    .build();
}

/**
 * The services, the health checks' first round, and the frames:
 *
 * - TCP VIP:80 rr, rs1:80 (weight 1) and rs2:8080 (weight 2): three SYNs; the first connection
 *   completes its handshake (SYN-ACK out, ACK in); an ACK of no connection (drop no_conn).
 * - UDP VIP:53 rr, rs2:53 (weight 5): one datagram.
 * - TCP VIP:443 rr persistent 60 s, rs1:443: one SYN (a connection and its template).
 * - fwmark 0x1A2B rr, rs1:80 (weight 7): no traffic (no mark rule marks any).
 * - keepalived.conf: TCP VIP2:80, rs1 and rs2 checked; rs2 fails and leaves the table.
 * - two SYNs to VIP:81, no such service (drop no_service).
 */
export async function trafficRig(): Promise<Rig> {
  const engine = natEngine({ maxConns: 4096 });
  const director = new Director(engine);
  const links = [
    new MemoryLink("out0", macToBytes(MAC.dirOut)),
    new MemoryLink("in0", macToBytes(MAC.dirIn)),
  ];
  for (const l of links) director.attach(l);
  const clock = new FakeClock();
  clock.t = 1_700_000_000_000;
  const probes = new ScriptedProbes(clock);
  probes.set(`${IP.rs2}:80`, false, `TCP_CHECK ${IP.rs2}:80 connection refused`);
  const observed: ObservedDaemon = {
    engine,
    director,
    target: new EngineControl(engine),
    health: new HealthManager(engine.table, { log: () => {}, clock, probe: probes.probe }),
    estimator: new RateEstimator(engine.table),
    linkNames: ["out0", "in0"],
    maxConns: 4096,
    startedAtMs: clock.t,
    version: "lvsd (lvs-ts) test",
  };
  const must = (...argv: string[]): void => {
    const x = lvsadm(argv, observed.target, "", { services: NO_NAMES });
    if (x.code !== 0) throw new Error(`lvsadm ${argv.join(" ")}: ${x.stderr}`);
  };
  must("-A", "-t", `${IP.vip}:80`, "-s", "rr");
  must("-a", "-t", `${IP.vip}:80`, "-r", `${IP.rs1}:80`, "-m", "-w", "1");
  must("-a", "-t", `${IP.vip}:80`, "-r", `${IP.rs2}:8080`, "-m", "-w", "2");
  must("-A", "-u", `${IP.vip}:53`, "-s", "rr");
  must("-a", "-u", `${IP.vip}:53`, "-r", `${IP.rs2}:53`, "-m", "-w", "5");
  must("-A", "-t", `${IP.vip}:443`, "-s", "rr", "-p", "60");
  must("-a", "-t", `${IP.vip}:443`, "-r", `${IP.rs1}:443`, "-m");
  must("-A", "-f", String(MARK), "-s", "rr");
  must("-a", "-f", String(MARK), "-r", `${IP.rs1}:80`, "-m", "-w", "7");
  observed.health.apply(parseConfigText(CONF, "metrics.conf"));
  observed.health.start();
  await clock.advance(100); // every checker's first probe (warmup 0): rs2 fails and leaves

  const [out, inner] = links as [MemoryLink, MemoryLink];
  for (let k = 0; k < 3; k++) out.inject(clientTcp(80, 40000 + k, TCP_SYN));
  out.inject(clientUdp(5353));
  out.inject(clientTcp(443, 41000, TCP_SYN));
  out.inject(clientTcp(81, 42000, TCP_SYN)); // no service on :81
  out.inject(clientTcp(81, 42001, TCP_SYN));
  out.inject(clientTcp(80, 43000, TCP_ACK)); // no connection
  while (director.pump(1000) > 0) {}
  // complete the first :80 connection's handshake: SYN-ACK from its real server, the client's ACK
  const first = observed.target.conns().find((c) => c.cport === 40000);
  if (!first) throw new Error("the first SYN made no connection");
  const firstRs =
    first.dport === 80
      ? { addr: IP.rs1, mac: MAC.rs1, port: 80 }
      : { addr: IP.rs2, mac: MAC.rs2, port: 8080 };
  inner.inject(serverSynAck(firstRs.addr, firstRs.mac, firstRs.port, 40000));
  out.inject(clientTcp(80, 40000, TCP_ACK, 1001, 5001));
  while (director.pump(1100) > 0) {}
  return { engine, observed, links, clock, firstRs };
}
