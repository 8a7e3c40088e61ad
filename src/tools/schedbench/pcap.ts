/**
 * A reader for classic libpcap capture files (not pcapng), enough to replay the connections of a
 * capture through the scheduler simulator: every TCP SYN (without ACK) and the first packet of
 * every UDP flow become an arrival at its capture timestamp.
 *
 * File layout (https://www.tcpdump.org/manpages/pcap-savefile.5.html): a 24-byte global header —
 * magic 0xa1b2c3d4 (microsecond timestamps) or 0xa1b23c4d (nanosecond), written in the capturing
 * host's byte order, so a swapped magic means big/little-endian swapped fields; version 2.4;
 * thiszone, sigfigs, snaplen; link type (low 16 bits) — then records of a 16-byte header
 * (ts_sec, ts_frac, incl_len, orig_len) followed by incl_len bytes.
 *
 * Link types: Ethernet (1, with 802.1Q/802.1ad tags skipped), raw IPv4 (101, 228), Linux cooked
 * capture v1 (113) and v2 (276, what `tcpdump -i any` writes). Only IPv4 is decoded; other frames
 * are counted and skipped. A truncated file is an error (PcapError) naming the offset and record.
 */

import { readFileSync } from "node:fs";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
/** Larger records than this are taken as corruption (libpcap's own limit is 256 KiB for most links). */
const MAX_RECORD = 256 * 1024;

const ETH_P_IP = 0x0800;
const ETH_P_8021Q = 0x8100;
const ETH_P_8021AD = 0x88a8;
const TCP_SYN = 0x02;
const TCP_ACK = 0x10;

export type PcapErrorCode =
  | "PCAP_BAD_MAGIC"
  | "PCAP_TRUNCATED"
  | "PCAP_LINKTYPE"
  | "PCAP_BAD_RECORD"
  | "PCAP_READ";

export class PcapError extends Error {
  readonly code: PcapErrorCode;
  readonly file: string;
  constructor(code: PcapErrorCode, file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = "PcapError";
    this.code = code;
    this.file = file;
  }
}

/** One new connection found in a capture. */
export interface PcapArrival {
  /** Milliseconds since the first packet of the capture. */
  readonly tMs: number;
  readonly saddr: number;
  readonly daddr: number;
  readonly sport: number;
  readonly dport: number;
  readonly proto: number;
}

export interface PcapStats {
  readonly linkType: number;
  readonly nanosecond: boolean;
  packets: number;
  ipv4: number;
  tcpSyn: number;
  /** Retransmitted SYNs of a connection already counted. */
  synRetransmits: number;
  udpFlows: number;
  /** Frames that are not IPv4 (ARP, IPv6, ...). */
  notIPv4: number;
  /** IPv4 packets cut short by the snap length or malformed (header beyond the captured bytes). */
  short: number;
  /** Non-first IP fragments (no ports). */
  fragments: number;
  /** Other IP protocols (ICMP, ...). */
  otherProto: number;
}

export interface PcapFlows {
  readonly arrivals: PcapArrival[];
  readonly stats: PcapStats;
  /** Capture span from the first to the last packet, ms. */
  readonly spanMs: number;
}

export interface PcapReadOptions {
  /** A SYN for a 4-tuple whose previous SYN is younger than this is a retransmission (ms). */
  synRetransmitMs?: number;
  /** A UDP flow idle longer than this starts a new flow (ms, IPVS's UDP timeout 300 s). */
  udpTimeoutMs?: number;
}

/** Read a capture file from disk; I/O errors become PcapError too. */
export function readPcapFile(path: string, opts: PcapReadOptions = {}): PcapFlows {
  let buf: Uint8Array;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new PcapError("PCAP_READ", path, `cannot read: ${err.code ?? err.message}`);
  }
  return parsePcap(buf, path, opts);
}

