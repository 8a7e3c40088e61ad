/**
 * mh — Maglev Hashing, after net/netfilter/ipvs/ip_vs_mh.c (Eisenbud et al., "Maglev: A Fast and
 * Reliable Software Network Load Balancer", NSDI'16, §3.4), with the mh-fallback and mh-port
 * scheduler flags (SVC_F_SCHED1, SVC_F_SCHED2).
 *
 * Table: M slots, M prime. The kernel takes M from a list of primes picked by
 * CONFIG_IP_VS_MH_TAB_INDEX (default 12 → 4093); `createMhModule({ tableSize })` offers the other
 * kernel sizes and any other prime (Katran uses 65537).
 *
 * Built only in onDestsChanged (the kernel's add/del/upd hooks):
 *   per dest, v = dest port + dest address (mod 2^32),
 *     offset = hsiphash(v, key1) mod M,  skip = hsiphash(v, key2) mod (M - 1) + 1
 *   with the kernel's fixed keys (2654435761, 2654435761) and (2654446892, 2654446892);
 *   weights: g = gcd of the positive *last* weights, rshift = max(0, fls(max / g) - TAB_BITS),
 *     turns = ((last_weight / g) >> rshift) || (last_weight != 0)
 *   population: walk the dests in list order, each taking `turns` slots in a row, each slot the
 *   next free entry of its permutation (offset, offset + skip, ... mod M), until all M are full.
 * The table uses dest.lastWeight, the last non-zero weight, so quiescing a dest (weight 0) keeps
 * the table as it is; a dest added with weight 0 has no slot until it gets a weight.
 *
 * Decision: v = saddr + (mh-port ? source port for TCP/UDP/SCTP : 0); slot = hsiphash(v, key1)
 * mod M. A quiescent or overloaded dest there gives no dest — unless mh-fallback: then probe
 * slot hsiphash(v + ((offset + slot) mod M), key1) mod M for offset = 0..M-1 and take the first
 * usable dest. (We stop early when no usable dest is in the table at all: same answer, without
 * M hash computations.)
 */

import { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import { SVC_F_SCHED1, SVC_F_SCHED2 } from "../../tables/model.js";
import * as common from "./common.js";
import { hsiphashMod, SipKey } from "./siphash.js";

// Module-local copies of imported helpers and constants: hot loops then use constants, not
// imported bindings (module cells, which optimized code may reload and check on every use;
// property reads on a module object under bundlers and vite-node).
const { gcd, usable } = common;
const TCP = IPPROTO_TCP;
const UDP = IPPROTO_UDP;
const SCTP = IPPROTO_SCTP;
const GOLDEN = common.GOLDEN_RATIO_32;

// The module's `flags` name these bits in order: mh-fallback, mh-port (the registry maps flags[i]
// to SVC_F_SCHED(i+1)).
export const SVC_F_SCHED_MH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_MH_PORT = SVC_F_SCHED2;

/** The kernel's table sizes, selected by CONFIG_IP_VS_MH_TAB_INDEX = 8 + position. */
export const MH_KERNEL_PRIMES: readonly number[] = [
  251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/** Default CONFIG_IP_VS_MH_TAB_INDEX. */
export const MH_DEFAULT_TAB_INDEX = 12;
export const MH_DEFAULT_TABLE_SIZE = 4093;

/** generate_hash_secret(): fixed keys, so every director builds the same table. */
const MH_KEY1 = SipKey.fromU64(2654435761, 2654435761);
const MH_KEY2 = SipKey.fromU64(2654446892, 2654446892);

function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}

/**
 * IP_VS_MH_TAB_BITS = CONFIG_IP_VS_MH_TAB_INDEX / 2 for a kernel size; for another prime, the
 * index it would have (ceil(log2 M)) halved.
 */
export function mhTabBits(size: number): number {
  const k = MH_KERNEL_PRIMES.indexOf(size);
  const index = k >= 0 ? k + 8 : Math.ceil(Math.log2(size));
  return index >> 1;
}

export interface MhOptions {
  /** Lookup table size, a prime (default 4093, the kernel's default). */
  tableSize?: number;
  /**
   * log2 of the entries of the key → slot memo (default 14: 16384 entries, 128 KiB); 0 turns it
   * off. The slot of a key depends only on the key and M, so the memo never needs invalidating.
   */
  memoBits?: number;
}

export const MH_DEFAULT_MEMO_BITS = 14;

export class MhScheduler implements Scheduler {
  readonly size: number;
  readonly tabBits: number;
  /** Slot → index into `tab`, -1 when empty (no dest with a non-zero last weight). */
  readonly lookup: Int32Array;
  private tab: Dest[] = [];
  /** Scratch for population, reused across rebuilds. */
  private readonly used: Uint8Array;
  /**
   * Direct-mapped memo of hsiphash(key) mod M: the kernel's hash costs ~50 ns here (64-bit
   * SipHash on 32-bit halves), a memo hit a few ns, and clients come back with the same address.
   */
  private readonly memoKey: Int32Array;
  private readonly memoSlot: Int32Array;
  private readonly memoShift: number;

  constructor(svc: Service, opts: MhOptions = {}) {
    const size = opts.tableSize ?? MH_DEFAULT_TABLE_SIZE;
    if (!isPrime(size)) throw new RangeError(`mh table size must be a prime, got ${size}`);
    this.size = size;
    this.tabBits = mhTabBits(size);
    this.lookup = new Int32Array(size).fill(-1);
    this.used = new Uint8Array(size);
    const memoBits = opts.memoBits ?? MH_DEFAULT_MEMO_BITS;
    if (!Number.isInteger(memoBits) || memoBits < 0 || memoBits > 24) {
      throw new RangeError(`mh memoBits must be 0..24, got ${memoBits}`);
    }
    this.memoShift = 32 - memoBits;
    this.memoKey = new Int32Array(memoBits > 0 ? 1 << memoBits : 0);
    this.memoSlot = new Int32Array(memoBits > 0 ? 1 << memoBits : 0).fill(-1);
    this.onDestsChanged(svc.dests);
  }

  /** hsiphash(v, key1) mod M, through the memo. */
  private slotFor(v: number): number {
    if (this.memoShift === 32) return hsiphashMod(MH_KEY1, v, this.size);
    const i = Math.imul(v, GOLDEN) >>> this.memoShift;
    const cached = this.memoSlot[i]!;
    if (cached >= 0 && this.memoKey[i] === v) return cached;
    const slot = hsiphashMod(MH_KEY1, v, this.size);
    this.memoKey[i] = v;
    this.memoSlot[i] = slot;
    return slot;
  }

  /** The slot a key (address + port) hashes to. */
  slotOf(addr: number, port = 0): number {
    return hsiphashMod(MH_KEY1, (port + addr) | 0, this.size);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    const M = this.size;
    const n = dests.length;
    // ip_vs_mh_reassign refuses more dests than slots (-EINVAL): the old table stays.
    if (n > M) return;
    this.tab = dests.slice();
    let g = 0;
    let maxW = 0;
    for (const d of dests) {
      const lw = d.lastWeight;
      if (lw > 0) g = g > 0 ? gcd(lw, g) : lw;
      if (lw > maxW) maxW = lw;
    }
    const lookup = this.lookup;
    if (g < 1) {
      lookup.fill(-1);
      return;
    }
    const shift = 32 - Math.clz32(Math.trunc(maxW / g)) - this.tabBits;
    const rshift = Math.max(shift, 0);
    const perm = new Int32Array(n);
    const skip = new Int32Array(n);
    const turns = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const d = dests[i]!;
      const v = (d.port + d.addr) | 0;
      perm[i] = hsiphashMod(MH_KEY1, v, M);
      skip[i] = hsiphashMod(MH_KEY2, v, M - 1) + 1;
      const lw = d.lastWeight;
      turns[i] = Math.trunc(lw / g) >> rshift || (lw !== 0 ? 1 : 0);
    }
    const used = this.used;
    used.fill(0);
    let filled = 0;
    let count = 0;
    for (;;) {
      for (let i = 0; i < n; ) {
        if (turns[i]! < 1) {
          i++; // a dest added with weight 0 has no slot
          continue;
        }
        let c = perm[i]!;
        while (used[c] !== 0) {
          c += skip[i]!;
          if (c >= M) c -= M;
        }
        perm[i] = c;
        used[c] = 1;
        lookup[c] = i;
        if (++filled === M) return;
        if (++count >= turns[i]!) {
          count = 0;
          i++;
        }
      }
    }
  }

  select(svc: Service, flow: FlowInfo): Dest | undefined {
    const flags = svc.flags;
    let port = 0;
    if ((flags & SVC_F_SCHED_MH_PORT) !== 0) {
      const p = flow.proto;
      if (p === TCP || p === UDP || p === SCTP) port = flow.sport;
    }
    const v = (port + flow.saddr) | 0;
    const ihash = this.slotFor(v);
    const i = this.lookup[ihash]!;
    if (i < 0) return undefined;
    const tab = this.tab;
    const d = tab[i]!;
    if (usable(d)) return d;
    if ((flags & SVC_F_SCHED_MH_FALLBACK) === 0) return undefined;
    return this.fallback(v, ihash);
  }

  /** ip_vs_mh_get_fallback: probe hsiphash(v + roffset) for roffset = ihash, ihash + 1, ... */
  private fallback(v: number, ihash: number): Dest | undefined {
    const tab = this.tab;
    let any = false;
    for (let k = 0; k < tab.length; k++) {
      const d = tab[k]!;
      if (usable(d) && d.lastWeight > 0) {
        any = true;
        break;
      }
    }
    if (!any) return undefined;
    const M = this.size;
    const lookup = this.lookup;
    for (let offset = 0; offset < M; offset++) {
      let roffset = offset + ihash;
      if (roffset >= M) roffset -= M;
      const j = lookup[hsiphashMod(MH_KEY1, (roffset + v) | 0, M)]!;
      if (j < 0) break;
      const f = tab[j]!;
      if (usable(f)) return f;
    }
    return undefined;
  }
}

export function createMhModule(opts: MhOptions = {}): SchedulerModule {
  return { name: "mh", flags: ["mh-fallback", "mh-port"], create: (svc) => new MhScheduler(svc, opts) };
}

export const mhScheduler: SchedulerModule = createMhModule();
