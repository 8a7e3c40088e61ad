/**
 * GET /metrics (src/control/observe/metrics.ts) over an engine in process (metrics-rig.ts: services
 * made with lvsadm, among them a fwmark one, and from a keepalived.conf with scripted health
 * checks; known frames through the director's in-memory links), scraped over a real HTTP server
 * on loopback, parsed and asserted value by value against what the frames must have done;
 * node_exporter's names, HELP texts, types and label rendering checked line for line; and a
 * scrape that changes nothing it reads.
 */

import fc from "fast-check";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HttpServer, startHttpServer } from "../../../src/control/observe/http.js";
import { metricsRegistry, metricsRoutes } from "../../../src/control/observe/metrics.js";
import { writeValue } from "../../../src/control/observe/textlines.js";
import { TCP_STATE_NAMES } from "../../../src/datapath/conntrack/states.js";
import { Director } from "../../../src/datapath/director.js";
import { DROP_COUNT, DROP_NAMES } from "../../../src/datapath/drops.js";
import { TCP_ACK, TCP_PSH, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { natEngine } from "../../datapath/engine/helpers.js";
import { type Family, parseExposition, sampleValue } from "./exposition.js";
import { clientTcp, IP, type Rig, trafficRig, VIP2 } from "./metrics-rig.js";

/** Everything a scrape reads, as plain data, to show that scraping changes none of it. */
function snapshot(r: Rig): string {
  const { engine, observed } = r;
  const ct = engine.ct;
  const services = engine.table.list().map((s) => ({
    key: [s.proto, s.addr, s.port, s.fwmark, s.schedName, s.flags],
    counters: [s.conns, s.inPkts, s.outPkts, s.inBytes, s.outBytes],
    dests: s.dests.map((d) => ({ ...d, svc: d.svc === s, id: d.id })),
  }));
  return JSON.stringify({
    services,
    generation: engine.table.generation,
    drops: [...engine.drops],
    ct: {
      count: ct.count,
      evictions: ct.evictions,
      allocFailures: ct.allocFailures,
      flags: [...ct.flags],
      state: [...ct.state],
      expires: Array.from({ length: ct.capacity }, (_, i) => ct.expiresAt(i)),
      dest: [...ct.dest],
    },
    forwarded: engine.forwarded,
    queued: engine.queued,
    director: [observed.director.batches, observed.director.frames],
    links: r.links.map((l) => ({ ...l.stats, inbox: l.inbox.length, sent: l.sent.length })),
    health: {
      counters: observed.health.counters,
      states: observed.health
        .destHealth()
        .map(({ service, dest, ...h }) => ({ ...h, service: service?.id, dest: dest?.id })),
    },
    timers: r.clock.pending,
    now: r.clock.t,
  });
}

describe("GET /metrics", () => {
  let r: Rig;
  let http: HttpServer;
  let text: string;
  let m: Map<string, Family>;
  let contentType: string | null;
  let firstRs: Rig["firstRs"];

  beforeAll(async () => {
    r = await trafficRig();
    firstRs = r.firstRs;
    const { observed } = r;
    http = await startHttpServer("127.0.0.1", 0, metricsRoutes(observed), () => {});
    const res = await fetch(`http://127.0.0.1:${http.port}/metrics`);
    expect(res.status).toBe(200);
    contentType = res.headers.get("content-type");
    text = await res.text();
    m = parseExposition(text);
  });
  afterAll(async () => {
    await http?.close();
    r.observed.health.stop();
  });

  it("answers in the Prometheus text format", async () => {
    expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    const head = await fetch(`http://127.0.0.1:${http.port}/metrics`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    for (const f of m.values()) {
      expect(f.help, f.name).not.toBe("");
      expect(["counter", "gauge", "histogram", "summary"]).toContain(f.type);
    }
  });

  it("has node_exporter's ipvs families with its HELP texts and types", () => {
    const want: [string, string, string][] = [
      ["node_ipvs_connections_total", "counter", "The total number of connections made."],
      ["node_ipvs_incoming_packets_total", "counter", "The total number of incoming packets."],
      ["node_ipvs_outgoing_packets_total", "counter", "The total number of outgoing packets."],
      ["node_ipvs_incoming_bytes_total", "counter", "The total amount of incoming data."],
      ["node_ipvs_outgoing_bytes_total", "counter", "The total amount of outgoing data."],
      [
        "node_ipvs_backend_connections_active",
        "gauge",
        "The current active connections by local and remote address.",
      ],
      [
        "node_ipvs_backend_connections_inactive",
        "gauge",
        "The current inactive connections by local and remote address.",
      ],
      ["node_ipvs_backend_weight", "gauge", "The current backend weight by local and remote address."],
    ];
    for (const [name, type, help] of want) {
      expect(text).toContain(`# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`);
    }
  });

  it("sums every service into node_exporter's totals", () => {
    // in: 3 SYNs + 1 ACK to :80, 1 SYN to :443 (40 bytes each), 1 datagram to :53 (33 bytes)
    expect(sampleValue(m, "node_ipvs_connections_total")).toBe(5);
    expect(sampleValue(m, "node_ipvs_incoming_packets_total")).toBe(6);
    expect(sampleValue(m, "node_ipvs_incoming_bytes_total")).toBe(5 * 40 + 33);
    expect(sampleValue(m, "node_ipvs_outgoing_packets_total")).toBe(1);
    expect(sampleValue(m, "node_ipvs_outgoing_bytes_total")).toBe(40);
    for (const f of ["node_ipvs_connections_total", "node_ipvs_incoming_bytes_total"]) {
      expect(m.get(f)!.samples[0]!.labels).toEqual({});
    }
  });

  it("writes one series per real server with node_exporter's six labels, sorted, fwmark services as FWM", () => {
    const lines = text.split("\n").filter((l) => l.startsWith("node_ipvs_backend_weight{"));
    expect(lines.sort()).toEqual(
      [
        `node_ipvs_backend_weight{local_address="",local_mark="00001A2B",local_port="0",proto="FWM",remote_address="${IP.rs1}",remote_port="80"} 7`,
        `node_ipvs_backend_weight{local_address="${IP.vip}",local_mark="",local_port="443",proto="TCP",remote_address="${IP.rs1}",remote_port="443"} 1`,
        `node_ipvs_backend_weight{local_address="${IP.vip}",local_mark="",local_port="53",proto="UDP",remote_address="${IP.rs2}",remote_port="53"} 5`,
        `node_ipvs_backend_weight{local_address="${IP.vip}",local_mark="",local_port="80",proto="TCP",remote_address="${IP.rs1}",remote_port="80"} 1`,
        `node_ipvs_backend_weight{local_address="${IP.vip}",local_mark="",local_port="80",proto="TCP",remote_address="${IP.rs2}",remote_port="8080"} 2`,
        // from the keepalived.conf: rs2 failed its check and left the table
        `node_ipvs_backend_weight{local_address="${VIP2}",local_mark="",local_port="80",proto="TCP",remote_address="${IP.rs1}",remote_port="80"} 4`,
      ].sort(),
    );
  });

  it("counts active and inactive connections per real server", () => {
    const rs = (addr: string, port: number, svcPort: number, proto = "TCP") => ({
      local_address: IP.vip,
      local_port: String(svcPort),
      proto,
      remote_address: addr,
      remote_port: String(port),
    });
    // rr over [rs2:8080, rs1:80] (new dests go to the head): the three SYNs are active (SYN_RECV,
    // one ESTABLISHED); the UDP entry is inactive, as in IPVS
    const a80 = sampleValue(m, "node_ipvs_backend_connections_active", rs(IP.rs1, 80, 80));
    const b80 = sampleValue(m, "node_ipvs_backend_connections_active", rs(IP.rs2, 8080, 80));
    expect([a80, b80].sort()).toEqual([1, 2]);
    expect(sampleValue(m, "node_ipvs_backend_connections_inactive", rs(IP.rs1, 80, 80))).toBe(0);
    expect(sampleValue(m, "node_ipvs_backend_connections_active", rs(IP.rs2, 53, 53, "UDP"))).toBe(0);
    expect(sampleValue(m, "node_ipvs_backend_connections_inactive", rs(IP.rs2, 53, 53, "UDP"))).toBe(1);
    expect(sampleValue(m, "node_ipvs_backend_connections_active", rs(IP.rs1, 443, 443))).toBe(1);
    expect(sampleValue(m, "node_ipvs_backend_connections_active", { proto: "FWM" })).toBe(0);
  });

  it("has per-service and per-dest packets, bytes and connections with the same labels", () => {
    const svc80 = { local_address: IP.vip, local_port: "80", proto: "TCP", local_mark: "" };
    expect(m.get("lvs_service_connections_total")!.type).toBe("counter");
    expect(sampleValue(m, "lvs_service_connections_total", svc80)).toBe(3);
    expect(sampleValue(m, "lvs_service_incoming_packets_total", svc80)).toBe(4);
    expect(sampleValue(m, "lvs_service_incoming_bytes_total", svc80)).toBe(160);
    expect(sampleValue(m, "lvs_service_outgoing_packets_total", svc80)).toBe(1);
    expect(sampleValue(m, "lvs_service_outgoing_bytes_total", svc80)).toBe(40);
    const udp = { local_address: IP.vip, local_port: "53", proto: "UDP" };
    expect(sampleValue(m, "lvs_service_connections_total", udp)).toBe(1);
    expect(sampleValue(m, "lvs_service_incoming_bytes_total", udp)).toBe(33);
    expect(sampleValue(m, "lvs_service_connections_total", { proto: "FWM", local_mark: "00001A2B" })).toBe(0);
    expect(m.get("lvs_service_connections_total")!.samples.map((s) => Object.keys(s.labels))).toEqual(
      Array(5).fill(["local_address", "local_mark", "local_port", "proto"]),
    );
    // the first :80 connection's real server: 2 of the 4 packets in (SYN, ACK) and the SYN-ACK out
    const first = { ...svc80, remote_address: firstRs.addr, remote_port: String(firstRs.port) };
    const other = {
      ...svc80,
      ...(firstRs.addr === IP.rs1
        ? { remote_address: IP.rs2, remote_port: "8080" }
        : { remote_address: IP.rs1, remote_port: "80" }),
    };
    expect(sampleValue(m, "lvs_dest_connections_total", first)).toBe(2);
    expect(sampleValue(m, "lvs_dest_incoming_packets_total", first)).toBe(3);
    expect(sampleValue(m, "lvs_dest_incoming_bytes_total", first)).toBe(120);
    expect(sampleValue(m, "lvs_dest_outgoing_packets_total", first)).toBe(1);
    expect(sampleValue(m, "lvs_dest_outgoing_bytes_total", first)).toBe(40);
    expect(sampleValue(m, "lvs_dest_connections_total", other)).toBe(1);
    expect(sampleValue(m, "lvs_dest_outgoing_packets_total", other)).toBe(0);
    // per-dest series add up to their service's
    for (const f of [
      "connections",
      "incoming_packets",
      "incoming_bytes",
      "outgoing_packets",
      "outgoing_bytes",
    ]) {
      const sum = m
        .get(`lvs_dest_${f}_total`)!
        .samples.filter((s) => s.labels.local_port === "80" && s.labels.local_address === IP.vip)
        .reduce((a, s) => a + s.value, 0);
      expect(sum, f).toBe(sampleValue(m, `lvs_service_${f}_total`, svc80));
    }
  });

  it("counts drops by reason, every reason listed", () => {
    const drops = m.get("lvs_drops_total")!;
    expect(drops.type).toBe("counter");
    expect(drops.samples.map((s) => s.labels.reason)).toEqual(DROP_NAMES.slice(1, DROP_COUNT));
    expect(sampleValue(m, "lvs_drops_total", { reason: "no_service" })).toBe(2);
    expect(sampleValue(m, "lvs_drops_total", { reason: "no_conn" })).toBe(1);
    expect(drops.samples.reduce((a, s) => a + s.value, 0)).toBe(3);
  });

  it("counts frames per link by the names given with --link", () => {
    const [out, inner] = r.links;
    expect(sampleValue(m, "lvs_link_rx_packets_total", { link: "out0" })).toBe(9);
    expect(sampleValue(m, "lvs_link_rx_packets_total", { link: "in0" })).toBe(1);
    expect(sampleValue(m, "lvs_link_rx_bytes_total", { link: "out0" })).toBe(out!.stats.rxBytes);
    expect(sampleValue(m, "lvs_link_tx_packets_total", { link: "out0" })).toBe(out!.stats.txPackets);
    expect(sampleValue(m, "lvs_link_tx_packets_total", { link: "in0" })).toBe(inner!.stats.txPackets);
    expect(sampleValue(m, "lvs_link_tx_bytes_total", { link: "in0" })).toBe(inner!.stats.txBytes);
    expect(sampleValue(m, "lvs_link_rx_dropped_total", { link: "in0" })).toBe(0);
    expect(sampleValue(m, "lvs_link_tx_dropped_total", { link: "out0" })).toBe(0);
    expect(sampleValue(m, "lvs_frames_total")).toBe(10);
    expect(sampleValue(m, "lvs_batches_total")).toBe(r.observed.director.batches);
    // forwarded: the 3 SYNs and the ACK to :80, the SYN to :443, the datagram, the SYN-ACK
    expect(sampleValue(m, "lvs_forwarded_frames_total")).toBe(7);
  });

  it("counts the connection table by protocol and state, and its size and limit", () => {
    // :80: two SYN_RECV and one ESTABLISHED; :443: one SYN_RECV and its template; :53: one UDP
    expect(sampleValue(m, "lvs_conntrack_entries")).toBe(6);
    expect(sampleValue(m, "lvs_conntrack_entries_limit")).toBe(4096);
    const states = m.get("lvs_conntrack_connections")!;
    expect(states.samples.length).toBe(TCP_STATE_NAMES.length + 2);
    const nonZero = Object.fromEntries(
      states.samples.filter((s) => s.value > 0).map((s) => [`${s.labels.proto} ${s.labels.state}`, s.value]),
    );
    expect(nonZero).toEqual({ "TCP ESTABLISHED": 1, "TCP SYN_RECV": 3, "UDP UDP": 1 });
    expect(sampleValue(m, "lvs_conntrack_templates", { state: "NONE" })).toBe(1);
    expect(sampleValue(m, "lvs_conntrack_templates", { state: "ASSURED" })).toBe(0);
    expect(sampleValue(m, "lvs_conntrack_evictions_total")).toBe(0);
    expect(sampleValue(m, "lvs_conntrack_alloc_failures_total")).toBe(0);
  });

  it("reports health checks per real server and check", () => {
    const rs = (addr: string) => ({
      local_address: VIP2,
      local_mark: "",
      local_port: "80",
      proto: "TCP",
      remote_address: addr,
      remote_port: "80",
    });
    expect(sampleValue(m, "lvs_health_dest_up", rs(IP.rs1))).toBe(1);
    expect(sampleValue(m, "lvs_health_dest_up", rs(IP.rs2))).toBe(0);
    const check = (addr: string) => ({ ...rs(addr), check: `TCP_CHECK ${addr}:80` });
    expect(sampleValue(m, "lvs_health_check_up", check(IP.rs1))).toBe(1);
    expect(sampleValue(m, "lvs_health_check_up", check(IP.rs2))).toBe(0);
    expect(sampleValue(m, "lvs_health_check_probes_total", check(IP.rs2))).toBe(1);
    expect(sampleValue(m, "lvs_health_check_failures_total", check(IP.rs2))).toBe(1);
    expect(sampleValue(m, "lvs_health_check_failures_total", check(IP.rs1))).toBe(0);
    for (const a of [IP.rs1, IP.rs2]) {
      const d = sampleValue(m, "lvs_health_check_duration_seconds", check(a));
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(1);
    }
    expect(m.get("lvs_health_dest_up")!.samples.length).toBe(2);
  });

  it("has process metrics, including the event-loop lag, and lvsd's version", () => {
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_start_time_seconds",
      "nodejs_eventloop_lag_seconds",
      "nodejs_eventloop_lag_p99_seconds",
      "nodejs_heap_size_used_bytes",
    ]) {
      expect(m.has(name), name).toBe(true);
    }
    expect(sampleValue(m, "lvs_build_info", { version: "lvsd (lvs-ts) test" })).toBe(1);
  });

  it("changes nothing it reads, and reads the tables afresh on each scrape", async () => {
    const before = snapshot(r);
    const registry = metricsRegistry(r.observed, { processMetrics: false });
    const first = await registry.metrics();
    expect(await registry.metrics()).toBe(first);
    await registry.getMetricsAsJSON();
    await fetch(`http://127.0.0.1:${http.port}/metrics`).then((x) => x.text());
    expect(snapshot(r)).toBe(before);
    // the same registry sees new traffic: one more SYN to :80
    r.links[0]!.inject(clientTcp(80, 40100, TCP_SYN));
    while (r.observed.director.pump(1200) > 0) {}
    const again = parseExposition(await registry.metrics());
    expect(sampleValue(again, "node_ipvs_connections_total")).toBe(6);
    expect(sampleValue(again, "lvs_conntrack_connections", { proto: "TCP", state: "SYN_RECV" })).toBe(4);
    expect(sampleValue(again, "lvs_conntrack_templates", { state: "NONE" })).toBe(1);
  });

  it("writes exactly what prom-client's own formatter writes for the same families", async () => {
    const registry = metricsRegistry(r.observed, { processMetrics: false });
    // Registry.merge puts the same metric objects in a plain prom-client Registry, which formats
    // every series itself (through the families' getForPromString)
    const plain = Registry.merge([registry]);
    const ours = await registry.metrics();
    expect(await plain.metrics()).toBe(ours);
    expect(ours).toContain('lvs_health_check_up{local_address="10.0.0.101"');
  });

  it("escapes label values as the text format wants", async () => {
    const registry = metricsRegistry(
      { ...r.observed, version: 'v"1\\2\nx', linkNames: ["a\\b", 'c"d'] },
      { processMetrics: false },
    );
    const text = await registry.metrics();
    expect(text).toContain('lvs_build_info{version="v\\"1\\\\2\\nx"} 1\n');
    expect(text).toContain('lvs_link_rx_packets_total{link="a\\\\b"} ');
    expect(text).toContain('lvs_link_rx_packets_total{link="c\\"d"} ');
    expect(await Registry.merge([registry]).metrics()).toBe(text);
    const back = parseExposition(text);
    expect(sampleValue(back, "lvs_build_info")).toBe(1);
    expect(back.get("lvs_build_info")!.samples[0]!.labels.version).toBe('v"1\\2\nx');
  });

  it("gives JSON readers the labels too (getMetricsAsJSON)", async () => {
    const registry = metricsRegistry(r.observed, { processMetrics: false });
    const json = await registry.getMetricsAsJSON();
    const weight = json.find((f) => f.name === "node_ipvs_backend_weight")!;
    expect(weight.values).toContainEqual({
      value: 7,
      labels: {
        local_address: "",
        local_mark: "00001A2B",
        local_port: "0",
        proto: "FWM",
        remote_address: IP.rs1,
        remote_port: "80",
      },
    });
  });

  it("counts the frames the established-flow fast path forwarded", async () => {
    // the rig's frames were all handshakes, new flows and drops: none was the fast path's
    expect(sampleValue(m, "lvs_fastpath_frames_total")).toBe(0);
    const registry = metricsRegistry(r.observed, { processMetrics: false });
    const before = sampleValue(parseExposition(await registry.metrics()), "lvs_forwarded_frames_total");
    // data on the :80 connection that completed its handshake: ESTABLISHED, so the fast path's
    r.links[0]!.inject(clientTcp(80, 40000, TCP_ACK | TCP_PSH, 1001, 5001));
    while (r.observed.director.pump(1300) > 0) {}
    const after = parseExposition(await registry.metrics());
    expect(sampleValue(after, "lvs_fastpath_frames_total")).toBe(1);
    expect(sampleValue(after, "lvs_forwarded_frames_total")).toBe(before + 1);
  });
});

