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
 * (LabelSet) kept per service and per dest for its lifetime, escaped and encoded once (and, for
 * the dests, copied in table order into one buffer, so a scrape reads them in sequence). They
 * write their own lines (ChunkWriter: bytes copied into pooled chunks, numbers written digit by
 * digit), exactly the text prom-client's formatter produces for the same values (a test compares
 * the two byte for byte); everything else (process metrics, the registry, content type, JSON) is
 * prom-client's. GET /metrics renders through Exposition: in slices that yield to the event loop
 * (setImmediate) every 6 ms or more, so frames keep being forwarded during a scrape, into chunks sent
 * with writev, shared by the scrapes that arrive during a render; `registry.metrics()` (our
 * Registry subclass) still returns the same text at once. Should a prom-client release stop
 * rendering through `getMetricsAsString`, the families still render correctly through their
 * `getForPromString`, as prom-client's Histogram does (label sets as `sharedLabels`), only
 * slower. `npm run bench -- --only metrics` measures the whole scrape.
 */

import { existsSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { finished } from "node:stream";
import { Worker } from "node:worker_threads";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { TCP_STATE_COUNT, TCP_STATE_NAMES } from "../../datapath/conntrack/states.js";
import { COUNT_SLOTS } from "../../datapath/conntrack/table.js";
import { DROP_COUNT, DROP_NAMES } from "../../datapath/drops.js";
import { u32ToIp } from "../../lib/addr.js";
import { IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import type { Dest, Service } from "../../tables/model.js";
import type { ServiceKey } from "../../tables/services.js";
import type { CheckerStatus, RealServerStatus } from "../health/status.js";
import { VRRP_STATE_NAMES } from "../vrrp/instance.js";
import type { VrrpInstanceStatus } from "../vrrp/manager.js";
import type { ObservedDaemon } from "./daemon.js";
import type { Route } from "./http.js";
import {
  PLAN_FAMILY,
  PLAN_TEXT,
  RENDER_WORKER,
  type RenderChunk,
  type RenderFailed,
  type RenderReply,
  type RenderRequest,
  type SpareChunks,
} from "./render-worker.js";
import { CHUNK_BYTES, ChunkWriter } from "./textlines.js";

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

/** Ids of kept label sets (LabelSet.id), for the render worker. */
let lastSetId = 0;

/** A label set and its text in the exposition (`{name="value",...}`, or "" for none), made once. */
class LabelSet {
  readonly labels: Labels;
  readonly text: string;
  /** `text` in UTF-8, as ChunkWriter copies it. */
  readonly bytes: Buffer;
  /**
   * For the render worker (render-worker.ts): > 0 for a set that is kept across scrapes (its
   * bytes cross once per epoch), -1 for one made for one scrape (its bytes cross with it), 0 for
   * NO_LABELS.
   */
  readonly id: number;
  /** The render worker's epoch in which this set's bytes were last sent. */
  sentEpoch = 0;
  /** The last scrape (CollectSink.scrape) that used it. */
  seenAt = 0;
  /** `kept`: the set is kept and used by later scrapes (a service's, a dest's, a reason's). */
  constructor(labels: Record<string, string>, kept = false) {
    this.labels = Object.freeze(labels);
    const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
    this.text = parts.length === 0 ? "" : `{${parts.join(",")}}`;
    this.bytes = Buffer.from(this.text);
    this.id = parts.length === 0 ? 0 : kept ? ++lastSetId : -1;
  }
}

const NO_LABELS = new LabelSet({});

/** Where a family's read puts its series: exposition text, or samples for prom-client. */
interface Sink {
  add(value: number, set?: LabelSet): void;
  /** The same, `bytes` being `set.bytes` or an equal copy (LineSink writes it). */
  addRow(value: number, set: LabelSet, bytes: Buffer): void;
}

/**
 * Fills the sink with the family's series, read from the tables now. A family with many series
 * is a generator that yields every few hundred of them: a place where a scrape may give the
 * event loop back (Exposition); a plain read runs to the end at once.
 */
type Read = (sink: Sink) => Iterator<void> | void;

/** Run a read to its end (the synchronous paths: prom-client's samples, registry.metrics()). */
function readAll(read: Read, sink: Sink): void {
  const it = read(sink);
  if (it) while (it.next().done !== true) {}
}

/** lvsadm --sync rows that are losses (the rest of the non-parser rows are counted elsewhere). */
const SYNC_DROP_ROWS = new Set(["ring_drops", "send_failures", "bad_checksum", "queue_drops"]);

/**
 * The share of the thread a render keeps once it has been running a while (see Exposition's
 * render): a slice may last this fraction of the time since the render began, up to
 * MAX_SLICE_MS.
 */
const RENDER_SHARE = 0.5;
const MAX_SLICE_MS = 20;

/**
 * How long a render's slice may hold the event loop, `elapsedMs` after the render began: the
 * configured `sliceMs` (0: yield at every step), or RENDER_SHARE of the elapsed time when that is
 * longer, at most MAX_SLICE_MS.
 */
export function sliceBudgetMs(sliceMs: number, elapsedMs: number): number {
  if (sliceMs === 0) return 0;
  return Math.min(Math.max(MAX_SLICE_MS, sliceMs), Math.max(sliceMs, elapsedMs * RENDER_SHARE));
}

/** Series a sliced read writes between two places where it may yield. */
const ROWS_PER_STEP = 256;
/** A sink that writes a family's lines into a ChunkWriter. */
class LineSink implements Sink {
  constructor(
    private readonly w: ChunkWriter,
    private readonly name: Buffer,
  ) {}
  add(value: number, set: LabelSet = NO_LABELS): void {
    this.w.line(this.name, set.bytes, value);
  }
  addRow(value: number, _set: LabelSet, bytes: Buffer): void {
    this.w.line(this.name, bytes, value);
  }
}

/** Scrapes collected (CollectSink). */
let lastScrape = 0;

/**
 * A sink that keeps a scrape's series as numbers for the render worker: the value, and the id of
 * the label set (whose bytes go along the first time in an epoch, or every time for a set made
 * for one scrape). Arrays grow as needed and are reused from scrape to scrape.
 */
class CollectSink implements Sink {
  values: Float64Array;
  ids: Int32Array;
  /** Series collected. */
  n = 0;
  /** Kept label sets first seen in this epoch. */
  readonly fresh: LabelSet[] = [];
  /** Bytes of this scrape's one-time label sets (series id -k-1 is the k-th). */
  readonly inline: Buffer[] = [];
  /** Kept label sets this scrape uses. */
  inUse = 0;
  /** This scrape's number (LabelSet.seenAt). */
  private readonly scrape = ++lastScrape;
  constructor(
    values: Float64Array,
    ids: Int32Array,
    readonly epoch: number,
  ) {
    this.values = values;
    this.ids = ids;
  }
  add(value: number, set: LabelSet = NO_LABELS): void {
    this.addRow(value, set, set.bytes);
  }
  addRow(value: number, set: LabelSet, bytes: Buffer): void {
    let n = this.n;
    if (n === this.values.length) this.grow();
    let id = set.id;
    if (id > 0) {
      if (set.seenAt !== this.scrape) {
        set.seenAt = this.scrape;
        this.inUse++;
      }
      if (set.sentEpoch !== this.epoch) {
        set.sentEpoch = this.epoch;
        this.fresh.push(set);
      }
    } else if (id < 0) {
      id = -this.inline.push(bytes);
    }
    this.values[n] = value;
    this.ids[n++] = id;
    this.n = n;
  }
  private grow(): void {
    const values = new Float64Array(this.values.length * 2);
    values.set(this.values);
    const ids = new Int32Array(this.ids.length * 2);
    ids.set(this.ids);
    this.values = values;
    this.ids = ids;
  }
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
  addRow(value: number, set: LabelSet): void {
    this.add(value, set);
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
  /** `# HELP ...\n# TYPE ...` */
  readonly head: Buffer;
  /** `\nname`, which starts each line. */
  readonly name: Buffer;
  constructor(
    readonly spec: FamilySpec,
    readonly type: "counter" | "gauge",
  ) {
    this.head = Buffer.from(`# HELP ${spec.name} ${escapeText(spec.help)}\n# TYPE ${spec.name} ${type}`);
    this.name = Buffer.from(`\n${spec.name}`);
  }
  /**
   * Write the family as prom-client's getMetricsAsString writes it (lines joined by newlines)
   * into `w`; for a sliced read, what is left is written as the returned iterator is stepped.
   */
  write(w: ChunkWriter): Iterator<void> | void {
    w.bytes(this.head);
    return this.spec.read(new LineSink(w, this.name));
  }
  /** The family's text at once. */
  render(): string {
    const w = new ChunkWriter(() => Buffer.allocUnsafe(16 * 1024));
    const it = this.write(w);
    if (it) while (it.next().done !== true) {}
    return Buffer.concat(w.end(), w.length).toString();
  }
  samples(): Sample[] {
    const sink = new SampleSink();
    readAll(this.spec.read, sink);
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
      l = new LabelSet(serviceLabelsOf(s), true);
      svcSets.set(s, l);
    }
    return l;
  };
  const destSet = (s: Service, d: Dest): LabelSet => {
    let l = destSets.get(d);
    if (l === undefined) {
      l = new LabelSet(destLabelsOf(svcSet(s).labels, d.addr, d.port), true);
      destSets.set(d, l);
    }
    return l;
  };

  const counter = (spec: FamilySpec): void => void new TableCounter(registry, spec);
  const gauge = (spec: FamilySpec): void => void new TableGauge(registry, spec);

  type Stat = "conns" | "inPkts" | "outPkts" | "inBytes" | "outBytes";
  // One accessor per field (not `x[field]`: a keyed load shared by five fields is slow per row).
  type Counted = Pick<Service, Stat>;
  const statOf: Record<Stat, (x: Counted) => number> = {
    conns: (x) => x.conns,
    inPkts: (x) => x.inPkts,
    outPkts: (x) => x.outPkts,
    inBytes: (x) => x.inBytes,
    outBytes: (x) => x.outBytes,
  };
  const sumServices = (field: Stat): number => {
    const value = statOf[field];
    let n = 0;
    for (const s of table.services) if (s !== null) n += value(s);
    return n;
  };
  // Every dest of every service with its label set, in table order, rebuilt only when the
  // table changes (its generation): a scrape then walks two arrays per family.
  let rowsAt = -1;
  let rowDests: Dest[] = [];
  let rowSets: LabelSet[] = [];
  // The label sets' bytes are also copied into one buffer, in row order (rowBytes: views of
  // it): a scrape then reads them in sequence, not from wherever each set was allocated (which
  // made reading them most of a per-dest family's time).
  let rowBytes: Buffer[] = [];
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
    const slab = Buffer.allocUnsafeSlow(rowSets.reduce((n, set) => n + set.bytes.length, 0));
    let at = 0;
    rowBytes = rowSets.map((set) => {
      slab.set(set.bytes, at);
      at += set.bytes.length;
      return slab.subarray(at - set.bytes.length, at);
    });
  };
  // Sliced reads: a scrape may give the event loop back every ROWS_PER_STEP series. Each walks
  // the arrays it found when it started (a table change in between makes new ones).
  // (The loops are plain functions called per step: a loop inside a generator runs slower.)
  const serviceRows = (
    sink: Sink,
    value: (s: Service) => number,
    services: readonly (Service | null)[],
    from: number,
    to: number,
  ): void => {
    for (let i = from; i < to; i++) {
      const s = services[i];
      if (s != null) sink.add(value(s), svcSet(s));
    }
  };
  const perService = (value: (s: Service) => number): Read =>
    function* (sink) {
      const services = table.services;
      for (let i = 0; i < services.length; i += ROWS_PER_STEP) {
        serviceRows(sink, value, services, i, Math.min(i + ROWS_PER_STEP, services.length));
        yield;
      }
    };
  const destRows = (
    sink: Sink,
    value: (d: Dest) => number,
    dests: readonly Dest[],
    sets: readonly LabelSet[],
    bytes: readonly Buffer[],
    from: number,
    to: number,
  ): void => {
    for (let i = from; i < to; i++) sink.addRow(value(dests[i]!), sets[i]!, bytes[i]!);
  };
  const perDest = (value: (d: Dest) => number): Read =>
    function* (sink) {
      rows();
      const dests = rowDests;
      const sets = rowSets;
      const bytes = rowBytes;
      for (let i = 0; i < dests.length; i += ROWS_PER_STEP) {
        destRows(sink, value, dests, sets, bytes, i, Math.min(i + ROWS_PER_STEP, dests.length));
        yield;
      }
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
      read: perService(statOf[field]),
    });
  }
  for (const [suffix, what, field] of stats) {
    const decisions =
      field === "conns" ? "; each is a scheduling decision or a persistence template's reuse" : "";
    counter({
      name: `lvs_dest_${suffix}`,
      help: `${what}, per real server in its service (lvsadm -Ln --stats)${decisions}.`,
      labelNames: DEST_LABELS,
      read: perDest(statOf[field]),
    });
  }
  // ---- drops, links, engine ----
  const dropSets = DROP_NAMES.map((reason) => new LabelSet({ reason }, true));
  counter({
    name: "lvs_drops_total",
    help: "Frames the director dropped, by reason (lvsadm --drops; src/datapath/drops.ts).",
    labelNames: ["reason"],
    read: (sink) => {
      for (let r = 1; r < DROP_COUNT; r++) sink.add(engine.drops[r] ?? 0, dropSets[r]);
    },
  });
  const spSets = engine.synproxy.counterRows().map(([event]) => new LabelSet({ event }, true));
  counter({
    name: "lvs_synproxy_total",
    help: "SYN proxy events (lvsadm --synproxy-stats): cookies_sent (SYN-ACKs with a cookie), cookies_valid (ACKs that proved one), handshakes (real servers' SYN-ACKs spliced), server_resets, stale_server_conns (real servers' older connections on the tuple, reset), xdp_cookies_sent (SYN-ACKs the XDP responder of synproxy-xdp= links sent).",
    labelNames: ["event"],
    read: (sink) => {
      const rows = engine.synproxy.counterRows();
      for (let k = 0; k < rows.length; k++) sink.add(rows[k]![1], spSets[k]);
    },
  });
  const linkSets: LabelSet[] = [];
  const linkSet = (l: number): LabelSet =>
    (linkSets[l] ??= new LabelSet({ link: o.linkNames[l] ?? director.links[l]?.name ?? String(l) }, true));
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
    name: "lvs_fastpath_frames_total",
    help: "Frames of established connections forwarded by the fast path (part of lvs_forwarded_frames_total).",
    read: (sink) => sink.add(engine.fast.taken),
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
    read: (sink) => sink.add(o.conntrackEntries?.() ?? ct.count),
  });
  gauge({
    name: "lvs_conntrack_entries_limit",
    help: "Size of the connection table (lvsd --max-conns).",
    read: (sink) => sink.add(o.conntrackEntries !== undefined ? o.maxConns : ct.capacity),
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
  // Entries by protocol and state, as the table keeps them (ConnTable.kindCounts: TCP states
  // 0..10, then UDP, then ICMP; templateCounts by NONE / ASSURED), summed over the data-path
  // workers when lvsd runs them: read in O(1), no walk of the table.
  const kinds = new Float64Array(COUNT_SLOTS);
  const readKinds = (): Float64Array =>
    o.conntrackKinds !== undefined ? o.conntrackKinds(kinds) : ct.countsInto(kinds);
  const stateSets = [
    ...TCP_STATE_NAMES.map((state) => new LabelSet({ proto: "TCP", state }, true)),
    new LabelSet({ proto: "UDP", state: "UDP" }, true),
    new LabelSet({ proto: "ICMP", state: "ICMP" }, true),
  ];
  gauge({
    name: "lvs_conntrack_connections",
    help: "Connections in the connection table by protocol and state (the states lvsadm -Lnc shows).",
    labelNames: ["proto", "state"],
    read: (sink) => {
      const k = readKinds();
      for (let j = 0; j < stateSets.length; j++) sink.add(k[j]!, stateSets[j]);
    },
  });
  const templateSets = [new LabelSet({ state: "NONE" }, true), new LabelSet({ state: "ASSURED" }, true)];
  gauge({
    name: "lvs_conntrack_templates",
    help: "Persistence templates in the connection table by state (ASSURED once a connection through one was established).",
    labelNames: ["state"],
    read: (sink) => {
      const k = readKinds();
      sink.add(k[TCP_STATE_COUNT + 2]!, templateSets[0]);
      sink.add(k[TCP_STATE_COUNT + 3]!, templateSets[1]);
    },
  });

  // ---- health checks (src/control/health): the real servers a keepalived.conf checks ----
  const CHECK_LABELS = [...DEST_LABELS, "check"];
  const perRealServer =
    (emit: (sink: Sink, labels: Labels, rs: RealServerStatus) => void): Read =>
    (sink) => {
      for (const h of health.destHealth()) {
        // sorry servers have no checks (realServer undefined)
        if (h.realServer) emit(sink, destLabelsOf(serviceLabelsOf(h.key), h.addr, h.port), h.realServer);
      }
    };
  const perCheck = (value: (c: CheckerStatus) => number | undefined): Read =>
    perRealServer((sink, labels, rs) => {
      for (const c of rs.checkers) {
        const v = value(c);
        if (v !== undefined) sink.add(v, new LabelSet({ ...labels, check: c.label }));
      }
    });
  gauge({
    name: "lvs_health_dest_up",
    help: "1 while all the real server's health checks pass, else 0 (lvsadm --health).",
    labelNames: DEST_LABELS,
    read: perRealServer((sink, labels, rs) => sink.add(rs.alive ? 1 : 0, new LabelSet({ ...labels }))),
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

  // ---- VRRP (src/control/vrrp; docs/ha.md): per instance ----
  const vrrp = o.vrrp;
  if (vrrp) {
    const VRRP_LABELS = ["instance", "vrid", "interface"];
    const instSet = (st: VrrpInstanceStatus, extra: Record<string, string> = {}): LabelSet =>
      new LabelSet({ instance: st.name, vrid: String(st.vrid), interface: st.interface, ...extra });
    gauge({
      name: "lvs_vrrp_state",
      help: "1 for the VRRP instance's current state (INIT, BACKUP, MASTER, FAULT), 0 for the others.",
      labelNames: [...VRRP_LABELS, "state"],
      read: (sink) => {
        for (const st of vrrp.status())
          for (const name of VRRP_STATE_NAMES)
            sink.add(st.state === name ? 1 : 0, instSet(st, { state: name }));
      },
    });
    gauge({
      name: "lvs_vrrp_priority",
      help: "The instance's effective priority (its priority with the tracking weights applied).",
      labelNames: VRRP_LABELS,
      read: (sink) => {
        for (const st of vrrp.status()) sink.add(st.priority, instSet(st));
      },
    });
    const vrrpCounters: [string, string, (st: VrrpInstanceStatus) => number][] = [
      ["lvs_vrrp_adverts_sent_total", "VRRP adverts the instance sent.", (st) => st.sent],
      ["lvs_vrrp_adverts_received_total", "Valid VRRP adverts the instance received.", (st) => st.received],
      ["lvs_vrrp_become_master_total", "Transitions of the instance to MASTER.", (st) => st.becomeMaster],
      [
        "lvs_vrrp_release_master_total",
        "Transitions of the instance out of MASTER.",
        (st) => st.releaseMaster,
      ],
      [
        "lvs_vrrp_priority_zero_sent_total",
        "Priority-0 adverts the instance sent (it resigned).",
        (st) => st.priZeroSent,
      ],
      [
        "lvs_vrrp_priority_zero_received_total",
        "Priority-0 adverts the instance received (the master resigned).",
        (st) => st.priZeroReceived,
      ],
    ];
    for (const [name, help, value] of vrrpCounters)
      counter({
        name,
        help,
        labelNames: VRRP_LABELS,
        read: (sink) => {
          for (const st of vrrp.status()) sink.add(value(st), instSet(st));
        },
      });
    counter({
      name: "lvs_vrrp_drops_total",
      help: "VRRP packets the instance refused, by reason (docs/ha.md, the codec's statuses).",
      labelNames: [...VRRP_LABELS, "reason"],
      read: (sink) => {
        for (const st of vrrp.status())
          for (const [reason, n] of Object.entries(st.drops)) sink.add(n, instSet(st, { reason }));
      },
    });
  }

  // ---- connection sync (src/control/sync/daemon.ts) ----
  const sync = o.sync;
  if (sync) {
    const stateSets = {
      master: new LabelSet({ state: "master" }, true),
      backup: new LabelSet({ state: "backup" }, true),
    };
    gauge({
      name: "lvs_sync_daemon_running",
      help: "1 while the master or backup connection sync daemon runs (lvsadm -L --daemon).",
      labelNames: ["state"],
      read: (sink) => {
        sink.add(sync.running("master") ? 1 : 0, stateSets.master);
        sink.add(sync.running("backup") ? 1 : 0, stateSets.backup);
      },
    });
    const c = sync.counters;
    const syncCounters: [string, string, () => number][] = [
      ["lvs_sync_sent_messages_total", "Sync messages the master sent.", () => c.sentMessages],
      ["lvs_sync_sent_entries_total", "Connection entries in those messages.", () => c.sentEntries],
      [
        "lvs_sync_received_messages_total",
        "Sync messages the backup received and parsed.",
        () => c.recvMessages,
      ],
    ];
    for (const [name, help, value] of syncCounters)
      counter({ name, help, read: (sink) => sink.add(value()) });
    const resultSets = ["created", "updated", "no_dest", "refused"].map(
      (result) => new LabelSet({ result }, true),
    );
    counter({
      name: "lvs_sync_received_entries_total",
      help: "Entries the backup applied: created, updated, no_dest (no such service or dest here), refused.",
      labelNames: ["result"],
      read: (sink) => {
        const v = [c.created, c.updated, c.noDest, c.refused];
        for (let k = 0; k < v.length; k++) sink.add(v[k]!, resultSets[k]);
      },
    });
    counter({
      name: "lvs_sync_drops_total",
      help: "Sync messages or entries lost, by reason (ring_drops, send_failures, bad_checksum, queue_drops, and the parser's statuses).",
      labelNames: ["reason"],
      read: (sink) => {
        for (const [reason, n] of sync.counterRows())
          if (SYNC_DROP_ROWS.has(reason) || reason.startsWith("sync_")) sink.add(n, new LabelSet({ reason }));
      },
    });
  }

  // ---- the daemon (process metrics: prom-client's defaults, above) ----
  const version = new LabelSet({ version: o.version }, true);
  gauge({
    name: "lvs_build_info",
    help: "lvsd's version, as a label; the value is 1.",
    labelNames: ["version"],
    read: (sink) => sink.add(1, version),
  });
  return registry;
}

// ---- the scrape: collected in slices, rendered off the forwarding thread, shared ----

/** One render of the exposition: its text in chunks, and the scrapes still sending it. */
export class Rendering {
  /** The text so far, in order (all of it once `finished`). */
  readonly chunks: Buffer[] = [];
  /** Its length in bytes. */
  length = 0;
  /** The longest the render held the event loop at a stretch (ms). */
  maxSliceMs = 0;
  /** Slices it was rendered (or, with the worker, collected) in. */
  slices = 0;
  /** The time those slices held the event loop, in all (ms). */
  busyMs = 0;
  /** The text was written by the render worker (the main thread only collected the values). */
  offThread = false;
  /** Scrapes that have it (Exposition.acquire) and have not released it. */
  users = 0;
  finished = false;
  /** Pooled chunks it writes into, back to the pool once no scrape sends them any more. */
  readonly owned: Buffer[] = [];
  /** The worker's chunks behind `chunks`, given back to it once no scrape sends them. */
  spare: ArrayBuffer[] | undefined;
  /** Settles when the text is complete (or the render failed). */
  done: Promise<void> = Promise.resolve();
  private readonly followers = new Set<(chunk: Buffer) => void>();

  /** A chunk more of the text, told to the scrapes that follow the render. */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
    for (const f of this.followers) f(chunk);
  }

  /** Call `f` with every chunk that comes from now on; returns the call that stops it. */
  follow(f: (chunk: Buffer) => void): () => void {
    this.followers.add(f);
    return () => this.followers.delete(f);
  }
}

export interface ExpositionOptions {
  /**
   * How long a render may hold the event loop before it yields (setImmediate) to let frames
   * through (ms, default 6). 0 yields at every step (tests).
   */
  sliceMs?: number;
  /**
   * Write the text in a worker thread (render-worker.ts), the main thread only collecting the
   * values (default true). Without the worker's file (a build without it), or after it failed
   * three times, the main thread renders as before.
   */
  worker?: boolean;
  /** Where worker failures are told (lvsd: its log). */
  log?: (msg: string) => void;
  /** The worker's module (tests); default render-worker.js beside this module. */
  workerUrl?: URL;
}

const SEPARATOR = Buffer.from("\n\n");
const FINAL_NEWLINE = Buffer.from("\n");

/** The render worker's file: beside this module, or the build's when this runs from the sources (tests). */
function renderWorkerUrl(): URL | undefined {
  const here = new URL("./render-worker.js", import.meta.url);
  if (existsSync(here)) return here;
  const built = new URL("../../../dist/src/control/observe/render-worker.js", import.meta.url);
  return existsSync(built) ? built : undefined;
}

/** Failures after which the worker is not started again (the main thread renders). */
const WORKER_FAILURES_MAX = 3;
/**
 * Label sets the worker may hold beyond twice those a scrape uses before an epoch starts anew
 * (and every set in use is sent again: as much as one scrape's first render).
 */
const SETS_SLACK = 256;

/** The main thread's side of the render worker. */
class RenderThread {
  /** Renders that failed (the worker died or refused a request). */
  failures = 0;
  /** The worker's label sets are those sent in this epoch. */
  epoch = 1;
  /** Label sets sent in this epoch. */
  private known = 0;
  private worker: Worker | undefined;
  private waiting: ((m: RenderReply | RenderFailed | Error) => void) | undefined;
  /** Where the chunks of the render under way go. */
  private chunk: ((m: RenderChunk) => void) | undefined;
  private readonly familiesSent = new Set<number>();
  values: Float64Array = new Float64Array(4096);
  ids: Int32Array = new Int32Array(4096);
  constructor(
    private readonly url: URL,
    private readonly log: (msg: string) => void,
  ) {}

  get usable(): boolean {
    return this.failures < WORKER_FAILURES_MAX;
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.url, { workerData: RENDER_WORKER });
    w.unref();
    w.on("message", (m: RenderChunk | RenderReply | RenderFailed) => {
      if (m.kind === "chunk") {
        this.chunk?.(m);
        return;
      }
      this.chunk = undefined;
      const wake = this.waiting;
      this.waiting = undefined;
      wake?.(m);
    });
    w.on("error", (err) => this.lost(w, err));
    w.on("exit", (code) => this.lost(w, new Error(`render worker exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  /** The worker is gone: forget what it knew; a waiting render fails. */
  private lost(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    this.reset();
    this.chunk = undefined;
    const wake = this.waiting;
    this.waiting = undefined;
    wake?.(err);
  }

  private reset(): void {
    this.familiesSent.clear();
    this.epoch++;
    this.known = 0;
  }

  /** Families whose head the worker has not had, marked as sent. */
  unsent(index: number): boolean {
    if (this.familiesSent.has(index)) return false;
    this.familiesSent.add(index);
    return true;
  }

  /**
   * Render `q`, which uses `inUse` kept label sets, `fresh` of them new to the worker; `chunk`
   * gets the text's chunks as they come.
   */
  async render(
    q: RenderRequest,
    inUse: number,
    fresh: number,
    chunk: (m: RenderChunk) => void,
  ): Promise<RenderReply> {
    const w = this.started();
    const answer = new Promise<RenderReply | RenderFailed | Error>((resolve) => {
      this.waiting = resolve;
    });
    this.chunk = chunk;
    w.postMessage(q, [q.values.buffer, q.ids.buffer, q.plan.buffer] as ArrayBuffer[]);
    const m = await answer;
    if (m instanceof Error || m.kind === "failed") {
      this.failures++;
      const why = m instanceof Error ? m.message : m.message;
      this.log(
        `metrics: render worker failed (${why}); ${this.usable ? "this scrape" : "scrapes from now on"} rendered on the main thread`,
      );
      if (!(m instanceof Error)) {
        this.values = m.values;
        this.ids = m.ids;
      } else {
        this.values = new Float64Array(4096);
        this.ids = new Int32Array(4096);
      }
      this.reset();
      if (!this.usable) void this.worker?.terminate();
      throw new Error(why);
    }
    this.values = m.values;
    this.ids = m.ids;
    // a worker holding many more sets than a scrape uses (dests came and went): start anew
    this.known += fresh;
    if (this.known > 2 * inUse + SETS_SLACK) {
      this.epoch++;
      this.known = 0;
    }
    return m;
  }

  giveBack(chunks: ArrayBuffer[]): void {
    if (this.worker === undefined) return;
    const m: SpareChunks = { kind: "spare", chunks };
    this.worker.postMessage(m, chunks);
  }
}

/** Label sets' bytes back to back, with offsets (n + 1). */
function packSets(sets: readonly Buffer[]): { offsets: Int32Array; bytes: Uint8Array } {
  const offsets = new Int32Array(sets.length + 1);
  let n = 0;
  for (let k = 0; k < sets.length; k++) {
    n += sets[k]!.length;
    offsets[k + 1] = n;
  }
  const bytes = new Uint8Array(n);
  for (let k = 0; k < sets.length; k++) bytes.set(sets[k]!, offsets[k]!);
  return { offsets, bytes };
}

/**
 * The text GET /metrics answers, byte for byte what `registry.metrics()` returns, made so that
 * forwarding goes on meanwhile. The main thread reads the table families (TableCounter,
 * TableGauge) into numbers in steps (ROWS_PER_STEP series), yielding with setImmediate whenever a slice has held the event loop
 * for `sliceMs`, so the batches of frames that arrived meanwhile are forwarded before it goes on;
 * prom-client renders its own metrics (the process metrics) as text; the render worker then
 * writes the whole text in another thread (render-worker.ts). Without the worker the main
 * thread writes the lines itself, in the same slices, into pooled chunks. Scrapes that arrive
 * while a render runs share it (acquire); its chunks go back (to the pool, or to the worker)
 * when the last of them has been sent (release).
 */
export class Exposition {
  /** Renders started. */
  renders = 0;
  /** The last render that finished (its slices' timing: bench/metrics.bench.ts). */
  last: Rendering | undefined;
  private readonly sliceMs: number;
  private current: Rendering | undefined;
  private readonly pool: Buffer[] = [];
  /** Pooled chunks kept while idle: enough for two renders as large as the largest yet. */
  private poolLimit = 0;
  private readonly thread: RenderThread | undefined;
  constructor(
    readonly registry: Registry,
    opts: ExpositionOptions = {},
  ) {
    this.sliceMs = opts.sliceMs ?? 6;
    const url = (opts.worker ?? true) ? (opts.workerUrl ?? renderWorkerUrl()) : undefined;
    this.thread = url ? new RenderThread(url, opts.log ?? (() => {})) : undefined;
  }

  /** Whether scrapes are rendered by the worker (it exists and has not failed too often). */
  get offThread(): boolean {
    return this.thread?.usable ?? false;
  }

  /** The worker's epoch (its label sets are those sent since it began; tests). */
  get workerEpoch(): number {
    return this.thread?.epoch ?? 0;
  }

  /** Renders the worker failed (each then rendered on the main thread). */
  get workerFailures(): number {
    return this.thread?.failures ?? 0;
  }

  /**
   * The render under way (which started less than a render's time ago), or a new one: its
   * chunks come as they are written (Rendering.follow), `done` settles when the text is whole.
   * Give it back with release() once it has been sent.
   */
  start(): Rendering {
    let r = this.current;
    if (r === undefined) {
      const fresh = new Rendering();
      this.current = r = fresh;
      this.renders++;
      fresh.done = this.render(fresh).finally(() => {
        fresh.finished = true;
        this.last = fresh;
        if (this.current === fresh) this.current = undefined;
      });
      // a failure reaches the scrapes through `done`; none may be left unhandled
      fresh.done.catch(() => {});
    }
    r.users++;
    return r;
  }

  /** The text as of now, whole (start(), then its end). Give it back with release(). */
  async acquire(): Promise<Rendering> {
    const r = this.start();
    try {
      await r.done;
    } catch (err) {
      this.release(r);
      throw err;
    }
    return r;
  }

  release(r: Rendering): void {
    if (--r.users > 0 || !r.finished) return;
    r.chunks.length = 0; // views of the chunks, which the pool hands to the next render
    for (const b of r.owned.splice(0)) if (this.pool.length < this.poolLimit) this.pool.push(b);
    if (r.spare) this.thread?.giveBack(r.spare);
    r.spare = undefined;
  }

  /** The whole text as one string (tests; the endpoint sends the chunks). */
  async text(): Promise<string> {
    const r = await this.acquire();
    try {
      return Buffer.concat(r.chunks, r.length).toString();
    } finally {
      this.release(r);
    }
  }

  /**
   * The end of a slice when it is time (the caller then awaits the returned promise). A slice
   * may last `sliceMs`, or RENDER_SHARE of the time the render has taken so far when that is
   * longer (at most MAX_SLICE_MS): while the links keep the thread busy the render still gets
   * a share of it, so a scrape under a saturating flow ends in about its CPU time / share.
   */
  private slicer(r: Rendering): { due: () => Promise<void> | undefined; end: () => void } {
    const sliceMs = this.sliceMs;
    const startedAt = performance.now();
    let sliceAt = startedAt;
    return {
      due: () => {
        const now = performance.now();
        if (now - sliceAt < sliceBudgetMs(sliceMs, now - startedAt)) return undefined;
        r.maxSliceMs = Math.max(r.maxSliceMs, now - sliceAt);
        r.busyMs += now - sliceAt;
        r.slices++;
        return new Promise<void>((resolve) =>
          setImmediate(() => {
            sliceAt = performance.now();
            resolve();
          }),
        );
      },
      end: () => {
        const now = performance.now();
        r.maxSliceMs = Math.max(r.maxSliceMs, now - sliceAt);
        r.busyMs += now - sliceAt;
        r.slices++;
      },
    };
  }

  private async render(r: Rendering): Promise<void> {
    const t = this.thread;
    if (t?.usable) {
      r.offThread = true; // known at once: scrapes follow its chunks as they come (sendExposition)
      try {
        await this.renderOffThread(r, t);
        return;
      } catch (err) {
        // told by RenderThread; this scrape is rendered here, unless part of the text has gone
        // out already (the scrapes following it then fail; the next scrape renders anew)
        if (r.chunks.length > 0) throw err;
        r.offThread = false;
        r.spare = undefined;
        r.maxSliceMs = 0;
        r.slices = 0;
        r.busyMs = 0;
      }
    }
    await this.renderHere(r);
  }

  /** Collect the values here, in slices; the worker writes the text. */
  private async renderOffThread(r: Rendering, t: RenderThread): Promise<void> {
    const { due, end } = this.slicer(r);
    const sink = new CollectSink(t.values, t.ids, t.epoch);
    const metrics = this.registry.getMetricsAsArray();
    const plan = new Int32Array(3 * metrics.length);
    const texts: string[] = [];
    const families: { index: number; head: string; name: string }[] = [];
    for (let i = 0; i < metrics.length; i++) {
      const m = metrics[i];
      if (m instanceof TableCounter || m instanceof TableGauge) {
        const before = sink.n;
        const it = m.family.spec.read(sink);
        if (it) {
          while (it.next().done !== true) {
            const pause = due();
            if (pause) await pause;
          }
        }
        plan[3 * i] = PLAN_FAMILY;
        plan[3 * i + 1] = i;
        plan[3 * i + 2] = sink.n - before;
        if (t.unsent(i))
          families.push({ index: i, head: m.family.head.toString(), name: m.family.name.toString() });
      } else {
        plan[3 * i] = PLAN_TEXT;
        plan[3 * i + 1] = texts.push(await this.registry.getMetricsAsString(m)) - 1;
      }
      const pause = due();
      if (pause) await pause;
    }
    const setIds = new Int32Array(sink.fresh.length);
    for (let k = 0; k < sink.fresh.length; k++) setIds[k] = sink.fresh[k]!.id;
    const sets = packSets(sink.fresh.map((set) => set.bytes));
    const inline = packSets(sink.inline);
    end();
    // the arrays cross to the worker (transferred) and come back with the text
    const { values, ids } = sink;
    const q: RenderRequest = {
      kind: "render",
      epoch: sink.epoch,
      families,
      setIds,
      setOffsets: sets.offsets,
      setBytes: sets.bytes,
      inlineOffsets: inline.offsets,
      inlineBytes: inline.bytes,
      texts,
      plan,
      planLength: plan.length,
      values,
      ids,
    };
    const spare: ArrayBuffer[] = [];
    r.spare = spare;
    const reply = await t.render(q, sink.inUse, sink.fresh.length, (m) => {
      spare.push(m.chunk);
      r.push(Buffer.from(m.chunk, 0, m.length));
    });
    if (reply.total !== r.length) throw new Error(`render worker wrote ${r.length} of ${reply.total} bytes`);
  }

  /** Write the text here, in slices, into pooled chunks. */
  private async renderHere(r: Rendering): Promise<void> {
    const take = (): Buffer => {
      const b = this.pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
      r.owned.push(b);
      return b;
    };
    const w = new ChunkWriter(take);
    const { due, end } = this.slicer(r);
    const metrics = this.registry.getMetricsAsArray();
    for (let i = 0; i < metrics.length; i++) {
      const m = metrics[i];
      if (i > 0) w.bytes(SEPARATOR);
      if (m instanceof TableCounter || m instanceof TableGauge) {
        const it = m.family.write(w);
        if (it) {
          while (it.next().done !== true) {
            const pause = due();
            if (pause) await pause;
          }
        }
      } else {
        w.text(await this.registry.getMetricsAsString(m));
      }
      const pause = due();
      if (pause) await pause;
    }
    w.bytes(FINAL_NEWLINE);
    w.end();
    end();
    for (const c of w.chunks) r.push(c);
    this.poolLimit = Math.max(this.poolLimit, 2 * r.owned.length);
  }
}

/** The /metrics route for lvsd's HTTP endpoint (src/control/observe/http.ts). */
export function metricsRoutes(
  o: ObservedDaemon,
  opts: MetricsOptions & ExpositionOptions = {},
): Record<string, Route> {
  const exposition = new Exposition(metricsRegistry(o, opts), opts);
  return { "/metrics": (req, res) => sendExposition(exposition, req, res) };
}

/**
 * Answer a scrape with the exposition's chunks, handing them back (to the pool or the worker)
 * once the response is finished or aborted. While the render worker writes the text, each chunk
 * is sent as it comes (chunked transfer encoding), so sending overlaps writing; a text already
 * whole (a main-thread render, HEAD) goes with its Content-Length. Should the render fail after
 * part of the text went out, the connection is closed (the scraper sees a failed scrape).
 */
export async function sendExposition(
  exposition: Exposition,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const r = exposition.start();
  let held = true;
  let stop: (() => void) | undefined;
  const release = (): void => {
    stop?.();
    stop = undefined;
    if (held) exposition.release(r);
    held = false;
  };
  const headers = {
    "content-type": exposition.registry.contentType,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  };
  try {
    if (req.method === "HEAD" || !r.offThread) await r.done;
    if (r.finished) {
      res.writeHead(200, { ...headers, "content-length": r.length });
      if (req.method === "HEAD") {
        res.end();
        release();
        return;
      }
      finished(res, release);
      res.cork();
      for (const c of r.chunks) res.write(c);
      res.uncork();
      res.end();
      return;
    }
  } catch (err) {
    release();
    throw err;
  }
  // the worker is writing it: what there is now, then each chunk as it comes
  res.writeHead(200, headers);
  finished(res, release);
  res.cork();
  for (const c of r.chunks) res.write(c);
  res.uncork();
  stop = r.follow((c) => res.write(c));
  r.done.then(
    () => {
      stop?.();
      stop = undefined;
      res.end();
    },
    () => res.destroy(),
  );
}
