/**
 * The SYN proxy in the engine (src/datapath/synproxy.ts): input frame -> output frames and
 * verdicts, NAT and FULLNAT. Every output's IP and TCP checksums are checked by full recompute
 * (parseFrame refuses a bad IP checksum; checkL4Checksum sums the segment again).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run as run_ } from "../../../src/control/commands.js";
import { HELD_SLOTS, heldIndex } from "../../../src/datapath/conntrack/held.js";
import { TcpState } from "../../../src/datapath/conntrack/states.js";
import { Drop } from "../../../src/datapath/drops.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { eth, ipv4 } from "../../../src/datapath/packet/build.js";
import {
  checkL4Checksum,
  L4Csum,
  parseFrame,
  tcpAck,
  tcpSeq,
  tcpWindow,
} from "../../../src/datapath/packet/parse.js";
import {
  FrameView,
  ICMP_DEST_UNREACH,
  ICMP_FRAG_NEEDED,
  ICMP_PORT_UNREACH,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
} from "../../../src/datapath/packet/view.js";
import { COOKIE_PERIOD_MS, keyedHash, SYNACK_WINDOW, SynProxy } from "../../../src/datapath/synproxy.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { hex, IN, IP, MAC, natEngine, OUT, run, synProxyEngine, tcpKey } from "./helpers.js";

const LADDR = "192.168.10.200";

function spEngine(fwd: FwdMethod = FwdMethod.MASQ): Engine {
  return synProxyEngine(fwd, LADDR);
}

/** Parse a frame, checking the IP checksum (parseFrame) and the TCP checksum by full recompute. */
function parse(f: Uint8Array): FrameView {
  const v = new FrameView();
  expect(parseFrame(f, new DataView(f.buffer, f.byteOffset, f.byteLength), 0, f.length, v)).toBe(0);
  expect(checkL4Checksum(v)).toBe(L4Csum.OK);
  return v;
}

function payloadOf(v: FrameView): string {
  return Buffer.from(v.buf.subarray(v.payloadOff, v.l3Off + v.ipTotalLen)).toString();
}

const fromClient = (flags: number, seq: number, ack: number, data = "", mss?: number, sport = 40000) =>
  eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip, id: 99 })
    .tcp({ sport, dport: 80, seq, ack, flags, window: 29200, ...(mss !== undefined ? { mss } : {}) })
    .payload(data)
    .build();

const fromRs = (
  dst: string,
  flags: number,
  dport: number,
  seq: number,
  ack: number,
  data = "",
  mss?: number,
) =>
  eth({ src: MAC.rs1, dst: MAC.dirIn })
    .ipv4({ src: IP.rs1, dst, id: 5 })
    .tcp({ sport: 8080, dport, seq, ack, flags, window: 65000, ...(mss !== undefined ? { mss } : {}) })
    .payload(data)
    .build();

