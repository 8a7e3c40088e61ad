/**
 * The VRRP manager's gratuitous ARP options (garp_master_*, global_defs vrrp_garp_*) and its
 * reload keeping state (keepalived's SIGHUP), on the simulated wire (harness.ts).
 */
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/control/config/types.js";
import { Node, Wire } from "./harness.js";

const inst = (name: string, vrid: number, prio: number, vips: string[], extra = "") => `
vrrp_instance ${name} {
  state BACKUP
  interface eth0
  virtual_router_id ${vrid}
  priority ${prio}
  advert_int 1
  virtual_ipaddress {
    ${vips.join("\n    ")}
  }
  ${extra}
}
`;

/** MASTER at 3.414 s (priority 150, alone). */
const MASTER_AT = 1000 + 3415;

describe("gratuitous ARP", () => {
  it("keepalived's defaults: 5 at once, 5 more after 5 s, no refresh", async () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, inst("VI", 51, 150, ["10.0.0.100"]));
    a.vrrp.start();
    await w.advance(30_000);
    expect(w.garps("a", "10.0.0.100")).toEqual([
      ...Array(5).fill(MASTER_AT),
      ...Array(5).fill(MASTER_AT + 5000),
    ]);
  });

  it("garp_master_repeat/delay/refresh/refresh_repeat per instance", async () => {
    const w = new Wire();
    const a = new Node(
      w,
      "a",
      1,
      inst(
        "VI",
        51,
        150,
        ["10.0.0.100"],
        "garp_master_repeat 2\n  garp_master_delay 0\n  garp_master_refresh 10\n  garp_master_refresh_repeat 3",
      ),
    );
    a.vrrp.start();
    await w.advance(25_000);
    expect(w.garps("a", "10.0.0.100")).toEqual([
      MASTER_AT,
      MASTER_AT,
      ...Array(3).fill(MASTER_AT + 10_000),
      ...Array(3).fill(MASTER_AT + 20_000),
    ]);
  });

  it("global_defs defaults, overridden per instance; vrrp_garp_interval spaces a link's ARPs", async () => {
    const w = new Wire();
    const conf = `global_defs {
  vrrp_garp_master_repeat 2
  vrrp_garp_master_delay 3
  vrrp_garp_interval 0.1
}
${inst("VI", 51, 150, ["10.0.0.100", "10.0.0.101"])}`;
    const a = new Node(w, "a", 1, conf);
    a.vrrp.start();
    await w.advance(10_000);
    // two rounds over both addresses, one ARP per 100 ms: .100 at +0 and +200, .101 at +100 and +300
    expect(w.garps("a", "10.0.0.100")).toEqual([
      MASTER_AT,
      MASTER_AT + 200,
      MASTER_AT + 3000,
      MASTER_AT + 3200,
    ]);
    expect(w.garps("a", "10.0.0.101")).toEqual([
      MASTER_AT + 100,
      MASTER_AT + 300,
      MASTER_AT + 3100,
      MASTER_AT + 3300,
    ]);
  });

  it("leaving MASTER drops the ARPs still queued", async () => {
    const w = new Wire();
    const conf = `global_defs {\n  vrrp_garp_interval 1\n}\n${inst("VI", 51, 150, ["10.0.0.100"])}`;
    const a = new Node(w, "a", 1, conf);
    a.vrrp.start();
    await w.advance(3500);
    expect(a.state("VI")).toBe("MASTER");
    a.vrrp.stop();
    await w.advance(10_000);
    expect(w.garps("a", "10.0.0.100")).toEqual([MASTER_AT]);
  });
});

