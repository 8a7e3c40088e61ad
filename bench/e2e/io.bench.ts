/**
 * I/O benchmark: frames per second through the native addon vs. tapcopy (the C reference for
 * "the I/O limit of TAP on this machine"). Needs root; everything happens in one network
 * namespace made here (io<pid>b-bench) and removed at the end, also on failure.
 *
 *   npx vite-node bench/e2e/io.bench.ts         (or, after `npm run build`: node dist/bench/e2e/io.bench.js)
 *   IO_BENCH_SECONDS=2 (per phase)  IO_BENCH_MAX_FRAMES=50000000 (generator cap per phase)
 *   IO_BENCH_FRAME_LEN=60 (bytes per frame, up to 1514)
 *
 * Phases (60-byte frames, batches of 256):
 *   fwd tapcopy    generator -> tA -> [tapcopy] -> tB         rate = tB's kernel rx counter / time
 *   fwd addon      generator -> tA -> [addon recv/send] -> tB (the lvsd pattern: onReadable, drain)
 *   tap rx         generator -> tA -> [addon recv, discard]
 *   tap tx         [addon send loop] -> tB
 *   raw rx/tx      the same over a veth pair (va <-> vb) with AF_PACKET, ring and mmsg modes
 *                  (ring: zero copy, frames left in the RX ring, and copying into the batch)
 *   fwd raw        generator -> vb -> va -> [addon recv/send] -> vc -> vd, AF_PACKET ring, zero
 *                  copy (RX ring -> TX ring, one copy) and copying (RX ring -> batch -> TX ring)
 * The generator is a child process writing frames with the addon's AF_PACKET TX ring on the
 * kernel side of tA (or on vb), so that the kernel queues them to our side as fast as it can.
 * With two or more CPUs the generator is pinned to CPU 0 and the part under test (this process's
 * main thread, or tapcopy) to CPU 1, so runs are comparable. When the generator is the limit (the
 * receiver keeps up), fps is the generator's rate: compare the CPU time per frame and the frames
 * per wake-up (bigger batches when the receiver falls behind) rather than fps alone.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { EGRESS_NONE, FrameBatch, HEADROOM } from "../../src/datapath/io/batch.js";
import type { LinkIo } from "../../src/datapath/io/link.js";
import { buildOutput } from "../../src/datapath/io/native.js";
import { disableOffloads } from "../../src/datapath/io/netconf.js";
import { openRaw } from "../../src/datapath/io/rawsock.js";
import { openTap } from "../../src/datapath/io/tap.js";

const SECONDS = Number(process.env["IO_BENCH_SECONDS"] ?? 2);
const MAX_FRAMES = Number(process.env["IO_BENCH_MAX_FRAMES"] ?? 50_000_000);
const FRAME_LEN = Number(process.env["IO_BENCH_FRAME_LEN"] ?? 60);
const BATCH = 256;
const NS = `io${process.pid}b-bench`;
const NS_PATH = `/var/run/netns/${NS}`;
const TA = `io${process.pid}b-ta`;
const TB = `io${process.pid}b-tb`;
const VA = `io${process.pid}b-va`;
const VB = `io${process.pid}b-vb`;
const VC = `io${process.pid}b-vc`;
const VD = `io${process.pid}b-vd`;
const SINK_MAC = [0x02, 0x00, 0x5e, 0x10, 0xbe, 0x99];

const children = new Set<ChildProcess>();
const PIN = cpus().length >= 2;
/** Command prefix that pins a child to one CPU (when there are two to share). */
const pinned = (cpu: number, cmd: string[]): string[] => (PIN ? ["taskset", "-c", String(cpu), ...cmd] : cmd);

function ip(...args: string[]): string {
  return execFileSync("ip", ["-n", NS, ...args], { encoding: "utf8" });
}

function kernelCounters(dev: string): { rx: number; tx: number; txDropped: number } {
  const j = JSON.parse(ip("-j", "-s", "link", "show", "dev", dev)) as Array<{
    stats64: { rx: { packets: number }; tx: { packets: number; dropped: number } };
  }>;
  const s = j[0]!.stats64;
  return { rx: s.rx.packets, tx: s.tx.packets, txDropped: s.tx.dropped };
}

