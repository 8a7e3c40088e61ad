/**
 * One VRRP instance (keepalived's `vrrp_instance`): the state machine of RFC 3768 (VRRPv2) and
 * RFC 5798 (VRRPv3) with keepalived 2.2.7's choices where it differs or adds to them
 * (keepalived/vrrp/vrrp.c, vrrp_scheduler.c, vrrp_track.c). Pure logic: the clock, the sending
 * of adverts and the reporting of transitions are injected, so it runs without sockets or real
 * timers. The owner calls `tick()` when `deadline()` has passed and `receive()` for each advert
 * with this instance's VRID (the codec, src/datapath/packet/vrrp.ts, has already checked the
 * packet itself: length, version, type, TTL, checksum).
 *
 * Timers, in keepalived's microsecond arithmetic (VRRP_TIMER_SKEW, VRRP_MS_DOWN_TIMER):
 *   Skew_Time            v2: (256 − priority) / 256 s, whatever the advert interval (RFC 3768 6.1)
 *                        v3: (256 − priority) × Master_Adver_Interval / 256 (RFC 5798 6.1)
 *   Master_Down_Interval down_timer_adverts (3) × Master_Adver_Interval + Skew_Time
 * Master_Adver_Interval is the configured interval, in v3 replaced by the interval of the
 * master's adverts while backing up (RFC 5798 6.4.2).
 *
 * keepalived's semantics kept here:
 * - Start: INIT → BACKUP with the Master_Down_Timer running, also with `state MASTER` (keepalived
 *   2.x: the state is a hint; without a sync group a non-owner waits the whole
 *   Master_Down_Interval, which the captured adverts confirm). An address owner (priority 255)
 *   whose initial state is MASTER — its default — becomes MASTER at once. `state MASTER`
 *   clears `nopreempt` and `preempt_delay`; priority 255 clears `nopreempt`; `preempt_delay`
 *   with `nopreempt` is dropped (each with a warning, as keepalived's config checks).
 * - BACKUP: an advert of priority 0 sets the timer to Skew_Time; an advert with priority ≥ ours
 *   (or any advert under `nopreempt`, or while `preempt_delay` runs) restarts the
 *   Master_Down_Timer; a lower-priority advert is ignored, so the timer runs out and the higher
 *   backup preempts. An equal priority never preempts from BACKUP: the address tie-break
 *   (RFC 5798 6.4.3) is for two MASTERs.
 * - `preempt_delay`: the first lower-priority advert starts the delay; adverts are accepted until
 *   it has passed; an advert of priority ≥ ours cancels it.
 * - MASTER: an advert of priority 0 is answered with an advert at once; a lower priority, or an
 *   equal one from a lower address, too ("forcing new election"); a higher priority, or an equal
 *   one from a higher address, sends us to BACKUP. Two address owners: ours drops to 254.
 * - Priority from tracking (track_script/track_interface weights): effective = base + weights,
 *   clamped to 1..254; an owner's never changes. In BACKUP the running timer moves by the
 *   change in Skew_Time.
 * - FAULT while any tracked object is down (track_interface, a weight-0 track_script). A MASTER
 *   sends priority 0 on the way (keepalived sends it twice; once is enough). When the last one
 *   comes back: BACKUP with a fresh Master_Down_Timer (an owner: MASTER at once).
 * - `stop()` (SIGTERM): a MASTER sends one advert with priority 0, so the backup takes over
 *   after Skew_Time instead of Master_Down_Interval.
 * - Sync groups (sync-group.ts): with a gate set (`setSyncGate`), a BACKUP whose
 *   Master_Down_Timer runs out asks it first; refused, it stays BACKUP "wanting MASTER" with a
 *   fresh timer (keepalived's wantstate, vrrp_sync_can_goto_master) until an advert it accepts
 *   clears that. The group moves members with `syncMaster()` / `syncBackup()`, and puts them in
 *   FAULT through `setTracked` with its own key.
 * - Reload (`adopt`): the state, counters and last master of the running instance carry over;
 *   a MASTER sends an advert at once, a BACKUP restarts its Master_Down_Timer.
 * Not here yet: unicast checksum compatibility, `lower_prio_no_advert`,
 * `higher_prio_send_advert`, `skip_check_adv_addr`, AH authentication, IPv6 (docs/ha.md).
 */
