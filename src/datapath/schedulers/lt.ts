/**
 * lt — Least Traffic (not in the kernel; named in our seed material).
 *
 * Pick the usable dest (available, not overloaded, weight > 0) with the lowest current byte rate,
 * `dest.rateBps` (in + out bytes/s, kept by the control plane's rate estimator). Strict `<`:
 * the first dest in list order wins ties, so with no traffic measured yet it behaves like `fo`
 * without weights — all new connections to the first usable dest until the estimator moves.
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
export function ltPickLinear(dests: readonly Dest[]): Dest | undefined {
  let least: Dest | undefined;
  let lr = 0;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i]!;
    if (!usable(d)) continue;
    const r = d.rateBps;
    if (least === undefined || r < lr) {
      least = d;
      lr = r;
    }
  }
  return least;
}

export class LtScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.LT, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return ltPickLinear(dests);
    const i = ix.best();
    return i < 0 ? undefined : dests[i];
  }
}

export const ltScheduler: SchedulerModule = {
  name: "lt",
  create: (svc) => new LtScheduler(svc),
};
