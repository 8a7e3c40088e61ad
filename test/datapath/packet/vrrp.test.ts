/**
 * The VRRP codec (src/datapath/packet/vrrp.ts) against adverts captured from a real keepalived
 * 2.2.7 (Debian bookworm's), plus round-trip, random-bytes and bit-flip properties.
 *
 * The goldens were captured as test/datapath/packet/vrrp-keepalived.test.ts does it live:
 * keepalived in a network namespace of its own, joined by a veth pair to a second namespace
 * where `tcpdump -w` listened (`ip proto 112`); keepalived side 10.18.0.1, MAC
 * 02:00:00:00:12:01; peer 10.18.0.2, MAC 02:00:00:00:12:02; and this configuration (v3:
 * `vrrp_version 3` in global_defs and no authentication block; v3 unicast: also
 * `unicast_peer { 10.18.0.2 }`), stopped with SIGTERM after a few adverts:
 *
 *   vrrp_instance VI_1 {
 *     state MASTER
 *     interface <veth>
 *     virtual_router_id 51
 *     priority 150
 *     advert_int 1
 *     authentication { auth_type PASS auth_pass secret1 }
 *     virtual_ipaddress { 10.18.0.100/24 10.18.0.101/24 }
 *   }
 *
 * The dumps in the comments are `tcpdump -n -e -vv -XX`; the constants are the same bytes.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, ParseStatus } from "../../../src/datapath/packet/view.js";
import {
  emitVrrp,
  IPPROTO_VRRP,
  parseVrrp,
  VRRP_AUTH_NONE,
  VRRP_AUTH_PASS,
  VRRP_GROUP,
  VRRP_STATUS_COUNT,
  VRRP_STATUS_NAMES,
  VRRP_TOS,
  VRRP_TTL,
  VrrpAdvertSpec,
  VrrpStatus,
  VrrpView,
  vrrpAddr,
  vrrpAuthEquals,
  vrrpAuthPass,
  vrrpChecksum,
  vrrpFrameLen,
  vrrpLen,
} from "../../../src/datapath/packet/vrrp.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { GcWatch, settle } from "../../support/gc.js";
import { hex, place, toHex } from "./helpers.js";

const MAC_K = macToBytes("02:00:00:00:12:01");
const MAC_P = macToBytes("02:00:00:00:12:02");
const K = ipToU32("10.18.0.1");
const P = ipToU32("10.18.0.2");
const VIP1 = ipToU32("10.18.0.100");
const VIP2 = ipToU32("10.18.0.101");

/**
 * VRRPv2, first advert after keepalived entered MASTER.
 *
 * 08:02:18.423530 02:00:00:00:12:01 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 58: (tos 0xc0, ttl 255, id 1, offset 0, flags [none], proto VRRP (112), length 44)
 *     10.18.0.1 > 224.0.0.18: VRRPv2, Advertisement, vrid 51, prio 150, authtype simple, intvl 1s, length 24, addrs(2): 10.18.0.100,10.18.0.101 auth "secret1"
 * 	0x0000:  0100 5e00 0012 0200 0000 1201 0800 45c0  ..^...........E.
 * 	0x0010:  002c 0001 0000 ff70 d07b 0a12 0001 e000  .,.....p.{......
 * 	0x0020:  0012 2133 9602 0101 c58f 0a12 0064 0a12  ..!3.........d..
 * 	0x0030:  0065 7365 6372 6574 3100                 .esecret1.
 */
const V2_ADVERT = hex(`
  0100 5e00 0012 0200 0000 1201 0800 45c0
  002c 0001 0000 ff70 d07b 0a12 0001 e000
  0012 2133 9602 0101 c58f 0a12 0064 0a12
  0065 7365 6372 6574 3100
`);

