/**
 * The simulator's event queue: a binary min-heap of (time, sequence) keys with an integer
 * payload, in typed arrays. The sequence number breaks ties in insertion order, so runs are
 * deterministic however many events share a timestamp.
 */
export class EventHeap {
  private time = new Float64Array(1024);
  private seq = new Float64Array(1024);
  private data = new Int32Array(1024);
  private n = 0;
  private counter = 0;
  /** Time and payload of the last popped event. */
  topTime = 0;
  topData = 0;

  get size(): number {
    return this.n;
  }

  /** Time of the earliest event (Infinity when empty). */
  peekTime(): number {
    return this.n > 0 ? this.time[0]! : Number.POSITIVE_INFINITY;
  }

  push(t: number, payload: number): void {
    if (this.n === this.time.length) this.grow();
    let i = this.n++;
    const s = this.counter++;
    const time = this.time;
    const seq = this.seq;
    const data = this.data;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = time[p]!;
      if (pt < t || (pt === t && seq[p]! < s)) break;
      time[i] = pt;
      seq[i] = seq[p]!;
      data[i] = data[p]!;
      i = p;
    }
    time[i] = t;
    seq[i] = s;
    data[i] = payload;
  }

  /** Remove the earliest event into topTime/topData; false when empty. */
  pop(): boolean {
    if (this.n === 0) return false;
    const time = this.time;
    const seq = this.seq;
    const data = this.data;
    this.topTime = time[0]!;
    this.topData = data[0]!;
    const n = --this.n;
    if (n === 0) return true;
    const t = time[n]!;
    const s = seq[n]!;
    const d = data[n]!;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n && (time[r]! < time[c]! || (time[r] === time[c] && seq[r]! < seq[c]!))) c = r;
      const ct = time[c]!;
      if (t < ct || (t === ct && s < seq[c]!)) break;
      time[i] = ct;
      seq[i] = seq[c]!;
      data[i] = data[c]!;
      i = c;
    }
    time[i] = t;
    seq[i] = s;
    data[i] = d;
    return true;
  }

  private grow(): void {
    const size = this.time.length * 2;
    const t = new Float64Array(size);
    t.set(this.time);
    const s = new Float64Array(size);
    s.set(this.seq);
    const d = new Int32Array(size);
    d.set(this.data);
    this.time = t;
    this.seq = s;
    this.data = d;
  }
}
