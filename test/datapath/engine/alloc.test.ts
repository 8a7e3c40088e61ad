/**
 * The per-packet path allocates nothing: after warm-up, 100,000 frames through the engine (each
 * forwarding mode, both directions where the mode sees replies, and the new-connection path)
 * must not trigger a single minor GC. A scavenge only happens when the young generation fills,
 * and nothing else runs during the synchronous loop, so one means the loop allocated.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Engine } from "../../../src/datapath/engine.js";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import {
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  TCP_ACK,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { SyncOut } from "../../../src/datapath/sync.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { GcWatch, settle } from "../../support/gc.js";
import { addSynProxyService, IN, IP, MAC, natEngine, OUT, tcpKey } from "./helpers.js";

const gc = new GcWatch();
beforeAll(() => {
  gc.start();
});
afterAll(() => gc.stop());

// Enough frames to fill the young generation many times over if anything allocated per frame.
const N_BATCHES = Number(process.env.ALLOC_BATCHES ?? 1200); // x 256 frames

function engineFor(fwd: FwdMethod, proxy = 0, maxConns = 1 << 20): Engine {
  const e = natEngine({ sweepPerBatch: 64, maxConns });
  e.table.addService(tcpKey(), {
    sched: "rr",
    flags: 0,
    timeout: 0,
    netmask: 0xffffffff,
    proxyProtocol: proxy,
  });
  if (fwd === FwdMethod.FULLNAT) e.table.addLaddr(tcpKey(), ipToU32("192.168.10.200"));
  for (const rs of [IP.rs1, IP.rs2]) {
    e.table.addDest(tcpKey(), { addr: ipToU32(rs), port: 80, weight: 1, fwd, uThreshold: 0, lThreshold: 0 });
  }
  return e;
}

function batchOf(frames: Uint8Array[], link: number): { b: FrameBatch; restore: () => void } {
  const b = new FrameBatch(frames.length, 256);
  for (const f of frames) b.push(f, link);
  const pristine = b.buf.slice();
  const off = b.off.slice();
  const len = b.len.slice();
  return {
    b,
    restore: () => {
      b.buf.set(pristine);
      b.off.set(off);
      b.len.set(len);
      for (let i = 0; i < b.count; i++) b.link[i] = link;
    },
  };
}

/** 256 established flows; returns a client->server batch and a server->client batch. */
function established(e: Engine): { inb: ReturnType<typeof batchOf>; outb: ReturnType<typeof batchOf> } {
  const one = new FrameBatch(1);
  const send = (f: Uint8Array, link: number) => {
    one.reset();
    one.push(f, link);
    e.process(one, 1);
  };
  const ins: Uint8Array[] = [];
  const outs: Uint8Array[] = [];
  for (let k = 0; k < 256; k++) {
    const sport = 20000 + k;
    const c2s = (flags: number, seq: number, data = "") =>
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .tcp({ sport, dport: 80, seq, ack: 1, flags })
        .payload(data)
        .build();
    send(c2s(TCP_SYN, 0), OUT);
    const c = e.ct.lookupIn(6, ipToU32(IP.client), sport, ipToU32(IP.vip), 80);
    const rs = e.ct.daddr[c] === ipToU32(IP.rs1) ? IP.rs1 : IP.rs2;
    const rsMac = rs === IP.rs1 ? MAC.rs1 : MAC.rs2;
    const to = e.ct.laddr[c] === ipToU32(IP.client) ? IP.client : "192.168.10.200";
    const s2c = (flags: number, seq: number, ack: number) =>
      eth({ src: rsMac, dst: MAC.dirIn })
        .ipv4({ src: rs, dst: to })
        .tcp({ sport: 80, dport: e.ct.lport[c]!, seq, ack, flags })
        .payload("abcdef")
        .build();
    send(s2c(TCP_SYN | TCP_ACK, 0, 1), IN);
    send(c2s(TCP_ACK, 1), OUT);
    send(c2s(TCP_ACK | TCP_PSH, 1, "hello"), OUT); // first data: the PROXY header goes in here
    ins.push(c2s(TCP_ACK | TCP_PSH, 6, "more!"));
    outs.push(s2c(TCP_ACK, 1, 200));
  }
  return { inb: batchOf(ins, OUT), outb: batchOf(outs, IN) };
}

async function gcsDuring(work: () => void): Promise<number> {
  work(); // warm-up: optimize, settle field representations
  await settle();
  return (await gc.during(work)).minors;
}

