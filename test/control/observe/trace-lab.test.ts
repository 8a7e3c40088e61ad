/**
 * lvsadm --trace against a running lvsd (the NAT lab: lvsd on TAP devices between a client
 * namespace and real-server namespaces, src/tools/lab/natlab.ts). lvsadm blocks while HTTP and
 * UDP traffic goes through the VIP; the pcapng file lvsd wrote is read by tcpdump (the packets,
 * the VIP and the real servers, both directions) and by readPcapng (both links, named, both
 * directions); Ctrl-C (SIGINT) to lvsadm stops a trace. Needs root; skipped with a message
 * otherwise. Run `npx tsc -p tsconfig.json` first: the lab runs dist/.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { readPcapng } from "../../../src/datapath/io/pcap.js";
import { LVSADM, NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns, waitFor } from "../../../src/tools/lab/netns.js";
import { haveTools, skipWithout } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping lvsadm --trace lab tests: needs root, the ip tool and the native addon");
const ok = privileged && haveTools("lvsadm --trace lab tests", "curl", "tcpdump");

interface Run {
  p: ChildProcess;
  out: string;
  err: string;
  done: Promise<number>;
}

describe.skipIf(!ok)("lvsadm --trace on a running lvsd", () => {
  const lab = new NatLab({ prefix: `tr${process.pid % 100000}`, servers: 2 });
  const dir = mkdtempSync(join(tmpdir(), "lvs-trace-lab-"));

  /** lvsadm in the background (it blocks until the trace ends), its output collected. */
  function lvsadm(...args: string[]): Run {
    const p = spawn(process.execPath, [LVSADM, "--control", lab.control, ...args]);
    const r: Run = { p, out: "", err: "", done: Promise.resolve(0) };
    p.stdout?.on("data", (b: Buffer) => {
      r.out += b.toString();
    });
    p.stderr?.on("data", (b: Buffer) => {
      r.err += b.toString();
    });
    r.done = new Promise((resolve) => p.once("exit", (code) => resolve(code ?? -1)));
    return r;
  }
  const started = (r: Run) => waitFor("the trace to start", () => /started/.test(r.err), 10_000);
  /** Let the event loop run (lvsadm's output arrives) while waiting for it to exit. */
  const exited = (r: Run, ms = 20_000) =>
    Promise.race([
      r.done,
      new Promise<number>((_, rej) => setTimeout(() => rej(new Error("lvsadm hangs")), ms)),
    ]);

  beforeAll(async () => {
    await lab.up();
    for (const c of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(1)}:80`, "-m"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(2)}:80`, "-m"],
      ["-A", "-u", `${VIP}:53`, "-s", "rr"],
      ["-a", "-u", `${VIP}:53`, "-r", `${rsIp(2)}:53`, "-m"],
    ]) {
      expect(lab.lvsadm(...c).code).toBe(0);
    }
  }, 60_000);
  afterAll(() => {
    lab.down();
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes 20 frames of the HTTP service, both ways on both links, that tcpdump reads", async (ctx) => {
    skipWithout(ctx, "socat");
    const file = join(dir, "http.pcapng");
    const r = lvsadm("--trace", file, "--count", "20", "-t", `${VIP}:80`);
    await started(r);
    // UDP first: the filter must leave it out
    expect(lab.client("sh", ["-c", `printf hi | socat -t 2 - UDP4:${VIP}:53`]).stdout).toBe("rs2:hi");
    for (let k = 0; k < 4 && r.p.exitCode === null; k++)
      expect(lab.get(`http://${VIP}/`).trim()).toMatch(/^rs[12]$/);
    expect(await exited(r)).toBe(0);
    expect(r.out).toBe(`lvsadm: 20 frames written to ${file} (0 dropped)\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const dump = execFileSync("tcpdump", ["-nn", "-r", file], { encoding: "utf8", stdio: "pipe" });
    const lines = dump.trim().split("\n");
    expect(lines).toHaveLength(20);
    expect(lines.every((l) => / IP /.test(l) && !/UDP|\.53[: ]/.test(l))).toBe(true);
    expect(dump).toMatch(/10\.0\.0\.7\.\d+ > 10\.0\.0\.100\.80: /); // client -> VIP, as received
    expect(dump).toMatch(/10\.0\.0\.100\.80 > 10\.0\.0\.7\.\d+: /); // VIP -> client, as sent
    expect(dump).toMatch(/10\.0\.0\.7\.\d+ > 192\.168\.10\.[12]\.80: /); // to a real server, as sent
    expect(dump).toMatch(/192\.168\.10\.[12]\.80 > 10\.0\.0\.7\.\d+: /); // its reply, as received

    const f = readPcapng(readFileSync(file));
    expect(f.interfaces.map((i) => i.name)).toEqual([lab.topo.dev("t0"), lab.topo.dev("t1")]);
    expect(new Set(f.packets.map((p) => p.ifId))).toEqual(new Set([0, 1]));
    expect(new Set(f.packets.map((p) => p.flags))).toEqual(new Set([1, 2]));
    // what came in on the client's link went out on the servers' link, and back
    const pairs = new Set(f.packets.map((p) => `${p.ifId}/${p.flags}`));
    expect(pairs).toEqual(new Set(["0/1", "1/2", "1/1", "0/2"]));
  }, 60_000);

  it("a UDP service: query and answer, in and out", async (ctx) => {
    skipWithout(ctx, "socat");
    const file = join(dir, "udp.pcapng");
    const r = lvsadm("--trace", file, "-u", `${VIP}:53`, "--count", "4");
    await started(r);
    lab.get(`http://${VIP}/`); // not this service's
    expect(lab.client("sh", ["-c", `printf hello | socat -t 2 - UDP4:${VIP}:53`]).stdout).toBe("rs2:hello");
    expect(await exited(r)).toBe(0);
    const dump = execFileSync("tcpdump", ["-nn", "-r", file], { encoding: "utf8", stdio: "pipe" });
    const lines = dump.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/10\.0\.0\.7\.\d+ > 10\.0\.0\.100\.53: /);
    expect(lines[1]).toMatch(/10\.0\.0\.7\.\d+ > 192\.168\.10\.2\.53: /);
    expect(lines[2]).toMatch(/192\.168\.10\.2\.53 > 10\.0\.0\.7\.\d+: /);
    expect(lines[3]).toMatch(/10\.0\.0\.100\.53 > 10\.0\.0\.7\.\d+: /);
  }, 60_000);

  it("Ctrl-C stops the trace: lvsadm says how many frames, lvsd reports it stopped", async () => {
    const file = join(dir, "sigint.pcapng");
    const r = lvsadm("--trace", file, "--seconds", "60", "--link", lab.topo.dev("t1"));
    await started(r);
    const second = lab.lvsadm("--trace", join(dir, "second.pcapng"));
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/^lvsadm: a trace is already running/);
    lab.get(`http://${VIP}/`);
    r.p.kill("SIGINT");
    expect(await exited(r, 5000)).toBe(0);
    const m = /^lvsadm: (\d+) frames? written to (.*) \(0 dropped\)\n$/.exec(r.out);
    expect(m?.[2]).toBe(file);
    const f = readPcapng(readFileSync(file));
    expect(f.packets.length).toBe(Number(m?.[1]));
    expect(f.packets.length).toBeGreaterThan(0);
    expect(new Set(f.packets.map((p) => p.ifId))).toEqual(new Set([1])); // --link t1 only
    expect(lab.lvsadm("--trace-status").stdout).toMatch(/^trace \d+ done \(lvsadm --trace-stop\): /);
  }, 60_000);
});