import {
  VRRP_AUTH_LEN,
  VRRP_AUTH_NONE,
  VRRP_AUTH_PASS,
  VRRP_GROUP,
  VRRP_MAX_ADDRS,
  VRRP_PRIO_DFL,
  VRRP_PRIO_OWNER,
  VRRP_PRIO_STOP,
  VRRP_STATUS_COUNT,
  VRRP_TTL,
  VRRP_V3_MAX_INTERVAL,
  VRRP_VERSION_2,
  VRRP_VERSION_3,
  VrrpStatus,
  vrrpAuthPass,
} from "../../datapath/packet/vrrp.js";
import { toU32, u32ToIp } from "../../lib/addr.js";
import { VrrpAdvert } from "./advert.js";

export const VrrpState = { INIT: 0, BACKUP: 1, MASTER: 2, FAULT: 3 } as const;
export type VrrpState = (typeof VrrpState)[keyof typeof VrrpState];
export const VRRP_STATE_NAMES: readonly string[] = ["INIT", "BACKUP", "MASTER", "FAULT"];

/** Why a transition happened (for logs and, later, notify scripts). */
export type VrrpReason =
  /** INIT → BACKUP (or FAULT when a tracked object is already down). */
  | "start"
  /** INIT or FAULT → MASTER at once: priority 255 with initial state MASTER. */
  | "address_owner"
  /** BACKUP → MASTER: the Master_Down_Timer ran out (master silent, resigned, or lower). */
  | "master_down"
  /** MASTER → BACKUP: an advert with a higher priority. */
  | "higher_priority"
  /** MASTER → BACKUP: an advert with our priority from a higher primary address. */
  | "higher_address"
  /** → FAULT: a tracked object went down (`detail` names it). */
  | "fault"
  /** FAULT → BACKUP (an owner: MASTER): every tracked object is up again (`detail`: the last one). */
  | "fault_cleared"
  /** → INIT: stopped. */
  | "stop"
  /** → INIT: the instance left the configuration on reload. */
  | "deleted"
  /** BACKUP → MASTER or MASTER → BACKUP: its sync group moved (`detail`: the group). */
  | "sync_group"
  /** FAULT → BACKUP (an owner: MASTER) on reload: what it was down for is no longer tracked. */
  | "reload";

export interface VrrpTransition {
  kind: "transition";
  instance: string;
  from: VrrpState;
  to: VrrpState;
  reason: VrrpReason;
  /** The tracked object for fault / fault_cleared, the advert's sender for higher_*, else "". */
  detail: string;
  /** Clock time (ms). */
  at: number;
}

export interface VrrpPriorityChange {
  kind: "priority";
  instance: string;
  from: number;
  to: number;
  at: number;
}

export type VrrpEvent = VrrpTransition | VrrpPriorityChange;

/** keepalived's `vrrp_instance` keywords that the state machine uses. */
export interface VrrpInstanceConfig {
  name: string;
  /** virtual_router_id, 1..255. */
  vrid: number;
  /** 1..255; default 255 with `state MASTER`, else 100 (keepalived). */
  priority?: number;
  /** vrrp_version, 2 (default) or 3. */
  version?: 2 | 3;
  /** advert_int in seconds (default 1): v2 rounded to whole seconds (1..255), v3 to 10 ms (≤ 40.95 s). */
  advertInt?: number;
  /** Initial state hint. Default: MASTER for priority 255, else BACKUP. */
  state?: "MASTER" | "BACKUP";
  nopreempt?: boolean;
  /** preempt_delay in seconds (0..1000). */
  preemptDelay?: number;
  /** The primary address adverts are sent from (the interface's, or unicast_src_ip). */
  saddr: number | string;
  /** virtual_ipaddress. */
  vips: readonly (number | string)[];
  /** v2 `authentication { auth_type PASS auth_pass ... }`; ignored (with a warning) for v3. */
  authPass?: string;
  /** unicast_peer: adverts go to each instead of 224.0.0.18. */
  unicastPeers?: readonly (number | string)[];
  /** down_timer_adverts (keepalived 2.2), 1..100, default 3. */
  downTimerAdverts?: number;
}

/** A configuration lvsd cannot run. `code` is stable. */
export class VrrpConfigError extends Error {
  readonly code = "EVRRPCONFIG";
  constructor(instance: string, message: string) {
    super(`vrrp_instance ${instance}: ${message}`);
    this.name = "VrrpConfigError";
  }
}

