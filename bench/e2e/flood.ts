/**
 * The hardening benchmark (issue "Hardening"; docs/security.md), in network namespaces (root):
 * the NAT lab (lvsd on TAP, nginx on two real servers, iperf3 on the first), three parts:
 *
 * - `flood`: legitimate `Connection: close` HTTP (wrk -t1 -c16; after a 2 s warm-up) without and then during a SYN
 *   flood at the generator's maximum (hping3 --flood --rand-source from the client namespace,
 *   started 4 s before wrk and stopped after it), for each defence setting: none, drop_entry=1,
 *   drop_entry=1 + drop_packet=1 (a fresh lab each, `--max-conns 262144` so the flood fills the
 *   table within seconds). Reports req/s during ÷ before (same lab, seconds apart), lvsd's RSS
 *   (largest sample, /proc every 250 ms) and the table size at the flood's end.
 * - `synproxy`: the same measurement with the SYN proxy on (`lvsadm -E ... --synproxy`) for both
 *   the flooded service (VIP:80) and wrk's (VIP:8081), no other defence: the flood's SYNs are
 *   answered with cookies and leave no entry; wrk's connections go through the proxy too. With
 *   `--backend raw --link-opts synproxy-xdp=auto` the SYNs are answered by the XDP responder
 *   (the "in XDP" column) and lvsd sees only the ACKs.
 *   In both parts and in `kernel`, where the CPU went during each wrk run: the machine's idle
 *   share (/proc/stat), lvsd's CPU (utime + stime of all its threads, in % of one CPU) and the
 *   machine's busy CPU per legitimate request before the flood (µs): when the baseline already
 *   keeps the machine busy, the flood's generator on the same CPUs takes its share from it.
 * - `listing`: lvsd with the default table (1,048,576 entries; `embryonic_share=100`, so that the
 *   flood's embryonic entries may fill it) filled by a flood (until about 1 M entries or 40 s;
 *   they live 60 s), then UDP packets/s through the VIP (iperf3 -u) without and during
 *   `lvsadm -Lnc` run back to back: the listing's time and size, lvsd's RSS before, largest
 *   during, after.
 * - `clients`: UDP packets/s without and while a process in the root namespace opens 20,000
 *   connections to lvsd's control socket (Unix socket; holding them, sending partial requests),
 *   then the time `lvsadm -Ln` takes once they are gone.
 *
 * - `kernel` (not in the default set): the reference for `flood` and `synproxy` on the same
 *   topology: no lvsd; the director namespace's kernel forwards with nftables DNAT (VIP:80 to the
 *   first real server, VIP:8081 to both), its conntrack holding the flood's entries, and the
 *   real servers' kernels answer the flood with SYN cookies (tcp_syncookies=1, Linux's
 *   default). The same wrk before and during the same flood.
 *
 * Usage: sudo node dist/bench/e2e/flood.js [--part flood,synproxy,listing,clients,kernel] [--seconds N]
 *        [--flood-from host|client] [--backend tap|raw|xdp] [--link-opts OPTS] [--attacker-cpu 0|1] [--out FILE]. The flood comes from an attacker namespace of
 *        its own on the client's segment (default), which also answers for the default gateway
 *        (10.0.0.254) that the replies to the flood's random sources go to, so that they are
 *        sent and land there as on the way to the internet; or from the legitimate client's
 *        (`client`: the replies to the gateway stay unresolved). Needs hping3, wrk, iperf3, nginx-light (apt-get install -y ...).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { NatLab, rsIp, VIP } from "../../src/tools/lab/natlab.js";
import { canUseNetns, sh } from "../../src/tools/lab/netns.js";
import { nginxConf } from "../../src/tools/lab/nginx.js";
import { synFloodArgs } from "../../src/tools/lab/synflood.js";
import {
  down,
  FAST_LVSADM,
  lab,
  lvsdPid,
  rssMiB,
  rssSampler,
  sleep,
  tableSize,
  udpPpsAsync,
} from "./measure.js";
import { machineTicks, statCpuTicks } from "./stats.js";

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(arg("--seconds") ?? 5);
const PARTS = (arg("--part") ?? "flood,synproxy,listing,clients").split(",");

/**
 * Where hping3 runs: "host" (default), an attacker namespace of its own on the client's segment
 * (NatLab.addOutsideHost, ingress dropped but ARP), so that the SYN-ACKs and resets lvsd sends
 * back to the flood's sources land there, as they would on the way to the internet; "client"
 * (--flood-from client), the legitimate client's own namespace, as the runs before 2026-12-03:
 * there that backscatter (up to 150 k SYN-ACKs/s with the SYN proxy) costs the client's kernel,
 * where wrk runs.
 */
