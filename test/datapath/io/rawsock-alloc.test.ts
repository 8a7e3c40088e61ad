/**
 * The zero-copy AF_PACKET path allocates nothing: after warm-up, 100,000 UDP frames go
 * generator socket -> veth -> lvsd's RX ring (lent to the batch) -> engine (NAT, rewritten in the
 * ring) -> TX ring of the other link -> veth -> a sink socket, with the ring slots released after
 * each batch, and not one minor GC may happen. Everything runs synchronously (a veth delivers
 * the frames of a send() before it returns), so a scavenge means this loop allocated.
 * Root and network namespaces; skipped otherwise.
 */
import { getHeapSpaceStatistics } from "node:v8";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Director } from "../../../src/datapath/director.js";
import { Engine } from "../../../src/datapath/engine.js";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { openRaw, type RawIo } from "../../../src/datapath/io/rawsock.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { bytesToMac, ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { GcWatch, settle } from "../../support/gc.js";
import { canRun, Lab, linkInfo, parseMac, SKIP_REASON } from "./lab.js";

if (!canRun) console.warn(SKIP_REASON);

const gc = new GcWatch();

const ROUNDS = 400; // x 256 frames

/** Bytes in use in V8's young generation: between two samples with no GC, what was allocated. */
function newSpaceUsed(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === "new_space") return s.space_used_size;
  return -1;
}

describe.skipIf(!canRun)("zero-copy AF_PACKET forwarding allocates nothing (root)", () => {
  const lab = new Lab("za");
  const open: RawIo[] = [];
  let gen: RawIo;
  let sink: RawIo;
  let a0: RawIo;
  let a1: RawIo;

  beforeAll(() => {
    gc.start();
    const ns = lab.netns("n");
    for (const k of [0, 1]) {
      lab.ip(ns, "link", "add", lab.dev(`a${k}`), "type", "veth", "peer", "name", lab.dev(`b${k}`));
      lab.ip(ns, "link", "set", lab.dev(`a${k}`), "up");
      lab.ip(ns, "link", "set", lab.dev(`b${k}`), "up");
    }
    a0 = openRaw({ ifname: lab.dev("a0"), netns: ns });
    open.push(a0);
    a1 = openRaw({ ifname: lab.dev("a1"), netns: ns });
    open.push(a1);
    gen = openRaw({ ifname: lab.dev("b0"), netns: ns, txFrames: 1024 });
    open.push(gen);
    sink = openRaw({ ifname: lab.dev("b1"), netns: ns });
    open.push(sink);
    expect(bytesToMac(parseMac(linkInfo(lab, ns, lab.dev("b1")).address))).toBe(bytesToMac(sink.mac));
  });
  afterAll(() => {
    gc.stop();
    for (const l of open) l.close();
    lab.cleanup();
  });

  it("NAT over two AF_PACKET links: RX ring -> engine -> TX ring, 100,000 frames, no minor GC", async () => {
    const e = new Engine({ sweepPerBatch: 64 });
    e.net.addLink("a0", a0.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], a0.mtu);
    e.net.addLink("a1", a1.mac, [{ addr: ipToU32("192.168.10.254"), prefix: 24 }], a1.mtu);
    e.net.neigh.learn(ipToU32("192.168.10.1"), sink.mac, 0, 1, 0, true);
    const key = { proto: IPPROTO_UDP, addr: ipToU32("10.0.0.100"), port: 53 };
    e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, proxyProtocol: 0 });
    e.table.addDest(key, {
      addr: ipToU32("192.168.10.1"),
      port: 53,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    const d = new Director(e);
    d.attach(a0);
    d.attach(a1);
    // 256 client flows, sent by the generator socket on a0's peer
    const out = new FrameBatch(256);
    for (let k = 0; k < 256; k++) {
      const f = eth({ src: bytesToMac(gen.mac), dst: bytesToMac(a0.mac) })
        .ipv4({ src: "10.0.0.7", dst: "10.0.0.100" })
        .udp({ sport: 20000 + k, dport: 53 })
        .payload("0123456789")
        .build();
      out.egress[out.push(f)] = 0;
    }
    const drain = new FrameBatch(256);
    let forwarded = 0;
    const work = () => {
      for (let r = 0; r < ROUNDS; r++) {
        gen.send(out, 0);
        for (let n = 0; n < 8; n++) if (d.pumpLink(0, r) === 0) break;
        for (let n = 0; n < 8; n++) {
          drain.reset();
          const got = sink.recv(drain, 0);
          if (got === 0) break;
          forwarded += got;
        }
      }
      drain.reset();
    };
    work(); // warm-up: optimize, create the connections
    await settle();
    const f0 = forwarded;
    const rx0 = a0.stats.rxPackets;
    const { minors: gcs, value: grown } = await gc.during(() => {
      const used0 = newSpaceUsed();
      work();
      return newSpaceUsed() - used0;
    });
    // The frames went the zero-copy way: a batch views a0's ring, the director's is released.
    expect(d.rx.memory === null).toBe(true);
    gen.send(out, 0);
    const probe = new FrameBatch(256);
    expect(a0.recv(probe, 0)).toBeGreaterThan(0);
    expect(probe.memory === a0.memory).toBe(true); // (toBe would print a 4 MB ring on failure)
    probe.reset();
    expect(a0.stats.rxPackets - rx0).toBeGreaterThan(ROUNDS * 256 * 0.9);
    expect(forwarded - f0).toBeGreaterThan(ROUNDS * 256 * 0.9);
    expect(e.ct.count).toBe(256);
    expect(gcs).toBe(0);
    // Not even a small object per batch (~800 batches): a scavenge would not show that, the
    // young generation's growth does (the samples themselves cost a few hundred bytes).
    console.log(`young generation grew ${grown} bytes over ${ROUNDS * 256} frames`);
    expect(grown).toBeLessThan(8192);
  });
});
