/**
 * AF_XDP forwarding by descriptor, through the director and the engine: after warm-up, 102,400
 * UDP frames go generator socket -> veth -> the AF_XDP link's RX ring -> a batch viewing the UMEM
 * -> engine (one-arm LVS-NAT rewritten in place, and LVS-TUN, whose IPIP header goes into the
 * headroom in front of the frame) -> the same link's TX ring by the descriptor they came in with
 * -> veth -> the generator socket, which is also the real server's MAC. The link's counters must
 * show every frame sent in place and none copied, and not one minor GC may happen (a veth
 * delivers the frames of a send() before it returns, so everything is synchronous and a scavenge
 * means this loop allocated). A frame the engine builds itself (an ARP reply) is the one that
 * gets copied into a free UMEM chunk. Root and network namespaces; skipped otherwise.
 */
import { getHeapSpaceStatistics } from "node:v8";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Director } from "../../../src/datapath/director.js";
import { Engine } from "../../../src/datapath/engine.js";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { openRaw, type RawIo } from "../../../src/datapath/io/rawsock.js";
import { openXdp, type XdpIo } from "../../../src/datapath/io/xdp.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { bytesToMac, ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { GcWatch, settle } from "../../support/gc.js";
import { canRun, Lab, SKIP_REASON } from "./lab.js";

if (!canRun) console.warn(SKIP_REASON);

const gc = new GcWatch();

const ROUNDS = 400; // x 256 frames
const RS = "10.0.0.50";
const RS_U32 = ipToU32(RS);

/** Bytes in use in V8's young generation: between two samples with no GC, what was allocated. */
function newSpaceUsed(): number {
  for (const s of getHeapSpaceStatistics()) if (s.space_name === "new_space") return s.space_used_size;
  return -1;
}

