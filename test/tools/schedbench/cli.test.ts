import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseIPv4 } from "../../../src/tools/schedbench/addr.js";
import { main } from "../../../src/tools/schedbench/cli.js";
import { buildPcap, LINKTYPE_RAW } from "../../../src/tools/schedbench/pcap.js";
import type { Report } from "../../../src/tools/schedbench/run.js";
import { dests } from "./helpers.js";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: {
      stdout: { write: (s: string) => out.push(s) > 0 },
      stderr: { write: (s: string) => err.push(s) > 0, isTTY: false },
    },
  };
}

const dir = mkdtempSync(join(tmpdir(), "schedbench-cli-"));
const good = join(dir, "good.scn");
writeFileSync(
  good,
  ["name tiny", "duration 3s", "rate 200", "clients all 10.1.0.0/16 count 500", ...dests(3)].join("\n"),
);
const bad = join(dir, "bad.scn");
writeFileSync(
  bad,
  ["duration 3s", "rate 200", "clients all 10.1.0.0/16 count 500", "dest a 1.2.3.4 weight -1"].join("\n"),
);

describe("lvs-schedbench command line", () => {
  it("--check reports file:line problems and exits 2", async () => {
    const t = io();
    expect(await main(["--check", good, bad], t.io)).toBe(2);
    expect(t.out.join("")).toContain(`${good}: ok (tiny: 3 dests, 0 events)`);
    expect(t.err.join("")).toContain(`${bad}:4: dest a: weight must be an integer 0..65535, got \`-1\``);
    const ok = io();
    expect(await main(["--check", good], ok.io)).toBe(0);
  });

  it("runs a scenario and writes the JSON, one SVG per metric and an HTML page", async () => {
    const out = join(dir, "report");
    const json = join(dir, "r.json");
    const t = io();
    const code = await main(
      [
        "-s",
        good,
        "--schedulers",
        "rr,wlc",
        "--no-cost",
        "--probe-flows",
        "500",
        "--out",
        out,
        "--json",
        json,
      ],
      t.io,
    );
    expect(t.err.join("")).not.toContain("Error");
    expect(code).toBe(0);
    expect(t.out.join("")).toMatch(/^tiny — tiny/);
    const r = JSON.parse(readFileSync(json, "utf8")) as Report;
    expect(r.schedulers).toEqual(["rr", "wlc"]);
    expect(readFileSync(join(out, "report.json"), "utf8")).toBe(readFileSync(json, "utf8"));
    for (const f of ["index.html", "latency-p99.svg", "conn-shares.svg", "errors.svg"])
      expect(existsSync(join(out, f))).toBe(true);
    const html = readFileSync(join(out, "index.html"), "utf8");
    expect(html).toContain("<svg");
    expect(html).toContain("lvs-schedbench -s");
  });

  it("usage errors exit 2 with a clear message", async () => {
    const unknown = io();
    expect(await main(["-s", good, "--schedulers", "rr,nope"], unknown.io)).toBe(2);
    expect(unknown.err.join("")).toContain("unknown scheduler `nope`");
    const flag = io();
    expect(await main(["-s", good, "--schedulers", "rr+sh-port"], flag.io)).toBe(2);
    expect(flag.err.join("")).toContain("incompatible scheduler flag `sh-port'");
    const missing = io();
    expect(await main(["-s", "no-such-scenario"], missing.io)).toBe(2);
    expect(missing.err.join("")).toContain("no scenario file or built-in scenario `no-such-scenario`");
    const opt = io();
    expect(await main(["--frobnicate"], opt.io)).toBe(2);
    const none = io();
    expect(await main([], none.io)).toBe(2);
    expect(none.err.join("")).toContain("Usage: lvs-schedbench");
    const seed = io();
    expect(await main(["-s", good, "--seed", "x"], seed.io)).toBe(2);
  });

  it("--list names the registered schedulers and the built-in scenarios", async () => {
    const t = io();
    expect(await main(["--list"], t.io)).toBe(0);
    const text = t.out.join("");
    expect(text).toMatch(/^schedulers: rr wrr /);
    expect(text).toContain("  equal ");
    expect(text).toContain("  hetero-wrong ");
  });

  it("--pcap replays a capture's connections with a scenario's servers", async () => {
    const frames = Array.from({ length: 40 }, (_, i) => {
      const b = new Uint8Array(40);
      const v = new DataView(b.buffer);
      b[0] = 0x45;
      v.setUint16(2, 40);
      b[9] = 6;
      v.setUint32(12, parseIPv4(`203.0.113.${1 + (i % 20)}`)!);
      v.setUint32(16, parseIPv4("10.0.0.100")!);
      v.setUint16(20, 30000 + i);
      v.setUint16(22, 80);
      b[32] = 5 << 4;
      b[33] = 0x02;
      return { tMs: i * 25, data: b };
    });
    const cap = join(dir, "c.pcap");
    writeFileSync(cap, buildPcap(frames, LINKTYPE_RAW));
    const t = io();
    expect(
      await main(
        [
          "--pcap",
          cap,
          "-s",
          good,
          "--schedulers",
          "rr,sh",
          "--no-cost",
          "--no-disruption",
          "--json",
          "-",
          "-q",
        ],
        t.io,
      ),
    ).toBe(0);
    const r = JSON.parse(t.out.join("")) as Report;
    const s = r.scenarios[0]!;
    expect(s.workload.source).toBe("pcap");
    expect(s.workload.connections).toBe(40);
    expect(s.workload.pcap?.tcpSyn).toBe(40);
    expect(s.runs[0]!.servers.map((x) => x.conns).reduce((a, b) => a + b)).toBe(40);
    // sh: 20 client addresses, each always on one server.
    expect(s.runs[1]!.affinity).toBe(1);
    const truncated = join(dir, "t.pcap");
    writeFileSync(truncated, buildPcap(frames, LINKTYPE_RAW).subarray(0, 100));
    const e = io();
    expect(await main(["--pcap", truncated, "-s", good], e.io)).toBe(2);
    expect(e.err.join("")).toContain(`${truncated}: truncated packet data`);
  });
});
