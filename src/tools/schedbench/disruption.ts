/**
 * Stickiness and disruption: how many flows change dest when the pool changes.
 *
 * For each change — a dest added, a dest removed, a dest set to weight 0 — a fixed set of flow
 * keys (drawn like the scenario's arrivals: clients by population share, a source port, the VIP
 * or one of the scenario's targets) is scheduled before and after the change:
 *
 *   pass 1: every key opens a connection (bound to its dest, held open, so least-connection
 *           fallbacks inside lblc/lblcr see load); then all of them close;
 *   change: through the ServiceTable, as lvsadm would do it;
 *   pass 2: every key connects again, in the same order.
 *
 * Of the keys that had a dest before the change: moved = those whose dest differs (or that now
 * get none); necessary = the movement the change forces (keys on the removed/quiesced dest
 * before, or on the added dest after); collateral = keys that moved between two dests the change
 * did not touch; dropped = keys left with no dest.
 * Only for schedulers whose choice is a function of the key (sh, dh, mh, lblc, lblcr) is
 * "the same key before and after" meaningful; for the others these figures are null.
 *
 * With persistence, pass 1 also creates a template per client network (the scenario's mask, or
 * /32 without persistence) and pass 2 uses it when it is still valid — the engine's rule: its dest
 * is still in the service (and, with expire-quiescent, has weight > 0). This is computed for every
 * scheduler: it is how persistence makes any scheduler sticky.
 */

import { clock } from "../../datapath/clock.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";
import { type Dest, destChanged, FwdMethod, SVC_F_PERSISTENT } from "../../tables/model.js";
import { type DestOptions, type ServiceKey, ServiceTable } from "../../tables/services.js";
import { deriveSeed, Rng } from "./rng.js";
import type { DestSpec, Scenario } from "./scenario.js";
import { isKeyBased, type SchedVariant, variantFlagBits } from "./variants.js";
import { AddrSampler, pickPopulation } from "./workload.js";

export type ChangeKind = "add" | "remove" | "weight0";
export const CHANGE_KINDS: readonly ChangeKind[] = ["add", "remove", "weight0"];

export interface ChangeResult {
  readonly change: ChangeKind;
  /** The dest removed or quiesced, or the one added. */
  readonly target: string;
  readonly flows: number;
  /** Fractions of the flow keys (null for schedulers that are not key-based). */
  readonly moved: number | null;
  readonly necessary: number | null;
  readonly collateral: number | null;
  readonly dropped: number | null;
  /** With persistence templates made before the change. */
  readonly persistMoved: number;
  readonly persistDropped: number;
}

export interface DisruptionResult {
  readonly scheduler: string;
  readonly keyBased: boolean;
  readonly changes: readonly ChangeResult[];
}

export interface ProbeFlows {
  readonly saddr: Uint32Array;
  readonly sport: Uint16Array;
  readonly daddr: Uint32Array;
}

const STREAM_PROBE = 10;
const CLOCK_ORIGIN_MS = 1_000_000;
export const DEFAULT_PROBE_FLOWS = 20_000;

/** Draw `n` flow keys like the scenario's arrivals at time 0. */
export function probeFlows(scn: Scenario, n: number, seed = scn.seed): ProbeFlows {
  const r = new Rng(deriveSeed(seed, STREAM_PROBE));
  const saddr = new Uint32Array(n);
  const sport = new Uint16Array(n);
  const daddr = new Uint32Array(n);
  const shares = scn.clients.map((c) => c.share);
  const total = shares.reduce((a, x) => a + x, 0);
  const samplers = scn.clients.map((c) => new AddrSampler(c));
  const tgt = scn.targets ? new AddrSampler(scn.targets) : null;
  for (let i = 0; i < n; i++) {
    if (samplers.length > 0) {
      saddr[i] = samplers[pickPopulation(shares, r.float() * total)]!.pick(r);
    } else {
      saddr[i] = (0x0a000000 + r.int(1 << 24)) >>> 0; // capture replay: any 10/8 client
    }
    sport[i] = 1024 + r.int(65536 - 1024);
    daddr[i] = tgt ? tgt.pick(r) : scn.vipAddr;
  }
  return { saddr, sport, daddr };
}

interface Setup {
  readonly table: ServiceTable;
  readonly key: ServiceKey;
  /** Dest → index in the scenario's initial dests (the added one gets dests.length). */
  readonly index: Map<Dest, number>;
}

function destOpts(spec: DestSpec, weight = spec.weight): DestOptions {
  return {
    addr: spec.addr,
    port: spec.port,
    weight,
    fwd: FwdMethod.MASQ,
    uThreshold: spec.uThreshold,
    lThreshold: spec.lThreshold,
  };
}

function setup(scn: Scenario, v: SchedVariant): Setup {
  const mod = v.module;
  const table = new ServiceTable((name) => (name === mod.name ? mod : undefined));
  const key: ServiceKey = {
    proto: scn.proto === "udp" ? IPPROTO_UDP : IPPROTO_TCP,
    addr: scn.vipAddr,
    port: scn.vipPort,
  };
  const p = scn.persistence;
  table.addService(key, {
    sched: mod.name,
    flags: variantFlagBits(v, scn.schedFlags) | (p ? SVC_F_PERSISTENT : 0),
    timeout: p ? Math.max(1, Math.round(p.timeoutMs / 1000)) : 0,
    netmask: p ? p.mask : 0xffffffff,
  });
  const index = new Map<Dest, number>();
  for (let i = 0; i < scn.dests.length; i++) index.set(table.addDest(key, destOpts(scn.dests[i]!)), i);
  return { table, key, index };
}

