/**
 * What every lab topology shares: its namespaces (Topology), lvsd started in namespace "d" with
 * a control socket of its own, lvsadm against it, and commands run from the client namespace.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ExecResult, sh, Topology, waitFor } from "./netns.js";

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root: the nearest folder above this file with a package.json (src/tools/lab or dist/src/tools/lab). */
export const ROOT = findRoot(here);

function findRoot(from: string): string {
  let dir = from;
  for (let up = 0; up < 8; up++) {
    if (existsSync(join(dir, "package.json"))) return dir;
    dir = dirname(dir);
  }
  throw new Error(`lab: no package.json above ${from}`);
}
export const LVSD = join(ROOT, "bin", "lvsd");
export const LVSADM = join(ROOT, "bin", "lvsadm");
export const PEER = join(ROOT, "dist", "src", "tools", "lab", "peer.js");
export const VIP = "10.0.0.100";

export abstract class LabBase {
  readonly topo: Topology;
  readonly control: string;
  private lvsdLog = "";
  private lvsd: ChildProcess | undefined;

  constructor(prefix: string) {
    this.topo = new Topology(prefix);
    this.control = `/run/lvsd/${prefix}.sock`;
  }

  abstract up(): Promise<void>;

  /** Start lvsd in namespace "d" with these arguments and wait for its control socket. */
  protected async startLvsd(args: readonly string[]): Promise<void> {
    const p = this.topo.spawn("d", process.execPath, [LVSD, ...args, "--control", this.control]);
    this.lvsd = p;
    p.stderr?.on("data", (b: Buffer) => {
      this.lvsdLog += b.toString();
    });
    await waitFor("lvsd's control socket", () => this.lvsadm("-Ln").code === 0, 15_000);
  }

  /** lvsd's process id (`ip netns exec` execs it, so the child is lvsd itself); undefined before start. */
  get lvsdPid(): number | undefined {
    return this.lvsd?.pid;
  }

  /** Stop lvsd with `signal` and wait (at most 10 s) until it has exited. */
  async stopLvsd(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const p = this.lvsd;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill(signal);
    await waitFor("lvsd to exit", () => p.exitCode !== null || p.signalCode !== null, 10_000);
    await exited;
  }

  /** Run lvsadm against this lab's lvsd (from the root namespace, over the control socket). */
  lvsadm(...args: string[]): ExecResult {
    process.env.LVSD_CONTROL = this.control;
    return sh(process.execPath, [LVSADM, ...args], undefined, 10_000);
  }

  /** Run lvsadm with standard input (for -R). */
  lvsadmIn(input: string, ...args: string[]): ExecResult {
    process.env.LVSD_CONTROL = this.control;
    return sh(process.execPath, [LVSADM, ...args], input, 10_000);
  }

  /** Run a command in the client namespace. */
  client(cmd: string, args: readonly string[], input?: string, timeoutMs = 30_000): ExecResult {
    return this.topo.exec("c", cmd, args, input, timeoutMs);
  }

  /** One HTTP GET from the client (curl), body or "" on failure. */
  get(url: string): string {
    const r = this.client("curl", ["-s", "-m", "5", url]);
    return r.code === 0 ? r.stdout : "";
  }

  /** What lvsd wrote to stderr. */
  log(): string {
    return this.lvsdLog;
  }

  down(): void {
    this.topo.destroy();
    sh("rm", ["-f", this.control]);
  }
}
