/**
 * The failover lab's topology (issue 10): two directors sharing a VIP by VRRP, a client and
 * four nginx real servers, all in network namespaces.
 *
 *   NAT / FULLNAT                                   DR
 *   client 10.0.0.7 ─┐                               client 10.0.0.7 ─┐
 *                    │ bridge "o" (ns sw)                             │ bridge "o" (ns sw)
 *   d1 10.0.0.1 ─────┤  VIP 10.0.0.100               d1 10.0.0.1 ─────┤  VIP 10.0.0.100
 *   d2 10.0.0.2 ─────┘                               d2 10.0.0.2 ─────┤
 *   d1 192.168.10.252 ─┐                             rs1..4 10.0.0.11..14 (VIP on lo)
 *   d2 192.168.10.253 ─┤ bridge "i" (ns sw)
 *   rs1..4 192.168.10.1..4 (NAT: default route via the gateway 192.168.10.254, a VRRP address;
 *                           FULLNAT: no route to the client; local address 192.168.10.200)
 *
 * The bridges live in a namespace of their own ("sw"). Each director is a namespace ("d1", "d2")
 * in which lvsd creates its TAP links on local bridges, each joined to the shared bridge by a
 * veth pair, so the two directors' links have the same names (as eth0/eth1 on two real hosts)
 * and both sit on the same segments: whichever is VRRP MASTER owns the VIP (and the gateway, or
 * the FULLNAT local address). Each lvsd is configured only by a keepalived.conf the lab writes
 * (`haConfig`): the vrrp_instance, the virtual_server with the four real servers and
 * `global_defs { lvs_sync_daemon ... }` for connection sync. FULLNAT has no keepalived.conf
 * spelling, so there the service comes from an ipvsadm rule file (`lvsd --restore`).
 *
 * `withKeepalived`: director 2 is a real keepalived (VRRP only) on plain veths with kernel
 * addresses; the VRRP addresses then land on its kernel interfaces.
 */
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LVSADM, LVSD, ROOT } from "./labbase.js";

/**
 * Connection sync tuned for failback (docs/ha.md, "Connection sync in lvsd"): resend an active
 * connection every 2 s of traffic (the kernel's time-based mode, sync_period 0) instead of every
 * 50 client packets, so a restarted director learns the connections that send few packets (a
 * DR download's client ACKs large segments) before it preempts.
 */
export const HA_SYSCTLS = ["sync_threshold=3,0", "sync_refresh_period=2"];

import { type ExecResult, ip, sh, Topology, waitFor } from "./netns.js";

export const REALSERVER = join(ROOT, "bin", "lvs-realserver");
export const HA_VIP = "10.0.0.100";
export const HA_CLIENT = "10.0.0.7";
/** The NAT real servers' default gateway, moved by VRRP with the VIP. */
export const HA_GW = "192.168.10.254";
/** The FULLNAT local address, moved by VRRP with the VIP. */
export const HA_LADDR = "192.168.10.200";
export const HA_VRID = 51;
export const HA_ADVERT_INT = 1;
export const HA_PRIORITY = [150, 100] as const;
export const HA_SYNC_ID = 10;

export type HaMode = "nat" | "dr" | "fullnat";

export interface HaLabOptions {
  prefix: string;
  mode: HaMode;
  /** Director 2 is keepalived (VRRP only) instead of lvsd. */
  withKeepalived: boolean;
  /** Directory for the configurations, nginx's files and the download file (created). */
  dir: string;
  servers?: number;
  /** Size of the file the downloads fetch. */
  fileBytes: number;
  /** nginx's limit_rate for it (bytes per second). */
  limitRate: number;
  /** A persistent service (persistence_timeout / -p): the client keeps one real server. */
  persistent?: boolean;
  /** The SYN proxy on the service (syn_proxy / --synproxy; NAT and FULLNAT only). */
  synProxy?: boolean;
}

/** The persistence timeout of `--persistent` (seconds). */
export const HA_PERSIST_TIMEOUT = 300;

