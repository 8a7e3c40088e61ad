/**
 * The last resort (src/control/guard.ts): in a process of its own, an uncaught exception from a
 * timer and an unhandled rejection are logged and the process goes on; the log is bounded.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { installLastResort } from "../../src/control/guard.js";
import type { LogFields } from "../../src/control/observe/log.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("installLastResort", () => {
  it("keeps a process alive through an uncaught exception and an unhandled rejection", () => {
    const guard = pathToFileURL(join(ROOT, "dist", "src", "control", "guard.js")).href;
    const script = `
      import { installLastResort } from ${JSON.stringify(guard)};
      const lines = [];
      const log = { error: (f, m) => lines.push(f.event + ":" + f.kind + ":" + m), warn() {}, info() {}, debug() {} };
      const g = installLastResort(log);
      let ticks = 0;
      setTimeout(() => { throw new Error("bug in a callback"); }, 5);
      setTimeout(() => { Promise.reject(new Error("nobody awaited")); }, 10);
      const t = setInterval(() => {
        if (++ticks < 5) return;
        clearInterval(t);
        console.log(JSON.stringify({ lines, count: g.count, ticks }));
      }, 10);
    `;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { lines: string[]; count: number; ticks: number };
    expect(out.count).toBe(2);
    expect(out.ticks).toBe(5);
    expect(out.lines).toEqual([
      "lvsd.internal_error:exception:internal error (uncaught exception), lvsd carries on: bug in a callback",
      "lvsd.internal_error:rejection:internal error (uncaught rejection), lvsd carries on: nobody awaited",
    ]);
  });

  it("logs at most 10 errors per 10 s, then says how many it left out", () => {
    const got: LogFields[] = [];
    const keep = (f: LogFields) => got.push(f);
    let t = 0;
    const g = installLastResort({ error: keep, warn: keep, info: keep, debug: keep }, () => t);
    try {
      for (let i = 0; i < 25; i++) process.emit("uncaughtException", new Error(`e${i}`));
      t = 10_000;
      process.emit("uncaughtException", new Error("later"));
    } finally {
      g.uninstall();
    }
    expect(g.count).toBe(26);
    expect(got.map((f) => f.skipped ?? (f.error as string).split("\n")[0])).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `Error: e${i}`),
      15,
      "Error: later",
    ]);
  });
});
