/**
 * The health manager: lvsd's keepalived "checker" process. It applies a keepalived.conf to the
 * service table, runs every real server's checkers on their own timers, and keeps the table in
 * line with what they find, with keepalived's semantics:
 *
 * - A real server is alive while all its checkers are up (one without checkers always is).
 *   Alive: in its services with its weight (misc_dynamic may change it). Not alive: removed, or
 *   kept at weight 0 with `inhibit_on_failure`. Removal drops its connections at once
 *   (expire_nodest_conn, lvsd's default 1); weight 0 keeps them flowing. See docs/health.md.
 * - Quorum: the live weight (sum of alive real servers' weights) must stay >= quorum -
 *   hysteresis, and quorum comes back at >= quorum + hysteresis. While it is lost a configured
 *   `sorry_server` replaces the real servers (which leave, or go to weight 0 with
 *   inhibit_on_failure); when it comes back they return and the sorry server leaves.
 * - Scripts: notify_up/notify_down per real server, quorum_up/quorum_down per virtual server;
 *   `omega` runs the down scripts when lvsd stops.
 * - Every transition is logged with its reason, and counted: an event with fields (`logger`,
 *   src/control/observe/log.ts; names in docs/observability.md, "Logs") whose message is the
 *   line lvsd has always written ("health: TCP 10.0.0.1:80 192.168.10.2:80 down: ...").
 *
 * The table is changed only from timer and control callbacks, which run between two batches of
 * the data path: the data path never waits for, or sees, a check.
 *
 * Reloading (SIGHUP, `lvsadm --import`) parses first and changes nothing on an error. Otherwise
 * it changes services and dests in place: an unchanged dest is not touched (its connections
 * live on), a checker whose configuration is unchanged keeps running with its state, changed
 * ones restart. Services the configuration no longer has are deleted; services that existed
 * before the configuration named them (lvsadm -A, --restore) are adopted.
 */

import { performance } from "node:perf_hooks";
import { u32ToIp } from "../../lib/addr.js";
import { type Dest, FwdMethod, type Service, SVC_F_PERSISTENT, SVC_F_SYNPROXY } from "../../tables/model.js";
import {
  ControlError,
  type ServiceKey,
  type ServiceOptions,
  type ServiceTable,
  serviceKey,
} from "../../tables/services.js";
import { parseConfigFile } from "../config/parser.js";
import {
  type CheckerConfig,
  ConfigError,
  type KeepalivedConfig,
  type RealServerConfig,
  type VirtualServerConfig,
} from "../config/types.js";
import { type EventLog, textLog } from "../observe/log.js";
import { Checker, type CheckerClock, fingerprint, type ResultEvent, SYSTEM_CLOCK } from "./checker.js";
import { checkerLabel, type ProbeFn, probe as realProbe } from "./index.js";
import { type ScriptRunner, scriptRunner } from "./notify.js";
import { PACE_BUDGET_MS, Pacer } from "./pace.js";
import { formatHealth, type HealthCounters, type HealthSnapshot, type RealServerStatus } from "./status.js";

export interface HealthManagerOptions {
  /**
   * Structured events (lvsd passes its pino logger): `health.*` and `config.*`, see
   * docs/observability.md. Takes precedence over `log`.
   */
  logger?: EventLog;
  /** Without `logger`: each event's message as a line (without the "lvsd: " prefix); default: stderr with the prefix. */
  log?: (msg: string) => void;
  /** The probes (tests inject fakes). */
  probe?: ProbeFn;
  clock?: CheckerClock;
  runScript?: ScriptRunner;
  /**
   * Let a reload or an import whose file has no virtual_server remove every running one
   * (lvsd --config-reload-allow-empty). Off: such a file is refused, as an editor's half-written
   * or emptied file would otherwise wipe the director (docs/keepalived.md, "Reload").
   */
  allowEmptyReload?: boolean;
  /** keepalived's config id for `@ID` lines (lvsd --config-id); default the host name. */
  configId?: string;
  /**
   * Milliseconds of health-check work (probe launches, results) one event-loop turn may run
   * (pace.ts; default PACE_BUDGET_MS). Used with a clock that can defer (the system clock).
   */
  paceBudgetMs?: number;
}

export interface LoadResult {
  ok: boolean;
  /** "FILE:LINE: ..." warnings (unknown or unsupported keywords). */
  warnings: string[];
  /** Why nothing was applied. */
  error?: string;
  /** One line: what the configuration holds now. */
  summary?: string;
}

/**
 * A server of the configuration in one of its services (`HealthManager.destHealth`, read by the
 * status page and the metrics endpoint): where it is in the table, and its checkers' state.
 */
export interface DestHealth {
  /** The service, as the configuration names it. */
  readonly key: ServiceKey;
  /** The table's service, or undefined while the table has none for `key` (lvsadm -D). */
  readonly service: Service | undefined;
  /** Address and port as the table has (or would have) the dest: DR and TUN take the service's port. */
  readonly addr: number;
  readonly port: number;
  /** The table's dest, or undefined while the server is out of the table. */
  readonly dest: Dest | undefined;
  /** The keepalived virtual server's name. */
  readonly virtualServer: string;
  /** A real server: its status and checkers. */
  readonly realServer?: RealServerStatus;
  /** The sorry server: `active` while it serves (quorum lost). */
  readonly sorry?: { readonly active: boolean };
}

