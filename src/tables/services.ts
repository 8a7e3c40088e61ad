/**
 * The service table: virtual services and their dests, changed by the control plane between
 * batches with ipvsadm's rules, and looked up by the data path on a connection miss.
 *
 * The data path's `lookup` probes an open-addressed index of typed arrays (address, port,
 * protocol → service slot), rebuilt by the control plane whenever a service is added or removed:
 * no Map and no allocation per packet. The control plane finds services in Maps keyed by a number
 * (never a string): serviceKey() = (addr * 65536 + port) * 4 + p, where p is 1 for TCP and 2 for
 * UDP, below 2^53 so exact as a double; fwmark services by their mark (and, for the data path,
 * in a typed-array index too: `lookupMark`). `isVip` and `isLaddr`
 * (asked when the director answers ARP and ICMP for itself, not when it forwards) are Map lookups.
 * Services and dests get stable slot ids so the connection table can refer to them by number.
 *
 * Errors are thrown as ControlError with an errno-like code, as the kernel answers ipvsadm; the
 * control client maps them to ipvsadm's messages.
 */

import { isUnicastAddr, u32ToIp } from "../lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { LocalAddrPool } from "./laddr.js";
import {
  DEFAULT_PERSIST_TIMEOUT,
  DEST_F_AVAILABLE,
  Dest,
  FwdMethod,
  type SchedulerModule,
  Service,
  SVC_F_PERSISTENT,
  SVC_F_SYNPROXY,
} from "./model.js";

export type ControlErrorCode = "EEXIST" | "ESRCH" | "ENOENT" | "EINVAL" | "ENOMEM" | "EBUSY";

export class ControlError extends Error {
  readonly code: ControlErrorCode;
  /** The message is lvs-ts's own (an extension's rule), printed as is instead of ipvsadm's text for `code`. */
  readonly own: boolean;
  constructor(code: ControlErrorCode, message: string, own = false) {
    super(message);
    this.name = "ControlError";
    this.code = code;
    this.own = own;
  }
}

/** SYN proxy: the director must see the real servers' replies (NAT, FULLNAT). */
function synProxyFwdOk(fwd: FwdMethod): boolean {
  return fwd === FwdMethod.MASQ || fwd === FwdMethod.FULLNAT;
}

/** Identifies a service: protocol + address + port, or a firewall mark (fwmark > 0). */
export interface ServiceKey {
  readonly proto: number;
  readonly addr: number;
  readonly port: number;
  readonly fwmark?: number;
}

export interface ServiceOptions {
  sched: string;
  /** SVC_F_* flags: persistence, one-packet, scheduler flags. */
  flags: number;
  /** Persistence timeout (s); used when SVC_F_PERSISTENT is set. */
  timeout: number;
  /** Persistence netmask as uint32. */
  netmask: number;
  /** PROXY protocol version FULLNAT sends to the real servers: 0 (off), 1 or 2. */
  proxyProtocol?: number;
  /** SYN proxy (SVC_F_SYNPROXY) on or off; undefined: off for a new service, unchanged by an edit. */
  synProxy?: boolean;
}

export interface DestOptions {
  addr: number;
  port: number;
  weight: number;
  fwd: FwdMethod;
  uThreshold: number;
  lThreshold: number;
  tunType?: number;
  tunPort?: number;
}

/**
 * One change to the table, as its journal records it for data-path workers (src/tables/journal.ts
 * replays it; docs/workers.md): a plain object that crosses a worker_threads port.
 */
export type TableOp =
  | { op: "addService"; id: number; key: ServiceKey; opts: ServiceOptions }
  | { op: "editService"; key: ServiceKey; opts: ServiceOptions }
  | { op: "deleteService"; key: ServiceKey }
  | { op: "clear" }
  | { op: "addDest"; id: number; key: ServiceKey; dest: DestOptions }
  | { op: "editDest"; key: ServiceKey; dest: DestOptions }
  | { op: "deleteDest"; key: ServiceKey; addr: number; port: number }
  | { op: "addLaddr"; key: ServiceKey; addr: number }
  | { op: "deleteLaddr"; key: ServiceKey; addr: number }
  | { op: "zero"; key?: ServiceKey }
  | { op: "markVips"; addrs: number[] };

