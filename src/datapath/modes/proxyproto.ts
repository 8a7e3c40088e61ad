/**
 * PROXY protocol headers (haproxy's proxy-protocol.txt, versions 1 and 2) for TCP over IPv4,
 * written straight into a frame buffer: no strings, no allocation.
 *
 *   v1: "PROXY TCP4 <client ip> <dest ip> <client port> <dest port>\r\n" (at most 56 bytes)
 *   v2: 12-byte signature, 0x21 (v2, PROXY), 0x11 (AF_INET, STREAM), length 12, then source and
 *       destination addresses and ports: 28 bytes.
 */

export const PROXY_V1_MAX = 56;
export const PROXY_V2_LEN = 28;
const V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V1_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20, 0x54, 0x43, 0x50, 0x34, 0x20]; // "PROXY TCP4 "

/** Largest header of a version (for MSS clamping). */
export function proxyMaxLen(version: number): number {
  return version === 2 ? PROXY_V2_LEN : PROXY_V1_MAX;
}

function decLen(n: number): number {
  return n >= 10000 ? 5 : n >= 1000 ? 4 : n >= 100 ? 3 : n >= 10 ? 2 : 1;
}

function ipLen(a: number): number {
  return decLen(a >>> 24) + decLen((a >>> 16) & 0xff) + decLen((a >>> 8) & 0xff) + decLen(a & 0xff) + 3;
}

/** Length of the header for these endpoints. */
export function proxyLen(
  version: number,
  saddr: number,
  daddr: number,
  sport: number,
  dport: number,
): number {
  if (version === 2) return PROXY_V2_LEN;
  return V1_PREFIX.length + ipLen(saddr) + 1 + ipLen(daddr) + 1 + decLen(sport) + 1 + decLen(dport) + 2;
}

function putDec(b: Uint8Array, o: number, n: number): number {
  const len = decLen(n);
  for (let k = len - 1; k >= 0; k--) {
    b[o + k] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return o + len;
}

function putIp(b: Uint8Array, o: number, a: number): number {
  o = putDec(b, o, a >>> 24);
  b[o++] = 0x2e;
  o = putDec(b, o, (a >>> 16) & 0xff);
  b[o++] = 0x2e;
  o = putDec(b, o, (a >>> 8) & 0xff);
  b[o++] = 0x2e;
  return putDec(b, o, a & 0xff);
}

/** Write the header at b[o..]; returns its length. */
export function writeProxy(
  version: number,
  b: Uint8Array,
  o: number,
  saddr: number,
  daddr: number,
  sport: number,
  dport: number,
): number {
  const start = o;
  if (version === 2) {
    for (let k = 0; k < 12; k++) b[o + k] = V2_SIG[k]!;
    b[o + 12] = 0x21;
    b[o + 13] = 0x11;
    b[o + 14] = 0;
    b[o + 15] = 12;
    b[o + 16] = saddr >>> 24;
    b[o + 17] = (saddr >>> 16) & 0xff;
    b[o + 18] = (saddr >>> 8) & 0xff;
    b[o + 19] = saddr & 0xff;
    b[o + 20] = daddr >>> 24;
    b[o + 21] = (daddr >>> 16) & 0xff;
    b[o + 22] = (daddr >>> 8) & 0xff;
    b[o + 23] = daddr & 0xff;
    b[o + 24] = sport >>> 8;
    b[o + 25] = sport & 0xff;
    b[o + 26] = dport >>> 8;
    b[o + 27] = dport & 0xff;
    return PROXY_V2_LEN;
  }
  for (let k = 0; k < V1_PREFIX.length; k++) b[o + k] = V1_PREFIX[k]!;
  o += V1_PREFIX.length;
  o = putIp(b, o, saddr);
  b[o++] = 0x20;
  o = putIp(b, o, daddr);
  b[o++] = 0x20;
  o = putDec(b, o, sport);
  b[o++] = 0x20;
  o = putDec(b, o, dport);
  b[o++] = 0x0d;
  b[o++] = 0x0a;
  return o - start;
}