/** What a configuration load did to the table (the `config.loaded` event). */
export interface ConfigChanges {
  services: { added: string[]; removed: string[]; changed: string[] };
  /** `{ service: "TCP 10.0.0.1:80", dest: "192.168.10.1:80" }` */
  dests: { added: DestRef[]; removed: DestRef[]; changed: DestRef[] };
}

export interface DestRef {
  service: string;
  dest: string;
}

/** A table operation, for ConfigChanges. */
type Change =
  | { kind: "services"; op: "added" | "removed" | "changed"; service: string }
  | { kind: "dests"; op: "added" | "removed" | "changed"; service: string; dest: string };

/** "FILE:LINE: text" (the parser's warnings) -> fields of a config.warning event. */
function warningFields(w: string): { file?: string; line?: number; warning: string } {
  const m = /^(.*?):(\d+): ([\s\S]*)$/.exec(w);
  return m ? { file: m[1]!, line: Number(m[2]), warning: m[3]! } : { warning: w };
}

/** A dest's identity within a service: addr * 65536 + port (exact below 2^53). */
function destKey(addr: number, port: number): number {
  return (addr >>> 0) * 65536 + port;
}

function destName(k: number): string {
  return `${u32ToIp(Math.floor(k / 65536))}:${k % 65536}`;
}

/** A dest of a virtual server: a real or sorry server as configured. */
interface DestId {
  addr: number;
  /** The configured port (the table forces the service's port for DR and TUN). */
  port: number;
  fwd: FwdMethod;
}

/** A dest as the manager wants it in each of the virtual server's services. */
interface Want extends DestId {
  weight: number;
  uThreshold: number;
  lThreshold: number;
}

/** A checker's last probe time, as CheckerStatus has it (absent before the first). */
function probeMs(ms: number | undefined): { lastDurationMs?: number } {
  return ms === undefined ? {} : { lastDurationMs: ms };
}

/** The port a dest has in service `k`: DR and TUN dests take the service's port, as in IPVS. */
function tablePort(k: ServiceKey, d: DestId): number {
  return (d.fwd === FwdMethod.ROUTE || d.fwd === FwdMethod.TUNNEL) && !k.fwmark ? k.port : d.port;
}

class RealServer {
  readonly key: number;
  checkers: Checker[] = [];
  alive: boolean;
  /** Effective weight: the configured one, or the last one misc_dynamic asked for. */
  weight: number;
  dynamic = false;
  lastChangeAt: number | undefined;
  lastReason = "";
  ups = 0;
  downs = 0;

  constructor(
    public cfg: RealServerConfig,
    readonly vs: VirtualServer,
  ) {
    this.key = destKey(cfg.addr, cfg.port);
    this.weight = cfg.weight;
    this.alive = true;
  }

  get name(): string {
    return destName(this.key);
  }
}

class VirtualServer {
  rs = new Map<number, RealServer>();
  quorumUp = true;
  /** Dests this virtual server put in its services (real and sorry servers, current and past). */
  managed = new Map<number, DestId>();

  constructor(public cfg: VirtualServerConfig) {}

  liveWeight(): number {
    let w = 0;
    for (const rs of this.rs.values()) if (rs.alive) w += rs.weight;
    return w;
  }

  sorryActive(): boolean {
    return this.cfg.sorry !== undefined && !this.quorumUp;
  }
}

function normalizedTimeout(o: ServiceOptions): number {
  return (o.flags & SVC_F_PERSISTENT) !== 0 ? o.timeout : 0;
}

function sameOptions(s: Service, o: ServiceOptions): boolean {
  return (
    s.schedName === o.sched &&
    (s.flags & ~SVC_F_SYNPROXY) === (o.flags & ~SVC_F_SYNPROXY) &&
    ((s.flags & SVC_F_SYNPROXY) !== 0) === (o.synProxy ?? false) &&
    s.timeout === normalizedTimeout(o) &&
    s.netmask === o.netmask >>> 0
  );
}

/** A service's id in `owned`: fwmark services by their mark (negative, apart from serviceKey's). */
function svcId(k: ServiceKey): number {
  return k.fwmark ? -k.fwmark : serviceKey(k.proto, k.addr, k.port);
}

