/**
 * A batch of frames. By default they lie in one slab of memory that the batch owns: each frame
 * has a fixed slot of `slotSize` bytes; a frame starts `HEADROOM` bytes into its slot so that
 * modes which grow a packet at the front (IPIP encapsulation) can move the start back without
 * copying, and the slot's tail leaves room for modes that insert bytes (PROXY protocol headers).
 *
 * Zero-copy links (AF_PACKET's RX ring; the same contract fits an AF_XDP UMEM) lend the batch
 * their memory instead (`view`): `buf`/`dv`/`slotSize` then describe the link's memory, `off[i]`
 * points at frame i where the kernel wrote it, and the same rules hold: at least HEADROOM bytes
 * before each frame and tail room up to the end of its `slotSize`-aligned slot (`room`). The
 * frames belong to the link until `reset` (or `release`) gives them back, which the director does
 * once the batch is sent; after that, `buf` is the batch's own slab again.
 *
 * One DataView covers the whole memory (mind `byteOffset`: we always build the view from the
 * Uint8Array's own buffer/offset). Per-frame metadata lives in typed arrays.
 */

/** Bytes reserved in front of every frame. */
export const HEADROOM = 64;
/** Default slot size: headroom + a 1518-byte frame + room to insert 256 bytes + alignment. */
export const DEFAULT_SLOT_SIZE = 2048;

/**
 * `link[i]` of a frame a worker handed to another worker (src/datapath/workers/handoff.ts): the
 * engine skips it, and its memory goes back to the link with the batch.
 */
export const LINK_HANDED_OFF = -1;

/** Egress value meaning "no output" (dropped or consumed by the director). */
export const EGRESS_NONE = -1;

/**
 * Memory a link lends a FrameBatch: frames stay where the kernel put them (zero copy).
 * Slots are `slotSize` bytes from `buf`'s start; a frame's room ends at the end of its slot, and
 * there are at least HEADROOM bytes in front of it within the slot.
 */
export interface FrameMemory {
  readonly buf: Uint8Array;
  readonly dv: DataView;
  readonly slotSize: number;
  /** The batch is done with the frames it holds (sent or dropped): the link may reuse their slots. */
  release(): void;
}

export class FrameBatch {
  readonly capacity: number;
  /** Slot size of the memory the frames are in (the slab's, or the lending link's). */
  slotSize: number;
  /** The memory the frames are in: the batch's own slab, or a link's (see `memory`). */
  buf: Uint8Array;
  dv: DataView;
  /** The link memory `buf` currently views, or null for the batch's own slab. */
  memory: FrameMemory | null = null;
  /** The batch's own memory (what `buf`/`dv`/`slotSize` are when no link lends it any). */
  readonly slab: Uint8Array;
  readonly slabDv: DataView;
  readonly slabSlotSize: number;
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
    this.slabSlotSize = slotSize;
    this.buf = new Uint8Array(capacity * slotSize);
    this.dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.slab = this.buf;
    this.slabDv = this.dv;
    this.off = new Uint32Array(capacity);
    this.len = new Uint32Array(capacity);
    this.link = new Int16Array(capacity);
    this.egress = new Int16Array(capacity).fill(EGRESS_NONE);
    for (let i = 0; i < capacity; i++) this.off[i] = i * slotSize + HEADROOM;
  }

  /** Start of slot i (before headroom) in the batch's own slab. */
  slotStart(i: number): number {
    return i * this.slabSlotSize;
  }

  /** Usable bytes from a frame's current offset to the end of its slot (slab or lent memory). */
  room(i: number): number {
    const s = this.slotSize;
    return s - (this.off[i]! % s);
  }

  /**
   * Look at a link's memory: called by a zero-copy link's `recv` on an empty batch, before it
   * writes off/len of frames that lie in `mem`. Returns false (nothing changes) if the batch
   * already holds frames.
   */
  view(mem: FrameMemory): boolean {
    if (this.count !== 0) return false;
    this.memory = mem;
    this.buf = mem.buf;
    this.dv = mem.dv;
    this.slotSize = mem.slotSize;
    return true;
  }

  /**
   * Reset the batch for reuse: frames lent by a link are given back to it (`FrameMemory.release`)
   * and `buf` is the own slab again; all slots back at HEADROOM, no egress.
   */
  reset(): void {
    const mem = this.memory;
    if (mem !== null) {
      this.memory = null;
      this.buf = this.slab;
      this.dv = this.slabDv;
      this.slotSize = this.slabSlotSize;
      mem.release();
    }
    const s = this.slotSize;
    for (let i = 0; i < this.count; i++) {
      this.off[i] = i * s + HEADROOM;
      this.egress[i] = EGRESS_NONE;
    }
    this.count = 0;
  }

  /**
   * Give lent frames back to their link now (after the batch is sent): `reset` if the batch views
   * a link's memory; nothing otherwise (frames in the own slab stay readable until the next reset).
   */
  release(): void {
    if (this.memory !== null) this.reset();
  }

  /**
   * Copy a frame in (tests and the in-memory backend). Returns the index or -1 when full, too big,
   * or when the batch views a link's memory (frames can only be appended to the own slab).
   */
  push(frame: Uint8Array, link = 0): number {
    if (this.count >= this.capacity || this.memory !== null) return -1;
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
