/**
 * The eBPF assembler (src/datapath/io/bpf/asm.ts): the kernel's instruction encoding, jumps
 * resolved to labels, and clear errors for a program that cannot be assembled.
 */
import { describe, expect, it } from "vitest";
import { Asm, BPF_JEQ, XDP_PASS } from "../../../src/datapath/io/bpf/asm.js";

describe("eBPF assembler", () => {
  it("encodes struct bpf_insn (code, dst | src << 4, off, imm; little-endian) and resolves labels", () => {
    const a = new Asm();
    a.ldx(4, 7, 1, 4); // r7 = *(u32 *)(r1 + 4)
    a.ji(BPF_JEQ, 0, 0, "out"); // if r0 == 0 goto out (+2)
    a.mov32i(2, -1);
    a.add32(2, 3);
    a.label("out").ret(XDP_PASS);
    const b = a.bytes();
    expect(b.length).toBe(6 * 8);
    expect(Buffer.from(b.subarray(0, 8)).toString("hex")).toBe("6117040000000000");
    expect(Buffer.from(b.subarray(8, 16)).toString("hex")).toBe("1500020000000000");
    expect(Buffer.from(b.subarray(16, 24)).toString("hex")).toBe("b4020000ffffffff");
    expect(Buffer.from(b.subarray(24, 32)).toString("hex")).toBe("0c32000000000000");
    expect(Buffer.from(b.subarray(32, 48)).toString("hex")).toBe("b7000000020000009500000000000000");
  });

  it("refuses a label defined twice, a jump to no label and a jump beyond 16 bits", () => {
    expect(() => new Asm().label("x").label("x")).toThrow(/label x defined twice/);
    expect(() => new Asm().ja("nowhere").exit().bytes()).toThrow(/no label nowhere/);
    const far = new Asm().ja("end");
    for (let k = 0; k < 40000; k++) far.mov32i(0, 0);
    far.label("end").exit();
    expect(() => far.bytes()).toThrow(/jump to end too far/);
  });
});
