/**
 * What the worker host (src/control/workers.ts) and a data-path worker (worker.ts) say to each
 * other over the worker's port (docs/workers.md), and the layout of the counters a worker
 * publishes in shared memory.
 *
 * Messages are plain objects (structured clone), sent between batches, never per packet:
 * - host → worker: `init` once; `ops` (TableOps, src/tables/journal.ts, in the master's order,
 *   numbered); `knobs` (sysctls, timeouts, the defence's drop rate as one number vector);
 *   `marks` (the MARK rules, when they change);
 *   `counters` (a bigger shared counter block); `stop`.
 * - worker → host: `ready`, `applied` (the last ops/knobs sequence applied), `done` (a bench
 *   run's result, or the frames a capture link sent), `error`.
 *
 * Counters: each worker owns one SharedArrayBuffer of float64s it rewrites between batches every
 * PUBLISH_MS (and after each control message); the host sums the workers' blocks when lvsadm or
 * the metrics read them. A Float64 store is not torn on x86-64 and arm64, and a block is only
 * ever written by its worker, so no locks are needed; a reader may see one publish half done,
 * which shows as counters a few milliseconds apart.
 */

import type { TableOp } from "../../tables/journal.js";
import type { MarkRule } from "../../tables/marks.js";
import type { Dest, Service } from "../../tables/model.js";
import { TCP_STATE_COUNT, TCP_TRANSITIONS_DOS } from "../conntrack/states.js";
import { COUNT_SLOTS } from "../conntrack/table.js";
import { DROP_COUNT } from "../drops.js";
import type { Engine } from "../engine.js";

/**
 * Which of `count` workers owns a flow whose client is `addr`:`port` (docs/workers.md): a
 * multiplicative hash of the client's end only, so a request (client → VIP) and the NAT reply
 * (real server → client) land on the same worker although their other ends differ. FULLNAT
 * replies go by local port instead (`lport % count`, the worker's slice). 32-bit arithmetic
 * only, so a classic BPF fanout program can compute the same.
 */
export function steerWorker(addr: number, port: number, count: number): number {
  const h = Math.imul((addr ^ Math.imul(port, 0x9e37)) | 0, 0x9e3779b1) >>> 16;
  return h % count;
}

/** How often a busy worker publishes its counters. */
export const PUBLISH_MS = 50;

/** Header slots of a worker's counter block. */
export const CTR = {
  /** Frames received and batches processed by the worker's director. */
  FRAMES: 0,
  BATCHES: 1,
  /** Frames forwarded, and frames that waited for ARP. */
  FORWARDED: 2,
  QUEUED: 3,
  /** Entries in the worker's connection table (connections and templates). */
  CONNS: 4,
  /** Publishes so far (a reader can tell a worker that stopped publishing). */
  PUBLISHES: 5,
  /** Sequence number of the last ops/knobs message applied. */
  APPLIED: 6,
  /** Table ops the worker's replica refused (should stay 0). */
  REPLICA_FAILURES: 7,
  /** Frames the worker's links sent. */
  TX_FRAMES: 8,
  /** Frames the established-flow fast path forwarded (part of FORWARDED; datapath/fastpath.ts). */
  FASTPATH: 9,
  /**
   * The worker table's connections by kind (ConnTable.kindCounts: TCP states, UDP, ICMP), then
   * its templates by state (templateCounts: NONE, ASSURED): KIND_SLOTS slots.
   */
  KINDS: 16,
  /** Drop counters by reason (drops.ts) start here. */
  DROPS: 32,
} as const;

/** Slots at CTR.KINDS: TCP_STATE_COUNT + 2 connection kinds, then 2 template states. */
export const KIND_SLOTS = COUNT_SLOTS;

/**
 * Per link (the first MAX_LINKS): rxPackets, rxBytes, txPackets, txBytes, rxDropped, txDropped,
 * then for a busy-polling AF_XDP link its receive rounds, the rounds that brought a whole busy
 * poll's budget, the frames the kernel dropped at its RX ring, and the wake-ups whose first
 * round filled a batch (the NAPI governor's inputs, src/control/napi.ts).
 */
export const LINK_SLOTS = 10;
/** Offsets within a link's slots of the busy-poll counters. */
export const LINK_POLLS = 6;
export const LINK_FULL_POLLS = 7;
export const LINK_KERNEL_DROPS = 8;
/** Wake-ups whose first round brought a whole batch (lvsd's own loop calls the governor's `overloaded` then). */
export const LINK_OVERLOADS = 9;
export const MAX_LINKS = 8;
export const LINK_BASE = CTR.DROPS + DROP_COUNT;
/** Per service: conns, inPkts, outPkts, inBytes, outBytes. */
export const SVC_SLOTS = 5;
/** Per dest: the service's five, then activeConns, inactConns, persistConns. */
export const DEST_SLOTS = 8;
export const SVC_BASE = LINK_BASE + MAX_LINKS * LINK_SLOTS;

