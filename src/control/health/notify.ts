/**
 * notify_up, notify_down, quorum_up and quorum_down scripts: started without a shell and not
 * waited for, as keepalived does; a script that cannot start, or exits with a failure, is logged.
 */

import { spawn } from "node:child_process";
import type { EventLog } from "../observe/log.js";
import { errnoText } from "./probe.js";

/** Start `argv` for `what` ("notify_up", ...); never throws. */
export type ScriptRunner = (argv: readonly string[], what: string) => void;

/** Runs scripts; one that cannot start or fails is a `health.script.failed` warning. */
export function scriptRunner(log: EventLog): ScriptRunner {
  return (argv, what) => {
    const prog = argv[0];
    if (!prog) return;
    const fields = { event: "health.script.failed", script: what, program: prog };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(prog, argv.slice(1), { stdio: "ignore", detached: true });
    } catch (err) {
      const error = (err as Error).message;
      log.warn({ ...fields, error }, `health: ${what} ${prog}: cannot run: ${error}`);
      return;
    }
    child.on("error", (err) => {
      const error = errnoText(err);
      log.warn({ ...fields, error }, `health: ${what} ${prog}: cannot run: ${error}`);
    });
    child.on("exit", (code, sig) => {
      if (code === 0) return;
      const how = code === null ? { signal: sig } : { exitCode: code };
      log.warn(
        { ...fields, ...how },
        `health: ${what} ${prog}: ${code === null ? `killed by ${sig}` : `exit ${code}`}`,
      );
    });
    child.unref();
  };
}
