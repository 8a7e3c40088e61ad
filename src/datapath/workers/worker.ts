/**
 * A data-path worker (docs/workers.md): one Engine and Director in a worker thread, with its
 * own connection table, its own links and its own copy of the service table. The host
 * (src/control/workers.ts) starts it with `init` (workerData) and then, between batches, sends
 * it the master table's changes (TableOps), the knobs vector and bigger counter blocks; the
 * worker publishes its counters into its shared block for the host to sum.
 *
 * Control messages are taken between batches only: in "events" mode by the worker's event loop
 * (a link's readiness callback runs whole rounds of batches), in "run" mode by polling the port
 * with receiveMessageOnPort after every few batches of the timed loop.
 *
 * Data path only: it imports src/datapath, src/tables and src/lib.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { TableReplica } from "../../tables/journal.js";
import type { MarkRule } from "../../tables/marks.js";
import { CONN_F_TEMPLATE, CONN_F_USED } from "../conntrack/table.js";
import { Director, type LinkBackend } from "../director.js";
import { Engine } from "../engine.js";
import { DEFAULT_SLOT_SIZE } from "../io/batch.js";
import { adviseHugePages } from "../io/native.js";
import { openRaw, RawIo } from "../io/rawsock.js";
import { ReplayLink } from "../io/replay.js";
import { openXdp, type XdpIo } from "../io/xdp.js";
import { NEIGH_REACHABLE } from "../net/neigh.js";
import { SECRET_ROTATE_MS } from "../synproxy.js";
import { HandoffLink, HandoffRing, SteeredLink, SteerRoles } from "./handoff.js";
import {
  CTR,
  destBase,
  type HostMessage,
  LINK_BASE,
  LINK_FULL_POLLS,
  LINK_KERNEL_DROPS,
  LINK_OVERLOADS,
  LINK_POLLS,
  LINK_SLOTS,
  MAX_LINKS,
  PUBLISH_MS,
  putDest,
  putService,
  type RunResult,
  type WorkerConn,
  type WorkerInit,
  type WorkerMessage,
  writeKnobs,
} from "./protocol.js";
import { steerTablesOf } from "./steer.js";

/** How lvsd's loop runs: rounds of batches per readable event, timers. */
const ROUNDS_PER_WAKE = 64;
const TICK_MS = 200;
const SWEEP_PER_TICK = 10_000;
/** Run mode: poll the port for control messages every this many batches. */
const POLL_EVERY = 8;
/** UMEM chunks per AF_XDP link (its rx and tx rings' 2,048 each), as lvsd's single engine. */
const XDP_LINK_CHUNKS = 4096;

class Worker {
  readonly init: WorkerInit;
  readonly engine: Engine;
  readonly director: Director;
  readonly replica: TableReplica;
  counters: Float64Array;
  destBase: number;
  svcCap: number;
  destCap: number;
  lastPublish = 0;
  stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private secretTimer: NodeJS.Timeout | null = null;
  /** AF_XDP with 2+ workers: the steering addresses, and the frames other workers hand over. */
  readonly roles = new SteerRoles();
  private rolesGen = -1;
  readonly steered: SteeredLink[] = [];
  handoff: HandoffLink | null = null;
  /** Per link: its busy poll's budget (0: not busy-polling), its AF_XDP socket, receive rounds, full ones. */
  readonly busyBudget: number[] = [];
  readonly xsk: (XdpIo | null)[] = [];
  readonly polls: Float64Array;
  readonly fullPolls: Float64Array;
  readonly overloads: Float64Array;

