/**
 * lvsd's VRRP (docs/ha.md): the `vrrp_instance` blocks of keepalived.conf run as VrrpInstances
 * (instance.ts) against the director's links.
 *
 * - Receive: the engine hands every IP protocol 112 frame to the group or to one of our
 *   addresses to `advert()` (the engine's `vrrpSink`, inside a batch); it is checked with the
 *   codec (`parseVrrp`), dispatched by link and VRID and given to the instance. Drops that no
 *   instance can take (unknown VRID, a packet too broken to name one) are counted per link.
 * - Send: an instance's adverts are written with `emitVrrp` into the engine's transmit queue —
 *   to 224.0.0.18 on the instance's link, or routed to each unicast peer — and sent by the
 *   host's `flush` (lvsd's sendTx) when they come from the timer; inside a batch the director
 *   sends them after it.
 * - Timers: one timeout, to the earliest instance deadline (or gratuitous ARP repeat), unref'd.
 * - Ownership: the VIPs (virtual_ipaddress and virtual_ipaddress_excluded) of an instance are
 *   disowned in the engine's ownership set (src/datapath/net/owner.ts) unless it is MASTER; on
 *   becoming MASTER they are announced with gratuitous ARP at once and again after
 *   garp_master_delay (5 s, keepalived's default).
 * - Every transition is logged as `vrrp.transition` (instance, from, to, reason).
 * - `stop()` (lvsd's SIGTERM): a MASTER sends its priority-0 advert, the VIPs are disowned.
 * - Notify scripts (keepalived's vrrp_notify.c): on each transition the state's script
 *   (notify_master / notify_backup / notify_fault / notify_stop, the latter on stop) runs, then
 *   `notify` with "INSTANCE" NAME STATE PRIORITY appended; started at once, never awaited,
 *   killed after NOTIFY_TIMEOUT_MS; a failure is a `vrrp.notify_failed` warning.
 * - Tracking (keepalived's vrrp_track.c): vrrp_script results (track.ts) and the links named in
 *   track_interface (polled every TRACK_INTERFACE_POLL_MS through the host's `linkUp`) are
 *   applied to each instance: weight 0 → FAULT while down (`setTracked`), else the sum of the
 *   weights that apply (positive while up, negative while down; `reverse` flips up and down)
 *   is the priority adjustment.
 *
 * Not here yet (docs/ha.md): reload keeping state (lvsd refuses VRRP changes on SIGHUP), sync
 * groups, garp_* options, connection sync.
 */

import { readFileSync } from "node:fs";
import type { Engine } from "../../datapath/engine.js";
import type { FrameView } from "../../datapath/packet/view.js";
import {
  emitVrrp,
  parseVrrp,
  VRRP_STATUS_COUNT,
  VRRP_STATUS_NAMES,
  VRRP_TTL,
  VrrpAdvertSpec,
  VrrpStatus,
  VrrpView,
} from "../../datapath/packet/vrrp.js";
import { u32ToIp } from "../../lib/addr.js";
import { ConfigError, type VrrpInstanceSpec, type VrrpScriptSpec } from "../config/types.js";
import type { EventLog } from "../observe/log.js";
import { advertFromView, specFromAdvert, VrrpAdvert } from "./advert.js";
import {
  VRRP_STATE_NAMES,
  VrrpConfigError,
  type VrrpEvent,
  VrrpInstance,
  type VrrpInstanceConfig,
  VrrpState,
} from "./instance.js";
import { execScript, type ScriptExec, type ScriptResult } from "./script.js";
import { SCRIPT_STATUS_NAMES, ScriptStatus, VrrpScriptTracker } from "./track.js";

/** keepalived's garp_master_delay: the second round of gratuitous ARP after becoming MASTER. */
export const GARP_MASTER_DELAY_MS = 5000;
/** Notify scripts still running after this are killed (keepalived has no limit; lvsd does). */
export const NOTIFY_TIMEOUT_MS = 30_000;
/** How often track_interface links are looked at. */
export const TRACK_INTERFACE_POLL_MS = 1000;

