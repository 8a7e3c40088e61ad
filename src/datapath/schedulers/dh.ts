/**
 * dh — Destination Hashing, after net/netfilter/ipvs/ip_vs_dh.c.
 *
 * A 256-bucket table (IP_VS_DH_TAB_BITS = 8) filled in list order, one bucket per dest, wrapping
 * round the list (weights are not used): bucket i → dests[i % n]. A decision hashes the packet's
 * destination address and takes that bucket's dest, or none when it is unavailable, quiescent or
 * overloaded — there is no fallback.
 *
 * Hash: current kernels use hash_32(daddr, 8), the top 8 bits of daddr * 0x61C88647; older ones
 * used (daddr * 2654435761) & 255. The default follows the current kernel; `legacyHash` selects
 * the old one (see createDhModule).
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";

// Module-local copies of imported helpers and constants: hot loops then use constants, not
// imported bindings (module cells, which optimized code may reload and check on every use;
// property reads on a module object under bundlers and vite-node).
const { usable } = common;
const GOLDEN = common.GOLDEN_RATIO_32;

export const DH_TAB_BITS = 8;
export const DH_TAB_SIZE = 1 << DH_TAB_BITS;

/** (addr * 2654435761) & 255, as 32-bit multiply (the low bits do not depend on the width). */
export const LEGACY_MULT = 0x9e3779b1;

export interface HashTableOptions {
  /** Use the pre-hash_32 formula (addr * 2654435761) & 255 of older kernels. */
  legacyHash?: boolean;
}

export class DhScheduler implements Scheduler {
  /** Bucket → index into `tab`, -1 when the service has no dests. */
  readonly buckets = new Int32Array(DH_TAB_SIZE).fill(-1);
  private tab: Dest[] = [];
  private readonly legacy: boolean;

  constructor(svc: Service, opts: HashTableOptions = {}) {
    this.legacy = opts.legacyHash === true;
    this.onDestsChanged(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.tab = dests.slice();
    const n = this.tab.length;
    for (let i = 0; i < DH_TAB_SIZE; i++) this.buckets[i] = n === 0 ? -1 : i % n;
  }

  /** Bucket for an address (exposed for tests and the simulator). */
  bucketOf(addr: number): number {
    return this.legacy ? Math.imul(addr, LEGACY_MULT) & (DH_TAB_SIZE - 1) : Math.imul(addr, GOLDEN) >>> 24;
  }

  select(_svc: Service, flow: FlowInfo): Dest | undefined {
    const a = flow.daddr;
    const b = this.legacy ? Math.imul(a, LEGACY_MULT) & 255 : Math.imul(a, GOLDEN) >>> 24;
    const i = this.buckets[b]!;
    if (i < 0) return undefined;
    const d = this.tab[i]!;
    return usable(d) ? d : undefined;
  }
}

export function createDhModule(opts: HashTableOptions = {}): SchedulerModule {
  return { name: "dh", create: (svc) => new DhScheduler(svc, opts) };
}

export const dhScheduler: SchedulerModule = createDhModule();
