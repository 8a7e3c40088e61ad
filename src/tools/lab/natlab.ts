/**
 * The LVS-NAT lab topology, as in the LVS-NAT tutorials, built from network namespaces:
 *
 *   client 10.0.0.7 ──┐                          ┌── rs1 192.168.10.1 (HTTP :80 :8080, PROXY+HTTP :8082, UDP :53)
 *   (ns c)            │  bridge out     bridge in │   rs2 192.168.10.2 ...
 *                     └──[lvsd link 0]   [link 1]─┴── rsN
 *                     10.0.0.1/24, VIP 10.0.0.100   192.168.10.254/24 (the real servers' gateway)
 *
 * lvsd runs in its own namespace ("d") that holds the two bridges. With the TAP backend lvsd
 * creates a TAP on each bridge; with the raw (xdp) backend it binds AF_PACKET (AF_XDP) sockets
 * to veth ends whose peers sit on the bridges. The kernel of namespace "d" has no addresses, so it never
 * answers for the director: lvsd does, in userspace.
 *
 * With `realServers: "dr"` or `"tun"` the real servers are LVS-DR / LVS-TUN real servers on the
 * same topology (lvs-realserver; a second leg rsOutside(k) on the outside bridge carries their
 * replies straight to the client), so the forwarding methods compare on one topology.
 */

import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { nftPath } from "../../control/kernel-ingress.js";
import { disableOffloads } from "../../datapath/io/netconf.js";
import { LabBase, PEER, ROOT, VIP } from "./labbase.js";
import { ip, sh, waitFor } from "./netns.js";
import { REALSERVER } from "./routedlab.js";

export { LVSADM, LVSD, PEER, ROOT, VIP } from "./labbase.js";

export const CLIENT_IP = "10.0.0.7";
export const DIRECTOR_OUT = "10.0.0.1";
export const DIRECTOR_IN = "192.168.10.254";
/** The director's kernel address on the inside network (option mgmt): health checks leave from it. */
export const DIRECTOR_MGMT = "192.168.10.253";

export function rsIp(k: number): string {
  return `192.168.10.${k}`;
}

/**
 * tap / raw / xdp: lvsd on TAP devices, AF_PACKET sockets or AF_XDP sockets. kernel: no lvsd; the director namespace
 * forwards with the kernel (addresses on the bridges, the VIP as a local /32, ip_forward on;
 * the caller adds nftables DNAT rules) — the end-to-end benchmark's reference. tapcopy: no
 * director; a C program copies frames between a TAP on each bridge, so both sides are one
 * Ethernet segment (the client reaches rs1 at 10.0.0.8 directly) — the TAP I/O ceiling. xdpcopy:
 * the same with xdpcopy (src/tools/lab/xdpcopy.ts) copying between the veths the xdp backend
 * gives lvsd, over AF_XDP (linkOpts "busy-poll=N" passes --busy-poll N) — the AF_XDP I/O ceiling.
 */
export type LabBackend = "tap" | "raw" | "xdp" | "kernel" | "tapcopy" | "xdpcopy";

export const TAPCOPY = join(ROOT, "build", "Release", "tapcopy");
/** rs1's address on the client's subnet in the tapcopy topology. */
export const TAPCOPY_PEER = "10.0.0.8";
export const XDPCOPY = join(ROOT, "dist", "src", "tools", "lab", "xdpcopy.js");

export interface NatLabOptions {
  prefix: string;
  servers?: number;
  backend?: LabBackend;
  /** Extra lvsd arguments. */
  lvsdArgs?: string[];
  /**
   * Give the real servers a default route via the director (default true: LVS-NAT needs it).
   * FULLNAT labs turn it off: the real servers then have no route to the client at all.
   */
  rsRoute?: boolean;
  /**
   * Put DIRECTOR_MGMT/24 on namespace "d"'s inside bridge (default off), so the director's
   * kernel reaches the real servers: lvsd's health checks use the host's sockets.
   */
  mgmt?: boolean;
  /**
   * How the real servers are set up (default "nat"). "dr" and "tun" keep this topology — the
   * same namespaces, bridges and lvsd links, no router — and prepare the real servers with
   * lvs-realserver as a user would (the VIP on lo, ARP for it off; for "tun" the userspace IPIP
   * decapsulator on the inside leg). Each real server also gets a leg on the outside bridge,
   * RS_OUTSIDE(k)/24, with no default route: its replies go from the VIP straight to the client
   * on that segment, bypassing the director, as LVS-DR/TUN replies do.
   */
  realServers?: RealServerMode;
  /** Extra options for both of lvsd's links (raw and xdp backends), e.g. "busy-poll=50". */
  linkOpts?: string;
  /**
   * TX and RX queues of the veth pairs lvsd binds to (raw and xdp backends; default 1): an xdp
   * lvsd with `--workers N` binds queue i in worker i and needs N. The bridge side picks a
   * frame's queue by flow hash.
   */
  queues?: number;
}

