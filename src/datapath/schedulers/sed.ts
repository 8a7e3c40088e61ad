/**
 * sed — Shortest Expected Delay scheduling, after net/netfilter/ipvs/ip_vs_sed.c
 * (Weinrib & Shenker, "Greed is not enough", INFOCOM'88).
 *
 * Expected delay of a new job on dest i = (activeconns_i + 1) / weight_i; inactive connections are
 * ignored. Same search as wlc: seed with the first usable dest, then replace when
 * loh * dest.weight > doh * least.weight (overloaded dests skipped; weight 0 never wins; ties keep
 * the earlier dest).
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";
import { DEFAULT_INDEX_MIN_DESTS, DestIndex, IndexKind } from "./destindex.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { notOverloaded, usable } = common;

/**
 * The linear reference: the kernel's walk over the list. The index gives the same dest in
 * O(log n) (destindex.ts); this serves short lists and property tests.
 */
export function sedPickLinear(dests: readonly Dest[]): Dest | undefined {
  const n = dests.length;
  let i = 0;
  for (; i < n; i++) {
    const d = dests[i]!;
    if (usable(d)) break;
  }
  if (i === n) return undefined;
  let least = dests[i]!;
  let loh = least.activeConns + 1;
  for (i++; i < n; i++) {
    const d = dests[i]!;
    if (!notOverloaded(d)) continue;
    const doh = d.activeConns + 1;
    if (loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

export class SedScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.SED, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return sedPickLinear(dests);
    const i = ix.best();
    return i < 0 ? undefined : dests[i];
  }
}

export const sedScheduler: SchedulerModule = {
  name: "sed",
  create: (svc) => new SedScheduler(svc),
};
