/**
 * The kernel's hsiphash() as built on 64-bit machines (lib/siphash.c): there "HalfSipHash-1-3" is
 * SipHash-1-3 (one compression round per 8-byte block, three finalisation rounds) with a 128-bit
 * key, and the 64-bit result is truncated to u32. The mh scheduler hashes with it, so matching
 * it bit for bit gives the same Maglev table as a kernel director.
 *
 * 64-bit words are kept as (hi, lo) int32 pairs. `hsiphash1u32` is the data-path variant for one
 * little-endian u32 (what hsiphash(&v, 4, key) reads), written with locals only: no allocation.
 * `sipHashBytes` is the general form (any rounds, any length) used by the control plane and tests.
 */

/** Initial SipHash state for one 128-bit key (k0, k1 as hi/lo halves). */
export class SipKey {
  readonly v0h: number;
  readonly v0l: number;
  readonly v1h: number;
  readonly v1l: number;
  readonly v2h: number;
  readonly v2l: number;
  readonly v3h: number;
  readonly v3l: number;

  constructor(k0h: number, k0l: number, k1h: number, k1l: number) {
    // "somepseudorandomlygeneratedbytes" xor key
    this.v0h = 0x736f6d65 ^ k0h;
    this.v0l = 0x70736575 ^ k0l;
    this.v1h = 0x646f7261 ^ k1h;
    this.v1l = 0x6e646f6d ^ k1l;
    this.v2h = 0x6c796765 ^ k0h;
    this.v2l = 0x6e657261 ^ k0l;
    this.v3h = 0x74656462 ^ k1h;
    this.v3l = 0x79746573 ^ k1l;
  }

  /** Key from two u64 values given as numbers below 2^53 (the mh keys are small). */
  static fromU64(k0: number, k1: number): SipKey {
    return new SipKey(Math.floor(k0 / 0x100000000) | 0, k0 | 0, Math.floor(k1 / 0x100000000) | 0, k1 | 0);
  }
}

/** State for the general form (control plane only). */
class SipState {
  v0h = 0;
  v0l = 0;
  v1h = 0;
  v1l = 0;
  v2h = 0;
  v2l = 0;
  v3h = 0;
  v3l = 0;

  round(): void {
    let lo = (this.v0l + this.v1l) | 0;
    this.v0h = (this.v0h + this.v1h + (lo >>> 0 < this.v0l >>> 0 ? 1 : 0)) | 0;
    this.v0l = lo;
    let th = (this.v1h << 13) | (this.v1l >>> 19);
    this.v1l = (this.v1l << 13) | (this.v1h >>> 19);
    this.v1h = th ^ this.v0h;
    this.v1l ^= this.v0l;
    th = this.v0h;
    this.v0h = this.v0l;
    this.v0l = th;

    lo = (this.v2l + this.v3l) | 0;
    this.v2h = (this.v2h + this.v3h + (lo >>> 0 < this.v2l >>> 0 ? 1 : 0)) | 0;
    this.v2l = lo;
    th = (this.v3h << 16) | (this.v3l >>> 16);
    this.v3l = ((this.v3l << 16) | (this.v3h >>> 16)) ^ this.v2l;
    this.v3h = th ^ this.v2h;

    lo = (this.v0l + this.v3l) | 0;
    this.v0h = (this.v0h + this.v3h + (lo >>> 0 < this.v0l >>> 0 ? 1 : 0)) | 0;
    this.v0l = lo;
    th = (this.v3h << 21) | (this.v3l >>> 11);
    this.v3l = ((this.v3l << 21) | (this.v3h >>> 11)) ^ this.v0l;
    this.v3h = th ^ this.v0h;

    lo = (this.v2l + this.v1l) | 0;
    this.v2h = (this.v2h + this.v1h + (lo >>> 0 < this.v2l >>> 0 ? 1 : 0)) | 0;
    this.v2l = lo;
    th = (this.v1h << 17) | (this.v1l >>> 15);
    this.v1l = ((this.v1l << 17) | (this.v1h >>> 15)) ^ this.v2l;
    this.v1h = th ^ this.v2h;
    th = this.v2h;
    this.v2h = this.v2l;
    this.v2l = th;
  }
}

