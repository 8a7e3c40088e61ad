/**
 * IPVS rate estimation, after net/netfilter/ipvs/ip_vs_est.c.
 *
 * Every 2 seconds each stats object (each service, each dest, and the total) turns the growth of
 * its counters into a rate and folds it into an exponentially weighted moving average:
 *
 *     avg += (rate - avg) / 4          (W = 2^-2, i.e. about the last 8 seconds)
 *
 * in fixed point, exactly as the kernel does: connections and packets are scaled by 2^10 and bytes
 * by 2^5, the per-2-second difference being turned into a per-second scaled rate by a shift of 9
 * (= 2^10 / 2) or 4 (= 2^5 / 2); the update is an arithmetic shift right by 2 of the signed
 * difference. Reading rounds back: (cps + 0x1FF) >> 10 and (bps + 0xF) >> 5.
 *
 * The kernel's timer runs every 2 s and assumes the interval; here `tick(nowMs)` is driven by a
 * timer in lvsd (or a fake clock in tests) and runs one estimation step per 2-second period,
 * keeping the period's phase so that a caller ticking at any finer granularity gets exactly one
 * step per 2 s. On time (within EST_SLACK_MS) the arithmetic is the kernel's, bit for bit; a late
 * step (a stalled timer) scales its rate by 2000 / elapsed so rates are not inflated.
 *
 * Counters are plain JS numbers (exact to 2^53), so the "shifts" are written as multiplications
 * and floored divisions: `>>` would truncate to 32 bits.
 *
 * Objects are tracked in a WeakMap: a new service or dest starts with last = 0 (its counters
 * start at 0 when created, as the kernel's estimator does), and a deleted one is forgotten. `-Z`
 * zeroes the estimate with the counters (ip_vs_zero_estimator); a counter found lower than its
 * last value (zeroed without telling us) restarts its estimate the same way.
 */

import { type Dest, destChanged, type Service } from "../tables/model.js";
import type { ServiceTable } from "../tables/services.js";

/** Rates as ipvsadm --rate prints them: per second, rounded as the kernel reads them. */
export interface Rates {
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

/** The counters an estimate is computed from (Service and Dest have them). */
export interface Counters {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

/** Estimator state for one stats object (struct ip_vs_estimator). */
export class EstState {
  lastConns = 0;
  lastInPkts = 0;
  lastOutPkts = 0;
  lastInBytes = 0;
  lastOutBytes = 0;
  /** Scaled averages: cps/pps by 2^10, bps by 2^5. */
  cps = 0;
  inpps = 0;
  outpps = 0;
  inbps = 0;
  outbps = 0;

  /** ip_vs_zero_estimator(): restart from the current counters with zero rates. */
  reset(c: Counters): void {
    this.lastConns = c.conns;
    this.lastInPkts = c.inPkts;
    this.lastOutPkts = c.outPkts;
    this.lastInBytes = c.inBytes;
    this.lastOutBytes = c.outBytes;
    this.cps = this.inpps = this.outpps = this.inbps = this.outbps = 0;
  }

  /** ip_vs_read_estimator(). */
  read(): Rates {
    return {
      cps: Math.floor((this.cps + 0x1ff) / 1024),
      inpps: Math.floor((this.inpps + 0x1ff) / 1024),
      outpps: Math.floor((this.outpps + 0x1ff) / 1024),
      inbps: Math.floor((this.inbps + 0xf) / 32),
      outbps: Math.floor((this.outbps + 0xf) / 32),
    };
  }
}

/** The EWMA step: avg += (rate - avg) >> 2, with >> on a signed 64-bit value (floor). */
export function ewma(avg: number, rate: number): number {
  return avg + Math.floor((rate - avg) / 4);
}

export const EST_INTERVAL_MS = 2000;
/** Timers fire a little early or late; within this much of 2 s a step counts as on time. */
export const EST_SLACK_MS = 100;

const ZERO_RATES: Readonly<Rates> = { cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 };

/** Something that can answer `--rate` for a service or dest. */
export interface RateSource {
  rates(obj: Service | Dest): Rates;
  /** -Z: restart an object's estimate with its (zeroed) counters. */
  zero?(obj: Service | Dest): void;
}

export class RateEstimator implements RateSource {
  private readonly states = new WeakMap<object, EstState>();
  private readonly totalState = new EstState();
  /** Cumulative counters of all traffic seen (the kernel's tot_stats), grown by per-object deltas. */
  readonly total: Counters = { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
  private lastRunMs: number | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly table: ServiceTable) {}

