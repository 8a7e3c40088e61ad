/**
 * AF_PACKET backend on a veth pair between two test namespaces: "dir" holds the end our socket
 * is bound to (va, no address: the kernel there stays out of the way), "peer" holds vb with
 * 198.18.1.1/24. The JS side plays 198.18.1.2 with va's MAC. The modes (PACKET_MMAP ring, zero
 * copy or copying, and recvmmsg/sendmmsg) run the same tests; the zero-copy ring has its own too.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EGRESS_NONE, FrameBatch } from "../../../src/datapath/io/batch.js";
import { IoError, IoErrorCode, type LinkIo } from "../../../src/datapath/io/link.js";
import { openRaw, type RawIo } from "../../../src/datapath/io/rawsock.js";
import { openTap } from "../../../src/datapath/io/tap.js";
import { skipWithout } from "../../support/tools.js";
import {
  answerInPlace,
  canRun,
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

const PEER_IP = "198.18.1.1";
const OUR_IP_S = "198.18.1.2";
const OUR_IP = ip4(OUR_IP_S);
const OTHER_MAC = "02:00:5e:10:01:99";

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

/** Receive until `want` frames are in the batch or `ms` pass (frames cross veth asynchronously). */
async function recvAtLeast(link: LinkIo, batch: FrameBatch, want: number, ms = 2000): Promise<number[]> {
  const calls: number[] = [];
  await until(() => {
    const n = link.recv(batch, 1);
    if (n > 0) calls.push(n);
    return batch.count >= want;
  }, ms);
  return calls;
}

