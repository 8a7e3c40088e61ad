/**
 * parseFrame: validate an Ethernet frame once and fill a reused FrameView with absolute
 * offsets and header fields. After PARSE_OK every offset in the view lies inside the frame, so
 * accessors and rewrites need no further bounds checks.
 *
 * Formats and the RFCs they come from:
 * - Ethernet II, one IEEE 802.1Q tag (TPID 0x8100) at most.
 * - ARP, RFC 826: only hardware type 1 (Ethernet, 6-byte addresses) with protocol IPv4 (4 bytes).
 * - IPv4, RFC 791: version 4, IHL >= 5, total length within the frame (Ethernet padding beyond
 *   it is allowed), header checksum verified, options walked (EOL / NOP / TLV with a length
 *   byte >= 2 that stays inside the header). Fragments (RFC 791 section 3.2): the first fragment
 *   (MF set, offset 0) carries the L4 header; a later fragment (offset > 0) has none.
 * - TCP, RFC 9293: data offset >= 5 words and inside the segment; on SYN segments the options
 *   are walked for MSS (kind 2, length 4). A malformed option list stops the walk, it does not
 *   fail the parse: the end host decides what to do with it.
 * - UDP, RFC 768: length field >= 8 and <= the bytes present. In a first fragment the length
 *   covers the reassembled datagram, so only the lower bound is checked there.
 * - ICMP, RFC 792: echo / echo reply carry the identifier (put in sport and dport); errors
 *   (3, 4, 5, 11, 12) embed the offending IP header and at least 8 bytes of its payload
 *   (RFC 1812 4.3.2.3 asks routers for as much as fits in 576 bytes).
 *
 * L4 checksums are NOT verified here. That would cost a pass over every payload byte on the hot
 * path for no benefit: the director rewrites headers with incremental updates (RFC 1624), which
 * carry a wrong checksum through as wrong, so the end host still detects the corruption and
 * drops the segment. `checkL4Checksum` does the full check for tests and slow paths.
 *
 * `payloadOff` is the first byte after the TCP/UDP/ICMP header; for a later fragment or another
 * IP protocol (no L4 header parsed) it is the first byte after the IP header; 0 for ARP / L2_OTHER.
 *
 * Per-packet path: no allocation, no closures, no strings, no exceptions; statuses are numbers.
 */
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import { csumAdd, csumFold16, csumReplace16, csumReplace32, pseudoHeaderSum } from "./checksum.js";
import {
  ETH_HLEN,
  ETH_P_8021Q,
  ETH_P_ARP,
  ETH_P_IP,
  type FrameView,
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  ICMP_PARAMETERPROB,
  ICMP_REDIRECT,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
  ParseStatus,
  TCP_SYN,
  VLAN_HLEN,
} from "./view.js";

/** Minimum header sizes. */
export const ARP_LEN = 28;
export const IPV4_MIN_HLEN = 20;
export const TCP_MIN_HLEN = 20;
export const UDP_HLEN = 8;
export const ICMP_HLEN = 8;

/** IPv4 option kinds (RFC 791). */
const IPOPT_EOL = 0;
const IPOPT_NOP = 1;
/** TCP option kinds (RFC 9293). */
const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_MSS = 2;

/** 1 for ICMP types that carry an embedded IP header (RFC 792), else 0. */
export function isIcmpErrorType(type: number): number {
  return type === ICMP_DEST_UNREACH ||
    type === ICMP_SOURCE_QUENCH ||
    type === ICMP_REDIRECT ||
    type === ICMP_TIME_EXCEEDED ||
    type === ICMP_PARAMETERPROB
    ? 1
    : 0;
}

/**
 * Parse the frame `buf[off, off+len)`; `dv` must view the same memory as `buf` with the same
 * indexing (build it from `buf.buffer, buf.byteOffset, buf.byteLength`). Returns a ParseStatus;
 * on anything but OK the view is only partly filled (fields past the failing layer keep their
 * reset values).
 *
 * Status per truncation point: fewer than 14 bytes ETH_SHORT; a VLAN tag cut short VLAN_SHORT;
 * IPv4 header cut short IP_SHORT; total length beyond the frame IP_BAD_TOTLEN; L4 header cut short
 * (inside the IP total length) TCP_SHORT / UDP_SHORT / ICMP_SHORT.
 */
