/**
 * SYN proxy (per service, lvsadm --synproxy; after DPVS's): the director answers a client's SYN
 * itself with a SYN-ACK whose sequence number is a SYN cookie, and keeps no state for it. Only
 * when the client's ACK proves the cookie does the engine schedule a dest, create the
 * connection and open the connection to the real server with the client's ISN; once the
 * server's SYN-ACK is back, sequence numbers are shifted between the two ISNs for the rest of
 * the connection (the engine, engine.ts `synProxy*`). This file holds what is not the flow:
 *
 * - the cookie, laid out as Linux lays out its SYN cookies (net/ipv4/syncookies.c, the
 *   structure, not the code): `cookie = h1 + isn + (count << 24) + ((h2(count) + mssIndex) mod 2^24)`,
 *   where h1 and h2 are keyed hashes of the 4-tuple (h2 with the time counter too), `isn` is
 *   the client's ISN, `count` a time counter in 64-second slots (8 bits) and `mssIndex` picks the
 *   MSS from a 4-entry table. Checking an ACK undoes the sum: the counter must be the current or
 *   the previous slot and the remaining 24 bits must leave an MSS index < 4 after subtracting
 *   h2: a forger without the secret has 4 chances in 2^24 per guess;
 * - the keyed hash: HalfSipHash-2-4's ARX rounds over 32-bit words (the construction Linux's
 *   hsiphash uses), with a 64-bit secret. It is a keyed PRF, not a digest: predicting a cookie for a
 *   tuple needs the secret, which lvsd draws from crypto.randomBytes at start and replaces every
 *   `SECRET_ROTATE_MS` (the previous secret stays valid, so cookies in flight survive a rotation);
 * - the stash: a fixed pool of `STASH_SLOTS` buffers, one per connection whose handshake with
 *   the real server is under way, holding the client's ACK (and data it carried, and what the
 *   client sends before the server answers, up to `STASH_BYTES`) until the server's SYN-ACK comes;
 * - the frame writers: the cookie SYN-ACK, and the client's ACK turned into the SYN to the server.
 *
 * What is negotiated: the cookie SYN-ACK carries one option, the MSS; no window scaling, SACK or
 * timestamps, and so the SYN to the real server carries only the MSS too (both sides agree on
 * none of them). Costs: a window of at most 64 KiB per direction, loss recovery without SACK,
 * no PAWS/RTT timestamps (docs/security.md).
 *
 * Nothing here allocates or throws on the per-packet path.
 */
import { IPPROTO_TCP } from "../lib/proto.js";
import { csumReplace16, ipv4HeaderChecksum, tcpUdpChecksum } from "./packet/checksum.js";
import { EMIT_TTL, put16, put32, writeIpHeader } from "./packet/emit.js";
import { ETH_HLEN, ETH_P_IP, type FrameView, TCP_ACK, TCP_SYN } from "./packet/view.js";

/** The MSS values a cookie can encode (its index is 2 bits), as Linux's msstab for IPv4. */
export const SYNPROXY_MSS: readonly number[] = [536, 1300, 1440, 1460];
/** Length of a cookie time slot (Linux's counter ticks once a minute). */
export const COOKIE_PERIOD_MS = 64_000;
/** The control plane replaces the secret this often. */
export const SECRET_ROTATE_MS = 10 * 60_000;
/** Connections whose handshake with the real server may be under way at once. */
export const STASH_SLOTS = 256;
/** Bytes of client packets (IP packets) kept per such connection. */
export const STASH_BYTES = 8192;
/** The window the cookie SYN-ACK offers: what the client may send before the server answers. */
export const SYNACK_WINDOW = 4096;
/** A client packet while the handshake is pending re-sends the SYN when the last went this long ago. */
export const SYN_RESEND_MS = 1000;
/** TCP header length of the SYN-ACK and the SYN: 20 bytes + the MSS option. */
export const SYN_TCP_HLEN = 24;

const IP_HLEN = 20;

function rotl(x: number, b: number): number {
  return (x << b) | (x >>> (32 - b));
}

/**
 * Keyed 32-bit hash of four 32-bit words (HalfSipHash-2-4 rounds: two per word, four to
 * finish), as an int32. State in locals: no allocation.
 */
