/**
 * Seeded randomness for the scheduler simulator: xoshiro128** (Blackman & Vigna) seeded through
 * splitmix32, plus the few distributions scenarios use. Everything is deterministic for a seed, so
 * a report can be reproduced exactly; separate streams (derived seeds) keep the workload identical
 * whatever a scheduler does with its own randomness.
 */

/** splitmix32 step: a well-mixed 32-bit value from a counter (used to seed and derive streams). */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** A seed for stream `stream` of a run seeded with `seed` (independent streams, same run seed). */
export function deriveSeed(seed: number, stream: number): number {
  return splitmix32((splitmix32(seed | 0) ^ Math.imul(stream + 1, 0x27d4eb2d)) | 0);
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    let x = seed | 0;
    this.s0 = splitmix32(x);
    x = (x + 0x9e3779b9) | 0;
    this.s1 = splitmix32(x);
    x = (x + 0x9e3779b9) | 0;
    this.s2 = splitmix32(x);
    x = (x + 0x9e3779b9) | 0;
    this.s3 = splitmix32(x);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** Uniform uint32. */
  u32(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n) for 1 <= n <= 2^32 (multiply-shift; bias below 2^-32 · n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** Standard normal deviate (Box–Muller, both uniforms drawn every call: a fixed draw count). */
  normal(): number {
    const u1 = 1 - this.float(); // (0, 1]
    const u2 = this.float();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Exponential with the given mean. */
  exp(mean: number): number {
    return -mean * Math.log(1 - this.float());
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A distribution of non-negative values (request cost in ms, or bytes). */
export type Dist =
  | { readonly kind: "const"; readonly value: number }
  | { readonly kind: "uniform"; readonly min: number; readonly max: number }
  | { readonly kind: "exp"; readonly mean: number }
  | { readonly kind: "lognormal"; readonly median: number; readonly sigma: number }
  | { readonly kind: "pareto"; readonly min: number; readonly alpha: number };

/** Draw one value from `d`. */
export function sample(d: Dist, rng: Rng): number {
  switch (d.kind) {
    case "const":
      return d.value;
    case "uniform":
      return d.min + (d.max - d.min) * rng.float();
    case "exp":
      return rng.exp(d.mean);
    case "lognormal":
      return d.median * Math.exp(d.sigma * rng.normal());
    case "pareto":
      return d.min / (1 - rng.float()) ** (1 / d.alpha);
    default: {
      const never: never = d;
      throw new Error(`unknown distribution ${JSON.stringify(never)}`);
    }
  }
}

/** The distribution's mean (Infinity for a Pareto with alpha <= 1). */
export function distMean(d: Dist): number {
  switch (d.kind) {
    case "const":
      return d.value;
    case "uniform":
      return (d.min + d.max) / 2;
    case "exp":
      return d.mean;
    case "lognormal":
      return d.median * Math.exp((d.sigma * d.sigma) / 2);
    case "pareto":
      return d.alpha > 1 ? (d.alpha * d.min) / (d.alpha - 1) : Number.POSITIVE_INFINITY;
    default: {
      const never: never = d;
      throw new Error(`unknown distribution ${JSON.stringify(never)}`);
    }
  }
}

/** Short human form, e.g. "exp(mean 20ms)". `unit` is appended to values. */
export function describeDist(d: Dist, unit = ""): string {
  switch (d.kind) {
    case "const":
      return `const ${d.value}${unit}`;
    case "uniform":
      return `uniform ${d.min}${unit}..${d.max}${unit}`;
    case "exp":
      return `exp(mean ${d.mean}${unit})`;
    case "lognormal":
      return `lognormal(median ${d.median}${unit}, sigma ${d.sigma})`;
    case "pareto":
      return `pareto(min ${d.min}${unit}, alpha ${d.alpha})`;
    default: {
      const never: never = d;
      throw new Error(`unknown distribution ${JSON.stringify(never)}`);
    }
  }
}
