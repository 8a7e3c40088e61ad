/**
 * lblcr — Locality-Based Least-Connection with Replication, after
 * net/netfilter/ipvs/ip_vs_lblcr.c.
 *
 * A cache maps a destination address to a *set* of dests (newest first):
 *   entry = cache[daddr]; entry.lastuse = now
 *   n = set_min: the least overhead/weight member that is in the service, not overloaded and has
 *       weight > 0 (first such member seeds; others replace it when loh * w > doh * lw)
 *   if the set has more than one member and was last modified more than `expiration` ago (24 h):
 *       remove set_max, the member with the most overhead/weight among weight > 0 (the set's
 *       last-modified time is updated)
 *   if n exists and is not overloaded (activeconns > weight while some dest has
 *       activeconns * 2 < weight): use n
 *   otherwise pick by wlc, add it to the set (if not already there) and use it.
 * A miss creates an entry whose set holds the wlc pick, unless the cache already holds more than
 * max_size entries. Entries are collected by the kernel's timer rules (locality.ts).
 *
 * Sets live in a fixed pool of list elements (typed arrays), 4 per cache entry; like a failed
 * kmalloc in the kernel, an insert into a full pool is skipped. Nothing is allocated per
 * decision. On a dest change, members that left the service are dropped from their sets (the
 * kernel keeps them until expiry, never picking them: set_min skips unavailable members).
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import { clock } from "../clock.js";
import { AddrTable } from "./addrtable.js";
import * as common from "./common.js";
import {
  DEFAULT_EXPIRATION_MS,
  ExpiryTimer,
  type LocalityOptions,
  localityOverloaded,
  maxEntries,
} from "./locality.js";
import { wlcIndex } from "./wlc.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { connOverhead, notOverloaded, usable } = common;

const POOL_PER_ENTRY = 4;

export class LblcrScheduler implements Scheduler {
  readonly table: AddrTable;
  readonly timer: ExpiryTimer;
  readonly maxSize: number;
  readonly expirationMs: number;
  private refs: Dest[] = [];
  /** Set elements: next element (-1 = end) and dest index. */
  private readonly next: Int32Array;
  private readonly elDest: Int32Array;
  private freeHead: number;
  private readonly freeSetBound: (slot: number) => void;

  constructor(svc: Service, opts: LocalityOptions = {}) {
    this.maxSize = maxEntries(opts);
    this.expirationMs = opts.expirationMs ?? DEFAULT_EXPIRATION_MS;
    this.table = new AddrTable(this.maxSize + 1);
    const poolSize = (this.maxSize + 1) * POOL_PER_ENTRY;
    this.next = new Int32Array(poolSize);
    this.elDest = new Int32Array(poolSize);
    for (let i = 0; i < poolSize; i++) this.next[i] = i + 1 < poolSize ? i + 1 : -1;
    this.freeHead = 0;
    this.freeSetBound = (slot) => this.freeSet(slot);
    this.timer = new ExpiryTimer(this.table, this.maxSize, this.expirationMs, this.freeSetBound, clock.nowMs);
    this.refs = svc.dests.slice();
  }

  onDestsChanged(dests: readonly Dest[]): void {
    const idx = new Map<Dest, number>();
    for (let i = 0; i < dests.length; i++) idx.set(dests[i]!, i);
    const old = this.refs;
    const t = this.table;
    for (let s = 0; s < t.capacity; s++) {
      if (t.used[s] === 0) continue;
      let prev = -1;
      let e = t.a[s]!;
      while (e >= 0) {
        const nx = this.next[e]!;
        const ni = idx.get(old[this.elDest[e]!]!);
        if (ni === undefined) {
          if (prev < 0) t.a[s] = nx;
          else this.next[prev] = nx;
          this.freeEl(e);
          t.b[s]!--;
        } else {
          this.elDest[e] = ni;
          prev = e;
        }
        e = nx;
      }
    }
    this.refs = dests.slice();
  }

  private freeEl(e: number): void {
    this.next[e] = this.freeHead;
    this.freeHead = e;
  }

  /** Release an entry's set (before the entry is dropped). */
  private freeSet(slot: number): void {
    let e = this.table.a[slot]!;
    while (e >= 0) {
      const nx = this.next[e]!;
      this.freeEl(e);
      e = nx;
    }
    this.table.a[slot] = -1;
    this.table.b[slot] = 0;
  }

  /** ip_vs_dest_set_insert: add at the head unless present (when `check`). */
  private setInsert(slot: number, di: number, check: boolean, now: number): void {
    const t = this.table;
    if (check) {
      for (let e = t.a[slot]!; e >= 0; e = this.next[e]!) if (this.elDest[e] === di) return;
    }
    const e = this.freeHead;
    if (e < 0) return; // pool exhausted: skipped, as when kmalloc fails
    this.freeHead = this.next[e]!;
    this.elDest[e] = di;
    this.next[e] = t.a[slot]!;
    t.a[slot] = e;
    t.b[slot]!++;
    t.t[slot] = now;
  }

  /** ip_vs_dest_set_erase. */
  private setErase(slot: number, di: number, now: number): void {
    const t = this.table;
    let prev = -1;
    for (let e = t.a[slot]!; e >= 0; prev = e, e = this.next[e]!) {
      if (this.elDest[e] !== di) continue;
      if (prev < 0) t.a[slot] = this.next[e]!;
      else this.next[prev] = this.next[e]!;
      this.freeEl(e);
      t.b[slot]!--;
      t.t[slot] = now;
      return;
    }
  }

  /** ip_vs_dest_set_min: index of the least loaded usable member, -1 if none. */
  private setMin(slot: number): number {
    const refs = this.refs;
    let e = this.table.a[slot]!;
    let least: Dest | undefined;
    let li = -1;
    let loh = 0;
    for (; e >= 0; e = this.next[e]!) {
      const d = refs[this.elDest[e]!]!;
      if (usable(d)) {
        least = d;
        li = this.elDest[e]!;
        loh = connOverhead(d);
        e = this.next[e]!;
        break;
      }
    }
    if (least === undefined) return -1;
    for (; e >= 0; e = this.next[e]!) {
      const d = refs[this.elDest[e]!]!;
      if (!notOverloaded(d)) continue;
      const doh = connOverhead(d);
      if (loh * d.weight > doh * least.weight) {
        least = d;
        li = this.elDest[e]!;
        loh = doh;
      }
    }
    return li;
  }

  /** ip_vs_dest_set_max: index of the most loaded member with weight > 0, -1 if none. */
  private setMax(slot: number): number {
    const refs = this.refs;
    let e = this.table.a[slot]!;
    let most: Dest | undefined;
    let mi = -1;
    let moh = 0;
    for (; e >= 0; e = this.next[e]!) {
      const d = refs[this.elDest[e]!]!;
      if (d.weight > 0) {
        most = d;
        mi = this.elDest[e]!;
        moh = connOverhead(d);
        e = this.next[e]!;
        break;
      }
    }
    if (most === undefined) return -1;
    for (; e >= 0; e = this.next[e]!) {
      const d = refs[this.elDest[e]!]!;
      const doh = connOverhead(d);
      if (moh * d.weight < doh * most.weight && d.weight > 0) {
        most = d;
        mi = this.elDest[e]!;
        moh = doh;
      }
    }
    return mi;
  }

  /** The dests in the set cached for a destination address, newest first (tests, introspection). */
  cachedSet(daddr: number): Dest[] {
    const s = this.table.find(daddr);
    const out: Dest[] = [];
    if (s < 0) return out;
    for (let e = this.table.a[s]!; e >= 0; e = this.next[e]!) out.push(this.refs[this.elDest[e]!]!);
    return out;
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
      const mi = this.setMin(slot);
      // More than one member and not modified for `expiration`: drop the most loaded one.
      if (t.b[slot]! > 1 && now > t.t[slot]! + this.expirationMs) {
        const m = this.setMax(slot);
        if (m >= 0) this.setErase(slot, m, now);
      }
      if (mi >= 0 && !localityOverloaded(refs[mi]!, refs)) return refs[mi];
      const i = wlcIndex(refs);
      if (i < 0) return undefined;
      this.setInsert(slot, i, true, now);
      return refs[i];
    }
    const i = wlcIndex(refs);
    if (i < 0) return undefined;
    // ip_vs_lblcr_new
    if (t.count <= this.maxSize) {
      const s = t.insert(key);
      t.a[s] = -1;
      t.b[s] = 0;
      t.lastUse[s] = now;
      this.setInsert(s, i, false, now);
    }
    return refs[i];
  }
}

export function createLblcrModule(opts: LocalityOptions = {}): SchedulerModule {
  return { name: "lblcr", create: (svc) => new LblcrScheduler(svc, opts) };
}

export const lblcrScheduler: SchedulerModule = createLblcrModule();
