/**
 * The kernel's flood defence (src/control/defense.ts): amemthresh against the connection table's
 * free room, the automatic modes of drop_entry, drop_packet and secure_tcp switching 1 -> 2 -> 1,
 * drop_packet dropping one new connection in drop_rate on the data path, drop_entry removing
 * embryonic entries first, secure_tcp's transition table, and the knobs through `lvsadm --sysctl`.
 */
import { describe, expect, it } from "vitest";
import { EngineControl } from "../../src/control/adapter.js";
import { run as runCommand } from "../../src/control/commands.js";
import { Defense } from "../../src/control/defense.js";
import { clock } from "../../src/datapath/clock.js";
import { TCP_TRANSITIONS, TCP_TRANSITIONS_DOS, TcpState } from "../../src/datapath/conntrack/states.js";
import { CONN_F_USED } from "../../src/datapath/conntrack/table.js";
import { DROP_NAMES } from "../../src/datapath/drops.js";
import type { Engine } from "../../src/datapath/engine.js";
import { eth } from "../../src/datapath/packet/build.js";
import { TCP_ACK, TCP_SYN } from "../../src/datapath/packet/view.js";
import { ipToU32 } from "../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../src/lib/proto.js";
import {
  addNatDest,
  addService,
  IN,
  IP,
  MAC,
  natEngine,
  OUT,
  run,
  tcpKey,
} from "../datapath/engine/helpers.js";

const CAPACITY = 4096;

function director(): Engine {
  const e = natEngine({ maxConns: CAPACITY });
  addService(e, tcpKey(), "rr");
  addNatDest(e, tcpKey(), IP.rs1, 80);
  return e;
}

/** Fill the table with `n` entries in `state`, from spoofed sources (what a SYN flood leaves). */
function fill(e: Engine, n: number, state: number, first = 0): number[] {
  const [svc] = e.table.list();
  const d = svc!.dests[0]!;
  const slots: number[] = [];
  for (let k = first; k < first + n; k++) {
    const caddr = (0x0b000000 + k) | 0;
    const i = e.ct.create(
      IPPROTO_TCP,
      caddr,
      1024,
      svc!.addr | 0,
      80,
      d.addr | 0,
      80,
      caddr,
      1024,
      0,
      false,
      d,
      svc!.id,
      -1,
    );
    e.ct.state[i] = state;
    e.ct.setExpires(i, clock.nowMs + e.ct.tcpTimeoutMs[state]!); // as if just touched in that state
    slots.push(i);
  }
  return slots;
}

function syn(sport: number): Uint8Array {
  return eth({ src: MAC.client, dst: MAC.dirOut })
    .ipv4({ src: IP.client, dst: IP.vip })
    .tcp({ sport, dport: 80, flags: TCP_SYN })
    .build();
}

function drops(e: Engine, name: string): number {
  return e.drops[DROP_NAMES.indexOf(name)]!;
}

/** A repeatable stand-in for Math.random. */
function lcg(seed = 1): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

