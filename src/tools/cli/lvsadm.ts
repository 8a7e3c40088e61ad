/**
 * lvsadm: ipvsadm's command line for lvsd. It checks the command line itself (so mistakes, -h and
 * -v need no daemon), sends valid commands to lvsd's control socket, prints the reply and exits
 * with its status.
 *
 * The socket is `--control PATH` (anywhere on the line), else $LVSD_CONTROL, else
 * /run/lvsd/control.sock. For -R the whole of stdin is read and sent with the command. Requests
 * ask for a streamed reply (`"stream": true`): big listings arrive in `{"out": TEXT}` pieces, each
 * printed as it comes, before the final `{"stdout","stderr","code"}` line.
 *
 * This is the Node.js client (`node bin/lvsadm`). bin/lvsadm run as a program starts the native
 * client (native/lvsadm.c) when it is built; that one prints the same and exits the same for what
 * lvsd answers, and execs this client for the rest (no daemon, --trace, --import, ...).
 *
 * EPIPE on stdout (`lvsadm -Ln | head -1`) ends the program quietly with status 141, which is
 * what a shell reports for ipvsadm killed by SIGPIPE.
 *
 * `--trace FILE ...` (src/control/trace-cmd.ts) waits like tcpdump: it starts the trace with FILE
 * made absolute, polls `--trace-status` every 200 ms until lvsd reports the trace over, then
 * prints `lvsadm: N frames written to FILE (D dropped)`. Ctrl-C sends `--trace-stop` first (a
 * second Ctrl-C exits at once; the trace then ends by its own limits).
 */

import { connect } from "node:net";
import { DEFAULT_CONTROL_PATH, type ExecResult, usageText, versionText } from "../../control/commands.js";
import { splitExtensions } from "../../control/extensions.js";
import { IPT_PROG, iptUsageText, iptVersionText, parseIptables } from "../../control/iptables.js";
import { parseArgs } from "../../control/ipvsadm.js";
import { systemServices } from "../../control/netdb.js";
import type { ControlRequest } from "../../control/server.js";
import {
  finalLine,
  parseTraceSummaries,
  startedId,
  type TraceStart,
  traceArgv,
} from "../../control/trace-cmd.js";

/** Exit status when lvsd cannot be reached. */
export const EXIT_NO_DAEMON = 2;

export interface ClientIO {
  write(s: string): void;
  writeErr(s: string): void;
  /** All of stdin (read only for -R). */
  readStdin(): Promise<string>;
  env: Record<string, string | undefined>;
  /**
   * Call `handler` on an interrupt (SIGINT) until the returned function is called; used while
   * --trace waits. Without it, --trace cannot be interrupted.
   */
  onInterrupt?: (handler: () => void) => () => void;
}

/** How often lvsadm --trace asks lvsd how its trace is doing. */
export const TRACE_POLL_MS = 200;

/** Take `--control PATH` / `--control=PATH` out of argv. */
export function splitControlOption(argv: readonly string[]): {
  argv: string[];
  control?: string;
  error?: string;
} {
  const rest: string[] = [];
  let control: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--control") {
      const v = argv[i + 1];
      if (v === undefined || v === "") return { argv: rest, error: "lvsadm: --control needs a socket path" };
      control = v;
      i++;
    } else if (a.startsWith("--control=")) {
      control = a.slice("--control=".length);
      if (control === "") return { argv: rest, error: "lvsadm: --control needs a socket path" };
    } else {
      rest.push(a);
    }
  }
  return control === undefined ? { argv: rest } : { argv: rest, control };
}

const CONNECT_HINTS: Readonly<Record<string, string>> = {
  ENOENT: "no such socket (is lvsd running?)",
  ECONNREFUSED: "connection refused (is lvsd running?)",
  EACCES: "permission denied (lvsadm needs the rights of lvsd's user, usually root)",
  ENOTSOCK: "not a socket",
};

/** A request as lvsadm sends it: `stream` asks lvsd for the stdout of big listings in pieces. */
export interface ClientRequest extends ControlRequest {
  stream?: boolean;
}

