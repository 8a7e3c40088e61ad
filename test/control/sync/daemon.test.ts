/**
 * Connection sync between two engines (src/datapath/sync.ts on the master's data path,
 * src/control/sync/daemon.ts on both sides): the master's frames are handed to the backup's
 * engine as they would arrive on the wire. What is sent follows the kernel's
 * ip_vs_sync_conn_needed; what the backup builds lets it forward the flows the master had,
 * byte for byte; lvsadm's --start-daemon/--stop-daemon/-L --daemon/--sync/--sysctl.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run as lvsadm } from "../../../src/control/commands.js";
import type { EventLog } from "../../../src/control/observe/log.js";
import { formatDaemons, SyncDaemon } from "../../../src/control/sync/daemon.js";
import {
  IP_VS_CONN_F_DROUTE,
  IP_VS_CONN_F_MASQ,
  IP_VS_CONN_F_TEMPLATE,
  IP_VS_SYNC_GROUP,
  parseSyncMessage,
  SyncStatus,
} from "../../../src/control/sync/wire.js";
import { TcpState } from "../../../src/datapath/conntrack/states.js";
import { CONN_F_INACTIVE } from "../../../src/datapath/conntrack/table.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { checkL4Checksum, L4Csum, parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from "../../../src/datapath/packet/view.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { FwdMethod, SVC_F_ONEPACKET } from "../../../src/tables/model.js";
import {
  addNatDest,
  addService,
  hex,
  IN,
  IP,
  MAC,
  natEngine,
  OUT,
  run,
  tcpKey,
  udpKey,
} from "../../datapath/engine/helpers.js";

const quiet: EventLog = { info() {}, warn() {}, error() {}, debug() {} } as unknown as EventLog;

interface Side {
  e: Engine;
  d: SyncDaemon;
  /** Frames the daemon flushed: [link, bytes]. */
  sent: [number, Uint8Array][];
  now: number;
}

function side(setup: (e: Engine) => void, opts: { ring?: number } = {}): Side {
  const e = natEngine();
  setup(e);
  const s: Side = { e, d: undefined as unknown as SyncDaemon, sent: [], now: 1000 };
  s.d = new SyncDaemon({
    engine: e,
    linkNames: ["out0", "in0"],
    flush: () => {
      for (let j = 0; j < e.tx.count; j++)
        if (e.tx.egress[j]! >= 0) s.sent.push([e.tx.egress[j]!, e.tx.frame(j)]);
      e.tx.reset();
    },
    now: () => s.now,
    log: quiet,
    timers: { every: () => 0, cancel: () => {} },
    defer: (fn) => fn(),
  });
  void opts;
  return s;
}

function natSetup(persist = 0) {
  return (e: Engine) => {
    addService(e, tcpKey(), "rr", persist);
    addNatDest(e, tcpKey(), IP.rs1, 80);
    addNatDest(e, tcpKey(), IP.rs2, 80);
    addService(e, udpKey(), "rr");
    addNatDest(e, udpKey(), IP.rs1, 53);
    addNatDest(e, udpKey(), IP.rs2, 53);
  };
}

function c2s(sport: number, flags: number, seq: number, data = "", client = IP.client): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: client, dst: IP.vip })
    .tcp({ sport, dport: 80, seq, ack: 1, flags })
    .payload(data)
    .build();
}

function udp(sport: number, data = "q"): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip })
    .udp({ sport, dport: 53 })
    .payload(data)
    .build();
}

/** Deliver everything the master sent to the backup, as it arrives on the backup's link OUT. */
function deliver(from: Side, to: Side): number {
  from.d.sendReady(true);
  const n = from.sent.length;
  for (const [, f] of from.sent) run(to.e, f, OUT, to.now);
  from.sent = [];
  return n;
}

