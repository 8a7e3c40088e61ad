/**
 * Scenario files: a small line-based format describing a workload and a server pool for the
 * scheduler simulator (documented in docs/schedbench.md). One directive per line, `#` starts a
 * comment, blank lines are ignored:
 *
 *   name hetero-right
 *   title Heterogeneous servers, weights matching capacity
 *   duration 30s
 *   rate 2400
 *   cost lognormal 12ms 1.0
 *   clients all 10.1.0.0/16 count 20000
 *   dest s1 192.168.10.1:80 weight 1 slots 8 speed 1
 *   at 10s fail s1 detect 3s
 *
 * The parser checks everything it can before a run (types, ranges, names that events refer to,
 * the order of fail/recover/remove/add events) and reports every problem as `file:line: message`
 * in one ScenarioError, so a user can fix a file in one pass.
 */

import { readFileSync } from "node:fs";
import { basename, dirname, extname, resolve } from "node:path";
import { allSchedulerFlags } from "../../datapath/schedulers/index.js";
import { maskPrefix, parseIPv4, prefixMask } from "./addr.js";
import type { Dist } from "./rng.js";

export interface DestSpec {
  readonly name: string;
  readonly addr: number;
  readonly port: number;
  readonly weight: number;
  /** Parallel service slots (worker processes / threads). */
  readonly slots: number;
  /** Speed factor: a request of cost c ms takes c / speed ms of one slot. */
  readonly speed: number;
  /** Queue limit: connections waiting for a slot beyond this are refused. */
  readonly backlog: number;
  readonly uThreshold: number;
  readonly lThreshold: number;
  readonly line: number;
}

export interface ClientPop {
  readonly name: string;
  /** First address of the subnet. */
  readonly base: number;
  readonly prefixLen: number;
  /** Distinct client addresses used: base+1 .. base+count. */
  readonly count: number;
  /** Initial share of new connections (relative to the other populations). */
  readonly share: number;
  /** Zipf exponent of the popularity of the addresses (0 = uniform). */
  readonly zipf: number;
  readonly line: number;
}

export interface Targets {
  readonly base: number;
  readonly prefixLen: number;
  readonly count: number;
  /** Zipf exponent of the popularity of the addresses (0 = uniform). */
  readonly zipf: number;
}

/** A per-server cache of destination addresses (a cache cluster: what lblc and dh are for). */
export interface CacheModel {
  /** Addresses each server keeps (LRU). */
  readonly size: number;
  /** Cost multiplier of a request whose address is not in the server's cache. */
  readonly missFactor: number;
}

export interface Persistence {
  readonly timeoutMs: number;
  readonly mask: number;
  /** The expire_quiescent_template sysctl: templates of weight-0 dests are dropped. */
  readonly expireQuiescent: boolean;
}

export type ScenarioEvent =
  | { readonly at: number; readonly line: number; readonly kind: "rate"; readonly rate: number }
  | {
      readonly at: number;
      readonly line: number;
      readonly kind: "share";
      readonly pop: string;
      readonly share: number;
    }
  | {
      readonly at: number;
      readonly line: number;
      readonly kind: "fail";
      readonly dest: string;
      readonly detectMs: number;
      readonly inhibit: boolean;
    }
  | {
      readonly at: number;
      readonly line: number;
      readonly kind: "recover";
      readonly dest: string;
      readonly detectMs: number;
    }
  | { readonly at: number; readonly line: number; readonly kind: "remove"; readonly dest: string }
  | {
      readonly at: number;
      readonly line: number;
      readonly kind: "weight";
      readonly dest: string;
      readonly weight: number;
    }
  | { readonly at: number; readonly line: number; readonly kind: "add"; readonly spec: DestSpec };

export type BytesSpec =
  | { readonly kind: "per-ms"; readonly perMs: number }
  | { readonly kind: "dist"; readonly dist: Dist };

