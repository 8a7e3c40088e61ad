/**
 * The director loop: gather frames from every link into one batch, run the engine over it,
 * hand each frame to its egress link, then send the frames the director generated. lvsd calls
 * `pump` when a link becomes readable and repeats while frames keep coming; tests call it
 * directly with in-memory links and a fake clock.
 *
 * While `tracer` is set (lvsadm --trace, src/datapath/trace.ts) each batch goes through `traced`:
 * the tracer copies the received frames before the engine rewrites them, then the forwarded and
 * generated ones. When it is null that costs one comparison per batch.
 */

import type { Engine } from "./engine.js";
import { FrameBatch } from "./io/batch.js";
import type { LinkIo } from "./io/link.js";
import type { FrameTracer } from "./trace.js";

/** What the director needs of a link backend (TAP, AF_PACKET, memory): the LinkIo interface. */
export type LinkBackend = LinkIo;

export class Director {
  readonly engine: Engine;
  readonly links: LinkBackend[] = [];
  readonly rx: FrameBatch;
  /** Batches processed and frames received, for stats. */
  batches = 0;
  frames = 0;
  /** Set by the control plane while a trace runs (src/control/observe/trace.ts); null otherwise. */
  tracer: FrameTracer | null = null;

  constructor(engine: Engine, batchSize = 256) {
    this.engine = engine;
    this.rx = new FrameBatch(batchSize);
  }

  /** Attach a backend; the engine's Net must have a link with the same id (its index). */
  attach(io: LinkBackend): number {
    this.links.push(io);
    return this.links.length - 1;
  }

  /** One round: receive up to a batch from all links, process, transmit. Returns frames received. */
  pump(nowMs: number): number {
    const rx = this.rx;
    rx.reset();
    const links = this.links;
    for (let l = 0; l < links.length && rx.count < rx.capacity; l++) links[l]!.recv(rx, l);
    const n = rx.count;
    if (n === 0) return 0;
    if (this.tracer === null) this.engine.process(rx, nowMs);
    else this.traced(this.tracer, nowMs);
    for (let l = 0; l < links.length; l++) links[l]!.send(rx, l);
    rx.release(); // frames a zero-copy link lent go back to it
    const tx = this.engine.tx;
    if (tx.count > 0) for (let l = 0; l < links.length; l++) links[l]!.send(tx, l);
    this.batches++;
    this.frames += n;
    return n;
  }

  /**
   * One round for a single link that reported readable: receive a batch from it, process, and
   * transmit on every link. Reading only the readable link saves the empty reads of the others
   * (their own readiness callbacks bring their frames). Returns frames received.
   */
  pumpLink(l: number, nowMs: number): number {
    const rx = this.rx;
    rx.reset();
    const links = this.links;
    const n = links[l]!.recv(rx, l);
    if (n === 0) return 0;
    const e = this.engine;
    if (this.tracer === null) e.process(rx, nowMs);
    else this.traced(this.tracer, nowMs);
    // one native call per link that has frames to send (links beyond 30 are always tried)
    const mask = e.egressMask;
    for (let k = 0; k < links.length; k++) if (k > 30 || (mask & (1 << k)) !== 0) links[k]!.send(rx, k);
    rx.release(); // frames a zero-copy link lent go back to it (its ring slots)
    const tx = e.tx;
    if (tx.count > 0) for (let k = 0; k < links.length; k++) links[k]!.send(tx, k);
    this.batches++;
    this.frames += n;
    return n;
  }

  /**
   * Process the receive batch with the tracer on: received frames as they came, then (after the
   * engine's in-place rewrite) the frames with an egress link, then the generated frames.
   */
  private traced(tr: FrameTracer, nowMs: number): void {
    tr.inbound(this.rx, nowMs);
    this.engine.process(this.rx, nowMs);
    tr.outbound(this.rx, nowMs);
    tr.outbound(this.engine.tx, nowMs);
  }

  /**
   * Send the frames the engine generated outside a batch (lvsd's timers: ARP retries, gratuitous
   * ARP) on their links, traced while a trace runs, and empty the tx batch. Returns how many.
   */
  sendTx(nowMs: number): number {
    const tx = this.engine.tx;
    const n = tx.count;
    if (n === 0) return 0;
    if (this.tracer !== null) this.tracer.outbound(tx, nowMs);
    const links = this.links;
    for (let l = 0; l < links.length; l++) links[l]!.send(tx, l);
    tx.reset();
    return n;
  }

  /** Pump until every link is drained (bounded by `maxRounds`). */
  drain(nowMs: number, maxRounds = 1_000_000): number {
    let total = 0;
    for (let r = 0; r < maxRounds; r++) {
      const n = this.pump(nowMs);
      if (n === 0) break;
      total += n;
    }
    return total;
  }
}
