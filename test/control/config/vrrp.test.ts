/** keepalived.conf's vrrp_instance blocks and global vrrp_version (src/control/config/parser.ts). */
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { ipToU32 } from "../../../src/lib/addr.js";

const ip = ipToU32;

describe("vrrp_instance", () => {
  it("reads every implemented keyword", () => {
    const cfg = parseConfigText(
      `global_defs {
  router_id lvs1
  vrrp_version 3
}
vrrp_instance VI_1 {
  state MASTER
  interface lvs0
  virtual_router_id 51
  priority 150
  advert_int 0.5
  nopreempt
  preempt_delay 10
  unicast_src_ip 10.0.0.1
  unicast_peer {
    10.0.0.2
    10.0.0.3
  }
  virtual_ipaddress {
    10.0.0.100/24 dev lvs0 label lvs0:1
    10.0.0.101
  }
  virtual_ipaddress_excluded {
    10.0.0.102
  }
  down_timer_adverts 5
}
vrrp_instance VI_2 {
  interface lvs0
  virtual_router_id 52
  vrrp_version 2
  authentication {
    auth_type PASS
    auth_pass s3cret
  }
  virtual_ipaddress {
    10.0.0.200
  }
}
`,
      "v.conf",
    );
    expect(cfg.warnings).toEqual([
      "v.conf:1: global_defs: only vrrp_version, lvs_sync_daemon and the vrrp_garp_* keywords are used by lvsd (the rest of the block is ignored)",
    ]);
    expect(cfg.vrrpInstances).toEqual([
      {
        where: { file: "v.conf", line: 5 },
        name: "VI_1",
        interface: "lvs0",
        interfaceWhere: { file: "v.conf", line: 7 },
        vrid: 51,
        state: "MASTER",
        priority: 150,
        advertInt: 0.5,
        version: 3,
        nopreempt: true,
        preemptDelay: 10,
        unicastSrcIp: ip("10.0.0.1"),
        unicastPeers: [ip("10.0.0.2"), ip("10.0.0.3")],
        vips: [ip("10.0.0.100"), ip("10.0.0.101")],
        vipsExcluded: [ip("10.0.0.102")],
        notify: {},
        trackScripts: [],
        trackInterfaces: [],
        downTimerAdverts: 5,
      },
      {
        where: { file: "v.conf", line: 27 },
        name: "VI_2",
        interface: "lvs0",
        interfaceWhere: { file: "v.conf", line: 28 },
        vrid: 52,
        version: 2,
        authPass: "s3cret",
        nopreempt: false,
        unicastPeers: [],
        vips: [ip("10.0.0.200")],
        vipsExcluded: [],
        notify: {},
        trackScripts: [],
        trackInterfaces: [],
      },
    ]);
  });

  it("warns, with file and line, about the VRRP keywords not implemented yet", () => {
    const cfg = parseConfigText(
      `vrrp_script chk { script "/bin/true" }
vrrp_sync_group G { group { VI_1 } }
vrrp_instance VI_1 {
  interface lvs0
  virtual_router_id 51
  track_script { chk }
  notify_master /bin/m.sh
  notify /bin/n.sh
  garp_master_delay 1
  use_vmac
  frobnicate
  virtual_ipaddress { 10.0.0.100 frob }
}
`,
      "w.conf",
    );
    expect(cfg.warnings).toEqual([
      "w.conf:10: use_vmac is not implemented by lvsd yet (ignored)",
      "w.conf:11: unknown keyword 'frobnicate' in vrrp_instance (ignored)",
      "w.conf:12: virtual_ipaddress 10.0.0.100: 'frob' is not supported by lvsd (ignored)",
      // sync groups are checked once every vrrp_instance is read
      "w.conf:2: vrrp_sync_group G has only 1 member: this probably isn't what you want",
    ]);
    expect(cfg.vrrpInstances[0]?.vips).toEqual([ip("10.0.0.100")]);
  });

  it.each([
    ["vrrp_instance A {\n  virtual_router_id 1\n}", "e.conf:1: vrrp_instance A: no interface"],
    ["vrrp_instance A {\n  interface x\n}", "e.conf:1: vrrp_instance A: no virtual_router_id"],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 256\n}",
      "e.conf:3: virtual_router_id: expected an integer 1..255, got '256'",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n  priority 0\n}",
      "e.conf:4: priority: expected an integer 1..255, got '0'",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n  state MAYBE\n}",
      "e.conf:4: state: expected MASTER or BACKUP, got 'MAYBE'",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n  authentication {\n    auth_type AH\n  }\n}",
      "e.conf:5: auth_type AH is not supported by lvsd (use PASS or none)",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n  virtual_ipaddress {\n    10.0.0.300\n  }\n}",
      "e.conf:5: virtual_ipaddress: expected an IPv4 address, got '10.0.0.300'",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n  vrrp_version 4\n}",
      "e.conf:4: vrrp_version: expected 2 or 3, got '4'",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n}\nvrrp_instance A {\n  interface y\n  virtual_router_id 2\n}",
      "e.conf:5: vrrp_instance A is defined twice (first at e.conf:1)",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n}\nvrrp_instance B {\n  interface x\n  virtual_router_id 1\n}",
      "e.conf:5: vrrp_instance B: virtual_router_id 1 on x is already used by A (e.conf:1)",
    ],
  ])("refuses %j", (text, message) => {
    expect(() => parseConfigText(text, "e.conf")).toThrow(message);
  });
});

