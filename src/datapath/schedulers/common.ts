/**
 * Small helpers shared by the schedulers. Everything here is allocation-free and safe on the
 * new-connection path. The dest tests are small monomorphic functions that V8 inlines into the
 * schedulers' loops, as fast as writing the test out (bench/schedulers.bench.ts), provided
 * nothing on the way is a module cell: the helpers read module-local constants, and the
 * schedulers call them through module-local copies (`const { usable } = common`). An imported
 * binding or an exported `const` is a module cell, which optimized code may reload and check on
 * every use: fo's loop ran twice as slow with the helpers reading exported constants, and lc's
 * 15-20% slower calling the imported helpers directly.
 */

import type { Dest } from "../../tables/model.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD } from "../../tables/model.js";

// Module-local, not exported (see above).
const AVAILABLE = DEST_F_AVAILABLE;
/** Flags that decide availability: AVAILABLE must be set and OVERLOAD clear. */
const FLAGS_MASK = DEST_F_AVAILABLE | DEST_F_OVERLOAD;

/**
 * Usable for a new connection: in its service, not overloaded, weight > 0 — the test every
 * kernel scheduler applies (dests in the kernel's list are always AVAILABLE; ours are too, but a
 * removed dest loses the flag, so checking it costs nothing and guards stale tables).
 */
export function usable(d: Dest): boolean {
  return (d.flags & FLAGS_MASK) === AVAILABLE && d.weight > 0;
}

/** Not overloaded and still in its service (weight not checked). */
export function notOverloaded(d: Dest): boolean {
  return (d.flags & FLAGS_MASK) === AVAILABLE;
}

/** ip_vs_dest_conn_overhead(): activeconns * 256 + inactconns. */
export function connOverhead(d: Dest): number {
  return d.activeConns * 256 + d.inactConns;
}

/** GOLDEN_RATIO_32 from include/linux/hash.h. */
export const GOLDEN_RATIO_32 = 0x61c88647;

/** The kernel's hash_32(val, bits): top `bits` bits of val * GOLDEN_RATIO_32 (mod 2^32). */
export function hash32(val: number, bits: number): number {
  return Math.imul(val, GOLDEN_RATIO_32) >>> (32 - bits);
}

/** Greatest common divisor of two non-negative integers (wrr's step, mh's weight turns). */
export function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/**
 * A small seeded 32-bit PRNG (mulberry32) for schedulers that draw random numbers (twos), so
 * tests are deterministic. Not cryptographic; the kernel uses get_random_u32().
 */
export class Prng32 {
  private state: number;
  constructor(seed: number) {
    this.state = seed | 0;
  }
  /** Next value, uniform in [0, 2^32). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
}

/** A default per-service seed: deterministic, different for different services. */
export function serviceSeed(proto: number, addr: number, port: number): number {
  return (Math.imul(addr ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(port + 1, 0x85ebca6b) ^ proto) | 0;
}
