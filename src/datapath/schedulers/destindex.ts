/**
 * DestIndex — O(log n) selection for the "least/most of something" schedulers (lc, wlc, sed, nq,
 * fo, ovf, lt, wlt, wrt) and the weighted draw of twos, giving exactly the kernel's linear
 * choice (the `pickLinear` of each scheduler file, kept as the reference and for small lists).
 *
 * Every one of those linear walks picks, among the dests that pass an eligibility test, the one
 * with the least key num/den (den > 0), compared without division as `num_b * den_a < num_a *
 * den_b`, the earliest in list order on ties. (The walks that seed with the first usable dest and
 * then only skip overloaded dests — wlc, sed — cannot pick a weight-0 dest, since
 * `loh * 0 > doh * w` is false for non-negative counters: eligibility is `usable` for all.)
 * Keys per scheduler:
 *   lc  overhead / 1            wlc overhead / weight         sed (active + 1) / weight
 *   nq  0 / 1 when active == 0 (all idle dests tie: the first wins), else (active + 1) / weight
 *   fo  -weight / 1             ovf -weight / 1, eligible only when active <= weight
 *   lt  rateBps / 1             wlt rateBps / weight          wrt respTimeUs / weight
 * with overhead = active * 256 + inactive. Cross-multiplied products stay below 2^53 (overhead
 * < 2^33, weight < 2^16), so the comparisons are exact as the kernel's 64-bit ones.
 *
 * The structure is a tournament (segment) tree over list positions: leaf i holds i when dest i
 * is eligible, else -1; an inner node holds the better of its children's winners, the left
 * (earlier) one on ties. Since the key order is a total preorder, the root is the first least
 * dest — the linear walk's answer — and `best()` is one array read. When a dest's counters,
 * weight or flags change, `destChanged` recomputes its leaf and replays the matches up to the
 * root, stopping as soon as a node's winner is unchanged and is not that dest: O(log n), no
 * allocation. For twos the same tree holds sums of usable weights instead, and `findWeighted`
 * descends to the first dest whose running weight sum reaches r — the dest the kernel's walk
 * stops at.
 *
 * Dests point to the index through `Dest.watch` (and their position in `Dest.schedData`); the
 * conntrack table and the estimator call `destChanged(d)` (src/tables/model.ts) after changing a
 * dest's counters, flags or rate. List changes (add, delete, weight edits) come through the
 * scheduler's `onDestsChanged`, which rebuilds in O(n) on the control plane. Below `minDests`
 * dests the index stays off (no watch pointers, no updates) and the schedulers walk the list.
 */

import type { Dest, DestWatch } from "../../tables/model.js";
import * as common from "./common.js";

const { connOverhead, usable } = common;

/** Which key the index keeps (module-local numbers, not exported cells: see common.ts). */
export const IndexKind = {
  LC: 0,
  WLC: 1,
  SED: 2,
  NQ: 3,
  FO: 4,
  OVF: 5,
  LT: 6,
  WLT: 7,
  WRT: 8,
  /** Sum of usable weights (twos). */
  TWOS: 9,
} as const;
export type IndexKind = (typeof IndexKind)[keyof typeof IndexKind];

const K_LC = 0;
const K_WLC = 1;
const K_SED = 2;
const K_NQ = 3;
const K_FO = 4;
const K_OVF = 5;
const K_LT = 6;
const K_WLT = 7;
const K_WRT = 8;
const K_TWOS = 9;

/**
 * Dest count from which the schedulers use the index (bench/schedulers.bench.ts: below it the
 * linear walk plus no per-change upkeep is as fast or faster).
 */
export const DEFAULT_INDEX_MIN_DESTS = 32;

const EMPTY: Dest[] = [];

export class DestIndex implements DestWatch {
  readonly kind: number;
  readonly minDests: number;
  /** True when the tree is built and kept up to date. */
  active = false;
  /** The service's dest list (same array object), and its length when last rebuilt. */
  list: readonly Dest[] = EMPTY;
  n = 0;
  /** Leaves start here (a power of two >= n). */
  private size = 1;
  /** Winner position per node (1-based heap layout), -1 = none. */
  private win = new Int32Array(2);
  /** Sums of usable weights per node (twos). */
  private sum = new Float64Array(2);
  /** Key numerator / denominator per list position. */
  private num = new Float64Array(1);
  private den = new Float64Array(1);

  constructor(kind: IndexKind, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.kind = kind;
    this.minDests = minDests;
  }

