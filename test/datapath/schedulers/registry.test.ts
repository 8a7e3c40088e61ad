import { describe, expect, it } from "vitest";
import {
  DEFAULT_SCHEDULER,
  getScheduler,
  parseSchedFlags,
  registerScheduler,
  SchedFlagError,
  SchedulerRegistryError,
  schedulerFlags,
  schedulerNames,
  unregisterScheduler,
} from "../../../src/datapath/schedulers/index.js";
import { WlcScheduler } from "../../../src/datapath/schedulers/wlc.js";
import type { SchedulerModule } from "../../../src/tables/model.js";
import { SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3 } from "../../../src/tables/model.js";

describe("scheduler registry", () => {
  it("has every built-in, kernel ones first", () => {
    expect(schedulerNames()).toEqual([
      "rr",
      "wrr",
      "lc",
      "wlc",
      "lblc",
      "lblcr",
      "dh",
      "sh",
      "sed",
      "nq",
      "fo",
      "ovf",
      "mh",
      "twos",
      "lt",
      "wlt",
      "wrt",
    ]);
    for (const n of schedulerNames()) expect(getScheduler(n)?.name).toBe(n);
    expect(getScheduler(DEFAULT_SCHEDULER)?.name).toBe("wlc");
    expect(getScheduler("nope")).toBeUndefined();
  });

  it("refuses empty and duplicate names with typed errors", () => {
    const dup: SchedulerModule = { name: "wlc", create: () => new WlcScheduler() };
    expect(() => registerScheduler(dup)).toThrow(SchedulerRegistryError);
    try {
      registerScheduler(dup);
    } catch (e) {
      expect((e as SchedulerRegistryError).code).toBe("EEXIST");
    }
    try {
      registerScheduler({ name: "", create: () => new WlcScheduler() });
      expect.unreachable();
    } catch (e) {
      expect((e as SchedulerRegistryError).code).toBe("EINVAL");
    }
    expect(getScheduler("wlc")).not.toBe(dup);
  });

  it("registers and unregisters a plug-in", () => {
    const mod: SchedulerModule = { name: "test-plugin", create: () => new WlcScheduler() };
    registerScheduler(mod);
    expect(getScheduler("test-plugin")).toBe(mod);
    expect(unregisterScheduler("test-plugin")).toBe(true);
    expect(getScheduler("test-plugin")).toBeUndefined();
  });

  it("lists scheduler-specific flags", () => {
    expect(schedulerFlags("sh")).toEqual(["sh-fallback", "sh-port"]);
    expect(schedulerFlags("mh")).toEqual(["mh-fallback", "mh-port"]);
    expect(schedulerFlags("rr")).toEqual([]);
    expect(schedulerFlags("nope")).toEqual([]);
  });
});

describe("parseSchedFlags (ipvsadm parse_sched_flags)", () => {
  it("maps names to SVC_F_SCHED bits", () => {
    expect(parseSchedFlags("sh", "sh-fallback,sh-port")).toBe(SVC_F_SCHED1 | SVC_F_SCHED2);
    expect(parseSchedFlags("sh", "sh-port")).toBe(SVC_F_SCHED2);
    expect(parseSchedFlags("mh", "mh-fallback")).toBe(SVC_F_SCHED1);
    expect(parseSchedFlags("mh", "mh-port,mh-fallback")).toBe(SVC_F_SCHED1 | SVC_F_SCHED2);
    expect(parseSchedFlags("rr", "flag-1,flag-3")).toBe(SVC_F_SCHED1 | SVC_F_SCHED3);
    expect(parseSchedFlags("sh", "flag-2")).toBe(SVC_F_SCHED2);
    expect(parseSchedFlags("sh", "sh-port,,sh-fallback,")).toBe(SVC_F_SCHED1 | SVC_F_SCHED2); // strtok skips empties
  });

  function err(sched: string, arg: string): SchedFlagError {
    try {
      parseSchedFlags(sched, arg);
    } catch (e) {
      expect(e).toBeInstanceOf(SchedFlagError);
      return e as SchedFlagError;
    }
    throw new Error("expected a SchedFlagError");
  }

  it("rejects a flag of another scheduler with ipvsadm's message", () => {
    const e = err("wlc", "sh-port");
    expect(e.code).toBe("SCHED_FLAG_INCOMPATIBLE");
    expect(e.message).toBe("incompatible scheduler flag `sh-port'");
    expect(err("sh", "mh-fallback").message).toBe("incompatible scheduler flag `mh-fallback'");
    expect(err("mh", "sh-fallback").message).toBe("incompatible scheduler flag `sh-fallback'");
    // No scheduler given: ipvsadm assumes wlc.
    expect(err("", "sh-fallback").code).toBe("SCHED_FLAG_INCOMPATIBLE");
  });

  it("rejects unknown flags with ipvsadm's message", () => {
    const e = err("sh", "sh-fallback,bogus");
    expect(e.code).toBe("SCHED_FLAG_INVALID");
    expect(e.flag).toBe("bogus");
    expect(e.message).toBe("invalid scheduler flag `bogus'");
    expect(err("sh", "__proto__").code).toBe("SCHED_FLAG_INVALID");
    expect(err("sh", "constructor").code).toBe("SCHED_FLAG_INVALID");
    expect(err("sh", "").message).toBe("invalid scheduler flag `'");
  });
});
