/**
 * lvsd's connection sync daemons (docs/ha.md, "Connection sync"), as the kernel's
 * (net/netfilter/ipvs/ip_vs_sync.c) with ipvsadm's interface: at most one master and one
 * backup at a time, each with its own sync id, interface, group, port and TTL.
 *
 * - Master: the data path writes entries into a ring of messages (src/datapath/sync.ts) as the
 *   kernel's ip_vs_sync_conn decides; every SYNC_TICK_MS this daemon sends what was written —
 *   the full messages and the one being filled (the kernel holds a partial message up to 2 s;
 *   lvs-ts sends it at once, so a takeover finds recent connections) —, as IPv4/UDP datagrams from the interface's
 *   primary address to the group (224.0.0.81:8848, TTL 1 by default) on lvsd's link of that
 *   name — or routed, when the "group" is a unicast address.
 * - Backup: the engine hands UDP datagrams to the port, for the group or one of our addresses,
 *   arriving on the interface, to `message()`; their UDP checksum is checked, the payload copied
 *   and applied after the batch (ip_vs_process_message, ip_vs_proc_conn): an entry finds its
 *   service (by fwmark, or protocol/address/port) and dest (by address and port) in this
 *   director's own table; an existing connection is updated (state, active/inactive, timeout);
 *   a new one is created with the sender's state and timeout. What cannot be placed is counted.
 *
 * Wire: kernel version 1 messages (wire.ts), so a kernel IPVS peer reads what lvsd sends and
 * the other way round; FULLNAT's local address/port and PROXY shift travel in the lvs-ts option.
 */

import { CONN_F_SYNPROXY, CONN_F_SYNPROXY_WAIT } from "../../datapath/conntrack/table.js";
import type { Engine, SyncSink } from "../../datapath/engine.js";
import { emitUdp } from "../../datapath/packet/emit.js";
import { checkL4Checksum, L4Csum } from "../../datapath/packet/parse.js";
import type { FrameView } from "../../datapath/packet/view.js";
import { SYNC_ENTRY_MAXLEN, SyncOut } from "../../datapath/sync.js";
import { u32ToIp } from "../../lib/addr.js";
import { IPPROTO_TCP } from "../../lib/proto.js";
import { FwdMethod, type Service } from "../../tables/model.js";
import type { EventLog } from "../observe/log.js";
import type { SyncDaemonInfo, SyncState } from "../target.js";
import type { DaemonOptions } from "../types.js";
import { fwdFromKernel } from "./flags.js";
import {
  IP_VS_CONN_F_INACTIVE,
  IP_VS_CONN_F_NOOUTPUT,
  IP_VS_CONN_F_TEMPLATE,
  IP_VS_SYNC_GROUP,
  IP_VS_SYNC_PORT,
  parseSyncMessage,
  SYNC_MESG_HLEN,
  SYNC_STATUS_COUNT,
  SYNC_STATUS_NAMES,
  type SyncConn,
  SyncStatus,
  synProxyFromSeq,
} from "./wire.js";

/** How often the master sends what the data path wrote. */
export const SYNC_TICK_MS = 20;
/** A message being filled goes out once it is this old: at the next tick (the kernel's IPVS_SYNC_FLUSH_TIME is 2 s). */
export const SYNC_FLUSH_MS = 0;
/** Messages a backup keeps waiting to be applied (more are dropped, counted). */
export const SYNC_BACKUP_QUEUE = 1024;
/** IPv4 (20) + UDP (8): the default maxlen is the interface MTU minus these (start_sync_thread). */
const SYNC_HLEN = 28;
/** Templates whose message carries no timeout (the kernel's 3 minutes). */
const TEMPLATE_DEFAULT_TIMEOUT_S = 180;

/** What `--start-daemon` gives (ipvsadm's daemon options; unset ones take the defaults). */
export type SyncStartOptions = DaemonOptions;
export type { SyncDaemonInfo, SyncState };

/** Counters of the master and the backup (lvsadm --sync, metrics). */
export interface SyncCounters {
  /** Master: messages and entries sent, entries lost to a full ring, frames not sent. */
  sentMessages: number;
  sentEntries: number;
  ringDrops: number;
  sendFailures: number;
  /** Backup: messages received, entries applied (created, updated), and what was not taken. */
  recvMessages: number;
  created: number;
  updated: number;
  /** Entries whose service or dest this director does not have. */
  noDest: number;
  /** Entries of a forwarding method lvs-ts does not have (BYPASS), or a table full. */
  refused: number;
  /**
   * SEQ options (IPVS_OPT_SEQ_DATA) applied as a SYN-proxy offset, and ones not applied (not a
   * uniform shift, or not a TCP NAT/FULLNAT connection).
   */
  seqApplied: number;
  seqIgnored: number;
  /** Messages dropped before parsing: bad UDP checksum, queue full. */
  badChecksum: number;
  queueDrops: number;
  /** Parser statuses (SYNC_STATUS_NAMES), messages and skipped entries. */
  readonly status: Float64Array;
}

