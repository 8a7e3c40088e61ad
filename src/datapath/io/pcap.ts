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
 *
 * The second half of the file is pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html),
 * the format of `lvsadm --trace` (src/control/observe/trace.ts): a Section Header Block, one
 * Interface Description Block per link (`if_name`, `if_tsresol` 6: microseconds) and Enhanced
 * Packet Blocks whose `epb_flags` carry the direction (inbound 1, outbound 2), so one file holds
 * every link and both directions. Blocks are written little-endian, bodies padded to 32 bits.
 * `readPcapng` parses such a file back (tests and tools).
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

// ---- pcapng ----

export const PCAPNG_BLOCK_SHB = 0x0a0d0d0a;
export const PCAPNG_BLOCK_IDB = 0x00000001;
export const PCAPNG_BLOCK_EPB = 0x00000006;
export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** opt_endofopt, opt_comment (every block). */
export const PCAPNG_OPT_ENDOFOPT = 0;
export const PCAPNG_OPT_COMMENT = 1;
/** Section Header Block options. */
export const PCAPNG_SHB_HARDWARE = 2;
export const PCAPNG_SHB_OS = 3;
export const PCAPNG_SHB_USERAPPL = 4;
/** Interface Description Block options. */
export const PCAPNG_IF_NAME = 2;
export const PCAPNG_IF_TSRESOL = 9;
/** Enhanced Packet Block options. */
export const PCAPNG_EPB_FLAGS = 2;
/** epb_flags bits 0-1: the direction. */
export const EPB_DIR_INBOUND = 1;
export const EPB_DIR_OUTBOUND = 2;
/**
 * Bytes of an Enhanced Packet Block besides its padded packet data: the 28-byte header, the
 * epb_flags option (8), opt_endofopt (4) and the trailing length (4).
 */
export const PCAPNG_EPB_OVERHEAD = 44;

const utf8 = new TextEncoder();

function pad4(n: number): number {
  return (n + 3) & ~3;
}

interface BlockOption {
  code: number;
  value: Uint8Array;
}

function textOption(code: number, text: string): BlockOption {
  return { code, value: utf8.encode(text) };
}

/** A block: type, total length, body, options (with opt_endofopt when there are any), total length. */
function block(type: number, body: Uint8Array, options: readonly BlockOption[]): Uint8Array {
  let optLen = 0;
  for (const o of options) optLen += 4 + pad4(o.value.length);
  if (options.length > 0) optLen += 4;
  const total = 12 + pad4(body.length) + optLen;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, type, true);
  dv.setUint32(4, total, true);
  out.set(body, 8);
  let o = 8 + pad4(body.length);
  for (const opt of options) {
    dv.setUint16(o, opt.code, true);
    dv.setUint16(o + 2, opt.value.length, true);
    out.set(opt.value, o + 4);
    o += 4 + pad4(opt.value.length);
  }
  if (options.length > 0) o += 4; // opt_endofopt: code 0, length 0 (already zero)
  dv.setUint32(o, total, true);
  return out;
}

export interface PcapngSectionOptions {
  /** shb_userappl: the program that wrote the file. */
  userAppl?: string;
  /** shb_os. */
  os?: string;
  /** shb_hardware. */
  hardware?: string;
}

/** A Section Header Block, version 1.0, section length unknown (-1). */
export function pcapngSectionHeader(opts: PcapngSectionOptions = {}): Uint8Array {
  const body = new Uint8Array(16);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, PCAPNG_BYTE_ORDER_MAGIC, true);
  dv.setUint16(4, 1, true);
  dv.setUint16(6, 0, true);
  dv.setInt32(8, -1, true); // section length -1 (64 bits): not given
  dv.setInt32(12, -1, true);
  const options: BlockOption[] = [];
  if (opts.hardware !== undefined) options.push(textOption(PCAPNG_SHB_HARDWARE, opts.hardware));
  if (opts.os !== undefined) options.push(textOption(PCAPNG_SHB_OS, opts.os));
  if (opts.userAppl !== undefined) options.push(textOption(PCAPNG_SHB_USERAPPL, opts.userAppl));
  return block(PCAPNG_BLOCK_SHB, body, options);
}

