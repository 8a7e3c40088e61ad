/**
 * Zero-allocation emitters for the frames the director originates at run time: ARP replies,
 * requests and announcements, ICMP echo replies, ICMP errors. Each writes one untagged Ethernet
 * frame into `out` at `off` and returns its length, or 0 when nothing must be sent (or it does
 * not fit in `out`). MAC addresses are passed as (buffer, offset) pairs so callers can point into
 * their link tables or into the received frame; they are read before anything is written, so
 * the output may overwrite the input frame in place.
 *
 * - ARP, RFC 826; gratuitous ARP as the RFC 5227 "ARP Announcement" (a request with sender and
 *   target protocol address both ours, target hardware address zero, broadcast).
 * - ICMP echo reply, RFC 792 / RFC 1122 3.2.2.6: same identifier, sequence and data. IP options
 *   of the request are not reflected (RFC 1122 allows omitting them except for Record Route and
 *   timestamps, which we do not implement); the checksum is updated incrementally for the type
 *   change, after the request's checksum has been verified (requests with bad checksums are not
 *   answered, as Linux does).
 * - ICMP errors, RFC 792 with RFC 1812 4.3.2.3 (quote as much of the original IP packet as fits
 *   in 576 bytes of IP), 4.3.2.5 (TOS precedence 6, "internetwork control"), 4.3.2.7 and
 *   RFC 1122 3.2.2 (never about an ICMP error, a later fragment, a link-layer broadcast or
 *   multicast, an IP broadcast/multicast destination, or a source that is not one host), and
 *   RFC 1191 (next-hop MTU in bytes 6-7 of "fragmentation needed").
 *
 * Frames are not padded to the 60-byte Ethernet minimum: NIC drivers and TAP do that on output.
 */
import { IPPROTO_ICMP, IPPROTO_UDP } from "../../lib/proto.js";
import { icmpChecksum, ipv4HeaderChecksum, tcpUdpChecksum } from "./checksum.js";
import { checkL4Checksum, L4Csum } from "./parse.js";
import {
  ETH_HLEN,
  ETH_P_ARP,
  ETH_P_IP,
  type FrameView,
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_ECHOREPLY,
  ICMP_FRAG_NEEDED,
} from "./view.js";

/** ARP frame length (Ethernet header + 28 bytes, no padding). */
export const ARP_FRAME_LEN = ETH_HLEN + 28;
/** RFC 1812 4.3.2.3: an ICMP error's IP datagram must not exceed 576 bytes. */
export const ICMP_ERROR_MAX_IP_LEN = 576;
/** TTL of packets the director originates. */
export const EMIT_TTL = 64;

const IP_HLEN = 20;
const ICMP_HLEN = 8;

/** IP identification of originated packets: a counter (RFC 6864 allows any value for atomic datagrams). */
let ipIdCounter = 1;

/** Next IP id for an originated packet. */
export function nextIpId(): number {
  const id = ipIdCounter;
  ipIdCounter = (ipIdCounter + 1) & 0xffff;
  return id;
}

/** Set the next IP id (tests that compare with captured frames; a random seed at startup). */
export function setIpIdCounter(id: number): void {
  ipIdCounter = id & 0xffff;
}

/** Big-endian 16- and 32-bit stores into a byte array (also used by the VRRP emitter). */
export function put16(out: Uint8Array, o: number, v: number): void {
  out[o] = (v >>> 8) & 0xff;
  out[o + 1] = v & 0xff;
}

export function put32(out: Uint8Array, o: number, v: number): void {
  out[o] = (v >>> 24) & 0xff;
  out[o + 1] = (v >>> 16) & 0xff;
  out[o + 2] = (v >>> 8) & 0xff;
  out[o + 3] = v & 0xff;
}

