/**
 * The worker host (docs/workers.md): runs N data-path workers (src/datapath/workers/worker.ts),
 * each an Engine with its own connection table and links, and keeps them in step with the
 * master engine the control plane works on.
 *
 * - Table changes: the master ServiceTable's journal (src/tables/journal.ts) is collected and
 *   sent to every worker as one `ops` message per turn of the event loop (a burst of lvsadm -R
 *   lines is one message); a worker applies it between two batches. A worker starts from
 *   `snapshotOps` of the master table.
 * - Knobs (sysctls, timeouts, the defence's drop rate, secure_tcp): compared with what was last
 *   sent on every flush and every `tick`, sent as one vector when they differ.
 * - Counters: each worker publishes into its own shared block; `collect` sums the blocks into
 *   the master's Service and Dest objects (and its drop counters and forwarded count), so lvsadm,
 *   the rate estimator and the metrics read sums as they read a single engine's counters.
 *
 * Control plane: allocates and awaits freely; never on the per-packet path.
 */
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { Engine } from "../datapath/engine.js";
import { newHandoffRing } from "../datapath/workers/handoff.js";
import {
  type CounterBlock,
  CTR,
  DEST_SLOTS,
  destBase,
  type HostMessage,
  KIND_SLOTS,
  LINK_BASE,
  LINK_FULL_POLLS,
  LINK_KERNEL_DROPS,
  LINK_OVERLOADS,
  LINK_POLLS,
  LINK_SLOTS,
  MAX_LINKS,
  newCounterBlock,
  type RunResult,
  readKnobs,
  SVC_BASE,
  SVC_SLOTS,
  type WorkerConn,
  type WorkerInit,
  type WorkerLinkSpec,
  type WorkerMessage,
  type WorkerNet,
} from "../datapath/workers/protocol.js";
import { snapshotOps, type TableOp } from "../tables/journal.js";

export interface WorkerPoolOptions {
  /** Number of workers (1 or more). */
  count: number;
  /** The master engine: its table is journaled and its knobs read; it forwards nothing itself. */
  engine: Engine;
  /** The links worker `index` opens. */
  links: (index: number) => WorkerLinkSpec[];
  net: WorkerNet;
  /** Connection-table entries per worker. */
  maxConns: number;
  batchSize?: number;
  mode: WorkerInit["mode"];
  /** Run mode: how long the timed loop lasts. */
  runMs?: number;
  /** The worker script (default: worker.js beside this module's build). */
  workerUrl?: URL;
  /**
   * Start worker i+1 only once worker i is ready: AF_PACKET fanout numbers a group's members in
   * the order they join, and the steering program's result must be the worker's index.
   */
  sequential?: boolean;
  /**
   * Handoff rings between the workers (AF_XDP links: each worker receives its own queue and
   * hands frames another worker owns over, src/datapath/workers/handoff.ts): `slots` per ring of
   * `slotSize` bytes. Only with 2 or more workers.
   */
  handoff?: { slots: number; slotSize: number };
}

export interface WorkerTotals {
  frames: number;
  batches: number;
  forwarded: number;
  txFrames: number;
  /** Connection-table entries over all workers. */
  conns: number;
  replicaFailures: number;
}

/**
 * The worker script: worker.js beside this module's compiled form. Under a TypeScript test
 * runner this module is the .ts source, so the build in dist/ is used.
 */
