/**
 * Worker steering for AF_XDP links (docs/workers.md, "AF_XDP: one socket per queue"). With
 * `--workers N` each worker binds its own AF_XDP socket to queue N of every link (own UMEM, no
 * locks), behind one XDP program per interface. Which queue a frame arrives on is the NIC's
 * (or the veth peer's) choice, by a flow hash that cannot know lvsd's flows: a NAT reply's
 * tuple is not its request's. So each worker looks at the frames it received and hands those
 * that belong to another worker over to it, by the same rules the AF_PACKET fanout program
 * (steer.ts) applies in the kernel:
 *
 * 1. IPv4 TCP/UDP to a FULLNAT local address: `dport % N`;
 * 2. to a VIP: `steerWorker(saddr, sport, N)`;
 * 3. from a NAT real server: `steerWorker(daddr, dport, N)`;
 * 4. any other TCP/UDP: by its source end;
 * 5. everything else (ARP, ICMP, VRRP, fragments): worker 0.
 *
 * A handed-over frame is copied into a single-producer single-consumer ring in shared memory
 * (one per ordered pair of workers) with the link it came in by, and marked in the batch
 * (`link[i] = LINK_HANDED_OFF`) so the engine skips it; the owner's HandoffLink reads the rings
 * addressed to it as if the frames had arrived on their links. A producer wakes an idle
 * consumer with Atomics.notify only when the ring was empty before its batch (the consumer
 * re-checks after publishing its read position, so no wake-up is lost); a full ring, or a frame
 * longer than a batch slot holds (over 1,984 bytes with lvsd's 2,048-byte slots), drops the frame
 * and counts it (`SteeredLink.handoffDrops`, the RX-DROP of the sender's `handoff:wN` row).
 *
 * Data path: nothing here allocates per frame; rings and tables are built by the control plane.
 */
import { EGRESS_NONE, type FrameBatch, HEADROOM, LINK_HANDED_OFF } from "../io/batch.js";
import type { LinkIo, LinkStats } from "../io/link.js";
import { type HandoffRingSpec, steerWorker } from "./protocol.js";

export type { HandoffRingSpec };

/** Role bits of an address in SteerRoles. */
export const ROLE_LADDR = 1;
export const ROLE_VIP = 2;
export const ROLE_NATDEST = 4;

/**
 * The addresses steering needs (VIPs, FULLNAT local addresses, NAT real servers), in an
 * open-addressing hash table over typed arrays: lookups allocate nothing. Rebuilt whole when the
 * service table changes (control plane).
 */
export class SteerRoles {
  private keys: Int32Array;
  private roles: Uint8Array;
  private mask: number;

  constructor() {
    this.keys = new Int32Array(16);
    this.roles = new Uint8Array(16);
    this.mask = 15;
  }

  /** Replace the contents: `laddrs`, `vips` and `natDests` as uint32 addresses. */
  set(laddrs: readonly number[], vips: readonly number[], natDests: readonly number[]): void {
    const n = laddrs.length + vips.length + natDests.length;
    let cap = 16;
    while (cap < n * 2) cap *= 2;
    this.keys = new Int32Array(cap);
    this.roles = new Uint8Array(cap);
    this.mask = cap - 1;
    for (const a of laddrs) this.add(a, ROLE_LADDR);
    for (const a of vips) this.add(a, ROLE_VIP);
    for (const a of natDests) this.add(a, ROLE_NATDEST);
  }

  private add(addr: number, role: number): void {
    const k = addr | 0;
    for (let i = hash(k) & this.mask; ; i = (i + 1) & this.mask) {
      if (this.roles[i] === 0 || this.keys[i] === k) {
        this.keys[i] = k;
        this.roles[i] = this.roles[i]! | role;
        return;
      }
    }
  }

  /** The role bits of `addr` (0: none). */
  get(addr: number): number {
    const k = addr | 0;
    const keys = this.keys;
    const roles = this.roles;
    const m = this.mask;
    for (let i = hash(k) & m; ; i = (i + 1) & m) {
      const r = roles[i]!;
      if (r === 0) return 0;
      if (keys[i] === k) return r;
    }
  }
}

function hash(k: number): number {
  return Math.imul(k ^ (k >>> 16), 0x45d9f3b) >>> 16;
}

/**
 * The worker (0..count-1) that owns the frame of `len` bytes at `off` in `b`, by the rules in
 * the file header. One 802.1Q tag is looked through.
 */
