/**
 * End-to-end benchmark in network namespaces (root). Every setup runs on the same topology, the
 * NAT lab (src/tools/lab/natlab.ts: client, director namespace with two bridges, two real
 * servers), one after the other, in the same run, so the ratios compare on a shared, noisy
 * machine:
 *   - tapcopy: a C program that only copies frames between two TAPs (the TAP I/O ceiling);
 *   - xdpcopy / xdpcopy-busy: the addon copying frames between the xdp setups' two veths over
 *     AF_XDP, in C++ with nothing between the ring calls (src/tools/lab/xdpcopy.ts; the AF_XDP
 *     I/O ceiling, without and with busy-poll=1000 as xdp and xdp-busy);
 *   - tap / raw / xdp: lvsd NAT on TAP devices / on AF_PACKET sockets (zero copy) / on AF_XDP
 *     sockets (the XDP program in driver mode on veth, copy mode); xdp-busy: the same with
 *     `busy-poll=1000` on both links (preferred busy polling, NAPI deferral);
 *   - kernel: the director namespace's kernel forwarding, with nftables DNAT;
 *   - haproxy: HAProxy in tcp mode (1 thread, balance roundrobin to the same real servers) in
 *     the director namespace; it has no UDP mode, so its UDP column is n/a;
 *   - fullnat / dr / tun: lvsd FULLNAT, DR and TUN on TAP; the DR and TUN real servers are set
 *     up by lvs-realserver on the same topology and answer the client over a leg of their own
 *     on the client's segment (no router hop).
 * The setups are entries of SETUP_DEFS: a new lvsd backend is one more entry.
 *
 * UDP: iperf3 -u with 18-byte payloads (60-byte frames), one flow; packets/s received by the
 * server's namespace (Udp InDatagrams + RcvbufErrors: what reached its UDP layer, whether or
 * not the iperf3 server kept up; iperf3's own sent - lost overstates it under heavy loss). HTTP: wrk -t1 -c32 against nginx on the real servers, keep-alive and
 * `Connection: close`. With two CPUs or more the generator (iperf3 -c, wrk) is pinned to CPU 0,
 * the forwarder process (lvsd, tapcopy, HAProxy) to CPU 1, and the receive processing of the
 * director namespace's ports is steered to CPU 1 with RPS, so the director's work runs on CPU 1
 * whether a process or the kernel's softirqs do it (--no-pin: none of this). For each
 * measurement the bench prints the forwarder process's CPU time (utime+stime from
 * /proc/PID/stat) per frame it sent (lvsd's `lvsadm --links` counters; tapcopy's TAP counters)
 * and per request; CPU 1's busy time (from /proc/stat) per packet or request delivered; and the
 * whole machine's. The kernel forwards in softirq context, which no process accounts for and
 * which also delivers the frames into the real servers' sockets, so its only figures are the
 * CPU-1 and machine ones, upper bounds that include whatever else ran there.
 * Needs iperf3, wrk, nginx-light, nftables, haproxy (else its setup is skipped) and taskset.
 *
 * Usage: node dist/bench/e2e/nat.js [--seconds N] [--repeat N] [--no-pin]
 *          [--only tapcopy,xdpcopy,xdpcopy-busy,tap,raw,xdp,xdp-busy,kernel,haproxy,fullnat,dr,tun,raw-w1,raw-w2,xdp-w1,xdp-w2,xdp-w2-busy] [--out FILE]
 * (raw-w1, raw-w2, xdp-w1, xdp-w2 and xdp-w2-busy, lvsd --workers 1 and 2, run only when --only names them)
 * --repeat N measures every setup N times, the order rotated each repeat, and prints the median
 * and range of each ratio (vs the kernel, HAProxy, tapcopy, xdpcopy, xdpcopy-busy and lvsd on TAP, each taken within
 * its repeat), and the same for the CPU costs (the forwarder process's per UDP frame against
 * lvsd on TAP's and per request against HAProxy's; CPU 1's against the kernel's). Writes
 * bench/e2e-results.json (--out FILE: there instead); --report FILE [--out FILE2] prints a saved
 * run again (and writes it with this code's ratios).
 *
 * --observability [--repeat N] [--seconds N] [--out FILE]: what lvsd's `--http` endpoint costs
 * the data path instead (docs/observability.md). Two NAT labs on TAP are up side by side, each
 * with the 1,000 services x 10 dests of bench/metrics.bench.ts (lvsadm -R) beside the VIP's
 * services: lvsd without --http, and lvsd with `--http 127.0.0.1:9101`. After a warm-up flow
 * through each, per repeat (the order rotated each repeat; a pause after any scraping), UDP
 * packets/s through (a) the first, (b) the second with nothing scraping, (c1) the second while
 * a scraper in the director namespace GETs /metrics every second (Prometheus-like, keep-alive),
 * (c2) the same scraping back to back for the whole measurement, (a') the first again (the
 * noise); then the scrape alone, back to back for 5 s with no traffic. Prints lvsd's CPU use,
 * the ratios a'/a, b/a, c1/a, c2/a (median and range over the repeats) and the latencies the
 * scraper saw (to the headers, which lvsd sends once the values are collected when its render
 * worker writes the text, and to the last byte). The scraper is this file (`--scrape-child`),
 * started in the lab and killed by it. Needs iperf3 (seconds default 10).
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, get } from "node:http";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { haproxyConf } from "../../src/tools/lab/haproxy.js";
import type { LabBase } from "../../src/tools/lab/labbase.js";
import {
  LVSADM,
  NatLab,
  type NatLabOptions,
  ROOT,
  rsIp,
  TAPCOPY,
  TAPCOPY_PEER,
  VIP,
  XDPCOPY,
} from "../../src/tools/lab/natlab.js";
import { canUseNetns, must, sh, waitFor } from "../../src/tools/lab/netns.js";
import { nginxConf } from "../../src/tools/lab/nginx.js";
import { REALSERVER } from "../../src/tools/lab/routedlab.js";
import { udpPps as iperfUdpPps, lvsdPid, udpDelivered } from "./measure.js";
import {
  formatSpread,
  machineTicks,
  parseLinks,
  parseWrk,
  rotate,
  type Spread,
  spread,
  statCpuTicks,
  totalTx,
} from "./stats.js";

const args = process.argv.slice(2);
const secIdx = args.indexOf("--seconds");
const SECONDS = secIdx >= 0 ? Number(args[secIdx + 1]) : args.includes("--observability") ? 10 : 4;

/** What runs in the director namespace. */
type SetupKind = "lvsd" | "kernel" | "haproxy" | "tapcopy" | "xdpcopy";

