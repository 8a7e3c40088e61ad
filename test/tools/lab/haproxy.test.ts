/**
 * The HAProxy reference of the end-to-end bench (src/tools/lab/haproxy.ts): the configuration
 * it writes is one HAProxy accepts, and it balances TCP connections round-robin over the real
 * servers, as an lvsd service with rr does. On loopback, with two Node.js servers.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, get, type Server } from "node:http";
import { type AddressInfo, createServer as netServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { haproxyConf, haproxyConfig } from "../../../src/tools/lab/haproxy.js";
import { skipWithout } from "../../support/tools.js";

const dir = mkdtempSync(join(tmpdir(), "lvs-haproxy-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("haproxyConfig", () => {
  it("writes tcp mode, roundrobin, one thread and each server in order", () => {
    const text = haproxyConfig({
      bind: "10.0.0.100:8081",
      servers: ["192.168.10.1:8081", "192.168.10.2:8081"],
    });
    const lines = text.split("\n").map((l) => l.trim());
    expect(lines).toContain("mode tcp");
    expect(lines).toContain("balance roundrobin");
    expect(lines).toContain("nbthread 1");
    expect(lines).toContain("bind 10.0.0.100:8081");
    expect(lines.filter((l) => l.startsWith("server "))).toEqual([
      "server rs1 192.168.10.1:8081",
      "server rs2 192.168.10.2:8081",
    ]);
    expect(haproxyConfig({ bind: ":1", servers: ["a:1"], threads: 2 })).toMatch(/^ {2}nbthread 2$/m);
  });

  it("refuses no servers and a bad thread count", () => {
    expect(() => haproxyConfig({ bind: ":1", servers: [] })).toThrow(/no servers/);
    expect(() => haproxyConfig({ bind: ":1", servers: ["a:1"], threads: 0 })).toThrow(/thread/);
  });

  it("is a configuration haproxy -c accepts", (ctx) => {
    skipWithout(ctx, "haproxy");
    const f = haproxyConf(join(dir, "check"), {
      bind: "127.0.0.1:18081",
      servers: ["127.0.0.1:18082", "127.0.0.1:18083"],
    });
    const r = spawnSync("haproxy", ["-c", "-f", f], { encoding: "utf8", timeout: 10_000 });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });
});

describe("HAProxy from haproxyConf on loopback", () => {
  const servers: Server[] = [];
  let proxy: ChildProcess | undefined;
  afterAll(() => {
    proxy?.kill("SIGKILL");
    for (const s of servers) s.close();
  });

  const freePort = (): Promise<number> =>
    new Promise((resolve) => {
      const s = netServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
  const fetchOnce = (port: number): Promise<string> =>
    new Promise((resolve, reject) => {
      get({ host: "127.0.0.1", port, path: "/", agent: false, timeout: 5_000 }, (res) => {
        let body = "";
        res.on("data", (b: Buffer) => {
          body += b.toString();
        });
        res.on("end", () => resolve(body));
      }).on("error", reject);
    });

  it("balances new connections round-robin over the servers", async (ctx) => {
    skipWithout(ctx, "haproxy");
    const ports: number[] = [];
    for (const name of ["rs1", "rs2"]) {
      const s = createServer((_req, res) => res.end(name));
      await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
      servers.push(s);
      ports.push((s.address() as AddressInfo).port);
    }
    const front = await freePort();
    const f = haproxyConf(join(dir, "run"), {
      bind: `127.0.0.1:${front}`,
      servers: ports.map((p) => `127.0.0.1:${p}`),
    });
    proxy = spawn("haproxy", ["-db", "-f", f], { stdio: "ignore" });
    // bounded wait until it listens
    let first = "";
    for (let i = 0; i < 50 && first === ""; i++) {
      first = await fetchOnce(front).catch(() => "");
      if (first === "") await new Promise((r) => setTimeout(r, 100));
    }
    expect(first).toMatch(/^rs[12]$/);
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push(await fetchOnce(front)); // a new connection each (agent: false)
    const other = first === "rs1" ? "rs2" : "rs1";
    expect(answers).toEqual([other, first, other, first, other, first]);
  }, 20_000);
});