export class SyncDaemonError extends Error {
  readonly code: "EEXIST" | "ESRCH" | "ENODEV" | "EINVAL";
  constructor(code: SyncDaemonError["code"], message: string) {
    super(message);
    this.code = code;
    this.name = "SyncDaemonError";
  }
}

export interface SyncTimers {
  every(fn: () => void, ms: number): unknown;
  cancel(handle: unknown): void;
}

const REAL_TIMERS: SyncTimers = {
  every: (fn, ms) => setInterval(fn, ms).unref(),
  cancel: (h) => clearInterval(h as ReturnType<typeof setInterval>),
};

export interface SyncHost {
  engine: Engine;
  /** lvsd's --link names, by link id. */
  linkNames: readonly string[];
  /** Send the engine's transmit queue (lvsd's sendTx). */
  flush(): void;
  /** Monotonic milliseconds (the engine's clock). */
  now(): number;
  log: EventLog;
  timers?: SyncTimers;
  /** Apply received messages later (default setImmediate); tests pass a synchronous one. */
  defer?: (fn: () => void) => void;
}

interface Master {
  info: SyncDaemonInfo;
  link: number;
  out: SyncOut;
  timer: unknown;
}

interface Backup {
  info: SyncDaemonInfo;
  link: number;
}

export class SyncDaemon implements SyncSink {
  private master: Master | null = null;
  private backup: Backup | null = null;
  private readonly host: SyncHost;
  private readonly timers: SyncTimers;
  private readonly defer: (fn: () => void) => void;
  private queue: Uint8Array[] = [];
  private draining = false;
  readonly counters: SyncCounters = {
    sentMessages: 0,
    sentEntries: 0,
    ringDrops: 0,
    sendFailures: 0,
    recvMessages: 0,
    created: 0,
    updated: 0,
    noDest: 0,
    refused: 0,
    seqApplied: 0,
    seqIgnored: 0,
    badChecksum: 0,
    queueDrops: 0,
    status: new Float64Array(SYNC_STATUS_COUNT),
  };

  constructor(host: SyncHost) {
    this.host = host;
    this.timers = host.timers ?? REAL_TIMERS;
    this.defer = host.defer ?? ((fn) => setImmediate(fn));
  }

  /** The running daemons, master first (ipvsadm -L --daemon). */
  daemons(): SyncDaemonInfo[] {
    const out: SyncDaemonInfo[] = [];
    if (this.master) out.push({ ...this.master.info });
    if (this.backup) out.push({ ...this.backup.info });
    return out;
  }

  running(state: SyncState): boolean {
    return state === "master" ? this.master !== null : this.backup !== null;
  }

