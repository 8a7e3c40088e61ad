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
 * (setImmediate) every 2 ms, so frames keep being forwarded during a scrape, into chunks sent
 * with writev, shared by the scrapes that arrive during a render; `registry.metrics()` (our
 * Registry subclass) still returns the same text at once. Should a prom-client release stop
 * rendering through `getMetricsAsString`, the families still render correctly through their
 * `getForPromString`, as prom-client's Histogram does (label sets as `sharedLabels`), only
 * slower. `npm run bench -- --only metrics` measures the whole scrape.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { finished } from "node:stream";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { TCP_STATE_COUNT, TCP_STATE_NAMES, TEMPLATE_STATE_ASSURED } from "../../datapath/conntrack/states.js";
import { CONN_F_TEMPLATE, CONN_F_USED } from "../../datapath/conntrack/table.js";
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
  /** `text` in UTF-8, as ChunkWriter copies it. */
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
const RENDER_SHARE = 0.25;
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
/** Connection-table slots the per-state walk visits between two such places. */
const SLOTS_PER_STEP = 65_536;
/** Bytes of one chunk of the exposition text. */
const CHUNK_BYTES = 256 * 1024;

/**
 * The exposition text as it is written: chunks of CHUNK_BYTES into which `\nname{labels} value`
 * lines are written by copying the name's and the label set's bytes and writing integer values
 * digit by digit, so a line makes no string (joining ~85,000 small strings cost more than all
 * the rest of a scrape). Chunks come from `take` (a pool: Exposition) and are handed out as they
 * fill; `chunks` then holds the text in order.
 */
