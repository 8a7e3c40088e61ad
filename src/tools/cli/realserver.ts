/**
 * lvs-realserver: prepares a host or a network namespace to be an LVS real server (VIP on lo,
 * ARP sysctls; for LVS-TUN on a kernel without the ipip module, a userspace IPIP decapsulator).
 * See RS_USAGE (src/tools/realserver/args.ts) and docs/realserver.md.
 *
 * `tun` runs in the foreground until SIGINT/SIGTERM/SIGHUP, then reverts its setup; SIGUSR1
 * prints the counters. With --daemon the parent starts a detached copy of itself (same
 * arguments, LVS_REALSERVER_DAEMON_CHILD=1), waits until it reports ready or failed over an IPC
 * channel, prints the pid and returns.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, openSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseRsArgs, RS_USAGE, type RsArgs } from "../realserver/args.js";
import { type Reporter, runDr, runStatus, runUndo, TunSession } from "../realserver/commands.js";
import type { DecapStats } from "../realserver/decap.js";
import { fromIoError, RealServerError, RsErrorCode } from "../realserver/errors.js";
import { openTarget } from "../realserver/setup.js";

const VERSION = "lvs-realserver (lvs-ts) 0.1.0";
const CHILD_ENV = "LVS_REALSERVER_DAEMON_CHILD";
const PID_FILE_ENV = "LVS_REALSERVER_PID_FILE";

/** Capabilities a command needs, by number (linux/capability.h). */
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;
const CAP_SYS_ADMIN = 21;

function reporter(quiet: boolean): Reporter {
  return {
    info: (m) => {
      if (!quiet) process.stdout.write(`${m}\n`);
    },
    warn: (m) => process.stderr.write(`lvs-realserver: warning: ${m}\n`),
  };
}

/** Fail early and clearly without the privileges the command needs. */
export function checkPrivileges(a: RsArgs, status = "/proc/self/status"): void {
  const need = [CAP_NET_ADMIN];
  if (a.command === "tun") need.push(CAP_NET_RAW);
  if (a.netns !== undefined) need.push(CAP_SYS_ADMIN);
  let eff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(status, "utf8"));
    if (m === null) return; // cannot tell: let the system calls say
    eff = BigInt(`0x${m[1]}`);
  } catch {
    return;
  }
  const names: Record<number, string> = {
    [CAP_NET_ADMIN]: "CAP_NET_ADMIN",
    [CAP_NET_RAW]: "CAP_NET_RAW",
    [CAP_SYS_ADMIN]: "CAP_SYS_ADMIN (for --netns)",
  };
  const missing = need.filter((c) => (eff & (1n << BigInt(c))) === 0n).map((c) => names[c]!);
  if (missing.length > 0) {
    throw new RealServerError(
      RsErrorCode.NO_PRIVILEGE,
      `${a.command} needs root (missing ${missing.join(", ")}); run it with sudo`,
    );
  }
}

