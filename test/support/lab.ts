/** What the lab tests ask lvsd and run against it, shared (lvsadm through the lab, hping3). */
import type { ChildProcess } from "node:child_process";
import { expect } from "vitest";
import type { ExecResult, Topology } from "../../src/tools/lab/netns.js";

interface HasLvsadm {
  lvsadm(...args: string[]): ExecResult;
}

/** Run lvsadm; it must succeed without a word on stderr. Its stdout. */
export function mustLvsadm(lab: HasLvsadm, ...args: string[]): string {
  const r = lab.lvsadm(...args);
  expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

/** The count of one reason in `lvsadm --drops` (0 when not listed). */
export function dropCount(lab: HasLvsadm, reason: string): number {
  const m = new RegExp(`^${reason}\\s+(\\d+)$`, "m").exec(lab.lvsadm("--drops").stdout);
  return m ? Number(m[1]) : 0;
}

/** The client addresses of the connection table's entries (`lvsadm -Lnc`). */
export function tableClients(lab: HasLvsadm): string[] {
  return lab
    .lvsadm("-Lnc")
    .stdout.trim()
    .split("\n")
    .slice(2)
    .map((l) => l.trim().split(/\s+/)[3]?.split(":")[0] ?? "");
}

/**
 * hping3 SYNs from random sources to `vip`:80 from namespace `role`, one every `interval`
 * (hping3's -i, e.g. "u100": 10,000 a second), for `seconds` (timeout's SIGINT ends it).
 */
export function synFlood(
  topo: Topology,
  role: string,
  vip: string,
  seconds: number,
  interval = "u100",
): { p: ChildProcess; done: Promise<void> } {
  const p = topo.spawn(role, "timeout", [
    "-s",
    "INT",
    String(seconds),
    "hping3",
    "-q",
    "-S",
    "-p",
    "80",
    "--rand-source",
    "-i",
    interval,
    vip,
  ]);
  return { p, done: new Promise<void>((resolve) => p.once("exit", () => resolve())) };
}
