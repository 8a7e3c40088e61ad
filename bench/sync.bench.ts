/**
 * Connection sync, in process (src/datapath/sync.ts, src/control/sync/daemon.ts):
 *
 * 1. The master's per-packet cost: established NAT flows (256-frame batches, client to server)
 *    with no sync daemon, and with a master daemon whose sysctls make every 5th packet of a flow
 *    write an entry (sync_threshold "1 5": ten times the kernel default's 1 in 50), the ring
 *    drained after every batch as the daemon does between batches; and the same for SYN-proxied
 *    flows without and with the master daemon (their entries carry the SEQ option: 62 bytes
 *    instead of 36). tinybench, interleaved.
 * 2. Does a backup keep up with the master's new-connection rate? Rounds of N new connections
 *    (SYN, ACK, request: each synced once, at its 3rd packet, with the default sysctls) through a
 *    master engine with its sync daemon, timing connections/s; then the messages it sent are
 *    applied by a backup daemon to a fresh engine with the same services, timing entries/s.
 *    The ratio backup/master above 1 means one backup thread absorbs the master's peak rate.
 *    Both measured in the same process and round, alternately (the machine is shared).
 *
 * Used by bench/run.ts (`--only sync`); after `npm run build`, `node dist/bench/sync.bench.js`.
 */
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import type { EventLog } from "../src/control/observe/log.js";
import { SyncDaemon } from "../src/control/sync/daemon.js";
import type { Engine } from "../src/datapath/engine.js";
import { FrameBatch } from "../src/datapath/io/batch.js";
import { eth } from "../src/datapath/packet/build.js";
import { parseFrame } from "../src/datapath/packet/parse.js";
import { FrameView, TCP_ACK, TCP_PSH, TCP_SYN } from "../src/datapath/packet/view.js";
import { SyncOut } from "../src/datapath/sync.js";
import { type BenchResult, establishedBatches, pps, restorer, setup } from "./datapath.bench.js";

const VIP = "10.0.0.100";
const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as EventLog;

function daemonFor(e: Engine, sent: Uint8Array[] | null): SyncDaemon {
  return new SyncDaemon({
    engine: e,
    linkNames: ["out0", "in0"],
    flush: () => {
      if (sent) for (let j = 0; j < e.tx.count; j++) sent.push(e.tx.frame(j));
      e.tx.reset();
    },
    now: () => 0,
    log: quiet,
    timers: { every: () => 0, cancel: () => {} },
    defer: (fn) => fn(),
  });
}

/**
 * 256 SYN-proxied NAT flows through the cookie handshake and the server's SYN-ACK; a batch of
 * one client->server data segment each.
 */
function synProxyBatch(e: Engine): FrameBatch {
  const key = { proto: 6, addr: (10 << 24) | 100, port: 80 };
  e.table.editService(key, { sched: "wrr", flags: 0, timeout: 0, netmask: 0xffffffff, synProxy: true });
  const one = new FrameBatch(1);
  const send = (f: Uint8Array, link: number) => {
    one.reset();
    one.push(f, link);
    e.process(one, 1);
  };
  const b = new FrameBatch(256, 128);
  for (let i = 0; i < 256; i++) {
    const c = `10.0.9.${i}`;
    const sport = 30000 + i;
    const f = (flags: number, seq: number, ack: number, data = "") =>
      eth({ src: "02:00:00:00:00:fe", dst: "02:00:00:00:00:01" })
        .ipv4({ src: c, dst: VIP })
        .tcp({ sport, dport: 80, seq, ack, flags, mss: 1460 })
        .payload(data)
        .build();
    e.tx.reset();
    send(f(TCP_SYN, 0, 0), 0);
    const sa = e.tx.frame(0);
    const cookie = new DataView(sa.buffer, sa.byteOffset).getUint32(14 + 20 + 4);
    send(f(TCP_ACK, 1, cookie + 1), 0);
    const conn = e.ct.lookupIn(6, (10 << 24) | (9 << 8) | i, sport, (10 << 24) | 100, 80);
    const rip = e.ct.daddr[conn]! & 0xff;
    send(
      eth({ src: `02:00:00:00:01:1${rip}`, dst: "02:00:00:00:01:01" })
        .ipv4({ src: `192.168.10.${rip}`, dst: c })
        .tcp({ sport: 80, dport: sport, seq: 7000, ack: 1, flags: TCP_SYN | TCP_ACK })
        .build(),
      1,
    );
    b.push(f(TCP_ACK, 1, cookie + 1, "\0\0\0\0\0\0"), 0);
  }
  e.tx.reset();
  if (e.synproxy.handshakes !== 256) throw new Error(`${e.synproxy.handshakes} SYN-proxy handshakes of 256`);
  return b;
}

/** Frames for `n` new connections from distinct clients: SYN, ACK, request, in batches of 256. */
function newConnBatches(n: number, base: number): FrameBatch[] {
  const out: FrameBatch[] = [];
  let b = new FrameBatch(256, 128);
  const add = (f: Uint8Array) => {
    if (b.count === b.capacity) {
      out.push(b);
      b = new FrameBatch(256, 128);
    }
    b.push(f, 0);
  };
  for (let i = 0; i < n; i++) {
    const k = base + i;
    const c = `11.${(k >> 16) & 0xff}.${(k >> 8) & 0xff}.${k & 0xff}`;
    const sport = 20000;
    const f = (flags: number, data = "") =>
      eth({ src: "02:00:00:00:00:fe", dst: "02:00:00:00:00:01" })
        .ipv4({ src: c, dst: VIP })
        .tcp({ sport, dport: 80, seq: 1, ack: 1, flags })
        .payload(data)
        .build();
    add(f(TCP_SYN));
    add(f(TCP_ACK));
    add(f(TCP_ACK | TCP_PSH, "GET / "));
  }
  if (b.count > 0) out.push(b);
  return out;
}