function setup(): void {
  execFileSync("ip", ["netns", "add", NS]);
  execFileSync("ip", ["netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
  execFileSync("ip", ["netns", "exec", NS, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
  for (const t of [TA, TB]) {
    ip("tuntap", "add", "dev", t, "mode", "tap");
    ip("link", "set", t, "up");
  }
  ip("link", "add", VA, "type", "veth", "peer", "name", VB);
  ip("link", "add", VC, "type", "veth", "peer", "name", VD);
  for (const v of [VA, VB, VC, VD]) {
    ip("link", "set", v, "up");
    disableOffloads(NS, v); // SIOCETHTOOL through the addon (no ethtool binary needed)
  }
}

function teardown(): void {
  for (const c of children) c.kill("SIGKILL");
  try {
    execFileSync("ip", ["netns", "del", NS], { stdio: "ignore" });
  } catch {
    // not created or already gone
  }
}

/** Frames of FRAME_LEN bytes to `dst` in every slot of a batch (UDP-shaped, content irrelevant). */
function fillBatch(batch: FrameBatch, dst: ArrayLike<number>, src: Uint8Array, egress: number): void {
  batch.reset();
  const f = new Uint8Array(FRAME_LEN);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x08;
  f[14] = 0x45;
  f[17] = FRAME_LEN - 14;
  f[22] = 64;
  f[23] = 17;
  for (let i = 0; i < batch.capacity; i++) batch.egress[batch.push(f)] = egress;
}

/**
 * Start the generator child: AF_PACKET TX ring (qdisc bypass) on `ifname`, sending 60-byte
 * frames to `dst` for SECONDS or MAX_FRAMES. Resolves when it exits, with what it sent.
 */
function generator(ifname: string, dst: ArrayLike<number>): Promise<{ sent: number; dropped: number }> {
  const before = kernelCounters(ifname).tx;
  const addon = buildOutput("lvs_io.node");
  if (addon === undefined) throw new Error("addon not built: npx node-gyp rebuild");
  const script = `
const a = require(${JSON.stringify(addon)});
const l = a.openRaw({ ifname: ${JSON.stringify(ifname)}, netns: ${JSON.stringify(NS_PATH)}, mode: "ring",
  filter: true, qdiscBypass: true, txFrames: 4096 });
const slot = 2048, cap = ${BATCH}, slab = new Uint8Array(cap * slot), off = new Uint32Array(cap),
  len = new Uint32Array(cap), eg = new Int16Array(cap);
const f = new Uint8Array(${FRAME_LEN}); f.set(${JSON.stringify(Array.from(dst))}, 0); f.set(l.mac, 6);
f[12] = 8; f[14] = 0x45; f[17] = ${FRAME_LEN - 14}; f[22] = 64; f[23] = 17;
for (let i = 0; i < cap; i++) { off[i] = i * slot + 64; len[i] = f.length; slab.set(f, off[i]); }
const end = Date.now() + ${SECONDS * 1000}; let sent = 0;
while (sent < ${MAX_FRAMES} && Date.now() < end) sent += l.tx(slab, off, len, eg, cap, 0);
const s = new Float64Array(10); l.stats(s); l.close();
console.log(JSON.stringify({ queued: sent, ringFull: s[5] }));`;
  const [cmd, ...args] = pinned(0, [process.execPath, "-e", script]);
  const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "inherit"] });
  children.add(child);
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  return once(child, "close").then(([code]) => {
    children.delete(child);
    if (code !== 0) throw new Error(`generator exited with ${code}`);
    const g = JSON.parse(out) as { queued: number; ringFull: number };
    // What the interface took (its tx counter), not what was queued in the TX ring: when the
    // receiver's queue is full the kernel keeps the head frame in the ring and retries it.
    return { sent: kernelCounters(ifname).tx - before, dropped: g.ringFull };
  });
}

interface Result {
  phase: string;
  /** Frames per second through the part under test. */
  fps: number;
  frames: number;
  seconds: number;
  /** CPU time (user + system, softirq work done in its context included) of the part under test per frame. */
  cpuNsPerFrame: number;
  note: string;
}

const results: Result[] = [];
function record(phase: string, frames: number, seconds: number, cpuMicros: number, note = ""): void {
  results.push({
    phase,
    fps: Math.round(frames / seconds),
    frames,
    seconds: +seconds.toFixed(3),
    cpuNsPerFrame: frames > 0 ? Math.round((cpuMicros * 1000) / frames) : 0,
    note,
  });
}

/** CPU time used by this process since `since` (process.cpuUsage), in microseconds. */
function cpuSince(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return d.user + d.system;
}

/** utime + stime of another process, in microseconds (from /proc; clock-tick resolution). */
function procCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // fields 14 and 15 of proc(5)
  const hz = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  return (ticks * 1e6) / hz;
}

