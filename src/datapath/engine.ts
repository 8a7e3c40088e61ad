/**
 * The engine: one loop over a batch of frames. Parse each frame in place, look its flow up in
 * the connection table or schedule a new connection, apply the connection's forwarding mode,
 * set the Ethernet header for the next hop and mark the frame's egress link.
 *
 * What is not the loop lives beside it and is called through narrow interfaces: ARP input,
 * the ARP queue and gratuitous ARP in the resolver (net/resolver.ts), ICMP echo, errors and
 * tunnel path MTU in icmp.ts, the frames the director generates in the transmit queue
 * (txqueue.ts), and what a mode may see of the director in ModeContext (modes/types.ts).
 * VRRP (docs/ha.md) meets the loop in two places only: adverts (IP protocol 112 to 224.0.0.18
 * or to one of our addresses) are handed to `vrrpSink`, which the control plane sets, and
 * `owner` (net/owner.ts) lists the addresses its instances do not own now.
 * The control plane reads and changes these tables between batches through its own adapter
 * (src/control/adapter.ts); nothing here imports the control plane.
 *
 * Nothing on this path allocates, throws, awaits or builds strings: parsing fills one reused
 * FrameView, lookups walk typed arrays, drops bump a counter by reason (drops.ts).
 */
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { MarkTable } from "../tables/marks.js";
import {
  DEST_F_AVAILABLE,
  type Dest,
  FwdMethod,
  type Service,
  SVC_F_ONEPACKET,
  SVC_F_SYNPROXY,
} from "../tables/model.js";
import { ServiceTable } from "../tables/services.js";
import { Sysctl } from "../tables/sysctl.js";
import { markOf } from "./classify.js";
import { clock } from "./clock.js";
import { FragCache } from "./conntrack/frags.js";
import { DIR_INPUT, DIR_OUTPUT, TcpState } from "./conntrack/states.js";
import { CONN_F_ONE_PACKET, CONN_F_SYNPROXY, CONN_F_SYNPROXY_WAIT, ConnTable } from "./conntrack/table.js";
import { DROP_COUNT, Drop } from "./drops.js";
import { FAST_LOOKED, FastPath } from "./fastpath.js";
import { ICMP_ANSWERED, Icmp } from "./icmp.js";
import { EGRESS_NONE, type FrameBatch } from "./io/batch.js";
import { ModeCall } from "./modes/context.js";
import { MODE_BY_FWD } from "./modes/index.js";
import type { ForwardMode } from "./modes/types.js";
import { L2_NEIGH_MISS, Net } from "./net/net.js";
import { Ownership } from "./net/owner.js";
import { Resolver } from "./net/resolver.js";
import { put16 } from "./packet/emit.js";
import { parseFrame, setTcpAck, setTcpSeq, tcpAck, tcpSeq, tcpWindow } from "./packet/parse.js";
import { decTtl, shiftInnerTcpAck, shiftInnerTcpSeq } from "./packet/rewrite.js";
import {
  ETH_P_ARP,
  FrameView,
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  ICMP_TIME_EXCEEDED,
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
} from "./packet/view.js";
import { IPPROTO_VRRP, VRRP_GROUP } from "./packet/vrrp.js";
import { getScheduler } from "./schedulers/index.js";
import type { SyncOut } from "./sync.js";
import {
  mssIndex,
  rewriteAsSyn,
  STASH_BYTES,
  SYN_RESEND_MS,
  SYNPROXY_MSS,
  SynProxy,
  setTcpFlags,
  writeReflected,
} from "./synproxy.js";
import { TxQueue } from "./txqueue.js";

/**
 * conn_reuse_mode on SYN-proxy services: an ACK whose ack - 1 lies less than this past the
 * entry's own cookie belongs to the entry's connection. A new connection's cookie lies past the
 * old one by the difference of the client's ISNs (the same hash, counter and MSS) or anywhere:
 * Linux's ISN for a tuple grows by one every 64 ns, so a port reused 1 µs later is past it.
 */
const OWN_ACK_SPAN = 16;

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

/**
 * Where the engine hands VRRP adverts (src/control/vrrp/manager.ts implements it). `advert` is
 * called inside `process` with the parsed frame (valid only during the call) and its link; it
 * may write frames into the engine's transmit queue (sent after the batch) but must not reset it.
 */
export interface VrrpSink {
  advert(v: FrameView, link: number): void;
}

