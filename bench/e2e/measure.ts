/**
 * What the end-to-end benches share: UDP packets/s through the lab's VIP with iperf3 (-u, 18-byte
 * payloads, one flow; the iperf3 server listens on the first real server, port 5201), and for the
 * hardening benches (flood.ts, soak.ts) a NAT lab with nginx and iperf3 behind the VIP and lvsd's
 * RSS and table size.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { LabBase } from "../../src/tools/lab/labbase.js";
import { NatLab, ROOT, rsIp, VIP } from "../../src/tools/lab/natlab.js";
import { sh } from "../../src/tools/lab/netns.js";
import { nginxConf } from "../../src/tools/lab/nginx.js";

/** bin/lvsadm: the native client when built (a listing of a million lines is read by wc). */
export const FAST_LVSADM = join(ROOT, "bin", "lvsadm");
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function iperfArgs(seconds: number): string[] {
  return ["-c", VIP, "-p", "5201", "-u", "-b", "0", "-l", "18", "-t", String(seconds), "-J"];
}

/**
 * UDP datagrams that reached the UDP layer of a namespace so far, with a good checksum and a
 * socket to go to (`Udp: InDatagrams + RcvbufErrors` of its /proc/net/snmp: the second counts
 * those the receiving socket had no room for, which the forwarder did deliver; a slow iperf3
 * server would otherwise cap every setup alike). iperf3's own count (sent - lost, the loss taken
 * from gaps in the sequence numbers the server saw) overstates what arrived many times over
 * when most datagrams are lost.
 */
export function udpDelivered(ns: string): number {
  const r = sh("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp"]);
  const rows = r.stdout.split("\n").filter((l) => l.startsWith("Udp:"));
  const keys = rows[0]?.trim().split(/\s+/) ?? [];
  const vals = rows[1]?.trim().split(/\s+/) ?? [];
  const at = (k: string): number => {
    const i = keys.indexOf(k);
    if (i < 0) throw new Error(`no Udp ${k} in ${ns}'s /proc/net/snmp`);
    return Number(vals[i]);
  };
  return at("InDatagrams") + at("RcvbufErrors");
}

/**
 * Packets/s the server received (its namespace's InDatagrams over `delivered`, per iperf3's
 * sending seconds; 0 and a message when iperf3 failed).
 */
function ppsOf(stdout: string, stderr: string, what: string, delivered: number): number {
  try {
    const s = (JSON.parse(stdout) as { end: { sum: { seconds: number } } }).end.sum;
    return delivered / s.seconds;
  } catch {
    process.stderr.write(`iperf3 (${what}) failed: ${stderr || stdout.slice(0, 300)}\n`);
    return 0;
  }
}

/** UDP packets/s through the VIP for `seconds` (blocks this thread meanwhile). */
export function udpPps(lab: LabBase, what: string, seconds: number): number {
  const ns = lab.topo.ns("r1");
  const d0 = udpDelivered(ns);
  const r = lab.client("iperf3", iperfArgs(seconds), undefined, (seconds + 20) * 1000);
  return ppsOf(r.stdout, r.stderr, what, udpDelivered(ns) - d0);
}

/** The same without blocking this thread (other work of the bench goes on meanwhile). */
export function udpPpsAsync(lab: LabBase, what: string, seconds: number): Promise<number> {
  const ns = lab.topo.ns("r1");
  const d0 = udpDelivered(ns);
  return new Promise((resolve) => {
    const p = spawn("ip", ["netns", "exec", lab.topo.ns("c"), "iperf3", ...iperfArgs(seconds)]);
    let out = "";
    let err = "";
    p.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    p.stderr.on("data", (b: Buffer) => {
      err += b.toString();
    });
    p.once("exit", () => resolve(ppsOf(out, err, what, udpDelivered(ns) - d0)));
  });
}

/**
 * A NAT lab with nginx on both real servers (port 8081) and iperf3 on the first (5201); lvsd on
 * TAP unless `backend` says otherwise (with `linkOpts` for both links, e.g. "busy-poll=1000").
 */
export async function lab(
  prefix: string,
  lvsdArgs: string[],
  backend: "tap" | "raw" | "xdp" = "tap",
  linkOpts?: string,
): Promise<NatLab> {
  const l = new NatLab({
    prefix,
    servers: 2,
    backend,
    ...(linkOpts !== undefined ? { linkOpts } : {}),
    lvsdArgs: ["--route", "default,via=10.0.0.254", ...lvsdArgs],
  });
  await l.up();
  for (let k = 1; k <= 2; k++) {
    const conf = nginxConf({ dir: `/tmp/${prefix}-ngx${k}`, name: `rs${k}`, port: 8081 });
    l.topo.spawn(`r${k}`, "nginx", ["-c", conf, "-g", "daemon off;"]);
  }
  l.topo.spawn("r1", "iperf3", ["-s", "-p", "5201"]);
  for (const c of [
    ["-A", "-t", `${VIP}:8081`, "-s", "rr"],
    ["-a", "-t", `${VIP}:8081`, "-r", `${rsIp(1)}:8081`, "-m"],
    ["-a", "-t", `${VIP}:8081`, "-r", `${rsIp(2)}:8081`, "-m"],
    ["-A", "-u", `${VIP}:5201`, "-s", "rr"],
    ["-a", "-u", `${VIP}:5201`, "-r", `${rsIp(1)}:5201`, "-m"],
    // iperf3's control connection
    ["-A", "-t", `${VIP}:5201`, "-s", "rr"],
    ["-a", "-t", `${VIP}:5201`, "-r", `${rsIp(1)}:5201`, "-m"],
    ["-A", "-t", `${VIP}:80`, "-s", "rr"],
    ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(1)}:8081`, "-m"],
  ]) {
    const r = l.lvsadm(...c);
    if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr}`);
  }
  await sleep(500);
  l.client("ping", ["-c", "1", "-W", "1", VIP]);
  return l;
}

export function down(l: NatLab, prefix: string): void {
  l.down();
  sh("rm", ["-rf", `/tmp/${prefix}-ngx1`, `/tmp/${prefix}-ngx2`]);
}

/** lvsd's pid (the process whose command line names this lab's control socket). */
export function lvsdPid(l: NatLab): number {
  const r = sh("pgrep", ["-f", "--", `bin/lvsd .*--control ${l.control}`]);
  const pid = Number(r.stdout.trim().split("\n")[0]);
  if (!pid) throw new Error("lvsd's pid not found");
  return pid;
}

export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Sample lvsd's RSS every 250 ms until stopped; returns the largest. */
export function rssSampler(pid: number): { stop: () => number } {
  let max = rssMiB(pid);
  const t = setInterval(() => {
    max = Math.max(max, rssMiB(pid));
  }, 250);
  return {
    stop: () => {
      clearInterval(t);
      return Math.max(max, rssMiB(pid));
    },
  };
}

/** Entries in lvsd's connection table (the streamed listing, counted by wc). */
export function tableSize(l: NatLab): number {
  const r = sh("sh", ["-c", `'${FAST_LVSADM}' --control '${l.control}' -Lnc | wc -l`], undefined, 120_000);
  return Math.max(0, Number(r.stdout.trim()) - 2);
}
