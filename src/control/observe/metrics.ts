/**
 * Prometheus metrics (`lvsd --http ADDR:PORT`, GET /metrics), built with prom-client on a Registry
 * of our own. Nothing here runs per packet: every family is read from lvsd's tables when it is
 * scraped (between batches of the data path), and a scrape changes nothing it reads.
 *
 * node_exporter compatibility. The `node_ipvs_*` families are those of node_exporter's ipvs
 * collector, so dashboards and alerts written for kernel LVS work unchanged. Checked against
 * prometheus/node_exporter collector/ipvs_linux.go (names, HELP texts, types, the label names and
 * their order of declaration), its fixture collector/fixtures/e2e-output.txt (rendered values),
 * prometheus/procfs ipvs.go (how /proc/net/ip_vs is parsed into those values) and the kernel's
 * ip_vs_ctl.c (what /proc/net/ip_vs prints):
 *
 * - node_ipvs_{connections,incoming_packets,outgoing_packets,incoming_bytes,outgoing_bytes}_total:
 *   counters without labels, from /proc/net/ip_vs_stats (the kernel's totals over all services).
 *   Here: the sums over the services in the table.
 * - node_ipvs_backend_{connections_active,connections_inactive,weight}: gauges per real server,
 *   labels local_address, local_port, remote_address, remote_port, proto, local_mark.
 *   proto is the kernel's protocol name as /proc/net/ip_vs prints it: "TCP", "UDP"; fwmark
 *   services print "FWM", and then local_address is "", local_port "0" and local_mark the mark as
 *   the kernel prints it, "%08X" (mark 1 is "00000001"); other services have local_mark "".
 *   Addresses are dotted quads, ports decimal. Labels are written sorted by name, as
 *   client_golang writes them.
 *
 * lvs-ts's own families are named lvs_* (docs/observability.md lists them all). Per-service
 * families carry the service half of the same labels (local_address, local_port, proto,
 * local_mark), per-dest families all six, so `sum by (local_address, local_port, proto,
 * local_mark)` over dests matches the service's series.
 *
 * Speed. A scrape of 1,000 services x 10 dests writes about 85,000 series (13 MB), on the thread
 * that forwards packets. prom-client's usual path (Gauge.set per series in a collect callback,
 * then the registry formatting and escaping every label of every series) takes several hundred
 * ms for that (bench/metrics.bench.ts has the reference). So the table families are TableCounter
 * and TableGauge: prom-client metrics that read the tables when asked, with a label set
 * (LabelSet) kept per service and per dest for its lifetime, escaped and encoded once. Our
 * Registry subclass has them write their own lines (TextSink: bytes copied into one buffer per
 * family, numbers written digit by digit), exactly the text prom-client's formatter produces for
 * the same values (a test compares the two byte for byte); everything else (process metrics,
 * the registry, content type, JSON) is prom-client's. Should a prom-client release stop
 * rendering through `getMetricsAsString`, the families still render correctly through their
 * `getForPromString`, as prom-client's Histogram does (label sets as `sharedLabels`), only
 * slower. `npm run bench -- --only metrics` measures the whole scrape.
 */

