/**
 * lvsd's control socket: a Unix stream socket speaking newline-delimited JSON.
 *
 *   request  (one line):  {"argv": ["-Ln"], "stdin": "..."}      stdin only for -R
 *   response (one line):  {"stdout": "...", "stderr": "...", "code": 0}
 *
 * A connection may send several requests; each is answered in order. Commands are synchronous
 * JavaScript run from the socket's data callback, so they run between two batches of the data
 * path, never in the middle of one.
 *
 * The socket file is created with mode 0600 (owner only: the control socket changes the director)
 * in a directory created with mode 0700 when missing. Starting is refused when another live lvsd
 * answers on the path; a socket file nobody answers on (left by a crash) is removed first, and a
 * path that is not a socket is never removed.
 *
 * With a `log`, every command is an event (`control.command`, docs/observability.md "Logs"):
 * at info when it changes the director (-A -E -D -a -e -d -C -R -Z --set --import --add-laddr
 * --del-laddr, the sync-daemon commands), at debug when it only reads (listings, -S, --drops,
 * --links, --health, --get-laddr, -h, -v); with the argv, the exit status and who sent it: the
 * peer's pid, uid and gid (SO_PEERCRED, through the native addon; left out when unavailable).
 */

import { chmod, lstat, mkdir, unlink } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { loadNative } from "../datapath/io/native.js";
import { DEFAULT_CONTROL_PATH, type ExecOptions, type ExecResult, run } from "./commands.js";
import { splitExtensions } from "./extensions.js";
import { parseArgs } from "./ipvsadm.js";
import { systemServices } from "./netdb.js";
import type { EventLog } from "./observe/log.js";
import type { ControlTarget } from "./target.js";

export interface ControlRequest {
  argv: string[];
  stdin?: string;
}

export type ControlServerErrorCode = "EADDRINUSE" | "ENOTSOCK" | "EACCES" | "EIO";

/** Why the control server could not start; `code` is stable. */
export class ControlServerError extends Error {
  readonly code: ControlServerErrorCode;
  constructor(code: ControlServerErrorCode, message: string) {
    super(message);
    this.name = "ControlServerError";
    this.code = code;
  }
}

export interface ControlServerOptions extends ExecOptions {
  /** Largest request line accepted, in bytes (a restore's stdin travels in it). Default 64 MiB. */
  maxRequestBytes?: number;
  /** Called after each request ran, with the peer when known. */
  onRequest?: (req: ControlRequest, res: ExecResult, peer: PeerCred | undefined) => void;
  /** Log every command: changes at info, reads at debug (see the file comment). */
  log?: EventLog;
  /** How long to wait for an existing socket to answer before calling it stale. Default 1000 ms. */
  probeTimeoutMs?: number;
}

export interface ControlServer {
  readonly path: string;
  /** Stop listening, drop open connections and remove the socket file. */
  close(): Promise<void>;
}

const DEFAULT_MAX_REQUEST = 64 * 1024 * 1024;

/** Who sent a request: the process at the other end of the connection (SO_PEERCRED). */
export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * The credentials of the process that connected `sock` (a Unix socket lvsd accepted), or
 * undefined when they cannot be had (no native addon, not a Unix socket, already closed). Node
 * does not expose SO_PEERCRED; the addon reads it from the descriptor of the accepted socket.
 */
export function socketPeer(sock: Socket): PeerCred | undefined {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return undefined;
  try {
    const c = loadNative().peerCred(fd);
    return { pid: c.pid, uid: c.uid, gid: c.gid };
  } catch {
    return undefined;
  }
}

/** Commands that only read the director. Every other command, including refused ones, changes it. */
// --trace-status only reads (lvsadm --trace polls it every 200 ms); --trace and --trace-stop are
// logged at info: they start and end a file that lvsd writes.
const READ_ONLY = new Set<string>(["help", "version", "list", "save", "health", "vrrp", "trace-status"]);
/** Options that make a command a change, for command lines the parser refuses. */
const CHANGE_WORDS = new Set<string>([
  "--add-service",
  "--edit-service",
  "--delete-service",
  "--clear",
  "--restore",
  "--add-server",
  "--edit-server",
  "--delete-server",
  "--zero",
  "--set",
  "--start-daemon",
  "--stop-daemon",
  "--import",
  "--add-laddr",
  "--del-laddr",
  "--trace",
  "--trace-stop",
]);

