/**
 * lvsd on AF_XDP links (`--link xdp=IFACE`) end to end: LVS-NAT and FULLNAT in the NAT lab, DR
 * and TUN in the routed lab, each with byte-exact transfers both ways. lvsd's links are veth
 * ends in the director namespace with the XDP program attached in driver mode (native XDP on
 * veth); their peers sit on the lab's bridges. Needs root; skipped with a message otherwise.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, rsIp, TAPCOPY_PEER, VIP, XDPCOPY } from "../../../src/tools/lab/natlab.js";
import { canUseNetns, waitFor } from "../../../src/tools/lab/netns.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { REALSERVER, RoutedLab } from "../../../src/tools/lab/routedlab.js";
import { haveTools, skipWithout } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping AF_XDP lab tests: needs root, the ip tool and the built native addon");
const ok = privileged && haveTools("AF_XDP lab tests", "curl");

const N = 10 * 1024 * 1024;
const WANT = createHash("sha256").update(pattern(N)).digest("hex");

type Lab = NatLab | RoutedLab;

function must(lab: Lab, ...args: string[]): string {
  const r = lab.lvsadm(...args);
  expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
  expect(r.code).toBe(0);
  return r.stdout;
}

/** 10 MB down (checked against the pattern) and 10 MB of random bytes up (the server hashes them). */
function transfers(lab: Lab): void {
  const down = lab.client(
    "sh",
    ["-c", `curl -s -m 60 http://${VIP}/bytes/${N} | sha256sum`],
    undefined,
    90_000,
  );
  expect(down.stdout.split(" ")[0]).toBe(WANT);
  const f = `/tmp/${lab.topo.prefix}.up`;
  const up = lab.client(
    "sh",
    [
      "-c",
      `head -c ${N} /dev/urandom > ${f} && sha256sum < ${f} && curl -s -m 60 --data-binary @${f} http://${VIP}/sha256; rm -f ${f}`,
    ],
    undefined,
    90_000,
  );
  const [local, remote] = up.stdout.trim().split("\n");
  expect(remote).toBe(local?.split(" ")[0]);
}

function xdpAttached(lab: Lab, dev: string): boolean {
  return /prog\/xdp id \d+/.test(lab.topo.exec("d", "ip", ["-d", "link", "show", "dev", dev]).stdout);
}