/**
 * SipHash-c-d of `data` under `key`; returns the 64-bit result as [hi, lo] (uint32 each).
 * c = 2, d = 4 is standard SipHash; c = 1, d = 3 is the kernel's 64-bit hsiphash (whose u32
 * result is the low half).
 */
export function sipHashBytes(key: SipKey, data: Uint8Array, c: number, d: number): [number, number] {
  const s = new SipState();
  s.v0h = key.v0h;
  s.v0l = key.v0l;
  s.v1h = key.v1h;
  s.v1l = key.v1l;
  s.v2h = key.v2h;
  s.v2l = key.v2l;
  s.v3h = key.v3h;
  s.v3l = key.v3l;
  const len = data.length;
  const end = len - (len % 8);
  const le32 = (i: number): number =>
    data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
  for (let i = 0; i < end; i += 8) {
    const ml = le32(i);
    const mh = le32(i + 4);
    s.v3h ^= mh;
    s.v3l ^= ml;
    for (let r = 0; r < c; r++) s.round();
    s.v0h ^= mh;
    s.v0l ^= ml;
  }
  // Last block: remaining bytes little-endian, length in the top byte.
  let bh = (len & 0xff) << 24;
  let bl = 0;
  for (let i = end; i < len; i++) {
    const shift = (i - end) * 8;
    if (shift < 32) bl |= data[i]! << shift;
    else bh |= data[i]! << (shift - 32);
  }
  s.v3h ^= bh;
  s.v3l ^= bl;
  for (let r = 0; r < c; r++) s.round();
  s.v0h ^= bh;
  s.v0l ^= bl;
  s.v2l ^= 0xff;
  for (let r = 0; r < d; r++) s.round();
  return [(s.v0h ^ s.v1h ^ s.v2h ^ s.v3h) >>> 0, (s.v0l ^ s.v1l ^ s.v2l ^ s.v3l) >>> 0];
}

/** The kernel's 64-bit hsiphash() of `len` bytes: SipHash-1-3, truncated to u32. */
export function hsiphashBytes(key: SipKey, data: Uint8Array): number {
  return sipHashBytes(key, data, 1, 3)[1];
}

/**
 * hsiphash(&v, sizeof(u32), key) on a 64-bit kernel (equivalently hsiphash_1u32(v, key)):
 * SipHash-1-3 of the 4 little-endian bytes of `v`, low 32 bits. Allocation-free.
 */
export function hsiphash1u32(k: SipKey, v: number): number {
  return hsiphash1u32i(k, v) >>> 0;
}

/**
 * `hsiphash1u32(k, v) % m` for 0 < m < 2^31. The modulo is taken inside so that no value above
 * 2^31 crosses a call boundary (it would be boxed as a heap number when the call is not inlined).
 */
export function hsiphashMod(k: SipKey, v: number, m: number): number {
  return (hsiphash1u32i(k, v) >>> 0) % m;
}

/**
 * hsiphash1u32 as a signed int32 (same bits). The four SipRounds (one compression, three
 * finalisation) are written out: unrolled, V8 keeps all eight halves in registers and schedules
 * across rounds (about 25% faster than a loop here).
 */