export class HealthManager {
  private readonly ev: EventLog;
  private readonly probeFn: ProbeFn;
  private readonly clock: CheckerClock;
  private readonly runScript: ScriptRunner;
  private vs = new Map<string, VirtualServer>();
  /** Services the configuration made or adopted, by numeric key. */
  private owned = new Map<number, ServiceKey>();
  private started = false;
  /** Duration (ms) of each checker's last finished probe, by its configuration object. */
  private readonly probeMs = new WeakMap<CheckerConfig, number>();
  private file: string | undefined;
  private loadedAt: number | undefined;
  private readonly allowEmptyReload: boolean;
  private readonly configId: string | undefined;
  /** Collects the table operations while a configuration is applied by loadFile/reload/import. */
  private changes: ConfigChanges | undefined;
  private applied: KeepalivedConfig | undefined;
  /** Probe launches and results waiting for their slice of the event loop (pace.ts). */
  readonly pacer: Pacer;
  readonly counters: HealthCounters = {
    probes: 0,
    failures: 0,
    ups: 0,
    downs: 0,
    quorumLost: 0,
    quorumGained: 0,
    weightChanges: 0,
    reloads: 0,
    reloadErrors: 0,
  };

  constructor(
    private readonly table: ServiceTable,
    opts: HealthManagerOptions = {},
  ) {
    this.ev = opts.logger ?? textLog(opts.log ?? ((m) => process.stderr.write(`lvsd: ${m}\n`)));
    const probe = opts.probe ?? realProbe;
    // time every probe for the metrics endpoint (lvs_health_check_duration_seconds)
    this.probeFn = (c, signal) => {
      const t0 = performance.now();
      return probe(c, signal).finally(() => this.probeMs.set(c, performance.now() - t0));
    };
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    const clock = this.clock;
    this.pacer = new Pacer(
      clock.defer ? (fn) => clock.defer?.(fn) : undefined,
      opts.paceBudgetMs ?? PACE_BUDGET_MS,
      (err) =>
        this.ev.error(
          { event: "health.internal_error", error: (err as Error).stack ?? String(err) },
          `health: internal error: ${(err as Error).stack ?? err}`,
        ),
    );
    this.runScript = opts.runScript ?? scriptRunner(this.ev);
    this.allowEmptyReload = opts.allowEmptyReload ?? false;
    this.configId = opts.configId;
  }

  /**
   * The configuration last applied (loadFile, reload, import, apply): lvsd reads its VRRP
   * instances from it rather than parse a big file twice at start.
   */
  get lastConfig(): KeepalivedConfig | undefined {
    return this.applied;
  }

  /** The configuration file in use (for SIGHUP), if any. */
  get configFile(): string | undefined {
    return this.file;
  }

  // ---- loading ----

  /** Parse `path` and apply it; on an error nothing changes. Warnings are logged and returned. */
  loadFile(path: string): LoadResult {
    return this.load(path, "load");
  }

  /**
   * loadFile for a `trigger`: lvsd's --config ("load"), SIGHUP ("reload"), lvsadm --import
   * ("import"). Logs config.warning per warning, then config.loaded or config.failed.
   */
  private load(path: string, trigger: "load" | "reload" | "import"): LoadResult {
    let cfg: KeepalivedConfig;
    try {
      cfg = parseConfigFile(path, this.configId !== undefined ? { configId: this.configId } : {});
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      if (this.loadedAt !== undefined) this.counters.reloadErrors++;
      const where = { file: err.file, ...(err.line > 0 ? { line: err.line } : {}) };
      this.ev.error(
        { event: "config.failed", config: path, trigger, ...where, error: err.message },
        trigger === "reload"
          ? `health: reload failed, keeping the running configuration: ${err.message}`
          : `health: cannot load ${path}: ${err.message}`,
      );
      return { ok: false, warnings: [], error: err.message };
    }
    if (trigger !== "load" && cfg.virtualServers.length === 0 && this.vs.size > 0 && !this.allowEmptyReload) {
      // An emptied or half-written file (an editor mid-save, a failed copy) must not wipe the director.
      if (this.loadedAt !== undefined) this.counters.reloadErrors++;
      const error = `${path} has no virtual_server while ${this.vs.size} are running: not applied, the running configuration is kept (an empty or cut-off file? lvsd --config-reload-allow-empty allows it)`;
      this.ev.error({ event: "config.failed", config: path, trigger, error }, `health: ${error}`);
      return { ok: false, warnings: cfg.warnings, error };
    }
    for (const w of cfg.warnings)
      this.ev.warn({ event: "config.warning", ...warningFields(w) }, `health: warning: ${w}`);
    const changes: ConfigChanges = {
      services: { added: [], removed: [], changed: [] },
      dests: { added: [], removed: [], changed: [] },
    };
    this.changes = changes;
    let summary: string;
    try {
      summary = this.apply(cfg);
    } finally {
      this.changes = undefined;
    }
    this.file = path;
    this.ev.info(
      {
        event: "config.loaded",
        file: path,
        trigger,
        ...this.counts(),
        services: changes.services,
        dests: changes.dests,
        warnings: cfg.warnings.length,
      },
      `health: loaded ${path}: ${summary}`,
    );
    return { ok: true, warnings: cfg.warnings, summary };
  }

