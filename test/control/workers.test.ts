/**
 * Data-path workers (src/control/workers.ts, src/datapath/workers/worker.ts; docs/workers.md):
 * worker threads fed from memory links, each with its own engine and connection table.
 *
 * - The same traffic through 1 and through 2 workers forwards the same bytes per flow, both
 *   ways, for NAT and FULLNAT (the replies steered as a fanout program would: client end for
 *   NAT, local-port slice for FULLNAT), and the summed counters equal the traffic.
 * - Control-plane changes made on the master after the workers started (a new service, a
 *   weight, a deleted dest, a sysctl) reach every worker.
 *
 * Needs dist/ (npm run build): the worker threads run the compiled worker.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  type Flow,
  FNAT_VIP,
  flows,
  LADDR,
  masterEngine,
  NAT_VIP,
  replayLinks,
  reply,
  request,
  ripIp,
  steerReply,
  steerRequest,
  udpFields,
  workerNet,
} from "../../bench/workers-traffic.js";
import { defaultWorkerUrl, WorkerPool } from "../../src/control/workers.js";
import { TcpState } from "../../src/datapath/conntrack/states.js";
import { Drop } from "../../src/datapath/drops.js";
import type { Engine } from "../../src/datapath/engine.js";
import { packFrames } from "../../src/datapath/io/replay.js";
import { eth } from "../../src/datapath/packet/build.js";
import { TCP_ACK } from "../../src/datapath/packet/view.js";
import { CTR, SVC_BASE, SVC_SLOTS, steerWorker } from "../../src/datapath/workers/protocol.js";
import { ipToU32 } from "../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../src/lib/proto.js";
import { FwdMethod } from "../../src/tables/model.js";
import { markRule } from "../support/marks.js";

const built = existsSync(fileURLToPath(defaultWorkerUrl()));
const pools: WorkerPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) await p.stop();
});

async function startPool(engine: Engine, count: number, out: Uint8Array[][]): Promise<WorkerPool> {
  const pool = await WorkerPool.start({
    count,
    engine,
    links: (i) => replayLinks(out[i] ?? [], [], true),
    net: workerNet(),
    maxConns: 1 << 12,
    mode: "once",
  });
  pools.push(pool);
  return pool;
}

interface FlowBytes {
  toServer: number;
  toClient: number;
  rip: number;
  badClientEnd: number;
}

/** Requests, then the real servers' replies, through `count` workers; bytes per flow. */
async function forward(
  count: number,
  fl: Flow[],
  perFlow: number,
): Promise<{ bytes: Map<number, FlowBytes>; engine: Engine; drops: number[] }> {
  const engine = masterEngine();
  const out: Uint8Array[][] = Array.from({ length: count }, () => []);
  for (let s = 0; s < perFlow; s++)
    for (const f of fl) out[steerRequest(f, count)]!.push(request(f, s, 20 + ((f.id + s) % 50)));
  const pool = await startPool(engine, count, out);
  const first = await pool.run();
  const bytes = new Map<number, FlowBytes>();
  const replies: Uint8Array[][] = Array.from({ length: count }, () => []);
  for (const r of first) {
    for (const fr of r.captured[1]!) {
      const u = udpFields(fr);
      const b = bytes.get(u.id) ?? { toServer: 0, toClient: 0, rip: u.daddr, badClientEnd: 0 };
      b.toServer += u.bytes;
      b.rip = u.daddr;
      bytes.set(u.id, b);
      const rep = reply(fr, 30 + (u.id % 40));
      replies[steerReply(rep, count)]!.push(rep);
    }
  }
  replies.forEach((frames, i) => {
    pool.load(i, 0, packFrames([]));
    pool.load(i, 1, packFrames(frames));
  });
  const second = await pool.run();
  for (const r of second) {
    for (const fr of r.captured[0]!) {
      const u = udpFields(fr);
      const b = bytes.get(u.id)!;
      const f = fl[u.id]!;
      b.toClient += u.bytes;
      if (u.daddr !== f.client || u.dport !== f.cport || u.saddr !== ipToU32(f.vip) >>> 0) b.badClientEnd++;
    }
  }
  await pool.stop(); // collects the counters into the master
  const drops = new Array<number>(engine.drops.length).fill(0);
  for (const r of [...first, ...second])
    r.drops.forEach((d, k) => {
      drops[k]! += d;
    });
  return { bytes, engine, drops };
}

