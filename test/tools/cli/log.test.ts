/**
 * lvsd's log as a process writes it (docs/observability.md, "Logs"): started with
 * `--log-level debug` in a network namespace of its own, its stderr a pipe, so JSON lines. A
 * command that changes the director is one info event with its argv, exit status and the
 * peer's pid (the lvsadm process) and uid; a listing is only a debug event; a burst of drops is
 * one warn event; SIGHUP and SIGTERM are logged, the last line before exit included. Needs root;
 * skipped with a message otherwise.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSADM, LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, sh, Topology, waitFor } from "../../../src/tools/lab/netns.js";
import { type LogEvent, parseLog } from "./lvsdlog.js";

const ok = canUseNetns() && nativeAvailable();
if (!ok) console.warn("skipping lvsd log tests: needs root, the ip tool and the native addon");

describe.skipIf(!ok)("lvsd's log", () => {
  const prefix = `lg${process.pid % 100000}`;
  const t = new Topology(prefix);
  const ns = t.ns("d");
  const sock = `/run/lvsd/${prefix}.sock`;
  let p: ChildProcessWithoutNullStreams | undefined;
  let log = "";
  const events = (): LogEvent[] => parseLog(log);
  const commands = (): LogEvent[] => events().filter((e) => e.event === "control.command");
  /** lvsadm as its own process; returns its exit status and pid (the peer lvsd should log). */
  const lvsadm = (
    ...args: string[]
  ): { code: number | null; pid: number | undefined; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [LVSADM, "--control", sock, ...args], {
      encoding: "utf8",
      timeout: 10_000,
    });
    return { code: r.status, pid: r.pid, stdout: r.stdout, stderr: r.stderr };
  };
  /** Wait until lvsd's stderr has an event matching `pred` (the test must yield to read it). */
  const waitEvent = async (what: string, pred: (e: LogEvent) => boolean, ms = 5_000): Promise<LogEvent> => {
    await waitFor(what, () => events().some(pred), ms).catch(() => undefined);
    const e = events().find(pred);
    if (!e) throw new Error(`no ${what} in lvsd's log:\n${log}`);
    return e;
  };

  beforeAll(async () => {
    t.addNs("d");
    sh("ip", ["-n", ns, "link", "add", t.dev("br"), "type", "bridge"]);
    sh("ip", ["-n", ns, "addr", "add", "10.0.0.2/24", "dev", t.dev("br")]);
    sh("ip", ["-n", ns, "link", "set", t.dev("br"), "up"]);
    p = spawn("ip", [
      "netns",
      "exec",
      ns,
      process.execPath,
      LVSD,
      "--link",
      `tap=${t.dev("t0")},bridge=${t.dev("br")},addr=10.0.0.1/24`,
      "--control",
      sock,
      "--log-level",
      "debug",
    ]);
    p.stderr.on("data", (b: Buffer) => {
      log += b.toString();
    });
    await waitFor("lvsd", () => lvsadm("-Ln").code === 0, 15_000);
    await waitEvent("lvsd.started", (e) => e.event === "lvsd.started");
  });
  afterAll(async () => {
    if (p && p.exitCode === null) {
      p.kill("SIGTERM");
      await new Promise((r) => p?.once("exit", r));
    }
    t.destroy();
    sh("rm", ["-f", sock]);
  });

  it("writes JSON lines only, each an event of lvsd with a level label", async () => {
    const all = events();
    expect(all.length).toBeGreaterThan(0);
    for (const e of all) {
      expect(e.name).toBe("lvsd");
      expect(["trace", "debug", "info", "warn", "error", "fatal"]).toContain(e.level);
      expect(typeof e.time).toBe("number");
    }
    const started = all.find((e) => e.event === "lvsd.started");
    expect(started).toMatchObject({
      level: "info",
      control: sock,
      logLevel: "debug",
      msg: `ready; control socket ${sock}`,
    });
    expect(all.find((e) => e.event === "link.opened")).toMatchObject({
      level: "info",
      link: 0,
      kind: "tap",
      ifname: t.dev("t0"),
      bridge: t.dev("br"),
      mtu: 1500,
      addrs: ["10.0.0.1/24"],
      msg: expect.stringMatching(new RegExp(`^link 0: tap ${t.dev("t0")} bridge ${t.dev("br")} mac `)),
    });
  });

  it("a command that changes the director: one info event with argv, code and the peer; a listing: debug only", async () => {
    const before = commands().length;
    const add = lvsadm("-A", "-t", "10.0.0.100:80", "-s", "rr");
    expect(add.code, add.stderr).toBe(0);
    const list = lvsadm("-Ln");
    expect(list.code).toBe(0);
    const failed = lvsadm("-a", "-t", "10.0.0.200:80", "-r", "10.0.0.11:80", "-m");
    expect(failed.code).toBe(255);
    await waitEvent(
      "the failed -a",
      (e) => e.event === "control.command" && (e["argv"] as string[])[0] === "-a",
    );
    const mine = commands().slice(before);
    const info = mine.filter((e) => e.level === "info");
    expect(info).toEqual([
      expect.objectContaining({
        event: "control.command",
        argv: ["-A", "-t", "10.0.0.100:80", "-s", "rr"],
        code: 0,
        change: true,
        peer: { pid: add.pid, uid: 0, gid: 0 },
        msg: `control: -A -t 10.0.0.100:80 -s rr: exit 0 (pid ${add.pid} uid 0 gid 0)`,
      }),
      expect.objectContaining({
        argv: ["-a", "-t", "10.0.0.200:80", "-r", "10.0.0.11:80", "-m"],
        code: 255,
        change: true,
        peer: { pid: failed.pid, uid: 0, gid: 0 },
        error: "Service not defined",
      }),
    ]);
    expect(info[0]).not.toHaveProperty("error");
    // the listing: not at info; at debug (this lvsd runs with --log-level debug), with its peer
    const listing = mine.filter((e) => (e["argv"] as string[]).join(" ") === "-Ln");
    expect(listing).toEqual([
      expect.objectContaining({
        level: "debug",
        code: 0,
        change: false,
        peer: { pid: list.pid, uid: 0, gid: 0 },
      }),
    ]);
  });

  it("a burst of drops is one warn event naming the reason", async () => {
    // 300 UDP datagrams to the director's own address, which serves only ARP and ping
    sh("ip", ["netns", "exec", ns, "ping", "-c", "1", "-W", "1", "10.0.0.1"]);
    const send = `const s=require("dgram").createSocket("udp4");const b=Buffer.alloc(8);let n=0;
      (function f(){if(n++<300)s.send(b,9,"10.0.0.1",f);else s.close();})();`;
    sh("ip", ["netns", "exec", ns, process.execPath, "-e", send]);
    const drops = lvsadm("--drops");
    expect(drops.code).toBe(0);
    // checked every 5 s: one event, or two if the burst straddled two intervals
    const bursts = () => events().filter((e) => e.event === "drops.burst");
    const total = () => bursts().reduce((n, e) => n + (e["total"] as number), 0);
    await waitFor("drops.burst events for 300 drops", () => total() >= 300, 12_000).catch(() => undefined);
    expect(total(), log).toBeGreaterThanOrEqual(300);
    expect(bursts().length).toBeLessThanOrEqual(2);
    for (const burst of bursts()) {
      expect(burst).toMatchObject({ level: "warn", threshold: 100 });
      const counted = Object.entries(burst["drops"] as Record<string, number>);
      expect(counted.length).toBeGreaterThan(0);
      for (const [reason, n] of counted) {
        expect(n).toBeGreaterThan(100);
        // the reason is one lvsadm --drops lists
        expect(drops.stdout).toMatch(new RegExp(`\\b${reason}\\b`));
      }
      expect(burst.msg).toMatch(/^drops: \d+ [a-z_]+.* in the last \d+\.\d s \(lvsadm --drops\)$/);
    }
  }, 30_000);

  it("SIGHUP without a configuration, then SIGTERM: logged to the last line", async () => {
    // `ip netns exec` execs lvsd: the child is lvsd itself
    p?.kill("SIGHUP");
    await waitEvent("config.failed", (e) => e.event === "config.failed");
    expect(events().find((e) => e.event === "config.reload")).toMatchObject({
      level: "info",
      signal: "SIGHUP",
      msg: "SIGHUP: reloading the configuration",
    });
    expect(events().find((e) => e.event === "config.failed")).toMatchObject({
      level: "warn",
      trigger: "reload",
      msg: expect.stringMatching(/^SIGHUP: no configuration file to reload/),
    });
    p?.kill("SIGTERM");
    await new Promise((r) => p?.once("exit", r));
    expect(p?.exitCode).toBe(0);
    const tail = events().slice(-3);
    expect(tail.map((e) => [e.level, e.event, e.msg])).toEqual([
      ["info", "lvsd.stopping", "SIGTERM: shutting down"],
      ["info", "link.closed", `link 0: ${t.dev("t0")} closed`],
      ["info", "lvsd.stopped", "stopped"],
    ]);
    // the complete log is JSON lines, the last one ended
    expect(log.endsWith("\n")).toBe(true);
  });
});