  /** SIGHUP: read the configuration file again. */
  reload(): LoadResult {
    if (this.file === undefined) {
      return {
        ok: false,
        warnings: [],
        error: "no configuration file to reload (start lvsd with --config FILE, or use lvsadm --import FILE)",
      };
    }
    this.counters.reloads++;
    try {
      return this.load(this.file, "reload");
    } catch (err) {
      // SIGHUP runs this from a signal handler: report, never throw
      this.counters.reloadErrors++;
      const error = `internal error: ${(err as Error).message}`;
      this.ev.error(
        {
          event: "config.failed",
          config: this.file,
          trigger: "reload",
          error: (err as Error).stack ?? error,
        },
        `health: reload failed, keeping the running configuration: ${error}`,
      );
      return { ok: false, warnings: [], error };
    }
  }

  /** Apply a parsed configuration (see the file comment). Returns a one-line summary. */
  apply(cfg: KeepalivedConfig): string {
    const next = new Map<string, VirtualServer>();
    const fresh = new Set<VirtualServer>();
    for (const vc of cfg.virtualServers) {
      let v = this.vs.get(vc.name);
      if (!v) {
        v = new VirtualServer(vc);
        fresh.add(v);
      }
      next.set(vc.name, v);
    }
    // Virtual servers that are gone: stop their checkers (their services go below).
    for (const [name, v] of this.vs) {
      if (next.has(name)) continue;
      for (const rs of v.rs.values()) this.dropRealServer(rs, "its virtual server left the configuration");
      this.ev.info(
        { event: "health.vs.removed", service: name },
        `health: ${name}: removed from the configuration`,
      );
    }
    // Services: delete the ones no longer configured, add or edit the others.
    const wanted = new Map<number, ServiceKey>();
    for (const vc of cfg.virtualServers) {
      for (const k of vc.keys) wanted.set(svcId(k), k);
    }
    for (const [id, k] of this.owned) {
      if (wanted.has(id)) continue;
      this.owned.delete(id);
      if (this.table.find(k))
        this.tableOp(`delete service ${svcName(k)}`, () => this.table.deleteService(k), {
          kind: "services",
          op: "removed",
          service: svcName(k),
        });
    }
    for (const vc of cfg.virtualServers) for (const k of vc.keys) this.ensureService(k, vc.opts);
    this.vs = next;
    for (const vc of cfg.virtualServers) {
      const v = next.get(vc.name);
      if (v) this.syncVirtualServer(v, vc, fresh.has(v));
    }
    this.loadedAt = this.clock.now();
    this.applied = cfg;
    return this.summary();
  }

  private ensureService(k: ServiceKey, opts: ServiceOptions): void {
    const id = svcId(k);
    const s = this.table.find(k);
    if (!s) {
      this.tableOp(`add service ${svcName(k)}`, () => this.table.addService(k, opts), {
        kind: "services",
        op: "added",
        service: svcName(k),
      });
    } else if (!sameOptions(s, opts)) {
      this.tableOp(`edit service ${svcName(k)}`, () => this.table.editService(k, opts), {
        kind: "services",
        op: "changed",
        service: svcName(k),
      });
    }
    this.owned.set(id, k);
  }

  private syncVirtualServer(v: VirtualServer, vc: VirtualServerConfig, fresh: boolean): void {
    v.cfg = vc;
    const old = v.rs;
    v.rs = new Map();
    for (const rc of vc.realServers) {
      const k = destKey(rc.addr, rc.port);
      const prev = old.get(k);
      if (prev) {
        old.delete(k);
        this.updateRealServer(prev, rc);
        v.rs.set(k, prev);
      } else {
        v.rs.set(k, this.newRealServer(v, rc));
      }
    }
    for (const rs of old.values()) this.dropRealServer(rs, "removed from the configuration");
    if (!fresh) {
      // a reload may move the live weight or the thresholds across each other
      const q = this.updateQuorum(v);
      this.reconcile(v);
      if (q) this.reportQuorum(v, q);
      return;
    }
    v.quorumUp = v.liveWeight() >= vc.quorum + vc.hysteresis;
    this.reconcile(v);
    if (!v.quorumUp) {
      const sorry = vc.sorry ? `; sorry server ${u32ToIp(vc.sorry.addr)}:${vc.sorry.port} in service` : "";
      this.ev.warn(
        { event: "health.quorum.lost", ...this.quorumFields(v), atLoad: true },
        `health: ${vc.name} starts without quorum: live weight ${v.liveWeight()} < ${vc.quorum + vc.hysteresis}${sorry}`,
      );
    }
  }

  private newRealServer(v: VirtualServer, rc: RealServerConfig): RealServer {
    const rs = new RealServer(rc, v);
    rs.checkers = rc.checkers.map((c) => this.makeChecker(rs, c));
    rs.alive = rs.checkers.every((c) => c.up);
    rs.lastReason = rs.alive ? "" : "alpha: down until the first successful check";
    if (this.started) for (const c of rs.checkers) c.start();
    return rs;
  }

