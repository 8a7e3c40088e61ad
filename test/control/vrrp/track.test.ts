/**
 * VRRP tracking and notify (src/control/vrrp/track.ts, manager.ts): vrrp_script rise/fall on a
 * fake clock, track_script weights and weight-0 FAULT, track_interface through the host's
 * linkUp, notify_* and `notify` argument order. Scripts are a fake runner; one test runs real
 * processes through execScript (script.ts).
 */
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/control/config/parser.js";
import type { VrrpScriptSpec } from "../../../src/control/config/types.js";
import type { EventLog, LogFields } from "../../../src/control/observe/log.js";
import { VrrpManager } from "../../../src/control/vrrp/manager.js";
import { execScript, type ScriptResult } from "../../../src/control/vrrp/script.js";
import { ScriptStatus, VrrpScriptTracker } from "../../../src/control/vrrp/track.js";
import { Engine } from "../../../src/datapath/engine.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";

class Clock {
  t = 1000;
  timers: { at: number; fn: () => void; live: boolean }[] = [];
  readonly api = {
    set: (fn: () => void, ms: number) => {
      const x = { at: this.t + ms, fn, live: true };
      this.timers.push(x);
      return x;
    },
    clear: (h: unknown) => {
      (h as { live: boolean }).live = false;
    },
  };
  /** Advance, running due timers and letting script results (promises) settle in between. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const next = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      next.live = false;
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
    await settle();
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A fake runner: `ok` decides each vrrp_script run; every call is recorded. */
class FakeExec {
  calls: { argv: string[]; timeout: number; at: number }[] = [];
  ok = new Map<string, boolean>();
  pending = new Map<string, (r: ScriptResult) => void>();
  hang = new Set<string>();
  constructor(private readonly clock: Clock) {}
  readonly fn = (argv: readonly string[], timeout: number): Promise<ScriptResult> => {
    this.calls.push({ argv: [...argv], timeout, at: this.clock.t });
    const prog = argv[0] ?? "";
    if (this.hang.has(prog)) return new Promise((res) => this.pending.set(prog, res));
    const ok = this.ok.get(prog) ?? true;
    return Promise.resolve({ ok, reason: ok ? "exit 0" : "exit 1" });
  };
  runs(prog: string): number {
    return this.calls.filter((c) => c.argv[0] === prog).length;
  }
}

const script = (over: Partial<VrrpScriptSpec> = {}): VrrpScriptSpec => ({
  where: { file: "t", line: 1 },
  name: "chk",
  argv: ["/bin/chk"],
  interval: 1,
  timeout: 1,
  weight: 0,
  reverse: false,
  rise: 1,
  fall: 1,
  initFail: false,
  ...over,
});

describe("VrrpScriptTracker (keepalived's rise/fall)", () => {
  const setup = (spec: VrrpScriptSpec) => {
    const clock = new Clock();
    const exec = new FakeExec(clock);
    const changes: string[] = [];
    const tr = new VrrpScriptTracker([spec], {
      now: () => clock.t,
      timers: clock.api,
      exec: exec.fn,
      onChange: (n, st) => changes.push(`${clock.t}:${n}:${["INIT", "UP", "DOWN"][st]}`),
    });
    return { clock, exec, changes, tr };
  };

  it("runs at start then every interval; INIT until the first result; one success is enough", async () => {
    const { clock, exec, changes, tr } = setup(script({ interval: 2, rise: 3, fall: 2 }));
    expect(tr.status("chk")).toBe(ScriptStatus.INIT);
    tr.start();
    await clock.advance(0);
    expect(exec.calls.map((c) => c.at)).toEqual([1000]);
    expect(exec.calls[0]!.timeout).toBe(1000);
    expect(changes).toEqual(["1000:chk:UP"]);
    await clock.advance(4000);
    expect(exec.calls.map((c) => c.at)).toEqual([1000, 3000, 5000]);
    // fall 2: one failure keeps it UP, the second brings it DOWN
    exec.ok.set("/bin/chk", false);
    await clock.advance(2000);
    expect(tr.status("chk")).toBe(ScriptStatus.UP);
    await clock.advance(2000);
    expect(changes).toEqual(["1000:chk:UP", "9000:chk:DOWN"]);
    // rise 3: two successes are not enough, the third is
    exec.ok.set("/bin/chk", true);
    await clock.advance(4000);
    expect(tr.status("chk")).toBe(ScriptStatus.DOWN);
    await clock.advance(2000);
    expect(changes.at(-1)).toBe("15000:chk:UP");
    tr.stop();
    await clock.advance(10_000);
    expect(exec.calls.length).toBe(8);
  });

  it("the first failure from INIT is DOWN at once, whatever fall says", async () => {
    const { clock, exec, changes, tr } = setup(script({ fall: 5 }));
    exec.ok.set("/bin/chk", false);
    tr.start();
    await clock.advance(0);
    expect(changes).toEqual(["1000:chk:DOWN"]);
  });

  it("init_fail starts DOWN and needs `rise` successes", async () => {
    const { clock, changes, tr } = setup(script({ initFail: true, rise: 2 }));
    expect(tr.status("chk")).toBe(ScriptStatus.DOWN);
    tr.start();
    await clock.advance(0);
    expect(changes).toEqual([]);
    await clock.advance(1000);
    expect(changes).toEqual(["2000:chk:UP"]);
  });

  it("a run still going when the next is due is skipped", async () => {
    const { clock, exec, tr } = setup(script());
    exec.hang.add("/bin/chk");
    tr.start();
    await clock.advance(3500);
    expect(exec.runs("/bin/chk")).toBe(1);
    expect(tr.info("chk")!.skipped).toBe(3);
    exec.pending.get("/bin/chk")!({ ok: true, reason: "exit 0" });
    exec.hang.clear();
    await clock.advance(1000);
    expect(exec.runs("/bin/chk")).toBe(2);
    expect(tr.status("chk")).toBe(ScriptStatus.UP);
  });
});

class Director {
  readonly engine = new Engine({ sweepPerBatch: 0 });
  readonly events: LogFields[] = [];
  readonly clock = new Clock();
  readonly exec = new FakeExec(this.clock);
  readonly up = [true, true];
  readonly vrrp: VrrpManager;
  constructor(conf: string) {
    const e = this.engine;
    e.net.addLink("eth0", macToBytes("02:00:00:00:00:01"), [{ addr: ipToU32("10.0.0.1"), prefix: 24 }]);
    e.net.addLink("eth1", macToBytes("02:00:00:00:00:02"), [{ addr: ipToU32("10.1.0.1"), prefix: 24 }]);
    const log: EventLog = {
      info: (f) => this.events.push(f),
      warn: (f) => this.events.push(f),
      error: (f) => this.events.push(f),
      debug: () => {},
    };
    this.vrrp = new VrrpManager(parseConfigText(conf, "t.conf").vrrpInstances, {
      engine: e,
      linkNames: ["eth0", "eth1"],
      flush: () => e.tx.reset(),
      now: () => this.clock.t,
      log,
      timers: this.clock.api,
      exec: this.exec.fn,
      linkUp: (l) => this.up[l]!,
    });
  }
  get inst() {
    return this.vrrp.instance("VI_1")!;
  }
  state(): string {
    return this.vrrp.status()[0]!.state;
  }
  notifies(): string[][] {
    return this.exec.calls.filter((c) => c.timeout === 30_000).map((c) => c.argv);
  }
}

const conf = (extra: string, top = "") => `${top}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.0.0.100
  }
  ${extra}
}
`;

describe("VrrpManager: notify scripts", () => {
  it("runs the state's script, then `notify` with INSTANCE NAME STATE PRIORITY, on every transition", async () => {
    const d = new Director(
      conf(`notify_master "/n/master arg1"
  notify_backup /n/backup
  notify_fault /n/fault
  notify_stop /n/stop
  notify "/n/any 'two words'"
  track_interface {
    eth1
  }`),
    );
    d.vrrp.start();
    await d.clock.advance(0);
    expect(d.notifies()).toEqual([
      ["/n/backup"],
      ["/n/any", "two words", "INSTANCE", "VI_1", "BACKUP", "100"],
    ]);
    await d.clock.advance(3610);
    expect(d.state()).toBe("MASTER");
    expect(d.notifies().slice(2)).toEqual([
      ["/n/master", "arg1"],
      ["/n/any", "two words", "INSTANCE", "VI_1", "MASTER", "100"],
    ]);
    d.up[1] = false;
    await d.clock.advance(1000);
    expect(d.state()).toBe("FAULT");
    expect(d.notifies().slice(4)).toEqual([
      ["/n/fault"],
      ["/n/any", "two words", "INSTANCE", "VI_1", "FAULT", "100"],
    ]);
    d.vrrp.stop();
    await d.clock.advance(0);
    expect(d.notifies().slice(6)).toEqual([
      ["/n/stop"],
      ["/n/any", "two words", "INSTANCE", "VI_1", "STOP", "100"],
    ]);
    expect(d.events.filter((e) => e.event === "vrrp.notify").length).toBe(8);
  });

  it("a failing notify script is a warning, nothing else", async () => {
    const d = new Director(conf("notify_backup /n/backup"));
    d.exec.ok.set("/n/backup", false);
    d.vrrp.start();
    await d.clock.advance(0);
    expect(d.events.find((e) => e.event === "vrrp.notify_failed")).toMatchObject({
      instance: "VI_1",
      script: "notify_backup",
      program: "/n/backup",
      result: "exit 1",
    });
    expect(d.state()).toBe("BACKUP");
  });
});

describe("VrrpManager: track_script", () => {
  const top = (w: string) => `vrrp_script chk {
  script "/bin/chk --fast"
  interval 2
  ${w}
}`;

  it("weight 0: a failure puts the instance in FAULT (a MASTER sends priority 0), success brings it back", async () => {
    const d = new Director(conf("track_script {\n chk\n}", top("")));
    d.vrrp.start();
    await d.clock.advance(4000);
    expect(d.exec.calls[0]!.argv).toEqual(["/bin/chk", "--fast"]);
    expect(d.state()).toBe("MASTER");
    d.exec.ok.set("/bin/chk", false);
    await d.clock.advance(2000);
    expect(d.state()).toBe("FAULT");
    expect(d.inst.counters.priZeroSent).toBe(1);
    expect(d.inst.faultsDown).toEqual(["script chk"]);
    d.exec.ok.set("/bin/chk", true);
    await d.clock.advance(2000);
    expect(d.state()).toBe("BACKUP");
    expect(d.events.filter((e) => e.event === "vrrp.script").map((e) => e.status)).toEqual([
      "UP",
      "DOWN",
      "UP",
    ]);
  });

  it("a negative weight lowers the priority while failing; a positive one raises it while up", async () => {
    const d = new Director(conf("track_script {\n chk\n}", top("weight -30")));
    d.vrrp.start();
    await d.clock.advance(0);
    expect(d.inst.effectivePriority).toBe(100);
    d.exec.ok.set("/bin/chk", false);
    await d.clock.advance(2000);
    expect(d.inst.effectivePriority).toBe(70);
    expect(d.state()).toBe("BACKUP");

    const p = new Director(conf("track_script {\n chk weight 20\n}", top("weight -30")));
    p.vrrp.start();
    await p.clock.advance(0);
    expect(p.inst.effectivePriority).toBe(120);
    p.exec.ok.set("/bin/chk", false);
    await p.clock.advance(2000);
    expect(p.inst.effectivePriority).toBe(100);
  });

  it("reverse flips up and down; a script shared by two instances runs once", async () => {
    const d = new Director(
      `${top("")}
vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  virtual_ipaddress {
    10.0.0.100
  }
  track_script {
    chk weight -10 reverse
  }
}
vrrp_instance VI_2 {
  interface eth0
  virtual_router_id 52
  virtual_ipaddress {
    10.0.0.101
  }
  track_script {
    chk
  }
}`,
    );
    d.vrrp.start();
    await d.clock.advance(6000);
    expect(d.exec.runs("/bin/chk")).toBe(4); // t = 1, 3, 5, 7 s
    expect(d.inst.effectivePriority).toBe(90);
    expect(d.vrrp.instance("VI_2")!.effectivePriority).toBe(100);
  });
});

describe("VrrpManager: track_interface", () => {
  it("weight 0: down → FAULT within a poll, up → BACKUP; a weight adjusts the priority instead", async () => {
    const d = new Director(conf("track_interface {\n eth1\n}"));
    d.vrrp.start();
    d.up[1] = false;
    await d.clock.advance(1000);
    expect(d.state()).toBe("FAULT");
    expect(d.events.find((e) => e.event === "vrrp.track_interface")).toMatchObject({
      interface: "eth1",
      up: false,
    });
    d.up[1] = true;
    await d.clock.advance(1000);
    expect(d.state()).toBe("BACKUP");

    const w = new Director(conf("track_interface {\n eth1 weight -50\n}"));
    w.up[1] = false;
    w.vrrp.start();
    expect(w.inst.effectivePriority).toBe(50);
    expect(w.state()).toBe("BACKUP");
  });

  it("a track_interface that is not one of lvsd's links is a config error with its line", () => {
    expect(() => new Director(conf("track_interface {\n  eth9\n}"))).toThrow(/t.conf:\d+: .*eth9/);
  });
});

describe("execScript (real processes)", () => {
  it("exit status, a missing program, and a timeout that kills the script", async () => {
    expect(await execScript(["/bin/true"], 5000)).toEqual({ ok: true, reason: "exit 0" });
    expect(await execScript(["/bin/sh", "-c", "exit 3"], 5000)).toEqual({ ok: false, reason: "exit 3" });
    expect((await execScript(["/nonexistent/x"], 5000)).ok).toBe(false);
    const t0 = Date.now();
    expect(await execScript(["/bin/sleep", "10"], 200)).toEqual({
      ok: false,
      reason: "timed out after 200 ms",
    });
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
