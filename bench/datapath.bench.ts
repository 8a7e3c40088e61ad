/**
 * In-process data path benchmarks (no I/O): the established-flow NAT fast path in both
 * directions, the new-connection path (SYN -> schedule -> insert), conntrack lookups at 1M
 * entries, memory per connection at 1M connections, and the mark classifier (none, empty, one
 * rule compiled and interpreted; SYN batches without and with a mark rule).
 *
 * NAT rewrites frames in place, so every batch is restored from a pristine copy before it is
 * processed again. The restore (one memcpy of the packed batch) is measured on its own in the
 * same run ("batch restore only") and reported, so the engine's share can be read off.
 */

import { Bench } from "tinybench";
import { dropCounts } from "../src/control/adapter.js";
import { classifyMark, markOf } from "../src/datapath/classify.js";
import { clock } from "../src/datapath/clock.js";
import { Engine } from "../src/datapath/engine.js";
import { FrameBatch } from "../src/datapath/io/batch.js";
import { eth } from "../src/datapath/packet/build.js";
import { FrameView, TCP_ACK, TCP_SYN } from "../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../src/lib/addr.js";
import { IPPROTO_TCP } from "../src/lib/proto.js";
import { MarkTable, MarkTarget, PortWhich } from "../src/tables/marks.js";
import { FwdMethod } from "../src/tables/model.js";
import { ToyNat, ToyNatChecked } from "./toynat.js";

export interface BenchResult {
  name: string;
  unit: string;
  value: number;
  samples: number;
}

const BATCH = 256;
/** Small slots so a whole batch restores with one memcpy of 256 * 128 bytes. */
const SLOT = 128;
const VIP = "10.0.0.100";
const LADDR = "192.168.10.200";

export function setup(maxConns: number, fwd: FwdMethod = FwdMethod.MASQ): Engine {
  const e = new Engine({ maxConns, sweepPerBatch: 64 });
  e.net.addLink("out0", macToBytes("02:00:00:00:00:01"), [{ addr: ipToU32("10.0.0.1"), prefix: 24 }]);
  e.net.addLink("in0", macToBytes("02:00:00:00:01:01"), [{ addr: ipToU32("192.168.10.254"), prefix: 24 }]);
  e.net.addRoute(0, 0, ipToU32("10.0.0.254"));
  e.net.neigh.learn(ipToU32("10.0.0.254"), macToBytes("02:00:00:00:00:fe"), 0, 0, 0, true);
  for (let k = 1; k <= 2; k++) {
    e.net.neigh.learn(ipToU32(`192.168.10.${k}`), macToBytes(`02:00:00:00:01:1${k}`), 0, 1, 0, true);
  }
  const key = { proto: IPPROTO_TCP, addr: ipToU32(VIP), port: 80 };
  e.table.addService(key, { sched: "wrr", flags: 0, timeout: 0, netmask: 0xffffffff });
  if (fwd === FwdMethod.FULLNAT) e.table.addLaddr(key, ipToU32(LADDR));
  for (let k = 1; k <= 2; k++) {
    e.table.addDest(key, {
      addr: ipToU32(`192.168.10.${k}`),
      port: 80,
      weight: k,
      fwd,
      uThreshold: 0,
      lThreshold: 0,
    });
  }
  return e;
}

/** Client i's address, beyond the default gateway. */
function clientIp(i: number): string {
  return `10.0.${2 + ((i >> 8) & 0xff)}.${i & 0xff}`;
}

function packed(frames: Uint8Array[]): FrameBatch {
  const b = new FrameBatch(frames.length, SLOT);
  for (const f of frames) b.push(f, 0);
  return b;
}

