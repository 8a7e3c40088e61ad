/**
 * Memory advised for transparent huge pages in a process: the sizes of the mappings in
 * /proc/PID/smaps whose VmFlags carry "hg" (MADV_HUGEPAGE). Advice splits a mapping, so an
 * advised range shows as mappings of its own. Undefined where the kernel has no THP.
 */
import { existsSync, readFileSync } from "node:fs";

export const thpSupported = existsSync("/sys/kernel/mm/transparent_hugepage/enabled");

/** Sizes in bytes of the mappings advised for huge pages, largest first. */
export function hugeAdvisedMappings(pid: number | "self" = "self"): number[] {
  const out: number[] = [];
  let size = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const m = /^Size:\s+(\d+) kB$/.exec(line);
    if (m) size = Number(m[1]) * 1024;
    else if (line.startsWith("VmFlags:") && line.split(/\s+/).includes("hg")) out.push(size);
  }
  return out.sort((a, b) => b - a);
}
