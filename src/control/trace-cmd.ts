/**
 * lvsadm's packet-trace commands (lvs-ts; none is an ipvsadm option, so nothing clashes):
 *
 *   lvsadm --trace FILE [--count N] [--seconds S] [-t|-u VIP[:PORT] | -f MARK] [--link NAME[,NAME]]
 *   lvsadm --trace-status      the running trace and the last ones, one line each
 *   lvsadm --trace-stop        stop the running trace (its file is complete)
 *
 * `--trace` has lvsd write the frames it receives and sends to FILE, a pcapng file (tcpdump -r,
 * Wireshark). It stops after N frames, after S seconds (default: 10 s without --count, else
 * until the count; at most 3600 s) or on --trace-stop. lvsadm makes FILE absolute (as for
 * --import), starts the trace, then waits like tcpdump, polling --trace-status, and prints
 * `lvsadm: N frames written to FILE (D dropped)` (src/tools/cli/lvsadm.ts).
 *
 * They are parsed before ipvsadm's options (src/control/ipvsadm.ts calls parseTraceCommand right
 * after parseExtension) and run against lvsd's TraceControl (src/control/observe/trace.ts), which
 * lvsd hands the control server in ExecOptions.trace (src/control/commands.ts). The service
 * option is parsed by ipvsadm's own -t/-u/-f code, through the callback parseArgs passes in, so
 * its messages are ipvsadm's.
 */

import { resolve } from "node:path";
import { u32ToIp } from "../lib/addr.js";
import type { ServiceKey } from "../tables/services.js";
import type { ExecResult, Parsed } from "./types.js";

/** Seconds a trace runs when neither --count nor --seconds is given. */
export const TRACE_DEFAULT_SECONDS = 10;
/** The longest trace: --seconds at most, and the bound of a trace with --count only. */
export const TRACE_MAX_SECONDS = 3600;
export const TRACE_MAX_COUNT = 2147483647;

/** `--trace FILE ...`: FILE absolute; `count` 0 for none; `seconds` the limit that applies. */
export interface TraceStart {
  kind: "trace";
  file: string;
  count: number;
  seconds: number;
  /** The service whose traffic is traced (-t/-u/-f); every frame without one. */
  svc?: ServiceKey;
  /** Link names (--link); every link when empty. */
  links: string[];
}

export type TraceCommand = TraceStart | { kind: "trace-status" } | { kind: "trace-stop" };

/** What the control plane needs from lvsd's tracer (src/control/observe/trace.ts). */
export interface TraceControlApi {
  start(cmd: TraceStart): ExecResult;
  status(): ExecResult;
  stop(): ExecResult;
}

/** Parses the service words (`-t ADDR`, `-f MARK`, ...) as ipvsadm's -L would. */
export type ServiceWordsParser = (words: string[]) => Parsed<ServiceKey | undefined>;

function refuse(message: string, code = 2): Parsed<TraceCommand> {
  return { ok: false, error: { message, code, fatal: true } };
}

const FIRST = new Set(["--trace", "--trace-status", "--trace-stop"]);
const SERVICE_LONG = new Set(["--tcp-service", "--udp-service", "--fwmark-service"]);

/** The command name of a first word (`--trace=FILE` is --trace), or undefined. */
function traceWord(w: string): string | undefined {
  const name = w.startsWith("--") && w.includes("=") ? w.slice(0, w.indexOf("=")) : w;
  return FIRST.has(name) ? name : undefined;
}

/** A whole number from `min` to `max` written in decimal, or -1. */
function wholeNumber(s: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(s)) return -1;
  const v = Number(s);
  return v >= min && v <= max ? v : -1;
}

/**
 * `--trace ...`, `--trace-status` or `--trace-stop` as the first option; undefined for every other
 * command line. FILE is made absolute here (lvsadm's working directory), so lvsd gets a path that
 * does not depend on its own. Errors follow ipvsadm: a bad value is fail() (status 2), an unknown
 * option or a missing argument popt's message (status 255).
 */
