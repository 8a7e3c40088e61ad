/**
 * What forwarding by descriptor saves on an AF_XDP link: the director's time per forwarded frame
 * with the UMEM lent to the batch (`view`, the default: received in place, sent back by
 * descriptor) against the copying path (`view: false`: UMEM -> batch slab on receive, slab ->
 * free UMEM chunk on send), measured alternately in the same run.
 *
 * In process, in a network namespace this bench creates: two veth pairs, an AF_XDP link on a0
 * (view) and one on a1 (copy), each with its own engine doing one-arm LVS-NAT (the real server
 * on the same segment, so every frame leaves by the link it came in by); an AF_PACKET socket on
 * each peer end sends 256 UDP frames per batch to the VIP and takes the forwarded frames back.
 * Only the director's round counts, each step of Director.pumpLink timed on its own: receive,
 * engine, send + release (the send's kick is where the kernel transmits); the generator's work
 * and the veth's delivery into the UMEM (done in the generator's send) do not. Rounds alternate
 * view/copy; medians and ranges over the rounds. Frame sizes: 60 bytes (18-byte UDP payload)
 * and 1,442 bytes (1,400).
 *
 * Usage: sudo node dist/bench/e2e/xdpview.js [--rounds 20] [--batches 200]
 */
import { cpus, loadavg, release } from "node:os";
import { Director } from "../../src/datapath/director.js";
import { Engine } from "../../src/datapath/engine.js";
import { FrameBatch } from "../../src/datapath/io/batch.js";
import { openRaw, type RawIo } from "../../src/datapath/io/rawsock.js";
import { openXdp, type XdpIo } from "../../src/datapath/io/xdp.js";
import { eth } from "../../src/datapath/packet/build.js";
import { bytesToMac, ipToU32 } from "../../src/lib/addr.js";
import { IPPROTO_UDP } from "../../src/lib/proto.js";
import { FwdMethod } from "../../src/tables/model.js";
import { canUseNetns, ip, Topology } from "../../src/tools/lab/netns.js";

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt("--rounds", 20);
const BATCHES = opt("--batches", 200);

interface Side {
  name: string;
  x: XdpIo;
  gen: RawIo;
  d: Director;
  out: FrameBatch;
  drain: FrameBatch;
}

function side(topo: Topology, ns: string, k: number, view: boolean): Side {
  const a = topo.dev(`a${k}`);
  const b = topo.dev(`b${k}`);
  ip("-n", ns, "link", "add", a, "type", "veth", "peer", "name", b);
  ip("-n", ns, "link", "set", a, "up");
  ip("-n", ns, "link", "set", b, "up");
  const x = openXdp({ ifname: a, netns: ns, view });
  const gen = openRaw({ ifname: b, netns: ns, txFrames: 1024 });
  const e = new Engine({ sweepPerBatch: 64 });
  e.net.addLink(a, x.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], x.mtu);
  e.net.neigh.learn(ipToU32("10.0.0.50"), gen.mac, 0, 0, 0, true);
  const key = { proto: IPPROTO_UDP, addr: ipToU32("10.0.0.100"), port: 53 };
  e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, proxyProtocol: 0 });
  e.table.addDest(key, {
    addr: ipToU32("10.0.0.50"),
    port: 53,
    weight: 1,
    fwd: FwdMethod.MASQ,
    uThreshold: 0,
    lThreshold: 0,
  });
  const d = new Director(e);
  d.attach(x);
  return {
    name: view ? "view" : "copy",
    x,
    gen,
    d,
    out: new FrameBatch(256),
    drain: new FrameBatch(256),
  };
}

function fill(s: Side, payload: number): void {
  s.out.reset();
  const p = "x".repeat(payload);
  for (let k = 0; k < 256; k++) {
    const f = eth({ src: bytesToMac(s.gen.mac), dst: bytesToMac(s.x.mac) })
      .ipv4({ src: "10.0.0.7", dst: "10.0.0.100" })
      .udp({ sport: 20000 + k, dport: 53 })
      .payload(p)
      .build();
    s.out.egress[s.out.push(f)] = 0;
  }
}

/** Nanoseconds in each step of the director's round, summed over a measurement. */
interface Steps {
  rx: number;
  engine: number;
  tx: number;
  frames: number;
}

/**
 * One round: BATCHES batches through the side, each step of Director.pumpLink timed on its own
 * (receive; engine; send + release, whose kick makes the kernel transmit).
 */