/**
 * VRRPv2, keepalived stopping (SIGTERM): priority 0.
 *
 * 08:02:21.483043 02:00:00:00:12:01 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 58: (tos 0xc0, ttl 255, id 5, offset 0, flags [none], proto VRRP (112), length 44)
 *     10.18.0.1 > 224.0.0.18: VRRPv2, Advertisement, vrid 51, prio 0, authtype simple, intvl 1s, length 24, addrs(2): 10.18.0.100,10.18.0.101 auth "secret1"
 * 	0x0000:  0100 5e00 0012 0200 0000 1201 0800 45c0  ..^...........E.
 * 	0x0010:  002c 0005 0000 ff70 d077 0a12 0001 e000  .,.....p.w......
 * 	0x0020:  0012 2133 0002 0101 5b90 0a12 0064 0a12  ..!3....[....d..
 * 	0x0030:  0065 7365 6372 6574 3100                 .esecret1.
 */
const V2_STOP = hex(`
  0100 5e00 0012 0200 0000 1201 0800 45c0
  002c 0005 0000 ff70 d077 0a12 0001 e000
  0012 2133 0002 0101 5b90 0a12 0064 0a12
  0065 7365 6372 6574 3100
`);

/**
 * VRRPv3, first advert.
 *
 * 08:02:27.858398 02:00:00:00:12:01 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 50: (tos 0xc0, ttl 255, id 1, offset 0, flags [none], proto VRRP (112), length 36)
 *     10.18.0.1 > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 150, intvl 100cs, length 16, addrs(2): 10.18.0.100,10.18.0.101
 * 	0x0000:  0100 5e00 0012 0200 0000 1201 0800 45c0  ..^...........E.
 * 	0x0010:  0024 0001 0000 ff70 d083 0a12 0001 e000  .$.....p........
 * 	0x0020:  0012 3133 9602 0064 38d3 0a12 0064 0a12  ..13...d8....d..
 * 	0x0030:  0065                                     .e
 */
const V3_ADVERT = hex(`
  0100 5e00 0012 0200 0000 1201 0800 45c0
  0024 0001 0000 ff70 d083 0a12 0001 e000
  0012 3133 9602 0064 38d3 0a12 0064 0a12
  0065
`);

/**
 * VRRPv3, priority 0 on SIGTERM.
 *
 * 08:02:30.930203 02:00:00:00:12:01 > 01:00:5e:00:00:12, ethertype IPv4 (0x0800), length 50: (tos 0xc0, ttl 255, id 5, offset 0, flags [none], proto VRRP (112), length 36)
 *     10.18.0.1 > 224.0.0.18: VRRPv3, Advertisement, vrid 51, prio 0, intvl 100cs, length 16, addrs(2): 10.18.0.100,10.18.0.101
 * 	0x0000:  0100 5e00 0012 0200 0000 1201 0800 45c0  ..^...........E.
 * 	0x0010:  0024 0005 0000 ff70 d07f 0a12 0001 e000  .$.....p........
 * 	0x0020:  0012 3133 0002 0064 ced3 0a12 0064 0a12  ..13...d.....d..
 * 	0x0030:  0065                                     .e
 */
const V3_STOP = hex(`
  0100 5e00 0012 0200 0000 1201 0800 45c0
  0024 0005 0000 ff70 d07f 0a12 0001 e000
  0012 3133 0002 0064 ced3 0a12 0064 0a12
  0065
`);

/**
 * VRRPv3 to a unicast peer: the pseudo-header carries the peer's address, so the checksum
 * differs from V3_ADVERT's although the VRRP message is the same.
 *
 * 08:02:44.175417 02:00:00:00:12:01 > 02:00:00:00:12:02, ethertype IPv4 (0x0800), length 50: (tos 0xc0, ttl 255, id 1, offset 0, flags [none], proto VRRP (112), length 36)
 *     10.18.0.1 > 10.18.0.2: VRRPv3, Advertisement, vrid 51, prio 150, intvl 100cs, length 16, addrs(2): 10.18.0.100,10.18.0.101
 * 	0x0000:  0200 0000 1202 0200 0000 1201 0800 45c0  ..............E.
 * 	0x0010:  0024 0001 0000 ff70 a682 0a12 0001 0a12  .$.....p........
 * 	0x0020:  0002 3133 9602 0064 0ed2 0a12 0064 0a12  ..13...d.....d..
 * 	0x0030:  0065                                     .e
 */
