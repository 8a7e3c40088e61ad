/**
 * The frames the director generates itself (ARP requests and replies, gratuitous ARP, ICMP echo
 * replies and errors, frames released from the ARP queue): one batch per engine call, sent by
 * the director after the forwarded frames. The engine resets it at the start of `process` and
 * `maintain`; the resolver and the ICMP responder fill it.
 */
import { Drop } from "./drops.js";
import { EGRESS_NONE, FrameBatch, HEADROOM } from "./io/batch.js";

export class TxQueue {
  readonly batch: FrameBatch;
  /** Frames committed since start (generated, plus frames released from the ARP queue). */
  committed = 0;
  private readonly drops: Float64Array;

  constructor(capacity: number, drops: Float64Array) {
    this.batch = new FrameBatch(capacity);
    this.drops = drops;
  }

  reset(): void {
    this.batch.reset();
  }

  /** A free slot (its offset set, no egress yet), or -1 when the batch is full (counted as tx_full). */
  slot(): number {
    const tx = this.batch;
    if (tx.count >= tx.capacity) {
      this.drops[Drop.TX_FULL]!++;
      return -1;
    }
    const j = tx.count;
    tx.off[j] = j * tx.slotSize + HEADROOM;
    tx.egress[j] = EGRESS_NONE;
    return j;
  }

  /** Commit slot j (from `slot()`, with the frame written) to leave by `link`. */
  commit(j: number, len: number, link: number): void {
    const tx = this.batch;
    tx.len[j] = len;
    tx.egress[j] = link;
    tx.link[j] = link;
    tx.count = j + 1;
    this.committed++;
  }
}
