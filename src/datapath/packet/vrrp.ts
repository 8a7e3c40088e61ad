/**
 * VRRP advertisements for IPv4: VRRPv2 (RFC 3768) and VRRPv3 (RFC 5798), carried in IPv4
 * protocol 112. `parseVrrp` validates the VRRP message of a frame that `parseFrame` has already
 * parsed and fills a reused `VrrpView` of numbers; `emitVrrp` writes a whole Ethernet + IPv4 +
 * VRRP frame. Neither allocates, throws or builds strings.
 *
 * Wire format (RFC 3768 5.1, RFC 5798 5.1), 8 bytes then the addresses:
 *
 *   0        version (high nibble: 2 or 3) | type (low nibble: 1 = advertisement)
 *   1        virtual router id (VRID)
 *   2        priority (0 = the master is resigning, 255 = address owner)
 *   3        count of IPv4 addresses
 *   4-5  v2: auth type (0 none, 1 simple text password, 2 IP AH), advert interval in seconds
 *        v3: 4 reserved bits (sent 0, ignored on receipt) + max advert interval in centiseconds
 *   6-7      checksum
 *   8..      count × 4 bytes of IPv4 addresses
 *   v2 only: 8 bytes of authentication data, always present (zeros without a password)
 *
 * Checksums (the Internet checksum, RFC 1071):
 * - v2 over the VRRP message only, auth data included (RFC 3768 5.3.8);
 * - v3 over the IPv4 pseudo-header (source, destination, zero, protocol 112, VRRP length) and
 *   the VRRP message (RFC 5798 5.2.8). keepalived (vrrp.c, `vrrp_build_vrrp_v3`,
 *   `vrrp_check_packet`) uses the IP header's actual destination: 224.0.0.18, or the peer's
 *   address for unicast adverts. (Its `unicast_chksum_compat` option, for peers older than 2.0,
 *   would put 224.0.0.18 in the pseudo-header even for unicast: not supported here.)
 *
 * What keepalived 2.2.7 sends, as captured (test/datapath/packet/vrrp.test.ts has the bytes):
 * IPv4 without options, TOS 0xc0 (precedence 6, "internetwork control"), TTL 255, no DF, IP id a
 * per-instance counter starting at 1, source = the interface's primary address, destination
 * 224.0.0.18 to MAC 01:00:5e:00:00:12 (or a unicast peer), Ethernet source = the interface's
 * own MAC (no `use_vmac`). v2 with `auth_type PASS`: the password truncated to 8 bytes and
 * zero padded (`vrrp_auth_pass_handler`).
 *
 * Checks, in the order keepalived's `vrrp_check_packet` applies those that concern the packet
 * alone: not fragmented; a whole 8-byte header; version 2 or 3; type advertisement; the IP
 * payload exactly 8 + 4 × count (+ 8 for v2) bytes (keepalived compares the received length with
 * that); TTL 255 unless the instance uses unicast peers; a known v2 auth type; the checksum.
 * lvs-ts also refuses an advert interval of 0, which keepalived would accept (it would shrink a
 * backup's Master_Down_Interval to the skew time). Checks that need the instance's
 * configuration — VRID, version, auth, interval (v2), the address list, multicast vs unicast —
 * are the caller's; their reasons are listed here too so one table names every drop.
 */
import { csumAdd, csumFold, csumFold16, ipv4HeaderChecksum } from "./checksum.js";
import { put16, put32 } from "./emit.js";
import { ETH_HLEN, ETH_P_IP, type FrameView } from "./view.js";