export interface PcapngInterfaceOptions {
  /** if_name: the link's name. */
  name?: string;
  /** Default LINKTYPE_ETHERNET. */
  linkType?: number;
  /** Default 262144 (0 would mean no limit). */
  snaplen?: number;
}

/** An Interface Description Block with if_name and if_tsresol 6 (timestamps in microseconds). */
export function pcapngInterfaceBlock(opts: PcapngInterfaceOptions = {}): Uint8Array {
  const body = new Uint8Array(8);
  const dv = new DataView(body.buffer);
  dv.setUint16(0, opts.linkType ?? LINKTYPE_ETHERNET, true);
  dv.setUint16(2, 0, true); // reserved
  dv.setUint32(4, opts.snaplen ?? 262144, true);
  const options: BlockOption[] = [];
  if (opts.name !== undefined) options.push(textOption(PCAPNG_IF_NAME, opts.name));
  options.push({ code: PCAPNG_IF_TSRESOL, value: Uint8Array.of(6) });
  return block(PCAPNG_BLOCK_IDB, body, options);
}

/** Total length of an Enhanced Packet Block (as writePcapngPacket writes it) holding `capLen` bytes. */
export function pcapngPacketLength(capLen: number): number {
  return PCAPNG_EPB_OVERHEAD + pad4(capLen);
}

/**
 * Write an Enhanced Packet Block at `dst[o]`: interface `ifId`, timestamp `tsUs` (microseconds
 * since the epoch), `capLen` bytes of `data` from `dataOff`, `origLen` on the wire, and epb_flags
 * `flags` (EPB_DIR_INBOUND / EPB_DIR_OUTBOUND). `dst` needs pcapngPacketLength(capLen) bytes from
 * `o`; returns that length. Padding bytes are written as zeros.
 */
export function writePcapngPacket(
  dst: Buffer,
  o: number,
  ifId: number,
  tsUs: number,
  flags: number,
  data: Uint8Array,
  dataOff: number,
  capLen: number,
  origLen: number,
): number {
  const total = PCAPNG_EPB_OVERHEAD + pad4(capLen);
  const us = tsUs > 0 ? Math.floor(tsUs) : 0;
  dst.writeUInt32LE(PCAPNG_BLOCK_EPB, o);
  dst.writeUInt32LE(total, o + 4);
  dst.writeUInt32LE(ifId, o + 8);
  dst.writeUInt32LE(Math.floor(us / 0x100000000) >>> 0, o + 12);
  dst.writeUInt32LE(us % 0x100000000, o + 16);
  dst.writeUInt32LE(capLen, o + 20);
  dst.writeUInt32LE(origLen, o + 24);
  dst.set(data.subarray(dataOff, dataOff + capLen), o + 28);
  let p = o + 28 + capLen;
  const padded = o + 28 + pad4(capLen);
  while (p < padded) dst[p++] = 0;
  dst.writeUInt16LE(PCAPNG_EPB_FLAGS, p);
  dst.writeUInt16LE(4, p + 2);
  dst.writeUInt32LE(flags >>> 0, p + 4);
  dst.writeUInt32LE(0, p + 8); // opt_endofopt
  dst.writeUInt32LE(total, p + 12);
  return total;
}

/**
 * A pcapng capture built in memory (tests and tools): a section header, interfaces added with
 * `addInterface` before their packets, packets with a direction.
 */
export class PcapngWriter {
  private readonly blocks: Uint8Array[] = [];
  private interfaces = 0;
  private bytes = 0;
  private count = 0;
  readonly snaplen: number;