/** The configuration after keepalived's checks and defaults. */
export interface ResolvedVrrpConfig {
  name: string;
  vrid: number;
  priority: number;
  version: 2 | 3;
  /** Centiseconds (v2: a multiple of 100). */
  advertIntCs: number;
  initialMaster: boolean;
  nopreempt: boolean;
  /** Milliseconds. */
  preemptDelayMs: number;
  saddr: number;
  vips: Uint32Array;
  authType: number;
  /** 8 bytes, keepalived's zero-padded password. */
  authData: Uint8Array;
  unicastPeers: Uint32Array;
  downTimerAdverts: number;
  /** What keepalived would log as configuration errors and we also corrected. */
  warnings: string[];
}

/** Apply keepalived's defaults and corrections (vrrp_complete_instance); throws VrrpConfigError. */
export function resolveVrrpConfig(c: VrrpInstanceConfig): ResolvedVrrpConfig {
  const name = c.name;
  const warnings: string[] = [];
  const fail = (m: string): never => {
    throw new VrrpConfigError(name, m);
  };
  const addr = (a: number | string, what: string): number => {
    try {
      return toU32(a);
    } catch {
      return fail(`invalid ${what} ${String(a)}`);
    }
  };
  if (!Number.isInteger(c.vrid) || c.vrid < 1 || c.vrid > 255)
    fail(`virtual_router_id ${c.vrid} not in 1..255`);
  const version = c.version ?? VRRP_VERSION_2;
  if (version !== VRRP_VERSION_2 && version !== VRRP_VERSION_3)
    fail(`vrrp_version ${String(version)} not 2 or 3`);
  let initialMaster: boolean;
  let priority: number;
  if (c.priority === undefined) {
    priority = c.state === "MASTER" ? VRRP_PRIO_OWNER : VRRP_PRIO_DFL;
  } else {
    if (!Number.isInteger(c.priority) || c.priority < 1 || c.priority > 255) {
      fail(`priority ${c.priority} not in 1..255`);
    }
    priority = c.priority;
  }
  if (c.state === undefined) initialMaster = priority === VRRP_PRIO_OWNER;
  else initialMaster = c.state === "MASTER";

  // advert_int: keepalived reads microseconds, then rounds per version.
  const advertInt = c.advertInt ?? 1;
  if (!(advertInt > 0) || !Number.isFinite(advertInt)) fail(`advert_int ${advertInt} must be > 0`);
  let cs: number;
  if (version === VRRP_VERSION_2) {
    let s = Math.round(advertInt);
    if (advertInt >= 256) {
      warnings.push(`VRRPv2 advertisement interval ${advertInt}s is out of range, setting to 255s`);
      s = 255;
    } else if (s !== advertInt) {
      if (s === 0) s = 1;
      warnings.push(`VRRPv2 advertisement interval ${advertInt}s must be an integer, rounded to ${s}s`);
    }
    cs = s * 100;
  } else {
    cs = Math.round(advertInt * 100);
    if (cs > VRRP_V3_MAX_INTERVAL) {
      warnings.push(`VRRPv3 advertisement interval ${advertInt}s is out of range, setting to 40.95s`);
      cs = VRRP_V3_MAX_INTERVAL;
    } else if (cs !== advertInt * 100) {
      if (cs === 0) cs = 1;
      warnings.push(`VRRPv3 advertisement interval ${advertInt}s must be in units of 10ms, rounded`);
    }
  }

  const saddr = addr(c.saddr, "source address");
  if (c.vips.length > VRRP_MAX_ADDRS) fail(`more than ${VRRP_MAX_ADDRS} virtual addresses`);
  const vips = Uint32Array.from(c.vips, (a) => addr(a, "virtual_ipaddress"));
  if (vips.length === 0) {
    if (version === VRRP_VERSION_3) fail("no virtual_ipaddress; VRRPv3 needs at least one");
    warnings.push("no virtual_ipaddress; at least one is sensible");
  }
  const unicastPeers = Uint32Array.from(c.unicastPeers ?? [], (a) => addr(a, "unicast_peer"));

  let authType = VRRP_AUTH_NONE;
  const authData = new Uint8Array(VRRP_AUTH_LEN);
  if (c.authPass !== undefined) {
    if (version === VRRP_VERSION_3) {
      warnings.push("VRRP version 3 does not support authentication, ignoring");
    } else if (c.authPass === "") {
      warnings.push("authentication specified but no password given, ignoring");
    } else {
      if (vrrpAuthPass(c.authPass, authData, 0) < new TextEncoder().encode(c.authPass).length) {
        warnings.push(`truncating auth_pass to ${VRRP_AUTH_LEN} characters`);
      }
      authType = VRRP_AUTH_PASS;
    }
  }

  let nopreempt = c.nopreempt ?? false;
  let preemptDelayMs = Math.round((c.preemptDelay ?? 0) * 1000);
  if (!(preemptDelayMs >= 0 && preemptDelayMs <= 1_000_000))
    fail(`preempt_delay ${c.preemptDelay} not in 0..1000`);
  if (priority === VRRP_PRIO_OWNER && nopreempt) {
    warnings.push("nopreempt is incompatible with priority 255, resetting nopreempt");
    nopreempt = false;
  }
  if (initialMaster) {
    if (nopreempt) {
      warnings.push("nopreempt will not work with initial state MASTER, clearing");
      nopreempt = false;
    }
    if (preemptDelayMs > 0) {
      warnings.push("preempt delay will not work with initial state MASTER, clearing");
      preemptDelayMs = 0;
    }
  }
  if (preemptDelayMs > 0 && nopreempt) {
    warnings.push("preempt_delay is incompatible with nopreempt mode, resetting");
    preemptDelayMs = 0;
  }
  const downTimerAdverts = c.downTimerAdverts ?? 3;
  if (!Number.isInteger(downTimerAdverts) || downTimerAdverts < 1 || downTimerAdverts > 100) {
    fail(`down_timer_adverts ${downTimerAdverts} not in 1..100`);
  }
  return {
    name,
    vrid: c.vrid,
    priority,
    version,
    advertIntCs: cs,
    initialMaster,
    nopreempt,
    preemptDelayMs,
    saddr,
    vips,
    authType,
    authData,
    unicastPeers,
    downTimerAdverts,
    warnings,
  };
}