/** Establish `flows` connections and return batches of data segments both ways. */
export function establishedBatches(e: Engine, flows: number): { inb: FrameBatch; outb: FrameBatch } {
  // (for DR and TUN the replies never reach the director; the reply batch is built but unused)
  const setupBatch = new FrameBatch(1);
  const send = (f: Uint8Array, link: number) => {
    setupBatch.reset();
    setupBatch.push(f, link);
    e.process(setupBatch, 1);
  };
  const inFrames: Uint8Array[] = [];
  const outFrames: Uint8Array[] = [];
  const payload = new Uint8Array(6); // 64-byte frames
  for (let i = 0; i < flows; i++) {
    const c = clientIp(i);
    const sport = 10000 + i;
    send(
      eth({ src: "02:00:00:00:00:fe", dst: "02:00:00:00:00:01" })
        .ipv4({ src: c, dst: VIP })
        .tcp({ sport, dport: 80, flags: TCP_SYN })
        .build(),
      0,
    );
    const conn = e.ct.lookupIn(IPPROTO_TCP, ipToU32(c), sport, ipToU32(VIP), 80);
    const rip = e.ct.daddr[conn]!;
    const ripS = `192.168.10.${rip & 0xff}`;
    const ripMac = `02:00:00:00:01:1${rip & 0xff}`;
    // where the real server answers: the client (NAT), or the local address and port (FULLNAT)
    const replyTo = e.ct.laddr[conn] === ipToU32(c) ? c : LADDR;
    const replyPort = e.ct.lport[conn]!;
    send(
      eth({ src: ripMac, dst: "02:00:00:00:01:01" })
        .ipv4({ src: ripS, dst: replyTo })
        .tcp({ sport: 80, dport: replyPort, flags: TCP_SYN | TCP_ACK })
        .build(),
      1,
    );
    send(
      eth({ src: "02:00:00:00:00:fe", dst: "02:00:00:00:00:01" })
        .ipv4({ src: c, dst: VIP })
        .tcp({ sport, dport: 80, flags: TCP_ACK })
        .build(),
      0,
    );
    if (i < BATCH) {
      inFrames.push(
        eth({ src: "02:00:00:00:00:fe", dst: "02:00:00:00:00:01" })
          .ipv4({ src: c, dst: VIP })
          .tcp({ sport, dport: 80, seq: 1, ack: 1, flags: TCP_ACK })
          .payload(payload)
          .build(),
      );
      outFrames.push(
        eth({ src: ripMac, dst: "02:00:00:00:01:01" })
          .ipv4({ src: ripS, dst: replyTo })
          .tcp({ sport: 80, dport: replyPort, seq: 1, ack: 7, flags: TCP_ACK })
          .payload(payload)
          .build(),
      );
    }
  }
  const inb = packed(inFrames);
  const outb = packed(outFrames);
  for (let i = 0; i < outb.count; i++) outb.link[i] = 1;
  return { inb, outb };
}

export function restorer(b: FrameBatch): () => void {
  const pristine = b.buf.slice();
  const offs = b.off.slice();
  const lens = b.len.slice();
  return () => {
    b.buf.set(pristine);
    b.off.set(offs);
    b.len.set(lens);
  };
}

export function pps(
  task: { result: unknown } | undefined,
  perIter: number,
): { value: number; samples: number } {
  const r = task?.result as { state: string; latency?: { mean: number; samplesCount: number } } | undefined;
  if (!r?.latency) return { value: 0, samples: 0 };
  return { value: (perIter * 1000) / r.latency.mean, samples: r.latency.samplesCount };
}

/**
 * The mark classifier (lvs-iptables rules, src/datapath/classify.ts), same run: its cost per
 * packet with no classifier at all (the loop alone), with an empty chain (the engine's one
 * comparison of the count) and with the DR tutorial's one rule (-d VIP -p tcp -m multiport
 * --dports 80,443 -j MARK --set-mark 666); then whole SYN batches with no rules and with that
 * rule feeding a `-f 666` service.
 */
