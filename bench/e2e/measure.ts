/**
 * What the end-to-end benches share: UDP packets/s through the lab's VIP with iperf3 (-u, 18-byte
 * payloads, one flow; the iperf3 server listens on the first real server, port 5201).
 */
import { spawn } from "node:child_process";
import type { LabBase } from "../../src/tools/lab/labbase.js";
import { VIP } from "../../src/tools/lab/labbase.js";

function iperfArgs(seconds: number): string[] {
  return ["-c", VIP, "-p", "5201", "-u", "-b", "0", "-l", "18", "-t", String(seconds), "-J"];
}

/** Packets/s the server received, from iperf3's JSON report (0 and a message when it failed). */
function ppsOf(stdout: string, stderr: string, what: string): number {
  try {
    const s = (
      JSON.parse(stdout) as { end: { sum: { packets: number; lost_packets: number; seconds: number } } }
    ).end.sum;
    return (s.packets - s.lost_packets) / s.seconds;
  } catch {
    process.stderr.write(`iperf3 (${what}) failed: ${stderr || stdout.slice(0, 300)}\n`);
    return 0;
  }
}

/** UDP packets/s through the VIP for `seconds` (blocks this thread meanwhile). */
export function udpPps(lab: LabBase, what: string, seconds: number): number {
  const r = lab.client("iperf3", iperfArgs(seconds), undefined, (seconds + 20) * 1000);
  return ppsOf(r.stdout, r.stderr, what);
}

/** The same without blocking this thread (other work of the bench goes on meanwhile). */
export function udpPpsAsync(lab: LabBase, what: string, seconds: number): Promise<number> {
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
    p.once("exit", () => resolve(ppsOf(out, err, what)));
  });
}
