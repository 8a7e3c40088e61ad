/**
 * The control plane's view of the scheduler registry (src/datapath/schedulers/index.ts): `-b`
 * parsing with ipvsadm's messages, the names printed for SVC_F_SCHED* bits, and the list shown
 * in `lvsadm -h`. Flag names come from the registry only.
 */

import {
  GENERIC_SCHED_FLAGS,
  parseSchedFlags,
  SCHED_FLAG_BITS,
  SchedFlagError,
  schedulerFlags,
  schedulerNames,
} from "../datapath/schedulers/index.js";

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
  const names = schedulerFlags(sched);
  const out: string[] = [];
  SCHED_FLAG_BITS.forEach((bit, i) => {
    if ((flags & bit) !== 0) out.push(names[i] ?? GENERIC_SCHED_FLAGS[i]!);
  });
  return out.join(",");
}

/** Registered scheduler names for the help text ("rr|wrr|..."). */
export function schedulerList(): string {
  return schedulerNames().join("|");
}
