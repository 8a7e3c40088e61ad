/**
 * The external commands the namespace tests run, and the Debian package that provides each.
 *
 * test/setup/tools.ts (vitest globalSetup) installs the missing packages once before the run when
 * it can (root, apt-get); the tests guard with the helpers below, so that on a machine where a
 * command is still missing they skip with a message naming the command and its package instead
 * of failing. A test looks the command up itself, in its own PATH, when it is collected or run.
 */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Every external command the tests (and the labs they drive) exec, with its Debian package. */
export const TOOL_PACKAGES = {
  ip: "iproute2",
  ss: "iproute2",
  sysctl: "procps",
  kill: "procps",
  ping: "iputils-ping",
  arping: "iputils-arping",
  nft: "nftables",
  socat: "socat",
  nginx: "nginx-light",
  tcpdump: "tcpdump",
  curl: "curl",
  chromium: "chromium", // the status page's browser test (puppeteer-core drives it)
  promtool: "prometheus", // the metrics tests: promtool check metrics on a scrape
  prometheus: "prometheus", // the metrics namespace test: a Prometheus server scrapes lvsd
  keepalived: "keepalived", // the VRRP codec test captures a real keepalived's adverts
  hping3: "hping3", // the SYN flood lab test floods the VIP from random sources
  timeout: "coreutils", // bounds the flooder
  haproxy: "haproxy", // the end-to-end bench's HAProxy reference (its config, its smoke test)
  wrk: "wrk", // the end-to-end bench's HTTP load
  iperf3: "iperf3", // the end-to-end bench's UDP load
  taskset: "util-linux", // the end-to-end bench pins generator and forwarder to CPUs
} as const;

export type Tool = keyof typeof TOOL_PACKAGES;

export const ALL_TOOLS = Object.keys(TOOL_PACKAGES) as Tool[];

/** True when `cmd` is an executable file in a directory of PATH (what exec would find). */
export function onPath(cmd: string, path = process.env.PATH ?? ""): boolean {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const f = join(dir, cmd);
    try {
      if (!statSync(f).isFile()) continue;
      accessSync(f, constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The commands of `tools` that are not on PATH. */
export function missingTools(tools: readonly Tool[]): Tool[] {
  return tools.filter((t) => !onPath(t));
}

/** The Debian packages that provide `tools`, each once, in order. */
export function packagesFor(tools: readonly Tool[]): string[] {
  return [...new Set(tools.map((t) => TOOL_PACKAGES[t]))];
}

/** "nft (Debian package nftables), ping (Debian package iputils-ping)". */
export function describeTools(tools: readonly Tool[]): string {
  return tools.map((t) => `${t} (Debian package ${TOOL_PACKAGES[t]})`).join(", ");
}

/** Why something needing `tools` must skip: "needs nft (Debian package nftables)", or "" when all are there. */
export function need(...tools: Tool[]): string {
  const m = missingTools(tools);
  return m.length === 0 ? "" : `needs ${describeTools(m)}`;
}

/**
 * At collection, for a whole describe block: true when every one of `tools` is on PATH;
 * otherwise prints "skipping <what>: needs nft (Debian package nftables)" and returns false.
 */
export function haveTools(what: string, ...tools: Tool[]): boolean {
  const why = need(...tools);
  if (why !== "") console.warn(`skipping ${what}: ${why}`);
  return why === "";
}

/**
 * Inside one test: skip it, with a note naming each missing command and its package (the
 * reporter shows it next to the test), when one of `tools` is not on PATH.
 */
export function skipWithout(ctx: { skip: (note?: string) => never }, ...tools: Tool[]): void {
  const why = need(...tools);
  if (why !== "") ctx.skip(why);
}
