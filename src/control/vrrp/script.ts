/**
 * Running VRRP scripts (notify_* / notify and vrrp_script): without a shell (the argv was split
 * as keepalived splits it, src/control/config/parser.ts splitCommand), in their own process
 * group, stdio ignored, never awaited by the data path. A script still running after its timeout
 * gets SIGTERM on its whole group, then SIGKILL 2 s later, and counts as failed. Nothing here
 * throws: a script that cannot start is a failed run.
 */

import { spawn } from "node:child_process";
import { KILL_GRACE_MS } from "../health/misc.js";
import { errnoText } from "../health/probe.js";

export interface ScriptResult {
  ok: boolean;
  /** "exit 0", "exit 1", "timed out after 2000 ms", "killed by SIGKILL", "cannot run: ENOENT". */
  reason: string;
}

/** Run `argv`, resolve when it ended (or was killed after `timeoutMs`). Never rejects. */
export type ScriptExec = (argv: readonly string[], timeoutMs: number) => Promise<ScriptResult>;

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/** The real runner (child_process.spawn); its timers are unref'd so they never keep lvsd up. */
export const execScript: ScriptExec = (argv, timeoutMs) =>
  new Promise((resolve) => {
    let settled = false;
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    let timer: NodeJS.Timeout | undefined;
    const finish = (r: ScriptResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve(r);
    };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(argv[0] ?? "", argv.slice(1), { stdio: "ignore", detached: true });
    } catch (err) {
      finish({ ok: false, reason: `cannot run: ${(err as Error).message}` });
      return;
    }
    timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, "SIGTERM");
      killTimer = setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS);
      killTimer.unref();
    }, timeoutMs);
    timer.unref();
    child.on("error", (err) => finish({ ok: false, reason: `cannot run: ${errnoText(err)}` }));
    child.on("exit", (code, sig) => {
      if (timedOut) finish({ ok: false, reason: `timed out after ${timeoutMs} ms` });
      else if (code === null) finish({ ok: false, reason: `killed by ${sig ?? "a signal"}` });
      else finish({ ok: code === 0, reason: `exit ${code}` });
    });
    child.unref();
  });