/**
 * Whether a command line changes the director (lvsd logs it at info) rather than only reading
 * it. A command line the parser refuses counts as a change when it names a changing command
 * (`-A ... -s nosuch`): someone tried to change the director.
 */
export function isChange(argv: readonly string[], opts: ExecOptions = {}): boolean {
  const ext = splitExtensions(argv);
  if (!ext.error) {
    if (ext.laddr) return ext.laddr.op !== "get";
    if (ext.drops || ext.links || ext.sync) return false;
    if (ext.sysctl !== undefined) return ext.sysctl?.includes("=") ?? false;
    const parsed = parseArgs(ext.argv, { services: opts.services ?? systemServices() });
    if (parsed.ok) return !READ_ONLY.has(parsed.cmd.kind);
  }
  return argv.some(
    (a) => CHANGE_WORDS.has(a.split("=")[0]!) || (/^-[A-Za-z]/.test(a) && "AEDCRaedZ".includes(a[1]!)),
  );
}

/** argv as one line of text: words with blanks or quotes are quoted (JSON style). */
function argvText(argv: readonly string[]): string {
  return argv.map((a) => (a === "" || /[\s"'\\]/.test(a) ? JSON.stringify(a) : a)).join(" ");
}

function peerText(p: PeerCred | undefined): string {
  return p ? ` (pid ${p.pid} uid ${p.uid} gid ${p.gid})` : "";
}

/** The `control.command` event of one request (see the file comment). */
function logCommand(
  log: EventLog,
  req: ControlRequest,
  res: ExecResult,
  peer: PeerCred | undefined,
  change: boolean,
): void {
  const fields = {
    event: "control.command",
    argv: req.argv,
    code: res.code,
    change,
    ...(peer ? { peer } : {}),
    ...(req.stdin !== undefined ? { stdinBytes: Buffer.byteLength(req.stdin) } : {}),
    ...(res.code !== 0 && res.stderr ? { error: res.stderr.trim().slice(0, 1000) } : {}),
  };
  const msg = `control: ${argvText(req.argv)}: exit ${res.code}${peerText(peer)}`;
  if (change) log.info(fields, msg);
  else log.debug(fields, msg);
}

/** Whether something accepts connections on `path` (a live lvsd). */
function probe(path: string, timeoutMs: number): Promise<"live" | "stale" | NodeJS.ErrnoException> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve("live"); // it accepted the path but did not complete: someone holds it
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.destroy();
      resolve("live");
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === "ECONNREFUSED" || err.code === "ENOENT" ? "stale" : err);
    });
  });
}

/** Make sure `path` is free: refuse a live lvsd or a non-socket, remove a stale socket. */
async function claimPath(path: string, timeoutMs: number): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new ControlServerError("ENOTSOCK", `lvsd: ${path} exists and is not a socket; not replacing it`);
  }
  const state = await probe(path, timeoutMs);
  if (state === "live") {
    throw new ControlServerError(
      "EADDRINUSE",
      `lvsd: another lvsd is already running: its control socket ${path} accepts connections`,
    );
  }
  if (state !== "stale") {
    throw new ControlServerError("EACCES", `lvsd: cannot check control socket ${path}: ${state.message}`);
  }
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "ENOENT") throw err;
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off("listening", onListening);
      reject(
        err.code === "EADDRINUSE"
          ? new ControlServerError("EADDRINUSE", `lvsd: another lvsd is already running: ${path} is in use`)
          : err,
      );
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    // Create the socket file without group/other permissions from the start (bind happens inside
    // listen(), synchronously); chmod below makes sure of 0600 where umask cannot be used.
    let old: number | undefined;
    try {
      old = process.umask(0o177);
    } catch {
      old = undefined; // worker threads cannot change the umask
    }
    try {
      server.listen(path);
    } finally {
      if (old !== undefined) process.umask(old);
    }
  });
}

