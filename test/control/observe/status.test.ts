/**
 * The status API and page (src/control/observe/status.ts, page.ts) over an engine in process:
 * services from a keepalived.conf (health checks with scripted probes and a manual clock) and
 * from lvsadm, frames through the director's in-memory links, one rate-estimation step, then
 * GET /api/v1/status over a real HTTP server on loopback, asserted field by field against what
 * the frames must have done.
 */

import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run as lvsadm } from "../../../src/control/commands.js";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { RateEstimator } from "../../../src/control/estimator.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import { parseServices } from "../../../src/control/netdb.js";
import type { ObservedDaemon } from "../../../src/control/observe/daemon.js";
import { type HttpServer, startHttpServer } from "../../../src/control/observe/http.js";
import { PAGE_JS, STATUS_PAGE } from "../../../src/control/observe/page.js";
import {
  connectionsStatus,
  type StatusDocument,
  statusDocument,
  statusRoutes,
} from "../../../src/control/observe/status.js";
import { Director } from "../../../src/datapath/director.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { TCP_ACK, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import {
  addNatDest,
  addService,
  IP,
  MAC,
  natEngine,
  OUT,
  run as runFrame,
  tcpKey,
} from "../../datapath/engine/helpers.js";
import { FakeClock, ScriptedProbes } from "../health/fake.js";

const NO_NAMES = parseServices("");
const T0 = 1_700_000_000_000; // the health manager's clock (Date.now() in lvsd)
const STARTED = T0 - 3_723_000; // lvsd started 1 h 2 min 3 s before the document

/** The service the keepalived.conf makes: rs1 (weight 3) and rs2 (weight 1) checked up, rs3 down but
 * kept at weight 0 (inhibit_on_failure), rs4 down and out of the table (alpha: down until a success). */
const CONF = `
virtual_server ${IP.vip} 80 {
  delay_loop 5
  warmup 0
  lb_algo wrr
  lb_kind NAT
  real_server ${IP.rs1} 80 {
    weight 3
    TCP_CHECK { connect_timeout 1 }
  }
  real_server ${IP.rs2} 80 {
    weight 1
    TCP_CHECK { connect_timeout 1 }
  }
  real_server 192.168.10.3 80 {
    weight 2
    inhibit_on_failure
    TCP_CHECK { connect_timeout 1
      alpha }
  }
  real_server 192.168.10.4 8080 {
    weight 1
    TCP_CHECK { connect_timeout 1
      alpha }
  }
  protocol TCP
}
`;

interface Rig {
  engine: Engine;
  observed: ObservedDaemon;
  links: MemoryLink[];
  clock: FakeClock;
}

function rig(): Rig {
  const engine = natEngine({ maxConns: 4096 });
  const director = new Director(engine);
  const links = [
    new MemoryLink("out0", macToBytes(MAC.dirOut)),
    new MemoryLink("in0", macToBytes(MAC.dirIn)),
  ];
  for (const l of links) director.attach(l);
  const target = new EngineControl(engine);
  const estimator = new RateEstimator(engine.table);
  target.rates = estimator;
  const clock = new FakeClock();
  clock.t = T0;
  const probes = new ScriptedProbes(clock);
  probes.set("192.168.10.3:80", false, "TCP_CHECK 192.168.10.3:80 connection refused");
  probes.set("192.168.10.4:8080", false, "TCP_CHECK 192.168.10.4:8080 timed out");
  const health = new HealthManager(engine.table, { log: () => {}, clock, probe: probes.probe });
  const observed: ObservedDaemon = {
    engine,
    director,
    target,
    health,
    estimator,
    linkNames: ["out0", "in0"],
    maxConns: 4096,
    startedAtMs: STARTED,
    version: "lvsd (lvs-ts) test",
  };
  return { engine, observed, links, clock };
}

