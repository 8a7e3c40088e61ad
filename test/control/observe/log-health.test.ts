/**
 * The health manager's events with a structured logger (`logger`, src/control/observe/log.ts):
 * each transition and configuration load is one event with its fields, and its message is the
 * line lvsd has always logged (test/control/health/manager.test.ts asserts those texts).
 * Scripted probes and a manual clock, as in manager.test.ts.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import { scriptRunner } from "../../../src/control/health/notify.js";
import { createLogger, type EventLog, type LogFields } from "../../../src/control/observe/log.js";
import { Engine } from "../../../src/datapath/engine.js";
import { FakeClock, ScriptedProbes } from "../health/fake.js";

interface Logged {
  level: string;
  fields: LogFields;
  msg: string;
}

function recorder(): { log: EventLog; got: Logged[] } {
  const got: Logged[] = [];
  const at =
    (level: string) =>
    (fields: LogFields, msg: string): void => {
      got.push({ level, fields, msg });
    };
  return { log: { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") }, got };
}

interface Rig {
  engine: EngineControl;
  clock: FakeClock;
  probes: ScriptedProbes;
  manager: HealthManager;
  got: Logged[];
  scripts: string[];
  events(name: string): Logged[];
}

function rig(): Rig {
  const engine = new EngineControl(new Engine({ maxConns: 1024 }));
  const clock = new FakeClock();
  const probes = new ScriptedProbes(clock);
  const { log, got } = recorder();
  const scripts: string[] = [];
  const manager = new HealthManager(engine.table, {
    logger: log,
    clock,
    probe: probes.probe,
    runScript: (argv, what) => scripts.push(`${what} ${argv.join(" ")}`),
  });
  return {
    engine,
    clock,
    probes,
    manager,
    got,
    scripts,
    events: (name) => got.filter((e) => e.fields.event === name),
  };
}

const TWO = (opts: { vs?: string; rs1?: string } = {}) => `
virtual_server 10.0.0.1 80 {
  delay_loop 2
  warmup 0
  lvs_sched rr
  ${opts.vs ?? ""}
  real_server 192.168.10.1 80 {
    weight 3
    ${opts.rs1 ?? ""}
    TCP_CHECK { retry 1
      delay_before_retry 0.5 }
  }
  real_server 192.168.10.2 80 {
    weight 2
    TCP_CHECK { retry 1
      delay_before_retry 0.5 }
  }
  protocol TCP
}
`;

const SVC = "TCP 10.0.0.1:80";

describe("health transitions", () => {
  let r: Rig;
  beforeEach(() => {
    r = rig();
  });

  it("down (warn) and up (info): service, dest, checker, reason, what the table holds", async () => {
    r.manager.apply(parseConfigText(TWO(), "t.conf"));
    r.manager.start();
    await r.clock.advance(100);
    r.probes.set("192.168.10.1:80", false, "TCP_CHECK 192.168.10.1:80 connection refused");
    await r.clock.advance(2400);
    const down = r.events("health.dest.down");
    expect(down).toEqual([
      {
        level: "warn",
        fields: {
          event: "health.dest.down",
          service: SVC,
          services: [SVC],
          dest: "192.168.10.1:80",
          checker: "TCP_CHECK 192.168.10.1:80",
          reason: "TCP_CHECK 192.168.10.1:80 connection refused",
          action: "out of the pool",
          weight: null,
        },
        msg: "health: TCP 10.0.0.1:80 192.168.10.1:80 down: TCP_CHECK 192.168.10.1:80 connection refused; out of the pool",
      },
    ]);
    r.probes.set("192.168.10.1:80", true, "TCP_CHECK 192.168.10.1:80 connected");
    await r.clock.advance(2000);
    expect(r.events("health.dest.up")).toEqual([
      {
        level: "info",
        fields: {
          event: "health.dest.up",
          service: SVC,
          services: [SVC],
          dest: "192.168.10.1:80",
          checker: "TCP_CHECK 192.168.10.1:80",
          reason: "TCP_CHECK 192.168.10.1:80 connected",
          action: "in the pool with weight 3",
          weight: 3,
        },
        msg: "health: TCP 10.0.0.1:80 192.168.10.1:80 up: TCP_CHECK 192.168.10.1:80 connected; in the pool with weight 3",
      },
    ]);
  });

  it("inhibit_on_failure: the down event says weight 0", async () => {
    r.manager.apply(parseConfigText(TWO({ rs1: "inhibit_on_failure" }), "t.conf"));
    r.manager.start();
    r.probes.set("192.168.10.1:80", false, "refused");
    await r.clock.advance(600);
    expect(r.events("health.dest.down")[0]?.fields).toMatchObject({
      dest: "192.168.10.1:80",
      action: "weight 0 (inhibit_on_failure)",
      weight: 0,
    });
  });

  it("quorum lost (warn) and gained (info) with the weights and the sorry server", async () => {
    r.manager.apply(
      parseConfigText(TWO({ vs: "quorum 3\n  hysteresis 1\n  sorry_server 192.168.10.9 8080" }), "t.conf"),
    );
    r.manager.start();
    r.probes.set("192.168.10.1:80", false);
    r.probes.set("192.168.10.2:80", false);
    await r.clock.advance(600);
    const lost = r.events("health.quorum.lost");
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({
      level: "warn",
      fields: {
        event: "health.quorum.lost",
        service: SVC,
        services: [SVC],
        liveWeight: 0,
        quorum: 3,
        hysteresis: 1,
        sorryServer: "192.168.10.9:8080",
      },
    });
    expect(lost[0]!.msg).toMatch(/^health: TCP 10\.0\.0\.1:80 lost quorum: live weight 0 < 2 /);
    r.probes.set("192.168.10.1:80", true);
    r.probes.set("192.168.10.2:80", true);
    await r.clock.advance(2000);
    expect(r.events("health.quorum.gained")).toEqual([
      expect.objectContaining({
        level: "info",
        fields: expect.objectContaining({ event: "health.quorum.gained", liveWeight: 5 }),
      }),
    ]);
  });

  it("alpha: a first failure is a down event marked alpha", async () => {
    r.manager.apply(parseConfigText(TWO({ vs: "alpha" }), "t.conf"));
    r.probes.set("192.168.10.2:80", false, "rs2 refused");
    r.manager.start();
    await r.clock.advance(0);
    expect(r.events("health.dest.down")).toEqual([
      {
        level: "warn",
        fields: {
          event: "health.dest.down",
          service: SVC,
          services: [SVC],
          dest: "192.168.10.2:80",
          checker: "TCP_CHECK 192.168.10.2:80",
          reason: "rs2 refused",
          alpha: true,
          action: "out of the pool",
          weight: null,
        },
        msg: "health: TCP 10.0.0.1:80 192.168.10.2:80 stays down: rs2 refused",
      },
    ]);
    expect(r.events("health.dest.up").map((e) => e.fields.dest)).toEqual(["192.168.10.1:80"]);
  });

  it("misc_dynamic weight changes and log_all_failures", async () => {
    r.manager.apply(
      parseConfigText(
        `virtual_server 10.0.0.1 80 {
  delay_loop 1
  warmup 0
  real_server 192.168.10.1 80 {
    weight 5
    MISC_CHECK {
      misc_path /bin/load-weight
      misc_dynamic
      retry 2
      log_all_failures
    }
  }
  protocol TCP
}`,
        "t.conf",
      ),
    );
    r.manager.start();
    r.probes.set("/bin/load-weight", true, "exit 9 (weight 7)", 7);
    await r.clock.advance(0);
    expect(r.events("health.dest.weight")).toEqual([
      {
        level: "info",
        fields: {
          event: "health.dest.weight",
          service: SVC,
          services: [SVC],
          dest: "192.168.10.1:80",
          checker: "MISC_CHECK load-weight (dynamic)",
          from: 5,
          to: 7,
          reason: "exit 9 (weight 7)",
        },
        msg: "health: TCP 10.0.0.1:80 192.168.10.1:80 weight 5 -> 7: exit 9 (weight 7)",
      },
    ]);
    r.probes.set("/bin/load-weight", false, "exit 1");
    await r.clock.advance(1000);
    expect(r.events("health.check.failed")[0]).toMatchObject({
      level: "warn",
      fields: {
        dest: "192.168.10.1:80",
        checker: "MISC_CHECK load-weight (dynamic)",
        reason: "exit 1",
        retry: 1,
        retries: 2,
      },
    });
  });

  it("a script that cannot run is a health.script.failed warning", async () => {
    const { log, got } = recorder();
    scriptRunner(log)(["/nonexistent/notify", "up"], "notify_up");
    for (let i = 0; i < 100 && got.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(got).toEqual([
      {
        level: "warn",
        fields: {
          event: "health.script.failed",
          script: "notify_up",
          program: "/nonexistent/notify",
          error: expect.stringMatching(/ENOENT|no such file/i),
        },
        msg: expect.stringMatching(/^health: notify_up \/nonexistent\/notify: cannot run: /),
      },
    ]);
  });
});

describe("configuration loads", () => {
  let dir: string;
  let r: Rig;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "loghealth-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    r = rig();
  });

  it("config.loaded: file, trigger, counts and what was added; one config.warning per warning with file and line", () => {
    const file = join(dir, "a.conf");
    writeFileSync(file, `global_defs {\n  router_id x\n}\n${TWO()}`);
    expect(r.manager.loadFile(file).ok).toBe(true);
    expect(r.got.map((e) => [e.level, e.fields.event])).toEqual([
      ["warn", "config.warning"],
      ["info", "config.loaded"],
    ]);
    expect(r.got[0]).toEqual({
      level: "warn",
      fields: {
        event: "config.warning",
        file,
        line: 1,
        warning: "global_defs is not supported by lvsd (block ignored)",
      },
      msg: `health: warning: ${file}:1: global_defs is not supported by lvsd (block ignored)`,
    });
    expect(r.got[1]).toEqual({
      level: "info",
      fields: {
        event: "config.loaded",
        file,
        trigger: "load",
        virtualServers: 1,
        realServers: 2,
        checks: 2,
        services: { added: [SVC], removed: [], changed: [] },
        dests: {
          added: [
            { service: SVC, dest: "192.168.10.1:80" },
            { service: SVC, dest: "192.168.10.2:80" },
          ],
          removed: [],
          changed: [],
        },
        warnings: 1,
      },
      msg: `health: loaded ${file}: 1 virtual server, 2 real servers, 2 checks`,
    });
  });

  it("a reload lists what changed, removed and added; an import says so", () => {
    const file = join(dir, "b.conf");
    writeFileSync(file, TWO());
    r.manager.loadFile(file);
    writeFileSync(
      file,
      `${TWO()
        .replace("weight 2", "weight 4")
        .replace("lvs_sched rr", "lvs_sched wrr")
        .replace(/ {2}real_server 192\.168\.10\.1 80 \{[^}]*\}[^}]*\}\n/, "")}
virtual_server 10.0.0.2 53 {
  protocol UDP
  real_server 192.168.10.3 53 {
  }
}
`,
    );
    r.got.length = 0;
    expect(r.manager.reload().ok).toBe(true);
    const loaded = r.events("config.loaded");
    expect(loaded).toHaveLength(1);
    expect(loaded[0]!.fields).toMatchObject({
      file,
      trigger: "reload",
      virtualServers: 2,
      realServers: 2,
      services: { added: ["UDP 10.0.0.2:53"], removed: [], changed: [SVC] },
      dests: {
        added: [{ service: "UDP 10.0.0.2:53", dest: "192.168.10.3:53" }],
        removed: [{ service: SVC, dest: "192.168.10.1:80" }],
        changed: [{ service: SVC, dest: "192.168.10.2:80" }],
      },
    });
    expect(r.events("health.dest.removed")).toEqual([
      {
        level: "info",
        fields: {
          event: "health.dest.removed",
          service: SVC,
          services: [SVC],
          dest: "192.168.10.1:80",
          reason: "removed from the configuration",
        },
        msg: "health: TCP 10.0.0.1:80 192.168.10.1:80 removed from the configuration",
      },
    ]);
    // the same file again through lvsadm --import: nothing to change
    r.got.length = 0;
    expect(r.manager.importFile(file).code).toBe(0);
    expect(r.events("config.loaded")[0]!.fields).toMatchObject({
      trigger: "import",
      services: { added: [], removed: [], changed: [] },
      dests: { added: [], removed: [], changed: [] },
    });
  });

  it("config.failed: where the error is, and a reload keeps the running configuration", () => {
    const file = join(dir, "c.conf");
    writeFileSync(file, TWO());
    r.manager.loadFile(file);
    writeFileSync(file, TWO().replace("delay_loop 2", "delay_loop two"));
    r.got.length = 0;
    expect(r.manager.reload().ok).toBe(false);
    const error = `${file}:3: delay_loop: expected a time in seconds (like 5 or 0.5, above 0), got 'two'`;
    expect(r.got).toEqual([
      {
        level: "error",
        fields: { event: "config.failed", config: file, trigger: "reload", file, line: 3, error },
        msg: `health: reload failed, keeping the running configuration: ${error}`,
      },
    ]);
    r.got.length = 0;
    const missing = join(dir, "missing.conf");
    expect(r.manager.importFile(missing).code).toBe(1);
    expect(r.got).toEqual([
      {
        level: "error",
        fields: expect.objectContaining({
          event: "config.failed",
          config: missing,
          trigger: "import",
          file: missing,
        }),
        msg: expect.stringMatching(new RegExp(`^health: cannot load ${missing}: `)),
      },
    ]);
  });

  it("through pino: one JSON line per event, fields and message intact", () => {
    const lines: string[] = [];
    const logger = createLogger({ destination: { write: (s: string) => lines.push(s) } });
    const engine = new EngineControl(new Engine({ maxConns: 1024 }));
    const m = new HealthManager(engine.table, { logger });
    const file = join(dir, "d.conf");
    writeFileSync(file, TWO());
    m.loadFile(file);
    expect(lines).toHaveLength(1);
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(o).toMatchObject({
      level: "info",
      name: "lvsd",
      event: "config.loaded",
      file,
      trigger: "load",
      services: { added: [SVC], removed: [], changed: [] },
      msg: `health: loaded ${file}: 1 virtual server, 2 real servers, 2 checks`,
    });
  });
});
