/**
 * LVS-TUN (IP tunnelling, ipvsadm -i): the packet is encapsulated in IPIP (RFC 2003) — an outer
 * IPv4 header from the director's address on the egress link to the real server, DF copied
 * from the inner header — and routed normally; the real server decapsulates it, answers the
 * client directly, so connections use the input-only TCP transitions.
 *
 * When the encapsulated packet would exceed the path MTU (the egress link's MTU, or a smaller
 * one learned from fragmentation-needed for our tunnel packets, `dest.pmtu`) and the inner
 * packet has DF set, the client gets ICMP fragmentation-needed with the MTU reduced by the
 * 20-byte tunnel header, from the VIP, as the kernel does. Without DF such a packet would have
 * to be fragmented; lvs-ts does not fragment and drops it (counted `too_big`).
 *
 * The outer header is written into the frame's headroom (no copy of the payload).
 */

import { IPPROTO_IPIP } from "../../lib/proto.js";
import { FwdMethod } from "../../tables/model.js";
import type { ConnTable } from "../conntrack/table.js";
import { Drop } from "../drops.js";
import { ipv4HeaderChecksum } from "../packet/checksum.js";
import { nextIpId } from "../packet/emit.js";
import { ETH_HLEN, ETH_P_IP, type FrameView, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED } from "../packet/view.js";
import type { ForwardMode, ModeContext } from "./types.js";

export const IPIP_HLEN = 20;

function encapsulate(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number {
  const rip = ct.daddr[c]!;
  const link = cx.route(rip | 0);
  if (link < 0) {
    cx.drop = Drop.NO_ROUTE;
    return -1;
  }
  const innerLen = v.ipTotalLen;
  let mtu = cx.linkMtu(link);
  const d = cx.dest(c);
  if (d !== undefined && d.pmtu > 0 && d.pmtu < mtu) mtu = d.pmtu;
  if (innerLen + IPIP_HLEN > mtu) {
    if (v.df !== 0) cx.sendIcmpError(v, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu - IPIP_HLEN, v.daddr);
    cx.drop = Drop.TOO_BIG;
    return -1;
  }
  const b = v.buf;
  const dv = v.dv;
  const o = v.l3Off - IPIP_HLEN;
  const tos = b[v.l3Off + 1]!;
  b[o] = 0x45;
  b[o + 1] = tos;
  dv.setUint16(o + 2, innerLen + IPIP_HLEN);
  dv.setUint16(o + 4, nextIpId());
  dv.setUint16(o + 6, v.df !== 0 ? 0x4000 : 0);
  b[o + 8] = v.ttl;
  b[o + 9] = IPPROTO_IPIP;
  dv.setUint16(o + 10, 0);
  dv.setUint32(o + 12, cx.linkAddr(link));
  dv.setUint32(o + 16, rip);
  dv.setUint16(o + 10, ipv4HeaderChecksum(b, o, IPIP_HLEN));
  // New Ethernet header in front (addresses are set by the engine); any VLAN tag is gone.
  dv.setUint16(o - 2, ETH_P_IP);
  v.base = o - ETH_HLEN;
  v.len = ETH_HLEN + IPIP_HLEN + innerLen;
  v.vlanTci = -1;
  return rip | 0;
}

export const tunMode: ForwardMode = {
  kind: FwdMethod.TUNNEL,
  inputOnly: true,
  decrementsTtl: false,
  checksMtu: true,
  inbound: encapsulate,
  outbound(_v: FrameView, _ct: ConnTable, _c: number, cx: ModeContext): number {
    cx.drop = Drop.ICMP_UNRELATED;
    return -1;
  },
  icmpIn: encapsulate,
  icmpOut(_v: FrameView, _ct: ConnTable, _c: number, cx: ModeContext): number {
    cx.drop = Drop.ICMP_UNRELATED;
    return -1;
  },
};
