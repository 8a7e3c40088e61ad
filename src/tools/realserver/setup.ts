/**
 * The host side of a real server, as the LVS tutorials set it up by hand:
 *
 *   ip addr add VIP/32 dev lo
 *   sysctl net.ipv4.conf.{all,lo,DEV}.arp_ignore=1     reply to ARP only for addresses of the
 *                                                      interface the request came in on
 *   sysctl net.ipv4.conf.{all,lo,DEV}.arp_announce=2   never use the VIP as the source of our
 *                                                      own ARP requests
 *
 * The kernel uses the larger of `all` and the interface's value for both, so setting `all` is
 * what takes effect; lo and the named interfaces are set too, as the tutorials do, so the intent
 * shows wherever one looks. Everything changed is recorded first (state.ts) and reverted by
 * `release` once nothing claims it any more.
 */

import { existsSync } from "node:fs";
import { IoError, IoErrorCode } from "../../datapath/io/link.js";
import {
  addAddr,
  delAddr,
  ifIndex,
  ipv4Conf,
  listAddrs,
  netnsId,
  sysctlGet,
  sysctlSet,
} from "../../datapath/io/netconf.js";
import { ipToU32, u32ToIp } from "../../lib/addr.js";
import { fromIoError, RealServerError, RsErrorCode } from "./errors.js";
import { decapAlive, emptyState, type RsState, StateStore, type VipClaim } from "./state.js";

/** A namespace to work in: how the addon reaches it, and its state file. */
export interface Target {
  /** As given (name or path); undefined = the caller's namespace. */
  netns: string | undefined;
  id: string;
  store: StateStore;
}

/** Resolve --netns and open its state store. Throws NO_NETNS with a clear message. */
export function openTarget(netns: string | undefined, stateDir: string): Target {
  if (netns !== undefined) {
    const path = netns.includes("/") ? netns : `/var/run/netns/${netns}`;
    if (!existsSync(path)) {
      throw new RealServerError(
        RsErrorCode.NO_NETNS,
        netns.includes("/")
          ? `network namespace ${netns} does not exist`
          : `network namespace ${netns} does not exist (no ${path}; see \`ip netns list\`)`,
      );
    }
  }
  const id = io(() => netnsId(netns));
  return { netns, id, store: new StateStore(stateDir, id) };
}

/** The index of an interface that must exist; NO_DEVICE with a short message otherwise. */
export function requireIf(name: string, netns: string | undefined): number {
  try {
    return ifIndex(name, netns);
  } catch (err) {
    if (err instanceof IoError && err.code === IoErrorCode.NO_DEVICE) {
      throw new RealServerError(
        RsErrorCode.NO_DEVICE,
        `no interface ${name}${netns === undefined ? "" : ` in netns ${netns}`}`,
        { cause: err },
      );
    }
    throw fromIoError(err);
  }
}

/** Show a /proc/sys path as sysctl(8) does: dots between levels, '/' for a dot inside a name. */
export function sysctlName(path: string): string {
  return path
    .split("/")
    .map((p) => p.replaceAll(".", "/"))
    .join(".");
}

/** Run an addon call, turning IoError into RealServerError. */
export function io<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromIoError(err);
  }
}

export const ARP_SYSCTLS: readonly (readonly [string, string])[] = [
  ["arp_ignore", "1"],
  ["arp_announce", "2"],
];

/** The sysctl writes a claim needs: ARP behaviour on all, lo and `devs`. */
export function arpSysctls(devs: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const d of ["all", "lo", ...devs]) {
    for (const [k, v] of ARP_SYSCTLS) out.push([ipv4Conf(d, k), v]);
  }
  return out;
}

export interface ClaimReport {
  /** VIPs this run added to lo. */
  added: string[];
  /** VIPs that were on lo already. */
  present: string[];
  /** Sysctls this run changed: path, old, new. */
  changed: [string, string, string][];
}

/**
 * Claim `vips` for command `by`: write the ARP sysctls (recording what they were), and put every
 * VIP on lo as /32 unless it is there already. A VIP found on any other interface is refused:
 * the host would answer ARP for it there.
 */
export function claim(
  t: Target,
  by: VipClaim["by"],
  vips: readonly number[],
  devs: readonly string[],
): ClaimReport {
  const ns = t.netns;
  return t.store.withLock(() => {
    const st = t.store.load() ?? emptyState(t.id, ns);
    const lo = io(() => ifIndex("lo", ns));
    for (const d of devs) requireIf(d, ns); // NO_DEVICE before anything changes
    const addrs = io(() => listAddrs(ns));
    for (const v of vips) {
      const other = addrs.find((a) => a.addr === v && a.ifindex !== lo);
      if (other !== undefined) {
        throw new RealServerError(
          RsErrorCode.BAD_ADDRESS,
          `VIP ${u32ToIp(v)} is configured on ${other.label || `ifindex ${other.ifindex}`}: the host would answer ARP for it there. Remove it from that interface first.`,
        );
      }
    }
    const report: ClaimReport = { added: [], present: [], changed: [] };
    // Record every old value before the first write, so a failure half-way still reverts.
    const wanted = arpSysctls(devs);
    const current = wanted.map(([p]) => io(() => sysctlGet(p, ns)));
    wanted.forEach(([p], i) => {
      if (!st.sysctls.some((r) => r.path === p)) st.sysctls.push({ path: p, prev: current[i]! });
    });
    t.store.save(st);
    const fresh: number[] = []; // claims made by this call, dropped again if it fails
    try {
      wanted.forEach(([p, v], i) => {
        if (current[i] === v) return;
        io(() => sysctlSet(p, v, ns));
        report.changed.push([p, current[i]!, v]);
      });
      for (const v of vips) {
        const addr = u32ToIp(v);
        const onLo = addrs.some((a) => a.addr === v && a.ifindex === lo);
        let c = st.vips.find((x) => x.addr === addr && x.by === by);
        if (c === undefined) {
          c = { addr, by, added: false };
          st.vips.push(c);
          fresh.push(v);
        }
        if (onLo) {
          report.present.push(addr);
        } else {
          t.store.save(st);
          io(() => addAddr("lo", v, 32, ns));
          // Whoever added it owns its removal (there is one owner at most).
          for (const x of st.vips) if (x.addr === addr) x.added = false;
          c.added = true;
          report.added.push(addr);
        }
        t.store.save(st);
      }
    } catch (err) {
      // All or nothing: drop this call's claims (and what they added); the sysctls go back if
      // nothing else claims them.
      try {
        release(t, by, fresh);
      } catch {
        // the original error matters more
      }
      throw err;
    }
    return report;
  });
}