export function keyedHash(m0: number, m1: number, m2: number, m3: number, k0: number, k1: number): number {
  let v0 = k0 | 0;
  let v1 = k1 | 0;
  let v2 = (0x6c796765 ^ k0) | 0;
  let v3 = (0x74656462 ^ k1) | 0;
  for (let w = 0; w < 9; w++) {
    // words 0-3: the message; word 4: the length block; 5-8: finalisation (v2 ^= 0xff first)
    const m = w === 0 ? m0 : w === 1 ? m1 : w === 2 ? m2 : w === 3 ? m3 : w === 4 ? 16 << 24 : 0;
    if (w <= 4) v3 ^= m;
    else if (w === 5) v2 ^= 0xff;
    const rounds = w <= 4 ? 2 : 1;
    for (let r = 0; r < rounds; r++) {
      v0 = (v0 + v1) | 0;
      v1 = rotl(v1, 5) ^ v0;
      v0 = rotl(v0, 16);
      v2 = (v2 + v3) | 0;
      v3 = rotl(v3, 8) ^ v2;
      v0 = (v0 + v3) | 0;
      v3 = rotl(v3, 7) ^ v0;
      v2 = (v2 + v1) | 0;
      v1 = rotl(v1, 13) ^ v2;
      v2 = rotl(v2, 16);
    }
    if (w <= 4) v0 ^= m;
  }
  return v1 ^ v3; // int32: a uint32 return value could be boxed
}

/** Index of the largest MSS of the table not above the client's (0 when it sent none or less). */
export function mssIndex(clientMss: number): number {
  let k = SYNPROXY_MSS.length - 1;
  while (k > 0 && SYNPROXY_MSS[k]! > clientMss) k--;
  return k;
}

/** The word h1 hashes instead of a counter (counters are 0..255). */
const H1_WORD = 0x10000;

export class SynProxy {
  /** The secret in force and the previous one (valid while cookies made with it may be in flight). */
  private k0: number;
  private k1: number;
  private p0 = 0;
  private p1 = 0;
  private hasPrev = false;

  readonly stash = new Uint8Array(STASH_SLOTS * STASH_BYTES);
  /** Bytes used in each stash buffer. */
  readonly stashUsed = new Uint16Array(STASH_SLOTS);
  /** Connection slot owning each buffer (-1: free). The engine also checks the connection's side. */
  readonly stashOwner = new Int32Array(STASH_SLOTS).fill(-1);
  /** When the SYN for each buffer's connection last went to the real server (ms). */
  readonly stashSynAt = new Float64Array(STASH_SLOTS);
  /** The MSS the SYN to the real server carries (from the cookie), per buffer. */
  readonly stashMss = new Uint16Array(STASH_SLOTS);
  /** Whether the SYN for each buffer's connection already went again after a reset (below). */
  readonly stashReset = new Uint8Array(STASH_SLOTS);
  private hand = 0;

  /** Counters (lvsadm --synproxy-stats / metrics): cookies sent, ACKs that proved one, handshakes done, server RSTs. */
  cookiesSent = 0;
  cookiesValid = 0;
  handshakes = 0;
  serverResets = 0;
  /**
   * Real servers that answered the SYN with an ACK for an older connection on the same tuple
   * (RFC 5961's challenge ACK, or a TIME-WAIT socket's ACK): each got an RST (RFC 793, SYN-SENT).
   */
  staleServerConns = 0;
  /** SYN-ACKs the XDP responder sent (src/datapath/synresponder.ts copies its count here). */
  xdpCookiesSent = 0;

  constructor(k0 = (Math.random() * 0x100000000) >>> 0, k1 = (Math.random() * 0x100000000) >>> 0) {
    this.k0 = k0 | 0;
    this.k1 = k1 | 0;
  }

  /** The counters by name (control plane: lvsadm --synproxy-stats, lvs_synproxy_total). */
  counterRows(): [string, number][] {
    return [
      ["cookies_sent", this.cookiesSent],
      ["cookies_valid", this.cookiesValid],
      ["handshakes", this.handshakes],
      ["server_resets", this.serverResets],
      ["stale_server_conns", this.staleServerConns],
      ["xdp_cookies_sent", this.xdpCookiesSent],
    ];
  }

  /** The secret in force (the XDP responder's map gets a copy). */
  get key0(): number {
    return this.k0;
  }
  get key1(): number {
    return this.k1;
  }

  /** Put a new secret in force; the old one keeps validating cookies until the next rotation. */
  rotate(k0: number, k1: number): void {
    this.p0 = this.k0;
    this.p1 = this.k1;
    this.hasPrev = true;
    this.k0 = k0 | 0;
    this.k1 = k1 | 0;
  }

  /** The 8-bit time counter at `nowMs`. */
  static counter(nowMs: number): number {
    return Math.floor(nowMs / COOKIE_PERIOD_MS) & 0xff;
  }