function hsiphash1u32i(k: SipKey, v: number): number {
  let v0h = k.v0h;
  let v0l = k.v0l;
  let v1h = k.v1h;
  let v1l = k.v1l;
  let v2h = k.v2h;
  let v2l = k.v2l;
  let v3h = k.v3h;
  let v3l = k.v3l;
  let lo = 0;
  let th = 0;
  // b = (4 << 56) | v: the message is 4 bytes, so it all goes into the last block.
  const bl = v | 0;
  v3h ^= 0x04000000;
  v3l ^= bl;
  // SipRound 1 (compression)
  lo = (v0l + v1l) | 0;
  v0h = (v0h + v1h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v1h << 13) | (v1l >>> 19);
  v1l = ((v1l << 13) | (v1h >>> 19)) ^ v0l;
  v1h = th ^ v0h;
  th = v0h;
  v0h = v0l;
  v0l = th;
  lo = (v2l + v3l) | 0;
  v2h = (v2h + v3h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v3h << 16) | (v3l >>> 16);
  v3l = ((v3l << 16) | (v3h >>> 16)) ^ v2l;
  v3h = th ^ v2h;
  lo = (v0l + v3l) | 0;
  v0h = (v0h + v3h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v3h << 21) | (v3l >>> 11);
  v3l = ((v3l << 21) | (v3h >>> 11)) ^ v0l;
  v3h = th ^ v0h;
  lo = (v2l + v1l) | 0;
  v2h = (v2h + v1h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v1h << 17) | (v1l >>> 15);
  v1l = ((v1l << 17) | (v1h >>> 15)) ^ v2l;
  v1h = th ^ v2h;
  th = v2h;
  v2h = v2l;
  v2l = th;
  v0h ^= 0x04000000;
  v0l ^= bl;
  v2l ^= 0xff;
  // SipRound 2 (finalisation 1/3)
  lo = (v0l + v1l) | 0;
  v0h = (v0h + v1h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v1h << 13) | (v1l >>> 19);
  v1l = ((v1l << 13) | (v1h >>> 19)) ^ v0l;
  v1h = th ^ v0h;
  th = v0h;
  v0h = v0l;
  v0l = th;
  lo = (v2l + v3l) | 0;
  v2h = (v2h + v3h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v3h << 16) | (v3l >>> 16);
  v3l = ((v3l << 16) | (v3h >>> 16)) ^ v2l;
  v3h = th ^ v2h;
  lo = (v0l + v3l) | 0;
  v0h = (v0h + v3h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v3h << 21) | (v3l >>> 11);
  v3l = ((v3l << 21) | (v3h >>> 11)) ^ v0l;
  v3h = th ^ v0h;
  lo = (v2l + v1l) | 0;
  v2h = (v2h + v1h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v1h << 17) | (v1l >>> 15);
  v1l = ((v1l << 17) | (v1h >>> 15)) ^ v2l;
  v1h = th ^ v2h;
  th = v2h;
  v2h = v2l;
  v2l = th;
  // SipRound 3 (finalisation 2/3)
  lo = (v0l + v1l) | 0;
  v0h = (v0h + v1h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v1h << 13) | (v1l >>> 19);
  v1l = ((v1l << 13) | (v1h >>> 19)) ^ v0l;
  v1h = th ^ v0h;
  th = v0h;
  v0h = v0l;
  v0l = th;
  lo = (v2l + v3l) | 0;
  v2h = (v2h + v3h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v3h << 16) | (v3l >>> 16);
  v3l = ((v3l << 16) | (v3h >>> 16)) ^ v2l;
  v3h = th ^ v2h;
  lo = (v0l + v3l) | 0;
  v0h = (v0h + v3h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v3h << 21) | (v3l >>> 11);
  v3l = ((v3l << 21) | (v3h >>> 11)) ^ v0l;
  v3h = th ^ v0h;
  lo = (v2l + v1l) | 0;
  v2h = (v2h + v1h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v1h << 17) | (v1l >>> 15);
  v1l = ((v1l << 17) | (v1h >>> 15)) ^ v2l;
  v1h = th ^ v2h;
  th = v2h;
  v2h = v2l;
  v2l = th;
  // SipRound 4 (finalisation 3/3)
  lo = (v0l + v1l) | 0;
  v0h = (v0h + v1h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v1h << 13) | (v1l >>> 19);
  v1l = ((v1l << 13) | (v1h >>> 19)) ^ v0l;
  v1h = th ^ v0h;
  th = v0h;
  v0h = v0l;
  v0l = th;
  lo = (v2l + v3l) | 0;
  v2h = (v2h + v3h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v3h << 16) | (v3l >>> 16);
  v3l = ((v3l << 16) | (v3h >>> 16)) ^ v2l;
  v3h = th ^ v2h;
  lo = (v0l + v3l) | 0;
  v0h = (v0h + v3h + (lo >>> 0 < v0l >>> 0 ? 1 : 0)) | 0;
  v0l = lo;
  th = (v3h << 21) | (v3l >>> 11);
  v3l = ((v3l << 21) | (v3h >>> 11)) ^ v0l;
  v3h = th ^ v0h;
  lo = (v2l + v1l) | 0;
  v2h = (v2h + v1h + (lo >>> 0 < v2l >>> 0 ? 1 : 0)) | 0;
  v2l = lo;
  th = (v1h << 17) | (v1l >>> 15);
  v1l = ((v1l << 17) | (v1h >>> 15)) ^ v2l;
  v1h = th ^ v2h;
  th = v2h;
  v2h = v2l;
  v2l = th;
  return v0l ^ v1l ^ v2l ^ v3l;
}
