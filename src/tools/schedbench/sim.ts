/**
 * The discrete-event simulation behind lvs-schedbench: one virtual service, its real servers
 * modelled as queues, and a workload of connection arrivals, run once per scheduler.
 *
 * The service and its dests are the project's own objects: a ServiceTable holds the service, dests
 * are added, edited and deleted through it exactly as lvsadm would (new dests at the head of the
 * list, `lastWeight` kept across weight 0, AVAILABLE cleared on removal, the scheduler's
 * onDestsChanged hook called on every change), and the scheduler is the registered module. The
 * simulator keeps the fields schedulers read on those Dest objects as the engine would:
 *
 * - a connection is bound when scheduled: inactConns++ and the upper-threshold check
 *   (destOverloadOnBind), as conntrack's create does; a TCP connection then turns ESTABLISHED at
 *   once (inactive → active) and stays active while it waits for a slot and while it is served;
 * - when its request completes (or is refused, or its server dies) it turns inactive and lingers
 *   for the scenario's `linger` (TIME_WAIT and friends), then is freed: inactConns--,
 *   destOverloadOnUnbind and the scheduler's onConnDone, as conntrack's free does. UDP connections
 *   are inactive throughout, as in IPVS;
 * - `rateBps` (lt, wlt) comes from an estimator like IPVS's: every `estimator` interval the bytes of
 *   the requests completed in the interval give a rate r, and rateBps += (r − rateBps) / 4;
 * - `respTimeUs` (wrt) is an EWMA (gain 1/8) of the latency of completed requests, plus one
 *   health-check probe per estimator interval estimating what a request arriving then would wait
 *   for (so an idle dest's figure recovers and wrt cannot starve a dest for ever);
 * - `clock.nowMs` follows simulated time (lblc/lblcr read it for their cache timers).
 *
 * Servers: `slots` parallel workers at `speed`; a request of cost c takes c / speed ms of one
 * slot; requests wait FIFO for a slot, and a connection that finds `backlog` others waiting is
 * refused. Latency = completion − arrival (waiting plus service).
 *
 * Persistence (when the scenario sets it) is modelled here, as the engine does it: a template per
 * client network (source address & mask) pointing at a dest, restarted by each connection that
 * uses it, expiring `timeout` after its last use once no connection it controls is open. A
 * template whose dest left the service (or has weight 0, with `expire-quiescent`) is dropped and
 * the client rescheduled. persistConns is counted on the dests.
 *
 * Cache model (scenario `cache SIZE miss F`, for cache clusters, where lblc and dh belong): each
 * server keeps the SIZE destination addresses it served most recently (LRU); a request for an
 * address it does not hold costs F times its cost, and the address is then cached.
 *
 * Failures (`at T fail s detect D`): at T the server stops; requests in service or waiting are
 * aborted (errors) and new connections the scheduler still sends it are black-holed (errors) until
 * the health check notices at T + D and deletes the dest (or sets weight 0 with `inhibit`);
 * `recover` brings the server back and the health check re-adds it D later.
 */

import { clock } from "../../datapath/clock.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import {
  DEST_F_AVAILABLE,
  type Dest,
  destChanged,
  destOverloadOnBind,
  destOverloadOnUnbind,
  type FlowInfo,
  FwdMethod,
  type Service,
  SVC_F_PERSISTENT,
} from "../../tables/model.js";
import { type ServiceKey, ServiceTable } from "../../tables/services.js";
import { formatIPv4 } from "./addr.js";
import { EventHeap } from "./heap.js";
import { distMean } from "./rng.js";
import type { DestSpec, Scenario, ScenarioEvent } from "./scenario.js";
import { type LatencySummary, maxOverMean, summarize } from "./stats.js";
import { type SchedVariant, variantFlagBits } from "./variants.js";
import type { Workload } from "./workload.js";

