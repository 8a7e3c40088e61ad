/**
 * The fanout program (src/datapath/workers/steer.ts): run by a small classic-BPF interpreter
 * written here (the opcodes it uses, with the kernel's semantics: 32-bit unsigned ALU, loads
 * relative to the network header, the skb's protocol as ancillary data), it picks the same
 * worker as the plain reference for random frames and tables; a request and its NAT or FULLNAT
 * reply land on the same worker; the bytes are sock_filter structs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { steerWorker } from "../../../src/datapath/workers/protocol.js";
import {
  MAX_STEER_ADDRS,
  SKF_AD_PROTOCOL,
  SKF_NET_OFF,
  type SteerInsn,
  type SteerTables,
  steerProgram,
  steerReference,
} from "../../../src/datapath/workers/steer.js";

/** Run `p` over an IPv4 packet `net` (from its IP header) with EtherType `proto`. */
function run(p: SteerInsn[], net: Uint8Array, proto: number): number {
  let a = 0;
  let x = 0;
  const m = new Uint32Array(16);
  const dv = new DataView(net.buffer, net.byteOffset, net.byteLength);
  const load = (size: number, k: number): number | undefined => {
    if (k === SKF_AD_PROTOCOL) return proto;
    const off = k - SKF_NET_OFF;
    if (k < SKF_NET_OFF || off + size > net.length) return undefined;
    return size === 4 ? dv.getUint32(off) : size === 2 ? dv.getUint16(off) : dv.getUint8(off);
  };
  for (let pc = 0; pc < p.length; pc++) {
    const { code, jt, jf, k } = p[pc]!;
    const cls = code & 0x07;
    const size = [4, 2, 1][(code & 0x18) >> 3]!;
    const mode = code & 0xe0;
    if (cls === 0x00) {
      const v = mode === 0x20 ? load(size, k) : mode === 0x40 ? load(size, (k + x) | 0) : undefined;
      if (v === undefined) return 0; // the kernel ends the program with 0 on a bad load
      a = v >>> 0;
    } else if (cls === 0x01) {
      if (mode === 0x60) x = m[k]!;
      else if (mode === 0xa0) {
        const v = load(1, k);
        if (v === undefined) return 0;
        x = (v & 0xf) * 4;
      } else throw new Error(`ldx mode ${mode}`);
    } else if (cls === 0x02) m[k] = a;
    else if (cls === 0x04) {
      const src = (code & 0x08) !== 0 ? x : k >>> 0;
      const op = code & 0xf0;
      if (op === 0x20) a = Math.imul(a, src) >>> 0;
      else if (op === 0x70) a = a >>> src;
      else if (op === 0x90) a = a % src;
      else if (op === 0xa0) a = (a ^ src) >>> 0;
      else throw new Error(`alu ${op}`);
    } else if (cls === 0x05) {
      const op = code & 0xf0;
      if (op === 0x00) pc += k;
      else if (op === 0x10) pc += a === k >>> 0 ? jt : jf;
      else if (op === 0x40) pc += (a & k) !== 0 ? jt : jf;
      else throw new Error(`jmp ${op}`);
    } else if (cls === 0x06) return (code & 0x10) !== 0 ? a : k >>> 0;
    else throw new Error(`class ${cls}`);
  }
  throw new Error("fell off the end");
}

/** An IPv4 header (with `ihl` words) and 4 bytes of ports. */
function packet(f: {
  proto: number;
  fragment: boolean;
  saddr: number;
  daddr: number;
  sport: number;
  dport: number;
  ihl: number;
}): Uint8Array {
  const b = new Uint8Array(f.ihl * 4 + 8);
  const dv = new DataView(b.buffer);
  b[0] = 0x40 | f.ihl;
  dv.setUint16(6, f.fragment ? 0x2000 : 0x4000); // MF, or DF
  b[9] = f.proto;
  dv.setUint32(12, f.saddr >>> 0);
  dv.setUint32(16, f.daddr >>> 0);
  dv.setUint16(f.ihl * 4, f.sport);
  dv.setUint16(f.ihl * 4 + 2, f.dport);
  return b;
}

const addr = fc.integer({ min: 0x01000000, max: 0xdfffffff });
const tables = fc.record({
  laddrs: fc.array(addr, { maxLength: 4 }),
  vips: fc.array(addr, { maxLength: 6 }),
  natDests: fc.array(addr, { maxLength: 6 }),
});