const V3_UNICAST = hex(`
  0200 0000 1202 0200 0000 1201 0800 45c0
  0024 0001 0000 ff70 a682 0a12 0001 0a12
  0002 3133 9602 0064 0ed2 0a12 0064 0a12
  0065
`);

interface Want {
  frame: Uint8Array;
  version: 2 | 3;
  priority: number;
  ipId: number;
  daddr: number;
  unicast: number;
}

const GOLDENS: Record<string, Want> = {
  V2_ADVERT: { frame: V2_ADVERT, version: 2, priority: 150, ipId: 1, daddr: VRRP_GROUP, unicast: 0 },
  V2_STOP: { frame: V2_STOP, version: 2, priority: 0, ipId: 5, daddr: VRRP_GROUP, unicast: 0 },
  V3_ADVERT: { frame: V3_ADVERT, version: 3, priority: 150, ipId: 1, daddr: VRRP_GROUP, unicast: 0 },
  V3_STOP: { frame: V3_STOP, version: 3, priority: 0, ipId: 5, daddr: VRRP_GROUP, unicast: 0 },
  V3_UNICAST: { frame: V3_UNICAST, version: 3, priority: 150, ipId: 1, daddr: P, unicast: 1 },
};

/** Parse a frame placed at an offset in a 0xa5-filled buffer. */
function parseAdvert(
  frame: Uint8Array,
  unicast = 0,
  v = new VrrpView(),
): { st: number; v: VrrpView; f: FrameView } {
  const p = place(frame);
  const f = new FrameView();
  const fst = parseFrame(p.buf, p.dv, p.off, p.len, f);
  if (fst !== ParseStatus.OK) return { st: -1 - fst, v, f };
  return { st: parseVrrp(f, v, unicast), v, f };
}

/** The VrrpView fields that do not depend on where the frame sits, plus the addresses. */
function fields(v: VrrpView) {
  const addrs: number[] = [];
  for (let i = 0; i < v.count; i++) addrs.push(vrrpAddr(v, i));
  return {
    version: v.version,
    type: v.type,
    vrid: v.vrid,
    priority: v.priority,
    count: v.count,
    authType: v.authType,
    interval: v.interval,
    intervalCs: v.intervalCs,
    checksum: v.checksum,
    len: v.len,
    addrOff: v.addrOff - v.off,
    authOff: v.authOff < 0 ? -1 : v.authOff - v.off,
    saddr: v.saddr,
    daddr: v.daddr,
    ttl: v.ttl,
    addrs,
    auth: v.authOff < 0 ? "" : toHex(v.buf.subarray(v.authOff, v.authOff + 8)),
  };
}

/** The spec keepalived's configuration above gives, for one golden. */
function specFor(w: Want): VrrpAdvertSpec {
  const s = new VrrpAdvertSpec();
  s.version = w.version;
  s.vrid = 51;
  s.priority = w.priority;
  s.interval = w.version === 2 ? 1 : 100;
  s.authType = w.version === 2 ? VRRP_AUTH_PASS : VRRP_AUTH_NONE;
  vrrpAuthPass("secret1", s.authData, 0);
  s.count = 2;
  s.addrs[0] = VIP1;
  s.addrs[1] = VIP2;
  s.saddr = K;
  s.daddr = w.daddr;
  s.ipId = w.ipId;
  return s;
}

/** An output buffer pre-filled with 0xa5 at a non-zero byteOffset, and an offset into it. */
function outBuf(size = 512) {
  const backing = new ArrayBuffer(size + 8);
  const buf = new Uint8Array(backing, 8, size).fill(0xa5);
  return { buf, dv: new DataView(backing, 8, size), off: 64 };
}

