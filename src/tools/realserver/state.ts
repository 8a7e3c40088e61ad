/**
 * What lvs-realserver changed in a network namespace, so that --undo reverts exactly that.
 *
 * One JSON file per namespace, `<stateDir>/<id>.json`, where <id> comes from the namespace's
 * SO_NETNS_COOKIE (never reused until reboot; /run is emptied at boot), so two namespaces never
 * share a file whatever they are called, and a command run inside a namespace (`ip netns exec`)
 * finds the same file as one run with --netns from outside. It holds:
 *
 * - `sysctls`: every sysctl we wrote, with the value it had before our first write (later runs
 *   never overwrite a recorded value with ours);
 * - `vips`: one claim per (VIP, command), and whether that claim added the address to lo (a VIP
 *   that was already there is claimed but never removed);
 * - `decap`: the running decapsulator (pid and start time, so a recycled pid is not mistaken for it).
 *
 * The sysctls are restored when the last claim goes and no decapsulator runs. Writers take a
 * lock file (O_EXCL, with the holder's pid; a dead holder's lock is broken) and replace the state
 * file atomically (write + rename).
 */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RealServerError, RsErrorCode } from "./errors.js";

export interface SysctlRecord {
  /** Path below /proc/sys. */
  path: string;
  /** Value before our first write. */
  prev: string;
}

export interface VipClaim {
  /** Dotted quad. */
  addr: string;
  by: "dr" | "tun";
  /** This claim added the address to lo (so removing the claim removes the address). */
  added: boolean;
}

export interface DecapRecord {
  pid: number;
  /** Process start time (field 22 of /proc/PID/stat), to tell a recycled pid apart. */
  start: string;
  dev: string;
  tun: string;
  locals: string[];
  pidFile?: string;
}

export interface RsState {
  version: 1;
  /** The namespace's identity (netnsId). */
  id: string;
  /** The namespace as given on the command line (undefined: the caller's), for display. */
  netns?: string;
  sysctls: SysctlRecord[];
  vips: VipClaim[];
  decap?: DecapRecord;
}

export function emptyState(id: string, netns: string | undefined): RsState {
  const s: RsState = { version: 1, id, sysctls: [], vips: [] };
  if (netns !== undefined) s.netns = netns;
  return s;
}

/** File name stem for a namespace id ("cookie:42" -> "netns-cookie-42"). */
export function stateStem(id: string): string {
  return `netns-${id.replace(/[^A-Za-z0-9]+/g, "-")}`;
}

export class StateStore {
  readonly dir: string;
  readonly file: string;
  readonly stem: string;
  private readonly lockFile: string;
  private held = false;

  constructor(dir: string, id: string) {
    this.dir = dir;
    this.stem = stateStem(id);
    this.file = join(dir, `${this.stem}.json`);
    this.lockFile = join(dir, `${this.stem}.lock`);
  }

  /** Default pid and log files of a daemon for this namespace. */
  get pidFile(): string {
    return join(this.dir, `${this.stem}.pid`);
  }

  get logFile(): string {
    return join(this.dir, `${this.stem}.log`);
  }

  ensureDir(): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw stateError(`cannot create state directory ${this.dir}`, err);
    }
  }

  load(): RsState | undefined {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw stateError(`cannot read ${this.file}`, err);
    }
    try {
      const s = JSON.parse(text) as RsState;
      if (s.version !== 1 || !Array.isArray(s.sysctls) || !Array.isArray(s.vips))
        throw new Error("unknown format");
      return s;
    } catch (err) {
      throw stateError(`state file ${this.file} is damaged (fix or remove it)`, err);
    }
  }

  save(s: RsState): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o644 });
      renameSync(tmp, this.file);
    } catch (err) {
      throw stateError(`cannot write ${this.file}`, err);
    }
  }

  remove(): void {
    try {
      unlinkSync(this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        throw stateError(`cannot remove ${this.file}`, err);
    }
  }

  /** Run `fn` holding the namespace's lock. */
  withLock<T>(fn: () => T): T {
    if (this.held) return fn();
    this.ensureDir();
    this.acquire();
    this.held = true;
    try {
      return fn();
    } finally {
      this.held = false;
      try {
        unlinkSync(this.lockFile);
      } catch {
        // already gone
      }
    }
  }

  private acquire(): void {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const fd = openSync(this.lockFile, "wx", 0o644);
        writeFileSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST")
          throw stateError(`cannot lock ${this.lockFile}`, err);
      }
      let holder = 0;
      try {
        holder = Number.parseInt(readFileSync(this.lockFile, "utf8"), 10);
      } catch {
        continue; // released meanwhile
      }
      if (!Number.isInteger(holder) || holder <= 0 || !pidAlive(holder)) {
        try {
          unlinkSync(this.lockFile); // a dead holder's lock
        } catch {
          // someone else broke it
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new RealServerError(RsErrorCode.STATE, `${this.lockFile} is held by pid ${holder}`);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

function stateError(msg: string, err: unknown): RealServerError {
  const e = err as NodeJS.ErrnoException;
  const code = e.code === "EACCES" || e.code === "EPERM" ? RsErrorCode.NO_PRIVILEGE : RsErrorCode.STATE;
  return new RealServerError(code, `${msg}: ${e.message}`, { cause: err });
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Start time of a process (clock ticks since boot, as a string), or undefined if it is gone. */
export function procStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return rest[19]; // field 22
  } catch {
    return undefined;
  }
}

/** The recorded decapsulator is still the same running process. */
export function decapAlive(d: DecapRecord | undefined): boolean {
  return d !== undefined && procStart(d.pid) === d.start;
}
