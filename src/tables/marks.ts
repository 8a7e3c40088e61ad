/**
 * Firewall-mark rules: the mangle table's PREROUTING chain as lvsd keeps it, so that the
 * `iptables -t mangle -A PREROUTING ... -j MARK --set-mark N` lines of the LVS tutorials (typed
 * as `lvs-iptables ...`, src/control/iptables.ts) give packets the mark that `-f N` services
 * are found by (docs/fwmark.md).
 *
 * The control plane keeps the rules as objects (MarkRule) in chain order and, after every
 * change, compiles them into one MarkProgram: flat typed arrays, one slot per rule, that the
 * data path's classifier (src/datapath/classify.ts) walks without allocating. Per-rule packet
 * and byte counters live in the program (the data path bumps them); a recompile carries them
 * over to the new program, rule by rule, so inserting or deleting a rule keeps the others'
 * counts, as iptables does.
 *
 * The semantics are netfilter's: rules are tried in order; a rule matches when every one of its
 * conditions holds (each possibly negated with `!`); MARK is not terminating, so every matching
 * MARK rule applies `mark = (mark & ~mask) ^ value` (xt_MARK revision 2) and the walk goes on;
 * ACCEPT ends the chain, RETURN ends it through the policy. Packets start with mark 0.
 */

import { compileMarkFn } from "./markjit.js";
import {
  MarkProgram,
  MarkTarget,
  MF_DST_NEG,
  MF_IFACE,
  MF_IFACE_NEG,
  MF_PROTO,
  MF_PROTO_NEG,
  MF_SRC_NEG,
  type PortWhich,
} from "./markprog.js";
import type { ServiceTable } from "./services.js";

export {
  type MarkFn,
  type MarkInput,
  MarkProgram,
  MarkTarget,
  MF_DST_NEG,
  MF_IFACE,
  MF_IFACE_NEG,
  MF_PROTO,
  MF_PROTO_NEG,
  MF_SRC_NEG,
  PortWhich,
} from "./markprog.js";

/** One port condition: `--sport/--dport N[:M]` (tcp/udp match) or multiport's list of ports and ranges. */
export interface PortMatch {
  /** "tcp"/"udp" for --sport/--dport (one range), "multiport" for --sports/--dports/--ports. */
  readonly match: "tcp" | "udp" | "multiport";
  readonly which: PortWhich;
  readonly neg: boolean;
  /** Inclusive [lo, hi] ranges (lo === hi for a single port). */
  readonly ranges: readonly (readonly [number, number])[];
}

/** One rule, as the control plane keeps it (addresses are uint32, masks too; mask 0 = any). */
export interface MarkRule {
  src: number;
  srcMask: number;
  srcNeg: boolean;
  dst: number;
  dstMask: number;
  dstNeg: boolean;
  /** IP protocol number; 0 = all. */
  proto: number;
  protoNeg: boolean;
  /** Input link name ("" = any); a trailing "+" matches every name that starts with the rest. */
  iface: string;
  ifaceNeg: boolean;
  /** The tcp/udp match (at most one, with at most one --sport and one --dport) and multiport matches, in the order given. */
  ports: PortMatch[];
  target: MarkTarget;
  /** MARK: the new mark is (mark & ~mask) ^ value. */
  value: number;
  mask: number;
  /** Counters (carried over between programs; read them through MarkTable.counters). */
  pkts: number;
  bytes: number;
}

/** A rule that matches every packet and has no target yet (what `-A` starts from). */
export function emptyMarkRule(): MarkRule {
  return {
    src: 0,
    srcMask: 0,
    srcNeg: false,
    dst: 0,
    dstMask: 0,
    dstNeg: false,
    proto: 0,
    protoNeg: false,
    iface: "",
    ifaceNeg: false,
    ports: [],
    target: MarkTarget.NONE,
    value: 0,
    mask: 0,
    pkts: 0,
    bytes: 0,
  };
}

/** Whether link name `name` matches an -i value (iptables: a trailing "+" is a prefix match). */
export function ifaceMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith("+")) return name.startsWith(pattern.slice(0, -1));
  return name === pattern;
}

/** Compile `rules` for links named `links` (index = link number). Counters start from the rules'. */
export function compileMarks(rules: readonly MarkRule[], links: readonly string[]): MarkProgram {
  let nConds = 0;
  let nRanges = 0;
  for (const r of rules) {
    nConds += r.ports.length;
    for (const p of r.ports) nRanges += p.ranges.length;
  }
  const m = new MarkProgram(rules.length, nConds, nRanges);
  let c = 0;
  let g = 0;
  rules.forEach((r, i) => {
    let f = 0;
    if (r.srcNeg) f |= MF_SRC_NEG;
    if (r.dstNeg) f |= MF_DST_NEG;
    if (r.proto !== 0) f |= MF_PROTO | (r.protoNeg ? MF_PROTO_NEG : 0);
    if (r.iface !== "") {
      f |= MF_IFACE | (r.ifaceNeg ? MF_IFACE_NEG : 0);
      let bits = 0;
      links.forEach((name, l) => {
        if (l < 32 && ifaceMatches(r.iface, name)) bits |= 1 << l;
      });
      m.ifMask[i] = bits;
    }
    m.flags[i] = f;
    m.smask[i] = r.srcMask | 0;
    m.saddr[i] = (r.src & r.srcMask) | 0;
    m.dmask[i] = r.dstMask | 0;
    m.daddr[i] = (r.dst & r.dstMask) | 0;
    m.proto[i] = r.proto;
    m.cStart[i] = c;
    for (const p of r.ports) {
      m.cWhich[c] = p.which;
      m.cNeg[c] = p.neg ? 1 : 0;
      m.rStart[c] = g;
      for (const [lo, hi] of p.ranges) {
        m.lo[g] = lo;
        m.hi[g] = hi;
        g++;
      }
      m.rEnd[c] = g;
      c++;
    }
    m.cEnd[i] = c;
    m.target[i] = r.target;
    m.value[i] = r.value | 0;
    m.mask[i] = r.mask | 0;
    m.pkts[i] = r.pkts;
    m.bytes[i] = r.bytes;
  });
  m.fn = compileMarkFn(m);
  return m;
}

