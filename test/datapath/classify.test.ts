/**
 * The mark classifier (src/datapath/classify.ts) over programs compiled from rules
 * (src/tables/marks.ts): golden cases for each condition and target, and a property against a
 * straightforward matcher written from netfilter's rules (ip_packet_match, the tcp/udp and
 * multiport matches, xt_MARK revision 2). Every case runs twice: through the interpreter
 * (classifyMark) and through the chain's compiled function (src/tables/markjit.ts, via markOf).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { classifyMark, type MarkInput, markOf } from "../../src/datapath/classify.js";
import { JIT_MAX_RULES, markFnSource } from "../../src/tables/markjit.js";
import {
  compileMarks,
  ifaceMatches,
  type MarkProgram,
  type MarkRule,
  MarkTable,
  MarkTarget,
  type PortMatch,
  PortWhich,
} from "../../src/tables/marks.js";
import { markRule } from "../support/marks.js";

const LINKS = ["eth0", "eth1", "lvs0"];

const rule = markRule;

function pkt(o: Partial<MarkInput> = {}): MarkInput {
  return { saddr: 0x0a000007, daddr: 0xc0a800dc, proto: 6, sport: 40000, dport: 80, ipTotalLen: 60, ...o };
}

/** netfilter, written plainly: does rule r match packet v on link `link`? */
function refMatch(r: MarkRule, v: MarkInput, link: number): boolean {
  const inv = (cond: boolean, neg: boolean) => cond !== neg;
  if (!inv((v.saddr & r.srcMask) >>> 0 === (r.src & r.srcMask) >>> 0, r.srcNeg)) return false;
  if (!inv((v.daddr & r.dstMask) >>> 0 === (r.dst & r.dstMask) >>> 0, r.dstNeg)) return false;
  if (r.proto !== 0 && !inv(v.proto === r.proto, r.protoNeg)) return false;
  if (r.iface !== "" && !inv(ifaceMatches(r.iface, LINKS[link] ?? ""), r.ifaceNeg)) return false;
  for (const p of r.ports) {
    const inRange = (port: number) => p.ranges.some(([lo, hi]) => port >= lo && port <= hi);
    const hit =
      p.which === PortWhich.SRC
        ? inRange(v.sport)
        : p.which === PortWhich.DST
          ? inRange(v.dport)
          : inRange(v.sport) || inRange(v.dport);
    if (!inv(hit, p.neg)) return false;
  }
  return true;
}

/** The chain, written plainly: the mark, and which rules counted the packet. */
function refChain(rules: readonly MarkRule[], v: MarkInput, link: number): { mark: number; hits: number[] } {
  let mark = 0;
  const hits: number[] = [];
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!refMatch(r, v, link)) continue;
    hits.push(i);
    if (r.target === MarkTarget.MARK) mark = ((mark & ~r.mask) ^ r.value) >>> 0;
    else if (r.target === MarkTarget.ACCEPT || r.target === MarkTarget.RETURN) break;
  }
  return { mark, hits };
}

type Classify = (m: MarkProgram, v: MarkInput, link: number) => number;
const IMPLS: [string, Classify][] = [
  ["interpreter", (m, v, link) => classifyMark(m, v, link)],
  [
    "compiled function",
    (m, v, link) => {
      if (m.count !== 0) expect(m.fn).not.toBeNull();
      return markOf(m, v, link);
    },
  ],
];