  /**
   * The cookie for client `saddr:sport` -> `daddr:dport` with ISN `isn`, as an int32 (`>>> 0` for
   * the sequence number; numbers cross calls as int32 so that V8 never boxes them).
   */
  make(
    saddr: number,
    daddr: number,
    sport: number,
    dport: number,
    isn: number,
    mssIdx: number,
    nowMs: number,
  ): number {
    const ports = (sport << 16) | dport;
    const cnt = SynProxy.counter(nowMs);
    const h1 = keyedHash(saddr, daddr, ports, H1_WORD, this.k0, this.k1);
    const h2 = keyedHash(saddr, daddr, ports, cnt, this.k0, this.k1);
    return (h1 + isn + cnt * 0x1000000 + ((h2 + mssIdx) & 0xffffff)) | 0;
  }

  /**
   * Check a cookie (the ACK's ack - 1) against the tuple and the client's ISN (its seq - 1):
   * the MSS index it encodes, or -1 when it is not one of ours from the current or previous slot.
   */
  check(
    saddr: number,
    daddr: number,
    sport: number,
    dport: number,
    isn: number,
    cookie: number,
    nowMs: number,
  ): number {
    const r = this.checkWith(saddr, daddr, sport, dport, isn, cookie, nowMs, this.k0, this.k1);
    if (r >= 0 || !this.hasPrev) return r;
    return this.checkWith(saddr, daddr, sport, dport, isn, cookie, nowMs, this.p0, this.p1);
  }

  private checkWith(
    saddr: number,
    daddr: number,
    sport: number,
    dport: number,
    isn: number,
    cookie: number,
    nowMs: number,
    k0: number,
    k1: number,
  ): number {
    const ports = (sport << 16) | dport;
    const h1 = keyedHash(saddr, daddr, ports, H1_WORD, k0, k1);
    const diff = (cookie - h1 - isn) >>> 0;
    const cnt = diff >>> 24;
    if (((SynProxy.counter(nowMs) - cnt) & 0xff) > 1) return -1;
    const h2 = keyedHash(saddr, daddr, ports, cnt, k0, k1);
    const idx = (diff - h2) & 0xffffff;
    return idx < SYNPROXY_MSS.length ? idx : -1;
  }

  // ------------------------------------------------------------------ the stash

  /**
   * A free stash buffer for connection `c`, or -1. `inUse(s)` says whether buffer s still
   * belongs to a live pending connection (the engine checks the connection table).
   */
  stashAlloc(c: number, inUse: (s: number) => boolean): number {
    for (let n = 0; n < STASH_SLOTS; n++) {
      const s = this.hand;
      this.hand = s + 1 === STASH_SLOTS ? 0 : s + 1;
      if (this.stashOwner[s]! >= 0 && inUse(s)) continue;
      this.stashOwner[s] = c;
      this.stashUsed[s] = 0;
      this.stashReset[s] = 0;
      return s;
    }
    return -1;
  }

  stashFree(s: number): void {
    this.stashOwner[s] = -1;
    this.stashUsed[s] = 0;
  }

  /** The offset in `stash` of the TCP header of buffer s's first packet (the client's ACK). */
  private stashTcp(s: number): number {
    const o = s * STASH_BYTES + 2;
    return o + (this.stash[o]! & 0x0f) * 4;
  }

  /** The sequence number of buffer s's first packet: the client's ISN + 1 (int32). */
  stashSeq(s: number): number {
    const st = this.stash;
    const t = this.stashTcp(s);
    return (st[t + 4]! << 24) | (st[t + 5]! << 16) | (st[t + 6]! << 8) | st[t + 7]!;
  }

  /** The window of buffer s's first packet (what the SYN to the real server offers). */
  stashWindow(s: number): number {
    const t = this.stashTcp(s) + 14;
    return (this.stash[t]! << 8) | this.stash[t + 1]!;
  }

  /** Append the IP packet of `v` to buffer s as [length u16][packet]. False when it does not fit. */
  stashPut(s: number, v: FrameView): boolean {
    const used = this.stashUsed[s]!;
    const n = v.ipTotalLen;
    if (used + 2 + n > STASH_BYTES) return false;
    const o = s * STASH_BYTES + used;
    const b = this.stash;
    b[o] = n >>> 8;
    b[o + 1] = n & 0xff;
    b.set(v.buf.subarray(v.l3Off, v.l3Off + n), o + 2);
    this.stashUsed[s] = used + 2 + n;
    return true;
  }

  // ------------------------------------------------------------------ frames