export interface Scenario {
  /** Path of the file (or the label given to parseScenario). */
  readonly file: string;
  readonly name: string;
  readonly title: string;
  readonly seed: number;
  /** Arrivals are generated in [0, durationMs); 0 when arrivals come from a capture. */
  readonly durationMs: number;
  readonly warmupMs: number;
  /** After the last arrival, the run continues at most this long to let queues drain. */
  readonly drainMs: number;
  /** Cap on the number of arrivals (0 = none). */
  readonly maxConns: number;
  /** New connections per second (Poisson); 0 with a capture. */
  readonly rate: number;
  readonly proto: "tcp" | "udp";
  readonly vipAddr: number;
  readonly vipPort: number;
  readonly lingerMs: number;
  /** Request cost in ms on a speed-1 server. */
  readonly cost: Dist;
  readonly bytes: BytesSpec;
  readonly clients: readonly ClientPop[];
  readonly targets: Targets | null;
  readonly persistence: Persistence | null;
  readonly cache: CacheModel | null;
  readonly schedFlags: readonly string[];
  readonly estimatorMs: number;
  readonly dests: readonly DestSpec[];
  /** Sorted by time, file order for equal times. */
  readonly events: readonly ScenarioEvent[];
  /** Absolute path of a capture to replay, or null. */
  readonly pcap: string | null;
}

export interface ScenarioIssue {
  readonly line: number;
  readonly message: string;
}

/** A scenario file with problems; `issues` has every one found, `message` lists them as file:line. */
export class ScenarioError extends Error {
  readonly code = "SCENARIO_INVALID";
  readonly file: string;
  readonly issues: readonly ScenarioIssue[];
  constructor(file: string, issues: readonly ScenarioIssue[]) {
    super(
      issues
        .map((i) => (i.line > 0 ? `${file}:${i.line}: ${i.message}` : `${file}: ${i.message}`))
        .join("\n"),
    );
    this.name = "ScenarioError";
    this.file = file;
    this.issues = issues;
  }
}

export const DEFAULTS = {
  seed: 1,
  warmupMs: 0,
  drainMs: 60_000,
  proto: "tcp",
  vip: "10.0.0.100:80",
  lingerMs: 5_000,
  cost: { kind: "exp", mean: 20 } as Dist,
  bytesPerMs: 10_000,
  estimatorMs: 2_000,
  backlog: 1024,
  weight: 1,
  slots: 8,
  speed: 1,
} as const;

/** Safety bound: arrivals a synthetic workload may generate. */
export const MAX_ARRIVALS = 5_000_000;
/** Largest address set with Zipf popularity (its CDF is a table). */
export const MAX_ZIPF_COUNT = 1_000_000;

const SINGLE_KEYS = [
  "name",
  "title",
  "seed",
  "duration",
  "warmup",
  "drain",
  "connections",
  "rate",
  "proto",
  "vip",
  "linger",
  "cost",
  "bytes",
  "targets",
  "persistence",
  "cache",
  "schedflags",
  "estimator",
  "backlog",
  "pcap",
] as const;
const MULTI_KEYS = ["clients", "dest", "at"] as const;
const ALL_KEYS: readonly string[] = [...SINGLE_KEYS, ...MULTI_KEYS];
const EVENT_ACTIONS = ["rate", "share", "fail", "recover", "remove", "weight", "add"] as const;
const DEST_OPTIONS = ["weight", "slots", "speed", "backlog", "uthreshold", "lthreshold"] as const;

const TIME_UNITS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "20ms", "1.5s", "2m" → milliseconds; undefined when malformed. A bare number is refused. */
export function parseTime(tok: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)$/.exec(tok);
  if (m === null) return undefined;
  return Number(m[1]) * TIME_UNITS[m[2]!]!;
}

class LineError extends Error {}

