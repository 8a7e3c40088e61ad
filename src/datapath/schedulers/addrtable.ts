/**
 * A fixed-capacity, open-addressed (linear probing) table keyed by an IPv4 address, with typed
 * array columns: the lblc/lblcr caches. Lookups, inserts and deletes allocate nothing, so they are
 * safe on the new-connection path; a Map<number, object> would allocate per entry and an LRU cache
 * per access.
 *
 * Capacity is a power of two at least twice the largest number of entries the owner allows, so
 * probe sequences stay short. Deletion uses backward shifting (no tombstones). `sweep` deletes many
 * entries in one pass over the slots, re-examining a slot after a deletion shifted another entry
 * into it; entries shifted across the scan start were already examined, so each live entry is
 * examined at least once.
 */

import { GOLDEN_RATIO_32 } from "./common.js";

// Module-local copies of imported constants: hot loops then read constants, not imported
// bindings (module cells, which optimized code may reload and check on every use; property
// reads on a module object under bundlers and vite-node).
const GOLDEN = GOLDEN_RATIO_32;

export class AddrTable {
  readonly capacity: number;
  private readonly bits: number;
  private readonly mask: number;
  /** 1 when the slot holds an entry. */
  readonly used: Uint8Array;
  readonly keys: Int32Array;
  /** Last use of the entry (ms, from the engine's clock). */
  readonly lastUse: Float64Array;
  /** Owner payload: lblc dest index, lblcr set head. */
  readonly a: Int32Array;
  /** Owner payload: lblcr set size. */
  readonly b: Int32Array;
  /** Owner payload: lblcr set last-modified time. */
  readonly t: Float64Array;
  count = 0;

  constructor(maxEntries: number) {
    let bits = 4;
    while (1 << bits < maxEntries * 2) bits++;
    this.bits = bits;
    this.capacity = 1 << bits;
    this.mask = this.capacity - 1;
    this.used = new Uint8Array(this.capacity);
    this.keys = new Int32Array(this.capacity);
    this.lastUse = new Float64Array(this.capacity);
    this.a = new Int32Array(this.capacity);
    this.b = new Int32Array(this.capacity);
    this.t = new Float64Array(this.capacity);
  }

  private home(key: number): number {
    return Math.imul(key, GOLDEN) >>> (32 - this.bits);
  }

  /** Slot holding `key`, or -1. */
  find(key: number): number {
    const k = key | 0;
    const mask = this.mask;
    let i = Math.imul(k, GOLDEN) >>> (32 - this.bits);
    while (this.used[i] !== 0) {
      if (this.keys[i] === k) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  /** Insert `key` (which must be absent; the table must not be full); returns its slot. */
  insert(key: number): number {
    const k = key | 0;
    const mask = this.mask;
    let i = this.home(k);
    while (this.used[i] !== 0) i = (i + 1) & mask;
    this.used[i] = 1;
    this.keys[i] = k;
    this.count++;
    return i;
  }

  private move(from: number, to: number): void {
    this.used[to] = 1;
    this.keys[to] = this.keys[from]!;
    this.lastUse[to] = this.lastUse[from]!;
    this.a[to] = this.a[from]!;
    this.b[to] = this.b[from]!;
    this.t[to] = this.t[from]!;
  }

  /** Delete the entry in `slot`, shifting later entries of its cluster back. */
  removeAt(slot: number): void {
    const mask = this.mask;
    let hole = slot;
    let j = slot;
    for (;;) {
      j = (j + 1) & mask;
      if (this.used[j] === 0) break;
      const h = this.home(this.keys[j]!);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const inRange = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (!inRange) {
        this.move(j, hole);
        hole = j;
      }
    }
    this.used[hole] = 0;
    this.count--;
  }

  /**
   * Delete the entries last used at or before `cutoff`, visiting slots from `start` and
   * stopping after `limit` deletions; `onDrop` (if any) sees each entry just before it goes.
   * Returns the slot where the scan stopped (the next rover).
   */
  sweep(start: number, limit: number, cutoff: number, onDrop: ((slot: number) => void) | null): number {
    const cap = this.capacity;
    const mask = this.mask;
    let deleted = 0;
    let i = start & mask;
    for (let n = 0; n < cap; ) {
      if (this.used[i] !== 0 && this.lastUse[i]! <= cutoff) {
        if (onDrop !== null) onDrop(i);
        this.removeAt(i);
        if (++deleted >= limit) return i;
        continue; // an entry may have shifted into slot i: look again
      }
      n++;
      i = (i + 1) & mask;
    }
    return i;
  }

  clear(): void {
    this.used.fill(0);
    this.count = 0;
  }
}
