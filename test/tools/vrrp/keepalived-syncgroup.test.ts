/**
 * lvsd's `vrrp_sync_group` and `track_interface` against a real keepalived (Debian's 2.2.7), live.
 * Two segments, as a NAT director pair has: bridge `bo` ("outside", 10.0.0.0/24) and bridge `bi`
 * ("inside", 192.168.10.0/24) in namespace `d`. lvsd's TAPs: `to` on bo (10.0.0.1) and `ti` on bi
 * (192.168.10.1, and the inside gateway VIP 192.168.10.254 as a link address). keepalived's
 * namespace `k`: `ko` (10.0.0.2) and `ki` (192.168.10.2). The client `c`: `co` (10.0.0.7) and `ci`
 * (192.168.10.7), to ARP for each VIP on its segment. VRRPv2 with auth_type PASS, advert_int 1.
 *
 * 1. Sync group (keepalived's semantics): lvsd (150) and keepalived (100) each run VI_OUT (VRID 51,
 *    VIP 10.0.0.100 outside) and VI_IN (VRID 52, VIP 192.168.10.254 inside) in `vrrp_sync_group
 *    G`; lvsd is MASTER of both. lvsd's VI_IN tracks its own inside TAP (`track_interface`);
 *    setting that TAP down makes VI_IN FAULT, and the group takes VI_OUT — whose link is fine — to
 *    FAULT too, with a priority-0 advert on the outside: keepalived's VI_OUT takes over within its
 *    Skew_Time and keepalived's group takes its VI_IN along. Both VIPs then ARP to keepalived's
 *    MACs; without the sync group lvsd would keep the outside VIP (the test fails). The TAP up
 *    again: both instances return to lvsd (preemption after its Master_Down_Interval).
 * 2. track_interface of another link: lvsd's only instance (outside, VRID 51) tracks the inside
 *    TAP; the TAP down → lvsd FAULT, keepalived MASTER within about a poll (1 s) plus its
 *    Skew_Time; up → lvsd MASTER again.
 *
 * Needs root, ip, keepalived, arping and the native addon (skipped with a note otherwise); runs
 * the built lvsd (`npm run build` first). Everything is inside namespaces named `ks<pid>*-*`
 * (keepalived-net.ts), removed afterwards, also on failure; every wait is bounded; VRRP multicast
 * stays on the test's bridges.
 */
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../../../src/tools/lab/netns.js";
import { skipWithout } from "../../support/tools.js";
import { KaNet, must, netnsOk as ok, sleep } from "./keepalived-net.js";

if (!ok)
  console.warn(
    "skipping the lvsd/keepalived sync group and track_interface tests: needs root, the ip tool and the native addon",
  );

const LVSD_OUT_MAC = "02:00:00:00:ac:01";
const LVSD_IN_MAC = "02:00:00:00:ac:11";
const KA_OUT_MAC = "02:00:00:00:ac:02";
const KA_IN_MAC = "02:00:00:00:ac:12";
const VIP_OUT = "10.0.0.100";
const VIP_IN = "192.168.10.254";

interface Inst {
  name: string;
  dev: string;
  vrid: number;
  prio: number;
  vip: string;
  /** Extra lines inside the block. */
  extra?: string;
}

function vrrpBlock(i: Inst): string {
  return `vrrp_instance ${i.name} {
  state BACKUP
  interface ${i.dev}
  virtual_router_id ${i.vrid}
  priority ${i.prio}
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass syncgrp
  }
${i.extra ?? ""}  virtual_ipaddress {
    ${i.vip}
  }
}
`;
}

const GROUP = (extra = ""): string => `vrrp_sync_group G {
  group {
    VI_OUT
    VI_IN
  }
${extra}}
`;

class Net extends KaNet {
  constructor(tag: string) {
    super(`ks${process.pid % 10000}${tag}`);
  }

  setUp(): void {
    this.addHosts();
    this.bridge("bo");
    this.bridge("bi");
    this.attach("k", "ko", "bo", "10.0.0.2/24", KA_OUT_MAC);
    this.attach("k", "ki", "bi", "192.168.10.2/24", KA_IN_MAC);
    this.attach("c", "co", "bo", "10.0.0.7/24", "02:00:00:00:ac:07");
    this.attach("c", "ci", "bi", "192.168.10.7/24", "02:00:00:00:ac:17");
  }

