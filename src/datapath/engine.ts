/**
 * The engine: one loop over a batch of frames. Classify, look up or create the connection,
 * apply the connection's forwarding mode, set the Ethernet header for the next hop, and mark
 * the frame's egress link. Frames the director generates itself (ARP replies and requests,
 * ICMP echo replies and errors) go into a separate transmit batch.
 *
 * Nothing on this path allocates, throws, awaits or builds strings: parsing fills one reused
 * FrameView, lookups walk typed arrays, drops bump a counter by reason (src/datapath/drops.ts).
 *
 * The engine also implements the control plane's view of the director (ControlTarget).
 */

import type { RateSource } from "../control/estimator.js";
import type { ConnEntry, ControlTarget, LinkStatRow, Timeouts } from "../control/target.js";
import { IPPROTO_ICMP, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { DEST_F_AVAILABLE, type Dest, FwdMethod, type Service, SVC_F_ONEPACKET } from "../tables/model.js";
import { ServiceTable } from "../tables/services.js";
import { Sysctl } from "../tables/sysctl.js";
import { clock } from "./clock.js";
import { FragCache } from "./conntrack/frags.js";
import { DIR_INPUT, DIR_OUTPUT, TcpState } from "./conntrack/states.js";
import { CONN_F_ONE_PACKET, CONN_F_TEMPLATE, ConnTable } from "./conntrack/table.js";
import { DROP_COUNT, DROP_NAMES, Drop } from "./drops.js";
import { EGRESS_NONE, FrameBatch, HEADROOM } from "./io/batch.js";
import { drMode } from "./modes/dr.js";
import { fullnatMode } from "./modes/fullnat.js";
import { natMode } from "./modes/nat.js";
import { tunMode } from "./modes/tun.js";
import type { ForwardMode, ModeContext } from "./modes/types.js";
import { NEIGH_INCOMPLETE, NEIGH_NONE } from "./net/neigh.js";
import { L2_NEIGH_MISS, type Link, Net } from "./net/net.js";
import {
  emitArpReply,
  emitArpRequest,
  emitGratuitousArp,
  emitIcmpEchoReply,
  emitIcmpError,
} from "./packet/emit.js";
import { parseFrame } from "./packet/parse.js";
import { decTtl } from "./packet/rewrite.js";
import {
  ETH_P_ARP,
  FrameView,
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
} from "./packet/view.js";

export interface EngineOptions {
  /** Maximum connections + templates (default 1 << 20). */
  maxConns?: number;
  /** Hash buckets (default: next power of two >= maxConns). */
  buckets?: number;
  /** Capacity of the batch for director-generated frames (default 256). */
  txCapacity?: number;
  /** Connection-table slots examined for expiry per batch (default 256). */
  sweepPerBatch?: number;
  /** Frames that may wait for ARP resolution at once (default 64). */
  pendingMax?: number;
}

const FTP_PORT = 21;
/** Minimum interval between ARP requests for one address. */
const ARP_RETRY_MS = 1000;
/** ARP requests sent for an address before its waiting frames are dropped. */
const ARP_MAX_PROBES = 3;
/** How long a frame may wait for its next hop's MAC. */
const PENDING_MS = 3000;
/** `output` result: the frame waits in the pending queue for ARP resolution. */
const QUEUED = -1;
/** `l4`/`icmp` result: the frame was answered or absorbed by the director itself. */
const CONSUMED = -2;

export class Engine implements ControlTarget, ModeContext {
  readonly table: ServiceTable;
  readonly ct: ConnTable;
  readonly net = new Net();
  readonly sysctl = new Sysctl();
  /** Drop counters by reason (src/datapath/drops.ts). */
  readonly drops = new Float64Array(DROP_COUNT);
  /** Frames forwarded (egress set) and frames generated. */
  forwarded = 0;
  generated = 0;
  /** Modes by forwarding method (index = FwdMethod). */
  readonly modes: (ForwardMode | null)[] = [natMode, drMode, tunMode, fullnatMode, null];
  /** Bit l set when the last `process` gave a frame of its batch egress link l (links < 31). */
  egressMask = 0;
  /** ModeContext: drop reason set by a mode that refuses a frame, and free bytes after the frame. */
  modeDrop = 0;
  room = 0;
  /** Director-generated frames of the current batch. */
  readonly tx: FrameBatch;
  sweepPerBatch: number;
  private readonly v = new FrameView();
  private readonly scratch = new Uint8Array(2048);
  private readonly scratchDv = new DataView(this.scratch.buffer);
  private readonly scratchView = new FrameView();
  /** First fragments seen, so later fragments follow their connection. */
  readonly frags = new FragCache();
  /** Frames waiting for their next hop's MAC (bounded; copied in, sent once ARP answers). */
  readonly pending: FrameBatch;
  private readonly pendingNh: Uint32Array;
  private readonly pendingDeadline: Float64Array;
  /** Frames that had to wait for ARP resolution. */
  queued = 0;
  /** Optional rate estimator for `--rate` (set by lvsd). */
  rates?: RateSource;
  /** Per-link counters for `lvsadm --links` (set by lvsd, which owns the links). */
  linkStats?: () => LinkStatRow[];

  constructor(opts: EngineOptions = {}, table = new ServiceTable()) {
    this.table = table;
    this.ct = new ConnTable(opts.maxConns ?? 1 << 20, table, opts.buckets ?? 0);
    this.tx = new FrameBatch(opts.txCapacity ?? 256);
    this.sweepPerBatch = opts.sweepPerBatch ?? 256;
    const pendingMax = opts.pendingMax ?? 64;
    this.pending = new FrameBatch(pendingMax);
    this.pendingNh = new Uint32Array(pendingMax);
    this.pendingDeadline = new Float64Array(pendingMax);
    this.ct.releaseHooks[FwdMethod.FULLNAT] = (t: ConnTable, c: number) => {
      const svc = table.services[t.svc[c]!];
      svc?.laddrs?.release(t.laddr[c]! | 0, t.lport[c]!, t.proto[c] === IPPROTO_TCP ? 0 : 1);
    };
    table.hooks = {
      destRemoved: (d: Dest) => {
        if (this.sysctl.expireNodestConn) this.ct.flushDest(d.id);
      },
    };
  }

  get connTabSize(): number {
    return this.ct.bucketCount;
  }

  /** Register a mode for its forwarding method (DR, TUN, FULLNAT come in later modules). */
  setMode(m: ForwardMode): void {
    this.modes[m.kind] = m;
  }

  // ------------------------------------------------------------------ the batch loop

  /**
   * Process `batch` at time `nowMs`: sets `batch.egress[i]` for every frame to forward, and
   * fills `this.tx` (reset first) with generated frames.
   */
  process(batch: FrameBatch, nowMs: number): void {
    clock.nowMs = nowMs;
    this.tx.reset();
    this.egressMask = 0;
    const v = this.v;
    const buf = batch.buf;
    const dv = batch.dv;
    for (let i = 0; i < batch.count; i++) {
      batch.egress[i] = EGRESS_NONE;
      const st = parseFrame(buf, dv, batch.off[i]!, batch.len[i]!, v);
      if (st !== 0) {
        this.drops[st]!++;
        continue;
      }
      if (v.etherType === ETH_P_ARP) {
        this.arp(v, batch.link[i]!);
        continue;
      }
      const p = v.proto;
      let r: number;
      if (p === IPPROTO_TCP || p === IPPROTO_UDP) r = this.l4(v, batch, i);
      else if (p === IPPROTO_ICMP) r = this.icmp(v, batch, i);
      else r = Drop.PROTO;
      if (r > 0) this.drops[r]!++;
      else if (r === 0) this.forwarded++;
      else if (r === QUEUED) this.queued++;
    }
    if (this.sweepPerBatch > 0) this.ct.sweep(this.sweepPerBatch);
  }

  /** TCP/UDP: returns 0 when the frame was forwarded, else a drop reason. */
  private l4(v: FrameView, batch: FrameBatch, i: number): number {
    const ct = this.ct;
    const p = v.proto;
    if (v.laterFrag !== 0) {
      const c = this.frags.lookup(v.saddr | 0, v.daddr | 0, v.ipId, p);
      if (c < 0 || !this.fragMatches(v, c, this.frags.lastDir)) return Drop.FRAGMENT;
      return this.xmit(v, batch, i, c, this.frags.lastDir);
    }
    let dir = DIR_INPUT;
    let c = ct.lookupIn(p, v.saddr | 0, v.sport, v.daddr | 0, v.dport);
    if (c < 0) {
      c = ct.lookupOut(p, v.saddr | 0, v.sport, v.daddr | 0, v.dport);
      if (c >= 0) dir = DIR_OUTPUT;
    }
    if (c >= 0) {
      const d = this.table.dests[ct.dest[c]!];
      if (d === null || d === undefined || (d.flags & DEST_F_AVAILABLE) === 0) {
        if (this.sysctl.expireNodestConn !== 0) {
          ct.free(c);
          return Drop.NODEST_CONN;
        }
      } else if (dir === DIR_INPUT && (ct.flags[c]! & CONN_F_ONE_PACKET) !== 0) {
        // one-packet scheduling: every datagram is scheduled on its own
        ct.free(c);
        c = -1;
      } else if (
        dir === DIR_INPUT &&
        p === IPPROTO_TCP &&
        (v.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN &&
        this.sysctl.connReuseMode !== 0 &&
        this.reusable(c)
      ) {
        // conn_reuse_mode: a new SYN on a closing entry starts a new connection.
        ct.free(c);
        c = -1;
      }
    }
    if (c < 0) {
      const svc = this.table.lookup(p, v.daddr | 0, v.dport);
      if (svc === undefined) return this.net.isLocal(v.daddr | 0) ? Drop.LOCAL : Drop.NO_SERVICE;
      if (
        p === IPPROTO_TCP &&
        this.sysctl.sloppyTcp === 0 &&
        (v.tcpFlags & (TCP_SYN | TCP_RST)) !== TCP_SYN
      ) {
        return Drop.NO_CONN;
      }
      c = this.schedule(v, svc);
      if (c < 0) {
        if (c === -Drop.NO_DEST || c === -Drop.LADDR_EXHAUSTED)
          this.sendIcmpError(v, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, v.daddr);
        return -c;
      }
    }
    if (v.mf !== 0) this.frags.record(v.saddr | 0, v.daddr | 0, v.ipId, p, c, dir);
    return this.xmit(v, batch, i, c, dir);
  }

  /** A later fragment's cached connection must still be the flow it was recorded for. */
  private fragMatches(v: FrameView, c: number, dir: number): boolean {
    const ct = this.ct;
    if (ct.proto[c] !== v.proto) return false;
    if (dir === DIR_INPUT) return ct.caddr[c] === v.saddr && ct.vaddr[c] === v.daddr;
    return ct.daddr[c] === v.saddr && ct.laddr[c] === v.daddr;
  }

  /** Apply connection c's mode to the frame in direction `dir` and send it on. */
  private xmit(v: FrameView, batch: FrameBatch, i: number, c: number, dir: number, icmp = false): number {
    const ct = this.ct;
    const mode = this.modes[ct.fwd[c]!];
    if (mode === null || mode === undefined) return Drop.MODE_UNSUPPORTED;
    if (mode.decrementsTtl) {
      if (v.ttl <= 1) {
        // No ICMP error about an ICMP error (RFC 1122 3.2.2).
        if (!icmp) this.sendIcmpError(v, ICMP_TIME_EXCEEDED, 0, 0, 0);
        return Drop.TTL_EXCEEDED;
      }
      decTtl(v);
    }
    const svc = this.table.services[ct.svc[c]!];
    const d = this.table.dests[ct.dest[c]!];
    const bytes = v.ipTotalLen;
    this.room = batch.room(i) - v.len;
    if (!icmp) {
      if (v.proto === IPPROTO_TCP && v.l4Off >= 0) ct.tcpTransition(c, dir, v.tcpFlags);
      else ct.touch(c);
    }
    let nh: number;
    if (dir === DIR_INPUT) {
      if (svc) {
        svc.inPkts++;
        svc.inBytes += bytes;
      }
      if (d) {
        d.inPkts++;
        d.inBytes += bytes;
      }
      nh = icmp ? mode.icmpIn(v, ct, c, this) : mode.inbound(v, ct, c, this);
    } else {
      if (svc) {
        svc.outPkts++;
        svc.outBytes += bytes;
      }
      if (d) {
        d.outPkts++;
        d.outBytes += bytes;
      }
      nh = icmp ? mode.icmpOut(v, ct, c, this) : mode.outbound(v, ct, c, this);
    }
    if (nh === -1) return this.modeDrop;
    batch.off[i] = v.base;
    batch.len[i] = v.len;
    return this.output(v, batch, i, nh);
  }

  /** Entry states in which a new SYN from the client is a new connection (conn_reuse_mode). */
  private reusable(c: number): boolean {
    const s = this.ct.state[c]!;
    return (
      s === TcpState.TIME_WAIT ||
      s === TcpState.CLOSE ||
      (s === TcpState.FIN_WAIT && this.ct.fwd[c] !== FwdMethod.MASQ)
    );
  }

  /**
   * ip_vs_schedule / ip_vs_sched_persist: pick a dest and create the connection (and the
   * persistence template). Returns the slot, or a negated drop reason.
   */
  private schedule(v: FrameView, svc: Service): number {
    const ct = this.ct;
    const sched = svc.sched;
    if (sched === null) return -Drop.NO_DEST;
    let tpl = -1;
    let d: Dest | undefined;
    if (svc.timeout !== 0) {
      const snet = v.saddr & svc.netmask; // int32
      let tp = v.proto;
      let tvaddr = v.daddr | 0;
      let tvport = 0;
      if (svc.fwmark !== 0) {
        tp = 0;
        tvaddr = svc.fwmark | 0;
      } else if (v.dport === svc.port && svc.port !== FTP_PORT) {
        tvport = v.dport;
      }
      tpl = ct.lookupTemplate(tp, snet, tvaddr, tvport);
      if (tpl >= 0) {
        d = this.table.dests[ct.dest[tpl]!] ?? undefined;
        if (
          d === undefined ||
          (d.flags & DEST_F_AVAILABLE) === 0 ||
          (this.sysctl.expireQuiescentTemplate !== 0 && d.weight === 0)
        ) {
          ct.invalidateTemplate(tpl);
          tpl = -1;
          d = undefined;
        }
      }
      if (tpl < 0) {
        d = sched.select(svc, v);
        if (d === undefined) return -Drop.NO_DEST;
        tpl = ct.createTemplate(
          tp,
          snet,
          tvaddr | 0,
          tvport,
          d,
          tvport !== 0 ? d.port : 0,
          svc.id,
          svc.timeout,
        );
        if (tpl < 0) return -Drop.TABLE_FULL;
      } else {
        ct.touchTemplate(tpl);
      }
    } else {
      d = sched.select(svc, v);
      if (d === undefined) return -Drop.NO_DEST;
    }
    if (d === undefined) return -Drop.NO_DEST;
    const mode = this.modes[d.fwd];
    if (mode === null || mode === undefined) return -Drop.MODE_UNSUPPORTED;
    // Port-zero (all ports) services keep the packet's port; others map to the dest's port.
    const dport = svc.port !== 0 && v.dport === svc.port && d.port !== 0 ? d.port : v.dport;
    let laddr = v.saddr;
    let lport = v.sport;
    const pslot = v.proto === IPPROTO_TCP ? 0 : 1;
    if (d.fwd === FwdMethod.FULLNAT) {
      const pool = svc.laddrs;
      if (pool === null || !pool.alloc(pslot)) return -Drop.LADDR_EXHAUSTED;
      laddr = pool.allocAddr;
      lport = pool.allocPort;
    }
    // Addresses as int32 across the call (no boxing); the table stores them as uint32.
    const c = ct.create(
      v.proto,
      v.saddr | 0,
      v.sport,
      v.daddr | 0,
      v.dport,
      d.addr | 0,
      dport,
      laddr | 0,
      lport,
      d.fwd,
      mode.inputOnly,
      d,
      svc.id,
      tpl,
    );
    if (c < 0) {
      if (d.fwd === FwdMethod.FULLNAT) svc.laddrs?.release(laddr | 0, lport, pslot);
      return -Drop.TABLE_FULL;
    }
    if ((svc.flags & SVC_F_ONEPACKET) !== 0 && v.proto === IPPROTO_UDP) ct.flags[c]! |= CONN_F_ONE_PACKET;
    d.conns++;
    svc.conns++;
    return c;
  }

  /** Decrement TTL, set L2 for next hop `nh`, mark egress. Returns 0 or a drop reason. */
  private output(v: FrameView, batch: FrameBatch, i: number, nh: number): number {
    let base = v.base;
    if (v.vlanTci >= 0) {
      // Forwarded frames leave untagged: slide the MAC addresses over the 802.1Q tag.
      batch.buf.copyWithin(base + 4, base, base + 12);
      base += 4;
      batch.off[i] = base;
      batch.len[i] = batch.len[i]! - 4;
    }
    const link = this.net.setL2(batch.buf, base, nh);
    if (link < 0) {
      if (link === L2_NEIGH_MISS) {
        const hop = this.net.nextHop;
        this.solicit(hop);
        return this.enqueue(batch.buf, base, batch.len[i]!, hop) ? QUEUED : Drop.NEIGH_MISS;
      }
      return Drop.NO_ROUTE;
    }
    batch.egress[i] = link;
    this.egressMask |= 1 << link;
    return 0;
  }

  /** Copy a frame into the pending queue to wait for `hop`'s MAC. */
  private enqueue(buf: Uint8Array, off: number, len: number, hop: number): boolean {
    const p = this.pending;
    if (p.count >= p.capacity || len > p.slotSize - HEADROOM) return false;
    const j = p.count;
    const o = j * p.slotSize + HEADROOM;
    p.buf.set(buf.subarray(off, off + len), o);
    p.off[j] = o;
    p.len[j] = len;
    this.pendingNh[j] = hop;
    this.pendingDeadline[j] = clock.nowMs + PENDING_MS;
    p.count = j + 1;
    return true;
  }

  /** Remove pending frame j (the last one moves into its place). */
  private unqueue(j: number): void {
    const p = this.pending;
    const last = p.count - 1;
    if (j !== last) {
      const o = j * p.slotSize + HEADROOM;
      const lo = p.off[last]!;
      p.buf.copyWithin(o, lo, lo + p.len[last]!);
      p.off[j] = o;
      p.len[j] = p.len[last]!;
      this.pendingNh[j] = this.pendingNh[last]!;
      this.pendingDeadline[j] = this.pendingDeadline[last]!;
    }
    p.count = last;
  }

  /** Send the frames that were waiting for `hop` (its MAC is now known). */
  private releasePending(hop: number): void {
    const p = this.pending;
    for (let j = 0; j < p.count; ) {
      if (this.pendingNh[j] !== hop) {
        j++;
        continue;
      }
      const t = this.txSlot();
      if (t < 0) return;
      const tx = this.tx;
      const len = p.len[j]!;
      const src = p.off[j]!;
      tx.buf.set(p.buf.subarray(src, src + len), tx.off[t]!);
      const link = this.net.setL2(tx.buf, tx.off[t]!, hop);
      if (link >= 0) {
        tx.len[t] = len;
        tx.egress[t] = link;
        tx.link[t] = link;
        tx.count = t + 1;
        this.forwarded++;
      }
      this.unqueue(j);
    }
  }

  /**
   * Timer work (lvsd calls it a few times a second, between batches): expire frames that
   * waited too long for ARP, re-ask for next hops still unresolved, give up after
   * ARP_MAX_PROBES requests. Generated frames land in `tx` (reset first); send them.
   */
  maintain(nowMs: number): void {
    clock.nowMs = nowMs;
    this.tx.reset();
    const p = this.pending;
    const neigh = this.net.neigh;
    for (let j = 0; j < p.count; ) {
      const hop = this.pendingNh[j]!;
      const n = neigh.find(hop);
      const failed =
        n < 0 || (neigh.probes[n]! >= ARP_MAX_PROBES && nowMs - neigh.probed[n]! >= ARP_RETRY_MS);
      if (this.pendingDeadline[j]! <= nowMs || failed) {
        this.drops[Drop.NEIGH_MISS]!++;
        this.unqueue(j);
        continue;
      }
      this.solicit(hop);
      j++;
    }
  }

  /** Announce `vip` with gratuitous ARP on every link whose subnet holds it. Frames go to `tx`. */
  announce(vip: number): number {
    let n = 0;
    for (const l of this.net.links) {
      if (!l.onLink(vip)) continue;
      const j = this.txSlot();
      if (j < 0) break;
      const tx = this.tx;
      tx.len[j] = emitGratuitousArp(tx.buf, tx.off[j]!, l.mac, 0, vip);
      tx.egress[j] = l.id;
      tx.link[j] = l.id;
      tx.count = j + 1;
      this.generated++;
      n++;
    }
    return n;
  }

  // ------------------------------------------------------------------ ICMP

  private icmp(v: FrameView, batch: FrameBatch, i: number): number {
    if (v.laterFrag !== 0) return Drop.FRAGMENT;
    const t = v.icmpType;
    if (t === ICMP_ECHO) {
      if (this.net.isLocal(v.daddr) || this.table.isVip(v.daddr)) {
        this.echoReply(v);
        return CONSUMED;
      }
      return Drop.ICMP_UNRELATED;
    }
    if (t !== ICMP_DEST_UNREACH && t !== ICMP_SOURCE_QUENCH && t !== ICMP_TIME_EXCEEDED) {
      return this.net.isLocal(v.daddr) ? Drop.LOCAL : Drop.ICMP_UNRELATED;
    }
    if (v.innerProto === IPPROTO_IPIP && v.innerL3Off >= 0 && this.net.isLocal(v.innerSaddr)) {
      return this.tunnelIcmp(v);
    }
    if (v.innerL4Off < 0) return Drop.ICMP_UNRELATED;
    const ip = v.innerProto;
    if (ip !== IPPROTO_TCP && ip !== IPPROTO_UDP) return Drop.ICMP_UNRELATED;
    const ct = this.ct;
    // The embedded packet is one we sent; reversed, it is the key of its connection.
    let dir = DIR_INPUT;
    let c = ct.lookupIn(ip, v.innerDaddr | 0, v.innerDport, v.innerSaddr | 0, v.innerSport);
    if (c < 0) {
      c = ct.lookupOut(ip, v.innerDaddr | 0, v.innerDport, v.innerSaddr | 0, v.innerSport);
      if (c < 0) return Drop.ICMP_UNRELATED;
      dir = DIR_OUTPUT;
    }
    return this.xmit(v, batch, i, c, dir, true);
  }

  /**
   * An ICMP error about one of our IPIP tunnel packets (a router between us and a TUN real
   * server): find the connection of the packet inside the tunnel, remember the path MTU for
   * fragmentation-needed, and tell the client about its own packet, with the MTU reduced by the
   * tunnel header (ip_vs_in_icmp's IPIP branch).
   */
  private tunnelIcmp(v: FrameView): number {
    const b = v.buf;
    const dv = v.dv;
    const end = v.l3Off + v.ipTotalLen;
    const o = v.innerL3Off + v.innerHdrLen;
    if (o + 20 > end || b[o]! >>> 4 !== 4) return Drop.ICMP_UNRELATED;
    const ihl = (b[o]! & 15) * 4;
    if (ihl < 20 || o + ihl + 4 > end) return Drop.ICMP_UNRELATED;
    const p = b[o + 9]!;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) return Drop.ICMP_UNRELATED;
    const c = this.ct.lookupIn(
      p,
      dv.getUint32(o + 12),
      dv.getUint16(o + ihl),
      dv.getUint32(o + 16),
      dv.getUint16(o + ihl + 2),
    );
    if (c < 0 || this.ct.fwd[c] !== FwdMethod.TUNNEL) return Drop.ICMP_UNRELATED;
    let mtu = 0;
    if (v.icmpType === ICMP_DEST_UNREACH && v.icmpCode === ICMP_FRAG_NEEDED) {
      const pmtu = dv.getUint16(v.l4Off + 6);
      const d = this.table.dests[this.ct.dest[c]!];
      if (d && pmtu >= 68 + 20) d.pmtu = pmtu;
      if ((dv.getUint16(o + 6) & 0x4000) === 0) return CONSUMED; // the client does not do PMTUD
      mtu = pmtu > 68 + 20 ? pmtu - 20 : pmtu;
    }
    // Re-parse the client's packet from a scratch copy so the error can quote it.
    const len = Math.min(end - o, this.scratch.length - 14);
    this.scratch.fill(0, 0, 14);
    this.scratch[12] = 0x08;
    this.scratch.set(b.subarray(o, o + len), 14);
    const sv = this.scratchView;
    parseFrame(this.scratch, this.scratchDv, 0, 14 + len, sv);
    if (sv.etherType !== 0x0800 || sv.ipHdrLen === 0) return Drop.ICMP_UNRELATED;
    this.sendIcmpError(sv, v.icmpType, v.icmpCode, mtu, sv.daddr);
    return CONSUMED;
  }

  /** Slot for a generated frame in `tx`, or -1 (counted). */
  private txSlot(): number {
    const tx = this.tx;
    if (tx.count >= tx.capacity) {
      this.drops[Drop.TX_FULL]!++;
      return -1;
    }
    const j = tx.count;
    tx.off[j] = j * tx.slotSize + HEADROOM;
    tx.egress[j] = EGRESS_NONE;
    return j;
  }

  /** Route a generated frame in tx slot j to `daddr` and commit it. */
  private txCommit(j: number, len: number, daddr: number): void {
    if (len <= 0) return;
    const tx = this.tx;
    tx.len[j] = len;
    const link = this.net.setL2(tx.buf, tx.off[j]!, daddr);
    if (link < 0) {
      if (link === L2_NEIGH_MISS) this.solicit(this.net.nextHop);
      return;
    }
    tx.egress[j] = link;
    tx.link[j] = link;
    tx.count = j + 1;
    this.generated++;
  }

  /**
   * Send an ICMP error about the frame in `v` back to its source. `src` is the source address
   * to use, or 0 for the address of the link the reply leaves by.
   */
  sendIcmpError(v: FrameView, type: number, code: number, mtu: number, src: number): void {
    const j = this.txSlot();
    if (j < 0) return;
    const link = this.net.route(v.saddr);
    if (link < 0) return;
    const l: Link = this.net.links[link]!;
    const from = src !== 0 ? src : l.primaryAddr();
    const tx = this.tx;
    const len = emitIcmpError(tx.buf, tx.off[j]!, l.mac, 0, l.mac, 0, from, v.saddr, type, code, mtu, v);
    this.txCommit(j, len, v.saddr);
  }

  private echoReply(v: FrameView): void {
    const j = this.txSlot();
    if (j < 0) return;
    const tx = this.tx;
    const link = this.net.route(v.saddr);
    if (link < 0) return;
    const len = emitIcmpEchoReply(tx.buf, tx.off[j]!, v, this.net.links[link]!.mac, 0);
    this.txCommit(j, len, v.saddr);
  }

  // ------------------------------------------------------------------ ARP

  private arp(v: FrameView, link: number): void {
    const l = this.net.links[link];
    if (l === undefined) {
      this.drops[Drop.ARP_NOT_OURS]!++;
      return;
    }
    const now = clock.nowMs;
    const shaOff = v.l3Off + 8;
    const tpa = v.arpTpa;
    const mine =
      this.net.isLocal(tpa) || ((this.table.isVip(tpa) || this.table.isLaddr(tpa)) && l.onLink(tpa));
    // Learn the sender when it is on this link (requests to us, replies, gratuitous ARP);
    // refresh an existing entry from any ARP on the link.
    if (v.arpSpa !== 0 && l.onLink(v.arpSpa) && (mine || this.net.neigh.find(v.arpSpa) >= 0)) {
      this.net.neigh.learn(v.arpSpa, v.buf, shaOff, link, now);
      if (this.pending.count > 0) this.releasePending(v.arpSpa);
    }
    if (v.arpOp === 1 && mine) {
      const j = this.txSlot();
      if (j < 0) return;
      const tx = this.tx;
      const len = emitArpReply(tx.buf, tx.off[j]!, l.mac, 0, v.arpTpa, v.buf, shaOff, v.arpSpa);
      tx.len[j] = len;
      tx.egress[j] = link;
      tx.link[j] = link;
      tx.count = j + 1;
      this.generated++;
      return;
    }
    if (!mine && v.arpOp === 1) this.drops[Drop.ARP_NOT_OURS]!++;
  }

  /** Send an ARP request for `ip` (rate-limited per address). */
  private solicit(ip: number): void {
    const neigh = this.net.neigh;
    const n = neigh.findOrAdd(ip);
    if (n < 0) return;
    const now = clock.nowMs;
    if (neigh.probed[n]! !== 0 && now - neigh.probed[n]! < ARP_RETRY_MS) return;
    if (neigh.probes[n]! >= ARP_MAX_PROBES) {
      // Unresolved after ARP_MAX_PROBES: back off for a while before asking again.
      if (now - neigh.probed[n]! < 5 * ARP_RETRY_MS) return;
      neigh.probes[n] = 0;
    }
    const link = this.net.route(ip);
    if (link < 0) return;
    const j = this.txSlot();
    if (j < 0) return;
    neigh.probed[n] = now;
    neigh.probes[n] = neigh.probes[n]! + 1;
    if (neigh.state[n] === NEIGH_NONE) neigh.state[n] = NEIGH_INCOMPLETE;
    const l = this.net.links[link]!;
    const tx = this.tx;
    tx.len[j] = emitArpRequest(tx.buf, tx.off[j]!, l.mac, 0, l.primaryAddr(), ip);
    tx.egress[j] = link;
    tx.link[j] = link;
    tx.count = j + 1;
    this.generated++;
  }

  // ------------------------------------------------------------------ control plane

  conns(): ConnEntry[] {
    const ct = this.ct;
    const out: ConnEntry[] = [];
    const now = clock.nowMs;
    for (const i of ct.slots()) {
      out.push({
        proto: ct.proto[i]!,
        caddr: ct.caddr[i]!,
        cport: ct.cport[i]!,
        vaddr: ct.vaddr[i]!,
        vport: ct.vport[i]!,
        daddr: ct.daddr[i]!,
        dport: ct.dport[i]!,
        state: ct.stateName(i),
        expiresInMs: Math.max(0, ct.expires[i]! - now),
        template: (ct.flags[i]! & CONN_F_TEMPLATE) !== 0,
        fwd: ct.fwd[i]!,
      });
    }
    return out;
  }

  getTimeouts(): Timeouts {
    return {
      tcp: this.ct.tcpTimeoutMs[TcpState.ESTABLISHED]! / 1000,
      tcpfin: this.ct.tcpTimeoutMs[TcpState.FIN_WAIT]! / 1000,
      udp: this.ct.udpTimeoutMs / 1000,
    };
  }

  setTimeouts(t: Timeouts): void {
    if (t.tcp > 0) this.ct.tcpTimeoutMs[TcpState.ESTABLISHED] = t.tcp * 1000;
    if (t.tcpfin > 0) this.ct.tcpTimeoutMs[TcpState.FIN_WAIT] = t.tcpfin * 1000;
    if (t.udp > 0) this.ct.udpTimeoutMs = t.udp * 1000;
  }

  /** Drop counters by name (control plane). */
  dropCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let r = 1; r < DROP_COUNT; r++) if (this.drops[r]! > 0) out[DROP_NAMES[r]!] = this.drops[r]!;
    return out;
  }
}