describe("parseVrrp on keepalived's adverts", () => {
  for (const [name, w] of Object.entries(GOLDENS)) {
    it(`${name}: every field`, () => {
      const { st, v } = parseAdvert(w.frame, w.unicast);
      expect(VRRP_STATUS_NAMES[st]).toBe("ok");
      const v2 = w.version === 2;
      expect(fields(v)).toEqual({
        version: w.version,
        type: 1,
        vrid: 51,
        priority: w.priority,
        count: 2,
        authType: v2 ? VRRP_AUTH_PASS : -1,
        interval: v2 ? 1 : 100,
        intervalCs: 100,
        checksum: (w.frame[40]! << 8) | w.frame[41]!,
        len: v2 ? 24 : 16,
        addrOff: 8,
        authOff: v2 ? 16 : -1,
        saddr: K,
        daddr: w.daddr,
        ttl: 255,
        addrs: [VIP1, VIP2],
        auth: v2 ? "7365637265743100" : "",
      });
      if (v2) {
        const pass = new Uint8Array(8);
        vrrpAuthPass("secret1", pass, 0);
        expect(vrrpAuthEquals(v, pass, 0)).toBe(1);
        vrrpAuthPass("secret2", pass, 0);
        expect(vrrpAuthEquals(v, pass, 0)).toBe(0);
      }
    });
  }

  it("reuses one view: a later parse leaves nothing of an earlier one", () => {
    const v = new VrrpView();
    parseAdvert(V2_ADVERT, 0, v);
    const { st } = parseAdvert(V3_STOP, 0, v);
    expect(st).toBe(VrrpStatus.OK);
    expect(fields(v)).toEqual(fields(parseAdvert(V3_STOP).v));
  });

  it("the v3 checksum covers the pseudo-header: the unicast message checked as multicast fails", () => {
    // Same VRRP bytes as V3_ADVERT but sent to 10.18.0.2: only the pseudo-header differs.
    expect(toHex(V3_UNICAST.subarray(34, 40))).toBe(toHex(V3_ADVERT.subarray(34, 40)));
    expect(toHex(V3_UNICAST.subarray(42))).toBe(toHex(V3_ADVERT.subarray(42)));
    const m = V3_UNICAST.slice();
    m.set(V3_ADVERT.subarray(0, 34)); // multicast Ethernet + IP header, unicast VRRP checksum
    expect(parseAdvert(m).st).toBe(VrrpStatus.BAD_CHECKSUM);
  });
});