/** Float64 slots of a counter block for `svcCap` services and `destCap` dests. */
export function counterSlots(svcCap: number, destCap: number): number {
  return SVC_BASE + svcCap * SVC_SLOTS + destCap * DEST_SLOTS;
}

export function destBase(svcCap: number): number {
  return SVC_BASE + svcCap * SVC_SLOTS;
}

/** A counter block's shape: capacities by master id. */
export interface CounterBlock {
  sab: SharedArrayBuffer;
  svcCap: number;
  destCap: number;
}

export function newCounterBlock(svcCap: number, destCap: number): CounterBlock {
  return {
    sab: new SharedArrayBuffer(counterSlots(svcCap, destCap) * 8),
    svcCap,
    destCap,
  };
}

/** Write service `s`'s counters at master id `id` (worker side). */
export function putService(c: Float64Array, id: number, s: Service): void {
  const o = SVC_BASE + id * SVC_SLOTS;
  c[o] = s.conns;
  c[o + 1] = s.inPkts;
  c[o + 2] = s.outPkts;
  c[o + 3] = s.inBytes;
  c[o + 4] = s.outBytes;
}

export function putDest(c: Float64Array, base: number, id: number, d: Dest): void {
  const o = base + id * DEST_SLOTS;
  c[o] = d.conns;
  c[o + 1] = d.inPkts;
  c[o + 2] = d.outPkts;
  c[o + 3] = d.inBytes;
  c[o + 4] = d.outBytes;
  c[o + 5] = d.activeConns;
  c[o + 6] = d.inactConns;
  c[o + 7] = d.persistConns;
}

/**
 * The run-time knobs every worker must share with the master, as one vector: the numeric
 * sysctls (in the Sysctl class's field order), the connection timeouts, the defence's drop rate
 * and whether secure_tcp's state table is in force.
 */
export function readKnobs(e: Engine): number[] {
  const out: number[] = [];
  const sc = e.sysctl as unknown as Record<string, unknown>;
  for (const k of Object.keys(sc)) {
    const v = sc[k];
    if (typeof v === "number") out.push(v);
  }
  for (let s = 0; s < TCP_STATE_COUNT; s++) out.push(e.ct.tcpTimeoutMs[s]!);
  out.push(
    e.ct.udpTimeoutMs,
    e.ct.icmpTimeoutMs,
    e.dropRate,
    e.ct.transitions === TCP_TRANSITIONS_DOS ? 1 : 0,
  );
  return out;
}

/** Apply a vector from readKnobs to engine `e` (worker side). */
export function writeKnobs(e: Engine, k: readonly number[]): void {
  const sc = e.sysctl as unknown as Record<string, unknown>;
  let i = 0;
  for (const key of Object.keys(sc)) {
    if (typeof sc[key] !== "number") continue;
    const v = k[i++];
    if (v !== undefined) sc[key] = v;
  }
  for (let s = 0; s < TCP_STATE_COUNT; s++) {
    const v = k[i++];
    if (v !== undefined) e.ct.tcpTimeoutMs[s] = v;
  }
  const udp = k[i++];
  const icmp = k[i++];
  const rate = k[i++];
  const dos = k[i++];
  if (udp !== undefined) e.ct.udpTimeoutMs = udp;
  if (icmp !== undefined) e.ct.icmpTimeoutMs = icmp;
  if (rate !== undefined && rate !== e.dropRate) {
    e.dropRate = rate;
    e.dropCounter = 0;
  }
  if (dos !== undefined) e.ct.setSecureTcp(dos === 1);
}

/** A handoff ring's geometry, as the host creates it (handoff.ts; slots: a power of two). */
export interface HandoffRingSpec {
  sab: SharedArrayBuffer;
  slots: number;
  slotSize: number;
}