  /** ipvsadm --start-daemon. Throws SyncDaemonError (EEXIST, ENODEV, EINVAL). */
  start(state: SyncState, o: SyncStartOptions): SyncDaemonInfo {
    if (this.running(state)) throw new SyncDaemonError("EEXIST", `a ${state} sync daemon is running already`);
    const e = this.host.engine;
    const link = this.host.linkNames.indexOf(o.mcastIfn);
    if (link < 0)
      throw new SyncDaemonError(
        "ENODEV",
        `no link named '${o.mcastIfn}' (lvsd's links: ${this.host.linkNames.join(", ") || "none"})`,
      );
    const l = e.net.links[link]!;
    const group = (o.mcastGroup ?? IP_VS_SYNC_GROUP) >>> 0;
    const port = o.mcastPort ?? IP_VS_SYNC_PORT;
    const ttl = o.mcastTtl ?? 1;
    if (!Number.isInteger(o.syncid) || o.syncid < 0 || o.syncid > 255)
      throw new SyncDaemonError("EINVAL", `syncid ${o.syncid} is not 0..255`);
    if (port < 1 || port > 65535) throw new SyncDaemonError("EINVAL", `port ${port} is not 1..65535`);
    if (ttl < 1 || ttl > 255) throw new SyncDaemonError("EINVAL", `ttl ${ttl} is not 1..255`);
    // The kernel: maxlen defaults to the MTU less IP and UDP headers, and is kept within it.
    const most = l.mtu - SYNC_HLEN;
    const least = SYNC_MESG_HLEN + SYNC_ENTRY_MAXLEN;
    const maxlen = Math.max(least, Math.min(o.syncMaxlen || most, most));
    const info: SyncDaemonInfo = { state, mcastIfn: o.mcastIfn, syncid: o.syncid, maxlen, group, port, ttl };
    if (state === "master") {
      if (l.primaryAddr() === 0)
        throw new SyncDaemonError("EINVAL", `link '${o.mcastIfn}' has no address to send sync messages from`);
      const out = new SyncOut(e.ct, e.table, e.sysctl, o.syncid, maxlen);
      e.ct.syncReset = out.reset;
      e.sync = out;
      const timer = this.timers.every(() => this.sendReady(), SYNC_TICK_MS);
      this.master = { info, link, out, timer };
    } else {
      e.syncSink = this;
      e.syncGroup = group;
      e.syncLink = link;
      e.syncPort = port;
      this.backup = { info, link };
    }
    this.host.log.info(
      {
        event: "sync.start",
        state,
        interface: o.mcastIfn,
        syncid: o.syncid,
        maxlen,
        group: u32ToIp(group),
        port,
        ttl,
      },
      `sync: ${state} daemon started (mcast=${o.mcastIfn}, syncid=${o.syncid}, maxlen=${maxlen}, group=${u32ToIp(group)}, port=${port}, ttl=${ttl})`,
    );
    return { ...info };
  }

  /** ipvsadm --stop-daemon. A master sends what it holds first. Throws SyncDaemonError (ESRCH). */
  stop(state: SyncState): void {
    const e = this.host.engine;
    if (state === "master") {
      const m = this.master;
      if (!m) throw new SyncDaemonError("ESRCH", "no master sync daemon is running");
      this.sendReady(true);
      this.timers.cancel(m.timer);
      if (e.sync === m.out) e.sync = null;
      if (e.ct.syncReset === m.out.reset) e.ct.syncReset = null;
      this.master = null;
    } else {
      if (!this.backup) throw new SyncDaemonError("ESRCH", "no backup sync daemon is running");
      if (e.syncSink === this) {
        e.syncSink = null;
        e.syncPort = -1;
        e.syncLink = -1;
      }
      this.backup = null;
    }
    this.host.log.info({ event: "sync.stop", state }, `sync: ${state} daemon stopped`);
  }

  /** Stop whatever runs (lvsd's shutdown). */
  stopAll(): void {
    if (this.master) this.stop("master");
    if (this.backup) this.stop("backup");
  }

  // ---- master: send ----

  /** Send the messages that are ready (all of them, the one being filled too, when `all`). */
  sendReady(all = false): void {
    const m = this.master;
    if (!m) return;
    const e = this.host.engine;
    const out = m.out;
    const now = this.host.now();
    this.counters.ringDrops = out.ringDrops;
    let sent = 0;
    // Frames already queued (a VRRP manager's priority-0 advert when lvs_sync_daemon switches on
    // its transition) go first: never dropped by a reset.
    if (e.tx.count > 0) this.host.flush();
    e.txq.reset();
    for (;;) {
      const slot = out.ready(now, all ? Number.NEGATIVE_INFINITY : SYNC_FLUSH_MS);
      if (slot < 0) break;
      if (e.tx.count >= e.tx.capacity) {
        this.host.flush();
        e.txq.reset();
      }
      if (!this.emit(m, slot)) this.counters.sendFailures++;
      out.release();
      sent++;
    }
    if (sent > 0) this.host.flush();
  }

  private emit(m: Master, slot: number): boolean {
    const e = this.host.engine;
    const out = m.out;
    const txq = e.txq;
    const j = txq.slot();
    if (j < 0) return false;
    const tx = txq.batch;
    const l = e.net.links[m.link]!;
    const g = m.info.group;
    const mcast = g >>> 28 === 0xe;
    const plen = out.len[slot]!;
    const base = slot * out.maxlen;
    const len = emitUdp(
      tx.buf,
      tx.off[j]!,
      l.mac,
      0,
      mcast ? null : ZERO_MAC,
      0,
      l.primaryAddr() >>> 0,
      g,
      m.info.port,
      m.info.port,
      m.info.ttl,
      out.buf,
      base,
      plen,
    );
    if (len === 0) return false;
    this.counters.sentMessages++;
    this.counters.sentEntries += out.buf[base + 4]!;
    if (mcast) txq.commit(j, len, m.link);
    else e.resolver.sendRouted(j, len, g);
    return true;
  }