describe("SYN proxy: the handshake and the splice", () => {
  it.each([
    ["NAT", FwdMethod.MASQ],
    ["FULLNAT", FwdMethod.FULLNAT],
  ] as const)(
    "%s: cookie SYN-ACK, ACK -> SYN to the server, SYN-ACK -> ACK and data, shifted both ways",
    (_n, fwd) => {
      const e = spEngine(fwd);
      const now = 5_000_000;
      // 1. SYN: answered by the director, no entry
      const syn = run(e, fromClient(TCP_SYN, 1000, 0, "", 1460), OUT, now);
      expect(syn.egress).toBe(-1);
      expect(syn.generated).toHaveLength(1);
      expect(syn.generated[0]![0]).toBe(OUT);
      const sa = parse(syn.generated[0]![1]);
      expect([sa.saddr, sa.daddr, sa.sport, sa.dport]).toEqual([
        ipToU32(IP.vip),
        ipToU32(IP.client),
        80,
        40000,
      ]);
      expect(sa.tcpFlags).toBe(TCP_SYN | TCP_ACK);
      expect(tcpAck(sa)).toBe(1001);
      expect(sa.mss).toBe(1460);
      expect(sa.tcpHdrLen).toBe(24); // MSS only: no window scaling, SACK or timestamps
      expect(tcpWindow(sa)).toBe(SYNACK_WINDOW);
      expect(e.ct.count).toBe(0);
      const cookie = tcpSeq(sa);

      // 2. the client's ACK proves the cookie: the connection, and the ACK turned into the SYN
      const ack = run(e, fromClient(TCP_ACK, 1001, cookie + 1), OUT, now + 10);
      expect(ack.egress).toBe(IN);
      const s = parse(ack.out);
      expect(s.tcpFlags).toBe(TCP_SYN);
      expect(tcpSeq(s)).toBe(1000);
      expect(s.mss).toBe(1460);
      expect(s.tcpHdrLen).toBe(24);
      expect(s.ttl).toBe(63);
      expect([s.daddr, s.dport]).toEqual([ipToU32(IP.rs1), 8080]);
      if (fwd === FwdMethod.FULLNAT) expect(s.saddr).toBe(ipToU32(LADDR));
      else expect([s.saddr, s.sport]).toEqual([ipToU32(IP.client), 40000]);
      const laddr = fwd === FwdMethod.FULLNAT ? LADDR : IP.client;
      const lport = s.sport;
      expect(e.ct.count).toBe(1);
      expect(e.ct.state[0] ?? e.ct.state[e.ct.capacity - 1]).toBeDefined();

      // 3. the request, before the server has answered: kept
      const req = "GET / HTTP/1.0\r\n\r\n";
      const early = run(e, fromClient(TCP_ACK | TCP_PSH, 1001, cookie + 1, req), OUT, now + 11);
      expect(early.egress).toBe(-1);
      expect(early.generated).toHaveLength(0);

      // 4. the server's SYN-ACK: absorbed; the ACK and the request go to the server, acknowledging its ISN
      const srvIsn = 0xfffffff0; // wraps: the offset is 32-bit arithmetic
      const ssa = run(e, fromRs(laddr, TCP_SYN | TCP_ACK, lport, srvIsn, 1001, "", 1400), IN, now + 12);
      expect(ssa.egress).toBe(-1);
      expect(ssa.generated.map((g) => g[0])).toEqual([IN, IN]);
      const a1 = parse(ssa.generated[0]![1]);
      const a2 = parse(ssa.generated[1]![1]);
      for (const a of [a1, a2]) {
        expect([a.daddr, a.dport, a.saddr, a.sport]).toEqual([ipToU32(IP.rs1), 8080, ipToU32(laddr), lport]);
        expect(tcpAck(a)).toBe((srvIsn + 1) >>> 0);
        expect(tcpSeq(a)).toBe(1001);
        expect(a.ttl).toBe(63);
      }
      expect(a1.tcpFlags).toBe(TCP_ACK);
      expect(payloadOf(a2)).toBe(req);

      // 5. the server's answer reaches the client in the cookie's sequence space
      const resp = "HTTP/1.0 200 OK\r\n\r\nhello";
      const r1 = run(
        e,
        fromRs(laddr, TCP_ACK | TCP_PSH, lport, srvIsn + 1, 1001 + req.length, resp),
        IN,
        now + 13,
      );
      expect(r1.egress).toBe(OUT);
      const rv = parse(r1.out);
      expect([rv.saddr, rv.sport, rv.daddr, rv.dport]).toEqual([
        ipToU32(IP.vip),
        80,
        ipToU32(IP.client),
        40000,
      ]);
      expect(tcpSeq(rv)).toBe((cookie + 1) >>> 0);
      expect(tcpAck(rv)).toBe(1001 + req.length);
      expect(payloadOf(rv)).toBe(resp);

      // 6. and the client's acknowledgements reach the server in its own
      const cf = run(
        e,
        fromClient(TCP_ACK | TCP_FIN, 1001 + req.length, (cookie + 1 + resp.length) >>> 0),
        OUT,
        now + 14,
      );
      expect(cf.egress).toBe(IN);
      const cv = parse(cf.out);
      expect(tcpAck(cv)).toBe((srvIsn + 1 + resp.length) >>> 0);
      expect(tcpSeq(cv)).toBe(1001 + req.length);
      expect(e.synproxy.handshakes).toBe(1);
      expect(e.synproxy.cookiesValid).toBe(1);
      expect(run_(["--synproxy-stats"], new EngineControl(e)).stdout).toBe(
        "cookies_sent                 1\ncookies_valid                1\nhandshakes                   1\nserver_resets                0\nstale_server_conns           0\nxdp_cookies_sent             0\n",
      );
    },
  );

  it("an ACK proving a cookie on a closing entry of its tuple starts a new connection (its SYN was answered in XDP)", () => {
    const e = spEngine();
    const now = 7_000_000;
    const cookie = tcpSeq(parse(run(e, fromClient(TCP_SYN, 1000, 0, "", 1460), OUT, now).generated[0]![1]));
    expect(run(e, fromClient(TCP_ACK, 1001, cookie + 1), OUT, now + 1).egress).toBe(IN);
    run(e, fromRs(IP.client, TCP_SYN | TCP_ACK, 40000, 777, 1001, "", 1400), IN, now + 1);
    expect(e.synproxy.handshakes).toBe(1);
    const c = e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 40000, ipToU32(IP.vip), 80);
    expect(c).toBeGreaterThanOrEqual(0);
    // the old connection ended (TIME_WAIT); the client reuses its port with ISN 5000, and the
    // SYN never reached the engine: only the ACK with the cookie the responder computed comes
    e.ct.state[c] = TcpState.TIME_WAIT;
    const forged = run(e, fromClient(TCP_ACK, 5001, 12345), OUT, now + 2);
    expect(forged.egress).toBe(IN); // no cookie: it belongs to the old entry, forwarded as it is
    expect(parse(forged.out).tcpFlags).toBe(TCP_ACK);
    const c2 = e.synproxy.make(ipToU32(IP.client) | 0, ipToU32(IP.vip) | 0, 40000, 80, 5000, 3, now + 3);
    const ack = run(e, fromClient(TCP_ACK, 5001, (c2 + 1) >>> 0), OUT, now + 3);
    expect(ack.egress).toBe(IN);
    const syn = parse(ack.out);
    expect(syn.tcpFlags).toBe(TCP_SYN);
    expect(tcpSeq(syn)).toBe(5000);
    expect(e.synproxy.cookiesValid).toBe(2);
    const n = e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 40000, ipToU32(IP.vip), 80);
    expect(e.ct.state[n]).not.toBe(TcpState.TIME_WAIT);
    expect(e.ct.count).toBe(1);
  });

  it("the client's last ACK of a connection closed with no data is its own, not a new connection's", () => {
    const e = spEngine();
    const now = 8_000_000;
    const cookie = tcpSeq(parse(run(e, fromClient(TCP_SYN, 2000, 0, "", 1460), OUT, now).generated[0]![1]));
    run(e, fromClient(TCP_ACK, 2001, cookie + 1), OUT, now + 1);
    run(e, fromRs(IP.client, TCP_SYN | TCP_ACK, 40000, 900, 2001, "", 1400), IN, now + 1);
    // the client closes at once, the server too, the client acknowledges the server's FIN
    expect(run(e, fromClient(TCP_FIN | TCP_ACK, 2001, cookie + 1), OUT, now + 2).egress).toBe(IN);
    expect(run(e, fromRs(IP.client, TCP_FIN | TCP_ACK, 40000, 901, 2002), IN, now + 2).egress).toBe(OUT);
    const c = e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 40000, ipToU32(IP.vip), 80);
    expect(e.ct.state[c]).toBe(TcpState.TIME_WAIT);
    // seq and ack both one past the FINs: this ACK also proves the cookie (ISN + 1, cookie + 1)
    expect(
      e.synproxy.check(ipToU32(IP.client) | 0, ipToU32(IP.vip) | 0, 40000, 80, 2001, cookie + 1, now + 3),
    ).toBeGreaterThanOrEqual(0);
    const last = run(e, fromClient(TCP_ACK, 2002, cookie + 2), OUT, now + 3);
    expect(last.egress).toBe(IN);
    const fwd = parse(last.out);
    expect(fwd.tcpFlags).toBe(TCP_ACK); // passed on to the server as it is, not turned into a SYN
    expect(tcpAck(fwd)).toBe(902);
    expect(e.synproxy.cookiesValid).toBe(1);
    expect(e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 40000, ipToU32(IP.vip), 80)).toBe(c);
    expect(e.ct.state[c]).toBe(TcpState.TIME_WAIT);
  });

  it("counts its connections in the XDP responder's held array from the client's ACK until they close or go; 255 stays", () => {
    const e = spEngine();
    const held = new Uint8Array(HELD_SLOTS);
    e.ct.held = held;
    const slot = (sport: number) => heldIndex(ipToU32(IP.client) | 0, ipToU32(IP.vip) | 0, sport, 80);
    const entry = (sport: number) =>
      e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), sport, ipToU32(IP.vip), 80);
    const open = (sport: number): { cookie: number; lport: number } => {
      const sa = run(e, fromClient(TCP_SYN, 6000, 0, "", undefined, sport), OUT).generated[0]![1];
      const cookie = tcpSeq(parse(sa));
      expect(held[slot(sport)]).toBe(0); // the SYN leaves no entry
      const s = parse(run(e, fromClient(TCP_ACK, 6001, cookie + 1, "", undefined, sport), OUT).out);
      expect(held[slot(sport)]).toBe(1);
      return { cookie, lport: s.sport };
    };
    // spliced and established: held; closed with FINs both ways: TIME_WAIT, no longer held
    const a = open(41001);
    run(e, fromRs(IP.client, TCP_SYN | TCP_ACK, a.lport, 900, 6001, "", 1400), IN);
    expect(e.synproxy.handshakes).toBe(1);
    expect(held[slot(41001)]).toBe(1);
    run(e, fromClient(TCP_FIN | TCP_ACK, 6001, a.cookie + 1, "", undefined, 41001), OUT);
    run(e, fromRs(IP.client, TCP_FIN | TCP_ACK, a.lport, 901, 6002), IN);
    expect(e.ct.state[entry(41001)]).toBe(TcpState.TIME_WAIT);
    expect(held[slot(41001)]).toBe(0);
    e.ct.free(entry(41001));
    expect(held[slot(41001)]).toBe(0); // taken out once
    // the server's RST: CLOSE, no longer held
    const b = open(41002);
    run(e, fromRs(IP.client, TCP_RST | TCP_ACK, b.lport, 0, 6001), IN);
    expect(e.ct.state[entry(41002)]).toBe(TcpState.CLOSE);
    expect(held[slot(41002)]).toBe(0);
    // a pending one that goes (expiry, eviction): no longer held
    open(41003);
    e.ct.free(entry(41003));
    expect(held[slot(41003)]).toBe(0);
    // a slot at 255 stays there
    held[slot(41004)] = 255;
    run(
      e,
      fromClient(
        TCP_ACK,
        6001,
        tcpSeq(parse(run(e, fromClient(TCP_SYN, 6000, 0, "", undefined, 41004), OUT).generated[0]![1])) + 1,
        "",
        undefined,
        41004,
      ),
      OUT,
    );
    e.ct.free(entry(41004));
    expect(held[slot(41004)]).toBe(255);
  });

  it("an RST from the server becomes an RST to the client at the cookie's next sequence number", () => {
    const e = spEngine();
    const sa = parse(run(e, fromClient(TCP_SYN, 7000, 0, "", 1460), OUT).generated[0]![1]);
    const cookie = tcpSeq(sa);
    const s = parse(run(e, fromClient(TCP_ACK, 7001, cookie + 1), OUT).out);
    const rst = run(e, fromRs(IP.client, TCP_RST | TCP_ACK, s.sport, 0, 7001), IN);
    expect(rst.egress).toBe(OUT);
    const rv = parse(rst.out);
    expect(rv.tcpFlags & TCP_RST).toBe(TCP_RST);
    expect(tcpSeq(rv)).toBe((cookie + 1) >>> 0);
    expect(tcpAck(rv)).toBe(7001);
    expect([rv.saddr, rv.sport, rv.daddr]).toEqual([ipToU32(IP.vip), 80, ipToU32(IP.client)]);
    expect(e.synproxy.serverResets).toBe(1);
    let c = -1;
    for (const i of e.ct.slots()) c = i;
    expect(e.ct.state[c]).toBe(TcpState.CLOSE);
  });

  it.each([
    ["NAT", FwdMethod.MASQ],
    ["FULLNAT", FwdMethod.FULLNAT],
  ] as const)(
    "%s: a server still holding an older connection on the tuple answers the SYN with an ACK: an RST at that ACK's number ends it, the SYN goes again (once), the handshake completes",
    (_n, fwd) => {
      const e = spEngine(fwd);
      const now = 9_000_000;
      const cookie = tcpSeq(parse(run(e, fromClient(TCP_SYN, 3000, 0, "", 1460), OUT, now).generated[0]![1]));
      const s = parse(run(e, fromClient(TCP_ACK, 3001, cookie + 1), OUT, now + 1).out);
      const req = "GET / HTTP/1.0\r\n\r\n";
      expect(run(e, fromClient(TCP_ACK | TCP_PSH, 3001, cookie + 1, req), OUT, now + 2).egress).toBe(-1);
      const toRs = [s.saddr, s.sport, ipToU32(IP.rs1), 8080];
      // the server's challenge ACK (RFC 5961): its own sequence space of the old connection
      const challenge = fromRs(
        fwd === FwdMethod.FULLNAT ? LADDR : IP.client,
        TCP_ACK,
        s.sport,
        55555,
        424242,
      );
      const first = run(e, challenge, IN, now + 3);
      expect(first.egress).toBe(-1);
      expect(first.generated.map(([l]) => l)).toEqual([IN, IN]);
      const rst = parse(first.generated[0]![1]);
      expect([rst.saddr, rst.sport, rst.daddr, rst.dport]).toEqual(toRs);
      expect(rst.tcpFlags).toBe(TCP_RST);
      expect(tcpSeq(rst)).toBe(424242);
      expect(rst.ipTotalLen).toBe(40);
      const again = parse(first.generated[1]![1]);
      expect([again.saddr, again.sport, again.daddr, again.dport]).toEqual(toRs);
      expect(again.tcpFlags).toBe(TCP_SYN);
      expect(tcpSeq(again)).toBe(3000);
      expect(again.mss).toBe(1460);
      expect(tcpWindow(again)).toBe(29200);
      // a second one: the RST only (no SYN storm against a server that keeps answering so)
      const second = run(e, challenge, IN, now + 4);
      expect(second.generated).toHaveLength(1);
      expect(parse(second.generated[0]![1]).tcpFlags).toBe(TCP_RST);
      expect(e.synproxy.staleServerConns).toBe(2);
      expect(e.drops[Drop.SYNPROXY_BAD_SYNACK] ?? 0).toBe(0);
      // the old connection gone, the server answers the SYN: spliced, the request relayed
      const sa = run(
        e,
        fromRs(
          fwd === FwdMethod.FULLNAT ? LADDR : IP.client,
          TCP_SYN | TCP_ACK,
          s.sport,
          777,
          3001,
          "",
          1400,
        ),
        IN,
        now + 5,
      );
      expect(sa.egress).toBe(-1);
      expect(e.synproxy.handshakes).toBe(1);
      const relayed = sa.generated.map(([, f]) => parse(f));
      expect(relayed.some((r) => payloadOf(r) === req && tcpAck(r) === 778)).toBe(true);
    },
  );

  it("a SYN-ACK that does not acknowledge the client's ISN gets an RST at its ack; a segment with no ACK is dropped and counted", () => {
    const e = spEngine();
    const cookie = tcpSeq(parse(run(e, fromClient(TCP_SYN, 7000, 0), OUT).generated[0]![1]));
    const s = parse(run(e, fromClient(TCP_ACK, 7001, cookie + 1), OUT).out);
    expect(s.mss).toBe(536); // no MSS from the client: the smallest of the table
    const bad = run(e, fromRs(IP.client, TCP_SYN | TCP_ACK, s.sport, 1, 12345), IN);
    expect(bad.egress).toBe(-1);
    const rst = parse(bad.generated[0]![1]);
    expect([rst.tcpFlags, tcpSeq(rst)]).toEqual([TCP_RST, 12345]);
    expect(parse(bad.generated[1]![1]).tcpFlags).toBe(TCP_SYN);
    expect(e.synproxy.staleServerConns).toBe(1);
    const noAck = run(e, fromRs(IP.client, TCP_SYN, s.sport, 1, 0), IN);
    expect(noAck.egress).toBe(-1);
    expect(noAck.generated).toHaveLength(0);
    expect(e.drops[Drop.SYNPROXY_BAD_SYNACK]).toBe(1);
  });
});

