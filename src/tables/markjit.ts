/**
 * The mark chain compiled to a JavaScript function, as a BPF JIT turns a filter into machine code:
 * each rule becomes a labelled block of comparisons against constants, so a packet that meets
 * the DR tutorial's one rule (`-d VIP -p tcp -m multiport --dports 80,443 -j MARK --set-mark
 * 666`) costs a handful of compares instead of a walk over the program's typed arrays (bench:
 * about 6 ns against 60 ns for the interpreter, src/datapath/classify.ts, in the same run).
 *
 * The generated function has exactly the interpreter's semantics, counters included (it bumps
 * the same `pkts`/`bytes`/`policy` arrays of the MarkProgram, so counter carry-over and `-L -v`
 * are unchanged); a property test runs both over random chains and packets. Only numbers are
 * written into the source (every value goes through `| 0` or a range check first), so nothing a
 * client sends can become code. The compile runs in the control plane when the chain changes.
 *
 * Not compiled (the interpreter runs instead): chains longer than JIT_MAX_RULES (TurboFan stops
 * optimizing very large functions, and a long chain is not the case to speed up), and processes
 * where code generation from strings is disabled (`--disallow-code-generation-from-strings`).
 */
import {
  type MarkFn,
  type MarkProgram,
  MarkTarget,
  MF_DST_NEG,
  MF_IFACE,
  MF_IFACE_NEG,
  MF_PROTO,
  MF_PROTO_NEG,
  MF_SRC_NEG,
  PortWhich,
} from "./markprog.js";

/** Longest chain compiled; longer ones are interpreted. */
export const JIT_MAX_RULES = 256;

/** An int32 literal (the only way a value enters the generated source). */
function lit(n: number): string {
  const v = n | 0;
  return v < 0 ? `(${v})` : String(v);
}

/** The port condition c of the program as a boolean expression (true: some range holds the port). */
function portHit(m: MarkProgram, c: number): string {
  const which = m.cWhich[c]!;
  const terms: string[] = [];
  for (let g = m.rStart[c]!; g < m.rEnd[c]!; g++) {
    const lo = m.lo[g]! | 0;
    const hi = m.hi[g]! | 0;
    for (const port of which === PortWhich.SRC ? ["sp"] : which === PortWhich.DST ? ["dp"] : ["sp", "dp"])
      terms.push(lo === hi ? `${port} === ${lit(lo)}` : `(${port} >= ${lit(lo)} && ${port} <= ${lit(hi)})`);
  }
  return terms.length === 0 ? "false" : terms.join(" || ");
}

/** The source of rule r's block: `break rN` when a condition fails, else count and act. */
function ruleBlock(m: MarkProgram, r: number): string {
  const f = m.flags[r]!;
  const out: string[] = [];
  const br = `break r${r};`;
  const sm = m.smask[r]! | 0;
  if (sm !== 0 || (f & MF_SRC_NEG) !== 0)
    out.push(
      `if (((s ^ ${lit(m.saddr[r]!)}) & ${lit(sm)}) ${(f & MF_SRC_NEG) !== 0 ? "===" : "!=="} 0) ${br}`,
    );
  const dm = m.dmask[r]! | 0;
  if (dm !== 0 || (f & MF_DST_NEG) !== 0)
    out.push(
      `if (((d ^ ${lit(m.daddr[r]!)}) & ${lit(dm)}) ${(f & MF_DST_NEG) !== 0 ? "===" : "!=="} 0) ${br}`,
    );
  if ((f & MF_PROTO) !== 0)
    out.push(`if (v.proto ${(f & MF_PROTO_NEG) !== 0 ? "===" : "!=="} ${lit(m.proto[r]!)}) ${br}`);
  if ((f & MF_IFACE) !== 0)
    out.push(`if ((${lit(m.ifMask[r]!)} & lbit) ${(f & MF_IFACE_NEG) !== 0 ? "!==" : "==="} 0) ${br}`);
  for (let c = m.cStart[r]!; c < m.cEnd[r]!; c++) {
    const hit = portHit(m, c);
    out.push(m.cNeg[c] !== 0 ? `if (${hit}) ${br}` : `if (!(${hit})) ${br}`);
  }
  out.push(`pk[${r}]++; by[${r}] += len;`);
  const t = m.target[r]!;
  if (t === MarkTarget.MARK) out.push(`mark = (mark & ${lit(~m.mask[r]!)}) ^ ${lit(m.value[r]!)};`);
  else if (t === MarkTarget.ACCEPT) out.push("return mark;");
  else if (t === MarkTarget.RETURN) out.push("break chain;");
  return `r${r}: {\n${out.join("\n")}\n}`;
}

/** The generated function's source (exported for tests and for reading what a chain became). */
export function markFnSource(m: MarkProgram): string {
  const blocks: string[] = [];
  for (let r = 0; r < m.count; r++) blocks.push(ruleBlock(m, r));
  return [
    '"use strict";',
    "return function markChain(v, link) {",
    "let mark = 0;",
    "const s = v.saddr | 0;",
    "const d = v.daddr | 0;",
    "const sp = v.sport;",
    "const dp = v.dport;",
    "const len = v.ipTotalLen;",
    "const lbit = link >= 0 && link < 32 ? 1 << link : 0;",
    `chain: {\n${blocks.join("\n")}\n}`,
    "pol[0]++; pol[1] += len;",
    "return mark;",
    "};",
  ].join("\n");
}

/** Compile `m` (null: too long, or code generation is disabled; the caller interprets instead). */
export function compileMarkFn(m: MarkProgram): MarkFn | null {
  if (m.count === 0 || m.count > JIT_MAX_RULES) return null;
  try {
    const make = new Function("pk", "by", "pol", markFnSource(m)) as (
      pk: Float64Array,
      by: Float64Array,
      pol: Float64Array,
    ) => MarkFn;
    return make(m.pkts, m.bytes, m.policy); // numbers only went into the source (see the header)
  } catch {
    return null; // EvalError under --disallow-code-generation-from-strings
  }
}