function statsLine(s: DecapStats): string {
  const drops = Object.entries(s.drops)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`);
  const w = s.wire;
  const wire = [
    w.kernelDrops > 0 ? `kernel_drops=${w.kernelDrops}` : "",
    w.rxGso > 0 ? `gso=${w.rxGso}` : "",
    w.rxTruncated > 0 ? `truncated=${w.rxTruncated}` : "",
    w.csumFixed > 0 ? `csum_fixed=${w.csumFixed}` : "",
  ].filter((x) => x !== "");
  return `received ${s.received}, delivered ${s.delivered}${s.tunDropped > 0 ? `, tun_dropped ${s.tunDropped}` : ""}${drops.length > 0 ? `, dropped ${drops.join(" ")}` : ""}${wire.length > 0 ? ` (${wire.join(" ")})` : ""}`;
}

/** Resolves with the signal that asked us to stop. */
function untilStopSignal(onUsr1: () => void): Promise<NodeJS.Signals> {
  return new Promise((resolveSig) => {
    const stop = (sig: NodeJS.Signals) => {
      for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.off(s, stop);
      process.off("SIGUSR1", onUsr1);
      resolveSig(sig);
    };
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, stop);
    process.on("SIGUSR1", onUsr1);
  });
}

/** `tun` in this process: set up, pump until a signal, revert. */
async function runTunForeground(a: RsArgs, out: Reporter, child: boolean): Promise<number> {
  const pidFile = child ? process.env[PID_FILE_ENV] : undefined;
  let session: TunSession;
  try {
    session = TunSession.start(a, out, pidFile === undefined ? {} : { pidFile });
  } catch (err) {
    if (child && process.send !== undefined) {
      const e = err as Error & { code?: string; exitCode?: number };
      process.send({ ok: false, message: e.message, exit: e instanceof RealServerError ? e.exitCode : 1 });
    }
    throw err;
  }
  if (pidFile !== undefined) writeFileSync(pidFile, `${process.pid}\n`);
  if (child && process.send !== undefined) {
    process.send({ ok: true, pid: process.pid }, () => process.disconnect());
  }
  const sig = await untilStopSignal(() =>
    process.stderr.write(`lvs-realserver: tun: ${statsLine(session.decap.stats())}\n`),
  );
  const stats = session.stop(out);
  out.info(`tun: stopped by ${sig}; ${statsLine(stats)}`);
  if (pidFile !== undefined) {
    try {
      if (readFileSync(pidFile, "utf8").trim() === String(process.pid)) unlinkSync(pidFile);
    } catch {
      // already gone
    }
  }
  return 0;
}

/** The bin/lvs-realserver script next to this build (dist/src/tools/cli or src/tools/cli, walking up). */
function binScript(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let up = 0; up < 7; up++) {
    const p = join(dir, "bin", "lvs-realserver");
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  throw new RealServerError(RsErrorCode.SYSTEM, "cannot find bin/lvs-realserver to start the daemon");
}

/** `tun --daemon`: start a detached copy and wait for it to report. */
async function runTunDaemon(argv: readonly string[], a: RsArgs, out: Reporter): Promise<number> {
  const t = openTarget(a.netns, a.stateDir);
  t.store.ensureDir();
  const pidFile = resolve(a.pidFile ?? t.store.pidFile);
  const logFile = resolve(a.logFile ?? t.store.logFile);
  let logFd: number;
  try {
    logFd = openSync(logFile, "a", 0o644);
  } catch (err) {
    throw new RealServerError(
      RsErrorCode.STATE,
      `cannot open the log file ${logFile}: ${(err as Error).message}`,
    );
  }
  const child: ChildProcess = spawn(process.execPath, [binScript(), ...argv], {
    detached: true,
    stdio: ["ignore", logFd, logFd, "ipc"],
    env: { ...process.env, [CHILD_ENV]: "1", [PID_FILE_ENV]: pidFile },
  });
  const msg = await new Promise<{ ok: boolean; pid?: number; message?: string; exit?: number }>((res) => {
    child.once("message", (m) => res(m as { ok: boolean }));
    child.once("exit", (code) =>
      res({
        ok: false,
        message: `the daemon exited (status ${code}) before it was ready; see ${logFile}`,
        exit: 1,
      }),
    );
    child.once("error", (err) => res({ ok: false, message: err.message, exit: 1 }));
  });
  child.removeAllListeners();
  if (child.connected) child.disconnect();
  child.unref();
  if (!msg.ok) {
    process.stderr.write(`lvs-realserver: ${msg.message ?? "the daemon failed"}\n`);
    return msg.exit ?? 1;
  }
  out.info(
    `tun: decapsulator running in the background, pid ${msg.pid} (pid file ${pidFile}, log ${logFile})`,
  );
  return 0;
}

/** The lvs-realserver program. Returns the exit status. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let a: RsArgs | undefined;
  try {
    a = parseRsArgs(argv, process.env);
    if (a.help) {
      process.stdout.write(`${RS_USAGE}\n`);
      return 0;
    }
    if (a.version) {
      process.stdout.write(`${VERSION}\n`);
      return 0;
    }
    const out = reporter(a.quiet);
    if (a.command === "status") {
      runStatus(a, out);
      return 0;
    }
    checkPrivileges(a);
    if (a.undo) {
      await runUndo(a, out);
      return 0;
    }
    if (a.command === "dr") {
      runDr(a, out);
      return 0;
    }
    const child = process.env[CHILD_ENV] === "1";
    if (a.daemon && !child) return await runTunDaemon(argv, a, out);
    return await runTunForeground(a, out, child);
  } catch (err) {
    const e = fromIoError(err);
    if (e instanceof RealServerError) {
      process.stderr.write(`lvs-realserver: ${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
}