/** The entries of what the master has sent so far (parsed back with the codec). */
function sentEntries(m: Side) {
  m.d.sendReady(true);
  const out = [];
  const v = new FrameView();
  for (const [, f] of m.sent) {
    expect(parseFrame(f, new DataView(f.buffer, f.byteOffset, f.byteLength), 0, f.length, v)).toBe(0);
    const payload = f.subarray(v.l4Off + 8, v.l4Off + v.l4Len);
    const r = parseSyncMessage(payload);
    expect(r.status).toBe(SyncStatus.OK);
    out.push(...r.entries);
  }
  m.sent = [];
  return out;
}

function startPair(persist = 0): { m: Side; b: Side } {
  const m = side(natSetup(persist));
  const b = side(natSetup(persist));
  m.d.start("master", { mcastIfn: "out0", syncid: 7 });
  b.d.start("backup", { mcastIfn: "out0", syncid: 7 });
  return { m, b };
}

describe("what the master sends (the kernel's ip_vs_sync_conn_needed, default sysctls 3 50)", () => {
  it("a TCP connection: not before ESTABLISHED, at its 3rd client packet, every 50th after, at once on FIN", () => {
    const { m } = startPair();
    const counts: number[] = [];
    run(m.e, c2s(4000, TCP_SYN, 0), OUT);
    counts.push(sentEntries(m).length);
    run(m.e, c2s(4000, TCP_ACK, 1), OUT); // ESTABLISHED, packet 2: 2 % 50 != 3
    counts.push(sentEntries(m).length);
    run(m.e, c2s(4000, TCP_ACK | TCP_PSH, 1, "GET /"), OUT); // packet 3
    const third = sentEntries(m);
    counts.push(third.length);
    for (let k = 4; k <= 52; k++) run(m.e, c2s(4000, TCP_ACK, 6), OUT);
    counts.push(sentEntries(m).length);
    run(m.e, c2s(4000, TCP_ACK, 6), OUT); // packet 53
    counts.push(sentEntries(m).length);
    run(m.e, c2s(4000, TCP_ACK | TCP_FIN, 6), OUT); // -> CLOSE_WAIT: a state change, sent at once
    const fin = sentEntries(m);
    counts.push(fin.length);
    expect(counts).toEqual([0, 0, 1, 0, 1, 1]);
    const c = m.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    expect(third[0]).toEqual({
      protocol: IPPROTO_TCP,
      flags: IP_VS_CONN_F_MASQ, // active: INACTIVE clear
      state: TcpState.ESTABLISHED,
      cport: 4000,
      vport: 80,
      dport: 80,
      fwmark: 0,
      timeout: 900,
      caddr: ipToU32(IP.client),
      vaddr: ipToU32(IP.vip),
      daddr: m.e.ct.daddr[c],
    });
    // the client's FIN on an established NAT connection: CLOSE_WAIT (the kernel's input table)
    expect(fin[0]!.state).toBe(TcpState.CLOSE_WAIT);
    expect(fin[0]!.flags & 0x100).toBe(0x100); // not ESTABLISHED: inactive
    expect(fin[0]!.timeout).toBe(m.e.ct.tcpTimeoutMs[TcpState.CLOSE_WAIT]! / 1000);
  });

  it("UDP by the count: 3, 53; with sync_period 0 only at the threshold; one-packet services never", () => {
    const { m } = startPair();
    const at: number[] = [];
    for (let k = 1; k <= 110; k++) {
      run(m.e, udp(5000), OUT);
      if (sentEntries(m).length > 0) at.push(k);
    }
    expect(at).toEqual([3, 53, 103]);
    m.e.sysctl.syncPeriod = 0;
    at.length = 0;
    for (let k = 1; k <= 110; k++) {
      run(m.e, udp(5001), OUT);
      if (sentEntries(m).length > 0) at.push(k);
    }
    expect(at).toEqual([3]);
    m.e.sysctl.syncPeriod = 50;
    m.e.table.editService(udpKey(), { sched: "rr", flags: SVC_F_ONEPACKET, timeout: 0, netmask: 0xffffffff });
    for (let k = 1; k <= 60; k++) run(m.e, udp(5002), OUT);
    expect(sentEntries(m)).toEqual([]);
  });

  it("a persistence template goes with each synced packet of its connections; sync_persist_mode sends only it", () => {
    const { m } = startPair(300);
    run(m.e, c2s(4000, TCP_SYN, 0), OUT);
    const first = sentEntries(m);
    // the template is counted and synced on every client packet, the connection is not yet
    expect(first.map((x) => x.flags & IP_VS_CONN_F_TEMPLATE)).toEqual([IP_VS_CONN_F_TEMPLATE]);
    expect(first[0]).toMatchObject({ protocol: IPPROTO_TCP, cport: 0, vport: 80, timeout: 300 });
    run(m.e, c2s(4000, TCP_ACK, 1), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1, "x"), OUT);
    const third = sentEntries(m);
    expect(third.map((x) => (x.flags & IP_VS_CONN_F_TEMPLATE) !== 0)).toEqual([true, false, true]);
    m.e.sysctl.syncPersistMode = 1;
    run(m.e, c2s(4001, TCP_SYN, 0), OUT);
    run(m.e, c2s(4001, TCP_ACK, 1), OUT);
    run(m.e, c2s(4001, TCP_ACK, 1, "x"), OUT);
    expect(sentEntries(m).every((x) => (x.flags & IP_VS_CONN_F_TEMPLATE) !== 0)).toBe(true);
  });

  it("sync_refresh_period holds back resends until the expiry moved that far", () => {
    const { m } = startPair();
    m.e.sysctl.syncPeriod = 0;
    m.e.sysctl.syncRefreshPeriod = 30;
    const at: number[] = [];
    for (let k = 1; k <= 40; k++) {
      run(m.e, udp(5003), OUT, 1000 + k * 1000); // one datagram a second
      if (sentEntries(m).length > 0) at.push(k);
    }
    // the first one, then once the expiry has moved by 30 s
    expect(at).toEqual([1, 31]);
  });

  it("the datagram: 224.0.0.81:8848 to 01:00:5e:00:00:51, TTL 1, from the link's address, UDP checksum valid", () => {
    const { m } = startPair();
    for (let k = 0; k < 3; k++) run(m.e, udp(5000), OUT);
    m.d.sendReady(true);
    expect(m.sent).toHaveLength(1);
    const [link, f] = m.sent[0]!;
    expect(link).toBe(OUT);
    const v = new FrameView();
    expect(parseFrame(f, new DataView(f.buffer, f.byteOffset, f.byteLength), 0, f.length, v)).toBe(0);
    expect(hex(f.subarray(0, 12))).toBe(`01005e000051${MAC.dirOut.replaceAll(":", "")}`);
    expect([v.saddr >>> 0, v.daddr >>> 0, v.ttl, v.proto, v.sport, v.dport]).toEqual([
      ipToU32(IP.dirOut),
      IP_VS_SYNC_GROUP,
      1,
      IPPROTO_UDP,
      8848,
      8848,
    ]);
    expect(checkL4Checksum(v)).toBe(L4Csum.OK);
    expect(f[v.l4Off + 8 + 1]).toBe(7); // syncid
  });

  it("sending never drops frames already queued (a VRRP priority-0 advert on the same stop)", () => {
    const { m } = startPair();
    for (let k = 0; k < 3; k++) run(m.e, udp(5000), OUT);
    const j = m.e.txq.slot();
    m.e.tx.buf.fill(0xab, m.e.tx.off[j]!, m.e.tx.off[j]! + 60);
    m.e.txq.commit(j, 60, OUT);
    m.d.stop("master"); // sends what it holds
    expect(m.sent.map(([, f]) => f.length)).toEqual([60, 14 + 28 + 8 + 36]);
    expect(m.sent[0]![1][0]).toBe(0xab);
  });

  it("many connections fill messages up to maxlen; a full ring drops entries and counts them", () => {
    const m = side(natSetup());
    m.d.start("master", { mcastIfn: "out0", syncid: 1, syncMaxlen: 200 });
    for (let p = 0; p < 30; p++) for (let k = 0; k < 3; k++) run(m.e, udp(6000 + p), OUT);
    m.d.sendReady(true);
    // 200 bytes: header 8 + 5 entries of 36 (with padding none: 36 is a multiple of 4)
    expect(m.sent.length).toBe(6);
    expect(m.sent.every(([, f]) => f.length <= 14 + 28 + 200)).toBe(true);
    // nothing sent for a while: the ring (64 messages) fills and the rest is counted
    for (let p = 0; p < 400; p++) for (let k = 0; k < 3; k++) run(m.e, udp(7000 + p), OUT);
    expect(m.e.sync!.ringDrops).toBe(400 - 64 * 5);
    expect(m.d.counterRows()).toContainEqual(["ring_drops", 400 - 64 * 5]);
  });
});

