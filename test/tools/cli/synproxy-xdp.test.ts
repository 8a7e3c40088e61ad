/**
 * `--link raw=IF,...,synproxy-xdp=`: how lvsd attaches the XDP SYN responder and says so. On a
 * veth, `auto` takes generic XDP and `drv` takes driver mode with a warning (XDP_TX on a veth
 * needs NAPI on the peer); a second lvsd on an interface that already has the program refuses
 * to start, naming the interface and why; the program goes when lvsd ends. A veth pair in a
 * namespace of the test's own; needs root and the native addon (skipped otherwise).
 */
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, Topology } from "../../../src/tools/lab/netns.js";

const ok = canUseNetns() && nativeAvailable();
if (!ok) console.warn("skipping synproxy-xdp start-up tests: needs root, the ip tool and the native addon");

describe.skipIf(!ok)("lvsd --link raw=...,synproxy-xdp=", () => {
  const t = new Topology(`sx${process.pid % 100000}`);
  const a = t.dev("a");
  const b = t.dev("b");
  const running: ChildProcess[] = [];
  beforeAll(() => {
    t.addNs("d");
    for (const args of [
      ["link", "add", a, "type", "veth", "peer", "name", b],
      ["link", "set", a, "up"],
      ["link", "set", b, "up"],
    ])
      expect(t.exec("d", "ip", args).code).toBe(0);
  });
  afterAll(() => {
    for (const p of running) p.kill("SIGKILL");
    t.destroy();
  });

  /** Start lvsd; resolve with its stderr once `ready` is logged (or it exits). */
  const start = (mode: string, n: number): Promise<{ p: ChildProcess; err: string; code: number | null }> =>
    new Promise((resolve) => {
      const p = t.spawn("d", process.execPath, [
        LVSD,
        "--link",
        `raw=${a},addr=10.0.0.1/24,synproxy-xdp=${mode}`,
        "--control",
        `/tmp/${t.prefix}-${n}.sock`,
      ]);
      running.push(p);
      let err = "";
      const done = (code: number | null) => resolve({ p, err, code });
      p.stderr?.on("data", (d: Buffer) => {
        err += d.toString();
        if (/ready; control socket/.test(err)) done(null);
      });
      p.once("exit", (code) => done(code));
      setTimeout(() => done(null), 15_000);
    });
  const xdpOn = (): string => t.exec("d", "ip", ["-d", "link", "show", a]).stdout;
  const stop = (p: ChildProcess): Promise<void> =>
    new Promise((resolve) => {
      if (p.exitCode !== null) return resolve();
      p.once("exit", () => resolve());
      p.kill("SIGTERM");
    });

  it("auto on a veth: generic XDP; a second lvsd on the interface is refused; gone at exit", async () => {
    const first = await start("auto", 1);
    expect(first.code).toBeNull();
    expect(first.err).toMatch(/SYN-proxy SYNs answered in XDP \(generic mode\)/);
    expect(xdpOn()).toMatch(/xdpgeneric.*\n[\s\S]*prog\/xdp id \d+ name lvs_synack/);
    const second = await start("skb", 2);
    expect(second.code).not.toBe(0);
    expect(second.code).not.toBeNull();
    expect(second.err).toMatch(new RegExp(`--link ${a}: synproxy-xdp: .*already has an XDP program`));
    await stop(first.p);
    expect(xdpOn()).not.toMatch(/prog\/xdp/);
  }, 40_000);

  it("drv on a veth: driver mode, with a warning about the peer's NAPI", async () => {
    const r = await start("drv", 3);
    expect(r.code).toBeNull();
    expect(r.err).toMatch(/SYN-proxy SYNs answered in XDP \(driver mode\)/);
    expect(r.err).toMatch(
      /is a veth in driver-mode XDP: its SYN-ACKs \(XDP_TX\) reach the peer only if the peer has NAPI/,
    );
    await stop(r.p);
  }, 30_000);
});
