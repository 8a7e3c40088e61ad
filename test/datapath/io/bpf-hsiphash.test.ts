/**
 * The SYN cookie's keyed hash in eBPF (src/datapath/io/bpf/hsiphash.ts) computes what the
 * engine's keyedHash (src/datapath/synproxy.ts) computes: a generated XDP program reads four
 * message words and the key from the frame, hashes, writes the result back; the kernel runs it
 * (BPF_PROG_TEST_RUN) on random inputs. Needs root and the built addon.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Asm, BPF_JGT, XDP_PASS, XDP_TX } from "../../../src/datapath/io/bpf/asm.js";
import { emitKeyedHash } from "../../../src/datapath/io/bpf/hsiphash.js";
import { loadNative, nativeAvailable } from "../../../src/datapath/io/native.js";
import { keyedHash } from "../../../src/datapath/synproxy.js";

const root = process.getuid?.() === 0;

/** r6 = data; 28 bytes or pass; hash words 0..3 (LE u32 at 0..12) with key at 16, 20; result at 24. */
function hashProgram(): Uint8Array {
  const a = new Asm();
  a.ldx(4, 6, 1, 0).ldx(4, 7, 1, 4); // r6 = ctx->data, r7 = ctx->data_end
  a.mov64(8, 6).add64i(8, 28).jx(BPF_JGT, 8, 7, "pass");
  emitKeyedHash(a, {
    v0: 2,
    v1: 3,
    v2: 4,
    v3: 5,
    tmp: 0,
    out: 8,
    word: (asm, w, into) => {
      asm.ldx(4, into, 6, 4 * w);
    },
    key: (asm, v0, v1) => {
      asm.ldx(4, v0, 6, 16).ldx(4, v1, 6, 20);
    },
  });
  a.stx(4, 6, 24, 8).ret(XDP_TX);
  a.label("pass").ret(XDP_PASS);
  return a.bytes();
}

describe.skipIf(!root || !nativeAvailable())("keyedHash in eBPF", () => {
  let fd = -1;
  beforeAll(() => {
    fd = loadNative().bpfLoadXdp(hashProgram(), "lvs_hsip_test");
  });
  afterAll(() => {
    if (fd >= 0) loadNative().bpfClose(fd);
  });

  it("is loaded by the verifier", () => {
    expect(fd).toBeGreaterThan(2);
  });

  it("gives keyedHash's value for any words and key", () => {
    const native = loadNative();
    const data = new Uint8Array(64);
    const out = new Uint8Array(64);
    const dv = new DataView(data.buffer);
    const odv = new DataView(out.buffer);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 6, maxLength: 6 }), (w) => {
        for (let k = 0; k < 6; k++) dv.setUint32(4 * k, w[k]!, true);
        const r = native.bpfTestRun(fd, data, out);
        expect(r.retval).toBe(XDP_TX);
        expect(odv.getInt32(24, true)).toBe(keyedHash(w[0]!, w[1]!, w[2]!, w[3]!, w[4]!, w[5]!));
      }),
      { numRuns: 300 },
    );
  });

  it("passes a frame too short to hold its inputs", () => {
    const r = loadNative().bpfTestRun(fd, new Uint8Array(20), new Uint8Array(64));
    expect(r.retval).toBe(XDP_PASS);
  });
});
