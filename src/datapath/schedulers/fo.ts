/**
 * fo — Weighted Fail Over, after net/netfilter/ipvs/ip_vs_fo.c.
 *
 * All new connections go to the non-overloaded dest with the highest weight; the first such dest
 * in list order wins ties (strict `>`), and weight 0 never qualifies (the running maximum starts
 * at 0).
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { notOverloaded } = common;

export class FoScheduler implements Scheduler {
  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
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
}

export const foScheduler: SchedulerModule = {
  name: "fo",
  create: () => new FoScheduler(),
};
