/**
 * Directors on a simulated wire for VRRP manager tests (sync groups, gratuitous ARP, reload):
 * every frame goes through the real engines (parseFrame, the VRRP sink, emitVrrp, ARP), one
 * shared link 0; the clock, timers and script runner are fake. Scripts: `exec.results` maps a
 * program to its exit (true: 0); calls are recorded.
 */
import { parseConfigText } from "../../../src/control/config/parser.js";
import type { EventLog, LogFields } from "../../../src/control/observe/log.js";
import { VrrpManager } from "../../../src/control/vrrp/manager.js";
import type { ScriptResult } from "../../../src/control/vrrp/script.js";
import { Engine } from "../../../src/datapath/engine.js";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";

export class Wire {
  t = 1000;
  timers: { at: number; fn: () => void; live: boolean }[] = [];
  nodes: Node[] = [];
  /** Every frame put on the wire: sender, time, etherType, bytes. */
  frames: { from: string; at: number; type: number; f: Uint8Array }[] = [];
  private queue: [Node, Uint8Array][] = [];
  private busy = false;

  deliver(from: Node): void {
    const tx = from.engine.tx;
    for (let i = 0; i < tx.count; i++) {
      const f = tx.buf.slice(tx.off[i]!, tx.off[i]! + tx.len[i]!);
      this.frames.push({ from: from.name, at: this.t, type: (f[12]! << 8) | f[13]!, f });
      this.queue.push([from, f]);
    }
    tx.reset();
    if (this.busy) return;
    this.busy = true;
    while (this.queue.length > 0) {
      const [src, f] = this.queue.shift()!;
      for (const n of this.nodes) {
        if (n === src || !n.up) continue;
        const b = new FrameBatch(4);
        b.off[0] = 64;
        b.buf.set(f, 64);
        b.len[0] = f.length;
        b.link[0] = 0;
        b.count = 1;
        n.engine.process(b, this.t);
        this.deliver(n);
      }
    }
    this.busy = false;
  }

  /** Run the timers due within `ms`, letting script results (promises) settle after each. */
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

  /** Gratuitous ARPs `from` sent for `vip` (sender = target = vip), with their times. */
  garps(from: string, vip: string): number[] {
    const a = ipToU32(vip);
    return this.frames
      .filter((x) => x.from === from && x.type === 0x0806)
      .filter((x) => {
        const dv = new DataView(x.f.buffer, x.f.byteOffset);
        return dv.getUint32(28) === a && dv.getUint32(38) === a;
      })
      .map((x) => x.at);
  }

  /** VRRP adverts `from` sent: [time, vrid, priority]. */
  adverts(from: string): [number, number, number][] {
    return this.frames
      .filter((x) => x.from === from && x.type === 0x0800 && x.f[23] === 112)
      .map((x) => [x.at, x.f[35]!, x.f[36]!]);
  }
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

export class Node {
  readonly engine = new Engine({ sweepPerBatch: 0 });
  readonly events: LogFields[] = [];
  readonly vrrp: VrrpManager;
  /** Script results by program (default: exit 0). */
  readonly results = new Map<string, boolean>();
  readonly calls: string[][] = [];
  up = true;
  constructor(
    readonly wire: Wire,
    readonly name: string,
    index: number,
    conf: string,
  ) {
    const e = this.engine;
    e.net.addLink("eth0", macToBytes(`02:00:00:00:00:0${index}`), [
      { addr: ipToU32(`10.0.0.${index}`), prefix: 24 },
    ]);
    const log: EventLog = {
      info: (f) => this.events.push(f),
      warn: (f) => this.events.push(f),
      error: (f) => this.events.push(f),
      debug: () => {},
    };
    const cfg = parseConfigText(conf, `${name}.conf`);
    this.vrrp = new VrrpManager(
      cfg.vrrpInstances,
      {
        engine: e,
        linkNames: ["eth0"],
        flush: () => wire.deliver(this),
        now: () => wire.t,
        wallNow: () => 1_700_000_000_000 + wire.t,
        log,
        timers: {
          set: (fn, ms) => {
            const x = { at: wire.t + ms, fn, live: true };
            wire.timers.push(x);
            return x;
          },
          clear: (h) => {
            (h as { live: boolean }).live = false;
          },
        },
        exec: (argv): Promise<ScriptResult> => {
          this.calls.push([...argv]);
          const ok = this.results.get(argv[0] ?? "") ?? true;
          return Promise.resolve({ ok, reason: ok ? "exit 0" : "exit 1" });
        },
      },
      cfg.vrrpSyncGroups,
    );
    wire.nodes.push(this);
  }

  /** Reload `conf` (SIGHUP); returns the manager's result. */
  reload(conf: string): ReturnType<VrrpManager["reload"]> {
    const cfg = parseConfigText(conf, `${this.name}.conf`);
    return this.vrrp.reload(cfg.vrrpInstances, cfg.vrrpSyncGroups);
  }

  state(instance: string): string {
    return this.vrrp.status().find((s) => s.name === instance)?.state ?? "-";
  }

  group(name: string): string {
    return this.vrrp.groupStatus().find((g) => g.name === name)?.state ?? "-";
  }

  transitions(instance?: string): string[] {
    return this.events
      .filter((f) => f.event === "vrrp.transition" && (instance === undefined || f.instance === instance))
      .map((f) => `${instance === undefined ? `${f.instance} ` : ""}${f.from}->${f.to} ${f.reason}`);
  }

  /** Notify scripts run (not vrrp_script runs: those have no "notify" in their path). */
  notifies(): string[][] {
    return this.calls.filter((c) => (c[0] ?? "").includes("notify"));
  }

  owns(vip: string): boolean {
    return !this.engine.owner.disowned(ipToU32(vip));
  }
}
