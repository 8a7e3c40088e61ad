/**
 * Smoke test of the end-to-end bench (bench/e2e/nat.ts, built to dist/): one short run of the
 * setups on the one NAT topology — lvsd NAT, DR and TUN on TAP, the kernel, HAProxy, and tapcopy
 * when it is built — checking that every setup forwarded traffic and that the bench accounted
 * the forwarder's CPU and packets and took the ratios within the run. Bounded: 1 s per load.
 * Needs root, the built addon, dist/ (npm run build), bin/lvs-realserver, and iperf3, wrk,
 * nginx, nft, haproxy and taskset; skipped with a message otherwise.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../src/datapath/io/native.js";
import { ROOT, TAPCOPY } from "../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../src/tools/lab/netns.js";
import { REALSERVER } from "../../src/tools/lab/routedlab.js";
import { haveTools } from "../support/tools.js";

const BENCH = join(ROOT, "dist", "bench", "e2e", "nat.js");
const privileged = canUseNetns() && nativeAvailable() && existsSync(REALSERVER) && existsSync(BENCH);
if (!privileged)
  console.warn(
    "skipping the end-to-end bench smoke test: needs root, the ip tool, the native addon, bin/lvs-realserver and dist/ (npm run build)",
  );
const ok =
  privileged &&
  haveTools("the end-to-end bench smoke test", "iperf3", "wrk", "nginx", "nft", "haproxy", "taskset");

interface Sample {
  rate: number | null;
  count: number;
  fwdCpu: number | null;
  fwdPackets: number | null;
  machineCpu: number;
  fwdCpuBusy: number | null;
  offered?: number;
}
interface Result {
  seconds: number;
  pinned: boolean;
  repeat: number;
  rows: Array<{ setup: string; repeat: number; udp: Sample; keepAlive: Sample; close: Sample }>;
  ratios: Array<{ name: string; perRepeat: number[]; spread: { median: number; n: number } }>;
}

describe.skipIf(!ok)("bench/e2e/nat.js, one short run of every kind of setup", () => {
  const dir = mkdtempSync(join(tmpdir(), "lvs-e2e-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("measures each setup on the same topology and reports CPU per packet and ratios", async () => {
    const setups = ["tap", "kernel", "haproxy", "dr", "tun", ...(existsSync(TAPCOPY) ? ["tapcopy"] : [])];
    const out = join(dir, "e2e.json");
    // asynchronously: the test worker must keep answering vitest meanwhile
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const p = spawn(
        process.execPath,
        [BENCH, "--only", setups.join(","), "--seconds", "1", "--repeat", "1", "--out", out],
        { timeout: 280_000 },
      );
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (b: Buffer) => {
        stdout += b.toString();
      });
      p.stderr.on("data", (b: Buffer) => {
        stderr += b.toString();
      });
      p.on("close", (status) => resolve({ status, stdout, stderr }));
    });
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const res = JSON.parse(readFileSync(out, "utf8")) as Result;
    expect(res.rows.map((x) => x.setup).sort()).toEqual([...setups].sort());
    for (const row of res.rows) {
      const what = `${row.setup}: ${JSON.stringify(row)}`;
      if (row.setup === "haproxy") expect(row.udp.rate, what).toBeNull();
      else expect(row.udp.rate, what).toBeGreaterThan(1000);
      expect(row.keepAlive.rate, what).toBeGreaterThan(100);
      expect(row.close.rate, what).toBeGreaterThan(10);
      // pinned (two CPUs or more): the director's CPU is accounted for every setup, the kernel's too
      if (res.pinned) expect(row.keepAlive.fwdCpuBusy, what).toBeGreaterThan(0);
      if (row.setup === "kernel") {
        expect(row.udp.fwdCpu, what).toBeNull(); // no process of its own to account
      } else {
        expect(row.keepAlive.fwdCpu, what).toBeGreaterThan(0);
      }
      if (row.setup !== "kernel" && row.setup !== "haproxy") {
        // the forwarder sent frames (lvsd's link counters, or tapcopy's TAP counters), at most
        // those the client sent (plus the few of iperf3's control connection, ARP and the pings)
        // No lower bound from the UDP count: it is iperf3's sent - lost, which two CI runs saw
        // 7-40 % above the frames the forwarder sent (tapcopy, DR): the loss iperf3 reports
        // seems to miss datagrams dropped at the end of the run (to be checked against the
        // server's own count, --get-server-output).
        expect(row.udp.fwdPackets, what).toBeGreaterThan(0);
        expect(row.udp.fwdPackets, what).toBeLessThanOrEqual((row.udp.offered ?? 0) + 200);
        expect(row.udp.fwdCpu, what).toBeGreaterThan(0);
      }
    }
    const names = res.ratios.map((x) => x.name);
    for (const want of [
      "tap UDP / kernel",
      "tap HTTP keep-alive / haproxy",
      "tap HTTP close / haproxy",
      "dr UDP / tap",
      "tun HTTP close / kernel",
      "dr CPU/UDP frame / tap",
    ])
      expect(names).toContain(want);
    expect(names).not.toContain("haproxy UDP / kernel");
    const tapVsKernel = res.ratios.find((x) => x.name === "tap UDP / kernel")!;
    const rows = (id: string) => res.rows.find((x) => x.setup === id)!;
    expect(tapVsKernel.perRepeat[0]).toBeCloseTo(rows("tap").udp.rate! / rows("kernel").udp.rate!, 6);
    // the table was printed
    expect(r.stdout).toMatch(/\| HAProxy tcp mode, 1 thread \| n\/a \|/);
  }, 300_000);
});