/**
 * Skew_Time in microseconds, as keepalived's VRRP_TIMER_SKEW computes it: v2
 * (256 − priority) × 10^6 / 256, independent of the interval (RFC 3768 6.1); v3
 * (256 − priority) × Master_Adver_Interval / 256, as (256 − p) × cs × 625 / 16 (RFC 5798 6.1).
 */
export function skewTimeUs(version: number, priority: number, masterAdverIntCs: number): number {
  const p = 256 - priority;
  if (version === VRRP_VERSION_3) return Math.floor((p * masterAdverIntCs * 625) / 16);
  return Math.floor((p * 1_000_000) / 256);
}

/** Master_Down_Interval in microseconds: down_timer_adverts × Master_Adver_Interval + Skew_Time. */
export function masterDownIntervalUs(
  version: number,
  priority: number,
  masterAdverIntCs: number,
  downTimerAdverts = 3,
): number {
  return downTimerAdverts * masterAdverIntCs * 10_000 + skewTimeUs(version, priority, masterAdverIntCs);
}

export interface VrrpDeps {
  /** Milliseconds, monotonic. */
  now(): number;
  /**
   * Send this advert (to 224.0.0.18 or, with unicast peers, once per peer: `a.daddr`). The
   * object is reused: copy what must outlive the call.
   */
  send(a: VrrpAdvert): void;
  /** Transitions and priority changes, after they took effect. */
  onEvent?(e: VrrpEvent): void;
}

/** Counters in keepalived's vrrp stats spirit; `drops` is indexed by VrrpStatus. */
export class VrrpCounters {
  advertsSent = 0;
  advertsReceived = 0;
  priZeroSent = 0;
  priZeroReceived = 0;
  becomeMaster = 0;
  releaseMaster = 0;
  readonly drops = new Float64Array(VRRP_STATUS_COUNT);
}

export class VrrpInstance {
  readonly cfg: ResolvedVrrpConfig;
  readonly counters = new VrrpCounters();
  private readonly deps: VrrpDeps;
  private st: VrrpState = VrrpState.INIT;
  private basePriority: number;
  private effPriority: number;
  private adjustment = 0;
  /** Centiseconds: the configured interval, in v3 replaced by the master's while backing up. */
  private masterAdverIntCs: number;
  /** Deadline (ms): MASTER the next advert, BACKUP the master-down expiry, else Infinity. */
  private sands = Number.POSITIVE_INFINITY;
  /** When preempt_delay ends (ms), 0 when not running. */
  private preemptTime = 0;
  private readonly faults = new Set<string>();
  private readonly out = new VrrpAdvert();
  private lastMaster = 0;
  private lastMasterPriority = 0;
  /** The timer ran out but the sync group held us in BACKUP (keepalived's wantstate MASTER). */
  private held = false;
  private gate: (() => boolean) | undefined;