/** MAC as two numbers: the high 16 bits and the low 32 bits (no allocation). */
function macHi(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}
function macLo(b: Uint8Array, o: number): number {
  return ((b[o + 2]! << 24) | (b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!) >>> 0;
}
function putMac(out: Uint8Array, o: number, hi: number, lo: number): void {
  put16(out, o, hi);
  put32(out, o + 2, lo);
}

/** memmove between byte arrays that may share memory. */
function moveBytes(dst: Uint8Array, dOff: number, src: Uint8Array, sOff: number, n: number): void {
  if (dst === src) {
    if (dOff !== sOff) dst.copyWithin(dOff, sOff, sOff + n);
    return;
  }
  if (dst.buffer === src.buffer && dst.byteOffset + dOff > src.byteOffset + sOff) {
    for (let i = n - 1; i >= 0; i--) dst[dOff + i] = src[sOff + i]!;
    return;
  }
  for (let i = 0; i < n; i++) dst[dOff + i] = src[sOff + i]!;
}

/** 1 when `a` is usable as the source of a packet we answer (RFC 1812 4.3.2.7), else 0. */
function isUnicastSource(a: number): number {
  // Not 0.0.0.0/8 ("this network"), not 127/8 loopback, not 224/4 multicast or 240/4 (incl. broadcast).
  const top = a >>> 24;
  return top !== 0 && top !== 127 && top < 224 ? 1 : 0;
}

function writeArp(
  out: Uint8Array,
  off: number,
  op: number,
  ethDstHi: number,
  ethDstLo: number,
  shaHi: number,
  shaLo: number,
  spa: number,
  thaHi: number,
  thaLo: number,
  tpa: number,
): number {
  if (off < 0 || off + ARP_FRAME_LEN > out.length) return 0;
  putMac(out, off, ethDstHi, ethDstLo);
  putMac(out, off + 6, shaHi, shaLo);
  put16(out, off + 12, ETH_P_ARP);
  const a = off + ETH_HLEN;
  put16(out, a, 1); // htype Ethernet
  put16(out, a + 2, ETH_P_IP);
  out[a + 4] = 6;
  out[a + 5] = 4;
  put16(out, a + 6, op);
  putMac(out, a + 8, shaHi, shaLo);
  put32(out, a + 14, spa);
  putMac(out, a + 18, thaHi, thaLo);
  put32(out, a + 24, tpa);
  return ARP_FRAME_LEN;
}

/** ARP reply "myIp is at myMac", unicast to `toMac` / `toIp`. Returns 42 (0 if it does not fit). */
export function emitArpReply(
  out: Uint8Array,
  off: number,
  myMac: Uint8Array,
  myMacOff: number,
  myIp: number,
  toMac: Uint8Array,
  toMacOff: number,
  toIp: number,
): number {
  const mh = macHi(myMac, myMacOff);
  const ml = macLo(myMac, myMacOff);
  const th = macHi(toMac, toMacOff);
  const tl = macLo(toMac, toMacOff);
  return writeArp(out, off, 2, th, tl, mh, ml, myIp >>> 0, th, tl, toIp >>> 0);
}

/** Broadcast ARP request "who has targetIp, tell myIp". Returns 42 (0 if it does not fit). */
export function emitArpRequest(
  out: Uint8Array,
  off: number,
  myMac: Uint8Array,
  myMacOff: number,
  myIp: number,
  targetIp: number,
): number {
  const mh = macHi(myMac, myMacOff);
  const ml = macLo(myMac, myMacOff);
  return writeArp(out, off, 1, 0xffff, 0xffffffff, mh, ml, myIp >>> 0, 0, 0, targetIp >>> 0);
}

/** Gratuitous ARP (RFC 5227 announcement) for `myIp`, e.g. when a VIP moves here. Returns 42. */
export function emitGratuitousArp(
  out: Uint8Array,
  off: number,
  myMac: Uint8Array,
  myMacOff: number,
  myIp: number,
): number {
  const mh = macHi(myMac, myMacOff);
  const ml = macLo(myMac, myMacOff);
  return writeArp(out, off, 1, 0xffff, 0xffffffff, mh, ml, myIp >>> 0, 0, 0, myIp >>> 0);
}

/**
 * Write an IPv4 header without options at `o` and its checksum: the next IP id, TTL `ttl`, the
 * flags and fragment offset word `frag` (0x4000: DF).
 */
export function writeIpHeader(
  out: Uint8Array,
  o: number,
  tos: number,
  totalLen: number,
  proto: number,
  saddr: number,
  daddr: number,
  ttl = EMIT_TTL,
  frag = 0,
): void {
  out[o] = 0x45;
  out[o + 1] = tos;
  put16(out, o + 2, totalLen);
  put16(out, o + 4, nextIpId());
  put16(out, o + 6, frag);
  out[o + 8] = ttl;
  out[o + 9] = proto;
  put32(out, o + 12, saddr);
  put32(out, o + 16, daddr);
  put16(out, o + 10, ipv4HeaderChecksum(out, o, IP_HLEN));
}

/**
 * Answer the ICMP echo request in `v` (parsed OK): from `v.daddr` to `v.saddr`, Ethernet from
 * `myMac` to the request's source MAC. Returns the frame length, or 0 when `v` is not an
 * unfragmented echo request with a valid checksum between unicast addresses, or it does not fit.
 */
export function emitIcmpEchoReply(
  out: Uint8Array,
  off: number,
  v: FrameView,
  myMac: Uint8Array,
  myMacOff: number,
): number {
  if (v.proto !== IPPROTO_ICMP || v.icmpType !== ICMP_ECHO || v.l4Off < 0 || v.isFrag !== 0) return 0;
  if (isUnicastSource(v.saddr) === 0 || isUnicastSource(v.daddr) === 0) return 0;
  if ((v.buf[v.base]! & 1) !== 0) return 0; // sent to a link-layer broadcast/multicast
  const icmpLen = v.l4Len;
  const total = IP_HLEN + icmpLen;
  const flen = ETH_HLEN + total;
  if (off < 0 || off + flen > out.length) return 0;
  if (checkL4Checksum(v) !== L4Csum.OK) return 0;

  const src = v.buf;
  const dh = macHi(src, v.base + 6);
  const dl = macLo(src, v.base + 6);
  const mh = macHi(myMac, myMacOff);
  const ml = macLo(myMac, myMacOff);
  const saddr = v.daddr;
  const daddr = v.saddr;

  const icmp = off + ETH_HLEN + IP_HLEN;
  moveBytes(out, icmp, src, v.l4Off, icmpLen);
  putMac(out, off, dh, dl);
  putMac(out, off + 6, mh, ml);
  put16(out, off + 12, ETH_P_IP);
  writeIpHeader(out, off + ETH_HLEN, 0, total, IPPROTO_ICMP, saddr, daddr);
  out[icmp] = ICMP_ECHOREPLY;
  out[icmp + 1] = 0;
  // Summed whole, not patched: RFC 1624 eqn. 3 yields 0x0000 where an all-zero message
  // (id 0, seq 0, no data) needs 0xffff, and Linux drops such a reply as corrupt.
  put16(out, icmp + 2, icmpChecksum(out, icmp, icmpLen));
  return flen;
}

/** 1 for ICMP types that are queries/informational (errors may be sent about them). */
function isIcmpQuery(type: number): number {
  // echo reply, echo, router advert/solicit, timestamp(+reply), info(+reply), mask(+reply)
  return type === 0 || type === 8 || type === 9 || type === 10 || (type >= 13 && type <= 18) ? 1 : 0;
}

/**
 * Send ICMP `type`/`code` about the packet in `orig` (parsed OK) from `srcIp` to `dstIp`, with
 * Ethernet from `srcMac` to `dstMac`. `mtuOrZero` is the next-hop MTU for type 3 code 4 and
 * ignored otherwise. Returns the frame length, or 0 when RFC 1812 / RFC 1122 forbid an error
 * about `orig` (see the file header) or it does not fit in `out`.
 */
export function emitIcmpError(
  out: Uint8Array,
  off: number,
  srcMac: Uint8Array,
  srcMacOff: number,
  dstMac: Uint8Array,
  dstMacOff: number,
  srcIp: number,
  dstIp: number,
  type: number,
  code: number,
  mtuOrZero: number,
  orig: FrameView,
): number {
  if (orig.etherType !== ETH_P_IP || orig.ipHdrLen === 0 || orig.laterFrag !== 0) return 0;
  if (orig.proto === IPPROTO_ICMP && isIcmpQuery(orig.icmpType) === 0) return 0;
  if ((orig.buf[orig.base]! & 1) !== 0) return 0; // link-layer broadcast/multicast
  if (orig.daddr >>> 0 >= 0xe0000000 || isUnicastSource(orig.saddr) === 0) return 0;

  let q = orig.ipTotalLen;
  if (q > ICMP_ERROR_MAX_IP_LEN - IP_HLEN - ICMP_HLEN) q = ICMP_ERROR_MAX_IP_LEN - IP_HLEN - ICMP_HLEN;
  const total = IP_HLEN + ICMP_HLEN + q;
  const flen = ETH_HLEN + total;
  if (off < 0 || off + flen > out.length) return 0;

  const sh = macHi(srcMac, srcMacOff);
  const sl = macLo(srcMac, srcMacOff);
  const dh = macHi(dstMac, dstMacOff);
  const dl = macLo(dstMac, dstMacOff);
  const icmp = off + ETH_HLEN + IP_HLEN;
  // Quote first: the output may overlap the original frame.
  moveBytes(out, icmp + ICMP_HLEN, orig.buf, orig.l3Off, q);

  putMac(out, off, dh, dl);
  putMac(out, off + 6, sh, sl);
  put16(out, off + 12, ETH_P_IP);
  writeIpHeader(out, off + ETH_HLEN, 0xc0, total, IPPROTO_ICMP, srcIp >>> 0, dstIp >>> 0);
  out[icmp] = type;
  out[icmp + 1] = code;
  put32(out, icmp + 4, 0);
  if (type === ICMP_DEST_UNREACH && code === ICMP_FRAG_NEEDED) put16(out, icmp + 6, mtuOrZero);
  put16(out, icmp + 2, icmpChecksum(out, icmp, ICMP_HLEN + q));
  return flen;
}

/**
 * An IPv4/UDP datagram carrying `plen` bytes of `payload` at `poff` (connection sync), written
 * at `off`: Ethernet from `srcMac`, to `dstMac` or, when it is null, to the IPv4 multicast MAC
 * of `daddr` (01:00:5e + its low 23 bits); IP without options, DF clear, TOS 0, `ttl`; UDP
 * checksum computed. Returns the frame length, 0 when it does not fit in `out`.
 */
export function emitUdp(
  out: Uint8Array,
  off: number,
  srcMac: Uint8Array,
  srcMacOff: number,
  dstMac: Uint8Array | null,
  dstMacOff: number,
  saddr: number,
  daddr: number,
  sport: number,
  dport: number,
  ttl: number,
  payload: Uint8Array,
  poff: number,
  plen: number,
): number {
  const len = ETH_HLEN + IP_HLEN + 8 + plen;
  if (off < 0 || off + len > out.length || plen > 0xffff - IP_HLEN - 8) return 0;
  if (dstMac === null) {
    putMac(out, off, 0x0100, (0x5e000000 | (daddr & 0x7fffff)) >>> 0);
  } else {
    putMac(out, off, macHi(dstMac, dstMacOff), macLo(dstMac, dstMacOff));
  }
  putMac(out, off + 6, macHi(srcMac, srcMacOff), macLo(srcMac, srcMacOff));
  put16(out, off + 12, ETH_P_IP);
  const ip = off + ETH_HLEN;
  writeIpHeader(out, ip, 0, IP_HLEN + 8 + plen, IPPROTO_UDP, saddr, daddr, ttl);
  const u = ip + IP_HLEN;
  put16(out, u, sport);
  put16(out, u + 2, dport);
  put16(out, u + 4, 8 + plen);
  put16(out, u + 6, 0);
  for (let k = 0; k < plen; k++) out[u + 8 + k] = payload[poff + k]!;
  put16(out, u + 6, tcpUdpChecksum(out, saddr, daddr, IPPROTO_UDP, u, 8 + plen, u + 6));
  return len;
}
