/**
 * End-to-end benchmark in network namespaces (root): the NAT lab topology with one client and
 * two real servers, measured through
 *   - lvsd on TAP devices,
 *   - lvsd on AF_PACKET sockets,
 *   - lvsd on AF_XDP sockets (setup xdp: the XDP program in driver mode on veth, copy mode),
 *   - the kernel (forwarding + nftables DNAT) on an identical topology,
 *   - tapcopy, a C program that only copies frames between two TAPs (the TAP I/O ceiling),
 * all in the same run, so the ratios are comparable on a shared, noisy machine.
 *
 * UDP: iperf3 -u with 18-byte payloads (60-byte frames), one flow, 4 s; packets/s received by
 * the server. HTTP: wrk against nginx on the real servers, keep-alive and `Connection: close`.
 * Needs iperf3, wrk, nginx-light and nftables (apt-get install -y iperf3 wrk nginx-light nftables).
 *
 * Usage: node dist/bench/e2e/nat.js [--seconds N] [--only tap,raw,xdp,kernel,tapcopy]
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
 * scraper saw (to the headers, i.e. rendered, and to the last byte). The scraper is this file
 * (`--scrape-child`), started in the lab and killed by it. Needs iperf3 (seconds default 10).
 */
import { type ChildProcess, execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { Agent, get } from "node:http";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { LabBase } from "../../src/tools/lab/labbase.js";
import { type LabBackend, NatLab, ROOT, rsIp, TAPCOPY_PEER, VIP } from "../../src/tools/lab/natlab.js";
import { canUseNetns, sh, waitFor } from "../../src/tools/lab/netns.js";
import { nginxConf } from "../../src/tools/lab/nginx.js";
import { REALSERVER, RoutedLab } from "../../src/tools/lab/routedlab.js";
import { udpPps as iperfUdpPps } from "./measure.js";

interface Row {
  setup: string;
  udpPps: number;
  httpKeepAliveRps: number;
  httpCloseRps: number;
}

const args = process.argv.slice(2);
const secIdx = args.indexOf("--seconds");
const SECONDS = secIdx >= 0 ? Number(args[secIdx + 1]) : args.includes("--observability") ? 10 : 4;
const onlyIdx = args.indexOf("--only");
const SETUPS = ["tapcopy", "tap", "raw", "xdp", "kernel", "fullnat", "dr", "tun"] as const;
type Setup = (typeof SETUPS)[number];
const ONLY = onlyIdx >= 0 ? (args[onlyIdx + 1] ?? "").split(",") : [...SETUPS];

/** The lab for a setup: NAT-style labs for the backends and FULLNAT, routed labs for DR and TUN. */
function makeLab(setup: Setup, prefix: string): { lab: LabBase; rs: (k: number) => string; method: string } {
  if (setup === "dr" || setup === "tun") {
    const lab = new RoutedLab({ prefix, mode: setup });
    return { lab, rs: (k) => lab.rsIp(k), method: setup === "dr" ? "-g" : "-i" };
  }
  if (setup === "fullnat")
    return { lab: new NatLab({ prefix, servers: 2, rsRoute: false }), rs: rsIp, method: "--fullnat" };
  return { lab: new NatLab({ prefix, servers: 2, backend: setup as LabBackend }), rs: rsIp, method: "-m" };
}

async function measure(backend: Setup): Promise<Row> {
  const prefix = `eb${backend.slice(0, 2)}${process.pid % 1000}`;
  const { lab, rs, method } = makeLab(backend, prefix);
  try {
    await lab.up();
    const t = lab.topo;
    for (let k = 1; k <= 2; k++) {
      const conf = nginxConf({ dir: `/tmp/${prefix}-ngx${k}`, name: `rs${k}`, port: 8081 });
      t.spawn(`r${k}`, "nginx", ["-c", conf, "-g", "daemon off;"]);
    }
    // DR/TUN real servers must answer from the VIP: bind iperf3's server to it (on their lo)
    const bind = backend === "dr" || backend === "tun" ? ["-B", VIP] : [];
    t.spawn("r1", "iperf3", ["-s", "-p", "5201", ...bind]);
    let udpTarget = VIP;
    let httpTarget = VIP;
    if (backend !== "kernel" && backend !== "tapcopy") {
      const dport = (p: number) => (method === "-g" || method === "-i" ? rs(1) : `${rs(1)}:${p}`);
      const cmds = [
        ["-A", "-u", `${VIP}:5201`, "-s", "rr"],
        ["-a", "-u", `${VIP}:5201`, "-r", dport(5201), method],
        ["-A", "-t", `${VIP}:5201`, "-s", "rr"],
        ["-a", "-t", `${VIP}:5201`, "-r", dport(5201), method],
        ["-A", "-t", `${VIP}:8081`, "-s", "rr"],
        ["-a", "-t", `${VIP}:8081`, "-r", dport(8081), method],
        [
          "-a",
          "-t",
          `${VIP}:8081`,
          "-r",
          method === "-g" || method === "-i" ? rs(2) : `${rs(2)}:8081`,
          method,
        ],
      ];
      if (method === "--fullnat") {
        for (const svc of ["-u 5201", "-t 5201", "-t 8081"]) {
          const [sel, port] = svc.split(" ");
          cmds.push(["--add-laddr", sel!, `${VIP}:${port}`, "-z", "192.168.10.200"]);
        }
      }
      for (const c of cmds) {
        const r = lab.lvsadm(...c);
        if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
      }
    } else if (backend === "kernel") {
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
    } else {
      udpTarget = TAPCOPY_PEER;
      httpTarget = TAPCOPY_PEER;
    }
    await new Promise((r) => setTimeout(r, 500));
    // warm ARP/neighbour caches
    lab.client("ping", ["-c", "1", "-W", "1", udpTarget]);
    const ip = lab.client(
      "iperf3",
      ["-c", udpTarget, "-p", "5201", "-u", "-b", "0", "-l", "18", "-t", String(SECONDS), "-J"],
      undefined,
      (SECONDS + 20) * 1000,
    );
    let udpPps = 0;
    try {
      const j = JSON.parse(ip.stdout) as {
        end: { sum: { packets: number; lost_packets: number; seconds: number } };
      };
      const s = j.end.sum;
      udpPps = (s.packets - s.lost_packets) / s.seconds;
    } catch {
      process.stderr.write(`iperf3 (${backend}) failed: ${ip.stderr || ip.stdout.slice(0, 300)}\n`);
    }
    const wrk = (extra: string[]): number => {
      const r = lab.client(
        "wrk",
        ["-t1", "-c32", `-d${SECONDS}s`, ...extra, `http://${httpTarget}:8081/`],
        undefined,
        (SECONDS + 20) * 1000,
      );
      const m = /Requests\/sec:\s+([\d.]+)/.exec(r.stdout);
      if (!m) process.stderr.write(`wrk (${backend}) failed: ${r.stderr || r.stdout}\n`);
      return m ? Number(m[1]) : 0;
    };
    const httpKeepAliveRps = wrk([]);
    const httpCloseRps = wrk(["-H", "Connection: close"]);
    return { setup: backend, udpPps, httpKeepAliveRps, httpCloseRps };
  } finally {
    lab.down();
    sh("rm", ["-rf", `/tmp/${prefix}-ngx1`, `/tmp/${prefix}-ngx2`]);
  }
}

const NAMES: Record<string, string> = {
  tapcopy: "tapcopy (C, TAP<->TAP copy only)",
  tap: "lvsd NAT on TAP",
  raw: "lvsd NAT on AF_PACKET",
  xdp: "lvsd NAT on AF_XDP",
  kernel: "kernel forwarding + nftables DNAT",
  fullnat: "lvsd FULLNAT on TAP",
  dr: "lvsd DR on TAP",
  tun: "lvsd TUN on TAP",
};

async function main(): Promise<void> {
  if (!canUseNetns()) {
    process.stderr.write("bench/e2e: needs root and the ip tool\n");
    process.exit(2);
  }
  for (const tool of ["iperf3", "wrk", "nginx", "nft"]) {
    if (sh("sh", ["-c", `command -v ${tool}`]).code !== 0) {
      process.stderr.write(
        `bench/e2e: ${tool} is missing (apt-get install -y iperf3 wrk nginx-light nftables)\n`,
      );
      process.exit(2);
    }
  }
  const rows: Row[] = [];
  for (const b of SETUPS) {
    if (!ONLY.includes(b)) continue;
    if ((b === "dr" || b === "tun") && !existsSync(REALSERVER)) {
      process.stderr.write(`skipping ${NAMES[b]}: bin/lvs-realserver is missing\n`);
      continue;
    }
    process.stderr.write(`measuring ${NAMES[b]}...\n`);
    rows.push(await measure(b));
  }
  const ref = (name: string) => rows.find((r) => r.setup === name);
  console.log(
    `end-to-end, ${SECONDS} s per measurement, node ${process.version}, ${cpus()[0]?.model ?? "?"} x${cpus().length}`,
  );
  console.log(
    `${"setup".padEnd(36)} ${"UDP pkt/s".padStart(10)} ${"HTTP ka r/s".padStart(12)} ${"HTTP close".padStart(11)}`,
  );
  for (const r of rows) {
    console.log(
      `${(NAMES[r.setup] ?? r.setup).padEnd(36)} ${r.udpPps.toFixed(0).padStart(10)} ${r.httpKeepAliveRps.toFixed(0).padStart(12)} ${r.httpCloseRps.toFixed(0).padStart(11)}`,
    );
  }
  const ratios: Record<string, number> = {};
  const tc = ref("tapcopy");
  const k = ref("kernel");
  for (const r of rows) {
    if (r.setup === "tapcopy" || r.setup === "kernel") continue;
    if (tc && tc.udpPps > 0) ratios[`${r.setup} UDP / tapcopy`] = r.udpPps / tc.udpPps;
    const nat = ref("tap");
    if (r.setup !== "tap" && nat && nat.udpPps > 0)
      ratios[`${r.setup} UDP / NAT on TAP`] = r.udpPps / nat.udpPps;
    if (k && k.udpPps > 0) ratios[`${r.setup} UDP / kernel`] = r.udpPps / k.udpPps;
    if (k && k.httpKeepAliveRps > 0)
      ratios[`${r.setup} HTTP keep-alive / kernel`] = r.httpKeepAliveRps / k.httpKeepAliveRps;
    if (k && k.httpCloseRps > 0) ratios[`${r.setup} HTTP close / kernel`] = r.httpCloseRps / k.httpCloseRps;
  }
  for (const [name, v] of Object.entries(ratios)) console.log(`  ${name.padEnd(40)} ${v.toFixed(2)}`);
  const out = join(ROOT, "bench", "e2e-results.json");
  writeFileSync(out, `${JSON.stringify({ seconds: SECONDS, rows, ratios }, null, 2)}\n`);
  console.log(`wrote ${out}`);
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
  /** Until the headers (lvsd sends them with the body, once the text is rendered). */
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
  console.log("scrape latency (GET /metrics to its last byte; in brackets: to its headers, i.e. rendered)");
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
    : main;

entry().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
