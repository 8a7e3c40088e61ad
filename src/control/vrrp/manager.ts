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
 *   disowned in the engine's ownership set (src/datapath/net/owner.ts) unless it is MASTER.
 * - Gratuitous ARP (keepalived's garp_master_*): on becoming MASTER a burst of
 *   garp_master_repeat (5) rounds for every address, another after garp_master_delay (5 s;
 *   0: none), and while MASTER a burst of garp_master_refresh_repeat (1) every
 *   garp_master_refresh seconds (0: off). With global_defs' vrrp_garp_interval the ARPs of a
 *   link leave one per interval (a queue per link); otherwise back to back.
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
 * - Sync groups (sync-group.ts): members move together; group notify scripts with
 *   "GROUP" NAME STATE 0; without sync_group_tracking_weight the members' tracking weights are
 *   ignored as keepalived does (a weighted track_interface counts as weight 0, a weighted
 *   track_script is dropped), each with a warning.
 * - Reload (`reload()`, lvsd's SIGHUP; keepalived's clear_diff_vrrp/restore_vrrp_state): an
 *   instance of the same identity — interface, VRID, multicast or unicast and, for unicast, the
 *   source address — keeps its state, counters and timers' meaning with the new parameters (a
 *   MASTER sends an advert at once); new instances start; removed ones stop (a MASTER sends
 *   priority 0), run their notify_fault/notify FAULT scripts as keepalived does for a deleted
 *   instance, and their addresses stay disowned.
 *
 * Not here yet (docs/ha.md): connection sync.
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
import { GARP_DEFAULTS } from "../config/parser.js";
import {
  ConfigError,
  type VrrpGarpSpec,
  type VrrpInstanceSpec,
  type VrrpScriptSpec,
  type VrrpSyncGroupSpec,
  type VrrpTrackScript,
} from "../config/types.js";
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
import { SYNC_GROUP_STATE_NAMES, type SyncGroupChange, SyncGroupState, VrrpSyncGroup } from "./sync-group.js";
import { SCRIPT_STATUS_NAMES, ScriptStatus, VrrpScriptTracker } from "./track.js";

/** keepalived's garp_master_delay default: the second burst of gratuitous ARP after becoming MASTER. */
export const GARP_MASTER_DELAY_MS = GARP_DEFAULTS.delay * 1000;
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
  /** Told of every state change, after the log and notify scripts (lvs_sync_daemon follows it). */
  onTransition?: (instance: string, from: string, to: string) => void;
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
  /** garp_master_* (keepalived's defaults when the config has none). */
  readonly garp: VrrpGarpSpec;
  /** When the garp_master_delay burst is due (ms), Infinity when none. */
  garpAt: number;
  /** When the next garp_master_refresh burst is due (ms), Infinity when none. */
  refreshAt: number;
  lastChange: { at: number; from: string; to: string; reason: string } | undefined;
  /** track_interface entries with their link index. */
  readonly trackLinks: { name: string; link: number; weight: number; reverse: boolean }[];
  /** track_script entries in force (weighted ones dropped in a sync group without tracking weights). */
  readonly trackScripts: readonly VrrpTrackScript[];
  /** Its sync group, if any. */
  group: GroupRef | undefined;
}

interface GroupRef {
  readonly g: VrrpSyncGroup;
  readonly spec: VrrpSyncGroupSpec;
  lastChange: { at: number; from: string; to: string } | undefined;
}

/** Gratuitous ARPs waiting for vrrp_garp_interval on one link. */
interface GarpQueue {
  items: { r: Running; addr: number }[];
  /** When the next may leave (ms). */
  nextAt: number;
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
  /** Transitions to and from MASTER; priority-0 adverts sent and received. */
  becomeMaster: number;
  releaseMaster: number;
  priZeroSent: number;
  priZeroReceived: number;
  /** Wall-clock ms of the last transition, and its reason. */
  lastTransitionAt?: number;
  lastReason?: string;
  drops: Record<string, number>;
  /** Its vrrp_sync_group, if any. */
  syncGroup?: string;
}