/**
 * Where the engine hands connection-sync messages (src/control/sync/daemon.ts, the backup):
 * UDP to `Engine.syncPort` for the sync group or one of our addresses. Called inside `process`
 * with the parsed frame (valid only during the call); the sink copies what it keeps.
 */
export interface SyncSink {
  message(v: FrameView, link: number): void;
}

const FTP_PORT = 21;
/** Per-frame result: the frame waits in the resolver's queue for its next hop's MAC. */
const QUEUED = -1;
/** Per-frame result: the director answered or absorbed the frame itself. */
const CONSUMED = -2;

/** `l4`'s c0 when the connection has not been looked up yet (the fast path did not get that far). */
const NOT_LOOKED = -2;

/** Local ports tried per new FULLNAT connection when another service's connection holds one. */
const LADDR_TRIES = 16;

export class Engine {
  readonly table: ServiceTable;
  /**
   * The mangle table's PREROUTING chain (`lvs-iptables`, src/tables/marks.ts): the marks that
   * find `-f` services. Empty, it costs one comparison per packet looking for a service.
   */
  readonly marks: MarkTable;
  readonly ct: ConnTable;
  readonly net = new Net();
  readonly sysctl = new Sysctl();
  /** Drop counters by reason (drops.ts). */
  readonly drops = new Float64Array(DROP_COUNT);
  /** Frames forwarded in place (egress set), and frames that had to wait for ARP. */
  forwarded = 0;
  queued = 0;
  /** Modes by forwarding method (index = FwdMethod), from the registry in modes/index.ts. */
  readonly modes: readonly (ForwardMode | null)[] = MODE_BY_FWD;
  /** Bit l set when the last `process` gave a frame of its batch egress link l (links < 31). */
  egressMask = 0;
  /** Frames the director generates; `tx` is its batch, sent after each `process`/`maintain`. */
  readonly txq: TxQueue;
  readonly tx: FrameBatch;
  readonly resolver: Resolver;
  readonly icmp: Icmp;
  /** First fragments seen, so later fragments follow their connection. */
  readonly frags = new FragCache();
  /** Addresses VRRP says the director does not own now (net/owner.ts); empty without VRRP. */
  readonly owner = new Ownership();
  /** VRRP adverts go here; null (no VRRP): protocol 112 is dropped as `proto`. */
  vrrpSink: VrrpSink | null = null;
  /**
   * The defence's drop_packet (src/control/defense.ts sets them): while dropRate is not 0, one
   * new connection in dropRate is dropped (the kernel's ip_vs_todrop).
   */
  dropRate = 0;
  dropCounter = 0;
  /** Connection sync, master (src/datapath/sync.ts): null when no master sync daemon runs. */
  sync: SyncOut | null = null;
  /** Connection sync, backup: UDP to this port (-1: none) for `syncGroup` or us goes to `syncSink`. */
  syncPort = -1;
  syncGroup = 0;
  syncLink = -1;
  syncSink: SyncSink | null = null;
  sweepPerBatch: number;
  /** SYN proxy (synproxy.ts): cookies, the secret (the control plane rotates it), the stash. */
  readonly synproxy = new SynProxy();
  /**
   * The established-flow fast path (fastpath.ts): frames of established NAT and FULLNAT
   * connections (both ways) and DR connections (inbound) go through it without the general
   * path's parse and dispatch. Same results either way; off,
   * every frame takes the general path (tests compare the two).
   */
  fastPath = true;
  readonly fast: FastPath;
  private readonly v = new FrameView();
  /** Frames the SYN proxy writes into the transmit batch are parsed here. */
  private readonly sv = new FrameView();
  private readonly mx: ModeCall;
  /** Whether stash buffer s still belongs to a connection waiting for its server's SYN-ACK. */
  private readonly stashInUse = (s: number): boolean => {
    const c = this.synproxy.stashOwner[s]!;
    return (this.ct.flags[c]! & CONN_F_SYNPROXY_WAIT) !== 0 && this.ct.seqDelta[c] === s;
  };

