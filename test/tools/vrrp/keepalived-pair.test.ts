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
 * `kp<pid>-*`, removed afterwards, also on failure; every wait is bounded. VRRP multicast stays
 * on the test's bridge.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSADM, LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, sh, Topology, waitFor } from "../../../src/tools/lab/netns.js";
import { skipWithout } from "../../support/tools.js";

const ok = canUseNetns() && nativeAvailable();
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

class Pair {
  readonly t: Topology;
  readonly dir = mkdtempSync(join(tmpdir(), "lvs-kp-"));
  readonly sock: string;
  lvsd: ChildProcess | undefined;
  lvsdLog = "";
  kaLog = "";

  constructor(tag: string) {
    const prefix = `kp${process.pid % 10000}${tag}`;
    this.t = new Topology(prefix);
    this.sock = join(this.dir, "lvsd.sock");
  }

  setUp(): void {
    const t = this.t;
    for (const r of ["d", "k", "c"]) t.addNs(r);
    const d = t.ns("d");
    sh("ip", ["-n", d, "link", "add", t.dev("br"), "type", "bridge"]);
    sh("ip", ["-n", d, "link", "set", t.dev("br"), "up"]);
    for (const [r, addr, mac] of [
      ["k", "10.0.0.2/24", KA_MAC],
      ["c", "10.0.0.7/24", "02:00:00:00:aa:07"],
    ] as const) {
      const inner = t.dev(`${r}i`);
      const outer = t.dev(`${r}o`);
      must("ip", ["link", "add", inner, "netns", t.ns(r), "type", "veth", "peer", "name", outer, "netns", d]);
      must("ip", ["-n", t.ns(r), "link", "set", inner, "address", mac]);
      must("ip", ["-n", t.ns(r), "addr", "add", addr, "dev", inner]);
      must("ip", ["-n", t.ns(r), "link", "set", inner, "up"]);
      must("ip", ["-n", d, "link", "set", outer, "master", t.dev("br")]);
      must("ip", ["-n", d, "link", "set", outer, "up"]);
    }
  }

  startLvsd(prio: number): void {
    const conf = join(this.dir, "lvsd.conf");
    writeFileSync(
      conf,
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
    const p = this.t.spawn("d", process.execPath, [
      LVSD,
      "--link",
      `tap=${this.t.dev("t0")},bridge=${this.t.dev("br")},mac=${LVSD_MAC},addr=10.0.0.1/24`,
      "--control",
      this.sock,
      "--config",
      conf,
    ]);
    p.stderr?.on("data", (b: Buffer) => {
      this.lvsdLog += b.toString();
    });
    this.lvsd = p;
  }

  startKeepalived(prio: number): void {
    const conf = join(this.dir, "keepalived.conf");
    const notify = join(this.dir, "notify.sh");
    writeFileSync(notify, `#!/bin/sh\necho "$3" > ${join(this.dir, "ka.state")}\n`);
    chmodSync(notify, 0o755);
    writeFileSync(
      conf,
      `global_defs {\n  script_user root\n  enable_script_security\n}\n${vrrpBlock(
        this.t.dev("ki"),
        prio,
        ` dev ${this.t.dev("ki")}`,
      ).replace("  virtual_ipaddress", `  notify ${notify}\n  virtual_ipaddress`)}`,
    );
    const p = this.t.spawn("k", "keepalived", [
      "--dont-fork",
      "--log-console",
      "--vrrp",
      "--no-syslog",
      "--use-file",
      conf,
      "--pid",
      join(this.dir, "keepalived.pid"),
      "--vrrp_pid",
      join(this.dir, "vrrp.pid"),
    ]);
    p.stdout?.on("data", (b: Buffer) => {
      this.kaLog += b.toString();
    });
    p.stderr?.on("data", (b: Buffer) => {
      this.kaLog += b.toString();
    });
  }

  kaState(): string {
    try {
      return readFileSync(join(this.dir, "ka.state"), "utf8").trim();
    } catch {
      return "";
    }
  }

  vrrp(): string {
    return sh(process.execPath, [LVSADM, "--control", this.sock, "--vrrp"]).stdout;
  }

  lvsdState(): string {
    return this.vrrp().split("\n")[1]?.split(" ")[1] ?? "";
  }

  /** The MAC the client's ARP for the VIP gets, or "" when nobody answers. */
  arpVip(): string {
    const r = this.t.exec(
      "c",
      "arping",
      ["-c", "1", "-w", "1", "-I", this.t.dev("ci"), VIP],
      undefined,
      5000,
    );
    return /\[([0-9a-fA-F:]{17})\]/.exec(r.stdout)?.[1]?.toLowerCase() ?? "";
  }

  context(): string {
    return `\nlvsd log:\n${this.lvsdLog}\nkeepalived log:\n${this.kaLog}`;
  }

  destroy(): void {
    this.t.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function must(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
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
