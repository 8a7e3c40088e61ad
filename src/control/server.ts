/**
 * lvsd's control socket: a Unix stream socket speaking newline-delimited JSON.
 *
 *   request  (one line):  {"argv": ["-Ln"], "stdin": "...", "stream": true}
 *                         stdin only for -R; stream optional
 *   response (one line):  {"stdout": "...", "stderr": "...", "code": 0}
 *   streamed response:    {"out": "..."}  (zero or more lines: stdout, to print as it comes)
 *                         {"stdout": "", "stderr": "...", "code": 0}   (the final line)
 *
 * A connection may send several requests; each is answered in order, and nothing more is read
 * from it while one is being answered. Commands are synchronous JavaScript run between two
 * batches of the data path, never in the middle of one. Listings (-L, -l, -c, -S) are made in
 * pieces (256 services or 2,048 connections each; format.ts), one piece per turn of the event
 * loop, so forwarding goes on during the listing of a million connections and neither the
 * entries nor the text of the whole table are held in lvsd at once; a client that does not ask
 * for `stream` gets the same pieces inside its one line.
 *
 * Limits (ControlServerOptions, docs/security.md): a request line of at most 64 MiB (a restore's
 * stdin travels in it) and 1,024 argv words; 256 MiB of unfinished requests over all clients; 64
 * clients at once (at the limit the one idle longest is closed; when all are busy, a new one is
 * refused with a reply); a client idle for 60 s is closed; lvsd stops making a reply while the
 * client leaves more than 1 MiB of it unread, and closes a client that reads nothing of it for
 * 30 s. So a client costs lvsd a bounded amount of memory and one descriptor, and abusive
 * clients cannot take the descriptors that health checks and links need.
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
import { iptablesIsChange } from "./iptables.js";
import { parseArgs } from "./ipvsadm.js";
import { systemServices } from "./netdb.js";
import type { EventLog } from "./observe/log.js";
import type { ControlTarget } from "./target.js";

export interface ControlRequest {
  argv: string[];
  stdin?: string;
  /** Send stdout as it is made: `{"out":...}` lines before the final one (see the file comment). */
  stream?: boolean;
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
  /** Most argv words in one request. Default 1024. */
  maxArgs?: number;
  /** Unfinished request bytes held for all clients together. Default 256 MiB. */
  maxPendingBytes?: number;
  /** Most clients connected at once; at the limit the one idle longest is closed. Default 64. */
  maxClients?: number;
  /** A client that sends and reads nothing this long is closed. Default 60 s. */
  idleTimeoutMs?: number;
  /** Reply bytes a client may leave unread before lvsd waits for it. Default 1 MiB. */
  /** Milliseconds of one event-loop turn a streamed listing may spend making pieces (LISTING_SLICE_MS; 0: one piece a turn). */
  listingSliceMs?: number;
  maxWriteBytes?: number;
  /** A client that reads nothing of a waiting reply this long is closed. Default 30 s. */
  writeTimeoutMs?: number;
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
const DEFAULT_MAX_ARGS = 1024;
const DEFAULT_MAX_PENDING = 256 * 1024 * 1024;
export const DEFAULT_MAX_CLIENTS = 64;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_WRITE = 1024 * 1024;
const DEFAULT_WRITE_TIMEOUT_MS = 30_000;
const TURN_AWAY_MS = 1000;
const MAX_LEAVING = 64;

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
  if (ext.iptables) return iptablesIsChange(ext.iptables, opts.services ?? systemServices());
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

function parseRequest(line: string, maxArgs: number): ControlRequest | string {
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
  if (o.argv.length > maxArgs) return `request has ${o.argv.length} arguments (at most ${maxArgs})`;
  if (o.stdin !== undefined && typeof o.stdin !== "string") return "request stdin must be a string";
  const req: ControlRequest = { argv: o.argv as string[] };
  if (o.stdin !== undefined) req.stdin = o.stdin as string;
  if (o.stream === true) req.stream = true;
  return req;
}

/** Answer one request line from `peer`. Never throws: a failure becomes a reply. */
export function handleRequestLine(
  line: string,
  target: ControlTarget,
  opts: ControlServerOptions = {},
  peer?: PeerCred,
): ExecResult & { stream?: boolean } {
  const req = parseRequest(line, opts.maxArgs ?? DEFAULT_MAX_ARGS);
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
  return req.stream ? { ...res, stream: true } : res;
}

/** A JSON string's inside: `s` escaped, without the quotes (pieces of one string concatenate). */
function jsonInside(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}

/** One connected client, as the server's limits see it. */
interface Client {
  sock: Socket;
  /** When it last sent a byte or had a reply written (performance.now ms). */
  lastActive: number;
  /** A request of it is being answered. */
  busy: boolean;
  /** Bytes of an unfinished request line held for it. */
  pending: number;
}

