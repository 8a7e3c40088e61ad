/**
 * The advert as a VRRP instance sees it (src/control/vrrp/instance.ts): what one packet said,
 * as numbers, in a reusable object. The packet codec (src/datapath/packet/vrrp.ts) parses into a
 * `VrrpView` over the frame's bytes and writes frames from a `VrrpAdvertSpec`; these helpers
 * convert between those and `VrrpAdvert`, so the instance never touches bytes and its tests can
 * run with or without the codec in between.
 */
import {
  VRRP_AUTH_LEN,
  VRRP_AUTH_NONE,
  VRRP_GROUP,
  VRRP_MAX_ADDRS,
  VRRP_TTL,
  VRRP_VERSION_2,
  type VrrpAdvertSpec,
  type VrrpView,
  vrrpAddr,
} from "../../datapath/packet/vrrp.js";

export class VrrpAdvert {
  version = VRRP_VERSION_2;
  vrid = 0;
  priority = 0;
  /** Advert interval in centiseconds (v2: the seconds field × 100). */
  intervalCs = 100;
  /** v2 auth type; -1 for v3. */
  authType = VRRP_AUTH_NONE;
  /** v2 auth data (8 bytes). */
  readonly authData = new Uint8Array(VRRP_AUTH_LEN);
  /** The first `count` entries of `addrs` are the advert's addresses. */
  count = 0;
  readonly addrs = new Uint32Array(VRRP_MAX_ADDRS);
  /** From the IP header: the sender's primary address, the destination, the TTL. */
  saddr = 0;
  daddr = VRRP_GROUP;
  ttl = VRRP_TTL;
}

/** Fill `out` from a view that `parseVrrp` returned OK for. Returns `out`. */
export function advertFromView(v: VrrpView, out: VrrpAdvert): VrrpAdvert {
  out.version = v.version;
  out.vrid = v.vrid;
  out.priority = v.priority;
  out.intervalCs = v.intervalCs;
  out.authType = v.authType;
  if (v.authOff >= 0) out.authData.set(v.buf.subarray(v.authOff, v.authOff + VRRP_AUTH_LEN));
  else out.authData.fill(0);
  out.count = v.count;
  for (let i = 0; i < v.count; i++) out.addrs[i] = vrrpAddr(v, i);
  out.saddr = v.saddr >>> 0;
  out.daddr = v.daddr >>> 0;
  out.ttl = v.ttl;
  return out;
}

/**
 * Fill the codec's spec from an advert, for `emitVrrp`: the interval goes back to the field's
 * unit (v2 seconds, v3 centiseconds). `ipId` is the caller's (keepalived counts per instance
 * from 1, skipping 0). Returns `s`.
 */
export function specFromAdvert(a: VrrpAdvert, ipId: number, s: VrrpAdvertSpec): VrrpAdvertSpec {
  s.version = a.version;
  s.vrid = a.vrid;
  s.priority = a.priority;
  s.interval = a.version === VRRP_VERSION_2 ? Math.round(a.intervalCs / 100) : a.intervalCs;
  s.authType = a.version === VRRP_VERSION_2 ? a.authType : VRRP_AUTH_NONE;
  s.authData.set(a.authData);
  s.count = a.count;
  s.addrs.set(a.addrs.subarray(0, a.count));
  s.saddr = a.saddr;
  s.daddr = a.daddr;
  s.ttl = a.ttl;
  s.ipId = ipId;
  return s;
}

/** Copy `src` into `dst` (for a network that delivers later than it sends). Returns `dst`. */
export function copyAdvert(src: VrrpAdvert, dst: VrrpAdvert): VrrpAdvert {
  dst.version = src.version;
  dst.vrid = src.vrid;
  dst.priority = src.priority;
  dst.intervalCs = src.intervalCs;
  dst.authType = src.authType;
  dst.authData.set(src.authData);
  dst.count = src.count;
  dst.addrs.set(src.addrs.subarray(0, src.count));
  dst.saddr = src.saddr;
  dst.daddr = src.daddr;
  dst.ttl = src.ttl;
  return dst;
}
