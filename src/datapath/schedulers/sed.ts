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
import { DEST_F_AVAILABLE } from "../../tables/model.js";
import { FLAGS_MASK } from "./common.js";

// Module-local copies of imported constants: hot loops then read locals, not imported bindings
// (which bundlers and vite-node turn into property reads on a module object).
const MASK = FLAGS_MASK;
const AVAILABLE = DEST_F_AVAILABLE;

export class SedScheduler implements Scheduler {
  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const n = dests.length;
    let i = 0;
    for (; i < n; i++) {
      const d = dests[i]!;
      if ((d.flags & MASK) === AVAILABLE && d.weight > 0) break;
    }
    if (i === n) return undefined;
    let least = dests[i]!;
    let loh = least.activeConns + 1;
    for (i++; i < n; i++) {
      const d = dests[i]!;
      if ((d.flags & MASK) !== AVAILABLE) continue;
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