/** Wake-ups of the current pump (for frames per wake-up). */
let wakeups = 0;

/**
 * On every wake-up, take up to MAX_BATCHES_PER_WAKEUP batches from a link, sending everything to
 * `out` (or discarding): the lvsd pattern. Readiness is level-triggered, so what is left is taken
 * on the next loop turn, after the other links and timers had theirs.
 */
const MAX_BATCHES_PER_WAKEUP = 16;
function pump(src: LinkIo, out: LinkIo | null, outId: number): () => void {
  const batch = new FrameBatch(BATCH);
  wakeups = 0;
  return () => {
    wakeups++;
    for (let b = 0; b < MAX_BATCHES_PER_WAKEUP; b++) {
      batch.reset();
      if (src.recv(batch, 0) === 0) break;
      if (out !== null) {
        const eg = batch.egress;
        for (let i = 0; i < batch.count; i++) eg[i] = outId;
        out.send(batch, outId);
      }
    }
  };
}

async function fwdTapcopy(): Promise<void> {
  const bin = buildOutput("tapcopy");
  if (bin === undefined) throw new Error("tapcopy not built: npx node-gyp rebuild");
  const [cmd, ...args] = pinned(1, [bin, "-n", NS_PATH, TA, TB]);
  const tc = spawn(cmd!, args, { stdio: ["ignore", "pipe", "inherit"] });
  children.add(tc);
  let out = "";
  tc.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise<void>((resolve) => {
    const check = () => (out.includes("ready") ? resolve() : setTimeout(check, 5));
    check();
  });
  const before = kernelCounters(TB).rx;
  const cpu0 = procCpuMicros(tc.pid!);
  const t0 = performance.now();
  const gen = await generator(TA, SINK_MAC);
  const secs = (performance.now() - t0) / 1000;
  const cpu = procCpuMicros(tc.pid!) - cpu0;
  tc.kill("SIGTERM");
  await once(tc, "close");
  children.delete(tc);
  const fwd = kernelCounters(TB).rx - before;
  record("fwd tapcopy (C, tA->tB)", fwd, secs, cpu, `generator offered ${gen.sent}`);
}

async function fwdAddon(): Promise<void> {
  const a = openTap({ name: TA, netns: NS, create: false });
  const b = openTap({ name: TB, netns: NS, create: false });
  try {
    a.onReadable(pump(a, b, 1));
    const before = kernelCounters(TB).rx;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const gen = await generator(TA, SINK_MAC);
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSince(cpu0);
    a.onReadable(null);
    const fwd = kernelCounters(TB).rx - before;
    const perWake = (a.stats.rxPackets / Math.max(1, wakeups)).toFixed(1);
    record(
      "fwd addon (recv/send, tA->tB)",
      fwd,
      secs,
      cpu,
      `generator offered ${gen.sent}, ${perWake} frames/wake-up`,
    );
  } finally {
    a.close();
    b.close();
  }
}

async function tapRx(): Promise<void> {
  const a = openTap({ name: TA, netns: NS, create: false });
  try {
    a.onReadable(pump(a, null, EGRESS_NONE));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const gen = await generator(TA, SINK_MAC);
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSince(cpu0);
    a.onReadable(null);
    const perWake = (a.stats.rxPackets / Math.max(1, wakeups)).toFixed(1);
    record(
      "tap rx (addon recv)",
      a.stats.rxPackets,
      secs,
      cpu,
      `offered ${gen.sent}, ${perWake} frames/wake-up`,
    );
  } finally {
    a.close();
  }
}

function txLoop(link: LinkIo, dst: ArrayLike<number>): { frames: number; secs: number; cpu: number } {
  const batch = new FrameBatch(BATCH);
  fillBatch(batch, dst, link.mac, 0);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  let frames = 0;
  while (frames < MAX_FRAMES && performance.now() < end) frames += link.send(batch, 0);
  return { frames, secs: (performance.now() - t0) / 1000, cpu: cpuSince(cpu0) };
}

