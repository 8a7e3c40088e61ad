/**
 * lvsadm's packet-trace command lines (src/control/trace-cmd.ts, through ipvsadm.ts's parseArgs
 * and commands.ts's run): what they parse to, ipvsadm-style refusals and exit statuses, --trace
 * refused inside a restore, the argv lvsadm sends lvsd, the status lines both sides read, and
 * which commands the control server logs as changes.
 */
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { run, usageText } from "../../../src/control/commands.js";
import { parseArgs } from "../../../src/control/ipvsadm.js";
import { isChange } from "../../../src/control/server.js";
import {
  finalLine,
  formatTraceSummary,
  parseTraceSummaries,
  startedId,
  TRACE_DEFAULT_SECONDS,
  TRACE_MAX_SECONDS,
  type TraceControlApi,
  type TraceStart,
  traceArgv,
} from "../../../src/control/trace-cmd.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { fakeTarget, ip, TEST_SERVICES } from "../fake.js";

const OPTS = { services: TEST_SERVICES };
const parse = (...argv: string[]) => parseArgs(argv, OPTS);

function cmdOf(...argv: string[]) {
  const r = parse(...argv);
  if (!r.ok) throw new Error(`refused: ${r.error.message}`);
  return r.cmd;
}

function refusal(...argv: string[]) {
  const r = parse(...argv);
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(r.cmd)}`);
  return r.error;
}

describe("lvsadm --trace parsing", () => {
  it("takes FILE (made absolute), the limits, a service and links", () => {
    expect(cmdOf("--trace", "t.pcapng")).toEqual({
      kind: "trace",
      file: resolve("t.pcapng"),
      count: 0,
      seconds: TRACE_DEFAULT_SECONDS,
      links: [],
    });
    expect(cmdOf("--trace", "/tmp/a.pcapng", "--count", "20", "-t", "10.0.0.100:80")).toEqual({
      kind: "trace",
      file: "/tmp/a.pcapng",
      count: 20,
      seconds: TRACE_MAX_SECONDS, // until the count, bounded
      svc: { proto: IPPROTO_TCP, addr: ip("10.0.0.100"), port: 80 },
      links: [],
    });
    expect(
      cmdOf(
        "--trace=/tmp/b",
        "--seconds=5",
        "--udp-service=10.0.0.100:domain",
        "--link",
        "lvs0,lvs1",
        "--link=lvs0",
      ),
    ).toEqual({
      kind: "trace",
      file: "/tmp/b",
      count: 0,
      seconds: 5,
      svc: { proto: IPPROTO_UDP, addr: ip("10.0.0.100"), port: 53 },
      links: ["lvs0", "lvs1"],
    });
    expect(cmdOf("--trace", "/tmp/c", "-f", "7", "--count", "3", "--seconds", "60")).toMatchObject({
      count: 3,
      seconds: 60,
      svc: { fwmark: 7 },
    });
    expect(cmdOf("--trace", "/tmp/c", "-t10.0.0.1:80")).toMatchObject({ svc: { port: 80 } });
    expect(cmdOf("--trace-status")).toEqual({ kind: "trace-status" });
    expect(cmdOf("--trace-stop")).toEqual({ kind: "trace-stop" });
  });

  it("refuses bad options with ipvsadm's kind of message and status", () => {
    const cases: [string[], RegExp, number][] = [
      [["--trace"], /--trace needs a file to write/, 2],
      [["--trace", "--count", "5"], /not the option '--count'/, 2],
      [["--trace", "f", "--count", "0"], /^invalid count value `0' specified/, 2],
      [["--trace", "f", "--count", "x"], /^invalid count value `x' specified/, 2],
      [["--trace", "f", "--seconds", "3601"], /^invalid seconds value `3601' specified \(1 to 3600\)/, 2],
      [["--trace", "f", "--seconds", "1.5"], /^invalid seconds value/, 2],
      [["--trace", "f", "--count", "1", "--count", "2"], /^multiple 'count' options specified$/, 2],
      [["--trace", "f", "--count"], /^--count: missing argument$/, 255],
      [["--trace", "f", "-t"], /^-t: missing argument$/, 255],
      [["--trace", "f", "--nope"], /^--nope: unknown option$/, 255],
      [["--trace", "f", "g"], /^unexpected argument g$/, 2],
      [["--trace", "f", "-t", "10.0.0.300:80"], /^illegal virtual server address\[:port\] specified$/, 2],
      [["--trace", "f", "-t", "10.0.0.1:80", "-u", "10.0.0.1:53"], /multiple 'service-address'/, 2],
      [["--trace", "f", "--link", ","], /--link needs link names/, 2],
      [["--trace-status", "-n"], /--trace-status takes no other option/, 2],
      [["--trace-stop=now"], /option does not take an argument/, 255],
    ];
    for (const [argv, msg, code] of cases) {
      const e = refusal(...argv);
      expect(e.message, argv.join(" ")).toMatch(msg);
      expect(e.code, argv.join(" ")).toBe(code);
    }
  });

  it("is refused inside a restore (-R), and the restore goes on to report it", () => {
    const e = parseArgs(["--trace", "/tmp/x"], { ...OPTS, inRestore: true });
    expect(e.ok).toBe(false);
    if (!e.ok) expect(e.error.message).toBe("lvsadm: --trace cannot be used inside a restore (-R)");
    const t = fakeTarget();
    const r = run(["-R"], t, "-A -t 10.0.0.1:80\n--trace /tmp/x\n-A -t 10.0.0.2:80\n", OPTS);
    expect(r.stderr).toBe("lvsadm: --trace cannot be used inside a restore (-R)\n");
    expect(r.code).toBe(2);
    expect(t.table.list()).toHaveLength(1); // the error is fatal, as ipvsadm's fail() ends a restore
  });

  it("sends lvsd an explicit argv that parses back to the same command", () => {
    const c = cmdOf(
      "--trace",
      "rel.pcapng",
      "--count",
      "9",
      "-u",
      "10.0.0.100:53",
      "--link",
      "b,a",
    ) as TraceStart;
    const argv = traceArgv(c);
    expect(argv).toEqual([
      "--trace",
      resolve("rel.pcapng"),
      "--count",
      "9",
      "--seconds",
      "3600",
      "-u",
      "10.0.0.100:53",
      "--link",
      "b,a",
    ]);
    expect(cmdOf(...argv)).toEqual(c);
    const f = cmdOf("--trace", "/x", "-f", "12") as TraceStart;
    expect(cmdOf(...traceArgv(f))).toEqual(f);
  });
});