describe("fanout steering program", () => {
  it("picks what the reference picks, for random frames and tables", () => {
    fc.assert(
      fc.property(
        tables,
        fc.integer({ min: 1, max: 8 }),
        fc.record({
          proto: fc.constantFrom(6, 17, 1, 112),
          fragment: fc.boolean(),
          sport: fc.integer({ min: 0, max: 65535 }),
          dport: fc.integer({ min: 0, max: 65535 }),
          ihl: fc.integer({ min: 5, max: 15 }),
          ipv4: fc.boolean(),
          which: fc.integer({ min: 0, max: 3 }),
          saddr: addr,
          daddr: addr,
        }),
        (t, n, r) => {
          // aim at the tables' addresses most of the time
          const pick = (xs: readonly number[], dflt: number): number =>
            xs.length > 0 ? xs[r.sport % xs.length]! : dflt;
          const daddr =
            r.which === 0 ? pick(t.laddrs, r.daddr) : r.which === 1 ? pick(t.vips, r.daddr) : r.daddr;
          const saddr = r.which === 2 ? pick(t.natDests, r.saddr) : r.saddr;
          const f = { ...r, saddr, daddr };
          const prog = steerProgram(t, n);
          const got = run(prog.insns, packet(f), r.ipv4 ? 0x0800 : 0x86dd) % n;
          expect(got).toBe(steerReference(t, n, f));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("keeps a request and its NAT and FULLNAT replies on one worker", () => {
    const vip = 0x0a000064;
    const rip = 0xc0a80a01;
    const laddr = 0xc0a80ac8;
    const t: SteerTables = { laddrs: [laddr], vips: [vip], natDests: [rip] };
    fc.assert(
      fc.property(
        addr,
        fc.integer({ min: 1024, max: 65535 }),
        fc.integer({ min: 2, max: 4 }),
        (client, cport, n) => {
          const prog = steerProgram(t, n).insns;
          const req = run(
            prog,
            packet({ proto: 6, fragment: false, saddr: client, daddr: vip, sport: cport, dport: 80, ihl: 5 }),
            0x0800,
          );
          const natReply = run(
            prog,
            packet({
              proto: 6,
              fragment: false,
              saddr: rip,
              daddr: client,
              sport: 8080,
              dport: cport,
              ihl: 5,
            }),
            0x0800,
          );
          expect(req).toBe(steerWorker(client, cport, n));
          expect(natReply).toBe(req);
          // a FULLNAT connection of worker w has a local port p with p % n === w
          const lport = 1025 + ((req - (1025 % n) + n) % n) + n * (cport % 50);
          const fnatReply = run(
            prog,
            packet({ proto: 17, fragment: false, saddr: rip, daddr: laddr, sport: 53, dport: lport, ihl: 5 }),
            0x0800,
          );
          expect(fnatReply % n).toBe(req);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("sends ARP, ICMP and fragments to worker 0", () => {
    const t: SteerTables = { laddrs: [], vips: [0x0a000064], natDests: [] };
    const p = steerProgram(t, 4).insns;
    const base = { saddr: 0x0a010203, daddr: 0x0a000064, sport: 4000, dport: 80, ihl: 5 };
    expect(run(p, packet({ ...base, proto: 6, fragment: false }), 0x0806)).toBe(0);
    expect(run(p, packet({ ...base, proto: 1, fragment: false }), 0x0800)).toBe(0);
    expect(run(p, packet({ ...base, proto: 17, fragment: true }), 0x0800)).toBe(0);
  });

  it("is sock_filter structs, and leaves out what does not fit", () => {
    const many = Array.from({ length: MAX_STEER_ADDRS + 10 }, (_, i) => 0x0a000000 + i);
    const prog = steerProgram({ laddrs: [], vips: many, natDests: [] }, 2);
    expect(prog.truncated).toBe(10);
    expect(prog.insns.length).toBeLessThanOrEqual(4096);
    expect(prog.bytes.length).toBe(prog.insns.length * 8);
    const dv = new DataView(prog.bytes.buffer);
    const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    prog.insns.forEach((ins, i) => {
      expect(dv.getUint16(i * 8, le)).toBe(ins.code);
      expect(dv.getUint8(i * 8 + 2)).toBe(ins.jt);
      expect(dv.getUint8(i * 8 + 3)).toBe(ins.jf);
      expect(dv.getUint32(i * 8 + 4, le)).toBe(ins.k >>> 0);
    });
  });
});