export type RealServerMode = "nat" | "dr" | "tun";

/** Real server k's leg on the client's segment (realServers "dr" / "tun"). */
export function rsOutside(k: number): string {
  return `10.0.0.${10 + k}`;
}

export class NatLab extends LabBase {
  readonly servers: number;
  readonly backend: LabBackend;
  private readonly extra: string[];
  private readonly linkOpts: string;
  private readonly queues: number;
  private readonly rsRoute: boolean;
  private readonly mgmt: boolean;
  readonly realServers: RealServerMode;
  /** backend xdpcopy: the copier, and what it printed on stdout (its counts, at exit). */
  copier: ChildProcess | undefined;
  copierOut = "";
  /** TUN decapsulators: stopped with SIGTERM so that they undo their set-up. */
  private readonly decaps: ChildProcess[] = [];

  constructor(opts: NatLabOptions) {
    super(opts.prefix);
    this.servers = opts.servers ?? 4;
    this.backend = opts.backend ?? "tap";
    this.extra = opts.lvsdArgs ?? [];
    this.linkOpts = opts.linkOpts !== undefined ? `,${opts.linkOpts}` : "";
    this.queues = opts.queues ?? 1;
    this.mgmt = opts.mgmt ?? false;
    this.realServers = opts.realServers ?? "nat";
    this.rsRoute = this.realServers === "nat" && (opts.rsRoute ?? true);
  }