  constructor(opts: PcapngSectionOptions & { snaplen?: number } = {}) {
    this.snaplen = opts.snaplen ?? 262144;
    const { snaplen: _s, ...shb } = opts;
    this.push(pcapngSectionHeader(shb));
  }

  private push(b: Uint8Array): void {
    this.blocks.push(b);
    this.bytes += b.length;
  }

  /** Describe one more interface; returns its id (0, 1, ...). */
  addInterface(name: string, linkType = LINKTYPE_ETHERNET): number {
    this.push(pcapngInterfaceBlock({ name, linkType, snaplen: this.snaplen }));
    return this.interfaces++;
  }

  /** Append one frame seen at `tMs` (ms since the epoch) on interface `ifId`, in direction `flags`. */
  append(ifId: number, frame: Uint8Array, tMs: number, flags: number): void {
    if (!Number.isInteger(ifId) || ifId < 0 || ifId >= this.interfaces)
      throw new RangeError(`pcapng: no interface ${ifId} described yet`);
    const cap = Math.min(frame.length, this.snaplen);
    const b = Buffer.alloc(pcapngPacketLength(cap));
    writePcapngPacket(b, 0, ifId, Math.round(tMs * 1000), flags, frame, 0, cap, frame.length);
    this.push(b);
    this.count++;
  }

  /** Packets appended so far. */
  get packets(): number {
    return this.count;
  }

  /** Size in bytes of the file `toBuffer` would return now. */
  get size(): number {
    return this.bytes;
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.blocks, this.bytes);
  }
}

/** One option of a block as read: its code and raw value. */
export interface PcapngOption {
  code: number;
  value: Uint8Array;
}

export interface PcapngInterface {
  linkType: number;
  snaplen: number;
  /** if_name, when present. */
  name: string | undefined;
  /** if_tsresol's exponent of 10 (6 when absent). */
  tsresol: number;
  options: PcapngOption[];
}

export interface PcapngPacket {
  ifId: number;
  /** Timestamp in microseconds since the epoch (for an if_tsresol of 6). */
  tsUs: number;
  capLen: number;
  origLen: number;
  data: Uint8Array;
  /** epb_flags, when present. */
  flags: number | undefined;
  options: PcapngOption[];
}

export interface PcapngFile {
  /** Section Header Blocks: version and options. */
  sections: { major: number; minor: number; littleEndian: boolean; options: PcapngOption[] }[];
  interfaces: PcapngInterface[];
  packets: PcapngPacket[];
  /** Types of blocks read but not interpreted. */
  otherBlocks: number[];
}

/**
 * Parse a pcapng file: every block's length (at least 12, a multiple of 4, the same at both ends),
 * the padding of bodies to 32 bits and the option lists are checked; a malformed file throws an
 * Error that says where. Interfaces are numbered per section, as the format does. Tool code.
 */
