/**
 * lvsd's log (docs/observability.md, "Logs"): pino, one event per line on stderr.
 *
 * - Not a TTY (systemd, a pipe, a file): JSON lines, `{"level":"info","time":...,"pid":...,
 *   "hostname":...,"name":"lvsd","event":"config.loaded",...,"msg":"health: loaded ..."}`. `event`
 *   names what happened and fixes the other fields; `msg` is the human sentence, always last.
 * - A TTY: the same events as readable lines (pino-pretty), `[12:00:00.123] INFO (lvsd): msg
 *   {fields}`.
 *
 * Both are written synchronously in this thread (pino's SonicBoom destination with `sync`, and
 * pino-pretty's formatter in front of it): no worker thread, and nothing waits in a buffer when
 * lvsd exits. Events come only from the control plane (timers, the control socket, signals): the
 * per-packet path never logs; drop bursts are noticed by a timer comparing counters
 * (DropBurstWatch, below).
 *
 * Modules log through the narrow EventLog interface (which a pino Logger satisfies); those that
 * take a `(msg: string) => void` get one from lineLog().
 */

import { createRequire } from "node:module";
import { type DestinationStream, type Logger, pino } from "pino";
import type * as PinoPretty from "pino-pretty";

const requireCjs = createRequire(import.meta.url);

/** `lvsd --log-level`: pino's levels, most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = "info";

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/**
 * The fields of one event. `event` is its stable name ("health.dest.down"); the names pino uses
 * itself (level, time, pid, hostname, name, msg) are not field names.
 */
export interface LogFields {
  readonly event: string;
  readonly [field: string]: unknown;
}