/** IANA protocol number of VRRP. */
export const IPPROTO_VRRP = 112;
/** 224.0.0.18, the VRRP group (RFC 3768 5.2.2, RFC 5798 5.1.1.2). */
export const VRRP_GROUP = 0xe0000012;
/** TTL of every advert; receivers of multicast adverts discard any other (RFC 3768 5.2.3). */
export const VRRP_TTL = 255;
/** TOS byte keepalived sends (`vrrp_build_ip4`): precedence 6, internetwork control. */
export const VRRP_TOS = 0xc0;
export const VRRP_VERSION_2 = 2;
export const VRRP_VERSION_3 = 3;
export const VRRP_TYPE_ADVERT = 1;
export const VRRP_AUTH_NONE = 0;
/** Simple text password (RFC 2338; removed from RFC 3768 but still sent by keepalived). */
export const VRRP_AUTH_PASS = 1;
/** IP Authentication Header (RFC 2338): the VRRP message then follows an AH header. Not supported. */
export const VRRP_AUTH_AH = 2;
export const VRRP_PRIO_STOP = 0;
export const VRRP_PRIO_DFL = 100;
export const VRRP_PRIO_OWNER = 255;
/** Fixed VRRP header. */
export const VRRP_HLEN = 8;
/** v2 authentication data. */
export const VRRP_AUTH_LEN = 8;
/** The count field is one byte. */
export const VRRP_MAX_ADDRS = 255;
/** v3's advert interval field is 12 bits of centiseconds. */
export const VRRP_V3_MAX_INTERVAL = 0x0fff;
const IP_HLEN = 20;

/**
 * Why an advert was dropped. 0 is success. Values 1-10 come from `parseVrrp` (the packet alone);
 * 11 and up are the instance's checks against its configuration (src/control/vrrp/instance.ts).
 * `VRRP_STATUS_NAMES` gives each a drop-counter name.
 */
export const VrrpStatus = {
  OK: 0,
  /** Not an IPv4 packet of protocol 112 (a dispatch error of the caller). */
  NOT_VRRP: 1,
  /** An IP fragment: adverts are small and never fragmented. */
  FRAGMENT: 2,
  /** Fewer than 8 bytes of VRRP header. */
  SHORT: 3,
  /** Version other than 2 and 3. */
  BAD_VERSION: 4,
  /** Type other than 1 (advertisement). */
  BAD_TYPE: 5,
  /** IP payload length is not 8 + 4 × count (+ 8 auth bytes for v2). */
  BAD_LENGTH: 6,
  /** TTL other than 255 on a multicast instance (RFC 3768 7.1, RFC 5798 7.1). */
  BAD_TTL: 7,
  /** v2 auth type other than 0, 1, 2. */
  BAD_AUTH_TYPE: 8,
  BAD_CHECKSUM: 9,
  /** Advert interval 0. */
  BAD_INTERVAL: 10,
  // --- the caller's checks (the instance's configuration) ---
  /** No instance with this VRID. */
  VRID_UNKNOWN: 11,
  /** Version differs from the instance's `vrrp_version`. */
  VERSION_MISMATCH: 12,
  /** v2 auth type differs from the instance's (keepalived: authtype_mismatch). */
  AUTH_MISMATCH: 13,
  /** v2 password differs (keepalived: auth_failure). */
  AUTH_FAILURE: 14,
  /** v2 advert interval differs from the instance's (RFC 3768 7.1; keepalived drops it). */
  INTERVAL_MISMATCH: 15,
  /** Address count or list differs from the instance's virtual_ipaddress (keepalived: addr_list_err). */
  ADDR_LIST_MISMATCH: 16,
  /** Sent to 224.0.0.18 to a unicast instance, or unicast to a multicast one. */
  DEST_MISMATCH: 17,
  /** Received while the instance is in INIT or FAULT (keepalived ignores those). */
  INSTANCE_DOWN: 18,
} as const;
export type VrrpStatus = (typeof VrrpStatus)[keyof typeof VrrpStatus];
export const VRRP_STATUS_COUNT = 19;

/** Drop-counter names, indexed by VrrpStatus. */
export const VRRP_STATUS_NAMES: readonly string[] = [
  "ok",
  "vrrp_not_vrrp",
  "vrrp_fragment",
  "vrrp_short",
  "vrrp_bad_version",
  "vrrp_bad_type",
  "vrrp_bad_length",
  "vrrp_bad_ttl",
  "vrrp_bad_auth_type",
  "vrrp_bad_checksum",
  "vrrp_bad_interval",
  "vrrp_vrid_unknown",
  "vrrp_version_mismatch",
  "vrrp_auth_mismatch",
  "vrrp_auth_failure",
  "vrrp_interval_mismatch",
  "vrrp_addr_list_mismatch",
  "vrrp_dest_mismatch",
  "vrrp_instance_down",
];

