/**
 * The connection table (after net/netfilter/ipvs/ip_vs_conn.c), as a struct of typed arrays.
 *
 * - Every connection is a slot index. Fields live in typed arrays, so the garbage collector
 *   never sees them: 116 bytes a slot plus 4 per index entry and direction (more than 1.5
 *   entries a slot, a power of two: 2 at a power-of-two capacity), about 132 bytes a
 *   connection (`byteSize`).
 * - What a lookup touches sits in one 64-byte record per slot (`rec`, R_* words): both keys,
 *   protocol and template bit, expiry time. A hit reads its index entry and one record line
 *   (before issue 13 §6 it read five lines: bucket, key record, protocol, flags, expiry, plus
 *   one per chain hop); the other fields are parallel arrays, one per field.
 * - Two hash indexes: "in" keyed by what the client sends (proto, caddr, cport, vaddr, vport)
 *   and "out" keyed by what the real server sends (proto, daddr, dport, laddr, lport);
 *   laddr/lport equal caddr/cport except in FULLNAT. Open addressing over typed arrays: a
 *   lookup allocates nothing.
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
import { heldIndex } from "./held.js";
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
/** Counted in `held` (conntrack/held.ts) until closed or freed: the XDP responder leaves its tuple's SYNs to lvsd. */
export const CONN_F_HELD = 0x400;

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

/*
 * A slot's record (ConnTable.rec), in 32-bit words. A lookup in either direction reads words
 * R_IN..R_IN+3 or R_OUT..R_OUT+3, R_META and R_EXP: all in the record's one cache line.
 */
/** "In" key: caddr, vaddr, cport << 16 | vport, then the key's hash (for index deletion). */
const R_IN = 0;
/** "Out" key: daddr, laddr, dport << 16 | lport, then the key's hash. */
const R_OUT = 4;
/** Expiry time, ms on `clock`: float64 index (i << 3) + R_EXP, words 8 and 9. */
const R_EXP = 4;
/** Protocol, | R_META_TEMPLATE for a template (both fixed at creation). */
const R_META = 10;
const R_META_TEMPLATE = 0x100;
/** Controlling template slot, or -1. */
const R_CTL = 11;
/** For templates: first controlled connection; for connections: siblings under the template. */
const R_CTLHEAD = 12;
const R_CTLNEXT = 13;
const R_CTLPREV = 14;
// word 15 is free
const REC_BYTES = 64;
const REC_LEAD = 48;

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

/** Values ConnTable.countsInto writes: the TCP states, UDP, ICMP, then templates NONE and ASSURED. */
export const COUNT_SLOTS = TCP_STATE_COUNT + 4;

export class ConnTable {
  readonly capacity: number;
  /**
   * The hash table size ipvsadm reports (`size=`): `buckets`, by default the capacity, rounded
   * up to a power of two. The indexes themselves are sized by the capacity (ixMask).
   */
  readonly bucketCount: number;
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
  /**
   * The slot records, 64 bytes (one cache line) a slot, R_* words: both lookup keys with their
   * hash-chain links, the expiry time, what a hit checks besides the key (protocol, template
   * bit) and the template links. A lookup hit reads one line here after its bucket; the
   * separate address and port arrays serve everything else.
   */
  private readonly rec: Int32Array;
  /** The same records as float64 (the expiry time at R_EXP). */
  private readonly recF: Float64Array;
  /**
   * The two hash indexes ("in", "out"), open addressing with linear probing, one 32-bit word
   * an entry, sixteen to a cache line: 0 when empty, else the slot + 1 in the low bits (below
   * `fpMask`) and the key hash's top bits (`fpMask`) as a fingerprint. A probe compares the
   * fingerprint before it touches a record, so entries that merely share the home position
   * (the hash's low bits) almost never cost a record line. At most two-thirds full
   * (ixMask + 1 > 1.5 capacity, a power of two: half full at a power-of-two capacity).
   */
  private readonly ixIn: Int32Array;
  private readonly ixOut: Int32Array;
  private readonly ixMask: number;
  private readonly fpMask: number;
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
  /**
   * Connections (not templates) by kind, kept as entries are made, change state and go: TCP
   * states 0..TCP_STATE_COUNT-1, then UDP (index TCP_STATE_COUNT), then ICMP (+1); other
   * protocols are not counted. What /metrics reports without walking the table.
   */
  readonly kindCounts = new Float64Array(TCP_STATE_COUNT + 2);
  /** Persistence templates by state: [NONE, ASSURED]. */
  readonly templateCounts = new Float64Array(2);