export interface VrrpTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const REAL_TIMERS: VrrpTimers = {
  set: (fn, ms) => setTimeout(fn, ms).unref(),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface VrrpHost {
  engine: Engine;
  /** lvsd's --link names, by link id. */
  linkNames: readonly string[];
  /** Send the engine's transmit queue (lvsd's sendTx). */
  flush(): void;
  /** Monotonic milliseconds. */
  now(): number;
  log: EventLog;
  /** Wall clock for "last transition" (default Date.now). */
  wallNow?: () => number;
  /** Default: setTimeout, unref'd. */
  timers?: VrrpTimers;
  /** Runs notify and vrrp_script scripts (default: execScript, child_process). */
  exec?: ScriptExec;
  /**
   * Whether link `link` is up, for track_interface (lvsd: not closed and its last I/O did not
   * fail). Without it every link counts as up.
   */
  linkUp?: (link: number) => boolean;
}

interface Running {
  readonly spec: VrrpInstanceSpec;
  readonly inst: VrrpInstance;
  readonly link: number;
  readonly unicast: number;
  /** Every address the instance owns while MASTER. */
  readonly owned: Uint32Array;
  readonly out: VrrpAdvertSpec;
  ipId: number;
  /** When the next gratuitous ARP round is due (ms), Infinity when none. */
  garpAt: number;
  lastChange: { at: number; from: string; to: string; reason: string } | undefined;
  /** track_interface entries with their link index. */
  readonly trackLinks: { name: string; link: number; weight: number; reverse: boolean }[];
}

/**
 * track_interface's "up" for a link lvsd holds: the kernel's operstate of the interface
 * (/sys/class/net/NAME/operstate, in lvsd's network namespace) is "up" or "unknown" (TAPs and
 * some virtual devices report "unknown" while running). "down" (admin down, no carrier: a TAP
 * whose peer end is down, an AF_PACKET NIC without link), "lowerlayerdown", "dormant",
 * "notpresent" or an interface that is gone mean down, as keepalived's IFF_UP + IFF_RUNNING.
 */
export function sysfsLinkUp(ifname: string): boolean {
  try {
    const st = readFileSync(`/sys/class/net/${ifname}/operstate`, "latin1").trim();
    return st === "up" || st === "unknown";
  } catch {
    return false;
  }
}

/** One row of `lvsadm --vrrp` and of the status API. */
export interface VrrpInstanceStatus {
  name: string;
  state: string;
  priority: number;
  vrid: number;
  interface: string;
  vips: string[];
  /** The current master's address: ours while MASTER, else the last accepted advert's sender. */
  master: string;
  sent: number;
  received: number;
  /** Wall-clock ms of the last transition, and its reason. */
  lastTransitionAt?: number;
  lastReason?: string;
  drops: Record<string, number>;
}

const ZERO_MAC = new Uint8Array(6);

export class VrrpManager {
  private readonly host: VrrpHost;
  private readonly timers: VrrpTimers;
  private readonly wallNow: () => number;
  private readonly running: Running[] = [];
  private readonly view = new VrrpView();
  private readonly adv = new VrrpAdvert();
  /** Drops no instance could take, per link, by VrrpStatus. */
  readonly linkDrops: Float64Array[];
  private timer: unknown;
  private timerAt = Number.POSITIVE_INFINITY;
  private started = false;
  private readonly tracker: VrrpScriptTracker | undefined;
  private readonly exec: ScriptExec;
  /** track_interface: the last seen state of each link (true: up). */
  private readonly linkState: boolean[];
  private pollAt = Number.POSITIVE_INFINITY;