/** The parsed form of one advert, filled in place by `parseVrrp` and reused. Numbers only. */
export class VrrpView {
  buf: Uint8Array = new Uint8Array(0);
  dv: DataView = new DataView(new ArrayBuffer(0));
  /** Absolute offset of the VRRP header in `buf`. */
  off = 0;
  /** VRRP message length: 8 + 4 × count (+ 8 for v2). */
  len = 0;
  version = 0;
  type = 0;
  vrid = 0;
  priority = 0;
  count = 0;
  /** v2 auth type; -1 for v3. */
  authType = -1;
  /** The interval field as sent: v2 seconds (8 bits), v3 centiseconds (12 bits). */
  interval = 0;
  /** The interval in centiseconds for both versions (v2: seconds × 100). */
  intervalCs = 0;
  checksum = 0;
  /** Absolute offset of the address list. */
  addrOff = 0;
  /** Absolute offset of the 8 bytes of v2 auth data; -1 for v3. */
  authOff = -1;
  /** From the IP header. */
  saddr = 0;
  daddr = 0;
  ttl = 0;
}

function resetView(v: VrrpView, f: FrameView): void {
  v.buf = f.buf;
  v.dv = f.dv;
  v.off = f.payloadOff;
  v.len = 0;
  v.version = 0;
  v.type = 0;
  v.vrid = 0;
  v.priority = 0;
  v.count = 0;
  v.authType = -1;
  v.interval = 0;
  v.intervalCs = 0;
  v.checksum = 0;
  v.addrOff = 0;
  v.authOff = -1;
  v.saddr = f.saddr;
  v.daddr = f.daddr;
  v.ttl = f.ttl;
}

/** VRRP message length for a version and address count (0 for an unknown version). */
export function vrrpLen(version: number, count: number): number {
  if (version === VRRP_VERSION_2) return VRRP_HLEN + 4 * count + VRRP_AUTH_LEN;
  if (version === VRRP_VERSION_3) return VRRP_HLEN + 4 * count;
  return 0;
}

/**
 * The checksum the VRRP message of `len` bytes at `off` should carry, computed with its own
 * field (bytes 6-7) skipped: v2 over the message, v3 with the IPv4 pseudo-header of
 * `saddr` → `daddr`.
 */
