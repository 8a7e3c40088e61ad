/**
 * lvsd as a process: clear errors for what users get wrong, one daemon per control socket,
 * link counters through lvsadm, and clean shutdown (TAP devices removed). Runs lvsd inside a
 * network namespace of its own; needs root, skipped with a message otherwise.
 */
import { spawn } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { LVSADM, LVSD } from "../../../src/tools/lab/labbase.js";
import { canUseNetns, sh, Topology, waitFor } from "../../../src/tools/lab/netns.js";
import { hugeAdvisedMappings, thpSupported } from "../../support/hugepages.js";
import { messages } from "./lvsdlog.js";

const ok = canUseNetns() && nativeAvailable();
if (!ok) console.warn("skipping lvsd daemon tests: needs root, the ip tool and the native addon");

describe.skipIf(!ok)("lvsd daemon", () => {
  const prefix = `ld${process.pid % 100000}`;
  const t = new Topology(prefix);
  const ns = t.ns("d");
  const sock = `/run/lvsd/${prefix}.sock`;
  const lvsd = (...args: string[]) =>
    sh("ip", ["netns", "exec", ns, process.execPath, LVSD, ...args], undefined, 15_000);
  const lvsadm = (...args: string[]) => sh(process.execPath, [LVSADM, "--control", sock, ...args]);

  beforeAll(() => {
    t.addNs("d");
    sh("ip", ["-n", ns, "link", "add", t.dev("br"), "type", "bridge"]);
    sh("ip", ["-n", ns, "link", "set", t.dev("br"), "up"]);
  });
  afterAll(() => {
    t.destroy();
    sh("rm", ["-f", sock]);
  });

  it("refuses a malformed address with exit status 2 and a clear message", () => {
    const r = lvsd("--link", `tap=${t.dev("t0")},addr=10.0.0.300/24`, "--control", sock);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/lvsd: --link .* '10\.0\.0\.300' is not an IPv4 address/);
  });

  it("refuses a bridge that does not exist", () => {
    const r = lvsd(
      "--link",
      `tap=${t.dev("t0")},bridge=${t.dev("nobr")},addr=10.0.0.1/24`,
      "--control",
      sock,
    );
    expect(r.code).toBe(1);
    // once its arguments are parsed lvsd logs (JSON lines on a pipe): a fatal lvsd.start_failed event
    expect(messages(r.stderr, "lvsd.start_failed")).toEqual([
      expect.stringMatching(new RegExp(t.dev("nobr"))),
    ]);
    expect(sh("ip", ["-n", ns, "link", "show", t.dev("t0")]).code).not.toBe(0); // nothing left behind
  });

  it("runs with --restore, lists its links' counters, refuses a second daemon on its socket or its TAP, and cleans up on SIGTERM", async () => {
    const rules = `/tmp/${prefix}.rules`;
    writeFileSync(rules, "-A -t 10.0.0.100:80 -s wrr\n-a -t 10.0.0.100:80 -r 10.0.0.11:8080 -m -w 3\n");
    const p = spawn("ip", [
      "netns",
      "exec",
      ns,
      process.execPath,
      LVSD,
      "--link",
      `tap=${t.dev("t0")},bridge=${t.dev("br")},addr=10.0.0.1/24`,
      "--control",
      sock,
      "--restore",
      rules,
    ]);
    let log = "";
    p.stderr.on("data", (b: Buffer) => {
      log += b.toString();
    });
    try {
      await waitFor("lvsd", () => lvsadm("-Ln").code === 0, 15_000);
      // --restore applied the rule file at start
      expect(lvsadm("-Sn").stdout).toBe(
        "-A -t 10.0.0.100:80 -s wrr\n-a -t 10.0.0.100:80 -r 10.0.0.11:8080 -m -w 3\n",
      );
      rmSync(rules);
      // the connection table (1M slots by default: 64 MiB of lookup records) was advised for
      // transparent huge pages at start (\`ip netns exec\` execs lvsd in place: p.pid is lvsd)
      if (thpSupported) expect(hugeAdvisedMappings(p.pid!)[0]).toBeGreaterThanOrEqual(62 * 2 ** 20);
      // lvsadm runs synchronously, so lvsd's stderr is read only once this test yields
      const linkLine = new RegExp(
        `^link 0: tap ${t.dev("t0")} bridge ${t.dev("br")} mac [0-9a-f:]{17} mtu 1500 addr 10\\.0\\.0\\.1/24$`,
      );
      const linkLines = () => messages(log, "link.opened");
      await waitFor("lvsd's link line", () => linkLines().some((m) => linkLine.test(m)), 5_000).catch(
        () => undefined,
      );
      expect(linkLines()).toEqual([expect.stringMatching(linkLine)]);
      // a second daemon on the same control socket is refused; the first keeps running
      const second = lvsd("--link", `tap=${t.dev("t1")},addr=10.0.1.1/24`, "--control", sock);
      expect(second.code).toBe(1);
      expect(messages(second.stderr, "lvsd.start_failed")).toEqual([
        expect.stringMatching(/(in use|another lvsd|already)/i),
      ]);
      // a second daemon on the same TAP is refused
      const third = lvsd("--link", `tap=${t.dev("t0")},addr=10.0.2.1/24`, "--control", `${sock}.2`);
      expect(third.code).toBe(1);
      expect(messages(third.stderr, "lvsd.start_failed")).toEqual([expect.stringMatching(/(in use|busy)/i)]);
      expect(lvsadm("-Ln").code).toBe(0);
      // the kernel side of the TAP sends something (IPv6 router solicitations, or our ping)
      sh("ip", ["netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-I", t.dev("br"), "10.0.0.1"]);
      const links = lvsadm("--links");
      expect(links.code).toBe(0);
      expect(links.stdout).toMatch(/^Link +MAC +RxPkts +RxBytes +RxDrop +TxPkts +TxBytes +TxDrop$/m);
      expect(links.stdout).toMatch(
        new RegExp(`^${t.dev("t0")} +[0-9a-f:]{17} +\\d+ +\\d+ +0 +\\d+ +\\d+ +\\d+$`, "m"),
      );
    } finally {
      p.kill("SIGTERM");
      await new Promise((r) => p.once("exit", r));
    }
    expect(messages(log, "lvsd.stopping")).toEqual(["SIGTERM: shutting down"]);
    expect(sh("ip", ["-n", ns, "link", "show", t.dev("t0")]).code).not.toBe(0); // the TAP it created is gone
  }, 60_000);
});
