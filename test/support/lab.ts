/** What the lab tests ask lvsd and run against it, shared (lvsadm through the lab, hping3). */
import type { ChildProcess } from "node:child_process";
import { expect } from "vitest";
import { CLIENT_IP, VIP } from "../../src/tools/lab/natlab.js";
import type { ExecResult, Topology } from "../../src/tools/lab/netns.js";
import { synFloodArgs } from "../../src/tools/lab/synflood.js";

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
  const p = topo.spawn(role, "timeout", synFloodArgs(vip, seconds, interval));
  return { p, done: new Promise<void>((resolve) => p.once("exit", () => resolve())) };
}

/**
 * A connection from the client namespace's port `localPort` to `host:port` that the real server
 * in namespace `rsRole` (nginx) keeps open — a request cut off in its headers — and that the
 * client then loses without a word: its socket killed (`ss -K`) while nft drops its RST on the
 * way out. The real server (and lvsd) still hold it. `held()`: whether the real server does.
 * Defaults: the NAT lab's client address, its VIP, real server r1. Needs nft and ss.
 */
export async function silentlyLostConnection(
  topo: Topology,
  opts: { port: number; localPort: number; table: string; client?: string; host?: string; rsRole?: string },
): Promise<{ held: () => boolean }> {
  const o = { client: CLIENT_IP, host: VIP, rsRole: "r1", ...opts };
  const held = (): boolean =>
    topo
      .exec(o.rsRole, "ss", ["-Htn", "state", "established", "dst", `${o.client}:${o.localPort}`])
      .stdout.trim() !== "";
  const holder = topo.spawn("c", process.execPath, [
    "-e",
    `const s = require("net").connect({ host: "${o.host}", port: ${o.port}, localPort: ${o.localPort} }, () => s.write("GET / HTTP/1.1\\r\\nHost: x\\r\\n")); setTimeout(() => {}, 60000);`,
  ]);
  try {
    const until = Date.now() + 5000;
    while (!held() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(held()).toBe(true);
    const nft = (cmd: string) => expect(topo.exec("c", "nft", [cmd]).code).toBe(0);
    nft(`add table ip ${o.table}`);
    nft(`add chain ip ${o.table} out { type filter hook output priority 0; }`);
    nft(`add rule ip ${o.table} out tcp sport ${o.localPort} drop`);
    expect(topo.exec("c", "ss", ["-K", "-tn", "src", `${o.client}:${o.localPort}`]).code).toBe(0);
  } finally {
    holder.kill("SIGKILL");
    topo.exec("c", "nft", ["delete", "table", "ip", o.table]);
  }
  return { held };
}
