/**
 * The established-flow fast path (src/datapath/fastpath.ts) must give exactly what the general
 * path gives. Two engines built alike, one with the fast path off, get the same random traffic
 * (handshakes, data, FINs and RSTs both ways, UDP, malformed and foreign frames, expiry, dests
 * removed and re-added, neighbours lost and re-learned with a new MAC, secure_tcp); after every
 * batch their frames, verdicts, generated frames, drop counters, connection table and service
 * and dest counters must be equal, and the fast path must have taken some of the frames (4-6 %, by seed).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TcpState } from "../../../src/datapath/conntrack/states.js";
import { Drop } from "../../../src/datapath/drops.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { csumAdd, csumFold16 } from "../../../src/datapath/packet/checksum.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";

const ipToBytes = (a: string) => Uint8Array.from(a.split(".").map(Number));

import { FwdMethod, SVC_F_ONEPACKET } from "../../../src/tables/model.js";
import { addNatDest, addService, IN, IP, MAC, natEngine, OUT, tcpKey, udpKey } from "./helpers.js";

const CLIENTS = ["10.0.0.7", "10.0.0.8", "198.51.100.9"];
const RS = [IP.rs1, IP.rs2];
const RS_MAC = [MAC.rs1, MAC.rs2];

const LADDR = "192.168.10.200";
const FULLNAT_PORT = 8000;

function build(
  fastPath: boolean,
  secureTcp: boolean,
  expireNodest: boolean,
  onePacket = false,
  proxy = 0,
): Engine {
  const e = natEngine({ maxConns: 256 });
  e.fastPath = fastPath;
  e.sysctl.expireNodestConn = expireNodest ? 1 : 0;
  e.ct.setSecureTcp(secureTcp);
  addService(e, tcpKey());
  addNatDest(e, tcpKey(), IP.rs1, 80);
  addNatDest(e, tcpKey(), IP.rs2, 8080);
  e.table.addService(udpKey(), {
    sched: "rr",
    flags: onePacket ? SVC_F_ONEPACKET : 0,
    timeout: 0,
    netmask: 0xffffffff,
  });
  addNatDest(e, udpKey(), IP.rs1, 53);
  addNatDest(e, udpKey(), IP.rs2, 5353);
  // a DR service: its frames must never take the (NAT-only) fast path, and still match
  addService(e, tcpKey(IP.vip, 443));
  e.table.addDest(tcpKey(IP.vip, 443), {
    addr: ipToU32(IP.rs1),
    port: 443,
    weight: 1,
    fwd: FwdMethod.ROUTE,
    uThreshold: 0,
    lThreshold: 0,
  });
  // a FULLNAT service (with the PROXY protocol in some runs: then the fast path must leave it)
  const fk = tcpKey(IP.vip, FULLNAT_PORT);
  e.table.addService(fk, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, proxyProtocol: proxy });
  e.table.addLaddr(fk, ipToU32(LADDR));
  e.table.addDest(fk, {
    addr: ipToU32(IP.rs2),
    port: FULLNAT_PORT,
    weight: 1,
    fwd: FwdMethod.FULLNAT,
    uThreshold: 0,
    lThreshold: 0,
  });
  return e;
}

type Ev =
  | {
      k: "frame";
      up: boolean;
      client: number;
      cport: number;
      rs: number;
      udp: boolean;
      dport: number;
      flags: number;
      data: number;
      ttl: number;
      bad: number;
    }
  | { k: "time"; ms: number }
  | { k: "dest"; rs: number }
  | { k: "neigh"; rs: number; mac: number }
  | { k: "nodest" };

const FLAGS = [
  TCP_SYN,
  TCP_ACK,
  TCP_ACK | TCP_PSH,
  TCP_FIN | TCP_ACK,
  TCP_RST,
  TCP_SYN | TCP_ACK,
  0,
  TCP_ACK | 0x20,
];

const evArb: fc.Arbitrary<Ev> = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.record({
      k: fc.constant("frame" as const),
      up: fc.boolean(),
      client: fc.oneof(
        { weight: 6, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.nat(CLIENTS.length - 1) },
      ),
      cport: fc.integer({ min: 40000, max: 40001 }),
      rs: fc.nat(1),
      udp: fc.boolean(),
      dport: fc.constantFrom(80, 80, 80, 443, 53, FULLNAT_PORT, FULLNAT_PORT),
      flags: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...FLAGS, TCP_SYN) },
        { weight: 4, arbitrary: fc.constantFrom(TCP_ACK, TCP_ACK | TCP_PSH) },
      ),
      data: fc.constantFrom(0, 1, 100, 1460, 1500),
      ttl: fc.constantFrom(64, 64, 64, 64, 64, 64, 2, 1),
      // 0: clean; 1 bad IP checksum; 2 foreign MAC; 3 IP options; 4 first fragment; 5 truncated;
      // 6 VLAN; 7 UDP checksum 0; 8 a later fragment (of the first fragment, same IP id)
      bad: fc.oneof(
        { weight: 12, arbitrary: fc.constant(0) },
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 8 }) },
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("time" as const),
      ms: fc.constantFrom(10, 1000, 130_000, 1_000_000),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("dest" as const), rs: fc.nat(1) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("neigh" as const), rs: fc.nat(1), mac: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("nodest" as const) }) },
);

/**
 * The frame for event `e`. A FULLNAT reply goes to the local address and port that `en` gave the
 * client's connection (the client's own port when it has none: a stray reply).
 */