import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { TCP_STATE_COUNT, TCP_STATE_NAMES, TEMPLATE_STATE_ASSURED } from "../../datapath/conntrack/states.js";
import { CONN_F_TEMPLATE, CONN_F_USED } from "../../datapath/conntrack/table.js";
import { DROP_COUNT, DROP_NAMES } from "../../datapath/drops.js";
import { u32ToIp } from "../../lib/addr.js";
import { IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import type { Dest, Service } from "../../tables/model.js";
import type { ServiceKey } from "../../tables/services.js";
import type { CheckState, DestCheckState } from "../health/manager.js";
import type { ObservedDaemon } from "./daemon.js";
import { type Route, reply } from "./http.js";

type Labels = Readonly<Record<string, string>>;

declare module "prom-client" {
  // Registry#metrics() (and getSingleMetricAsString) render each metric with this method
  // (prom-client 15, lib/registry.js); TableRegistry overrides it for the table families.
  interface Registry<BoundRegistryContentType extends RegistryContentType = PrometheusContentType> {
    getMetricsAsString(metric: unknown): Promise<string>;
  }
}

/** prom-client's escaping (lib/registry.js): HELP texts and label values. */
function escapeText(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
function escapeLabelValue(s: string): string {
  return escapeText(s).replace(/"/g, '\\"');
}

/** A sample value as prom-client's getValueAsString writes it (NaN spelled as the format spells it). */
function valueText(v: number): string {
  if (Number.isFinite(v)) return `${v}`;
  if (Number.isNaN(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

/** A label set and its text in the exposition (`{name="value",...}`, or "" for none), made once. */
class LabelSet {
  readonly labels: Labels;
  readonly text: string;
  /** `text` in UTF-8, as TextSink copies it. */
  readonly bytes: Buffer;
  constructor(labels: Record<string, string>) {
    this.labels = Object.freeze(labels);
    const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
    this.text = parts.length === 0 ? "" : `{${parts.join(",")}}`;
    this.bytes = Buffer.from(this.text);
  }
}

const NO_LABELS = new LabelSet({});

/** Where a family's read puts its series: exposition text, or samples for prom-client. */
interface Sink {
  add(value: number, set?: LabelSet): void;
}

/** Fills the sink with the family's series, read from the tables now. */
type Read = (sink: Sink) => void;

/**
 * Writes `\nname{labels} value` lines after the HELP and TYPE lines, into one buffer: the name's
 * and the label set's bytes are copied, integer values written digit by digit, so a line makes
 * no string (joining ~85,000 small strings cost more than all the rest of a scrape).
 */
class TextSink implements Sink {
  private buf: Buffer;
  private at: number;
  private readonly name: Buffer;
  /** Lines written. */
  lines = 0;
  constructor(name: string, head: string, lines: number) {
    this.name = Buffer.from(`\n${name}`);
    this.buf = Buffer.allocUnsafe(head.length * 3 + lines * (this.name.length + 160));
    this.at = this.buf.write(head);
  }
  add(value: number, set: LabelSet = NO_LABELS): void {
    const need = this.name.length + set.bytes.length + 32;
    if (this.at + need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + need));
      this.buf.copy(bigger, 0, 0, this.at);
      this.buf = bigger;
    }
    const buf = this.buf;
    let at = this.at;
    buf.set(this.name, at);
    at += this.name.length;
    buf.set(set.bytes, at);
    at += set.bytes.length;
    buf[at++] = 0x20;
    this.at = writeValue(buf, at, value);
    this.lines++;
  }
  text(): string {
    return this.buf.toString("utf8", 0, this.at);
  }
}

/**
 * Write `v` at `at` as `${v}` writes it (valueText), returning the end. Integers from 0 to 2^53
 * (`${v}` writes those without exponent) are written digit by digit with 32-bit integer
 * arithmetic, in chunks of nine digits; anything else goes through valueText.
 */
export function writeValue(buf: Buffer, at: number, v: number): number {
  if (v >= 0 && v < 0x80000000 && Number.isInteger(v)) return writeSmall(buf, at, v | 0);
  if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v))) {
    return at + buf.write(valueText(v), at, "latin1");
  }
  let hi = Math.floor(v / 1e9);
  let lo = v - hi * 1e9; // exact: integers below 2^53
  if (lo < 0) {
    hi -= 1; // v / 1e9 rounded up to the next integer
    lo += 1e9;
  }
  at = writeSmall(buf, at, hi); // below 2^53 / 1e9, about 9e6
  let x = lo | 0;
  for (let k = 8; k >= 0; k--) {
    buf[at + k] = 0x30 + (x % 10);
    x = (x / 10) | 0;
  }
  return at + 9;
}

/** A non-negative 32-bit integer's digits. */
function writeSmall(buf: Buffer, at: number, v: number): number {
  let digits = 1;
  for (let t = v; t >= 10; t = (t / 10) | 0) digits++;
  const end = at + digits;
  let p = end;
  let n = v;
  do {
    buf[--p] = 0x30 + (n % 10);
    n = (n / 10) | 0;
  } while (n > 0);
  return end;
}

/**
 * A series as prom-client's registry reads it. The label set travels as `sharedLabels`, as in
 * prom-client's Histogram (the registry formats such an object once and caches the text).
 */
interface Sample {
  value: number;
  labels: Labels;
  sharedLabels: Labels;
}

class SampleSink implements Sink {
  readonly values: Sample[] = [];
  add(value: number, set: LabelSet = NO_LABELS): void {
    this.values.push({ value, labels: NO_LABELS.labels, sharedLabels: set.labels });
  }
}

interface FamilySpec {
  name: string;
  help: string;
  labelNames?: readonly string[];
  read: Read;
}

/** What TableCounter and TableGauge share: reading, and writing the family's text. */
class TableFamily {
  constructor(
    readonly spec: FamilySpec,
    readonly type: "counter" | "gauge",
  ) {}
  /** Series in the last render: the next one sizes its buffer by it. */
  private lines = 16;
  /** The family as prom-client's getMetricsAsString writes it (lines joined by newlines). */
  render(): string {
    const { name, help } = this.spec;
    const head = `# HELP ${name} ${escapeText(help)}\n# TYPE ${name} ${this.type}`;
    const sink = new TextSink(name, head, this.lines + 16);
    this.spec.read(sink);
    this.lines = sink.lines;
    return sink.text();
  }
  samples(): Sample[] {
    const sink = new SampleSink();
    this.spec.read(sink);
    return sink.values;
  }
  /** For getMetricsAsJSON: each series with its labels where JSON readers look for them. */
  splayed(): { value: number; labels: Labels }[] {
    return this.samples().map((s) => ({ value: s.value, labels: s.sharedLabels }));
  }
}

/** A counter read from the tables at scrape time (never incremented). */
class TableCounter extends Counter<string> {
  readonly family: TableFamily;
  constructor(registry: Registry, spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] });
    this.family = new TableFamily(spec, "counter");
  }
  /** prom-client's text path (preferred to `get` by its registry). */
  async getForPromString() {
    return { ...(await super.get()), values: this.family.samples() };
  }
  override async get() {
    return { ...(await super.get()), values: this.family.splayed() };
  }
}