function round(s: Side): Steps {
  const t = { rx: 0, engine: 0, tx: 0, frames: 0 };
  const rx = s.d.rx;
  const e = s.d.engine;
  const x = s.x;
  for (let r = 0; r < BATCHES; r++) {
    s.gen.send(s.out, 0);
    for (let n = 0; n < 8; n++) {
      const t0 = performance.now();
      rx.reset();
      const got = x.recv(rx, 0);
      const t1 = performance.now();
      if (got === 0) break;
      e.process(rx, r);
      const t2 = performance.now();
      x.send(rx, 0);
      rx.release();
      if (e.tx.count > 0) x.send(e.tx, 0);
      const t3 = performance.now();
      t.rx += t1 - t0;
      t.engine += t2 - t1;
      t.tx += t3 - t2;
    }
    for (let n = 0; n < 8; n++) {
      s.drain.reset();
      const got = s.gen.recv(s.drain, 0);
      if (got === 0) break;
      t.frames += got;
    }
  }
  return { rx: t.rx * 1e6, engine: t.engine * 1e6, tx: t.tx * 1e6, frames: t.frames };
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

function main(): void {
  if (!canUseNetns()) {
    process.stderr.write("bench/e2e/xdpview: needs root and the ip tool\n");
    process.exit(2);
  }
  const topo = new Topology(`xv${process.pid % 10000}`);
  const sides: Side[] = [];
  const load0 = loadavg();
  try {
    const ns = topo.addNs("n");
    sides.push(side(topo, ns, 0, true), side(topo, ns, 1, false));
    const rows: string[] = [];
    for (const payload of [18, 1400]) {
      for (const s of sides) fill(s, payload);
      for (const s of sides) round(s); // warm-up: JIT, connections, ring pages
      const per = new Map<string, { rx: number[]; engine: number[]; tx: number[]; all: number[] }>(
        sides.map((s) => [s.name, { rx: [], engine: [], tx: [], all: [] }]),
      );
      const ratios: number[] = [];
      const c0 = sides.map((s) => s.x.detail());
      let lost = 0;
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? sides : [...sides].reverse();
        const got = new Map<string, number>();
        for (const s of order) {
          const st = round(s);
          lost += BATCHES * 256 - st.frames;
          const f = Math.max(1, st.frames);
          const p = per.get(s.name)!;
          p.rx.push(st.rx / f);
          p.engine.push(st.engine / f);
          p.tx.push(st.tx / f);
          p.all.push((st.rx + st.engine + st.tx) / f);
          got.set(s.name, (st.rx + st.engine + st.tx) / f);
        }
        ratios.push(got.get("view")! / got.get("copy")!);
      }
      const c1 = sides.map((s) => s.x.detail());
      const counters = sides
        .map(
          (s, k) =>
            `${s.name}: txInPlace +${c1[k]!.txInPlace - c0[k]!.txInPlace}, txCopied +${c1[k]!.txCopied - c0[k]!.txCopied}, rxCopied +${c1[k]!.rxCopied - c0[k]!.rxCopied}`,
        )
        .join("; ");
      const fmt = (v: number[]) =>
        `${median(v).toFixed(0)} (${Math.min(...v).toFixed(0)}-${Math.max(...v).toFixed(0)})`;
      const frameLen = payload + 42;
      for (const s of sides) {
        const p = per.get(s.name)!;
        rows.push(
          `| ${frameLen} | ${s.name} | ${fmt(p.rx)} | ${fmt(p.engine)} | ${fmt(p.tx)} | ${fmt(p.all)} | ${s.name === "view" ? `${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})` : ""} |`,
        );
      }
      process.stdout.write(`frames of ${frameLen} bytes: ${counters}; frames not back: ${lost}\n`);
    }
    const load1 = loadavg();
    process.stdout.write(
      `\nAF_XDP one-arm LVS-NAT, ${ROUNDS} rounds x ${BATCHES} batches x 256 frames per side and size; ` +
        `${cpus()[0]?.model ?? "?"} x${cpus().length}, kernel ${release()}, node ${process.version}; ` +
        `load average ${load0.map((l) => l.toFixed(2)).join(" ")} before, ${load1.map((l) => l.toFixed(2)).join(" ")} after\n\n`,
    );
    process.stdout.write(
      "ns per forwarded frame, median (range) over the rounds: receive (view: rxView; copy: rx, UMEM -> slab), " +
        "engine, send + release (view: by descriptor; copy: slab -> free chunk; both: the kick, in which the " +
        "kernel transmits: copy-mode AF_XDP builds an skb per frame, veth hands it to the peer)\n\n" +
        "| frame bytes | path | receive | engine | send + release | all | view / copy (all) |\n|---|---|---|---|---|---|---|\n",
    );
    for (const r of rows) process.stdout.write(`${r}\n`);
  } finally {
    for (const s of sides) {
      s.x.close();
      s.gen.close();
    }
    topo.destroy();
  }
}

main();