/** Director k's (1, 2) addresses. */
export function directorOut(k: number): string {
  return `10.0.0.${k}`;
}
export function directorIn(k: number): string {
  return `192.168.10.${251 + k}`;
}
export function directorMac(k: number, link: 0 | 1): string {
  return `02:00:00:00:0${k}:0${link + 1}`;
}

/** One timestamped line of a director's log (arrival time in the lab). */
export interface LogLine {
  at: number;
  text: string;
}

export class HaLab {
  readonly topo: Topology;
  readonly o: HaLabOptions;
  readonly servers: number;
  /** The download file (nginx serves it at /big). */
  readonly bigFile: string;
  private readonly procs: (ChildProcess | undefined)[] = [undefined, undefined, undefined];
  /** Per director (index 1, 2): every line of its log, with arrival times. */
  readonly logs: LogLine[][] = [[], [], []];

  constructor(o: HaLabOptions) {
    if (o.synProxy && o.mode === "dr")
      throw new Error("the SYN proxy needs NAT or FULLNAT (the director must see replies)");
    this.o = o;
    this.topo = new Topology(o.prefix);
    this.servers = o.servers ?? 4;
    this.bigFile = join(o.dir, "big.bin");
  }

  /** Names of director links: the same in both directors' namespaces. */
  get outDev(): string {
    return this.topo.dev("o");
  }
  get inDev(): string {
    return this.topo.dev("i");
  }

  rsIp(k: number): string {
    return this.o.mode === "dr" ? `10.0.0.${10 + k}` : `192.168.10.${k}`;
  }

  control(k: number): string {
    return `/run/lvsd/${this.o.prefix}-d${k}.sock`;
  }

  confFile(k: number): string {
    return join(this.o.dir, `d${k}-keepalived.conf`);
  }

  rulesFile(): string {
    return join(this.o.dir, "fullnat.rules");
  }

  /** Whether director k is lvsd (director 2 is keepalived with withKeepalived). */
  isLvsd(k: number): boolean {
    return k === 1 || !this.o.withKeepalived;
  }

  /** keepalived.conf of director k, as the lab writes it (and as a user would). */
  config(k: number): string {
    const st = k === 1 ? "MASTER" : "BACKUP";
    const prio = HA_PRIORITY[k - 1];
    const lvsd = this.isLvsd(k);
    const addrs = [`${HA_VIP}/24 dev ${this.outDev}`];
    if (this.o.mode === "nat") addrs.push(`${HA_GW}/24 dev ${this.inDev}`);
    if (this.o.mode === "fullnat") addrs.push(`${HA_LADDR}/24 dev ${this.inDev}`);
    const syncDev = this.o.mode === "dr" ? this.outDev : this.inDev;
    const head = lvsd
      ? `! director ${k}: lvsd --config (written by npm run lab -- ha)
global_defs {
    lvs_sync_daemon ${syncDev} VI_1 id ${HA_SYNC_ID}
}
`
      : `! director ${k}: keepalived --vrrp (VRRP only: no IPVS in this mode)
`;
    const vs =
      lvsd && this.o.mode !== "fullnat"
        ? `
virtual_server ${HA_VIP} 80 {
    delay_loop 6
    lb_algo rr
    lb_kind ${this.o.mode === "nat" ? "NAT" : "DR"}
    protocol TCP
${
  this.o.persistent
    ? `    persistence_timeout ${HA_PERSIST_TIMEOUT}
`
    : ""
}${
  this.o.synProxy
    ? `    syn_proxy
`
    : ""
}${Array.from(
  { length: this.servers },
  (_, i) => `    real_server ${this.rsIp(i + 1)} 80 {
        weight 1
    }`,
).join("\n")}
}
`
        : "";
    return `${head}
vrrp_instance VI_1 {
    state ${st}
    interface ${this.outDev}
    virtual_router_id ${HA_VRID}
    priority ${prio}
    advert_int ${HA_ADVERT_INT}
    authentication {
        auth_type PASS
        auth_pass lvslab
    }
    virtual_ipaddress {
${addrs.map((a) => `        ${a}`).join("\n")}
    }
}
${vs}`;
  }

