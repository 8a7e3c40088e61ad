/**
 * What lblc and lblcr share (net/netfilter/ipvs/ip_vs_lblc.c, ip_vs_lblcr.c): the cache size,
 * the garbage-collection timer's rules, and the "overloaded" test of the locality schedulers.
 *
 * The kernel runs a timer every 60 s per service:
 *   - every 30th run (counter % 30 == 0, counter starting at 1): full check — drop entries not
 *     used for `expiration` (sysctl lblc_expiration / lblcr_expiration, default 24 h);
 *   - otherwise, if the table holds more than max_size entries (16 per bucket × 1024 buckets):
 *     drop entries idle for 6 min, scanning from a rover, until
 *     goal = min((entries - max_size) * 4 / 3, max_size / 2) are gone; the counter is not advanced;
 *   - otherwise just counter++.
 * We have no timers on the data path: `select` runs the ticks that fell due since the last call,
 * each with its own scheduled time as "now" (nothing touched the cache in between, so the result
 * is what the timer would have done). After a very long idle spell (more than 90 due ticks) the
 * older ticks are folded into one full check at the time of the last of them.
 */

import type { Dest } from "../../tables/model.js";
import type { AddrTable } from "./addrtable.js";

export const CHECK_EXPIRE_INTERVAL_MS = 60_000;
export const ENTRY_TIMEOUT_MS = 6 * 60_000;
export const DEFAULT_EXPIRATION_MS = 24 * 60 * 60_000;
export const COUNT_FOR_FULL_EXPIRATION = 30;
/** CONFIG_IP_VS_LBLC_TAB_BITS / CONFIG_IP_VS_LBLCR_TAB_BITS default. */
export const DEFAULT_TAB_BITS = 10;
const MAX_REPLAYED_TICKS = 90;

export interface LocalityOptions {
  /** Hash-table bits as the kernel's CONFIG_IP_VS_LBLC(R)_TAB_BITS; max entries = 16 << bits. */
  tabBits?: number;
  /** The lblc(r)_expiration sysctl, ms (default 24 h). */
  expirationMs?: number;
}

export function maxEntries(opts: LocalityOptions): number {
  return (1 << (opts.tabBits ?? DEFAULT_TAB_BITS)) * 16;
}

/** The kernel timer's state and rules, driven lazily from `select`. */
export class ExpiryTimer {
  counter = 1;
  rover = 0;
  nextCheckMs: number;

  constructor(
    private readonly table: AddrTable,
    private readonly maxSize: number,
    private readonly expirationMs: number,
    /** Called for each entry just before it is dropped (lblcr frees the entry's set). */
    private readonly onDrop: ((slot: number) => void) | null,
    startMs: number,
  ) {
    this.nextCheckMs = startMs + CHECK_EXPIRE_INTERVAL_MS;
  }

  /** Run the ticks due at `now`. */
  run(now: number): void {
    if (this.nextCheckMs > now) return;
    const due = Math.floor((now - this.nextCheckMs) / CHECK_EXPIRE_INTERVAL_MS) + 1;
    if (due > MAX_REPLAYED_TICKS) {
      const skip = due - MAX_REPLAYED_TICKS;
      const t = this.nextCheckMs + (skip - 1) * CHECK_EXPIRE_INTERVAL_MS;
      this.fullCheck(t);
      this.counter = 1;
      this.nextCheckMs += skip * CHECK_EXPIRE_INTERVAL_MS;
    }
    while (this.nextCheckMs <= now) {
      this.tick(this.nextCheckMs);
      this.nextCheckMs += CHECK_EXPIRE_INTERVAL_MS;
    }
  }

  /** One timer run at time `t` (ip_vs_lblc_check_expire / ip_vs_lblcr_check_expire). */
  tick(t: number): void {
    if (this.counter % COUNT_FOR_FULL_EXPIRATION === 0) {
      this.fullCheck(t);
      this.counter = 1;
      return;
    }
    const entries = this.table.count;
    if (entries <= this.maxSize) {
      this.counter++;
      return;
    }
    let goal = Math.trunc(((entries - this.maxSize) * 4) / 3);
    if (goal > Math.trunc(this.maxSize / 2)) goal = Math.trunc(this.maxSize / 2);
    this.rover = this.table.sweep(this.rover + 1, goal, t - ENTRY_TIMEOUT_MS, this.onDrop);
  }

  /** Drop every entry unused for `expiration` (the kernel: !time_before(now, lastuse + exp)). */
  fullCheck(t: number): void {
    this.rover = this.table.sweep(
      this.rover + 1,
      Number.POSITIVE_INFINITY,
      t - this.expirationMs,
      this.onDrop,
    );
  }
}

/**
 * The locality schedulers' overload test (is_overloaded in ip_vs_lblc.c / ip_vs_lblcr.c): the
 * dest has more active connections than its weight while some dest of the service (any dest in
 * the list) has fewer than half its weight (activeconns * 2 < weight).
 */
export function localityOverloaded(d: Dest, dests: readonly Dest[]): boolean {
  if (d.activeConns <= d.weight) return false;
  for (let i = 0; i < dests.length; i++) {
    const m = dests[i]!;
    if (m.activeConns * 2 < m.weight) return true;
  }
  return false;
}