  constructor(opts: EngineOptions = {}, table = new ServiceTable(getScheduler)) {
    this.table = table;
    this.marks = new MarkTable(table);
    this.marks.linkNames = () => this.net.links.map((l) => l.name);
    this.ct = new ConnTable(opts.maxConns ?? 1 << 20, table, opts.buckets ?? 0);
    this.txq = new TxQueue(opts.txCapacity ?? 256, this.drops);
    this.tx = this.txq.batch;
    this.resolver = new Resolver(this.net, table, this.txq, this.drops, opts.pendingMax ?? 64, this.owner);
    this.icmp = new Icmp(this.net, table, this.ct, this.txq, this.resolver, this.owner);
    this.mx = new ModeCall(this.net, this.icmp, this.ct, table);
    this.fast = new FastPath(this.ct, table, this.net);
    this.sweepPerBatch = opts.sweepPerBatch ?? 256;
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

  // ------------------------------------------------------------------ the batch loop

  /**
   * Process `batch` at time `nowMs`: sets `batch.egress[i]` for every frame to forward, and
   * fills `this.tx` (reset first) with generated frames.
   */
  process(batch: FrameBatch, nowMs: number): void {
    clock.nowMs = nowMs;
    this.txq.reset();
    this.egressMask = 0;
    const v = this.v;
    const buf = batch.buf;
    const dv = batch.dv;
    for (let i = 0; i < batch.count; i++) {
      batch.egress[i] = EGRESS_NONE;
      if (batch.link[i]! < 0) continue; // LINK_HANDED_OFF: another worker's (workers/handoff.ts)
      let c0 = NOT_LOOKED;
      let dir0 = DIR_INPUT;
      if (this.fastPath) {
        const eg = this.fast.forward(batch, i, this.syncPort, this.sync);
        if (eg >= 0) {
          batch.egress[i] = eg;
          this.egressMask |= 1 << eg;
          this.forwarded++;
          continue;
        }
        if (eg === FAST_LOOKED) {
          c0 = this.fast.conn;
          dir0 = this.fast.dir;
        }
      }
      const st = parseFrame(buf, dv, batch.off[i]!, batch.len[i]!, v);
      if (st !== 0) {
        this.drops[st]!++;
        continue;
      }
      const a = this.admit(buf, v, batch.link[i]!);
      if (a !== 0) {
        this.drops[a]!++;
        continue;
      }
      if (v.etherType === ETH_P_ARP) {
        this.resolver.input(v, batch.link[i]!);
        continue;
      }
      const p = v.proto;
      let r: number;
      if (v.dport === this.syncPort && p === IPPROTO_UDP && this.syncIn(v, batch.link[i]!)) r = CONSUMED;
      else if (p === IPPROTO_TCP || p === IPPROTO_UDP) r = this.l4(v, batch, i, c0, dir0);
      else if (p === IPPROTO_ICMP) r = this.icmpIn(v, batch, i);
      else if (p === IPPROTO_VRRP) r = this.vrrpIn(v, batch.link[i]!);
      else r = Drop.PROTO;
      if (r > 0) this.drops[r]!++;
      else if (r === 0) this.forwarded++;
      else if (r === QUEUED) this.queued++;
    }
    if (this.sweepPerBatch > 0) this.ct.sweep(this.sweepPerBatch);
  }

  /**
   * Timer work (lvsd calls it a few times a second, between batches): the resolver drops frames
   * that waited too long for ARP and asks again for next hops still unresolved. Generated
   * frames land in `tx` (reset first); send them.
   */
  maintain(nowMs: number): void {
    clock.nowMs = nowMs;
    this.txq.reset();
    this.resolver.maintain(nowMs);
  }

  /** Announce `vip` with gratuitous ARP on every link whose subnet holds it. Frames go to `tx`. */
  announce(vip: number): number {
    return this.resolver.announce(vip);
  }

  /** TCP/UDP: returns 0 when the frame was forwarded, else a drop reason. */
  private l4(v: FrameView, batch: FrameBatch, i: number, c0: number, dir0: number): number {
    const ct = this.ct;
    const p = v.proto;
    if (v.laterFrag !== 0) {
      const c = this.frags.lookup(v.saddr | 0, v.daddr | 0, v.ipId, p);
      if (c < 0 || !this.fragMatches(v, c, this.frags.lastDir)) return Drop.FRAGMENT;
      return this.xmit(v, batch, i, c, this.frags.lastDir);
    }
    let dir = dir0;
    let c = c0;
    if (c0 === NOT_LOOKED) {
      // (The fast path, when it got this far, did these same lookups: c0 and dir0 are theirs.)
      dir = DIR_INPUT;
      c = ct.lookupIn(p, v.saddr | 0, v.sport, v.daddr | 0, v.dport);
      if (c < 0) {
        c = ct.lookupOut(p, v.saddr | 0, v.sport, v.daddr | 0, v.dport);
        if (c >= 0) dir = DIR_OUTPUT;
      }
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
        this.sysctl.connReuseMode !== 0 &&
        this.startsNewConn(v, c)
      ) {
        // conn_reuse_mode: a new connection on a closing entry replaces it.
        ct.free(c);
        c = -1;
      }
    }
    if (c >= 0 && (ct.flags[c]! & CONN_F_SYNPROXY_WAIT) !== 0 && v.l4Off >= 0) {
      return dir === DIR_INPUT ? this.synProxyPending(v, batch, i, c) : this.synProxyServer(v, batch, i, c);
    }
    if (c < 0) {
      // VRRP: no new connections to an address whose instance is not MASTER (net/owner.ts).
      if (this.owner.count !== 0 && this.owner.disowned(v.daddr)) return Drop.NOT_OWNER;
      if (this.sysctl.rpFilter !== 0 && !this.rpOk(v.saddr, batch.link[i]!)) return Drop.RP_FILTER;
      // ip_vs_service_find: a marked packet finds the fwmark service of its mark first.
      let svc: Service | undefined;
      const mp = this.marks.program;
      if (mp.count !== 0) {
        const mark = markOf(mp, v, batch.link[i]!);
        if (mark !== 0) svc = this.table.lookupMark(mark);
      }
      if (svc === undefined) svc = this.table.lookup(p, v.daddr | 0, v.dport);
      if (svc === undefined) return this.net.isLocal(v.daddr | 0) ? Drop.LOCAL : Drop.NO_SERVICE;
      if ((svc.flags & SVC_F_SYNPROXY) !== 0 && p === IPPROTO_TCP) return this.synProxyNew(v, batch, i, svc);
      if (
        p === IPPROTO_TCP &&
        this.sysctl.sloppyTcp === 0 &&
        (v.tcpFlags & (TCP_SYN | TCP_RST)) !== TCP_SYN
      ) {
        return Drop.NO_CONN;
      }
      if (this.dropRate !== 0) {
        if (--this.dropCounter <= 0) {
          this.dropCounter = this.dropRate;
          return Drop.DEFENSE;
        }
      }
      c = this.schedule(v, svc);
      if (c < 0) {
        if (c === -Drop.NO_DEST || c === -Drop.LADDR_EXHAUSTED)
          this.icmp.sendError(v, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0, v.daddr);
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
    if (!icmp && v.ipTotalLen > this.net.minMtu && !mode.checksMtu) {
      const r = this.mtuCheck(v, c, dir);
      if (r !== 0) return r;
    }
    if (mode.decrementsTtl) {
      if (v.ttl <= 1) {
        // No ICMP error about an ICMP error (RFC 1122 3.2.2).
        if (!icmp) this.icmp.sendError(v, ICMP_TIME_EXCEEDED, 0, 0, 0);
        return Drop.TTL_EXCEEDED;
      }
      decTtl(v);
    }
    const svc = this.table.services[ct.svc[c]!];
    const d = this.table.dests[ct.dest[c]!];
    const bytes = v.ipTotalLen;
    const mx = this.mx;
    mx.room = batch.room(i) - v.len;
    if ((ct.flags[c]! & CONN_F_SYNPROXY) !== 0 && !icmp && v.l4Off >= 0 && v.proto === IPPROTO_TCP) {
      // SYN proxy: the server's sequence space is the cookie's shifted by seqDelta. Fields read
      // here and passed on as int32: a uint32 crossing a call that V8 does not inline is boxed.
      const delta = ct.seqDelta[c]! | 0;
      const dv = v.dv;
      if (dir === DIR_INPUT) {
        if ((v.tcpFlags & TCP_ACK) !== 0) setTcpAck(v, (dv.getInt32(v.l4Off + 8) + delta) | 0);
      } else {
        setTcpSeq(v, (dv.getInt32(v.l4Off + 4) - delta) | 0);
      }
    } else if ((ct.flags[c]! & CONN_F_SYNPROXY) !== 0 && icmp) {
      // An ICMP error quoting a segment of the connection: map the quote back into the space
      // of the side it goes to. From the client's side it quotes our server->client segment
      // (seq moved down by seqDelta): up again for the server. From the server's side it
      // quotes our client->server segment (ack moved up): down again for the client.
      const delta = ct.seqDelta[c]! | 0;
      if (dir === DIR_INPUT) shiftInnerTcpSeq(v, delta);
      else shiftInnerTcpAck(v, -delta | 0);
    }
    if (!icmp) {
      if (v.proto === IPPROTO_TCP && v.l4Off >= 0) ct.tcpTransition(c, dir, v.tcpFlags);
      else ct.touch(c);
      if (dir === DIR_INPUT) {
        const n = ct.inPkts[c]!;
        if (n !== 255) ct.inPkts[c] = n + 1;
        if (this.sync !== null) this.sync.conn(c);
      }
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
      nh = icmp ? mode.icmpIn(v, ct, c, mx) : mode.inbound(v, ct, c, mx);
    } else {
      if (svc) {
        svc.outPkts++;
        svc.outBytes += bytes;
      }
      if (d) {
        d.outPkts++;
        d.outBytes += bytes;
      }
      nh = icmp ? mode.icmpOut(v, ct, c, mx) : mode.outbound(v, ct, c, mx);
    }
    if (nh === -1) return mx.drop;
    batch.off[i] = v.base;
    batch.len[i] = v.len;
    return this.output(v, batch, i, nh);
  }

  /**
   * ensure_mtu_is_adequate: a packet longer than the MTU of the link it would leave by is
   * dropped (too_big); with DF set its sender gets fragmentation-needed with that MTU, from the
   * VIP for the client and from the egress link's address for a real server. Without DF the
   * kernel would fragment; lvs-ts does not (docs/architecture.md). Returns 0 or a drop reason.
   */
  private mtuCheck(v: FrameView, c: number, dir: number): number {
    const ct = this.ct;
    const link = this.net.route(dir === DIR_INPUT ? ct.daddr[c]! | 0 : ct.caddr[c]! | 0);
    if (link < 0) return 0; // output() counts no_route
    const mtu = this.net.links[link]!.mtu;
    if (v.ipTotalLen <= mtu) return 0;
    if (v.df !== 0)
      this.icmp.sendError(v, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu, dir === DIR_INPUT ? v.daddr : 0);
    return Drop.TOO_BIG;
  }

  /**
   * conn_reuse_mode: whether the client's segment in v starts a new connection on closing entry
   * c. A SYN does; so does, on a SYN-proxy service, an ACK that proves one of our cookies (its
   * SYN was answered by the XDP responder, synresponder.ts, and never reached lvsd).
   */
  private startsNewConn(v: FrameView, c: number): boolean {
    const f = v.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST);
    if ((f !== TCP_SYN && f !== TCP_ACK) || !this.reusable(c)) return false;
    if (f === TCP_SYN) return true;
    const svc = this.table.services[this.ct.svc[c]!];
    if (svc === null || svc === undefined || (svc.flags & SVC_F_SYNPROXY) === 0) return false;
    const isn = (tcpSeq(v) - 1) | 0;
    const cookie = (tcpAck(v) - 1) | 0;
    // Segments of the entry's own connection can pass too: the ISN is added into the cookie,
    // so seq and ack both n past the old ISN and cookie prove the old cookie again — the
    // client's last ACK after FINs both ways and no data (n = 2), a late copy of its
    // handshake ACK (n = 1). They acknowledge less than OWN_ACK_SPAN past the entry's cookie.
    if ((cookie - this.ct.isn[c]!) >>> 0 < OWN_ACK_SPAN) return false;
    return this.synproxy.check(v.saddr | 0, v.daddr | 0, v.sport, v.dport, isn, cookie, clock.nowMs) >= 0;
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
    // As ip_vs_schedule / ip_vs_sched_persist: a dest port of 0 keeps the packet's port; a
    // persistent service maps only packets to its own port (so a port-0 or fwmark service keeps
    // every port); a non-persistent one (fwmark included) maps every packet to the dest's port.
    const dport = d.port === 0 ? v.dport : svc.timeout === 0 || v.dport === svc.port ? d.port : v.dport;
    let laddr = v.saddr;
    let lport = v.sport;
    const pslot = v.proto === IPPROTO_TCP ? 0 : 1;
    if (d.fwd === FwdMethod.FULLNAT) {
      const pool = svc.laddrs;
      if (pool === null) return -Drop.LADDR_EXHAUSTED;
      // Each service has its own port bitmaps, so another service's connection to the same real
      // server may hold this (laddr, lport) already: its replies would then match two entries.
      // As FULLNAT's laddr binding, check the table and take the next port (a few tries).
      let tries = LADDR_TRIES;
      for (;;) {
        if (!pool.alloc(pslot)) return -Drop.LADDR_EXHAUSTED;
        laddr = pool.allocAddr;
        lport = pool.allocPort;
        if (ct.lookupOut(v.proto, d.addr | 0, dport, laddr | 0, lport) < 0) break;
        pool.release(laddr | 0, lport, pslot);
        if (--tries === 0) return -Drop.LADDR_EXHAUSTED;
      }
    }
    if (v.proto === IPPROTO_TCP && ct.embryonic >= this.embryonicMax() && !ct.evictEmbryonic()) {
      if (d.fwd === FwdMethod.FULLNAT) svc.laddrs?.release(laddr | 0, lport, pslot);
      return -Drop.EMBRYONIC_LIMIT;
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

  /** The embryonic-entry bound: `embryonic_share` percent of the table (at least one entry). */
  private embryonicMax(): number {
    const share = this.sysctl.embryonicShare;
    return share >= 100 ? this.ct.capacity : Math.max(1, Math.floor((this.ct.capacity * share) / 100));
  }

  // ------------------------------------------------------------------ SYN proxy (synproxy.ts)

  /**
   * A TCP packet with no connection to a SYN-proxy service: a SYN is answered with a cookie
   * SYN-ACK (no state); an ACK whose ack - 1 is a valid cookie creates the connection, and the
   * ACK itself becomes the SYN to the real server (the ACK is stashed until its SYN-ACK);
   * anything else is no_conn.
   */
  private synProxyNew(v: FrameView, batch: FrameBatch, i: number, svc: Service): number {
    const f = v.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST);
    if (v.mf !== 0) return Drop.FRAGMENT;
    const sp = this.synproxy;
    if (f === TCP_SYN) {
      const idx = mssIndex(v.mss > 0 ? v.mss : 536);
      const cookie = sp.make(v.saddr | 0, v.daddr | 0, v.sport, v.dport, tcpSeq(v) | 0, idx, clock.nowMs);
      const j = this.txq.slot();
      if (j < 0) return CONSUMED; // counted as tx_full
      if (this.net.route(v.saddr | 0) < 0) return Drop.NO_ROUTE;
      const mtu = this.net.minMtu - 40;
      const tx = this.tx;
      const len = sp.writeSynAck(tx.buf, tx.off[j]!, v, cookie, mtu < 1460 ? mtu : 1460);
      this.resolver.sendRouted(j, len, v.saddr | 0);
      sp.cookiesSent++;
      return CONSUMED;
    }
    if (f !== TCP_ACK) return Drop.NO_CONN;
    // int32 across calls (no boxing); stored into Uint32Arrays and written as sequence numbers.
    const isn = (tcpSeq(v) - 1) | 0;
    const cookie = (tcpAck(v) - 1) | 0;
    const idx = sp.check(v.saddr | 0, v.daddr | 0, v.sport, v.dport, isn, cookie, clock.nowMs);
    if (idx < 0) return Drop.SYN_COOKIE_BAD;
    sp.cookiesValid++;
    const ct = this.ct;
    const c = this.schedule(v, svc);
    if (c < 0) return -c;
    const s = sp.stashAlloc(c, this.stashInUse);
    if (s < 0 || !sp.stashPut(s, v)) {
      if (s >= 0) sp.stashFree(s);
      ct.free(c);
      return Drop.SYNPROXY_STASH_FULL;
    }
    const mss = SYNPROXY_MSS[idx]!;
    sp.stashMss[s] = mss;
    sp.stashSynAt[s] = clock.nowMs;
    if (!rewriteAsSyn(v, isn, tcpWindow(v), mss, batch.room(i) - v.len)) {
      sp.stashFree(s);
      ct.free(c);
      return Drop.MODE_FAILED;
    }
    ct.isn[c] = cookie;
    ct.seqDelta[c] = s;
    ct.flags[c]! |= CONN_F_SYNPROXY_WAIT;
    ct.hold(c);
    return this.xmit(v, batch, i, c, DIR_INPUT);
  }

  /**
   * A client packet while the real server's SYN-ACK is awaited: stashed (sent after the ACK once
   * the server answers); when the last SYN went SYN_RESEND_MS ago or more, the frame is turned into
   * the SYN again (it may have been lost).
   */
  private synProxyPending(v: FrameView, batch: FrameBatch, i: number, c: number): number {
    const sp = this.synproxy;
    const s = this.ct.seqDelta[c]!;
    if (!sp.stashPut(s, v)) return Drop.SYNPROXY_STASH_FULL;
    if (clock.nowMs - sp.stashSynAt[s]! < SYN_RESEND_MS) return CONSUMED;
    sp.stashSynAt[s] = clock.nowMs;
    const isn = (sp.stashSeq(s) - 1) | 0;
    if (!rewriteAsSyn(v, isn, tcpWindow(v), sp.stashMss[s]!, batch.room(i) - v.len)) return Drop.MODE_FAILED;
    return this.xmit(v, batch, i, c, DIR_INPUT);
  }

  /**
   * The real server's answer to the director's SYN. A SYN-ACK acknowledging the client's ISN
   * fixes the sequence offset, and the stashed client packets go to the server (the SYN-ACK itself
   * is absorbed); an RST becomes an RST to the client in the cookie's sequence space.
   */
  private synProxyServer(v: FrameView, batch: FrameBatch, i: number, c: number): number {
    const ct = this.ct;
    const sp = this.synproxy;
    const s = ct.seqDelta[c]!;
    const clientNext = sp.stashSeq(s) >>> 0;
    const f = v.tcpFlags;
    if ((f & TCP_RST) !== 0) {
      sp.serverResets++;
      sp.stashFree(s);
      ct.flags[c]! &= ~CONN_F_SYNPROXY_WAIT;
      ct.seqDelta[c] = 0;
      setTcpSeq(v, ct.isn[c]! + 1);
      setTcpAck(v, clientNext);
      setTcpFlags(v, TCP_RST | TCP_ACK);
      return this.xmit(v, batch, i, c, DIR_OUTPUT);
    }
    if ((f & TCP_ACK) !== 0 && tcpAck(v) !== clientNext) return this.synProxyStale(v, s);
    if ((f & TCP_SYN) === 0 || (f & TCP_ACK) === 0) return Drop.SYNPROXY_BAD_SYNACK;
    ct.tcpTransition(c, DIR_OUTPUT, f);
    ct.seqDelta[c] = (tcpSeq(v) - ct.isn[c]!) >>> 0;
    ct.flags[c] = (ct.flags[c]! & ~CONN_F_SYNPROXY_WAIT) | CONN_F_SYNPROXY;
    sp.handshakes++;
    const st = sp.stash;
    const end = s * STASH_BYTES + sp.stashUsed[s]!;
    for (let p = s * STASH_BYTES; p < end; ) {
      const n = (st[p]! << 8) | st[p + 1]!;
      this.synProxyRelay(p + 2, n, c);
      p += 2 + n;
    }
    sp.stashFree(s);
    return CONSUMED;
  }

  /**
   * The real server answered the director's SYN with an ACK that does not acknowledge it: it
   * still holds an older connection on the tuple (its challenge ACK, RFC 5961 4.2, or the ACK of
   * a TIME-WAIT socket). As a client in SYN-SENT does (RFC 793): a reset <SEQ=SEG.ACK><CTL=RST>
   * back to it, which ends that connection; then, once per handshake, the SYN again at once
   * (later ones wait for the usual resend). `s`: the connection's stash buffer.
   */
  private synProxyStale(v: FrameView, s: number): number {
    const sp = this.synproxy;
    const tx = this.tx;
    const j = this.txq.slot();
    if (j < 0) return CONSUMED; // counted as tx_full
    const rst = writeReflected(tx.buf, tx.off[j]!, v, tcpAck(v) | 0, 0, TCP_RST, 0, 0);
    this.resolver.sendRouted(j, rst, v.saddr | 0);
    sp.staleServerConns++;
    if (sp.stashReset[s] !== 0) return CONSUMED;
    const k = this.txq.slot();
    if (k < 0) return CONSUMED;
    sp.stashReset[s] = 1;
    sp.stashSynAt[s] = clock.nowMs;
    // the client's ISN, window and MSS, as the first SYN had them
    const isn = (sp.stashSeq(s) - 1) | 0;
    const len = writeReflected(tx.buf, tx.off[k]!, v, isn, 0, TCP_SYN, sp.stashWindow(s), sp.stashMss[s]!);
    this.resolver.sendRouted(k, len, v.saddr | 0);
    return CONSUMED;
  }

  /** Send a stashed client packet (IP, `n` bytes at stash[o]) to connection c's real server. */
  private synProxyRelay(o: number, n: number, c: number): void {
    const txq = this.txq;
    const j = txq.slot();
    if (j < 0) return;
    const tx = this.tx;
    const base = tx.off[j]!;
    const b = tx.buf;
    if (base + 14 + n > (j + 1) * tx.slotSize) return;
    put16(b, base + 12, 0x0800);
    b.set(this.synproxy.stash.subarray(o, o + n), base + 14);
    const sv = this.sv;
    if (parseFrame(b, tx.dv, base, 14 + n, sv) !== 0 || sv.l4Off < 0) return;
    const ct = this.ct;
    const mode = this.modes[ct.fwd[c]!];
    if (mode === null || mode === undefined) return;
    if (mode.decrementsTtl) {
      if (sv.ttl <= 1) return;
      decTtl(sv);
    }
    if ((sv.tcpFlags & TCP_ACK) !== 0)
      setTcpAck(sv, (sv.dv.getInt32(sv.l4Off + 8) + (ct.seqDelta[c]! | 0)) | 0);
    ct.tcpTransition(c, DIR_INPUT, sv.tcpFlags);
    const svc = this.table.services[ct.svc[c]!];
    const d = this.table.dests[ct.dest[c]!];
    if (svc) {
      svc.inPkts++;
      svc.inBytes += n;
    }
    if (d) {
      d.inPkts++;
      d.inBytes += n;
    }
    const mx = this.mx;
    mx.room = (j + 1) * tx.slotSize - base - sv.len;
    const nh = mode.inbound(sv, ct, c, mx);
    if (nh === -1) return;
    tx.off[j] = sv.base;
    this.resolver.sendRouted(j, sv.len, nh);
  }

  /** Set L2 for next hop `nh` and mark the egress link. Returns 0, QUEUED or a drop reason. */
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
        this.resolver.solicit(hop);
        return this.resolver.hold(batch.buf, base, batch.len[i]!, hop) ? QUEUED : Drop.NEIGH_MISS;
      }
      return Drop.NO_ROUTE;
    }
    batch.egress[i] = link;
    this.egressMask |= 1 << link;
    return 0;
  }

  /** VRRP: an advert to the group or to one of our addresses goes to the sink, else `proto`. */
  private vrrpIn(v: FrameView, link: number): number {
    const sink = this.vrrpSink;
    if (sink === null) return Drop.PROTO;
    const d = v.daddr >>> 0;
    if (d !== VRRP_GROUP && !this.net.isLocal(d)) return Drop.PROTO;
    sink.advert(v, link);
    return CONSUMED;
  }

  /** Connection sync (backup): a datagram to the sync port for the group or us, on the sync link. */
  private syncIn(v: FrameView, link: number): boolean {
    const sink = this.syncSink;
    if (sink === null || v.laterFrag !== 0 || v.mf !== 0) return false;
    const d = v.daddr >>> 0;
    if (d !== this.syncGroup && !this.net.isLocal(d)) return false;
    if (this.syncLink >= 0 && link !== this.syncLink) return false;
    sink.message(v, link);
    return true;
  }

  /**
   * What Linux drops before IPVS sees it: frames for another host's MAC (a bridge floods unknown
   * unicast to a TAP), group-addressed frames that are neither ARP nor IPv4 multicast, and IPv4
   * with a martian source or destination. Returns 0 or a drop reason.
   */
  private admit(buf: Uint8Array, v: FrameView, link: number): number {
    const arp = v.etherType === ETH_P_ARP;
    if ((buf[v.base]! & 1) !== 0) {
      if (!arp && v.daddr >>> 28 !== 0xe) return Drop.NOT_OUR_MAC;
    } else if (!this.net.isOurMac(buf, v.base, link)) {
      return Drop.NOT_OUR_MAC;
    }
    if (arp) return 0;
    const s8 = v.saddr >>> 24;
    if (s8 === 0 || s8 === 127 || s8 >= 224) return Drop.MARTIAN_SRC;
    const d8 = v.daddr >>> 24;
    if (d8 === 0 || d8 === 127 || (d8 >= 240 && v.daddr >>> 0 !== 0xffffffff)) return Drop.MARTIAN_DST;
    return 0;
  }

  /** rp_filter: 1, the source is routed out of `link`; 2, out of some link (net.route). */
  private rpOk(saddr: number, link: number): boolean {
    const out = this.net.route(saddr | 0);
    return this.sysctl.rpFilter === 2 ? out >= 0 : out === link;
  }

  /** ICMP: answered by the director, relayed through the connection it is about, or dropped. */
  private icmpIn(v: FrameView, batch: FrameBatch, i: number): number {
    if (v.icmpType === ICMP_ECHO && this.sysctl.rpFilter !== 0 && !this.rpOk(v.saddr, batch.link[i]!))
      return Drop.RP_FILTER;
    const c = this.icmp.input(v);
    if (c >= 0) return this.xmit(v, batch, i, c, this.icmp.dir, true);
    return c === ICMP_ANSWERED ? CONSUMED : -c;
  }
}