describe("the backup builds what the master had", () => {
  it("a NAT connection: the backup forwards its next packets both ways exactly as the master", () => {
    const { m, b } = startPair();
    run(m.e, c2s(4000, TCP_SYN, 0), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1), OUT);
    run(m.e, c2s(4000, TCP_ACK | TCP_PSH, 1, "GET /"), OUT);
    // without the sync the backup has no connection: a mid-stream ACK is dropped
    expect(run(b.e, c2s(4000, TCP_ACK, 6), OUT).egress).toBe(-1);
    expect(deliver(m, b)).toBe(1);
    const bc = b.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    const mc = m.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    expect(bc).toBeGreaterThanOrEqual(0);
    expect(b.e.ct.daddr[bc]).toBe(m.e.ct.daddr[mc]);
    expect(b.e.ct.state[bc]).toBe(TcpState.ESTABLISHED);
    expect(b.e.ct.flags[bc]! & CONN_F_INACTIVE).toBe(0);
    expect(b.e.ct.expiresAt(bc)).toBe(b.now + 900_000);
    const d = b.e.table.dests[b.e.ct.dest[bc]!]!;
    expect(d.activeConns).toBe(1);
    const next = c2s(4000, TCP_ACK | TCP_PSH, 6, "more");
    const rm = run(m.e, next, OUT);
    const rb = run(b.e, next, OUT);
    expect(rb.egress).toBe(IN);
    expect(hex(rb.out)).toBe(hex(rm.out));
    const rs = m.e.ct.daddr[mc] === ipToU32(IP.rs1) ? IP.rs1 : IP.rs2;
    const reply = eth({ src: rs === IP.rs1 ? MAC.rs1 : MAC.rs2, dst: MAC.dirIn })
      .ipv4({ src: rs, dst: IP.client })
      .tcp({ sport: 80, dport: 4000, seq: 1, ack: 10, flags: TCP_ACK })
      .payload("200 OK")
      .build();
    const om = run(m.e, reply, IN);
    const ob = run(b.e, reply, IN);
    expect(ob.egress).toBe(OUT);
    expect(hex(ob.out)).toBe(hex(om.out));
    expect(b.d.counterRows()).toContainEqual(["created", 1]);
  });

  it("an update changes state and activity; an entry for a service the backup lacks is counted", () => {
    const { m, b } = startPair();
    run(m.e, c2s(4000, TCP_SYN, 0), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1, "x"), OUT);
    deliver(m, b);
    run(m.e, c2s(4000, TCP_ACK | TCP_FIN, 2), OUT);
    deliver(m, b);
    const bc = b.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    expect(b.e.ct.state[bc]).toBe(TcpState.CLOSE_WAIT);
    const d = b.e.table.dests[b.e.ct.dest[bc]!]!;
    expect([d.activeConns, d.inactConns]).toEqual([0, 1]);
    expect(b.d.counterRows()).toEqual(
      expect.arrayContaining([
        ["updated", 1],
        ["created", 1],
      ]),
    );
    b.e.table.deleteService(udpKey());
    for (let k = 0; k < 3; k++) run(m.e, udp(5000), OUT);
    deliver(m, b);
    expect(b.d.counterRows()).toContainEqual(["no_dest", 1]);
  });

  it("a persistent client keeps its real server across failover: the template is on the backup", () => {
    const { m, b } = startPair(300);
    run(m.e, c2s(4000, TCP_SYN, 0), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1, "x"), OUT);
    deliver(m, b);
    const mc = m.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    const rs = m.e.ct.daddr[mc]!;
    // without the template the backup's rr would alternate between rs1 and rs2
    for (let p = 0; p < 4; p++) {
      const r = run(b.e, c2s(5000 + p, TCP_SYN, 0), OUT);
      expect(r.egress).toBe(IN);
      const c = b.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 5000 + p, ipToU32(IP.vip), 80);
      expect(b.e.ct.daddr[c]).toBe(rs);
    }
  });

  it("FULLNAT: local address and port and the PROXY shift travel; the backup reserves the port", () => {
    const setup = (e: Engine) => {
      addService(e, tcpKey(), "rr");
      e.table.addLaddr(tcpKey(), ipToU32("192.168.10.200"));
      for (const rs of [IP.rs1, IP.rs2])
        e.table.addDest(tcpKey(), {
          addr: ipToU32(rs),
          port: 80,
          weight: 1,
          fwd: FwdMethod.FULLNAT,
          uThreshold: 0,
          lThreshold: 0,
        });
    };
    const m = side(setup);
    const b = side(setup);
    m.d.start("master", { mcastIfn: "out0", syncid: 0 });
    b.d.start("backup", { mcastIfn: "out0", syncid: 0 });
    run(m.e, c2s(4000, TCP_SYN, 0), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1, "x"), OUT);
    deliver(m, b);
    const mc = m.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    const bc = b.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    expect(bc).toBeGreaterThanOrEqual(0);
    expect([b.e.ct.laddr[bc], b.e.ct.lport[bc], b.e.ct.fwd[bc]]).toEqual([
      m.e.ct.laddr[mc],
      m.e.ct.lport[mc],
      FwdMethod.FULLNAT,
    ]);
    const pool = b.e.table.find(tcpKey())!.laddrs!;
    expect(pool.inUse(ipToU32("192.168.10.200"), 0)).toBe(1);
    const rs = m.e.ct.daddr[mc] === ipToU32(IP.rs1) ? IP.rs1 : IP.rs2;
    const reply = eth({ src: rs === IP.rs1 ? MAC.rs1 : MAC.rs2, dst: MAC.dirIn })
      .ipv4({ src: rs, dst: "192.168.10.200" })
      .tcp({ sport: 80, dport: m.e.ct.lport[mc]!, seq: 1, ack: 2, flags: TCP_ACK })
      .payload("ok")
      .build();
    const om = run(m.e, reply, IN);
    const ob = run(b.e, reply, IN);
    expect(ob.egress).toBe(OUT);
    expect(hex(ob.out)).toBe(hex(om.out));
    // a new connection on the backup never takes the synced port
    run(b.e, c2s(4001, TCP_SYN, 0), OUT);
    const nc = b.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4001, ipToU32(IP.vip), 80);
    expect(b.e.ct.lport[nc]).not.toBe(m.e.ct.lport[mc]);
  });

  it.each([
    ["NAT", FwdMethod.MASQ],
    ["DR", FwdMethod.ROUTE],
  ])(
    "%s: a connection learnt as backup is synced onward once this director is master (failback)",
    (_n, fwd) => {
      const setup = (e: Engine) => {
        addService(e, tcpKey(), "rr");
        for (const rs of [IP.rs1, IP.rs2])
          e.table.addDest(tcpKey(), {
            addr: ipToU32(rs),
            port: 80,
            weight: 1,
            fwd,
            uThreshold: 0,
            lThreshold: 0,
          });
      };
      const a = side(setup);
      const b = side(setup);
      const c = side(setup); // the first director, restarted
      a.d.start("master", { mcastIfn: "out0", syncid: 1 });
      b.d.start("backup", { mcastIfn: "out0", syncid: 1 });
      run(a.e, c2s(4000, TCP_SYN, 0), OUT);
      run(a.e, c2s(4000, TCP_ACK, 1), OUT);
      run(a.e, c2s(4000, TCP_ACK | TCP_PSH, 1, "GET /"), OUT);
      deliver(a, b);
      // a dies; b takes over (keepalived's lvs_sync_daemon: backup stopped, master started)
      b.d.stop("backup");
      b.d.start("master", { mcastIfn: "out0", syncid: 1 });
      c.d.start("backup", { mcastIfn: "out0", syncid: 1 });
      for (let k = 0; k < 60; k++) expect(run(b.e, c2s(4000, TCP_ACK, 6), OUT).egress).toBe(IN);
      deliver(b, c);
      const cc = c.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
      expect(cc).toBeGreaterThanOrEqual(0);
      expect(c.e.ct.state[cc]).toBe(TcpState.ESTABLISHED);
    },
  );

  it("DR connections keep their method (no output seen)", () => {
    const setup = (e: Engine) => {
      addService(e, tcpKey(), "rr");
      e.table.addDest(tcpKey(), {
        addr: ipToU32(IP.rs1),
        port: 80,
        weight: 1,
        fwd: FwdMethod.ROUTE,
        uThreshold: 0,
        lThreshold: 0,
      });
    };
    const m = side(setup);
    m.d.start("master", { mcastIfn: "out0", syncid: 0 });
    run(m.e, c2s(4000, TCP_SYN, 0), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1), OUT);
    run(m.e, c2s(4000, TCP_ACK, 1, "x"), OUT);
    const [ent] = sentEntries(m);
    expect(ent!.flags & 7).toBe(IP_VS_CONN_F_DROUTE);
    expect(ent!.flags & 0x80).toBe(0x80); // NOOUTPUT
  });

  it("refuses what is not for it, and never throws on garbage", () => {
    const { m, b } = startPair();
    for (let k = 0; k < 3; k++) run(m.e, udp(5000), OUT);
    m.d.sendReady(true);
    const [, good] = m.sent[0]!;
    // another sync id
    const other = side(natSetup());
    other.d.start("backup", { mcastIfn: "out0", syncid: 9 });
    run(other.e, good, OUT);
    expect(other.d.counterRows()).toContainEqual(["sync_syncid_mismatch", 1]);
    // on the other link: not the sync interface, so it is not taken as sync
    run(b.e, good, IN);
    expect(b.d.counterRows()).toContainEqual(["recv_messages", 0]);
    // a flipped payload byte: the UDP checksum catches it
    const bad = good.slice();
    bad[bad.length - 1]! ^= 0x40;
    run(b.e, bad, OUT);
    expect(b.d.counterRows()).toContainEqual(["bad_checksum", 1]);
    // random payloads with a valid checksum: counted by reason, never thrown
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), (payload) => {
        const f = eth({ src: MAC.client, dst: "01:00:5e:00:00:51" })
          .ipv4({ src: IP.client, dst: "224.0.0.81", ttl: 1 })
          .udp({ sport: 8848, dport: 8848 })
          .payload(payload)
          .build();
        expect(() => run(b.e, f, OUT)).not.toThrow();
      }),
      { numRuns: 300 },
    );
    expect(b.e.ct.count).toBe(0);
  });
});