describe("emitVrrp reproduces keepalived's frames", () => {
  for (const [name, w] of Object.entries(GOLDENS)) {
    it(`${name}: byte for byte, nothing written around it`, () => {
      const o = outBuf();
      const n = emitVrrp(o.buf, o.off, specFor(w), MAC_K, 0, w.unicast ? MAC_P : null, 0);
      expect(n).toBe(w.frame.length);
      expect(n).toBe(vrrpFrameLen(w.version, 2));
      expect(toHex(o.buf.subarray(o.off, o.off + n))).toBe(toHex(w.frame));
      expect(o.buf.subarray(0, o.off).every((x) => x === 0xa5)).toBe(true);
      expect(o.buf.subarray(o.off + n).every((x) => x === 0xa5)).toBe(true);
    });
  }

  it("vrrpChecksum gives the captured checksums", () => {
    for (const w of Object.values(GOLDENS)) {
      const len = vrrpLen(w.version, 2);
      expect(vrrpChecksum(w.frame, 34, len, w.version, K, w.daddr)).toBe((w.frame[40]! << 8) | w.frame[41]!);
    }
  });

  it("MACs may sit at offsets; a multicast destination ignores dstMac", () => {
    const o = outBuf();
    const macs = Uint8Array.of(0xff, 0xff, 0xff, ...MAC_K);
    const n = emitVrrp(o.buf, o.off, specFor(GOLDENS.V2_ADVERT!), macs, 3, MAC_P, 0);
    expect(toHex(o.buf.subarray(o.off, o.off + n))).toBe(toHex(V2_ADVERT));
  });

  it("derives the multicast MAC from the group (RFC 1112: low 23 bits)", () => {
    const s = specFor(GOLDENS.V3_ADVERT!);
    s.daddr = ipToU32("239.129.2.3");
    const o = outBuf();
    const n = emitVrrp(o.buf, o.off, s, MAC_K, 0, null, 0);
    expect(toHex(o.buf.subarray(o.off, o.off + 6))).toBe("01005e010203");
    expect(parseAdvert(o.buf.slice(o.off, o.off + n)).st).toBe(VrrpStatus.OK);
  });

  it("v2 without authentication sends 8 zero bytes whatever authData holds", () => {
    const s = specFor(GOLDENS.V2_ADVERT!);
    s.authType = VRRP_AUTH_NONE;
    const o = outBuf();
    const n = emitVrrp(o.buf, o.off, s, MAC_K, 0, null, 0);
    expect(toHex(o.buf.subarray(o.off + n - 8, o.off + n))).toBe("0000000000000000");
    const { st, v } = parseAdvert(o.buf.slice(o.off, o.off + n));
    expect([st, v.authType]).toEqual([VrrpStatus.OK, VRRP_AUTH_NONE]);
  });

  it("vrrpAuthPass cuts at 8 bytes and pads with zeros (keepalived's auth_pass)", () => {
    const b = new Uint8Array(10).fill(0xa5);
    expect(vrrpAuthPass("abc", b, 1)).toBe(3);
    expect(toHex(b)).toBe("a56162630000000000a5");
    expect(vrrpAuthPass("0123456789", b, 1)).toBe(8);
    expect(toHex(b)).toBe("a53031323334353637a5");
  });

  it("returns 0 and writes nothing when it cannot emit", () => {
    const o = outBuf(100);
    const s = specFor(GOLDENS.V2_ADVERT!);
    expect(emitVrrp(o.buf, 100 - 57, s, MAC_K, 0, null, 0)).toBe(0); // 58 bytes needed
    expect(emitVrrp(o.buf, -1, s, MAC_K, 0, null, 0)).toBe(0);
    s.daddr = P;
    expect(emitVrrp(o.buf, 0, s, MAC_K, 0, null, 0)).toBe(0); // unicast without a MAC
    const bad = specFor(GOLDENS.V2_ADVERT!);
    bad.version = 4;
    expect(emitVrrp(o.buf, 0, bad, MAC_K, 0, null, 0)).toBe(0);
    const many = specFor(GOLDENS.V2_ADVERT!);
    many.count = 256;
    expect(emitVrrp(o.buf, 0, many, MAC_K, 0, null, 0)).toBe(0);
    expect(o.buf.every((x) => x === 0xa5)).toBe(true);
    expect(emitVrrp(o.buf, 100 - 58, specFor(GOLDENS.V2_ADVERT!), MAC_K, 0, null, 0)).toBe(58);
  });
});