describe.skipIf(!built)("data-path workers, memory links", () => {
  it("forwards the same bytes per flow through 1 and 2 workers, NAT and FULLNAT, both ways", async () => {
    const fl = flows(600);
    const one = await forward(1, fl, 3);
    const two = await forward(2, fl, 3);
    // both workers had flows of their own (the steering splits them)
    const split = [0, 0];
    for (const f of fl) split[steerRequest(f, 2)]!++;
    expect(Math.min(...split)).toBeGreaterThan(200);
    expect(one.bytes.size).toBe(fl.length);
    expect(two.bytes.size).toBe(fl.length);
    for (const f of fl) {
      const a = one.bytes.get(f.id)!;
      const b = two.bytes.get(f.id)!;
      expect(b.toServer).toBe(a.toServer);
      expect(b.toClient).toBe(a.toClient);
      expect(b.rip).toBe(a.rip);
      expect(a.toClient).toBeGreaterThan(0);
      expect(a.badClientEnd + b.badClientEnd).toBe(0);
    }
    // every reply found its connection: none dropped as no_conn, in either setup
    expect(two.drops[Drop.NO_CONN]).toBe(0);
    expect(one.drops[Drop.NO_CONN]).toBe(0);
    // the summed counters: 3 requests and 3 replies per flow, split over the two services
    for (const r of [one, two]) {
      for (const vip of [NAT_VIP, FNAT_VIP]) {
        const s = r.engine.table.find({ proto: IPPROTO_UDP, addr: ipToU32(vip), port: 53 })!;
        const n = fl.filter((f) => f.vip === vip).length;
        expect(s.conns).toBe(n);
        expect(s.inPkts).toBe(3 * n);
        expect(s.outPkts).toBe(3 * n);
        expect(s.dests.reduce((k, d) => k + d.inPkts, 0)).toBe(3 * n);
        expect(s.dests.reduce((k, d) => k + d.conns, 0)).toBe(n);
      }
    }
    expect(two.engine.forwarded).toBe(one.engine.forwarded);
    expect(two.engine.forwarded).toBe(fl.length * 6);
    // all but each flow's first datagram took the fast path (a known UDP flow), summed over workers
    expect(one.engine.fast.taken).toBe(fl.length * 5);
    expect(two.engine.fast.taken).toBe(fl.length * 5);
  });

  it("gives each worker its own FULLNAT local ports (port % workers = worker)", async () => {
    const fl = flows(300, "fullnat");
    const engine = masterEngine();
    const out: Uint8Array[][] = [[], []];
    for (const f of fl) out[steerRequest(f, 2)]!.push(request(f, 0, 16));
    const pool = await startPool(engine, 2, out);
    const res = await pool.run();
    let n = 0;
    res.forEach((r, w) => {
      for (const fr of r.captured[1]!) {
        const u = udpFields(fr);
        expect(u.saddr).toBe(ipToU32(LADDR) >>> 0);
        expect(u.sport % 2).toBe(w);
        n++;
      }
    });
    expect(n).toBe(fl.length);
  });

  it("pushes control-plane changes made after the start to every worker", async () => {
    const engine = masterEngine();
    const pool = await startPool(engine, 2, [[], []]);
    const tbl = engine.table;
    // a new TCP service with one NAT dest, a sysctl that lets an ACK open a connection
    const key = { proto: IPPROTO_TCP, addr: ipToU32(NAT_VIP), port: 80 };
    tbl.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    tbl.addDest(key, {
      addr: ipToU32(ripIp(1)),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    tbl.addDest(key, {
      addr: ipToU32(ripIp(2)),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    await pool.sync();
    const acks = (w: number, k: number, port0: number) => {
      const frames: Uint8Array[] = [];
      for (let i = 0; frames.length < k; i++) {
        const client = ipToU32(`10.2.${i >> 8}.${(i & 0xff) + 1}`);
        const cport = port0 + i;
        if (steerWorker(client, cport, 2) !== w) continue;
        frames.push(
          eth({ src: "02:00:00:00:00:fe", dst: "02:00:00:00:00:01" })
            .ipv4({ src: client, dst: NAT_VIP })
            .tcp({ sport: cport, dport: 80, flags: TCP_ACK, seq: 1, ack: 1 })
            .build(),
        );
      }
      return frames;
    };
    const feed = async (port0: number) => {
      for (let w = 0; w < 2; w++) {
        pool.load(w, 0, packFrames(acks(w, 20, port0)));
        pool.load(w, 1, packFrames([]));
      }
      return pool.run();
    };
    // sloppy_tcp 0: an ACK without a connection opens none, in either worker
    let r = await feed(2000);
    for (const x of r) {
      expect(x.captured[1]!.length).toBe(0);
      expect(x.drops[Drop.NO_CONN] ?? 0).toBeGreaterThan(0);
    }
    engine.sysctl.sloppyTcp = 1;
    // weight 0 on .1 and .2 deleted: nothing may go to .2, new connections not to .1 either
    tbl.editDest(key, {
      addr: ipToU32(ripIp(1)),
      port: 80,
      weight: 0,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    tbl.addDest(key, {
      addr: ipToU32(ripIp(3)),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    tbl.deleteDest(key, ipToU32(ripIp(2)), 80);
    await pool.sync();
    r = await feed(3000);
    for (const x of r) {
      expect(x.captured[1]!.length).toBe(20);
      for (const fr of x.captured[1]!) expect(udpFields(fr).daddr).toBe(ipToU32(ripIp(3)) >>> 0);
    }
    // the new service's counters, published by the master's id, in both workers' blocks
    const s = tbl.find(key)!;
    for (let w = 0; w < 2; w++) {
      const c = pool.block(w);
      expect(c[SVC_BASE + s.id * SVC_SLOTS]).toBe(20); // conns
      expect(c[CTR.REPLICA_FAILURES]).toBe(0);
      expect(c[CTR.CONNS]).toBe(20);
    }
    // lvsadm -Lc's source: every worker's entries
    const conns = (await pool.conns()).filter((c) => c.proto === IPPROTO_TCP);
    expect(conns.length).toBe(40);
    for (const c of conns) {
      expect(c.daddr).toBe(ipToU32(ripIp(3)) >>> 0);
      expect(c.vaddr).toBe(ipToU32(NAT_VIP) >>> 0);
      expect(c.state).toBe("ESTABLISHED");
    }
    expect(new Set(conns.map((c) => `${c.caddr}:${c.cport}`)).size).toBe(40);
    pool.collect();
    expect(s.conns).toBe(40);
    expect(s.dests.find((d) => d.addr === ipToU32(ripIp(3)) >>> 0)!.activeConns).toBe(40);
    expect(pool.totals().conns).toBe(40);
    // /metrics' per-state counts: both workers' tables, summed (40 ESTABLISHED, nothing else)
    const kinds = pool.kindTotals();
    expect(kinds[TcpState.ESTABLISHED]).toBe(40);
    expect(kinds.reduce((a, b) => a + b, 0)).toBe(40);
  });

  it("replicates MARK rules and a fwmark service added after the start to every worker", async () => {
    const engine = masterEngine();
    const pool = await startPool(engine, 2, [[], []]);
    const markVip = ipToU32("10.0.0.120");
    engine.marks.append(markRule({ dst: markVip, dstMask: 0xffffffff, proto: IPPROTO_UDP, value: 7 }));
    const key = { proto: 0, addr: 0, port: 0, fwmark: 7 };
    engine.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    engine.table.addDest(key, {
      addr: ipToU32(ripIp(4)),
      port: 0,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    await pool.sync();
    const fl = flows(64).map((f) => ({ ...f, vip: "10.0.0.120" }));
    for (let w = 0; w < 2; w++) {
      pool.load(w, 0, packFrames(fl.filter((f) => steerRequest(f, 2) === w).map((f) => request(f, 0, 10))));
      pool.load(w, 1, packFrames([]));
    }
    const r = await pool.run();
    for (const x of r) {
      expect(x.captured[1]!.length).toBeGreaterThan(10);
      for (const fr of x.captured[1]!) expect(udpFields(fr).daddr).toBe(ipToU32(ripIp(4)) >>> 0);
    }
    expect(r[0]!.captured[1]!.length + r[1]!.captured[1]!.length).toBe(64);
  });

  it("reports a worker that ends after the start", async () => {
    const engine = masterEngine();
    const pool = await startPool(engine, 2, [[], []]);
    const errors: string[] = [];
    pool.onError = (i, m) => errors.push(`${i}: ${m}`);
    const threads = (pool as unknown as { workers: { terminate(): Promise<number> }[] }).workers;
    await threads[1]!.terminate();
    await new Promise((r) => setTimeout(r, 50));
    expect(errors).toEqual([
      expect.stringMatching(/^1: exited \(code 1\); its share of the traffic is not forwarded$/),
    ]);
  });
});
