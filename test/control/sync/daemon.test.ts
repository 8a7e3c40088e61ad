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
  encodeSyncMessage,
  IP_VS_CONN_F_DROUTE,
  IP_VS_CONN_F_MASQ,
  IP_VS_CONN_F_OUT_SEQ,
  IP_VS_CONN_F_SEQ_MASK,
  IP_VS_CONN_F_TEMPLATE,
  IP_VS_SYNC_GROUP,
  parseSyncMessage,
  type SyncConn,
  SyncStatus,
  synProxyFromSeq,
  synProxySeq,
} from "../../../src/control/sync/wire.js";
import { HELD_SLOTS, heldIndex } from "../../../src/datapath/conntrack/held.js";
import { TcpState } from "../../../src/datapath/conntrack/states.js";
import { CONN_F_INACTIVE, CONN_F_SYNPROXY } from "../../../src/datapath/conntrack/table.js";
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
  addSynProxyService,
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

function side(setup: (e: Engine) => void, opts: { ring?: number; maxConns?: number } = {}): Side {
  const e = natEngine(opts.maxConns ? { maxConns: opts.maxConns } : {});
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

describe("SYN-proxied connections survive failover (the offset in the SEQ option)", () => {
  const LADDR = "192.168.10.200";
  const spSetup = (fwd: FwdMethod) => (e: Engine) => addSynProxyService(e, fwd, LADDR);
  const cl = (sport: number, flags: number, seq: number, ack: number, data: string | Uint8Array = "") =>
    eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .tcp({ sport, dport: 80, seq, ack, flags, window: 29200, ...(flags & TCP_SYN ? { mss: 1460 } : {}) })
      .payload(data)
      .build();
  const rs = (
    to: string,
    dport: number,
    flags: number,
    seq: number,
    ack: number,
    data: string | Uint8Array = "",
  ) =>
    eth({ src: MAC.rs1, dst: MAC.dirIn })
      .ipv4({ src: IP.rs1, dst: to })
      .tcp({ sport: 8080, dport, seq, ack, flags, window: 65000 })
      .payload(data)
      .build();
  const tcpSeqOf = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset).getUint32(14 + 20 + 4);

  /**
   * On director `m`: the cookie handshake, the server's SYN-ACK and `n` client segments of `len`
   * bytes (enough for the master to sync the connection). Returns what the next segments need.
   */
  function proxied(m: Side, fwd: FwdMethod, sport: number, isn: number, srvIsn: number, n = 3, len = 10) {
    const sa = run(m.e, cl(sport, TCP_SYN, isn, 0), OUT);
    expect(sa.generated).toHaveLength(1);
    const cookie = tcpSeqOf(sa.generated[0]![1]);
    const syn = run(m.e, cl(sport, TCP_ACK, isn + 1, cookie + 1), OUT);
    expect(syn.egress).toBe(IN);
    const lport = new DataView(syn.out.buffer, syn.out.byteOffset).getUint16(14 + 20);
    const to = fwd === FwdMethod.FULLNAT ? LADDR : IP.client;
    run(m.e, rs(to, lport, TCP_SYN | TCP_ACK, srvIsn, (isn + 1) >>> 0), IN);
    for (let k = 0; k < n; k++)
      expect(
        run(m.e, cl(sport, TCP_ACK | TCP_PSH, isn + 1 + k * len, cookie + 1, "x".repeat(len)), OUT).egress,
      ).toBe(IN);
    return { cookie, lport, to, cseq: (isn + 1 + n * len) >>> 0 };
  }

  it("the master's entry: OUT_SEQ and the option the kernel would apply; FULLNAT's PROXY fields empty", () => {
    for (const fwd of [FwdMethod.MASQ, FwdMethod.FULLNAT]) {
      const m = side(spSetup(fwd));
      m.d.start("master", { mcastIfn: "out0", syncid: 1 });
      const srvIsn = 0x0000_0100;
      const { cookie } = proxied(m, fwd, 40000, 0xfffffff0, srvIsn);
      const ents = sentEntries(m);
      expect(ents).toHaveLength(1);
      const ent = ents[0]!;
      expect(ent.flags & IP_VS_CONN_F_SEQ_MASK).toBe(IP_VS_CONN_F_OUT_SEQ);
      expect(ent.seq).toEqual(synProxySeq(cookie, (srvIsn - cookie) >>> 0));
      expect(synProxyFromSeq(ent.flags, ent.seq)).toEqual({ cookie, seqDelta: (srvIsn - cookie) >>> 0 });
      if (fwd === FwdMethod.FULLNAT) {
        expect(ent.fullnat!.laddr).toBe(ipToU32(LADDR));
        expect([ent.fullnat!.proxyIsn, ent.fullnat!.proxyDelta]).toEqual([0, 0]);
      } else {
        expect(ent.fullnat).toBeUndefined();
      }
    }
  });

  it("the backup, once master, forwards the next segments both ways byte for byte as the master (property)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(FwdMethod.MASQ, FwdMethod.FULLNAT),
        fc.integer({ min: 1024, max: 65535 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 1400 }),
        fc.integer({ min: 1, max: 1400 }),
        (fwd, sport, isn, srvIsn, clen, slen) => {
          const m = side(spSetup(fwd), { maxConns: 1024 });
          const b = side(spSetup(fwd), { maxConns: 1024 });
          m.d.start("master", { mcastIfn: "out0", syncid: 2 });
          b.d.start("backup", { mcastIfn: "out0", syncid: 2 });
          const { cookie, lport, to, cseq } = proxied(m, fwd, sport, isn, srvIsn);
          // before the sync the backup knows nothing of it
          expect(run(b.e, cl(sport, TCP_ACK, cseq, cookie + 1), OUT).egress).toBe(-1);
          expect(deliver(m, b)).toBeGreaterThan(0);
          expect(b.d.counterRows()).toContainEqual(["seq_applied", 1]);
          // the master dies; the same frames reach the backup
          const c2sNext = cl(
            sport,
            TCP_ACK | TCP_PSH,
            cseq,
            (cookie + 1 + slen) >>> 0,
            new Uint8Array(clen).fill(7),
          );
          const s2cNext = rs(
            to,
            lport,
            TCP_ACK | TCP_PSH,
            (srvIsn + 1 + slen) >>> 0,
            (cseq + clen) >>> 0,
            new Uint8Array(slen).fill(9),
          );
          const om = run(m.e, c2sNext, OUT);
          const ob = run(b.e, c2sNext, OUT);
          expect(ob.egress).toBe(IN);
          expect(hex(ob.out)).toBe(hex(om.out));
          // the client's ack reached the server in the server's space
          expect(new DataView(ob.out.buffer, ob.out.byteOffset).getUint32(14 + 20 + 8)).toBe(
            (srvIsn + 1 + slen) >>> 0,
          );
          const rm = run(m.e, s2cNext, IN);
          const rb = run(b.e, s2cNext, IN);
          expect(rb.egress).toBe(OUT);
          expect(hex(rb.out)).toBe(hex(rm.out));
          // and the server's data reached the client in the cookie's space
          expect(tcpSeqOf(rb.out)).toBe((cookie + 1 + slen) >>> 0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("an update brings the offset to a connection the backup had without it; onward sync keeps it (failback)", () => {
    const fwd = FwdMethod.MASQ;
    const m = side(spSetup(fwd));
    const b = side(spSetup(fwd));
    const c = side(spSetup(fwd));
    // b with an XDP SYN responder: its SYN-proxied entries count in the held array
    b.e.ct.held = new Uint8Array(HELD_SLOTS);
    m.d.start("master", { mcastIfn: "out0", syncid: 4 });
    b.d.start("backup", { mcastIfn: "out0", syncid: 4 });
    const srvIsn = 123456789;
    const { cookie, cseq } = proxied(m, fwd, 41000, 5000, srvIsn);
    m.d.sendReady(true);
    const [[, frame]] = m.sent as [[number, Uint8Array]];
    m.sent = [];
    // the same entry without the SEQ option (an older lvs-ts master): created, not shifted
    const v = new FrameView();
    expect(parseFrame(frame, new DataView(frame.buffer, frame.byteOffset), 0, frame.length, v)).toBe(0);
    const r = parseSyncMessage(frame.subarray(v.l4Off + 8, v.l4Off + v.l4Len), 4);
    const plain: SyncConn = { ...r.entries[0]!, flags: r.entries[0]!.flags & ~IP_VS_CONN_F_SEQ_MASK };
    delete plain.seq;
    b.d.apply(encodeSyncMessage(4, [plain])[0]!, 4, b.now);
    const bc = b.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 41000, ipToU32(IP.vip), 80);
    expect(bc).toBeGreaterThanOrEqual(0);
    expect(b.e.ct.flags[bc]! & CONN_F_SYNPROXY).toBe(0);
    // then the real entry: the offset arrives by the update
    b.d.apply(frame.subarray(v.l4Off + 8, v.l4Off + v.l4Len), 4, b.now);
    expect(b.d.counterRows()).toEqual(
      expect.arrayContaining([
        ["updated", 1],
        ["seq_applied", 1],
      ]),
    );
    expect(b.e.ct.flags[bc]! & CONN_F_SYNPROXY).toBe(CONN_F_SYNPROXY);
    expect(b.e.ct.seqDelta[bc]).toBe((srvIsn - cookie) >>> 0);
    expect(b.e.ct.held[heldIndex(ipToU32(IP.client) | 0, ipToU32(IP.vip) | 0, 41000, 80)]).toBe(1);
    // b takes over and syncs onward to a restarted director c, which can forward it too
    b.d.stop("backup");
    b.d.start("master", { mcastIfn: "out0", syncid: 4 });
    c.d.start("backup", { mcastIfn: "out0", syncid: 4 });
    for (let k = 0; k < 50; k++) run(b.e, cl(41000, TCP_ACK, cseq, cookie + 1), OUT);
    expect(deliver(b, c)).toBeGreaterThan(0);
    const next = cl(41000, TCP_ACK, cseq, cookie + 11);
    expect(hex(run(c.e, next, OUT).out)).toBe(hex(run(b.e, next, OUT).out));
  });

  it("a SEQ option that is not one uniform shift (a kernel FTP helper's) is counted and not applied", () => {
    const { b } = startPair();
    const ent: SyncConn = {
      protocol: IPPROTO_TCP,
      flags: IP_VS_CONN_F_MASQ | IP_VS_CONN_F_OUT_SEQ,
      state: TcpState.ESTABLISHED,
      cport: 4000,
      vport: 80,
      dport: 80,
      fwmark: 0,
      timeout: 900,
      caddr: ipToU32(IP.client),
      vaddr: ipToU32(IP.vip),
      daddr: ipToU32(IP.rs1),
      seq: {
        in: { initSeq: 0, delta: 0, previousDelta: 0 },
        out: { initSeq: 100, delta: 5, previousDelta: 0 },
      },
    };
    b.d.apply(encodeSyncMessage(7, [ent])[0]!, 7, b.now);
    const bc = b.e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client), 4000, ipToU32(IP.vip), 80);
    expect(bc).toBeGreaterThanOrEqual(0);
    expect(b.e.ct.flags[bc]! & CONN_F_SYNPROXY).toBe(0);
    expect(b.d.counterRows()).toEqual(
      expect.arrayContaining([
        ["created", 1],
        ["seq_ignored", 1],
        ["seq_applied", 0],
      ]),
    );
    // forwarded unshifted, as before
    const f = c2s(4000, TCP_ACK, 1);
    const out = run(b.e, f, OUT);
    expect(out.egress).toBe(IN);
    expect(new DataView(out.out.buffer, out.out.byteOffset).getUint32(14 + 20 + 8)).toBe(1);
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
