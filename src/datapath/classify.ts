/**
 * The mark classifier: the mangle table's PREROUTING chain (src/tables/marks.ts) applied to one
 * packet, as netfilter would before IPVS sees it. The engine calls it for packets that look for
 * a service (those that found no connection), where the kernel's ip_vs_service_find reads
 * skb->mark; it returns the packet's mark (0: unmarked), which finds a `-f` service first.
 *
 * `classifyMark` is the interpreter: the reference semantics, and what runs when the chain has
 * no compiled function (markOf picks). It walks the compiled program's typed arrays: no allocation, no exception, no string. The
 * engine does not call it at all while the chain is empty (one comparison of the count).
 * Counters: each matching rule counts the packet and its IP length; packets that reach the end
 * of the chain count on the policy. The mark is returned as an int32 (`| 0`): a mark above 2^31
 * would otherwise be boxed on its way back.
 */
import {
  type MarkInput,
  type MarkProgram,
  MarkTarget,
  MF_DST_NEG,
  MF_IFACE,
  MF_IFACE_NEG,
  MF_PROTO,
  MF_PROTO_NEG,
  MF_SRC_NEG,
  PortWhich,
} from "../tables/marks.js";

export type { MarkInput };

/**
 * The packet's mark: the chain's compiled function when there is one (src/tables/markjit.ts),
 * else the interpreter below. Call only when `m.count !== 0`.
 */
export function markOf(m: MarkProgram, v: MarkInput, link: number): number {
  const fn = m.fn;
  return fn !== null ? fn(v, link) : classifyMark(m, v, link);
}

/** Run the chain `m` over a packet that came in on link `link`; returns its mark (int32). */
export function classifyMark(m: MarkProgram, v: MarkInput, link: number): number {
  let mark = 0;
  const s = v.saddr | 0;
  const d = v.daddr | 0;
  const p = v.proto;
  const len = v.ipTotalLen;
  const lbit = link >= 0 && link < 32 ? 1 << link : 0;
  const n = m.count;
  for (let r = 0; r < n; r++) {
    const f = m.flags[r]!;
    if ((((s ^ m.saddr[r]!) & m.smask[r]!) !== 0) !== ((f & MF_SRC_NEG) !== 0)) continue;
    if ((((d ^ m.daddr[r]!) & m.dmask[r]!) !== 0) !== ((f & MF_DST_NEG) !== 0)) continue;
    if ((f & MF_PROTO) !== 0 && (p === m.proto[r]) === ((f & MF_PROTO_NEG) !== 0)) continue;
    if ((f & MF_IFACE) !== 0 && ((m.ifMask[r]! & lbit) !== 0) === ((f & MF_IFACE_NEG) !== 0)) continue;
    if (!portsMatch(m, r, v.sport, v.dport)) continue;
    m.pkts[r]!++;
    m.bytes[r]! += len;
    const t = m.target[r]!;
    if (t === MarkTarget.MARK) {
      mark = (mark & ~m.mask[r]!) ^ m.value[r]!;
    } else if (t === MarkTarget.ACCEPT) {
      return mark;
    } else if (t === MarkTarget.RETURN) {
      break;
    }
  }
  m.policy[0]!++;
  m.policy[1]! += len;
  return mark;
}

/** Every port condition of rule r holds (each: some range contains the port, unless negated). */
function portsMatch(m: MarkProgram, r: number, sport: number, dport: number): boolean {
  const end = m.cEnd[r]!;
  for (let c = m.cStart[r]!; c < end; c++) {
    const which = m.cWhich[c]!;
    const re = m.rEnd[c]!;
    let hit = false;
    for (let g = m.rStart[c]!; g < re; g++) {
      const lo = m.lo[g]!;
      const hi = m.hi[g]!;
      if (
        (which !== PortWhich.DST && sport >= lo && sport <= hi) ||
        (which !== PortWhich.SRC && dport >= lo && dport <= hi)
      ) {
        hit = true;
        break;
      }
    }
    if (hit === (m.cNeg[c] !== 0)) return false;
  }
  return true;
}