  /** Build the namespaces, start the real servers and lvsd. */
  async up(): Promise<void> {
    const t = this.topo;
    const d = t.addNs("d");
    const bo = t.dev("bo");
    const bi = t.dev("bi");
    for (const br of [bo, bi]) {
      ip("-n", d, "link", "add", br, "type", "bridge");
      ip("-n", d, "link", "set", br, "up");
    }
    // The bridges stand for switches: no iptables/nftables on the frames they pass. With the
    // br_netfilter module loaded (Docker and others load it) every bridged frame would otherwise
    // also go through the namespace's IP hooks and conntrack, a cost no switch has. Absent
    // module: nothing to switch off (the command fails, which is fine).
    t.exec("d", "sysctl", [
      "-qw",
      "net.bridge.bridge-nf-call-iptables=0",
      "net.bridge.bridge-nf-call-ip6tables=0",
      "net.bridge.bridge-nf-call-arptables=0",
    ]);
    if (this.mgmt) ip("-n", d, "addr", "add", `${DIRECTOR_MGMT}/24`, "dev", bi);
    const c = t.addNs("c");
    this.veth(c, t.dev("ca"), t.dev("cb"), bo);
    ip("-n", c, "addr", "add", `${CLIENT_IP}/24`, "dev", t.dev("ca"));
    ip("-n", c, "route", "add", "default", "via", DIRECTOR_OUT);
    for (let k = 1; k <= this.servers; k++) {
      const r = t.addNs(`r${k}`);
      this.veth(r, t.dev(`r${k}a`), t.dev(`r${k}b`), bi);
      ip("-n", r, "addr", "add", `${rsIp(k)}/24`, "dev", t.dev(`r${k}a`));
      if (this.rsRoute) ip("-n", r, "route", "add", "default", "via", DIRECTOR_IN);
      if (this.realServers !== "nat") this.prepareRealServer(k);
      if ((this.backend === "tapcopy" || this.backend === "xdpcopy") && k === 1)
        ip("-n", r, "addr", "add", `${TAPCOPY_PEER}/24`, "dev", t.dev("r1a"));
      t.spawn(`r${k}`, process.execPath, [
        PEER,
        "--name",
        `rs${k}`,
        "--http",
        "80",
        "--http",
        "8080",
        "--proxy-http",
        "8082",
        "--udp",
        "53",
      ]);
    }
    if (this.backend === "kernel") {
      ip("-n", d, "addr", "add", `${DIRECTOR_OUT}/24`, "dev", bo);
      ip("-n", d, "addr", "add", `${VIP}/32`, "dev", bo);
      ip("-n", d, "addr", "add", `${DIRECTOR_IN}/24`, "dev", bi);
      t.exec("d", "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
      await this.waitServers();
      return;
    }
    if (this.backend === "tapcopy") {
      t.spawn("d", TAPCOPY, ["-c", t.dev("t0"), t.dev("t1")]);
      await waitFor(
        "tapcopy's TAPs",
        () => t.exec("d", "ip", ["link", "show", t.dev("t1")]).code === 0,
        10_000,
      );
      ip("-n", d, "link", "set", t.dev("t0"), "master", bo, "up");
      ip("-n", d, "link", "set", t.dev("t1"), "master", bi, "up");
      await this.waitServers();
      return;
    }
    let links: string[];
    if (this.backend === "tap") {
      links = [
        `tap=${t.dev("t0")},bridge=${bo},addr=${DIRECTOR_OUT}/24`,
        `tap=${t.dev("t1")},bridge=${bi},addr=${DIRECTOR_IN}/24`,
      ];
    } else {
      // AF_PACKET reads wire-sized frames only: the senders on veth must not hand over TCP
      // super-frames (TSO/GSO), which would not fit a batch slot.
      // AF_XDP frames carry no checksum state either: the senders must finish their TCP/UDP
      // checksums themselves (tx checksum offload off), or lvsd would forward partial ones.
      const csum = this.backend === "raw" ? {} : { txCsum: false };
      disableOffloads(c, t.dev("ca"), csum);
      for (let k = 1; k <= this.servers; k++) disableOffloads(t.ns(`r${k}`), t.dev(`r${k}a`), csum);
      // veth pairs: lvsd binds to x0/x1, their peers y0/y1 sit on the bridges
      this.vethLocal(d, t.dev("x0"), t.dev("y0"), bo);
      this.vethLocal(d, t.dev("x1"), t.dev("y1"), bi);
      if (this.backend === "xdpcopy") {
        const busy = /busy-poll=(\d+)/.exec(this.linkOpts)?.[1];
        const cp = t.spawn("d", process.execPath, [
          XDPCOPY,
          ...(busy !== undefined ? ["--busy-poll", busy] : []),
          t.dev("x0"),
          t.dev("x1"),
        ]);
        this.copier = cp;
        let err = "";
        cp.stderr?.on("data", (b: Buffer) => {
          err += b.toString();
        });
        cp.stdout?.on("data", (b: Buffer) => {
          this.copierOut += b.toString();
        });
        // up once both veths carry its XDP program
        await waitFor(
          "xdpcopy's XDP programs",
          () =>
            cp.exitCode !== null ||
            [t.dev("x0"), t.dev("x1")].every((x) =>
              /xdp/.test(t.exec("d", "ip", ["link", "show", x]).stdout),
            ),
          10_000,
        );
        if (cp.exitCode !== null) throw new Error(`xdpcopy exited (${cp.exitCode}): ${err.trim()}`);
        await this.waitServers();
        return;
      }
      const kind = this.backend === "xdp" ? "xdp" : "raw";
      // x0/x1 are lvsd's alone: the namespace's own stack need not route and drop every frame
      // (kernel=drop, when nft is there; AF_XDP takes the frames from the stack anyway)
      const own = kind === "raw" && nftPath() !== undefined ? ",kernel=drop" : "";
      links = [
        `${kind}=${t.dev("x0")},addr=${DIRECTOR_OUT}/24${own}${this.linkOpts}`,
        `${kind}=${t.dev("x1")},addr=${DIRECTOR_IN}/24${own}${this.linkOpts}`,
      ];
    }
    await this.startLvsd([...links.flatMap((l) => ["--link", l]), ...this.extra]);
    await this.waitServers();
  }

  /**
   * One more host on the client's segment (the outside bridge), namespace `role`, with `addr`/24
   * and a default route via lvsd (the flood bench's attacker, so that what lvsd sends back to the
   * flood's sources lands there and not on the legitimate client). With `dropIngress` an
   * nftables netdev ingress chain drops everything that arrives but ARP (needs nft): the host
   * ignores that backscatter at the lowest cost, as a router towards the sources would.
   */
  addOutsideHost(role: string, addr: string, dropIngress = false): string {
    const t = this.topo;
    const ns = t.addNs(role);
    const dev = t.dev(`${role}a`);
    this.veth(ns, dev, t.dev(`${role}b`), t.dev("bo"));
    ip("-n", ns, "addr", "add", `${addr}/24`, "dev", dev);
    ip("-n", ns, "route", "add", "default", "via", DIRECTOR_OUT);
    if (dropIngress) {
      const r = t.exec(
        role,
        "nft",
        ["-f", "-"],
        `table netdev ${role}_drop {\n  chain in {\n    type filter hook ingress device ${dev} priority 0; policy drop;\n    ether type arp accept\n  }\n}\n`,
      );
      if (r.code !== 0) throw new Error(`nft in ${ns}: ${r.stderr}`);
    }
    return ns;
  }

  /** DR/TUN: the leg on the outside bridge for the replies, then lvs-realserver. */
  private prepareRealServer(k: number): void {
    const t = this.topo;
    const r = t.ns(`r${k}`);
    this.veth(r, t.dev(`r${k}o`), t.dev(`r${k}p`), t.dev("bo"));
    ip("-n", r, "addr", "add", `${rsOutside(k)}/24`, "dev", t.dev(`r${k}o`));
    // requests arrive on the inside leg from the client's address, which routes out the other leg
    for (const dev of ["all", "default", t.dev(`r${k}a`), t.dev(`r${k}o`)])
      t.exec(`r${k}`, "sysctl", ["-qw", `net.ipv4.conf.${dev}.rp_filter=0`]);
    if (this.realServers === "dr") {
      const res = sh(process.execPath, [REALSERVER, "dr", "--vip", VIP, "--netns", r]);
      if (res.code !== 0) throw new Error(`lvs-realserver dr: ${res.stderr.trim()}`);
    } else {
      // the decapsulator runs in the foreground until the lab ends
      this.decaps.push(
        t.spawn(`r${k}`, process.execPath, [REALSERVER, "tun", "--vip", VIP, "--dev", t.dev(`r${k}a`)]),
      );
    }
  }

  private async waitServers(): Promise<void> {
    const t = this.topo;
    await waitFor("the real servers", () => {
      for (let k = 1; k <= this.servers; k++) {
        if (t.exec(`r${k}`, "ss", ["-ltn", "sport = :80"]).stdout.split("\n").length < 3) return false;
        if (this.realServers === "nat") continue;
        if (
          this.realServers === "tun" &&
          t.exec(`r${k}`, "ip", ["-o", "link", "show", "type", "tun"]).stdout === ""
        )
          return false;
        if (!t.exec(`r${k}`, "ip", ["-4", "addr", "show", "dev", "lo"]).stdout.includes(`${VIP}/32`))
          return false;
      }
      return true;
    });
  }

  override down(): void {
    for (const p of this.decaps) if (p.exitCode === null) p.kill("SIGTERM");
    if (this.decaps.length > 0) sh("sleep", ["0.5"]);
    if (this.realServers === "dr") {
      for (let k = 1; k <= this.servers; k++)
        sh(process.execPath, [REALSERVER, "dr", "--vip", VIP, "--netns", this.topo.ns(`r${k}`), "--undo"]);
    }
    super.down();
  }

  private veth(ns: string, inside: string, outside: string, bridge: string): void {
    const d = this.topo.ns("d");
    ip("link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside, "netns", d);
    ip("-n", d, "link", "set", outside, "master", bridge, "up");
    ip("-n", ns, "link", "set", inside, "up");
    sh("ip", ["netns", "exec", ns, "sysctl", "-qw", `net.ipv6.conf.${inside}.disable_ipv6=1`]);
  }

  private vethLocal(d: string, a: string, b: string, bridge: string): void {
    const q = this.queues > 1 ? ["numtxqueues", String(this.queues), "numrxqueues", String(this.queues)] : [];
    ip("-n", d, "link", "add", a, ...q, "type", "veth", "peer", "name", b, ...q);
    ip("-n", d, "link", "set", b, "master", bridge, "up");
    sh("ip", ["netns", "exec", d, "sysctl", "-qw", `net.ipv6.conf.${a}.disable_ipv6=1`]);
    ip("-n", d, "link", "set", a, "up");
  }
}
