/**
 * TraceControl: the control plane's side of `lvsadm --trace` (docs/observability.md, "Packet
 * traces"; the commands are parsed in src/control/trace-cmd.ts). lvsd makes one and hands it to
 * the control server (ExecOptions.trace); one trace runs at a time.
 *
 * Starting a trace opens FILE (absolute; an existing regular file is truncated, anything else is
 * refused; created with mode 0600, without following a symbolic link), writes the pcapng Section
 * Header Block and one Interface Description Block per lvsd link (interface id = link id,
 * `if_name` = the link's name), sets the FrameTracer's filters and count and attaches it to the
 * director (src/datapath/trace.ts). A timer then drains the tracer's ring every `tickMs` (100 ms):
 * one chunk of Enhanced Packet Blocks (at most `chunkBytes`, 4 MiB) written synchronously per tick.
 * The trace ends when the count is reached and written, when its seconds are up, on
 * `--trace-stop`, when lvsd stops (`close`), or on a write error: the tracer is detached, what is
 * left in the ring is written, the file closed. `--trace-status` reports the running trace and
 * the last finished ones.
 *
 * Timestamps: the director's clock (lvsd: performance.now()) plus `timeOriginMs` (lvsd:
 * performance.timeOrigin) is wall-clock time, written in microseconds.
 */

import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, writeSync } from "node:fs";
import { isAbsolute } from "node:path";
import { performance } from "node:perf_hooks";
import type { Director } from "../../datapath/director.js";
import {
  pcapngInterfaceBlock,
  pcapngPacketLength,
  pcapngSectionHeader,
  writePcapngPacket,
} from "../../datapath/io/pcap.js";
import { FrameTracer, type TraceFilterEntry } from "../../datapath/trace.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import type { Service } from "../../tables/model.js";
import type { ServiceKey } from "../../tables/services.js";
import {
  formatTraceSummary,
  serviceText,
  type TraceControlApi,
  type TraceStart,
  type TraceSummary,
} from "../trace-cmd.js";
import type { ExecResult } from "../types.js";
import type { EventLog } from "./log.js";

export interface TraceControlOptions {
  director: Director;
  /** Link names in link-id order (lvsd's --link names). */
  linkNames: readonly string[];
  log?: EventLog;
  /** Wall-clock ms of the director's time 0 (default performance.timeOrigin, for performance.now()). */
  timeOriginMs?: number;
  /** The director's clock in ms (default performance.now), for --seconds. */
  now?: () => number;
  /** Drain period in ms (default 100). */
  tickMs?: number;
  /** Run the drain timer (default true); tests turn it off and call tick(). */
  timers?: boolean;
  /** The tracer's ring (src/datapath/trace.ts defaults: 16 MiB, 65536 frames, snaplen 262144). */
  ringBytes?: number;
  ringFrames?: number;
  snaplen?: number;
  /** Largest write per tick (default 4 MiB; raised to hold one frame of `snaplen`). */
  chunkBytes?: number;
  /** shb_userappl (default "lvs-ts lvsd"). */
  userAppl?: string;
}

interface Session {
  id: number;
  file: string;
  fd: number;
  count: number;
  seconds: number;
  deadlineMs: number;
  svc: ServiceKey | undefined;
  links: number[] | null;
  generation: number;
  written: number;
  bytes: number;
  state: TraceSummary["state"];
  reason: string;
  dropped: number;
}

/** Finished traces --trace-status still reports. */
const HISTORY = 4;
const DEFAULT_CHUNK = 4 << 20;

function ok(stdout: string): ExecResult {
  return { stdout, stderr: "", code: 0 };
}

function err(message: string, code: number): ExecResult {
  return { stdout: "", stderr: `lvsadm: ${message}\n`, code };
}

/**
 * The filter of a service's trace: its VIP:port, each dest's address:port and each FULLNAT local
 * address (any port). A fwmark service has no VIP:port: its dests and local addresses, for TCP and
 * UDP both. Port 0 (a port-zero persistent service, its dests) means any port.
 */
export function serviceFilter(s: Service): TraceFilterEntry[] {
  const protos = s.fwmark ? [IPPROTO_TCP, IPPROTO_UDP] : [s.proto];
  const out: TraceFilterEntry[] = [];
  if (!s.fwmark) out.push({ addr: s.addr, proto: s.proto, port: s.port });
  for (const d of s.dests) for (const proto of protos) out.push({ addr: d.addr, proto, port: d.port });
  for (const a of s.laddrs?.list() ?? []) for (const proto of protos) out.push({ addr: a, proto, port: 0 });
  return out;
}