export function parseFrame(buf: Uint8Array, dv: DataView, off: number, len: number, v: FrameView): number {
  v.buf = buf;
  v.dv = dv;
  v.base = off;
  v.len = len;
  // Reset everything a previous frame may have set.
  v.vlanTci = -1;
  v.etherType = 0;
  v.l3Off = off + ETH_HLEN;
  v.arpOp = 0;
  v.arpSpa = 0;
  v.arpTpa = 0;
  v.ipHdrLen = 0;
  v.ipTotalLen = 0;
  v.proto = 0;
  v.saddr = 0;
  v.daddr = 0;
  v.ttl = 0;
  v.ipId = 0;
  v.df = 0;
  v.mf = 0;
  v.fragOff = 0;
  v.laterFrag = 0;
  v.isFrag = 0;
  v.l4Off = -1;
  v.l4Len = 0;
  v.sport = 0;
  v.dport = 0;
  v.tcpFlags = 0;
  v.tcpHdrLen = 0;
  v.mss = -1;
  v.payloadOff = 0;
  v.icmpType = -1;
  v.icmpCode = -1;
  v.innerL3Off = -1;
  v.innerHdrLen = 0;
  v.innerProto = 0;
  v.innerSaddr = 0;
  v.innerDaddr = 0;
  v.innerSport = 0;
  v.innerDport = 0;
  v.innerL4Off = -1;

  if (len < ETH_HLEN || off < 0 || off + len > buf.length) return ParseStatus.ETH_SHORT;
  const end = off + len;
  let et = dv.getUint16(off + 12);
  let l3 = off + ETH_HLEN;
  if (et === ETH_P_8021Q) {
    if (len < ETH_HLEN + VLAN_HLEN) return ParseStatus.VLAN_SHORT;
    v.vlanTci = dv.getUint16(off + 14);
    et = dv.getUint16(off + 16);
    l3 += VLAN_HLEN;
  }
  v.etherType = et;
  v.l3Off = l3;
  if (et === ETH_P_IP) return parseIpv4(buf, dv, l3, end, v);
  if (et === ETH_P_ARP) return parseArp(dv, l3, end, v);
  return ParseStatus.L2_OTHER;
}

function parseArp(dv: DataView, l3: number, end: number, v: FrameView): number {
  if (end - l3 < ARP_LEN) return ParseStatus.ARP_SHORT;
  // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
  if (dv.getUint16(l3) !== 1 || dv.getUint16(l3 + 2) !== ETH_P_IP || dv.getUint16(l3 + 4) !== 0x0604) {
    return ParseStatus.ARP_UNSUPPORTED;
  }
  v.arpOp = dv.getUint16(l3 + 6);
  v.arpSpa = dv.getUint32(l3 + 14);
  v.arpTpa = dv.getUint32(l3 + 24);
  return ParseStatus.OK;
}

