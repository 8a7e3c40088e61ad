/**
 * AF_XDP backend (src/datapath/io/xdp.ts, native/xdp.cc). The XDP program's instructions are
 * checked word for word against the eBPF encoding; the rest runs on a veth pair between two test
 * namespaces, as the AF_PACKET test does: "dir" holds va (our socket and program, no address),
 * "peer" holds vb with 198.18.2.1/24; the JS side plays 198.18.2.2 with va's MAC. One program
 * for several sockets (attachXdpProgram) runs on a veth pair with two queues in namespaces of
 * its own (qa/qb, 198.18.3.0/24).
 */
import { spawn, spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EGRESS_NONE, FrameBatch } from "../../../src/datapath/io/batch.js";
import { IoError, IoErrorCode } from "../../../src/datapath/io/link.js";
import { loadNative, nativeAvailable } from "../../../src/datapath/io/native.js";
import { openRaw } from "../../../src/datapath/io/rawsock.js";
import {
  attachXdpProgram,
  openXdp,
  type XdpIo,
  type XdpProgramHandle,
} from "../../../src/datapath/io/xdp.js";
import { GcWatch } from "../../support/gc.js";
import { skipWithout } from "../../support/tools.js";
import {
  answerInPlace,
  canRun,
  csum,
  ip4,
  Lab,
  linkInfo,
  macStr,
  parseMac,
  SKIP_REASON,
  sh,
  udpFrame,
  udpPayload,
  until,
} from "./lab.js";

if (!canRun) console.warn(SKIP_REASON);

const PEER_IP = "198.18.2.1";
const OUR_IP_S = "198.18.2.2";
const OUR_IP = ip4(OUR_IP_S);
const OTHER_IP = "198.18.2.9";
const OTHER_MAC = "02:00:5e:10:02:99";

const hex = (b: Uint8Array): string[] =>
  Array.from({ length: b.length / 8 }, (_, i) =>
    Array.from(b.subarray(i * 8, i * 8 + 8), (x) => x.toString(16).padStart(2, "0")).join(" "),
  );