/** A gauge read from the tables at scrape time (never set). */
class TableGauge extends Gauge<string> {
  readonly family: TableFamily;
  constructor(registry: Registry, spec: FamilySpec) {
    super({ name: spec.name, help: spec.help, labelNames: spec.labelNames ?? [], registers: [registry] });
    this.family = new TableFamily(spec, "gauge");
  }
  async getForPromString() {
    return { ...(await super.get()), values: this.family.samples() };
  }
  override async get() {
    return { ...(await super.get()), values: this.family.splayed() };
  }
}

/**
 * Our registry: the table families write their own lines (see the file comment); every other
 * metric, and every other format, goes through prom-client. It has no default labels.
 */
class TableRegistry extends Registry {
  override async getMetricsAsString(metric: unknown): Promise<string> {
    if (
      (metric instanceof TableCounter || metric instanceof TableGauge) &&
      this.contentType === Registry.PROMETHEUS_CONTENT_TYPE
    ) {
      return metric.family.render();
    }
    return super.getMetricsAsString(metric);
  }
}

// ---- labels (node_exporter's scheme) ----

const SERVICE_LABELS = ["local_address", "local_mark", "local_port", "proto"] as const;
const DEST_LABELS = [
  "local_address",
  "local_mark",
  "local_port",
  "proto",
  "remote_address",
  "remote_port",
] as const;

/** The kernel's ip_vs_proto_name(), which /proc/net/ip_vs prints. */
export function ipvsProtoName(proto: number): string {
  switch (proto) {
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
      return "UDP";
    case IPPROTO_SCTP:
      return "SCTP";
    case IPPROTO_ICMP:
      return "ICMP";
    case 0:
      return "IP";
    default:
      return `IP_${proto}`;
  }
}

/** The service half of the labels, as node_exporter renders /proc/net/ip_vs (sorted by name). */
export function serviceLabelsOf(k: ServiceKey): Record<string, string> {
  if (k.fwmark) {
    const mark = (k.fwmark >>> 0).toString(16).toUpperCase().padStart(8, "0");
    return { local_address: "", local_mark: mark, local_port: "0", proto: "FWM" };
  }
  return {
    local_address: u32ToIp(k.addr),
    local_mark: "",
    local_port: String(k.port),
    proto: ipvsProtoName(k.proto),
  };
}

/** All six labels of a real server in a service, sorted by name as client_golang writes them. */
export function destLabelsOf(svc: Labels, addr: number, port: number): Record<string, string> {
  return { ...svc, remote_address: u32ToIp(addr), remote_port: String(port) };
}

// ---- the registry ----

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (default true). */
  processMetrics?: boolean;
}

/**
 * The registry lvsd's /metrics serves: every family below plus prom-client's default process
 * metrics (which include the event-loop lag, nodejs_eventloop_lag_seconds).
 */
