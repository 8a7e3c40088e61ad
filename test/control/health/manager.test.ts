/**
 * The health manager's semantics with scripted probes and a manual clock (no sockets): when a
 * checker goes down and up (delay_loop, retry, delay_before_retry, warmup), removal versus
 * inhibit_on_failure, quorum and hysteresis with the sorry server, misc_dynamic weights, alpha,
 * the notify scripts, omega, and reloads that touch only what changed.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run } from "../../../src/control/commands.js";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import { parseServices } from "../../../src/control/netdb.js";
import { Engine } from "../../../src/datapath/engine.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import { FakeClock, ScriptedProbes } from "./fake.js";

const NO_NAMES = parseServices("");

interface Rig {
  engine: EngineControl;
  clock: FakeClock;
  probes: ScriptedProbes;
  manager: HealthManager;
  log: string[];
  scripts: string[];
  /** `lvsadm -Sn` lines for the dests: "addr:port weight". */
  dests(svc?: string): string[];
}

function rig(opts: { allowEmptyReload?: boolean } = {}): Rig {
  const engine = new EngineControl(new Engine({ maxConns: 1024 }));
  const clock = new FakeClock();
  const probes = new ScriptedProbes(clock);
  const log: string[] = [];
  const scripts: string[] = [];
  const manager = new HealthManager(engine.table, {
    log: (m) => log.push(m),
    clock,
    probe: probes.probe,
    runScript: (argv, what) => scripts.push(`${what} ${argv.join(" ")}`),
    ...opts,
  });
  const dests = (svc = "-t 10.0.0.1:80"): string[] =>
    run(["-Sn"], engine, "", { services: NO_NAMES })
      .stdout.split("\n")
      .filter((l) => l.startsWith(`-a ${svc} `))
      .map((l) => {
        const m = / -r (\S+) .* -w (\d+)/.exec(l);
        return `${m?.[1]} ${m?.[2]}`;
      });
  return { engine, clock, probes, manager, log, scripts, dests };
}

function load(r: Rig, text: string): void {
  r.manager.apply(parseConfigText(text, "t.conf"));
}

const TWO = (opts: { vs?: string; rs1?: string; rs2?: string } = {}) => `
virtual_server 10.0.0.1 80 {
  protocol TCP
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
    ${opts.rs2 ?? ""}
    TCP_CHECK { retry 1
      delay_before_retry 0.5 }
  }
}
`;

describe("checker timing", () => {
  let r: Rig;
  beforeEach(() => {
    r = rig();
  });

  it("probes every delay_loop; a failure is retried after delay_before_retry, then the server goes down", async () => {
    load(r, TWO());
    r.manager.start();
    await r.clock.advance(0);
    expect(r.probes.calls.map((c) => c.at)).toEqual([0, 0]);
    await r.clock.advance(4000);
    expect(r.probes.calls.filter((c) => c.key === "192.168.10.1:80").map((c) => c.at)).toEqual([
      0, 2000, 4000,
    ]);
    // the server fails at t=4.1 s: the probe at 6 s fails, the retry at 6.5 s fails, down at 6.5 s
    await r.clock.advance(100);
    r.probes.set("192.168.10.1:80", false, "TCP_CHECK 192.168.10.1:80 connection refused");
    await r.clock.advance(2300);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 2"]);
    await r.clock.advance(100);
    expect(r.dests()).toEqual(["192.168.10.2:80 2"]);
    expect(r.clock.t).toBe(6500);
    // detection within delay_loop x (retry + 1) of the failure
    expect(r.log.at(-1)).toBe(
      "health: TCP 10.0.0.1:80 192.168.10.1:80 down: TCP_CHECK 192.168.10.1:80 connection refused; out of the pool",
    );
    // a down server is probed every delay_loop (no retries), and comes back on the first success
    r.probes.set("192.168.10.1:80", true, "TCP_CHECK 192.168.10.1:80 connected");
    await r.clock.advance(2000);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 2"]);
    expect(r.log.at(-1)).toBe(
      "health: TCP 10.0.0.1:80 192.168.10.1:80 up: TCP_CHECK 192.168.10.1:80 connected; in the pool with weight 3",
    );
    expect(r.manager.counters).toMatchObject({ ups: 1, downs: 1 });
  });

  it("one failure that recovers within the retry does not take the server down", async () => {
    load(r, TWO());
    r.manager.start();
    await r.clock.advance(1000);
    r.probes.set("192.168.10.2:80", false);
    await r.clock.advance(1200); // the probe at 2 s fails; retry at 2.5 s
    r.probes.set("192.168.10.2:80", true);
    await r.clock.advance(1000);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 2"]);
    expect(r.manager.counters.downs).toBe(0);
    expect(r.manager.counters.failures).toBe(1);
  });

  it("warmup spreads the first probes over up to warmup seconds", async () => {
    load(r, TWO({ vs: "warmup 10" }));
    r.clock.rnd = 0.5;
    r.manager.start();
    await r.clock.advance(4999);
    expect(r.probes.calls).toEqual([]);
    await r.clock.advance(1);
    expect(r.probes.calls.length).toBe(2);
  });

  it("stop() cancels every timer", async () => {
    load(r, TWO());
    r.manager.start();
    await r.clock.advance(100);
    expect(r.clock.pending).toBe(2);
    r.manager.stop();
    expect(r.clock.pending).toBe(0);
  });
});