function parseIpv4(buf: Uint8Array, dv: DataView, l3: number, end: number, v: FrameView): number {
  const avail = end - l3;
  if (avail < IPV4_MIN_HLEN) return ParseStatus.IP_SHORT;
  const b0 = buf[l3]!;
  if (b0 >>> 4 !== 4) return ParseStatus.IP_BAD_VERSION;
  const hl = (b0 & 0x0f) << 2;
  if (hl < IPV4_MIN_HLEN) return ParseStatus.IP_BAD_IHL;
  if (hl > avail) return ParseStatus.IP_SHORT;
  const tot = dv.getUint16(l3 + 2);
  if (tot < hl || tot > avail) return ParseStatus.IP_BAD_TOTLEN;
  // A valid header sums to 0xffff (its checksum is the complement of the rest).
  if (csumFold16(csumAdd(buf, l3, hl, 0)) !== 0xffff) return ParseStatus.IP_BAD_CSUM;
  if (hl > IPV4_MIN_HLEN && checkIpOptions(buf, l3 + IPV4_MIN_HLEN, l3 + hl) === 0) {
    return ParseStatus.IP_BAD_OPTIONS;
  }

  v.ipHdrLen = hl;
  v.ipTotalLen = tot;
  v.ipId = dv.getUint16(l3 + 4);
  const frag = dv.getUint16(l3 + 6);
  v.df = (frag >>> 14) & 1;
  const mf = (frag >>> 13) & 1;
  const fragOff = frag & 0x1fff;
  v.mf = mf;
  v.fragOff = fragOff;
  v.isFrag = mf | (fragOff !== 0 ? 1 : 0);
  v.ttl = buf[l3 + 8]!;
  const proto = buf[l3 + 9]!;
  v.proto = proto;
  v.saddr = dv.getUint32(l3 + 12);
  v.daddr = dv.getUint32(l3 + 16);

  const l4 = l3 + hl;
  const l4Len = tot - hl;
  v.l4Len = l4Len;
  v.payloadOff = l4;
  if (fragOff !== 0) {
    v.laterFrag = 1;
    return ParseStatus.OK;
  }
  if (proto === IPPROTO_TCP) return parseTcp(buf, dv, l4, l4Len, v);
  if (proto === IPPROTO_UDP) return parseUdp(dv, l4, l4Len, mf, v);
  if (proto === IPPROTO_ICMP) return parseIcmp(buf, dv, l4, l4Len, v);
  return ParseStatus.OK;
}

/** Walk IPv4 options in [i, end). Returns 1 when well formed, 0 otherwise. */
function checkIpOptions(buf: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const kind = buf[i]!;
    if (kind === IPOPT_EOL) return 1;
    if (kind === IPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return 0;
    const olen = buf[i + 1]!;
    if (olen < 2 || i + olen > end) return 0;
    i += olen;
  }
  return 1;
}

function parseTcp(buf: Uint8Array, dv: DataView, l4: number, l4Len: number, v: FrameView): number {
  if (l4Len < TCP_MIN_HLEN) return ParseStatus.TCP_SHORT;
  const doff = (buf[l4 + 12]! >>> 4) << 2;
  if (doff < TCP_MIN_HLEN || doff > l4Len) return ParseStatus.TCP_BAD_DOFF;
  v.l4Off = l4;
  v.sport = dv.getUint16(l4);
  v.dport = dv.getUint16(l4 + 2);
  const flags = buf[l4 + 13]!;
  v.tcpFlags = flags;
  v.tcpHdrLen = doff;
  v.payloadOff = l4 + doff;
  // MSS is only meaningful on SYN segments (RFC 9293 3.7.1): skip the walk on the others.
  if ((flags & TCP_SYN) !== 0 && doff > TCP_MIN_HLEN) v.mss = findMss(buf, dv, l4 + TCP_MIN_HLEN, l4 + doff);
  return ParseStatus.OK;
}

/**
 * Offset of the MSS option's 4 bytes in the TCP options [i, end), or -1. A malformed list
 * (length byte < 2 or running past the header) ends the walk.
 */
export function findMssOption(buf: Uint8Array, i: number, end: number): number {
  while (i < end) {
    const kind = buf[i]!;
    if (kind === TCPOPT_EOL) return -1;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return -1;
    const olen = buf[i + 1]!;
    if (olen < 2 || i + olen > end) return -1;
    if (kind === TCPOPT_MSS && olen === 4) return i;
    i += olen;
  }
  return -1;
}

function findMss(buf: Uint8Array, dv: DataView, i: number, end: number): number {
  const o = findMssOption(buf, i, end);
  return o < 0 ? -1 : dv.getUint16(o + 2);
}

function parseUdp(dv: DataView, l4: number, l4Len: number, mf: number, v: FrameView): number {
  if (l4Len < UDP_HLEN) return ParseStatus.UDP_SHORT;
  const ulen = dv.getUint16(l4 + 4);
  // In a first fragment the UDP length covers the whole datagram, not just this fragment.
  if (ulen < UDP_HLEN || (mf === 0 && ulen > l4Len)) return ParseStatus.UDP_BAD_LEN;
  v.l4Off = l4;
  v.sport = dv.getUint16(l4);
  v.dport = dv.getUint16(l4 + 2);
  v.payloadOff = l4 + UDP_HLEN;
  return ParseStatus.OK;
}