export async function runSyncBench(timeMs = 1500, rounds = 5, conns = 40_000): Promise<BenchResult[]> {
  const results: BenchResult[] = [];

  // ---- 1. established flows, sync off vs on ----
  const off = setup(1 << 16);
  const on = setup(1 << 16);
  const a = establishedBatches(off, 4096).inb;
  const b = establishedBatches(on, 4096).inb;
  const ra = restorer(a);
  const rb = restorer(b);
  const out = new SyncOut(on.ct, on.table, on.sysctl, 1, 1472);
  on.ct.syncReset = out.reset;
  on.sync = out;
  on.sysctl.syncThreshold = 1;
  on.sysctl.syncPeriod = 5;
  const sp0 = setup(1 << 16);
  const c0 = synProxyBatch(sp0);
  const rc0 = restorer(c0);
  const sp = setup(1 << 16);
  const c = synProxyBatch(sp);
  const rc = restorer(c);
  const spOut = new SyncOut(sp.ct, sp.table, sp.sysctl, 1, 1472);
  sp.ct.syncReset = spOut.reset;
  sp.sync = spOut;
  sp.sysctl.syncThreshold = 1;
  sp.sysctl.syncPeriod = 5;
  let t = 10;
  const bench = new Bench({ time: timeMs, warmupTime: 300 });
  bench
    .add("sync: established NAT c->s, no sync daemon", () => {
      ra();
      off.process(a, t++);
    })
    .add("sync: established NAT c->s, master writing 1 entry per 5 packets", () => {
      rb();
      on.process(b, t++);
      while (out.ready(t, 0) >= 0) out.release();
    })
    .add("sync: established SYN-proxied NAT c->s, no sync daemon", () => {
      rc0();
      sp0.process(c0, t++);
    })
    .add("sync: established SYN-proxied NAT c->s, master writing 1 entry (SEQ option) per 5 packets", () => {
      rc();
      sp.process(c, t++);
      while (spOut.ready(t, 0) >= 0) spOut.release();
    });
  await bench.run();
  if (spOut.entries === 0) throw new Error("no SYN-proxy sync entries written");
  for (const task of bench.tasks) {
    const r = pps(task, 256);
    results.push({ name: task.name, unit: "pkt/s", ...r });
  }

  // ---- 2. new connections: master rate vs backup apply rate ----
  const plainRates: number[] = [];
  const masterRates: number[] = [];
  const backupRates: number[] = [];
  const v = new FrameView();
  for (let round = 0; round < rounds; round++) {
    // the same connections through an engine without sync, for the cost of syncing them
    const p = setup(1 << 20);
    const pb = newConnBatches(conns, round * conns);
    let pnow = 100;
    const p0 = performance.now();
    for (const bt of pb) p.process(bt, pnow++);
    plainRates.push(conns / ((performance.now() - p0) / 1000));
    const m = setup(1 << 20);
    const sent: Uint8Array[] = [];
    const md = daemonFor(m, sent);
    md.start("master", { mcastIfn: "out0", syncid: 1 });
    const batches = newConnBatches(conns, round * conns);
    let now = 100;
    const t0 = performance.now();
    for (const bt of batches) {
      m.process(bt, now++);
      md.sendReady(); // the daemon's tick, as often as a batch here
    }
    md.sendReady(true);
    const t1 = performance.now();
    masterRates.push(conns / ((t1 - t0) / 1000));
    const payloads = sent.map((f) => {
      parseFrame(f, new DataView(f.buffer, f.byteOffset, f.byteLength), 0, f.length, v);
      return f.slice(v.l4Off + 8, v.l4Off + v.l4Len);
    });
    const bk = setup(1 << 20);
    const bd = daemonFor(bk, null);
    bd.start("backup", { mcastIfn: "out0", syncid: 1 });
    const t2 = performance.now();
    for (const p of payloads) bd.apply(p, 1, 1000);
    const t3 = performance.now();
    const created = bd.counters.created;
    if (created !== conns) throw new Error(`backup created ${created} of ${conns} connections`);
    backupRates.push(created / ((t3 - t2) / 1000));
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
  const ratios = masterRates.map((mr, i) => backupRates[i]! / mr);
  results.push({
    name: "sync: new connections without sync (3 packets each)",
    unit: "conn/s",
    value: median(plainRates),
    samples: rounds,
  });
  results.push({
    name: "sync: with/without sync, new connections (same round, median)",
    unit: "x",
    value: median(masterRates.map((mr, i) => mr / plainRates[i]!)),
    samples: rounds,
  });
  results.push({
    name: "sync: master new connections with sync (3 packets each)",
    unit: "conn/s",
    value: median(masterRates),
    samples: rounds,
  });
  results.push({
    name: "sync: backup applying their entries",
    unit: "entry/s",
    value: median(backupRates),
    samples: rounds,
  });
  results.push({
    name: "sync: backup rate / master rate (same round, median)",
    unit: "x",
    value: median(ratios),
    samples: rounds,
  });
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const timeMs = Number(process.argv[2] ?? 1500);
  for (const r of await runSyncBench(timeMs))
    console.log(`${r.name.padEnd(70)} ${r.value.toFixed(r.unit === "x" ? 2 : 0)} ${r.unit}`);
}