describe("vrrp_instance notify, track_script, track_interface and vrrp_script", () => {
  it("reads them, resolving track_script against vrrp_script blocks anywhere in the file", () => {
    const cfg = parseConfigText(
      `vrrp_instance VI_1 {
  interface lvs0
  virtual_router_id 51
  notify_master "/etc/m.sh a 'b c'"
  notify_backup /etc/b.sh
  notify_fault /etc/f.sh
  notify_stop /etc/s.sh
  notify /etc/n.sh root
  track_script {
    chk_a
    chk_b weight 10 reverse
    missing
  }
  track_interface {
    lvs1
    lvs2 weight -20
  }
}
vrrp_script chk_a {
  script "/bin/check --x"
  interval 3
  weight -40
  rise 2
  fall 3
  init_fail
  user nobody
}
vrrp_script chk_b {
  script /bin/b
  timeout 7
}
`,
      "n.conf",
    );
    const vi = cfg.vrrpInstances[0]!;
    expect(vi.notify).toEqual({
      master: ["/etc/m.sh", "a", "b c"],
      backup: ["/etc/b.sh"],
      fault: ["/etc/f.sh"],
      stop: ["/etc/s.sh"],
      any: ["/etc/n.sh"],
    });
    expect(vi.trackScripts!.map((t) => [t.script.name, t.weight, t.reverse])).toEqual([
      ["chk_a", -40, false],
      ["chk_b", 10, true],
    ]);
    expect(vi.trackScripts![0]!.script).toMatchObject({
      argv: ["/bin/check", "--x"],
      interval: 3,
      timeout: 3,
      weight: -40,
      rise: 2,
      fall: 3,
      initFail: true,
    });
    expect(vi.trackScripts![1]!.script).toMatchObject({
      interval: 1,
      timeout: 7,
      weight: 0,
      rise: 1,
      fall: 1,
    });
    expect(vi.trackInterfaces!.map((t) => [t.name, t.weight, t.reverse])).toEqual([
      ["lvs1", 0, false],
      ["lvs2", -20, false],
    ]);
    expect(cfg.warnings).toEqual([
      "n.conf:8: notify: running scripts as user 'root' is not supported by lvsd (it runs as lvsd's user)",
      "n.conf:26: vrrp_script chk_a: running scripts as user 'nobody' is not supported by lvsd (it runs as lvsd's user)",
      "n.conf:12: vrrp_instance VI_1: track_script missing not found (ignored)",
    ]);
  });

  it.each([
    ["vrrp_script c {\n  interval 2\n}", "e.conf:1: vrrp_script c: no script"],
    [
      "vrrp_script c {\n  script /x\n  weight 254\n}",
      "e.conf:3: vrrp_script c: weight must be an integer -253..253, got '254'",
    ],
    [
      "vrrp_script c {\n  script /x\n}\nvrrp_script c {\n  script /y\n}",
      "e.conf:4: vrrp_script c is defined twice (first at e.conf:1)",
    ],
    [
      "vrrp_instance A {\n  interface x\n  virtual_router_id 1\n  track_interface {\n    x weight\n  }\n}",
      "e.conf:5: track_interface x: expected 'weight N [reverse]', got 'weight'",
    ],
  ])("refuses %j", (text, message) => {
    expect(() => parseConfigText(text, "e.conf")).toThrow(message);
  });
});

