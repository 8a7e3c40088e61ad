/** Where the built-in scenarios live, and resolving a scenario argument to a file. */

import { existsSync, readdirSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const SCENARIO_EXT = ".scn";

/**
 * The repository's `scenarios/` directory, found by walking up from this module (it sits at
 * src/tools/schedbench/ under vitest and dist/src/tools/schedbench/ once compiled).
 */
export function builtinScenarioDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "scenarios")))
      return join(dir, "scenarios");
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  throw new Error("cannot find the scenarios/ directory next to package.json");
}

/** Built-in scenario files, in file-name order (files are numbered to set the report order). */
export function builtinScenarioFiles(): string[] {
  const dir = builtinScenarioDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith(SCENARIO_EXT))
    .sort()
    .map((f) => join(dir, f));
}

/** Short name of a built-in file: `02-hetero-right.scn` → `hetero-right`. */
export function builtinName(file: string): string {
  return basename(file, SCENARIO_EXT).replace(/^\d+-/, "");
}

/**
 * A scenario argument: an existing file, or the name of a built-in (`equal`, `hetero-right`, ...).
 * Returns undefined when it is neither.
 */
export function resolveScenarioArg(arg: string): string | undefined {
  if (existsSync(arg)) return arg;
  for (const f of builtinScenarioFiles()) if (builtinName(f) === arg || basename(f) === arg) return f;
  return undefined;
}
