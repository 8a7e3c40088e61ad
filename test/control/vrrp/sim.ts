/**
 * A discrete-event network for VRRP instances (tests only): a fake clock, instances whose
 * `send` puts adverts on an in-memory link, and a scheduler that runs, in time order, the
 * deliveries and each instance's timer (`tick()` at `deadline()`). Every advert goes through
 * the real codec: `emitVrrp` writes the frame, the receiver runs `parseFrame` + `parseVrrp` and
 * hands the parsed advert to `receive()`, so the state machine and the wire format are tested
 * together. Deliveries due at the same instant as a timer run first.
 */
import { advertFromView, specFromAdvert, VrrpAdvert } from "../../../src/control/vrrp/advert.js";
import {
  type VrrpEvent,
  VrrpInstance,
  type VrrpInstanceConfig,
  VrrpState,
} from "../../../src/control/vrrp/instance.js";
import { parseFrame } from "../../../src/datapath/packet/parse.js";
import { FrameView, ParseStatus } from "../../../src/datapath/packet/view.js";
import {
  emitVrrp,
  parseVrrp,
  VrrpAdvertSpec,
  VrrpStatus,
  VrrpView,
} from "../../../src/datapath/packet/vrrp.js";

export interface SimEvent {
  node: string;
  e: VrrpEvent;
}

export interface Sent {
  node: string;
  at: number;
  priority: number;
  daddr: number;
}

interface Delivery {
  at: number;
  seq: number;
  from: SimNode;
  to: SimNode;
  frame: Uint8Array;
}

export class SimNode {
  inst: VrrpInstance;
  readonly mac: Uint8Array;
  /** false: crashed (no timers, sends and receives nothing). */
  alive = true;
  private ipId = 0;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    cfg: VrrpInstanceConfig,
    index: number,
  ) {
    this.mac = Uint8Array.of(2, 0, 0, 0, 0x12, index + 1);
    this.cfg = cfg;
    this.inst = this.fresh();
  }

  private readonly cfg: VrrpInstanceConfig;

  private fresh(): VrrpInstance {
    return new VrrpInstance(this.cfg, {
      now: () => this.sim.t,
      send: (a) => this.sim.send(this, a),
      onEvent: (e) => this.sim.events.push({ node: this.name, e }),
    });
  }

  /** The process died: no timers, no adverts (not even priority 0), deaf. */
  crash(): void {
    this.alive = false;
  }

  /** A new process after a crash: a fresh instance in INIT (call `inst.start()`). */
  restart(): void {
    this.alive = true;
    this.ipId = 0;
    this.inst = this.fresh();
  }

  /** keepalived's IP id: a per-instance counter from 1 that skips 0. */
  nextIpId(): number {
    this.ipId = (this.ipId + 1) & 0xffff;
    if (this.ipId === 0) this.ipId = 1;
    return this.ipId;
  }

  get state(): VrrpState {
    return this.inst.state;
  }
}

export class Sim {
  t = 0;
  latency: number;
  readonly nodes: SimNode[] = [];
  readonly events: SimEvent[] = [];
  readonly sent: Sent[] = [];
  /** Parse failures of delivered frames (must stay empty: the codec round trip works). */
  readonly badFrames: string[] = [];
  private readonly queue: Delivery[] = [];
  private seq = 0;
  /** Directed links that drop everything: "A>B". */
  private readonly cut = new Set<string>();
  private readonly spec = new VrrpAdvertSpec();
  private readonly frame = new Uint8Array(2048);
  private readonly fv = new FrameView();
  private readonly vv = new VrrpView();
  private readonly adv = new VrrpAdvert();

  constructor(latencyMs = 0) {
    this.latency = latencyMs;
  }

  add(name: string, cfg: Omit<VrrpInstanceConfig, "name">): SimNode {
    const n = new SimNode(this, name, { name, ...cfg }, this.nodes.length);
    this.nodes.push(n);
    return n;
  }