describe("the text the table families write", () => {
  it("writes every value as prom-client does (as a template string does; integers digit by digit)", () => {
    const buf = Buffer.alloc(64);
    const text = (v: number) => buf.toString("latin1", 0, writeValue(buf, 0, v));
    const edges = [0, 1, 9, 10, 99, 100, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 999_999_999, 1e9, 1e9 + 1];
    for (let p = 10; p <= 1e15; p *= 10) edges.push(p - 1, p, p + 1);
    edges.push(2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 1e21, 1.5, 0.1, 1e-7, -0, -1, -(2 ** 40));
    for (const v of edges) expect(text(v), String(v)).toBe(`${v}`);
    // what the text format calls them
    expect(text(Number.POSITIVE_INFINITY)).toBe("+Inf");
    expect(text(Number.NEGATIVE_INFINITY)).toBe("-Inf");
    expect(text(Number.NaN)).toBe("NaN");
    // integers just below multiples of 1e9, where v / 1e9 rounds up
    for (const k of [1, 7, 4_294_967, 9_007_199]) expect(text(k * 1e9 - 1)).toBe(`${k * 1e9 - 1}`);
    fc.assert(
      fc.property(fc.maxSafeNat(), (v) => text(v) === `${v}`),
      { numRuns: 20_000 },
    );
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (v) => text(v) === `${v}`),
      { numRuns: 5_000 },
    );
  });

  it("writes large tables the same as prom-client, its buffers growing on the first scrape", async () => {
    const engine = natEngine({ maxConns: 1024 });
    for (let s = 0; s < 300; s++) {
      const key = { proto: IPPROTO_TCP, addr: ipToU32("10.9.0.0") + s, port: 8000 + s };
      engine.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
      for (let k = 0; k < 3; k++) {
        const d = engine.table.addDest(key, {
          addr: ipToU32("172.20.0.0") + s * 4 + k,
          port: 80,
          weight: k,
          fwd: FwdMethod.MASQ,
          uThreshold: 0,
          lThreshold: 0,
        });
        d.inBytes = (s + 1) * 1_000_000_007 * (k + 1); // beyond 2^32
        d.conns = s * k;
      }
    }
    const observed = { ...(await trafficRig()).observed, engine, director: new Director(engine) };
    const registry = metricsRegistry(observed, { processMetrics: false });
    const plain = Registry.merge([registry]);
    for (let round = 0; round < 2; round++) {
      const text = await registry.metrics();
      expect(text.split("\n").filter((l) => l.startsWith("node_ipvs_backend_weight{")).length).toBe(900);
      expect(await plain.metrics()).toBe(text);
    }
  });
});