/** One vrrp_sync_group, for `lvsadm --vrrp` and the status API. */
export interface VrrpSyncGroupStatus {
  name: string;
  state: string;
  members: string[];
  lastTransitionAt?: number;
}

const ZERO_MAC = new Uint8Array(6);

export class VrrpManager {
  private readonly host: VrrpHost;
  private readonly timers: VrrpTimers;
  private readonly wallNow: () => number;
  private running: Running[];
  private groups: GroupRef[];
  private readonly garpQueues: GarpQueue[];
  private readonly view = new VrrpView();
  private readonly adv = new VrrpAdvert();
  /** Drops no instance could take, per link, by VrrpStatus. */
  readonly linkDrops: Float64Array[];
  private timer: unknown;
  private timerAt = Number.POSITIVE_INFINITY;
  private started = false;
  private tracker: VrrpScriptTracker | undefined;
  private readonly exec: ScriptExec;
  /** track_interface: the last seen state of each link (true: up). */
  private readonly linkState: boolean[];
  private pollAt = Number.POSITIVE_INFINITY;

  /** Build the instances; throws ConfigError (with the file and line) for what cannot run. */
  constructor(
    specs: readonly VrrpInstanceSpec[],
    host: VrrpHost,
    syncGroups: readonly VrrpSyncGroupSpec[] = [],
  ) {
    this.host = host;
    this.timers = host.timers ?? REAL_TIMERS;
    this.wallNow = host.wallNow ?? Date.now;
    this.linkDrops = host.linkNames.map(() => new Float64Array(VRRP_STATUS_COUNT));
    this.exec = host.exec ?? execScript;
    this.linkState = host.linkNames.map(() => true);
    this.garpQueues = host.linkNames.map(() => ({ items: [], nextAt: 0 }));
    const built = this.build(specs, syncGroups);
    this.running = built.running;
    this.groups = built.groups;
    this.tracker = built.tracker;
  }