/** What every connection of one server shares: the limits and the clients. */
class ClientPool {
  readonly clients = new Set<Client>();
  pendingBytes = 0;
  constructor(
    readonly opts: ControlServerOptions,
    readonly log: EventLog | undefined,
  ) {}

  get maxClients(): number {
    return this.opts.maxClients ?? DEFAULT_MAX_CLIENTS;
  }

  /**
   * Make room for a new client: at the limit, close the client that has been idle longest (no
   * request being answered); false when every client is busy (the new one is refused).
   */
  admit(): boolean {
    if (this.clients.size < this.maxClients) return true;
    let oldest: Client | undefined;
    for (const c of this.clients) if (!c.busy && (!oldest || c.lastActive < oldest.lastActive)) oldest = c;
    if (!oldest) return false;
    this.log?.warn(
      { event: "control.client_closed", reason: "too_many_clients", limit: this.maxClients },
      `control: ${this.maxClients} clients connected: closing the one idle longest`,
    );
    this.drop(oldest);
    return true;
  }

  /** Clients turned away whose reply is still on its way (see turnAway). */
  private leaving = 0;

  /**
   * Send a refused client its one-line reply and close: it may still be writing its request, so
   * the connection stays half-open (input discarded) for up to TURN_AWAY_MS, or until it closes;
   * beyond MAX_LEAVING such clients at once (a flood) it is closed at once.
   */
  turnAway(sock: Socket, reply: string): void {
    sock.on("error", () => {});
    sock.end(reply);
    if (this.leaving >= MAX_LEAVING) {
      sock.destroy();
      return;
    }
    this.leaving++;
    sock.resume();
    const timer = setTimeout(() => sock.destroy(), TURN_AWAY_MS);
    sock.once("close", () => {
      clearTimeout(timer);
      this.leaving--;
    });
  }

  drop(c: Client): void {
    this.pendingBytes -= c.pending;
    c.pending = 0;
    this.clients.delete(c);
    c.sock.destroy();
  }
}

/** Wait until `sock` has written what it holds, or `ms` passed (false), or it closed (false). */
function drained(sock: Socket, ms: number): Promise<boolean> {
  if (sock.writableLength === 0) return Promise.resolve(!sock.destroyed);
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      sock.off("drain", onDrain);
      sock.off("close", onClose);
      resolve(v);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    sock.on("drain", onDrain);
    sock.on("close", onClose);
  });
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * How long a streamed listing may make pieces in one event-loop turn before it lets the loop go
 * on (frames, timers, health checks, other clients). One piece a turn made a listing as many
 * turns long as it has pieces, and on a busy loop (51k health checks failing at once) each turn
 * costs milliseconds of other work: a 25,612-service -Ln took 100 turns.
 */
export const LISTING_SLICE_MS = 3;

/**
 * Write `res` to the client: as one line, or (a streamed request) as `{"out":...}` lines then the
 * final line. The pieces of `res.more` are made one at a time, for at most LISTING_SLICE_MS of
 * one event-loop turn: then lvsd goes back to its event loop (frames are forwarded), and it
 * waits while the client has more than maxWriteBytes unread. False when the client went away or stopped reading for writeTimeoutMs.
 */
async function writeReply(
  c: Client,
  res: ExecResult & { stream?: boolean },
  pool: ClientPool,
): Promise<boolean> {
  const { sock } = c;
  const highWater = pool.opts.maxWriteBytes ?? DEFAULT_MAX_WRITE;
  const writeTimeout = pool.opts.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
  const sliceMs = pool.opts.listingSliceMs ?? LISTING_SLICE_MS;
  let tail = `"stderr":${JSON.stringify(res.stderr)},"code":${res.code}}\n`;
  // host names for a listing without -n: looked up first, the event loop free meanwhile
  if (res.prepare) await res.prepare().catch(() => {});
  if (sock.destroyed) return false;
  if (!res.more) {
    sock.write(`{"stdout":${JSON.stringify(res.stdout)},${tail}`);
  } else {
    // Old clients read one line: its stdout string is written in pieces, escaped piece by piece.
    const streamed = res.stream === true;
    if (!streamed) sock.write(`{"stdout":"${jsonInside(res.stdout)}`);
    else if (res.stdout !== "") sock.write(`{"out":${JSON.stringify(res.stdout)}}\n`);
    let sliceStart = performance.now();
    for (;;) {
      let piece: IteratorResult<string, void>;
      try {
        piece = res.more.next();
      } catch (err) {
        pool.log?.error(
          { event: "control.internal_error", error: (err as Error).stack ?? String(err) },
          `control: internal error while listing: ${(err as Error).message}`,
        );
        // the reply ends here, well formed, and says the listing is cut short (exit status 1)
        tail = `"stderr":${JSON.stringify(`${res.stderr}lvsd: internal error: ${(err as Error).message}\n`)},"code":1}\n`;
        break;
      }
      if (piece.done === true) break;
      sock.write(streamed ? `{"out":${JSON.stringify(piece.value)}}\n` : jsonInside(piece.value));
      const now = performance.now();
      c.lastActive = now;
      if (sock.writableLength > highWater) {
        if (!(await drained(sock, writeTimeout))) return false;
        sliceStart = performance.now();
      } else if (now - sliceStart >= sliceMs) {
        await nextTurn();
        sliceStart = performance.now();
      }
      if (sock.destroyed) return false;
    }
    sock.write(streamed ? `{"stdout":"",${tail}` : `",${tail}`);
  }
  c.lastActive = performance.now();
  if (sock.writableLength > highWater) return drained(sock, writeTimeout);
  return !sock.destroyed;
}