export interface ReleaseReport {
  /** Nothing was recorded for this namespace. */
  nothing: boolean;
  removed: string[];
  /** Claims dropped whose address we had not added (left in place). */
  kept: string[];
  /** Sysctls restored: path, value. */
  restored: [string, string][];
  /** Problems that did not stop the undo (an interface that is gone, ...). */
  warnings: string[];
  /** Claims by other commands (or a running decapsulator) keep the sysctls in place. */
  stillClaimed: boolean;
}

/**
 * Drop the claims of `by` (only those for `vips`, when given): remove the addresses they added,
 * and restore the recorded sysctls when no claim and no live decapsulator remain. Idempotent.
 */
export function release(t: Target, by: VipClaim["by"], vips?: readonly number[]): ReleaseReport {
  const ns = t.netns;
  return t.store.withLock(() => {
    const r: ReleaseReport = {
      nothing: false,
      removed: [],
      kept: [],
      restored: [],
      warnings: [],
      stillClaimed: false,
    };
    const st = t.store.load();
    if (st === undefined) {
      r.nothing = true;
      return r;
    }
    const pick = (c: VipClaim) => c.by === by && (vips === undefined || vips.includes(ipToU32(c.addr)));
    const going = st.vips.filter(pick);
    st.vips = st.vips.filter((c) => !pick(c));
    const lo = io(() => ifIndex("lo", ns));
    for (const c of going) {
      if (!c.added) {
        r.kept.push(c.addr);
        continue;
      }
      const heir = st.vips.find((x) => x.addr === c.addr);
      if (heir !== undefined) {
        heir.added = true; // another command still needs it: it removes it when it goes
        r.kept.push(c.addr);
        continue;
      }
      const v = ipToU32(c.addr);
      const there = io(() => listAddrs(ns)).some((a) => a.addr === v && a.ifindex === lo && a.prefix === 32);
      if (there) io(() => delAddr("lo", v, 32, ns));
      r.removed.push(c.addr);
    }
    finish(t, st, r);
    return r;
  });
}

/** Restore the sysctls and drop the state file if nothing is claimed any more; else save. */
function finish(t: Target, st: RsState, r: ReleaseReport): void {
  if (st.decap !== undefined && !decapAlive(st.decap)) delete st.decap;
  if (st.vips.length > 0 || st.decap !== undefined) {
    r.stillClaimed = true;
    t.store.save(st);
    return;
  }
  for (const rec of [...st.sysctls].reverse()) {
    try {
      const now = sysctlGet(rec.path, t.netns);
      if (now !== rec.prev) sysctlSet(rec.path, rec.prev, t.netns);
      r.restored.push([rec.path, rec.prev]);
    } catch (err) {
      if (err instanceof IoError && err.code === IoErrorCode.NO_NETNS) throw fromIoError(err);
      r.warnings.push(`could not restore ${rec.path}=${rec.prev}: ${(err as Error).message}`);
    }
  }
  t.store.remove();
}

/** Record (or clear) the decapsulator in the state; refuses if a live one is recorded. */
export function setDecap(t: Target, d: RsState["decap"]): void {
  t.store.withLock(() => {
    const st = t.store.load() ?? emptyState(t.id, t.netns);
    if (d !== undefined && decapAlive(st.decap) && st.decap!.pid !== d.pid) {
      throw new RealServerError(
        RsErrorCode.BUSY,
        `a decapsulator already runs for this namespace (pid ${st.decap!.pid}, ${st.decap!.dev}): run 'lvs-realserver tun --undo' first`,
      );
    }
    if (d === undefined) delete st.decap;
    else st.decap = d;
    if (d === undefined && st.vips.length === 0 && st.sysctls.length === 0) t.store.remove();
    else t.store.save(st);
  });
}

/** Finish the state after the decapsulator record went away (restore sysctls if unclaimed). */
export function settle(t: Target): ReleaseReport {
  return t.store.withLock(() => {
    const r: ReleaseReport = {
      nothing: false,
      removed: [],
      kept: [],
      restored: [],
      warnings: [],
      stillClaimed: false,
    };
    const st = t.store.load();
    if (st === undefined) {
      r.nothing = true;
      return r;
    }
    finish(t, st, r);
    return r;
  });
}