/**
 * One setup of the comparison. Every setup is a NatLab (the same namespaces, bridges, client and
 * two real servers); a new lvsd backend is one more entry with its `lab.backend`.
 */
interface SetupDef {
  id: string;
  name: string;
  kind: SetupKind;
  lab: Omit<NatLabOptions, "prefix" | "servers">;
  /** lvsadm's forwarding method for the dests (kind "lvsd"). */
  method?: "-m" | "-g" | "-i" | "--fullnat";
  /** Only with --only naming it (not in the default run). */
  optIn?: boolean;
}

const SETUP_DEFS: readonly SetupDef[] = [
  { id: "tapcopy", name: "tapcopy (C, TAP<->TAP copy only)", kind: "tapcopy", lab: { backend: "tapcopy" } },
  { id: "xdpcopy", name: "xdpcopy (C++, AF_XDP copy only)", kind: "xdpcopy", lab: { backend: "xdpcopy" } },
  {
    id: "xdpcopy-busy",
    name: "xdpcopy (C++, AF_XDP copy only), busy-poll=1000",
    kind: "xdpcopy",
    lab: { backend: "xdpcopy", linkOpts: "busy-poll=1000" },
  },
  { id: "tap", name: "lvsd NAT on TAP", kind: "lvsd", lab: { backend: "tap" }, method: "-m" },
  { id: "raw", name: "lvsd NAT on AF_PACKET", kind: "lvsd", lab: { backend: "raw" }, method: "-m" },
  { id: "xdp", name: "lvsd NAT on AF_XDP", kind: "lvsd", lab: { backend: "xdp" }, method: "-m" },
  // preferred busy polling with NAPI deferral (docs/xdp.md "Busy polling")
  {
    id: "xdp-busy",
    name: "lvsd NAT on AF_XDP, busy-poll=1000",
    kind: "lvsd",
    lab: { backend: "xdp", linkOpts: "busy-poll=1000" },
    method: "-m",
  },
  // data-path worker threads (docs/workers.md): on 2 vCPUs shared with the generator and the
  // receivers these show the cost of the worker mode, not its scaling (pinned: one CPU for all
  // of lvsd's threads)
  {
    id: "raw-w1",
    name: "lvsd NAT on AF_PACKET, --workers 1",
    kind: "lvsd",
    lab: { backend: "raw", lvsdArgs: ["--workers", "1"] },
    method: "-m",
    optIn: true,
  },
  {
    id: "raw-w2",
    name: "lvsd NAT on AF_PACKET, --workers 2",
    kind: "lvsd",
    lab: { backend: "raw", lvsdArgs: ["--workers", "2"] },
    method: "-m",
    optIn: true,
  },
  // AF_XDP with workers: worker i on queue i of 1- or 2-queue veths, the handoff between them
  {
    id: "xdp-w1",
    name: "lvsd NAT on AF_XDP, --workers 1",
    kind: "lvsd",
    lab: { backend: "xdp", lvsdArgs: ["--workers", "1"] },
    method: "-m",
    optIn: true,
  },
  {
    id: "xdp-w2",
    name: "lvsd NAT on AF_XDP, --workers 2 (2 queues, handoff)",
    kind: "lvsd",
    lab: { backend: "xdp", queues: 2, lvsdArgs: ["--workers", "2"] },
    method: "-m",
    optIn: true,
  },
  {
    id: "xdp-w2-busy",
    name: "lvsd NAT on AF_XDP, --workers 2, busy-poll=1000",
    kind: "lvsd",
    lab: { backend: "xdp", queues: 2, linkOpts: "busy-poll=1000", lvsdArgs: ["--workers", "2"] },
    method: "-m",
    optIn: true,
  },
  { id: "kernel", name: "kernel forwarding + nftables DNAT", kind: "kernel", lab: { backend: "kernel" } },
  { id: "haproxy", name: "HAProxy tcp mode, 1 thread", kind: "haproxy", lab: { backend: "kernel" } },
  {
    id: "fullnat",
    name: "lvsd FULLNAT on TAP",
    kind: "lvsd",
    lab: { backend: "tap", rsRoute: false },
    method: "--fullnat",
  },
  {
    id: "dr",
    name: "lvsd DR on TAP",
    kind: "lvsd",
    lab: { backend: "tap", realServers: "dr" },
    method: "-g",
  },
  {
    id: "tun",
    name: "lvsd TUN on TAP",
    kind: "lvsd",
    lab: { backend: "tap", realServers: "tun" },
    method: "-i",
  },
];

const onlyIdx = args.indexOf("--only");
const ONLY =
  onlyIdx >= 0 ? (args[onlyIdx + 1] ?? "").split(",") : SETUP_DEFS.filter((s) => !s.optIn).map((s) => s.id);
const REPEAT = Math.max(1, Number(argValue("--repeat") ?? 1));
/** Pin the generator (iperf3 -c, wrk) to CPU 0 and the forwarder to CPU 1, when there are two. */
const PIN = !args.includes("--no-pin") && cpus().length >= 2;
const GEN_CPU = 0;
const FWD_CPU = 1;
const HZ = Number(sh("getconf", ["CLK_TCK"]).stdout.trim()) || 100;

/** One measurement: its rate, and the CPU that went into it. */
interface Sample {
  /** Packets/s (UDP) or requests/s (HTTP); null when the setup cannot do it (HAProxy and UDP). */
  rate: number | null;
  /** Packets (UDP, received by the server) or requests (HTTP, completed) in the measurement. */
  count: number;
  /** The forwarder's CPU seconds (utime + stime), when it is a process of its own. */
  fwdCpu: number | null;
  /** Frames the forwarder sent (lvsd's link counters; tapcopy's TAP counters). */
  fwdPackets: number | null;
  /** The whole machine's busy CPU seconds (generator, receivers, forwarder, softirqs, other load). */
  machineCpu: number;
  /**
   * The forwarder CPU's busy seconds (when pinned): the forwarder process, the director's
   * softirq work steered there (RPS), and whatever else the scheduler put on that CPU.
   */
  fwdCpuBusy: number | null;
  /** UDP: the packets the client sent (iperf3's count; the server may not have taken them all). */
  offered?: number;
  errors: number;
}