describe.skipIf(!canRun || !nativeAvailable())("AF_XDP forwarding by descriptor (root)", () => {
  const lab = new Lab("xa");
  let x: XdpIo;
  let gen: RawIo;
  let e: Engine;
  let d: Director;

  beforeAll(() => {
    gc.start();
    const ns = lab.netns("n");
    lab.ip(ns, "link", "add", lab.dev("a0"), "type", "veth", "peer", "name", lab.dev("b0"));
    lab.ip(ns, "link", "set", lab.dev("a0"), "up");
    lab.ip(ns, "link", "set", lab.dev("b0"), "up");
    x = openXdp({ ifname: lab.dev("a0"), netns: ns });
    gen = openRaw({ ifname: lab.dev("b0"), netns: ns, txFrames: 1024 });
    // One arm: clients and the real server on the same segment, the director's one link.
    e = new Engine({ sweepPerBatch: 64 });
    e.net.addLink("a0", x.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], x.mtu);
    e.net.neigh.learn(ipToU32(RS), gen.mac, 0, 0, 0, true);
    for (const [port, fwd] of [
      [53, FwdMethod.MASQ],
      [54, FwdMethod.TUNNEL],
    ] as const) {
      const key = { proto: IPPROTO_UDP, addr: ipToU32("10.0.0.100"), port };
      e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, proxyProtocol: 0 });
      e.table.addDest(key, {
        addr: ipToU32(RS),
        port,
        weight: 1,
        fwd,
        uThreshold: 0,
        lThreshold: 0,
      });
    }
    d = new Director(e);
    d.attach(x);
  });
  afterAll(() => {
    gc.stop();
    x?.close();
    gen?.close();
    lab.cleanup();
  });

  it("NAT and TUN out of the link they came in by: 102,400 frames sent in place, none copied, no minor GC", async () => {
    // 256 client flows, half to the NAT service, half to the TUN one
    const out = new FrameBatch(256);
    for (let k = 0; k < 256; k++) {
      const f = eth({ src: bytesToMac(gen.mac), dst: bytesToMac(x.mac) })
        .ipv4({ src: "10.0.0.7", dst: "10.0.0.100" })
        .udp({ sport: 20000 + k, dport: k & 1 ? 54 : 53 })
        .payload("0123456789")
        .build();
      out.egress[out.push(f)] = 0;
    }
    const drain = new FrameBatch(256);
    let forwarded = 0;
    let ipip = 0;
    let natted = 0;
    const work = () => {
      for (let r = 0; r < ROUNDS; r++) {
        gen.send(out, 0);
        for (let n = 0; n < 8; n++) if (d.pumpLink(0, r) === 0) break;
        for (let n = 0; n < 8; n++) {
          drain.reset();
          const got = gen.recv(drain, 0);
          if (got === 0) break;
          forwarded += got;
          const b = drain.buf;
          for (let i = 0; i < got; i++) {
            const o = drain.off[i]!;
            // IPv4 protocol 4 (IPIP, the outer header to the real server) or UDP to the real server
            if (b[o + 23] === 4) ipip++;
            else if (b[o + 23] === IPPROTO_UDP && drain.dv.getUint32(o + 30) === RS_U32) natted++;
          }
        }
      }
      drain.reset();
    };
    work(); // warm-up: optimize, create the connections
    await settle();
    const f0 = forwarded;
    const t0 = ipip;
    const n0 = natted;
    const c0 = x.detail();
    // Twice, keeping the smaller growth: an allocation per frame or per batch shows in both
    // (≥ 16 bytes x 400 batches), a one-off (the statistics call itself, a late inline-cache
    // update) in one only; it took one CI run over the bound by 344 bytes.
    const { minors: gcs, value: grown } = await gc.during(() => {
      let least = Number.POSITIVE_INFINITY;
      for (let k = 0; k < 2; k++) {
        const used0 = newSpaceUsed();
        work();
        least = Math.min(least, newSpaceUsed() - used0);
      }
      return least;
    });
    const c1 = x.detail();
    const sent = c1.txPackets - c0.txPackets;
    expect(c1.rxPackets - c0.rxPackets).toBeGreaterThan(ROUNDS * 256 * 0.9);
    expect(sent).toBeGreaterThan(ROUNDS * 256 * 0.9);
    expect(forwarded - f0).toBe(sent);
    expect(ipip - t0).toBeGreaterThan(ROUNDS * 128 * 0.9);
    expect(natted - n0).toBeGreaterThan(ROUNDS * 128 * 0.9);
    // Not one copy: received in place, rewritten in place (TUN grew each frame at the front),
    // sent by descriptor.
    expect(c1.txInPlace - c0.txInPlace).toBe(sent);
    expect(c1.txCopied - c0.txCopied).toBe(0);
    expect(c1.rxCopied - c0.rxCopied).toBe(0);
    expect(c1.txDropped - c0.txDropped).toBe(0);
    expect(e.ct.count).toBe(256);
    expect(d.rx.memory === null).toBe(true); // the director's batch gave the UMEM back
    console.log(
      `young generation grew ${grown} bytes over ${ROUNDS * 256} frames (less of two runs), ${gcs} minor GCs`,
    );
    expect(gcs).toBe(0);
    expect(grown).toBeLessThan(8192);
  });

  it("copies what the engine builds itself (an ARP reply) into a free UMEM chunk", async () => {
    const req = new FrameBatch(4);
    req.egress[
      req.push(
        eth({ src: bytesToMac(gen.mac), dst: "ff:ff:ff:ff:ff:ff" })
          .arp({ op: 1, sha: bytesToMac(gen.mac), spa: "10.0.0.7", tpa: "10.0.0.1" })
          .build(),
      )
    ] = 0;
    // Quiet first: frames still on their way from the test before (or the namespace's own, such
    // as IPv6 multicast) must not be counted as this test's (a CI run once saw one more).
    for (let idle = 0, n = 0; idle < 3 && n < 200; n++) {
      if (d.pumpLink(0, 1) === 0) {
        idle++;
        await new Promise((r) => setTimeout(r, 10));
      } else idle = 0;
    }
    const drain = new FrameBatch(256);
    while (gen.recv(drain, 0) > 0) drain.reset();
    const c0 = x.detail();
    gen.send(req, 0);
    let got = 0;
    for (let n = 0; n < 100 && got === 0; n++) {
      got = d.pumpLink(0, 1);
      if (got === 0) await new Promise((r) => setTimeout(r, 10));
    }
    expect(got).toBeGreaterThanOrEqual(1);
    const c1 = x.detail();
    expect(c1.txCopied - c0.txCopied).toBe(1);
    expect(c1.txInPlace - c0.txInPlace).toBe(0);
    const reply = new FrameBatch(16);
    let arp = -1;
    for (let n = 0; n < 100 && arp < 0; n++) {
      reply.reset();
      gen.recv(reply, 0);
      for (let i = 0; i < reply.count; i++) if (reply.dv.getUint16(reply.off[i]! + 12) === 0x0806) arp = i;
      if (arp < 0) await new Promise((r) => setTimeout(r, 10));
    }
    expect(arp).toBeGreaterThanOrEqual(0);
    const o = reply.off[arp]!;
    expect(reply.dv.getUint16(o + 20)).toBe(2); // a reply
    expect(bytesToMac(reply.buf.subarray(o + 22, o + 28))).toBe(bytesToMac(x.mac));
    expect(reply.dv.getUint32(o + 28)).toBe(ipToU32("10.0.0.1"));
  });
});

