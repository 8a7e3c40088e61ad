/**
 * ovf — Overflow-connection scheduling, after net/netfilter/ipvs/ip_vs_ovf.c.
 *
 * Send everything to the highest-weight dest until its active connections exceed its weight, then
 * overflow to the next. A dest qualifies when it is not overloaded, has weight > 0 and
 * activeconns <= weight (the kernel skips `activeconns > weight`); among those the highest weight
 * wins, first in list order on ties. Only active connections count, so (as the kernel notes) it
 * suits UDP poorly.
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";
import { DEFAULT_INDEX_MIN_DESTS, DestIndex, IndexKind } from "./destindex.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { usable } = common;

/**
 * The linear reference: the kernel's walk over the list. The index gives the same dest in
 * O(log n) (destindex.ts); this serves short lists and property tests.
 */
export function ovfPickLinear(dests: readonly Dest[]): Dest | undefined {
  let h: Dest | undefined;
  let hw = 0;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i]!;
    const w = d.weight;
    if (!usable(d) || d.activeConns > w) continue;
    if (h === undefined || w > hw) {
      h = d;
      hw = w;
    }
  }
  return h;
}

export class OvfScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.OVF, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return ovfPickLinear(dests);
    const i = ix.best();
    return i < 0 ? undefined : dests[i];
  }
}

export const ovfScheduler: SchedulerModule = {
  name: "ovf",
  create: (svc) => new OvfScheduler(svc),
};