  constructor(init: WorkerInit) {
    this.init = init;
    const e = new Engine({ maxConns: init.maxConns, sweepPerBatch: 64 });
    e.table.laddrSlice = { index: init.index, count: init.count };
    // each worker's table gets huge pages as the single engine's does (issue 13 §6)
    adviseHugePages(e.ct.buffers());
    this.engine = e;
    this.director = new Director(e, init.batchSize);
    this.replica = new TableReplica(e.table);
    this.counters = new Float64Array(init.counters.sab);
    this.svcCap = init.counters.svcCap;
    this.destCap = init.counters.destCap;
    this.destBase = destBase(this.svcCap);
    this.polls = new Float64Array(init.links.length);
    this.fullPolls = new Float64Array(init.links.length);
    this.overloads = new Float64Array(init.links.length);
    const opened: LinkBackend[] = [];
    const nXdp = init.links.filter((l) => l.kind === "xdp").length;
    let umemOwner: XdpIo | undefined;
    // rings[w]: this worker's ring to worker w (handoff.ts)
    const toRings =
      init.handoff !== undefined
        ? Array.from({ length: init.count }, (_, w) => {
            const r = init.handoff![init.index * init.count + w];
            return r ? new HandoffRing(r) : null;
          })
        : null;
    try {
      init.links.forEach((spec, l) => {
        let io: LinkBackend;
        if (spec.kind === "replay") {
          io = new ReplayLink(
            spec.name,
            spec.mac,
            spec.mtu,
            { data: spec.data, off: spec.off, len: spec.len, warmup: spec.warmup },
            init.batchSize,
            DEFAULT_SLOT_SIZE,
            spec.capture,
          );
        } else if (spec.kind === "xdp") {
          // one socket per worker on its own queue, behind the host's XDP program; the worker's
          // AF_XDP links share a UMEM so frames cross between them by descriptor
          const o = {
            ifname: spec.name,
            queue: spec.queue,
            program: { mapFd: spec.mapFd, xdpMode: spec.xdpMode, redirect: spec.redirect },
            ...(spec.busyPoll ? { busyPoll: spec.busyPoll, busyBudget: spec.busyBudget ?? 64 } : {}),
          };
          let x: XdpIo;
          if (umemOwner === undefined) {
            x = openXdp(nXdp > 1 ? { ...o, umemFrames: XDP_LINK_CHUNKS * nXdp } : o);
            umemOwner = x;
          } else x = openXdp({ ...o, share: umemOwner });
          opened.push(x);
          this.xsk[l] = x;
          if (spec.busyPoll) this.busyBudget[l] = spec.busyBudget ?? 64;
          if (toRings !== null) {
            const st = new SteeredLink(x, init.index, toRings, this.roles);
            this.steered.push(st);
            io = st;
          } else io = x;
        } else {
          io = openRaw({
            ifname: spec.name,
            fanout: { group: spec.fanoutGroup, program: spec.program },
            ...(spec.busyPoll !== undefined ? { busyPoll: spec.busyPoll } : {}),
          });
        }
        if (spec.kind !== "xdp") opened.push(io); // (an AF_XDP socket is in `opened` already)
        e.net.addLink(spec.name, io.mac, init.net.addrs[l] ?? [], io.mtu);
        this.director.attach(io);
      });
    } catch (err) {
      for (const io of opened) io.close();
      throw err;
    }
    if (init.handoff !== undefined) {
      const from: HandoffRing[] = [];
      for (let w = 0; w < init.count; w++) {
        const r = init.handoff[w * init.count + init.index];
        if (w !== init.index && r) from.push(new HandoffRing(r));
      }
      // after the real links: the engine's Net has no link of this index, nothing egresses here
      this.handoff = new HandoffLink(from);
      this.director.attach(this.handoff);
    }
    for (const r of init.net.routes) e.net.addRoute(r.net, r.prefix, r.via);
    for (const n of init.net.neighs) e.net.neigh.learn(n.addr, n.mac, 0, n.link, 0, true);
    for (const o of init.ops) this.replica.apply(o);
    this.setMarks(init.marks);
    writeKnobs(e, init.knobs);
    this.steerRoles();
    this.publish();
  }

  /** AF_XDP steering: the table's VIPs, local addresses and NAT real servers, when they changed. */
  private steerRoles(): void {
    const t = this.engine.table;
    if (this.steered.length === 0 || t.generation === this.rolesGen) return;
    this.rolesGen = t.generation;
    const s = steerTablesOf(t);
    this.roles.set(s.laddrs, s.vips, s.natDests);
  }

