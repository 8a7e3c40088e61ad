/**
 * LVS-NAT (masquerading, ipvsadm -m): DNAT on the way in (VIP:vport -> RIP:rport, port
 * mapping allowed), SNAT on the way out (RIP:rport -> VIP:vport). The real servers route their
 * replies through the director. Checksums are updated incrementally (RFC 1624) by the rewrite
 * primitives. ICMP errors are rewritten in both the outer header and the embedded one, as
 * ip_vs_nat_icmp does: towards the real server the outer destination and the embedded source
 * become the RIP; towards the client the outer source and the embedded destination become the VIP.
 */

import { FwdMethod } from "../../tables/model.js";
import type { ConnTable } from "../conntrack/table.js";
import {
  setDaddr,
  setDport,
  setInnerDaddr,
  setInnerDport,
  setInnerSaddr,
  setInnerSport,
  setSaddr,
  setSport,
} from "../packet/rewrite.js";
import type { FrameView } from "../packet/view.js";
import type { ForwardMode } from "./types.js";

export const natMode: ForwardMode = {
  kind: FwdMethod.MASQ,
  inputOnly: false,
  decrementsTtl: true,
  checksMtu: false,

  inbound(v: FrameView, ct: ConnTable, c: number): number {
    const daddr = ct.daddr[c]!;
    setDaddr(v, daddr | 0);
    setDport(v, ct.dport[c]!);
    return daddr | 0;
  },

  outbound(v: FrameView, ct: ConnTable, c: number): number {
    setSaddr(v, ct.vaddr[c]! | 0);
    setSport(v, ct.vport[c]!);
    return v.daddr | 0;
  },

  icmpIn(v: FrameView, ct: ConnTable, c: number): number {
    const daddr = ct.daddr[c]!;
    setDaddr(v, daddr | 0);
    setInnerSaddr(v, daddr | 0);
    setInnerSport(v, ct.dport[c]!);
    return daddr | 0;
  },

  icmpOut(v: FrameView, ct: ConnTable, c: number): number {
    const vaddr = ct.vaddr[c]!;
    setSaddr(v, vaddr | 0);
    setInnerDaddr(v, vaddr | 0);
    setInnerDport(v, ct.vport[c]!);
    return v.daddr | 0;
  },
};