  /** Rebuild for `dests` (control plane; may allocate). */
  rebuild(dests: readonly Dest[]): void {
    const old = this.list;
    for (let i = 0; i < old.length; i++) {
      const d = old[i]!;
      if (d.watch === this) d.watch = null;
    }
    const n = dests.length;
    this.list = dests;
    this.n = n;
    if (n < this.minDests) {
      this.active = false;
      return;
    }
    let size = 1;
    while (size < n) size <<= 1;
    this.size = size;
    if (this.kind === K_TWOS) {
      if (this.sum.length !== 2 * size) this.sum = new Float64Array(2 * size);
    } else if (this.win.length !== 2 * size) this.win = new Int32Array(2 * size);
    if (this.num.length < n) {
      this.num = new Float64Array(size);
      this.den = new Float64Array(size);
    }
    for (let i = 0; i < n; i++) {
      const d = dests[i]!;
      d.watch = this;
      d.schedData = i;
      this.setLeaf(i, d);
    }
    if (this.kind === K_TWOS) {
      const sum = this.sum;
      sum.fill(0, size + n);
      for (let k = size - 1; k >= 1; k--) sum[k] = sum[2 * k]! + sum[2 * k + 1]!;
    } else {
      const win = this.win;
      win.fill(-1, size + n);
      for (let k = size - 1; k >= 1; k--) win[k] = this.match(win[2 * k]!, win[2 * k + 1]!);
    }
    this.active = true;
  }

  /** True when the tree describes `dests` (a list changed without onDestsChanged is walked). */
  current(dests: readonly Dest[]): boolean {
    return this.active && this.list === dests && this.n === dests.length;
  }

  /** Position of the first least dest, -1 when none is eligible. */
  best(): number {
    return this.win[1]!;
  }

  /** twos: sum of the usable weights. */
  total(): number {
    return this.sum[1]!;
  }

  /**
   * twos: position of the first dest at which the running sum of usable weights reaches r
   * (0 <= r <= total(), total() > 0) — where the kernel's walk, subtracting weights, first has
   * r <= 0. r = 0 stops at the first usable dest, so the target is at least 1.
   */
  findWeighted(r: number): number {
    const sum = this.sum;
    const size = this.size;
    let t = r < 1 ? 1 : r;
    let k = 1;
    while (k < size) {
      const l = 2 * k;
      const s = sum[l]!;
      if (s >= t) k = l;
      else {
        t -= s;
        k = l + 1;
      }
    }
    return k - size;
  }

  /** A dest's counters, flags, weight or rate changed (DestWatch; data path, no allocation). */
  destChanged(d: Dest): void {
    const p = d.schedData;
    if (!this.active || p >= this.n || p < 0 || this.list[p] !== d) return;
    let k = (this.size + p) >> 1;
    if (this.kind === K_TWOS) {
      // Only weight and flags matter here: a counter change usually leaves the sum as it is.
      const sum = this.sum;
      const leaf = this.size + p;
      const was = sum[leaf]!;
      this.setLeaf(p, d);
      if (sum[leaf] === was) return;
      while (k >= 1) {
        sum[k] = sum[2 * k]! + sum[2 * k + 1]!;
        k >>= 1;
      }
      return;
    }
    this.setLeaf(p, d);
    const win = this.win;
    while (k >= 1) {
      const w = this.match(win[2 * k]!, win[2 * k + 1]!);
      const was = win[k]!;
      win[k] = w;
      // Same winner, and not the changed dest: its key and everything above are unchanged.
      if (w === was && w !== p) return;
      k >>= 1;
    }
  }

  /** Leaf for position i: key and eligibility (or usable weight, for twos). */
  private setLeaf(i: number, d: Dest): void {
    const leaf = this.size + i;
    const kind = this.kind;
    if (kind === K_TWOS) {
      this.sum[leaf] = usable(d) ? d.weight : 0;
      return;
    }
    let ok = usable(d);
    let num = 0;
    let den = 1;
    switch (kind) {
      case K_LC:
        num = connOverhead(d);
        break;
      case K_WLC:
        num = connOverhead(d);
        den = d.weight;
        break;
      case K_SED:
        num = d.activeConns + 1;
        den = d.weight;
        break;
      case K_NQ:
        if (d.activeConns !== 0) {
          num = d.activeConns + 1;
          den = d.weight;
        }
        break;
      case K_FO:
        num = -d.weight;
        break;
      case K_OVF:
        num = -d.weight;
        if (d.activeConns > d.weight) ok = false;
        break;
      case K_LT:
        num = d.rateBps;
        break;
      case K_WLT:
        num = d.rateBps;
        den = d.weight;
        break;
      case K_WRT:
        num = d.respTimeUs;
        den = d.weight;
        break;
    }
    this.num[i] = num;
    this.den[i] = den;
    this.win[leaf] = ok ? i : -1;
  }

  /** The better of two positions, a < b in list order: b only when strictly less. */
  private match(a: number, b: number): number {
    if (b < 0) return a;
    if (a < 0) return b;
    const num = this.num;
    const den = this.den;
    return num[b]! * den[a]! < num[a]! * den[b]! ? b : a;
  }
}
