/**
 * The LVS-DR and LVS-TUN lab topologies, as in the tutorials, from network namespaces:
 *
 *   DR:   client 10.0.1.7 ── router ── segment 10.0.0.0/24 ── director (lvsd) 10.0.0.1
 *                              10.0.1.1  10.0.0.254            rs1 10.0.0.11, rs2 10.0.0.12
 *                                                              (VIP 10.0.0.100 on their lo)
 *   TUN:  client 10.0.1.7 ── router ── 10.0.0.0/24 ── director (lvsd) 10.0.0.1
 *                              │
 *                              └────── 10.0.2.0/24 ── rs1 10.0.2.11, rs2 10.0.2.12
 *                                     (VIP on lo, IPIP decapsulated by lvs-realserver)
 *
 * The real servers are prepared with `lvs-realserver` exactly as a user would; they answer the
 * client directly through the router. Namespace "d" holds the segment bridges and runs lvsd on
 * a TAP device on segment A, or (backend "raw") on an AF_PACKET socket bound to a veth whose
 * peer is on segment A. The router forwards with rp_filter off (replies come from the VIP, which lives
 * on another segment in the TUN topology).
 */

import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { nftPath } from "../../control/kernel-ingress.js";
import { disableOffloads } from "../../datapath/io/netconf.js";
import { LabBase, PEER, ROOT, VIP } from "./labbase.js";
import { ip, sh, waitFor } from "./netns.js";

export const REALSERVER = join(ROOT, "bin", "lvs-realserver");
export const ROUTED_CLIENT = "10.0.1.7";
export const ROUTER_CLIENT_SIDE = "10.0.1.1";
export const ROUTER_DIRECTOR_SIDE = "10.0.0.254";
export const ROUTER_RS_SIDE = "10.0.2.254";
export const ROUTED_DIRECTOR = "10.0.0.1";

export type RoutedMode = "dr" | "tun";

export interface RoutedLabOptions {
  prefix: string;
  mode: RoutedMode;
  servers?: number;
  /** MTU of the router's leg towards the real servers (TUN path-MTU test). */
  rsLinkMtu?: number;
  /**
   * lvsd's link (default "tap"): a TAP on the director segment's bridge, or (raw / xdp) an
   * AF_PACKET / AF_XDP socket on a veth end in namespace "d" whose peer sits on that bridge.
   */
  backend?: "tap" | "raw" | "xdp";
}

export class RoutedLab extends LabBase {
  readonly mode: RoutedMode;
  readonly servers: number;
  private readonly rsLinkMtu: number;
  readonly backend: "tap" | "raw" | "xdp";
  /** TUN decapsulators: stopped with SIGTERM so that they undo their set-up. */
  private readonly decaps: ChildProcess[] = [];

  constructor(o: RoutedLabOptions) {
    super(o.prefix);
    this.mode = o.mode;
    this.servers = o.servers ?? 2;
    this.rsLinkMtu = o.rsLinkMtu ?? 1500;
    this.backend = o.backend ?? "tap";
  }

  /** Real server k's address. */
  rsIp(k: number): string {
    return this.mode === "dr" ? `10.0.0.${10 + k}` : `10.0.2.${10 + k}`;
  }

