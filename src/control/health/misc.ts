/**
 * MISC_CHECK (keepalived's check_misc): run `misc_path` (program and arguments, no shell) and
 * judge its exit status: 0 up, 1 down; 2..255 down too, unless `misc_dynamic`, when they mean
 * up with weight = status - 2 (so 2..255 give weights 0..253). A script still running after
 * misc_timeout (default: delay_loop) gets SIGTERM, then SIGKILL 2 s later, and counts as
 * failed. The script runs in its own process group, and the whole group is signalled.
 */

import { spawn } from "node:child_process";
import type { MiscCheckConfig } from "../config/types.js";
import { errnoText, type ProbeResult, secs } from "./probe.js";

/** Seconds between SIGTERM and SIGKILL for a script past its timeout. */
export const KILL_GRACE_MS = 2000;

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

export function probeMisc(c: MiscCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  const label = `MISC_CHECK ${c.argv.join(" ")}`;
  return new Promise((resolve) => {
    let timedOut = false;
    let settled = false;
    let killTimer: NodeJS.Timeout | undefined;
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      signal.removeEventListener("abort", onAbort);
      resolve(r);
    };
    const child = spawn(c.argv[0] ?? "", c.argv.slice(1), { stdio: "ignore", detached: true });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGTERM");
      killTimer = setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS);
    }, c.timeout * 1000);
    const onAbort = (): void => {
      killGroup(child.pid, "SIGKILL");
      finish({ ok: false, reason: `${label} stopped` });
    };
    signal.addEventListener("abort", onAbort, { once: true });
    child.on("error", (err) => finish({ ok: false, reason: `${label} cannot run: ${errnoText(err)}` }));
    child.on("exit", (code, sig) => {
      if (timedOut) return finish({ ok: false, reason: `${label} timed out after ${secs(c.timeout)}` });
      if (code === null) return finish({ ok: false, reason: `${label} killed by ${sig ?? "a signal"}` });
      if (code === 0) return finish({ ok: true, reason: `${label} exit 0` });
      if (c.dynamic && code >= 2) {
        return finish({ ok: true, reason: `${label} exit ${code} (weight ${code - 2})`, weight: code - 2 });
      }
      finish({ ok: false, reason: `${label} exit ${code}` });
    });
  });
}
