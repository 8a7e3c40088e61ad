/**
 * Capture output in the classic libpcap format (https://www.tcpdump.org/manpages/pcap-savefile.5.html),
 * readable by tcpdump, Wireshark and `src/tools/schedbench/pcap.ts`:
 *
 *   global header (24 bytes): magic 0xa1b2c3d4 (microsecond timestamps), version 2.4, thiszone 0,
 *     sigfigs 0, snaplen, link type (LINKTYPE_ETHERNET = 1 for our frames);
 *   then per frame a 16-byte record header (ts_sec, ts_usec, incl_len, orig_len) and incl_len bytes.
 *
 * Fields are written little-endian; readers tell the byte order from the magic. Frames longer
 * than `snaplen` are cut to it (orig_len keeps the real length), as a capture would.
 *
 * `PcapTap` wraps any link backend (TAP, AF_PACKET, in-memory) and records what it receives and
 * sends, so a director run can be looked at with tcpdump (smoltcp's pcap-writer device wrapper).
 *
 * Tool and test code: it allocates (a copy of every frame) and must not wrap links on a
 * production data path that cares about allocation.
 */

import { writeFileSync } from "node:fs";
import type { FrameBatch } from "./batch.js";
import type { LinkIo, LinkStats } from "./link.js";

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const PCAP_GLOBAL_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;
/** IEEE 802.3 Ethernet (the DLT_EN10MB of tcpdump's "link-type EN10MB"). */
export const LINKTYPE_ETHERNET = 1;
export const PCAP_DEFAULT_SNAPLEN = 65535;

export interface PcapWriterOptions {
  /** Largest number of bytes kept per frame (default 65535). */
  snaplen?: number;
  /** Link type of every record (default LINKTYPE_ETHERNET). */
  linkType?: number;
}

export class PcapWriter {
  readonly snaplen: number;
  readonly linkType: number;
  private readonly records: Uint8Array[] = [];
  private bytes = PCAP_GLOBAL_HEADER_LEN;

  constructor(opts: PcapWriterOptions = {}) {
    this.snaplen = opts.snaplen ?? PCAP_DEFAULT_SNAPLEN;
    this.linkType = opts.linkType ?? LINKTYPE_ETHERNET;
    if (!Number.isInteger(this.snaplen) || this.snaplen < 1 || this.snaplen > 0x7fffffff) {
      throw new RangeError(`pcap snaplen must be an integer from 1 to 2^31-1, not ${this.snaplen}`);
    }
  }

  /** Frames appended so far. */
  get packets(): number {
    return this.records.length;
  }

  /** Size in bytes of the file `toBuffer` would return now. */
  get size(): number {
    return this.bytes;
  }

  /**
   * Append one frame seen at `tMs` milliseconds (any origin, fractions kept to the microsecond;
   * negative times are written as 0). The frame is copied.
   */
  append(frame: Uint8Array, tMs: number): void {
    const incl = Math.min(frame.length, this.snaplen);
    const rec = new Uint8Array(PCAP_RECORD_HEADER_LEN + incl);
    const dv = new DataView(rec.buffer);
    const us = Math.max(0, Math.round(tMs * 1000));
    dv.setUint32(0, Math.floor(us / 1e6) >>> 0, true);
    dv.setUint32(4, us % 1e6, true);
    dv.setUint32(8, incl, true);
    dv.setUint32(12, frame.length, true);
    rec.set(frame.subarray(0, incl), PCAP_RECORD_HEADER_LEN);
    this.records.push(rec);
    this.bytes += rec.length;
  }

  /** The capture file: global header and every record appended so far. */
  toBuffer(): Buffer {
    const out = Buffer.alloc(this.bytes);
    out.writeUInt32LE(PCAP_MAGIC_US, 0);
    out.writeUInt16LE(PCAP_VERSION_MAJOR, 4);
    out.writeUInt16LE(PCAP_VERSION_MINOR, 6);
    out.writeInt32LE(0, 8); // thiszone: timestamps are UTC
    out.writeUInt32LE(0, 12); // sigfigs
    out.writeUInt32LE(this.snaplen, 16);
    out.writeUInt32LE(this.linkType, 20);
    let o = PCAP_GLOBAL_HEADER_LEN;
    for (const r of this.records) {
      out.set(r, o);
      o += r.length;
    }
    return out;
  }

  /** Write the capture to `path` (replacing it); returns the number of bytes written. */
  writeFile(path: string): number {
    const b = this.toBuffer();
    writeFileSync(path, b);
    return b.length;
  }
}

/**
 * A link backend that records every frame it receives and sends into a PcapWriter, timestamped
 * by `now()` (ms), and otherwise behaves as the link it wraps. Several taps may share a writer
 * to get one capture of all links in the order the director moved the frames.
 */
export class PcapTap implements LinkIo {
  readonly inner: LinkIo;
  readonly writer: PcapWriter;
  private readonly now: () => number;

  constructor(inner: LinkIo, writer: PcapWriter, now: () => number = Date.now) {
    this.inner = inner;
    this.writer = writer;
    this.now = now;
  }

  get name(): string {
    return this.inner.name;
  }
  get mac(): Uint8Array {
    return this.inner.mac;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get stats(): LinkStats {
    return this.inner.stats;
  }

  recv(batch: FrameBatch, linkId: number): number {
    const first = batch.count;
    const n = this.inner.recv(batch, linkId);
    const t = this.now();
    for (let i = first; i < batch.count; i++) this.writer.append(framePart(batch, i), t);
    return n;
  }

  send(batch: FrameBatch, linkId: number): number {
    const t = this.now();
    for (let i = 0; i < batch.count; i++) {
      if (batch.egress[i] === linkId) this.writer.append(framePart(batch, i), t);
    }
    return this.inner.send(batch, linkId);
  }

  onReadable(cb: (() => void) | null): void {
    this.inner.onReadable(cb);
  }

  close(): void {
    this.inner.close();
  }
}

/** Frame i of a batch as a view (append copies it). */
function framePart(batch: FrameBatch, i: number): Uint8Array {
  const o = batch.off[i]!;
  return batch.buf.subarray(o, o + batch.len[i]!);
}
