/**
 * Tracing allocates nothing per frame or batch: a Director with links that replay the same
 * established NAT flows (both directions, 256 frames a batch) runs hundreds of thousands of
 * frames with a FrameTracer attached — without and with a service filter, the ring drained as the
 * control plane would between batches — and must not trigger a single minor GC (as
 * test/datapath/engine/alloc.test.ts does for the engine alone).
 */
import { getHeapSpaceStatistics } from "node:v8";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Director } from "../../src/datapath/director.js";
import type { Engine } from "../../src/datapath/engine.js";
import { EGRESS_NONE, FrameBatch, HEADROOM } from "../../src/datapath/io/batch.js";
import type { LinkIo } from "../../src/datapath/io/link.js";
import { eth } from "../../src/datapath/packet/build.js";
import { TCP_ACK, TCP_PSH, TCP_SYN } from "../../src/datapath/packet/view.js";
import { FrameTracer } from "../../src/datapath/trace.js";
import { ipToU32, macToBytes } from "../../src/lib/addr.js";
import { GcWatch, settle } from "../support/gc.js";
import { addNatDest, addService, IN, IP, MAC, natEngine, OUT, tcpKey } from "./engine/helpers.js";

const gc = new GcWatch();
beforeAll(() => {
  gc.start();
});
afterAll(() => gc.stop());

const N_BATCHES = Number(process.env.ALLOC_BATCHES ?? 1200);
const HALF = 128;

/** A link that hands the director the same frames every round (copied in, no allocation). */
class ReplayLink implements LinkIo {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu = 1500;
  readonly stats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, rxDropped: 0, txDropped: 0 };
  private readonly pristine: Uint8Array;
  private readonly lens: Uint32Array;
  private readonly slot: number;

  constructor(name: string, mac: string, frames: Uint8Array[], slot: number) {
    this.name = name;
    this.mac = macToBytes(mac);
    this.slot = slot;
    const b = new FrameBatch(frames.length, slot);
    for (const f of frames) b.push(f, 0);
    this.pristine = b.buf.slice(0, frames.length * slot);
    this.lens = b.len.slice(0, frames.length);
  }

  recv(batch: FrameBatch, linkId: number): number {
    const start = batch.count;
    const n = this.lens.length;
    if (start + n > batch.capacity) return 0;
    batch.buf.set(this.pristine, start * this.slot);
    for (let i = 0; i < n; i++) {
      const j = start + i;
      batch.off[j] = j * this.slot + HEADROOM;
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

/** HALF established NAT flows: data segments from the clients and replies from the servers. */
function flows(e: Engine): { c2s: Uint8Array[]; s2c: Uint8Array[] } {
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
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .tcp({ sport, dport: 80, seq, ack: 1, flags })
        .payload(data)
        .build();
    send(fromClient(TCP_SYN, 0), OUT);
    const c = e.ct.lookupIn(6, ipToU32(IP.client), sport, ipToU32(IP.vip), 80);
    const rs = e.ct.daddr[c] === ipToU32(IP.rs1) ? IP.rs1 : IP.rs2;
    const fromServer = (flags: number, seq: number, ack: number, data = "") =>
      eth({ src: rs === IP.rs1 ? MAC.rs1 : MAC.rs2, dst: MAC.dirIn })
        .ipv4({ src: rs, dst: IP.client })
        .tcp({ sport: 80, dport: sport, seq, ack, flags })
        .payload(data)
        .build();
    send(fromServer(TCP_SYN | TCP_ACK, 0, 1), IN);
    send(fromClient(TCP_ACK, 1), OUT);
    c2s.push(fromClient(TCP_ACK | TCP_PSH, 1, "x".repeat(k % 7 === 0 ? 1400 : 100)));
    s2c.push(fromServer(TCP_ACK | TCP_PSH, 1, 200, "y".repeat(k % 5 === 0 ? 1300 : 60)));
  }
  return { c2s, s2c };
}

function rig(): { d: Director; e: Engine } {
  const e = natEngine({ sweepPerBatch: 64, maxConns: 1 << 16 });
  addService(e, tcpKey());
  addNatDest(e, tcpKey(), IP.rs1, 80);
  addNatDest(e, tcpKey(), IP.rs2, 80);
  const { c2s, s2c } = flows(e);
  const d = new Director(e);
  d.attach(new ReplayLink("out0", MAC.dirOut, c2s, 2048));
  d.attach(new ReplayLink("in0", MAC.dirIn, s2c, 2048));
  return { d, e };
}

async function gcsDuring(work: () => void): Promise<number> {
  work(); // warm-up: optimize, and the tracer's views of the batch buffers are made
  await settle();
  return (await gc.during(work)).minors;
}

describe("tracing allocates nothing", () => {
  const cases: [string, boolean][] = [
    ["every frame", false],
    ["with a service filter and a link filter", true],
  ];
  for (const [name, filtered] of cases) {
    it(`${name}: ${N_BATCHES} batches of 256 frames, captured both ways`, async () => {
      const { d, e } = rig();
      const tr = new FrameTracer({ ringBytes: 8 << 20, ringFrames: 4096 });
      if (filtered) {
        tr.setFilter([
          { addr: ipToU32(IP.vip), proto: 6, port: 80 },
          { addr: ipToU32(IP.rs1), proto: 6, port: 80 },
          { addr: ipToU32(IP.rs2), proto: 6, port: 80 },
        ]);
        tr.setLinks([OUT, IN]);
      }
      d.tracer = tr;
      let t = 10;
      let frames = 0;
      const gcs = await gcsDuring(() => {
        for (let k = 0; k < N_BATCHES; k++) {
          frames += d.pump(t++);
          tr.release(tr.count); // the control plane's drain, between batches
        }
      });
      expect(frames).toBe(2 * N_BATCHES * 2 * HALF);
      expect(gcs).toBe(0);
      // each frame in and out
      expect(tr.captured).toBe(2 * N_BATCHES * 2 * 2 * HALF);
      expect(tr.dropped).toBe(0);
      expect(e.drops.reduce((a, b) => a + b, 0)).toBe(0);
    });
  }

  it("batches in several memories (slab, tx batch, each zero-copy link's ring) make views only once", async () => {
    const { c2s } = flows(natEngine({ sweepPerBatch: 0 }));
    // four batches, four distinct memories, traced in turn as lvsd's director would see them
    const batches = [0, 1, 2, 3].map(() => {
      const b = new FrameBatch(HALF, 2048);
      for (const f of c2s) b.push(f, OUT);
      return b;
    });
    const tr = new FrameTracer({ ringBytes: 8 << 20, ringFrames: 4096 });
    let t = 10;
    const work = () => {
      for (let k = 0; k < N_BATCHES; k++) {
        tr.inbound(batches[k & 3]!, t++);
        tr.release(tr.count);
      }
    };
    const newSpace = () =>
      getHeapSpaceStatistics().find((x) => x.space_name === "new_space")!.space_used_size;
    work(); // warm-up: the views of the four memories are made
    await settle();
    const { minors, value: grown } = await gc.during(() => {
      const used0 = newSpace();
      work();
      return newSpace() - used0;
    });
    expect(tr.captured).toBe(2 * N_BATCHES * HALF);
    expect(minors).toBe(0);
    // Views remade per batch would be a few hundred bytes each, too few to fill the young
    // generation: its growth shows them (the sample itself costs a few hundred bytes).
    expect(grown).toBeLessThan(8192);
  });
});