  // ---- backup: receive ----

  /** The engine's SyncSink (inside a batch): check, copy, apply after the batch. */
  message(v: FrameView, _link: number): void {
    const c = this.counters;
    if (checkL4Checksum(v) === L4Csum.BAD) {
      c.badChecksum++;
      return;
    }
    if (this.queue.length >= SYNC_BACKUP_QUEUE) {
      c.queueDrops++;
      return;
    }
    const start = v.l4Off + 8;
    const end = v.l4Off + v.l4Len;
    if (end <= start) {
      c.status[SyncStatus.SHORT]!++;
      return;
    }
    this.queue.push(v.buf.slice(start, end));
    if (!this.draining) {
      this.draining = true;
      this.defer(() => this.drain());
    }
  }

  /** Apply the queued messages (between batches). */
  drain(): void {
    this.draining = false;
    const q = this.queue;
    this.queue = [];
    const b = this.backup;
    if (!b) return;
    const now = this.host.now();
    for (const msg of q) this.apply(msg, b.info.syncid, now);
  }

  /** One message: ip_vs_process_message + ip_vs_proc_conn for each entry. */
  apply(msg: Uint8Array, syncid: number, now: number): void {
    const c = this.counters;
    const r = parseSyncMessage(msg, syncid);
    c.recvMessages++;
    for (const ent of r.entries) this.place(ent, now);
    for (const s of r.skipped) c.status[s]!++;
    if (r.status !== SyncStatus.OK) c.status[r.status]!++;
  }

  private findService(s: SyncConn): Service | undefined {
    const table = this.host.engine.table;
    if (s.fwmark !== 0) {
      for (const svc of table.list()) if (svc.fwmark === s.fwmark) return svc;
      return undefined;
    }
    const tpl = (s.flags & IP_VS_CONN_F_TEMPLATE) !== 0;
    const svc = table.lookup(s.protocol, s.vaddr, s.vport);
    if (svc || !tpl) return svc;
    // A template of a port-zero or FTP service carries port 0: any service on the address.
    for (const x of table.list())
      if (x.fwmark === 0 && x.proto === s.protocol && x.addr === s.vaddr) return x;
    return undefined;
  }

  /** Create or update the connection (or template) of one entry. */
  private place(s: SyncConn, now: number): void {
    const c = this.counters;
    const e = this.host.engine;
    const ct = e.ct;
    const fwd = fwdFromKernel(s.flags);
    if (fwd === -1 || e.modes[fwd] === null || e.modes[fwd] === undefined) {
      c.refused++;
      return;
    }
    const tpl = (s.flags & IP_VS_CONN_F_TEMPLATE) !== 0;
    const inactive = (s.flags & IP_VS_CONN_F_INACTIVE) !== 0;
    const timeoutMs = this.timeoutMs(s, tpl);
    let i = tpl
      ? ct.lookupTemplate(s.protocol, s.caddr, s.vaddr, s.vport)
      : ct.lookupIn(s.protocol, s.caddr, s.cport, s.vaddr, s.vport);
    if (i >= 0 && !tpl && (ct.dport[i] !== s.dport || ct.daddr[i] !== s.daddr)) {
      // Another dest than ours: a live entry replaces it; an inactive one is the expiry of a
      // connection already replaced, and is ignored (as the kernel).
      if (inactive) return;
      ct.free(i);
      i = -1;
    }
    if (i >= 0) {
      if (!tpl) this.applySeq(i, s, fwd);
      ct.setSynced(i, s.state, inactive, now + timeoutMs);
      c.updated++;
      return;
    }
    const svc = this.findService(s);
    const table = e.table;
    const d = svc ? (table.findDest(svc, s.daddr, s.dport) ?? table.findDest(svc, s.daddr, 0)) : undefined;
    if (!svc || !d) {
      c.noDest++;
      return;
    }
    if (tpl) {
      i = ct.createTemplate(
        s.protocol,
        s.caddr | 0,
        s.vaddr | 0,
        s.vport,
        d,
        s.dport,
        svc.id,
        timeoutMs / 1000,
      );
    } else {
      let laddr = s.caddr;
      let lport = s.cport;
      if (fwd === FwdMethod.FULLNAT) {
        if (!s.fullnat) {
          c.refused++;
          return;
        }
        laddr = s.fullnat.laddr;
        lport = s.fullnat.lport;
        svc.laddrs?.reserve(laddr, lport, s.protocol === IPPROTO_TCP ? 0 : 1);
      }
      i = ct.create(
        s.protocol,
        s.caddr | 0,
        s.cport,
        s.vaddr | 0,
        s.vport,
        s.daddr | 0,
        s.dport,
        laddr | 0,
        lport,
        fwd,
        (s.flags & IP_VS_CONN_F_NOOUTPUT) !== 0,
        d,
        svc.id,
        -1,
      );
      if (i >= 0 && s.fullnat) {
        ct.isn[i] = s.fullnat.proxyIsn;
        ct.seqDelta[i] = s.fullnat.proxyDelta;
      }
      if (i >= 0) this.applySeq(i, s, fwd);
    }
    if (i < 0) {
      c.refused++;
      return;
    }
    ct.setSynced(i, s.state, inactive, now + timeoutMs);
    c.created++;
  }