describe("SYN proxy: cookies", () => {
  it("a bad or stale cookie is dropped and counted, the previous time slot still counts", () => {
    const e = spEngine();
    const t0 = 10 * COOKIE_PERIOD_MS + 5;
    const cookie = tcpSeq(parse(run(e, fromClient(TCP_SYN, 1000, 0, "", 1460), OUT, t0).generated[0]![1]));
    // wrong cookie, wrong ISN (the ISN is added into the cookie, as Linux's: an ISN a few lower
    // reads as another MSS index of the same tuple; 9 higher leaves none)
    expect(run(e, fromClient(TCP_ACK, 1001, cookie + 2), OUT, t0).egress).toBe(-1);
    expect(run(e, fromClient(TCP_ACK, 1010, cookie + 1), OUT, t0).egress).toBe(-1);
    // two slots later: too old
    expect(run(e, fromClient(TCP_ACK, 1001, cookie + 1), OUT, t0 + 2 * COOKIE_PERIOD_MS).egress).toBe(-1);
    expect(e.drops[Drop.SYN_COOKIE_BAD]).toBe(3);
    expect(e.ct.count).toBe(0);
    // one slot later: good
    expect(run(e, fromClient(TCP_ACK, 1001, cookie + 1), OUT, t0 + COOKIE_PERIOD_MS).egress).toBe(IN);
    expect(e.ct.count).toBe(1);
  });

  it("a rotated secret keeps the cookies made with the one before, not older", () => {
    const sp = new SynProxy(1, 2);
    const c = sp.make(0x0a000007, 0x0a000064, 40000, 80, 999, 3, 0);
    expect(sp.check(0x0a000007, 0x0a000064, 40000, 80, 999, c, 0)).toBe(3);
    sp.rotate(3, 4);
    expect(sp.check(0x0a000007, 0x0a000064, 40000, 80, 999, c, 0)).toBe(3);
    sp.rotate(5, 6);
    expect(sp.check(0x0a000007, 0x0a000064, 40000, 80, 999, c, 0)).toBe(-1);
  });

  it("the hash depends on every word and on the key", () => {
    const base = keyedHash(1, 2, 3, 4, 5, 6);
    const variants = [
      keyedHash(0, 2, 3, 4, 5, 6),
      keyedHash(1, 0, 3, 4, 5, 6),
      keyedHash(1, 2, 0, 4, 5, 6),
      keyedHash(1, 2, 3, 0, 5, 6),
      keyedHash(1, 2, 3, 4, 0, 6),
      keyedHash(1, 2, 3, 4, 5, 0),
    ];
    for (const x of variants) expect(x).not.toBe(base);
    expect(new Set(variants).size).toBe(variants.length);
  });

  it("forged ACKs never create connections (property)", () => {
    const e = spEngine();
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1024, max: 65535 }),
        fc.integer({ min: 1, max: 200 }),
        fc.integer({ min: 0, max: 1e9 }),
        (seq, ack, sport, host, now) => {
          const f = eth({ src: MAC.client, dst: MAC.dirOut })
            .ipv4({ src: `10.0.0.${host}`, dst: IP.vip })
            .tcp({ sport, dport: 80, seq, ack, flags: TCP_ACK })
            .build();
          const r = run(e, f, OUT, now);
          return r.egress === -1 && e.ct.count === 0;
        },
      ),
      { numRuns: 2000 },
    );
    expect(e.drops[Drop.SYN_COOKIE_BAD]).toBeGreaterThan(0);
  });
});