export function metricsRegistry(o: ObservedDaemon, opts: MetricsOptions = {}): Registry {
  const registry = new TableRegistry();
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const { engine, director, health } = o;
  const table = engine.table;
  const ct = engine.ct;

  // A service's and a dest's identity (address, port, protocol, mark) never changes after it is
  // created (edits change options and weights only), so their label sets live as long as they
  // do. WeakMaps: deleted services and dests are forgotten with them.
  const svcSets = new WeakMap<Service, LabelSet>();
  const destSets = new WeakMap<Dest, LabelSet>();
  const svcSet = (s: Service): LabelSet => {
    let l = svcSets.get(s);
    if (l === undefined) {
      l = new LabelSet(serviceLabelsOf(s));
      svcSets.set(s, l);
    }
    return l;
  };
  const destSet = (s: Service, d: Dest): LabelSet => {
    let l = destSets.get(d);
    if (l === undefined) {
      l = new LabelSet(destLabelsOf(svcSet(s).labels, d.addr, d.port));
      destSets.set(d, l);
    }
    return l;
  };

  const counter = (spec: FamilySpec): void => void new TableCounter(registry, spec);
  const gauge = (spec: FamilySpec): void => void new TableGauge(registry, spec);

  type Stat = "conns" | "inPkts" | "outPkts" | "inBytes" | "outBytes";
  const sumServices = (field: Stat): number => {
    let n = 0;
    for (const s of table.services) if (s !== null) n += s[field];
    return n;
  };
  // Every dest of every service with its label set, in table order, rebuilt only when the
  // table changes (its generation): a scrape then walks two arrays per family.
  let rowsAt = -1;
  let rowDests: Dest[] = [];
  let rowSets: LabelSet[] = [];
  const rows = (): void => {
    if (rowsAt === table.generation) return;
    rowsAt = table.generation;
    rowDests = [];
    rowSets = [];
    for (const s of table.services) {
      if (s === null) continue;
      for (const d of s.dests) {
        rowDests.push(d);
        rowSets.push(destSet(s, d));
      }
    }
  };
  const perService =
    (value: (s: Service) => number): Read =>
    (sink) => {
      for (const s of table.services) if (s !== null) sink.add(value(s), svcSet(s));
    };
  const perDest =
    (value: (d: Dest) => number): Read =>
    (sink) => {
      rows();
      for (let i = 0; i < rowDests.length; i++) sink.add(value(rowDests[i]!), rowSets[i]);
    };

  // ---- node_exporter's ipvs collector: names, HELP texts, types and labels as it has them ----
  const totals: [string, string, Stat][] = [
    ["node_ipvs_connections_total", "The total number of connections made.", "conns"],
    ["node_ipvs_incoming_packets_total", "The total number of incoming packets.", "inPkts"],
    ["node_ipvs_outgoing_packets_total", "The total number of outgoing packets.", "outPkts"],
    ["node_ipvs_incoming_bytes_total", "The total amount of incoming data.", "inBytes"],
    ["node_ipvs_outgoing_bytes_total", "The total amount of outgoing data.", "outBytes"],
  ];
  for (const [name, help, field] of totals) {
    counter({ name, help, read: (sink) => sink.add(sumServices(field)) });
  }
  gauge({
    name: "node_ipvs_backend_connections_active",
    help: "The current active connections by local and remote address.",
    labelNames: DEST_LABELS,
    read: perDest((d) => d.activeConns),
  });
  gauge({
    name: "node_ipvs_backend_connections_inactive",
    help: "The current inactive connections by local and remote address.",
    labelNames: DEST_LABELS,
    read: perDest((d) => d.inactConns),
  });
  gauge({
    name: "node_ipvs_backend_weight",
    help: "The current backend weight by local and remote address.",
    labelNames: DEST_LABELS,
    read: perDest((d) => d.weight),
  });

  // ---- per service and per dest (lvsadm -Ln --stats) ----
  const stats: [string, string, Stat][] = [
    ["connections_total", "Connections scheduled", "conns"],
    ["incoming_packets_total", "Packets from clients forwarded", "inPkts"],
    [
      "outgoing_packets_total",
      "Packets from real servers forwarded (only NAT and FULLNAT see them)",
      "outPkts",
    ],
    ["incoming_bytes_total", "Bytes (IP) from clients forwarded", "inBytes"],
    ["outgoing_bytes_total", "Bytes (IP) from real servers forwarded", "outBytes"],
  ];
  for (const [suffix, what, field] of stats) {
    counter({
      name: `lvs_service_${suffix}`,
      help: `${what}, per virtual service (lvsadm -Ln --stats).`,
      labelNames: SERVICE_LABELS,
      read: perService((s) => s[field]),
    });
  }
  for (const [suffix, what, field] of stats) {
    const decisions =
      field === "conns" ? "; each is a scheduling decision or a persistence template's reuse" : "";
    counter({
      name: `lvs_dest_${suffix}`,
      help: `${what}, per real server in its service (lvsadm -Ln --stats)${decisions}.`,
      labelNames: DEST_LABELS,
      read: perDest((d) => d[field]),
    });
  }
  // ---- drops, links, engine ----
  const dropSets = DROP_NAMES.map((reason) => new LabelSet({ reason }));
  counter({
    name: "lvs_drops_total",
    help: "Frames the director dropped, by reason (lvsadm --drops; src/datapath/drops.ts).",
    labelNames: ["reason"],
    read: (sink) => {
      for (let r = 1; r < DROP_COUNT; r++) sink.add(engine.drops[r] ?? 0, dropSets[r]);
    },
  });
  const linkSets: LabelSet[] = [];
  const linkSet = (l: number): LabelSet =>
    (linkSets[l] ??= new LabelSet({ link: o.linkNames[l] ?? director.links[l]?.name ?? String(l) }));
  type LinkStat = "rxPackets" | "rxBytes" | "txPackets" | "txBytes" | "rxDropped" | "txDropped";
  const links: [string, string, LinkStat][] = [
    ["lvs_link_rx_packets_total", "Frames received on the link.", "rxPackets"],
    ["lvs_link_rx_bytes_total", "Bytes received on the link (whole frames).", "rxBytes"],
    ["lvs_link_tx_packets_total", "Frames sent on the link.", "txPackets"],
    ["lvs_link_tx_bytes_total", "Bytes sent on the link (whole frames).", "txBytes"],
    [
      "lvs_link_rx_dropped_total",
      "Frames lost on receive (too long for a slot, or dropped by the kernel for want of room).",
      "rxDropped",
    ],
    ["lvs_link_tx_dropped_total", "Frames the link could not hand to the kernel.", "txDropped"],
  ];
  for (const [name, help, field] of links) {
    counter({
      name,
      help,
      labelNames: ["link"],
      read: (sink) => {
        for (let l = 0; l < director.links.length; l++) sink.add(director.links[l]!.stats[field], linkSet(l));
      },
    });
  }
  counter({
    name: "lvs_batches_total",
    help: "Batches of frames the director processed.",
    read: (sink) => sink.add(director.batches),
  });
  counter({
    name: "lvs_frames_total",
    help: "Frames the director received in those batches.",
    read: (sink) => sink.add(director.frames),
  });
  counter({
    name: "lvs_forwarded_frames_total",
    help: "Frames the engine forwarded (in place, and released from the ARP queue).",
    read: (sink) => sink.add(engine.forwarded + engine.resolver.released),
  });
  counter({
    name: "lvs_neigh_queued_frames_total",
    help: "Frames that waited for ARP resolution of their next hop.",
    read: (sink) => sink.add(engine.queued),
  });

  // ---- the connection table ----
  gauge({
    name: "lvs_conntrack_entries",
    help: "Entries in the connection table (connections and persistence templates).",
    read: (sink) => sink.add(ct.count),
  });
  gauge({
    name: "lvs_conntrack_entries_limit",
    help: "Size of the connection table (lvsd --max-conns).",
    read: (sink) => sink.add(ct.capacity),
  });
  counter({
    name: "lvs_conntrack_evictions_total",
    help: "Entries evicted to make room for new connections.",
    read: (sink) => sink.add(ct.evictions),
  });
  counter({
    name: "lvs_conntrack_alloc_failures_total",
    help: "New connections refused because nothing could be evicted (drops table_full).",
    read: (sink) => sink.add(ct.allocFailures),
  });
  // Entries by protocol and state, counted in one walk of the table's typed arrays into counts
  // allocated once: TCP states 0..10, then UDP, then ICMP (the engine makes no other entries);
  // templates by NONE / ASSURED. The connections family walks; the templates family, read
  // right after it in the same scrape (registration order), takes that walk's counts.
  const byState = new Float64Array(TCP_STATE_COUNT + 2);
  const byTemplate = new Float64Array(2);
  let walked = false;
  const walk = (): void => {
    byState.fill(0);
    byTemplate.fill(0);
    const { flags, state, proto } = ct;
    let left = ct.count;
    for (let i = 0; left > 0 && i < ct.capacity; i++) {
      const f = flags[i]!;
      if ((f & CONN_F_USED) === 0) continue;
      left--;
      if ((f & CONN_F_TEMPLATE) !== 0) byTemplate[state[i] === TEMPLATE_STATE_ASSURED ? 1 : 0]!++;
      else if (proto[i] === IPPROTO_TCP) byState[state[i]!]!++;
      else if (proto[i] === IPPROTO_UDP) byState[TCP_STATE_COUNT]!++;
      else if (proto[i] === IPPROTO_ICMP) byState[TCP_STATE_COUNT + 1]!++;
    }
    walked = true;
  };
  const stateSets = [
    ...TCP_STATE_NAMES.map((state) => new LabelSet({ proto: "TCP", state })),
    new LabelSet({ proto: "UDP", state: "UDP" }),
    new LabelSet({ proto: "ICMP", state: "ICMP" }),
  ];
  gauge({
    name: "lvs_conntrack_connections",
    help: "Connections in the connection table by protocol and state (the states lvsadm -Lnc shows).",
    labelNames: ["proto", "state"],
    read: (sink) => {
      walk();
      for (let k = 0; k < byState.length; k++) sink.add(byState[k]!, stateSets[k]);
    },
  });
  const templateSets = [new LabelSet({ state: "NONE" }), new LabelSet({ state: "ASSURED" })];
  gauge({
    name: "lvs_conntrack_templates",
    help: "Persistence templates in the connection table by state (ASSURED once a connection through one was established).",
    labelNames: ["state"],
    read: (sink) => {
      if (!walked) walk();
      walked = false;
      sink.add(byTemplate[0]!, templateSets[0]);
      sink.add(byTemplate[1]!, templateSets[1]);
    },
  });

  // ---- health checks (src/control/health): the real servers a keepalived.conf checks ----
  const CHECK_LABELS = [...DEST_LABELS, "check"];
  const perRealServer =
    (emit: (sink: Sink, labels: Labels, h: DestCheckState) => void): Read =>
    (sink) => {
      for (const h of health.checkStates())
        emit(sink, destLabelsOf(serviceLabelsOf(h.service), h.addr, h.port), h);
    };
  const perCheck = (value: (c: CheckState) => number | undefined): Read =>
    perRealServer((sink, labels, h) => {
      for (const c of h.checks) {
        const v = value(c);
        if (v !== undefined) sink.add(v, new LabelSet({ ...labels, check: c.label }));
      }
    });
  gauge({
    name: "lvs_health_dest_up",
    help: "1 while all the real server's health checks pass, else 0 (lvsadm --health).",
    labelNames: DEST_LABELS,
    read: perRealServer((sink, labels, h) => sink.add(h.alive ? 1 : 0, new LabelSet({ ...labels }))),
  });
  gauge({
    name: "lvs_health_check_up",
    help: "1 while the health check passes, else 0 (a failure being retried still counts as up).",
    labelNames: CHECK_LABELS,
    read: perCheck((c) => (c.up ? 1 : 0)),
  });
  gauge({
    name: "lvs_health_check_duration_seconds",
    help: "How long the health check's last probe took.",
    labelNames: CHECK_LABELS,
    read: perCheck((c) => (c.lastDurationMs === undefined ? undefined : c.lastDurationMs / 1000)),
  });
  counter({
    name: "lvs_health_check_probes_total",
    help: "Probes the health check ran.",
    labelNames: CHECK_LABELS,
    read: perCheck((c) => c.probes),
  });
  counter({
    name: "lvs_health_check_failures_total",
    help: "Probes of the health check that failed.",
    labelNames: CHECK_LABELS,
    read: perCheck((c) => c.failures),
  });

  // ---- the daemon (process metrics: prom-client's defaults, above) ----
  const version = new LabelSet({ version: o.version });
  gauge({
    name: "lvs_build_info",
    help: "lvsd's version, as a label; the value is 1.",
    labelNames: ["version"],
    read: (sink) => sink.add(1, version),
  });
  return registry;
}

/** The /metrics route for lvsd's HTTP endpoint (src/control/observe/http.ts). */
export function metricsRoutes(o: ObservedDaemon, opts: MetricsOptions = {}): Record<string, Route> {
  const registry = metricsRegistry(o, opts);
  return {
    "/metrics": async (req, res) => {
      // encoded once here: reply() then neither measures nor encodes the ~15 MB string again
      const body = Buffer.from(await registry.metrics());
      reply(req, res, registry.contentType, body);
    },
  };
}
