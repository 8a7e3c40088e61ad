/**
 * A worker's timed loop allocates nothing (docs/workers.md): the director pumping two replay
 * links (src/datapath/io/replay.ts) of established NAT flows both ways, reading the clock and
 * polling an empty message port between batches, as src/datapath/workers/worker.ts's run loop
 * does. After warm-up, 300,000 frames must not trigger a single minor GC (as
 * test/datapath/engine/alloc.test.ts does for the engine alone). The same with the AF_XDP
 * workers' steering (src/datapath/workers/handoff.ts): worker 0 of 2 hands frames over to worker
 * 1's ring and takes those worker 1 hands it.
 */
import { performance } from "node:perf_hooks";
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { flows, masterEngine, reply, request, wire } from "../../../bench/workers-traffic.js";
import { Director } from "../../../src/datapath/director.js";
import { DEFAULT_SLOT_SIZE, FrameBatch } from "../../../src/datapath/io/batch.js";
import { packFrames, ReplayLink } from "../../../src/datapath/io/replay.js";
import {
  HandoffLink,
  HandoffRing,
  newHandoffRing,
  SteeredLink,
  SteerRoles,
} from "../../../src/datapath/workers/handoff.js";
import { steerTablesOf } from "../../../src/datapath/workers/steer.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { GcWatch, settle } from "../../support/gc.js";

const gc = new GcWatch();
beforeAll(() => {
  gc.start();
});
afterAll(() => gc.stop());

/** The replies: what the real servers get, answered (one engine, sh: the same choice). */
function natReplies(fl: ReturnType<typeof flows>): Uint8Array[] {
  const probe = wire(masterEngine("sh"));
  const b = new FrameBatch(256);
  const replies: Uint8Array[] = [];
  for (let i = 0; i < fl.length; i += 256) {
    b.reset();
    for (const f of fl.slice(i, i + 256)) b.push(request(f, 0, 64), 0);
    probe.process(b, 1);
    for (let k = 0; k < b.count; k++) if (b.egress[k] === 1) replies.push(reply(b.frame(k), 64));
  }
  return replies;
}

describe("data-path worker loop", () => {
  it("pumps replay links of established NAT flows both ways without allocating", async () => {
    const fl = flows(512, "nat");
    const replies = natReplies(fl);
    expect(replies.length).toBe(fl.length);

    const e = masterEngine("sh");
    const d = new Director(e, 256);
    const warm = fl.map((f) => request(f, 0, 64));
    const reqs = fl.map((f) => request(f, 1, 64));
    const out0 = new ReplayLink(
      "out0",
      macToBytes("02:00:00:00:00:01"),
      1500,
      { ...packFrames([...warm, ...reqs]), warmup: warm.length },
      256,
      DEFAULT_SLOT_SIZE,
    );
    const in0 = new ReplayLink(
      "in0",
      macToBytes("02:00:00:00:01:01"),
      1500,
      { ...packFrames(replies), warmup: 0 },
      256,
      DEFAULT_SLOT_SIZE,
    );
    e.net.addLink("out0", out0.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], 1500);
    e.net.addLink("in0", in0.mac, [{ addr: ipToU32("192.168.10.254"), prefix: 24 }], 1500);
    const net = wire(masterEngine("sh")).net; // the same routes and neighbours
    e.net.addRoute(0, 0, ipToU32("10.0.0.254"));
    for (const i of net.neigh.entries())
      e.net.neigh.learn(net.neigh.ipAt(i), net.neigh.macs, i * 6, net.neigh.link[i]!, 0, true);
    d.attach(out0);
    d.attach(in0);
    while (out0.warming) d.pumpLink(0, performance.now());
    out0.loop = true;
    in0.loop = true;
    const { port1, port2 } = new MessageChannel();
    const loop = (rounds: number): void => {
      for (let r = 0; r < rounds; r++) {
        const t = performance.now();
        d.pumpLink(0, t);
        d.pumpLink(1, t);
        if (r % 8 === 0) receiveMessageOnPort(port1);
      }
    };
    loop(200); // warm-up: code compiled, tables touched
    await settle();
    const before = e.forwarded;
    const { minors } = await gc.during(() => loop(600)); // 600 rounds x 2 batches x 256 frames
    port1.close();
    port2.close();
    expect(e.forwarded - before).toBe(600 * 2 * 256);
    expect(minors).toBe(0);
  });

  it("steers and hands frames over between two workers without allocating", async () => {
    const fl = flows(512, "nat");
    const replies = natReplies(fl);
    const e = masterEngine("sh");
    const roles = new SteerRoles();
    const t = steerTablesOf(e.table);
    roles.set(t.laddrs, t.vips, t.natDests);
    const r01 = newHandoffRing(1024, 2048);
    const r10 = newHandoffRing(1024, 2048);
    const d = new Director(e, 256);
    const mk = (name: string, mac: string, frames: Uint8Array[], warmup: number) =>
      new ReplayLink(name, macToBytes(mac), 1500, { ...packFrames(frames), warmup }, 256, DEFAULT_SLOT_SIZE);
    const warm = fl.map((f) => request(f, 0, 64));
    const reqs = fl.map((f) => request(f, 1, 64));
    const out0 = mk("out0", "02:00:00:00:00:01", [...warm, ...reqs], warm.length);
    const in0 = mk("in0", "02:00:00:00:01:01", replies, 0);
    e.net.addLink("out0", out0.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], 1500);
    e.net.addLink("in0", in0.mac, [{ addr: ipToU32("192.168.10.254"), prefix: 24 }], 1500);
    const net = wire(masterEngine("sh")).net;
    e.net.addRoute(0, 0, ipToU32("10.0.0.254"));
    for (const i of net.neigh.entries())
      e.net.neigh.learn(net.neigh.ipAt(i), net.neigh.macs, i * 6, net.neigh.link[i]!, 0, true);
    const steered = new SteeredLink(out0, 0, [null, new HandoffRing(r01)], roles);
    const handoff = new HandoffLink([new HandoffRing(r10)]);
    d.attach(steered);
    d.attach(in0);
    d.attach(handoff);
    // worker 1's side: its queue gets the same requests and hands worker 0's to it; what worker
    // 0 handed it is taken and let go
    const feed = mk("out1", "02:00:00:00:00:01", reqs, 0);
    const feeder = new SteeredLink(feed, 1, [new HandoffRing(r10), null], roles);
    const sink = new HandoffRing(r01);
    const scratch = new FrameBatch(256);
    while (out0.warming) d.pumpLink(0, performance.now());
    out0.loop = true;
    in0.loop = true;
    feed.loop = true;
    const loop = (rounds: number): void => {
      for (let r = 0; r < rounds; r++) {
        const now = performance.now();
        d.pumpLink(0, now);
        d.pumpLink(1, now);
        scratch.reset();
        feeder.recv(scratch, 0);
        scratch.reset();
        d.pumpLink(2, now);
        while (sink.take(scratch) > 0) scratch.reset();
      }
    };
    loop(200);
    await settle();
    const before = e.forwarded;
    const taken = handoff.stats.rxPackets;
    const given = steered.handedOff;
    const { minors } = await gc.during(() => loop(600));
    expect(steered.handedOff - given).toBeGreaterThan(600 * 64);
    expect(handoff.stats.rxPackets - taken).toBeGreaterThan(600 * 64);
    expect(steered.handoffDrops + feeder.handoffDrops).toBe(0);
    expect(e.forwarded - before).toBeGreaterThan(600 * 256);
    expect(minors).toBe(0);
  });
});
