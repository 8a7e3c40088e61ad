/**
 * The XDP SYN-cookie responder's program (src/datapath/io/bpf/synack.ts, work in progress) makes
 * the engine's cookie SYN-ACK byte for byte: the kernel runs it (BPF_PROG_TEST_RUN) on SYNs from
 * random clients, and its frame must be what SynProxy.make + writeSynAck write for the same SYN,
 * secret and time counter (IP id 0, to the SYN's source MAC); everything it must leave to lvsd
 * goes on (XDP_PASS) untouched. Needs root and the built addon.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH, XDP_PASS, XDP_TX } from "../../../src/datapath/io/bpf/asm.js";
import { SYNACK_CONFIG_BYTES, synAckProgram } from "../../../src/datapath/io/bpf/synack.js";
import { loadNative, nativeAvailable } from "../../../src/datapath/io/native.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { ipv4HeaderChecksum } from "../../../src/datapath/packet/checksum.js";
import { parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, TCP_ACK, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { COOKIE_PERIOD_MS, mssIndex, SynProxy } from "../../../src/datapath/synproxy.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";

const root = process.getuid?.() === 0;
const OUR = macToBytes("02:00:00:00:00:01");
const CLIENT = macToBytes("02:00:00:00:00:fe");
const VIP = "10.0.0.100";
const K0 = 0x01234567;
const K1 = 0x89abcdef | 0;
const COUNT = 42;
const MSS = 1460;

interface Syn {
  src: string;
  sport: number;
  dport: number;
  seq: number;
  mss: number;
  flags?: number;
  dstMac?: Uint8Array;
  extra?: number[];
}

function synFrame(s: Syn): Uint8Array {
  return eth({ src: CLIENT, dst: s.dstMac ?? OUR })
    .ipv4({ src: s.src, dst: VIP })
    .tcp({
      sport: s.sport,
      dport: s.dport,
      flags: s.flags ?? TCP_SYN,
      seq: s.seq,
      mss: s.mss,
      options: s.extra ?? [4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7],
    })
    .build();
}

/** What the engine sends for this SYN: SynProxy.make + writeSynAck, IP id 0, back to the SYN's source. */
function expected(frame: Uint8Array): Uint8Array {
  const v = new FrameView();
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  expect(parseFrame(frame, dv, 0, frame.length, v)).toBe(0);
  const sp = new SynProxy(K0, K1);
  const isn = dv.getUint32(v.l4Off + 4);
  const cookie = sp.make(
    v.saddr | 0,
    v.daddr | 0,
    v.sport,
    v.dport,
    isn | 0,
    mssIndex(v.mss > 0 ? v.mss : 536),
    COUNT * COOKIE_PERIOD_MS + 5,
  );
  const out = new Uint8Array(58);
  expect(sp.writeSynAck(out, 0, v, cookie, MSS)).toBe(58);
  out.set(CLIENT, 0);
  out.set(OUR, 6);
  out[18] = 0;
  out[19] = 0;
  out[24] = 0;
  out[25] = 0;
  const sum = ipv4HeaderChecksum(out, 14, 20);
  out[24] = sum >>> 8;
  out[25] = sum & 0xff;
  return out;
}

describe.skipIf(!root || !nativeAvailable())("the XDP SYN-cookie responder's program", () => {
  const native = nativeAvailable() ? loadNative() : undefined;
  let cfg = -1;
  let svcs = -1;
  let prog = -1;
  beforeAll(() => {
    const n = native!;
    cfg = n.bpfMapCreate(BPF_MAP_TYPE_ARRAY, 4, SYNACK_CONFIG_BYTES, 1, "lvs_sp_cfg");
    svcs = n.bpfMapCreate(BPF_MAP_TYPE_HASH, 8, 4, 64, "lvs_sp_svcs");
    const c = new Uint8Array(SYNACK_CONFIG_BYTES);
    const cdv = new DataView(c.buffer);
    cdv.setInt32(0, K0, true);
    cdv.setInt32(4, K1, true);
    cdv.setUint32(8, COUNT, true);
    cdv.setUint32(12, MSS, true);
    c.set(OUR, 16);
    n.bpfMapUpdate(cfg, new Uint8Array(4), c);
    const key = new Uint8Array(8);
    new DataView(key.buffer).setUint32(0, ipToU32(VIP));
    new DataView(key.buffer).setUint16(4, 80);
    n.bpfMapUpdate(svcs, key, new Uint8Array(4).fill(1));
    prog = n.bpfLoadXdp(synAckProgram(cfg, svcs), "lvs_synack");
  });
  afterAll(() => {
    for (const fd of [prog, svcs, cfg]) if (fd > 2) native!.bpfClose(fd);
  });

  const run = (frame: Uint8Array): { retval: number; out: Uint8Array } => {
    const out = new Uint8Array(256);
    const r = native!.bpfTestRun(prog, frame, out);
    return { retval: r.retval, out: out.subarray(0, r.size) };
  };

  it("answers a SYN to a SYN-proxy service with the engine's cookie SYN-ACK, byte for byte", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 223 }).filter((x) => x !== 127),
        fc.integer({ min: 0, max: 0xffffff }),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 65535 }),
        fc.boolean(),
        (a, rest, sport, seq, mss, bare) => {
          const src = `${a}.${(rest >>> 16) & 0xff}.${(rest >>> 8) & 0xff}.${rest & 0xff}`;
          const frame = synFrame({ src, sport, dport: 80, seq, mss, ...(bare ? { extra: [] } : {}) });
          const r = run(frame);
          expect(r.retval).toBe(XDP_TX);
          expect(Buffer.from(r.out).toString("hex")).toBe(Buffer.from(expected(frame)).toString("hex"));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("passes what the engine must see, untouched", () => {
    const base: Syn = { src: "198.51.100.7", sport: 40000, dport: 80, seq: 1, mss: 1460 };
    const cases: Array<[string, Uint8Array]> = [
      ["another port (no SYN proxy there)", synFrame({ ...base, dport: 81 })],
      ["an ACK", synFrame({ ...base, flags: TCP_ACK })],
      ["a SYN-ACK", synFrame({ ...base, flags: TCP_SYN | TCP_ACK })],
      ["another MAC", synFrame({ ...base, dstMac: macToBytes("02:00:00:00:00:99") })],
      ["a martian source", synFrame({ ...base, src: "127.0.0.1" })],
      ["a multicast source", synFrame({ ...base, src: "224.0.0.5" })],
      [
        "options without the MSS first",
        synFrame({ ...base, mss: undefined as unknown as number, extra: [1, 1, 1, 1] }),
      ],
    ];
    const bad = synFrame(base);
    bad[24] = (bad[24]! ^ 0xff) & 0xff; // the header checksum
    cases.push(["a bad header checksum", bad]);
    const frag = synFrame(base);
    frag[20] = 0x20; // more fragments
    cases.push(["a fragment", frag]);
    for (const [what, f] of cases) {
      const r = run(f);
      expect(r.retval, what).toBe(XDP_PASS);
      expect(Buffer.from(r.out).toString("hex"), what).toBe(Buffer.from(f).toString("hex"));
    }
  });
});
