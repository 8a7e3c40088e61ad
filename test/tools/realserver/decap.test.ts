/**
 * decapFrame: the per-frame step of the userspace IPIP decapsulator. Frames are built with the
 * packet builder (inner: ipv4().udp()/tcp(); outer: eth().ipv4({ proto: 4 }).payload(inner)).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import { ipv4HeaderChecksum } from "../../../src/datapath/packet/checksum.js";
import { DecapStatus, decapFrame } from "../../../src/tools/realserver/decap.js";

const CLIENT = "198.51.100.7";
const VIP = "10.0.0.100";
const DIRECTOR = "192.0.2.1";
const RS = "192.0.2.11";

function inner(tos = 0): Uint8Array {
  return ipv4({ src: CLIENT, dst: VIP, tos, id: 77 })
    .udp({ sport: 40000, dport: 53 })
    .payload("question")
    .build();
}

function outer(
  payload: Uint8Array,
  o: { tos?: number; mf?: boolean; fragOff?: number; proto?: number } = {},
) {
  return eth({ src: "02:00:00:00:00:01", dst: "02:00:00:00:00:0b" })
    .ipv4({ src: DIRECTOR, dst: RS, proto: o.proto ?? 4, df: true, ttl: 63, ...o })
    .payload(payload)
    .build();
}

function run(frame: Uint8Array): { st: number; pkt?: Uint8Array } {
  const b = new FrameBatch(1, 4096);
  const i = b.push(frame);
  const out = new Uint32Array(2);
  const st = decapFrame(b.buf, b.dv, b.off[i]!, b.len[i]!, out);
  return st === DecapStatus.OK ? { st, pkt: b.buf.slice(out[0]!, out[0]! + out[1]!) } : { st };
}

describe("decapFrame", () => {
  it("finds the inner packet unchanged", () => {
    const p = inner();
    const r = run(outer(p));
    expect(r.st).toBe(DecapStatus.OK);
    expect(r.pkt).toEqual(p);
  });

  it("drops Ethernet padding after the outer packet", () => {
    const p = inner();
    const f = new Uint8Array(outer(p).length + 10);
    f.set(outer(p));
    expect(run(f).pkt).toEqual(p);
  });

  it("takes the inner packet's own length when the outer carries more", () => {
    const p = inner();
    const padded = new Uint8Array(p.length + 6);
    padded.set(p);
    expect(run(outer(padded)).pkt).toEqual(p);
  });

  it("copies outer CE into an ECT inner packet and fixes its header checksum (RFC 6040)", () => {
    for (const ect of [1, 2]) {
      const r = run(outer(inner(0x20 | ect), { tos: 3 }));
      expect(r.st).toBe(DecapStatus.OK);
      expect(r.pkt![1]).toBe(0x23);
      const dv = new DataView(r.pkt!.buffer);
      expect(dv.getUint16(10)).toBe(ipv4HeaderChecksum(r.pkt!, 0, 20));
    }
    // Already CE, or outer not CE: untouched.
    expect(run(outer(inner(3), { tos: 3 })).pkt).toEqual(inner(3));
    expect(run(outer(inner(2), { tos: 2 })).pkt).toEqual(inner(2));
  });

  it("drops outer CE on a Not-ECT inner packet (RFC 6040)", () => {
    expect(run(outer(inner(0), { tos: 3 })).st).toBe(DecapStatus.ECN);
  });

  it("drops outer fragments", () => {
    expect(run(outer(inner(), { mf: true })).st).toBe(DecapStatus.FRAGMENT);
    expect(run(outer(inner(), { fragOff: 10 })).st).toBe(DecapStatus.FRAGMENT);
  });

  it("refuses what is not IPIP, or is malformed", () => {
    expect(run(outer(inner(), { proto: 17 })).st).toBe(DecapStatus.NOT_IPIP);
    const vlan = eth({}).vlan(5).ipv4({ src: DIRECTOR, dst: RS, proto: 4 }).payload(inner()).build();
    expect(run(vlan).st).toBe(DecapStatus.NOT_IPIP);
    expect(run(outer(inner()).subarray(0, 40)).st).toBe(DecapStatus.SHORT);
    const badCsum = eth({})
      .ipv4({ src: DIRECTOR, dst: RS, proto: 4 })
      .payload(inner())
      .build({ badIpCsum: true });
    expect(run(badCsum).st).toBe(DecapStatus.BAD_OUTER);
    const longTot = eth({})
      .ipv4({ src: DIRECTOR, dst: RS, proto: 4, totalLen: 2000 })
      .payload(inner())
      .build();
    expect(run(longTot).st).toBe(DecapStatus.BAD_OUTER);
    const v6inner = new Uint8Array(40);
    v6inner[0] = 0x60;
    expect(run(outer(v6inner)).st).toBe(DecapStatus.BAD_INNER);
    const cut = inner().subarray(0, 24); // inner total length beyond the outer payload
    expect(run(outer(cut)).st).toBe(DecapStatus.BAD_INNER);
    const badIhl = inner();
    badIhl[0] = 0x44;
    expect(run(outer(badIhl)).st).toBe(DecapStatus.BAD_INNER);
  });

  it("never throws on random bytes, and an OK verdict stays inside the frame", () => {
    const b = new FrameBatch(1, 4096);
    const out = new Uint32Array(2);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.boolean(), (bytes, ipip) => {
        const f = Uint8Array.from(bytes);
        if (ipip && f.length >= 54) {
          f[12] = 0x08;
          f[13] = 0x00;
          f[14] = 0x45;
          f[23] = 4;
        }
        b.reset();
        const i = b.push(f);
        const st = decapFrame(b.buf, b.dv, b.off[i]!, b.len[i]!, out);
        expect(st).toBeGreaterThanOrEqual(0);
        expect(st).toBeLessThan(7);
        if (st === DecapStatus.OK) {
          expect(out[0]!).toBeGreaterThanOrEqual(b.off[i]! + 34);
          expect(out[0]! + out[1]!).toBeLessThanOrEqual(b.off[i]! + f.length);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("round trip: any inner UDP/TCP packet comes back byte for byte", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 1400 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 65535 }),
        (payload, tcp, port) => {
          const b = ipv4({ src: CLIENT, dst: VIP });
          const p = (tcp ? b.tcp({ sport: port, dport: 80, flags: 0x18 }) : b.udp({ sport: port, dport: 53 }))
            .payload(payload)
            .build();
          expect(run(outer(p)).pkt).toEqual(p);
        },
      ),
      { numRuns: 200 },
    );
  });
});
