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
 * the built lvsd (`npm run build` first). Everything is inside namespaces named `ki<pid>-*`,
 * removed afterwards, also on failure; every wait is bounded. VRRP stays on the test's bridge.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSADM, LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, sh, Topology, waitFor } from "../../../src/tools/lab/netns.js";
import { skipWithout } from "../../support/tools.js";

const ok = canUseNetns() && nativeAvailable();
if (!ok)
  console.warn(
    "skipping the lvsd/keepalived VRRP interop tests: needs root, the ip tool and the native addon",
  );

const LVSD_MAC = "02:00:00:00:ab:01";
const KA_MAC = "02:00:00:00:ab:02";
const VIP = "10.0.0.100";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

class Pair {
  readonly t: Topology;
  readonly dir = mkdtempSync(join(tmpdir(), "lvs-ki-"));
  readonly sock: string;
  readonly lvsdConf: string;
  lvsd: ChildProcess | undefined;
  lvsdLog = "";
  kaLog = "";

  constructor(tag: string) {
    this.t = new Topology(`ki${process.pid % 10000}${tag}`);
    this.sock = join(this.dir, "lvsd.sock");
    this.lvsdConf = join(this.dir, "lvsd.conf");
  }

  setUp(): void {
    const t = this.t;
    for (const r of ["d", "k", "c"]) t.addNs(r);
    const d = t.ns("d");
    must("ip", ["-n", d, "link", "add", t.dev("br"), "type", "bridge"]);
    must("ip", ["-n", d, "link", "set", t.dev("br"), "up"]);
    for (const [r, addr, mac] of [
      ["k", "10.0.0.2/24", KA_MAC],
      ["c", "10.0.0.7/24", "02:00:00:00:ab:07"],
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

  writeLvsdConf(o: Opts, top = ""): void {
    writeFileSync(
      this.lvsdConf,
      `${top}${vrrpBlock(this.t.dev("t0"), o)}
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

  startLvsd(o: Opts, top = ""): void {
    this.writeLvsdConf(o, top);
    const p = this.t.spawn("d", process.execPath, [
      LVSD,
      "--link",
      `tap=${this.t.dev("t0")},bridge=${this.t.dev("br")},mac=${LVSD_MAC},addr=10.0.0.1/24`,
      "--control",
      this.sock,
      "--config",
      this.lvsdConf,
    ]);
    p.stderr?.on("data", (b: Buffer) => {
      this.lvsdLog += b.toString();
    });
    this.lvsd = p;
  }

  startKeepalived(o: Opts): void {
    const conf = join(this.dir, "keepalived.conf");
    const notify = join(this.dir, "notify.sh");
    writeFileSync(notify, `#!/bin/sh\necho "$3" > ${join(this.dir, "ka.state")}\n`);
    chmodSync(notify, 0o755);
    writeFileSync(
      conf,
      `global_defs {\n  script_user root\n  enable_script_security\n}\n${vrrpBlock(
        this.t.dev("ki"),
        { ...o, extra: `${o.extra ?? ""}  notify ${notify}\n` },
        ` dev ${this.t.dev("ki")}`,
      )}`,
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
    for (const s of [p.stdout, p.stderr])
      s?.on("data", (b: Buffer) => {
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

  context(): string {
    return `\nlvsd log:\n${this.lvsdLog}\nkeepalived log:\n${this.kaLog}`;
  }

  destroy(): void {
    this.lvsd?.kill("SIGKILL");
    this.t.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The child's output arrives on the event loop, which the synchronous polls block: wait for it. */
async function logged(p: Pair, which: "lvsd" | "ka", re: RegExp): Promise<void> {
  await waitFor(`${which} log ${re}`, () => re.test(which === "lvsd" ? p.lvsdLog : p.kaLog), 3000);
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
      await logged(p, "lvsd", /"from":"BACKUP","to":"MASTER","reason":"master_down"/);
      await logged(p, "ka", /higher priority 150/);
      expect(p.arpVip()).toBe(LVSD_MAC);
      const row = p.vrrp().split("\n")[1]!.split(" ");
      expect(row.slice(0, 7)).toEqual(["VI_1", "MASTER", "150", "51", p.t.dev("t0"), VIP, "10.0.0.1"]);
      expect(Number(row[8])).toBeGreaterThan(0); // adverts received from keepalived (unicast)

      p.writeLvsdConf({ ...lvsd, prio: 50 });
      p.lvsd!.kill("SIGHUP");
      await waitFor("keepalived MASTER again", () => p.kaState() === "MASTER", 8000);
      await waitFor("lvsd BACKUP", () => p.lvsdState() === "BACKUP", 3000);
      await logged(p, "lvsd", /"event":"vrrp.reloaded".*"kept":\["VI_1"\]/);
      await logged(p, "lvsd", /"from":"MASTER","to":"BACKUP","reason":"higher_priority"/);
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
      await logged(p, "lvsd", /"from":"MASTER","to":"FAULT","reason":"fault","detail":"script chk"/);
      expect(p.arpVip()).toBe(KA_MAC);

      writeFileSync(flag, "");
      await waitFor("lvsd MASTER again", () => p.lvsdState() === "MASTER", 8000);
      await waitFor("keepalived BACKUP", () => p.kaState() === "BACKUP", 3000);
      await logged(p, "lvsd", /"from":"FAULT","to":"BACKUP","reason":"fault_cleared"/);
      expect(p.arpVip()).toBe(LVSD_MAC);
    } catch (e) {
      throw new Error(`${(e as Error).message}${p.context()}`);
    }
  }, 60_000);
});
