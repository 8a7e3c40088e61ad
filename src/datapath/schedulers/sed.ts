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

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { notOverloaded, usable } = common;

export class SedScheduler implements Scheduler {
  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
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
}

export const sedScheduler: SchedulerModule = {
  name: "sed",
  create: () => new SedScheduler(),
};