describe("reload keeping state", () => {
  const two = (prioA: number, extra = "") =>
    `${inst("VI_1", 51, prioA, ["10.0.0.100"], extra)}${inst("VI_2", 52, 150, ["10.0.0.200"])}`;

  it("a MASTER stays MASTER (no election, an advert at once with the new priority); counters kept", async () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, two(150));
    const b = new Node(w, "b", 2, two(100));
    a.vrrp.start();
    b.vrrp.start();
    await w.advance(8000);
    expect([a.state("VI_1"), b.state("VI_1")]).toEqual(["MASTER", "BACKUP"]);
    const sent = a.vrrp.status()[0]!.sent;
    const before = a.transitions().length;
    const t = w.t;
    expect(a.reload(two(140))).toEqual({ kept: ["VI_1", "VI_2"], added: [], removed: [] });
    expect(w.adverts("a").filter(([at]) => at === t)).toEqual([
      [t, 51, 140],
      [t, 52, 150],
    ]);
    await w.advance(5000);
    expect(a.transitions().length).toBe(before);
    expect([a.state("VI_1"), a.state("VI_2"), b.state("VI_1")]).toEqual(["MASTER", "MASTER", "BACKUP"]);
    expect(a.vrrp.status()[0]!.priority).toBe(140);
    expect(a.vrrp.status()[0]!.sent).toBeGreaterThan(sent);
    expect(a.owns("10.0.0.100")).toBe(true);
    // a priority that no longer wins: the backup preempts as usual
    a.reload(two(50));
    await w.advance(5000);
    expect([a.state("VI_1"), b.state("VI_1")]).toEqual(["BACKUP", "MASTER"]);
    expect(a.transitions("VI_1").at(-1)).toBe("MASTER->BACKUP higher_priority");
  });

  it("a BACKUP given the higher priority preempts; removed instances resign with priority 0 and their VIPs stay disowned; new ones start", async () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, two(150));
    const b = new Node(w, "b", 2, two(100));
    a.vrrp.start();
    b.vrrp.start();
    await w.advance(8000);
    b.reload(two(200));
    await w.advance(4000);
    expect([a.state("VI_1"), b.state("VI_1")]).toEqual(["BACKUP", "MASTER"]);
    // a drops VI_2 (it was MASTER there) and gains VI_3
    const t = w.t;
    const r = a.reload(
      `${inst("VI_1", 51, 150, ["10.0.0.100"])}${inst("VI_3", 53, 150, ["10.0.0.50"], "notify_fault /notify/fault")}`,
    );
    expect(r).toEqual({ kept: ["VI_1"], added: ["VI_3"], removed: ["VI_2"] });
    expect(w.adverts("a").filter(([at, vrid]) => at === t && vrid === 52)).toEqual([[t, 52, 0]]);
    expect(a.owns("10.0.0.200")).toBe(false);
    expect(a.transitions("VI_2").at(-1)).toBe("MASTER->INIT deleted");
    expect(a.state("VI_3")).toBe("BACKUP");
    await w.advance(700); // b takes VI_2 within its Skew_Time
    expect(b.state("VI_2")).toBe("MASTER");
    await w.advance(4000);
    expect(a.state("VI_3")).toBe("MASTER");
    expect(a.state("VI_1")).toBe("BACKUP");
  });

  it("a configuration that cannot run changes nothing", async () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, two(150));
    a.vrrp.start();
    await w.advance(5000);
    expect(() => a.reload(two(150).replace("interface eth0", "interface eth9"))).toThrow(ConfigError);
    await w.advance(3000);
    expect([a.state("VI_1"), a.state("VI_2")]).toEqual(["MASTER", "MASTER"]);
    expect(a.transitions()).toEqual([
      "VI_1 INIT->BACKUP start",
      "VI_2 INIT->BACKUP start",
      "VI_1 BACKUP->MASTER master_down",
      "VI_2 BACKUP->MASTER master_down",
    ]);
  });

  it("a FAULT held by a script stays FAULT when the script is unchanged (no flapping)", async () => {
    const w = new Wire();
    const conf = `vrrp_script chk {\n  script /bin/chk\n}\n${two(150, "track_script {\n    chk\n  }")}`;
    const a = new Node(w, "a", 1, conf);
    a.results.set("/bin/chk", false);
    a.vrrp.start();
    await w.advance(2000);
    expect(a.state("VI_1")).toBe("FAULT");
    const n = a.transitions("VI_1").length;
    a.reload(conf.replace("priority 150", "priority 160"));
    await w.advance(3000);
    expect(a.state("VI_1")).toBe("FAULT");
    expect(a.transitions("VI_1").length).toBe(n);
    // the script no longer tracked: FAULT clears on reload
    a.reload(two(150));
    expect(a.state("VI_1")).toBe("BACKUP");
    expect(a.transitions("VI_1").at(-1)).toBe("FAULT->BACKUP reload");
  });
});