describe("the per-packet path allocates nothing", () => {
  const cases: [string, FwdMethod, number, boolean][] = [
    ["NAT", FwdMethod.MASQ, 0, true],
    ["DR", FwdMethod.ROUTE, 0, false],
    ["TUN", FwdMethod.TUNNEL, 0, false],
    ["FULLNAT with PROXY v2", FwdMethod.FULLNAT, 2, true],
  ];
  for (const [name, fwd, proxy, replies] of cases) {
    it(`${name}: established flows`, async () => {
      const e = engineFor(fwd, proxy);
      const { inb, outb } = established(e);
      e.drops.fill(0);
      let t = 10;
      const gcs = await gcsDuring(() => {
        for (let k = 0; k < N_BATCHES; k++) {
          inb.restore();
          e.process(inb.b, t++);
          if (replies) {
            outb.restore();
            e.process(outb.b, t++);
          }
        }
      });
      expect(e.drops.reduce((a, b) => a + b, 0)).toBe(0);
      expect(inb.b.egress[255]).toBe(IN);
      expect(gcs).toBe(0);
    });
  }

  it("FULLNAT with PROXY v1: ICMP errors quoting established flows, both sides, quotes mapped", async () => {
    const e = engineFor(FwdMethod.FULLNAT, 1);
    established(e);
    const errsIn: Uint8Array[] = [];
    const errsOut: Uint8Array[] = [];
    for (let k = 0; k < 256; k++) {
      const sport = 20000 + k;
      const c = e.ct.lookupIn(6, ipToU32(IP.client), sport, ipToU32(IP.vip), 80);
      const rs = e.ct.daddr[c] === ipToU32(IP.rs1) ? IP.rs1 : IP.rs2;
      const h = e.ct.seqDelta[c]!;
      const serverGot = ipv4({ src: "192.168.10.200", dst: rs, ttl: 63, df: true })
        .tcp({ sport: e.ct.lport[c]!, dport: 80, seq: 6 + h, ack: 7, flags: TCP_ACK })
        .payload("more!")
        .build();
      errsOut.push(
        eth({ src: rs === IP.rs1 ? MAC.rs1 : MAC.rs2, dst: MAC.dirIn })
          .ipv4({ src: rs, dst: "192.168.10.200" })
          .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, serverGot, { mtu: 1400 })
          .build(),
      );
      const clientGot = ipv4({ src: IP.vip, dst: IP.client, ttl: 63 })
        .tcp({ sport: 80, dport: sport, seq: 1, ack: 6, flags: TCP_ACK })
        .payload("abcdef")
        .build();
      errsIn.push(
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip })
          .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, clientGot)
          .build(),
      );
    }
    const eib = batchOf(errsIn, OUT);
    const eob = batchOf(errsOut, IN);
    e.drops.fill(0);
    let t = 10;
    const gcs = await gcsDuring(() => {
      for (let k = 0; k < N_BATCHES; k++) {
        eib.restore();
        e.process(eib.b, t++);
        eob.restore();
        e.process(eob.b, t++);
      }
    });
    expect(e.drops.reduce((a, b) => a + b, 0)).toBe(0);
    expect(eib.b.egress[255]).toBe(IN);
    expect(eob.b.egress[255]).toBe(OUT);
    // the last error to the client quotes its own seq (the header taken out again)
    const last = eob.b.frame(255);
    expect(new DataView(last.buffer, last.byteOffset).getUint32(14 + 20 + 8 + 20 + 4)).toBe(6);
    expect(gcs).toBe(0);
  });

  it("NAT established flows with a master sync daemon writing entries (FULLNAT option too)", async () => {
    for (const fwd of [FwdMethod.MASQ, FwdMethod.FULLNAT]) {
      const e = engineFor(fwd);
      const { inb } = established(e);
      const out = new SyncOut(e.ct, e.table, e.sysctl, 1, 1472, 4);
      e.ct.syncReset = out.reset;
      e.sync = out;
      e.sysctl.syncPeriod = 5; // every 5th packet of each flow: many entries, the ring fills
      e.sysctl.syncThreshold = 1;
      let t = 10;
      const gcs = await gcsDuring(() => {
        for (let k = 0; k < N_BATCHES; k++) {
          inb.restore();
          e.process(inb.b, t++);
          if (k % 8 === 0) while (out.ready(t, 0) >= 0) out.release(); // what the daemon does
        }
      });
      expect(out.entries).toBeGreaterThan(N_BATCHES * 256 * 0.1);
      expect(gcs).toBe(0);
    }
  });

  it("SYN proxy: cookie SYN-ACKs for SYNs, forged ACKs refused", async () => {
    const batches = Math.min(N_BATCHES, 1500);
    const e = synProxyNatEngine();
    const frames: Uint8Array[] = [];
    for (let k = 0; k < 256; k++) {
      frames.push(
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: `10.0.5.${k}`, dst: IP.vip })
          .tcp({
            sport: 1024,
            dport: 80,
            seq: k * 7919,
            ack: k * 104729,
            flags: k & 1 ? TCP_ACK : TCP_SYN,
            mss: 1460,
          })
          .build(),
      );
    }
    const { b, restore } = batchOf(frames, OUT);
    const gcs = await gcsDuring(() => {
      for (let k = 0; k < batches; k++) {
        restore();
        e.process(b, 20 + k);
      }
    });
    expect(e.ct.count).toBe(0);
    expect(e.synproxy.cookiesSent).toBe(2 * batches * 128);
    expect(e.tx.count).toBe(128);
    expect(gcs).toBe(0);
  });

  it("SYN proxy: servers answering the SYN with an older connection's ACK get resets", async () => {
    const e = synProxyNatEngine();
    const one = new FrameBatch(1);
    const challenges: Uint8Array[] = [];
    for (let k = 0; k < 256; k++) {
      const sport = 30000 + k;
      const c2s = (flags: number, seq: number, ack: number) =>
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip })
          .tcp({ sport, dport: 80, seq, ack, flags, mss: 1460 })
          .build();
      one.reset();
      one.push(c2s(TCP_SYN, 0, 0), OUT);
      e.process(one, 1);
      const sa = e.tx.frame(0);
      const cookie = new DataView(sa.buffer, sa.byteOffset).getUint32(14 + 20 + 4);
      one.reset();
      one.push(c2s(TCP_ACK, 1, cookie + 1), OUT);
      e.process(one, 1);
      challenges.push(
        eth({ src: MAC.rs1, dst: MAC.dirIn })
          .ipv4({ src: IP.rs1, dst: IP.client })
          .tcp({ sport: 80, dport: sport, seq: 5000, ack: 123456 + k, flags: TCP_ACK })
          .build(),
      );
    }
    const { b, restore } = batchOf(challenges, IN);
    const batches = Math.min(N_BATCHES, 1500);
    const gcs = await gcsDuring(() => {
      for (let k = 0; k < batches; k++) {
        restore();
        e.process(b, 2 + k);
      }
    });
    // run twice (warm-up); the first batch's 256 resets and 256 SYNs overflow the TX queue
    expect(e.synproxy.staleServerConns).toBeGreaterThanOrEqual(2 * (batches - 1) * 256);
    // a batch now: the resets alone (each SYN went again once)
    expect(e.tx.count).toBe(256);
    for (let j = 0; j < 256; j++) expect(e.tx.frame(j)[14 + 20 + 13]).toBe(TCP_RST);
    expect(gcs).toBe(0);
  });

  it("SYN proxy: established flows, sequence numbers shifted both ways", async () => {
    const { e, ins, outs } = synProxyFlows();
    const inb = batchOf(ins, OUT);
    const outb = batchOf(outs, IN);
    e.drops.fill(0);
    let t = 10;
    const gcs = await gcsDuring(() => {
      for (let k = 0; k < N_BATCHES; k++) {
        inb.restore();
        e.process(inb.b, t++);
        outb.restore();
        e.process(outb.b, t++);
      }
    });
    expect(e.drops.reduce((a, b) => a + b, 0)).toBe(0);
    expect(inb.b.egress[255]).toBe(IN);
    expect(outb.b.egress[255]).toBe(OUT);
    expect(gcs).toBe(0);
  });

  it("SYN proxy: ICMP errors quoting spliced flows (both sides), and sync entries with the SEQ option", async () => {
    const { e, ins, errsIn, errsOut } = synProxyFlows();
    const out = new SyncOut(e.ct, e.table, e.sysctl, 1, 1472, 4);
    e.ct.syncReset = out.reset;
    e.sync = out;
    e.sysctl.syncPeriod = 5;
    e.sysctl.syncThreshold = 1;
    const inb = batchOf(ins, OUT);
    const eib = batchOf(errsIn, OUT);
    const eob = batchOf(errsOut, IN);
    e.drops.fill(0);
    let t = 10;
    const gcs = await gcsDuring(() => {
      for (let k = 0; k < N_BATCHES; k++) {
        inb.restore();
        e.process(inb.b, t++);
        eib.restore();
        e.process(eib.b, t++);
        eob.restore();
        e.process(eob.b, t++);
        if (k % 8 === 0) while (out.ready(t, 0) >= 0) out.release();
      }
    });
    expect(e.drops.reduce((a, b) => a + b, 0)).toBe(0);
    expect(eib.b.egress[255]).toBe(IN);
    expect(eob.b.egress[255]).toBe(OUT);
    // entries of 62 bytes (the SEQ option): 23 a message, fewer than the plain ones fit the ring
    expect(out.entries).toBeGreaterThan(N_BATCHES * 256 * 0.05);
    expect(gcs).toBe(0);
  });

  it("new connections: SYN -> schedule -> insert", async () => {
    const batches = Math.min(N_BATCHES, 1500);
    const e = engineFor(FwdMethod.MASQ, 0, 1 << 21);
    const syns: Uint8Array[] = [];
    for (let k = 0; k < 256; k++) {
      syns.push(
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: `10.0.5.${k}`, dst: IP.vip })
          .tcp({ sport: 1024, dport: 80, flags: TCP_SYN })
          .build(),
      );
    }
    const { b, restore } = batchOf(syns, OUT);
    let port = 1024;
    const gcs = await gcsDuring(() => {
      for (let k = 0; k < batches; k++) {
        restore();
        port++;
        for (let i = 0; i < b.count; i++) b.dv.setUint16(b.off[i]! + 34, port);
        e.process(b, 20);
      }
    });
    expect(e.ct.count).toBe(2 * batches * 256);
    expect(gcs).toBe(0);
  });
});

