/**
 * The service model shared by the data path and the control plane: services (virtual servers)
 * and dests (real servers), named as in IPVS. The control plane creates and edits these objects
 * between batches; the data path reads their numeric fields and bumps their counters.
 *
 * Every field the data path touches is a number, so objects stay monomorphic and the per-packet
 * path never allocates. Addresses are IPv4 as uint32 (host order, `>>> 0`), ports host order.
 */

import type { LocalAddrPool } from "./laddr.js";

/**
 * Forwarding methods (ipvsadm -m/-g/-i and our --fullnat). Values are stable (used in arrays).
 * Their options, names and modes are in the registry, src/datapath/modes/index.ts.
 */
export const FwdMethod = {
  MASQ: 0,
  ROUTE: 1,
  TUNNEL: 2,
  FULLNAT: 3,
  LOCAL: 4,
} as const;
export type FwdMethod = (typeof FwdMethod)[keyof typeof FwdMethod];

/** Dest flags (IP_VS_DEST_F_*). */
export const DEST_F_AVAILABLE = 1;
export const DEST_F_OVERLOAD = 2;

/** Service flags (IP_VS_SVC_F_*). */
export const SVC_F_PERSISTENT = 0x1;
export const SVC_F_HASHED = 0x2;
export const SVC_F_ONEPACKET = 0x4;
export const SVC_F_SCHED1 = 0x8; // sh-fallback / mh-fallback
export const SVC_F_SCHED2 = 0x10; // sh-port / mh-port
export const SVC_F_SCHED3 = 0x20;
/**
 * SYN proxy (lvs-ts, after DPVS's; lvsadm --synproxy, keepalived `syn_proxy`): the director
 * answers SYNs with SYN cookies and opens the connection to the real server only when the
 * client's ACK proves the cookie (src/datapath/synproxy.ts). TCP, NAT and FULLNAT only. Not a
 * kernel flag: never sent anywhere the kernel's flags go.
 */
export const SVC_F_SYNPROXY = 0x10000;

/** Default persistence timeout when `-p` has no value (ipvsadm's code: 360 s). */
export const DEFAULT_PERSIST_TIMEOUT = 360;

/** Minimal flow description a scheduler sees: the parsed frame satisfies it structurally. */
export interface FlowInfo {
  /** Client (source) address, uint32. */
  readonly saddr: number;
  /** Virtual (destination) address, uint32. */
  readonly daddr: number;
  readonly sport: number;
  readonly dport: number;
  /** IP protocol number. */
  readonly proto: number;
}

export class Dest {
  /** Slot in the engine's dest registry (index used by conntrack); -1 until registered. */
  id = -1;
  addr: number;
  port: number;
  /** Current weight 0..65535; 0 = quiescent (no new connections). */
  weight: number;
  /** Last non-zero weight (mh keeps its table stable across weight 0). */
  lastWeight: number;
  fwd: FwdMethod;
  /** Upper / lower connection thresholds; 0 = none. */
  uThreshold: number;
  lThreshold: number;
  /** DEST_F_* flags. A dest is AVAILABLE while it is in its service. */
  flags = DEST_F_AVAILABLE;
  activeConns = 0;
  inactConns = 0;
  persistConns = 0;
  // Counters (cumulative, like IPVS stats).
  conns = 0;
  inPkts = 0;
  outPkts = 0;
  inBytes = 0;
  outBytes = 0;
  /** Estimated byte rate (in+out, bytes/s), updated by the control plane's estimator. */
  rateBps = 0;
  /** Measured response time in microseconds (wrt scheduler); 0 = not measured yet. */
  respTimeUs = 0;
  /** Path MTU towards this dest learned from ICMP fragmentation-needed (TUN), 0 = unknown. */
  pmtu = 0;
  /** Tunnel type for TUN dests (0 = ipip). */
  tunType = 0;
  tunPort = 0;
  /** Scratch slot a scheduler may use for its own per-dest state (e.g. an index). */
  schedData = 0;
  /**
   * The scheduler index to tell when this dest's counters, flags or rate change (see
   * destChanged); null when its scheduler keeps none.
   */
  watch: DestWatch | null = null;
  /** Owning service; set when added. */
  svc: Service | null = null;

  constructor(addr: number, port: number, weight: number, fwd: FwdMethod, uThreshold = 0, lThreshold = 0) {
    this.addr = addr >>> 0;
    this.port = port;
    this.weight = weight;
    this.lastWeight = weight;
    this.fwd = fwd;
    this.uThreshold = uThreshold;
    this.lThreshold = lThreshold;
  }
}