  /**
   * Run an estimation step if 2 s passed since the last one (the first call only sets the time
   * origin). Returns whether a step ran.
   */
  tick(nowMs: number): boolean {
    if (this.lastRunMs === undefined) {
      this.lastRunMs = nowMs;
      return false;
    }
    const elapsed = nowMs - this.lastRunMs;
    if (elapsed < EST_INTERVAL_MS - EST_SLACK_MS) return false;
    if (elapsed > EST_INTERVAL_MS + EST_SLACK_MS) {
      // Late (a stalled timer): estimate over the real interval and restart the phase here.
      this.lastRunMs = nowMs;
      this.estimate(elapsed);
    } else {
      // On time within the slack: the kernel's exact arithmetic, keeping a 2 s phase so a
      // coarse caller (lvsd ticks every 200 ms) averages exactly one step per 2 s.
      this.lastRunMs += EST_INTERVAL_MS;
      this.estimate(EST_INTERVAL_MS);
    }
    return true;
  }

  /** One estimation step over every service, dest and the total (estimation_timer()). */
  estimate(elapsedMs = EST_INTERVAL_MS): void {
    const scale = EST_INTERVAL_MS / elapsedMs;
    for (const s of this.table.list()) {
      this.step(s, scale, true);
      for (const d of s.dests) {
        this.step(d, scale, false);
        const r = this.rates(d);
        d.rateBps = r.inbps + r.outbps; // for the lt/wlt schedulers
        destChanged(d); // re-rank it in lt/wlt's index
      }
    }
    // The total's counters grew by this step's service-level deltas; its last values are the
    // totals of the previous step.
    this.update(this.totalState, this.total, scale);
  }

  private step(obj: Service | Dest, scale: number, countTotal: boolean): void {
    let st = this.states.get(obj);
    if (!st) {
      st = new EstState();
      this.states.set(obj, st);
    }
    if (
      obj.conns < st.lastConns ||
      obj.inPkts < st.lastInPkts ||
      obj.outPkts < st.lastOutPkts ||
      obj.inBytes < st.lastInBytes ||
      obj.outBytes < st.lastOutBytes
    ) {
      // Zeroed behind our back (-Z without zero()): restart as ip_vs_zero_stats does.
      st.reset({ conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });
    }
    if (countTotal) {
      this.total.conns += obj.conns - st.lastConns;
      this.total.inPkts += obj.inPkts - st.lastInPkts;
      this.total.outPkts += obj.outPkts - st.lastOutPkts;
      this.total.inBytes += obj.inBytes - st.lastInBytes;
      this.total.outBytes += obj.outBytes - st.lastOutBytes;
    }
    this.update(st, obj, scale);
  }

  private update(st: EstState, c: Counters, scale: number): void {
    // scaled by 2^10, but divided by 2 seconds: << 9
    st.cps = ewma(st.cps, Math.floor((c.conns - st.lastConns) * 512 * scale));
    st.inpps = ewma(st.inpps, Math.floor((c.inPkts - st.lastInPkts) * 512 * scale));
    st.outpps = ewma(st.outpps, Math.floor((c.outPkts - st.lastOutPkts) * 512 * scale));
    // scaled by 2^5, but divided by 2 seconds: << 4
    st.inbps = ewma(st.inbps, Math.floor((c.inBytes - st.lastInBytes) * 16 * scale));
    st.outbps = ewma(st.outbps, Math.floor((c.outBytes - st.lastOutBytes) * 16 * scale));
    st.lastConns = c.conns;
    st.lastInPkts = c.inPkts;
    st.lastOutPkts = c.outPkts;
    st.lastInBytes = c.inBytes;
    st.lastOutBytes = c.outBytes;
  }

  rates(obj: Service | Dest): Rates {
    return this.states.get(obj)?.read() ?? { ...ZERO_RATES };
  }

  /** Rates of all traffic (the kernel's tot_stats estimate, /proc/net/ip_vs_stats). */
  totalRates(): Rates {
    return this.totalState.read();
  }

  zero(obj: Service | Dest): void {
    const st = this.states.get(obj);
    if (st) st.reset(obj);
  }

  /** Start a 2-second timer (unref'd, so it never keeps lvsd alive on its own). */
  start(now: () => number = () => performance.now()): void {
    if (this.timer) return;
    this.tick(now());
    this.timer = setInterval(() => this.tick(now()), EST_INTERVAL_MS);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