export interface ServerResult {
  readonly name: string;
  readonly addr: string;
  /** Weight at the start (or when added). */
  readonly weight: number;
  readonly slots: number;
  readonly speed: number;
  /** Connections scheduled to this server (measured ones). */
  readonly conns: number;
  readonly connShare: number;
  /** Slot-milliseconds of service within the measurement window. */
  readonly busyMs: number;
  readonly busyShare: number;
  /** busyMs / (slots × time in service within the window). */
  readonly util: number;
  /** Time this server was in the service with a weight above 0, within the window, ms. */
  readonly inServiceMs: number;
  readonly completed: number;
  readonly errors: number;
  readonly meanLatencyMs: number;
}

export interface ErrorCounts {
  /** The scheduler gave no dest. */
  readonly noDest: number;
  /** Sent to a server that had died and not yet been taken out (black-holed). */
  readonly deadDest: number;
  /** The server's backlog was full. */
  readonly refused: number;
  /** In service or waiting when the server died. */
  readonly aborted: number;
  /** Still waiting or in service when the run ended (arrivals end + drain). */
  readonly unfinished: number;
  readonly total: number;
}

export interface RunResult {
  readonly scheduler: string;
  /** Measured arrivals (at or after warmup). */
  readonly arrivals: number;
  readonly completed: number;
  readonly errors: ErrorCounts;
  readonly errorRate: number;
  readonly latencyMs: LatencySummary | null;
  /** max / mean over servers in service: connections per in-service time, and utilization. */
  readonly imbalance: { readonly conns: number; readonly util: number };
  /** Of measured connections from a client seen before, the fraction sent to the same server as its previous one. */
  readonly affinity: number | null;
  readonly servers: readonly ServerResult[];
  /** Requests served from the server's cache, of those served (null without a cache model). */
  readonly cacheHitRatio: number | null;
  /** Simulated events processed (a cost indicator). */
  readonly events: number;
  readonly endMs: number;
}

export interface SimOptions {
  /** Called now and then with the fraction of arrivals processed. */
  readonly onProgress?: (fraction: number) => void;
}

// Connection states (0: never scheduled, e.g. no dest).
const C_QUEUED = 1;
const C_SERVING = 2;
const C_LINGER = 3;
const C_DONE = 4;

// Heap payload kinds (payload = index * 4 + kind).
const K_COMPLETE = 0;
const K_LINGER = 1;
const K_HC_DOWN = 2;
const K_HC_UP = 3;

/** Arbitrary origin of clock.nowMs during a run (schedulers only see differences). */
const CLOCK_ORIGIN_MS = 1_000_000;
const RESP_GAIN = 1 / 8;
const RATE_GAIN = 1 / 4;

class Flow implements FlowInfo {
  saddr = 0;
  daddr = 0;
  sport = 0;
  dport = 0;
  proto = 0;
}

interface Template {
  readonly key: number;
  readonly dest: Dest;
  expires: number;
  nControl: number;
  valid: boolean;
}

class Server {
  readonly spec: DestSpec;
  /** Position in the simulation's server list. */
  readonly index: number;
  dest: Dest | null = null;
  /** Weight an operator set (spec weight, or the last `at T weight`). */
  weight: number;
  alive = true;
  inhibited = false;
  adminRemoved = false;
  /** Inhibit mode of a pending health-check "down". */
  pendingInhibit = false;
  busy = 0;
  /** Connections in service (swap-remove; cSlot holds the position). */
  readonly serving: number[] = [];
  queue: number[] = [];
  qHead = 0;
  /** Cached destination addresses, least recently used first (Map order), when the scenario has a cache. */
  readonly cache: Map<number, true> | null;
  // Statistics.
  conns = 0;
  completed = 0;
  errors = 0;
  busyMs = 0;
  latSum = 0;
  bytesTick = 0;
  inServiceSince = -1;
  inServiceMs = 0;

  constructor(spec: DestSpec, index: number, cached: boolean) {
    this.spec = spec;
    this.index = index;
    this.weight = spec.weight;
    this.cache = cached ? new Map() : null;
  }

  get qLen(): number {
    return this.queue.length - this.qHead;
  }

