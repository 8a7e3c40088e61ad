/**
 * vrrp_sync_group (src/control/vrrp/sync-group.ts) through the manager, on the simulated wire
 * (harness.ts): a NAT director pair with an outside VIP instance (VRID 51, 10.0.0.100) and an
 * inside gateway instance (VRID 52, 10.0.0.200) in one group, keepalived 2.2's semantics.
 */
import { describe, expect, it } from "vitest";
import { Node, Wire } from "./harness.js";

const inst = (name: string, vrid: number, prio: number, vip: string, extra = "") => `
vrrp_instance ${name} {
  state BACKUP
  interface eth0
  virtual_router_id ${vrid}
  priority ${prio}
  advert_int 1
  virtual_ipaddress {
    ${vip}
  }
  ${extra}
}
`;

const group = (extra = "") => `
vrrp_script chk {
  script /bin/chk
  interval 1
}
vrrp_sync_group G {
  group {
    OUT
    IN
  }
  notify_master /notify/master
  notify_fault /notify/fault
  notify "/notify/any x"
  ${extra}
}
`;

const director = (prio: number, prioIn = prio, inExtra = "") =>
  `${inst("OUT", 51, prio, "10.0.0.100")}${inst("IN", 52, prioIn, "10.0.0.200", inExtra)}${group()}`;

