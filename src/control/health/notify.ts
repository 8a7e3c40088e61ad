/**
 * notify_up, notify_down, quorum_up and quorum_down scripts: started without a shell and not
 * waited for, as keepalived does; a script that cannot start, or exits with a failure, is logged.
 */

import { spawn } from "node:child_process";
import { errnoText } from "./probe.js";

/** Start `argv` for `what` ("notify_up", ...); never throws. */
export type ScriptRunner = (argv: readonly string[], what: string) => void;

export function scriptRunner(log: (msg: string) => void): ScriptRunner {
  return (argv, what) => {
    const prog = argv[0];
    if (!prog) return;
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(prog, argv.slice(1), { stdio: "ignore", detached: true });
    } catch (err) {
      log(`health: ${what} ${prog}: cannot run: ${(err as Error).message}`);
      return;
    }
    child.on("error", (err) => log(`health: ${what} ${prog}: cannot run: ${errnoText(err)}`));
    child.on("exit", (code, sig) => {
      if (code !== 0) log(`health: ${what} ${prog}: ${code === null ? `killed by ${sig}` : `exit ${code}`}`);
    });
    child.unref();
  };
}