const FLOOD_FROM = arg("--flood-from") ?? "host";
/** lvsd's links in the flood, synproxy and listing parts: --backend tap (default), raw or xdp, --link-opts. */
const BACKEND = (arg("--backend") ?? "tap") as "tap" | "raw" | "xdp";
if (!["tap", "raw", "xdp"].includes(BACKEND)) {
  process.stderr.write("--backend must be tap, raw or xdp\n");
  process.exit(2);
}
const LINK_OPTS = arg("--link-opts");
/**
 * `--attacker-cpu N` (0 or 1): hping3 runs on CPU N (taskset), and everything else of the lab —
 * lvsd or the kernel's forwarding, nginx, wrk, and the receive work of every namespace but the
 * attacker's (RPS) — on the other CPU: the attacker as a machine of its own, the director with
 * one CPU that takes the flood's reception. Default: no pinning, all share both CPUs.
 */
const ATTACKER_CPU = arg("--attacker-cpu");
if (ATTACKER_CPU !== undefined && (!["0", "1"].includes(ATTACKER_CPU) || cpus().length < 2)) {
  process.stderr.write("--attacker-cpu must be 0 or 1, on a machine with two CPUs or more\n");
  process.exit(2);
}
/** The CPU of everything but the attacker (with --attacker-cpu). */
const LAB_CPU = ATTACKER_CPU === "0" ? "1" : "0";

/** With --attacker-cpu: pin the lab's processes and its receive work (RPS) to LAB_CPU. */
function pinLab(l: NatLab): void {
  if (ATTACKER_CPU === undefined) return;
  const mask = (1 << Number(LAB_CPU)).toString(16);
  for (const role of ["c", "d", "r1", "r2"]) {
    for (const pid of sh("ip", ["netns", "pids", l.topo.ns(role)])
      .stdout.split(/\s+/)
      .filter(Boolean))
      sh("taskset", ["-a", "-c", "-p", LAB_CPU, pid]);
    const rps = `for q in /sys/class/net/*/queues/rx-*; do echo ${mask} > $q/rps_cpus; done`;
    const r = l.topo.exec(role, "sh", ["-c", rps]);
    if (r.code !== 0) throw new Error(`RPS in ${role}: ${r.stderr}`);
  }
}
if (FLOOD_FROM !== "host" && FLOOD_FROM !== "client") {
  process.stderr.write("--flood-from must be host or client\n");
  process.exit(2);
}

/** hping3 SYN flood from random sources for `seconds` (timeout sends SIGINT). */
function flood(l: NatLab, seconds: number): { done: Promise<void>; p: ChildProcess } {
  const role = FLOOD_FROM === "host" ? "a" : "c";
  if (role === "a" && !l.topo.hasNs("a")) {
    l.addOutsideHost("a", "10.0.0.66", true);
    // the attacker's namespace also answers for the gateway the replies to the flood's random
    // sources go to (as a router would): the backscatter is sent, and lands there
    l.topo.exec("a", "ip", ["addr", "add", "10.0.0.254/24", "dev", l.topo.dev("aa")]);
  }
  const p = l.topo.spawn(role, ATTACKER_CPU !== undefined ? "taskset" : "timeout", [
    ...(ATTACKER_CPU !== undefined ? ["-c", ATTACKER_CPU, "timeout"] : []),
    ...synFloodArgs(VIP, seconds, "flood"),
  ]);
  return { p, done: new Promise((resolve) => p.once("exit", () => resolve())) };
}

const HZ = Number(sh("getconf", ["CLK_TCK"]).stdout.trim()) || 100;
const readText = (f: string): string => {
  try {
    return readFileSync(f, "utf8");
  } catch {
    return "";
  }
};

/** Where the CPU went while one wrk run lasted. */
interface CpuUse {
  /** The whole machine's idle share, in % of all its CPUs. */
  idlePct: number;
  /** The process's CPU (utime + stime, all its threads), in % of one CPU; NaN without a process. */
  procPct: number;
  /** The whole machine's busy CPU seconds. */
  busySeconds: number;
}