/** Set an IP header field and fix the IP header checksum, so only the VRRP checks see it. */
function withIp(frame: Uint8Array, edit: (f: Uint8Array) => void): Uint8Array {
  const f = frame.slice();
  edit(f);
  f[24] = 0;
  f[25] = 0;
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += (f[i]! << 8) | f[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  f[24] = c >>> 8;
  f[25] = c & 0xff;
  return f;
}

/** Rewrite the VRRP checksum of a frame (IP header at 14, VRRP at 34). */
function withVrrp(frame: Uint8Array, edit: (f: Uint8Array) => void): Uint8Array {
  const f = frame.slice();
  edit(f);
  const tot = (f[16]! << 8) | f[17]!;
  const version = f[34]! >>> 4;
  const sa = ((f[26]! << 24) | (f[27]! << 16) | (f[28]! << 8) | f[29]!) >>> 0;
  const da = ((f[30]! << 24) | (f[31]! << 16) | (f[32]! << 8) | f[33]!) >>> 0;
  const c = vrrpChecksum(f, 34, tot - 20, version === 3 ? 3 : 2, sa, da);
  f[40] = c >>> 8;
  f[41] = c & 0xff;
  return f;
}

describe("parseVrrp refuses", () => {
  const cases: [string, Uint8Array, number, number][] = [
    ["an AH packet (protocol 51)", withIp(V3_ADVERT, (f) => (f[23] = 51)), 0, VrrpStatus.NOT_VRRP],
    ["a fragment (MF)", withIp(V3_ADVERT, (f) => (f[20] = 0x20)), 0, VrrpStatus.FRAGMENT],
    ["fewer than 8 bytes", withIp(V3_ADVERT.subarray(0, 40), (f) => (f[17] = 26)), 0, VrrpStatus.SHORT],
    ["version 1", withVrrp(V3_ADVERT, (f) => (f[34] = 0x11)), 0, VrrpStatus.BAD_VERSION],
    ["version 4", withVrrp(V3_ADVERT, (f) => (f[34] = 0x41)), 0, VrrpStatus.BAD_VERSION],
    ["type 2", withVrrp(V3_ADVERT, (f) => (f[34] = 0x32)), 0, VrrpStatus.BAD_TYPE],
    ["a count of 3 with 2 addresses", withVrrp(V3_ADVERT, (f) => (f[37] = 3)), 0, VrrpStatus.BAD_LENGTH],
    ["a count of 1 with 2 addresses", withVrrp(V2_ADVERT, (f) => (f[37] = 1)), 0, VrrpStatus.BAD_LENGTH],
    [
      "v2 without its auth data",
      withIp(V2_ADVERT.subarray(0, 50), (f) => (f[17] = 36)),
      0,
      VrrpStatus.BAD_LENGTH,
    ],
    [
      "the v3 message read as v2 (no auth bytes)",
      withVrrp(V3_ADVERT, (f) => (f[34] = 0x21)),
      0,
      VrrpStatus.BAD_LENGTH,
    ],
    ["TTL 254 on a multicast instance", withIp(V3_ADVERT, (f) => (f[22] = 254)), 0, VrrpStatus.BAD_TTL],
    ["auth type 3", withVrrp(V2_ADVERT, (f) => (f[38] = 3)), 0, VrrpStatus.BAD_AUTH_TYPE],
    ["a wrong checksum", withIp(V2_ADVERT, (f) => (f[41]! ^= 1)), 0, VrrpStatus.BAD_CHECKSUM],
    [
      "a changed priority without a new checksum",
      withIp(V3_ADVERT, (f) => (f[36] = 151)),
      0,
      VrrpStatus.BAD_CHECKSUM,
    ],
    ["advert interval 0 (v2)", withVrrp(V2_ADVERT, (f) => (f[39] = 0)), 0, VrrpStatus.BAD_INTERVAL],
    [
      "advert interval 0 (v3, reserved bits set)",
      withVrrp(V3_ADVERT, (f) => {
        f[38] = 0xf0;
        f[39] = 0;
      }),
      0,
      VrrpStatus.BAD_INTERVAL,
    ],
  ];
  for (const [what, frame, unicast, want] of cases) {
    it(`${what}: ${VRRP_STATUS_NAMES[want]}`, () => {
      expect(VRRP_STATUS_NAMES[parseAdvert(frame, unicast).st]).toBe(VRRP_STATUS_NAMES[want]);
    });
  }

  it("accepts TTL < 255 on a unicast instance (keepalived checks it only for multicast)", () => {
    const f = withIp(V3_UNICAST, (x) => (x[22] = 64));
    expect(parseAdvert(f, 1).st).toBe(VrrpStatus.OK);
    expect(parseAdvert(f, 0).st).toBe(VrrpStatus.BAD_TTL);
  });

  it("ignores v3's reserved bits and Ethernet padding past the IP packet", () => {
    const f = withVrrp(V3_ADVERT, (x) => (x[38] = 0xf0));
    const padded = new Uint8Array(60);
    padded.set(f);
    const { st, v } = parseAdvert(padded);
    expect([st, v.interval, v.intervalCs]).toEqual([VrrpStatus.OK, 100, 100]);
  });

  it("names every status", () => {
    expect(VRRP_STATUS_NAMES.length).toBe(VRRP_STATUS_COUNT);
    expect(Object.keys(VrrpStatus).length).toBe(VRRP_STATUS_COUNT);
    for (const [k, n] of Object.entries(VrrpStatus)) {
      expect(VRRP_STATUS_NAMES[n]).toBe(n === 0 ? "ok" : `vrrp_${k.toLowerCase()}`);
    }
  });
});

const ipArb = fc.integer({ min: 0x01000000, max: 0xdfffffff });

const specArb = fc
  .record({
    version: fc.constantFrom(2, 3),
    vrid: fc.integer({ min: 1, max: 255 }),
    priority: fc.integer({ min: 0, max: 255 }),
    intervalV2: fc.integer({ min: 1, max: 255 }),
    intervalV3: fc.integer({ min: 1, max: 0xfff }),
    auth: fc.boolean(),
    pass: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    addrs: fc.array(ipArb, { maxLength: 40 }),
    saddr: ipArb,
    unicastTo: fc.option(ipArb, { nil: undefined }),
    ipId: fc.nat(0xffff),
    mac: fc.uint8Array({ minLength: 6, maxLength: 6 }),
    peerMac: fc.uint8Array({ minLength: 6, maxLength: 6 }),
  })
  .map((r) => {
    const s = new VrrpAdvertSpec();
    s.version = r.version;
    s.vrid = r.vrid;
    s.priority = r.priority;
    s.interval = r.version === 2 ? r.intervalV2 : r.intervalV3;
    s.authType = r.version === 2 && r.auth ? VRRP_AUTH_PASS : VRRP_AUTH_NONE;
    s.authData.set(r.pass);
    s.count = r.addrs.length;
    s.addrs.set(r.addrs);
    s.saddr = r.saddr;
    s.daddr = r.unicastTo ?? VRRP_GROUP;
    s.ipId = r.ipId;
    return { s, mac: r.mac, peerMac: r.peerMac, unicast: r.unicastTo === undefined ? 0 : 1 };
  });

function emitted(s: VrrpAdvertSpec, mac: Uint8Array, peerMac: Uint8Array): Uint8Array {
  const out = new Uint8Array(2048);
  const n = emitVrrp(out, 0, s, mac, 0, peerMac, 0);
  expect(n).toBe(vrrpFrameLen(s.version, s.count));
  return out.slice(0, n);
}

describe("properties", () => {
  it("emit → parse gives back every field", () => {
    fc.assert(
      fc.property(specArb, ({ s, mac, peerMac, unicast }) => {
        const frame = emitted(s, mac, peerMac);
        const { st, v, f } = parseAdvert(frame, unicast);
        expect(st).toBe(VrrpStatus.OK);
        expect([f.ttl, f.ipId, f.proto, f.df, f.dv.getUint8(f.l3Off + 1)]).toEqual([
          VRRP_TTL,
          s.ipId,
          IPPROTO_VRRP,
          0,
          VRRP_TOS,
        ]);
        const addrs = Array.from(s.addrs.subarray(0, s.count));
        const got = fields(v);
        expect(got.version).toBe(s.version);
        expect([got.vrid, got.priority, got.count, got.interval]).toEqual([
          s.vrid,
          s.priority,
          s.count,
          s.interval,
        ]);
        expect(got.intervalCs).toBe(s.version === 2 ? s.interval * 100 : s.interval);
        expect(got.addrs).toEqual(addrs);
        expect([got.saddr, got.daddr]).toEqual([s.saddr, s.daddr]);
        if (s.version === 2) {
          expect(got.authType).toBe(s.authType);
          expect(got.auth).toBe(s.authType === VRRP_AUTH_PASS ? toHex(s.authData) : "0000000000000000");
        } else {
          expect(got.authType).toBe(-1);
        }
        const dst = frame.subarray(0, 6);
        if (unicast) expect(toHex(dst)).toBe(toHex(peerMac));
        else expect(toHex(dst)).toBe("01005e000012");
        expect(toHex(frame.subarray(6, 12))).toBe(toHex(mac));
      }),
      { numRuns: 300 },
    );
  });

  it("random bytes never throw and always give a status", () => {
    const v = new VrrpView();
    const f = new FrameView();
    const hdr = V3_ADVERT.subarray(0, 34);
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 120 }),
        fc.boolean(),
        fc.nat(1),
        (bytes, withHeader, unicast) => {
          // Either raw bytes, or a valid Ethernet + IPv4 header (length and checksum fixed) in
          // front of random bytes: the only way random input reaches the VRRP checks.
          let frame: Uint8Array = bytes;
          if (withHeader) {
            frame = new Uint8Array(34 + bytes.length);
            frame.set(hdr);
            frame.set(bytes, 34);
            frame = withIp(frame, (x) => {
              x[16] = ((20 + bytes.length) >>> 8) & 0xff;
              x[17] = (20 + bytes.length) & 0xff;
            });
          }
          const p = place(frame);
          const fst = parseFrame(p.buf, p.dv, p.off, p.len, f);
          if (withHeader) expect(fst).toBe(ParseStatus.OK);
          if (fst !== ParseStatus.OK) return;
          const st = parseVrrp(f, v, unicast);
          expect(Number.isInteger(st) && st >= 0 && st <= VrrpStatus.BAD_INTERVAL).toBe(true);
          if (st === VrrpStatus.OK) expect(v.off + v.len).toBeLessThanOrEqual(p.off + p.len);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("a flipped bit never parses OK with different fields", () => {
    fc.assert(
      fc.property(specArb, fc.nat(), ({ s, mac, peerMac, unicast }, bitSeed) => {
        const frame = emitted(s, mac, peerMac);
        const before = fields(parseAdvert(frame, unicast).v);
        const bit = bitSeed % (frame.length * 8);
        const flipped = frame.slice();
        flipped[bit >>> 3]! ^= 0x80 >>> (bit & 7);
        const { st, v } = parseAdvert(flipped, unicast);
        if (st === VrrpStatus.OK) {
          // Only the Ethernet addresses are outside every checksum and every VRRP field.
          expect(bit).toBeLessThan(12 * 8);
          expect(fields(v)).toEqual(before);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("every single-bit flip of each golden's IP header or VRRP message is refused", () => {
    for (const w of Object.values(GOLDENS)) {
      for (let bit = 14 * 8; bit < w.frame.length * 8; bit++) {
        const f = w.frame.slice();
        f[bit >>> 3]! ^= 0x80 >>> (bit & 7);
        expect(parseAdvert(f, w.unicast).st, `bit ${bit}`).not.toBe(VrrpStatus.OK);
      }
    }
  });
});

describe("no allocation", () => {
  it("parseFrame + parseVrrp + emitVrrp, 200,000 times each, cause no minor GC", async () => {
    const gc = new GcWatch().start();
    const frames = Object.values(GOLDENS).map((w) => ({ p: place(w.frame), w, s: specFor(w) }));
    const f = new FrameView();
    const v = new VrrpView();
    const out = new Uint8Array(256);
    const run = (n: number): number => {
      let acc = 0;
      for (let i = 0; i < n; i++) {
        const x = frames[i % frames.length]!;
        parseFrame(x.p.buf, x.p.dv, x.p.off, x.p.len, f);
        acc += parseVrrp(f, v, x.w.unicast) + v.priority;
        x.s.ipId = i & 0xffff;
        acc += emitVrrp(out, 0, x.s, MAC_K, 0, MAC_P, 0);
      }
      return acc;
    };
    run(20_000); // warm up: let the JIT settle
    await settle();
    const { minors, value: acc } = await gc.during(() => run(200_000));
    gc.stop();
    expect(acc).toBeGreaterThan(0);
    expect(minors).toBe(0);
  });
});