  dequeue(): number {
    const c = this.queue[this.qHead++]!;
    if (this.qHead > 4096 && this.qHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
    return c;
  }
}

/** Run one scheduler variant through a scenario's workload. */
export function simulate(
  scn: Scenario,
  wl: Workload,
  variant: SchedVariant,
  opts: SimOptions = {},
): RunResult {
  const savedNow = clock.nowMs;
  try {
    return new Simulation(scn, wl, variant, opts).run();
  } finally {
    clock.nowMs = savedNow;
  }
}

class Simulation {
  private readonly table: ServiceTable;
  private readonly key: ServiceKey;
  private readonly svc: Service;
  private readonly servers: Server[] = [];
  private readonly serverOf = new Map<Dest, Server>();
  private readonly heap = new EventHeap();
  private readonly flow = new Flow();
  // Per connection (indexed like the workload).
  private readonly cState: Uint8Array;
  private readonly cActive: Uint8Array;
  private readonly cServer: Int32Array;
  private readonly cSlot: Int32Array;
  private readonly cStart: Float64Array;
  private readonly cDest: (Dest | null)[];
  private readonly cTpl: (Template | null)[];
  private readonly templates = new Map<number, Template>();
  private readonly lastServer = new Map<number, Server>();
  private readonly latencies: Float64Array;
  private nLat = 0;
  private working = 0;
  private events = 0;
  private readonly w0: number;
  private readonly w1: number;
  private readonly meanCost: number;
  // Error counters (measured connections only).
  private noDest = 0;
  private deadDest = 0;
  private refused = 0;
  private aborted = 0;
  private affSame = 0;
  private cacheHits = 0;
  private cacheMisses = 0;
  private affTotal = 0;
  private arrivals = 0;

  constructor(
    private readonly scn: Scenario,
    private readonly wl: Workload,
    private readonly variant: SchedVariant,
    private readonly opts: SimOptions,
  ) {
    const n = wl.n;
    this.cState = new Uint8Array(n);
    this.cActive = new Uint8Array(n);
    this.cServer = new Int32Array(n).fill(-1);
    this.cSlot = new Int32Array(n).fill(-1);
    this.cStart = new Float64Array(n);
    this.cDest = new Array<Dest | null>(n).fill(null);
    this.cTpl = new Array<Template | null>(n).fill(null);
    this.latencies = new Float64Array(n);
    this.w0 = scn.warmupMs;
    this.w1 = Math.max(wl.endMs, scn.warmupMs);
    this.meanCost = Math.min(distMean(scn.cost), 1e9);

    clock.nowMs = CLOCK_ORIGIN_MS;
    const mod = variant.module;
    this.table = new ServiceTable((name) => (name === mod.name ? mod : undefined));
    this.key = {
      proto: scn.proto === "udp" ? IPPROTO_UDP : IPPROTO_TCP,
      addr: scn.vipAddr,
      port: scn.vipPort,
    };
    const p = scn.persistence;
    this.svc = this.table.addService(this.key, {
      sched: mod.name,
      flags: variantFlagBits(variant, scn.schedFlags) | (p ? SVC_F_PERSISTENT : 0),
      timeout: p ? Math.max(1, Math.round(p.timeoutMs / 1000)) : 0,
      netmask: p ? p.mask : 0xffffffff,
    });
    for (const spec of scn.dests) this.addServer(spec, 0);
  }

  // ---- service changes (through the ServiceTable, as lvsadm would) ----

  private destOptions(s: Server, weight: number) {
    const sp = s.spec;
    return {
      addr: sp.addr,
      port: sp.port,
      weight,
      fwd: FwdMethod.MASQ,
      uThreshold: sp.uThreshold,
      lThreshold: sp.lThreshold,
    };
  }

  private addServer(spec: DestSpec, t: number): void {
    const s = new Server(spec, this.servers.length, this.scn.cache !== null);
    this.servers.push(s);
    this.attach(s, t);
  }

  /** Put the server's dest (back) into the service: a new Dest object, at the head of the list. */
  private attach(s: Server, t: number): void {
    const d = this.table.addDest(this.key, this.destOptions(s, s.weight));
    s.dest = d;
    this.serverOf.set(d, s);
    this.setInService(s, s.weight > 0, t);
  }