/** Per-line parsing context: the tokens and helpers that throw LineError with a clear message. */
class Line {
  private i = 1;
  constructor(
    readonly no: number,
    readonly toks: readonly string[],
  ) {}
  get key(): string {
    return this.toks[0]!;
  }
  more(): boolean {
    return this.i < this.toks.length;
  }
  peek(): string | undefined {
    return this.toks[this.i];
  }
  next(what: string): string {
    const t = this.toks[this.i];
    if (t === undefined) throw new LineError(`\`${this.key}\`: missing ${what}`);
    this.i++;
    return t;
  }
  end(): void {
    if (this.more()) throw new LineError(`\`${this.key}\`: unexpected \`${this.toks[this.i]}\``);
  }
  time(what: string, allowZero = true): number {
    const t = this.next(what);
    const v = parseTime(t);
    if (v === undefined) throw new LineError(`${what} must be a time such as 500ms, 30s or 2m, got \`${t}\``);
    if (!allowZero && v <= 0) throw new LineError(`${what} must be greater than 0, got \`${t}\``);
    return v;
  }
  int(what: string, min: number, max: number): number {
    const t = this.next(what);
    if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
      throw new LineError(`${what} must be an integer ${min}..${max}, got \`${t}\``);
    }
    return Number(t);
  }
  num(what: string, min: number, max = Number.POSITIVE_INFINITY, exclusiveMin = false): number {
    const t = this.next(what);
    const v = /^\d+(\.\d+)?(e[+-]?\d+)?$/i.test(t) ? Number(t) : Number.NaN;
    if (!Number.isFinite(v) || v < min || (exclusiveMin && v === min) || v > max) {
      const range = exclusiveMin
        ? `greater than ${min}`
        : max === Number.POSITIVE_INFINITY
          ? `>= ${min}`
          : `${min}..${max}`;
      throw new LineError(`${what} must be a number ${range}, got \`${t}\``);
    }
    return v;
  }
  name(what: string): string {
    const t = this.next(what);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(t)) {
      throw new LineError(
        `${what} must be letters, digits, '_', '.', '-' (starting with a letter or digit), got \`${t}\``,
      );
    }
    return t;
  }
  addr(what: string): number {
    const t = this.next(what);
    const a = parseIPv4(t);
    if (a === undefined) throw new LineError(`${what} must be an IPv4 address, got \`${t}\``);
    return a;
  }
  addrPort(what: string, defPort: number): { addr: number; port: number } {
    const t = this.next(what);
    const m = /^([^:]+)(?::(\d+))?$/.exec(t);
    const a = m ? parseIPv4(m[1]!) : undefined;
    const port = m?.[2] !== undefined ? Number(m[2]) : defPort;
    if (a === undefined || port > 65535 || (m?.[2] !== undefined && port < 1)) {
      throw new LineError(`${what} must be ADDRESS[:PORT] (IPv4, port 1..65535), got \`${t}\``);
    }
    return { addr: a, port };
  }
  subnet(what: string): { base: number; prefixLen: number } {
    const t = this.next(what);
    const m = /^([\d.]+)\/(\d{1,2})$/.exec(t);
    const a = m ? parseIPv4(m[1]!) : undefined;
    const len = m ? Number(m[2]) : -1;
    if (a === undefined || len < 0 || len > 32)
      throw new LineError(`${what} must be ADDRESS/PREFIX, got \`${t}\``);
    if ((a & ~prefixMask(len)) >>> 0 !== 0) {
      throw new LineError(`${what} \`${t}\` has host bits set (network address expected)`);
    }
    return { base: a, prefixLen: len };
  }
}