  /** Copy kindCounts then templateCounts (COUNT_SLOTS values) into `out` at `at`; returns `out`. */
  countsInto(out: Float64Array, at = 0): Float64Array {
    out.set(this.kindCounts, at);
    out.set(this.templateCounts, at + this.kindCounts.length);
    return out;
  }
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
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 1 << 26)
      throw new RangeError("capacity must be an integer in 1..67108864");
    this.capacity = capacity;
    this.bucketCount = nextPow2(buckets > 0 ? buckets : capacity);
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
    this.nControl = new Uint32Array(capacity);
    this.isn = new Uint32Array(capacity);
    this.seqDelta = new Uint32Array(capacity);
    this.inPkts = new Uint8Array(capacity);
    // 48 bytes of lead-in: glibc hands out large blocks 16 bytes past a page boundary, so the
    // records start on a cache line there (elsewhere a record may straddle two lines).
    const buf = new ArrayBuffer(REC_LEAD + capacity * REC_BYTES);
    this.rec = new Int32Array(buf, REC_LEAD, capacity * 16);
    this.recF = new Float64Array(buf, REC_LEAD, capacity * 8);
    const ixSize = nextPow2(capacity + (capacity >>> 1) + 1);
    this.ixMask = ixSize - 1;
    this.ixIn = new Int32Array(ixSize);
    this.ixOut = new Int32Array(ixSize);
    // slot + 1 (1..capacity) in the low bits, the fingerprint in the rest (11 bits at 1M slots)
    this.fpMask = ~((1 << (32 - Math.clz32(capacity))) - 1);
    this.freeList = new Int32Array(capacity);
    for (let i = 0; i < capacity; i++) this.freeList[i] = capacity - 1 - i;
    this.freeTop = capacity;
    for (let s = 0; s < TCP_STATE_COUNT; s++) this.tcpTimeoutMs[s] = TCP_DEFAULT_TIMEOUTS[s]! * 1000;
  }

  /** Bytes held by the table's arrays (for the memory benchmark and `size` reporting). */
  byteSize(): number {
    // addresses, ports, proto, state, fwd, flags, dest, svc, nControl, isn, seqDelta, inPkts,
    // record, free list
    const perSlot = 4 * 4 + 2 * 4 + 1 + 1 + 1 + 2 + 4 + 2 + 4 + 4 + 4 + 1 + REC_BYTES + 4;
    return perSlot * this.capacity + REC_LEAD + 2 * 4 * (this.ixMask + 1);
  }

  /**
   * The table's array buffers, largest first (for huge-page advice at start:
   * src/datapath/io/native.ts adviseHugePages; the lookup reads the first three).
   */
  buffers(): ArrayBuffer[] {
    const out: ArrayBuffer[] = [];
    for (const a of [
      this.rec,
      this.ixIn,
      this.ixOut,
      this.caddr,
      this.vaddr,
      this.daddr,
      this.laddr,
      this.dest,
      this.nControl,
      this.isn,
      this.seqDelta,
      this.freeList,
      this.cport,
      this.vport,
      this.dport,
      this.lport,
      this.flags,
      this.svc,
      this.proto,
      this.state,
      this.fwd,
      this.inPkts,
    ])
      out.push(a.buffer as ArrayBuffer);
    return out;
  }

  /** Slot i's absolute expiry time, ms on `clock`. */
  expiresAt(i: number): number {
    return this.recF[(i << 3) + R_EXP]!;
  }

  /** Set slot i's expiry time (ms on `clock`): tests and the defence's tests age entries so. */
  setExpires(i: number, ms: number): void {
    this.recF[(i << 3) + R_EXP] = ms;
  }

  /** The template controlling connection i, or -1. */
  ctlOf(i: number): number {
    return this.rec[(i << 4) + R_CTL]!;
  }

  private hash(p: number, a: number, pa: number, b: number, pb: number): number {
    let h = Math.imul(a ^ this.seed, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ b, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ ((pa << 16) | pb), 0xc2b2ae35);
    return h ^ (h >>> 16) ^ p;
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
    const r = this.rec;
    const h = this.hash(p, a, sport, b, dport);
    const x = this.ixIn;
    const m = this.ixMask;
    const fm = this.fpMask;
    const fp = h & fm;
    for (let q = h & m; ; q = (q + 1) & m) {
      const e = x[q]!;
      if (e === 0) return -1;
      if ((e & fm) !== fp) continue;
      const i = (e & ~fm) - 1;
      const o = i << 4;
      // R_META === p: this protocol and not a template
      if (r[o] === a && r[o + 1] === b && r[o + 2] === ports && r[o + R_META] === p) {
        if (this.recF[(i << 3) + R_EXP]! <= clock.nowMs) {
          this.free(i);
          return -1;
        }
        return i;
      }
    }
  }

  /** Connection for a packet from the real-server side (saddr:sport -> daddr:dport), or -1. */
  lookupOut(p: number, saddr: number, sport: number, daddr: number, dport: number): number {
    const a = saddr | 0;
    const b = daddr | 0;
    const ports = (sport << 16) | dport;
    const r = this.rec;
    const h = this.hash(p, a, sport, b, dport);
    const x = this.ixOut;
    const m = this.ixMask;
    const fm = this.fpMask;
    const fp = h & fm;
    for (let q = h & m; ; q = (q + 1) & m) {
      const e = x[q]!;
      if (e === 0) return -1;
      if ((e & fm) !== fp) continue;
      const i = (e & ~fm) - 1;
      const o = (i << 4) + R_OUT;
      // (templates are never hashed "out")
      if (r[o] === a && r[o + 1] === b && r[o + 2] === ports && r[o - R_OUT + R_META] === p) {
        if (this.recF[(i << 3) + R_EXP]! <= clock.nowMs) {
          this.free(i);
          return -1;
        }
        return i;
      }
    }
  }

  /**
   * Persistence template <p, caddr(masked), 0, vaddr, vport>, or -1. An expired template that
   * still controls connections is re-armed with its service's timeout (it cannot expire while
   * it controls any); an expired idle one is freed.
   */
  lookupTemplate(p: number, caddr: number, vaddr: number, vport: number): number {
    const a = caddr | 0;
    const b = vaddr | 0;
    const r = this.rec;
    const meta = p | R_META_TEMPLATE;
    const h = this.hash(p, a, 0, b, vport);
    const x = this.ixIn;
    const m = this.ixMask;
    const fm = this.fpMask;
    const fp = h & fm;
    for (let q = h & m; ; q = (q + 1) & m) {
      const e = x[q]!;
      if (e === 0) return -1;
      if ((e & fm) !== fp) continue;
      const i = (e & ~fm) - 1;
      const o = i << 4;
      if (r[o] === a && r[o + 1] === b && r[o + 2] === vport && r[o + R_META] === meta) {
        if (this.recF[(i << 3) + R_EXP]! <= clock.nowMs) {
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
    }
  }

  /** Free the expired connections a template controls. */
  private reapControlled(t: number): void {
    const now = clock.nowMs;
    let c = this.rec[(t << 4) + R_CTLHEAD]!;
    while (c >= 0) {
      const next = this.rec[(c << 4) + R_CTLNEXT]!;
      if (this.recF[(c << 3) + R_EXP]! <= now) this.free(c);
      c = next;
    }
  }

  private rearmTemplate(i: number): void {
    const s = this.owner.services[this.svc[i]!];
    this.recF[(i << 3) + R_EXP] = clock.nowMs + (s ? s.timeout : 60) * 1000;
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
      const exp = this.recF[(i << 3) + R_EXP]!;
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
    this.rec[(i << 4) + R_CTL] = tpl;
    this.rec[(i << 4) + R_META] = p;
    this.nControl[i] = 0;
    this.recF[(i << 3) + R_EXP] =
      clock.nowMs +
      (p === IPPROTO_TCP
        ? this.tcpTimeoutMs[0]!
        : p === IPPROTO_UDP
          ? this.udpTimeoutMs
          : this.icmpTimeoutMs);
    this.rec[(i << 4) + R_CTLHEAD] = -1;
    this.rec[(i << 4) + R_CTLPREV] = -1;
    if (tpl >= 0) {
      this.nControl[tpl]!++;
      const h = this.rec[(tpl << 4) + R_CTLHEAD]!;
      this.rec[(i << 4) + R_CTLNEXT] = h;
      if (h >= 0) this.rec[(h << 4) + R_CTLPREV] = i;
      this.rec[(tpl << 4) + R_CTLHEAD] = i;
    } else {
      this.rec[(i << 4) + R_CTLNEXT] = -1;
    }
    if (p === IPPROTO_TCP) this.embryonic++;
    this.recount(i);
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
    this.rec[(i << 4) + R_CTL] = -1;
    this.rec[(i << 4) + R_META] = p | R_META_TEMPLATE;
    this.nControl[i] = 0;
    this.rec[(i << 4) + R_CTLHEAD] = -1;
    this.rec[(i << 4) + R_CTLNEXT] = -1;
    this.rec[(i << 4) + R_CTLPREV] = -1;
    this.recF[(i << 3) + R_EXP] = clock.nowMs + timeoutS * 1000;
    dest.persistConns++;
    destOverloadOnBind(dest);
    this.recount(i);
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
    const o = (i << 4) + R_IN;
    const r = this.rec;
    r[o] = a;
    r[o + 1] = b;
    r[o + 2] = (this.cport[i]! << 16) | this.vport[i]!;
    r[o + 3] = h;
    this.ixInsert(this.ixIn, h, i);
    this.flags[i]! |= CONN_F_HASHED_IN;
  }

  private hashOut(i: number): void {
    const a = this.daddr[i]! | 0;
    const b = this.laddr[i]! | 0;
    const h = this.hash(this.proto[i]!, a, this.dport[i]!, b, this.lport[i]!);
    const o = (i << 4) + R_OUT;
    const r = this.rec;
    r[o] = a;
    r[o + 1] = b;
    r[o + 2] = (this.dport[i]! << 16) | this.lport[i]!;
    r[o + 3] = h;
    this.ixInsert(this.ixOut, h, i);
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
    this.ixRemove(this.ixIn, h, i, R_IN + 3);
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
    this.ixRemove(this.ixOut, h, i, R_OUT + 3);
    this.flags[i]! &= ~CONN_F_HASHED_OUT;
  }

  /** Put slot i with key hash h into index x at the first free entry from h's home. */
  private ixInsert(x: Int32Array, h: number, i: number): void {
    const m = this.ixMask;
    let q = h & m;
    while (x[q] !== 0) q = (q + 1) & m;
    x[q] = (h & this.fpMask) | (i + 1);
  }

  /**
   * Take slot i (key hash h) out of index x, closing the gap by shifting back the entries after
   * it that may move (backward-shift deletion: no tombstones, so probe runs never grow old).
   * An entry's home comes from its key hash, kept in its record's word `hw`.
   */
  private ixRemove(x: Int32Array, h: number, i: number, hw: number): void {
    const m = this.ixMask;
    const sm = ~this.fpMask;
    let hole = h & m;
    while ((x[hole]! & sm) !== i + 1) {
      if (x[hole] === 0) return; // not there (cannot happen while the flags say hashed)
      hole = (hole + 1) & m;
    }
    const r = this.rec;
    for (let q = (hole + 1) & m; ; q = (q + 1) & m) {
      const e = x[q]!;
      if (e === 0) break;
      const home = r[(((e & sm) - 1) << 4) + hw]! & m;
      // the entry at q may fill the hole unless its home lies cyclically in (hole, q]
      if (((q - home) & m) >= ((q - hole) & m)) {
        x[hole] = e;
        hole = q;
      }
    }
    x[hole] = 0;
  }

  /**
   * The XDP SYN-cookie responder's shared slot counts (conntrack/held.ts), when one is attached:
   * SYN-proxy entries count there from hold() until they close (TIME_WAIT, CLOSE) or are freed.
   */
  held: Uint8Array | null = null;

  /** Take entry i's count out of `held` (it was counted). */
  private unhold(i: number): void {
    this.flags[i]! &= ~CONN_F_HELD;
    const h = this.held;
    if (h === null) return;
    const k = heldIndex(this.caddr[i]! | 0, this.vaddr[i]! | 0, this.cport[i]!, this.vport[i]!);
    const n = h[k]!;
    if (n !== 0 && n !== 255) h[k] = n - 1;
  }

  /** Count entry i in `held` (a SYN-proxy entry; once; nothing without a responder). */
  hold(i: number): void {
    const h = this.held;
    if (h === null || (this.flags[i]! & CONN_F_HELD) !== 0) return;
    const k = heldIndex(this.caddr[i]! | 0, this.vaddr[i]! | 0, this.cport[i]!, this.vport[i]!);
    const n = h[k]!;
    if (n !== 255) h[k] = n + 1;
    this.flags[i]! |= CONN_F_HELD;
  }

  /** Remove slot i: unhash, unbind from its dest and template, run the release hook. */
  free(i: number): void {
    const f = this.flags[i]!;
    if ((f & CONN_F_USED) === 0) return;
    if ((f & CONN_F_HELD) !== 0) this.unhold(i);
    if ((f & CONN_F_HASHED_IN) !== 0) this.unhashIn(i);
    if ((f & CONN_F_HASHED_OUT) !== 0) this.unhashOut(i);
    this.uncount(i);
    const d = this.owner.dests[this.dest[i]!];
    if ((f & CONN_F_TEMPLATE) !== 0) {
      if (d) d.persistConns--;
    } else {
      if (d) {
        if ((f & CONN_F_INACTIVE) !== 0) d.inactConns--;
        else d.activeConns--;
      }
      const t = this.rec[(i << 4) + R_CTL]!;
      if (t >= 0) {
        const prev = this.rec[(i << 4) + R_CTLPREV]!;
        const next = this.rec[(i << 4) + R_CTLNEXT]!;
        if (prev >= 0) this.rec[(prev << 4) + R_CTLNEXT] = next;
        else this.rec[(t << 4) + R_CTLHEAD] = next;
        if (next >= 0) this.rec[(next << 4) + R_CTLPREV] = prev;
        this.rec[(i << 4) + R_CTL] = -1;
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

  /** kindCounts' index for slot i (a connection, not a template), or -1 when not counted. */
  private kindIndex(i: number): number {
    const p = this.proto[i]!;
    if (p === IPPROTO_TCP) return this.state[i]!;
    if (p === IPPROTO_UDP) return TCP_STATE_COUNT;
    if (p === IPPROTO_ICMP) return TCP_STATE_COUNT + 1;
    return -1;
  }

  /** Take slot i out of kindCounts / templateCounts (before it changes state or goes). */
  private uncount(i: number): void {
    if ((this.flags[i]! & CONN_F_TEMPLATE) !== 0) {
      this.templateCounts[this.state[i] === TEMPLATE_STATE_ASSURED ? 1 : 0]!--;
      return;
    }
    const k = this.kindIndex(i);
    if (k >= 0) this.kindCounts[k]!--;
  }

  /** Put slot i into kindCounts / templateCounts (after it was made or changed state). */
  private recount(i: number): void {
    if ((this.flags[i]! & CONN_F_TEMPLATE) !== 0) {
      this.templateCounts[this.state[i] === TEMPLATE_STATE_ASSURED ? 1 : 0]!++;
      return;
    }
    const k = this.kindIndex(i);
    if (k >= 0) this.kindCounts[k]!++;
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
        const t = this.rec[(i << 4) + R_CTL]!;
        if (t >= 0 && this.state[t] !== TEMPLATE_STATE_ASSURED) {
          this.templateCounts[0]!--;
          this.templateCounts[1]!++;
          this.state[t] = TEMPLATE_STATE_ASSURED;
        }
      }
      this.kindCounts[old]!--;
      this.kindCounts[ns]!++;
      this.state[i] = ns;
      // closing: a new connection's cookie ACK replaces the entry (conn_reuse_mode), so the XDP
      // responder may answer the tuple's SYNs again
      if ((ns === TcpState.TIME_WAIT || ns === TcpState.CLOSE) && (this.flags[i]! & CONN_F_HELD) !== 0)
        this.unhold(i);
    }
    this.recF[(i << 3) + R_EXP] = clock.nowMs + this.tcpTimeoutMs[ns]!;
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
    this.uncount(i);
    this.state[i] = state;
    this.recount(i);
    this.recF[(i << 3) + R_EXP] = expiresMs;
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
      this.recF[(i << 3) + R_EXP] = clock.nowMs + ONE_PACKET_TIMEOUT_MS;
      return;
    }
    const p = this.proto[i];
    this.recF[(i << 3) + R_EXP] =
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
      if ((f & CONN_F_USED) === 0 || this.recF[(i << 3) + R_EXP]! > now) continue;
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
    if (now - (this.recF[(i << 3) + R_EXP]! - this.timeoutOf(i)) < 60_000) return false;
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
