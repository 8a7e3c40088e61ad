/**
 * lvsd on an AF_PACKET link (`--link raw=IFNAME`) receives multicast VRRP and connection sync
 * (docs/ha.md, Limits): the link's socket accepts and joins 01:00:5e:00:00:12 (224.0.0.18) and
 * 01:00:5e:00:00:51 (224.0.0.81). Namespace `d` holds lvsd's veth end (no kernel address; lvsd
 * is 10.0.0.1 on it), namespace `k` the other end (10.0.0.2) with a real keepalived 2.2.7:
 * VRRPv2, VRID 51, VIP 10.0.0.100, auth_type PASS.
 *
 * keepalived (200) is MASTER first; lvsd (150) starts and stays BACKUP past its
 * Master_Down_Interval, naming keepalived as master (without the group MAC in the socket's filter
 * it hears nothing and makes itself MASTER after 3.41 s). lvsd's backup sync daemon on the raw
 * link gets a kernel v1 sync message sent from `k` to 224.0.0.81:8848 and creates the
 * connection it describes. keepalived's SIGTERM (priority-0 advert) makes lvsd MASTER within
 * its Skew_Time (asserted < 2 s).
 *
 * Needs root, ip, keepalived and the native addon (skipped with a note otherwise); runs the built
 * lvsd (`npm run build` first). Everything is inside namespaces named `rm<pid>-*`, removed
 * afterwards, also on failure; every wait is bounded; multicast stays on the test's veth pair.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { encodeSyncMessage, IP_VS_CONN_F_DROUTE } from "../../../src/control/sync/wire.js";
import { TcpState } from "../../../src/datapath/conntrack/states.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import { LVSADM, LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, sh, Topology, waitFor } from "../../../src/tools/lab/netns.js";
import { skipWithout } from "../../support/tools.js";

const ok = canUseNetns() && nativeAvailable();
if (!ok)
  console.warn("skipping lvsd's multicast on AF_PACKET links: needs root, the ip tool and the native addon");

const VIP = "10.0.0.100";
const SYNCID = 10;

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

function must(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
}

class RawPair {
  readonly t = new Topology(`rm${process.pid % 10000}`);
  readonly dir = mkdtempSync(join(tmpdir(), "lvs-rm-"));
  readonly sock = join(this.dir, "lvsd.sock");
  /** lvsd's interface (in `d`) and keepalived's (in `k`). */
  readonly raw = this.t.dev("r");
  readonly ka = this.t.dev("k");
  lvsd: ChildProcess | undefined;
  kad: ChildProcess | undefined;
  lvsdLog = "";
  kaLog = "";

  setUp(): void {
    const t = this.t;
    for (const r of ["d", "k"]) {
      t.addNs(r);
      for (const k of ["all", "default"]) t.exec(r, "sysctl", ["-qw", `net.ipv6.conf.${k}.disable_ipv6=1`]);
    }
    must("ip", [
      "link",
      "add",
      this.raw,
      "netns",
      t.ns("d"),
      "type",
      "veth",
      "peer",
      "name",
      this.ka,
      "netns",
      t.ns("k"),
    ]);
    must("ip", ["-n", t.ns("d"), "link", "set", this.raw, "up"]);
    must("ip", ["-n", t.ns("k"), "addr", "add", "10.0.0.2/24", "dev", this.ka]);
    must("ip", ["-n", t.ns("k"), "link", "set", this.ka, "up"]);
    must("ip", ["-n", t.ns("k"), "route", "add", "224.0.0.0/4", "dev", this.ka]);
  }

  startLvsd(prio: number): void {
    const conf = join(this.dir, "lvsd.conf");
    writeFileSync(
      conf,
      `${vrrpBlock(this.raw, prio)}
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
      `raw=${this.raw},addr=10.0.0.1/24`,
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
        this.ka,
        prio,
        ` dev ${this.ka}`,
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
    for (const s of [p.stdout, p.stderr])
      s?.on("data", (b: Buffer) => {
        this.kaLog += b.toString();
      });
    this.kad = p;
  }

  kaState(): string {
    try {
      return readFileSync(join(this.dir, "ka.state"), "utf8").trim();
    } catch {
      return "";
    }
  }

  lvsadm(...args: string[]): string {
    return sh(process.execPath, [LVSADM, "--control", this.sock, ...args], undefined, 10_000).stdout;
  }

  lvsdRow(): string[] {
    return this.lvsadm("--vrrp").split("\n")[1]?.split(" ") ?? [];
  }

  syncCounter(name: string): number {
    const line = this.lvsadm("--sync")
      .split("\n")
      .find((l) => l.startsWith(`${name} `));
    return line === undefined ? 0 : Number(line.trim().split(/\s+/)[1]);
  }

  /** One kernel v1 sync message from `k` (10.0.0.2) to 224.0.0.81:8848, TTL 1. */
  sendSync(): void {
    const [msg] = encodeSyncMessage(SYNCID, [
      {
        protocol: IPPROTO_TCP,
        flags: IP_VS_CONN_F_DROUTE,
        state: TcpState.ESTABLISHED,
        cport: 40001,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout: 900,
        caddr: ipToU32("10.0.0.7"),
        vaddr: ipToU32(VIP),
        daddr: ipToU32("10.0.0.50"),
      },
    ]);
    const script = `const s=require("dgram").createSocket("udp4");
s.bind(0,"10.0.0.2",()=>{s.setMulticastInterface("10.0.0.2");s.setMulticastTTL(1);
s.send(Buffer.from(${JSON.stringify(msg!.toString("hex"))},"hex"),8848,"224.0.0.81",(e)=>{if(e)throw e;s.close();});});`;
    const r = this.t.exec("k", process.execPath, ["-e", script], undefined, 10_000);
    if (r.code !== 0) throw new Error(`sending the sync message: ${r.stderr}`);
  }

  context(): string {
    return `\nlvsd log:\n${this.lvsdLog}\nkeepalived log:\n${this.kaLog}`;
  }

  destroy(): void {
    this.t.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let pair: RawPair | undefined;
afterEach(() => {
  pair?.destroy();
  pair = undefined;
});

describe.skipIf(!ok)("lvsd on an AF_PACKET link: multicast VRRP and connection sync", () => {
  it("hears keepalived's adverts (stays BACKUP, MASTER on its priority 0) and a sync message to 224.0.0.81", async (ctx) => {
    skipWithout(ctx, "ip", "keepalived");
    const p = new RawPair();
    pair = p;
    p.setUp();
    p.startKeepalived(200);
    try {
      await waitFor("keepalived MASTER", () => p.kaState() === "MASTER", 12_000);
      p.startLvsd(150);
      await waitFor("lvsd's control socket", () => p.lvsadm("--vrrp") !== "", 15_000);
      // The socket joined both groups on the interface.
      const maddr = sh("ip", ["-n", p.t.ns("d"), "maddr", "show", "dev", p.raw]).stdout;
      expect(maddr).toContain("01:00:5e:00:00:12");
      expect(maddr).toContain("01:00:5e:00:00:51");
      await waitFor("lvsd BACKUP", () => p.lvsdRow()[1] === "BACKUP", 10_000);
      await new Promise((r) => setTimeout(r, 4500)); // past lvsd's Master_Down_Interval (3.41 s)
      const row = p.lvsdRow();
      expect(row.slice(0, 7)).toEqual(["VI_1", "BACKUP", "150", "51", p.raw, VIP, "10.0.0.2"]);
      expect(p.lvsdLog).not.toMatch(/"to":"MASTER"/);

      // Connection sync: a backup daemon on the raw link takes a message sent to the group.
      p.lvsadm("--start-daemon", "backup", "--mcast-interface", p.raw, "--syncid", String(SYNCID));
      expect(p.lvsadm("-L", "--daemon")).toContain(`backup sync daemon (mcast=${p.raw}, syncid=${SYNCID}`);
      p.sendSync();
      await waitFor("the sync message applied", () => p.syncCounter("created") === 1, 5000);
      expect(p.syncCounter("recv_messages")).toBe(1);
      expect(p.lvsadm("-L", "-n", "-c")).toMatch(
        /TCP\s+\S+\s+ESTABLISHED\s+10\.0\.0\.7:40001\s+10\.0\.0\.100:80\s+10\.0\.0\.50:80/,
      );

      // keepalived's priority-0 advert on SIGTERM: lvsd takes over within its Skew_Time.
      const t0 = Date.now();
      p.kad!.kill("SIGTERM");
      await waitFor("lvsd MASTER", () => p.lvsdRow()[1] === "MASTER", 5000);
      expect(Date.now() - t0).toBeLessThan(2000);
    } catch (e) {
      throw new Error(`${(e as Error).message}${p.context()}`);
    }
  }, 60_000);
});
