/**
 * The compiled form of the mark chain (src/tables/marks.ts): constants and the flat typed arrays
 * that the data path's classifier walks (src/datapath/classify.ts) or that the chain's compiled
 * function was generated from (src/tables/markjit.ts). Kept apart from marks.ts so that the
 * compiler and the table import it without importing each other.
 */

/** The packet's fields the chain looks at (a parsed FrameView satisfies it). */
export interface MarkInput {
  readonly saddr: number;
  readonly daddr: number;
  readonly proto: number;
  readonly sport: number;
  readonly dport: number;
  readonly ipTotalLen: number;
}

/** The chain applied to a packet that came in on link `link`: its mark (int32, 0 = unmarked). */
export type MarkFn = (v: MarkInput, link: number) => number;

/** Rule targets. NONE: a rule without -j (counts only). */
export const MarkTarget = { NONE: 0, MARK: 1, ACCEPT: 2, RETURN: 3 } as const;
export type MarkTarget = (typeof MarkTarget)[keyof typeof MarkTarget];

/** Which port a port condition looks at. */
export const PortWhich = { SRC: 0, DST: 1, EITHER: 2 } as const;
export type PortWhich = (typeof PortWhich)[keyof typeof PortWhich];

/** Flag bits of a compiled rule. */
export const MF_SRC_NEG = 1;
export const MF_DST_NEG = 2;
export const MF_PROTO = 4;
export const MF_PROTO_NEG = 8;
export const MF_IFACE = 16;
export const MF_IFACE_NEG = 32;

/**
 * The compiled chain the data path reads: rule r's fields at index r of each array; its port
 * conditions are conditions [cStart[r], cEnd[r]), each with ranges [rStart[c], rEnd[c]) of
 * lo/hi. `ifMask[r]` has bit l set when link l's name matches the rule's -i (links 0..31).
 * Built only by MarkTable.commit; never changed afterwards except for the counters.
 */
export class MarkProgram {
  readonly count: number;
  readonly flags: Int32Array;
  readonly saddr: Int32Array;
  readonly smask: Int32Array;
  readonly daddr: Int32Array;
  readonly dmask: Int32Array;
  readonly proto: Int32Array;
  readonly ifMask: Int32Array;
  readonly cStart: Int32Array;
  readonly cEnd: Int32Array;
  readonly cWhich: Uint8Array;
  readonly cNeg: Uint8Array;
  readonly rStart: Int32Array;
  readonly rEnd: Int32Array;
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  readonly target: Uint8Array;
  readonly value: Int32Array;
  readonly mask: Int32Array;
  /** Per rule, packets and bytes (IP total length) that matched it. */
  readonly pkts: Float64Array;
  readonly bytes: Float64Array;
  /** [packets, bytes] that reached the chain's end (the policy, ACCEPT). */
  readonly policy: Float64Array;
  /**
   * The chain compiled to a function (src/tables/markjit.ts), set once by compileMarks; null
   * when it was not compiled (empty, too long, code generation disabled): then the data path
   * interprets the arrays.
   */
  fn: MarkFn | null = null;

  constructor(nRules: number, nConds: number, nRanges: number) {
    this.count = nRules;
    const n = Math.max(1, nRules);
    this.flags = new Int32Array(n);
    this.saddr = new Int32Array(n);
    this.smask = new Int32Array(n);
    this.daddr = new Int32Array(n);
    this.dmask = new Int32Array(n);
    this.proto = new Int32Array(n);
    this.ifMask = new Int32Array(n);
    this.cStart = new Int32Array(n);
    this.cEnd = new Int32Array(n);
    this.target = new Uint8Array(n);
    this.value = new Int32Array(n);
    this.mask = new Int32Array(n);
    this.pkts = new Float64Array(n);
    this.bytes = new Float64Array(n);
    const c = Math.max(1, nConds);
    this.cWhich = new Uint8Array(c);
    this.cNeg = new Uint8Array(c);
    this.rStart = new Int32Array(c);
    this.rEnd = new Int32Array(c);
    const r = Math.max(1, nRanges);
    this.lo = new Int32Array(r);
    this.hi = new Int32Array(r);
    this.policy = new Float64Array(2);
  }
}
