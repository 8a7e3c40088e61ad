/**
 * A small eBPF assembler: instructions as the kernel encodes them (struct bpf_insn, 8 bytes:
 * opcode, dst and src registers, a 16-bit offset, a 32-bit immediate), labels for jumps, and
 * the bytes for BPF_PROG_LOAD. For the programs lvsd generates at run time (no clang, no libbpf
 * at install time: the same rule as native/xdp.cc's redirect program).
 */

// opcode classes and fields (linux/bpf_common.h, linux/bpf.h)
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;
export const BPF_MEM = 0x60;
export const BPF_IMM = 0x00;
export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_XOR = 0xa0;
export const BPF_MOV = 0xb0;
export const BPF_END = 0xd0;
export const BPF_TO_BE = 0x08;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
export const BPF_JNE = 0x50;
export const BPF_JLT = 0xa0;
export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;

export const BPF_FUNC_map_lookup_elem = 1;
export const BPF_FUNC_redirect_map = 51;
export const BPF_FUNC_xdp_adjust_tail = 65;
export const BPF_FUNC_xdp_get_buff_len = 188;
export const BPF_MAP_TYPE_HASH = 1;
export const BPF_MAP_TYPE_ARRAY = 2;
export const BPF_MAP_TYPE_LPM_TRIE = 11;
export const BPF_MAP_TYPE_XSKMAP = 17;
/** Map flag: allocate entries on insertion (an LPM trie must have it). */
export const BPF_F_NO_PREALLOC = 1;
/** Map flag: an array whose values can be mmap()ed. */
export const BPF_F_MMAPABLE = 1 << 10;
export const BPF_ATOMIC = 0xc0;

export const XDP_ABORTED = 0;
export const XDP_DROP = 1;
export const XDP_PASS = 2;
export const XDP_TX = 3;

/** Registers: R0 return value, R1-R5 arguments (clobbered by calls), R6-R9 kept, R10 frame. */
export type Reg = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** A jump to this label (resolved by `bytes`). */
  label?: string;
}

export class Asm {
  private readonly insns: Insn[] = [];
  private readonly labels = new Map<string, number>();

  get length(): number {
    return this.insns.length;
  }

  raw(code: number, dst: number, src: number, off: number, imm: number): this {
    this.insns.push({ code, dst, src, off, imm });
    return this;
  }

