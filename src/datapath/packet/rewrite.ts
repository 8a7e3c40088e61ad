/**
 * NAT rewrite primitives for parsed frames, in place, with incremental checksum updates
 * (RFC 1624 eqn. 3) so the cost does not depend on the payload size.
 *
 * - IPv4 header checksum (RFC 791) follows every change to the header.
 * - TCP (RFC 9293) and UDP (RFC 768) checksums cover the IPv4 pseudo-header, so they follow
 *   address changes as well as port changes. A UDP checksum of 0 means "none" and stays 0; an
 *   updated UDP checksum that comes out 0 is written as 0xffff.
 * - The ICMP checksum (RFC 792) has no pseudo-header: address changes do not touch it, but every
 *   byte changed inside the ICMP message (the embedded header of an error) does.
 * - A later fragment has no L4 header: only its IP header (and checksum) changes. A first
 *   fragment's L4 checksum covers the whole datagram, and an incremental update stays correct.
 * - ICMP errors (RFC 792, RFC 1812 4.3.2.3) embed the offending packet's IP header and at least
 *   8 bytes of its L4 header. `setInner*` rewrite it like ip_vs_nat_icmp: the embedded IP checksum
 *   and the embedded L4 checksum (UDP's at bytes 6-7, TCP's at 16-17 when the router quoted that
 *   far) are updated incrementally, and so is the outer ICMP checksum for every word changed.
 *
 * Callers pass a view that parsed OK. Nothing here allocates.
 */
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import {
  csumReplace16,
  csumReplace32,
  icmpChecksum,
  ipv4HeaderChecksum,
  l4ChecksumFull,
} from "./checksum.js";
import type { FrameView } from "./view.js";

/** Update the L4 checksum of the outer segment for a 32-bit pseudo-header/header field change. */
function l4Replace32(v: FrameView, oldV: number, newV: number): void {
  const o = v.l4Off;
  if (o < 0) return;
  const dv = v.dv;
  if (v.proto === IPPROTO_TCP) {
    dv.setUint16(o + 16, csumReplace32(dv.getUint16(o + 16), oldV, newV));
  } else if (v.proto === IPPROTO_UDP) {
    const c = dv.getUint16(o + 6);
    if (c !== 0) dv.setUint16(o + 6, csumReplace32(c, oldV, newV) || 0xffff);
  }
}

function l4Replace16(v: FrameView, oldV: number, newV: number): void {
  const o = v.l4Off;
  const dv = v.dv;
  if (v.proto === IPPROTO_TCP) {
    dv.setUint16(o + 16, csumReplace16(dv.getUint16(o + 16), oldV, newV));
  } else if (v.proto === IPPROTO_UDP) {
    const c = dv.getUint16(o + 6);
    if (c !== 0) dv.setUint16(o + 6, csumReplace16(c, oldV, newV) || 0xffff);
  }
}

/*
 * Addresses cross function boundaries as int32 (`| 0`): a uint32 at or above 2^31 (128.0.0.0 and
 * up, 192.168.x.x among them) is not a small integer for V8, and passing it to a function that
 * is not inlined boxes it in a new heap number. Inside, `>>> 0` gives the uint32 back.
 */

/** Set the IPv4 source address; updates the IP and TCP/UDP checksums and `v.saddr` (uint32). */
export function setSaddr(v: FrameView, addr: number): void {
  const a = addr | 0;
  const dv = v.dv;
  const l3 = v.l3Off;
  const old = dv.getInt32(l3 + 12);
  dv.setInt32(l3 + 12, a);
  dv.setUint16(l3 + 10, csumReplace32(dv.getUint16(l3 + 10), old, a));
  l4Replace32(v, old, a);
  v.saddr = a >>> 0;
}

/** Set the IPv4 destination address; updates the IP and TCP/UDP checksums and `v.daddr` (uint32). */
export function setDaddr(v: FrameView, addr: number): void {
  const a = addr | 0;
  const dv = v.dv;
  const l3 = v.l3Off;
  const old = dv.getInt32(l3 + 16);
  dv.setInt32(l3 + 16, a);
  dv.setUint16(l3 + 10, csumReplace32(dv.getUint16(l3 + 10), old, a));
  l4Replace32(v, old, a);
  v.daddr = a >>> 0;
}

