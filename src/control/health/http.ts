/**
 * HTTP_GET and SSL_GET (keepalived's check_http): for each `url`, a GET over a new connection;
 * the server is up when every url answers within connect_timeout with an accepted status code
 * (default 200-299) and, when a `digest` is given, a body whose MD5 matches.
 *
 * The request is HTTP/1.0 (keepalived's default), 1.0 with `Connection: close` (1.0C) or
 * HTTP/1.1 with `Connection: close`. Host is the url's, the real server's or the virtual
 * server's `virtualhost`, else the address (with the port when it is not 80, or 443 for TLS).
 * A body is read only when a digest is wanted: to the end of the connection, to
 * Content-Length, or through chunked encoding, at most MAX_BODY bytes.
 */

import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { u32ToIp } from "../../lib/addr.js";
import type { HttpCheckConfig, UrlCheck } from "../config/types.js";
import { addrPort, errnoText, openConnection, ProbeFailure, type ProbeResult, secs } from "./probe.js";

/** Largest body read for a digest. */
export const MAX_BODY = 16 * 1024 * 1024;
/** Largest header block accepted. */
export const MAX_HEADER = 64 * 1024;

export const USER_AGENT = "lvsd-health (lvs-ts)";

/** The GET request for `url` (exported for tests). */
export function buildRequest(c: HttpCheckConfig, url: UrlCheck): string {
  const defPort = c.type === "SSL_GET" ? 443 : 80;
  const host =
    url.virtualhost ?? `${u32ToIp(c.target.addr)}${c.target.port === defPort ? "" : `:${c.target.port}`}`;
  const version = c.protocol === "1.1" ? "1.1" : "1.0";
  const close = c.protocol === "1.0" ? "" : "Connection: close\r\n";
  return `GET ${url.path} HTTP/${version}\r\nUser-Agent: ${USER_AGENT}\r\nHost: ${host}\r\n${close}\r\n`;
}

/** "200-299", "200", "200-299,302". */
export function statusText(ranges: UrlCheck["status"]): string {
  return ranges.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(",");
}

export interface HttpReply {
  status: number;
  headers: Map<string, string>;
  /** Set when the body was read (a digest was wanted). */
  body?: Buffer;
}

/**
 * Decode a chunked body. `complete` is false while the terminating chunk has not arrived;
 * undefined is returned for malformed input.
 */
export function decodeChunked(raw: Buffer): { body: Buffer; complete: boolean } | undefined {
  const parts: Buffer[] = [];
  let off = 0;
  for (;;) {
    const eol = raw.indexOf("\r\n", off);
    if (eol < 0) return { body: Buffer.concat(parts), complete: false };
    const sizeText = raw.subarray(off, eol).toString("latin1").split(";")[0]?.trim() ?? "";
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) return undefined;
    const size = Number.parseInt(sizeText, 16);
    const start = eol + 2;
    if (size === 0) return { body: Buffer.concat(parts), complete: true };
    if (raw.length < start + size + 2) return { body: Buffer.concat(parts), complete: false };
    parts.push(raw.subarray(start, start + size));
    off = start + size + 2;
  }
}

/**
 * Read one reply from `sock` within `timeoutMs` (what is left of the probe's connect_timeout,
 * `whole` being all of it, for the message); the body only when `wantBody`.
 */
