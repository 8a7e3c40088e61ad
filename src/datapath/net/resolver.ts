/**
 * Neighbour resolution for the director's own output: ARP requests for next hops whose MAC is
 * unknown (rate-limited per address, a few probes then a back-off), a bounded queue of frames
 * waiting for an answer (copied in, sent when the answer arrives, dropped after PENDING_MS or
 * when the next hop stays silent), ARP input (learn senders, answer requests for the addresses
 * the director owns) and gratuitous ARP for new VIPs. The engine calls it; it never calls the
 * engine. Nothing here allocates.
 */
import type { ServiceTable } from "../../tables/services.js";
import { clock } from "../clock.js";
import { Drop } from "../drops.js";
import { FrameBatch, HEADROOM } from "../io/batch.js";
import { emitArpReply, emitArpRequest, emitGratuitousArp } from "../packet/emit.js";
import type { FrameView } from "../packet/view.js";
import type { TxQueue } from "../txqueue.js";
import { NEIGH_INCOMPLETE, NEIGH_NONE } from "./neigh.js";
import { L2_NEIGH_MISS, type Net } from "./net.js";
import { Ownership } from "./owner.js";

/** Minimum interval between ARP requests for one address. */
export const ARP_RETRY_MS = 1000;
/** ARP requests sent for an address before its waiting frames are dropped. */
export const ARP_MAX_PROBES = 3;
/** How long a frame may wait for its next hop's MAC. */
export const PENDING_MS = 3000;

export class Resolver {
  /** Frames waiting for their next hop's MAC (bounded; copied in, sent once ARP answers). */
  readonly pending: FrameBatch;
  private readonly pendingNh: Uint32Array;
  private readonly pendingDeadline: Float64Array;
  /** Frames released from the queue and sent (forwarded frames, not generated ones). */
  released = 0;
  private readonly net: Net;
  private readonly table: ServiceTable;
  private readonly txq: TxQueue;
  private readonly drops: Float64Array;
  /** Addresses VRRP says we do not own now (net/owner.ts): no ARP answers for them. */
  private readonly owner: Ownership;

  constructor(
    net: Net,
    table: ServiceTable,
    txq: TxQueue,
    drops: Float64Array,
    pendingMax: number,
    owner = new Ownership(),
  ) {
    this.net = net;
    this.owner = owner;
    this.table = table;
    this.txq = txq;
    this.drops = drops;
    this.pending = new FrameBatch(pendingMax);
    this.pendingNh = new Uint32Array(pendingMax);
    this.pendingDeadline = new Float64Array(pendingMax);
  }

  /**
   * The director answers ARP for `addr` on link `l`: its own addresses, and VIPs and FULLNAT
   * local addresses on that link's subnet — unless VRRP disowned the address (net/owner.ts).
   */
  owns(addr: number, l: number): boolean {
    if (this.owner.count !== 0 && this.owner.disowned(addr)) return false;
    const net = this.net;
    if (net.isLocal(addr)) return true;
    const t = this.table;
    return (t.isVip(addr) || t.isLaddr(addr)) && net.links[l]!.onLink(addr);
  }

  /**
   * Route a generated frame in tx slot j to `daddr` and commit it; when the next hop's MAC is
   * unknown, ask for it and drop the frame (generated frames are not queued).
   */
  sendRouted(j: number, len: number, daddr: number): void {
    if (len <= 0) return;
    const tx = this.txq.batch;
    const link = this.net.setL2(tx.buf, tx.off[j]!, daddr);
    if (link < 0) {
      if (link === L2_NEIGH_MISS) this.solicit(this.net.nextHop);
      return;
    }
    this.txq.commit(j, len, link);
  }

  /** Copy a frame into the pending queue to wait for `hop`'s MAC. False when it cannot wait. */
  hold(buf: Uint8Array, off: number, len: number, hop: number): boolean {
    const p = this.pending;
    if (p.count >= p.capacity || len > p.slotSize - HEADROOM) return false;
    const j = p.count;
    const o = j * p.slotSize + HEADROOM;
    p.buf.set(buf.subarray(off, off + len), o);
    p.off[j] = o;
    p.len[j] = len;
    this.pendingNh[j] = hop;
    this.pendingDeadline[j] = clock.nowMs + PENDING_MS;
    p.count = j + 1;
    return true;
  }

  /** Remove pending frame j (the last one moves into its place). */
  private unqueue(j: number): void {
    const p = this.pending;
    const last = p.count - 1;
    if (j !== last) {
      const o = j * p.slotSize + HEADROOM;
      const lo = p.off[last]!;
      p.buf.copyWithin(o, lo, lo + p.len[last]!);
      p.off[j] = o;
      p.len[j] = p.len[last]!;
      this.pendingNh[j] = this.pendingNh[last]!;
      this.pendingDeadline[j] = this.pendingDeadline[last]!;
    }
    p.count = last;
  }