export class Service {
  /** Slot in the engine's service registry; -1 until registered. */
  id = -1;
  proto: number;
  addr: number;
  port: number;
  /** Firewall mark for fwmark services (0 = not a fwmark service). */
  fwmark = 0;
  schedName: string;
  /** SVC_F_* flags (persistence, one-packet, scheduler flags). */
  flags = 0;
  /** Persistence timeout in seconds (only meaningful with SVC_F_PERSISTENT). */
  timeout = 0;
  /** Persistence netmask as uint32. */
  netmask = 0xffffffff;
  /** PROXY protocol version sent to real servers by FULLNAT (0 = off, 1, 2). */
  proxyProtocol = 0;
  /** FULLNAT local addresses (created on first --add-laddr). */
  laddrs: LocalAddrPool | null = null;
  /** Dests in list order; new dests go to the head, as in the kernel. */
  dests: Dest[] = [];
  /** The bound scheduler instance (set by the service table). */
  sched: Scheduler | null = null;
  // Counters.
  conns = 0;
  inPkts = 0;
  outPkts = 0;
  inBytes = 0;
  outBytes = 0;

  constructor(proto: number, addr: number, port: number, schedName: string) {
    this.proto = proto;
    this.addr = addr >>> 0;
    this.port = port;
    this.schedName = schedName;
  }

  isPersistent(): boolean {
    return (this.flags & SVC_F_PERSISTENT) !== 0;
  }
}

/**
 * A scheduler instance bound to one service. `select` runs on the new-connection path: it must
 * not allocate, throw, or build strings. Expensive work (tables, sorting) belongs in
 * `onDestsChanged`, which the control plane calls whenever the dest list, a weight, or a
 * dest's flags change.
 */
export interface Scheduler {
  onDestsChanged?(dests: readonly Dest[]): void;
  select(svc: Service, flow: FlowInfo): Dest | undefined;
  /** Optional: called when a connection to `dest` ends (for schedulers that keep state). */
  onConnDone?(dest: Dest): void;
}

/**
 * A scheduler's per-service index of its dests (src/datapath/schedulers/destindex.ts), told when
 * a dest's counters, flags or rate change so it can re-rank the dest in O(log n).
 */
export interface DestWatch {
  destChanged(d: Dest): void;
}

/**
 * Tell `d`'s scheduler index (if any) that its activeConns/inactConns, overload flag or rate
 * changed. Called by conntrack (through destOverloadOnBind/Unbind and on active/inactive
 * transitions) and by the rate estimator; allocation-free, a no-op for most schedulers.
 */
export function destChanged(d: Dest): void {
  const w = d.watch;
  if (w !== null) w.destChanged(d);
}

/** A scheduler module, registered by name in `src/datapath/schedulers/index.ts`. */
export interface SchedulerModule {
  readonly name: string;
  /**
   * Scheduler flags (-b) this scheduler accepts, in bit order: flags[i] sets SVC_F_SCHED(i+1),
   * e.g. ["sh-fallback", "sh-port"]. The one place a scheduler's flag names are written; the
   * registry and everything that parses or prints flags read them from here.
   */
  readonly flags?: readonly string[];
  create(svc: Service): Scheduler;
}

/**
 * Apply the kernel's upper-threshold rule when a connection is bound to `d` (ip_vs_bind_dest):
 * with an upper threshold set, reaching it marks the dest overloaded. Call it after changing the
 * dest's counters: it also tells the scheduler's index (destChanged).
 */
export function destOverloadOnBind(d: Dest): void {
  if (d.uThreshold !== 0 && d.activeConns + d.inactConns >= d.uThreshold) d.flags |= DEST_F_OVERLOAD;
  destChanged(d);
}

/**
 * The kernel's hysteresis when a connection leaves `d` (ip_vs_unbind_dest): clear the overload
 * flag below the lower threshold, or, with no lower threshold, below 3/4 of the upper one; with
 * no thresholds at all the flag is simply cleared. Also tells the scheduler's index (destChanged).
 */
export function destOverloadOnUnbind(d: Dest): void {
  const total = d.activeConns + d.inactConns;
  if (d.lThreshold !== 0) {
    if (total < d.lThreshold) d.flags &= ~DEST_F_OVERLOAD;
  } else if (d.uThreshold !== 0) {
    if (total * 4 < d.uThreshold * 3) d.flags &= ~DEST_F_OVERLOAD;
  } else {
    d.flags &= ~DEST_F_OVERLOAD;
  }
  destChanged(d);
}