describe("actions", () => {
  let r: Rig;
  beforeEach(() => {
    r = rig();
  });

  it("removal versus inhibit_on_failure; both come back with their configured weight", async () => {
    load(r, TWO({ rs2: "inhibit_on_failure" }));
    r.manager.start();
    r.probes.set("192.168.10.1:80", false, "rs1 refused");
    r.probes.set("192.168.10.2:80", false, "rs2 refused");
    await r.clock.advance(600);
    expect(r.dests()).toEqual(["192.168.10.2:80 0"]);
    expect(r.log.slice(-3)).toEqual([
      "health: TCP 10.0.0.1:80 192.168.10.1:80 down: rs1 refused; out of the pool",
      "health: TCP 10.0.0.1:80 192.168.10.2:80 down: rs2 refused; weight 0 (inhibit_on_failure)",
      "health: TCP 10.0.0.1:80 lost quorum: live weight 0 < 1 (quorum 1, hysteresis 0)",
    ]);
    r.probes.set("192.168.10.1:80", true);
    r.probes.set("192.168.10.2:80", true);
    await r.clock.advance(2000);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 2"]);
  });

  it("removal drops the dest from the table (its connections are flushed); weight 0 keeps the same dest", async () => {
    load(r, TWO({ rs2: "inhibit_on_failure" }));
    r.manager.start();
    const svc = r.engine.table.find({ proto: IPPROTO_TCP, addr: ipToU32("10.0.0.1"), port: 80 });
    if (!svc) throw new Error("no service");
    const d2 = r.engine.table.findDest(svc, ipToU32("192.168.10.2"), 80);
    r.probes.set("192.168.10.1:80", false);
    r.probes.set("192.168.10.2:80", false);
    await r.clock.advance(600);
    expect(r.engine.table.findDest(svc, ipToU32("192.168.10.1"), 80)).toBeUndefined();
    expect(r.engine.table.findDest(svc, ipToU32("192.168.10.2"), 80)).toBe(d2);
    expect(d2?.weight).toBe(0);
  });

  it("quorum loss brings in the sorry server, recovery hands back (hysteresis dampens)", async () => {
    load(
      r,
      TWO({
        vs: `quorum 3
  hysteresis 1
  sorry_server 192.168.10.9 8080
  quorum_up "/bin/q up"
  quorum_down "/bin/q down"`,
      }),
    );
    r.manager.start();
    // live weight 5; quorum is lost below 3 - 1 = 2: losing rs1 (3) leaves 2, not yet
    r.probes.set("192.168.10.1:80", false, "rs1 refused");
    await r.clock.advance(600);
    expect(r.dests()).toEqual(["192.168.10.2:80 2"]);
    r.probes.set("192.168.10.2:80", false, "rs2 refused");
    await r.clock.advance(2600);
    expect(r.dests()).toEqual(["192.168.10.9:8080 1"]);
    expect(r.log.slice(-2)).toEqual([
      "health: TCP 10.0.0.1:80 192.168.10.2:80 down: rs2 refused; out of the pool (quorum lost: the sorry server serves)",
      "health: TCP 10.0.0.1:80 lost quorum: live weight 0 < 2 (quorum 3, hysteresis 1); sorry server 192.168.10.9:8080 in service",
    ]);
    expect(r.scripts).toEqual(["quorum_down /bin/q down"]);
    // rs2 (2) alone is below 3 + 1 = 4: the sorry server stays, rs2 stays out
    r.probes.set("192.168.10.2:80", true, "rs2 ok");
    await r.clock.advance(2000);
    expect(r.dests()).toEqual(["192.168.10.9:8080 1"]);
    expect(r.log.at(-1)).toBe(
      "health: TCP 10.0.0.1:80 192.168.10.2:80 up: rs2 ok; out of the pool (quorum lost: the sorry server serves)",
    );
    // with rs1 back the live weight is 5 >= 4: both return, the sorry server leaves
    r.probes.set("192.168.10.1:80", true, "rs1 ok");
    await r.clock.advance(2000);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 2"]);
    expect(r.log.at(-1)).toBe(
      "health: TCP 10.0.0.1:80 gained quorum: live weight 5 >= 4 (quorum 3, hysteresis 1); sorry server 192.168.10.9:8080 out of service",
    );
    expect(r.scripts).toEqual(["quorum_down /bin/q down", "quorum_up /bin/q up"]);
    expect(r.manager.counters).toMatchObject({ quorumLost: 1, quorumGained: 1 });
  });

  it("with inhibit_on_failure the real servers stay at weight 0 while the sorry server serves", async () => {
    load(r, TWO({ vs: "sorry_server 192.168.10.9 80\n  inhibit_on_failure\n  quorum 4" }));
    r.manager.start();
    r.probes.set("192.168.10.1:80", false);
    await r.clock.advance(600);
    expect(r.dests()).toEqual(["192.168.10.1:80 0", "192.168.10.2:80 0", "192.168.10.9:80 1"]);
  });

  it("a virtual server that starts below quorum starts with its sorry server", async () => {
    load(r, TWO({ vs: "sorry_server 192.168.10.9 80\n  alpha" }));
    expect(r.dests()).toEqual(["192.168.10.9:80 1"]);
    expect(r.log.at(-1)).toBe(
      "health: TCP 10.0.0.1:80 starts without quorum: live weight 0 < 1; sorry server 192.168.10.9:80 in service",
    );
    r.manager.start();
    await r.clock.advance(10);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 2"]);
  });

  it("misc_dynamic: exit 2..255 set the weight to status - 2, exit 0 keeps it", async () => {
    load(
      r,
      `virtual_server 10.0.0.1 80 {
  protocol TCP
  delay_loop 1
  warmup 0
  real_server 192.168.10.1 80 {
    weight 5
    MISC_CHECK {
      misc_path /bin/load-weight
      misc_dynamic
    }
  }
}`,
    );
    r.manager.start();
    r.probes.set("/bin/load-weight", true, "MISC_CHECK /bin/load-weight exit 9 (weight 7)", 7);
    await r.clock.advance(0);
    expect(r.dests()).toEqual(["192.168.10.1:80 7"]);
    expect(r.log.at(-1)).toBe(
      "health: TCP 10.0.0.1:80 192.168.10.1:80 weight 5 -> 7: MISC_CHECK /bin/load-weight exit 9 (weight 7)",
    );
    r.probes.set("/bin/load-weight", true, "exit 0");
    await r.clock.advance(1000);
    expect(r.dests()).toEqual(["192.168.10.1:80 7"]);
    r.probes.set("/bin/load-weight", false, "exit 1");
    await r.clock.advance(1000);
    expect(r.dests()).toEqual([]);
    r.probes.set("/bin/load-weight", true, "exit 2 (weight 0)", 0);
    await r.clock.advance(1000);
    expect(r.dests()).toEqual(["192.168.10.1:80 0"]);
    expect(r.manager.counters.weightChanges).toBe(2);
  });

  it("alpha: down until the first success; a first failure runs notify_down once", async () => {
    load(
      r,
      TWO({
        vs: "alpha",
        rs1: 'notify_up "/bin/n up 1"\n    notify_down "/bin/n down 1"',
        rs2: 'notify_up "/bin/n up 2"\n    notify_down "/bin/n down 2"',
      }),
    );
    expect(r.dests()).toEqual([]);
    r.probes.set("192.168.10.2:80", false, "rs2 refused");
    r.manager.start();
    await r.clock.advance(0);
    expect(r.dests()).toEqual(["192.168.10.1:80 3"]);
    expect(r.scripts).toEqual(["notify_up /bin/n up 1", "notify_down /bin/n down 2"]);
    expect(r.log).toContain("health: TCP 10.0.0.1:80 192.168.10.2:80 stays down: rs2 refused");
    r.probes.set("192.168.10.2:80", true);
    await r.clock.advance(2000);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 2"]);
    expect(r.scripts.at(-1)).toBe("notify_up /bin/n up 2");
  });

  it("a server with several checkers is up only while all of them are", async () => {
    load(
      r,
      `virtual_server 10.0.0.1 80 {
  protocol TCP
  delay_loop 1
  warmup 0
  real_server 192.168.10.1 80 {
    TCP_CHECK { retry 0 }
    PING_CHECK { retry 0 }
  }
}`,
    );
    r.manager.start();
    r.probes.set("192.168.10.1", false, "no echo reply");
    await r.clock.advance(0);
    expect(r.dests()).toEqual([]);
    r.probes.set("192.168.10.1:80", false, "refused");
    await r.clock.advance(1000);
    r.probes.set("192.168.10.1", true);
    await r.clock.advance(1000);
    expect(r.dests()).toEqual([]);
    r.probes.set("192.168.10.1:80", true);
    await r.clock.advance(1000);
    expect(r.dests()).toEqual(["192.168.10.1:80 1"]);
  });

  it("omega runs the down scripts of what is up when the manager stops", async () => {
    load(r, TWO({ vs: 'omega\n  quorum_down "/bin/q down"', rs1: 'notify_down "/bin/n down 1"' }));
    r.manager.start();
    await r.clock.advance(0);
    r.manager.stop();
    expect(r.scripts).toEqual(["notify_down /bin/n down 1", "quorum_down /bin/q down"]);
    const r2 = rig();
    load(r2, TWO({ vs: 'quorum_down "/bin/q down"', rs1: 'notify_down "/bin/n down 1"' }));
    r2.manager.start();
    r2.manager.stop();
    expect(r2.scripts).toEqual([]);
  });
});