export function readReply(
  sock: Socket,
  timeoutMs: number,
  whole: number,
  wantBody: boolean,
  signal: AbortSignal,
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    // Until the header is complete the bytes pile up in `chunks`; then the body's go to `body`,
    // and are joined only when the body may be complete (no quadratic copying of large bodies).
    let chunks: Buffer[] = [];
    let size = 0;
    let head: { status: number; headers: Map<string, string> } | undefined;
    const body: Buffer[] = [];
    let bodySize = 0;
    let tail = ""; // the last bytes of the body, to spot the end of a chunked body
    const timer = setTimeout(
      () => done(new ProbeFailure(`timeout after ${secs(whole / 1000)}`)),
      Math.max(0, timeoutMs),
    );
    const onAbort = (): void => done(new ProbeFailure("stopped"));
    signal.addEventListener("abort", onAbort, { once: true });

    function done(err?: Error, reply?: HttpReply): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      sock.removeAllListeners("data");
      sock.removeAllListeners("end");
      sock.removeAllListeners("error");
      sock.on("error", () => {});
      sock.destroy();
      if (err) reject(err);
      else if (reply) resolve(reply);
    }

    function addBody(d: Buffer): void {
      if (d.length === 0) return;
      body.push(d);
      bodySize += d.length;
      tail = (tail + d.subarray(Math.max(0, d.length - 16)).toString("latin1")).slice(-16);
    }

    function tryBody(ended: boolean): void {
      const h = head;
      if (!h) return;
      const te = h.headers.get("transfer-encoding")?.toLowerCase() ?? "";
      const cl = h.headers.get("content-length");
      const reply = (b: Buffer): HttpReply => ({ status: h.status, headers: h.headers, body: b });
      if (te.includes("chunked")) {
        if (!ended && !tail.includes("0\r\n\r\n")) return; // the last chunk has not come
        const d = decodeChunked(Buffer.concat(body));
        if (!d) done(new ProbeFailure("malformed chunked body"));
        else if (d.complete) done(undefined, reply(d.body));
        else if (ended) done(new ProbeFailure("connection closed before the end of the chunked body"));
        return;
      }
      if (cl !== undefined && /^[0-9]+$/.test(cl)) {
        const n = Number(cl);
        if (bodySize >= n) done(undefined, reply(Buffer.concat(body).subarray(0, n)));
        else if (ended) done(new ProbeFailure(`connection closed after ${bodySize} of ${n} body bytes`));
        return;
      }
      if (ended) done(undefined, reply(Buffer.concat(body)));
    }

    function parseHead(): void {
      const all = Buffer.concat(chunks);
      chunks = [all];
      let end = all.indexOf("\r\n\r\n");
      let sepLen = 4;
      if (end < 0) {
        end = all.indexOf("\n\n");
        sepLen = 2;
      }
      if (end < 0) {
        if (all.length > MAX_HEADER) done(new ProbeFailure(`reply header larger than ${MAX_HEADER} bytes`));
        return;
      }
      const lines = all.subarray(0, end).toString("latin1").split(/\r?\n/);
      const m = /^HTTP\/\d\.\d\s+(\d{3})/.exec(lines[0] ?? "");
      if (!m) {
        done(new ProbeFailure(`not an HTTP reply: '${(lines[0] ?? "").slice(0, 40)}'`));
        return;
      }
      const headers = new Map<string, string>();
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
      }
      head = { status: Number(m[1]), headers };
      if (!wantBody) {
        done(undefined, { status: head.status, headers });
        return;
      }
      addBody(all.subarray(end + sepLen));
      chunks = [];
      tryBody(false);
    }

    sock.on("data", (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY + MAX_HEADER) {
        done(new ProbeFailure(`reply larger than ${MAX_BODY} bytes`));
        return;
      }
      if (head) {
        addBody(d);
        tryBody(false);
        return;
      }
      chunks.push(d);
      parseHead();
    });
    sock.on("end", () => {
      if (!head) {
        parseHead();
        if (!head) {
          done(
            new ProbeFailure(size === 0 ? "connection closed without a reply" : "incomplete reply header"),
          );
        }
        return;
      }
      tryBody(true);
    });
    sock.on("error", (err) => done(new ProbeFailure(errnoText(err))));
  });
}

async function checkUrl(c: HttpCheckConfig, url: UrlCheck, signal: AbortSignal): Promise<ProbeResult> {
  const label = `${c.type} ${addrPort(c.target)}${url.path === "/" ? "" : url.path}`;
  const timeoutMs = c.timing.connectTimeout * 1000;
  const deadline = Date.now() + timeoutMs;
  try {
    const sock = await openConnection(
      c.target,
      timeoutMs,
      signal,
      c.type === "SSL_GET"
        ? url.virtualhost !== undefined
          ? { servername: url.virtualhost }
          : {}
        : undefined,
    );
    sock.write(buildRequest(c, url));
    const reply = await readReply(sock, deadline - Date.now(), timeoutMs, url.digest !== undefined, signal);
    const accepted = url.status.some(([lo, hi]) => reply.status >= lo && reply.status <= hi);
    if (!accepted)
      return { ok: false, reason: `${label} status ${reply.status}, want ${statusText(url.status)}` };
    if (url.digest !== undefined) {
      const got = createHash("md5")
        .update(reply.body ?? Buffer.alloc(0))
        .digest("hex");
      if (got !== url.digest) return { ok: false, reason: `${label} digest ${got}, want ${url.digest}` };
      return { ok: true, reason: `${label} status ${reply.status}, digest ok` };
    }
    return { ok: true, reason: `${label} status ${reply.status}` };
  } catch (err) {
    return { ok: false, reason: `${label} ${errnoText(err)}` };
  }
}

export async function probeHttp(c: HttpCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  let last: ProbeResult = { ok: false, reason: `${c.type} ${addrPort(c.target)} no url` };
  for (const url of c.urls) {
    last = await checkUrl(c, url, signal);
    if (!last.ok) return last;
  }
  return last;
}