  private makeChecker(rs: RealServer, cfg: RealServerConfig["checkers"][number]): Checker {
    const onResult = (c: Checker, e: ResultEvent): void => {
      // a timer callback: a bug here must not take the daemon (and its data path) down
      try {
        this.onResult(rs, c, e);
      } catch (err) {
        this.ev.error(
          {
            event: "health.internal_error",
            ...this.destFields(rs),
            checker: checkerLabel(c.cfg),
            error: (err as Error).stack ?? String(err),
          },
          `health: internal error handling ${e.result.reason}: ${(err as Error).stack ?? err}`,
        );
      }
    };
    return new Checker(cfg, this.probeFn, this.clock, onResult, this.pacer);
  }

  private updateRealServer(rs: RealServer, rc: RealServerConfig): void {
    const pool = [...rs.checkers];
    const keep: Checker[] = [];
    for (const cc of rc.checkers) {
      const fp = fingerprint(cc);
      const i = pool.findIndex((c) => c.fingerprint === fp);
      if (i >= 0) {
        keep.push(pool[i] as Checker);
        pool.splice(i, 1);
      } else {
        const fresh = this.makeChecker(rs, cc);
        keep.push(fresh);
        if (this.started) fresh.start();
      }
    }
    for (const c of pool) c.stop();
    rs.checkers = keep;
    rs.cfg = rc;
    if (!rs.dynamic) rs.weight = rc.weight;
    const alive = rs.checkers.every((c) => c.up);
    if (alive !== rs.alive) {
      rs.alive = alive;
      rs.lastChangeAt = this.clock.now();
      rs.lastReason = "checkers changed by a reload";
      // the reload reconciles the table afterwards: no pool fields yet
      this.logTransition(
        rs,
        undefined,
        `health: ${rs.vs.cfg.name} ${rs.name} ${alive ? "up" : "down"}: checkers changed by a reload`,
        false,
      );
    }
  }

  private dropRealServer(rs: RealServer, why: string): void {
    for (const c of rs.checkers) c.stop();
    this.ev.info(
      { event: "health.dest.removed", ...this.destFields(rs), reason: why },
      `health: ${rs.vs.cfg.name} ${rs.name} ${why}`,
    );
    if (rs.alive && rs.cfg.notifyDown) this.runScript(rs.cfg.notifyDown, "notify_down");
  }

  // ---- running ----

  /** Start every checker (idempotent). Checkers added later by a reload start at once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const v of this.vs.values()) for (const rs of v.rs.values()) for (const c of rs.checkers) c.start();
  }

  /** Stop every checker; with `omega`, run the down scripts of what is up. */
  stop(): void {
    if (!this.started) return;
    this.started = false;
    for (const v of this.vs.values()) {
      for (const rs of v.rs.values()) for (const c of rs.checkers) c.stop();
      if (!v.cfg.omega) continue;
      for (const rs of v.rs.values()) {
        if (rs.alive && rs.cfg.notifyDown) this.runScript(rs.cfg.notifyDown, "notify_down");
      }
      if (v.quorumUp && v.cfg.quorumDown) this.runScript(v.cfg.quorumDown, "quorum_down");
      this.ev.info(
        { event: "health.omega", service: v.cfg.name },
        `health: ${v.cfg.name}: omega: down scripts run at shutdown`,
      );
    }
  }

  private onResult(rs: RealServer, c: Checker, e: ResultEvent): void {
    this.counters.probes++;
    if (!e.result.ok) this.counters.failures++;
    const checker = checkerLabel(c.cfg);
    if (!e.result.ok && !e.changed && c.cfg.logAllFailures) {
      const retry = e.retrying ? ` (retry ${c.retryIt} of ${c.cfg.timing.retry})` : "";
      this.ev.warn(
        {
          event: "health.check.failed",
          ...this.destFields(rs),
          checker,
          reason: e.result.reason,
          ...(e.retrying ? { retry: c.retryIt, retries: c.cfg.timing.retry } : {}),
        },
        `health: ${rs.vs.cfg.name} ${rs.name} check failed: ${e.result.reason}${retry}`,
      );
    }
    if (e.result.ok && e.result.weight !== undefined)
      this.setDynamicWeight(rs, e.result.weight, e.result.reason, checker);
    if (e.changed) {
      this.updateAlive(rs, e.result.reason, checker);
    } else if (e.first && !c.up && !rs.alive) {
      // An alpha checker's first probe failed: the server stays down; say so once.
      rs.lastReason = e.result.reason;
      this.ev.warn(
        {
          event: "health.dest.down",
          ...this.destFields(rs),
          checker,
          reason: e.result.reason,
          alpha: true,
          ...this.poolFields(rs),
        },
        `health: ${rs.vs.cfg.name} ${rs.name} stays down: ${e.result.reason}`,
      );
      if (rs.cfg.notifyDown) this.runScript(rs.cfg.notifyDown, "notify_down");
    }
  }

