/**
 * The VRRP manager (src/control/vrrp/manager.ts) on in-memory engines: two or three directors
 * share one wire (link 0), every frame goes through the real engines (parseFrame, the VRRP sink,
 * emitVrrp), timers and clock are fake.
 */
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { ConfigError } from "../../../src/control/config/types.js";
import type { EventLog, LogFields } from "../../../src/control/observe/log.js";
import { VrrpManager } from "../../../src/control/vrrp/manager.js";
import { Engine } from "../../../src/datapath/engine.js";
import { FrameBatch } from "../../../src/datapath/io/batch.js";
import { ETH_P_ARP } from "../../../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import { IPPROTO_TCP } from "../../../src/lib/proto.js";
import { FwdMethod } from "../../../src/tables/model.js";

const VIP = ipToU32("10.0.0.100");

class Wire {
  t = 1000;
  timers: { at: number; fn: () => void; live: boolean }[] = [];
  nodes: Node[] = [];
  /** Every frame put on the wire: [sender, etherType, bytes]. */
  frames: [string, number, Uint8Array][] = [];
  private queue: [Node, Uint8Array][] = [];
  private busy = false;

  deliver(from: Node): void {
    const tx = from.engine.tx;
    for (let i = 0; i < tx.count; i++) {
      const f = tx.buf.slice(tx.off[i]!, tx.off[i]! + tx.len[i]!);
      this.frames.push([from.name, (f[12]! << 8) | f[13]!, f]);
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
        const j = 0;
        b.off[j] = 64;
        b.buf.set(f, 64);
        b.len[j] = f.length;
        b.link[j] = 0;
        b.count = 1;
        n.engine.process(b, this.t);
        this.deliver(n);
      }
    }
    this.busy = false;
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (next === undefined) break;
      next.live = false;
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }
}

class Node {
  readonly engine = new Engine({ sweepPerBatch: 0 });
  readonly events: LogFields[] = [];
  readonly vrrp: VrrpManager;
  up = true;
  constructor(
    readonly wire: Wire,
    readonly name: string,
    index: number,
    conf: string,
    /** The link's /24 (its address: `${subnet}.${index}`). */
    subnet = "10.0.0",
  ) {
    const e = this.engine;
    e.net.addLink("eth0", macToBytes(`02:00:00:00:00:0${index}`), [
      { addr: ipToU32(`${subnet}.${index}`), prefix: 24 },
    ]);
    const key = { proto: IPPROTO_TCP, addr: VIP, port: 80 };
    e.table.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
    e.table.addDest(key, {
      addr: ipToU32("10.0.0.50"),
      port: 80,
      weight: 1,
      fwd: FwdMethod.ROUTE,
      uThreshold: 0,
      lThreshold: 0,
    });
    const log: EventLog = {
      info: (f) => this.events.push(f),
      warn: (f) => this.events.push(f),
      error: (f) => this.events.push(f),
      debug: () => {},
    };
    this.vrrp = new VrrpManager(parseConfigText(conf, `${name}.conf`).vrrpInstances, {
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
    });
    wire.nodes.push(this);
  }
  state(): string {
    return this.vrrp.status()[0]!.state;
  }
  transitions(): string[] {
    return this.events
      .filter((f) => f.event === "vrrp.transition")
      .map((f) => `${f.from}->${f.to} ${f.reason}`);
  }
}

const conf = (prio: number, extra = "") => `vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority ${prio}
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass secret
  }
  virtual_ipaddress {
    10.0.0.100/24 dev eth0
  }
  ${extra}
}
`;

