/**
 * lt — Least Traffic (not in the kernel; named in our seed material).
 *
 * Pick the usable dest (available, not overloaded, weight > 0) with the lowest current byte rate,
 * `dest.rateBps` (in + out bytes/s, kept by the control plane's rate estimator). Strict `<`:
 * the first dest in list order wins ties, so with no traffic measured yet it behaves like `fo`
 * without weights — all new connections to the first usable dest until the estimator moves.
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import { DEST_F_AVAILABLE } from "../../tables/model.js";
import { FLAGS_MASK } from "./common.js";

// Module-local copies of imported constants: hot loops then read locals, not imported bindings
// (which bundlers and vite-node turn into property reads on a module object).
const MASK = FLAGS_MASK;
const AVAILABLE = DEST_F_AVAILABLE;

export class LtScheduler implements Scheduler {
  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    let least: Dest | undefined;
    let lr = 0;
    for (let i = 0; i < dests.length; i++) {
      const d = dests[i]!;
      if ((d.flags & MASK) !== AVAILABLE || d.weight <= 0) continue;
      const r = d.rateBps;
      if (least === undefined || r < lr) {
        least = d;
        lr = r;
      }
    }
    return least;
  }
}

export const ltScheduler: SchedulerModule = {
  name: "lt",
  create: () => new LtScheduler(),
};