  private updateAlive(rs: RealServer, reason: string, checker?: string): void {
    const alive = rs.checkers.every((c) => c.up);
    if (!alive) rs.lastReason = reason; // the failing checker's reason explains the state
    if (alive === rs.alive) return;
    rs.alive = alive;
    rs.lastReason = reason;
    rs.lastChangeAt = this.clock.now();
    if (alive) {
      rs.ups++;
      this.counters.ups++;
    } else {
      rs.downs++;
      this.counters.downs++;
    }
    const v = rs.vs;
    const q = this.updateQuorum(v);
    this.reconcile(v);
    this.logTransition(
      rs,
      checker,
      `health: ${v.cfg.name} ${rs.name} ${alive ? "up" : "down"}: ${reason}; ${this.actionText(rs)}`,
    );
    const script = alive ? rs.cfg.notifyUp : rs.cfg.notifyDown;
    if (script) this.runScript(script, alive ? "notify_up" : "notify_down");
    if (q) this.reportQuorum(v, q);
  }

  /** health.dest.up (info) or health.dest.down (warn): `rs` just changed state. */
  private logTransition(rs: RealServer, checker: string | undefined, msg: string, pool = true): void {
    const fields = {
      event: rs.alive ? "health.dest.up" : "health.dest.down",
      ...this.destFields(rs),
      ...(checker !== undefined ? { checker } : {}),
      reason: rs.lastReason,
      ...(pool ? this.poolFields(rs) : {}),
    };
    if (rs.alive) this.ev.info(fields, msg);
    else this.ev.warn(fields, msg);
  }

  /** Who an event is about: the virtual server (as lvsadm --health names it), its services, the dest. */
  private destFields(rs: RealServer): { service: string; services: string[]; dest: string } {
    return { service: rs.vs.cfg.name, services: rs.vs.cfg.keys.map(svcName), dest: rs.name };
  }

  /** Where `rs` is in the table now: `action` as the message says it, and its weight (null: out). */
  private poolFields(rs: RealServer): { action: string; weight: number | null } {
    return { action: this.actionText(rs), weight: this.findDest(rs.vs, rs.key)?.weight ?? null };
  }

  private quorumFields(v: VirtualServer): Record<string, unknown> {
    const s = v.cfg.sorry;
    return {
      service: v.cfg.name,
      services: v.cfg.keys.map(svcName),
      liveWeight: v.liveWeight(),
      quorum: v.cfg.quorum,
      hysteresis: v.cfg.hysteresis,
      ...(s ? { sorryServer: `${u32ToIp(s.addr)}:${s.port}` } : {}),
    };
  }

  private setDynamicWeight(rs: RealServer, weight: number, reason: string, checker: string): void {
    rs.dynamic = true;
    if (rs.weight === weight) return;
    const old = rs.weight;
    rs.weight = weight;
    this.counters.weightChanges++;
    const q = this.updateQuorum(rs.vs);
    this.reconcile(rs.vs);
    this.ev.info(
      { event: "health.dest.weight", ...this.destFields(rs), checker, from: old, to: weight, reason },
      `health: ${rs.vs.cfg.name} ${rs.name} weight ${old} -> ${weight}: ${reason}`,
    );
    if (q) this.reportQuorum(rs.vs, q);
  }

  /** Quorum transition, if the live weight crossed a threshold. */
  private updateQuorum(v: VirtualServer): "lost" | "gained" | undefined {
    const live = v.liveWeight();
    const { quorum, hysteresis } = v.cfg;
    if (!v.quorumUp && live >= quorum + hysteresis) {
      v.quorumUp = true;
      this.counters.quorumGained++;
      return "gained";
    }
    if (v.quorumUp && live < quorum - hysteresis) {
      v.quorumUp = false;
      this.counters.quorumLost++;
      return "lost";
    }
    return undefined;
  }

  private reportQuorum(v: VirtualServer, q: "lost" | "gained"): void {
    const { quorum, hysteresis, sorry } = v.cfg;
    const live = v.liveWeight();
    const cmp = q === "lost" ? `${live} < ${quorum - hysteresis}` : `${live} >= ${quorum + hysteresis}`;
    const s = sorry
      ? `; sorry server ${u32ToIp(sorry.addr)}:${sorry.port} ${q === "lost" ? "in service" : "out of service"}`
      : "";
    const msg = `health: ${v.cfg.name} ${q} quorum: live weight ${cmp} (quorum ${quorum}, hysteresis ${hysteresis})${s}`;
    if (q === "lost") this.ev.warn({ event: "health.quorum.lost", ...this.quorumFields(v) }, msg);
    else this.ev.info({ event: "health.quorum.gained", ...this.quorumFields(v) }, msg);
    const script = q === "lost" ? v.cfg.quorumDown : v.cfg.quorumUp;
    if (script) this.runScript(script, q === "lost" ? "quorum_down" : "quorum_up");
  }

  // ---- the table ----