  /** FULLNAT: the service as an ipvsadm rule file for lvsd --restore. */
  rules(): string {
    const svc = `${HA_VIP}:80`;
    return `-A -t ${svc} -s rr${this.o.persistent ? ` -p ${HA_PERSIST_TIMEOUT}` : ""}${this.o.synProxy ? " --synproxy" : ""}
--add-laddr -t ${svc} -z ${HA_LADDR}
${Array.from({ length: this.servers }, (_, i) => `-a -t ${svc} -r ${this.rsIp(i + 1)}:80 --fullnat -w 1`).join("\n")}
`;
  }

  /** Build everything and start both directors (director 1 first, until it is MASTER). */
  async up(): Promise<void> {
    const t = this.topo;
    const o = this.o;
    mkdirSync(o.dir, { recursive: true });
    chmodSync(o.dir, 0o755); // nginx's workers run as nobody
    writeFileSync(this.bigFile, bigFileBytes(o.fileBytes));
    const sw = t.addNs("sw");
    const segs = o.mode === "dr" ? ["o"] : ["o", "i"];
    for (const s of segs) {
      ip("-n", sw, "link", "add", t.dev(`b${s}`), "type", "bridge");
      ip("-n", sw, "link", "set", t.dev(`b${s}`), "up");
    }
    // client
    const c = t.addNs("c");
    this.toSwitch(c, t.dev("ca"), t.dev("cb"), "o");
    ip("-n", c, "addr", "add", `${HA_CLIENT}/24`, "dev", t.dev("ca"));
    // real servers
    for (let k = 1; k <= this.servers; k++) {
      const r = t.addNs(`r${k}`);
      const dev = t.dev(`r${k}a`);
      this.toSwitch(r, dev, t.dev(`r${k}b`), o.mode === "dr" ? "o" : "i");
      ip("-n", r, "addr", "add", `${this.rsIp(k)}/24`, "dev", dev);
      if (o.mode === "nat") ip("-n", r, "route", "add", "default", "via", HA_GW);
      if (o.mode === "dr") {
        const res = sh(process.execPath, [REALSERVER, "dr", "--vip", HA_VIP, "--netns", r]);
        if (res.code !== 0) throw new Error(`lvs-realserver dr: ${res.stderr.trim()}`);
      }
      t.spawn(`r${k}`, "nginx", ["-c", this.nginxConf(k), "-g", "daemon off;"]);
    }
    // directors
    for (const k of [1, 2]) {
      const d = t.addNs(`d${k}`);
      writeFileSync(this.confFile(k), this.config(k));
      if (this.isLvsd(k)) {
        for (const s of segs) {
          // local bridge (lvsd puts its TAP on it) joined to the shared one by a veth pair
          const local = t.dev(`l${s}`);
          ip("-n", d, "link", "add", local, "type", "bridge");
          ip("-n", d, "link", "set", local, "up");
          const inner = t.dev(`u${s}`);
          ip(
            "link",
            "add",
            inner,
            "netns",
            d,
            "type",
            "veth",
            "peer",
            "name",
            t.dev(`v${k}${s}`),
            "netns",
            sw,
          );
          ip("-n", d, "link", "set", inner, "master", local, "up");
          ip("-n", sw, "link", "set", t.dev(`v${k}${s}`), "master", t.dev(`b${s}`), "up");
        }
      } else {
        // keepalived: the same interface names, as kernel interfaces with the director's addresses
        for (const s of segs) {
          const dev = s === "o" ? this.outDev : this.inDev;
          ip("link", "add", dev, "netns", d, "type", "veth", "peer", "name", t.dev(`v${k}${s}`), "netns", sw);
          ip("-n", d, "link", "set", dev, "address", directorMac(k, s === "o" ? 0 : 1));
          ip("-n", d, "addr", "add", `${s === "o" ? directorOut(k) : directorIn(k)}/24`, "dev", dev);
          ip("-n", d, "link", "set", dev, "up");
          ip("-n", sw, "link", "set", t.dev(`v${k}${s}`), "master", t.dev(`b${s}`), "up");
        }
      }
    }
    if (o.mode === "fullnat") writeFileSync(this.rulesFile(), this.rules());
    await waitFor(
      "the real servers' nginx",
      () => {
        for (let k = 1; k <= this.servers; k++) {
          if (t.exec(`r${k}`, "ss", ["-ltn", "sport = :80"]).stdout.split("\n").length < 3) return false;
        }
        return true;
      },
      15_000,
    );
    this.startDirector(1);
    await this.waitState(1, "MASTER", 15_000);
    this.startDirector(2);
    await this.waitState(2, "BACKUP", 15_000);
  }