/** Hooks the engine installs so table changes reach the connection table. */
export interface ServiceTableHooks {
  /** A dest left its service (deleted, or its service deleted). */
  destRemoved(dest: Dest): void;
}

export const MAX_WEIGHT = 65535;
export const MAX_PERSIST_TIMEOUT = 2678400;

function protoCode(proto: number): number {
  return proto === IPPROTO_TCP ? 1 : proto === IPPROTO_UDP ? 2 : 3;
}

/** Numeric lookup key for (proto, addr, port). */
export function serviceKey(proto: number, addr: number, port: number): number {
  return ((addr >>> 0) * 65536 + port) * 4 + protoCode(proto);
}

/** A plain copy of a key (callers may pass objects with more fields; the journal keeps only these). */
function keyCopy(k: ServiceKey): ServiceKey {
  return k.fwmark
    ? { proto: k.proto, addr: k.addr, port: k.port, fwmark: k.fwmark }
    : { proto: k.proto, addr: k.addr, port: k.port };
}

export class ServiceTable {
  /** Services by slot id (holes are null). */
  readonly services: (Service | null)[] = [];
  /** Dests by slot id, including dests removed from their service that connections still use. */
  readonly dests: (Dest | null)[] = [];
  private readonly byKey = new Map<number, Service>();
  private readonly byMark = new Map<number, Service>();
  /** Number of services per VIP address (for ARP/ICMP answering and VIP checks). */
  private readonly vipRefs = new Map<number, number>();
  /** Destinations of MARK rules, answered as VIPs (setMarkVips). */
  private markVips = new Set<number>();
  /** Number of services using each FULLNAT local address. */
  private readonly laddrRefs = new Map<number, number>();
  private readonly freeSvc: number[] = [];
  private readonly freeDest: number[] = [];
  private readonly resolve: (name: string) => SchedulerModule | undefined;
  hooks: ServiceTableHooks = { destRemoved: () => {} };
  /** Bumped on every change; listeners (ARP for VIPs, estimator) compare it. */
  generation = 0;
  /**
   * Told every change that succeeded, as a TableOp (src/tables/journal.ts), when data-path
   * workers replicate this table (docs/workers.md); null otherwise.
   */
  journal: ((op: TableOp) => void) | null = null;
  /**
   * This table's share of FULLNAT local ports when it is worker `index` of `count`
   * (docs/workers.md): the pools it creates allocate only ports p with p % count === index.
   */
  laddrSlice = { index: 0, count: 1 };

  /**
   * `resolve` finds a scheduler module by name: the data path's registry
   * (src/datapath/schedulers/index.ts getScheduler) in lvsd; the tables do not import it.
   */
  constructor(resolve: (name: string) => SchedulerModule | undefined) {
    this.resolve = resolve;
  }

  // ---- data path ----

  /**
   * Service for a packet to addr:port/proto; falls back to a port-0 (all ports) service.
   * An open-addressed index of typed arrays, rebuilt when services change: no Map with a
   * number key (a key above 2^31 would be boxed on every call), no allocation.
   */
  lookup(proto: number, addr: number, port: number): Service | undefined {
    const s = this.probe(proto, addr | 0, port);
    if (s >= 0 || port === 0) return s >= 0 ? (this.services[s] ?? undefined) : undefined;
    const z = this.probe(proto, addr | 0, 0);
    return z >= 0 ? (this.services[z] ?? undefined) : undefined;
  }