  private detach(s: Server, t: number): void {
    if (s.dest === null) return;
    this.table.deleteDest(this.key, s.spec.addr, s.spec.port);
    s.dest = null;
    this.setInService(s, false, t);
  }

  private setWeight(s: Server, w: number, t: number): void {
    if (s.dest === null) return;
    this.table.editDest(this.key, this.destOptions(s, w));
    this.setInService(s, w > 0, t);
  }

  private setInService(s: Server, on: boolean, t: number): void {
    if (on && s.inServiceSince < 0) s.inServiceSince = t;
    else if (!on && s.inServiceSince >= 0) {
      s.inServiceMs += this.overlap(s.inServiceSince, t);
      s.inServiceSince = -1;
    }
  }

  private overlap(a: number, b: number): number {
    const lo = a > this.w0 ? a : this.w0;
    const hi = b < this.w1 ? b : this.w1;
    return hi > lo ? hi - lo : 0;
  }

  private serverByName(name: string): Server {
    for (let i = this.servers.length - 1; i >= 0; i--)
      if (this.servers[i]!.spec.name === name) return this.servers[i]!;
    throw new Error(`internal: no server ${name}`);
  }

  // ---- main loop ----

  run(): RunResult {
    const wl = this.wl;
    const n = wl.n;
    const heap = this.heap;
    const script = this.scn.events.filter((e) => e.kind !== "rate" && e.kind !== "share");
    const horizon = wl.endMs + this.scn.drainMs;
    const tickMs = this.scn.estimatorMs;
    let nextTick = tickMs;
    let ai = 0;
    let ei = 0;
    let t = 0;
    const progressEvery = Math.max(1, Math.floor(n / 50));
    for (;;) {
      if (ai === n && this.working === 0 && ei === script.length) break;
      const ta = ai < n ? wl.t[ai]! : Number.POSITIVE_INFINITY;
      const te = ei < script.length ? script[ei]!.at : Number.POSITIVE_INFINITY;
      const th = heap.peekTime();
      const tt = nextTick;
      // Order at equal times: queued events, then the script, then the estimator, then arrivals.
      if (th <= te && th <= tt && th <= ta) {
        if (th > horizon) break;
        heap.pop();
        t = th;
        clock.nowMs = CLOCK_ORIGIN_MS + t;
        const p = heap.topData;
        this.handle(p & 3, p >> 2, t);
      } else if (te <= tt && te <= ta) {
        t = te;
        if (t > horizon) break;
        clock.nowMs = CLOCK_ORIGIN_MS + t;
        this.scriptEvent(script[ei++]!, t);
      } else if (tt <= ta) {
        t = tt;
        if (t > horizon) break;
        clock.nowMs = CLOCK_ORIGIN_MS + t;
        this.tick(t);
        nextTick += tickMs;
      } else {
        t = ta;
        clock.nowMs = CLOCK_ORIGIN_MS + t;
        this.arrive(ai, t);
        ai++;
        if (this.opts.onProgress && ai % progressEvery === 0) this.opts.onProgress(ai / n);
      }
      this.events++;
    }
    return this.finish(Math.min(t, horizon));
  }

  private handle(kind: number, idx: number, t: number): void {
    switch (kind) {
      case K_COMPLETE:
        this.complete(idx, t);
        break;
      case K_LINGER:
        this.free(idx);
        break;
      case K_HC_DOWN: {
        const s = this.servers[idx]!;
        if (s.alive || s.dest === null) break; // recovered before the check noticed
        if (s.pendingInhibit) {
          s.inhibited = true;
          this.setWeight(s, 0, t);
        } else this.detach(s, t);
        break;
      }
      case K_HC_UP: {
        const s = this.servers[idx]!;
        if (!s.alive) break; // failed again before the check noticed
        if (s.inhibited) {
          s.inhibited = false;
          this.setWeight(s, s.weight, t);
        } else if (s.dest === null && !s.adminRemoved) this.attach(s, t);
        break;
      }
    }
  }

