/**
 * FrameTracer: the data path's side of `lvsadm --trace` (docs/observability.md, "Packet traces").
 *
 * The Director calls it once per batch while `director.tracer` is set (one null check per batch
 * when it is not): `inbound` with the batch just received, before the engine rewrites it in place,
 * then `outbound` with the same batch after processing (the frames that got an egress link) and
 * with the engine's generated frames (`engine.tx`). Frames that pass the filters are copied into
 * a ring the tracer owns, with their length, original length, link, direction and the batch's
 * time; the control plane (src/control/observe/trace.ts) drains the ring to a pcapng file from a
 * timer, between batches.
 *
 * Per frame nothing is allocated and nothing throws: the ring is one Uint8Array and parallel
 * typed arrays of records, fixed when the tracer is made. When it is full the frame is counted in
 * `dropped` and not kept. The copy moves 32-bit words: the ring position of a frame is chosen
 * with the same alignment (mod 4) as the frame in its batch, so both sides are read through
 * Int32Array views (a `set` of a `subarray` would allocate a view per frame).
 *
 * Filters, set by the control plane when a trace starts (they allocate; never per packet):
 *   - links: only frames received on, or leaving by, these link ids;
 *   - a service filter: a small open-addressed table of (address, protocol, port) entries, port 0
 *     meaning any port of that protocol. A TCP or UDP frame (first fragment) matches when its
 *     IPv4 source or destination address:port is in the table; any other IPv4 frame (ICMP, IPIP,
 *     later fragments) when its source or destination address is the address of some entry.
 *     Without a service filter every frame matches (ARP and non-IPv4 included); with one, only
 *     IPv4 frames can.
 *   - a count: once `limit` frames are captured, nothing more is.
 */

import type { FrameBatch } from "./io/batch.js";

/** pcapng's epb_flags direction bits: received by lvsd. */
export const TRACE_INBOUND = 1;
/** pcapng's epb_flags direction bits: sent by lvsd (forwarded or generated). */
export const TRACE_OUTBOUND = 2;

/** Default largest number of bytes kept per frame (tcpdump's default snaplen). */
export const TRACE_DEFAULT_SNAPLEN = 262144;
/** Default ring: 16 MiB of frame bytes, 65536 records. */
export const TRACE_DEFAULT_RING_BYTES = 16 << 20;
export const TRACE_DEFAULT_RING_FRAMES = 65536;
/** Link ids a link filter can name (the batch stores links as Int16). */
export const TRACE_MAX_LINKS = 1024;

const ETH_P_IP = 0x0800;
const ETH_P_8021Q = 0x8100;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
/** Memories whose views the tracer keeps (slab, tx batch, one RX ring per zero-copy link). */
const VIEW_CACHE = 8;
/** Filter key of "this address, any protocol, any port": the address set. */
const KEY_ADDR = 0;
const EMPTY = -1;

/** One entry of a service filter: `addr` (uint32 or int32), `proto` 6 or 17, `port` (0: any). */
export interface TraceFilterEntry {
  readonly addr: number;
  readonly proto: number;
  readonly port: number;
}

export interface FrameTracerOptions {
  /** Bytes of frame data the ring holds (default 16 MiB). */
  ringBytes?: number;
  /** Frames the ring holds (default 65536). */
  ringFrames?: number;
  /** Largest number of bytes kept per frame (default 262144). */
  snaplen?: number;
}

function filterKey(proto: number, port: number): number {
  return ((proto & 0xff) << 16) | (port & 0xffff);
}

function filterHash(addr: number, key: number, mask: number): number {
  let h = Math.imul(addr ^ Math.imul(key, 0x85ebca6b), 0x9e3779b1);
  h ^= h >>> 15;
  return h & mask;
}

export class FrameTracer {
  /** Frame bytes. */
  readonly buf: Uint8Array;
  private readonly buf32: Int32Array;
  /** Per record: offset of the frame in `buf`. */
  readonly off: Uint32Array;
  /** Per record: bytes kept (at most `snaplen`). */
  readonly capLen: Uint32Array;
  /** Per record: the frame's length on the wire. */
  readonly origLen: Uint32Array;
  /** Per record: the link it came in on (inbound) or leaves by (outbound). */
  readonly link: Int16Array;
  /** Per record: TRACE_INBOUND or TRACE_OUTBOUND. */
  readonly dir: Uint8Array;
  /** Per record: the batch's time (the director's clock, ms). */
  readonly ts: Float64Array;
  readonly ringFrames: number;
  readonly snaplen: number;