function frameOf(e: Extract<Ev, { k: "frame" }>, en?: Engine): { frame: Uint8Array; link: number } {
  const client = CLIENTS[e.client]!;
  const payload = new Uint8Array(e.data).fill(0x61);
  const vport = e.udp ? 53 : e.dport;
  const fullnat = vport === FULLNAT_PORT;
  const rport = e.udp ? (e.rs === 0 ? 53 : 5353) : vport === 443 || fullnat ? vport : e.rs === 0 ? 80 : 8080;
  let lport = e.cport;
  if (fullnat && !e.up && en !== undefined) {
    // (a scan, not lookupIn: a lookup frees an expired entry it meets, and only in this engine)
    const ct = en.ct;
    for (let c = 0; c < ct.capacity; c++)
      if (
        ct.flags[c] !== 0 &&
        ct.caddr[c] === ipToU32(client) &&
        ct.cport[c] === e.cport &&
        ct.vport[c] === vport
      )
        lport = ct.lport[c]!;
  }
  let b = eth({
    src: e.up ? MAC.client : RS_MAC[e.rs]!,
    dst: e.bad === 2 ? "02:00:00:00:00:99" : e.up ? MAC.dirOut : MAC.dirIn,
  });
  if (e.bad === 6) b = b.vlan(7);
  const ip = {
    src: e.up ? client : RS[e.rs]!,
    dst: e.up ? IP.vip : fullnat ? LADDR : client,
    ttl: e.ttl,
    id: 0x4242,
    ...(e.bad === 3 ? { options: [1, 1, 1, 0] } : {}),
    ...(e.bad === 4 ? { mf: true } : {}),
    ...(e.bad === 8 ? { fragOff: 3 } : {}),
  };
  const sport = e.up ? e.cport : rport;
  const dport = e.up ? vport : fullnat ? lport : e.cport;
  const f = (
    e.udp
      ? b.ipv4(ip).udp({ sport, dport, ...(e.bad === 7 ? { noCsum: true } : {}) })
      : b.ipv4(ip).tcp({
          sport,
          dport,
          seq: (e.flags & TCP_SYN) !== 0 ? 1000 : 1001,
          ack: 2001,
          flags: e.flags,
          window: 512,
        })
  )
    .payload(payload)
    .build({ badIpCsum: e.bad === 1 });
  return { frame: e.bad === 5 ? f.subarray(0, Math.max(20, f.length - 30)) : f, link: e.up ? OUT : IN };
}

