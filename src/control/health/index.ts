/**
 * The checkers by type: one probe function per keepalived checker, each in its own file.
 */

import { u32ToIp } from "../../lib/addr.js";
import type { CheckerConfig } from "../config/types.js";
import { probeDns } from "./dns.js";
import { probeFile } from "./file.js";
import { probeHttp } from "./http.js";
import { probeMisc } from "./misc.js";
import { probePing } from "./ping.js";
import type { ProbeResult } from "./probe.js";
import { probeSmtp } from "./smtp.js";
import { probeTcp } from "./tcp.js";
import { probeUdp } from "./udp.js";

/** Run one probe of checker `c`. Never rejects: failures are results. */
export type ProbeFn = (c: CheckerConfig, signal: AbortSignal) => Promise<ProbeResult>;

export const probe: ProbeFn = (c, signal) => {
  switch (c.type) {
    case "TCP_CHECK":
      return probeTcp(c, signal);
    case "HTTP_GET":
    case "SSL_GET":
      return probeHttp(c, signal);
    case "PING_CHECK":
      return probePing(c, signal);
    case "UDP_CHECK":
      return probeUdp(c, signal);
    case "MISC_CHECK":
      return probeMisc(c, signal);
    case "SMTP_CHECK":
      return probeSmtp(c, signal);
    case "DNS_CHECK":
      return probeDns(c, signal);
    case "FILE_CHECK":
      return probeFile(c, signal);
    case "UNRUNNABLE":
      return Promise.resolve({ ok: false, reason: `${c.keyword}: ${c.why} (held down)` });
    default: {
      const never: never = c;
      return Promise.resolve({ ok: false, reason: `unknown checker ${(never as CheckerConfig).type}` });
    }
  }
};

/** A short description for listings: "HTTP_GET :80/health", "MISC_CHECK check.sh". */
export function checkerLabel(c: CheckerConfig): string {
  switch (c.type) {
    case "TCP_CHECK":
    case "UDP_CHECK":
    case "SMTP_CHECK":
      return `${c.type} ${u32ToIp(c.target.addr)}:${c.target.port}`;
    case "DNS_CHECK":
      return `${c.type} ${u32ToIp(c.target.addr)}:${c.target.port} ${c.name || "."}`;
    case "FILE_CHECK":
      return `${c.type} ${c.trackFile}`;
    case "UNRUNNABLE":
      return `${c.keyword} (cannot run)`;
    case "PING_CHECK":
      return `${c.type} ${u32ToIp(c.target.addr)}`;
    case "HTTP_GET":
    case "SSL_GET":
      return `${c.type} ${u32ToIp(c.target.addr)}:${c.target.port}${c.urls.map((u) => u.path).join(",")}`;
    case "MISC_CHECK": {
      const prog = c.argv[0] ?? "";
      return `${c.type} ${prog.slice(prog.lastIndexOf("/") + 1)}${c.dynamic ? " (dynamic)" : ""}`;
    }
  }
}
