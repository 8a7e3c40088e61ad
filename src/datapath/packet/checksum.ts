/**
 * The Internet checksum and its incremental update.
 *
 * - RFC 1071 (computing the Internet checksum): 16-bit big-endian words summed in a wide
 *   accumulator, carries folded back in at the end ("end-around carry"), then complemented.
 * - RFC 1624 (incremental update), equation 3: HC' = ~(~HC + ~m + m'). Unlike equation 2 of
 *   RFC 1141 it never produces the -0 (0xffff) ambiguity for a field that a full recompute
 *   would not produce, so incremental updates equal a full recompute bit for bit.
 * - RFC 791 (IPv4 header checksum), RFC 9293 / RFC 768 (TCP / UDP checksums over the IPv4
 *   pseudo-header), RFC 792 (ICMP checksum over the ICMP message, no pseudo-header).
 * - RFC 768: a UDP checksum field of 0 means "no checksum"; a computed 0 is sent as 0xffff.
 *
 * Accumulators are plain JS numbers (doubles): sums of 16-bit words stay exact far beyond any
 * packet size, so `csumAdd` never folds inside its loop. Nothing here allocates.
 */
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import type { FrameView } from "./view.js";

/**
 * Add the bytes `buf[off, off+len)` to `sum` as 16-bit big-endian words. An odd trailing byte
 * is padded with a zero byte on the right (RFC 1071 section 4.1). Chained calls must keep every
 * range but the last at an even length so words stay aligned.
 */
export function csumAdd(buf: Uint8Array, off: number, len: number, sum: number): number {
  const end = off + len;
  let i = off;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/** Fold an accumulator to 16 bits with end-around carry, without complementing. */
export function csumFold16(sum: number): number {
  // Accumulators above 2^32 (never from one packet) first come down with float arithmetic,
  // since `>>>` would truncate them.
  while (sum > 0xffffffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** Fold an accumulator and complement it: the value to store in a checksum field. */
export function csumFold(sum: number): number {
  return ~csumFold16(sum) & 0xffff;
}

/** Sum of the IPv4 pseudo-header (RFC 9293 section 3.1, RFC 768): saddr, daddr, zero+proto, length. */
export function pseudoHeaderSum(saddr: number, daddr: number, proto: number, l4Len: number): number {
  return (saddr >>> 16) + (saddr & 0xffff) + (daddr >>> 16) + (daddr & 0xffff) + proto + l4Len;
}

/**
 * The checksum an IPv4 header at `l3Off` of `hdrLen` bytes should carry, computed with its own
 * checksum field (bytes 10-11) skipped.
 */
export function ipv4HeaderChecksum(buf: Uint8Array, l3Off: number, hdrLen: number): number {
  let sum = csumAdd(buf, l3Off, 10, 0);
  sum = csumAdd(buf, l3Off + 12, hdrLen - 12, sum);
  return csumFold(sum);
}

/**
 * Checksum of a TCP or UDP segment of `l4Len` bytes at `l4Off` with the IPv4 pseudo-header,
 * skipping the checksum field at `csumOff` (absolute, even distance from `l4Off`). For UDP a
 * computed 0 is returned as 0xffff (RFC 768). This covers the whole segment: for a first
 * fragment it is the checksum of the fragment only, not of the datagram.
 */
export function tcpUdpChecksum(
  buf: Uint8Array,
  saddr: number,
  daddr: number,
  proto: number,
  l4Off: number,
  l4Len: number,
  csumOff: number,
): number {
  let sum = pseudoHeaderSum(saddr, daddr, proto, l4Len);
  sum = csumAdd(buf, l4Off, csumOff - l4Off, sum);
  sum = csumAdd(buf, csumOff + 2, l4Off + l4Len - csumOff - 2, sum);
  const c = csumFold(sum);
  return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
}

/** Checksum of an ICMP message of `len` bytes at `off` (field at off+2 skipped, no pseudo-header). */
export function icmpChecksum(buf: Uint8Array, off: number, len: number): number {
  let sum = csumAdd(buf, off, 2, 0);
  sum = csumAdd(buf, off + 4, len - 4, sum);
  return csumFold(sum);
}

/**
 * RFC 1624 eqn. 3 for one 16-bit word: the checksum after the word `oldV` (covered by the
 * checksum `check`) becomes `newV`.
 */
export function csumReplace16(check: number, oldV: number, newV: number): number {
  let s = (~check & 0xffff) + (~oldV & 0xffff) + (newV & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address, a TCP sequence number) at an even offset. */
export function csumReplace32(check: number, oldV: number, newV: number): number {
  let s = (~check & 0xffff) + (~(oldV >>> 16) & 0xffff) + (~oldV & 0xffff) + (newV >>> 16) + (newV & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/**
 * The checksum the L4 header of a parsed, unfragmented frame should carry: TCP/UDP with the
 * pseudo-header, ICMP without; -1 when there is none to compute (fragment, no L4 header, other
 * protocol). For UDP this is the computed value even when the frame carries 0 ("none").
 */
export function l4ChecksumFull(v: FrameView): number {
  const o = v.l4Off;
  if (o < 0 || v.isFrag !== 0) return -1;
  if (v.proto === IPPROTO_TCP)
    return tcpUdpChecksum(v.buf, v.saddr, v.daddr, IPPROTO_TCP, o, v.l4Len, o + 16);
  if (v.proto === IPPROTO_UDP) return tcpUdpChecksum(v.buf, v.saddr, v.daddr, IPPROTO_UDP, o, v.l4Len, o + 6);
  if (v.proto === IPPROTO_ICMP) return icmpChecksum(v.buf, o, v.l4Len);
  return -1;
}
