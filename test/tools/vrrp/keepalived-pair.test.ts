/**
 * lvsd's VRRP against a real keepalived (Debian's 2.2.7), live. One bridge in namespace `d`
 * holds lvsd's TAP (10.0.0.1), keepalived's namespace `k` (10.0.0.2) and a client `c`
 * (10.0.0.7), each by a veth pair; VRRPv2 with auth_type PASS, VRID 51, VIP 10.0.0.100.
 *
 * 1. lvsd priority 150 and keepalived priority 100: lvsd becomes MASTER, keepalived stays BACKUP
 *    (its notify script writes its state to a file), the client's ARP for the VIP gets lvsd's
 *    MAC. SIGTERM to lvsd: its priority-0 advert makes keepalived MASTER within its Skew_Time
 *    (0.61 s; asserted < 2 s), and the client's ARP now gets keepalived's MAC.
 * 2. keepalived priority 200 is MASTER first: lvsd stays BACKUP and does not answer ARP for the
 *    VIP.
 *
 * Needs root, ip, keepalived, arping and the native addon (skipped with a note otherwise); runs
 * the built lvsd (`npx tsc -p tsconfig.json` first). Everything is inside namespaces named
 * `kp<pid>-*` (set up by keepalived-net.ts), removed afterwards, also on failure; every wait is
 * bounded. VRRP multicast stays on the test's bridge.
 */
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../../../src/tools/lab/netns.js";
import { skipWithout } from "../../support/tools.js";
import { KaNet, netnsOk as ok } from "./keepalived-net.js";

if (!ok) console.warn("skipping the lvsd/keepalived VRRP pair: needs root, the ip tool and the native addon");

const LVSD_MAC = "02:00:00:00:aa:01";
const KA_MAC = "02:00:00:00:aa:02";
const VIP = "10.0.0.100";

function vrrpBlock(dev: string, prio: number, extra = ""): string {
  return `vrrp_instance VI_1 {
  state BACKUP
  interface ${dev}
  virtual_router_id 51
  priority ${prio}
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass pairpass
  }
  virtual_ipaddress {
    ${VIP}/24${extra}
  }
}
`;
}

/** One bridge: lvsd's TAP t0 (10.0.0.1), keepalived's ki (10.0.0.2), the client's ci (10.0.0.7). */
class Pair extends KaNet {
  constructor(tag: string) {
    super(`kp${process.pid % 10000}${tag}`);
  }

  setUp(): void {
    this.addHosts();
    this.bridge("br");
    this.attach("k", "ki", "br", "10.0.0.2/24", KA_MAC);
    this.attach("c", "ci", "br", "10.0.0.7/24", "02:00:00:00:aa:07");
  }

  startLvsd(prio: number): void {
    this.spawnLvsd(
      [this.tap("t0", "br", LVSD_MAC, "10.0.0.1/24")],
      `${vrrpBlock(this.t.dev("t0"), prio)}
virtual_server ${VIP} 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.0.0.50 80 {
  }
}
`,
    );
  }

  startKeepalived(prio: number): void {
    this.spawnKeepalived(
      vrrpBlock(this.t.dev("ki"), prio, ` dev ${this.t.dev("ki")}`).replace(
        "  virtual_ipaddress",
        `  notify ${this.kaNotify}\n  virtual_ipaddress`,
      ),
    );
  }

  /** The MAC the client's ARP for the VIP gets, or "" when nobody answers. */
  arpVip(): string {
    return this.arp("ci", VIP);
  }
}

let pair: Pair | undefined;
afterEach(() => {
  pair?.destroy();
  pair = undefined;
});

describe.skipIf(!ok)("lvsd and keepalived as a VRRP pair", () => {
  it("lvsd (150) is MASTER over keepalived (100); on SIGTERM keepalived takes over in under 2 s", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived", "arping");
    const p = new Pair("a");
    pair = p;
    p.setUp();
    p.startLvsd(150);
    await waitFor("lvsd's control socket", () => p.vrrp() !== "", 15_000);
    p.startKeepalived(100);
    try {
      await waitFor(
        "lvsd MASTER and keepalived BACKUP",
        () => p.lvsdState() === "MASTER" && p.kaState() === "BACKUP",
        12_000,
      );
      // a few more adverts: keepalived stays BACKUP
      await new Promise((r) => setTimeout(r, 2500));
      expect(p.kaState()).toBe("BACKUP");
      expect(p.lvsdState()).toBe("MASTER");
      expect(p.arpVip()).toBe(LVSD_MAC);
      const row = p.vrrp().split("\n")[1]!.split(" ");
      expect(row.slice(0, 7)).toEqual(["VI_1", "MASTER", "150", "51", p.t.dev("t0"), VIP, "10.0.0.1"]);

      const t0 = Date.now();
      p.lvsd!.kill("SIGTERM");
      await waitFor("keepalived MASTER", () => p.kaState() === "MASTER", 5000);
      const took = Date.now() - t0;
      expect(took).toBeLessThan(2000);
      await waitFor("lvsd to exit", () => p.lvsd!.exitCode !== null, 5000);
      expect(p.lvsdLog).toMatch(/"event":"vrrp.transition".*"from":"MASTER","to":"INIT","reason":"stop"/);
      expect(p.arpVip()).toBe(KA_MAC);
    } catch (e) {
      throw new Error(`${(e as Error).message}${p.context()}`);
    }
  }, 45_000);

  it("keepalived (200) is MASTER: lvsd (150) stays BACKUP and does not answer ARP for the VIP", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived", "arping");
    const p = new Pair("b");
    pair = p;
    p.setUp();
    p.startKeepalived(200);
    try {
      await waitFor("keepalived MASTER", () => p.kaState() === "MASTER", 12_000);
      p.startLvsd(150);
      await waitFor("lvsd BACKUP", () => p.lvsdState() === "BACKUP", 15_000);
      await new Promise((r) => setTimeout(r, 4500)); // past lvsd's Master_Down_Interval (3.41 s)
      expect(p.lvsdState()).toBe("BACKUP");
      expect(p.kaState()).toBe("MASTER");
      expect(p.vrrp().split("\n")[1]!.split(" ")[6]).toBe("10.0.0.2");
      expect(p.arpVip()).toBe(KA_MAC);
      expect(p.lvsdLog).not.toMatch(/"to":"MASTER"/);
    } catch (e) {
      throw new Error(`${(e as Error).message}${p.context()}`);
    }
  }, 45_000);
});