  private nginxConf(k: number): string {
    const d = join(this.o.dir, `ngx${k}`);
    mkdirSync(d, { recursive: true });
    const conf = join(d, "nginx.conf");
    writeFileSync(
      conf,
      `worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${d}; proxy_temp_path ${d}; fastcgi_temp_path ${d}; uwsgi_temp_path ${d}; scgi_temp_path ${d};
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 80 reuseport;
    location = /big { alias ${this.bigFile}; default_type application/octet-stream; limit_rate ${this.o.limitRate}; }
    location / { return 200 "rs${k}\\n"; }
  }
}
`,
    );
    return conf;
  }

  /** Start director k (again): lvsd, or keepalived for director 2 with withKeepalived. */
  startDirector(k: number): ChildProcess {
    const t = this.topo;
    const log = this.logs[k]!;
    // whole lines only (a chunk may end mid-line), each with its arrival time
    const collector = (): ((b: Buffer) => void) => {
      let part = "";
      return (b: Buffer): void => {
        const at = Date.now();
        const lines = (part + b.toString()).split("\n");
        part = lines.pop() ?? "";
        for (const line of lines) if (line.trim() !== "") log.push({ at, text: line });
      };
    };
    let p: ChildProcess;
    if (this.isLvsd(k)) {
      const links =
        this.o.mode === "dr"
          ? [`tap=${this.outDev},bridge=${t.dev("lo")},mac=${directorMac(k, 0)},addr=${directorOut(k)}/24`]
          : [
              `tap=${this.outDev},bridge=${t.dev("lo")},mac=${directorMac(k, 0)},addr=${directorOut(k)}/24`,
              `tap=${this.inDev},bridge=${t.dev("li")},mac=${directorMac(k, 1)},addr=${directorIn(k)}/24${
                this.o.mode === "nat" ? `,addr=${HA_GW}/24` : ""
              }`,
            ];
      p = t.spawn(`d${k}`, process.execPath, [
        LVSD,
        ...links.flatMap((l) => ["--link", l]),
        "--control",
        this.control(k),
        "--config",
        this.confFile(k),
        ...(this.o.mode === "fullnat" ? ["--restore", this.rulesFile()] : []),
        ...HA_SYSCTLS.flatMap((x) => ["--sysctl", x]),
      ]);
    } else {
      p = t.spawn(`d${k}`, "keepalived", [
        "--dont-fork",
        "--log-console",
        "--log-detail",
        "--vrrp",
        "--no-syslog",
        "--use-file",
        this.confFile(k),
        "--pid",
        join(this.o.dir, "keepalived.pid"),
        "--vrrp_pid",
        join(this.o.dir, "keepalived-vrrp.pid"),
      ]);
      p.stdout?.on("data", collector());
    }
    p.stderr?.on("data", collector());
    this.procs[k] = p;
    return p;
  }

  /** Signal director k's process (SIGKILL by default); returns the time it was sent. */
  kill(k: number, signal: "SIGKILL" | "SIGTERM" = "SIGKILL"): number {
    const p = this.procs[k];
    const at = Date.now();
    p?.kill(signal);
    return at;
  }

  exited(k: number): boolean {
    const p = this.procs[k];
    return p === undefined || p.exitCode !== null || p.signalCode !== null;
  }