export function parseTraceCommand(
  argv: readonly string[],
  prog: string,
  inRestore: boolean | undefined,
  parseService: ServiceWordsParser,
): Parsed<TraceCommand> | undefined {
  const name = traceWord(argv[0] ?? "");
  if (name === undefined) return undefined;
  if (inRestore) return refuse(`${prog}: ${name} cannot be used inside a restore (-R)`);
  if (name !== "--trace") {
    if (argv[0] !== name) return refuse(`${name}: option does not take an argument`, 255);
    if (argv.length > 1) return refuse(`${prog}: ${name} takes no other option (got '${argv[1]}')`);
    return { ok: true, cmd: { kind: name === "--trace-status" ? "trace-status" : "trace-stop" } };
  }
  const first = argv[0]!;
  const glued = first.startsWith("--trace=");
  const file = glued ? first.slice("--trace=".length) : argv[1];
  if (file === undefined || file === "") return refuse(`${prog}: --trace needs a file to write`);
  if (!glued && file.startsWith("-"))
    return refuse(
      `${prog}: --trace needs a file to write, not the option '${file}' (write ./${file} for such a file)`,
    );
  let count: number | undefined;
  let seconds: number | undefined;
  const links: string[] = [];
  const svcWords: string[] = [];
  for (let i = glued ? 1 : 2; i < argv.length; i++) {
    const w = argv[i]!;
    const eq = w.startsWith("--") ? w.indexOf("=") : -1;
    const opt = eq > 0 ? w.slice(0, eq) : w;
    // the option's value: glued after '=' or the next word
    const value = (): string | undefined => (eq > 0 ? w.slice(eq + 1) : argv[++i]);
    if (opt === "--count" || opt === "--seconds" || opt === "--link") {
      const v = value();
      if (v === undefined) return refuse(`${opt}: missing argument`, 255);
      if (opt === "--link") {
        for (const l of v.split(",")) {
          if (l === "") return refuse(`${prog}: --link needs link names (lvsadm --links lists them)`);
          if (!links.includes(l)) links.push(l);
        }
        continue;
      }
      if ((opt === "--count" ? count : seconds) !== undefined)
        return refuse(`multiple '${opt.slice(2)}' options specified`);
      if (opt === "--count") {
        count = wholeNumber(v, 1, TRACE_MAX_COUNT);
        if (count < 0)
          return refuse(`invalid count value \`${v}' specified (1 to ${TRACE_MAX_COUNT} frames)`);
      } else {
        seconds = wholeNumber(v, 1, TRACE_MAX_SECONDS);
        if (seconds < 0) return refuse(`invalid seconds value \`${v}' specified (1 to ${TRACE_MAX_SECONDS})`);
      }
    } else if (SERVICE_LONG.has(opt)) {
      if (eq > 0) svcWords.push(w);
      else {
        const v = argv[++i];
        if (v === undefined) return refuse(`${w}: missing argument`, 255);
        svcWords.push(w, v);
      }
    } else if (/^-[tuf]/.test(w)) {
      if (w.length > 2)
        svcWords.push(w); // glued: -t10.0.0.1:80, -t=10.0.0.1:80
      else {
        const v = argv[++i];
        if (v === undefined) return refuse(`${w}: missing argument`, 255);
        svcWords.push(w, v);
      }
    } else if (w.startsWith("-") && w !== "-") {
      return refuse(`${w}: unknown option`, 255);
    } else {
      return refuse(`unexpected argument ${w}`);
    }
  }
  const cmd: TraceStart = {
    kind: "trace",
    file: resolve(file),
    count: count ?? 0,
    seconds: seconds ?? (count !== undefined ? TRACE_MAX_SECONDS : TRACE_DEFAULT_SECONDS),
    links,
  };
  if (svcWords.length > 0) {
    const svc = parseService(svcWords);
    if (!svc.ok) return svc;
    if (svc.cmd !== undefined) cmd.svc = svc.cmd;
  }
  return { ok: true, cmd };
}