  async up(): Promise<void> {
    const t = this.topo;
    const d = t.addNs("d");
    const segA = t.dev("sa");
    const segB = t.dev("sb");
    ip("-n", d, "link", "add", segA, "type", "bridge");
    ip("-n", d, "link", "set", segA, "up");
    if (this.mode === "tun") {
      ip("-n", d, "link", "add", segB, "type", "bridge");
      ip("-n", d, "link", "set", segB, "up");
    }
    // router
    const rt = t.addNs("rt");
    for (const k of ["all", "default"]) t.exec("rt", "sysctl", ["-qw", `net.ipv4.conf.${k}.rp_filter=0`]);
    t.exec("rt", "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    // client <-> router: a direct veth
    const c = t.addNs("c");
    ip("link", "add", t.dev("ca"), "netns", c, "type", "veth", "peer", "name", t.dev("cr"), "netns", rt);
    ip("-n", c, "addr", "add", `${ROUTED_CLIENT}/24`, "dev", t.dev("ca"));
    ip("-n", c, "link", "set", t.dev("ca"), "up");
    ip("-n", c, "route", "add", "default", "via", ROUTER_CLIENT_SIDE);
    ip("-n", rt, "addr", "add", `${ROUTER_CLIENT_SIDE}/24`, "dev", t.dev("cr"));
    ip("-n", rt, "link", "set", t.dev("cr"), "up");
    // router <-> director segment
    this.toBridge(rt, t.dev("ra"), t.dev("rA"), segA);
    ip("-n", rt, "addr", "add", `${ROUTER_DIRECTOR_SIDE}/24`, "dev", t.dev("ra"));
    if (this.mode === "tun") {
      this.toBridge(rt, t.dev("rb"), t.dev("rB"), segB);
      ip("-n", rt, "addr", "add", `${ROUTER_RS_SIDE}/24`, "dev", t.dev("rb"));
      if (this.rsLinkMtu !== 1500) {
        // the whole real-server segment gets the smaller MTU: router leg, bridge, ports
        ip("-n", rt, "link", "set", t.dev("rb"), "mtu", String(this.rsLinkMtu));
        ip("-n", d, "link", "set", t.dev("rB"), "mtu", String(this.rsLinkMtu));
        ip("-n", d, "link", "set", segB, "mtu", String(this.rsLinkMtu));
      }
    }
    for (const dev of ["cr", "ra", ...(this.mode === "tun" ? ["rb"] : [])]) {
      t.exec("rt", "sysctl", ["-qw", `net.ipv4.conf.${t.dev(dev)}.rp_filter=0`]);
    }
    // real servers
    for (let k = 1; k <= this.servers; k++) {
      const r = t.addNs(`r${k}`);
      const dev = t.dev(`r${k}a`);
      this.toBridge(r, dev, t.dev(`r${k}b`), this.mode === "dr" ? segA : segB);
      if (this.mode === "tun" && this.rsLinkMtu !== 1500) {
        ip("-n", r, "link", "set", dev, "mtu", String(this.rsLinkMtu));
        ip("-n", d, "link", "set", t.dev(`r${k}b`), "mtu", String(this.rsLinkMtu));
      }
      ip("-n", r, "addr", "add", `${this.rsIp(k)}/24`, "dev", dev);
      ip(
        "-n",
        r,
        "route",
        "add",
        "default",
        "via",
        this.mode === "dr" ? ROUTER_DIRECTOR_SIDE : ROUTER_RS_SIDE,
      );
      t.spawn(`r${k}`, process.execPath, [PEER, "--name", `rs${k}`, "--http", "80"]);
      if (this.mode === "dr") {
        const res = sh(process.execPath, [REALSERVER, "dr", "--vip", VIP, "--netns", r]);
        if (res.code !== 0) throw new Error(`lvs-realserver dr: ${res.stderr.trim()}`);
      } else {
        // the decapsulator runs in the foreground until the lab ends
        this.decaps.push(t.spawn(`r${k}`, process.execPath, [REALSERVER, "tun", "--vip", VIP, "--dev", dev]));
      }
    }
    let link = `tap=${t.dev("t0")},bridge=${segA},addr=${ROUTED_DIRECTOR}/24`;
    if (this.backend !== "tap") {
      // Wire-sized frames only (AF_PACKET and AF_XDP read no TCP super-frames: the client's
      // TSO/GSO, the router's GRO and GSO on the way to the director are off), with finished
      // checksums for AF_XDP (its frames carry no checksum state: the client's veth does no
      // checksum offload; the router forwards its frames unchanged).
      disableOffloads(c, t.dev("ca"), this.backend === "xdp" ? { txCsum: false } : {});
      disableOffloads(rt, t.dev("cr"));
      disableOffloads(rt, t.dev("ra"));
      const x = t.dev("x0");
      ip("-n", d, "link", "add", x, "type", "veth", "peer", "name", t.dev("y0"));
      ip("-n", d, "link", "set", t.dev("y0"), "master", segA, "up");
      sh("ip", ["netns", "exec", d, "sysctl", "-qw", `net.ipv6.conf.${x}.disable_ipv6=1`]);
      ip("-n", d, "link", "set", x, "up");
      // x0 is lvsd's alone: kernel=drop spares the namespace's stack every frame (when nft is there)
      const own = this.backend === "raw" && nftPath() !== undefined ? ",kernel=drop" : "";
      link = `${this.backend}=${x},addr=${ROUTED_DIRECTOR}/24${own}`;
    }
    await this.startLvsd(["--link", link, "--route", `default,via=${ROUTER_DIRECTOR_SIDE}`]);
    await waitFor("the real servers", () => {
      for (let k = 1; k <= this.servers; k++) {
        if (t.exec(`r${k}`, "ss", ["-ltn", "sport = :80"]).stdout.split("\n").length < 3) return false;
        if (this.mode === "tun" && t.exec(`r${k}`, "ip", ["-o", "link", "show", "type", "tun"]).stdout === "")
          return false;
        if (!t.exec(`r${k}`, "ip", ["-4", "addr", "show", "dev", "lo"]).stdout.includes(`${VIP}/32`))
          return false;
      }
      return true;
    });
    // UDP answers must leave from the VIP: bind the UDP server to it once it is on lo.
    for (let k = 1; k <= this.servers; k++) {
      t.spawn(`r${k}`, process.execPath, [PEER, "--name", `rs${k}`, "--udp", "53", "--udp-addr", VIP]);
    }
  }

  private toBridge(ns: string, inside: string, outside: string, bridge: string): void {
    const d = this.topo.ns("d");
    ip("link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside, "netns", d);
    ip("-n", d, "link", "set", outside, "master", bridge, "up");
    ip("-n", ns, "link", "set", inside, "up");
  }

  override down(): void {
    for (const p of this.decaps) if (p.exitCode === null) p.kill("SIGTERM");
    if (this.decaps.length > 0) sh("sleep", ["0.5"]);
    if (this.mode === "dr") {
      for (let k = 1; k <= this.servers; k++) {
        sh(process.execPath, [REALSERVER, "dr", "--vip", VIP, "--netns", this.topo.ns(`r${k}`), "--undo"]);
      }
    }
    super.down();
  }
}