class ChunkWriter {
  readonly chunks: Buffer[] = [];
  /** Bytes in `chunks`. */
  length = 0;
  private buf: Buffer;
  private at = 0;
  constructor(private readonly take: () => Buffer) {
    this.buf = take();
  }
  /** Make room for `n` more bytes in the current chunk. */
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n); // a line longer than a chunk
  }
  private flush(): void {
    if (this.at === 0) return;
    this.chunks.push(this.buf.subarray(0, this.at));
    this.length += this.at;
    this.buf = this.take();
    this.at = 0;
  }
  bytes(b: Buffer): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }
  text(s: string): void {
    this.room(Buffer.byteLength(s));
    this.at += this.buf.write(s, this.at);
  }
  /** `\nname{labels} value`; `name` is the family's name with the newline before it, in bytes. */
  line(name: Buffer, labels: Buffer, value: number): void {
    this.room(name.length + labels.length + 32);
    const buf = this.buf;
    let at = this.at;
    buf.set(name, at);
    at += name.length;
    buf.set(labels, at);
    at += labels.length;
    buf[at++] = 0x20;
    this.at = writeValue(buf, at, value);
  }
  /** The text, all of it in `chunks`. */
  end(): Buffer[] {
    this.flush();
    return this.chunks;
  }
}

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
  private readonly head: Buffer;
  /** `\nname`, which starts each line. */
  private readonly name: Buffer;
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
  const dropSets = DROP_NAMES.map((reason) => new LabelSet({ reason }));
  counter({
    name: "lvs_drops_total",
    help: "Frames the director dropped, by reason (lvsadm --drops; src/datapath/drops.ts).",
    labelNames: ["reason"],
    read: (sink) => {
      for (let r = 1; r < DROP_COUNT; r++) sink.add(engine.drops[r] ?? 0, dropSets[r]);
    },
  });
  const spSets = engine.synproxy.counterRows().map(([event]) => new LabelSet({ event }));
  counter({
    name: "lvs_synproxy_total",
    help: "SYN proxy events (lvsadm --synproxy-stats): cookies_sent (SYN-ACKs with a cookie), cookies_valid (ACKs that proved one), handshakes (real servers' SYN-ACKs spliced), server_resets.",
    labelNames: ["event"],
    read: (sink) => {
      const rows = engine.synproxy.counterRows();
      for (let k = 0; k < rows.length; k++) sink.add(rows[k]![1], spSets[k]);
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
  // Entries by protocol and state, counted in one walk of the table's typed arrays: TCP states
  // 0..10, then UDP, then ICMP (the engine makes no other entries); templates by NONE / ASSURED.
  // The walk is sliced (SLOTS_PER_STEP slots between places where a scrape may pause), so with
  // traffic in between the counts are those of a table changing under the walk, as a reader of
  // /proc/net/ip_vs_conn sees the kernel's. It counts into arrays of its own and publishes them
  // when done. The connections family walks; the templates family, read right after it in the
  // same scrape (registration order), takes that walk's counts.
  let byState = new Float64Array(TCP_STATE_COUNT + 2);
  let byTemplate = new Float64Array(2);
  let walked = false;
  /** Count slots [from, to) into `states` and `templates`, stopping after `left` entries; returns what is left. */
  const walkSlots = (
    states: Float64Array,
    templates: Float64Array,
    from: number,
    to: number,
    left: number,
  ): number => {
    const { flags, state, proto } = ct;
    for (let i = from; left > 0 && i < to; i++) {
      const f = flags[i]!;
      if ((f & CONN_F_USED) === 0) continue;
      left--;
      if ((f & CONN_F_TEMPLATE) !== 0) templates[state[i] === TEMPLATE_STATE_ASSURED ? 1 : 0]!++;
      else if (proto[i] === IPPROTO_TCP) states[state[i]!]!++;
      else if (proto[i] === IPPROTO_UDP) states[TCP_STATE_COUNT]!++;
      else if (proto[i] === IPPROTO_ICMP) states[TCP_STATE_COUNT + 1]!++;
    }
    return left;
  };
  function* walk(): Generator<void, void, undefined> {
    const states = new Float64Array(TCP_STATE_COUNT + 2);
    const templates = new Float64Array(2);
    let left = ct.count;
    for (let i = 0; left > 0 && i < ct.capacity; i += SLOTS_PER_STEP) {
      left = walkSlots(states, templates, i, Math.min(i + SLOTS_PER_STEP, ct.capacity), left);
      yield;
    }
    byState = states;
    byTemplate = templates;
    walked = true;
  }
  const stateSets = [
    ...TCP_STATE_NAMES.map((state) => new LabelSet({ proto: "TCP", state })),
    new LabelSet({ proto: "UDP", state: "UDP" }),
    new LabelSet({ proto: "ICMP", state: "ICMP" }),
  ];
  gauge({
    name: "lvs_conntrack_connections",
    help: "Connections in the connection table by protocol and state (the states lvsadm -Lnc shows).",
    labelNames: ["proto", "state"],
    read: function* (sink) {
      yield* walk();
      for (let k = 0; k < byState.length; k++) sink.add(byState[k]!, stateSets[k]);
    },
  });
  const templateSets = [new LabelSet({ state: "NONE" }), new LabelSet({ state: "ASSURED" })];
  gauge({
    name: "lvs_conntrack_templates",
    help: "Persistence templates in the connection table by state (ASSURED once a connection through one was established).",
    labelNames: ["state"],
    read: (sink) => {
      if (!walked) readAll(walk, sink);
      walked = false;
      sink.add(byTemplate[0]!, templateSets[0]);
      sink.add(byTemplate[1]!, templateSets[1]);
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
      master: new LabelSet({ state: "master" }),
      backup: new LabelSet({ state: "backup" }),
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
    const resultSets = ["created", "updated", "no_dest", "refused"].map((result) => new LabelSet({ result }));
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
  const version = new LabelSet({ version: o.version });
  gauge({
    name: "lvs_build_info",
    help: "lvsd's version, as a label; the value is 1.",
    labelNames: ["version"],
    read: (sink) => sink.add(1, version),
  });
  return registry;
}

// ---- the scrape: rendered in slices, shared by the scrapes that arrive during it ----

/** One render of the exposition: its text in chunks, and the scrapes still sending it. */
export class Rendering {
  /** The text, in order. */
  readonly chunks: Buffer[] = [];
  /** Its length in bytes. */
  length = 0;
  /** The longest the render held the event loop at a stretch (ms). */
  maxSliceMs = 0;
  /** Slices it was rendered in. */
  slices = 0;
  /** Scrapes that have it (Exposition.acquire) and have not released it. */
  users = 0;
  finished = false;
  /** Pooled chunks it writes into, back to the pool once no scrape sends them any more. */
  readonly owned: Buffer[] = [];
  done: Promise<void> = Promise.resolve();
}

export interface ExpositionOptions {
  /**
   * How long a render may hold the event loop before it yields (setImmediate) to let frames
   * through (ms, default 2). 0 yields at every step (tests).
   */
  sliceMs?: number;
}

const SEPARATOR = Buffer.from("\n\n");
const FINAL_NEWLINE = Buffer.from("\n");

/**
 * The text GET /metrics answers, byte for byte what `registry.metrics()` returns, rendered so
 * that forwarding goes on meanwhile: the table families (TableCounter, TableGauge) write their
 * lines into pooled chunks in steps (ROWS_PER_STEP series, SLOTS_PER_STEP slots of the connection
 * table's walk), and whenever a slice has held the event loop for `sliceMs` the render yields
 * with setImmediate, so the batches of frames that arrived meanwhile are forwarded before it goes
 * on; every other metric (prom-client's process metrics) is prom-client's text. Scrapes that
 * arrive while a render runs share it (acquire); its chunks go back to the pool when the last of
 * them has been sent (release).
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
  constructor(
    readonly registry: Registry,
    opts: ExpositionOptions = {},
  ) {
    this.sliceMs = opts.sliceMs ?? 2;
  }

  /**
   * The text as of now, or of the render under way (which started less than a render's time
   * ago). Give it back with release() once it has been sent.
   */
  async acquire(): Promise<Rendering> {
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
    }
    r.users++;
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

  private async render(r: Rendering): Promise<void> {
    const take = (): Buffer => {
      const b = this.pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK_BYTES);
      r.owned.push(b);
      return b;
    };
    const w = new ChunkWriter(take);
    const sliceMs = this.sliceMs;
    const startedAt = performance.now();
    let sliceAt = startedAt;
    // the end of a slice when it is time; the caller then awaits the returned promise. A slice
    // may last `sliceMs`, or RENDER_SHARE of the time the render has taken so far when that is
    // longer (at most MAX_SLICE_MS): while the links keep the thread busy the render still gets
    // a share of it, so a scrape under a saturating flow ends in about its CPU time / share.
    const due = (): Promise<void> | undefined => {
      const now = performance.now();
      if (now - sliceAt < sliceBudgetMs(sliceMs, now - startedAt)) return undefined;
      r.maxSliceMs = Math.max(r.maxSliceMs, now - sliceAt);
      r.slices++;
      return new Promise<void>((resolve) =>
        setImmediate(() => {
          sliceAt = performance.now();
          resolve();
        }),
      );
    };
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
    r.maxSliceMs = Math.max(r.maxSliceMs, performance.now() - sliceAt);
    r.slices++;
    r.chunks.push(...w.chunks);
    r.length = w.length;
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
 * Answer a scrape with the exposition's chunks (Content-Length known: they are rendered before
 * the headers go), handing them back to the pool once the response is finished or aborted.
 */
export async function sendExposition(
  exposition: Exposition,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const r = await exposition.acquire();
  let held = true;
  const release = (): void => {
    if (held) exposition.release(r);
    held = false;
  };
  try {
    res.writeHead(200, {
      "content-type": exposition.registry.contentType,
      "content-length": r.length,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
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
  } catch (err) {
    release();
    throw err;
  }
}