describe("vrrp_sync_group", () => {
  it("alone: the first member whose timer runs out waits for the other, then both become MASTER together", async () => {
    const w = new Wire();
    // OUT 150: Master_Down_Interval 3.414 s; IN 100: 3.609 s
    const a = new Node(w, "a", 1, director(150, 100));
    a.vrrp.start();
    expect(a.group("G")).toBe("BACKUP");
    await w.advance(3500);
    // OUT's timer ran out, but IN does not want MASTER yet: OUT is held in BACKUP
    expect([a.state("OUT"), a.state("IN")]).toEqual(["BACKUP", "BACKUP"]);
    expect(a.vrrp.instance("OUT")!.wantsMaster).toBe(true);
    await w.advance(200);
    expect([a.state("OUT"), a.state("IN")]).toEqual(["MASTER", "MASTER"]);
    expect(a.group("G")).toBe("MASTER");
    expect(a.transitions()).toEqual([
      "OUT INIT->BACKUP start",
      "IN INIT->BACKUP start",
      "IN BACKUP->MASTER master_down",
      "OUT BACKUP->MASTER sync_group",
    ]);
    expect(a.owns("10.0.0.100") && a.owns("10.0.0.200")).toBe(true);
    // group notify: keepalived's "GROUP NAME STATE 0"; BACKUP at start (no notify_backup script)
    expect(a.notifies().filter((c) => c.includes("GROUP"))).toEqual([
      ["/notify/any", "x", "GROUP", "G", "BACKUP", "0"],
      ["/notify/any", "x", "GROUP", "G", "MASTER", "0"],
    ]);
    expect(a.notifies()).toContainEqual(["/notify/master"]);
    expect(a.vrrp.statusText()).toMatch(/\nSyncGroup State Members LastChange\nG MASTER OUT,IN \S+Z\n$/);
    expect(a.vrrp.status().map((s) => s.syncGroup)).toEqual(["G", "G"]);
  });

  it("a pair converges with both VIPs on the same director, whatever the start order", async () => {
    const w = new Wire();
    const b = new Node(w, "b", 2, director(100));
    b.vrrp.start();
    await w.advance(6000);
    expect([b.state("OUT"), b.state("IN")]).toEqual(["MASTER", "MASTER"]);
    const a = new Node(w, "a", 1, director(150));
    a.vrrp.start();
    await w.advance(6000);
    expect([a.state("OUT"), a.state("IN"), a.group("G")]).toEqual(["MASTER", "MASTER", "MASTER"]);
    expect([b.state("OUT"), b.state("IN"), b.group("G")]).toEqual(["BACKUP", "BACKUP", "BACKUP"]);
    expect(b.owns("10.0.0.100") || b.owns("10.0.0.200")).toBe(false);
  });

  it("a failing track_script on one member takes the whole group to FAULT; the peer takes both VIPs; recovery preempts back", async () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, director(150, 150, "track_script {\n    chk\n  }"));
    const b = new Node(w, "b", 2, director(100));
    a.vrrp.start();
    b.vrrp.start();
    await w.advance(8000);
    expect([a.state("OUT"), a.state("IN"), b.state("OUT"), b.state("IN")]).toEqual([
      "MASTER",
      "MASTER",
      "BACKUP",
      "BACKUP",
    ]);
    const t0 = w.t;
    a.results.set("/bin/chk", false);
    await w.advance(1000);
    expect([a.state("OUT"), a.state("IN"), a.group("G")]).toEqual(["FAULT", "FAULT", "FAULT"]);
    // both members resigned with priority 0
    expect(
      w
        .adverts("a")
        .filter(([t, , p]) => t >= t0 && p === 0)
        .map(([, vrid]) => vrid)
        .sort(),
    ).toEqual([51, 52]);
    expect(a.notifies()).toContainEqual(["/notify/fault"]);
    expect(a.notifies()).toContainEqual(["/notify/any", "x", "GROUP", "G", "FAULT", "0"]);
    // b takes over within its Skew_Time (0.61 s) of the priority-0 adverts
    await w.advance(700);
    expect([b.state("OUT"), b.state("IN"), b.group("G")]).toEqual(["MASTER", "MASTER", "MASTER"]);
    expect(a.owns("10.0.0.100") || a.owns("10.0.0.200")).toBe(false);
    // the script recovers: a's members return to BACKUP, then preempt (150 > 100) together
    a.results.set("/bin/chk", true);
    await w.advance(1000);
    expect([a.state("OUT"), a.state("IN"), a.group("G")]).toEqual(["BACKUP", "BACKUP", "BACKUP"]);
    await w.advance(4000);
    expect([a.state("OUT"), a.state("IN"), b.state("OUT"), b.state("IN")]).toEqual([
      "MASTER",
      "MASTER",
      "BACKUP",
      "BACKUP",
    ]);
  });

  it("a member that hears a higher priority takes the MASTER members to BACKUP; the other is then held", async () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, director(150));
    a.vrrp.start();
    await w.advance(5000);
    expect(a.group("G")).toBe("MASTER");
    // a third router with priority 200 for the outside VRID only
    const c = new Node(w, "c", 3, inst("X", 51, 200, "10.0.0.100"));
    c.vrrp.start();
    await w.advance(5000);
    expect(c.state("X")).toBe("MASTER");
    expect([a.state("OUT"), a.state("IN"), a.group("G")]).toEqual(["BACKUP", "BACKUP", "BACKUP"]);
    expect(a.transitions("IN").at(-1)).toBe("MASTER->BACKUP sync_group");
    // nobody advertises VRID 52 now, yet IN stays BACKUP: OUT does not want MASTER
    await w.advance(10_000);
    expect(a.state("IN")).toBe("BACKUP");
    expect(a.vrrp.instance("IN")!.wantsMaster).toBe(true);
    expect(a.owns("10.0.0.200")).toBe(false);
  });

  it("without sync_group_tracking_weight a weighted track_script is ignored (warned); with it the weight applies", async () => {
    const w = new Wire();
    const conf = director(150, 150, "track_script {\n    chk weight -100\n  }");
    const a = new Node(w, "a", 1, conf);
    expect(a.events.map((e) => e.warning)).toContain(
      "track_script chk with a weight ignored in vrrp_sync_group G (set sync_group_tracking_weight to keep weights)",
    );
    a.results.set("/bin/chk", false);
    a.vrrp.start();
    await w.advance(500);
    expect(a.vrrp.instance("IN")!.effectivePriority).toBe(150);
    const w2 = new Wire();
    const b = new Node(w2, "b", 2, conf.replace('notify "/notify/any x"', "sync_group_tracking_weight"));
    b.results.set("/bin/chk", false);
    b.vrrp.start();
    await w2.advance(500);
    expect(b.vrrp.instance("IN")!.effectivePriority).toBe(50);
  });
});