export async function markClassifierBench(timeMs: number, synFrames: Uint8Array[]): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const N = 1024;
  // One view, its fields rewritten per packet from prepared arrays, as the parser leaves the
  // engine's one FrameView (1,024 separate views measured cache misses on their boxed fields).
  const saddrs = new Uint32Array(N);
  const sports = new Uint16Array(N);
  const dports = new Uint16Array(N);
  for (let i = 0; i < N; i++) {
    saddrs[i] = ipToU32(clientIp(i));
    sports[i] = 1024 + i;
    dports[i] = i % 3 === 0 ? 443 : 80;
  }
  const v = new FrameView();
  v.daddr = ipToU32(VIP);
  v.proto = IPPROTO_TCP;
  v.ipTotalLen = 60;
  const empty = new MarkTable();
  const one = new MarkTable();
  one.append({
    src: 0,
    srcMask: 0,
    srcNeg: false,
    dst: ipToU32(VIP),
    dstMask: 0xffffffff,
    dstNeg: false,
    proto: IPPROTO_TCP,
    protoNeg: false,
    iface: "",
    ifaceNeg: false,
    ports: [
      {
        match: "multiport",
        which: PortWhich.DST,
        neg: false,
        ranges: [
          [80, 80],
          [443, 443],
        ],
      },
    ],
    target: MarkTarget.MARK,
    value: 666,
    mask: 0xffffffff,
    pkts: 0,
    bytes: 0,
  });
  let sink = 0;
  // the engine's call: markOf (the compiled chain) when the chain is not empty
  const pass = (t: MarkTable | null): void => {
    let acc = 0;
    for (let i = 0; i < N; i++) {
      v.saddr = saddrs[i]!;
      v.sport = sports[i]!;
      v.dport = dports[i]!;
      let mark = 0;
      if (t !== null) {
        const p = t.program;
        if (p.count !== 0) mark = markOf(p, v, 0);
      }
      acc += mark + v.dport;
    }
    sink += acc;
  };
  // the same rule through the interpreter (what ran before the chain was compiled)
  const interp = (t: MarkTable): void => {
    let acc = 0;
    for (let i = 0; i < N; i++) {
      v.saddr = saddrs[i]!;
      v.sport = sports[i]!;
      v.dport = dports[i]!;
      let mark = 0;
      const p = t.program;
      if (p.count !== 0) mark = classifyMark(p, v, 0);
      acc += mark + v.dport;
    }
    sink += acc;
  };
  if (one.program.fn === null) throw new Error("the tutorial's rule was not compiled");
  const bc = new Bench({ time: timeMs, warmupTime: 300 });
  bc.add("mark classifier: none (loop only, x1024)", () => pass(null));
  bc.add("mark classifier: empty chain (x1024)", () => pass(empty));
  bc.add("mark classifier: tutorial's one rule (x1024)", () => pass(one));
  bc.add("mark classifier: one rule, interpreted (x1024)", () => interp(one));
  await bc.run();
  if (sink === 0 || one.program.pkts[0] === 0) throw new Error("mark classifier bench marked nothing");
  const ns = (k: number) => {
    const r = bc.tasks[k]?.result as { latency?: { mean: number; samplesCount: number } } | undefined;
    return { value: ((r?.latency?.mean ?? 0) * 1e6) / N, samples: r?.latency?.samplesCount ?? 0 };
  };
  const none = ns(0);
  const emp = ns(1);
  const rule = ns(2);
  const ruleInterp = ns(3);
  results.push({ name: "mark classifier: none (loop only)", unit: "ns/packet", ...none });
  results.push({ name: "mark classifier: empty chain", unit: "ns/packet", ...emp });
  results.push({ name: "mark classifier: tutorial's one rule", unit: "ns/packet", ...rule });
  results.push({ name: "mark classifier: one rule, interpreted", unit: "ns/packet", ...ruleInterp });
  results.push({
    name: "mark classifier: empty - none",
    unit: "ns/packet",
    value: emp.value - none.value,
    samples: 1,
  });
  results.push({
    name: "mark classifier: one rule - none",
    unit: "ns/packet",
    value: rule.value - none.value,
    samples: 1,
  });
  results.push({
    name: "mark classifier: one rule interpreted - none",
    unit: "ns/packet",
    value: ruleInterp.value - none.value,
    samples: 1,
  });

  // whole SYN batches: the same frames, no rules vs the one rule marking them for -f 666
  const plain = setup(1 << 21);
  const marked = setup(1 << 21);
  const fkey = { proto: IPPROTO_TCP, addr: 0, port: 0, fwmark: 666 };
  marked.table.addService(fkey, { sched: "wrr", flags: 0, timeout: 0, netmask: 0xffffffff });
  for (let k = 1; k <= 2; k++) {
    marked.table.addDest(fkey, {
      addr: ipToU32(`192.168.10.${k}`),
      port: 80,
      weight: k,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
  }
  for (const r of one.list()) marked.marks.append({ ...r, pkts: 0, bytes: 0 });
  const bs = new Bench({ time: timeMs, warmupTime: 300 });
  for (const [name, en] of [
    ["new connections, no mark rules", plain],
    ["new connections, one mark rule -> fwmark service", marked],
  ] as const) {
    const b = packed(synFrames);
    const restore = restorer(b);
    let port = 1024;
    bs.add(
      name,
      () => {
        restore();
        port = port === 65535 ? 1024 : port + 1;
        for (let i = 0; i < b.count; i++) b.dv.setUint16(b.off[i]! + 34, port);
        en.process(b, 20);
        if (en.ct.count > (1 << 21) - 2 * BATCH) en.ct.flushAll();
      },
      { beforeAll: () => en.ct.flushAll() },
    );
  }
  await bs.run();
  for (const en of [plain, marked])
    if (en.drops.reduce((a, b) => a + b, 0) !== 0)
      throw new Error(`mark bench SYNs dropped: ${JSON.stringify(dropCounts(en.drops))}`);
  if (marked.table.find(fkey)!.conns === 0) throw new Error("the fwmark service got no connections");
  for (const task of bs.tasks) results.push({ name: task.name, unit: "connections/s", ...pps(task, BATCH) });
  return results;
}

/**
 * For each client->server frame of `batch` (as it arrives), its flow and the engine's connection
 * for it: client address and port, VIP and port, real server address and port.
 */
export function forEachFlow(
  e: Engine,
  batch: FrameBatch,
  fn: (s: number, sport: number, d: number, dport: number, rip: number, rport: number) => void,
): void {
  for (let i = 0; i < batch.count; i++) {
    const o = batch.off[i]!;
    const s = batch.dv.getUint32(o + 26);
    const d = batch.dv.getUint32(o + 30);
    const sport = batch.dv.getUint16(o + 34);
    const dport = batch.dv.getUint16(o + 36);
    const c = e.ct.lookupIn(IPPROTO_TCP, s, sport, d, dport);
    fn(s, sport, d, dport, e.ct.daddr[c]!, e.ct.dport[c]!);
  }
}

/**
 * The two reference loops (bench/toynat.ts) for the engine's established client->server batch
 * `inb`: ToyNat and ToyNatChecked with the engine's flows (dest k is 192.168.10.k, so its
 * index among the real servers' MACs is k - 1). `restore` puts the batch back as it arrived.
 */
export function toyReferences(
  e: Engine,
  inb: FrameBatch,
  restore: () => void,
): { toy: ToyNat; toyC: ToyNatChecked } {
  const toy = new ToyNat(16, macToBytes("02:00:00:00:01:11"), macToBytes("02:00:00:00:01:01"), 1);
  const toyC = new ToyNatChecked(16, macToBytes("02:00:00:00:00:01"), macToBytes("02:00:00:00:01:01"), 1, [
    macToBytes("02:00:00:00:01:11"),
    macToBytes("02:00:00:00:01:12"),
  ]);
  restore(); // the frames as they arrive, not as a task left them
  forEachFlow(e, inb, (s, sport, d, dport, rip, rport) => {
    toy.add(s, sport, d, dport, rip, rport);
    toyC.add(s, sport, d, dport, rip, rport, (rip & 0xff) - 1);
  });
  return { toy, toyC };
}

/** The engine, the toy and the checked toy, each restoring and processing the batch once. */
export function toyLoops(
  e: Engine,
  inb: FrameBatch,
  restore: () => void,
  toy: ToyNat,
  toyC: ToyNatChecked,
  tick: () => number,
): [() => void, () => void, () => void] {
  return [
    () => {
      restore();
      e.process(inb, tick());
    },
    () => {
      restore();
      toy.process(inb);
    },
    () => {
      restore();
      toyC.process(inb, tick());
    },
  ];
}

/**
 * Time three loops (the engine, the toy, the checked toy) in turn, 21 rounds of 400 calls each,
 * and return the medians of each round's rate ratios: engine/toy, engine/checked toy, checked
 * toy/toy. Interleaved rounds share a burst of another tenant's load between the loops.
 */
export function interleavedRatios(loops: [() => void, () => void, () => void]): [number, number, number] {
  const rounds: number[][] = [];
  for (let r = 0; r < 21; r++) {
    rounds.push(
      loops.map((f) => {
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < 400; k++) f();
        return Number(process.hrtime.bigint() - t0);
      }),
    );
  }
  const median = (xs: number[]): number => xs.slice().sort((a, b) => a - b)[xs.length >> 1]!;
  return [
    median(rounds.map((t) => t[1]! / t[0]!)),
    median(rounds.map((t) => t[2]! / t[0]!)),
    median(rounds.map((t) => t[1]! / t[2]!)),
  ];
}

