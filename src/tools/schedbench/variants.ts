/**
 * Which schedulers a report compares: registered names, optionally with scheduler flags
 * (`sh+sh-fallback`, `mh+mh-port+mh-fallback`), resolved against the registry at run time, so
 * whatever is registered when the tool runs can be compared.
 */

import {
  GENERIC_SCHED_FLAGS,
  getScheduler,
  parseSchedFlags,
  schedulerFlags,
  schedulerNames,
} from "../../datapath/schedulers/index.js";
import type { SchedulerModule } from "../../tables/model.js";

export interface SchedVariant {
  /** Label in reports: the name, plus `+flag` for flags given on the command line. */
  readonly label: string;
  readonly module: SchedulerModule;
  /** Flags given with the variant (scenario flags are added per run when the scheduler accepts them). */
  readonly flags: readonly string[];
}

export class VariantError extends Error {
  readonly code = "SCHED_VARIANT";
}

/** Parse `rr,wlc,sh+sh-port` (empty or "all" = every registered scheduler, registration order). */
export function parseVariants(list: string | undefined): SchedVariant[] {
  const items =
    list === undefined || list === "" || list === "all"
      ? schedulerNames()
      : list
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
  const out: SchedVariant[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const [name, ...flags] = item.split("+");
    const mod = getScheduler(name!);
    if (mod === undefined) {
      throw new VariantError(`unknown scheduler \`${name}\` (registered: ${schedulerNames().join(", ")})`);
    }
    try {
      if (flags.length > 0) parseSchedFlags(mod.name, flags.join(","));
    } catch (e) {
      throw new VariantError(`${item}: ${(e as Error).message}`);
    }
    if (seen.has(item)) throw new VariantError(`scheduler \`${item}\` listed twice`);
    seen.add(item);
    out.push({ label: item, module: mod, flags });
  }
  if (out.length === 0) throw new VariantError("no schedulers to compare");
  return out;
}

/** SVC_F_SCHED* bits for a variant in a scenario: its own flags plus the scenario's that apply. */
export function variantFlagBits(v: SchedVariant, scenarioFlags: readonly string[]): number {
  const accepted = new Set([...GENERIC_SCHED_FLAGS, ...schedulerFlags(v.module.name)]);
  const flags = [...v.flags];
  for (const f of scenarioFlags) if (accepted.has(f) && !flags.includes(f)) flags.push(f);
  return flags.length > 0 ? parseSchedFlags(v.module.name, flags.join(",")) : 0;
}

/** Hashing schedulers whose choice for a flow key can be compared before/after a change. */
export function isKeyBased(v: SchedVariant): boolean {
  const n = v.module.name;
  return n === "sh" || n === "dh" || n === "mh" || n === "lblc" || n === "lblcr";
}