  /** Build the instances; throws ConfigError (with the file and line) for what cannot run. */
  constructor(specs: readonly VrrpInstanceSpec[], host: VrrpHost) {
    this.host = host;
    this.timers = host.timers ?? REAL_TIMERS;
    this.wallNow = host.wallNow ?? Date.now;
    this.linkDrops = host.linkNames.map(() => new Float64Array(VRRP_STATUS_COUNT));
    this.exec = host.exec ?? execScript;
    this.linkState = host.linkNames.map(() => true);
    const net = host.engine.net;
    for (const spec of specs) {
      const link = host.linkNames.indexOf(spec.interface);
      if (link < 0) {
        throw new ConfigError(
          spec.interfaceWhere,
          `vrrp_instance ${spec.name}: interface '${spec.interface}' is not one of lvsd's links (${host.linkNames.join(", ") || "none"})`,
        );
      }
      const l = net.links[link];
      const saddr = spec.unicastSrcIp ?? l?.primaryAddr() ?? 0;
      if (saddr === 0)
        throw new ConfigError(
          spec.interfaceWhere,
          `vrrp_instance ${spec.name}: link ${spec.interface} has no address`,
        );
      const cfg: VrrpInstanceConfig = {
        name: spec.name,
        vrid: spec.vrid,
        saddr,
        vips: spec.vips,
        nopreempt: spec.nopreempt,
        unicastPeers: spec.unicastPeers,
        ...(spec.priority !== undefined ? { priority: spec.priority } : {}),
        ...(spec.version !== undefined ? { version: spec.version } : {}),
        ...(spec.advertInt !== undefined ? { advertInt: spec.advertInt } : {}),
        ...(spec.state !== undefined ? { state: spec.state } : {}),
        ...(spec.preemptDelay !== undefined ? { preemptDelay: spec.preemptDelay } : {}),
        ...(spec.authPass !== undefined ? { authPass: spec.authPass } : {}),
        ...(spec.downTimerAdverts !== undefined ? { downTimerAdverts: spec.downTimerAdverts } : {}),
      };
      let r: Running;
      try {
        const inst: VrrpInstance = new VrrpInstance(cfg, {
          now: host.now,
          send: (a) => this.send(r, a),
          onEvent: (e) => this.onEvent(r, e),
        });
        r = {
          spec,
          inst,
          link,
          unicast: spec.unicastPeers.length > 0 ? 1 : 0,
          owned: Uint32Array.from([...spec.vips, ...spec.vipsExcluded]),
          out: new VrrpAdvertSpec(),
          ipId: 0,
          garpAt: Number.POSITIVE_INFINITY,
          lastChange: undefined,
          trackLinks: (spec.trackInterfaces ?? []).map((t) => {
            const tl = host.linkNames.indexOf(t.name);
            if (tl < 0)
              throw new ConfigError(
                t.where,
                `vrrp_instance ${spec.name}: track_interface '${t.name}' is not one of lvsd's links (${host.linkNames.join(", ") || "none"})`,
              );
            return { name: t.name, link: tl, weight: t.weight, reverse: t.reverse };
          }),
        };
      } catch (err) {
        if (err instanceof VrrpConfigError) throw new ConfigError(spec.where, err.message);
        throw err;
      }
      for (const w of r.inst.cfg.warnings)
        host.log.warn(
          { event: "config.warning", file: spec.where.file, line: spec.where.line, warning: w },
          `vrrp: ${spec.where.file}:${spec.where.line}: vrrp_instance ${spec.name}: ${w}`,
        );
      this.running.push(r);
    }
    const scripts = new Map<string, VrrpScriptSpec>();
    for (const r of this.running)
      for (const t of r.spec.trackScripts ?? []) scripts.set(t.script.name, t.script);
    if (scripts.size > 0)
      this.tracker = new VrrpScriptTracker(scripts.values(), {
        now: host.now,
        timers: this.timers,
        exec: this.exec,
        onChange: (name, st, res) => this.scriptChanged(name, st, res),
      });
  }

  /**
   * True when `specs` describe the running instances (SIGHUP: lvsd refuses VRRP changes on
   * reload for now, docs/ha.md). Where they were written does not count.
   */
  sameConfig(specs: readonly VrrpInstanceSpec[]): boolean {
    const strip = (xs: readonly VrrpInstanceSpec[]) =>
      JSON.stringify(xs, (k, v) => (k === "where" || k === "interfaceWhere" ? undefined : v));
    return strip(specs) === strip(this.running.map((r) => r.spec));
  }

  get size(): number {
    return this.running.length;
  }

  /** The instance named `name` (tests, status). */
  instance(name: string): VrrpInstance | undefined {
    return this.running.find((r) => r.spec.name === name)?.inst;
  }

  /** Disown every VIP, take the engine's VRRP frames, start the instances and the timer. */
  start(): void {
    if (this.started || this.running.length === 0) return;
    this.started = true;
    const own = this.host.engine.owner;
    for (const r of this.running) for (const a of r.owned) own.disown(a);
    this.host.engine.vrrpSink = this;
    this.host.engine.txq.reset();
    if (this.host.linkUp) this.pollLinks(false);
    for (const r of this.running) this.applyTracking(r);
    for (const r of this.running) r.inst.start();
    this.host.flush();
    if (this.host.linkUp && this.running.some((r) => r.trackLinks.length > 0))
      this.pollAt = this.host.now() + TRACK_INTERFACE_POLL_MS;
    this.schedule();
    this.tracker?.start();
  }

