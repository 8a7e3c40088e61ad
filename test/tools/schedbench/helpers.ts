import type { SchedulerModule } from "../../../src/tables/model.js";
import { parseScenario, type Scenario } from "../../../src/tools/schedbench/scenario.js";
import { parseVariants, type SchedVariant } from "../../../src/tools/schedbench/variants.js";

/** Parse scenario text (lines joined with newlines) labelled `test.scn`. */
export function scenario(...lines: string[]): Scenario {
  return parseScenario(lines.join("\n"), "test.scn");
}

/** Registered schedulers by name (with +flags), as the command line takes them. */
export function variants(list: string): SchedVariant[] {
  return parseVariants(list);
}

export function variant(name: string): SchedVariant {
  return parseVariants(name)[0]!;
}

/** A variant for an unregistered module (spies). */
export function moduleVariant(mod: SchedulerModule): SchedVariant {
  return { label: mod.name, module: mod, flags: [] };
}

/** `n` dest lines named s1..sn at 192.168.10.i:80 with the given options. */
export function dests(n: number, opts = "weight 1 slots 8 speed 1"): string[] {
  return Array.from({ length: n }, (_, i) => `dest s${i + 1} 192.168.10.${i + 1}:80 ${opts}`);
}
