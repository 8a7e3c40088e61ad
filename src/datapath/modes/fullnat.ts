/**
 * FULLNAT (our extension, after DPVS; lvsadm --fullnat): both addresses are rewritten. On the
 * way in the client's address and port become a local address and port of the service's pool
 * (src/tables/laddr.ts) and VIP:vport becomes RIP:rport; on the way out the reverse. Real
 * servers answer the local address, so they need no route back to clients through the director.
 *
 * The client's address reaches the real server by the PROXY protocol (per service, v1 or v2):
 * the header is inserted in front of the client's first data segment (and again in front of a
 * retransmission of it), and from then on the client's sequence numbers are shifted up by the
 * header's length and the server's acknowledgements (and SACK blocks) down by it. The MSS the
 * server announces in its SYN-ACK is lowered by the largest header so that a full-sized client
 * segment still fits the real server's link after the insertion. The header goes with the
 * first data segment, so protocols where the server speaks first get it only once the client
 * sends; that suits HTTP (nginx and haproxy `proxy_protocol`). ICMP errors quoting such a
 * connection's segments get the same mapping for the quoted seq/ack (`proxyIcmpIn`/`proxyIcmpOut`).
 */

import { IPPROTO_TCP } from "../../lib/proto.js";
import { FwdMethod } from "../../tables/model.js";
import type { ConnTable } from "../conntrack/table.js";
import { Drop } from "../drops.js";
import { clampTcpMss, setTcpAck, setTcpSeq, tcpAck, tcpSeq } from "../packet/parse.js";
import {
  fixIpChecksum,
  fixL4Checksum,
  setDaddr,
  setDport,
  setInnerDaddr,
  setInnerDport,
  setInnerSaddr,
  setInnerSport,
  setSaddr,
  setSport,
  shiftInnerTcpAck,
  shiftInnerTcpSeq,
} from "../packet/rewrite.js";
import { type FrameView, TCP_ACK, TCP_SYN } from "../packet/view.js";
import { proxyLen, proxyMaxLen, writeProxy } from "./proxyproto.js";
import type { ForwardMode, ModeContext } from "./types.js";

function proxyVersion(cx: ModeContext, c: number): number {
  const s = cx.service(c);
  return s !== undefined ? s.proxyProtocol : 0;
}

/** Client -> server with PROXY protocol: record the ISN, insert the header, shift sequence numbers. */
function proxyInbound(
  v: FrameView,
  ct: ConnTable,
  c: number,
  cx: ModeContext,
  ver: number,
  caddr: number,
  cport: number,
  vaddr: number,
  vport: number,
): boolean {
  if ((v.tcpFlags & TCP_SYN) !== 0) {
    ct.isn[c] = (tcpSeq(v) + 1) >>> 0;
    ct.seqDelta[c] = 0;
    return true;
  }
  const seq = tcpSeq(v);
  const isn = ct.isn[c]!;
  const ipEnd = v.l3Off + v.ipTotalLen;
  const payload = ipEnd - v.payloadOff;
  if (payload > 0 && seq === isn) {
    const h = proxyLen(ver, caddr, vaddr, cport, vport);
    // Room after the IP packet: the slot's free tail plus any Ethernet padding.
    if (cx.room + (v.base + v.len - ipEnd) < h) {
      cx.drop = Drop.MODE_FAILED;
      return false;
    }
    v.buf.copyWithin(v.payloadOff + h, v.payloadOff, ipEnd);
    writeProxy(ver, v.buf, v.payloadOff, caddr, vaddr, cport, vport);
    v.ipTotalLen += h;
    v.l4Len += h;
    v.dv.setUint16(v.l3Off + 2, v.ipTotalLen);
    fixIpChecksum(v);
    fixL4Checksum(v);
    v.len = v.l3Off - v.base + v.ipTotalLen;
    ct.seqDelta[c] = h;
    return true;
  }
  const delta = ct.seqDelta[c]!;
  if (delta !== 0 && ((seq - isn) | 0) > 0) setTcpSeq(v, seq + delta);
  return true;
}

/** Map a server-side sequence number (which counts the header) back to the client's space. */
function unshift(x: number, isn: number, delta: number): number {
  const rel = (x - isn) | 0;
  if (rel <= 0) return x;
  return rel >= delta ? (x - delta) >>> 0 : isn;
}

