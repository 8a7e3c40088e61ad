/**
 * issue 11, "Scale": a keepalived.conf of 25,612 virtual servers (5.6 MB, 51,224 checkers; see
 * keepalived-scale-conf.ts), loaded by lvsd and by keepalived, and lvsadm -Ln while all its
 * checks fail at once.
 *
 * - load: each run is a fresh process, as at lvsd's start (a cold JIT): `keepalived -t -f FILE`
 *   (Debian's keepalived 2.2, when installed) against lvsd's load path (parseConfigFile, then
 *   HealthManager.apply to an Engine's table of lvsd's default size), alternated, same run; and
 *   `lvsd --config-test --config FILE` (the whole process, like keepalived -t). At 1/4, 1/2 and
 *   all of the file, to show the load is linear.
 * - checks: an lvsd-like process (Engine, HealthManager, the control server on a Unix socket)
 *   loads the file with every real server on a closed port of a 127/8 address, so each check
 *   fails (connection refused), is retried once, and the server goes down: 51,224 transitions,
 *   each one a table change and a log line. Meanwhile this process runs `lvsadm -Ln` (the native
 *   client when built, else the Node.js one) back to back and times each until every transition
 *   is done. Also: when the first probe of each checker ran (keepalived spreads them over the
 *   delay_loop), and the event loop's longest stall. Paced (lvsd's) and unpaced (every due
 *   timer and finished probe handled as it comes, what lvsd did before) in the same run.
 *
 * `npm run build && node dist/bench/keepalived-scale.bench.js [--runs N] [--services N]
 * [--delay-loop S] [--only load|checks]`.
 */

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { EngineControl } from "../src/control/adapter.js";
import { parseConfigFile } from "../src/control/config/parser.js";
import type { CheckerConfig } from "../src/control/config/types.js";
import { type CheckerClock, SYSTEM_CLOCK } from "../src/control/health/checker.js";
import { probe as realProbe } from "../src/control/health/index.js";
import { HealthManager } from "../src/control/health/manager.js";
import { startControlServer } from "../src/control/server.js";
import { Engine } from "../src/datapath/engine.js";
import { scaleConf } from "./keepalived-scale-conf.js";

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = join(HERE, "..", "..");
const KEEPALIVED = "/usr/sbin/keepalived";
const LVSD_JS = join(HERE, "..", "src", "tools", "cli", "lvsd.js"); // what bin/lvsd runs

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

function wall(cmd: string, args: string[]): { ms: number; code: number | null; stderr: string } {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  return { ms: performance.now() - t0, code: r.status, stderr: r.stderr ?? "" };
}

// ---- child: lvsd's load path in a fresh process ----

function childLoad(file: string): void {
  const t0 = performance.now();
  const cfg = parseConfigFile(file);
  const t1 = performance.now();
  const engine = new Engine({}); // lvsd's default table sizes
  const h = new HealthManager(engine.table, { log: () => {} });
  h.apply(cfg);
  const t2 = performance.now();
  // a SIGHUP with the same file: parse again, match everything, change nothing
  h.apply(parseConfigFile(file));
  const t3 = performance.now();
  process.stdout.write(
    `${JSON.stringify({ parseMs: t1 - t0, applyMs: t2 - t1, reloadMs: t3 - t2, services: engine.table.list().length })}\n`,
  );
}

// ---- child: an lvsd-like process whose checks all fail ----