export function steerOwner(
  b: Uint8Array,
  off: number,
  len: number,
  roles: SteerRoles,
  count: number,
): number {
  if (count < 2 || len < 38) return 0;
  let l3 = off + 14;
  let et = (b[off + 12]! << 8) | b[off + 13]!;
  if (et === 0x8100) {
    et = (b[off + 16]! << 8) | b[off + 17]!;
    l3 += 4;
  }
  if (et !== 0x0800) return 0;
  const vihl = b[l3]!;
  const ihl = (vihl & 15) << 2;
  if (vihl >> 4 !== 4 || ihl < 20) return 0;
  const proto = b[l3 + 9]!;
  if (proto !== 6 && proto !== 17) return 0;
  if ((((b[l3 + 6]! << 8) | b[l3 + 7]!) & 0x3fff) !== 0) return 0;
  const l4 = l3 + ihl;
  if (l4 + 4 > off + len) return 0;
  const saddr = (b[l3 + 12]! << 24) | (b[l3 + 13]! << 16) | (b[l3 + 14]! << 8) | b[l3 + 15]!;
  const daddr = (b[l3 + 16]! << 24) | (b[l3 + 17]! << 16) | (b[l3 + 18]! << 8) | b[l3 + 19]!;
  const sport = (b[l4]! << 8) | b[l4 + 1]!;
  const dport = (b[l4 + 2]! << 8) | b[l4 + 3]!;
  const dr = roles.get(daddr);
  if ((dr & ROLE_LADDR) !== 0) return dport % count;
  if ((dr & ROLE_VIP) !== 0) return steerWorker(saddr, sport, count);
  if ((roles.get(saddr) & ROLE_NATDEST) !== 0) return steerWorker(daddr, dport, count);
  return steerWorker(saddr, sport, count);
}

// Ring header (Int32 slots): the consumer's read count, the producer's write count, and the
// sequence number a sleeping consumer waits on.
const H_HEAD = 0;
const H_TAIL = 1;
const H_SEQ = 2;
const HDR_BYTES = 64;
/** Per slot: frame length (u16), link (u16), then the frame. */
const SLOT_HDR = 4;

/** Size of the shared buffer of one ring of `slots` slots of `slotSize` bytes. */
export function handoffRingBytes(slots: number, slotSize: number): number {
  return HDR_BYTES + slots * slotSize;
}

export function newHandoffRing(slots: number, slotSize: number): HandoffRingSpec {
  if (!Number.isInteger(slots) || slots < 1 || (slots & (slots - 1)) !== 0)
    throw new RangeError(`handoff ring: slots must be a power of two (got ${slots})`);
  if (!Number.isInteger(slotSize) || slotSize < 64 || slotSize % 4 !== 0 || slotSize > 65536)
    throw new RangeError(`handoff ring: slotSize must be a multiple of 4 in 64..65536 (got ${slotSize})`);
  return { sab: new SharedArrayBuffer(handoffRingBytes(slots, slotSize)), slots, slotSize };
}

/** One ring over shared memory: either end (a worker holds the producer or the consumer side). */
export class HandoffRing {
  readonly hdr: Int32Array;
  readonly data: Uint8Array;
  private readonly data32: Int32Array;
  readonly slots: number;
  readonly slotSize: number;
  private readonly mask: number;
  /** Consumer: frames longer than the batch's slots could hold, dropped. */
  tooLong = 0;
  /** Producer: frames written since the last publish; its cached view of head. */
  private tail = 0;
  private headSeen = 0;
  private published = 0;

  constructor(spec: HandoffRingSpec) {
    this.hdr = new Int32Array(spec.sab, 0, 3);
    this.data = new Uint8Array(spec.sab, HDR_BYTES, spec.slots * spec.slotSize);
    this.data32 = new Int32Array(spec.sab, HDR_BYTES, (spec.slots * spec.slotSize) >>> 2);
    this.slots = spec.slots;
    this.slotSize = spec.slotSize;
    this.mask = spec.slots - 1;
    this.tail = Atomics.load(this.hdr, H_TAIL);
    this.published = this.tail;
  }

  /** Producer: copy a frame in (unpublished until `publish`). Returns 0 when the ring is full or the frame too long. */
  put(b: Uint8Array, off: number, len: number, link: number): number {
    // no longer than a batch slot of the ring's size takes behind its headroom
    if (len > this.slotSize - HEADROOM) return 0;
    if (this.tail - this.headSeen >= this.slots) {
      this.headSeen = Atomics.load(this.hdr, H_HEAD);
      if (this.tail - this.headSeen >= this.slots) return 0;
    }
    const o = (this.tail & this.mask) * this.slotSize;
    const d = this.data;
    d[o] = len >>> 8;
    d[o + 1] = len & 0xff;
    d[o + 2] = link >>> 8;
    d[o + 3] = link & 0xff;
    HandoffRing.copy(d, this.data32, o + SLOT_HDR, b, this.words(b), off, len);
    this.tail = (this.tail + 1) | 0;
    return 1;
  }

