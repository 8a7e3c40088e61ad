/**
 * The control plane's view of the scheduler registry (src/datapath/schedulers/index.ts): `-b` parsing,
 * the names printed for SVC_F_SCHED* bits, and the list shown in `lvsadm -h`.
 */

import {
  parseSchedFlags,
  SchedFlagError,
  schedulerFlags,
  schedulerNames,
} from "../datapath/schedulers/index.js";
import { SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3 } from "../tables/model.js";

export const SCHED_FLAG_BITS: readonly number[] = [SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3];
export const SCHED_FLAGS_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;

/** ipvsadm's print_sched_flags() names for sh and mh, used when the registry has no names. */
const IPVSADM_FLAG_NAMES: Readonly<Record<string, readonly string[]>> = {
  sh: ["sh-fallback", "sh-port"],
  mh: ["mh-fallback", "mh-port"],
};

/** `-b` for scheduler `sched`: the SVC_F_SCHED* bits, or ipvsadm's error message. */
export function parseSchedFlagsIpvsadm(sched: string, arg: string): number | string {
  try {
    return parseSchedFlags(sched, arg);
  } catch (err) {
    if (err instanceof SchedFlagError) return err.message;
    throw err;
  }
}

/**
 * The flag names ipvsadm prints for a service's SVC_F_SCHED* bits (comma-separated, in bit
 * order): the scheduler's own names where it has them, `flag-N` otherwise. Empty when none is set.
 */
export function schedFlagsText(sched: string, flags: number): string {
  let names: readonly string[] = schedulerFlags(sched);
  if (names.length === 0) names = IPVSADM_FLAG_NAMES[sched] ?? [];
  const out: string[] = [];
  SCHED_FLAG_BITS.forEach((bit, i) => {
    if ((flags & bit) !== 0) out.push(names[i] ?? `flag-${i + 1}`);
  });
  return out.join(",");
}

/** Registered scheduler names for the help text ("rr|wrr|..."). */
export function schedulerList(): string {
  return schedulerNames().join("|");
}
