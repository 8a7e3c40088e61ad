/**
 * The rate estimator against hand-computed values of ip_vs_est.c's fixed-point EWMA.
 *
 * Per 2-second step: scaled rate = delta << 9 (conns, packets; 2^10 scale / 2 s) or delta << 4
 * (bytes; 2^5 / 2 s); avg += (rate - avg) >> 2; read = (avg + 0x1FF) >> 10 or (avg + 0xF) >> 5.
 */

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ewma, RateEstimator } from "../../src/control/estimator.js";
import { IPPROTO_TCP } from "../../src/lib/proto.js";
import { FwdMethod, type Service } from "../../src/tables/model.js";
import { ServiceTable } from "../../src/tables/services.js";
import { ip, resolveScheduler } from "./fake.js";

const KEY = { proto: IPPROTO_TCP, addr: ip("10.0.0.1"), port: 80 };
const KEY2 = { proto: IPPROTO_TCP, addr: ip("10.0.0.2"), port: 80 };
const SVC_OPTS = { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff };

function add(
  c: Service | { conns: number; inPkts: number; outPkts: number; inBytes: number; outBytes: number },
  n: {
    conns: number;
    inPkts: number;
    outPkts: number;
    inBytes: number;
    outBytes: number;
  },
): void {
  c.conns += n.conns;
  c.inPkts += n.inPkts;
  c.outPkts += n.outPkts;
  c.inBytes += n.inBytes;
  c.outBytes += n.outBytes;
}

/** 50 conn/s, 500 in-pkt/s, 400 out-pkt/s, 500 kB/s in, 1 MB/s out over 2 s. */
const STEP = { conns: 100, inPkts: 1000, outPkts: 800, inBytes: 1_000_000, outBytes: 2_000_000 };

