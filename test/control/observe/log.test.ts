/**
 * lvsd's logger (src/control/observe/log.ts): the JSON line's shape, levels, silent, the pretty
 * lines, the adapters; and, in a child process, that both modes write synchronously (a line
 * logged just before process.exit is there) without starting a thread.
 */

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  createLogger,
  type EventLog,
  isLogLevel,
  LOG_LEVELS,
  type LogLevel,
  lineLog,
  prettyLines,
  textLog,
} from "../../../src/control/observe/log.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

function collect(
  level?: LogLevel,
  pretty = false,
): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const log = createLogger({
    ...(level ? { level } : {}),
    pretty,
    destination: { write: (s: string) => lines.push(s) },
  });
  return { lines, log };
}

/** An ANSI colour escape (ESC [). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[`);

describe("JSON lines", () => {
  it("one line per event: level label, time, pid, hostname, name, the fields, msg last", () => {
    const { lines, log } = collect();
    const before = Date.now();
    log.info({ event: "link.opened", link: 0, ifname: "t0", addrs: ["10.0.0.1/24"] }, "link 0: tap t0");
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line.endsWith("}\n")).toBe(true);
    expect(line.indexOf("\n")).toBe(line.length - 1);
    const o = JSON.parse(line) as Record<string, unknown>;
    expect(Object.keys(o)).toEqual([
      "level",
      "time",
      "pid",
      "hostname",
      "name",
      "event",
      "link",
      "ifname",
      "addrs",
      "msg",
    ]);
    expect(o).toMatchObject({
      level: "info",
      pid: process.pid,
      name: "lvsd",
      event: "link.opened",
      link: 0,
      ifname: "t0",
      addrs: ["10.0.0.1/24"],
      msg: "link 0: tap t0",
    });
    expect(typeof o["hostname"]).toBe("string");
    expect(o["time"]).toBeGreaterThanOrEqual(before);
    expect(o["time"]).toBeLessThanOrEqual(Date.now());
    // the message ends the line, so `"msg":"TEXT"}` matches a whole message
    expect(line.endsWith(`"msg":"link 0: tap t0"}\n`)).toBe(true);
  });

  it("escapes what JSON must and nothing else", () => {
    const { lines, log } = collect();
    log.warn({ event: "x", error: 'a "b"\nc' }, "weight 5 -> 10: <ok> & done");
    expect(lines[0]).toContain(`"error":"a \\"b\\"\\nc"`);
    expect(lines[0]).toContain(`"msg":"weight 5 -> 10: <ok> & done"}`);
  });

  it("the default level is info: debug and trace are left out", () => {
    const { lines, log } = collect();
    log.trace({ event: "t" }, "t");
    log.debug({ event: "d" }, "d");
    log.info({ event: "i" }, "i");
    log.warn({ event: "w" }, "w");
    log.error({ event: "e" }, "e");
    log.fatal({ event: "f" }, "f");
    expect(lines.map((l) => (JSON.parse(l) as { level: string }).level)).toEqual([
      "info",
      "warn",
      "error",
      "fatal",
    ]);
  });

  it.each(LOG_LEVELS.map((l, i) => [l, i] as const))(
    "--log-level %s logs that level and above",
    (level, i) => {
      const { lines, log } = collect(level);
      const order = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
      for (const l of [...order].reverse()) log[l]({ event: l }, l);
      const want = level === "silent" ? [] : order.slice(0, i + 1).reverse();
      expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(want);
    },
  );

  it("silent logs nothing at all, not even fatal", () => {
    const { lines, log } = collect("silent");
    log.fatal({ event: "lvsd.start_failed" }, "no");
    log.error({ event: "x" }, "no");
    expect(lines).toEqual([]);
  });

  it("knows its levels", () => {
    expect(LOG_LEVELS).toEqual(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);
    expect(isLogLevel("debug")).toBe(true);
    expect(isLogLevel("verbose")).toBe(false);
    expect(isLogLevel("INFO")).toBe(false);
  });
});

describe("pretty lines", () => {
  it("are one readable line per event: time, level, name, message, then the fields", () => {
    const { lines, log } = collect(undefined, true);
    log.warn(
      { event: "health.dest.down", dest: "192.168.10.2:80", weight: null },
      "health: TCP 10.0.0.1:80 192.168.10.2:80 down: refused; out of the pool",
    );
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN \(lvsd\): health: TCP 10\.0\.0\.1:80 192\.168\.10\.2:80 down: refused; out of the pool \{"event":"health\.dest\.down","dest":"192\.168\.10\.2:80","weight":null\}\n$/,
    );
    expect(line).not.toMatch(ANSI);
    expect(line).not.toContain('"level"');
    expect(line).not.toContain('"pid"');
    expect(line).not.toContain('"hostname"');
  });

  it("show the local time of day", () => {
    const { lines, log } = collect(undefined, true);
    const hm = (d: Date) =>
      `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
    const before = hm(new Date());
    log.info({ event: "x" }, "x");
    const after = hm(new Date());
    expect([before, after]).toContain(lines[0]!.slice(1, 6));
  });

  it("honour the level too, and colour only when asked", () => {
    const { lines, log } = collect("warn", true);
    log.info({ event: "i" }, "i");
    log.error({ event: "e" }, "e");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("ERROR (lvsd): e");
    const c = prettyLines(true)(`${JSON.stringify({ level: "info", time: 0, name: "lvsd", msg: "m" })}\n`);
    expect(c).toMatch(ANSI);
  });

  it("prettyLines reads a saved JSON line", () => {
    const json = `${JSON.stringify({ level: "info", time: 0, pid: 1, hostname: "h", name: "lvsd", event: "e", msg: "m" })}\n`;
    expect(prettyLines()(json)).toMatch(/^\[\d\d:\d\d:\d\d\.000\] INFO \(lvsd\): m \{"event":"e"\}\n$/);
  });
});

describe("adapters", () => {
  it("lineLog turns text lines into events", () => {
    const { lines, log } = collect();
    const write = lineLog(log, "http.error", "error", { component: "http" });
    write("http: /metrics: boom");
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: "error",
      event: "http.error",
      component: "http",
      msg: "http: /metrics: boom",
    });
    lineLog(log, "x.info")("plain");
    expect(JSON.parse(lines[1]!)).toMatchObject({ level: "info", event: "x.info", msg: "plain" });
  });

  it("textLog passes messages on without their fields, and leaves debug out", () => {
    const got: string[] = [];
    const ev: EventLog = textLog((m) => got.push(m));
    ev.info({ event: "a", x: 1 }, "one");
    ev.warn({ event: "b" }, "two");
    ev.error({ event: "c" }, "three");
    ev.debug({ event: "d" }, "four");
    expect(got).toEqual(["one", "two", "three"]);
  });
});

// The compiled module (npm run build), as lvsd runs it.
const BUILT = join(ROOT, "dist", "src", "control", "observe", "log.js");
const built = existsSync(BUILT);
if (!built) console.warn("skipping the process-level logger tests: run npm run build first");

describe.skipIf(!built).each([
  ["JSON", false],
  ["pretty", true],
])("%s mode in a process", (_name, pretty) => {
  it("writes synchronously to stderr: the line before process.exit is there, and no thread was started", () => {
    const script = `
      import { readdirSync } from "node:fs";
      import { createLogger } from ${JSON.stringify(BUILT)};
      const threads = () => readdirSync("/proc/self/task").length;
      const before = threads();
      const log = createLogger({ pretty: ${pretty}, level: "debug" });
      for (let i = 0; i < 200; i++) log.debug({ event: "fill", i, pad: "x".repeat(200) }, "fill " + i);
      log.info({ event: "lvsd.stopped", threads: threads() - before }, "stopped");
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(201);
    const last = lines.at(-1)!;
    if (pretty) {
      expect(last).toMatch(/INFO \(lvsd\): stopped \{"event":"lvsd\.stopped","threads":0\}$/);
    } else {
      expect(JSON.parse(last)).toMatchObject({ event: "lvsd.stopped", msg: "stopped", threads: 0 });
    }
  });
});