describe.each(IMPLS)("mark classifier: %s", (_name, classify) => {
  it("the tutorial's rule: VIP, tcp, dports 80,443 -> mark 666; other ports, protocols, addresses -> 0", () => {
    const r = rule({
      dst: 0xc0a800dc,
      dstMask: 0xffffffff,
      proto: 6,
      ports: [
        {
          match: "multiport",
          which: PortWhich.DST,
          neg: false,
          ranges: [
            [80, 80],
            [443, 443],
          ],
        },
      ],
      value: 666,
    });
    const m = compileMarks([r], LINKS);
    expect(classify(m, pkt(), 0)).toBe(666);
    expect(classify(m, pkt({ dport: 443 }), 0)).toBe(666);
    expect(classify(m, pkt({ dport: 8080 }), 0)).toBe(0);
    expect(classify(m, pkt({ proto: 17 }), 0)).toBe(0);
    expect(classify(m, pkt({ daddr: 0xc0a800dd }), 0)).toBe(0);
    // counted: 2 matches of 60 bytes; the policy saw all 5
    expect([m.pkts[0], m.bytes[0], m.policy[0], m.policy[1]]).toEqual([2, 120, 5, 300]);
  });

  it("negations, interfaces with +, and the MARK variants compose in order", () => {
    const rules = [
      rule({ srcNeg: true, src: 0x0a000000, srcMask: 0xff000000, value: 0x10 }), // ! -s 10/8
      rule({ iface: "eth+", value: 0x0f00, mask: 0x0f00 }), // -i eth+ --or-mark 0xf00
      rule({ iface: "lvs0", ifaceNeg: true, value: 0, mask: ~0x0100 >>> 0 }), // ! -i lvs0 --and-mark 0x100
      rule({ proto: 17, protoNeg: true, value: 3, mask: 0 }), // ! -p udp --xor-mark 3
    ];
    const m = compileMarks(rules, LINKS);
    // from 10.0.0.7 on eth1 (tcp): not rule 0; or 0xf00; and 0x100 -> 0x100; xor 3 -> 0x103
    expect(classify(m, pkt(), 1)).toBe(0x103);
    // from 11.0.0.7 on lvs0 (udp): rule 0 sets 0x10; nothing else
    expect(classify(m, pkt({ saddr: 0x0b000007, proto: 17 }), 2)).toBe(0x10);
  });

  it("ACCEPT ends the chain before the policy; RETURN ends it through the policy", () => {
    const m = compileMarks(
      [rule({ value: 5 }), rule({ target: MarkTarget.ACCEPT }), rule({ value: 9 })],
      LINKS,
    );
    expect(classify(m, pkt(), 0)).toBe(5);
    expect([m.pkts[2], m.policy[0]]).toEqual([0, 0]);
    const n = compileMarks([rule({ target: MarkTarget.RETURN }), rule({ value: 9 })], LINKS);
    expect(classify(n, pkt(), 0)).toBe(0);
    expect(n.policy[0]).toBe(1);
  });

  it("returns marks above 2^31 as int32 (no boxing); | 0 is the same mark", () => {
    const m = compileMarks([rule({ value: 0xfffffff0 })], LINKS);
    expect(classify(m, pkt(), 0)).toBe(0xfffffff0 | 0);
  });

  it("an empty program marks nothing", () => {
    const t = new MarkTable();
    expect(t.program.count).toBe(0);
    expect(classify(t.program, pkt(), 0)).toBe(0);
  });

  it("equals the plain matcher for random chains and packets (property)", () => {
    const addr = fc.constantFrom(0x0a000007, 0x0a000008, 0xc0a800dc, 0xc0a800dd, 0x0b000001, 0xfffffff0);
    const mask = fc.constantFrom(0, 0xff000000, 0xffffff00, 0xfffffffe, 0xffffffff, 0xff00ff00);
    const port = fc.constantFrom(0, 1, 53, 79, 80, 81, 443, 1000, 65535);
    const range = fc.tuple(port, port).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as [number, number]);
    const portMatch: fc.Arbitrary<PortMatch> = fc.record({
      match: fc.constantFrom("tcp" as const, "multiport" as const),
      which: fc.constantFrom(PortWhich.SRC, PortWhich.DST, PortWhich.EITHER),
      neg: fc.boolean(),
      ranges: fc.array(range, { minLength: 1, maxLength: 4 }),
    });
    const ruleArb: fc.Arbitrary<MarkRule> = fc.record({
      src: addr,
      srcMask: mask,
      srcNeg: fc.boolean(),
      dst: addr,
      dstMask: mask,
      dstNeg: fc.boolean(),
      proto: fc.constantFrom(0, 1, 6, 17),
      protoNeg: fc.boolean(),
      iface: fc.constantFrom("", "eth0", "eth+", "lvs0", "nope", "+"),
      ifaceNeg: fc.boolean(),
      ports: fc.array(portMatch, { maxLength: 2 }),
      target: fc.constantFrom(
        MarkTarget.NONE,
        MarkTarget.MARK,
        MarkTarget.MARK,
        MarkTarget.ACCEPT,
        MarkTarget.RETURN,
      ),
      value: fc.constantFrom(0, 1, 666, 0x80000000, 0xffffffff),
      mask: fc.constantFrom(0, 0xff, 0xffffffff, 0xfffffffc),
      pkts: fc.constant(0),
      bytes: fc.constant(0),
    });
    const pktArb: fc.Arbitrary<MarkInput> = fc.record({
      saddr: addr,
      daddr: addr,
      proto: fc.constantFrom(1, 6, 17),
      sport: port,
      dport: port,
      ipTotalLen: fc.integer({ min: 20, max: 1500 }),
    });
    fc.assert(
      fc.property(
        fc.array(ruleArb, { maxLength: 6 }),
        fc.array(fc.tuple(pktArb, fc.integer({ min: 0, max: LINKS.length - 1 })), { maxLength: 8 }),
        (rules, pkts) => {
          const m = compileMarks(rules, LINKS);
          const counts = rules.map(() => 0);
          for (const [v, link] of pkts) {
            const want = refChain(rules, v, link);
            expect(classify(m, v, link) >>> 0).toBe(want.mark);
            for (const h of want.hits) counts[h]!++;
          }
          expect(Array.from(m.pkts.subarray(0, rules.length))).toEqual(counts);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("the compiled chain (src/tables/markjit.ts)", () => {
  const tutorial = rule({
    dst: 0xc0a800dc,
    dstMask: 0xffffffff,
    proto: 6,
    ports: [
      {
        match: "multiport",
        which: PortWhich.DST,
        neg: false,
        ranges: [
          [80, 80],
          [443, 1000],
        ],
      },
    ],
    value: 666,
  });

  it("keeps the same counters as the interpreter: per rule packets and bytes, and the policy", () => {
    const rules = [
      tutorial,
      rule({ iface: "eth+", value: 7, mask: 0xff }),
      rule({ target: MarkTarget.RETURN }),
    ];
    const a = compileMarks(rules, LINKS);
    const b = compileMarks(rules, LINKS);
    a.fn = null; // interpreted
    expect(b.fn).not.toBeNull();
    const pkts = [pkt(), pkt({ dport: 500, ipTotalLen: 1500 }), pkt({ proto: 17 }), pkt({ daddr: 1 })];
    for (const [k, v] of pkts.entries()) expect(markOf(b, v, k % 3)).toBe(markOf(a, v, k % 3));
    expect(Array.from(b.pkts)).toEqual(Array.from(a.pkts));
    expect(Array.from(b.bytes)).toEqual(Array.from(a.bytes));
    expect(Array.from(b.policy)).toEqual(Array.from(a.policy));
    expect(a.policy[0]).toBeGreaterThan(0);
  });

  it("writes only numbers into the source: its identifiers are a fixed vocabulary", () => {
    const rules = [
      tutorial,
      rule({ srcNeg: true, src: 0xffffffff, srcMask: 0xffffffff, value: 0xffffffff, mask: 0x80000000 }),
      rule({ iface: "lvs0", ifaceNeg: true, proto: 1, protoNeg: true, target: MarkTarget.ACCEPT }),
      rule({ ports: [{ match: "tcp", which: PortWhich.EITHER, neg: true, ranges: [[0, 65535]] }] }),
    ];
    const src = markFnSource(compileMarks(rules, LINKS));
    const words = new Set(src.match(/[A-Za-z_$][\w$]*/g));
    const vocabulary = new Set([
      ...["use", "strict", "return", "function", "markChain", "v", "link", "let", "mark", "const", "s", "d"],
      ...["sp", "dp", "len", "lbit", "saddr", "daddr", "sport", "dport", "ipTotalLen", "proto", "chain"],
      ...["if", "break", "pk", "by", "pol", "r0", "r1", "r2", "r3"],
    ]);
    expect([...words].filter((w) => !vocabulary.has(w))).toEqual([]);
  });

  it(`interprets chains longer than ${JIT_MAX_RULES} rules (not compiled), with the same result`, () => {
    const rules = Array.from({ length: JIT_MAX_RULES + 1 }, (_, k) => rule({ value: k + 1, mask: 0 }));
    const m = compileMarks(rules, LINKS);
    expect(m.fn).toBeNull();
    // every MARK rule matches: xor of 1..257 with mask 0
    let want = 0;
    for (let k = 1; k <= JIT_MAX_RULES + 1; k++) want ^= k;
    expect(markOf(m, pkt(), 0)).toBe(want);
  });
});