export function vrrpChecksum(
  buf: Uint8Array,
  off: number,
  len: number,
  version: number,
  saddr: number,
  daddr: number,
): number {
  let sum = 0;
  if (version === VRRP_VERSION_3) {
    const s = saddr >>> 0;
    const d = daddr >>> 0;
    sum = (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + IPPROTO_VRRP + len;
  }
  sum = csumAdd(buf, off, 6, sum);
  sum = csumAdd(buf, off + 8, len - 8, sum);
  return csumFold(sum);
}

/**
 * Validate the VRRP advert in `f`, a frame that `parseFrame` returned OK for, and fill `v`.
 * `unicast` is 1 for an instance with unicast peers: the TTL is then not checked (keepalived
 * checks it only for multicast). Returns a VrrpStatus; on anything but OK `v` is partly filled.
 */
export function parseVrrp(f: FrameView, v: VrrpView, unicast: number): number {
  resetView(v, f);
  if (f.etherType !== ETH_P_IP || f.proto !== IPPROTO_VRRP || f.ipHdrLen === 0) return VrrpStatus.NOT_VRRP;
  if (f.isFrag !== 0) return VrrpStatus.FRAGMENT;
  const buf = f.buf;
  const o = f.payloadOff;
  const avail = f.l4Len;
  if (avail < VRRP_HLEN) return VrrpStatus.SHORT;
  const b0 = buf[o]!;
  const version = b0 >>> 4;
  v.version = version;
  v.type = b0 & 0x0f;
  v.vrid = buf[o + 1]!;
  v.priority = buf[o + 2]!;
  const count = buf[o + 3]!;
  v.count = count;
  v.checksum = f.dv.getUint16(o + 6);
  v.addrOff = o + VRRP_HLEN;
  if (version !== VRRP_VERSION_2 && version !== VRRP_VERSION_3) return VrrpStatus.BAD_VERSION;
  if (version === VRRP_VERSION_2) {
    v.authType = buf[o + 4]!;
    v.interval = buf[o + 5]!;
    v.intervalCs = v.interval * 100;
    v.authOff = o + VRRP_HLEN + 4 * count;
  } else {
    v.interval = f.dv.getUint16(o + 4) & VRRP_V3_MAX_INTERVAL;
    v.intervalCs = v.interval;
  }
  if (v.type !== VRRP_TYPE_ADVERT) return VrrpStatus.BAD_TYPE;
  const len = vrrpLen(version, count);
  if (avail !== len) return VrrpStatus.BAD_LENGTH;
  v.len = len;
  if (unicast === 0 && f.ttl !== VRRP_TTL) return VrrpStatus.BAD_TTL;
  if (version === VRRP_VERSION_2 && v.authType > VRRP_AUTH_AH) return VrrpStatus.BAD_AUTH_TYPE;
  let sum = 0;
  if (version === VRRP_VERSION_3) {
    const s = f.saddr >>> 0;
    const d = f.daddr >>> 0;
    sum = (s >>> 16) + (s & 0xffff) + (d >>> 16) + (d & 0xffff) + IPPROTO_VRRP + len;
  }
  // A valid message (checksum field included) sums to 0xffff.
  if (csumFold16(csumAdd(buf, o, len, sum)) !== 0xffff) return VrrpStatus.BAD_CHECKSUM;
  if (v.interval === 0) return VrrpStatus.BAD_INTERVAL;
  return VrrpStatus.OK;
}

/** Address `i` (0 ≤ i < count) of a parsed advert, as a uint32. */
export function vrrpAddr(v: VrrpView, i: number): number {
  return v.dv.getUint32(v.addrOff + 4 * i);
}

/**
 * 1 when the v2 auth data of a parsed advert equals the 8 bytes at `pass[passOff..+8)`, else 0.
 * Every byte is compared, whatever the first difference (keepalived: memcmp_constant_time).
 */
export function vrrpAuthEquals(v: VrrpView, pass: Uint8Array, passOff: number): number {
  if (v.authOff < 0) return 0;
  let diff = 0;
  for (let i = 0; i < VRRP_AUTH_LEN; i++) diff |= v.buf[v.authOff + i]! ^ pass[passOff + i]!;
  return diff === 0 ? 1 : 0;
}

/**
 * Write a keepalived-style `auth_pass` into `out[off..+8)`: the password's UTF-8 bytes, cut to 8,
 * zero padded. Returns the number of password bytes written. (Configuration time, not per packet.)
 */
export function vrrpAuthPass(pass: string, out: Uint8Array, off: number): number {
  out.fill(0, off, off + VRRP_AUTH_LEN);
  const r = new TextEncoder().encodeInto(pass, out.subarray(off, off + VRRP_AUTH_LEN));
  return r.written;
}

/**
 * What `emitVrrp` sends: a reusable object of numbers (the smoltcp "Repr" idea). Fill it once
 * from the instance's configuration and change `priority` and `ipId` per advert.
 */
export class VrrpAdvertSpec {
  version = VRRP_VERSION_2;
  vrid = 1;
  priority = VRRP_PRIO_DFL;
  /** As sent: v2 seconds (1..255), v3 centiseconds (1..4095). */
  interval = 1;
  /** v2 only: VRRP_AUTH_NONE or VRRP_AUTH_PASS. */
  authType = VRRP_AUTH_NONE;
  /** v2 auth data, 8 bytes (`vrrpAuthPass`); sent as zeros with VRRP_AUTH_NONE, as keepalived does. */
  authData: Uint8Array = new Uint8Array(VRRP_AUTH_LEN);
  /** The virtual addresses: the first `count` entries of `addrs`. */
  count = 0;
  addrs: Uint32Array = new Uint32Array(VRRP_MAX_ADDRS);
  saddr = 0;
  /** VRRP_GROUP, or a unicast peer. */
  daddr = VRRP_GROUP;
  ipId = 0;
  ttl = VRRP_TTL;
  tos = VRRP_TOS;
}

/** Frame length `emitVrrp` writes for a spec. */
export function vrrpFrameLen(version: number, count: number): number {
  return ETH_HLEN + IP_HLEN + vrrpLen(version, count);
}

/**
 * Write the advert `s` as one untagged Ethernet frame at `out[off]` and return its length, or 0
 * when it does not fit or the spec is impossible (unknown version, count > 255). Ethernet source
 * is `srcMac[srcMacOff..+6)`; destination is the multicast MAC of `s.daddr` (RFC 1112 6.4:
 * 01:00:5e + the low 23 bits; 01:00:5e:00:00:12 for 224.0.0.18) when it is a class D address,
 * else `dstMac[dstMacOff..+6)` (the unicast peer's MAC; with `dstMac` null, 0 is returned).
 * The IPv4 header is keepalived's: no options, `s.tos`, `s.ipId`, no DF, `s.ttl`, protocol 112.
 * The frame is not padded to 60 bytes (the NIC or TAP does it). Allocates nothing.
 */
export function emitVrrp(
  out: Uint8Array,
  off: number,
  s: VrrpAdvertSpec,
  srcMac: Uint8Array,
  srcMacOff: number,
  dstMac: Uint8Array | null,
  dstMacOff: number,
): number {
  const count = s.count;
  if (count < 0 || count > VRRP_MAX_ADDRS || count > s.addrs.length) return 0;
  const vlen = vrrpLen(s.version, count);
  if (vlen === 0) return 0;
  const flen = ETH_HLEN + IP_HLEN + vlen;
  if (off < 0 || off + flen > out.length) return 0;
  const daddr = s.daddr >>> 0;
  const saddr = s.saddr >>> 0;
  const mcast = daddr >>> 28 === 0xe;
  if (!mcast && dstMac === null) return 0;

  // Ethernet
  if (mcast) {
    out[off] = 0x01;
    out[off + 1] = 0x00;
    out[off + 2] = 0x5e;
    out[off + 3] = (daddr >>> 16) & 0x7f;
    out[off + 4] = (daddr >>> 8) & 0xff;
    out[off + 5] = daddr & 0xff;
  } else {
    for (let i = 0; i < 6; i++) out[off + i] = dstMac![dstMacOff + i]!;
  }
  for (let i = 0; i < 6; i++) out[off + 6 + i] = srcMac[srcMacOff + i]!;
  put16(out, off + 12, ETH_P_IP);

  // IPv4
  const ip = off + ETH_HLEN;
  out[ip] = 0x45;
  out[ip + 1] = s.tos & 0xff;
  put16(out, ip + 2, IP_HLEN + vlen);
  put16(out, ip + 4, s.ipId & 0xffff);
  put16(out, ip + 6, 0);
  out[ip + 8] = s.ttl & 0xff;
  out[ip + 9] = IPPROTO_VRRP;
  put32(out, ip + 12, saddr);
  put32(out, ip + 16, daddr);
  put16(out, ip + 10, ipv4HeaderChecksum(out, ip, IP_HLEN));

  // VRRP
  const o = ip + IP_HLEN;
  out[o] = ((s.version & 0x0f) << 4) | VRRP_TYPE_ADVERT;
  out[o + 1] = s.vrid & 0xff;
  out[o + 2] = s.priority & 0xff;
  out[o + 3] = count;
  if (s.version === VRRP_VERSION_2) {
    out[o + 4] = s.authType & 0xff;
    out[o + 5] = s.interval & 0xff;
  } else {
    put16(out, o + 4, s.interval & VRRP_V3_MAX_INTERVAL);
  }
  put16(out, o + 6, 0);
  const addrs = s.addrs;
  for (let i = 0; i < count; i++) put32(out, o + VRRP_HLEN + 4 * i, addrs[i]!);
  if (s.version === VRRP_VERSION_2) {
    const a = o + VRRP_HLEN + 4 * count;
    const ad = s.authData;
    for (let i = 0; i < VRRP_AUTH_LEN; i++) out[a + i] = s.authType === VRRP_AUTH_PASS ? (ad[i] ?? 0) : 0;
  }
  put16(out, o + 6, vrrpChecksum(out, o, vlen, s.version, saddr, daddr));
  return flen;
}
