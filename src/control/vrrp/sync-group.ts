/**
 * A VRRP sync group (keepalived's `vrrp_sync_group`, keepalived/vrrp/vrrp_sync.c and the
 * transition table in vrrp_scheduler.c): member instances that change state together, e.g. a
 * NAT director's outside VIP and its inside gateway VIP, which must be on the same director.
 *
 * keepalived 2.2's semantics, as implemented:
 * - The group starts BACKUP (FAULT when a member is already down).
 * - A member whose Master_Down_Timer runs out becomes MASTER only if the group is MASTER or
 *   every other member wants MASTER too (is MASTER, or its own timer ran out and it is being
 *   held); otherwise it stays BACKUP, wanting MASTER, with a fresh timer
 *   (vrrp_sync_can_goto_master: "prefer backup state to avoid thrashing"). An advert it accepts
 *   clears the wish. So two directors with the same group converge on one of them for all
 *   members.
 * - A member that becomes MASTER takes every BACKUP member to MASTER (vrrp_sync_master); a
 *   MASTER member that goes BACKUP (a higher priority heard) takes every MASTER member to BACKUP,
 *   without priority-0 adverts (vrrp_sync_backup).
 * - A member down for its own reasons (track_script/track_interface) takes the whole group to
 *   FAULT (vrrp_sync_fault): MASTER members send priority 0 on the way. When no member has a
 *   fault left, every member returns to BACKUP with a fresh timer (an address owner: MASTER).
 * - Group notify scripts run on each group state change: notify_master / notify_backup /
 *   notify_fault / notify_stop, then `notify` with "GROUP" NAME STATE 0 appended (keepalived
 *   passes priority 0 for a group).
 *
 * Deviation: keepalived's vrrp_sync_master sends each member through the gate again, which
 * with three or more members can leave one held in BACKUP for another Master_Down_Interval;
 * here every BACKUP member follows at once.
 *
 * Pure logic on VrrpInstances; the manager forwards the members' transitions (`memberChanged`)
 * and calls `recheck()` after tracking changed.
 */

import type { VrrpInstance, VrrpTransition } from "./instance.js";
import { VrrpState } from "./instance.js";

/** Group states: keepalived's numbering, plus STOP (lvsd stopping). */
export const SyncGroupState = { INIT: 0, BACKUP: 1, MASTER: 2, FAULT: 3, STOP: 98 } as const;
export type SyncGroupState = (typeof SyncGroupState)[keyof typeof SyncGroupState];

export const SYNC_GROUP_STATE_NAMES: Readonly<Record<number, string>> = {
  0: "INIT",
  1: "BACKUP",
  2: "MASTER",
  3: "FAULT",
  98: "STOP",
};

export interface SyncGroupChange {
  group: string;
  from: SyncGroupState;
  to: SyncGroupState;
  /** The member that caused it ("" at start and stop). */
  member: string;
}

export class VrrpSyncGroup {
  readonly name: string;
  readonly members: readonly VrrpInstance[];
  /** The key under which the group puts its members in FAULT (`setTracked`). */
  readonly faultKey: string;
  private st: SyncGroupState = SyncGroupState.INIT;
  /** Set while the group moves its members: their transitions are its own doing. */
  private busy = false;
  private readonly onChange: (c: SyncGroupChange) => void;

  constructor(name: string, members: readonly VrrpInstance[], onChange: (c: SyncGroupChange) => void) {
    this.name = name;
    this.members = members;
    this.faultKey = `sync_group ${name}`;
    this.onChange = onChange;
    for (const m of members) m.setSyncGate(() => this.canGotoMaster(m));
  }

  get state(): SyncGroupState {
    return this.st;
  }

  /** Whether `m`, its timer run out, may become MASTER now. */
  canGotoMaster(m: VrrpInstance): boolean {
    if (this.st === SyncGroupState.MASTER) return true;
    for (const o of this.members) if (o !== m && !o.wantsMaster) return false;
    return true;
  }

  /** True when a member has a fault of its own (not the group's). */
  private ownFault(): string {
    for (const m of this.members) for (const f of m.faultsDown) if (f !== this.faultKey) return m.name;
    return "";
  }

  /**
   * Before the members start (their tracking applied): FAULT if one is down, else BACKUP.
   * On reload with members carried over: MASTER if every member is MASTER.
   */
  begin(): void {
    const down = this.ownFault();
    if (down !== "") {
      this.enterFault(down);
      return;
    }
    // Members carried over from a group in FAULT whose faults are gone.
    this.busy = true;
    try {
      for (const m of this.members) m.setTracked(this.faultKey, true);
    } finally {
      this.busy = false;
    }
    const all = this.members.every((m) => m.state === VrrpState.MASTER);
    this.set(all ? SyncGroupState.MASTER : SyncGroupState.BACKUP, "");
  }

  /** After the members started: a member that came up MASTER (an address owner) takes the group. */
  started(): void {
    const m = this.members.find((x) => x.state === VrrpState.MASTER);
    if (m !== undefined && this.st === SyncGroupState.BACKUP) this.toMaster(m);
  }

  /** Tracking changed somewhere: enter or leave the group FAULT. */
  recheck(): void {
    if (this.st === SyncGroupState.STOP || this.busy) return;
    const down = this.ownFault();
    if (down !== "") {
      if (this.st !== SyncGroupState.FAULT) this.enterFault(down);
      return;
    }
    if (this.st !== SyncGroupState.FAULT) return;
    this.busy = true;
    try {
      for (const m of this.members) m.setTracked(this.faultKey, true);
    } finally {
      this.busy = false;
    }
    const master = this.members.find((x) => x.state === VrrpState.MASTER);
    if (master !== undefined) this.toMaster(master);
    else this.set(SyncGroupState.BACKUP, "");
  }

  /** A member's transition (after the manager handled it). */
  memberChanged(m: VrrpInstance, ev: VrrpTransition): void {
    if (this.busy || this.st === SyncGroupState.STOP || this.st === SyncGroupState.FAULT) return;
    if (ev.to === VrrpState.MASTER && this.st !== SyncGroupState.MASTER) this.toMaster(m);
    else if (ev.to === VrrpState.BACKUP && ev.from === VrrpState.MASTER && this.st === SyncGroupState.MASTER)
      this.toBackup(m);
  }

  /** lvsd stops: the group's STOP (after its members stopped). */
  stop(): void {
    if (this.st === SyncGroupState.STOP || this.st === SyncGroupState.INIT) return;
    this.set(SyncGroupState.STOP, "");
  }

  /** Stop following the members (reload replaced the group). */
  detach(): void {
    for (const m of this.members) m.setSyncGate(undefined);
    this.st = SyncGroupState.STOP;
  }

  private toMaster(m: VrrpInstance): void {
    this.busy = true;
    try {
      for (const o of this.members) if (o !== m) o.syncMaster(this.name);
    } finally {
      this.busy = false;
    }
    this.set(SyncGroupState.MASTER, m.name);
  }

  private toBackup(m: VrrpInstance): void {
    this.busy = true;
    try {
      for (const o of this.members) if (o !== m) o.syncBackup(this.name);
    } finally {
      this.busy = false;
    }
    this.set(SyncGroupState.BACKUP, m.name);
  }

  private enterFault(member: string): void {
    this.busy = true;
    try {
      for (const m of this.members) m.setTracked(this.faultKey, false);
    } finally {
      this.busy = false;
    }
    this.set(SyncGroupState.FAULT, member);
  }

  private set(to: SyncGroupState, member: string): void {
    const from = this.st;
    if (from === to) return;
    this.st = to;
    this.onChange({ group: this.name, from, to, member });
  }
}