export class TraceControl implements TraceControlApi {
  private readonly director: Director;
  private readonly linkNames: readonly string[];
  private readonly log: EventLog | undefined;
  private readonly timeOriginMs: number;
  private readonly now: () => number;
  private readonly tickMs: number;
  private readonly timers: boolean;
  private readonly opts: TraceControlOptions;
  private tracer: FrameTracer | null = null;
  private chunk: Buffer | null = null;
  private session: Session | null = null;
  private readonly history: Session[] = [];
  private nextId = 1;
  private timer: NodeJS.Timeout | null = null;

  constructor(opts: TraceControlOptions) {
    this.opts = opts;
    this.director = opts.director;
    this.linkNames = opts.linkNames;
    this.log = opts.log;
    this.timeOriginMs = opts.timeOriginMs ?? performance.timeOrigin;
    this.now = opts.now ?? (() => performance.now());
    this.tickMs = opts.tickMs ?? 100;
    this.timers = opts.timers ?? true;
  }

  /** Whether a trace is running. */
  get running(): boolean {
    return this.session !== null;
  }

  /** The tracer (made at the first trace and kept), for tests and benchmarks. */
  get frameTracer(): FrameTracer | null {
    return this.tracer;
  }

  start(cmd: TraceStart): ExecResult {
    const cur = this.session;
    if (cur) {
      return err(
        `a trace is already running (${formatTraceSummary(this.summary(cur))}); lvsadm --trace-stop ends it`,
        1,
      );
    }
    let links: number[] | null = null;
    if (cmd.links.length > 0) {
      links = [];
      for (const name of cmd.links) {
        const id = this.linkNames.indexOf(name);
        if (id < 0)
          return err(`--link ${name}: no such link (lvsd's links: ${this.linkNames.join(", ")})`, 2);
        links.push(id);
      }
    }
    const table = this.director.engine.table;
    let filter: TraceFilterEntry[] | null = null;
    if (cmd.svc) {
      const s = table.find(cmd.svc);
      if (!s) return { stdout: "", stderr: "No such service\n", code: 1 };
      filter = serviceFilter(s);
    }
    if (!isAbsolute(cmd.file)) return err(`--trace ${cmd.file}: the file must be an absolute path`, 2);
    const fd = openTraceFile(cmd.file);
    if (typeof fd === "string") return err(fd, 1);

    const tracer = this.ensureTracer();
    try {
      writeAll(fd, pcapngSectionHeader({ userAppl: this.opts.userAppl ?? "lvs-ts lvsd" }));
      for (const name of this.linkNames)
        writeAll(fd, pcapngInterfaceBlock({ name, snaplen: tracer.snaplen }));
    } catch (e) {
      closeSync(fd);
      return err(`--trace ${cmd.file}: ${(e as Error).message}`, 1);
    }
    tracer.reset();
    tracer.limit = cmd.count;
    tracer.setLinks(links);
    tracer.setFilter(filter);
    const s: Session = {
      id: this.nextId++,
      file: cmd.file,
      fd,
      count: cmd.count,
      seconds: cmd.seconds,
      deadlineMs: this.now() + cmd.seconds * 1000,
      svc: cmd.svc,
      links,
      generation: table.generation,
      written: 0,
      bytes: 0,
      state: "running",
      reason: "",
      dropped: 0,
    };
    this.session = s;
    this.director.tracer = tracer;
    if (this.timers) {
      this.timer = setInterval(() => this.tick(), this.tickMs);
      this.timer.unref();
    }
    const what = cmd.svc ? `frames of ${serviceText(cmd.svc)}` : "all frames";
    const on = (links ?? this.linkNames.map((_, i) => i)).map((i) => this.linkNames[i]).join(", ");
    const until = cmd.count > 0 ? `${cmd.count} frames or ${cmd.seconds} s` : `${cmd.seconds} s`;
    const line = `trace ${s.id} started: ${what} on ${on} to ${cmd.file}, until ${until}`;
    this.log?.info(
      {
        event: "trace.started",
        id: s.id,
        file: cmd.file,
        links: cmd.links.length > 0 ? cmd.links : [...this.linkNames],
        ...(cmd.svc ? { service: serviceText(cmd.svc) } : {}),
        count: cmd.count,
        seconds: cmd.seconds,
      },
      line,
    );
    return ok(`${line}\n`);
  }

  status(): ExecResult {
    const all = [...(this.session ? [this.session] : []), ...[...this.history].reverse()];
    if (all.length === 0) return ok("no trace has run\n");
    return ok(all.map((s) => `${formatTraceSummary(this.summary(s))}\n`).join(""));
  }

  stop(): ExecResult {
    const s = this.session;
    if (!s) return err("no trace is running", 1);
    this.finish(s, "lvsadm --trace-stop");
    return ok(`${formatTraceSummary(this.summary(s))}\n`);
  }

  /** lvsd is stopping: end the running trace, its file complete. */
  close(): void {
    if (this.session) this.finish(this.session, "lvsd stopping");
  }

