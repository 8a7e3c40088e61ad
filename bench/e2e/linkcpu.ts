/**
 * lvsd's CPU time per forwarded packet on each link backend (TAP, AF_PACKET, AF_XDP), UDP
 * through LVS-NAT. On a shared 2-vCPU machine the packet rate is set by whoever else runs (the
 * generator, the receiver, other work), but the CPU lvsd spends per packet it forwards stays
 * comparable: (utime + stime of the lvsd process over the measurement, /proc/PID/stat) ÷
 * (packets the real server received). Three NAT labs are up side by side; each repeat measures
 * them in rotated order, `iperf3 -u -b 0 -l 18` (60-byte frames, one flow) for `--seconds`.
 *
 * Usage: sudo node dist/bench/e2e/linkcpu.js [--seconds 4] [--repeat 3]
 */
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { NatLab, rsIp, VIP } from "../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../src/tools/lab/netns.js";
import { sleep, udpPps } from "./measure.js";

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SECONDS = opt("--seconds", 4);
const REPEAT = opt("--repeat", 3);
const BACKENDS = ["tap", "raw", "xdp"] as const;
const TICK_NS = 1e9 / 100; // USER_HZ

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // utime, stime (fields 14 and 15)
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

async function main(): Promise<void> {
  if (!canUseNetns()) {
    process.stderr.write("bench/e2e/linkcpu: needs root and the ip tool\n");
    process.exit(2);
  }
  const labs = new Map<string, NatLab>();
  const res = new Map<string, { pps: number; ns: number }[]>();
  try {
    for (const b of BACKENDS) {
      const lab = new NatLab({ prefix: `lc${b}${process.pid % 1000}`, servers: 1, backend: b });
      labs.set(b, lab);
      res.set(b, []);
      await lab.up();
      lab.topo.spawn("r1", "iperf3", ["-s", "-p", "5201"]);
      for (const c of [
        ["-A", "-u", `${VIP}:5201`, "-s", "rr"],
        ["-a", "-u", `${VIP}:5201`, "-r", `${rsIp(1)}:5201`, "-m"],
        ["-A", "-t", `${VIP}:5201`, "-s", "rr"],
        ["-a", "-t", `${VIP}:5201`, "-r", `${rsIp(1)}:5201`, "-m"],
      ]) {
        const r = lab.lvsadm(...c);
        if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
      }
    }
    await sleep(500);
    for (const b of BACKENDS) udpPps(labs.get(b)!, `${b} warm-up`, 1);
    for (let r = 0; r < REPEAT; r++) {
      for (let k = 0; k < BACKENDS.length; k++) {
        const b = BACKENDS[(r + k) % BACKENDS.length]!;
        const lab = labs.get(b)!;
        const pid = lab.lvsdPid!;
        const t0 = cpuTicks(pid);
        const pps = udpPps(lab, b, SECONDS);
        const ticks = cpuTicks(pid) - t0;
        res.get(b)!.push({ pps, ns: pps > 0 ? (ticks * TICK_NS) / (pps * SECONDS) : 0 });
        process.stderr.write(`repeat ${r + 1} ${b}: ${pps.toFixed(0)} pkt/s, ${ticks} ticks\n`);
      }
    }
  } finally {
    for (const lab of labs.values()) lab.down();
  }
  console.log(
    `lvsd CPU per forwarded UDP packet (NAT), ${SECONDS} s x ${REPEAT}, node ${process.version}, ${cpus()[0]?.model ?? "?"} x${cpus().length}`,
  );
  console.log(
    `${"link".padEnd(6)} ${"pkt/s median".padStart(13)} ${"CPU ns/pkt median".padStart(18)}  runs (ns/pkt)`,
  );
  const tapNs = median(res.get("tap")!.map((x) => x.ns));
  for (const b of BACKENDS) {
    const v = res.get(b)!;
    const ns = median(v.map((x) => x.ns));
    console.log(
      `${b.padEnd(6)} ${median(v.map((x) => x.pps))
        .toFixed(0)
        .padStart(
          13,
        )} ${ns.toFixed(0).padStart(18)}  ${v.map((x) => x.ns.toFixed(0)).join(" / ")}${b === "tap" ? "" : `   (${(ns / tapNs).toFixed(2)}x TAP)`}`,
    );
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
