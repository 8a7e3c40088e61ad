/**
 * fo — Weighted Fail Over, after net/netfilter/ipvs/ip_vs_fo.c.
 *
 * All new connections go to the non-overloaded dest with the highest weight; the first such dest
 * in list order wins ties (strict `>`), and weight 0 never qualifies (the running maximum starts
 * at 0).
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import { DEST_F_AVAILABLE } from "../../tables/model.js";
import { FLAGS_MASK } from "./common.js";

// Module-local copies of imported constants: hot loops then read locals, not imported bindings
// (which bundlers and vite-node turn into property reads on a module object).
const MASK = FLAGS_MASK;
const AVAILABLE = DEST_F_AVAILABLE;

export class FoScheduler implements Scheduler {
  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    let best: Dest | undefined;
    let hw = 0;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i]!;
      if ((d.flags & MASK) === AVAILABLE && d.weight > hw) {
        best = d;
        hw = d.weight;
      }
    }
    return best;
  }
}

export const foScheduler: SchedulerModule = {
  name: "fo",
  create: () => new FoScheduler(),
};
