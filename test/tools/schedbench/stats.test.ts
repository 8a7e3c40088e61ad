import { describe, expect, it } from "vitest";
import { maxOverMean, median, percentile, summarize } from "../../../src/tools/schedbench/stats.js";

describe("percentile (nearest rank)", () => {
  const oneTo100 = Float64Array.from({ length: 100 }, (_, i) => i + 1);

  it("gives the smallest value with at least p% at or below it", () => {
    expect(percentile(oneTo100, 50)).toBe(50);
    expect(percentile(oneTo100, 99)).toBe(99);
    expect(percentile(oneTo100, 100)).toBe(100);
    expect(percentile(oneTo100, 1)).toBe(1);
    expect(percentile(oneTo100, 0.5)).toBe(1);
    expect(percentile(oneTo100, 50.5)).toBe(51);
  });

  it("handles small and empty inputs", () => {
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([1, 2], 50)).toBe(1);
    expect(percentile([1, 2], 51)).toBe(2);
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 0)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });

  it("summarize sorts and reports p50/p90/p99/p99.9 of a known distribution", () => {
    // 1..1000 shuffled deterministically.
    const v = Float64Array.from({ length: 1000 }, (_, i) => ((i * 397) % 1000) + 1);
    const s = summarize(v)!;
    expect(s).toEqual({ count: 1000, mean: 500.5, p50: 500, p90: 900, p99: 990, p999: 999, max: 1000 });
    expect(summarize(new Float64Array(0))).toBeNull();
  });

  it("matches the quantiles of an exponential sample within sampling error", () => {
    // Inverse CDF at evenly spaced probabilities: p-quantile of exp(mean 1) is -ln(1 - p).
    const n = 100_000;
    const v = Float64Array.from({ length: n }, (_, i) => -Math.log(1 - (i + 0.5) / n));
    const s = summarize(v)!;
    expect(s.p50).toBeCloseTo(Math.LN2, 3);
    expect(s.p99).toBeCloseTo(-Math.log(0.01), 2);
  });
});

describe("maxOverMean and median", () => {
  it("is 1 for equal values and max/mean otherwise", () => {
    expect(maxOverMean([3, 3, 3])).toBe(1);
    expect(maxOverMean([1, 1, 2])).toBeCloseTo(1.5);
    expect(maxOverMean([])).toBeNaN();
    expect(maxOverMean([0, 0])).toBeNaN();
  });

  it("median of odd and even lists", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });
});