/**
 * Send one request to lvsd at `path` and wait for its reply. With `stream: true` lvsd may send
 * `{"out": TEXT}` lines before the final `{"stdout","stderr","code"}` one: each TEXT goes to
 * `onOut` as it comes, or, without `onOut`, is put in front of the final stdout. A server that
 * does not stream sends only the final line.
 */
export function sendRequest(
  path: string,
  req: ClientRequest,
  onOut?: (text: string) => void,
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    let pending: Buffer[] = [];
    let early = "";
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      sock.destroy();
      fn();
    };
    sock.once("connect", () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on("data", (d: Buffer) => {
      let start = 0;
      for (;;) {
        // Look for line ends in the new chunk only (listings can be large).
        const nl = d.indexOf(0x0a, start);
        if (nl === -1) break;
        pending.push(d.subarray(start, nl));
        const line = Buffer.concat(pending).toString("utf8");
        pending = [];
        start = nl + 1;
        if (line.trim() === "") continue;
        let r: Record<string, unknown>;
        try {
          r = JSON.parse(line) as Record<string, unknown>;
        } catch (err) {
          finish(() => reject(new Error(`bad reply from lvsd: ${(err as Error).message}`)));
          return;
        }
        if (typeof r.out === "string" && r.code === undefined) {
          if (onOut) onOut(r.out);
          else early += r.out;
          continue;
        }
        finish(() =>
          resolve({
            stdout: early + String(r.stdout ?? ""),
            stderr: String(r.stderr ?? ""),
            code: Number(r.code ?? 1),
          }),
        );
        return;
      }
      if (start < d.length) pending.push(Buffer.from(d.subarray(start)));
    });
    sock.once("error", (err) => finish(() => reject(err)));
    sock.once("close", () => finish(() => reject(new Error("lvsd closed the connection without a reply"))));
  });
}

/** Run lvsadm with `argv` (program name excluded); returns the exit status. */
export async function runClient(argv: readonly string[], io: ClientIO): Promise<number> {
  const split = splitControlOption(argv);
  if (split.error) {
    io.writeErr(`${split.error}\n`);
    return EXIT_NO_DAEMON;
  }
  const path = split.control ?? (io.env.LVSD_CONTROL || DEFAULT_CONTROL_PATH);

  // lvs-ts extensions (FULLNAT local addresses, --proxy-protocol, --drops): lvsd parses them.
  const ext = splitExtensions(split.argv);
  // `--iptables ARGS` (bin/lvs-iptables): checked here as lvsd would, so mistakes, -h and -V
  // need no daemon; then sent as it is.
  if (ext.iptables) {
    const p = parseIptables(ext.iptables, systemServices());
    if (!("cmd" in p)) {
      io.writeErr(p.stderr);
      return p.code;
    }
    if (p.cmd.kind === "help" || p.cmd.kind === "version") {
      io.write(p.cmd.kind === "help" ? iptUsageText() : iptVersionText());
      return 0;
    }
    return send(path, { argv: split.argv }, io, IPT_PROG);
  }
  if (ext.error) {
    io.writeErr(`${ext.error}\n`);
    return 2;
  }
  // lvsd checks these itself (run() in src/control/commands.ts), before ipvsadm's parser
  if (ext.laddr || ext.drops || ext.links || ext.sync || ext.sysctl !== undefined)
    return send(path, { argv: split.argv }, io);

  // Check the line here: errors, -h and -v print the same as lvsd would, without needing it.
  const parsed = parseArgs(ext.argv);
  if (!parsed.ok) {
    io.writeErr(`${parsed.error.message}\n`);
    return parsed.error.code;
  }
  if (parsed.cmd.kind === "help") {
    io.write(usageText());
    return 0;
  }
  if (parsed.cmd.kind === "version") {
    io.write(versionText());
    return 0;
  }

  if (parsed.cmd.kind === "trace") return traceClient(path, parsed.cmd, io);

  // --import FILE: send the absolute path parseArgs made, not lvsadm's relative one
  const req: ControlRequest = {
    argv: parsed.cmd.kind === "import" ? ["--import", parsed.cmd.file] : split.argv,
  };
  if (parsed.cmd.kind === "restore") req.stdin = await io.readStdin();
  return send(path, req, io);
}

