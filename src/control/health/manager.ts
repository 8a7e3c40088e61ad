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
 * - Every transition is logged ("lvsd: health: ...") with its reason, and counted.
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

import { u32ToIp } from "../../lib/addr.js";
import { type Dest, FwdMethod, type Service, SVC_F_PERSISTENT } from "../../tables/model.js";
import {
  ControlError,
  type ServiceKey,
  type ServiceOptions,
  type ServiceTable,
  serviceKey,
} from "../../tables/services.js";
import { parseConfigFile } from "../config/parser.js";
import {
  ConfigError,
  type KeepalivedConfig,
  type RealServerConfig,
  type VirtualServerConfig,
} from "../config/types.js";
import { Checker, type CheckerClock, type ResultEvent, SYSTEM_CLOCK } from "./checker.js";
import { checkerLabel, type ProbeFn, probe as realProbe } from "./index.js";
import { type ScriptRunner, scriptRunner } from "./notify.js";
import { formatHealth, type HealthSnapshot } from "./status.js";

export interface HealthManagerOptions {
  /** Log a line (without the "lvsd: " prefix); default: stderr with the prefix. */
  log?: (msg: string) => void;
  /** The probes (tests inject fakes). */
  probe?: ProbeFn;
  clock?: CheckerClock;
  runScript?: ScriptRunner;
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

/** Counters of everything the manager did. */
export interface HealthCounters {
  probes: number;
  failures: number;
  /** Real-server transitions. */
  ups: number;
  downs: number;
  quorumLost: number;
  quorumGained: number;
  weightChanges: number;
  reloads: number;
  reloadErrors: number;
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
    s.flags === o.flags &&
    s.timeout === normalizedTimeout(o) &&
    s.netmask === o.netmask >>> 0
  );
}