describe("running the trace commands", () => {
  function fakeTrace(): TraceControlApi & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      start: (c) => {
        calls.push(`start ${c.file}`);
        return { stdout: "trace 1 started: ...\n", stderr: "", code: 0 };
      },
      status: () => {
        calls.push("status");
        return { stdout: "no trace has run\n", stderr: "", code: 0 };
      },
      stop: () => {
        calls.push("stop");
        return { stdout: "", stderr: "lvsadm: no trace is running\n", code: 1 };
      },
    };
  }

  it("goes to lvsd's TraceControl, or says this lvsd has none", () => {
    const t = fakeTarget();
    const trace = fakeTrace();
    expect(run(["--trace", "/tmp/f"], t, "", { ...OPTS, trace }).code).toBe(0);
    expect(run(["--trace-status"], t, "", { ...OPTS, trace }).stdout).toBe("no trace has run\n");
    expect(run(["--trace-stop"], t, "", { ...OPTS, trace }).code).toBe(1);
    expect(trace.calls).toEqual(["start /tmp/f", "status", "stop"]);
    expect(run(["--trace-status"], t, "", OPTS)).toEqual({
      stdout: "",
      stderr: "lvsadm: --trace-status: this lvsd cannot trace packets\n",
      code: 1,
    });
  });

  it("status is a read for the command log; --trace and --trace-stop are changes", () => {
    expect(isChange(["--trace-status"], OPTS)).toBe(false);
    expect(isChange(["--trace", "/tmp/f", "--count", "5"], OPTS)).toBe(true);
    expect(isChange(["--trace-stop"], OPTS)).toBe(true);
    expect(isChange(["--trace", "/tmp/f", "--count", "x"], OPTS)).toBe(true); // refused, still an attempt
  });

  it("--help lists the trace options", () => {
    const h = usageText();
    expect(h).toMatch(/--trace FILE \[--count N\] \[--seconds S\]/);
    expect(h).toMatch(/--trace-status/);
    expect(h).toMatch(/--trace-stop/);
  });
});

describe("trace status lines", () => {
  it("format and parse back, file names with blanks and parentheses included", () => {
    const s = {
      id: 12,
      state: "done" as const,
      frames: 1,
      dropped: 3,
      file: "/tmp/my trace (1).pcapng",
      reason: "count reached",
    };
    const line = formatTraceSummary(s);
    expect(line).toBe(
      "trace 12 done (count reached): 1 frame written to /tmp/my trace (1).pcapng (3 dropped)",
    );
    const running = { ...s, id: 13, state: "running" as const, frames: 100, reason: "" };
    expect(formatTraceSummary(running)).toBe(
      "trace 13 running: 100 frames written to /tmp/my trace (1).pcapng (3 dropped)",
    );
    expect(parseTraceSummaries(`${formatTraceSummary(running)}\n${line}\n`)).toEqual([running, s]);
    expect(finalLine(running)).toBe("lvsadm: 100 frames written to /tmp/my trace (1).pcapng (3 dropped)");
    expect(startedId("trace 7 started: all frames on a to /x, until 10 s\n")).toBe(7);
    expect(startedId("nope")).toBeUndefined();
  });
});
