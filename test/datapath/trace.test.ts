/**
 * FrameTracer (src/datapath/trace.ts) on a real Director with in-memory links: which frames it
 * captures, in which order and direction, with and without the link and service filters; the
 * count limit; a full ring counted as dropped; the ring's wrap-around with frames at every
 * alignment (a property test against a model).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Director } from "../../src/datapath/director.js";
import { FrameBatch, HEADROOM } from "../../src/datapath/io/batch.js";
import { MemoryLink } from "../../src/datapath/io/memory.js";
import { eth } from "../../src/datapath/packet/build.js";
import { TCP_ACK, TCP_SYN } from "../../src/datapath/packet/view.js";
import {
  FrameTracer,
  TRACE_INBOUND,
  TRACE_OUTBOUND,
  type TraceFilterEntry,
} from "../../src/datapath/trace.js";
import { ipToU32, macToBytes } from "../../src/lib/addr.js";
import { addNatDest, addService, IN, IP, MAC, natEngine, OUT, tcpKey, udpKey } from "./engine/helpers.js";

interface Rec {
  dir: number;
  link: number;
  frame: Uint8Array;
  origLen: number;
  ts: number;
}

/** Take every record out of the tracer (oldest first). */
function drainAll(tr: FrameTracer): Rec[] {
  const out: Rec[] = [];
  for (let k = 0; k < tr.count; k++) {
    const r = tr.record(k);
    const o = tr.off[r]!;
    out.push({
      dir: tr.dir[r]!,
      link: tr.link[r]!,
      frame: tr.buf.slice(o, o + tr.capLen[r]!),
      origLen: tr.origLen[r]!,
      ts: tr.ts[r]!,
    });
  }
  tr.release(tr.count);
  return out;
}

function rig() {
  const e = natEngine();
  addService(e, tcpKey());
  addNatDest(e, tcpKey(), IP.rs1, 8080);
  addService(e, udpKey());
  addNatDest(e, udpKey(), IP.rs2, 53);
  const d = new Director(e);
  const out = new MemoryLink("out0", macToBytes(MAC.dirOut));
  const inl = new MemoryLink("in0", macToBytes(MAC.dirIn));
  d.attach(out);
  d.attach(inl);
  const tr = new FrameTracer({ ringBytes: 1 << 16, ringFrames: 64 });
  d.tracer = tr;
  return { e, d, out, inl, tr };
}

const syn = eth({ src: MAC.client, dst: MAC.dirOut })
  .ipv4({ src: IP.client, dst: IP.vip })
  .tcp({ sport: 40000, dport: 80, seq: 1, flags: TCP_SYN })
  .build();
const synAck = eth({ src: MAC.rs1, dst: MAC.dirIn })
  .ipv4({ src: IP.rs1, dst: IP.client })
  .tcp({ sport: 8080, dport: 40000, seq: 9, ack: 2, flags: TCP_SYN | TCP_ACK })
  .build();
const arpWhoHasVip = eth({ src: MAC.client, dst: "ff:ff:ff:ff:ff:ff" })
  .arp({ op: 1, sha: MAC.client, spa: IP.client, tpa: IP.vip })
  .build();
const dns = eth({ src: MAC.client, dst: MAC.dirOut })
  .ipv4({ src: IP.client, dst: IP.vip })
  .udp({ sport: 5353, dport: 53 })
  .payload("query")
  .build();
const ssh = eth({ src: MAC.client, dst: MAC.dirOut })
  .ipv4({ src: IP.client, dst: IP.vip })
  .tcp({ sport: 40001, dport: 22, flags: TCP_SYN })
  .build();

/** One batch: SYN, ARP request, UDP query, a frame to no service, all on the client link. */
function firstBatch(r: ReturnType<typeof rig>) {
  for (const f of [syn, arpWhoHasVip, dns, ssh]) r.out.inject(f);
  expect(r.d.pump(1000)).toBe(4);
  return { outSent: r.out.drain(), inSent: r.inl.drain() };
}