describe("vrrp_sync_group, garp_master_* and keepalived's `version`", () => {
  const base = (name: string, vrid: number, extra = "") =>
    `vrrp_instance ${name} {\n  interface lvs0\n  virtual_router_id ${vrid}\n  ${extra}\n  virtual_ipaddress { 10.0.0.${vrid} }\n}\n`;

  it("reads a sync group with its notify scripts; checks its members as keepalived does", () => {
    const cfg = parseConfigText(
      `${base("OUT", 51)}${base("IN", 52)}vrrp_sync_group G {
  group {
    OUT IN
    NOPE
  }
  notify_master "/n/master a"
  notify_fault /n/fault
  notify /n/any
  sync_group_tracking_weight
  track_script { x }
}
vrrp_sync_group H {
  group { IN }
}
`,
      "g.conf",
    );
    expect(cfg.vrrpSyncGroups).toEqual([
      {
        where: { file: "g.conf", line: 13 },
        name: "G",
        members: ["OUT", "IN"],
        notify: { master: ["/n/master", "a"], fault: ["/n/fault"], any: ["/n/any"] },
        trackingWeight: true,
      },
    ]);
    expect(cfg.warnings).toEqual([
      "g.conf:22: vrrp_sync_group G: track_script is not implemented by lvsd yet (ignored)",
      "g.conf:13: vrrp_sync_group G: vrrp_instance NOPE does not exist (ignored)",
      "g.conf:24: vrrp_sync_group H: vrrp_instance IN is already in vrrp_sync_group G (ignored)",
      "g.conf:24: vrrp_sync_group H has no existing member (group ignored)",
    ]);
    expect(() =>
      parseConfigText(
        `${base("A", 1)}vrrp_sync_group G { group { A } }\nvrrp_sync_group G { group { A } }`,
        "d.conf",
      ),
    ).toThrow("d.conf:8: vrrp_sync_group G is defined twice (first at d.conf:7)");
  });

  it("garp_master_* per instance over global_defs' vrrp_garp_*, keepalived's defaults and corrections", () => {
    const cfg = parseConfigText(
      `global_defs {
  vrrp_garp_master_delay 2
  vrrp_garp_master_refresh 60
  vrrp_garp_interval 0.002
}
${base("A", 1, "garp_master_repeat 0\n  garp_master_refresh_repeat 2")}${base("B", 2, "garp_master_delay 0")}`,
      "a.conf",
    );
    expect(cfg.vrrpInstances.map((v) => v.garp)).toEqual([
      { delay: 2, repeat: 1, refresh: 60, refreshRepeat: 2, interval: 0.002 },
      { delay: 0, repeat: 5, refresh: 60, refreshRepeat: 1, interval: 0.002 },
    ]);
    expect(cfg.warnings).toEqual(["a.conf:9: garp_master_repeat must be greater than 0, setting to 1"]);
    // none given: keepalived's defaults apply in the manager (5 s, 5, off, 1, 0)
    expect(parseConfigText(base("A", 1)).vrrpInstances[0]!.garp).toBeUndefined();
    const min = parseConfigText(`global_defs {\n  vrrp_min_garp\n}\n${base("A", 1)}`);
    expect(min.vrrpInstances[0]!.garp).toEqual({
      delay: 0,
      repeat: 1,
      refresh: 0,
      refreshRepeat: 1,
      interval: 0,
    });
    expect(() => parseConfigText(base("A", 1, "garp_master_delay soon"), "e.conf")).toThrow(
      "e.conf:4: garp_master_delay: expected an integer 0..86400, got 'soon'",
    );
  });

  it("`version` is keepalived's per-instance keyword (vrrp_version is accepted too)", () => {
    const cfg = parseConfigText(`${base("A", 1, "version 3")}${base("B", 2, "vrrp_version 3")}`);
    expect(cfg.vrrpInstances.map((v) => v.version)).toEqual([3, 3]);
    expect(cfg.warnings).toEqual([]);
  });
});
