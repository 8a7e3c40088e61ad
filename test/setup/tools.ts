/**
 * vitest globalSetup: runs once in the main process, before any test worker starts, and makes
 * sure the external commands the namespace tests exec are there (test/support/tools.ts lists
 * them with their Debian packages).
 *
 * - Nothing missing: silent.
 * - Root on Linux with apt-get, and LVS_TEST_NO_INSTALL unset: installs the missing packages
 *   (`apt-get update`, then `apt-get install -y --no-install-recommends ...`, noninteractive,
 *   each step under a timeout), saying so in one line. Services those packages ship (nginx) are
 *   not started: a temporary /usr/sbin/policy-rc.d answers 101 during the install unless the
 *   machine already has one.
 * - Otherwise, or when the install fails: installs nothing and prints one line naming each
 *   missing command and its package; the tests that need them skip, saying the same.
 *
 * It never fails the run by itself, unless LVS_TEST_REQUIRE_TOOLS=1 (CI: .ci/run) asks it to
 * when a command is still missing afterwards.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { ALL_TOOLS, describeTools, missingTools, onPath, packagesFor, type Tool } from "../support/tools.js";

const UPDATE_TIMEOUT_MS = 120_000;
const INSTALL_TIMEOUT_MS = 300_000;
/** How long apt may wait for another apt/dpkg to release its lock (inside the timeouts above). */
const LOCK_WAIT_S = 60;

const POLICY_RC = "/usr/sbin/policy-rc.d";
const POLICY_MARK = "# lvs-ts test/setup/tools.ts";

const say = (line: string): void => console.log(`test tools: ${line}`);

export default function setup(): void {
  let missing: Tool[] = [];
  try {
    missing = ensureTools();
  } catch (err) {
    // never fail the run by ourselves: the tests skip what they cannot run
    missing = missingTools(ALL_TOOLS);
    say(`setup error ignored: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (missing.length > 0 && process.env.LVS_TEST_REQUIRE_TOOLS === "1") {
    throw new Error(`LVS_TEST_REQUIRE_TOOLS=1 and still missing: ${describeTools(missing)}`);
  }
}

/** Install what is missing when we may; returns what is still missing. */
function ensureTools(): Tool[] {
  const missing = missingTools(ALL_TOOLS);
  if (missing.length === 0) return [];
  const pkgs = packagesFor(missing);
  const refusal = whyNotInstall();
  if (refusal !== "") {
    say(
      `missing ${describeTools(missing)}; not installing (${refusal}), the tests that need them are skipped` +
        ` (as root: apt-get install ${pkgs.join(" ")})`,
    );
    return missing;
  }
  say(
    `installing Debian packages ${pkgs.join(" ")} for ${missing.join(", ")} with apt-get` +
      " (LVS_TEST_NO_INSTALL=1 skips this)",
  );
  const t0 = Date.now();
  const failure = aptInstall(pkgs);
  const still = missingTools(missing);
  if (still.length > 0) {
    say(
      `${failure || "apt-get install did not provide them"}; still missing ${describeTools(still)},` +
        " the tests that need them are skipped",
    );
  } else {
    say(`installed ${pkgs.join(" ")} in ${Math.round((Date.now() - t0) / 1000)} s`);
  }
  return still;
}

/** "" when we may install with apt, else the reason we do not. */
function whyNotInstall(): string {
  if (process.env.LVS_TEST_NO_INSTALL === "1") return "LVS_TEST_NO_INSTALL=1";
  if (process.platform !== "linux") return "not Linux";
  if (process.getuid?.() !== 0) return "not root";
  if (!onPath("apt-get") || !onPath("dpkg")) return "no apt-get";
  return "";
}

/** apt-get update, then install `pkgs`; "" on success, else what went wrong. */
function aptInstall(pkgs: string[]): string {
  const releasePolicy = holdServices();
  try {
    const update = apt(["update"], UPDATE_TIMEOUT_MS);
    // a failed update (one unreachable mirror) may still leave usable lists; a hung one does not
    if (update.startsWith("timed out")) return `apt-get update ${update}`;
    const install = apt(["install", "-y", "--no-install-recommends", ...pkgs], INSTALL_TIMEOUT_MS);
    if (install !== "")
      return `apt-get install ${install}${update !== "" ? ` (apt-get update ${update})` : ""}`;
    return "";
  } finally {
    releasePolicy();
  }
}

/** Run apt-get quietly and noninteractively; "" on success, else a short reason. */
function apt(args: string[], timeoutMs: number): string {
  const r = spawnSync("apt-get", ["-qq", "-o", `DPkg::Lock::Timeout=${LOCK_WAIT_S}`, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: timeoutMs,
    maxBuffer: 16 * 1024 * 1024,
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ETIMEDOUT")
    return `timed out after ${timeoutMs / 1000} s`;
  if (r.error) return `failed: ${r.error.message}`;
  if (r.status === 0) return "";
  const lines = `${r.stderr ?? ""}\n${r.stdout ?? ""}`
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const first = lines.find((l) => l.startsWith("E:")) ?? lines[0];
  return `exited with ${r.status ?? r.signal}${first ? `: ${first}` : ""}`;
}

/**
 * Keep package scripts from starting services (nginx on the host's port 80) while we install:
 * write a policy-rc.d that answers 101 ("action forbidden", see invoke-rc.d(8)) unless the
 * machine has its own, and remove it afterwards. One of ours left by an interrupted run is
 * removed first.
 */
function holdServices(): () => void {
  try {
    if (existsSync(POLICY_RC) && readFileSync(POLICY_RC, "utf8").includes(POLICY_MARK)) rmSync(POLICY_RC);
    if (existsSync(POLICY_RC)) return () => {};
    writeFileSync(
      POLICY_RC,
      `#!/bin/sh\n${POLICY_MARK}: do not start services while the tests install their tools\nexit 101\n`,
      { mode: 0o755 },
    );
  } catch {
    return () => {};
  }
  return () => rmSync(POLICY_RC, { force: true });
}