  /** The dests this virtual server wants in each of its services now. */
  private desired(v: VirtualServer): Map<number, Want> {
    const out = new Map<number, Want>();
    const sorryOn = v.sorryActive();
    for (const rs of v.rs.values()) {
      let w: number | undefined;
      if (rs.alive && !sorryOn) w = rs.weight;
      else if (rs.cfg.inhibit) w = 0;
      if (w === undefined) continue;
      const c = rs.cfg;
      out.set(rs.key, {
        addr: c.addr,
        port: c.port,
        fwd: c.fwd,
        weight: w,
        uThreshold: c.uThreshold,
        lThreshold: c.lThreshold,
      });
    }
    const s = v.cfg.sorry;
    if (s) {
      const w = sorryOn ? s.weight : s.inhibit ? 0 : undefined;
      const k = destKey(s.addr, s.port);
      const prev = out.get(k);
      if (w !== undefined && (!prev || prev.weight < w)) {
        out.set(k, { addr: s.addr, port: s.port, fwd: s.fwd, weight: w, uThreshold: 0, lThreshold: 0 });
      }
    }
    return out;
  }

  /** Every dest of `v` as configured now (real servers and the sorry server). */
  private destIds(v: VirtualServer): Map<number, DestId> {
    const out = new Map<number, DestId>();
    for (const rs of v.rs.values())
      out.set(rs.key, { addr: rs.cfg.addr, port: rs.cfg.port, fwd: rs.cfg.fwd });
    const s = v.cfg.sorry;
    if (s) {
      const k = destKey(s.addr, s.port);
      if (!out.has(k)) out.set(k, { addr: s.addr, port: s.port, fwd: s.fwd });
    }
    return out;
  }

  /** Make the table match `desired` for every service of `v`, touching only what differs. */
  private reconcile(v: VirtualServer): void {
    const want = this.desired(v);
    const ids = this.destIds(v);
    // Past dests first: one that left the configuration, or changed method, leaves the table.
    const all = new Map<number, DestId[]>();
    for (const [dk, id] of v.managed) all.set(dk, [id]);
    for (const [dk, id] of ids) all.set(dk, [...(all.get(dk) ?? []), id]);
    for (const k of v.cfg.keys) {
      const svc = this.table.find(k);
      if (!svc) continue;
      for (const [dk, versions] of all) {
        const w = want.get(dk);
        const wantPort = w ? tablePort(k, w) : -1;
        for (const id of versions) {
          const port = tablePort(k, id);
          if (port === wantPort) continue;
          if (this.table.findDest(svc, id.addr, port)) {
            this.tableOp(
              `delete ${u32ToIp(id.addr)}:${port} from ${svcName(k)}`,
              () => this.table.deleteDest(k, id.addr, port),
              { kind: "dests", op: "removed", service: svcName(k), dest: `${u32ToIp(id.addr)}:${port}` },
            );
          }
        }
        if (!w) continue;
        const d = this.table.findDest(svc, w.addr, wantPort);
        const opts = { ...w, port: wantPort };
        const ref = { service: svcName(k), dest: `${u32ToIp(w.addr)}:${wantPort}` };
        if (!d) {
          this.tableOp(`add ${ref.dest} to ${ref.service}`, () => this.table.addDest(k, opts), {
            kind: "dests",
            op: "added",
            ...ref,
          });
        } else if (
          d.weight !== w.weight ||
          d.fwd !== w.fwd ||
          d.uThreshold !== w.uThreshold ||
          d.lThreshold !== w.lThreshold
        ) {
          this.tableOp(`edit ${ref.dest} in ${ref.service}`, () => this.table.editDest(k, opts), {
            kind: "dests",
            op: "changed",
            ...ref,
          });
        }
      }
    }
    v.managed = ids;
  }