  /**
   * Copy `len` bytes from `src` at `sOff` to `dst` at `dOff` without allocating (a subarray
   * would): by 32-bit words (`dst32`/`src32`, views of the same memory, null when unaligned)
   * when both ends are aligned (up to 3 bytes past the end are copied too: a ring slot and a
   * batch slot have that room), else by bytes.
   */
  private static copy(
    dst: Uint8Array,
    dst32: Int32Array | null,
    dOff: number,
    src: Uint8Array,
    src32: Int32Array | null,
    sOff: number,
    len: number,
  ): void {
    if (
      dst32 !== null &&
      src32 !== null &&
      ((sOff | dOff) & 3) === 0 &&
      dOff + len + 3 <= dst.length &&
      sOff + len + 3 <= src.length
    ) {
      const n = (len + 3) >>> 2;
      const so = sOff >>> 2;
      const dw = dOff >>> 2;
      for (let k = 0; k < n; k++) dst32[dw + k] = src32[so + k]!;
      return;
    }
    for (let k = 0; k < len; k++) dst[dOff + k] = src[sOff + k]!;
  }

  // 32-bit views of the last two byte arrays seen (a batch's slab and a link's memory),
  // made once per array
  private wa: Uint8Array | null = null;
  private wa32: Int32Array | null = null;
  private wb: Uint8Array | null = null;
  private wb32: Int32Array | null = null;
  private words(b: Uint8Array): Int32Array | null {
    if (b === this.wa) return this.wa32;
    if (b === this.wb) return this.wb32;
    this.wb = this.wa;
    this.wb32 = this.wa32;
    this.wa = b;
    this.wa32 = (b.byteOffset & 3) === 0 ? new Int32Array(b.buffer, b.byteOffset, b.byteLength >>> 2) : null;
    return this.wa32;
  }

  /**
   * Producer: make the frames put so far visible, and wake the consumer if it may be asleep (it
   * had read everything before them).
   */
  publish(): void {
    const before = this.published;
    if (this.tail === before) return;
    Atomics.store(this.hdr, H_TAIL, this.tail);
    this.published = this.tail;
    if (Atomics.load(this.hdr, H_HEAD) === before) {
      Atomics.add(this.hdr, H_SEQ, 1);
      Atomics.notify(this.hdr, H_SEQ);
    }
  }

  /**
   * Consumer: append waiting frames to `batch` (its own slab) up to its capacity, each with the
   * link it came in by; returns how many.
   */
  take(batch: FrameBatch): number {
    if (batch.memory !== null) return 0;
    const hdr = this.hdr;
    let head = Atomics.load(hdr, H_HEAD);
    const tail = Atomics.load(hdr, H_TAIL);
    const d = this.data;
    const buf = batch.buf;
    const s = batch.slotSize;
    let n = 0;
    while (head !== tail && batch.count < batch.capacity) {
      const o = (head & this.mask) * this.slotSize;
      const len = (d[o]! << 8) | d[o + 1]!;
      const link = (d[o + 2]! << 8) | d[o + 3]!;
      head = (head + 1) | 0;
      const i = batch.count;
      if (len > s - HEADROOM) {
        this.tooLong++; // a batch with smaller slots than the ring's (not lvsd's): counted
        continue;
      }
      const at = i * s + HEADROOM;
      HandoffRing.copy(buf, this.words(buf), at, d, this.data32, o + SLOT_HDR, len);
      batch.off[i] = at;
      batch.len[i] = len;
      batch.link[i] = link;
      batch.egress[i] = EGRESS_NONE;
      batch.count = i + 1;
      n++;
    }
    Atomics.store(hdr, H_HEAD, head);
    return n;
  }

  /** Consumer: frames waiting. */
  pending(): number {
    return (Atomics.load(this.hdr, H_TAIL) - Atomics.load(this.hdr, H_HEAD)) | 0;
  }

  /** Consumer: the sequence number to wait on (read it before draining). */
  seq(): number {
    return Atomics.load(this.hdr, H_SEQ);
  }
}

/** Atomics.waitAsync (Node 16+; ES2024, newer than the TypeScript lib this project targets). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      a: Int32Array,
      i: number,
      v: number,
    ): { async: false; value: "not-equal" | "timed-out" } | { async: true; value: Promise<string> };
  }
).waitAsync.bind(Atomics);

const emptyStats = (): LinkStats => ({
  rxPackets: 0,
  rxBytes: 0,
  txPackets: 0,
  txBytes: 0,
  rxDropped: 0,
  txDropped: 0,
});

/**
 * A worker's link wrapped for steering: what `inner` receives that belongs to another worker
 * goes to that worker's ring and is marked LINK_HANDED_OFF in the batch; the rest is the
 * engine's. Sends, readiness and close are the inner link's.
 */