/** A NAT engine with VIP:80 behind the SYN proxy and one real server, rs1:80. */
function synProxyNatEngine(): Engine {
  const e = natEngine({ sweepPerBatch: 64 });
  addSynProxyService(e, FwdMethod.MASQ, undefined, 80);
  return e;
}

/**
 * 256 SYN-proxied NAT flows after their handshakes: client->server and server->client
 * segments, and ICMP errors about them from the client's side (quoting a server->client
 * segment) and from the server's side (quoting a client->server segment).
 */
function synProxyFlows() {
  const e = synProxyNatEngine();
  const one = new FrameBatch(1);
  const send = (f: Uint8Array, link: number) => {
    one.reset();
    one.push(f, link);
    e.process(one, 1);
  };
  const ins: Uint8Array[] = [];
  const outs: Uint8Array[] = [];
  const errsIn: Uint8Array[] = [];
  const errsOut: Uint8Array[] = [];
  for (let k = 0; k < 256; k++) {
    const sport = 20000 + k;
    const c2s = (flags: number, seq: number, ack: number, data = "") =>
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .tcp({ sport, dport: 80, seq, ack, flags, mss: 1460 })
        .payload(data)
        .build();
    const s2c = (flags: number, seq: number, ack: number) =>
      eth({ src: MAC.rs1, dst: MAC.dirIn })
        .ipv4({ src: IP.rs1, dst: IP.client })
        .tcp({ sport: 80, dport: sport, seq, ack, flags })
        .payload("abcdef")
        .build();
    send(c2s(TCP_SYN, 0, 0), OUT);
    const sa = e.tx.frame(0);
    const cookie = new DataView(sa.buffer, sa.byteOffset).getUint32(14 + 20 + 4);
    send(c2s(TCP_ACK, 1, cookie + 1), OUT);
    send(s2c(TCP_SYN | TCP_ACK, 7000, 1), IN);
    ins.push(c2s(TCP_ACK | TCP_PSH, 1, cookie + 1, "more!"));
    outs.push(s2c(TCP_ACK, 7001, 6));
    const clientGot = ipv4({ src: IP.vip, dst: IP.client, ttl: 63 })
      .tcp({ sport: 80, dport: sport, seq: cookie + 1, ack: 6, flags: TCP_ACK })
      .payload("abcdef")
      .build();
    errsIn.push(
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, clientGot)
        .build(),
    );
    const serverGot = ipv4({ src: IP.client, dst: IP.rs1, ttl: 63, df: true })
      .tcp({ sport, dport: 80, seq: 6, ack: 7001, flags: TCP_ACK })
      .payload("more!")
      .build();
    errsOut.push(
      eth({ src: MAC.rs1, dst: MAC.dirIn })
        .ipv4({ src: IP.rs1, dst: IP.client })
        .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, serverGot, { mtu: 1400 })
        .build(),
    );
  }
  expect(e.synproxy.handshakes).toBe(256);
  return { e, ins, outs, errsIn, errsOut };
}
