/**
 * The in-process bench's reference loops (bench/toynat.ts): ToyNatChecked must do the engine's
 * work on an established NAT flow — the same bytes out, and no frame forwarded that the engine's
 * checks would refuse — or "NAT established / toy loop with the engine's checks" compares
 * unlike things.
 */
import { describe, expect, it } from "vitest";
import { establishedBatches, restorer, setup, toyReferences } from "../../bench/datapath.bench.js";
import type { FrameBatch } from "../../src/datapath/io/batch.js";

function loops() {
  const e = setup(1 << 12);
  const { inb } = establishedBatches(e, 256);
  const restore = restorer(inb);
  return { e, inb, restore, ...toyReferences(e, inb, restore) };
}

function frames(b: FrameBatch): string[] {
  return Array.from({ length: b.count }, (_, i) => {
    const o = b.off[i]!;
    return `${b.egress[i]}:${Buffer.from(b.buf.subarray(o, o + b.len[i]!)).toString("hex")}`;
  });
}

describe("bench/toynat.ts reference loops", () => {
  it("ToyNatChecked forwards an established batch to the same bytes as the engine", () => {
    const { e, inb, restore, toyC } = loops();
    restore();
    e.process(inb, 10);
    const engine = frames(inb);
    restore();
    inb.egress.fill(-1);
    toyC.process(inb, 10);
    expect(toyC.forwarded).toBe(inb.count);
    expect(frames(inb)).toEqual(engine);
    // and it counted them per service and per dest
    expect(toyC.svcPkts).toBe(inb.count);
  });

  it("ToyNatChecked refuses what the engine's checks refuse; ToyNat forwards some of it", () => {
    const { inb, restore, toy, toyC } = loops();
    const o = inb.off[0]!;
    const ip = o + 14;
    const spoil: Array<[string, () => void]> = [
      ["a foreign destination MAC", () => void (inb.buf[o + 5] = 0x99)],
      ["a bad IPv4 header checksum", () => void (inb.buf[ip + 10] = inb.buf[ip + 10]! ^ 0xff)],
      ["a SYN", () => void (inb.buf[ip + 20 + 13] = inb.buf[ip + 20 + 13]! | 0x02)],
      ["a frame longer than the MTU", () => inb.dv.setUint16(ip + 2, 1600)],
    ];
    for (const [what, f] of spoil) {
      restore();
      f();
      inb.egress.fill(-1);
      toyC.process(inb, 10);
      expect(inb.egress[0], what).toBe(-1);
      expect(inb.egress[1], what).toBe(1); // the rest of the batch still goes
    }
    // the bare toy forwards the foreign-MAC frame: it checks less
    restore();
    inb.buf[o + 5] = 0x99;
    inb.egress.fill(-1);
    toy.process(inb);
    expect(inb.egress[0]).toBe(1);
  });
});