/**
 * A generated frame without its IP identification and header checksum: the identification
 * counter is one per process (per thread in lvsd), so the two engines here draw different ones.
 */
function generated(f: Uint8Array): string {
  const c = Uint8Array.from(f);
  c.fill(0, 18, 20);
  c.fill(0, 24, 26);
  return Buffer.from(c).toString("hex");
}

/** Everything observable about an engine's tables and counters. */
function state(e: Engine): unknown {
  const ct = e.ct;
  const conns: unknown[] = [];
  for (let i = 0; i < ct.capacity; i++) {
    if (ct.flags[i] === 0) continue;
    conns.push([
      i,
      ct.flags[i],
      ct.state[i],
      ct.expiresAt(i),
      ct.inPkts[i],
      ct.daddr[i],
      ct.dport[i],
      ct.dest[i],
    ]);
  }
  const svcs = e.table.services.map((s) =>
    s ? [s.conns, s.inPkts, s.outPkts, s.inBytes, s.outBytes] : null,
  );
  const dests = e.table.dests.map((d) =>
    d
      ? [d.addr, d.conns, d.activeConns, d.inactConns, d.inPkts, d.outPkts, d.inBytes, d.outBytes, d.flags]
      : null,
  );
  return {
    conns,
    svcs,
    dests,
    drops: [...e.drops],
    kinds: [...ct.kindCounts],
    embryonic: ct.embryonic,
    forwarded: e.forwarded,
    queued: e.queued,
    count: ct.count,
  };
}

function apply(e: Engine, ev: Ev, clock: { now: number }): void {
  if (ev.k === "time") return;
  if (ev.k === "nodest") {
    e.sysctl.expireNodestConn ^= 1;
    return;
  }
  if (ev.k === "dest") {
    const key = tcpKey();
    const svc = e.table.find(key)!;
    const rip = ipToU32(RS[ev.rs]!);
    const port = ev.rs === 0 ? 80 : 8080;
    if (svc.dests.some((d) => d.addr === rip)) e.table.deleteDest(key, rip, port);
    else addNatDest(e, key, RS[ev.rs]!, port);
    return;
  }
  if (ev.k === "neigh") {
    const rip = ipToU32(RS[ev.rs]!);
    if (ev.mac === 0) e.net.neigh.remove(rip);
    else e.net.neigh.learn(rip, macToBytes(`02:00:00:00:02:${ev.mac}${ev.rs}`), 0, IN, clock.now, true);
  }
}

type FrameEv = Extract<Ev, { k: "frame" }>;

/** A frame of client 0's flow from port 40000: from the client (`up`) or from real server 1. */
function flow(up: boolean, flags: number, over: Partial<FrameEv> = {}, en?: Engine) {
  const ev: FrameEv = {
    k: "frame",
    up,
    client: 0,
    cport: 40000,
    rs: 0,
    udp: false,
    dport: 80,
    flags,
    data: 10,
    ttl: 64,
    bad: 0,
    ...over,
  };
  return frameOf(ev, en);
}

/** Run one frame through `e`: its egress, the bytes as forwarded, the bytes as sent. */
function runOne(e: Engine, f: { frame: Uint8Array; link: number }) {
  const b = new FrameBatch(2);
  b.push(f.frame, f.link);
  e.process(b, 2000);
  return { egress: b.egress[0], out: b.frame(0), sent: f.frame };
}