/** Start counting the machine's CPU (and `pid`'s); stop() gives the use since the start. */
function cpuWindow(pid?: number): { stop(): CpuUse } {
  const ticks = (): { busy: number; total: number; proc: number } => ({
    ...machineTicks(readText("/proc/stat")),
    proc: pid === undefined ? Number.NaN : statCpuTicks(readText(`/proc/${pid}/stat`)),
  });
  const t0 = ticks();
  const w0 = performance.now();
  return {
    stop(): CpuUse {
      const t1 = ticks();
      const wall = (performance.now() - w0) / 1000;
      const total = t1.total - t0.total;
      return {
        idlePct: total > 0 ? (100 * (total - (t1.busy - t0.busy))) / total : Number.NaN,
        procPct: wall > 0 ? (100 * (t1.proc - t0.proc)) / HZ / wall : Number.NaN,
        busySeconds: (t1.busy - t0.busy) / HZ,
      };
    },
  };
}

/** wrk with `Connection: close` for `seconds`, counting the CPU meanwhile (`pid`: lvsd's). */
async function wrkCloseCpu(l: NatLab, seconds: number, pid?: number): Promise<{ rps: number; cpu: CpuUse }> {
  const w = cpuWindow(pid);
  const rps = await wrkClose(l, seconds);
  return { rps, cpu: w.stop() };
}

/** The CPU columns of a row, from the runs before and during the flood. */
function cpuColumns(before: { rps: number; cpu: CpuUse }, during: CpuUse, seconds: number) {
  return {
    idleBeforePct: before.cpu.idlePct,
    idleDuringPct: during.idlePct,
    lvsdCpuBeforePct: before.cpu.procPct,
    lvsdCpuDuringPct: during.procPct,
    cpuUsPerRequestBefore:
      before.rps > 0 ? (1e6 * before.cpu.busySeconds) / (before.rps * seconds) : Number.NaN,
  };
}

/** wrk with `Connection: close` for `seconds`, in the background; resolves to req/s. */
function wrkClose(l: NatLab, seconds: number): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn("ip", [
      "netns",
      "exec",
      l.topo.ns("c"),
      ...(ATTACKER_CPU !== undefined ? ["taskset", "-c", LAB_CPU] : []),
      "wrk",
      "-t1",
      "-c16",
      `-d${seconds}s`,
      "-H",
      "Connection: close",
      `http://${VIP}:8081/`,
    ]);
    let out = "";
    p.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    p.once("exit", () => {
      const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
      resolve(m ? Number(m[1]) : 0);
    });
  });
}

interface FloodRow {
  setting: string;
  baselineRps: number;
  floodRps: number;
  ratio: number;
  rssBeforeMiB: number;
  rssMaxMiB: number;
  tableAtEnd: number;
  dropPacket: number;
  /** SYN proxy: SYN-ACKs with a cookie lvsd sent (lvsadm --synproxy-stats). */
  cookiesSent: number;
  /** SYN proxy with synproxy-xdp= links: SYN-ACKs the XDP responder sent. */
  xdpCookiesSent: number;
  /** lvsadm --drops at the end (the non-zero reasons). */
  drops: Record<string, number>;
  /** The machine's idle share (% of all CPUs) during the run before the flood and during it. */
  idleBeforePct: number;
  idleDuringPct: number;
  /** lvsd's CPU (% of one CPU, all its threads) in the same two runs; NaN for the kernel. */
  lvsdCpuBeforePct: number;
  lvsdCpuDuringPct: number;
  /** The whole machine's busy CPU per legitimate request before the flood, in µs. */
  cpuUsPerRequestBefore: number;
}

/** A defence setting: its name, lvsd arguments, lvsadm commands after the lab is up. */
type Setting = readonly [string, string[], string[][]];

const SETTINGS: readonly Setting[] = [
  ["none", [], []],
  ["drop_entry=1", ["--sysctl", "drop_entry=1"], []],
  ["drop_entry=1 drop_packet=1", ["--sysctl", "drop_entry=1", "--sysctl", "drop_packet=1"], []],
];

const SYNPROXY_SETTINGS: readonly Setting[] = [
  [
    "synproxy",
    [],
    [
      ["-E", "-t", `${VIP}:80`, "-s", "rr", "--synproxy"],
      ["-E", "-t", `${VIP}:8081`, "-s", "rr", "--synproxy"],
    ],
  ],
];

