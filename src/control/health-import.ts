/**
 * lvsadm's two lvs-ts options for health checks and keepalived.conf (none of them is an
 * ipvsadm option, so nothing clashes):
 *
 *   lvsadm --health          each dest's checks: state, last result, last change, reason
 *   lvsadm --import FILE     load a keepalived.conf into the running lvsd (a reload: only what
 *                            changed is touched); on an error nothing changes and the exit
 *                            status is 1. FILE is taken from lvsadm's working directory.
 *
 * They are parsed before ipvsadm's options (src/control/ipvsadm.ts calls parseExtension first)
 * and run against lvsd's health manager, which lvsd hands to the control server in
 * ExecOptions.health (src/control/commands.ts). The health checks themselves live in
 * src/control/health, the keepalived.conf parser in src/control/config.
 */

import { resolve } from "node:path";
import type { ExecResult, Parsed } from "./types.js";

/** What the control plane needs from lvsd's health manager (src/control/health/manager.ts). */
export interface HealthControl {
  statusText(): string;
  importFile(path: string): ExecResult;
}

export type ExtensionCommand = { kind: "health" } | { kind: "import"; file: string };

function refuse(message: string): Parsed<ExtensionCommand> {
  return { ok: false, error: { message, code: 2, fatal: true } };
}

/**
 * `--health` or `--import FILE` as the first option; undefined for every other command line.
 * The file name is made absolute here, so lvsadm sends lvsd a path that does not depend on
 * lvsd's working directory.
 */
export function parseExtension(
  argv: readonly string[],
  prog: string,
  inRestore = false,
): Parsed<ExtensionCommand> | undefined {
  const first = argv[0] ?? "";
  if (first !== "--health" && first !== "--import" && !first.startsWith("--import=")) return undefined;
  const name = first.startsWith("--import") ? "--import" : "--health";
  if (inRestore) return refuse(`${prog}: ${name} cannot be used inside a restore (-R)`);
  if (name === "--health") {
    if (argv.length > 1) return refuse(`${prog}: --health takes no other option (got '${argv[1]}')`);
    return { ok: true, cmd: { kind: "health" } };
  }
  const glued = first.startsWith("--import=");
  const file = glued ? first.slice("--import=".length) : argv[1];
  const rest = argv.slice(glued ? 1 : 2);
  if (!file) return refuse(`${prog}: --import needs a keepalived.conf file`);
  if (rest.length > 0) return refuse(`${prog}: --import takes one file (got '${rest[0]}' too)`);
  return { ok: true, cmd: { kind: "import", file: resolve(file) } };
}

/** Run an extension command against lvsd's health manager. */
export function runExtension(
  cmd: ExtensionCommand,
  health: HealthControl | undefined,
  prog: string,
): ExecResult {
  if (!health) {
    return { stdout: "", stderr: `${prog}: --${cmd.kind}: this lvsd has no health manager\n`, code: 1 };
  }
  if (cmd.kind === "health") return { stdout: health.statusText(), stderr: "", code: 0 };
  return health.importFile(cmd.file);
}
