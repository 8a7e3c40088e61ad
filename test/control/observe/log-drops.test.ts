/**
 * The drop-burst limiter (src/control/observe/log.ts DropBurstWatch) with a fake clock: a warn
 * event lists the reasons that grew by more than the threshold during an interval, at most one
 * event per interval, and the counters are only read.
 */

import { beforeEach, describe, expect, it } from "vitest";
import {
  DROP_BURST_INTERVAL_MS,
  DROP_BURST_THRESHOLD,
  DropBurstWatch,
  type EventLog,
  type LogFields,
} from "../../../src/control/observe/log.js";
import { DROP_COUNT, DROP_NAMES, Drop } from "../../../src/datapath/drops.js";

interface Logged {
  level: string;
  fields: LogFields;
  msg: string;
}

function recorder(): { log: EventLog; got: Logged[] } {
  const got: Logged[] = [];
  const at =
    (level: string) =>
    (fields: LogFields, msg: string): void => {
      got.push({ level, fields, msg });
    };
  return { log: { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") }, got };
}

describe("DropBurstWatch", () => {
  let t: number;
  let drops: Float64Array;
  let rec: ReturnType<typeof recorder>;
  let watch: DropBurstWatch;
  const NO_SERVICE = DROP_NAMES[Drop.NO_SERVICE]!;
  const NEIGH_MISS = DROP_NAMES[Drop.NEIGH_MISS]!;
  const TABLE_FULL = DROP_NAMES[Drop.TABLE_FULL]!;

  beforeEach(() => {
    t = 1000;
    drops = new Float64Array(DROP_COUNT);
    drops[Drop.NO_SERVICE] = 5000; // counted before the watch started: not a burst
    rec = recorder();
    watch = new DropBurstWatch(DROP_NAMES, drops, rec.log, { now: () => t });
  });

  it("defaults: 5 s, more than 100 drops of one reason", () => {
    expect(DROP_BURST_INTERVAL_MS).toBe(5000);
    expect(DROP_BURST_THRESHOLD).toBe(100);
    expect(watch.intervalMs).toBe(5000);
    expect(watch.threshold).toBe(100);
  });

  it("says nothing at or below the threshold", () => {
    t += 5000;
    expect(watch.check()).toBeUndefined();
    drops[Drop.NO_SERVICE]! += 100; // exactly the threshold: not more than it
    drops[Drop.NEIGH_MISS]! += 3;
    t += 5000;
    expect(watch.check()).toBeUndefined();
    expect(rec.got).toEqual([]);
  });

  it("one warn event lists every reason above the threshold, largest first, with the interval", () => {
    t += 5000;
    drops[Drop.NO_SERVICE]! += 101;
    drops[Drop.TABLE_FULL]! += 2500;
    drops[Drop.NEIGH_MISS]! += 50; // below: not listed
    const b = watch.check();
    expect(b).toEqual({ drops: { [TABLE_FULL]: 2500, [NO_SERVICE]: 101 }, total: 2601, intervalMs: 5000 });
    expect(rec.got).toHaveLength(1);
    const e = rec.got[0]!;
    expect(e.level).toBe("warn");
    expect(e.fields).toEqual({
      event: "drops.burst",
      drops: { [TABLE_FULL]: 2500, [NO_SERVICE]: 101 },
      total: 2601,
      intervalMs: 5000,
      threshold: 100,
    });
    expect(Object.keys(e.fields["drops"] as object)).toEqual([TABLE_FULL, NO_SERVICE]);
    expect(e.msg).toBe(`drops: 2500 ${TABLE_FULL}, 101 ${NO_SERVICE} in the last 5.0 s (lvsadm --drops)`);
  });

  it("at most one event per interval: calls within the interval neither compare nor log", () => {
    t += 5000;
    drops[Drop.NO_SERVICE]! += 1000;
    expect(watch.check()).toBeDefined();
    // the flood goes on; the timer (or anyone) calls again and again within the interval
    for (let i = 1; i <= 49; i++) {
      t += 100;
      drops[Drop.NO_SERVICE]! += 1000;
      expect(watch.check()).toBeUndefined();
    }
    expect(rec.got).toHaveLength(1);
    // one interval after the last comparison: one event with everything since then
    t += 100;
    drops[Drop.NO_SERVICE]! += 1000;
    expect(watch.check()).toEqual({ drops: { [NO_SERVICE]: 50_000 }, total: 50_000, intervalMs: 5000 });
    expect(rec.got).toHaveLength(2);
  });

  it("each burst is reported once: the next interval compares with the last snapshot", () => {
    t += 5000;
    drops[Drop.NEIGH_MISS]! += 500;
    watch.check();
    t += 5000;
    expect(watch.check()).toBeUndefined(); // no new drops
    t += 5000;
    drops[Drop.NEIGH_MISS]! += 200;
    expect(watch.check()?.drops).toEqual({ [NEIGH_MISS]: 200 });
    expect(rec.got.map((e) => e.fields["total"])).toEqual([500, 200]);
  });

  it("reports the real length of a late interval (a blocked event loop)", () => {
    t += 12_345;
    drops[Drop.NO_SERVICE]! += 300;
    expect(watch.check()?.intervalMs).toBe(12_345);
    expect(rec.got[0]!.msg).toContain("in the last 12.3 s");
  });

  it("a counter that went down (zeroed) counts from zero; the counters are never written", () => {
    t += 5000;
    drops[Drop.NO_SERVICE] = 150;
    const copy = Float64Array.from(drops);
    expect(watch.check()?.drops).toEqual({ [NO_SERVICE]: 150 });
    expect(drops).toEqual(copy);
  });

  it("takes its interval and threshold from the options", () => {
    const w = new DropBurstWatch(DROP_NAMES, drops, rec.log, {
      now: () => t,
      intervalMs: 1000,
      threshold: 9,
    });
    t += 999;
    drops[Drop.NEIGH_MISS]! += 10;
    expect(w.check()).toBeUndefined();
    t += 1;
    expect(w.check()).toEqual({ drops: { [NEIGH_MISS]: 10 }, total: 10, intervalMs: 1000 });
  });
});