async function childChecks(file: string, sock: string, paced: boolean): Promise<void> {
  const engine = new Engine({});
  const firstAt = new Map<CheckerConfig, number>();
  let t0 = 0;
  // the clock without `defer`: every due timer and finished probe handled as it comes
  const { defer: _defer, ...unpaced } = SYSTEM_CLOCK;
  const clock: CheckerClock = paced ? SYSTEM_CLOCK : unpaced;
  const h = new HealthManager(engine.table, {
    log: () => {},
    clock,
    probe: (c, signal) => {
      if (!firstAt.has(c)) firstAt.set(c, performance.now() - t0);
      return realProbe(c, signal);
    },
  });
  const loadStart = performance.now();
  const r = h.loadFile(file);
  if (!r.ok) throw new Error(r.error);
  const loadMs = performance.now() - loadStart;
  const control = await startControlServer(sock, new EngineControl(engine), { health: h });
  const checks = h.snapshot().virtualServers.reduce((n, v) => n + v.realServers.length, 0);
  const el = monitorEventLoopDelay({ resolution: 10 });
  el.enable();
  t0 = performance.now();
  h.start();
  const say = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
  say({ ready: true, loadMs, checks });
  let doneAt: number | undefined;
  const tick = setInterval(() => {
    const t = performance.now() - t0;
    if (doneAt === undefined && h.counters.downs >= checks) doneAt = t;
    say({ t, downs: h.counters.downs, probes: h.counters.probes, queued: h.pacer.pending });
  }, 500);
  process.on("SIGTERM", () => {
    clearInterval(tick);
    el.disable();
    h.stop();
    const firsts = [...firstAt.values()].sort((a, b) => a - b);
    say({
      end: true,
      doneAt,
      downs: h.counters.downs,
      firstChecks: firsts.length,
      firstSpanMs: [firsts[0] ?? 0, firsts[firsts.length - 1] ?? 0],
      firstDeciles: [0.1, 0.5, 0.9].map((q) => firsts[Math.floor(q * (firsts.length - 1))] ?? 0),
      loopDelayMaxMs: el.max / 1e6,
      loopDelayP99Ms: el.percentile(99) / 1e6,
      maxJobsPerTurn: h.pacer.maxJobsPerTurn,
      pacedTurns: h.pacer.turns,
    });
    void control.close().then(() => process.exit(0));
  });
}

// ---- parent ----

function lvsadmCommand(sock: string): { cmd: string; args: string[]; which: string } {
  const native = join(ROOT, "build", "Release", "lvsadm");
  if (existsSync(native)) return { cmd: native, args: ["--control", sock, "-Ln"], which: "native" };
  return {
    cmd: process.execPath,
    args: [join(ROOT, "bin", "lvsadm"), "--control", sock, "-Ln"],
    which: "node",
  };
}

function runLvsadm(c: {
  cmd: string;
  args: string[];
}): Promise<{ ms: number; bytes: number; code: number | null }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const p = spawn(c.cmd, c.args, { stdio: ["ignore", "pipe", "ignore"] });
    let bytes = 0;
    p.stdout.on("data", (b: Buffer) => {
      bytes += b.length;
    });
    p.on("close", (code) => resolve({ ms: performance.now() - t0, bytes, code }));
  });
}

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "0.0.0.0", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface ChecksResult {
  paced: boolean;
  lvsadm: string;
  loadMs: number;
  checks: number;
  lnMs: number[];
  lnBytes: number;
  lnDuringMs: number[];
  lnAfterMs: number[];
  end: Record<string, unknown>;
}

