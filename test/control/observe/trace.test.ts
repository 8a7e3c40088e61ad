/**
 * TraceControl (src/control/observe/trace.ts) on an in-process director with in-memory links,
 * its timer off and its clock faked: the file it writes (pcapng read back: one interface per
 * link with its name, packets with directions and wall-clock times), the count, seconds and stop
 * endings, the service filter following the service's dests, one trace at a time, the files it
 * refuses, its mode, the ring's drops reported, and the per-tick write bound.
 */
import { execFileSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run } from "../../../src/control/commands.js";
import { TraceControl } from "../../../src/control/observe/trace.js";
import { parseTraceSummaries } from "../../../src/control/trace-cmd.js";
import { Director } from "../../../src/datapath/director.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import { EPB_DIR_INBOUND, EPB_DIR_OUTBOUND, readPcapng } from "../../../src/datapath/io/pcap.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { TCP_SYN } from "../../../src/datapath/packet/view.js";
import { macToBytes } from "../../../src/lib/addr.js";
import { addNatDest, addService, IP, MAC, natEngine, tcpKey, udpKey } from "../../datapath/engine/helpers.js";

const dir = mkdtempSync(join(tmpdir(), "lvs-trace-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const newFile = () => join(dir, `t${++fileNo}.pcapng`);

/** Wall-clock ms the fake director clock starts from. */
const ORIGIN = 1_733_130_000_000;

function rig(opts: { chunkBytes?: number; ringFrames?: number; snaplen?: number } = {}) {
  const e = natEngine();
  addService(e, tcpKey());
  addNatDest(e, tcpKey(), IP.rs1, 8080);
  addService(e, udpKey());
  addNatDest(e, udpKey(), IP.rs2, 53);
  const d = new Director(e);
  const out = new MemoryLink("lvs0", macToBytes(MAC.dirOut));
  const inl = new MemoryLink("lvs1", macToBytes(MAC.dirIn));
  d.attach(out);
  d.attach(inl);
  const clock = { now: 0 };
  const events: { level: string; event: string; msg: string }[] = [];
  const log = Object.fromEntries(
    ["error", "warn", "info", "debug"].map((level) => [
      level,
      (f: { event: string }, msg: string) => events.push({ level, event: f.event, msg }),
    ]),
  ) as unknown as import("../../../src/control/observe/log.js").EventLog;
  const trace = new TraceControl({
    director: d,
    linkNames: ["lvs0", "lvs1"],
    log,
    timeOriginMs: ORIGIN,
    now: () => clock.now,
    timers: false,
    ...opts,
  });
  const target = new EngineControl(e);
  const lvsadm = (...argv: string[]) => run(argv, target, "", { trace });
  /** The client sends SYNs (and a UDP query) through the director at the fake clock's time. */
  const traffic = (n: number, sport0 = 40000) => {
    for (let k = 0; k < n; k++) {
      out.inject(
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip })
          .tcp({ sport: sport0 + k, dport: 80, flags: TCP_SYN })
          .build(),
      );
    }
    out.inject(
      eth({ src: MAC.client, dst: MAC.dirOut })
        .ipv4({ src: IP.client, dst: IP.vip })
        .udp({ sport: 5353, dport: 53 })
        .payload("q")
        .build(),
    );
    d.drain(clock.now);
    out.drain();
    inl.drain();
  };
  return { e, d, trace, lvsadm, traffic, clock, events };
}