/** Parse capture bytes; `file` labels errors. */
export function parsePcap(buf: Uint8Array, file = "capture", opts: PcapReadOptions = {}): PcapFlows {
  const synRetransmitMs = opts.synRetransmitMs ?? 64_000;
  const udpTimeoutMs = opts.udpTimeoutMs ?? 300_000;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.byteLength < GLOBAL_HEADER) {
    throw new PcapError(
      "PCAP_TRUNCATED",
      file,
      `truncated global header (${buf.byteLength} of ${GLOBAL_HEADER} bytes): not a complete pcap file`,
    );
  }
  const magicBE = view.getUint32(0, false);
  const magicLE = view.getUint32(0, true);
  let le: boolean;
  let nano: boolean;
  if (magicLE === MAGIC_US || magicLE === MAGIC_NS) {
    le = true;
    nano = magicLE === MAGIC_NS;
  } else if (magicBE === MAGIC_US || magicBE === MAGIC_NS) {
    le = false;
    nano = magicBE === MAGIC_NS;
  } else {
    const hex = magicBE.toString(16).padStart(8, "0");
    const hint =
      hex === "0a0d0d0a" ? " (this is pcapng; convert with `editcap -F pcap in.pcapng out.pcap`)" : "";
    throw new PcapError("PCAP_BAD_MAGIC", file, `not a libpcap file: magic 0x${hex}${hint}`);
  }
  const linkType = view.getUint32(20, le) & 0xffff;
  let l3: (off: number, len: number) => number;
  switch (linkType) {
    case LINKTYPE_ETHERNET:
      l3 = (off, len) => {
        if (len < 14) return -1;
        let p = 12;
        let type = view.getUint16(off + p, false);
        while ((type === ETH_P_8021Q || type === ETH_P_8021AD) && p + 6 <= len) {
          p += 4;
          type = view.getUint16(off + p, false);
        }
        return type === ETH_P_IP ? p + 2 : -2;
      };
      break;
    case LINKTYPE_RAW:
    case LINKTYPE_IPV4:
      l3 = (off, len) => (len >= 1 && buf[off]! >> 4 === 4 ? 0 : -2);
      break;
    case LINKTYPE_LINUX_SLL:
      l3 = (off, len) => (len < 16 ? -1 : view.getUint16(off + 14, false) === ETH_P_IP ? 16 : -2);
      break;
    case LINKTYPE_LINUX_SLL2:
      l3 = (off, len) => (len < 20 ? -1 : view.getUint16(off, false) === ETH_P_IP ? 20 : -2);
      break;
    default:
      throw new PcapError(
        "PCAP_LINKTYPE",
        file,
        `link type ${linkType} is not supported (Ethernet 1, raw IP 101/228, Linux cooked 113/276 are)`,
      );
  }

  const stats: PcapStats = {
    linkType,
    nanosecond: nano,
    packets: 0,
    ipv4: 0,
    tcpSyn: 0,
    synRetransmits: 0,
    udpFlows: 0,
    notIPv4: 0,
    short: 0,
    fragments: 0,
    otherProto: 0,
  };
  const arrivals: PcapArrival[] = [];
  // 4-tuple → time of the last SYN; UDP 4-tuple (either direction) → time of the last packet.
  // String keys: this runs once per packet of a file, off any data path.
  const syns = new Map<string, number>();
  const udp = new Map<string, number>();
  let first = Number.NaN;
  let last = Number.NaN;
  let off = GLOBAL_HEADER;
  let rec = 0;
  while (off < buf.byteLength) {
    rec++;
    if (off + RECORD_HEADER > buf.byteLength) {
      throw new PcapError(
        "PCAP_TRUNCATED",
        file,
        `truncated record header at offset ${off} (record ${rec}: ${buf.byteLength - off} of ${RECORD_HEADER} bytes)`,
      );
    }
    const sec = view.getUint32(off, le);
    const frac = view.getUint32(off + 4, le);
    const incl = view.getUint32(off + 8, le);
    if (incl > MAX_RECORD) {
      throw new PcapError(
        "PCAP_BAD_RECORD",
        file,
        `record ${rec} at offset ${off} claims ${incl} bytes (corrupt file? limit ${MAX_RECORD})`,
      );
    }
    const data = off + RECORD_HEADER;
    if (data + incl > buf.byteLength) {
      throw new PcapError(
        "PCAP_TRUNCATED",
        file,
        `truncated packet data at offset ${data} (record ${rec}: header says ${incl} bytes, ${buf.byteLength - data} left)`,
      );
    }
    off = data + incl;
    stats.packets++;
    const tMs = sec * 1000 + (nano ? frac / 1e6 : frac / 1e3);
    if (Number.isNaN(first)) first = tMs;
    if (Number.isNaN(last) || tMs > last) last = tMs;

    const ip = l3(data, incl);
    if (ip === -2) {
      stats.notIPv4++;
      continue;
    }
    if (ip < 0) {
      stats.short++;
      continue;
    }
    const p = data + ip;
    const avail = incl - ip;
    if (avail < 20 || buf[p]! >> 4 !== 4) {
      if (avail >= 1 && buf[p]! >> 4 !== 4) stats.notIPv4++;
      else stats.short++;
      continue;
    }
    stats.ipv4++;
    const ihl = (buf[p]! & 0x0f) * 4;
    if (ihl < 20) {
      stats.short++;
      continue;
    }
    const fragOff = view.getUint16(p + 6, false) & 0x1fff;
    if (fragOff !== 0) {
      stats.fragments++;
      continue;
    }
    const proto = buf[p + 9]!;
    const saddr = view.getUint32(p + 12, false);
    const daddr = view.getUint32(p + 16, false);
    const l4 = p + ihl;
    const l4avail = avail - ihl;
    if (proto === IPPROTO_TCP) {
      if (l4avail < 14) {
        stats.short++;
        continue;
      }
      const flags = buf[l4 + 13]!;
      if ((flags & (TCP_SYN | TCP_ACK)) !== TCP_SYN) continue;
      const sport = view.getUint16(l4, false);
      const dport = view.getUint16(l4 + 2, false);
      const key = `${saddr}:${sport}>${daddr}:${dport}`;
      const prev = syns.get(key);
      syns.set(key, tMs);
      if (prev !== undefined && tMs - prev < synRetransmitMs) {
        stats.synRetransmits++;
        continue;
      }
      stats.tcpSyn++;
      arrivals.push({ tMs, saddr, daddr, sport, dport, proto });
    } else if (proto === IPPROTO_UDP) {
      if (l4avail < 4) {
        stats.short++;
        continue;
      }
      const sport = view.getUint16(l4, false);
      const dport = view.getUint16(l4 + 2, false);
      const key = `${saddr}:${sport}>${daddr}:${dport}`;
      const rkey = `${daddr}:${dport}>${saddr}:${sport}`;
      const prev = udp.get(key) ?? udp.get(rkey);
      // Both directions refresh the flow; only the forward key is stored for a new flow.
      if (prev !== undefined && tMs - prev <= udpTimeoutMs) {
        if (udp.has(key)) udp.set(key, tMs);
        else udp.set(rkey, tMs);
        continue;
      }
      udp.delete(rkey);
      udp.set(key, tMs);
      stats.udpFlows++;
      arrivals.push({ tMs, saddr, daddr, sport, dport, proto });
    } else {
      stats.otherProto++;
    }
  }
  const origin = Number.isNaN(first) ? 0 : first;
  // Records are usually in time order but need not be: sort (stable) by time from the first packet.
  const rebased = arrivals.map((a) => ({ ...a, tMs: Math.max(0, a.tMs - origin) }));
  rebased.sort((a, b) => a.tMs - b.tMs);
  return { arrivals: rebased, stats, spanMs: Number.isNaN(first) ? 0 : last - first };
}

/** Build classic pcap bytes (little-endian, microseconds) from frames; for tests and tooling. */
export function buildPcap(
  frames: readonly { readonly tMs: number; readonly data: Uint8Array; readonly origLen?: number }[],
  linkType = LINKTYPE_ETHERNET,
  snaplen = 65535,
): Uint8Array {
  let size = GLOBAL_HEADER;
  for (const f of frames) size += RECORD_HEADER + f.data.byteLength;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC_US, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true);
  v.setUint32(12, 0, true);
  v.setUint32(16, snaplen, true);
  v.setUint32(20, linkType, true);
  let off = GLOBAL_HEADER;
  for (const f of frames) {
    const us = Math.round(f.tMs * 1000);
    v.setUint32(off, Math.floor(us / 1e6), true);
    v.setUint32(off + 4, us % 1e6, true);
    v.setUint32(off + 8, f.data.byteLength, true);
    v.setUint32(off + 12, f.origLen ?? f.data.byteLength, true);
    out.set(f.data, off + RECORD_HEADER);
    off += RECORD_HEADER + f.data.byteLength;
  }
  return out;
}