  constructor(config: VrrpInstanceConfig | ResolvedVrrpConfig, deps: VrrpDeps) {
    this.cfg = "advertIntCs" in config ? config : resolveVrrpConfig(config);
    this.deps = deps;
    this.basePriority = this.cfg.priority;
    this.effPriority = this.cfg.priority;
    this.masterAdverIntCs = this.cfg.advertIntCs;
    const o = this.out;
    o.version = this.cfg.version;
    o.vrid = this.cfg.vrid;
    o.intervalCs = this.cfg.advertIntCs;
    o.authType = this.cfg.version === VRRP_VERSION_2 ? this.cfg.authType : -1;
    o.authData.set(this.cfg.authData);
    o.count = this.cfg.vips.length;
    o.addrs.set(this.cfg.vips);
    o.saddr = this.cfg.saddr;
    o.ttl = VRRP_TTL;
  }

  get name(): string {
    return this.cfg.name;
  }

  get state(): VrrpState {
    return this.st;
  }

  /** The priority sent in adverts (base + tracking adjustments, clamped). */
  get effectivePriority(): number {
    return this.effPriority;
  }

  /** The primary address of the last master whose advert we accepted (0 if none). */
  get masterAddress(): number {
    return this.lastMaster;
  }

  get masterPriority(): number {
    return this.lastMasterPriority;
  }

  /** Objects (interfaces, scripts) currently down, as given to `setTracked`. */
  get faultsDown(): readonly string[] {
    return [...this.faults];
  }

  /** MASTER, or BACKUP held back by its sync group after its timer ran out. */
  get wantsMaster(): boolean {
    return this.st === VrrpState.MASTER || (this.st === VrrpState.BACKUP && this.held);
  }

  /** Sync groups: asked before the Master_Down_Timer makes this instance MASTER. */
  setSyncGate(gate: (() => boolean) | undefined): void {
    this.gate = gate;
  }

  /** When `tick()` must next run (ms), Infinity when no timer runs (INIT, FAULT). */
  deadline(): number {
    return this.sands;
  }

  /** Skew_Time now (ms). */
  skewMs(): number {
    return skewTimeUs(this.cfg.version, this.effPriority, this.masterAdverIntCs) / 1000;
  }

  /** Master_Down_Interval now (ms). */
  masterDownMs(): number {
    return (
      masterDownIntervalUs(
        this.cfg.version,
        this.effPriority,
        this.masterAdverIntCs,
        this.cfg.downTimerAdverts,
      ) / 1000
    );
  }

  private advertIntMs(): number {
    return this.cfg.advertIntCs * 10;
  }

  private owner(): boolean {
    return this.basePriority === VRRP_PRIO_OWNER;
  }

  /** Leave INIT: to BACKUP (Master_Down_Timer running), MASTER for an owner, FAULT if something tracked is down. */
  start(): void {
    if (this.st !== VrrpState.INIT) return;
    this.masterAdverIntCs = this.cfg.advertIntCs;
    this.preemptTime = 0;
    if (this.faults.size > 0) {
      this.sands = Number.POSITIVE_INFINITY;
      this.transition(VrrpState.FAULT, "fault", this.firstFault());
      return;
    }
    if (this.owner() && this.cfg.initialMaster) {
      this.gotoMaster("address_owner", "");
      return;
    }
    this.sands = this.deps.now() + this.masterDownMs();
    this.transition(VrrpState.BACKUP, "start", "");
  }

  /**
   * Stop (keepalived on SIGTERM, or the instance deleted on reload): a MASTER resigns with one
   * priority-0 advert. Back to INIT.
   */
  stop(reason: "stop" | "deleted" = "stop"): void {
    if (this.st === VrrpState.INIT) return;
    if (this.st === VrrpState.MASTER) {
      this.sendAdvert(VRRP_PRIO_STOP);
      this.counters.releaseMaster++;
    }
    this.sands = Number.POSITIVE_INFINITY;
    this.preemptTime = 0;
    this.held = false;
    this.transition(VrrpState.INIT, reason, "");
  }

