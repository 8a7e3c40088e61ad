/**
 * What forwarding by descriptor saves on AF_XDP links: the director's time per forwarded frame
 * with the UMEM lent to the batch (received in place, sent by descriptor) against the copying
 * path (`view: false`: UMEM -> batch slab on receive, slab -> free UMEM chunk on send), measured
 * alternately in the same run, in two scenarios:
 *   - one arm: one link, the real server on the client's segment, every frame leaves by the
 *     link it came in by: `view` against `copy`;
 *   - two links (clients on one, the real server on the other): `shared` (the second link bound
 *     to the first one's UMEM, as lvsd does: no copy), `own` (a UMEM each, lent to the batch: one
 *     copy, into the other link's UMEM) against `copy` (two copies).
 *
 * In process, in a network namespace this bench creates: a veth pair per link, each path with
 * its own links and engine doing LVS-NAT; an AF_PACKET socket on the client-side peer sends 256
 * UDP frames per batch to the VIP, one on the server-side peer (the same one, one arm) takes
 * the forwarded frames.
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

/** How a side's AF_XDP links hold their frames. */
type Path = "view" | "copy" | "shared" | "own";

interface Side {
  name: Path;
  /** x[0] receives; the frames leave by x[0] (one arm) or x[1] (two links). */
  x: XdpIo[];
  gen: RawIo;
  sink: RawIo;
  d: Director;
  out: FrameBatch;
  drain: FrameBatch;
}

let pairs = 0;
function veth(topo: Topology, ns: string): [string, string] {
  const k = pairs++;
  const a = topo.dev(`a${k}`);
  const b = topo.dev(`b${k}`);
  ip("-n", ns, "link", "add", a, "type", "veth", "peer", "name", b);
  ip("-n", ns, "link", "set", a, "up");
  ip("-n", ns, "link", "set", b, "up");
  return [a, b];
}

/**
 * One arm (`view`, `copy`): one link, the real server on the client's segment. Two links
 * (`shared`: the second link bound to the first one's UMEM; `own`: a UMEM each, lent to the
 * batch, so one copy on the way out; `copy` with `two`: both links copying): clients on link 0,
 * the real server on link 1.
 */
function side(topo: Topology, ns: string, path: Path, two: boolean): Side {
  const [a0, b0] = veth(topo, ns);
  const view = path !== "copy";
  const x0 = openXdp({ ifname: a0, netns: ns, view, ...(path === "shared" ? { umemFrames: 8192 } : {}) });
  const x: XdpIo[] = [x0];
  const gen = openRaw({ ifname: b0, netns: ns, txFrames: 1024 });
  let sink = gen;
  const e = new Engine({ sweepPerBatch: 64 });
  e.net.addLink(a0, x0.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], x0.mtu);
  let rs = "10.0.0.50";
  if (two) {
    const [a1, b1] = veth(topo, ns);
    const x1 = openXdp({ ifname: a1, netns: ns, view, ...(path === "shared" ? { share: x0 } : {}) });
    x.push(x1);
    sink = openRaw({ ifname: b1, netns: ns });
    e.net.addLink(a1, x1.mac, [{ addr: ipToU32("192.168.10.254"), prefix: 24 }], x1.mtu);
    rs = "192.168.10.1";
  }
  e.net.neigh.learn(ipToU32(rs), sink.mac, 0, x.length - 1, 0, true);
  const key = { proto: IPPROTO_UDP, addr: ipToU32("10.0.0.100"), port: 53 };
  e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, proxyProtocol: 0 });
  e.table.addDest(key, {
    addr: ipToU32(rs),
    port: 53,
    weight: 1,
    fwd: FwdMethod.MASQ,
    uThreshold: 0,
    lThreshold: 0,
  });
  const d = new Director(e);
  for (const l of x) d.attach(l);
  return { name: path, x, gen, sink, d, out: new FrameBatch(256), drain: new FrameBatch(256) };
}

