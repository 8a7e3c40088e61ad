/**
 * sh — Source Hashing, after net/netfilter/ipvs/ip_vs_sh.c, with the sh-fallback and sh-port
 * scheduler flags (SVC_F_SCHED1, SVC_F_SCHED2).
 *
 * Table: 256 buckets (IP_VS_SH_TAB_BITS = 8) filled in list order, each dest taking `weight`
 * consecutive buckets (at least one: a weight-0 dest still takes one bucket), wrapping round the
 * list until all 256 are filled; rebuilt on every dest add/delete/update. With weights summing to
 * more than 256, dests late in the list get no bucket at all.
 *
 * Key: the source address plus, with sh-port, the source port for TCP/UDP/SCTP (0 otherwise):
 * v = (port + saddr) mod 2^32. Bucket: hash_32(v, 8) in current kernels (top 8 bits of
 * v * 0x61C88647); older kernels used (v * 2654435761) & 255 (`legacyHash`).
 *
 * A bucket whose dest is quiescent (weight <= 0) or overloaded gives no dest — unless sh-fallback
 * is set: then, as the kernel does, probe bucket ((offset + ihash) mod 256 + ihash) mod 256 for
 * offset = 0..255 and take the first usable dest (the original hash is the deterministic start).
 */

import { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import { SVC_F_SCHED1, SVC_F_SCHED2 } from "../../tables/model.js";
import * as common from "./common.js";
import { type HashTableOptions, LEGACY_MULT } from "./dh.js";

// Module-local copies of imported helpers and constants: hot loops then use constants, not
// imported bindings (module cells, which optimized code may reload and check on every use;
// property reads on a module object under bundlers and vite-node).
const { usable } = common;
const GOLDEN = common.GOLDEN_RATIO_32;
const LEGACY = LEGACY_MULT;
const TCP = IPPROTO_TCP;
const UDP = IPPROTO_UDP;
const SCTP = IPPROTO_SCTP;

export const SH_TAB_BITS = 8;
export const SH_TAB_SIZE = 1 << SH_TAB_BITS;
// The module's `flags` name these bits in order: sh-fallback, sh-port (the registry maps flags[i]
// to SVC_F_SCHED(i+1)).
export const SVC_F_SCHED_SH_FALLBACK = SVC_F_SCHED1;
export const SVC_F_SCHED_SH_PORT = SVC_F_SCHED2;

export class ShScheduler implements Scheduler {
  /** Bucket → index into `tab`, -1 when the service has no dests. */
  readonly buckets = new Int32Array(SH_TAB_SIZE).fill(-1);
  private tab: Dest[] = [];
  private readonly legacy: boolean;

  constructor(svc: Service, opts: HashTableOptions = {}) {
    this.legacy = opts.legacyHash === true;
    this.onDestsChanged(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.tab = dests.slice();
    const n = this.tab.length;
    let p = 0;
    let count = 0;
    for (let i = 0; i < SH_TAB_SIZE; i++) {
      if (n === 0) {
        this.buckets[i] = -1;
        continue;
      }
      this.buckets[i] = p;
      // Don't move to the next dest until it has `weight` buckets.
      if (++count >= this.tab[p]!.weight) {
        p = p + 1 === n ? 0 : p + 1;
        count = 0;
      }
    }
  }

  /** Bucket for a source address and port (port 0 without sh-port); for tests and simulation. */
  bucketOf(addr: number, port = 0): number {
    const v = (port + addr) | 0;
    return this.legacy ? Math.imul(v, LEGACY) & 255 : Math.imul(v, GOLDEN) >>> 24;
  }

  select(svc: Service, flow: FlowInfo): Dest | undefined {
    const flags = svc.flags;
    let port = 0;
    if ((flags & SVC_F_SCHED_SH_PORT) !== 0) {
      const p = flow.proto;
      if (p === TCP || p === UDP || p === SCTP) port = flow.sport;
    }
    const v = (port + flow.saddr) | 0;
    const ihash = this.legacy ? Math.imul(v, LEGACY) & 255 : Math.imul(v, GOLDEN) >>> 24;
    const i = this.buckets[ihash]!;
    if (i < 0) return undefined;
    const tab = this.tab;
    const d = tab[i]!;
    if (usable(d)) return d;
    if ((flags & SVC_F_SCHED_SH_FALLBACK) === 0) return undefined;
    // ip_vs_sh_get_fallback: loop round the table from the original hash.
    for (let offset = 0; offset < SH_TAB_SIZE; offset++) {
      const roffset = (offset + ihash) & 255;
      const j = this.buckets[(roffset + ihash) & 255]!;
      if (j < 0) break;
      const f = tab[j]!;
      if (usable(f)) return f;
    }
    return undefined;
  }
}

export function createShModule(opts: HashTableOptions = {}): SchedulerModule {
  return { name: "sh", flags: ["sh-fallback", "sh-port"], create: (svc) => new ShScheduler(svc, opts) };
}

export const shScheduler: SchedulerModule = createShModule();