export function defaultWorkerUrl(): URL {
  const here = new URL("../datapath/workers/worker.js", import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const root = fileURLToPath(new URL("../../", import.meta.url));
  return pathToFileURL(`${root}dist/src/datapath/workers/worker.js`);
}

/** A worker whose counters have not moved for this long is starved (busySample's `stale`). */
export const STALE_MS = 400;

export class WorkerPoolError extends Error {
  override readonly name = "WorkerPoolError";
}

export class WorkerPool {
  readonly count: number;
  readonly engine: Engine;
  readonly mode: WorkerInit["mode"];
  private readonly workers: Worker[] = [];
  private readonly blocks: CounterBlock[] = [];
  private readonly views: Float64Array[] = [];
  private pending: TableOp[] = [];
  private flushQueued = false;
  private seq = 0;
  private marksGen: number;
  private lastKnobs: number[];
  private readonly applied: number[];
  private readonly waiters: { seq: number; resolve: () => void }[] = [];
  private readonly doneWaiters: ((r: RunResult[]) => void)[] = [];
  private readonly results: (RunResult | undefined)[];
  private readonly go: SharedArrayBuffer;
  private closed = false;
  private readonly exited = new Set<number>();
  private connId = 0;
  private readonly connQueries = new Map<
    number,
    { parts: WorkerConn[][]; resolve: (c: WorkerConn[]) => void }
  >();
  private readonly destSum = new Float64Array(DEST_SLOTS);
  /** An error a worker reported after it started (logged by the caller). */
  onError: ((index: number, message: string) => void) | null = null;

  private constructor(opts: WorkerPoolOptions) {
    this.count = opts.count;
    this.engine = opts.engine;
    this.mode = opts.mode;
    this.lastKnobs = readKnobs(opts.engine);
    this.marksGen = opts.engine.marks.generation;
    this.applied = new Array<number>(opts.count).fill(0);
    this.results = new Array<RunResult | undefined>(opts.count).fill(undefined);
    this.go = new SharedArrayBuffer(4);
  }

  /** Start the workers and wait until each is ready (run mode: warmed up, waiting for `start`). */
  static async start(opts: WorkerPoolOptions): Promise<WorkerPool> {
    if (!Number.isInteger(opts.count) || opts.count < 1) throw new WorkerPoolError("workers: need 1 or more");
    const pool = new WorkerPool(opts);
    const table = opts.engine.table;
    const ops = snapshotOps(table);
    const url = opts.workerUrl ?? defaultWorkerUrl();
    const ready: Promise<void>[] = [];
    const n = opts.count;
    const h = opts.handoff;
    const handoff =
      h !== undefined && n > 1
        ? Array.from({ length: n * n }, (_, k) =>
            Math.floor(k / n) === k % n ? null : newHandoffRing(h.slots, h.slotSize),
          )
        : undefined;
    for (let i = 0; i < opts.count; i++) {
      if (opts.sequential && i > 0) {
        try {
          await ready[i - 1];
        } catch (err) {
          await pool.terminate();
          throw err;
        }
      }
      const block = newCounterBlock(
        Math.max(16, table.services.length * 2),
        Math.max(64, table.dests.length * 2),
      );
      pool.blocks.push(block);
      pool.views.push(new Float64Array(block.sab));
      const init: WorkerInit = {
        type: "init",
        index: i,
        count: opts.count,
        maxConns: opts.maxConns,
        batchSize: opts.batchSize ?? 256,
        links: opts.links(i),
        net: opts.net,
        ops,
        marks: opts.engine.marks.list(),
        knobs: pool.lastKnobs,
        counters: block,
        mode: opts.mode,
        ...(opts.runMs !== undefined ? { runMs: opts.runMs } : {}),
        go: pool.go,
        ...(handoff !== undefined ? { handoff } : {}),
      };
      const w = new Worker(url, { workerData: init });
      pool.workers.push(w);
      ready.push(
        new Promise<void>((resolve, reject) => {
          let started = false;
          w.on("message", (m: WorkerMessage) => {
            if (m.type === "ready") {
              started = true;
              resolve();
            } else if (m.type === "error") {
              if (!started) reject(new WorkerPoolError(`worker ${m.index}: ${m.message}`));
              else pool.onError?.(m.index, m.message);
            } else pool.message(i, m);
          });
          w.on("error", (err) => {
            if (!started) reject(new WorkerPoolError(`worker ${i}: ${err.message}`));
            else pool.onError?.(i, err.message);
          });
          w.on("exit", (code) => {
            pool.exited.add(i);
            if (!started) reject(new WorkerPoolError(`worker ${i} exited (${code}) before it was ready`));
            else if (!pool.closed)
              pool.onError?.(i, `exited (code ${code}); its share of the traffic is not forwarded`);
          });
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (err) {
      await pool.terminate();
      throw err;
    }
    table.journal = (op) => pool.record(op);
    return pool;
  }

  private message(i: number, m: WorkerMessage): void {
    if (m.type === "neigh") {
      // worker 0 gets the ARP frames: what it learns, the others learn too
      this.workers.forEach((w, k) => {
        if (k !== i) w.postMessage(m satisfies HostMessage);
      });
    } else if (m.type === "applied") {
      this.applied[i] = m.seq;
      const low = Math.min(...this.applied);
      for (let k = this.waiters.length - 1; k >= 0; k--) {
        const w = this.waiters[k]!;
        if (w.seq <= low) {
          this.waiters.splice(k, 1);
          w.resolve();
        }
      }
    } else if (m.type === "conns") {
      const q = this.connQueries.get(m.id);
      if (q !== undefined) {
        q.parts.push(m.conns);
        if (q.parts.length === this.workers.length) {
          this.connQueries.delete(m.id);
          q.resolve(q.parts.flat());
        }
      }
    } else if (m.type === "done") {
      const results = this.results;
      results[i] = m.result;
      const all: RunResult[] = [];
      for (const r of results) if (r !== undefined) all.push(r);
      if (all.length === results.length) {
        for (const d of this.doneWaiters.splice(0)) d(all);
        results.fill(undefined);
      }
    }
  }

  private record(op: TableOp): void {
    this.pending.push(op);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => this.flush());
  }

  private broadcast(m: HostMessage): void {
    for (const w of this.workers) w.postMessage(m);
  }

  /** Grow the counter blocks when the master's ids outgrow them. */
  private ensureBlocks(): void {
    const t = this.engine.table;
    const b = this.blocks[0]!;
    if (t.services.length <= b.svcCap && t.dests.length <= b.destCap) return;
    const svcCap = Math.max(b.svcCap, t.services.length * 2);
    const destCap = Math.max(b.destCap, t.dests.length * 2);
    this.workers.forEach((w, i) => {
      const nb = newCounterBlock(svcCap, destCap);
      this.blocks[i] = nb;
      this.views[i] = new Float64Array(nb.sab);
      w.postMessage({ type: "counters", counters: nb } satisfies HostMessage);
    });
  }

  /** Send the table changes recorded so far and changed knobs (between the workers' batches). */
  flush(): void {
    this.flushQueued = false;
    if (this.closed) return;
    this.ensureBlocks();
    if (this.pending.length > 0) {
      const ops = this.pending;
      this.pending = [];
      this.broadcast({ type: "ops", seq: ++this.seq, ops });
    }
    this.tick();
  }

  /** Send the knobs and the MARK rules if they changed since last sent (lvsd calls it on its timer). */
  tick(): void {
    if (this.closed) return;
    const marks = this.engine.marks;
    if (marks.generation !== this.marksGen) {
      this.marksGen = marks.generation;
      this.broadcast({ type: "marks", seq: ++this.seq, rules: marks.list() });
    }
    const k = readKnobs(this.engine);
    if (k.length === this.lastKnobs.length && k.every((v, i) => v === this.lastKnobs[i])) return;
    this.lastKnobs = k;
    this.broadcast({ type: "knobs", seq: ++this.seq, knobs: k });
  }

  /** Flush, and resolve once every worker has applied everything sent so far. */
  sync(): Promise<void> {
    this.flush();
    const seq = this.seq;
    if (Math.min(...this.applied) >= seq) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  /**
   * Run mode: let the workers go (their timed loops start together). Once mode: replay every
   * worker's links once (after the table changes sent before). Resolves with each worker's result.
   */
  run(): Promise<RunResult[]> {
    const p = new Promise<RunResult[]>((resolve) => this.doneWaiters.push(resolve));
    if (this.mode === "once") {
      this.flush();
      this.broadcast({ type: "replay" });
      return p;
    }
    const go = new Int32Array(this.go);
    Atomics.store(go, 0, 1);
    Atomics.notify(go, 0);
    return p;
  }

  /**
   * Every worker's connection entries (lvsadm -Lc), asked between their batches; resolves when
   * all have answered (with what is there if the pool is stopped).
   */
  conns(): Promise<WorkerConn[]> {
    if (this.closed) return Promise.resolve([]);
    const id = ++this.connId;
    return new Promise((resolve) => {
      this.connQueries.set(id, { parts: [], resolve });
      this.broadcast({ type: "conns", id });
    });
  }

  /** A new fanout steering program for every worker's AF_PACKET links (src/datapath/workers/steer.ts). */
  steer(program: Uint8Array): void {
    if (!this.closed) this.broadcast({ type: "fanout", program });
  }

  /** Once mode: give worker `index`'s replay link `link` new frames (replayed by the next `run`). */
  load(index: number, link: number, frames: { data: Uint8Array; off: Uint32Array; len: Uint32Array }): void {
    this.workers[index]!.postMessage({ type: "frames", link, warmup: 0, ...frames } satisfies HostMessage);
  }

  /** Worker i's published counter block (tests). */
  block(i: number): Float64Array {
    return this.views[i]!;
  }

  /**
   * A busy-polling AF_XDP link's counters summed over the workers (their last publishes), for
   * the NAPI governor (src/control/napi.ts): frames received, frames the kernel dropped at the
   * RX rings, receive rounds and those that brought a whole budget.
   */
  busySample(l: number): {
    frames: number;
    drops: number;
    polls: number;
    fullPolls: number;
    overloads: number;
    stale: boolean;
  } {
    const r = { frames: 0, drops: 0, polls: 0, fullPolls: 0, overloads: 0, stale: false };
    const now = performance.now();
    for (let w = 0; w < this.views.length; w++) {
      const c = this.views[w]!;
      // a worker publishes at least every 200 ms (its timer); one that has not for STALE_MS is
      // starved of CPU (receive livelock when the kernel's softirqs take it all)
      const pubs = c[CTR.PUBLISHES]!;
      if (pubs !== this.pubSeen[w]) {
        this.pubSeen[w] = pubs;
        this.pubAt[w] = now;
      } else if (now - (this.pubAt[w] ?? now) > STALE_MS && !this.exited.has(w)) r.stale = true;
      if (l >= MAX_LINKS) continue;
      const o = LINK_BASE + l * LINK_SLOTS;
      r.frames += c[o]!;
      r.drops += c[o + LINK_KERNEL_DROPS]!;
      r.polls += c[o + LINK_POLLS]!;
      r.fullPolls += c[o + LINK_FULL_POLLS]!;
      r.overloads += c[o + LINK_OVERLOADS]!;
    }
    return r;
  }
  private readonly pubSeen: number[] = [];
  private readonly pubAt: number[] = [];

  /**
   * Link l's counters in worker w (as the worker's link reported them at its last publish; only
   * the first MAX_LINKS links).
   */
  linkStats(
    w: number,
    l: number,
  ): {
    rxPackets: number;
    rxBytes: number;
    txPackets: number;
    txBytes: number;
    rxDropped: number;
    txDropped: number;
  } {
    const c = this.views[w]!;
    const o = LINK_BASE + l * LINK_SLOTS;
    const at = (k: number): number => (l < MAX_LINKS ? c[o + k]! : 0);
    return {
      rxPackets: at(0),
      rxBytes: at(1),
      txPackets: at(2),
      txBytes: at(3),
      rxDropped: at(4),
      txDropped: at(5),
    };
  }

  /** Sums of the workers' header counters. */
  totals(): WorkerTotals {
    const t: WorkerTotals = {
      frames: 0,
      batches: 0,
      forwarded: 0,
      txFrames: 0,
      conns: 0,
      replicaFailures: 0,
    };
    for (const c of this.views) {
      t.frames += c[CTR.FRAMES]!;
      t.batches += c[CTR.BATCHES]!;
      t.forwarded += c[CTR.FORWARDED]!;
      t.txFrames += c[CTR.TX_FRAMES]!;
      t.conns += c[CTR.CONNS]!;
      t.replicaFailures += c[CTR.REPLICA_FAILURES]!;
    }
    return t;
  }

  /**
   * The workers' connections by kind and templates by state, summed (the layout of
   * ConnTable.kindCounts followed by templateCounts: KIND_SLOTS values).
   */
  kindTotals(out: Float64Array = new Float64Array(KIND_SLOTS)): Float64Array {
    out.fill(0);
    for (const c of this.views) for (let k = 0; k < KIND_SLOTS; k++) out[k]! += c[CTR.KINDS + k]!;
    return out;
  }

  /**
   * Sum the workers' counters into the master's services and dests, its drop counters and its
   * forwarded count (what lvsadm, the estimator and the metrics read).
   */
  collect(): void {
    const e = this.engine;
    const t = e.table;
    for (const s of t.services) {
      if (s === null) continue;
      let conns = 0;
      let ip = 0;
      let op = 0;
      let ib = 0;
      let ob = 0;
      for (let w = 0; w < this.views.length; w++) {
        const c = this.views[w]!;
        if (s.id >= this.blocks[w]!.svcCap) continue;
        const o = SVC_BASE + s.id * SVC_SLOTS;
        conns += c[o]!;
        ip += c[o + 1]!;
        op += c[o + 2]!;
        ib += c[o + 3]!;
        ob += c[o + 4]!;
      }
      s.conns = conns;
      s.inPkts = ip;
      s.outPkts = op;
      s.inBytes = ib;
      s.outBytes = ob;
      for (const d of s.dests) {
        const sum = this.destSum.fill(0);
        for (let w = 0; w < this.views.length; w++) {
          const b = this.blocks[w]!;
          if (d.id >= b.destCap) continue;
          const c = this.views[w]!;
          const o = destBase(b.svcCap) + d.id * DEST_SLOTS;
          for (let k = 0; k < DEST_SLOTS; k++) sum[k]! += c[o + k]!;
        }
        d.conns = sum[0]!;
        d.inPkts = sum[1]!;
        d.outPkts = sum[2]!;
        d.inBytes = sum[3]!;
        d.outBytes = sum[4]!;
        d.activeConns = sum[5]!;
        d.inactConns = sum[6]!;
        d.persistConns = sum[7]!;
      }
    }
    e.drops.fill(0);
    let fwd = 0;
    let fast = 0;
    for (const c of this.views) {
      for (let r = 0; r < e.drops.length; r++) e.drops[r]! += c[CTR.DROPS + r]!;
      fwd += c[CTR.FORWARDED]!;
      fast += c[CTR.FASTPATH]!;
    }
    e.forwarded = fwd;
    e.fast.taken = fast;
  }

  private async terminate(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  /** Stop every worker (its links closed) and wait for the threads to end. */
  async stop(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.engine.table.journal !== null) this.engine.table.journal = null;
    const exits = this.workers.map((w, i) =>
      this.exited.has(i)
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            w.once("exit", () => resolve());
          }),
    );
    this.broadcast({ type: "stop" });
    const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 2000).unref());
    if ((await Promise.race([Promise.all(exits), timeout])) === "timeout") await this.terminate();
    this.collect();
  }
}
