/**
 * The master side of connection sync on the data path (after ip_vs_sync_conn in
 * net/netfilter/ipvs/ip_vs_sync.c): for every packet from a client, decide as the kernel does
 * whether the connection (and then its persistence template) is due to be synced, and if so
 * write its entry, in the kernel's version 1 wire format, straight into the message being
 * filled. Messages live in a ring of preallocated buffers; the control plane
 * (src/control/sync/daemon.ts) sends the full ones, and the one being filled once it is older
 * than its flush time, as UDP datagrams. Nothing here allocates after `start`, throws or
 * builds strings; a full ring counts the entry as dropped.
 *
 * When to sync (ip_vs_sync_conn_needed, with the sysctls sync_threshold, sync_period,
 * sync_refresh_period, sync_retries, sync_persist_mode): ONE_PACKET connections never; a TCP
 * connection only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT or TIME_WAIT, at once when it has
 * just entered one of the latter four, else when its input packet count modulo sync_period
 * equals sync_threshold (or, with sync_period 0, only when it equals sync_threshold); UDP by
 * the count only. A template is counted and looked at every time one of its connections'
 * packets is (whether or not the connection itself was synced), and with sync_period > 0 it
 * is synced each time. sync_refresh_period > 0 holds back a resend until the connection's
 * expiry has moved by that much (or by half its timeout), with sync_retries retries at
 * refresh_period / 8.
 *
 * A SYN-proxied connection (CONN_F_SYNPROXY, synproxy.ts) carries its sequence offset in the
 * kernel's IPVS_OPT_SEQ_DATA option with IP_VS_CONN_F_OUT_SEQ, as the kernel's NAT helpers
 * (ip_vs_app.c) describe a shift of the server's sequence space: `out_seq` = {init_seq: the
 * server's ISN, delta = previous_delta: cookie − server ISN}; `in_seq` is zero. With that, the
 * kernel's vs_fix_seq adds delta to the seq of every server→client segment and vs_fix_ack_seq
 * subtracts it from the ack of every client→server segment — exactly the engine's shift by
 * seqDelta = server ISN − cookie, in both directions (delta = previous_delta, so the init_seq
 * boundary changes nothing). The backup (src/control/sync/daemon.ts) turns it back into
 * CONN_F_SYNPROXY and seqDelta. A connection still waiting for its server's SYN-ACK
 * (CONN_F_SYNPROXY_WAIT, seqDelta a stash index) goes without the option.
 */
import { IPPROTO_TCP, IPPROTO_UDP } from "../lib/proto.js";
import { FwdMethod } from "../tables/model.js";
import type { ServiceTable } from "../tables/services.js";
import type { Sysctl } from "../tables/sysctl.js";
import { clock } from "./clock.js";
import { TcpState } from "./conntrack/states.js";
import {
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_SYNPROXY,
  CONN_F_SYNPROXY_WAIT,
  CONN_F_TEMPLATE,
  type ConnTable,
} from "./conntrack/table.js";
import {
  FWD_TO_KERNEL,
  IP_VS_CONN_F_INACTIVE,
  IP_VS_CONN_F_NOOUTPUT,
  IP_VS_CONN_F_OUT_SEQ,
  IP_VS_CONN_F_TEMPLATE,
  IPVS_OPT_LVSTS_FULLNAT,
  IPVS_OPT_SEQ_DATA,
  SVER_MASK,
  SYNC_FULLNAT_OPT_LEN,
  SYNC_MAX_CONNS,
  SYNC_MESG_HLEN,
  SYNC_PROTO_VER,
  SYNC_SEQ_OPT_LEN,
  SYNC_V4_LEN,
} from "./packet/ipvs-sync.js";

/** The largest entry the data path writes: the IPv4 entry, the SEQ option and the FULLNAT option. */
export const SYNC_ENTRY_MAXLEN = SYNC_V4_LEN + 2 + SYNC_SEQ_OPT_LEN + 2 + SYNC_FULLNAT_OPT_LEN;

/** Messages the ring holds (full ones waiting to be sent, plus the one being filled). */
export const SYNC_RING_DEFAULT = 64;

