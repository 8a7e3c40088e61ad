/**
 * TCP_CHECK: the server is up when a TCP connection to it completes within connect_timeout
 * (keepalived's check_tcp). The connection is closed at once; nothing is sent.
 */

import type { TcpCheckConfig } from "../config/types.js";
import { addrPort, errnoText, openConnection, type ProbeResult } from "./probe.js";

export async function probeTcp(c: TcpCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  const label = `TCP_CHECK ${addrPort(c.target)}`;
  try {
    const sock = await openConnection(c.target, c.timing.connectTimeout * 1000, signal);
    sock.destroy();
    return { ok: true, reason: `${label} connected` };
  } catch (err) {
    return { ok: false, reason: `${label} ${errnoText(err)}` };
  }
}
