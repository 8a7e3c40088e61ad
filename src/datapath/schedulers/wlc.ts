/**
 * wlc — Weighted Least-Connection scheduling (ipvsadm's default), after
 * net/netfilter/ipvs/ip_vs_wlc.c.
 *
 * Pick the dest with the least overhead / weight, overhead = activeconns * 256 + inactconns.
 * Division is avoided as in the kernel: dest replaces the current least when
 * loh * dest.weight > doh * least.weight. The first usable dest (not overloaded, weight > 0) seeds
 * the search; later dests are only skipped when overloaded — a weight-0 dest can never win
 * because loh * 0 > doh * w is false. Ties keep the earlier dest in list order.
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";
import { DEFAULT_INDEX_MIN_DESTS, DestIndex, IndexKind } from "./destindex.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { connOverhead, notOverloaded, usable } = common;

/** The wlc pick over `dests` (shared with lblc/lblcr); -1 when no dest is usable. */
export function wlcIndex(dests: readonly Dest[]): number {
  const n = dests.length;
  let i = 0;
  for (; i < n; i++) {
    const d = dests[i]!;
    if (usable(d)) break;
  }
  if (i === n) return -1;
  let best = i;
  let least = dests[i]!;
  let loh = connOverhead(least);
  for (i++; i < n; i++) {
    const d = dests[i]!;
    if (!notOverloaded(d)) continue;
    const doh = connOverhead(d);
    if (loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
      best = i;
    }
  }
  return best;
}

/** The linear reference (the kernel's walk); the index gives the same dest in O(log n). */
export function wlcPickLinear(dests: readonly Dest[]): Dest | undefined {
  const i = wlcIndex(dests);
  return i < 0 ? undefined : dests[i];
}

export class WlcScheduler implements Scheduler {
  private readonly index: DestIndex;

  constructor(svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.index = new DestIndex(IndexKind.WLC, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    const i = ix.current(dests) ? ix.best() : wlcIndex(dests);
    return i < 0 ? undefined : dests[i];
  }
}

export const wlcScheduler: SchedulerModule = {
  name: "wlc",
  create: (svc) => new WlcScheduler(svc),
};