/** TCP states in which a connection is synced (IP_VS_TCP_S_*: the kernel's mask). */
const TCP_SYNC_STATES =
  (1 << TcpState.ESTABLISHED) |
  (1 << TcpState.FIN_WAIT) |
  (1 << TcpState.CLOSE) |
  (1 << TcpState.CLOSE_WAIT) |
  (1 << TcpState.TIME_WAIT);

export class SyncOut {
  readonly syncid: number;
  /** Largest message (UDP payload), header included. */
  readonly maxlen: number;
  readonly ringSize: number;
  /** The messages: slot m at m * maxlen. */
  readonly buf: Uint8Array;
  private readonly dv: DataView;
  /** Bytes used in each slot (0: empty). */
  readonly len: Uint16Array;
  /** When each slot got its first entry (ms on `clock`). */
  readonly firstUse: Float64Array;
  /** Oldest slot not sent yet; the slot being filled; full slots waiting. */
  head = 0;
  fill = 0;
  full = 0;

  /** Per connection slot: input packets counted for sync, last state synced, sync end time. */
  private readonly pkts: Uint32Array;
  private readonly oldState: Uint8Array;
  private readonly endtime: Float64Array;

  /** Entries written, entries lost to a full ring, messages closed (full or flushed). */
  entries = 0;
  ringDrops = 0;
  messages = 0;

  private readonly ct: ConnTable;
  private readonly table: ServiceTable;
  private readonly sysctl: Sysctl;

  constructor(
    ct: ConnTable,
    table: ServiceTable,
    sysctl: Sysctl,
    syncid: number,
    maxlen: number,
    ringSize = SYNC_RING_DEFAULT,
  ) {
    if (!Number.isInteger(maxlen) || maxlen < SYNC_MESG_HLEN + SYNC_ENTRY_MAXLEN)
      throw new RangeError(`sync maxlen ${maxlen} is too small`);
    if (maxlen > 0xffff) throw new RangeError(`sync maxlen ${maxlen} is too large`);
    this.ct = ct;
    this.table = table;
    this.sysctl = sysctl;
    this.syncid = syncid;
    this.maxlen = maxlen;
    this.ringSize = ringSize;
    this.buf = new Uint8Array(ringSize * maxlen);
    this.dv = new DataView(this.buf.buffer);
    this.len = new Uint16Array(ringSize);
    this.firstUse = new Float64Array(ringSize);
    this.pkts = new Uint32Array(ct.capacity);
    this.oldState = new Uint8Array(ct.capacity);
    this.endtime = new Float64Array(ct.capacity);
  }

  /** A slot of the connection table was (re)used: forget what was counted for the old entry. */
  readonly reset = (i: number): void => {
    this.pkts[i] = 0;
    this.oldState[i] = 0;
    this.endtime[i] = 0;
  };

  /**
   * A packet from the client of connection c was handled (its state transition applied): sync
   * c and then its template as the kernel would.
   */
  conn(c: number): void {
    const ct = this.ct;
    const s = this.sysctl;
    if ((ct.flags[c]! & CONN_F_ONE_PACKET) === 0) {
      const n = this.pkts[c]! + 1;
      this.pkts[c] = n;
      if (this.needed(c, n, s)) this.write(c);
    }
    const t = ct.ctlOf(c);
    if (t >= 0) {
      const n = this.pkts[t]! + 1;
      this.pkts[t] = n;
      if (this.needed(t, n, s)) this.write(t);
    }
  }