  /**
   * The fwmark service for `mark` (an int32 or uint32; 0 finds nothing): ip_vs_service_find's
   * first step when the packet carries a mark. Probes a typed-array index like `lookup`.
   */
  lookupMark(mark: number): Service | undefined {
    if (this.markCount === 0) return undefined;
    const m = mark | 0;
    const mask = this.markMask;
    let h = (Math.imul(m, 0x9e3779b1) >>> 16) & mask;
    for (;;) {
      const sid = this.markSvc[h]!;
      if (sid < 0) return undefined;
      if (this.markKey[h] === m) return this.services[sid] ?? undefined;
      h = (h + 1) & mask;
    }
  }

  private probe(proto: number, addr: number, port: number): number {
    const mask = this.idxMask;
    let h = (Math.imul(addr ^ (port << 8) ^ proto, 0x9e3779b1) >>> 16) & mask;
    for (;;) {
      const sid = this.idxSvc[h]!;
      if (sid < 0) return -1;
      if (this.idxAddr[h] === addr && this.idxPort[h] === port && this.idxProto[h] === proto) return sid;
      h = (h + 1) & mask;
    }
  }

  private idxAddr = new Int32Array(16);
  private idxPort = new Uint16Array(16);
  private idxProto = new Uint8Array(16);
  private idxSvc = new Int32Array(16).fill(-1);
  private idxMask = 15;
  private markKey = new Int32Array(4);
  private markSvc = new Int32Array(4).fill(-1);
  private markMask = 3;
  private markCount = 0;

  /**
   * Put service `s` (just added to byKey) in the lookup index: in place while the index keeps
   * at least 4 slots per service, else rebuilt twice as big, so adding n services costs O(n)
   * in all (a rebuild per add made a 25,000-service keepalived.conf load in quadratic time).
   */
  private indexAdd(s: Service): void {
    if (this.byKey.size * 4 > this.idxMask + 1) {
      this.reindex();
      return;
    }
    const addr = s.addr | 0;
    let h = (Math.imul(addr ^ (s.port << 8) ^ s.proto, 0x9e3779b1) >>> 16) & this.idxMask;
    while (this.idxSvc[h]! >= 0) h = (h + 1) & this.idxMask;
    this.idxAddr[h] = addr;
    this.idxPort[h] = s.port;
    this.idxProto[h] = s.proto;
    this.idxSvc[h] = s.id;
  }

  /**
   * Take service `s` out of the lookup index in O(cluster) (linear probing's backward-shift
   * deletion: later entries of the cluster that may not stay behind the hole move into it), so
   * deleting n services is not n rebuilds.
   */
  private indexRemove(s: Service): void {
    const mask = this.idxMask;
    let h = (Math.imul((s.addr | 0) ^ (s.port << 8) ^ s.proto, 0x9e3779b1) >>> 16) & mask;
    while (this.idxSvc[h] !== s.id) {
      if (this.idxSvc[h]! < 0) return; // not indexed
      h = (h + 1) & mask;
    }
    let hole = h;
    for (let j = (hole + 1) & mask; this.idxSvc[j]! >= 0; j = (j + 1) & mask) {
      const home =
        (Math.imul(this.idxAddr[j]! ^ (this.idxPort[j]! << 8) ^ this.idxProto[j]!, 0x9e3779b1) >>> 16) & mask;
      // the entry at j may fill the hole when its home is not in (hole, j] (cyclically)
      if (hole <= j ? home > hole && home <= j : home > hole || home <= j) continue;
      this.idxAddr[hole] = this.idxAddr[j]!;
      this.idxPort[hole] = this.idxPort[j]!;
      this.idxProto[hole] = this.idxProto[j]!;
      this.idxSvc[hole] = this.idxSvc[j]!;
      hole = j;
    }
    this.idxSvc[hole] = -1;
  }