/**
 * Run `a` and `b` on the same pristine batch and require the same frames out, byte for byte,
 * with the same egress: the two loops do the same work (or the comparison means nothing).
 */
function sameOutput(batch: FrameBatch, restore: () => void, a: () => void, b: () => void): void {
  const snap = (): string => {
    let out = "";
    for (let i = 0; i < batch.count; i++) {
      const o = batch.off[i]!;
      out += `${batch.egress[i]}:${Buffer.from(batch.buf.subarray(o, o + batch.len[i]!)).toString("hex")}\n`;
    }
    return out;
  };
  restore();
  a();
  const x = snap();
  restore();
  b();
  const y = snap();
  if (x !== y) throw new Error("the toy loop with the engine's checks does not produce the engine's frames");
}

export async function runDatapathBench(timeMs = 1500): Promise<BenchResult[]> {
  const results: BenchResult[] = [];

  // ---- established NAT fast path ----
  const e = setup(1 << 16);
  const { inb, outb } = establishedBatches(e, 4096);
  const restoreIn = restorer(inb);
  const restoreOut = restorer(outb);
  let now = 10;
  const b1 = new Bench({ time: timeMs, warmupTime: 300 });
  b1.add("batch restore only (reference)", () => {
    restoreIn();
  });
  b1.add("NAT established, client->server", () => {
    restoreIn();
    e.process(inb, now++);
  });
  b1.add("NAT established, server->client", () => {
    restoreOut();
    e.process(outb, now++);
  });
  b1.add("NAT established, both directions", () => {
    restoreIn();
    e.process(inb, now);
    restoreOut();
    e.process(outb, now++);
  });
  // the toy NAT loop (bench/toynat.ts) on the same client->server frames: the reference for
  // "NAT established >= 0.9x the toy loop" (issue 13); its flows are the engine's connections.
  // And the toy with the per-frame work the engine's fast path must do and the toy leaves out
  // (ToyNatChecked): its output must be the engine's, byte for byte.
  const { toy, toyC } = toyReferences(e, inb, restoreIn);
  b1.add("toy NAT loop, client->server (reference)", () => {
    restoreIn();
    toy.process(inb);
  });
  sameOutput(
    inb,
    restoreIn,
    () => e.process(inb, now),
    () => toyC.process(inb, now),
  );
  b1.add("toy NAT loop with the engine's checks, client->server (reference)", () => {
    restoreIn();
    toyC.process(inb, now++);
  });
  // the same engine and frames with the established-flow fast path off (src/datapath/fastpath.ts):
  // what the general path alone does, in the same run
  const eGen = setup(1 << 16);
  eGen.fastPath = false;
  const gen = establishedBatches(eGen, 4096);
  const restoreGen = restorer(gen.inb);
  let tGen = 10;
  b1.add("NAT established, client->server, fast path off", () => {
    restoreGen();
    eGen.process(gen.inb, tGen++);
  });
  await b1.run();
  const ref = pps(b1.tasks[0], BATCH);
  const inP = pps(b1.tasks[1], BATCH);
  const outP = pps(b1.tasks[2], BATCH);
  const both = pps(b1.tasks[3], 2 * BATCH);
  // Every frame of every iteration must have been forwarded, or the numbers mean nothing.
  const dropped = e.drops.reduce((a, b) => a + b, 0);
  if (dropped !== 0 || inb.egress[BATCH - 1] !== 1 || outb.egress[BATCH - 1] !== 0) {
    throw new Error(`benchmark frames were not forwarded: ${JSON.stringify(dropCounts(e.drops))}`);
  }
  results.push({ name: "batch restore only (reference)", unit: "packets/s", ...ref });
  results.push({ name: "NAT established client->server", unit: "packets/s", ...inP });
  results.push({ name: "NAT established server->client", unit: "packets/s", ...outP });
  results.push({ name: "NAT established both directions", unit: "packets/s", ...both });
  const toyP = pps(b1.tasks[4], BATCH);
  if (toy.forwarded === 0 || inb.egress[BATCH - 1] !== 1)
    throw new Error("the toy NAT loop forwarded nothing");
  results.push({ name: "toy NAT loop client->server (reference)", unit: "packets/s", ...toyP });
  const toyCP = pps(b1.tasks[5], BATCH);
  results.push({
    name: "toy NAT loop with the engine's checks client->server (reference)",
    unit: "packets/s",
    ...toyCP,
  });
  const genP = pps(b1.tasks[6], BATCH);
  if (eGen.fast.taken !== 0 || e.fast.taken === 0 || eGen.drops.reduce((a, b) => a + b, 0) !== 0)
    throw new Error("the fast path ran where it was off, or not where it was on");
  results.push({ name: "NAT established client->server, fast path off", unit: "packets/s", ...genP });
  const ratios: [string, number][] = [
    ["NAT established client->server / toy NAT loop", inP.value / toyP.value],
    ["NAT established client->server / toy NAT loop with the engine's checks", inP.value / toyCP.value],
    ["toy NAT loop with the engine's checks / toy NAT loop", toyCP.value / toyP.value],
    ["NAT established client->server, fast path on / off", inP.value / genP.value],
    ["NAT established client->server, fast path off / toy NAT loop", genP.value / toyP.value],
  ];
  for (const [name, value] of ratios) results.push({ name, unit: "ratio", value, samples: 1 });
  // The same three loops timed in turn (interleavedRatios): tinybench runs each task for its
  // whole time in one stretch, so a burst of load from another tenant lands on one task.
  const [engToy, engChecked, checkedToy] = interleavedRatios(
    toyLoops(e, inb, restoreIn, toy, toyC, () => now++),
  );
  const interleaved: [string, number][] = [
    ["NAT established client->server / toy NAT loop, interleaved (median of 21)", engToy],
    [
      "NAT established client->server / toy NAT loop with the engine's checks, interleaved (median of 21)",
      engChecked,
    ],
    ["toy NAT loop with the engine's checks / toy NAT loop, interleaved (median of 21)", checkedToy],
  ];
  for (const [name, value] of interleaved) results.push({ name, unit: "ratio", value, samples: 21 });

  // ---- every forwarding mode, same run: established flows, ratios to NAT ----
  const modes: [string, FwdMethod, boolean][] = [
    ["NAT", FwdMethod.MASQ, true],
    ["DR", FwdMethod.ROUTE, false],
    ["TUN", FwdMethod.TUNNEL, false],
    ["FULLNAT", FwdMethod.FULLNAT, true],
  ];
  const bm = new Bench({ time: timeMs, warmupTime: 300 });
  const engines: Engine[] = [];
  for (const [name, fwd, replies] of modes) {
    const em = setup(1 << 16, fwd);
    engines.push(em);
    const bb = establishedBatches(em, 4096);
    em.drops.fill(0); // DR/TUN drop the set-up's server replies (they never pass the director)
    const rIn = restorer(bb.inb);
    const rOut = restorer(bb.outb);
    let t = 10;
    bm.add(`${name} established client->server`, () => {
      rIn();
      em.process(bb.inb, t++);
    });
    if (replies) {
      bm.add(`${name} established server->client`, () => {
        rOut();
        for (let i = 0; i < bb.outb.count; i++) bb.outb.link[i] = 1;
        em.process(bb.outb, t++);
      });
    }
  }
  await bm.run();
  for (const em of engines) {
    if (em.drops.reduce((a, b) => a + b, 0) !== 0)
      throw new Error(`mode bench dropped: ${JSON.stringify(dropCounts(em.drops))}`);
  }
  const modeRes = new Map<string, { value: number; samples: number }>();
  for (const task of bm.tasks) {
    const r = pps(task, BATCH);
    modeRes.set(task.name, r);
    results.push({ name: task.name.replace("established", "established (modes)"), unit: "packets/s", ...r });
  }
  const natIn = modeRes.get("NAT established client->server")?.value ?? 0;
  const natOut = modeRes.get("NAT established server->client")?.value ?? 0;
  for (const [name, , replies] of modes) {
    if (name === "NAT") continue;
    const vin = modeRes.get(`${name} established client->server`)?.value ?? 0;
    if (natIn > 0)
      results.push({ name: `${name}/NAT client->server`, unit: "ratio", value: vin / natIn, samples: 1 });
    if (replies && natOut > 0) {
      const vout = modeRes.get(`${name} established server->client`)?.value ?? 0;
      results.push({ name: `${name}/NAT server->client`, unit: "ratio", value: vout / natOut, samples: 1 });
    }
  }

  // ---- new connections: SYN -> schedule -> insert ----
  const e2 = setup(1 << 21);
  const synFrames: Uint8Array[] = [];
  for (let i = 0; i < BATCH; i++) {
    synFrames.push(
      eth({ src: "02:00:00:00:00:fe", dst: "02:00:00:00:00:01" })
        .ipv4({ src: clientIp(i), dst: VIP })
        .tcp({ sport: 1024, dport: 80, flags: TCP_SYN })
        .build(),
    );
  }
  const synb = packed(synFrames);
  const restoreSyn = restorer(synb);
  let port = 1024;
  const b2 = new Bench({ time: timeMs, warmupTime: 300 });
  b2.add(
    "new connections (SYN -> schedule -> insert)",
    () => {
      restoreSyn();
      // a fresh source port for every batch: new 5-tuples (the engine does not verify L4 checksums)
      port = port === 65535 ? 1024 : port + 1;
      const dv = synb.dv;
      for (let i = 0; i < synb.count; i++) dv.setUint16(synb.off[i]! + 34, port);
      e2.process(synb, 20);
      if (e2.ct.count > (1 << 21) - 2 * BATCH) e2.ct.flushAll();
    },
    { beforeAll: () => e2.ct.flushAll() },
  );
  await b2.run();
  const cps = pps(b2.tasks[0], BATCH);
  if (e2.drops.reduce((a, b) => a + b, 0) !== 0)
    throw new Error(`SYNs dropped: ${JSON.stringify(dropCounts(e2.drops))}`);
  results.push({ name: "new connections (SYN -> schedule -> insert)", unit: "connections/s", ...cps });

  // ---- SYN proxy: a SYN answered with a cookie SYN-ACK (what a SYN flood costs per SYN) ----
  const e4 = setup(1 << 16);
  e4.table.editService(
    { proto: IPPROTO_TCP, addr: ipToU32(VIP), port: 80 },
    { sched: "wrr", flags: 0, timeout: 0, netmask: 0xffffffff, synProxy: true },
  );
  const b4 = new Bench({ time: timeMs, warmupTime: 300 });
  b4.add("SYN proxy: SYN -> cookie SYN-ACK", () => {
    restoreSyn();
    port = port === 65535 ? 1024 : port + 1;
    const dv = synb.dv;
    for (let i = 0; i < synb.count; i++) dv.setUint16(synb.off[i]! + 34, port);
    e4.process(synb, 20);
  });
  await b4.run();
  if (e4.tx.count !== BATCH || e4.ct.count !== 0)
    throw new Error(`SYN proxy: ${e4.tx.count} SYN-ACKs and ${e4.ct.count} entries for ${BATCH} SYNs`);
  results.push({ name: "SYN proxy: SYN -> cookie SYN-ACK", unit: "SYNs/s", ...pps(b4.tasks[0], BATCH) });
  results.push(...(await markClassifierBench(timeMs, synFrames)));

  // ---- conntrack lookup at 1M entries, and memory per connection ----
  const N = 1 << 20;
  globalThis.gc?.();
  const before = process.memoryUsage();
  const e3 = setup(N);
  const d = e3.table.list()[0]!.dests[0]!;
  const vip = ipToU32(VIP);
  clock.nowMs = 1;
  const keysA = new Uint32Array(N);
  const keysP = new Uint16Array(N);
  for (let i = 0; i < N; i++) {
    const a = (0x0b000000 + (i >>> 4)) >>> 0;
    const p = 1024 + (i & 15);
    keysA[i] = a;
    keysP[i] = p;
    e3.ct.create(IPPROTO_TCP, a, p, vip, 80, d.addr, 80, a, p, 0, false, d, 0, -1);
  }
  globalThis.gc?.();
  const after = process.memoryUsage();
  const used = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  results.push({
    name: "memory per connection at 1M connections",
    unit: "bytes",
    value: used / N,
    samples: 1,
  });
  results.push({
    name: "connection table arrays per slot (computed)",
    unit: "bytes",
    value: e3.ct.byteSize() / N,
    samples: 1,
  });
  let idx = 0;
  let found = 0;
  const b3 = new Bench({ time: timeMs, warmupTime: 300 });
  b3.add("conntrack lookup at 1M entries (x1024)", () => {
    const ct = e3.ct;
    for (let k = 0; k < 1024; k++) {
      idx = (idx + 7919) & (N - 1);
      if (ct.lookupIn(IPPROTO_TCP, keysA[idx]!, keysP[idx]!, vip, 80) >= 0) found++;
    }
  });
  await b3.run();
  const lk = pps(b3.tasks[0], 1024);
  if (found === 0) throw new Error("lookups found nothing");
  results.push({ name: "conntrack lookup at 1M entries", unit: "lookups/s", ...lk });
  return results;
}
