/**
 * The metrics endpoint's render thread (`lvsd --http`, GET /metrics; src/control/observe/metrics.ts,
 * Exposition). The main thread, which forwards packets, only collects the values of a scrape
 * (numbers into a Float64Array, and per series the id of its label set); this worker turns them
 * into the exposition text, so the text of ~85,000 series (13 MB for 1,000 services x 10 dests)
 * is written on another core instead of between batches of frames.
 *
 * What crosses: family heads once per worker, a label set's bytes once per epoch (the main thread
 * starts a new epoch, and the worker forgets every set, when more sets were sent than a scrape
 * uses), the values and label ids of each scrape (transferred, and transferred back), and the
 * text's chunks, each as soon as it is written (transferred to the main thread, which sends it
 * while the rest is written, and back once sent, for reuse). Label sets made
 * for one scrape only (health checks, VRRP) travel inline with it.
 *
 * The text is byte for byte what the main thread's render (and prom-client's registry) writes.
 */
import { parentPort, workerData } from "node:worker_threads";
import { CHUNK_BYTES, ChunkWriter } from "./textlines.js";

/** The workerData that makes this module serve render requests (not when a test imports it). */
export const RENDER_WORKER = "lvs-ts metrics render worker";

/** A plan step: a metric that prom-client rendered on the main thread (a = index into `texts`). */
export const PLAN_TEXT = 0;
/** A plan step: a table family (a = family index, b = its number of series, read in order). */
export const PLAN_FAMILY = 1;

export interface RenderRequest {
  readonly kind: "render";
  /** When it differs from the worker's, the worker forgets every label set first. */
  readonly epoch: number;
  /** Families not sent to this worker before: index, `# HELP ...\n# TYPE ...`, and `\nname`. */
  readonly families: readonly { readonly index: number; readonly head: string; readonly name: string }[];
  /** Label sets first sent in this epoch: ids (> 0), and their bytes back to back (offsets: n + 1). */
  readonly setIds: Int32Array;
  readonly setOffsets: Int32Array;
  readonly setBytes: Uint8Array;
  /** Label sets of this scrape only: series id -k-1 is the k-th (offsets: n + 1). */
  readonly inlineOffsets: Int32Array;
  readonly inlineBytes: Uint8Array;
  readonly texts: readonly string[];
  /** Steps (kind, a, b) back to back; `planLength` numbers are used. */
  readonly plan: Int32Array;
  readonly planLength: number;
  /** The series in order: value, and label set id (0: no labels; < 0: inline). */
  readonly values: Float64Array;
  readonly ids: Int32Array;
}

/** A piece of the text, sent as soon as it is written (from offset 0, `length` bytes). */
export interface RenderChunk {
  readonly kind: "chunk";
  readonly chunk: ArrayBuffer;
  readonly length: number;
}

/** The end of a render: every chunk has been sent before it. */
export interface RenderReply {
  readonly kind: "rendered";
  /** Bytes in all the chunks. */
  readonly total: number;
  /** The request's arrays, back for the next scrape. */
  readonly values: Float64Array;
  readonly ids: Int32Array;
  readonly plan: Int32Array;
}

export interface RenderFailed {
  readonly kind: "failed";
  readonly message: string;
  readonly values: Float64Array;
  readonly ids: Int32Array;
  readonly plan: Int32Array;
}

/** Chunks of a finished scrape, back for reuse. */
export interface SpareChunks {
  readonly kind: "spare";
  readonly chunks: ArrayBuffer[];
}

const SEPARATOR = Buffer.from("\n\n");
const FINAL_NEWLINE = Buffer.from("\n");
const EMPTY = Buffer.alloc(0);

/** The worker's state: what the main thread has told it, and its pool of chunks. */
export class Renderer {
  private epoch = -1;
  private readonly sets = new Map<number, Buffer>();
  private readonly heads: Buffer[] = [];
  private readonly names: Buffer[] = [];
  private readonly pool: ArrayBuffer[] = [];
  private poolLimit = 0;

  /** Label sets the worker holds (tests). */
  get setCount(): number {
    return this.sets.size;
  }

