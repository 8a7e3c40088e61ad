/**
 * Runs a fixture table (fixture.ts) through a real Director with in-memory links: the topology
 * becomes an Engine with its links, routes and neighbours, each link a MemoryLink wrapped in a
 * PcapTap; every row's frames are injected, pumped as one batch at the fake clock's time, and
 * what came out is compared with the row.
 */

import { Director } from "../../../src/datapath/director.js";
import { DROP_COUNT, DROP_NAMES } from "../../../src/datapath/drops.js";
import { Engine } from "../../../src/datapath/engine.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import { PcapTap, PcapWriter } from "../../../src/datapath/io/pcap.js";
import { setIpIdCounter } from "../../../src/datapath/packet/emit.js";
import { ipToU32, macToBytes } from "../../../src/lib/addr.js";
import {
  describeFrame,
  type FixtureTable,
  frameDiff,
  GEN_ID,
  type Input,
  type Row,
  T0,
  type Verdict,
} from "./fixture.js";

/** What one row did. */
export interface Observed {
  /** Egress link of each input frame (-1: none). */
  egress: number[];
  /** Drop counters that moved, by name. */
  drops: Map<string, number>;
  /** Frames parked for ARP during the row. */
  queued: number;
  /** Frames sent, per link, in order. */
  sent: Uint8Array[][];
}

export class FixtureRun {
  readonly table: FixtureTable;
  readonly engine: Engine;
  readonly director: Director;
  readonly links: MemoryLink[] = [];
  readonly pcap = new PcapWriter();
  /** The fake clock (ms). */
  now = T0;

  constructor(table: FixtureTable) {
    this.table = table;
    const e = new Engine(table.engine ?? {});
    const topo = table.topology;
    for (const l of topo.links) {
      const addrs = l.addrs.map((a) => ({ addr: ipToU32(a.addr), prefix: a.prefix }));
      e.net.addLink(l.name, macToBytes(l.mac), addrs, l.mtu ?? 1500);
    }
    for (const r of topo.routes) e.net.addRoute(ipToU32(r.net), r.prefix, ipToU32(r.via));
    for (const n of topo.neighbours) e.net.neigh.learn(ipToU32(n.ip), macToBytes(n.mac), 0, n.link, 0, true);
    table.setup(e);
    this.engine = e;
    this.director = new Director(e);
    for (const l of topo.links) {
      const m = new MemoryLink(l.name, macToBytes(l.mac), l.mtu ?? 1500);
      this.links.push(m);
      this.director.attach(new PcapTap(m, this.pcap, () => this.now));
    }
  }

  /** Inject the row's frames, pump once, and collect what happened. */
  runRow(row: Row): Observed {
    const e = this.engine;
    this.now += row.advanceMs ?? 10;
    row.before?.(e);
    const inputs = asArray(row.input);
    const drops0 = Float64Array.from(e.drops);
    const queued0 = e.queued;
    for (const i of inputs) {
      const l = this.links[i.link];
      if (l === undefined) throw new Error(`${row.description}: no link ${i.link}`);
      l.inject(i.frame);
    }
    setIpIdCounter(GEN_ID);
    const n = this.director.pump(this.now);
    if (n !== inputs.length)
      throw new Error(`${row.description}: pumped ${n} frames, injected ${inputs.length}`);
    const index = batchIndexes(inputs, this.links.length);
    const egress = inputs.map((_, k) => this.director.rx.egress[index[k]!]!);
    const drops = new Map<string, number>();
    for (let r = 1; r < DROP_COUNT; r++) {
      const d = e.drops[r]! - drops0[r]!;
      if (d !== 0) drops.set(DROP_NAMES[r]!, d);
    }
    return { egress, drops, queued: e.queued - queued0, sent: this.links.map((l) => l.drain()) };
  }
}

/** The Director reads links in id order: input k's index in the receive batch. */
function batchIndexes(inputs: Input[], nLinks: number): number[] {
  const idx: number[] = new Array(inputs.length);
  let j = 0;
  for (let l = 0; l < nLinks; l++) {
    for (let k = 0; k < inputs.length; k++) if (inputs[k]!.link === l) idx[k] = j++;
  }
  return idx;
}

export function asArray<T>(x: T | T[]): T[] {
  return Array.isArray(x) ? x : [x];
}

function verdictText(v: Verdict): string {
  if ("forward" in v) return `forwarded on link ${v.forward}`;
  if ("drop" in v) return `dropped (${v.drop})`;
  if ("queued" in v) return "queued for ARP";
  return "consumed by the director";
}

/**
 * Compare what a row did with what it states. Throws one Error listing every difference
 * (verdicts, drop counters, frames per link with a field-level diff).
 */
export function assertRow(run: FixtureRun, row: Row, got: Observed): void {
  const problems: string[] = [];
  const inputs = asArray(row.input);
  const verdicts = asArray(row.expected);
  if (verdicts.length !== inputs.length) {
    throw new Error(`${row.description}: ${inputs.length} input frame(s) but ${verdicts.length} verdict(s)`);
  }
  const wantDrops = new Map<string, number>();
  let wantQueued = 0;
  verdicts.forEach((v, k) => {
    const eg = got.egress[k]!;
    if ("forward" in v) {
      if (eg !== v.forward) problems.push(`frame ${k}: expected ${verdictText(v)}, egress is ${eg}`);
    } else if (eg !== -1) {
      problems.push(`frame ${k}: expected ${verdictText(v)}, but it was forwarded on link ${eg}`);
    }
    if ("drop" in v) {
      if (!DROP_NAMES.includes(v.drop) || v.drop === "ok") throw new Error(`unknown drop reason "${v.drop}"`);
      wantDrops.set(v.drop, (wantDrops.get(v.drop) ?? 0) + 1);
    }
    if ("queued" in v) wantQueued++;
  });
  const names = new Set([...wantDrops.keys(), ...got.drops.keys()]);
  for (const name of names) {
    const w = wantDrops.get(name) ?? 0;
    const g = got.drops.get(name) ?? 0;
    if (w !== g) problems.push(`drop counter ${name}: expected +${w}, got +${g}`);
  }
  if (got.queued !== wantQueued)
    problems.push(`frames queued for ARP: expected ${wantQueued}, got ${got.queued}`);
  for (let l = 0; l < got.sent.length; l++) {
    const want = row.output.filter((o) => o.link === l).map((o) => o.frame);
    const sent = got.sent[l]!;
    const name = run.table.topology.links[l]?.name ?? `link ${l}`;
    if (want.length !== sent.length) {
      problems.push(
        `${name}: expected ${want.length} frame(s), sent ${sent.length}` +
          want.map((f) => `\n    expected: ${describeFrame(f)}`).join("") +
          sent.map((f) => `\n    sent:     ${describeFrame(f)}`).join(""),
      );
      continue;
    }
    want.forEach((f, k) => {
      const d = frameDiff(f, sent[k]!);
      if (d !== "") problems.push(`${name} frame ${k}: ${d}`);
    });
  }
  for (const o of row.output) {
    if (o.link < 0 || o.link >= got.sent.length) problems.push(`output on unknown link ${o.link}`);
  }
  if (problems.length === 0 && row.check) {
    try {
      row.check(run.engine);
    } catch (err) {
      problems.push(`check: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) {
    throw new Error(`${run.table.name}: ${row.description}\n${problems.join("\n")}`);
  }
}
