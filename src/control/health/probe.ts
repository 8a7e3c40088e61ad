/**
 * What every checker shares: the result type, TCP (and TLS) connection set-up with a deadline
 * and an abort signal, and the wording of reasons.
 *
 * Probes use the host's own sockets, so they leave from the network namespace lvsd runs in,
 * from the address the kernel's routing picks there (or `bindto`) — never through lvsd's own
 * data path. See docs/health.md.
 */

import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { u32ToIp } from "../../lib/addr.js";
import type { ProbeTarget } from "../config/types.js";

export interface ProbeResult {
  ok: boolean;
  /** What happened, e.g. "HTTP_GET 192.168.7.21:80 status 503, want 200". */
  reason: string;
  /** misc_dynamic: the weight the script asked for. */
  weight?: number;
}

/** A probe failure with its reason (without the checker's label). */
export class ProbeFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProbeFailure";
  }
}

const ERRNO_TEXT: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ETIMEDOUT: "connection timed out",
  EADDRNOTAVAIL: "source address not available (bindto)",
  EADDRINUSE: "source port in use (bind_port)",
  EPIPE: "connection closed while sending",
  EACCES: "permission denied",
  ENOENT: "no such file",
};

/** A short reason for a socket error. */
export function errnoText(err: unknown): string {
  if (err instanceof ProbeFailure) return err.message;
  const e = err as NodeJS.ErrnoException;
  return (e.code && ERRNO_TEXT[e.code]) ?? e.message ?? String(err);
}

/** "5s", "0.5s". */
export function secs(s: number): string {
  return `${Number(s.toFixed(3))}s`;
}

export function addrPort(t: ProbeTarget): string {
  return `${u32ToIp(t.addr)}:${t.port}`;
}

/**
 * Connect to `t` (over TLS when `tls` is given, certificates not verified, as keepalived's
 * SSL_GET without a CA), within `timeoutMs`. Rejects with a ProbeFailure.
 */
export function openConnection(
  t: ProbeTarget,
  timeoutMs: number,
  signal: AbortSignal,
  tls?: { servername?: string },
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new ProbeFailure("stopped"));
      return;
    }
    const base = {
      host: u32ToIp(t.addr),
      port: t.port,
      ...(t.bindto !== undefined ? { localAddress: u32ToIp(t.bindto) } : {}),
      ...(t.bindPort !== undefined ? { localPort: t.bindPort } : {}),
    };
    const sock: Socket = tls
      ? tlsConnect({
          ...base,
          rejectUnauthorized: false,
          ...(tls.servername && isIP(tls.servername) === 0 ? { servername: tls.servername } : {}),
        })
      : netConnect(base);
    const onAbort = (): void => finish(new ProbeFailure("stopped"));
    const timer = setTimeout(
      () => finish(new ProbeFailure(`timeout after ${secs(timeoutMs / 1000)}`)),
      timeoutMs,
    );
    const onError = (err: Error): void => finish(new ProbeFailure(errnoText(err)));
    const onConnect = (): void => finish();
    function finish(err?: Error): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      sock.off("error", onError);
      sock.off(tls ? "secureConnect" : "connect", onConnect);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(sock);
    }
    signal.addEventListener("abort", onAbort, { once: true });
    sock.once(tls ? "secureConnect" : "connect", onConnect);
    sock.once("error", onError);
  });
}
