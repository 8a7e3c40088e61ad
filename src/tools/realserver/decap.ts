/**
 * Userspace IPIP decapsulator (RFC 2003 "IP Encapsulation within IP", ECN per RFC 6040) for real
 * servers whose kernel has no `ipip` module.
 *
 *   wire ──► AF_PACKET on DEV, BPF: IPv4 proto 4 to a local address, PACKET_HOST (rawsock.ts)
 *              │  a batch of Ethernet frames in one slab
 *              ▼
 *            decapFrame(): check the outer header, find the inner packet (offsets only)
 *              │  off[i]/len[i] moved to the inner packet, no copy
 *              ▼
 *            TUN device (IFF_TUN | IFF_NO_PI) ──► the local IP stack, as if it arrived on the TUN
 *
 * The kernel sees the outer packet too (AF_PACKET taps it before IP processing). With no handler
 * for protocol 4 it would answer ICMP protocol-unreachable; an IPIP guard socket per local
 * address (netconf.ts openIpipGuard) prevents that while we run. The inner packet's reply leaves
 * by the host's normal routes, straight to the client, never through a tunnel.
 *
 * Like the kernel's ipip, the decapsulator does not filter inner destinations: what the host does
 * with an inner packet not addressed to it is what its forwarding settings say. Outer fragments
 * are dropped (counted): the director sets DF and handles path MTU.
 */

import { DEFAULT_SLOT_SIZE, FrameBatch, HEADROOM } from "../../datapath/io/batch.js";
import type { LinkDetail } from "../../datapath/io/native.js";
import { type IpipGuard, openIpipGuard } from "../../datapath/io/netconf.js";
import { openRaw, type RawIo } from "../../datapath/io/rawsock.js";
import { openTun, type TunIo } from "../../datapath/io/tun.js";
import { csumReplace16 } from "../../datapath/packet/checksum.js";
import { IPPROTO_IPIP } from "../../lib/proto.js";

/** Per-frame verdicts; every value but OK is a drop reason. */
export const DecapStatus = {
  OK: 0,
  /** Shorter than Ethernet + two IPv4 headers. */
  SHORT: 1,
  /** Not an untagged IPv4 frame with protocol 4. */
  NOT_IPIP: 2,
  /** Outer header: bad version, IHL, total length or checksum. */
  BAD_OUTER: 3,
  /** The outer packet is a fragment (no reassembly here). */
  FRAGMENT: 4,
  /** Inner packet: not IPv4, bad IHL, or longer than the outer payload. */
  BAD_INNER: 5,
  /** Outer CE on an inner Not-ECT packet: RFC 6040 says drop. */
  ECN: 6,
} as const;
export type DecapStatus = (typeof DecapStatus)[keyof typeof DecapStatus];
export const DECAP_STATUS_COUNT = 7;
export const DECAP_STATUS_NAMES = [
  "ok",
  "short",
  "not_ipip",
  "bad_outer",
  "fragment",
  "bad_inner",
  "ecn",
] as const;

const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;

/**
 * Decapsulate the Ethernet frame buf[off, off+len) in place. On OK, `out[0]` is the inner
 * packet's offset and `out[1]` its length (its own total length: link padding is dropped); the
 * inner header may have been changed (ECN CE copied from the outer header, checksum updated).
 * Never throws, never allocates.
 */
export function decapFrame(
  buf: Uint8Array,
  dv: DataView,
  off: number,
  len: number,
  out: Uint32Array,
): number {
  if (len < ETH_HLEN + 40) return DecapStatus.SHORT;
  const o = off + ETH_HLEN;
  if (dv.getUint16(off + 12) !== ETH_P_IP) return DecapStatus.NOT_IPIP;
  const vihl = buf[o]!;
  const ihl = (vihl & 0x0f) << 2;
  if (vihl >> 4 !== 4 || ihl < 20) return DecapStatus.BAD_OUTER;
  if (buf[o + 9] !== IPPROTO_IPIP) return DecapStatus.NOT_IPIP;
  const tot = dv.getUint16(o + 2);
  if (tot < ihl + 20 || tot > len - ETH_HLEN) return DecapStatus.BAD_OUTER;
  // Header checksum: the one's-complement sum over the header, checksum included, is 0xffff.
  let s = 0;
  for (let i = 0; i < ihl; i += 2) s += (buf[o + i]! << 8) | buf[o + i + 1]!;
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  if (s !== 0xffff) return DecapStatus.BAD_OUTER;
  if ((dv.getUint16(o + 6) & 0x3fff) !== 0) return DecapStatus.FRAGMENT;
  const p = o + ihl;
  const room = tot - ihl;
  const ivihl = buf[p]!;
  const iihl = (ivihl & 0x0f) << 2;
  if (ivihl >> 4 !== 4 || iihl < 20) return DecapStatus.BAD_INNER;
  const itot = dv.getUint16(p + 2);
  if (itot < iihl || itot > room) return DecapStatus.BAD_INNER;
  // RFC 6040 section 4.2: outer CE marks the inner packet CE; Not-ECT inner must be dropped.
  if ((buf[o + 1]! & 3) === 3) {
    const tos = buf[p + 1]!;
    if ((tos & 3) === 0) return DecapStatus.ECN;
    if ((tos & 3) !== 3) {
      const oldW = (ivihl << 8) | tos;
      buf[p + 1] = tos | 3;
      dv.setUint16(p + 10, csumReplace16(dv.getUint16(p + 10), oldW, oldW | 3));
    }
  }
  out[0] = p;
  out[1] = itot;
  return DecapStatus.OK;
}

