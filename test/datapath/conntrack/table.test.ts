import { beforeEach, describe, expect, it } from "vitest";
import { clock } from "../../../src/datapath/clock.js";
import { DIR_INPUT, DIR_OUTPUT, TcpState } from "../../../src/datapath/conntrack/states.js";
import { ALLOC_FAIL, ConnTable, type ConnTableOwner } from "../../../src/datapath/conntrack/table.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { DEST_F_AVAILABLE, DEST_F_OVERLOAD, Dest, FwdMethod, Service } from "../../../src/tables/model.js";

const SYN = 0x02;
const ACK = 0x10;
const FIN = 0x01;

function ip(s: string): number {
  return s.split(".").reduce((a, o) => a * 256 + Number(o), 0) >>> 0;
}

class Owner implements ConnTableOwner {
  dests: (Dest | null)[] = [];
  services: (Service | null)[] = [];
  released: Dest[] = [];
  releaseDestIfUnused(d: Dest): void {
    if (d.activeConns + d.inactConns + d.persistConns === 0) this.released.push(d);
  }
  addDest(addr: string, port: number, weight = 1): Dest {
    const d = new Dest(ip(addr), port, weight, FwdMethod.MASQ);
    d.id = this.dests.length;
    this.dests.push(d);
    return d;
  }
}

const C = ip("203.0.113.7");
const V = ip("10.0.0.100");
const R1 = ip("192.168.10.1");

function newConn(t: ConnTable, d: Dest, cport = 40000, p = IPPROTO_TCP, tpl = -1): number {
  return t.create(p, C, cport, V, 80, d.addr, d.port, C, cport, FwdMethod.MASQ, false, d, 0, tpl);
}

