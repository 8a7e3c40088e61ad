/**
 * Network-namespace plumbing for the labs and the integration tests. Every namespace and
 * device name starts with the caller's prefix so parallel runs do not collide, and `destroy`
 * removes everything the topology created (namespaces take their devices with them).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command and return its output (never throws on a non-zero exit). */
export function sh(cmd: string, args: readonly string[], input?: string, timeoutMs = 30_000): ExecResult {
  try {
    const stdout = execFileSync(cmd, args, {
      encoding: "utf8",
      stdio: ["pipe", "pipe", "pipe"],
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
      ...(input !== undefined ? { input } : {}),
    });
    return { code: 0, stdout, stderr: "" };
  } catch (err) {
    const e = err as { status?: number | null; stdout?: string; stderr?: string };
    return { code: e.status ?? 1, stdout: e.stdout ?? "", stderr: e.stderr ?? String(err) };
  }
}

/** Run a command and throw with its stderr when it fails (set-up steps). */
export function must(cmd: string, args: readonly string[]): string {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function ip(...args: string[]): string {
  return must("ip", args);
}

/** True when we may create namespaces (root with the ip tool). */
export function canUseNetns(): boolean {
  return process.getuid?.() === 0 && sh("ip", ["netns", "list"]).code === 0;
}

export class Topology {
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly procs: ChildProcess[] = [];

  constructor(prefix: string) {
    if (!/^[a-z][a-z0-9]{1,7}$/.test(prefix))
      throw new Error(`bad prefix '${prefix}' (2..8 lower-case letters/digits)`);
    this.prefix = prefix;
  }

  /** Namespace name for a role ("c", "r1", ...). */
  ns(role: string): string {
    return `${this.prefix}-${role}`;
  }

  /** Device name for a role; at most 15 bytes. */
  dev(role: string): string {
    const n = `${this.prefix}${role}`;
    if (n.length > 15) throw new Error(`device name ${n} is too long`);
    return n;
  }

  /** Whether namespace `role` was added (and not yet removed) by this topology. */
  hasNs(role: string): boolean {
    return this.namespaces.includes(this.ns(role));
  }

  addNs(role: string): string {
    const n = this.ns(role);
    sh("ip", ["netns", "del", n]);
    ip("netns", "add", n);
    this.namespaces.push(n);
    ip("-n", n, "link", "set", "lo", "up");
    return n;
  }

  /** Run a command inside namespace `role`. */
  exec(role: string, cmd: string, args: readonly string[], input?: string, timeoutMs?: number): ExecResult {
    return sh("ip", ["netns", "exec", this.ns(role), cmd, ...args], input, timeoutMs);
  }

  /** Start a long-running process inside namespace `role`; it is killed by `destroy`. */
  spawn(role: string, cmd: string, args: readonly string[]): ChildProcess {
    const p = spawn("ip", ["netns", "exec", this.ns(role), cmd, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.procs.push(p);
    return p;
  }

  /**
   * Stop every process we started (SIGTERM, then SIGKILL), kill whatever else still runs in our
   * namespaces (children such as nginx workers outlive their parent), and delete the namespaces.
   */
  destroy(): void {
    let waiting = false;
    for (const p of this.procs) {
      if (p.exitCode === null) {
        p.kill("SIGTERM");
        waiting = true;
      }
    }
    if (waiting) sh("sleep", ["0.2"]);
    for (const p of this.procs) if (p.exitCode === null) p.kill("SIGKILL");
    this.procs.length = 0;
    for (const n of this.namespaces) {
      const pids = sh("ip", ["netns", "pids", n]).stdout.split(/\s+/).filter(Boolean);
      if (pids.length > 0) sh("kill", ["-9", ...pids]);
    }
    for (const n of this.namespaces.reverse()) sh("ip", ["netns", "del", n]);
    this.namespaces.length = 0;
  }
}

/** Wait until `check` returns true (polling), or throw after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