export function readPcapng(buf: Uint8Array): PcapngFile {
  const out: PcapngFile = { sections: [], interfaces: [], packets: [], otherBlocks: [] };
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let le = true;
  let o = 0;
  const fail = (msg: string): never => {
    throw new Error(`pcapng: block at ${o}: ${msg}`);
  };
  while (o < buf.length) {
    if (o + 12 > buf.length) fail("truncated block header");
    let type = dv.getUint32(o, le);
    if (o === 0 && dv.getUint32(0, true) !== PCAPNG_BLOCK_SHB) fail("not pcapng (no Section Header Block)");
    if (dv.getUint32(o, true) === PCAPNG_BLOCK_SHB) {
      const magic = dv.getUint32(o + 8, true);
      if (magic === PCAPNG_BYTE_ORDER_MAGIC) le = true;
      else if (magic === 0x4d3c2b1a) le = false;
      else fail(`bad byte-order magic 0x${magic.toString(16)}`);
      type = PCAPNG_BLOCK_SHB;
    }
    const total = dv.getUint32(o + 4, le);
    if (total < 12 || total % 4 !== 0) fail(`block length ${total} is not a multiple of 4 of at least 12`);
    if (o + total > buf.length) fail(`block length ${total} runs past the end of the file`);
    if (dv.getUint32(o + total - 4, le) !== total) fail("trailing block length differs from the leading one");
    const body = o + 8;
    const end = o + total - 4;
    const opts = (from: number): PcapngOption[] => readOptions(dv, buf, from, end, le, fail);
    if (type === PCAPNG_BLOCK_SHB) {
      if (total < 28) fail("Section Header Block too short");
      out.sections.push({
        major: dv.getUint16(body + 4, le),
        minor: dv.getUint16(body + 6, le),
        littleEndian: le,
        options: opts(body + 16),
      });
      out.interfaces = []; // interface ids restart with each section
    } else if (type === PCAPNG_BLOCK_IDB) {
      if (total < 20) fail("Interface Description Block too short");
      const options = opts(body + 8);
      const nameOpt = options.find((x) => x.code === PCAPNG_IF_NAME);
      const res = options.find((x) => x.code === PCAPNG_IF_TSRESOL);
      out.interfaces.push({
        linkType: dv.getUint16(body, le),
        snaplen: dv.getUint32(body + 4, le),
        name: nameOpt ? new TextDecoder().decode(nameOpt.value) : undefined,
        tsresol: res ? res.value[0]! : 6,
        options,
      });
    } else if (type === PCAPNG_BLOCK_EPB) {
      if (total < 32) fail("Enhanced Packet Block too short");
      const ifId = dv.getUint32(body, le);
      if (ifId >= out.interfaces.length) fail(`packet on interface ${ifId}, which is not described`);
      const capLen = dv.getUint32(body + 12, le);
      const data = body + 20;
      if (data + pad4(capLen) > end) fail(`captured length ${capLen} runs past the block`);
      for (let p = data + capLen; p < data + pad4(capLen); p++) if (buf[p] !== 0) fail("non-zero padding");
      const options = opts(data + pad4(capLen));
      const fl = options.find((x) => x.code === PCAPNG_EPB_FLAGS);
      if (fl && fl.value.length !== 4) fail("epb_flags is not 4 bytes");
      out.packets.push({
        ifId,
        tsUs: dv.getUint32(body + 4, le) * 0x100000000 + dv.getUint32(body + 8, le),
        capLen,
        origLen: dv.getUint32(body + 16, le),
        data: Uint8Array.from(buf.subarray(data, data + capLen)),
        flags: fl ? new DataView(fl.value.buffer, fl.value.byteOffset, 4).getUint32(0, le) : undefined,
        options,
      });
    } else {
      out.otherBlocks.push(type);
    }
    o += total;
  }
  return out;
}

/** The options from `o` to `end`: each padded to 32 bits, ending with opt_endofopt or the block. */
function readOptions(
  dv: DataView,
  buf: Uint8Array,
  o: number,
  end: number,
  le: boolean,
  fail: (msg: string) => never,
): PcapngOption[] {
  const out: PcapngOption[] = [];
  while (o < end) {
    if (o + 4 > end) fail("truncated option");
    const code = dv.getUint16(o, le);
    const len = dv.getUint16(o + 2, le);
    if (code === PCAPNG_OPT_ENDOFOPT) {
      if (len !== 0) fail("opt_endofopt with a length");
      if (o + 4 !== end) fail("bytes after opt_endofopt");
      return out;
    }
    if (o + 4 + pad4(len) > end) fail(`option ${code} of ${len} bytes runs past the block`);
    for (let p = o + 4 + len; p < o + 4 + pad4(len); p++) if (buf[p] !== 0) fail("non-zero option padding");
    out.push({ code, value: Uint8Array.from(buf.subarray(o + 4, o + 4 + len)) });
    o += 4 + pad4(len);
  }
  return out;
}
