import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseIPv4 } from "../../../src/tools/schedbench/addr.js";
import {
  builtinName,
  builtinScenarioFiles,
  resolveScenarioArg,
} from "../../../src/tools/schedbench/paths.js";
import {
  DEFAULTS,
  loadScenario,
  parseScenario,
  parseTime,
  ScenarioError,
  type ScenarioIssue,
} from "../../../src/tools/schedbench/scenario.js";
import { dests, scenario } from "./helpers.js";

/** The issues of a text that must fail to parse. */
function issues(text: string, file = "bad.scn"): ScenarioIssue[] {
  try {
    parseScenario(text, file);
  } catch (e) {
    expect(e).toBeInstanceOf(ScenarioError);
    return [...(e as ScenarioError).issues];
  }
  throw new Error("expected a ScenarioError");
}

const MINIMAL = ["duration 10s", "rate 100", "clients all 10.1.0.0/16 count 100", ...dests(2)];

describe("scenario files", () => {
  it("every built-in scenario parses, with a distinct name", () => {
    const files = builtinScenarioFiles();
    expect(files.length).toBeGreaterThanOrEqual(6);
    const names = new Set<string>();
    for (const f of files) {
      const s = loadScenario(f);
      expect(s.name).toBe(builtinName(f));
      expect(s.dests.length).toBeGreaterThan(0);
      names.add(s.name);
    }
    expect(names.size).toBe(files.length);
    expect(resolveScenarioArg("equal")).toMatch(/01-equal\.scn$/);
    expect(resolveScenarioArg("no-such-scenario")).toBeUndefined();
  });

  it("parses every directive and applies defaults", () => {
    const s = scenario(
      "# comment",
      "name demo   # trailing comment",
      "title A demo: two servers # not part of the title",
      "seed 9",
      "duration 1.5m",
      "warmup 500ms",
      "connections 1000",
      "rate 250.5",
      "proto udp",
      "vip 10.9.9.9:53",
      "linger 0s",
      "cost lognormal 10ms 0.5",
      "bytes per-ms 100",
      "clients a 10.1.0.0/16 count 100 share 2 zipf 1.1",
      "clients b 10.2.0.0/24 count 10",
      "targets 198.18.0.0/24 count 200 zipf 0.5",
      "persistence 300s mask 255.255.255.0 expire-quiescent",
      "cache 100 miss 3",
      "schedflags sh-fallback,mh-port",
      "estimator 1s",
      "backlog 64",
      "dest a 192.168.10.1 weight 3 slots 2 speed 1.5 uthreshold 100 lthreshold 50",
      "dest b 192.168.10.2:5353 backlog 10",
      "at 10s rate 500",
      "at 1s share b 3",
      "at 20s fail a detect 2s inhibit",
      "at 30s recover a detect 1s",
      "at 40s weight b 0",
      "at 50s add c 192.168.10.3 weight 2",
      "at 60s remove b",
    );
    expect(s.name).toBe("demo");
    expect(s.title).toBe("A demo: two servers");
    expect(s.seed).toBe(9);
    expect(s.durationMs).toBe(90_000);
    expect(s.warmupMs).toBe(500);
    expect(s.maxConns).toBe(1000);
    expect(s.rate).toBe(250.5);
    expect(s.proto).toBe("udp");
    expect([s.vipAddr, s.vipPort]).toEqual([parseIPv4("10.9.9.9"), 53]);
    expect(s.lingerMs).toBe(0);
    expect(s.cost).toEqual({ kind: "lognormal", median: 10, sigma: 0.5 });
    expect(s.bytes).toEqual({ kind: "per-ms", perMs: 100 });
    expect(s.clients.map((c) => [c.name, c.count, c.share, c.zipf])).toEqual([
      ["a", 100, 2, 1.1],
      ["b", 10, 1, 0],
    ]);
    expect(s.targets).toMatchObject({ count: 200, zipf: 0.5, prefixLen: 24 });
    expect(s.persistence).toEqual({ timeoutMs: 300_000, mask: 0xffffff00, expireQuiescent: true });
    expect(s.cache).toEqual({ size: 100, missFactor: 3 });
    expect(s.schedFlags).toEqual(["sh-fallback", "mh-port"]);
    expect(s.estimatorMs).toBe(1000);
    expect(s.dests[0]).toMatchObject({
      name: "a",
      port: 53,
      weight: 3,
      slots: 2,
      speed: 1.5,
      backlog: 64,
      uThreshold: 100,
      lThreshold: 50,
    });
    expect(s.dests[1]).toMatchObject({
      name: "b",
      port: 5353,
      weight: DEFAULTS.weight,
      slots: DEFAULTS.slots,
      backlog: 10,
    });
    // Events are sorted by time.
    expect(s.events.map((e) => e.kind)).toEqual([
      "share",
      "rate",
      "fail",
      "recover",
      "weight",
      "add",
      "remove",
    ]);
    expect(s.events[2]).toMatchObject({ kind: "fail", dest: "a", detectMs: 2000, inhibit: true, line: 26 });
  });

  it("defaults: name from the file, tcp, VIP 10.0.0.100:80, exp 20 ms cost", () => {
    const s = parseScenario(MINIMAL.join("\n"), "dir/my-test.scn");
    expect(s.name).toBe("my-test");
    expect(s.title).toBe("my-test");
    expect(s.proto).toBe("tcp");
    expect(s.vipPort).toBe(80);
    expect(s.cost).toEqual({ kind: "exp", mean: 20 });
    expect(s.persistence).toBeNull();
    expect(s.lingerMs).toBe(DEFAULTS.lingerMs);
  });

  it("parseTime accepts units and refuses bare numbers", () => {
    expect(parseTime("250us")).toBe(0.25);
    expect(parseTime("2h")).toBe(7_200_000);
    expect(parseTime("10")).toBeUndefined();
    expect(parseTime("-1s")).toBeUndefined();
    expect(parseTime("1.s")).toBeUndefined();
  });
});