  /** Stop: every MASTER sends its priority-0 advert (sent before this returns); VIPs disowned. */
  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.tracker?.stop();
    this.pollAt = Number.POSITIVE_INFINITY;
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.host.engine.txq.reset();
    for (const r of this.running) r.inst.stop();
    this.host.flush();
    const e = this.host.engine;
    if (e.vrrpSink === this) e.vrrpSink = null;
    for (const r of this.running) for (const a of r.owned) e.owner.disown(a);
  }

  // ---- receive (the engine's VrrpSink, inside a batch) ----

  advert(v: FrameView, link: number): void {
    const view = this.view;
    // The TTL is checked below, per instance (unicast instances accept any).
    const st = parseVrrp(v, view, 1);
    // From BAD_VERSION on, the header was there: the VRID names the instance.
    const r = st === VrrpStatus.OK || st > VrrpStatus.SHORT ? this.find(link, view.vrid) : undefined;
    if (r === undefined) {
      const d = this.linkDrops[link];
      if (d !== undefined) d[st === VrrpStatus.OK ? VrrpStatus.VRID_UNKNOWN : st]!++;
      return;
    }
    if (st !== VrrpStatus.OK) {
      r.inst.drop(st);
      return;
    }
    if (r.unicast === 0 && v.ttl !== VRRP_TTL) {
      r.inst.drop(VrrpStatus.BAD_TTL);
      return;
    }
    // Adverts it sends go into the transmit queue: the director sends it after the batch.
    r.inst.receive(advertFromView(view, this.adv));
    if (r.inst.deadline() < this.timerAt) this.schedule();
  }

  private find(link: number, vrid: number): Running | undefined {
    for (const r of this.running) if (r.link === link && r.inst.cfg.vrid === vrid) return r;
    return undefined;
  }

  // ---- send ----

  private send(r: Running, a: VrrpAdvert): void {
    const e = this.host.engine;
    const txq = e.txq;
    r.ipId = (r.ipId + 1) & 0xffff || 1;
    const s = specFromAdvert(a, r.ipId, r.out);
    const j = txq.slot();
    if (j < 0) return;
    const tx = txq.batch;
    const l = e.net.links[r.link]!;
    const mcast = a.daddr >>> 28 === 0xe;
    const len = emitVrrp(tx.buf, tx.off[j]!, s, l.mac, 0, mcast ? null : ZERO_MAC, 0);
    if (len === 0) return;
    if (mcast) txq.commit(j, len, r.link);
    else e.resolver.sendRouted(j, len, a.daddr);
  }

  // ---- tracking ----

  /** Apply the tracked objects' states to one instance: faults and the priority adjustment. */
  private applyTracking(r: Running): void {
    let sum = 0;
    const apply = (key: string, up: boolean, weight: number, reverse: boolean): void => {
      const ok = reverse ? !up : up;
      if (weight === 0) r.inst.setTracked(key, ok);
      else if ((weight > 0 && ok) || (weight < 0 && !ok)) sum += weight;
    };
    const tracker = this.tracker;
    for (const t of r.spec.trackScripts ?? []) {
      const st = tracker?.status(t.script.name) ?? ScriptStatus.INIT;
      if (st === ScriptStatus.INIT) continue;
      apply(`script ${t.script.name}`, st === ScriptStatus.UP, t.weight, t.reverse);
    }
    for (const t of r.trackLinks)
      apply(`interface ${t.name}`, this.linkState[t.link] ?? true, t.weight, t.reverse);
    r.inst.setPriorityAdjustment(sum);
  }

  /** Re-apply tracking to `which` (outside a batch): adverts it causes are sent at once. */
  private retrack(which: readonly Running[]): void {
    if (!this.started || which.length === 0) return;
    this.host.engine.txq.reset();
    for (const r of which) this.applyTracking(r);
    this.host.flush();
    this.schedule();
  }