function parseDist(l: Line, what: string, timed: boolean): Dist {
  const value = (label: string, positive: boolean): number =>
    timed
      ? l.time(`${what} ${label}`, !positive)
      : l.num(`${what} ${label}`, 0, Number.POSITIVE_INFINITY, positive);
  const kind = l.next(`${what} distribution (const, uniform, exp, lognormal, pareto)`);
  if (timed && parseTime(kind) !== undefined) return { kind: "const", value: parseTime(kind)! };
  switch (kind) {
    case "const":
      return { kind: "const", value: value("value", false) };
    case "uniform": {
      const min = value("min", false);
      const max = value("max", false);
      if (max < min) throw new LineError(`${what} uniform: max is below min`);
      return { kind: "uniform", min, max };
    }
    case "exp":
      return { kind: "exp", mean: value("mean", true) };
    case "lognormal":
      return { kind: "lognormal", median: value("median", true), sigma: l.num(`${what} sigma`, 0, 5) };
    case "pareto":
      return { kind: "pareto", min: value("min", true), alpha: l.num(`${what} alpha`, 0, 100, true) };
    default:
      throw new LineError(
        `unknown ${what} distribution \`${kind}\` (expected const, uniform, exp, lognormal or pareto${timed ? ", or a time" : ""})`,
      );
  }
}

function parseZipf(l: Line, what: string, count: number): number {
  const z = l.num(`${what}: zipf exponent`, 0, 10);
  if (z > 0 && count > MAX_ZIPF_COUNT) {
    throw new LineError(`${what}: zipf popularity is limited to ${MAX_ZIPF_COUNT} addresses, got ${count}`);
  }
  return z;
}

function parseDestSpec(l: Line, defPort: number, defBacklog: number): DestSpec {
  const name = l.name("dest name");
  const { addr, port } = l.addrPort("dest address", defPort);
  const o: Record<string, number> = {};
  while (l.more()) {
    const opt = l.next("option");
    if (!(DEST_OPTIONS as readonly string[]).includes(opt)) {
      throw new LineError(`dest ${name}: unknown option \`${opt}\` (expected ${DEST_OPTIONS.join(", ")})`);
    }
    if (opt in o) throw new LineError(`dest ${name}: \`${opt}\` given twice`);
    switch (opt) {
      case "weight":
        o[opt] = l.int(`dest ${name}: weight`, 0, 65535);
        break;
      case "slots":
        o[opt] = l.int(`dest ${name}: slots`, 1, 1_000_000);
        break;
      case "speed":
        o[opt] = l.num(`dest ${name}: speed`, 0, 1e6, true);
        break;
      case "backlog":
        o[opt] = l.int(`dest ${name}: backlog`, 0, 10_000_000);
        break;
      default:
        o[opt] = l.int(`dest ${name}: ${opt}`, 0, 0x7fffffff);
    }
  }
  const uThreshold = o["uthreshold"] ?? 0;
  const lThreshold = o["lthreshold"] ?? 0;
  if (uThreshold !== 0 && lThreshold > uThreshold) {
    throw new LineError(`dest ${name}: lthreshold ${lThreshold} is above uthreshold ${uThreshold}`);
  }
  return {
    name,
    addr,
    port,
    weight: o["weight"] ?? DEFAULTS.weight,
    slots: o["slots"] ?? DEFAULTS.slots,
    speed: o["speed"] ?? DEFAULTS.speed,
    backlog: o["backlog"] ?? defBacklog,
    uThreshold,
    lThreshold,
    line: l.no,
  };
}

/** Split a line into tokens after removing a `#` comment; `title` keeps its text verbatim. */
function tokenize(raw: string): string[] {
  const hash = raw.indexOf("#");
  const text = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
  if (text.length === 0) return [];
  const m = /^title\s+(.*)$/.exec(text);
  if (m !== null) return ["title", m[1]!];
  return text.split(/\s+/);
}

/**
 * Parse scenario text. `file` labels errors (and, with no `name` directive, names the scenario);
 * a relative `pcap` path is resolved against `baseDir` (default: the file's directory).
 */