/** What a module needs to log events. A pino Logger is one. */
export interface EventLog {
  error(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  debug(fields: LogFields, msg: string): void;
}

/** Where lines go: a file descriptor (default 2, stderr) or anything with write(). */
export type LogDestination = number | { write(line: string): unknown };

export interface LoggerOptions {
  /** Default info. */
  level?: LogLevel;
  /** Readable lines (pino-pretty) instead of JSON; lvsd sets it when stderr is a TTY. */
  pretty?: boolean;
  /** Colours in pretty mode (lvsd: a TTY and no NO_COLOR). Default false. */
  colorize?: boolean;
  /** Default fd 2, written synchronously. */
  destination?: LogDestination;
  /** The `name` field; default "lvsd". */
  name?: string;
}

function syncDestination(d: LogDestination): { write(line: string): unknown } {
  return typeof d === "number" ? pino.destination({ dest: d, sync: true }) : d;
}

/**
 * The formatter of pretty mode: one JSON line in, one readable line out (with its newline).
 * Exported for tests, and for turning a saved JSON log into readable lines.
 */
export function prettyLines(colorize = false): (jsonLine: string) => string {
  // loaded here, not at start: only a TTY needs it, and it costs ~0.1-0.3 s of lvsd's start-up
  const { prettyFactory } = requireCjs("pino-pretty") as typeof PinoPretty;
  return prettyFactory({
    colorize,
    ignore: "pid,hostname",
    translateTime: "SYS:HH:MM:ss.l",
    singleLine: true,
  });
}

/** A pino logger writing JSON lines, or readable ones with `pretty` (see the file comment). */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const out = syncDestination(opts.destination ?? 2);
  let stream: DestinationStream;
  if (opts.pretty) {
    const pretty = prettyLines(opts.colorize ?? false);
    stream = { write: (line: string) => void out.write(pretty(line)) };
  } else {
    stream = { write: (line: string) => void out.write(line) };
  }
  return pino(
    {
      name: opts.name ?? "lvsd",
      level: opts.level ?? DEFAULT_LOG_LEVEL,
      // "level":"warn" rather than 40: what operators grep for and jq selects on
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}

/** A logger that drops everything (the default of modules that take an optional EventLog). */
export const NO_LOG: EventLog = {
  error() {},
  warn() {},
  info() {},
  debug() {},
};

/**
 * For a module that logs text lines, `(msg) => void`: each line becomes an event of `level`
 * named `event`, with `fields` if given.
 */
export function lineLog(
  log: EventLog,
  event: string,
  level: "error" | "warn" | "info" | "debug" = "info",
  fields: Readonly<Record<string, unknown>> = {},
): (msg: string) => void {
  return (msg) => log[level]({ ...fields, event }, msg);
}

/**
 * The other way round, for callers that still hand a module a `(msg) => void` (tests, tools):
 * an EventLog that passes each event's message on, without its fields. Debug events are left
 * out, as at lvsd's default level.
 */
export function textLog(write: (msg: string) => void): EventLog {
  return {
    error: (_f, msg) => write(msg),
    warn: (_f, msg) => write(msg),
    info: (_f, msg) => write(msg),
    debug: () => {},
  };
}

// ---- drop bursts ----

/** How often lvsd compares the drop counters (ms). */
export const DROP_BURST_INTERVAL_MS = 5000;
/**
 * A reason is reported when its counter grew by more than this during one interval (more than
 * 20 drops a second on average over 5 s): above the trickle every director sees (stray
 * traffic to no service, ARP for others' addresses), well below a flood or a broken set-up.
 */
export const DROP_BURST_THRESHOLD = 100;

export interface DropBurstOptions {
  intervalMs?: number;
  threshold?: number;
  /** Milliseconds, monotonic (performance.now in lvsd; a fake clock in tests). */
  now: () => number;
}

/** One warn event: the reasons that grew by more than the threshold, and by how much. */
export interface DropBurst {
  /** Reason name (src/datapath/drops.ts) -> drops during the interval, largest first. */
  readonly drops: Readonly<Record<string, number>>;
  readonly total: number;
  readonly intervalMs: number;
}

/**
 * Rate-limited warnings for bursts of drops. lvsd calls check() from a timer every intervalMs;
 * it compares the counters with the snapshot taken at the previous comparison and logs at most
 * one warn event (`drops.burst`) per interval, listing every reason whose count grew by more
 * than the threshold. A call less than intervalMs after the previous comparison does nothing,
 * so a burst is always measured over at least one interval and never reported twice.
 * The counters are only read (a copy of a small typed array), never reset.
 */
export class DropBurstWatch {
  readonly intervalMs: number;
  readonly threshold: number;
  private readonly last: Float64Array;
  private lastAt: number;

  constructor(
    private readonly names: readonly string[],
    private readonly counts: ArrayLike<number>,
    private readonly log: EventLog,
    private readonly opts: DropBurstOptions,
  ) {
    this.intervalMs = opts.intervalMs ?? DROP_BURST_INTERVAL_MS;
    this.threshold = opts.threshold ?? DROP_BURST_THRESHOLD;
    this.last = Float64Array.from(counts);
    this.lastAt = opts.now();
  }

  /** Compare and maybe log; returns what was logged. */
  check(): DropBurst | undefined {
    const t = this.opts.now();
    const elapsed = t - this.lastAt;
    if (elapsed < this.intervalMs) return undefined;
    const grown: [string, number][] = [];
    const n = Math.min(this.counts.length, this.last.length);
    for (let i = 0; i < n; i++) {
      const c = this.counts[i]!;
      // a counter that went down was zeroed: count from zero
      const d = c >= this.last[i]! ? c - this.last[i]! : c;
      this.last[i] = c;
      if (d > this.threshold) grown.push([this.names[i] ?? `reason_${i}`, d]);
    }
    this.lastAt = t;
    if (grown.length === 0) return undefined;
    grown.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const drops = Object.fromEntries(grown);
    const total = grown.reduce((s, [, d]) => s + d, 0);
    const intervalMs = Math.round(elapsed);
    const list = grown.map(([r, d]) => `${d} ${r}`).join(", ");
    this.log.warn(
      { event: "drops.burst", drops, total, intervalMs, threshold: this.threshold },
      `drops: ${list} in the last ${(elapsed / 1000).toFixed(1)} s (lvsadm --drops)`,
    );
    return { drops, total, intervalMs };
  }
}