  /** Rebuild the lookup index (control plane, when it grows). */
  private reindex(): void {
    let size = 16;
    while (size < this.byKey.size * 4) size *= 2;
    this.idxAddr = new Int32Array(size);
    this.idxPort = new Uint16Array(size);
    this.idxProto = new Uint8Array(size);
    this.idxSvc = new Int32Array(size).fill(-1);
    this.idxMask = size - 1;
    for (const s of this.byKey.values()) {
      const addr = s.addr | 0;
      let h = (Math.imul(addr ^ (s.port << 8) ^ s.proto, 0x9e3779b1) >>> 16) & this.idxMask;
      while (this.idxSvc[h]! >= 0) h = (h + 1) & this.idxMask;
      this.idxAddr[h] = addr;
      this.idxPort[h] = s.port;
      this.idxProto[h] = s.proto;
      this.idxSvc[h] = s.id;
    }
    let msize = 4;
    while (msize < this.byMark.size * 4) msize *= 2;
    this.markKey = new Int32Array(msize);
    this.markSvc = new Int32Array(msize).fill(-1);
    this.markMask = msize - 1;
    this.markCount = this.byMark.size;
    for (const s of this.byMark.values()) {
      const m = s.fwmark | 0;
      let h = (Math.imul(m, 0x9e3779b1) >>> 16) & this.markMask;
      while (this.markSvc[h]! >= 0) h = (h + 1) & this.markMask;
      this.markKey[h] = m;
      this.markSvc[h] = s.id;
    }
  }

  /** True when addr is the VIP of some service, or the single destination of a MARK rule. */
  isVip(addr: number): boolean {
    return this.vipRefs.has(addr >>> 0) || (this.markVips.size !== 0 && this.markVips.has(addr >>> 0));
  }

  vips(): number[] {
    const out = [...this.vipRefs.keys()];
    for (const a of this.markVips) if (!this.vipRefs.has(a)) out.push(a);
    return out;
  }

  /**
   * The destinations that MARK rules name (src/tables/marks.ts): answered as VIPs, since a
   * fwmark service has no address of its own. Bumps `generation` when the set changes.
   */
  setMarkVips(addrs: readonly number[]): void {
    const next = new Set(addrs.map((a) => a >>> 0));
    if (next.size === this.markVips.size && [...next].every((a) => this.markVips.has(a))) return;
    this.markVips = next;
    this.generation++;
    this.journal?.({ op: "markVips", addrs: [...next] });
  }

  /** The destinations of MARK rules answered as VIPs (setMarkVips), for the journal's snapshot. */
  markVipList(): number[] {
    return [...this.markVips];
  }

  /** True when addr is a FULLNAT local address of some service (the director answers ARP for it). */
  isLaddr(addr: number): boolean {
    return this.laddrRefs.has(addr >>> 0);
  }

  // ---- control plane ----

  find(key: ServiceKey): Service | undefined {
    if (key.fwmark) return this.byMark.get(key.fwmark);
    return this.byKey.get(serviceKey(key.proto, key.addr, key.port));
  }

  private mustFind(key: ServiceKey): Service {
    const s = this.find(key);
    if (!s) throw new ControlError("ESRCH", "No such service");
    return s;
  }

  list(): Service[] {
    const out: Service[] = [];
    for (const s of this.services) if (s) out.push(s);
    return out;
  }

  private checkOptions(key: ServiceKey, opts: ServiceOptions): SchedulerModule {
    const mod = this.resolve(opts.sched);
    if (!mod) throw new ControlError("ENOENT", `Scheduler not found: ${opts.sched}`);
    if ((opts.flags & SVC_F_PERSISTENT) !== 0 && (opts.timeout < 1 || opts.timeout > MAX_PERSIST_TIMEOUT)) {
      throw new ControlError("EINVAL", "Invalid persistence timeout");
    }
    if (!key.fwmark && !isUnicastAddr(key.addr)) {
      throw new ControlError("EINVAL", `${u32ToIp(key.addr)} is not a unicast address`);
    }
    if (!key.fwmark && key.port === 0 && (opts.flags & SVC_F_PERSISTENT) === 0) {
      throw new ControlError("EINVAL", "Zero port specified for non-persistent service");
    }
    return mod;
  }