  /** Write this worker's counters into its block (between batches). */
  publish(): void {
    const c = this.counters;
    const e = this.engine;
    const d = this.director;
    c[CTR.FRAMES] = d.frames;
    c[CTR.BATCHES] = d.batches;
    c[CTR.FORWARDED] = e.forwarded;
    c[CTR.FASTPATH] = e.fast.taken;
    c[CTR.QUEUED] = e.queued;
    c[CTR.CONNS] = e.ct.count;
    e.ct.countsInto(c, CTR.KINDS);
    c[CTR.REPLICA_FAILURES] = this.replica.failures;
    const h = this.handoff;
    if (h !== null) {
      // the handoff link's row (lvsadm --links "handoff:wN"): frames from the other workers in,
      // frames handed to them out, frames their full rings refused (or too long to hand over)
      let out = 0;
      let lost = 0;
      for (const st of this.steered) {
        out += st.handedOff;
        lost += st.handoffDrops;
      }
      h.stats.txPackets = out;
      h.stats.rxDropped = lost + h.tooLong();
    }
    let tx = 0;
    for (let l = 0; l < d.links.length; l++) {
      const st = d.links[l]!.stats;
      tx += st.txPackets;
      if (l >= MAX_LINKS) continue;
      const o = LINK_BASE + l * LINK_SLOTS;
      c[o] = st.rxPackets;
      c[o + 1] = st.rxBytes;
      c[o + 2] = st.txPackets;
      c[o + 3] = st.txBytes;
      c[o + 4] = st.rxDropped;
      c[o + 5] = st.txDropped;
      if ((this.busyBudget[l] ?? 0) > 0) {
        c[o + LINK_POLLS] = this.polls[l]!;
        c[o + LINK_FULL_POLLS] = this.fullPolls[l]!;
        c[o + LINK_KERNEL_DROPS] = this.xsk[l]!.detail().kernelDrops;
        c[o + LINK_OVERLOADS] = this.overloads[l]!;
      }
    }
    c[CTR.TX_FRAMES] = tx;
    const drops = e.drops;
    for (let r = 0; r < drops.length; r++) c[CTR.DROPS + r] = drops[r]!;
    const svcs = this.replica.svcs;
    const n = Math.min(svcs.length, this.svcCap);
    for (let i = 0; i < n; i++) {
      const s = svcs[i];
      if (s) putService(c, i, s);
    }
    const dests = this.replica.dests;
    const m = Math.min(dests.length, this.destCap);
    for (let i = 0; i < m; i++) {
      const dd = dests[i];
      if (dd) putDest(c, this.destBase, i, dd);
    }
    c[CTR.PUBLISHES] = c[CTR.PUBLISHES]! + 1;
    this.lastPublish = performance.now();
  }

  /** The connection table's entries, for lvsadm -Lc (control plane: allocates). */
  private connEntries(): WorkerConn[] {
    const ct = this.engine.ct;
    const now = performance.now();
    const out: WorkerConn[] = [];
    for (let i = 0; i < ct.capacity; i++) {
      const f = ct.flags[i]!;
      if ((f & CONN_F_USED) === 0) continue;
      out.push({
        proto: ct.proto[i]!,
        caddr: ct.caddr[i]!,
        cport: ct.cport[i]!,
        vaddr: ct.vaddr[i]!,
        vport: ct.vport[i]!,
        daddr: ct.daddr[i]!,
        dport: ct.dport[i]!,
        state: ct.stateName(i),
        expiresInMs: Math.max(0, ct.expiresAt(i) - now),
        template: (f & CONN_F_TEMPLATE) !== 0,
        fwd: ct.fwd[i]!,
      });
    }
    return out;
  }

  /** Replace the MARK rules with the master's (their counters start at 0 here). */
  private setMarks(rules: readonly MarkRule[]): void {
    const m = this.engine.marks;
    if (m.length > 0) m.flush();
    for (const r of rules) m.append({ ...r, ports: [...r.ports], pkts: 0, bytes: 0 });
  }

  /** A new SYN-proxy cookie secret from the system's random source (the previous stays valid). */
  private rotateSecret(): void {
    const b = randomBytes(8);
    this.engine.synproxy.rotate(b.readUInt32BE(0), b.readUInt32BE(4));
  }

