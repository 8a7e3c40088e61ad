/**
 * The soak benchmark (issue "Hardening"; docs/security.md), in network namespaces (root): one
 * NAT lab (lvsd on TAP, nginx on two real servers, iperf3 on the first) under a mixed load for
 * `--minutes` (default 10): HTTP keep-alive (wrk -t1 -c8), connection churn (wrk -t1 -c8 with
 * `Connection: close`) and a UDP flow (iperf3 -u at 2 Mbit/s, 100-byte datagrams), all at once.
 * Every `--sample` seconds (default 10) it records lvsd's RSS and the connection table's size;
 * after the load it waits for the timeouts (UDP set to 60 s with `lvsadm --set`, TIME_WAIT is
 * 120 s) and records the table once more. Reports the RSS growth after the warm-up (the first
 * fifth of the run), the table's largest and idle sizes, and each load's rate.
 *
 * Usage: sudo node dist/bench/e2e/soak.js [--minutes M] [--sample S] [--idle S] [--out FILE]
 * Needs wrk, iperf3, nginx-light.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { VIP } from "../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../src/tools/lab/netns.js";
import { down, lab, lvsdPid, rssMiB, sleep, tableSize } from "./measure.js";

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const MINUTES = Number(arg("--minutes") ?? 10);
const SAMPLE_S = Number(arg("--sample") ?? 10);
const IDLE_WAIT_S = Number(arg("--idle") ?? 150);

/** A command in the client namespace in the background; resolves to its stdout. */
function background(ns: string, cmd: string, cmdArgs: string[]): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn("ip", ["netns", "exec", ns, cmd, ...cmdArgs]);
    let out = "";
    p.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    p.once("exit", () => resolve(out));
  });
}

interface Sample {
  t: number;
  rssMiB: number;
  table: number;
}

async function main(): Promise<void> {
  if (!canUseNetns()) {
    console.error("soak bench: needs root and the ip tool");
    process.exit(2);
  }
  const prefix = `bs${process.pid % 1000}`;
  const l = await lab(prefix, []);
  try {
    if (l.lvsadm("--set", "0", "0", "60").code !== 0) throw new Error("lvsadm --set failed");
    const pid = lvsdPid(l);
    const seconds = Math.round(MINUTES * 60);
    const c = l.topo.ns("c");
    const started = Date.now();
    const keepAlive = background(c, "wrk", ["-t1", "-c8", `-d${seconds}s`, `http://${VIP}:8081/`]);
    const churn = background(c, "wrk", [
      "-t1",
      "-c8",
      `-d${seconds}s`,
      "-H",
      "Connection: close",
      `http://${VIP}:8081/`,
    ]);
    const udp = background(c, "iperf3", [
      "-c",
      VIP,
      "-p",
      "5201",
      "-u",
      "-b",
      "2M",
      "-l",
      "100",
      "-t",
      String(seconds),
      "-J",
    ]);
    const samples: Sample[] = [];
    while (Date.now() - started < seconds * 1000) {
      await sleep(SAMPLE_S * 1000);
      samples.push({ t: (Date.now() - started) / 1000, rssMiB: rssMiB(pid), table: tableSize(l) });
      process.stderr.write(`soak ${JSON.stringify(samples.at(-1))}\n`);
    }
    const [ka, ch, u] = await Promise.all([keepAlive, churn, udp]);
    const rps = (out: string) => Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
    let udpPps = 0;
    try {
      const s = (
        JSON.parse(u) as { end: { sum: { packets: number; lost_packets: number; seconds: number } } }
      ).end.sum;
      udpPps = (s.packets - s.lost_packets) / s.seconds;
    } catch {
      process.stderr.write("iperf3 failed\n");
    }
    await sleep(IDLE_WAIT_S * 1000);
    const idleTable = tableSize(l);
    const idleRss = rssMiB(pid);
    const warm = samples.filter((s) => s.t >= seconds / 5);
    const first = warm[0] ?? samples[0]!;
    const last = samples.at(-1)!;
    const out = {
      machine: `${cpus().length} x ${cpus()[0]?.model ?? "?"}`,
      node: process.version,
      date: new Date().toISOString(),
      minutes: MINUTES,
      keepAliveRps: rps(ka),
      churnRps: rps(ch),
      udpPps,
      rssAfterWarmupMiB: first.rssMiB,
      rssEndMiB: last.rssMiB,
      rssGrowth: last.rssMiB / first.rssMiB - 1,
      rssMaxMiB: Math.max(...samples.map((s) => s.rssMiB)),
      tableMax: Math.max(...samples.map((s) => s.table)),
      tableIdle: idleTable,
      rssIdleMiB: idleRss,
      samples,
    };
    console.log(
      `soak ${MINUTES} min: keep-alive ${out.keepAliveRps.toFixed(0)} req/s, churn ${out.churnRps.toFixed(0)} req/s, UDP ${udpPps.toFixed(0)} pkt/s; lvsd RSS after warm-up ${first.rssMiB.toFixed(1)} MiB, at the end ${last.rssMiB.toFixed(1)} (growth ${(out.rssGrowth * 100).toFixed(1)} %), max ${out.rssMaxMiB.toFixed(1)}; table max ${out.tableMax}, ${IDLE_WAIT_S} s after the load ${idleTable} (RSS ${idleRss.toFixed(1)} MiB)`,
    );
    const file = arg("--out");
    if (file) writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  } finally {
    down(l, prefix);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