  /**
   * Reload (keepalived's restore_vrrp_state): take over the running instance `old` of the same
   * identity. Its counters, last master and state carry over — a MASTER stays MASTER and sends
   * an advert at once with the new configuration (no new election: a peer that now has the
   * higher priority preempts as usual), a BACKUP restarts its Master_Down_Timer with the new
   * timers, a FAULT stays FAULT for the objects `keepFault` still names (else it becomes
   * BACKUP, reason `reload`). No transition is reported when the state does not change. Call it
   * on an instance that was never started; the objects tracked are re-applied afterwards.
   */
  adopt(old: VrrpInstance, keepFault: (key: string) => boolean): void {
    if (this.st !== VrrpState.INIT) return;
    const c = this.counters;
    const o = old.counters;
    c.advertsSent = o.advertsSent;
    c.advertsReceived = o.advertsReceived;
    c.priZeroSent = o.priZeroSent;
    c.priZeroReceived = o.priZeroReceived;
    c.becomeMaster = o.becomeMaster;
    c.releaseMaster = o.releaseMaster;
    c.drops.set(o.drops);
    this.lastMaster = old.lastMaster;
    this.lastMasterPriority = old.lastMasterPriority;
    const now = this.deps.now();
    this.masterAdverIntCs = this.cfg.advertIntCs;
    // Faults: what tracking says now (applied before), and what the old one was down for that
    // is still tracked.
    if (old.st === VrrpState.FAULT) for (const f of old.faults) if (keepFault(f)) this.faults.add(f);
    const down = this.faults.size > 0;
    if (old.st === VrrpState.MASTER) {
      this.st = VrrpState.MASTER;
      this.lastMaster = this.cfg.saddr >>> 0;
      this.lastMasterPriority = this.effPriority;
      if (down) {
        this.sendAdvert(VRRP_PRIO_STOP);
        this.counters.releaseMaster++;
        this.sands = Number.POSITIVE_INFINITY;
        this.transition(VrrpState.FAULT, "fault", this.firstFault());
        return;
      }
      this.sendAdvert(this.effPriority);
      this.sands = now + this.advertIntMs();
      return;
    }
    if (old.st === VrrpState.FAULT) {
      this.st = VrrpState.FAULT;
      if (down) {
        this.sands = Number.POSITIVE_INFINITY;
        return;
      }
      if (this.owner() && this.cfg.initialMaster) {
        this.gotoMaster("reload", "");
        return;
      }
      this.sands = now + this.masterDownMs();
      this.transition(VrrpState.BACKUP, "reload", "");
      return;
    }
    if (old.st === VrrpState.BACKUP) {
      this.st = VrrpState.BACKUP;
      if (down) {
        this.sands = Number.POSITIVE_INFINITY;
        this.transition(VrrpState.FAULT, "fault", this.firstFault());
        return;
      }
      this.held = old.held;
      this.sands = now + this.masterDownMs();
      return;
    }
    this.start();
  }

  /** Sync group: a BACKUP member follows the group to MASTER (no gate). */
  syncMaster(group: string): void {
    if (this.st !== VrrpState.BACKUP) return;
    this.gotoMaster("sync_group", group);
  }

  /** Sync group: a MASTER member follows the group to BACKUP (no priority-0 advert, as keepalived). */
  syncBackup(group: string): void {
    if (this.st !== VrrpState.MASTER) return;
    this.preemptTime = 0;
    this.held = false;
    this.masterAdverIntCs = this.cfg.advertIntCs;
    this.counters.releaseMaster++;
    this.sands = this.deps.now() + this.masterDownMs();
    this.transition(VrrpState.BACKUP, "sync_group", group);
  }

  /** Run the timer if it has expired: BACKUP becomes MASTER, MASTER sends its advert. */
  tick(): void {
    const now = this.deps.now();
    if (now < this.sands) return;
    if (this.st === VrrpState.BACKUP) {
      if (this.gate !== undefined && !this.gate()) {
        // The group is not ready: wait another Master_Down_Interval wanting MASTER.
        this.held = true;
        this.sands = now + this.masterDownMs();
        return;
      }
      this.gotoMaster("master_down", "");
    } else if (this.st === VrrpState.MASTER) {
      this.sendAdvert(this.effPriority);
      this.sands = now + this.advertIntMs();
    }
  }

  /** Count a drop the caller found (a parse status, a VRID no instance has) on this instance. */
  drop(status: number): void {
    if (status > 0 && status < VRRP_STATUS_COUNT) this.counters.drops[status]!++;
  }