/** Send a request to lvsd and print its reply as it comes; returns the exit status. */
async function send(path: string, req: ControlRequest, io: ClientIO, prog = "lvsadm"): Promise<number> {
  let res: ExecResult;
  try {
    res = await sendRequest(path, { ...req, stream: true }, (text) => io.write(text));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = (e.code && CONNECT_HINTS[e.code]) ?? e.message;
    io.writeErr(`${prog}: cannot connect to lvsd at ${path}: ${why}\n`);
    return EXIT_NO_DAEMON;
  }
  io.write(res.stdout);
  io.writeErr(res.stderr);
  return res.code;
}

/** lvsadm --trace: start the trace, wait for its end (or Ctrl-C, which stops it), print the count. */
async function traceClient(path: string, cmd: TraceStart, io: ClientIO): Promise<number> {
  let wake: (() => void) | null = null;
  let interrupted = false;
  const off = io.onInterrupt?.(() => {
    interrupted = true;
    wake?.();
  });
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  try {
    const res = await sendRequest(path, { argv: traceArgv(cmd) });
    const id = startedId(res.stdout);
    if (res.code !== 0 || id === undefined) {
      io.write(res.stdout);
      io.writeErr(res.stderr);
      return res.code === 0 ? 1 : res.code;
    }
    io.writeErr(`lvsadm: ${res.stdout.trimEnd()} (Ctrl-C stops it)\n`);
    let stopSent = false;
    for (;;) {
      if (interrupted && !stopSent) {
        stopSent = true;
        await sendRequest(path, { argv: ["--trace-stop"] }); // refused when it just ended: fine
      }
      const st = await sendRequest(path, { argv: ["--trace-status"] });
      const mine = parseTraceSummaries(st.stdout).find((s) => s.id === id);
      if (!mine) {
        io.writeErr(`lvsadm: lvsd no longer reports trace ${id} (restarted?)\n`);
        return 1;
      }
      if (mine.state !== "running") {
        if (mine.state === "failed") {
          io.writeErr(`lvsadm: trace ${id} failed: ${mine.reason}\n`);
          io.write(`${finalLine(mine)}\n`);
          return 1;
        }
        io.write(`${finalLine(mine)}\n`);
        return 0;
      }
      if (!interrupted || stopSent) await sleep(TRACE_POLL_MS);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = (e.code && CONNECT_HINTS[e.code]) ?? e.message;
    io.writeErr(`lvsadm: cannot connect to lvsd at ${path}: ${why}\n`);
    return EXIT_NO_DAEMON;
  } finally {
    off?.();
  }
}

function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer | string) => chunks.push(typeof c === "string" ? Buffer.from(c) : c));
    stream.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    stream.on("error", reject);
  });
}

/** Exit status after EPIPE on stdout: what a shell reports for ipvsadm killed by SIGPIPE (128 + 13). */
export const EXIT_EPIPE = 141;

/** The lvsadm program (`node bin/lvsadm`, and what the native client falls back to). */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  // `lvsadm -Ln | head -1`: the reader went away. Leave quietly, as ipvsadm does (SIGPIPE).
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(EXIT_EPIPE);
    throw e;
  });
  const code = await runClient(argv, {
    write: (s) => {
      if (s) process.stdout.write(s);
    },
    writeErr: (s) => {
      if (s) process.stderr.write(s);
    },
    readStdin: () => readAll(process.stdin),
    env: process.env,
    onInterrupt: (handler) => {
      let seen = 0;
      const h = (): void => {
        if (++seen > 1) process.exit(130); // a second Ctrl-C: leave without waiting
        handler();
      };
      process.on("SIGINT", h);
      return () => process.off("SIGINT", h);
    },
  });
  // Let stdout drain before exiting (large listings through a pipe).
  process.exitCode = code;
}