async function floodPart(settings: readonly Setting[]): Promise<FloodRow[]> {
  const rows: FloodRow[] = [];
  for (const [name, extra, cmds] of settings) {
    const prefix = `bf${rows.length}${process.pid % 1000}`;
    const l = await lab(prefix, ["--max-conns", "262144", ...extra], BACKEND, LINK_OPTS);
    try {
      for (const c of cmds) {
        const r = l.lvsadm(...c);
        if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
      }
      const pid = lvsdPid(l);
      pinLab(l);
      await wrkClose(l, 2); // warm-up: nginx and the lab's caches (the first run is slower)
      const before = await wrkCloseCpu(l, SECONDS, pid);
      const baselineRps = before.rps;
      const rssBeforeMiB = rssMiB(pid);
      const sampler = rssSampler(pid);
      const f = flood(l, SECONDS + 5);
      await sleep(4000);
      const during = await wrkCloseCpu(l, SECONDS, pid);
      const floodRps = during.rps;
      await f.done;
      const rssMaxMiB = sampler.stop();
      const tableAtEnd = tableSize(l);
      const m = /^drop_packet\s+(\d+)$/m.exec(l.lvsadm("--drops").stdout);
      const stats = l.lvsadm("--synproxy-stats").stdout;
      const cs = /^cookies_sent\s+(\d+)$/m.exec(stats);
      const xs = /^xdp_cookies_sent\s+(\d+)$/m.exec(stats);
      rows.push({
        setting: name,
        baselineRps,
        floodRps,
        ratio: baselineRps > 0 ? floodRps / baselineRps : 0,
        rssBeforeMiB,
        rssMaxMiB,
        tableAtEnd,
        dropPacket: m ? Number(m[1]) : 0,
        cookiesSent: cs ? Number(cs[1]) : 0,
        xdpCookiesSent: xs ? Number(xs[1]) : 0,
        drops: Object.fromEntries(
          l
            .lvsadm("--drops")
            .stdout.trim()
            .split("\n")
            .filter(Boolean)
            .map((line) => {
              const [k, n] = line.trim().split(/\s+/);
              return [k ?? "", Number(n)];
            }),
        ),
        ...cpuColumns(before, during.cpu, SECONDS),
      });
      process.stderr.write(`flood ${name}: ${JSON.stringify(rows.at(-1))}\n`);
    } finally {
      down(l, prefix);
    }
  }
  return rows;
}

/**
 * The kernel as the director (reference): forwarding + nftables DNAT in namespace "d", the real
 * servers' SYN cookies; the same wrk and flood as floodPart. The "table" is d's conntrack count.
 */
async function kernelPart(): Promise<FloodRow> {
  const prefix = `bk${process.pid % 1000}`;
  const l = new NatLab({ prefix, servers: 2, backend: "kernel" });
  await l.up();
  try {
    for (let k = 1; k <= 2; k++) {
      const conf = nginxConf({ dir: `/tmp/${prefix}-ngx${k}`, name: `rs${k}`, port: 8081 });
      l.topo.spawn(`r${k}`, "nginx", ["-c", conf, "-g", "daemon off;"]);
      l.topo.exec(`r${k}`, "sysctl", ["-qw", "net.ipv4.tcp_syncookies=1"]);
    }
    // as lvsd's labs: replies to the flood's random sources go to a gateway nobody answers for
    l.topo.exec("d", "ip", ["route", "add", "default", "via", "10.0.0.254"]);
    const rules = `table ip ${prefix} {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr ${VIP} tcp dport 80 dnat to ${rsIp(1)}:8081
    ip daddr ${VIP} tcp dport 8081 dnat to numgen inc mod 2 map { 0 : ${rsIp(1)}, 1 : ${rsIp(2)} }
  }
}
`;
    const r = l.topo.exec("d", "nft", ["-f", "-"], rules);
    if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
    await sleep(500);
    pinLab(l);
    const conntrack = (): number =>
      Number(l.topo.exec("d", "cat", ["/proc/sys/net/netfilter/nf_conntrack_count"]).stdout.trim()) || 0;
    await wrkClose(l, 2);
    const before = await wrkCloseCpu(l, SECONDS);
    const baselineRps = before.rps;
    const f = flood(l, SECONDS + 5);
    await sleep(4000);
    const during = await wrkCloseCpu(l, SECONDS);
    const floodRps = during.rps;
    const tableAtEnd = conntrack();
    await f.done;
    const row: FloodRow = {
      setting: "kernel: nft DNAT + RS syncookies",
      baselineRps,
      floodRps,
      ratio: baselineRps > 0 ? floodRps / baselineRps : 0,
      rssBeforeMiB: 0,
      rssMaxMiB: 0,
      tableAtEnd,
      dropPacket: 0,
      cookiesSent: 0,
      xdpCookiesSent: 0,
      drops: {},
      ...cpuColumns(before, during.cpu, SECONDS),
    };
    process.stderr.write(`flood kernel: ${JSON.stringify(row)}\n`);
    return row;
  } finally {
    down(l, prefix);
  }
}

