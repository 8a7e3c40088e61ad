/**
 * In-memory I/O backend: links whose frames come from and go to arrays. Tests and the
 * in-process benchmarks drive the engine through it. It follows the same LinkIo shape as the
 * TAP and AF_PACKET backends (recv appends frames to a batch, send takes the frames whose
 * egress is this link), so the director loop does not know which backend it runs on.
 * Copying frames in and out allocates: this backend is for tests, not for the data path.
 */
import type { FrameBatch } from "./batch.js";

export class MemoryLink {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly mtu: number;
  /** Frames waiting to be received. */
  readonly inbox: Uint8Array[] = [];
  /** Frames sent on this link, in order. */
  readonly sent: Uint8Array[] = [];
  readonly stats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, rxDropped: 0, txDropped: 0 };
  private readable: (() => void) | null = null;

  constructor(name: string, mac: Uint8Array, mtu = 1500) {
    this.name = name;
    this.mac = mac;
    this.mtu = mtu;
  }

  /** Queue a frame for reception. */
  inject(frame: Uint8Array): void {
    this.inbox.push(frame);
    this.readable?.();
  }

  recv(batch: FrameBatch, linkId: number): number {
    let n = 0;
    while (this.inbox.length > 0 && batch.count < batch.capacity) {
      const f = this.inbox.shift()!;
      if (batch.push(f, linkId) < 0) {
        this.stats.rxDropped++;
        continue;
      }
      this.stats.rxPackets++;
      this.stats.rxBytes += f.length;
      n++;
    }
    return n;
  }

  send(batch: FrameBatch, linkId: number): number {
    let n = 0;
    for (let i = 0; i < batch.count; i++) {
      if (batch.egress[i] !== linkId) continue;
      const f = batch.frame(i);
      this.sent.push(f);
      this.stats.txPackets++;
      this.stats.txBytes += f.length;
      n++;
    }
    return n;
  }

  onReadable(cb: (() => void) | null): void {
    this.readable = cb;
  }

  /** Take (and clear) what was sent. */
  drain(): Uint8Array[] {
    return this.sent.splice(0, this.sent.length);
  }

  close(): void {
    this.readable = null;
  }
}
