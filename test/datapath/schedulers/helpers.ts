import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import type { FlowInfo, Scheduler, SchedulerModule } from "../../../src/tables/model.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, Dest, FwdMethod, Service } from "../../../src/tables/model.js";

/** Dotted quad → uint32 (host order). */
export function ip(s: string): number {
  const p = s.split(".").map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export interface DestSpec {
  addr?: string;
  port?: number;
  weight?: number;
  active?: number;
  inact?: number;
  overload?: boolean;
  unavailable?: boolean;
  lastWeight?: number;
  rateBps?: number;
  respTimeUs?: number;
}

let autoAddr = 1;

export function mkDest(spec: DestSpec = {}): Dest {
  const addr = spec.addr ? ip(spec.addr) : (ip("192.168.0.0") + autoAddr++) >>> 0;
  const d = new Dest(addr, spec.port ?? 80, spec.weight ?? 1, FwdMethod.MASQ);
  if (spec.lastWeight !== undefined) d.lastWeight = spec.lastWeight;
  d.activeConns = spec.active ?? 0;
  d.inactConns = spec.inact ?? 0;
  if (spec.overload) d.flags |= DEST_F_OVERLOAD;
  if (spec.unavailable) d.flags &= ~DEST_F_AVAILABLE;
  d.rateBps = spec.rateBps ?? 0;
  d.respTimeUs = spec.respTimeUs ?? 0;
  return d;
}

/** A service whose dest list is exactly `dests` (list order), with the scheduler bound afterwards. */
export function bound(mod: SchedulerModule, dests: Dest[], flags = 0): { svc: Service; sched: Scheduler } {
  const svc = new Service(IPPROTO_TCP, ip("10.0.0.100"), 80, mod.name);
  svc.flags = flags;
  svc.dests = dests;
  for (const d of dests) d.svc = svc;
  const sched = mod.create(svc);
  svc.sched = sched;
  sched.onDestsChanged?.(svc.dests);
  return { svc, sched };
}

/** An empty service with the scheduler bound, as `ipvsadm -A` leaves it. */
export function emptyService(mod: SchedulerModule, flags = 0): { svc: Service; sched: Scheduler } {
  return bound(mod, [], flags);
}

/** `ipvsadm -a`: the kernel inserts the new dest at the head, then calls the add hook. */
export function addDest(svc: Service, d: Dest): Dest {
  d.svc = svc;
  svc.dests.unshift(d);
  svc.sched?.onDestsChanged?.(svc.dests);
  return d;
}

/** `ipvsadm -d`. */
export function delDest(svc: Service, d: Dest): void {
  const i = svc.dests.indexOf(d);
  if (i < 0) throw new Error("dest not in service");
  svc.dests.splice(i, 1);
  d.flags &= ~DEST_F_AVAILABLE;
  svc.sched?.onDestsChanged?.(svc.dests);
}

/** `ipvsadm -e -w`: like the kernel, keep the last non-zero weight for mh. */
export function setWeight(svc: Service, d: Dest, w: number): void {
  d.weight = w;
  if (w > 0) d.lastWeight = w;
  svc.sched?.onDestsChanged?.(svc.dests);
}

export function flow(
  saddr: number | string,
  sport = 12345,
  daddr: number | string = "10.0.0.100",
  dport = 80,
): FlowInfo {
  return {
    saddr: typeof saddr === "string" ? ip(saddr) : saddr >>> 0,
    daddr: typeof daddr === "string" ? ip(daddr) : daddr >>> 0,
    sport,
    dport,
    proto: IPPROTO_TCP,
  };
}

export const FLOW0: FlowInfo = flow("203.0.113.7");

/** Run n decisions and return the picked dests' names (via a name map), "-" for undefined. */
export function picks(
  svc: Service,
  sched: Scheduler,
  n: number,
  names: Map<Dest, string>,
  f: FlowInfo = FLOW0,
): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = sched.select(svc, f);
    out.push(d ? (names.get(d) ?? "?") : "-");
  }
  return out;
}

/** Named dests: returns the dests and a Dest→name map. */
export function named(specs: Record<string, DestSpec>): {
  d: Record<string, Dest>;
  names: Map<Dest, string>;
} {
  const d: Record<string, Dest> = {};
  const names = new Map<Dest, string>();
  for (const [k, spec] of Object.entries(specs)) {
    d[k] = mkDest(spec);
    names.set(d[k], k);
  }
  return { d, names };
}

/** Like `picks`, joined: single-letter names make sequences easy to read ("AABABC"). */
export function seq(
  svc: Service,
  sched: Scheduler,
  n: number,
  names: Map<Dest, string>,
  f: FlowInfo = FLOW0,
): string {
  return picks(svc, sched, n, names, f).join("");
}