  private scriptEvent(e: ScenarioEvent, t: number): void {
    switch (e.kind) {
      case "rate":
      case "share":
        break; // shaped the workload already
      case "add":
        this.addServer(e.spec, t);
        break;
      case "remove": {
        const s = this.serverByName(e.dest);
        s.adminRemoved = true;
        this.detach(s, t);
        break;
      }
      case "weight": {
        const s = this.serverByName(e.dest);
        s.weight = e.weight;
        if (!s.inhibited) this.setWeight(s, e.weight, t);
        break;
      }
      case "fail": {
        const s = this.serverByName(e.dest);
        this.kill(s, t);
        s.pendingInhibit = e.inhibit;
        this.heap.push(t + e.detectMs, s.index * 4 + K_HC_DOWN);
        break;
      }
      case "recover": {
        const s = this.serverByName(e.dest);
        s.alive = true;
        this.heap.push(t + e.detectMs, s.index * 4 + K_HC_UP);
        break;
      }
      default: {
        const never: never = e;
        throw new Error(`unknown event ${JSON.stringify(never)}`);
      }
    }
  }

  /** The server dies: everything in service or waiting on it fails. */
  private kill(s: Server, t: number): void {
    s.alive = false;
    for (const c of s.serving) {
      s.busyMs += this.overlap(this.cStart[c]!, t);
      this.fail(c, s, t, "aborted");
    }
    s.serving.length = 0;
    s.busy = 0;
    while (s.qLen > 0) this.fail(s.dequeue(), s, t, "aborted");
    s.queue = [];
    s.qHead = 0;
  }

  private fail(c: number, s: Server, t: number, why: "aborted" | "dead" | "refused"): void {
    if (this.wl.t[c]! >= this.w0) {
      if (why === "aborted") this.aborted++;
      else if (why === "dead") this.deadDest++;
      else this.refused++;
      s.errors++;
    }
    if (this.cState[c] === C_QUEUED || this.cState[c] === C_SERVING) this.working--;
    this.close(c, t);
  }

  // ---- connections ----

  private arrive(i: number, t: number): void {
    const wl = this.wl;
    const measured = t >= this.w0;
    if (measured) this.arrivals++;
    const f = this.flow;
    f.saddr = wl.saddr[i]!;
    f.daddr = wl.daddr[i]!;
    f.sport = wl.sport[i]!;
    f.dport = wl.dport[i]!;
    f.proto = wl.proto[i]!;
    const svc = this.svc;
    const sched = svc.sched!;
    let d: Dest | undefined;
    let tpl: Template | null = null;
    const p = this.scn.persistence;
    if (p !== null) {
      const key = (f.saddr & p.mask) >>> 0;
      let found = this.templates.get(key);
      if (found !== undefined) {
        if (found.nControl === 0 && t >= found.expires) {
          this.dropTemplate(found); // its timer would have fired
          found = undefined;
        } else if (
          (found.dest.flags & DEST_F_AVAILABLE) === 0 ||
          (p.expireQuiescent && found.dest.weight === 0)
        ) {
          this.dropTemplate(found); // ip_vs_check_template fails: reschedule
          found = undefined;
        }
      }
      if (found !== undefined) {
        d = found.dest;
        found.expires = t + p.timeoutMs;
        tpl = found;
      } else {
        d = sched.select(svc, f);
        if (d !== undefined) {
          tpl = { key, dest: d, expires: t + p.timeoutMs, nControl: 0, valid: true };
          this.templates.set(key, tpl);
          d.persistConns++;
          destOverloadOnBind(d);
        }
      }
    } else {
      d = sched.select(svc, f);
    }
    if (d === undefined) {
      if (measured) this.noDest++;
      return;
    }
    const s = this.serverOf.get(d);
    if (s === undefined)
      throw new Error(`internal: scheduler ${this.variant.label} returned a dest not in the service`);
    // Bind as conntrack does, then (TCP) the handshake completes: inactive → active.
    d.inactConns++;
    destOverloadOnBind(d);
    if (f.proto === IPPROTO_TCP) {
      d.inactConns--;
      d.activeConns++;
      destChanged(d); // re-rank it in the scheduler's index (lc, wlc, ...)
      this.cActive[i] = 1;
    }
    d.conns++;
    svc.conns++;
    this.cDest[i] = d;
    this.cServer[i] = s.index;
    if (tpl !== null) {
      tpl.nControl++;
      this.cTpl[i] = tpl;
    }
    if (measured) {
      s.conns++;
      const prev = this.lastServer.get(f.saddr);
      if (prev !== undefined) {
        this.affTotal++;
        if (prev === s) this.affSame++;
      }
    }
    this.lastServer.set(f.saddr, s);
    this.cState[i] = C_QUEUED;
    this.working++;
    if (!s.alive) this.fail(i, s, t, "dead");
    else if (s.busy < s.spec.slots) this.start(i, s, t);
    else if (s.qLen < s.spec.backlog) s.queue.push(i);
    else this.fail(i, s, t, "refused");
  }