interface Row {
  setup: string;
  repeat: number;
  udp: Sample;
  keepAlive: Sample;
  close: Sample;
}

const MEASURES = ["udp", "keepAlive", "close"] as const;
type Measure = (typeof MEASURES)[number];
const MEASURE_NAMES: Record<Measure, string> = {
  udp: "UDP",
  keepAlive: "HTTP keep-alive",
  close: "HTTP close",
};

const readText = (f: string): string => {
  try {
    return readFileSync(f, "utf8");
  } catch {
    return "";
  }
};
const procCpu = (pid: number): number => statCpuTicks(readText(`/proc/${pid}/stat`)) / HZ;
const machineCpu = (cpu?: number): number => machineTicks(readText("/proc/stat"), cpu).busy / HZ;

/**
 * Steer the receive processing of the director namespace's ports (the frames from the client
 * and from the real servers: bridging, the kernel's forwarding and DNAT, HAProxy's TCP) to the
 * forwarder's CPU with RPS, so that the director's work — whichever setup does it, in a process
 * or in softirq — runs on that CPU, and the client's sender does not do it on its own CPU.
 */
function steerToForwarder(lab: NatLab): void {
  const t = lab.topo;
  const ports = [t.dev("cb"), ...Array.from({ length: lab.servers }, (_, k) => t.dev(`r${k + 1}b`))];
  const mask = (1 << FWD_CPU).toString(16);
  const script = ports.map(
    (d) => `for q in /sys/class/net/${d}/queues/rx-*; do echo ${mask} > $q/rps_cpus; done`,
  );
  const r = t.exec("d", "sh", ["-c", script.join("\n")]);
  if (r.code !== 0) throw new Error(`RPS: ${r.stderr}`);
}

/** The pid of the process in the lab's director namespace whose command line contains `what`. */
function pidIn(lab: LabBase, what: string): number {
  for (const pid of sh("ip", ["netns", "pids", lab.topo.ns("d")])
    .stdout.split(/\s+/)
    .filter(Boolean)) {
    if (readText(`/proc/${pid}/cmdline`).replaceAll("\0", " ").includes(what)) return Number(pid);
  }
  throw new Error(`no ${what} in ${lab.topo.ns("d")}`);
}

/** The packet counters `dir` of two of the director namespace's interfaces, summed. */
function packetsOf(lab: NatLab, devs: [string, string], dir: "rx" | "tx"): number {
  let n = 0;
  for (const dev of devs) {
    const j = JSON.parse(
      must("ip", ["-n", lab.topo.ns("d"), "-j", "-s", "link", "show", "dev", lab.topo.dev(dev)]),
    ) as Array<{ stats64: Record<"rx" | "tx", { packets: number }> }>;
    n += j[0]?.stats64[dir].packets ?? 0;
  }
  return n;
}

/** Frames the kernel received from user space on the director's TAPs (what tapcopy wrote). */
const tapWritten = (lab: NatLab): number => packetsOf(lab, ["t0", "t1"], "rx");
/** Frames sent out of the director's veths x0/x1 (what xdpcopy's AF_XDP sockets transmitted). */
const vethSent = (lab: NatLab): number => packetsOf(lab, ["x0", "x1"], "tx");

/** Run a command in the client namespace, on the generator's CPU. */
function generate(lab: LabBase, cmd: string, cmdArgs: string[]): { stdout: string; stderr: string } {
  const full = PIN ? ["taskset", ["-c", String(GEN_CPU), cmd, ...cmdArgs]] : [cmd, cmdArgs];
  return lab.client(full[0] as string, full[1] as string[], undefined, (SECONDS + 20) * 1000);
}

/** Start a NatLab for the setup, with the services, rules or proxy in place and warmed up. */
async function prepare(
  def: SetupDef,
  prefix: string,
): Promise<{
  lab: NatLab;
  target: string;
  fwdPid: number | null;
  fwdPackets: () => number | null;
}> {
  const lab = new NatLab({ prefix, servers: 2, ...def.lab });
  current = lab;
  await lab.up();
  const t = lab.topo;
  for (let k = 1; k <= 2; k++) {
    const conf = nginxConf({ dir: `/tmp/${prefix}-ngx${k}`, name: `rs${k}`, port: 8081 });
    t.spawn(`r${k}`, "nginx", ["-c", conf, "-g", "daemon off;"]);
  }
  // DR/TUN real servers must answer from the VIP: bind iperf3's server to it (on their lo)
  const direct = def.lab.realServers === "dr" || def.lab.realServers === "tun";
  t.spawn("r1", "iperf3", ["-s", "-p", "5201", ...(direct ? ["-B", VIP] : [])]);
  let target = VIP;
  let fwdPid: number | null = null;
  let fwdPackets: () => number | null = () => null;
  if (def.kind === "lvsd") {
    const method = def.method ?? "-m";
    const dest = (k: number, p: number) => (direct ? rsIp(k) : `${rsIp(k)}:${p}`);
    const cmds = [
      ["-A", "-u", `${VIP}:5201`, "-s", "rr"],
      ["-a", "-u", `${VIP}:5201`, "-r", dest(1, 5201), method],
      ["-A", "-t", `${VIP}:5201`, "-s", "rr"],
      ["-a", "-t", `${VIP}:5201`, "-r", dest(1, 5201), method],
      ["-A", "-t", `${VIP}:8081`, "-s", "rr"],
      ["-a", "-t", `${VIP}:8081`, "-r", dest(1, 8081), method],
      ["-a", "-t", `${VIP}:8081`, "-r", dest(2, 8081), method],
    ];
    if (method === "--fullnat") {
      for (const [sel, port] of [
        ["-u", 5201],
        ["-t", 5201],
        ["-t", 8081],
      ] as const)
        cmds.push(["--add-laddr", sel, `${VIP}:${port}`, "-z", "192.168.10.200"]);
    }
    for (const c of cmds) {
      const r = lab.lvsadm(...c);
      if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
    }
    fwdPid = lvsdPid(lab);
    fwdPackets = () =>
      totalTx(parseLinks(must(process.execPath, [LVSADM, "--control", lab.control, "--links"])));
  } else if (def.kind === "kernel") {
    const rules = `table ip ${prefix} {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr ${VIP} meta l4proto { tcp, udp } th dport 5201 dnat to ${rsIp(1)}
    ip daddr ${VIP} tcp dport 8081 dnat to numgen inc mod 2 map { 0 : ${rsIp(1)}, 1 : ${rsIp(2)} }
  }
}
`;
    const r = t.exec("d", "nft", ["-f", "-"], rules);
    if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
  } else if (def.kind === "haproxy") {
    const conf = haproxyConf(`/tmp/${prefix}-haproxy`, {
      bind: `${VIP}:8081`,
      servers: [`${rsIp(1)}:8081`, `${rsIp(2)}:8081`],
    });
    const p = t.spawn("d", "haproxy", ["-db", "-f", conf]);
    let log = "";
    p.stderr?.on("data", (b: Buffer) => {
      log += b.toString();
    });
    await waitFor(
      "haproxy",
      () => t.exec("d", "ss", ["-ltnH", `sport = :8081`]).stdout.trim() !== "" || p.exitCode !== null,
      10_000,
    );
    if (p.exitCode !== null) throw new Error(`haproxy exited: ${log}`);
    fwdPid = pidIn(lab, "haproxy");
  } else if (def.kind === "xdpcopy") {
    target = TAPCOPY_PEER;
    fwdPid = pidIn(lab, XDPCOPY);
    fwdPackets = () => vethSent(lab);
  } else {
    target = TAPCOPY_PEER;
    fwdPid = pidIn(lab, TAPCOPY);
    fwdPackets = () => tapWritten(lab);
  }
  if (PIN && fwdPid !== null) must("taskset", ["-a", "-c", "-p", String(FWD_CPU), String(fwdPid)]);
  if (PIN) steerToForwarder(lab);
  await sleep(500);
  // warm ARP/neighbour caches and the forwarder (JIT, rings): not measured
  lab.client("ping", ["-c", "1", "-W", "1", target]);
  if (def.kind !== "haproxy")
    generate(lab, "iperf3", ["-c", target, "-p", "5201", "-u", "-b", "0", "-l", "18", "-t", "1"]);
  generate(lab, "wrk", ["-t1", "-c32", "-d1s", `http://${target}:8081/`]);
  return { lab, target, fwdPid, fwdPackets };
}