  node(name: string): SimNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  /** Stop delivering from `a` to `b` (both ways with `both`). */
  cutLink(a: string, b: string, both = true): void {
    this.cut.add(`${a}>${b}`);
    if (both) this.cut.add(`${b}>${a}`);
  }

  healLink(a: string, b: string): void {
    this.cut.delete(`${a}>${b}`);
    this.cut.delete(`${b}>${a}`);
  }

  send(from: SimNode, a: VrrpAdvert): void {
    if (!from.alive) return;
    this.sent.push({ node: from.name, at: this.t, priority: a.priority, daddr: a.daddr });
    specFromAdvert(a, from.nextIpId(), this.spec);
    const n = emitVrrp(this.frame, 0, this.spec, from.mac, 0, from.mac, 0);
    if (n === 0) throw new Error("emitVrrp refused an advert from the instance");
    const bytes = this.frame.slice(0, n);
    for (const to of this.nodes) {
      if (to === from || this.cut.has(`${from.name}>${to.name}`)) continue;
      this.queue.push({ at: this.t + this.latency, seq: this.seq++, from, to, frame: bytes });
    }
  }

  private deliver(d: Delivery): void {
    if (!d.to.alive) return;
    const f = d.frame;
    const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
    const fst = parseFrame(f, dv, 0, f.length, this.fv);
    if (fst !== ParseStatus.OK) {
      this.badFrames.push(`parseFrame ${fst}`);
      return;
    }
    const unicast = d.to.inst.cfg.unicastPeers.length > 0 ? 1 : 0;
    const st = parseVrrp(this.fv, this.vv, unicast);
    if (st !== VrrpStatus.OK) {
      this.badFrames.push(`parseVrrp ${st}`);
      return;
    }
    d.to.inst.receive(advertFromView(this.vv, this.adv));
  }

  /** Run every delivery and timer up to and including `until` (ms); the clock ends at `until`. */
  runUntil(until: number): void {
    for (let guard = 0; guard < 1_000_000; guard++) {
      let di = -1;
      for (let i = 0; i < this.queue.length; i++) {
        const q = this.queue[i]!;
        const best = di < 0 ? undefined : this.queue[di]!;
        if (best === undefined || q.at < best.at || (q.at === best.at && q.seq < best.seq)) di = i;
      }
      let tn: SimNode | undefined;
      for (const n of this.nodes) {
        if (!n.alive) continue;
        if (tn === undefined || n.inst.deadline() < tn.inst.deadline()) tn = n;
      }
      const td = di < 0 ? Number.POSITIVE_INFINITY : this.queue[di]!.at;
      const tt = tn === undefined ? Number.POSITIVE_INFINITY : tn.inst.deadline();
      if (Math.min(td, tt) > until) {
        this.t = until;
        return;
      }
      if (td <= tt) {
        const d = this.queue.splice(di, 1)[0]!;
        this.t = Math.max(this.t, d.at);
        this.deliver(d);
      } else {
        this.t = Math.max(this.t, tt);
        tn!.inst.tick();
      }
    }
    throw new Error("simulation did not settle (timer loop?)");
  }

  /** Advance the clock by `ms`. */
  run(ms: number): void {
    this.runUntil(this.t + ms);
  }

  /** Transitions of one node (or all), as [time, node, "FROM>TO", reason]. */
  transitions(node?: string): [number, string, string, string][] {
    const names = ["INIT", "BACKUP", "MASTER", "FAULT"];
    const out: [number, string, string, string][] = [];
    for (const { node: n, e } of this.events) {
      if (e.kind !== "transition" || (node !== undefined && n !== node)) continue;
      out.push([e.at, n, `${names[e.from]}>${names[e.to]}`, e.reason]);
    }
    return out;
  }

  masters(): string[] {
    return this.nodes.filter((n) => n.alive && n.state === VrrpState.MASTER).map((n) => n.name);
  }
}