function parseIcmp(buf: Uint8Array, dv: DataView, l4: number, l4Len: number, v: FrameView): number {
  if (l4Len < ICMP_HLEN) return ParseStatus.ICMP_SHORT;
  const type = buf[l4]!;
  v.l4Off = l4;
  v.icmpType = type;
  v.icmpCode = buf[l4 + 1]!;
  v.payloadOff = l4 + ICMP_HLEN;
  if (type === ICMP_ECHO || type === ICMP_ECHOREPLY) {
    const id = dv.getUint16(l4 + 4);
    v.sport = id;
    v.dport = id;
    return ParseStatus.OK;
  }
  if (isIcmpErrorType(type) === 0) return ParseStatus.OK;

  // Embedded IP header: must be a whole IPv4 header. ICMP_INNER_SHORT covers both "too short"
  // and "not a usable IPv4 header" (version / IHL): either way nothing can be matched on it.
  const in3 = l4 + ICMP_HLEN;
  const avail = l4Len - ICMP_HLEN;
  if (avail < IPV4_MIN_HLEN) return ParseStatus.ICMP_INNER_SHORT;
  const b0 = buf[in3]!;
  const ihl = (b0 & 0x0f) << 2;
  if (b0 >>> 4 !== 4 || ihl < IPV4_MIN_HLEN || ihl > avail) return ParseStatus.ICMP_INNER_SHORT;
  v.innerL3Off = in3;
  v.innerHdrLen = ihl;
  const iproto = buf[in3 + 9]!;
  v.innerProto = iproto;
  v.innerSaddr = dv.getUint32(in3 + 12);
  v.innerDaddr = dv.getUint32(in3 + 16);
  // RFC 792 guarantees 64 bits of the original datagram: enough for the ports, not more.
  if ((dv.getUint16(in3 + 6) & 0x1fff) === 0 && avail - ihl >= 8) {
    const in4 = in3 + ihl;
    v.innerL4Off = in4;
    if (iproto === IPPROTO_TCP || iproto === IPPROTO_UDP) {
      v.innerSport = dv.getUint16(in4);
      v.innerDport = dv.getUint16(in4 + 2);
    }
  }
  return ParseStatus.OK;
}

// ---------------------------------------------------------------------------------------------
// Full L4 checksum check (slow path, tests)

/** Result of checkL4Checksum. */
export const L4Csum = {
  /** Checksum verifies (or UDP without a checksum). */
  OK: 1,
  /** Checksum is wrong. */
  BAD: 0,
  /** Not checkable from this frame: fragment, no L4 header, or a protocol without one here. */
  NA: -1,
} as const;
export type L4Csum = (typeof L4Csum)[keyof typeof L4Csum];

/**
 * Verify the L4 checksum of a parsed frame over its whole L4 segment (TCP/UDP with the IPv4
 * pseudo-header, ICMP without). Fragments are not checkable: the checksum covers the
 * reassembled datagram. Returns an L4Csum value.
 */
export function checkL4Checksum(v: FrameView): number {
  if (v.l4Off < 0 || v.isFrag !== 0) return L4Csum.NA;
  const buf = v.buf;
  let sum: number;
  if (v.proto === IPPROTO_TCP) {
    sum = pseudoHeaderSum(v.saddr, v.daddr, IPPROTO_TCP, v.l4Len);
  } else if (v.proto === IPPROTO_UDP) {
    if (v.dv.getUint16(v.l4Off + 6) === 0) return L4Csum.OK;
    sum = pseudoHeaderSum(v.saddr, v.daddr, IPPROTO_UDP, v.l4Len);
  } else if (v.proto === IPPROTO_ICMP) {
    sum = 0;
  } else {
    return L4Csum.NA;
  }
  sum = csumAdd(buf, v.l4Off, v.l4Len, sum);
  return csumFold16(sum) === 0xffff ? L4Csum.OK : L4Csum.BAD;
}

// ---------------------------------------------------------------------------------------------
// Accessors used by forwarding modes. They take a view that parsed OK with l4Off >= 0 and the
// right protocol; they do not check (the caller has already branched on v.proto).