describe.skipIf(!canRun)("AF_PACKET backend (root, network namespaces)", () => {
  const lab = new Lab("r");
  let dir = "";
  let peer = "";
  let va = "";
  let vb = "";
  let vaMac = "";
  let vbMac: Uint8Array;

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
  });

  afterAll(() => lab.cleanup());

  const variants = [
    { tag: "ring", mode: "ring", zeroCopy: true, port: 7001 },
    { tag: "ringcopy", mode: "ring", zeroCopy: false, port: 7003 },
    { tag: "mmsg", mode: "mmsg", zeroCopy: false, port: 7002 },
  ] as const;
  for (const { tag, mode, zeroCopy, port } of variants) {
    describe(`mode ${tag}`, () => {
      let raw: RawIo;
      beforeAll(() => {
        raw = openRaw({ ifname: va, netns: dir, mode, zeroCopy });
        // Frames the peer sends to 198.18.1.2 go to va's MAC without waiting for ARP.
        lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
      });
      afterAll(() => {
        raw.close();
      });

      it("is bound to the interface with its MAC and MTU", () => {
        expect(raw.name).toBe(va);
        expect(macStr(raw.mac)).toBe(vaMac);
        expect(raw.mtu).toBe(1500);
        expect(raw.mode).toBe(mode);
        if (mode === "ring") expect(raw.rxRingFrames).toBeGreaterThanOrEqual(2048);
        expect(raw.memory !== null).toBe(zeroCopy);
      });

      it("receives a burst sent by the peer namespace in one recv call", async () => {
        const batch = new FrameBatch(64);
        const before = raw.stats;
        const r = await lab.udpSend(peer, OUR_IP_S, 9, 20, `${tag}-rx`);
        expect(r.code, r.err).toBe(0);
        const calls = await recvAtLeast(raw, batch, 20);
        expect(payloads(batch)).toEqual(names(`${tag}-rx`, 20));
        // The datagrams were all queued before the first call: one call took them all.
        expect(calls[0]).toBe(20);
        for (let i = 0; i < batch.count; i++) {
          expect(batch.link[i]).toBe(1);
          expect(batch.egress[i]).toBe(EGRESS_NONE);
          // Zero copy: where the frame lies in the ring, HEADROOM (+ a VLAN tag's 4) after the
          // 32-byte tpacket2_hdr, and room for 256 bytes after it. Else: copied into slot i.
          if (zeroCopy) expect(batch.off[i]! % batch.slotSize).toBeGreaterThanOrEqual(32 + 64 + 4);
          else expect(batch.off[i]).toBe(batch.slotStart(i) + 64);
          expect(batch.room(i) - batch.len[i]!).toBeGreaterThanOrEqual(256);
        }
        batch.reset();
        const after = raw.stats;
        expect(after.rxPackets - before.rxPackets).toBe(20);
        expect(after.rxBytes - before.rxBytes).toBeGreaterThanOrEqual(20 * 42);
      });

      it("answers `ping -c 3` from the peer (ARP and ICMP replies built by hand)", async (ctx) => {
        skipWithout(ctx, "ping");
        lab.ip(peer, "neigh", "del", OUR_IP_S, "dev", vb); // make the peer ARP for us
        const batch = new FrameBatch(64);
        const before = raw.stats;
        raw.onReadable(() => {
          batch.reset();
          while (raw.recv(batch, 0) > 0) {
            for (let i = 0; i < batch.count; i++) {
              if (answerInPlace(batch, i, raw.mac, OUR_IP)) batch.egress[i] = 0;
            }
            raw.send(batch, 0);
            batch.reset();
          }
        });
        const r = await lab.exec(peer, ["ping", "-c", "3", "-i", "0.2", "-W", "2", OUR_IP_S]);
        raw.onReadable(null);
        expect(r.out, r.err).toMatch(/3 packets transmitted, 3 received/);
        const after = raw.stats;
        expect(after.rxPackets - before.rxPackets).toBeGreaterThanOrEqual(4);
        expect(after.txPackets - before.txPackets).toBeGreaterThanOrEqual(4);
        expect(lab.ip(peer, "neigh", "show", OUR_IP_S)).toContain(vaMac);
        lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
      });

      it("sends only frames with matching egress; the peer gets them, our rx does not see them", async () => {
        const batch = new FrameBatch(16);
        while (raw.recv(batch, 0) > 0) batch.reset();
        batch.reset();
        const listener = lab.udpListener(peer, port, 1500);
        await listener.ready;
        const before = raw.stats;
        const peerBefore = linkInfo(lab, peer, vb).stats64!.rx.packets;
        const egress = [1, 0, 1, EGRESS_NONE, 1, 1, 2];
        egress.forEach((e, k) => {
          const i = batch.push(udpFrame(vbMac, raw.mac, OUR_IP, ip4(PEER_IP), 5555, port, `${tag}-tx${k}`));
          batch.egress[i] = e;
        });
        expect(raw.send(batch, 1)).toBe(4);
        const got = await listener.done;
        expect(got.sort()).toEqual([`${tag}-tx0`, `${tag}-tx2`, `${tag}-tx4`, `${tag}-tx5`]);
        expect(linkInfo(lab, peer, vb).stats64!.rx.packets - peerBefore).toBe(4);
        const after = raw.stats;
        expect(after.txPackets - before.txPackets).toBe(4);
        expect(after.txBytes - before.txBytes).toBe(4 * (42 + `${tag}-tx0`.length));
        // PACKET_IGNORE_OUTGOING: our own transmissions never come back on our receive side.
        const rx = new FrameBatch(16);
        raw.recv(rx, 0);
        expect(payloads(rx).filter((p) => p.startsWith(`${tag}-tx`))).toEqual([]);
      });

      it("drops runts and oversized frames on send and counts them", () => {
        const batch = new FrameBatch(4, 4096);
        batch.egress[batch.push(new Uint8Array(10))] = 0;
        const big = udpFrame(vbMac, raw.mac, OUR_IP, ip4(PEER_IP), 1, 9, "x".repeat(1600));
        batch.egress[batch.push(big)] = 0;
        const before = raw.stats.txDropped;
        expect(raw.send(batch, 0)).toBe(0);
        expect(raw.stats.txDropped - before).toBe(2);
      });
    });
  }

  describe("zero copy (ring mode)", () => {
    it("lends the RX ring to the batch: frames are parsed and rewritten where the kernel wrote them", async () => {
      const raw = openRaw({ ifname: va, netns: dir });
      try {
        const mem = raw.memory;
        expect(mem).not.toBeNull();
        // The ring mapping itself: rxRingFrames slots of ringFrameSize bytes, not a JS slab.
        expect(mem!.buf.byteLength).toBe(raw.rxRingFrames * mem!.slotSize);
        lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
        const listener = lab.udpListener(peer, 7010, 1500);
        await listener.ready;
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 5, "zc")).code).toBe(0);
        const batch = new FrameBatch(16);
        await recvAtLeast(raw, batch, 5);
        // identity checks as booleans: a failing toBe would print the whole ring
        expect(batch.memory === mem).toBe(true);
        expect(batch.buf === mem!.buf).toBe(true);
        expect(batch.buf === batch.slab).toBe(false);
        // Turn each datagram around in place: addresses swapped, to the listener's port, the
        // payload's first letter upper-cased, no UDP checksum. IPv4 header sum: unchanged by a swap.
        const ring = new Uint8Array(mem!.buf.buffer); // a second, independent view of the ring
        for (let i = 0; i < batch.count; i++) {
          const o = batch.off[i]!;
          const b = batch.buf;
          const dv = batch.dv;
          const src = b.slice(o + 6, o + 12);
          b.copyWithin(o + 6, o, o + 6);
          b.set(src, o);
          const sip = dv.getUint32(o + 26);
          dv.setUint32(o + 26, dv.getUint32(o + 30));
          dv.setUint32(o + 30, sip);
          dv.setUint16(o + 36, 7010);
          dv.setUint16(o + 40, 0);
          b[o + 42] = 0x5a; // "z" -> "Z"
          expect(ring[o + 42]).toBe(0x5a);
          batch.egress[i] = 0;
        }
        expect(raw.send(batch, 0)).toBe(5);
        batch.reset();
        expect(batch.buf === batch.slab).toBe(true);
        expect((await listener.done).sort()).toEqual(names("zc", 5).map((p) => `Z${p.slice(1)}`));
      } finally {
        raw.close();
      }
    });

    it("holds ring slots while a batch has them and gives them back on reset (a long transfer does not stall)", async () => {
      const small = openRaw({ ifname: va, netns: dir, rxFrames: 32 });
      try {
        lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
        const batch = new FrameBatch(64);
        // 10 rounds of 24 frames through a 32-frame ring: each round fits only if the last
        // round's slots came back.
        for (let r = 0; r < 10; r++) {
          expect((await lab.udpSend(peer, OUR_IP_S, 9, 24, `s${r}-`)).code).toBe(0);
          await recvAtLeast(small, batch, 24);
          expect(payloads(batch)).toEqual(names(`s${r}-`, 24));
          batch.reset();
        }
        expect(small.detail().kernelDrops).toBe(0);
        // Not reset: the 24 frames keep their slots, so only 8 of the next 24 find room.
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 24, "held")).code).toBe(0);
        await recvAtLeast(small, batch, 24);
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 24, "more")).code).toBe(0);
        expect(await until(() => small.detail().kernelDrops >= 16)).toBe(true);
        await recvAtLeast(small, batch, 32, 500);
        expect(batch.count).toBe(32);
        expect(small.recv(batch, 0)).toBe(0); // every slot is held: nothing more, no wrap-around
        batch.reset();
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 24, "again")).code).toBe(0);
        await recvAtLeast(small, batch, 24);
        expect(payloads(batch).filter((p) => p.startsWith("again"))).toEqual(names("again", 24));
        batch.reset();
      } finally {
        small.close();
      }
    });

    it("detaches the ring on close: views of it read as empty", () => {
      const raw = openRaw({ ifname: va, netns: dir });
      const mem = raw.memory!;
      const view = mem.buf;
      expect(view.byteLength).toBeGreaterThan(0);
      raw.close();
      expect(view.byteLength).toBe(0);
      expect(view[100]).toBeUndefined();
      expect(raw.recv(new FrameBatch(4), 0)).toBe(0);
    });

    it("receives with busy polling on (SO_BUSY_POLL, SO_PREFER_BUSY_POLL)", async () => {
      const raw = openRaw({ ifname: va, netns: dir, busyPoll: 50 });
      try {
        lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 3, "bp")).code).toBe(0);
        const batch = new FrameBatch(16);
        await recvAtLeast(raw, batch, 3);
        expect(payloads(batch)).toEqual(names("bp", 3));
        batch.reset();
      } finally {
        raw.close();
      }
    });

    it("copies when zeroCopy is off, or into a batch that already holds frames in its slab", async () => {
      const raw = openRaw({ ifname: va, netns: dir });
      try {
        lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
        const batch = new FrameBatch(16);
        batch.push(udpFrame(vbMac, raw.mac, OUR_IP, ip4(PEER_IP), 1, 9, "local"));
        expect((await lab.udpSend(peer, OUR_IP_S, 9, 3, "mix")).code).toBe(0);
        await recvAtLeast(raw, batch, 4);
        expect(batch.memory === null).toBe(true);
        expect(payloads(batch)).toEqual(["local", ...names("mix", 3)].sort());
        for (let i = 1; i < batch.count; i++) expect(batch.off[i]).toBe(batch.slotStart(i) + 64);
      } finally {
        raw.close();
      }
    });
  });

  it("filters to the director's MACs by default; 'all' and extra MACs widen it", async (ctx) => {
    const def = openRaw({ ifname: va, netns: dir });
    const all = openRaw({ ifname: va, netns: dir, macs: "all", mode: "mmsg" });
    const extra = openRaw({ ifname: va, netns: dir, macs: [parseMac(OTHER_MAC)] });
    try {
      lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
      lab.ip(peer, "neigh", "replace", "198.18.1.9", "lladdr", OTHER_MAC, "dev", vb, "nud", "permanent");
      lab.ip(
        peer,
        "neigh",
        "replace",
        "198.18.1.8",
        "lladdr",
        "02:00:5e:10:01:98",
        "dev",
        vb,
        "nud",
        "permanent",
      );
      expect((await lab.udpSend(peer, OUR_IP_S, 9, 5, "us")).code).toBe(0);
      expect((await lab.udpSend(peer, "198.18.1.9", 9, 5, "nine")).code).toBe(0);
      expect((await lab.udpSend(peer, "198.18.1.8", 9, 5, "eight")).code).toBe(0);
      const bDef = new FrameBatch(64);
      const bAll = new FrameBatch(64);
      const bExtra = new FrameBatch(64);
      await recvAtLeast(all, bAll, 15);
      await recvAtLeast(extra, bExtra, 10);
      await recvAtLeast(def, bDef, 5);
      expect(payloads(bAll)).toEqual([...names("us", 5), ...names("nine", 5), ...names("eight", 5)].sort());
      expect(payloads(bExtra)).toEqual([...names("us", 5), ...names("nine", 5)].sort());
      expect(payloads(bDef)).toEqual(names("us", 5));
      // A broadcast ARP request passes the default filter (ping makes the peer send one).
      skipWithout(ctx, "ping");
      const ping = lab.exec(peer, ["ping", "-c", "1", "-W", "1", "198.18.1.77"]);
      bDef.reset();
      const gotArp = await until(() => {
        def.recv(bDef, 0);
        for (let i = 0; i < bDef.count; i++) {
          const o = bDef.off[i]!;
          if (bDef.dv.getUint16(o + 12) === 0x0806 && bDef.buf[o] === 0xff) return true;
        }
        return false;
      });
      expect(gotArp).toBe(true);
      await ping;
    } finally {
      def.close();
      all.close();
      extra.close();
    }
  });

  it("accepts and joins group MACs given in macs (VRRP's and connection sync's), only while open", async () => {
    const SYNC_MAC = "01:00:5e:00:00:51";
    const VRRP_MAC = "01:00:5e:00:00:12";
    const maddr = () => lab.ip(dir, "maddr", "show", "dev", va);
    expect(maddr()).not.toContain(SYNC_MAC);
    const def = openRaw({ ifname: va, netns: dir });
    const group = openRaw({ ifname: va, netns: dir, macs: [parseMac(VRRP_MAC), parseMac(SYNC_MAC)] });
    const groupMmsg = openRaw({ ifname: va, netns: dir, mode: "mmsg", macs: [parseMac(SYNC_MAC)] });
    try {
      // PACKET_ADD_MEMBERSHIP with PACKET_MR_MULTICAST: the device's multicast list has them.
      expect(maddr()).toContain(SYNC_MAC);
      expect(maddr()).toContain(VRRP_MAC);
      // The peer sends UDP to 224.0.0.81 (MAC 01:00:5e:00:00:51) out of vb, and to us.
      lab.ip(peer, "route", "replace", "224.0.0.0/4", "dev", vb);
      lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
      expect((await lab.udpSend(peer, "224.0.0.81", 8848, 4, "sync")).code).toBe(0);
      expect((await lab.udpSend(peer, OUR_IP_S, 9, 2, "us")).code).toBe(0);
      const bDef = new FrameBatch(64);
      const bGroup = new FrameBatch(64);
      const bMmsg = new FrameBatch(64);
      await recvAtLeast(group, bGroup, 6);
      await recvAtLeast(groupMmsg, bMmsg, 6);
      await recvAtLeast(def, bDef, 2);
      expect(payloads(bGroup)).toEqual([...names("sync", 4), ...names("us", 2)].sort());
      expect(payloads(bMmsg)).toEqual([...names("sync", 4), ...names("us", 2)].sort());
      // The default filter still drops group-addressed IPv4.
      expect(payloads(bDef)).toEqual(names("us", 2));
    } finally {
      def.close();
      group.close();
      groupMmsg.close();
    }
    // The memberships end with the sockets.
    expect(maddr()).not.toContain(SYNC_MAC);
    expect(maddr()).not.toContain(VRRP_MAC);
  });

  it("counts ring losses reported by PACKET_STATISTICS", async () => {
    const small = openRaw({ ifname: va, netns: dir, rxFrames: 32 });
    try {
      expect(small.rxRingFrames).toBe(32);
      lab.ip(peer, "neigh", "replace", OUR_IP_S, "lladdr", vaMac, "dev", vb, "nud", "permanent");
      expect((await lab.udpSend(peer, OUR_IP_S, 9, 300, "flood")).code).toBe(0);
      expect(await until(() => small.stats.rxDropped > 0)).toBe(true);
      const d = small.detail();
      expect(d.kernelDrops).toBeGreaterThan(0);
      const batch = new FrameBatch(256);
      expect(small.recv(batch, 0)).toBe(32);
      // the 300 sent, plus the odd frame the peer's kernel sends on its own (IPv6 ND/MLD, ARP)
      expect(d.kernelDrops + 32).toBeLessThanOrEqual(300 + 8);
    } finally {
      small.close();
    }
  });

  it("keeps TX ring frames the device refused and sends them later, without another send call", async () => {
    // A raw socket on a TAP's kernel side: the TAP queue holds 16 frames, the rest of a batch
    // of 64 waits in our TX ring (the kernel retries the head frame) until the TAP is read.
    const tap = openTap({ name: lab.dev("tq"), netns: dir });
    lab.ip(dir, "link", "set", "dev", tap.name, "txqueuelen", "16");
    const raw = openRaw({ ifname: tap.name, netns: dir, qdiscBypass: true });
    try {
      const out = new FrameBatch(64);
      for (let k = 0; k < 64; k++) {
        out.egress[out.push(udpFrame(tap.mac, raw.mac, OUR_IP, ip4(PEER_IP), 1, 9, `q${k}`))] = 0;
      }
      expect(raw.send(out, 0)).toBe(64);
      const got: string[] = [];
      const batch = new FrameBatch(64);
      await until(() => {
        batch.reset();
        tap.recv(batch, 0);
        got.push(...Array.from({ length: batch.count }, (_, i) => udpPayload(batch, i) ?? "?"));
        return got.length >= 64;
      }, 3000);
      expect(got).toEqual(Array.from({ length: 64 }, (_, k) => `q${k}`));
      expect(raw.stats.txDropped).toBe(0);
    } finally {
      raw.close();
      tap.close();
    }
  });

  it("fails clearly on a missing interface or namespace", () => {
    const check = (fn: () => unknown, code: string) => {
      let caught: unknown;
      try {
        fn();
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(IoError);
      expect((caught as IoError).code, (caught as Error).message).toBe(code);
    };
    check(() => openRaw({ ifname: lab.dev("nx"), netns: dir }), IoErrorCode.NO_DEVICE);
    check(() => openRaw({ ifname: va, netns: `${lab.prefix}none` }), IoErrorCode.NO_NETNS);
    check(() => openRaw({ ifname: va, netns: dir, rxFrames: 3 }), IoErrorCode.INVALID);
    check(() => openRaw({ ifname: va, netns: dir, busyPoll: -1 }), IoErrorCode.INVALID);
    check(
      () => openRaw({ ifname: va, netns: dir, macs: [parseMac("ff:ff:ff:ff:ff:ff")] }),
      IoErrorCode.INVALID,
    );
    check(() => openRaw({ ifname: va, netns: dir, macs: [new Uint8Array(5)] }), IoErrorCode.INVALID);
  });
});