function parseRequest(line: string): ControlRequest | string {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    return `request is not JSON: ${(err as Error).message}`;
  }
  if (typeof v !== "object" || v === null) return "request is not an object";
  const o = v as Record<string, unknown>;
  if (!Array.isArray(o.argv) || !o.argv.every((a) => typeof a === "string")) {
    return "request needs argv: an array of strings";
  }
  if (o.stdin !== undefined && typeof o.stdin !== "string") return "request stdin must be a string";
  return o.stdin === undefined ? { argv: o.argv as string[] } : { argv: o.argv as string[], stdin: o.stdin };
}

/** Answer one request line from `peer`. Never throws: a failure becomes a reply. */
export function handleRequestLine(
  line: string,
  target: ControlTarget,
  opts: ControlServerOptions = {},
  peer?: PeerCred,
): ExecResult {
  const req = parseRequest(line);
  if (typeof req === "string") {
    opts.log?.warn(
      { event: "control.bad_request", error: req, ...(peer ? { peer } : {}) },
      `control: bad request: ${req}${peerText(peer)}`,
    );
    return { stdout: "", stderr: `lvsd: bad control request: ${req}\n`, code: 2 };
  }
  let res: ExecResult;
  try {
    res = run(req.argv, target, req.stdin ?? "", opts);
  } catch (err) {
    res = { stdout: "", stderr: `lvsd: internal error: ${(err as Error).message}\n`, code: 1 };
    opts.log?.error(
      { event: "control.internal_error", argv: req.argv, error: (err as Error).stack ?? String(err) },
      `control: internal error running ${argvText(req.argv)}: ${(err as Error).message}`,
    );
  }
  if (opts.log) {
    let change = true;
    try {
      change = isChange(req.argv, opts);
    } catch {
      // classify as a change: better logged once too often than missed
    }
    logCommand(opts.log, req, res, peer, change);
  }
  opts.onRequest?.(req, res, peer);
  return res;
}

function serve(sock: Socket, target: ControlTarget, opts: ControlServerOptions): void {
  const max = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST;
  // the peer's credentials do not change while it is connected: read them once
  const peer = opts.log || opts.onRequest ? socketPeer(sock) : undefined;
  let chunks: Buffer[] = [];
  let size = 0;
  sock.on("data", (data: Buffer) => {
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl === -1) break;
      chunks.push(data.subarray(start, nl));
      const line = Buffer.concat(chunks).toString("utf8");
      chunks = [];
      size = 0;
      start = nl + 1;
      if (line.trim() === "") continue;
      const res = handleRequestLine(line, target, opts, peer);
      sock.write(`${JSON.stringify(res)}\n`);
    }
    if (start < data.length) {
      const rest = data.subarray(start);
      size += rest.length;
      if (size > max) {
        const res = { stdout: "", stderr: `lvsd: control request larger than ${max} bytes\n`, code: 2 };
        opts.log?.warn(
          { event: "control.bad_request", error: `larger than ${max} bytes`, ...(peer ? { peer } : {}) },
          `control: bad request: larger than ${max} bytes${peerText(peer)}`,
        );
        sock.end(`${JSON.stringify(res)}\n`);
        sock.destroy();
        return;
      }
      chunks.push(Buffer.from(rest));
    }
  });
  sock.on("error", () => {
    // A client that went away; nothing to do.
  });
}

/**
 * Start lvsd's control server on `path` for `target`. Rejects with a ControlServerError when
 * another lvsd holds the path or the path is not a socket.
 */
export async function startControlServer(
  path: string = DEFAULT_CONTROL_PATH,
  target: ControlTarget,
  opts: ControlServerOptions = {},
): Promise<ControlServer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await claimPath(path, opts.probeTimeoutMs ?? 1000);
  const conns = new Set<Socket>();
  const server = createServer((sock) => {
    conns.add(sock);
    sock.on("close", () => conns.delete(sock));
    serve(sock, target, opts);
  });
  await listen(server, path);
  await chmod(path, 0o600);
  let closed = false;
  return {
    path,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of conns) s.destroy();
      });
      // net.Server removes its socket file on close; make sure, without touching a non-socket.
      try {
        if ((await lstat(path)).isSocket()) await unlink(path);
      } catch {
        // already gone
      }
    },
  };
}