  /** A control message, between batches. */
  handle(msg: HostMessage): void {
    switch (msg.type) {
      case "ops":
        for (const o of msg.ops) this.replica.apply(o);
        this.steerRoles();
        this.counters[CTR.APPLIED] = msg.seq;
        this.publish();
        post({ type: "applied", seq: msg.seq });
        return;
      case "marks":
        this.setMarks(msg.rules);
        this.counters[CTR.APPLIED] = msg.seq;
        post({ type: "applied", seq: msg.seq });
        return;
      case "knobs":
        writeKnobs(this.engine, msg.knobs);
        this.counters[CTR.APPLIED] = msg.seq;
        post({ type: "applied", seq: msg.seq });
        return;
      case "counters":
        this.counters = new Float64Array(msg.counters.sab);
        this.svcCap = msg.counters.svcCap;
        this.destCap = msg.counters.destCap;
        this.destBase = destBase(this.svcCap);
        this.publish();
        return;
      case "neigh": {
        const t = performance.now();
        this.engine.tx.reset();
        this.engine.resolver.learned(msg.addr, msg.mac, msg.link, t);
        this.director.sendTx(t);
        return;
      }
      case "conns":
        post({ type: "conns", id: msg.id, conns: this.connEntries() });
        return;
      case "fanout":
        try {
          for (const io of this.director.links) if (io instanceof RawIo) io.setFanoutProgram(msg.program);
        } catch (err) {
          post({ type: "error", index: this.init.index, message: (err as Error).message });
        }
        return;
      case "stop":
        this.stop();
        return;
      case "frames": {
        const io = this.director.links[msg.link];
        if (io instanceof ReplayLink) io.load(msg);
        return;
      }
      case "replay": {
        for (const r of this.replayLinks()) r.rewind();
        const result = this.runOnce();
        post({ type: "done", index: this.init.index, result });
        return;
      }
      case "init":
        return;
      default: {
        const never: never = msg;
        void never;
      }
    }
  }