describe("reloading", () => {
  let r: Rig;
  let dir: string;
  beforeEach(() => {
    r = rig();
    dir = mkdtempSync(join(tmpdir(), "hcreload-"));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("changes only what changed: unchanged dests and checkers live on", async () => {
    const file = join(dir, "k.conf");
    writeFileSync(file, TWO());
    expect(r.manager.loadFile(file).ok).toBe(true);
    r.manager.start();
    await r.clock.advance(4000);
    const svc = r.engine.table.find({ proto: IPPROTO_TCP, addr: ipToU32("10.0.0.1"), port: 80 });
    if (!svc) throw new Error("no service");
    const d1 = r.engine.table.findDest(svc, ipToU32("192.168.10.1"), 80);
    const d2 = r.engine.table.findDest(svc, ipToU32("192.168.10.2"), 80);
    const calls = (k: string) => r.probes.calls.filter((c) => c.key === k).map((c) => c.at);
    // rs2: weight changed and its check changed; rs3 new; rs1 untouched
    writeFileSync(
      file,
      `${TWO().replace("weight 2", "weight 4").replace("TCP_CHECK { retry 1\n      delay_before_retry 0.5 }\n  }\n}", "TCP_CHECK { connect_port 81 }\n  }\n  real_server 192.168.10.3 80 {\n  }\n}")}`,
    );
    await r.clock.advance(500);
    const res = r.manager.reload();
    expect(res.ok).toBe(true);
    expect(r.dests()).toEqual(["192.168.10.1:80 3", "192.168.10.2:80 4", "192.168.10.3:80 1"]);
    expect(r.engine.table.findDest(svc, ipToU32("192.168.10.1"), 80)).toBe(d1);
    expect(r.engine.table.findDest(svc, ipToU32("192.168.10.2"), 80)).toBe(d2); // edited in place
    expect(r.engine.table.find({ proto: IPPROTO_TCP, addr: ipToU32("10.0.0.1"), port: 80 })).toBe(svc);
    await r.clock.advance(1500);
    // rs1's checker kept its schedule (every 2 s from 0); rs2's new checker started at the reload
    expect(calls("192.168.10.1:80")).toEqual([0, 2000, 4000, 6000]);
    expect(calls("192.168.10.2:81")).toEqual([4500]);
    expect(calls("192.168.10.2:80")).toEqual([0, 2000, 4000]);
  });

  it("a broken file changes nothing, and says where it is broken", async () => {
    const file = join(dir, "k.conf");
    writeFileSync(file, TWO());
    r.manager.loadFile(file);
    r.manager.start();
    const before = run(["-Sn"], r.engine, "", { services: NO_NAMES }).stdout;
    writeFileSync(file, TWO().replace("delay_loop 2", "delay_loop soon"));
    const res = r.manager.reload();
    const why = "delay_loop: expected a time in seconds (like 5 or 0.5, above 0), got 'soon'";
    expect(res).toEqual({ ok: false, warnings: [], error: `${file}:4: ${why}` });
    expect(r.log.at(-1)).toBe(`health: reload failed, keeping the running configuration: ${file}:4: ${why}`);
    expect(run(["-Sn"], r.engine, "", { services: NO_NAMES }).stdout).toBe(before);
    await r.clock.advance(2000);
    expect(r.probes.calls.length).toBe(4); // the checks still run
    expect(r.manager.counters.reloadErrors).toBe(1);
  });

  it.each([
    ["an empty file", ""],
    [
      "a file cut off before its first virtual_server",
      "! keepalived.conf\nglobal_defs {\n  router_id lvs1\n}\n",
    ],
  ])(
    "%s is refused while virtual servers run (the reload guard); allowed with allowEmptyReload",
    (_n, text) => {
      const file = join(dir, "k.conf");
      writeFileSync(file, TWO());
      expect(r.manager.loadFile(file).ok).toBe(true);
      const before = run(["-Sn"], r.engine, "", { services: NO_NAMES }).stdout;
      expect(before).toContain("-A -t 10.0.0.1:80");
      writeFileSync(file, text);
      const res = r.manager.reload();
      expect(res.ok).toBe(false);
      expect(res.error).toMatch(/has no virtual_server while 1 are running: not applied/);
      expect(r.log.at(-1)).toContain("--config-reload-allow-empty");
      expect(run(["-Sn"], r.engine, "", { services: NO_NAMES }).stdout).toBe(before);
      expect(r.manager.counters.reloadErrors).toBe(1);
      // the first load of such a file is fine (nothing runs), and the option lets a reload empty it
      const r2 = rig({ allowEmptyReload: true });
      const file2 = join(dir, "k2.conf");
      writeFileSync(file2, TWO());
      expect(r2.manager.loadFile(file2).ok).toBe(true);
      writeFileSync(file2, text);
      expect(r2.manager.reload().ok).toBe(true);
      expect(run(["-Sn"], r2.engine, "", { services: NO_NAMES }).stdout).toBe("");
      const r3 = rig();
      writeFileSync(file2, text);
      expect(r3.manager.loadFile(file2).ok).toBe(true);
    },
  );

  it("virtual and real servers that leave the configuration leave the table; others' services are adopted", () => {
    run(["-A", "-t", "10.0.0.1:80", "-s", "wlc"], r.engine);
    run(["-a", "-t", "10.0.0.1:80", "-r", "192.168.10.50:80", "-m"], r.engine);
    run(["-A", "-t", "10.0.0.2:80"], r.engine);
    load(
      r,
      `${TWO()}\nvirtual_server 10.0.0.3 80 {\n  protocol TCP\n  real_server 192.168.10.7 80 {\n  }\n}\n`,
    );
    const sn = () => run(["-Sn"], r.engine, "", { services: NO_NAMES }).stdout;
    expect(sn()).toBe(
      [
        "-A -t 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r 192.168.10.1:80 -m -w 3",
        "-a -t 10.0.0.1:80 -r 192.168.10.2:80 -m -w 2",
        "-a -t 10.0.0.1:80 -r 192.168.10.50:80 -m -w 1",
        "-A -t 10.0.0.2:80 -s wlc",
        "-A -t 10.0.0.3:80 -s wlc",
        "-a -t 10.0.0.3:80 -r 192.168.10.7:80 -m -w 1",
        "",
      ].join("\n"),
    );
    load(r, TWO().replace(/ {2}real_server 192\.168\.10\.2 80 \{[\s\S]*?\n {2}\}\n/, ""));
    expect(sn()).toBe(
      [
        "-A -t 10.0.0.1:80 -s rr",
        "-a -t 10.0.0.1:80 -r 192.168.10.1:80 -m -w 3",
        "-a -t 10.0.0.1:80 -r 192.168.10.50:80 -m -w 1",
        "-A -t 10.0.0.2:80 -s wlc",
        "",
      ].join("\n"),
    );
  });
});

describe("lvsadm --health and --import", () => {
  it("shows each check's state, last result, last change and reason", async () => {
    const r = rig();
    const dir = mkdtempSync(join(tmpdir(), "hcstatus-"));
    try {
      const file = join(dir, "k.conf");
      writeFileSync(file, TWO({ vs: "sorry_server 192.168.10.9 80" }));
      const imp = run(["--import", file], r.engine, "", { health: r.manager });
      expect(imp).toEqual({
        stdout: `loaded ${file}: 1 virtual server, 2 real servers, 2 checks\n`,
        stderr: "",
        code: 0,
      });
      r.manager.start();
      r.probes.set("192.168.10.2:80", false, "TCP_CHECK 192.168.10.2:80 connection refused");
      await r.clock.advance(12_300);
      const out = run(["--health"], r.engine, "", { health: r.manager });
      expect(out.code).toBe(0);
      expect(out.stdout).toBe(
        [
          `Health checks: ${file}, loaded 12s ago`,
          // rs2 is probed at 0 and retried at 0.5 s (down), then every delay_loop: 7 probes, 7 failed
          "1 virtual server, 2 real servers, 2 checks; probes 14, failed 7; transitions 0 up, 1 down",
          "Prot LocalAddress:Port     Quorum",
          "  -> RemoteAddress:Port State Weight Check                     Last result   Last change Reason",
          "TCP  10.0.0.1:80         quorum up (live weight 3, quorum 1, hysteresis 0)",
          "  -> 192.168.10.1:80    UP    3      TCP_CHECK 192.168.10.1:80 ok 0.3s ago   -           192.168.10.1:80 ok",
          "  -> 192.168.10.2:80    DOWN  -      TCP_CHECK 192.168.10.2:80 fail 1.8s ago 11s ago     TCP_CHECK 192.168.10.2:80 connection refused",
          "  -> 192.168.10.9:80    idle  -      sorry_server              -             -           standby until quorum is lost",
          "",
        ].join("\n"),
      );
      const bad = join(dir, "bad.conf");
      writeFileSync(bad, "virtual_server 10.0.0.1 80 {\n  frob 1\n  delay_loop x\n}\n");
      expect(run(["--import", bad], r.engine, "", { health: r.manager })).toEqual({
        stdout: "",
        stderr: `${bad}:3: delay_loop: expected a time in seconds (like 5 or 0.5, above 0), got 'x'\nnothing changed\n`,
        code: 1,
      });
      expect(r.dests()).toEqual(["192.168.10.1:80 3"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("without a configuration, and without a health manager", () => {
    const r = rig();
    expect(run(["--health"], r.engine, "", { health: r.manager }).stdout).toBe(
      "No health checks: lvsd has no keepalived configuration (lvsd --config FILE, or lvsadm --import FILE)\n",
    );
    expect(run(["--health"], r.engine)).toEqual({
      stdout: "",
      stderr: "lvsadm: --health: this lvsd has no health manager\n",
      code: 1,
    });
    expect(run(["--health", "-n"], r.engine).stderr).toBe(
      "lvsadm: --health takes no other option (got '-n')\n",
    );
    expect(run(["--import"], r.engine).stderr).toBe("lvsadm: --import needs a keepalived.conf file\n");
    expect(run(["-R"], r.engine, "--import /etc/k.conf\n").stderr).toBe(
      "lvsadm: --import cannot be used inside a restore (-R)\n",
    );
  });
});
