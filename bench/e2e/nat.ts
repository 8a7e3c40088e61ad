/**
 * End-to-end benchmark in network namespaces (root): the NAT lab topology with one client and
 * two real servers, measured through
 *   - lvsd on TAP devices,
 *   - lvsd on AF_PACKET sockets,
 *   - the kernel (forwarding + nftables DNAT) on an identical topology,
 *   - tapcopy, a C program that only copies frames between two TAPs (the TAP I/O ceiling),
 * all in the same run, so the ratios are comparable on a shared, noisy machine.
 *
 * UDP: iperf3 -u with 18-byte payloads (60-byte frames), one flow, 4 s; packets/s received by
 * the server. HTTP: wrk against nginx on the real servers, keep-alive and `Connection: close`.
 * Needs iperf3, wrk, nginx-light and nftables (apt-get install -y iperf3 wrk nginx-light nftables).
 *
 * Usage: node dist/bench/e2e/nat.js [--seconds N] [--only tap,raw,kernel,tapcopy]
 */
import { existsSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import type { LabBase } from "../../src/tools/lab/labbase.js";
import { type LabBackend, NatLab, ROOT, rsIp, TAPCOPY_PEER, VIP } from "../../src/tools/lab/natlab.js";
import { canUseNetns, sh } from "../../src/tools/lab/netns.js";
import { nginxConf } from "../../src/tools/lab/nginx.js";
import { REALSERVER, RoutedLab } from "../../src/tools/lab/routedlab.js";

interface Row {
  setup: string;
  udpPps: number;
  httpKeepAliveRps: number;
  httpCloseRps: number;
}

const args = process.argv.slice(2);
const secIdx = args.indexOf("--seconds");
const SECONDS = secIdx >= 0 ? Number(args[secIdx + 1]) : 4;
const onlyIdx = args.indexOf("--only");
const SETUPS = ["tapcopy", "tap", "raw", "kernel", "fullnat", "dr", "tun"] as const;
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

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
