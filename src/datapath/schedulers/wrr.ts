/**
 * wrr — Weighted Round-Robin scheduling, after net/netfilter/ipvs/ip_vs_wrr.c.
 *
 * State (the kernel's `ip_vs_wrr_mark`): a list cursor `cl` (a dest, or the head), the current
 * weight `cw`, the maximum weight `mw` and the step `di`:
 *   di = gcd of the positive weights (1 when there are none)
 *   mw = max weight - (di - 1)       (so the last pass runs with cw = 1 and catches any weight >= 1)
 * A decision walks on from the cursor and takes the first dest that is not overloaded and has
 * weight >= cw. Each time the walk passes the end of the list, cw -= di; when cw drops to 0 or
 * below it restarts at mw. The walk gives up ("all destinations are overloaded") once every dest
 * has been checked at cw <= di; mw == 0 (no dest with weight > 0) fails at once.
 *
 * Initialisation and dest changes differ, exactly as in the kernel:
 *   create (init_svc):           cl = head, cw = mw
 *   onDestsChanged (dest_changed): cl = head; cw = mw if cw > mw or cw == 0,
 *                                  else if di > 1, cw = (cw / di) * di + 1 (integer division),
 *                                  else cw is kept.
 * So a service built dest by dest (-A, then -a, -a, ...) starts with the cw left over from the
 * earlier, smaller dest sets, while a scheduler bound to an existing dest set starts at mw.
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { gcd, notOverloaded } = common;

/** di: gcd of the positive weights, 1 when there are none. */
export function wrrGcdWeight(dests: readonly Dest[]): number {
  let g = 0;
  for (const d of dests) {
    if (d.weight > 0) g = g > 0 ? gcd(d.weight, g) : d.weight;
  }
  return g > 0 ? g : 1;
}

/** Maximum weight over all dests (0 when none is positive). */
export function wrrMaxWeight(dests: readonly Dest[]): number {
  let w = 0;
  for (const d of dests) if (d.weight > w) w = d.weight;
  return w;
}

export class WrrScheduler implements Scheduler {
  /** Cursor: index of the last pick, -1 for the list head. */
  cl = -1;
  /** Current weight. */
  cw: number;
  /** Maximum weight, reduced by di - 1. */
  mw: number;
  /** Decreasing interval: gcd of the weights. */
  di: number;

  constructor(svc: Service) {
    this.di = wrrGcdWeight(svc.dests);
    this.mw = wrrMaxWeight(svc.dests) - (this.di - 1);
    this.cw = this.mw;
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.cl = -1;
    this.di = wrrGcdWeight(dests);
    this.mw = wrrMaxWeight(dests) - (this.di - 1);
    if (this.cw > this.mw || this.cw === 0) this.cw = this.mw;
    else if (this.di > 1) this.cw = Math.trunc(this.cw / this.di) * this.di + 1;
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    if (this.mw === 0) return undefined; // no dest with weight > 0
    const dests = svc.dests;
    const n = dests.length;
    let pos = this.cl < n ? this.cl : -1;
    const last = pos;
    let stop = -2; // -2: no stop dest yet
    let lastPass = false;
    let restarted = false;
    let cw = this.cw;
    const di = this.di;
    const mw = this.mw;
    for (;;) {
      // Walk from the entry after `pos` to the end of the list.
      for (let i = pos + 1; i < n; i++) {
        const d = dests[i]!;
        if (notOverloaded(d) && d.weight >= cw) {
          this.cl = i;
          this.cw = cw;
          return d;
        }
        if (i === stop) {
          this.cl = i;
          this.cw = cw;
          return undefined;
        }
      }
      pos = -1; // back at the head
      cw -= di;
      if (cw <= 0) {
        cw = mw;
        // Stop if the last pass already ran from the head, or the walk began at the head.
        if (lastPass || last === -1) {
          this.cl = -1;
          this.cw = cw;
          return undefined;
        }
        restarted = true;
      }
      lastPass = cw <= di;
      // The first traversal at w >= 1 only covered dests after `last`; now cover those up to it.
      if (lastPass && restarted && last !== -1) stop = last;
    }
  }
}

export const wrrScheduler: SchedulerModule = {
  name: "wrr",
  create: (svc) => new WrrScheduler(svc),
};