async function measureSetup(def: SetupDef, index: number, repeat: number): Promise<Row> {
  const prefix = `eb${index}${process.pid % 10000}`;
  let lab: NatLab | undefined;
  try {
    const p = await prepare(def, prefix);
    lab = p.lab;
    const { target, fwdPid, fwdPackets } = p;
    /** Run one load and account the CPU that went into it. */
    const sample = (
      load: () => { rate: number | null; count: number; errors: number; offered?: number },
    ): Sample => {
      const c0 = fwdPid !== null ? procCpu(fwdPid) : null;
      const p0 = fwdPackets();
      const m0 = machineCpu();
      const f0 = PIN ? machineCpu(FWD_CPU) : null;
      const r = load();
      const f1 = PIN ? machineCpu(FWD_CPU) : null;
      const m1 = machineCpu();
      const p1 = fwdPackets();
      const c1 = fwdPid !== null ? procCpu(fwdPid) : null;
      return {
        ...r,
        fwdCpu: c0 !== null && c1 !== null ? c1 - c0 : null,
        fwdPackets: p0 !== null && p1 !== null ? p1 - p0 : null,
        machineCpu: m1 - m0,
        fwdCpuBusy: f0 !== null && f1 !== null ? f1 - f0 : null,
      };
    };
    const udp = sample(() => {
      if (def.kind === "haproxy") return { rate: null, count: 0, errors: 0 }; // no UDP in HAProxy
      const rs1 = lab!.topo.ns("r1");
      const d0 = udpDelivered(rs1);
      const ip = generate(lab!, "iperf3", [
        ...["-c", target, "-p", "5201", "-u", "-b", "0", "-l", "18"],
        ...["-t", String(SECONDS), "-J"],
      ]);
      // what the server's namespace took in (iperf3's own sent - lost is far too high when most
      // datagrams are lost: see udpDelivered)
      const got = udpDelivered(rs1) - d0;
      try {
        const s = (JSON.parse(ip.stdout) as { end: { sum: { packets: number; seconds: number } } }).end.sum;
        return { rate: got / s.seconds, count: got, offered: s.packets, errors: 0 };
      } catch {
        process.stderr.write(`iperf3 (${def.id}) failed: ${ip.stderr || ip.stdout.slice(0, 300)}\n`);
        return { rate: 0, count: 0, errors: 1 };
      }
    });
    const wrk = (extra: string[]) =>
      sample(() => {
        const r = generate(lab!, "wrk", [
          ...["-t1", "-c32", `-d${SECONDS}s`, ...extra],
          `http://${target}:8081/`,
        ]);
        const w = parseWrk(r.stdout);
        if (!w) process.stderr.write(`wrk (${def.id}) failed: ${r.stderr || r.stdout}\n`);
        return w ? { rate: w.rps, count: w.requests, errors: w.errors } : { rate: 0, count: 0, errors: 1 };
      });
    const keepAlive = wrk([]);
    const close = wrk(["-H", "Connection: close"]);
    return { setup: def.id, repeat, udp, keepAlive, close };
  } finally {
    // current: a lab whose set-up threw (prepare never returned it) is removed too
    (lab ?? current)?.down();
    current = undefined;
    sh("rm", ["-rf", `/tmp/${prefix}-ngx1`, `/tmp/${prefix}-ngx2`, `/tmp/${prefix}-haproxy`]);
  }
}

/** The lab being measured (removed on SIGINT/SIGTERM). */
let current: NatLab | undefined;

/** ns of the forwarder's CPU per forwarded frame (null when it is not measurable). */
const nsPerPacket = (s: Sample): number | null =>
  s.fwdCpu !== null && s.fwdPackets ? (s.fwdCpu / s.fwdPackets) * 1e9 : null;
/** µs of the forwarder's CPU per request or packet delivered (HTTP: per request). */
const usPerUnit = (s: Sample): number | null =>
  s.fwdCpu !== null && s.count > 0 ? (s.fwdCpu / s.count) * 1e6 : null;
/** µs of the forwarder CPU's busy time per packet or request delivered. */
const fwdCpuUsPerUnit = (s: Sample): number | null =>
  typeof s.fwdCpuBusy === "number" && s.count > 0 ? (s.fwdCpuBusy / s.count) * 1e6 : null;
