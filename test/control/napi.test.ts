/**
 * The NAPI deferral governor of `--link xdp=...,busy-poll=USECS` (src/control/napi.ts), against a
 * directory laid out as /sys/class/net/IFNAME and counters the test moves: the deferral goes on
 * when the kernel drops frames at lvsd's RX ring or a round comes back full, stays on while
 * lvsd's polls keep bringing full budgets, comes off once they do not, and the values found at
 * start are put back.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  GOVERNOR_TICK_MS,
  HOLD_MS,
  NAPI_DEFER_HARD_IRQS,
  NapiDeferError,
  NapiGovernor,
} from "../../src/control/napi.js";

let sysfs: string;
const counters = { frames: 0, drops: 0, polls: 0, fullPolls: 0 };

function iface(name: string, defer = "0", gft = "0"): void {
  mkdirSync(join(sysfs, name));
  writeFileSync(join(sysfs, name, "napi_defer_hard_irqs"), `${defer}\n`);
  writeFileSync(join(sysfs, name, "gro_flush_timeout"), `${gft}\n`);
}
const read = (name: string, f: string): string => readFileSync(join(sysfs, name, f), "utf8").trim();

beforeEach(() => {
  sysfs = mkdtempSync(join(tmpdir(), "napi-"));
  Object.assign(counters, { frames: 0, drops: 0, polls: 0, fullPolls: 0 });
});
afterEach(() => rmSync(sysfs, { recursive: true, force: true }));

const link = (ifname: string, usecs = 1000) => ({ ifname, usecs, sample: () => ({ ...counters }) });

describe("NapiGovernor", () => {
  it("defers on kernel drops, holds while polls come back full, and restores the old values", () => {
    iface("x0", "0", "20000");
    const g = new NapiGovernor([link("x0", 750)], sysfs);
    const changes: boolean[] = [];
    g.onChange = (_, on) => changes.push(on);
    let t = 0;
    // light traffic, a few drops (below 1% of the frames): nothing changes
    Object.assign(counters, { frames: 100_000, drops: 50, polls: 1000, fullPolls: 0 });
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(false);
    expect(read("x0", "gro_flush_timeout")).toBe("20000");
    // a flood: 30% of the arrivals lost at the RX ring
    Object.assign(counters, { frames: 170_000, drops: 30_050 });
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(true);
    expect(read("x0", "napi_defer_hard_irqs")).toBe(String(NAPI_DEFER_HARD_IRQS));
    expect(read("x0", "gro_flush_timeout")).toBe("750000");
    // the flood goes on: nearly every poll brings a full budget, past the hold time too
    for (let k = 0; k < (2 * HOLD_MS) / GOVERNOR_TICK_MS; k++) {
      counters.polls += 500;
      counters.fullPolls += 480;
      g.tick((t += GOVERNOR_TICK_MS));
    }
    expect(g.deferred("x0")).toBe(true);
    // lvsd keeps up: most polls find little
    counters.polls += 500;
    counters.fullPolls += 10;
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(false);
    expect(read("x0", "napi_defer_hard_irqs")).toBe("0");
    expect(read("x0", "gro_flush_timeout")).toBe("20000");
    expect(changes).toEqual([true, false]);
    expect(g.enters).toBe(1);
  });

  it("keeps the deferral for the hold time even when calm at once", () => {
    iface("x0");
    const g = new NapiGovernor([link("x0")], sysfs);
    g.overloaded(0, 1000);
    expect(g.deferred("x0")).toBe(true);
    counters.polls += 100;
    g.tick(1000 + HOLD_MS - 1);
    expect(g.deferred("x0")).toBe(true);
    counters.polls += 100;
    g.tick(1000 + HOLD_MS);
    expect(g.deferred("x0")).toBe(false);
  });

  it("switches off when nothing arrives any more (no polls at all)", () => {
    iface("x0");
    const g = new NapiGovernor([link("x0")], sysfs);
    g.overloaded(0, 0);
    g.tick(HOLD_MS);
    expect(g.deferred("x0")).toBe(false);
    expect(read("x0", "gro_flush_timeout")).toBe("0");
  });

  it("switches on when the worker threads count a wake-up whose first round filled a batch", () => {
    iface("x0");
    let overloads = 0;
    const g = new NapiGovernor(
      [{ ifname: "x0", usecs: 500, sample: () => ({ ...counters, overloads }) }],
      sysfs,
    );
    let t = 0;
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(false);
    overloads = 1;
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(true);
    expect(read("x0", "gro_flush_timeout")).toBe("500000");
  });

  it("treats stale counters (starved worker threads) as overload: on, and not off while they stay stale", () => {
    iface("x0");
    let stale = false;
    const g = new NapiGovernor(
      [{ ifname: "x0", usecs: 1000, sample: () => ({ ...counters, stale }) }],
      sysfs,
    );
    let t = 0;
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(false);
    stale = true; // no drops seen: the threads that would count them do not run
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(true);
    // no polls counted, well past the hold time: "calm" would switch off, but the counters are stale
    for (let k = 0; k < (3 * HOLD_MS) / GOVERNOR_TICK_MS; k++) g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(true);
    stale = false; // published again, nothing arriving: off
    g.tick((t += GOVERNOR_TICK_MS));
    expect(g.deferred("x0")).toBe(false);
    expect(read("x0", "gro_flush_timeout")).toBe("0");
  });

  it("switches on at once when a round comes back full, and restore() undoes it", () => {
    iface("x0", "1", "5000");
    iface("x1", "0", "0");
    const g = new NapiGovernor([link("x0"), link("x1", 200)], sysfs);
    g.overloaded(1, 0);
    expect(g.deferred("x1")).toBe(true);
    expect(g.deferred("x0")).toBe(false);
    expect(read("x1", "gro_flush_timeout")).toBe("200000");
    g.overloaded(1, 10); // already on: no second write, no second count
    expect(g.enters).toBe(1);
    g.restore();
    expect(g.deferred("x1")).toBe(false);
    expect(read("x1", "napi_defer_hard_irqs")).toBe("0");
    expect(read("x1", "gro_flush_timeout")).toBe("0");
    expect(read("x0", "gro_flush_timeout")).toBe("5000");
    // lvsd is on its way out: a late tick or round changes nothing any more
    g.overloaded(0, 20);
    counters.drops += 10_000;
    counters.frames += 10_000;
    g.tick(GOVERNOR_TICK_MS);
    expect(read("x0", "gro_flush_timeout")).toBe("5000");
    expect(read("x1", "gro_flush_timeout")).toBe("0");
  });

  it("fails at start with a clear message when the interface has no such files", () => {
    expect(() => new NapiGovernor([link("nope0")], sysfs)).toThrow(NapiDeferError);
    expect(() => new NapiGovernor([link("nope0")], sysfs)).toThrow(
      /busy-poll: cannot read .*nope0\/napi_defer_hard_irqs \(ENOENT\).*Linux 5\.11/,
    );
  });
});