function filterFor(...entries: [string, number, number][]): TraceFilterEntry[] {
  return entries.map(([a, proto, port]) => ({ addr: ipToU32(a), proto, port }));
}

describe("FrameTracer on the director", () => {
  it("without filters: every received frame as it came, then the forwarded, then the generated", () => {
    const r = rig();
    const { outSent, inSent } = firstBatch(r);
    expect(inSent).toHaveLength(2); // SYN and the query, rewritten to the real servers
    expect(outSent).toHaveLength(1); // the ARP reply
    const recs = drainAll(r.tr);
    expect(recs.map((x) => [x.dir, x.link])).toEqual([
      [TRACE_INBOUND, OUT],
      [TRACE_INBOUND, OUT],
      [TRACE_INBOUND, OUT],
      [TRACE_INBOUND, OUT],
      [TRACE_OUTBOUND, IN],
      [TRACE_OUTBOUND, IN],
      [TRACE_OUTBOUND, OUT],
    ]);
    // received frames before the engine rewrote them in place, sent frames as sent
    expect(recs.slice(0, 4).map((x) => x.frame)).toEqual([syn, arpWhoHasVip, dns, ssh]);
    expect(recs.slice(4, 6).map((x) => x.frame)).toEqual(inSent);
    expect(recs[6]!.frame).toEqual(outSent[0]);
    expect(recs.every((x) => x.ts === 1000 && x.origLen === x.frame.length)).toBe(true);
    expect(r.tr.captured).toBe(7);
    expect(r.tr.dropped).toBe(0);

    // the reply comes back on the inside link and leaves on the client link
    r.inl.inject(synAck);
    r.d.pump(1010);
    const back = drainAll(r.tr);
    expect(back.map((x) => [x.dir, x.link])).toEqual([
      [TRACE_INBOUND, IN],
      [TRACE_OUTBOUND, OUT],
    ]);
    expect(back[0]!.frame).toEqual(synAck);
    expect(back[1]!.frame).toEqual(r.out.drain()[0]);
  });

  it("a TCP service filter keeps only that service's frames both ways (no ARP, no other service)", () => {
    const r = rig();
    r.tr.setFilter(filterFor([IP.vip, 6, 80], [IP.rs1, 6, 8080]));
    const { inSent } = firstBatch(r);
    r.inl.inject(synAck);
    r.d.pump(1010);
    const recs = drainAll(r.tr);
    expect(recs.map((x) => [x.dir, x.link])).toEqual([
      [TRACE_INBOUND, OUT],
      [TRACE_OUTBOUND, IN],
      [TRACE_INBOUND, IN],
      [TRACE_OUTBOUND, OUT],
    ]);
    expect(recs[0]!.frame).toEqual(syn);
    expect(recs[1]!.frame).toEqual(inSent[0]);
    expect(recs[2]!.frame).toEqual(synAck);
  });

  it("a UDP service filter keeps the query in and out", () => {
    const r = rig();
    r.tr.setFilter(filterFor([IP.vip, 17, 53], [IP.rs2, 17, 53]));
    const { inSent } = firstBatch(r);
    const recs = drainAll(r.tr);
    expect(recs.map((x) => x.frame)).toEqual([dns, inSent[1]]);
    expect(recs.map((x) => x.dir)).toEqual([TRACE_INBOUND, TRACE_OUTBOUND]);
  });

  it("port 0 in the filter is any port; ICMP and other IPv4 match by address", () => {
    const r = rig();
    r.tr.setFilter(filterFor([IP.vip, 6, 0]));
    const ping = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .icmp({ type: 8, id: 1, seq: 1 })
      .build();
    for (const f of [syn, ssh, dns, ping]) r.out.inject(f);
    r.d.pump(1000);
    const recs = drainAll(r.tr);
    // SYN to :80 and :22 (any TCP port of the VIP), the echo request and its reply; not UDP
    expect(recs.filter((x) => x.dir === TRACE_INBOUND).map((x) => x.frame)).toEqual([syn, ssh, ping]);
    const outs = recs.filter((x) => x.dir === TRACE_OUTBOUND);
    // only the echo reply: the SYN left rewritten to rs1:8080, which the filter does not name
    expect(outs).toHaveLength(1);
    expect(outs[0]!.link).toBe(OUT);
  });

  it("a link filter keeps only the frames received on or sent by those links", () => {
    const r = rig();
    r.tr.setLinks([IN]);
    const { inSent } = firstBatch(r);
    const recs = drainAll(r.tr);
    expect(recs.map((x) => [x.dir, x.link])).toEqual([
      [TRACE_OUTBOUND, IN],
      [TRACE_OUTBOUND, IN],
    ]);
    expect(recs.map((x) => x.frame)).toEqual(inSent);
  });

  it("stops at the count limit and counts nothing more", () => {
    const r = rig();
    r.tr.limit = 3;
    firstBatch(r);
    expect(r.tr.captured).toBe(3);
    expect(r.tr.full).toBe(true);
    expect(drainAll(r.tr).map((x) => x.frame)).toEqual([syn, arpWhoHasVip, dns]);
    r.inl.inject(synAck);
    r.d.pump(1010);
    expect(r.tr.count).toBe(0);
    expect(r.tr.captured).toBe(3);
    expect(r.tr.dropped).toBe(0);
  });

  it("counts frames that find the ring full (records or bytes) as dropped", () => {
    const r = rig();
    const small = new FrameTracer({ ringBytes: 1 << 16, ringFrames: 2 });
    r.d.tracer = small;
    firstBatch(r);
    expect(small.captured).toBe(2);
    expect(small.dropped).toBe(5);
    expect(drainAll(small).map((x) => x.frame)).toEqual([syn, arpWhoHasVip]);

    const tight = new FrameTracer({ ringBytes: 128, ringFrames: 64 });
    r.d.tracer = tight;
    firstBatch(r);
    // 54-byte SYN and 42-byte ARP fit in 128 bytes (with alignment), nothing after them does
    expect(tight.captured).toBe(2);
    expect(tight.dropped).toBe(5);
  });

  it("keeps only snaplen bytes of a frame and its original length", () => {
    const r = rig();
    const short = new FrameTracer({ snaplen: 20 });
    r.d.tracer = short;
    r.out.inject(syn);
    r.d.pump(1000);
    const recs = drainAll(short);
    expect(recs[0]!.frame).toEqual(syn.subarray(0, 20));
    expect(recs[0]!.origLen).toBe(syn.length);
  });

  it("with the tracer detached the director forwards the same and captures nothing", () => {
    const r = rig();
    r.d.tracer = null;
    const { inSent } = firstBatch(r);
    expect(inSent).toHaveLength(2);
    expect(r.tr.captured).toBe(0);
  });

  it("Director.sendTx traces the generated frames it sends", () => {
    const r = rig();
    r.e.tx.reset();
    r.e.announce(ipToU32(IP.vip));
    const n = r.e.tx.count;
    expect(n).toBeGreaterThan(0);
    expect(r.d.sendTx(2000)).toBe(n);
    const recs = drainAll(r.tr);
    expect(recs).toHaveLength(n);
    expect(recs.every((x) => x.dir === TRACE_OUTBOUND && x.ts === 2000)).toBe(true);
    const sent = r.out.drain().concat(r.inl.drain());
    expect(sent).toHaveLength(n);
    for (const x of recs) expect(sent).toContainEqual(x.frame);
    expect(r.e.tx.count).toBe(0);
  });
});