describe.skipIf(!ok)("LVS-NAT through lvsd on AF_XDP", () => {
  const lab = new NatLab({ prefix: `xn${process.pid % 100000}`, servers: 2, backend: "xdp" });
  beforeAll(async () => {
    await lab.up();
  }, 60_000);
  afterAll(() => lab.down());

  it("runs the XDP program on both links, balances HTTP with rr and moves 10 MB each way byte for byte", async () => {
    expect(xdpAttached(lab, lab.topo.dev("x0"))).toBe(true);
    expect(xdpAttached(lab, lab.topo.dev("x1"))).toBe(true);
    // lvsd logs how each link runs: native XDP in the veth driver, copy mode (no zero-copy on veth).
    // Its stderr is read by this process's event loop: yield until the lines are in.
    await waitFor(
      "lvsd's link lines",
      () => (lab.log().match(/"event":"link\.opened"/g) ?? []).length === 2,
      5000,
    );
    expect(lab.log()).toMatch(
      /"kind":"xdp","ifname":"[^"]+x0","queue":0,"xdpMode":"drv","zeroCopy":false,"redirect":"all"/,
    );
    expect(lab.log()).toMatch(/link 1: xdp \S+x1 queue 0 xdp drv copy redirect all mac /);
    // The second link is bound to the first one's UMEM (XDP_SHARED_UMEM): NAT between them
    // forwards by descriptor.
    expect(lab.log()).toMatch(/"kind":"xdp","ifname":"[^"]+x1",.*"redirect":"all","umemOf":0/);
    expect(lab.log()).toMatch(/link 1: xdp \S+x1 [^"]* umem of link 0"/);
    must(lab, "-A", "-t", `${VIP}:80`, "-s", "rr");
    for (let k = 1; k <= 2; k++) must(lab, "-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:80`, "-m");
    const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
    expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
    transfers(lab);
  });

  it("answers UDP through the VIP", (ctx) => {
    skipWithout(ctx, "socat");
    must(lab, "-A", "-u", `${VIP}:53`, "-s", "rr");
    must(lab, "-a", "-u", `${VIP}:53`, "-r", `${rsIp(2)}:53`, "-m");
    const r = lab.client("sh", ["-c", `printf hello | socat -t 2 - UDP4:${VIP}:53`]);
    expect(r.stdout).toBe("rs2:hello");
  });

  it("detaches the XDP programs when lvsd exits", async () => {
    await lab.stopLvsd();
    expect(xdpAttached(lab, lab.topo.dev("x0"))).toBe(false);
    expect(xdpAttached(lab, lab.topo.dev("x1"))).toBe(false);
  });
});

// without workers, and with 2 (each busy-polls its own queue of the 2-queue veths; one
// governor per interface in the main thread, on the workers' summed counters)
for (const workers of [0, 2])
  describe.skipIf(!ok)(
    `LVS-NAT through lvsd on AF_XDP with busy-poll=${workers > 0 ? `, --workers ${workers}` : ""}`,
    () => {
      // src/control/napi.ts: preferred busy polling, and NAPI deferral while the link is overloaded
      const lab = new NatLab({
        prefix: `xb${workers}${process.pid % 100000}`,
        servers: 2,
        backend: "xdp",
        linkOpts: "busy-poll=1000",
        ...(workers > 0 ? { queues: workers, lvsdArgs: ["--workers", String(workers)] } : {}),
      });
      const sys = (f: string): string =>
        lab.topo.exec("d", "cat", [`/sys/class/net/${lab.topo.dev("x0")}/${f}`]).stdout.trim();
      let before: [string, string];
      /** hping3's UDP flood to VIP:53 from the client, on CPU 0, for `seconds` (bounded by timeout). */
      const udpFlood = (seconds: number) => {
        const p = lab.topo.spawn("c", "timeout", [
          String(seconds),
          ...["taskset", "-c", "0", "hping3", "--udp", "-p", "53", "-d", "18", "--flood", VIP],
        ]);
        return { p, ended: new Promise<void>((r) => p.once("exit", () => r())) };
      };
      beforeAll(async () => {
        await lab.up();
      }, 60_000);
      afterAll(() => lab.down());

      it("moves 10 MB each way byte for byte with the receive work done in lvsd's polls", async () => {
        before = [sys("napi_defer_hard_irqs"), sys("gro_flush_timeout")];
        must(lab, "-A", "-t", `${VIP}:80`, "-s", "rr");
        for (let k = 1; k <= 2; k++) must(lab, "-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:80`, "-m");
        transfers(lab);
        // (a bulk transfer may fill a whole batch and switch the deferral on for a while; with
        // workers the governor learns it from their counters, up to a publish and a tick later)
        await new Promise((r) => setTimeout(r, 400));
        await waitFor("no deferral", () => sys("gro_flush_timeout") === before[1], 5000);
        // request/response traffic does not overload the link: no deferral is switched on
        const answers = Array.from({ length: 20 }, () => lab.get(`http://${VIP}/`).trim());
        expect(new Set(answers)).toEqual(new Set(["rs1", "rs2"]));
        expect(sys("gro_flush_timeout")).toBe(before[1]);
      });

      it("defers the kernel's NAPI poll while flooded, and puts it back once lvsd keeps up and at exit", async (ctx) => {
        skipWithout(ctx, "hping3", "socat", "taskset");
        must(lab, "-A", "-u", `${VIP}:53`, "-s", "rr");
        must(lab, "-a", "-u", `${VIP}:53`, "-r", `${rsIp(1)}:53`, "-m");
        // lvsd and the flooder on one CPU: lvsd cannot keep up, whatever the machine
        const pid = lab.lvsdPid!;
        expect(lab.topo.exec("d", "taskset", ["-a", "-c", "-p", "0", String(pid)]).code).toBe(0);
        const flood = udpFlood(3);
        try {
          await waitFor("the deferral to go on", () => sys("gro_flush_timeout") === "1000000", 3000);
          expect(sys("napi_defer_hard_irqs")).toBe("2");
        } finally {
          await flood.ended;
        }
        // (the two files are written one after the other: wait for both)
        await waitFor(
          "the deferral to come off",
          () => sys("gro_flush_timeout") === before[1] && sys("napi_defer_hard_irqs") === before[0],
          5000,
        );
        expect(sys("napi_defer_hard_irqs")).toBe(before[0]);
        await waitFor(
          "the log lines",
          () => /"event":"link\.napi_defer".*"deferred":false/.test(lab.log()),
          5000,
        );
        expect(lab.log()).toMatch(/"event":"link\.napi_defer","ifname":"[^"]+x0","deferred":true/);
        // forwarding goes on (once the real server has worked off the flood's datagrams)
        await waitFor(
          "a UDP answer through the VIP",
          () => lab.client("sh", ["-c", `printf hello | socat -t 1 - UDP4:${VIP}:53`]).stdout === "rs1:hello",
          15_000,
        );
      }, 30_000);

      it("puts the interface's NAPI settings back when it exits with the deferral on", async (ctx) => {
        skipWithout(ctx, "hping3", "taskset");
        const flood = udpFlood(4);
        try {
          await waitFor("the deferral to go on", () => sys("gro_flush_timeout") === "1000000", 3000);
          await lab.stopLvsd();
          expect([sys("napi_defer_hard_irqs"), sys("gro_flush_timeout")]).toEqual(before);
        } finally {
          flood.p.kill();
          await flood.ended;
        }
      }, 30_000);
    },
  );

describe.skipIf(!ok)("FULLNAT through lvsd on AF_XDP", () => {
  const lab = new NatLab({ prefix: `xf${process.pid % 100000}`, servers: 2, backend: "xdp", rsRoute: false });
  beforeAll(async () => {
    await lab.up();
  }, 60_000);
  afterAll(() => lab.down());

  it("balances with rr through a local address and moves 10 MB each way byte for byte", () => {
    must(lab, "-A", "-t", `${VIP}:80`, "-s", "rr");
    must(lab, "--add-laddr", "-t", `${VIP}:80`, "-z", "192.168.10.200");
    for (let k = 1; k <= 2; k++) must(lab, "-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:80`, "--fullnat");
    expect(lab.topo.exec("r1", "ip", ["route", "get", "10.0.0.7"]).code).not.toBe(0);
    const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
    expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
    transfers(lab);
  });
});

for (const mode of ["dr", "tun"] as const) {
  describe.skipIf(!ok || !existsSync(REALSERVER))(`LVS-${mode.toUpperCase()} through lvsd on AF_XDP`, () => {
    const lab = new RoutedLab({ prefix: `x${mode}${process.pid % 10000}`, mode, backend: "xdp" });
    beforeAll(async () => {
      await lab.up();
    }, 60_000);
    afterAll(() => lab.down());

    it("answers HTTP in turn, replies bypassing the director, and moves 10 MB each way byte for byte", () => {
      expect(xdpAttached(lab, lab.topo.dev("x0"))).toBe(true);
      must(lab, "-A", "-t", `${VIP}:80`, "-s", "rr");
      for (let k = 1; k <= 2; k++)
        must(lab, "-a", "-t", `${VIP}:80`, "-r", lab.rsIp(k), mode === "dr" ? "-g" : "-i");
      const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
      expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
      transfers(lab);
      const stats = must(lab, "-Ln", "--stats", "--exact");
      const out = /TCP {2}10\.0\.0\.100:80 +\d+ +(\d+) +(\d+)/.exec(stats);
      expect(Number(out?.[1])).toBeGreaterThan(7000); // the upload's packets all went through lvsd
      expect(Number(out?.[2])).toBe(0); // no reply packet did
    });
  });
}

describe.skipIf(!ok || !existsSync(XDPCOPY))(
  "xdpcopy: the bench's AF_XDP copier (the AF_XDP I/O ceiling)",
  () => {
    // busy-poll=1000: the copier busy-polls and switches the veths' NAPI deferral as lvsd does
    const lab = new NatLab({
      prefix: `xc${process.pid % 100000}`,
      servers: 1,
      backend: "xdpcopy",
      linkOpts: "busy-poll=1000",
    });
    beforeAll(async () => {
      await lab.up();
    }, 60_000);
    afterAll(() => lab.down());

    it("copies every frame both ways between the two veths: 10 MB down byte for byte, and counts it", async () => {
      expect(xdpAttached(lab, lab.topo.dev("x0"))).toBe(true);
      expect(xdpAttached(lab, lab.topo.dev("x1"))).toBe(true);
      const down = lab.client(
        "sh",
        ["-c", `curl -s -m 60 http://${TAPCOPY_PEER}/bytes/${N} | sha256sum`],
        undefined,
        90_000,
      );
      expect(down.stdout.split(" ")[0]).toBe(WANT);
      const cp = lab.copier!;
      cp.kill("SIGTERM");
      await waitFor("xdpcopy's exit", () => cp.exitCode !== null && lab.copierOut.includes("\n"), 10_000);
      expect(cp.exitCode).toBe(0);
      const counts = JSON.parse(lab.copierOut.trim()) as Record<string, number>;
      // 10 MB in frames of at most 1514 bytes came from rs1 (bridge bi, veth x1) to the client
      expect(counts.bToA).toBeGreaterThan(N / 1514);
      expect(counts.aToB).toBeGreaterThan(0); // the client's ACKs and ARP
      expect(counts.txDropped).toBe(0);
      // its programs are gone, and the NAPI settings it may have changed are as they were
      expect(xdpAttached(lab, lab.topo.dev("x0"))).toBe(false);
      for (const dev of [lab.topo.dev("x0"), lab.topo.dev("x1")])
        expect(lab.topo.exec("d", "cat", [`/sys/class/net/${dev}/gro_flush_timeout`]).stdout.trim()).toBe(
          "0",
        );
    }, 120_000);

    it("refuses bad arguments with a usage line (exit 2) and a missing interface with one line (exit 1)", () => {
      const r = lab.topo.exec("d", process.execPath, [XDPCOPY, "--busy-poll", "x", "a", "b"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--busy-poll needs an integer.*\nusage: xdpcopy/);
      expect(lab.topo.exec("d", process.execPath, [XDPCOPY, "only-one"]).code).toBe(2);
      // an interface that does not exist: one line naming it, exit 1, no stack trace
      const none = lab.topo.exec("d", process.execPath, [XDPCOPY, "nosuchif0", "nosuchif1"]);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/^xdpcopy: .*nosuchif0/);
      expect(none.stderr.trim().split("\n")).toHaveLength(1);
    });
  },
);
