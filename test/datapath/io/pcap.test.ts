/**
 * PcapWriter and PcapTap (src/datapath/io/pcap.ts): the bytes of the classic libpcap format read
 * back field by field, and by the independent reader of src/tools/schedbench/pcap.ts.
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EGRESS_NONE, FrameBatch } from "../../../src/datapath/io/batch.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import {
  LINKTYPE_ETHERNET,
  PCAP_GLOBAL_HEADER_LEN,
  PCAP_RECORD_HEADER_LEN,
  PcapTap,
  PcapWriter,
} from "../../../src/datapath/io/pcap.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { TCP_SYN } from "../../../src/datapath/packet/view.js";
import { macToBytes } from "../../../src/lib/addr.js";
import { parsePcap } from "../../../src/tools/schedbench/pcap.js";

const syn = (sport: number) =>
  eth({ src: "02:00:00:00:00:07", dst: "02:00:00:00:00:01" })
    .ipv4({ src: "10.0.0.7", dst: "10.0.0.100" })
    .tcp({ sport, dport: 80, flags: TCP_SYN })
    .build();

interface Rec {
  sec: number;
  usec: number;
  incl: number;
  orig: number;
  data: Uint8Array;
}

/** Split a capture by hand: the global header's fields and every record. */
function split(buf: Uint8Array): { header: number[]; records: Rec[] } {
  const b = Uint8Array.from(buf); // a copy at offset 0 (Buffer.slice would share memory)
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const header = [
    dv.getUint32(0, true),
    dv.getUint16(4, true),
    dv.getUint16(6, true),
    dv.getInt32(8, true),
    dv.getUint32(12, true),
    dv.getUint32(16, true),
    dv.getUint32(20, true),
  ];
  const records: Rec[] = [];
  let o = PCAP_GLOBAL_HEADER_LEN;
  while (o < b.length) {
    const incl = dv.getUint32(o + 8, true);
    records.push({
      sec: dv.getUint32(o, true),
      usec: dv.getUint32(o + 4, true),
      incl,
      orig: dv.getUint32(o + 12, true),
      data: b.slice(o + PCAP_RECORD_HEADER_LEN, o + PCAP_RECORD_HEADER_LEN + incl),
    });
    o += PCAP_RECORD_HEADER_LEN + incl;
  }
  expect(o).toBe(b.length);
  return { header, records };
}

describe("PcapWriter", () => {
  it("writes the global header: magic, version 2.4, zone, sigfigs, snaplen, Ethernet", () => {
    const b = new PcapWriter().toBuffer();
    expect(b.length).toBe(24);
    expect(b.subarray(0, 4).toString("hex")).toBe("d4c3b2a1"); // 0xa1b2c3d4 little-endian
    expect(split(b).header).toEqual([0xa1b2c3d4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET]);
    expect(split(new PcapWriter({ snaplen: 96, linkType: 101 }).toBuffer()).header.slice(5)).toEqual([
      96, 101,
    ]);
  });

  it("round-trips frames with their lengths and microsecond timestamps", () => {
    const w = new PcapWriter();
    const frames = [syn(1000), syn(1001), new Uint8Array(60).fill(0xab)];
    const times = [1_000_000, 1_000_010.5, 2_500_123.456];
    for (const [k, f] of frames.entries()) w.append(f, times[k]!);
    expect(w.packets).toBe(3);
    const b = w.toBuffer();
    expect(b.length).toBe(w.size);
    expect(b.length).toBe(24 + frames.reduce((n, f) => n + 16 + f.length, 0));
    const { records } = split(b);
    expect(records.map((r) => [r.sec, r.usec, r.incl, r.orig])).toEqual([
      [1000, 0, 54, 54],
      [1000, 10_500, 54, 54],
      [2500, 123_456, 60, 60],
    ]);
    for (const [k, r] of records.entries())
      expect(Buffer.from(r.data).equals(Buffer.from(frames[k]!))).toBe(true);
    // the schedbench reader (written separately) agrees
    const p = parsePcap(b, "rt.pcap");
    expect(p.stats.packets).toBe(3);
    expect(p.stats.ipv4).toBe(2);
    expect(p.stats.notIPv4).toBe(1);
    expect(p.arrivals.map((a) => [a.sport, a.tMs])).toEqual([
      [1000, 0],
      [1001, 10.5],
    ]);
  });

  it("cuts frames to the snap length and keeps the original length", () => {
    const w = new PcapWriter({ snaplen: 40 });
    w.append(syn(7), 0);
    const [r] = split(w.toBuffer()).records;
    expect([r!.incl, r!.orig]).toEqual([40, 54]);
    expect(Buffer.from(r!.data).equals(Buffer.from(syn(7).subarray(0, 40)))).toBe(true);
  });

  it("copies frames on append and writes files", () => {
    const w = new PcapWriter();
    const f = syn(9);
    w.append(f, 5);
    f.fill(0);
    expect(split(w.toBuffer()).records[0]!.data[12]).toBe(0x08);
    const dir = mkdtempSync(join(tmpdir(), "lvs-pcap-"));
    try {
      const file = join(dir, "x.pcap");
      expect(w.writeFile(file)).toBe(24 + 16 + 54);
      expect(Buffer.from(readFileSync(file)).equals(w.toBuffer())).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a snap length that is not a positive integer", () => {
    expect(() => new PcapWriter({ snaplen: 0 })).toThrow(RangeError);
    expect(() => new PcapWriter({ snaplen: 1.5 })).toThrow(RangeError);
  });
});

describe("PcapTap", () => {
  it("records what a link receives and what it is given to send, and passes both through", () => {
    const w = new PcapWriter();
    let now = 100;
    const mem = new MemoryLink("m0", macToBytes("02:00:00:00:00:01"));
    const tap = new PcapTap(mem, w, () => now);
    expect([tap.name, tap.mtu, tap.mac]).toEqual([mem.name, mem.mtu, mem.mac]);
    mem.inject(syn(1));
    mem.inject(syn(2));
    const b = new FrameBatch(4);
    expect(tap.recv(b, 0)).toBe(2);
    now = 101;
    b.egress[0] = 0;
    b.egress[1] = EGRESS_NONE;
    expect(tap.send(b, 0)).toBe(1);
    expect(mem.drain()).toHaveLength(1);
    expect(tap.stats.txPackets).toBe(1);
    const { records } = split(w.toBuffer());
    expect(records.map((r) => [r.sec, r.usec, new DataView(r.data.buffer).getUint16(34)])).toEqual([
      [0, 100_000, 1],
      [0, 100_000, 2],
      [0, 101_000, 1],
    ]);
  });
});
