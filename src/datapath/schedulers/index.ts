/**
 * The scheduler registry: built-in schedulers registered explicitly by name, as the kernel's
 * register_ip_vs_scheduler does (empty and duplicate names refused), plus ipvsadm's parsing of
 * `-b sched-flags` into SVC_F_* bits. A scheduler's own flag names (sh-fallback, sh-port, ...)
 * are written once, in its module's `flags`; everything else that needs them asks here.
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
  const flags = mod.flags ?? [];
  if (flags.length > SCHED_FLAG_BITS.length) {
    throw new SchedulerRegistryError(
      "EINVAL",
      `Scheduler ${mod.name} names ${flags.length} flags; there are ${SCHED_FLAG_BITS.length} flag bits`,
    );
  }
  for (const f of flags) {
    if (f.length === 0 || f.includes(",") || GENERIC_SCHED_FLAGS.includes(f)) {
      throw new SchedulerRegistryError("EINVAL", `Scheduler ${mod.name}: bad flag name '${f}'`);
    }
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

/**
 * The SVC_F_SCHED* bits in order: the i-th flag a scheduler names (its module's `flags[i]`, or
 * ipvsadm's generic `flag-(i+1)`) sets SCHED_FLAG_BITS[i].
 */
export const SCHED_FLAG_BITS: readonly number[] = [SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3];
export const SCHED_FLAGS_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

/** ipvsadm's generic flags, accepted for every scheduler: flag-1, flag-2, flag-3. */
export const GENERIC_SCHED_FLAGS: readonly string[] = SCHED_FLAG_BITS.map((_, i) => `flag-${i + 1}`);

/** The scheduler-specific `-b` flags a scheduler accepts (e.g. sh-fallback, sh-port), in bit order. */
export function schedulerFlags(name: string): readonly string[] {
  return registry.get(name)?.flags ?? [];
}

/**
 * Every flag name the registry knows: the generic flag-1..3, then each registered scheduler's
 * own (in registration order, each name once).
 */
export function allSchedulerFlags(): string[] {
  const out = [...GENERIC_SCHED_FLAGS];
  for (const mod of registry.values()) for (const f of mod.flags ?? []) if (!out.includes(f)) out.push(f);
  return out;
}

/**
 * Parse ipvsadm's `-b` argument (comma-separated) for scheduler `sched` (empty = the default,
 * wlc) into SVC_F_SCHED* bits. Like ipvsadm (parse_sched_flags): `flag-1..3` are accepted for any
 * scheduler; a scheduler's own flags (its module's `flags`: sh-* for sh, mh-* for mh) only with
 * it, and with another scheduler give "incompatible scheduler flag `x'"; anything else is
 * "invalid scheduler flag `x'". Empty items between commas are skipped, as strtok does.
 */
export function parseSchedFlags(sched: string, arg: string): number {
  const name = sched.length > 0 ? sched : DEFAULT_SCHEDULER;
  const items = arg.split(",").filter((s) => s.length > 0);
  if (items.length === 0) throw new SchedFlagError("SCHED_FLAG_INVALID", arg);
  const own = schedulerFlags(name);
  let flags = 0;
  for (const item of items) {
    const generic = GENERIC_SCHED_FLAGS.indexOf(item);
    if (generic >= 0) {
      flags |= SCHED_FLAG_BITS[generic]!;
      continue;
    }
    const i = own.indexOf(item);
    if (i >= 0) {
      flags |= SCHED_FLAG_BITS[i]!;
      continue;
    }
    const code = allSchedulerFlags().includes(item) ? "SCHED_FLAG_INCOMPATIBLE" : "SCHED_FLAG_INVALID";
    throw new SchedFlagError(code, item);
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
