/**
 * The pcapng writer of lvsadm --trace (src/datapath/io/pcap.ts): block layout byte by byte, a
 * round trip through readPcapng (lengths at both ends, padding to 32 bits, options, directions,
 * interfaces, microsecond timestamps), the reader's refusals, and tcpdump reading a file when it
 * is installed.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  EPB_DIR_INBOUND,
  EPB_DIR_OUTBOUND,
  LINKTYPE_ETHERNET,
  PCAPNG_BLOCK_EPB,
  PCAPNG_BLOCK_IDB,
  PCAPNG_BLOCK_SHB,
  PCAPNG_BYTE_ORDER_MAGIC,
  PCAPNG_EPB_FLAGS,
  PCAPNG_IF_NAME,
  PCAPNG_IF_TSRESOL,
  PCAPNG_SHB_USERAPPL,
  PcapngWriter,
  pcapngInterfaceBlock,
  pcapngPacketLength,
  pcapngSectionHeader,
  readPcapng,
  writePcapngPacket,
} from "../../src/datapath/io/pcap.js";
import { eth } from "../../src/datapath/packet/build.js";
import { TCP_ACK, TCP_SYN } from "../../src/datapath/packet/view.js";
import { skipWithout } from "../support/tools.js";

const dir = mkdtempSync(join(tmpdir(), "lvs-pcapng-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function le32(b: Uint8Array, o: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(o, true);
}
function le16(b: Uint8Array, o: number): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(o, true);
}

describe("pcapng blocks", () => {
  it("Section Header Block: magic, version 1.0, unknown section length, shb_userappl padded", () => {
    const b = pcapngSectionHeader({ userAppl: "lvs-ts" }); // 6 bytes: 2 of padding
    // 8 header + 16 body + (4 + 8) userappl + 4 endofopt + 4 trailer
    expect(b.length).toBe(44);
    expect(le32(b, 0)).toBe(PCAPNG_BLOCK_SHB);
    expect(le32(b, 4)).toBe(44);
    expect(le32(b, 8)).toBe(PCAPNG_BYTE_ORDER_MAGIC);
    expect([le16(b, 12), le16(b, 14)]).toEqual([1, 0]);
    expect([...b.subarray(16, 24)]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    expect([le16(b, 24), le16(b, 26)]).toEqual([PCAPNG_SHB_USERAPPL, 6]);
    expect(Buffer.from(b.subarray(28, 34)).toString()).toBe("lvs-ts");
    expect([...b.subarray(34, 36)]).toEqual([0, 0]);
    expect(le32(b, 36)).toBe(0); // opt_endofopt
    expect(le32(b, 40)).toBe(44);
  });

  it("Interface Description Block: link type, snaplen, if_name, if_tsresol 6", () => {
    const b = pcapngInterfaceBlock({ name: "lvs0x", snaplen: 262144 }); // 5 bytes: 3 of padding
    // 8 + 8 body + (4 + 8) if_name + (4 + 4) if_tsresol + 4 endofopt + 4
    expect(b.length).toBe(44);
    expect(le32(b, 0)).toBe(PCAPNG_BLOCK_IDB);
    expect(le32(b, 4)).toBe(44);
    expect(le16(b, 8)).toBe(LINKTYPE_ETHERNET);
    expect(le16(b, 10)).toBe(0);
    expect(le32(b, 12)).toBe(262144);
    expect([le16(b, 16), le16(b, 18)]).toEqual([PCAPNG_IF_NAME, 5]);
    expect(Buffer.from(b.subarray(20, 25)).toString()).toBe("lvs0x");
    expect([...b.subarray(25, 28)]).toEqual([0, 0, 0]);
    expect([le16(b, 28), le16(b, 30), b[32]]).toEqual([PCAPNG_IF_TSRESOL, 1, 6]);
    expect(le32(b, 36)).toBe(0);
    expect(le32(b, 40)).toBe(44);
  });

  it("Enhanced Packet Block: interface, 64-bit microseconds, lengths, padded data, epb_flags", () => {
    const data = Uint8Array.from([1, 2, 3, 4, 5]);
    const b = Buffer.alloc(pcapngPacketLength(5)).fill(0xa5); // unwritten bytes would show
    const ts = 1_733_130_000_123_456; // µs
    expect(writePcapngPacket(b, 0, 1, ts, EPB_DIR_OUTBOUND, data, 0, 5, 60)).toBe(52);
    expect(le32(b, 0)).toBe(PCAPNG_BLOCK_EPB);
    expect(le32(b, 4)).toBe(52);
    expect(le32(b, 8)).toBe(1);
    expect(le32(b, 12) * 2 ** 32 + le32(b, 16)).toBe(ts);
    expect([le32(b, 20), le32(b, 24)]).toEqual([5, 60]);
    expect([...b.subarray(28, 36)]).toEqual([1, 2, 3, 4, 5, 0, 0, 0]);
    expect([le16(b, 36), le16(b, 38), le32(b, 40)]).toEqual([PCAPNG_EPB_FLAGS, 4, EPB_DIR_OUTBOUND]);
    expect(le32(b, 44)).toBe(0);
    expect(le32(b, 48)).toBe(52);
  });
});

describe("pcapng round trip", () => {
  it("reads back what it wrote: interfaces, packets, directions, timestamps, padding", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 15 }), { minLength: 1, maxLength: 4 }),
        fc.array(
          fc.record({
            ifId: fc.nat(),
            data: fc.uint8Array({ minLength: 1, maxLength: 200 }),
            tMs: fc.integer({ min: 0, max: 4_000_000_000_000 }),
            usec: fc.integer({ min: 0, max: 999 }),
            flags: fc.constantFrom(EPB_DIR_INBOUND, EPB_DIR_OUTBOUND),
          }),
          { maxLength: 30 },
        ),
        fc.integer({ min: 1, max: 300 }),
        (names, packets, snaplen) => {
          const w = new PcapngWriter({ userAppl: "test", snaplen });
          for (const n of names) w.addInterface(n);
          for (const p of packets) w.append(p.ifId % names.length, p.data, p.tMs + p.usec / 1000, p.flags);
          const buf = w.toBuffer();
          expect(buf.length).toBe(w.size);
          expect(buf.length % 4).toBe(0);
          const f = readPcapng(buf);
          expect(f.sections).toHaveLength(1);
          expect(f.sections[0]!.major).toBe(1);
          expect(f.interfaces.map((i) => i.name)).toEqual(names);
          expect(f.interfaces.every((i) => i.tsresol === 6 && i.snaplen === snaplen)).toBe(true);
          expect(f.packets).toHaveLength(packets.length);
          f.packets.forEach((got, k) => {
            const p = packets[k]!;
            const cap = Math.min(p.data.length, snaplen);
            expect(got.ifId).toBe(p.ifId % names.length);
            expect(got.capLen).toBe(cap);
            expect(got.origLen).toBe(p.data.length);
            expect(got.data).toEqual(p.data.subarray(0, cap));
            expect(got.flags).toBe(p.flags);
            expect(got.tsUs).toBe(p.tMs * 1000 + p.usec);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it("refuses malformed files and says where", () => {
    const w = new PcapngWriter();
    w.addInterface("a");
    w.append(0, new Uint8Array(10), 1, EPB_DIR_INBOUND);
    const good = w.toBuffer();
    expect(() => readPcapng(good)).not.toThrow();
    const badTrailer = Buffer.from(good);
    badTrailer.writeUInt32LE(9999, good.length - 4);
    expect(() => readPcapng(badTrailer)).toThrow(/trailing block length/);
    expect(() => readPcapng(good.subarray(0, good.length - 4))).toThrow(/past the end/);
    const odd = Buffer.from(good);
    odd.writeUInt32LE(30, 4);
    expect(() => readPcapng(odd)).toThrow(/multiple of 4/);
    const padding = Buffer.from(good);
    padding[good.length - pcapngPacketLength(10) + 28 + 10] = 1; // the EPB's first padding byte
    expect(() => readPcapng(padding)).toThrow(/padding/);
    expect(() => readPcapng(Buffer.alloc(16))).toThrow(/not pcapng/);
    const w2 = new PcapngWriter();
    expect(() => w2.append(0, new Uint8Array(1), 0, 1)).toThrow(/no interface 0/);
  });
});

describe("tcpdump reads it", () => {
  it("lists every packet, from both interfaces, with the right times", (ctx) => {
    skipWithout(ctx, "tcpdump");
    const w = new PcapngWriter({ userAppl: "lvs-ts test" });
    w.addInterface("lvs0");
    w.addInterface("lvs1");
    const syn = eth({ src: "02:00:00:00:00:07", dst: "02:00:00:00:00:01" })
      .ipv4({ src: "10.0.0.7", dst: "10.0.0.100" })
      .tcp({ sport: 40000, dport: 80, flags: TCP_SYN })
      .build();
    const fwd = eth({ src: "02:00:00:00:01:01", dst: "02:00:00:00:01:11" })
      .ipv4({ src: "10.0.0.7", dst: "192.168.10.1" })
      .tcp({ sport: 40000, dport: 80, flags: TCP_SYN })
      .build();
    const ack = eth({ src: "02:00:00:00:01:11", dst: "02:00:00:00:01:01" })
      .ipv4({ src: "192.168.10.1", dst: "10.0.0.7" })
      .tcp({ sport: 80, dport: 40000, flags: TCP_SYN | TCP_ACK })
      .payload("z".repeat(3)) // an odd length: padding
      .build();
    w.append(0, syn, 1_733_130_000_000.25, EPB_DIR_INBOUND);
    w.append(1, fwd, 1_733_130_000_000.5, EPB_DIR_OUTBOUND);
    w.append(1, ack, 1_733_130_000_001.75, EPB_DIR_INBOUND);
    const file = join(dir, "t.pcapng");
    writeFileSync(file, w.toBuffer());
    const out = execFileSync("tcpdump", ["-nn", "-tt", "-r", file], { encoding: "utf8", stdio: "pipe" });
    const lines = out.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^1733130000\.000250 IP 10\.0\.0\.7\.40000 > 10\.0\.0\.100\.80: Flags \[S\]/);
    expect(lines[1]).toMatch(/^1733130000\.000500 IP 10\.0\.0\.7\.40000 > 192\.168\.10\.1\.80: Flags \[S\]/);
    expect(lines[2]).toMatch(
      /^1733130000\.001750 IP 192\.168\.10\.1\.80 > 10\.0\.0\.7\.40000: Flags \[S\.\]/,
    );
  });
});
