/**
 * Lines of the Prometheus text exposition written as bytes (no string per line): what the
 * metrics endpoint's render writes, on the main thread (src/control/observe/metrics.ts) or in its
 * render worker (render-worker.ts). Imports nothing but Node's Buffer, so the worker loads
 * neither prom-client nor the tables.
 */

/** A sample value as prom-client's getValueAsString writes it (NaN spelled as the format spells it). */
export function valueText(v: number): string {
  if (Number.isFinite(v)) return `${v}`;
  if (Number.isNaN(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

/** Bytes of one chunk of the exposition text. */
export const CHUNK_BYTES = 256 * 1024;

/**
 * The exposition text as it is written: chunks of CHUNK_BYTES into which `\nname{labels} value`
 * lines are written by copying the name's and the label set's bytes and writing integer values
 * digit by digit, so a line makes no string (joining ~85,000 small strings cost more than all
 * the rest of a scrape). Chunks come from `take` (a pool: Exposition) and are handed out as they
 * fill (to `filled`, when given); `chunks` then holds the text in order.
 */
export class ChunkWriter {
  readonly chunks: Buffer[] = [];
  /** Bytes in `chunks`. */
  length = 0;
  private buf: Buffer;
  private at = 0;
  /** `filled`, when given, is told each chunk as it is handed out (the render worker streams them). */
  constructor(
    private readonly take: () => Buffer,
    private readonly filled?: (chunk: Buffer) => void,
  ) {
    this.buf = take();
  }
  /** Make room for `n` more bytes in the current chunk. */
  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n); // a line longer than a chunk
  }
  private flush(): void {
    if (this.at === 0) return;
    const chunk = this.buf.subarray(0, this.at);
    this.chunks.push(chunk);
    this.length += this.at;
    this.filled?.(chunk);
    this.buf = this.take();
    this.at = 0;
  }
  bytes(b: Buffer): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }
  text(s: string): void {
    this.room(Buffer.byteLength(s));
    this.at += this.buf.write(s, this.at);
  }
  /** `\nname{labels} value`; `name` is the family's name with the newline before it, in bytes. */
  line(name: Buffer, labels: Buffer, value: number): void {
    this.room(name.length + labels.length + 32);
    const buf = this.buf;
    let at = this.at;
    buf.set(name, at);
    at += name.length;
    buf.set(labels, at);
    at += labels.length;
    buf[at++] = 0x20;
    this.at = writeValue(buf, at, value);
  }
  /** The text, all of it in `chunks`. */
  end(): Buffer[] {
    this.flush();
    return this.chunks;
  }
}

/**
 * Write `v` at `at` as `${v}` writes it (valueText), returning the end. Integers from 0 to 2^53
 * (`${v}` writes those without exponent) are written digit by digit with 32-bit integer
 * arithmetic, in chunks of nine digits; anything else goes through valueText.
 */
export function writeValue(buf: Buffer, at: number, v: number): number {
  if (v >= 0 && v < 0x80000000 && Number.isInteger(v)) return writeSmall(buf, at, v | 0);
  if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v))) {
    return at + buf.write(valueText(v), at, "latin1");
  }
  let hi = Math.floor(v / 1e9);
  let lo = v - hi * 1e9; // exact: integers below 2^53
  if (lo < 0) {
    hi -= 1; // v / 1e9 rounded up to the next integer
    lo += 1e9;
  }
  at = writeSmall(buf, at, hi); // below 2^53 / 1e9, about 9e6
  let x = lo | 0;
  for (let k = 8; k >= 0; k--) {
    buf[at + k] = 0x30 + (x % 10);
    x = (x / 10) | 0;
  }
  return at + 9;
}

/** A non-negative 32-bit integer's digits. */
function writeSmall(buf: Buffer, at: number, v: number): number {
  let digits = 1;
  for (let t = v; t >= 10; t = (t / 10) | 0) digits++;
  const end = at + digits;
  let p = end;
  let n = v;
  do {
    buf[--p] = 0x30 + (n % 10);
    n = (n / 10) | 0;
  } while (n > 0);
  return end;
}