  /**
   * An advert for this VRID whose packet checks passed. Applies the configuration checks
   * (version, v2 auth and interval, address list, multicast vs unicast), then the state machine.
   * Returns VrrpStatus.OK or the reason it was dropped (also counted).
   */
  receive(a: VrrpAdvert): number {
    const st = this.check(a);
    if (st !== VrrpStatus.OK) {
      this.counters.drops[st]!++;
      return st;
    }
    this.counters.advertsReceived++;
    if (a.priority === VRRP_PRIO_STOP) this.counters.priZeroReceived++;
    if (this.st === VrrpState.BACKUP) this.backupRx(a);
    else this.masterRx(a);
    return VrrpStatus.OK;
  }

  private check(a: VrrpAdvert): number {
    const c = this.cfg;
    if (a.vrid !== c.vrid) return VrrpStatus.VRID_UNKNOWN;
    if (this.st !== VrrpState.BACKUP && this.st !== VrrpState.MASTER) return VrrpStatus.INSTANCE_DOWN;
    if (a.version !== c.version) return VrrpStatus.VERSION_MISMATCH;
    if (c.version === VRRP_VERSION_2) {
      if (a.authType !== c.authType) return VrrpStatus.AUTH_MISMATCH;
      if (c.authType === VRRP_AUTH_PASS) {
        let diff = 0;
        for (let i = 0; i < VRRP_AUTH_LEN; i++) diff |= a.authData[i]! ^ c.authData[i]!;
        if (diff !== 0) return VrrpStatus.AUTH_FAILURE;
      }
      if (a.intervalCs !== c.advertIntCs) return VrrpStatus.INTERVAL_MISMATCH;
    }
    if (a.count !== c.vips.length) return VrrpStatus.ADDR_LIST_MISMATCH;
    const mcast = a.daddr >>> 28 === 0xe;
    if (mcast === c.unicastPeers.length > 0) return VrrpStatus.DEST_MISMATCH;
    // Every configured VIP must be in the advert (RFC 3768 7.1 "MAY verify"; keepalived does).
    for (let i = 0; i < c.vips.length; i++) {
      const vip = c.vips[i]!;
      let found = false;
      for (let j = 0; j < a.count; j++) {
        if (a.addrs[j] === vip) {
          found = true;
          break;
        }
      }
      if (!found) return VrrpStatus.ADDR_LIST_MISMATCH;
    }
    return VrrpStatus.OK;
  }

  /** vrrp_state_backup. */
  private backupRx(a: VrrpAdvert): void {
    const now = this.deps.now();
    if (a.priority === VRRP_PRIO_STOP) {
      // The master resigned: take over after Skew_Time only.
      this.sands = now + this.skewMs();
      return;
    }
    const c = this.cfg;
    const eff = this.effPriority;
    if (
      c.nopreempt ||
      a.priority >= eff ||
      (c.preemptDelayMs > 0 && (this.preemptTime === 0 || this.preemptTime > now))
    ) {
      if (c.version === VRRP_VERSION_3) this.masterAdverIntCs = a.intervalCs;
      this.sands = now + this.masterDownMs();
      this.lastMaster = a.saddr >>> 0;
      this.lastMasterPriority = a.priority;
      // A master we accept: we no longer want MASTER (keepalived's wantstate BACKUP).
      this.held = false;
      if (c.preemptDelayMs > 0) {
        if (a.priority >= eff) this.preemptTime = 0;
        else if (this.preemptTime === 0) this.preemptTime = now + c.preemptDelayMs;
      }
      return;
    }
    // A lower priority and we may preempt: ignore it, the running timer decides.
    this.lastMaster = a.saddr >>> 0;
    this.lastMasterPriority = a.priority;
  }

  /** vrrp_state_master_rx. */
  private masterRx(a: VrrpAdvert): void {
    const now = this.deps.now();
    const theirs = a.saddr >>> 0;
    const ours = this.cfg.saddr >>> 0;
    const addrCmp = theirs > ours ? 1 : theirs < ours ? -1 : 0;
    if (a.priority === VRRP_PRIO_STOP) {
      this.sendAdvert(this.effPriority);
      this.sands = now + this.advertIntMs();
      return;
    }
    if (a.priority === this.effPriority && addrCmp !== 0 && this.effPriority === VRRP_PRIO_OWNER) {
      // Two address owners: a configuration error; keepalived lowers its own priority.
      this.basePriority = VRRP_PRIO_OWNER - 1;
      this.setEffective(VRRP_PRIO_OWNER - 1);
    }
    const eff = this.effPriority;
    if (a.priority < eff || (a.priority === eff && addrCmp < 0)) {
      // We win: advertise at once so the other stops claiming the VIPs.
      this.sendAdvert(eff);
      this.sands = now + this.advertIntMs();
      return;
    }
    if (a.priority > eff || addrCmp > 0) {
      if (this.cfg.version === VRRP_VERSION_3) this.masterAdverIntCs = a.intervalCs;
      this.lastMaster = theirs;
      this.lastMasterPriority = a.priority;
      this.preemptTime = 0;
      this.counters.releaseMaster++;
      this.sands = now + this.masterDownMs();
      this.transition(
        VrrpState.BACKUP,
        a.priority > eff ? "higher_priority" : "higher_address",
        u32ToIp(theirs),
      );
    }
    // Same priority from our own address: ignored (keepalived logs a warning).
  }

