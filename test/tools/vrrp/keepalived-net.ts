/**
 * The namespaces shared by the live lvsd/keepalived VRRP tests (keepalived-pair, keepalived-interop,
 * keepalived-syncgroup): namespace `d` holds lvsd and one bridge per segment, `k` a real
 * keepalived 2.2.7 (`--vrrp` only) and `c` a client, each joined to a bridge by a veth pair whose
 * outer end is in `d`. lvsd's links are TAPs that it puts on those bridges itself.
 *
 * Names are `<prefix>-<role>` for namespaces and `<prefix><role>` for devices (Topology); the
 * callers pass a pid-based prefix. `destroy()` kills lvsd, keepalived and anything else in the
 * namespaces, deletes them and the temporary directory; every wait is bounded.
 *
 * keepalived's instances and groups report their state through `notify` (`kaNotify`): the script
 * writes STATE to `ka-NAME.state`, which `kaState(NAME)` reads.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSADM, LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, sh, Topology, waitFor } from "../../../src/tools/lab/netns.js";

/** Root, the ip tool and the native addon (the tools themselves: skipWithout in each test). */
export const netnsOk = canUseNetns() && nativeAvailable();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function must(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
}

export class KaNet {
  readonly t: Topology;
  readonly dir: string;
  readonly sock: string;
  readonly lvsdConf: string;
  /** The notify script for keepalived's instances and groups (writes ka-NAME.state). */
  readonly kaNotify: string;
  lvsd: ChildProcess | undefined;
  lvsdLog = "";
  kaLog = "";

  constructor(prefix: string) {
    this.t = new Topology(prefix);
    this.dir = mkdtempSync(join(tmpdir(), `lvs-${prefix}-`));
    this.sock = join(this.dir, "lvsd.sock");
    this.lvsdConf = join(this.dir, "lvsd.conf");
    this.kaNotify = join(this.dir, "notify.sh");
  }

  /** Namespaces d, k and c. */
  addHosts(): void {
    for (const r of ["d", "k", "c"]) this.t.addNs(r);
  }

  /** A bridge (device role `br`) in `d`, up. */
  bridge(br: string): void {
    const d = this.t.ns("d");
    must("ip", ["-n", d, "link", "add", this.t.dev(br), "type", "bridge"]);
    must("ip", ["-n", d, "link", "set", this.t.dev(br), "up"]);
  }

  /** A veth `dev` in namespace `role` (address, MAC) whose other end (`dev`o) is a port of `br`. */
  attach(role: "k" | "c", dev: string, br: string, addr: string, mac: string): void {
    const t = this.t;
    const d = t.ns("d");
    const inner = t.dev(dev);
    const outer = t.dev(`${dev}o`);
    must("ip", [
      "link",
      "add",
      inner,
      "netns",
      t.ns(role),
      "type",
      "veth",
      "peer",
      "name",
      outer,
      "netns",
      d,
    ]);
    must("ip", ["-n", t.ns(role), "link", "set", inner, "address", mac]);
    must("ip", ["-n", t.ns(role), "addr", "add", addr, "dev", inner]);
    must("ip", ["-n", t.ns(role), "link", "set", inner, "up"]);
    must("ip", ["-n", d, "link", "set", outer, "master", t.dev(br)]);
    must("ip", ["-n", d, "link", "set", outer, "up"]);
  }

  /** lvsd's `--link` for a TAP `dev` on bridge `br`. */
  tap(dev: string, br: string, mac: string, ...addrs: string[]): string {
    return [
      `tap=${this.t.dev(dev)}`,
      `bridge=${this.t.dev(br)}`,
      `mac=${mac}`,
      ...addrs.map((a) => `addr=${a}`),
    ].join(",");
  }

  writeLvsdConf(text: string): void {
    writeFileSync(this.lvsdConf, text);
  }

  /** Start lvsd in `d` on `links` (`tap(...)`) with `lvsdConf` (written first when `conf` is given). */
  spawnLvsd(links: readonly string[], conf?: string): void {
    if (conf !== undefined) this.writeLvsdConf(conf);
    const p = this.t.spawn("d", process.execPath, [
      LVSD,
      ...links.flatMap((l) => ["--link", l]),
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

  /** Start keepalived in `k` with `body` after a global_defs that lets it run `kaNotify` as root. */
  spawnKeepalived(body: string): void {
    writeFileSync(this.kaNotify, `#!/bin/sh\necho "$3" > ${this.dir}/ka-"$2".state\n`);
    chmodSync(this.kaNotify, 0o755);
    const conf = join(this.dir, "keepalived.conf");
    writeFileSync(conf, `global_defs {\n  script_user root\n  enable_script_security\n}\n${body}`);
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

  /** The last state keepalived's notify reported for instance or group `name` ("" before any). */
  kaState(name = "VI_1"): string {
    try {
      return readFileSync(join(this.dir, `ka-${name}.state`), "utf8").trim();
    } catch {
      return "";
    }
  }

  /** `lvsadm --vrrp` ("" while lvsd's control socket is not there). */
  vrrp(): string {
    return sh(process.execPath, [LVSADM, "--control", this.sock, "--vrrp"]).stdout;
  }

  /** The `lvsadm --vrrp` row of instance (or sync group) `name`, split; the first row without a name. */
  vrrpRow(name?: string): string[] {
    const rows = this.vrrp()
      .split("\n")
      .slice(1)
      .map((l) => l.split(" "));
    return (name === undefined ? rows[0] : rows.find((r) => r[0] === name)) ?? [];
  }

  /** lvsd's state of instance (or sync group) `name`, or of its first instance. */
  lvsdState(name?: string): string {
    return this.vrrpRow(name)[1] ?? "";
  }

  /** The MAC the client's ARP (from its interface `dev`) for `ip` gets, or "" when nobody answers. */
  arp(dev: string, ip: string): string {
    const r = this.t.exec("c", "arping", ["-c", "1", "-w", "1", "-I", this.t.dev(dev), ip], undefined, 5000);
    return /\[([0-9a-fA-F:]{17})\]/.exec(r.stdout)?.[1]?.toLowerCase() ?? "";
  }

  /** The children's output arrives on the event loop, which the synchronous polls block: wait for it. */
  async logged(which: "lvsd" | "ka", re: RegExp, timeoutMs = 3000): Promise<void> {
    await waitFor(
      `${which} log ${re}`,
      () => re.test(which === "lvsd" ? this.lvsdLog : this.kaLog),
      timeoutMs,
    );
  }

  context(): string {
    return `\nlvsd log:\n${this.lvsdLog}\nkeepalived log:\n${this.kaLog}`;
  }

  destroy(): void {
    if (this.lvsd?.exitCode === null) this.lvsd.kill("SIGKILL");
    this.t.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
