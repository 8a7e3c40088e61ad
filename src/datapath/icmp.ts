/**
 * ICMP at the director: echo replies for its own addresses and VIPs, the errors it sends
 * (port unreachable, time exceeded, fragmentation needed), and classification of the ICMP
 * errors it receives — which connection an error is about (ip_vs_in_icmp / ip_vs_out_icmp:
 * the quoted packet, reversed, is that connection's key), and the IPIP branch for errors from a
 * router between the director and a TUN real server (path MTU learning). The engine relays a
 * classified error through the connection's mode. Nothing here allocates.
 */
import { IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { FwdMethod } from "../tables/model.js";
import type { ServiceTable } from "../tables/services.js";
import { DIR_INPUT, DIR_OUTPUT } from "./conntrack/states.js";
import type { ConnTable } from "./conntrack/table.js";
import { Drop } from "./drops.js";
import type { Net } from "./net/net.js";
import { Ownership } from "./net/owner.js";
import type { Resolver } from "./net/resolver.js";
import { ipv4HeaderChecksum } from "./packet/checksum.js";
import { emitIcmpEchoReply, emitIcmpError } from "./packet/emit.js";
import { parseFrame } from "./packet/parse.js";
import {
  FrameView,
  ICMP_DEST_UNREACH,
  ICMP_ECHO,
  ICMP_FRAG_NEEDED,
  ICMP_SOURCE_QUENCH,
  ICMP_TIME_EXCEEDED,
} from "./packet/view.js";
import type { TxQueue } from "./txqueue.js";

/** `input` result: the director answered or absorbed the frame itself. */
export const ICMP_ANSWERED = -0x10000;

/** Smallest IPv4 MTU (RFC 791) plus the IPIP header: a smaller reported MTU is ignored. */
const MIN_TUNNEL_PMTU = 68 + 20;

export class Icmp {
  /** Direction of the connection found by the last `input` (DIR_INPUT or DIR_OUTPUT). */
  dir = DIR_INPUT;
  private readonly net: Net;
  private readonly table: ServiceTable;
  private readonly ct: ConnTable;
  private readonly txq: TxQueue;
  private readonly resolver: Resolver;
  /** Addresses VRRP says we do not own now (net/owner.ts): no echo replies from them. */
  private readonly owner: Ownership;
  private readonly scratch = new Uint8Array(2048);
  private readonly scratchDv = new DataView(this.scratch.buffer);
  private readonly scratchView = new FrameView();

  constructor(
    net: Net,
    table: ServiceTable,
    ct: ConnTable,
    txq: TxQueue,
    resolver: Resolver,
    owner = new Ownership(),
  ) {
    this.net = net;
    this.owner = owner;
    this.table = table;
    this.ct = ct;
    this.txq = txq;
    this.resolver = resolver;
  }

  /**
   * An ICMP frame received: the slot of the connection an error is about (direction in `dir`),
   * ICMP_ANSWERED when the director answered or absorbed it, or a negated drop reason.
   */
  input(v: FrameView): number {
    if (v.laterFrag !== 0) return -Drop.FRAGMENT;
    const t = v.icmpType;
    if (t === ICMP_ECHO) {
      if (this.owner.count !== 0 && this.owner.disowned(v.daddr)) return -Drop.NOT_OWNER;
      if (this.net.isLocal(v.daddr) || this.table.isVip(v.daddr)) {
        this.echoReply(v);
        return ICMP_ANSWERED;
      }
      return -Drop.ICMP_UNRELATED;
    }
    if (t !== ICMP_DEST_UNREACH && t !== ICMP_SOURCE_QUENCH && t !== ICMP_TIME_EXCEEDED) {
      return this.net.isLocal(v.daddr) ? -Drop.LOCAL : -Drop.ICMP_UNRELATED;
    }
    if (v.innerProto === IPPROTO_IPIP && v.innerL3Off >= 0 && this.net.isLocal(v.innerSaddr)) {
      return this.tunnelError(v);
    }
    if (v.innerL4Off < 0) return -Drop.ICMP_UNRELATED;
    const ip = v.innerProto;
    if (ip !== IPPROTO_TCP && ip !== IPPROTO_UDP) return -Drop.ICMP_UNRELATED;
    const ct = this.ct;
    // The embedded packet is one we sent; reversed, it is the key of its connection.
    let c = ct.lookupIn(ip, v.innerDaddr | 0, v.innerDport, v.innerSaddr | 0, v.innerSport);
    if (c >= 0) {
      this.dir = DIR_INPUT;
      return c;
    }
    c = ct.lookupOut(ip, v.innerDaddr | 0, v.innerDport, v.innerSaddr | 0, v.innerSport);
    if (c < 0) return -Drop.ICMP_UNRELATED;
    this.dir = DIR_OUTPUT;
    return c;
  }

  /**
   * An ICMP error about one of our IPIP tunnel packets (a router between us and a TUN real
   * server): find the connection of the packet inside the tunnel, remember the path MTU for
   * fragmentation-needed, and tell the client about its own packet, with the MTU reduced by the
   * tunnel header (ip_vs_in_icmp's IPIP branch).
   */
  private tunnelError(v: FrameView): number {
    const b = v.buf;
    const dv = v.dv;
    const end = v.l3Off + v.ipTotalLen;
    const o = v.innerL3Off + v.innerHdrLen;
    if (o + 20 > end || b[o]! >>> 4 !== 4) return -Drop.ICMP_UNRELATED;
    const ihl = (b[o]! & 15) * 4;
    if (ihl < 20 || o + ihl + 4 > end) return -Drop.ICMP_UNRELATED;
    const p = b[o + 9]!;
    if (p !== IPPROTO_TCP && p !== IPPROTO_UDP) return -Drop.ICMP_UNRELATED;
    const c = this.ct.lookupIn(
      p,
      dv.getUint32(o + 12),
      dv.getUint16(o + ihl),
      dv.getUint32(o + 16),
      dv.getUint16(o + ihl + 2),
    );
    if (c < 0 || this.ct.fwd[c] !== FwdMethod.TUNNEL) return -Drop.ICMP_UNRELATED;
    let mtu = 0;
    if (v.icmpType === ICMP_DEST_UNREACH && v.icmpCode === ICMP_FRAG_NEEDED) {
      const pmtu = dv.getUint16(v.l4Off + 6);
      const d = this.table.dests[this.ct.dest[c]!];
      if (d && pmtu >= MIN_TUNNEL_PMTU) d.pmtu = pmtu;
      if ((dv.getUint16(o + 6) & 0x4000) === 0) return ICMP_ANSWERED; // the client does not do PMTUD
      mtu = pmtu > MIN_TUNNEL_PMTU ? pmtu - 20 : pmtu;
    }
    // Re-parse the client's packet from a scratch copy so the error can quote it. Routers
    // usually quote only part of it (576 bytes in all): parse it with its total length and
    // header checksum set to the bytes present, then put the original bytes back so the
    // quote is the client's own header; the view's total length stays what is present.
    const len = Math.min(end - o, this.scratch.length - 14);
    const s = this.scratch;
    const sdv = this.scratchDv;
    s.fill(0, 0, 14);
    s[12] = 0x08;
    s.set(b.subarray(o, o + len), 14);
    const totLen = sdv.getUint16(14 + 2);
    const csum = sdv.getUint16(14 + 10);
    if (totLen > len) {
      sdv.setUint16(14 + 2, len);
      sdv.setUint16(14 + 10, 0);
      sdv.setUint16(14 + 10, ipv4HeaderChecksum(s, 14, ihl));
    }
    const sv = this.scratchView;
    parseFrame(s, sdv, 0, 14 + len, sv);
    sdv.setUint16(14 + 2, totLen);
    sdv.setUint16(14 + 10, csum);
    if (sv.etherType !== 0x0800 || sv.ipHdrLen === 0) return -Drop.ICMP_UNRELATED;
    this.sendError(sv, v.icmpType, v.icmpCode, mtu, sv.daddr);
    return ICMP_ANSWERED;
  }

  /**
   * Send an ICMP error about the frame in `v` back to its source. `src` is the source address
   * to use, or 0 for the address of the link the reply leaves by.
   */
  sendError(v: FrameView, type: number, code: number, mtu: number, src: number): void {
    const txq = this.txq;
    const j = txq.slot();
    if (j < 0) return;
    const link = this.net.route(v.saddr);
    if (link < 0) return;
    const l = this.net.links[link]!;
    const from = src !== 0 ? src : l.primaryAddr();
    const tx = txq.batch;
    const len = emitIcmpError(tx.buf, tx.off[j]!, l.mac, 0, l.mac, 0, from, v.saddr, type, code, mtu, v);
    this.resolver.sendRouted(j, len, v.saddr | 0);
  }

  private echoReply(v: FrameView): void {
    const txq = this.txq;
    const j = txq.slot();
    if (j < 0) return;
    const link = this.net.route(v.saddr);
    if (link < 0) return;
    const tx = txq.batch;
    const len = emitIcmpEchoReply(tx.buf, tx.off[j]!, v, this.net.links[link]!.mac, 0);
    this.resolver.sendRouted(j, len, v.saddr | 0);
  }
}
