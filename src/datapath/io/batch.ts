/**
 * A batch of frames in one slab of memory that we own. Each frame has a fixed slot of
 * `slotSize` bytes; a frame starts `HEADROOM` bytes into its slot so that modes which grow
 * a packet at the front (IPIP encapsulation) can move the start back without copying, and
 * the slot's tail leaves room for modes that insert bytes (PROXY protocol headers).
 *
 * One DataView covers the whole slab (mind `byteOffset`: we always build the view from the
 * Uint8Array's own buffer/offset). Per-frame metadata lives in typed arrays.
 */

/** Bytes reserved in front of every frame. */
export const HEADROOM = 64;
/** Default slot size: headroom + a 1518-byte frame + room to insert 256 bytes + alignment. */
export const DEFAULT_SLOT_SIZE = 2048;

/** Egress value meaning "no output" (dropped or consumed by the director). */
export const EGRESS_NONE = -1;

export class FrameBatch {
  readonly capacity: number;
  readonly slotSize: number;
  readonly buf: Uint8Array;
  readonly dv: DataView;
  /** Absolute offset of each frame's first byte in `buf`. */
  readonly off: Uint32Array;
  /** Length of each frame in bytes. */
  readonly len: Uint32Array;
  /** Link the frame arrived on (rx) . */
  readonly link: Int16Array;
  /** Link the frame leaves by after processing, or EGRESS_NONE. */
  readonly egress: Int16Array;
  /** Number of frames in the batch. */
  count = 0;

  constructor(capacity = 256, slotSize = DEFAULT_SLOT_SIZE) {
    this.capacity = capacity;
    this.slotSize = slotSize;
    this.buf = new Uint8Array(capacity * slotSize);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.off = new Uint32Array(capacity);
    this.len = new Uint32Array(capacity);
    this.link = new Int16Array(capacity);
    this.egress = new Int16Array(capacity).fill(EGRESS_NONE);
    for (let i = 0; i < capacity; i++) this.off[i] = i * slotSize + HEADROOM;
  }

  /** Start of slot i (before headroom). */
  slotStart(i: number): number {
    return i * this.slotSize;
  }

  /** Usable bytes from a frame's current offset to the end of its slot. */
  room(i: number): number {
    return (i + 1) * this.slotSize - this.off[i]!;
  }

  /** Reset the batch for reuse: all frames back at HEADROOM, no egress. */
  reset(): void {
    for (let i = 0; i < this.count; i++) {
      this.off[i] = i * this.slotSize + HEADROOM;
      this.egress[i] = EGRESS_NONE;
    }
    this.count = 0;
  }

  /** Copy a frame in (tests and the in-memory backend). Returns the index or -1 when full / too big. */
  push(frame: Uint8Array, link = 0): number {
    if (this.count >= this.capacity) return -1;
    const i = this.count;
    const off = i * this.slotSize + HEADROOM;
    if (frame.length > this.slotSize - HEADROOM) return -1;
    this.buf.set(frame, off);
    this.off[i] = off;
    this.len[i] = frame.length;
    this.link[i] = link;
    this.egress[i] = EGRESS_NONE;
    this.count = i + 1;
    return i;
  }

  /** Copy frame i out (tests and output). Allocates: not for the per-packet path. */
  frame(i: number): Uint8Array {
    const o = this.off[i]!;
    return this.buf.slice(o, o + this.len[i]!);
  }
}
