/**
 * The connection table (after net/netfilter/ipvs/ip_vs_conn.c), as a struct of typed arrays.
 *
 * - Every connection is a slot index. Fields live in parallel typed arrays, so the garbage
 *   collector never sees them: 108 bytes a slot plus 8 a hash bucket (by default as many
 *   buckets as slots, rounded up to a power of two), about 116 bytes a connection;
 *   bench/RESULTS.md measures 115.8 bytes a connection (heap included) at a million.
 * - Two chained hash indexes: "in" keyed by what the client sends
 *   (proto, caddr, cport, vaddr, vport) and "out" keyed by what the real server sends
 *   (proto, daddr, dport, laddr, lport); laddr/lport equal caddr/cport except in FULLNAT.
 *   Chains are index arrays: a lookup allocates nothing.
 * - No timer object per connection: each slot has an expiry time; lookups expire stale
 *   entries lazily and `sweep` walks a bounded number of slots per call with a rotating hand.
 * - Bounded: when every slot is used, `alloc` evicts (see `evict` for the policy) or fails.
 * - Persistence templates are entries with the TEMPLATE flag, client port 0, hashed "in" only,
 *   and count the connections they control; a template never expires while it controls any.
 */

import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import {
  DEST_F_AVAILABLE,
  type Dest,
  destChanged,
  destOverloadOnBind,
  destOverloadOnUnbind,
  type Service,
  SVC_F_ONEPACKET,
} from "../../tables/model.js";
import { clock } from "../clock.js";
import {
  DIR_INPUT_ONLY,
  DIR_OUTPUT,
  ICMP_DEFAULT_TIMEOUT,
  TCP_DEFAULT_TIMEOUTS,
  TCP_STATE_ACTIVE,
  TCP_STATE_COUNT,
  TCP_STATE_NAMES,
  TCP_TRANSITIONS,
  TCP_TRANSITIONS_DOS,
  TcpState,
  TEMPLATE_STATE_ASSURED,
  tcpNextState,
  UDP_DEFAULT_TIMEOUT,
} from "./states.js";

export const CONN_F_USED = 0x01;
export const CONN_F_TEMPLATE = 0x02;
/** Counted in the dest's InActConn (set at creation, as the kernel's dest conn_flags do). */
export const CONN_F_INACTIVE = 0x04;
/** Replies bypass the director (DR/TUN): TCP uses the input-only transitions. */
export const CONN_F_NOOUTPUT = 0x08;
export const CONN_F_HASHED_IN = 0x10;
export const CONN_F_HASHED_OUT = 0x20;
/** Template whose dest became unusable: unhashed, freed once it controls nothing. */
export const CONN_F_INVALID = 0x40;
/**
 * One-packet scheduling (-o, UDP): the next datagram from the client is scheduled afresh; the
 * entry lives one second so that NAT/FULLNAT replies to this datagram still find it.
 */
export const CONN_F_ONE_PACKET = 0x80;
export const ONE_PACKET_TIMEOUT_MS = 1000;
/**
 * SYN proxy (src/datapath/synproxy.ts): the connection was opened by the director's cookie
 * handshake; `seqDelta` holds the real server's ISN minus the cookie (server sequence numbers go
 * down by it towards the client, the client's acknowledgements up by it towards the server).
 */
export const CONN_F_SYNPROXY = 0x100;
/** SYN proxy: the SYN went to the real server and its SYN-ACK is awaited; `seqDelta` is the stash buffer. */
export const CONN_F_SYNPROXY_WAIT = 0x200;

/** TCP states of a connection whose handshake is not complete (the embryonic-entry bound counts them). */
export const TCP_STATE_EMBRYONIC: readonly boolean[] = [
  true, // NONE
  false,
  true, // SYN_SENT
  true, // SYN_RECV
  false,
  false,
  false,
  false,
  false,
  false,
  true, // SYNACK
];

/** Why `alloc` could not give a slot. */
export const ALLOC_FAIL = -1;

/** What a caller learns about a dest's removal from the table's point of view. */
export interface ConnTableOwner {
  /** Dest slots (shared with the ServiceTable). */
  readonly dests: readonly (Dest | null)[];
  readonly services: readonly (Service | null)[];
  releaseDestIfUnused(d: Dest): void;
}