describe.skipIf(!canRun || !nativeAvailable())(
  "AF_XDP links sharing a UMEM: NAT between them by descriptor (root)",
  () => {
    const lab = new Lab("xs");
    let x0: XdpIo;
    let x1: XdpIo;
    let gen: RawIo;
    let sink: RawIo;
    let ns = "";

    beforeAll(() => {
      gc.start();
      ns = lab.netns("n");
      for (const k of [0, 1]) {
        lab.ip(ns, "link", "add", lab.dev(`a${k}`), "type", "veth", "peer", "name", lab.dev(`b${k}`));
        lab.ip(ns, "link", "set", lab.dev(`a${k}`), "up");
        lab.ip(ns, "link", "set", lab.dev(`b${k}`), "up");
      }
      x0 = openXdp({ ifname: lab.dev("a0"), netns: ns, umemFrames: 8192 });
      x1 = openXdp({ ifname: lab.dev("a1"), netns: ns, share: x0 });
      gen = openRaw({ ifname: lab.dev("b0"), netns: ns, txFrames: 1024 });
      sink = openRaw({ ifname: lab.dev("b1"), netns: ns });
    });
    afterAll(() => {
      gc.stop();
      x1?.close();
      x0?.close();
      gen?.close();
      sink?.close();
      lab.cleanup();
    });

    it("refuses a third link when the UMEM has no chunks left, naming umemFrames", () => {
      expect(() => openXdp({ ifname: lab.dev("b1"), netns: ns, share: x0 })).toThrow(
        /the shared UMEM has 0 chunks left, this link needs 4096 \(open the first link with a larger umemFrames\)/,
      );
    });

    it("client -> VIP on link 0 -> real server on link 1: 102,400 frames sent by descriptor, none copied, no minor GC", async () => {
      expect(x0.umemShared).toBe(false);
      expect(x1.umemShared).toBe(true);
      expect(x1.memory === x0.memory && x0.memory !== null).toBe(true);
      const e = new Engine({ sweepPerBatch: 64 });
      e.net.addLink("a0", x0.mac, [{ addr: ipToU32("10.0.0.1"), prefix: 24 }], x0.mtu);
      e.net.addLink("a1", x1.mac, [{ addr: ipToU32("192.168.10.254"), prefix: 24 }], x1.mtu);
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
      d.attach(x0);
      d.attach(x1);
      const out = new FrameBatch(256);
      for (let k = 0; k < 256; k++) {
        const f = eth({ src: bytesToMac(gen.mac), dst: bytesToMac(x0.mac) })
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
      work(); // warm-up
      await settle();
      const f0 = forwarded;
      const c0 = x1.detail();
      const r0 = x0.detail();
      const { minors: gcs, value: grown } = await gc.during(() => {
        const used0 = newSpaceUsed();
        work();
        return newSpaceUsed() - used0;
      });
      const c1 = x1.detail();
      const r1 = x0.detail();
      const sent = c1.txPackets - c0.txPackets;
      expect(r1.rxPackets - r0.rxPackets).toBeGreaterThan(ROUNDS * 256 * 0.9);
      expect(sent).toBeGreaterThan(ROUNDS * 256 * 0.9);
      expect(forwarded - f0).toBe(sent);
      expect(c1.txInPlace - c0.txInPlace).toBe(sent);
      expect(c1.txCopied - c0.txCopied).toBe(0);
      expect(r1.rxCopied - r0.rxCopied).toBe(0);
      expect(c1.txDropped - c0.txDropped).toBe(0);
      expect(e.ct.count).toBe(256);
      console.log(`young generation grew ${grown} bytes over ${ROUNDS * 256} frames, ${gcs} minor GCs`);
      expect(gcs).toBe(0);
      expect(grown).toBeLessThan(8192);
    });
  },
);