  /**
   * The sum of the tracking weights now applied (track_script / track_interface with a weight):
   * effective priority = base + sum, clamped to 1..254. No effect on an address owner.
   */
  setPriorityAdjustment(sum: number): void {
    this.adjustment = sum;
    if (this.owner()) return;
    let p = this.basePriority + sum;
    if (p < 1) p = 1;
    else if (p >= VRRP_PRIO_OWNER) p = VRRP_PRIO_OWNER - 1;
    this.setEffective(p);
  }

  get priorityAdjustment(): number {
    return this.adjustment;
  }

  private setEffective(p: number): void {
    const old = this.effPriority;
    if (p === old) return;
    const oldSkew = this.skewMs();
    this.effPriority = p;
    if (this.st === VrrpState.BACKUP) this.sands += this.skewMs() - oldSkew;
    this.emit({ kind: "priority", instance: this.cfg.name, from: old, to: p, at: this.deps.now() });
  }

  /** A tracked object (interface, weight-0 script) went down (`up` false) or came back. */
  setTracked(name: string, up: boolean): void {
    if (!up) {
      if (this.faults.has(name)) return;
      this.faults.add(name);
      if (this.faults.size !== 1) return;
      if (this.st === VrrpState.MASTER) {
        this.sendAdvert(VRRP_PRIO_STOP);
        this.counters.releaseMaster++;
      }
      if (this.st === VrrpState.MASTER || this.st === VrrpState.BACKUP) {
        this.sands = Number.POSITIVE_INFINITY;
        this.transition(VrrpState.FAULT, "fault", name);
      }
      return;
    }
    if (!this.faults.delete(name) || this.faults.size !== 0 || this.st !== VrrpState.FAULT) return;
    this.masterAdverIntCs = this.cfg.advertIntCs;
    this.preemptTime = 0;
    if (this.owner() && this.cfg.initialMaster) {
      this.gotoMaster("fault_cleared", name);
      return;
    }
    this.sands = this.deps.now() + this.masterDownMs();
    this.transition(VrrpState.BACKUP, "fault_cleared", name);
  }

  private firstFault(): string {
    for (const f of this.faults) return f;
    return "";
  }

  /** vrrp_state_goto_master: send the first advert, then announce the transition. */
  private gotoMaster(reason: VrrpReason, detail: string): void {
    this.masterAdverIntCs = this.cfg.advertIntCs;
    this.sands = this.deps.now() + this.advertIntMs();
    this.sendAdvert(this.effPriority);
    this.counters.becomeMaster++;
    this.lastMaster = this.cfg.saddr >>> 0;
    this.lastMasterPriority = this.effPriority;
    this.transition(VrrpState.MASTER, reason, detail);
  }

  private sendAdvert(priority: number): void {
    const o = this.out;
    o.priority = priority;
    const peers = this.cfg.unicastPeers;
    if (peers.length === 0) {
      o.daddr = VRRP_GROUP;
      this.deps.send(o);
    } else {
      for (let i = 0; i < peers.length; i++) {
        o.daddr = peers[i]!;
        this.deps.send(o);
      }
    }
    this.counters.advertsSent++;
    if (priority === VRRP_PRIO_STOP) this.counters.priZeroSent++;
  }

  private transition(to: VrrpState, reason: VrrpReason, detail: string): void {
    const from = this.st;
    this.st = to;
    if (to !== VrrpState.BACKUP) this.held = false;
    this.emit({ kind: "transition", instance: this.cfg.name, from, to, reason, detail, at: this.deps.now() });
  }

  private emit(e: VrrpEvent): void {
    this.deps.onEvent?.(e);
  }
}
