/**
 * rr — Round-Robin scheduling, after net/netfilter/ipvs/ip_vs_rr.c.
 *
 * The kernel keeps one cursor per service: the list position of the last pick (or the list head
 * before the first pick). A decision walks the list cyclically from the entry after the cursor and
 * takes the first dest that is not overloaded and has weight > 0, checking every dest once
 * (including the cursor's own dest, last). The cursor then moves to the pick.
 *
 * Dest changes: adding a dest leaves the cursor where it is (the new dest sits at the head, so it
 * is reached when the walk wraps). Deleting the dest under the cursor moves the cursor to the
 * entry before it (ip_vs_rr_del_dest), so the walk continues with the dest after the deleted one.
 * We keep the cursor as a Dest reference plus its index; `onDestsChanged` re-derives the index and,
 * when the cursor's dest is gone, steps back through the previous list to the nearest survivor.
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { usable } = common;

export class RrScheduler implements Scheduler {
  /** Dest under the cursor, or null for the list head. */
  private last: Dest | null = null;
  /** Index of `last` in the dest list; -1 for the head. */
  private lastIdx = -1;
  /** Copy of the list as of the last change, to find a deleted cursor's predecessor. */
  private prev: Dest[] = [];

  constructor(svc: Service) {
    this.prev = svc.dests.slice();
  }

  onDestsChanged(dests: readonly Dest[]): void {
    const last = this.last;
    if (last !== null) {
      let idx = dests.indexOf(last);
      if (idx < 0) {
        // The cursor's dest was deleted: like the kernel, step back to the entry before it.
        const present = new Set(dests);
        const at = this.prev.indexOf(last);
        this.last = null;
        for (let i = at - 1; i >= 0; i--) {
          const d = this.prev[i]!;
          if (present.has(d)) {
            this.last = d;
            idx = dests.indexOf(d);
            break;
          }
        }
      }
      this.lastIdx = this.last === null ? -1 : idx;
    }
    this.prev = dests.slice();
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const n = dests.length;
    let idx = this.lastIdx;
    // Guard against a list changed without onDestsChanged: re-derive the cursor (no allocation).
    if (idx >= n || (idx >= 0 && dests[idx] !== this.last)) {
      idx = this.last === null ? -1 : dests.indexOf(this.last);
    }
    let i = idx + 1;
    for (let k = 0; k < n; k++, i++) {
      if (i >= n) i = 0;
      const d = dests[i]!;
      if (usable(d)) {
        this.last = d;
        this.lastIdx = i;
        return d;
      }
    }
    return undefined;
  }
}

export const rrScheduler: SchedulerModule = {
  name: "rr",
  create: (svc) => new RrScheduler(svc),
};