describe("defence levels (update_defense_level)", () => {
  it("reads the table's free room in pages and switches the automatic modes on and back off", () => {
    const e = director();
    const total = Math.floor(((e.ct.byteSize() / CAPACITY) * CAPACITY) / 4096);
    const d = new Defense(e);
    expect(d.availablePages()).toBe(total);
    const s = e.sysctl;
    s.amemthresh = Math.floor(total / 2);
    s.dropEntry = 1;
    s.dropPacket = 1;
    s.secureTcp = 1;
    let st = d.update();
    expect(st).toMatchObject({ nomem: false, dropEntry: false, dropRate: 0, secureTcp: false });
    expect([s.dropEntry, s.dropPacket, s.secureTcp]).toEqual([1, 1, 1]);

    fill(e, Math.floor(CAPACITY * 0.75), TcpState.SYN_RECV);
    st = d.update();
    expect(st.nomem).toBe(true);
    expect(st.availmem).toBeLessThan(s.amemthresh);
    expect([s.dropEntry, s.dropPacket, s.secureTcp]).toEqual([2, 2, 2]);
    // drop_rate = amemthresh / (amemthresh - availmem), in integers as the kernel computes it
    expect(st.dropRate).toBe(Math.trunc(s.amemthresh / (s.amemthresh - st.availmem)));
    expect(e.dropRate).toBe(st.dropRate);
    expect(e.ct.transitions).toBe(TCP_TRANSITIONS_DOS);

    e.ct.flushAll();
    st = d.update();
    expect(st).toMatchObject({ nomem: false, dropEntry: false, dropRate: 0, secureTcp: false });
    expect([s.dropEntry, s.dropPacket, s.secureTcp]).toEqual([1, 1, 1]);
    expect(e.ct.transitions).toBe(TCP_TRANSITIONS);
  });

  it("reads another table's room when told (lvsd --workers: the workers' sum)", () => {
    const e = director();
    const d = new Defense(e);
    const perEntry = e.ct.byteSize() / CAPACITY;
    let room = { capacity: 4 * CAPACITY, count: 0 };
    d.room = () => room;
    expect(d.availablePages()).toBe(Math.floor((4 * CAPACITY * perEntry) / 4096));
    e.sysctl.amemthresh = Math.floor((2 * CAPACITY * perEntry) / 4096);
    e.sysctl.dropPacket = 1;
    expect(d.update().nomem).toBe(false); // the engine's own table would be short
    room = { capacity: 4 * CAPACITY, count: 3 * CAPACITY };
    const st = d.update();
    expect(st.nomem).toBe(true);
    expect(st.dropRate).toBeGreaterThan(0);
    expect(e.sysctl.dropPacket).toBe(2);
  });

  it("mode 3 is always on (drop_packet at am_droprate), mode 0 always off whatever the memory", () => {
    const e = director();
    const s = e.sysctl;
    s.dropEntry = 3;
    s.dropPacket = 3;
    s.secureTcp = 3;
    s.amDroprate = 7;
    s.amemthresh = 1; // memory plenty
    const d = new Defense(e);
    expect(d.update()).toMatchObject({ nomem: false, dropEntry: true, dropRate: 7, secureTcp: true });
    s.dropEntry = 0;
    s.dropPacket = 0;
    s.secureTcp = 0;
    s.amemthresh = 1 << 30; // memory short
    expect(d.update()).toMatchObject({ nomem: true, dropEntry: false, dropRate: 0, secureTcp: false });
  });
});

describe("drop_packet on the data path", () => {
  it("drops one new connection in drop_rate, counted as drop_packet; established flows pass", () => {
    const e = director();
    expect(run(e, syn(30000), OUT).egress).toBe(IN); // an established-to-be flow before the flood
    e.sysctl.dropPacket = 3;
    e.sysctl.amDroprate = 4;
    new Defense(e).update();
    let forwarded = 0;
    for (let k = 0; k < 40; k++) if (run(e, syn(40000 + k), OUT).egress === IN) forwarded++;
    expect(drops(e, "drop_packet")).toBe(10);
    expect(forwarded).toBe(30);
    // packets of an existing connection are never dropped by it
    const ack = eth({ src: MAC.client, dst: MAC.dirOut })
      .ipv4({ src: IP.client, dst: IP.vip })
      .tcp({ sport: 30000, dport: 80, flags: TCP_ACK })
      .build();
    for (let k = 0; k < 8; k++) expect(run(e, ack, OUT).egress).toBe(IN);
    expect(drops(e, "drop_packet")).toBe(10);
  });
});

describe("drop_entry (ip_vs_random_dropentry)", () => {
  it("removes embryonic entries; keeps established ones touched less than 60 s ago", () => {
    const e = director();
    clock.nowMs = 1_000_000;
    const embryonic = fill(e, 1000, TcpState.SYN_RECV);
    const established = fill(e, 1000, TcpState.ESTABLISHED, 5000);
    for (const i of established) e.ct.inPkts[i] = 3;
    e.sysctl.dropEntry = 3;
    const d = new Defense(e);
    const rnd = lcg(7);
    let dropped = 0;
    for (let t = 0; t < 40; t++) dropped += d.tick(rnd);
    const usedEmbryonic = embryonic.filter((i) => (e.ct.flags[i]! & CONN_F_USED) !== 0).length;
    expect(dropped).toBe(e.ct.entriesDropped);
    expect(dropped).toBe(1000 - usedEmbryonic);
    // 40 rounds of capacity/32 random slots reach most of the table
    expect(usedEmbryonic).toBeLessThan(400);
    // established entries touched less than 60 s ago are never dropped
    expect(established.every((i) => (e.ct.flags[i]! & CONN_F_USED) !== 0)).toBe(true);
  });

  it("drops idle established entries with few packets, one in N of those with N packets", () => {
    const e = director();
    clock.nowMs = 1_000_000;
    const idle = fill(e, 2000, TcpState.ESTABLISHED);
    // idle 70 s: expiry 900 s after a touch 70 s ago
    for (const i of idle) {
      e.ct.setExpires(i, clock.nowMs - 70_000 + e.ct.tcpTimeoutMs[TcpState.ESTABLISHED]!);
      e.ct.inPkts[i] = 1;
    }
    const busy = fill(e, 1000, TcpState.ESTABLISHED, 10_000);
    for (const i of busy) {
      e.ct.setExpires(i, clock.nowMs - 70_000 + e.ct.tcpTimeoutMs[TcpState.ESTABLISHED]!);
      e.ct.inPkts[i] = 9; // more than 8 packets: kept
    }
    const before = e.ct.count;
    e.ct.randomDropEntry(lcg(3));
    e.ct.randomDropEntry(lcg(4));
    expect(e.ct.count).toBeLessThan(before);
    expect(busy.every((i) => (e.ct.flags[i]! & CONN_F_USED) !== 0)).toBe(true);
  });
});