  private start(c: number, s: Server, t: number): void {
    s.busy++;
    this.cState[c] = C_SERVING;
    this.cStart[c] = t;
    this.cSlot[c] = s.serving.length;
    s.serving.push(c);
    let cost = this.wl.cost[c]!;
    const cache = s.cache;
    if (cache !== null) {
      // LRU: a hit moves the address to the young end; a miss costs more, then caches it.
      const a = this.wl.daddr[c]!;
      const hit = cache.delete(a);
      cache.set(a, true);
      if (hit) {
        if (this.wl.t[c]! >= this.w0) this.cacheHits++;
      } else {
        if (this.wl.t[c]! >= this.w0) this.cacheMisses++;
        cost *= this.scn.cache!.missFactor;
        if (cache.size > this.scn.cache!.size) cache.delete(cache.keys().next().value!);
      }
    }
    this.heap.push(t + cost / s.spec.speed, c * 4 + K_COMPLETE);
  }

  private complete(c: number, t: number): void {
    if (this.cState[c] !== C_SERVING) return; // aborted when its server died
    const s = this.servers[this.cServer[c]!]!;
    // Swap-remove from the serving list.
    const pos = this.cSlot[c]!;
    const last = s.serving.pop()!;
    if (last !== c) {
      s.serving[pos] = last;
      this.cSlot[last] = pos;
    }
    s.busy--;
    s.busyMs += this.overlap(this.cStart[c]!, t);
    const arrival = this.wl.t[c]!;
    const lat = t - arrival;
    if (arrival >= this.w0) {
      this.latencies[this.nLat++] = lat;
      s.completed++;
      s.latSum += lat;
    }
    s.bytesTick += this.wl.bytes[c]!;
    const d = this.cDest[c]!;
    d.outBytes += this.wl.bytes[c]!;
    this.measureResp(d, lat);
    this.working--;
    this.close(c, t);
    if (s.qLen > 0) this.start(s.dequeue(), s, t);
  }

  private measureResp(d: Dest, latMs: number): void {
    const us = latMs * 1000;
    d.respTimeUs = d.respTimeUs === 0 ? us : d.respTimeUs + (us - d.respTimeUs) * RESP_GAIN;
    destChanged(d);
  }

  /** The connection closes: it turns inactive and lingers. */
  private close(c: number, t: number): void {
    this.cState[c] = C_LINGER;
    if (this.cActive[c] === 1) {
      const d = this.cDest[c]!;
      d.activeConns--;
      d.inactConns++;
      destChanged(d);
      this.cActive[c] = 0;
    }
    this.heap.push(t + this.scn.lingerMs, c * 4 + K_LINGER);
  }

  /** The connection entry expires: unbind from its dest and template, as conntrack's free does. */
  private free(c: number): void {
    this.cState[c] = C_DONE;
    const d = this.cDest[c]!;
    d.inactConns--;
    this.unbound(d);
    const tpl = this.cTpl[c];
    if (tpl !== null && tpl !== undefined) {
      this.cTpl[c] = null;
      tpl.nControl--;
      if (!tpl.valid && tpl.nControl === 0) this.releaseTemplate(tpl);
    }
  }

  private unbound(d: Dest): void {
    destOverloadOnUnbind(d);
    const sched = d.svc?.sched;
    if (sched?.onConnDone) sched.onConnDone(d);
  }

