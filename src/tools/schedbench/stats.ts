/** Summary statistics for the simulator's reports. */

/**
 * The p-th percentile (0 < p <= 100) of ascending `sorted` values by the nearest-rank method:
 * the smallest value such that at least p % of the values are <= it (so the p50 of 1..100 is 50
 * and its p99 is 99). NaN for no values.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (!(p > 0 && p <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${p}`);
  // A small epsilon keeps e.g. 0.99 * 100 = 98.99999999999999 from rounding the rank down.
  const rank = Math.ceil((p / 100) * n - 1e-9);
  return sorted[Math.min(n, Math.max(1, rank)) - 1]!;
}

export interface LatencySummary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** Summarize `values` (sorted in place). Null when there are none. */
export function summarize(values: Float64Array): LatencySummary | null {
  const n = values.length;
  if (n === 0) return null;
  values.sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  return {
    count: n,
    mean: sum / n,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    p999: percentile(values, 99.9),
    max: values[n - 1]!,
  };
}

/** max / mean of the values (1 = perfectly even); NaN for none or an all-zero list. */
export function maxOverMean(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (const x of xs) {
    sum += x;
    if (x > max) max = x;
  }
  const mean = sum / xs.length;
  return mean > 0 ? max / mean : Number.NaN;
}

/** Median of a list (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}