function serve(c: Client, target: ControlTarget, pool: ClientPool): void {
  const { sock } = c;
  const opts = pool.opts;
  const max = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST;
  const maxTotal = opts.maxPendingBytes ?? DEFAULT_MAX_PENDING;
  const execOpts: ControlServerOptions = { ...opts, stream: true };
  // the peer's credentials do not change while it is connected: read them once
  const peer = opts.log || opts.onRequest ? socketPeer(sock) : undefined;
  let chunks: Buffer[] = [];
  const lines: string[] = [];
  let working = false;

  const refuse = (why: string, message: string) => {
    opts.log?.warn(
      { event: "control.bad_request", error: why, ...(peer ? { peer } : {}) },
      `control: bad request: ${why}${peerText(peer)}`,
    );
    sock.end(`${JSON.stringify({ stdout: "", stderr: message, code: 2 })}\n`);
    pool.drop(c);
  };

  // Requests are answered one at a time, in order; while one is answered (a listing in pieces,
  // or a client that does not read its replies) nothing more is read from this client.
  const work = async () => {
    working = true;
    sock.pause();
    c.busy = true;
    while (lines.length > 0 && !sock.destroyed) {
      const line = lines.shift()!;
      const res = handleRequestLine(line, target, execOpts, peer);
      if (!(await writeReply(c, res, pool))) {
        if (!sock.destroyed) {
          opts.log?.warn(
            { event: "control.client_closed", reason: "not_reading", ...(peer ? { peer } : {}) },
            `control: client does not read its replies: closed${peerText(peer)}`,
          );
        }
        pool.drop(c);
        return;
      }
    }
    c.busy = false;
    working = false;
    if (!sock.destroyed) sock.resume();
  };

  sock.on("data", (data: Buffer) => {
    c.lastActive = performance.now();
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl === -1) break;
      chunks.push(data.subarray(start, nl));
      const line = Buffer.concat(chunks).toString("utf8");
      chunks = [];
      pool.pendingBytes -= c.pending;
      c.pending = 0;
      start = nl + 1;
      if (line.trim() !== "") lines.push(line);
    }
    if (start < data.length) {
      const rest = data.subarray(start);
      c.pending += rest.length;
      pool.pendingBytes += rest.length;
      if (c.pending > max)
        return refuse(`larger than ${max} bytes`, `lvsd: control request larger than ${max} bytes\n`);
      if (pool.pendingBytes > maxTotal)
        return refuse(
          `unfinished requests of all clients over ${maxTotal} bytes`,
          `lvsd: control requests of all clients larger than ${maxTotal} bytes: try again\n`,
        );
      chunks.push(Buffer.from(rest));
    }
    if (lines.length > 0 && !working) void work();
  });
  sock.on("error", () => {
    // A client that went away; nothing to do.
  });
  sock.on("close", () => {
    pool.pendingBytes -= c.pending;
    c.pending = 0;
    pool.clients.delete(c);
  });
  // A client that sends nothing and reads nothing for idleTimeoutMs is closed.
  sock.setTimeout(opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, () => {
    if (c.busy) return; // writeReply's own timeout governs a reply in progress
    opts.log?.info(
      { event: "control.client_closed", reason: "idle", ...(peer ? { peer } : {}) },
      `control: client idle: closed${peerText(peer)}`,
    );
    pool.drop(c);
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
  const pool = new ClientPool(opts, opts.log);
  const server = createServer((sock) => {
    if (!pool.admit()) {
      opts.log?.warn(
        { event: "control.client_refused", reason: "too_many_clients", limit: pool.maxClients },
        `control: ${pool.maxClients} clients, all busy: refusing a new one`,
      );
      pool.turnAway(
        sock,
        `${JSON.stringify({ stdout: "", stderr: `lvsd: too many control clients (${pool.maxClients}), all busy: try again\n`, code: 1 })}\n`,
      );
      return;
    }
    const c: Client = { sock, lastActive: performance.now(), busy: false, pending: 0 };
    pool.clients.add(c);
    serve(c, target, pool);
  });
  server.on("error", (err) => {
    // accept() failing (EMFILE, ENFILE) must not end lvsd: log it; the listener keeps going
    opts.log?.error({ event: "control.accept_error", error: err.message }, `control: ${err.message}`);
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
        for (const c of pool.clients) c.sock.destroy();
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