/** ipvsadm's words for a service key: `-t 10.0.0.100:80`, `-u ...`, `-f 5`. */
export function serviceWords(svc: ServiceKey): string[] {
  if (svc.fwmark) return ["-f", String(svc.fwmark)];
  return [svc.proto === 17 ? "-u" : "-t", `${u32ToIp(svc.addr)}:${svc.port}`];
}

/** "TCP 10.0.0.100:80", "UDP ...", "FWM 5": a service as -L names it. */
export function serviceText(svc: ServiceKey): string {
  if (svc.fwmark) return `FWM ${svc.fwmark}`;
  return `${svc.proto === 17 ? "UDP" : "TCP"} ${u32ToIp(svc.addr)}:${svc.port}`;
}

/** The command line lvsadm sends lvsd for a parsed --trace: FILE absolute, the limits explicit. */
export function traceArgv(cmd: TraceStart): string[] {
  const out = ["--trace", cmd.file];
  if (cmd.count > 0) out.push("--count", String(cmd.count));
  out.push("--seconds", String(cmd.seconds));
  if (cmd.svc) out.push(...serviceWords(cmd.svc));
  if (cmd.links.length > 0) out.push("--link", cmd.links.join(","));
  return out;
}

/** One trace as --trace-status reports it. */
export interface TraceSummary {
  id: number;
  state: "running" | "done" | "failed";
  frames: number;
  dropped: number;
  file: string;
  /** Why it ended ("count reached", "10 s elapsed", "lvsadm --trace-stop", an error); "" while running. */
  reason: string;
}

function frames(n: number): string {
  return `${n} frame${n === 1 ? "" : "s"}`;
}

/** `trace 3 done (count reached): 20 frames written to /tmp/t.pcapng (0 dropped)`. */
export function formatTraceSummary(s: TraceSummary): string {
  const why = s.state === "running" ? "" : ` (${s.reason})`;
  return `trace ${s.id} ${s.state}${why}: ${frames(s.frames)} written to ${s.file} (${s.dropped} dropped)`;
}

const SUMMARY_RE =
  /^trace (\d+) (running|done|failed)(?: \((.*?)\))?: (\d+) frames? written to (.*) \((\d+) dropped\)$/;

/** The summaries in --trace-status's output (or --trace-stop's), in order. */
export function parseTraceSummaries(text: string): TraceSummary[] {
  const out: TraceSummary[] = [];
  for (const line of text.split("\n")) {
    const m = SUMMARY_RE.exec(line);
    if (!m) continue;
    out.push({
      id: Number(m[1]),
      state: m[2] as TraceSummary["state"],
      reason: m[3] ?? "",
      frames: Number(m[4]),
      file: m[5]!,
      dropped: Number(m[6]),
    });
  }
  return out;
}

/** `trace 3 started: ...` (the reply to --trace): the id of the trace lvsd started. */
export function startedId(stdout: string): number | undefined {
  const m = /^trace (\d+) started/m.exec(stdout);
  return m ? Number(m[1]) : undefined;
}

/** The line lvsadm prints when its trace is over. */
export function finalLine(s: TraceSummary, prog = "lvsadm"): string {
  return `${prog}: ${frames(s.frames)} written to ${s.file} (${s.dropped} dropped)`;
}

/** Run a trace command against lvsd's TraceControl. */
export function runTrace(cmd: TraceCommand, trace: TraceControlApi | undefined, prog: string): ExecResult {
  if (!trace) {
    const name = cmd.kind === "trace" ? "--trace" : `--${cmd.kind}`;
    return { stdout: "", stderr: `${prog}: ${name}: this lvsd cannot trace packets\n`, code: 1 };
  }
  if (cmd.kind === "trace") return trace.start(cmd);
  if (cmd.kind === "trace-status") return trace.status();
  return trace.stop();
}
