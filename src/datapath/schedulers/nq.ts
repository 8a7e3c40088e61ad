/**
 * nq — Never Queue scheduling, after net/netfilter/ipvs/ip_vs_nq.c.
 *
 * Two-speed model: the first usable dest (not overloaded, weight > 0) with no active connection
 * is taken at once; otherwise the sed choice, least (activeconns + 1) / weight compared as
 * loh * dest.weight > doh * least.weight, earlier dest on ties.
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
export function nqPickLinear(dests: readonly Dest[]): Dest | undefined {
  let least: Dest | undefined;
  let loh = 0;
  for (let i = 0; i < dests.length; i++) {
    const d = dests[i]!;
    if (!usable(d)) continue;
    if (d.activeConns === 0) return d; // an idle server: never queue
    const doh = d.activeConns + 1;
    if (least === undefined || loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

export class NqScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.NQ, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return nqPickLinear(dests);
    const i = ix.best();
    return i < 0 ? undefined : dests[i];
  }
}

export const nqScheduler: SchedulerModule = {
  name: "nq",
  create: (svc) => new NqScheduler(svc),
};
