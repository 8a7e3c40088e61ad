/**
 * The in-process cost of lvsadm --trace on the data path (src/datapath/trace.ts): one Director
 * round (`pump`: receive 256 frames from two links, engine, send) over established NAT flows in
 * both directions, with the tracer off, on for every frame, on for the flows' service, and on for
 * a service none of the frames belongs to (the filter's cost alone). Each frame is captured
 * twice when it matches (as received and as sent): 512 records per batch. The ring is emptied
 * after every batch, as the control plane's drain would between batches; the drain itself (pcapng
 * encoding, control plane, off the data path's batch) is measured per frame on its own. The
 * director cases run interleaved in rounds and report their best round (see below).
 *
 * The links replay the same frames every round (one copy into the batch, no allocation), so the
 * numbers include that copy for every case alike. Used by bench/run.ts (`--only trace`); after
 * `npm run build`, also `node dist/bench/trace.bench.js [timeMs]`.
 */

import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Director } from "../src/datapath/director.js";
import { Engine } from "../src/datapath/engine.js";
import { EGRESS_NONE, FrameBatch, HEADROOM } from "../src/datapath/io/batch.js";
import type { LinkIo } from "../src/datapath/io/link.js";
import { pcapngPacketLength, writePcapngPacket } from "../src/datapath/io/pcap.js";
import { eth } from "../src/datapath/packet/build.js";
import { TCP_ACK, TCP_PSH, TCP_SYN } from "../src/datapath/packet/view.js";
import { FrameTracer, type TraceFilterEntry } from "../src/datapath/trace.js";
import { ipToU32, macToBytes } from "../src/lib/addr.js";
import { IPPROTO_TCP } from "../src/lib/proto.js";
import { FwdMethod } from "../src/tables/model.js";

export interface TraceBenchResult {
  name: string;
  unit: string;
  value: number;
  samples: number;
}

/** Flows per direction: a batch is HALF client frames then HALF server frames. */
const HALF = 128;
const SLOT = 2048;
const VIP = "10.0.0.100";
const CLIENT = "10.0.0.7";
const RS = ["192.168.10.1", "192.168.10.2"];
const MAC = {
  out: "02:00:00:00:00:01",
  in: "02:00:00:00:01:01",
  client: "02:00:00:00:00:07",
  rs: ["02:00:00:00:01:11", "02:00:00:00:01:12"],
};

/** A link that hands the director the same frames every round. */
class ReplayLink implements LinkIo {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu = 1500;
  readonly stats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, rxDropped: 0, txDropped: 0 };
  private readonly pristine: Uint8Array;
  private readonly lens: Uint32Array;

  constructor(name: string, mac: string, frames: Uint8Array[]) {
    this.name = name;
    this.mac = macToBytes(mac);
    const b = new FrameBatch(frames.length, SLOT);
    for (const f of frames) b.push(f, 0);
    this.pristine = b.buf.slice(0, frames.length * SLOT);
    this.lens = b.len.slice(0, frames.length);
  }

  recv(batch: FrameBatch, linkId: number): number {
    const start = batch.count;
    const n = this.lens.length;
    if (start + n > batch.capacity) return 0;
    batch.buf.set(this.pristine, start * SLOT);
    for (let i = 0; i < n; i++) {
      const j = start + i;
      batch.off[j] = j * SLOT + HEADROOM;
      batch.len[j] = this.lens[i]!;
      batch.link[j] = linkId;
      batch.egress[j] = EGRESS_NONE;
    }
    batch.count = start + n;
    return n;
  }

  send(batch: FrameBatch, linkId: number): number {
    let n = 0;
    for (let i = 0; i < batch.count; i++) if (batch.egress[i] === linkId) n++;
    this.stats.txPackets += n;
    return n;
  }

  onReadable(): void {}
  close(): void {}
}