  /** Take a template out of the lookup; it is freed once no connection it controls is left. */
  private dropTemplate(tpl: Template): void {
    this.templates.delete(tpl.key);
    tpl.valid = false;
    if (tpl.nControl === 0) this.releaseTemplate(tpl);
  }

  private releaseTemplate(tpl: Template): void {
    tpl.dest.persistConns--;
    this.unbound(tpl.dest);
  }

  /** Estimator interval: byte rates, health-check response-time probes, template expiry. */
  private tick(t: number): void {
    const secs = this.scn.estimatorMs / 1000;
    for (const s of this.servers) {
      const d = s.dest;
      const rate = s.bytesTick / secs;
      s.bytesTick = 0;
      if (d === null) continue;
      d.rateBps += (rate - d.rateBps) * RATE_GAIN;
      if (s.alive) {
        // A probe arriving now: waits for a slot if all are busy, then takes a mean request.
        const wait =
          s.busy < s.spec.slots ? 0 : ((s.qLen + 1) / s.spec.slots) * (this.meanCost / s.spec.speed);
        this.measureResp(d, wait + this.meanCost / s.spec.speed);
      }
    }
    if (this.scn.persistence !== null) {
      for (const tpl of this.templates.values()) {
        if (tpl.nControl === 0 && t >= tpl.expires) this.dropTemplate(tpl);
      }
    }
  }

  // ---- results ----

  private finish(tEnd: number): RunResult {
    let unfinished = 0;
    for (const s of this.servers) {
      for (const c of s.serving) {
        s.busyMs += this.overlap(this.cStart[c]!, tEnd);
        if (this.wl.t[c]! >= this.w0) unfinished++;
      }
      for (let k = s.qHead; k < s.queue.length; k++) if (this.wl.t[s.queue[k]!]! >= this.w0) unfinished++;
      this.setInService(s, false, Math.max(tEnd, this.w1));
    }
    const totalConns = this.servers.reduce((a, s) => a + s.conns, 0);
    const totalBusy = this.servers.reduce((a, s) => a + s.busyMs, 0);
    const servers: ServerResult[] = this.servers.map((s) => ({
      name: s.spec.name,
      addr: `${formatIPv4(s.spec.addr)}:${s.spec.port}`,
      weight: s.spec.weight,
      slots: s.spec.slots,
      speed: s.spec.speed,
      conns: s.conns,
      connShare: totalConns > 0 ? s.conns / totalConns : 0,
      busyMs: s.busyMs,
      busyShare: totalBusy > 0 ? s.busyMs / totalBusy : 0,
      util: s.inServiceMs > 0 ? s.busyMs / (s.spec.slots * s.inServiceMs) : 0,
      inServiceMs: s.inServiceMs,
      completed: s.completed,
      errors: s.errors,
      meanLatencyMs: s.completed > 0 ? s.latSum / s.completed : 0,
    }));
    const present = servers.filter((s) => s.inServiceMs > 0);
    const errors = {
      noDest: this.noDest,
      deadDest: this.deadDest,
      refused: this.refused,
      aborted: this.aborted,
      unfinished,
      total: this.noDest + this.deadDest + this.refused + this.aborted + unfinished,
    };
    const completed = this.nLat;
    return {
      scheduler: this.variant.label,
      arrivals: this.arrivals,
      completed,
      errors,
      errorRate: this.arrivals > 0 ? errors.total / this.arrivals : 0,
      latencyMs: summarize(this.latencies.subarray(0, this.nLat)),
      imbalance: {
        conns: maxOverMean(present.map((s) => s.conns / s.inServiceMs)),
        util: maxOverMean(present.map((s) => s.util)),
      },
      affinity: this.affTotal > 0 ? this.affSame / this.affTotal : null,
      cacheHitRatio:
        this.scn.cache !== null && this.cacheHits + this.cacheMisses > 0
          ? this.cacheHits / (this.cacheHits + this.cacheMisses)
          : null,
      servers,
      events: this.events,
      endMs: tEnd,
    };
  }
}