interface ListingRow {
  entries: number;
  fillSeconds: number;
  listingSeconds: number;
  listings: number;
  lines: number;
  udpPpsBefore: number;
  udpPpsDuring: number;
  ratio: number;
  rssBeforeMiB: number;
  rssMaxDuringMiB: number;
  rssAfterMiB: number;
}

async function listingPart(): Promise<ListingRow> {
  const prefix = `bl${process.pid % 1000}`;
  // the flood's entries are all embryonic (SYN_RECV): let them have the whole table, not the
  // default 75 %, so that it can reach a million
  const l = await lab(prefix, ["--sysctl", "embryonic_share=100"], BACKEND, LINK_OPTS);
  try {
    const pid = lvsdPid(l);
    // fill: flood until about 1 M entries or 40 s (entries live 60 s in SYN_RECV)
    const started = Date.now();
    const f = flood(l, 40);
    let entries = 0;
    while (Date.now() - started < 40_000) {
      await sleep(2000);
      entries = tableSize(l);
      if (entries > 1_000_000) break;
    }
    f.p.kill("SIGINT");
    await f.done;
    const fillSeconds = (Date.now() - started) / 1000;
    entries = tableSize(l);
    const udpPpsBefore = await udpPpsAsync(l, "before the listing", SECONDS);
    const rssBeforeMiB = rssMiB(pid);
    const sampler = rssSampler(pid);
    // the listing back to back while iperf3 runs
    let listings = 0;
    let lines = 0;
    let listingSeconds = 0;
    let stop = false;
    const lister = (async () => {
      while (!stop) {
        const t0 = Date.now();
        const r = await new Promise<string>((resolve) => {
          const p = spawn("sh", ["-c", `'${FAST_LVSADM}' --control '${l.control}' -Lnc | wc -l`]);
          let out = "";
          p.stdout.on("data", (b: Buffer) => {
            out += b.toString();
          });
          p.once("exit", () => resolve(out));
        });
        listingSeconds += (Date.now() - t0) / 1000;
        listings++;
        lines = Number(r.trim());
      }
    })();
    await sleep(200);
    const udpPpsDuring = await udpPpsAsync(l, "during the listing", SECONDS);
    stop = true;
    await lister;
    const rssMaxDuringMiB = sampler.stop();
    await sleep(1000);
    return {
      entries,
      fillSeconds,
      listingSeconds: listingSeconds / Math.max(1, listings),
      listings,
      lines,
      udpPpsBefore,
      udpPpsDuring,
      ratio: udpPpsBefore > 0 ? udpPpsDuring / udpPpsBefore : 0,
      rssBeforeMiB,
      rssMaxDuringMiB,
      rssAfterMiB: rssMiB(pid),
    };
  } finally {
    down(l, prefix);
  }
}

interface ClientsRow {
  clients: number;
  opened: number;
  udpPpsBefore: number;
  udpPpsDuring: number;
  /** The same once they are gone (the noise). */
  udpPpsAfter: number;
  ratio: number;
  lnAfterMs: number;
  lnAfterCode: number;
}

/**
 * A process in the root namespace that opens `n` connections to lvsd's control socket, each
 * sending half a request and holding on, over about a second; it stops after `seconds`.
 */
function hostile(path: string, n: number, seconds: number): { done: Promise<number> } {
  const script = `
    const net = require("node:net");
    let opened = 0;
    const socks = [];
    let i = 0;
    const open = () => {
      for (let k = 0; k < 200 && i < ${n}; k++, i++) {
        const s = net.connect(${JSON.stringify(path)});
        s.on("error", () => {});
        s.once("connect", () => { opened++; s.write('{"argv": ["-L'); });
        socks.push(s);
      }
      if (i < ${n}) setTimeout(open, 5);
    };
    open();
    setTimeout(() => { console.log(opened); process.exit(0); }, ${seconds * 1000});
  `;
  const p = spawn(process.execPath, ["-e", script]);
  let out = "";
  p.stdout.on("data", (b: Buffer) => {
    out += b.toString();
  });
  return { done: new Promise((resolve) => p.once("exit", () => resolve(Number(out.trim()) || 0))) };
}