export function parseScenario(text: string, file: string, baseDir = dirname(resolve(file))): Scenario {
  const issues: ScenarioIssue[] = [];
  const seen = new Map<string, number>();
  const single: Record<string, Line> = {};
  const clientLines: Line[] = [];
  const destLines: Line[] = [];
  const atLines: Line[] = [];
  const rawLines = text.split(/\r?\n/);
  for (let i = 0; i < rawLines.length; i++) {
    const toks = tokenize(rawLines[i]!);
    if (toks.length === 0) continue;
    const l = new Line(i + 1, toks);
    const key = l.key;
    if (!ALL_KEYS.includes(key)) {
      const hint = ALL_KEYS.find((k) => editDistance(k, key) <= 2);
      issues.push({
        line: l.no,
        message: `unknown directive \`${key}\`${hint ? ` (did you mean \`${hint}\`?)` : ""}; expected one of: ${ALL_KEYS.join(", ")}`,
      });
      continue;
    }
    if (key === "clients") clientLines.push(l);
    else if (key === "dest") destLines.push(l);
    else if (key === "at") atLines.push(l);
    else {
      const first = seen.get(key);
      if (first !== undefined) {
        issues.push({ line: l.no, message: `duplicate \`${key}\` (first given on line ${first})` });
        continue;
      }
      seen.set(key, l.no);
      single[key] = l;
    }
  }

  // Each directive is parsed by a function that may throw LineError; the issue is recorded and
  // parsing goes on with the default, so all problems are reported together.
  function get<T>(key: string, def: T, fn: (l: Line) => T): T {
    const l = single[key];
    if (l === undefined) return def;
    try {
      const v = fn(l);
      l.end();
      return v;
    } catch (e) {
      if (!(e instanceof LineError)) throw e;
      issues.push({ line: l.no, message: e.message });
      return def;
    }
  }
  function each<T>(lines: Line[], fn: (l: Line) => T): T[] {
    const out: T[] = [];
    for (const l of lines) {
      try {
        const v = fn(l);
        l.end();
        out.push(v);
      } catch (e) {
        if (!(e instanceof LineError)) throw e;
        issues.push({ line: l.no, message: e.message });
      }
    }
    return out;
  }

  const defName = basename(file, extname(file));
  const name = get("name", defName, (l) => l.name("name"));
  const title = get("title", name, (l) => l.next("title"));
  const seed = get("seed", DEFAULTS.seed, (l) => l.int("seed", 0, 0xffffffff));
  const pcapRel = get<string | null>("pcap", null, (l) => l.next("capture file path"));
  const durationMs = get("duration", 0, (l) => l.time("duration", false));
  const warmupMs = get("warmup", DEFAULTS.warmupMs, (l) => l.time("warmup"));
  const drainMs = get("drain", DEFAULTS.drainMs, (l) => l.time("drain"));
  const maxConns = get("connections", 0, (l) => l.int("connections", 1, MAX_ARRIVALS));
  const rate = get("rate", 0, (l) => l.num("rate (new connections per second)", 0, 10_000_000, true));
  const proto = get<"tcp" | "udp">("proto", DEFAULTS.proto, (l) => {
    const p = l.next("protocol");
    if (p !== "tcp" && p !== "udp") throw new LineError(`proto must be tcp or udp, got \`${p}\``);
    return p;
  });
  const vip = get("vip", { addr: parseIPv4("10.0.0.100")!, port: 80 }, (l) => l.addrPort("vip", 80));
  const lingerMs = get("linger", DEFAULTS.lingerMs, (l) => l.time("linger"));
  const cost = get<Dist>("cost", DEFAULTS.cost, (l) => parseDist(l, "cost", true));
  const bytes = get<BytesSpec>("bytes", { kind: "per-ms", perMs: DEFAULTS.bytesPerMs }, (l) => {
    if (l.peek() === "per-ms") {
      l.next("per-ms");
      return { kind: "per-ms", perMs: l.num("bytes per-ms", 0) };
    }
    return { kind: "dist", dist: parseDist(l, "bytes", false) };
  });
  const targets = get<Targets | null>("targets", null, (l) => {
    const s = l.subnet("targets subnet");
    if (l.next("`count`") !== "count") throw new LineError("targets: expected `count N` after the subnet");
    const count = l.int("targets count", 1, 16_777_216);
    const room = s.prefixLen >= 31 ? 2 ** (32 - s.prefixLen) : 2 ** (32 - s.prefixLen) - 2;
    if (count > room)
      throw new LineError(`targets: ${count} addresses do not fit in a /${s.prefixLen} (${room})`);
    let zipf = 0;
    while (l.more()) {
      const w = l.next("option");
      if (w !== "zipf") throw new LineError(`targets: unknown option \`${w}\` (expected zipf S)`);
      zipf = parseZipf(l, "targets", count);
    }
    return { ...s, count, zipf };
  });
  const cache = get<CacheModel | null>("cache", null, (l) => {
    const size = l.int("cache size (addresses per server)", 1, 10_000_000);
    if (l.next("`miss`") !== "miss") throw new LineError("cache: expected `miss FACTOR` after the size");
    const missFactor = l.num("cache miss factor", 1, 1000);
    return { size, missFactor };
  });
  const persistence = get<Persistence | null>("persistence", null, (l) => {
    const ms = l.time("persistence timeout", false);
    if (ms < 1000 || ms > 2678400 * 1000)
      throw new LineError("persistence timeout must be 1s..2678400s (ipvsadm's range)");
    let mask = 0xffffffff;
    let expireQuiescent = false;
    while (l.more()) {
      const w = l.next("option");
      if (w === "mask") {
        const t = l.next("netmask");
        const m = /^\/?(\d{1,2})$/.exec(t);
        const v = m ? (Number(m[1]) <= 32 ? prefixMask(Number(m[1])) : undefined) : parseIPv4(t);
        if (v === undefined || maskPrefix(v) < 0) {
          throw new LineError(
            `persistence mask must be a netmask such as 255.255.255.0 or /24, got \`${t}\``,
          );
        }
        mask = v;
      } else if (w === "expire-quiescent") expireQuiescent = true;
      else throw new LineError(`persistence: unknown option \`${w}\` (expected mask, expire-quiescent)`);
    }
    return { timeoutMs: ms, mask, expireQuiescent };
  });
  const schedFlags = get<string[]>("schedflags", [], (l) => {
    const known = new Set(allSchedulerFlags());
    const list = l
      .next("flags")
      .split(",")
      .filter((s) => s.length > 0);
    for (const f of list) {
      if (!known.has(f))
        throw new LineError(`schedflags: unknown flag \`${f}\` (known: ${[...known].join(", ")})`);
    }
    return list;
  });
  const estimatorMs = get("estimator", DEFAULTS.estimatorMs, (l) => l.time("estimator interval", false));
  const backlog = get("backlog", DEFAULTS.backlog, (l) => l.int("backlog", 0, 10_000_000));

  const clients = each(clientLines, (l) => {
    const cname = l.name("client population name");
    const s = l.subnet(`clients ${cname}: subnet`);
    if (l.next("`count`") !== "count")
      throw new LineError(`clients ${cname}: expected \`count N\` after the subnet`);
    const count = l.int(`clients ${cname}: count`, 1, 16_777_216);
    const room = s.prefixLen >= 31 ? 2 ** (32 - s.prefixLen) : 2 ** (32 - s.prefixLen) - 2;
    if (count > room)
      throw new LineError(`clients ${cname}: ${count} addresses do not fit in a /${s.prefixLen} (${room})`);
    let share = 1;
    let zipf = 0;
    const given = new Set<string>();
    while (l.more()) {
      const w = l.next("option");
      if (given.has(w)) throw new LineError(`clients ${cname}: \`${w}\` given twice`);
      given.add(w);
      if (w === "share") share = l.num(`clients ${cname}: share`, 0);
      else if (w === "zipf") zipf = parseZipf(l, `clients ${cname}`, count);
      else throw new LineError(`clients ${cname}: unknown option \`${w}\` (expected share S, zipf S)`);
    }
    return { name: cname, ...s, count, share, zipf, line: l.no };
  });
  const dests = each(destLines, (l) => parseDestSpec(l, vip.port, backlog));

  const events = each(atLines, (l): ScenarioEvent => {
    const at = l.time("event time");
    const action = l.next(`event action (${EVENT_ACTIONS.join(", ")})`);
    const line = l.no;
    switch (action) {
      case "rate":
        return { at, line, kind: "rate", rate: l.num("rate", 0, 10_000_000) };
      case "share":
        return { at, line, kind: "share", pop: l.name("client population"), share: l.num("share", 0) };
      case "fail":
      case "recover": {
        const dest = l.name("dest name");
        let detectMs = 0;
        let inhibit = false;
        while (l.more()) {
          const w = l.next("option");
          if (w === "detect") detectMs = l.time("detect delay");
          else if (w === "inhibit" && action === "fail") inhibit = true;
          else {
            throw new LineError(
              `${action}: unknown option \`${w}\` (expected detect TIME${action === "fail" ? ", inhibit" : ""})`,
            );
          }
        }
        return action === "fail"
          ? { at, line, kind: "fail", dest, detectMs, inhibit }
          : { at, line, kind: "recover", dest, detectMs };
      }
      case "remove":
        return { at, line, kind: "remove", dest: l.name("dest name") };
      case "weight":
        return { at, line, kind: "weight", dest: l.name("dest name"), weight: l.int("weight", 0, 65535) };
      case "add":
        return { at, line, kind: "add", spec: parseDestSpec(l, vip.port, backlog) };
      default:
        throw new LineError(`unknown event action \`${action}\` (expected ${EVENT_ACTIONS.join(", ")})`);
    }
  });
  // Stable sort: file order among events at the same time.
  events.sort((a, b) => a.at - b.at);

  // ---- cross-checks ----
  if (pcapRel === null) {
    if (!single["rate"]) issues.push({ line: 0, message: "missing `rate` (new connections per second)" });
    if (!single["duration"] && !single["connections"]) {
      issues.push({ line: 0, message: "missing `duration` (or `connections`): the run needs an end" });
    }
    if (clientLines.length === 0)
      issues.push({ line: 0, message: "missing `clients` (at least one population)" });
  } else {
    for (const k of ["rate", "clients"] as const) {
      const l = single[k] ?? (k === "clients" ? clientLines[0] : undefined);
      if (l)
        issues.push({
          line: l.no,
          message: `\`${k}\` cannot be combined with \`pcap\` (arrivals come from the capture)`,
        });
    }
  }
  if (destLines.length === 0) issues.push({ line: 0, message: "missing `dest` (at least one real server)" });
  if (cache !== null && targets === null && pcapRel === null) {
    issues.push({
      line: single["cache"]!.no,
      message: "`cache` needs `targets` (without them every connection goes to the VIP, one address)",
    });
  }
  if (durationMs > 0 && warmupMs >= durationMs && single["warmup"]) {
    issues.push({ line: single["warmup"].no, message: "warmup must be shorter than duration" });
  }
  if (clients.length > 0 && clients.every((c) => c.share === 0)) {
    issues.push({
      line: clients[0]!.line,
      message: "clients: at least one population needs a share above 0",
    });
  }
  if (durationMs > 0 && rate > 0) {
    let peak = rate;
    for (const e of events) if (e.kind === "rate") peak = Math.max(peak, e.rate);
    const expected = (peak * durationMs) / 1000;
    if (expected > MAX_ARRIVALS && (maxConns === 0 || maxConns > MAX_ARRIVALS)) {
      issues.push({
        line: single["rate"]?.no ?? 0,
        message: `rate × duration gives about ${Math.round(expected)} connections; the limit is ${MAX_ARRIVALS}`,
      });
    }
  }
  const popNames = new Set<string>();
  for (const c of clients) {
    if (popNames.has(c.name))
      issues.push({ line: c.line, message: `duplicate client population \`${c.name}\`` });
    popNames.add(c.name);
  }
  // Dest names and addresses, and the life cycle events imply (present / failed / removed).
  type State = "up" | "failed" | "removed";
  const state = new Map<string, State>();
  const addrs = new Map<string, string>();
  const claim = (d: DestSpec): void => {
    const k = `${d.addr}:${d.port}`;
    const owner = addrs.get(k);
    if (owner !== undefined && owner !== d.name) {
      issues.push({ line: d.line, message: `dest ${d.name}: same address and port as dest ${owner}` });
    }
    addrs.set(k, d.name);
  };
  for (const d of dests) {
    if (state.has(d.name)) issues.push({ line: d.line, message: `duplicate dest name \`${d.name}\`` });
    state.set(d.name, "up");
    claim(d);
  }
  for (const e of events) {
    if (durationMs > 0 && e.at >= durationMs) {
      issues.push({
        line: e.line,
        message: `event at ${e.at} ms is not before the end of arrivals (duration ${durationMs} ms)`,
      });
    }
    switch (e.kind) {
      case "rate":
        if (pcapRel !== null)
          issues.push({ line: e.line, message: "`at ... rate` cannot be combined with `pcap`" });
        break;
      case "share":
        if (!popNames.has(e.pop))
          issues.push({ line: e.line, message: `share: no client population \`${e.pop}\`` });
        break;
      case "add": {
        const s = state.get(e.spec.name);
        if (s !== undefined && s !== "removed") {
          issues.push({ line: e.line, message: `add: dest \`${e.spec.name}\` is already in the service` });
        }
        state.set(e.spec.name, "up");
        claim(e.spec);
        break;
      }
      default: {
        const s = state.get(e.dest);
        if (s === undefined) {
          issues.push({ line: e.line, message: `${e.kind}: no dest \`${e.dest}\`` });
          break;
        }
        if (e.kind === "fail" && s !== "up")
          issues.push({ line: e.line, message: `fail: dest \`${e.dest}\` is ${s}` });
        else if (e.kind === "recover" && s !== "failed") {
          issues.push({ line: e.line, message: `recover: dest \`${e.dest}\` has not failed` });
        } else if ((e.kind === "remove" || e.kind === "weight") && s === "removed") {
          issues.push({ line: e.line, message: `${e.kind}: dest \`${e.dest}\` was removed` });
        }
        state.set(
          e.dest,
          e.kind === "fail" ? "failed" : e.kind === "recover" ? "up" : e.kind === "remove" ? "removed" : s,
        );
      }
    }
  }
  if (issues.length > 0)
    throw new ScenarioError(
      file,
      issues.sort((a, b) => a.line - b.line),
    );

  return {
    file,
    name,
    title,
    seed,
    durationMs,
    warmupMs,
    drainMs,
    maxConns,
    rate,
    proto,
    vipAddr: vip.addr,
    vipPort: vip.port,
    lingerMs,
    cost,
    bytes,
    clients,
    targets,
    persistence,
    cache,
    schedFlags,
    estimatorMs,
    dests,
    events,
    pcap: pcapRel === null ? null : resolve(baseDir, pcapRel),
  };
}

/** Read and parse a scenario file; an unreadable file is reported as a ScenarioError too. */
export function loadScenario(path: string): Scenario {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ScenarioError(path, [{ line: 0, message: `cannot read: ${err.code ?? err.message}` }]);
  }
  return parseScenario(text, path);
}

/** Levenshtein distance (for "did you mean" hints on directives). */
function editDistance(a: string, b: string): number {
  const prev = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}