  /** ip_vs_sync_conn_needed. */
  private needed(c: number, pkts: number, s: Sysctl): boolean {
    const ct = this.ct;
    const tpl = (ct.flags[c]! & CONN_F_TEMPLATE) !== 0;
    const timeout = this.timeoutMs(c);
    const now = clock.nowMs;
    const orig = this.endtime[c]!;
    let n = Math.floor((now + timeout) / 4) * 4;
    let force = false;
    if (!tpl) {
      if (s.syncPersistMode !== 0 && ct.ctlOf(c) >= 0) return false;
      if (ct.proto[c] === IPPROTO_TCP) {
        const st = ct.state[c]!;
        if (((1 << st) & TCP_SYNC_STATES) === 0) return false;
        force = st !== this.oldState[c];
        if (force && st !== TcpState.ESTABLISHED) {
          this.oldState[c] = st;
          this.endtime[c] = n;
          return true;
        }
      }
    }
    const refresh = s.syncRefreshPeriod * 1000;
    if (refresh > 0) {
      const diff = Math.abs(n - orig);
      const minDiff = Math.max(timeout / 2, 10_000);
      if (diff < Math.min(refresh, minDiff)) {
        const retries = orig % 4;
        if (retries >= s.syncRetries) return false;
        if (now < orig - timeout + refresh / 8) return false;
        n += retries + 1;
      }
    }
    const period = s.syncPeriod;
    if (period > 0) {
      if (!tpl && pkts % period !== s.syncThreshold) return false;
    } else if (refresh === 0 && pkts !== s.syncThreshold) {
      return false;
    }
    this.oldState[c] = ct.state[c]!;
    this.endtime[c] = n;
    return true;
  }

  /** The entry's full timeout (cp->timeout): its state's, a template's service's. */
  private timeoutMs(c: number): number {
    const ct = this.ct;
    if ((ct.flags[c]! & CONN_F_TEMPLATE) !== 0) {
      const svc = this.table.services[ct.svc[c]!];
      return (svc ? svc.timeout : 60) * 1000;
    }
    const p = ct.proto[c];
    if (p === IPPROTO_TCP) return ct.tcpTimeoutMs[ct.state[c]!]!;
    if (p === IPPROTO_UDP) return ct.udpTimeoutMs;
    return ct.icmpTimeoutMs;
  }

