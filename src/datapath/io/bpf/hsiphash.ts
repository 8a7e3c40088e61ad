/**
 * HalfSipHash-2-4 over four 32-bit words and a 64-bit key, in eBPF: the instructions that compute
 * exactly what src/datapath/synproxy.ts's keyedHash computes (the SYN cookie's keyed hash), so
 * that an XDP program can make lvsd's cookies in the driver and lvsd can check them.
 */
import type { Asm, Reg } from "./asm.js";

/** Where the hash's inputs are: four message words and the key, each a register or a load. */
export interface HashRegs {
  /** The four state words (scratch, clobbered); the result ends in `out`. */
  v0: Reg;
  v1: Reg;
  v2: Reg;
  v3: Reg;
  tmp: Reg;
  /** Puts message word w (0..3) into `tmp` (a register move, or a load). */
  word: (a: Asm, w: number, into: Reg) => void;
  /** Puts key word 0 / 1 into v0 / v1. */
  key: (a: Asm, v0: Reg, v1: Reg) => void;
  out: Reg;
}

function sipRound(a: Asm, r: HashRegs): void {
  const { v0, v1, v2, v3, tmp } = r;
  a.add32(v0, v1).rotl32(v1, 5, tmp).xor32(v1, v0).rotl32(v0, 16, tmp);
  a.add32(v2, v3).rotl32(v3, 8, tmp).xor32(v3, v2);
  a.add32(v0, v3).rotl32(v3, 7, tmp).xor32(v3, v0);
  a.add32(v2, v1).rotl32(v1, 13, tmp).xor32(v1, v2).rotl32(v2, 16, tmp);
}

/**
 * Emit keyedHash(m0, m1, m2, m3, k0, k1): out = v1 ^ v3 after the message blocks (two rounds
 * each), the length block (16 << 24) and the finalisation (v2 ^= 0xff, four rounds).
 */
export function emitKeyedHash(a: Asm, r: HashRegs): void {
  const { v0, v1, v2, v3, tmp } = r;
  r.key(a, v0, v1);
  a.mov32(v2, v0).xor32i(v2, 0x6c796765);
  a.mov32(v3, v1).xor32i(v3, 0x74656462);
  for (let w = 0; w < 5; w++) {
    if (w < 4) r.word(a, w, tmp);
    else a.mov32i(tmp, 16 << 24);
    a.xor32(v3, tmp);
    // the rounds clobber tmp: keep the word on the stack frame (r10 - 4) meanwhile
    a.stx(4, 10, -4, tmp);
    sipRound(a, r);
    sipRound(a, r);
    a.ldx(4, tmp, 10, -4);
    a.xor32(v0, tmp);
  }
  a.xor32i(v2, 0xff);
  for (let k = 0; k < 4; k++) sipRound(a, r);
  a.mov32(r.out, v1).xor32(r.out, v3);
}