  /**
   * Instances, groups and the script tracker for a configuration, not started; nothing running
   * is touched (a ConfigError leaves everything as it was). Warnings are logged.
   */
  private build(
    specs: readonly VrrpInstanceSpec[],
    syncGroups: readonly VrrpSyncGroupSpec[],
  ): { running: Running[]; groups: GroupRef[]; tracker: VrrpScriptTracker | undefined } {
    const host = this.host;
    const net = host.engine.net;
    const running: Running[] = [];
    const warn = (spec: { where: { file: string; line: number } }, what: string, w: string): void =>
      host.log.warn(
        { event: "config.warning", file: spec.where.file, line: spec.where.line, warning: w },
        `vrrp: ${spec.where.file}:${spec.where.line}: ${what}: ${w}`,
      );
    const groupOf = new Map<string, VrrpSyncGroupSpec>();
    for (const g of syncGroups) for (const m of g.members) groupOf.set(m, g);
    for (const spec of specs) {
      const link = host.linkNames.indexOf(spec.interface);
      if (link < 0) {
        throw new ConfigError(
          spec.interfaceWhere,
          `vrrp_instance ${spec.name}: interface '${spec.interface}' is not one of lvsd's links (${host.linkNames.join(", ") || "none"})`,
        );
      }
      const l = net.links[link];
      // primaryAddr() is an int32 (data-path convention): an address above 127.255.255.255 is
      // negative there, and the instance's config wants the uint32.
      const saddr = spec.unicastSrcIp ?? (l?.primaryAddr() ?? 0) >>> 0;
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
      // keepalived: in a sync group without sync_group_tracking_weight, weights are ignored.
      const g = groupOf.get(spec.name);
      const noWeights = g !== undefined && !g.trackingWeight;
      const what = `vrrp_instance ${spec.name}`;
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
          garp: spec.garp ?? GARP_DEFAULTS,
          garpAt: Number.POSITIVE_INFINITY,
          refreshAt: Number.POSITIVE_INFINITY,
          lastChange: undefined,
          trackLinks: (spec.trackInterfaces ?? []).map((t) => {
            const tl = host.linkNames.indexOf(t.name);
            if (tl < 0)
              throw new ConfigError(
                t.where,
                `vrrp_instance ${spec.name}: track_interface '${t.name}' is not one of lvsd's links (${host.linkNames.join(", ") || "none"})`,
              );
            let weight = t.weight;
            if (noWeights && weight !== 0) {
              warn(
                spec,
                what,
                `track_interface ${t.name}: weight ignored in vrrp_sync_group ${g.name} (a failure is a FAULT; set sync_group_tracking_weight to keep weights)`,
              );
              weight = 0;
            }
            return { name: t.name, link: tl, weight, reverse: t.reverse };
          }),
          trackScripts: (spec.trackScripts ?? []).filter((t) => {
            if (!noWeights || t.weight === 0) return true;
            warn(
              spec,
              what,
              `track_script ${t.script.name} with a weight ignored in vrrp_sync_group ${g.name} (set sync_group_tracking_weight to keep weights)`,
            );
            return false;
          }),
          group: undefined,
        };
      } catch (err) {
        if (err instanceof VrrpConfigError) throw new ConfigError(spec.where, err.message);
        throw err;
      }
      for (const w of r.inst.cfg.warnings) warn(spec, what, w);
      running.push(r);
    }
    const groups: GroupRef[] = [];
    for (const gs of syncGroups) {
      const members = gs.members.flatMap((m) => running.filter((r) => r.spec.name === m));
      if (members.length === 0) continue;
      const ref: GroupRef = {
        g: new VrrpSyncGroup(
          gs.name,
          members.map((r) => r.inst),
          (c) => this.groupChanged(ref, c),
        ),
        spec: gs,
        lastChange: undefined,
      };
      for (const r of members) r.group = ref;
      groups.push(ref);
    }
    const scripts = new Map<string, VrrpScriptSpec>();
    for (const r of running) for (const t of r.trackScripts) scripts.set(t.script.name, t.script);
    const tracker =
      scripts.size > 0
        ? new VrrpScriptTracker(scripts.values(), {
            now: host.now,
            timers: this.timers,
            exec: this.exec,
            onChange: (name, st, res) => this.scriptChanged(name, st, res),
          })
        : undefined;
    return { running, groups, tracker };
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

  /**
   * Reload (lvsd's SIGHUP) keeping state, as keepalived's reload: see the header. Throws
   * ConfigError, with nothing changed, for a configuration that cannot run. Returns the names
   * of the instances kept, added and removed.
   */
  reload(
    specs: readonly VrrpInstanceSpec[],
    syncGroups: readonly VrrpSyncGroupSpec[] = [],
  ): { kept: string[]; added: string[]; removed: string[] } {
    const next = this.build(specs, syncGroups);
    // keepalived's vrrp_exist: interface, VRID, multicast or unicast, and the unicast source.
    const identity = (r: Running): string =>
      `${r.link}/${r.inst.cfg.vrid}/${r.unicast === 1 ? `u${r.inst.cfg.saddr >>> 0}` : "m"}`;
    const byId = new Map(this.running.map((r) => [identity(r), r]));
    const matched = new Map<Running, Running>();
    const used = new Set<Running>();
    for (const r of next.running) {
      const o = byId.get(identity(r));
      if (o !== undefined && !used.has(o)) {
        matched.set(r, o);
        used.add(o);
      }
    }
    const removed = this.running.filter((o) => !used.has(o));
    const result = {
      kept: [...matched.keys()].map((r) => r.spec.name),
      added: next.running.filter((r) => !matched.has(r)).map((r) => r.spec.name),
      removed: removed.map((o) => o.spec.name),
    };
    const oldRunning = this.running;
    const oldTracker = this.tracker;
    for (const g of this.groups) g.g.detach();
    if (!this.started) {
      this.running = next.running;
      this.groups = next.groups;
      this.tracker = next.tracker;
      return result;
    }
    const e = this.host.engine;
    e.txq.reset();
    // Removed instances: a MASTER resigns with priority 0; their addresses stay disowned.
    for (const o of removed) o.inst.stop("deleted");
    oldTracker?.stop();
    if (next.tracker !== undefined && oldTracker !== undefined) next.tracker.adoptFrom(oldTracker);
    this.running = next.running;
    this.groups = next.groups;
    this.tracker = next.tracker;
    const nowOwned = new Set<number>();
    for (const r of this.running) for (const a of r.owned) nowOwned.add(a);
    for (const o of oldRunning) for (const a of o.owned) if (!nowOwned.has(a)) e.owner.disown(a); // dropped from the config
    for (const r of this.running) if (!matched.has(r)) for (const a of r.owned) e.owner.disown(a);
    e.vrrpSink = this.running.length > 0 ? this : null;
    for (const r of this.running) this.applyTracking(r);
    for (const g of this.groups) g.g.begin();
    for (const r of this.running) {
      const o = matched.get(r);
      if (o === undefined) {
        r.inst.start();
        continue;
      }
      r.lastChange = o.lastChange;
      r.ipId = o.ipId;
      const tracked = new Set<string>([
        ...r.trackScripts.map((t) => `script ${t.script.name}`),
        ...r.trackLinks.map((t) => `interface ${t.name}`),
        ...(r.group ? [r.group.g.faultKey] : []),
      ]);
      const wasMaster = o.inst.state === VrrpState.MASTER;
      r.inst.adopt(o.inst, (k) => tracked.has(k));
      if (r.inst.state !== VrrpState.MASTER) {
        for (const a of r.owned) e.owner.disown(a);
        continue;
      }
      if (!wasMaster) continue; // became MASTER through adopt: onEvent owned and announced
      for (const a of r.owned) e.owner.own(a);
      r.garpAt = o.garpAt;
      r.refreshAt = o.refreshAt;
      // keepalived: addresses added to a MASTER are announced (a burst for all of them).
      if (r.owned.some((a) => !o.owned.includes(a))) {
        this.burst(r, r.owned, r.garp.repeat);
        r.refreshAt = r.garp.refresh > 0 ? this.host.now() + r.garp.refresh * 1000 : Number.POSITIVE_INFINITY;
      } else if (r.garp.refresh === 0) r.refreshAt = Number.POSITIVE_INFINITY;
      else if (r.refreshAt === Number.POSITIVE_INFINITY)
        r.refreshAt = this.host.now() + r.garp.refresh * 1000;
    }
    for (const g of this.groups) g.g.started();
    this.pollAt =
      this.host.linkUp && this.running.some((r) => r.trackLinks.length > 0)
        ? this.host.now() + TRACK_INTERFACE_POLL_MS
        : Number.POSITIVE_INFINITY;
    this.drainGarp();
    this.host.flush();
    this.schedule();
    this.tracker?.start();
    return result;
  }

  /** The instance named `name` (tests, status). */
  instance(name: string): VrrpInstance | undefined {
    return this.running.find((r) => r.spec.name === name)?.inst;
  }

  /**
   * Disown every VIP, take the engine's VRRP frames, start the instances and the timer. With no
   * instance it only marks the manager running, so that a reload adding some starts them.
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.running.length === 0) return;
    const own = this.host.engine.owner;
    for (const r of this.running) for (const a of r.owned) own.disown(a);
    this.host.engine.vrrpSink = this;
    this.host.engine.txq.reset();
    if (this.host.linkUp) this.pollLinks(false);
    for (const r of this.running) this.applyTracking(r);
    for (const g of this.groups) g.g.begin();
    for (const r of this.running) r.inst.start();
    for (const g of this.groups) g.g.started();
    this.drainGarp();
    this.host.flush();
    if (this.host.linkUp && this.running.some((r) => r.trackLinks.length > 0))
      this.pollAt = this.host.now() + TRACK_INTERFACE_POLL_MS;
    this.schedule();
    this.tracker?.start();
  }

  /** Whether any instance is MASTER now. */
  hasMaster(): boolean {
    return this.running.some((r) => r.inst.state === VrrpState.MASTER);
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
    for (const g of this.groups) g.g.stop();
    this.host.flush();
    for (const q of this.garpQueues) q.items.length = 0;
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
    for (const t of r.trackScripts) {
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
    for (const g of this.groups) g.g.recheck();
    this.drainGarp();
    this.host.flush();
    this.schedule();
  }

  private scriptChanged(name: string, st: ScriptStatus, res: ScriptResult): void {
    const status = SCRIPT_STATUS_NAMES[st] ?? String(st);
    this.host.log.info(
      { event: "vrrp.script", script: name, status, result: res.reason },
      `vrrp: vrrp_script ${name}: ${status} (${res.reason})`,
    );
    this.retrack(this.running.filter((r) => r.trackScripts.some((t) => t.script.name === name)));
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
    // keepalived reports a deleted instance as FAULT (unless notify_deleted, not implemented),
    // and not at all when it already was in FAULT.
    else if (ev.to === VrrpState.INIT && ev.reason === "deleted" && ev.from !== VrrpState.FAULT)
      [state, script] = ["FAULT", n.fault];
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

  /** A sync group's notify scripts (keepalived's send_group_notifies). */
  private groupNotify(ref: GroupRef, to: SyncGroupState): void {
    const n = ref.spec.notify;
    const state = SYNC_GROUP_STATE_NAMES[to] ?? String(to);
    const script =
      to === SyncGroupState.MASTER
        ? n.master
        : to === SyncGroupState.BACKUP
          ? n.backup
          : to === SyncGroupState.FAULT
            ? n.fault
            : to === SyncGroupState.STOP
              ? n.stop
              : undefined;
    const who = { kind: "group" as const, name: ref.spec.name };
    if (script) this.runNotify(who, `notify_${state.toLowerCase()}`, script);
    if (n.any) this.runNotify(who, "notify", [...n.any, "GROUP", ref.spec.name, state, "0"]);
  }

  private groupChanged(ref: GroupRef, c: SyncGroupChange): void {
    const from = SYNC_GROUP_STATE_NAMES[c.from] ?? String(c.from);
    const to = SYNC_GROUP_STATE_NAMES[c.to] ?? String(c.to);
    ref.lastChange = { at: this.wallNow(), from, to };
    this.host.log.info(
      {
        event: "vrrp.group",
        group: c.group,
        from,
        to,
        ...(c.member !== "" ? { member: c.member } : {}),
      },
      `vrrp: sync group ${c.group}: ${from} -> ${to}${c.member !== "" ? ` (${c.member})` : ""}`,
    );
    if (c.to === SyncGroupState.INIT) return;
    this.groupNotify(ref, c.to);
  }

  private runNotify(
    r: Running | { kind: "group"; name: string },
    what: string,
    argv: readonly string[],
  ): void {
    const log = this.host.log;
    const owner = "kind" in r ? { group: r.name } : { instance: r.spec.name };
    const label = "kind" in r ? `sync group ${r.name}` : r.spec.name;
    log.info(
      { event: "vrrp.notify", ...owner, script: what, argv: [...argv] },
      `vrrp: ${label}: ${what} ${argv.join(" ")}`,
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
            ...owner,
            script: what,
            program: argv[0],
            result: res.reason,
          },
          `vrrp: ${label}: ${what} ${argv[0]}: ${res.reason}`,
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
      this.becameMaster(r, r.owned);
    } else if (ev.from === VrrpState.MASTER || ev.to === VrrpState.INIT) {
      for (const a of r.owned) e.owner.disown(a);
      this.leftMaster(r);
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
    this.host.onTransition?.(ev.instance, from, to);
    if (ev.kind === "transition") r.group?.g.memberChanged(r.inst, ev);
  }

  // ---- gratuitous ARP ----

  /** On becoming MASTER (or new addresses while MASTER): a burst now, one after the delay, refresh. */
  private becameMaster(r: Running, addrs: Uint32Array): void {
    const now = this.host.now();
    this.burst(r, addrs, r.garp.repeat);
    r.garpAt = r.garp.delay > 0 ? now + r.garp.delay * 1000 : Number.POSITIVE_INFINITY;
    r.refreshAt = r.garp.refresh > 0 ? now + r.garp.refresh * 1000 : Number.POSITIVE_INFINITY;
  }

  private leftMaster(r: Running): void {
    r.garpAt = Number.POSITIVE_INFINITY;
    r.refreshAt = Number.POSITIVE_INFINITY;
    // keepalived's vrrp_remove_delayed_arp: what was still waiting is not sent.
    for (const q of this.garpQueues) q.items = q.items.filter((x) => x.r !== r);
  }

  /**
   * `rounds` gratuitous ARPs for each of `addrs`: into the transmit queue at once, or, with
   * vrrp_garp_interval, queued on the instance's link to leave one per interval.
   */
  private burst(r: Running, addrs: Uint32Array, rounds: number): void {
    const q = this.garpQueues[r.link];
    for (let i = 0; i < rounds; i++)
      for (const a of addrs) {
        if (r.garp.interval > 0 && q !== undefined) q.items.push({ r, addr: a });
        else this.host.engine.announce(a);
      }
    this.drainGarp();
  }

  /** Send what the per-link queues allow now (into the transmit queue). */
  private drainGarp(): void {
    const now = this.host.now();
    for (const q of this.garpQueues) {
      while (q.items.length > 0 && q.nextAt <= now) {
        const x = q.items.shift()!;
        this.host.engine.announce(x.addr);
        q.nextAt = now + x.r.garp.interval * 1000;
      }
    }
  }

  // ---- the timer ----

  private schedule(): void {
    if (!this.started) return;
    let at = Number.POSITIVE_INFINITY;
    for (const r of this.running) {
      const d = r.inst.deadline();
      if (d < at) at = d;
      if (r.garpAt < at) at = r.garpAt;
      if (r.refreshAt < at) at = r.refreshAt;
    }
    for (const q of this.garpQueues) if (q.items.length > 0 && q.nextAt < at) at = q.nextAt;
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
        if (r.inst.state === VrrpState.MASTER) this.burst(r, r.owned, r.garp.repeat);
      }
      if (r.refreshAt <= now) {
        r.refreshAt = Number.POSITIVE_INFINITY;
        if (r.inst.state === VrrpState.MASTER) {
          this.burst(r, r.owned, r.garp.refreshRepeat);
          r.refreshAt = now + r.garp.refresh * 1000;
        }
      }
    }
    this.drainGarp();
    if (this.pollAt <= now) {
      this.pollAt = now + TRACK_INTERFACE_POLL_MS;
      const changed = this.pollLinks(true);
      if (changed.length > 0) {
        for (const r of this.running)
          if (r.trackLinks.some((t) => changed.includes(t.link))) this.applyTracking(r);
        for (const g of this.groups) g.g.recheck();
        this.drainGarp();
      }
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
        becomeMaster: i.counters.becomeMaster,
        releaseMaster: i.counters.releaseMaster,
        priZeroSent: i.counters.priZeroSent,
        priZeroReceived: i.counters.priZeroReceived,
        ...(r.lastChange ? { lastTransitionAt: r.lastChange.at, lastReason: r.lastChange.reason } : {}),
        drops,
        ...(r.group ? { syncGroup: r.group.spec.name } : {}),
      };
    });
  }

  /** The sync groups, for `lvsadm --vrrp` and the status API. */
  groupStatus(): VrrpSyncGroupStatus[] {
    return this.groups.map((ref) => ({
      name: ref.spec.name,
      state: SYNC_GROUP_STATE_NAMES[ref.g.state] ?? String(ref.g.state),
      members: ref.g.members.map((m) => m.name),
      ...(ref.lastChange ? { lastTransitionAt: ref.lastChange.at } : {}),
    }));
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
    const groups = this.groupStatus();
    if (groups.length > 0) {
      lines.push("", "SyncGroup State Members LastChange");
      for (const g of groups)
        lines.push(
          [
            g.name,
            g.state,
            g.members.join(","),
            g.lastTransitionAt !== undefined ? new Date(g.lastTransitionAt).toISOString() : "-",
          ].join(" "),
        );
    }
    return `${lines.join("\n")}\n`;
  }
}