  /** Oldest record not yet taken by the reader. */
  tail = 0;
  /** Records waiting in the ring. */
  count = 0;
  /** Frames captured since `reset` (kept in the ring, then taken by the reader). */
  captured = 0;
  /** Frames that matched but found the ring full. */
  dropped = 0;
  /** Stop capturing after this many frames (0: no limit). */
  limit = 0;

  /** Next write position in `buf`. */
  private wpos = 0;
  /** 1 for each link id frames are captured on. */
  private readonly linkOk = new Uint8Array(TRACE_MAX_LINKS).fill(1);
  // service filter (null arrays: no filter)
  private fAddr: Int32Array | null = null;
  private fKey: Int32Array | null = null;
  private fMask = 0;
  /** Whether some entry has port 0 (any port): lookups then try the wildcard too. */
  private fAnyPort = false;
  // views of the last two batch buffers seen (the director's rx and tx), made once per buffer
  // Views of the memories batches come in (the director's slab, the tx batch, each zero-copy
  // link's RX ring), made once per memory: up to VIEW_CACHE of them, replaced round-robin.
  private readonly viewBufs: (Uint8Array | null)[] = new Array<Uint8Array | null>(VIEW_CACHE).fill(null);
  private readonly views8: Uint8Array[] = Array.from({ length: VIEW_CACHE }, () => new Uint8Array(0));
  private readonly views32: Int32Array[] = Array.from({ length: VIEW_CACHE }, () => new Int32Array(0));
  private viewNext = 0;
  private src8: Uint8Array = new Uint8Array(0);
  private src32: Int32Array = new Int32Array(0);
  private srcBase = 0;

