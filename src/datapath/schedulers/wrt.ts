/**
 * wrt — Weighted Response Time (not in the kernel; named in our seed material).
 *
 * Pick the usable dest with the lowest respTimeUs / weight, compared as
 * lresp * dest.weight > dresp * least.weight; ties keep the earlier dest. `respTimeUs` is the
 * measured response time (health checks or connection set-up), 0 while nothing has been measured:
 * an unmeasured dest therefore counts as the fastest and is preferred, so new dests get traffic
 * (and a measurement) at once. Among several unmeasured dests the first in list order wins.
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
export function wrtPickLinear(dests: readonly Dest[]): Dest | undefined {
  let least: Dest | undefined;
  let lt = 0;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i]!;
    if (!usable(d)) continue;
    const t = d.respTimeUs;
    if (least === undefined || lt * d.weight > t * least.weight) {
      least = d;
      lt = t;
    }
  }
  return least;
}

export class WrtScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.WRT, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return wrtPickLinear(dests);
    const i = ix.best();
    return i < 0 ? undefined : dests[i];
  }
}

export const wrtScheduler: SchedulerModule = {
  name: "wrt",
  create: (svc) => new WrtScheduler(svc),
};