  /** lvsd on both TAPs with `vrrp` (instances, groups) and a NAT service on the outside VIP. */
  startLvsd(vrrp: string): void {
    this.spawnLvsd(
      [
        this.tap("to", "bo", LVSD_OUT_MAC, "10.0.0.1/24"),
        this.tap("ti", "bi", LVSD_IN_MAC, "192.168.10.1/24", `${VIP_IN}/24`),
      ],
      `${vrrp}
virtual_server ${VIP_OUT} 80 {
  lb_algo rr
  lb_kind NAT
  protocol TCP
  real_server 192.168.10.50 80 {
  }
}
`,
    );
  }

  /** The inside TAP, in lvsd's namespace, down or up (its operstate follows). */
  insideLink(up: boolean): void {
    must("ip", ["-n", this.t.ns("d"), "link", "set", this.t.dev("ti"), up ? "up" : "down"]);
  }

  operstate(dev: string): string {
    return this.t.exec("d", "cat", [`/sys/class/net/${this.t.dev(dev)}/operstate`]).stdout.trim();
  }

  /** Who answers the client's ARP for each VIP: [outside, inside]. */
  arpBoth(): [string, string] {
    return [this.arp("co", VIP_OUT), this.arp("ci", VIP_IN)];
  }
}

let net: Net | undefined;
afterEach(() => {
  net?.destroy();
  net = undefined;
});