  /** Mark the next instruction with `name`. */
  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`bpf asm: label ${name} defined twice`);
    this.labels.set(name, this.insns.length);
    return this;
  }

  // 32-bit ALU (the upper half of dst is zeroed)
  mov32(dst: Reg, src: Reg): this {
    return this.raw(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0);
  }
  mov32i(dst: Reg, imm: number): this {
    return this.raw(BPF_ALU | BPF_MOV | BPF_K, dst, 0, 0, imm | 0);
  }
  add32(dst: Reg, src: Reg): this {
    return this.raw(BPF_ALU | BPF_ADD | BPF_X, dst, src, 0, 0);
  }
  add32i(dst: Reg, imm: number): this {
    return this.raw(BPF_ALU | BPF_ADD | BPF_K, dst, 0, 0, imm | 0);
  }
  xor32(dst: Reg, src: Reg): this {
    return this.raw(BPF_ALU | BPF_XOR | BPF_X, dst, src, 0, 0);
  }
  xor32i(dst: Reg, imm: number): this {
    return this.raw(BPF_ALU | BPF_XOR | BPF_K, dst, 0, 0, imm | 0);
  }
  or32(dst: Reg, src: Reg): this {
    return this.raw(BPF_ALU | BPF_OR | BPF_X, dst, src, 0, 0);
  }
  mul32i(dst: Reg, imm: number): this {
    return this.raw(BPF_ALU | BPF_MUL | BPF_K, dst, 0, 0, imm | 0);
  }
  and32i(dst: Reg, imm: number): this {
    return this.raw(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm | 0);
  }
  lsh32i(dst: Reg, n: number): this {
    return this.raw(BPF_ALU | BPF_LSH | BPF_K, dst, 0, 0, n);
  }
  rsh32i(dst: Reg, n: number): this {
    return this.raw(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, n);
  }
  /** dst = dst rotated left by n (32 bits), with `tmp` as scratch. */
  rotl32(dst: Reg, n: number, tmp: Reg): this {
    return this.mov32(tmp, dst)
      .lsh32i(dst, n)
      .rsh32i(tmp, 32 - n)
      .or32(dst, tmp);
  }
  /** dst = the 16/32-bit value in dst byte-swapped from network order (a load of wire bytes). */
  be(dst: Reg, bits: 16 | 32): this {
    return this.raw(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, bits);
  }

  // 64-bit ALU
  mov64(dst: Reg, src: Reg): this {
    return this.raw(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0);
  }
  mov64i(dst: Reg, imm: number): this {
    return this.raw(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm | 0);
  }
  add64(dst: Reg, src: Reg): this {
    return this.raw(BPF_ALU64 | BPF_ADD | BPF_X, dst, src, 0, 0);
  }
  add64i(dst: Reg, imm: number): this {
    return this.raw(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm | 0);
  }

  // memory
  /** dst = *(size *)(src + off); size 1, 2, 4 or 8 bytes. */
  ldx(size: 1 | 2 | 4 | 8, dst: Reg, src: Reg, off: number): this {
    return this.raw(BPF_LDX | BPF_MEM | sizeCode(size), dst, src, off, 0);
  }
  /** *(size *)(dst + off) = src. */
  stx(size: 1 | 2 | 4 | 8, dst: Reg, off: number, src: Reg): this {
    return this.raw(BPF_STX | BPF_MEM | sizeCode(size), dst, src, off, 0);
  }

  /** *(u64 *)(dst + off) += src, atomically (BPF_ATOMIC BPF_ADD; a counter shared by CPUs). */
  atomicAdd64(dst: Reg, off: number, src: Reg): this {
    return this.raw(BPF_STX | BPF_ATOMIC | BPF_DW, dst, src, off, BPF_ADD);
  }

  // jumps (to labels)
  ja(label: string): this {
    this.insns.push({ code: BPF_JMP | BPF_JA, dst: 0, src: 0, off: 0, imm: 0, label });
    return this;
  }
  /** if (dst OP src) goto label; 64-bit compare. */
  jx(op: number, dst: Reg, src: Reg, label: string): this {
    this.insns.push({ code: BPF_JMP | op | BPF_X, dst, src, off: 0, imm: 0, label });
    return this;
  }
  /** if (dst OP imm) goto label; 64-bit compare (a pointer against 0: NULL). */
  ji(op: number, dst: Reg, imm: number, label: string): this {
    this.insns.push({ code: BPF_JMP | op | BPF_K, dst, src: 0, off: 0, imm: imm | 0, label });
    return this;
  }
  /** if (dst OP src) goto label; 32-bit compare. */
  j32x(op: number, dst: Reg, src: Reg, label: string): this {
    this.insns.push({ code: BPF_JMP32 | op | BPF_X, dst, src, off: 0, imm: 0, label });
    return this;
  }
  /** if (dst OP imm) goto label; 32-bit compare. */
  j32i(op: number, dst: Reg, imm: number, label: string): this {
    this.insns.push({ code: BPF_JMP32 | op | BPF_K, dst, src: 0, off: 0, imm: imm | 0, label });
    return this;
  }
  /** dst = the map with descriptor fd (BPF_LD_IMM64 with BPF_PSEUDO_MAP_FD: two slots). */
  ldMapFd(dst: Reg, fd: number): this {
    return this.raw(BPF_LD | BPF_DW | BPF_IMM, dst, 1, 0, fd).raw(0, 0, 0, 0, 0);
  }
  call(helper: number): this {
    return this.raw(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
  }
  exit(): this {
    return this.raw(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  }
  /** r0 = action; exit. */
  ret(action: number): this {
    return this.mov64i(0, action).exit();
  }

  /** The program for BPF_PROG_LOAD: every label resolved. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.insns.length * 8);
    const dv = new DataView(out.buffer);
    this.insns.forEach((x, i) => {
      let off = x.off;
      if (x.label !== undefined) {
        const at = this.labels.get(x.label);
        if (at === undefined) throw new Error(`bpf asm: no label ${x.label}`);
        off = at - i - 1;
        if (off < -32768 || off > 32767) throw new Error(`bpf asm: jump to ${x.label} too far`);
      }
      out[i * 8] = x.code;
      out[i * 8 + 1] = (x.dst & 0xf) | ((x.src & 0xf) << 4);
      dv.setInt16(i * 8 + 2, off, true);
      dv.setInt32(i * 8 + 4, x.imm, true);
    });
    return out;
  }
}

function sizeCode(size: 1 | 2 | 4 | 8): number {
  return size === 1 ? BPF_B : size === 2 ? BPF_H : size === 4 ? BPF_W : BPF_DW;
}