/**
 * Set the TCP/UDP source port; updates the L4 checksum and `v.sport`. Returns 1 when done, 0
 * when the frame has no ports (later fragment, other protocol).
 */
export function setSport(v: FrameView, port: number): number {
  if (v.l4Off < 0 || (v.proto !== IPPROTO_TCP && v.proto !== IPPROTO_UDP)) return 0;
  const dv = v.dv;
  const old = dv.getUint16(v.l4Off);
  dv.setUint16(v.l4Off, port);
  l4Replace16(v, old, port & 0xffff);
  v.sport = port & 0xffff;
  return 1;
}

/** Set the TCP/UDP destination port; like setSport. */
export function setDport(v: FrameView, port: number): number {
  if (v.l4Off < 0 || (v.proto !== IPPROTO_TCP && v.proto !== IPPROTO_UDP)) return 0;
  const dv = v.dv;
  const old = dv.getUint16(v.l4Off + 2);
  dv.setUint16(v.l4Off + 2, port);
  l4Replace16(v, old, port & 0xffff);
  v.dport = port & 0xffff;
  return 1;
}

/** 1 when the `len` bytes at `off` are zero apart from the ICMP checksum at off+2. */
function allZeroExceptCheck(b: Uint8Array, off: number, len: number): number {
  for (let i = 0; i < len; i++) if (i !== 2 && i !== 3 && b[off + i] !== 0) return 0;
  return 1;
}

/**
 * Set the identifier of an ICMP echo / echo reply (ICMP checksum updated, `v.sport` and
 * `v.dport` too). Returns 1 when done, 0 when the frame is not an ICMP echo with a header.
 */
export function setIcmpId(v: FrameView, id: number): number {
  if (v.l4Off < 0 || v.proto !== IPPROTO_ICMP || (v.icmpType !== 0 && v.icmpType !== 8)) return 0;
  const dv = v.dv;
  const o = v.l4Off;
  const old = dv.getUint16(o + 4);
  dv.setUint16(o + 4, id);
  const k = csumReplace16(dv.getUint16(o + 2), old, id & 0xffff);
  // RFC 1624 eqn. 3 gives 0x0000 where the message is all zero (an echo reply, id 0, seq 0,
  // zero data) and only 0xffff is valid: look at the bytes in that one rare case.
  dv.setUint16(o + 2, k === 0 && allZeroExceptCheck(v.buf, o, v.l4Len) === 1 ? 0xffff : k);
  v.sport = id & 0xffff;
  v.dport = id & 0xffff;
  return 1;
}

/**
 * Decrement the TTL (RFC 1812 5.3.1) with an incremental IP checksum update and return the new
 * TTL. A TTL already 0 is left alone and 0 is returned: the caller drops the packet and may
 * send ICMP time exceeded whenever this returns 0.
 */
export function decTtl(v: FrameView): number {
  const buf = v.buf;
  const dv = v.dv;
  const l3 = v.l3Off;
  const ttl = buf[l3 + 8]!;
  if (ttl === 0) return 0;
  const proto = buf[l3 + 9]!;
  buf[l3 + 8] = ttl - 1;
  // TTL shares its 16-bit word with the protocol byte.
  dv.setUint16(l3 + 10, csumReplace16(dv.getUint16(l3 + 10), (ttl << 8) | proto, ((ttl - 1) << 8) | proto));
  v.ttl = ttl - 1;
  return ttl - 1;
}

/**
 * Write the Ethernet destination and source MAC addresses of the frame at `base`, copying 6
 * bytes from each of `dstMac[dstOff..]` and `srcMac[srcOff..]`. Unrolled byte stores: measured
 * on Node 20 at ~10 ns per call, against ~13 ns for a 6-step loop, ~30 ns for two `copyWithin`
 * (which also only works within one buffer) and ~80 ns for `set(subarray)` (which allocates).
 */