describe("secure_tcp (tcp_states_dos)", () => {
  it("a client's ACK does not establish a NAT connection the real server has not answered", () => {
    const handshake = (secure: boolean): number[] => {
      const e = director();
      if (secure) {
        e.sysctl.secureTcp = 3;
        new Defense(e).update();
      }
      const states: number[] = [];
      run(e, syn(50000), OUT);
      const c = e.ct.lookupIn(IPPROTO_TCP, ipToU32(IP.client) | 0, 50000, ipToU32(IP.vip) | 0, 80);
      states.push(e.ct.state[c]!);
      const ack = eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .tcp({ sport: 50000, dport: 80, flags: TCP_ACK })
        .build();
      run(e, ack, OUT);
      states.push(e.ct.state[c]!);
      const synack = eth({ src: MAC.rs1, dst: MAC.dirIn })
        .ipv4({ src: IP.rs1, dst: IP.client })
        .tcp({ sport: 80, dport: 50000, flags: TCP_SYN | TCP_ACK })
        .build();
      run(e, synack, IN);
      states.push(e.ct.state[c]!);
      const sack = eth({ src: MAC.rs1, dst: MAC.dirIn })
        .ipv4({ src: IP.rs1, dst: IP.client })
        .tcp({ sport: 80, dport: 50000, flags: TCP_ACK })
        .build();
      run(e, sack, IN);
      states.push(e.ct.state[c]!);
      return states;
    };
    const { SYN_RECV, ESTABLISHED, SYNACK } = TcpState;
    expect(handshake(false)).toEqual([SYN_RECV, ESTABLISHED, ESTABLISHED, ESTABLISHED]);
    expect(handshake(true)).toEqual([SYN_RECV, SYN_RECV, SYNACK, ESTABLISHED]);
  });
});

describe("lvsadm --sysctl", () => {
  it("lists and sets the defence knobs, checks their range, and re-evaluates at once", () => {
    const e = director();
    const d = new Defense(e);
    const t = new EngineControl(e);
    const list = runCommand(["--sysctl"], t).stdout;
    for (const line of [
      "net.ipv4.vs.am_droprate = 10",
      "net.ipv4.vs.amemthresh = 1024",
      "net.ipv4.vs.drop_entry = 0",
      "net.ipv4.vs.drop_packet = 0",
      "net.ipv4.vs.secure_tcp = 0",
    ])
      expect(list).toContain(`${line}\n`);
    expect(runCommand(["--sysctl", "drop_entry=4"], t)).toEqual({
      stdout: "",
      stderr: "lvsadm: --sysctl: drop_entry takes 0..3\n",
      code: 2,
    });
    // a table "short of memory" by a huge threshold: setting mode 1 shows 2 at once, as the kernel
    expect(runCommand(["--sysctl", "amemthresh=1000000000"], t).code).toBe(0);
    // `sysctl -w` prints what was written; reading shows the automatic mode switched on at once
    expect(runCommand(["--sysctl", "net.ipv4.vs.drop_packet=1"], t).stdout).toBe(
      "net.ipv4.vs.drop_packet = 1\n",
    );
    expect(runCommand(["--sysctl", "drop_packet"], t).stdout).toBe("net.ipv4.vs.drop_packet = 2\n");
    expect(e.dropRate).toBe(1);
    d.stop();
    // lvs-ts's embryonic-entry bound (percent of the table)
    expect(runCommand(["--sysctl", "embryonic_share"], t).stdout).toBe("net.ipv4.vs.embryonic_share = 75\n");
    expect(runCommand(["--sysctl", "embryonic_share=40"], t).code).toBe(0);
    expect(e.sysctl.embryonicShare).toBe(40);
    expect(runCommand(["--sysctl", "embryonic_share=0"], t).code).toBe(2);
  });
});
