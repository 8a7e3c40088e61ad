/**
 * lblc — Locality-Based Least-Connection, after net/netfilter/ipvs/ip_vs_lblc.c.
 *
 * A cache maps a packet's destination address to a dest:
 *   entry = cache[daddr]; entry.lastuse = now
 *   if entry's dest is in the service, has weight > 0 and is not "overloaded" — more active
 *     connections than its weight while some dest has activeconns * 2 < weight — use it;
 *   otherwise pick by wlc and store the pick (replacing the entry; a new entry is refused once the
 *     cache holds more than max_size = 16 × 1024 entries, and the pick is used uncached).
 * Entries are collected by the kernel's timer rules (see locality.ts).
 *
 * Kernel exception, kept on purpose: a cache hit does not test the threshold flag
 * (DEST_F_OVERLOAD), only the locality overload rule above, so a cached dest that reached its
 * upper connection threshold keeps receiving the connections for its addresses. A miss goes
 * through wlc, which does skip threshold-overloaded dests.
 *
 * The cache is an open-addressed typed-array table (AddrTable): no allocation per decision.
 * Entries refer to dests by index; on a dest change the indexes are remapped and entries of
 * removed dests dropped (the kernel keeps them, pointing at a dest in the trash that fails the
 * availability test, and replaces them on their next use — the same decision).
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import { DEST_F_AVAILABLE } from "../../tables/model.js";
import { clock } from "../clock.js";
import { AddrTable } from "./addrtable.js";
import {
  DEFAULT_EXPIRATION_MS,
  ExpiryTimer,
  type LocalityOptions,
  localityOverloaded,
  maxEntries,
} from "./locality.js";
import { wlcIndex } from "./wlc.js";

// Module-local copies of imported constants: hot loops then read constants, not imported
// bindings (module cells, which optimized code may reload and check on every use; property
// reads on a module object under bundlers and vite-node).
const AVAILABLE = DEST_F_AVAILABLE;

export class LblcScheduler implements Scheduler {
  readonly table: AddrTable;
  readonly timer: ExpiryTimer;
  readonly maxSize: number;
  private refs: Dest[] = [];

  constructor(svc: Service, opts: LocalityOptions = {}) {
    this.maxSize = maxEntries(opts);
    this.table = new AddrTable(this.maxSize + 1);
    this.timer = new ExpiryTimer(
      this.table,
      this.maxSize,
      opts.expirationMs ?? DEFAULT_EXPIRATION_MS,
      null,
      clock.nowMs,
    );
    this.refs = svc.dests.slice();
  }

  onDestsChanged(dests: readonly Dest[]): void {
    const next = new Map<Dest, number>();
    for (let i = 0; i < dests.length; i++) next.set(dests[i]!, i);
    const old = this.refs;
    const t = this.table;
    // Remap; entries whose dest left the service are dropped (sweep-free: collect then delete).
    const gone: number[] = [];
    for (let s = 0; s < t.capacity; s++) {
      if (t.used[s] === 0) continue;
      const ni = next.get(old[t.a[s]!]!);
      if (ni === undefined) gone.push(t.keys[s]!);
      else t.a[s] = ni;
    }
    for (const key of gone) t.removeAt(t.find(key));
    this.refs = dests.slice();
  }

  /** The cached dest for a destination address (tests, introspection). */
  cached(daddr: number): Dest | undefined {
    const s = this.table.find(daddr);
    return s < 0 ? undefined : this.refs[this.table.a[s]!];
  }

  select(_svc: Service, flow: FlowInfo): Dest | undefined {
    const now = clock.nowMs;
    this.timer.run(now);
    const t = this.table;
    const refs = this.refs;
    const key = flow.daddr;
    const slot = t.find(key);
    if (slot >= 0) {
      t.lastUse[slot] = now;
      const d = refs[t.a[slot]!]!;
      if ((d.flags & AVAILABLE) !== 0 && d.weight > 0 && !localityOverloaded(d, refs)) return d;
    }
    const i = wlcIndex(refs);
    if (i < 0) return undefined;
    const pick = refs[i]!;
    // ip_vs_lblc_new
    if (slot >= 0) {
      if (t.a[slot] === i) return pick;
      if (t.count - 1 > this.maxSize) {
        t.removeAt(slot);
        return pick;
      }
      t.a[slot] = i;
      t.lastUse[slot] = now;
      return pick;
    }
    if (t.count > this.maxSize) return pick;
    const s = t.insert(key);
    t.a[s] = i;
    t.lastUse[s] = now;
    return pick;
  }
}

export function createLblcModule(opts: LocalityOptions = {}): SchedulerModule {
  return { name: "lblc", create: (svc) => new LblcScheduler(svc, opts) };
}

export const lblcScheduler: SchedulerModule = createLblcModule();
