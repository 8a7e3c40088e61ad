/**
 * The established-flow fast path: a frame of a NAT or FULLNAT connection (either way; FULLNAT
 * without the PROXY protocol) or of a DR connection (inbound) that is already ESTABLISHED (TCP)
 * or known (UDP) is forwarded here straight from the frame bytes, without the general path's
 * FrameView, mode dispatch and per-layer calls. It does exactly what the general path does for
 * such a frame, in the same order, with the same checksum primitives, so the bytes, counters,
 * states and timers come out identical (test/datapath/fastpath.test.ts checks that against an
 * engine with the fast path off, over random traffic).
 *
 * It takes a frame only when every check the general path would make is known to pass:
 * - Ethernet II without a VLAN tag, to this link's own unicast MAC (admit);
 * - IPv4 with a 20-byte header (no options), a good header checksum, a total length within the
 *   frame, not a fragment, TTL > 1, neither address martian (parse, admit, xmit);
 * - TCP with a sane data offset or UDP with a sane length, not to the sync port;
 * - a connection found by the same lookups (in, then out), forwarding by NAT, FULLNAT (no PROXY
 *   protocol on its service) or DR (inbound),
 *   its dest available, none of the one-packet / SYN-proxy flags (nor no-output for NAT);
 * - TCP: the connection ESTABLISHED and the segment an ACK without SYN, FIN or RST, so the state
 *   stays ESTABLISHED in every transition table (normal and secure_tcp) and only the timer moves;
 * - no longer than the smallest link MTU (no MTU check needed) and a resolved next hop.
 * Anything else goes to the general path: before the lookup (`FAST_SLOW`: the general path
 * starts from scratch) or after it (`FAST_LOOKED`: `conn`/`dir` hold the lookup's answer, so
 * the general path does not repeat it; the lookups' only side effect, freeing an expired entry
 * they meet, is the same either way). Nothing in the frame or the tables changes before the
 * frame is known to be the fast path's.
 *
 * Per-packet path: no allocation, no strings, no exceptions.
 */
import { IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { DEST_F_AVAILABLE, FwdMethod } from "../tables/model.js";
import type { ServiceTable } from "../tables/services.js";
import { clock } from "./clock.js";
import { DIR_INPUT, DIR_OUTPUT, TcpState } from "./conntrack/states.js";
import {
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_SYNPROXY,
  CONN_F_SYNPROXY_WAIT,
  type ConnTable,
} from "./conntrack/table.js";
import type { FrameBatch } from "./io/batch.js";
import type { Net } from "./net/net.js";
import { csumReplace16, csumReplace32 } from "./packet/checksum.js";
import type { SyncOut } from "./sync.js";

/** Not the fast path's, decided before any lookup: run the general path from the start. */
export const FAST_SLOW = -1;
/** Looked up (`conn`, `dir`) but not the fast path's: run the general path from the connection. */
export const FAST_LOOKED = -2;

/** Connection flags that need the general path: NAT, and DR (whose entries are all no-output). */
const SLOW_FLAGS = CONN_F_ONE_PACKET | CONN_F_SYNPROXY | CONN_F_SYNPROXY_WAIT | CONN_F_NOOUTPUT;
const SLOW_FLAGS_DR = CONN_F_ONE_PACKET | CONN_F_SYNPROXY | CONN_F_SYNPROXY_WAIT;
/** TCP flags that may change a connection's state (the fast path takes plain ACKs only). */
const TCP_SYN_FIN_RST = 0x07;
const TCP_ACK = 0x10;

export class FastPath {
  /** After FAST_LOOKED: the connection the lookups found (-1: none) and its direction. */
  conn = -1;
  dir = DIR_INPUT;
  /** Frames forwarded here (they are in the engine's `forwarded` too). */
  taken = 0;

  constructor(
    private readonly ct: ConnTable,
    private readonly table: ServiceTable,
    private readonly net: Net,
  ) {}

  /**
   * Forward frame i of `batch` if it is the fast path's: returns its egress link (>= 0), or
   * FAST_SLOW / FAST_LOOKED. `syncPort` and `sync` are the engine's (they change at run time).
   */
  forward(batch: FrameBatch, i: number, syncPort: number, sync: SyncOut | null): number {
    const buf = batch.buf;
    const dv = batch.dv;
    const o = batch.off[i]!;
    const len = batch.len[i]!;
    if (len < 42 || dv.getUint16(o + 12) !== 0x0800 || buf[o + 14] !== 0x45) return FAST_SLOW;
    const net = this.net;
    const link = batch.link[i]!;
    if (!net.isOurMac(buf, o, link)) return FAST_SLOW;
    const ip = o + 14;
    const tot = dv.getUint16(ip + 2);
    if (tot > len - 14 || (dv.getUint16(ip + 6) & 0x3fff) !== 0) return FAST_SLOW;
    const ttl = buf[ip + 8]!;
    if (ttl <= 1) return FAST_SLOW;
    const p = buf[ip + 9]!;
    const l4 = ip + 20;
    const l4Len = tot - 20;
    let flags = 0;
    if (p === IPPROTO_TCP) {
      if (l4Len < 20) return FAST_SLOW;
      const doff = (buf[l4 + 12]! >>> 4) << 2;
      if (doff < 20 || doff > l4Len) return FAST_SLOW;
      flags = buf[l4 + 13]!;
    } else if (p === IPPROTO_UDP) {
      if (l4Len < 8) return FAST_SLOW;
      const ulen = dv.getUint16(l4 + 4);
      if (ulen < 8 || ulen > l4Len || dv.getUint16(l4 + 2) === syncPort) return FAST_SLOW;
    } else {
      return FAST_SLOW;
    }
    // The header checksum: the ten words of a valid header sum to 0xffff.
    let s =
      dv.getUint16(ip) +
      dv.getUint16(ip + 2) +
      dv.getUint16(ip + 4) +
      dv.getUint16(ip + 6) +
      dv.getUint16(ip + 8) +
      dv.getUint16(ip + 10) +
      dv.getUint16(ip + 12) +
      dv.getUint16(ip + 14) +
      dv.getUint16(ip + 16) +
      dv.getUint16(ip + 18);
    s = (s & 0xffff) + (s >>> 16);
    s = (s & 0xffff) + (s >>> 16);
    if (s !== 0xffff) return FAST_SLOW;
    const saddr = dv.getInt32(ip + 12);
    const daddr = dv.getInt32(ip + 16);
    const s8 = saddr >>> 24;
    const d8 = daddr >>> 24;
    if (s8 === 0 || s8 === 127 || s8 >= 224 || d8 === 0 || d8 === 127 || d8 >= 224) return FAST_SLOW;

    // The general path's lookups, in its order.
    const ct = this.ct;
    const sport = dv.getUint16(l4);
    const dport = dv.getUint16(l4 + 2);
    let dir = DIR_INPUT;
    let c = ct.lookupIn(p, saddr, sport, daddr, dport);
    if (c < 0) {
      c = ct.lookupOut(p, saddr, sport, daddr, dport);
      if (c >= 0) dir = DIR_OUTPUT;
    }
    this.conn = c;
    this.dir = dir;
    if (c < 0) return FAST_LOOKED;
    // NAT both ways; DR inbound (its replies bypass the director; its entries always carry the
    // no-output flag, and ESTABLISHED + ACK stays ESTABLISHED in the input-only table too).
    const fwd = ct.fwd[c]!;
    const nat = fwd !== FwdMethod.ROUTE; // NAT or FULLNAT: the director is an IP hop
    if (fwd === FwdMethod.MASQ) {
      if ((ct.flags[c]! & SLOW_FLAGS) !== 0) return FAST_LOOKED;
    } else if (fwd === FwdMethod.FULLNAT) {
      // not with the PROXY protocol (its header insertion and sequence shifts are modes/fullnat.ts's)
      const sv = this.table.services[ct.svc[c]!];
      if ((ct.flags[c]! & SLOW_FLAGS) !== 0 || (sv !== null && sv !== undefined && sv.proxyProtocol !== 0))
        return FAST_LOOKED;
    } else if (fwd !== FwdMethod.ROUTE || dir !== DIR_INPUT || (ct.flags[c]! & SLOW_FLAGS_DR) !== 0) {
      return FAST_LOOKED;
    }
    if (
      p === IPPROTO_TCP &&
      (ct.state[c] !== TcpState.ESTABLISHED || (flags & (TCP_SYN_FIN_RST | TCP_ACK)) !== TCP_ACK)
    )
      return FAST_LOOKED;
    if (tot > net.minMtu) return FAST_LOOKED;
    const table = this.table;
    const d = table.dests[ct.dest[c]!];
    if (d === null || d === undefined || (d.flags & DEST_F_AVAILABLE) === 0) return FAST_LOOKED;
    // The next hop: the real server inbound, the client outbound. setL2 writes the MACs only
    // when it succeeds; a miss goes to the general path, which queues the frame for ARP.
    const nh = dir === DIR_INPUT ? ct.daddr[c]! | 0 : fwd === FwdMethod.FULLNAT ? ct.caddr[c]! | 0 : daddr;
    const out = net.setL2(buf, o, nh);
    if (out < 0) return FAST_LOOKED;

    // Committed: xmit's order (TTL, state and timer, counters, the mode's rewrite).
    if (nat) {
      buf[ip + 8] = ttl - 1;
      dv.setUint16(ip + 10, csumReplace16(dv.getUint16(ip + 10), (ttl << 8) | p, ((ttl - 1) << 8) | p));
    }
    const now = clock.nowMs;
    if (p === IPPROTO_TCP) ct.setExpires(c, now + ct.tcpTimeoutMs[TcpState.ESTABLISHED]!);
    else ct.setExpires(c, now + ct.udpTimeoutMs);
    const svc = table.services[ct.svc[c]!];
    const cko = p === IPPROTO_TCP ? l4 + 16 : l4 + 6;
    const udp = p === IPPROTO_UDP;
    if (dir === DIR_INPUT) {
      const n = ct.inPkts[c]!;
      if (n !== 255) ct.inPkts[c] = n + 1;
      if (sync !== null) sync.conn(c);
      if (svc) {
        svc.inPkts++;
        svc.inBytes += tot;
      }
      d.inPkts++;
      d.inBytes += tot;
      if (fwd === FwdMethod.ROUTE) {
        this.taken++;
        return out; // DR: the packet goes on untouched, to the real server's MAC
      }
      // FULLNAT: the client's address and port become the local ones; then (NAT too) the
      // destination becomes the real server's (the modes' setSaddr, setSport, setDaddr, setDport).
      if (fwd === FwdMethod.FULLNAT) {
        rewriteAddr(dv, ip, 12, cko, udp, ct.laddr[c]! | 0);
        rewritePort(dv, l4, cko, udp, ct.lport[c]!);
      }
      rewriteAddr(dv, ip, 16, cko, udp, ct.daddr[c]! | 0);
      rewritePort(dv, l4 + 2, cko, udp, ct.dport[c]!);
    } else {
      if (svc) {
        svc.outPkts++;
        svc.outBytes += tot;
      }
      d.outPkts++;
      d.outBytes += tot;
      // The source becomes the VIP and virtual port; FULLNAT: the destination the client's.
      rewriteAddr(dv, ip, 12, cko, udp, ct.vaddr[c]! | 0);
      rewritePort(dv, l4, cko, udp, ct.vport[c]!);
      if (fwd === FwdMethod.FULLNAT) {
        rewriteAddr(dv, ip, 16, cko, udp, ct.caddr[c]! | 0);
        rewritePort(dv, l4 + 2, cko, udp, ct.cport[c]!);
      }
    }
    this.taken++;
    return out;
  }
}

/**
 * The IPv4 address at ip+off (12: source, 16: destination) becomes `now` (int32), with the IP
 * and TCP/UDP checksums updated as packet/rewrite.ts's setSaddr/setDaddr update them (a UDP
 * checksum of 0 stays 0; one that comes out 0 is sent as 0xffff).
 */
function rewriteAddr(dv: DataView, ip: number, off: number, cko: number, udp: boolean, now: number): void {
  const old = dv.getInt32(ip + off);
  dv.setInt32(ip + off, now);
  dv.setUint16(ip + 10, csumReplace32(dv.getUint16(ip + 10), old, now));
  const sum = dv.getUint16(cko);
  if (!udp) dv.setUint16(cko, csumReplace32(sum, old, now));
  else if (sum !== 0) dv.setUint16(cko, csumReplace32(sum, old, now) || 0xffff);
}

/** The port at `at` becomes `now`, the TCP/UDP checksum updated as setSport/setDport do. */
function rewritePort(dv: DataView, at: number, cko: number, udp: boolean, now: number): void {
  const old = dv.getUint16(at);
  dv.setUint16(at, now);
  const sum = dv.getUint16(cko);
  if (!udp) dv.setUint16(cko, csumReplace16(sum, old, now));
  else if (sum !== 0) dv.setUint16(cko, csumReplace16(sum, old, now) || 0xffff);
}