/** A dest to add: the first dest's weight and capacity at a fresh address. */
export function addedDestSpec(scn: Scenario): DestSpec {
  const first = scn.dests[0]!;
  let addr = 0;
  for (const d of scn.dests) if (d.addr > addr) addr = d.addr;
  return { ...first, name: "added", addr: (addr + 1) >>> 0, line: 0 };
}

/**
 * Schedule every flow key once (pass). `tpl`, when given, maps client networks to dest indexes
 * (persistence): valid templates are used, and new picks recorded. Returns dest indexes (-1 = none).
 */
function pass(
  s: Setup,
  flows: ProbeFlows,
  proto: number,
  tpl: { map: Map<number, number>; mask: number; valid: (i: number) => boolean } | null,
): Int32Array {
  const svc = s.table.find(s.key)!;
  const sched = svc.sched!;
  const n = flows.saddr.length;
  const out = new Int32Array(n);
  const bound: Dest[] = [];
  const flow = { saddr: 0, daddr: 0, sport: 0, dport: svc.port, proto };
  const byIndex = new Map<number, Dest>();
  for (const [d, i] of s.index) if (svc.dests.includes(d)) byIndex.set(i, d);
  for (let k = 0; k < n; k++) {
    flow.saddr = flows.saddr[k]!;
    flow.sport = flows.sport[k]!;
    flow.daddr = flows.daddr[k]!;
    let d: Dest | undefined;
    let net = 0;
    if (tpl) {
      net = (flow.saddr & tpl.mask) >>> 0;
      const i = tpl.map.get(net);
      if (i !== undefined && tpl.valid(i)) d = byIndex.get(i);
    }
    if (d === undefined) {
      d = sched.select(svc, flow);
      if (tpl && d !== undefined) tpl.map.set(net, s.index.get(d)!);
    }
    if (d === undefined) {
      out[k] = -1;
      continue;
    }
    out[k] = s.index.get(d)!;
    d.activeConns++;
    destChanged(d); // re-rank it in the scheduler's index (lc, wlc, ...)
    bound.push(d);
  }
  // Close them all (the dests' counters return to zero; caches and templates stay).
  for (const d of bound) {
    d.activeConns--;
    destChanged(d);
    sched.onConnDone?.(d);
  }
  return out;
}

function applyChange(scn: Scenario, s: Setup, change: ChangeKind): { target: number; name: string } {
  const first = scn.dests[0]!;
  switch (change) {
    case "remove":
      s.table.deleteDest(s.key, first.addr, first.port);
      return { target: 0, name: first.name };
    case "weight0":
      s.table.editDest(s.key, destOpts(first, 0));
      return { target: 0, name: first.name };
    case "add": {
      const spec = addedDestSpec(scn);
      s.index.set(s.table.addDest(s.key, destOpts(spec)), scn.dests.length);
      return { target: scn.dests.length, name: spec.name };
    }
    default: {
      const never: never = change;
      throw new Error(`unknown change ${never}`);
    }
  }
}

/**
 * Fractions of the keys that had a dest before the change (keys the scheduler refused before
 * are not "moved" when they get a dest afterwards).
 */
function compare(before: Int32Array, after: Int32Array, target: number, change: ChangeKind) {
  const n = before.length;
  let had = 0;
  let moved = 0;
  let necessary = 0;
  let collateral = 0;
  let dropped = 0;
  for (let k = 0; k < n; k++) {
    const b = before[k]!;
    const a = after[k]!;
    if (b === -1) continue;
    had++;
    if (change === "add" ? a === target : b === target) necessary++;
    if (a === b) continue;
    moved++;
    if (a === -1) dropped++;
    else if (b !== target && a !== target) collateral++;
  }
  const f = (x: number): number => (had > 0 ? x / had : Number.NaN);
  return { moved: f(moved), necessary: f(necessary), collateral: f(collateral), dropped: f(dropped) };
}

/** Measure disruption for one scheduler variant. */
export function probeDisruption(
  scn: Scenario,
  v: SchedVariant,
  flows: ProbeFlows = probeFlows(scn, DEFAULT_PROBE_FLOWS),
): DisruptionResult {
  const saved = clock.nowMs;
  clock.nowMs = CLOCK_ORIGIN_MS;
  try {
    const keyBased = isKeyBased(v);
    const proto = scn.proto === "udp" ? IPPROTO_UDP : IPPROTO_TCP;
    const mask = scn.persistence?.mask ?? 0xffffffff;
    const expireQuiescent = scn.persistence?.expireQuiescent ?? false;
    const changes: ChangeResult[] = [];
    for (const change of CHANGE_KINDS) {
      if (change !== "add" && scn.dests.length < 2) continue; // nothing left to move to
      // Without persistence.
      const s = setup(scn, v);
      const before = pass(s, flows, proto, null);
      const { target, name } = applyChange(scn, s, change);
      const after = pass(s, flows, proto, null);
      const plain = compare(before, after, target, change);
      // With persistence templates.
      const sp = setup(scn, v);
      const map = new Map<number, number>();
      const pBefore = pass(sp, flows, proto, { map, mask, valid: () => true });
      applyChange(scn, sp, change);
      const valid = (i: number): boolean =>
        !(i === target && (change === "remove" || (change === "weight0" && expireQuiescent)));
      const pAfter = pass(sp, flows, proto, { map, mask, valid });
      const pers = compare(pBefore, pAfter, target, change);
      changes.push({
        change,
        target: name,
        flows: flows.saddr.length,
        moved: keyBased ? plain.moved : null,
        necessary: keyBased ? plain.necessary : null,
        collateral: keyBased ? plain.collateral : null,
        dropped: keyBased ? plain.dropped : null,
        persistMoved: pers.moved,
        persistDropped: pers.dropped,
      });
    }
    return { scheduler: v.label, keyBased, changes };
  } finally {
    clock.nowMs = saved;
  }
}