/** Called when a connection leaves the table (FULLNAT port release and such). */
export type ConnReleaseHook = (table: ConnTable, i: number) => void;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export class ConnTable {
  readonly capacity: number;
  readonly bucketCount: number;
  private readonly mask: number;
  private readonly seed: number;

  readonly caddr: Uint32Array;
  readonly vaddr: Uint32Array;
  readonly daddr: Uint32Array;
  readonly laddr: Uint32Array;
  readonly cport: Uint16Array;
  readonly vport: Uint16Array;
  readonly dport: Uint16Array;
  readonly lport: Uint16Array;
  readonly proto: Uint8Array;
  readonly state: Uint8Array;
  readonly fwd: Uint8Array;
  /** CONN_F_* bits. */
  readonly flags: Uint16Array;
  /** Dest slot id (ServiceTable.dests). */
  readonly dest: Int32Array;
  /** Service slot id (ServiceTable.services). */
  readonly svc: Uint16Array;
  /** Absolute expiry time, ms on `clock`. */
  readonly expires: Float64Array;
  /** Controlling template slot, or -1. */
  readonly ctl: Int32Array;
  /** For templates: number of connections they control. */
  readonly nControl: Uint32Array;
  /** PROXY protocol (FULLNAT): the client's first data sequence number (ISN + 1). */
  readonly isn: Uint32Array;
  /**
   * PROXY protocol: bytes inserted into the client's stream (0 until the header is sent). SYN
   * proxy (CONN_F_SYNPROXY): the server's ISN minus the cookie, 32 bits; while
   * CONN_F_SYNPROXY_WAIT, the stash buffer.
   */
  readonly seqDelta: Uint32Array;
  /** For templates: first controlled connection; for connections: siblings under the template. */
  private readonly ctlHead: Int32Array;
  private readonly ctlNext: Int32Array;
  private readonly ctlPrev: Int32Array;
  /**
   * Lookup records, 16 bytes a slot per direction: [address, address, ports, next in chain].
   * A lookup walks these (one cache line holds four slots) instead of touching the separate
   * address and port arrays, which are kept for everything else.
   */
  private readonly kin: Int32Array;
  private readonly kout: Int32Array;
  private readonly headIn: Int32Array;
  private readonly headOut: Int32Array;
  private readonly freeList: Int32Array;
  private freeTop: number;
  private hand = 0;
  private sweepHand = 0;

  /**
   * Packets from the client per entry, saturating at 255 (the kernel's in_pkts, as far as the
   * defence's drop_entry looks at it: 0..8 or more). The engine counts them.
   */
  readonly inPkts: Uint8Array;
  /** The TCP transition table in force: TCP_TRANSITIONS, or TCP_TRANSITIONS_DOS under secure_tcp. */
  transitions: Uint8Array = TCP_TRANSITIONS;
  /** Entries removed by the defence's drop_entry (randomDropEntry). */
  entriesDropped = 0;
  /** drop_entry's per-packet-count counters (the kernel's todrop_counter). */
  private readonly todropCounter = new Int8Array(9);

  /** Used slots (connections + templates). */
  count = 0;
  /** TCP connections (not templates) in an embryonic state (TCP_STATE_EMBRYONIC). */
  embryonic = 0;
  /** Embryonic entries removed to make room under the embryonic bound (`evictEmbryonic`). */
  embryonicEvictions = 0;
  /** Entries evicted to make room for new ones. */
  evictions = 0;
  /** Allocations refused because nothing could be evicted. */
  allocFailures = 0;

  /** Timeouts in ms: TCP per state, UDP, ICMP. */
  readonly tcpTimeoutMs = new Float64Array(TCP_STATE_COUNT);
  udpTimeoutMs = UDP_DEFAULT_TIMEOUT * 1000;
  icmpTimeoutMs = ICMP_DEFAULT_TIMEOUT * 1000;

  owner: ConnTableOwner;
  /** Per forwarding method, called when a connection of that method is freed. */
  readonly releaseHooks: (ConnReleaseHook | null)[] = [null, null, null, null, null];
  /** Connection sync (src/datapath/sync.ts): told when a slot is taken by a new entry. */
  syncReset: ((i: number) => void) | null = null;

  constructor(capacity: number, owner: ConnTableOwner, buckets = 0) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError("capacity must be a positive integer");
    this.capacity = capacity;
    this.bucketCount = nextPow2(buckets > 0 ? buckets : capacity);
    this.mask = this.bucketCount - 1;
    this.seed = (Math.random() * 0x100000000) >>> 0;
    this.owner = owner;
    this.caddr = new Uint32Array(capacity);
    this.vaddr = new Uint32Array(capacity);
    this.daddr = new Uint32Array(capacity);
    this.laddr = new Uint32Array(capacity);
    this.cport = new Uint16Array(capacity);
    this.vport = new Uint16Array(capacity);
    this.dport = new Uint16Array(capacity);
    this.lport = new Uint16Array(capacity);
    this.proto = new Uint8Array(capacity);
    this.state = new Uint8Array(capacity);
    this.fwd = new Uint8Array(capacity);
    this.flags = new Uint16Array(capacity);
    this.dest = new Int32Array(capacity);
    this.svc = new Uint16Array(capacity);
    this.expires = new Float64Array(capacity);
    this.ctl = new Int32Array(capacity);
    this.nControl = new Uint32Array(capacity);
    this.isn = new Uint32Array(capacity);
    this.seqDelta = new Uint32Array(capacity);
    this.inPkts = new Uint8Array(capacity);
    this.ctlHead = new Int32Array(capacity);
    this.ctlNext = new Int32Array(capacity);
    this.ctlPrev = new Int32Array(capacity);
    this.kin = new Int32Array(capacity * 4);
    this.kout = new Int32Array(capacity * 4);
    this.headIn = new Int32Array(this.bucketCount).fill(-1);
    this.headOut = new Int32Array(this.bucketCount).fill(-1);
    this.freeList = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeList[i] = capacity - 1 - i;
    this.freeTop = capacity;
    for (let s = 0; s < TCP_STATE_COUNT; s++) this.tcpTimeoutMs[s] = TCP_DEFAULT_TIMEOUTS[s]! * 1000;
  }

  /** Bytes held by the table's arrays (for the memory benchmark and `size` reporting). */
  byteSize(): number {
    const perSlot = 4 * 4 + 2 * 4 + 1 + 1 + 1 + 2 + 4 + 2 + 8 + 4 + 4 + 4 + 4 + 1 + 3 * 4 + 2 * 16 + 4;
    return perSlot * this.capacity + 8 * this.bucketCount;
  }

  private hash(p: number, a: number, pa: number, b: number, pb: number): number {
    let h = Math.imul(a ^ this.seed, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ b, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ ((pa << 16) | pb), 0xc2b2ae35);
    h ^= (h >>> 16) ^ p;
    return h & this.mask;
  }

  // ---------------------------------------------------------------- lookups (per packet)

  /**
   * Connection for a packet from the client side (saddr:sport -> daddr:dport), or -1.
   * Expired entries found on the way are removed.
   */
  lookupIn(p: number, saddr: number, sport: number, daddr: number, dport: number): number {
    // Addresses come in as int32 or uint32 (see src/datapath/packet/rewrite.ts on boxing); compared as int32.
    const a = saddr | 0;
    const b = daddr | 0;
    const ports = (sport << 16) | dport;
    const k = this.kin;
    let i = this.headIn[this.hash(p, a, sport, b, dport)]!;
    while (i >= 0) {
      const o = i << 2;
      if (
        k[o] === a &&
        k[o + 1] === b &&
        k[o + 2] === ports &&
        this.proto[i] === p &&
        (this.flags[i]! & CONN_F_TEMPLATE) === 0
      ) {
        if (this.expires[i]! <= clock.nowMs) {
          this.free(i);
          return -1;
        }
        return i;
      }
      i = k[o + 3]!;
    }
    return -1;
  }

  /** Connection for a packet from the real-server side (saddr:sport -> daddr:dport), or -1. */
  lookupOut(p: number, saddr: number, sport: number, daddr: number, dport: number): number {
    const a = saddr | 0;
    const b = daddr | 0;
    const ports = (sport << 16) | dport;
    const k = this.kout;
    let i = this.headOut[this.hash(p, a, sport, b, dport)]!;
    while (i >= 0) {
      const o = i << 2;
      if (k[o] === a && k[o + 1] === b && k[o + 2] === ports && this.proto[i] === p) {
        if (this.expires[i]! <= clock.nowMs) {
          this.free(i);
          return -1;
        }
        return i;
      }
      i = k[o + 3]!;
    }
    return -1;
  }

  /**
   * Persistence template <p, caddr(masked), 0, vaddr, vport>, or -1. An expired template that
   * still controls connections is re-armed with its service's timeout (it cannot expire while
   * it controls any); an expired idle one is freed.
   */
  lookupTemplate(p: number, caddr: number, vaddr: number, vport: number): number {
    const a = caddr | 0;
    const b = vaddr | 0;
    const k = this.kin;
    let i = this.headIn[this.hash(p, a, 0, b, vport)]!;
    while (i >= 0) {
      const o = i << 2;
      if (
        k[o] === a &&
        k[o + 1] === b &&
        k[o + 2] === vport &&
        this.proto[i] === p &&
        (this.flags[i]! & CONN_F_TEMPLATE) !== 0
      ) {
        if (this.expires[i]! <= clock.nowMs) {
          // Controlled connections may have expired without being collected yet: reap them
          // first, so a template outlives only connections that are really alive.
          this.reapControlled(i);
          if (this.nControl[i] === 0) {
            this.free(i);
            return -1;
          }
          this.rearmTemplate(i);
        }
        return i;
      }
      i = k[o + 3]!;
    }
    return -1;
  }

  /** Free the expired connections a template controls. */
  private reapControlled(t: number): void {
    const now = clock.nowMs;
    let c = this.ctlHead[t]!;
    while (c >= 0) {
      const next = this.ctlNext[c]!;
      if (this.expires[c]! <= now) this.free(c);
      c = next;
    }
  }

  private rearmTemplate(i: number): void {
    const s = this.owner.services[this.svc[i]!];
    this.expires[i] = clock.nowMs + (s ? s.timeout : 60) * 1000;
  }

  // ---------------------------------------------------------------- creation

  /** Take a free slot, evicting if the table is full. Returns the slot or ALLOC_FAIL. */
  private alloc(): number {
    if (this.freeTop === 0 && !this.evict()) {
      this.allocFailures++;
      return ALLOC_FAIL;
    }
    const i = this.freeList[--this.freeTop]!;
    this.inPkts[i] = 0;
    this.count++;
    return i;
  }

  /**
   * Eviction when full: look at up to 64 used slots from a rotating hand and free, in order of
   * preference, (1) the first expired entry, (2) the first embryonic TCP connection
   * (NONE, SYN_SENT, SYN_RECV, SYNACK) or closing one (CLOSE, TIME_WAIT), (3) the entry closest
   * to expiry. Templates that still control connections are never evicted, and assured
   * templates only as a last resort. Returns false when nothing could be evicted.
   */
  private evict(): boolean {
    const now = clock.nowMs;
    let best = -1;
    let bestExp = Number.POSITIVE_INFINITY;
    let embryonic = -1;
    for (let n = 0; n < 64; n++) {
      const i = this.hand;
      this.hand = i + 1 === this.capacity ? 0 : i + 1;
      const f = this.flags[i]!;
      if ((f & CONN_F_USED) === 0) continue;
      const isTpl = (f & CONN_F_TEMPLATE) !== 0;
      if (isTpl && this.nControl[i] !== 0) continue;
      const exp = this.expires[i]!;
      if (exp <= now) {
        best = i;
        embryonic = -1;
        break;
      }
      if (!isTpl && embryonic < 0 && this.proto[i] === IPPROTO_TCP) {
        const st = this.state[i]!;
        if (
          st === TcpState.SYN_RECV ||
          st === TcpState.SYN_SENT ||
          st === TcpState.SYNACK ||
          st === TcpState.NONE ||
          st === TcpState.CLOSE ||
          st === TcpState.TIME_WAIT
        ) {
          embryonic = i;
        }
      }
      const rank = isTpl && this.state[i] === TEMPLATE_STATE_ASSURED ? exp + 1e15 : exp;
      if (rank < bestExp) {
        bestExp = rank;
        best = i;
      }
    }
    const victim = embryonic >= 0 ? embryonic : best;
    if (victim < 0) return false;
    this.free(victim);
    this.evictions++;
    return true;
  }

  /**
   * Create a connection bound to `dest` (slot id). State starts NONE for TCP (the caller
   * applies the first packet's transition), UDP/ICMP state 0. Returns the slot or ALLOC_FAIL.
   */
  create(
    p: number,
    caddr: number,
    cport: number,
    vaddr: number,
    vport: number,
    daddr: number,
    dport: number,
    laddr: number,
    lport: number,
    fwd: number,
    noOutput: boolean,
    dest: Dest,
    svcId: number,
    tpl: number,
  ): number {
    const i = this.alloc();
    if (i < 0) return i;
    this.proto[i] = p;
    this.caddr[i] = caddr;
    this.cport[i] = cport;
    this.vaddr[i] = vaddr;
    this.vport[i] = vport;
    this.daddr[i] = daddr;
    this.dport[i] = dport;
    this.laddr[i] = laddr;
    this.lport[i] = lport;
    this.fwd[i] = fwd;
    this.state[i] = 0;
    this.isn[i] = 0;
    this.seqDelta[i] = 0;
    this.flags[i] = CONN_F_USED | CONN_F_INACTIVE | (noOutput ? CONN_F_NOOUTPUT : 0);
    this.dest[i] = dest.id;
    this.svc[i] = svcId;
    this.ctl[i] = tpl;
    this.nControl[i] = 0;
    this.expires[i] =
      clock.nowMs +
      (p === IPPROTO_TCP
        ? this.tcpTimeoutMs[0]!
        : p === IPPROTO_UDP
          ? this.udpTimeoutMs
          : this.icmpTimeoutMs);
    this.ctlHead[i] = -1;
    this.ctlPrev[i] = -1;
    if (tpl >= 0) {
      this.nControl[tpl]!++;
      const h = this.ctlHead[tpl]!;
      this.ctlNext[i] = h;
      if (h >= 0) this.ctlPrev[h] = i;
      this.ctlHead[tpl] = i;
    } else {
      this.ctlNext[i] = -1;
    }
    if (p === IPPROTO_TCP) this.embryonic++;
    dest.inactConns++;
    destOverloadOnBind(dest);
    this.hashIn(i);
    this.hashOut(i);
    if (this.syncReset !== null) this.syncReset(i);
    return i;
  }

  /** Create a persistence template <p, caddr, 0, vaddr, vport> -> dest:dport. */
  createTemplate(
    p: number,
    caddr: number,
    vaddr: number,
    vport: number,
    dest: Dest,
    dport: number,
    svcId: number,
    timeoutS: number,
  ): number {
    const i = this.alloc();
    if (i < 0) return i;
    this.proto[i] = p;
    this.caddr[i] = caddr;
    this.cport[i] = 0;
    this.vaddr[i] = vaddr;
    this.vport[i] = vport;
    this.daddr[i] = dest.addr;
    this.dport[i] = dport;
    this.laddr[i] = caddr;
    this.lport[i] = 0;
    this.fwd[i] = dest.fwd;
    this.state[i] = 0;
    this.flags[i] = CONN_F_USED | CONN_F_TEMPLATE;
    this.dest[i] = dest.id;
    this.svc[i] = svcId;
    this.ctl[i] = -1;
    this.nControl[i] = 0;
    this.ctlHead[i] = -1;
    this.ctlNext[i] = -1;
    this.ctlPrev[i] = -1;
    this.expires[i] = clock.nowMs + timeoutS * 1000;
    dest.persistConns++;
    destOverloadOnBind(dest);
    this.hashIn(i);
    if (this.syncReset !== null) this.syncReset(i);
    return i;
  }

  /** Restart a template's timer with its service's timeout (a new connection used it). */
  touchTemplate(i: number): void {
    this.rearmTemplate(i);
  }

  /** Make a template unfindable (its dest became unusable); it is freed once idle. */
  invalidateTemplate(i: number): void {
    if ((this.flags[i]! & CONN_F_HASHED_IN) !== 0) this.unhashIn(i);
    this.flags[i]! |= CONN_F_INVALID;
    if (this.nControl[i] === 0) this.free(i);
  }

  private hashIn(i: number): void {
    const a = this.caddr[i]! | 0;
    const b = this.vaddr[i]! | 0;
    const h = this.hash(this.proto[i]!, a, this.cport[i]!, b, this.vport[i]!);
    const o = i << 2;
    const k = this.kin;
    k[o] = a;
    k[o + 1] = b;
    k[o + 2] = (this.cport[i]! << 16) | this.vport[i]!;
    k[o + 3] = this.headIn[h]!;
    this.headIn[h] = i;
    this.flags[i]! |= CONN_F_HASHED_IN;
  }

  private hashOut(i: number): void {
    const a = this.daddr[i]! | 0;
    const b = this.laddr[i]! | 0;
    const h = this.hash(this.proto[i]!, a, this.dport[i]!, b, this.lport[i]!);
    const o = i << 2;
    const k = this.kout;
    k[o] = a;
    k[o + 1] = b;
    k[o + 2] = (this.dport[i]! << 16) | this.lport[i]!;
    k[o + 3] = this.headOut[h]!;
    this.headOut[h] = i;
    this.flags[i]! |= CONN_F_HASHED_OUT;
  }

  private unhashIn(i: number): void {
    const h = this.hash(
      this.proto[i]!,
      this.caddr[i]! | 0,
      this.cport[i]!,
      this.vaddr[i]! | 0,
      this.vport[i]!,
    );
    ConnTable.unlink(this.headIn, this.kin, h, i);
    this.flags[i]! &= ~CONN_F_HASHED_IN;
  }

  private unhashOut(i: number): void {
    const h = this.hash(
      this.proto[i]!,
      this.daddr[i]! | 0,
      this.dport[i]!,
      this.laddr[i]! | 0,
      this.lport[i]!,
    );
    ConnTable.unlink(this.headOut, this.kout, h, i);
    this.flags[i]! &= ~CONN_F_HASHED_OUT;
  }

  /** Remove slot i from the chain of bucket b (the link is word 3 of each 4-word record). */
  private static unlink(head: Int32Array, rec: Int32Array, b: number, i: number): void {
    let j = head[b]!;
    if (j === i) {
      head[b] = rec[(i << 2) + 3]!;
      return;
    }
    while (j >= 0) {
      const n = rec[(j << 2) + 3]!;
      if (n === i) {
        rec[(j << 2) + 3] = rec[(i << 2) + 3]!;
        return;
      }
      j = n;
    }
  }

  /** Remove slot i: unhash, unbind from its dest and template, run the release hook. */
  free(i: number): void {
    const f = this.flags[i]!;
    if ((f & CONN_F_USED) === 0) return;
    if ((f & CONN_F_HASHED_IN) !== 0) this.unhashIn(i);
    if ((f & CONN_F_HASHED_OUT) !== 0) this.unhashOut(i);
    const d = this.owner.dests[this.dest[i]!];
    if ((f & CONN_F_TEMPLATE) !== 0) {
      if (d) d.persistConns--;
    } else {
      if (d) {
        if ((f & CONN_F_INACTIVE) !== 0) d.inactConns--;
        else d.activeConns--;
      }
      const t = this.ctl[i]!;
      if (t >= 0) {
        const prev = this.ctlPrev[i]!;
        const next = this.ctlNext[i]!;
        if (prev >= 0) this.ctlNext[prev] = next;
        else this.ctlHead[t] = next;
        if (next >= 0) this.ctlPrev[next] = prev;
        this.ctl[i] = -1;
        this.nControl[t]!--;
        if (this.nControl[t] === 0 && (this.flags[t]! & CONN_F_INVALID) !== 0) this.free(t);
      }
      if (this.proto[i] === IPPROTO_TCP && TCP_STATE_EMBRYONIC[this.state[i]!]) this.embryonic--;
      const hook = this.releaseHooks[this.fwd[i]!];
      if (hook) hook(this, i);
    }
    if (d) {
      destOverloadOnUnbind(d);
      const sched = d.svc?.sched;
      if (sched?.onConnDone) sched.onConnDone(d);
      if ((d.flags & DEST_F_AVAILABLE) === 0) this.owner.releaseDestIfUnused(d);
    }
    this.flags[i] = 0;
    this.freeList[this.freeTop++] = i;
    this.count--;
  }

  // ---------------------------------------------------------------- state (per packet)

  /** Apply a TCP packet's flags seen in direction `dir` (DIR_INPUT/DIR_OUTPUT). */
  tcpTransition(i: number, dir: number, tcpFlags: number): void {
    let f = this.flags[i]!;
    if ((f & CONN_F_NOOUTPUT) !== 0) {
      if (dir === DIR_OUTPUT) this.flags[i] = f &= ~CONN_F_NOOUTPUT;
      else dir = DIR_INPUT_ONLY;
    }
    const old = this.state[i]!;
    const ns = tcpNextState(old, dir, tcpFlags, this.transitions);
    if (ns !== old) {
      const d = this.owner.dests[this.dest[i]!];
      if (d) {
        if ((f & CONN_F_INACTIVE) === 0 && !TCP_STATE_ACTIVE[ns]) {
          d.activeConns--;
          d.inactConns++;
          this.flags[i] = f | CONN_F_INACTIVE;
        } else if ((f & CONN_F_INACTIVE) !== 0 && TCP_STATE_ACTIVE[ns]) {
          d.inactConns--;
          d.activeConns++;
          this.flags[i] = f & ~CONN_F_INACTIVE;
        }
        destChanged(d);
      }
      if (TCP_STATE_EMBRYONIC[old] !== TCP_STATE_EMBRYONIC[ns])
        this.embryonic += TCP_STATE_EMBRYONIC[ns] ? 1 : -1;
      if (ns === TcpState.ESTABLISHED) {
        const t = this.ctl[i]!;
        if (t >= 0) this.state[t] = TEMPLATE_STATE_ASSURED;
      }
      this.state[i] = ns;
    }
    this.expires[i] = clock.nowMs + this.tcpTimeoutMs[ns]!;
  }

  /**
   * Connection sync, backup side (ip_vs_proc_conn): set a synced entry's state, its
   * active/inactive accounting (a connection's dest counters follow) and its expiry.
   */
  setSynced(i: number, state: number, inactive: boolean, expiresMs: number): void {
    const f = this.flags[i]!;
    if ((f & CONN_F_TEMPLATE) === 0 && ((f & CONN_F_INACTIVE) !== 0) !== inactive) {
      const d = this.owner.dests[this.dest[i]!];
      if (d) {
        if (inactive) {
          d.activeConns--;
          d.inactConns++;
        } else {
          d.inactConns--;
          d.activeConns++;
        }
        destChanged(d);
      }
      this.flags[i] = inactive ? f | CONN_F_INACTIVE : f & ~CONN_F_INACTIVE;
    }
    if ((f & CONN_F_TEMPLATE) === 0 && this.proto[i] === IPPROTO_TCP) {
      const old = this.state[i]!;
      if (TCP_STATE_EMBRYONIC[old] !== TCP_STATE_EMBRYONIC[state])
        this.embryonic += TCP_STATE_EMBRYONIC[state] ? 1 : -1;
    }
    this.state[i] = state;
    this.expires[i] = expiresMs;
  }

  /**
   * The embryonic-entry bound (Sysctl.embryonicShare): free one embryonic TCP connection, found
   * among up to 256 used slots from the eviction hand, to make room for a new one. False when
   * none was found (the new connection is refused).
   */
  evictEmbryonic(): boolean {
    for (let n = 0; n < 256; n++) {
      const i = this.hand;
      this.hand = i + 1 === this.capacity ? 0 : i + 1;
      const f = this.flags[i]!;
      if ((f & CONN_F_USED) === 0 || (f & CONN_F_TEMPLATE) !== 0 || this.proto[i] !== IPPROTO_TCP) continue;
      if (!TCP_STATE_EMBRYONIC[this.state[i]!]) continue;
      this.free(i);
      this.embryonicEvictions++;
      return true;
    }
    return false;
  }

  /** Refresh a connection's timer without a state change (UDP, ICMP, TCP later fragments). */
  touch(i: number): void {
    if ((this.flags[i]! & CONN_F_ONE_PACKET) !== 0) {
      this.expires[i] = clock.nowMs + ONE_PACKET_TIMEOUT_MS;
      return;
    }
    const p = this.proto[i];
    this.expires[i] =
      clock.nowMs +
      (p === IPPROTO_TCP
        ? this.tcpTimeoutMs[this.state[i]!]!
        : p === IPPROTO_UDP
          ? this.udpTimeoutMs
          : this.icmpTimeoutMs);
  }

  // ---------------------------------------------------------------- maintenance (control plane)

  /**
   * Expire up to `budget` slots' worth of stale entries, continuing where the last call
   * stopped. Returns how many entries were freed.
   */
  sweep(budget: number): number {
    const now = clock.nowMs;
    let freed = 0;
    const n = Math.min(budget, this.capacity);
    for (let k = 0; k < n; k++) {
      const i = this.sweepHand;
      this.sweepHand = i + 1 === this.capacity ? 0 : i + 1;
      const f = this.flags[i]!;
      if ((f & CONN_F_USED) === 0 || this.expires[i]! > now) continue;
      if ((f & CONN_F_TEMPLATE) !== 0 && this.nControl[i] !== 0) {
        this.reapControlled(i);
        if (this.nControl[i] !== 0) {
          this.rearmTemplate(i);
          continue;
        }
      }
      if ((this.flags[i]! & CONN_F_USED) === 0) continue;
      this.free(i);
      freed++;
    }
    return freed;
  }

  /** secure_tcp (src/control/defense.ts): the kernel's tcp_states_dos while on. */
  setSecureTcp(on: boolean): void {
    this.transitions = on ? TCP_TRANSITIONS_DOS : TCP_TRANSITIONS;
  }

  /**
   * The defence's drop_entry, once a second while it is active (the kernel's
   * ip_vs_random_dropentry): look at capacity/32 slots picked at random and remove embryonic TCP
   * entries (SYN_RECV, SYNACK) and unassured templates outright, and established TCP, UDP and ICMP
   * entries idle for 60 s or more with 1 to 8 client packets, one in N of those with N packets
   * (todrop_entry). Templates still controlling connections stay. Returns how many were removed.
   */
  randomDropEntry(random: () => number = Math.random): number {
    const now = clock.nowMs;
    const n = Math.max(1, this.capacity >>> 5);
    let dropped = 0;
    for (let k = 0; k < n; k++) {
      const i = Math.floor(random() * this.capacity);
      const f = this.flags[i]!;
      if ((f & CONN_F_USED) === 0) continue;
      let drop: boolean;
      if ((f & CONN_F_TEMPLATE) !== 0) {
        if (this.nControl[i] !== 0) continue;
        const s = this.owner.services[this.svc[i]!];
        if (s && (s.flags & SVC_F_ONEPACKET) !== 0) drop = this.todropEntry(i, now);
        else drop = this.state[i] !== TEMPLATE_STATE_ASSURED;
      } else if (this.proto[i] === IPPROTO_TCP) {
        const st = this.state[i];
        if (st === TcpState.SYN_RECV || st === TcpState.SYNACK) drop = true;
        else if (st === TcpState.ESTABLISHED) drop = this.todropEntry(i, now);
        else continue;
      } else {
        drop = this.todropEntry(i, now);
      }
      if (!drop) continue;
      this.free(i);
      dropped++;
    }
    this.entriesDropped += dropped;
    return dropped;
  }

  /** todrop_entry: idle for 60 s or more, and 1 in N of the entries with N (1..8) client packets. */
  private todropEntry(i: number, now: number): boolean {
    if (now - (this.expires[i]! - this.timeoutOf(i)) < 60_000) return false;
    const pk = this.inPkts[i]!;
    if (pk > 8 || pk === 0) return false;
    const c = this.todropCounter;
    if (--c[pk]! > 0) return false;
    c[pk] = pk;
    return true;
  }

  /** The timeout an entry's expiry was last set from. */
  private timeoutOf(i: number): number {
    if ((this.flags[i]! & CONN_F_TEMPLATE) !== 0) {
      const s = this.owner.services[this.svc[i]!];
      return (s ? s.timeout : 60) * 1000;
    }
    if ((this.flags[i]! & CONN_F_ONE_PACKET) !== 0) return ONE_PACKET_TIMEOUT_MS;
    const p = this.proto[i];
    if (p === IPPROTO_TCP) return this.tcpTimeoutMs[this.state[i]!]!;
    return p === IPPROTO_UDP ? this.udpTimeoutMs : this.icmpTimeoutMs;
  }

  /** Free every connection and template bound to dest slot `destId` (expire_nodest_conn). */
  flushDest(destId: number): number {
    let n = 0;
    // Connections first so templates become idle.
    for (let i = 0; i < this.capacity; i++) {
      const f = this.flags[i]!;
      if ((f & CONN_F_USED) !== 0 && (f & CONN_F_TEMPLATE) === 0 && this.dest[i] === destId) {
        this.free(i);
        n++;
      }
    }
    for (let i = 0; i < this.capacity; i++) {
      const f = this.flags[i]!;
      if ((f & CONN_F_USED) !== 0 && (f & CONN_F_TEMPLATE) !== 0 && this.dest[i] === destId) {
        this.invalidateTemplate(i);
        n++;
      }
    }
    return n;
  }

  /** Free everything (tests, `-C` with flush). */
  flushAll(): void {
    for (let i = 0; i < this.capacity; i++) if ((this.flags[i]! & CONN_F_USED) !== 0) this.free(i);
  }

  /** ipvsadm's state name for slot i. */
  stateName(i: number): string {
    if ((this.flags[i]! & CONN_F_TEMPLATE) !== 0)
      return this.state[i] === TEMPLATE_STATE_ASSURED ? "ASSURED" : "NONE";
    const p = this.proto[i];
    if (p === IPPROTO_TCP) return TCP_STATE_NAMES[this.state[i]!] ?? "ERR!";
    if (p === IPPROTO_UDP) return "UDP";
    if (p === IPPROTO_ICMP) return "ICMP";
    return "NONE";
  }

  /** Iterate used slots (control plane). */
  *slots(): IterableIterator<number> {
    for (let i = 0; i < this.capacity; i++) if ((this.flags[i]! & CONN_F_USED) !== 0) yield i;
  }
}