describe.skipIf(!ok)("lvsd and keepalived 2.2.7: vrrp_sync_group, track_interface", () => {
  it("a fault on lvsd's inside instance takes the whole sync group (both VIPs) to keepalived; recovery brings both back", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived", "arping");
    const n = new Net("a");
    net = n;
    n.setUp();
    const to = n.t.dev("to");
    const ti = n.t.dev("ti");
    n.startLvsd(
      GROUP() +
        vrrpBlock({ name: "VI_OUT", dev: to, vrid: 51, prio: 150, vip: `${VIP_OUT}/24` }) +
        vrrpBlock({
          name: "VI_IN",
          dev: ti,
          vrid: 52,
          prio: 150,
          vip: `${VIP_IN}/24`,
          extra: `  track_interface {\n    ${ti}\n  }\n`,
        }),
    );
    try {
      await waitFor("lvsd's control socket", () => n.vrrp() !== "", 15_000);
      const ko = n.t.dev("ko");
      const ki = n.t.dev("ki");
      const notify = `  notify ${n.kaNotify}\n`;
      n.spawnKeepalived(
        GROUP(notify) +
          vrrpBlock({
            name: "VI_OUT",
            dev: ko,
            vrid: 51,
            prio: 100,
            vip: `${VIP_OUT}/24 dev ${ko}`,
            extra: notify,
          }) +
          vrrpBlock({
            name: "VI_IN",
            dev: ki,
            vrid: 52,
            prio: 100,
            vip: `${VIP_IN}/24 dev ${ki}`,
            extra: notify,
          }),
      );
      const lvsdAll = (s: string) => n.lvsdState("VI_OUT") === s && n.lvsdState("VI_IN") === s;
      const kaAll = (s: string) => n.kaState("VI_OUT") === s && n.kaState("VI_IN") === s;
      await waitFor(
        "lvsd MASTER of both, keepalived BACKUP of both",
        () => lvsdAll("MASTER") && kaAll("BACKUP"),
        12_000,
      );
      expect(n.lvsdState("G")).toBe("MASTER");
      expect(n.vrrpRow("G")[2]).toBe("VI_OUT,VI_IN");
      expect(n.operstate("ti")).toMatch(/^(up|unknown)$/); // a TAP reports "unknown" while up
      expect(n.arpBoth()).toEqual([LVSD_OUT_MAC, LVSD_IN_MAC]);

      const t0 = Date.now();
      n.insideLink(false);
      await waitFor("keepalived MASTER of both", () => kaAll("MASTER"), 6000);
      // track_interface polls once a second; then keepalived's Skew_Time (0.61 s) after the
      // priority-0 advert lvsd's VI_OUT sends on the (healthy) outside link
      const took = Date.now() - t0;
      // below a poll plus keepalived's Master_Down_Interval (1 + 3.609 s: no priority-0 advert);
      // about 1.6 s on a quiet machine, with room for a loaded CI run
      expect(took).toBeLessThan(4500);
      await waitFor(
        "lvsd FAULT (both, and the group)",
        () => lvsdAll("FAULT") && n.lvsdState("G") === "FAULT",
        2000,
      );
      await n.logged("lvsd", /"event":"vrrp.track_interface".*"up":false/);
      await n.logged(
        "lvsd",
        /"instance":"VI_IN","from":"MASTER","to":"FAULT","reason":"fault","detail":"interface /,
      );
      // the outside instance went to FAULT because of the group, not of its own link
      await n.logged(
        "lvsd",
        /"instance":"VI_OUT","from":"MASTER","to":"FAULT","reason":"fault","detail":"sync_group G"/,
      );
      expect(n.operstate("to")).toMatch(/^(up|unknown)$/);
      expect(n.operstate("ti")).toBe("down");
      expect(n.arpBoth()).toEqual([KA_OUT_MAC, KA_IN_MAC]);
      await sleep(1500); // stays so: keepalived keeps both, lvsd does not flap back
      expect(kaAll("MASTER")).toBe(true);
      expect(n.kaState("G")).toBe("MASTER"); // keepalived's group notify
      expect(lvsdAll("FAULT")).toBe(true);
      // VI_OUT became MASTER once (at the start), never again while the group is in FAULT
      expect(n.lvsdLog.match(/"instance":"VI_OUT","from":"[A-Z]+","to":"MASTER"/g)).toHaveLength(1);

      const t1 = Date.now();
      n.insideLink(true);
      await waitFor("lvsd MASTER of both again", () => lvsdAll("MASTER"), 9000);
      await waitFor("keepalived BACKUP of both", () => kaAll("BACKUP"), 3000);
      // a poll, then lvsd's Master_Down_Interval (3.41 s): keepalived's adverts are lower
      expect(Date.now() - t1).toBeLessThan(7000);
      expect(n.lvsdState("G")).toBe("MASTER");
      await waitFor("keepalived's group BACKUP", () => n.kaState("G") === "BACKUP", 2000);
      await n.logged("lvsd", /"instance":"VI_OUT","from":"FAULT","to":"BACKUP"/);
      expect(n.arpBoth()).toEqual([LVSD_OUT_MAC, LVSD_IN_MAC]);
      ctx.annotate(`takeover ${took} ms, failback ${Date.now() - t1} ms`);
    } catch (e) {
      throw new Error(`${(e as Error).message}${n.context()}`);
    }
  }, 60_000);

  it("track_interface of another link: lvsd MASTER goes FAULT when it is down, keepalived takes the VIP; up again, lvsd takes it back", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived", "arping");
    const n = new Net("b");
    net = n;
    n.setUp();
    const ti = n.t.dev("ti");
    n.startLvsd(
      vrrpBlock({
        name: "VI_1",
        dev: n.t.dev("to"),
        vrid: 51,
        prio: 150,
        vip: `${VIP_OUT}/24`,
        extra: `  track_interface {\n    ${ti}\n  }\n`,
      }),
    );
    try {
      await waitFor("lvsd's control socket", () => n.vrrp() !== "", 15_000);
      const ko = n.t.dev("ko");
      n.spawnKeepalived(
        vrrpBlock({
          name: "VI_1",
          dev: ko,
          vrid: 51,
          prio: 100,
          vip: `${VIP_OUT}/24 dev ${ko}`,
          extra: `  notify ${n.kaNotify}\n`,
        }),
      );
      await waitFor(
        "lvsd MASTER, keepalived BACKUP",
        () => n.lvsdState() === "MASTER" && n.kaState() === "BACKUP",
        12_000,
      );
      expect(n.arp("co", VIP_OUT)).toBe(LVSD_OUT_MAC);

      const t0 = Date.now();
      n.insideLink(false);
      await waitFor("keepalived MASTER", () => n.kaState() === "MASTER", 6000);
      const took = Date.now() - t0;
      // below a poll plus keepalived's Master_Down_Interval (1 + 3.609 s: no priority-0 advert);
      // about 1.6 s on a quiet machine, with room for a loaded CI run
      expect(took).toBeLessThan(4500); // a 1 s poll, then keepalived's Skew_Time after priority 0
      await waitFor("lvsd FAULT", () => n.lvsdState() === "FAULT", 2000);
      await n.logged(
        "lvsd",
        new RegExp(`"from":"MASTER","to":"FAULT","reason":"fault","detail":"interface ${ti}"`),
      );
      expect(n.arp("co", VIP_OUT)).toBe(KA_OUT_MAC);

      const t1 = Date.now();
      n.insideLink(true);
      await waitFor("lvsd MASTER again", () => n.lvsdState() === "MASTER", 9000);
      await waitFor("keepalived BACKUP", () => n.kaState() === "BACKUP", 3000);
      expect(Date.now() - t1).toBeLessThan(7000);
      await n.logged("lvsd", /"from":"FAULT","to":"BACKUP","reason":"fault_cleared"/);
      expect(n.arp("co", VIP_OUT)).toBe(LVSD_OUT_MAC);
      ctx.annotate(`takeover ${took} ms, failback ${Date.now() - t1} ms`);
    } catch (e) {
      throw new Error(`${(e as Error).message}${n.context()}`);
    }
  }, 60_000);
});