  spare(chunks: readonly ArrayBuffer[]): void {
    for (const c of chunks)
      if (c.byteLength === CHUNK_BYTES && this.pool.length < this.poolLimit) this.pool.push(c);
  }

  /** Write the text of `q`, handing each chunk to `send` as it fills; returns the bytes written. */
  render(q: RenderRequest, send: (chunk: ArrayBuffer, length: number) => void): number {
    if (q.epoch !== this.epoch) {
      this.sets.clear();
      this.epoch = q.epoch;
    }
    for (const f of q.families) {
      this.heads[f.index] = Buffer.from(f.head);
      this.names[f.index] = Buffer.from(f.name);
    }
    const setBytes = Buffer.from(q.setBytes.buffer, q.setBytes.byteOffset, q.setBytes.byteLength);
    for (let k = 0; k < q.setIds.length; k++) {
      // a copy: the request's buffer is not kept
      this.sets.set(q.setIds[k]!, Buffer.from(setBytes.subarray(q.setOffsets[k]!, q.setOffsets[k + 1]!)));
    }
    const inlineBytes = Buffer.from(q.inlineBytes.buffer, q.inlineBytes.byteOffset, q.inlineBytes.byteLength);
    const inline: Buffer[] = [];
    for (let k = 0; k + 1 < q.inlineOffsets.length; k++) {
      inline.push(inlineBytes.subarray(q.inlineOffsets[k]!, q.inlineOffsets[k + 1]!));
    }
    let used = 0;
    const w = new ChunkWriter(
      () => Buffer.from(this.pool.pop() ?? new ArrayBuffer(CHUNK_BYTES)),
      (c) => {
        used++;
        if (c.byteOffset === 0 && (c.buffer.byteLength === CHUNK_BYTES || c.buffer.byteLength === c.length)) {
          send(c.buffer as ArrayBuffer, c.length);
        } else {
          // a line longer than a chunk, written into a buffer of its own that may share memory
          const ab = new ArrayBuffer(c.length);
          new Uint8Array(ab).set(c);
          send(ab, c.length);
        }
      },
    );
    const { plan, values, ids } = q;
    let row = 0;
    for (let p = 0; p < q.planLength; p += 3) {
      if (p > 0) w.bytes(SEPARATOR);
      const a = plan[p + 1]!;
      if (plan[p] === PLAN_TEXT) {
        w.text(q.texts[a]!);
        continue;
      }
      const head = this.heads[a];
      const name = this.names[a];
      if (head === undefined || name === undefined) throw new Error(`family ${a} was never sent`);
      w.bytes(head);
      const end = row + plan[p + 2]!;
      for (; row < end; row++) {
        const id = ids[row]!;
        let labels: Buffer | undefined;
        if (id > 0) labels = this.sets.get(id);
        else if (id < 0) labels = inline[-id - 1];
        else labels = EMPTY;
        if (labels === undefined) throw new Error(`label set ${id} was never sent`);
        w.line(name, labels, values[row]!);
      }
    }
    w.bytes(FINAL_NEWLINE);
    w.end();
    this.poolLimit = Math.max(this.poolLimit, 2 * used);
    return w.length;
  }
}

if (parentPort && workerData === RENDER_WORKER) {
  const port = parentPort;
  const renderer = new Renderer();
  port.on("message", (m: RenderRequest | SpareChunks) => {
    if (m.kind === "spare") {
      renderer.spare(m.chunks);
      return;
    }
    const back = [m.values.buffer, m.ids.buffer, m.plan.buffer] as ArrayBuffer[];
    try {
      const total = renderer.render(m, (chunk, length) => {
        const c: RenderChunk = { kind: "chunk", chunk, length };
        port.postMessage(c, [chunk]);
      });
      const reply: RenderReply = { kind: "rendered", total, values: m.values, ids: m.ids, plan: m.plan };
      port.postMessage(reply, back);
    } catch (err) {
      const reply: RenderFailed = {
        kind: "failed",
        message: err instanceof Error ? err.message : String(err),
        values: m.values,
        ids: m.ids,
        plan: m.plan,
      };
      port.postMessage(reply, back);
    }
  });
}
