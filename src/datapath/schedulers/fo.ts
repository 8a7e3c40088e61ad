/**
 * fo — Weighted Fail Over, after net/netfilter/ipvs/ip_vs_fo.c.
 *
 * All new connections go to the non-overloaded dest with the highest weight; the first such dest
 * in list order wins ties (strict `>`), and weight 0 never qualifies (the running maximum starts
 * at 0).
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";
import { DEFAULT_INDEX_MIN_DESTS, DestIndex, IndexKind } from "./destindex.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { notOverloaded } = common;

/**
 * The linear reference: the kernel's walk over the list. The index gives the same dest in
 * O(log n) (destindex.ts); this serves short lists and property tests.
 */
export function foPickLinear(dests: readonly Dest[]): Dest | undefined {
  let best: Dest | undefined;
  let hw = 0;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i]!;
    if (notOverloaded(d) && d.weight > hw) {
      best = d;
      hw = d.weight;
    }
  }
  return best;
}

export class FoScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.FO, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return foPickLinear(dests);
    const i = ix.best();
    return i < 0 ? undefined : dests[i];
  }
}

export const foScheduler: SchedulerModule = {
  name: "fo",
  create: (svc) => new FoScheduler(svc),
};