export class HealthManager {
  private readonly log: (msg: string) => void;
  private readonly probeFn: ProbeFn;
  private readonly clock: CheckerClock;
  private readonly runScript: ScriptRunner;
  private vs = new Map<string, VirtualServer>();
  /** Services the configuration made or adopted, by numeric key. */
  private owned = new Map<number, ServiceKey>();
  private started = false;
  private file: string | undefined;
  private loadedAt: number | undefined;
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
    this.log = opts.log ?? ((m) => process.stderr.write(`lvsd: ${m}\n`));
    this.probeFn = opts.probe ?? realProbe;
    this.clock = opts.clock ?? SYSTEM_CLOCK;
    this.runScript = opts.runScript ?? scriptRunner(this.log);
  }

  /** The configuration file in use (for SIGHUP), if any. */
  get configFile(): string | undefined {
    return this.file;
  }

  // ---- loading ----

  /** Parse `path` and apply it; on an error nothing changes. Warnings are logged and returned. */
  loadFile(path: string): LoadResult {
    let cfg: KeepalivedConfig;
    try {
      cfg = parseConfigFile(path);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      if (this.loadedAt !== undefined) this.counters.reloadErrors++;
      return { ok: false, warnings: [], error: err.message };
    }
    for (const w of cfg.warnings) this.log(`health: warning: ${w}`);
    const summary = this.apply(cfg);
    this.file = path;
    this.log(`health: loaded ${path}: ${summary}`);
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
    let r: LoadResult;
    try {
      r = this.loadFile(this.file);
    } catch (err) {
      // SIGHUP runs this from a signal handler: report, never throw
      this.counters.reloadErrors++;
      r = { ok: false, warnings: [], error: `internal error: ${(err as Error).message}` };
    }
    if (!r.ok) this.log(`health: reload failed, keeping the running configuration: ${r.error}`);
    return r;
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
      this.log(`health: ${name}: removed from the configuration`);
    }
    // Services: delete the ones no longer configured, add or edit the others.
    const wanted = new Map<number, ServiceKey>();
    for (const vc of cfg.virtualServers) {
      for (const k of vc.keys) wanted.set(serviceKey(k.proto, k.addr, k.port), k);
    }
    for (const [id, k] of this.owned) {
      if (wanted.has(id)) continue;
      this.owned.delete(id);
      if (this.table.find(k)) this.tableOp(`delete service ${svcName(k)}`, () => this.table.deleteService(k));
    }
    for (const vc of cfg.virtualServers) for (const k of vc.keys) this.ensureService(k, vc.opts);
    this.vs = next;
    for (const vc of cfg.virtualServers) {
      const v = next.get(vc.name);
      if (v) this.syncVirtualServer(v, vc, fresh.has(v));
    }
    this.loadedAt = this.clock.now();
    return this.summary();
  }

  private ensureService(k: ServiceKey, opts: ServiceOptions): void {
    const id = serviceKey(k.proto, k.addr, k.port);
    const s = this.table.find(k);
    if (!s) {
      this.tableOp(`add service ${svcName(k)}`, () => this.table.addService(k, opts));
    } else if (!sameOptions(s, opts)) {
      this.tableOp(`edit service ${svcName(k)}`, () => this.table.editService(k, opts));
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
      this.log(
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
    return new Checker(cfg, this.probeFn, this.clock, (c, e) => {
      // a timer callback: a bug here must not take the daemon (and its data path) down
      try {
        this.onResult(rs, c, e);
      } catch (err) {
        this.log(`health: internal error handling ${e.result.reason}: ${(err as Error).stack ?? err}`);
      }
    });
  }

  private updateRealServer(rs: RealServer, rc: RealServerConfig): void {
    const pool = [...rs.checkers];
    const keep: Checker[] = [];
    for (const cc of rc.checkers) {
      const probe = this.makeChecker(rs, cc);
      const i = pool.findIndex((c) => c.fingerprint === probe.fingerprint);
      if (i >= 0) {
        keep.push(pool[i] as Checker);
        pool.splice(i, 1);
      } else {
        keep.push(probe);
        if (this.started) probe.start();
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
      this.log(`health: ${rs.vs.cfg.name} ${rs.name} ${alive ? "up" : "down"}: checkers changed by a reload`);
    }
  }

  private dropRealServer(rs: RealServer, why: string): void {
    for (const c of rs.checkers) c.stop();
    this.log(`health: ${rs.vs.cfg.name} ${rs.name} ${why}`);
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
      this.log(`health: ${v.cfg.name}: omega: down scripts run at shutdown`);
    }
  }

  private onResult(rs: RealServer, c: Checker, e: ResultEvent): void {
    this.counters.probes++;
    if (!e.result.ok) this.counters.failures++;
    if (!e.result.ok && !e.changed && c.cfg.logAllFailures) {
      const retry = e.retrying ? ` (retry ${c.retryIt} of ${c.cfg.timing.retry})` : "";
      this.log(`health: ${rs.vs.cfg.name} ${rs.name} check failed: ${e.result.reason}${retry}`);
    }
    if (e.result.ok && e.result.weight !== undefined)
      this.setDynamicWeight(rs, e.result.weight, e.result.reason);
    if (e.changed) {
      this.updateAlive(rs, e.result.reason);
    } else if (e.first && !c.up && !rs.alive) {
      // An alpha checker's first probe failed: the server stays down; say so once.
      rs.lastReason = e.result.reason;
      this.log(`health: ${rs.vs.cfg.name} ${rs.name} stays down: ${e.result.reason}`);
      if (rs.cfg.notifyDown) this.runScript(rs.cfg.notifyDown, "notify_down");
    }
  }

  private updateAlive(rs: RealServer, reason: string): void {
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
    this.log(`health: ${v.cfg.name} ${rs.name} ${alive ? "up" : "down"}: ${reason}; ${this.actionText(rs)}`);
    const script = alive ? rs.cfg.notifyUp : rs.cfg.notifyDown;
    if (script) this.runScript(script, alive ? "notify_up" : "notify_down");
    if (q) this.reportQuorum(v, q);
  }

  private setDynamicWeight(rs: RealServer, weight: number, reason: string): void {
    rs.dynamic = true;
    if (rs.weight === weight) return;
    const old = rs.weight;
    rs.weight = weight;
    this.counters.weightChanges++;
    const q = this.updateQuorum(rs.vs);
    this.reconcile(rs.vs);
    this.log(`health: ${rs.vs.cfg.name} ${rs.name} weight ${old} -> ${weight}: ${reason}`);
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
    this.log(
      `health: ${v.cfg.name} ${q} quorum: live weight ${cmp} (quorum ${quorum}, hysteresis ${hysteresis})${s}`,
    );
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
            this.tableOp(`delete ${u32ToIp(id.addr)}:${port} from ${svcName(k)}`, () =>
              this.table.deleteDest(k, id.addr, port),
            );
          }
        }
        if (!w) continue;
        const d = this.table.findDest(svc, w.addr, wantPort);
        const opts = { ...w, port: wantPort };
        if (!d) {
          this.tableOp(`add ${u32ToIp(w.addr)}:${wantPort} to ${svcName(k)}`, () =>
            this.table.addDest(k, opts),
          );
        } else if (
          d.weight !== w.weight ||
          d.fwd !== w.fwd ||
          d.uThreshold !== w.uThreshold ||
          d.lThreshold !== w.lThreshold
        ) {
          this.tableOp(`edit ${u32ToIp(w.addr)}:${wantPort} in ${svcName(k)}`, () =>
            this.table.editDest(k, opts),
          );
        }
      }
    }
    v.managed = ids;
  }

  private tableOp(what: string, fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ControlError)) throw err;
      this.log(`health: cannot ${what}: ${err.message}`);
    }
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

  private summary(): string {
    let rs = 0;
    let checks = 0;
    for (const v of this.vs.values()) {
      rs += v.rs.size;
      for (const r of v.rs.values()) checks += r.checkers.length;
    }
    const n = this.vs.size;
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
          services: v.cfg.keys.map(
            (k) => `${(k.proto === 17 ? "UDP" : "TCP").padEnd(4)} ${u32ToIp(k.addr)}:${k.port}`,
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
          realServers: [...v.rs.values()].map((rs) => ({
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
              probes: c.probes,
              failures: c.failures,
              retrying: c.retryIt > 0,
            })),
          })),
        };
      }),
    };
  }

  /** `lvsadm --health`. */
  statusText(): string {
    return formatHealth(this.snapshot());
  }

  /** `lvsadm --import FILE`: load a configuration into the running daemon. */
  importFile(path: string): { stdout: string; stderr: string; code: number } {
    const r = this.loadFile(path);
    const warn = r.warnings.map((w) => `warning: ${w}\n`).join("");
    if (!r.ok) return { stdout: "", stderr: `${warn}${r.error}\nnothing changed\n`, code: 1 };
    return { stdout: `loaded ${path}: ${r.summary}\n`, stderr: warn, code: 0 };
  }
}

function svcName(k: ServiceKey): string {
  return `${k.proto === 17 ? "UDP" : "TCP"} ${u32ToIp(k.addr)}:${k.port}`;
}