  private scriptChanged(name: string, st: ScriptStatus, res: ScriptResult): void {
    const status = SCRIPT_STATUS_NAMES[st] ?? String(st);
    this.host.log.info(
      { event: "vrrp.script", script: name, status, result: res.reason },
      `vrrp: vrrp_script ${name}: ${status} (${res.reason})`,
    );
    this.retrack(this.running.filter((r) => (r.spec.trackScripts ?? []).some((t) => t.script.name === name)));
  }

  /** Read every link's state; returns the links that changed. */
  private pollLinks(report: boolean): number[] {
    const changed: number[] = [];
    const up = this.host.linkUp;
    if (!up) return changed;
    for (let l = 0; l < this.linkState.length; l++) {
      let now: boolean;
      try {
        now = up(l);
      } catch {
        now = false;
      }
      if (now === this.linkState[l]) continue;
      this.linkState[l] = now;
      changed.push(l);
      if (report)
        this.host.log.info(
          { event: "vrrp.track_interface", link: l, interface: this.host.linkNames[l], up: now },
          `vrrp: track_interface ${this.host.linkNames[l]}: ${now ? "up" : "down"}`,
        );
    }
    return changed;
  }

  /** The link states lvsd sees now, for track_interface (tests). */
  get linksUp(): readonly boolean[] {
    return this.linkState;
  }

  /** A vrrp_script's status, runs and last result (status output, tests). */
  scriptInfo(name: string): ReturnType<VrrpScriptTracker["info"]> {
    return this.tracker?.info(name);
  }

  // ---- notify ----

  private notify(r: Running, ev: VrrpEvent & { kind: "transition" }): void {
    const n = r.spec.notify;
    if (n === undefined) return;
    let state: string;
    let script: string[] | undefined;
    if (ev.to === VrrpState.MASTER) [state, script] = ["MASTER", n.master];
    else if (ev.to === VrrpState.BACKUP) [state, script] = ["BACKUP", n.backup];
    else if (ev.to === VrrpState.FAULT) [state, script] = ["FAULT", n.fault];
    else if (ev.to === VrrpState.INIT && ev.reason === "stop") [state, script] = ["STOP", n.stop];
    else return;
    if (script) this.runNotify(r, `notify_${state.toLowerCase()}`, script);
    if (n.any)
      this.runNotify(r, "notify", [
        ...n.any,
        "INSTANCE",
        r.spec.name,
        state,
        String(r.inst.effectivePriority),
      ]);
  }

  private runNotify(r: Running, what: string, argv: readonly string[]): void {
    const log = this.host.log;
    log.info(
      { event: "vrrp.notify", instance: r.spec.name, script: what, argv: [...argv] },
      `vrrp: ${r.spec.name}: ${what} ${argv.join(" ")}`,
    );
    let p: Promise<ScriptResult>;
    try {
      p = this.exec(argv, NOTIFY_TIMEOUT_MS);
    } catch (err) {
      p = Promise.resolve({ ok: false, reason: `cannot run: ${(err as Error).message}` });
    }
    p.then(
      (res) => {
        if (res.ok) return;
        log.warn(
          {
            event: "vrrp.notify_failed",
            instance: r.spec.name,
            script: what,
            program: argv[0],
            result: res.reason,
          },
          `vrrp: ${r.spec.name}: ${what} ${argv[0]}: ${res.reason}`,
        );
      },
      () => undefined,
    );
  }

  // ---- transitions ----

  private onEvent(r: Running, ev: VrrpEvent): void {
    const log = this.host.log;
    if (ev.kind === "priority") {
      log.info(
        { event: "vrrp.priority", instance: ev.instance, from: ev.from, to: ev.to },
        `vrrp: ${ev.instance}: priority ${ev.from} -> ${ev.to}`,
      );
      return;
    }
    const from = VRRP_STATE_NAMES[ev.from] ?? String(ev.from);
    const to = VRRP_STATE_NAMES[ev.to] ?? String(ev.to);
    r.lastChange = { at: this.wallNow(), from, to, reason: ev.reason };
    const e = this.host.engine;
    if (ev.to === VrrpState.MASTER) {
      for (const a of r.owned) e.owner.own(a);
      this.announce(r);
      r.garpAt = this.host.now() + GARP_MASTER_DELAY_MS;
    } else if (ev.from === VrrpState.MASTER || ev.to === VrrpState.INIT) {
      for (const a of r.owned) e.owner.disown(a);
      r.garpAt = Number.POSITIVE_INFINITY;
    }
    log.info(
      {
        event: "vrrp.transition",
        instance: ev.instance,
        from,
        to,
        reason: ev.reason,
        ...(ev.detail !== "" ? { detail: ev.detail } : {}),
        vrid: r.inst.cfg.vrid,
        interface: r.spec.interface,
        priority: r.inst.effectivePriority,
      },
      `vrrp: ${ev.instance}: ${from} -> ${to} (${ev.reason}${ev.detail !== "" ? ` ${ev.detail}` : ""})`,
    );
    this.notify(r, ev);
  }