/** A link as a worker opens it. */
export type WorkerLinkSpec =
  | {
      /**
       * In-memory link fed from pre-built frames (benchmarks, tests): `frames` packed in
       * `data` at `off`/`len`; `warmup` frames first (once), then frames from `warmup` on in a
       * loop while a timed run lasts (`loop`), or once. `capture`: keep the frames sent.
       */
      kind: "replay";
      name: string;
      mac: Uint8Array;
      mtu: number;
      data: Uint8Array;
      off: Uint32Array;
      len: Uint32Array;
      warmup: number;
      capture: boolean;
    }
  | {
      /**
       * AF_PACKET socket on `name`, joined to fanout group `fanoutGroup` steered by `program`
       * (steer.ts; docs/workers.md). Members join in worker order, so a member's index is its
       * worker's.
       */
      kind: "raw";
      name: string;
      fanoutGroup: number;
      program: Uint8Array;
      busyPoll?: number;
    }
  | {
      /**
       * AF_XDP socket on queue `queue` of `name`, inserted into the XSKMAP `mapFd` of the XDP
       * program the host attached (src/datapath/io/xdp.ts attachXdpProgram); the worker's
       * AF_XDP links share one UMEM of their own. Frames another worker owns are handed over
       * (handoff.ts).
       */
      kind: "xdp";
      name: string;
      queue: number;
      mapFd: number;
      xdpMode: "drv" | "skb";
      redirect: "all" | "mac";
      /** Preferred busy polling (µs) and its budget: the worker counts its rounds for the host's governor. */
      busyPoll?: number;
      busyBudget?: number;
    };

export interface WorkerNet {
  /** Addresses of each link, by link index (same order as `links`). */
  addrs: { addr: number; prefix: number }[][];
  routes: { net: number; prefix: number; via: number }[];
  neighs: { addr: number; mac: Uint8Array; link: number }[];
}

export interface WorkerInit {
  type: "init";
  /** This worker's index and the number of workers (FULLNAT local-port slice). */
  index: number;
  count: number;
  maxConns: number;
  batchSize: number;
  links: WorkerLinkSpec[];
  net: WorkerNet;
  ops: TableOp[];
  /** The mangle PREROUTING rules (lvs-iptables) that mark packets for fwmark services. */
  marks: MarkRule[];
  knobs: number[];
  counters: CounterBlock;
  /**
   * "events": forward frames as links become readable (lvsd). "run": a timed loop over the
   * replay links (benchmarks): wait until `go` (an Int32Array over a SharedArrayBuffer) is not
   * 0, then pump for `runMs` (warm-up frames first, not counted), and report `done`.
   * "once": on each `replay` message, pump until the replay links are empty and report `done`
   * with the captured frames.
   */
  mode: "events" | "run" | "once";
  runMs?: number;
  go?: SharedArrayBuffer;
  /**
   * AF_XDP links with 2 or more workers: the handoff rings, `rings[src * count + dst]` (null
   * where src === dst), docs/workers.md.
   */
  handoff?: (HandoffRingSpec | null)[];
}

export type HostMessage =
  | WorkerInit
  | { type: "ops"; seq: number; ops: TableOp[] }
  | { type: "knobs"; seq: number; knobs: number[] }
  /** The master's MARK rules changed: all of them, in order (a few; rule counters start at 0). */
  | { type: "marks"; seq: number; rules: MarkRule[] }
  | { type: "counters"; counters: CounterBlock }
  /** A neighbour worker 0 learned (ARP comes to worker 0): learn it too, send what waited for it. */
  | { type: "neigh"; addr: number; mac: Uint8Array; link: number }
  /** A new fanout program for every AF_PACKET link (the table's addresses changed). */
  | { type: "fanout"; program: Uint8Array }
  /** The connection entries, for `lvsadm -Lc` (answered with a `conns` message of the same id). */
  | { type: "conns"; id: number }
  /** "once" mode: replay the links from their first frame, then report `done`. */
  | { type: "replay" }
  /** Replace replay link `link`'s frames (tests: replies built from what the first run sent). */
  | { type: "frames"; link: number; data: Uint8Array; off: Uint32Array; len: Uint32Array; warmup: number }
  | { type: "stop" };

export interface RunResult {
  /** Frames received in the measured part of the run, and its length in ms. */
  frames: number;
  ms: number;
  forwarded: number;
  /** Frames each link sent, by link. */
  sent: number[];
  /** Captured frames per link (capture links only). */
  captured: Uint8Array[][];
  drops: number[];
  /** Run mode: the worker thread's CPU time over the measured part (ms; -1: unknown). */
  cpuMs: number;
}

/** One connection entry as lvsadm -Lc lists it (the control plane's ConnEntry, field for field). */
export interface WorkerConn {
  proto: number;
  caddr: number;
  cport: number;
  vaddr: number;
  vport: number;
  daddr: number;
  dport: number;
  state: string;
  expiresInMs: number;
  template: boolean;
  fwd: number;
}

export type WorkerMessage =
  | { type: "ready"; index: number }
  /** Worker 0 learned or refreshed neighbours (address, MAC, link): for the other workers. */
  | { type: "neigh"; addr: number; mac: Uint8Array; link: number }
  | { type: "applied"; seq: number }
  | { type: "done"; index: number; result: RunResult }
  | { type: "conns"; id: number; conns: WorkerConn[] }
  | { type: "error"; index: number; message: string };