async function checksRun(
  dir: string,
  services: number,
  delayLoop: number,
  paced: boolean,
): Promise<ChecksResult> {
  const port = await closedPort();
  const file = join(dir, `checks-${paced ? "paced" : "unpaced"}.conf`);
  writeFileSync(file, scaleConf({ services, realBase: "127.1.0.1", realPort: port, delayLoop }));
  const sock = join(dir, `ctl-${paced ? "p" : "u"}.sock`);
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), "--child", "checks", file, sock, paced ? "paced" : "unpaced"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines: Record<string, unknown>[] = [];
  let buf = "";
  const waiters: (() => void)[] = [];
  child.stdout.on("data", (b: Buffer) => {
    buf += b.toString();
    for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
      lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
      for (const w of waiters.splice(0)) w();
    }
  });
  const waitFor = async (pred: (o: Record<string, unknown>) => boolean, ms: number) => {
    const end = performance.now() + ms;
    for (;;) {
      const hit = lines.find(pred);
      if (hit) return hit;
      if (performance.now() > end) throw new Error("timed out waiting for the child");
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  const ready = await waitFor((o) => o.ready === true, 120_000);
  const checks = Number(ready.checks);
  const cmd = lvsadmCommand(sock);
  const lnMs: number[] = [];
  const lnDuringMs: number[] = [];
  const lnAfterMs: number[] = [];
  let lnBytes = 0;
  let allDownAt: number | undefined;
  const start = performance.now();
  // -Ln back to back until every checker went down (and 1 s more), or 3 delay_loops + 60 s
  for (;;) {
    const r = await runLvsadm(cmd);
    lnMs.push(r.ms);
    lnBytes = r.bytes;
    const last = [...lines].reverse().find((o) => o.downs !== undefined);
    const downs = Number(last?.downs ?? 0);
    if (downs < checks) lnDuringMs.push(r.ms);
    else {
      lnAfterMs.push(r.ms);
      allDownAt ??= performance.now();
    }
    if (allDownAt !== undefined && performance.now() - allDownAt > 1000) break;
    if (performance.now() - start > delayLoop * 3000 + 60_000) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  child.kill("SIGTERM");
  const end = await waitFor((o) => o.end === true, 60_000);
  await new Promise((r) => child.once("exit", r));
  return {
    paced,
    lvsadm: cmd.which,
    loadMs: Number(ready.loadMs),
    checks,
    lnMs,
    lnBytes,
    lnDuringMs,
    lnAfterMs,
    end,
  };
}

async function main(argv: string[]): Promise<void> {
  const opt = (name: string, dflt: number): number => {
    const i = argv.indexOf(name);
    return i >= 0 ? Number(argv[i + 1]) : dflt;
  };
  const runs = opt("--runs", 5);
  const services = opt("--services", 25_612);
  const delayLoop = opt("--delay-loop", 6);
  const only = argv.includes("--only") ? argv[argv.indexOf("--only") + 1] : undefined;
  const dir = mkdtempSync(join(tmpdir(), "lvs-scale-"));
  try {
    if (only === undefined || only === "load") {
      const haveKeepalived = existsSync(KEEPALIVED);
      for (const n of [Math.round(services / 4), Math.round(services / 2), services]) {
        const file = join(dir, `scale-${n}.conf`);
        const text = scaleConf({ services: n });
        writeFileSync(file, text);
        const k: number[] = [];
        const parse: number[] = [];
        const apply: number[] = [];
        const load: number[] = [];
        const reload: number[] = [];
        const ratios: number[] = [];
        const configTest: number[] = [];
        const ctRatios: number[] = [];
        for (let i = 0; i < runs; i++) {
          const kr = haveKeepalived ? wall(KEEPALIVED, ["-t", "-f", file]) : undefined;
          if (kr) k.push(kr.ms);
          const c = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", "load", file], {
            encoding: "utf8",
          });
          if (c.status !== 0) throw new Error(`load child failed: ${c.stderr}`);
          const r = JSON.parse(c.stdout) as { parseMs: number; applyMs: number; reloadMs: number };
          parse.push(r.parseMs);
          apply.push(r.applyMs);
          load.push(r.parseMs + r.applyMs);
          reload.push(r.reloadMs);
          if (kr) ratios.push((r.parseMs + r.applyMs) / kr.ms);
          const ct = wall(process.execPath, [
            "--input-type=module",
            "-e",
            `const { main } = await import(${JSON.stringify(pathToFileURL(LVSD_JS).href)}); await main(process.argv.slice(1));`,
            "--",
            "--config-test",
            "--config",
            file,
          ]);
          if (ct.code !== 0) throw new Error(`lvsd --config-test failed: ${ct.stderr}`);
          configTest.push(ct.ms);
          if (kr) ctRatios.push(ct.ms / kr.ms);
        }
        const f = (xs: number[]) => (xs.length ? `${median(xs).toFixed(0)} ms` : "-");
        console.log(
          `${n} services, ${(text.length / 1e6).toFixed(2)} MB, ${runs} runs (medians): keepalived -t ${f(k)}; lvsd parse ${f(parse)} + apply ${f(apply)} = load ${f(load)} (${((median(load) / n) * 1000).toFixed(1)} us/service), load/keepalived ${ratios.length ? median(ratios).toFixed(2) : "-"}; reload of the same file ${f(reload)}; lvsd --config-test ${f(configTest)} (/keepalived -t ${ctRatios.length ? median(ctRatios).toFixed(2) : "-"})`,
        );
      }
    }
    if (only === undefined || only === "checks") {
      for (const paced of [true, false]) {
        const r = await checksRun(dir, services, delayLoop, paced);
        const during = r.lnDuringMs;
        console.log(
          `checks ${paced ? "paced" : "unpaced"}: ${r.checks} checkers failing (delay_loop ${delayLoop}), load ${r.loadMs.toFixed(0)} ms; lvsadm -Ln (${r.lvsadm}, ${(r.lnBytes / 1e6).toFixed(2)} MB) while transitions ran: ${during.length} runs, median ${median(during).toFixed(0)} ms, max ${Math.max(0, ...during).toFixed(0)} ms; after (idle) median ${median(r.lnAfterMs).toFixed(0)} ms; ${JSON.stringify(r.end)}`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const argv = process.argv.slice(2);
  if (argv[0] === "--child" && argv[1] === "load") childLoad(argv[2] ?? "");
  else if (argv[0] === "--child" && argv[1] === "checks")
    await childChecks(argv[2] ?? "", argv[3] ?? "", argv[4] === "paced");
  else await main(argv);
}
