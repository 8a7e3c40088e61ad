/**
 * twos — Power of Two Choices, after net/netfilter/ipvs/ip_vs_twos.c (Mitzenmacher).
 *
 * total = sum of the weights of the dests that are not overloaded and have weight > 0 (none →
 * no dest). Draw r1 = rand % (total + 1) and r2 = rand % (total + 1), in that order. Walk those
 * dests in list order subtracting each weight from r1 and r2; the first dest where r1 <= 0 is
 * choice 1, the first where r2 <= 0 is choice 2. Keep choice 2 when its overhead/weight is lower:
 * weight2 * overhead1 > weight1 * overhead2 (overhead = activeconns * 256 + inactconns).
 *
 * Like the kernel, the draw is over [0, total] inclusive, so the first dest gets weight + 1 chances
 * out of total + 1 and the others weight. The random source is a seeded PRNG (the kernel uses
 * get_random_u32()), so sequences are reproducible; pass a seed with `createTwosModule`.
 */

import type { Dest, FlowInfo, Scheduler, SchedulerModule, Service } from "../../tables/model.js";
import * as common from "./common.js";
import { DEFAULT_INDEX_MIN_DESTS, DestIndex, IndexKind } from "./destindex.js";

// Module-local copies of the shared helpers: hot loops call them through constants, not
// imported bindings, which optimized code may reload and check on every use (see common.ts).
const { connOverhead, Prng32, serviceSeed, usable } = common;

/** A source of uniform uint32 values. */
export interface RandomSource {
  next(): number;
}

/**
 * The linear reference: the kernel's walk (two passes over the list). Draws r1 then r2 from
 * `rng`, as the indexed path does, so both consume the same random numbers.
 */
export function twosPickLinear(dests: readonly Dest[], rng: RandomSource): Dest | undefined {
  const n = dests.length;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const d = dests[i]!;
    if (usable(d)) total += d.weight;
  }
  if (total === 0) return undefined;
  total += 1;
  let r1 = rng.next() % total;
  let r2 = rng.next() % total;
  let c1: Dest | undefined;
  let c2: Dest | undefined;
  let w1 = 0;
  let w2 = 0;
  let oh1 = 0;
  let oh2 = 0;
  for (let i = 0; i < n; i++) {
    const d = dests[i]!;
    if (!usable(d)) continue;
    const w = d.weight;
    r1 -= w;
    r2 -= w;
    if (r1 <= 0 && c1 === undefined) {
      c1 = d;
      w1 = w;
      oh1 = connOverhead(d);
    }
    if (r2 <= 0 && c2 === undefined) {
      c2 = d;
      w2 = w;
      oh2 = connOverhead(d);
    }
    if (c1 !== undefined && c2 !== undefined) break;
  }
  if (c2 !== undefined && w2 * oh1 > w1 * oh2) return c2;
  return c1;
}

export class TwosScheduler implements Scheduler {
  private readonly rng: RandomSource;
  /** Sums of usable weights by list position: the two draws found in O(log n). */
  private readonly index: DestIndex;

  constructor(seedOrRng: number | RandomSource, svc?: Service, minDests = DEFAULT_INDEX_MIN_DESTS) {
    this.rng = typeof seedOrRng === "number" ? new Prng32(seedOrRng) : seedOrRng;
    this.index = new DestIndex(IndexKind.TWOS, minDests);
    if (svc) this.index.rebuild(svc.dests);
  }

  onDestsChanged(dests: readonly Dest[]): void {
    this.index.rebuild(dests);
  }

  select(svc: Service, _flow: FlowInfo): Dest | undefined {
    const dests = svc.dests;
    const ix = this.index;
    if (!ix.current(dests)) return twosPickLinear(dests, this.rng);
    let total = ix.total();
    if (total === 0) return undefined;
    total += 1;
    const r1 = this.rng.next() % total;
    const r2 = this.rng.next() % total;
    const c1 = dests[ix.findWeighted(r1)]!;
    const c2 = dests[ix.findWeighted(r2)]!;
    // Keep choice 2 when its overhead / weight is lower (the kernel's comparison).
    if (c2.weight * connOverhead(c1) > c1.weight * connOverhead(c2)) return c2;
    return c1;
  }
}

/**
 * A twos module with a fixed seed (reproducible runs) or a custom random source (tests);
 * by default each service gets its own deterministic seed.
 */
export function createTwosModule(opts: { seed?: number; rng?: () => RandomSource } = {}): SchedulerModule {
  return {
    name: "twos",
    create: (svc) =>
      new TwosScheduler(opts.rng?.() ?? opts.seed ?? serviceSeed(svc.proto, svc.addr, svc.port), svc),
  };
}

export const twosScheduler: SchedulerModule = createTwosModule();
