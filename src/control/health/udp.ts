/**
 * UDP_CHECK (keepalived's check_udp): send `payload` (16 random bytes when none is given) on a
 * connected UDP socket and wait connect_timeout.
 *
 * - Without `require_reply` the server is up unless an ICMP error comes back (port or host
 *   unreachable: the kernel reports it on the connected socket) — silence is success.
 * - With `require_reply` a reply must arrive, its length within min_reply_length ..
 *   max_reply_length, and, when a hex pattern is given, its first bytes must match the pattern
 *   (X nibbles match anything) up to the shorter of the two.
 */

import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { u32ToIp } from "../../lib/addr.js";
import type { UdpCheckConfig } from "../config/types.js";
import { addrPort, errnoText, type ProbeResult, secs } from "./probe.js";

/** Where a reply first differs from the pattern, or -1. */
export function replyMismatch(reply: Uint8Array, pattern: { bytes: Uint8Array; mask: Uint8Array }): number {
  const n = Math.min(reply.length, pattern.bytes.length);
  for (let i = 0; i < n; i++) {
    const m = pattern.mask[i] ?? 0xff;
    if (((reply[i] ?? 0) & m) !== ((pattern.bytes[i] ?? 0) & m)) return i;
  }
  return -1;
}

export function probeUdp(c: UdpCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  const label = `UDP_CHECK ${addrPort(c.target)}`;
  const timeout = c.timing.connectTimeout;
  return new Promise((resolve) => {
    const sock = createSocket("udp4");
    let settled = false;
    const timer = setTimeout(() => {
      if (c.requireReply) finish(false, `no reply within ${secs(timeout)}`);
      else finish(true, `no error within ${secs(timeout)}`);
    }, timeout * 1000);
    const onAbort = (): void => finish(false, "stopped");
    signal.addEventListener("abort", onAbort, { once: true });

    function finish(ok: boolean, detail: string): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      try {
        sock.close();
      } catch {
        // already closed
      }
      resolve({ ok, reason: `${label} ${detail}` });
    }

    sock.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ECONNREFUSED") finish(false, "port unreachable");
      else finish(false, errnoText(err));
    });
    sock.on("message", (msg: Buffer) => {
      if (!c.requireReply) return finish(true, `reply (${msg.length} bytes)`);
      if (msg.length < c.minReplyLength || msg.length > c.maxReplyLength) {
        return finish(false, `reply of ${msg.length} bytes, want ${c.minReplyLength}..${c.maxReplyLength}`);
      }
      if (c.reply) {
        const at = replyMismatch(msg, c.reply);
        if (at >= 0) return finish(false, `reply differs from require_reply at byte ${at}`);
      }
      finish(true, `reply (${msg.length} bytes)`);
    });
    const connect = (): void => {
      sock.connect(c.target.port, u32ToIp(c.target.addr), () => {
        const payload = c.payload.length > 0 ? c.payload : randomBytes(16);
        sock.send(payload, (err) => {
          if (err) finish(false, errnoText(err));
        });
      });
    };
    if (c.target.bindto !== undefined || c.target.bindPort !== undefined) {
      sock.bind(
        {
          port: c.target.bindPort ?? 0,
          ...(c.target.bindto !== undefined ? { address: u32ToIp(c.target.bindto) } : {}),
        },
        connect,
      );
    } else connect();
  });
}