describe("TraceControl", () => {
  it("writes a pcapng file: header and interfaces at once, packets each tick, done at the count", () => {
    const r = rig();
    const file = newFile();
    const start = r.lvsadm("--trace", file, "--count", "6");
    expect(start.stderr).toBe("");
    expect(start.code).toBe(0);
    expect(start.stdout).toBe(
      `trace 1 started: all frames on lvs0, lvs1 to ${file}, until 6 frames or 3600 s\n`,
    );
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const head = readPcapng(readFileSync(file));
    expect(head.interfaces.map((i) => i.name)).toEqual(["lvs0", "lvs1"]);
    expect(head.packets).toHaveLength(0);
    expect(r.d.tracer).not.toBeNull();

    r.clock.now = 1500.25;
    r.traffic(2); // 2 SYNs and a query in, 3 out: 6 frames
    r.trace.tick();
    expect(r.d.tracer).toBeNull(); // the count is reached and written: over
    const f = readPcapng(readFileSync(file));
    expect(f.sections[0]!.options.map((o) => Buffer.from(o.value).toString())).toEqual(["lvs-ts lvsd"]);
    expect(f.packets.map((p) => [p.ifId, p.flags])).toEqual([
      [0, EPB_DIR_INBOUND],
      [0, EPB_DIR_INBOUND],
      [0, EPB_DIR_INBOUND],
      [1, EPB_DIR_OUTBOUND],
      [1, EPB_DIR_OUTBOUND],
      [1, EPB_DIR_OUTBOUND],
    ]);
    expect(f.packets.every((p) => p.tsUs === (ORIGIN + 1500.25) * 1000)).toBe(true);
    expect(r.lvsadm("--trace-status").stdout).toBe(
      `trace 1 done (count reached): 6 frames written to ${file} (0 dropped)\n`,
    );
    expect(r.events.map((e) => [e.level, e.event])).toEqual([
      ["info", "trace.started"],
      ["info", "trace.stopped"],
    ]);
  });

  it("traces one service both ways and follows its dests as they change", () => {
    const r = rig();
    const file = newFile();
    expect(r.lvsadm("--trace", file, "-t", `${IP.vip}:80`).stdout).toMatch(
      /^trace 1 started: frames of TCP 10\.0\.0\.100:80 on lvs0, lvs1 to .*, until 10 s$/m,
    );
    r.traffic(1);
    r.trace.tick();
    // a new dest: the SYN scheduled to it must be traced on its way out too
    addNatDest(r.e, tcpKey(), IP.rs2, 9090);
    r.trace.tick();
    r.traffic(2, 41000);
    expect(r.lvsadm("--trace-stop").stdout).toMatch(
      /^trace 1 done \(lvsadm --trace-stop\): 6 frames written/,
    );
    const f = readPcapng(readFileSync(file));
    const dports = f.packets.map((p) => (p.data[36]! << 8) | p.data[37]!);
    expect(dports).toEqual([80, 8080, 80, 80, 9090, 8080]); // no UDP query
    expect(f.packets.map((p) => p.flags)).toEqual([1, 2, 1, 1, 2, 2]);
  });

  it("ends after its seconds", () => {
    const r = rig();
    const file = newFile();
    r.lvsadm("--trace", file, "--seconds", "2");
    r.clock.now = 1999;
    r.trace.tick();
    expect(r.trace.running).toBe(true);
    r.traffic(1);
    r.clock.now = 2000;
    r.trace.tick();
    expect(r.trace.running).toBe(false);
    expect(parseTraceSummaries(r.lvsadm("--trace-status").stdout)).toEqual([
      { id: 1, state: "done", reason: "2 s elapsed", frames: 4, file, dropped: 0 },
    ]);
  });

  it("runs one trace at a time and reports the running one and the last ones", () => {
    const r = rig();
    const a = newFile();
    const b = newFile();
    expect(r.lvsadm("--trace-status").stdout).toBe("no trace has run\n");
    expect(r.lvsadm("--trace-stop")).toEqual({
      stdout: "",
      stderr: "lvsadm: no trace is running\n",
      code: 1,
    });
    r.lvsadm("--trace", a);
    const second = r.lvsadm("--trace", b);
    expect(second.code).toBe(1);
    expect(second.stderr).toBe(
      `lvsadm: a trace is already running (trace 1 running: 0 frames written to ${a} (0 dropped)); lvsadm --trace-stop ends it\n`,
    );
    expect(existsSync(b)).toBe(false);
    r.lvsadm("--trace-stop");
    expect(r.lvsadm("--trace", b, "--count", "100").code).toBe(0);
    r.traffic(1);
    r.trace.tick();
    expect(r.lvsadm("--trace-status").stdout).toBe(
      `trace 2 running: 4 frames written to ${b} (0 dropped)\n` +
        `trace 1 done (lvsadm --trace-stop): 0 frames written to ${a} (0 dropped)\n`,
    );
    r.trace.close(); // lvsd stopping
    expect(r.lvsadm("--trace-status").stdout).toMatch(/^trace 2 done \(lvsd stopping\): 4 frames/);
    expect(readPcapng(readFileSync(b)).packets).toHaveLength(4);
  });

  it("refuses what it cannot trace or write, and changes nothing then", () => {
    const r = rig();
    const d = join(dir, "adir");
    mkdirSync(d);
    const link = join(dir, "alink");
    symlinkSync(join(dir, "target"), link);
    const fifo = join(dir, "afifo");
    execFileSync("mkfifo", [fifo]);
    const cases: [string[], RegExp, number][] = [
      [
        ["--trace", newFile(), "--link", "eth9"],
        /^lvsadm: --link eth9: no such link \(lvsd's links: lvs0, lvs1\)$/,
        2,
      ],
      [["--trace", newFile(), "-t", "10.9.9.9:80"], /^No such service$/, 1],
      [["--trace", d], /exists and is not a regular file; not writing to it/, 1],
      [["--trace", "/dev/null"], /exists and is not a regular file/, 1],
      [["--trace", fifo], /exists and is not a regular file/, 1],
      [["--trace", link], /exists and is not a regular file/, 1],
      [["--trace", join(dir, "no", "such", "dir.pcapng")], /ENOENT/, 1],
    ];
    for (const [argv, msg, code] of cases) {
      const res = r.lvsadm(...argv);
      expect(res.stderr.trim(), argv.join(" ")).toMatch(msg);
      expect(res.code, argv.join(" ")).toBe(code);
      expect(r.trace.running).toBe(false);
      expect(r.d.tracer).toBeNull();
    }
    expect(existsSync(join(dir, "target"))).toBe(false); // the symlink was not followed
    const rel = r.trace.start({ kind: "trace", file: "rel.pcapng", count: 0, seconds: 10, links: [] });
    expect(rel.stderr).toMatch(/must be an absolute path/);
  });

  it("truncates an existing regular file", () => {
    const r = rig();
    const file = newFile();
    writeFileSync(file, "x".repeat(100000));
    r.lvsadm("--trace", file, "--count", "1");
    r.traffic(1);
    r.trace.tick();
    const f = readPcapng(readFileSync(file));
    expect(f.packets).toHaveLength(1);
  });

  it("counts the frames a full ring could not keep, and reports them", () => {
    const r = rig({ ringFrames: 4 });
    const file = newFile();
    r.lvsadm("--trace", file, "-t", `${IP.vip}:80`);
    r.traffic(5); // 10 frames of the service between two ticks: 4 kept
    r.trace.tick();
    expect(r.lvsadm("--trace-status").stdout).toMatch(
      /^trace 1 running: 4 frames written to .* \(6 dropped\)$/m,
    );
    expect(r.lvsadm("--trace-stop").stdout).toMatch(/\(6 dropped\)\n$/);
  });

  it("writes at most a chunk per tick, and everything left when it ends", () => {
    // the chunk holds at least one frame of snaplen: 300 bytes, 2 to 3 records of 54 or 58 bytes
    const r = rig({ chunkBytes: 300, snaplen: 100 });
    const file = newFile();
    r.lvsadm("--trace", file, "-t", `${IP.vip}:80`, "--seconds", "1");
    r.traffic(5);
    r.trace.tick();
    const first = readPcapng(readFileSync(file)).packets.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(10);
    r.clock.now = 1000;
    r.trace.tick(); // the time is up: the rest is written
    expect(readPcapng(readFileSync(file)).packets).toHaveLength(10);
  });

  it("a write error ends the trace as failed, the tracer detached, the error logged", () => {
    const r = rig();
    const file = newFile();
    r.lvsadm("--trace", file, "--seconds", "60");
    // the descriptor goes bad under the trace (as a disk error would make writes fail)
    closeSync((r.trace as unknown as { session: { fd: number } }).session.fd);
    r.traffic(1);
    r.trace.tick();
    expect(r.trace.running).toBe(false);
    expect(r.d.tracer).toBeNull();
    const [s] = parseTraceSummaries(r.lvsadm("--trace-status").stdout);
    expect(s).toMatchObject({ id: 1, state: "failed", frames: 0, dropped: 4 });
    expect(s!.reason).toMatch(/^write error: EBADF/);
    expect(r.events.at(-1)).toMatchObject({ level: "error", event: "trace.failed" });
    expect(r.lvsadm("--trace", newFile(), "--count", "1").code).toBe(0); // the next one runs
  });

  it("with tcpdump: reads the file", (ctx) => {
    if (!existsSync("/usr/bin/tcpdump") && !existsSync("/usr/sbin/tcpdump")) ctx.skip("needs tcpdump");
    const r = rig();
    const file = newFile();
    r.lvsadm("--trace", file, "--count", "4");
    r.traffic(1);
    r.trace.tick();
    const out = execFileSync("tcpdump", ["-nn", "-r", file], { encoding: "utf8", stdio: "pipe" });
    const lines = out.trim().split("\n");
    expect(lines).toHaveLength(4);
    expect(out).toMatch(/10\.0\.0\.7\.40000 > 10\.0\.0\.100\.80: Flags \[S\]/);
    expect(out).toMatch(/10\.0\.0\.7\.40000 > 192\.168\.10\.1\.8080: Flags \[S\]/);
  });
});