  /** Drain one chunk to the file and end the trace when its count or time is up (the timer's work). */
  tick(): void {
    const s = this.session;
    const tr = this.tracer;
    if (!s || !tr) return;
    try {
      this.drain(s, tr);
    } catch (e) {
      this.finish(s, `write error: ${(e as Error).message}`, true);
      return;
    }
    // the service's dests or local addresses changed: follow them (a deleted service keeps its filter)
    const table = this.director.engine.table;
    if (s.svc && table.generation !== s.generation) {
      s.generation = table.generation;
      const svc = table.find(s.svc);
      if (svc) tr.setFilter(serviceFilter(svc));
    }
    if (tr.full && tr.count === 0) this.finish(s, "count reached");
    else if (this.now() >= s.deadlineMs) this.finish(s, `${s.seconds} s elapsed`);
  }

  private ensureTracer(): FrameTracer {
    if (!this.tracer) {
      const o = this.opts;
      this.tracer = new FrameTracer({
        ...(o.ringBytes !== undefined ? { ringBytes: o.ringBytes } : {}),
        ...(o.ringFrames !== undefined ? { ringFrames: o.ringFrames } : {}),
        ...(o.snaplen !== undefined ? { snaplen: o.snaplen } : {}),
      });
      const size = Math.max(o.chunkBytes ?? DEFAULT_CHUNK, pcapngPacketLength(this.tracer.snaplen));
      this.chunk = Buffer.alloc(size);
    }
    return this.tracer;
  }

  /** Write up to one chunk of the oldest records; returns how many were written. */
  private drain(s: Session, tr: FrameTracer): number {
    const chunk = this.chunk!;
    const origin = this.timeOriginMs;
    let used = 0;
    let n = 0;
    while (n < tr.count) {
      const r = tr.record(n);
      const cap = tr.capLen[r]!;
      const len = pcapngPacketLength(cap);
      if (used + len > chunk.length) break;
      const tsUs = (origin + tr.ts[r]!) * 1000;
      writePcapngPacket(chunk, used, tr.link[r]!, tsUs, tr.dir[r]!, tr.buf, tr.off[r]!, cap, tr.origLen[r]!);
      used += len;
      n++;
    }
    if (used > 0) writeAll(s.fd, chunk.subarray(0, used));
    tr.release(n);
    s.written += n;
    s.bytes += used;
    return n;
  }

  private finish(s: Session, reason: string, failed = false): void {
    const tr = this.tracer!;
    if (this.director.tracer === tr) this.director.tracer = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!failed) {
      try {
        while (tr.count > 0) this.drain(s, tr);
      } catch (e) {
        failed = true;
        reason = `write error: ${(e as Error).message}`;
      }
    }
    try {
      closeSync(s.fd);
    } catch (e) {
      if (!failed) {
        failed = true;
        reason = `close: ${(e as Error).message}`;
      }
    }
    s.dropped = tr.dropped + tr.count; // records a failed write left behind are lost too
    tr.reset();
    s.state = failed ? "failed" : "done";
    s.reason = reason;
    this.session = null;
    this.history.push(s);
    if (this.history.length > HISTORY) this.history.shift();
    const sum = this.summary(s);
    const fields = {
      event: failed ? "trace.failed" : "trace.stopped",
      id: s.id,
      file: s.file,
      frames: s.written,
      bytes: s.bytes,
      dropped: s.dropped,
      reason,
    };
    if (failed) this.log?.error(fields, formatTraceSummary(sum));
    else this.log?.info(fields, formatTraceSummary(sum));
  }

  private summary(s: Session): TraceSummary {
    const running = s === this.session;
    return {
      id: s.id,
      state: s.state,
      frames: s.written,
      dropped: running && this.tracer ? this.tracer.dropped : s.dropped,
      file: s.file,
      reason: s.reason,
    };
  }
}

/** Write all of `b` to `fd` (writeSync may write less than asked). */
function writeAll(fd: number, b: Uint8Array): void {
  let o = 0;
  while (o < b.length) o += writeSync(fd, b, o, b.length - o);
}

/**
 * Open `path` for a trace: an existing regular file is truncated; a directory, device, FIFO,
 * socket or symbolic link is refused (O_NOFOLLOW, and fstat after opening against a swap);
 * a new file gets mode 0600. Returns the descriptor or the reason for refusing.
 */
function openTraceFile(path: string): number | string {
  try {
    const st = lstatSync(path);
    if (!st.isFile()) return `--trace ${path}: exists and is not a regular file; not writing to it`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") return `--trace ${path}: ${(e as Error).message}`;
  }
  let fd: number;
  try {
    fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ELOOP") return `--trace ${path}: is a symbolic link; not writing to it`;
    return `--trace ${path}: ${(e as Error).message}`;
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    return `--trace ${path}: exists and is not a regular file; not writing to it`;
  }
  return fd;
}
