/** Test helpers for the packet codecs (they allocate; tests only). */
import { parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView } from "../../../src/datapath/packet/view.js";

/** Bytes from tcpdump -xx text ("0x0010:  0054 26af ...") or plain hex; offsets and spaces ignored. */
export function hex(text: string): Uint8Array {
  const digits = text
    .split("\n")
    .map((l) => l.replace(/^\s*0x[0-9a-fA-F]+:/, ""))
    .join("")
    .replace(/[^0-9a-fA-F]/g, "");
  if (digits.length % 2 !== 0) throw new Error("odd number of hex digits");
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(digits.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/**
 * A frame placed at a non-zero offset inside a larger buffer that itself starts at a non-zero
 * byteOffset of its ArrayBuffer, as pooled buffers do: catches code that forgets either offset.
 */
export interface Placed {
  buf: Uint8Array;
  dv: DataView;
  off: number;
  len: number;
}

export const LEAD = 37;
export const TAIL = 29;

export function place(frame: Uint8Array, lead = LEAD, tail = TAIL, fill = 0xa5): Placed {
  const backing = new ArrayBuffer(frame.length + lead + tail + 11);
  const buf = new Uint8Array(backing, 11, frame.length + lead + tail);
  buf.fill(fill);
  buf.set(frame, lead);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return { buf, dv, off: lead, len: frame.length };
}

/** Place and parse; returns the status and the view. */
export function parsed(frame: Uint8Array, v = new FrameView()): { st: number; v: FrameView; p: Placed } {
  const p = place(frame);
  const st = parseFrame(p.buf, p.dv, p.off, p.len, v);
  return { st, v, p };
}

/** The frame bytes back out of a placed buffer. */
export function bytesOf(p: Placed, len = p.len): Uint8Array {
  return p.buf.slice(p.off, p.off + len);
}