describe("VrrpManager", () => {
  it("alone: BACKUP with the VIP disowned, MASTER after Master_Down_Interval, then owns and announces it", () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, conf(150));
    a.vrrp.start();
    expect(a.state()).toBe("BACKUP");
    expect(a.engine.owner.disowned(VIP)).toBe(true);
    expect(a.engine.vrrpSink).toBe(a.vrrp);
    w.advance(3414);
    expect(a.state()).toBe("BACKUP");
    w.advance(2);
    expect(a.state()).toBe("MASTER");
    expect(a.engine.owner.disowned(VIP)).toBe(false);
    expect(a.transitions()).toEqual(["INIT->BACKUP start", "BACKUP->MASTER master_down"]);
    // the advert then a burst of garp_master_repeat (5) gratuitous ARPs
    const sent = w.frames.filter(([n]) => n === "a").map(([, t]) => t);
    expect(sent).toEqual([0x0800, ETH_P_ARP, ETH_P_ARP, ETH_P_ARP, ETH_P_ARP, ETH_P_ARP]);
    // adverts every second, a second burst of 5 after garp_master_delay (5 s)
    w.advance(5000);
    const later = w.frames.filter(([n]) => n === "a").map(([, t]) => t);
    expect(later.filter((t) => t === 0x0800).length).toBe(6);
    expect(later.filter((t) => t === ETH_P_ARP).length).toBe(10);
    const s = a.vrrp.status()[0]!;
    expect(s).toMatchObject({
      name: "VI_1",
      state: "MASTER",
      priority: 150,
      vrid: 51,
      master: "10.0.0.1",
      sent: 6,
    });
    expect(a.vrrp.statusText().split("\n")[1]).toMatch(
      /^VI_1 MASTER 150 51 eth0 10\.0\.0\.100 10\.0\.0\.1 6 0 2023-\S+Z master_down -$/,
    );
  });

  it("a pair: the higher priority wins, the backup disowns; stop hands over within Skew_Time", () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, conf(150));
    const b = new Node(w, "b", 2, conf(100));
    b.vrrp.start();
    a.vrrp.start();
    w.advance(10_000);
    expect([a.state(), b.state()]).toEqual(["MASTER", "BACKUP"]);
    expect(a.engine.owner.disowned(VIP)).toBe(false);
    expect(b.engine.owner.disowned(VIP)).toBe(true);
    expect(b.vrrp.status()[0]!.master).toBe("10.0.0.1");
    expect(b.vrrp.status()[0]!.received).toBeGreaterThan(5);
    // SIGTERM on a: priority 0, b takes over after its Skew_Time (609.375 ms), not 3.6 s
    a.vrrp.stop();
    a.up = false;
    expect(a.engine.owner.disowned(VIP)).toBe(true);
    expect(a.engine.vrrpSink).toBeNull();
    expect(a.transitions().at(-1)).toBe("MASTER->INIT stop");
    w.advance(600);
    expect(b.state()).toBe("BACKUP");
    w.advance(20);
    expect(b.state()).toBe("MASTER");
    expect(b.engine.owner.disowned(VIP)).toBe(false);
  });

  it("a link address above 127.255.255.255 (an int32 < 0 on the data path) is a valid source address", () => {
    // lvsd refused such an instance ("invalid source address -1062729215"): found by the live
    // sync-group test, whose inside link is 192.168.10.1
    const w = new Wire();
    const a = new Node(w, "a", 1, conf(150), "192.168.10");
    const b = new Node(w, "b", 2, conf(100), "192.168.10");
    b.vrrp.start();
    a.vrrp.start();
    w.advance(10_000);
    expect([a.state(), b.state()]).toEqual(["MASTER", "BACKUP"]);
    expect(a.vrrp.status()[0]!.master).toBe("192.168.10.1");
    expect(b.vrrp.status()[0]!.master).toBe("192.168.10.1");
    expect(b.vrrp.status()[0]!.received).toBeGreaterThan(5);
  });

  it("a MASTER that hears a higher priority goes BACKUP and disowns its VIP", () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, conf(100));
    a.vrrp.start();
    w.advance(5000);
    expect(a.state()).toBe("MASTER");
    const b = new Node(w, "b", 2, conf(200));
    b.vrrp.start();
    w.advance(5000);
    expect([a.state(), b.state()]).toEqual(["BACKUP", "MASTER"]);
    expect(a.transitions().at(-1)).toBe("MASTER->BACKUP higher_priority");
    expect(a.engine.owner.disowned(VIP)).toBe(true);
  });

  it("a wrong password is counted, not obeyed", () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, conf(100));
    const b = new Node(w, "b", 2, conf(200).replace("secret", "other"));
    a.vrrp.start();
    b.vrrp.start();
    w.advance(10_000);
    expect([a.state(), b.state()]).toEqual(["MASTER", "MASTER"]);
    expect(a.vrrp.status()[0]!.drops["vrrp_auth_failure"]).toBeGreaterThan(0);
  });

  it("refuses an interface that is not one of lvsd's links, with the file and line", () => {
    const w = new Wire();
    expect(() => new Node(w, "x", 1, conf(100).replace("interface eth0", "interface eth9"))).toThrow(
      ConfigError,
    );
    expect(() => new Node(w, "x", 1, conf(100).replace("interface eth0", "interface eth9"))).toThrow(
      "x.conf:3: vrrp_instance VI_1: interface 'eth9' is not one of lvsd's links (eth0)",
    );
  });

  it("compares configurations for SIGHUP regardless of where they were written", () => {
    const w = new Wire();
    const a = new Node(w, "a", 1, conf(100));
    expect(a.vrrp.sameConfig(parseConfigText(`\n\n${conf(100)}`, "other.conf").vrrpInstances)).toBe(true);
    expect(a.vrrp.sameConfig(parseConfigText(conf(101), "a.conf").vrrpInstances)).toBe(false);
  });
});