  lvsadm(k: number, ...args: string[]): ExecResult {
    return sh(process.execPath, [LVSADM, "--control", this.control(k), ...args], undefined, 10_000);
  }

  /**
   * Director k's VRRP state now: lvsd's `lvsadm --vrrp`; keepalived's from its log (the last
   * "Entering X STATE"); "" when unknown.
   */
  state(k: number): string {
    if (this.isLvsd(k)) {
      if (this.exited(k)) return "";
      return this.lvsadm(k, "--vrrp").stdout.split("\n")[1]?.split(/\s+/)[1] ?? "";
    }
    for (const l of [...this.logs[k]!].reverse()) {
      const m = /Entering (\w+) STATE/.exec(l.text);
      if (m) return m[1]!;
    }
    return "";
  }

  async waitState(k: number, want: string, ms: number): Promise<void> {
    await waitFor(`director ${k} ${want}`, () => this.state(k) === want, ms).catch((e: Error) => {
      throw new Error(`${e.message}\n${this.logText(k)}`);
    });
  }

  /**
   * When director k entered `to` (ms since the epoch) after `since`: lvsd's vrrp.transition
   * event time; keepalived's "Entering X STATE" line's arrival time. undefined if not (yet).
   */
  transitionAt(k: number, to: string, since: number): number | undefined {
    for (const l of this.logs[k]!) {
      if (l.at < since) continue;
      if (this.isLvsd(k)) {
        if (!l.text.includes('"event":"vrrp.transition"') || !l.text.includes(`"to":"${to}"`)) continue;
        const time = Number(/"time":(\d+)/.exec(l.text)?.[1] ?? 0);
        if (time >= since) return time;
      } else if (l.text.includes(`Entering ${to} STATE`)) return l.at;
    }
    return undefined;
  }

  logText(k: number): string {
    return this.logs[k]!.map((l) => l.text).join("\n");
  }

  /**
   * True when director k's lvsd runs connection sync for `lvs_sync_daemon`: it logged
   * `sync.start` and no configuration warning about global_defs or the keyword (an lvsd
   * without connection sync warns and ignores it).
   */
  syncAccepted(k: number): boolean {
    if (!this.isLvsd(k)) return false;
    const log = this.logs[k]!;
    const warned = log.some(
      (l) => l.text.includes('"event":"config.warning"') && /global_defs|lvs_sync_daemon/.test(l.text),
    );
    return !warned && log.some((l) => l.text.includes('"event":"sync.start"'));
  }

  /** Run a command in the client namespace. */
  client(cmd: string, args: readonly string[], timeoutMs = 10_000): ExecResult {
    return this.topo.exec("c", cmd, args, undefined, timeoutMs);
  }

  /** The MAC the client has for the VIP ("" when none). */
  clientVipMac(): string {
    return /lladdr ([0-9a-f:]{17})/.exec(this.client("ip", ["neigh", "show", HA_VIP]).stdout)?.[1] ?? "";
  }

  private toSwitch(ns: string, inside: string, outside: string, seg: string): void {
    const sw = this.topo.ns("sw");
    ip("link", "add", inside, "netns", ns, "type", "veth", "peer", "name", outside, "netns", sw);
    ip("-n", sw, "link", "set", outside, "master", this.topo.dev(`b${seg}`), "up");
    ip("-n", ns, "link", "set", inside, "up");
    sh("ip", ["netns", "exec", ns, "sysctl", "-qw", `net.ipv6.conf.${inside}.disable_ipv6=1`]);
  }

  down(): void {
    if (this.o.mode === "dr") {
      for (let k = 1; k <= this.servers; k++) {
        sh(process.execPath, [REALSERVER, "dr", "--vip", HA_VIP, "--netns", this.topo.ns(`r${k}`), "--undo"]);
      }
    }
    this.topo.destroy();
    for (const k of [1, 2]) sh("rm", ["-f", this.control(k)]);
  }
}

/** The download file: pseudo-random bytes (xorshift), the same for a given size. */
export function bigFileBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