export function setEthAddrs(
  buf: Uint8Array,
  base: number,
  dstMac: Uint8Array,
  dstOff: number,
  srcMac: Uint8Array,
  srcOff: number,
): void {
  buf[base] = dstMac[dstOff]!;
  buf[base + 1] = dstMac[dstOff + 1]!;
  buf[base + 2] = dstMac[dstOff + 2]!;
  buf[base + 3] = dstMac[dstOff + 3]!;
  buf[base + 4] = dstMac[dstOff + 4]!;
  buf[base + 5] = dstMac[dstOff + 5]!;
  buf[base + 6] = srcMac[srcOff]!;
  buf[base + 7] = srcMac[srcOff + 1]!;
  buf[base + 8] = srcMac[srcOff + 2]!;
  buf[base + 9] = srcMac[srcOff + 3]!;
  buf[base + 10] = srcMac[srcOff + 4]!;
  buf[base + 11] = srcMac[srcOff + 5]!;
}

// ---------------------------------------------------------------------------------------------
// ICMP errors: the embedded packet

/** Rewrite the 16-bit word at `off` inside the ICMP message, updating the outer ICMP checksum. */
function icmpWrite16(v: FrameView, off: number, val: number): void {
  const dv = v.dv;
  const old = dv.getUint16(off);
  if (old === val) return;
  dv.setUint16(off, val);
  const c = v.l4Off + 2;
  dv.setUint16(c, csumReplace16(dv.getUint16(c), old, val));
}

/** Fix the embedded L4 checksum (when it was quoted) for a change of `oldV` to `newV`. */
function innerL4Replace(v: FrameView, oldV: number, newV: number, is32: number): void {
  const in4 = v.innerL4Off;
  if (in4 < 0) return;
  const icmpEnd = v.l4Off + v.l4Len;
  const dv = v.dv;
  let c: number;
  if (v.innerProto === IPPROTO_UDP) {
    c = in4 + 6; // always within the 8 bytes innerL4Off guarantees
    if (dv.getUint16(c) === 0) return;
  } else if (v.innerProto === IPPROTO_TCP) {
    c = in4 + 16;
    if (c + 2 > icmpEnd) return; // the router did not quote that far
  } else {
    return;
  }
  const old = dv.getUint16(c);
  let k = is32 !== 0 ? csumReplace32(old, oldV, newV) : csumReplace16(old, oldV, newV);
  if (k === 0 && v.innerProto === IPPROTO_UDP) k = 0xffff;
  icmpWrite16(v, c, k);
}

function setInnerAddr(v: FrameView, rel: number, addr: number): number {
  const in3 = v.innerL3Off;
  if (in3 < 0) return 0;
  addr |= 0;
  const dv = v.dv;
  const old = dv.getInt32(in3 + rel);
  if (old === addr) return 1;
  icmpWrite16(v, in3 + rel, addr >>> 16);
  icmpWrite16(v, in3 + rel + 2, addr & 0xffff);
  icmpWrite16(v, in3 + 10, csumReplace32(dv.getUint16(in3 + 10), old, addr));
  innerL4Replace(v, old, addr, 1);
  return 1;
}

/**
 * Set the source address of the packet embedded in an ICMP error (and `v.innerSaddr`). Updates
 * the embedded IP checksum, the embedded L4 checksum when present, and the ICMP checksum.
 * Returns 1 when done, 0 when the frame is not an ICMP error with an embedded header.
 */
export function setInnerSaddr(v: FrameView, addr: number): number {
  if (setInnerAddr(v, 12, addr | 0) === 0) return 0;
  v.innerSaddr = addr >>> 0;
  return 1;
}

/** Set the destination address of the embedded packet; like setInnerSaddr. */
export function setInnerDaddr(v: FrameView, addr: number): number {
  if (setInnerAddr(v, 16, addr | 0) === 0) return 0;
  v.innerDaddr = addr >>> 0;
  return 1;
}

function setInnerPort(v: FrameView, rel: number, port: number): number {
  const in4 = v.innerL4Off;
  if (in4 < 0 || (v.innerProto !== IPPROTO_TCP && v.innerProto !== IPPROTO_UDP)) return 0;
  port &= 0xffff;
  const old = v.dv.getUint16(in4 + rel);
  if (old === port) return 1;
  icmpWrite16(v, in4 + rel, port);
  innerL4Replace(v, old, port, 0);
  return 1;
}

/**
 * Set the source port of the TCP/UDP header embedded in an ICMP error (and `v.innerSport`),
 * with the embedded L4 checksum and ICMP checksum updated. Returns 1 when done, 0 when there
 * are no embedded ports.
 */
export function setInnerSport(v: FrameView, port: number): number {
  if (setInnerPort(v, 0, port) === 0) return 0;
  v.innerSport = port & 0xffff;
  return 1;
}

