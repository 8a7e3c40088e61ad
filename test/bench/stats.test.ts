/**
 * The pure parts of the end-to-end bench (bench/e2e/stats.ts): CPU time from /proc/PID/stat and
 * /proc/stat, lvsd's link counters as lvsadm prints them, wrk's summary, median and spread.
 */
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import {
  formatSpread,
  machineTicks,
  parseLinks,
  parseWrk,
  rotate,
  spread,
  statCpuTicks,
  totalTx,
} from "../../bench/e2e/stats.js";
import { formatLinks } from "../../src/control/extensions.js";
import { skipWithout } from "../support/tools.js";

describe("statCpuTicks", () => {
  it("adds utime and stime (fields 14 and 15), counting after the last ')' of the name", () => {
    // fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const rest = "S 1 2 3 4 5 6 7 8 9 10 1234 567 11 12 20 0 1 0 100 0 0";
    expect(statCpuTicks(`42 (node) ${rest}`)).toBe(1801);
    // a command name with spaces and a ')' of its own must not shift the fields
    expect(statCpuTicks(`42 (a b) c) ${rest}`)).toBe(1801);
  });

  it("is NaN for text that is not a stat line", () => {
    expect(statCpuTicks("")).toBeNaN();
    expect(statCpuTicks("42 (node) S 1 2")).toBeNaN();
    expect(statCpuTicks("42 (node) S 1 2 3 4 5 6 7 8 9 10 x 5 1")).toBeNaN();
  });

  it("agrees with the kernel's own accounting of this process (getrusage)", () => {
    const hz = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;
    const t0 = Date.now();
    let x = 0;
    while (Date.now() - t0 < 300) x += Math.sqrt(x + 1); // burn some CPU so the figures are not ~0
    expect(x).toBeGreaterThan(0);
    const before = process.resourceUsage();
    const ticks = statCpuTicks(readFileSync("/proc/self/stat", "utf8"));
    const after = process.resourceUsage();
    const us = (r: NodeJS.ResourceUsage) => (r.userCPUTime + r.systemCPUTime) / 1e6;
    // /proc ticks are coarser (1/hz) than getrusage's microseconds
    expect(ticks / hz).toBeGreaterThanOrEqual(us(before) - 2 / hz);
    expect(ticks / hz).toBeLessThanOrEqual(us(after) + 2 / hz);
  });
});

describe("machineTicks", () => {
  it("counts idle and iowait as not busy, the rest (up to steal) as busy", () => {
    const text = "cpu  100 5 50 1000 20 3 7 2 40 0\ncpu0 50 2 25 500 10 1 3 1 20 0\nintr 1\n";
    expect(machineTicks(text)).toEqual({ busy: 100 + 5 + 50 + 3 + 7 + 2, total: 1187 });
    expect(machineTicks(text, 0)).toEqual({ busy: 50 + 2 + 25 + 1 + 3 + 1, total: 592 });
    expect(machineTicks(text, 1).busy).toBeNaN(); // no such CPU
  });

  it("reads this machine's /proc/stat: some time busy, more in total", () => {
    const a = machineTicks(readFileSync("/proc/stat", "utf8"));
    expect(a.busy).toBeGreaterThan(0);
    expect(a.total).toBeGreaterThan(a.busy);
  });
});

describe("parseLinks", () => {
  it("reads back what lvsadm --links prints", () => {
    const text = formatLinks([
      {
        name: "eb1t0",
        mac: "02:00:5e:10:00:01",
        rxPackets: 10,
        rxBytes: 600,
        txPackets: 7,
        txBytes: 420,
        rxDropped: 1,
        txDropped: 0,
      },
      {
        name: "a-fifteen-chars",
        mac: "02:00:5e:10:00:02",
        rxPackets: 123456789012,
        rxBytes: 1,
        txPackets: 987654321,
        txBytes: 2,
        rxDropped: 0,
        txDropped: 3,
      },
    ]);
    const rows = parseLinks(text);
    expect(rows).toEqual([
      { name: "eb1t0", rxPackets: 10, txPackets: 7, rxDropped: 1, txDropped: 0 },
      { name: "a-fifteen-chars", rxPackets: 123456789012, txPackets: 987654321, rxDropped: 0, txDropped: 3 },
    ]);
    expect(totalTx(rows)).toBe(987654328);
  });

  it("refuses text that is not the links table", () => {
    expect(() => parseLinks("lvsadm: no such command\n")).toThrow(/header/);
    expect(() => parseLinks(`${formatLinks([])}eb1t0 02:00 1 2 x 4 5 6\n`)).toThrow(/row/);
  });
});

describe("parseWrk", () => {
  it("reads requests, requests/s and errors from wrk's summary", () => {
    const out = `Running 4s test @ http://10.0.0.100:8081/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   688.94us    1.05ms  17.48ms   92.57%
    Req/Sec    55.28k    14.46k   68.63k    90.00%
  109941 requests in 2.00s, 15.83MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:  54931.09
Transfer/sec:      7.91MB
`;
    expect(parseWrk(out)).toEqual({ requests: 109941, rps: 54931.09, errors: 9 });
    expect(parseWrk("unable to connect to 10.0.0.100:8081 Connection refused\n")).toBeUndefined();
  });

  it("reads a real wrk run against a server on loopback", async (ctx) => {
    skipWithout(ctx, "wrk");
    const server = createServer((_req, res) => res.end("ok\n"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    let served = 0;
    server.on("request", () => {
      served++;
    });
    try {
      const out = await new Promise<string>((resolve) => {
        let text = "";
        const p = spawn("wrk", ["-t1", "-c2", "-d1s", `http://127.0.0.1:${port}/`]);
        p.stdout.on("data", (b: Buffer) => {
          text += b.toString();
        });
        p.on("close", () => resolve(text));
      });
      const w = parseWrk(out);
      expect(w, out).toBeDefined();
      expect(w!.errors).toBe(0);
      expect(w!.requests).toBeGreaterThan(0);
      // wrk counts the responses it completed; the server may have answered a few more it cut off
      expect(w!.requests).toBeLessThanOrEqual(served);
      expect(w!.requests).toBeGreaterThanOrEqual(served - 2);
    } finally {
      server.close();
    }
  }, 20_000);
});

describe("spread", () => {
  it("gives the median and range of odd and even counts, ignoring non-finite values", () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3, n: 3 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, n: 4 });
    expect(spread([5, Number.NaN, Number.POSITIVE_INFINITY])).toEqual({ median: 5, min: 5, max: 5, n: 1 });
    expect(spread([]).n).toBe(0);
    expect(spread([]).median).toBeNaN();
  });

  it("formats one value alone, several with their range, none as n/a", () => {
    expect(formatSpread(spread([0.934]))).toBe("0.93");
    expect(formatSpread(spread([0.9, 0.95, 1.02]))).toBe("0.95 (0.90-1.02)");
    expect(formatSpread(spread([]))).toBe("n/a");
  });
});

describe("rotate", () => {
  it("starts each repeat one setup later, so every setup takes every place once per cycle", () => {
    const s = ["a", "b", "c"];
    expect(rotate(s, 0)).toEqual(["a", "b", "c"]);
    expect(rotate(s, 1)).toEqual(["b", "c", "a"]);
    expect(rotate(s, 2)).toEqual(["c", "a", "b"]);
    expect(rotate(s, 3)).toEqual(["a", "b", "c"]);
    expect(rotate([], 5)).toEqual([]);
  });
});
