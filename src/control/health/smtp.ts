/**
 * SMTP_CHECK (keepalived's check_smtp): connect, read the greeting's first line and want status
 * 220, send `HELO helo_name`, want 250, send `QUIT` and want any reply line. A status is three
 * digits followed by a blank or the end of the line (so a "220-" continuation line fails, as in
 * keepalived). Each line must arrive within connect_timeout; a close before it is a failure.
 */

import type { Socket } from "node:net";
import type { SmtpCheckConfig } from "../config/types.js";
import { addrPort, errnoText, openConnection, ProbeFailure, type ProbeResult, secs } from "./probe.js";

/** keepalived's buffer: a line longer than this is cut. */
const LINE_MAX = 511;

/** The status of an SMTP reply line as keepalived reads it, or -1. */
export function smtpStatus(line: string): number {
  const m = /^([0-9]{3})( |$)/.exec(line);
  return m ? Number(m[1]) : -1;
}

/** The next line from `sock` (without its newline); data after it is dropped, as keepalived does. */
function readLine(sock: Socket, timeoutMs: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(
      () => done(new ProbeFailure(`no reply within ${secs(timeoutMs / 1000)}`)),
      timeoutMs,
    );
    const onData = (d: Buffer): void => {
      buf += d.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl >= 0) done(undefined, buf.slice(0, nl));
      else if (buf.length >= LINE_MAX) buf = "";
    };
    const onEnd = (): void => done(new ProbeFailure("connection closed by the server"));
    const onError = (err: Error): void => done(new ProbeFailure(errnoText(err)));
    const onAbort = (): void => done(new ProbeFailure("stopped"));
    function done(err?: Error, line?: string): void {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onEnd);
      sock.off("close", onEnd);
      sock.off("error", onError);
      signal.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve(line ?? "");
    }
    sock.on("data", onData);
    sock.once("end", onEnd);
    sock.once("close", onEnd);
    sock.once("error", onError);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export async function probeSmtp(c: SmtpCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  const label = `SMTP_CHECK ${addrPort(c.target)}`;
  const ms = c.timing.connectTimeout * 1000;
  let sock: Socket | undefined;
  try {
    sock = await openConnection(c.target, ms, signal);
    const banner = await readLine(sock, ms, signal);
    if (smtpStatus(banner) !== 220) return { ok: false, reason: `${label} bad greeting: ${show(banner)}` };
    sock.write(`HELO ${c.heloName}\r\n`);
    const helo = await readLine(sock, ms, signal);
    if (smtpStatus(helo) !== 250) return { ok: false, reason: `${label} bad HELO reply: ${show(helo)}` };
    sock.write("QUIT\r\n");
    await readLine(sock, ms, signal);
    return { ok: true, reason: `${label} greeting 220, HELO 250` };
  } catch (err) {
    return { ok: false, reason: `${label} ${errnoText(err)}` };
  } finally {
    sock?.destroy();
  }
}

function show(line: string): string {
  const t = line.replace(/\r$/, "");
  return `'${t.length > 60 ? `${t.slice(0, 60)}...` : t}'`;
}