/** Absolute offset of the L4 checksum field: TCP +16, UDP +6, ICMP +2; -1 for others. */
export function l4CsumOff(v: FrameView): number {
  if (v.l4Off < 0) return -1;
  if (v.proto === IPPROTO_TCP) return v.l4Off + 16;
  if (v.proto === IPPROTO_UDP) return v.l4Off + 6;
  if (v.proto === IPPROTO_ICMP) return v.l4Off + 2;
  return -1;
}

export function tcpSeq(v: FrameView): number {
  return v.dv.getUint32(v.l4Off + 4);
}

export function tcpAck(v: FrameView): number {
  return v.dv.getUint32(v.l4Off + 8);
}

export function tcpWindow(v: FrameView): number {
  return v.dv.getUint16(v.l4Off + 14);
}

/** TCP payload length of an unfragmented segment. */
export function tcpPayloadLen(v: FrameView): number {
  return v.l4Len - v.tcpHdrLen;
}

/**
 * Set the TCP sequence number, updating the TCP checksum incrementally. Any number works
 * (mod 2^32); it crosses into setTcp32 as an int32, so that V8 never boxes a value >= 2^31.
 */
export function setTcpSeq(v: FrameView, seq: number): void {
  setTcp32(v.dv, v.l4Off, 4, seq | 0);
}

/** Set the TCP acknowledgment number, updating the TCP checksum incrementally (as setTcpSeq). */
export function setTcpAck(v: FrameView, ack: number): void {
  setTcp32(v.dv, v.l4Off, 8, ack | 0);
}

/** Set the TCP window, updating the TCP checksum incrementally. */
export function setTcpWindow(v: FrameView, win: number): void {
  const dv = v.dv;
  const o = v.l4Off;
  const old = dv.getUint16(o + 14);
  dv.setUint16(o + 14, win);
  dv.setUint16(o + 16, csumReplace16(dv.getUint16(o + 16), old, win & 0xffff));
}

function setTcp32(dv: DataView, l4: number, rel: number, val: number): void {
  const old = dv.getUint32(l4 + rel) | 0;
  dv.setUint32(l4 + rel, val);
  dv.setUint16(l4 + 16, csumReplace32(dv.getUint16(l4 + 16), old, val));
}

/**
 * Lower the MSS option of a TCP SYN to `mss` when it is larger (MSS clamping for tunnels).
 * Updates the option, `v.mss` and the TCP checksum. Returns the MSS now in the segment, or -1
 * when the segment has no MSS option.
 */
export function clampTcpMss(v: FrameView, mss: number): number {
  if (v.l4Off < 0 || v.proto !== IPPROTO_TCP) return -1;
  const o = findMssOption(v.buf, v.l4Off + TCP_MIN_HLEN, v.l4Off + v.tcpHdrLen);
  if (o < 0) return -1;
  const dv = v.dv;
  const old = dv.getUint16(o + 2);
  if (old <= mss) return old;
  dv.setUint16(o + 2, mss);
  // The option starts at an even or odd offset from the TCP header; a 16-bit value at an odd
  // offset straddles two checksum words, so update both words it touches.
  const rel = o + 2 - v.l4Off;
  const c = v.l4Off + 16;
  if ((rel & 1) === 0) {
    dv.setUint16(c, csumReplace16(dv.getUint16(c), old, mss));
  } else {
    const w0 = o + 1; // word holding the high byte of the MSS
    const oldW0 = (v.buf[w0]! << 8) | (old >>> 8);
    const oldW1 = ((old & 0xff) << 8) | v.buf[w0 + 3]!;
    let k = csumReplace16(dv.getUint16(c), oldW0, dv.getUint16(w0));
    k = csumReplace16(k, oldW1, dv.getUint16(w0 + 2));
    dv.setUint16(c, k);
  }
  v.mss = mss;
  return mss;
}

export function icmpId(v: FrameView): number {
  return v.dv.getUint16(v.l4Off + 4);
}

export function icmpSeq(v: FrameView): number {
  return v.dv.getUint16(v.l4Off + 6);
}