  constructor(opts: FrameTracerOptions = {}) {
    const bytes = opts.ringBytes ?? TRACE_DEFAULT_RING_BYTES;
    const frames = opts.ringFrames ?? TRACE_DEFAULT_RING_FRAMES;
    const snaplen = opts.snaplen ?? TRACE_DEFAULT_SNAPLEN;
    if (!Number.isInteger(bytes) || bytes < 64 || bytes > 0x7ffffff0)
      throw new RangeError(`trace ring bytes must be an integer from 64 to 2^31-16, not ${bytes}`);
    if (!Number.isInteger(frames) || frames < 1)
      throw new RangeError(`trace ring frames must be >= 1, not ${frames}`);
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > 0x7fffffff)
      throw new RangeError(`trace snaplen must be an integer from 1 to 2^31-1, not ${snaplen}`);
    const size = (bytes + 3) & ~3;
    this.buf = new Uint8Array(size);
    this.buf32 = new Int32Array(this.buf.buffer, 0, size >> 2);
    this.ringFrames = frames;
    this.snaplen = snaplen;
    this.off = new Uint32Array(frames);
    this.capLen = new Uint32Array(frames);
    this.origLen = new Uint32Array(frames);
    this.link = new Int16Array(frames);
    this.dir = new Uint8Array(frames);
    this.ts = new Float64Array(frames);
  }

  // ---- control plane: set-up and reading (between batches) ----

  /** Empty the ring, zero the counters, remove the limit and every filter. */
  reset(): void {
    this.tail = 0;
    this.count = 0;
    this.wpos = 0;
    this.captured = 0;
    this.dropped = 0;
    this.limit = 0;
    this.setLinks(null);
    this.setFilter(null);
  }

  /** Capture only on these link ids; null: on every link. */
  setLinks(ids: readonly number[] | null): void {
    this.linkOk.fill(ids === null ? 1 : 0);
    if (ids === null) return;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= TRACE_MAX_LINKS) throw new RangeError(`bad link id ${id}`);
      this.linkOk[id] = 1;
    }
  }

  /** Capture only frames to or from these (address, protocol, port) entries; null: every frame. */
  setFilter(entries: readonly TraceFilterEntry[] | null): void {
    if (entries === null) {
      this.fAddr = null;
      this.fKey = null;
      this.fMask = 0;
      this.fAnyPort = false;
      return;
    }
    const keys: [number, number][] = [];
    let anyPort = false;
    for (const e of entries) {
      if (e.proto !== IPPROTO_TCP && e.proto !== IPPROTO_UDP)
        throw new RangeError(`trace filter protocol must be TCP or UDP, not ${e.proto}`);
      keys.push([e.addr | 0, filterKey(e.proto, e.port)], [e.addr | 0, KEY_ADDR]);
      if ((e.port & 0xffff) === 0) anyPort = true;
    }
    let cap = 8;
    while (cap < keys.length * 2) cap <<= 1;
    const fAddr = new Int32Array(cap);
    const fKey = new Int32Array(cap).fill(EMPTY);
    const mask = cap - 1;
    for (const [addr, key] of keys) {
      let h = filterHash(addr, key, mask);
      while (fKey[h] !== EMPTY && !(fKey[h] === key && fAddr[h] === addr)) h = (h + 1) & mask;
      fAddr[h] = addr;
      fKey[h] = key;
    }
    this.fAddr = fAddr;
    this.fKey = fKey;
    this.fMask = mask;
    this.fAnyPort = anyPort;
  }

  /** Whether a service filter is set. */
  get filtered(): boolean {
    return this.fKey !== null;
  }

  /** Whether the count limit is reached (nothing more will be captured). */
  get full(): boolean {
    return this.limit !== 0 && this.captured >= this.limit;
  }

  /** Ring index of the k-th oldest waiting record (k < count). */
  record(k: number): number {
    const r = this.tail + k;
    return r >= this.ringFrames ? r - this.ringFrames : r;
  }

  /** The reader is done with the `n` oldest records. */
  release(n: number): void {
    if (n > this.count) n = this.count;
    this.tail = this.record(n);
    this.count -= n;
    if (this.count === 0) {
      this.tail = 0;
      this.wpos = 0;
    }
  }

  // ---- data path: one call per batch ----

  /** Frames just received (before the engine rewrites them): all of the batch, on their arrival link. */
  inbound(batch: FrameBatch, nowMs: number): void {
    if (this.limit !== 0 && this.captured >= this.limit) return;
    this.bind(batch.buf);
    const n = batch.count;
    for (let i = 0; i < n; i++) {
      const link = batch.link[i]!;
      if (link < 0 || link >= TRACE_MAX_LINKS || this.linkOk[link] === 0) continue;
      if (this.fKey !== null && !this.matches(batch, i)) continue;
      this.take(batch, i, link, TRACE_INBOUND, nowMs);
      if (this.captured === this.limit && this.limit !== 0) return;
    }
  }

  /** Frames about to be sent: those of the batch with an egress link, on that link. */
  outbound(batch: FrameBatch, nowMs: number): void {
    if (this.limit !== 0 && this.captured >= this.limit) return;
    const n = batch.count;
    if (n === 0) return;
    this.bind(batch.buf);
    for (let i = 0; i < n; i++) {
      const link = batch.egress[i]!;
      if (link < 0 || link >= TRACE_MAX_LINKS || this.linkOk[link] === 0) continue;
      if (this.fKey !== null && !this.matches(batch, i)) continue;
      this.take(batch, i, link, TRACE_OUTBOUND, nowMs);
      if (this.captured === this.limit && this.limit !== 0) return;
    }
  }

  /** Point the copy's source views at `buf`'s memory (views made once per buffer). */
  private bind(buf: Uint8Array): void {
    const bufs = this.viewBufs;
    let k = 0;
    while (k < VIEW_CACHE && bufs[k] !== buf) k++;
    if (k === VIEW_CACHE) {
      // a memory not seen before (the first batches from each link)
      k = this.viewNext;
      this.viewNext = (k + 1) % VIEW_CACHE;
      bufs[k] = buf;
      this.views8[k] = new Uint8Array(buf.buffer, 0, buf.buffer.byteLength);
      this.views32[k] = new Int32Array(buf.buffer, 0, buf.buffer.byteLength >> 2);
    }
    this.src8 = this.views8[k]!;
    this.src32 = this.views32[k]!;
    this.srcBase = buf.byteOffset;
  }

  /** Copy frame i into the ring as one record, or count it dropped. */
  private take(batch: FrameBatch, i: number, link: number, dir: number, nowMs: number): void {
    const len = batch.len[i]!;
    const cap = len < this.snaplen ? len : this.snaplen;
    let s = this.srcBase + batch.off[i]!;
    const w = this.count === this.ringFrames ? -1 : this.reserve(cap, s & 3);
    if (w < 0) {
      this.dropped++;
      return;
    }
    const src8 = this.src8;
    const dst8 = this.buf;
    const end = s + cap;
    let d = w;
    while ((s & 3) !== 0 && s < end) dst8[d++] = src8[s++]!;
    const words = (end - s) >> 2;
    let sw = s >> 2;
    let dw = d >> 2;
    const src32 = this.src32;
    const dst32 = this.buf32;
    // four words a turn (measured: about 1.5x a one-word loop)
    const stop = sw + (words & ~3);
    while (sw < stop) {
      dst32[dw] = src32[sw]!;
      dst32[dw + 1] = src32[sw + 1]!;
      dst32[dw + 2] = src32[sw + 2]!;
      dst32[dw + 3] = src32[sw + 3]!;
      sw += 4;
      dw += 4;
    }
    for (let k = 0; k < (words & 3); k++) dst32[dw + k] = src32[sw + k]!;
    s += words << 2;
    d += words << 2;
    while (s < end) dst8[d++] = src8[s++]!;
    let r = this.tail + this.count;
    if (r >= this.ringFrames) r -= this.ringFrames;
    this.off[r] = w;
    this.capLen[r] = cap;
    this.origLen[r] = len;
    this.link[r] = link;
    this.dir[r] = dir;
    this.ts[r] = nowMs;
    this.count++;
    this.captured++;
  }

  /**
   * A place for `len` bytes starting at an offset ≡ `residue` (mod 4), or -1 when the ring has no
   * room. Used bytes run from the oldest record's offset to `wpos`, wrapping at the end of `buf`
   * (a record never wraps: the tail end left over is skipped).
   */
  private reserve(len: number, residue: number): number {
    const size = this.buf.length;
    let w = this.wpos + ((residue - this.wpos) & 3);
    if (this.count === 0) {
      w = residue;
      if (w + len > size) return -1;
      this.wpos = w + len;
      return w;
    }
    const r = this.off[this.tail]!;
    if (this.wpos > r) {
      // used: [r, wpos); free: [wpos, size) and [0, r)
      if (w + len <= size) {
        this.wpos = w + len;
        return w;
      }
      w = residue;
      if (w + len > r) return -1;
      this.wpos = w + len;
      return w;
    }
    // wrapped: used [r, end) and [0, wpos); free: [wpos, r)
    if (w + len > r) return -1;
    this.wpos = w + len;
    return w;
  }

  /** Whether frame i passes the service filter (set). Reads the few header bytes in place. */
  private matches(batch: FrameBatch, i: number): boolean {
    const dv = batch.dv;
    const o = batch.off[i]!;
    const len = batch.len[i]!;
    if (len < 34) return false;
    let l3 = o + 14;
    let type = dv.getUint16(o + 12);
    if (type === ETH_P_8021Q) {
      if (len < 38) return false;
      type = dv.getUint16(o + 16);
      l3 = o + 18;
    }
    if (type !== ETH_P_IP) return false;
    const vihl = dv.getUint8(l3);
    if (vihl >> 4 !== 4) return false;
    const ihl = (vihl & 15) << 2;
    const proto = dv.getUint8(l3 + 9);
    const saddr = dv.getInt32(l3 + 12);
    const daddr = dv.getInt32(l3 + 16);
    const fragOff = dv.getUint16(l3 + 6) & 0x1fff;
    if ((proto === IPPROTO_TCP || proto === IPPROTO_UDP) && fragOff === 0 && l3 + ihl + 4 <= o + len) {
      const sport = dv.getUint16(l3 + ihl);
      const dport = dv.getUint16(l3 + ihl + 2);
      if (this.has(saddr, (proto << 16) | sport) || this.has(daddr, (proto << 16) | dport)) return true;
      if (this.fAnyPort) return this.has(saddr, proto << 16) || this.has(daddr, proto << 16);
      return false;
    }
    return this.has(saddr, KEY_ADDR) || this.has(daddr, KEY_ADDR);
  }

  private has(addr: number, key: number): boolean {
    const fKey = this.fKey!;
    const fAddr = this.fAddr!;
    const mask = this.fMask;
    let h = filterHash(addr, key, mask);
    for (;;) {
      const k = fKey[h]!;
      if (k === EMPTY) return false;
      if (k === key && fAddr[h] === addr) return true;
      h = (h + 1) & mask;
    }
  }
}