describe("scenario errors: file, line and message", () => {
  it("an unknown directive names the line and suggests the closest one", () => {
    const text = [
      "duration 10s",
      "rate 100",
      "clients all 10.1.0.0/16 count 100",
      "dset s1 192.168.10.1",
    ].join("\n");
    const e = (() => {
      try {
        parseScenario(text, "scenarios/x.scn");
      } catch (err) {
        return err as ScenarioError;
      }
      throw new Error("no error");
    })();
    expect(e.code).toBe("SCENARIO_INVALID");
    expect(e.file).toBe("scenarios/x.scn");
    expect(e.issues).toContainEqual({
      line: 4,
      message: expect.stringContaining("unknown directive `dset` (did you mean `dest`?)"),
    });
    // The message lists file:line for each issue, and file alone for whole-file problems.
    expect(e.message).toContain("scenarios/x.scn:4: unknown directive `dset`");
    expect(e.message).toContain("scenarios/x.scn: missing `dest`");
  });

  it("reports every problem in one pass, sorted by line", () => {
    const got = issues(
      [
        "duration 10", // 1: bare number
        "rate fast", // 2
        "clients all 10.1.0.1/16 count 100", // 3: host bits
        "dest s1 192.168.10.1 weight 70000", // 4
        "dest s2 192.168.10.300", // 5
        "dest s3 192.168.10.3 slots 0 speed 2", // 6
        "rate 5", // 7: duplicate
        "at 5s fail s9", // 8: unknown dest
        "cost gamma 3ms", // 9
      ].join("\n"),
    );
    expect(got.map((i) => i.line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(got[0]!.message).toBe("duration must be a time such as 500ms, 30s or 2m, got `10`");
    expect(got[1]!.message).toContain("rate (new connections per second) must be a number");
    expect(got[2]!.message).toContain("has host bits set");
    expect(got[3]!.message).toBe("dest s1: weight must be an integer 0..65535, got `70000`");
    expect(got[4]!.message).toContain("dest address must be ADDRESS[:PORT]");
    expect(got[5]!.message).toBe("dest s3: slots must be an integer 1..1000000, got `0`");
    expect(got[6]!.message).toBe("duplicate `rate` (first given on line 2)");
    expect(got[7]!.message).toBe("fail: no dest `s9`");
    expect(got[8]!.message).toContain("unknown cost distribution `gamma`");
  });

  it("whole-file problems have line 0", () => {
    const got = issues("seed 1");
    expect(got.map((i) => i.message)).toEqual([
      "missing `rate` (new connections per second)",
      "missing `duration` (or `connections`): the run needs an end",
      "missing `clients` (at least one population)",
      "missing `dest` (at least one real server)",
    ]);
    expect(got.every((i) => i.line === 0)).toBe(true);
  });

  it("checks the life cycle of dests across events", () => {
    const got = issues(
      [
        ...MINIMAL, // lines 1..5
        "at 2s recover s1", // 6: has not failed
        "at 3s fail s1", // 7
        "at 4s fail s1", // 8: already failed
        "at 5s remove s2", // 9
        "at 6s weight s2 3", // 10: removed
        "at 7s add s1 192.168.10.9", // 11: still in the service (failed)
        "at 8s add s3 192.168.10.1", // 12: s1's address
        "at 20s rate 5", // 13: after the end
      ].join("\n"),
    );
    expect(got).toEqual([
      { line: 6, message: "recover: dest `s1` has not failed" },
      { line: 8, message: "fail: dest `s1` is failed" },
      { line: 10, message: "weight: dest `s2` was removed" },
      { line: 11, message: "add: dest `s1` is already in the service" },
      { line: 12, message: "dest s3: same address and port as dest s1" },
      { line: 13, message: "event at 20000 ms is not before the end of arrivals (duration 10000 ms)" },
    ]);
  });

  it("option errors name the option", () => {
    expect(issues([...MINIMAL, "persistence 10s mask 255.0.255.0"].join("\n"))[0]!.message).toContain(
      "persistence mask must be a netmask",
    );
    expect(issues([...MINIMAL, "schedflags sh-fallbak"].join("\n"))[0]!.message).toContain(
      "unknown flag `sh-fallbak`",
    );
    expect(issues([...MINIMAL, "dest s9 192.168.10.9 weigth 2"].join("\n"))[0]).toEqual({
      line: 6,
      message:
        "dest s9: unknown option `weigth` (expected weight, slots, speed, backlog, uthreshold, lthreshold)",
    });
    expect(
      issues([...MINIMAL, "dest s9 192.168.10.9 uthreshold 5 lthreshold 9"].join("\n"))[0]!.message,
    ).toBe("dest s9: lthreshold 9 is above uthreshold 5");
    expect(issues([...MINIMAL, "proto sctp"].join("\n"))[0]!.message).toBe(
      "proto must be tcp or udp, got `sctp`",
    );
    expect(issues([...MINIMAL, "vip 10.0.0.1:80 extra"].join("\n"))[0]!.message).toBe(
      "`vip`: unexpected `extra`",
    );
    expect(issues([...MINIMAL, "clients hot 10.2.0.0/29 count 10"].join("\n"))[0]!.message).toContain(
      "do not fit in a /29",
    );
  });

  it("pcap scenarios may not set rate or clients", () => {
    const got = issues(["pcap x.pcap", "rate 10", ...dests(1)].join("\n"));
    expect(got).toEqual([
      { line: 2, message: "`rate` cannot be combined with `pcap` (arrivals come from the capture)" },
    ]);
    const s = parseScenario(["pcap cap/x.pcap", ...dests(1)].join("\n"), "/tmp/a/b.scn");
    expect(s.pcap).toBe("/tmp/a/cap/x.pcap");
  });

  it("an unreadable file is a ScenarioError naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "schedbench-"));
    expect(() => loadScenario(join(dir, "missing.scn"))).toThrow(/missing\.scn: cannot read: ENOENT/);
    const f = join(dir, "ok.scn");
    writeFileSync(f, MINIMAL.join("\n"));
    expect(loadScenario(f).name).toBe("ok");
  });
});
