/**
 * SynResponder (src/datapath/synresponder.ts) keeps the XDP SYN-cookie responder's maps true to
 * the engine: each case changes the engine (services, VRRP ownership, mark rules, the gateway's
 * neighbour entry, the secret) and checks, by running the program in the kernel
 * (BPF_PROG_TEST_RUN) after a sync, that it answers only what the engine would answer the same
 * way, to the engine's next hop, with a cookie the engine accepts; and that its counters reach
 * --synproxy-stats and --drops. Needs root and the built addon.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clock } from "../../src/datapath/clock.js";
import { heldIndex } from "../../src/datapath/conntrack/held.js";
import { Drop } from "../../src/datapath/drops.js";
import type { Engine } from "../../src/datapath/engine.js";
import { XDP_DROP, XDP_PASS, XDP_TX } from "../../src/datapath/io/bpf/asm.js";
import { loadNative, nativeAvailable } from "../../src/datapath/io/native.js";
import { eth } from "../../src/datapath/packet/build.js";
import { parseFrame, tcpAck, tcpSeq } from "../../src/datapath/packet/parse.js";
import { FrameView, TCP_ACK, TCP_SYN } from "../../src/datapath/packet/view.js";
import { SynResponder } from "../../src/datapath/synresponder.js";
import { ipToU32, macToBytes } from "../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../src/lib/proto.js";
import { markRule } from "../support/marks.js";
import { IN, IP, MAC, OUT, run, synProxyEngine, tcpKey } from "./engine/helpers.js";

const root = process.getuid?.() === 0;

const syn = (src: string, sport = 40000, dport = 80, dst = IP.vip, from = MAC.client) =>
  eth({ src: from, dst: MAC.dirOut })
    .ipv4({ src, dst })
    .tcp({ sport, dport, flags: TCP_SYN, seq: 1000, mss: 1460 })
    .build();

describe.skipIf(!root || !nativeAvailable())("the XDP SYN responder's maps follow the engine", () => {
  const native = nativeAvailable() ? loadNative() : undefined;
  let e: Engine;
  let r: SynResponder;
  beforeAll(() => {
    e = synProxyEngine();
    r = new SynResponder(native!, e, OUT, () => ({ fd: -1, driverMode: false }));
  });
  afterAll(() => r?.close());

  const xdp = (frame: Uint8Array): { retval: number; out: FrameView | undefined } => {
    const out = new Uint8Array(256);
    const t = native!.bpfTestRun(r.maps.prog, frame, out);
    if (t.retval !== XDP_TX) return { retval: t.retval, out: undefined };
    const b = out.slice(0, t.size);
    const v = new FrameView();
    expect(parseFrame(b, new DataView(b.buffer), 0, b.length, v)).toBe(0);
    return { retval: t.retval, out: v };
  };

  it("answers a client on the link's subnet to its MAC, with a cookie the engine accepts", () => {
    r.sync();
    const a = xdp(syn(IP.client));
    expect(a.retval).toBe(XDP_TX);
    const v = a.out!;
    expect(Buffer.from(v.buf.subarray(0, 6))).toEqual(Buffer.from(macToBytes(MAC.client)));
    expect(Buffer.from(v.buf.subarray(6, 12))).toEqual(Buffer.from(macToBytes(MAC.dirOut)));
    expect(tcpAck(v)).toBe(1001);
    // the client's ACK to the engine: the connection, and the SYN to the real server
    const ack = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .tcp({ sport: 40000, dport: 80, flags: TCP_ACK, seq: 1001, ack: (tcpSeq(v) + 1) >>> 0 })
      .build();
    const fwd = run(e, ack, OUT, clock.nowMs);
    expect(fwd.egress).toBe(IN);
    expect(e.synproxy.cookiesValid).toBe(1);
  });

  it("leaves to lvsd a SYN on a tuple lvsd holds an entry for (the kernel's way), and answers it again once the entry is gone", () => {
    const c = e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 40000, ipToU32(IP.vip), 80);
    expect(c).toBeGreaterThanOrEqual(0);
    const k = heldIndex(ipToU32(IP.client) | 0, ipToU32(IP.vip) | 0, 40000, 80);
    expect(e.ct.held![k]).toBe(1);
    expect(xdp(syn(IP.client)).retval).toBe(XDP_PASS);
    expect(xdp(syn(IP.client, 40001)).retval).toBe(XDP_TX);
    e.ct.free(c);
    expect(e.ct.held![k]).toBe(0);
    expect(xdp(syn(IP.client)).retval).toBe(XDP_TX);
  });

  it("answers a remote client via the gateway's MAC, once the engine has it; none without", () => {
    r.sync();
    const a = xdp(syn(IP.remote, 40001, 80, IP.vip, MAC.router));
    expect(a.retval).toBe(XDP_TX);
    expect(Buffer.from(a.out!.buf.subarray(0, 6))).toEqual(Buffer.from(macToBytes(MAC.router)));
    e.net.neigh.remove(ipToU32(IP.router));
    r.sync();
    expect(xdp(syn(IP.remote, 40001, 80, IP.vip, MAC.router)).retval).toBe(XDP_PASS);
    e.net.neigh.learn(ipToU32(IP.router), macToBytes(MAC.router), 0, OUT, 0, true);
    r.sync();
    expect(xdp(syn(IP.remote, 40001, 80, IP.vip, MAC.router)).retval).toBe(XDP_TX);
  });

  it("leaves to lvsd a source routed out of the other link (rp_filter)", () => {
    r.sync();
    expect(xdp(syn(IP.rs1)).retval).toBe(XDP_PASS);
  });

  it("follows the services: a new SYN-proxy service, one without, one removed", () => {
    r.sync();
    expect(xdp(syn(IP.client, 40002, 81)).retval).toBe(XDP_PASS);
    e.table.addService(tcpKey(IP.vip, 81), {
      sched: "rr",
      flags: 0,
      timeout: 0,
      netmask: 0xffffffff,
      synProxy: true,
    });
    e.table.addService(tcpKey(IP.vip, 82), { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    r.sync();
    expect(xdp(syn(IP.client, 40002, 81)).retval).toBe(XDP_TX);
    expect(xdp(syn(IP.client, 40002, 82)).retval).toBe(XDP_PASS);
    e.table.deleteService(tcpKey(IP.vip, 81));
    r.sync();
    expect(xdp(syn(IP.client, 40002, 81)).retval).toBe(XDP_PASS);
  });

  it("answers nothing for a VIP it does not own (VRRP BACKUP), nor while mark rules exist", () => {
    e.owner.disown(ipToU32(IP.vip));
    r.sync();
    expect(xdp(syn(IP.client)).retval).toBe(XDP_PASS);
    e.owner.own(ipToU32(IP.vip));
    r.sync();
    expect(xdp(syn(IP.client)).retval).toBe(XDP_TX);
    e.marks.append(markRule({ dst: ipToU32(IP.vip), dstMask: 0xffffffff, proto: IPPROTO_UDP, value: 7 }));
    r.sync();
    expect(xdp(syn(IP.client)).retval).toBe(XDP_PASS);
    e.marks.flush();
    r.sync();
    expect(xdp(syn(IP.client)).retval).toBe(XDP_TX);
  });

  it("takes a rotated secret: its cookies are the engine's new ones", () => {
    e.synproxy.rotate(0x1234567, 0x7654321);
    r.sync();
    const v = xdp(syn(IP.client, 40003)).out!;
    const want = e.synproxy.make(
      ipToU32(IP.client) | 0,
      ipToU32(IP.vip) | 0,
      40003,
      80,
      1000,
      3,
      clock.nowMs,
    );
    expect(tcpSeq(v)).toBe(want >>> 0);
  });

  it("adds its SYN-ACKs to xdp_cookies_sent and its martian drops to martian_src", () => {
    r.sync();
    const sent0 = e.synproxy.xdpCookiesSent;
    const martian0 = e.drops[Drop.MARTIAN_SRC]!;
    for (let k = 0; k < 3; k++) expect(xdp(syn(IP.client, 41000 + k)).retval).toBe(XDP_TX);
    expect(xdp(syn("127.0.0.9")).retval).toBe(XDP_DROP);
    r.sync();
    expect(e.synproxy.xdpCookiesSent - sent0).toBe(3);
    expect(e.drops[Drop.MARTIAN_SRC]! - martian0).toBe(1);
    expect(e.synproxy.counterRows()).toContainEqual(["xdp_cookies_sent", e.synproxy.xdpCookiesSent]);
  });
});