/** Set the destination port of the embedded TCP/UDP header; like setInnerSport. */
export function setInnerDport(v: FrameView, port: number): number {
  if (setInnerPort(v, 2, port) === 0) return 0;
  v.innerDport = port & 0xffff;
  return 1;
}

/**
 * Add `delta` (int32, mod 2^32) to the 32-bit word at `rel` (4: seq, 8: ack) of the TCP header
 * embedded in an ICMP error, when the router quoted it (`need` bytes of the TCP header: 8 for
 * the seq, which innerL4Off guarantees; 12 for the ack, 14 to see the flags too), with the
 * embedded TCP checksum (when quoted) and the ICMP checksum updated. Returns 1 when done.
 */
function shiftInnerTcp(v: FrameView, rel: number, need: number, delta: number): number {
  const in4 = v.innerL4Off;
  if (in4 < 0 || v.innerProto !== IPPROTO_TCP || in4 + need > v.l4Off + v.l4Len) return 0;
  const dv = v.dv;
  const old = dv.getInt32(in4 + rel);
  const nw = (old + delta) | 0;
  icmpWrite16(v, in4 + rel, nw >>> 16);
  icmpWrite16(v, in4 + rel + 2, nw & 0xffff);
  innerL4Replace(v, old, nw, 1);
  return 1;
}

/**
 * Move the sequence number of the TCP header quoted in an ICMP error by `delta` (int32). Updates
 * the quoted TCP checksum when it was quoted, and the ICMP checksum. Returns 1 when done, 0 when
 * there is no quoted TCP header.
 */
export function shiftInnerTcpSeq(v: FrameView, delta: number): number {
  return shiftInnerTcp(v, 4, 8, delta | 0);
}

/**
 * Move the acknowledgement number of the quoted TCP header by `delta` (int32) when the quote
 * reaches the flags and ACK is set (a segment without ACK carries no acknowledgement to map).
 * Like shiftInnerTcpSeq; 0 when not done.
 */
export function shiftInnerTcpAck(v: FrameView, delta: number): number {
  const in4 = v.innerL4Off;
  if (in4 < 0 || in4 + 14 > v.l4Off + v.l4Len || (v.buf[in4 + 13]! & 0x10) === 0) return 0;
  return shiftInnerTcp(v, 8, 14, delta | 0);
}

// ---------------------------------------------------------------------------------------------
// Full recomputes (fallbacks; cost proportional to the packet)

/** Recompute the IPv4 header checksum. */
export function fixIpChecksum(v: FrameView): void {
  v.dv.setUint16(v.l3Off + 10, ipv4HeaderChecksum(v.buf, v.l3Off, v.ipHdrLen));
}

/**
 * Recompute the ICMP checksum over the whole ICMP message. Only meaningful for an unfragmented
 * ICMP packet (a fragment holds part of the message). Returns 1 when done, 0 otherwise.
 */
export function fixIcmpChecksum(v: FrameView): number {
  if (v.l4Off < 0 || v.proto !== IPPROTO_ICMP || v.isFrag !== 0) return 0;
  v.dv.setUint16(v.l4Off + 2, icmpChecksum(v.buf, v.l4Off, v.l4Len));
  return 1;
}

/**
 * Recompute the TCP/UDP/ICMP checksum of an unfragmented packet (a UDP checksum of 0 stays 0).
 * Returns 1 when done, 0 when not applicable.
 */
export function fixL4Checksum(v: FrameView): number {
  const c = l4ChecksumFull(v);
  if (c < 0) return 0;
  const off = v.l4Off + (v.proto === IPPROTO_TCP ? 16 : v.proto === IPPROTO_UDP ? 6 : 2);
  if (v.proto === IPPROTO_UDP && v.dv.getUint16(off) === 0) return 1;
  v.dv.setUint16(off, c);
  return 1;
}

/** Recompute the embedded IP header checksum of an ICMP error, then the ICMP checksum. */
export function fixInnerIpChecksum(v: FrameView): number {
  if (v.innerL3Off < 0) return 0;
  const o = v.innerL3Off;
  v.dv.setUint16(o + 10, ipv4HeaderChecksum(v.buf, o, v.innerHdrLen));
  return fixIcmpChecksum(v);
}