function fill(s: Side, payload: number): void {
  s.out.reset();
  const p = "x".repeat(payload);
  for (let k = 0; k < 256; k++) {
    const f = eth({ src: bytesToMac(s.gen.mac), dst: bytesToMac(s.x[0]!.mac) })
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
  const x = s.x[0]!;
  const out = s.x[s.x.length - 1]!;
  const outId = s.x.length - 1;
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
      out.send(rx, outId);
      rx.release();
      if (e.tx.count > 0) for (let l = 0; l < s.x.length; l++) s.x[l]!.send(e.tx, l);
      const t3 = performance.now();
      t.rx += t1 - t0;
      t.engine += t2 - t1;
      t.tx += t3 - t2;
    }
    for (let n = 0; n < 8; n++) {
      s.drain.reset();
      const got = s.sink.recv(s.drain, 0);
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

/** Measure `sides` alternately; rows for the table. `base` is the path the ratios are against. */
function measure(scenario: string, sides: Side[], base: Path): string[] {
  const rows: string[] = [];
  for (const payload of [18, 1400]) {
    for (const s of sides) fill(s, payload);
    for (const s of sides) round(s); // warm-up: JIT, connections, ring pages
    const per = new Map<
      string,
      { rx: number[]; engine: number[]; tx: number[]; all: number[]; ratio: number[] }
    >(sides.map((s) => [s.name, { rx: [], engine: [], tx: [], all: [], ratio: [] }]));
    const counters0 = sides.map((s) => s.x.map((l) => l.detail()));
    let lost = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? sides : [...sides].reverse();
      const all = new Map<string, number>();
      for (const s of order) {
        const st = round(s);
        lost += BATCHES * 256 - st.frames;
        const f = Math.max(1, st.frames);
        const p = per.get(s.name)!;
        p.rx.push(st.rx / f);
        p.engine.push(st.engine / f);
        p.tx.push(st.tx / f);
        p.all.push((st.rx + st.engine + st.tx) / f);
        all.set(s.name, (st.rx + st.engine + st.tx) / f);
      }
      for (const s of sides) per.get(s.name)!.ratio.push(all.get(s.name)! / all.get(base)!);
    }
    const frameLen = payload + 42;
    const counters = sides
      .map((s, k) => {
        const sum = (f: (d: ReturnType<XdpIo["detail"]>) => number) =>
          s.x.reduce((t, l, j) => t + f(l.detail()) - f(counters0[k]![j]!), 0);
        return `${s.name}: txInPlace +${sum((d) => d.txInPlace)}, txCopied +${sum((d) => d.txCopied)}, rxCopied +${sum((d) => d.rxCopied)}`;
      })
      .join("; ");
    process.stdout.write(`${scenario}, frames of ${frameLen} bytes: ${counters}; frames not back: ${lost}\n`);
    const fmt = (v: number[], digits = 0) =>
      `${median(v).toFixed(digits)} (${Math.min(...v).toFixed(digits)}-${Math.max(...v).toFixed(digits)})`;
    for (const s of sides) {
      const p = per.get(s.name)!;
      rows.push(
        `| ${scenario} | ${frameLen} | ${s.name} | ${fmt(p.rx)} | ${fmt(p.engine)} | ${fmt(p.tx)} | ${fmt(p.all)} | ${s.name === base ? "1" : fmt(p.ratio, 2)} |`,
      );
    }
  }
  return rows;
}

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
    const one = [side(topo, ns, "view", false), side(topo, ns, "copy", false)];
    const two = [side(topo, ns, "shared", true), side(topo, ns, "own", true), side(topo, ns, "copy", true)];
    sides.push(...one, ...two);
    const rows = [...measure("one arm", one, "copy"), ...measure("two links", two, "copy")];
    const load1 = loadavg();
    process.stdout.write(
      `\nAF_XDP LVS-NAT, ${ROUNDS} rounds x ${BATCHES} batches x 256 frames per path and size; ` +
        `${cpus()[0]?.model ?? "?"} x${cpus().length}, kernel ${release()}, node ${process.version}; ` +
        `load average ${load0.map((l) => l.toFixed(2)).join(" ")} before, ${load1.map((l) => l.toFixed(2)).join(" ")} after\n\n`,
    );
    process.stdout.write(
      "ns per forwarded frame, median (range) over the rounds: receive (rxView, or rx: UMEM -> slab), engine, " +
        "send + release (by descriptor, or a copy into a free chunk; then the kick, in which the kernel transmits: " +
        "copy-mode AF_XDP builds an skb per frame, veth hands it to the peer). Paths: view = UMEM lent, sent back " +
        "by descriptor; shared = two links on one UMEM; own = a UMEM each, lent (one copy, on the way out); " +
        "copy = view: false (two copies)\n\n" +
        "| scenario | frame bytes | path | receive | engine | send + release | all | all / copy's |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (const r of rows) process.stdout.write(`${r}\n`);
  } finally {
    for (const s of sides) {
      for (const l of [...s.x].reverse()) l.close();
      s.gen.close();
      if (s.sink !== s.gen) s.sink.close();
    }
    topo.destroy();
  }
}

main();
