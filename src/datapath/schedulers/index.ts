/**
 * The scheduler registry: built-in schedulers registered explicitly by name, as the kernel's
 * register_ip_vs_scheduler does (empty and duplicate names refused), plus ipvsadm's parsing of
 * `-b sched-flags` into SVC_F_* bits.
 */

import type { SchedulerModule } from "../../tables/model.js";
import { SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3 } from "../../tables/model.js";
import { dhScheduler } from "./dh.js";
import { foScheduler } from "./fo.js";
import { lblcScheduler } from "./lblc.js";
import { lblcrScheduler } from "./lblcr.js";
import { lcScheduler } from "./lc.js";
import { ltScheduler } from "./lt.js";
import { mhScheduler } from "./mh.js";
import { nqScheduler } from "./nq.js";
import { ovfScheduler } from "./ovf.js";
import { rrScheduler } from "./rr.js";
import { sedScheduler } from "./sed.js";
import { shScheduler } from "./sh.js";
import { twosScheduler } from "./twos.js";
import { wlcScheduler } from "./wlc.js";
import { wltScheduler } from "./wlt.js";
import { wrrScheduler } from "./wrr.js";
import { wrtScheduler } from "./wrt.js";

export type SchedulerErrorCode = "EINVAL" | "EEXIST" | "ENOENT";

/** Typed error for registry misuse; `code` is stable. */
export class SchedulerRegistryError extends Error {
  readonly code: SchedulerErrorCode;
  constructor(code: SchedulerErrorCode, message: string) {
    super(message);
    this.name = "SchedulerRegistryError";
    this.code = code;
  }
}

export type SchedFlagErrorCode = "SCHED_FLAG_INVALID" | "SCHED_FLAG_INCOMPATIBLE";

/** A `-b` flag ipvsadm would reject; `message` is ipvsadm's text. */
export class SchedFlagError extends Error {
  readonly code: SchedFlagErrorCode;
  readonly flag: string;
  constructor(code: SchedFlagErrorCode, flag: string) {
    super(
      code === "SCHED_FLAG_INVALID"
        ? `invalid scheduler flag \`${flag}'`
        : `incompatible scheduler flag \`${flag}'`,
    );
    this.name = "SchedFlagError";
    this.code = code;
    this.flag = flag;
  }
}

/** ipvsadm's default scheduler. */
export const DEFAULT_SCHEDULER = "wlc";

const registry = new Map<string, SchedulerModule>();

/** Register a scheduler module; refuses an empty or already registered name. */
export function registerScheduler(mod: SchedulerModule): void {
  if (typeof mod.name !== "string" || mod.name.length === 0) {
    throw new SchedulerRegistryError("EINVAL", "Scheduler name is empty");
  }
  if (registry.has(mod.name)) {
    throw new SchedulerRegistryError("EEXIST", `Scheduler already registered: ${mod.name}`);
  }
  registry.set(mod.name, mod);
}

/** Remove a scheduler (tests, plug-ins); returns whether it was registered. */
export function unregisterScheduler(name: string): boolean {
  return registry.delete(name);
}

export function getScheduler(name: string): SchedulerModule | undefined {
  return registry.get(name);
}

/** Registered names, in registration order. */
export function schedulerNames(): string[] {
  return [...registry.keys()];
}

/** The scheduler-specific `-b` flags a scheduler accepts (e.g. sh-fallback, sh-port). */
export function schedulerFlags(name: string): readonly string[] {
  return registry.get(name)?.flags ?? [];
}

/** Flags every scheduler accepts (ipvsadm's generic flag-1..3). */
const GENERIC_FLAGS: ReadonlyMap<string, number> = new Map([
  ["flag-1", SVC_F_SCHED1],
  ["flag-2", SVC_F_SCHED2],
  ["flag-3", SVC_F_SCHED3],
]);

/** Scheduler-specific flags ipvsadm knows, with their bits and the scheduler they belong to. */
const SPECIFIC_FLAGS: ReadonlyMap<string, { bit: number; sched: string }> = new Map([
  ["sh-fallback", { bit: SVC_F_SCHED1, sched: "sh" }],
  ["sh-port", { bit: SVC_F_SCHED2, sched: "sh" }],
  ["mh-fallback", { bit: SVC_F_SCHED1, sched: "mh" }],
  ["mh-port", { bit: SVC_F_SCHED2, sched: "mh" }],
]);

/**
 * Parse ipvsadm's `-b` argument (comma-separated) for scheduler `sched` (empty = the default,
 * wlc) into SVC_F_SCHED* bits. Like ipvsadm (parse_sched_flags): `flag-1..3` are accepted for any
 * scheduler; `sh-*` only with sh and `mh-*` only with mh ("incompatible scheduler flag `x'");
 * anything else is "invalid scheduler flag `x'". Empty items between commas are skipped, as
 * strtok does.
 */
export function parseSchedFlags(sched: string, arg: string): number {
  const name = sched.length > 0 ? sched : DEFAULT_SCHEDULER;
  const items = arg.split(",").filter((s) => s.length > 0);
  if (items.length === 0) throw new SchedFlagError("SCHED_FLAG_INVALID", arg);
  let flags = 0;
  for (const item of items) {
    const generic = GENERIC_FLAGS.get(item);
    if (generic !== undefined) {
      flags |= generic;
      continue;
    }
    const spec = SPECIFIC_FLAGS.get(item);
    if (spec === undefined) throw new SchedFlagError("SCHED_FLAG_INVALID", item);
    if (spec.sched !== name) throw new SchedFlagError("SCHED_FLAG_INCOMPATIBLE", item);
    flags |= spec.bit;
  }
  return flags;
}

/** The built-in schedulers: the kernel's, in ipvsadm's man-page order, then ours (lt, wlt, wrt). */
export const BUILTIN_SCHEDULERS: readonly SchedulerModule[] = [
  rrScheduler,
  wrrScheduler,
  lcScheduler,
  wlcScheduler,
  lblcScheduler,
  lblcrScheduler,
  dhScheduler,
  shScheduler,
  sedScheduler,
  nqScheduler,
  foScheduler,
  ovfScheduler,
  mhScheduler,
  twosScheduler,
  ltScheduler,
  wltScheduler,
  wrtScheduler,
];

for (const mod of BUILTIN_SCHEDULERS) registerScheduler(mod);