  /** Send the frames that were waiting for `hop` (its MAC is now known). */
  private release(hop: number): void {
    const p = this.pending;
    const txq = this.txq;
    for (let j = 0; j < p.count; ) {
      if (this.pendingNh[j] !== hop) {
        j++;
        continue;
      }
      const t = txq.slot();
      if (t < 0) return;
      const tx = txq.batch;
      const len = p.len[j]!;
      const src = p.off[j]!;
      tx.buf.set(p.buf.subarray(src, src + len), tx.off[t]!);
      const link = this.net.setL2(tx.buf, tx.off[t]!, hop);
      if (link >= 0) {
        txq.commit(t, len, link);
        this.released++;
      }
      this.unqueue(j);
    }
  }

  /**
   * Timer work: drop frames that waited too long or whose next hop stopped answering (after
   * ARP_MAX_PROBES requests), re-ask for next hops still unresolved.
   */
  maintain(nowMs: number): void {
    const p = this.pending;
    const neigh = this.net.neigh;
    for (let j = 0; j < p.count; ) {
      const hop = this.pendingNh[j]!;
      const n = neigh.find(hop);
      const failed =
        n < 0 || (neigh.probes[n]! >= ARP_MAX_PROBES && nowMs - neigh.probed[n]! >= ARP_RETRY_MS);
      if (this.pendingDeadline[j]! <= nowMs || failed) {
        this.drops[Drop.NEIGH_MISS]!++;
        this.unqueue(j);
        continue;
      }
      this.solicit(hop);
      j++;
    }
  }

  /**
   * Announce `vip` with gratuitous ARP on every link whose subnet holds it (not while VRRP has
   * it disowned: the other director owns it). Returns frames queued.
   */
  announce(vip: number): number {
    if (this.owner.count !== 0 && this.owner.disowned(vip)) return 0;
    let n = 0;
    const txq = this.txq;
    for (const l of this.net.links) {
      if (!l.onLink(vip)) continue;
      const j = txq.slot();
      if (j < 0) break;
      txq.commit(j, emitGratuitousArp(txq.batch.buf, txq.batch.off[j]!, l.mac, 0, vip), l.id);
      n++;
    }
    return n;
  }

  /** An ARP frame received on `link`: learn the sender, answer a request for an address we own. */
  input(v: FrameView, link: number): void {
    const l = this.net.links[link];
    if (l === undefined) {
      this.drops[Drop.ARP_NOT_OURS]!++;
      return;
    }
    const shaOff = v.l3Off + 8;
    const mine = this.owns(v.arpTpa, link);
    // Learn the sender when it is on this link (requests to us, replies, gratuitous ARP);
    // refresh an existing entry from any ARP on the link.
    const neigh = this.net.neigh;
    if (v.arpSpa !== 0 && l.onLink(v.arpSpa) && (mine || neigh.find(v.arpSpa) >= 0)) {
      neigh.learn(v.arpSpa, v.buf, shaOff, link, clock.nowMs);
      if (this.pending.count > 0) this.release(v.arpSpa);
    }
    if (v.arpOp !== 1) return;
    if (!mine) {
      this.drops[
        this.owner.count !== 0 && this.owner.disowned(v.arpTpa) ? Drop.NOT_OWNER : Drop.ARP_NOT_OURS
      ]!++;
      return;
    }
    const txq = this.txq;
    const j = txq.slot();
    if (j < 0) return;
    const len = emitArpReply(txq.batch.buf, txq.batch.off[j]!, l.mac, 0, v.arpTpa, v.buf, shaOff, v.arpSpa);
    txq.commit(j, len, link);
  }

  /**
   * A neighbour another worker learned (docs/workers.md): learn it here too and send the frames
   * that waited for it (into the transmit queue; the caller sends it). Control plane, between
   * batches.
   */
  learned(ip: number, mac: Uint8Array, link: number, nowMs: number): void {
    this.net.neigh.learn(ip, mac, 0, link, nowMs);
    if (this.pending.count > 0) this.release(ip >>> 0);
  }

  /** Send an ARP request for `ip` (rate-limited per address, backing off after ARP_MAX_PROBES). */
  solicit(ip: number): void {
    const neigh = this.net.neigh;
    const n = neigh.findOrAdd(ip);
    if (n < 0) return;
    const now = clock.nowMs;
    if (neigh.probed[n]! !== 0 && now - neigh.probed[n]! < ARP_RETRY_MS) return;
    if (neigh.probes[n]! >= ARP_MAX_PROBES) {
      // Unresolved after ARP_MAX_PROBES: back off for a while before asking again.
      if (now - neigh.probed[n]! < 5 * ARP_RETRY_MS) return;
      neigh.probes[n] = 0;
    }
    const link = this.net.route(ip);
    if (link < 0) return;
    const txq = this.txq;
    const j = txq.slot();
    if (j < 0) return;
    neigh.probed[n] = now;
    neigh.probes[n] = neigh.probes[n]! + 1;
    if (neigh.state[n] === NEIGH_NONE) neigh.state[n] = NEIGH_INCOMPLETE;
    const l = this.net.links[link]!;
    txq.commit(j, emitArpRequest(txq.batch.buf, txq.batch.off[j]!, l.mac, 0, l.primaryAddr(), ip), link);
  }
}
