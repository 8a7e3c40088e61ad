/**
 * lc — Least-Connection scheduling, after net/netfilter/ipvs/ip_vs_lc.c.
 *
 * Pick the dest with the least overhead = activeconns * 256 + inactconns (ip_vs_dest_conn_overhead;
 * the file's comment says `<< 5`, the code uses the shared `<< 8`), skipping overloaded and
 * weight-0 dests. Strictly-less comparison: the first dest in list order wins ties. Weights play
 * no other part.
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";
import { DEFAULT_INDEX_MIN_DESTS, DestIndex, IndexKind } from "./destindex.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { connOverhead, usable } = common;

/**
 * The linear reference: the kernel's walk over the list. The index gives the same dest in
 * O(log n) (destindex.ts); this serves short lists and property tests.
 */
export function lcPickLinear(dests: readonly Dest[]): Dest | undefined {
  let least: Dest | undefined;
  let loh = 0;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i]!;
    if (!usable(d)) continue;
    const doh = connOverhead(d);
    if (least === undefined || doh < loh) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

export class LcScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.LC, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return lcPickLinear(dests);
    const i = ix.best();
    return i < 0 ? undefined : dests[i];
  }
}

export const lcScheduler: SchedulerModule = {
  name: "lc",
  create: (svc) => new LcScheduler(svc),
};