describe("SYN proxy: configuration rules", () => {
  it("refuses DR and TUN real servers, UDP services and the PROXY protocol", () => {
    const e = spEngine();
    const dr = { addr: ipToU32(IP.rs2), port: 80, weight: 1, uThreshold: 0, lThreshold: 0 };
    expect(() => e.table.addDest(tcpKey(), { ...dr, fwd: FwdMethod.ROUTE })).toThrow(/NAT \(-m\) or FULLNAT/);
    expect(() => e.table.addDest(tcpKey(), { ...dr, fwd: FwdMethod.TUNNEL })).toThrow(
      /NAT \(-m\) or FULLNAT/,
    );
    expect(() =>
      e.table.addService(
        { proto: IPPROTO_UDP, addr: ipToU32(IP.vip), port: 53 },
        { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, synProxy: true },
      ),
    ).toThrow(/TCP services only/);
    expect(() =>
      e.table.editService(tcpKey(), {
        sched: "rr",
        flags: 0,
        timeout: 0,
        netmask: 0xffffffff,
        proxyProtocol: 1,
      }),
    ).toThrow(/PROXY protocol/);
    // a DR service cannot turn the SYN proxy on
    const k2 = tcpKey(IP.vip, 443);
    e.table.addService(k2, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addDest(k2, { ...dr, port: 443, fwd: FwdMethod.ROUTE });
    expect(() =>
      e.table.editService(k2, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, synProxy: true }),
    ).toThrow(/does not see the replies/);
  });

  it("without the SYN proxy a SYN creates an entry (the proxy is off by default)", () => {
    const e = natEngine();
    e.table.addService(tcpKey(), { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addDest(tcpKey(), {
      addr: ipToU32(IP.rs1),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    expect(run(e, fromClient(TCP_SYN, 1, 0), OUT).egress).toBe(IN);
    expect(e.ct.count).toBe(1);
    expect(e.synproxy.cookiesSent).toBe(0);
  });
});

describe("embryonic-entry bound", () => {
  it("keeps embryonic entries under embryonic_share and leaves established ones alone", () => {
    const e = natEngine({ maxConns: 100 });
    e.sysctl.embryonicShare = 50;
    e.table.addService(tcpKey(), { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addDest(tcpKey(), {
      addr: ipToU32(IP.rs1),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    // ten established connections
    for (let k = 0; k < 10; k++) {
      run(e, fromClient(TCP_SYN, 1, 0, "", undefined, 20000 + k), OUT);
      const sa = eth({ src: MAC.rs1, dst: MAC.dirIn })
        .ipv4({ src: IP.rs1, dst: IP.client })
        .tcp({ sport: 80, dport: 20000 + k, seq: 9, ack: 2, flags: TCP_SYN | TCP_ACK })
        .build();
      expect(run(e, sa, IN).egress).toBe(OUT);
      run(e, fromClient(TCP_ACK, 2, 10, "", undefined, 20000 + k), OUT);
    }
    expect(e.ct.embryonic).toBe(0);
    // a flood of SYNs
    for (let k = 0; k < 500; k++) run(e, fromClient(TCP_SYN, 1, 0, "", undefined, 30000 + k), OUT);
    expect(e.ct.embryonic).toBeLessThanOrEqual(50);
    expect(e.ct.embryonic).toBeGreaterThan(40);
    expect(e.ct.embryonicEvictions).toBeGreaterThan(0);
    // the established ones are all still there
    let est = 0;
    for (const i of e.ct.slots())
      if (e.ct.state[i] === TcpState.ESTABLISHED && e.ct.proto[i] === IPPROTO_TCP) est++;
    expect(est).toBe(10);
    // the count follows the table
    let emb = 0;
    for (const i of e.ct.slots()) if (e.ct.state[i] === TcpState.SYN_RECV) emb++;
    expect(e.ct.embryonic).toBe(emb);
    e.ct.flushAll();
    expect(e.ct.embryonic).toBe(0);
  });
});

/**
 * A SYN-proxied connection after its handshake: the client's ISN 1000 (first data seq 1001), the
 * director's cookie, the server's ISN `srvIsn`; a request and a response went through.
 */
function splice(fwd: FwdMethod, srvIsn: number) {
  const e = spEngine(fwd);
  const cookie = tcpSeq(parse(run(e, fromClient(TCP_SYN, 1000, 0, "", 1460), OUT).generated[0]![1]));
  const s = parse(run(e, fromClient(TCP_ACK, 1001, cookie + 1), OUT).out);
  const laddr = fwd === FwdMethod.FULLNAT ? LADDR : IP.client;
  const lport = s.sport;
  run(e, fromRs(laddr, TCP_SYN | TCP_ACK, lport, srvIsn, 1001, "", 1400), IN);
  expect(e.synproxy.handshakes).toBe(1);
  return { e, cookie, laddr, lport };
}

/** The packet quoted in an ICMP error frame, as a frame of its own (for parse/checks). */
function quoted(v: FrameView): FrameView {
  const q = new Uint8Array(14 + v.l3Off + v.ipTotalLen - v.innerL3Off);
  q[12] = 0x08;
  q.set(v.buf.subarray(v.innerL3Off, v.l3Off + v.ipTotalLen), 14);
  const qv = new FrameView();
  expect(parseFrame(q, new DataView(q.buffer), 0, q.length, qv)).toBe(0);
  return qv;
}

describe("SYN proxy: ICMP errors about a spliced connection", () => {
  const srvIsn = 0xfffffff0; // the offset wraps
  const reqLen = 18;
  const resp = "HTTP/1.0 200 OK\r\n\r\nhello";

  it("NAT: from the client's side, the quoted seq goes back into the server's space (exact frame)", () => {
    const { e, cookie } = splice(FwdMethod.MASQ, srvIsn);
    // the client's port is gone: it answers our VIP:80 -> client segment with port unreachable
    const asClientGot = ipv4({ src: IP.vip, dst: IP.client, ttl: 63, id: 5, df: true })
      .tcp({
        sport: 80,
        dport: 40000,
        seq: cookie + 1,
        ack: 1001 + reqLen,
        flags: TCP_ACK | TCP_PSH,
        window: 65000,
      })
      .payload(resp)
      .build();
    const err = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip, id: 77 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, asClientGot)
      .build();
    const r = run(e, err, OUT);
    expect(r.egress).toBe(IN);
    // what the server sent: its own port and its own sequence number
    const asServerSent = ipv4({ src: IP.rs1, dst: IP.client, ttl: 63, id: 5, df: true })
      .tcp({
        sport: 8080,
        dport: 40000,
        seq: srvIsn + 1,
        ack: 1001 + reqLen,
        flags: TCP_ACK | TCP_PSH,
        window: 65000,
      })
      .payload(resp)
      .build();
    const want = eth({ src: MAC.dirIn, dst: MAC.rs1 })
      .ipv4({ src: IP.client, dst: IP.rs1, id: 77, ttl: 63 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, asServerSent)
      .build();
    expect(hex(r.out)).toBe(hex(want));
  });

  it("NAT: from the server's side, the quoted ack goes back into the client's space (exact frame)", () => {
    const { e, cookie } = splice(FwdMethod.MASQ, srvIsn);
    // a router before the server: our client -> RS segment was too big
    const asServerGot = ipv4({ src: IP.client, dst: IP.rs1, ttl: 63, id: 0x4242, df: true })
      .tcp({ sport: 40000, dport: 8080, seq: 1001 + reqLen, ack: srvIsn + 1 + resp.length, flags: TCP_ACK })
      .payload(new Uint8Array(64))
      .build();
    const err = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: IP.client, id: 78 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, asServerGot, { mtu: 1400 })
      .build();
    const r = run(e, err, IN);
    expect(r.egress).toBe(OUT);
    const asClientSent = ipv4({ src: IP.client, dst: IP.vip, ttl: 63, id: 0x4242, df: true })
      .tcp({ sport: 40000, dport: 80, seq: 1001 + reqLen, ack: cookie + 1 + resp.length, flags: TCP_ACK })
      .payload(new Uint8Array(64))
      .build();
    const want = eth({ src: MAC.dirOut, dst: MAC.client })
      .ipv4({ src: IP.vip, dst: IP.client, id: 78, ttl: 63 })
      .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, asClientSent, { mtu: 1400 })
      .build();
    expect(hex(r.out)).toBe(hex(want));
  });

  it("FULLNAT, both sides, whole and 8-byte quotes: shifted, every checksum valid", () => {
    const { e, cookie, laddr, lport } = splice(FwdMethod.FULLNAT, srvIsn);
    const fromClientSide = (q: Uint8Array) =>
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, q)
        .build();
    const fromServerSide = (q: Uint8Array) =>
      eth({ src: MAC.rs1, dst: MAC.dirIn })
        .ipv4({ src: IP.rs1, dst: laddr })
        .icmpError(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, q, { mtu: 1400 })
        .build();
    const clientGot = ipv4({ src: IP.vip, dst: IP.client, ttl: 63 })
      .tcp({ sport: 80, dport: 40000, seq: cookie + 1 + 5, ack: 1001, flags: TCP_ACK })
      .payload(resp)
      .build();
    const serverGot = ipv4({ src: laddr, dst: IP.rs1, ttl: 63, df: true })
      .tcp({ sport: lport, dport: 8080, seq: 1001, ack: srvIsn + 1 + 7, flags: TCP_ACK })
      .payload(new Uint8Array(100))
      .build();
    const cases: [Uint8Array, number, number, number][] = [
      // frame, link, expected egress, expected quoted seq / ack
      [fromClientSide(clientGot), OUT, IN, (srvIsn + 1 + 5) >>> 0],
      [fromClientSide(clientGot.subarray(0, 28)), OUT, IN, (srvIsn + 1 + 5) >>> 0], // RFC 792's 8 bytes
      [fromServerSide(serverGot), IN, OUT, (cookie + 1 + 7) >>> 0],
    ];
    for (const [f, link, egress, want] of cases) {
      const r = run(e, f, link);
      expect(r.egress).toBe(egress);
      const v = parse(r.out); // the outer IP checksum, and the ICMP checksum over the whole message
      const in4 = v.innerL4Off;
      if (egress === IN) {
        expect([v.innerSaddr, v.innerSport, v.innerDaddr, v.innerDport]).toEqual([
          ipToU32(IP.rs1),
          8080,
          ipToU32(laddr),
          lport,
        ]);
        expect(v.dv.getUint32(in4 + 4)).toBe(want);
      } else {
        expect([v.innerSaddr, v.innerSport, v.innerDaddr, v.innerDport]).toEqual([
          ipToU32(IP.client),
          40000,
          ipToU32(IP.vip),
          80,
        ]);
        expect(v.dv.getUint32(in4 + 4)).toBe(1001);
        expect(v.dv.getUint32(in4 + 8)).toBe(want);
      }
      // a whole quoted segment: its IP and TCP checksums still hold
      if (v.l3Off + v.ipTotalLen - in4 > 8) expect(checkL4Checksum(quoted(v))).toBe(L4Csum.OK);
    }
  });

  it("a quote of 8 bytes from the server's side has no ack to map: relayed, seq untouched", () => {
    const { e, laddr, lport } = splice(FwdMethod.FULLNAT, srvIsn);
    const serverGot = ipv4({ src: laddr, dst: IP.rs1, ttl: 63 })
      .tcp({ sport: lport, dport: 8080, seq: 1001, ack: srvIsn + 1, flags: TCP_ACK })
      .build()
      .subarray(0, 28);
    const f = eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: laddr })
      .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, serverGot)
      .build();
    const r = run(e, f, IN);
    expect(r.egress).toBe(OUT);
    const v = parse(r.out);
    expect(v.dv.getUint32(v.innerL4Off + 4)).toBe(1001);
    expect([v.innerSport, v.innerDport]).toEqual([40000, 80]);
  });

  it("without the SYN proxy the quoted sequence numbers are left alone", () => {
    const e = natEngine();
    e.table.addService(tcpKey(), { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addDest(tcpKey(), {
      addr: ipToU32(IP.rs1),
      port: 8080,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
    run(e, fromClient(TCP_SYN, 1000, 0), OUT);
    const clientGot = ipv4({ src: IP.vip, dst: IP.client, ttl: 63 })
      .tcp({ sport: 80, dport: 40000, seq: 5555, ack: 1001, flags: TCP_ACK })
      .build();
    const r = run(
      e,
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .icmpError(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, clientGot)
        .build(),
      OUT,
    );
    expect(r.egress).toBe(IN);
    expect(quoted(parse(r.out)).dv.getUint32(14 + 20 + 4)).toBe(5555);
  });
});
