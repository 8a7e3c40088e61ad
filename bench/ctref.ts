/**
 * The connection table's lookup as it was before issue 13 §6 (commit 544fe7b): the reference
 * that bench/conntrack.bench.ts measures the table against in the same run. Only what a
 * `lookupIn` hit touches is kept, laid out as it was: a bucket array of chain heads, a 16-byte
 * key record per slot [caddr, vaddr, cport << 16 | vport, next], and the separate protocol
 * (1 byte), flags (2 bytes) and expiry (8 bytes) arrays the hit then checks: five cache lines
 * per hit (bucket, record, protocol, flags, expiry) plus one per extra chain hop. Same hash
 * function and the same bucket count (capacity rounded up to a power of two) as the table.
 */

const CONN_F_USED = 0x01;
const CONN_F_TEMPLATE = 0x02;

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export class RefConnLookup {
  private readonly mask: number;
  private readonly seed: number;
  private readonly headIn: Int32Array;
  private readonly kin: Int32Array;
  private readonly proto: Uint8Array;
  private readonly flags: Uint16Array;
  private readonly expires: Float64Array;
  private next = 0;
  /** The expiry check reads this, as the table reads clock.nowMs. */
  nowMs = 0;

  constructor(readonly capacity: number) {
    const buckets = nextPow2(capacity);
    this.mask = buckets - 1;
    this.seed = (Math.random() * 0x100000000) >>> 0;
    this.headIn = new Int32Array(buckets).fill(-1);
    this.kin = new Int32Array(capacity * 4);
    this.proto = new Uint8Array(capacity);
    this.flags = new Uint16Array(capacity);
    this.expires = new Float64Array(capacity);
  }

  private hash(p: number, a: number, pa: number, b: number, pb: number): number {
    let h = Math.imul(a ^ this.seed, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ b, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13) ^ ((pa << 16) | pb), 0xc2b2ae35);
    h ^= (h >>> 16) ^ p;
    return h & this.mask;
  }

  /** A connection entry (slots taken in order; no free list, no eviction). */
  insert(p: number, caddr: number, cport: number, vaddr: number, vport: number, expires: number): number {
    const i = this.next++;
    const a = caddr | 0;
    const b = vaddr | 0;
    const h = this.hash(p, a, cport, b, vport);
    const o = i << 2;
    this.kin[o] = a;
    this.kin[o + 1] = b;
    this.kin[o + 2] = (cport << 16) | vport;
    this.kin[o + 3] = this.headIn[h]!;
    this.headIn[h] = i;
    this.proto[i] = p;
    this.flags[i] = CONN_F_USED;
    this.expires[i] = expires;
    return i;
  }

  /** ConnTable.lookupIn as of 544fe7b (an expired hit returns -1; the table also frees it). */
  lookupIn(p: number, saddr: number, sport: number, daddr: number, dport: number): number {
    const a = saddr | 0;
    const b = daddr | 0;
    const ports = (sport << 16) | dport;
    const k = this.kin;
    let i = this.headIn[this.hash(p, a, sport, b, dport)]!;
    while (i >= 0) {
      const o = i << 2;
      if (
        k[o] === a &&
        k[o + 1] === b &&
        k[o + 2] === ports &&
        this.proto[i] === p &&
        (this.flags[i]! & CONN_F_TEMPLATE) === 0
      ) {
        if (this.expires[i]! <= this.nowMs) return -1;
        return i;
      }
      i = k[o + 3]!;
    }
    return -1;
  }
}