/** A NAT director with HALF established flows; its links replay data segments both ways. */
function director(): Director {
  const e = new Engine({ maxConns: 1 << 16, sweepPerBatch: 64 });
  e.net.addLink("lvs0", macToBytes(MAC.out), [{ addr: ipToU32("10.0.0.1"), prefix: 24 }]);
  e.net.addLink("lvs1", macToBytes(MAC.in), [{ addr: ipToU32("192.168.10.254"), prefix: 24 }]);
  e.net.neigh.learn(ipToU32(CLIENT), macToBytes(MAC.client), 0, 0, 0, true);
  RS.forEach((rs, k) => {
    e.net.neigh.learn(ipToU32(rs), macToBytes(MAC.rs[k]!), 0, 1, 0, true);
  });
  const key = { proto: IPPROTO_TCP, addr: ipToU32(VIP), port: 80 };
  e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
  for (const rs of RS)
    e.table.addDest(key, {
      addr: ipToU32(rs),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
  const one = new FrameBatch(1);
  const send = (f: Uint8Array, link: number) => {
    one.reset();
    one.push(f, link);
    e.process(one, 1);
  };
  const c2s: Uint8Array[] = [];
  const s2c: Uint8Array[] = [];
  for (let k = 0; k < HALF; k++) {
    const sport = 20000 + k;
    const fromClient = (flags: number, seq: number, data = "") =>
      eth({ src: MAC.client, dst: MAC.out })
        .ipv4({ src: CLIENT, dst: VIP })
        .tcp({ sport, dport: 80, seq, ack: 1, flags })
        .payload(data)
        .build();
    send(fromClient(TCP_SYN, 0), 0);
    const c = e.ct.lookupIn(6, ipToU32(CLIENT), sport, ipToU32(VIP), 80);
    const r = e.ct.daddr[c] === ipToU32(RS[0]!) ? 0 : 1;
    const fromServer = (flags: number, seq: number, ack: number, data = "") =>
      eth({ src: MAC.rs[r]!, dst: MAC.in })
        .ipv4({ src: RS[r]!, dst: CLIENT })
        .tcp({ sport: 80, dport: sport, seq, ack, flags })
        .payload(data)
        .build();
    send(fromServer(TCP_SYN | TCP_ACK, 0, 1), 1);
    send(fromClient(TCP_ACK, 1), 0);
    // a mix of small and full-size segments, as a web transfer has
    c2s.push(fromClient(TCP_ACK | TCP_PSH, 1, "x".repeat(k % 4 === 0 ? 400 : 40)));
    s2c.push(fromServer(TCP_ACK | TCP_PSH, 1, 500, "y".repeat(k % 2 === 0 ? 1400 : 200)));
  }
  const d = new Director(e);
  d.attach(new ReplayLink("lvs0", MAC.out, c2s));
  d.attach(new ReplayLink("lvs1", MAC.in, s2c));
  return d;
}

function meanNs(task: { result: unknown } | undefined): { value: number; samples: number } {
  const r = task?.result as { latency?: { mean: number; samplesCount: number } } | undefined;
  if (!r?.latency) return { value: 0, samples: 0 };
  return { value: r.latency.mean * 1e6, samples: r.latency.samplesCount };
}

export async function runTraceBench(timeMs = 1500): Promise<TraceBenchResult[]> {
  const service: TraceFilterEntry[] = [
    { addr: ipToU32(VIP), proto: IPPROTO_TCP, port: 80 },
    ...RS.map((rs) => ({ addr: ipToU32(rs), proto: IPPROTO_TCP, port: 80 })),
  ];
  const other: TraceFilterEntry[] = [
    { addr: ipToU32("10.0.0.200"), proto: IPPROTO_TCP, port: 443 },
    { addr: ipToU32("192.168.10.9"), proto: IPPROTO_TCP, port: 443 },
  ];
  const cases: [string, FrameTracer | null][] = [
    ["tracing off", null],
    ["tracing every frame", new FrameTracer()],
    ["tracing the flows' service", new FrameTracer()],
    ["tracing another service (filter only)", new FrameTracer()],
  ];
  cases[2]![1]!.setFilter(service);
  cases[3]![1]!.setFilter(other);

  // The four director cases run interleaved, in rounds of PER_ROUND batches, and each keeps its
  // best round: on a shared machine a burst of other work then costs one round of every case
  // rather than skewing one case.
  const PER_ROUND = 200;
  const dirs: Director[] = [];
  const rounds: number[][] = cases.map(() => []);
  const pumps = cases.map(([, tr]) => {
    const d = director();
    d.tracer = tr;
    dirs.push(d);
    let now = 10;
    return (n: number): number => {
      const t0 = performance.now();
      for (let k = 0; k < n; k++) {
        d.pump(now++);
        if (tr !== null) tr.release(tr.count); // the control plane's drain, between batches
      }
      return ((performance.now() - t0) * 1e6) / n;
    };
  });
  for (const p of pumps) p(2000); // warm-up: optimized code, the tracer's views made
  const end = performance.now() + timeMs;
  while (performance.now() < end || rounds[0]!.length < 5) {
    pumps.forEach((p, k) => {
      rounds[k]!.push(p(PER_ROUND));
    });
  }

  // the control plane's drain: pcapng-encode a batch's records (512) into the write chunk
  const enc = new FrameTracer();
  const ed = director();
  ed.tracer = enc;
  ed.pump(1);
  const records = enc.count;
  const chunk = Buffer.alloc(4 << 20);
  const bench = new Bench({ time: Math.max(200, timeMs / 3), warmupTime: 100 });
  bench.add("pcapng encoding of one batch's records", () => {
    let o = 0;
    for (let k = 0; k < records; k++) {
      const r = enc.record(k);
      const cap = enc.capLen[r]!;
      o += writePcapngPacket(
        chunk,
        o,
        enc.link[r]!,
        1.7e15 + k,
        enc.dir[r]!,
        enc.buf,
        enc.off[r]!,
        cap,
        enc.origLen[r]!,
      );
    }
    if (o > chunk.length - pcapngPacketLength(2048)) throw new Error("chunk too small");
  });
  await bench.run();

  // every frame of every round forwarded, and captured where it should be
  for (const d of dirs) {
    const drops = d.engine.drops.reduce((a, b) => a + b, 0);
    if (drops !== 0) throw new Error(`trace bench: the director dropped ${drops} frames`);
  }
  const [, all, svc, none] = cases.map((c) => c[1]);
  if (all!.dropped + svc!.dropped !== 0) throw new Error("trace bench: the ring dropped frames");
  if (none!.captured !== 0) throw new Error("trace bench: the other service's filter matched");
  // each of the 256 frames of a batch is the service's, captured as received and as sent
  for (const tr of [all!, svc!])
    if (tr.captured === 0 || tr.captured % (4 * HALF) !== 0)
      throw new Error(`trace bench: ${tr.captured} frames captured, not 512 per batch`);

  const out: TraceBenchResult[] = [];
  const best = rounds.map((r) => Math.min(...r));
  cases.forEach(([name], k) => {
    out.push({
      name: `trace: director batch (256 frames), ${name}`,
      unit: "ns/batch",
      value: best[k]!,
      samples: rounds[k]!.length * PER_ROUND,
    });
  });
  const off = best[0]!;
  cases.slice(1).forEach(([name], k) => {
    out.push({ name: `trace: ${name} / off`, unit: "ratio", value: best[k + 1]! / off, samples: 1 });
  });
  out.push({
    name: "trace: cost per captured frame, tracing every frame",
    unit: "ns/frame",
    value: (best[1]! - off) / (4 * HALF),
    samples: rounds[1]!.length * PER_ROUND,
  });
  const e = meanNs(bench.tasks[0]);
  out.push({
    name: "trace: pcapng encoding per frame (control plane)",
    unit: "ns/frame",
    value: e.value / records,
    samples: e.samples,
  });
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const timeMs = Number(process.argv[2] ?? 1500);
  for (const r of await runTraceBench(timeMs)) console.log(`${r.name}: ${r.value.toFixed(2)} ${r.unit}`);
}