  /**
   * Write the cookie SYN-ACK answering the SYN in `v` at out[off..] (Ethernet addresses are
   * left to the caller's routing; the EtherType is set). Returns the frame length.
   */
  writeSynAck(out: Uint8Array, off: number, v: FrameView, cookie: number, mss: number): number {
    const ack = (v.dv.getUint32(v.l4Off + 4) + 1) | 0;
    return writeReflected(out, off, v, cookie, ack, TCP_SYN | TCP_ACK, SYNACK_WINDOW, mss);
  }
}

/**
 * Write a TCP segment back to the sender of the one in `v` (addresses and ports swapped) at
 * out[off..]: sequence and acknowledgment numbers, flags and window as given, one option (MSS
 * `mss`) unless `mss` is 0, no payload. Ethernet addresses are left to the caller's routing (the
 * EtherType is set). Returns the frame length, 0 when it does not fit.
 */
export function writeReflected(
  out: Uint8Array,
  off: number,
  v: FrameView,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  mss: number,
): number {
  const tcpLen = mss !== 0 ? SYN_TCP_HLEN : 20;
  const len = ETH_HLEN + IP_HLEN + tcpLen;
  if (off + len > out.length) return 0;
  const saddr = v.daddr | 0;
  const daddr = v.saddr | 0;
  put16(out, off + 12, ETH_P_IP);
  const ip = off + ETH_HLEN;
  writeIpHeader(out, ip, 0, IP_HLEN + tcpLen, IPPROTO_TCP, saddr, daddr, EMIT_TTL, 0x4000);
  const t = ip + IP_HLEN;
  put16(out, t, v.dport);
  put16(out, t + 2, v.sport);
  put32(out, t + 4, seq);
  put32(out, t + 8, ack);
  out[t + 12] = (tcpLen / 4) << 4;
  out[t + 13] = flags;
  put16(out, t + 14, window);
  put16(out, t + 16, 0);
  put16(out, t + 18, 0);
  if (mss !== 0) {
    out[t + 20] = 2;
    out[t + 21] = 4;
    put16(out, t + 22, mss);
  }
  put16(out, t + 16, tcpUdpChecksum(out, saddr, daddr, IPPROTO_TCP, t, tcpLen, t + 16));
  return len;
}

/**
 * Rewrite the TCP segment in `v` (in place) into a SYN with sequence number `isn`, window
 * `window` and one option, MSS `mss`: the client's ACK becomes the SYN to the real server.
 * Payload is cut off (the caller stashed it). `room` is the free space after the frame; false
 * when the 24-byte header does not fit. Fixes the IP and TCP checksums and `v`'s fields.
 */
export function rewriteAsSyn(v: FrameView, isn: number, window: number, mss: number, room: number): boolean {
  const need = v.l4Off + SYN_TCP_HLEN - (v.base + v.len);
  if (need > room) return false;
  const b = v.buf;
  const t = v.l4Off;
  put32(b, t + 4, isn >>> 0);
  put32(b, t + 8, 0);
  b[t + 12] = (SYN_TCP_HLEN / 4) << 4;
  b[t + 13] = TCP_SYN;
  put16(b, t + 14, window > 0xffff ? 0xffff : window);
  put16(b, t + 16, 0);
  put16(b, t + 18, 0);
  b[t + 20] = 2;
  b[t + 21] = 4;
  put16(b, t + 22, mss);
  v.ipTotalLen = v.ipHdrLen + SYN_TCP_HLEN;
  v.dv.setUint16(v.l3Off + 2, v.ipTotalLen);
  v.dv.setUint16(v.l3Off + 10, 0);
  v.dv.setUint16(v.l3Off + 10, ipv4HeaderChecksum(b, v.l3Off, v.ipHdrLen));
  v.l4Len = SYN_TCP_HLEN;
  v.tcpHdrLen = SYN_TCP_HLEN;
  v.tcpFlags = TCP_SYN;
  v.payloadOff = t + SYN_TCP_HLEN;
  v.mss = mss;
  v.len = v.l3Off - v.base + v.ipTotalLen;
  put16(b, t + 16, tcpUdpChecksum(b, v.saddr, v.daddr, IPPROTO_TCP, t, SYN_TCP_HLEN, t + 16));
  return true;
}

/** Set the TCP flags byte of the segment in `v`, updating the checksum incrementally. */
export function setTcpFlags(v: FrameView, flags: number): void {
  const dv = v.dv;
  const o = v.l4Off + 12;
  const old = dv.getUint16(o);
  const nw = (old & 0xff00) | (flags & 0xff);
  dv.setUint16(o, nw);
  dv.setUint16(v.l4Off + 16, csumReplace16(dv.getUint16(v.l4Off + 16), old, nw));
  v.tcpFlags = flags;
}