describe("the established-flow fast path", () => {
  it("gives the general path's frames, verdicts, tables and counters on random traffic", () => {
    let taken = 0;
    let frames = 0;
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.constantFrom(0, 0, 1, 2),
        fc.array(fc.array(evArb, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 40 }),
        (secure, expireNodest, onePacket, proxy, rounds) => {
          const fastE = build(true, secure, expireNodest, onePacket, proxy);
          const slowE = build(false, secure, expireNodest, onePacket, proxy);
          const clock = { now: 1000 };
          for (const round of rounds) {
            const bf = new FrameBatch(16);
            const bs = new FrameBatch(16);
            for (const ev of round) {
              if (ev.k === "time") clock.now += ev.ms;
              if (ev.k !== "frame") {
                apply(fastE, ev, clock);
                apply(slowE, ev, clock);
                continue;
              }
              const { frame, link } = frameOf(ev, slowE);
              bf.push(frame, link);
              bs.push(frame, link);
            }
            fastE.process(bf, clock.now);
            slowE.process(bs, clock.now);
            frames += bf.count;
            for (let i = 0; i < bf.count; i++) {
              expect(bf.egress[i]).toBe(bs.egress[i]);
              expect(Buffer.from(bf.frame(i)).equals(Buffer.from(bs.frame(i)))).toBe(true);
            }
            expect(fastE.egressMask).toBe(slowE.egressMask);
            expect(fastE.tx.count).toBe(slowE.tx.count);
            for (let j = 0; j < fastE.tx.count; j++)
              expect(generated(fastE.tx.frame(j))).toBe(generated(slowE.tx.frame(j)));
            expect(state(fastE)).toEqual(state(slowE));
          }
          expect(slowE.fast.taken).toBe(0);
          taken += fastE.fast.taken;
        },
      ),
      { numRuns: 150 },
    );
    // the property is about the fast path only if it ran: a share of the frames took it
    // (4-6 % of the frames over 150 runs, by seed; the directed tests below take it for sure)
    expect(taken).toBeGreaterThan(frames / 100);
  });

  it("takes an established NAT flow's data both ways, and follows a neighbour's new MAC", () => {
    const e = build(true, false, true);
    e.table.deleteDest(tcpKey(), ipToU32(IP.rs2), 8080); // every connection to rs1
    expect(runOne(e, flow(true, TCP_SYN)).egress).toBe(IN);
    expect(runOne(e, flow(false, TCP_SYN | TCP_ACK)).egress).toBe(OUT);
    expect(e.fast.taken).toBe(0); // the handshake is the general path's
    expect(runOne(e, flow(true, TCP_ACK)).egress).toBe(IN); // SYN_RECV -> ESTABLISHED: general path too
    expect(e.fast.taken).toBe(0);
    const a = runOne(e, flow(true, TCP_ACK | TCP_PSH));
    expect(a.egress).toBe(IN);
    expect(e.fast.taken).toBe(1);
    expect(Buffer.from(a.out.subarray(0, 6)).equals(Buffer.from(macToBytes(MAC.rs1)))).toBe(true);
    expect(runOne(e, flow(false, TCP_ACK)).egress).toBe(OUT);
    expect(e.fast.taken).toBe(2);
    // the real server's MAC changes: the next frame goes to the new one (setL2's cache re-checks)
    e.net.neigh.learn(ipToU32(IP.rs1), macToBytes("02:00:00:00:02:21"), 0, IN, 2000, true);
    const b = runOne(e, flow(true, TCP_ACK));
    expect(Buffer.from(b.out.subarray(0, 6)).equals(Buffer.from(macToBytes("02:00:00:00:02:21")))).toBe(true);
    // gone: the frame waits for ARP (general path), the director asks for it
    e.net.neigh.remove(ipToU32(IP.rs1));
    const before = e.queued;
    expect(runOne(e, flow(true, TCP_ACK)).egress).toBe(-1);
    expect(e.queued).toBe(before + 1);
    expect(e.fast.taken).toBe(3);
    e.net.neigh.learn(ipToU32(IP.rs1), macToBytes(MAC.rs1), 0, IN, 2000, true);
    expect(runOne(e, flow(true, TCP_ACK)).egress).toBe(IN);
    expect(e.fast.taken).toBe(4);
    // the dest is removed: with expire_nodest_conn 0 the general path still forwards the flow's
    // frames; set to 1, the next frame ends the connection (drop nodest_conn)
    e.sysctl.expireNodestConn = 0;
    e.table.deleteDest(tcpKey(), ipToU32(IP.rs1), 80);
    expect(runOne(e, flow(true, TCP_ACK)).egress).toBe(IN);
    expect(e.fast.taken).toBe(4);
    e.sysctl.expireNodestConn = 1;
    expect(runOne(e, flow(true, TCP_ACK)).egress).toBe(-1);
    expect(e.drops[Drop.NODEST_CONN]).toBe(1);
    expect(e.fast.taken).toBe(4);
  });

  it("takes a DR flow's established inbound frames, untouched but for the MACs", () => {
    const e = build(true, false, true);
    runOne(e, flow(true, TCP_SYN, { dport: 443 }));
    runOne(e, flow(true, TCP_ACK, { dport: 443 })); // SYN_RECV -> ESTABLISHED (input-only table)
    expect(e.fast.taken).toBe(0);
    const r = runOne(e, flow(true, TCP_ACK | TCP_PSH, { dport: 443 }));
    expect(e.fast.taken).toBe(1);
    expect(r.egress).toBe(IN);
    expect(Buffer.from(r.out.subarray(0, 6)).equals(Buffer.from(macToBytes(MAC.rs1)))).toBe(true);
    expect(Buffer.from(r.out.subarray(14)).equals(Buffer.from(r.sent.subarray(14)))).toBe(true);
    expect(e.table.find(tcpKey(IP.vip, 443))!.inPkts).toBe(3);
  });

  it.each([0, 1])(
    "takes a FULLNAT flow's established frames both ways, as the general path rewrites them (PROXY protocol %i: not taken)",
    (proxy) => {
      const fastE = build(true, false, true, false, proxy);
      const slowE = build(false, false, true, false, proxy);
      const both = (up: boolean, flags: number) => {
        const f = flow(up, flags, { rs: 1, dport: FULLNAT_PORT }, slowE);
        const outs = [fastE, slowE].map((e) => {
          const r = runOne(e, f);
          return { egress: r.egress, out: Buffer.from(r.out) };
        });
        expect(outs[0]).toEqual(outs[1]);
        return outs[0]!;
      };
      both(true, TCP_SYN);
      both(false, TCP_SYN | TCP_ACK);
      both(true, TCP_ACK);
      expect(fastE.fast.taken).toBe(0);
      const a = both(true, TCP_ACK | TCP_PSH);
      expect(a.egress).toBe(IN);
      if (proxy !== 0) {
        // the header went in front of the first data, and no frame of the connection is the fast path's
        expect(a.out.includes(Buffer.from("PROXY TCP4 10.0.0.7 10.0.0.100 40000 8000\r\n"))).toBe(true);
        expect(both(false, TCP_ACK).egress).toBe(OUT);
        expect(both(true, TCP_ACK | TCP_PSH).egress).toBe(IN);
        expect(fastE.fast.taken).toBe(0);
        return;
      }
      expect(fastE.fast.taken).toBe(1);
      // to the real server from the local address
      expect(a.out.subarray(14 + 12, 14 + 16).equals(Buffer.from(ipToBytes(LADDR)))).toBe(true);
      const r = both(false, TCP_ACK);
      expect(r.egress).toBe(OUT);
      expect(fastE.fast.taken).toBe(2);
      expect(r.out.subarray(14 + 16, 14 + 20).equals(Buffer.from(ipToBytes(CLIENTS[0]!)))).toBe(true);
    },
  );

  it("setL2's next-hop cache forgets its routes when a route is added", () => {
    const net = natEngine().net;
    const buf = new Uint8Array(14);
    const remote = ipToU32("198.51.100.9");
    // via the default route: the router's MAC (and the entry is cached)
    expect(net.setL2(buf, 0, remote)).toBe(OUT);
    expect(Buffer.from(buf.subarray(0, 6)).equals(Buffer.from(macToBytes(MAC.router)))).toBe(true);
    expect(net.setL2(buf, 0, remote)).toBe(OUT);
    // a more specific route through a second router: the next frame goes to that router
    net.neigh.learn(ipToU32("10.0.0.253"), macToBytes("02:00:00:00:00:fd"), 0, OUT, 0, true);
    net.addRoute(ipToU32("198.51.100.0"), 24, ipToU32("10.0.0.253"));
    expect(net.setL2(buf, 0, remote)).toBe(OUT);
    expect(Buffer.from(buf.subarray(0, 6)).equals(Buffer.from(macToBytes("02:00:00:00:00:fd")))).toBe(true);
    expect(net.nextHop >>> 0).toBe(ipToU32("10.0.0.253"));
  });

  it("a UDP checksum that the rewrite brings to zero is sent as 0xffff, as on the general path", () => {
    const frame = (word: number) => {
      const data = new Uint8Array(8);
      data[0] = word >>> 8;
      data[1] = word & 0xff;
      return eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: "10.0.0.7", dst: IP.vip, ttl: 64, id: 1 })
        .udp({ sport: 40000, dport: 53 })
        .payload(data)
        .build();
    };
    const run = (e: Engine, f: Uint8Array) => {
      const b = new FrameBatch(2);
      b.push(f, OUT);
      e.process(b, 2000);
      return b.frame(0);
    };
    const mk = (fast: boolean) => {
      const e = build(fast, false, true);
      e.table.deleteDest(udpKey(), ipToU32(IP.rs2), 5353);
      return e;
    };
    const fastE = mk(true);
    const slowE = mk(false);
    // With the payload word 0 the forwarded datagram carries checksum X; with the word X instead
    // the rewrite's result is X - X = zero, which UDP must send as 0xffff (0 means "none").
    const x = new DataView(run(slowE, frame(0)).buffer).getUint16(14 + 20 + 6);
    run(fastE, frame(0));
    const taken = fastE.fast.taken;
    const a = run(fastE, frame(x));
    const b = run(slowE, frame(x));
    expect(fastE.fast.taken).toBe(taken + 1);
    expect(new DataView(a.buffer, a.byteOffset).getUint16(14 + 20 + 6)).toBe(0xffff);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    // and the datagram's checksum verifies
    const ip = 14;
    const pseudo = new Uint8Array(12);
    pseudo.set(a.subarray(ip + 12, ip + 20), 0);
    pseudo[9] = 17;
    pseudo[10] = 0;
    pseudo[11] = 16;
    expect(csumFold16(csumAdd(a, ip + 20, 16, csumAdd(pseudo, 0, 12, 0)))).toBe(0xffff);
  });

  it("a connection to a martian source (say, from a sync peer) is dropped as martian, not forwarded", () => {
    const e = build(true, false, true);
    const d = e.table.find(tcpKey())!.dests[0]!;
    const client = ipToU32("127.0.0.5");
    const c = e.ct.create(
      6,
      client,
      40000,
      ipToU32(IP.vip),
      80,
      d.addr,
      d.port,
      client,
      40000,
      FwdMethod.MASQ,
      false,
      d,
      0,
      -1,
    );
    e.ct.setSynced(c, TcpState.ESTABLISHED, false, 1e9);
    const b = new FrameBatch(2);
    b.push(
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: "127.0.0.5", dst: IP.vip, ttl: 64, id: 1 })
        .tcp({ sport: 40000, dport: 80, seq: 1, ack: 1, flags: TCP_ACK, window: 512 })
        .build(),
      OUT,
    );
    e.process(b, 2000);
    expect(b.egress[0]).toBe(-1);
    expect(e.drops[Drop.MARTIAN_SRC]).toBe(1);
    expect(e.fast.taken).toBe(0);
  });
});