  /** Gratuitous ARP for the instance's addresses (into the transmit queue). */
  private announce(r: Running): void {
    for (const a of r.owned) this.host.engine.announce(a);
  }

  // ---- the timer ----

  private schedule(): void {
    if (!this.started) return;
    let at = Number.POSITIVE_INFINITY;
    for (const r of this.running) {
      const d = r.inst.deadline();
      if (d < at) at = d;
      if (r.garpAt < at) at = r.garpAt;
    }
    if (this.pollAt < at) at = this.pollAt;
    if (at === this.timerAt && this.timer !== undefined) return;
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
    this.timerAt = at;
    if (at === Number.POSITIVE_INFINITY) return;
    const ms = Math.max(0, Math.ceil(at - this.host.now()));
    this.timer = this.timers.set(() => this.run(), ms);
  }

  /** The timer: tick every instance that is due, send, schedule the next one. */
  run(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (!this.started) return;
    const now = this.host.now();
    this.host.engine.txq.reset();
    for (const r of this.running) {
      if (r.inst.deadline() <= now) r.inst.tick();
      if (r.garpAt <= now) {
        r.garpAt = Number.POSITIVE_INFINITY;
        if (r.inst.state === VrrpState.MASTER) this.announce(r);
      }
    }
    if (this.pollAt <= now) {
      this.pollAt = now + TRACK_INTERFACE_POLL_MS;
      const changed = this.pollLinks(true);
      if (changed.length > 0)
        for (const r of this.running)
          if (r.trackLinks.some((t) => changed.includes(t.link))) this.applyTracking(r);
    }
    this.host.flush();
    this.schedule();
  }

  // ---- status ----

  status(): VrrpInstanceStatus[] {
    return this.running.map((r) => {
      const i = r.inst;
      const master = i.state === VrrpState.MASTER ? i.cfg.saddr : i.masterAddress;
      const drops: Record<string, number> = {};
      i.counters.drops.forEach((n, k) => {
        if (n > 0) drops[VRRP_STATUS_NAMES[k]!] = n;
      });
      return {
        name: r.spec.name,
        state: VRRP_STATE_NAMES[i.state] ?? String(i.state),
        priority: i.effectivePriority,
        vrid: i.cfg.vrid,
        interface: r.spec.interface,
        vips: Array.from(r.owned, (a) => u32ToIp(a)),
        master: master !== 0 ? u32ToIp(master) : "-",
        sent: i.counters.advertsSent,
        received: i.counters.advertsReceived,
        ...(r.lastChange ? { lastTransitionAt: r.lastChange.at, lastReason: r.lastChange.reason } : {}),
        drops,
      };
    });
  }

  /** `lvsadm --vrrp`: a header and one line per instance. */
  statusText(): string {
    const rows = this.status();
    if (rows.length === 0) return "no vrrp_instance configured\n";
    const lines = ["Instance State Prio VRID Interface VIPs Master Sent Rcvd LastChange Reason Drops"];
    for (const s of rows) {
      const when = s.lastTransitionAt !== undefined ? new Date(s.lastTransitionAt).toISOString() : "-";
      const drops = Object.entries(s.drops)
        .map(([k, n]) => `${k}=${n}`)
        .join(",");
      lines.push(
        [
          s.name,
          s.state,
          s.priority,
          s.vrid,
          s.interface,
          s.vips.join(",") || "-",
          s.master,
          s.sent,
          s.received,
          when,
          s.lastReason ?? "-",
          drops || "-",
        ].join(" "),
      );
    }
    return `${lines.join("\n")}\n`;
  }
}