  /**
   * The SEQ option of a TCP NAT or FULLNAT connection, when it is one uniform shift of the
   * server's sequence space (what lvs-ts's master sends for a SYN-proxied connection, wire.ts
   * `synProxyFromSeq`): the connection becomes SYN-proxied with that offset, and the engine
   * shifts its segments as the master did. Anything else in the option (a kernel FTP helper's
   * resize history) is accepted and not applied, as before (`seq_ignored`).
   */
  private applySeq(i: number, s: SyncConn, fwd: FwdMethod): void {
    if (!s.seq) return;
    const sp =
      s.protocol === IPPROTO_TCP && (fwd === FwdMethod.MASQ || fwd === FwdMethod.FULLNAT)
        ? synProxyFromSeq(s.flags, s.seq)
        : undefined;
    if (!sp) {
      this.counters.seqIgnored++;
      return;
    }
    const ct = this.host.engine.ct;
    // A connection of ours still waiting for its server's SYN-ACK (seqDelta a stash buffer)
    // gives up the wait: the stash buffer is free once the flag is gone (engine.stashInUse).
    ct.flags[i] = (ct.flags[i]! & ~CONN_F_SYNPROXY_WAIT) | CONN_F_SYNPROXY;
    ct.hold(i);
    ct.isn[i] = sp.cookie;
    ct.seqDelta[i] = sp.seqDelta;
    this.counters.seqApplied++;
  }

  /** The entry's timeout, or without one its state's (a template: 3 minutes), in ms. */
  private timeoutMs(s: SyncConn, tpl: boolean): number {
    if (s.timeout > 0) return Math.min(s.timeout, 0x7fffffff) * 1000;
    const ct = this.host.engine.ct;
    if (tpl) return TEMPLATE_DEFAULT_TIMEOUT_S * 1000;
    if (s.protocol === IPPROTO_TCP) return ct.tcpTimeoutMs[s.state] ?? ct.tcpTimeoutMs[0]!;
    return ct.udpTimeoutMs;
  }

  /** Counters by name (lvsadm --sync, metrics): only the non-zero parser statuses. */
  counterRows(): [string, number][] {
    const c = this.counters;
    if (this.master) c.ringDrops = this.master.out.ringDrops;
    const rows: [string, number][] = [
      ["sent_messages", c.sentMessages],
      ["sent_entries", c.sentEntries],
      ["ring_drops", c.ringDrops],
      ["send_failures", c.sendFailures],
      ["recv_messages", c.recvMessages],
      ["created", c.created],
      ["updated", c.updated],
      ["no_dest", c.noDest],
      ["refused", c.refused],
      ["seq_applied", c.seqApplied],
      ["seq_ignored", c.seqIgnored],
      ["bad_checksum", c.badChecksum],
      ["queue_drops", c.queueDrops],
    ];
    for (let s = 1; s < SYNC_STATUS_COUNT; s++) {
      const n = c.status[s]!;
      if (n > 0) rows.push([SYNC_STATUS_NAMES[s]!, n]);
    }
    return rows;
  }
}

const ZERO_MAC = new Uint8Array(6);

/**
 * ipvsadm's list_daemon(): one line per running daemon, master first, e.g.
 * "master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)".
 */
export function formatDaemons(list: readonly SyncDaemonInfo[]): string {
  let out = "";
  for (const d of list)
    out += `${d.state} sync daemon (mcast=${d.mcastIfn}, syncid=${d.syncid}, maxlen=${d.maxlen}, group=${u32ToIp(d.group)}, port=${d.port}, ttl=${d.ttl})\n`;
  return out;
}