  addService(key: ServiceKey, opts: ServiceOptions): Service {
    if (this.find(key)) throw new ControlError("EEXIST", "Service already exists");
    const mod = this.checkOptions(key, opts);
    const s = new Service(key.proto, key.addr, key.port, mod.name);
    s.fwmark = key.fwmark ?? 0;
    this.applyOptions(s, opts);
    s.sched = mod.create(s);
    const id = this.freeSvc.pop() ?? this.services.length;
    s.id = id;
    this.services[id] = s;
    if (s.fwmark) this.byMark.set(s.fwmark, s);
    else {
      this.byKey.set(serviceKey(s.proto, s.addr, s.port), s);
      this.vipRefs.set(s.addr, (this.vipRefs.get(s.addr) ?? 0) + 1);
    }
    s.sched.onDestsChanged?.(s.dests);
    if (s.fwmark)
      this.reindex(); // the mark index (few services)
    else this.indexAdd(s);
    this.generation++;
    this.journal?.({ op: "addService", id, key: keyCopy(key), opts: { ...opts } });
    return s;
  }

  private applyOptions(s: Service, opts: ServiceOptions): void {
    const synProxy = opts.synProxy ?? (s.flags & SVC_F_SYNPROXY) !== 0;
    if (synProxy) {
      if (s.proto !== IPPROTO_TCP && !s.fwmark)
        throw new ControlError("EINVAL", "SYN proxy (--synproxy) applies to TCP services only", true);
      if ((opts.proxyProtocol ?? s.proxyProtocol) !== 0)
        throw new ControlError(
          "EINVAL",
          "SYN proxy (--synproxy) and the PROXY protocol cannot be combined on one service",
          true,
        );
      const bad = s.dests.find((d) => (d.flags & DEST_F_AVAILABLE) !== 0 && !synProxyFwdOk(d.fwd));
      if (bad)
        throw new ControlError(
          "EINVAL",
          `SYN proxy (--synproxy) needs NAT (-m) or FULLNAT (--fullnat) real servers: the director does not see the replies of ${u32ToIp(bad.addr)}:${bad.port} (${bad.fwd === FwdMethod.TUNNEL ? "TUN" : "DR"})`,
          true,
        );
    }
    if (opts.proxyProtocol !== undefined) {
      if (opts.proxyProtocol !== 0 && opts.proxyProtocol !== 1 && opts.proxyProtocol !== 2) {
        throw new ControlError("EINVAL", "PROXY protocol version must be 1 or 2");
      }
      if (opts.proxyProtocol !== 0 && s.proto !== IPPROTO_TCP) {
        throw new ControlError("EINVAL", "PROXY protocol applies to TCP services only");
      }
      s.proxyProtocol = opts.proxyProtocol;
    }
    s.flags = (opts.flags & ~SVC_F_SYNPROXY) | (synProxy ? SVC_F_SYNPROXY : 0);
    s.timeout = (opts.flags & SVC_F_PERSISTENT) !== 0 ? opts.timeout || DEFAULT_PERSIST_TIMEOUT : 0;
    s.netmask = opts.netmask >>> 0;
  }

  editService(key: ServiceKey, opts: ServiceOptions): Service {
    const s = this.mustFind(key);
    const mod = this.checkOptions(key, opts);
    this.applyOptions(s, opts);
    if (mod.name !== s.schedName) {
      s.schedName = mod.name;
      s.sched = mod.create(s);
    }
    s.sched?.onDestsChanged?.(s.dests);
    this.generation++;
    this.journal?.({ op: "editService", key: keyCopy(key), opts: { ...opts } });
    return s;
  }

  deleteService(key: ServiceKey): void {
    const s = this.mustFind(key);
    this.removeService(s);
    this.journal?.({ op: "deleteService", key: keyCopy(key) });
  }