describe("RateEstimator", () => {
  let table: ServiceTable;
  let est: RateEstimator;
  let svc: Service;

  beforeEach(() => {
    table = new ServiceTable(resolveScheduler);
    svc = table.addService(KEY, SVC_OPTS);
    est = new RateEstimator(table);
  });

  it("starts at zero; the first tick only sets the time origin", () => {
    expect(est.tick(0)).toBe(false);
    expect(est.rates(svc)).toEqual({ cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
  });

  it("follows the kernel's EWMA step by step", () => {
    est.tick(0);
    add(svc, STEP);
    expect(est.tick(2000)).toBe(true);
    // cps: 100<<9 = 51200; avg = 0 + 51200>>2 = 12800; read (12800+511)>>10 = 12
    // inpps: 1000<<9 = 512000 -> 128000 -> 125; outpps: 409600 -> 102400 -> 100
    // inbps: 1e6<<4 = 16e6 -> 4e6 -> (4e6+15)>>5 = 125000; outbps: 32e6 -> 8e6 -> 250000
    expect(est.rates(svc)).toEqual({ cps: 12, inpps: 125, outpps: 100, inbps: 125000, outbps: 250000 });

    add(svc, STEP);
    est.tick(4000);
    // cps: 12800 + (51200-12800)>>2 = 22400 -> (22400+511)>>10 = 22
    // inpps: 128000 + 96000 = 224000 -> 219; outpps: 102400 + 76800 = 179200 -> 175
    // inbps: 4e6 + 3e6 = 7e6 -> 218750; outbps: 8e6 + 6e6 = 14e6 -> 437500
    expect(est.rates(svc)).toEqual({ cps: 22, inpps: 219, outpps: 175, inbps: 218750, outbps: 437500 });

    est.tick(6000); // no traffic
    // cps: 22400 + (0-22400)>>2 = 16800 -> 16; inpps: 224000 - 56000 = 168000 -> 164
    // inbps: 7e6 - 1.75e6 = 5.25e6 -> 164062; outbps: 14e6 - 3.5e6 = 10.5e6 -> 328125
    expect(est.rates(svc)).toEqual({ cps: 16, inpps: 164, outpps: 131, inbps: 164062, outbps: 328125 });
  });

  it("converges on the true rate under steady traffic", () => {
    // the gap shrinks by 3/4 a step: bytes (16e6 scaled) need ~53 steps to get within the >> 2 floor
    est.tick(0);
    for (let i = 1; i <= 80; i++) {
      add(svc, STEP);
      est.tick(i * 2000);
    }
    expect(est.rates(svc)).toEqual({ cps: 50, inpps: 500, outpps: 400, inbps: 500000, outbps: 1000000 });
  });

  it("does nothing before 2 s, and treats a timer within 100 ms of 2 s as on time", () => {
    est.tick(0);
    add(svc, STEP);
    expect(est.tick(1000)).toBe(false);
    expect(est.tick(1899)).toBe(false);
    expect(est.tick(1950)).toBe(true);
    expect(est.rates(svc).cps).toBe(12);
  });

  it("keeps a 2 s phase when ticked finely (lvsd ticks every 200 ms)", () => {
    let steps = 0;
    for (let t = 0; t <= 60_000; t += 200) if (est.tick(t)) steps++;
    expect(steps).toBe(30);
  });

  it("stays accurate when the caller's timer drifts (ticks every 1950 ms at 1000 conn/s)", () => {
    // Phase-locked steps: a tick that falls short of the phase waits, and the next step is late
    // and scaled by 2000/elapsed, so no step counts 1.95 s as 2 s.
    for (let t = 0; t <= 120_000; t += 1950) {
      svc.conns += 1950;
      est.tick(t);
    }
    const cps = est.rates(svc).cps;
    expect(cps).toBeGreaterThanOrEqual(980);
    expect(cps).toBeLessThanOrEqual(1020);
  });

  it("scales a late step by 2000/elapsed so a stalled timer does not inflate rates", () => {
    est.tick(0);
    add(svc, { conns: 200, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });
    est.tick(4000); // 200 conns over 4 s is 50/s: rate = 200*512*0.5 = 51200, as an on-time step of 100
    expect(est.rates(svc).cps).toBe(12);
  });

  it("rounds the EWMA step toward minus infinity, like >> on a signed value", () => {
    // (10581 - 12800) / 4 = -554.75: >> gives -555 (truncation would give -554)
    expect(ewma(12800, 10581)).toBe(12245);
    expect(ewma(0, 3)).toBe(0); // below 4 the average no longer moves up
    expect(ewma(3, 0)).toBe(2); // but moves down: floor(-3/4) = -1
  });

  it("estimates dests, sets their rateBps, and a total over all services", () => {
    const d = table.addDest(KEY, {
      addr: ip("192.168.1.1"),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    const svc2 = table.addService(KEY2, SVC_OPTS);
    est.tick(0);
    add(svc, STEP);
    add(d, STEP);
    add(svc2, STEP);
    est.tick(2000);
    expect(est.rates(d)).toEqual({ cps: 12, inpps: 125, outpps: 100, inbps: 125000, outbps: 250000 });
    expect(d.rateBps).toBe(375000);
    // total deltas: 200 conns, 2000/1600 pkts, 2e6/4e6 bytes
    // cps 200<<9 = 102400 -> 25600 -> (25600+511)>>10 = 25; inpps 1024000 -> 256000 -> 250
    expect(est.totalRates()).toEqual({ cps: 25, inpps: 250, outpps: 200, inbps: 250000, outbps: 500000 });
    expect(est.total).toEqual({
      conns: 200,
      inPkts: 2000,
      outPkts: 1600,
      inBytes: 2_000_000,
      outBytes: 4_000_000,
    });
  });

  it("keeps the total's counters when a service is deleted", () => {
    est.tick(0);
    add(svc, STEP);
    est.tick(2000);
    table.deleteService(KEY);
    est.tick(4000);
    expect(est.total.conns).toBe(100);
    // total cps: 12800 then 12800 + (0-12800)>>2 = 9600 -> (9600+511)>>10 = 9
    expect(est.totalRates().cps).toBe(9);
  });

  it("zero() restarts an estimate from the zeroed counters (ip_vs_zero_estimator)", () => {
    est.tick(0);
    add(svc, STEP);
    est.tick(2000);
    table.zero(KEY);
    est.zero(svc);
    expect(est.rates(svc)).toEqual({ cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0 });
    add(svc, STEP);
    est.tick(4000);
    expect(est.rates(svc)).toEqual({ cps: 12, inpps: 125, outpps: 100, inbps: 125000, outbps: 250000 });
  });

  it("a counter found lower than before (zeroed behind its back) restarts the estimate too", () => {
    est.tick(0);
    add(svc, STEP);
    est.tick(2000);
    table.zero(KEY);
    add(svc, { conns: 10, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });
    est.tick(4000);
    // restarted: avg 0 + (10<<9)>>2 = 1280 -> (1280+511)>>10 = 1
    expect(est.rates(svc).cps).toBe(1);
  });

  it("a service added later starts from zero counters", () => {
    est.tick(0);
    est.tick(2000);
    const late = table.addService(KEY2, SVC_OPTS);
    add(late, STEP);
    est.tick(4000);
    expect(est.rates(late).cps).toBe(12);
  });

  describe("start()/stop() with a timer", () => {
    beforeEach(() => {
      vi.useFakeTimers();
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it("runs a step every 2 s until stopped", () => {
      let now = 0;
      est.start(() => now);
      add(svc, STEP);
      now = 2000;
      vi.advanceTimersByTime(2000);
      expect(est.rates(svc).cps).toBe(12);
      est.stop();
      add(svc, STEP);
      now = 4000;
      vi.advanceTimersByTime(2000);
      expect(est.rates(svc).cps).toBe(12);
    });
  });
});