  /** Run a table operation; a refusal is logged. During a load, a done `change` is collected. */
  private tableOp(what: string, fn: () => unknown, change?: Change): void {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ControlError)) throw err;
      this.ev.error(
        { event: "health.table_error", operation: what, code: err.code, error: err.message },
        `health: cannot ${what}: ${err.message}`,
      );
      return;
    }
    if (!change || !this.changes) return;
    if (change.kind === "services") this.changes.services[change.op].push(change.service);
    else this.changes.dests[change.op].push({ service: change.service, dest: change.dest });
  }

  /** What the table holds for `rs` now, for the transition's log line. */
  private actionText(rs: RealServer): string {
    const d = this.findDest(rs.vs, rs.key);
    const sorry = rs.vs.sorryActive() ? " (quorum lost: the sorry server serves)" : "";
    if (!d) return `out of the pool${sorry}`;
    if (d.weight === 0) return `weight 0${rs.alive ? sorry : " (inhibit_on_failure)"}`;
    return `in the pool with weight ${d.weight}`;
  }

  /** `rs`'s dest (or the sorry server's) in the virtual server's first service. */
  private findDest(v: VirtualServer, dk: number): Dest | undefined {
    const k = v.cfg.keys[0];
    const id = this.destIds(v).get(dk);
    const svc = k ? this.table.find(k) : undefined;
    return svc && k && id ? this.table.findDest(svc, id.addr, tablePort(k, id)) : undefined;
  }

  // ---- status ----

  private counts(): { virtualServers: number; realServers: number; checks: number } {
    let realServers = 0;
    let checks = 0;
    for (const v of this.vs.values()) {
      realServers += v.rs.size;
      for (const r of v.rs.values()) checks += r.checkers.length;
    }
    return { virtualServers: this.vs.size, realServers, checks };
  }

  private summary(): string {
    const { virtualServers: n, realServers: rs, checks } = this.counts();
    return `${n} virtual server${n === 1 ? "" : "s"}, ${rs} real server${rs === 1 ? "" : "s"}, ${checks} check${checks === 1 ? "" : "s"}`;
  }

  snapshot(): HealthSnapshot {
    const now = this.clock.now();
    return {
      now,
      ...(this.file !== undefined ? { file: this.file } : {}),
      ...(this.loadedAt !== undefined ? { loadedAt: this.loadedAt } : {}),
      counters: { ...this.counters },
      virtualServers: [...this.vs.values()].map((v) => {
        const sorry = v.cfg.sorry;
        const sk = sorry ? destKey(sorry.addr, sorry.port) : undefined;
        return {
          name: v.cfg.name,
          services: v.cfg.keys.map((k) =>
            k.fwmark
              ? `FWM  ${k.fwmark}`
              : `${(k.proto === 17 ? "UDP" : "TCP").padEnd(4)} ${u32ToIp(k.addr)}:${k.port}`,
          ),
          quorum: v.cfg.quorum,
          hysteresis: v.cfg.hysteresis,
          quorumUp: v.quorumUp,
          liveWeight: v.liveWeight(),
          ...(sorry && sk !== undefined
            ? {
                sorry: {
                  name: destName(sk),
                  active: v.sorryActive(),
                  tableWeight: this.findDest(v, sk)?.weight,
                },
              }
            : {}),
          realServers: [...v.rs.values()].map((rs) => this.realServerStatus(v, rs)),
        };
      }),
    };
  }

  private realServerStatus(v: VirtualServer, rs: RealServer): RealServerStatus {
    return {
      name: rs.name,
      alive: rs.alive,
      weight: rs.weight,
      tableWeight: this.findDest(v, rs.key)?.weight,
      ...(rs.lastChangeAt !== undefined ? { lastChangeAt: rs.lastChangeAt } : {}),
      reason: rs.lastReason,
      ups: rs.ups,
      downs: rs.downs,
      checkers: rs.checkers.map((c) => ({
        label: checkerLabel(c.cfg),
        up: c.up,
        ...(c.lastResult ? { lastOk: c.lastResult.ok, lastReason: c.lastResult.reason } : {}),
        ...(c.lastResultAt !== undefined ? { lastAt: c.lastResultAt } : {}),
        ...(c.lastChangeAt !== undefined ? { lastChangeAt: c.lastChangeAt } : {}),
        ...probeMs(this.probeMs.get(c.cfg)),
        probes: c.probes,
        failures: c.failures,
        retrying: c.retryIt > 0,
      })),
    };
  }

  /**
   * Read-only, for the status page and the metrics endpoint (src/control/observe/status.ts,
   * metrics.ts): every real server, and the sorry server, of every virtual server, once per
   * service of that virtual server, with the address and port it has there, the table's service
   * and its Dest when the table holds them (a server that is down without inhibit_on_failure, or
   * a sorry server standing by, has no Dest), and its checkers.
   */
  destHealth(): DestHealth[] {
    const out: DestHealth[] = [];
    for (const v of this.vs.values()) {
      const realServers = [...v.rs.values()].map((rs) => [rs, this.realServerStatus(v, rs)] as const);
      for (const key of v.cfg.keys) {
        const service = this.table.find(key);
        const at = (id: DestId): { addr: number; port: number; dest: Dest | undefined } => {
          const port = tablePort(key, id);
          const dest = service ? this.table.findDest(service, id.addr, port) : undefined;
          return { addr: id.addr >>> 0, port, dest };
        };
        for (const [rs, realServer] of realServers) {
          out.push({ key, service, ...at(rs.cfg), virtualServer: v.cfg.name, realServer });
        }
        const s = v.cfg.sorry;
        if (s && !v.rs.has(destKey(s.addr, s.port))) {
          out.push({ key, service, ...at(s), virtualServer: v.cfg.name, sorry: { active: v.sorryActive() } });
        }
      }
    }
    return out;
  }

  /** `lvsadm --health`. */
  statusText(): string {
    return formatHealth(this.snapshot());
  }

  /** `lvsadm --import FILE`: load a configuration into the running daemon. */
  importFile(path: string): { stdout: string; stderr: string; code: number } {
    const r = this.load(path, "import");
    const warn = r.warnings.map((w) => `warning: ${w}\n`).join("");
    if (!r.ok) return { stdout: "", stderr: `${warn}${r.error}\nnothing changed\n`, code: 1 };
    return { stdout: `loaded ${path}: ${r.summary}\n`, stderr: warn, code: 0 };
  }
}

function svcName(k: ServiceKey): string {
  if (k.fwmark) return `FWM ${k.fwmark}`;
  return `${k.proto === 17 ? "UDP" : "TCP"} ${u32ToIp(k.addr)}:${k.port}`;
}