describe("lvsadm and the daemons", () => {
  function target() {
    const e = natEngine();
    const t = new EngineControl(e);
    const d = new SyncDaemon({
      engine: e,
      linkNames: ["out0", "in0"],
      flush: () => e.tx.reset(),
      now: () => 0,
      log: quiet,
      timers: { every: () => 0, cancel: () => {} },
    });
    t.sync = d;
    const sh = (line: string) => lvsadm(line.split(" ").filter(Boolean), t, "");
    return { e, t, d, sh };
  }

  it("--start-daemon, -L --daemon as ipvsadm prints it, EEXIST, --stop-daemon, ESRCH", () => {
    const { e, sh } = target();
    expect(sh("-L --daemon").stdout).toBe("");
    expect(sh("--start-daemon master --mcast-interface out0 --syncid 1")).toEqual({
      stdout: "",
      stderr: "",
      code: 0,
    });
    expect(
      sh("--start-daemon backup --mcast-interface in0 --syncid 2 --mcast-port 9000 --mcast-ttl 3"),
    ).toMatchObject({
      code: 0,
    });
    expect(sh("-L --daemon").stdout).toBe(
      "master sync daemon (mcast=out0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
        "backup sync daemon (mcast=in0, syncid=2, maxlen=1472, group=224.0.0.81, port=9000, ttl=3)\n",
    );
    expect(e.sync).not.toBeNull();
    expect(e.syncPort).toBe(9000);
    expect(sh("--start-daemon master --mcast-interface out0")).toEqual({
      stdout: "",
      stderr: "Daemon has already run\n",
      code: 255,
    });
    expect(sh("--stop-daemon master").code).toBe(0);
    expect(sh("--stop-daemon master")).toEqual({ stdout: "", stderr: "No daemon is running\n", code: 255 });
    expect(sh("--stop-daemon backup").code).toBe(0);
    expect(e.sync).toBeNull();
    expect(e.syncPort).toBe(-1);
    expect(sh("-L --daemon").stdout).toBe("");
  });

  it("an unknown interface is refused by name; the default interface is eth0 as in ipvsadm", () => {
    const { sh } = target();
    const r = sh("--start-daemon master");
    expect(r.code).toBe(255);
    expect(r.stderr).toBe("lvsadm: --start-daemon: no link named 'eth0' (lvsd's links: out0, in0)\n");
  });

  it("--sync lists the counters; --sysctl lists and sets the knobs, checked as the kernel checks them", () => {
    const { e, sh } = target();
    sh("--start-daemon master --mcast-interface out0");
    expect(sh("--sync").stdout).toContain("sent_messages");
    const list = sh("--sysctl").stdout;
    expect(list).toContain("net.ipv4.vs.sync_threshold = 3\t50\n");
    expect(list).toContain("net.ipv4.vs.sync_refresh_period = 0\n");
    expect(sh("--sysctl net.ipv4.vs.sync_threshold=2,10").stdout).toBe(
      "net.ipv4.vs.sync_threshold = 2\t10\n",
    );
    expect([e.sysctl.syncThreshold, e.sysctl.syncPeriod]).toEqual([2, 10]);
    expect(sh("--sysctl sync_threshold=10,10").code).toBe(2);
    expect(sh("--sysctl sync_retries=4").code).toBe(2);
    expect(sh("--sysctl nosuch=1").stderr).toContain("unknown name 'nosuch'");
    expect([e.sysctl.syncThreshold, e.sysctl.syncPeriod]).toEqual([2, 10]);
  });

  it("formatDaemons prints one line a daemon", () => {
    expect(
      formatDaemons([
        {
          state: "master",
          mcastIfn: "eth0",
          syncid: 1,
          maxlen: 1472,
          group: IP_VS_SYNC_GROUP,
          port: 8848,
          ttl: 1,
        },
      ]),
    ).toBe("master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n");
  });
});