/** A rule's error as the chain reports it (the command maps the code to iptables' message). */
export class MarkRuleError extends Error {
  readonly code: "EINDEX_DELETE" | "EINDEX_INSERT" | "ENOENT";
  constructor(code: MarkRuleError["code"], message: string) {
    super(message);
    this.name = "MarkRuleError";
    this.code = code;
  }
}

/**
 * The PREROUTING chain: its rules in order and the program the data path reads (`program`,
 * replaced whole on every change, between batches). With a ServiceTable, the addresses that MARK
 * rules name as a single destination (`-d VIP`, not negated) are handed to it as VIPs, so lvsd
 * answers ARP and ping for them as it does for the VIP of a `-t`/`-u` service.
 */
export class MarkTable {
  private rules: MarkRule[] = [];
  /** What the data path reads. An empty program costs it one comparison per new connection. */
  program: MarkProgram = new MarkProgram(0, 0, 0);
  /** The names of the links, by link number, for -i (the engine sets it). */
  linkNames: () => readonly string[] = () => [];
  private policyPkts = 0;
  private policyBytes = 0;
  private readonly services: ServiceTable | undefined;
  /** Bumped on every change. */
  generation = 0;

  constructor(services?: ServiceTable) {
    this.services = services;
  }

  get length(): number {
    return this.rules.length;
  }

  /** The rules with their current counters (copies). */
  list(): MarkRule[] {
    this.harvest();
    return this.rules.map((r) => ({ ...r, ports: [...r.ports] }));
  }

  /** [packets, bytes] that reached the end of the chain. */
  policyCounters(): [number, number] {
    this.harvest();
    return [this.policyPkts, this.policyBytes];
  }

  append(rule: MarkRule): void {
    this.harvest();
    this.rules.push(rule);
    this.commit();
  }

  /** Insert before rule number `num` (1 = first); num may be length + 1. */
  insert(num: number, rule: MarkRule): void {
    if (num < 1 || num > this.rules.length + 1)
      throw new MarkRuleError("EINDEX_INSERT", "Index of insertion too big.");
    this.harvest();
    this.rules.splice(num - 1, 0, rule);
    this.commit();
  }

  /** Delete rule number `num` (1 = first). */
  deleteAt(num: number): void {
    if (num < 1 || num > this.rules.length)
      throw new MarkRuleError("EINDEX_DELETE", "Index of deletion too big.");
    this.harvest();
    this.rules.splice(num - 1, 1);
    this.commit();
  }

  /** Delete the first rule for which `same(rule)` holds. */
  deleteMatching(same: (r: MarkRule) => boolean): void {
    const i = this.rules.findIndex(same);
    if (i < 0) throw new MarkRuleError("ENOENT", "Bad rule (does a matching rule exist in that chain?).");
    this.deleteAt(i + 1);
  }

  flush(): void {
    this.harvest();
    this.rules = [];
    this.commit();
  }

  /** Zero every counter, the policy's too. */
  zero(): void {
    this.harvest();
    for (const r of this.rules) r.pkts = r.bytes = 0;
    this.policyPkts = this.policyBytes = 0;
    this.commit();
  }

  /** Recompile (after links changed). */
  recompile(): void {
    this.harvest();
    this.commit();
  }

  /** Copy the program's counters back into the rules (program slot i is rule i). */
  private harvest(): void {
    const p = this.program;
    for (let i = 0; i < p.count && i < this.rules.length; i++) {
      this.rules[i]!.pkts = p.pkts[i]!;
      this.rules[i]!.bytes = p.bytes[i]!;
    }
    this.policyPkts = p.policy[0]!;
    this.policyBytes = p.policy[1]!;
  }

  private commit(): void {
    const p = compileMarks(this.rules, this.linkNames());
    p.policy[0] = this.policyPkts;
    p.policy[1] = this.policyBytes;
    this.program = p;
    this.generation++;
    this.services?.setMarkVips(this.markVips());
  }

  /** Single, non-negated destinations of MARK rules: the VIPs of fwmark services in the tutorials. */
  private markVips(): number[] {
    const out: number[] = [];
    for (const r of this.rules)
      if (r.target === MarkTarget.MARK && r.dstMask >>> 0 === 0xffffffff && !r.dstNeg) out.push(r.dst >>> 0);
    return out;
  }
}