export interface DecapOptions {
  /** Interface IPIP arrives on. */
  dev: string;
  /** Outer destination addresses to accept (uint32). */
  locals: readonly number[];
  /** TUN device to create. */
  tunName: string;
  netns?: string;
  mode?: "ring" | "mmsg";
}

export interface DecapStats {
  /** Frames taken off the wire. */
  received: number;
  /** Inner packets handed to the TUN device. */
  delivered: number;
  /** Drops by reason (DECAP_STATUS_NAMES, without "ok"). */
  drops: Record<string, number>;
  /** Inner packets the TUN write refused. */
  tunDropped: number;
  wire: LinkDetail;
}

const RAW_ID = 0;
const TUN_ID = 1;
/** Batches per wake-up before yielding to the event loop (as lvsd does). */
const ROUNDS_PER_WAKE = 16;

export class Decapsulator {
  readonly raw: RawIo;
  readonly tun: TunIo;
  private readonly guards: IpipGuard[] = [];
  private readonly batch: FrameBatch;
  private readonly counts = new Float64Array(DECAP_STATUS_COUNT);
  private readonly out = new Uint32Array(2);
  private received = 0;
  private closed = false;

  /** Open the raw socket, the TUN device and the guards. Closes what it opened on failure. */
  constructor(o: DecapOptions) {
    const ns = o.netns === undefined ? {} : { netns: o.netns };
    this.raw = openRaw({
      ifname: o.dev,
      ipip: o.locals,
      mode: o.mode ?? "ring",
      rxFrames: 1024,
      txFrames: 8,
      ...ns,
    });
    try {
      this.tun = openTun({ name: o.tunName, create: true, ...ns });
      try {
        for (const a of o.locals) this.guards.push(openIpipGuard(a, o.dev, o.netns));
      } catch (err) {
        for (const g of this.guards) g.close();
        this.tun.close();
        throw err;
      }
    } catch (err) {
      this.raw.close();
      throw err;
    }
    const need = HEADROOM + this.raw.mtu + 18 + 64;
    this.batch = new FrameBatch(256, Math.max(DEFAULT_SLOT_SIZE, Math.ceil(need / 64) * 64));
  }

  /** Start pumping on readiness (keeps the event loop alive until close). */
  start(): void {
    this.raw.onReadable(() => this.pump());
  }

  /** Take what is waiting (up to ROUNDS_PER_WAKE batches) and deliver it. Returns frames taken. */
  pump(): number {
    const b = this.batch;
    const counts = this.counts;
    const out = this.out;
    let total = 0;
    for (let round = 0; round < ROUNDS_PER_WAKE; round++) {
      b.reset();
      const n = this.raw.recv(b, RAW_ID);
      if (n === 0) break;
      total += n;
      for (let i = 0; i < n; i++) {
        const st = decapFrame(b.buf, b.dv, b.off[i]!, b.len[i]!, out);
        counts[st]!++;
        if (st !== DecapStatus.OK) continue;
        b.off[i] = out[0]!;
        b.len[i] = out[1]!;
        b.egress[i] = TUN_ID;
      }
      this.tun.send(b, TUN_ID);
    }
    b.reset(); // hand ring frames back now, not on the next wake-up
    this.received += total;
    return total;
  }

  stats(): DecapStats {
    const drops: Record<string, number> = {};
    for (let s = 1; s < DECAP_STATUS_COUNT; s++) drops[DECAP_STATUS_NAMES[s]!] = this.counts[s]!;
    return {
      received: this.received,
      delivered: this.counts[DecapStatus.OK]! - this.tun.stats.txDropped,
      drops,
      tunDropped: this.tun.stats.txDropped,
      wire: this.raw.detail(),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.raw.onReadable(null);
    this.raw.close();
    this.tun.close();
    for (const g of this.guards) g.close();
  }
}
