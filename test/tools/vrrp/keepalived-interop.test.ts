/**
 * lvsd's VRRP against a real keepalived (Debian's 2.2.7), live, beyond keepalived-pair.test.ts
 * (v2 + PASS, both roles). Same topology: one bridge in namespace `d` holds lvsd's TAP
 * (10.0.0.1), keepalived's namespace `k` (10.0.0.2) and a client `c` (10.0.0.7); VRID 51, VIP
 * 10.0.0.100, advert_int 1.
 *
 * 1. VRRPv3 over unicast (unicast_src_ip / unicast_peer both ways), preemption both ways:
 *    keepalived (100) is MASTER first; lvsd (150) arrives and takes over; SIGHUP lowers lvsd to
 *    50 and keepalived preempts back (lvsd keeps running, the reload applies the priority).
 * 2. nopreempt: keepalived (100) is MASTER; lvsd (150, nopreempt) stays BACKUP past its
 *    Master_Down_Interval.
 * 3. track_script: lvsd (150) MASTER over keepalived (100); its vrrp_script starts failing, lvsd
 *    goes FAULT with a priority-0 advert and keepalived takes the VIP within a second or so; the
 *    script recovers and lvsd, the higher priority, takes the VIP back.
 *
 * Needs root, ip, keepalived, arping and the native addon (skipped with a note otherwise); runs
 * the built lvsd (`npm run build` first). Everything is inside namespaces named `ki<pid>-*` (set
 * up by keepalived-net.ts), removed afterwards, also on failure; every wait is bounded. VRRP
 * stays on the test's bridge.
 */
import { unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../../../src/tools/lab/netns.js";
import { skipWithout } from "../../support/tools.js";
import { KaNet, netnsOk as ok, sleep } from "./keepalived-net.js";

if (!ok)
  console.warn(
    "skipping the lvsd/keepalived VRRP interop tests: needs root, the ip tool and the native addon",
  );

const LVSD_MAC = "02:00:00:00:ab:01";
const KA_MAC = "02:00:00:00:ab:02";
const VIP = "10.0.0.100";

interface Opts {
  prio: number;
  version?: 2 | 3;
  /** [own address, peer] for unicast. */
  unicast?: [string, string];
  nopreempt?: boolean;
  /** Extra lines inside the block. */
  extra?: string;
}

function vrrpBlock(dev: string, o: Opts, vipExtra = ""): string {
  const auth =
    (o.version ?? 2) === 2 ? "  authentication {\n    auth_type PASS\n    auth_pass interop\n  }\n" : "";
  const uni = o.unicast
    ? `  unicast_src_ip ${o.unicast[0]}\n  unicast_peer {\n    ${o.unicast[1]}\n  }\n`
    : "";
  return `vrrp_instance VI_1 {
  state BACKUP
  interface ${dev}
  virtual_router_id 51
  priority ${o.prio}
  advert_int 1
  version ${o.version ?? 2}
${o.nopreempt ? "  nopreempt\n" : ""}${auth}${uni}${o.extra ?? ""}
  virtual_ipaddress {
    ${VIP}/24${vipExtra}
  }
}
`;
}

/** One bridge: lvsd's TAP t0 (10.0.0.1), keepalived's ki (10.0.0.2), the client's ci (10.0.0.7). */
class Pair extends KaNet {
  constructor(tag: string) {
    super(`ki${process.pid % 10000}${tag}`);
  }

  setUp(): void {
    this.addHosts();
    this.bridge("br");
    this.attach("k", "ki", "br", "10.0.0.2/24", KA_MAC);
    this.attach("c", "ci", "br", "10.0.0.7/24", "02:00:00:00:ab:07");
  }

  lvsdConfText(o: Opts, top = ""): string {
    return `${top}${vrrpBlock(this.t.dev("t0"), o)}
virtual_server ${VIP} 80 {
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.0.0.50 80 {
  }
}
`;
  }

  startLvsd(o: Opts, top = ""): void {
    this.spawnLvsd([this.tap("t0", "br", LVSD_MAC, "10.0.0.1/24")], this.lvsdConfText(o, top));
  }

  startKeepalived(o: Opts): void {
    this.spawnKeepalived(
      vrrpBlock(
        this.t.dev("ki"),
        { ...o, extra: `${o.extra ?? ""}  notify ${this.kaNotify}\n` },
        ` dev ${this.t.dev("ki")}`,
      ),
    );
  }

  arpVip(): string {
    return this.arp("ci", VIP);
  }

  /** Bring lvsd and keepalived to lvsd MASTER / keepalived BACKUP (lvsd started first). */
  async lvsdMaster(lvsd: Opts, ka: Opts, top = ""): Promise<void> {
    this.startLvsd(lvsd, top);
    await waitFor("lvsd's control socket", () => this.vrrp() !== "", 15_000);
    this.startKeepalived(ka);
    await waitFor(
      "lvsd MASTER and keepalived BACKUP",
      () => this.lvsdState() === "MASTER" && this.kaState() === "BACKUP",
      12_000,
    );
  }

  /** keepalived MASTER first, then lvsd started. */
  async kaMasterThenLvsd(lvsd: Opts, ka: Opts): Promise<void> {
    this.startKeepalived(ka);
    await waitFor("keepalived MASTER", () => this.kaState() === "MASTER", 12_000);
    this.startLvsd(lvsd);
    await waitFor("lvsd's control socket", () => this.vrrp() !== "", 15_000);
  }
}

let pair: Pair | undefined;
afterEach(() => {
  pair?.destroy();
  pair = undefined;
});

describe.skipIf(!ok)("lvsd and keepalived 2.2.7: v3, unicast, preemption, nopreempt, track_script", () => {
  it("VRRPv3 unicast: lvsd (150) preempts keepalived (100); after SIGHUP to priority 50 keepalived preempts back", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived", "arping");
    const p = new Pair("a");
    pair = p;
    p.setUp();
    const lvsd: Opts = { prio: 150, version: 3, unicast: ["10.0.0.1", "10.0.0.2"] };
    try {
      await p.kaMasterThenLvsd(lvsd, { prio: 100, version: 3, unicast: ["10.0.0.2", "10.0.0.1"] });
      await waitFor(
        "lvsd MASTER, keepalived BACKUP",
        () => p.lvsdState() === "MASTER" && p.kaState() === "BACKUP",
        8000,
      );
      await p.logged("lvsd", /"from":"BACKUP","to":"MASTER","reason":"master_down"/);
      await p.logged("ka", /higher priority 150/);
      expect(p.arpVip()).toBe(LVSD_MAC);
      const row = p.vrrp().split("\n")[1]!.split(" ");
      expect(row.slice(0, 7)).toEqual(["VI_1", "MASTER", "150", "51", p.t.dev("t0"), VIP, "10.0.0.1"]);
      expect(Number(row[8])).toBeGreaterThan(0); // adverts received from keepalived (unicast)

      p.writeLvsdConf(p.lvsdConfText({ ...lvsd, prio: 50 }));
      p.lvsd!.kill("SIGHUP");
      await waitFor("keepalived MASTER again", () => p.kaState() === "MASTER", 8000);
      await waitFor("lvsd BACKUP", () => p.lvsdState() === "BACKUP", 3000);
      await p.logged("lvsd", /"event":"vrrp.reloaded".*"kept":\["VI_1"\]/);
      await p.logged("lvsd", /"from":"MASTER","to":"BACKUP","reason":"higher_priority"/);
      expect(p.lvsdLog).not.toMatch(/reload_refused/);
      expect(p.lvsd!.exitCode).toBeNull();
      expect(p.vrrp().split("\n")[1]!.split(" ")[2]).toBe("50");
      expect(p.arpVip()).toBe(KA_MAC);
    } catch (e) {
      throw new Error(`${(e as Error).message}${p.context()}`);
    }
  }, 60_000);

  it("nopreempt: lvsd (150) arriving next to a keepalived MASTER (100) stays BACKUP", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived", "arping");
    const p = new Pair("b");
    pair = p;
    p.setUp();
    try {
      await p.kaMasterThenLvsd({ prio: 150, nopreempt: true }, { prio: 100 });
      await waitFor("lvsd BACKUP", () => p.lvsdState() === "BACKUP", 5000);
      await sleep(4500); // past lvsd's Master_Down_Interval (3.41 s)
      expect(p.lvsdState()).toBe("BACKUP");
      expect(p.kaState()).toBe("MASTER");
      expect(p.vrrp().split("\n")[1]!.split(" ")[6]).toBe("10.0.0.2");
      expect(p.lvsdLog).not.toMatch(/"to":"MASTER"/);
      expect(p.arpVip()).toBe(KA_MAC);
    } catch (e) {
      throw new Error(`${(e as Error).message}${p.context()}`);
    }
  }, 60_000);

  it("a failing track_script on the lvsd MASTER hands the VIP to the keepalived BACKUP; recovery takes it back", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived", "arping");
    const p = new Pair("c");
    pair = p;
    p.setUp();
    const flag = join(p.dir, "healthy");
    writeFileSync(flag, "");
    const top = `vrrp_script chk {\n  script "/usr/bin/test -f ${flag}"\n  interval 1\n}\n`;
    try {
      await p.lvsdMaster({ prio: 150, extra: "  track_script {\n    chk\n  }\n" }, { prio: 100 }, top);
      expect(p.arpVip()).toBe(LVSD_MAC);
      const t0 = Date.now();
      unlinkSync(flag);
      await waitFor("keepalived MASTER", () => p.kaState() === "MASTER", 5000);
      // one script interval to notice, then keepalived's Skew_Time (0.61 s) after priority 0
      expect(Date.now() - t0).toBeLessThan(3000);
      await waitFor("lvsd FAULT", () => p.lvsdState() === "FAULT", 2000);
      await p.logged("lvsd", /"from":"MASTER","to":"FAULT","reason":"fault","detail":"script chk"/);
      expect(p.arpVip()).toBe(KA_MAC);

      writeFileSync(flag, "");
      await waitFor("lvsd MASTER again", () => p.lvsdState() === "MASTER", 8000);
      await waitFor("keepalived BACKUP", () => p.kaState() === "BACKUP", 3000);
      await p.logged("lvsd", /"from":"FAULT","to":"BACKUP","reason":"fault_cleared"/);
      expect(p.arpVip()).toBe(LVSD_MAC);
    } catch (e) {
      throw new Error(`${(e as Error).message}${p.context()}`);
    }
  }, 60_000);
});