describe("FrameTracer's ring", () => {
  it("wraps around without corrupting frames at any alignment (model check)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            frames: fc.array(
              fc.record({ len: fc.integer({ min: 1, max: 300 }), shift: fc.integer({ min: 0, max: 3 }) }),
              {
                minLength: 1,
                maxLength: 8,
              },
            ),
            release: fc.integer({ min: 0, max: 10 }),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        fc.integer({ min: 64, max: 2048 }),
        fc.integer({ min: 1, max: 12 }),
        (rounds, ringBytes, ringFrames) => {
          const tr = new FrameTracer({ ringBytes, ringFrames });
          const b = new FrameBatch(8, 512);
          const model: Uint8Array[] = [];
          let seq = 0;
          let offered = 0;
          for (const round of rounds) {
            b.count = 0;
            for (const f of round.frames) {
              const i = b.count++;
              const off = b.slotStart(i) + HEADROOM + f.shift;
              const bytes = new Uint8Array(f.len);
              for (let k = 0; k < f.len; k++) bytes[k] = (seq * 31 + k * 7) & 0xff;
              seq++;
              b.buf.set(bytes, off);
              b.off[i] = off;
              b.len[i] = f.len;
              b.link[i] = 0;
              b.egress[i] = 1;
            }
            const before = tr.captured;
            const dropped = tr.dropped;
            tr.outbound(b, seq);
            offered += round.frames.length;
            // what was captured is the frames, in order, that found room
            const recs: Uint8Array[] = [];
            for (let k = tr.count - (tr.captured - before); k < tr.count; k++) {
              const r = tr.record(k);
              recs.push(tr.buf.slice(tr.off[r]!, tr.off[r]! + tr.capLen[r]!));
            }
            expect(recs.length + tr.dropped - dropped).toBe(round.frames.length);
            model.push(...recs);
            // every waiting record still holds its bytes
            for (let k = 0; k < tr.count; k++) {
              const r = tr.record(k);
              const want = model[model.length - tr.count + k]!;
              expect(tr.buf.subarray(tr.off[r]!, tr.off[r]! + tr.capLen[r]!)).toEqual(want);
            }
            tr.release(round.release);
          }
          expect(tr.captured + tr.dropped).toBe(offered);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("frees its space when the reader catches up", () => {
    const tr = new FrameTracer({ ringBytes: 256, ringFrames: 4 });
    const b = new FrameBatch(4, 512);
    for (let i = 0; i < 4; i++) b.push(new Uint8Array(60).fill(i), 0);
    for (let round = 0; round < 100; round++) {
      tr.inbound(b, round);
      expect(tr.count).toBe(4);
      tr.release(4);
    }
    expect(tr.captured).toBe(400);
    expect(tr.dropped).toBe(0);
  });

  it("refuses bad sizes and filter protocols", () => {
    expect(() => new FrameTracer({ ringBytes: 10 })).toThrow(RangeError);
    expect(() => new FrameTracer({ ringFrames: 0 })).toThrow(RangeError);
    expect(() => new FrameTracer({ snaplen: 0 })).toThrow(RangeError);
    expect(() => new FrameTracer().setFilter([{ addr: 1, proto: 1, port: 0 }])).toThrow(RangeError);
    expect(() => new FrameTracer().setLinks([-1])).toThrow(RangeError);
  });

  it("a filter with many entries finds each of them", () => {
    const tr = new FrameTracer({ ringBytes: 1 << 16, ringFrames: 4096 });
    const entries: TraceFilterEntry[] = [];
    for (let k = 0; k < 1000; k++)
      entries.push({ addr: ipToU32("172.16.0.0") + k, proto: 6, port: 8000 + (k % 50) });
    tr.setFilter(entries);
    const b = new FrameBatch(256, 256);
    let hits = 0;
    for (let k = 0; k < 1000; k += 4) {
      b.reset();
      const f = (port: number) =>
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: ipToU32("172.16.0.0") + k })
          .tcp({ sport: 1234, dport: port, flags: TCP_ACK })
          .build();
      b.push(f(8000 + (k % 50)), 0);
      b.push(f(8000 + ((k + 1) % 50)), 0); // right address, wrong port
      const before = tr.captured;
      tr.inbound(b, 0);
      hits += tr.captured - before;
      tr.release(tr.count);
    }
    expect(hits).toBe(250);
  });
});