export class SteeredLink implements LinkIo {
  readonly inner: LinkIo;
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  /** rings[w]: to worker w (null for this worker). */
  private readonly rings: (HandoffRing | null)[];
  private readonly self: number;
  private readonly roles: SteerRoles;
  /** Frames handed to other workers, and those dropped because the owner's ring was full. */
  handedOff = 0;
  handoffDrops = 0;

  constructor(inner: LinkIo, self: number, rings: (HandoffRing | null)[], roles: SteerRoles) {
    this.inner = inner;
    this.name = inner.name;
    this.mac = inner.mac;
    this.mtu = inner.mtu;
    this.self = self;
    this.rings = rings;
    this.roles = roles;
  }

  get stats(): LinkStats {
    return this.inner.stats;
  }

  recv(batch: FrameBatch, linkId: number): number {
    const start = batch.count;
    const n = this.inner.recv(batch, linkId);
    if (n === 0) return 0;
    const count = this.rings.length;
    const buf = batch.buf;
    let moved = 0;
    for (let i = start; i < start + n; i++) {
      const w = steerOwner(buf, batch.off[i]!, batch.len[i]!, this.roles, count);
      if (w === this.self) continue;
      batch.link[i] = LINK_HANDED_OFF;
      if (this.rings[w]!.put(buf, batch.off[i]!, batch.len[i]!, linkId) === 1) moved++;
      else this.handoffDrops++;
    }
    if (moved > 0) {
      this.handedOff += moved;
      for (let w = 0; w < count; w++) this.rings[w]?.publish();
    }
    return n;
  }

  send(batch: FrameBatch, linkId: number): number {
    return this.inner.send(batch, linkId);
  }

  onReadable(cb: (() => void) | null): void {
    this.inner.onReadable(cb);
  }

  close(): void {
    this.inner.close();
  }
}

/**
 * The frames other workers handed to this one: a receive-only link over the rings addressed to
 * it. `recv` puts each frame in the batch with the link it originally came in by. Readiness is
 * not a descriptor: `onReadable` arms Atomics.waitAsync on each ring's sequence number.
 */
export class HandoffLink implements LinkIo {
  readonly name = "handoff";
  readonly mac = new Uint8Array(6);
  readonly mtu = 0;
  readonly stats: LinkStats = emptyStats();
  private readonly rings: HandoffRing[];
  private next = 0;
  private cb: (() => void) | null = null;
  private closed = false;
  /** Wake-ups (a consumer found asleep). */
  wakeups = 0;

  constructor(rings: HandoffRing[]) {
    this.rings = rings;
  }

  recv(batch: FrameBatch, _linkId: number): number {
    const rings = this.rings;
    let n = 0;
    // round robin over the senders, so one busy sender does not starve the others
    for (let k = 0; k < rings.length && batch.count < batch.capacity; k++) {
      const r = rings[(this.next + k) % rings.length]!;
      n += r.take(batch);
    }
    this.next = (this.next + 1) % Math.max(1, rings.length);
    if (n > 0) {
      this.stats.rxPackets += n;
    }
    return n;
  }

  send(_batch: FrameBatch, _linkId: number): number {
    return 0;
  }

  /** Frames dropped because the batch's slots could not hold them (HandoffRing.tooLong). */
  tooLong(): number {
    let n = 0;
    for (const r of this.rings) n += r.tooLong;
    return n;
  }

  /** Frames waiting in all rings. */
  pending(): number {
    let n = 0;
    for (const r of this.rings) n += r.pending();
    return n;
  }

  onReadable(cb: (() => void) | null): void {
    const arm = this.cb === null && cb !== null;
    this.cb = cb;
    if (arm) for (const r of this.rings) this.watch(r);
  }

  /**
   * Call the callback whenever `r` may have frames: now if it has, then each time its producer
   * bumps the sequence number. The number is read before the callback drains the ring, so a
   * bump after the drain makes waitAsync return at once ("not-equal").
   */
  private watch(r: HandoffRing): void {
    const loop = (): void => {
      if (this.cb === null || this.closed) return;
      const s = r.seq();
      if (r.pending() > 0) this.cb();
      if (this.cb === null || this.closed) return;
      if (r.pending() > 0) {
        setImmediate(loop); // the callback stopped short (its round limit): the rest next turn
        return;
      }
      const w = waitAsync(r.hdr, H_SEQ, s);
      if (w.async) {
        w.value.then(() => {
          this.wakeups++;
          loop();
        });
      } else setImmediate(loop);
    };
    loop();
  }

  close(): void {
    this.closed = true;
    this.cb = null;
    // wake the pending waits so their promises settle
    for (const r of this.rings) Atomics.notify(r.hdr, H_SEQ);
  }
}