describe("ConnTable", () => {
  let owner: Owner;
  let t: ConnTable;
  let d: Dest;
  beforeEach(() => {
    clock.nowMs = 1_000_000;
    owner = new Owner();
    const s = new Service(IPPROTO_TCP, V, 80, "rr");
    s.id = 0;
    s.timeout = 360;
    owner.services.push(s);
    t = new ConnTable(64, owner);
    d = owner.addDest("192.168.10.1", 8080);
  });

  it("finds a connection by its client-side and server-side keys", () => {
    const c = newConn(t, d);
    expect(c).toBeGreaterThanOrEqual(0);
    expect(t.lookupIn(IPPROTO_TCP, C, 40000, V, 80)).toBe(c);
    // reply from the real server: RIP:8080 -> client
    expect(t.lookupOut(IPPROTO_TCP, R1, 8080, C, 40000)).toBe(c);
    expect(t.lookupIn(IPPROTO_TCP, C, 40001, V, 80)).toBe(-1);
    expect(t.lookupIn(IPPROTO_UDP, C, 40000, V, 80)).toBe(-1);
    expect(t.lookupOut(IPPROTO_TCP, R1, 80, C, 40000)).toBe(-1);
    expect(t.count).toBe(1);
  });

  it("counts a new connection inactive, then active once established, and back on close", () => {
    const c = newConn(t, d);
    expect([d.activeConns, d.inactConns]).toEqual([0, 1]);
    t.tcpTransition(c, DIR_INPUT, SYN);
    expect(t.state[c]).toBe(TcpState.SYN_RECV);
    // SYN_RECV counts as active in current kernels
    expect([d.activeConns, d.inactConns]).toEqual([1, 0]);
    t.tcpTransition(c, DIR_OUTPUT, SYN | ACK);
    t.tcpTransition(c, DIR_INPUT, ACK);
    expect(t.state[c]).toBe(TcpState.ESTABLISHED);
    expect(t.stateName(c)).toBe("ESTABLISHED");
    expect(t.expiresAt(c)).toBe(clock.nowMs + 900_000);
    t.tcpTransition(c, DIR_INPUT, FIN | ACK);
    expect(t.state[c]).toBe(TcpState.CLOSE_WAIT);
    expect([d.activeConns, d.inactConns]).toEqual([0, 1]);
    expect(t.expiresAt(c)).toBe(clock.nowMs + 60_000);
  });

  it("uses the input-only transitions for connections whose replies bypass the director", () => {
    const c = t.create(IPPROTO_TCP, C, 1, V, 80, R1, 80, C, 1, FwdMethod.ROUTE, true, d, 0, -1);
    t.tcpTransition(c, DIR_INPUT, SYN);
    t.tcpTransition(c, DIR_INPUT, ACK);
    expect(t.state[c]).toBe(TcpState.ESTABLISHED);
    t.tcpTransition(c, DIR_INPUT, FIN | ACK);
    expect(t.state[c]).toBe(TcpState.FIN_WAIT); // INPUT would give CLOSE_WAIT
  });

  it("expires lazily on lookup and by sweep, and unbinds from the dest", () => {
    const c = newConn(t, d, 1000, IPPROTO_UDP);
    t.touch(c);
    expect(t.expiresAt(c)).toBe(clock.nowMs + 300_000);
    const c2 = newConn(t, d, 1001, IPPROTO_UDP);
    t.touch(c2);
    expect(d.inactConns).toBe(2);
    clock.nowMs += 300_000;
    expect(t.lookupIn(IPPROTO_UDP, C, 1000, V, 80)).toBe(-1);
    expect(t.count).toBe(1);
    expect(t.sweep(1000)).toBe(1);
    expect(t.count).toBe(0);
    expect(d.inactConns).toBe(0);
  });

  it("sweeps a bounded number of slots per call", () => {
    for (let k = 0; k < 10; k++) t.touch(newConn(t, d, 2000 + k, IPPROTO_UDP));
    clock.nowMs += 301_000;
    let freed = 0;
    for (let k = 0; k < 8; k++) freed += t.sweep(8);
    expect(freed).toBe(10);
  });

  it("keeps a template while it controls connections and re-arms it on expiry", () => {
    const tpl = t.createTemplate(IPPROTO_TCP, C, V, 80, d, 8080, 0, 360);
    expect(d.persistConns).toBe(1);
    expect(t.stateName(tpl)).toBe("NONE");
    const c = newConn(t, d, 40000, IPPROTO_TCP, tpl);
    expect(t.nControl[tpl]).toBe(1);
    expect(t.lookupTemplate(IPPROTO_TCP, C, V, 80)).toBe(tpl);
    // a template is not found by an ordinary lookup with client port 0
    expect(t.lookupIn(IPPROTO_TCP, C, 0, V, 80)).toBe(-1);
    t.tcpTransition(c, DIR_INPUT, SYN);
    t.tcpTransition(c, DIR_INPUT, ACK);
    expect(t.stateName(tpl)).toBe("ASSURED");
    clock.nowMs += 361_000;
    expect(t.lookupTemplate(IPPROTO_TCP, C, V, 80)).toBe(tpl); // still controls c
    expect(t.expiresAt(tpl)).toBe(clock.nowMs + 360_000);
    t.free(c);
    expect(t.nControl[tpl]).toBe(0);
    clock.nowMs += 361_000;
    expect(t.lookupTemplate(IPPROTO_TCP, C, V, 80)).toBe(-1);
    expect(d.persistConns).toBe(0);
  });

  it("frees an invalidated template when its last connection goes", () => {
    const tpl = t.createTemplate(IPPROTO_TCP, C, V, 80, d, 8080, 0, 360);
    const c = newConn(t, d, 40000, IPPROTO_TCP, tpl);
    t.invalidateTemplate(tpl);
    expect(t.lookupTemplate(IPPROTO_TCP, C, V, 80)).toBe(-1);
    expect(t.count).toBe(2);
    t.free(c);
    expect(t.count).toBe(0);
  });

  it("at its maximum size evicts embryonic connections before established ones", () => {
    const small = new ConnTable(8, owner);
    const est: number[] = [];
    for (let k = 0; k < 7; k++) {
      const c = small.create(IPPROTO_TCP, C, 100 + k, V, 80, d.addr, d.port, C, 100 + k, 0, false, d, 0, -1);
      small.tcpTransition(c, DIR_INPUT, SYN);
      small.tcpTransition(c, DIR_INPUT, ACK);
      est.push(c);
    }
    const emb = small.create(IPPROTO_TCP, C, 200, V, 80, d.addr, d.port, C, 200, 0, false, d, 0, -1);
    small.tcpTransition(emb, DIR_INPUT, SYN);
    expect(small.count).toBe(8);
    const n = small.create(IPPROTO_TCP, C, 300, V, 80, d.addr, d.port, C, 300, 0, false, d, 0, -1);
    expect(n).toBeGreaterThanOrEqual(0);
    expect(small.evictions).toBe(1);
    expect(small.lookupIn(IPPROTO_TCP, C, 200, V, 80)).toBe(-1); // the SYN_RECV entry went
    for (let k = 0; k < 7; k++)
      expect(small.lookupIn(IPPROTO_TCP, C, 100 + k, V, 80)).toBeGreaterThanOrEqual(0);
    expect(small.count).toBe(8);
    expect(d.activeConns + d.inactConns).toBe(8);
  });

  it("never evicts a template that controls connections; fails the allocation instead", () => {
    const small = new ConnTable(2, owner);
    const tpl = small.createTemplate(IPPROTO_TCP, C, V, 80, d, 8080, 0, 360);
    const c = small.create(IPPROTO_TCP, C, 1, V, 80, d.addr, d.port, C, 1, 0, false, d, 0, tpl);
    small.tcpTransition(c, DIR_INPUT, SYN);
    small.tcpTransition(c, DIR_INPUT, ACK);
    // c is established and evictable as the last resort; the template is not.
    const n = small.create(IPPROTO_TCP, C, 2, V, 80, d.addr, d.port, C, 2, 0, false, d, 0, -1);
    expect(n).toBeGreaterThanOrEqual(0);
    expect(small.lookupTemplate(IPPROTO_TCP, C, V, 80)).toBe(tpl);
    const tiny = new ConnTable(1, owner);
    const t1 = tiny.createTemplate(IPPROTO_TCP, C, V, 81, d, 8080, 0, 360);
    tiny.nControl[t1] = 1; // pretend it controls a connection elsewhere
    expect(tiny.create(IPPROTO_UDP, C, 3, V, 80, d.addr, d.port, C, 3, 0, false, d, 0, -1)).toBe(ALLOC_FAIL);
    expect(tiny.allocFailures).toBe(1);
  });

  it("applies the upper/lower threshold hysteresis as connections come and go", () => {
    d.uThreshold = 3;
    d.lThreshold = 2;
    const cs = [newConn(t, d, 1), newConn(t, d, 2)];
    expect(d.flags & DEST_F_OVERLOAD).toBe(0);
    cs.push(newConn(t, d, 3));
    expect(d.flags & DEST_F_OVERLOAD).toBe(DEST_F_OVERLOAD);
    t.free(cs.pop()!);
    expect(d.flags & DEST_F_OVERLOAD).toBe(DEST_F_OVERLOAD); // 2 is not < lthreshold 2
    t.free(cs.pop()!);
    expect(d.flags & DEST_F_OVERLOAD).toBe(0);
  });

  it("flushDest removes a dest's connections and templates and releases the dest", () => {
    const d2 = owner.addDest("192.168.10.2", 8080);
    const tpl = t.createTemplate(IPPROTO_TCP, C, V, 80, d, 8080, 0, 360);
    newConn(t, d, 1, IPPROTO_TCP, tpl);
    newConn(t, d, 2);
    const keep = newConn(t, d2, 3);
    d.flags &= ~DEST_F_AVAILABLE;
    expect(t.flushDest(d.id)).toBe(3);
    expect(t.count).toBe(1);
    expect(t.lookupIn(IPPROTO_TCP, C, 3, V, 80)).toBe(keep);
    expect(owner.released).toContain(d);
    expect([d.activeConns, d.inactConns, d.persistConns]).toEqual([0, 0, 0]);
  });

  it("handles many connections with colliding buckets", () => {
    const big = new ConnTable(5000, owner, 16); // 16 buckets: long chains
    const ids: number[] = [];
    for (let k = 0; k < 5000; k++)
      ids.push(
        big.create(IPPROTO_UDP, C + k, k & 0xffff, V, 53, R1, 53, C + k, k & 0xffff, 0, false, d, 0, -1),
      );
    for (let k = 0; k < 5000; k += 7)
      expect(big.lookupIn(IPPROTO_UDP, C + k, k & 0xffff, V, 53)).toBe(ids[k]);
    for (let k = 0; k < 5000; k += 3) big.free(ids[k]!);
    for (let k = 0; k < 5000; k++) {
      const want = k % 3 === 0 ? -1 : ids[k];
      expect(big.lookupOut(IPPROTO_UDP, R1, 53, C + k, k & 0xffff)).toBe(want);
    }
  });
});
