/**
 * Many checkers at once (issue 11, "Scale"): an lvsd-like setup in-process — a HealthManager on
 * an Engine's table, with the system clock, real TCP probes and the control server on a Unix
 * socket — with thousands of checkers against 127.0.0.1: in every virtual server one real server
 * listens (a local TCP server) and one is a closed port, so half the checks fail and their real
 * servers go down while lvsadm -Ln is asked again and again. Shown: -Ln answers, complete, all
 * along (a bound that only proves it does not hang: timings are in bench/keepalived-scale.bench.ts);
 * the first checks are spread over the delay_loop as keepalived spreads them; the work ran in
 * bounded slices of the event loop; the table ends as the checks say. Also the Pacer and the
 * Checker's use of it, with a manual defer.
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterEach, describe, expect, it } from "vitest";
import { scaleConf } from "../../../bench/keepalived-scale-conf.js";
import { EngineControl } from "../../../src/control/adapter.js";
import type { CheckerConfig } from "../../../src/control/config/types.js";
import { Checker, SYSTEM_CLOCK } from "../../../src/control/health/checker.js";
import { probe as realProbe } from "../../../src/control/health/index.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import { Pacer } from "../../../src/control/health/pace.js";
import type { ProbeResult } from "../../../src/control/health/probe.js";
import { type ControlServer, startControlServer } from "../../../src/control/server.js";
import { Engine } from "../../../src/datapath/engine.js";
import { sendRequest } from "../../../src/tools/cli/lvsadm.js";
import { FakeClock } from "./fake.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function listen(): Promise<Server> {
  const s = createServer((c) => c.destroy());
  return new Promise((resolve) => s.listen(0, "127.0.0.1", () => resolve(s)));
}

async function closedPort(): Promise<number> {
  const s = await listen();
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("thousands of checkers with the control socket", () => {
  let dir: string | undefined;
  let server: ControlServer | undefined;
  let listener: Server | undefined;
  let manager: HealthManager | undefined;

  afterEach(async () => {
    manager?.stop();
    await server?.close();
    if (listener) await new Promise<void>((r) => listener?.close(() => r()));
    if (dir) await rm(dir, { recursive: true, force: true });
    manager = server = listener = dir = undefined;
  });

  it("answers -Ln all along while half the checks fail; first checks spread over the delay_loop", async () => {
    const SERVICES = 1000;
    const DELAY_LOOP = 3;
    listener = await listen();
    const upPort = (listener.address() as { port: number }).port;
    const downPort = await closedPort();
    dir = await mkdtemp(join(tmpdir(), "lvs-scale-"));
    const file = join(dir, "keepalived.conf");
    await writeFile(
      file,
      scaleConf({
        services: SERVICES,
        delayLoop: DELAY_LOOP,
        connectTimeout: 1,
        realServersAt: [
          ["127.0.0.1", upPort],
          ["127.0.0.1", downPort],
        ],
      }),
    );
    const engine = new Engine({ maxConns: 1 << 16, sweepPerBatch: 0 });
    const firstAt = new Map<CheckerConfig, number>();
    let t0 = 0;
    manager = new HealthManager(engine.table, {
      log: () => {},
      probe: (c, signal) => {
        if (!firstAt.has(c)) firstAt.set(c, performance.now() - t0);
        return realProbe(c, signal);
      },
    });
    const r = manager.loadFile(file);
    expect(r.ok, r.error).toBe(true);
    const path = join(dir, "lvsd.sock");
    server = await startControlServer(path, new EngineControl(engine), { health: manager });
    t0 = performance.now();
    manager.start();

    // -Ln again and again until every closed-port real server is down, and once more after
    const latencies: number[] = [];
    const deadline = performance.now() + 60_000;
    for (let last = false; ; ) {
      // (the client is in this process too: its time counts in the same loop)
      const a = performance.now();
      const res = await sendRequest(path, { argv: ["-Ln"] });
      latencies.push(performance.now() - a);
      expect(res.code).toBe(0);
      expect(res.stdout.match(/^TCP {2}10\./gm)?.length).toBe(SERVICES);
      if (last) break;
      last = manager.counters.downs >= SERVICES;
      if (performance.now() > deadline) throw new Error(`only ${manager.counters.downs} down after 60 s`);
      await sleep(50);
    }
    // every listing came back; the bound only shows nothing hung (timings: the benchmark)
    expect(latencies.length).toBeGreaterThan(3);
    expect(Math.max(...latencies)).toBeLessThan(10_000);

    // keepalived's start: each checker's first probe after a random part of its warmup
    // (= delay_loop), so the 2,000 first probes spread over the 3 s instead of firing together
    // (on a busy machine some launch late: the last tenth also holds what waited for the CPU)
    const firsts = [...firstAt.values()].sort((x, y) => x - y);
    expect(firsts.length).toBe(2 * SERVICES);
    const span = (firsts[firsts.length - 1] ?? 0) - (firsts[0] ?? 0);
    expect(span).toBeGreaterThan(DELAY_LOOP * 1000 * 0.75);
    const perTenth = new Array<number>(10).fill(0);
    for (const t of firsts) perTenth[Math.min(9, Math.floor(t / (DELAY_LOOP * 100)))]!++;
    expect(perTenth.filter((n) => n >= firsts.length * 0.02).length).toBeGreaterThanOrEqual(8);
    expect(Math.max(...perTenth)).toBeLessThan(firsts.length * 0.5);

    // launches and results ran in many slices, never all in one turn
    expect(manager.pacer.turns).toBeGreaterThan(10);
    expect(manager.pacer.maxJobsPerTurn).toBeLessThan(2 * SERVICES);

    // the table: every service keeps its listening real server and lost the closed one
    const list = engine.table.list();
    expect(list.length).toBe(SERVICES);
    for (const s of list) expect(s.dests.map((d) => d.port)).toEqual([upPort]);
    expect(manager.counters.downs).toBe(SERVICES);
    expect(manager.counters.ups).toBe(0);
  });
});

describe("Pacer", () => {
  /** A defer that the test runs by hand: one call of `turn()` is one event-loop turn. */
  function manual(): { defer: (fn: () => void) => void; turn: () => number; waiting: () => number } {
    const q: (() => void)[] = [];
    return {
      defer: (fn) => q.push(fn),
      turn: () => {
        const fns = q.splice(0);
        for (const f of fns) f();
        return fns.length;
      },
      waiting: () => q.length,
    };
  }

  const busy = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };

  it("runs queued jobs in order, a budget's worth per turn, always at least one", () => {
    const m = manual();
    const p = new Pacer(m.defer, 2);
    const ran: number[] = [];
    for (let i = 0; i < 20; i++)
      p.run(() => {
        busy(1);
        ran.push(i);
      });
    expect(ran).toEqual([]);
    expect(m.waiting()).toBe(1); // one drain scheduled for 20 jobs
    m.turn();
    expect(ran.length).toBeGreaterThanOrEqual(1);
    expect(ran.length).toBeLessThanOrEqual(3);
    let turns = 1;
    while (m.waiting() > 0) {
      m.turn();
      turns++;
    }
    expect(ran).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(turns).toBeGreaterThanOrEqual(7);
    expect(p.pending).toBe(0);
    expect(p.maxJobsPerTurn).toBeLessThanOrEqual(3);
    // a slow job still runs alone in its turn
    p.run(() => busy(5));
    p.run(() => ran.push(99));
    m.turn();
    expect(ran[ran.length - 1]).toBe(19);
    m.turn();
    expect(ran[ran.length - 1]).toBe(99);
  });

  it("jobs queued by a job run later in the same drain order, with one drain scheduled", () => {
    const m = manual();
    const p = new Pacer(m.defer, 1000);
    const ran: string[] = [];
    p.run(() => {
      ran.push("a");
      p.run(() => ran.push("c"));
    });
    p.run(() => ran.push("b"));
    expect(m.waiting()).toBe(1);
    m.turn();
    expect(ran).toEqual(["a", "b", "c"]);
    expect(m.waiting()).toBe(0);
  });

  it("a job that throws is reported and the others run", () => {
    const m = manual();
    const errors: unknown[] = [];
    const p = new Pacer(m.defer, 1000, (e) => errors.push(e));
    const ran: number[] = [];
    p.run(() => ran.push(1));
    p.run(() => {
      throw new Error("boom");
    });
    p.run(() => ran.push(3));
    m.turn();
    expect(ran).toEqual([1, 3]);
    expect(errors.map((e) => (e as Error).message)).toEqual(["boom"]);
  });

  it("without defer, jobs run at once", () => {
    const p = new Pacer(undefined);
    const ran: number[] = [];
    p.run(() => ran.push(1));
    expect(ran).toEqual([1]);
  });

  it("a checker's launch queued before stop() does not probe; its result after stop() is dropped", async () => {
    const m = manual();
    const clock = new FakeClock();
    const pacer = new Pacer(m.defer, 1000);
    const probes: number[] = [];
    const results: boolean[] = [];
    let answer: ((r: ProbeResult) => void) | undefined;
    const cfg: CheckerConfig = {
      type: "TCP_CHECK",
      where: { file: "t", line: 1 },
      timing: { delayLoop: 1, connectTimeout: 1, retry: 0, delayBeforeRetry: 1, warmup: 0, alpha: false },
      target: { addr: 0x7f000001, port: 9 },
    };
    const c = new Checker(
      cfg,
      () => {
        probes.push(clock.now());
        return new Promise<ProbeResult>((r) => {
          answer = r;
        });
      },
      clock,
      (_c, e) => results.push(e.result.ok),
      pacer,
    );
    c.start();
    await clock.advance(0); // the timer fires: the launch is queued, not run
    expect(probes).toEqual([]);
    c.stop();
    m.turn();
    expect(probes).toEqual([]); // dropped
    c.start();
    await clock.advance(0);
    m.turn();
    expect(probes).toEqual([0]);
    answer?.({ ok: false, reason: "refused" });
    await clock.advance(0);
    expect(results).toEqual([]); // the result waits for its turn
    m.turn();
    expect(results).toEqual([false]);
    expect(c.up).toBe(false);
    c.stop();
    expect(clock.pending).toBe(0);
  });
});

describe("SYSTEM_CLOCK", () => {
  it("defers to the next turn", async () => {
    const ran: string[] = [];
    SYSTEM_CLOCK.defer?.(() => ran.push("deferred"));
    ran.push("now");
    await sleep(0);
    expect(ran).toEqual(["now", "deferred"]);
  });
});
