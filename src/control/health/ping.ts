/**
 * PING_CHECK: the server is up when it answers one ICMP echo request within connect_timeout.
 *
 * Node has no ICMP sockets, so the probe runs iputils' `ping -n -q -c 1 -W <timeout>
 * [-I <bindto>] <addr>` as a subprocess (Debian package iputils-ping, already in .ci/run's list):
 * nothing to build at install time, and ping brings its own raw or ICMP-datagram socket.
 * One process per probe is fine at health-check rates. Exit 0 = reply, 1 = no reply.
 */

import { execFile } from "node:child_process";
import { u32ToIp } from "../../lib/addr.js";
import type { PingCheckConfig } from "../config/types.js";
import type { ProbeResult } from "./probe.js";
import { secs } from "./probe.js";

/** The ping program; tests may point it elsewhere. */
export const PING = { program: "ping" };

export function pingArgs(c: PingCheckConfig): string[] {
  const args = ["-n", "-q", "-c", "1", "-W", String(Number(c.timing.connectTimeout.toFixed(3)))];
  if (c.target.bindto !== undefined) args.push("-I", u32ToIp(c.target.bindto));
  args.push(u32ToIp(c.target.addr));
  return args;
}

export function probePing(c: PingCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  const label = `PING_CHECK ${u32ToIp(c.target.addr)}`;
  const timeout = c.timing.connectTimeout;
  return new Promise((resolve) => {
    execFile(
      PING.program,
      pingArgs(c),
      { timeout: timeout * 1000 + 2000, signal, killSignal: "SIGKILL" },
      (err, _stdout, stderr) => {
        if (!err) return resolve({ ok: true, reason: `${label} echo reply` });
        const e = err as Error & { code?: number | string };
        if (e.code === "ENOENT")
          return resolve({ ok: false, reason: `${label} cannot run ping (install iputils-ping)` });
        if (e.name === "AbortError") return resolve({ ok: false, reason: `${label} stopped` });
        if (e.code === 1)
          return resolve({ ok: false, reason: `${label} no echo reply within ${secs(timeout)}` });
        const msg = String(stderr).trim().split("\n")[0] || e.message;
        resolve({ ok: false, reason: `${label} ping failed: ${msg}` });
      },
    );
  });
}
