/**
 * LVS-NAT end to end: lvsd on TAP devices between a client namespace and four real-server
 * namespaces (src/tools/lab/natlab.ts). Needs root; skipped with a message otherwise. Every
 * namespace is removed in afterAll, also when a test fails.
 */
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { NatLab, rsIp, VIP } from "../../../src/tools/lab/natlab.js";
import { canUseNetns } from "../../../src/tools/lab/netns.js";
import { pattern } from "../../../src/tools/lab/peer.js";
import { haveTools, skipWithout } from "../../support/tools.js";

const privileged = canUseNetns() && nativeAvailable();
if (!privileged)
  console.warn("skipping NAT namespace tests: needs root, the ip tool and the built native addon");
const ok = privileged && haveTools("NAT namespace tests", "curl"); // the client's requests

function tally(answers: string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const a of answers) t[a] = (t[a] ?? 0) + 1;
  return t;
}

describe.skipIf(!ok)("LVS-NAT through lvsd on TAP", () => {
  const lab = new NatLab({ prefix: `nt${process.pid % 100000}`, servers: 4 });

  beforeAll(async () => {
    await lab.up();
  }, 60_000);
  afterAll(() => lab.down());

  const get = (path = "/") => lab.get(`http://${VIP}${path}`).trim();
  const must = (...args: string[]) => {
    const r = lab.lvsadm(...args);
    expect(r.stderr, `lvsadm ${args.join(" ")}`).toBe("");
    expect(r.code).toBe(0);
    return r.stdout;
  };

  it("balances HTTP with rr: each server answers in turn", () => {
    must("-A", "-t", `${VIP}:80`, "-s", "rr");
    for (let k = 1; k <= 4; k++) must("-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:80`, "-m");
    const answers = Array.from({ length: 8 }, () => get());
    // new dests go to the head of the list, so rr starts with the last one added
    expect(answers).toEqual(["rs4", "rs3", "rs2", "rs1", "rs4", "rs3", "rs2", "rs1"]);
    const stats = must("-Ln", "--stats");
    expect(stats).toMatch(/TCP {2}10\.0\.0\.100:80 +8 /);
  });

  it("balances with wrr in the exact kernel proportions (weights 3,2,1,1)", () => {
    must("-E", "-t", `${VIP}:80`, "-s", "wrr");
    must("-e", "-t", `${VIP}:80`, "-r", `${rsIp(1)}:80`, "-m", "-w", "3");
    must("-e", "-t", `${VIP}:80`, "-r", `${rsIp(2)}:80`, "-m", "-w", "2");
    const answers = Array.from({ length: 14 }, () => get());
    expect(tally(answers)).toEqual({ rs1: 6, rs2: 4, rs3: 2, rs4: 2 });
    must("-E", "-t", `${VIP}:80`, "-s", "rr");
    must("-e", "-t", `${VIP}:80`, "-r", `${rsIp(1)}:80`, "-m", "-w", "1");
    must("-e", "-t", `${VIP}:80`, "-r", `${rsIp(2)}:80`, "-m", "-w", "1");
  });

  it("moves 10 MB each way byte for byte", () => {
    const n = 10 * 1024 * 1024;
    const want = createHash("sha256").update(pattern(n)).digest("hex");
    const down = lab.client(
      "sh",
      ["-c", `curl -s -m 60 http://${VIP}/bytes/${n} | sha256sum`],
      undefined,
      90_000,
    );
    expect(down.stdout.split(" ")[0]).toBe(want);
    const up = lab.client(
      "sh",
      [
        "-c",
        `head -c ${n} /dev/urandom > /tmp/${lab.topo.prefix}.up && sha256sum < /tmp/${lab.topo.prefix}.up && curl -s -m 60 --data-binary @/tmp/${lab.topo.prefix}.up http://${VIP}/sha256; rm -f /tmp/${lab.topo.prefix}.up`,
      ],
      undefined,
      90_000,
    );
    const [local, remote] = up.stdout.trim().split("\n");
    expect(remote).toBe(local?.split(" ")[0]);
  });

  it("answers UDP requests through the VIP", (ctx) => {
    skipWithout(ctx, "socat");
    must("-A", "-u", `${VIP}:53`, "-s", "rr");
    must("-a", "-u", `${VIP}:53`, "-r", `${rsIp(2)}:53`, "-m");
    const r = lab.client("sh", ["-c", `printf hello | socat -t 2 - UDP4:${VIP}:53`]);
    expect(r.stdout).toBe("rs2:hello");
    expect(must("-Lnc")).toMatch(
      /UDP \d\d:\d\d {2}UDP {9}10\.0\.0\.7:\d+ +10\.0\.0\.100:53 +192\.168\.10\.2:53/,
    );
  });

  it("maps ports (VIP:8000 -> RIP:8080)", () => {
    must("-A", "-t", `${VIP}:8000`, "-s", "rr");
    must("-a", "-t", `${VIP}:8000`, "-r", `${rsIp(3)}:8080`, "-m");
    expect(lab.get(`http://${VIP}:8000/`).trim()).toBe("rs3");
  });

  it("answers ARP and ping for a VIP added at run time", (ctx) => {
    skipWithout(ctx, "ping");
    const vip2 = "10.0.0.101";
    expect(lab.client("ping", ["-c", "1", "-W", "1", vip2]).code).not.toBe(0);
    must("-A", "-t", `${vip2}:80`, "-s", "rr");
    must("-a", "-t", `${vip2}:80`, "-r", `${rsIp(1)}:80`, "-m");
    const ping = lab.client("ping", ["-c", "2", "-W", "2", vip2]);
    expect(ping.code).toBe(0);
    expect(lab.client("ip", ["neigh", "show", vip2]).stdout).toMatch(/lladdr [0-9a-f:]{17}/);
    expect(lab.get(`http://${vip2}/`).trim()).toBe("rs1");
  });

  it("answers ICMP echo to the VIP", (ctx) => {
    skipWithout(ctx, "ping");
    expect(lab.client("ping", ["-c", "3", "-i", "0.2", "-W", "2", VIP]).stdout).toMatch(/3 received/);
  });

  it("stops sending new connections to a weight-0 dest and drops a deleted one under traffic", () => {
    must("-e", "-t", `${VIP}:80`, "-r", `${rsIp(4)}:80`, "-m", "-w", "0");
    const a = Array.from({ length: 6 }, () => get());
    expect(a).not.toContain("rs4");
    expect(new Set(a)).toEqual(new Set(["rs1", "rs2", "rs3"]));
    must("-d", "-t", `${VIP}:80`, "-r", `${rsIp(3)}:80`);
    const b = Array.from({ length: 6 }, () => get());
    expect(new Set(b)).toEqual(new Set(["rs1", "rs2"]));
    expect(must("-Ln")).not.toMatch(/192\.168\.10\.3:80 /);
  });

  it("saves, clears and restores the same table with -S, -C, -R", () => {
    const saved = must("-Sn");
    expect(saved).toMatch(/^-A -t 10\.0\.0\.100:80 -s rr/m);
    const listed = must("-Ln");
    must("-C");
    expect(must("-Ln")).not.toMatch(/10\.0\.0\.100/);
    const r = lab.lvsadmIn(saved, "-R");
    expect(r.code).toBe(0);
    expect(must("-Sn")).toBe(saved);
    // the same services and dests with the same weights (connection counts start again at 0)
    const shape = (s: string) => s.split("\n").map((l) => l.split(/\s+/).slice(0, 5).join(" "));
    expect(shape(must("-Ln"))).toEqual(shape(listed));
    expect(get()).toMatch(/^rs[124]$/);
  });

  const badInput: [string[], RegExp][] = [
    [["-A", "-t", `${VIP}:81`, "-s", "nosuch"], /scheduler/i],
    [["-A", "-t", "10.0.0.300:80"], /address|host/i],
    [["-a", "-t", `${VIP}:80`, "-m"], /real-server/],
    [["-a", "-t", "10.9.9.9:80", "-r", "192.168.10.1:80", "-m"], /service/i],
  ];
  it.each(badInput)("refuses bad input %j with ipvsadm's error and changes nothing", (args, msg) => {
    const before = must("-Sn");
    const r = lab.lvsadm(...args);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(msg);
    expect(must("-Sn")).toBe(before);
  });
});

describe.skipIf(!ok)("LVS-NAT through lvsd on AF_PACKET sockets", () => {
  const lab = new NatLab({ prefix: `nr${process.pid % 100000}`, servers: 2, backend: "raw" });
  beforeAll(async () => {
    await lab.up();
  }, 60_000);
  afterAll(() => lab.down());

  it("balances HTTP with rr and moves 10 MB byte for byte", () => {
    for (const c of [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(1)}:80`, "-m"],
      ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(2)}:80`, "-m"],
    ]) {
      expect(lab.lvsadm(...c).code).toBe(0);
    }
    const answers = Array.from({ length: 4 }, () => lab.get(`http://${VIP}/`).trim());
    expect(answers).toEqual(["rs2", "rs1", "rs2", "rs1"]);
    const n = 10 * 1024 * 1024;
    const want = createHash("sha256").update(pattern(n)).digest("hex");
    const down = lab.client(
      "sh",
      ["-c", `curl -s -m 60 http://${VIP}/bytes/${n} | sha256sum`],
      undefined,
      90_000,
    );
    expect(down.stdout.split(" ")[0]).toBe(want);
  });
});
