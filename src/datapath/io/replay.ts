/**
 * A memory link that replays pre-built frames (docs/workers.md): the in-process worker
 * benchmark and the worker tests feed each worker's engine from it. The frames are packed once
 * into pages laid out exactly as a FrameBatch's own slab (one frame per slot, HEADROOM in
 * front), so `recv` restores a whole batch of pristine frames with one copy and the engine then
 * rewrites them in place as it would frames from a ring. Nothing is allocated per batch.
 *
 * The first `warmup` frames are replayed once (e.g. the packets that open the connections);
 * then, with `loop`, the rest over and over, or once without. `send` counts the frames and bytes
 * it is given, and with `capture` keeps a copy of each (tests; copying allocates).
 */
import { EGRESS_NONE, type FrameBatch, HEADROOM } from "./batch.js";
import type { LinkStats } from "./link.js";

export class ReplayLink {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  readonly stats: LinkStats = {
    rxPackets: 0,
    rxBytes: 0,
    txPackets: 0,
    txBytes: 0,
    rxDropped: 0,
    txDropped: 0,
  };
  /** Frames sent on this link (capture mode only), in order. */
  readonly captured: Uint8Array[] = [];
  capture: boolean;
  /** Replay the frames after the warm-up again and again. */
  loop = false;
  private readonly pages: Uint8Array[] = [];
  private readonly pageLen: Uint32Array[] = [];
  private readonly pageCount: number[] = [];
  /** First page after the warm-up pages. */
  private steadyPage = 0;
  private page = 0;
  private readonly slotSize: number;
  private readonly capacity: number;

  /**
   * `frames` i lie at data[off[i]..off[i]+len[i]]; the pages are built for batches of
   * `capacity` frames in `slotSize`-byte slots (the director's receive batch).
   */
  constructor(
    name: string,
    mac: Uint8Array,
    mtu: number,
    frames: { data: Uint8Array; off: Uint32Array; len: Uint32Array; warmup: number },
    capacity: number,
    slotSize: number,
    capture = false,
  ) {
    this.name = name;
    this.mac = mac;
    this.mtu = mtu;
    this.capture = capture;
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.load(frames);
  }

  /** Replace the frames to replay (and start from the first). */
  load(frames: { data: Uint8Array; off: Uint32Array; len: Uint32Array; warmup: number }): void {
    this.pages.length = 0;
    this.pageLen.length = 0;
    this.pageCount.length = 0;
    this.page = 0;
    const n = frames.off.length;
    const warm = Math.min(frames.warmup, n);
    this.packPages(frames, 0, warm);
    this.steadyPage = this.pages.length;
    this.packPages(frames, warm, n);
  }

  private packPages(
    f: { data: Uint8Array; off: Uint32Array; len: Uint32Array },
    from: number,
    to: number,
  ): void {
    for (let first = from; first < to; first += this.capacity) {
      const k = Math.min(this.capacity, to - first);
      const page = new Uint8Array(k * this.slotSize);
      const lens = new Uint32Array(k);
      for (let j = 0; j < k; j++) {
        const o = f.off[first + j]!;
        const l = Math.min(f.len[first + j]!, this.slotSize - HEADROOM);
        page.set(f.data.subarray(o, o + l), j * this.slotSize + HEADROOM);
        lens[j] = l;
      }
      this.pages.push(page);
      this.pageLen.push(lens);
      this.pageCount.push(k);
    }
  }

  /** Frames left to replay (a looping link never runs out once past its warm-up). */
  get exhausted(): boolean {
    return this.page >= this.pages.length && !(this.loop && this.steadyPage < this.pages.length);
  }

  /** True while the warm-up pages are not all replayed. */
  get warming(): boolean {
    return this.page < this.steadyPage;
  }

  /** Start again from the first frame. */
  rewind(): void {
    this.page = 0;
  }

  recv(batch: FrameBatch, linkId: number): number {
    if (batch.count !== 0 || batch.memory !== null || batch.slotSize !== this.slotSize) return 0;
    if (this.page >= this.pages.length) {
      if (!this.loop || this.steadyPage >= this.pages.length) return 0;
      this.page = this.steadyPage;
    }
    const p = this.page++;
    const k = this.pageCount[p]!;
    if (k > batch.capacity) return 0;
    batch.buf.set(this.pages[p]!, 0);
    const lens = this.pageLen[p]!;
    let bytes = 0;
    for (let j = 0; j < k; j++) {
      batch.off[j] = j * this.slotSize + HEADROOM;
      const l = lens[j]!;
      batch.len[j] = l;
      batch.link[j] = linkId;
      batch.egress[j] = EGRESS_NONE;
      bytes += l;
    }
    batch.count = k;
    this.stats.rxPackets += k;
    this.stats.rxBytes += bytes;
    return k;
  }

  send(batch: FrameBatch, linkId: number): number {
    let n = 0;
    let bytes = 0;
    for (let i = 0; i < batch.count; i++) {
      if (batch.egress[i] !== linkId) continue;
      n++;
      bytes += batch.len[i]!;
      if (this.capture) this.captured.push(batch.frame(i));
    }
    this.stats.txPackets += n;
    this.stats.txBytes += bytes;
    return n;
  }

  onReadable(_cb: (() => void) | null): void {}

  close(): void {}
}

/** Pack frames into one buffer with offsets and lengths (for ReplayLink and the worker's init). */
export function packFrames(frames: readonly Uint8Array[]): {
  data: Uint8Array;
  off: Uint32Array;
  len: Uint32Array;
} {
  let total = 0;
  for (const f of frames) total += f.length;
  const data = new Uint8Array(total);
  const off = new Uint32Array(frames.length);
  const len = new Uint32Array(frames.length);
  let o = 0;
  frames.forEach((f, i) => {
    data.set(f, o);
    off[i] = o;
    len[i] = f.length;
    o += f.length;
  });
  return { data, off, len };
}