const CPORT0 = 40000;
/** A client SYN (or ACK) to the VIP: 40 bytes of IP (20 + 20, no options). */
function clientTcp(cport: number, flags: number, seq = 1000, ack = 0): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip, ttl: 64 })
    .tcp({ sport: cport, dport: 80, seq, ack, flags, window: 64240 })
    .build();
}
function serverSynAck(rs: string, rsMac: string, cport: number): Uint8Array {
  return eth({ src: rsMac, dst: MAC.dirIn })
    .ipv4({ src: rs, dst: IP.client, ttl: 64 })
    .tcp({ sport: 80, dport: cport, seq: 5000, ack: 1001, flags: TCP_SYN | TCP_ACK, window: 65160 })
    .build();
}
function clientUdp(cport: number, payload: string): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip, ttl: 64 })
    .udp({ sport: cport, dport: 53 })
    .payload(payload)
    .build();
}

describe("GET /api/v1/status", () => {
  const r = rig();
  let http: HttpServer;
  let doc: StatusDocument;
  let rs1Got40000 = false;

  beforeAll(async () => {
    const { observed, links, clock } = r;
    const must = (...argv: string[]) => {
      const x = lvsadm(argv, observed.target, "", { services: NO_NAMES });
      expect(x.code, `${argv.join(" ")}: ${x.stderr}`).toBe(0);
    };
    observed.health.apply(parseConfigText(CONF, "status.conf"));
    observed.health.start();
    await clock.advance(100); // every checker's first probe (warmup 0)
    must("-A", "-u", `${IP.vip}:53`, "-s", "rr");
    must("-a", "-u", `${IP.vip}:53`, "-r", `${IP.rs2}:53`, "-m", "-w", "5");
    must("-A", "-f", "7", "-s", "sh", "-b", "sh-port", "-p", "120", "-M", "255.255.255.0");

    // t = 0: the estimator's origin; the frames; t = 2000: one estimation step
    observed.estimator.tick(0);
    const out = links[0]!;
    const inner = links[1]!;
    for (let k = 0; k < 40; k++) out.inject(clientTcp(CPORT0 + k, TCP_SYN));
    out.inject(clientUdp(5353, "hello")); // 20 + 8 + 5 = 33 bytes of IP
    out.inject(clientTcp(CPORT0 + 99, TCP_ACK)); // no connection: dropped (no_conn)
    while (observed.director.pump(1000) > 0) {}
    // complete the handshake of the first connection: SYN-ACK from its real server, ACK from the client
    const first = observed.target.conns().find((c) => c.cport === CPORT0);
    rs1Got40000 = first?.daddr === ipToU32(IP.rs1);
    inner.inject(rs1Got40000 ? serverSynAck(IP.rs1, MAC.rs1, CPORT0) : serverSynAck(IP.rs2, MAC.rs2, CPORT0));
    out.inject(clientTcp(CPORT0, TCP_ACK, 1001, 5001));
    while (observed.director.pump(1100) > 0) {}
    observed.estimator.tick(2000);

    http = await startHttpServer("127.0.0.1", 0, statusRoutes(observed), () => {});
    const res = await fetch(`http://127.0.0.1:${http.port}/api/v1/status`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    doc = (await res.json()) as StatusDocument;
  });
  afterAll(async () => {
    await http?.close();
    r.observed.health.stop();
  });

  it("describes the daemon", () => {
    expect(doc.apiVersion).toBe(1);
    expect(doc.version).toBe("lvsd (lvs-ts) test");
    expect(doc.startedAtMs).toBe(STARTED);
    // made at request time (Date.now()), so an hour and more after STARTED only in wall-clock terms
    expect(doc.timeMs).toBeGreaterThan(STARTED);
    expect(doc.uptimeSeconds).toBe(Math.floor((doc.timeMs - STARTED) / 1000));
    const fixed = statusDocument(r.observed, STARTED + 3_723_999);
    expect(fixed.uptimeSeconds).toBe(3723);
    expect(fixed.timeMs).toBe(STARTED + 3_723_999);
  });

  it("counts the connection table by state", () => {
    // 40 SYNs: 40 entries, 39 still SYN_RECV, the one whose handshake completed ESTABLISHED;
    // one UDP entry; the fwmark service's persistence makes no template (it gets no traffic)
    expect(doc.connections).toEqual({
      size: 41,
      limit: 4096,
      buckets: 4096,
      templates: 0,
      states: {
        NONE: 0,
        ESTABLISHED: 1,
        SYN_SENT: 0,
        SYN_RECV: 39,
        FIN_WAIT: 0,
        TIME_WAIT: 0,
        CLOSE: 0,
        CLOSE_WAIT: 0,
        LAST_ACK: 0,
        LISTEN: 0,
        SYNACK: 0,
        UDP: 1,
        ICMP: 0,
      },
      evictions: 0,
      allocFailures: 0,
    });
    // the same as lvsadm -Lnc's states, entry by entry
    const tally: Record<string, number> = {};
    for (const c of r.observed.target.conns()) tally[c.state] = (tally[c.state] ?? 0) + 1;
    for (const [state, n] of Object.entries(tally)) expect(doc.connections.states[state], state).toBe(n);
  });

  it("lists services in lvsadm's order with their configuration", () => {
    expect(doc.services.map((s) => s.name)).toEqual(["TCP  10.0.0.100:80", "UDP  10.0.0.100:53", "FWM  7"]);
    const [tcp, udp, fwm] = doc.services;
    expect(tcp).toMatchObject({
      proto: "TCP",
      address: "10.0.0.100",
      port: 80,
      fwmark: null,
      scheduler: "wrr",
      flags: [],
      onePacket: false,
      persistence: null,
      proxyProtocol: 0,
    });
    expect(udp).toMatchObject({
      proto: "UDP",
      address: "10.0.0.100",
      port: 53,
      fwmark: null,
      scheduler: "rr",
    });
    expect(fwm).toMatchObject({
      address: null,
      port: null,
      fwmark: 7,
      scheduler: "sh",
      flags: ["sh-port"],
      persistence: { timeout: 120, netmask: "255.255.255.0" },
      dests: [],
      outOfPool: [],
    });
  });

  it("counts packets, bytes and connections per service and dest (wrr 3:1)", () => {
    const tcp = doc.services[0]!;
    // in: 40 SYNs + 1 ACK of 40 bytes; out: 1 SYN-ACK of 40 bytes
    expect(tcp.counters).toEqual({ conns: 40, inPkts: 41, outPkts: 1, inBytes: 1640, outBytes: 40 });
    expect(tcp.dests.map((d) => `${d.address}:${d.port}`)).toEqual([
      "192.168.10.1:80",
      "192.168.10.2:80",
      "192.168.10.3:80",
    ]);
    const [rs1, rs2, rs3] = tcp.dests;
    // wrr with weights 3 and 1 (rs3 at weight 0 gets nothing): 30 and 10 connections
    const hs1 = rs1Got40000 ? 1 : 0; // the handshake's ACK and SYN-ACK went to the first one's dest
    expect(rs1!.counters).toEqual({
      conns: 30,
      inPkts: 30 + hs1,
      outPkts: hs1,
      inBytes: 40 * (30 + hs1),
      outBytes: 40 * hs1,
    });
    expect(rs2!.counters).toEqual({
      conns: 10,
      inPkts: 10 + 1 - hs1,
      outPkts: 1 - hs1,
      inBytes: 40 * (11 - hs1),
      outBytes: 40 * (1 - hs1),
    });
    expect(rs3!.counters).toEqual({ conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });
    // SYN_RECV and ESTABLISHED are both active (kernels since 5.9)
    expect([rs1!.activeConns, rs2!.activeConns, rs3!.activeConns]).toEqual([30, 10, 0]);
    expect([rs1!.inactiveConns, rs2!.inactiveConns]).toEqual([0, 0]);
    expect(tcp.activeConns).toBe(40);
    expect(rs1).toMatchObject({ forward: "Masq", weight: 3, persistentConns: 0, overloaded: false });
    expect(rs2).toMatchObject({ forward: "Masq", weight: 1 });
    expect(rs3).toMatchObject({ forward: "Masq", weight: 0 });

    const udp = doc.services[1]!;
    expect(udp.counters).toEqual({ conns: 1, inPkts: 1, outPkts: 0, inBytes: 33, outBytes: 0 });
    expect(udp.dests).toHaveLength(1);
    expect(udp.dests[0]).toMatchObject({
      address: "192.168.10.2",
      port: 53,
      weight: 5,
      inactiveConns: 1, // UDP entries count as inactive, as in IPVS
      activeConns: 0,
      health: null,
    });
  });

  it("gives the estimator's rates after one 2-second step (the kernel's EWMA, W = 1/4)", () => {
    const tcp = doc.services[0]!;
    // service: 40 conns in 2 s -> avg = 40*512/4 = 5120 (x2^10) -> 5/s; 41 packets -> 5248 -> 5/s;
    // 1640 bytes -> 1640*16/4 = 6560 (x2^5) -> 205 B/s; out: 1 packet -> 128 -> 0/s, 40 B -> 160 -> 5 B/s
    expect(tcp.rates).toEqual({ cps: 5, inpps: 5, outpps: 0, inbps: 205, outbps: 5 });
    // rs1: 30 conns -> 3840 -> (3840 + 511) >> 10 = 4; rs2: 10 -> 1280 -> 1
    expect(tcp.dests[0]!.rates.cps).toBe(4);
    expect(tcp.dests[1]!.rates.cps).toBe(1);
    expect(tcp.dests[0]!.rates.inbps).toBe(Math.floor((40 * (30 + (rs1Got40000 ? 1 : 0)) * 4 + 15) / 32));
    expect(tcp.dests[2]!.rates).toEqual({ cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
  });

  it("gives each checked dest its health, and lists the server that is out of the table", () => {
    const [rs1, rs2, rs3] = doc.services[0]!.dests;
    expect(rs1!.health).toEqual({
      role: "real",
      state: "UP",
      virtualServer: "TCP 10.0.0.100:80",
      reason: "",
      lastChangeMs: null,
      lastCheck: { ok: true, reason: "192.168.10.1:80 ok", atMs: T0 },
      checks: [
        {
          label: "TCP_CHECK 192.168.10.1:80",
          state: "UP",
          lastOk: true,
          lastReason: "192.168.10.1:80 ok",
          lastAtMs: T0,
          probes: 1,
          failures: 0,
        },
      ],
    });
    expect(rs2!.health?.state).toBe("UP");
    expect(rs3!.health).toMatchObject({
      role: "real",
      state: "DOWN",
      lastCheck: { ok: false, reason: "TCP_CHECK 192.168.10.3:80 connection refused", atMs: T0 },
    });
    expect(rs3!.health?.checks[0]).toMatchObject({ state: "DOWN", probes: 1, failures: 1 });
    expect(doc.services[0]!.outOfPool).toEqual([
      {
        address: "192.168.10.4",
        port: 8080,
        health: expect.objectContaining({
          role: "real",
          state: "DOWN",
          lastCheck: { ok: false, reason: "TCP_CHECK 192.168.10.4:8080 timed out", atMs: T0 },
        }),
      },
    ]);
  });

  it("lists the non-zero drops by reason and the links with their counters", () => {
    expect(doc.drops).toEqual({ no_conn: 1 });
    // out0 received 40 SYNs + the UDP datagram + the stray ACK + the handshake's ACK, each a
    // 14-byte Ethernet header over its IP packet; it sent the SYN-ACK back to the client
    expect(doc.links).toEqual([
      {
        id: 0,
        name: "out0",
        mac: MAC.dirOut,
        rxPackets: 43,
        rxBytes: 40 * 54 + 47 + 54 + 54,
        rxDropped: 0,
        txPackets: 1,
        txBytes: 54,
        txDropped: 0,
      },
      {
        id: 1,
        name: "in0",
        mac: MAC.dirIn,
        rxPackets: 1,
        rxBytes: 54,
        rxDropped: 0,
        txPackets: 42, // 40 SYNs, the datagram and the ACK, to the real servers
        txBytes: 40 * 54 + 47 + 54,
        txDropped: 0,
      },
    ]);
  });
});

describe("connectionsStatus", () => {
  it("counts persistence templates apart from connections", () => {
    const e = natEngine({ maxConns: 64 });
    const empty = connectionsStatus(e.ct, 64);
    expect(empty).toMatchObject({ size: 0, limit: 64, buckets: 64, templates: 0 });
    expect(Object.values(empty.states).every((n) => n === 0)).toBe(true);
    addService(e, tcpKey(), "rr", 300);
    addNatDest(e, tcpKey(), IP.rs1, 80);
    runFrame(e, clientTcp(CPORT0, TCP_SYN), OUT);
    runFrame(e, clientTcp(CPORT0 + 1, TCP_SYN), OUT);
    // two connections under one template (same client, persistent service)
    const s = connectionsStatus(e.ct, 64);
    expect(s).toMatchObject({ size: 3, templates: 1 });
    expect(s.states.SYN_RECV).toBe(2);
    expect(Object.values(s.states).reduce((a, b) => a + b, 0)).toBe(2);
  });
});

describe("a daemon with nothing configured", () => {
  it("answers empty lists, not missing fields", () => {
    const r = rig();
    r.observed.director.links.length = 0;
    const d = statusDocument(r.observed, STARTED + 5000);
    expect(d).toMatchObject({ apiVersion: 1, services: [], drops: {}, links: [], uptimeSeconds: 5 });
    expect(d.connections.size).toBe(0);
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
  });
});

describe("GET /", () => {
  let http: HttpServer;
  beforeAll(async () => {
    http = await startHttpServer("127.0.0.1", 0, statusRoutes(rig().observed), () => {});
  });
  afterAll(async () => {
    await http?.close();
  });

  it("serves one self-contained HTML page with a strict content security policy", async () => {
    const res = await fetch(`http://127.0.0.1:${http.port}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+=*'/);
    expect(csp).toMatch(/connect-src 'self'/);
    const html = await res.text();
    expect(html).toBe(STATUS_PAGE);
    expect(html.startsWith("<!doctype html>")).toBe(true);
    // nothing from another host: no absolute URLs at all, no protocol-relative ones, no imports
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?\/\//i);
    expect(html).not.toMatch(/@import|url\(/i);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet|<iframe|<img/i);
    expect(html).toMatch(/<link rel="icon" href="data:,">/);
    // its data goes through textContent, never through the HTML parser
    expect(PAGE_JS).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/);
    expect(PAGE_JS).toMatch(/fetch\("api\/v1\/status"/);
    expect(html).toContain('<tbody id="services-body">');
    // the inline script and style are the ones the policy names by hash (the browser test shows
    // them running under it)
    const hash = (re: RegExp) =>
      `'sha256-${createHash("sha256")
        .update(re.exec(html)?.[1] ?? "")
        .digest("base64")}'`;
    expect(csp).toContain(`script-src ${hash(/<script>([\s\S]*?)<\/script>/)}`);
    expect(csp).toContain(`style-src ${hash(/<style>([\s\S]*?)<\/style>/)}`);
  });

  it("answers HEAD without a body", async () => {
    const res = await fetch(`http://127.0.0.1:${http.port}/`, { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get("content-length"))).toBe(Buffer.byteLength(STATUS_PAGE));
    expect(await res.text()).toBe("");
  });
});