  /** Poll the port for control messages without yielding (run mode, between batches). */
  poll(): void {
    const port = parentPort!;
    for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port))
      this.handle(m.message as HostMessage);
  }

  /** lvsd: forward as links become readable; timers as lvsd's own. */
  runEvents(): void {
    const d = this.director;
    const e = this.engine;
    const cap = d.rx.capacity;
    // The SYN proxy's secret, per worker (a client's SYN and ACK reach the same worker): twice
    // now, so neither it nor the "previous" one is Math.random's, then as the master's defence.
    this.rotateSecret();
    this.rotateSecret();
    this.secretTimer = setInterval(() => this.rotateSecret(), SECRET_ROTATE_MS);
    d.links.forEach((io, l) => {
      io.onReadable(() => {
        // As lvsd's own loop: the data path returns statuses and never throws; should a bug make
        // it throw anyway, the batch is dropped, the host logs it (rate-limited) and the worker
        // goes on with its state intact.
        try {
          const budget = this.busyBudget[l] ?? 0;
          if (budget === 0) {
            for (let r = 0; r < ROUNDS_PER_WAKE; r++) if (d.pumpLink(l, performance.now()) < cap) break;
          } else {
            // busy-poll=: each round polls the queue (as lvsd's own loop); the host's governor
            // reads how many rounds there were and how many came back with a whole budget
            for (let r = 0; r < ROUNDS_PER_WAKE; r++) {
              const n = d.pumpLink(l, performance.now());
              this.polls[l]!++;
              if (n >= budget) this.fullPolls[l]!++;
              if (n === cap && r === 0) {
                // a whole batch was waiting: tell the governor now, not at the next publish
                this.overloads[l]!++;
                this.publish();
              }
              if (n === 0) break;
            }
          }
        } catch (err) {
          this.internalError(l, err);
        }
        if (performance.now() - this.lastPublish >= PUBLISH_MS) this.publish();
      });
    });
    this.timer = setInterval(() => {
      const t = performance.now();
      e.maintain(t);
      d.sendTx(t);
      e.ct.sweep(SWEEP_PER_TICK);
      if (this.init.index === 0) {
        this.shareNeighbours();
        this.announceNewVips(t);
      }
      this.publish();
    }, TICK_MS);
  }

  private internalErrors = 0;
  private lastErrorPost = Number.NEGATIVE_INFINITY;
  private internalError(link: number, err: unknown): void {
    this.internalErrors++;
    const t = performance.now();
    if (t - this.lastErrorPost < 10_000) return;
    this.lastErrorPost = t;
    const stack = (err as Error).stack ?? String(err);
    post({
      type: "error",
      index: this.init.index,
      message: `internal error #${this.internalErrors} on link ${link} (batch dropped): ${stack}`,
    });
  }

  private neighScan = 0;
  /**
   * Worker 0 gets the ARP frames (the fanout program sends them there): tell the host which
   * neighbours it learned or refreshed since the last look, for the other workers.
   */
  private shareNeighbours(): void {
    const n = this.engine.net.neigh;
    const since = this.neighScan;
    this.neighScan = performance.now();
    if (this.init.count < 2) return;
    for (const i of n.entries()) {
      if (n.state[i] !== NEIGH_REACHABLE || n.updated[i]! <= since) continue;
      post({ type: "neigh", addr: n.ipAt(i), mac: n.macs.slice(i * 6, i * 6 + 6), link: n.link[i]! });
    }
  }

  private knownVips = new Set<number>();
  private seenGen = -1;
  /** Worker 0 announces VIPs that appear with gratuitous ARP, as a single lvsd does. */
  private announceNewVips(t: number): void {
    const table = this.engine.table;
    if (table.generation === this.seenGen) return;
    this.seenGen = table.generation;
    const vips = new Set(table.vips());
    this.engine.tx.reset();
    for (const v of vips) if (!this.knownVips.has(v)) this.engine.announce(v);
    this.knownVips = vips;
    this.director.sendTx(t);
  }

  replayLinks(): ReplayLink[] {
    return this.director.links.filter((io): io is ReplayLink => io instanceof ReplayLink);
  }

  /** Pump every link once; returns the frames received. */
  private pumpAll(now: number): number {
    const d = this.director;
    let n = 0;
    for (let l = 0; l < d.links.length; l++) n += d.pumpLink(l, now);
    return n;
  }

  /** Benchmarks: warm up, wait for `go`, then a timed loop over the replay links. */
  runTimed(): RunResult {
    const links = this.replayLinks();
    // warm-up frames (connections opened) before the clock starts
    while (links.some((r) => r.warming)) this.pumpAll(performance.now());
    for (const r of links) r.loop = true;
    const before = this.director.frames;
    const beforeFwd = this.engine.forwarded;
    if (this.init.go) {
      const go = new Int32Array(this.init.go);
      post({ type: "ready", index: this.init.index });
      Atomics.wait(go, 0, 0);
    }
    const runMs = this.init.runMs ?? 1000;
    const cpu0 = threadCpuMs();
    const t0 = performance.now();
    let t = t0;
    let k = 0;
    while (t - t0 < runMs) {
      this.pumpAll(t);
      t = performance.now();
      if (++k % POLL_EVERY === 0) {
        this.poll();
        if (t - this.lastPublish >= PUBLISH_MS) this.publish();
      }
    }
    const cpu = threadCpuMs();
    this.publish();
    const r = this.result(this.director.frames - before, t - t0, this.engine.forwarded - beforeFwd);
    r.cpuMs = cpu0 < 0 ? -1 : cpu - cpu0;
    return r;
  }

  /** Tests: pump until the replay links have nothing left; result with the captured frames. */
  runOnce(): RunResult {
    const t0 = performance.now();
    const before = this.director.frames;
    for (;;) {
      this.poll();
      if (this.pumpAll(performance.now()) === 0) break;
    }
    this.publish();
    return this.result(this.director.frames - before, performance.now() - t0, this.engine.forwarded);
  }

  private result(frames: number, ms: number, forwarded: number): RunResult {
    const links = this.director.links;
    return {
      frames,
      ms,
      forwarded,
      sent: links.map((io) => io.stats.txPackets),
      captured: links.map((io) => (io instanceof ReplayLink ? io.captured.splice(0) : [])),
      drops: Array.from(this.engine.drops),
      cpuMs: -1,
    };
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.secretTimer) clearInterval(this.secretTimer);
    this.publish();
    for (const io of this.director.links) {
      io.onReadable(null);
      io.close();
    }
    parentPort?.close();
  }
}

/**
 * This thread's CPU time (user + system) in ms, from /proc/thread-self/stat (clock ticks of
 * 10 ms); -1 where that file does not exist. Benchmarks only, between runs.
 */
function threadCpuMs(): number {
  try {
    const st = readFileSync("/proc/thread-self/stat", "latin1");
    const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return -1;
  }
}

function post(m: WorkerMessage): void {
  parentPort?.postMessage(m);
}

function main(): void {
  const init = workerData as WorkerInit;
  let w: Worker;
  try {
    w = new Worker(init);
  } catch (err) {
    post({ type: "error", index: init.index, message: (err as Error).message });
    parentPort?.close();
    return;
  }
  if (init.mode === "events") {
    parentPort!.on("message", (m: HostMessage) => w.handle(m));
    w.runEvents();
    post({ type: "ready", index: init.index });
    return;
  }
  if (init.mode === "run") {
    const result = w.runTimed();
    post({ type: "done", index: init.index, result });
  } else {
    post({ type: "ready", index: init.index }); // "once": each `replay` message runs the links once
  }
  parentPort!.on("message", (m: HostMessage) => w.handle(m));
}

if (parentPort !== null) main();