async function clientsPart(): Promise<ClientsRow> {
  const prefix = `bc${process.pid % 1000}`;
  const l = await lab(prefix, []);
  try {
    const udpPpsBefore = await udpPpsAsync(l, "before the clients", SECONDS);
    // two processes of 9,990 each, as in the issue (a process may hold 20,000 descriptors here)
    const n = 9_990;
    const a = hostile(l.control, n, SECONDS + 2);
    const b = hostile(l.control, n, SECONDS + 2);
    await sleep(1000);
    const udpPpsDuring = await udpPpsAsync(l, "during the clients", SECONDS);
    const opened = (await a.done) + (await b.done);
    await sleep(500);
    const t0 = performance.now();
    const r = sh(FAST_LVSADM, ["--control", l.control, "-Ln"], undefined, 10_000);
    const lnAfterMs = performance.now() - t0;
    const udpPpsAfter = await udpPpsAsync(l, "after the clients", SECONDS);
    return {
      clients: 2 * n,
      opened,
      udpPpsBefore,
      udpPpsDuring,
      udpPpsAfter,
      ratio: udpPpsBefore > 0 ? udpPpsDuring / udpPpsBefore : 0,
      lnAfterMs,
      lnAfterCode: r.code,
    };
  } finally {
    down(l, prefix);
  }
}

async function main(): Promise<void> {
  if (!canUseNetns()) {
    console.error("flood bench: needs root and the ip tool");
    process.exit(2);
  }
  const out: Record<string, unknown> = {
    machine: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
    node: process.version,
    date: new Date().toISOString(),
    seconds: SECONDS,
  };
  for (const part of ["flood", "synproxy", "kernel"] as const) {
    if (!PARTS.includes(part)) continue;
    const rows =
      part === "kernel"
        ? [await kernelPart()]
        : await floodPart(part === "flood" ? SETTINGS : SYNPROXY_SETTINGS);
    out[part] = rows;
    console.log(
      "SYN flood (hping3 --flood --rand-source), legitimate Connection: close req/s (wrk -t1 -c16)",
    );
    console.log(
      "setting                       before    during  during/before  RSS before/max MiB  table at end  drop_packet  cookies sent  in XDP  idle % before/during  lvsd CPU % before/during  CPU µs/req before",
    );
    const pair = (a: number, b: number): string =>
      Number.isFinite(a) ? `${a.toFixed(0)}/${b.toFixed(0)}` : "-";
    for (const r of rows)
      console.log(
        `${r.setting.padEnd(28)} ${r.baselineRps.toFixed(0).padStart(8)} ${r.floodRps.toFixed(0).padStart(9)} ${r.ratio.toFixed(3).padStart(14)} ${`${r.rssBeforeMiB.toFixed(0)}/${r.rssMaxMiB.toFixed(0)}`.padStart(19)} ${String(r.tableAtEnd).padStart(13)} ${String(r.dropPacket).padStart(12)} ${String(r.cookiesSent).padStart(13)} ${String(r.xdpCookiesSent).padStart(8)} ${pair(r.idleBeforePct, r.idleDuringPct).padStart(21)} ${pair(r.lvsdCpuBeforePct, r.lvsdCpuDuringPct).padStart(25)} ${r.cpuUsPerRequestBefore.toFixed(0).padStart(18)}`,
      );
  }
  if (PARTS.includes("listing")) {
    const r = await listingPart();
    out.listing = r;
    console.log(
      `lvsadm -Lnc of ${r.entries} entries (filled in ${r.fillSeconds.toFixed(0)} s): ${r.listingSeconds.toFixed(2)} s a listing (${r.listings} listings, ${r.lines} lines); UDP pkt/s before ${r.udpPpsBefore.toFixed(0)}, during ${r.udpPpsDuring.toFixed(0)} (ratio ${r.ratio.toFixed(3)}); lvsd RSS before ${r.rssBeforeMiB.toFixed(0)} MiB, max during ${r.rssMaxDuringMiB.toFixed(0)}, after ${r.rssAfterMiB.toFixed(0)}`,
    );
  }
  if (PARTS.includes("clients")) {
    const r = await clientsPart();
    out.clients = r;
    console.log(
      `${r.clients} hostile control clients (${r.opened} connected): UDP pkt/s before ${r.udpPpsBefore.toFixed(0)}, during ${r.udpPpsDuring.toFixed(0)}, after ${r.udpPpsAfter.toFixed(0)} (during/before ${r.ratio.toFixed(3)}); lvsadm -Ln afterwards ${r.lnAfterMs.toFixed(0)} ms (exit ${r.lnAfterCode})`,
    );
  }
  const file = arg("--out");
  if (file) writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