function tapTx(): void {
  const b = openTap({ name: TB, netns: NS, create: false });
  try {
    const before = kernelCounters(TB).rx;
    const { frames, secs, cpu } = txLoop(b, SINK_MAC);
    const seen = kernelCounters(TB).rx - before;
    record("tap tx (addon send)", frames, secs, cpu, `kernel saw ${seen}`);
  } finally {
    b.close();
  }
}

async function rawFwd(zeroCopy: boolean): Promise<void> {
  const a = openRaw({ ifname: VA, netns: NS, zeroCopy });
  const c = openRaw({ ifname: VC, netns: NS, zeroCopy });
  try {
    a.onReadable(pump(a, c, 1));
    const before = kernelCounters(VD).rx;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const gen = await generator(VB, a.mac);
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSince(cpu0);
    a.onReadable(null);
    const fwd = kernelCounters(VD).rx - before;
    const perWake = (a.stats.rxPackets / Math.max(1, wakeups)).toFixed(1);
    record(
      `fwd raw ring ${zeroCopy ? "zero-copy" : "copy"} (va->vc)`,
      fwd,
      secs,
      cpu,
      `offered ${gen.sent}, ${perWake} frames/wake-up, kernel drops ${a.detail().kernelDrops}`,
    );
  } finally {
    a.close();
    c.close();
  }
}

async function rawRx(mode: "ring" | "mmsg", zeroCopy = true): Promise<void> {
  const r = openRaw({ ifname: VA, netns: NS, mode, zeroCopy });
  try {
    r.onReadable(pump(r, null, EGRESS_NONE));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const gen = await generator(VB, r.mac);
    const secs = (performance.now() - t0) / 1000;
    const cpu = cpuSince(cpu0);
    r.onReadable(null);
    const d = r.detail();
    record(
      `raw rx ${mode}${mode === "ring" ? (zeroCopy ? " zero-copy" : " copy") : ""} (veth)`,
      d.rxPackets,
      secs,
      cpu,
      `offered ${gen.sent}, kernel drops ${d.kernelDrops}`,
    );
  } finally {
    r.close();
  }
}

function rawTx(mode: "ring" | "mmsg"): void {
  const r = openRaw({ ifname: VA, netns: NS, mode, qdiscBypass: true });
  try {
    const before = kernelCounters(VB).rx;
    const { frames, secs, cpu } = txLoop(r, SINK_MAC);
    const seen = kernelCounters(VB).rx - before;
    record(`raw tx ${mode} (veth)`, frames, secs, cpu, `peer saw ${seen}, tx dropped ${r.stats.txDropped}`);
  } finally {
    r.close();
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error("io.bench: needs root (network namespaces, TAP, AF_PACKET); not run");
    process.exitCode = 1;
    return;
  }
  process.on("exit", teardown);
  process.on("SIGINT", () => process.exit(130));
  if (PIN) execFileSync("taskset", ["-cp", "1", String(process.pid)], { stdio: "ignore" }); // main thread only
  setup();
  console.error(
    `io.bench: ${SECONDS}s per phase, ${FRAME_LEN}-byte frames, batches of ${BATCH} (headroom ${HEADROOM})`,
  );
  await fwdTapcopy();
  await fwdAddon();
  await tapRx();
  tapTx();
  await rawRx("ring");
  await rawRx("ring", false);
  rawTx("ring");
  await rawFwd(true);
  await rawFwd(false);
  await rawRx("mmsg");
  rawTx("mmsg");
  const w = Math.max(...results.map((r) => r.phase.length));
  for (const r of results) {
    const cpu = `${r.cpuNsPerFrame} ns CPU/frame`.padStart(19);
    console.log(`${r.phase.padEnd(w)}  ${(r.fps / 1e6).toFixed(3).padStart(7)} Mfps ${cpu}  ${r.note}`);
  }
  console.log(JSON.stringify({ bench: "io", seconds: SECONDS, frameLen: FRAME_LEN, results }));
}

main().catch((err: unknown) => {
  console.error(err);
  teardown();
  process.exit(1);
});