/** µs of the whole machine's CPU per packet or request delivered. */
const machineUsPerUnit = (s: Sample): number | null => (s.count > 0 ? (s.machineCpu / s.count) * 1e6 : null);

/** The references each setup is compared with, in the same repeat. */
const REFERENCES = ["kernel", "haproxy", "tapcopy", "xdpcopy", "xdpcopy-busy", "tap"] as const;

interface RatioSeries {
  /** "tap UDP / kernel" */
  name: string;
  setup: string;
  measure: Measure | "cpu";
  reference: string;
  perRepeat: number[];
  spread: Spread;
}

/** Ratios of each setup's rate to each reference's (and lvsd's CPU per packet to TAP's), per repeat. */
function ratios(rows: readonly Row[], ids: readonly string[]): RatioSeries[] {
  const out: RatioSeries[] = [];
  const get = (setup: string, rep: number) => rows.find((r) => r.setup === setup && r.repeat === rep);
  const reps = [...new Set(rows.map((r) => r.repeat))];
  for (const id of ids) {
    for (const ref of REFERENCES) {
      if (ref === id || !ids.includes(ref)) continue;
      for (const m of MEASURES) {
        const per = reps.flatMap((rep) => {
          const a = get(id, rep)?.[m].rate;
          const b = get(ref, rep)?.[m].rate;
          return a !== null && a !== undefined && b ? [a / b] : [];
        });
        if (per.length === 0) continue;
        out.push({
          name: `${id} ${MEASURE_NAMES[m]} / ${ref}`,
          setup: id,
          measure: m,
          reference: ref,
          perRepeat: per,
          spread: spread(per),
        });
      }
    }
    // CPU costs (lower is better): the forwarder process's per UDP frame against lvsd on TAP's,
    // per request against HAProxy's, and the forwarder CPU's busy time against the kernel's
    const costs: Array<[string, string, Measure, (x: Sample) => number | null]> = [
      ["tap", "CPU/UDP frame", "udp", nsPerPacket],
      ["haproxy", "CPU/request keep-alive", "keepAlive", usPerUnit],
      ["haproxy", "CPU/request close", "close", usPerUnit],
      ["kernel", `CPU${FWD_CPU}/UDP packet`, "udp", fwdCpuUsPerUnit],
      ["kernel", `CPU${FWD_CPU}/request keep-alive`, "keepAlive", fwdCpuUsPerUnit],
      ["kernel", `CPU${FWD_CPU}/request close`, "close", fwdCpuUsPerUnit],
    ];
    for (const [ref, what, m, f] of costs) {
      if (id === ref || !ids.includes(ref)) continue;
      const per = reps.flatMap((rep) => {
        const a = get(id, rep);
        const b = get(ref, rep);
        const x = a ? f(a[m]) : null;
        const y = b ? f(b[m]) : null;
        return x !== null && y ? [x / y] : [];
      });
      if (per.length > 0)
        out.push({
          name: `${id} ${what} / ${ref}`,
          setup: id,
          measure: "cpu",
          reference: ref,
          perRepeat: per,
          spread: spread(per),
        });
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (!canUseNetns()) {
    process.stderr.write("bench/e2e: needs root and the ip tool\n");
    process.exit(2);
  }
  for (const tool of ["iperf3", "wrk", "nginx", "nft", ...(PIN ? ["taskset"] : [])]) {
    if (sh("sh", ["-c", `command -v ${tool}`]).code !== 0) {
      process.stderr.write(
        `bench/e2e: ${tool} is missing (apt-get install -y iperf3 wrk nginx-light nftables util-linux)\n`,
      );
      process.exit(2);
    }
  }
  const unknown = ONLY.filter((id) => !SETUP_DEFS.some((s) => s.id === id));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench/e2e: unknown setup(s) ${unknown.join(", ")} (known: ${SETUP_DEFS.map((s) => s.id).join(", ")})\n`,
    );
    process.exit(2);
  }
  const defs = SETUP_DEFS.filter((s) => {
    if (!ONLY.includes(s.id)) return false;
    if (s.kind === "haproxy" && sh("sh", ["-c", "command -v haproxy"]).code !== 0) {
      process.stderr.write(`skipping ${s.name}: haproxy is missing (apt-get install -y haproxy)\n`);
      return false;
    }
    if (s.lab.realServers && s.lab.realServers !== "nat" && !existsSync(REALSERVER)) {
      process.stderr.write(`skipping ${s.name}: bin/lvs-realserver is missing\n`);
      return false;
    }
    return true;
  });
  const cleanup = (sig: NodeJS.Signals) => {
    current?.down();
    process.stderr.write(`${sig}: namespaces removed\n`);
    process.exit(130);
  };
  process.once("SIGINT", cleanup);
  process.once("SIGTERM", cleanup);
  const load0 = readText("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const rows: Row[] = [];
  for (let rep = 0; rep < REPEAT; rep++) {
    for (const def of rotate(defs, rep)) {
      process.stderr.write(`repeat ${rep + 1}/${REPEAT}: measuring ${def.name}...\n`);
      rows.push(await measureSetup(def, SETUP_DEFS.indexOf(def), rep));
    }
  }
  const load1 = readText("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  const machine = `${cpus()[0]?.model ?? "?"} x${cpus().length}, kernel ${release()}, node ${process.version}`;
  const res = report({
    seconds: SECONDS,
    repeat: REPEAT,
    pinned: PIN,
    machine,
    loadavg: [load0, load1],
    rows,
  });
  const out = argValue("--out") ?? join(ROOT, "bench", "e2e-results.json");
  writeFileSync(out, `${JSON.stringify(res, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

interface Report {
  seconds: number;
  repeat: number;
  pinned: boolean;
  machine: string;
  loadavg: [string, string];
  rows: Row[];
  ratios?: RatioSeries[];
}

/** Print the tables of a run (this one, or a saved one: --report FILE) and return it with its ratios. */
function report(run: Report): Report {
  const { rows } = run;
  const defs = SETUP_DEFS.filter((d) => rows.some((r) => r.setup === d.id));
  const ids = defs.map((d) => d.id);
  const [load0, load1] = run.loadavg;
  const pinning = run.pinned ? `generator on CPU ${GEN_CPU}, forwarder on CPU ${FWD_CPU}` : "not pinned";
  console.log(
    `end-to-end, ${run.seconds} s per measurement, ${run.repeat} repeat(s), ${pinning}; ${run.machine}; load average ${load0} before, ${load1} after`,
  );
  const med = (id: string, f: (r: Row) => number | null): string => {
    const s = spread(rows.filter((r) => r.setup === id).map((r) => f(r) ?? Number.NaN));
    return s.n === 0 ? "n/a" : s.median.toFixed(s.median < 10 ? 2 : 0);
  };
  const fc = `CPU${FWD_CPU}`;
  console.log(
    "\nMedians over the repeats. CPU = the forwarder process's utime+stime (lvsd, tapcopy, HAProxy)",
  );
  console.log(
    `per frame it sent and per request; ${fc} = that CPU's busy time (the forwarder, the director's`,
  );
  console.log(
    "softirqs steered there by RPS, anything else scheduled there) per packet or request delivered;",
  );
  console.log(
    "machine = all CPUs' busy time (generator, servers, softirqs, other load) per packet or request.\n",
  );
  const cols = (what: string) => [`CPU ${what}`, "CPU ns/frame", `${fc} ${what}`, `machine ${what}`];
  const head = [
    "setup",
    "UDP pkt/s",
    ...cols("µs/pkt").slice(1),
    "keep-alive req/s",
    ...cols("µs/req"),
    "close req/s",
    ...cols("µs/req"),
  ];
  console.log(`| ${head.join(" | ")} |`);
  console.log(`|${"---|".repeat(head.length)}`);
  for (const d of defs) {
    const cells = [d.name];
    for (const m of MEASURES) {
      cells.push(med(d.id, (r) => r[m].rate));
      if (m !== "udp") cells.push(med(d.id, (r) => usPerUnit(r[m])));
      cells.push(med(d.id, (r) => nsPerPacket(r[m])));
      cells.push(med(d.id, (r) => fwdCpuUsPerUnit(r[m])));
      cells.push(med(d.id, (r) => machineUsPerUnit(r[m])));
    }
    console.log(`| ${cells.join(" | ")} |`);
  }
  const rs = ratios(rows, ids);
  console.log(
    "\nRatios (median over the repeats, min-max in brackets; each repeat's ratio within that repeat):\n",
  );
  console.log("| ratio | value | per repeat |");
  console.log("|---|---|---|");
  for (const r of rs)
    console.log(
      `| ${r.name} | ${formatSpread(r.spread)} | ${r.perRepeat.map((v) => v.toFixed(2)).join(" / ")} |`,
    );
  const errors = rows.flatMap((r) =>
    MEASURES.filter((m) => r[m].errors > 0).map(
      (m) => `${r.setup} ${m} (repeat ${r.repeat + 1}): ${r[m].errors}`,
    ),
  );
  if (errors.length > 0) console.log(`\nerrors: ${errors.join("; ")}`);
  return { ...run, ratios: rs };
}

// ---- --observability: the cost of lvsd --http to forwarding -------------------------------

const OBS_PORT = 9101;
const OBS_URL = `http://127.0.0.1:${OBS_PORT}/metrics`;
const OBS_SERVICES = 1000;
/** Pause after a measurement with scraping, before the next one starts. */
const SETTLE_MS = 3000;
const OBS_DESTS = 10;
const OBS_SETUPS = ["a", "b", "c1", "c2", "a2"] as const;
type ObsSetup = (typeof OBS_SETUPS)[number];
const OBS_NAMES: Record<ObsSetup, string> = {
  a: "(a) lvsd, no --http",
  a2: "(a') the same, again (the noise)",
  b: "(b) lvsd --http, nothing scraping",
  c1: "(c1) lvsd --http, scrape every 1 s",
  c2: "(c2) lvsd --http, scrapes back to back",
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function argValue(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** ipvsadm -S text of bench/metrics.bench.ts's director: TCP 10.1.x.y:80 wlc, 10 NAT dests each. */
function bigRules(): string {
  const ipOf = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  const base = (10 << 24) | (1 << 16);
  const rs = ((172 << 24) | (16 << 16)) >>> 0;
  const lines: string[] = [];
  for (let s = 0; s < OBS_SERVICES; s++) {
    const svc = `${ipOf(base + s)}:80`;
    lines.push(`-A -t ${svc} -s wlc`);
    for (let k = 0; k < OBS_DESTS; k++)
      lines.push(`-a -t ${svc} -r ${ipOf(rs + s * 16 + k)}:8080 -m -w ${k + 1}`);
  }
  return `${lines.join("\n")}\n`;
}

/** UDP packets/s the server received from one iperf3 -u flow through the lab's VIP. */
function udpPps(lab: LabBase, what: string, seconds = SECONDS): number {
  return iperfUdpPps(lab, what, seconds);
}

/** The scraper (run as `nat.js --scrape-child URL INTERVAL_MS LIMIT_MS` in the director's namespace). */
async function scrapeChild(url: string, intervalMs: number, limitMs: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  /** One GET: [ms until the response's headers, ms until its last byte, bytes]. */
  const once = (): Promise<[number, number, number]> =>
    new Promise((resolve, reject) => {
      const t = performance.now();
      const req = get(url, { agent, timeout: 10_000, headers: { accept: "text/plain" } }, (res) => {
        const first = performance.now() - t;
        let n = 0;
        res.on("data", (b: Buffer) => {
          n += b.length;
        });
        res.on("end", () =>
          res.statusCode === 200
            ? resolve([first, performance.now() - t, n])
            : reject(new Error(`${res.statusCode}`)),
        );
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", reject);
    });
  const start = performance.now();
  let next = start;
  // Bounded: the parent stops us when its measurement ends; LIMIT_MS is the backstop.
  while (performance.now() - start < limitMs) {
    if (intervalMs > 0) {
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      next = Math.max(next + intervalMs, performance.now());
    }
    try {
      const [first, last, bytes] = await once();
      process.stdout.write(`ok ${last.toFixed(3)} ${first.toFixed(3)} ${bytes}\n`);
    } catch (err) {
      process.stdout.write(`err ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  process.exit(0);
}

interface Scrapes {
  /** Until the last byte. */
  ms: number[];
  /** Until the headers (with the render worker: the values collected; without: the text rendered). */
  firstMs: number[];
  bytes: number;
  errors: number;
}

interface LatencyStats {
  n: number;
  mean: number;
  p50: number;
  p99: number;
  max: number;
}

function latencyStats(ms: readonly number[]): LatencyStats {
  const v = [...ms].sort((x, y) => x - y);
  const at = (q: number) => v[Math.min(v.length - 1, Math.max(0, Math.ceil(q * v.length) - 1))] ?? 0;
  const mean = v.length > 0 ? v.reduce((x, y) => x + y, 0) / v.length : 0;
  return { n: v.length, mean, p50: at(0.5), p99: at(0.99), max: v[v.length - 1] ?? 0 };
}

function median(v: readonly number[]): number {
  const s = [...v].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

/** Stop a scraper and collect what it wrote (one line per finished scrape). */
async function stopScraper(p: ChildProcess, out: string[]): Promise<Scrapes> {
  if (p.exitCode === null && p.signalCode === null) {
    const closed = new Promise((r) => p.once("close", r));
    p.kill("SIGTERM");
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5_000))]);
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  }
  const res: Scrapes = { ms: [], firstMs: [], bytes: 0, errors: 0 };
  for (const line of out.join("").split("\n")) {
    const [kind, last, first, bytes] = line.split(" ");
    if (kind === "ok") {
      res.ms.push(Number(last));
      res.firstMs.push(Number(first));
      res.bytes = Number(bytes);
    } else if (kind === "err") res.errors++;
  }
  return res;
}

async function observability(): Promise<void> {
  if (!canUseNetns()) {
    process.stderr.write("bench/e2e: needs root and the ip tool\n");
    process.exit(2);
  }
  if (sh("sh", ["-c", "command -v iperf3"]).code !== 0) {
    process.stderr.write("bench/e2e: iperf3 is missing (apt-get install -y iperf3)\n");
    process.exit(2);
  }
  const repeat = Math.max(1, Number(argValue("--repeat") ?? 1));
  const self = fileURLToPath(import.meta.url);
  const n = process.pid % 1000;
  const plain = new NatLab({ prefix: `eoa${n}`, servers: 2, backend: "tap" });
  const http = new NatLab({
    prefix: `eoh${n}`,
    servers: 2,
    backend: "tap",
    lvsdArgs: ["--http", `127.0.0.1:${OBS_PORT}`],
  });
  const labs = [plain, http];
  const cleanup = (sig: NodeJS.Signals) => {
    for (const l of labs) l.down();
    process.stderr.write(`${sig}: namespaces removed\n`);
    process.exit(130);
  };
  process.once("SIGINT", cleanup);
  process.once("SIGTERM", cleanup);
  const rules = bigRules();
  const pps: Record<ObsSetup, number[]> = { a: [], a2: [], b: [], c1: [], c2: [] };
  const lvsdCpu: Record<ObsSetup, number[]> = { a: [], a2: [], b: [], c1: [], c2: [] };
  const scraperCpu: Record<"c1" | "c2", number[]> = { c1: [], c2: [] };
  const scrapes: Record<"c1" | "c2" | "idle", Scrapes[]> = { c1: [], c2: [], idle: [] };
  const hz = Number(sh("getconf", ["CLK_TCK"]).stdout.trim()) || 100;
  /** CPU seconds (user + system) a process has used so far; NaN once it is gone. */
  const cpuSec = (pid: number | undefined): number => {
    const r = sh("cat", [`/proc/${pid}/stat`]);
    const f = r.stdout.slice(r.stdout.lastIndexOf(")") + 2).split(" ");
    return r.code === 0 && pid !== undefined ? (Number(f[11]) + Number(f[12])) / hz : Number.NaN;
  };
  /** lvsd's pid: the process in the lab's director namespace running bin/lvsd. */
  const lvsdPid = (lab: LabBase): number => {
    for (const pid of sh("ip", ["netns", "pids", lab.topo.ns("d")])
      .stdout.split(/\s+/)
      .filter(Boolean)) {
      if (sh("cat", [`/proc/${pid}/cmdline`]).stdout.includes("/bin/lvsd")) return Number(pid);
    }
    throw new Error(`no lvsd in ${lab.topo.ns("d")}`);
  };
  const startScraper = async (intervalMs: number, out: string[]): Promise<ChildProcess> => {
    const limitMs = (SECONDS + 30) * 1000;
    const p = http.topo.spawn("d", process.execPath, [
      self,
      "--scrape-child",
      OBS_URL,
      String(intervalMs),
      String(limitMs),
    ]);
    p.stdout?.on("data", (b: Buffer) => out.push(b.toString()));
    await sleep(300);
    return p;
  };
  let series = 0;
  let bodyBytes = 0;
  try {
    for (const lab of labs) {
      await lab.up();
      const cmds = [
        ["-A", "-u", `${VIP}:5201`, "-s", "rr"],
        ["-a", "-u", `${VIP}:5201`, "-r", `${rsIp(1)}:5201`, "-m"],
        ["-A", "-t", `${VIP}:5201`, "-s", "rr"],
        ["-a", "-t", `${VIP}:5201`, "-r", `${rsIp(1)}:5201`, "-m"],
      ];
      for (const c of cmds) {
        const r = lab.lvsadm(...c);
        if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
      }
      const r = lab.lvsadmIn(rules, "-R");
      if (r.code !== 0) throw new Error(`lvsadm -R: ${r.stderr}`);
      const count = lab
        .lvsadm("-Ln")
        .stdout.split("\n")
        .filter((l) => /^ {2}-> \d/.test(l)).length;
      if (count !== OBS_SERVICES * OBS_DESTS + 2) throw new Error(`lvsadm -Ln lists ${count} real servers`);
      lab.topo.spawn("r1", "iperf3", ["-s", "-p", "5201"]);
    }
    const pids = new Map<LabBase, number>(labs.map((l) => [l, lvsdPid(l)]));
    // The endpoint answers the big scrape (and is warm): count its series once.
    await waitFor(
      "lvsd's --http endpoint",
      () => http.topo.exec("d", "curl", ["-sf", "-o", "/dev/null", OBS_URL]).code === 0,
      15_000,
    );
    const body = execFileSync("ip", ["netns", "exec", http.topo.ns("d"), "curl", "-sf", OBS_URL], {
      maxBuffer: 256 * 1024 * 1024,
    });
    bodyBytes = body.length;
    series = body
      .toString("latin1")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#")).length;
    await sleep(500);
    // Warm-up, not counted: the first flow through a fresh lab is slower (ARP, JIT, caches).
    for (const lab of labs) {
      lab.client("ping", ["-c", "1", "-W", "1", VIP]);
      udpPps(lab, "warm-up", 3);
    }
    await sleep(SETTLE_MS);

    for (let rep = 0; rep < repeat; rep++) {
      // Rotated each repeat, so no setup always comes first or after the scraping.
      const order = OBS_SETUPS.map((_, i) => OBS_SETUPS[(i + rep) % OBS_SETUPS.length]!);
      for (const setup of order) {
        process.stderr.write(`repeat ${rep + 1}/${repeat}: ${OBS_NAMES[setup]}...\n`);
        const lab = setup === "a" || setup === "a2" ? plain : http;
        let scraper: ChildProcess | undefined;
        const out: string[] = [];
        if (setup === "c1" || setup === "c2") scraper = await startScraper(setup === "c1" ? 1000 : 0, out);
        const sc0 = cpuSec(scraper?.pid);
        const c0 = cpuSec(pids.get(lab));
        const t0 = performance.now();
        pps[setup].push(udpPps(lab, setup));
        const wall = (performance.now() - t0) / 1000;
        lvsdCpu[setup].push((cpuSec(pids.get(lab)) - c0) / wall);
        if (scraper && (setup === "c1" || setup === "c2")) {
          scraperCpu[setup].push((cpuSec(scraper.pid) - sc0) / wall);
          scrapes[setup].push(await stopScraper(scraper, out));
        }
        // After scraping, lvsd (and the kernel) still clean up (GC of the rendered text, socket
        // buffers): let that pass, or it lands on the next setup's measurement.
        await sleep(scraper ? SETTLE_MS : 300);
      }
      // The big scrape's latency on a director that forwards nothing (back to back, 5 s).
      process.stderr.write(`repeat ${rep + 1}/${repeat}: scrapes without traffic...\n`);
      const out: string[] = [];
      const idle = await startScraper(0, out);
      await sleep(Math.min(5, SECONDS) * 1000);
      scrapes.idle.push(await stopScraper(idle, out));
      await sleep(SETTLE_MS);
    }
  } finally {
    for (const lab of labs) lab.down();
    process.removeListener("SIGINT", cleanup);
    process.removeListener("SIGTERM", cleanup);
  }

  const fmt = (v: number, d = 0) => v.toFixed(d);
  console.log(
    `lvsd --http scrape cost: NAT on TAP, UDP iperf3 -u -l 18, ${SECONDS} s per measurement, ${repeat} repeat(s), node ${process.version}, ${cpus()[0]?.model ?? "?"} x${cpus().length}`,
  );
  console.log(
    `table: ${OBS_SERVICES} services x ${OBS_DESTS} dests + the VIP's; /metrics ${series} series, ${(bodyBytes / 1e6).toFixed(1)} MB`,
  );
  console.log(
    `${"setup".padEnd(40)} ${"UDP pkt/s per repeat".padEnd(44)} ${"median".padStart(7)}  lvsd CPU  scraper CPU`,
  );
  for (const s of OBS_SETUPS) {
    const sc = s === "c1" || s === "c2" ? `${fmt(median(scraperCpu[s]) * 100)}%` : "";
    console.log(
      `${OBS_NAMES[s].padEnd(40)} ${pps[s]
        .map((v) => fmt(v))
        .join(" / ")
        .padEnd(
          44,
        )} ${fmt(median(pps[s])).padStart(7)}  ${`${fmt(median(lvsdCpu[s]) * 100)}%`.padStart(8)}  ${sc.padStart(11)}`,
    );
  }
  const ratios: Record<string, { perRepeat: number[]; median: number; min: number; max: number }> = {};
  for (const s of ["a2", "b", "c1", "c2"] as const) {
    const per = pps[s].map((v, i) => (pps.a[i]! > 0 ? v / pps.a[i]! : 0));
    ratios[`${s}/a`] = { perRepeat: per, median: median(per), min: Math.min(...per), max: Math.max(...per) };
  }
  for (const [k, r] of Object.entries(ratios))
    console.log(
      `  ${k.padEnd(6)} median ${fmt(r.median, 3)}  min-max ${fmt(r.min, 3)}-${fmt(r.max, 3)}  (${r.perRepeat.map((v) => fmt(v, 3)).join(" / ")})`,
    );
  const latency: Record<
    string,
    LatencyStats & { firstByte: LatencyStats; errors: number; perMeasurement: number[] }
  > = {};
  const line = (l: LatencyStats) =>
    `mean ${fmt(l.mean, 1)} ms, p50 ${fmt(l.p50, 1)}, p99 ${fmt(l.p99, 1)}, max ${fmt(l.max, 1)}`;
  const under: Record<"c1" | "c2" | "idle", string> = {
    c1: "every 1 s, with traffic",
    c2: "back to back, with traffic",
    idle: "back to back, no traffic",
  };
  console.log(
    "scrape latency (GET /metrics to its last byte; in brackets: to its headers, i.e. the values collected)",
  );
  for (const s of ["c1", "c2", "idle"] as const) {
    latency[s] = {
      ...latencyStats(scrapes[s].flatMap((x) => x.ms)),
      firstByte: latencyStats(scrapes[s].flatMap((x) => x.firstMs)),
      errors: scrapes[s].reduce((x, y) => x + y.errors, 0),
      perMeasurement: scrapes[s].map((x) => x.ms.length),
    };
    const l = latency[s]!;
    console.log(
      `  ${under[s].padEnd(27)} n=${l.n} (${l.perMeasurement.join(" / ")}), errors ${l.errors}: ${line(l)} [${line(l.firstByte)}]`,
    );
  }
  const outFile = argValue("--out");
  if (outFile) {
    writeFileSync(
      outFile,
      `${JSON.stringify({ seconds: SECONDS, repeat, series, bodyBytes, pps, lvsdCpu, scraperCpu, ratios, latency }, null, 2)}\n`,
    );
    console.log(`wrote ${outFile}`);
  }
}

const entry = args.includes("--scrape-child")
  ? () =>
      scrapeChild(
        args[args.indexOf("--scrape-child") + 1]!,
        Number(args[args.indexOf("--scrape-child") + 2]),
        Number(args[args.indexOf("--scrape-child") + 3]),
      )
  : args.includes("--observability")
    ? observability
    : args.includes("--report")
      ? async () => {
          const r = report(JSON.parse(readFileSync(argValue("--report") ?? "", "utf8")) as Report);
          const out = argValue("--out");
          if (out) writeFileSync(out, `${JSON.stringify(r, null, 2)}\n`);
        }
      : main;

entry().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