  private removeService(s: Service): void {
    for (const a of s.laddrs?.list() ?? []) this.unrefLaddr(a);
    for (const d of s.dests) this.detachDest(d);
    s.dests = [];
    if (s.fwmark) {
      this.byMark.delete(s.fwmark);
      this.reindex(); // the mark index (few services)
    } else {
      this.byKey.delete(serviceKey(s.proto, s.addr, s.port));
      const n = (this.vipRefs.get(s.addr) ?? 1) - 1;
      if (n <= 0) this.vipRefs.delete(s.addr);
      else this.vipRefs.set(s.addr, n);
      this.indexRemove(s);
    }
    this.services[s.id] = null;
    this.freeSvc.push(s.id);
    this.generation++;
  }

  clear(): void {
    for (const s of this.services) if (s) this.removeService(s);
    this.journal?.({ op: "clear" });
  }

  private static destMatch(d: Dest, addr: number, port: number): boolean {
    return d.addr === addr >>> 0 && d.port === port;
  }

  findDest(s: Service, addr: number, port: number): Dest | undefined {
    for (const d of s.dests) if (ServiceTable.destMatch(d, addr, port)) return d;
    return undefined;
  }

  private checkDest(o: DestOptions): void {
    if (!isUnicastAddr(o.addr)) {
      throw new ControlError("EINVAL", `real server ${u32ToIp(o.addr)} is not a unicast address`);
    }
    if (o.weight < 0 || o.weight > MAX_WEIGHT || !Number.isInteger(o.weight)) {
      throw new ControlError("EINVAL", "Invalid weight");
    }
    if (o.lThreshold > o.uThreshold && o.uThreshold !== 0) {
      throw new ControlError("EINVAL", "Lower threshold is higher than upper threshold");
    }
  }

  /** Dest port as the kernel stores it: DR and TUN use the service port (except fwmark services). */
  private static effectivePort(s: Service, o: DestOptions): number {
    if ((o.fwd === FwdMethod.ROUTE || o.fwd === FwdMethod.TUNNEL) && !s.fwmark) return s.port;
    return o.port;
  }

  /** A SYN-proxy service takes NAT and FULLNAT real servers only. */
  private static checkSynProxyDest(s: Service, o: DestOptions): void {
    if ((s.flags & SVC_F_SYNPROXY) !== 0 && !synProxyFwdOk(o.fwd))
      throw new ControlError(
        "EINVAL",
        "SYN proxy (--synproxy) service: real servers must be NAT (-m) or FULLNAT (--fullnat); the director does not see DR or TUN replies",
        true,
      );
  }

  addDest(key: ServiceKey, o: DestOptions): Dest {
    const s = this.mustFind(key);
    this.checkDest(o);
    ServiceTable.checkSynProxyDest(s, o);
    const port = ServiceTable.effectivePort(s, o);
    if (this.findDest(s, o.addr, port)) throw new ControlError("EEXIST", "Destination already exists");
    const d = new Dest(o.addr, port, o.weight, o.fwd, o.uThreshold, o.lThreshold);
    d.tunType = o.tunType ?? 0;
    d.tunPort = o.tunPort ?? 0;
    d.svc = s;
    const id = this.freeDest.pop() ?? this.dests.length;
    d.id = id;
    this.dests[id] = d;
    s.dests.unshift(d); // the kernel adds new dests at the head of the list
    s.sched?.onDestsChanged?.(s.dests);
    this.generation++;
    this.journal?.({ op: "addDest", id, key: keyCopy(key), dest: { ...o } });
    return d;
  }

  editDest(key: ServiceKey, o: DestOptions): Dest {
    const s = this.mustFind(key);
    this.checkDest(o);
    ServiceTable.checkSynProxyDest(s, o);
    const d = this.findDest(s, o.addr, ServiceTable.effectivePort(s, o));
    if (!d) throw new ControlError("ENOENT", "No such destination");
    d.weight = o.weight;
    if (o.weight > 0) d.lastWeight = o.weight;
    d.fwd = o.fwd;
    d.uThreshold = o.uThreshold;
    d.lThreshold = o.lThreshold;
    d.tunType = o.tunType ?? d.tunType;
    d.tunPort = o.tunPort ?? d.tunPort;
    // Thresholds may have changed: re-evaluate overload as the kernel does on update.
    if (d.uThreshold === 0 || d.activeConns + d.inactConns < d.uThreshold) d.flags &= ~2;
    s.sched?.onDestsChanged?.(s.dests);
    this.generation++;
    this.journal?.({ op: "editDest", key: keyCopy(key), dest: { ...o } });
    return d;
  }