  /** Write entry c into the message being filled (a new one if it does not fit). */
  private write(c: number): void {
    const ct = this.ct;
    const f = ct.flags[c]!;
    const fullnat = ct.fwd[c] === FwdMethod.FULLNAT && (f & CONN_F_TEMPLATE) === 0;
    const seq = (f & (CONN_F_SYNPROXY | CONN_F_SYNPROXY_WAIT | CONN_F_TEMPLATE)) === CONN_F_SYNPROXY;
    const len = SYNC_V4_LEN + (seq ? 2 + SYNC_SEQ_OPT_LEN : 0) + (fullnat ? 2 + SYNC_FULLNAT_OPT_LEN : 0);
    if (this.full === this.ringSize) {
      this.ringDrops++;
      return;
    }
    let m = this.fill;
    let used = this.len[m]!;
    if (used !== 0) {
      const pad = (4 - used) & 3;
      if (used + pad + len > this.maxlen || this.buf[m * this.maxlen + 4] === SYNC_MAX_CONNS) {
        this.close();
        if (this.full === this.ringSize) {
          this.ringDrops++;
          return;
        }
        m = this.fill;
        used = 0;
      } else {
        // zero padding after the previous entry
        const base = m * this.maxlen;
        for (let k = 0; k < pad; k++) this.buf[base + used + k] = 0;
        used += pad;
      }
    }
    if (used === 0) used = this.begin(m);
    const dv = this.dv;
    const base = m * this.maxlen;
    const o = base + used;
    let kf = FWD_TO_KERNEL[ct.fwd[c]!] ?? 0;
    if ((f & CONN_F_TEMPLATE) !== 0) kf |= IP_VS_CONN_F_TEMPLATE;
    if ((f & CONN_F_INACTIVE) !== 0) kf |= IP_VS_CONN_F_INACTIVE;
    if ((f & CONN_F_NOOUTPUT) !== 0) kf |= IP_VS_CONN_F_NOOUTPUT;
    if (seq) kf |= IP_VS_CONN_F_OUT_SEQ;
    const svc = this.table.services[ct.svc[c]!];
    dv.setUint8(o, 0); // IPv4
    dv.setUint8(o + 1, ct.proto[c]!);
    dv.setUint16(o + 2, len & SVER_MASK);
    dv.setUint32(o + 4, kf);
    dv.setUint16(o + 8, ct.state[c]!);
    dv.setUint16(o + 10, ct.cport[c]!);
    dv.setUint16(o + 12, ct.vport[c]!);
    dv.setUint16(o + 14, ct.dport[c]!);
    dv.setUint32(o + 16, svc ? svc.fwmark : 0);
    dv.setUint32(o + 20, Math.ceil(this.timeoutMs(c) / 1000));
    dv.setUint32(o + 24, ct.caddr[c]!);
    dv.setUint32(o + 28, ct.vaddr[c]!);
    dv.setUint32(o + 32, ct.daddr[c]!);
    let p = o + SYNC_V4_LEN;
    if (seq) {
      // IPVS_OPT_SEQ_DATA: in_seq zero; out_seq {server ISN, cookie - server ISN twice}.
      const cookie = ct.isn[c]!;
      const d = ct.seqDelta[c]!;
      dv.setUint8(p, IPVS_OPT_SEQ_DATA);
      dv.setUint8(p + 1, SYNC_SEQ_OPT_LEN);
      for (let k = 2; k < 14; k += 4) dv.setUint32(p + k, 0);
      dv.setUint32(p + 14, (cookie + d) >>> 0);
      dv.setUint32(p + 18, (0 - d) >>> 0);
      dv.setUint32(p + 22, (0 - d) >>> 0);
      p += 2 + SYNC_SEQ_OPT_LEN;
    }
    if (fullnat) {
      dv.setUint8(p, IPVS_OPT_LVSTS_FULLNAT);
      dv.setUint8(p + 1, SYNC_FULLNAT_OPT_LEN);
      dv.setUint32(p + 2, ct.laddr[c]!);
      dv.setUint16(p + 6, ct.lport[c]!);
      dv.setUint16(p + 8, 0);
      // isn/seqDelta are the PROXY protocol's unless the SYN proxy holds them (never both).
      const sp = (f & (CONN_F_SYNPROXY | CONN_F_SYNPROXY_WAIT)) !== 0;
      dv.setUint32(p + 10, sp ? 0 : ct.isn[c]!);
      dv.setUint32(p + 14, sp ? 0 : ct.seqDelta[c]!);
    }
    used += len;
    this.len[m] = used;
    dv.setUint16(base + 2, used);
    this.buf[base + 4] = this.buf[base + 4]! + 1;
    this.entries++;
  }

  /** Start a message in slot m: its header. Returns the bytes used. */
  private begin(m: number): number {
    const base = m * this.maxlen;
    const b = this.buf;
    b[base] = 0; // reserved (a version 0 receiver drops the message)
    b[base + 1] = this.syncid;
    b[base + 4] = 0; // nr_conns
    b[base + 5] = SYNC_PROTO_VER;
    b[base + 6] = 0;
    b[base + 7] = 0;
    this.dv.setUint16(base + 2, SYNC_MESG_HLEN);
    this.len[m] = SYNC_MESG_HLEN;
    this.firstUse[m] = clock.nowMs;
    return SYNC_MESG_HLEN;
  }

  /** Close the message being filled (if it has entries): it waits to be sent. */
  close(): void {
    const m = this.fill;
    if (this.len[m] === 0) return;
    this.full++;
    this.messages++;
    this.fill = m + 1 === this.ringSize ? 0 : m + 1;
  }

  /**
   * The oldest message to send (its slot; bytes at slot * maxlen, length `len[slot]`), or -1.
   * The one being filled is closed first when it is at least `flushMs` old.
   */
  ready(nowMs: number, flushMs: number): number {
    if (this.full === 0) {
      const m = this.fill;
      if (this.len[m] === 0 || nowMs - this.firstUse[m]! < flushMs) return -1;
      this.close();
    }
    return this.head;
  }

  /** The message from `ready` was sent (or given up): free its slot. */
  release(): void {
    if (this.full === 0) return;
    this.len[this.head] = 0;
    this.head = this.head + 1 === this.ringSize ? 0 : this.head + 1;
    this.full--;
  }
}