describe("AF_XDP options", () => {
  it("refuses a busy-poll time or budget out of range before touching the system", () => {
    for (const [o, msg] of [
      [{ busyPoll: -1 }, /busyPoll must be an integer in 0\.\.1000000 \(µs\)/],
      [{ busyPoll: 1.5 }, /busyPoll must be an integer/],
      [{ busyPoll: 1_000_001 }, /busyPoll must be an integer/],
      [{ busyBudget: 0 }, /busyBudget must be an integer in 1\.\.65535/],
      [{ busyBudget: 65536 }, /busyBudget must be an integer in 1\.\.65535/],
    ] as const) {
      const e = caught(() => openXdp({ ifname: "lvsnone0", ...o }));
      expect(e.code).toBe(IoErrorCode.INVALID);
      expect(e.message).toMatch(msg);
    }
  });

  it("attachXdpProgram refuses bad options before touching the system", () => {
    // A missing interface would be NO_DEVICE (or NATIVE_MISSING): INVALID means nothing was tried.
    for (const [o, msg] of [
      [{ queues: 0 }, /attach XDP program to lvsnone0: queues must be an integer in 1\.\.4096/],
      [{ queues: 5000 }, /queues must be an integer in 1\.\.4096/],
      [{ queues: 1.5 }, /queues must be an integer in 1\.\.4096/],
      [{ queues: 2, redirect: "bogus" }, /redirect must be "all" or "mac"/],
      [{ queues: 2, attach: "bogus" }, /attach must be "auto", "drv" or "skb"/],
    ] as const) {
      const e = caught(() => attachXdpProgram({ ifname: "lvsnone0", ...(o as { queues: number }) }));
      expect(e.code).toBe(IoErrorCode.INVALID);
      expect(e.message).toMatch(msg);
    }
    expect(caught(() => attachXdpProgram({ ifname: "", queues: 1 })).message).toMatch(
      /ifname must be 1\.\.15 bytes/,
    );
  });

  it("openXdp refuses a bad program reference or a redirect the program does not do", () => {
    const bad = caught(() =>
      openXdp({ ifname: "lvsnone0", program: { mapFd: -1, xdpMode: "drv", redirect: "all" } }),
    );
    expect(bad.code).toBe(IoErrorCode.INVALID);
    expect(bad.message).toMatch(/program\.mapFd must be a file descriptor/);
    const red = caught(() =>
      openXdp({
        ifname: "lvsnone0",
        redirect: "mac",
        program: { mapFd: 3, xdpMode: "drv", redirect: "all" },
      }),
    );
    expect(red.code).toBe(IoErrorCode.INVALID);
    expect(red.message).toMatch(/redirect is the program's \("all"\), not "mac"/);
  });
});

describe.skipIf(!nativeAvailable())("XDP program (eBPF instructions built by the addon)", () => {
  // Each instruction: opcode, src<<4|dst, 16-bit offset (LE), 32-bit immediate (LE).
  const REDIRECT = (fd: string) => [
    "61 12 10 00 00 00 00 00", // r2 = *(u32 *)(r1 + 16)   ctx->rx_queue_index
    `18 11 00 00 ${fd}`, //        r1 = map fd (ld_imm64, src = BPF_PSEUDO_MAP_FD)
    "00 00 00 00 00 00 00 00", //  (second half of ld_imm64)
    "b7 03 00 00 02 00 00 00", //  r3 = XDP_PASS (fallback action)
    "85 00 00 00 33 00 00 00", //  call 51 = bpf_redirect_map
    "95 00 00 00 00 00 00 00", //  exit
  ];

  it("'all': redirects the frame's rx queue through the XSKMAP, XDP_PASS as fallback", () => {
    expect(hex(loadNative().xdpProgram(7))).toEqual(REDIRECT("07 00 00 00"));
    expect(hex(loadNative().xdpProgram(0x1234))).toEqual(REDIRECT("34 12 00 00"));
  });

  it("'mac': checks the destination MAC first (group bit, then the 6 bytes) and passes the rest", () => {
    const words = hex(loadNative().xdpProgram(9, parseMac("02:00:5e:10:01:aa")));
    expect(words).toEqual([
      "61 12 00 00 00 00 00 00", // r2 = ctx->data
      "61 13 04 00 00 00 00 00", // r3 = ctx->data_end
      "bf 24 00 00 00 00 00 00", // r4 = r2
      "07 04 00 00 06 00 00 00", // r4 += 6
      "2d 34 0c 00 00 00 00 00", // if r4 > r3 goto pass (+12)
      "71 25 00 00 00 00 00 00", // r5 = *(u8 *)(r2 + 0)
      "45 05 04 00 01 00 00 00", // if r5 & 1 goto redirect (+4): broadcast/multicast
      "61 25 00 00 00 00 00 00", // r5 = *(u32 *)(r2 + 0)
      "56 05 08 00 02 00 5e 10", // if w5 != mac[0..3] goto pass (+8)  (jmp32)
      "69 25 04 00 00 00 00 00", // r5 = *(u16 *)(r2 + 4)
      "56 05 06 00 01 aa 00 00", // if w5 != mac[4..5] goto pass (+6)
      ...REDIRECT("09 00 00 00"),
      "b7 00 00 00 02 00 00 00", // pass: r0 = XDP_PASS
      "95 00 00 00 00 00 00 00", // exit
    ]);
  });
});

function payloads(batch: FrameBatch): string[] {
  const out: string[] = [];
  for (let i = 0; i < batch.count; i++) {
    const p = udpPayload(batch, i);
    if (p !== undefined) out.push(p);
  }
  return out.sort();
}

function names(tag: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${tag}${i}`).sort();
}

async function recvAtLeast(link: XdpIo, batch: FrameBatch, want: number, ms = 2000): Promise<number[]> {
  const calls: number[] = [];
  await until(() => {
    const n = link.recv(batch, 1);
    if (n > 0) calls.push(n);
    return batch.count >= want;
  }, ms);
  return calls;
}

function caught(fn: () => unknown): IoError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IoError);
    return err as IoError;
  }
  throw new Error("did not throw");
}

describe.skipIf(!canRun || !nativeAvailable())("AF_XDP backend (root, network namespaces)", () => {
  const lab = new Lab("x");
  let dir = "";
  let peer = "";
  let va = "";
  let vb = "";
  let vaMac = "";
  let vbMac: Uint8Array;
  const xdpShown = () => lab.ip(dir, "-d", "link", "show", "dev", va);

  beforeAll(() => {
    dir = lab.netns("dir");
    peer = lab.netns("peer");
    for (const ns of [dir, peer]) {
      sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1");
      sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1");
    }
    va = lab.dev("va");
    vb = lab.dev("vb");
    lab.ip(dir, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", peer);
    lab.ip(dir, "link", "set", va, "up");
    lab.ip(peer, "addr", "add", `${PEER_IP}/24`, "dev", vb);
    lab.ip(peer, "link", "set", vb, "up");
    vaMac = linkInfo(lab, dir, va).address;
    vbMac = parseMac(linkInfo(lab, peer, vb).address);
    lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
  });
  afterAll(() => lab.cleanup());

  describe("redirect all", () => {
    let x: XdpIo;
    beforeAll(() => {
      x = openXdp({ ifname: va, netns: dir });
    });
    afterAll(() => x.close());

    it("binds queue 0 in copy mode with the program attached in driver mode (native XDP on veth)", () => {
      expect(x.name).toBe(va);
      expect(macStr(x.mac)).toBe(vaMac);
      expect(x.mtu).toBe(1500);
      expect(x.queue).toBe(0);
      expect(x.xdpMode).toBe("drv");
      expect(x.zeroCopy).toBe(false); // veth has no zero-copy AF_XDP
      expect(x.rxRingFrames).toBe(2048);
      expect(xdpShown()).toMatch(/prog\/xdp id \d+/);
    });

    it("receives a burst sent by the peer namespace in one recv call, in place in the UMEM", async () => {
      const batch = new FrameBatch(64);
      const before = x.detail();
      const r = await lab.udpSend(peer, OUR_IP_S, 9, 20, "xrx");
      expect(r.code, r.err).toBe(0);
      const calls = await recvAtLeast(x, batch, 20);
      expect(payloads(batch)).toEqual(names("xrx", 20));
      expect(calls[0]).toBe(20);
      // The batch views the UMEM (one external ArrayBuffer, 4096 chunks of 2048 bytes): each frame
      // lies 256 bytes (XDP_PACKET_HEADROOM) into a chunk of its own, with tail room after it.
      expect(x.memory).not.toBeNull();
      expect(batch.memory === x.memory).toBe(true); // (toBe would print 8 MB on failure)
      expect(batch.buf.byteLength).toBe(4096 * 2048);
      expect(batch.slotSize).toBe(2048);
      const chunks = new Set<number>();
      for (let i = 0; i < batch.count; i++) {
        expect(batch.link[i]).toBe(1);
        expect(batch.egress[i]).toBe(EGRESS_NONE);
        expect(batch.off[i]! % 2048).toBe(256);
        expect(batch.room(i) - batch.len[i]!).toBeGreaterThanOrEqual(256);
        chunks.add(Math.floor(batch.off[i]! / 2048));
      }
      expect(chunks.size).toBe(20);
      const after = x.detail();
      expect(after.rxPackets - before.rxPackets).toBe(20);
      expect(after.rxCopied - before.rxCopied).toBe(0);
      batch.reset(); // gives the chunks back
      expect(batch.memory).toBeNull();
    });

    it("sends a frame that grew at the front (IPIP) by descriptor from its chunk, no copy", async () => {
      // The peer captures what arrives (an AF_PACKET socket on vb); we wrap each received frame in
      // an outer IPv4 header (protocol 4) written into the 256 bytes of headroom in front of it.
      const cap = openRaw({ ifname: vb, netns: peer, macs: "all", mode: "mmsg" });
      try {
        const batch = new FrameBatch(64);
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 8, "ipip")).code).toBe(0);
        await recvAtLeast(x, batch, 8);
        expect(batch.memory === x.memory).toBe(true);
        const want: string[] = [];
        for (let i = 0; i < batch.count; i++) {
          const o = batch.off[i]!;
          const n = batch.len[i]!;
          const buf = batch.buf;
          const o2 = o - 20;
          // The inner IPv4 packet stays where it is (o + 14 = o2 + 34): new Ethernet + outer IPv4 in front.
          buf.set(parseMac(OTHER_MAC), o2); // not vb's: its kernel ignores the frames (no ICMP back)
          buf.set(x.mac, o2 + 6);
          buf[o2 + 12] = 0x08;
          buf[o2 + 13] = 0x00;
          const ip = new DataView(buf.buffer, buf.byteOffset + o2 + 14, 20);
          ip.setUint32(0, 0x45000000 | (n - 14 + 20));
          ip.setUint32(4, 0);
          ip.setUint32(8, 0x40040000); // ttl 64, protocol 4, checksum below
          ip.setUint32(12, OUR_IP);
          ip.setUint32(16, ip4(PEER_IP));
          ip.setUint16(10, csum(buf, o2 + 14, 20));
          batch.off[i] = o2;
          batch.len[i] = n + 20;
          batch.egress[i] = 0;
          want.push(Buffer.from(batch.frame(i)).toString("hex"));
        }
        const before = x.detail();
        expect(x.send(batch, 0)).toBe(8);
        batch.reset();
        const after = x.detail();
        expect(after.txInPlace - before.txInPlace).toBe(8);
        expect(after.txCopied - before.txCopied).toBe(0);
        const got = new FrameBatch(64);
        await until(() => {
          cap.recv(got, 0);
          return got.count >= 8;
        });
        const seen = Array.from({ length: got.count }, (_, i) => Buffer.from(got.frame(i)).toString("hex"));
        expect(seen.filter((h) => h.slice(46, 48) === "04").sort()).toEqual(want.sort());
      } finally {
        cap.close();
      }
    });

    it("recycles UMEM chunks: 5000 frames through a 2048-chunk fill ring, none lost", async () => {
      const batch = new FrameBatch(256);
      let got = 0;
      const before = x.detail();
      // Sent in rounds the ring can hold, read between rounds.
      for (let round = 0; round < 5; round++) {
        const r = await lab.udpSend(peer, OUR_IP_S, 9, 1000, `r${round}-`);
        expect(r.code, r.err).toBe(0);
        await until(() => {
          batch.reset();
          got += x.recv(batch, 0);
          return got >= (round + 1) * 1000;
        });
      }
      expect(got).toBe(5000);
      expect(x.detail().kernelDrops - before.kernelDrops).toBe(0);
    });

    it("answers `ping -c 3` from the peer (ARP and ICMP replies built in place, sent through the TX ring)", async (ctx) => {
      skipWithout(ctx, "ping");
      lab.ip(peer, "neigh", "del", OUR_IP_S, "dev", vb);
      const batch = new FrameBatch(64);
      const before = x.stats;
      x.onReadable(() => {
        batch.reset();
        while (x.recv(batch, 0) > 0) {
          for (let i = 0; i < batch.count; i++)
            if (answerInPlace(batch, i, x.mac, OUR_IP)) batch.egress[i] = 0;
          x.send(batch, 0);
          batch.reset();
        }
      });
      const r = await lab.exec(peer, ["ping", "-c", "3", "-i", "0.2", "-W", "2", OUR_IP_S]);
      x.onReadable(null);
      expect(r.out, r.err).toMatch(/3 packets transmitted, 3 received/);
      expect(x.stats.txPackets - before.txPackets).toBeGreaterThanOrEqual(4);
      expect(lab.ip(peer, "neigh", "show", OUR_IP_S)).toContain(vaMac);
      lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
    });

    it("sends only frames with matching egress, 3000 in a row through 2048 TX chunks", async () => {
      const listener = lab.udpListener(peer, 7001, 2500);
      await listener.ready;
      const before = x.detail();
      const batch = new FrameBatch(16);
      const egress = [1, 0, 1, EGRESS_NONE, 1, 1, 2];
      egress.forEach((e, k) => {
        const i = batch.push(udpFrame(vbMac, x.mac, OUR_IP, ip4(PEER_IP), 5555, 7001, `xtx${k}`));
        batch.egress[i] = e;
      });
      expect(x.send(batch, 1)).toBe(4);
      // Completions are reaped on later sends: 3000 more frames need every TX chunk more than once.
      const big = new FrameBatch(250);
      let sent = 0;
      for (let r = 0; r < 12; r++) {
        big.reset();
        for (let k = 0; k < 250; k++) {
          big.egress[big.push(udpFrame(vbMac, x.mac, OUR_IP, ip4(PEER_IP), 5555, 7002, "b"))] = 1;
        }
        sent += x.send(big, 1);
        await new Promise((res) => setTimeout(res, 5));
      }
      expect(sent).toBe(3000);
      const got = await listener.done;
      expect(got.sort()).toEqual(["xtx0", "xtx2", "xtx4", "xtx5"]);
      const after = x.detail();
      expect(after.txPackets - before.txPackets).toBe(3004);
      expect(after.txDropped - before.txDropped).toBe(0);
      // Frames from the batch's own slab are copied into free UMEM chunks.
      expect(after.txCopied - before.txCopied).toBe(3004);
      expect(after.txInPlace - before.txInPlace).toBe(0);
      expect(await until(() => (linkInfo(lab, peer, vb).stats64?.rx.packets ?? 0) >= 3004)).toBe(true);
    });

    it("allocates nothing per batch: 60,000 frames in and out through the rings trigger no minor GC", async () => {
      // In process: an AF_PACKET socket on the peer's end generates, the AF_XDP link receives
      // each batch and sends it back (egress = its own link), the generator drains the returns.
      const gen = openRaw({ ifname: vb, netns: peer, macs: "all" });
      const gc = new GcWatch();
      try {
        const out = new FrameBatch(200);
        for (let k = 0; k < 200; k++)
          out.push(udpFrame(x.mac, vbMac, ip4(PEER_IP), OUR_IP, 5000, 9, `g${k % 10}`));
        out.egress.fill(0, 0, 200);
        const mid = new FrameBatch(256);
        const back = new FrameBatch(256);
        const round = (): number => {
          gen.send(out, 0);
          let got = 0;
          for (let spin = 0; spin < 20000 && got < 200; spin++) {
            mid.reset();
            const n = x.recv(mid, 1);
            for (let i = 0; i < n; i++) mid.egress[i] = 1;
            x.send(mid, 1);
            got += n;
          }
          for (let spin = 0; spin < 2000; spin++) {
            back.reset();
            if (gen.recv(back, 0) === 0 && spin > 10) break;
          }
          return got;
        };
        for (let r = 0; r < 50; r++) round(); // warm-up: JIT, ring pages, free stacks
        await new Promise((res) => setTimeout(res, 20));
        gc.start();
        const before = x.detail();
        const deadline = Date.now() + 20_000;
        const { minors, value: forwarded } = await gc.during(() => {
          let n = 0;
          for (let r = 0; r < 300 && Date.now() < deadline; r++) n += round();
          return n;
        });
        expect(forwarded).toBeGreaterThanOrEqual(60_000 * 0.95);
        const after = x.detail();
        expect(after.txPackets - before.txPackets).toBe(forwarded);
        // Every frame went back out by descriptor from the chunk it arrived in: no copy either way.
        expect(after.txInPlace - before.txInPlace).toBe(forwarded);
        expect(after.txCopied - before.txCopied).toBe(0);
        expect(after.rxCopied - before.rxCopied).toBe(0);
        expect(minors).toBe(0);
      } finally {
        gc.stop();
        gen.close();
      }
    });

    it("drops runts and oversized frames on send and counts them", () => {
      const batch = new FrameBatch(4, 4096);
      batch.egress[batch.push(new Uint8Array(10))] = 0;
      batch.egress[batch.push(udpFrame(vbMac, x.mac, OUR_IP, ip4(PEER_IP), 1, 9, "x".repeat(1600)))] = 0;
      const before = x.stats.txDropped;
      expect(x.send(batch, 0)).toBe(0);
      expect(x.stats.txDropped - before).toBe(2);
    });

    it("takes every frame: an AF_PACKET socket on the same interface sees none of them", async () => {
      const raw = openRaw({ ifname: va, netns: dir, macs: "all", mode: "mmsg" });
      try {
        lab.ip(peer, "neigh", "replace", OTHER_IP, "lladdr", OTHER_MAC, "dev", vb, "nud", "permanent");
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 5, "us")).code).toBe(0);
        expect((await lab.udpSend(peer, OTHER_IP, 9, 5, "nine")).code).toBe(0);
        const bx = new FrameBatch(64);
        await recvAtLeast(x, bx, 10);
        expect(payloads(bx)).toEqual([...names("us", 5), ...names("nine", 5)].sort());
        const br = new FrameBatch(64);
        raw.recv(br, 0);
        expect(payloads(br)).toEqual([]);
      } finally {
        raw.close();
      }
    });

    it("refuses a second socket on the queue, with the fallback named", () => {
      const e = caught(() => openXdp({ ifname: va, netns: dir }));
      expect(e.code).toBe(IoErrorCode.NO_XDP);
      expect(e.message).toMatch(/another AF_XDP socket is bound to this queue/);
      expect(e.message).toMatch(/use --link raw=IFACE \(AF_PACKET\) or tap=NAME instead/);
    });
  });

  it("view: false copies frames out of the UMEM into the batch's own slab", async () => {
    const x = openXdp({ ifname: va, netns: dir, view: false });
    try {
      expect(x.memory).toBeNull();
      const before = x.detail();
      expect((await lab.udpSend(peer, OUR_IP_S, 9, 10, "cp")).code).toBe(0);
      const b = new FrameBatch(64);
      await recvAtLeast(x, b, 10);
      expect(payloads(b)).toEqual(names("cp", 10));
      expect(b.memory).toBeNull();
      for (let i = 0; i < b.count; i++) expect(b.off[i]).toBe(b.slotStart(i) + 64);
      expect(x.detail().rxCopied - before.rxCopied).toBe(10);
    } finally {
      x.close();
    }
  });

  it("close detaches the UMEM's ArrayBuffer: a batch still viewing it reads as empty", async () => {
    const x = openXdp({ ifname: va, netns: dir });
    const b = new FrameBatch(64);
    try {
      expect((await lab.udpSend(peer, OUR_IP_S, 9, 3, "cl")).code).toBe(0);
      await recvAtLeast(x, b, 3);
      expect(b.memory === x.memory).toBe(true);
      expect(b.buf.byteLength).toBeGreaterThan(0);
    } finally {
      x.close();
    }
    expect(b.buf.byteLength).toBe(0);
    b.reset(); // release on a closed link: nothing happens
    expect(b.buf.byteLength).toBe(b.capacity * 2048);
  });

  it("works in generic (skb) mode too when asked: attached as xdpgeneric, frames arrive", async () => {
    const x = openXdp({ ifname: va, netns: dir, attach: "skb" });
    try {
      expect(x.xdpMode).toBe("skb");
      expect(xdpShown()).toMatch(/xdpgeneric/);
      expect((await lab.udpSend(peer, OUR_IP_S, 9, 10, "gen")).code).toBe(0);
      const b = new FrameBatch(64);
      await recvAtLeast(x, b, 10);
      expect(payloads(b)).toEqual(names("gen", 10));
    } finally {
      x.close();
    }
    expect(xdpShown()).not.toMatch(/xdpgeneric/);
  });

  it("detaches the program on close", () => {
    const x = openXdp({ ifname: va, netns: dir });
    expect(xdpShown()).toMatch(/prog\/xdp/);
    x.close();
    expect(xdpShown()).not.toMatch(/prog\/xdp/);
  });

  it("detaches the program when the process dies (SIGKILL)", async () => {
    const mod = join(process.cwd(), "dist", "src", "datapath", "io", "xdp.js");
    // The handle is kept in a global: unreferenced, a GC would run its destructor, which closes it.
    const script = `import(${JSON.stringify(mod)}).then(m=>{globalThis.keep=m.openXdp({ifname:${JSON.stringify(va)},netns:${JSON.stringify(dir)}});console.log("OPEN");setInterval(()=>{},1000);});`;
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    try {
      expect(await until(() => out.includes("OPEN"), 10_000)).toBe(true);
      expect(xdpShown()).toMatch(/prog\/xdp/);
    } finally {
      child.kill("SIGKILL");
    }
    await new Promise((r) => child.once("close", r));
    expect(await until(() => !/prog\/xdp/.test(xdpShown()), 3000)).toBe(true);
  });

  it("redirect mac: frames to other MACs go to the kernel (an AF_PACKET socket sees them), ours to us", async () => {
    const x = openXdp({ ifname: va, netns: dir, redirect: "mac" });
    const raw = openRaw({ ifname: va, netns: dir, macs: "all", mode: "mmsg" });
    try {
      expect(x.redirect).toBe("mac");
      lab.ip(peer, "neigh", "replace", OTHER_IP, "lladdr", OTHER_MAC, "dev", vb, "nud", "permanent");
      expect((await lab.udpSend(peer, OUR_IP_S, 9, 5, "us")).code).toBe(0);
      expect((await lab.udpSend(peer, OTHER_IP, 9, 5, "nine")).code).toBe(0);
      const bx = new FrameBatch(64);
      const br = new FrameBatch(64);
      await recvAtLeast(x, bx, 5);
      await until(() => {
        raw.recv(br, 0);
        return payloads(br).length >= 5;
      });
      expect(payloads(bx)).toEqual(names("us", 5));
      expect(payloads(br)).toEqual(names("nine", 5));
    } finally {
      raw.close();
      x.close();
    }
  });

  it("falls back with a clear message: missing interface, missing queue, no privileges", () => {
    const nodev = caught(() => openXdp({ ifname: lab.dev("nx"), netns: dir }));
    expect(nodev.code).toBe(IoErrorCode.NO_DEVICE);
    expect(nodev.message).toMatch(/raw=IFACE .* or tap=NAME instead/);
    // veth has one queue: binding queue 5 is refused by the kernel.
    const noq = caught(() => openXdp({ ifname: va, netns: dir, queue: 5 }));
    expect(noq.code).toBe(IoErrorCode.NO_XDP);
    expect(noq.message).toMatch(/queue 5 \(no such queue on this device\?\): bind\(XDP_COPY\) failed/);
    expect(noq.message).toMatch(/use --link raw=IFACE \(AF_PACKET\) or tap=NAME instead/);
    expect(xdpShown()).not.toMatch(/prog\/xdp/);
    // Without privileges (an unprivileged user, no capabilities): socket(AF_XDP) is refused.
    const mod = join(process.cwd(), "dist", "src", "datapath", "io", "xdp.js");
    const script = `import(${JSON.stringify(mod)}).then(m=>{try{m.openXdp({ifname:${JSON.stringify(va)}})}catch(e){console.log(JSON.stringify({code:e.code,message:e.message}))}});`;
    const r = spawnSync(
      "ip",
      [
        ...[
          "netns",
          "exec",
          dir,
          "setpriv",
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "--inh-caps=-all",
        ],
        ...[process.execPath, "-e", script],
      ],
      { encoding: "utf8" },
    );
    const res = JSON.parse(r.stdout.trim()) as { code: string; message: string };
    expect(res.code).toBe(IoErrorCode.NO_PRIVILEGE);
    expect(res.message).toMatch(/use --link raw=IFACE \(AF_PACKET\) or tap=NAME instead/);
  });
});

describe.skipIf(!canRun || !nativeAvailable())(
  "one XDP program, a socket per queue (root, 2-queue veth)",
  () => {
    // "d" holds qa (two RX and two TX queues; our program and sockets), "p" holds qb with
    // 198.18.3.1/24, whose two TX queues are picked by flow hash: UDP from many source ports
    // reaches both of qa's RX queues.
    const lab = new Lab("q");
    const PEER = "198.18.3.1";
    const OURS = "198.18.3.2";
    let dir = "";
    let peer = "";
    let qa = "";
    let qb = "";
    const shown = () => lab.ip(dir, "-d", "link", "show", "dev", qa);
    const progIds = () => Array.from(shown().matchAll(/prog\/xdp id (\d+)/g), (m) => m[1]);
    const openFds = () => readdirSync("/proc/self/fd").length;

    beforeAll(() => {
      dir = lab.netns("d");
      peer = lab.netns("p");
      qa = lab.dev("qa");
      qb = lab.dev("qb");
      const two = ["numtxqueues", "2", "numrxqueues", "2"];
      lab.ip(dir, "link", "add", qa, ...two, "type", "veth", "peer", "name", qb, ...two, "netns", peer);
      lab.ip(dir, "link", "set", qa, "up");
      lab.ip(peer, "addr", "add", `${PEER}/24`, "dev", qb);
      lab.ip(peer, "link", "set", qb, "up");
      const qaMac = linkInfo(lab, dir, qa).address;
      lab.ip(peer, "neigh", "replace", OURS, "lladdr", qaMac, "dev", qb, "nud", "permanent");
    });
    afterAll(() => lab.cleanup());

    /** `ports` UDP sockets (ephemeral source ports) in the peer namespace each send `each` datagrams "<port>-<i>". */
    function sendFlows(ports: number, each: number): Promise<{ code: number; err: string }> {
      const script = `const d=require("dgram");let left=${ports * each};
for(let p=0;p<${ports};p++){const s=d.createSocket("udp4");s.bind(0,()=>{const port=s.address().port;let n=${each};
for(let i=0;i<${each};i++)s.send(Buffer.from(port+"-"+i),9,${JSON.stringify(OURS)},()=>{if(--n===0)s.close();if(--left===0)process.exit(0);});});}`;
      return lab.exec(peer, [process.execPath, "-e", script]);
    }

    describe("attached once, sockets on queue 0 and 1", () => {
      let prog: XdpProgramHandle;
      let s0: XdpIo;
      let s1: XdpIo;
      let firstId: string | undefined;
      beforeAll(() => {
        prog = attachXdpProgram({ ifname: qa, netns: dir, queues: 2 });
        s0 = openXdp({ ifname: qa, netns: dir, queue: 0, program: prog });
        s1 = openXdp({ ifname: qa, netns: dir, queue: 1, program: prog });
      });
      afterAll(() => {
        s0.close();
        s1.close();
        prog.close();
      });

      it("attaches one program in driver mode; both sockets report it", () => {
        expect(prog.xdpMode).toBe("drv");
        expect(prog.queues).toBe(2);
        expect(prog.ifname).toBe(qa);
        expect(prog.redirect).toBe("all");
        for (const [x, q] of [
          [s0, 0],
          [s1, 1],
        ] as const) {
          expect(x.queue).toBe(q);
          expect(x.xdpMode).toBe("drv");
          expect(x.redirect).toBe("all");
          expect(x.umemShared).toBe(false); // a UMEM of its own each
        }
        const ids = progIds();
        expect(ids).toHaveLength(1);
        firstId = ids[0];
      });

      it("flows from 64 source ports spread over both queues: each socket gets its queue's, none lost", async () => {
        const b0 = new FrameBatch(256);
        const b1 = new FrameBatch(256);
        const got: [string[], string[]] = [[], []];
        const pattern = /^\d+-\d+$/; // (the peer's own IPv6 frames are redirected too: ignored)
        const drain = () => {
          for (const [k, x, b] of [
            [0, s0, b0],
            [1, s1, b1],
          ] as const) {
            b.reset();
            x.recv(b, k);
            for (let i = 0; i < b.count; i++) {
              const p = udpPayload(b, i);
              if (p !== undefined && pattern.test(p)) got[k].push(p);
            }
          }
          b0.reset();
          b1.reset();
        };
        const sending = sendFlows(64, 32);
        const done = until(() => {
          drain();
          return got[0].length + got[1].length >= 2048;
        }, 15_000);
        const r = await sending;
        expect(r.code, r.err).toBe(0);
        expect(await done).toBe(true);
        await new Promise((res) => setTimeout(res, 50));
        drain(); // nothing more (no duplicates)
        expect(got[0].length).toBeGreaterThan(0);
        expect(got[1].length).toBeGreaterThan(0);
        expect(got[0].length + got[1].length).toBe(2048);
        const all = new Set([...got[0], ...got[1]]);
        expect(all.size).toBe(2048);
        // 64 flows of 32: each flow's datagrams all took one queue (its hash picks it).
        const ports = new Map<string, Set<number>>();
        for (const k of [0, 1] as const)
          for (const p of got[k]) {
            const port = p.split("-")[0]!;
            const qs = ports.get(port) ?? new Set<number>();
            qs.add(k);
            ports.set(port, qs);
          }
        expect(ports.size).toBe(64);
        for (const qs of ports.values()) expect(qs.size).toBe(1);
        expect(s0.detail().kernelDrops + s1.detail().kernelDrops).toBe(0);
        expect(progIds()).toEqual([firstId]);
      });

      it("a second program on the interface is refused (NO_XDP, nothing left open)", () => {
        const before = openFds();
        const e = caught(() => attachXdpProgram({ ifname: qa, netns: dir, queues: 2 }));
        expect(openFds()).toBe(before);
        expect(e.code).toBe(IoErrorCode.NO_XDP);
        expect(e.message).toMatch(
          /^attach XDP program to .* in netns .*: XDP program on \S+ \(the interface already has an XDP program\)/,
        );
        expect(e.message).toMatch(/use --link raw=IFACE \(AF_PACKET\) or tap=NAME instead/);
        expect(progIds()).toEqual([firstId]);
      });

      it("closing the sockets leaves the program attached; closing the handle detaches it", () => {
        s0.close();
        s1.close();
        expect(progIds()).toEqual([firstId]);
        prog.close();
        expect(prog.closed).toBe(true);
        expect(shown()).not.toMatch(/prog\/xdp/);
        prog.close(); // idempotent
        const e = caught(() => openXdp({ ifname: qa, netns: dir, queue: 0, program: prog }));
        expect(e.code).toBe(IoErrorCode.INVALID);
        expect(e.message).toMatch(/the XDP program handle is closed/);
      });
    });

    it("a socket on a queue the program's XSKMAP has no entry for is refused with the reason", () => {
      const prog = attachXdpProgram({ ifname: qa, netns: dir, queues: 1, redirect: "mac" });
      try {
        const s0 = openXdp({ ifname: qa, netns: dir, queue: 0, program: prog });
        try {
          expect(s0.redirect).toBe("mac");
          expect(s0.xdpMode).toBe(prog.xdpMode);
          const before = openFds();
          const e = caught(() => openXdp({ ifname: qa, netns: dir, queue: 1, program: prog }));
          expect(openFds()).toBe(before);
          expect(e.code).toBe(IoErrorCode.NO_XDP);
          expect(e.message).toMatch(
            /queue 1 \(the shared XSKMAP has fewer entries than queue \+ 1 = 2: attach the program with queues >= 2\): bpf\(BPF_MAP_UPDATE_ELEM, XSKMAP\) failed/,
          );
          expect(progIds()).toHaveLength(1);
        } finally {
          s0.close();
        }
      } finally {
        prog.close();
      }
      expect(shown()).not.toMatch(/prog\/xdp/);
      // The refused socket's queue is free again (the kernel releases it in a moment: openXdp retries).
      const again = attachXdpProgram({ ifname: qa, netns: dir, queues: 2, attach: "skb" });
      try {
        expect(again.xdpMode).toBe("skb");
        expect(shown()).toMatch(/xdpgeneric/);
        const s1 = openXdp({ ifname: qa, netns: dir, queue: 1, program: again });
        expect(s1.xdpMode).toBe("skb");
        s1.close();
      } finally {
        again.close();
      }
      expect(shown()).not.toMatch(/xdpgeneric/);
    });
  },
);