  deleteDest(key: ServiceKey, addr: number, port: number): void {
    const s = this.mustFind(key);
    let d = this.findDest(s, addr, port);
    if (!d && !s.fwmark) d = this.findDest(s, addr, s.port);
    if (!d) throw new ControlError("ENOENT", "No such destination");
    s.dests.splice(s.dests.indexOf(d), 1);
    this.detachDest(d);
    s.sched?.onDestsChanged?.(s.dests);
    this.generation++;
    this.journal?.({ op: "deleteDest", key: keyCopy(key), addr: d.addr, port: d.port });
  }

  /** Take a dest out of service; its slot stays while connections still refer to it. */
  private detachDest(d: Dest): void {
    d.flags &= ~DEST_F_AVAILABLE;
    // Only a dest that connections refer to has any to expire: the hook may walk the whole
    // connection table (expire_nodest_conn), and health checks remove thousands of idle dests.
    if (d.activeConns + d.inactConns + d.persistConns !== 0) this.hooks.destRemoved(d);
    this.releaseDestIfUnused(d);
  }

  /** Free a removed dest's slot once no connection refers to it (called by conntrack too). */
  releaseDestIfUnused(d: Dest): void {
    if ((d.flags & DEST_F_AVAILABLE) !== 0) return;
    if (d.activeConns + d.inactConns + d.persistConns !== 0) return;
    if (d.id >= 0 && this.dests[d.id] === d) {
      this.dests[d.id] = null;
      this.freeDest.push(d.id);
    }
  }

  // ---- FULLNAT local addresses (lvsadm --add-laddr / --del-laddr / --get-laddr) ----

  addLaddr(key: ServiceKey, addr: number): void {
    const s = this.mustFind(key);
    if (!s.laddrs) s.laddrs = new LocalAddrPool(this.laddrSlice.index, this.laddrSlice.count);
    if (!s.laddrs.add(addr)) throw new ControlError("EEXIST", "Local address already exists");
    this.laddrRefs.set(addr >>> 0, (this.laddrRefs.get(addr >>> 0) ?? 0) + 1);
    this.generation++;
    this.journal?.({ op: "addLaddr", key: keyCopy(key), addr });
  }

  deleteLaddr(key: ServiceKey, addr: number): void {
    const s = this.mustFind(key);
    if (!s.laddrs?.remove(addr)) throw new ControlError("ENOENT", "No such local address");
    this.unrefLaddr(addr >>> 0);
    this.generation++;
    this.journal?.({ op: "deleteLaddr", key: keyCopy(key), addr });
  }

  getLaddrs(key: ServiceKey): number[] {
    return this.mustFind(key).laddrs?.list() ?? [];
  }

  private unrefLaddr(addr: number): void {
    const n = (this.laddrRefs.get(addr) ?? 1) - 1;
    if (n <= 0) this.laddrRefs.delete(addr);
    else this.laddrRefs.set(addr, n);
  }

  /** -Z: zero the counters of one service (and its dests) or of all. */
  zero(key?: ServiceKey): void {
    const list = key ? [this.mustFind(key)] : this.list();
    for (const s of list) {
      s.conns = s.inPkts = s.outPkts = s.inBytes = s.outBytes = 0;
      for (const d of s.dests) d.conns = d.inPkts = d.outPkts = d.inBytes = d.outBytes = 0;
    }
    this.generation++;
    this.journal?.(key ? { op: "zero", key: keyCopy(key) } : { op: "zero" });
  }
}