/** Server -> client with PROXY protocol: clamp MSS in the SYN-ACK, unshift ACK and SACK blocks. */
function proxyOutbound(v: FrameView, ct: ConnTable, c: number, ver: number): void {
  const flags = v.tcpFlags;
  if ((flags & TCP_SYN) !== 0 && v.mss > 0) clampTcpMss(v, v.mss - proxyMaxLen(ver));
  const delta = ct.seqDelta[c]!;
  if (delta === 0 || (flags & TCP_ACK) === 0) return;
  const isn = ct.isn[c]!;
  const ack = tcpAck(v);
  const na = unshift(ack, isn, delta);
  if (na !== ack) setTcpAck(v, na);
  // SACK blocks (kind 5): edges are sequence numbers of the client's stream.
  const dv = v.dv;
  const b = v.buf;
  let o = v.l4Off + 20;
  const end = v.l4Off + v.tcpHdrLen;
  let changed = false;
  while (o < end) {
    const kind = b[o]!;
    if (kind === 0) break;
    if (kind === 1) {
      o++;
      continue;
    }
    if (o + 1 >= end) break;
    const len = b[o + 1]!;
    if (len < 2 || o + len > end) break;
    if (kind === 5) {
      for (let e = o + 2; e + 4 <= o + len; e += 4) {
        const x = dv.getUint32(e);
        const nx = unshift(x, isn, delta);
        if (nx !== x) {
          dv.setUint32(e, nx);
          changed = true;
        }
      }
    }
    o += len;
  }
  if (changed) fixL4Checksum(v);
}

/**
 * PROXY protocol, an ICMP error from the client's side: it quotes a server->client segment as the
 * client got it, whose ack counts the client's bytes only; for the server it counts the header
 * too (the inverse of `unshift`).
 */
function proxyIcmpIn(v: FrameView, ct: ConnTable, c: number): void {
  const delta = ct.seqDelta[c]!;
  const in4 = v.innerL4Off;
  if (delta === 0 || in4 < 0 || v.innerProto !== IPPROTO_TCP || in4 + 12 > v.l4Off + v.l4Len) return;
  if (((v.dv.getUint32(in4 + 8) - ct.isn[c]!) | 0) > 0) shiftInnerTcpAck(v, delta | 0);
}

/**
 * PROXY protocol, an ICMP error from the server's side: it quotes a client->server segment as the
 * server got it, whose seq counts the header; for the client it does not (`unshift`).
 */
function proxyIcmpOut(v: FrameView, ct: ConnTable, c: number): void {
  const delta = ct.seqDelta[c]!;
  const in4 = v.innerL4Off;
  if (delta === 0 || in4 < 0 || v.innerProto !== IPPROTO_TCP) return;
  const seq = v.dv.getUint32(in4 + 4);
  const ns = unshift(seq, ct.isn[c]!, delta);
  if (ns !== seq) shiftInnerTcpSeq(v, (ns - seq) | 0);
}

export const fullnatMode: ForwardMode = {
  kind: FwdMethod.FULLNAT,
  inputOnly: false,
  decrementsTtl: true,
  checksMtu: false,

  inbound(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number {
    const caddr = v.saddr;
    const cport = v.sport;
    const vaddr = v.daddr;
    const vport = v.dport;
    const rip = ct.daddr[c]!;
    setSaddr(v, ct.laddr[c]! | 0);
    setSport(v, ct.lport[c]!);
    setDaddr(v, rip | 0);
    setDport(v, ct.dport[c]!);
    if (v.proto === IPPROTO_TCP && v.l4Off >= 0) {
      const ver = proxyVersion(cx, c);
      if (ver !== 0 && !proxyInbound(v, ct, c, cx, ver, caddr, cport, vaddr, vport)) return -1;
    }
    return rip | 0;
  },

  outbound(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number {
    const caddr = ct.caddr[c]!;
    setSaddr(v, ct.vaddr[c]! | 0);
    setSport(v, ct.vport[c]!);
    setDaddr(v, caddr | 0);
    setDport(v, ct.cport[c]!);
    if (v.proto === IPPROTO_TCP && v.l4Off >= 0) {
      const ver = proxyVersion(cx, c);
      if (ver !== 0) proxyOutbound(v, ct, c, ver);
    }
    return caddr | 0;
  },

  icmpIn(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number {
    // The client reports on our reply VIP:vport -> caddr:cport; the server sent RIP:rport -> laddr:lport.
    if (proxyVersion(cx, c) !== 0) proxyIcmpIn(v, ct, c);
    const rip = ct.daddr[c]!;
    const laddr = ct.laddr[c]!;
    setSaddr(v, laddr | 0);
    setDaddr(v, rip | 0);
    setInnerSaddr(v, rip | 0);
    setInnerSport(v, ct.dport[c]!);
    setInnerDaddr(v, laddr | 0);
    setInnerDport(v, ct.lport[c]!);
    return rip | 0;
  },

  icmpOut(v: FrameView, ct: ConnTable, c: number, cx: ModeContext): number {
    // The server side reports on our packet laddr:lport -> RIP:rport; the client sent caddr:cport -> VIP:vport.
    if (proxyVersion(cx, c) !== 0) proxyIcmpOut(v, ct, c);
    const caddr = ct.caddr[c]!;
    const vaddr = ct.vaddr[c]!;
    setSaddr(v, vaddr | 0);
    setDaddr(v, caddr | 0);
    setInnerSaddr(v, caddr | 0);
    setInnerSport(v, ct.cport[c]!);
    setInnerDaddr(v, vaddr | 0);
    setInnerDport(v, ct.vport[c]!);
    return caddr | 0;
  },
};
